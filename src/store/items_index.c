/*
 * The stored index of the set reconciliation items of a namespace's state
 * (the view that reads it, and the items API, are in items.c).
 *
 * Each live key is the item (0, id) with id = SHA-256(key || 0x00 ||
 * digest), digest being the SHA-256 of its value the log already holds, so
 * items are computed without reading a value. Items sort by id (their
 * timestamps are all 0). The id space is cut into ITEM_BUCKETS (65536)
 * buckets by the first two bytes of the id; ids are hashes, so buckets fill
 * evenly (about 15 items each at a million keys).
 *
 * What is stored follows the state table, which is a checkpoint (store.c):
 *   S1. items(ns, id, key) holds exactly one row per key of the state
 *       table, as of state_loc, with that key's id.
 *   S2. item_sums(ns, chunk) holds, for each bucket, the count and the
 *       256-bit sum of the ids of S1 in it, 256 buckets to a row (a chunk
 *       with no item has no row).
 * store_items_flush keeps S1 and S2 in the transaction that moves the
 * state table forward (the deleted and the new ids of the keys it writes,
 * applied in id order so each page is written once);
 * store_items_verify_index checks both against the state table.
 */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BUCKETS 256u
#define CHUNKS        (ITEM_BUCKETS / CHUNK_BUCKETS)
#define BUCKET_BYTES  40 /* be64 count | sum[32] */
#define CHUNK_BYTES   (CHUNK_BUCKETS * BUCKET_BYTES)

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

/* changes in id order, as references into the array; *out from sl_malloc. */
static int sort_changes(const item_change *changes, size_t n, prefix_ref **out)
{
	prefix_ref *refs = sl_malloc((n ? n : 1) * sizeof(*refs));
	int rc;
	if (!refs)
		return SL_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		refs[i].prefix = prefix_of(changes[i].id, SL_ITEM_ID_LEN);
		refs[i].ptr = &changes[i];
	}
	if ((rc = prefix_sort(refs, n, cmp_change)) != SL_OK) {
		sl_free(refs);
		return rc;
	}
	*out = refs;
	return SL_OK;
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
static int apply_changes(sl_store *s, int64_t ns_id, const item_change *changes, size_t n)
{
	bucket_delta *deltas = NULL;
	uint8_t *touched = NULL;
	prefix_ref *order = NULL;
	int rc = SL_OK;

	if (n == 0)
		return SL_OK;
	if (!(deltas = sl_calloc(ITEM_BUCKETS, sizeof(*deltas))) ||
	    !(touched = sl_calloc(CHUNKS, 1))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = sort_changes(changes, n, &order)) != SL_OK)
		goto cleanup;
	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		const item_change *c = order[i].ptr;
		uint32_t b = item_bucket(c->id);
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
	sl_free(order);
	sl_free(deltas);
	sl_free(touched);
	return rc;
}

int store_items_flush(sl_store *s, int64_t ns_id, const key_filter *filter,
                      const overlay_entry *const *list, size_t n)
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
		if (e->table_same)
			continue; /* only moved by the floor: the same item */
		/* A key the filter has never seen is new: no item to remove. */
		rc = filter && !key_filter_may_contain(filter, e->head.key, e->head.key_len)
		             ? SL_ENOTFOUND
		             : store_state_get(s, ns_id, e->head.key, e->head.key_len, &old);
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

/* ------------------------------------------------------------ reading S2 */

int store_item_sums_read(sl_store *s, int64_t ns_id, uint64_t *counts, sl_item_sum *sums)
{
	sqlite3_stmt *st = store_stmt(s, STMT_ITEM_SUMS_ALL);
	int rc;

	memset(counts, 0, ITEM_BUCKETS * sizeof(*counts));
	memset(sums, 0, ITEM_BUCKETS * sizeof(*sums));
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
			uint32_t b = (uint32_t)chunk * CHUNK_BUCKETS + i;
			counts[b] = sl_be64_get(p);
			sl_item_sum_from_bytes(&sums[b], p + 8);
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SL_OK : store_sqlite_error(s, rc, "read item sums");
}

/* ---------------------------------------------------------------- verify */

int store_items_verify_index(sl_store *s, const ns_row *row)
{
	sqlite3_stmt *st = NULL, *q = NULL;
	bucket_delta *want = NULL;
	uint64_t *stored_counts = NULL;
	sl_item_sum *stored_sums = NULL;
	int64_t stored_items = -1;
	uint64_t n = 0;
	int rc;

	if (!(want = sl_calloc(ITEM_BUCKETS, sizeof(*want))))
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
		want[item_bucket(id)].count++;
		sl_item_sum_add_id(&want[item_bucket(id)].sum, id);
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
	/* S2: the stored sums of every bucket must equal those just
	 * computed (a bucket with no row holds nothing). */
	if (!(stored_counts = sl_malloc(ITEM_BUCKETS * sizeof(*stored_counts))) ||
	    !(stored_sums = sl_malloc(ITEM_BUCKETS * sizeof(*stored_sums)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = store_item_sums_read(s, row->id, stored_counts, stored_sums)) != SL_OK)
		goto cleanup;
	for (uint32_t b = 0; b < ITEM_BUCKETS; b++) {
		if ((uint64_t)want[b].count != stored_counts[b] ||
		    memcmp(want[b].sum.w, stored_sums[b].w, sizeof(want[b].sum.w)) != 0) {
			rc = sl_error_set(SL_ECORRUPT,
			                  "the stored sums of item bucket %u are wrong", b);
			break;
		}
	}
cleanup:
	sqlite3_finalize(st);
	sqlite3_finalize(q);
	sl_free(want);
	sl_free(stored_counts);
	sl_free(stored_sums);
	return rc;
}
