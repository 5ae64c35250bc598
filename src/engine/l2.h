/*
 * L2: a Redis cache between L1 and L3 (l2_redis.c has the design and its
 * invariants). Writes are queued and sent, pipelined and in order, by a
 * writer thread with its own connection; reads take one round trip on a
 * reader connection. Every call has a timeout and goes through the L2
 * circuit breaker; L2 is never the only copy of a write that also goes
 * to L3, so anything it loses costs a trip to L3, never data.
 */
#ifndef SLUICE_ENGINE_L2_H
#define SLUICE_ENGINE_L2_H

#include "engine/breaker.h"
#include "sluice/base.h"
#include "sluice/net.h"

typedef struct l2_cache l2_cache;

typedef struct l2_options {
	const char *url;             /* connect/server_url.h, sl_server_url_redis */
	const char *prefix;          /* of every key L2 writes */
	const char *state_dir;       /* where DIR/l2_state lives (the WAL's) */
	unsigned timeout_ms;         /* each command */
	unsigned connect_timeout_ms; /* each connection */
	uint64_t default_ttl_ms;     /* for writes without a TTL; 0: none */
	size_t queue_max;            /* queued writes; past it a write is dropped */
	size_t pipeline_max;         /* writes per pipeline */
	sl_breaker *breaker;         /* required */
	sl_metrics *metrics;         /* may be NULL */
} l2_options;

/* Opens DIR/l2_state and starts the writer; Redis need not be up. */
int l2_open(l2_cache **out, const l2_options *o);
/* Sends what is queued (at most drain_ms), records a clean stop, frees. */
void l2_close(l2_cache *c, unsigned drain_ms);

typedef enum l2_kind {
	L2_VALUE = 1,     /* the key's value at a version */
	L2_TOMBSTONE = 2, /* the key was deleted at a version */
	L2_HOLE = 3       /* a newer version went to L3 only: ask L3 */
} l2_kind;

typedef struct l2_write {
	l2_kind kind;
	const char *key;
	size_t key_len;
	uint64_t hash; /* l1_hash of the key */
	uint64_t version;
	const void *value; /* L2_VALUE only */
	size_t value_len;
	uint64_t ttl_ms; /* 0: the default */
	int fill;        /* a copy read from L3: only if Redis has none (NX) */
	int cache_only;  /* not in L3: L1 must not keep it past its TTL */
} l2_write;

/* A writer that waits for Redis's answer (acknowledgement level l2). */
typedef struct l2_waiter {
	int done; /* set by the writer, under the queue lock */
	int rc;
	char error[200];
} l2_waiter;

/* Queues the write (copied), in call order: callers hold the key's L1
 * shard lock, so a key's writes are queued in version order. SL_OK:
 * queued; SL_EIO: dropped (breaker open, queue full, closing), counted,
 * and L2 is no longer trusted until it starts a new generation. With a
 * waiter, the caller then calls l2_wait (whatever the return). A fill is
 * not queued while the breaker is not closed (SL_EIO, neither counted nor
 * distrusting L2: it would replace nothing), and one lost with a pipeline
 * is not counted either. */
int l2_enqueue(l2_cache *c, const l2_write *w, l2_waiter *waiter);
/* Waits until the writer answered the waiter's write: its rc. Bounded by
 * the writer's own timeouts. */
int l2_wait(l2_cache *c, l2_waiter *waiter);

typedef struct l2_hit {
	l2_kind kind; /* L2_VALUE or L2_TOMBSTONE */
	uint64_t version;
	int cache_only;
} l2_hit;

/* One round trip. SL_OK: a hit (value filled unless a tombstone);
 * SL_ENOTFOUND: a miss, or a copy L2 must not answer (a hole, a key with
 * a write still queued, a damaged value, L2 not trusted now); SL_EIO or
 * SL_ETIMEOUT: L2 failed (the breaker counts it); the caller asks L3. */
int l2_get(l2_cache *c, const char *key, size_t key_len, uint64_t hash, sl_buf *value, l2_hit *hit);

typedef struct l2_stats {
	int up;              /* the last call succeeded */
	int trusted;         /* reads use L2 */
	uint64_t generation; /* of the keys L2 reads and writes */
	uint64_t hits, misses, skipped, errors;
	uint64_t writes, dropped, queued;
	char error[200]; /* the last error, "" if none */
} l2_stats;

void l2_stats_get(l2_cache *c, l2_stats *out);

/* The value's encoding in Redis (exposed for the tests and the fuzz
 * target): flags (kind, cache-only), version (8 bytes big-endian),
 * SHA-256 of the flags, version and value, the value. Decode checks all
 * of it. */
int l2_encode(sl_buf *out, l2_kind kind, uint64_t version, int cache_only, const void *value,
              size_t value_len);
int l2_decode(const uint8_t *data, size_t len, l2_kind *kind, uint64_t *version, int *cache_only,
              const uint8_t **value, size_t *value_len);

#endif
