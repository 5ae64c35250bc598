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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline_internal.h"

/* Longer than the PostgreSQL source's horizon margin (100 ms). */
#define CLOCK_MARGIN_WAIT_MS 150

typedef struct job {
	sl_row row;
	uint32_t prior_attempts; /* a retry: attempts made before this run */
	int settled;             /* failed before any transfer (its row is gone) */
	int rc;                  /* SL_OK when stored */
	uint64_t bytes;
	char error[SL_ERROR_MSG_MAX + 64];
} job;

typedef struct run_ctx run_ctx;

typedef struct worker {
	run_ctx *run;
	pthread_t thread;
	int started;
	sl_fetcher fetcher;
} worker;

struct run_ctx {
	const sl_pipeline_options *o;
	sl_sink *sink;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	job *jobs;
	size_t n_jobs, next_job, n_done;
	int quit;
	atomic_int fatal; /* an SL_EAUTH seen this batch: skip the rest */
	int fatal_code;
	char fatal_msg[SL_ERROR_MSG_MAX + 64];
};

void sl_pipeline_options_init(sl_pipeline_options *o)
{
	memset(o, 0, sizeof(*o));
	o->batch_size = 1000;
	o->concurrency = 16;
	o->max_attempts = 5;
	o->retry_base_ms = 1000;
	o->retry_max_ms = 3600000;
	o->part_size = (size_t)8 << 20;
}

static void job_fail(job *j, int rc, const char *what)
{
	const sl_error *e = sl_error_last();
	j->rc = rc;
	snprintf(j->error, sizeof(j->error), "%s: %s", what,
	         e->code == rc && e->message[0] ? e->message : sl_strerror(rc));
}

/* A job whose outcome is known before any transfer: a failure. */
static void settle(job *j, int rc, const char *why)
{
	j->rc = rc;
	j->settled = 1;
	snprintf(j->error, sizeof(j->error), "read from source: %s", why);
}

/* Bytes of j's object from offset, at most want: from its row when the
 * source listed them with it, else lent by the worker's fetcher until its
 * next read. */
static int read_part(worker *w, const job *j, uint64_t offset, size_t want, const uint8_t **part,
                     size_t *got, uint64_t *total)
{
	if (j->row.has_data) {
		uint64_t left = offset < j->row.data_len ? j->row.data_len - offset : 0;
		*part = j->row.data + (offset < j->row.data_len ? offset : 0);
		*got = left < want ? (size_t)left : want;
		*total = j->row.data_len;
		return SL_OK;
	}
	return w->fetcher.ops->read(w->fetcher.self, &j->row, offset, want, part, got, total);
}

/* Copies one object, part by part. */
static void transfer(worker *w, job *j)
{
	const sl_pipeline_options *o = w->run->o;
	sl_sink *sink = w->run->sink;
	const uint8_t *part = NULL;
	void *upload = NULL;
	uint64_t total = 0, offset = 0;
	size_t got = 0;
	int rc;

	if ((rc = read_part(w, j, 0, o->part_size, &part, &got, &total)) != SL_OK) {
		job_fail(j, rc, "read from source");
		return;
	}
	if ((rc = sink->ops->begin(sink->self, j->row.key, total, &upload)) != SL_OK) {
		job_fail(j, rc, "store");
		return;
	}
	for (;;) {
		if (got > 0 && (rc = sink->ops->write(sink->self, upload, part, got)) != SL_OK) {
			job_fail(j, rc, "store");
			goto abort;
		}
		offset += got;
		if (offset >= total)
			break;
		uint64_t now_total = 0;
		size_t want =
		        total - offset < o->part_size ? (size_t)(total - offset) : o->part_size;
		if ((rc = read_part(w, j, offset, want, &part, &got, &now_total)) != SL_OK) {
			job_fail(j, rc, "read from source");
			goto abort;
		}
		if (now_total != total || got == 0) {
			rc = sl_error_set(
			        SL_ECONFLICT,
			        "the object changed while it was read (%llu bytes, now %llu)",
			        (unsigned long long)total, (unsigned long long)now_total);
			job_fail(j, rc, "read from source");
			goto abort;
		}
	}
	if ((rc = sink->ops->commit(sink->self, upload)) != SL_OK) {
		job_fail(j, rc, "store");
		return;
	}
	j->rc = SL_OK;
	j->bytes = total;
	return;
abort:
	sink->ops->abort(sink->self, upload);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	run_ctx *run = w->run;

	pthread_mutex_lock(&run->mu);
	for (;;) {
		while (!run->quit && run->next_job >= run->n_jobs)
			pthread_cond_wait(&run->work_cv, &run->mu);
		if (run->quit)
			break;
		job *j = &run->jobs[run->next_job++];
		pthread_mutex_unlock(&run->mu);

		if (j->settled) {
			/* outcome known already */
		} else if (atomic_load(&run->fatal)) {
			j->rc = SL_EINTERNAL; /* not attempted; the batch is not saved */
			snprintf(j->error, sizeof(j->error), "not attempted");
		} else {
			transfer(w, j);
			if (j->rc == SL_EAUTH && !atomic_exchange(&run->fatal, 1)) {
				run->fatal_code = j->rc;
				snprintf(run->fatal_msg, sizeof(run->fatal_msg), "%s", j->error);
			}
		}

		pthread_mutex_lock(&run->mu);
		if (++run->n_done == run->n_jobs)
			pthread_cond_signal(&run->done_cv);
	}
	pthread_mutex_unlock(&run->mu);
	return NULL;
}

