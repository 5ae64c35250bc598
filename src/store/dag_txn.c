/*
 * The plumbing of DAG namespaces: lists of entry ids, the tables (store
 * format 3), and the statements of one transaction on a namespace.
 */
#include "store/dag_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- id lists */

int dag_ids_push(dag_ids *l, const sl_digest *id)
{
	sl_digest *grown = sl_grow(l->ids, &l->cap, l->n, sizeof(*l->ids), 8);
	if (!grown)
		return SL_ENOMEM;
	l->ids = grown;
	l->ids[l->n++] = *id;
	return SL_OK;
}

int dag_cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, SL_DIGEST_LEN);
}

void dag_ids_sort_unique(dag_ids *l)
{
	size_t kept = 0;
	if (l->n == 0)
		return;
	qsort(l->ids, l->n, sizeof(*l->ids), dag_cmp_digest);
	for (size_t i = 0; i < l->n; i++)
		if (kept == 0 || !sl_digest_eq(&l->ids[kept - 1], &l->ids[i]))
			l->ids[kept++] = l->ids[i];
	l->n = kept;
}

int dag_ids_has(const dag_ids *l, const sl_digest *id)
{
	return l->n && bsearch(id, l->ids, l->n, sizeof(*l->ids), dag_cmp_digest) != NULL;
}

int dag_ids_from_blob(dag_ids *l, const void *blob, int bytes)
{
	const uint8_t *p = blob;
	if (bytes < 0 || bytes % SL_DIGEST_LEN != 0)
		return sl_error_set(SL_ECORRUPT, "a stored list of entry ids is damaged");
	for (int i = 0; i < bytes; i += SL_DIGEST_LEN) {
		sl_digest d;
		memcpy(d.bytes, p + i, SL_DIGEST_LEN);
		if (dag_ids_push(l, &d) != SL_OK)
			return SL_ENOMEM;
	}
	return SL_OK;
}

/* ------------------------------------------------------------ statements */

int dag_prepare(sl_store *s, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, "prepare a dag statement");
}

static const char *const dag_sql[] = {
        "SELECT height, sfront FROM dag_entries WHERE ns = ?1 AND id = ?2",
        "SELECT closure FROM dag_settings WHERE ns = ?1 AND id = ?2",
        ("INSERT INTO dag_entries(ns, id, height, seq, encoding, sfront) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        "INSERT INTO dag_settings(ns, id, closure) VALUES (?1, ?2, ?3)",
        "SELECT height, id FROM dag_state WHERE ns = ?1 AND key = ?2",
        "INSERT OR REPLACE INTO dag_state(ns, key, height, id, deleted, digest, size) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        "INSERT OR IGNORE INTO dag_tips(ns, id) VALUES (?1, ?2)",
        "DELETE FROM dag_tips WHERE ns = ?1 AND id = ?2",
        "SELECT length(value) FROM blobs WHERE digest = ?1",
};

#define N_STMTS (sizeof(dag_sql) / sizeof(dag_sql[0]))

/* t's statements, in the order of dag_sql. */
static void txn_stmts(dag_txn *t, sqlite3_stmt **sts[N_STMTS])
{
	sqlite3_stmt **all[] = {&t->get_entry,    &t->get_settings, &t->put_entry,
	                        &t->put_settings, &t->get_state,    &t->put_state,
	                        &t->add_tip,      &t->del_tip,      &t->blob_size};
	_Static_assert(sizeof(all) / sizeof(all[0]) == N_STMTS, "one statement per query");
	memcpy(sts, all, sizeof(all));
}

void dag_txn_free(dag_txn *t)
{
	sqlite3_stmt **sts[N_STMTS];
	txn_stmts(t, sts);
	for (size_t i = 0; i < N_STMTS; i++) {
		sqlite3_finalize(*sts[i]);
		*sts[i] = NULL;
	}
	sqlite3_finalize(t->put_value);
	t->put_value = NULL;
	sl_free(t->roles_front.ids);
	sl_free(t->role_pks);
	sl_free(t->role_values);
}

int dag_txn_prepare(dag_txn *t)
{
	sqlite3_stmt **sts[N_STMTS];
	txn_stmts(t, sts);
	for (size_t i = 0; i < N_STMTS; i++) {
		int rc = dag_prepare(t->s, sts[i], dag_sql[i]);
		if (rc != SL_OK)
			return rc;
	}
	/* dag_values came with format 4; a handle that only reads an older
	 * store stores no entry (verify replays into temporary tables). */
	if (t->s->format < 4)
		return SL_OK;
	return dag_prepare(t->s, &t->put_value,
	                   "INSERT OR IGNORE INTO dag_values(digest, ns) VALUES (?1, ?2)");
}

int dag_format_check(const sl_store *s)
{
	if (s->format < 3)
		return sl_error_set(SL_EINVAL,
		                    "store %s has format %d, without dag namespaces; open it for "
		                    "writing once to upgrade it (`sluice init -d %s`)",
		                    s->dir, s->format, s->dir);
	return SL_OK;
}

int dag_load(sl_store *s, const char *name, ns_row *row)
{
	int rc;
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_ns_load_any(s, name, row)) != SL_OK)
		return rc;
	if (row->kind != SL_NS_DAG)
		return sl_error_set(SL_EINVAL, "namespace '%s' is %s, not a dag namespace", name,
		                    sl_ns_kind_name(row->kind));
	return SL_OK;
}
/* --------------------------------------------------------- transactions */

