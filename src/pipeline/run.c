/* A pipeline run: batches of rows from a source, each object copied to a
 * sink by a pool of workers, the batch's outcome saved in one transaction.
 *
 * One batch:
 *   1. failures that are due (not parked, next attempt passed) are read
 *      again from the source by id;
 *   2. up to batch_size new rows after the cursor (metadata, and the
 *      bytes of small objects when the source lists them);
 *   3. the workers copy the objects concurrently, part by part: each worker
 *      has its own fetcher, which lends it one part at a time, so memory is
 *      about concurrency x part_size (twice that in direct mode, where
 *      libpq's input buffer holds each part too) whatever the object
 *      sizes or counts;
 *   4. the sink is flushed (a batching sink commits here);
 *   5. one state transaction: stored objects clear their failures, failed
 *      ones record attempts, error and next attempt (or are parked), the
 *      cursor moves to the last new row, the totals grow.
 *
 * Invariants:
 *   P1  The cursor moves past a row only in the transaction that records
 *       the row's outcome, stored or failed. So no row is skipped: after a
 *       crash the unsaved batch is read again (sinks are idempotent).
 *   P2  A failure row is deleted only when its object is stored. Past
 *       max_attempts it is parked: visible (`sluice failed`) and kept until
 *       `sluice retry`; never dropped.
 *   P3  A failed object never holds the cursor back: it moves into the
 *       failures table and is retried with exponential backoff.
 *   P4  An error no retry can fix (SL_EAUTH: refused credentials, a skewed
 *       clock), a source that cannot list rows, or a state that cannot be
 *       written ends the run, and the batch in flight is not saved (P1).
 *   P5  *stop is read between batches: the batch in flight finishes and is
 *       saved before the run returns.
 */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline_internal.h"

/* Longer than the PostgreSQL source's horizon margin (100 ms). */
#define CLOCK_MARGIN_WAIT_MS 150

/* Reads the due failures and the next rows into *jobs_out. *n_new is how
 * many of them are new rows (they come last, in cursor order). */
