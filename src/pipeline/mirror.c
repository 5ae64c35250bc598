/*
 * Mirrors: an event source applied to PostgreSQL exactly once.
 *
 * The loop reads a batch of events from the stored position (flushed by
 * count, bytes, or batch_ms after its first event, on the monotonic
 * clock), applies it in one transaction that also moves the position
 * (mirror_pg.c), and goes on from there. The tables and the transaction are
 * described at the top of mirror_pg.c.
 *
 * Invariants:
 *   M1. The position moves only in the transaction that applied, or
 *       dead-lettered, every event before it, and only from the value this
 *       mirror last read or wrote (compare-and-set). A crash at any point
 *       leaves the position and the rows of one commit: the batch in flight
 *       is applied again from the same position, never twice.
 *   M2. After a transaction fails the position held in memory is trusted
 *       only once it is read back: when the server went away around COMMIT
 *       the batch may have committed; the stored position says whether
 *       (the batch's end: it did; the start: it did not; anything else:
 *       another mirror moved it, and this one is fenced).
 *   M3. A batch is a run of consecutive positions, applied by one
 *       transaction of one mirror, so the events of a key are applied in
 *       source order and never two at once. Within a batch only the newest
 *       event of a key reaches its row, and only if newer than the row.
 *   M4. Every event is applied, or in the dead letters with its error and
 *       attempts, or still ahead of the position: none is skipped. Events
 *       a source lost before they were read (a trimmed stream) are a gap,
 *       recorded in sluice_mirror_gap; the position moves past a gap only
 *       when on_gap says so, in the transaction that records it.
 *   M5. Nothing waits forever on one event: a failure that is an event's
 *       fault splits its batch until the event is alone, which is retried
 *       max_attempts times with backoff, then dead-lettered in the
 *       transaction that moves the position past it. Transient failures
 *       (serialization, deadlock, timeouts, the handler's RETRY) count as
 *       attempts too; only an unavailable server is waited for without a
 *       bound, since nothing can be written until it is back.
 */
#include <stdio.h>
#include <string.h>

#include "pipeline/mirror_internal.h"

#define IDLE_WAIT_MS      500 /* a follower's wait for a first event: how often stop is seen */
#define HEAD_INTERVAL_NS  1000000000ull
#define UNAVAILABLE_LOG_S 10
#define STOPPED           1  /* positive: asked to stop while waiting (no error) */
#define GAP               2  /* positive: the source lost events ahead of the position */
#define EMPTY_READS_MAX   20 /* not following: empty reads waited out while the head is ahead */

typedef struct metrics {
	sl_metric *events, *batches, *dead, *retries, *source_errors, *pos, *head, *lag,
	        *batch_seconds, *gaps;
} metrics;

typedef struct mirror {
	sl_event_source *src;
	const sl_mirror_options *o;
	mirror_db db;
	uint64_t pos; /* the committed position (M1, M2) */
	char state[SL_EVENT_SOURCE_STATE_MAX + 1];
	sl_event_batch batch;
	uint64_t batch_next; /* where the source goes on after the batch */
	uint64_t first_read_ns, last_read_ns;
	uint64_t rng;
	uint64_t next_head_ns;
	uint64_t gap_to; /* after fill_batch said GAP: the first position past it */
	char gap_message[SL_ERROR_MSG_MAX];
	metrics m;
	sl_mirror_progress p;
} mirror;

void sl_mirror_options_init(sl_mirror_options *o)
{
	memset(o, 0, sizeof(*o));
	o->table = "mirror_items";
	o->batch_size = 1000;
	o->batch_bytes = (size_t)1 << 20;
	o->batch_ms = 100;
	o->max_attempts = 5;
	o->retry_base_ms = 100;
	o->retry_max_ms = 5000;
	o->timeout_ms = 30000;
}

static int stopping(const mirror *m)
{
	return m->o->stop && *m->o->stop;
}

/* base * 2^attempt, capped, with jitter in [d/2, d). */
static uint64_t backoff_ms(mirror *m, unsigned attempt)
{
	return sl_backoff_ms(m->o->retry_base_ms, m->o->retry_max_ms, attempt, &m->rng);
}

