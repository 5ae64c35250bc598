/*
 * Signed HTTP requests (src/net/signed_request.c): a fixed vector built
 * by hand from the specification (the signed message byte for byte and
 * the exact header value), seeded sign/format/parse/verify round trips,
 * that changing any signed field breaks verification, the edges of the
 * clock window in both directions, the method and target forms, and the
 * strict parser refusing every other spelling of the header.
 *
 * Parsed inputs are heap copies of exactly their length, so under ASan a
 * read past the end of a header value fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"
#include "testutil.h"

/* RFC 8032, section 7.1, test 1. */
#define SEED_HEX   "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define PUBLIC_HEX "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define RFC_SIG1_HEX                                                                               \
	"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970" \
	"1cf9b46bd25bf5f0595bbe24655141438e7a100b"

/* The request of the vector. */
#define VEC_METHOD "POST"
#define VEC_TARGET "/api/v0/dag/abc/push?x=1"
#define VEC_BODY   "hello"
#define VEC_TIME   UINT64_C(1700000000)
#define NONCE_HEX  "000102030405060708090a0b0c0d0e0f"

#define VEC_SIG_HEX                                                                                \
	"a60ee0701b519e5d6003797ea52b7e05625cc9cc15f2a42e0412a524bfa7de19"                         \
	"386ec4682a642663fd8802e09f6db855c813cdde608495e817d4c2875c79130d"

/* The expected header value, spelled out; the same text is in
 * signed_request.c. */
static const char vector_header[] =
        "Sluice-Ed25519 key=d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a, "
        "time=1700000000, nonce=000102030405060708090a0b0c0d0e0f, "
        "sig=a60ee0701b519e5d6003797ea52b7e05625cc9cc15f2a42e0412a524bfa7de19"
        "386ec4682a642663fd8802e09f6db855c813cdde608495e817d4c2875c79130d";

/* The signed message of the vector, field by field. */
static const char vector_message_hex[] =
        "736c756963652f726571756573742f7631"                               /* domain */
        "04504f5354"                                                       /* POST */
        "00182f6170692f76302f6461672f6162632f707573683f783d31"             /* target */
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" /* sha256 */
        "1111111111111111111111111111111111111111111111111111111111111111" /* server */
        "000000006553f100"                                                 /* time */
        "000102030405060708090a0b0c0d0e0f";                                /* nonce */

static void unhex(uint8_t *out, size_t n, const char *hex)
{
	size_t got = 0;
	assert_int_equal(sl_hex_decode(out, n, &got, hex, strlen(hex)), SL_OK);
	assert_int_equal(got, n);
}

static void vector_sk(uint8_t sk[SL_ED25519_SK_LEN])
{
	unhex(sk, 32, SEED_HEX);
	unhex(sk + 32, 32, PUBLIC_HEX);
}

static void vector_server(uint8_t server[SL_ED25519_PK_LEN])
{
	memset(server, 0x11, SL_ED25519_PK_LEN);
}

/* The signed message built independently of the library, from the
 * specification. Returns its length. */
static size_t hand_message(uint8_t *out, size_t cap, const char *method, const char *target,
                           const void *body, size_t body_len,
                           const uint8_t server[SL_ED25519_PK_LEN], uint64_t time_s,
                           const uint8_t nonce[SL_REQUEST_NONCE_LEN])
{
	size_t method_len = strlen(method), target_len = strlen(target), n = 0;
	sl_digest digest;

	assert_true(17 + 1 + method_len + 2 + target_len + 32 + 32 + 8 + 16 <= cap);
	memcpy(out, "sluice/request/v1", 17);
	n = 17;
	out[n++] = (uint8_t)method_len;
	memcpy(out + n, method, method_len);
	n += method_len;
	out[n++] = (uint8_t)(target_len >> 8);
	out[n++] = (uint8_t)(target_len & 0xff);
	memcpy(out + n, target, target_len);
	n += target_len;
	sl_sha256(&digest, body_len ? body : "", body_len);
	memcpy(out + n, digest.bytes, 32);
	n += 32;
	memcpy(out + n, server, 32);
	n += 32;
	for (int i = 7; i >= 0; i--)
		out[n++] = (uint8_t)(time_s >> (8 * i));
	memcpy(out + n, nonce, 16);
	n += 16;
	return n;
}

