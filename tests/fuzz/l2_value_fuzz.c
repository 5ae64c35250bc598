/*
 * Fuzz target for the L2 value codec (l2_decode, src/engine/l2_redis.c):
 * what Redis hands back for a key, which a damaged or foreign value must
 * not get past.
 *
 * Input layout: the whole input is the value as Redis would return it.
 *
 * Oracles: decode returns SL_OK or SL_ECORRUPT; an accepted value lies
 * inside the input, has a known kind, no value unless it is a value, and
 * encoding its parts again gives back exactly the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/l2.h"

#define FUZZ_NAME "l2_value_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	l2_kind kind;
	uint64_t version;
	int cache_only;
	const uint8_t *value;
	size_t value_len;
	int rc = l2_decode(data, size, &kind, &version, &cache_only, &value, &value_len);
	if (rc != SL_OK) {
		if (rc != SL_ECORRUPT)
			die("a refused value must be SL_ECORRUPT");
		return 0;
	}
	if (kind != L2_VALUE && kind != L2_TOMBSTONE && kind != L2_HOLE)
		die("an accepted value of an unknown kind");
	if (kind != L2_VALUE && value_len != 0)
		die("a tombstone or hole with a value");
	if (!inside(value, value_len, data, size))
		die("a value outside the input");
	sl_buf again = SL_BUF_INIT(SIZE_MAX);
	if (l2_encode(&again, kind, version, cache_only, value, value_len) != SL_OK)
		die("encode");
	if (again.len != size || memcmp(again.data, data, size) != 0)
		die("an accepted value does not encode back to itself");
	sl_buf_free(&again);
	return 0;
}
