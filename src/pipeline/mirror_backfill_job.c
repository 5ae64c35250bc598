/*
 * Backfill jobs (mirror_backfill.c has the design, the invariants B1 to
 * B6 and the workers): the job table, a plan's ranges written in one
 * transaction with the live mirror's handoff position, and what status
 * reads of a job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/mirror_backfill_internal.h"

#define TABLE_SQL                                                                                  \
	"BEGIN; SELECT pg_advisory_xact_lock(7291, hashtext('sluice_backfill'));"                  \
	" CREATE TABLE IF NOT EXISTS sluice_backfill_range (job text NOT NULL, id integer NOT"     \
	" NULL, source text NOT NULL, from_pos bigint NOT NULL, to_pos bigint NOT NULL,"           \
	" progress bigint NOT NULL, state text NOT NULL DEFAULT 'pending' CHECK (state IN"         \
	" ('pending', 'done', 'dead')), attempts integer NOT NULL DEFAULT 0, owner text,"          \
	" lease_until timestamptz, error text, rows bigint NOT NULL DEFAULT 0, updated_at"         \
	" timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, id)); COMMIT"

static const mirror_column range_columns[] = {{"job", "text", NULL},
                                              {"id", "integer", NULL},
                                              {"source", "text", NULL},
                                              {"from_pos", "bigint", NULL},
                                              {"to_pos", "bigint", NULL},
                                              {"progress", "bigint", NULL},
                                              {"state", "text", NULL},
                                              {"attempts", "integer", NULL},
                                              {"owner", "text", NULL},
                                              {"lease_until", "timestamp with time zone", NULL},
                                              {"error", "text", NULL},
                                              {"rows", "bigint", NULL},
                                              {"updated_at", "timestamp with time zone", NULL},
                                              {NULL, NULL, NULL}};

/* The ranges of a plan (ids from 1): range i starts at $2 + (i-1) * $5 +
 * least(i-1, $6) and is $5 long, one more for the first $6, cut at $3.
 * Parameters: $1 job, $2 from, $3 to, $4 ranges, $5 base, $6 rem,
 * $7 source. */
#define PLAN_SQL                                                                                   \
	"WITH s AS (SELECT i + 1 AS id, $2::bigint + i * $5::bigint + least(i, $6::bigint) AS f,"  \
	" CASE WHEN i < $6::bigint THEN 1 ELSE 0 END AS extra FROM generate_series(0::bigint,"     \
	" $4::bigint - 1) i), x AS (SELECT id, f, least(f + $5::bigint + extra, $3::bigint) AS t"  \
	" FROM s) "

void sl_backfill_plan_init(sl_backfill_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->handoff = 1;
}

/* -------------------------------------------------------------- helpers */

