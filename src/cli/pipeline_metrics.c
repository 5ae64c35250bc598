/*
 * The metrics of a running pipeline (`sluice run -m`, `sluice start -m`),
 * all named sluice_pipeline_*, fed from two sides:
 *
 *   the run thread   each saved batch, through the progress callback (which
 *                    this module wraps around the command's own): rows
 *                    listed, objects and bytes stored, objects failed, the
 *                    batch's duration, the time of the last batch; and each
 *                    run's end. Counters count over the whole process, so
 *                    over the many runs of a `start`: a run's progress
 *                    carries that run's totals, and the difference from the
 *                    last batch seen is what is added.
 *   the sampler      a thread that, every SAMPLE_MS, reads what has to be
 *                    asked for: the failures retrying and parked (from the
 *                    state) and the lag behind the source (read_lag). It
 *                    has its own state handle (the state is SQLite in WAL
 *                    mode, so it reads beside the run's writes) and its
 *                    own source connection, with a short timeout and no
 *                    waiting to reconnect. So a lag query, slow on a long
 *                    backlog (a count of the rows after the cursor) or
 *                    failing with the database away, never holds a batch
 *                    back or ends a run, and the lag stays fresh while
 *                    `start` waits between runs. A failed read keeps the
 *                    gauges at their last values, logs once and is tried
 *                    again next time. A slow read spaces the next ones out
 *                    (SAMPLE_COST_FACTOR), so the sampler takes a bounded
 *                    share of the database's time.
 *
 * Every update is an atomic store or add (net/metrics.c); the HTTP server
 * only renders the registry, and touches neither the state nor the source.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/pipeline_metrics.h"

#define METRICS_ADDR "127.0.0.1"
/* How often the sampler reads the failures and the lag. */
#define SAMPLE_MS 5000
/* ... or this many times as long as the last reading took, if longer. */
#define SAMPLE_COST_FACTOR 10
/* The sampler's own database connection waits at most this long. */
#define SAMPLE_DB_TIMEOUT_MS 5000

/* From 10 ms to a minute: a batch of small rows takes tens of ms, one of
 * large objects through a slow destination may take many seconds. */
static const double batch_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

/* How far the pipeline is behind its source, as read at one moment. A
 * mode with more to tell (a replication slot's lag in bytes and seconds,
 * say) adds its fields here, fills them in read_lag and publishes them in
 * publish_lag. */
typedef struct lag_sample {
	uint64_t rows;     /* rows after the cursor (changes mode: not known, NaN) */
	double seconds;    /* now - the cursor's created_at while rows wait, else 0;
	                      NaN when rows wait and no row is done yet; changes
	                      mode: the slot's lag in seconds (cli_slot_lag) */
	double slot_bytes; /* changes mode: WAL the slot keeps for us */
} lag_sample;

struct cli_pipeline_metrics {
	sl_metrics *registry;
	sl_http_server *http;

	/* Fed by the run thread. */
	sl_metric *rows_listed, *objects_stored, *bytes_stored, *objects_failed;
	sl_metric *batch_seconds, *last_batch, *runs_completed, *runs_failed;
	sl_pipeline_progress seen; /* this run's totals at its last batch */
	void (*inner)(void *ctx, const sl_pipeline_progress *p);
	void *inner_ctx;

	/* Fed by the sampler. */
	sl_metric *retrying, *parked, *lag_rows, *lag_seconds, *slot_lag_bytes;
	const char *slot; /* changes mode: the configured slot; else NULL */
	sl_pg_config pg;  /* the source's, with the sampler's timeouts */
	const char *state_path;
	const char *since;
	sl_pipeline_state *state; /* the sampler's own; NULL until opened */
	sl_source source;         /* the sampler's own; ops NULL until opened */
	int failing;              /* the last sample failed (logged once) */

	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int quit; /* under mu */
};

/* ------------------------------------------------------------- sampler */

/* Reads the lag behind the source after cursor through the sampler's own
 * connection (opened here when it is not). */
