/* Backpressure and metrics: a monitor thread that, every few
 * milliseconds, measures what is not yet durable downstream and sets the
 * level writers read, and publishes the engine's gauges.
 *
 * The pressure is the highest of these fractions (never total memory, and
 * never clean entries, which can always be evicted):
 *   - WAL bytes on disk / wal_max_bytes: records not yet released because
 *     L3 does not hold them (the L3 lag, in bytes);
 *   - pinned L1 bytes / l1_budget_bytes: the entries of keys waiting for
 *     L3, which L1 cannot let go of (their values it can: they are read
 *     back from the WAL);
 *   - the oldest unreleased WAL record's age / wal_max_age_ms (when set).
 * Levels: normal below pressure_warn, then warn, throttle (a write waits up
 * to throttle_wait_ms for the level to drop, then goes on), and reject
 * from pressure_reject (SL_EBUSY; HTTP 429 with Retry-After).
 */
#include <string.h>

#include "engine/engine_internal.h"

#define MONITOR_MS 5

struct engine_metrics {
	sl_metric *pressure, *pressure_ratio, *l1_bytes, *l1_dirty, *l1_pinned, *l1_entries,
	        *wal_bytes, *wal_segments, *wal_age, *l3_lag, *l3_up, *parked, *retrying,
	        *filter_trusted, *filter_keys, *submitted, *deleted, *rejected, *l3_rows,
	        *l3_batches, *gets_l1, *gets_l3, *gets_filter, *wal_syncs;
	uint64_t last[9]; /* counters already added, in the order of publish_counters */
};

static int metrics_init(sl_engine *e)
{
	sl_metrics *m = e->cfg.metrics;
	if (m == NULL)
		return SL_OK;
	engine_metrics *em = sl_calloc(1, sizeof(*em));
	if (em == NULL)
		return SL_ENOMEM;
	e->metrics = em;
	em->pressure = sl_metrics_gauge(m, "sluice_engine_pressure_level", NULL,
	                                "0 normal, 1 warn, 2 throttle, 3 reject");
	em->pressure_ratio = sl_metrics_gauge(m, "sluice_engine_pressure_ratio", NULL,
	                                      "the highest fraction of a backpressure cap in use");
	em->l1_bytes = sl_metrics_gauge(m, "sluice_engine_l1_bytes", NULL, "bytes L1 holds");
	em->l1_dirty = sl_metrics_gauge(m, "sluice_engine_l1_dirty_bytes", NULL,
	                                "bytes of L1 entries not yet in L3");
	em->l1_pinned = sl_metrics_gauge(m, "sluice_engine_l1_pinned_bytes", NULL,
	                                 "bytes of dirty L1 entries without their values");
	em->l1_entries = sl_metrics_gauge(m, "sluice_engine_l1_entries", NULL, "keys in L1");
	em->wal_bytes = sl_metrics_gauge(m, "sluice_engine_wal_bytes", NULL,
	                                 "bytes of WAL segments on disk");
	em->wal_segments =
	        sl_metrics_gauge(m, "sluice_engine_wal_segments", NULL, "WAL segment files");
	em->wal_age = sl_metrics_gauge(m, "sluice_engine_wal_oldest_age_seconds", NULL,
	                               "age of the oldest WAL record not yet in L3");
	em->l3_lag = sl_metrics_gauge(m, "sluice_engine_l3_lag_records", NULL,
	                              "acknowledged writes not yet in L3");
	em->l3_up = sl_metrics_gauge(m, "sluice_engine_l3_up", NULL,
	                             "1 when the last L3 write succeeded");
	em->parked = sl_metrics_gauge(m, "sluice_engine_parked_rows", NULL,
	                              "rows L3 refused for good (see engine status)");
	em->retrying = sl_metrics_gauge(m, "sluice_engine_retrying_rows", NULL,
	                                "rows L3 refused, to be tried again");
	em->filter_trusted = sl_metrics_gauge(m, "sluice_engine_filter_trusted", NULL,
	                                      "1 when the cuckoo filter answers misses");
	em->filter_keys =
	        sl_metrics_gauge(m, "sluice_engine_filter_keys", NULL, "keys in the filter");
	em->submitted = sl_metrics_counter(m, "sluice_engine_submits_total", NULL,
	                                   "writes acknowledged (not deletes)");
	em->deleted =
	        sl_metrics_counter(m, "sluice_engine_deletes_total", NULL, "deletes acknowledged");
	em->rejected = sl_metrics_counter(m, "sluice_engine_rejected_total", NULL,
	                                  "writes refused by backpressure or a full WAL");
	em->l3_rows =
	        sl_metrics_counter(m, "sluice_engine_l3_rows_total", NULL, "rows written to L3");
	em->l3_batches = sl_metrics_counter(m, "sluice_engine_l3_batches_total", NULL,
	                                    "L3 transactions committed");
	em->gets_l1 = sl_metrics_counter(m, "sluice_engine_gets_total", "from=\"l1\"",
	                                 "gets by where they were answered");
	em->gets_l3 = sl_metrics_counter(m, "sluice_engine_gets_total", "from=\"l3\"",
	                                 "gets by where they were answered");
	em->gets_filter = sl_metrics_counter(m, "sluice_engine_gets_total", "from=\"filter\"",
	                                     "gets by where they were answered");
	em->wal_syncs = sl_metrics_counter(m, "sluice_engine_wal_syncs_total", NULL,
	                                   "fdatasync calls of the WAL's group commit");
	return SL_OK;
}

static void add_counter(sl_metric *m, uint64_t now, uint64_t *last)
{
	if (now > *last)
		sl_metric_add(m, now - *last);
	*last = now;
}