/* The vector's auth, signed by hand over the hand-built message. */
static void vector_auth(sl_request_auth *a)
{
	uint8_t sk[SL_ED25519_SK_LEN], server[SL_ED25519_PK_LEN], msg[256];
	size_t len;

	vector_sk(sk);
	vector_server(server);
	memset(a, 0, sizeof(*a));
	unhex(a->key, sizeof(a->key), PUBLIC_HEX);
	a->time_s = VEC_TIME;
	unhex(a->nonce, sizeof(a->nonce), NONCE_HEX);
	len = hand_message(msg, sizeof(msg), VEC_METHOD, VEC_TARGET, VEC_BODY, strlen(VEC_BODY),
	                   server, a->time_s, a->nonce);
	assert_ok(sl_ed25519_sign(a->sig, msg, len, sk));
}

/* A heap copy of exactly the string, so ASan sees any over-read. */
static char *exact_copy(const char *s)
{
	size_t n = strlen(s) + 1;
	char *copy = malloc(n);
	assert_non_null(copy);
	memcpy(copy, s, n);
	return copy;
}

static int parse_copy(sl_request_auth *out, const char *value)
{
	char *copy = exact_copy(value);
	int rc = sl_request_auth_parse(out, copy);
	free(copy);
	return rc;
}

static void assert_auth_equal(const sl_request_auth *x, const sl_request_auth *y)
{
	assert_memory_equal(x->key, y->key, sizeof(x->key));
	assert_true(x->time_s == y->time_s);
	assert_memory_equal(x->nonce, y->nonce, sizeof(x->nonce));
	assert_memory_equal(x->sig, y->sig, sizeof(x->sig));
}

static void test_vector(void **state)
{
	uint8_t sk[SL_ED25519_SK_LEN], sig[SL_ED25519_SIG_LEN], server[SL_ED25519_PK_LEN];
	uint8_t msg[256], expected_msg[256];
	char header[SL_REQUEST_AUTH_MAX + 1], sig_hex[2 * SL_ED25519_SIG_LEN + 1];
	sl_request_auth a, parsed;
	size_t len, expected_len = 0;
	(void)state;

	/* The key is laid out as libsodium's: seed || public. RFC 8032 test
	 * 1 signs the empty message to this signature. */
	vector_sk(sk);
	assert_ok(sl_ed25519_sign(sig, "", 0, sk));
	sl_hex_encode(sig_hex, sig, sizeof(sig));
	assert_string_equal(sig_hex, RFC_SIG1_HEX);

	/* The signed message, byte for byte. */
	vector_server(server);
	unhex(a.nonce, sizeof(a.nonce), NONCE_HEX);
	len = hand_message(msg, sizeof(msg), VEC_METHOD, VEC_TARGET, VEC_BODY, strlen(VEC_BODY),
	                   server, VEC_TIME, a.nonce);
	assert_int_equal(sl_hex_decode(expected_msg, sizeof(expected_msg), &expected_len,
	                               vector_message_hex, strlen(vector_message_hex)),
	                 SL_OK);
	assert_int_equal(len, 17 + 1 + 4 + 2 + 24 + 32 + 32 + 8 + 16);
	assert_int_equal(len, expected_len);
	assert_memory_equal(msg, expected_msg, len);

	/* The header value. */
	vector_auth(&a);
	assert_ok(sl_request_auth_format(&a, header, sizeof(header)));
	if (strcmp(header, vector_header) != 0)
		fail_msg("header value\n  got  %s\n  want %s", header, vector_header);

	/* And back: it parses to the same fields and verifies. */
	assert_ok(parse_copy(&parsed, vector_header));
	assert_auth_equal(&parsed, &a);
	assert_ok(sl_request_auth_verify(&parsed, VEC_METHOD, VEC_TARGET, VEC_BODY,
	                                 strlen(VEC_BODY), server, VEC_TIME, SL_REQUEST_WINDOW_S));
}

