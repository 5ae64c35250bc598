/*
 * The PostgreSQL L3 tier: the engine's rows in one table (key text COLLATE
 * "C" PRIMARY KEY, value bytea, version bigint, deleted boolean, updated_at
 * timestamptz) and a row (tbl, batches) in sluice_engine_meta next to it that
 * counts committed batches: position() hashes it with the table's name and
 * oid, so it moves with every committed write.
 *
 * How a batch flows, in one round trip when nothing goes wrong:
 *
 *   BEGIN;
 *   COPY pg_temp.sluice_tier_stage FROM STDIN (FORMAT binary);   -- the rows
 *   SELECT s.idx, t.deleted FROM stage s JOIN t ... FOR UPDATE OF t;    -- old
 *       (left out when every row's maybe_live hint is 0: the engine's
 *       trusted filter says none of the keys has a live row, so was_live
 *       is 0 without reading; the guard below still holds)
 *   WITH up AS (INSERT INTO t SELECT ... FROM stage ON CONFLICT (key) DO
 *       UPDATE ... WHERE t.version < excluded.version RETURNING t.key)
 *   SELECT s.idx FROM up JOIN stage s ...;                          -- applied
 *   INSERT INTO sluice_engine_meta ... batches + 1; COMMIT
 *
 * sent as one simple-protocol query string, the rows streamed in COPY's
 * binary format when the server asks (no escaping; bytea travels raw). The
 * staging table is temporary, made once per connection (ON COMMIT DELETE
 * ROWS) by CREATE TABLE AS ... WITH NO DATA from the target, so its key has
 * the target's type and collation and the joins use the primary key. Per
 * batch: one COPY, one locking join, one INSERT .. ON CONFLICT.
 *
 * The version guard is the ON CONFLICT ... WHERE: a row not newer than the
 * stored one changes nothing and is not returned (applied 0). A delete is a
 * tombstone (deleted, value NULL, its version), so an older put cannot bring
 * the key back. The locking SELECT runs first and holds the rows, so
 * was_live is the state the upsert replaced; is_live the new one if applied.
 *
 * A data error (SQLSTATE class 22, 23 or 54: a CHECK the user added, a key
 * that is not UTF-8, a key too long for the index) aborts the transaction.
 * The batch is then redone in one transaction, constraints IMMEDIATE, each
 * row COPYed and upserted under its own SAVEPOINT (a round trip per row); a
 * refused row is rolled back to its savepoint and gets rc SL_EINVAL and
 * PostgreSQL's message, the others commit.
 *
 * Retrying a batch is harmless. When the connection breaks or times out
 * around COMMIT we cannot know whether it committed; write returns an error
 * and the engine sends the same batch again. If the first attempt committed,
 * every row of the retry has a version equal to the stored one, so the guard
 * writes nothing and the table is as one write left it (only the batches
 * count moves again, which just moves the position). If not, the retry is
 * the first write.
 *
 * Deadlines: every call has one (connect/pg_conn.c); a dropped connection,
 * or one the server closed while idle (a restart), is replaced at the start
 * of the next call, so the tier comes back by itself with PostgreSQL.
 *
 * Threads: the drain connection serves write, scan_live, scan_items and
 * position, the reader connection get; each has a mutex. scan_items
 * (the diff between engines) runs on a tier of its own, so its pages do
 * not hold up the drain.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "connect/pg_conn.h"
#include "connect/pg_util.h"
#include "engine/tier.h"

#define DEFAULT_TIMEOUT_MS 10000u
#define STAGE              "pg_temp.sluice_tier_stage"
#define FIELD_MAX          0x3fffffffu /* PostgreSQL's limit for one value (1 GiB - 1) */
#define SCAN_PAGE          10000u      /* rows per query in scan_live: bounds a result */
#define IDENT_MAX          63

/* After the COPY: lock and read the old rows, upsert guarded by version,
 * list the applied rows. Arguments: table, filter, table, filter. */
