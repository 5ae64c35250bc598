/*
 * The state overlay: an in-memory map from key to its latest state entry
 * (or a tombstone) for the operations of one namespace that the state
 * table does not hold yet, [state_loc, size). It is derived from the log
 * alone, so it is never persisted: a handle rebuilds it by replaying those
 * operations (store.c, store_ns_sync), and a flush writes it to the table
 * in key order (batch.c). The map itself is keymap.c.
 */
#include "store/store_internal.h"

#include <string.h>

const overlay_entry *overlay_get(const overlay *ov, const char *key, size_t key_len)
{
	return (const overlay_entry *)keymap_get(ov, key, key_len);
}

int overlay_put(overlay *ov, const char *key, size_t key_len, const state_entry *st, int deleted)
{
	keymap_head *head;
	overlay_entry *e;
	int created, rc;

	if ((rc = keymap_upsert(ov, key, key_len, sizeof(*e), &head, &created)) != SL_OK)
		return rc;
	e = (overlay_entry *)head;
	if (st)
		e->st = *st;
	else
		memset(&e->st, 0, sizeof(e->st));
	e->deleted = deleted;
	e->table_same = 0;
	return SL_OK;
}

int overlay_move(overlay *ov, const char *key, size_t key_len, const state_entry *st)
{
	keymap_head *head;
	overlay_entry *e;
	int created, rc;

	if ((rc = keymap_upsert(ov, key, key_len, sizeof(*e), &head, &created)) != SL_OK)
		return rc;
	e = (overlay_entry *)head;
	e->st = *st;
	e->deleted = 0;
	if (created)
		e->table_same = 1;
	return SL_OK;
}

int overlay_sorted(const overlay *ov, const char *prefix, size_t prefix_len,
                   const overlay_entry ***out, size_t *n_out)
{
	return keymap_sorted(ov, prefix, prefix_len, (const keymap_head ***)out, n_out);
}
