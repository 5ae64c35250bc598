/*
 * Values and what refers to them: collecting the blob table when pruning.
 *
 * A value larger than SL_INLINE_VALUE_MAX is stored once per SHA-256
 * digest in blobs, whichever namespace and operation wrote it, and so is
 * every value a dag entry sets, whatever its size. Two things refer to a
 * blob (store format 4):
 *   - an operation row whose value is not inline: a set or update whose
 *     value column is NULL; its element ends in the value's digest (op.c).
 *     The partial index ops_value on substr(element, -32) holds exactly
 *     those rows, so the operations that refer to a digest are one index
 *     lookup away. SQLite keeps it, so the write path (batch.c) does
 *     nothing for it;
 *   - a SET write of a held dag entry: dag_values(digest, ns) has a row
 *     for each digest the entries of dag namespace ns set (dag.c writes it
 *     with the entry; sl_dag_verify recomputes it).
 * The invariant (I5 in store.c):
 *   V1. blobs holds exactly the values that some operation row or some row
 *       of dag_values refers to.
 * A write only adds values with the operation or entry that refers to
 * them, in one transaction, and nothing deletes operations or entries but
 * a prune, which keeps V1 (store_values_prune):
 *   the operations [from, to) go in steps of PRUNE_STEP; before a step's
 *   operations are deleted, the digests of their values in blobs are read
 *   (a range of ops by id); after, each of those digests that neither
 *   ops_value nor dag_values still shows a reference to is deleted. A
 *   value whose last reference goes in a later step is collected by that
 *   step. All of it is inside the prune's one write transaction.
 * Cost: reading and deleting the pruned operations, which the prune did
 * anyway, and per distinct value of a step three lookups by digest (the
 * index, dag_values, blobs); nothing is proportional to the rest of the
 * store. Writes pay for it: each operation whose value is in blobs adds an
 * ~45-byte entry to ops_value (small values, deletes and commits add
 * none), and each dag SET write a row of dag_values.
 *
 * Format 4 (store_values_migrate, in the upgrade's transaction) builds the
 * index in one pass over ops, fills dag_values by decoding every stored
 * entry once, and deletes the values nothing refers to, which prunes made
 * before format 4 left behind.
 *
 * sl_store_verify_values checks V1 for the whole store, both ways.
 */
#include "store/dag_internal.h"

#include <stdlib.h>
#include <string.h>

/* Operations deleted per step: bounds the digests held (PRUNE_STEP * 32
 * bytes). */
#define PRUNE_STEP 4096

/* The values of ops rows [?1, ?2) that are in blobs. */
static const char step_digests_sql[] = "SELECT " STORE_OP_BLOB_DIGEST " FROM ops WHERE id >= ?1 "
                                       "AND id < ?2 AND " STORE_OP_BLOB_WHERE;

/* The size of value ?1 if it is in blobs and nothing refers to it. */
static const char unreferenced_sql[] =
        "SELECT length(value) FROM blobs WHERE digest = ?1 AND NOT EXISTS (SELECT 1 FROM ops "
        "WHERE " STORE_OP_BLOB_DIGEST " = ?1 AND " STORE_OP_BLOB_WHERE ") AND NOT EXISTS "
        "(SELECT 1 FROM dag_values WHERE digest = ?1)";

/* A row of blobs that nothing refers to (a scan of blobs, with two
 * lookups per row). */
#define UNREFERENCED_BLOB                                                                          \
	"NOT EXISTS (SELECT 1 FROM ops WHERE " STORE_OP_BLOB_DIGEST                                \
	" = blobs.digest AND " STORE_OP_BLOB_WHERE                                                 \
	") AND NOT EXISTS (SELECT 1 FROM dag_values WHERE digest = "                               \
	"blobs.digest)"

static const char values_schema[] =
        "CREATE INDEX ops_value ON ops(" STORE_OP_BLOB_DIGEST ") WHERE " STORE_OP_BLOB_WHERE ";\n"
        "CREATE TABLE dag_values(digest BLOB NOT NULL, ns INTEGER NOT NULL, "
        "PRIMARY KEY(digest, ns)) WITHOUT ROWID;\n";

static int prepare(sl_store *s, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, "prepare a value statement");
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, SL_DIGEST_LEN);
}

/* ------------------------------------------------------------- pruning */

typedef struct prune_ctx {
	sl_store *s;
	sqlite3_stmt *digests, *unreferenced, *delete_blob;
	sl_digest *step; /* PRUNE_STEP digests */
	uint64_t n_values, n_bytes;
} prune_ctx;

