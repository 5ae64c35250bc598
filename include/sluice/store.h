/*
 * sluice store layer: a node's database on SQLite (WAL mode).
 *
 * A store is a directory holding `sluice.db`. It has namespaces, each with
 * an operation log authenticated by an MMR (merkle/) and a current-state
 * index; values over 64 bytes are kept once per SHA-256 digest in a blob
 * table, smaller ones with the operation that set them. Writes go through
 * a batch that is applied as one commit in one SQLite transaction; readers
 * only ever see whole commits. See src/store/store.c for the invariants.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include "sluice/base.h"
#include "sluice/mmr.h"
#include "sluice/reconcile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------- keys */

#define SL_KEY_MAX     1024
#define SL_NS_NAME_MAX 64
#define SL_VALUE_MAX   (UINT64_C(1) << 30) /* 1 GiB per value */

/* A key is a UTF-8 path of '/'-separated segments, 1..1024 bytes, with no
 * empty, "." or ".." segment and no NUL or control byte (< 0x20, 0x7f).
 * SL_OK or SL_EINVAL with a message naming the problem. */
int sl_key_validate(const char *key, size_t len);
/* Namespace names: 1..64 bytes of [A-Za-z0-9_.-], not starting with '.'. */
int sl_ns_name_validate(const char *name);

/* ------------------------------------------------------------- operations */

typedef enum sl_op_type {
	SL_OP_SET = 1,    /* immutable namespace: key -> value digest, once */
	SL_OP_UPDATE = 2, /* mutable namespace: key -> value digest */
	SL_OP_DELETE = 3, /* mutable namespace: remove key */
	SL_OP_COMMIT = 4  /* end of a commit; carries the inactivity floor */
} sl_op_type;

/* A decoded operation. `key` borrows from the encoded element. */
typedef struct sl_op {
	sl_op_type type;
	const char *key; /* SET, UPDATE, DELETE; not NUL-terminated */
	size_t key_len;
	uint64_t value_len; /* SET, UPDATE */
	sl_digest digest;   /* SET, UPDATE: SHA-256 of the value */
	uint64_t floor;     /* COMMIT */
} sl_op;

/* The element the MMR leaf hashes (docs/protocol.md, "Operations"). */
int sl_op_encode(const sl_op *op, sl_buf *out);
/* SL_ECORRUPT for anything that is not exactly one valid operation. */
int sl_op_decode(sl_op *out, const uint8_t *element, size_t len);
const char *sl_op_type_name(sl_op_type t); /* "set", "update", ... */

/* ------------------------------------------------------------- namespaces */

/* immutable and mutable namespaces keep an operation log; dag ones keep
 * signed entries from many writers (sluice/dag.h). */
typedef enum sl_ns_kind { SL_NS_IMMUTABLE = 1, SL_NS_MUTABLE = 2, SL_NS_DAG = 3 } sl_ns_kind;

int sl_ns_kind_parse(sl_ns_kind *out, const char *s); /* "immutable"|"mutable"|"dag" */
const char *sl_ns_kind_name(sl_ns_kind kind);

/* A namespace at a commit. `size` counts operations. */
typedef struct sl_target {
	uint64_t size;
	sl_digest root;
	uint64_t floor;
} sl_target;

typedef struct sl_ns_info {
	char name[SL_NS_NAME_MAX + 1];
	sl_ns_kind kind;
	sl_target target; /* dag: size counts entries, root is the namespace id */
	uint64_t pruned;  /* operations below this location were pruned */
	uint64_t keys;    /* live keys in the current state */
} sl_ns_info;

/* ------------------------------------------------------------------ store */

typedef struct sl_store sl_store;

#define SL_STORE_CREATE   0x1 /* create the directory and database if missing */
#define SL_STORE_READONLY 0x2 /* open for reading only */

