/*
 * The set reconciliation items of a namespace's state, indexed so that a
 * range's fingerprint costs a few in-memory steps and a handful of rows,
 * whatever the size of the set.
 *
 * Each live key is the item (0, id) with id = SHA-256(key || 0x00 ||
 * digest), digest being the SHA-256 of its value the log already holds, so
 * items are computed without reading a value. Items sort by id (their
 * timestamps are all 0). The id space is cut into 65536 buckets by the
 * first two bytes of the id; ids are hashes, so buckets fill evenly (about
 * 15 items each at a million keys).
 *
 * What is stored follows the state table, which is a checkpoint (store.c):
 *   S1. items(ns, id, key) holds exactly one row per key of the state
 *       table, as of state_loc, with that key's id.
 *   S2. item_sums(ns, chunk) holds, for each bucket, the count and the
 *       256-bit sum of the ids of S1 in it, 256 buckets to a row (a chunk
 *       with no item has no row).
 * store_items_flush keeps S1 and S2 in the transaction that moves the
 * state table forward (the deleted and the new ids of the keys it writes,
 * applied in id order so each page is written once), and verify checks
 * both against the state table.
 *
 * The current items are those of S1 changed by the operations of
 * [state_loc, size). Each handle that reads items keeps a view of them
 * (struct item_view, in its namespace cache):
 *   V1. two Fenwick trees over the buckets, of counts and of sums, loaded
 *       from S2 and updated for every change, so the count before any
 *       bucket, the sum before it, and the bucket holding the item of a
 *       given index are each O(16) steps;
 *   V2. for every key the operations changed, the id it had at state_loc
 *       (base) and the id the view counts now (cur); from them, sorted
 *       arrays of the ids gone from S1 and the ids new to it;
 *   V3. it reflects the log up to `upto`; a transaction first replays the
 *       operations after it (reading the base of a key from the state
 *       table the first time the key changes), and starts over when the
 *       state table moved (base_loc != state_loc).
 * The items of one bucket are S1's rows in the bucket (one index range
 * scan), less the gone ids, merged with the new ones; a few buckets are
 * kept listed per view generation. Item i is in the bucket the count tree
 * finds, at i less the count before it; the sum of [a, b) is the sum
 * before b less the sum before a, each the tree's sum before the bucket
 * plus the first items of one listed bucket. A listed bucket whose size
 * is not its counted size means S1/S2 and the view disagree: SL_ECORRUPT.
 */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS       65536u
#define CHUNK_BUCKETS 256u
#define CHUNKS        (BUCKETS / CHUNK_BUCKETS)
#define BUCKET_BYTES  40 /* be64 count | sum[32] */
#define CHUNK_BYTES   (CHUNK_BUCKETS * BUCKET_BYTES)
#define LISTED        8 /* buckets kept listed per view */

typedef uint8_t item_id[SL_ITEM_ID_LEN];

void sl_state_item_id(uint8_t out[SL_ITEM_ID_LEN], const char *key, size_t key_len,
                      const sl_digest *value_digest)
{
	static const uint8_t zero = 0;
	sl_bytes parts[3] = {
	        {(const uint8_t *)key, key_len}, {&zero, 1}, {value_digest->bytes, SL_DIGEST_LEN}};
	sl_digest d;
	sl_sha256_parts(&d, parts, 3);
	memcpy(out, d.bytes, SL_ITEM_ID_LEN);
}

static uint32_t bucket_of(const uint8_t *id)
{
	return ((uint32_t)id[0] << 8) | id[1];
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, SL_ITEM_ID_LEN);
}

/* ------------------------------------------------------ stored buckets */

/* A change to S1: an id that goes or comes, with its key. */
typedef struct item_change {
	item_id id;
	int insert;
	const char *key;
	size_t key_len;
} item_change;

static int cmp_change(const void *a, const void *b)
{
	return memcmp(((const item_change *)a)->id, ((const item_change *)b)->id, SL_ITEM_ID_LEN);
}

typedef struct bucket_delta {
	int64_t count;
	sl_item_sum sum;
} bucket_delta;

