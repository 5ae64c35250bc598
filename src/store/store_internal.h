/*
 * Private to store/: the SQLite schema, the per-namespace cache and the
 * helpers that batch.c, read.c and verify.c share with store.c.
 *
 * Schema (sluice.db, application_id 'SLCE', user_version SL_SCHEMA_VERSION):
 *
 *   namespaces(id, name, kind, size, floor, root, pruned, state_loc)
 *       one row per namespace; size/floor/root describe the last commit;
 *       state_loc is the log location up to which the state table is
 *       current.
 *   ops(id = ns<<40 | loc, element, value)
 *       the operation log; element is the encoding the MMR leaf hashes;
 *       value holds the value of a set/update of at most
 *       SL_INLINE_VALUE_MAX bytes (NULL otherwise).
 *   mmr(id = ns<<40 | chunk, nodes)
 *       MMR node digests, SL_CHUNK_NODES per row, position order. Writing
 *       whole chunks instead of one row per node keeps a commit of 1000
 *       operations at ~35 row writes for the MMR instead of ~2000; 63
 *       digests (2016 bytes) let two rows share a 4 KiB page.
 *   blobs(digest, value)
 *       values larger than SL_INLINE_VALUE_MAX, and every value a dag
 *       entry sets, once per SHA-256 digest, for as long as an operation
 *       row or a dag entry refers to it (format 4; values.c).
 *   index ops_value on ops(substr(element, -32)), partial: the operation
 *       rows whose value is in blobs, by the digest their element ends
 *       in (format 4; values.c).
 *   state(ns, key, loc, digest, size)
 *       the state as of state_loc: each live key and the operation that
 *       set it. The operations of [state_loc, size) are held in memory by
 *       each handle (the overlay, rebuilt from the log) and written here
 *       in key order once they pass state_flush_ops, so a commit only
 *       appends; see store.c.
 *   items(ns, id, key)
 *       the set reconciliation item of each key of the state table (as of
 *       state_loc): id = SHA-256(key || 0x00 || digest); see items_index.c.
 *   item_sums(ns, chunk, sums)
 *       per bucket of ids (the first two bytes), the count and the 256-bit
 *       sum of the ids in items, 256 buckets to a row (items_index.c).
 *   dag_entries, dag_settings, dag_state, dag_tips
 *       the entries of dag namespaces and what they make (dag.c; format 3).
 *   dag_values(digest, ns)
 *       the digest of every value a held entry of dag namespace ns sets
 *       (format 4; values.c).
 *
 * Locations are limited to 2^40 per namespace by the id packing (about a
 * trillion operations), namespace ids to 2^22.
 */
#ifndef SLUICE_STORE_INTERNAL_H
#define SLUICE_STORE_INTERNAL_H

#include <sqlite3.h>
#include <sys/types.h>

#include "sluice/store.h"

#define SL_SCHEMA_VERSION          4
#define SL_APPLICATION_ID          0x534c4345 /* 'SLCE' */
#define SL_CHUNK_NODES             63
#define SL_INLINE_VALUE_MAX        64
#define SL_STATE_FLUSH_OPS_DEFAULT (UINT64_C(1) << 18)
#define SL_LOC_BITS                40
#define SL_LOC_LIMIT               (UINT64_C(1) << SL_LOC_BITS)
#define SL_NS_ID_LIMIT             (INT64_C(1) << 22)

