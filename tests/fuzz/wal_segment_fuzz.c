/*
 * Fuzz target for the WAL's replay at open and its readers (src/engine/
 * wal.c, wal_read.c): the segment header, the record codec, the torn-tail
 * cut, the cursor and read_at.
 *
 * Input layout: the whole input is the only segment file,
 * wal-0000000000000001.seg (docs: the opening comments of wal.c and
 * wal_read.c). The oracles are in wal_fuzz.h.
 */
#include <stdint.h>

#define FUZZ_NAME "wal_segment_fuzz"
#include "fuzz_util.h"
#include "wal_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wal_fuzz_run(&data, &size, 1);
	return 0;
}