static void test_round_trip(void **state)
{
	tu_rng rng = tu_rng_seeded("test_round_trip");
	(void)state;

	for (int round = 0; round < 50; round++) {
		uint8_t pk[SL_ED25519_PK_LEN], sk[SL_ED25519_SK_LEN], server[SL_ED25519_PK_LEN];
		uint8_t body[300], msg[8192];
		char header[SL_REQUEST_AUTH_MAX + 1], target[128];
		const char *methods[] = {"GET", "POST", "PUT", "DELETE", "A", "ABCDEFGHIJKLMNOP"};
		const char *method = methods[tu_rng_below(&rng, 6)];
		size_t body_len = (size_t)tu_rng_below(&rng, sizeof(body) + 1), msg_len;
		uint64_t time_s = round == 0 ? 0 : round == 1 ? UINT64_MAX : tu_rng_next(&rng);
		sl_request_auth a, parsed;

		assert_ok(sl_ed25519_keypair(pk, sk));
		tu_rng_fill(&rng, server, sizeof(server));
		tu_rng_fill(&rng, body, body_len);
		snprintf(target, sizeof(target), "/api/v0/ns/%" PRIu64 "?from=%" PRIu64 "&to=%%2F",
		         tu_rng_next(&rng), tu_rng_next(&rng));

		assert_ok(sl_request_auth_sign(&a, sk, method, target, body_len ? body : NULL,
		                               body_len, server, time_s));
		assert_memory_equal(a.key, pk, sizeof(pk));
		assert_true(a.time_s == time_s);
		assert_ok(sl_request_auth_format(&a, header, sizeof(header)));
		assert_true(strlen(header) <= SL_REQUEST_AUTH_MAX);
		assert_ok(parse_copy(&parsed, header));
		assert_auth_equal(&parsed, &a);
		assert_ok(sl_request_auth_verify(&parsed, method, target, body_len ? body : NULL,
		                                 body_len, server, time_s, SL_REQUEST_WINDOW_S));

		/* sign signs the message of the specification. */
		msg_len = hand_message(msg, sizeof(msg), method, target, body, body_len, server,
		                       time_s, a.nonce);
		assert_ok(sl_ed25519_verify(a.sig, msg, msg_len, pk));
	}
}

static void test_sign_fresh_nonces(void **state)
{
	uint8_t sk[SL_ED25519_SK_LEN], server[SL_ED25519_PK_LEN];
	sl_request_auth a, b;
	(void)state;

	vector_sk(sk);
	vector_server(server);
	assert_ok(sl_request_auth_sign(&a, sk, "GET", "/", NULL, 0, server, VEC_TIME));
	assert_ok(sl_request_auth_sign(&b, sk, "GET", "/", NULL, 0, server, VEC_TIME));
	assert_memory_not_equal(a.nonce, b.nonce, sizeof(a.nonce));
	assert_memory_not_equal(a.sig, b.sig, sizeof(a.sig));
	/* No body and an empty body sign the same message. */
	assert_ok(sl_request_auth_verify(&a, "GET", "/", "", 0, server, VEC_TIME, 0));
}

static void expect_verify(const sl_request_auth *a, const char *method, const char *target,
                          const char *body, const uint8_t server[SL_ED25519_PK_LEN], uint64_t now_s,
                          unsigned window_s, int want)
{
	int rc = sl_request_auth_verify(a, method, target, body, body ? strlen(body) : 0, server,
	                                now_s, window_s);
	if (rc != want)
		fail_msg("verify %s %s: got %d (%s), want %d", method ? method : "(null)",
		         target ? target : "(null)", rc, sl_error_last()->message, want);
}

