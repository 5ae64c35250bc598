/*
 * Backfills: a stretch [from, to) of an event source applied to a mirror's
 * table by many workers at once, on one machine or many, through a job
 * table in the same PostgreSQL.
 *
 * Every event carries its version and every write is guarded by it
 * (mirror_pg.c: t.version < excluded.version, deletes as tombstones), so
 * the table after a set of events does not depend on the order they were
 * applied in. A backfill uses that: plan cuts [from, to) into ranges, and
 * workers apply the ranges in any order, each range from its start to its
 * end in batches, through the mirror's own transaction (mirror_db_apply):
 * the batch into sluice_batch, the guarded upsert, the handler, apply_sql,
 * and, first, the finishing statement, here the compare-and-set of the
 * range's progress (mirror_finish_range), which also renews the lease.
 *
 *   sluice_backfill_range(job text, id integer, source text, from_pos
 *       bigint, to_pos bigint, progress bigint, state text ('pending',
 *       'done', 'dead'), attempts integer, owner text, lease_until
 *       timestamptz, error text, rows bigint, updated_at timestamptz,
 *       PRIMARY KEY (job, id))
 *
 * A range's states, and what moves it:
 *
 *            claim (attempts + 1, owner, lease)
 *   pending ------------------------------------> pending, leased ("running")
 *      ^   <------------------------------------     |    |
 *      |     a failed claim (error, lease released),  |    | the last batch
 *      |     a lost or expired lease, a stop (the     |    v (progress = to_pos)
 *      |     claim given back)                        |   done
 *      +-- a pending range claimed max_attempts times, not leased --> dead
 *
 *   plan             sl_mirror_backfill_plan: the ranges, in one transaction
 *   claim            claim_range (and bury_ranges for the dead ones)
 *   batch, done      apply_batch: mirror_finish_range + mirror_db_apply
 *   failed claim     fail_range; a stop: give_back; a lease: renew_lease
 *
 * Invariants:
 *   B1. A range's progress moves only in the transaction that applied
 *       every event between the old and the new progress, by a
 *       compare-and-set on the claim (owner and attempts) and the old
 *       progress. A crash leaves the progress and the rows of one commit;
 *       the batch in flight is applied again from the same progress, never
 *       twice.
 *   B2. A claim is known by its owner and by attempts as the claim left
 *       it: every claim adds one, so a later claim fences an earlier one
 *       even under the same worker id. A worker whose compare-and-set
 *       changed no row lost its claim: nothing of its batch committed, and
 *       it stops working the range at once. Only a worker that stops, and
 *       will write no more, takes its one back (give_back), so a stop does
 *       not count as an attempt.
 *   B3. A range is claimed only while pending with no lease or one that
 *       expired. The lease is renewed by each batch's commit and while the
 *       worker waits on its source, so a live worker keeps its range and a
 *       dead or stalled one loses it after lease_ms; the next claim goes on
 *       from the committed progress (B1).
 *   B4. Every position of [from_pos, to_pos) is applied once: a range is
 *       read from its progress, the events at or past to_pos are dropped,
 *       and the last batch ends exactly at to_pos and marks the range done
 *       in its own transaction. Ranges are disjoint and cover [from, to).
 *   B5. Ranges need no order among themselves nor with a live mirror going
 *       on from `to`: the version guard makes any order give the table
 *       that the order of the source gives (mirror_pg.c). That needs every
 *       delete kept as a tombstone, so a backfill refuses delete_removes.
 *   B6. Nothing waits forever on one range: a claim that fails (anything
 *       but a lost lease, a stop or PostgreSQL away) records its error and
 *       releases the lease; a range claimed max_attempts times without
 *       finishing is dead with its last error, and the others go on.
 *       PostgreSQL away is waited for, as a mirror does, and the progress
 *       read back before a batch is tried again (M2 of mirror.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/mirror_backfill_internal.h"

#define SOURCE_WAIT_MS    500  /* a read's wait for events, at most */
#define JOB_WAIT_MAX_MS   1000 /* a worker waiting on others' ranges looks this often */
#define JOB_WAIT_MIN_MS   20
#define READ_FAILURES_MAX 8 /* transient read failures in a row before a claim fails */
#define UNAVAILABLE_LOG_S 10