/* Runs jobs[0..n) on the workers and waits for all of them. */
static void run_jobs(run_ctx *run, job *jobs, size_t n)
{
	pthread_mutex_lock(&run->mu);
	run->jobs = jobs;
	run->n_jobs = n;
	run->next_job = 0;
	run->n_done = 0;
	pthread_cond_broadcast(&run->work_cv);
	while (run->n_done < run->n_jobs)
		pthread_cond_wait(&run->done_cv, &run->mu);
	run->jobs = NULL;
	run->n_jobs = 0;
	run->next_job = 0;
	pthread_mutex_unlock(&run->mu);
}

typedef struct flush_ctx {
	job *jobs;
	size_t n;
} flush_ctx;

/* A batching sink refused one object at flush. */
static void on_flush_failed(void *ctx, const char *key, int code, const char *message)
{
	flush_ctx *f = ctx;
	for (size_t i = 0; i < f->n; i++) {
		job *j = &f->jobs[i];
		if (j->rc == SL_OK && strcmp(j->row.key, key) == 0) {
			j->rc = code;
			snprintf(j->error, sizeof(j->error), "store: %s", message);
			return;
		}
	}
}

static uint64_t retry_delay_ms(const sl_pipeline_options *o, uint32_t attempts, uint64_t *rng)
{
	uint64_t delay = o->retry_base_ms;
	for (uint32_t i = 1; i < attempts && delay < o->retry_max_ms; i++)
		delay *= 2;
	if (delay > o->retry_max_ms)
		delay = o->retry_max_ms;
	/* Up to 10% jitter, so objects that failed together spread out. */
	return delay + (delay >= 10 ? sl_xorshift64(rng) % (delay / 10) : 0);
}

static void free_jobs(job *jobs, size_t n)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		sl_row_free(&jobs[i].row);
	sl_free(jobs);
}

/* Reads the due failures and the next rows into *jobs_out. *n_new is how
 * many of them are new rows (they come last, in cursor order). */
static int read_batch(sl_pipeline_state *st, sl_source *src, const sl_pipeline_options *o,
                      const sl_cursor *cursor, job **jobs_out, size_t *n_out, size_t *n_new,
                      int *held_by)
{
	sl_pipeline_due *due = NULL;
	sl_row_batch rows = {0};
	size_t n_due = 0, n = 0;
	job *jobs = NULL;
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
		job *j = &jobs[n];
		rc = src->ops->get(src->self, due[i].row_id, &j->row);
		if (rc == SL_ENOTFOUND) {
			/* Deleted from the source since it failed: it stays a failure
			 * (and is parked in time), not silently forgotten. Its key
			 * and created_at stay as recorded (empty: unchanged). */
			snprintf(j->row.id, sizeof(j->row.id), "%s", due[i].row_id);
			settle(j, rc, sl_error_last()->message);
		} else if (rc != SL_OK) {
			goto cleanup;
		} else if (j->row.error != NULL) {
			settle(j, SL_EINVAL, j->row.error);
		}
		j->prior_attempts = due[i].attempts;
		n++;
	}
	for (size_t i = 0; i < rows.n; i++) {
		job *j = &jobs[n++];
		j->row = rows.rows[i];
		memset(&rows.rows[i], 0, sizeof(rows.rows[i])); /* moved */
		if (j->row.error != NULL) {
			settle(j, SL_EINVAL, j->row.error);
		}
	}
	*jobs_out = jobs;
	*n_out = n;
	*n_new = rows.n;
	jobs = NULL;
	rc = SL_OK;
cleanup:
	free_jobs(jobs, n);
	sl_row_batch_free(&rows);
	sl_free(due);
	return rc;
}

