/*
 * Verification and pruning.
 *
 * sl_store_verify checks the invariants of store.c against what is stored,
 * from one read snapshot, trusting nothing but the operations themselves:
 *   - the log holds exactly [pruned, size), every element decodes, its type
 *     suits the namespace kind, commit floors never decrease and never pass
 *     their own location, and the last operation is a commit whose floor is
 *     the namespace floor (I1);
 *   - re-appending every operation to an MMR (started from the stored peaks
 *     at the pruned boundary) reproduces every stored node, no node is
 *     stored past the end, and the root equals the stored root (I2);
 *   - replaying the operations into a temporary table reproduces the state
 *     table exactly, every live key sits at or above the floor (I3, I4),
 *     and every value re-hashes to its digest;
 *   - every operation whose value is in blobs finds it there, of the size
 *     it says (the live ones are re-hashed above; sync serves the others);
 *   - the item index holds exactly the items of the state table, with the
 *     right sums, and the items read now are those of the replay (S1, S2
 *     in items.c).
 * Nodes and leaves below the pruned boundary cannot be recomputed (their
 * operations are gone); the report says where checking started.
 *
 * That the blob table holds nothing else (I5) is a property of the whole
 * store: sl_store_verify_values in values.c.
 *
 * sl_store_prune deletes the operations below the floor of a mutable
 * namespace, and the values no remaining operation or dag entry refers
 * to (values.c), in one write transaction. MMR nodes are kept: proofs for
 * any range at or above the floor still work, and a syncing client
 * receives the pinned nodes.
 */
#include "store/store_internal.h"

#include "sluice/dag.h"

#include <string.h>

typedef struct verify_ctx {
	sl_store *s;
	ns_row row;
	ns_cache *cache;
	uint64_t last_floor;
	int last_is_commit;
	sl_verify_report report;
	sl_mmr_frontier frontier;
	chunk_reader nodes;
	sqlite3_stmt *replay_set, *replay_upsert, *replay_delete;
	sqlite3_stmt *blob_length;
} verify_ctx;

static int exec_temp(sl_store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, "verify");
}

static int prepare(sl_store *s, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
	return rc == SQLITE_OK ? SL_OK : store_sqlite_error(s, rc, "verify");
}

/* A single integer from sql with ?1 bound to a and ?2 to b. */
static int query_int(sl_store *s, const char *sql, int64_t a, int64_t b, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(s, sql, &st);
	if (rc != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SL_OK;
	} else {
		rc = store_sqlite_error(s, rc, "verify");
	}
	sqlite3_finalize(st);
	return rc;
}

static int replay_op(verify_ctx *v, uint64_t loc, const sl_op *op)
{
	sqlite3_stmt *st;
	int rc;
	switch (op->type) {
	case SL_OP_SET:
		st = v->replay_set;
		break;
	case SL_OP_UPDATE:
		st = v->replay_upsert;
		break;
	case SL_OP_DELETE:
		st = v->replay_delete;
		break;
	default:
		return SL_OK;
	}
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, op->key, (int)op->key_len, SQLITE_STATIC);
	if (op->type != SL_OP_DELETE) {
		sqlite3_bind_int64(st, 2, (int64_t)loc);
		sqlite3_bind_blob(st, 3, op->digest.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)op->value_len);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return sl_error_set(SL_ECORRUPT, "operation %llu sets immutable key '%.*s' again",
		                    (unsigned long long)loc, (int)op->key_len, op->key);
	return rc == SQLITE_DONE ? SL_OK : store_sqlite_error(v->s, rc, "verify replay");
}