/* What a step of a worker came to, besides SL_OK and errors (negative). */
#define STOPPED 1 /* asked to stop */
#define LOST    2 /* the claim was taken by another worker (B2) */
#define FAILED  3 /* the claim failed: the error is in the worker's fail */

void sl_backfill_work_options_init(sl_backfill_work_options *w)
{
	memset(w, 0, sizeof(*w));
	w->lease_ms = 30000;
	w->max_attempts = 5;
}

/* ---------------------------------------------------------------- worker */

typedef struct worker {
	sl_event_source *src;
	const sl_mirror_options *o;
	const sl_backfill_work_options *w;
	mirror_db db;
	char owner[256];
	uint64_t rng;
	sl_event_batch batch;
	sl_backfill_work_result r;
	mirror_fail fail; /* why the claim failed (FAILED) */
	/* the range held */
	int32_t id;
	uint64_t from, to, progress;
	uint32_t claim;      /* attempts as the claim left it (B2) */
	uint64_t renewed_ns; /* when its lease was last renewed */
} worker;

static int stopping(const worker *wk)
{
	return wk->w->stop && *wk->w->stop;
}

/* Sleep in short steps so a stop request is seen. */
static void pause_ms(const worker *wk, uint64_t ms)
{
	uint64_t end = sl_clock_mono_ns() + ms * 1000000u;
	while (!stopping(wk)) {
		uint64_t now = sl_clock_mono_ns();
		if (now >= end)
			break;
		sl_sleep_ms((end - now) / 1000000u > 20 ? 20 : (end - now) / 1000000u + 1);
	}
}

static uint64_t backoff_ms(worker *wk, unsigned attempt)
{
	return sl_backoff_ms(wk->o->retry_base_ms, wk->o->retry_max_ms, attempt, &wk->rng);
}

/* PostgreSQL away or refusing work for now (mirror_fail's kinds). */
static int unavailable(int rc, const char *sqlstate)
{
	mirror_fail f;
	mirror_fail_from(&f, rc, sqlstate);
	return f.kind == FAIL_UNAVAILABLE;
}

/* Waits out PostgreSQL away, as a mirror does; 1 when it is worth trying
 * again, 0 when stopping. Logs at most every UNAVAILABLE_LOG_S. */
static int wait_for_server(worker *wk, unsigned *waits, uint64_t *last_log_s)
{
	uint64_t now_s = sl_clock_mono_ns() / 1000000000u;
	if (now_s >= *last_log_s + UNAVAILABLE_LOG_S) {
		*last_log_s = now_s;
		sl_log(SL_LOG_WARN, "backfill: waiting for PostgreSQL", "reason=\"%s\"",
		       sl_error_last()->message);
	}
	pause_ms(wk, backoff_ms(wk, (*waits)++));
	return !stopping(wk);
}

/* The claim's key for the statements below: job, id, owner, attempts. */
typedef struct claim_key {
	char id[16], claim[16];
	const char *values[6];
} claim_key;

static void claim_key_of(worker *wk, claim_key *k)
{
	snprintf(k->id, sizeof(k->id), "%d", (int)wk->id);
	snprintf(k->claim, sizeof(k->claim), "%u", wk->claim);
	k->values[0] = wk->w->job;
	k->values[1] = k->id;
	k->values[2] = wk->owner;
	k->values[3] = k->claim;
}

#define CLAIM_WHERE                                                                                \
	" WHERE job = $1 AND id = $2 AND owner = $3 AND attempts = $4 AND state = 'pending'"

/* Renews the lease while no batch does (B3). SL_OK, LOST, or an error. */
static int renew_lease(worker *wk)
{
	char lease[24];
	claim_key k;
	sl_pg_call q;
	int rc, held;
	claim_key_of(wk, &k);
	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)wk->w->lease_ms);
	k.values[4] = lease;
	rc = backfill_query(
	        &wk->db.pg, 0, &q, "renew the lease",
	        "UPDATE sluice_backfill_range SET lease_until = now() + $5::bigint * interval"
	        " '1 millisecond'" CLAIM_WHERE,
	        5, k.values);
	held = rc == SL_OK && strcmp(PQcmdTuples(q.res[0]), "1") == 0;
	sl_pg_call_clear(&q);
	if (rc != SL_OK)
		return rc;
	wk->renewed_ns = sl_clock_mono_ns();
	return held ? SL_OK : LOST;
}