/* Sleep in short steps so a stop request is seen. */
static void pause_ms(const mirror *m, uint64_t ms)
{
	uint64_t end = sl_clock_mono_ns() + ms * 1000000u;
	while (!stopping(m)) {
		uint64_t now = sl_clock_mono_ns();
		if (now >= end)
			break;
		sl_sleep_ms((end - now) / 1000000u > 20 ? 20 : (end - now) / 1000000u + 1);
	}
}

static int check_options(const sl_mirror_options *o)
{
	if (!o->pg_url || !o->pg_url[0])
		return sl_error_set(SL_EINVAL, "mirror: no PostgreSQL url");
	if (!o->table || !o->table[0])
		return sl_error_set(SL_EINVAL, "mirror: no target table");
	if (o->batch_size == 0 || o->batch_bytes == 0 || o->max_attempts == 0 ||
	    o->retry_base_ms == 0 || o->retry_max_ms < o->retry_base_ms || o->timeout_ms == 0)
		return sl_error_set(SL_EINVAL,
		                    "mirror: batch_size, batch_bytes, max_attempts, retry_base_ms "
		                    "and timeout_ms must be at least 1, retry_max_ms at least "
		                    "retry_base_ms");
	return SL_OK;
}

int sl_mirror_prepare(const sl_mirror_options *o)
{
	mirror_db db;
	int rc;
	if ((rc = check_options(o)) != SL_OK || (rc = mirror_db_open(&db, o)) != SL_OK)
		return rc;
	mirror_db_close(&db);
	return SL_OK;
}

static void register_metrics(mirror *m)
{
	sl_metrics *r = m->o->metrics;
	const char *l = m->o->metrics_labels;
	if (!r)
		return;
	m->m.events = sl_metrics_counter(r, "sluice_mirror_events_applied_total", l,
	                                 "Events applied to PostgreSQL");
	m->m.batches = sl_metrics_counter(r, "sluice_mirror_batches_total", l, "Batches committed");
	m->m.dead = sl_metrics_counter(r, "sluice_mirror_dead_letters_total", l,
	                               "Events sent to the dead letters");
	m->m.retries = sl_metrics_counter(r, "sluice_mirror_retries_total", l,
	                                  "Transactions tried again after a failure");
	m->m.source_errors = sl_metrics_counter(r, "sluice_mirror_source_errors_total", l,
	                                        "Failed reads of the source, retried");
	m->m.gaps = sl_metrics_counter(r, "sluice_mirror_gaps_total", l,
	                               "Runs of events the source removed before they were read");
	m->m.pos = sl_metrics_gauge(r, "sluice_mirror_position", l,
	                            "The committed position in the source");
	m->m.head = sl_metrics_gauge(r, "sluice_mirror_source_head", l,
	                             "Where the source ends, as far as it knows");
	m->m.lag = sl_metrics_gauge(r, "sluice_mirror_lag_events", l,
	                            "Events in the source past the committed position");
	m->m.batch_seconds = sl_metrics_gauge(r, "sluice_mirror_last_batch_seconds", l,
	                                      "From the first event of the last batch read to its "
	                                      "COMMIT");
}

static void update_head(mirror *m, int force)
{
	sl_event_source_head h;
	uint64_t now = sl_clock_mono_ns();
	if (!m->o->metrics || (!force && now < m->next_head_ns))
		return;
	m->next_head_ns = now + HEAD_INTERVAL_NS;
	if (m->src->ops->head(m->src->self, &h) != SL_OK || !h.known)
		return;
	sl_metric_set(m->m.head, (double)h.end);
	sl_metric_set(m->m.lag, h.end > m->pos ? (double)(h.end - m->pos) : 0);
}

/* ------------------------------------------------------------- reading */

int mirror_read_error_transient(int rc)
{
	return rc != SL_EVERIFY && rc != SL_ECORRUPT && rc != SL_EINVAL && rc != SL_ENOMEM &&
	       rc != SL_ENOTFOUND && rc != SL_EAUTH;
}

