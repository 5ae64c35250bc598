/* PostgreSQL connections with deadlines (pg_conn.c): private to the
 * layers that talk to PostgreSQL over libpq. */
#ifndef SLUICE_CONNECT_PG_CONN_H
#define SLUICE_CONNECT_PG_CONN_H

#include <pthread.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "sluice/base.h"

#define SL_PG_RESULTS_MAX 8

/* A connection made on demand: set url, timeout_ms, label (and setup), and
 * init lock; conn starts NULL. */
typedef struct sl_pg_conn {
	PGconn *conn; /* NULL: connect at the next call */
	pthread_mutex_t lock;
	const char *url;
	unsigned timeout_ms;
	const char *setup; /* statements run after each connect, or NULL */
	const char *label; /* what messages call it: "PostgreSQL L3", "mirror" */
	int replication;   /* a walsender connection (replication=database) */
} sl_pg_conn;

/* One exchange: a query string (n_params < 0: simple protocol, several
 * statements, text results) or one statement with parameters. */
typedef struct sl_pg_call {
	const char *what; /* for messages: "write", "get", ... */
	const char *sql;
	int n_params;
	const char *const *values;
	const int *lengths;
	const int *formats;
	int binary_result;
	int (*copy)(sl_pg_conn *c, void *ctx); /* feeds COPY FROM STDIN */
	void *copy_ctx;
	/* out */
	PGresult *res[SL_PG_RESULTS_MAX];
	int n_res;
	char sqlstate[6]; /* of the error the server sent, or "" */
	char detail[160]; /* its primary message */
} sl_pg_call;

void sl_pg_call_init(sl_pg_call *q, const char *what, const char *sql);
/* One statement with parameters, binary results. */
void sl_pg_call_params(sl_pg_call *q, int n, const char *const *values, const int *lengths,
                       const int *formats);
void sl_pg_call_clear(sl_pg_call *q); /* frees the results */
void sl_pg_conn_drop(sl_pg_conn *c);  /* closes; the next call connects afresh */
/* Push out what libpq has queued. */
int sl_pg_flush(sl_pg_conn *c, const char *what);
/* Queue COPY data (the end of it when data is NULL), for a copy callback.
 * 1: the server ended the COPY early (it sent an error, which sl_pg_run
 * collects). */
int sl_pg_put_copy(sl_pg_conn *c, const void *data, size_t len);
/* Class 22 data exception, 23 integrity constraint, 54 program limit (a key
 * too long for the index): the row's fault, not the server's. */
int sl_pg_is_data_error(const char *state);
/* Run one exchange with a deadline and collect its results in q->res (the
 * caller clears them). On failure nothing is kept, the first error's
 * SQLSTATE is in q->sqlstate (with the code: SL_ETIMEOUT for
 * statement_timeout, SL_EAUTH for class 28 and 42501, SL_EINVAL for data
 * errors and classes 42, 21, 3F, SL_EIO otherwise), and a connection in an
 * unknown state is dropped. */
int sl_pg_run(sl_pg_conn *c, sl_pg_call *q);
int sl_pg_run_simple(sl_pg_conn *c, const char *what, const char *sql);
/* Make c usable for a call: replace a connection that is gone or was left
 * in a transaction. */
int sl_pg_conn_ready(sl_pg_conn *c);
/* A call on a connection of its own: lock, make ready, run. */
int sl_pg_run_locked(sl_pg_conn *c, sl_pg_call *q);
/* End a failed transaction, keeping the error that ended it. */
void sl_pg_rollback(sl_pg_conn *c);

/* Writing COPY ... FROM STDIN (FORMAT binary) data from a copy callback:
 * start (the header), put the rows' bytes (a row is a be16 field count,
 * then per field a be32 length, -1 for NULL, and its bytes), then finish
 * with the first error met (or SL_OK): it sends the trailer and the end of
 * the data unless rc is an error, and frees. finish returns rc, or SL_OK
 * when the server ended the COPY early (sl_pg_run then reports its
 * error). */
typedef struct sl_pg_copy_writer {
	sl_pg_conn *c;
	sl_buf chunk;
} sl_pg_copy_writer;

int sl_pg_copy_start(sl_pg_copy_writer *w, sl_pg_conn *c);
int sl_pg_copy_put(sl_pg_copy_writer *w, const void *data, size_t len);
int sl_pg_copy_finish(sl_pg_copy_writer *w, int rc, const char *what);

#endif