/* While waiting on the source: renew the lease when a third of it passed.
 * A renewal that fails for another reason than a lost claim is left for
 * the next one (the claim holds until the lease expires). */
static int keep_lease(worker *wk)
{
	int rc;
	if (sl_clock_mono_ns() - wk->renewed_ns < wk->w->lease_ms * 1000000u / 3)
		return SL_OK;
	rc = renew_lease(wk);
	if (rc < 0)
		sl_log(SL_LOG_WARN, "backfill: cannot renew the lease", "id=%d reason=\"%s\"",
		       (int)wk->id, sl_error_last()->message);
	return rc == LOST ? LOST : SL_OK;
}

/* A failed claim (B6): its error on the range, the lease released, and the
 * range dead when it was the last attempt allowed. Best effort: a claim
 * whose record fails still expires. */
static void fail_range(worker *wk)
{
	char max[16];
	claim_key k;
	sl_pg_call q;
	sl_error saved = *sl_error_last();
	int rc;
	claim_key_of(wk, &k);
	snprintf(max, sizeof(max), "%u", wk->w->max_attempts);
	k.values[4] = wk->fail.error;
	k.values[5] = max;
	wk->r.failures++;
	rc = backfill_query(
	        &wk->db.pg, 0, &q, "record the range's error",
	        "UPDATE sluice_backfill_range SET error = $5, lease_until = now(), state = CASE"
	        " WHEN attempts >= $6::integer THEN 'dead' ELSE 'pending' END, updated_at ="
	        " now()" CLAIM_WHERE " RETURNING state",
	        6, k.values);
	if (rc == SL_OK && PQntuples(q.res[0]) == 1 &&
	    strcmp(PQgetvalue(q.res[0], 0, 0), "dead") == 0)
		sl_log(SL_LOG_WARN, "backfill: a range is dead", "id=%d attempts=%u error=\"%s\"",
		       (int)wk->id, wk->claim, wk->fail.error);
	else
		sl_log(SL_LOG_WARN, "backfill: a range failed", "id=%d attempt=%u error=\"%s\"",
		       (int)wk->id, wk->claim, wk->fail.error);
	sl_pg_call_clear(&q);
	sl_error_set_cause(saved.code, saved.cause, "%s", saved.message);
}

/* A stop: the range back to the others at once, this claim not counted. */
static void give_back(worker *wk)
{
	claim_key k;
	sl_pg_call q;
	claim_key_of(wk, &k);
	backfill_query(
	        &wk->db.pg, 0, &q, "give the range back",
	        "UPDATE sluice_backfill_range SET lease_until = now(), attempts = attempts - 1,"
	        " updated_at = now()" CLAIM_WHERE,
	        4, k.values);
	sl_pg_call_clear(&q);
}

/* -------------------------------------------------------------- reading */

/* The next batch of the range from its progress (B4): *n events of
 * wk->batch (those at or past to_pos are left out) and *end, where the
 * batch ends (to_pos once the source went past it). SL_OK, STOPPED, LOST,
 * or an error of the source. */