typedef struct sl_store_options {
	unsigned flags;
	/* 1: fsync every commit (SQLite synchronous=FULL; survives power loss).
	 * 0: WAL with synchronous=NORMAL (survives a process crash; the last
	 * commits can be lost on power loss). Default 1. */
	int durable;
	/* Milliseconds to wait for another writer's lock. Default 5000. */
	int busy_timeout_ms;
	/* The state table is brought up to date once this many operations
	 * have been appended since it last was (default 262144). Until then
	 * each handle holds their effect in memory, rebuilt from the log, so
	 * a commit only appends. Larger: fewer, longer flushes and more work
	 * and memory to open a namespace. */
	uint64_t state_flush_ops;
} sl_store_options;

void sl_store_options_init(sl_store_options *o);

/* Opens DIR/sluice.db. Without SL_STORE_CREATE, a missing store is
 * SL_ENOTFOUND; a file that is not a sluice store, or is damaged, is
 * SL_ECORRUPT. */
int sl_store_open(sl_store **out, const char *dir, const sl_store_options *opts);
void sl_store_free(sl_store *s);              /* closes; NULL ok */
const char *sl_store_path(const sl_store *s); /* the directory */

int sl_store_ns_create(sl_store *s, const char *name, sl_ns_kind kind);
/* *out is an array allocated with sl_malloc, sorted by name. */
int sl_store_ns_list(sl_store *s, sl_ns_info **out, size_t *n_out);
int sl_store_ns_info(sl_store *s, const char *name, sl_ns_info *out);
/* Like sl_store_ns_info without counting live keys (out->keys is 0):
 * one row read, for callers that ask often (sync). */
int sl_store_ns_head(sl_store *s, const char *name, sl_ns_info *out);
/* A number that changes whenever another handle, of this process or
 * another, has committed to the store since this handle last asked
 * (SQLite's data_version): compare two readings of one handle. Commits
 * through this handle do not change it. Cheap (no table is read), so a
 * watcher may ask every few milliseconds. */
int sl_store_data_version(sl_store *s, uint64_t *out);

/* ------------------------------------------------------------------ writes */

/* Changes to one namespace, applied as one commit. Key and value bytes are
 * copied. Rules are checked at commit against the stored state and the
 * earlier entries of the same batch: in an immutable namespace a key may
 * be set again only with the same value (a no-op, no operation appended);
 * another value is SL_ECONFLICT and nothing is written. Deletes are only
 * for mutable namespaces (SL_EINVAL otherwise); deleting an absent key is
 * a no-op. A mutable update with the value the key already has is still
 * appended (it is a real write). */
typedef struct sl_batch sl_batch;

int sl_batch_new(sl_batch **out, sl_store *s, const char *ns);
void sl_batch_free(sl_batch *b);
int sl_batch_put(sl_batch *b, const char *key, size_t key_len, const void *value, size_t value_len);
int sl_batch_del(sl_batch *b, const char *key, size_t key_len);
size_t sl_batch_count(const sl_batch *b);
/* Apply as one commit in one SQLite transaction. On success *out (may be
 * NULL) is the new target and the batch is empty again; on failure nothing
 * was written and the batch keeps its entries. A batch with no effective
 * change appends nothing and returns the current target. */
int sl_batch_commit(sl_batch *b, sl_target *out);

/* ------------------------------------------------------------------- reads */

/* The latest committed value of key. SL_ENOTFOUND if absent or deleted.
 * loc_out (may be NULL) receives the location of the operation that set it. */
int sl_store_get(sl_store *s, const char *ns, const char *key, size_t key_len, sl_buf *value,
                 uint64_t *loc_out);

typedef struct sl_key_entry {
	const char *key; /* not NUL-terminated */
	size_t key_len;
	uint64_t loc;
	sl_digest digest;
	uint64_t value_len;
} sl_key_entry;

/* Calls cb for every live key starting with prefix, in bytewise key order.
 * A non-zero return from cb stops the walk and is returned. */
typedef int (*sl_key_fn)(void *ctx, const sl_key_entry *entry);
int sl_store_list(sl_store *s, const char *ns, const char *prefix, size_t prefix_len, sl_key_fn cb,
                  void *ctx);

