/*
 * Batches and commits: the only write path into a namespace's log.
 *
 * sl_batch_put/del copy keys and values into one arena and hash each value
 * up front, so the write transaction does no more than it must. A commit,
 * inside one BEGIN IMMEDIATE transaction:
 *   1. re-reads the namespace row, brings the handle's overlay up to the
 *      stored size (replaying what other handles committed) and (re)loads
 *      the frontier and MMR tail chunk if they are stale;
 *   2. applies each entry in order against the current state (overlay,
 *      then state table), appending a set/update/delete operation for
 *      each effective change (an immutable re-set with the same digest
 *      and a delete of an absent key append nothing; an immutable re-set
 *      with another digest fails the commit) and recording it in the
 *      overlay;
 *   3. for mutable namespaces, raises the inactivity floor (below);
 *   4. appends the commit operation carrying the floor, writes the MMR
 *      nodes chunk by chunk, flushes the overlay into the state table
 *      when state_flush_ops operations have accumulated, writes the new
 *      size/floor/root/state_loc, and commits.
 * Any failure rolls the transaction back and drops the handle's cache
 * (overlay and frontier), so the store is exactly as before and the batch
 * keeps its entries.
 *
 * Raising the floor (as commonware's `any` database does): starting at the
 * current floor, each operation is examined; one that is still active (an
 * update the state points at) is re-appended at the tip and the state
 * moved to it; the floor then passes it. At most (effective operations in
 * the batch + 1) operations are re-appended per commit, so the log grows
 * by a constant factor, while inactive operations are passed for free
 * (each is passed once over the life of the log). Afterwards every
 * operation below the floor is inactive (invariant I4), which is what lets
 * a client rebuild the state from [floor, size) and lets prune delete the
 * rest.
 */
#include "store/store_internal.h"

#include <string.h>

#define BATCH_BYTES_MAX (UINT64_C(1) << 31) /* keys + values held by one batch */

typedef struct batch_entry {
	int is_delete;
	size_t key_off;
	size_t key_len;
	size_t value_off;
	size_t value_len;
	sl_digest digest;
} batch_entry;

struct sl_batch {
	sl_store *store;
	ns_row ns; /* as of sl_batch_new; re-read at commit */
	batch_entry *entries;
	size_t n, cap;
	sl_buf arena;
};

int sl_batch_new(sl_batch **out, sl_store *s, const char *ns)
{
	sl_batch *b;
	ns_row row;
	int rc;

	if ((rc = store_begin_read(s)) != SL_OK)
		return rc;
	rc = store_ns_load(s, ns, &row);
	store_rollback_txn(s);
	if (rc != SL_OK)
		return rc;
	if (!(b = sl_calloc(1, sizeof(*b))))
		return SL_ENOMEM;
	b->store = s;
	b->ns = row;
	sl_buf_init(&b->arena, BATCH_BYTES_MAX);
	*out = b;
	return SL_OK;
}

void sl_batch_free(sl_batch *b)
{
	if (!b)
		return;
	sl_buf_free(&b->arena);
	sl_free(b->entries);
	sl_free(b);
}

size_t sl_batch_count(const sl_batch *b)
{
	return b->n;
}

static int batch_add(sl_batch *b, int is_delete, const char *key, size_t key_len, const void *value,
                     size_t value_len)
{
	batch_entry e;
	size_t mark = b->arena.len;
	int rc;

	if ((rc = sl_key_validate(key, key_len)) != SL_OK)
		return rc;
	if (value_len > SL_VALUE_MAX)
		return sl_error_set(SL_ETOOLARGE, "value of %zu bytes exceeds the limit of %llu",
		                    value_len, (unsigned long long)SL_VALUE_MAX);
	batch_entry *grown = sl_grow(b->entries, &b->cap, b->n, sizeof(*grown), 64);
	if (!grown)
		return SL_ENOMEM;
	b->entries = grown;
	memset(&e, 0, sizeof(e));
	e.is_delete = is_delete;
	e.key_off = b->arena.len;
	e.key_len = key_len;
	if ((rc = sl_buf_append(&b->arena, key, key_len)) != SL_OK)
		goto fail;
	if (!is_delete) {
		e.value_off = b->arena.len;
		e.value_len = value_len;
		if (value_len && (rc = sl_buf_append(&b->arena, value, value_len)) != SL_OK)
			goto fail;
		sl_sha256(&e.digest, value, value_len);
	}
	b->entries[b->n++] = e;
	return SL_OK;
fail:
	b->arena.len = mark;
	if (rc == SL_ETOOLARGE)
		sl_error_set(SL_ETOOLARGE, "batch holds more than %llu bytes; commit it first",
		             (unsigned long long)BATCH_BYTES_MAX);
	return rc;
}

