/*
 * The PostgreSQL source and the direct-mode fetcher (libpq).
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
 * Connections. Every statement runs through link_exec: sent with
 * PQsendQueryParams (values are always text parameters, never spliced
 * into SQL; identifiers are quoted with PQescapeIdentifier), then awaited
 * with poll() against a deadline of timeout_ms plus a grace, on top of the
 * server's statement_timeout. When the connection is lost (server restart,
 * admin shutdown, a broken socket) we reconnect with backoff until
 * reconnect_ms has passed since the loss and run the statement again; all
 * statements here are reads, so repeating one is safe. Each connection
 * sets TimeZone UTC, DateStyle ISO, application_name 'sluice', a
 * statement_timeout and read-only transactions.
 *
 * The fetcher reads the data column of one row in parts over its own
 * connection, as substring(...) in binary result format, so bytes come back
 * raw; a text column is read as convert_to(data, 'UTF8').
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

#include "connect/pg_row.h"
#include "connect/pg_util.h"
#include "sluice/connect.h"

#define DEFAULT_TIMEOUT_MS   30000u
#define DEFAULT_RECONNECT_MS 60000u
/* Client-side deadline beyond the server's statement_timeout, so the
 * server's own "canceling statement" normally arrives first. */
#define CLIENT_GRACE_MS 2000u
/* See the header comment: how far behind our statement's start the
 * horizon stays even with no open transaction. */
#define HORIZON_MARGIN_MS 100
#define BACKOFF_FIRST_MS  100u
#define BACKOFF_MAX_MS    2000u
#define PAGE_MAX          100000u
#define OBJECT_KEY_MAX    4096u
#define SQL_MAX           8192u

#define TS_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"

/* ------------------------------------------------------------ connection */

typedef struct pg_link {
	PGconn *conn;
	char *url;
	uint32_t timeout_ms;
	uint32_t reconnect_ms;
	const char *role; /* "source" or "fetcher", for messages */
} pg_link;

static uint64_t now_ms(void)
{
	return sl_clock_mono_ns() / 1000000u;
}

