/*
 * What a mirror's operator asks of it: its status, and its dead letters
 * (listed, and applied again). Reading never creates a table: a mirror
 * that never ran has no position (exists = 0) and no dead letters.
 *
 * A retried dead letter goes through the same transaction as a batch
 * (mirror_pg.c), whose finishing statement deletes the dead letter instead
 * of moving the position: the event is applied and leaves the dead letters
 * in one commit, or neither. The version guard holds as always, so an old
 * event retried after its key moved on changes no row (the handler still
 * sees it, with applied 0 and was_missed 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/mirror_internal.h"

void mirror_reader_init(sl_pg_conn *c, const sl_mirror_options *o)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->url = o->pg_url;
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
	c->label = "mirror: PostgreSQL";
}

void mirror_reader_close(sl_pg_conn *c)
{
	sl_pg_conn_drop(c);
	pthread_mutex_destroy(&c->lock);
}

static uint64_t u64_at(const PGresult *r, int row, int col)
{
	return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

/* ---------------------------------------------------------------- status */

/* One row about source from a table that may not exist (tables of a
 * mirror that never ran, or of an older sluice): *row is NULL then, or
 * when there is none; text results, cleared by the caller. */
static int read_row(sl_pg_conn *c, const char *what, const char *sql, const char *source,
                    sl_pg_call *q, const PGresult **row)
{
	const char *values[1] = {source};
	int rc;
	*row = NULL;
	sl_pg_call_init(q, what, sql);
	sl_pg_call_params(q, 1, values, NULL, NULL);
	q->binary_result = 0;
	rc = sl_pg_run_locked(c, q);
	if (rc != SL_OK && strcmp(q->sqlstate, "42P01") == 0)
		return SL_OK;
	if (rc == SL_OK && PQntuples(q->res[0]) == 1)
		*row = q->res[0];
	return rc;
}

/* The last finished reconcile of the source (workers' rows name it with
 * "#part=I/W" after it, a Kafka partition's with "/P"). */
static int read_reconciled(sl_pg_conn *c, const char *source, sl_mirror_status *out)
{
	static const char sql[] =
	        "SELECT (extract(epoch FROM finished_at) * 1000)::bigint, applied, missing"
	        " FROM sluice_mirror_reconcile WHERE (source = split_part($1, '#part=', 1)"
	        " OR left($1, length(source) + 1) = source || '/')"
	        " AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1";
	const PGresult *r;
	sl_pg_call q;
	int rc = read_row(c, "read the last reconcile", sql, source, &q, &r);
	if (r) {
		out->reconciled_ms = u64_at(r, 0, 0);
		out->reconciled_applied = u64_at(r, 0, 1);
		out->missing_in_source = u64_at(r, 0, 2);
	}
	sl_pg_call_clear(&q);
	return rc;
}

static int read_gaps(sl_pg_conn *c, const char *source, sl_mirror_status *out)
{
	static const char sql[] =
	        "SELECT (SELECT count(*) FROM sluice_mirror_gap WHERE source = $1), from_pos,"
	        " to_pos, (extract(epoch FROM detected_at) * 1000)::bigint, continued, message"
	        " FROM sluice_mirror_gap WHERE source = $1 ORDER BY detected_at DESC, id DESC"
	        " LIMIT 1";
	const PGresult *r;
	sl_pg_call q;
	int rc = read_row(c, "read the gaps", sql, source, &q, &r);
	if (r) {
		out->gaps = u64_at(r, 0, 0);
		out->last_gap_from = u64_at(r, 0, 1);
		out->last_gap_to = u64_at(r, 0, 2);
		out->last_gap_ms = u64_at(r, 0, 3);
		out->last_gap_continued = PQgetvalue(r, 0, 4)[0] == 't';
		snprintf(out->last_gap_message, sizeof(out->last_gap_message), "%s",
		         PQgetvalue(r, 0, 5));
	}
	sl_pg_call_clear(&q);
	return rc;
}

