/*
 * A blocked Bloom filter over the keys of a namespace's state table, so a
 * commit can tell that a key is new without looking it up in the table.
 *
 * A put into an immutable namespace (and a delete) must know whether its
 * key exists. Keys not in the overlay are looked up in the state table: a
 * random B-tree descent per key, a fifth of an immutable commit's time.
 * Nearly every such lookup is of a new key and finds nothing. The filter
 * answers "absent" for almost all of them from memory; "maybe" still goes
 * to the table, so answers are exact either way.
 *
 * Invariant (F1): a handle's filter for a namespace holds every key of the
 * state table as of state_loc == the handle's ov_base (it may hold more:
 * deleted keys stay). It is built by reading the table's keys inside a
 * transaction, extended by the keys the handle's own flushes write, and
 * dropped whenever the state table may have changed under it: another
 * handle flushed (state_loc moved), a transaction rolled back, or the
 * filter filled past its capacity. store.c keeps F1 (store_lookup,
 * store_ns_sync_row, store_state_flush, store_cache_invalidate).
 *
 * When to build: reading every key costs about as much as a few lookups
 * per key, so a handle builds the filter only after its lookups have
 * missed at least state_loc / 8 times (state_loc bounds the table's
 * rows), or for a flush of at least that many keys, which looks each one
 * up for its item: a handle that mostly reads, or writes a few keys,
 * never pays for it. A dropped filter starts counting again.
 *
 * Layout: 512-bit blocks (one cache line), 16 bits per key of capacity,
 * and 7 bits set per key inside one block, chosen from one 64-bit hash of
 * the key: well under 1% false "maybe" at capacity.
 */
#include "store/store_internal.h"

#include <string.h>

#define BLOCK_WORDS   8 /* 512 bits */
#define BITS_PER_KEY  16
#define BITS_SET      7
#define MIN_CAPACITY  (UINT64_C(1) << 16)
#define BUILD_DIVISOR 8 /* build after state_loc / 8 misses */

struct key_filter {
	uint64_t *words;
	uint64_t n_blocks;
	uint64_t capacity; /* keys it holds at the designed error rate */
	uint64_t count;    /* keys added */
};

/* splitmix64's finalizer over FNV-1a: keys that differ in one byte land
 * in unrelated blocks. */
static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)key[i];
		h *= UINT64_C(0x100000001b3);
	}
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}

static uint64_t *block_of(const key_filter *f, uint64_t h)
{
	/* The high half picks the block; the low bits pick the bits. */
	return f->words + ((h >> 32) * f->n_blocks >> 32) * BLOCK_WORDS;
}

/* Bit i of the key's BITS_SET bits within its block: the i-th 9 bits (a
 * position in 512) of a second hash, 63 bits for 7 positions. */
#define BIT_POS(h2, i) ((unsigned)(((h2) >> ((i)*9)) & 511u))

static uint64_t second_hash(uint64_t h)
{
	return (h * UINT64_C(0x9e3779b97f4a7c15)) ^ (h >> 29);
}

static key_filter *filter_new(uint64_t capacity)
{
	key_filter *f = sl_calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (capacity < MIN_CAPACITY)
		capacity = MIN_CAPACITY;
	f->capacity = capacity;
	f->n_blocks = (capacity * BITS_PER_KEY + BLOCK_WORDS * 64 - 1) / (BLOCK_WORDS * 64);
	if (!(f->words = sl_calloc(f->n_blocks * BLOCK_WORDS, sizeof(uint64_t)))) {
		sl_free(f);
		return NULL;
	}
	return f;
}

void key_filter_free(key_filter *f)
{
	if (!f)
		return;
	sl_free(f->words);
	sl_free(f);
}

/* Add key; 0 once the filter holds more keys than its capacity (the
 * caller then drops it: its error rate would climb). A key whose bits
 * were all set already is not counted again: flushes of a mutable
 * namespace write the same keys over and over. */
int key_filter_add(key_filter *f, const char *key, size_t key_len)
{
	uint64_t h = key_hash(key, key_len), h2 = second_hash(h);
	uint64_t *b = block_of(f, h), added = 0;
	for (unsigned i = 0; i < BITS_SET; i++) {
		unsigned pos = BIT_POS(h2, i);
		uint64_t bit = UINT64_C(1) << (pos & 63);
		added |= ~b[pos >> 6] & bit;
		b[pos >> 6] |= bit;
	}
	if (added)
		f->count++;
	return f->count <= f->capacity;
}

int key_filter_may_contain(const key_filter *f, const char *key, size_t key_len)
{
	uint64_t h = key_hash(key, key_len), h2 = second_hash(h);
	const uint64_t *b = block_of(f, h);
	for (unsigned i = 0; i < BITS_SET; i++) {
		unsigned pos = BIT_POS(h2, i);
		if (!(b[pos >> 6] & (UINT64_C(1) << (pos & 63))))
			return 0;
	}
	return 1;
}

int key_filter_worth_building(uint64_t misses, uint64_t state_loc)
{
	return misses >= 1024 && misses >= state_loc / BUILD_DIVISOR;
}

/* Read every key of the namespace's state table into a new filter with
 * room for the flushes to come. Must run inside a transaction. */
int key_filter_build(sl_store *s, int64_t ns_id, uint64_t state_loc, key_filter **out)
{
	sqlite3_stmt *st = NULL;
	key_filter *f;
	int rc;

	/* state_loc bounds the rows (one per live key, each set by an
	 * operation below state_loc). Room for as many again, and four
	 * flushes (each at most state_flush_ops keys), before a rebuild: the
	 * table at least doubles between rebuilds, so reading it costs less
	 * than one row per key it ever held, at 4 bytes per key of memory. */
	if (!(f = filter_new(2 * state_loc + 4 * s->state_flush_ops)))
		return SL_ENOMEM;
	rc = sqlite3_prepare_v2(s->db, "SELECT key FROM state WHERE ns = ?1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, ns_id);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			key_filter_add(f, sqlite3_column_blob(st, 0),
			               (size_t)sqlite3_column_bytes(st, 0));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		key_filter_free(f);
		return store_sqlite_error(s, rc, "read the state's keys");
	}
	*out = f;
	return SL_OK;
}
