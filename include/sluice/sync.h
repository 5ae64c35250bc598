/*
 * sluice sync layer: serving a store's namespaces over HTTP (/api/v0) and
 * a client that keeps a local namespace in step with a server's,
 * accepting nothing it has not verified against a root it trusts.
 * Endpoints and frames: docs/protocol.md ("Sync"); the client's design and
 * invariants: src/sync/client.c.
 */
#ifndef SLUICE_SYNC_H
#define SLUICE_SYNC_H

#include <signal.h>

#include "sluice/net.h"
#include "sluice/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* -------------------------------------------------------------- node key */

/* The node's Ed25519 key, kept in DIR/node.key (the 64-byte secret key in
 * hex, mode 0600) and created there on first use. A file that is not a
 * key is SL_ECORRUPT, never replaced. */
typedef struct sl_node_key {
	uint8_t pk[SL_ED25519_PK_LEN];
	uint8_t sk[SL_ED25519_SK_LEN];
} sl_node_key;

int sl_node_key_load(sl_node_key *out, const char *dir, int create);

/* ---------------------------------------------------------------- targets */

/* A namespace's latest commit as a server announces it. */
typedef struct sl_signed_target {
	char ns[SL_NS_NAME_MAX + 1];
	sl_ns_kind kind;
	sl_target target;
	uint8_t node[SL_ED25519_PK_LEN]; /* the signer */
	uint8_t signature[SL_ED25519_SIG_LEN];
	int has_signature;
} sl_signed_target;

/* The signed message (docs/protocol.md, "Targets"):
 * "sluice/target/v1" || u8 ns_len || ns || be64 size || root || be64 floor */
int sl_target_message(sl_buf *out, const char *ns, const sl_target *t);
int sl_target_sign(sl_signed_target *t, const sl_node_key *key);
/* SL_OK, or SL_EVERIFY if unsigned, signed by another key than trusted_pk
 * (when not NULL), or the signature does not verify. */
int sl_target_verify(const sl_signed_target *t, const uint8_t *trusted_pk);
/* JSON: {"ns","kind","size","root","floor","node","signature"}. */
int sl_target_to_json(const sl_signed_target *t, sl_buf *out);
/* SL_ECORRUPT naming the field for anything malformed. */
int sl_target_from_json(sl_signed_target *out, const char *json, size_t len);

/* ------------------------------------------------ checking a node's answers */

/* What every reader of a node's log checks before using an answer: the
 * sync client and the node event source (src/sync/answer_check.c). */

/* A decoded ops frame answering a request for [start, +max) against
 * target t: it starts at start, is made against t's size, carries 1..max
 * operations, its range proof verifies against t's root, and every set or
 * update value hashes to its operation's digest. On success pinned and
 * n_pinned (both may be NULL) receive the pinned nodes for start that the
 * verified proof fixes. SL_EVERIFY saying what failed. */
int sl_sync_check_ops(const sl_wire_ops *ops, uint64_t start, uint64_t max, const sl_target *t,
                      sl_digest pinned[SL_MMR_MAX_PEAKS], size_t *n_pinned);

/* A consistency proof (its binary encoding, as GET .../consistency
 * answers) that the log of old_size operations with root old_root is a
 * prefix of the log of target `to`. SL_EVERIFY, saying the server rewrote
 * its history, when it is not. */
int sl_sync_check_consistency(const uint8_t *proof, size_t len, uint64_t old_size,
                              const sl_digest *old_root, const sl_target *to);

/* ----------------------------------------------------------------- server */

/* An ops frame holds frame_budget bytes of operations, but always at least
 * one, so a frame may pass its budget by one operation whose value is as
 * large as a value may be. Servers refuse a budget above
 * SL_SYNC_FRAME_BUDGET_MAX; clients accept a frame up to SL_SYNC_FRAME_MAX. */
#define SL_SYNC_FRAME_BUDGET_MAX ((size_t)64 << 20)
#define SL_SYNC_FRAME_MAX        (SL_SYNC_FRAME_BUDGET_MAX + (size_t)SL_VALUE_MAX + ((size_t)64 << 10))

