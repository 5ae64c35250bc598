/*
 * sl_dag_verify: every stored entry replayed, in (height, id) order,
 * through the checks of dag_offer into temporary tables that shadow the
 * stored ones (unqualified names resolve to temp first), which are then
 * compared row for row with what is stored (invariants D1..D6 of dag.c).
 */
#include "store/dag_internal.h"

#include <stdio.h>
#include <string.h>

/* Tables that shadow the stored ones: a replay writes here. */
static const char verify_tables[] =
        "CREATE TEMP TABLE dag_entries(ns INTEGER NOT NULL, id BLOB NOT NULL, height INTEGER "
        "NOT NULL, seq INTEGER NOT NULL, encoding BLOB NOT NULL, sfront BLOB NOT NULL, PRIMARY "
        "KEY(ns, id)) WITHOUT ROWID;"
        "CREATE TEMP TABLE dag_settings(ns INTEGER NOT NULL, id BLOB NOT NULL, closure BLOB "
        "NOT NULL, PRIMARY KEY(ns, id)) WITHOUT ROWID;"
        "CREATE TEMP TABLE dag_state(ns INTEGER NOT NULL, key BLOB NOT NULL, height INTEGER "
        "NOT NULL, id BLOB NOT NULL, deleted INTEGER NOT NULL, digest BLOB NOT NULL, size "
        "INTEGER NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;"
        "CREATE TEMP TABLE dag_tips(ns INTEGER NOT NULL, id BLOB NOT NULL, PRIMARY KEY(ns, "
        "id)) WITHOUT ROWID;"
        "CREATE TEMP TABLE dag_values(digest BLOB NOT NULL, ns INTEGER NOT NULL, PRIMARY "
        "KEY(digest, ns)) WITHOUT ROWID;";

static const char drop_verify_tables[] =
        "DROP TABLE IF EXISTS temp.dag_entries; DROP TABLE IF EXISTS temp.dag_settings;"
        "DROP TABLE IF EXISTS temp.dag_state; DROP TABLE IF EXISTS temp.dag_tips;"
        "DROP TABLE IF EXISTS temp.dag_values;";

/* The rows of table (columns cols) for ns differ between main and temp. */
static int tables_differ(sl_store *s, int64_t ns, const char *table, const char *cols,
                         int64_t *n_differ)
{
	char sql[512];
	sqlite3_stmt *st = NULL;
	int rc;
	snprintf(sql, sizeof(sql),
	         "SELECT (SELECT count(*) FROM (SELECT %s FROM main.%s WHERE ns = ?1 EXCEPT "
	         "SELECT %s FROM temp.%s WHERE ns = ?1)) + (SELECT count(*) FROM (SELECT %s FROM "
	         "temp.%s WHERE ns = ?1 EXCEPT SELECT %s FROM main.%s WHERE ns = ?1))",
	         cols, table, cols, table, cols, table, cols, table);
	if ((rc = dag_prepare(s, &st, sql)) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, ns);
	rc = sqlite3_step(st);
	*n_differ = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? SL_OK : store_sqlite_error(s, rc, "verify");
}

/* The first entry in (height, id) order: the namespace's root. */
static int replay_root(dag_txn *t, const uint8_t *enc, size_t len, sl_digest *id)
{
	sl_dag_entry root;
	int rc = sl_dag_entry_decode(&root, enc, len);
	if (rc != SL_OK)
		return sl_error_set(SL_ECORRUPT, "the root entry does not verify: %s",
		                    sl_error_last()->message);
	*id = root.id;
	if (!sl_digest_eq(&root.id, &t->row.root))
		rc = sl_error_set(SL_ECORRUPT, "the first entry is not the namespace's root");
	else if (dag_check_root(&root) != SL_OK)
		rc = sl_error_set(SL_ECORRUPT, "the root entry: %s", sl_error_last()->message);
	else
		rc = dag_store_root(t, &root, enc, len);
	sl_dag_entry_free(&root);
	return rc;
}

/* Replay every stored entry, in (height, id) order, through the checks
 * of dag_offer() into the temporary tables. */