/* Prepared statements, compiled once per store handle. */
enum stmt_id {
	STMT_NS_BY_NAME,
	STMT_NS_LIST,
	STMT_NS_INSERT,
	STMT_NS_UPDATE,
	STMT_NS_COUNT_KEYS,
	STMT_OP_INSERT,
	STMT_OP_GET,
	STMT_OP_RANGE,
	STMT_OP_DELETE_BELOW,
	STMT_CHUNK_GET,
	STMT_CHUNK_PUT,
	STMT_BLOB_INSERT,
	STMT_BLOB_GET,
	STMT_STATE_GET,
	STMT_STATE_UPSERT,
	STMT_STATE_DELETE,
	STMT_STATE_RANGE,
	STMT_BEGIN_READ,
	STMT_BEGIN_WRITE,
	STMT_COMMIT,
	STMT_ITEM_INSERT,
	STMT_ITEM_DELETE,
	STMT_ITEM_KEY,
	STMT_ITEM_RANGE,
	STMT_ITEM_SUMS_GET,
	STMT_ITEM_SUMS_PUT,
	STMT_ITEM_SUMS_DELETE,
	STMT_ITEM_SUMS_ALL,
	STMT_DATA_VERSION,
	STMT__COUNT
};

/* A namespace row as stored. */
typedef struct ns_row {
	int64_t id;
	char name[SL_NS_NAME_MAX + 1];
	sl_ns_kind kind;
	uint64_t size;
	uint64_t floor;
	uint64_t pruned;
	uint64_t state_loc;
	sl_digest root;
} ns_row;

/* A row of the state table. */
typedef struct state_entry {
	uint64_t loc;
	sl_digest digest;
	uint64_t size;
} state_entry;

/* keymap.c: key bytes -> an entry of the caller's type, which starts with
 * a keymap_head; the key is copied after the entry. */
typedef struct keymap_head {
	uint64_t hash;
	size_t key_len;
	const char *key; /* the entry's own copy */
} keymap_head;

typedef struct keymap {
	keymap_head **slots;
	size_t cap;   /* power of two, or 0 */
	size_t count; /* entries */
} keymap;

void keymap_init(keymap *m);
void keymap_clear(keymap *m); /* frees every entry */
keymap_head *keymap_get(const keymap *m, const char *key, size_t key_len);
/* The entry of key; a new one (*created = 1) is entry_size zero bytes with
 * its head filled in. */
int keymap_upsert(keymap *m, const char *key, size_t key_len, size_t entry_size, keymap_head **out,
                  int *created);
/* prefix_sort.c: (first 8 bytes big-endian, pointer) pairs, sorted by
 * prefix and then by tie(a->ptr, b->ptr). */
typedef struct prefix_ref {
	uint64_t prefix;
	const void *ptr;
} prefix_ref;
uint64_t prefix_of(const void *bytes, size_t len);
int prefix_sort(prefix_ref *refs, size_t n, int (*tie)(const void *, const void *));

/* Entries whose key starts with prefix, sorted bytewise; *out from sl_malloc. */
int keymap_sorted(const keymap *m, const char *prefix, size_t prefix_len, const keymap_head ***out,
                  size_t *n_out);

/* overlay.c: key -> state entry or tombstone, for [state_loc, size). */
typedef struct overlay_entry {
	keymap_head head;
	state_entry st;
	int deleted;
	int table_same; /* the state table holds this key with st.digest */
} overlay_entry;

typedef keymap overlay;

#define overlay_init  keymap_init
#define overlay_clear keymap_clear
const overlay_entry *overlay_get(const overlay *ov, const char *key, size_t key_len);
/* Insert or replace; st NULL with deleted = 1 for a tombstone. */
int overlay_put(overlay *ov, const char *key, size_t key_len, const state_entry *st, int deleted);
/* The floor moved the key's current operation to st->loc, same value: a key
 * new to the overlay came from the state table, which then holds it with
 * that digest (table_same); one already there keeps what it knew. */
int overlay_move(overlay *ov, const char *key, size_t key_len, const state_entry *st);
/* Entries whose key starts with prefix, sorted bytewise; *out from sl_malloc. */
int overlay_sorted(const overlay *ov, const char *prefix, size_t prefix_len,
                   const overlay_entry ***out, size_t *n_out);