/* The distinct digests of the values in blobs of operations [a, b). */
static int step_collect(prune_ctx *p, int64_t a, int64_t b, size_t *n_out)
{
	size_t n = 0, kept = 0;
	int rc;

	sqlite3_reset(p->digests);
	sqlite3_bind_int64(p->digests, 1, a);
	sqlite3_bind_int64(p->digests, 2, b);
	while ((rc = sqlite3_step(p->digests)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(p->digests, 0) != SL_DIGEST_LEN) {
			sqlite3_reset(p->digests);
			return sl_error_set(SL_ECORRUPT, "an operation's element is too short");
		}
		if (n == PRUNE_STEP) { /* more rows than ids in [a, b) */
			sqlite3_reset(p->digests);
			return sl_error_set(SL_EINTERNAL, "prune: a step read too many rows");
		}
		memcpy(p->step[n++].bytes, sqlite3_column_blob(p->digests, 0), SL_DIGEST_LEN);
	}
	sqlite3_reset(p->digests);
	if (rc != SQLITE_DONE)
		return store_sqlite_error(p->s, rc, "read the values of pruned operations");
	if (n > 1)
		qsort(p->step, n, sizeof(*p->step), cmp_digest);
	for (size_t i = 0; i < n; i++)
		if (kept == 0 || !sl_digest_eq(&p->step[kept - 1], &p->step[i]))
			p->step[kept++] = p->step[i];
	*n_out = kept;
	return SL_OK;
}

