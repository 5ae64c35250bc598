/*
 * Tests for capped buffers: NUL termination, the cap (exactly max fits,
 * one more fails and changes nothing), capacity never above max + 1,
 * printf, set/reset/free, appending from inside the buffer, and
 * out-of-memory at every allocation leaving the buffer intact.
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
	return 0;
}

/* Snapshot to compare a buffer before and after a failed call. */
typedef struct snapshot {
	uint8_t *data;
	size_t len, cap, max;
	uint8_t bytes[256];
} snapshot;

static snapshot take(const sl_buf *b)
{
	snapshot s = {b->data, b->len, b->cap, b->max, {0}};
	if (b->data)
		memcpy(s.bytes, b->data,
		       b->len + 1 < sizeof(s.bytes) ? b->len + 1 : sizeof(s.bytes));
	return s;
}

static void assert_unchanged(const sl_buf *b, const snapshot *s)
{
	assert_ptr_equal(b->data, s->data);
	assert_int_equal(b->len, s->len);
	assert_int_equal(b->cap, s->cap);
	assert_int_equal(b->max, s->max);
	if (b->data) {
		assert_memory_equal(b->data, s->bytes, b->len);
		assert_int_equal(b->data[b->len], 0);
	}
}

static void test_append_and_nul(void **state)
{
	sl_buf b = SL_BUF_INIT(1024);
	(void)state;
	assert_null(b.data);
	assert_int_equal(sl_buf_append_str(&b, "hello"), SL_OK);
	assert_int_equal(b.len, 5);
	assert_string_equal((char *)b.data, "hello");
	assert_int_equal(sl_buf_append(&b, ", ", 2), SL_OK);
	assert_int_equal(sl_buf_append_byte(&b, 'w'), SL_OK);
	assert_int_equal(sl_buf_printf(&b, "orld %d%s", 42, "!"), SL_OK);
	assert_string_equal((char *)b.data, "hello, world 42!");
	assert_int_equal(b.len, strlen("hello, world 42!"));
	assert_true(b.cap >= b.len + 1);
	sl_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 1024);
	sl_buf_free(&b); /* twice is fine */
}

static void test_empty_append_gives_empty_string(void **state)
{
	sl_buf b;
	(void)state;
	sl_buf_init(&b, 0);
	assert_int_equal(sl_buf_append_str(&b, ""), SL_OK);
	assert_non_null(b.data);
	assert_string_equal((char *)b.data, "");
	assert_int_equal(b.cap, 1);
	assert_int_equal(sl_buf_append_byte(&b, 'x'), SL_ETOOLARGE);
	sl_buf_free(&b);
}

static void test_cap_exact_and_over(void **state)
{
	sl_buf b = SL_BUF_INIT(10);
	snapshot s;
	(void)state;
	assert_int_equal(sl_buf_append(&b, "0123456789", 10), SL_OK);
	assert_int_equal(b.cap, 11);
	assert_string_equal((char *)b.data, "0123456789");
	s = take(&b);
	sl_error_clear();
	assert_int_equal(sl_buf_append_byte(&b, 'x'), SL_ETOOLARGE);
	assert_int_equal(sl_error_last()->code, SL_ETOOLARGE);
	assert_unchanged(&b, &s);
	assert_int_equal(sl_buf_printf(&b, "%d", 1), SL_ETOOLARGE);
	assert_unchanged(&b, &s);
	assert_int_equal(sl_buf_reserve(&b, SIZE_MAX), SL_ETOOLARGE);
	assert_int_equal(sl_buf_append_varint(&b, 1), SL_ETOOLARGE);
	assert_unchanged(&b, &s);
	assert_int_equal(sl_buf_append(&b, "", 0), SL_OK);
	assert_unchanged(&b, &s);

	/* A partly filled buffer refuses an append that would pass the cap
	 * as a whole, and keeps what it had. */
	sl_buf_reset(&b);
	assert_int_equal(sl_buf_append(&b, "abcd", 4), SL_OK);
	s = take(&b);
	assert_int_equal(sl_buf_append(&b, "1234567", 7), SL_ETOOLARGE);
	assert_unchanged(&b, &s);
	assert_string_equal((char *)b.data, "abcd");
	sl_buf_free(&b);
}

static void test_growth_is_capped(void **state)
{
	sl_buf b = SL_BUF_INIT(1000);
	size_t last_cap = 0;
	(void)state;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(sl_buf_append_byte(&b, (uint8_t)('a' + i % 26)), SL_OK);
		assert_true(b.cap <= 1001);
		assert_true(b.cap >= b.len + 1);
		assert_true(b.cap >= last_cap);
		last_cap = b.cap;
		assert_int_equal(b.data[b.len], 0);
	}
	assert_int_equal(b.cap, 1001);
	assert_int_equal(sl_buf_append_byte(&b, 'x'), SL_ETOOLARGE);
	sl_buf_free(&b);

	/* An unbounded buffer does not overflow its size arithmetic. */
	sl_buf_init(&b, SIZE_MAX);
	assert_int_equal(sl_buf_append_str(&b, "abc"), SL_OK);
	assert_int_equal(sl_buf_reserve(&b, SIZE_MAX - 1), SL_ETOOLARGE);
	assert_int_equal(sl_buf_reserve(&b, SIZE_MAX - 3), SL_ETOOLARGE);
	assert_string_equal((char *)b.data, "abc");
	sl_buf_free(&b);
}