typedef struct sl_sync_server_options {
	const char *store_dir;   /* required */
	const char *listen_addr; /* default "127.0.0.1" */
	uint16_t port;           /* 0: any free port */
	unsigned threads;        /* default 4 */
	const char *token;       /* bearer token for commits; NULL: commits refused */
	const sl_node_key *key;  /* required: signs targets */
	sl_metrics *metrics;     /* may be NULL */
	size_t frame_budget;     /* bytes of operations per ops frame (and of entries
	                            and values per dag page), default 16 MiB,
	                            at most SL_SYNC_FRAME_BUDGET_MAX */
	unsigned timeout_s;      /* idle connection timeout, default 30 */
	sl_http_limits limits;   /* per client (sl_http_limits_init's defaults) */
} sl_sync_server_options;

void sl_sync_server_options_init(sl_sync_server_options *o);

typedef struct sl_sync_server sl_sync_server;

int sl_sync_server_start(sl_sync_server **out, const sl_sync_server_options *o);
uint16_t sl_sync_server_port(const sl_sync_server *s);
void sl_sync_server_stop(sl_sync_server *s); /* NULL ok */

/* ------------------------------------------------- state reconciliation */

/* What a node answers for its namespace ns (docs/protocol.md, "Set
 * reconciliation"), as functions, so any transport can carry the bytes:
 * the responder's answer to one negentropy message (frame_limit as in
 * reconcile.h), and the items frame for an items request, holding at
 * least one answer and stopping once it holds `budget` bytes. Each reads
 * one snapshot of the namespace. A malformed message or request is
 * SL_EINVAL/SL_ECORRUPT (SL_ETOOLARGE past a cap) and nothing is read. */
int sl_state_reconcile_answer(sl_store *s, const char *ns, size_t frame_limit, const uint8_t *msg,
                              size_t len, sl_buf *out);
int sl_state_items_answer(sl_store *s, const char *ns, const uint8_t *request, size_t len,
                          size_t budget, sl_buf *out);

/* The largest reconciliation message a node takes or sends. */
#define SL_STATE_FRAME_MAX ((size_t)1 << 20)
/* The bytes of items a node puts in one items frame (at least one item). */
#define SL_STATE_ITEMS_BUDGET ((size_t)16 << 20)

/* The other side of a diff: a node over HTTP, or a namespace of a store
 * open here (another handle than the one being compared). */
typedef struct sl_diff_peer sl_diff_peer;

/* server: "HOST:PORT" or "http://HOST:PORT"; every request times out
 * after timeout_ms (0: 30 s) and is tried up to 3 times when the network
 * or the server fails (5xx). */
int sl_diff_peer_http(sl_diff_peer **out, const char *server, const char *ns, unsigned timeout_ms);
int sl_diff_peer_store(sl_diff_peer **out, sl_store *s, const char *ns);
void sl_diff_peer_free(sl_diff_peer *p); /* NULL ok */
/* Where it is, for messages: "127.0.0.1:8080 namespace x" or similar. */
const char *sl_diff_peer_name(const sl_diff_peer *p);

/* An answer about an id only on the peer, which the codec checked to hash
 * to it; key and value borrow from the frame. */
typedef struct sl_diff_answer {
	const uint8_t *id;
	const char *key;
	size_t key_len;
	const uint8_t *value; /* with values (a pull) only */
	size_t value_len;
} sl_diff_answer;

typedef struct sl_diff_answers {
	sl_diff_answer *found; /* owned (sl_free) */
	size_t n_found;
	const uint8_t *missing; /* n_missing ids, borrowed from the frame */
	size_t n_missing;
	size_t remaining; /* the last ids asked for, left for another request */
} sl_diff_answers;

/* How the ids only on the peer are asked for and its answer read: a
 * node's items frames (docs/protocol.md, "Items request and frame"), or
 * another kind's. decode checks the frame's form and that every answer
 * hashes to its id (with values: that the value hashes to its digest),
 * SL_ECORRUPT or SL_EVERIFY saying what failed; whether each answer was
 * asked for is the diff's to check. */
typedef struct sl_diff_codec {
	int (*request)(sl_buf *out, int values, const uint8_t (*ids)[SL_ITEM_ID_LEN], size_t n);
	int (*decode)(sl_diff_answers *out, int values, const uint8_t *frame, size_t len);
} sl_diff_codec;

/* A peer over HTTP that answers negentropy messages at reconcile_path and
 * the codec's requests at items_path (paths from the root, e.g.
 * "/api/v0/kv-reconcile"); otherwise like sl_diff_peer_http. */
