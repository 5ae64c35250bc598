/*
 * The store file's size, and giving its free pages back.
 *
 * Deleting rows (a prune) frees pages inside sluice.db; SQLite keeps them
 * on its free list and fills them before it makes the file longer, so
 * the file stops growing but never shrinks by itself (the store leaves
 * auto_vacuum off: giving pages back at every commit would move pages
 * around in every commit). sl_store_vacuum shrinks it on request:
 *   - auto_vacuum off (every store sluice creates): VACUUM copies the
 *     database into a temporary one and back, without the free pages.
 *     The store runs with temp_store = MEMORY, under which that copy
 *     would be held in memory, as large as the database; for the VACUUM,
 *     temp_store is FILE, so the copy goes to SQLite's temporary
 *     directory, and MEMORY again after;
 *   - auto_vacuum incremental (a file someone set up so): the free pages
 *     are released with PRAGMA incremental_vacuum, without a copy;
 *   - auto_vacuum full: there are none to release.
 * In WAL mode the pages VACUUM writes go to the WAL; the checkpoint after
 * it writes them into sluice.db, truncates the file to the new page count
 * and (TRUNCATE) the WAL to zero bytes. A connection still reading an
 * older snapshot holds the checkpoint back: the file then shrinks at a
 * later checkpoint, and *checkpointed says so.
 */
#include "store/store_internal.h"

#include <stdio.h>

/* The size of file name in the store's directory; 0 if there is none. */
static uint64_t file_bytes(const char *dir, const char *name)
{
	char path[4200];
	off_t size;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	size = store_file_size(path);
	return size < 0 ? 0 : (uint64_t)size;
}

static int pragma_u64(sl_store *s, const char *sql, uint64_t *out)
{
	int64_t v = 0;
	int rc = store_pragma_int(s, sql, &v);
	*out = (uint64_t)v;
	return rc;
}

int sl_store_space_get(sl_store *s, sl_store_space *out)
{
	sl_store_space sp = {0};
	int rc;

	if ((rc = store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = pragma_u64(s, "PRAGMA page_size", &sp.page_size)) == SL_OK &&
	    (rc = pragma_u64(s, "PRAGMA page_count", &sp.pages)) == SL_OK)
		rc = pragma_u64(s, "PRAGMA freelist_count", &sp.free_pages);
	store_rollback_txn(s);
	if (rc != SL_OK)
		return rc;
	sp.file_bytes = file_bytes(s->dir, "sluice.db");
	sp.wal_bytes = file_bytes(s->dir, "sluice.db-wal");
	*out = sp;
	return SL_OK;
}

static int exec(sl_store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, what);
}

int sl_store_vacuum(sl_store *s, int *checkpointed)
{
	uint64_t auto_vacuum = 0;
	int rc, log_frames = 0, done_frames = 0;

	if (s->readonly)
		return sl_error_set(SL_EINVAL, "store %s is open read-only", s->dir);
	if (!sqlite3_get_autocommit(s->db))
		return sl_error_set(SL_EINVAL, "vacuum: a transaction is open");
	if ((rc = pragma_u64(s, "PRAGMA auto_vacuum", &auto_vacuum)) != SL_OK)
		return rc;
	if (auto_vacuum == 2) {
		rc = exec(s, "PRAGMA incremental_vacuum", "vacuum");
	} else if (auto_vacuum == 0) {
		if ((rc = exec(s, "PRAGMA temp_store = FILE", "vacuum")) != SL_OK)
			return rc;
		rc = exec(s, "VACUUM", "vacuum");
		int restored = exec(s, "PRAGMA temp_store = MEMORY", "vacuum");
		if (rc == SL_OK)
			rc = restored;
	}
	if (rc != SL_OK)
		return rc;
	rc = sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
	                               &done_frames);
	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
		return store_sqlite_error(s, rc, "checkpoint after vacuum");
	if (checkpointed)
		*checkpointed = rc == SQLITE_OK;
	sl_log(SL_LOG_INFO, "vacuumed the store", "path=%s checkpointed=%d", s->dir,
	       rc == SQLITE_OK);
	return SL_OK;
}