static int fill_batch(worker *wk, size_t *n, uint64_t *end)
{
	const sl_mirror_options *o = wk->o;
	uint64_t from = wk->progress, deadline_ns = 0, source_wait = SOURCE_WAIT_MS;
	unsigned failures = 0;
	int rc;

	if (wk->w->lease_ms / 4 < source_wait)
		source_wait = wk->w->lease_ms / 4 ? wk->w->lease_ms / 4 : 1;
	sl_event_batch_clear(&wk->batch);
	*n = 0;
	for (;;) {
		size_t before = wk->batch.n, max = o->batch_size - wk->batch.n;
		uint64_t next = from, wait = source_wait, now = sl_clock_mono_ns();
		int at_end = 0, moved;

		if (wk->to - from < max)
			max = (size_t)(wk->to - from);
		if (wk->batch.n > 0)
			wait = deadline_ns > now ? (deadline_ns - now + 999999u) / 1000000u : 0;
		rc = wk->src->ops->read(wk->src->self, from, max, o->batch_bytes, wait, &wk->batch,
		                        &next, &at_end);
		if (rc != SL_OK) {
			if (wk->batch.n > 0)
				break; /* apply what is read; the error comes back next time */
			if (!mirror_read_error_transient(rc) || failures >= READ_FAILURES_MAX)
				return rc;
			sl_log(SL_LOG_WARN, "backfill: cannot read the source; retrying",
			       "source=\"%s\" reason=\"%s\"", wk->src->name,
			       sl_error_last()->message);
			pause_ms(wk, backoff_ms(wk, failures++));
			if (stopping(wk))
				return STOPPED;
			if ((rc = keep_lease(wk)) != SL_OK)
				return rc;
			continue;
		}
		failures = 0;
		for (size_t i = before; i < wk->batch.n; i++)
			if (wk->batch.events[i].pos >= wk->to) {
				*n = i;
				*end = wk->to;
				return SL_OK;
			}
		if (next >= wk->to) {
			*n = wk->batch.n;
			*end = wk->to;
			return SL_OK;
		}
		moved = next != from;
		from = next;
		if (wk->batch.n > before && before == 0)
			deadline_ns = sl_clock_mono_ns() + o->batch_ms * 1000000u;
		if (wk->batch.n >= o->batch_size || wk->batch.bytes >= o->batch_bytes)
			break;
		if (wk->batch.n > 0 && (sl_clock_mono_ns() >= deadline_ns || at_end))
			break;
		if (wk->batch.n == 0 && !moved) { /* nothing yet: a slow source */
			if (at_end)
				return sl_error_set(
				        SL_EINVAL,
				        "backfill: %s ends at %llu, before the range's end "
				        "%llu",
				        wk->src->name, (unsigned long long)from,
				        (unsigned long long)wk->to);
			if (stopping(wk))
				return STOPPED;
			if ((rc = keep_lease(wk)) != SL_OK)
				return rc;
		}
	}
	*n = wk->batch.n;
	*end = from;
	return SL_OK;
}

/* ------------------------------------------------------------- applying */

/* After PostgreSQL was away around a batch (B6, M2): reads the range back.
 * *outcome: 1 the batch ending at end committed, 0 it did not, -1 the
 * claim is gone. SL_OK, STOPPED, or an error. */
static int read_back(worker *wk, uint64_t end, int *outcome)
{
	uint64_t last_log = 0;
	claim_key k;
	claim_key_of(wk, &k);
	for (unsigned waits = 0;;) {
		sl_pg_call q;
		int rc = backfill_query(
		        &wk->db.pg, 0, &q, "read the range back",
		        "SELECT progress, owner = $3 AND attempts = $4::integer AND state <>"
		        " 'dead' FROM sluice_backfill_range WHERE job = $1 AND id = $2",
		        4, k.values);
		if (rc == SL_OK) {
			uint64_t progress = PQntuples(q.res[0]) ? backfill_u64(q.res[0], 0, 0) : 0;
			int held = PQntuples(q.res[0]) && PQgetvalue(q.res[0], 0, 1)[0] == 't';
			sl_pg_call_clear(&q);
			*outcome = !held                      ? -1
			           : progress == end          ? 1
			           : progress == wk->progress ? 0
			                                      : -1;
			return SL_OK;
		}
		if (!unavailable(rc, q.sqlstate)) {
			sl_pg_call_clear(&q);
			return rc;
		}
		sl_pg_call_clear(&q);
		if (!wait_for_server(wk, &waits, &last_log))
			return STOPPED;
	}
}

static void committed(worker *wk, size_t n, uint64_t end)
{
	wk->progress = end;
	wk->renewed_ns = sl_clock_mono_ns();
	wk->r.batches++;
	wk->r.events += n;
	if (wk->w->progress)
		wk->w->progress(wk->w->progress_ctx, &wk->r);
}

/* One batch, events [0, n) of wk->batch, moving the progress to end (B1):
 * transient failures are tried again in place up to the mirror's
 * max_attempts, PostgreSQL away is waited for. SL_OK, LOST, FAILED
 * (wk->fail says why), STOPPED, or an error that ends the worker. */
