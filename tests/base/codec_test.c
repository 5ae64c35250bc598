/*
 * Tests for varints, big-endian words and sl_reader: known encodings, a
 * seeded random round trip, every malformed varint form (truncated,
 * redundant zero group, too long, overflow), an exhaustive check of all
 * one- and two-byte inputs against a reference rule, and "a failed read
 * leaves the reader unchanged".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sluice/base.h"
#include "testutil.h"

typedef struct vector {
	uint64_t value;
	size_t len;
	uint8_t bytes[SL_VARINT_MAX];
} vector;

static const vector known[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {127, 1, {0x7f}},
        {128, 2, {0x80, 0x01}},
        {300, 2, {0xac, 0x02}},
        {16383, 2, {0xff, 0x7f}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {UINT64_C(0xffffffff), 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
        {UINT64_C(1) << 63, 10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
        {UINT64_MAX, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
};

static void test_varint_known_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		uint8_t out[SL_VARINT_MAX];
		uint64_t v = 0;
		sl_reader r;
		assert_int_equal(sl_varint_put(out, known[i].value), known[i].len);
		assert_int_equal(sl_varint_len(known[i].value), known[i].len);
		assert_memory_equal(out, known[i].bytes, known[i].len);
		sl_reader_init(&r, known[i].bytes, known[i].len);
		assert_int_equal(sl_reader_varint(&r, &v), SL_OK);
		assert_true(v == known[i].value);
		assert_int_equal(r.off, known[i].len);
		assert_int_equal(sl_reader_expect_end(&r), SL_OK);
	}
}

static void test_varint_random_round_trip(void **state)
{
	tu_rng rng = tu_rng_seeded("test_varint_random_round_trip");
	sl_buf b = SL_BUF_INIT(1 << 20);
	uint64_t values[5000];
	(void)state;
	for (size_t i = 0; i < 5000; i++) {
		/* Spread over all lengths: random value of random bit width. */
		unsigned bits = (unsigned)tu_rng_below(&rng, 65);
		uint64_t v = bits == 0 ? 0 : tu_rng_next(&rng) >> (64 - bits);
		values[i] = v;
		assert_int_equal(sl_buf_append_varint(&b, v), SL_OK);
	}
	sl_reader r;
	sl_reader_init(&r, b.data, b.len);
	for (size_t i = 0; i < 5000; i++) {
		uint64_t v = 0;
		size_t before = r.off;
		assert_int_equal(sl_reader_varint(&r, &v), SL_OK);
		assert_true(v == values[i]);
		assert_int_equal(r.off - before, sl_varint_len(v));
	}
	assert_int_equal(sl_reader_expect_end(&r), SL_OK);
	sl_buf_free(&b);
}

/* Decode `bytes` at offset `lead` (after that many filler bytes) and check
 * it fails with SL_ECORRUPT, leaves the reader and *out alone, and names
 * the offset. */
static void assert_varint_rejected(const uint8_t *bytes, size_t len, size_t lead)
{
	uint8_t input[64] = {0};
	uint64_t v = 0xdeadbeef;
	char where[32];
	sl_reader r;

	memcpy(input + lead, bytes, len);
	sl_reader_init(&r, input, lead + len);
	r.off = lead;
	sl_error_clear();
	assert_int_equal(sl_reader_varint(&r, &v), SL_ECORRUPT);
	assert_int_equal(sl_error_last()->code, SL_ECORRUPT);
	assert_int_equal(r.off, lead);
	assert_int_equal(r.len, lead + len);
	assert_true(v == 0xdeadbeef);
	snprintf(where, sizeof(where), "offset %zu", lead);
	assert_non_null(strstr(sl_error_last()->message, where));
}

static void test_varint_malformed(void **state)
{
	static const struct {
		const char *name;
		size_t len;
		uint8_t bytes[16];
	} bad[] = {
	        {"empty", 0, {0}},
	        {"truncated 1", 1, {0x80}},
	        {"truncated 2", 2, {0xff, 0xff}},
	        {"truncated 9", 9, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}},
	        {"zero group", 2, {0x80, 0x00}},
	        {"zero group after value", 2, {0xff, 0x00}},
	        {"two zero groups", 3, {0x81, 0x80, 0x00}},
	        {"zero in 10th byte",
	         10,
	         {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}},
	        {"overflow 10th byte 2",
	         10,
	         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
	        {"overflow 10th byte 7f",
	         10,
	         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	        {"11 bytes",
	         11,
	         {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00}},
	        {"11 bytes ending 01",
	         11,
	         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01}},
	        {"long run",
	         16,
	         {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	          0x80, 0x80, 0x01}},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("malformed: %s\n", bad[i].name);
		assert_varint_rejected(bad[i].bytes, bad[i].len, 0);
		assert_varint_rejected(bad[i].bytes, bad[i].len, 5);
	}
}