static void test_every_field_is_signed(void **state)
{
	uint8_t server[SL_ED25519_PK_LEN], other_server[SL_ED25519_PK_LEN];
	uint8_t other_pk[SL_ED25519_PK_LEN], other_sk[SL_ED25519_SK_LEN];
	sl_request_auth good, a;
	(void)state;

	vector_server(server);
	vector_auth(&good);
	expect_verify(&good, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_OK);

	/* What the server sees of the request. */
	expect_verify(&good, "PUT", VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_EVERIFY);
	expect_verify(&good, "POSTX", VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, "/api/v0/dag/abc/push?x=2", VEC_BODY, server, VEC_TIME, 60,
	              SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, "/api/v0/dag/abc/push", VEC_BODY, server, VEC_TIME, 60,
	              SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, "/api/v0/dag/abc/push?x=1&", VEC_BODY, server, VEC_TIME,
	              60, SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, "/api/v0/dag/abc/push?x%3D1", VEC_BODY, server, VEC_TIME,
	              60, SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, VEC_TARGET, "hellp", server, VEC_TIME, 60, SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, VEC_TARGET, "Hello", server, VEC_TIME, 60, SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, VEC_TARGET, "hello!", server, VEC_TIME, 60, SL_EVERIFY);
	expect_verify(&good, VEC_METHOD, VEC_TARGET, NULL, server, VEC_TIME, 60, SL_EVERIFY);
	for (size_t i = 0; i < sizeof(server); i++) {
		memcpy(other_server, server, sizeof(server));
		other_server[i] ^= 0x01;
		expect_verify(&good, VEC_METHOD, VEC_TARGET, VEC_BODY, other_server, VEC_TIME, 60,
		              SL_EVERIFY);
	}

	/* What the header carries. */
	a = good;
	a.time_s++;
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_EVERIFY);
	a = good;
	a.time_s--;
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_EVERIFY);
	for (size_t i = 0; i < sizeof(a.nonce); i++) {
		a = good;
		a.nonce[i] ^= 0x80;
		expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60,
		              SL_EVERIFY);
	}
	for (size_t i = 0; i < sizeof(a.key); i++) {
		a = good;
		a.key[i] ^= 0x01;
		expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60,
		              SL_EVERIFY);
	}
	assert_ok(sl_ed25519_keypair(other_pk, other_sk));
	a = good;
	memcpy(a.key, other_pk, sizeof(a.key));
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_EVERIFY);
	for (size_t i = 0; i < sizeof(a.sig); i++) {
		a = good;
		a.sig[i] ^= 0x04;
		expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60,
		              SL_EVERIFY);
	}
}

static void test_time_window(void **state)
{
	uint8_t server[SL_ED25519_PK_LEN];
	sl_request_auth a;
	const char *message;
	(void)state;

	vector_server(server);
	vector_auth(&a);

	/* The server's clock behind and ahead of the request's. */
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME - 60, 60, SL_OK);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME + 60, 60, SL_OK);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME - 61, 60, SL_EAUTH);
	message = sl_error_last()->message;
	if (!strstr(message, "request time 1700000000 is 61 s ahead of the server's clock"))
		fail_msg("message: %s", message);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME + 61, 60, SL_EAUTH);
	message = sl_error_last()->message;
	if (!strstr(message, "request time 1700000000 is 61 s behind the server's clock"))
		fail_msg("message: %s", message);

	/* Other windows, down to none. */
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME + 300, 300, SL_OK);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME - 301, 300, SL_EAUTH);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME, 0, SL_OK);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME + 1, 0, SL_EAUTH);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, VEC_TIME - 1, 0, SL_EAUTH);

	/* The clock is checked first, before anything costs a signature
	 * check, and the difference does not wrap at the ends of the range. */
	expect_verify(&a, "bad", "bad", VEC_BODY, server, VEC_TIME + 61, 60, SL_EAUTH);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, UINT64_MAX, UINT32_MAX,
	              SL_EAUTH);
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, 0, 60, SL_EAUTH);
	a.time_s = UINT64_MAX;
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, 0, UINT32_MAX, SL_EAUTH);
	a.time_s = 0;
	expect_verify(&a, VEC_METHOD, VEC_TARGET, VEC_BODY, server, UINT64_MAX, UINT32_MAX,
	              SL_EAUTH);
}