/* What a handle keeps of one namespace between transactions. Each part is
 * checked against the namespace row inside every transaction that uses it
 * (another handle or process may have committed in between):
 *   - the overlay holds the effect of the operations [ov_base, ov_upto);
 *     it is valid while ov_base == row.state_loc and ov_upto <= row.size,
 *     and is then brought up to row.size by replaying the new operations;
 *   - the writer part (frontier and MMR tail chunk) is valid while
 *     fr_size == row.size and fr_root == row.root. */
typedef struct ns_cache {
	int64_t ns_id;
	int ov_valid;
	uint64_t ov_base, ov_upto;
	overlay ov;
	int fr_valid;
	uint64_t fr_size;
	sl_digest fr_root;
	sl_mmr_frontier frontier;
	uint64_t tail_chunk;            /* chunk index of the tail */
	size_t tail_len;                /* nodes in tail */
	sl_digest tail[SL_CHUNK_NODES]; /* nodes of the tail chunk */
	struct item_view *items;        /* items.c; NULL until items are read */
	struct key_filter *filter;      /* keyfilter.c; NULL until worth building */
	uint64_t filter_misses;         /* state table lookups that found nothing */
	struct ns_cache *next;
} ns_cache;

struct sl_store {
	sqlite3 *db;
	char *dir;
	int readonly;
	uint64_t state_flush_ops;
	int format; /* the schema version the file has (1: no item index) */
	sqlite3_stmt *stmts[STMT__COUNT];
	ns_cache *caches;
	uint64_t nonce_claims; /* nonces.c: claims through this handle */
};

/* Node reader over the mmr table with a one-chunk cache. */
typedef struct chunk_reader {
	sl_store *store;
	int64_t ns_id;
	uint64_t chunk; /* cached chunk index, UINT64_MAX if none */
	size_t n_nodes; /* nodes in the cached chunk */
	sl_digest nodes[SL_CHUNK_NODES];
} chunk_reader;

/* --- key.c: a user's name (sl_ns_name_validate) or a reserved one, '.'
 * and then a user's name, at most SL_NS_NAME_MAX bytes in all. */
int store_ns_name_validate(const char *name);

/* --- store.c */
/* The first column of the first row of sql (a PRAGMA or a count). */
int store_pragma_int(sl_store *s, const char *sql, int64_t *out);
/* The size of the file at path; -1 if there is none. */
off_t store_file_size(const char *path);
int store_sqlite_error(sl_store *s, int rc, const char *what);
sqlite3_stmt *store_stmt(sl_store *s, enum stmt_id id);
int store_step_done(sl_store *s, sqlite3_stmt *st, const char *what);
int store_begin_read(sl_store *s);
int store_begin_write(sl_store *s);
int store_commit_txn(sl_store *s);
void store_rollback_txn(sl_store *s);
/* A namespace with an operation log (SL_EINVAL for a dag one, saying so). */
int store_ns_load(sl_store *s, const char *name, ns_row *out);
/* Any namespace. */
int store_ns_load_any(sl_store *s, const char *name, ns_row *out);
int store_ns_write(sl_store *s, const ns_row *row);
/* Inside a write transaction: validate and add an empty namespace. */
int store_ns_insert(sl_store *s, const char *name, sl_ns_kind kind);
/* Read operation loc; with value non-NULL also its inline value, and
 * *has_value says whether the row holds one. */
int store_op_get(sl_store *s, int64_t ns_id, uint64_t loc, sl_buf *element, sl_buf *value,
                 int *has_value);
int store_op_put(sl_store *s, int64_t ns_id, uint64_t loc, const sl_buf *element, const void *value,
                 size_t value_len, int has_value);
/* The value of digest (SL_ECORRUPT when it is missing); not re-hashed. */
int store_blob_get(sl_store *s, const sl_digest *digest, sl_buf *value);
int store_blob_put(sl_store *s, const sl_digest *digest, const void *value, size_t len);
/* The value of a live state entry: inline in its operation or a blob;
 * re-hashed, SL_ECORRUPT if it does not match. */