static int run_batches(run_ctx *run, sl_pipeline_state *st, sl_source *src,
                       sl_pipeline_progress *prog)
{
	const sl_pipeline_options *o = run->o;
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
		job *jobs = NULL;
		size_t n = 0, n_new = 0;
		int held_by = 0;

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
		atomic_store(&run->fatal, 0);
		run_jobs(run, jobs, n);
		if (atomic_load(&run->fatal)) {
			rc = sl_error_set(run->fatal_code, "%s", run->fatal_msg);
			free_jobs(jobs, n);
			return rc;
		}
		flush_ctx fc = {jobs, n};
		if ((rc = run->sink->ops->flush(run->sink->self, on_flush_failed, &fc)) ==
		    SL_EAUTH) {
			free_jobs(jobs, n); /* P4: no retry can fix it */
			return rc;
		}
		if (rc != SL_OK) {
			for (size_t i = 0; i < n; i++)
				if (jobs[i].rc == SL_OK)
					job_fail(&jobs[i], rc, "store (flush)");
		}

		uint64_t now = sl_clock_wall_ms();
		sl_pipeline_outcome *outcomes = sl_calloc(n, sizeof(*outcomes));
		if (outcomes == NULL) {
			free_jobs(jobs, n);
			return SL_ENOMEM;
		}
		for (size_t i = 0; i < n; i++) {
			job *j = &jobs[i];
			sl_pipeline_outcome *out = &outcomes[i];
			out->row = &j->row;
			out->stored = j->rc == SL_OK;
			if (out->stored) {
				out->bytes = j->bytes;
				prog->objects++;
				prog->bytes += j->bytes;
				continue;
			}
			out->attempts = j->prior_attempts + 1;
			out->parked = out->attempts >= o->max_attempts;
			out->next_attempt_ms = now + retry_delay_ms(o, out->attempts, &rng);
			out->error = j->error;
			prog->failed++;
			sl_log(out->parked ? SL_LOG_ERROR : SL_LOG_WARN,
			       out->parked ? "object parked after its last attempt"
			                   : "object failed",
			       "key=%s row=%s attempt=%u error=\"%s\"",
			       j->row.key ? j->row.key : "?", j->row.id, out->attempts, j->error);
		}
		sl_cursor next = cursor;
		if (n_new > 0) {
			const sl_row *last = &jobs[n - 1].row;
			snprintf(next.created_at, sizeof(next.created_at), "%s", last->created_at);
			snprintf(next.id, sizeof(next.id), "%s", last->id);
		}
		rc = sl_pipeline_state_save_batch(st, n_new > 0 ? &next : NULL, outcomes, n, now);
		sl_free(outcomes);
		free_jobs(jobs, n);
		if (rc != SL_OK)
			return rc;
		cursor = next;
		prog->batches++;
		prog->rows += n_new;
		if (o->progress != NULL)
			o->progress(o->progress_ctx, prog);
	}
	return SL_OK;
}

int sl_pipeline_run(sl_pipeline_state *st, sl_source *src, sl_sink *sink,
                    const sl_pipeline_options *o, sl_pipeline_progress *out)
{
	sl_pipeline_progress prog;
	worker *workers = NULL;
	run_ctx run;
	size_t n_workers = 0;
	int rc;

	if (o->batch_size == 0 || o->concurrency == 0 || o->max_attempts == 0 ||
	    o->part_size == 0 || o->open_fetcher == NULL)
		return sl_error_set(SL_EINVAL, "pipeline options: batch size, concurrency, "
		                               "attempts, part size and a fetcher are required");
	memset(&prog, 0, sizeof(prog));
	memset(&run, 0, sizeof(run));
	run.o = o;
	run.sink = sink;
	pthread_mutex_init(&run.mu, NULL);
	pthread_cond_init(&run.work_cv, NULL);
	pthread_cond_init(&run.done_cv, NULL);

	if ((rc = sl_pipeline_state_lock(st)) != SL_OK)
		goto cleanup;
	if ((workers = sl_calloc(o->concurrency, sizeof(*workers))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (; n_workers < o->concurrency; n_workers++) {
		worker *w = &workers[n_workers];
		w->run = &run;
		if ((rc = o->open_fetcher(o->fetcher_ctx, &w->fetcher)) != SL_OK)
			goto cleanup;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			rc = sl_error_set(SL_EIO, "cannot start a worker thread");
			goto cleanup;
		}
		w->started = 1;
	}
	rc = run_batches(&run, st, src, &prog);
cleanup:
	pthread_mutex_lock(&run.mu);
	run.quit = 1;
	pthread_cond_broadcast(&run.work_cv);
	pthread_mutex_unlock(&run.mu);
	for (size_t i = 0; workers != NULL && i < o->concurrency; i++) {
		if (workers[i].started)
			pthread_join(workers[i].thread, NULL);
		sl_fetcher_close(&workers[i].fetcher);
	}
	sl_free(workers);
	sl_pipeline_state_unlock(st);
	pthread_cond_destroy(&run.done_cv);
	pthread_cond_destroy(&run.work_cv);
	pthread_mutex_destroy(&run.mu);
	prog.cursor = NULL;
	if (out != NULL)
		*out = prog;
	return rc;
}
