/*
 * sluice base layer: errors, allocation, capped buffers, codecs, SHA-256,
 * hex, Ed25519, clock and logging. Every other layer builds on these.
 *
 * Conventions (see STYLE.md): functions return SL_OK (0) or a negative
 * SL_E* code; the message and the upstream cause are kept per thread and
 * read with sl_error_last(). Output parameters come first and are set only
 * on success.
 */
#ifndef SLUICE_BASE_H
#define SLUICE_BASE_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

enum {
	SL_OK = 0,
	SL_EINVAL = -1,     /* bad argument or input */
	SL_ENOMEM = -2,     /* allocation failed */
	SL_ENOTFOUND = -3,  /* no such key, namespace, file */
	SL_EEXISTS = -4,    /* already exists */
	SL_ECORRUPT = -5,   /* stored or received data is malformed */
	SL_EVERIFY = -6,    /* a proof or signature does not verify */
	SL_ETOOLARGE = -7,  /* a cap was exceeded */
	SL_EIO = -8,        /* I/O or database error */
	SL_ETIMEOUT = -9,   /* a deadline passed */
	SL_ECONFLICT = -10, /* e.g. an immutable key set to another value */
	SL_EBUSY = -11,     /* resource locked by another writer */
	SL_EINTERNAL = -12, /* a bug: an invariant did not hold */
	SL_EAUTH = -13,     /* a remote refused our credentials or our clock */
	/* a backend is down and was not asked (its circuit breaker is open);
	 * try again later */
	SL_EUNAVAILABLE = -14
};

#define SL_ERROR_MSG_MAX   512
#define SL_ERROR_CAUSE_MAX 128

typedef struct sl_error {
	int code;                       /* SL_E* */
	char message[SL_ERROR_MSG_MAX]; /* human readable, no trailing newline */
	char cause[SL_ERROR_CAUSE_MAX]; /* upstream cause, e.g. "sqlite rc=11", or "" */
} sl_error;

/* Short fixed name of a code: "invalid argument", "not found", ... */
const char *sl_strerror(int code);

/* Record code and a printf-style message for this thread; returns code so
 * callers can write `return sl_error_set(SL_EINVAL, "bad key %s", k);`. */
int sl_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sl_error_setv(int code, const char *fmt, va_list ap);

/* Same, also recording the upstream cause ("sqlite rc=11 (database disk
 * image is malformed)", "errno=28 (No space left on device)"). */
int sl_error_set_cause(int code, const char *cause, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prefix the current message with context: "open store: <old message>".
 * Keeps code and cause; returns the current code. */
int sl_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last error recorded on this thread (code SL_OK and "" if none). */
const sl_error *sl_error_last(void);
void sl_error_clear(void);

/* ------------------------------------------------------------ allocation */

/* Allocation wrappers used by the whole library so tests can inject
 * failures. On failure they record SL_ENOMEM and return NULL. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
/* A new string formatted as by printf. */
char *sl_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sl_free(void *p);

/* Room for one more item in a growing array: `items` holds *cap items of
 * `size` bytes, n of them in use. When n < *cap returns items as it is;
 * else reallocates to twice *cap (`first` items when *cap is 0), updates
 * *cap and returns the new block. NULL (SL_ENOMEM) when out of memory or
 * when the size would overflow; items and *cap are unchanged then. */
void *sl_grow(void *items, size_t *cap, size_t n, size_t size, size_t first);

/* Test hook: the next `after` allocations succeed, the one after fails
 * (and every one after that while `sticky`). -1 disables injection. */
void sl_alloc_fail_after(long after, int sticky);

/* --------------------------------------------------------------- buffers */

/* A growable byte buffer with a hard cap. Appending past `max` fails with
 * SL_ETOOLARGE and leaves the buffer unchanged. The data is always followed
 * by a NUL byte (not counted in len) once anything was appended, so text
 * can be used as a C string. */
typedef struct sl_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;
} sl_buf;

#define SL_BUF_INIT(max_)                                                                          \
	{                                                                                          \
		NULL, 0, 0, (max_)                                                                 \
	}

void sl_buf_init(sl_buf *b, size_t max);
int sl_buf_reserve(sl_buf *b, size_t extra);
int sl_buf_append(sl_buf *b, const void *p, size_t n);
int sl_buf_append_byte(sl_buf *b, uint8_t byte);
int sl_buf_append_str(sl_buf *b, const char *s);
int sl_buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sl_buf_set(sl_buf *b, const void *p, size_t n); /* reset then append */
void sl_buf_reset(sl_buf *b);                       /* len = 0, keeps memory */
void sl_buf_free(sl_buf *b);                        /* frees memory, keeps max */

/* ---------------------------------------------------------------- codecs */

#define SL_VARINT_MAX 10

