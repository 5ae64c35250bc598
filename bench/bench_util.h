/*
 * What the benchmark programs share: stopping with a message. Each
 * program defines BENCH_NAME (its name in messages) before including this.
 */
#ifndef SLUICE_BENCH_UTIL_H
#define SLUICE_BENCH_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/base.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, BENCH_NAME ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* Stop with the library's message unless rc is SL_OK. */
static void check(int rc, const char *what)
{
	if (rc != SL_OK) {
		const sl_error *e = sl_error_last();
		die("%s: %s (%s)%s%s", what, e->message, sl_strerror(rc), e->cause[0] ? "; " : "",
		    e->cause);
	}
}

#endif