#define COPY_STAGE_SQL                                                                             \
	"COPY " STAGE " (idx, key, value, version, deleted) FROM STDIN (FORMAT binary);"
#define UPSERT_SQL                                                                                 \
	COPY_STAGE_SQL                                                                             \
	" SELECT s.idx, t.deleted FROM " STAGE " s JOIN %s t ON t.key = s.key%s"                   \
	" ORDER BY s.key FOR UPDATE OF t;" GUARDED_UPSERT_SQL
/* A batch of keys the engine knows have no live row (its trusted filter
 * said so): nothing to read first, was_live is 0. Arguments: table, filter. */
#define UPSERT_NEW_SQL COPY_STAGE_SQL GUARDED_UPSERT_SQL
#define GUARDED_UPSERT_SQL                                                                         \
	" WITH up AS (INSERT INTO %s AS t (key, value, version, deleted, updated_at)"              \
	" SELECT s.key, s.value, s.version, s.deleted, now() FROM " STAGE " s%s"                   \
	" ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,"     \
	" deleted = excluded.deleted, updated_at = excluded.updated_at"                            \
	" WHERE t.version < excluded.version RETURNING t.key)"                                     \
	" SELECT s.idx FROM up JOIN " STAGE " s ON s.key = up.key"

/* ------------------------------------------------------------------ tier */

enum {
	SQL_STAGE,
	SQL_BATCH,
	SQL_BATCH_NEW,
	SQL_COMMIT,
	SQL_GET,
	SQL_SCAN,
	SQL_SCAN_AFTER,
	SQL_ITEMS,
	SQL_ITEMS_AFTER,
	SQL_POSITION,
	SQL_N
};

typedef struct pg_tier {
	unsigned timeout_ms;
	char *url;
	char *name;        /* as configured: "table" or "schema.table" */
	char *table;       /* quoted */
	char *meta;        /* quoted sluice_engine_meta, in the table's schema */
	char *name_lit;    /* name as a SQL literal (the meta row's key) */
	char *table_lit;   /* quoted table as a literal, for to_regclass */
	char *sql[SQL_N];  /* the statements, built once */
	sl_pg_conn drain;  /* write, scan_live, position */
	sl_pg_conn reader; /* get */
} pg_tier;

/* s quoted as an identifier or a literal, in a string of ours. */
static char *quote(PGconn *conn, const char *s, size_t len, int literal)
{
	char *quoted = literal ? PQescapeLiteral(conn, s, len) : PQescapeIdentifier(conn, s, len);
	char *out;
	if (quoted == NULL) {
		sl_error_set(SL_ENOMEM, "PostgreSQL L3: cannot quote '%.*s'", (int)len, s);
		return NULL;
	}
	out = sl_strdup(quoted);
	PQfreemem(quoted);
	return out;
}