/* Unsigned LEB128. put returns bytes written (1..10). */
size_t sl_varint_put(uint8_t out[SL_VARINT_MAX], uint64_t v);
size_t sl_varint_len(uint64_t v);
int sl_buf_append_varint(sl_buf *b, uint64_t v);

void sl_be64_put(uint8_t out[8], uint64_t v);
uint64_t sl_be64_get(const uint8_t in[8]);
void sl_be32_put(uint8_t out[4], uint32_t v);
uint32_t sl_be32_get(const uint8_t in[4]);
int sl_buf_append_be64(sl_buf *b, uint64_t v);
int sl_buf_append_be32(sl_buf *b, uint32_t v);

/* A bounds-checked reader over a byte range. Every get fails with
 * SL_ECORRUPT (message says what was expected at which offset) when the
 * input is short, and leaves the reader unchanged on failure. Varints must
 * be canonical (no redundant trailing zero groups, at most 10 bytes, no
 * overflow past 64 bits). */
typedef struct sl_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
} sl_reader;

void sl_reader_init(sl_reader *r, const void *data, size_t len);
size_t sl_reader_remaining(const sl_reader *r);
int sl_reader_u8(sl_reader *r, uint8_t *out);
int sl_reader_be32(sl_reader *r, uint32_t *out);
int sl_reader_be64(sl_reader *r, uint64_t *out);
int sl_reader_varint(sl_reader *r, uint64_t *out);
/* Borrow n bytes (no copy). */
int sl_reader_bytes(sl_reader *r, size_t n, const uint8_t **out);
/* SL_ECORRUPT unless every byte was consumed. */
int sl_reader_expect_end(const sl_reader *r);

/* --------------------------------------------------------------- hashing */

#define SL_DIGEST_LEN 32

typedef struct sl_digest {
	uint8_t bytes[SL_DIGEST_LEN];
} sl_digest;

/* A borrowed byte range. */
typedef struct sl_bytes {
	const uint8_t *data;
	size_t len;
} sl_bytes;

/* SHA-256 through OpenSSL EVP. These cannot fail short of a broken
 * libcrypto, which aborts with a message (it is not a recoverable state). */
void sl_sha256(sl_digest *out, const void *data, size_t len);
/* Hash the concatenation of n parts. */
void sl_sha256_parts(sl_digest *out, const sl_bytes *parts, size_t n);

/* Incremental hashing for large inputs. */
typedef struct sl_sha256_ctx sl_sha256_ctx;
int sl_sha256_ctx_new(sl_sha256_ctx **out);
void sl_sha256_update(sl_sha256_ctx *c, const void *data, size_t len);
void sl_sha256_final(sl_sha256_ctx *c, sl_digest *out); /* and resets c */
void sl_sha256_ctx_free(sl_sha256_ctx *c);

int sl_digest_eq(const sl_digest *a, const sl_digest *b);

/* ------------------------------------------------------------------- hex */

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void sl_hex_encode(char *out, const void *data, size_t n);
/* Decode exactly hex_len characters (even, [0-9a-fA-F]) into out (cap
 * bytes). SL_EINVAL on bad characters or odd length, SL_ETOOLARGE when the
 * result exceeds cap. */
int sl_hex_decode(uint8_t *out, size_t cap, size_t *out_len, const char *hex, size_t hex_len);
/* Decode exactly 64 hex characters into a digest. */
int sl_digest_from_hex(sl_digest *out, const char *hex);
/* 65-byte buffer for a digest in hex. */
typedef struct sl_digest_hex {
	char s[2 * SL_DIGEST_LEN + 1];
} sl_digest_hex;
sl_digest_hex sl_digest_to_hex(const sl_digest *d);

/* --------------------------------------------------------------- Ed25519 */

#define SL_ED25519_PK_LEN  32
#define SL_ED25519_SK_LEN  64
#define SL_ED25519_SIG_LEN 64

/* libsodium; sl_base_init() must have been called once. */
int sl_base_init(void);
int sl_ed25519_keypair(uint8_t pk[SL_ED25519_PK_LEN], uint8_t sk[SL_ED25519_SK_LEN]);
/* n bytes from the system's secure random source (for salts and nonces). */
int sl_random_bytes(void *out, size_t n);
int sl_ed25519_sign(uint8_t sig[SL_ED25519_SIG_LEN], const void *msg, size_t len,
                    const uint8_t sk[SL_ED25519_SK_LEN]);
/* SL_OK or SL_EVERIFY. */
int sl_ed25519_verify(const uint8_t sig[SL_ED25519_SIG_LEN], const void *msg, size_t len,
                      const uint8_t pk[SL_ED25519_PK_LEN]);

/* ----------------------------------------------------------------- clock */

uint64_t sl_clock_mono_ns(void); /* monotonic, for durations */
/* A fast non-cryptographic random number (xorshift64) for jitter and test
 * data; *state must start non-zero. Never for keys or secrets. */