int sl_diff_peer_http_at(sl_diff_peer **out, const char *server, const char *reconcile_path,
                         const char *items_path, const sl_diff_codec *codec, unsigned timeout_ms);

/* The local side of a diff when it is not a store namespace: a set of
 * items and the key each stands for. */
typedef struct sl_diff_local {
	sl_item_set set;
	/* The key of an item of set; *key stays valid until the next call. */
	int (*key_of)(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], const char **key,
	              size_t *key_len);
	void *ctx;
} sl_diff_local;

typedef struct sl_diff_options {
	sl_store *store; /* the local side */
	const char *ns;
	const sl_diff_local *local; /* instead of store and ns (no pull then) */
	sl_diff_peer *peer;
	/* Copy what the peer has and the local namespace lacks, and in a
	 * mutable namespace the peer's value of keys that differ, as one
	 * local commit. In an immutable namespace a key that differs is a
	 * conflict and is left as it is. */
	int pull;
	/* With local: the peer's items only there are asked for with their
	 * values, and each is passed here once it was checked to hash to its
	 * id (a non-zero return stops the diff and is returned). */
	int (*on_value)(void *ctx, const char *key, size_t key_len, const uint8_t *value,
	                size_t value_len);
	void *on_value_ctx;
} sl_diff_options;

/* Keys, each copied (sl_malloc, NUL-terminated), sorted bytewise and
 * distinct within a list. */
typedef struct sl_diff_key {
	char *key;
	size_t len;
} sl_diff_key;

typedef struct sl_diff_keys {
	sl_diff_key *items;
	size_t n, cap;
} sl_diff_keys;

typedef struct sl_diff_report {
	sl_diff_keys only_local, only_remote, different;
	sl_diff_keys conflicts; /* pull in an immutable namespace: left as they are */
	uint64_t pulled;        /* keys the pull wrote */
	uint64_t vanished;      /* the peer's items gone between reconciling and reading */
	uint64_t round_trips;   /* exchanges with the peer: reconciliation and item reads */
	uint64_t bytes_sent, bytes_received;
	sl_target target; /* the local namespace after the pull, or as compared */
} sl_diff_report;

/* Find how the local namespace and the peer's differ, with the local side
 * as initiator: every item the peer reports is checked against its id
 * (SL_EVERIFY if it does not hash to it), and the result is exact. */
int sl_state_diff(const sl_diff_options *o, sl_diff_report *out);
void sl_diff_report_free(sl_diff_report *r);

/* ----------------------------------------------------------------- client */

typedef struct sl_sync_client_options {
	const char *server;          /* "HOST:PORT" or "http://HOST:PORT" */
	const char *local_addr;      /* send from this local IPv4 address; NULL: any */
	const char *ns;              /* the server's namespace */
	const char *local_ns;        /* the local one; default ns */
	sl_store *store;             /* the local store */
	uint32_t batch_size;         /* operations per request, at most SL_WIRE_MAX_OPS;
	                                0 (the default): adaptive (sync/client.c) */
	unsigned max_outstanding;    /* requests in flight, default 4 */
	uint64_t target_interval_ms; /* poll for a new target, default 1000 */
	uint64_t sync_interval_ms;   /* wait between syncs, default 10000 */
	int once;                    /* stop after one completed sync */
	const uint8_t *trust_key;    /* NULL: targets need no signature */
	unsigned request_timeout_ms; /* default 10000 */
	uint64_t retry_base_ms;      /* first backoff, default 100 */
	uint64_t retry_max_ms;       /* backoff cap, default 5000 */
	sl_metrics *metrics;         /* may be NULL */
	volatile sig_atomic_t *stop; /* non-zero: finish what is verified and return */
} sl_sync_client_options;

void sl_sync_client_options_init(sl_sync_client_options *o);

/* Sync until *stop (SL_OK), or with once until one sync completed (SL_OK).
 * Network errors, timeouts and batches that fail verification are retried
 * with backoff and never returned. A target that fails its signature
 * check, or a server whose history does not extend what this client
 * verified, is SL_EVERIFY with once; otherwise it is logged and retried
 * after sync_interval_ms, and nothing from that server is applied. */
int sl_sync_client_run(const sl_sync_client_options *o);

#ifdef __cplusplus
}
#endif
#endif
