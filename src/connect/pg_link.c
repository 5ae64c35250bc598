/*
 * Connections of the PostgreSQL source and fetcher (pg_link.h), the quoting
 * of identifiers, and what the catalog says about a column.
 *
 * Every statement runs through pg_link_exec: sent with
 * PQsendQueryParams (values are always text parameters, never spliced
 * into SQL; identifiers are quoted with PQescapeIdentifier), then awaited
 * with poll() against a deadline of timeout_ms plus a grace, on top of the
 * server's statement_timeout. When the connection is lost (server restart,
 * admin shutdown, a broken socket) we reconnect with backoff until
 * reconnect_ms has passed since the loss and run the statement again; all
 * statements here are reads, so repeating one is safe. Each connection
 * sets TimeZone UTC, DateStyle ISO, application_name 'sluice', a
 * statement_timeout and read-only transactions.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect/pg_link.h"
#include "connect/pg_util.h"

/* Client-side deadline beyond the server's statement_timeout, so the
 * server's own "canceling statement" normally arrives first. */
#define CLIENT_GRACE_MS  2000u
#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS   2000u

/* ------------------------------------------------------------ connection */

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
int pg_link_exec(pg_link *l, PGresult **out, const char *sql, int n_params,
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

int pg_link_open(pg_link *l, const sl_pg_config *cfg, const char *role)
{
	memset(l, 0, sizeof(*l));
	if (cfg == NULL || cfg->url == NULL || cfg->url[0] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL %s: no connection URL", role);
	l->role = role;
	l->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : PG_DEFAULT_TIMEOUT_MS;
	l->reconnect_ms = cfg->reconnect_ms ? cfg->reconnect_ms : PG_DEFAULT_RECONNECT_MS;
	if ((l->url = sl_strdup(cfg->url)) == NULL)
		return SL_ENOMEM;
	/* The first connection is made once: a wrong URL fails now, not after
	 * reconnect_ms of retries. */
	return link_connect_once(l);
}

void pg_link_close(pg_link *l)
{
	if (l->conn != NULL)
		PQfinish(l->conn);
	l->conn = NULL;
	sl_free(l->url);
	l->url = NULL;
}

/* ----------------------------------------------------------- identifiers */

const char *pg_name_or(const char *name, const char *fallback)
{
	return name != NULL && name[0] != '\0' ? name : fallback;
}

int pg_append_ident(sl_buf *b, PGconn *conn, const char *name, size_t len)
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
int pg_append_table(sl_buf *b, PGconn *conn, const char *table)
{
	const char *dot = strchr(table, '.');
	int rc;
	if (dot == NULL)
		return pg_append_ident(b, conn, table, strlen(table));
	if (dot == table || dot[1] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL: bad table name '%s'", table);
	if ((rc = pg_append_ident(b, conn, table, (size_t)(dot - table))) != SL_OK ||
	    (rc = sl_buf_append_byte(b, '.')) != SL_OK)
		return rc;
	return pg_append_ident(b, conn, dot + 1, strlen(dot + 1));
}

/* Quoted identifier as an owned string. */
int pg_quote_ident(char **out, PGconn *conn, const char *name)
{
	sl_buf b = SL_BUF_INIT(PG_SQL_MAX);
	int rc = pg_append_ident(&b, conn, name, strlen(name));
	if (rc != SL_OK) {
		sl_buf_free(&b);
		return rc;
	}
	*out = (char *)b.data;
	return SL_OK;
}

/* --------------------------------------------------------------- catalog */

/* The base type of column in table_sql, from the catalog: *present is 0
 * when the table has no such column (typname and category are then
 * empty). A table that does not exist is an error, with the SQLSTATE
 * PostgreSQL gives for it. */
int pg_column_type(pg_link *link, const char *table_name, const char *table_sql, const char *column,
                   int *present, char typname[64], char *category)
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
	if ((rc = pg_link_exec(link, &res, sql, 2, params, 0, "column type")) != SL_OK)
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
int pg_data_expression(pg_link *link, const char *table_name, sl_buf *expr, const char *table_sql,
                       const char *column)
{
	char type[64], category;
	int present, rc;

	if ((rc = pg_column_type(link, table_name, table_sql, column, &present, type, &category)) !=
	    SL_OK)
		return rc;
	if (!present)
		return sl_error_set(SL_EINVAL, "PostgreSQL: table %s has no column \"%s\"",
		                    table_name, column);
	if (strcmp(type, "bytea") == 0)
		return pg_append_ident(expr, link->conn, column, strlen(column));
	if (category != 'S')
		return sl_error_set(SL_EINVAL,
		                    "PostgreSQL: data column \"%s\" of %s is %s, not bytea or text",
		                    column, table_name, type);
	if ((rc = sl_buf_append_str(expr, "convert_to(")) != SL_OK ||
	    (rc = pg_append_ident(expr, link->conn, column, strlen(column))) != SL_OK ||
	    (rc = sl_buf_append_str(expr, "::text, 'UTF8')")) != SL_OK)
		return rc;
	return SL_OK;
}