/* Add the bucket deltas of one chunk to its stored row. */
static int apply_chunk(sl_store *s, int64_t ns_id, uint32_t chunk, const bucket_delta *d)
{
	uint8_t sums[CHUNK_BYTES];
	sqlite3_stmt *st;
	int rc, any = 0;

	memset(sums, 0, sizeof(sums));
	if (!(st = store_stmt(s, STMT_ITEM_SUMS_GET)))
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, ns_id);
	sqlite3_bind_int64(st, 2, chunk);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != CHUNK_BYTES)
			rc = sl_error_set(SL_ECORRUPT, "item sums chunk %u has %d bytes", chunk,
			                  sqlite3_column_bytes(st, 0));
		else
			memcpy(sums, sqlite3_column_blob(st, 0), CHUNK_BYTES);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc < 0 ? rc : store_sqlite_error(s, rc, "read item sums");
	for (uint32_t i = 0; i < CHUNK_BUCKETS; i++) {
		uint8_t *p = sums + i * BUCKET_BYTES;
		uint64_t count = sl_be64_get(p);
		sl_item_sum sum;
		if (d[i].count < 0 && (uint64_t)-d[i].count > count)
			return sl_error_set(SL_ECORRUPT,
			                    "item bucket %u would hold fewer than no items",
			                    chunk * CHUNK_BUCKETS + i);
		count += (uint64_t)d[i].count;
		sl_item_sum_from_bytes(&sum, p + 8);
		sl_item_sum_add(&sum, &d[i].sum);
		sl_be64_put(p, count);
		sl_item_sum_to_bytes(p + 8, &sum);
		any |= count != 0;
	}
	if (!(st = store_stmt(s, any ? STMT_ITEM_SUMS_PUT : STMT_ITEM_SUMS_DELETE)))
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, ns_id);
	sqlite3_bind_int64(st, 2, chunk);
	if (any)
		sqlite3_bind_blob(st, 3, sums, CHUNK_BYTES, SQLITE_STATIC);
	return store_step_done(s, st, "write item sums");
}

/* Apply changes to S1 in id order and their sums to S2. */
static int apply_changes(sl_store *s, int64_t ns_id, item_change *changes, size_t n)
{
	bucket_delta *deltas = NULL;
	uint8_t *touched = NULL;
	int rc = SL_OK;

	if (n == 0)
		return SL_OK;
	if (!(deltas = sl_calloc(BUCKETS, sizeof(*deltas))) || !(touched = sl_calloc(CHUNKS, 1))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	qsort(changes, n, sizeof(*changes), cmp_change);
	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		const item_change *c = &changes[i];
		uint32_t b = bucket_of(c->id);
		sqlite3_stmt *st = store_stmt(s, c->insert ? STMT_ITEM_INSERT : STMT_ITEM_DELETE);
		if (!st) {
			rc = sl_error_last()->code;
			break;
		}
		sqlite3_bind_int64(st, 1, ns_id);
		sqlite3_bind_blob(st, 2, c->id, SL_ITEM_ID_LEN, SQLITE_STATIC);
		if (c->insert)
			sqlite3_bind_blob(st, 3, c->key, (int)c->key_len, SQLITE_STATIC);
		if ((rc = store_step_done(s, st, "write item")) != SL_OK)
			break;
		if (!c->insert && sqlite3_changes(s->db) != 1)
			rc = sl_error_set(SL_ECORRUPT, "the item of '%.*s' is missing",
			                  (int)c->key_len, c->key);
		deltas[b].count += c->insert ? 1 : -1;
		if (c->insert)
			sl_item_sum_add_id(&deltas[b].sum, c->id);
		else
			sl_item_sum_sub_id(&deltas[b].sum, c->id);
		touched[b / CHUNK_BUCKETS] = 1;
	}
	for (uint32_t ch = 0; ch < CHUNKS && rc == SL_OK; ch++)
		if (touched[ch])
			rc = apply_chunk(s, ns_id, ch, deltas + ch * CHUNK_BUCKETS);
cleanup:
	sl_free(deltas);
	sl_free(touched);
	return rc;
}

int store_items_flush(sl_store *s, int64_t ns_id, const overlay_entry *const *list, size_t n)
{
	item_change *changes = NULL;
	size_t n_changes = 0;
	int rc = SL_OK;

	if (n == 0)
		return SL_OK;
	if (!(changes = sl_calloc(2 * n, sizeof(*changes))))
		return SL_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const overlay_entry *e = list[i];
		state_entry old;
		rc = store_state_get(s, ns_id, e->head.key, e->head.key_len, &old);
		if (rc != SL_OK && rc != SL_ENOTFOUND)
			goto cleanup;
		if (rc == SL_OK && !e->deleted && sl_digest_eq(&old.digest, &e->st.digest)) {
			rc = SL_OK;
			continue; /* the same item */
		}
		if (rc == SL_OK) {
			item_change *c = &changes[n_changes++];
			sl_state_item_id(c->id, e->head.key, e->head.key_len, &old.digest);
			c->key = e->head.key;
			c->key_len = e->head.key_len;
		}
		if (!e->deleted) {
			item_change *c = &changes[n_changes++];
			sl_state_item_id(c->id, e->head.key, e->head.key_len, &e->st.digest);
			c->insert = 1;
			c->key = e->head.key;
			c->key_len = e->head.key_len;
		}
		rc = SL_OK;
	}
	rc = apply_changes(s, ns_id, changes, n_changes);
cleanup:
	sl_free(changes);
	return rc;
}

static const char migrate_sql[] =
        "CREATE TABLE items(ns INTEGER NOT NULL, id BLOB NOT NULL, key BLOB NOT NULL, "
        "PRIMARY KEY(ns, id)) WITHOUT ROWID;\n"
        "CREATE TABLE item_sums(ns INTEGER NOT NULL, chunk INTEGER NOT NULL, "
        "sums BLOB NOT NULL, PRIMARY KEY(ns, chunk)) WITHOUT ROWID;\n";