static int ident_ok(const char *s, size_t len)
{
	if (len == 0 || len > IDENT_MAX || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* A plain identifier or schema.identifier, and not one of our own tables. */
static int check_name(const char *name)
{
	const char *dot = name ? strchr(name, '.') : NULL;
	const char *base = dot ? dot + 1 : name;
	if (name == NULL || (dot && !ident_ok(name, (size_t)(dot - name))) ||
	    !ident_ok(base, strlen(base)))
		return sl_error_set(
		        SL_EINVAL,
		        "PostgreSQL L3: bad table name '%s' (want a plain SQL identifier"
		        " or schema.table: letters, digits, _, at most %d each)",
		        name ? name : "(null)", IDENT_MAX);
	if (strcmp(base, "sluice_engine_meta") == 0 || strcmp(base, "sluice_tier_stage") == 0)
		return sl_error_set(SL_EINVAL, "PostgreSQL L3: table name '%s' is reserved", name);
	return SL_OK;
}

/* The quoted names and every statement, built once. */
static int build_sql(pg_tier *t)
{
	PGconn *conn = t->drain.conn;
	const char *dot = strchr(t->name, '.'), *base = dot ? dot + 1 : t->name;
	char *schema = dot ? quote(conn, t->name, (size_t)(dot - t->name), 0) : sl_strdup("");
	char *quoted = quote(conn, base, strlen(base), 0);
	int rc = SL_ENOMEM;

	if (schema == NULL || quoted == NULL)
		goto cleanup;
	t->table = sl_strdup_printf("%s%s%s", schema, dot ? "." : "", quoted);
	t->meta = sl_strdup_printf("%s%ssluice_engine_meta", schema, dot ? "." : "");
	t->name_lit = quote(conn, t->name, strlen(t->name), 1);
	if (t->table == NULL || t->meta == NULL || t->name_lit == NULL ||
	    (t->table_lit = quote(conn, t->table, strlen(t->table), 1)) == NULL)
		goto cleanup;
	t->sql[SQL_STAGE] =
	        sl_strdup_printf("CREATE TEMP TABLE IF NOT EXISTS sluice_tier_stage ON COMMIT"
	                         " DELETE ROWS AS SELECT 0::int4 AS idx, key, value, version,"
	                         " deleted FROM %s WITH NO DATA",
	                         t->table);
	t->sql[SQL_COMMIT] =
	        sl_strdup_printf("INSERT INTO %s AS m (tbl, batches) VALUES (%s, 1) ON"
	                         " CONFLICT (tbl) DO UPDATE SET batches = m.batches + 1;"
	                         " COMMIT",
	                         t->meta, t->name_lit);
	t->sql[SQL_BATCH] = sl_strdup_printf("BEGIN; " UPSERT_SQL "; %s", t->table, "", t->table,
	                                     "", t->sql[SQL_COMMIT] ? t->sql[SQL_COMMIT] : "");
	t->sql[SQL_BATCH_NEW] = sl_strdup_printf("BEGIN; " UPSERT_NEW_SQL "; %s", t->table, "",
	                                         t->sql[SQL_COMMIT] ? t->sql[SQL_COMMIT] : "");
	t->sql[SQL_GET] =
	        sl_strdup_printf("SELECT version, deleted, value FROM %s WHERE key = $1", t->table);
	/* bytewise order whatever the column's collation; on our own table (key
	 * COLLATE "C") it is the primary key's order, an index scan */
	t->sql[SQL_SCAN] =
	        sl_strdup_printf("SELECT key FROM %s WHERE NOT deleted ORDER BY key COLLATE"
	                         " \"C\" LIMIT $1",
	                         t->table);
	t->sql[SQL_SCAN_AFTER] =
	        sl_strdup_printf("SELECT key FROM %s WHERE NOT deleted AND key COLLATE"
	                         " \"C\" > $1 ORDER BY key COLLATE \"C\" LIMIT $2",
	                         t->table);
	/* the diff between engines: the digest is computed by PostgreSQL, so
	 * a page carries 32 bytes a row whatever the values' size */
	t->sql[SQL_ITEMS] = sl_strdup_printf("SELECT key, version, sha256(value) FROM %s WHERE NOT"
	                                     " deleted ORDER BY key COLLATE \"C\" LIMIT $1",
	                                     t->table);
	t->sql[SQL_ITEMS_AFTER] =
	        sl_strdup_printf("SELECT key, version, sha256(value) FROM %s WHERE NOT deleted AND"
	                         " key COLLATE \"C\" > $1 ORDER BY key COLLATE \"C\" LIMIT $2",
	                         t->table);
	t->sql[SQL_POSITION] = sl_strdup_printf("SELECT (SELECT batches FROM %s WHERE tbl = %s),"
	                                        " to_regclass(%s)::oid",
	                                        t->meta, t->name_lit, t->table_lit);
	rc = SL_OK;
	for (int i = 0; i < SQL_N; i++)
		if (t->sql[i] == NULL)
			rc = SL_ENOMEM;
cleanup:
	sl_free(schema);
	sl_free(quoted);
	return rc;
}

/* Creates the table and the meta row when missing, then checks that the
 * table has what we need, naming what is missing. */
static int prepare_table(pg_tier *t)
{
	sl_pg_call q;
	char *sql = sl_strdup_printf(
	        "CREATE TABLE IF NOT EXISTS %s (key text COLLATE \"C\" PRIMARY KEY, value bytea,"
	        " version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false,"
	        " updated_at timestamptz NOT NULL DEFAULT now());"
	        " CREATE TABLE IF NOT EXISTS %s (tbl text PRIMARY KEY, batches bigint NOT NULL);"
	        " INSERT INTO %s (tbl, batches) VALUES (%s, 0) ON CONFLICT DO NOTHING;"
	        " SELECT CASE WHEN a.attname IS NULL THEN format('has no column \"%%s\"', w.col)"
	        " ELSE format('has column \"%%s\" of type %%s, not %%s', w.col,"
	        " format_type(a.atttypid, NULL), w.types) END"
	        " FROM (VALUES ('key', 'text or character varying'), ('value', 'bytea'),"
	        " ('version', 'bigint'), ('deleted', 'boolean'), ('updated_at', '')) w (col, types)"
	        " LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(%s) AND a.attname = w.col"
	        " AND a.attnum > 0 AND NOT a.attisdropped"
	        " WHERE a.attname IS NULL OR (w.types <> '' AND format_type(a.atttypid, NULL)"
	        " <> ALL (string_to_array(w.types, ' or ')))"
	        " UNION ALL SELECT 'has no primary key or unique index on key' WHERE NOT EXISTS"
	        " (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
	        " AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(%s) AND i.indisunique"
	        " AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = 'key') LIMIT 1",
	        t->table, t->meta, t->meta, t->name_lit, t->table_lit, t->table_lit);
	int rc;

	if (sql == NULL)
		return SL_ENOMEM;
	sl_pg_call_init(&q, "open", sql);
	if ((rc = sl_pg_run(&t->drain, &q)) == SL_OK && q.n_res != 4)
		rc = sl_error_set(SL_EINTERNAL, "PostgreSQL L3 open: %d results", q.n_res);
	else if (rc == SL_OK && PQntuples(q.res[3]) > 0)
		rc = sl_error_set(
		        SL_EINVAL,
		        "PostgreSQL L3: table %s %s (it needs key text, value bytea, version"
		        " bigint, deleted boolean, updated_at timestamptz)",
		        t->name, PQgetvalue(q.res[3], 0, 0));
	sl_pg_call_clear(&q);
	sl_free(sql);
	return rc;
}

/* ----------------------------------------------------------------- write */

typedef struct copy_src {
	const sl_tier_row *rows;
	size_t from, to;
} copy_src;

/* Append to the chunk, sending it when full; a large field goes out alone. */
/* The rows in COPY's binary format: per row the field count and each field
 * as a 32-bit length (-1: NULL) and its bytes. */
static int copy_rows(sl_pg_conn *c, void *ctx)
{
	const copy_src *src = ctx;
	sl_pg_copy_writer w;
	int rc = sl_pg_copy_start(&w, c);

	for (size_t i = src->from; i < src->to && rc == SL_OK; i++) {
		const sl_tier_row *row = &src->rows[i];
		uint8_t head[14] = {0, 5, 0, 0, 0, 4}, len[4], tail[17];
		if (row->rc != SL_OK)
			continue;
		sl_be32_put(head + 6, (uint32_t)i);
		sl_be32_put(head + 10, (uint32_t)row->key_len);
		sl_be32_put(len, row->deleted ? 0xffffffffu : (uint32_t)row->value_len);
		sl_be32_put(tail, 8);
		sl_be64_put(tail + 4, row->version);
		sl_be32_put(tail + 12, 1);
		tail[16] = row->deleted ? 1 : 0;
		if ((rc = sl_pg_copy_put(&w, head, sizeof(head))) == SL_OK &&
		    (rc = sl_pg_copy_put(&w, row->key, row->key_len)) == SL_OK &&
		    (rc = sl_pg_copy_put(&w, len, sizeof(len))) == SL_OK && !row->deleted)
			rc = sl_pg_copy_put(&w, row->value, row->value_len);
		if (rc == SL_OK)
			rc = sl_pg_copy_put(&w, tail, sizeof(tail));
	}
	return sl_pg_copy_finish(&w, rc, "write");
}

/* Row flags from the locking SELECT (old) and the upsert (applied). */
static int mark_rows(sl_tier_row *rows, size_t n, const PGresult *old, const PGresult *up)
{
	int n_old = old ? PQntuples(old) : 0;
	for (int i = 0; i < n_old + PQntuples(up); i++) {
		const PGresult *res = i < n_old ? old : up;
		int at = i < n_old ? i : i - n_old;
		unsigned long idx = strtoul(PQgetvalue(res, at, 0), NULL, 10);
		if (idx >= n)
			return sl_error_set(SL_EINTERNAL, "PostgreSQL L3 write: row %lu of %zu",
			                    idx, n);
		if (res == old)
			rows[idx].was_live = strcmp(PQgetvalue(res, at, 1), "f") == 0;
		else
			rows[idx].applied = 1;
	}
	return SL_OK;
}

static int expect_results(const sl_pg_call *q, int n_res, int commit)
{
	if (q->n_res == n_res && (!commit || strcmp(PQcmdStatus(q->res[n_res - 1]), "COMMIT") == 0))
		return SL_OK;
	return sl_error_set(SL_EINTERNAL, "PostgreSQL L3 write: %d results, not %d%s", q->n_res,
	                    n_res, commit ? " ending in COMMIT" : "");
}

/* One exchange that COPYs rows [from, to) and upserts them; its results are
 * [BEGIN or SAVEPOINT, COPY, old rows (when with_old), applied rows, ...]
 * (n_res in all), ending in COMMIT when commit. The error, if any, stays
 * in q. */
static int upsert(pg_tier *t, sl_tier_row *rows, size_t n, size_t from, size_t to, const char *sql,
                  int n_res, int commit, int with_old, sl_pg_call *q)
{
	copy_src src = {rows, from, to};
	int rc;

	sl_pg_call_init(q, "write", sql);
	q->copy = copy_rows;
	q->copy_ctx = &src;
	if ((rc = sl_pg_run(&t->drain, q)) == SL_OK &&
	    (rc = expect_results(q, n_res, commit)) == SL_OK)
		rc = with_old ? mark_rows(rows, n, q->res[2], q->res[3])
		              : mark_rows(rows, n, NULL, q->res[2]);
	sl_pg_call_clear(q);
	return rc;
}

/* After a data error: one savepoint per row, see the top of the file. */
static int write_rows(pg_tier *t, sl_tier_row *rows, size_t n)
{
	char *sql = NULL, filter[48];
	sl_pg_call q;
	int rc = sl_pg_run_simple(&t->drain, "write", "BEGIN; SET CONSTRAINTS ALL IMMEDIATE");

	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		if (rows[i].rc != SL_OK)
			continue;
		rows[i].applied = rows[i].was_live = 0;
		snprintf(filter, sizeof(filter), " WHERE s.idx = %zu", i);
		sl_free(sql);
		sql = sl_strdup_printf("SAVEPOINT sluice_row; " UPSERT_SQL
		                       "; RELEASE SAVEPOINT sluice_row",
		                       t->table, filter, t->table, filter);
		if (sql == NULL)
			rc = SL_ENOMEM;
		else if ((rc = upsert(t, rows, n, i, i + 1, sql, 5, 0, 1, &q)) != SL_OK &&
		         sl_pg_is_data_error(q.sqlstate) && t->drain.conn != NULL) {
			rows[i].rc = SL_EINVAL;
			snprintf(rows[i].error, sizeof(rows[i].error), "%s (SQLSTATE %s)", q.detail,
			         q.sqlstate);
			rc = sl_pg_run_simple(
			        &t->drain, "write",
			        "ROLLBACK TO SAVEPOINT sluice_row; RELEASE SAVEPOINT sluice_row");
		}
	}
	sl_free(sql);
	sl_pg_call_init(&q, "write", t->sql[SQL_COMMIT]);
	if (rc == SL_OK && (rc = sl_pg_run(&t->drain, &q)) == SL_OK)
		rc = expect_results(&q, 2, 1);
	sl_pg_call_clear(&q);
	return rc;
}

static int tier_write(void *impl, sl_tier_row *rows, size_t n)
{
	pg_tier *t = impl;
	size_t n_sent = 0;
	sl_pg_call q;
	int rc;

	if (n > INT32_MAX)
		return sl_error_set(SL_ETOOLARGE, "PostgreSQL L3 write: %zu rows in one batch", n);
	for (size_t i = 0; i < n; i++) {
		sl_tier_row *row = &rows[i];
		int large =
		        row->key_len > FIELD_MAX || (!row->deleted && row->value_len > FIELD_MAX);
		int bad = row->key == NULL || row->version > (uint64_t)INT64_MAX ||
		          (!row->deleted && row->value == NULL && row->value_len > 0);
		row->applied = row->was_live = row->is_live = 0;
		row->rc = large ? SL_ETOOLARGE : bad ? SL_EINVAL : SL_OK;
		snprintf(row->error, sizeof(row->error), "%s",
		         large ? "key or value larger than PostgreSQL takes"
		         : bad ? "bad row (key, value or version)"
		               : "");
		n_sent += row->rc == SL_OK;
	}
	if (n_sent == 0)
		return SL_OK;
	int all_new = 1;
	for (size_t i = 0; i < n; i++)
		all_new &= rows[i].rc != SL_OK || !rows[i].maybe_live;
	pthread_mutex_lock(&t->drain.lock);
	/* the fast path: BEGIN, COPY, old rows (unless all are new), applied
	 * rows, meta, COMMIT */
	if ((rc = sl_pg_conn_ready(&t->drain)) == SL_OK &&
	    (rc = all_new ? upsert(t, rows, n, 0, n, t->sql[SQL_BATCH_NEW], 5, 1, 0, &q)
	                  : upsert(t, rows, n, 0, n, t->sql[SQL_BATCH], 6, 1, 1, &q)) != SL_OK) {
		sl_pg_rollback(&t->drain);
		if (sl_pg_is_data_error(q.sqlstate) && t->drain.conn != NULL &&
		    (rc = write_rows(t, rows, n)) != SL_OK)
			sl_pg_rollback(&t->drain);
	}
	pthread_mutex_unlock(&t->drain.lock);
	for (size_t i = 0; i < n && rc == SL_OK; i++)
		rows[i].is_live = rows[i].applied ? !rows[i].deleted : rows[i].was_live;
	return rc;
}

/* ------------------------------------------------------------------ read */

static int tier_get(void *impl, const char *key, size_t key_len, sl_buf *value, uint64_t *version,
                    int *deleted)
{
	pg_tier *t = impl;
	const char *values[1] = {key};
	int lengths[1] = {(int)(key_len & FIELD_MAX)}, formats[1] = {1};
	const PGresult *res;
	sl_pg_call q;
	int rc;

	if (key == NULL || key_len > FIELD_MAX)
		return sl_error_set(SL_EINVAL, "PostgreSQL L3 get: bad key");
	sl_pg_call_init(&q, "get", t->sql[SQL_GET]);
	sl_pg_call_params(&q, 1, values, lengths, formats);
	if ((rc = sl_pg_run_locked(&t->reader, &q)) != SL_OK)
		return rc;
	res = q.res[0];
	if (PQntuples(res) == 0) {
		rc = sl_error_set(SL_ENOTFOUND, "PostgreSQL L3 get: no row for the key");
	} else if (PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) > 1) {
		rc = sl_error_set(SL_ECORRUPT, "PostgreSQL L3 get: unexpected column sizes");
	} else {
		int is_deleted = !PQgetisnull(res, 0, 1) && PQgetvalue(res, 0, 1)[0] != 0;
		if (value != NULL && !is_deleted)
			rc = sl_buf_set(value, PQgetvalue(res, 0, 2),
			                (size_t)PQgetlength(res, 0, 2));
		else if (value != NULL)
			sl_buf_reset(value);
		if (rc == SL_OK) {
			*version = sl_be64_get((const uint8_t *)PQgetvalue(res, 0, 0));
			*deleted = is_deleted;
		}
	}
	sl_pg_call_clear(&q);
	return rc;
}

