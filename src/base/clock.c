/*
 * Time: a monotonic clock for durations and timeouts, wall-clock epoch
 * milliseconds for timestamps, a sleep that resumes after signals, and
 * RFC 3339 formatting in UTC with millisecond precision for logs and
 * records.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

void sl_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, uint64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(c, m, &until);
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

/* Strict RFC 3339 date-time: 2026-11-21T10:00:00[.frac](Z|+hh:mm). */
int sl_clock_rfc3339_check(const char *text)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	const char *p = text;
	static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int year, month, day, hour, minute, second, leap;

	for (size_t i = 0; i < sizeof(shape) - 1; i++, p++) {
		int ok = shape[i] == 'd'   ? (*p >= '0' && *p <= '9')
		         : shape[i] == 'T' ? (*p == 'T' || *p == 't' || *p == ' ')
		                           : *p == shape[i];
		if (!ok)
			goto bad;
	}
	year = atoi(text);
	month = atoi(text + 5);
	day = atoi(text + 8);
	hour = atoi(text + 11);
	minute = atoi(text + 14);
	second = atoi(text + 17);
	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (month < 1 || month > 12 || day < 1 || day > days[month - 1] ||
	    (month == 2 && day == 29 && !leap) || hour > 23 || minute > 59 || second > 60)
		goto bad;
	if (*p == '.') {
		const char *digits = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == digits)
			goto bad;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		if (!(p[1] >= '0' && p[1] <= '2' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' &&
		      p[4] >= '0' && p[4] <= '5' && p[5] >= '0' && p[5] <= '9'))
			goto bad;
		p += 6;
	} else {
		goto bad;
	}
	if (*p != '\0')
		goto bad;
	return SL_OK;
bad:
	return sl_error_set(SL_EINVAL, "'%s' is not an RFC 3339 time (like 2026-11-21T10:00:00Z)",
	                    text);
}
