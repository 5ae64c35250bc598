/*
 * The engine's config file: the circuit breakers' and retry policies'
 * tables ([breaker.l3], [breaker.l2], [retry.*]) land in the engine's
 * config, [l3] max_attempts and [retry.batch_write] max_attempts are one
 * setting, and bad values are refused naming the table and key (a bad
 * [l2] url at parse time, without repeating its password).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli/engine_config.h"
#include "testutil.h"

#define HEAD "[wal]\ndir = \"/tmp/w\"\n[l3]\ndir = \"/tmp/s\"\nnamespace = \"n\"\n"

static int parse(cli_engine_config *c, const char *text)
{
	return cli_engine_config_parse(c, "engine.toml", text, strlen(text));
}

static void test_breaker_and_retry_tables(void **state)
{
	(void)state;
	cli_engine_config c;
	assert_ok(parse(&c, HEAD "[breaker.l3]\nwindow = 40\nmin_calls = 8\n"
	                         "failure_percent = 25\nconsecutive = 3\nopen_ms = 900\n"
	                         "trial_calls = 2\n"
	                         "[breaker.l2]\nopen_ms = 100\n"
	                         "[retry.startup]\nbase_ms = 10\nmax_ms = 20\nmax_attempts = 7\n"
	                         "max_elapsed_ms = 1000\n"
	                         "[retry.batch_write]\nmax_attempts = 9\n"
	                         "[retry.drain]\nbase_ms = 5\nmax_ms = 500\n"
	                         "[retry.query]\nmax_attempts = 1\nmax_elapsed_ms = 0\n"));
	const sl_engine_config *e = &c.engine;
	assert_int_equal(e->l3_breaker.window, 40);
	assert_int_equal(e->l3_breaker.min_calls, 8);
	assert_true(e->l3_breaker.failure_ratio > 0.249 && e->l3_breaker.failure_ratio < 0.251);
	assert_int_equal(e->l3_breaker.consecutive, 3);
	assert_int_equal(e->l3_breaker.open_ms, 900);
	assert_int_equal(e->l3_breaker.trial_calls, 2);
	assert_int_equal(e->l2_breaker.open_ms, 100);
	assert_int_equal(e->l2_breaker.window, 20); /* the default */
	assert_int_equal(e->retry_startup.base_ms, 10);
	assert_int_equal(e->retry_startup.max_ms, 20);
	assert_int_equal(e->retry_startup.max_attempts, 7);
	assert_int_equal(e->retry_startup.max_elapsed_ms, 1000);
	assert_int_equal(e->l3_max_attempts, 9);
	assert_int_equal(e->retry_drain.base_ms, 5);
	assert_int_equal(e->retry_drain.max_ms, 500);
	assert_int_equal(e->retry_query.max_attempts, 1);
	assert_string_equal(e->retry_query.name, "query");
	cli_engine_config_free(&c);
	/* the older key still works, and a parent table may be written */
	assert_ok(parse(&c, HEAD "max_attempts = 4\n[breaker]\n[retry]\n"));
	assert_int_equal(c.engine.l3_max_attempts, 4);
	assert_int_equal(c.engine.l3_breaker.open_ms, 5000);
	cli_engine_config_free(&c);
}

static void expect_bad(const char *text, const char *names)
{
	cli_engine_config c;
	assert_int_equal(parse(&c, text), SL_EINVAL);
	if (strstr(sl_error_last()->message, names) == NULL)
		fail_msg("'%s' does not name %s", sl_error_last()->message, names);
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_bad(HEAD "[breaker.l3]\nwindow = 2000\n", "window");
	expect_bad(HEAD "[breaker.l3]\nwindow = 5\n", "[breaker.l3] min_calls");
	expect_bad(HEAD "[breaker.l2]\nfailure_percent = 0\n", "failure_percent");
	expect_bad(HEAD "[breaker.l3]\nhalf_open_ms = 1\n", "unknown key");
	expect_bad(HEAD "[breaker.l4]\n", "unknown table");
	expect_bad(HEAD "[retry.query]\nbase_ms = 500\nmax_ms = 100\n", "[retry.query] max_ms");
	expect_bad(HEAD "[retry.drain]\nmax_attempts = 3\n", "unknown key");
	expect_bad(HEAD "[l2]\nurl = \"redis://:hunter2@h:99999\"\n",
	           "[l2] url: L2 url: a bad port");
	assert_null(strstr(sl_error_last()->message, "hunter2"));
	expect_bad(HEAD "[l2]\nurl = \"redis://h/x\"\n", "[l2] url: L2 url: a database");
	expect_bad(HEAD "[l2]\nurl = \"mysql://u@h/d\"\n", "does not start with redis://");
}

static void test_l2_url(void **state)
{
	(void)state;
	cli_engine_config c;
	assert_ok(parse(&c, HEAD "[l2]\nurl = \"redis://:pw@h:1/3\"\n"));
	assert_string_equal(c.engine.l2_url, "redis://:pw@h:1/3");
	cli_engine_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_breaker_and_retry_tables),
	        cmocka_unit_test(test_bad_values),
	        cmocka_unit_test(test_l2_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
