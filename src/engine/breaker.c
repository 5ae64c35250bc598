/* Circuit breakers (breaker.h): one per backend, so a backend that is
 * down is not asked again and again, each call waiting out its timeout.
 *
 *              failures >= ratio of >= min_calls,
 *              or `consecutive` in a row
 *   closed  --------------------------------------->  open
 *     ^                                                |  ^
 *     | trial_calls successes                 open_ms  |  | a trial fails
 *     | in a row (fresh window)               passed   v  |
 *     +---------------------------------------------  half-open
 *
 * Who moves it: sl_breaker_record opens it (closed -> open, half-open ->
 * open) and closes it (half-open -> closed); sl_breaker_allow and
 * sl_breaker_state_at move open -> half-open once open_ms has passed, so
 * time alone needs no thread.
 *
 * Invariants:
 *   B1  In closed, the ring holds the outcomes of the last n <= window
 *       calls recorded, and `failed` counts the failures among them.
 *   B2  In half-open, at most trial_calls calls are allowed and not yet
 *       recorded (`in_flight`); every other call is refused and counted.
 *   B3  Closing starts a fresh window: failures from before the outage
 *       never count against the recovered backend.
 * An outcome recorded while open, or in half-open with no trial in
 * flight, comes from a call allowed before the breaker opened: it is
 * counted in the stats and changes no state.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/breaker.h"

#define WINDOW_MAX 1024

struct sl_breaker {
	pthread_mutex_t lock;
	sl_breaker_config cfg;
	char name[16];
	uint8_t ring[WINDOW_MAX]; /* 1: the call failed */
	unsigned head, n, failed; /* B1 */
	unsigned in_a_row;        /* failures in a row, in closed */
	unsigned in_flight;       /* B2 */
	unsigned trial_ok;        /* trial successes in a row */
	sl_breaker_state state;
	uint64_t since_ms;
	uint64_t opened, refused, failures, successes;
	sl_metric *m_state, *m_opened, *m_refused;
};

const char *sl_breaker_state_name(sl_breaker_state s)
{
	switch (s) {
	case SL_BREAKER_CLOSED:
		return "closed";
	case SL_BREAKER_OPEN:
		return "open";
	case SL_BREAKER_HALF_OPEN:
		return "half_open";
	}
	return "unknown";
}

void sl_breaker_config_init(sl_breaker_config *c)
{
	c->window = 20;
	c->min_calls = 10;
	c->failure_ratio = 0.5;
	c->consecutive = 5;
	c->open_ms = 5000;
	c->trial_calls = 3;
}

int sl_breaker_config_check(const sl_breaker_config *c)
{
	if (c->window == 0 || c->window > WINDOW_MAX)
		return sl_error_set(SL_EINVAL, "breaker window must be 1 to %u calls, not %u",
		                    WINDOW_MAX, c->window);
	if (c->min_calls == 0 || c->min_calls > c->window)
		return sl_error_set(SL_EINVAL,
		                    "breaker min_calls must be 1 to the window (%u), not %u",
		                    c->window, c->min_calls);
	if (!(c->failure_ratio > 0 && c->failure_ratio <= 1))
		return sl_error_set(SL_EINVAL,
		                    "breaker failure_ratio must be above 0 and at most 1, not %g",
		                    c->failure_ratio);
	if (c->consecutive == 0)
		return sl_error_set(SL_EINVAL, "breaker consecutive must be at least 1");
	if (c->open_ms == 0)
		return sl_error_set(SL_EINVAL, "breaker open_ms must be at least 1");
	if (c->trial_calls == 0)
		return sl_error_set(SL_EINVAL, "breaker trial_calls must be at least 1");
	return SL_OK;
}

int sl_breaker_new(sl_breaker **out, const char *name, const sl_breaker_config *c, sl_metrics *m)
{
	int rc = sl_breaker_config_check(c);
	if (rc != SL_OK)
		return rc;
	sl_breaker *b = sl_calloc(1, sizeof(*b));
	if (b == NULL)
		return SL_ENOMEM;
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		sl_free(b);
		return sl_error_set(SL_ENOMEM, "breaker: cannot create a mutex");
	}
	b->cfg = *c;
	snprintf(b->name, sizeof(b->name), "%s", name ? name : "");
	if (m) {
		char labels[64];
		snprintf(labels, sizeof(labels), "backend=\"%s\"", b->name);
		b->m_state = sl_metrics_gauge(m, "sluice_engine_breaker_state", labels,
		                              "circuit breaker: 0 closed, 1 open, 2 half-open");
		b->m_opened = sl_metrics_counter(m, "sluice_engine_breaker_opened_total", labels,
		                                 "times the circuit breaker opened");
		b->m_refused = sl_metrics_counter(m, "sluice_engine_breaker_refused_total", labels,
		                                  "calls the circuit breaker refused while open");
		if (b->m_state == NULL || b->m_opened == NULL || b->m_refused == NULL) {
			sl_breaker_free(b);
			return sl_error_last()->code ? sl_error_last()->code : SL_ENOMEM;
		}
		sl_metric_set(b->m_state, SL_BREAKER_CLOSED);
	}
	*out = b;
	return SL_OK;
}