static int check_op(verify_ctx *v, uint64_t loc, const sl_op *op, uint64_t *last_floor)
{
	int ok_type =
	        op->type == SL_OP_COMMIT ||
	        (v->row.kind == SL_NS_IMMUTABLE ? op->type == SL_OP_SET : op->type != SL_OP_SET);
	if (!ok_type)
		return sl_error_set(SL_ECORRUPT, "operation %llu: '%s' in a %s namespace",
		                    (unsigned long long)loc, sl_op_type_name(op->type),
		                    sl_ns_kind_name(v->row.kind));
	if (op->type == SL_OP_COMMIT) {
		if (op->floor < *last_floor || op->floor > loc)
			return sl_error_set(SL_ECORRUPT,
			                    "operation %llu: commit floor %llu out of order",
			                    (unsigned long long)loc, (unsigned long long)op->floor);
		*last_floor = op->floor;
	}
	return SL_OK;
}

/* A large value's row in blobs: there, and of the operation's size. */
static int check_blob(verify_ctx *v, const log_entry *e)
{
	sqlite3_stmt *st = v->blob_length;
	int64_t len = -1;
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, e->op->digest.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		len = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlite_error(v->s, rc, "verify values");
	if (len != (int64_t)e->op->value_len)
		return sl_error_set(SL_ECORRUPT, "operation %llu: its value %s %s",
		                    (unsigned long long)e->loc, sl_digest_to_hex(&e->op->digest).s,
		                    len < 0 ? "is missing" : "has another size");
	return SL_OK;
}

/* The value column of an operation row: a small set/update holds its
 * value, which must hash to the operation's digest; nothing else does. A
 * large one's value is in blobs. */
static int check_inline_value(verify_ctx *v, const log_entry *e)
{
	const sl_op *op = e->op;
	int sets = op->type == SL_OP_SET || op->type == SL_OP_UPDATE;
	int want = sets && op->value_len <= SL_INLINE_VALUE_MAX;
	sl_digest actual;
	if (e->has_value != want)
		return sl_error_set(SL_ECORRUPT, "operation %llu: value %s",
		                    (unsigned long long)e->loc,
		                    want ? "missing" : "where none belongs");
	if (!want)
		return sets ? check_blob(v, e) : SL_OK;
	sl_sha256(&actual, e->value, e->value_len);
	if (e->value_len != op->value_len || !sl_digest_eq(&actual, &op->digest))
		return sl_error_set(SL_ECORRUPT, "operation %llu: value does not match its digest",
		                    (unsigned long long)e->loc);
	return SL_OK;
}

/* At state_loc, the replay so far must equal the state table exactly. */
static int check_state_table(verify_ctx *v)
{
	int64_t missing = 0, unexpected = 0;
	int rc;
	if ((rc = query_int(v->s,
	                    "SELECT count(*) FROM (SELECT key, loc, digest, size FROM "
	                    "temp.verify_state EXCEPT SELECT key, loc, digest, size FROM "
	                    "main.state WHERE ns = ?1)",
	                    v->row.id, 0, &missing)) != SL_OK ||
	    (rc = query_int(v->s,
	                    "SELECT count(*) FROM (SELECT key, loc, digest, size FROM main.state "
	                    "WHERE ns = ?1 EXCEPT SELECT key, loc, digest, size FROM "
	                    "temp.verify_state)",
	                    v->row.id, 0, &unexpected)) != SL_OK)
		return rc;
	if (missing || unexpected)
		return sl_error_set(
		        SL_ECORRUPT,
		        "state table differs from the log at %llu: %lld entries missing "
		        "or changed, %lld unexpected",
		        (unsigned long long)v->row.state_loc, (long long)missing,
		        (long long)unexpected);
	return SL_OK;
}

/* Re-append one element and compare the nodes it creates with the store. */
static int check_nodes(verify_ctx *v, uint64_t loc, const uint8_t *element, size_t len)
{
	sl_digest created[SL_MMR_MAX_PEAKS + 1], stored;
	uint64_t first_pos;
	size_t n = sl_mmr_frontier_append(&v->frontier, element, len, created, &first_pos);
	int rc;
	if (n == 0)
		return sl_error_last()->code;
	for (size_t i = 0; i < n; i++) {
		if ((rc = chunk_reader_get(&v->nodes, first_pos + i, &stored)) != SL_OK)
			return rc;
		if (!sl_digest_eq(&stored, &created[i]))
			return sl_error_set(SL_ECORRUPT,
			                    "MMR node %llu (operation %llu) does not match the log",
			                    (unsigned long long)(first_pos + i),
			                    (unsigned long long)loc);
	}
	v->report.nodes_checked += n;
	return SL_OK;
}

