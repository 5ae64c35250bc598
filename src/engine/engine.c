/* The engine's API: open, submit, delete, get, key status, flush, close.
 *
 * A write (submit or delete):
 *   1. is admitted by backpressure (pressure.c): it may wait a bounded time
 *      at `throttle`, and is refused with SL_EBUSY at `reject`;
 *   2. under its L1 shard's lock, takes the next version, is appended to
 *      the WAL (which gives it an LSN) and becomes the key's dirty L1 entry;
 *   3. waits for its acknowledgement level: nothing more for `memory`, the
 *      WAL's group commit for `local`, and then the drain's L3 commit for
 *      `l3`.
 *
 * Invariants:
 *   E1  Versions come from one counter that starts above every version
 *       the WAL or L3 can hold (open_version: the WAL keeps the highest in
 *       its records and segment headers, and L3 only ever got versions
 *       from the WAL), so a key's versions only grow, across restarts too.
 *   E2  Per key, version order = LSN order = the order of L1 updates,
 *       because all three happen under the key's shard lock. The drain
 *       reads the WAL in LSN order, so L3 sees a key's writes in order;
 *       the version guard in every tier makes replays and retries
 *       harmless anyway.
 *   E3  A write is acknowledged only after what its level promises is
 *       true; an error means it was not acknowledged (and at `l3`,
 *       SL_ETIMEOUT means it is durable locally and will reach L3).
 *   E4  Read your writes: a key with a write not yet in L3 has a dirty L1
 *       entry (never evicted, l1.h), so get answers from L1 (or from the
 *       WAL record when the value was released) before asking L3.
 *   E5  A delete is a write: a tombstone with its own version, applied
 *       after the pending writes of its key, never racing them: a batch
 *       holds at most one write of a key (a second one waits for the next
 *       batch), so a key's writes reach L3 in order, and a refused newer
 *       write never hides an older acknowledged one.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/breaker.h"
#include "engine/engine_internal.h"
#include "engine/retry_policy.h"
#include "sluice/store.h"

#define MIB              (UINT64_C(1) << 20)
#define L3_WAIT_SLICE_MS 10 /* a waiter for L3 looks at the clock this often */

_Static_assert(SL_ENGINE_VALUE_MAX == SL_WAL_VALUE_MAX,
               "a value the engine takes fits a WAL record");

int sl_ack_parse(sl_ack *out, const char *s)
{
	static const struct {
		const char *name;
		sl_ack ack;
	} acks[] = {{"memory", SL_ACK_MEMORY},
	            {"l2", SL_ACK_L2},
	            {"local", SL_ACK_LOCAL},
	            {"l3", SL_ACK_L3}};
	for (size_t i = 0; s && i < sizeof(acks) / sizeof(acks[0]); i++)
		if (strcmp(s, acks[i].name) == 0) {
			*out = acks[i].ack;
			return SL_OK;
		}
	return sl_error_set(SL_EINVAL,
	                    "unknown acknowledgement level '%s' (memory, l2, local or l3)",
	                    s ? s : "");
}

const char *sl_ack_name(sl_ack ack)
{
	return ack == SL_ACK_MEMORY ? "memory"
	       : ack == SL_ACK_L2   ? "l2"
	       : ack == SL_ACK_L3   ? "l3"
	                            : "local";
}

int sl_tiers_parse(unsigned *out, const char *s)
{
	if (s && strcmp(s, "l2") == 0)
		*out = SL_TIER_L2;
	else if (s && strcmp(s, "l3") == 0)
		*out = SL_TIER_L3;
	else if (s && (strcmp(s, "l2,l3") == 0 || strcmp(s, "l3,l2") == 0))
		*out = SL_TIER_L2 | SL_TIER_L3;
	else
		return sl_error_set(SL_EINVAL, "unknown tiers '%s' (l2, l3 or l2,l3)", s ? s : "");
	return SL_OK;
}

const char *sl_pressure_name(sl_pressure p)
{
	static const char *const names[] = {"normal", "warn", "throttle", "reject"};
	return p >= SL_PRESSURE_NORMAL && p <= SL_PRESSURE_REJECT ? names[p] : "unknown";
}

void sl_submit_options_init(sl_submit_options *o)
{
	o->ack = SL_ACK_LOCAL;
	o->tiers = 0;
	o->ttl_ms = 0;
}

void sl_engine_config_init(sl_engine_config *c)
{
	memset(c, 0, sizeof(*c));
	c->wal_segment_bytes = 64 * MIB;
	c->wal_max_bytes = 1024 * MIB;
	c->l3_type = SL_L3_STORE;
	c->l3_timeout_ms = 10000;
	c->l3_max_attempts = 5;
	c->l3_ack_timeout_ms = 30000;
	c->l2_prefix = "sluice:";
	c->l2_timeout_ms = 250;
	c->l2_connect_timeout_ms = 1000;
	c->l2_queue_max = 100000;
	c->l2_pipeline_max = 256;
	c->l1_budget_bytes = 256 * MIB;
	c->l1_shards = 64;
	c->batch_items = 1000;
	c->batch_bytes = MIB;
	c->batch_ms = 100;
	c->filter_capacity = 1000000;
	c->filter_fp_bits = 16;
	c->pressure_warn = 0.5;
	c->pressure_throttle = 0.75;
	c->pressure_reject = 0.95;
	c->throttle_wait_ms = 100;
	c->value_max = 16 * MIB;
	sl_breaker_config_init(&c->l3_breaker);
	sl_breaker_config_init(&c->l2_breaker);
	c->retry_startup = *sl_retry_policy_default("startup");
	c->retry_batch_write = *sl_retry_policy_default("batch_write");
	c->retry_drain = *sl_retry_policy_default("drain");
	c->retry_query = *sl_retry_policy_default("query");
	c->diff_max_bytes = SL_ENGINE_DIFF_MAX_BYTES;
}