void sl_breaker_free(sl_breaker *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->lock);
	sl_free(b);
}

static void enter(sl_breaker *b, sl_breaker_state s, uint64_t now_ms)
{
	sl_breaker_state old = b->state;
	b->state = s;
	b->since_ms = now_ms;
	b->in_flight = 0;
	b->trial_ok = 0;
	if (s == SL_BREAKER_OPEN) {
		b->opened++;
		sl_metric_add(b->m_opened, 1);
	}
	if (s == SL_BREAKER_CLOSED) { /* B3 */
		b->head = b->n = b->failed = 0;
		b->in_a_row = 0;
	}
	sl_metric_set(b->m_state, s);
	sl_log(s == SL_BREAKER_OPEN ? SL_LOG_WARN : SL_LOG_INFO, "circuit breaker",
	       "backend=%s from=%s to=%s", b->name, sl_breaker_state_name(old),
	       sl_breaker_state_name(s));
}

/* open -> half-open once open_ms has passed. */
static void tick(sl_breaker *b, uint64_t now_ms)
{
	if (b->state == SL_BREAKER_OPEN && now_ms >= b->since_ms &&
	    now_ms - b->since_ms >= b->cfg.open_ms)
		enter(b, SL_BREAKER_HALF_OPEN, now_ms);
}

int sl_breaker_allow(sl_breaker *b, uint64_t now_ms)
{
	int ok = 0;
	pthread_mutex_lock(&b->lock);
	tick(b, now_ms);
	if (b->state == SL_BREAKER_CLOSED) {
		ok = 1;
	} else if (b->state == SL_BREAKER_HALF_OPEN && b->in_flight < b->cfg.trial_calls) {
		b->in_flight++;
		ok = 1;
	}
	if (!ok) {
		b->refused++;
		sl_metric_add(b->m_refused, 1);
	}
	pthread_mutex_unlock(&b->lock);
	return ok;
}

/* B1: the window after one more outcome. */
static void remember(sl_breaker *b, int failed)
{
	if (b->n == b->cfg.window) {
		b->failed -= b->ring[b->head];
		b->n--;
	}
	b->ring[b->head] = (uint8_t)failed;
	b->head = (b->head + 1) % b->cfg.window;
	b->n++;
	b->failed += (unsigned)failed;
	b->in_a_row = failed ? b->in_a_row + 1 : 0;
}

static int should_open(const sl_breaker *b)
{
	if (b->in_a_row >= b->cfg.consecutive)
		return 1;
	/* a hair of slack: 0.3 * 10 is 3.0000000000000004 in binary */
	return b->n >= b->cfg.min_calls &&
	       (double)b->failed >= b->cfg.failure_ratio * (double)b->n - 1e-9;
}

void sl_breaker_record(sl_breaker *b, int ok, uint64_t now_ms)
{
	pthread_mutex_lock(&b->lock);
	if (ok)
		b->successes++;
	else
		b->failures++;
	tick(b, now_ms);
	switch (b->state) {
	case SL_BREAKER_CLOSED:
		remember(b, !ok);
		if (should_open(b))
			enter(b, SL_BREAKER_OPEN, now_ms);
		break;
	case SL_BREAKER_HALF_OPEN:
		if (b->in_flight == 0)
			break; /* a call from before it opened */
		b->in_flight--;
		if (!ok)
			enter(b, SL_BREAKER_OPEN, now_ms);
		else if (++b->trial_ok >= b->cfg.trial_calls)
			enter(b, SL_BREAKER_CLOSED, now_ms);
		break;
	case SL_BREAKER_OPEN:
		break; /* a call from before it opened */
	}
	pthread_mutex_unlock(&b->lock);
}

sl_breaker_state sl_breaker_state_at(sl_breaker *b, uint64_t now_ms)
{
	pthread_mutex_lock(&b->lock);
	tick(b, now_ms);
	sl_breaker_state s = b->state;
	pthread_mutex_unlock(&b->lock);
	return s;
}

void sl_breaker_stats_get(sl_breaker *b, uint64_t now_ms, sl_breaker_stats *out)
{
	pthread_mutex_lock(&b->lock);
	tick(b, now_ms);
	out->state = b->state;
	out->opened = b->opened;
	out->refused = b->refused;
	out->failures = b->failures;
	out->successes = b->successes;
	out->state_since_ms = b->since_ms;
	pthread_mutex_unlock(&b->lock);
}
