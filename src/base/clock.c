/*
 * Time: a monotonic clock for durations and timeouts, wall-clock epoch
 * milliseconds for timestamps, a sleep that resumes after signals, and
 * RFC 3339 formatting in UTC with millisecond precision for logs and
 * records.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "sluice/base.h"

static uint64_t read_clock_ns(clockid_t id)
{
	struct timespec ts;
	/* Cannot fail for these clock ids on any system we support. */
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

uint64_t sl_clock_mono_ns(void)
{
	return read_clock_ns(CLOCK_MONOTONIC);
}

uint64_t sl_clock_wall_ms(void)
{
	return read_clock_ns(CLOCK_REALTIME) / UINT64_C(1000000);
}

void sl_sleep_ms(uint64_t ms)
{
	struct timespec left;
	int saved_errno = errno;

	left.tv_sec = (time_t)(ms / 1000);
	left.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&left, &left) != 0 && errno == EINTR)
		;
	errno = saved_errno;
}

void sl_clock_format_rfc3339(char *out, size_t cap, uint64_t wall_ms)
{
	time_t secs = (time_t)(wall_ms / 1000);
	unsigned millis = (unsigned)(wall_ms % 1000);
	struct tm tm;

	if (cap == 0)
		return;
	if ((uint64_t)secs != wall_ms / 1000 || !gmtime_r(&secs, &tm)) {
		snprintf(out, cap, "invalid-time");
		return;
	}
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}