static int check_config(const sl_engine_config *c)
{
	if (c->wal_dir == NULL || c->wal_dir[0] == '\0')
		return sl_error_set(SL_EINVAL, "the engine needs a WAL directory");
	if (c->l3_type == SL_L3_STORE && (c->l3_dir == NULL || c->l3_namespace == NULL))
		return sl_error_set(SL_EINVAL, "an L3 store needs a directory and a namespace");
	if (c->l3_type == SL_L3_POSTGRESQL && (c->l3_url == NULL || c->l3_table == NULL))
		return sl_error_set(SL_EINVAL, "an L3 PostgreSQL table needs a url and a table");
	if (c->l3_type == SL_L3_MYSQL && (c->l3_url == NULL || c->l3_table == NULL))
		return sl_error_set(SL_EINVAL, "an L3 MariaDB/MySQL table needs a url and a table");
	if (c->l3_type != SL_L3_STORE && c->l3_type != SL_L3_POSTGRESQL &&
	    c->l3_type != SL_L3_MYSQL)
		return sl_error_set(SL_EINVAL, "unknown L3 type %d", (int)c->l3_type);
	if (c->l2_url && (c->l2_timeout_ms == 0 || c->l2_connect_timeout_ms == 0 ||
	                  c->l2_queue_max == 0 || c->l2_pipeline_max == 0 || c->l2_prefix == NULL))
		return sl_error_set(SL_EINVAL, "L2 timeouts, queue and pipeline must be positive");
	if (c->batch_items == 0 || c->batch_bytes == 0 || c->batch_ms == 0)
		return sl_error_set(SL_EINVAL, "batch thresholds must be positive");
	if (c->l3_max_attempts == 0)
		return sl_error_set(SL_EINVAL, "l3 max_attempts must be at least 1");
	if (c->filter_fp_bits != 12 && c->filter_fp_bits != 16)
		return sl_error_set(SL_EINVAL, "filter fingerprints are 12 or 16 bits, not %u",
		                    c->filter_fp_bits);
	if (!(c->pressure_warn > 0 && c->pressure_warn <= c->pressure_throttle &&
	      c->pressure_throttle <= c->pressure_reject && c->pressure_reject <= 1))
		return sl_error_set(SL_EINVAL,
		                    "backpressure thresholds must grow: 0 < warn <= throttle <= "
		                    "reject <= 1");
	if (c->value_max == 0 || c->value_max > SL_ENGINE_VALUE_MAX)
		return sl_error_set(SL_EINVAL, "value_max must be 1 byte to %u bytes",
		                    SL_ENGINE_VALUE_MAX);
	if (sl_breaker_config_check(&c->l3_breaker) != SL_OK)
		return sl_error_wrap("l3");
	if (sl_breaker_config_check(&c->l2_breaker) != SL_OK)
		return sl_error_wrap("l2");
	const sl_retry_policy *policies[] = {&c->retry_startup, &c->retry_batch_write,
	                                     &c->retry_drain, &c->retry_query};
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		sl_retry_policy p = *policies[i];
		if (p.name == NULL)
			return sl_error_set(SL_EINVAL, "a retry policy has no name");
		if (policies[i] == &c->retry_batch_write)
			p.max_attempts = c->l3_max_attempts; /* the one that is read */
		int rc = sl_retry_policy_check(&p);
		if (rc != SL_OK)
			return rc;
	}
	return SL_OK;
}

static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t engine_now_ms(sl_engine *e)
{
	return sl_clock_mono_ns() / 1000000 + atomic_load(&e->clock_skew_ms);
}

int engine_l3_failed(int rc)
{
	return rc == SL_EIO || rc == SL_ETIMEOUT || rc == SL_EBUSY || rc == SL_EAUTH ||
	       rc == SL_EUNAVAILABLE;
}

uint64_t engine_l3_open_left_ms(sl_engine *e)
{
	sl_breaker_stats bs;
	uint64_t now = engine_now_ms(e);
	sl_breaker_stats_get(e->l3_breaker, now, &bs);
	if (bs.state != SL_BREAKER_OPEN)
		return 0;
	uint64_t until = bs.state_since_ms + e->cfg.l3_breaker.open_ms;
	return until > now ? until - now : 0;
}

int engine_l3_unavailable(sl_engine *e)
{
	char last[256];
	pthread_mutex_lock(&e->error_lock);
	snprintf(last, sizeof(last), "%s", e->l3_error);
	pthread_mutex_unlock(&e->error_lock);
	return sl_error_set(SL_EUNAVAILABLE,
	                    "L3 is unavailable: its circuit breaker is open (about %llu ms "
	                    "more)%s%s",
	                    (unsigned long long)engine_l3_open_left_ms(e),
	                    last[0] ? "; last error: " : "", last);
}

/* 1 when an L3 call that failed with rc at startup may work later: L3 is
 * down or slow, not refusing our settings. */
static int startup_may_retry(int rc)
{
	return rc == SL_EIO || rc == SL_ETIMEOUT || rc == SL_EBUSY;
}

