/*
 * PostgreSQL connections with deadlines, shared by the engine's PostgreSQL
 * tier (engine/tier_pg.c) and the mirror (pipeline/mirror_pg.c).
 *
 * libpq's blocking calls wait forever on a frozen server (the kernel still
 * accepts our bytes), so connections are nonblocking: sl_pg_run() sends,
 * then poll()s against timeout_ms plus a grace, renewed whenever a result
 * arrives or COPY data goes out, behind the server's own statement_timeout
 * (which normally answers first and keeps the connection usable).
 * Connecting is PQconnectStartParams + PQconnectPoll under the same
 * deadline (a host name is resolved first, blocking). A deadline that
 * passes drops the connection; PQcancel would not help, it waits for an
 * answer from the postmaster, which a frozen one never gives. TCP
 * keepalives and tcp_user_timeout catch a peer that is gone. A dropped
 * connection, or one the server closed while idle (a restart), is replaced
 * by sl_pg_conn_ready(), so a caller comes back by itself with PostgreSQL.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "connect/pg_conn.h"
#include "connect/pg_util.h"

static uint64_t now_ms(void)
{
	return sl_clock_mono_ns() / 1000000u;
}

/* How long the client waits for the next sign of life: statement_timeout
 * and a grace, so the server's own "canceling statement" normally wins. */
static unsigned wait_ms(const sl_pg_conn *c)
{
	unsigned grace = c->timeout_ms / 4;
	return c->timeout_ms + (grace < 200 ? 200 : grace > 2000 ? 2000 : grace);
}

void sl_pg_call_init(sl_pg_call *q, const char *what, const char *sql)
{
	memset(q, 0, sizeof(*q));
	q->what = what;
	q->sql = sql;
	q->n_params = -1;
}

/* One statement with parameters, binary results. */
void sl_pg_call_params(sl_pg_call *q, int n, const char *const *values, const int *lengths,
                       const int *formats)
{
	q->n_params = n;
	q->values = values;
	q->lengths = lengths;
	q->formats = formats;
	q->binary_result = 1;
}

void sl_pg_call_clear(sl_pg_call *q)
{
	for (int i = 0; i < q->n_res; i++)
		PQclear(q->res[i]);
	q->n_res = 0;
}

void sl_pg_conn_drop(sl_pg_conn *c)
{
	if (c->conn != NULL)
		PQfinish(c->conn);
	c->conn = NULL;
}

/* The connection failed (libpq's own error): drop it. */
static int conn_error(sl_pg_conn *c, const char *what)
{
	char msg[SL_ERROR_MSG_MAX];
	sl_pg_one_line(msg, sizeof(msg), c->conn ? PQerrorMessage(c->conn) : "not connected");
	sl_pg_conn_drop(c);
	return sl_error_set_cause(SL_EIO, "libpq", "%s %s: %s", c->label, what, msg);
}

/* Wait until the socket is ready; on a timeout or a failure, drop it. */
static int wait_conn(sl_pg_conn *c, short events, uint64_t deadline, const char *what)
{
	struct pollfd pfd = {.fd = PQsocket(c->conn), .events = events};
	int n = 1;
	while (pfd.fd >= 0) { /* a broken socket: the next libpq call says why */
		uint64_t now = now_ms(), left = deadline > now ? deadline - now : 0;
		if ((n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left)) > 0 ||
		    (n == 0 && left == 0) || (n < 0 && errno != EINTR))
			break;
	}
	if (n > 0 || pfd.fd < 0)
		return SL_OK;
	n = n < 0 ? errno : 0;
	sl_pg_conn_drop(c);
	if (n != 0)
		return sl_error_set_cause(SL_EIO, strerror(n), "%s %s: poll", c->label, what);
	return sl_error_set(SL_ETIMEOUT,
	                    "%s %s: no answer within %u ms (server down or frozen?);"
	                    " connection dropped",
	                    c->label, what, wait_ms(c));
}

/* Push out what libpq has queued. */
int sl_pg_flush(sl_pg_conn *c, const char *what)
{
	uint64_t deadline = now_ms() + wait_ms(c);
	for (;;) {
		int r = PQflush(c->conn), rc;
		if (r == 0)
			return SL_OK;
		if (r < 0)
			return conn_error(c, what);
		if ((rc = wait_conn(c, POLLIN | POLLOUT, deadline, what)) != SL_OK)
			return rc;
		if (!PQconsumeInput(c->conn))
			return conn_error(c, what);
	}
}

/* Queue COPY data (the end of it when data is NULL). 1: the server ended the
 * COPY early (it sent an error, which sl_pg_run() collects). */
int sl_pg_put_copy(sl_pg_conn *c, const void *data, size_t len)
{
	uint64_t deadline = now_ms() + wait_ms(c);
	for (;;) {
		int r = data ? PQputCopyData(c->conn, data, (int)len) : PQputCopyEnd(c->conn, NULL);
		int rc;
		if (r == 1)
			return SL_OK;
		if (r < 0)
			return PQstatus(c->conn) == CONNECTION_OK ? 1 : conn_error(c, "write");
		if ((rc = wait_conn(c, POLLOUT, deadline, "write")) != SL_OK)
			return rc;
	}
}