/* One row of a scan page: i of res. */
typedef int (*page_row_fn)(void *ctx, PGresult *res, int i);

/* Keyset paging over the live rows after `after`: pages of at most
 * SCAN_PAGE rows, so a result stays bounded; the first query of a scan
 * from the start has no key to follow. */
static int scan_pages(pg_tier *t, int sql_first, int sql_after, const char *after, size_t after_len,
                      size_t limit, page_row_fn row, void *ctx, size_t *n)
{
	sl_buf last = SL_BUF_INIT(FIELD_MAX);
	size_t done = 0, rows;
	int rc = SL_OK, skip = after == NULL;

	if (after != NULL && (rc = sl_buf_set(&last, after, after_len)) != SL_OK)
		return rc;
	for (; rc == SL_OK && done < limit; done += rows) {
		size_t page = limit - done < SCAN_PAGE ? limit - done : SCAN_PAGE;
		char page_s[24];
		const char *values[2] = {last.data ? (const char *)last.data : "", page_s};
		int lengths[2] = {(int)last.len, 0}, formats[2] = {1, 0};
		sl_pg_call q;

		snprintf(page_s, sizeof(page_s), "%zu", page);
		sl_pg_call_init(&q, "scan", t->sql[skip ? sql_first : sql_after]);
		sl_pg_call_params(&q, 2 - skip, values + skip, lengths + skip, formats + skip);
		if ((rc = sl_pg_run_locked(&t->drain, &q)) != SL_OK)
			break;
		rows = (size_t)PQntuples(q.res[0]);
		for (size_t i = 0; i < rows && rc == SL_OK; i++)
			rc = row(ctx, q.res[0], (int)i);
		if (rc == SL_OK && rows > 0)
			rc = sl_buf_set(&last, PQgetvalue(q.res[0], (int)rows - 1, 0),
			                (size_t)PQgetlength(q.res[0], (int)rows - 1, 0));
		skip = 0;
		sl_pg_call_clear(&q);
		if (rows < page) {
			done += rows;
			break;
		}
	}
	sl_buf_free(&last);
	if (rc == SL_OK)
		*n = done;
	return rc;
}