/* Fill S1 and S2 of one namespace from its state table. */
static int migrate_ns(sl_store *s, int64_t ns_id)
{
	sqlite3_stmt *st = NULL;
	item_change *changes = NULL;
	size_t n = 0, cap = 0;
	char *keys = NULL; /* every key, one after the other */
	size_t keys_len = 0, keys_cap = 0;
	int rc;

	rc = sqlite3_prepare_v2(s->db, "SELECT key, digest FROM state WHERE ns = ?1", -1, &st,
	                        NULL);
	if (rc != SQLITE_OK) {
		rc = store_sqlite_error(s, rc, "read state");
		goto cleanup;
	}
	sqlite3_bind_int64(st, 1, ns_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t key_len = (size_t)sqlite3_column_bytes(st, 0);
		sl_digest digest;
		item_change *grown;
		if (sqlite3_column_bytes(st, 1) != SL_DIGEST_LEN || key_len > SL_KEY_MAX) {
			rc = sl_error_set(SL_ECORRUPT, "a state entry is damaged");
			goto cleanup;
		}
		if (!(grown = sl_grow(changes, &cap, n, sizeof(*changes), 1024))) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		changes = grown;
		while (keys_len + key_len > keys_cap) {
			char *more = sl_realloc(keys, keys_cap ? 2 * keys_cap : 65536);
			if (!more) {
				rc = SL_ENOMEM;
				goto cleanup;
			}
			keys = more;
			keys_cap = keys_cap ? 2 * keys_cap : 65536;
		}
		memcpy(keys + keys_len, sqlite3_column_blob(st, 0), key_len);
		memcpy(digest.bytes, sqlite3_column_blob(st, 1), SL_DIGEST_LEN);
		memset(&changes[n], 0, sizeof(changes[n]));
		sl_state_item_id(changes[n].id, keys + keys_len, key_len, &digest);
		changes[n].insert = 1;
		changes[n].key = (const char *)(uintptr_t)keys_len; /* an offset until the end */
		changes[n].key_len = key_len;
		keys_len += key_len;
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "read state");
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++)
		changes[i].key = keys + (uintptr_t)changes[i].key;
	rc = apply_changes(s, ns_id, changes, n);
cleanup:
	sqlite3_finalize(st);
	sl_free(changes);
	sl_free(keys);
	return rc;
}

int store_items_migrate(sl_store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if ((rc = sqlite3_exec(s->db, migrate_sql, NULL, NULL, NULL)) != SQLITE_OK)
		return store_sqlite_error(s, rc, "create the item index");
	if ((rc = sqlite3_prepare_v2(s->db, "SELECT id FROM namespaces", -1, &st, NULL)) !=
	    SQLITE_OK)
		return store_sqlite_error(s, rc, "list namespaces");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t *grown = sl_grow(ids, &cap, n, sizeof(*ids), 16);
		if (!grown) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		ids = grown;
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "list namespaces");
		goto cleanup;
	}
	rc = SL_OK;
	for (size_t i = 0; i < n && rc == SL_OK; i++)
		rc = migrate_ns(s, ids[i]);
cleanup:
	sqlite3_finalize(st);
	sl_free(ids);
	return rc;
}

/* ------------------------------------------------------------------ view */

typedef struct view_key {
	keymap_head head;
	item_id base, cur;
	uint8_t has_base, has_cur;
} view_key;

typedef struct new_id {
	item_id id;
	const view_key *k;
} new_id;

typedef struct listed_bucket {
	uint32_t bucket;
	uint64_t gen; /* 0: the slot is free */
	uint64_t used;
	item_id *ids;
	size_t n, cap;
} listed_bucket;

struct item_view {
	int valid;
	uint64_t base_loc, upto, gen;
	uint64_t *count_tree;  /* Fenwick, indexes 1..BUCKETS */
	sl_item_sum *sum_tree; /* likewise */
	uint64_t total;
	keymap changed; /* view_key */
	uint64_t sorted_gen;
	item_id *gone; /* sorted */
	size_t n_gone;
	new_id *added; /* sorted by id */
	size_t n_added;
	listed_bucket listed[LISTED];
	uint64_t tick;
};

void store_items_view_free(struct item_view *v)
{
	if (!v)
		return;
	sl_free(v->count_tree);
	sl_free(v->sum_tree);
	keymap_clear(&v->changed);
	sl_free(v->gone);
	sl_free(v->added);
	for (int i = 0; i < LISTED; i++)
		sl_free(v->listed[i].ids);
	sl_free(v);
}

static void tree_add(struct item_view *v, const uint8_t *id, int insert)
{
	for (uint32_t i = bucket_of(id) + 1; i <= BUCKETS; i += i & (~i + 1)) {
		if (insert) {
			v->count_tree[i]++;
			sl_item_sum_add_id(&v->sum_tree[i], id);
		} else {
			v->count_tree[i]--;
			sl_item_sum_sub_id(&v->sum_tree[i], id);
		}
	}
	v->total += insert ? 1 : (uint64_t)-1;
}