/* Class 22 data exception, 23 integrity constraint, 54 program limit (a key
 * too long for the index): the row's fault, not the server's. */
int sl_pg_is_data_error(const char *state)
{
	return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
	       strncmp(state, "54", 2) == 0;
}

static int result_error(sl_pg_call *q, sl_pg_conn *c, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char msg[SL_ERROR_MSG_MAX], cause[32];
	int code = SL_EIO; /* also: no SQLSTATE (libpq's own), 08 and 57P0x (going away) */

	sl_pg_one_line(msg, sizeof(msg), primary ? primary : PQerrorMessage(c->conn));
	sl_pg_one_line(q->detail, sizeof(q->detail), msg);
	snprintf(q->sqlstate, sizeof(q->sqlstate), "%s", state ? state : "");
	snprintf(cause, sizeof(cause), "sqlstate=%s", state ? state : "none");
	if (state != NULL && strcmp(state, "57014") == 0) /* statement_timeout */
		code = SL_ETIMEOUT;
	else if (state != NULL && (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0))
		code = SL_EAUTH;
	else if (state != NULL && (sl_pg_is_data_error(state) || strncmp(state, "42", 2) == 0 ||
	                           strncmp(state, "21", 2) == 0 || strncmp(state, "3F", 2) == 0))
		code = SL_EINVAL; /* the data, or a table that is not as we made it */
	return sl_error_set_cause(code, cause, "%s %s: %s", c->label, q->what, msg);
}

/* Run one exchange with a deadline and collect its results in q->res (the
 * caller clears them). On failure nothing is kept, the first error's
 * SQLSTATE is in q->sqlstate, and a connection in an unknown state is
 * dropped. */
int sl_pg_run(sl_pg_conn *c, sl_pg_call *q)
{
	uint64_t deadline = now_ms() + wait_ms(c);
	PGresult *r;
	int rc = SL_OK, sent;

	q->n_res = 0;
	q->sqlstate[0] = q->detail[0] = '\0';
	if (c->conn == NULL)
		return conn_error(c, q->what);
	sent = q->n_params < 0 ? PQsendQuery(c->conn, q->sql)
	                       : PQsendQueryParams(c->conn, q->sql, q->n_params, NULL, q->values,
	                                           q->lengths, q->formats, q->binary_result);
	if (!sent)
		return conn_error(c, q->what);
	if ((rc = sl_pg_flush(c, q->what)) != SL_OK)
		return rc;
	for (;;) {
		while (PQisBusy(c->conn)) {
			int io = wait_conn(c, POLLIN, deadline, q->what);
			if (io == SL_OK && !PQconsumeInput(c->conn))
				io = conn_error(c, q->what);
			if (io != SL_OK) {
				rc = io;
				goto fail;
			}
		}
		if ((r = PQgetResult(c->conn)) == NULL)
			break;
		switch (PQresultStatus(r)) {
		case PGRES_COPY_IN:
			PQclear(r);
			rc = q->copy ? q->copy(c, q->copy_ctx)
			             : sl_error_set(SL_EINTERNAL, "%s: unexpected COPY", c->label);
			if (rc < SL_OK) {
				sl_pg_conn_drop(c);
				goto fail;
			}
			rc = SL_OK;
			break;
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			if (rc == SL_OK && q->n_res < SL_PG_RESULTS_MAX)
				q->res[q->n_res++] = r;
			else
				PQclear(r);
			break;
		default:
			if (rc == SL_OK)
				rc = result_error(q, c, r);
			PQclear(r);
			break;
		}
		deadline = now_ms() + wait_ms(c);
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		if (rc == SL_OK)
			rc = conn_error(c, q->what);
		sl_pg_conn_drop(c);
	}
	if (rc == SL_OK)
		return SL_OK;
fail:
	sl_pg_call_clear(q);
	return rc;
}

int sl_pg_run_simple(sl_pg_conn *c, const char *what, const char *sql)
{
	sl_pg_call q;
	int rc;
	sl_pg_call_init(&q, what, sql);
	rc = sl_pg_run(c, &q);
	sl_pg_call_clear(&q);
	return rc;
}

