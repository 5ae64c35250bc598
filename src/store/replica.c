/*
 * Replication: a namespace that copies another node's log operation by
 * operation, so its MMR and root are the other node's.
 *
 * The caller (sync/) verifies every operation against a root it trusts
 * before handing it here; this module checks what a store must hold to
 * stay sound whatever it is given: each element decodes, suits the
 * namespace kind, carries its value (re-hashed against the digest), commit
 * floors never decrease or pass their own location, and a run of
 * operations ends with a commit, so readers still only see whole commits.
 * It does not re-check the immutable "set once" rule: the log is the
 * authenticated record, and the replica mirrors it as it is.
 *
 * A replica of a mutable namespace may start at the other node's floor
 * instead of location 0 (sl_store_ns_create_at). It then holds no
 * operation below `start`, and of the MMR nodes below position
 * size(start) only the pinned nodes (the peaks of the MMR of `start`
 * leaves), which are all that appending and proving any range at or above
 * `start` need: every node a range proof for [a, b) with a >= start
 * carries is either such a peak or a node created after leaf `start`. The
 * other positions of the chunks that hold pinned nodes are zero
 * placeholders that nothing reads. The namespace starts with size =
 * pruned = state_loc = floor = start. Until it reaches the target it
 * started from, its commits may carry floors below `start` (the other
 * node's earlier commits), so its floor is max(last commit floor, pruned)
 * (store.c, I1), and its state is that of [start, size) only.
 *
 * A replica whose source pruned operations it still needs is built again
 * beside it, under another name, and then takes its place
 * (sl_store_ns_replace): in one write transaction the old namespace's
 * rows (log, MMR, state, item index, its namespaces row, and the values
 * in blobs that only its log referred to) are deleted and the new
 * namespace is renamed to the old name. Readers see the old copy
 * or the new one, never neither and never a mix, and a crash leaves one
 * of the two states, as SQLite commits the transaction whole or not at
 * all. The new namespace keeps its id, so no row moves. Ids are never
 * given twice (format 4, store.c), so a handle of another process that
 * still caches a dropped or replaced namespace's id never meets it again.
 */
#include "store/store_internal.h"

#include <string.h>

/* Write the chunks that hold a pinned node, and the tail chunk (the
 * writer loads it to continue appending), each as long as the MMR of
 * `start` leaves makes it, zeros where a node is not known. */
static int write_pinned_chunks(sl_store *s, int64_t ns_id, uint64_t start, const sl_digest *pinned,
                               size_t n_pinned)
{
	uint64_t pos[SL_MMR_MAX_PEAKS], chunks[SL_MMR_MAX_PEAKS + 1];
	uint64_t mmr_size = sl_mmr_size_for_leaves(start);
	sl_digest nodes[SL_CHUNK_NODES];
	size_t n = sl_mmr_pinned_positions(start, pos), n_chunks = 0;
	int rc;

	if (n != n_pinned)
		return sl_error_set(SL_EINVAL,
		                    "a replica starting at %llu needs %zu pinned nodes, got %zu",
		                    (unsigned long long)start, n, n_pinned);
	for (size_t i = 0; i < n; i++)
		if (n_chunks == 0 || chunks[n_chunks - 1] != pos[i] / SL_CHUNK_NODES)
			chunks[n_chunks++] = pos[i] / SL_CHUNK_NODES;
	if (mmr_size % SL_CHUNK_NODES != 0 &&
	    (n_chunks == 0 || chunks[n_chunks - 1] != mmr_size / SL_CHUNK_NODES))
		chunks[n_chunks++] = mmr_size / SL_CHUNK_NODES;
	for (size_t c = 0; c < n_chunks; c++) {
		uint64_t first = chunks[c] * SL_CHUNK_NODES;
		uint64_t len =
		        mmr_size - first < SL_CHUNK_NODES ? mmr_size - first : SL_CHUNK_NODES;
		sqlite3_stmt *st;

		memset(nodes, 0, sizeof(nodes));
		for (size_t i = 0; i < n; i++)
			if (pos[i] / SL_CHUNK_NODES == chunks[c])
				nodes[pos[i] - first] = pinned[i];
		if (!(st = store_stmt(s, STMT_CHUNK_PUT)))
			return sl_error_last()->code;
		sqlite3_bind_int64(st, 1, store_pack_id(ns_id, chunks[c]));
		sqlite3_bind_blob(st, 2, nodes, (int)(len * SL_DIGEST_LEN), SQLITE_STATIC);
		if ((rc = store_step_done(s, st, "write pinned MMR nodes")) != SL_OK)
			return rc;
	}
	return SL_OK;
}