/* Opens the L3 tier (unless the caller gave one) and reads its position,
 * retried with the startup policy: an engine started a moment before its
 * database comes up still opens. The last error otherwise. */
static int open_l3(sl_engine *e, const sl_tier *tier, sl_digest *position)
{
	const sl_engine_config *c = &e->cfg;
	uint64_t rng = sl_clock_mono_ns() | 1, start = sl_clock_mono_ns();
	int rc;
	for (uint32_t attempt = 1;; attempt++) {
		rc = SL_OK;
		if (e->tier.ops == NULL && tier)
			e->tier = *tier; /* the engine owns it now: closed with it */
		else if (e->tier.ops == NULL && c->l3_type == SL_L3_STORE)
			rc = sl_tier_open(&e->tier, c->l3_type, c->l3_dir, c->l3_namespace,
			                  c->l3_timeout_ms);
		else if (e->tier.ops == NULL)
			rc = sl_tier_open(&e->tier, c->l3_type, c->l3_url, c->l3_table,
			                  c->l3_timeout_ms);
		if (rc == SL_OK)
			rc = e->tier.ops->position(e->tier.impl, position);
		if (rc == SL_OK || !startup_may_retry(rc))
			return rc;
		uint64_t elapsed = (sl_clock_mono_ns() - start) / 1000000;
		if (!sl_retry_may(&c->retry_startup, attempt + 1, elapsed))
			return rc;
		uint64_t delay = sl_retry_delay_ms(&c->retry_startup, attempt + 1, &rng);
		sl_log(SL_LOG_WARN, "L3 not ready at open", "attempt=%u retry_ms=%llu error=\"%s\"",
		       attempt, (unsigned long long)delay, sl_error_last()->message);
		sl_error_clear();
		sl_sleep_ms(delay);
	}
}

static void engine_free(sl_engine *e)
{
	pressure_stop(e);
	l2_close(e->l2, 0);
	sl_breaker_free(e->l2_breaker);
	if (e->tier.ops)
		e->tier.ops->close(e->tier.impl);
	sl_wal_close(e->wal);
	l1_free(e->l1);
	filter_free(&e->filter);
	parked_close(e->parked);
	sl_free(e->retries);
	pthread_mutex_destroy(&e->drain_lock);
	pthread_cond_destroy(&e->drain_cond);
	pthread_cond_destroy(&e->l3_cond);
	pthread_mutex_destroy(&e->error_lock);
	pthread_mutex_destroy(&e->retry_lock);
	pthread_mutex_destroy(&e->pressure_lock);
	pthread_cond_destroy(&e->pressure_cond);
	sl_breaker_free(e->l3_breaker);
	sl_free(e->wal_dir);
	sl_free(e);
}

static int open_l2(sl_engine *e)
{
	const sl_engine_config *c = &e->cfg;
	if (c->l2_url == NULL)
		return SL_OK;
	int rc = sl_breaker_new(&e->l2_breaker, "l2", &c->l2_breaker, c->metrics);
	if (rc != SL_OK)
		return rc;
	l2_options o = {.url = c->l2_url,
	                .prefix = c->l2_prefix,
	                .state_dir = c->wal_dir,
	                .timeout_ms = c->l2_timeout_ms,
	                .connect_timeout_ms = c->l2_connect_timeout_ms,
	                .default_ttl_ms = c->l2_default_ttl_ms,
	                .queue_max = c->l2_queue_max,
	                .pipeline_max = c->l2_pipeline_max,
	                .breaker = e->l2_breaker,
	                .metrics = c->metrics};
	return l2_open(&e->l2, &o);
}

int sl_engine_open(sl_engine **out, const sl_engine_config *c)
{
	return engine_open_tier(out, c, NULL);
}

int engine_open_tier(sl_engine **out, const sl_engine_config *c, const sl_tier *tier)
{
	int rc = check_config(c);
	if (rc != SL_OK)
		return rc;
	sl_engine *e = sl_calloc(1, sizeof(*e));
	if (e == NULL)
		return SL_ENOMEM;
	e->cfg = *c;
	pthread_mutex_init(&e->drain_lock, NULL);
	pthread_cond_init(&e->drain_cond, NULL);
	pthread_cond_init(&e->l3_cond, NULL);
	pthread_mutex_init(&e->error_lock, NULL);
	pthread_mutex_init(&e->retry_lock, NULL);
	pthread_mutex_init(&e->pressure_lock, NULL);
	pthread_cond_init(&e->pressure_cond, NULL);
	atomic_store(&e->min_retry_lsn, UINT64_MAX);
	e->drained_fd = -1;
	if ((e->wal_dir = sl_strdup(c->wal_dir)) == NULL) {
		engine_free(e);
		return SL_ENOMEM;
	}
	e->cfg.wal_dir = e->wal_dir;

	sl_wal_options wo = {c->wal_dir, c->wal_segment_bytes, c->wal_max_bytes};
	sl_wal_open_report report;
	sl_digest position;
	if ((rc = sl_wal_open(&e->wal, &wo, &report)) != SL_OK ||
	    (rc = l1_new(&e->l1, c->l1_shards, c->l1_budget_bytes)) != SL_OK ||
	    (rc = filter_init(&e->filter, c->filter_capacity, c->filter_fp_bits)) != SL_OK ||
	    (rc = parked_open(&e->parked, c->wal_dir)) != SL_OK)
		goto fail;
	e->opened_ms = engine_now_ms(e);
	e->batch_write = c->retry_batch_write;
	e->batch_write.max_attempts = c->l3_max_attempts;
	if ((rc = sl_breaker_new(&e->l3_breaker, "l3", &c->l3_breaker, c->metrics)) != SL_OK)
		goto fail;
	rc = open_l3(e, tier, &position);
	tier = NULL;
	if (rc != SL_OK || (rc = filter_load(&e->filter, c->wal_dir, &position)) != SL_OK ||
	    (rc = open_l2(e)) != SL_OK)
		goto fail;
	/* E1; L3 versions are < 2^63, and a damaged floor must not wrap */
	if (report.max_version >= UINT64_C(1) << 62) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "the WAL in %s holds a version of %" PRIu64 ", past any the "
		                  "engine gives",
		                  c->wal_dir, report.max_version);
		goto fail;
	}
	e->open_version = report.max_version;
	uint64_t now = wall_us();
	atomic_store(&e->next_version, (now > report.max_version ? now : report.max_version) + 1);
	sl_wal_set_version_floor(e->wal, atomic_load(&e->next_version));
	atomic_store(&e->l3_up, 1);
	if (report.torn_bytes > 0)
		sl_log(SL_LOG_WARN, "WAL torn tail cut", "bytes=%llu records=%llu",
		       (unsigned long long)report.torn_bytes, (unsigned long long)report.records);
	if ((rc = drain_start(e)) != SL_OK || (rc = pressure_start(e)) != SL_OK)
		goto fail;
	*out = e;
	return SL_OK;
