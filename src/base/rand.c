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