typedef struct scan_cb {
	sl_tier_key_fn key;
	sl_tier_item_fn item;
	void *ctx;
} scan_cb;

static int live_row(void *ctx, PGresult *res, int i)
{
	scan_cb *c = ctx;
	return c->key(c->ctx, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
}

static int item_row(void *ctx, PGresult *res, int i)
{
	scan_cb *c = ctx;
	if (PQgetlength(res, i, 1) != 8 || PQgetlength(res, i, 2) != 32)
		return sl_error_set(SL_ECORRUPT, "PostgreSQL L3 scan: unexpected column sizes");
	return c->item(c->ctx, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0),
	               sl_be64_get((const uint8_t *)PQgetvalue(res, i, 1)),
	               (const uint8_t *)PQgetvalue(res, i, 2));
}

static int tier_scan_live(void *impl, const char *after, size_t after_len, size_t limit,
                          sl_tier_key_fn cb, void *ctx, size_t *n)
{
	scan_cb c = {cb, NULL, ctx};
	return scan_pages(impl, SQL_SCAN, SQL_SCAN_AFTER, after, after_len, limit, live_row, &c, n);
}

static int tier_scan_items(void *impl, const char *after, size_t after_len, size_t limit,
                           sl_tier_item_fn cb, void *ctx, size_t *n)
{
	scan_cb c = {NULL, cb, ctx};
	return scan_pages(impl, SQL_ITEMS, SQL_ITEMS_AFTER, after, after_len, limit, item_row, &c,
	                  n);
}

