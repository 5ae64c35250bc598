/*
 * Ed25519: the RFC 8032 test vectors (signing is deterministic, so our
 * signature must equal theirs), sign/verify round trips, and rejection of
 * every single-bit change to the signature, the message and the key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sluice/base.h"

typedef struct rfc_vector {
	const char *seed;
	const char *pk;
	const char *msg;
	const char *sig;
} rfc_vector;

/* RFC 8032 section 7.1, TEST 1, 2 and 3. */
static const rfc_vector rfc8032[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
         "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
         "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
         "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

static void from_hex(uint8_t *out, size_t cap, size_t *n, const char *hex)
{
	assert_int_equal(sl_hex_decode(out, cap, n, hex, strlen(hex)), SL_OK);
}

static void test_init_is_idempotent(void **state)
{
	(void)state;
	assert_int_equal(sl_base_init(), SL_OK);
	assert_int_equal(sl_base_init(), SL_OK);
}

static void test_rfc8032_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc8032) / sizeof(rfc8032[0]); i++) {
		uint8_t sk[SL_ED25519_SK_LEN], pk[SL_ED25519_PK_LEN];
		uint8_t want_sig[SL_ED25519_SIG_LEN], sig[SL_ED25519_SIG_LEN], msg[16];
		size_t n, msg_len;
		/* libsodium's secret key is seed || public key. */
		from_hex(sk, 32, &n, rfc8032[i].seed);
		from_hex(pk, sizeof(pk), &n, rfc8032[i].pk);
		memcpy(sk + 32, pk, 32);
		from_hex(msg, sizeof(msg), &msg_len, rfc8032[i].msg);
		from_hex(want_sig, sizeof(want_sig), &n, rfc8032[i].sig);

		assert_int_equal(sl_ed25519_sign(sig, msg, msg_len, sk), SL_OK);
		assert_memory_equal(sig, want_sig, sizeof(sig));
		assert_int_equal(sl_ed25519_verify(want_sig, msg, msg_len, pk), SL_OK);
	}
}

static void test_sign_verify_and_tamper(void **state)
{
	uint8_t pk[SL_ED25519_PK_LEN], sk[SL_ED25519_SK_LEN], sig[SL_ED25519_SIG_LEN];
	uint8_t msg[] = "target size=42 root=ab12 floor=7";
	size_t len = sizeof(msg) - 1;
	(void)state;

	assert_int_equal(sl_ed25519_keypair(pk, sk), SL_OK);
	assert_int_equal(sl_ed25519_sign(sig, msg, len, sk), SL_OK);
	assert_int_equal(sl_ed25519_verify(sig, msg, len, pk), SL_OK);

	for (size_t i = 0; i < sizeof(sig); i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			sig[i] ^= (uint8_t)(1u << bit);
			sl_error_clear();
			assert_int_equal(sl_ed25519_verify(sig, msg, len, pk), SL_EVERIFY);
			assert_int_equal(sl_error_last()->code, SL_EVERIFY);
			sig[i] ^= (uint8_t)(1u << bit);
		}
	}
	for (size_t i = 0; i < len; i++) {
		msg[i] ^= 0x01;
		assert_int_equal(sl_ed25519_verify(sig, msg, len, pk), SL_EVERIFY);
		msg[i] ^= 0x01;
	}
	assert_int_equal(sl_ed25519_verify(sig, msg, len - 1, pk), SL_EVERIFY);
	for (size_t i = 0; i < sizeof(pk); i++) {
		pk[i] ^= 0x80;
		assert_int_equal(sl_ed25519_verify(sig, msg, len, pk), SL_EVERIFY);
		pk[i] ^= 0x80;
	}
	assert_int_equal(sl_ed25519_verify(sig, msg, len, pk), SL_OK);

	/* Another key does not verify this signature. */
	uint8_t pk2[SL_ED25519_PK_LEN], sk2[SL_ED25519_SK_LEN];
	assert_int_equal(sl_ed25519_keypair(pk2, sk2), SL_OK);
	assert_memory_not_equal(pk, pk2, sizeof(pk));
	assert_int_equal(sl_ed25519_verify(sig, msg, len, pk2), SL_EVERIFY);
}

static void test_empty_message(void **state)
{
	uint8_t pk[SL_ED25519_PK_LEN], sk[SL_ED25519_SK_LEN], sig[SL_ED25519_SIG_LEN];
	(void)state;
	assert_int_equal(sl_ed25519_keypair(pk, sk), SL_OK);
	assert_int_equal(sl_ed25519_sign(sig, "", 0, sk), SL_OK);
	assert_int_equal(sl_ed25519_verify(sig, "", 0, pk), SL_OK);
	assert_int_equal(sl_ed25519_verify(sig, "x", 1, pk), SL_EVERIFY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init_is_idempotent),
	        cmocka_unit_test(test_rfc8032_vectors),
	        cmocka_unit_test(test_sign_verify_and_tamper),
	        cmocka_unit_test(test_empty_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
