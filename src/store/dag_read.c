/*
 * Reading DAG namespaces: info, the log, the tips and roles
 * (include/sluice/dag.h), and the merged state as the store's reads see
 * it (read.c dispatches here for dag namespaces).
 */
#include "store/dag_internal.h"

#include <stdio.h>
#include <string.h>

/* --------------------------------------------------------------- reading */

int sl_dag_info_get(sl_store *s, const char *ns, sl_dag_info *out)
{
	sqlite3_stmt *st = NULL;
	dag_txn t;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = dag_txn_begin(&t, s, ns, 0)) != SL_OK)
		return rc;
	out->ns_id = t.row.root;
	out->entries = t.row.size;
	if ((rc = dag_prepare(
	             s, &st,
	             "SELECT (SELECT count(*) FROM dag_state WHERE ns = ?1 AND deleted = 0), "
	             "(SELECT max(height) FROM dag_entries WHERE ns = ?1)")) != SL_OK)
		goto cleanup;
	sqlite3_bind_int64(st, 1, t.row.id);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		rc = store_sqlite_error(s, rc, "read the namespace");
		goto cleanup;
	}
	out->keys = (uint64_t)sqlite3_column_int64(st, 0);
	out->max_height = (uint64_t)sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = dag_prepare(s, &st,
	                      "SELECT e.id FROM dag_tips t JOIN dag_entries e ON e.ns = t.ns AND "
	                      "e.id = t.id WHERE t.ns = ?1 ORDER BY e.height, e.id")) != SL_OK)
		goto cleanup;
	sqlite3_bind_int64(st, 1, t.row.id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (out->n_tips++ < SL_DAG_MAX_PARENTS &&
		    sqlite3_column_bytes(st, 0) == SL_DIGEST_LEN)
			memcpy(out->tips[out->n_tips - 1].bytes, sqlite3_column_blob(st, 0),
			       SL_DIGEST_LEN);
	rc = rc == SQLITE_DONE ? SL_OK : store_sqlite_error(s, rc, "read the tips");
cleanup:
	sqlite3_finalize(st);
	return dag_txn_end(&t, rc, 0);
}

/* Entries of sql (ns bound to ?1), each decoded and handed to cb. */
static int each_entry(sl_store *s, const char *ns, const char *sql, sl_dag_entry_fn cb, void *ctx)
{
	sqlite3_stmt *st = NULL;
	dag_txn t;
	int rc;

	if ((rc = dag_txn_begin(&t, s, ns, 0)) != SL_OK)
		return rc;
	if ((rc = dag_prepare(s, &st, sql)) != SL_OK)
		return dag_txn_end(&t, rc, 0);
	sqlite3_bind_int64(st, 1, t.row.id);
	for (;;) {
		const uint8_t *enc;
		size_t len;
		sl_dag_entry e;
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(s, step, "read entries");
			break;
		}
		enc = sqlite3_column_blob(st, 0);
		len = (size_t)sqlite3_column_bytes(st, 0);
		if ((rc = dag_entry_decode_checked(&e, enc, len)) != SL_OK) {
			sl_error_wrap("a stored entry");
			break;
		}
		rc = cb(ctx, &e, enc, len);
		sl_dag_entry_free(&e);
		if (rc != 0)
			break;
	}
	sqlite3_finalize(st);
	return dag_txn_end(&t, rc, 0);
}

int sl_dag_log(sl_store *s, const char *ns, sl_dag_entry_fn cb, void *ctx)
{
	return each_entry(s, ns,
	                  "SELECT encoding FROM dag_entries WHERE ns = ?1 ORDER BY height, id", cb,
	                  ctx);
}

int sl_dag_tips(sl_store *s, const char *ns, sl_dag_entry_fn cb, void *ctx)
{
	return each_entry(s, ns,
	                  "SELECT e.encoding FROM dag_tips t JOIN dag_entries e ON e.ns = t.ns "
	                  "AND e.id = t.id WHERE t.ns = ?1 ORDER BY e.height, e.id",
	                  cb, ctx);
}

