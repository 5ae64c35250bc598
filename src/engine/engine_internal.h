/*
 * What the engine's modules share: engine.c (the API, versions, reads),
 * drain.c (the batcher: WAL -> L3), filter.c (the cuckoo filter over L3's
 * live keys), parked.c (rows L3 refused for good) and pressure.c (the
 * backpressure monitor and the metrics).
 */
#ifndef SLUICE_ENGINE_INTERNAL_H
#define SLUICE_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/breaker.h"
#include "engine/l1.h"
#include "engine/l2.h"
#include "engine/retry_policy.h"
#include "engine/tier.h"
#include "engine/wal.h"
#include "sluice/engine.h"

/* ---------------------------------------------------------------- filter */

typedef struct engine_filter {
	pthread_rwlock_t lock;
	sl_cuckoo *f;
	int trusted;       /* every live key of L3 is in f */
	uint64_t capacity; /* of f */
	unsigned fp_bits;
} engine_filter;

int filter_init(engine_filter *ef, uint64_t capacity, unsigned fp_bits);
void filter_free(engine_filter *ef);
/* Loads DIR/filter when its saved position equals `position` (then
 * trusted), and removes the file either way: a snapshot is used once. */
int filter_load(engine_filter *ef, const char *dir, const sl_digest *position);
int filter_save(engine_filter *ef, const char *dir, const sl_digest *position);
/* Fills a new filter from L3's live keys (keyset paging), at least twice
 * the keys' count in capacity, and trusts it. Called by the drain only. */
int filter_rebuild(engine_filter *ef, sl_tier *tier);
/* 1 when L3 may have a live row of the key (always when untrusted). */
int filter_maybe(engine_filter *ef, const char *key, size_t len);
/* L3 confirmed a new live key / a deleted one. A full filter is dropped
 * (untrusted) until the next rebuild. */
void filter_add(engine_filter *ef, const char *key, size_t len);
void filter_remove(engine_filter *ef, const char *key, size_t len);
int filter_trusted(engine_filter *ef, uint64_t *keys);
/* A write's outcome is unknown: trust nothing until the next rebuild. */
void filter_distrust(engine_filter *ef);

/* ---------------------------------------------------------------- parked */

typedef struct parked_list parked_list;

int parked_open(parked_list **out, const char *dir);
void parked_close(parked_list *p);
/* Appends and syncs DIR/parked; only then may the WAL drop the record. */
int parked_add(parked_list *p, const char *key, size_t key_len, uint64_t version, int deleted,
               const uint8_t *value, size_t value_len, uint32_t attempts, const char *error);
uint64_t parked_count(parked_list *p);
int parked_each(parked_list *p, sl_parked_fn cb, void *ctx);
/* The newest parked version of the key, 0 if none is parked. */
uint64_t parked_version(parked_list *p, const char *key, size_t key_len);

/* ----------------------------------------------------------------- drain */

typedef struct retry_row retry_row;

/* ---------------------------------------------------------------- engine */

typedef struct engine_metrics engine_metrics;

struct sl_engine {
	sl_engine_config cfg;
	char *wal_dir;
	sl_wal *wal;
	l1 *l1;
	l2_cache *l2;           /* NULL without an L2 */
	sl_breaker *l2_breaker; /* L2's */
	sl_tier tier;
	engine_filter filter;
	parked_list *parked;

	_Atomic uint64_t next_version;
	uint64_t open_version; /* every version L3 can hold is <= this */
	uint64_t drained_mark; /* the checkpoint read at open (drain.c) */
	int drained_fd;        /* DIR/drained, -1 if it cannot be written */
	atomic_int closing;    /* no new writes */

	/* the drain */
	pthread_t drain_thread;
	int drain_started;
	pthread_mutex_t drain_lock;
	pthread_cond_t drain_cond; /* the drain waits on it, writers signal it */
	pthread_cond_t l3_cond;    /* l3_lsn moved */
	_Atomic uint64_t l3_lsn;   /* every record <= it is in L3, retrying or parked */
	_Atomic uint64_t flush_wanted;
	atomic_int drain_stop;
	atomic_int drain_idle;      /* the drain sleeps with nothing to do: wake it */
	uint64_t drain_deadline_ns; /* close: give up draining past it */
	pthread_mutex_t retry_lock; /* the drain changes retries under it */
	retry_row *retries;         /* rows L3 refused, to be tried again */
	size_t n_retries, cap_retries;
	_Atomic uint64_t retrying;
	_Atomic uint64_t min_retry_lsn; /* UINT64_MAX: none */
	atomic_int l3_up;
	uint32_t drain_fails; /* the drain's L3 writes failed in a row */
	pthread_mutex_t error_lock;
	char l3_error[256];

	/* backpressure and metrics */
	pthread_t monitor_thread;
	int monitor_started;
	atomic_int pressure;
	_Atomic double pressure_ratio;
	pthread_mutex_t pressure_lock;
	pthread_cond_t pressure_cond;
	engine_metrics *metrics;

	/* circuit breakers (docs/architecture.md, "circuit breakers") */
	sl_breaker *l3_breaker;
	sl_retry_policy batch_write;    /* cfg's, with l3_max_attempts */
	_Atomic uint64_t clock_skew_ms; /* tests: added to the breakers' clock */
	uint64_t opened_ms;             /* engine_now_ms at open */

	/* counters */
	_Atomic uint64_t n_submitted, n_deleted, n_rejected, n_l3_rows, n_l3_batches;
	_Atomic uint64_t n_gets_l1, n_gets_l3, n_gets_filter_miss, n_gets_refused;
};

/* sl_engine_open with a tier made by the caller (tests: a tier that fails
 * on demand), which the engine then owns; tier NULL: from the config. */
int engine_open_tier(sl_engine **out, const sl_engine_config *c, const sl_tier *tier);

/* The breakers' clock: monotonic milliseconds (plus a test's skew). */
uint64_t engine_now_ms(sl_engine *e);
/* 1 when rc says L3 failed (down, a timeout): a failure for the breaker.
 * Any other outcome (SL_OK, SL_ENOTFOUND, a row refused on its own) is
 * L3 answering. */
int engine_l3_failed(int rc);
/* Milliseconds until the L3 breaker lets a trial through (0 when it is
 * not open). */
uint64_t engine_l3_open_left_ms(sl_engine *e);
/* SL_EUNAVAILABLE with a message naming the backend and the wait left. */
int engine_l3_unavailable(sl_engine *e);
/* The diff's items over a tier made by the caller (tests), which the set
 * then owns; max_bytes 0: the default. */
int engine_items_new_tier(sl_engine_items **out, const sl_tier *tier, uint64_t max_bytes);
/* Rows per scan_items call of a build (tests: small pages). */
void engine_items_set_page(sl_engine_items *it, size_t rows);

int drain_start(sl_engine *e);
void drain_stop(sl_engine *e); /* drains until drain_deadline_ns, then joins */
void drain_wake(sl_engine *e);
void drain_set_error(sl_engine *e, const char *msg);
/* 1 when the record at lsn is waiting in the retry list (L3 refused it). */
int drain_retrying(sl_engine *e, uint64_t lsn);

int pressure_start(sl_engine *e);
void pressure_stop(sl_engine *e);
/* Computes the level now (the monitor does every few milliseconds). */
void pressure_update(sl_engine *e);
/* Waits (bounded) while the level is throttle; SL_EBUSY at reject. */
int pressure_admit(sl_engine *e);

#endif
