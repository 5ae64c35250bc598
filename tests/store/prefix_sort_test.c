/*
 * prefix_sort (src/store/prefix_sort.c) orders byte strings exactly as
 * memcmp-then-length does, whatever they share: random keys, keys with a
 * long common prefix (every prefix equal), short keys that zero padding
 * makes tie ("ab" and "ab\0"), and sizes on both sides of its thresholds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "testutil.h"

typedef struct str {
	size_t len;
	uint8_t bytes[24];
} str;

static int cmp_str(const void *a, const void *b)
{
	const str *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->bytes, y->bytes, n);
	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return cmp_str(*(const str *const *)a, *(const str *const *)b);
}

/* Strings drawn by kind: 0 random, 1 a shared 12-byte prefix, 2 short
 * strings over {0, 'a', 'b'} (ties under zero padding, duplicates). */
static void fill(str *s, size_t n, int kind, tu_rng *rng)
{
	for (size_t i = 0; i < n; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		if (kind == 0) {
			s[i].len = 1 + tu_rng_below(rng, 24);
			for (size_t j = 0; j < s[i].len; j++)
				s[i].bytes[j] = (uint8_t)tu_rng_next(rng);
		} else if (kind == 1) {
			s[i].len = 12 + tu_rng_below(rng, 13);
			memcpy(s[i].bytes, "user/000000/", 12);
			for (size_t j = 12; j < s[i].len; j++)
				s[i].bytes[j] = (uint8_t)('0' + tu_rng_below(rng, 10));
		} else {
			static const uint8_t alphabet[] = {0, 'a', 'b'};
			s[i].len = tu_rng_below(rng, 5);
			for (size_t j = 0; j < s[i].len; j++)
				s[i].bytes[j] = alphabet[tu_rng_below(rng, 3)];
		}
	}
}

static void check(size_t n, int kind, uint64_t seed)
{
	tu_rng rng = {seed};
	str *s = calloc(n ? n : 1, sizeof(*s));
	const str **want = calloc(n ? n : 1, sizeof(*want));
	prefix_ref *refs = calloc(n ? n : 1, sizeof(*refs));

	assert_non_null(s);
	assert_non_null(want);
	assert_non_null(refs);
	fill(s, n, kind, &rng);
	for (size_t i = 0; i < n; i++) {
		want[i] = &s[i];
		refs[i].prefix = prefix_of(s[i].bytes, s[i].len);
		refs[i].ptr = &s[i];
	}
	qsort(want, n, sizeof(*want), cmp_str_ptr);
	assert_int_equal(prefix_sort(refs, n, cmp_str), SL_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(cmp_str(refs[i].ptr, want[i]), 0);
	for (size_t i = 1; i < n; i++)
		assert_true(cmp_str(refs[i - 1].ptr, refs[i].ptr) <= 0);
	free(s);
	free(want);
	free(refs);
}

static void test_orders_like_memcmp(void **state)
{
	static const size_t sizes[] = {0, 1, 2, 31, 32, 33, 100, 1000, 4096, 50000};
	(void)state;
	for (int kind = 0; kind < 3; kind++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			check(sizes[i], kind, 1000 * (uint64_t)kind + i + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_orders_like_memcmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