/* Not following: does the source say it has events at or past `from` that
 * a read did not give yet (a Kafka partition answers a read before its
 * fetch arrived)? Asked at most EMPTY_READS_MAX times in a row, so a
 * source whose head is wrong cannot hold a run forever. */
static int more_to_come(mirror *m, uint64_t from, unsigned *empty_reads)
{
	sl_event_source_head h;
	if (m->o->follow || *empty_reads >= EMPTY_READS_MAX)
		return 0;
	if (m->src->ops->head(m->src->self, &h) != SL_OK || !h.known || h.end <= from)
		return 0;
	(*empty_reads)++;
	return 1;
}

/* Fill m->batch from m->pos. SL_OK with an empty batch: nothing to apply
 * (not following, or stopping). GAP (batch empty): the source lost events
 * at m->pos; m->gap_to and m->gap_message say which. */
static int fill_batch(mirror *m)
{
	uint64_t from = m->pos, deadline_ns = 0;
	unsigned failures = 0, empty_reads = 0;
	int waiting = 0; /* not following, the head is ahead of what was read */

	sl_event_batch_clear(&m->batch);
	m->batch_next = m->pos;
	for (;;) {
		size_t before = m->batch.n;
		uint64_t wait = 0, next = from, read_from = from, now = sl_clock_mono_ns();
		int at_end = 0, rc;

		if (m->batch.n > 0)
			wait = deadline_ns > now ? (deadline_ns - now + 999999u) / 1000000u : 0;
		else if (m->o->follow || waiting)
			wait = IDLE_WAIT_MS;
		rc = m->src->ops->read(m->src->self, from, m->o->batch_size - m->batch.n,
		                       m->o->batch_bytes, wait, &m->batch, &next, &at_end);
		if (rc != SL_OK) {
			if (m->batch.n > before) /* a source appends only what it checked */
				m->batch.n = before;
			if (m->batch.n > 0)
				break; /* apply what is read; the error comes back next time */
			if (rc == SL_ENOTFOUND && next > from) {
				m->gap_to = next;
				snprintf(m->gap_message, sizeof(m->gap_message), "%s",
				         sl_error_last()->message);
				return GAP;
			}
			if (!mirror_read_error_transient(rc) || (!m->o->follow && failures >= 8))
				return rc;
			sl_metric_add(m->m.source_errors, 1);
			sl_log(SL_LOG_WARN, "mirror: cannot read the source; retrying",
			       "source=\"%s\" reason=\"%s\"", m->src->name,
			       sl_error_last()->message);
			pause_ms(m, backoff_ms(m, failures++));
			if (stopping(m))
				return SL_OK;
			continue;
		}
		failures = 0;
		from = next;
		m->batch_next = next;
		if (m->batch.n > before) {
			m->last_read_ns = sl_clock_mono_ns();
			if (before == 0) {
				m->first_read_ns = m->last_read_ns;
				deadline_ns = m->first_read_ns + m->o->batch_ms * 1000000u;
			}
		}
		if (m->batch.n >= m->o->batch_size || m->batch.bytes >= m->o->batch_bytes)
			break;
		if (m->batch.n > 0 && (sl_clock_mono_ns() >= deadline_ns || at_end))
			break;
		/* Not following, an empty read ends the run only where the
		 * source ends: a partition (event_partition.c) may pass over a
		 * whole read of other partitions' events. */
		if (m->batch.n == 0 && !at_end && next == read_from && !stopping(m) &&
		    (waiting = more_to_come(m, from, &empty_reads)))
			continue;
		if (m->batch.n == 0 &&
		    (stopping(m) || (!m->o->follow && (at_end || next == read_from))))
			break;
		if (m->batch.n > before && !at_end)
			continue;
		if (m->batch.n > 0 && !m->o->follow && m->batch.n == before)
			break; /* nothing more yet, and not waiting for it */
	}
	if (m->src->ops->save_state(m->src->self, m->state, sizeof(m->state)) != SL_OK)
		return sl_error_set(SL_EINTERNAL, "mirror: the source cannot say its state");
	return SL_OK;
}

