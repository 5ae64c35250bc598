/*
 * The text form of a message's fields that kafka_produce reads and
 * kafka_read writes: fields are separated by tabs; in a field, \\ is a
 * backslash, \t a tab, \n a newline and \xHH any byte; a field that is
 * "-" alone is absent (no key, a null value, no header). A field holding
 * the one character '-' is written \x2d.
 */
#ifndef SLUICE_TESTS_KAFKA_TEXT_H
#define SLUICE_TESTS_KAFKA_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline int kt_hex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* The bytes field [text, text + len) stands for, into out (at least len
 * bytes): 0, or -1 for a bad escape. */
static inline int kt_unescape(const char *text, size_t len, uint8_t *out, size_t *out_len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '\\') {
			out[n++] = (uint8_t)text[i];
			continue;
		}
		if (++i == len)
			return -1;
		if (text[i] == '\\')
			out[n++] = '\\';
		else if (text[i] == 't')
			out[n++] = '\t';
		else if (text[i] == 'n')
			out[n++] = '\n';
		else if (text[i] == 'x' && i + 2 < len && kt_hex(text[i + 1]) >= 0 &&
		         kt_hex(text[i + 2]) >= 0) {
			out[n++] = (uint8_t)(kt_hex(text[i + 1]) << 4 | kt_hex(text[i + 2]));
			i += 2;
		} else {
			return -1;
		}
	}
	*out_len = n;
	return 0;
}

static inline void kt_escape(FILE *f, const void *bytes, size_t len)
{
	const uint8_t *p = bytes;
	if (len == 1 && p[0] == '-') {
		fputs("\\x2d", f);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\\')
			fputs("\\\\", f);
		else if (p[i] == '\t')
			fputs("\\t", f);
		else if (p[i] == '\n')
			fputs("\\n", f);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
}

#endif