uint64_t backfill_u64(const PGresult *r, int row, int col)
{
	return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

/* One statement with text parameters and text results, on a connection
 * made ready unless in a transaction. The caller clears q. */
int backfill_query(sl_pg_conn *c, int in_txn, sl_pg_call *q, const char *what, const char *sql,
                   int n, const char *const *values)
{
	int rc;
	sl_pg_call_init(q, what, sql);
	sl_pg_call_params(q, n, values, NULL, NULL);
	q->binary_result = 0;
	if (!in_txn && (rc = sl_pg_conn_ready(c)) != SL_OK)
		return rc;
	return sl_pg_run(c, q);
}

int backfill_check_job(const char *job)
{
	if (!job || !job[0] || strlen(job) > SL_BACKFILL_JOB_MAX)
		return sl_error_set(SL_EINVAL, "backfill: a job's name is 1 to %d bytes",
		                    SL_BACKFILL_JOB_MAX);
	return SL_OK;
}

int backfill_check_options(const sl_mirror_options *o)
{
	if (!o->pg_url || !o->pg_url[0] || !o->table || !o->table[0])
		return sl_error_set(SL_EINVAL, "backfill: no PostgreSQL url or no target table");
	if (o->batch_size == 0 || o->batch_bytes == 0 || o->max_attempts == 0 ||
	    o->retry_base_ms == 0 || o->retry_max_ms < o->retry_base_ms || o->timeout_ms == 0)
		return sl_error_set(
		        SL_EINVAL, "backfill: batch_size, batch_bytes, max_attempts, retry_base_ms "
		                   "and timeout_ms must be at least 1, retry_max_ms at least "
		                   "retry_base_ms");
	if (o->delete_removes) /* B5 needs every delete remembered */
		return sl_error_set(
		        SL_EINVAL,
		        "backfill: ranges are applied in any order, which only "
		        "tombstones make safe: a removed key would come back with an "
		        "older event of a range applied later (deletes = \"tombstone\")");
	return SL_OK;
}

/* The job table, checked before it is made (so a refused table changes
 * nothing) and after (another process may have made it meanwhile). */
int backfill_prepare_table(mirror_db *db)
{
	int rc;
	if ((rc = mirror_db_check_table(db, "sluice_backfill_range", range_columns)) != SL_OK)
		return rc;
	if ((rc = sl_pg_conn_ready(&db->pg)) != SL_OK ||
	    (rc = sl_pg_run_simple(&db->pg, "create the backfill table", TABLE_SQL)) != SL_OK) {
		sl_pg_rollback(&db->pg);
		return rc;
	}
	return mirror_db_check_table(db, "sluice_backfill_range", range_columns);
}

/* ------------------------------------------------------------------ plan */

typedef struct plan_shape {
	uint64_t from, to, ranges, base, rem;
} plan_shape;

static int shape_plan(const sl_backfill_plan *p, uint64_t from, uint64_t to, plan_shape *s)
{
	uint64_t len;
	if (from >= to)
		return sl_error_set(SL_EINVAL, "backfill: nothing to plan: [%llu, %llu) is empty",
		                    (unsigned long long)from, (unsigned long long)to);
	if (to > INT64_MAX)
		return sl_error_set(SL_EINVAL, "backfill: positions end at %lld",
		                    (long long)INT64_MAX);
	len = to - from;
	s->from = from;
	s->to = to;
	if ((p->ranges != 0) == (p->range_size != 0))
		return sl_error_set(SL_EINVAL,
		                    "backfill: give either a number of ranges or a range size");
	if (p->ranges) {
		s->ranges = p->ranges < len ? p->ranges : len;
		s->base = len / s->ranges;
		s->rem = len % s->ranges;
	} else {
		s->ranges = len / p->range_size + (len % p->range_size != 0);
		s->base = p->range_size < len ? p->range_size : len;
		s->rem = 0;
	}
	if (s->ranges > SL_BACKFILL_RANGES_MAX)
		return sl_error_set(SL_EINVAL, "backfill: %llu ranges; a job has at most %d",
		                    (unsigned long long)s->ranges, SL_BACKFILL_RANGES_MAX);
	return SL_OK;
}

/* What the job holds already: its ranges, their span and source. */
typedef struct existing {
	uint64_t ranges, from, to;
	char source[512];
} existing;

static int read_existing(mirror_db *db, const char *job, existing *e)
{
	const char *values[1] = {job};
	sl_pg_call q;
	int rc = backfill_query(
	        &db->pg, 1, &q, "read the job",
	        "SELECT count(*), coalesce(min(from_pos), 0), coalesce(max(to_pos), 0),"
	        " coalesce(min(source), '') FROM sluice_backfill_range WHERE job = $1",
	        1, values);
	if (rc == SL_OK) {
		e->ranges = backfill_u64(q.res[0], 0, 0);
		e->from = backfill_u64(q.res[0], 0, 1);
		e->to = backfill_u64(q.res[0], 0, 2);
		snprintf(e->source, sizeof(e->source), "%s", PQgetvalue(q.res[0], 0, 3));
	}
	sl_pg_call_clear(&q);
	return rc;
}

/* Writes the ranges of s (new: 1), or checks that the job's are those. */
static int write_ranges(mirror_db *db, const char *job, const char *source, const plan_shape *s,
                        const existing *e, int *existed)
{
	char from[24], to[24], n[24], base[24], rem[24];
	const char *values[7] = {job, from, to, n, base, rem, source};
	sl_pg_call q;
	uint64_t matched = 0;
	int rc;

	snprintf(from, sizeof(from), "%llu", (unsigned long long)s->from);
	snprintf(to, sizeof(to), "%llu", (unsigned long long)s->to);
	snprintf(n, sizeof(n), "%llu", (unsigned long long)s->ranges);
	snprintf(base, sizeof(base), "%llu", (unsigned long long)s->base);
	snprintf(rem, sizeof(rem), "%llu", (unsigned long long)s->rem);
	*existed = e->ranges > 0;
	if (!*existed) {
		rc = backfill_query(&db->pg, 1, &q, "write the ranges",
		                    PLAN_SQL
		                    "INSERT INTO sluice_backfill_range (job, id, source, from_pos,"
		                    " to_pos, progress) SELECT $1, id, $7, f, t, f FROM x",
		                    7, values);
		sl_pg_call_clear(&q);
		return rc;
	}
	rc = backfill_query(&db->pg, 1, &q, "compare the plans",
	                    PLAN_SQL
	                    "SELECT count(*) FROM sluice_backfill_range b JOIN x ON b.id = x.id AND"
	                    " b.from_pos = x.f AND b.to_pos = x.t WHERE b.job = $1 AND"
	                    " b.source = $7",
	                    7, values);
	if (rc == SL_OK)
		matched = backfill_u64(q.res[0], 0, 0);
	sl_pg_call_clear(&q);
	if (rc != SL_OK)
		return rc;
	if (matched == s->ranges && e->ranges == s->ranges)
		return SL_OK;
	return sl_error_set(SL_EEXISTS,
	                    "backfill: job \"%s\" exists with another plan (%llu ranges over "
	                    "[%llu, %llu) of %s; this one is %llu ranges over [%llu, %llu) of %s): "
	                    "plan under another name",
	                    job, (unsigned long long)e->ranges, (unsigned long long)e->from,
	                    (unsigned long long)e->to, e->source, (unsigned long long)s->ranges,
	                    (unsigned long long)s->from, (unsigned long long)s->to, source);
}

/* The live mirror's position: made at `to` when the source has none and
 * handoff is asked, else read. */
static int handoff(mirror_db *db, const sl_backfill_plan *p, const char *source, const char *state,
                   sl_backfill_planned *out)
{
	char to[24];
	const char *values[4] = {source, to, state, db->o->table};
	sl_pg_call q;
	int rc;

	snprintf(to, sizeof(to), "%llu", (unsigned long long)out->to);
	if (p->handoff) {
		rc = backfill_query(
		        &db->pg, 1, &q, "make the live position",
		        "INSERT INTO sluice_mirror_position (source, pos, state, target)"
		        " VALUES ($1, $2, $3, $4) ON CONFLICT (source) DO NOTHING RETURNING pos",
		        4, values);
		if (rc == SL_OK && PQntuples(q.res[0]) == 1)
			out->handoff = out->live_exists = 1, out->live_pos = out->to;
		sl_pg_call_clear(&q);
		if (rc != SL_OK || out->handoff)
			return rc;
	}
	rc = backfill_query(&db->pg, 1, &q, "read the live position",
	                    "SELECT pos FROM sluice_mirror_position WHERE source = $1", 1, values);
	if (rc == SL_OK && PQntuples(q.res[0]) == 1)
		out->live_exists = 1, out->live_pos = backfill_u64(q.res[0], 0, 0);
	sl_pg_call_clear(&q);
	return rc;
}

int sl_mirror_backfill_plan(sl_event_source *src, const sl_mirror_options *o,
                            const sl_backfill_plan *p, sl_backfill_planned *out)
{
	char state[SL_EVENT_SOURCE_STATE_MAX + 1] = "";
	const char *values[1] = {p->job};
	sl_event_source_head head = {0, 0};
	sl_backfill_planned res;
	plan_shape shape = {0};
	existing e;
	mirror_db db;
	sl_pg_call q;
	uint64_t to;
	int rc;

	memset(&res, 0, sizeof(res));
	if ((rc = backfill_check_job(p->job)) != SL_OK || (rc = backfill_check_options(o)) != SL_OK)
		return rc;
	if ((rc = src->ops->head(src->self, &head)) != SL_OK)
		return sl_error_set(rc, "backfill: where does %s end? %s", src->name,
		                    sl_error_last()->message);
	if (!head.known && !p->to_set)
		return sl_error_set(SL_EINVAL,
		                    "backfill: %s cannot tell where it ends: give the end (to)",
		                    src->name);
	if (p->to_set && head.known && p->to > head.end)
		return sl_error_set(SL_EINVAL, "backfill: %s ends at %llu, before %llu", src->name,
		                    (unsigned long long)head.end, (unsigned long long)p->to);
	if (src->ops->save_state(src->self, state, sizeof(state)) != SL_OK)
		return sl_error_set(SL_EINTERNAL, "backfill: the source cannot say its state");
	if ((rc = mirror_db_open(&db, o)) != SL_OK)
		return rc;
	if ((rc = backfill_prepare_table(&db)) != SL_OK ||
	    (rc = sl_pg_conn_ready(&db.pg)) != SL_OK ||
	    (rc = sl_pg_run_simple(&db.pg, "begin", "BEGIN")) != SL_OK)
		goto cleanup;
	/* Two plans of one job at once: the second waits, then sees the first's. */
	rc = backfill_query(
	        &db.pg, 1, &q, "lock the job",
	        "SELECT pg_advisory_xact_lock(7291, hashtext('sluice_backfill:' || $1))", 1,
	        values);
	sl_pg_call_clear(&q);
	if (rc != SL_OK || (rc = read_existing(&db, p->job, &e)) != SL_OK)
		goto cleanup;
	to = e.ranges > 0 && !p->to_set ? e.to : p->to_set ? p->to : head.end;
	if ((rc = shape_plan(p, p->from, to, &shape)) != SL_OK ||
	    (rc = write_ranges(&db, p->job, src->name, &shape, &e, &res.existed)) != SL_OK)
		goto cleanup;
	res.from = shape.from;
	res.to = shape.to;
	res.ranges = (uint32_t)shape.ranges;
	if ((rc = handoff(&db, p, src->name, state, &res)) != SL_OK ||
	    (rc = sl_pg_run_simple(&db.pg, "commit", "COMMIT")) != SL_OK)
		goto cleanup;
	*out = res;
cleanup:
	sl_pg_rollback(&db.pg);
	mirror_db_close(&db);
	return rc;
}

/* ---------------------------------------------------------------- status */

int sl_mirror_backfill_status(const sl_mirror_options *o, const char *job, sl_backfill_status *out)
{
	const char *values[1] = {job};
	sl_pg_conn c;
	sl_pg_call q;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = backfill_check_job(job)) != SL_OK)
		return rc;
	snprintf(out->job, sizeof(out->job), "%s", job);
	mirror_reader_init(&c, o);
	rc = backfill_query(
	        &c, 0, &q, "read the job",
	        "SELECT count(*), count(*) FILTER (WHERE state = 'pending' AND (lease_until IS"
	        " NULL OR lease_until <= now())), count(*) FILTER (WHERE state = 'pending' AND"
	        " lease_until > now()), count(*) FILTER (WHERE state = 'done'), count(*)"
	        " FILTER (WHERE state = 'dead'), coalesce(sum(rows), 0), coalesce(sum(progress"
	        " - from_pos), 0), coalesce(min(from_pos), 0), coalesce(max(to_pos), 0),"
	        " coalesce(min(source), '') FROM sluice_backfill_range WHERE job = $1",
	        1, values);
	if (rc != SL_OK && strcmp(q.sqlstate, "42P01") == 0) {
		rc = SL_OK; /* no table: no job */
	} else if (rc == SL_OK && backfill_u64(q.res[0], 0, 0) > 0) {
		const PGresult *r = q.res[0];
		out->exists = 1;
		out->ranges = backfill_u64(r, 0, 0);
		out->pending = backfill_u64(r, 0, 1);
		out->running = backfill_u64(r, 0, 2);
		out->done = backfill_u64(r, 0, 3);
		out->dead = backfill_u64(r, 0, 4);
		out->rows = backfill_u64(r, 0, 5);
		out->covered = backfill_u64(r, 0, 6);
		out->from = backfill_u64(r, 0, 7);
		out->to = backfill_u64(r, 0, 8);
		snprintf(out->source, sizeof(out->source), "%s", PQgetvalue(r, 0, 9));
	}
	sl_pg_call_clear(&q);
	mirror_reader_close(&c);
	return rc;
}

