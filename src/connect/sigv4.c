/*
 * AWS Signature Version 4, the S3 flavour, as four pure steps:
 *
 *   canonical request  method \n URI \n query \n headers \n signed list \n payload hash
 *   string to sign     "AWS4-HMAC-SHA256" \n amz date \n scope \n hex(sha256(canonical))
 *   signing key        HMAC chain over "AWS4"+secret, date, region, service, "aws4_request"
 *   signature          hex(HMAC(signing key, string to sign))
 *
 * S3 differs from the other services in one place: the path is not
 * normalised and is encoded once (each segment percent-encoded, '/' kept),
 * so a key like "a//b/../c" is signed as it is sent. The caller must send
 * the path exactly as sl_sigv4_uri_encode produced it (curl: PATH_AS_IS).
 *
 * Every string is built in an sl_buf capped at SL_SIGV4_CANONICAL_MAX, so a
 * huge key fails with SL_ETOOLARGE instead of allocating without bound.
 */
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "connect/sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

void sl_sigv4_amz_date(char out[SL_SIGV4_AMZ_DATE_LEN + 1], uint64_t wall_ms)
{
	time_t secs = (time_t)(wall_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	if (strftime(out, SL_SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) == 0)
		out[0] = '\0'; /* a year past 9999: the server will refuse it */
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int sl_sigv4_uri_encode(sl_buf *out, const char *s, size_t n, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start = out->len;
	int rc = SL_OK;

	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			rc = sl_buf_append_byte(out, c);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			rc = sl_buf_append(out, esc, sizeof(esc));
		}
	}
	if (rc != SL_OK)
		out->len = start; /* leave the buffer as it was */
	return rc;
}

typedef struct encoded_param {
	size_t name_off, name_len;   /* into the scratch buffer */
	size_t value_off, value_len; /* into the scratch buffer */
} encoded_param;

static int compare_span(const char *base, size_t a_off, size_t a_len, size_t b_off, size_t b_len)
{
	size_t n = a_len < b_len ? a_len : b_len;
	int c = memcmp(base + a_off, base + b_off, n);
	if (c != 0)
		return c;
	return a_len < b_len ? -1 : a_len > b_len;
}

int sl_sigv4_canonical_query(sl_buf *out, const sl_sigv4_param *params, size_t n)
{
	encoded_param enc[SL_SIGV4_MAX_PARAMS];
	size_t order[SL_SIGV4_MAX_PARAMS];
	sl_buf scratch = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	size_t start = out->len;
	int rc = SL_OK;

	if (n > SL_SIGV4_MAX_PARAMS) {
		rc = sl_error_set(SL_ETOOLARGE, "sigv4: %zu query parameters (at most %d)", n,
		                  SL_SIGV4_MAX_PARAMS);
		goto cleanup;
	}
	if ((rc = sl_buf_reserve(&scratch, 64))) /* data is never NULL below */
		goto cleanup;
	for (size_t i = 0; i < n; i++) {
		enc[i].name_off = scratch.len;
		if ((rc = sl_sigv4_uri_encode(&scratch, params[i].name, strlen(params[i].name), 0)))
			goto cleanup;
		enc[i].name_len = scratch.len - enc[i].name_off;
		enc[i].value_off = scratch.len;
		if ((rc = sl_sigv4_uri_encode(&scratch, params[i].value, strlen(params[i].value),
		                              0)))
			goto cleanup;
		enc[i].value_len = scratch.len - enc[i].value_off;
		order[i] = i;
	}
	/* Insertion sort: at most 16 parameters. */
	for (size_t i = 1; i < n; i++) {
		size_t j = i, cur = order[i];
		while (j > 0) {
			const encoded_param *a = &enc[order[j - 1]], *b = &enc[cur];
			const char *base = (const char *)scratch.data;
			int c = compare_span(base, a->name_off, a->name_len, b->name_off,
			                     b->name_len);
			if (c == 0)
				c = compare_span(base, a->value_off, a->value_len, b->value_off,
				                 b->value_len);
			if (c <= 0)
				break;
			order[j] = order[j - 1];
			j--;
		}
		order[j] = cur;
	}
	for (size_t i = 0; i < n; i++) {
		const encoded_param *p = &enc[order[i]];
		if ((i > 0 && (rc = sl_buf_append_byte(out, '&'))) ||
		    (rc = sl_buf_append(out, scratch.data + p->name_off, p->name_len)) ||
		    (rc = sl_buf_append_byte(out, '=')) ||
		    (rc = sl_buf_append(out, scratch.data + p->value_off, p->value_len)))
			goto cleanup;
	}
cleanup:
	if (rc != SL_OK)
		out->len = start;
	sl_buf_free(&scratch);
	return rc;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int name_less(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char la = lower(*a), lb = lower(*b);
		if (la != lb)
			return la < lb ? -1 : 1;
	}
	return (*a != '\0') - (*b != '\0');
}

