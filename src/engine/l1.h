/*
 * L1: the engine's in-memory table. Keys are spread over shards by hash,
 * each with its own lock, so threads rarely contend. An entry holds the
 * newest version the engine knows of its key (a value, or a tombstone for
 * a delete) and, while that version is not yet in L3, the LSN and place
 * of its WAL record: such an entry is dirty and is never evicted. Over
 * budget, clean entries are evicted by sampling (a few random entries,
 * the least recently used of them goes); when the sample finds only dirty
 * entries whose record is already synced, their value is released and
 * read back from the WAL on a get (the entry stays: the key's newest
 * version is never forgotten while L3 lacks it).
 *
 * Every function on a shard is called with the shard locked.
 */
#ifndef SLUICE_ENGINE_L1_H
#define SLUICE_ENGINE_L1_H

#include <pthread.h>

#include "engine/wal.h"
#include "sluice/base.h"

typedef struct l1_entry {
	struct l1_entry *next; /* hash chain */
	uint64_t hash;
	uint64_t version;
	uint64_t pending_lsn; /* > 0: dirty, the WAL record of this version */
	sl_wal_loc loc;       /* that record's place, while dirty */
	uint64_t tick;        /* the shard's clock at the last use */
	uint8_t *value;       /* NULL: a tombstone, or released (dirty only) */
	size_t value_len;
	uint8_t deleted;
	uint16_t key_len;
	char key[];
} l1_entry;

typedef struct l1_shard {
	pthread_mutex_t lock;
	l1_entry **buckets;
	size_t n_buckets; /* a power of two */
	size_t entries;
	uint64_t bytes;        /* entries, keys and resident values */
	uint64_t dirty_bytes;  /* of dirty entries */
	uint64_t pinned_bytes; /* of dirty entries without their values: what
	                          no eviction or release can free */
	uint64_t budget;
	uint64_t clock;
	uint64_t evictions; /* grows with each removal: see l1_put_clean */
	uint64_t rng;
	struct l1 *table;
} l1_shard;

typedef struct l1 l1;

int l1_new(l1 **out, unsigned shards, uint64_t budget);
void l1_free(l1 *t); /* NULL ok */

uint64_t l1_hash(const char *key, size_t len);
l1_shard *l1_shard_of(l1 *t, uint64_t hash);
void l1_lock(l1_shard *s);
void l1_unlock(l1_shard *s);

l1_entry *l1_find(l1_shard *s, const char *key, size_t len, uint64_t hash);
/* A new write of the key: value (copied) or a tombstone, dirty at lsn. */
int l1_put_dirty(l1_shard *s, const char *key, size_t len, uint64_t hash, uint64_t version,
                 const void *value, size_t value_len, int deleted, uint64_t lsn,
                 const sl_wal_loc *loc);
/* A row read from L3, cached clean; only when the key has no entry and
 * nothing was evicted from the shard since `evictions` was read (else the
 * row may be older than an entry removed meanwhile). */
int l1_put_clean(l1_shard *s, const char *key, size_t len, uint64_t hash, uint64_t version,
                 const void *value, size_t value_len, int deleted, uint64_t evictions);
/* The entry's pending version is in L3 (or parked): no longer dirty. */
void l1_mark_clean(l1_shard *s, l1_entry *e);
void l1_remove(l1_shard *s, l1_entry *e);
/* Brings the shard under its budget as far as sampling can; values of
 * dirty entries are released only when their record's LSN <= synced_lsn. */
void l1_shrink(l1_shard *s, uint64_t synced_lsn);

/* l1_shrink on every shard over its budget (the monitor calls it, so
 * values released once their records are synced free memory without
 * waiting for the next write to their shard). */
void l1_shrink_all(l1 *t, uint64_t synced_lsn);

typedef struct l1_stats {
	uint64_t entries, bytes, dirty_bytes, pinned_bytes, budget;
} l1_stats;

void l1_stats_get(l1 *t, l1_stats *out); /* locks each shard in turn */

#endif
