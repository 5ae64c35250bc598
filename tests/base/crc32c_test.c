/*
 * CRC-32C against the standard check values (RFC 3720 appendix B.4 and
 * the "123456789" check), against a bit-at-a-time reference, chaining at
 * random split points, and the SSE4.2 path against the portable one on
 * random data of random lengths and alignments.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"
#include "base/crc32c_internal.h"
#include "testutil.h"

/* The definition, one bit at a time: the oracle for the fast versions. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
	uint32_t reg = ~crc;
	for (size_t i = 0; i < len; i++) {
		reg ^= p[i];
		for (int bit = 0; bit < 8; bit++)
			reg = (reg >> 1) ^ ((reg & 1) ? UINT32_C(0x82F63B78) : 0);
	}
	return ~reg;
}

typedef uint32_t (*crc_fn)(uint32_t crc, const void *data, size_t len);

/* Every implementation this machine can run, with its name. */
static size_t implementations(crc_fn fns[3], const char *names[3])
{
	size_t n = 0;
	fns[n] = sl_crc32c;
	names[n++] = "sl_crc32c";
	fns[n] = sl_crc32c_portable;
	names[n++] = "portable";
	if (sl_crc32c_hw_available()) {
		fns[n] = sl_crc32c_hw;
		names[n++] = "sse4.2";
	}
	return n;
}

static void test_check_vectors(void **state)
{
	uint8_t zeros[32], ones[32], ascending[32], descending[32];
	crc_fn fns[3];
	const char *names[3];
	size_t n_fns = implementations(fns, names);
	(void)state;

	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++) {
		ascending[i] = (uint8_t)i;
		descending[i] = (uint8_t)(31 - i);
	}
	for (size_t k = 0; k < n_fns; k++) {
		print_message("checking %s\n", names[k]);
		assert_int_equal(fns[k](0, "123456789", 9), 0xE3069283);
		assert_int_equal(fns[k](0, zeros, 32), 0x8A9136AA);
		assert_int_equal(fns[k](0, ones, 32), 0x62A8AB43);
		assert_int_equal(fns[k](0, ascending, 32), 0x46DD794E);
		assert_int_equal(fns[k](0, descending, 32), 0x113FDB5C);
		assert_int_equal(fns[k](0, "a", 1), 0xC1D04330);
		/* Empty input leaves the value alone, NULL allowed. */
		assert_int_equal(fns[k](0, NULL, 0), 0);
		assert_int_equal(fns[k](0x12345678, NULL, 0), 0x12345678);
	}
}

static void test_against_bitwise(void **state)
{
	tu_rng rng = tu_rng_seeded("test_against_bitwise");
	uint8_t data[1024];
	(void)state;
	for (int round = 0; round < 500; round++) {
		size_t len = (size_t)tu_rng_below(&rng, sizeof(data) + 1);
		uint32_t start = round % 2 ? (uint32_t)tu_rng_next(&rng) : 0;
		tu_rng_fill(&rng, data, len);
		uint32_t want = crc32c_bitwise(start, data, len);
		assert_int_equal(sl_crc32c_portable(start, data, len), want);
		assert_int_equal(sl_crc32c(start, data, len), want);
	}
}

static void test_chaining(void **state)
{
	tu_rng rng = tu_rng_seeded("test_chaining");
	uint8_t data[4096];
	crc_fn fns[3];
	const char *names[3];
	size_t n_fns = implementations(fns, names);
	(void)state;
	for (int round = 0; round < 300; round++) {
		size_t len = (size_t)tu_rng_below(&rng, sizeof(data) + 1);
		tu_rng_fill(&rng, data, len);
		for (size_t k = 0; k < n_fns; k++) {
			uint32_t whole = fns[k](0, data, len);
			/* One split point. */
			size_t cut = (size_t)tu_rng_below(&rng, len + 1);
			uint32_t two = fns[k](fns[k](0, data, cut), data + cut, len - cut);
			assert_int_equal(two, whole);
			/* Many pieces, some empty. */
			uint32_t crc = 0;
			size_t off = 0;
			while (off < len) {
				size_t take = (size_t)tu_rng_below(
				        &rng, len - off < 40 ? len - off + 1 : 40);
				crc = fns[k](crc, data + off, take);
				off += take;
			}
			assert_int_equal(crc, whole);
		}
		/* Pieces computed by different implementations chain too. */
		size_t cut = (size_t)tu_rng_below(&rng, len + 1);
		uint32_t mixed =
		        fns[n_fns - 1](sl_crc32c_portable(0, data, cut), data + cut, len - cut);
		assert_int_equal(mixed, sl_crc32c(0, data, len));
	}
}

static void test_hw_equals_portable(void **state)
{
	tu_rng rng = tu_rng_seeded("test_hw_equals_portable");
	enum { MAX_LEN = 70000 };
	uint8_t *block = malloc(MAX_LEN + 16);
	(void)state;
	if (!sl_crc32c_hw_available()) {
		free(block);
		print_message("no SSE4.2 on this build or CPU: nothing to compare\n");
		skip();
	}
	assert_non_null(block);
	tu_rng_fill(&rng, block, MAX_LEN + 16);
	for (int round = 0; round < 3000; round++) {
		size_t align = (size_t)tu_rng_below(&rng, 16);
		/* Mostly short inputs (head/tail paths), sometimes long ones. */
		size_t len = round % 10 == 0 ? (size_t)tu_rng_below(&rng, MAX_LEN + 1)
		                             : (size_t)tu_rng_below(&rng, 100);
		uint32_t start = round % 3 == 0 ? (uint32_t)tu_rng_next(&rng) : 0;
		uint32_t soft = sl_crc32c_portable(start, block + align, len);
		uint32_t hard = sl_crc32c_hw(start, block + align, len);
		if (soft != hard)
			fail_msg("len %zu align %zu start %08x: portable %08x, sse4.2 %08x", len,
			         align, start, soft, hard);
	}
	free(block);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_check_vectors),
	        cmocka_unit_test(test_against_bitwise),
	        cmocka_unit_test(test_chaining),
	        cmocka_unit_test(test_hw_equals_portable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