static void test_method_and_target_form(void **state)
{
	uint8_t sk[SL_ED25519_SK_LEN], server[SL_ED25519_PK_LEN];
	char target[4098];
	sl_request_auth a, vec;
	const char *bad_methods[] = {"",     "post", "Post", "PO ST", "POST1", "ABCDEFGHIJKLMNOPQ",
	                             "GET\n"};
	(void)state;

	vector_sk(sk);
	vector_server(server);
	vector_auth(&vec);

	for (size_t i = 0; i < sizeof(bad_methods) / sizeof(bad_methods[0]); i++) {
		assert_int_equal(sl_request_auth_sign(&a, sk, bad_methods[i], "/", NULL, 0, server,
		                                      VEC_TIME),
		                 SL_EINVAL);
		expect_verify(&vec, bad_methods[i], VEC_TARGET, VEC_BODY, server, VEC_TIME, 60,
		              SL_EINVAL);
	}
	assert_int_equal(sl_request_auth_sign(&a, sk, NULL, "/", NULL, 0, server, VEC_TIME),
	                 SL_EINVAL);
	expect_verify(&vec, NULL, VEC_TARGET, VEC_BODY, server, VEC_TIME, 60, SL_EINVAL);
	expect_verify(&vec, VEC_METHOD, NULL, VEC_BODY, server, VEC_TIME, 60, SL_EINVAL);

	/* 16 letters of method and 4096 bytes of target are the most. */
	memset(target, 'a', sizeof(target));
	target[0] = '/';
	target[4096] = '\0';
	assert_ok(sl_request_auth_sign(&a, sk, "ABCDEFGHIJKLMNOP", target, NULL, 0, server,
	                               VEC_TIME));
	expect_verify(&a, "ABCDEFGHIJKLMNOP", target, NULL, server, VEC_TIME, 60, SL_OK);
	target[4096] = 'a';
	target[4097] = '\0';
	assert_int_equal(sl_request_auth_sign(&a, sk, "GET", target, NULL, 0, server, VEC_TIME),
	                 SL_EINVAL);
	expect_verify(&vec, VEC_METHOD, target, VEC_BODY, server, VEC_TIME, 60, SL_EINVAL);

	assert_int_equal(sl_request_auth_sign(&a, sk, "GET", "", NULL, 0, server, VEC_TIME),
	                 SL_EINVAL);
	assert_int_equal(sl_request_auth_sign(&a, sk, "GET", "api", NULL, 0, server, VEC_TIME),
	                 SL_EINVAL);
	assert_int_equal(
	        sl_request_auth_sign(&a, sk, "GET", "http://x/", NULL, 0, server, VEC_TIME),
	        SL_EINVAL);
	expect_verify(&vec, VEC_METHOD, "", VEC_BODY, server, VEC_TIME, 60, SL_EINVAL);
	expect_verify(&vec, VEC_METHOD, "api/v0", VEC_BODY, server, VEC_TIME, 60, SL_EINVAL);

	/* A body pointer is needed when there are bytes. */
	assert_int_equal(sl_request_auth_sign(&a, sk, "GET", "/", NULL, 1, server, VEC_TIME),
	                 SL_EINVAL);
	assert_int_equal(
	        sl_request_auth_verify(&vec, VEC_METHOD, VEC_TARGET, NULL, 5, server, VEC_TIME, 60),
	        SL_EINVAL);
}