static int read_batch(sl_pipeline_state *st, sl_source *src, const sl_pipeline_options *o,
                      const sl_cursor *cursor, sl_pipeline_job **jobs_out, size_t *n_out,
                      size_t *n_new, int *held_by)
{
	sl_pipeline_due *due = NULL;
	sl_row_batch rows = {0};
	size_t n_due = 0, n = 0;
	sl_pipeline_job *jobs = NULL;
	int rc;

	if ((rc = sl_pipeline_state_due(st, sl_clock_wall_ms(), o->batch_size, &due, &n_due)) !=
	    SL_OK)
		goto cleanup;
	if (!o->retry_only && (rc = src->ops->next(src->self, cursor, o->since, o->batch_size,
	                                           &rows, held_by)) != SL_OK)
		goto cleanup;
	if ((jobs = sl_calloc(n_due + rows.n + 1, sizeof(*jobs))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < n_due; i++) {
		sl_pipeline_job *j = &jobs[n];
		rc = src->ops->get(src->self, due[i].row_id, &j->row);
		if (rc == SL_ENOTFOUND) {
			/* Deleted from the source since it failed: it stays a failure
			 * (and is parked in time), not silently forgotten. Its key
			 * and created_at stay as recorded (empty: unchanged). */
			snprintf(j->row.id, sizeof(j->row.id), "%s", due[i].row_id);
			sl_pipeline_job_settle(j, rc, sl_error_last()->message);
		} else if (rc != SL_OK) {
			goto cleanup;
		} else if (j->row.error != NULL) {
			sl_pipeline_job_settle(j, SL_EINVAL, j->row.error);
		}
		j->prior_attempts = due[i].attempts;
		j->store = 1;
		n++;
	}
	for (size_t i = 0; i < rows.n; i++) {
		sl_pipeline_job *j = &jobs[n++];
		j->row = rows.rows[i];
		memset(&rows.rows[i], 0, sizeof(rows.rows[i])); /* moved */
		j->store = 1;
		if (j->row.error != NULL) {
			sl_pipeline_job_settle(j, SL_EINVAL, j->row.error);
		}
	}
	*jobs_out = jobs;
	*n_out = n;
	*n_new = rows.n;
	jobs = NULL;
	rc = SL_OK;
cleanup:
	sl_pipeline_jobs_free(jobs, n);
	sl_row_batch_free(&rows);
	sl_free(due);
	return rc;
}

static int run_batches(sl_pipeline_pool *pool, sl_pipeline_state *st, sl_source *src,
                       const sl_pipeline_options *o, sl_pipeline_progress *prog)
{
	char newest[SL_TS_TEXT_MAX];
	sl_cursor cursor;
	uint64_t rng = sl_clock_mono_ns() | 1;
	int rc, waited_for_margin = 0;

	if ((rc = sl_pipeline_state_cursor(st, &cursor)) != SL_OK)
		return rc;
	if (o->count_behind && !o->retry_only &&
	    src->ops->lag(src->self, &cursor, o->since, newest, &prog->rows_behind) != SL_OK)
		prog->rows_behind = 0; /* only for progress display */
	prog->cursor = &cursor;
	while (o->stop == NULL || !*o->stop) {
		sl_pipeline_job *jobs = NULL;
		size_t n = 0, n_new = 0;
		int held_by = 0;
		/* For progress->batch_ns: a batch is timed from here to its save. */
		uint64_t batch_start_ns = sl_clock_mono_ns();

		if ((rc = read_batch(st, src, o, &cursor, &jobs, &n, &n_new, &held_by)) != SL_OK)
			return rc;
		prog->held_by = held_by > 0 ? held_by : 0;
		if (n == 0) {
			sl_free(jobs);
			/* Rows younger than the source's commit horizon margin
			 * pass it within a moment: wait for them once, so a run
			 * ends with every row committed before it started. */
			if (held_by < 0 && !waited_for_margin) {
				waited_for_margin = 1;
				sl_sleep_ms(CLOCK_MARGIN_WAIT_MS);
				continue;
			}
			break;
		}
		waited_for_margin = 0;
		if ((rc = sl_pipeline_pool_run(pool, jobs, n)) != SL_OK) {
			sl_pipeline_jobs_free(jobs, n); /* P4: no retry can fix it */
			return rc;
		}

		uint64_t now = sl_clock_wall_ms();
		sl_pipeline_outcome *outcomes = sl_calloc(n, sizeof(*outcomes));
		if (outcomes == NULL) {
			sl_pipeline_jobs_free(jobs, n);
			return SL_ENOMEM;
		}
		sl_pipeline_outcomes(o, jobs, n, outcomes, now, &rng, prog);
		sl_cursor next = cursor;
		if (n_new > 0) {
			const sl_row *last = &jobs[n - 1].row;
			snprintf(next.created_at, sizeof(next.created_at), "%s", last->created_at);
			snprintf(next.id, sizeof(next.id), "%s", last->id);
		}
		rc = sl_pipeline_state_save_batch(st, n_new > 0 ? &next : NULL, NULL, outcomes, n,
		                                  now);
		sl_free(outcomes);
		sl_pipeline_jobs_free(jobs, n);
		if (rc != SL_OK)
			return rc;
		cursor = next;
		prog->batches++;
		prog->rows += n_new;
		prog->batch_ns = sl_clock_mono_ns() - batch_start_ns;
		if (o->progress != NULL)
			o->progress(o->progress_ctx, prog);
	}
	return SL_OK;
}

int sl_pipeline_run(sl_pipeline_state *st, sl_source *src, sl_sink *sink,
                    const sl_pipeline_options *o, sl_pipeline_progress *out)
{
	sl_pipeline_progress prog;
	sl_pipeline_pool *pool = NULL;
	int rc;

	memset(&prog, 0, sizeof(prog));
	if ((rc = sl_pipeline_state_lock(st)) != SL_OK)
		return rc;
	if ((rc = sl_pipeline_pool_start(&pool, o, sink)) == SL_OK)
		rc = run_batches(pool, st, src, o, &prog);
	sl_pipeline_pool_stop(pool);
	sl_pipeline_state_unlock(st);
	prog.cursor = NULL;
	if (out != NULL)
		*out = prog;
	return rc;
}
