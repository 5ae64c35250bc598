/*
 * The state overlay: an in-memory map from key to its latest state entry
 * (or a tombstone) for the operations of one namespace that the state
 * table does not hold yet, [state_loc, size). It is derived from the log
 * alone, so it is never persisted: a handle rebuilds it by replaying those
 * operations (store.c, store_ns_sync), and a flush writes it to the table
 * in key order (batch.c).
 *
 * Open addressing with linear probing over an array of entry pointers,
 * kept at most half full; each entry is one allocation holding its key.
 * The hash is 64-bit FNV-1a over the key bytes.
 */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(const char *key, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)key[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

void overlay_init(overlay *ov)
{
	memset(ov, 0, sizeof(*ov));
}

void overlay_clear(overlay *ov)
{
	for (size_t i = 0; i < ov->cap; i++)
		sl_free(ov->slots[i]);
	sl_free(ov->slots);
	overlay_init(ov);
}

static size_t find_slot(const overlay *ov, uint64_t hash, const char *key, size_t key_len)
{
	size_t mask = ov->cap - 1, i = (size_t)hash & mask;
	for (;;) {
		const overlay_entry *e = ov->slots[i];
		if (!e ||
		    (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0))
			return i;
		i = (i + 1) & mask;
	}
}

const overlay_entry *overlay_get(const overlay *ov, const char *key, size_t key_len)
{
	if (ov->count == 0)
		return NULL;
	return ov->slots[find_slot(ov, hash_key(key, key_len), key, key_len)];
}

static int grow(overlay *ov)
{
	size_t new_cap = ov->cap ? ov->cap * 2 : 1024;
	overlay_entry **slots = sl_calloc(new_cap, sizeof(*slots));
	overlay old = *ov;
	if (!slots)
		return SL_ENOMEM;
	ov->slots = slots;
	ov->cap = new_cap;
	for (size_t i = 0; i < old.cap; i++) {
		overlay_entry *e = old.slots[i];
		if (e)
			ov->slots[find_slot(ov, e->hash, e->key, e->key_len)] = e;
	}
	sl_free(old.slots);
	return SL_OK;
}

int overlay_put(overlay *ov, const char *key, size_t key_len, const state_entry *st, int deleted)
{
	uint64_t hash = hash_key(key, key_len);
	overlay_entry *e;
	size_t slot;
	int rc;

	if ((ov->count + 1) * 2 > ov->cap && (rc = grow(ov)) != SL_OK)
		return rc;
	slot = find_slot(ov, hash, key, key_len);
	e = ov->slots[slot];
	if (!e) {
		if (!(e = sl_malloc(sizeof(*e) + key_len)))
			return SL_ENOMEM;
		e->hash = hash;
		e->key_len = key_len;
		memcpy(e->key, key, key_len);
		ov->slots[slot] = e;
		ov->count++;
	}
	if (st)
		e->st = *st;
	else
		memset(&e->st, 0, sizeof(e->st));
	e->deleted = deleted;
	return SL_OK;
}

static int compare_entries(const void *a, const void *b)
{
	const overlay_entry *x = *(const overlay_entry *const *)a;
	const overlay_entry *y = *(const overlay_entry *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c != 0)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

int overlay_sorted(const overlay *ov, const char *prefix, size_t prefix_len,
                   const overlay_entry ***out, size_t *n_out)
{
	const overlay_entry **list = sl_malloc((ov->count ? ov->count : 1) * sizeof(*list));
	size_t n = 0;
	if (!list)
		return SL_ENOMEM;
	for (size_t i = 0; i < ov->cap; i++) {
		const overlay_entry *e = ov->slots[i];
		if (e && e->key_len >= prefix_len && memcmp(e->key, prefix, prefix_len) == 0)
			list[n++] = e;
	}
	qsort(list, n, sizeof(*list), compare_entries);
	*out = list;
	*n_out = n;
	return SL_OK;
}