static int tier_position(void *impl, sl_digest *out)
{
	pg_tier *t = impl;
	char text[SL_ERROR_MSG_MAX];
	sl_pg_call q;
	int rc;

	sl_pg_call_init(&q, "position", t->sql[SQL_POSITION]);
	if ((rc = sl_pg_run_locked(&t->drain, &q)) != SL_OK)
		return rc;
	/* a missing meta row or table hashes as "-"; a table dropped and made
	 * again has another oid */
	snprintf(text, sizeof(text), "sluice L3 postgresql\n%s\n%s\n%s", t->name,
	         PQgetisnull(q.res[0], 0, 0) ? "-" : PQgetvalue(q.res[0], 0, 0),
	         PQgetisnull(q.res[0], 0, 1) ? "-" : PQgetvalue(q.res[0], 0, 1));
	sl_pg_call_clear(&q);
	sl_sha256(out, text, strlen(text));
	return SL_OK;
}

/* ------------------------------------------------------------ open/close */

static void tier_close(void *impl)
{
	pg_tier *t = impl;
	if (t == NULL)
		return;
	sl_pg_conn_drop(&t->drain);
	sl_pg_conn_drop(&t->reader);
	pthread_mutex_destroy(&t->drain.lock);
	pthread_mutex_destroy(&t->reader.lock);
	for (int i = 0; i < SQL_N; i++)
		sl_free(t->sql[i]);
	sl_free(t->url);
	sl_free(t->name);
	sl_free(t->table);
	sl_free(t->meta);
	sl_free(t->name_lit);
	sl_free(t->table_lit);
	sl_free(t);
}