/* Count and sum of the items in buckets [0, b). */
static uint64_t tree_before(const struct item_view *v, uint32_t b, sl_item_sum *sum)
{
	uint64_t count = 0;
	if (sum)
		sl_item_sum_zero(sum);
	for (uint32_t i = b; i > 0; i -= i & (~i + 1)) {
		count += v->count_tree[i];
		if (sum)
			sl_item_sum_add(sum, &v->sum_tree[i]);
	}
	return count;
}

/* The bucket holding item `index` (< total) and the count before it. */
static uint32_t tree_find(const struct item_view *v, uint64_t index, uint64_t *before)
{
	uint32_t pos = 0;
	uint64_t rest = index;
	for (uint32_t step = BUCKETS; step > 0; step >>= 1) {
		if (pos + step <= BUCKETS && v->count_tree[pos + step] <= rest) {
			pos += step;
			rest -= v->count_tree[pos];
		}
	}
	*before = index - rest;
	return pos;
}

/* Load S2 into the trees (linear-time Fenwick construction). */
static int view_load(sl_store *s, struct item_view *v, int64_t ns_id)
{
	sqlite3_stmt *st = store_stmt(s, STMT_ITEM_SUMS_ALL);
	int rc;

	memset(v->count_tree, 0, (BUCKETS + 1) * sizeof(*v->count_tree));
	memset(v->sum_tree, 0, (BUCKETS + 1) * sizeof(*v->sum_tree));
	v->total = 0;
	if (!st)
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, ns_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t chunk = sqlite3_column_int64(st, 0);
		const uint8_t *p = sqlite3_column_blob(st, 1);
		if (chunk < 0 || chunk >= CHUNKS || sqlite3_column_bytes(st, 1) != CHUNK_BYTES) {
			sqlite3_reset(st);
			return sl_error_set(SL_ECORRUPT, "item sums chunk %lld is damaged",
			                    (long long)chunk);
		}
		for (uint32_t i = 0; i < CHUNK_BUCKETS; i++, p += BUCKET_BYTES) {
			uint32_t at = (uint32_t)chunk * CHUNK_BUCKETS + i + 1;
			v->count_tree[at] = sl_be64_get(p);
			sl_item_sum_from_bytes(&v->sum_tree[at], p + 8);
			v->total += v->count_tree[at];
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return store_sqlite_error(s, rc, "read item sums");
	for (uint32_t i = 1; i <= BUCKETS; i++) {
		uint32_t parent = i + (i & (~i + 1));
		if (parent <= BUCKETS) {
			v->count_tree[parent] += v->count_tree[i];
			sl_item_sum_add(&v->sum_tree[parent], &v->sum_tree[i]);
		}
	}
	return SL_OK;
}

typedef struct replay_ctx {
	sl_store *s;
	int64_t ns_id;
	struct item_view *v;
} replay_ctx;

/* V2 and V1 for one operation of the log. */
static int view_apply(void *ctx, const log_entry *e)
{
	replay_ctx *x = ctx;
	const sl_op *op = e->op;
	keymap_head *head;
	view_key *k;
	int created, rc;

	if (op->type != SL_OP_SET && op->type != SL_OP_UPDATE && op->type != SL_OP_DELETE)
		return SL_OK;
	if ((rc = keymap_upsert(&x->v->changed, op->key, op->key_len, sizeof(*k), &head,
	                        &created)) != SL_OK)
		return rc;
	k = (view_key *)head;
	if (created) {
		state_entry base;
		rc = store_state_get(x->s, x->ns_id, op->key, op->key_len, &base);
		if (rc != SL_OK && rc != SL_ENOTFOUND)
			return rc;
		k->has_base = k->has_cur = rc == SL_OK;
		if (rc == SL_OK)
			sl_state_item_id(k->base, op->key, op->key_len, &base.digest);
		memcpy(k->cur, k->base, SL_ITEM_ID_LEN);
	}
	if (k->has_cur)
		tree_add(x->v, k->cur, 0);
	k->has_cur = op->type != SL_OP_DELETE;
	if (k->has_cur) {
		sl_state_item_id(k->cur, op->key, op->key_len, &op->digest);
		tree_add(x->v, k->cur, 1);
	}
	return SL_OK;
}

/* Bring c's view up to row (V3). */
static int view_sync(sl_store *s, const ns_row *row, ns_cache *c, struct item_view **out)
{
	struct item_view *v = c->items;
	replay_ctx x;
	int rc;

	if (!v) {
		if (!(v = sl_calloc(1, sizeof(*v))))
			return SL_ENOMEM;
		keymap_init(&v->changed);
		if (!(v->count_tree = sl_calloc(BUCKETS + 1, sizeof(*v->count_tree))) ||
		    !(v->sum_tree = sl_calloc(BUCKETS + 1, sizeof(*v->sum_tree)))) {
			store_items_view_free(v);
			return SL_ENOMEM;
		}
		c->items = v;
	}
	if (!v->valid || v->base_loc != row->state_loc || v->upto > row->size) {
		v->valid = 0;
		keymap_clear(&v->changed);
		if ((rc = view_load(s, v, row->id)) != SL_OK)
			return sl_error_wrap("namespace '%s'", row->name);
		v->base_loc = v->upto = row->state_loc;
		v->valid = 1;
		v->gen++;
	}
	if (v->upto < row->size) {
		x.s = s;
		x.ns_id = row->id;
		x.v = v;
		if ((rc = store_log_walk(s, row->id, v->upto, row->size, view_apply, &x)) !=
		    SL_OK) {
			v->valid = 0;
			return sl_error_wrap("namespace '%s'", row->name);
		}
		v->upto = row->size;
		v->gen++;
	}
	*out = v;
	return SL_OK;
}

static int cmp_new_id(const void *a, const void *b)
{
	return memcmp(((const new_id *)a)->id, ((const new_id *)b)->id, SL_ITEM_ID_LEN);
}

/* For bsearch: the key is a bare id, the element a new_id. */
static int cmp_id_new_id(const void *id, const void *elem)
{
	return memcmp(id, ((const new_id *)elem)->id, SL_ITEM_ID_LEN);
}

/* The sorted arrays of V2, rebuilt once per generation. */
static int view_sort(struct item_view *v)
{
	size_t n = 0;
	if (v->sorted_gen == v->gen)
		return SL_OK;
	sl_free(v->gone);
	sl_free(v->added);
	v->gone = NULL;
	v->added = NULL;
	v->n_gone = v->n_added = 0;
	n = v->changed.count ? v->changed.count : 1;
	if (!(v->gone = sl_malloc(n * sizeof(*v->gone))) ||
	    !(v->added = sl_malloc(n * sizeof(*v->added))))
		return SL_ENOMEM;
	for (size_t i = 0; i < v->changed.cap; i++) {
		const view_key *k = (const view_key *)v->changed.slots[i];
		if (!k || (k->has_base == k->has_cur &&
		           (!k->has_cur || memcmp(k->base, k->cur, SL_ITEM_ID_LEN) == 0)))
			continue;
		if (k->has_base)
			memcpy(v->gone[v->n_gone++], k->base, SL_ITEM_ID_LEN);
		if (k->has_cur) {
			memcpy(v->added[v->n_added].id, k->cur, SL_ITEM_ID_LEN);
			v->added[v->n_added++].k = k;
		}
	}
	qsort(v->gone, v->n_gone, sizeof(*v->gone), cmp_id);
	qsort(v->added, v->n_added, sizeof(*v->added), cmp_new_id);
	v->sorted_gen = v->gen;
	return SL_OK;
}

/* First index in added whose id is not below id. */
static size_t added_lower(const struct item_view *v, const uint8_t *id)
{
	size_t lo = 0, hi = v->n_added;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(v->added[mid].id, id, SL_ITEM_ID_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int push_id(listed_bucket *l, const uint8_t *id)
{
	item_id *grown = sl_grow(l->ids, &l->cap, l->n, sizeof(*l->ids), 32);
	if (!grown)
		return SL_ENOMEM;
	l->ids = grown;
	memcpy(l->ids[l->n++], id, SL_ITEM_ID_LEN);
	return SL_OK;
}

/* The items of bucket b, sorted: S1's rows in it, less the gone ids,
 * merged with the added ones. */
static int list_bucket(sl_store *s, struct item_view *v, int64_t ns_id, uint32_t b,
                       const listed_bucket **out)
{
	listed_bucket *l = NULL;
	uint8_t lo[SL_ITEM_ID_LEN] = {0}, hi[SL_ITEM_ID_LEN + 1];
	size_t hi_len = SL_ITEM_ID_LEN, j;
	sqlite3_stmt *st;
	uint64_t counted;
	int rc;

	for (int i = 0; i < LISTED; i++) {
		if (v->listed[i].gen == v->gen && v->listed[i].bucket == b) {
			v->listed[i].used = ++v->tick;
			*out = &v->listed[i];
			return SL_OK;
		}
		if (!l || v->listed[i].used < l->used)
			l = &v->listed[i];
	}
	if ((rc = view_sort(v)) != SL_OK)
		return rc;
	l->gen = 0;
	l->n = 0;
	lo[0] = (uint8_t)(b >> 8);
	lo[1] = (uint8_t)b;
	memset(hi, 0, sizeof(hi));
	if (b + 1 < BUCKETS) {
		hi[0] = (uint8_t)((b + 1) >> 8);
		hi[1] = (uint8_t)(b + 1);
	} else {
		memset(hi, 0xff, sizeof(hi)); /* past every 32-byte id */
		hi_len = sizeof(hi);
	}
	if (!(st = store_stmt(s, STMT_ITEM_RANGE)))
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, ns_id);
	sqlite3_bind_blob(st, 2, lo, SL_ITEM_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, hi, (int)hi_len, SQLITE_STATIC);
	j = added_lower(v, lo);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const uint8_t *id = sqlite3_column_blob(st, 0);
		if (sqlite3_column_bytes(st, 0) != SL_ITEM_ID_LEN || bucket_of(id) != b) {
			rc = sl_error_set(SL_ECORRUPT, "an item id in bucket %u is damaged", b);
			goto done;
		}
		if (bsearch(id, v->gone, v->n_gone, sizeof(*v->gone), cmp_id))
			continue;
		for (; j < v->n_added && memcmp(v->added[j].id, id, SL_ITEM_ID_LEN) < 0; j++)
			if ((rc = push_id(l, v->added[j].id)) != SL_OK)
				goto done;
		if ((rc = push_id(l, id)) != SL_OK)
			goto done;
	}
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "read items");
		goto done;
	}
	for (; j < v->n_added && bucket_of(v->added[j].id) == b; j++)
		if ((rc = push_id(l, v->added[j].id)) != SL_OK)
			goto done;
	counted = tree_before(v, b + 1, NULL) - tree_before(v, b, NULL);
	if (l->n != counted) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "the item index is out of step with the state (bucket %u lists "
		                  "%zu items, its sums count %llu); run `sluice verify`",
		                  b, l->n, (unsigned long long)counted);
		goto done;
	}
	rc = SL_OK;
	l->bucket = b;
	l->gen = v->gen;
	l->used = ++v->tick;
	*out = l;
