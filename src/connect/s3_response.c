/* Reading S3's answers: see s3_response.h. Both readers are bounded by
 * their NUL-terminated input and never write past out's capacity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connect/s3_response.h"

void sl_s3_xml_text(char *out, size_t cap, const char *xml, const char *tag)
{
	char open[64], close[64];
	const char *start, *end;
	size_t n;

	out[0] = '\0';
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if ((start = strstr(xml, open)) == NULL)
		return;
	start += strlen(open);
	if ((end = strstr(start, close)) == NULL)
		return;
	n = (size_t)(end - start);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, start, n);
	out[n] = '\0';
}

/* A decimal number with no sign at *s, its end in *end; -1 when none. */
static int64_t number(const char *s, char **end)
{
	if (*s < '0' || *s > '9') {
		*end = (char *)s;
		return -1;
	}
	return strtoll(s, end, 10);
}

int sl_s3_content_range(const char *s, int64_t *first, int64_t *last, int64_t *total)
{
	char *end;
	if (strncasecmp(s, "bytes ", 6) != 0)
		return 0;
	s += 6;
	if (*s == '*') {
		*first = *last = -1;
		s++;
	} else {
		*first = number(s, &end);
		if (end == s || *end != '-')
			return 0;
		s = end + 1;
		*last = number(s, &end);
		if (end == s)
			return 0;
		s = end;
	}
	if (*s != '/')
		return 0;
	*total = number(s + 1, &end);
	return end != s + 1 && *end == '\0';
}