void sl_pg_one_line(char *out, size_t cap, const char *msg)
{
	size_t n = 0;
	if (msg == NULL)
		msg = "";
	for (; *msg != '\0' && n + 1 < cap; msg++)
		out[n++] = (*msg == '\n' || *msg == '\r' || *msg == '\t') ? ' ' : *msg;
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

void sl_pg_ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int sqlstate_lost(const char *state)
{
	if (state == NULL)
		return 0;
	/* class 08 connection exception; admin/crash shutdown, cannot connect now */
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	       strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

static int sqlstate_code(const char *state)
{
	if (state == NULL)
		return SL_EIO;
	if (strcmp(state, "57014") == 0) /* query_canceled: statement_timeout */
		return SL_ETIMEOUT;
	if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0)
		return SL_EAUTH;
	/* data exceptions (a malformed timestamp or uuid), undefined table,
	 * column, schema or object: a bad argument or a bad setting */
	if (strncmp(state, "22", 2) == 0 || strcmp(state, "42P01") == 0 ||
	    strcmp(state, "42703") == 0 || strcmp(state, "3F000") == 0 ||
	    strcmp(state, "42704") == 0 || strcmp(state, "42883") == 0)
		return SL_EINVAL;
	return SL_EIO;
}

/* Record the error of a failed statement; *lost says whether the
 * connection went away (and the statement may be run again elsewhere). */
static int result_error(pg_link *l, const PGresult *res, const char *what, int *lost)
{
	char msg[SL_ERROR_MSG_MAX], cause[64];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *text = res ? PQresultErrorMessage(res) : NULL;

	if (text == NULL || text[0] == '\0')
		text = PQerrorMessage(l->conn);
	sl_pg_one_line(msg, sizeof(msg), text);
	*lost = PQstatus(l->conn) == CONNECTION_BAD || sqlstate_lost(state);
	if (state != NULL)
		snprintf(cause, sizeof(cause), "sqlstate=%s", state);
	else
		snprintf(cause, sizeof(cause), "libpq");
	return sl_error_set_cause(*lost ? SL_EIO : sqlstate_code(state), cause, "PostgreSQL %s: %s",
	                          what, msg);
}

/* Wait until libpq has a whole result or the deadline passes. */
static int wait_result(pg_link *l, uint64_t deadline, const char *what)
{
	while (PQisBusy(l->conn)) {
		struct pollfd pfd = {.fd = PQsocket(l->conn), .events = POLLIN};
		uint64_t now = now_ms();
		int n;
		if (pfd.fd < 0)
			return SL_OK; /* broken: PQgetResult reports it */
		if (now >= deadline)
			return sl_error_set(SL_ETIMEOUT, "PostgreSQL %s: no answer within %u ms",
			                    what, l->timeout_ms + CLIENT_GRACE_MS);
		n = poll(&pfd, 1, deadline - now > 1000 ? 1000 : (int)(deadline - now));
		if (n < 0 && errno != EINTR)
			return sl_error_set_cause(SL_EIO, strerror(errno), "PostgreSQL %s: poll",
			                          what);
		if (n > 0 && !PQconsumeInput(l->conn))
			return SL_OK; /* PQgetResult returns the error */
	}
	return SL_OK;
}

/* Run one statement on the current connection. */
static int exec_once(pg_link *l, PGresult **out, const char *sql, int n_params,
                     const char *const *params, int result_format, const char *what, int *lost)
{
	PGresult *res = NULL, *extra;
	int rc;

	*lost = 0;
	if (!PQsendQueryParams(l->conn, sql, n_params, NULL, params, NULL, NULL, result_format))
		return result_error(l, NULL, what, lost);
	if ((rc = wait_result(l, now_ms() + l->timeout_ms + CLIENT_GRACE_MS, what)) != SL_OK) {
		/* the connection is in an unknown state: drop it, the next
		 * statement connects afresh */
		PQfinish(l->conn);
		l->conn = NULL;
		return rc;
	}
	res = PQgetResult(l->conn);
	while ((extra = PQgetResult(l->conn)) != NULL)
		PQclear(extra);
	if (res != NULL &&
	    (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)) {
		*out = res;
		return SL_OK;
	}
	rc = result_error(l, res, what, lost);
	PQclear(res);
	return rc;
}

static int link_connect_once(pg_link *l)
{
	char connect_s[16], user_timeout[16], timeout_s[16];
	const char *keys[] = {"dbname",     "application_name", "connect_timeout",
	                      "keepalives", "keepalives_idle",  "tcp_user_timeout",
	                      NULL};
	const char *values[] = {l->url, "sluice", connect_s, "1", "10", user_timeout, NULL};
	const char *session[1];
	PGresult *res = NULL;
	PGconn *conn;
	char msg[SL_ERROR_MSG_MAX];
	int rc, lost;

	/* libpq counts whole seconds and treats anything below 2 as 2 */
	snprintf(connect_s, sizeof(connect_s), "%u", (l->timeout_ms + 999u) / 1000u);
	snprintf(user_timeout, sizeof(user_timeout), "%u", l->timeout_ms);
	snprintf(timeout_s, sizeof(timeout_s), "%u", l->timeout_ms);
	conn = PQconnectdbParams(keys, values, 1);
	if (conn == NULL)
		return sl_error_set(SL_ENOMEM, "PostgreSQL %s: out of memory connecting", l->role);
	if (PQstatus(conn) != CONNECTION_OK) {
		sl_pg_one_line(msg, sizeof(msg), PQerrorMessage(conn));
		PQfinish(conn);
		return sl_error_set_cause(SL_EIO, "libpq", "PostgreSQL %s: cannot connect: %s",
		                          l->role, msg);
	}
	PQsetNoticeProcessor(conn, sl_pg_ignore_notice, NULL);
	l->conn = conn;
	session[0] = timeout_s;
	rc = exec_once(l, &res,
	               "SELECT set_config('TimeZone', 'UTC', false),"
	               " set_config('DateStyle', 'ISO, YMD', false),"
	               " set_config('application_name', 'sluice', false),"
	               " set_config('default_transaction_read_only', 'on', false),"
	               " set_config('statement_timeout', $1, false)",
	               1, session, 0, "session setup", &lost);
	PQclear(res);
	if (rc != SL_OK && l->conn != NULL) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	return rc;
}

/* Connect again after a loss, with backoff, until deadline (ms). */
static int link_reconnect(pg_link *l, uint64_t deadline)
{
	uint64_t backoff = BACKOFF_FIRST_MS;
	int rc;

	if (l->conn != NULL) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	for (;;) {
		uint64_t now;
		if ((rc = link_connect_once(l)) == SL_OK) {
			sl_log(SL_LOG_INFO, "reconnected to PostgreSQL", "role=%s", l->role);
			return SL_OK;
		}
		now = now_ms();
		if (now >= deadline)
			return sl_error_wrap("still unreachable after %u ms", l->reconnect_ms);
		sl_sleep_ms(backoff < deadline - now ? backoff : deadline - now);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* Run a read-only statement, reconnecting and running it again when the
 * connection is lost, for up to reconnect_ms. *out is the result. */
static int link_exec(pg_link *l, PGresult **out, const char *sql, int n_params,
                     const char *const *params, int result_format, const char *what)
{
	uint64_t deadline = 0;
	char reason[SL_ERROR_MSG_MAX];
	int rc, lost;

	for (;;) {
		if (l->conn == NULL || PQstatus(l->conn) != CONNECTION_OK) {
			if (deadline == 0)
				deadline = now_ms() + l->reconnect_ms;
			if ((rc = link_reconnect(l, deadline)) != SL_OK)
				return rc;
		}
		rc = exec_once(l, out, sql, n_params, params, result_format, what, &lost);
		if (rc == SL_OK || !lost)
			return rc;
		if (deadline == 0)
			deadline = now_ms() + l->reconnect_ms;
		else if (now_ms() >= deadline)
			return rc;
		sl_log(SL_LOG_WARN, "lost the connection to PostgreSQL; reconnecting",
		       "role=%s reason=%s", l->role,
		       sl_log_quote(reason, sizeof(reason), sl_error_last()->message));
		PQfinish(l->conn);
		l->conn = NULL;
	}
}

static int link_open(pg_link *l, const sl_pg_config *cfg, const char *role)
{
	memset(l, 0, sizeof(*l));
	if (cfg == NULL || cfg->url == NULL || cfg->url[0] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL %s: no connection URL", role);
	l->role = role;
	l->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	l->reconnect_ms = cfg->reconnect_ms ? cfg->reconnect_ms : DEFAULT_RECONNECT_MS;
	if ((l->url = sl_strdup(cfg->url)) == NULL)
		return SL_ENOMEM;
	/* The first connection is made once: a wrong URL fails now, not after
	 * reconnect_ms of retries. */
	return link_connect_once(l);
}

static void link_close(pg_link *l)
{
	if (l->conn != NULL)
		PQfinish(l->conn);
	l->conn = NULL;
	sl_free(l->url);
	l->url = NULL;
}

/* ----------------------------------------------------------- identifiers */

static const char *name_or(const char *name, const char *fallback)
{
	return name != NULL && name[0] != '\0' ? name : fallback;
}

static int append_ident(sl_buf *b, PGconn *conn, const char *name, size_t len)
{
	char *quoted = PQescapeIdentifier(conn, name, len);
	char msg[SL_ERROR_MSG_MAX];
	int rc;
	if (quoted == NULL) {
		sl_pg_one_line(msg, sizeof(msg), PQerrorMessage(conn));
		return sl_error_set(SL_EINVAL, "PostgreSQL: bad identifier '%.*s': %s", (int)len,
		                    name, msg);
	}
	rc = sl_buf_append_str(b, quoted);
	PQfreemem(quoted);
	return rc;
}

/* "schema.table" is quoted as two identifiers. */
static int append_table(sl_buf *b, PGconn *conn, const char *table)
{
	const char *dot = strchr(table, '.');
	int rc;
	if (dot == NULL)
		return append_ident(b, conn, table, strlen(table));
	if (dot == table || dot[1] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL: bad table name '%s'", table);
	if ((rc = append_ident(b, conn, table, (size_t)(dot - table))) != SL_OK ||
	    (rc = sl_buf_append_byte(b, '.')) != SL_OK)
		return rc;
	return append_ident(b, conn, dot + 1, strlen(dot + 1));
}

/* Quoted identifier as an owned string. */
static int quote_ident(char **out, PGconn *conn, const char *name)
{
	sl_buf b = SL_BUF_INIT(SQL_MAX);
	int rc = append_ident(&b, conn, name, strlen(name));
	if (rc != SL_OK) {
		sl_buf_free(&b);
		return rc;
	}
	*out = (char *)b.data;
	return SL_OK;
}

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
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	c->reconnect_ms = DEFAULT_RECONNECT_MS;
}

/* The base type of column in table_sql, from the catalog: *present is 0
 * when the table has no such column (typname and category are then
 * empty). A table that does not exist is an error, with the SQLSTATE
 * PostgreSQL gives for it. */
static int column_type(pg_link *link, const char *table_name, const char *table_sql,
                       const char *column, int *present, char typname[64], char *category)
{
	static const char sql[] =
	        "SELECT c.oid IS NOT NULL, b.typname, b.typcategory"
	        " FROM (SELECT to_regclass($1) AS oid) c"
	        " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2"
	        "   AND a.attnum > 0 AND NOT a.attisdropped"
	        " LEFT JOIN pg_type t ON t.oid = a.atttypid"
	        " LEFT JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype"
	        "   ELSE t.oid END";
	const char *params[2] = {table_sql, column};
	PGresult *res = NULL;
	int rc;

	*present = 0;
	typname[0] = '\0';
	*category = '\0';
	if ((rc = link_exec(link, &res, sql, 2, params, 0, "column type")) != SL_OK)
		return rc;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		rc = sl_error_set_cause(SL_EINVAL, "sqlstate=42P01",
		                        "PostgreSQL: table %s does not exist", table_name);
		goto cleanup;
	}
	if (!PQgetisnull(res, 0, 1)) {
		*present = 1;
		snprintf(typname, 64, "%s", PQgetvalue(res, 0, 1));
		*category = PQgetvalue(res, 0, 2)[0];
	}
cleanup:
	PQclear(res);
	return rc;
}

/* How to read the data column as bytes: itself when bytea, convert_to
 * when a string type. Looked up once, from the catalog. */
static int data_expression(pg_link *link, const char *table_name, sl_buf *expr,
                           const char *table_sql, const char *column)
{
	char type[64], category;
	int present, rc;

	if ((rc = column_type(link, table_name, table_sql, column, &present, type, &category)) !=
	    SL_OK)
		return rc;
	if (!present)
		return sl_error_set(SL_EINVAL, "PostgreSQL: table %s has no column \"%s\"",
		                    table_name, column);
	if (strcmp(type, "bytea") == 0)
		return append_ident(expr, link->conn, column, strlen(column));
	if (category != 'S')
		return sl_error_set(SL_EINVAL,
		                    "PostgreSQL: data column \"%s\" of %s is %s, not bytea or text",
		                    column, table_name, type);
	if ((rc = sl_buf_append_str(expr, "convert_to(")) != SL_OK ||
	    (rc = append_ident(expr, link->conn, column, strlen(column))) != SL_OK ||
	    (rc = sl_buf_append_str(expr, "::text, 'UTF8')")) != SL_OK)
		return rc;
	return SL_OK;
}

/* An optional column as "<quoted>::<cast>" when the table has it, else
 * "NULL::<cast>", appended to b. */
static int append_optional(sl_pg_source *s, sl_buf *b, const char *column, const char *cast)
{
	char type[64], category;
	int present, rc;

	if ((rc = column_type(&s->link, s->table_name, s->table, column, &present, type,
	                      &category)) != SL_OK)
		return rc;
	if (!present)
		return sl_buf_printf(b, "NULL::%s", cast);
	if ((rc = append_ident(b, s->link.conn, column, strlen(column))) != SL_OK)
		return rc;
	return sl_buf_printf(b, "::%s", cast);
}

/* The select list of a row into *out; the inline bytes' running sum
 * follows order_by, the order of the pages it serves. */
static int build_columns(sl_pg_source *s, const sl_pg_config *cfg, const char *order_by, char **out)
{
	PGconn *conn = s->link.conn;
	sl_buf b = SL_BUF_INIT(SQL_MAX), size = SL_BUF_INIT(SQL_MAX);
	char *q[5] = {NULL};
	const char *names[5] = {
	        name_or(cfg->col_competition_id, "competition_id"),
	        name_or(cfg->col_agent_id, "agent_id"),
	        name_or(cfg->col_data_type, "data_type"),
	        name_or(cfg->col_object_key, "object_key"),
	        name_or(cfg->col_data, "data"),
	};
	const char *size_column = name_or(cfg->col_size_bytes, "size_bytes");
	int rc = SL_OK;

	for (size_t i = 0; i < 5; i++)
		if ((rc = quote_ident(&q[i], conn, names[i])) != SL_OK)
			goto cleanup;
	if ((rc = append_optional(s, &size, size_column, "bigint")) != SL_OK)
		goto cleanup;
	rc = sl_buf_printf(&b, "%s::text, " TS_SQL("%s") ", %s::text, %s::text, %s::text, ", s->id,
	                   s->created_at, q[0], q[1], q[2]);
	if (rc == SL_OK && s->s3_mode) {
		rc = sl_buf_printf(&b, "%s::text, coalesce(%s, -1), NULL::bytea", q[3],
		                   (const char *)size.data);
	} else if (rc == SL_OK) {
		sl_buf data = SL_BUF_INIT(SQL_MAX);
		rc = data_expression(&s->link, s->table_name, &data, s->table, names[4]);
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
		rc = append_optional(s, &b, name_or(cfg->col_bucket_name, "bucket_name"), "text");
	else
		rc = sl_buf_append_str(&b, "NULL::text");
	if (rc != SL_OK || (rc = sl_buf_append_str(&b, ", ")) != SL_OK ||
	    (rc = append_optional(s, &b, name_or(cfg->col_content_hash, "content_hash"), "text")) !=
	            SL_OK)
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
	names[PG_ROW_ID] = name_or(cfg->col_id, "id");
	names[PG_ROW_CREATED_AT] = name_or(cfg->col_created_at, "created_at");
	names[PG_ROW_COMPETITION] = name_or(cfg->col_competition_id, "competition_id");
	names[PG_ROW_AGENT] = name_or(cfg->col_agent_id, "agent_id");
	names[PG_ROW_DATA_TYPE] = name_or(cfg->col_data_type, "data_type");
	names[PG_ROW_RECORDED_SIZE] = name_or(cfg->col_size_bytes, "size_bytes");
	names[PG_ROW_CONTENT_HASH] = name_or(cfg->col_content_hash, "content_hash");
	if (cfg->s3_mode) {
		names[PG_ROW_OBJECT_KEY] = name_or(cfg->col_object_key, "object_key");
		names[PG_ROW_BUCKET] = name_or(cfg->col_bucket_name, "bucket_name");
	} else {
		names[PG_ROW_DATA] = name_or(cfg->col_data, "data");
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
	sl_buf sql = SL_BUF_INIT(SQL_MAX);
	PGresult *res = NULL;
	const char *table;
	int rc;

	if ((s = sl_calloc(1, sizeof(*s))) == NULL)
		return SL_ENOMEM;
	if ((rc = link_open(&s->link, cfg, "source")) != SL_OK)
		goto cleanup;
	table = name_or(cfg->table, "object_index");
	s->s3_mode = cfg->s3_mode;
	if ((s->table_name = sl_strdup(table)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = append_table(&sql, s->link.conn, table)) != SL_OK)
		goto cleanup;
	s->table = (char *)sql.data;
	sl_buf_init(&sql, SQL_MAX);
	if ((rc = quote_ident(&s->created_at, s->link.conn,
	                      name_or(cfg->col_created_at, "created_at"))) != SL_OK ||
	    (rc = quote_ident(&s->id, s->link.conn, name_or(cfg->col_id, "id"))) != SL_OK ||
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
	if ((rc = link_exec(&s->link, &res, (const char *)sql.data, 0, NULL, 0, "open")) != SL_OK) {
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
	link_close(&s->link);
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
	if ((rc = link_exec(&s->link, &res, sql, 1, params, 0, "commit horizon")) != SL_OK)
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
	sl_buf sql = SL_BUF_INIT(SQL_MAX);
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
	if ((rc = link_exec(&s->link, &res, (const char *)sql.data, n_params, params, 0,
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
	sl_buf sql = SL_BUF_INIT(SQL_MAX);
	PGresult *res = NULL;
	const char *params[1] = {id};
	int rc;

	if (id == NULL || id[0] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL get: no id");
	if ((rc = sl_buf_printf(&sql, "SELECT %s FROM %s WHERE %s = $1::uuid LIMIT 1", s->columns,
	                        s->table, s->id)) != SL_OK)
		goto cleanup;
	if ((rc = link_exec(&s->link, &res, (const char *)sql.data, 1, params, 0, "get row")) !=
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
	sl_buf sql = SL_BUF_INIT(SQL_MAX);
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
	if ((rc = link_exec(&s->link, &res, (const char *)sql.data, n_params, params, 0, "lag")) !=
	    SL_OK)
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
	sl_buf sql = SL_BUF_INIT(SQL_MAX);
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
	if ((rc = link_exec(&s->link, &res, (const char *)sql.data, n_params, params, 0,
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
	if ((rc = link_exec(&s->link, &res, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
	                    NULL, 0, "begin snapshot")) != SL_OK)
		return rc;
	PQclear(res);
	res = NULL;
	snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", snapshot);
	rc = link_exec(&s->link, &res, sql, 0, NULL, 0, "import snapshot");
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
	    link_exec(&s->link, &res, "ROLLBACK", 0, NULL, 0, "end snapshot") == SL_OK)
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

/* --------------------------------------------------------------- fetcher */

typedef struct pg_fetcher {
	pg_link link;
	char *sql_read; /* $1 id, $2 1-based offset, $3 count */
	char *table_name;
	PGresult *lent; /* the last read's result, whose bytes the caller holds */
} pg_fetcher;

static void fetcher_free(pg_fetcher *f)
{
	if (f == NULL)
		return;
	PQclear(f->lent);
	link_close(&f->link);
	sl_free(f->sql_read);
	sl_free(f->table_name);
	sl_free(f);
}

static int fetcher_read(void *self, const sl_row *row, uint64_t offset, size_t cap,
                        const uint8_t **data, size_t *n_read, uint64_t *total)
{
	pg_fetcher *f = self;
	PGresult *res = NULL;
	char from[24], count[24];
	const char *params[3] = {row->id, from, count};
	uint64_t size;
	size_t len;
	int rc;

	/* substring takes int positions; a bytea is at most 1 GB, so a
	 * clamped position past it still reads nothing */
	snprintf(from, sizeof(from), "%" PRIu64, offset < INT_MAX ? offset + 1 : (uint64_t)INT_MAX);
	snprintf(count, sizeof(count), "%zu", cap < INT_MAX ? cap : (size_t)INT_MAX);
	PQclear(f->lent); /* the caller is done with the previous read */
	f->lent = NULL;
	if ((rc = link_exec(&f->link, &res, f->sql_read, 3, params, 1, "read data")) != SL_OK)
		goto cleanup;
	if (PQntuples(res) == 0) {
		rc = sl_error_set(SL_ENOTFOUND, "PostgreSQL: row %s is gone from %s", row->id,
		                  f->table_name);
		goto cleanup;
	}
	if (PQgetisnull(res, 0, 0)) {
		rc = sl_error_set(SL_ENOTFOUND, "PostgreSQL: row %s of %s has no data (NULL)",
		                  row->id, f->table_name);
		goto cleanup;
	}
	if (PQgetlength(res, 0, 0) != 8) {
		rc = sl_error_set(SL_ECORRUPT, "PostgreSQL read data: size is not an int8");
		goto cleanup;
	}
	size = sl_be64_get((const uint8_t *)PQgetvalue(res, 0, 0));
	len = (size_t)PQgetlength(res, 0, 1);
	if (len > cap) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "PostgreSQL read data: %zu bytes for a %zu-byte part", len, cap);
		goto cleanup;
	}
	*data = (const uint8_t *)PQgetvalue(res, 0, 1);
	*n_read = len;
	*total = size;
	f->lent = res;
	res = NULL;
cleanup:
	PQclear(res);
	return rc;
}

static void fetcher_close(void *self)
{
	fetcher_free(self);
}

static const sl_fetcher_ops fetcher_ops = {fetcher_read, fetcher_close};

int sl_pg_fetcher_open(sl_fetcher *out, const sl_pg_config *cfg)
{
	pg_fetcher *f = NULL;
	sl_buf table = SL_BUF_INIT(SQL_MAX), expr = SL_BUF_INIT(SQL_MAX),
	       sql = SL_BUF_INIT(SQL_MAX);
	char *id = NULL;
	int rc;

	if ((f = sl_calloc(1, sizeof(*f))) == NULL)
		return SL_ENOMEM;
	if ((rc = link_open(&f->link, cfg, "fetcher")) != SL_OK)
		goto cleanup;
	if ((f->table_name = sl_strdup(name_or(cfg->table, "object_index"))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = append_table(&table, f->link.conn, f->table_name)) != SL_OK ||
	    (rc = data_expression(&f->link, f->table_name, &expr, (const char *)table.data,
	                          name_or(cfg->col_data, "data"))) != SL_OK ||
	    (rc = quote_ident(&id, f->link.conn, name_or(cfg->col_id, "id"))) != SL_OK)
		goto cleanup;
	/* The data expression is evaluated once, in the subquery (its LIMIT
	 * keeps the planner from pulling it up and evaluating it twice): a
	 * text column's conversion costs the whole value per part. A bytea
	 * stays a TOAST pointer there, so substring still reads only a slice. */
	if ((rc = sl_buf_printf(
	             &sql,
	             "SELECT octet_length(d)::bigint, substring(d from $2::int for $3::int)"
	             " FROM (SELECT %s AS d FROM %s WHERE %s = $1::uuid LIMIT 1) row_data",
	             (const char *)expr.data, (const char *)table.data, id)) != SL_OK)
		goto cleanup;
	f->sql_read = (char *)sql.data;
	sql.data = NULL;
	out->ops = &fetcher_ops;
	out->self = f;
	f = NULL;
cleanup:
	sl_free(id);
	sl_buf_free(&table);
	sl_buf_free(&expr);
	sl_buf_free(&sql);
	fetcher_free(f);
	return rc;
}