static void test_format(void **state)
{
	char out[SL_REQUEST_AUTH_MAX + 1];
	size_t len = strlen(vector_header);
	sl_request_auth a;
	(void)state;

	vector_auth(&a);
	/* Exactly the room it needs, and one byte less. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(sl_request_auth_format(&a, out, len), SL_ETOOLARGE);
	assert_int_equal(out[0], 'x');
	assert_ok(sl_request_auth_format(&a, out, len + 1));
	assert_string_equal(out, vector_header);

	/* The longest value is well within the cap. */
	a.time_s = UINT64_MAX;
	assert_ok(sl_request_auth_format(&a, out, sizeof(out)));
	assert_int_equal(strlen(out), 15 + 68 + 27 + 40 + 134);
}

/* The vector's header with its fields replaced; NULL keeps a field. */
static void header_with(char *out, size_t cap, const char *key, const char *time_s,
                        const char *nonce, const char *sig)
{
	snprintf(out, cap, "Sluice-Ed25519 key=%s, time=%s, nonce=%s, sig=%s",
	         key ? key : PUBLIC_HEX, time_s ? time_s : "1700000000", nonce ? nonce : NONCE_HEX,
	         sig ? sig : VEC_SIG_HEX);
}

static void expect_reject(const char *value, const char *message_part)
{
	sl_request_auth out, untouched;
	int rc;

	memset(&out, 0xa5, sizeof(out));
	untouched = out;
	rc = parse_copy(&out, value);
	if (rc != SL_EINVAL)
		fail_msg("parse \"%s\": got %d, want SL_EINVAL", value, rc);
	if (!strstr(sl_error_last()->message, message_part))
		fail_msg("parse \"%s\": message \"%s\" does not say \"%s\"", value,
		         sl_error_last()->message, message_part);
	assert_memory_equal(&out, &untouched, sizeof(out));
}

static void test_parse_accepts(void **state)
{
	char value[1024];
	sl_request_auth a;
	(void)state;

	header_with(value, sizeof(value), NULL, "0", NULL, NULL);
	assert_ok(parse_copy(&a, value));
	assert_true(a.time_s == 0);
	header_with(value, sizeof(value), NULL, "9", NULL, NULL);
	assert_ok(parse_copy(&a, value));
	assert_true(a.time_s == 9);
	header_with(value, sizeof(value), NULL, "18446744073709551615", NULL, NULL);
	assert_ok(parse_copy(&a, value));
	assert_true(a.time_s == UINT64_MAX);
	header_with(value, sizeof(value), NULL, "10000000000000000000", NULL, NULL);
	assert_ok(parse_copy(&a, value));
	assert_true(a.time_s == UINT64_C(10000000000000000000));
}