int sl_batch_put(sl_batch *b, const char *key, size_t key_len, const void *value, size_t value_len)
{
	return batch_add(b, 0, key, key_len, value, value_len);
}

int sl_batch_del(sl_batch *b, const char *key, size_t key_len)
{
	if (b->ns.kind != SL_NS_MUTABLE)
		return sl_error_set(SL_EINVAL,
		                    "namespace '%s' is immutable: keys cannot be deleted",
		                    b->ns.name);
	return batch_add(b, 1, key, key_len, NULL, 0);
}

/* ----------------------------------------------------------------- commit */

int store_append_flush_tail(append_ctx *cx)
{
	ns_cache *c = cx->cache;
	sqlite3_stmt *st;
	if (!cx->tail_dirty || c->tail_len == 0)
		return SL_OK;
	if (!(st = store_stmt(cx->s, STMT_CHUNK_PUT)))
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, store_pack_id(c->ns_id, c->tail_chunk));
	sqlite3_bind_blob(st, 2, c->tail, (int)(c->tail_len * SL_DIGEST_LEN), SQLITE_STATIC);
	cx->tail_dirty = 0;
	return store_step_done(cx->s, st, "write MMR nodes");
}

int store_append_op(append_ctx *cx, const sl_op *op, const void *value)
{
	ns_cache *c = cx->cache;
	sl_digest nodes[SL_MMR_MAX_PEAKS + 1];
	uint64_t first_pos;
	int has_value = op->type == SL_OP_SET || op->type == SL_OP_UPDATE;
	int inline_value = has_value && op->value_len <= SL_INLINE_VALUE_MAX;
	size_t n;
	int rc;

	if (cx->loc >= SL_LOC_LIMIT)
		return sl_error_set(SL_ETOOLARGE, "namespace '%s' is full (%llu operations)",
		                    cx->row.name, (unsigned long long)SL_LOC_LIMIT);
	sl_buf_reset(&cx->element);
	if ((rc = sl_op_encode(op, &cx->element)) != SL_OK)
		return rc;
	if (has_value && !inline_value &&
	    (rc = store_blob_put(cx->s, &op->digest, value, (size_t)op->value_len)) != SL_OK)
		return rc;
	if ((rc = store_op_put(cx->s, c->ns_id, cx->loc, &cx->element, value, (size_t)op->value_len,
	                       inline_value)) != SL_OK)
		return rc;
	if (has_value) {
		state_entry e = {cx->loc, op->digest, op->value_len};
		rc = cx->moving ? overlay_move(&c->ov, op->key, op->key_len, &e)
		                : overlay_put(&c->ov, op->key, op->key_len, &e, 0);
	} else if (op->type == SL_OP_DELETE) {
		rc = overlay_put(&c->ov, op->key, op->key_len, NULL, 1);
	}
	if (rc != SL_OK)
		return rc;

	n = sl_mmr_frontier_append(&c->frontier, cx->element.data, cx->element.len, nodes,
	                           &first_pos);
	if (n == 0)
		return sl_error_last()->code;
	if (first_pos != c->tail_chunk * SL_CHUNK_NODES + c->tail_len)
		return sl_error_set(SL_EINTERNAL, "MMR position %llu out of step with the tail",
		                    (unsigned long long)first_pos);
	for (size_t i = 0; i < n; i++) {
		c->tail[c->tail_len++] = nodes[i];
		cx->tail_dirty = 1;
		if (c->tail_len == SL_CHUNK_NODES) {
			if ((rc = store_append_flush_tail(cx)) != SL_OK)
				return rc;
			c->tail_chunk++;
			c->tail_len = 0;
		}
	}
	cx->loc++;
	return SL_OK;
}