done:
	sqlite3_reset(st);
	return rc;
}

/* -------------------------------------------------------- the item set */

struct sl_items {
	sl_store *s;
	ns_row row;
	ns_cache *c;
	struct item_view *v;
	sl_ns_info info;
	sl_buf key; /* the key sl_items_find returned last */
};

static int index_check(const sl_items *it, uint64_t index, const char *what)
{
	if (index > it->v->total)
		return sl_error_set(SL_EINVAL, "%s %llu is past the %llu items", what,
		                    (unsigned long long)index, (unsigned long long)it->v->total);
	return SL_OK;
}

static int items_count(void *ctx, uint64_t *out)
{
	*out = ((sl_items *)ctx)->v->total;
	return SL_OK;
}

static int items_get(void *ctx, uint64_t index, sl_item *out)
{
	sl_items *it = ctx;
	const listed_bucket *l;
	uint64_t before;
	uint32_t b;
	int rc;

	if (index >= it->v->total)
		return index_check(it, index + 1, "item");
	b = tree_find(it->v, index, &before);
	if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
		return rc;
	out->ts = 0;
	memcpy(out->id, l->ids[index - before], SL_ITEM_ID_LEN);
	return SL_OK;
}

static int items_lower_bound(void *ctx, uint64_t begin, const sl_item *bound, uint64_t *out)
{
	sl_items *it = ctx;
	const listed_bucket *l;
	uint64_t at;
	uint32_t b;
	size_t lo, hi;
	int rc;

	if ((rc = index_check(it, begin, "index")) != SL_OK)
		return rc;
	if (bound->ts > 0) {
		*out = it->v->total; /* every item has timestamp 0 */
		return SL_OK;
	}
	b = bucket_of(bound->id);
	if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
		return rc;
	lo = 0;
	hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(l->ids[mid], bound->id, SL_ITEM_ID_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	at = tree_before(it->v, b, NULL) + lo;
	*out = at > begin ? at : begin;
	return SL_OK;
}

/* The sum of items [0, index). */
static int sum_before(sl_items *it, uint64_t index, sl_item_sum *out)
{
	const listed_bucket *l;
	uint64_t before;
	uint32_t b;
	int rc;

	if (index >= it->v->total) {
		tree_before(it->v, BUCKETS, out);
		return SL_OK;
	}
	b = tree_find(it->v, index, &before);
	tree_before(it->v, b, out);
	if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
		return rc;
	for (uint64_t i = 0; i < index - before; i++)
		sl_item_sum_add_id(out, l->ids[i]);
	return SL_OK;
}

static int items_sum(void *ctx, uint64_t begin, uint64_t end, sl_item_sum *out)
{
	sl_items *it = ctx;
	sl_item_sum below;
	int rc;

	if ((rc = index_check(it, end, "index")) != SL_OK)
		return rc;
	if (begin > end)
		return sl_error_set(SL_EINVAL, "item range [%llu, %llu) is backwards",
		                    (unsigned long long)begin, (unsigned long long)end);
	if ((rc = sum_before(it, end, out)) != SL_OK ||
	    (rc = sum_before(it, begin, &below)) != SL_OK)
		return rc;
	sl_item_sum_sub(out, &below);
	return SL_OK;
}

static int items_each(void *ctx, uint64_t begin, uint64_t end, sl_item_fn fn, void *fn_ctx)
{
	sl_items *it = ctx;
	uint64_t index = begin;
	int rc;

	if ((rc = index_check(it, end, "index")) != SL_OK)
		return rc;
	while (index < end) {
		const listed_bucket *l;
		uint64_t before;
		uint32_t b = tree_find(it->v, index, &before);
		if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
			return rc;
		for (size_t i = (size_t)(index - before); i < l->n && index < end; i++, index++) {
			sl_item item;
			item.ts = 0;
			memcpy(item.id, l->ids[i], SL_ITEM_ID_LEN);
			if ((rc = fn(fn_ctx, index, &item)) != 0)
				return rc > 0 ? SL_OK : rc;
		}
	}
	return SL_OK;
}

static const sl_item_set_ops items_ops = {items_count, items_get, items_lower_bound, items_sum,
                                          items_each};

static int format_check(const sl_store *s)
{
	if (s->format < 2)
		return sl_error_set(SL_EINVAL,
		                    "store %s has format 1, without the item index that "
		                    "reconciliation reads; open it for writing once to upgrade it "
		                    "(`sluice init -d %s`)",
		                    s->dir, s->dir);
	return SL_OK;
}

int sl_store_items_open(sl_store *s, const char *ns, sl_items **out)
{
	sl_items *it;
	int rc;

	if ((rc = format_check(s)) != SL_OK)
		return rc;
	if (!(it = sl_calloc(1, sizeof(*it))))
		return SL_ENOMEM;
	it->s = s;
	sl_buf_init(&it->key, SL_KEY_MAX + 1);
	if ((rc = store_begin_read(s)) != SL_OK) {
		sl_free(it);
		return rc;
	}
	if ((rc = store_ns_sync(s, ns, &it->row, &it->c)) != SL_OK ||
	    (rc = view_sync(s, &it->row, it->c, &it->v)) != SL_OK) {
		store_rollback_txn(s);
		sl_free(it);
		return rc;
	}
	snprintf(it->info.name, sizeof(it->info.name), "%s", it->row.name);
	it->info.kind = it->row.kind;
	it->info.target.size = it->row.size;
	it->info.target.root = it->row.root;
	it->info.target.floor = it->row.floor;
	it->info.pruned = it->row.pruned;
	it->info.keys = it->v->total;
	*out = it;
	return SL_OK;
}

void sl_items_close(sl_items *it)
{
	if (!it)
		return;
	store_rollback_txn(it->s); /* a read transaction: nothing to keep */
	sl_buf_free(&it->key);
	sl_free(it);
}

const sl_ns_info *sl_items_ns(const sl_items *it)
{
	return &it->info;
}

sl_item_set sl_items_set(sl_items *it)
{
	sl_item_set set = {&items_ops, it};
	return set;
}

int sl_items_find(sl_items *it, const uint8_t id[SL_ITEM_ID_LEN], sl_key_entry *out)
{
	struct item_view *v = it->v;
	const new_id *hit;
	state_entry st;
	item_id check;
	int rc;

	if ((rc = view_sort(v)) != SL_OK)
		return rc;
	hit = bsearch(id, v->added, v->n_added, sizeof(*v->added), cmp_id_new_id);
	if (hit) {
		rc = sl_buf_set(&it->key, hit->k->head.key, hit->k->head.key_len);
	} else {
		sqlite3_stmt *q;
		if (bsearch(id, v->gone, v->n_gone, sizeof(*v->gone), cmp_id))
			return SL_ENOTFOUND;
		if (!(q = store_stmt(it->s, STMT_ITEM_KEY)))
			return sl_error_last()->code;
		sqlite3_bind_int64(q, 1, it->row.id);
		sqlite3_bind_blob(q, 2, id, SL_ITEM_ID_LEN, SQLITE_STATIC);
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW)
			rc = sl_buf_set(&it->key, sqlite3_column_blob(q, 0),
			                (size_t)sqlite3_column_bytes(q, 0));
		else if (rc == SQLITE_DONE)
			rc = SL_ENOTFOUND;
		else
			rc = store_sqlite_error(it->s, rc, "read items");
		sqlite3_reset(q);
	}
	if (rc != SL_OK)
		return rc;
	rc = store_lookup(it->s, it->c, (const char *)it->key.data, it->key.len, &st);
	if (rc == SL_ENOTFOUND)
		return sl_error_set(SL_ECORRUPT,
		                    "the item of '%.*s' is listed but the key is not live",
		                    (int)it->key.len, (const char *)it->key.data);
	if (rc != SL_OK)
		return rc;
	sl_state_item_id(check, (const char *)it->key.data, it->key.len, &st.digest);
	if (memcmp(check, id, SL_ITEM_ID_LEN) != 0)
		return sl_error_set(SL_ECORRUPT, "the item of '%.*s' is out of step with its state",
		                    (int)it->key.len, (const char *)it->key.data);
	out->key = (const char *)it->key.data;
	out->key_len = it->key.len;
	out->loc = st.loc;
	out->digest = st.digest;
	out->value_len = st.size;
	return SL_OK;
}

