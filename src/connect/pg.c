/*
 * The PostgreSQL source (libpq); its connections are pg_link.c, the
 * direct-mode fetcher pg_fetch.c.
 *
 * The source lists recall-synchronizer's object_index in strict
 * (created_at, id) order with keyset pages,
 *
 *   WHERE (created_at, id) > ($cursor_ts, $cursor_id) [AND created_at > $since]
 *   ORDER BY created_at, id LIMIT $n
 *
 * selecting metadata, and in direct mode the bytes of objects of at most
 * INLINE_MAX (larger ones are read in parts by the fetcher, with
 * substring, so a page never holds a large object). created_at travels as
 * to_char(... AT TIME ZONE 'UTC') with all six fractional digits and "+00",
 * which timestamptz input reads back to the same microsecond, so a cursor
 * made from a row lands exactly on it; the id tie-break means rows that
 * share a created_at are neither lost nor repeated at a page boundary.
 *
 * The commit horizon. A row becomes visible when its transaction commits,
 * not when it was written, so a long transaction can commit a row whose
 * created_at lies before a cursor we already moved past. Before each page
 * we read, in its own statement (so before the page's snapshot is taken):
 *
 *   oldest = min(xact_start) over the other client backends of this
 *            database with an open transaction (our own connections,
 *            application_name 'sluice', are left out)
 *   cap    = statement_timestamp() - HORIZON_MARGIN_MS
 *   horizon = least(oldest, cap)
 *
 * and return only rows with created_at < horizon. PostgreSQL's now() is
 * the start time of the transaction, so a row written with created_at
 * DEFAULT now() by a transaction that is open when we look has created_at
 * >= its xact_start >= oldest, and is held back until a later call, after
 * it commits. A transaction that starts after we looked has a start time
 * later than our statement's, so the cap holds its rows back too (without
 * the cap, a transaction starting between the horizon query and the page's
 * snapshot would escape both). The margin covers the few microseconds in
 * which a starting backend has taken its timestamp but not yet published
 * xact_start; it delays every row by that much. The horizon must be read
 * before the page's snapshot: a transaction that commits between a
 * snapshot and a later read of pg_stat_activity would be seen by neither.
 * When the horizon comes from a backend and cuts the page short, *held_by
 * is that backend's pid.
 *
 * Limits: rows whose created_at is set explicitly by the application (to
 * an earlier time than its transaction start, or from another clock) are
 * not covered; nor are prepared (two-phase) transactions, which have no
 * backend. A role without pg_read_all_stats sees NULL xact_start for other
 * roles' sessions; we notice such a session by a NULL xact_start with a
 * non-NULL backend_xid (its backend_type is hidden too, so a NULL one counts
 * as a client) and log a warning once, but cannot hold rows for it
 * (nor for a read-only transaction of another role that has not yet
 * written). Rows whose created_at is NULL are never listed.
 *
 * Optional columns. bucket_name (S3 mode: the row's source bucket),
 * content_hash (the object's SHA-256, when it is 64 hex digits) and
 * size_bytes (the object's size; in S3 mode also the only size we know)
 * are looked up in the catalog at open, like the data column's type, and
 * selected only when the table has them: recall-synchronizer's table has
 * all three, older or hand-made tables may have none, and an absent column
 * reads as NULL in every row. The pipeline checks the bytes it copies
 * against a recorded hash and size (sl_row).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "connect/pg_link.h"
#include "connect/pg_row.h"
#include "connect/pg_util.h"
#include "sluice/connect.h"

/* See the header comment: how far behind our statement's start the
 * horizon stays even with no open transaction. */
#define HORIZON_MARGIN_MS 100
#define PAGE_MAX          100000u
#define OBJECT_KEY_MAX    4096u

#define TS_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"

/* ---------------------------------------------------------------- source */

struct sl_pg_source {
	pg_link link;
	int s3_mode;
	char *table;      /* quoted, possibly schema-qualified */
	char *created_at; /* quoted column names */
	char *id;
	char *columns;       /* the select list of a row, see ROW_*, for pages in cursor order */
	char *columns_by_id; /* the same for pages in id order (scan) */
	char *table_name;    /* as configured, for messages */
	int warned_hidden;
};