static int apply_batch(worker *wk, size_t n, uint64_t end)
{
	int done = end == wk->to;
	uint32_t attempt = 1;
	unsigned waits = 0;
	uint64_t last_log = 0;
	mirror_finish fin = {NULL, NULL};
	int rc;

	for (;;) {
		int outcome;
		if ((rc = mirror_finish_range(&wk->db, &fin, wk->w->job, wk->id, wk->owner,
		                              wk->claim, wk->progress, end, n, wk->w->lease_ms,
		                              done)) != SL_OK)
			return rc;
		rc = mirror_db_apply(&wk->db, wk->batch.events, n, wk->claim + attempt - 1, 1, &fin,
		                     &wk->fail);
		mirror_finish_free(&fin);
		if (rc == SL_OK) {
			committed(wk, n, end);
			return SL_OK;
		}
		switch (wk->fail.kind) {
		case FAIL_FENCED:
			return LOST;
		case FAIL_FATAL:
			return rc;
		case FAIL_UNAVAILABLE:
			if (!wait_for_server(wk, &waits, &last_log))
				return STOPPED;
			if ((rc = read_back(wk, end, &outcome)) != SL_OK)
				return rc;
			if (outcome < 0)
				return LOST;
			if (outcome > 0) {
				committed(wk, n, end);
				return SL_OK;
			}
			continue;
		case FAIL_TRANSIENT:
			if (attempt < wk->o->max_attempts) {
				sl_log(SL_LOG_WARN, "backfill: a batch failed; trying again",
				       "id=%d progress=%llu attempt=%u %s", (int)wk->id,
				       (unsigned long long)wk->progress, attempt, wk->fail.error);
				pause_ms(wk, backoff_ms(wk, attempt++));
				if (stopping(wk))
					return STOPPED;
				continue;
			}
			return FAILED;
		default:
			return FAILED;
		}
	}
}

/* Works the claimed range until it is done, lost, failed or stopped. */
static int work_range(worker *wk)
{
	char job[96];
	sl_log(SL_LOG_INFO, "backfill: claimed a range",
	       "job=%s id=%d from=%llu to=%llu progress=%llu attempt=%u",
	       sl_log_quote(job, sizeof(job), wk->w->job), (int)wk->id,
	       (unsigned long long)wk->from, (unsigned long long)wk->to,
	       (unsigned long long)wk->progress, wk->claim);
	for (;;) {
		size_t n = 0;
		uint64_t end = wk->to;
		int rc = stopping(wk)            ? STOPPED
		         : wk->progress < wk->to ? fill_batch(wk, &n, &end)
		                                 : SL_OK;
		if (rc < 0) { /* the source's error: the claim fails, the worker goes on */
			mirror_fail_from(&wk->fail, rc, NULL);
			rc = FAILED;
		} else if (rc == SL_OK) {
			rc = apply_batch(wk, n, end);
		}
		switch (rc) {
		case SL_OK:
			if (wk->progress < wk->to)
				continue;
			wk->r.ranges_done++;
			sl_log(SL_LOG_INFO, "backfill: a range is done", "id=%d to=%llu",
			       (int)wk->id, (unsigned long long)wk->to);
			return SL_OK;
		case LOST:
			wk->r.ranges_lost++;
			sl_log(SL_LOG_WARN, "backfill: the lease was lost to another worker",
			       "id=%d progress=%llu", (int)wk->id,
			       (unsigned long long)wk->progress);
			return SL_OK;
		case STOPPED:
			give_back(wk);
			return SL_OK;
		case FAILED:
			fail_range(wk);
			pause_ms(wk, backoff_ms(wk, wk->claim));
			return SL_OK;
		default: /* PostgreSQL refused for good (FAIL_FATAL): the worker stops */
			if (wk->fail.kind != FAIL_FATAL)
				mirror_fail_from(&wk->fail, rc, NULL);
			fail_range(wk);
			return rc;
		}
	}
}

/* ------------------------------------------------------------- claiming */

/* The pending ranges claimed max_attempts times and not leased are dead
 * (B6). */