static int read_lag(cli_pipeline_metrics *pm, const sl_cursor *cursor, lag_sample *out)
{
	char newest[SL_TS_TEXT_MAX];
	sl_pg_source *pg = NULL;
	double now_s, cursor_s;
	int rc;

	if (pm->slot != NULL) {
		cli_slot_lag lag;
		if ((rc = cli_pipeline_slot_lag(pm->state, &pm->pg, pm->slot, &lag)) != SL_OK)
			return rc;
		out->rows = 0;
		out->seconds = lag.slot.exists && lag.seconds >= 0 ? lag.seconds : NAN;
		out->slot_bytes = lag.slot.exists ? (double)lag.slot.lag_bytes : NAN;
		return SL_OK;
	}
	if (pm->source.ops == NULL) {
		if ((rc = sl_pg_source_open(&pg, &pm->pg)) != SL_OK)
			return rc;
		sl_pg_source_bind(&pm->source, pg);
	}
	if ((rc = pm->source.ops->lag(pm->source.self, cursor, pm->since, newest, &out->rows)) !=
	    SL_OK)
		return rc;
	now_s = (double)sl_clock_wall_ms() / 1000.0;
	if (out->rows == 0)
		out->seconds = 0;
	else if (cursor->created_at[0] == '\0' ||
	         cli_pipeline_ts_seconds(cursor->created_at, &cursor_s) != 0)
		out->seconds = NAN;
	else /* the database's clock and this host's may disagree a little */
		out->seconds = now_s > cursor_s ? now_s - cursor_s : 0;
	return SL_OK;
}

static void publish_lag(cli_pipeline_metrics *pm, const lag_sample *lag)
{
	sl_metric_set(pm->lag_rows, pm->slot != NULL ? NAN : (double)lag->rows);
	sl_metric_set(pm->lag_seconds, lag->seconds);
	if (pm->slot_lag_bytes != NULL)
		sl_metric_set(pm->slot_lag_bytes, lag->slot_bytes);
}

/* One reading of the state and the source. */
static int sample(cli_pipeline_metrics *pm)
{
	sl_pipeline_status st;
	lag_sample lag;
	int rc;

	if (pm->state == NULL && (rc = sl_pipeline_state_open(&pm->state, pm->state_path)) != SL_OK)
		return rc;
	if ((rc = sl_pipeline_state_status(pm->state, &st)) != SL_OK)
		return rc;
	sl_metric_set(pm->retrying, (double)st.failing);
	sl_metric_set(pm->parked, (double)st.parked);
	if ((rc = read_lag(pm, &st.cursor, &lag)) != SL_OK)
		return rc;
	publish_lag(pm, &lag);
	return SL_OK;
}

static void *sampler_main(void *arg)
{
	cli_pipeline_metrics *pm = arg;
	char reason[SL_ERROR_MSG_MAX];

	pthread_mutex_lock(&pm->mu);
	while (!pm->quit) {
		uint64_t start_ns, took_ms, wait_ms, deadline_ns;
		int rc;

		pthread_mutex_unlock(&pm->mu);
		start_ns = sl_clock_mono_ns();
		rc = sample(pm);
		if (rc != SL_OK && !pm->failing)
			sl_log(SL_LOG_WARN, "metrics: cannot read the pipeline's lag; trying again",
			       "error=%s",
			       sl_log_quote(reason, sizeof(reason), sl_error_last()->message));
		else if (rc == SL_OK && pm->failing)
			sl_log(SL_LOG_INFO, "metrics: the pipeline's lag is read again", NULL);
		pm->failing = rc != SL_OK;
		took_ms = (sl_clock_mono_ns() - start_ns) / 1000000;
		wait_ms = took_ms * SAMPLE_COST_FACTOR > SAMPLE_MS ? took_ms * SAMPLE_COST_FACTOR
		                                                   : SAMPLE_MS;
		deadline_ns = sl_clock_mono_ns() + wait_ms * 1000000;
		pthread_mutex_lock(&pm->mu);
		while (!pm->quit) {
			uint64_t now = sl_clock_mono_ns();
			if (now >= deadline_ns)
				break;
			sl_cond_wait_ms(&pm->cv, &pm->mu, (deadline_ns - now + 999999) / 1000000);
		}
	}
	pthread_mutex_unlock(&pm->mu);
	return NULL;
}

