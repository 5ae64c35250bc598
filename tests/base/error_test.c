/*
 * Tests for the per-thread error state: set/wrap/cause/clear, truncation,
 * messages built from the current message, errno preservation and
 * isolation between threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "sluice/base.h"

static void test_initial_state_is_ok(void **state)
{
	(void)state;
	sl_error_clear();
	assert_int_equal(sl_error_last()->code, SL_OK);
	assert_string_equal(sl_error_last()->message, "");
	assert_string_equal(sl_error_last()->cause, "");
}

static void test_set_returns_code_and_formats(void **state)
{
	(void)state;
	assert_int_equal(sl_error_set(SL_EINVAL, "bad key %s (%d)", "a//b", 7), SL_EINVAL);
	assert_int_equal(sl_error_last()->code, SL_EINVAL);
	assert_string_equal(sl_error_last()->message, "bad key a//b (7)");
	assert_string_equal(sl_error_last()->cause, "");
	sl_error_clear();
	assert_int_equal(sl_error_last()->code, SL_OK);
	assert_string_equal(sl_error_last()->message, "");
}

static void test_cause_kept_by_wrap_and_cleared_by_set(void **state)
{
	(void)state;
	assert_int_equal(sl_error_set_cause(SL_EIO,
	                                    "sqlite rc=11 (database disk image is malformed)",
	                                    "read op %d", 42),
	                 SL_EIO);
	assert_string_equal(sl_error_last()->message, "read op 42");
	assert_string_equal(sl_error_last()->cause,
	                    "sqlite rc=11 (database disk image is malformed)");
	assert_int_equal(sl_error_wrap("open store %s", "/tmp/x"), SL_EIO);
	assert_string_equal(sl_error_last()->message, "open store /tmp/x: read op 42");
	assert_string_equal(sl_error_last()->cause,
	                    "sqlite rc=11 (database disk image is malformed)");
	assert_int_equal(sl_error_wrap("sync"), SL_EIO);
	assert_string_equal(sl_error_last()->message, "sync: open store /tmp/x: read op 42");

	sl_error_set(SL_ENOTFOUND, "no key");
	assert_string_equal(sl_error_last()->cause, "");
	sl_error_set_cause(SL_EIO, NULL, "no cause");
	assert_string_equal(sl_error_last()->cause, "");
}

static void test_message_may_reference_itself(void **state)
{
	(void)state;
	sl_error_set(SL_ECORRUPT, "inner");
	sl_error_set(SL_EVERIFY, "outer (%s)", sl_error_last()->message);
	assert_string_equal(sl_error_last()->message, "outer (inner)");
	sl_error_set_cause(SL_EIO, sl_error_last()->message, "again");
	assert_string_equal(sl_error_last()->cause, "outer (inner)");
	assert_string_equal(sl_error_last()->message, "again");
}

static void test_long_messages_are_truncated(void **state)
{
	char big[2 * SL_ERROR_MSG_MAX];
	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sl_error_set_cause(SL_EINVAL, big, "%s", big);
	assert_int_equal(strlen(sl_error_last()->message), SL_ERROR_MSG_MAX - 1);
	assert_int_equal(strlen(sl_error_last()->cause), SL_ERROR_CAUSE_MAX - 1);
	sl_error_wrap("%s", big);
	assert_int_equal(strlen(sl_error_last()->message), SL_ERROR_MSG_MAX - 1);
	sl_error_set(SL_EINVAL, "short");
	sl_error_wrap("%.*s", SL_ERROR_MSG_MAX - 3, big);
	assert_int_equal(strlen(sl_error_last()->message), SL_ERROR_MSG_MAX - 1);
	assert_memory_equal(sl_error_last()->message + SL_ERROR_MSG_MAX - 3, ":", 1);
}

static void test_errno_is_preserved(void **state)
{
	(void)state;
	errno = ENOSPC;
	sl_error_set(SL_EIO, "write failed: %s", strerror(errno));
	assert_int_equal(errno, ENOSPC);
	sl_error_set_cause(SL_EIO, "errno=28", "x");
	sl_error_wrap("y");
	assert_int_equal(errno, ENOSPC);
}

static void test_strerror_names(void **state)
{
	(void)state;
	assert_string_equal(sl_strerror(SL_OK), "ok");
	assert_string_equal(sl_strerror(SL_EINVAL), "invalid argument");
	assert_string_equal(sl_strerror(SL_ENOTFOUND), "not found");
	assert_string_equal(sl_strerror(12345), "unknown error");
	/* Every code has its own name. */
	for (int a = SL_EUNAVAILABLE; a <= SL_OK; a++) {
		assert_string_not_equal(sl_strerror(a), "unknown error");
		for (int b = SL_EUNAVAILABLE; b < a; b++)
			assert_string_not_equal(sl_strerror(a), sl_strerror(b));
	}
}

static void *thread_sets_error(void *arg)
{
	int *seen = arg;
	seen[0] = sl_error_last()->code; /* fresh thread: SL_OK */
	sl_error_set(SL_EBUSY, "thread error");
	seen[1] = sl_error_last()->code;
	return NULL;
}

static void test_errors_are_per_thread(void **state)
{
	pthread_t t;
	int seen[2] = {-100, -100};
	(void)state;
	sl_error_set(SL_ECONFLICT, "main error");
	assert_int_equal(pthread_create(&t, NULL, thread_sets_error, seen), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(seen[0], SL_OK);
	assert_int_equal(seen[1], SL_EBUSY);
	assert_int_equal(sl_error_last()->code, SL_ECONFLICT);
	assert_string_equal(sl_error_last()->message, "main error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_initial_state_is_ok),
	        cmocka_unit_test(test_set_returns_code_and_formats),
	        cmocka_unit_test(test_cause_kept_by_wrap_and_cleared_by_set),
	        cmocka_unit_test(test_message_may_reference_itself),
	        cmocka_unit_test(test_long_messages_are_truncated),
	        cmocka_unit_test(test_errno_is_preserved),
	        cmocka_unit_test(test_strerror_names),
	        cmocka_unit_test(test_errors_are_per_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
