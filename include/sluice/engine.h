/*
 * sluice engine layer: the tiered write path (DESIGN.md, layer 7).
 *
 * A write goes into L1 (memory) and into a local write-ahead log (WAL);
 * a batcher thread drains the WAL, in order, into L3 (a store namespace or
 * a PostgreSQL table) in batches. With an L2 (Redis), a writer thread also
 * sends it there, pipelined; reads go L1, L2, L3. A caller chooses how far
 * its write must get before the call returns (the acknowledgement level):
 *
 *   memory  after L1 and the WAL's buffer. A crash (kill -9, power) loses
 *           what the WAL had not synced yet: at most one group commit,
 *           a few milliseconds of writes.
 *   l2      after Redis answered the write. A cache-grade guarantee: the
 *           WAL record is written but not synced (as at `memory`), and
 *           Redis keeps what it keeps (its own persistence settings).
 *   local   (the default) after the record is fdatasync'd in the WAL;
 *           many writers share one sync. Only the loss of the WAL's disk
 *           loses it.
 *   l3      after the L3 transaction that holds it committed.
 *
 * Every write gets a version that only grows (per key, and in fact across
 * the engine); L3 never takes a version older than the one it holds, so a
 * replayed or late batch never moves a key backwards, and a delete is a
 * tombstone with its version, so nothing older brings the key back.
 * docs/architecture.md ("engine/") has the invariants and the crash
 * argument; docs/cli.md the HTTP API and the config.
 */
#ifndef SLUICE_ENGINE_H
#define SLUICE_ENGINE_H

#include "sluice/base.h"
#include "sluice/net.h"
#include "sluice/reconcile.h"
#include "sluice/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_ack { SL_ACK_MEMORY = 1, SL_ACK_LOCAL = 2, SL_ACK_L3 = 3, SL_ACK_L2 = 4 } sl_ack;

int sl_ack_parse(sl_ack *out, const char *s); /* "memory" | "l2" | "local" | "l3" */
const char *sl_ack_name(sl_ack ack);

/* The tiers a write goes to. L3 means through L1 and the WAL; L2 alone is
 * a cache write (not in the WAL nor L3: it lives as long as Redis keeps
 * it). A write to L3 only leaves a hole in L2, so L2 never answers an
 * older copy. */
#define SL_TIER_L2 0x2
#define SL_TIER_L3 0x4

int sl_tiers_parse(unsigned *out, const char *s); /* "l2" | "l3" | "l2,l3" */

typedef struct sl_submit_options {
	sl_ack ack;      /* default SL_ACK_LOCAL */
	unsigned tiers;  /* 0 (default): L2 and L3 with an L2, else L3 */
	uint64_t ttl_ms; /* 0: none (or L2's default); the L2 copy's, so it
	                    needs L2 among the tiers */
} sl_submit_options;

void sl_submit_options_init(sl_submit_options *o);

#define SL_ENGINE_VALUE_MAX (16u << 20) /* bytes of one value */

typedef enum sl_l3_type { SL_L3_STORE = 1, SL_L3_POSTGRESQL = 2, SL_L3_MYSQL = 3 } sl_l3_type;

typedef enum sl_pressure {
	SL_PRESSURE_NORMAL = 0,
	SL_PRESSURE_WARN = 1,
	SL_PRESSURE_THROTTLE = 2, /* a submit waits (bounded) before it goes on */
	SL_PRESSURE_REJECT = 3    /* a submit is refused with SL_EBUSY */
} sl_pressure;

const char *sl_pressure_name(sl_pressure p);

/* A circuit breaker's settings (one per backend: L3 now, L2 later). The
 * breaker remembers the outcomes of the last `window` calls and opens
 * when at least `min_calls` are remembered and at least `failure_ratio`
 * of them failed, or after `consecutive` failures in a row; open, it
 * refuses every call for open_ms, then lets `trial_calls` through at a
 * time (half-open) and closes after that many successes in a row.
 * docs/architecture.md ("circuit breakers") says what each backend does
 * while its breaker is open. */
