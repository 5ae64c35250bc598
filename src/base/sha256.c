/*
 * SHA-256 through OpenSSL 3's EVP interface. The EVP_MD is fetched once per
 * process (explicit fetch avoids the implicit provider lookup that
 * EVP_sha256() costs on every init), and each thread keeps one reusable
 * EVP_MD_CTX for the one-shot functions, since the MMR hashes many small
 * inputs. The per-thread context is freed by a pthread key destructor when
 * the thread exits. libcrypto failures here mean a broken installation and
 * abort with a message; they are not states a caller can recover from.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "sluice/base.h"

struct sl_sha256_ctx {
	EVP_MD_CTX *md_ctx;
};

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static pthread_key_t ctx_key;
static _Thread_local EVP_MD_CTX *thread_ctx;

static void die(const char *what)
{
	fprintf(stderr, "sluice: fatal: libcrypto %s failed:\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

static void free_thread_ctx(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void fetch_md(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md)
		die("EVP_MD_fetch(SHA256)");
	if (pthread_key_create(&ctx_key, free_thread_ctx) != 0)
		die("pthread_key_create for the SHA-256 context");
}

static const EVP_MD *md(void)
{
	if (pthread_once(&md_once, fetch_md) != 0)
		die("pthread_once for SHA-256");
	return sha256_md;
}

/* This thread's context, initialised for a new digest. */
static EVP_MD_CTX *begin(void)
{
	const EVP_MD *sha = md();

	if (!thread_ctx) {
		thread_ctx = EVP_MD_CTX_new();
		if (!thread_ctx)
			die("EVP_MD_CTX_new");
		if (pthread_setspecific(ctx_key, thread_ctx) != 0)
			die("pthread_setspecific for the SHA-256 context");
	}
	if (EVP_DigestInit_ex(thread_ctx, sha, NULL) != 1)
		die("EVP_DigestInit_ex");
	return thread_ctx;
}

static void update(EVP_MD_CTX *ctx, const void *data, size_t len)
{
	if (len == 0)
		return;
	if (EVP_DigestUpdate(ctx, data, len) != 1)
		die("EVP_DigestUpdate");
}

static void finish(EVP_MD_CTX *ctx, sl_digest *out)
{
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(ctx, out->bytes, &n) != 1 || n != SL_DIGEST_LEN)
		die("EVP_DigestFinal_ex");
}

void sl_sha256(sl_digest *out, const void *data, size_t len)
{
	EVP_MD_CTX *ctx = begin();
	update(ctx, data, len);
	finish(ctx, out);
}

void sl_sha256_parts(sl_digest *out, const sl_bytes *parts, size_t n)
{
	EVP_MD_CTX *ctx = begin();
	for (size_t i = 0; i < n; i++)
		update(ctx, parts[i].data, parts[i].len);
	finish(ctx, out);
}

int sl_sha256_ctx_new(sl_sha256_ctx **out)
{
	sl_sha256_ctx *c = NULL;
	int rc = SL_OK;

	c = sl_calloc(1, sizeof(*c));
	if (!c) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	c->md_ctx = EVP_MD_CTX_new();
	if (!c->md_ctx) {
		rc = sl_error_set(SL_ENOMEM, "out of memory creating a SHA-256 context");
		goto cleanup;
	}
	if (EVP_DigestInit_ex(c->md_ctx, md(), NULL) != 1)
		die("EVP_DigestInit_ex");
	*out = c;
	c = NULL;
cleanup:
	sl_sha256_ctx_free(c);
	return rc;
}

void sl_sha256_update(sl_sha256_ctx *c, const void *data, size_t len)
{
	update(c->md_ctx, data, len);
}

void sl_sha256_final(sl_sha256_ctx *c, sl_digest *out)
{
	finish(c->md_ctx, out);
	if (EVP_DigestInit_ex(c->md_ctx, md(), NULL) != 1)
		die("EVP_DigestInit_ex");
}

void sl_sha256_ctx_free(sl_sha256_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md_ctx);
	sl_free(c);
}

int sl_digest_eq(const sl_digest *a, const sl_digest *b)
{
	return CRYPTO_memcmp(a->bytes, b->bytes, SL_DIGEST_LEN) == 0;
}
