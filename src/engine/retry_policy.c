/* Named retry policies (retry_policy.h): the defaults of the engine's four
 * retry loops, their checks, and the two questions a loop asks: how long
 * to wait before the next attempt, and whether it may start at all.
 *
 * The delay is "full jitter": uniform in [0, cap] with cap = min(max_ms,
 * base_ms * 2^(attempt-2)). Spreading retries over the whole range keeps
 * many waiters (threads, engines) from hitting a recovering backend at the
 * same instant. The doubling stops as soon as it reaches max_ms, so no
 * attempt number, however large, overflows.
 */
#include <string.h>

#include "engine/retry_policy.h"

/* The four uses (retry_policy.h). startup waits out a database that comes
 * up a few seconds after the engine; batch_write keeps the delays the
 * drain always had for a refused row (100 ms doubling to 30 s; its
 * attempts are l3_max_attempts); drain keeps the batch backoff (50 ms to
 * 2 s, never giving up); query bounds what a reader waits on top of the
 * L3 timeout. */
static const sl_retry_policy defaults[] = {
        {.name = "startup",
         .base_ms = 200,
         .max_ms = 5000,
         .max_attempts = 10,
         .max_elapsed_ms = 30000},
        {.name = "batch_write",
         .base_ms = 100,
         .max_ms = 30000,
         .max_attempts = 5,
         .max_elapsed_ms = 0},
        {.name = "drain", .base_ms = 50, .max_ms = 2000, .max_attempts = 0, .max_elapsed_ms = 0},
        {.name = "query", .base_ms = 20, .max_ms = 200, .max_attempts = 3, .max_elapsed_ms = 2000},
};

const sl_retry_policy *sl_retry_policy_default(const char *name)
{
	for (size_t i = 0; name && i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (strcmp(defaults[i].name, name) == 0)
			return &defaults[i];
	return NULL;
}

int sl_retry_policy_check(const sl_retry_policy *p)
{
	const char *name = p->name ? p->name : "(unnamed)";
	if (p->base_ms == 0)
		return sl_error_set(SL_EINVAL, "retry policy %s: base_ms must be at least 1", name);
	if (p->max_ms < p->base_ms)
		return sl_error_set(SL_EINVAL,
		                    "retry policy %s: max_ms (%u) must be at least base_ms (%u)",
		                    name, p->max_ms, p->base_ms);
	/* Only the drain may retry forever: giving up there would drop
	 * acknowledged writes, and the breaker and close bound it instead. */
	if (p->max_attempts == 0 && p->max_elapsed_ms == 0 &&
	    (p->name == NULL || strcmp(p->name, "drain") != 0))
		return sl_error_set(SL_EINVAL,
		                    "retry policy %s: max_attempts or max_elapsed_ms must be set "
		                    "(only drain retries without bound)",
		                    name);
	return SL_OK;
}

uint64_t sl_retry_delay_ms(const sl_retry_policy *p, uint32_t attempt, uint64_t *rng)
{
	if (attempt < 2)
		return 0; /* the first attempt starts at once */
	uint64_t cap = p->base_ms;
	for (uint32_t i = 2; i < attempt && cap < p->max_ms; i++)
		cap *= 2; /* cap <= 2 * UINT_MAX: no overflow */
	if (cap > p->max_ms)
		cap = p->max_ms;
	return sl_xorshift64(rng) % (cap + 1);
}

int sl_retry_may(const sl_retry_policy *p, uint32_t attempt, uint64_t elapsed_ms)
{
	if (p->max_attempts && attempt > p->max_attempts)
		return 0;
	if (p->max_elapsed_ms && elapsed_ms >= p->max_elapsed_ms)
		return 0;
	return 1;
}
