/*
 * Signed HTTP requests: a node proves which Ed25519 key sent a request,
 * for which server, and roughly when.
 *
 * The header is Authorization with the value
 *
 *   Sluice-Ed25519 key=<64 hex>, time=<decimal>, nonce=<32 hex>, sig=<128 hex>
 *
 * exactly: this scheme word and one space, then these four fields in this
 * order, each once, separated by ", " (comma and one space), no other
 * whitespace. Hex is lowercase; time is Unix seconds without leading zeros
 * ("0" alone is allowed), at most 20 digits and at most 2^64 - 1. The
 * value is at most SL_REQUEST_AUTH_MAX (512) bytes. Parsing is strict, so
 * each header has one spelling; anything else is SL_EINVAL naming what is
 * wrong.
 *
 * The signed message is
 *
 *   "sluice/request/v1"          17 bytes, the domain of these signatures
 *   u8 len(method) | method      1..16 bytes of A-Z
 *   be16 len(target) | target    path and query exactly as sent, 1..4096
 *                                bytes, starting with '/'
 *   SHA-256(body)                32 bytes (of the empty string for no body)
 *   server_key                   32 bytes, the Ed25519 public key of the
 *                                server the request is for, so that a
 *                                request cannot be replayed to another one
 *   be64 time | nonce            8 + 16 bytes
 *
 * and sig is the Ed25519 signature of the requesting node (key) over it.
 *
 * The server checks that time is within a window of its own clock and
 * the signature; it must also remember the nonces it saw within the
 * window to refuse replays, which needs storage and so is left to the
 * caller, as is whether the key may do what it asks.
 *
 * Test vector (tests/net/signed_request_test.c): the secret key of RFC
 * 8032 test 1 (seed 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60,
 * public key d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a),
 * POST "/api/v0/dag/abc/push?x=1" with the body "hello", server key 32
 * bytes of 0x11, time 1700000000 and nonce 000102030405060708090a0b0c0d0e0f
 * give
 *
 *   Sluice-Ed25519 key=d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a,
 *     time=1700000000, nonce=000102030405060708090a0b0c0d0e0f,
 *     sig=a60ee0701b519e5d6003797ea52b7e05625cc9cc15f2a42e0412a524bfa7de19
 *         386ec4682a642663fd8802e09f6db855c813cdde608495e817d4c2875c79130d
 *
 * (one line, broken here at ", " and in the middle of sig). The signed
 * message it covers is, in hex, field by field:
 *
 *   736c756963652f726571756573742f7631 04 504f5354
 *   0018 2f6170692f76302f6461672f6162632f707573683f783d31
 *   2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
 *   1111111111111111111111111111111111111111111111111111111111111111
 *   000000006553f100 000102030405060708090a0b0c0d0e0f
 */
#include <inttypes.h>
#include <string.h>

#include "sluice/net.h"

#define SCHEME        "Sluice-Ed25519 "
#define DOMAIN        "sluice/request/v1"
#define DOMAIN_LEN    (sizeof(DOMAIN) - 1)
#define METHOD_MAX    16
#define TARGET_MAX    4096
#define TIME_DIGITS   20
#define SEPARATOR     ", "
#define SEPARATOR_LEN 2
#define MESSAGE_MAX                                                                                \
	(DOMAIN_LEN + 1 + METHOD_MAX + 2 + TARGET_MAX + SL_DIGEST_LEN + SL_ED25519_PK_LEN + 8 +    \
	 SL_REQUEST_NONCE_LEN)

_Static_assert(DOMAIN_LEN == 17, "the domain string is 17 bytes");

