/*
 * Circuit breakers, one per backend (L2, L3): closed, open, half-open.
 *
 *   closed     calls go through; each outcome is remembered in a window of
 *              the last `window` calls. The breaker opens when at least
 *              `min_calls` are remembered and at least `failure_ratio` of
 *              them failed, or after `consecutive` failures in a row.
 *              A timeout is a failure.
 *   open       calls are refused (sl_breaker_allow returns 0) for open_ms.
 *   half-open  after open_ms, up to `trial_calls` calls go through at a
 *              time; `trial_calls` successes in a row close the breaker
 *              (with an empty window), a failure opens it again.
 *
 * Time is passed in (milliseconds of a monotonic clock) so the state
 * machine is tested with a scripted clock. Thread-safe.
 */
#ifndef SLUICE_ENGINE_BREAKER_H
#define SLUICE_ENGINE_BREAKER_H

#include "sluice/base.h"
#include "sluice/engine.h"
#include "sluice/net.h"

/* sl_breaker_state is in sluice/engine.h: the engine's stats show it. */

const char *sl_breaker_state_name(sl_breaker_state s); /* "closed", "open", "half_open" */

/* sl_breaker_config is in sluice/engine.h: the engine's config holds one
 * per backend. */

void sl_breaker_config_init(sl_breaker_config *c);
/* SL_EINVAL with a message naming the setting when c is out of range. */
int sl_breaker_config_check(const sl_breaker_config *c);

typedef struct sl_breaker sl_breaker;

typedef struct sl_breaker_stats {
	sl_breaker_state state;
	uint64_t opened;    /* times it opened */
	uint64_t refused;   /* calls refused while open */
	uint64_t failures;  /* failures recorded */
	uint64_t successes; /* successes recorded */
	uint64_t state_since_ms;
} sl_breaker_stats;

/* name ("l2", "l3") labels the metrics when m is not NULL:
 * sluice_engine_breaker_state{backend=NAME} (0 closed, 1 open, 2 half-open),
 * sluice_engine_breaker_opened_total, sluice_engine_breaker_refused_total. */
int sl_breaker_new(sl_breaker **out, const char *name, const sl_breaker_config *c, sl_metrics *m);
void sl_breaker_free(sl_breaker *b); /* NULL ok */
/* 1: make the call, then record its outcome; 0: refused (open, or
 * half-open with its trial calls in flight). */
int sl_breaker_allow(sl_breaker *b, uint64_t now_ms);
void sl_breaker_record(sl_breaker *b, int ok, uint64_t now_ms);
sl_breaker_state sl_breaker_state_at(sl_breaker *b, uint64_t now_ms);
void sl_breaker_stats_get(sl_breaker *b, uint64_t now_ms, sl_breaker_stats *out);

#endif
