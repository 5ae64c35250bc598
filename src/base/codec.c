/*
 * Integer codecs: unsigned LEB128 varints and big-endian 32/64-bit words,
 * plus sl_reader, a bounds-checked cursor over a byte range. Decoding is
 * strict so that every value has exactly one encoding (digests are taken
 * over encodings): a varint may not carry redundant zero groups, be longer
 * than 10 bytes or overflow 64 bits. A failed read sets SL_ECORRUPT with
 * the offset and leaves the reader where it was.
 */
#include "sluice/base.h"

size_t sl_varint_put(uint8_t out[SL_VARINT_MAX], uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

size_t sl_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

int sl_buf_append_varint(sl_buf *b, uint64_t v)
{
	uint8_t tmp[SL_VARINT_MAX];
	return sl_buf_append(b, tmp, sl_varint_put(tmp, v));
}

void sl_be64_put(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t sl_be64_get(const uint8_t in[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | in[i];
	return v;
}

void sl_be32_put(uint8_t out[4], uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint32_t sl_be32_get(const uint8_t in[4])
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = (v << 8) | in[i];
	return v;
}

int sl_buf_append_be64(sl_buf *b, uint64_t v)
{
	uint8_t tmp[8];
	sl_be64_put(tmp, v);
	return sl_buf_append(b, tmp, sizeof(tmp));
}

int sl_buf_append_be32(sl_buf *b, uint32_t v)
{
	uint8_t tmp[4];
	sl_be32_put(tmp, v);
	return sl_buf_append(b, tmp, sizeof(tmp));
}

void sl_reader_init(sl_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->off = 0;
}

size_t sl_reader_remaining(const sl_reader *r)
{
	return r->len - r->off;
}

static int short_input(const sl_reader *r, const char *what, size_t need)
{
	return sl_error_set(SL_ECORRUPT,
	                    "truncated input: expected %s (%zu bytes) at offset %zu, %zu left",
	                    what, need, r->off, sl_reader_remaining(r));
}

int sl_reader_u8(sl_reader *r, uint8_t *out)
{
	if (sl_reader_remaining(r) < 1)
		return short_input(r, "u8", 1);
	*out = r->data[r->off++];
	return SL_OK;
}

int sl_reader_be32(sl_reader *r, uint32_t *out)
{
	if (sl_reader_remaining(r) < 4)
		return short_input(r, "be32", 4);
	*out = sl_be32_get(r->data + r->off);
	r->off += 4;
	return SL_OK;
}

int sl_reader_be64(sl_reader *r, uint64_t *out)
{
	if (sl_reader_remaining(r) < 8)
		return short_input(r, "be64", 8);
	*out = sl_be64_get(r->data + r->off);
	r->off += 8;
	return SL_OK;
}

int sl_reader_varint(sl_reader *r, uint64_t *out)
{
	size_t left = sl_reader_remaining(r);
	uint64_t v = 0;

	for (size_t i = 0; i < SL_VARINT_MAX; i++) {
		if (i >= left)
			return sl_error_set(SL_ECORRUPT, "truncated varint at offset %zu", r->off);
		uint8_t byte = r->data[r->off + i];
		/* The 10th byte holds only bit 63 and may not continue. */
		if (i == SL_VARINT_MAX - 1 && byte > 1)
			return sl_error_set(SL_ECORRUPT,
			                    "varint at offset %zu overflows 64 bits or is longer "
			                    "than %d bytes",
			                    r->off, SL_VARINT_MAX);
		v |= (uint64_t)(byte & 0x7f) << (7 * i);
		if (!(byte & 0x80)) {
			if (byte == 0 && i > 0)
				return sl_error_set(SL_ECORRUPT,
				                    "non-canonical varint at offset %zu "
				                    "(redundant zero group)",
				                    r->off);
			*out = v;
			r->off += i + 1;
			return SL_OK;
		}
	}
	/* Not reached: the 10th byte either ends the varint or fails above. */
	return sl_error_set(SL_EINTERNAL, "varint decoder fell through at offset %zu", r->off);
}

int sl_reader_bytes(sl_reader *r, size_t n, const uint8_t **out)
{
	if (sl_reader_remaining(r) < n)
		return short_input(r, "bytes", n);
	/* An empty reader may have a NULL base; NULL + 0 is still undefined. */
	*out = r->off ? r->data + r->off : r->data;
	r->off += n;
	return SL_OK;
}

int sl_reader_expect_end(const sl_reader *r)
{
	size_t left = sl_reader_remaining(r);
	if (left != 0)
		return sl_error_set(SL_ECORRUPT, "%zu trailing bytes at offset %zu", left, r->off);
	return SL_OK;
}
