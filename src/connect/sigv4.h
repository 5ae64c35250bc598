/*
 * AWS Signature Version 4 for S3 (private to connect/). Pure functions: no
 * I/O, no clock; the caller passes the request time so every step can be
 * checked against AWS's published examples.
 *
 * A request to sign is described by its method, its path as the server
 * will see it *before* encoding ("/bucket/key with space"), its query
 * parameters (raw names and values) and the headers to sign (raw names and
 * values; they must include host, x-amz-date and x-amz-content-sha256).
 * The functions encode, sort and lower-case as SigV4 requires, so the URL
 * the caller sends is built from the same encoders (sl_sigv4_uri_encode,
 * sl_sigv4_canonical_query) and cannot disagree with what was signed.
 */
#ifndef SLUICE_CONNECT_SIGV4_H
#define SLUICE_CONNECT_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/base.h"

#define SL_SIGV4_MAX_PARAMS    16
#define SL_SIGV4_AMZ_DATE_LEN  16 /* "20130524T000000Z" */
#define SL_SIGV4_UNSIGNED      "UNSIGNED-PAYLOAD"
#define SL_SIGV4_EMPTY_SHA256  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SL_SIGV4_CANONICAL_MAX ((size_t)64 * 1024) /* cap on any built string */

/* A name/value pair: a query parameter or a header. */
typedef struct sl_sigv4_param {
	const char *name;
	const char *value;
} sl_sigv4_param;

typedef struct sl_sigv4_request {
	const char *method;            /* "GET", "PUT", ... */
	const char *path;              /* unencoded, starts with '/' */
	const sl_sigv4_param *query;   /* unencoded; value "" for "?uploads" */
	size_t n_query;                /* at most SL_SIGV4_MAX_PARAMS */
	const sl_sigv4_param *headers; /* every header to sign */
	size_t n_headers;              /* at most SL_SIGV4_MAX_PARAMS */
	const char *payload_hash;      /* hex SHA-256 of the body, or SL_SIGV4_UNSIGNED */
} sl_sigv4_request;

typedef struct sl_sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;  /* "us-east-1" */
	const char *service; /* "s3" */
} sl_sigv4_credentials;

/* "YYYYMMDDTHHMMSSZ" for a Unix time in milliseconds (UTC). */
void sl_sigv4_amz_date(char out[SL_SIGV4_AMZ_DATE_LEN + 1], uint64_t wall_ms);

/* Append s[0..n) to out, percent-encoding every byte but the unreserved
 * A-Z a-z 0-9 - . _ ~ with upper-case hex; '/' is kept when keep_slash
 * (S3 object paths), encoded otherwise (query names and values). */
int sl_sigv4_uri_encode(sl_buf *out, const char *s, size_t n, int keep_slash);

/* "a=1&b=&c=x%2Fy": names and values encoded, sorted by name then value.
 * Also the query string to send, so URL and signature always agree. */
int sl_sigv4_canonical_query(sl_buf *out, const sl_sigv4_param *params, size_t n);

/* The canonical request (method, URI, query, headers, signed header list,
 * payload hash, joined by newlines), and the signed header list alone
 * ("host;range;x-amz-date") into signed_headers when it is not NULL. */
int sl_sigv4_canonical_request(sl_buf *out, sl_buf *signed_headers, const sl_sigv4_request *req);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical)>". */
int sl_sigv4_string_to_sign(sl_buf *out, const char *amz_date, const sl_sigv4_credentials *cred,
                            const char *canonical_request, size_t canonical_len);

/* HMAC chain "AWS4"+secret -> date (YYYYMMDD) -> region -> service ->
 * "aws4_request". */
int sl_sigv4_signing_key(uint8_t out[SL_DIGEST_LEN], const sl_sigv4_credentials *cred,
                         const char *date8);

/* The Authorization header value, "AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=...,Signature=<hex>", for a request made at amz_date
 * (which must equal the x-amz-date header in req). */
int sl_sigv4_authorization(sl_buf *out, const sl_sigv4_request *req,
                           const sl_sigv4_credentials *cred, const char *amz_date);

#endif