fail:
	sl_error_wrap("open the engine");
	if (e->drain_started) {
		e->drain_deadline_ns = sl_clock_mono_ns();
		drain_stop(e);
	}
	engine_free(e);
	return rc;
}

void sl_engine_close(sl_engine *e, unsigned drain_ms)
{
	if (e == NULL)
		return;
	atomic_store(&e->closing, 1);
	e->drain_deadline_ns = sl_clock_mono_ns() + (uint64_t)drain_ms * 1000000;
	drain_stop(e);
	l2_close(e->l2, drain_ms);
	e->l2 = NULL;
	/* The filter is saved only at a position L3 gives now; with its
	 * breaker open, it is not asked and the next open rebuilds the
	 * filter instead. */
	sl_digest position;
	if (sl_breaker_allow(e->l3_breaker, engine_now_ms(e))) {
		int rc = e->tier.ops->position(e->tier.impl, &position);
		sl_breaker_record(e->l3_breaker, !engine_l3_failed(rc), engine_now_ms(e));
		if (rc == SL_OK)
			filter_save(&e->filter, e->wal_dir, &position);
	}
	sl_error_clear();
	engine_free(e);
}

/* Checks the options against the engine; *tiers the ones the write goes to. */
static int check_options(const sl_engine *e, const sl_submit_options *o, unsigned *tiers)
{
	if (o->ack < SL_ACK_MEMORY || o->ack > SL_ACK_L2)
		return sl_error_set(SL_EINVAL, "unknown acknowledgement level %d", (int)o->ack);
	*tiers = o->tiers ? o->tiers : e->l2 ? SL_TIER_L2 | SL_TIER_L3 : SL_TIER_L3;
	if ((*tiers & ~(unsigned)(SL_TIER_L2 | SL_TIER_L3)) != 0)
		return sl_error_set(SL_EINVAL, "unknown tiers 0x%x", *tiers);
	if ((*tiers & SL_TIER_L2) && e->l2 == NULL)
		return sl_error_set(SL_EINVAL, "this engine has no L2 (no [l2] url)");
	if (o->ttl_ms != 0 && !(*tiers & SL_TIER_L2))
		return sl_error_set(SL_EINVAL,
		                    "a TTL is the L2 copy's: it needs L2 among the tiers");
	if (o->ack == SL_ACK_L2 && !(*tiers & SL_TIER_L2))
		return sl_error_set(SL_EINVAL, "acknowledgement level l2 needs L2 among the tiers");
	if ((o->ack == SL_ACK_LOCAL || o->ack == SL_ACK_L3) && !(*tiers & SL_TIER_L3))
		return sl_error_set(SL_EINVAL,
		                    "a write to L2 only is not in the WAL: acknowledgement level "
		                    "memory or l2");
	if (atomic_load(&e->closing))
		return sl_error_set(SL_EBUSY, "the engine is closing");
	return SL_OK;
}

/* Queues the write's L2 copy (or, written to L3 only, a hole). Called
 * under the key's shard lock, so a key's copies are queued in order. */
static int queue_l2(sl_engine *e, const char *key, size_t len, uint64_t h, uint64_t version,
                    const void *value, size_t value_len, int deleted, unsigned tiers,
                    uint64_t ttl_ms, l2_waiter *waiter)
{
	l2_write w = {.kind = !(tiers & SL_TIER_L2) ? L2_HOLE
	                      : deleted             ? L2_TOMBSTONE
	                                            : L2_VALUE,
	              .key = key,
	              .key_len = len,
	              .hash = h,
	              .version = version,
	              .value = value,
	              .value_len = value_len,
	              .ttl_ms = ttl_ms,
	              .cache_only = !(tiers & SL_TIER_L3) || ttl_ms != 0};
	return l2_enqueue(e->l2, &w, waiter);
}