/* Apply one entry; *appended is set to 1 if it appended an operation. */
static int apply_entry(append_ctx *cx, const sl_batch *b, const batch_entry *e, int *appended)
{
	const char *key = (const char *)b->arena.data + e->key_off;
	const void *value = b->arena.data + e->value_off;
	state_entry cur;
	sl_op op;
	int rc;

	*appended = 0;
	memset(&op, 0, sizeof(op));
	op.key = key;
	op.key_len = e->key_len;
	op.value_len = e->value_len;
	op.digest = e->digest;
	if (e->is_delete || cx->row.kind == SL_NS_IMMUTABLE) {
		rc = store_lookup(cx->s, cx->cache, key, e->key_len, &cur);
		if (rc != SL_OK && rc != SL_ENOTFOUND)
			return rc;
		if (e->is_delete) {
			if (rc == SL_ENOTFOUND)
				return SL_OK;
			op.type = SL_OP_DELETE;
		} else if (rc == SL_OK) {
			if (sl_digest_eq(&cur.digest, &e->digest))
				return SL_OK;
			return sl_error_set(SL_ECONFLICT,
			                    "key '%.*s' is already set to another value (namespace "
			                    "'%s' is immutable)",
			                    (int)e->key_len, key, cx->row.name);
		} else {
			op.type = SL_OP_SET;
		}
	} else {
		op.type = SL_OP_UPDATE;
	}
	if ((rc = store_append_op(cx, &op, value)) != SL_OK)
		return rc;
	*appended = 1;
	return SL_OK;
}

/* Operations at the floor are read up to FLOOR_READ_OPS at a time with one
 * range statement (instead of one point read each), copied out before any
 * of them is re-appended: the statement is done before the log grows. */
#define FLOOR_READ_OPS 256

typedef struct floor_op {
	uint64_t loc;
	size_t element_off, element_len;
	size_t value_off, value_len;
	int has_value; /* inline value in the row; else it is in blobs */
} floor_op;

typedef struct floor_read {
	floor_op ops[FLOOR_READ_OPS];
	size_t n;
	sl_buf *bytes; /* elements and inline values of ops */
} floor_read;

static int floor_read_one(void *ctx, const log_entry *e)
{
	floor_read *r = ctx;
	floor_op *o = &r->ops[r->n];
	int rc;

	if (e->op->type != SL_OP_UPDATE) {
		o->loc = e->loc;
		o->element_len = 0; /* inactive: nothing to look at */
		r->n++;
		return SL_OK;
	}
	o->loc = e->loc;
	o->element_off = r->bytes->len;
	o->element_len = e->element_len;
	o->has_value = e->has_value;
	if ((rc = sl_buf_append(r->bytes, e->element, e->element_len)) != SL_OK)
		return rc;
	o->value_off = r->bytes->len;
	o->value_len = e->has_value ? e->value_len : 0;
	if (o->value_len && (rc = sl_buf_append(r->bytes, e->value, e->value_len)) != SL_OK)
		return rc;
	r->n++;
	return SL_OK;
}

/* Re-append the update at the floor if the state still points at it;
 * *moved is set to 1 if it did. */
static int floor_keep_active(append_ctx *cx, const floor_read *r, const floor_op *o, int *moved)
{
	const uint8_t *bytes = r->bytes->data;
	state_entry cur;
	sl_op op;
	int rc;

	*moved = 0;
	if (o->element_len == 0)
		return SL_OK;
	if ((rc = sl_op_decode(&op, bytes + o->element_off, o->element_len)) != SL_OK)
		return sl_error_wrap("operation %llu", (unsigned long long)o->loc);
	rc = store_lookup(cx->s, cx->cache, op.key, op.key_len, &cur);
	if (rc == SL_ENOTFOUND || (rc == SL_OK && cur.loc != o->loc))
		return SL_OK;
	if (rc != SL_OK)
		return rc;
	cx->moving = 1;
	if (o->has_value) {
		rc = store_append_op(cx, &op, bytes + o->value_off);
	} else {
		/* A large value stays in blobs under the same digest. */
		sl_buf blob = SL_BUF_INIT(SL_VALUE_MAX);
		if ((rc = store_value_get(cx->s, cx->cache->ns_id, &cur, &blob)) == SL_OK)
			rc = store_append_op(cx, &op, blob.data);
		sl_buf_free(&blob);
	}
	cx->moving = 0;
	*moved = rc == SL_OK;
	return rc;
}

/* Move the floor of a mutable namespace forward; see the file comment. */
static int raise_floor(append_ctx *cx, uint64_t budget, uint64_t *floor)
{
	uint64_t f = *floor, end = cx->loc; /* re-appended ops land past end */
	floor_read r;
	int rc;

	r.bytes = &cx->floor_ops;
	while (budget > 0 && f < end) {
		/* A small commit moves the floor a little: read about what its
		 * budget can use (inactive operations pass free), not 256. */
		uint64_t want = 2 * budget + 8 < FLOOR_READ_OPS ? 2 * budget + 8 : FLOOR_READ_OPS;
		uint64_t upto = end - f > want ? f + want : end;
		r.n = 0;
		sl_buf_reset(r.bytes);
		if ((rc = store_log_walk(cx->s, cx->cache->ns_id, f, upto, floor_read_one, &r)) !=
		    SL_OK)
			return rc;
		for (size_t i = 0; i < r.n && budget > 0; i++) {
			int moved;
			if ((rc = floor_keep_active(cx, &r, &r.ops[i], &moved)) != SL_OK)
				return rc;
			budget -= (uint64_t)moved;
			f++;
		}
	}
	*floor = f;
	return SL_OK;
}