/* Calls cb for committed operations [from, from+limit) (limit 0: to the
 * end), in order. SL_EINVAL if from is below the pruned boundary. */
typedef int (*sl_op_fn)(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                        size_t element_len);
int sl_store_log(sl_store *s, const char *ns, uint64_t from, uint64_t limit, sl_op_fn cb,
                 void *ctx);

/* ------------------------------------------------------------------ proofs */

typedef struct sl_key_proof {
	uint64_t loc;       /* location of the key's latest operation */
	sl_buf element;     /* its encoded operation */
	sl_target target;   /* the commit proved against */
	sl_mmr_proof proof; /* range proof for [loc, loc+1) */
} sl_key_proof;

void sl_key_proof_init(sl_key_proof *p);
void sl_key_proof_free(sl_key_proof *p);
/* Prove key's latest operation against the latest commit, read in one
 * snapshot. SL_ENOTFOUND if the key is absent or deleted. */
int sl_store_prove_key(sl_store *s, const char *ns, const char *key, size_t key_len,
                       sl_key_proof *out);

/* Range proof for operations [start, end) against the namespace's MMR at
 * `size` operations (a past commit size works too). */
int sl_store_range_proof(sl_store *s, const char *ns, uint64_t size, uint64_t start, uint64_t end,
                         sl_mmr_proof *out);

/* ------------------------------------------------------------ replication */

/* Create namespace `name` as a replica that starts at location `start` of
 * another node's log (src/store/replica.c): it holds no operation below
 * start, and `pinned` (the peaks of the MMR of `start` leaves, tallest
 * first, as sl_mmr_range_verify_pinned returns them) stand for them. Its
 * size and pruned boundary are `start`, its root that of the pinned
 * peaks. start 0 with no pinned nodes creates a plain empty namespace.
 * SL_EEXISTS if it exists; SL_EINVAL if n_pinned is not popcount(start). */
int sl_store_ns_create_at(sl_store *s, const char *name, sl_ns_kind kind, uint64_t start,
                          const sl_digest *pinned, size_t n_pinned);

/* Delete namespace name (not a dag one) and all it holds, in one
 * transaction, with the values in blobs nothing else refers to. Meant
 * for a namespace only this handle reads, such as the side copy sync
 * rebuilds a replica in: another handle that read it keeps a cache by
 * its id, which the next namespace created may reuse. */
int sl_store_ns_drop(sl_store *s, const char *name);

/* In one transaction, delete namespace name as sl_store_ns_drop does and
 * rename namespace `from` to name: readers see the old namespace or the
 * new one, and so does a store after a crash (src/store/replica.c). Both
 * must exist and be of the same kind (SL_ECONFLICT); not dag ones.
 * `from` may be a reserved name: '.' and then a valid name, which the
 * store takes and sl_ns_name_validate refuses, so no user creates one. */
int sl_store_ns_replace(sl_store *s, const char *name, const char *from);

/* Append operations received from another node, which the caller has
 * verified against a root it trusts, to the end of ns's log in one
 * transaction. start must be the namespace's size (SL_ECONFLICT
 * otherwise) and the last operation a commit (SL_EINVAL). values[i] is the
 * value of a set/update (its length and digest are checked: SL_EVERIFY)
 * and is ignored for other operations. An element that does not decode,
 * an operation that does not suit the kind, or a commit floor that moves
 * back or past its location is SL_ECORRUPT. On failure nothing is written.
 * *out (may be NULL) receives the new target. */
int sl_store_append_ops(sl_store *s, const char *ns, uint64_t start, const sl_bytes *elements,
                        const sl_bytes *values, size_t n, sl_target *out);

/* A range of the log as sync serves it, read in one snapshot: operations
 * [start, end) handed to cb in order with their values (NULL/0 for delete
 * and commit), where end = min(start + max, size), then the range proof
 * for the operations cb took against the MMR at `size` operations (0: the
 * latest commit). cb returns 0 to go on, a positive value to stop after
 * this operation (a byte budget), or a negative error, which is returned.
 * proof may be NULL: the operations are read and no proof is made.
 * *n_read (may be NULL) receives how many operations cb took. SL_EINVAL
 * for an empty range, a size past the last commit, or a start below the
 * pruned boundary. */