/* Waits until L3 holds lsn (or it was refused: then the error). */
static int wait_l3(sl_engine *e, const char *key, size_t len, uint64_t lsn, uint64_t version)
{
	uint64_t deadline = sl_clock_mono_ns() + (uint64_t)e->cfg.l3_ack_timeout_ms * 1000000;
	atomic_fetch_add(&e->flush_wanted, 1);
	drain_wake(e);
	int open = 0;
	pthread_mutex_lock(&e->drain_lock);
	while (atomic_load(&e->l3_lsn) < lsn && sl_clock_mono_ns() < deadline &&
	       !(open = sl_breaker_state_at(e->l3_breaker, engine_now_ms(e)) == SL_BREAKER_OPEN)) {
		sl_cond_wait_ms(&e->l3_cond, &e->drain_lock, L3_WAIT_SLICE_MS);
	}
	pthread_mutex_unlock(&e->drain_lock);
	atomic_fetch_sub(&e->flush_wanted, 1);
	if (atomic_load(&e->l3_lsn) < lsn && open) /* no use waiting: answered at once */
		return sl_error_set(
		        SL_ETIMEOUT,
		        "L3's circuit breaker is open; the write is in the WAL and will "
		        "reach L3 once L3 is back");
	if (atomic_load(&e->l3_lsn) < lsn)
		return sl_error_set(SL_ETIMEOUT,
		                    "L3 did not take the write within %u ms; it is in the WAL and "
		                    "will reach L3",
		                    e->cfg.l3_ack_timeout_ms);
	/* refused: waiting in the retry list, or parked already */
	if (drain_retrying(e, lsn) || parked_version(e->parked, key, len) == version)
		return sl_error_set(SL_EIO, "L3 refused the write; it is retried, then parked");
	return SL_OK;
}

/* A write to L2 only: a version, no WAL record. An L1 entry of the key
 * would hide it, so a clean one goes; a dirty one (a write on its way to
 * L3) refuses it. */
static int write_l2_only(sl_engine *e, const char *key, size_t key_len, const void *value,
                         size_t value_len, int deleted, const sl_submit_options *opts,
                         unsigned tiers, uint64_t *version_out)
{
	uint64_t h = l1_hash(key, key_len), version = 0;
	l2_waiter waiter;
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_lock(s);
	l1_entry *en = l1_find(s, key, key_len, h);
	int rc = SL_OK;
	if (en && en->pending_lsn)
		rc = sl_error_set(SL_EBUSY, "the key has a write on its way to L3; a write to L2 "
		                            "only would be hidden by it (write to both tiers)");
	if (rc == SL_OK) {
		if (en)
			l1_remove(s, en);
		version = atomic_fetch_add(&e->next_version, 1);
		rc = queue_l2(e, key, key_len, h, version, value, value_len, deleted, tiers,
		              opts->ttl_ms, opts->ack == SL_ACK_L2 ? &waiter : NULL);
	}
	l1_unlock(s);
	if (rc == SL_OK && opts->ack == SL_ACK_L2)
		rc = l2_wait(e->l2, &waiter);
	if (rc != SL_OK)
		return rc;
	atomic_fetch_add(deleted ? &e->n_deleted : &e->n_submitted, 1);
	if (version_out)
		*version_out = version;
	return SL_OK;
}

static int write_key(sl_engine *e, const char *key, size_t key_len, const void *value,
                     size_t value_len, int deleted, const sl_submit_options *opts,
                     uint64_t *version_out)
{
	sl_submit_options defaults;
	if (opts == NULL) {
		sl_submit_options_init(&defaults);
		opts = &defaults;
	}
	unsigned tiers = 0;
	int rc = sl_key_validate(key, key_len);
	if (rc == SL_OK)
		rc = check_options(e, opts, &tiers);
	if (rc != SL_OK)
		return rc;
	if (value_len > e->cfg.value_max)
		return sl_error_set(SL_ETOOLARGE, "the value has %zu bytes; the cap is %zu",
		                    value_len, e->cfg.value_max);
	if (!(tiers & SL_TIER_L3))
		return write_l2_only(e, key, key_len, value, value_len, deleted, opts, tiers,
		                     version_out);
	if ((rc = pressure_admit(e)) != SL_OK) {
		atomic_fetch_add(&e->n_rejected, 1);
		return rc;
	}
	uint64_t h = l1_hash(key, key_len), lsn, version;
	sl_wal_loc loc;
	l2_waiter waiter;
	int l2_queued = 0;
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_lock(s);
	version = atomic_fetch_add(&e->next_version, 1); /* E1, E2 */
	sl_wal_record r = {0,   version, sl_clock_wall_ms(),     deleted ? SL_WAL_DEL : SL_WAL_PUT,
	                   key, key_len, deleted ? NULL : value, deleted ? 0 : value_len};
	rc = sl_wal_append(e->wal, &r, &lsn, &loc);
	if (rc == SL_OK) {
		rc = l1_put_dirty(s, key, key_len, h, version, value, value_len, deleted, lsn,
		                  &loc);
		if (rc != SL_OK) {
			/* The record is in the WAL and will reach L3, but L1
			 * could not show it: a read would miss the write, so
			 * it is not acknowledged. */
			sl_error_wrap("keep the write in L1");
		}
		if (s->bytes > s->budget)
			l1_shrink(s, sl_wal_synced_lsn(e->wal));
	}
	if (e->l2 && rc == SL_OK) {
		/* a dropped copy makes L2 untrusted by itself (l2.h) */
		(void)queue_l2(e, key, key_len, h, version, value, value_len, deleted, tiers,
		               opts->ttl_ms, opts->ack == SL_ACK_L2 ? &waiter : NULL);
		l2_queued = 1;
	}
	l1_unlock(s);
	if (rc != SL_OK) {
		if (rc == SL_EBUSY)
			atomic_fetch_add(&e->n_rejected, 1);
		return rc;
	}
	/* A busy drain finds the record by itself (it polls while records are
	 * unsynced); waking it for every write would cost a system call each. */
	if (atomic_exchange(&e->drain_idle, 0))
		drain_wake(e);
	if (opts->ack == SL_ACK_L2 && l2_queued && l2_wait(e->l2, &waiter) != SL_OK)
		return sl_error_wrap("the write is in the WAL and will reach L3, but L2");
	if ((opts->ack == SL_ACK_LOCAL || opts->ack == SL_ACK_L3) &&
	    (rc = sl_wal_sync(e->wal, lsn)) != SL_OK)
		return rc;
	if (opts->ack == SL_ACK_L3 && (rc = wait_l3(e, key, key_len, lsn, version)) != SL_OK)
		return rc;
	sl_error_clear(); /* a dropped L2 copy is not this write's failure */
	atomic_fetch_add(deleted ? &e->n_deleted : &e->n_submitted, 1);
	if (version_out)
		*version_out = version;
	return SL_OK;
}

