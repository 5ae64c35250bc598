/*
 * The nonces of signed requests (docs/protocol.md, "Signed requests"),
 * remembered in the store so a request cannot be replayed, not even
 * after a restart. A request is accepted only within its clock window,
 * so a nonce older than twice the window can be forgotten: a replay of
 * its request is refused for its time. Each claim is one write
 * transaction, committed before the request is acted on.
 */
#include "store/store_internal.h"

#include <string.h>

/* Forget old nonces every this many claims of a handle. */
#define PRUNE_EVERY 256

int sl_store_nonce_claim(sl_store *s, const uint8_t key[SL_ED25519_PK_LEN],
                         const uint8_t nonce[SL_NONCE_LEN], uint64_t time_s, uint64_t now_s,
                         unsigned window_s)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (s->format < 3)
		return sl_error_set(SL_EINVAL,
		                    "store %s has format %d, without request nonces; open "
		                    "it for writing once to upgrade it",
		                    s->dir, s->format);
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	rc = sqlite3_prepare_v2(
	        s->db,
	        "INSERT OR IGNORE INTO request_nonces(key, nonce, time) VALUES (?1, "
	        "?2, ?3)",
	        -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = store_sqlite_error(s, rc, "remember a nonce");
		goto out;
	}
	sqlite3_bind_blob(st, 1, key, SL_ED25519_PK_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, nonce, SL_NONCE_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)time_s);
	if ((rc = store_step_done(s, st, "remember a nonce")) != SL_OK)
		goto out;
	if (sqlite3_changes(s->db) == 0) {
		rc = sl_error_set(SL_EEXISTS, "the request's nonce was used before: a replay");
		goto out;
	}
	if (++s->nonce_claims % PRUNE_EVERY == 1 && now_s > 2 * (uint64_t)window_s) {
		sqlite3_finalize(st);
		st = NULL;
		rc = sqlite3_prepare_v2(s->db, "DELETE FROM request_nonces WHERE time < ?1", -1,
		                        &st, NULL);
		if (rc != SQLITE_OK) {
			rc = store_sqlite_error(s, rc, "forget old nonces");
			goto out;
		}
		sqlite3_bind_int64(st, 1, (int64_t)(now_s - 2 * (uint64_t)window_s));
		if ((rc = store_step_done(s, st, "forget old nonces")) != SL_OK)
			goto out;
	}
	rc = SL_OK;
out:
	sqlite3_finalize(st);
	if (rc == SL_OK)
		rc = store_commit_txn(s);
	if (rc != SL_OK)
		store_rollback_txn(s);
	return rc;
}
