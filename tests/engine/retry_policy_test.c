/*
 * The named retry policies: every delay within [0, min(cap, base *
 * 2^(n-2))], never above max_ms even for huge attempt numbers, the bounds
 * on attempts and on elapsed time, the checks, and the four defaults the
 * engine starts with.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "engine/retry_policy.h"
#include "testutil.h"

static void test_delays_stay_within_the_bound(void **state)
{
	(void)state;
	tu_rng r = tu_rng_seeded("retry_policy");
	uint64_t rng = tu_rng_next(&r) | 1;
	sl_retry_policy p = {"test", 100, 5000, 0, 0};
	assert_int_equal(sl_retry_delay_ms(&p, 1, &rng), 0); /* the first attempt */
	for (uint32_t attempt = 2; attempt < 40; attempt++) {
		uint64_t bound = 100;
		for (uint32_t i = 2; i < attempt && bound < 5000; i++)
			bound *= 2;
		if (bound > 5000)
			bound = 5000;
		uint64_t most = 0, least = UINT64_MAX;
		for (int k = 0; k < 2000; k++) {
			uint64_t d = sl_retry_delay_ms(&p, attempt, &rng);
			assert_true(d <= bound);
			most = d > most ? d : most;
			least = d < least ? d : least;
		}
		/* full jitter: the draws spread over the range */
		assert_true(most > bound / 2);
		assert_true(least < bound / 2);
	}
	assert_true(sl_retry_delay_ms(&p, 2, &rng) <= 100);
}

static void test_huge_attempts_do_not_overflow(void **state)
{
	(void)state;
	uint64_t rng = 0x9e3779b97f4a7c15u;
	sl_retry_policy p = {"test", 1, 30000, 0, 0};
	sl_retry_policy huge = {"test", UINT32_MAX / 2, UINT32_MAX, 0, 0};
	uint32_t attempts[] = {64, 65, 1000, 1u << 20, UINT32_MAX - 1, UINT32_MAX};
	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		for (int k = 0; k < 200; k++) {
			assert_true(sl_retry_delay_ms(&p, attempts[i], &rng) <= 30000);
			assert_true(sl_retry_delay_ms(&huge, attempts[i], &rng) <= UINT32_MAX);
		}
	}
}

static void test_attempt_and_elapsed_bounds(void **state)
{
	(void)state;
	sl_retry_policy p = {"test", 10, 100, 3, 1000};
	assert_true(sl_retry_may(&p, 1, 0));
	assert_true(sl_retry_may(&p, 3, 999));
	assert_false(sl_retry_may(&p, 4, 0));    /* past max_attempts */
	assert_false(sl_retry_may(&p, 2, 1000)); /* past max_elapsed_ms */
	sl_retry_policy forever = {"drain", 10, 100, 0, 0};
	assert_true(sl_retry_may(&forever, UINT32_MAX, UINT64_MAX));
	sl_retry_policy by_time = {"test", 10, 100, 0, 500};
	assert_true(sl_retry_may(&by_time, 1000000, 499));
	assert_false(sl_retry_may(&by_time, 2, 500));
}

static void expect_bad(const sl_retry_policy *p, const char *field)
{
	assert_int_equal(sl_retry_policy_check(p), SL_EINVAL);
	if (strstr(sl_error_last()->message, field) == NULL)
		fail_msg("'%s' does not name %s", sl_error_last()->message, field);
}

static void test_checks(void **state)
{
	(void)state;
	sl_retry_policy p = {"query", 0, 100, 3, 0};
	expect_bad(&p, "base_ms");
	p = (sl_retry_policy){"query", 200, 100, 3, 0};
	expect_bad(&p, "max_ms");
	/* only drain retries without bound */
	p = (sl_retry_policy){"query", 10, 100, 0, 0};
	expect_bad(&p, "max_attempts");
	p.name = "drain";
	assert_ok(sl_retry_policy_check(&p));
}

static void test_defaults(void **state)
{
	(void)state;
	const char *names[] = {"startup", "batch_write", "drain", "query"};
	for (size_t i = 0; i < 4; i++) {
		const sl_retry_policy *p = sl_retry_policy_default(names[i]);
		assert_non_null(p);
		assert_string_equal(p->name, names[i]);
		assert_ok(sl_retry_policy_check(p));
	}
	assert_null(sl_retry_policy_default("nope"));
	assert_null(sl_retry_policy_default(NULL));
	/* the drain never gives up (it would drop acknowledged writes); the
	 * others are bounded */
	assert_int_equal(sl_retry_policy_default("drain")->max_attempts, 0);
	assert_int_equal(sl_retry_policy_default("drain")->max_elapsed_ms, 0);
	assert_true(sl_retry_policy_default("startup")->max_attempts > 1);
	assert_true(sl_retry_policy_default("query")->max_attempts > 1);
	assert_int_equal(sl_retry_policy_default("batch_write")->max_attempts, 5);
	/* the engine starts with them */
	sl_engine_config c;
	sl_engine_config_init(&c);
	assert_string_equal(c.retry_startup.name, "startup");
	assert_string_equal(c.retry_batch_write.name, "batch_write");
	assert_string_equal(c.retry_drain.name, "drain");
	assert_string_equal(c.retry_query.name, "query");
	assert_int_equal(c.retry_drain.max_ms, sl_retry_policy_default("drain")->max_ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_delays_stay_within_the_bound),
	        cmocka_unit_test(test_huge_attempts_do_not_overflow),
	        cmocka_unit_test(test_attempt_and_elapsed_bounds),
	        cmocka_unit_test(test_checks),
	        cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