static void test_varint_all_short_inputs(void **state)
{
	(void)state;
	/* Reference rule for one and two bytes. */
	for (unsigned b0 = 0; b0 < 256; b0++) {
		uint8_t one[1] = {(uint8_t)b0};
		sl_reader r;
		uint64_t v = 0;
		sl_reader_init(&r, one, 1);
		int rc = sl_reader_varint(&r, &v);
		if (b0 < 0x80) {
			assert_int_equal(rc, SL_OK);
			assert_true(v == b0);
		} else {
			assert_int_equal(rc, SL_ECORRUPT);
		}
		for (unsigned b1 = 0; b1 < 256; b1++) {
			uint8_t two[2] = {(uint8_t)b0, (uint8_t)b1};
			sl_reader_init(&r, two, 2);
			v = 0;
			rc = sl_reader_varint(&r, &v);
			if (b0 < 0x80) {
				assert_int_equal(rc, SL_OK);
				assert_int_equal(r.off, 1);
				assert_true(v == b0);
			} else if (b1 == 0 || b1 >= 0x80) {
				assert_int_equal(rc, SL_ECORRUPT);
				assert_int_equal(r.off, 0);
			} else {
				assert_int_equal(rc, SL_OK);
				assert_int_equal(r.off, 2);
				assert_true(v == ((b0 & 0x7fu) | (uint64_t)b1 << 7));
			}
		}
	}
}

static void test_big_endian(void **state)
{
	uint8_t b8[8], b4[4];
	(void)state;
	sl_be64_put(b8, UINT64_C(0x0102030405060708));
	assert_memory_equal(b8, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(sl_be64_get(b8) == UINT64_C(0x0102030405060708));
	sl_be64_put(b8, UINT64_MAX);
	assert_true(sl_be64_get(b8) == UINT64_MAX);
	sl_be32_put(b4, 0xa1b2c3d4u);
	assert_memory_equal(b4, "\xa1\xb2\xc3\xd4", 4);
	assert_int_equal(sl_be32_get(b4), 0xa1b2c3d4u);
	sl_be64_put(b8, 0);
	assert_memory_equal(b8, "\0\0\0\0\0\0\0\0", 8);
}

static void test_reader_sequence_and_short_reads(void **state)
{
	const uint8_t input[] = {0x07, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	                         0x00, 0x00, 0x00, 0x2a, 0xac, 0x02, 'h',  'i'};
	sl_reader r;
	uint8_t u8 = 0;
	uint32_t u32 = 0;
	uint64_t u64 = 0;
	const uint8_t *bytes = NULL;
	(void)state;

	sl_reader_init(&r, input, sizeof(input));
	assert_int_equal(sl_reader_remaining(&r), sizeof(input));
	assert_int_equal(sl_reader_u8(&r, &u8), SL_OK);
	assert_int_equal(u8, 7);
	assert_int_equal(sl_reader_be32(&r, &u32), SL_OK);
	assert_int_equal(u32, 0x100);
	assert_int_equal(sl_reader_be64(&r, &u64), SL_OK);
	assert_true(u64 == 42);
	assert_int_equal(sl_reader_varint(&r, &u64), SL_OK);
	assert_true(u64 == 300);
	assert_int_equal(sl_reader_expect_end(&r), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "offset 15"));

	/* Short reads fail, name the offset and consume nothing. */
	assert_int_equal(sl_reader_be32(&r, &u32), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "offset 15"));
	assert_int_equal(sl_reader_be64(&r, &u64), SL_ECORRUPT);
	assert_int_equal(sl_reader_bytes(&r, 3, &bytes), SL_ECORRUPT);
	assert_null(bytes);
	assert_int_equal(sl_reader_bytes(&r, SIZE_MAX, &bytes), SL_ECORRUPT);
	assert_int_equal(r.off, 15);
	assert_int_equal(u32, 0x100);
	assert_true(u64 == 300);

	assert_int_equal(sl_reader_bytes(&r, 2, &bytes), SL_OK);
	assert_ptr_equal(bytes, input + 15);
	assert_int_equal(sl_reader_remaining(&r), 0);
	assert_int_equal(sl_reader_expect_end(&r), SL_OK);
	assert_int_equal(sl_reader_u8(&r, &u8), SL_ECORRUPT);
	assert_int_equal(u8, 7);
	assert_int_equal(sl_reader_bytes(&r, 0, &bytes), SL_OK);
	assert_ptr_equal(bytes, input + sizeof(input));
}

static void test_empty_reader(void **state)
{
	sl_reader r;
	uint64_t v;
	const uint8_t *bytes = (const uint8_t *)"x";
	(void)state;
	sl_reader_init(&r, NULL, 0);
	assert_int_equal(sl_reader_remaining(&r), 0);
	assert_int_equal(sl_reader_expect_end(&r), SL_OK);
	assert_int_equal(sl_reader_varint(&r, &v), SL_ECORRUPT);
	assert_int_equal(sl_reader_be64(&r, &v), SL_ECORRUPT);
	assert_int_equal(sl_reader_bytes(&r, 0, &bytes), SL_OK);
	assert_null(bytes);
	assert_int_equal(sl_reader_bytes(&r, 1, &bytes), SL_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_varint_known_vectors),
	        cmocka_unit_test(test_varint_random_round_trip),
	        cmocka_unit_test(test_varint_malformed),
	        cmocka_unit_test(test_varint_all_short_inputs),
	        cmocka_unit_test(test_big_endian),
	        cmocka_unit_test(test_reader_sequence_and_short_reads),
	        cmocka_unit_test(test_empty_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
