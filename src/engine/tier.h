/*
 * L3 tiers behind one small vtable: the engine does not know which system
 * it writes to. Implementations: tier_store.c (a sluice store namespace,
 * the embedded default), tier_pg.c (a PostgreSQL table) and tier_mysql.c
 * (a MariaDB/MySQL table).
 *
 * Every tier keeps, per key, the newest version it was given and whether
 * that version is a delete (a tombstone), and never replaces a version
 * with an older or equal one: that is what lets the engine replay its WAL
 * and retry batches freely.
 *
 * A tier is used by two threads at once: the drain calls write, scan and
 * position; readers call get. The implementation keeps them apart (a
 * separate connection or handle for get).
 */
#ifndef SLUICE_ENGINE_TIER_H
#define SLUICE_ENGINE_TIER_H

#include "sluice/base.h"

typedef struct sl_tier_row {
	/* in */
	const char *key;
	size_t key_len;
	const uint8_t *value; /* NULL for a delete */
	size_t value_len;
	uint64_t version; /* < 2^63 */
	int deleted;
	/* hints the engine gives; a tier may ignore them */
	int fresh;      /* L3 holds no version of this key newer than this one,
	                   so the guard need not read the row */
	int maybe_live; /* 0: the engine's trusted filter says L3 has no live row */
	/* out, set by write */
	int rc;          /* SL_OK: applied or superseded; else L3 refused this row */
	int applied;     /* 1: written; 0: L3 held this version or a newer one */
	int was_live;    /* the key had a live (not deleted) row before */
	int is_live;     /* the key has a live row after */
	char error[200]; /* why L3 refused it, when rc != SL_OK */
} sl_tier_row;

typedef int (*sl_tier_key_fn)(void *ctx, const char *key, size_t key_len);
/* A live row for the diff between engines: its version and the SHA-256 of
 * its value. */
typedef int (*sl_tier_item_fn)(void *ctx, const char *key, size_t key_len, uint64_t version,
                               const uint8_t value_digest[32]);

typedef struct sl_tier_ops {
	const char *name; /* "store", "postgresql", "mysql" */
	/* Writes the rows (distinct keys) in one transaction, each guarded by
	 * version. SL_OK: the transaction committed; a row L3 refused on its
	 * own (a constraint, a value too large) has rc != SL_OK and was left
	 * out, the others are in. Any other return: nothing was committed
	 * (L3 down, a timeout); the error is recorded. */
	int (*write)(void *impl, sl_tier_row *rows, size_t n);
	/* The row of a key: SL_ENOTFOUND if L3 has none; else *version,
	 * *deleted and (when not deleted) the value. */
	int (*get)(void *impl, const char *key, size_t key_len, sl_buf *value, uint64_t *version,
	           int *deleted);
	/* Live keys after `after` (NULL: from the start) in key order, at most
	 * limit, for rebuilding the filter by keyset paging; *n the count. */
	int (*scan_live)(void *impl, const char *after, size_t after_len, size_t limit,
	                 sl_tier_key_fn cb, void *ctx, size_t *n);
	/* Like scan_live, with each live row's version and value digest, for
	 * `sluice engine diff` (the items of docs/protocol.md's kv-reconcile). */
	int (*scan_items)(void *impl, const char *after, size_t after_len, size_t limit,
	                  sl_tier_item_fn cb, void *ctx, size_t *n);
	/* A digest of L3's write position: it changes with every committed
	 * write, so a filter saved at one position is trusted only there. */
	int (*position)(void *impl, sl_digest *out);
	void (*close)(void *impl);
} sl_tier_ops;

typedef struct sl_tier {
	const sl_tier_ops *ops;
	void *impl;
} sl_tier;

/* By type (an sl_l3_type): a store's directory and namespace, or a
 * server's URL and table. */
int sl_tier_open(sl_tier *out, int type, const char *dir_or_url, const char *ns_or_table,
                 unsigned timeout_ms);
int sl_tier_store_open(sl_tier *out, const char *dir, const char *ns, unsigned timeout_ms);
int sl_tier_pg_open(sl_tier *out, const char *url, const char *table, unsigned timeout_ms);
/* url: mysql://USER[:PASSWORD]@HOST[:PORT]/DB (connect/server_url.h). */
int sl_tier_mysql_open(sl_tier *out, const char *url, const char *table, unsigned timeout_ms);

#endif
