/*
 * Ed25519 signatures through libsodium's crypto_sign_* (detached form).
 * sodium_init() runs once per process under pthread_once; the sign and
 * verify functions call sl_base_init() themselves, which after the first
 * time is only a load, so a forgotten init is not a crash.
 */
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "sluice/base.h"

_Static_assert(SL_ED25519_PK_LEN == crypto_sign_PUBLICKEYBYTES, "public key length");
_Static_assert(SL_ED25519_SK_LEN == crypto_sign_SECRETKEYBYTES, "secret key length");
_Static_assert(SL_ED25519_SIG_LEN == crypto_sign_BYTES, "signature length");

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_status = -1;

static void init_sodium(void)
{
	/* 0: initialised now, 1: already initialised, -1: failure. */
	sodium_status = sodium_init();
}

int sl_base_init(void)
{
	if (pthread_once(&sodium_once, init_sodium) != 0 || sodium_status < 0)
		return sl_error_set(SL_EINTERNAL, "libsodium initialisation failed");
	return SL_OK;
}

int sl_random_bytes(void *out, size_t n)
{
	int rc = sl_base_init();
	if (rc != SL_OK)
		return rc;
	randombytes_buf(out, n);
	return SL_OK;
}

int sl_ed25519_keypair(uint8_t pk[SL_ED25519_PK_LEN], uint8_t sk[SL_ED25519_SK_LEN])
{
	uint8_t new_pk[SL_ED25519_PK_LEN];
	uint8_t new_sk[SL_ED25519_SK_LEN];
	int rc;

	rc = sl_base_init();
	if (rc != SL_OK)
		return rc;
	if (crypto_sign_keypair(new_pk, new_sk) != 0) {
		rc = sl_error_set(SL_EINTERNAL, "Ed25519 key generation failed");
		goto cleanup;
	}
	memcpy(pk, new_pk, sizeof(new_pk));
	memcpy(sk, new_sk, sizeof(new_sk));
cleanup:
	sodium_memzero(new_sk, sizeof(new_sk));
	return rc;
}

int sl_ed25519_sign(uint8_t sig[SL_ED25519_SIG_LEN], const void *msg, size_t len,
                    const uint8_t sk[SL_ED25519_SK_LEN])
{
	uint8_t new_sig[SL_ED25519_SIG_LEN];
	int rc;

	rc = sl_base_init();
	if (rc != SL_OK)
		return rc;
	if (crypto_sign_detached(new_sig, NULL, msg, len, sk) != 0)
		return sl_error_set(SL_EINTERNAL, "Ed25519 signing failed");
	memcpy(sig, new_sig, sizeof(new_sig));
	return SL_OK;
}

int sl_ed25519_verify(const uint8_t sig[SL_ED25519_SIG_LEN], const void *msg, size_t len,
                      const uint8_t pk[SL_ED25519_PK_LEN])
{
	int rc;

	rc = sl_base_init();
	if (rc != SL_OK)
		return rc;
	if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
		return sl_error_set(SL_EVERIFY, "Ed25519 signature does not verify");
	return SL_OK;
}