int sl_mirror_status_read(sl_event_source *src, const sl_mirror_options *o, const char *source,
                          sl_mirror_status *out)
{
	static const char sql[] =
	        "SELECT p.pos, p.applied, (extract(epoch FROM p.updated_at) * 1000)::bigint,"
	        " coalesce(p.last_error, ''),"
	        " coalesce((extract(epoch FROM p.last_error_at) * 1000)::bigint, 0),"
	        " (SELECT count(*) FROM sluice_dead_letter d WHERE d.source = p.source),"
	        " extract(epoch FROM now() - p.updated_at)"
	        " FROM sluice_mirror_position p WHERE p.source = $1";
	sl_event_source_head head = {0, 0};
	const PGresult *r;
	sl_pg_conn c;
	sl_pg_call q;
	double idle_s = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->source, sizeof(out->source), "%s", source);
	if (src && src->ops->head(src->self, &head) == SL_OK && head.known) {
		out->head_known = 1;
		out->head = head.end;
	}
	mirror_reader_init(&c, o);
	rc = read_row(&c, "read the status", sql, source, &q, &r);
	if (r) {
		out->exists = 1;
		out->pos = u64_at(r, 0, 0);
		out->applied = u64_at(r, 0, 1);
		out->updated_ms = u64_at(r, 0, 2);
		snprintf(out->last_error, sizeof(out->last_error), "%s", PQgetvalue(r, 0, 3));
		out->last_error_ms = u64_at(r, 0, 4);
		out->dead_letters = u64_at(r, 0, 5);
		idle_s = strtod(PQgetvalue(r, 0, 6), NULL);
	}
	sl_pg_call_clear(&q);
	if (rc == SL_OK && out->exists)
		rc = read_gaps(&c, source, out);
	if (rc == SL_OK && out->exists)
		rc = read_reconciled(&c, source, out);
	mirror_reader_close(&c);
	if (rc == SL_OK && out->head_known && out->head > out->pos) {
		out->lag_events = out->head - out->pos;
		out->lag_s = idle_s > 0 ? idle_s : 0;
	}
	return rc;
}

/* ---------------------------------------------------------- dead letters */

#define DLQ_COLUMNS                                                                                \
	"SELECT id, source, pos, key, op, payload, version, sqlstate, error, attempts,"            \
	" first_failure::text, last_failure::text FROM sluice_dead_letter"

/* The dead letter in row i of r; the payload is unescaped into *payload
 * (PQfreemem). */
static int dead_letter_at(const PGresult *r, int i, sl_dead_letter *d, unsigned char **payload)
{
	size_t len = 0;
	memset(d, 0, sizeof(*d));
	*payload = NULL;
	d->id = (int64_t)strtoll(PQgetvalue(r, i, 0), NULL, 10);
	d->source = PQgetvalue(r, i, 1);
	d->pos = u64_at(r, i, 2);
	d->key = PQgetvalue(r, i, 3);
	d->op = PQgetvalue(r, i, 4);
	if (!PQgetisnull(r, i, 5)) {
		if ((*payload = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 5),
		                                &len)) == NULL)
			return sl_error_set(SL_ENOMEM,
			                    "mirror: out of memory reading a dead letter");
		d->payload = *payload;
		d->payload_len = len;
	}
	d->version = u64_at(r, i, 6);
	d->sqlstate = PQgetvalue(r, i, 7);
	d->error = PQgetvalue(r, i, 8);
	d->attempts = (uint32_t)strtoul(PQgetvalue(r, i, 9), NULL, 10);
	d->first_failure = PQgetvalue(r, i, 10);
	d->last_failure = PQgetvalue(r, i, 11);
	return SL_OK;
}

/* The dead letters of source (NULL: all; id non-zero: that one) into *res. */
static int dlq_select(sl_pg_conn *c, const char *source, int64_t id, PGresult **res)
{
	char id_text[24];
	const char *values[2] = {source, id_text};
	sl_pg_call q;
	int rc;
	snprintf(id_text, sizeof(id_text), "%lld", (long long)id);
	sl_pg_call_init(&q, "read the dead letters",
	                DLQ_COLUMNS " WHERE ($1::text IS NULL OR source = $1)"
	                            " AND ($2::bigint = 0 OR id = $2) ORDER BY id");
	sl_pg_call_params(&q, 2, values, NULL, NULL);
	q.binary_result = 0;
	*res = NULL;
	if ((rc = sl_pg_run_locked(c, &q)) != SL_OK) {
		int missing = strcmp(q.sqlstate, "42P01") == 0;
		sl_pg_call_clear(&q);
		return missing ? SL_OK : rc;
	}
	*res = q.res[0];
	q.n_res = 0; /* the caller owns the result */
	return SL_OK;
}