int sl_items_value(sl_items *it, const sl_key_entry *entry, sl_buf *value)
{
	state_entry st = {entry->loc, entry->digest, entry->value_len};
	return store_value_get(it->s, it->row.id, &st, value);
}

/* ---------------------------------------------------------------- verify */

/* S1 and S2 against the state table (as of state_loc). */
static int verify_stored(sl_store *s, const ns_row *row)
{
	sqlite3_stmt *st = NULL, *q = NULL;
	bucket_delta *want = NULL;
	int64_t stored_items = -1;
	uint64_t n = 0;
	int rc;

	if (!(want = sl_calloc(BUCKETS, sizeof(*want))))
		return SL_ENOMEM;
	if ((rc = sqlite3_prepare_v2(s->db, "SELECT key, digest FROM state WHERE ns = ?1", -1, &st,
	                             NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(s->db, "SELECT key FROM items WHERE ns = ?1 AND id = ?2", -1,
	                             &q, NULL)) != SQLITE_OK) {
		rc = store_sqlite_error(s, rc, "verify items");
		goto cleanup;
	}
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_int64(q, 1, row->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = sqlite3_column_blob(st, 0);
		int key_len = sqlite3_column_bytes(st, 0);
		sl_digest digest;
		item_id id;
		if (sqlite3_column_bytes(st, 1) != SL_DIGEST_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "the state entry of '%.*s' is damaged",
			                  key_len, key);
			goto cleanup;
		}
		memcpy(digest.bytes, sqlite3_column_blob(st, 1), SL_DIGEST_LEN);
		sl_state_item_id(id, key, (size_t)key_len, &digest);
		sqlite3_bind_blob(q, 2, id, SL_ITEM_ID_LEN, SQLITE_STATIC);
		rc = sqlite3_step(q);
		if (rc != SQLITE_ROW || sqlite3_column_bytes(q, 0) != key_len ||
		    memcmp(sqlite3_column_blob(q, 0), key, (size_t)key_len) != 0) {
			rc = sl_error_set(SL_ECORRUPT, "the item of '%.*s' is missing or wrong",
			                  key_len, key);
			goto cleanup;
		}
		sqlite3_reset(q);
		want[bucket_of(id)].count++;
		sl_item_sum_add_id(&want[bucket_of(id)].sum, id);
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "verify items");
		goto cleanup;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM items WHERE ns = ?1", -1, &st,
	                             NULL)) != SQLITE_OK) {
		rc = store_sqlite_error(s, rc, "verify items");
		goto cleanup;
	}
	sqlite3_bind_int64(st, 1, row->id);
	if (sqlite3_step(st) == SQLITE_ROW)
		stored_items = sqlite3_column_int64(st, 0);
	if (stored_items != (int64_t)n) {
		rc = sl_error_set(SL_ECORRUPT, "%lld items are stored for %llu keys",
		                  (long long)stored_items, (unsigned long long)n);
		goto cleanup;
	}
	/* S2: each stored chunk must equal the sums just computed, and a
	 * chunk with items must be stored. Subtracting what is stored leaves
	 * all zeros exactly when they agree. */
	sqlite3_finalize(st);
	st = NULL;
	if (!(st = store_stmt(s, STMT_ITEM_SUMS_ALL))) {
		rc = sl_error_last()->code;
		goto cleanup;
	}
	sqlite3_bind_int64(st, 1, row->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t chunk = sqlite3_column_int64(st, 0);
		const uint8_t *p = sqlite3_column_blob(st, 1);
		if (chunk < 0 || chunk >= CHUNKS || sqlite3_column_bytes(st, 1) != CHUNK_BYTES) {
			rc = sl_error_set(SL_ECORRUPT, "item sums chunk %lld is damaged",
			                  (long long)chunk);
			sqlite3_reset(st);
			st = NULL;
			goto cleanup;
		}
		for (uint32_t i = 0; i < CHUNK_BUCKETS; i++, p += BUCKET_BYTES) {
			bucket_delta *w = &want[(uint32_t)chunk * CHUNK_BUCKETS + i];
			sl_item_sum stored;
			w->count -= (int64_t)sl_be64_get(p);
			sl_item_sum_from_bytes(&stored, p + 8);
			sl_item_sum_sub(&w->sum, &stored);
		}
	}
	sqlite3_reset(st);
	st = NULL; /* a prepared statement of the store's: not ours to finalize */
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "verify item sums");
		goto cleanup;
	}
	rc = SL_OK;
	for (uint32_t b = 0; b < BUCKETS; b++) {
		static const sl_item_sum zero;
		if (want[b].count != 0 || memcmp(&want[b].sum, &zero, sizeof(zero)) != 0) {
			rc = sl_error_set(SL_ECORRUPT,
			                  "the stored sums of item bucket %u are wrong", b);
			break;
		}
	}
cleanup:
	sqlite3_finalize(st);
	sqlite3_finalize(q);
	sl_free(want);
	return rc;
}

int store_items_verify(sl_store *s, const ns_row *row, ns_cache *c, uint64_t n_live,
                       const sl_item_sum *live_sum, uint64_t *checked)
{
	struct item_view *v;
	sl_item_sum sum;
	int rc;

	if (s->format < 2)
		return SL_OK; /* nothing to check yet: no index */
	if ((rc = verify_stored(s, row)) != SL_OK || (rc = view_sync(s, row, c, &v)) != SL_OK)
		return rc;
	tree_before(v, BUCKETS, &sum);
	if (v->total != n_live || memcmp(&sum, live_sum, sizeof(sum)) != 0)
		return sl_error_set(SL_ECORRUPT,
		                    "the current items (%llu) differ from the %llu live keys",
		                    (unsigned long long)v->total, (unsigned long long)n_live);
	*checked = n_live;
	return SL_OK;
}