/* ------------------------------------------------------------- applying */

/* The server went away (M2): wait for it, then read the position back.
 * *outcome: 1 the transaction that ended at new_pos committed, 0 it did
 * not, -1 another mirror moved the position (fenced). */
static int await_server(mirror *m, uint64_t old, uint64_t new_pos, int *outcome)
{
	char state[SL_EVENT_SOURCE_STATE_MAX + 1];
	uint64_t stored, last_log = 0;
	for (unsigned i = 0;; i++) {
		int rc = mirror_db_position(&m->db, m->src->name, &stored, state, sizeof(state));
		if (rc == SL_OK)
			break;
		if (rc == SL_EAUTH || rc == SL_ENOMEM || rc == SL_EINVAL)
			return rc;
		if (sl_clock_mono_ns() / 1000000000u >= last_log + UNAVAILABLE_LOG_S) {
			last_log = sl_clock_mono_ns() / 1000000000u;
			sl_log(SL_LOG_WARN, "mirror: waiting for PostgreSQL", "reason=\"%s\"",
			       sl_error_last()->message);
		}
		pause_ms(m, backoff_ms(m, i));
		if (stopping(m))
			return STOPPED;
	}
	*outcome = stored == new_pos && new_pos != old ? 1 : stored == old ? 0 : -1;
	return SL_OK;
}

static void committed(mirror *m, uint64_t new_pos, size_t events, int dead)
{
	m->pos = new_pos;
	m->p.pos = new_pos;
	m->p.batches++;
	if (dead)
		m->p.dead += events;
	else
		m->p.events += events;
	m->p.commit_ns = sl_clock_mono_ns();
	m->p.first_read_ns = m->first_read_ns;
	m->p.last_read_ns = m->last_read_ns;
	m->p.last_commit_ms = (m->p.commit_ns - m->first_read_ns) / 1000000u;
	m->p.last_batch_events = events;
	sl_metric_add(dead ? m->m.dead : m->m.events, events);
	sl_metric_add(m->m.batches, 1);
	sl_metric_set(m->m.pos, (double)new_pos);
	sl_metric_set(m->m.batch_seconds, (double)(m->p.commit_ns - m->first_read_ns) / 1e9);
	update_head(m, 0);
	if (m->o->progress)
		m->o->progress(m->o->progress_ctx, &m->p);
}

static int fenced(mirror *m)
{
	return sl_error_set(SL_ECONFLICT,
	                    "mirror: fenced: another mirror moved the position of %s; this one "
	                    "stops (nothing it had not committed was applied)",
	                    m->src->name);
}

