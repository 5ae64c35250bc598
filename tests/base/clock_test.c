/*
 * Clock: monotonic ordering, sleep duration (also when a signal interrupts
 * it), a plausible wall clock and RFC 3339 formatting of fixed instants.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include "sluice/base.h"

static void test_monotonic(void **state)
{
	(void)state;
	uint64_t prev = sl_clock_mono_ns();
	for (int i = 0; i < 10000; i++) {
		uint64_t now = sl_clock_mono_ns();
		assert_true(now >= prev);
		prev = now;
	}
}

static void test_sleep(void **state)
{
	(void)state;
	uint64_t start = sl_clock_mono_ns();
	sl_sleep_ms(30);
	uint64_t elapsed = sl_clock_mono_ns() - start;
	assert_true(elapsed >= UINT64_C(30000000));
	assert_true(elapsed < UINT64_C(2000000000));
	sl_sleep_ms(0);
}

static volatile sig_atomic_t n_alarms;

static void on_alarm(int sig)
{
	(void)sig;
	n_alarms++;
}

static void test_sleep_survives_signals(void **state)
{
	struct sigaction sa, old_sa;
	struct itimerval every_5ms = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
	(void)state;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: nanosleep returns EINTR */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0);
	n_alarms = 0;
	errno = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &every_5ms, NULL), 0);
	uint64_t start = sl_clock_mono_ns();
	sl_sleep_ms(60);
	uint64_t elapsed = sl_clock_mono_ns() - start;
	assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
	assert_int_equal(sigaction(SIGALRM, &old_sa, NULL), 0);
	assert_true(n_alarms >= 1);
	assert_true(elapsed >= UINT64_C(60000000));
	assert_int_equal(errno, 0);
}

static void test_wall_clock(void **state)
{
	(void)state;
	uint64_t now = sl_clock_wall_ms();
	assert_true(now > UINT64_C(1577836800000)); /* after 2020-01-01 */
	assert_true(now < UINT64_C(4102444800000)); /* before 2100-01-01 */
}

static void test_rfc3339(void **state)
{
	char out[64];
	(void)state;
	sl_clock_format_rfc3339(out, sizeof(out), 0);
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	sl_clock_format_rfc3339(out, sizeof(out), UINT64_C(1795250840123));
	assert_string_equal(out, "2026-11-21T08:47:20.123Z");
	sl_clock_format_rfc3339(out, sizeof(out), UINT64_C(951868799999));
	assert_string_equal(out, "2000-02-29T23:59:59.999Z");
	sl_clock_format_rfc3339(out, sizeof(out), UINT64_C(1000) + 7);
	assert_string_equal(out, "1970-01-01T00:00:01.007Z");

	/* Exactly 25 bytes is enough; less truncates but stays terminated. */
	char exact[25];
	sl_clock_format_rfc3339(exact, sizeof(exact), UINT64_C(1795250840123));
	assert_string_equal(exact, "2026-11-21T08:47:20.123Z");
	char small[8];
	sl_clock_format_rfc3339(small, sizeof(small), UINT64_C(1795250840123));
	assert_string_equal(small, "2026-11");
	sl_clock_format_rfc3339(small, 0, 0); /* writes nothing */

	/* Now formats as a plausible timestamp. */
	sl_clock_format_rfc3339(out, sizeof(out), sl_clock_wall_ms());
	assert_int_equal(strlen(out), 24);
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[23], 'Z');
}

static void test_rfc3339_check(void **state)
{
	static const char *good[] = {
	        "2026-11-21T10:00:00Z",      "2026-11-21t10:00:00z",
	        "2026-11-21 10:00:00+01:00", "2024-02-29T23:59:60.123456-12:30",
	        "2026-11-21T10:00:00.5Z",
	};
	static const char *bad[] = {
	        "",
	        "yesterday",
	        "2026-11-21",
	        "2026-11-21T10:00:00",  /* no zone */
	        "2026-11-21T10:00Z",    /* no seconds */
	        "2026-02-29T00:00:00Z", /* not a leap year */
	        "2100-02-29T00:00:00Z", /* nor is 2100 */
	        "2026-13-01T00:00:00Z",
	        "2026-04-31T00:00:00Z",
	        "2026-11-21T24:00:00Z",
	        "2026-11-21T10:60:00Z",
	        "2026-11-21T10:00:61Z",
	        "2026-11-21T10:00:00.Z",
	        "2026-11-21T10:00:00+1:00",
	        "2026-11-21T10:00:00+01:60",
	        "2026-11-21T10:00:00Zjunk",
	        "2026-11-21X10:00:00Z",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (sl_clock_rfc3339_check(good[i]) != SL_OK)
			fail_msg("refused %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sl_clock_rfc3339_check(bad[i]) != SL_EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(strstr(sl_error_last()->message, "is not an RFC 3339 time"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_monotonic),
	        cmocka_unit_test(test_sleep),
	        cmocka_unit_test(test_sleep_survives_signals),
	        cmocka_unit_test(test_wall_clock),
	        cmocka_unit_test(test_rfc3339),
	        cmocka_unit_test(test_rfc3339_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