static int verify_entry(void *ctx, const log_entry *e)
{
	verify_ctx *v = ctx;
	int rc;
	if (e->loc == v->row.state_loc && (rc = check_state_table(v)) != SL_OK)
		return rc;
	if ((rc = check_op(v, e->loc, e->op, &v->last_floor)) != SL_OK ||
	    (rc = check_inline_value(v, e)) != SL_OK ||
	    (rc = check_nodes(v, e->loc, e->element, e->element_len)) != SL_OK ||
	    (rc = replay_op(v, e->loc, e->op)) != SL_OK)
		return rc;
	v->last_is_commit = e->op->type == SL_OP_COMMIT;
	v->report.ops_checked++;
	return SL_OK;
}

static int walk_log(verify_ctx *v)
{
	int rc = store_log_walk(v->s, v->row.id, v->row.pruned, v->row.size, verify_entry, v);
	if (rc != SL_OK)
		return rc;
	if (v->row.state_loc == v->row.size && (rc = check_state_table(v)) != SL_OK)
		return rc;
	if (v->row.size > v->row.pruned && !v->last_is_commit)
		return sl_error_set(SL_ECORRUPT, "the last operation is not a commit");
	if (v->row.size > v->row.pruned &&
	    (v->last_floor > v->row.pruned ? v->last_floor : v->row.pruned) != v->row.floor)
		return sl_error_set(SL_ECORRUPT, "last commit floor %llu, namespace floor %llu",
		                    (unsigned long long)v->last_floor,
		                    (unsigned long long)v->row.floor);
	return SL_OK;
}

static int check_tail(verify_ctx *v)
{
	uint64_t mmr_size = sl_mmr_size_for_leaves(v->row.size);
	uint64_t n_chunks = (mmr_size + SL_CHUNK_NODES - 1) / SL_CHUNK_NODES;
	int64_t extra_chunks, extra_ops, stored_bytes = 0;
	sl_digest root;
	int rc;

	sl_mmr_frontier_root(&v->frontier, &root);
	if (!sl_digest_eq(&root, &v->row.root))
		return sl_error_set(SL_ECORRUPT,
		                    "the root computed from the log (%s) differs from "
		                    "the stored root (%s)",
		                    sl_digest_to_hex(&root).s, sl_digest_to_hex(&v->row.root).s);
	if ((rc = query_int(v->s, "SELECT count(*) FROM mmr WHERE id >= ?1 AND id < ?2",
	                    store_pack_id(v->row.id, n_chunks), store_pack_id(v->row.id + 1, 0),
	                    &extra_chunks)) != SL_OK ||
	    (rc = query_int(v->s, "SELECT count(*) FROM ops WHERE (id >= ?1 AND id < ?2)",
	                    store_pack_id(v->row.id, v->row.size), store_pack_id(v->row.id + 1, 0),
	                    &extra_ops)) != SL_OK)
		return rc;
	if (n_chunks > 0 &&
	    (rc = query_int(v->s,
	                    "SELECT coalesce((SELECT length(nodes) FROM mmr WHERE id = ?1), 0)",
	                    store_pack_id(v->row.id, n_chunks - 1), 0, &stored_bytes)) != SL_OK)
		return rc;
	if (extra_chunks != 0 ||
	    (n_chunks > 0 &&
	     stored_bytes !=
	             (int64_t)((mmr_size - (n_chunks - 1) * SL_CHUNK_NODES) * SL_DIGEST_LEN)))
		return sl_error_set(SL_ECORRUPT, "MMR nodes are stored past position %llu",
		                    (unsigned long long)mmr_size);
	if (extra_ops != 0)
		return sl_error_set(SL_ECORRUPT, "%lld operations are stored past the last commit",
		                    (long long)extra_ops);
	return SL_OK;
}

