/*
 * Named retry policies: exponential backoff with full jitter between a
 * base and a cap, and a bound on attempts and on the time spent, so no
 * retry loop in the engine runs forever on its own. The uses:
 *
 *   startup      connecting to L2 and L3 at open (then open fails)
 *   batch_write  a row L3 refused (then it is parked)
 *   drain        a batch L3 did not commit; the WAL holds it meanwhile.
 *                Its attempts are unbounded by design (giving up would
 *                drop acknowledged writes): what bounds it is the delay's
 *                cap, the breaker and close's deadline.
 *   query        a read from L3 that failed (then the read fails)
 */
#ifndef SLUICE_ENGINE_RETRY_POLICY_H
#define SLUICE_ENGINE_RETRY_POLICY_H

#include "sluice/base.h"
#include "sluice/engine.h"

/* sl_retry_policy is in sluice/engine.h: the engine's config holds the
 * four. */

/* The defaults of the four uses above, by name; NULL if unknown. */
const sl_retry_policy *sl_retry_policy_default(const char *name);
int sl_retry_policy_check(const sl_retry_policy *p); /* SL_EINVAL naming the field */

/* The delay before attempt `attempt` (2 = the first retry): uniformly
 * random in [0, min(max_ms, base_ms * 2^(attempt-2))]; rng is the
 * caller's state (any nonzero seed). */
uint64_t sl_retry_delay_ms(const sl_retry_policy *p, uint32_t attempt, uint64_t *rng);
/* 1 when another attempt may start: attempt <= max_attempts (if bounded)
 * and elapsed_ms < max_elapsed_ms (if bounded). */
int sl_retry_may(const sl_retry_policy *p, uint32_t attempt, uint64_t elapsed_ms);

#endif
