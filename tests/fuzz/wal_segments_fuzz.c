/*
 * Fuzz target for the WAL's replay across segments (src/engine/wal.c):
 * an earlier segment must hold only good records (any damage there is
 * SL_ECORRUPT), the next one must start at the LSN after its last, and
 * only the last one may be cut.
 *
 * Input layout: byte 0 is the length of the first segment file (at most
 * what follows); the rest is the first segment file,
 * wal-0000000000000001.seg, then the second, wal-0000000000000002.seg.
 * The oracles are in wal_fuzz.h.
 */
#include <stdint.h>

#define FUZZ_NAME "wal_segments_fuzz"
#include "fuzz_util.h"
#include "wal_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *parts[2];
	size_t lens[2];

	if (size < 1)
		return 0;
	lens[0] = data[0] < size - 1 ? data[0] : size - 1;
	lens[1] = size - 1 - lens[0];
	parts[0] = data + 1;
	parts[1] = data + 1 + lens[0];
	wal_fuzz_run(parts, lens, 2);
	return 0;
}
