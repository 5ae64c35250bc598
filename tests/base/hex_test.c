/*
 * Hex encoding and strict decoding, digest hex round trip, and the exact
 * 64-character rule of sl_digest_from_hex.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sluice/base.h"
#include "testutil.h"

#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_encode(void **state)
{
	char out[64];
	(void)state;
	sl_hex_encode(out, "\x00\x01\xab\xff\x7f", 5);
	assert_string_equal(out, "0001abff7f");
	sl_hex_encode(out, "", 0);
	assert_string_equal(out, "");
}

static void test_decode_valid(void **state)
{
	uint8_t out[8];
	size_t n = 99;
	(void)state;
	assert_int_equal(sl_hex_decode(out, sizeof(out), &n, "00ABcdEf7f", 10), SL_OK);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "\x00\xab\xcd\xef\x7f", 5);
	/* Only hex_len characters are read. */
	assert_int_equal(sl_hex_decode(out, sizeof(out), &n, "0102zz", 4), SL_OK);
	assert_int_equal(n, 2);
	assert_int_equal(sl_hex_decode(out, sizeof(out), &n, "", 0), SL_OK);
	assert_int_equal(n, 0);
	assert_int_equal(sl_hex_decode(NULL, 0, &n, NULL, 0), SL_OK);
	/* Exactly cap bytes fit. */
	assert_int_equal(sl_hex_decode(out, 8, &n, "0102030405060708", 16), SL_OK);
	assert_int_equal(n, 8);
}

static void test_decode_invalid(void **state)
{
	static const char *bad[] = {"0",  "abc", "0g",       "g0", " 01", "01 ", "0x01",
	                            "+1", "-1",  "\xff\xff", "0:", "@A",  "`a",  "/0"};
	uint8_t out[8];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 99;
		memset(out, 0x5a, sizeof(out));
		sl_error_clear();
		assert_int_equal(sl_hex_decode(out, sizeof(out), &n, bad[i], strlen(bad[i])),
		                 SL_EINVAL);
		assert_int_equal(sl_error_last()->code, SL_EINVAL);
		assert_int_equal(n, 99);
		for (size_t j = 0; j < sizeof(out); j++)
			assert_int_equal(out[j], 0x5a);
	}
	/* An embedded NUL is a bad character, not an end. */
	size_t n = 99;
	assert_int_equal(sl_hex_decode(out, sizeof(out), &n, "01\0002", 4), SL_EINVAL);
	/* A valid prefix does not get written when a later character is bad. */
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(sl_hex_decode(out, sizeof(out), &n, "0102x3", 6), SL_EINVAL);
	assert_int_equal(out[0], 0x5a);
	/* Too large for the output. */
	assert_int_equal(sl_hex_decode(out, 3, &n, "01020304", 8), SL_ETOOLARGE);
	assert_int_equal(out[0], 0x5a);
	assert_int_equal(n, 99);
}

static void test_digest_hex(void **state)
{
	sl_digest d, back;
	char upper[65];
	(void)state;
	sl_sha256(&d, "abc", 3);
	sl_digest_hex h = sl_digest_to_hex(&d);
	assert_string_equal(h.s, ABC_HEX);
	assert_int_equal(sl_digest_from_hex(&back, h.s), SL_OK);
	assert_true(sl_digest_eq(&d, &back));

	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)(h.s[i] >= 'a' ? h.s[i] - 'a' + 'A' : h.s[i]);
	upper[64] = '\0';
	memset(&back, 0, sizeof(back));
	assert_int_equal(sl_digest_from_hex(&back, upper), SL_OK);
	assert_true(sl_digest_eq(&d, &back));
}

static void test_digest_from_hex_length_rules(void **state)
{
	char s[80];
	sl_digest d, untouched;
	(void)state;
	memset(&untouched, 0x77, sizeof(untouched));

	memcpy(s, ABC_HEX, 65);
	s[63] = '\0'; /* 63 characters */
	d = untouched;
	assert_int_equal(sl_digest_from_hex(&d, s), SL_EINVAL);
	assert_memory_equal(&d, &untouched, sizeof(d));

	memcpy(s, ABC_HEX "0", 66); /* 65 characters */
	assert_int_equal(sl_digest_from_hex(&d, s), SL_EINVAL);
	memcpy(s, ABC_HEX "\n", 66); /* trailing newline */
	assert_int_equal(sl_digest_from_hex(&d, s), SL_EINVAL);
	memcpy(s, ABC_HEX ABC_HEX, sizeof(s) - 1); /* 79 characters */
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(sl_digest_from_hex(&d, s), SL_EINVAL);
	assert_int_equal(sl_digest_from_hex(&d, ""), SL_EINVAL);
	assert_int_equal(sl_digest_from_hex(&d, NULL), SL_EINVAL);

	memcpy(s, ABC_HEX, 65);
	s[10] = 'g';
	assert_int_equal(sl_digest_from_hex(&d, s), SL_EINVAL);
	assert_memory_equal(&d, &untouched, sizeof(d));
}

static void test_random_round_trip(void **state)
{
	tu_rng rng = tu_rng_seeded("hex test_random_round_trip");
	uint8_t data[100], back[100];
	char hex[201];
	(void)state;
	for (int i = 0; i < 500; i++) {
		size_t len = (size_t)tu_rng_below(&rng, sizeof(data) + 1), n = 0;
		tu_rng_fill(&rng, data, len);
		sl_hex_encode(hex, data, len);
		assert_int_equal(strlen(hex), 2 * len);
		for (size_t j = 0; j < 2 * len; j++)
			assert_non_null(strchr("0123456789abcdef", hex[j]));
		assert_int_equal(sl_hex_decode(back, sizeof(back), &n, hex, 2 * len), SL_OK);
		assert_int_equal(n, len);
		assert_memory_equal(back, data, len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_encode),
	        cmocka_unit_test(test_decode_valid),
	        cmocka_unit_test(test_decode_invalid),
	        cmocka_unit_test(test_digest_hex),
	        cmocka_unit_test(test_digest_from_hex_length_rules),
	        cmocka_unit_test(test_random_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