/* Columns of the select list built by build_columns. */
enum {
	ROW_ID,
	ROW_CREATED_AT,
	ROW_COMPETITION,
	ROW_AGENT,
	ROW_DATA_TYPE,
	ROW_OBJECT_KEY,
	ROW_SIZE,
	ROW_INLINE,        /* direct mode: the bytes of a small object, else NULL */
	ROW_RECORDED_SIZE, /* size_bytes, NULL when the table has no such column */
	ROW_BUCKET,        /* S3 mode: bucket_name, else NULL */
	ROW_CONTENT_HASH,  /* content_hash as text, NULL when the table has none */
	ROW_HORIZON        /* next()'s page query only: created_at < horizon */
};

/* Objects up to INLINE_MAX come with their row (one round trip per page
 * instead of one per object), until the page holds INLINE_PAGE_BYTES of
 * them in its order; the rest of the page is left to the fetchers. So a
 * page's bytes are bounded whatever the batch size (up to PAGE_MAX rows). */
#define INLINE_MAX        16384
#define INLINE_PAGE_BYTES (16 << 20)

void sl_pg_config_init(sl_pg_config *c)
{
	memset(c, 0, sizeof(*c));
	c->table = "object_index";
	c->col_id = "id";
	c->col_object_key = "object_key";
	c->col_competition_id = "competition_id";
	c->col_agent_id = "agent_id";
	c->col_data_type = "data_type";
	c->col_data = "data";
	c->col_size_bytes = "size_bytes";
	c->col_created_at = "created_at";
	c->col_bucket_name = "bucket_name";
	c->col_content_hash = "content_hash";
	c->timeout_ms = PG_DEFAULT_TIMEOUT_MS;
	c->reconnect_ms = PG_DEFAULT_RECONNECT_MS;
}

/* An optional column as "<quoted>::<cast>" when the table has it, else
 * "NULL::<cast>", appended to b. */
static int append_optional(sl_pg_source *s, sl_buf *b, const char *column, const char *cast)
{
	char type[64], category;
	int present, rc;

	if ((rc = pg_column_type(&s->link, s->table_name, s->table, column, &present, type,
	                         &category)) != SL_OK)
		return rc;
	if (!present)
		return sl_buf_printf(b, "NULL::%s", cast);
	if ((rc = pg_append_ident(b, s->link.conn, column, strlen(column))) != SL_OK)
		return rc;
	return sl_buf_printf(b, "::%s", cast);
}

/* The select list of a row into *out; the inline bytes' running sum
 * follows order_by, the order of the pages it serves. */
static int build_columns(sl_pg_source *s, const sl_pg_config *cfg, const char *order_by, char **out)
{
	PGconn *conn = s->link.conn;
	sl_buf b = SL_BUF_INIT(PG_SQL_MAX), size = SL_BUF_INIT(PG_SQL_MAX);
	char *q[5] = {NULL};
	const char *names[5] = {
	        pg_name_or(cfg->col_competition_id, "competition_id"),
	        pg_name_or(cfg->col_agent_id, "agent_id"),
	        pg_name_or(cfg->col_data_type, "data_type"),
	        pg_name_or(cfg->col_object_key, "object_key"),
	        pg_name_or(cfg->col_data, "data"),
	};
	const char *size_column = pg_name_or(cfg->col_size_bytes, "size_bytes");
	int rc = SL_OK;

	for (size_t i = 0; i < 5; i++)
		if ((rc = pg_quote_ident(&q[i], conn, names[i])) != SL_OK)
			goto cleanup;
	if ((rc = append_optional(s, &size, size_column, "bigint")) != SL_OK)
		goto cleanup;
	rc = sl_buf_printf(&b, "%s::text, " TS_SQL("%s") ", %s::text, %s::text, %s::text, ", s->id,
	                   s->created_at, q[0], q[1], q[2]);
	if (rc == SL_OK && s->s3_mode) {
		rc = sl_buf_printf(&b, "%s::text, coalesce(%s, -1), NULL::bytea", q[3],
		                   (const char *)size.data);
	} else if (rc == SL_OK) {
		sl_buf data = SL_BUF_INIT(PG_SQL_MAX);
		rc = pg_data_expression(&s->link, s->table_name, &data, s->table, names[4]);
		const char *d = (const char *)data.data;
		/* the running sum follows the page's ORDER BY (next()) */
		if (rc == SL_OK)
			rc = sl_buf_printf(
			        &b,
			        "NULL::text, coalesce(octet_length(%s)::bigint, -1),"
			        " CASE WHEN octet_length(%s) <= %d AND sum(CASE WHEN "
			        "octet_length(%s) <= %d"
			        " THEN octet_length(%s) ELSE 0 END) OVER (ORDER BY %s) <= %d"
			        " THEN %s END",
			        q[4], d, INLINE_MAX, d, INLINE_MAX, d, order_by, INLINE_PAGE_BYTES,
			        d);
		sl_buf_free(&data);
	}
	/* ROW_RECORDED_SIZE, ROW_BUCKET, ROW_CONTENT_HASH */
	if (rc != SL_OK || (rc = sl_buf_printf(&b, ", %s, ", (const char *)size.data)) != SL_OK)
		goto cleanup;
	if (s->s3_mode)
		rc = append_optional(s, &b, pg_name_or(cfg->col_bucket_name, "bucket_name"),
		                     "text");
	else
		rc = sl_buf_append_str(&b, "NULL::text");
	if (rc != SL_OK || (rc = sl_buf_append_str(&b, ", ")) != SL_OK ||
	    (rc = append_optional(s, &b, pg_name_or(cfg->col_content_hash, "content_hash"),
	                          "text")) != SL_OK)
		goto cleanup;
	*out = (char *)b.data;
	b.data = NULL;
cleanup:
	for (size_t i = 0; i < 5; i++)
		sl_free(q[i]);
	sl_buf_free(&b);
	sl_buf_free(&size);
	return rc;
}