/* Lower-cased name. */
static int append_lower(sl_buf *out, const char *s)
{
	int rc = SL_OK;
	for (; *s && rc == SL_OK; s++)
		rc = sl_buf_append_byte(out, (uint8_t)lower(*s));
	return rc;
}

/* Value with leading and trailing blanks trimmed and runs of spaces
 * collapsed to one, as SigV4 canonical headers require. */
static int append_trimmed(sl_buf *out, const char *s)
{
	const char *end = s + strlen(s);
	int rc = SL_OK, in_space = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; s < end && rc == SL_OK; s++) {
		int space = *s == ' ' || *s == '\t';
		if (space && in_space)
			continue;
		rc = sl_buf_append_byte(out, space ? ' ' : (uint8_t)*s);
		in_space = space;
	}
	return rc;
}

int sl_sigv4_canonical_request(sl_buf *out, sl_buf *signed_headers, const sl_sigv4_request *req)
{
	size_t order[SL_SIGV4_MAX_PARAMS];
	sl_buf list = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	size_t start = out->len;
	int rc = SL_OK;

	if (req->n_headers > SL_SIGV4_MAX_PARAMS || req->n_headers == 0 || req->path[0] != '/') {
		rc = sl_error_set(SL_EINVAL, "sigv4: %zu headers, path '%.40s'", req->n_headers,
		                  req->path);
		goto cleanup;
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		size_t j = i;
		while (j > 0 &&
		       name_less(req->headers[order[j - 1]].name, req->headers[i].name) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (size_t i = 1; i < req->n_headers; i++) {
		if (name_less(req->headers[order[i - 1]].name, req->headers[order[i]].name) == 0) {
			rc = sl_error_set(SL_EINVAL, "sigv4: header '%s' given twice",
			                  req->headers[order[i]].name);
			goto cleanup;
		}
	}

	if ((rc = sl_buf_append_str(out, req->method)) || (rc = sl_buf_append_byte(out, '\n')) ||
	    (rc = sl_sigv4_uri_encode(out, req->path, strlen(req->path), 1)) ||
	    (rc = sl_buf_append_byte(out, '\n')) ||
	    (rc = sl_sigv4_canonical_query(out, req->query, req->n_query)) ||
	    (rc = sl_buf_append_byte(out, '\n')))
		goto cleanup;
	for (size_t i = 0; i < req->n_headers; i++) {
		const sl_sigv4_param *h = &req->headers[order[i]];
		if ((rc = append_lower(out, h->name)) || (rc = sl_buf_append_byte(out, ':')) ||
		    (rc = append_trimmed(out, h->value)) || (rc = sl_buf_append_byte(out, '\n')))
			goto cleanup;
		if ((i > 0 && (rc = sl_buf_append_byte(&list, ';'))) ||
		    (rc = append_lower(&list, h->name)))
			goto cleanup;
	}
	if ((rc = sl_buf_append_byte(out, '\n')) ||
	    (rc = sl_buf_append(out, list.data, list.len)) ||
	    (rc = sl_buf_append_byte(out, '\n')) ||
	    (rc = sl_buf_append_str(out, req->payload_hash)))
		goto cleanup;
	if (signed_headers != NULL && (rc = sl_buf_set(signed_headers, list.data, list.len)))
		goto cleanup;

cleanup:
	if (rc != SL_OK)
		out->len = start;
	sl_buf_free(&list);
	return rc;
}

static int append_scope(sl_buf *out, const char *amz_date, const sl_sigv4_credentials *cred)
{
	return sl_buf_printf(out, "%.8s/%s/%s/aws4_request", amz_date, cred->region, cred->service);
}

int sl_sigv4_string_to_sign(sl_buf *out, const char *amz_date, const sl_sigv4_credentials *cred,
                            const char *canonical_request, size_t canonical_len)
{
	sl_digest hash;
	sl_digest_hex hash_hex;
	size_t start = out->len;
	int rc;

	if (strlen(amz_date) != SL_SIGV4_AMZ_DATE_LEN)
		return sl_error_set(SL_EINVAL, "sigv4: bad x-amz-date '%.20s'", amz_date);
	sl_sha256(&hash, canonical_request, canonical_len);
	hash_hex = sl_digest_to_hex(&hash);
	if ((rc = sl_buf_printf(out, ALGORITHM "\n%s\n", amz_date)) ||
	    (rc = append_scope(out, amz_date, cred)) || (rc = sl_buf_append_byte(out, '\n')) ||
	    (rc = sl_buf_append_str(out, hash_hex.s)))
		out->len = start;
	return rc;
}

static int hmac(uint8_t out[SL_DIGEST_LEN], const void *key, size_t key_len, const void *msg,
                size_t msg_len)
{
	unsigned int out_len = 0;

	if (key_len > INT32_MAX ||
	    HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &out_len) == NULL ||
	    out_len != SL_DIGEST_LEN)
		return sl_error_set_cause(SL_EINTERNAL, "libcrypto HMAC",
		                          "sigv4: HMAC-SHA256 failed");
	return SL_OK;
}

int sl_sigv4_signing_key(uint8_t out[SL_DIGEST_LEN], const sl_sigv4_credentials *cred,
                         const char *date8)
{
	sl_buf secret = SL_BUF_INIT(4096);
	uint8_t key[SL_DIGEST_LEN];
	int rc;

	if ((rc = sl_buf_append_str(&secret, "AWS4")) ||
	    (rc = sl_buf_append_str(&secret, cred->secret_access_key)))
		goto cleanup;
	if ((rc = hmac(key, secret.data, secret.len, date8, 8)) ||
	    (rc = hmac(key, key, sizeof(key), cred->region, strlen(cred->region))) ||
	    (rc = hmac(key, key, sizeof(key), cred->service, strlen(cred->service))) ||
	    (rc = hmac(key, key, sizeof(key), "aws4_request", strlen("aws4_request"))))
		goto cleanup;
	memcpy(out, key, sizeof(key));

cleanup:
	/* The secret and the derived key are credentials: do not leave them in freed memory. */
	if (secret.data != NULL)
		memset(secret.data, 0, secret.cap);
	memset(key, 0, sizeof(key));
	sl_buf_free(&secret);
	return rc;
}

int sl_sigv4_authorization(sl_buf *out, const sl_sigv4_request *req,
                           const sl_sigv4_credentials *cred, const char *amz_date)
{
	sl_buf canonical = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	sl_buf signed_headers = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	sl_buf to_sign = SL_BUF_INIT(SL_SIGV4_CANONICAL_MAX);
	uint8_t key[SL_DIGEST_LEN], signature[SL_DIGEST_LEN];
	char signature_hex[2 * SL_DIGEST_LEN + 1];
	size_t start = out->len;
	int rc;

	if ((rc = sl_sigv4_canonical_request(&canonical, &signed_headers, req)) ||
	    (rc = sl_sigv4_string_to_sign(&to_sign, amz_date, cred, (const char *)canonical.data,
	                                  canonical.len)) ||
	    (rc = sl_sigv4_signing_key(key, cred, amz_date)) ||
	    (rc = hmac(signature, key, sizeof(key), to_sign.data, to_sign.len)))
		goto cleanup;
	sl_hex_encode(signature_hex, signature, sizeof(signature));
	if ((rc = sl_buf_printf(out, ALGORITHM " Credential=%s/", cred->access_key_id)) ||
	    (rc = append_scope(out, amz_date, cred)) ||
	    (rc = sl_buf_append_str(out, ",SignedHeaders=")) ||
	    (rc = sl_buf_append(out, signed_headers.data, signed_headers.len)) ||
	    (rc = sl_buf_printf(out, ",Signature=%s", signature_hex)))
		goto cleanup;

cleanup:
	if (rc != SL_OK)
		out->len = start;
	memset(key, 0, sizeof(key));
	sl_buf_free(&canonical);
	sl_buf_free(&signed_headers);
	sl_buf_free(&to_sign);
	return rc;
}