/* ------------------------------------------------------------ run side */

static uint64_t grown(uint64_t now, uint64_t before)
{
	return now > before ? now - before : 0;
}

/* The wrapped progress callback, after each saved batch (run thread). */
static void on_progress(void *ctx, const sl_pipeline_progress *p)
{
	cli_pipeline_metrics *pm = ctx;

	sl_metric_add(pm->rows_listed, grown(p->rows, pm->seen.rows));
	sl_metric_add(pm->objects_stored, grown(p->objects, pm->seen.objects));
	sl_metric_add(pm->bytes_stored, grown(p->bytes, pm->seen.bytes));
	sl_metric_add(pm->objects_failed, grown(p->failed, pm->seen.failed));
	sl_metric_observe(pm->batch_seconds, (double)p->batch_ns / 1e9);
	sl_metric_set(pm->last_batch, (double)sl_clock_wall_ms() / 1000.0);
	pm->seen = *p;
	if (pm->inner != NULL)
		pm->inner(pm->inner_ctx, p);
}

void cli_pipeline_metrics_run_begin(cli_pipeline_metrics *pm, sl_pipeline_options *o)
{
	if (pm == NULL)
		return;
	memset(&pm->seen, 0, sizeof(pm->seen));
	pm->inner = o->progress;
	pm->inner_ctx = o->progress_ctx;
	o->progress = on_progress;
	o->progress_ctx = pm;
}

void cli_pipeline_metrics_run_end(cli_pipeline_metrics *pm, int rc)
{
	if (pm == NULL)
		return;
	sl_metric_add(rc == SL_OK ? pm->runs_completed : pm->runs_failed, 1);
}

/* --------------------------------------------------------------- setup */

static int register_all(cli_pipeline_metrics *pm)
{
	sl_metrics *r = pm->registry;

	pm->rows_listed = sl_metrics_counter(r, "sluice_pipeline_rows_listed_total", NULL,
	                                     "New rows read from the source");
	pm->objects_stored =
	        sl_metrics_counter(r, "sluice_pipeline_objects_stored_total", NULL,
	                           "Objects stored in the destination, new and retried");
	pm->bytes_stored = sl_metrics_counter(r, "sluice_pipeline_bytes_stored_total", NULL,
	                                      "Bytes of the objects stored");
	pm->objects_failed =
	        sl_metrics_counter(r, "sluice_pipeline_objects_failed_total", NULL,
	                           "Objects that failed to be stored, each time they failed");
	pm->retrying = sl_metrics_gauge(r, "sluice_pipeline_failures_retrying", NULL,
	                                "Failed objects to be tried again");
	pm->parked = sl_metrics_gauge(r, "sluice_pipeline_failures_parked", NULL,
	                              "Failed objects past max_attempts, waiting for sluice retry");
	pm->lag_rows = sl_metrics_gauge(r, "sluice_pipeline_lag_rows", NULL,
	                                "Rows of the source after the cursor");
	pm->lag_seconds = sl_metrics_gauge(
	        r, "sluice_pipeline_lag_seconds", NULL,
	        "Now minus the cursor's created_at while rows wait after it, else 0 (changes "
	        "mode: seconds since a run last reached the server's WAL position, while the "
	        "slot keeps bytes)");
	pm->batch_seconds =
	        sl_metrics_histogram(r, "sluice_pipeline_batch_duration_seconds", NULL,
	                             "From reading a batch's rows to saving its outcome",
	                             batch_bounds, sizeof(batch_bounds) / sizeof(batch_bounds[0]));
	pm->last_batch = sl_metrics_gauge(r, "sluice_pipeline_last_batch_timestamp_seconds", NULL,
	                                  "Unix time the last batch was saved, 0 never");
	pm->runs_completed = sl_metrics_counter(r, "sluice_pipeline_runs_completed_total", NULL,
	                                        "Runs that went to their end");
	pm->runs_failed = sl_metrics_counter(r, "sluice_pipeline_runs_failed_total", NULL,
	                                     "Runs that an error ended");
	if (pm->slot != NULL &&
	    (pm->slot_lag_bytes = sl_metrics_gauge(
	             r, "sluice_pipeline_slot_lag_bytes", NULL,
	             "Changes mode: WAL bytes the replication slot keeps for this pipeline")) ==
	            NULL)
		return sl_error_last()->code;
	if (!pm->rows_listed || !pm->objects_stored || !pm->bytes_stored || !pm->objects_failed ||
	    !pm->retrying || !pm->parked || !pm->lag_rows || !pm->lag_seconds ||
	    !pm->batch_seconds || !pm->last_batch || !pm->runs_completed || !pm->runs_failed)
		return sl_error_last()->code;
	return SL_OK;
}

