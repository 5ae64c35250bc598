/* The worker pool that runs a pipeline batch's jobs (pipeline_internal.h):
 * polling mode (run.c) and changes mode (changes.c) both hand it a batch.
 *
 * A job copies one object to its key, part by part (each worker has its own
 * fetcher, which lends it one part at a time, so memory is about
 * concurrency x part_size whatever the object sizes), after removing the
 * key the row's object was at before, when the job says so. An object
 * whose row records its size or SHA-256 is checked against them on the way
 * (the size at the first part, the hash after the last) and, when it does
 * not match, aborted before the sink's commit, so it is never stored. When every job
 * is done the sink is flushed (a batching sink commits here); a flush that
 * fails fails every job it covered. An SL_EAUTH from any job stops the
 * others from starting (no other object could succeed) and is returned.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline_internal.h"

typedef struct worker {
	sl_pipeline_pool *pool;
	pthread_t thread;
	int started;
	sl_fetcher fetcher;
	sl_sha256_ctx *sha256; /* made when an object first has a hash to check */
} worker;

struct sl_pipeline_pool {
	const sl_pipeline_options *o;
	sl_sink *sink;
	worker *workers;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	sl_pipeline_job *jobs;
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

static void job_fail(sl_pipeline_job *j, int rc, const char *what)
{
	const sl_error *e = sl_error_last();
	j->rc = rc;
	snprintf(j->error, sizeof(j->error), "%s: %s", what,
	         e->code == rc && e->message[0] ? e->message : sl_strerror(rc));
}

/* The object's bytes are not the ones its row records: a failure of this
 * object like any other (recorded, retried), never stored. */
static int job_mismatch(sl_pipeline_job *j, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int job_mismatch(sl_pipeline_job *j, const char *fmt, ...)
{
	char what[SL_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	j->rc = sl_error_set(SL_EVERIFY, "source object does not match its recorded %s", what);
	snprintf(j->error, sizeof(j->error), "%s", sl_error_last()->message);
	return j->rc;
}

void sl_pipeline_job_settle(sl_pipeline_job *j, int rc, const char *why)
{
	j->rc = rc;
	j->settled = 1;
	snprintf(j->error, sizeof(j->error), "read from source: %s", why);
}

/* Bytes of j's object from offset, at most want: from its row when the
 * source listed them with it, else lent by the worker's fetcher until its
 * next read. */
static int read_part(worker *w, const sl_pipeline_job *j, uint64_t offset, size_t want,
                     const uint8_t **part, size_t *got, uint64_t *total)
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
static void transfer(worker *w, sl_pipeline_job *j)
{
	const sl_pipeline_options *o = w->pool->o;
	sl_sink *sink = w->pool->sink;
	const uint8_t *part = NULL;
	void *upload = NULL;
	uint64_t total = 0, offset = 0;
	size_t got = 0;
	int rc, check_hash = j->row.has_content_sha256;

	if (check_hash && w->sha256 == NULL && (rc = sl_sha256_ctx_new(&w->sha256)) != SL_OK) {
		job_fail(j, rc, "check");
		return;
	}
	if ((rc = read_part(w, j, 0, o->part_size, &part, &got, &total)) != SL_OK) {
		job_fail(j, rc, "read from source");
		return;
	}
	if (j->row.size_recorded && total != (uint64_t)j->row.size) {
		job_mismatch(j, "size (%lld bytes, got %llu)", (long long)j->row.size,
		             (unsigned long long)total);
		return;
	}
	if ((rc = sink->ops->begin(sink->self, j->row.key, total, &upload)) != SL_OK) {
		job_fail(j, rc, "store");
		return;
	}
	for (;;) {
		if (check_hash && got > 0)
			sl_sha256_update(w->sha256, part, got);
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
	if (check_hash) {
		sl_digest digest;
		sl_sha256_final(w->sha256, &digest);
		check_hash = 0; /* final has reset the context */
		if (memcmp(digest.bytes, j->row.content_sha256, sizeof(digest.bytes)) != 0) {
			char recorded[2 * sizeof(digest.bytes) + 1];
			sl_hex_encode(recorded, j->row.content_sha256,
			              sizeof(j->row.content_sha256));
			job_mismatch(j, "hash (sha256 %s, got %s)", recorded,
			             sl_digest_to_hex(&digest).s);
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
	if (check_hash) { /* a part failed: start the next object afresh */
		sl_digest unused;
		sl_sha256_final(w->sha256, &unused);
	}
	sink->ops->abort(sink->self, upload);
}

/* One job: the old keys' removal, then the copy. */
static void run_job(worker *w, sl_pipeline_job *j)
{
	sl_sink *sink = w->pool->sink;
	int rc;

	j->rc = SL_OK;
	for (size_t i = 0; i < j->n_remove; i++) {
		if ((rc = sink->ops->remove(sink->self, j->remove_keys[i])) != SL_OK) {
			job_fail(j, rc, "remove");
			return;
		}
	}
	if (j->store)
		transfer(w, j);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	sl_pipeline_pool *pool = w->pool;

	pthread_mutex_lock(&pool->mu);
	for (;;) {
		while (!pool->quit && pool->next_job >= pool->n_jobs)
			pthread_cond_wait(&pool->work_cv, &pool->mu);
		if (pool->quit)
			break;
		sl_pipeline_job *j = &pool->jobs[pool->next_job++];
		pthread_mutex_unlock(&pool->mu);

		if (j->settled) {
			/* outcome known already */
		} else if (atomic_load(&pool->fatal)) {
			j->rc = SL_EINTERNAL; /* not attempted; the batch is not saved */
			snprintf(j->error, sizeof(j->error), "not attempted");
		} else {
			run_job(w, j);
			if (j->rc == SL_EAUTH && !atomic_exchange(&pool->fatal, 1)) {
				pool->fatal_code = j->rc;
				snprintf(pool->fatal_msg, sizeof(pool->fatal_msg), "%s", j->error);
			}
		}

		pthread_mutex_lock(&pool->mu);
		if (++pool->n_done == pool->n_jobs)
			pthread_cond_signal(&pool->done_cv);
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

typedef struct flush_ctx {
	sl_pipeline_job *jobs;
	size_t n;
} flush_ctx;

static int job_has_key(const sl_pipeline_job *j, const char *key)
{
	if (j->store && strcmp(j->row.key, key) == 0)
		return 1;
	for (size_t i = 0; i < j->n_remove; i++)
		if (strcmp(j->remove_keys[i], key) == 0)
			return 1;
	return 0;
}

/* A batching sink refused one object (or removal) at flush. */
static void on_flush_failed(void *ctx, const char *key, int code, const char *message)
{
	flush_ctx *f = ctx;
	for (size_t i = 0; i < f->n; i++) {
		sl_pipeline_job *j = &f->jobs[i];
		if (j->rc == SL_OK && job_has_key(j, key)) {
			j->rc = code;
			snprintf(j->error, sizeof(j->error), "store: %s", message);
			return;
		}
	}
}

int sl_pipeline_pool_run(sl_pipeline_pool *pool, sl_pipeline_job *jobs, size_t n)
{
	int rc;

	atomic_store(&pool->fatal, 0);
	pthread_mutex_lock(&pool->mu);
	pool->jobs = jobs;
	pool->n_jobs = n;
	pool->next_job = 0;
	pool->n_done = 0;
	pthread_cond_broadcast(&pool->work_cv);
	while (pool->n_done < pool->n_jobs)
		pthread_cond_wait(&pool->done_cv, &pool->mu);
	pool->jobs = NULL;
	pool->n_jobs = 0;
	pool->next_job = 0;
	pthread_mutex_unlock(&pool->mu);
	if (atomic_load(&pool->fatal))
		return sl_error_set(pool->fatal_code, "%s", pool->fatal_msg);

	flush_ctx fc = {jobs, n};
	if ((rc = pool->sink->ops->flush(pool->sink->self, on_flush_failed, &fc)) == SL_EAUTH)
		return rc; /* no retry can fix it */
	if (rc != SL_OK)
		for (size_t i = 0; i < n; i++)
			if (jobs[i].rc == SL_OK)
				job_fail(&jobs[i], rc, "store (flush)");
	return SL_OK;
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

void sl_pipeline_outcomes(const sl_pipeline_options *o, const sl_pipeline_job *jobs, size_t n,
                          sl_pipeline_outcome *outcomes, uint64_t now, uint64_t *rng,
                          sl_pipeline_progress *prog)
{
	for (size_t i = 0; i < n; i++) {
		const sl_pipeline_job *j = &jobs[i];
		sl_pipeline_outcome *out = &outcomes[i];
		memset(out, 0, sizeof(*out));
		out->row = &j->row;
		out->stored = j->rc == SL_OK;
		out->removal = !j->store;
		if (out->stored) {
			out->bytes = j->bytes;
			if (j->store) {
				prog->objects++;
				prog->bytes += j->bytes;
			} else if (j->n_remove > 0) {
				prog->removed++;
			}
			continue;
		}
		out->attempts = j->prior_attempts + 1;
		out->parked = out->attempts >= o->max_attempts;
		out->next_attempt_ms = now + retry_delay_ms(o, out->attempts, rng);
		out->error = j->error;
		prog->failed++;
		sl_log(out->parked ? SL_LOG_ERROR : SL_LOG_WARN,
		       out->parked ? "object parked after its last attempt" : "object failed",
		       "key=%s row=%s attempt=%u error=\"%s\"", j->row.key ? j->row.key : "?",
		       j->row.id, out->attempts, j->error);
	}
}

void sl_pipeline_jobs_free(sl_pipeline_job *jobs, size_t n)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		sl_row_free(&jobs[i].row);
		for (size_t k = 0; k < jobs[i].n_remove; k++)
			sl_free(jobs[i].remove_keys[k]);
		sl_free(jobs[i].remove_keys);
	}
	sl_free(jobs);
}

int sl_pipeline_pool_start(sl_pipeline_pool **out, const sl_pipeline_options *o, sl_sink *sink)
{
	sl_pipeline_pool *pool;
	int rc = SL_OK;

	if (o->batch_size == 0 || o->concurrency == 0 || o->max_attempts == 0 ||
	    o->part_size == 0 || o->open_fetcher == NULL)
		return sl_error_set(SL_EINVAL, "pipeline options: batch size, concurrency, "
		                               "attempts, part size and a fetcher are required");
	if ((pool = sl_calloc(1, sizeof(*pool))) == NULL)
		return SL_ENOMEM;
	pool->o = o;
	pool->sink = sink;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->work_cv, NULL);
	pthread_cond_init(&pool->done_cv, NULL);
	if ((pool->workers = sl_calloc(o->concurrency, sizeof(*pool->workers))) == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < o->concurrency; i++) {
		worker *w = &pool->workers[i];
		w->pool = pool;
		if ((rc = o->open_fetcher(o->fetcher_ctx, &w->fetcher)) != SL_OK)
			goto fail;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			rc = sl_error_set(SL_EIO, "cannot start a worker thread");
			goto fail;
		}
		w->started = 1;
	}
	*out = pool;
	return SL_OK;
fail:
	sl_pipeline_pool_stop(pool);
	return rc;
}

void sl_pipeline_pool_stop(sl_pipeline_pool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->quit = 1;
	pthread_cond_broadcast(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
	for (size_t i = 0; pool->workers != NULL && i < pool->o->concurrency; i++) {
		if (pool->workers[i].started)
			pthread_join(pool->workers[i].thread, NULL);
		sl_fetcher_close(&pool->workers[i].fetcher);
		sl_sha256_ctx_free(pool->workers[i].sha256);
	}
	sl_free(pool->workers);
	pthread_cond_destroy(&pool->done_cv);
	pthread_cond_destroy(&pool->work_cv);
	pthread_mutex_destroy(&pool->mu);
	sl_free(pool);
}
