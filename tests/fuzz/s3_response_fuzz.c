/*
 * Fuzz target for what the S3 client reads out of a server's answers
 * (src/connect/s3_response.c): tags of an XML body and a Content-Range
 * header.
 *
 * Input layout: the whole input, cut at its first NUL, is both the XML
 * body and the header value.
 *
 * Oracles besides "no crash": an extracted tag's text fits its buffer and
 * is a piece of the input; a parsed Content-Range has a non-negative
 * total, both ends -1 or neither, and prints back to a string that parses
 * to the same three numbers.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect/s3_response.h"

#define FUZZ_NAME "s3_response_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tags[] = {"Code", "Message", "BucketName", "UploadId"};
	char *text = malloc(size + 1), out[16], again[96];
	int64_t first, last, total, f2, l2, t2;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		sl_s3_xml_text(out, sizeof(out), text, tags[i]);
		if (strlen(out) >= sizeof(out))
			die("tag text overflows its buffer");
		if (out[0] != '\0' && strstr(text, out) == NULL)
			die("tag text is not a piece of the input");
	}
	if (sl_s3_content_range(text, &first, &last, &total)) {
		if (total < 0 || (first == -1) != (last == -1))
			die("content range out of shape");
		if (first == -1)
			snprintf(again, sizeof(again), "bytes */%" PRId64, total);
		else
			snprintf(again, sizeof(again), "bytes %" PRId64 "-%" PRId64 "/%" PRId64,
			         first, last, total);
		if (!sl_s3_content_range(again, &f2, &l2, &t2) || f2 != first || l2 != last ||
		    t2 != total)
			die("content range does not round-trip");
	}
	free(text);
	return 0;
}