int sl_engine_submit(sl_engine *e, const char *key, size_t key_len, const void *value,
                     size_t value_len, const sl_submit_options *o, uint64_t *version)
{
	return write_key(e, key, key_len, value, value_len, 0, o, version);
}

int sl_engine_delete(sl_engine *e, const char *key, size_t key_len, const sl_submit_options *o,
                     uint64_t *version)
{
	return write_key(e, key, key_len, NULL, 0, 1, o, version);
}

typedef enum { FOUND_NONE, FOUND_VALUE, FOUND_TOMBSTONE, FOUND_RELEASED } l1_found;

/* What L1 says of the key; copies a resident value into *value. */
static l1_found get_l1(sl_engine *e, const char *key, size_t len, uint64_t h, sl_buf *value,
                       uint64_t *version, sl_wal_loc *loc, uint64_t *evictions, int *rc)
{
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_found found = FOUND_NONE;
	*rc = SL_OK;
	l1_lock(s);
	l1_entry *en = l1_find(s, key, len, h);
	*evictions = s->evictions;
	if (en) {
		*version = en->version;
		if (en->deleted) {
			found = FOUND_TOMBSTONE;
		} else if (en->value) {
			found = FOUND_VALUE;
			*rc = sl_buf_set(value, en->value, en->value_len);
		} else {
			found = FOUND_RELEASED;
			*loc = en->loc;
		}
	}
	l1_unlock(s);
	return found;
}

/* A released value, read back from its WAL record. */
static int get_released(sl_engine *e, const sl_wal_loc *loc, uint64_t version, sl_buf *value)
{
	sl_buf rec = SL_BUF_INIT(SIZE_MAX);
	sl_wal_record r;
	int rc = sl_wal_read_at(e->wal, loc, &r, &rec);
	if (rc == SL_OK && r.version != version)
		rc = sl_error_set(SL_ENOTFOUND, "the WAL record moved");
	if (rc == SL_OK)
		rc = sl_buf_set(value, r.value, r.value_len);
	sl_buf_free(&rec);
	return rc;
}

/* Caches a row read from L2 or L3 in L1 (clean), unless a removal since
 * `evictions` makes it possibly older than what L1 dropped (l1.h). A row
 * from L3 is also offered to L2 (a fill, SET NX), under the same lock and
 * only when L1 took it: then no newer write of the key was made since the
 * read began (it would hold an L1 entry, or have moved `evictions`), so
 * the fill cannot land over a newer copy that Redis has since expired. */
static void cache_l1(sl_engine *e, const char *key, size_t len, uint64_t h, uint64_t version,
                     const sl_buf *value, int deleted, uint64_t evictions, int fill_l2)
{
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_lock(s);
	if (l1_put_clean(s, key, len, h, version, value->data, value->len, deleted, evictions) ==
	    SL_OK) {
		if (fill_l2 && e->l2) {
			l2_write w = {.kind = deleted ? L2_TOMBSTONE : L2_VALUE,
			              .key = key,
			              .key_len = len,
			              .hash = h,
			              .version = version,
			              .value = value->data,
			              .value_len = value->len,
			              .fill = 1};
			(void)l2_enqueue(e->l2, &w, NULL);
		}
		if (s->bytes > s->budget)
			l1_shrink(s, sl_wal_synced_lsn(e->wal));
	}
	sl_error_clear(); /* not caching is fine */
	l1_unlock(s);
}

/* L2's copy: SL_OK (a value) or SL_ENOTFOUND (a tombstone, *version its
 * version); *ask_l3 when L2 had no answer (a miss, or it failed). */
static int get_l2(sl_engine *e, const char *key, size_t len, uint64_t h, sl_buf *value,
                  uint64_t *version, uint64_t evictions, int *ask_l3)
{
	l2_hit hit;
	*ask_l3 = 1;
	int rc = l2_get(e->l2, key, len, h, value, &hit);
	if (rc != SL_OK) {
		sl_error_clear(); /* a miss or a failure: L3 answers */
		return SL_ENOTFOUND;
	}
	*ask_l3 = 0;
	*version = hit.version;
	int deleted = hit.kind == L2_TOMBSTONE;
	if (deleted)
		sl_buf_reset(value);
	if (!hit.cache_only)
		cache_l1(e, key, len, h, hit.version, value, deleted, evictions, 0);
	if (deleted)
		return sl_error_set(SL_ENOTFOUND, "no such key (deleted)");
	return SL_OK;
}

