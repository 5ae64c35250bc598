/*
 * What a handle keeps of each namespace between transactions (ns_cache in
 * store_internal.h): the overlay of the operations the state table does
 * not hold yet, the key filter (keyfilter.c), and the writer's MMR
 * frontier and tail chunk, each checked against the namespace row inside
 * every transaction that uses it; plus the state flush that moves the
 * overlay into the table (invariant I3 in store.c).
 */
#include "store/store_internal.h"

#include <string.h>

/* F1 (keyfilter.c) can no longer be vouched for. */
static void cache_drop_filter(ns_cache *c)
{
	key_filter_free(c->filter);
	c->filter = NULL;
	c->filter_misses = 0;
}

void store_cache_invalidate(sl_store *s, int64_t ns_id)
{
	for (ns_cache *c = s->caches; c; c = c->next) {
		if (c->ns_id == ns_id) {
			c->ov_valid = 0;
			c->fr_valid = 0;
			overlay_clear(&c->ov);
			store_items_view_free(c->items);
			c->items = NULL;
			cache_drop_filter(c);
		}
	}
}

static int cache_find(sl_store *s, int64_t ns_id, ns_cache **out)
{
	ns_cache *c;
	for (c = s->caches; c; c = c->next)
		if (c->ns_id == ns_id)
			break;
	if (!c) {
		if (!(c = sl_calloc(1, sizeof(*c))))
			return SL_ENOMEM;
		c->ns_id = ns_id;
		overlay_init(&c->ov);
		c->next = s->caches;
		s->caches = c;
	}
	*out = c;
	return SL_OK;
}

int store_log_walk(sl_store *s, int64_t ns_id, uint64_t from, uint64_t end, log_walk_fn fn,
                   void *ctx)
{
	sqlite3_stmt *st;
	uint64_t expect = from;
	int rc;

	if (from >= end)
		return SL_OK;
	if (!(st = store_stmt(s, STMT_OP_RANGE)))
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, store_pack_id(ns_id, from));
	sqlite3_bind_int64(st, 2, store_pack_id(ns_id, end));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		log_entry e;
		sl_op op;
		e.loc = (uint64_t)sqlite3_column_int64(st, 0) & (SL_LOC_LIMIT - 1);
		e.element = sqlite3_column_blob(st, 1);
		e.element_len = (size_t)sqlite3_column_bytes(st, 1);
		e.has_value = sqlite3_column_type(st, 2) != SQLITE_NULL;
		e.value = sqlite3_column_blob(st, 2);
		e.value_len = (size_t)sqlite3_column_bytes(st, 2);
		e.op = &op;
		if (e.loc != expect)
			break; /* a gap: reported below */
		if ((rc = sl_op_decode(&op, e.element, e.element_len)) != SL_OK) {
			sl_error_wrap("operation %llu", (unsigned long long)e.loc);
			goto out;
		}
		if ((rc = fn(ctx, &e)) != 0)
			goto out;
		expect++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "read log");
		goto out;
	}
	rc = expect == end ? SL_OK
	                   : sl_error_set(SL_ECORRUPT, "operation %llu is missing from the log",
	                                  (unsigned long long)expect);
out:
	sqlite3_reset(st);
	return rc;
}

static int replay_into_overlay(void *ctx, const log_entry *e)
{
	ns_cache *c = ctx;
	state_entry st = {e->loc, e->op->digest, e->op->value_len};
	if (e->op->type == SL_OP_SET || e->op->type == SL_OP_UPDATE)
		return overlay_put(&c->ov, e->op->key, e->op->key_len, &st, 0);
	if (e->op->type == SL_OP_DELETE)
		return overlay_put(&c->ov, e->op->key, e->op->key_len, NULL, 1);
	return SL_OK;
}

int store_ns_sync(sl_store *s, const char *name, ns_row *row, ns_cache **out)
{
	int rc = store_ns_load(s, name, row);
	return rc == SL_OK ? store_ns_sync_row(s, row, out) : rc;
}

int store_ns_sync_row(sl_store *s, const ns_row *row, ns_cache **out)
{
	ns_cache *c;
	int rc;

	if ((rc = cache_find(s, row->id, &c)) != SL_OK)
		return rc;
	if (!c->ov_valid || c->ov_base != row->state_loc || c->ov_upto > row->size) {
		overlay_clear(&c->ov);
		cache_drop_filter(c); /* the state table may have changed under it */
		c->ov_base = c->ov_upto = row->state_loc;
		c->ov_valid = 1;
	}
	if (c->ov_upto < row->size) {
		if ((rc = store_log_walk(s, c->ns_id, c->ov_upto, row->size, replay_into_overlay,
		                         c)) != SL_OK) {
			c->ov_valid = 0;
			return sl_error_wrap("namespace '%s'", row->name);
		}
		c->ov_upto = row->size;
	}
	*out = c;
	return SL_OK;
}

