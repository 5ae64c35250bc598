/*
 * Capped byte buffers, after curl's dynbuf. A buffer never holds more than
 * `max` bytes of data; an append that would pass the cap fails with
 * SL_ETOOLARGE and changes nothing, as does an allocation failure. Capacity
 * doubles (from a small minimum) and is clamped to max + 1, the extra byte
 * being the NUL that always follows the data once memory was allocated.
 * Appending a range that lies inside the buffer itself is allowed.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sluice/base.h"

#define BUF_MIN_CAP 64

void sl_buf_init(sl_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/* Make room for `total` bytes of data plus the NUL. */
static int grow_to(sl_buf *b, size_t total)
{
	size_t need, limit, new_cap;
	uint8_t *grown;

	if (total > b->max || total == SIZE_MAX)
		return sl_error_set(SL_ETOOLARGE, "buffer would hold %zu bytes, cap is %zu", total,
		                    b->max);
	need = total + 1;
	if (need <= b->cap)
		return SL_OK;
	limit = b->max == SIZE_MAX ? SIZE_MAX : b->max + 1;
	new_cap = b->cap ? b->cap : BUF_MIN_CAP;
	while (new_cap < need && new_cap <= SIZE_MAX / 2)
		new_cap *= 2;
	if (new_cap < need)
		new_cap = need;
	if (new_cap > limit)
		new_cap = limit;
	grown = sl_realloc(b->data, new_cap);
	if (!grown)
		return SL_ENOMEM;
	if (!b->data)
		grown[0] = '\0';
	b->data = grown;
	b->cap = new_cap;
	return SL_OK;
}

int sl_buf_reserve(sl_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return sl_error_set(SL_ETOOLARGE,
		                    "buffer of %zu bytes cannot take %zu more, cap is %zu", b->len,
		                    extra, b->max);
	return grow_to(b, b->len + extra);
}

int sl_buf_append(sl_buf *b, const void *p, size_t n)
{
	const uint8_t *src = p;
	int inside = 0;
	size_t src_off = 0;
	int rc;

	/* The source may live in our own memory, which realloc could move. */
	if (n > 0 && b->data && src >= b->data && src < b->data + b->cap) {
		inside = 1;
		src_off = (size_t)(src - b->data);
	}
	rc = sl_buf_reserve(b, n);
	if (rc != SL_OK)
		return rc;
	if (n > 0) {
		if (inside)
			src = b->data + src_off;
		memmove(b->data + b->len, src, n);
		b->len += n;
	}
	b->data[b->len] = '\0';
	return SL_OK;
}

int sl_buf_append_byte(sl_buf *b, uint8_t byte)
{
	return sl_buf_append(b, &byte, 1);
}

int sl_buf_append_str(sl_buf *b, const char *s)
{
	return sl_buf_append(b, s, strlen(s));
}

int sl_buf_printf(sl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	int rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return sl_error_set(SL_EINVAL, "cannot format \"%s\"", fmt);
	rc = sl_buf_reserve(b, (size_t)n);
	if (rc != SL_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return SL_OK;
}

int sl_buf_set(sl_buf *b, const void *p, size_t n)
{
	const uint8_t *src = p;
	int rc;

	/* A source inside the buffer already fits: slide it to the front.
	 * Otherwise grow before dropping the old contents, so a failure
	 * changes nothing. */
	if (n > 0 && b->data && src >= b->data && src < b->data + b->cap) {
		size_t src_off = (size_t)(src - b->data);
		memmove(b->data, b->data + src_off, n);
		b->len = n;
		b->data[n] = '\0';
		return SL_OK;
	}
	rc = grow_to(b, n);
	if (rc != SL_OK)
		return rc;
	if (n > 0)
		memcpy(b->data, src, n);
	b->len = n;
	b->data[n] = '\0';
	return SL_OK;
}

void sl_buf_reset(sl_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void sl_buf_free(sl_buf *b)
{
	if (!b)
		return;
	sl_free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