typedef struct sl_breaker_config {
	unsigned window;      /* calls remembered, default 20 (at most 1024) */
	unsigned min_calls;   /* default 10 (<= window) */
	double failure_ratio; /* default 0.5 (0 < r <= 1) */
	unsigned consecutive; /* failures in a row that open it, default 5 */
	unsigned open_ms;     /* default 5000 */
	unsigned trial_calls; /* default 3 */
} sl_breaker_config;

typedef enum sl_breaker_state {
	SL_BREAKER_CLOSED = 0,
	SL_BREAKER_OPEN = 1,
	SL_BREAKER_HALF_OPEN = 2
} sl_breaker_state;

/* A named retry policy: exponential backoff with full jitter (the delay
 * before attempt n is random in [0, min(max_ms, base_ms * 2^(n-2))]),
 * bounded in attempts and in time. */
typedef struct sl_retry_policy {
	const char *name;
	unsigned base_ms;        /* the first delay's cap */
	unsigned max_ms;         /* no delay is longer */
	unsigned max_attempts;   /* 0: unbounded (only `drain`) */
	unsigned max_elapsed_ms; /* 0: unbounded; else no attempt starts after it */
} sl_retry_policy;

typedef struct sl_engine_config {
	/* the WAL */
	const char *wal_dir;        /* required; created if missing */
	uint64_t wal_segment_bytes; /* default 64 MiB */
	uint64_t wal_max_bytes;     /* default 1 GiB: past it a write is refused */
	/* L3 */
	sl_l3_type l3_type;         /* default SL_L3_STORE */
	const char *l3_dir;         /* store: the store's directory */
	const char *l3_namespace;   /* store: a mutable namespace, made if missing */
	const char *l3_url;         /* postgresql: a libpq URL; mysql: mysql://USER@HOST:PORT/DB */
	const char *l3_table;       /* postgresql, mysql: the table, made if missing */
	unsigned l3_timeout_ms;     /* every L3 call, default 10000 */
	unsigned l3_max_attempts;   /* a row L3 refuses is parked after this, default 5 */
	unsigned l3_ack_timeout_ms; /* an `l3` submit waits at most this, default 30000 */
	/* circuit breakers, one per backend (defaults: see sl_breaker_config) */
	sl_breaker_config l3_breaker;
	sl_breaker_config l2_breaker;
	/* retry policies (defaults in docs/cli.md, [retry.*]) */
	sl_retry_policy retry_startup;     /* opening L3 at sl_engine_open */
	sl_retry_policy retry_batch_write; /* a refused row; its max_attempts is
	                                      not read: l3_max_attempts is */
	sl_retry_policy retry_drain;       /* a batch L3 did not commit */
	sl_retry_policy retry_query;       /* a get L3 did not answer */
	/* L2, a Redis cache; none when l2_url is NULL */
	const char *l2_url;             /* redis://[[USER]:PASS@]HOST[:PORT][/DB] */
	const char *l2_prefix;          /* of every key, default "sluice:" */
	unsigned l2_timeout_ms;         /* every Redis command, default 250 */
	unsigned l2_connect_timeout_ms; /* default 1000 */
	uint64_t l2_default_ttl_ms;     /* writes without a TTL; 0 (default): none */
	size_t l2_queue_max;            /* writes queued for Redis, default 100000 */
	size_t l2_pipeline_max;         /* writes per pipeline, default 256 */
	/* L1 */
	uint64_t l1_budget_bytes; /* default 256 MiB */
	unsigned l1_shards;       /* default 64 (a power of two) */
	/* the batcher */
	size_t batch_items; /* default 1000 */
	size_t batch_bytes; /* default 1 MiB */
	unsigned batch_ms;  /* default 100 */
	/* the cuckoo filter over L3's live keys */
	uint64_t filter_capacity; /* default 1,000,000; grows when full */
	unsigned filter_fp_bits;  /* 12 or 16, default 16 */
	/* backpressure: fractions of the caps (see sl_engine_pressure) */
	double pressure_warn;      /* default 0.5 */
	double pressure_throttle;  /* default 0.75 */
	double pressure_reject;    /* default 0.95 */
	unsigned wal_max_age_ms;   /* 0 (default): age does not count */
	unsigned throttle_wait_ms; /* default 100 */
	size_t value_max;          /* default and most: SL_ENGINE_VALUE_MAX */
	/* the diff between engines: the memory its items of L3 may hold */
	uint64_t diff_max_bytes; /* default SL_ENGINE_DIFF_MAX_BYTES */
	sl_metrics *metrics;     /* may be NULL */
} sl_engine_config;