static const sl_tier_ops pg_ops = {.name = "postgresql",
                                   .write = tier_write,
                                   .get = tier_get,
                                   .scan_live = tier_scan_live,
                                   .scan_items = tier_scan_items,
                                   .position = tier_position,
                                   .close = tier_close};

int sl_tier_pg_open(sl_tier *out, const char *url, const char *table, unsigned timeout_ms)
{
	pg_tier *t;
	int rc;

	if (out == NULL || url == NULL || url[0] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL L3: no connection URL");
	if ((rc = check_name(table)) != SL_OK)
		return rc;
	if ((t = sl_calloc(1, sizeof(*t))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&t->drain.lock, NULL);
	pthread_mutex_init(&t->reader.lock, NULL);
	t->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	if ((t->url = sl_strdup(url)) == NULL || (t->name = sl_strdup(table)) == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	t->drain.url = t->reader.url = t->url;
	t->drain.timeout_ms = t->reader.timeout_ms = t->timeout_ms;
	t->drain.label = t->reader.label = "PostgreSQL L3";
	t->reader.setup = "SET default_transaction_read_only = on";
	if ((rc = sl_pg_conn_ready(&t->drain)) != SL_OK || (rc = build_sql(t)) != SL_OK ||
	    (rc = prepare_table(t)) != SL_OK ||
	    (rc = sl_pg_run_simple(&t->drain, "open", t->sql[SQL_STAGE])) != SL_OK ||
	    (rc = sl_pg_conn_ready(&t->reader)) != SL_OK)
		goto fail;
	/* from now on every new drain connection makes its staging table */
	t->drain.setup = t->sql[SQL_STAGE];
	out->ops = &pg_ops;
	out->impl = t;
	return SL_OK;
fail:
	sl_error_wrap("open PostgreSQL table %s", table);
	tier_close(t);
	return rc;
}