static void test_set_reset(void **state)
{
	sl_buf b = SL_BUF_INIT(8);
	snapshot s;
	(void)state;
	assert_int_equal(sl_buf_set(&b, "abcdef", 6), SL_OK);
	assert_string_equal((char *)b.data, "abcdef");
	assert_int_equal(sl_buf_set(&b, "xy", 2), SL_OK);
	assert_string_equal((char *)b.data, "xy");
	s = take(&b);
	assert_int_equal(sl_buf_set(&b, "123456789", 9), SL_ETOOLARGE);
	assert_unchanged(&b, &s);
	sl_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_non_null(b.data);
	assert_string_equal((char *)b.data, "");
	assert_int_equal(sl_buf_set(&b, "", 0), SL_OK);
	assert_string_equal((char *)b.data, "");
	sl_buf_free(&b);
}

static void test_append_from_itself(void **state)
{
	sl_buf b = SL_BUF_INIT(1 << 20);
	(void)state;
	assert_int_equal(sl_buf_append_str(&b, "abc"), SL_OK);
	/* Each round doubles the data from its own memory, forcing reallocs. */
	for (int i = 0; i < 12; i++)
		assert_int_equal(sl_buf_append(&b, b.data, b.len), SL_OK);
	assert_int_equal(b.len, 3u << 12);
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(b.data[i], "abc"[i % 3]);
	assert_int_equal(sl_buf_set(&b, b.data + 3, 3), SL_OK);
	assert_string_equal((char *)b.data, "abc");
	sl_buf_free(&b);
}

static void test_codec_appends(void **state)
{
	sl_buf b = SL_BUF_INIT(64);
	(void)state;
	assert_int_equal(sl_buf_append_varint(&b, 300), SL_OK);
	assert_int_equal(sl_buf_append_be32(&b, 0x01020304), SL_OK);
	assert_int_equal(sl_buf_append_be64(&b, UINT64_C(0x1122334455667788)), SL_OK);
	const uint8_t want[] = {0xac, 0x02, 1,    2,    3,    4,    0x11,
	                        0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	sl_buf_free(&b);
}

static void test_enomem_leaves_buffer_unchanged(void **state)
{
	sl_buf b = SL_BUF_INIT(1 << 16);
	snapshot s;
	(void)state;

	/* First allocation fails: still empty, still unallocated. */
	sl_alloc_fail_after(0, 0);
	sl_error_clear();
	assert_int_equal(sl_buf_append_str(&b, "hello"), SL_ENOMEM);
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
	assert_null(b.data);
	assert_int_equal(b.len, 0);

	assert_int_equal(sl_buf_append_str(&b, "hello"), SL_OK);
	s = take(&b);
	char big[200];
	memset(big, 'z', sizeof(big));
	sl_alloc_fail_after(0, 1);
	assert_int_equal(sl_buf_append(&b, big, sizeof(big)), SL_ENOMEM);
	assert_unchanged(&b, &s);
	assert_int_equal(sl_buf_printf(&b, "%0200d", 7), SL_ENOMEM);
	assert_unchanged(&b, &s);
	assert_int_equal(sl_buf_set(&b, big, sizeof(big)), SL_ENOMEM);
	assert_unchanged(&b, &s);
	/* Appends that fit in the current capacity need no allocation. */
	assert_int_equal(sl_buf_append_str(&b, "!"), SL_OK);
	assert_string_equal((char *)b.data, "hello!");
	sl_alloc_fail_after(-1, 0);
	assert_int_equal(sl_buf_append(&b, big, sizeof(big)), SL_OK);
	assert_int_equal(b.len, 206);
	sl_buf_free(&b);
}

static void test_enomem_at_every_step(void **state)
{
	(void)state;
	/* Build the same content while failing the k-th allocation; whatever
	 * fails, the buffer holds a prefix of the expected content. */
	for (long k = 0; k < 12; k++) {
		sl_buf b = SL_BUF_INIT(1 << 16);
		size_t n_ok = 0;
		sl_alloc_fail_after(k, 1);
		for (int i = 0; i < 2000; i++) {
			int rc = sl_buf_append_byte(&b, (uint8_t)(i & 0x7f));
			if (rc != SL_OK) {
				assert_int_equal(rc, SL_ENOMEM);
				break;
			}
			n_ok++;
		}
		sl_alloc_fail_after(-1, 0);
		assert_int_equal(b.len, n_ok);
		for (size_t i = 0; i < b.len; i++)
			assert_int_equal(b.data[i], i & 0x7f);
		if (b.data)
			assert_int_equal(b.data[b.len], 0);
		sl_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_append_and_nul),
	        cmocka_unit_test(test_empty_append_gives_empty_string),
	        cmocka_unit_test(test_cap_exact_and_over),
	        cmocka_unit_test(test_growth_is_capped),
	        cmocka_unit_test(test_set_reset),
	        cmocka_unit_test(test_append_from_itself),
	        cmocka_unit_test(test_codec_appends),
	        cmocka_unit_test_teardown(test_enomem_leaves_buffer_unchanged, reset_injection),
	        cmocka_unit_test_teardown(test_enomem_at_every_step, reset_injection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