/* The reduced front of every tip: the roles of the namespace as held. */
static int current_roles(dag_txn *t)
{
	sqlite3_stmt *st = NULL;
	dag_ids front = {0};
	int rc;
	if ((rc = dag_prepare(
	             t->s, &st,
	             "SELECT e.sfront FROM dag_tips t JOIN dag_entries e ON e.ns = t.ns AND "
	             "e.id = t.id WHERE t.ns = ?1")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, t->row.id);
	for (;;) {
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(t->s, step, "read the tips");
			break;
		}
		if ((rc = dag_ids_from_blob(&front, sqlite3_column_blob(st, 0),
		                            sqlite3_column_bytes(st, 0))) != SL_OK)
			break;
	}
	sqlite3_finalize(st);
	if (rc == SL_OK && (rc = dag_reduce_front(t, &front)) == SL_OK)
		rc = dag_roles_at(t, &front);
	sl_free(front.ids);
	return rc;
}

int sl_dag_role_of(sl_store *s, const char *ns, const uint8_t pk[SL_ED25519_PK_LEN],
                   sl_dag_role *out)
{
	dag_txn t;
	int rc;
	if ((rc = dag_txn_begin(&t, s, ns, 0)) != SL_OK)
		return rc;
	if ((rc = current_roles(&t)) == SL_OK)
		*out = dag_role_in(&t, pk);
	return dag_txn_end(&t, rc, 0);
}

/* ------------------------------------------------- state reads (read.c) */

int store_dag_get(sl_store *s, const ns_row *row, const char *key, size_t key_len, state_entry *out)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = dag_prepare(
	             s, &st,
	             "SELECT digest, size, deleted FROM dag_state WHERE ns = ?1 AND key = ?2")) !=
	    SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_blob(st, 2, key, (int)key_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int(st, 2) == 0 &&
	    sqlite3_column_bytes(st, 0) == SL_DIGEST_LEN) {
		memcpy(out->digest.bytes, sqlite3_column_blob(st, 0), SL_DIGEST_LEN);
		out->size = (uint64_t)sqlite3_column_int64(st, 1);
		out->loc = 0;
		rc = SL_OK;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		rc = SL_ENOTFOUND;
	} else {
		rc = store_sqlite_error(s, rc, "read the state");
	}
	sqlite3_finalize(st);
	return rc;
}

int store_dag_list(sl_store *s, const ns_row *row, const char *prefix, size_t prefix_len,
                   sl_key_fn cb, void *ctx)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = dag_prepare(s, &st,
	                      "SELECT key, digest, size, height FROM dag_state WHERE ns = ?1 AND "
	                      "key >= ?2 AND deleted = 0 ORDER BY key")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_blob(st, 2, prefix, (int)prefix_len, SQLITE_STATIC);
	for (;;) {
		sl_key_entry e;
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(s, step, "list the state");
			break;
		}
		e.key = sqlite3_column_blob(st, 0);
		e.key_len = (size_t)sqlite3_column_bytes(st, 0);
		if (e.key_len < prefix_len || memcmp(e.key, prefix, prefix_len) != 0) {
			rc = SL_OK; /* past the prefix */
			break;
		}
		if (sqlite3_column_bytes(st, 1) != SL_DIGEST_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "a state entry is damaged");
			break;
		}
		memcpy(e.digest.bytes, sqlite3_column_blob(st, 1), SL_DIGEST_LEN);
		e.value_len = (uint64_t)sqlite3_column_int64(st, 2);
		e.loc = (uint64_t)sqlite3_column_int64(st, 3);
		if ((rc = cb(ctx, &e)) != 0)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}
int store_dag_count_keys(sl_store *s, const ns_row *row, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = dag_prepare(s, &st,
	                      "SELECT count(*) FROM dag_state WHERE ns = ?1 AND deleted = 0")) !=
	    SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	rc = sqlite3_step(st);
	*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? SL_OK : store_sqlite_error(s, rc, "count keys");
}

int store_dag_value(sl_store *s, const state_entry *st, sl_buf *value)
{
	sl_digest actual;
	int rc = store_blob_get(s, &st->digest, value);
	if (rc != SL_OK)
		return rc;
	sl_sha256(&actual, value->data, value->len);
	if (!sl_digest_eq(&actual, &st->digest) || value->len != st->size)
		return sl_error_set(SL_ECORRUPT, "value %s does not match its digest",
		                    sl_digest_to_hex(&st->digest).s);
	return SL_OK;
}