/* The current state (table and overlay) must equal the full replay, no
 * live key may sit below the floor, and every live value must re-hash to
 * its digest. */
static int check_state(verify_ctx *v)
{
	sl_buf value = SL_BUF_INIT(SL_VALUE_MAX);
	sqlite3_stmt *st = NULL;
	uint64_t live = 0;
	sl_item_sum item_sum;
	int rc;

	sl_item_sum_zero(&item_sum);

	if ((rc = store_count_live_keys(v->s, v->cache, &live)) != SL_OK ||
	    (rc = prepare(v->s, "SELECT key, loc, digest, size FROM temp.verify_state", &st)) !=
	            SL_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = sqlite3_column_blob(st, 0);
		int key_len = sqlite3_column_bytes(st, 0);
		state_entry want = {(uint64_t)sqlite3_column_int64(st, 1),
		                    {{0}},
		                    (uint64_t)sqlite3_column_int64(st, 3)};
		state_entry have;
		memcpy(want.digest.bytes, sqlite3_column_blob(st, 2), SL_DIGEST_LEN);
		rc = store_lookup(v->s, v->cache, key, (size_t)key_len, &have);
		if (rc != SL_OK && rc != SL_ENOTFOUND)
			goto out;
		if (rc == SL_ENOTFOUND || have.loc != want.loc || have.size != want.size ||
		    !sl_digest_eq(&have.digest, &want.digest)) {
			rc = sl_error_set(SL_ECORRUPT, "state of '%.*s' differs from the log",
			                  key_len, key);
			goto out;
		}
		if (want.loc < v->row.floor) {
			rc = sl_error_set(SL_ECORRUPT, "live key '%.*s' sits below the floor %llu",
			                  key_len, key, (unsigned long long)v->row.floor);
			goto out;
		}
		if ((rc = store_value_get(v->s, v->row.id, &want, &value)) != SL_OK) {
			sl_error_wrap("key '%.*s'", key_len, key);
			goto out;
		}
		uint8_t id[SL_ITEM_ID_LEN];
		sl_state_item_id(id, key, (size_t)key_len, &want.digest);
		sl_item_sum_add_id(&item_sum, id);
		v->report.keys_checked++;
		v->report.blobs_checked++;
	}
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(v->s, rc, "verify state");
		goto out;
	}
	if (live != v->report.keys_checked) {
		rc = sl_error_set(SL_ECORRUPT, "%llu live keys, the log has %llu",
		                  (unsigned long long)live,
		                  (unsigned long long)v->report.keys_checked);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = store_items_verify(v->s, &v->row, v->cache, live, &item_sum, &v->report.items_checked);
out:
	sqlite3_finalize(st);
	sl_buf_free(&value);
	return rc;
}

static int verify_locked(verify_ctx *v, const char *ns)
{
	sl_mmr_nodes nodes;
	int rc;

	if ((rc = store_ns_sync(v->s, ns, &v->row, &v->cache)) != SL_OK)
		return rc;
	v->report.pruned = v->row.pruned;
	chunk_reader_init(&v->nodes, v->s, v->row.id);
	nodes = chunk_reader_nodes(&v->nodes);
	if ((rc = sl_mmr_frontier_load(&v->frontier, v->row.pruned, &nodes)) != SL_OK)
		return rc;
	if ((rc = exec_temp(v->s, "CREATE TEMP TABLE IF NOT EXISTS verify_state(key BLOB PRIMARY "
	                          "KEY, loc INTEGER, digest BLOB, size INTEGER) WITHOUT ROWID; "
	                          "DELETE FROM temp.verify_state;")) != SL_OK ||
	    (rc = prepare(v->s, "INSERT INTO temp.verify_state VALUES (?1, ?2, ?3, ?4)",
	                  &v->replay_set)) != SL_OK ||
	    (rc = prepare(v->s, "INSERT OR REPLACE INTO temp.verify_state VALUES (?1, ?2, ?3, ?4)",
	                  &v->replay_upsert)) != SL_OK ||
	    (rc = prepare(v->s, "DELETE FROM temp.verify_state WHERE key = ?1",
	                  &v->replay_delete)) != SL_OK ||
	    (rc = prepare(v->s, "SELECT length(value) FROM blobs WHERE digest = ?1",
	                  &v->blob_length)) != SL_OK)
		return rc;
	if ((rc = walk_log(v)) != SL_OK || (rc = check_tail(v)) != SL_OK ||
	    (rc = check_state(v)) != SL_OK)
		return rc;
	return SL_OK;
}