static void publish(sl_engine *e, const sl_engine_stats *st, uint64_t syncs)
{
	engine_metrics *em = e->metrics;
	if (em == NULL)
		return;
	sl_metric_set(em->pressure, st->pressure);
	sl_metric_set(em->pressure_ratio, st->pressure_ratio);
	sl_metric_set(em->l1_bytes, (double)st->l1_bytes);
	sl_metric_set(em->l1_dirty, (double)st->l1_dirty_bytes);
	sl_metric_set(em->l1_pinned, (double)st->l1_pinned_bytes);
	sl_metric_set(em->l1_entries, (double)st->l1_entries);
	sl_metric_set(em->wal_bytes, (double)st->wal_bytes);
	sl_metric_set(em->wal_segments, (double)st->wal_segments);
	sl_metric_set(em->wal_age, (double)st->wal_oldest_age_ms / 1000.0);
	sl_metric_set(em->l3_lag, (double)st->l3_lag);
	sl_metric_set(em->l3_up, st->l3_up);
	sl_metric_set(em->parked, (double)st->parked);
	sl_metric_set(em->retrying, (double)st->retrying);
	sl_metric_set(em->filter_trusted, st->filter_trusted);
	sl_metric_set(em->filter_keys, (double)st->filter_keys);
	add_counter(em->submitted, st->submitted, &em->last[0]);
	add_counter(em->deleted, st->deleted, &em->last[1]);
	add_counter(em->rejected, st->rejected, &em->last[2]);
	add_counter(em->l3_rows, st->l3_rows, &em->last[3]);
	add_counter(em->l3_batches, st->l3_batches, &em->last[4]);
	add_counter(em->gets_l1, st->gets_l1, &em->last[5]);
	add_counter(em->gets_l3, st->gets_l3, &em->last[6]);
	add_counter(em->gets_filter, st->gets_filter_miss, &em->last[7]);
	add_counter(em->wal_syncs, syncs, &em->last[8]);
}

void pressure_update(sl_engine *e)
{
	sl_engine_stats st;
	sl_wal_stats ws;
	sl_engine_stats_get(e, &st);
	sl_wal_stats_get(e->wal, &ws);
	const sl_engine_config *c = &e->cfg;
	double ratio = 0, r;
	if (c->wal_max_bytes && (r = (double)st.wal_bytes / (double)c->wal_max_bytes) > ratio)
		ratio = r;
	if (c->l1_budget_bytes &&
	    (r = (double)st.l1_pinned_bytes / (double)c->l1_budget_bytes) > ratio)
		ratio = r;
	if (c->wal_max_age_ms && (r = (double)st.wal_oldest_age_ms / c->wal_max_age_ms) > ratio)
		ratio = r;
	sl_pressure level = ratio >= c->pressure_reject     ? SL_PRESSURE_REJECT
	                    : ratio >= c->pressure_throttle ? SL_PRESSURE_THROTTLE
	                    : ratio >= c->pressure_warn     ? SL_PRESSURE_WARN
	                                                    : SL_PRESSURE_NORMAL;
	atomic_store(&e->pressure_ratio, ratio);
	int old = atomic_exchange(&e->pressure, (int)level);
	if (old != (int)level) {
		sl_log(level > (sl_pressure)old ? SL_LOG_WARN : SL_LOG_INFO, "backpressure",
		       "level=%s ratio=%.3f", sl_pressure_name(level), ratio);
		pthread_mutex_lock(&e->pressure_lock);
		pthread_cond_broadcast(&e->pressure_cond);
		pthread_mutex_unlock(&e->pressure_lock);
	}
	st.pressure = level;
	st.pressure_ratio = ratio;
	publish(e, &st, ws.syncs);
}

static void *monitor_main(void *arg)
{
	sl_engine *e = arg;
	while (!atomic_load(&e->closing)) {
		l1_shrink_all(e->l1, sl_wal_synced_lsn(e->wal));
		pressure_update(e);
		sl_sleep_ms(MONITOR_MS);
	}
	return NULL;
}

int pressure_start(sl_engine *e)
{
	int rc = metrics_init(e);
	if (rc != SL_OK)
		return rc;
	pressure_update(e);
	if (pthread_create(&e->monitor_thread, NULL, monitor_main, e) != 0)
		return sl_error_set(SL_EINTERNAL, "cannot start the backpressure monitor");
	e->monitor_started = 1;
	return SL_OK;
}

void pressure_stop(sl_engine *e)
{
	if (e->monitor_started) {
		atomic_store(&e->closing, 1);
		pthread_join(e->monitor_thread, NULL);
		e->monitor_started = 0;
	}
	sl_free(e->metrics);
	e->metrics = NULL;
}

int pressure_admit(sl_engine *e)
{
	int level = atomic_load(&e->pressure);
	if (level < SL_PRESSURE_THROTTLE)
		return SL_OK;
	uint64_t deadline = sl_clock_mono_ns() + (uint64_t)e->cfg.throttle_wait_ms * 1000000;
	pthread_mutex_lock(&e->pressure_lock);
	while ((level = atomic_load(&e->pressure)) == SL_PRESSURE_THROTTLE &&
	       sl_clock_mono_ns() < deadline) {
		sl_cond_wait_ms(&e->pressure_cond, &e->pressure_lock, MONITOR_MS);
	}
	pthread_mutex_unlock(&e->pressure_lock);
	if (level >= SL_PRESSURE_REJECT)
		return sl_error_set(
		        SL_EBUSY,
		        "backpressure: L3 is behind (%.0f%% of a cap in use); try again "
		        "later",
		        100.0 * atomic_load(&e->pressure_ratio));
	return SL_OK;
}