typedef int (*sl_op_value_fn)(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                              size_t element_len, const void *value, size_t value_len);
int sl_store_read_range(sl_store *s, const char *ns, uint64_t size, uint64_t start, uint64_t max,
                        sl_op_value_fn cb, void *ctx, sl_mmr_proof *proof, uint64_t *n_read);

/* The pinned nodes for `start`: the peaks of the namespace's MMR at
 * `start` operations, tallest first (start 0: none). SL_EINVAL if start
 * is past the last commit or below the pruned boundary (and not 0). */
int sl_store_pinned_nodes(sl_store *s, const char *ns, uint64_t start,
                          sl_digest out[SL_MMR_MAX_PEAKS], size_t *n_out);

/* Consistency proof that the namespace's MMR at old_size operations is a
 * prefix of the one at new_size (old_size <= new_size <= size). SL_EINVAL
 * if old_size is below the pruned boundary (and not 0). */
int sl_store_consistency_proof(sl_store *s, const char *ns, uint64_t old_size, uint64_t new_size,
                               sl_mmr_proof *out);

/* ------------------------------------------------------------------ items */

/* The set reconciliation items of a namespace's state (docs/protocol.md,
 * "State items"): each live key is the item with timestamp 0 and id
 * SHA-256(key || 0x00 || SHA-256(value)); deleted keys are absent. The
 * store keeps them indexed with per-bucket counts and sums (items_index.c), so a
 * range's fingerprint never re-reads values or walks the set. */
void sl_state_item_id(uint8_t out[SL_ITEM_ID_LEN], const char *key, size_t key_len,
                      const sl_digest *value_digest);

/* A read snapshot of a namespace's items as of its latest commit. It holds
 * the handle's read transaction: until sl_items_close, use the store only
 * through it. A store still in format 1 (made by an older sluice and only
 * opened read-only since) has no item index: SL_EINVAL saying how to
 * upgrade it. */
typedef struct sl_items sl_items;

int sl_store_items_open(sl_store *s, const char *ns, sl_items **out);
void sl_items_close(sl_items *it); /* NULL ok */
/* The namespace as of the snapshot. */
const sl_ns_info *sl_items_ns(const sl_items *it);
/* The items, sorted, for sl_reconcile_*; valid until sl_items_close. */
sl_item_set sl_items_set(sl_items *it);
/* The live key whose item is id: SL_ENOTFOUND (no message) if there is
 * none. out->key is valid until the next call on it. */
int sl_items_find(sl_items *it, const uint8_t id[SL_ITEM_ID_LEN], sl_key_entry *out);
/* The value of an entry sl_items_find returned, re-hashed against its
 * digest (SL_ECORRUPT if it does not match). */
int sl_items_value(sl_items *it, const sl_key_entry *entry, sl_buf *value);

/* ------------------------------------------------------------- maintenance */

typedef struct sl_verify_report {
	uint64_t ops_checked;     /* operations re-hashed from the log */
	uint64_t nodes_checked;   /* MMR nodes recomputed and compared */
	uint64_t keys_checked;    /* state entries compared */
	uint64_t blobs_checked;   /* values re-hashed */
	uint64_t items_checked;   /* reconciliation items of the state checked */
	uint64_t pruned;          /* operations below this were pruned, not checked */
	uint64_t entries_checked; /* dag namespaces: entries replayed */
} sl_verify_report;

/* ------------------------------------------------------ request nonces */

#define SL_NONCE_LEN 16

/* Remember that key used nonce in a signed request made at time_s, in a
 * transaction of its own: SL_OK the first time, SL_EEXISTS (a replay)
 * after. Nonces older than twice window_s before now_s are forgotten, as
 * their requests are refused for their time anyway. Needs format 3. */
