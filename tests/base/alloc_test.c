/*
 * Tests for the allocation wrappers and the failure-injection hook.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sluice/base.h"

static int reset_injection(void **state)
{
	(void)state;
	sl_alloc_fail_after(-1, 0);
	sl_error_clear();
	return 0;
}

static void test_basic_allocations(void **state)
{
	(void)state;
	char *p = sl_malloc(16);
	assert_non_null(p);
	memset(p, 'a', 16);
	p = sl_realloc(p, 4096);
	assert_non_null(p);
	assert_int_equal(p[15], 'a');
	sl_free(p);

	uint32_t *z = sl_calloc(100, sizeof(*z));
	assert_non_null(z);
	for (int i = 0; i < 100; i++)
		assert_int_equal(z[i], 0);
	sl_free(z);

	/* Zero-byte requests succeed and can be freed. */
	p = sl_malloc(0);
	assert_non_null(p);
	sl_free(p);
	p = sl_calloc(0, 8);
	assert_non_null(p);
	sl_free(p);
	sl_free(NULL);
}

static void test_strdup(void **state)
{
	(void)state;
	char *s = sl_strdup("hello");
	assert_non_null(s);
	assert_string_equal(s, "hello");
	sl_free(s);
	s = sl_strndup("hello", 3);
	assert_string_equal(s, "hel");
	sl_free(s);
	s = sl_strndup("hi", 10);
	assert_string_equal(s, "hi");
	sl_free(s);
	assert_null(sl_strdup(NULL));
	assert_int_equal(sl_error_last()->code, SL_EINVAL);
}

static void test_calloc_overflow(void **state)
{
	(void)state;
	assert_null(sl_calloc(SIZE_MAX / 2, 3));
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
	sl_error_clear();
	assert_null(sl_calloc(3, SIZE_MAX / 2));
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
}

static void test_fail_after_counts(void **state)
{
	void *a, *b, *c, *d;
	(void)state;
	sl_alloc_fail_after(2, 0);
	a = sl_malloc(8);
	b = sl_calloc(1, 8);
	assert_non_null(a);
	assert_non_null(b);
	sl_error_clear();
	c = sl_malloc(8);
	assert_null(c);
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
	/* Not sticky: the next one succeeds again. */
	d = sl_malloc(8);
	assert_non_null(d);
	sl_free(a);
	sl_free(b);
	sl_free(d);
}

static void test_fail_sticky_and_disable(void **state)
{
	(void)state;
	sl_alloc_fail_after(0, 1);
	for (int i = 0; i < 5; i++) {
		assert_null(sl_malloc(1));
		assert_null(sl_calloc(1, 1));
		assert_null(sl_strdup("x"));
	}
	sl_alloc_fail_after(-1, 0);
	void *p = sl_malloc(1);
	assert_non_null(p);
	sl_free(p);
}

static void test_realloc_failure_keeps_block(void **state)
{
	(void)state;
	char *p = sl_malloc(4);
	assert_non_null(p);
	memcpy(p, "abc", 4);
	sl_alloc_fail_after(0, 0);
	assert_null(sl_realloc(p, 1 << 20));
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
	assert_string_equal(p, "abc");
	sl_free(p);
}

static void test_grow(void **state)
{
	(void)state;
	size_t cap = 0;
	int *items = NULL;

	for (size_t n = 0; n < 100; n++) {
		int *grown = sl_grow(items, &cap, n, sizeof(*items), 4);
		assert_non_null(grown);
		items = grown;
		assert_true(cap > n);
		items[n] = (int)n;
	}
	assert_int_equal(cap, 128); /* 4, 8, ..., 128: doubled, never more */
	for (size_t n = 0; n < 100; n++)
		assert_int_equal(items[n], (int)n);
	assert_ptr_equal(sl_grow(items, &cap, 100, sizeof(*items), 4), items); /* room left */

	/* out of memory: the block and the capacity are kept */
	cap = 100;
	sl_alloc_fail_after(0, 0);
	assert_null(sl_grow(items, &cap, 100, sizeof(*items), 4));
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
	assert_int_equal(cap, 100);
	assert_int_equal(items[99], 99);

	/* a size that would overflow is refused before any allocation */
	size_t huge = SIZE_MAX / 4;
	sl_error_clear();
	assert_null(sl_grow(items, &huge, huge, 8, 4));
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
	assert_int_equal(huge, SIZE_MAX / 4);
	huge = SIZE_MAX / 2 + 1;
	assert_null(sl_grow(items, &huge, huge, 1, 4));
	assert_int_equal(huge, SIZE_MAX / 2 + 1);
	sl_free(items);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_basic_allocations, reset_injection),
	        cmocka_unit_test_setup(test_strdup, reset_injection),
	        cmocka_unit_test_setup(test_calloc_overflow, reset_injection),
	        cmocka_unit_test_setup(test_fail_after_counts, reset_injection),
	        cmocka_unit_test_setup(test_fail_sticky_and_disable, reset_injection),
	        cmocka_unit_test_setup(test_realloc_failure_keeps_block, reset_injection),
	        cmocka_unit_test_setup(test_grow, reset_injection),
	};
	return cmocka_run_group_tests(tests, NULL, reset_injection);
}
