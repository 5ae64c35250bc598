/*
 * SigV4 against the worked examples in AWS's S3 documentation
 * ("Examples of signature calculations", example credentials
 * AKIAIOSFODNN7EXAMPLE, bucket examplebucket, 20130524T000000Z): the
 * canonical request, string to sign and signature of GET Object with a
 * Range, PUT Object with a '$' in the key, GET Bucket lifecycle and List
 * Objects. Then URI-encoding and canonicalisation edge cases.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "connect/sigv4.h"

#define HOST     "examplebucket.s3.amazonaws.com"
#define AMZ_DATE "20130524T000000Z"

static const sl_sigv4_credentials example_cred = {
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"};

static void assert_buf_eq(const sl_buf *b, const char *want)
{
	assert_int_equal(b->len, strlen(want));
	assert_memory_equal(b->data, want, b->len);
}

static void check_signature(const sl_sigv4_request *req, const char *signed_headers,
                            const char *signature)
{
	sl_buf auth = SL_BUF_INIT(4096), want = SL_BUF_INIT(4096);

	assert_int_equal(sl_sigv4_authorization(&auth, req, &example_cred, AMZ_DATE), SL_OK);
	assert_int_equal(sl_buf_printf(&want,
	                               "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
	                               "us-east-1/s3/aws4_request,SignedHeaders=%s,Signature=%s",
	                               signed_headers, signature),
	                 SL_OK);
	assert_string_equal((const char *)auth.data, (const char *)want.data);
	sl_buf_free(&auth);
	sl_buf_free(&want);
}

static void test_get_object_example(void **state)
{
	(void)state;
	/* Unsorted on purpose: the signer sorts. */
	const sl_sigv4_param headers[] = {{"x-amz-date", AMZ_DATE},
	                                  {"Range", "bytes=0-9"},
	                                  {"Host", HOST},
	                                  {"x-amz-content-sha256", SL_SIGV4_EMPTY_SHA256}};
	sl_sigv4_request req = {"GET", "/test.txt", NULL, 0, headers, 4, SL_SIGV4_EMPTY_SHA256};
	sl_buf canonical = SL_BUF_INIT(4096), list = SL_BUF_INIT(256), to_sign = SL_BUF_INIT(4096);

	assert_int_equal(sl_sigv4_canonical_request(&canonical, &list, &req), SL_OK);
	assert_buf_eq(&canonical,
	              "GET\n/test.txt\n\n"
	              "host:examplebucket.s3.amazonaws.com\n"
	              "range:bytes=0-9\n"
	              "x-amz-content-sha256:" SL_SIGV4_EMPTY_SHA256 "\n"
	              "x-amz-date:20130524T000000Z\n\n"
	              "host;range;x-amz-content-sha256;x-amz-date\n" SL_SIGV4_EMPTY_SHA256);
	assert_buf_eq(&list, "host;range;x-amz-content-sha256;x-amz-date");
	assert_int_equal(sl_sigv4_string_to_sign(&to_sign, AMZ_DATE, &example_cred,
	                                         (const char *)canonical.data, canonical.len),
	                 SL_OK);
	assert_buf_eq(&to_sign, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
	                        "20130524/us-east-1/s3/aws4_request\n"
	                        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	check_signature(&req, "host;range;x-amz-content-sha256;x-amz-date",
	                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	sl_buf_free(&canonical);
	sl_buf_free(&list);
	sl_buf_free(&to_sign);
}

static void test_put_object_example(void **state)
{
	(void)state;
	const char *body = "Welcome to Amazon S3.";
	sl_digest hash;
	sl_digest_hex hash_hex;
	sl_buf canonical = SL_BUF_INIT(4096), to_sign = SL_BUF_INIT(4096);

	sl_sha256(&hash, body, strlen(body));
	hash_hex = sl_digest_to_hex(&hash);
	assert_string_equal(hash_hex.s,
	                    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	const sl_sigv4_param headers[] = {{"Host", HOST},
	                                  {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
	                                  {"x-amz-date", AMZ_DATE},
	                                  {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
	                                  {"x-amz-content-sha256", hash_hex.s}};
	sl_sigv4_request req = {"PUT", "/test$file.text", NULL, 0, headers, 5, hash_hex.s};

	assert_int_equal(sl_sigv4_canonical_request(&canonical, NULL, &req), SL_OK);
	assert_buf_eq(&canonical,
	              "PUT\n/test%24file.text\n\n"
	              "date:Fri, 24 May 2013 00:00:00 GMT\n"
	              "host:examplebucket.s3.amazonaws.com\n"
	              "x-amz-content-sha256:"
	              "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
	              "x-amz-date:20130524T000000Z\n"
	              "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
	              "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
	              "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	assert_int_equal(sl_sigv4_string_to_sign(&to_sign, AMZ_DATE, &example_cred,
	                                         (const char *)canonical.data, canonical.len),
	                 SL_OK);
	assert_buf_eq(&to_sign, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
	                        "20130524/us-east-1/s3/aws4_request\n"
	                        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
	check_signature(&req, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	sl_buf_free(&canonical);
	sl_buf_free(&to_sign);
}

static void test_get_lifecycle_example(void **state)
{
	(void)state;
	const sl_sigv4_param query[] = {{"lifecycle", ""}};
	const sl_sigv4_param headers[] = {{"Host", HOST},
	                                  {"x-amz-date", AMZ_DATE},
	                                  {"x-amz-content-sha256", SL_SIGV4_EMPTY_SHA256}};
	sl_sigv4_request req = {"GET", "/", query, 1, headers, 3, SL_SIGV4_EMPTY_SHA256};
	sl_buf canonical = SL_BUF_INIT(4096);

	assert_int_equal(sl_sigv4_canonical_request(&canonical, NULL, &req), SL_OK);
	assert_buf_eq(&canonical, "GET\n/\nlifecycle=\n"
	                          "host:examplebucket.s3.amazonaws.com\n"
	                          "x-amz-content-sha256:" SL_SIGV4_EMPTY_SHA256 "\n"
	                          "x-amz-date:20130524T000000Z\n\n"
	                          "host;x-amz-content-sha256;x-amz-date\n" SL_SIGV4_EMPTY_SHA256);
	check_signature(&req, "host;x-amz-content-sha256;x-amz-date",
	                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	sl_buf_free(&canonical);
}

static void test_list_objects_example(void **state)
{
	(void)state;
	const sl_sigv4_param query[] = {{"prefix", "J"}, {"max-keys", "2"}};
	const sl_sigv4_param headers[] = {{"Host", HOST},
	                                  {"x-amz-date", AMZ_DATE},
	                                  {"x-amz-content-sha256", SL_SIGV4_EMPTY_SHA256}};
	sl_sigv4_request req = {"GET", "/", query, 2, headers, 3, SL_SIGV4_EMPTY_SHA256};
	sl_buf q = SL_BUF_INIT(256);

	assert_int_equal(sl_sigv4_canonical_query(&q, query, 2), SL_OK);
	assert_buf_eq(&q, "max-keys=2&prefix=J");
	check_signature(&req, "host;x-amz-content-sha256;x-amz-date",
	                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	sl_buf_free(&q);
}

static void check_encode(const char *in, size_t n, int keep_slash, const char *want)
{
	sl_buf out = SL_BUF_INIT(1024);
	assert_int_equal(sl_sigv4_uri_encode(&out, in, n, keep_slash), SL_OK);
	assert_buf_eq(&out, want);
	sl_buf_free(&out);
}

static void test_uri_encode(void **state)
{
	(void)state;
	check_encode("AZaz09-._~", 10, 0, "AZaz09-._~");
	check_encode("a b/c", 5, 1, "a%20b/c");
	check_encode("a b/c", 5, 0, "a%20b%2Fc");
	check_encode("a+b=c&d*e", 9, 1, "a%2Bb%3Dc%26d%2Ae");
	check_encode("\xc3\xa9t\xc3\xa9", 5, 1, "%C3%A9t%C3%A9"); /* UTF-8, upper-case hex */
	check_encode("%2F", 3, 1, "%252F");                       /* encoded once, as given */
	check_encode("a//b/../c", 9, 1, "a//b/../c");             /* S3: no normalisation */
	check_encode("nul\0byte", 8, 1, "nul%00byte");
	check_encode("", 0, 1, "");

	/* A cap is honoured and the buffer left as it was. */
	sl_buf small = SL_BUF_INIT(8);
	assert_int_equal(sl_buf_append_str(&small, "ab"), SL_OK);
	assert_int_equal(sl_sigv4_uri_encode(&small, "   ", 3, 1), SL_ETOOLARGE);
	assert_buf_eq(&small, "ab");
	sl_buf_free(&small);
}

static void test_canonical_query_order(void **state)
{
	(void)state;
	/* Sorted by encoded name then value; '/' and ' ' encoded in values. */
	const sl_sigv4_param query[] = {{"uploadId", "a/b c"}, {"b", "2"}, {"b", "1"}, {"B", "x"},
	                                {"uploads", ""},       {"a~", "~"}};
	sl_buf q = SL_BUF_INIT(256);

	assert_int_equal(sl_sigv4_canonical_query(&q, query, 6), SL_OK);
	assert_buf_eq(&q, "B=x&a~=~&b=1&b=2&uploadId=a%2Fb%20c&uploads=");
	sl_buf_free(&q);

	sl_sigv4_param many[SL_SIGV4_MAX_PARAMS + 1];
	for (size_t i = 0; i < SL_SIGV4_MAX_PARAMS + 1; i++)
		many[i] = (sl_sigv4_param){"k", "v"};
	assert_int_equal(sl_sigv4_canonical_query(&q, many, SL_SIGV4_MAX_PARAMS + 1), SL_ETOOLARGE);
	assert_int_equal(q.len, 0);
	sl_buf_free(&q);
}

static void test_canonical_headers(void **state)
{
	(void)state;
	const sl_sigv4_param headers[] = {{"X-Amz-Meta-Note", "  two   spaces\tand  tab  "},
	                                  {"Host", "h:9000"}};
	sl_sigv4_request req = {"PUT", "/b/k", NULL, 0, headers, 2, SL_SIGV4_UNSIGNED};
	sl_buf canonical = SL_BUF_INIT(4096);

	assert_int_equal(sl_sigv4_canonical_request(&canonical, NULL, &req), SL_OK);
	assert_buf_eq(&canonical, "PUT\n/b/k\n\nhost:h:9000\nx-amz-meta-note:two spaces and tab\n\n"
	                          "host;x-amz-meta-note\nUNSIGNED-PAYLOAD");
	sl_buf_free(&canonical);

	const sl_sigv4_param twice[] = {{"Host", "a"}, {"host", "b"}};
	req.headers = twice;
	assert_int_equal(sl_sigv4_canonical_request(&canonical, NULL, &req), SL_EINVAL);
	assert_int_equal(canonical.len, 0);

	req.headers = headers;
	req.path = "no-slash";
	assert_int_equal(sl_sigv4_canonical_request(&canonical, NULL, &req), SL_EINVAL);
	sl_buf_free(&canonical);
}

static void test_amz_date_and_key(void **state)
{
	(void)state;
	char date[SL_SIGV4_AMZ_DATE_LEN + 1];
	uint8_t key[SL_DIGEST_LEN];
	char key_hex[2 * SL_DIGEST_LEN + 1];

	sl_sigv4_amz_date(date, 1369353600123ull);
	assert_string_equal(date, AMZ_DATE);
	sl_sigv4_amz_date(date, 0);
	assert_string_equal(date, "19700101T000000Z");

	/* The signing key is a function of date, region and service only. */
	assert_int_equal(sl_sigv4_signing_key(key, &example_cred, "20130524"), SL_OK);
	sl_hex_encode(key_hex, key, sizeof(key));
	uint8_t other[SL_DIGEST_LEN];
	sl_sigv4_credentials eu = example_cred;
	eu.region = "eu-west-1";
	assert_int_equal(sl_sigv4_signing_key(other, &eu, "20130524"), SL_OK);
	assert_memory_not_equal(key, other, sizeof(key));
	assert_int_equal(sl_sigv4_signing_key(other, &example_cred, "20130524"), SL_OK);
	assert_memory_equal(key, other, sizeof(key));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_get_object_example),
	        cmocka_unit_test(test_put_object_example),
	        cmocka_unit_test(test_get_lifecycle_example),
	        cmocka_unit_test(test_list_objects_example),
	        cmocka_unit_test(test_uri_encode),
	        cmocka_unit_test(test_canonical_query_order),
	        cmocka_unit_test(test_canonical_headers),
	        cmocka_unit_test(test_amz_date_and_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