int store_append_finish(append_ctx *cx, uint64_t floor)
{
	int rc;
	if ((rc = store_append_flush_tail(cx)) != SL_OK)
		return rc;
	cx->row.size = cx->loc;
	cx->row.floor = floor;
	sl_mmr_frontier_root(&cx->cache->frontier, &cx->row.root);
	cx->cache->ov_upto = cx->row.size;
	if (cx->row.size - cx->row.state_loc >= cx->s->state_flush_ops &&
	    (rc = store_state_flush(cx->s, &cx->row, cx->cache)) != SL_OK)
		return rc;
	if ((rc = store_ns_write(cx->s, &cx->row)) != SL_OK ||
	    (rc = store_commit_txn(cx->s)) != SL_OK)
		return rc;
	cx->cache->fr_size = cx->row.size;
	cx->cache->fr_root = cx->row.root;
	return SL_OK;
}

static int commit_locked(sl_batch *b, append_ctx *cx, sl_target *out)
{
	uint64_t n_appended = 0, floor;
	sl_op commit;
	int rc;

	if ((rc = store_ns_sync(cx->s, b->ns.name, &cx->row, &cx->cache)) != SL_OK ||
	    (rc = store_cache_writer(cx->s, &cx->row, cx->cache)) != SL_OK)
		return rc;
	cx->loc = cx->row.size;
	floor = cx->row.floor;
	for (size_t i = 0; i < b->n; i++) {
		int appended;
		if ((rc = apply_entry(cx, b, &b->entries[i], &appended)) != SL_OK)
			return rc;
		n_appended += (uint64_t)appended;
	}
	if (n_appended == 0) {
		out->size = cx->row.size;
		out->root = cx->row.root;
		out->floor = cx->row.floor;
		return SL_OK;
	}
	if (cx->row.kind == SL_NS_MUTABLE &&
	    (rc = raise_floor(cx, n_appended + 1, &floor)) != SL_OK)
		return rc;
	memset(&commit, 0, sizeof(commit));
	commit.type = SL_OP_COMMIT;
	commit.floor = floor;
	if ((rc = store_append_op(cx, &commit, NULL)) != SL_OK)
		return rc;
	if ((rc = store_append_finish(cx, floor)) != SL_OK)
		return rc;
	out->size = cx->row.size;
	out->root = cx->row.root;
	out->floor = floor;
	return SL_OK;
}

int sl_batch_commit(sl_batch *b, sl_target *out)
{
	append_ctx cx;
	sl_target target;
	int rc;

	memset(&cx, 0, sizeof(cx));
	cx.s = b->store;
	sl_buf_init(&cx.element, 2 * SL_KEY_MAX);
	sl_buf_init(&cx.floor_ops, FLOOR_READ_OPS * (2 * SL_KEY_MAX + SL_INLINE_VALUE_MAX));
	if ((rc = store_begin_write(b->store)) != SL_OK)
		goto cleanup;
	rc = commit_locked(b, &cx, &target);
	if (rc == SL_OK && !sqlite3_get_autocommit(b->store->db))
		rc = store_commit_txn(b->store); /* nothing appended: end the transaction */
cleanup:
	if (rc != SL_OK) {
		/* The overlay and frontier hold the rolled-back operations. */
		store_rollback_txn(b->store);
		store_cache_invalidate(b->store, b->ns.id);
	} else {
		b->n = 0;
		sl_buf_reset(&b->arena);
		if (out)
			*out = target;
	}
	sl_buf_free(&cx.element);
	sl_buf_free(&cx.floor_ops);
	return rc;
}

int sl_store_flush(sl_store *s, const char *ns)
{
	ns_row row;
	ns_cache *c;
	int rc;

	memset(&row, 0, sizeof(row));
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_sync(s, ns, &row, &c)) == SL_OK && row.state_loc < row.size &&
	    (rc = store_state_flush(s, &row, c)) == SL_OK)
		rc = store_ns_write(s, &row);
	if (rc == SL_OK)
		rc = store_commit_txn(s);
	if (rc != SL_OK) {
		store_rollback_txn(s);
		store_cache_invalidate(s, row.id);
	}
	return rc;
}
