/*
 * The two things the S3 client reads out of a server's answers, kept apart
 * from the transport so a fuzz target can feed them anything
 * (tests/fuzz/s3_response_fuzz.c): a tag's text in an XML body (the error
 * Code, Message and BucketName, a new upload's UploadId) and a
 * Content-Range header. Private to connect/.
 */
#ifndef SLUICE_CONNECT_S3_RESPONSE_H
#define SLUICE_CONNECT_S3_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

/* The text of the first <tag>...</tag> in the NUL-terminated xml, cut to
 * cap - 1 bytes, into out; "" when there is none. tag is at most 60 bytes. */
void sl_s3_xml_text(char *out, size_t cap, const char *xml, const char *tag);

/* "bytes FIRST-LAST/TOTAL" or "bytes * /TOTAL" (no space before the '/'),
 * unsigned decimals: 1 with its parts (-1 for '*'), 0 when s is anything else. */
int sl_s3_content_range(const char *s, int64_t *first, int64_t *last, int64_t *total);

#endif
