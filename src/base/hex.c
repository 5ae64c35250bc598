/*
 * Hex encoding. Output is lower-case; input is strict: an even number of
 * [0-9a-fA-F] characters and nothing else (no prefix, no whitespace). The
 * whole input is validated before anything is written to the output.
 */
#include <string.h>

#include "sluice/base.h"

static const char hex_digits[] = "0123456789abcdef";

/* Value of a hex digit, or -1. */
static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void sl_hex_encode(char *out, const void *data, size_t n)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_digits[p[i] >> 4];
		out[2 * i + 1] = hex_digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int sl_hex_decode(uint8_t *out, size_t cap, size_t *out_len, const char *hex, size_t hex_len)
{
	size_t n = hex_len / 2;

	if (hex_len % 2 != 0)
		return sl_error_set(SL_EINVAL, "hex string has odd length %zu", hex_len);
	for (size_t i = 0; i < hex_len; i++) {
		if (nibble(hex[i]) < 0)
			return sl_error_set(SL_EINVAL, "bad hex character 0x%02x at offset %zu",
			                    (unsigned)(unsigned char)hex[i], i);
	}
	if (n > cap)
		return sl_error_set(SL_ETOOLARGE, "hex decodes to %zu bytes, room for %zu", n, cap);
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
	*out_len = n;
	return SL_OK;
}

int sl_digest_from_hex(sl_digest *out, const char *hex)
{
	size_t len, n = 0;
	sl_digest d;
	int rc;

	if (!hex)
		return sl_error_set(SL_EINVAL, "digest hex is NULL");
	len = strnlen(hex, 2 * SL_DIGEST_LEN + 1);
	if (len != 2 * SL_DIGEST_LEN)
		return sl_error_set(SL_EINVAL, "digest hex must be %d characters, got %s%zu",
		                    2 * SL_DIGEST_LEN, len > 2 * SL_DIGEST_LEN ? "more than " : "",
		                    len > 2 * SL_DIGEST_LEN ? len - 1 : len);
	rc = sl_hex_decode(d.bytes, sizeof(d.bytes), &n, hex, len);
	if (rc != SL_OK)
		return rc;
	*out = d;
	return SL_OK;
}

sl_digest_hex sl_digest_to_hex(const sl_digest *d)
{
	sl_digest_hex h;
	sl_hex_encode(h.s, d->bytes, SL_DIGEST_LEN);
	return h;
}