void sl_engine_config_init(sl_engine_config *c);

typedef struct sl_engine sl_engine;

/* Opens the WAL (replaying it: a torn tail is cut at the last good
 * record), L3 and the filter, and starts the batcher. */
int sl_engine_open(sl_engine **out, const sl_engine_config *c);
/* Stops taking writes, drains what L1 and the WAL hold into L3 while L3
 * answers (at most drain_ms; what is left stays in the WAL for the next
 * open), saves the filter and frees. No other call on e may be in
 * flight or made after (a server stops its handlers first). NULL ok. */
void sl_engine_close(sl_engine *e, unsigned drain_ms);

/* Returns once the write is acknowledged at o->ack (NULL: defaults), with
 * *version its version. SL_EINVAL for a bad key or option, SL_ETOOLARGE
 * past value_max, SL_EBUSY when backpressure rejects or the WAL is full,
 * SL_EIO when the WAL cannot write, SL_ETIMEOUT when an `l3` write is
 * durable locally but L3 did not take it in time. On any error the write
 * was not acknowledged; on SL_ETIMEOUT it will still reach L3. */
int sl_engine_submit(sl_engine *e, const char *key, size_t key_len, const void *value,
                     size_t value_len, const sl_submit_options *o, uint64_t *version);
int sl_engine_delete(sl_engine *e, const char *key, size_t key_len, const sl_submit_options *o,
                     uint64_t *version);
/* The newest value this engine holds for the key (its own writes at once,
 * flushed or not). SL_ENOTFOUND when absent or deleted; *version is then
 * the tombstone's version or 0. */
int sl_engine_get(sl_engine *e, const char *key, size_t key_len, sl_buf *value, uint64_t *version);

typedef struct sl_key_status {
	uint64_t version; /* the newest version, 0 if the engine never saw the key */
	int deleted;      /* that version is a delete */
	int l1;           /* L1 holds the key (value or tombstone) */
	int wal;          /* that version is in the WAL, not yet in L3 */
	int l2;           /* L2 holds that version */
	int l3;           /* L3 holds that version */
	int parked;       /* L3 refused it; see sl_engine_parked */
} sl_key_status;

int sl_engine_key_status(sl_engine *e, const char *key, size_t key_len, sl_key_status *out);

/* Waits until everything acknowledged before the call is in L3 or parked
 * (at most timeout_ms; SL_ETIMEOUT past it). */
int sl_engine_flush(sl_engine *e, unsigned timeout_ms);

#define SL_ENGINE_BACKENDS_MAX 4

typedef struct sl_engine_breaker_stats {
	char backend[8]; /* "l3", "l2" */
	sl_breaker_state state;
	uint64_t state_ms;  /* in that state for so long */
	uint64_t opened;    /* times it opened */
	uint64_t refused;   /* calls refused while open (and half-open, past the trials) */
	uint64_t failures;  /* calls that failed */
	uint64_t successes; /* calls that succeeded */
} sl_engine_breaker_stats;

