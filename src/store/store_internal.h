/*
 * Private to store/: the SQLite schema, the per-namespace cache and the
 * helpers that batch.c, read.c and verify.c share with store.c.
 *
 * Schema (sluice.db, application_id 'SLCE', user_version SL_SCHEMA_VERSION):
 *
 *   namespaces(id, name, kind, size, floor, root, pruned)
 *       one row per namespace; size/floor/root describe the last commit.
 *   ops(id = ns<<40 | loc, element)
 *       the operation log; element is the encoding the MMR leaf hashes.
 *   mmr(id = ns<<40 | chunk, nodes)
 *       MMR node digests, SL_CHUNK_NODES per row, position order. Writing
 *       whole chunks instead of one row per node keeps a commit of 1000
 *       operations at ~35 row writes for the MMR instead of ~2000.
 *   blobs(digest, value)
 *       every value once per SHA-256 digest.
 *   state(ns, key, loc, digest, size)
 *       the current state: each live key and the operation that set it.
 *
 * Locations are limited to 2^40 per namespace by the id packing (about a
 * trillion operations), namespace ids to 2^22.
 */
#ifndef SLUICE_STORE_INTERNAL_H
#define SLUICE_STORE_INTERNAL_H

#include <sqlite3.h>

#include "sluice/store.h"

#define SL_SCHEMA_VERSION 1
#define SL_APPLICATION_ID 0x534c4345 /* 'SLCE' */
#define SL_CHUNK_NODES    64
#define SL_LOC_BITS       40
#define SL_LOC_LIMIT      (UINT64_C(1) << SL_LOC_BITS)
#define SL_NS_ID_LIMIT    (INT64_C(1) << 22)

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
	STMT_STATE_INSERT_NEW,
	STMT_STATE_UPSERT,
	STMT_STATE_DELETE,
	STMT_STATE_SET_LOC,
	STMT_STATE_RANGE,
	STMT_BEGIN_READ,
	STMT_BEGIN_WRITE,
	STMT_COMMIT,
	STMT_ROLLBACK,
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
	sl_digest root;
} ns_row;

/* Writer-side cache of one namespace: its frontier and the tail chunk of
 * MMR nodes, valid while `row.size` equals the stored size (another
 * process may have committed in between; the writer re-reads the row
 * inside its write transaction and reloads when it moved). */
typedef struct ns_cache {
	int valid;
	ns_row row;
	sl_mmr_frontier frontier;
	uint64_t tail_chunk;            /* chunk index of the tail */
	size_t tail_len;                /* nodes in tail */
	sl_digest tail[SL_CHUNK_NODES]; /* nodes of the tail chunk */
	struct ns_cache *next;
} ns_cache;

struct sl_store {
	sqlite3 *db;
	char *dir;
	int readonly;
	sqlite3_stmt *stmts[STMT__COUNT];
	ns_cache *caches;
};

/* Node reader over the mmr table with a one-chunk cache. */
typedef struct chunk_reader {
	sl_store *store;
	int64_t ns_id;
	uint64_t chunk; /* cached chunk index, UINT64_MAX if none */
	size_t n_nodes; /* nodes in the cached chunk */
	sl_digest nodes[SL_CHUNK_NODES];
} chunk_reader;

/* A row of the state table. */
typedef struct state_entry {
	uint64_t loc;
	sl_digest digest;
	uint64_t size;
} state_entry;

/* --- store.c */
int store_sqlite_error(sl_store *s, int rc, const char *what);
sqlite3_stmt *store_stmt(sl_store *s, enum stmt_id id);
int store_step_done(sl_store *s, sqlite3_stmt *st, const char *what);
int store_begin_read(sl_store *s);
int store_begin_write(sl_store *s);
int store_commit_txn(sl_store *s);
void store_rollback_txn(sl_store *s);
int store_ns_load(sl_store *s, const char *name, ns_row *out);
int store_op_get(sl_store *s, int64_t ns_id, uint64_t loc, sl_buf *element);
/* SL_OK, or SL_ENOTFOUND if key has no live value. */
int store_state_get(sl_store *s, int64_t ns_id, const char *key, size_t key_len, state_entry *out);
int store_blob_put(sl_store *s, const sl_digest *digest, const void *value, size_t len);
void store_cache_invalidate(sl_store *s, int64_t ns_id);
int store_cache_get(sl_store *s, const ns_row *row, ns_cache **out);

static inline int64_t store_pack_id(int64_t ns_id, uint64_t low)
{
	return (int64_t)(((uint64_t)ns_id << SL_LOC_BITS) | low);
}

/* --- chunk reader (store.c) */
void chunk_reader_init(chunk_reader *r, sl_store *s, int64_t ns_id);
int chunk_reader_get(void *ctx, uint64_t pos, sl_digest *out);
sl_mmr_nodes chunk_reader_nodes(chunk_reader *r);

#endif