int sl_dag_find(sl_store *s, const sl_digest *ns_id, char name[SL_NS_NAME_MAX + 1])
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = dag_prepare(s, &st,
	                      "SELECT name FROM namespaces WHERE kind = ?1 AND root = ?2 ORDER BY "
	                      "name LIMIT 1")) == SL_OK) {
		sqlite3_bind_int(st, 1, SL_NS_DAG);
		sqlite3_bind_blob(st, 2, ns_id->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			snprintf(name, SL_NS_NAME_MAX + 1, "%s",
			         (const char *)sqlite3_column_text(st, 0));
			rc = SL_OK;
		} else if (rc == SQLITE_DONE) {
			rc = sl_error_set(SL_ENOTFOUND, "no dag namespace %s here",
			                  sl_digest_to_hex(ns_id).s);
		} else {
			rc = store_sqlite_error(s, rc, "find a namespace");
		}
	}
	sqlite3_finalize(st);
	store_rollback_txn(s);
	return rc;
}

typedef struct tips_ctx {
	sl_digest *ids;
	size_t cap, *n;
	uint64_t *entries;
} tips_ctx;

static int read_tip_ids(dag_txn *t, sqlite3_stmt *st, void *ctx)
{
	tips_ctx *c = ctx;
	int rc;
	*c->entries = t->row.size; /* of the same snapshot */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != SL_DIGEST_LEN)
			return sl_error_set(SL_ECORRUPT, "a tip's id is damaged");
		if (*c->n < c->cap)
			memcpy(c->ids[*c->n].bytes, sqlite3_column_blob(st, 0), SL_DIGEST_LEN);
		(*c->n)++;
	}
	return rc == SQLITE_DONE ? SL_OK : store_sqlite_error(t->s, rc, "read the tips");
}

int sl_dag_tip_ids(sl_store *s, const char *ns, sl_digest *ids, size_t cap, size_t *n,
                   uint64_t *entries)
{
	tips_ctx c = {ids, cap, n, entries};
	*n = 0;
	return dag_read_query(s, ns,
	                      "SELECT e.id FROM dag_tips t JOIN dag_entries e ON e.ns = t.ns AND "
	                      "e.id = t.id WHERE t.ns = ?1 ORDER BY e.height, e.id",
	                      read_tip_ids, &c);
}

static int read_root(dag_txn *t, sqlite3_stmt *st, void *ctx)
{
	int rc;
	sqlite3_bind_blob(st, 2, t->row.root.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return sl_buf_set(ctx, sqlite3_column_blob(st, 0),
		                  (size_t)sqlite3_column_bytes(st, 0));
	return rc == SQLITE_DONE
	               ? sl_error_set(SL_ECORRUPT, "namespace '%s' has no root entry", t->row.name)
	               : store_sqlite_error(t->s, rc, "read the root entry");
}

int sl_dag_root_entry(sl_store *s, const char *ns, sl_buf *out)
{
	return dag_read_query(s, ns, "SELECT encoding FROM dag_entries WHERE ns = ?1 AND id = ?2",
	                      read_root, out);
}

typedef struct heights_ctx {
	const uint8_t (*ids)[SL_DIGEST_LEN];
	size_t n;
	uint64_t *heights;
} heights_ctx;

static int read_heights(dag_txn *t, sqlite3_stmt *st, void *ctx)
{
	heights_ctx *c = ctx;
	for (size_t i = 0; i < c->n; i++) {
		int rc;
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 2, c->ids[i], SL_DIGEST_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			c->heights[i] = (uint64_t)sqlite3_column_int64(st, 0);
		else if (rc == SQLITE_DONE)
			c->heights[i] = UINT64_MAX;
		else
			return store_sqlite_error(t->s, rc, "read entry heights");
	}
	return SL_OK;
}

int sl_dag_heights(sl_store *s, const char *ns, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n,
                   uint64_t *heights)
{
	heights_ctx c = {ids, n, heights};
	return dag_read_query(s, ns, "SELECT height FROM dag_entries WHERE ns = ?1 AND id = ?2",
	                      read_heights, &c);
}

static int read_count(dag_txn *t, sqlite3_stmt *st, void *ctx)
{
	int rc = sqlite3_step(st);
	*(uint64_t *)ctx = (uint64_t)sqlite3_column_int64(st, 0);
	return rc == SQLITE_ROW ? SL_OK : store_sqlite_error(t->s, rc, "count");
}

int sl_dag_requests_pending(sl_store *s, const char *ns, uint64_t *out)
{
	return dag_read_query(s, ns,
	                      "SELECT count(*) FROM dag_requests WHERE ns = ?1 AND state = 0",
	                      read_count, out);
}
