/*
 * Fuzz target for cuckoo filter snapshots. The input goes to
 * sl_cuckoo_load, which must either refuse it with SL_ECORRUPT (or
 * SL_ENOMEM) or accept it. An accepted snapshot must then behave:
 *   - its length is 29 + 2 bytes per slot, its count at most its slots;
 *   - saved again, it gives back exactly the input bytes;
 *   - lookups of keys cut from the input run (their answers are free);
 *   - a key added is contained and removed again, restoring the count;
 *     a refused add (SL_ETOOLARGE) leaves the snapshot bytes unchanged.
 * Violations abort().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"

#define FUZZ_NAME "cuckoo_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, FUZZ_NAME ": invariant failed: %s (line %d)\n", #cond,     \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Save f and compare with the input. */
static void check_saves_as(const sl_cuckoo *f, const uint8_t *data, size_t size)
{
	sl_buf b = SL_BUF_INIT(SIZE_MAX);
	if (sl_cuckoo_save(f, &b) != SL_OK)
		die("save of a loaded filter failed");
	CHECK(b.len == size);
	CHECK(memcmp(b.data, data, size) == 0);
	sl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_cuckoo *f = NULL;
	int rc = sl_cuckoo_load(&f, data, size);

	if (rc != SL_OK) {
		CHECK(rc == SL_ECORRUPT || rc == SL_ENOMEM);
		CHECK(sl_error_last()->code == rc);
		CHECK(f == NULL);
		return 0;
	}
	CHECK(f != NULL);
	uint64_t slots = sl_cuckoo_capacity(f), count = sl_cuckoo_count(f);
	CHECK(slots >= 4 && (slots & (slots - 1)) == 0);
	CHECK(count <= slots);
	CHECK(size == 29 + 2 * slots);
	check_saves_as(f, data, size);

	/* Lookups of keys cut from the input: any answer, no crash. */
	for (size_t len = 0; len <= 16 && len <= size; len++)
		(void)sl_cuckoo_contains(f, data + size - len, len);

	/* A new key: contained once added, and removable again. */
	static const char key[] = "cuckoo fuzz key";
	rc = sl_cuckoo_add(f, key, sizeof(key));
	if (rc == SL_OK) {
		CHECK(sl_cuckoo_count(f) == count + 1);
		CHECK(sl_cuckoo_contains(f, key, sizeof(key)) == 1);
		CHECK(sl_cuckoo_remove(f, key, sizeof(key)) == 1);
		CHECK(sl_cuckoo_count(f) == count);
	} else {
		CHECK(rc == SL_ETOOLARGE);
		CHECK(sl_cuckoo_count(f) == count);
		check_saves_as(f, data, size);
	}
	sl_cuckoo_free(f);
	return 0;
}