static int bury_ranges(worker *wk, sl_pg_call *q)
{
	char max[16];
	const char *values[2] = {wk->w->job, max};
	int rc;
	snprintf(max, sizeof(max), "%u", wk->w->max_attempts);
	rc = backfill_query(
	        &wk->db.pg, 0, q, "mark dead ranges",
	        "UPDATE sluice_backfill_range SET state = 'dead', updated_at = now(), error ="
	        " 'claimed ' || attempts || ' times without finishing; ' || coalesce('the last"
	        " error: ' || error, 'the lease of the last claim (' || coalesce(owner, '?') ||"
	        " ') expired: its worker stopped or stalled') WHERE (job, id) IN (SELECT job, id"
	        " FROM sluice_backfill_range WHERE job = $1 AND state = 'pending' AND attempts >="
	        " $2::integer AND (lease_until IS NULL OR lease_until < now()) FOR UPDATE SKIP"
	        " LOCKED) RETURNING id, error",
	        2, values);
	for (int i = 0; rc == SL_OK && i < PQntuples(q->res[0]); i++)
		sl_log(SL_LOG_WARN, "backfill: a range is dead", "id=%s error=\"%s\"",
		       PQgetvalue(q->res[0], i, 0), PQgetvalue(q->res[0], i, 1));
	return rc;
}

/* Claims the first range that can be (B3); *got 0 when none can. */
static int claim_range(worker *wk, sl_pg_call *q, int *got)
{
	char lease[24], max[16];
	const char *values[4] = {wk->w->job, wk->owner, lease, max};
	const PGresult *r;
	int rc;
	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)wk->w->lease_ms);
	snprintf(max, sizeof(max), "%u", wk->w->max_attempts);
	*got = 0;
	rc = backfill_query(
	        &wk->db.pg, 0, q, "claim a range",
	        "UPDATE sluice_backfill_range SET owner = $2, lease_until = now() + $3::bigint *"
	        " interval '1 millisecond', attempts = attempts + 1, updated_at = now() WHERE"
	        " (job, id) = (SELECT job, id FROM sluice_backfill_range WHERE job = $1 AND"
	        " state = 'pending' AND (lease_until IS NULL OR lease_until < now()) AND"
	        " attempts < $4::integer ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
	        " RETURNING id, from_pos, to_pos, progress, attempts",
	        4, values);
	if (rc != SL_OK || PQntuples(q->res[0]) != 1)
		return rc;
	r = q->res[0];
	wk->id = (int32_t)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	wk->from = backfill_u64(r, 0, 1);
	wk->to = backfill_u64(r, 0, 2);
	wk->progress = backfill_u64(r, 0, 3);
	wk->claim = (uint32_t)backfill_u64(r, 0, 4);
	wk->renewed_ns = sl_clock_mono_ns();
	memset(&wk->fail, 0, sizeof(wk->fail));
	wk->r.claims++;
	*got = 1;
	return SL_OK;
}

/* The job's counts into the result, and how long until a lease expires. */
static int count_job(worker *wk, sl_pg_call *q, uint64_t *wait_ms)
{
	const char *values[1] = {wk->w->job};
	int rc = backfill_query(
	        &wk->db.pg, 0, q, "count the ranges",
	        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE"
	        " state = 'done'), count(*) FILTER (WHERE state = 'dead'),"
	        " coalesce(ceil(extract(epoch FROM min(lease_until) FILTER (WHERE state ="
	        " 'pending') - now()) * 1000), 0)::bigint FROM sluice_backfill_range"
	        " WHERE job = $1",
	        1, values);
	if (rc == SL_OK) {
		const PGresult *r = q->res[0];
		long long until = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
		wk->r.pending = backfill_u64(r, 0, 0);
		wk->r.done = backfill_u64(r, 0, 1);
		wk->r.dead = backfill_u64(r, 0, 2);
		*wait_ms = until < JOB_WAIT_MIN_MS   ? JOB_WAIT_MIN_MS
		           : until > JOB_WAIT_MAX_MS ? JOB_WAIT_MAX_MS
		                                     : (uint64_t)until;
	}
	return rc;
}