static void test_parse_rejects(void **state)
{
	char value[1024], field[300];
	const char *k = PUBLIC_HEX, *n = NONCE_HEX, *s = VEC_SIG_HEX;
	(void)state;

	expect_reject("", "empty");

	/* The scheme. */
	expect_reject("Bearer abc", "scheme");
	snprintf(value, sizeof(value), "sluice-ed25519 key=%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "scheme");
	snprintf(value, sizeof(value), "Sluice-Ed25519key=%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "scheme");
	snprintf(value, sizeof(value), " Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "scheme");
	snprintf(value, sizeof(value), "Sluice-Ed25519\tkey=%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "scheme");
	expect_reject("Sluice-Ed25519", "scheme");
	expect_reject("Sluice-Ed25519 ", "field 1 is not key=");

	/* Missing, extra, repeated and reordered fields. */
	snprintf(value, sizeof(value), "Sluice-Ed25519 time=1, nonce=%s, sig=%s", n, s);
	expect_reject(value, "field 1 is not key=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 2 is not time=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, sig=%s", k, s);
	expect_reject(value, "field 3 is not nonce=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s", k, n);
	expect_reject(value, "field 4 (sig=) is missing");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s", k);
	expect_reject(value, "field 2 (time=) is missing");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s, extra=1",
	         k, n, s);
	expect_reject(value, "more after sig");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s, sig=%s", k,
	         n, s, s);
	expect_reject(value, "more after sig");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s,", k, n, s);
	expect_reject(value, "more after sig");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, key=%s, time=1, nonce=%s, sig=%s", k,
	         k, n, s);
	expect_reject(value, "field 2 is not time=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, time=1, nonce=%s, sig=%s", k,
	         n, s);
	expect_reject(value, "field 3 is not nonce=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 time=1, key=%s, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 1 is not key=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, sig=%s, nonce=%s", k, s, n);
	expect_reject(value, "field 3 is not nonce=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 Key=%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 1 is not key=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key:%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 1 is not key=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, times=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 2 is not time=");

	/* Hex: case and length of each field. */
	snprintf(field, sizeof(field),
	         "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F"
	         "707511A");
	header_with(value, sizeof(value), field, NULL, NULL, NULL);
	expect_reject(value, "key is not 64 lowercase hex digits");
	snprintf(field, sizeof(field), "%.63sA", k);
	header_with(value, sizeof(value), field, NULL, NULL, NULL);
	expect_reject(value, "key is not 64 lowercase hex digits");
	snprintf(field, sizeof(field), "%.62s", k);
	header_with(value, sizeof(value), field, NULL, NULL, NULL);
	expect_reject(value, "key is not 64 lowercase hex digits");
	snprintf(field, sizeof(field), "%s00", k);
	header_with(value, sizeof(value), field, NULL, NULL, NULL);
	expect_reject(value, "key is not 64 lowercase hex digits");
	snprintf(field, sizeof(field), "%.63sg", k);
	header_with(value, sizeof(value), field, NULL, NULL, NULL);
	expect_reject(value, "key is not 64 lowercase hex digits");
	header_with(value, sizeof(value), "", NULL, NULL, NULL);
	expect_reject(value, "key is not 64 lowercase hex digits");
	header_with(value, sizeof(value), NULL, NULL, "000102030405060708090A0B0C0D0E0F", NULL);
	expect_reject(value, "nonce is not 32 lowercase hex digits");
	header_with(value, sizeof(value), NULL, NULL, "000102030405060708090a0b0c0d0e", NULL);
	expect_reject(value, "nonce is not 32 lowercase hex digits");
	header_with(value, sizeof(value), NULL, NULL, "000102030405060708090a0b0c0d0e0f10", NULL);
	expect_reject(value, "nonce is not 32 lowercase hex digits");
	header_with(value, sizeof(value), NULL, NULL, "000102030405060708090a0b0c0d0e0", NULL);
	expect_reject(value, "nonce is not 32 lowercase hex digits");
	snprintf(field, sizeof(field), "%.127sF", s);
	header_with(value, sizeof(value), NULL, NULL, NULL, field);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	snprintf(field, sizeof(field), "%.126s", s);
	header_with(value, sizeof(value), NULL, NULL, NULL, field);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	snprintf(field, sizeof(field), "%s00", s);
	header_with(value, sizeof(value), NULL, NULL, NULL, field);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	header_with(value, sizeof(value), NULL, NULL, NULL, "");
	expect_reject(value, "sig is not 128 lowercase hex digits");

	/* Time. */
	header_with(value, sizeof(value), NULL, "01700000000", NULL, NULL);
	expect_reject(value, "time has a leading zero");
	header_with(value, sizeof(value), NULL, "00", NULL, NULL);
	expect_reject(value, "time has a leading zero");
	header_with(value, sizeof(value), NULL, "", NULL, NULL);
	expect_reject(value, "time is empty");
	header_with(value, sizeof(value), NULL, "18446744073709551616", NULL, NULL);
	expect_reject(value, "time overflows 64 bits");
	header_with(value, sizeof(value), NULL, "99999999999999999999", NULL, NULL);
	expect_reject(value, "time overflows 64 bits");
	header_with(value, sizeof(value), NULL, "100000000000000000000", NULL, NULL);
	expect_reject(value, "time has over 20 digits");
	header_with(value, sizeof(value), NULL, "-1", NULL, NULL);
	expect_reject(value, "time is not a decimal number");
	header_with(value, sizeof(value), NULL, "+1", NULL, NULL);
	expect_reject(value, "time is not a decimal number");
	header_with(value, sizeof(value), NULL, "1e9", NULL, NULL);
	expect_reject(value, "time is not a decimal number");
	header_with(value, sizeof(value), NULL, "0x10", NULL, NULL);
	expect_reject(value, "time is not a decimal number");
	header_with(value, sizeof(value), NULL, "\"1\"", NULL, NULL);
	expect_reject(value, "time is not a decimal number");

	/* Whitespace anywhere else, and trailing bytes. */
	snprintf(value, sizeof(value), "Sluice-Ed25519  key=%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 1 is not key=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s,  time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 2 is not time=");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s,time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 2 is not preceded by \", \"");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s,\ttime=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 2 is not preceded by \", \"");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s , time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "key is not 64 lowercase hex digits");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key= %s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "key is not 64 lowercase hex digits");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key =%s, time=1, nonce=%s, sig=%s", k, n, s);
	expect_reject(value, "field 1 is not key=");
	header_with(value, sizeof(value), NULL, " 1", NULL, NULL);
	expect_reject(value, "time is not a decimal number");
	header_with(value, sizeof(value), NULL, "1 ", NULL, NULL);
	expect_reject(value, "time is not a decimal number");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s ", k, n, s);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s\r\n", k, n,
	         s);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%sx", k, n, s);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=%s;", k, n, s);
	expect_reject(value, "sig is not 128 lowercase hex digits");
	snprintf(value, sizeof(value), "Sluice-Ed25519 key=%s, time=1, nonce=%s, sig=\"%s\"", k, n,
	         s);
	expect_reject(value, "sig is not 128 lowercase hex digits");
}