int sl_store_ns_create_at(sl_store *s, const char *name, sl_ns_kind kind, uint64_t start,
                          const sl_digest *pinned, size_t n_pinned)
{
	sl_mmr_frontier frontier;
	ns_row row;
	int rc;

	memset(&row, 0, sizeof(row));
	if (start >= SL_LOC_LIMIT)
		return sl_error_set(SL_ETOOLARGE, "start location %llu is past the limit",
		                    (unsigned long long)start);
	if ((rc = sl_mmr_frontier_set(&frontier, start, pinned, n_pinned)) != SL_OK)
		return rc;
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_insert(s, name, kind)) != SL_OK ||
	    (rc = store_ns_load(s, name, &row)) != SL_OK)
		goto cleanup;
	if (start > 0) {
		if ((rc = write_pinned_chunks(s, row.id, start, pinned, n_pinned)) != SL_OK)
			goto cleanup;
		row.size = row.pruned = row.state_loc = row.floor = start;
		sl_mmr_frontier_root(&frontier, &row.root);
		if ((rc = store_ns_write(s, &row)) != SL_OK)
			goto cleanup;
	}
	rc = store_commit_txn(s);
cleanup:
	if (rc != SL_OK) {
		store_rollback_txn(s);
		if (row.id)
			store_cache_invalidate(s, row.id);
	}
	return rc;
}

/* Check one received operation before it is appended at cx->loc. */
static int check_received(const append_ctx *cx, const sl_op *op, const sl_bytes *value,
                          uint64_t *floor)
{
	uint64_t loc = cx->loc;
	sl_digest actual;

	switch (op->type) {
	case SL_OP_SET:
	case SL_OP_UPDATE:
		if ((op->type == SL_OP_SET) != (cx->row.kind == SL_NS_IMMUTABLE))
			break;
		if (value->len != op->value_len)
			return sl_error_set(
			        SL_EVERIFY,
			        "operation %llu: value of %zu bytes, the operation says "
			        "%llu",
			        (unsigned long long)loc, value->len,
			        (unsigned long long)op->value_len);
		sl_sha256(&actual, value->data, value->len);
		if (!sl_digest_eq(&actual, &op->digest))
			return sl_error_set(SL_EVERIFY,
			                    "operation %llu: the value does not match its digest",
			                    (unsigned long long)loc);
		return SL_OK;
	case SL_OP_DELETE:
		if (cx->row.kind != SL_NS_MUTABLE)
			break;
		return SL_OK;
	case SL_OP_COMMIT:
		if (op->floor < *floor || op->floor > loc ||
		    (cx->row.kind == SL_NS_IMMUTABLE && op->floor != 0))
			return sl_error_set(
			        SL_ECORRUPT,
			        "operation %llu: commit floor %llu out of order (previous "
			        "%llu)",
			        (unsigned long long)loc, (unsigned long long)op->floor,
			        (unsigned long long)*floor);
		*floor = op->floor;
		return SL_OK;
	}
	return sl_error_set(SL_ECORRUPT, "operation %llu: a %s does not belong in a %s namespace",
	                    (unsigned long long)loc, sl_op_type_name(op->type),
	                    sl_ns_kind_name(cx->row.kind));
}

static int append_locked(append_ctx *cx, const char *ns, uint64_t start, const sl_bytes *elements,
                         const sl_bytes *values, size_t n)
{
	uint64_t floor;
	int rc, last_is_commit = 0;
	sl_op op;

	if ((rc = store_ns_sync(cx->s, ns, &cx->row, &cx->cache)) != SL_OK ||
	    (rc = store_cache_writer(cx->s, &cx->row, cx->cache)) != SL_OK)
		return rc;
	if (cx->row.size != start)
		return sl_error_set(SL_ECONFLICT,
		                    "namespace '%s' holds %llu operations; the operations received "
		                    "start at %llu",
		                    ns, (unsigned long long)cx->row.size,
		                    (unsigned long long)start);
	cx->loc = start;
	/* At the pruned boundary the floor may have been raised to it (I1);
	 * the last commit's own floor is then only known to be below. */
	floor = cx->row.floor > cx->row.pruned ? cx->row.floor : 0;
	for (size_t i = 0; i < n; i++) {
		if ((rc = sl_op_decode(&op, elements[i].data, elements[i].len)) != SL_OK)
			return sl_error_wrap("operation %llu", (unsigned long long)cx->loc);
		if ((rc = check_received(cx, &op, &values[i], &floor)) != SL_OK ||
		    (rc = store_append_op(cx, &op, values[i].data)) != SL_OK)
			return rc;
		last_is_commit = op.type == SL_OP_COMMIT;
	}
	if (!last_is_commit)
		return sl_error_set(SL_EINVAL, "the operations received do not end with a commit");
	return store_append_finish(cx, floor > cx->row.pruned ? floor : cx->row.pruned);
}