/* A read from L3 through its breaker: refused at once while it is open
 * (SL_EUNAVAILABLE), else tried and, while L3 fails, retried within the
 * policy's bounds (NULL: once). */
static int l3_get(sl_engine *e, const char *key, size_t len, sl_buf *value, uint64_t *version,
                  int *deleted, const sl_retry_policy *policy)
{
	uint64_t start = sl_clock_mono_ns(), rng = start | 1;
	for (uint32_t attempt = 1;; attempt++) {
		if (!sl_breaker_allow(e->l3_breaker, engine_now_ms(e))) {
			atomic_fetch_add(&e->n_gets_refused, 1);
			return engine_l3_unavailable(e);
		}
		int rc = e->tier.ops->get(e->tier.impl, key, len, value, version, deleted);
		int failed = engine_l3_failed(rc);
		sl_breaker_record(e->l3_breaker, !failed, engine_now_ms(e));
		uint64_t elapsed = (sl_clock_mono_ns() - start) / 1000000;
		if (!failed || policy == NULL || !sl_retry_may(policy, attempt + 1, elapsed))
			return rc;
		sl_sleep_ms(sl_retry_delay_ms(policy, attempt + 1, &rng));
		sl_error_clear();
	}
}

static int get_l3(sl_engine *e, const char *key, size_t len, uint64_t h, sl_buf *value,
                  uint64_t *version, uint64_t evictions)
{
	if (!filter_maybe(&e->filter, key, len)) {
		atomic_fetch_add(&e->n_gets_filter_miss, 1);
		*version = 0;
		return sl_error_set(SL_ENOTFOUND, "no such key");
	}
	atomic_fetch_add(&e->n_gets_l3, 1);
	int deleted = 0;
	int rc = l3_get(e, key, len, value, version, &deleted, &e->cfg.retry_query);
	if (rc == SL_ENOTFOUND)
		*version = 0;
	if (rc != SL_OK)
		return rc;
	cache_l1(e, key, len, h, *version, value, deleted, evictions, 1);
	if (deleted)
		return sl_error_set(SL_ENOTFOUND, "no such key (deleted)");
	return SL_OK;
}

int sl_engine_get(sl_engine *e, const char *key, size_t key_len, sl_buf *value, uint64_t *version)
{
	int rc = sl_key_validate(key, key_len);
	if (rc != SL_OK)
		return rc;
	uint64_t h = l1_hash(key, key_len);
	for (int attempt = 0;; attempt++) {
		uint64_t v = 0, evictions;
		sl_wal_loc loc;
		l1_found f = get_l1(e, key, key_len, h, value, &v, &loc, &evictions, &rc);
		if (f != FOUND_NONE)
			atomic_fetch_add(&e->n_gets_l1, 1);
		if (f == FOUND_RELEASED) {
			rc = get_released(e, &loc, v, value);
			if (rc != SL_OK && attempt < 3) /* drained meanwhile: again */
				continue;
		}
		int ask_l3 = f == FOUND_NONE;
		if (f == FOUND_NONE && e->l2)
			rc = get_l2(e, key, key_len, h, value, &v, evictions, &ask_l3);
		if (ask_l3)
			rc = get_l3(e, key, key_len, h, value, &v, evictions);
		if (f == FOUND_TOMBSTONE)
			rc = sl_error_set(SL_ENOTFOUND, "no such key (deleted)");
		if (version)
			*version = v;
		return rc;
	}
}

int sl_engine_key_status(sl_engine *e, const char *key, size_t key_len, sl_key_status *out)
{
	int rc = sl_key_validate(key, key_len);
	if (rc != SL_OK)
		return rc;
	memset(out, 0, sizeof(*out));
	uint64_t h = l1_hash(key, key_len);
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_lock(s);
	l1_entry *en = l1_find(s, key, key_len, h);
	int pending = 0;
	if (en) {
		out->l1 = 1;
		out->version = en->version;
		out->deleted = en->deleted;
		pending = en->pending_lsn != 0;
		out->wal = pending;
	}
	l1_unlock(s);
	if (!pending) {
		sl_buf value = SL_BUF_INIT(SIZE_MAX);
		uint64_t v = 0;
		int deleted = 0;
		rc = l3_get(e, key, key_len, &value, &v, &deleted, NULL);
		sl_buf_free(&value);
		if (rc == SL_OK && (!en || v >= out->version)) {
			out->l3 = 1;
			out->version = v;
			out->deleted = deleted;
		} else if (rc == SL_ENOTFOUND) {
			sl_error_clear();
			rc = SL_OK;
		}
		if (rc != SL_OK)
			return rc;
	}
	if (e->l2) {
		sl_buf value = SL_BUF_INIT(SIZE_MAX);
		l2_hit hit;
		if (l2_get(e->l2, key, key_len, h, &value, &hit) == SL_OK)
			out->l2 = hit.version == out->version ||
			          (hit.cache_only && hit.version > out->version);
		if (out->l2 && hit.version > out->version) { /* a write to L2 only */
			out->version = hit.version;
			out->deleted = hit.kind == L2_TOMBSTONE;
			out->l3 = 0;
		}
		sl_buf_free(&value);
		sl_error_clear(); /* L2 not answering is not the status's failure */
	}
	uint64_t parked = parked_version(e->parked, key, key_len);
	if (parked >= out->version && parked > 0) {
		/* the newest write of the key is the one L3 refused */
		out->parked = 1;
		out->version = parked;
		out->l3 = 0;
	}
	return SL_OK;
}