int sl_store_verify(sl_store *s, const char *ns, sl_verify_report *out)
{
	verify_ctx v;
	int rc;

	memset(&v, 0, sizeof(v));
	v.s = s;
	if ((rc = store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_load_any(s, ns, &v.row)) == SL_OK && v.row.kind == SL_NS_DAG) {
		store_rollback_txn(s);
		return sl_dag_verify(s, ns, out); /* its own checks, dag.c */
	}
	rc = verify_locked(&v, ns);
	sqlite3_finalize(v.replay_set);
	sqlite3_finalize(v.replay_upsert);
	sqlite3_finalize(v.replay_delete);
	sqlite3_finalize(v.blob_length);
	store_rollback_txn(s);
	sqlite3_exec(s->db, "DROP TABLE IF EXISTS temp.verify_state", NULL, NULL, NULL);
	if (rc != SL_OK)
		return sl_error_wrap("verify '%s'", ns);
	if (out)
		*out = v.report;
	return SL_OK;
}

int sl_store_prune_report(sl_store *s, const char *ns, sl_prune_report *out)
{
	sl_prune_report report;
	ns_cache *c;
	ns_row row;
	int rc;

	memset(&row, 0, sizeof(row));
	memset(&report, 0, sizeof(report));
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = store_ns_load_any(s, ns, &row)) != SL_OK)
		goto cleanup;
	if (row.kind == SL_NS_IMMUTABLE) {
		rc = sl_error_set(SL_EINVAL,
		                  "namespace '%s' is immutable: its operations never become "
		                  "inactive (its floor stays 0), so there is nothing to prune",
		                  ns);
		goto cleanup;
	}
	if (row.kind == SL_NS_DAG) {
		rc = sl_error_set(SL_EINVAL,
		                  "namespace '%s' is a dag namespace: it keeps every entry it "
		                  "holds, so there is nothing to prune",
		                  ns);
		goto cleanup;
	}
	if ((rc = store_ns_sync_row(s, &row, &c)) != SL_OK)
		goto cleanup;
	report.from = report.to = row.pruned;
	if (row.floor > row.pruned) {
		/* The state table must not refer to operations about to go. */
		if (row.state_loc < row.size && (rc = store_state_flush(s, &row, c)) != SL_OK)
			goto cleanup;
		if ((rc = store_values_prune(s, row.id, row.pruned, row.floor, &report.values,
		                             &report.value_bytes)) != SL_OK)
			goto cleanup;
		row.pruned = report.to = row.floor;
		if ((rc = store_ns_write(s, &row)) != SL_OK)
			goto cleanup;
	}
	rc = store_commit_txn(s);
cleanup:
	if (rc != SL_OK) {
		store_rollback_txn(s);
		store_cache_invalidate(s, row.id);
	} else if (out) {
		*out = report;
	}
	return rc;
}

int sl_store_prune(sl_store *s, const char *ns, uint64_t *pruned_to)
{
	sl_prune_report report;
	int rc = sl_store_prune_report(s, ns, &report);
	if (rc == SL_OK && pruned_to)
		*pruned_to = report.to;
	return rc;
}