int sl_mirror_backfill_ranges(const sl_mirror_options *o, const char *job, const char *state,
                              sl_backfill_range_fn cb, void *ctx)
{
	const char *values[2] = {job, state};
	sl_pg_conn c;
	sl_pg_call q;
	int rc;

	if ((rc = backfill_check_job(job)) != SL_OK)
		return rc;
	mirror_reader_init(&c, o);
	rc = backfill_query(
	        &c, 0, &q, "read the ranges",
	        "SELECT id, from_pos, to_pos, progress, state, state = 'pending' AND lease_until"
	        " > now(), attempts, coalesce(owner, ''), coalesce(error, ''), rows FROM"
	        " sluice_backfill_range WHERE job = $1 AND ($2::text IS NULL OR state = $2)"
	        " ORDER BY id",
	        2, values);
	if (rc != SL_OK && strcmp(q.sqlstate, "42P01") == 0)
		rc = SL_OK;
	else
		for (int i = 0; rc == SL_OK && i < PQntuples(q.res[0]); i++) {
			const PGresult *r = q.res[0];
			sl_backfill_range b;
			b.id = (int32_t)strtol(PQgetvalue(r, i, 0), NULL, 10);
			b.from = backfill_u64(r, i, 1);
			b.to = backfill_u64(r, i, 2);
			b.progress = backfill_u64(r, i, 3);
			b.state = PQgetvalue(r, i, 4);
			b.running = PQgetvalue(r, i, 5)[0] == 't';
			b.attempts = (uint32_t)backfill_u64(r, i, 6);
			b.owner = PQgetvalue(r, i, 7);
			b.error = PQgetvalue(r, i, 8);
			b.rows = backfill_u64(r, i, 9);
			rc = cb(ctx, &b);
		}
	sl_pg_call_clear(&q);
	mirror_reader_close(&c);
	return rc;
}
