/*
 * A fast non-cryptographic random number generator (xorshift64): backoff
 * jitter and generated demo data. Anything secret comes from libsodium.
 */
#include "sluice/base.h"

uint64_t sl_xorshift64(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

uint64_t sl_backoff_ms(uint64_t base_ms, uint64_t max_ms, unsigned doublings, uint64_t *rng)
{
	uint64_t d = base_ms;
	for (unsigned i = 0; i < doublings && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	return d < 2 ? d : d / 2 + sl_xorshift64(rng) % (d / 2);
}
