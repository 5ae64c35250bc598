/*
 * An in-memory map from key bytes to fixed-size entries, for the state
 * overlay (overlay.c) and the item view's changed keys (items.c).
 *
 * Open addressing with linear probing over an array of entry pointers,
 * kept at most half full. Each entry is one allocation: the caller's
 * struct, which starts with a keymap_head, followed by a copy of the key.
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

void keymap_init(keymap *m)
{
	memset(m, 0, sizeof(*m));
}

void keymap_clear(keymap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		sl_free(m->slots[i]);
	sl_free(m->slots);
	keymap_init(m);
}

static size_t find_slot(const keymap *m, uint64_t hash, const char *key, size_t key_len)
{
	size_t mask = m->cap - 1, i = (size_t)hash & mask;
	for (;;) {
		const keymap_head *e = m->slots[i];
		if (!e ||
		    (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0))
			return i;
		i = (i + 1) & mask;
	}
}

keymap_head *keymap_get(const keymap *m, const char *key, size_t key_len)
{
	if (m->count == 0)
		return NULL;
	return m->slots[find_slot(m, hash_key(key, key_len), key, key_len)];
}

static int grow(keymap *m)
{
	size_t new_cap = m->cap ? m->cap * 2 : 1024;
	keymap_head **slots = sl_calloc(new_cap, sizeof(*slots));
	keymap old = *m;
	if (!slots)
		return SL_ENOMEM;
	m->slots = slots;
	m->cap = new_cap;
	for (size_t i = 0; i < old.cap; i++) {
		keymap_head *e = old.slots[i];
		if (e)
			m->slots[find_slot(m, e->hash, e->key, e->key_len)] = e;
	}
	sl_free(old.slots);
	return SL_OK;
}

int keymap_upsert(keymap *m, const char *key, size_t key_len, size_t entry_size, keymap_head **out,
                  int *created)
{
	uint64_t hash = hash_key(key, key_len);
	keymap_head *e;
	size_t slot;
	int rc;

	if ((m->count + 1) * 2 > m->cap && (rc = grow(m)) != SL_OK)
		return rc;
	slot = find_slot(m, hash, key, key_len);
	e = m->slots[slot];
	*created = !e;
	if (!e) {
		char *copy;
		if (!(e = sl_calloc(1, entry_size + key_len + 1)))
			return SL_ENOMEM;
		copy = (char *)e + entry_size;
		memcpy(copy, key, key_len);
		e->hash = hash;
		e->key_len = key_len;
		e->key = copy;
		m->slots[slot] = e;
		m->count++;
	}
	*out = e;
	return SL_OK;
}

static int compare_heads(const void *a, const void *b)
{
	const keymap_head *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c != 0)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

int keymap_sorted(const keymap *m, const char *prefix, size_t prefix_len, const keymap_head ***out,
                  size_t *n_out)
{
	size_t cap = m->count ? m->count : 1, n = 0;
	const keymap_head **list = sl_malloc(cap * sizeof(*list));
	prefix_ref *refs = sl_malloc(cap * sizeof(*refs));
	int rc;

	if (!list || !refs) {
		sl_free(list);
		sl_free(refs);
		return SL_ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		const keymap_head *e = m->slots[i];
		if (e && e->key_len >= prefix_len &&
		    (prefix_len == 0 || memcmp(e->key, prefix, prefix_len) == 0)) {
			refs[n].prefix = prefix_of(e->key, e->key_len);
			refs[n++].ptr = e;
		}
	}
	/* Zero padding ties "ab" with "ab\0": compare_heads settles it. */
	if ((rc = prefix_sort(refs, n, compare_heads)) != SL_OK) {
		sl_free(list);
		sl_free(refs);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		list[i] = refs[i].ptr;
	sl_free(refs);
	*out = list;
	*n_out = n;
	return SL_OK;
}