uint64_t sl_xorshift64(uint64_t *state);
/* A retry delay: base_ms doubled `doublings` times, capped at max_ms, with
 * jitter drawn from *rng into [d/2, d) (a d below 2 is returned as is). */
uint64_t sl_backoff_ms(uint64_t base_ms, uint64_t max_ms, unsigned doublings, uint64_t *rng);
uint64_t sl_clock_wall_ms(void); /* Unix epoch milliseconds */
void sl_sleep_ms(uint64_t ms);
/* pthread_cond_timedwait for at most ms from now (m held); a wake-up, a
 * spurious one or the time passing all return. */
void sl_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, uint64_t ms);
/* "2026-11-21T08:47:20.123Z" into out (at least 25 bytes). */
void sl_clock_format_rfc3339(char *out, size_t cap, uint64_t wall_ms);
/* SL_OK when text is a strict RFC 3339 date-time (2026-11-21T10:00:00,
 * optional fraction, then Z or +hh:mm), else SL_EINVAL naming it. */
int sl_clock_rfc3339_check(const char *text);

/* ---------------------------------------------------------------- CRC32C */

/* CRC-32C (the polynomial of iSCSI and ext4): the checksum of the engine's
 * WAL records. crc is 0 to start; pass the result back in to continue.
 * Uses the SSE4.2 instruction when the CPU has it. */
uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len);

/* --------------------------------------------------------- cuckoo filter */

/* A cuckoo filter ("Cuckoo Filter: Practically Better Than Bloom", 2014): 4-slot buckets,
 * fingerprints of 12 or 16 bits, partial-key cuckoo hashing. contains never answers 0 for a key
 * added and not removed (no false negatives); it answers 1 for an absent key with a probability of
 * about 8 / 2^fp_bits at full load (sl_cuckoo_fp_bound). Adding the same key twice stores two
 * fingerprints; remove takes one away, so a caller adds a key once per live copy. Not thread safe:
 * the caller locks. */
typedef struct sl_cuckoo sl_cuckoo;

/* capacity: keys it must hold (rounded up to a power-of-two bucket count
 * at 95% load); fp_bits: 12 or 16. */
int sl_cuckoo_new(sl_cuckoo **out, uint64_t capacity, unsigned fp_bits);
void sl_cuckoo_free(sl_cuckoo *f); /* NULL ok */
/* SL_OK, or SL_ETOOLARGE when the filter is full (the key is not added and
 * the filter is unchanged: no other key is lost). */
int sl_cuckoo_add(sl_cuckoo *f, const void *key, size_t len);
int sl_cuckoo_contains(const sl_cuckoo *f, const void *key, size_t len); /* 1 maybe, 0 no */
/* 1 when a fingerprint of the key was removed, 0 when none was there. */
int sl_cuckoo_remove(sl_cuckoo *f, const void *key, size_t len);
uint64_t sl_cuckoo_count(const sl_cuckoo *f);
uint64_t sl_cuckoo_capacity(const sl_cuckoo *f); /* slots */
double sl_cuckoo_fp_bound(const sl_cuckoo *f);   /* 2 * 4 / 2^fp_bits */
/* A snapshot with a checksum (docs/architecture.md has the format), and
 * back. load refuses anything malformed with SL_ECORRUPT. */
int sl_cuckoo_save(const sl_cuckoo *f, sl_buf *out);
int sl_cuckoo_load(sl_cuckoo **out, const uint8_t *data, size_t len);

/* --------------------------------------------------------------- logging */

typedef enum sl_log_level {
	SL_LOG_DEBUG = 0,
	SL_LOG_INFO = 1,
	SL_LOG_WARN = 2,
	SL_LOG_ERROR = 3,
	SL_LOG_OFF = 4
} sl_log_level;

/* Default level: info, or SLUICE_LOG=debug|info|warn|error|off. Output goes
 * to stderr unless set. */
void sl_log_set_level(sl_log_level level);
sl_log_level sl_log_get_level(void);
int sl_log_level_parse(const char *s, sl_log_level *out);
void sl_log_set_output(FILE *f);

/* One line: `ts=<rfc3339> level=<lvl> msg="<msg>" <fields>`. `fields` is a
 * printf format that produces space-separated key=value pairs (may be
 * NULL). Use sl_log_quote for values that may hold spaces or quotes. */
void sl_log(sl_log_level level, const char *msg, const char *fields, ...)
        __attribute__((format(printf, 3, 4)));

/* Quote s for a key=value field if it needs it ("a b" -> "\"a b\""),
 * writing at most cap bytes (truncated with "..." when longer). */
const char *sl_log_quote(char *out, size_t cap, const char *s);

#ifdef __cplusplus
}
#endif
#endif
