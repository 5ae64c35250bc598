/*
 * The state key filter (src/store/keyfilter.c): built once a handle's
 * lookups of new keys justify it, it must never call a stored key absent
 * (an immutable namespace would then take a second value for it), it
 * follows the handle's own flushes, and another handle's flush or a failed
 * commit drops it.
 * Its false "maybe" rate stays low.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sluice/store.h"
#include "store/store_internal.h"
#include "testutil.h"

#define FLUSH_OPS 4096

typedef struct fixture {
	char *dir;
	sl_store *s;
} fixture;

static sl_store *open_handle(const char *dir)
{
	sl_store_options o;
	sl_store *s = NULL;
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	o.state_flush_ops = FLUSH_OPS;
	assert_int_equal(sl_store_open(&s, dir, &o), SL_OK);
	return s;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f || !(f->dir = tu_tempdir()))
		return -1;
	f->s = open_handle(f->dir);
	if (sl_store_ns_create(f->s, "i", SL_NS_IMMUTABLE) != SL_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sl_store_free(f->s);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static size_t key_of(char *out, size_t cap, const char *prefix, unsigned i)
{
	return (size_t)snprintf(out, cap, "%s/%08u", prefix, i);
}

/* Put keys prefix/[from, to) with value "v" + index, 500 to a commit. */
static void put_range(sl_store *s, const char *prefix, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to;) {
		sl_batch *b;
		assert_int_equal(sl_batch_new(&b, s, "i"), SL_OK);
		for (unsigned j = 0; j < 500 && i < to; j++, i++) {
			char key[64], value[32];
			size_t n = key_of(key, sizeof(key), prefix, i);
			int vn = snprintf(value, sizeof(value), "v%u", i);
			assert_int_equal(sl_batch_put(b, key, n, value, (size_t)vn), SL_OK);
		}
		assert_int_equal(sl_batch_commit(b, NULL), SL_OK);
		sl_batch_free(b);
	}
}

/* Put one key alone; the commit's result. */
static int put_one(sl_store *s, const char *key, const char *value, sl_target *out)
{
	sl_batch *b;
	int rc;
	assert_int_equal(sl_batch_new(&b, s, "i"), SL_OK);
	assert_int_equal(sl_batch_put(b, key, strlen(key), value, strlen(value)), SL_OK);
	rc = sl_batch_commit(b, out);
	sl_batch_free(b);
	return rc;
}

static const key_filter *filter_of(sl_store *s)
{
	assert_non_null(s->caches);
	assert_null(s->caches->next); /* one namespace */
	return s->caches->filter;
}

/* Every stored key, flushed long ago or in the overlay, is still known. */
static void check_keys_known(sl_store *s, const char *prefix, unsigned n)
{
	sl_ns_info before, after;
	assert_int_equal(sl_store_ns_head(s, "i", &before), SL_OK);
	for (unsigned i = 0; i < n; i += 7) {
		char key[64], value[32];
		key_of(key, sizeof(key), prefix, i);
		snprintf(value, sizeof(value), "v%u", i);
		assert_int_equal(put_one(s, key, "another value", NULL), SL_ECONFLICT);
		assert_int_equal(put_one(s, key, value, NULL), SL_OK);
	}
	assert_int_equal(sl_store_ns_head(s, "i", &after), SL_OK);
	assert_int_equal(after.target.size, before.target.size);
}

static void test_built_and_exact(void **state)
{
	fixture *f = *state;
	sl_verify_report report;

	put_range(f->s, "a", 0, 40000);
	assert_non_null(filter_of(f->s)); /* 40,000 misses justified it */
	check_keys_known(f->s, "a", 40000);
	assert_int_equal(sl_store_verify(f->s, "i", &report), SL_OK);
}

static void test_false_maybe_rate(void **state)
{
	fixture *f = *state;
	const key_filter *filter;
	unsigned maybe = 0, n = 100000, checked = 0;

	put_range(f->s, "a", 0, 40000);
	assert_non_null(filter = filter_of(f->s));
	/* Every key flushed into the table is in it. */
	for (unsigned i = 0; i < 40000; i++) {
		char key[64];
		size_t len = key_of(key, sizeof(key), "a", i);
		const overlay_entry *e = overlay_get(&f->s->caches->ov, key, len);
		if (!e) {
			assert_true(key_filter_may_contain(filter, key, len));
			checked++;
		}
	}
	assert_true(checked >= 40000 - FLUSH_OPS); /* at most one flush's worth unflushed */
	for (unsigned i = 0; i < n; i++) {
		char key[64];
		size_t len = key_of(key, sizeof(key), "absent", i);
		maybe += (unsigned)key_filter_may_contain(filter, key, len);
	}
	print_message("false maybe: %u of %u\n", maybe, n);
	assert_true(maybe < n / 50);
}

static void test_other_handle_flush(void **state)
{
	fixture *f = *state;
	sl_store *other;

	put_range(f->s, "a", 0, 40000);
	assert_non_null(filter_of(f->s));
	/* Another handle writes keys this handle's filter has never seen and
	 * flushes them into the table. */
	other = open_handle(f->dir);
	put_range(other, "b", 0, 3000);
	assert_int_equal(sl_store_flush(other, "i"), SL_OK);
	sl_store_free(other);
	check_keys_known(f->s, "b", 3000);
	check_keys_known(f->s, "a", 40000);
}

static void test_failed_commit(void **state)
{
	fixture *f = *state;
	sl_batch *b;
	char key[64];

	put_range(f->s, "a", 0, 40000);
	assert_non_null(filter_of(f->s));
	/* A commit that fails rolls back and drops the handle's cache, the
	 * filter with it: it may describe writes that never landed. */
	assert_int_equal(sl_batch_new(&b, f->s, "i"), SL_OK);
	for (unsigned i = 0; i < FLUSH_OPS; i++) {
		size_t n = key_of(key, sizeof(key), "c", i);
		assert_int_equal(sl_batch_put(b, key, n, "x", 1), SL_OK);
	}
	key_of(key, sizeof(key), "a", 5);
	assert_int_equal(sl_batch_put(b, key, strlen(key), "other", 5), SL_OK);
	assert_int_equal(sl_batch_commit(b, NULL), SL_ECONFLICT);
	sl_batch_free(b);
	assert_null(filter_of(f->s));
	check_keys_known(f->s, "a", 40000);
	key_of(key, sizeof(key), "c", 3);
	assert_int_equal(put_one(f->s, key, "y", NULL), SL_OK); /* it never landed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_built_and_exact, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_false_maybe_rate, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_other_handle_flush, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failed_commit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