static int check_request(const char *method, const char *target)
{
	size_t method_len, target_len;

	if (!method || !target)
		return sl_error_set(SL_EINVAL, "signed request: no method or target");
	method_len = strnlen(method, METHOD_MAX + 1);
	if (method_len == 0 || method_len > METHOD_MAX)
		return sl_error_set(SL_EINVAL, "signed request: the method is not 1..%d bytes",
		                    METHOD_MAX);
	for (size_t i = 0; i < method_len; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			return sl_error_set(SL_EINVAL,
			                    "signed request: the method is not uppercase A-Z");
	target_len = strnlen(target, TARGET_MAX + 1);
	if (target_len == 0 || target_len > TARGET_MAX)
		return sl_error_set(SL_EINVAL, "signed request: the target is not 1..%d bytes",
		                    TARGET_MAX);
	if (target[0] != '/')
		return sl_error_set(SL_EINVAL,
		                    "signed request: the target does not start with '/'");
	return SL_OK;
}

/* The signed message into msg (MESSAGE_MAX bytes); method and target were
 * checked. Returns its length. */
static size_t build_message(uint8_t *msg, const char *method, const char *target, const void *body,
                            size_t body_len, const uint8_t server_key[SL_ED25519_PK_LEN],
                            uint64_t time_s, const uint8_t nonce[SL_REQUEST_NONCE_LEN])
{
	size_t method_len = strlen(method), target_len = strlen(target), n = 0;
	sl_digest body_digest;

	sl_sha256(&body_digest, body_len ? body : "", body_len);
	memcpy(msg + n, DOMAIN, DOMAIN_LEN);
	n += DOMAIN_LEN;
	msg[n++] = (uint8_t)method_len;
	memcpy(msg + n, method, method_len);
	n += method_len;
	msg[n++] = (uint8_t)(target_len >> 8);
	msg[n++] = (uint8_t)target_len;
	memcpy(msg + n, target, target_len);
	n += target_len;
	memcpy(msg + n, body_digest.bytes, SL_DIGEST_LEN);
	n += SL_DIGEST_LEN;
	memcpy(msg + n, server_key, SL_ED25519_PK_LEN);
	n += SL_ED25519_PK_LEN;
	sl_be64_put(msg + n, time_s);
	n += 8;
	memcpy(msg + n, nonce, SL_REQUEST_NONCE_LEN);
	n += SL_REQUEST_NONCE_LEN;
	return n;
}

int sl_request_auth_sign(sl_request_auth *out, const uint8_t sk[SL_ED25519_SK_LEN],
                         const char *method, const char *target, const void *body, size_t body_len,
                         const uint8_t server_key[SL_ED25519_PK_LEN], uint64_t time_s)
{
	uint8_t msg[MESSAGE_MAX];
	sl_request_auth a;
	size_t msg_len;
	int rc;

	if (!out || !sk || !server_key || (!body && body_len > 0))
		return sl_error_set(SL_EINVAL, "signed request: missing argument");
	if ((rc = check_request(method, target)) != SL_OK)
		return rc;
	if ((rc = sl_random_bytes(a.nonce, sizeof(a.nonce))) != SL_OK)
		return rc;
	memcpy(a.key, sk + SL_ED25519_SK_LEN - SL_ED25519_PK_LEN, SL_ED25519_PK_LEN);
	a.time_s = time_s;
	msg_len = build_message(msg, method, target, body, body_len, server_key, time_s, a.nonce);
	if ((rc = sl_ed25519_sign(a.sig, msg, msg_len, sk)) != SL_OK)
		return rc;
	*out = a;
	return SL_OK;
}

int sl_request_auth_format(const sl_request_auth *a, char *out, size_t cap)
{
	char key[2 * SL_ED25519_PK_LEN + 1];
	char nonce[2 * SL_REQUEST_NONCE_LEN + 1];
	char sig[2 * SL_ED25519_SIG_LEN + 1];
	char value[SL_REQUEST_AUTH_MAX + 1];
	int n;

	if (!a || !out)
		return sl_error_set(SL_EINVAL, "authorization: missing argument");
	sl_hex_encode(key, a->key, sizeof(a->key));
	sl_hex_encode(nonce, a->nonce, sizeof(a->nonce));
	sl_hex_encode(sig, a->sig, sizeof(a->sig));
	n = snprintf(value, sizeof(value), SCHEME "key=%s, time=%" PRIu64 ", nonce=%s, sig=%s", key,
	             a->time_s, nonce, sig);
	if (n < 0 || (size_t)n >= sizeof(value))
		return sl_error_set(SL_EINTERNAL, "authorization: the value does not fit %d bytes",
		                    SL_REQUEST_AUTH_MAX);
	if ((size_t)n >= cap)
		return sl_error_set(SL_ETOOLARGE,
		                    "authorization: the value of %d bytes does not fit %zu bytes",
		                    n, cap);
	memcpy(out, value, (size_t)n + 1);
	return SL_OK;
}

/* The field value starting at p: up to the next ',' or the end. */
static size_t token_len(const char *p)
{
	return strcspn(p, ",");
}

static int parse_hex(uint8_t *out, size_t n, const char *name, const char *p, size_t len)
{
	size_t got;

	if (len != 2 * n)
		goto bad;
	for (size_t i = 0; i < len; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			goto bad;
	if (sl_hex_decode(out, n, &got, p, len) != SL_OK || got != n)
		goto bad;
	return SL_OK;
bad:
	return sl_error_set(SL_EINVAL, "authorization: %s is not %zu lowercase hex digits", name,
	                    2 * n);
}

static int parse_time(uint64_t *out, const char *p, size_t len)
{
	uint64_t v = 0;

	if (len == 0)
		return sl_error_set(SL_EINVAL, "authorization: time is empty");
	for (size_t i = 0; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return sl_error_set(SL_EINVAL,
			                    "authorization: time is not a decimal number");
	if (len > 1 && p[0] == '0')
		return sl_error_set(SL_EINVAL, "authorization: time has a leading zero");
	if (len > TIME_DIGITS)
		return sl_error_set(SL_EINVAL, "authorization: time has over %d digits",
		                    TIME_DIGITS);
	for (size_t i = 0; i < len; i++) {
		unsigned digit = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - digit) / 10)
			return sl_error_set(SL_EINVAL, "authorization: time overflows 64 bits");
		v = v * 10 + digit;
	}
	*out = v;
	return SL_OK;
}

int sl_request_auth_parse(sl_request_auth *out, const char *value)
{
	static const char *const names[] = {"key", "time", "nonce", "sig"};
	const size_t n_fields = sizeof(names) / sizeof(names[0]);
	const char *p;
	sl_request_auth a;
	size_t len;
	int rc;

	if (!out || !value)
		return sl_error_set(SL_EINVAL, "authorization: missing argument");
	len = strnlen(value, SL_REQUEST_AUTH_MAX + 1);
	if (len == 0)
		return sl_error_set(SL_EINVAL, "authorization: the value is empty");
	if (len > SL_REQUEST_AUTH_MAX)
		return sl_error_set(SL_EINVAL, "authorization: the value is over %d bytes",
		                    SL_REQUEST_AUTH_MAX);
	if (strncmp(value, SCHEME, strlen(SCHEME)) != 0)
		return sl_error_set(SL_EINVAL, "authorization: the scheme is not \"%.*s\"",
		                    (int)strlen(SCHEME) - 1, SCHEME);
	p = value + strlen(SCHEME);
	for (size_t i = 0; i < n_fields; i++) {
		size_t name_len = strlen(names[i]), value_len;

		if (i > 0) {
			if (*p == '\0')
				return sl_error_set(SL_EINVAL,
				                    "authorization: field %zu (%s=) is missing",
				                    i + 1, names[i]);
			if (strncmp(p, SEPARATOR, SEPARATOR_LEN) != 0)
				return sl_error_set(
				        SL_EINVAL,
				        "authorization: field %zu is not preceded by \", \"",
				        i + 1);
			p += SEPARATOR_LEN;
		}
		if (strncmp(p, names[i], name_len) != 0 || p[name_len] != '=')
			return sl_error_set(SL_EINVAL, "authorization: field %zu is not %s=", i + 1,
			                    names[i]);
		p += name_len + 1;
		value_len = token_len(p);
		switch (i) {
		case 0:
			rc = parse_hex(a.key, sizeof(a.key), "key", p, value_len);
			break;
		case 1:
			rc = parse_time(&a.time_s, p, value_len);
			break;
		case 2:
			rc = parse_hex(a.nonce, sizeof(a.nonce), "nonce", p, value_len);
			break;
		default:
			rc = parse_hex(a.sig, sizeof(a.sig), "sig", p, value_len);
			break;
		}
		if (rc != SL_OK)
			return rc;
		p += value_len;
	}
	if (*p != '\0')
		return sl_error_set(SL_EINVAL, "authorization: more after sig");
	*out = a;
	return SL_OK;
}

int sl_request_auth_verify(const sl_request_auth *a, const char *method, const char *target,
                           const void *body, size_t body_len,
                           const uint8_t server_key[SL_ED25519_PK_LEN], uint64_t now_s,
                           unsigned window_s)
{
	uint8_t msg[MESSAGE_MAX];
	uint64_t skew;
	size_t msg_len;
	int rc;

	if (!a || !server_key || (!body && body_len > 0))
		return sl_error_set(SL_EINVAL, "signed request: missing argument");
	skew = a->time_s > now_s ? a->time_s - now_s : now_s - a->time_s;
	if (skew > window_s)
		return sl_error_set(SL_EAUTH,
		                    "request time %" PRIu64 " is %" PRIu64
		                    " s %s the server's clock (%" PRIu64
		                    "), past the window of %u s",
		                    a->time_s, skew, a->time_s > now_s ? "ahead of" : "behind",
		                    now_s, window_s);
	if ((rc = check_request(method, target)) != SL_OK)
		return rc;
	msg_len =
	        build_message(msg, method, target, body, body_len, server_key, a->time_s, a->nonce);
	if ((rc = sl_ed25519_verify(a->sig, msg, msg_len, a->key)) != SL_OK)
		return sl_error_wrap("signed request");
	return SL_OK;
}