int sl_store_append_ops(sl_store *s, const char *ns, uint64_t start, const sl_bytes *elements,
                        const sl_bytes *values, size_t n, sl_target *out)
{
	append_ctx cx;
	int rc;

	memset(&cx, 0, sizeof(cx));
	cx.s = s;
	sl_buf_init(&cx.element, 2 * SL_KEY_MAX);
	if ((rc = store_begin_write(s)) != SL_OK)
		goto cleanup;
	rc = append_locked(&cx, ns, start, elements, values, n);
cleanup:
	if (rc != SL_OK) {
		store_rollback_txn(s);
		if (cx.cache)
			store_cache_invalidate(s, cx.cache->ns_id);
	} else if (out) {
		out->size = cx.row.size;
		out->root = cx.row.root;
		out->floor = cx.row.floor;
	}
	sl_buf_free(&cx.element);
	return rc;
}

/* ------------------------------------------------ dropping and replacing */

/* The rows keyed by namespace id besides its log: the MMR by packed id,
 * the state, the namespace's row, and (format 2 on) the item index. */
static const char *const drop_sql[] = {
        "DELETE FROM mmr WHERE id >= ?1 AND id < ?2", "DELETE FROM state WHERE ns = ?3",
        "DELETE FROM namespaces WHERE id = ?3",       "DELETE FROM items WHERE ns = ?3",
        "DELETE FROM item_sums WHERE ns = ?3",
};

/* Inside a write transaction: run sql with ?1, ?2 and ?3 bound to the
 * ones of its parameters that it has. */
static int exec_bound(sl_store *s, const char *sql, int64_t a, int64_t b, int64_t c,
                      const char *what)
{
	const int64_t args[3] = {a, b, c};
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_error(s, rc, what);
	for (int i = 1; i <= sqlite3_bind_parameter_count(st) && i <= 3; i++)
		sqlite3_bind_int64(st, i, args[i - 1]);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? SL_OK : store_sqlite_error(s, rc, what);
	sqlite3_finalize(st);
	return rc;
}

/* Inside a write transaction: every row of the namespace. Its log goes as
 * a prune's does, with the values in blobs that nothing else refers to
 * (values.c, V1); values other namespaces share stay. */
static int drop_rows(sl_store *s, const ns_row *row)
{
	size_t n = sizeof(drop_sql) / sizeof(drop_sql[0]);
	uint64_t n_values, n_bytes;
	int rc;

	if ((rc = store_values_prune(s, row->id, row->pruned, row->size, &n_values, &n_bytes)) !=
	    SL_OK)
		return sl_error_wrap("drop namespace '%s'", row->name);
	if (s->format < 2)
		n -= 2; /* no item index yet */
	for (size_t i = 0; i < n; i++)
		if ((rc = exec_bound(s, drop_sql[i], store_pack_id(row->id, 0),
		                     store_pack_id(row->id + 1, 0), row->id, "drop namespace")) !=
		    SL_OK)
			return sl_error_wrap("drop namespace '%s'", row->name);
	return SL_OK;
}

int sl_store_ns_drop(sl_store *s, const char *name)
{
	ns_row row;
	int rc;

	memset(&row, 0, sizeof(row));
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_load(s, name, &row)) != SL_OK || (rc = drop_rows(s, &row)) != SL_OK)
		goto cleanup;
	rc = store_commit_txn(s);
cleanup:
	if (rc != SL_OK)
		store_rollback_txn(s);
	else
		store_cache_invalidate(s, row.id);
	return rc;
}

int sl_store_ns_replace(sl_store *s, const char *name, const char *from)
{
	ns_row old, row;
	int rc;

	memset(&old, 0, sizeof(old));
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_load(s, name, &old)) != SL_OK ||
	    (rc = store_ns_load(s, from, &row)) != SL_OK)
		goto cleanup;
	if (old.id == row.id) {
		rc = sl_error_set(SL_EINVAL, "namespace '%s' cannot replace itself", name);
		goto cleanup;
	}
	if (old.kind != row.kind) {
		rc = sl_error_set(SL_ECONFLICT, "namespace '%s' is %s, '%s' is %s", name,
		                  sl_ns_kind_name(old.kind), from, sl_ns_kind_name(row.kind));
		goto cleanup;
	}
	/* The old rows go first: the name is unique. The new namespace keeps
	 * its id, so its rows, and the handle's cache of them, stay as they
	 * are. */
	if ((rc = drop_rows(s, &old)) != SL_OK)
		goto cleanup;
	{
		sqlite3_stmt *st = NULL;
		int src = sqlite3_prepare_v2(s->db, "UPDATE namespaces SET name = ?1 WHERE id = ?2",
		                             -1, &st, NULL);
		if (src != SQLITE_OK) {
			rc = store_sqlite_error(s, src, "rename namespace");
			goto cleanup;
		}
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, row.id);
		src = sqlite3_step(st);
		rc = src == SQLITE_DONE ? SL_OK : store_sqlite_error(s, src, "rename namespace");
		sqlite3_finalize(st);
		if (rc != SL_OK)
			goto cleanup;
	}
	rc = store_commit_txn(s);
cleanup:
	if (rc != SL_OK)
		store_rollback_txn(s);
	else
		store_cache_invalidate(s, old.id);
	return rc;
}
