/*
 * The circuit breaker's state machine, driven by a scripted clock and a
 * scripted sequence of outcomes: when it opens (ratio over the window,
 * failures in a row, never below min_calls), what it refuses while open,
 * the half-open trials and what closes or reopens it, the metrics it
 * publishes, and config checks that name the bad setting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "engine/breaker.h"
#include "testutil.h"

#define T0 1000000 /* the scripted clock's start, in ms */

static sl_breaker *new_breaker(const sl_breaker_config *c)
{
	sl_breaker *b = NULL;
	assert_ok(sl_breaker_new(&b, "l3", c, NULL));
	return b;
}

/* Plays a script: 'F' a failed call, 'S' a successful one, each allowed
 * first. */
static void play(sl_breaker *b, const char *script, uint64_t now)
{
	for (const char *p = script; *p; p++) {
		assert_true(sl_breaker_allow(b, now));
		sl_breaker_record(b, *p == 'S', now);
	}
}

static void test_stays_closed_below_min_calls(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	sl_breaker *b = new_breaker(&c);
	/* 4 failures: every call failed, but fewer than min_calls (10) and
	 * fewer than consecutive (5) */
	play(b, "FFFF", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_CLOSED);
	/* interleaved, 9 calls, more than half failed, never 5 in a row */
	sl_breaker_free(b);
	b = new_breaker(&c);
	play(b, "FFFFSFFFF", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_CLOSED);
	/* the 10th call is one failure too many: 9 of 10 */
	play(b, "F", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_OPEN);
	sl_breaker_free(b);
}

static void test_opens_at_the_ratio_of_the_window(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	sl_breaker *b = new_breaker(&c);
	/* 20 calls, 9 failures (45%), never 5 in a row: closed */
	play(b, "SSSSSSSSSFFFFSFFFFSF", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_CLOSED);
	/* the window slides: the oldest S goes, an F comes, 10 of 20 */
	play(b, "F", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_OPEN);
	sl_breaker_stats st;
	sl_breaker_stats_get(b, T0, &st);
	assert_int_equal(st.opened, 1);
	assert_int_equal(st.failures, 10);
	assert_int_equal(st.successes, 11);
	sl_breaker_free(b);

	/* old failures slide out of the window */
	c.window = 10;
	c.consecutive = 100;
	b = new_breaker(&c);
	play(b, "FFFFSSSSSS", T0); /* 4 of 10 */
	play(b, "SSSS", T0);       /* the 4 failures slid out */
	play(b, "FFFF", T0);       /* 4 of 10, not 8 */
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_CLOSED);
	play(b, "F", T0); /* 5 of 10 */
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_OPEN);
	sl_breaker_free(b);
}

static void test_opens_on_failures_in_a_row(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	sl_breaker *b = new_breaker(&c);
	play(b, "SSSSSSSSSSSSSSSFFFF", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_CLOSED);
	play(b, "S", T0); /* a success ends the run */
	play(b, "FFFF", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_CLOSED);
	play(b, "F", T0); /* 5 in a row; 9 of the last 20 */
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_OPEN);
	sl_breaker_free(b);
	/* 5 in a row open it below min_calls too */
	b = new_breaker(&c);
	play(b, "FFFFF", T0);
	assert_int_equal(sl_breaker_state_at(b, T0), SL_BREAKER_OPEN);
	sl_breaker_free(b);
}

static void test_refuses_while_open(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	c.open_ms = 100;
	sl_breaker *b = new_breaker(&c);
	play(b, "FFFFF", T0);
	for (int i = 0; i < 7; i++)
		assert_false(sl_breaker_allow(b, T0 + 99));
	sl_breaker_stats st;
	sl_breaker_stats_get(b, T0 + 99, &st);
	assert_int_equal(st.state, SL_BREAKER_OPEN);
	assert_int_equal(st.refused, 7);
	assert_int_equal(st.state_since_ms, T0);
	/* an outcome of a call from before it opened changes nothing */
	sl_breaker_record(b, 1, T0 + 50);
	assert_int_equal(sl_breaker_state_at(b, T0 + 99), SL_BREAKER_OPEN);
	assert_int_equal(sl_breaker_state_at(b, T0 + 100), SL_BREAKER_HALF_OPEN);
	sl_breaker_free(b);
}

static void test_half_open_trials_close_it(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	c.open_ms = 100;
	c.trial_calls = 2;
	sl_breaker *b = new_breaker(&c);
	play(b, "FFFFF", T0);
	uint64_t t = T0 + 100;
	/* only trial_calls at a time */
	assert_true(sl_breaker_allow(b, t));
	assert_true(sl_breaker_allow(b, t));
	assert_false(sl_breaker_allow(b, t));
	assert_int_equal(sl_breaker_state_at(b, t), SL_BREAKER_HALF_OPEN);
	sl_breaker_record(b, 1, t);
	assert_int_equal(sl_breaker_state_at(b, t), SL_BREAKER_HALF_OPEN);
	assert_true(sl_breaker_allow(b, t)); /* a slot came free */
	assert_false(sl_breaker_allow(b, t));
	sl_breaker_record(b, 1, t);
	/* two successes in a row: closed */
	assert_int_equal(sl_breaker_state_at(b, t), SL_BREAKER_CLOSED);
	sl_breaker_record(b, 1, t); /* the third trial ends in closed */
	/* a fresh window: 4 failures do not open it, though the 5 before
	 * the outage were failures too */
	play(b, "FFFF", t);
	assert_int_equal(sl_breaker_state_at(b, t), SL_BREAKER_CLOSED);
	sl_breaker_stats st;
	sl_breaker_stats_get(b, t, &st);
	assert_int_equal(st.opened, 1);
	assert_int_equal(st.refused, 2);
	sl_breaker_free(b);
}