typedef struct sl_engine_stats {
	sl_pressure pressure;
	double pressure_ratio; /* the highest of the fractions below */
	uint64_t l1_entries, l1_bytes, l1_dirty_bytes, l1_budget_bytes;
	uint64_t l1_pinned_bytes; /* dirty entries without their values: what L1
	                             cannot free until L3 takes them */
	uint64_t wal_bytes, wal_segments, wal_max_bytes, wal_oldest_age_ms;
	uint64_t wal_lsn;        /* last LSN written */
	uint64_t wal_synced_lsn; /* last LSN fdatasync'd */
	uint64_t l3_lsn;         /* last LSN L3 holds (or parked) */
	uint64_t l3_lag;         /* records acknowledged, not yet in L3 */
	int l3_up;               /* the last L3 call succeeded */
	char l3_error[256];      /* the last L3 error, "" if none */
	uint64_t parked;         /* rows L3 refused, kept in the WAL directory */
	uint64_t retrying;       /* rows L3 refused, to be tried again */
	int filter_trusted;
	uint64_t filter_keys;
	uint64_t submitted, deleted, rejected, l3_rows, l3_batches;
	uint64_t gets_l1, gets_l3, gets_filter_miss;
	/* L2 (all 0 without one) */
	int l2_enabled;
	int l2_up;      /* the last Redis call succeeded */
	int l2_trusted; /* reads use L2 (not while a new generation is due) */
	uint64_t l2_generation;
	uint64_t l2_hits, l2_misses, l2_skipped, l2_errors;
	uint64_t l2_writes, l2_dropped, l2_queued;
	char l2_error[200];
	uint64_t gets_refused; /* gets that needed L3 while its breaker was open */
	/* The circuit breaker of each backend in use: breakers[0] is L3's;
	 * an L2 tier adds its own entry. */
	size_t n_breakers;
	sl_engine_breaker_stats breakers[SL_ENGINE_BACKENDS_MAX];
} sl_engine_stats;

int sl_engine_stats_get(sl_engine *e, sl_engine_stats *out);

typedef struct sl_parked_row {
	const char *key;
	size_t key_len;
	uint64_t version;
	int deleted;
	uint64_t value_len;
	uint32_t attempts;
	const char *error;
} sl_parked_row;

typedef int (*sl_parked_fn)(void *ctx, const sl_parked_row *row);
/* Each parked row, oldest first. */
int sl_engine_parked(sl_engine *e, sl_parked_fn cb, void *ctx);

/* ------------------------------------------------ the diff between engines */

/* An engine's items for set reconciliation (docs/protocol.md, "Engine
 * reconciliation"): one per live key of L3, timestamp 0 and
 *   id = SHA-256(key || 0x00 || version as 8 bytes big-endian || SHA-256(value)),
 * so two engines hold the same item exactly when they hold the key with
 * the same version and value. */
void sl_engine_item_id(uint8_t out[SL_ITEM_ID_LEN], const char *key, size_t key_len,
                       uint64_t version, const uint8_t value_digest[32]);

/* Each item costs about 88 bytes plus its key while the set is held
 * (the item, its prefix sum, where its key is) and 40 more while it is
 * built; past diff_max_bytes a build is SL_ETOOLARGE. */
#define SL_ENGINE_DIFF_MAX_BYTES ((uint64_t)1 << 30)
#define SL_ENGINE_ITEM_COST      88 /* bytes held per item, besides its key */

/* The items of L3 as c configures it, read through a tier handle of the
 * set's own (opened at the first build: no WAL, no drain), built by
 * keyset paging over L3's live rows and kept until L3's write position
 * moves. Safe to share between threads: every call holds the set's
 * lock. Writes acknowledged but not yet drained into L3 are not in it. */
typedef struct sl_engine_items sl_engine_items;

int sl_engine_items_new(sl_engine_items **out, const sl_engine_config *c);
void sl_engine_items_free(sl_engine_items *it); /* NULL ok */
/* Builds the set if L3 moved since the last build; *count its items. */
int sl_engine_items_refresh(sl_engine_items *it, size_t *count);

typedef struct sl_engine_item_info {
	const char *key; /* valid until the next call on the set */
	size_t key_len;
	uint64_t version;
	uint8_t value_digest[32];
} sl_engine_item_info;