static void test_parse_length_cap(void **state)
{
	char value[SL_REQUEST_AUTH_MAX + 2];
	size_t len;
	(void)state;

	/* A valid header padded with junk to exactly the cap is refused for
	 * the junk; one byte more is refused for its length, before the
	 * parser looks at anything else. */
	header_with(value, sizeof(value), NULL, NULL, NULL, NULL);
	len = strlen(value);
	memset(value + len, 'x', sizeof(value) - len);
	value[SL_REQUEST_AUTH_MAX] = '\0';
	expect_reject(value, "sig is not 128 lowercase hex digits");
	value[SL_REQUEST_AUTH_MAX] = 'x';
	value[SL_REQUEST_AUTH_MAX + 1] = '\0';
	expect_reject(value, "over 512 bytes");
	memset(value, 'x', SL_REQUEST_AUTH_MAX + 1);
	expect_reject(value, "over 512 bytes");

	assert_int_equal(sl_request_auth_parse(NULL, vector_header), SL_EINVAL);
	{
		sl_request_auth a;
		assert_int_equal(sl_request_auth_parse(&a, NULL), SL_EINVAL);
	}
}

static int setup(void **state)
{
	(void)state;
	return sl_base_init() == SL_OK ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vector),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_sign_fresh_nonces),
	        cmocka_unit_test(test_every_field_is_signed),
	        cmocka_unit_test(test_time_window),
	        cmocka_unit_test(test_method_and_target_form),
	        cmocka_unit_test(test_format),
	        cmocka_unit_test(test_parse_accepts),
	        cmocka_unit_test(test_parse_rejects),
	        cmocka_unit_test(test_parse_length_cap),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