int sl_store_nonce_claim(sl_store *s, const uint8_t key[SL_ED25519_PK_LEN],
                         const uint8_t nonce[SL_NONCE_LEN], uint64_t time_s, uint64_t now_s,
                         unsigned window_s);

/* Recompute every MMR node from the log, the root, the state from the
 * operations, and every referenced value's digest; compare with what is
 * stored. SL_OK, or SL_ECORRUPT naming the first mismatch. */
int sl_store_verify(sl_store *s, const char *ns, sl_verify_report *out);

/* The values of the whole store, as sl_store_verify_values found them. */
typedef struct sl_values_report {
	int checked;         /* 0: the store is in a format before 4 (read-only
	                        since an older sluice wrote it): nothing checked */
	uint64_t values;     /* values in the blob table (larger than 64 bytes,
	                        or set by a dag entry) */
	uint64_t bytes;      /* their size */
	uint64_t references; /* operations and dag namespaces referring to them */
} sl_values_report;

/* Store-wide, in one read snapshot: every value in the blob table is
 * referred to by an operation of some namespace or by a dag entry, and
 * every operation whose value is not inline, and every value a dag entry
 * sets, finds it there (values are not re-hashed: sl_store_verify does
 * that for the live ones). SL_OK, or SL_ECORRUPT saying what is wrong.
 * Costs an index lookup per stored value and per reference. */
int sl_store_verify_values(sl_store *s, sl_values_report *out);

/* What a prune did. */
typedef struct sl_prune_report {
	uint64_t from;        /* the pruned boundary before */
	uint64_t to;          /* and after: operations [from, to) were deleted */
	uint64_t values;      /* values deleted: no remaining operation of any
	                         namespace, and no dag entry, referred to them */
	uint64_t value_bytes; /* their size */
} sl_prune_report;

/* Delete the operations of a mutable namespace below its inactivity floor,
 * then the values in the blob table that nothing refers to any more, in
 * one write transaction. The MMR nodes are kept, so proofs for
 * [floor, size) still work. Writes the state table up to date first. The
 * freed pages stay in the file and later writes reuse them (see
 * sl_store_vacuum). An immutable or dag namespace has nothing to prune:
 * SL_EINVAL saying so; an unknown one SL_ENOTFOUND. *out may be NULL. */
int sl_store_prune_report(sl_store *s, const char *ns, sl_prune_report *out);
/* The same; *pruned_to (may be NULL) receives the new pruned boundary. */
int sl_store_prune(sl_store *s, const char *ns, uint64_t *pruned_to);

/* The store file's size and free pages. */
typedef struct sl_store_space {
	uint64_t file_bytes; /* sluice.db on disk */
	uint64_t wal_bytes;  /* sluice.db-wal on disk (0 if there is none) */
	uint64_t page_size;  /* bytes */
	uint64_t pages;      /* the database's pages as of the latest commit */
	uint64_t free_pages; /* of them free: later writes reuse them before the
	                        database grows */
} sl_store_space;

int sl_store_space_get(sl_store *s, sl_store_space *out);

/* Give the free pages back to the file system (src/store/vacuum.c):
 * VACUUM rebuilds the database without them, through a temporary copy in
 * SQLite's temporary directory (SQLITE_TMPDIR, else TMPDIR, else /var/tmp
 * or /tmp) and then the WAL, so it needs free space of the database's
 * size in each; in a database someone set to incremental auto_vacuum, the
 * incremental vacuum releases them without a copy. Then a checkpoint
 * writes the WAL into sluice.db, which shrinks, and truncates the WAL.
 * Waits for other writers (busy_timeout_ms) and holds them off while it
 * runs; readers go on. *checkpointed (may be NULL) is 0 when another
 * connection still read an older snapshot: the file then shrinks at a
 * later checkpoint. */
int sl_store_vacuum(sl_store *s, int *checkpointed);

/* Write the effect of the operations appended since the state table was
 * last brought up to date into it now (see state_flush_ops). Changes no
 * result of any read; it only moves work. */
int sl_store_flush(sl_store *s, const char *ns);

#ifdef __cplusplus
}
#endif
#endif
