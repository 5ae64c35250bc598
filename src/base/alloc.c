/*
 * Allocation wrappers. The whole library allocates through these so that
 * tests can make the N-th allocation fail (SQLite's test_malloc idea) and
 * check that every caller reports SL_ENOMEM and leaves its state intact.
 * The injection counter is process-wide and atomic: "the next `after`
 * allocations succeed" counts allocations from every thread.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"

/* Allocations left before the injected failure; -1 when disabled. */
static atomic_long fail_countdown = -1;
static atomic_int fail_sticky = 0;

/* True when this allocation must fail. */
static int injected_failure(void)
{
	long left = atomic_load(&fail_countdown);
	for (;;) {
		if (left < 0)
			return 0;
		long next;
		if (left > 0)
			next = left - 1;
		else
			next = atomic_load(&fail_sticky) ? 0 : -1;
		if (atomic_compare_exchange_weak(&fail_countdown, &left, next))
			return left == 0;
	}
}

void sl_alloc_fail_after(long after, int sticky)
{
	atomic_store(&fail_sticky, sticky ? 1 : 0);
	atomic_store(&fail_countdown, after < 0 ? -1 : after);
}

static void *out_of_memory(size_t n)
{
	sl_error_set(SL_ENOMEM, "out of memory allocating %zu bytes", n);
	return NULL;
}

void *sl_malloc(size_t n)
{
	void *p;

	if (injected_failure())
		return out_of_memory(n);
	/* malloc(0) may return NULL; a zero-byte request is not a failure. */
	p = malloc(n ? n : 1);
	if (!p)
		return out_of_memory(n);
	return p;
}

void *sl_calloc(size_t count, size_t size)
{
	void *p;

	if (size != 0 && count > SIZE_MAX / size) {
		sl_error_set(SL_ENOMEM, "allocation of %zu x %zu bytes overflows", count, size);
		return NULL;
	}
	if (injected_failure())
		return out_of_memory(count * size);
	if (count == 0 || size == 0)
		count = size = 1;
	p = calloc(count, size);
	if (!p)
		return out_of_memory(count * size);
	return p;
}

void *sl_realloc(void *p, size_t n)
{
	void *grown;

	/* On failure p stays valid and owned by the caller, as with realloc. */
	if (injected_failure())
		return out_of_memory(n);
	grown = realloc(p, n ? n : 1);
	if (!grown)
		return out_of_memory(n);
	return grown;
}

void *sl_grow(void *items, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t new_cap;
	void *grown;

	if (n < *cap)
		return items;
	new_cap = *cap == 0 ? (first ? first : 1) : *cap * 2;
	if (*cap > SIZE_MAX / 2 || (size != 0 && new_cap > SIZE_MAX / size)) {
		sl_error_set(SL_ENOMEM, "array of %zu items of %zu bytes cannot grow", n, size);
		return NULL;
	}
	if ((grown = sl_realloc(items, new_cap * size)) == NULL)
		return NULL;
	*cap = new_cap;
	return grown;
}

char *sl_strndup(const char *s, size_t n)
{
	char *copy;
	size_t len;

	if (!s) {
		sl_error_set(SL_EINVAL, "strdup of NULL");
		return NULL;
	}
	len = strnlen(s, n);
	copy = sl_malloc(len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

char *sl_strdup(const char *s)
{
	return sl_strndup(s, SIZE_MAX);
}

char *sl_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *out;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (out = sl_malloc((size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(out, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return out;
}

void sl_free(void *p)
{
	free(p);
}