/* What id stands for, read back from L3 and checked to hash to id: its
 * key, version and value digest. SL_ENOTFOUND (no message) when the set
 * has no such id or L3 no longer holds that version and value. */
int sl_engine_items_find(sl_engine_items *it, const uint8_t id[SL_ITEM_ID_LEN],
                         sl_engine_item_info *out);

/* The answers of POST /api/v0/kv-reconcile and .../keys, against the set
 * brought up to date first: the responder's reply to one negentropy
 * message (frame_limit as in reconcile.h), and the keys frame for a keys
 * request, answering ids until it holds budget bytes (at least one). A
 * malformed message or request is SL_EINVAL/SL_ECORRUPT (SL_ETOOLARGE
 * past a cap) and nothing is read. */
int sl_engine_reconcile_answer(sl_engine_items *it, size_t frame_limit, const uint8_t *msg,
                               size_t len, sl_buf *out);
int sl_engine_keys_answer(sl_engine_items *it, const uint8_t *request, size_t len, size_t budget,
                          sl_buf *out);

/* The keys request is the items request of state reconciliation with no
 * flags (sl_wire_items_request); the keys frame answers each id found
 * with its key, version and value digest (docs/protocol.md, "Keys
 * request and frame"). Encoding: sl_wire_items_begin, sl_kv_keys_add per
 * found id, sl_wire_items_end (header and tail are the items frame's).
 * Decoding checks the form only and borrows from the frame. */
typedef struct sl_kv_key {
	const uint8_t *id; /* SL_ITEM_ID_LEN bytes */
	const char *key;
	size_t key_len;
	uint64_t version;
	const uint8_t *value_digest; /* 32 bytes */
} sl_kv_key;

typedef struct sl_kv_keys {
	size_t n_found;
	sl_kv_key *found; /* owned array */
	size_t n_missing;
	const uint8_t *missing; /* n_missing ids, borrowed */
	size_t remaining;
} sl_kv_keys;

int sl_kv_keys_add(sl_buf *out, const uint8_t id[SL_ITEM_ID_LEN], const char *key, size_t key_len,
                   uint64_t version, const uint8_t value_digest[32]);
int sl_kv_keys_decode(sl_kv_keys *out, const uint8_t *frame, size_t len);
void sl_kv_keys_free(sl_kv_keys *k); /* NULL ok */

/* The ids only on the peer, asked for with the keys request and read
 * from its keys frame, each answer checked to hash to its id: what
 * sl_state_diff needs to diff against an engine (sl_diff_peer_http_at
 * with the paths of the engine's API). */
extern const sl_diff_codec sl_engine_keys_codec;

/* `sluice engine diff`: reconcile the items of local (the initiator)
 * against the engine serving at peer ("HOST:PORT"), every request timing
 * out after timeout_ms (0: 30 s); the report as sl_state_diff's (no
 * pull). */
int sl_engine_diff(sl_engine_items *local, const char *peer, unsigned timeout_ms,
                   sl_diff_report *out);

/* ------------------------------------------------------------- HTTP API */

typedef struct sl_engine_http_options {
	const char *token; /* NULL: PUT and DELETE need none (loopback only) */
	size_t max_body;   /* default: the engine's value_max */
} sl_engine_http_options;

/* The handler of `sluice engine serve` (docs/cli.md, "Engine HTTP API"):
 * PUT/GET/DELETE /api/v0/kv/{key}, GET /api/v0/kv/{key}/status,
 * GET /api/v0/engine/status and POST /api/v0/kv-reconcile[/keys]. ctx is
 * an sl_engine_http. */
typedef struct sl_engine_http sl_engine_http;
int sl_engine_http_new(sl_engine_http **out, sl_engine *e, const sl_engine_http_options *o);
void sl_engine_http_free(sl_engine_http *h);
void sl_engine_http_handle(void *ctx, const sl_http_request *req, sl_http_response *resp);

#ifdef __cplusplus
}
#endif

#endif