/* Apply events [a, b) of the batch (M1, M5); splits on an event's fault. */
static int apply_range(mirror *m, size_t a, size_t b)
{
	const sl_event *ev = m->batch.events;
	uint64_t new_pos = b == m->batch.n ? m->batch_next : ev[b - 1].pos + 1;
	uint64_t first_failure_ms = 0;
	uint32_t attempt = 1;
	mirror_finish fin = {NULL, NULL};
	mirror_fail fail;
	int rc;

	for (unsigned waits = 0;;) {
		int outcome;
		if ((rc = mirror_finish_position(&m->db, &fin, m->src->name, m->pos, new_pos,
		                                 m->state, b - a)) != SL_OK)
			return rc;
		rc = mirror_db_apply(&m->db, ev + a, b - a, attempt, 0, &fin, &fail);
		mirror_finish_free(&fin);
		if (rc == SL_OK) {
			committed(m, new_pos, b - a, 0);
			return SL_OK;
		}
		if (first_failure_ms == 0)
			first_failure_ms = sl_clock_wall_ms();
		sl_metric_add(m->m.retries, 1);
		m->p.retries++;
		if (fail.kind == FAIL_FATAL)
			return rc;
		if (fail.kind == FAIL_FENCED)
			return fenced(m);
		mirror_db_note_error(&m->db, m->src->name, fail.error);
		if (fail.kind == FAIL_UNAVAILABLE) {
			sl_log(SL_LOG_WARN, "mirror: PostgreSQL unavailable; the batch waits",
			       "reason=\"%s\"", fail.error);
			pause_ms(m, backoff_ms(m, waits++));
			if ((rc = await_server(m, m->pos, new_pos, &outcome)) != SL_OK)
				return rc == STOPPED ? SL_OK : rc;
			if (outcome < 0)
				return fenced(m);
			if (outcome > 0) {
				committed(m, new_pos, b - a, 0);
				return SL_OK;
			}
			continue;
		}
		sl_log(SL_LOG_WARN, "mirror: a batch failed", "from=%llu events=%zu attempt=%u %s",
		       (unsigned long long)ev[a].pos, b - a, attempt, fail.error);
		if (fail.kind == FAIL_TRANSIENT && attempt < m->o->max_attempts) {
			pause_ms(m, backoff_ms(m, attempt++));
			if (stopping(m))
				return SL_OK;
			continue;
		}
		if (b == a)
			return rc; /* no event to blame: the table or apply_sql */
		if (b - a > 1) {   /* M5: isolate the event at fault */
			size_t mid = a + (b - a) / 2;
			if ((rc = apply_range(m, a, mid)) != SL_OK || stopping(m) ||
			    m->pos != ev[mid - 1].pos + 1)
				return rc;
			return apply_range(m, mid, b);
		}
		if (attempt < m->o->max_attempts) {
			pause_ms(m, backoff_ms(m, attempt++));
			if (stopping(m))
				return SL_OK;
			continue;
		}
		if ((rc = mirror_finish_position(&m->db, &fin, m->src->name, m->pos, new_pos,
		                                 m->state, 0)) != SL_OK)
			return rc;
		rc = mirror_db_dead_letter(&m->db, m->src->name, &ev[a], &fail, attempt,
		                           first_failure_ms, &fin, &fail);
		mirror_finish_free(&fin);
		if (rc == SL_OK) {
			sl_log(SL_LOG_WARN, "mirror: an event went to the dead letters",
			       "pos=%llu key=\"%.*s\" attempts=%u", (unsigned long long)ev[a].pos,
			       (int)(ev[a].key_len > 200 ? 200 : ev[a].key_len), ev[a].key,
			       attempt);
			committed(m, new_pos, 1, 1);
			return SL_OK;
		}
		if (fail.kind == FAIL_FENCED)
			return fenced(m);
		if (fail.kind == FAIL_FATAL || fail.kind == FAIL_POISON)
			return rc;
		/* unavailable: wait, read the position back, and start again */
		pause_ms(m, backoff_ms(m, waits++));
		if ((rc = await_server(m, m->pos, new_pos, &outcome)) != SL_OK)
			return rc == STOPPED ? SL_OK : rc;
		if (outcome < 0)
			return fenced(m);
		if (outcome > 0) {
			committed(m, new_pos, 1, 1);
			return SL_OK;
		}
	}
}

/* ------------------------------------------------------------------ gaps */

/* The source lost [m->pos, m->gap_to) before it was read (M4: never
 * skipped silently). Recorded, and then either the mirror stops, or, when
 * on_gap says continue, the position moves past the gap in the same
 * transaction that records it. */
