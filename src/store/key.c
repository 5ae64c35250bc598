/*
 * Key and namespace-name validation.
 *
 * A key is a UTF-8 path of '/'-separated segments, 1..SL_KEY_MAX bytes.
 * Rejected: an empty segment (leading, trailing or doubled '/'), a "." or
 * ".." segment, NUL, C0 and C1 control characters and DEL, and any byte
 * sequence that is not well-formed UTF-8 (overlong forms, surrogates, code
 * points past U+10FFFF). These rules make every key safe to use as a
 * relative file path and unambiguous to compare bytewise.
 *
 * A namespace name is what sl_ns_name_validate allows; the store also
 * takes reserved names, '.' and then such a name, for namespaces sluice
 * keeps for itself (the side copy in which sync rebuilds a replica,
 * sync/client.c). As users' names may not start with '.', no command or
 * request of theirs creates one.
 */
#include "store/store_internal.h"

#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (at most `avail` bytes),
 * or 0 if it is malformed; *cp receives the code point. */
static size_t utf8_sequence(const uint8_t *p, size_t avail, uint32_t *cp)
{
	uint8_t b0 = p[0];
	size_t len;
	uint32_t min, v;
	if (b0 < 0x80) {
		*cp = b0;
		return 1;
	} else if ((b0 & 0xe0) == 0xc0) {
		len = 2, min = 0x80, v = b0 & 0x1fu;
	} else if ((b0 & 0xf0) == 0xe0) {
		len = 3, min = 0x800, v = b0 & 0x0fu;
	} else if ((b0 & 0xf8) == 0xf0) {
		len = 4, min = 0x10000, v = b0 & 0x07u;
	} else {
		return 0;
	}
	if (len > avail)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3fu);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

static int is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

int sl_key_validate(const char *key, size_t len)
{
	const uint8_t *p = (const uint8_t *)key;
	size_t seg_start = 0;

	if (!key || len == 0)
		return sl_error_set(SL_EINVAL, "invalid key: empty");
	if (len > SL_KEY_MAX)
		return sl_error_set(SL_EINVAL, "invalid key: %zu bytes, the limit is %d", len,
		                    SL_KEY_MAX);
	for (size_t i = 0; i <= len; i++) {
		if (i == len || p[i] == '/') {
			size_t seg_len = i - seg_start;
			const char *seg = key + seg_start;
			if (seg_len == 0)
				return sl_error_set(SL_EINVAL,
				                    "invalid key: empty segment at byte %zu", i);
			if ((seg_len == 1 && seg[0] == '.') ||
			    (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
				return sl_error_set(SL_EINVAL,
				                    "invalid key: segment '%.*s' at byte %zu",
				                    (int)seg_len, seg, seg_start);
			seg_start = i + 1;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_sequence(p + i, len - i, &cp);
		if (n == 0)
			return sl_error_set(SL_EINVAL, "invalid key: not UTF-8 at byte %zu", i);
		if (is_control(cp))
			return sl_error_set(SL_EINVAL,
			                    "invalid key: control character 0x%02x at byte %zu",
			                    (unsigned)cp, i);
		i += n - 1;
	}
	return SL_OK;
}

int sl_ns_name_validate(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len > SL_NS_NAME_MAX)
		return sl_error_set(SL_EINVAL, "invalid namespace name: must be 1..%d bytes",
		                    SL_NS_NAME_MAX);
	if (name[0] == '.')
		return sl_error_set(SL_EINVAL, "invalid namespace name '%s': starts with '.'",
		                    name);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		if (!ok)
			return sl_error_set(SL_EINVAL,
			                    "invalid namespace name: byte 0x%02x at %zu (use "
			                    "letters, digits, '_', '.', '-')",
			                    (unsigned char)c, i);
	}
	return SL_OK;
}

int store_ns_name_validate(const char *name)
{
	if (name && name[0] == '.') {
		if (strlen(name) > SL_NS_NAME_MAX || sl_ns_name_validate(name + 1) != SL_OK)
			return sl_error_set(SL_EINVAL, "invalid namespace name '%.*s'",
			                    SL_NS_NAME_MAX + 1, name);
		return SL_OK;
	}
	return sl_ns_name_validate(name);
}