/* Appends the conditions for "after the cursor and since" to sql, adding
 * their values to params. */
static int append_after(sl_pg_source *s, sl_buf *sql, const sl_cursor *after, const char *since,
                        const char **params, int *n_params)
{
	int rc = SL_OK;
	if (after != NULL && after->created_at[0] != '\0') {
		params[(*n_params)++] = after->created_at;
		if (after->id[0] != '\0') {
			params[(*n_params)++] = after->id;
			rc = sl_buf_printf(sql, " AND (%s, %s) > ($%d::timestamptz, $%d::uuid)",
			                   s->created_at, s->id, *n_params - 1, *n_params);
		} else {
			rc = sl_buf_printf(sql, " AND %s >= $%d::timestamptz", s->created_at,
			                   *n_params);
		}
	}
	if (rc == SL_OK && since != NULL) {
		if ((rc = sl_clock_rfc3339_check(since)) != SL_OK)
			return sl_error_wrap("since");
		params[(*n_params)++] = since;
		rc = sl_buf_printf(sql, " AND %s > $%d::timestamptz", s->created_at, *n_params);
	}
	return rc;
}

static int text_copy(char *out, size_t cap, const char *value, const char *what)
{
	size_t n = strlen(value);
	if (n >= cap)
		return sl_error_set(SL_ETOOLARGE, "PostgreSQL: %s '%.40s...' is too long", what,
		                    value);
	memcpy(out, value, n + 1);
	return SL_OK;
}