static int replay(dag_txn *t, sl_verify_report *out)
{
	dag_offered none = {NULL, 0, NULL};
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = dag_prepare(t->s, &st,
	                      "SELECT id, encoding FROM main.dag_entries WHERE ns = ?1 ORDER BY "
	                      "height, id")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, t->row.id);
	for (;;) {
		const uint8_t *enc;
		size_t len;
		sl_digest id;
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(t->s, step, "read entries");
			break;
		}
		enc = sqlite3_column_blob(st, 1);
		len = (size_t)sqlite3_column_bytes(st, 1);
		if (out->entries_checked == 0) {
			rc = replay_root(t, enc, len, &id);
		} else {
			dag_verdict v;
			rc = dag_offer(t, enc, len, NULL, &none, NULL, &id, &v);
			if (rc == SL_OK && v.outcome != DAG_STORED)
				rc = sl_error_set(SL_ECORRUPT,
				                  "stored entry %s does not verify: %s",
				                  sl_digest_to_hex(&id).s,
				                  v.outcome == DAG_KNOWN ? "held twice" : v.reason);
		}
		if (rc != SL_OK)
			break;
		if (sqlite3_column_bytes(st, 0) != SL_DIGEST_LEN ||
		    memcmp(sqlite3_column_blob(st, 0), id.bytes, SL_DIGEST_LEN) != 0) {
			rc = sl_error_set(SL_ECORRUPT, "entry %s is stored under another id",
			                  sl_digest_to_hex(&id).s);
			break;
		}
		out->entries_checked++;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The live keys of the replayed state. */
static int count_keys(dag_txn *t, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = dag_prepare(t->s, &st,
	                     "SELECT count(*) FROM temp.dag_state WHERE ns = ?1 AND deleted = 0");
	if (rc != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, t->row.id);
	rc = sqlite3_step(st);
	*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? SL_OK : store_sqlite_error(t->s, rc, "verify");
}

/* D4 for seq: the stored entries are numbered 0..size-1. */
static int check_seqs(sl_store *s, const ns_row *row)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = dag_prepare(s, &st,
	                      "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM "
	                      "main.dag_entries WHERE ns = ?1")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		rc = store_sqlite_error(s, rc, "verify");
	} else if ((uint64_t)sqlite3_column_int64(st, 0) != row->size ||
	           sqlite3_column_int64(st, 1) != sqlite3_column_int64(st, 0) ||
	           sqlite3_column_int64(st, 2) != 0 ||
	           (uint64_t)sqlite3_column_int64(st, 3) + 1 != row->size) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "the entries are not numbered 0..%llu in the order "
		                  "they were stored",
		                  (unsigned long long)row->size - 1);
	} else {
		rc = SL_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

int sl_dag_verify(sl_store *s, const char *ns, sl_verify_report *out)
{
	static const struct {
		const char *table, *cols;
	} compare[] = {
	        {"dag_entries", "id, height, encoding, sfront"},
	        {"dag_settings", "id, closure"},
	        {"dag_state", "key, height, id, deleted, digest, size"},
	        {"dag_tips", "id"},
	        /* D6, in format 4: a scan of dag_values (keyed by digest) */
	        {"dag_values", "digest"},
	};
	size_t n_compare = sizeof(compare) / sizeof(compare[0]) - (s->format < 4);
	sl_verify_report report;
	dag_txn t;
	ns_row row;
	int rc;

	memset(&report, 0, sizeof(report));
	memset(&t, 0, sizeof(t));
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = dag_load(s, ns, &row)) != SL_OK)
		goto out;
	sqlite3_exec(s->db, drop_verify_tables, NULL, NULL, NULL);
	if ((rc = sqlite3_exec(s->db, verify_tables, NULL, NULL, NULL)) != SQLITE_OK) {
		rc = store_sqlite_error(s, rc, "verify");
		goto out;
	}
	t.s = s;
	t.row = row;
	t.row.size = 0;
	t.rehash = 1;
	if ((rc = dag_txn_prepare(&t)) != SL_OK || (rc = replay(&t, &report)) != SL_OK ||
	    (rc = count_keys(&t, &report.keys_checked)) != SL_OK)
		goto out;
	if ((rc = check_seqs(s, &row)) != SL_OK)
		goto out;
	if (t.row.size != row.size) {
		rc = sl_error_set(SL_ECORRUPT, "the namespace counts %llu entries, %llu are held",
		                  (unsigned long long)row.size, (unsigned long long)t.row.size);
		goto out;
	}
	for (size_t i = 0; i < n_compare; i++) {
		int64_t n_differ = 0;
		if ((rc = tables_differ(s, row.id, compare[i].table, compare[i].cols, &n_differ)) !=
		    SL_OK)
			goto out;
		if (n_differ) {
			rc = sl_error_set(SL_ECORRUPT,
			                  "%lld rows of %s differ from what the entries make",
			                  (long long)n_differ, compare[i].table);
			goto out;
		}
	}
	report.blobs_checked = t.rehashed;
out:
	dag_txn_free(&t);
	store_rollback_txn(s);
	sqlite3_exec(s->db, drop_verify_tables, NULL, NULL, NULL);
	if (rc != SL_OK)
		return sl_error_wrap("verify '%s'", ns);
	if (out)
		*out = report;
	return SL_OK;
}
