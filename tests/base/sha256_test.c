/*
 * SHA-256 against the NIST FIPS 180-2 example vectors, one-shot vs parts
 * vs incremental (random split points), context reuse after final, many
 * threads hashing at once (per-thread contexts), and allocation failure in
 * sl_sha256_ctx_new.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"
#include "testutil.h"

#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define MSG_896                                                                                    \
	"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr" \
	"lmnopqr"                                                                                  \
	"smnopqrstnopqrstu"

static const struct {
	const char *msg;
	const char *hex;
} nist[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {MSG_448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {MSG_896, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

#define MILLION_A_HEX "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static void assert_digest_hex(const sl_digest *d, const char *hex)
{
	sl_digest_hex h = sl_digest_to_hex(d);
	assert_string_equal(h.s, hex);
}

static void test_nist_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(nist) / sizeof(nist[0]); i++) {
		sl_digest d;
		sl_sha256(&d, nist[i].msg, strlen(nist[i].msg));
		assert_digest_hex(&d, nist[i].hex);
	}
	/* Empty input with a NULL pointer is allowed. */
	sl_digest d;
	sl_sha256(&d, NULL, 0);
	assert_digest_hex(&d, nist[0].hex);
}

static void test_million_a(void **state)
{
	size_t n = 1000000;
	char *a = malloc(n);
	sl_digest d1, d2;
	sl_sha256_ctx *c = NULL;
	(void)state;
	assert_non_null(a);
	memset(a, 'a', n);
	sl_sha256(&d1, a, n);
	assert_digest_hex(&d1, MILLION_A_HEX);

	/* Same through the incremental API, 1000 bytes at a time. */
	assert_int_equal(sl_sha256_ctx_new(&c), SL_OK);
	for (size_t off = 0; off < n; off += 1000)
		sl_sha256_update(c, a + off, 1000);
	sl_sha256_final(c, &d2);
	assert_digest_hex(&d2, MILLION_A_HEX);
	assert_true(sl_digest_eq(&d1, &d2));
	sl_sha256_ctx_free(c);
	free(a);
}

static void test_parts_and_incremental_match(void **state)
{
	tu_rng rng = tu_rng_seeded("test_parts_and_incremental_match");
	uint8_t data[4096];
	sl_sha256_ctx *c = NULL;
	(void)state;
	assert_int_equal(sl_sha256_ctx_new(&c), SL_OK);
	for (int round = 0; round < 200; round++) {
		size_t len = (size_t)tu_rng_below(&rng, sizeof(data) + 1);
		tu_rng_fill(&rng, data, len);
		sl_digest whole, parts_digest, inc;
		sl_sha256(&whole, data, len);

		sl_bytes parts[8];
		size_t n_parts = 0, off = 0;
		while (off < len && n_parts < 7) {
			size_t take = (size_t)tu_rng_below(&rng, len - off + 1);
			parts[n_parts].data = data + off;
			parts[n_parts].len = take;
			n_parts++;
			off += take;
		}
		parts[n_parts].data = data + off;
		parts[n_parts].len = len - off;
		n_parts++;
		sl_sha256_parts(&parts_digest, parts, n_parts);
		assert_true(sl_digest_eq(&whole, &parts_digest));

		/* The same context is reused across rounds: final resets it. */
		for (size_t i = 0; i < n_parts; i++)
			sl_sha256_update(c, parts[i].data, parts[i].len);
		sl_sha256_final(c, &inc);
		assert_true(sl_digest_eq(&whole, &inc));
	}
	sl_sha256_ctx_free(c);
	sl_sha256_ctx_free(NULL);

	sl_digest empty;
	sl_sha256_parts(&empty, NULL, 0);
	assert_digest_hex(&empty, nist[0].hex);
}

static void test_digest_eq(void **state)
{
	sl_digest a, b;
	(void)state;
	sl_sha256(&a, "abc", 3);
	b = a;
	assert_true(sl_digest_eq(&a, &b));
	for (size_t i = 0; i < SL_DIGEST_LEN; i++) {
		b = a;
		b.bytes[i] ^= 0x01;
		assert_false(sl_digest_eq(&a, &b));
	}
}

static void *hash_in_thread(void *arg)
{
	int *ok = arg;
	*ok = 1;
	for (int i = 0; i < 2000; i++) {
		sl_digest d;
		size_t k = (size_t)i % (sizeof(nist) / sizeof(nist[0]));
		sl_sha256(&d, nist[k].msg, strlen(nist[k].msg));
		sl_digest_hex h = sl_digest_to_hex(&d);
		if (strcmp(h.s, nist[k].hex) != 0)
			*ok = 0;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t threads[8];
	int ok[8] = {0};
	(void)state;
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, hash_in_thread, &ok[i]), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_true(ok[i]);
	}
}

static void test_ctx_new_enomem(void **state)
{
	sl_sha256_ctx *c = (sl_sha256_ctx *)0x1;
	(void)state;
	sl_alloc_fail_after(0, 0);
	assert_int_equal(sl_sha256_ctx_new(&c), SL_ENOMEM);
	sl_alloc_fail_after(-1, 0);
	assert_ptr_equal(c, (sl_sha256_ctx *)0x1);
	assert_int_equal(sl_error_last()->code, SL_ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_nist_vectors),
	        cmocka_unit_test(test_million_a),
	        cmocka_unit_test(test_parts_and_incremental_match),
	        cmocka_unit_test(test_digest_eq),
	        cmocka_unit_test(test_threads),
	        cmocka_unit_test(test_ctx_new_enomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