int sl_engine_flush(sl_engine *e, unsigned timeout_ms)
{
	sl_wal_stats ws;
	sl_wal_stats_get(e->wal, &ws);
	uint64_t target = ws.last_lsn;
	uint64_t deadline = sl_clock_mono_ns() + (uint64_t)timeout_ms * 1000000;
	atomic_fetch_add(&e->flush_wanted, 1);
	drain_wake(e);
	int done = 0;
	pthread_mutex_lock(&e->drain_lock);
	while (!(done = atomic_load(&e->l3_lsn) >= target &&
	                atomic_load(&e->min_retry_lsn) > target) &&
	       sl_clock_mono_ns() < deadline) {
		sl_cond_wait_ms(&e->l3_cond, &e->drain_lock, L3_WAIT_SLICE_MS);
	}
	pthread_mutex_unlock(&e->drain_lock);
	atomic_fetch_sub(&e->flush_wanted, 1);
	if (!done)
		return sl_error_set(SL_ETIMEOUT, "L3 did not take everything within %u ms",
		                    timeout_ms);
	return SL_OK;
}

static void breaker_stats(sl_engine *e, sl_breaker *breaker, const char *backend,
                          sl_engine_stats *out)
{
	sl_breaker_stats bs;
	uint64_t now_ms = engine_now_ms(e);
	sl_breaker_stats_get(breaker, now_ms, &bs);
	sl_engine_breaker_stats *b = &out->breakers[out->n_breakers++];
	snprintf(b->backend, sizeof(b->backend), "%s", backend);
	b->state = bs.state;
	uint64_t since = bs.state_since_ms > e->opened_ms ? bs.state_since_ms : e->opened_ms;
	b->state_ms = now_ms > since ? now_ms - since : 0;
	b->opened = bs.opened;
	b->refused = bs.refused;
	b->failures = bs.failures;
	b->successes = bs.successes;
}

int sl_engine_stats_get(sl_engine *e, sl_engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	l1_stats ls;
	sl_wal_stats ws;
	l1_stats_get(e->l1, &ls);
	sl_wal_stats_get(e->wal, &ws);
	out->pressure = (sl_pressure)atomic_load(&e->pressure);
	out->pressure_ratio = atomic_load(&e->pressure_ratio);
	out->l1_entries = ls.entries;
	out->l1_bytes = ls.bytes;
	out->l1_dirty_bytes = ls.dirty_bytes;
	out->l1_pinned_bytes = ls.pinned_bytes;
	out->l1_budget_bytes = e->cfg.l1_budget_bytes;
	out->wal_bytes = ws.bytes;
	out->wal_segments = ws.segments;
	out->wal_max_bytes = e->cfg.wal_max_bytes;
	uint64_t now = sl_clock_wall_ms();
	out->wal_oldest_age_ms =
	        ws.oldest_wall_ms && now > ws.oldest_wall_ms ? now - ws.oldest_wall_ms : 0;
	out->wal_lsn = ws.last_lsn;
	out->wal_synced_lsn = ws.synced_lsn;
	out->l3_lsn = atomic_load(&e->l3_lsn);
	out->l3_lag = ws.last_lsn > out->l3_lsn ? ws.last_lsn - out->l3_lsn : 0;
	out->l3_up = atomic_load(&e->l3_up);
	pthread_mutex_lock(&e->error_lock);
	snprintf(out->l3_error, sizeof(out->l3_error), "%s", e->l3_error);
	pthread_mutex_unlock(&e->error_lock);
	out->parked = parked_count(e->parked);
	out->retrying = atomic_load(&e->retrying);
	out->filter_trusted = filter_trusted(&e->filter, &out->filter_keys);
	out->submitted = atomic_load(&e->n_submitted);
	out->deleted = atomic_load(&e->n_deleted);
	out->rejected = atomic_load(&e->n_rejected);
	out->l3_rows = atomic_load(&e->n_l3_rows);
	out->l3_batches = atomic_load(&e->n_l3_batches);
	out->gets_l1 = atomic_load(&e->n_gets_l1);
	out->gets_l3 = atomic_load(&e->n_gets_l3);
	out->gets_filter_miss = atomic_load(&e->n_gets_filter_miss);
	if (e->l2) {
		l2_stats l2s;
		l2_stats_get(e->l2, &l2s);
		out->l2_enabled = 1;
		out->l2_up = l2s.up;
		out->l2_trusted = l2s.trusted;
		out->l2_generation = l2s.generation;
		out->l2_hits = l2s.hits;
		out->l2_misses = l2s.misses;
		out->l2_skipped = l2s.skipped;
		out->l2_errors = l2s.errors;
		out->l2_writes = l2s.writes;
		out->l2_dropped = l2s.dropped;
		out->l2_queued = l2s.queued;
		snprintf(out->l2_error, sizeof(out->l2_error), "%s", l2s.error);
	}
	out->gets_refused = atomic_load(&e->n_gets_refused);
	breaker_stats(e, e->l3_breaker, "l3", out);
	if (e->l2_breaker)
		breaker_stats(e, e->l2_breaker, "l2", out);
	return SL_OK;
}

int sl_engine_parked(sl_engine *e, sl_parked_fn cb, void *ctx)
{
	return parked_each(e->parked, cb, ctx);
}