int dag_txn_begin(dag_txn *t, sl_store *s, const char *ns, int write)
{
	int rc;
	memset(t, 0, sizeof(*t));
	t->s = s;
	if ((rc = dag_format_check(s)) != SL_OK)
		return rc;
	if ((rc = write ? store_begin_write(s) : store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = dag_load(s, ns, &t->row)) != SL_OK || (rc = dag_txn_prepare(t)) != SL_OK) {
		store_rollback_txn(s);
		dag_txn_free(t);
		return rc;
	}
	return SL_OK;
}

int dag_txn_end(dag_txn *t, int rc, int row_changed)
{
	if (rc == SL_OK && row_changed)
		rc = store_ns_write(t->s, &t->row);
	dag_txn_free(t);
	if (rc == SL_OK)
		rc = store_commit_txn(t->s);
	if (rc != SL_OK)
		store_rollback_txn(t->s);
	return rc;
}
int dag_read_query(sl_store *s, const char *ns, const char *sql, dag_query_fn fn, void *ctx)
{
	sqlite3_stmt *st = NULL;
	dag_txn t;
	int rc;

	if ((rc = dag_txn_begin(&t, s, ns, 0)) != SL_OK)
		return rc;
	if ((rc = dag_prepare(s, &st, sql)) == SL_OK) {
		sqlite3_bind_int64(st, 1, t.row.id);
		rc = fn(&t, st, ctx);
	}
	sqlite3_finalize(st);
	return dag_txn_end(&t, rc, 0);
}

/* ------------------------------------------------------------- format 3 */

static const char dag_schema[] =
        "CREATE TABLE dag_entries(ns INTEGER NOT NULL, id BLOB NOT NULL, height INTEGER NOT "
        "NULL, seq INTEGER NOT NULL, encoding BLOB NOT NULL, sfront BLOB NOT NULL);\n"
        "CREATE UNIQUE INDEX dag_entries_id ON dag_entries(ns, id);\n"
        "CREATE UNIQUE INDEX dag_entries_order ON dag_entries(ns, height, id);\n"
        "CREATE UNIQUE INDEX dag_entries_seq ON dag_entries(ns, seq);\n"
        "CREATE TABLE dag_settings(ns INTEGER NOT NULL, id BLOB NOT NULL, closure BLOB NOT "
        "NULL, PRIMARY KEY(ns, id)) WITHOUT ROWID;\n"
        "CREATE TABLE dag_state(ns INTEGER NOT NULL, key BLOB NOT NULL, height INTEGER NOT "
        "NULL, id BLOB NOT NULL, deleted INTEGER NOT NULL, digest BLOB NOT NULL, size "
        "INTEGER NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;\n"
        "CREATE TABLE dag_tips(ns INTEGER NOT NULL, id BLOB NOT NULL, PRIMARY KEY(ns, id)) "
        "WITHOUT ROWID;\n"
        "CREATE TABLE dag_peers(ns INTEGER NOT NULL, addr TEXT NOT NULL, node BLOB NOT NULL, "
        "pushed_seq INTEGER NOT NULL, last_ok INTEGER NOT NULL, last_try INTEGER NOT NULL, "
        "next_try INTEGER NOT NULL, failures INTEGER NOT NULL, last_error TEXT NOT NULL, "
        "PRIMARY KEY(ns, addr));\n"
        "CREATE TABLE dag_requests(id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, node BLOB NOT "
        "NULL, role INTEGER NOT NULL, addr TEXT NOT NULL, time INTEGER NOT NULL, state "
        "INTEGER NOT NULL, UNIQUE(ns, node));\n"
        "CREATE TABLE request_nonces(key BLOB NOT NULL, nonce BLOB NOT NULL, time INTEGER NOT "
        "NULL, PRIMARY KEY(key, nonce)) WITHOUT ROWID;\n"
        "CREATE INDEX request_nonces_time ON request_nonces(time);\n";

int store_dag_migrate(sl_store *s)
{
	int rc = sqlite3_exec(s->db, dag_schema, NULL, NULL, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, "create the dag tables");
}