int store_value_get(sl_store *s, int64_t ns_id, const state_entry *st, sl_buf *value);
/* SL_OK, or SL_ENOTFOUND (without a message) if key has no row. */
int store_state_get(sl_store *s, int64_t ns_id, const char *key, size_t key_len, state_entry *out);

/* One operation of the log, borrowed for the duration of a callback. */
typedef struct log_entry {
	uint64_t loc;
	const sl_op *op;
	const uint8_t *element;
	size_t element_len;
	int has_value; /* the row holds an inline value */
	const void *value;
	size_t value_len;
} log_entry;

/* Non-zero stops the walk and is returned. */
typedef int (*log_walk_fn)(void *ctx, const log_entry *e);

/* --- ns_cache.c: a handle's caches of its namespaces */
/* Decode operations [from, end) in order and hand each to fn; a missing
 * or undecodable operation is SL_ECORRUPT. Uses STMT_OP_RANGE: fn must
 * not walk the log itself. */
int store_log_walk(sl_store *s, int64_t ns_id, uint64_t from, uint64_t end, log_walk_fn fn,
                   void *ctx);

/* Inside a transaction: read the namespace row and bring the handle's
 * overlay up to its size. */
int store_ns_sync(sl_store *s, const char *name, ns_row *row, ns_cache **out);
/* The same for a row read already (of a log namespace). */
int store_ns_sync_row(sl_store *s, const ns_row *row, ns_cache **out);
/* The current state of key: the overlay, then the state table.
 * SL_ENOTFOUND (without a message) if it is absent or deleted. */
int store_lookup(sl_store *s, ns_cache *c, const char *key, size_t key_len, state_entry *out);

/* Inside a write transaction, after store_ns_sync: load the frontier and
 * tail chunk for row if the cached ones are stale. */
int store_cache_writer(sl_store *s, const ns_row *row, ns_cache *c);
/* Write the overlay into the state table and move row->state_loc to
 * row->size (the caller writes the row). */
int store_state_flush(sl_store *s, ns_row *row, ns_cache *c);
/* Every cache of the handle freed (sl_store_free). */
void store_caches_free(sl_store *s);
void store_cache_invalidate(sl_store *s, int64_t ns_id);

/* --- keyfilter.c: which keys the state table may hold (F1 there). */
typedef struct key_filter key_filter;
void key_filter_free(key_filter *f);                                /* NULL ok */
int key_filter_add(key_filter *f, const char *key, size_t key_len); /* 0: past capacity */
int key_filter_may_contain(const key_filter *f, const char *key, size_t key_len);
int key_filter_worth_building(uint64_t misses, uint64_t state_loc);
int key_filter_build(sl_store *s, int64_t ns_id, uint64_t state_loc, key_filter **out);
/* --- dag_txn.c: the tables of format 3 (dag namespaces, their peers and
 * access requests, request nonces); dag_read.c: reads of a dag state */
int store_dag_migrate(sl_store *s);
int store_dag_get(sl_store *s, const ns_row *row, const char *key, size_t key_len,
                  state_entry *out);
int store_dag_list(sl_store *s, const ns_row *row, const char *prefix, size_t prefix_len,
                   sl_key_fn cb, void *ctx);
int store_dag_count_keys(sl_store *s, const ns_row *row, uint64_t *out);
/* The value of a dag state entry (always in blobs), re-hashed. */
int store_dag_value(sl_store *s, const state_entry *st, sl_buf *value);

/* --- values.c: what refers to a value in blobs (format 4) */

/* An operation row whose value is in blobs (a set or update whose value
 * is not inline) and the digest its element ends in: the terms of the
 * partial index ops_value, which a query repeats word for word for
 * SQLite to use the index. */
#define STORE_OP_BLOB_WHERE  "value IS NULL AND substr(element, 1, 1) IN (x'01', x'02')"
#define STORE_OP_BLOB_DIGEST "substr(element, -32)"