static int on_gap(mirror *m)
{
	uint64_t from = m->pos, to = m->gap_to;
	mirror_finish fin = {NULL, NULL};
	mirror_fail fail;
	int rc, outcome;

	sl_metric_add(m->m.gaps, 1);
	/* what the source knows after the gap goes with the position past it */
	if (m->src->ops->save_state(m->src->self, m->state, sizeof(m->state)) != SL_OK)
		return sl_error_set(SL_EINTERNAL, "mirror: the source cannot say its state");
	if (m->o->on_gap != SL_MIRROR_GAP_CONTINUE) {
		rc = mirror_db_gap(&m->db, m->src->name, from, to, m->gap_message, NULL, &fail);
		if (rc != SL_OK)
			sl_log(SL_LOG_WARN, "mirror: cannot record a gap", "reason=\"%s\"",
			       fail.error);
		mirror_db_note_error(&m->db, m->src->name, m->gap_message);
		return sl_error_set(
		        SL_ENOTFOUND,
		        "mirror: %s; positions [%llu, %llu) are recorded as a gap (see "
		        "'sluice mirror status'); set [mirror] on_gap = \"continue\" to "
		        "go on past it, then run 'sluice mirror reconcile'",
		        m->gap_message, (unsigned long long)from, (unsigned long long)to);
	}
	for (unsigned waits = 0;;) {
		if ((rc = mirror_finish_position(&m->db, &fin, m->src->name, from, to, m->state,
		                                 0)) != SL_OK)
			return rc;
		rc = mirror_db_gap(&m->db, m->src->name, from, to, m->gap_message, &fin, &fail);
		mirror_finish_free(&fin);
		if (rc == SL_OK)
			break;
		if (fail.kind == FAIL_FENCED)
			return fenced(m);
		if (fail.kind != FAIL_UNAVAILABLE && fail.kind != FAIL_TRANSIENT)
			return rc;
		pause_ms(m, backoff_ms(m, waits++));
		if ((rc = await_server(m, from, to, &outcome)) != SL_OK)
			return rc == STOPPED ? SL_OK : rc;
		if (outcome < 0)
			return fenced(m);
		if (outcome > 0)
			break;
	}
	sl_log(SL_LOG_WARN,
	       "mirror: the source lost events; the gap is recorded and the mirror "
	       "goes on past it ('sluice mirror reconcile' repairs what it can)",
	       "from=%llu to=%llu reason=\"%s\"", (unsigned long long)from, (unsigned long long)to,
	       m->gap_message);
	m->pos = to;
	m->p.pos = to;
	m->p.gaps++;
	sl_metric_set(m->m.pos, (double)to);
	return SL_OK;
}

/* ------------------------------------------------------------------ run */

static int start(mirror *m)
{
	int rc;
	if ((rc = mirror_db_position(&m->db, m->src->name, &m->pos, m->state, sizeof(m->state))) !=
	    SL_OK)
		return rc;
	m->p.pos = m->pos;
	sl_metric_set(m->m.pos, (double)m->pos);
	if (m->state[0] && (rc = m->src->ops->restore_state(m->src->self, m->state)) != SL_OK)
		return sl_error_set(rc, "mirror: %s at position %llu: %s", m->src->name,
		                    (unsigned long long)m->pos, sl_error_last()->message);
	update_head(m, 1);
	return SL_OK;
}

int sl_mirror_run(sl_event_source *src, const sl_mirror_options *o, sl_mirror_progress *out)
{
	mirror m;
	int rc;

	if ((rc = check_options(o)) != SL_OK)
		return rc;
	memset(&m, 0, sizeof(m));
	m.src = src;
	m.o = o;
	m.rng = sl_clock_mono_ns() | 1;
	sl_event_batch_init(&m.batch);
	register_metrics(&m);
	if ((rc = mirror_db_open(&m.db, o)) != SL_OK)
		return rc;
	if ((rc = start(&m)) != SL_OK)
		goto done;
	while (!stopping(&m)) {
		if ((rc = fill_batch(&m)) == GAP) {
			if ((rc = on_gap(&m)) != SL_OK)
				break;
			continue;
		}
		if (rc != SL_OK)
			break;
		if (m.batch.n == 0) {
			if (m.batch_next != m.pos) { /* positions without events (commits) */
				rc = apply_range(&m, 0, 0);
				if (rc != SL_OK)
					break;
			}
			if (!o->follow)
				break;
			continue;
		}
		if ((rc = apply_range(&m, 0, m.batch.n)) != SL_OK)
			break;
	}
	update_head(&m, 1);
done:
	if (out)
		*out = m.p;
	sl_event_batch_free(&m.batch);
	mirror_db_close(&m.db);
	return rc;
}