static int conn_connect(sl_pg_conn *c)
{
	char connect_s[16], idle_s[16], user_timeout[16], setup[128];
	const char *keys[] = {"dbname",
	                      "application_name",
	                      "client_encoding",
	                      "connect_timeout",
	                      "keepalives",
	                      "keepalives_idle",
	                      "keepalives_count",
	                      "keepalives_interval",
	                      "tcp_user_timeout",
	                      "replication",
	                      NULL};
	const char *values[] = {c->url, "sluice", "UTF8",       connect_s,  "1", idle_s,
	                        "3",    "1",      user_timeout, "database", NULL};
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	uint64_t deadline = now_ms() + wait_ms(c);
	int rc = SL_OK;

	/* our deadline governs; connect_timeout (whole seconds) covers anything
	 * libpq would do on its own */
	snprintf(connect_s, sizeof(connect_s), "%u", (c->timeout_ms + 999) / 1000);
	snprintf(idle_s, sizeof(idle_s), "%u", c->timeout_ms < 2000 ? 1 : c->timeout_ms / 2000);
	snprintf(user_timeout, sizeof(user_timeout), "%u", c->timeout_ms);
	if (!c->replication)
		keys[9] = NULL; /* an ordinary session */
	if ((c->conn = PQconnectStartParams(keys, values, 1)) == NULL)
		return sl_error_set(SL_ENOMEM, "%s: out of memory connecting", c->label);
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED || PQstatus(c->conn) == CONNECTION_BAD)
			return conn_error(c, "connect");
		rc = wait_conn(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline,
		               "connect");
		if (rc != SL_OK)
			return rc;
		st = PQconnectPoll(c->conn);
	}
	PQsetNoticeProcessor(c->conn, sl_pg_ignore_notice, NULL);
	if (PQsetnonblocking(c->conn, 1) != 0)
		return conn_error(c, "connect");
	snprintf(setup, sizeof(setup),
	         "SET statement_timeout = %u; SET client_min_messages = warning", c->timeout_ms);
	if ((rc = sl_pg_run_simple(c, "session setup", setup)) == SL_OK && c->setup != NULL)
		rc = sl_pg_run_simple(c, "session setup", c->setup);
	if (rc != SL_OK)
		sl_pg_conn_drop(c);
	return rc;
}

/* Make c usable for a call: replace a connection that is gone or was left in
 * a transaction. The server's goodbye to an idle connection (a restart)
 * waits on the socket; reading it first means we connect afresh instead of
 * failing this call. */
int sl_pg_conn_ready(sl_pg_conn *c)
{
	if (c->conn != NULL) {
		/* the goodbye message, then the end of the stream */
		for (int i = 0; i < 4 && PQstatus(c->conn) == CONNECTION_OK; i++) {
			struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
			if (poll(&pfd, 1, 0) <= 0 || !PQconsumeInput(c->conn))
				break;
		}
		if (PQstatus(c->conn) != CONNECTION_OK ||
		    PQtransactionStatus(c->conn) != PQTRANS_IDLE)
			sl_pg_conn_drop(c);
	}
	return c->conn != NULL ? SL_OK : conn_connect(c);
}

/* A call on a connection of its own: lock, (re)connect, run. */
int sl_pg_run_locked(sl_pg_conn *c, sl_pg_call *q)
{
	int rc;
	pthread_mutex_lock(&c->lock);
	if ((rc = sl_pg_conn_ready(c)) == SL_OK)
		rc = sl_pg_run(c, q);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* End a failed transaction, keeping the error that ended it. */
void sl_pg_rollback(sl_pg_conn *c)
{
	sl_error saved;
	if (c->conn == NULL || PQtransactionStatus(c->conn) == PQTRANS_IDLE)
		return;
	saved = *sl_error_last();
	if (sl_pg_run_simple(c, "rollback", "ROLLBACK") != SL_OK)
		sl_pg_conn_drop(c);
	sl_error_set_cause(saved.code, saved.cause, "%s", saved.message);
}

/* ------------------------------------------------------------------ COPY */

#define COPY_CHUNK (64u << 10)

int sl_pg_copy_start(sl_pg_copy_writer *w, sl_pg_conn *c)
{
	static const uint8_t header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	w->c = c;
	sl_buf_init(&w->chunk, 2 * COPY_CHUNK);
	return sl_buf_append(&w->chunk, header, sizeof(header));
}

int sl_pg_copy_put(sl_pg_copy_writer *w, const void *data, size_t len)
{
	int rc;
	if (w->chunk.len + len > COPY_CHUNK && w->chunk.len > 0) {
		if ((rc = sl_pg_put_copy(w->c, w->chunk.data, w->chunk.len)) != SL_OK)
			return rc;
		sl_buf_reset(&w->chunk);
	}
	return len > COPY_CHUNK ? sl_pg_put_copy(w->c, data, len)
	                        : sl_buf_append(&w->chunk, data, len);
}

int sl_pg_copy_finish(sl_pg_copy_writer *w, int rc, const char *what)
{
	static const uint8_t trailer[2] = {0xff, 0xff};
	if (rc == SL_OK && (rc = sl_buf_append(&w->chunk, trailer, sizeof(trailer))) == SL_OK &&
	    (rc = sl_pg_put_copy(w->c, w->chunk.data, w->chunk.len)) == SL_OK &&
	    (rc = sl_pg_put_copy(w->c, NULL, 0)) == SL_OK)
		rc = sl_pg_flush(w->c, what);
	sl_buf_free(&w->chunk);
	return rc < 0 ? rc : SL_OK; /* 1: the server stopped the COPY with an error */
}