int cli_pipeline_metrics_start(cli_pipeline_metrics **out, const char *name, const cli_pipeline *p,
                               uint16_t port)
{
	cli_pipeline_metrics *pm;
	sl_pipeline_status st;
	int rc;

	if ((pm = sl_calloc(1, sizeof(*pm))) == NULL)
		return cli_fail(name);
	pthread_mutex_init(&pm->mu, NULL);
	pthread_cond_init(&pm->cv, NULL);
	pm->pg = p->cfg.pg;
	if (pm->pg.timeout_ms == 0 || pm->pg.timeout_ms > SAMPLE_DB_TIMEOUT_MS)
		pm->pg.timeout_ms = SAMPLE_DB_TIMEOUT_MS;
	pm->pg.reconnect_ms = 1; /* one attempt: the next sample tries again */
	pm->state_path = p->cfg.state_path;
	pm->slot = p->cfg.changes_mode ? p->cfg.slot : NULL;
	pm->since = p->options.since;
	if (sl_metrics_new(&pm->registry) != SL_OK || register_all(pm) != SL_OK)
		goto fail;
	/* The last batch before this process, so the gauge means the same
	 * after a restart. */
	if (sl_pipeline_state_status(p->state, &st) == SL_OK && st.last_run_ms > 0)
		sl_metric_set(pm->last_batch, (double)st.last_run_ms / 1000.0);
	if (sl_metrics_serve(&pm->http, pm->registry, METRICS_ADDR, port) != SL_OK)
		goto fail;
	if ((rc = pthread_create(&pm->thread, NULL, sampler_main, pm)) != 0) {
		sl_error_set(SL_EIO, "cannot start the metrics sampler: %s", strerror(rc));
		goto fail;
	}
	pm->thread_started = 1;
	sl_log(SL_LOG_INFO, "serving metrics", "port=%u", sl_http_server_port(pm->http));
	*out = pm;
	return CLI_OK;
fail:
	rc = cli_fail(name);
	cli_pipeline_metrics_stop(pm);
	return rc;
}

void cli_pipeline_metrics_stop(cli_pipeline_metrics *pm)
{
	if (pm == NULL)
		return;
	if (pm->thread_started) {
		pthread_mutex_lock(&pm->mu);
		pm->quit = 1;
		pthread_cond_signal(&pm->cv);
		pthread_mutex_unlock(&pm->mu);
		pthread_join(pm->thread, NULL);
	}
	sl_http_server_stop(pm->http);
	sl_metrics_free(pm->registry);
	sl_source_close(&pm->source);
	sl_pipeline_state_close(pm->state);
	pthread_cond_destroy(&pm->cv);
	pthread_mutex_destroy(&pm->mu);
	sl_free(pm);
}