/* Inside a write transaction: create ops_value and dag_values, fill
 * dag_values from the stored entries, and delete the values nothing
 * refers to (earlier prunes left them). */
int store_values_migrate(sl_store *s);
/* Inside a write transaction: delete the operations [from, to) of
 * namespace ns_id and then the values in blobs that no operation of any
 * namespace and no dag entry refers to any more; *n_values and *n_bytes
 * receive how many went. */
int store_values_prune(sl_store *s, int64_t ns_id, uint64_t from, uint64_t to, uint64_t *n_values,
                       uint64_t *n_bytes);
/* --- items_index.c and items.c */
#define ITEM_BUCKETS 65536u /* by the first two bytes of an id */

static inline uint32_t item_bucket(const uint8_t *id)
{
	return ((uint32_t)id[0] << 8) | id[1];
}

/* counts[b] and sums[b] of every bucket b as item_sums holds them (zero
 * where it has no row); both arrays have ITEM_BUCKETS entries. */
int store_item_sums_read(sl_store *s, int64_t ns_id, uint64_t *counts, sl_item_sum *sums);
/* For verify: items and item_sums hold exactly what the state table does. */
int store_items_verify_index(sl_store *s, const ns_row *row);
/* Inside the flush's write transaction, before the state table takes the
 * overlay (list: its entries): bring items and item_sums up to date. */
int store_items_flush(sl_store *s, int64_t ns_id, const struct key_filter *filter,
                      const overlay_entry *const *list, size_t n);
/* Inside a write transaction: create the item tables and fill them from
 * the state tables (a format 1 store becoming format 2). */
int store_items_migrate(sl_store *s);
/* For sl_store_verify, inside its read transaction after store_ns_sync:
 * items and item_sums must match the state table, and the handle's view
 * of the current items must hold n_live items summing to live_sum; then
 * *checked is n_live. */
int store_items_verify(sl_store *s, const ns_row *row, ns_cache *c, uint64_t n_live,
                       const sl_item_sum *live_sum, uint64_t *checked);
void store_items_view_free(struct item_view *v); /* NULL ok */

/* Live keys of the namespace: state table and overlay together. */
int store_count_live_keys(sl_store *s, ns_cache *c, uint64_t *out);

static inline int64_t store_pack_id(int64_t ns_id, uint64_t low)
{
	return (int64_t)(((uint64_t)ns_id << SL_LOC_BITS) | low);
}

/* --- batch.c: appending operations inside a write transaction, after
 * store_ns_sync and store_cache_writer. Used by commits and by replication
 * (replica.c). */
typedef struct append_ctx {
	sl_store *s;
	ns_row row;
	ns_cache *cache;
	uint64_t loc; /* next location */
	int tail_dirty;
	sl_buf element;   /* encoding of the operation being appended */
	sl_buf floor_ops; /* batch.c: operations read ahead at the floor */
	int moving;       /* the floor is re-appending a current operation */
} append_ctx;

/* Append op at cx->loc with its value: inline in the operation's row when
 * small, otherwise in blobs. For set and update, the overlay now points the
 * key at the new location; for delete, it holds a tombstone. */
int store_append_op(append_ctx *cx, const sl_op *op, const void *value);
int store_append_flush_tail(append_ctx *cx);
/* After the last operation (a commit carrying floor): write the MMR tail,
 * the new size/floor/root (flushing the state table when due) and commit
 * the transaction. */
int store_append_finish(append_ctx *cx, uint64_t floor);

/* --- chunk reader (store.c) */
/* The stored nodes of MMR chunk `chunk`, *n_nodes of them. */
int store_chunk_load(sl_store *s, int64_t ns_id, uint64_t chunk, sl_digest *nodes, size_t *n_nodes);
void chunk_reader_init(chunk_reader *r, sl_store *s, int64_t ns_id);
int chunk_reader_get(void *ctx, uint64_t pos, sl_digest *out);
sl_mmr_nodes chunk_reader_nodes(chunk_reader *r);

#endif