static const char *field(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* A small object's bytes, listed with its row (bytea in text form). */
static int inline_data(sl_row *row, const char *escaped)
{
	size_t n = 0;
	unsigned char *bytes = PQunescapeBytea((const unsigned char *)escaped, &n);

	if (bytes == NULL)
		return sl_error_set(SL_ENOMEM, "PostgreSQL: row %s: cannot decode its data",
		                    row->id);
	row->data = sl_malloc(n > 0 ? n : 1);
	if (row->data != NULL)
		memcpy(row->data, bytes, n);
	PQfreemem(bytes);
	if (row->data == NULL)
		return SL_ENOMEM;
	row->data_len = n;
	row->has_data = 1;
	return SL_OK;
}

void sl_pg_row_names(const sl_pg_config *cfg, const char *names[PG_ROW_NAMES])
{
	memset(names, 0, PG_ROW_NAMES * sizeof(*names));
	names[PG_ROW_ID] = pg_name_or(cfg->col_id, "id");
	names[PG_ROW_CREATED_AT] = pg_name_or(cfg->col_created_at, "created_at");
	names[PG_ROW_COMPETITION] = pg_name_or(cfg->col_competition_id, "competition_id");
	names[PG_ROW_AGENT] = pg_name_or(cfg->col_agent_id, "agent_id");
	names[PG_ROW_DATA_TYPE] = pg_name_or(cfg->col_data_type, "data_type");
	names[PG_ROW_RECORDED_SIZE] = pg_name_or(cfg->col_size_bytes, "size_bytes");
	names[PG_ROW_CONTENT_HASH] = pg_name_or(cfg->col_content_hash, "content_hash");
	if (cfg->s3_mode) {
		names[PG_ROW_OBJECT_KEY] = pg_name_or(cfg->col_object_key, "object_key");
		names[PG_ROW_BUCKET] = pg_name_or(cfg->col_bucket_name, "bucket_name");
	} else {
		names[PG_ROW_DATA] = pg_name_or(cfg->col_data, "data");
	}
}

/* What the row records about its object: size_bytes, the SHA-256 in
 * content_hash (64 hex digits, either case; anything else, such as a
 * shorter digest, is not a SHA-256 and is left unchecked) and, in S3 mode,
 * its bucket (NULL or empty: the configured one). SL_EINVAL (with the row's
 * error set by the caller) for a bucket name that cannot be one. */
static int row_records(int s3_mode, sl_row *row, const char *const fields[PG_ROW_N])
{
	const char *recorded = fields[PG_ROW_RECORDED_SIZE];
	const char *hash = fields[PG_ROW_CONTENT_HASH], *bucket = fields[PG_ROW_BUCKET];
	size_t n = 0;

	if (recorded != NULL && recorded[0] != '-') {
		row->size = strtoll(recorded, NULL, 10);
		row->size_recorded = 1;
	}
	if (hash != NULL && strlen(hash) == 2 * sizeof(row->content_sha256) &&
	    strspn(hash, "0123456789abcdefABCDEF") == 2 * sizeof(row->content_sha256) &&
	    sl_hex_decode(row->content_sha256, sizeof(row->content_sha256), &n, hash,
	                  2 * sizeof(row->content_sha256)) == SL_OK)
		row->has_content_sha256 = 1;
	if (!s3_mode || bucket == NULL || bucket[0] == '\0')
		return SL_OK;
	if (sl_s3_bucket_name_check(bucket) != SL_OK)
		return sl_error_wrap("row %s: bucket_name", row->id);
	if ((row->bucket = sl_strdup(bucket)) == NULL)
		return SL_ENOMEM;
	return SL_OK;
}

int sl_pg_row_build(sl_row *out, int s3_mode, const char *const fields[PG_ROW_N],
                    const char *table_name)
{
	sl_row row;
	const char *id = fields[PG_ROW_ID], *created = fields[PG_ROW_CREATED_AT];
	const char *object_key = fields[PG_ROW_OBJECT_KEY], *size = fields[PG_ROW_SIZE];
	int rc = SL_OK;

	memset(&row, 0, sizeof(row));
	if (id == NULL || created == NULL)
		return sl_error_set(SL_ECORRUPT, "PostgreSQL: a row of %s has no id or created_at",
		                    table_name);
	if ((rc = text_copy(row.id, sizeof(row.id), id, "id")) != SL_OK ||
	    (rc = text_copy(row.created_at, sizeof(row.created_at), created, "created_at")) !=
	            SL_OK)
		return rc;
	row.size = size != NULL ? strtoll(size, NULL, 10) : -1;
	/* A row that cannot be moved as it stands is returned with its reason,
	 * so the pipeline records it and goes on instead of stopping at it. */
	if (s3_mode && (object_key == NULL || object_key[0] == '\0'))
		rc = sl_error_set(SL_EINVAL, "row %s has no object_key", row.id);
	else if (s3_mode && strlen(object_key) > OBJECT_KEY_MAX)
		rc = sl_error_set(SL_ETOOLARGE, "row %s: object_key longer than %u bytes", row.id,
		                  OBJECT_KEY_MAX);
	else if (s3_mode && (row.object_key = sl_strdup(object_key)) == NULL)
		return SL_ENOMEM;
	if (rc == SL_OK)
		rc = sl_object_key_build(&row.key, fields[PG_ROW_COMPETITION], fields[PG_ROW_AGENT],
		                         fields[PG_ROW_DATA_TYPE], row.id);
	if (rc == SL_OK)
		rc = row_records(s3_mode, &row, fields);
	if (rc == SL_ENOMEM) {
		sl_row_free(&row);
		return rc;
	}
	if (rc != SL_OK && (row.error = sl_strdup(sl_error_last()->message)) == NULL) {
		sl_row_free(&row);
		return SL_ENOMEM;
	}
	*out = row;
	return SL_OK;
}

/* One sl_row from a result row of the select list in s->columns. */
static int row_from_result(sl_pg_source *s, sl_row *out, const PGresult *res, int i)
{
	static const int columns[PG_ROW_N] = {
	        [PG_ROW_ID] = ROW_ID,
	        [PG_ROW_CREATED_AT] = ROW_CREATED_AT,
	        [PG_ROW_COMPETITION] = ROW_COMPETITION,
	        [PG_ROW_AGENT] = ROW_AGENT,
	        [PG_ROW_DATA_TYPE] = ROW_DATA_TYPE,
	        [PG_ROW_OBJECT_KEY] = ROW_OBJECT_KEY,
	        [PG_ROW_SIZE] = ROW_SIZE,
	        [PG_ROW_RECORDED_SIZE] = ROW_RECORDED_SIZE,
	        [PG_ROW_BUCKET] = ROW_BUCKET,
	        [PG_ROW_CONTENT_HASH] = ROW_CONTENT_HASH,
	};
	const char *fields[PG_ROW_N];
	int rc;

	for (int f = 0; f < PG_ROW_N; f++)
		fields[f] = field(res, i, columns[f]);
	if ((rc = sl_pg_row_build(out, s->s3_mode, fields, s->table_name)) != SL_OK)
		return rc;
	if (out->error == NULL && !s->s3_mode && !PQgetisnull(res, i, ROW_INLINE) &&
	    (rc = inline_data(out, PQgetvalue(res, i, ROW_INLINE))) != SL_OK) {
		sl_row_free(out);
		return rc;
	}
	return SL_OK;
}

int sl_pg_source_open(sl_pg_source **out, const sl_pg_config *cfg)
{
	sl_pg_source *s = NULL;
	sl_buf sql = SL_BUF_INIT(PG_SQL_MAX);
	PGresult *res = NULL;
	const char *table;
	int rc;

	if ((s = sl_calloc(1, sizeof(*s))) == NULL)
		return SL_ENOMEM;
	if ((rc = pg_link_open(&s->link, cfg, "source")) != SL_OK)
		goto cleanup;
	table = pg_name_or(cfg->table, "object_index");
	s->s3_mode = cfg->s3_mode;
	if ((s->table_name = sl_strdup(table)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = pg_append_table(&sql, s->link.conn, table)) != SL_OK)
		goto cleanup;
	s->table = (char *)sql.data;
	sl_buf_init(&sql, PG_SQL_MAX);
	if ((rc = pg_quote_ident(&s->created_at, s->link.conn,
	                         pg_name_or(cfg->col_created_at, "created_at"))) != SL_OK ||
	    (rc = pg_quote_ident(&s->id, s->link.conn, pg_name_or(cfg->col_id, "id"))) != SL_OK ||
	    (rc = sl_buf_printf(&sql, "%s, %s", s->created_at, s->id)) != SL_OK ||
	    (rc = build_columns(s, cfg, (const char *)sql.data, &s->columns)) != SL_OK ||
	    (rc = build_columns(s, cfg, s->id, &s->columns_by_id)) != SL_OK)
		goto cleanup;
	sl_buf_reset(&sql);
	/* Fail now, with PostgreSQL's words, when the table or a column is
	 * missing or of a type the queries cannot use. */
	if ((rc = sl_buf_printf(&sql,
	                        "SELECT %s FROM %s WHERE (%s, %s) > (now(), NULL::uuid) LIMIT 0",
	                        s->columns, s->table, s->created_at, s->id)) != SL_OK)
		goto cleanup;
	if ((rc = pg_link_exec(&s->link, &res, (const char *)sql.data, 0, NULL, 0, "open")) !=
	    SL_OK) {
		rc = sl_error_wrap("table %s", table);
		goto cleanup;
	}
	*out = s;
	s = NULL;
cleanup:
	PQclear(res);
	sl_buf_free(&sql);
	sl_pg_source_close(s);
	return rc;
}

void sl_pg_source_close(sl_pg_source *s)
{
	if (s == NULL)
		return;
	pg_link_close(&s->link);
	sl_free(s->table);
	sl_free(s->created_at);
	sl_free(s->id);
	sl_free(s->columns);
	sl_free(s->columns_by_id);
	sl_free(s->table_name);
	sl_free(s);
}

/* The horizon (see the header comment) as timestamptz text, and the pid
 * of the backend it comes from (0 when it is the clock). */
static int read_horizon(sl_pg_source *s, char horizon[SL_TS_TEXT_MAX], int *pid)
{
	static const char sql[] =
	        "WITH open AS ("
	        "  SELECT pid, xact_start, backend_xid FROM pg_stat_activity"
	        "  WHERE coalesce(backend_type, 'client backend') = 'client backend'"
	        "    AND datname = current_database()"
	        "    AND pid <> pg_backend_pid()"
	        "    AND coalesce(application_name, '') <> 'sluice'),"
	        " oldest AS (SELECT pid, xact_start FROM open WHERE xact_start IS NOT NULL"
	        "  ORDER BY xact_start, pid LIMIT 1),"
	        " cap AS (SELECT statement_timestamp() - make_interval(secs => $1::float8 / 1000)"
	        "  AS ts)"
	        "SELECT " TS_SQL(
	                "least(cap.ts, oldest.xact_start)") ","
	                                                    " CASE WHEN oldest.xact_start < cap.ts "
	                                                    "THEN oldest.pid ELSE 0 END,"
	                                                    " (SELECT count(*) FROM open WHERE "
	                                                    "xact_start IS NULL AND backend_xid IS "
	                                                    "NOT NULL)"
	                                                    " FROM cap LEFT JOIN oldest ON true";
	char margin[16];
	const char *params[1] = {margin};
	PGresult *res = NULL;
	int rc;

	snprintf(margin, sizeof(margin), "%d", HORIZON_MARGIN_MS);
	if ((rc = pg_link_exec(&s->link, &res, sql, 1, params, 0, "commit horizon")) != SL_OK)
		return rc;
	if (PQntuples(res) != 1 || PQnfields(res) != 3 || PQgetisnull(res, 0, 0)) {
		rc = sl_error_set(SL_EINTERNAL, "PostgreSQL commit horizon: unexpected result");
		goto cleanup;
	}
	if ((rc = text_copy(horizon, SL_TS_TEXT_MAX, PQgetvalue(res, 0, 0), "horizon")) != SL_OK)
		goto cleanup;
	*pid = atoi(PQgetvalue(res, 0, 1));
	if (atol(PQgetvalue(res, 0, 2)) > 0 && !s->warned_hidden) {
		s->warned_hidden = 1;
		sl_log(SL_LOG_WARN,
		       "cannot see when other roles' transactions started; a row they commit late "
		       "may be skipped (grant pg_read_all_stats to this role)",
		       "hidden=%s", PQgetvalue(res, 0, 2));
	}
cleanup:
	PQclear(res);
	return rc;
}

int sl_pg_source_next(sl_pg_source *s, const sl_cursor *after, const char *since, size_t limit,
                      sl_row_batch *out, int *held_by)
{
	sl_buf sql = SL_BUF_INIT(PG_SQL_MAX);
	sl_row_batch batch = {NULL, 0};
	PGresult *res = NULL;
	const char *params[5];
	char horizon[SL_TS_TEXT_MAX], limit_text[24];
	int n_params = 0, pid = 0, rc, n_rows, held = 0;

	if (limit == 0 || limit > PAGE_MAX)
		return sl_error_set(SL_EINVAL, "PostgreSQL: page limit %zu out of range 1..%u",
		                    limit, PAGE_MAX);
	if ((rc = read_horizon(s, horizon, &pid)) != SL_OK)
		return rc;
	params[n_params++] = horizon;
	if ((rc = sl_buf_printf(&sql,
	                        "SELECT %s, %s < $1::timestamptz FROM %s WHERE %s IS NOT NULL",
	                        s->columns, s->created_at, s->table, s->created_at)) != SL_OK ||
	    (rc = append_after(s, &sql, after, since, params, &n_params)) != SL_OK)
		goto cleanup;
	snprintf(limit_text, sizeof(limit_text), "%zu", limit);
	params[n_params++] = limit_text;
	if ((rc = sl_buf_printf(&sql, " ORDER BY %s, %s LIMIT $%d::bigint", s->created_at, s->id,
	                        n_params)) != SL_OK)
		goto cleanup;
	if ((rc = pg_link_exec(&s->link, &res, (const char *)sql.data, n_params, params, 0,
	                       "list rows")) != SL_OK)
		goto cleanup;
	n_rows = PQntuples(res);
	if (n_rows > 0 && (batch.rows = sl_calloc((size_t)n_rows, sizeof(sl_row))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < n_rows; i++) {
		/* rows come in created_at order: the first one at or past the
		 * horizon ends the page */
		if (strcmp(PQgetvalue(res, i, ROW_HORIZON), "t") != 0) {
			held = 1;
			break;
		}
		if ((rc = row_from_result(s, &batch.rows[batch.n], res, i)) != SL_OK)
			goto cleanup;
		batch.n++;
	}
	if (batch.n == 0) {
		sl_free(batch.rows);
		batch.rows = NULL;
	}
	*out = batch;
	batch.rows = NULL;
	batch.n = 0;
	if (held_by != NULL)
		*held_by = !held ? 0 : pid != 0 ? pid : -1;
cleanup:
	sl_row_batch_free(&batch);
	PQclear(res);
	sl_buf_free(&sql);
	return rc;
}

int sl_pg_source_get(sl_pg_source *s, const char *id, sl_row *out)
{
	sl_buf sql = SL_BUF_INIT(PG_SQL_MAX);
	PGresult *res = NULL;
	const char *params[1] = {id};
	int rc;

	if (id == NULL || id[0] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL get: no id");
	if ((rc = sl_buf_printf(&sql, "SELECT %s FROM %s WHERE %s = $1::uuid LIMIT 1", s->columns,
	                        s->table, s->id)) != SL_OK)
		goto cleanup;
	if ((rc = pg_link_exec(&s->link, &res, (const char *)sql.data, 1, params, 0, "get row")) !=
	    SL_OK)
		goto cleanup;
	if (PQntuples(res) == 0) {
		rc = sl_error_set(SL_ENOTFOUND, "PostgreSQL: row %s is gone from %s", id,
		                  s->table_name);
		goto cleanup;
	}
	rc = row_from_result(s, out, res, 0);
cleanup:
	PQclear(res);
	sl_buf_free(&sql);
	return rc;
}

int sl_pg_source_lag(sl_pg_source *s, const sl_cursor *after, const char *since,
                     char newest[SL_TS_TEXT_MAX], uint64_t *rows_after)
{
	sl_buf sql = SL_BUF_INIT(PG_SQL_MAX);
	PGresult *res = NULL;
	const char *params[3];
	char newest_text[SL_TS_TEXT_MAX] = "";
	int n_params = 0, rc;

	static const char lag_sql[] = "SELECT (SELECT " TS_SQL(
	        "max(%s)") " FROM %s),"
	                   " (SELECT count(*) FROM %s WHERE %s IS NOT NULL";

	if ((rc = sl_buf_printf(&sql, lag_sql, s->created_at, s->table, s->table, s->created_at)) !=
	            SL_OK ||
	    (rc = append_after(s, &sql, after, since, params, &n_params)) != SL_OK ||
	    (rc = sl_buf_append_str(&sql, ")")) != SL_OK)
		goto cleanup;
	if ((rc = pg_link_exec(&s->link, &res, (const char *)sql.data, n_params, params, 0,
	                       "lag")) != SL_OK)
		goto cleanup;
	if (PQntuples(res) != 1) {
		rc = sl_error_set(SL_EINTERNAL, "PostgreSQL lag: unexpected result");
		goto cleanup;
	}
	if (!PQgetisnull(res, 0, 0) && (rc = text_copy(newest_text, sizeof(newest_text),
	                                               PQgetvalue(res, 0, 0), "newest")) != SL_OK)
		goto cleanup;
	memcpy(newest, newest_text, sizeof(newest_text));
	*rows_after = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
cleanup:
	PQclear(res);
	sl_buf_free(&sql);
	return rc;
}

int sl_pg_source_scan(sl_pg_source *s, const char *after_id, size_t limit, sl_row_batch *out)
{
	sl_buf sql = SL_BUF_INIT(PG_SQL_MAX);
	sl_row_batch batch = {NULL, 0};
	PGresult *res = NULL;
	const char *params[2];
	char limit_text[24];
	int n_params = 0, rc, n_rows;

	if (limit == 0 || limit > PAGE_MAX)
		return sl_error_set(SL_EINVAL, "PostgreSQL: page limit %zu out of range 1..%u",
		                    limit, PAGE_MAX);
	if ((rc = sl_buf_printf(&sql, "SELECT %s FROM %s WHERE %s IS NOT NULL", s->columns_by_id,
	                        s->table, s->created_at)) != SL_OK)
		goto cleanup;
	if (after_id != NULL && after_id[0] != '\0') {
		params[n_params++] = after_id;
		if ((rc = sl_buf_printf(&sql, " AND %s > $1::uuid", s->id)) != SL_OK)
			goto cleanup;
	}
	snprintf(limit_text, sizeof(limit_text), "%zu", limit);
	params[n_params++] = limit_text;
	if ((rc = sl_buf_printf(&sql, " ORDER BY %s LIMIT $%d::bigint", s->id, n_params)) != SL_OK)
		goto cleanup;
	if ((rc = pg_link_exec(&s->link, &res, (const char *)sql.data, n_params, params, 0,
	                       "scan rows")) != SL_OK)
		goto cleanup;
	n_rows = PQntuples(res);
	if (n_rows > 0 && (batch.rows = sl_calloc((size_t)n_rows, sizeof(sl_row))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < n_rows; i++, batch.n++)
		if ((rc = row_from_result(s, &batch.rows[i], res, i)) != SL_OK)
			goto cleanup;
	*out = batch;
	batch.rows = NULL;
	batch.n = 0;
cleanup:
	sl_row_batch_free(&batch);
	PQclear(res);
	sl_buf_free(&sql);
	return rc;
}

int sl_pg_source_use_snapshot(sl_pg_source *s, const char *snapshot)
{
	PGresult *res = NULL;
	char sql[128];
	int rc;

	/* SET TRANSACTION SNAPSHOT takes no parameter; the name was made by
	 * the server (hex digits and dashes), and we check it is one. */
	if (strlen(snapshot) == 0 || strlen(snapshot) > 64 ||
	    strspn(snapshot, "0123456789ABCDEFabcdef-") != strlen(snapshot))
		return sl_error_set(SL_EINVAL, "snapshot name '%.64s' is not one", snapshot);
	/* The import must be the transaction's first statement. A lost
	 * connection ends the transaction, and link_exec's retry then reads
	 * the live table, which changes mode allows (changes.c, C2). */
	if ((rc = pg_link_exec(&s->link, &res, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
	                       NULL, 0, "begin snapshot")) != SL_OK)
		return rc;
	PQclear(res);
	res = NULL;
	snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", snapshot);
	rc = pg_link_exec(&s->link, &res, sql, 0, NULL, 0, "import snapshot");
	PQclear(res);
	if (rc != SL_OK) {
		sl_pg_source_end_snapshot(s);
		return rc;
	}
	return SL_OK;
}

void sl_pg_source_end_snapshot(sl_pg_source *s)
{
	PGresult *res = NULL;
	if (s->link.conn != NULL && PQtransactionStatus(s->link.conn) != PQTRANS_IDLE &&
	    pg_link_exec(&s->link, &res, "ROLLBACK", 0, NULL, 0, "end snapshot") == SL_OK)
		PQclear(res);
}

static int source_next(void *self, const sl_cursor *after, const char *since, size_t limit,
                       sl_row_batch *out, int *held_by)
{
	return sl_pg_source_next(self, after, since, limit, out, held_by);
}

static int source_get(void *self, const char *id, sl_row *out)
{
	return sl_pg_source_get(self, id, out);
}

static int source_lag(void *self, const sl_cursor *after, const char *since,
                      char newest[SL_TS_TEXT_MAX], uint64_t *rows_after)
{
	return sl_pg_source_lag(self, after, since, newest, rows_after);
}

static void source_close(void *self)
{
	sl_pg_source_close(self);
}

static const sl_source_ops source_ops = {source_next, source_get, source_lag, source_close};

void sl_pg_source_bind(sl_source *out, sl_pg_source *s)
{
	out->ops = &source_ops;
	out->self = s;
}