int sl_mirror_dlq_list(const sl_mirror_options *o, const char *source, sl_dead_letter_fn cb,
                       void *ctx)
{
	PGresult *res = NULL;
	sl_pg_conn c;
	int rc;
	mirror_reader_init(&c, o);
	rc = dlq_select(&c, source, 0, &res);
	for (int i = 0; rc == SL_OK && res && i < PQntuples(res); i++) {
		sl_dead_letter d;
		unsigned char *payload;
		if ((rc = dead_letter_at(res, i, &d, &payload)) == SL_OK)
			rc = cb(ctx, &d);
		PQfreemem(payload);
	}
	PQclear(res);
	mirror_reader_close(&c);
	return rc;
}

/* A failed retry stays, with its count and error brought up to date. */
static void note_failed_retry(mirror_db *db, const sl_dead_letter *d, const mirror_fail *f)
{
	char id[24];
	const char *values[3] = {id, f->sqlstate, f->error};
	sl_pg_call q;
	snprintf(id, sizeof(id), "%lld", (long long)d->id);
	sl_pg_call_init(&q, "update a dead letter",
	                "UPDATE sluice_dead_letter SET attempts = attempts + 1,"
	                " last_failure = now(), sqlstate = $2, error = $3 WHERE id = $1");
	sl_pg_call_params(&q, 3, values, NULL, NULL);
	if (sl_pg_conn_ready(&db->pg) == SL_OK)
		sl_pg_run(&db->pg, &q);
	sl_pg_call_clear(&q);
}

/* Apply one dead letter in a transaction that deletes it. */
static int retry_one(mirror_db *db, const sl_dead_letter *d, int *ok)
{
	sl_event_batch b;
	mirror_finish fin = {NULL, "remove the dead letter"};
	mirror_fail fail;
	sl_event_op op;
	int rc;

	*ok = 0;
	if (sl_event_op_parse(&op, d->op) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "mirror: dead letter %lld has op \"%s\"",
		                    (long long)d->id, d->op);
	sl_event_batch_init(&b);
	rc = sl_event_batch_add(
	        &b, d->pos, op, d->key, strlen(d->key), op == SL_EVENT_DELETE ? NULL : d->payload,
	        op == SL_EVENT_DELETE ? 0 : d->payload_len, d->version ? d->version : 1);
	if (rc == SL_OK && (fin.sql = sl_malloc(80)) != NULL) { /* an id: no quoting needed */
		snprintf(fin.sql, 80, "DELETE FROM sluice_dead_letter WHERE id = %lld;",
		         (long long)d->id);
		rc = mirror_db_apply(db, b.events, 1, d->attempts + 1, 1, &fin, &fail);
		if (rc == SL_OK)
			*ok = 1;
		else if (fail.kind == FAIL_FENCED)
			rc = SL_OK; /* retried by someone else meanwhile */
		else if (fail.kind == FAIL_POISON || fail.kind == FAIL_TRANSIENT) {
			sl_log(SL_LOG_WARN, "mirror: a dead letter failed again", "id=%lld %s",
			       (long long)d->id, fail.error);
			note_failed_retry(db, d, &fail);
			rc = SL_OK;
		}
	} else if (rc == SL_OK) {
		rc = SL_ENOMEM;
	}
	mirror_finish_free(&fin);
	sl_event_batch_free(&b);
	return rc;
}

int sl_mirror_dlq_retry(const sl_mirror_options *o, const char *source, int64_t id,
                        uint64_t *applied, uint64_t *failed)
{
	PGresult *res = NULL;
	mirror_db db;
	int rc;

	*applied = *failed = 0;
	if ((rc = mirror_db_open(&db, o)) != SL_OK)
		return rc;
	rc = dlq_select(&db.pg, source, id, &res);
	if (rc == SL_OK && id != 0 && (!res || PQntuples(res) == 0))
		rc = sl_error_set(SL_ENOTFOUND, "mirror: no dead letter %lld%s%s", (long long)id,
		                  source ? " of " : "", source ? source : "");
	for (int i = 0; rc == SL_OK && res && i < PQntuples(res); i++) {
		sl_dead_letter d;
		unsigned char *payload;
		int ok = 0;
		if ((rc = dead_letter_at(res, i, &d, &payload)) == SL_OK &&
		    (rc = retry_one(&db, &d, &ok)) == SL_OK)
			*(ok ? applied : failed) += 1;
		PQfreemem(payload);
	}
	PQclear(res);
	mirror_db_close(&db);
	return rc;
}