static void test_trial_failure_reopens(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	c.open_ms = 100;
	sl_breaker *b = new_breaker(&c);
	play(b, "FFFFF", T0);
	uint64_t t = T0 + 150;
	assert_true(sl_breaker_allow(b, t));
	sl_breaker_record(b, 1, t);
	assert_true(sl_breaker_allow(b, t));
	sl_breaker_record(b, 0, t); /* one failure is enough */
	sl_breaker_stats st;
	sl_breaker_stats_get(b, t, &st);
	assert_int_equal(st.state, SL_BREAKER_OPEN);
	assert_int_equal(st.opened, 2);
	assert_int_equal(st.state_since_ms, t);
	/* for another open_ms, counted from the failed trial */
	assert_false(sl_breaker_allow(b, t + 99));
	assert_int_equal(sl_breaker_state_at(b, t + 99), SL_BREAKER_OPEN);
	assert_true(sl_breaker_allow(b, t + 100));
	assert_int_equal(sl_breaker_state_at(b, t + 100), SL_BREAKER_HALF_OPEN);
	sl_breaker_free(b);
}

static void test_metrics(void **state)
{
	(void)state;
	sl_metrics *m;
	assert_ok(sl_metrics_new(&m));
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	c.open_ms = 10;
	sl_breaker *b;
	assert_ok(sl_breaker_new(&b, "l3", &c, m));
	play(b, "FFFFF", T0);
	assert_false(sl_breaker_allow(b, T0 + 1));
	sl_buf out = SL_BUF_INIT(SIZE_MAX);
	assert_ok(sl_metrics_render(m, &out));
	const char *text = (const char *)out.data;
	assert_non_null(strstr(text, "sluice_engine_breaker_state{backend=\"l3\"} 1\n"));
	assert_non_null(strstr(text, "sluice_engine_breaker_opened_total{backend=\"l3\"} 1\n"));
	assert_non_null(strstr(text, "sluice_engine_breaker_refused_total{backend=\"l3\"} 1\n"));
	assert_int_equal(sl_breaker_state_at(b, T0 + 10), SL_BREAKER_HALF_OPEN);
	sl_buf_reset(&out);
	assert_ok(sl_metrics_render(m, &out));
	assert_non_null(
	        strstr((const char *)out.data, "sluice_engine_breaker_state{backend=\"l3\"} 2\n"));
	sl_buf_free(&out);
	sl_breaker_free(b);
	sl_metrics_free(m);
}

static void expect_bad(const sl_breaker_config *c, const char *setting)
{
	sl_breaker *b = NULL;
	assert_int_equal(sl_breaker_config_check(c), SL_EINVAL);
	if (strstr(sl_error_last()->message, setting) == NULL)
		fail_msg("'%s' does not name %s", sl_error_last()->message, setting);
	assert_int_equal(sl_breaker_new(&b, "l3", c, NULL), SL_EINVAL);
	assert_null(b);
}

static void test_config_checks(void **state)
{
	(void)state;
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	assert_ok(sl_breaker_config_check(&c));
	assert_int_equal(c.window, 20);
	assert_int_equal(c.min_calls, 10);
	assert_int_equal(c.consecutive, 5);
	assert_int_equal(c.open_ms, 5000);
	assert_int_equal(c.trial_calls, 3);
	sl_breaker_config bad = c;
	bad.window = 0;
	expect_bad(&bad, "window");
	bad = c;
	bad.window = 1025;
	expect_bad(&bad, "window");
	bad = c;
	bad.min_calls = 21;
	expect_bad(&bad, "min_calls");
	bad = c;
	bad.failure_ratio = 0;
	expect_bad(&bad, "failure_ratio");
	bad = c;
	bad.failure_ratio = 1.5;
	expect_bad(&bad, "failure_ratio");
	bad = c;
	bad.consecutive = 0;
	expect_bad(&bad, "consecutive");
	bad = c;
	bad.open_ms = 0;
	expect_bad(&bad, "open_ms");
	bad = c;
	bad.trial_calls = 0;
	expect_bad(&bad, "trial_calls");
	assert_string_equal(sl_breaker_state_name(SL_BREAKER_CLOSED), "closed");
	assert_string_equal(sl_breaker_state_name(SL_BREAKER_OPEN), "open");
	assert_string_equal(sl_breaker_state_name(SL_BREAKER_HALF_OPEN), "half_open");
	sl_breaker_free(NULL);
}

int main(void)
{
	sl_log_set_level(SL_LOG_OFF);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stays_closed_below_min_calls),
	        cmocka_unit_test(test_opens_at_the_ratio_of_the_window),
	        cmocka_unit_test(test_opens_on_failures_in_a_row),
	        cmocka_unit_test(test_refuses_while_open),
	        cmocka_unit_test(test_half_open_trials_close_it),
	        cmocka_unit_test(test_trial_failure_reopens),
	        cmocka_unit_test(test_metrics),
	        cmocka_unit_test(test_config_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