/* Delete the value of digest if nothing refers to it any more. */
static int collect_one(prune_ctx *p, const sl_digest *digest)
{
	int64_t len = 0;
	int rc;

	sqlite3_reset(p->unreferenced);
	sqlite3_bind_blob(p->unreferenced, 1, digest->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(p->unreferenced);
	if (rc == SQLITE_ROW)
		len = sqlite3_column_int64(p->unreferenced, 0);
	sqlite3_reset(p->unreferenced);
	if (rc == SQLITE_DONE)
		return SL_OK; /* still referred to (or never stored: not ours to judge) */
	if (rc != SQLITE_ROW)
		return store_sqlite_error(p->s, rc, "look for references to a value");
	sqlite3_bind_blob(p->delete_blob, 1, digest->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	if ((rc = store_step_done(p->s, p->delete_blob, "delete a value")) != SL_OK)
		return rc;
	p->n_values++;
	p->n_bytes += (uint64_t)len;
	return SL_OK;
}

static int prune_steps(prune_ctx *p, int64_t ns_id, uint64_t from, uint64_t to)
{
	for (uint64_t a = from; a < to;) {
		uint64_t b = to - a > PRUNE_STEP ? a + PRUNE_STEP : to;
		sqlite3_stmt *del;
		size_t n = 0;
		int rc;

		if ((rc = step_collect(p, store_pack_id(ns_id, a), store_pack_id(ns_id, b), &n)) !=
		    SL_OK)
			return rc;
		if (!(del = store_stmt(p->s, STMT_OP_DELETE_BELOW)))
			return sl_error_last()->code;
		sqlite3_bind_int64(del, 1, store_pack_id(ns_id, a));
		sqlite3_bind_int64(del, 2, store_pack_id(ns_id, b));
		if ((rc = store_step_done(p->s, del, "prune")) != SL_OK)
			return rc;
		for (size_t i = 0; i < n; i++)
			if ((rc = collect_one(p, &p->step[i])) != SL_OK)
				return rc;
		a = b;
	}
	return SL_OK;
}

int store_values_prune(sl_store *s, int64_t ns_id, uint64_t from, uint64_t to, uint64_t *n_values,
                       uint64_t *n_bytes)
{
	prune_ctx p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.s = s;
	if (!(p.step = sl_malloc(PRUNE_STEP * sizeof(*p.step))))
		return SL_ENOMEM;
	if ((rc = prepare(s, step_digests_sql, &p.digests)) != SL_OK ||
	    (rc = prepare(s, unreferenced_sql, &p.unreferenced)) != SL_OK ||
	    (rc = prepare(s, "DELETE FROM blobs WHERE digest = ?1", &p.delete_blob)) != SL_OK)
		goto cleanup;
	if ((rc = prune_steps(&p, ns_id, from, to)) != SL_OK)
		goto cleanup;
	*n_values = p.n_values;
	*n_bytes = p.n_bytes;
cleanup:
	sqlite3_finalize(p.digests);
	sqlite3_finalize(p.unreferenced);
	sqlite3_finalize(p.delete_blob);
	sl_free(p.step);
	return rc;
}

/* ------------------------------------------------------------- format 4 */

/* dag_values for the entries stored before format 4. */
static int fill_dag_values(sl_store *s)
{
	sqlite3_stmt *entries = NULL, *put = NULL;
	sl_dag_entry e;
	int rc;

	if ((rc = prepare(s, "SELECT ns, encoding FROM dag_entries", &entries)) != SL_OK ||
	    (rc = prepare(s, "INSERT OR IGNORE INTO dag_values(digest, ns) VALUES (?1, ?2)",
	                  &put)) != SL_OK)
		goto cleanup;
	while ((rc = sqlite3_step(entries)) == SQLITE_ROW) {
		int64_t ns = sqlite3_column_int64(entries, 0);
		const uint8_t *enc = sqlite3_column_blob(entries, 1);
		size_t len = (size_t)sqlite3_column_bytes(entries, 1);
		if ((rc = dag_entry_decode_checked(&e, enc, len)) != SL_OK) {
			sl_error_wrap("a stored dag entry");
			goto cleanup;
		}
		for (size_t i = 0; i < e.n_writes && rc == SL_OK; i++) {
			if (e.writes[i].kind != SL_DAG_SET)
				continue;
			sqlite3_bind_blob(put, 1, e.writes[i].digest.bytes, SL_DIGEST_LEN,
			                  SQLITE_STATIC);
			sqlite3_bind_int64(put, 2, ns);
			rc = store_step_done(s, put, "record a dag value");
		}
		sl_dag_entry_free(&e);
		if (rc != SL_OK)
			goto cleanup;
	}
	rc = rc == SQLITE_DONE ? SL_OK : store_sqlite_error(s, rc, "read dag entries");
cleanup:
	sqlite3_finalize(entries);
	sqlite3_finalize(put);
	return rc;
}

int store_values_migrate(sl_store *s)
{
	int rc = sqlite3_exec(s->db, values_schema, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_error(s, rc, "index the values");
	if ((rc = fill_dag_values(s)) != SL_OK)
		return rc;
	rc = sqlite3_exec(s->db, "DELETE FROM blobs WHERE " UNREFERENCED_BLOB, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_error(s, rc, "delete values nothing refers to");
	if (sqlite3_changes(s->db) > 0)
		sl_log(SL_LOG_INFO, "deleted values no operation refers to", "path=%s values=%d",
		       s->dir, sqlite3_changes(s->db));
	return SL_OK;
}

/* -------------------------------------------------------------- verify */

/* One row of integers from sql. */
static int query_ints(sl_store *s, const char *sql, int64_t *out, int n)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(s, sql, &st);
	if (rc != SL_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		for (int i = 0; i < n; i++)
			out[i] = sqlite3_column_int64(st, i);
		rc = SL_OK;
	} else {
		rc = store_sqlite_error(s, rc, "verify values");
	}
	sqlite3_finalize(st);
	return rc;
}

static int verify_values_locked(sl_store *s, sl_values_report *r)
{
	int64_t held[2], op_refs[2], dag_refs[3], unreferenced;
	int rc;

	if ((rc = query_ints(s, "SELECT count(*), coalesce(sum(length(value)), 0) FROM blobs", held,
	                     2)) != SL_OK ||
	    (rc = query_ints(s,
	                     "SELECT count(*), coalesce(sum(NOT EXISTS (SELECT 1 FROM blobs "
	                     "WHERE digest = " STORE_OP_BLOB_DIGEST
	                     ")), 0) FROM ops WHERE " STORE_OP_BLOB_WHERE,
	                     op_refs, 2)) != SL_OK ||
	    (rc = query_ints(s,
	                     "SELECT count(*), coalesce(sum(NOT EXISTS (SELECT 1 FROM blobs "
	                     "WHERE digest = dag_values.digest)), 0), coalesce(sum(ns NOT IN "
	                     "(SELECT id FROM namespaces WHERE kind = 3)), 0) FROM dag_values",
	                     dag_refs, 3)) != SL_OK ||
	    (rc = query_ints(s, "SELECT count(*) FROM blobs WHERE " UNREFERENCED_BLOB,
	                     &unreferenced, 1)) != SL_OK)
		return rc;
	if (op_refs[1] != 0)
		return sl_error_set(SL_ECORRUPT, "%lld operations refer to values that are missing",
		                    (long long)op_refs[1]);
	if (dag_refs[1] != 0)
		return sl_error_set(SL_ECORRUPT, "%lld values dag entries set are missing",
		                    (long long)dag_refs[1]);
	if (dag_refs[2] != 0)
		return sl_error_set(SL_ECORRUPT, "%lld rows of dag_values name no dag namespace",
		                    (long long)dag_refs[2]);
	if (unreferenced != 0)
		return sl_error_set(SL_ECORRUPT,
		                    "%lld values are stored that no operation or dag entry "
		                    "refers to",
		                    (long long)unreferenced);
	r->checked = 1;
	r->values = (uint64_t)held[0];
	r->bytes = (uint64_t)held[1];
	r->references = (uint64_t)(op_refs[0] + dag_refs[0]);
	return SL_OK;
}

int sl_store_verify_values(sl_store *s, sl_values_report *out)
{
	sl_values_report r;
	int rc;

	memset(&r, 0, sizeof(r));
	if (s->format >= 4) {
		if ((rc = store_begin_read(s)) != SL_OK)
			return rc;
		rc = verify_values_locked(s, &r);
		store_rollback_txn(s);
		if (rc != SL_OK)
			return sl_error_wrap("verify values");
	}
	if (out)
		*out = r;
	return SL_OK;
}
