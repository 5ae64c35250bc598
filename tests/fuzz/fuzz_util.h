/*
 * What the fuzz targets share: stopping with a message (an oracle that
 * failed), and checking that a decoded pointer stays inside the input.
 * Each target defines FUZZ_NAME (its name in messages) before including
 * this.
 */
#ifndef SLUICE_FUZZ_UTIL_H
#define SLUICE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_util.h"
#endif

static inline void die(const char *what)
{
	fprintf(stderr, FUZZ_NAME ": %s\n", what);
	abort();
}

/* [p, p + len) lies within [data, data + size). */
static inline int inside(const void *p, size_t len, const uint8_t *data, size_t size)
{
	const uint8_t *b = p;
	return len == 0 || (b >= data && len <= size && (size_t)(b - data) <= size - len);
}

#endif