int store_lookup(sl_store *s, ns_cache *c, const char *key, size_t key_len, state_entry *out)
{
	const overlay_entry *e = overlay_get(&c->ov, key, key_len);
	int rc;
	if (e) {
		if (e->deleted)
			return SL_ENOTFOUND;
		*out = e->st;
		return SL_OK;
	}
	if (c->filter && !key_filter_may_contain(c->filter, key, key_len))
		return SL_ENOTFOUND;
	rc = store_state_get(s, c->ns_id, key, key_len, out);
	if (rc == SL_ENOTFOUND && !c->filter &&
	    key_filter_worth_building(++c->filter_misses, c->ov_base) &&
	    key_filter_build(s, c->ns_id, c->ov_base, &c->filter) != SL_OK) {
		/* Only lookups get slower without it: try again later. */
		c->filter_misses = 0;
		sl_error_clear();
	}
	return rc;
}

int store_state_flush(sl_store *s, ns_row *row, ns_cache *c)
{
	const overlay_entry **list = NULL;
	size_t n = 0;
	int rc;

	if ((rc = overlay_sorted(&c->ov, "", 0, &list, &n)) != SL_OK)
		return rc;
	/* The item flush looks up the keys it does not know to be new. */
	if (!c->filter && key_filter_worth_building(n, c->ov_base) &&
	    key_filter_build(s, c->ns_id, c->ov_base, &c->filter) != SL_OK)
		sl_error_clear(); /* only slower without it */
	/* Before the state table takes the overlay: the items need the
	 * digests it held. */
	if (s->format >= 2 && (rc = store_items_flush(s, c->ns_id, c->filter, list, n)) != SL_OK) {
		sl_free(list);
		return rc;
	}
	/* Key order: consecutive keys share B-tree pages, so each page is
	 * written once per flush instead of once per operation. */
	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		const overlay_entry *e = list[i];
		sqlite3_stmt *st =
		        store_stmt(s, e->deleted ? STMT_STATE_DELETE : STMT_STATE_UPSERT);
		if (!st) {
			rc = sl_error_last()->code;
			break;
		}
		sqlite3_bind_int64(st, 1, c->ns_id);
		sqlite3_bind_blob(st, 2, e->head.key, (int)e->head.key_len, SQLITE_STATIC);
		if (!e->deleted) {
			sqlite3_bind_int64(st, 3, (int64_t)e->st.loc);
			sqlite3_bind_blob(st, 4, e->st.digest.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, (int64_t)e->st.size);
		}
		rc = store_step_done(s, st, "write state");
		/* F1: the filter follows the table (deleted keys may stay). */
		if (rc == SL_OK && c->filter && !e->deleted &&
		    !key_filter_add(c->filter, e->head.key, e->head.key_len))
			cache_drop_filter(c);
	}
	sl_free(list);
	if (rc != SL_OK)
		return rc;
	overlay_clear(&c->ov);
	row->state_loc = row->size;
	c->ov_base = c->ov_upto = row->size;
	return SL_OK;
}

int store_cache_writer(sl_store *s, const ns_row *row, ns_cache *c)
{
	chunk_reader reader;
	sl_mmr_nodes nodes;
	uint64_t mmr_size;
	int rc;

	if (c->fr_valid && c->fr_size == row->size && sl_digest_eq(&c->fr_root, &row->root))
		return SL_OK;
	c->fr_valid = 0;
	chunk_reader_init(&reader, s, row->id);
	nodes = chunk_reader_nodes(&reader);
	if ((rc = sl_mmr_frontier_load(&c->frontier, row->size, &nodes)) != SL_OK)
		return sl_error_wrap("load MMR of '%s'", row->name);
	mmr_size = sl_mmr_size_for_leaves(row->size);
	c->tail_chunk = mmr_size / SL_CHUNK_NODES;
	c->tail_len = (size_t)(mmr_size % SL_CHUNK_NODES);
	if (c->tail_len > 0) {
		size_t n = 0;
		if ((rc = store_chunk_load(s, row->id, c->tail_chunk, c->tail, &n)) != SL_OK)
			return rc;
		if (n != c->tail_len)
			return sl_error_set(
			        SL_ECORRUPT,
			        "namespace '%s': MMR tail holds %zu nodes, expected %zu", row->name,
			        n, c->tail_len);
	}
	c->fr_size = row->size;
	c->fr_root = row->root;
	c->fr_valid = 1;
	return SL_OK;
}

void store_caches_free(sl_store *s)
{
	while (s->caches) {
		ns_cache *next = s->caches->next;
		overlay_clear(&s->caches->ov);
		store_items_view_free(s->caches->items);
		key_filter_free(s->caches->filter);
		sl_free(s->caches);
		s->caches = next;
	}
}