/* The job must exist and be of this worker's source. */
static int check_source(worker *wk)
{
	const char *values[1] = {wk->w->job};
	sl_pg_call q;
	int rc = backfill_query(
	        &wk->db.pg, 0, &q, "read the job",
	        "SELECT count(*), coalesce(min(source), ''), coalesce(max(source), '')"
	        " FROM sluice_backfill_range WHERE job = $1",
	        1, values);
	if (rc == SL_OK && backfill_u64(q.res[0], 0, 0) == 0)
		rc = sl_error_set(SL_ENOTFOUND, "backfill: no job \"%s\" (plan it first)",
		                  wk->w->job);
	else if (rc == SL_OK && (strcmp(PQgetvalue(q.res[0], 0, 1), wk->src->name) != 0 ||
	                         strcmp(PQgetvalue(q.res[0], 0, 2), wk->src->name) != 0))
		rc = sl_error_set(SL_EINVAL, "backfill: job \"%s\" is of %s, not of %s", wk->w->job,
		                  PQgetvalue(q.res[0], 0, 1), wk->src->name);
	sl_pg_call_clear(&q);
	return rc;
}

/* One step of the loop: bury, claim, work, or count. *finished once
 * nothing is left to do. */
static int step(worker *wk, int *finished)
{
	sl_pg_call q;
	uint64_t wait_ms = JOB_WAIT_MIN_MS;
	int got = 0, rc = bury_ranges(wk, &q);
	sl_pg_call_clear(&q);
	if (rc == SL_OK) {
		rc = claim_range(wk, &q, &got);
		sl_pg_call_clear(&q);
	}
	if (rc == SL_OK && got)
		return work_range(wk);
	if (rc == SL_OK) {
		rc = count_job(wk, &q, &wait_ms);
		sl_pg_call_clear(&q);
	}
	if (rc != SL_OK)
		return unavailable(rc, q.sqlstate) ? SL_EUNAVAILABLE : rc;
	if (wk->r.pending == 0 || wk->w->no_wait) {
		*finished = 1;
		return SL_OK;
	}
	pause_ms(wk, wait_ms);
	return SL_OK;
}

int sl_mirror_backfill_work(sl_event_source *src, const sl_mirror_options *o,
                            const sl_backfill_work_options *w, sl_backfill_work_result *out)
{
	worker wk;
	unsigned waits = 0;
	uint64_t last_log = 0;
	int finished = 0, rc;

	if ((rc = backfill_check_job(w->job)) != SL_OK || (rc = backfill_check_options(o)) != SL_OK)
		return rc;
	if (w->lease_ms == 0 || w->max_attempts == 0)
		return sl_error_set(SL_EINVAL,
		                    "backfill: lease_ms and max_attempts must be at least 1");
	memset(&wk, 0, sizeof(wk));
	wk.src = src;
	wk.o = o;
	wk.w = w;
	wk.rng = sl_clock_mono_ns() | 1;
	if (w->worker && w->worker[0]) {
		snprintf(wk.owner, sizeof(wk.owner), "%s", w->worker);
	} else {
		char host[200] = "";
		if (gethostname(host, sizeof(host) - 1) != 0)
			snprintf(host, sizeof(host), "localhost");
		snprintf(wk.owner, sizeof(wk.owner), "%s:%ld", host, (long)getpid());
	}
	sl_event_batch_init(&wk.batch);
	if ((rc = mirror_db_open(&wk.db, o)) != SL_OK)
		return rc;
	if ((rc = backfill_prepare_table(&wk.db)) != SL_OK || (rc = check_source(&wk)) != SL_OK)
		goto cleanup;
	while (!finished && !stopping(&wk)) {
		if ((rc = step(&wk, &finished)) == SL_EUNAVAILABLE) {
			if (!wait_for_server(&wk, &waits, &last_log))
				break;
			continue;
		}
		waits = 0;
		if (rc != SL_OK)
			break;
	}
	if (rc == SL_EUNAVAILABLE)
		rc = SL_OK; /* stopped while waiting */
cleanup:
	if (out)
		*out = wk.r;
	sl_event_batch_free(&wk.batch);
	mirror_db_close(&wk.db);
	return rc;
}
