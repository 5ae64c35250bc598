/*
 * Reads: values, key listings, the operation log and proofs. Each public
 * call runs inside one read transaction (BEGIN ... COMMIT), so everything
 * it returns comes from a single snapshot of whole commits (invariants in
 * store.c). Values are re-hashed on the way out: a value whose bytes no
 * longer match its digest is reported as SL_ECORRUPT, never returned.
 * Also the data version, which tells a watcher that another handle
 * committed.
 */
#include "store/store_internal.h"

#include <string.h>

/* Run fn inside a read transaction; the result is fn's. */
typedef int (*read_fn)(sl_store *s, void *arg);

static int in_read_txn(sl_store *s, read_fn fn, void *arg)
{
	int rc = store_begin_read(s);
	if (rc != SL_OK)
		return rc;
	rc = fn(s, arg);
	store_rollback_txn(s); /* a read transaction has nothing to keep */
	return rc;
}

/* ------------------------------------------------------------------ get */

/* The namespace row and the current state of key, for get and prove. */
/* key's state in the log namespace of row (read already). */
static int find_key_in(sl_store *s, const ns_row *row, const char *key, size_t key_len,
                       state_entry *entry)
{
	ns_cache *c;
	int rc;
	if ((rc = sl_key_validate(key, key_len)) != SL_OK ||
	    (rc = store_ns_sync_row(s, row, &c)) != SL_OK)
		return rc;
	rc = store_lookup(s, c, key, key_len, entry);
	if (rc == SL_ENOTFOUND)
		return sl_error_set(SL_ENOTFOUND, "no key '%.*s' in '%s'", (int)key_len, key,
		                    row->name);
	return rc;
}

static int find_key(sl_store *s, const char *ns, const char *key, size_t key_len, ns_row *row,
                    state_entry *entry)
{
	int rc = store_ns_load(s, ns, row);
	return rc == SL_OK ? find_key_in(s, row, key, key_len, entry) : rc;
}

typedef struct get_args {
	const char *ns;
	const char *key;
	size_t key_len;
	sl_buf *value;
	uint64_t loc;
} get_args;

static int get_locked(sl_store *s, void *arg)
{
	get_args *a = arg;
	ns_row row;
	state_entry entry;
	int rc;

	if ((rc = store_ns_load_any(s, a->ns, &row)) != SL_OK)
		return rc;
	if (row.kind == SL_NS_DAG) {
		if ((rc = sl_key_validate(a->key, a->key_len)) != SL_OK)
			return rc;
		rc = store_dag_get(s, &row, a->key, a->key_len, &entry);
		if (rc == SL_ENOTFOUND)
			return sl_error_set(SL_ENOTFOUND, "no key '%.*s' in '%s'", (int)a->key_len,
			                    a->key, a->ns);
		if (rc == SL_OK && (rc = store_dag_value(s, &entry, a->value)) != SL_OK)
			sl_error_wrap("key '%.*s'", (int)a->key_len, a->key);
		return rc;
	}
	if ((rc = find_key_in(s, &row, a->key, a->key_len, &entry)) != SL_OK)
		return rc;
	a->loc = entry.loc;
	if ((rc = store_value_get(s, row.id, &entry, a->value)) != SL_OK)
		return sl_error_wrap("key '%.*s'", (int)a->key_len, a->key);
	return SL_OK;
}

int sl_store_get(sl_store *s, const char *ns, const char *key, size_t key_len, sl_buf *value,
                 uint64_t *loc_out)
{
	get_args a = {ns, key, key_len, value, 0};
	int rc = in_read_txn(s, get_locked, &a);
	if (rc == SL_OK && loc_out)
		*loc_out = a.loc;
	return rc;
}

/* ----------------------------------------------------------------- list */

typedef struct list_args {
	const char *ns;
	const char *prefix;
	size_t prefix_len;
	sl_key_fn cb;
	void *ctx;
} list_args;

/* Step the state table scan: SL_OK with *has_row set, or an error. */
static int table_next(sl_store *s, sqlite3_stmt *st, const list_args *a, sl_key_entry *e,
                      int *has_row)
{
	int rc = sqlite3_step(st);
	*has_row = 0;
	if (rc == SQLITE_DONE)
		return SL_OK;
	if (rc != SQLITE_ROW)
		return store_sqlite_error(s, rc, "list keys");
	e->key = sqlite3_column_blob(st, 0);
	e->key_len = (size_t)sqlite3_column_bytes(st, 0);
	if (e->key_len < a->prefix_len || memcmp(e->key, a->prefix, a->prefix_len) != 0)
		return SL_OK; /* keys sort bytewise: past the prefix range */
	e->loc = (uint64_t)sqlite3_column_int64(st, 1);
	if (sqlite3_column_bytes(st, 2) != SL_DIGEST_LEN)
		return sl_error_set(SL_ECORRUPT, "state entry has a damaged digest");
	memcpy(e->digest.bytes, sqlite3_column_blob(st, 2), SL_DIGEST_LEN);
	e->value_len = (uint64_t)sqlite3_column_int64(st, 3);
	*has_row = 1;
	return SL_OK;
}

static int compare_keys(const char *a, size_t a_len, const char *b, size_t b_len)
{
	int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
	return c ? c : (a_len > b_len) - (a_len < b_len);
}

/* Merge the state table (as of state_loc) with the overlay, both in key
 * order; the overlay wins on equal keys and its tombstones hide keys. */
static int list_locked(sl_store *s, void *arg)
{
	list_args *a = arg;
	const overlay_entry **ov = NULL;
	size_t n_ov = 0, i = 0;
	sqlite3_stmt *st = NULL;
	ns_row row;
	ns_cache *c;
	sl_key_entry t;
	int rc, has_row;

	if ((rc = store_ns_load_any(s, a->ns, &row)) != SL_OK)
		return rc;
	if (row.kind == SL_NS_DAG)
		return store_dag_list(s, &row, a->prefix, a->prefix_len, a->cb, a->ctx);
	if ((rc = store_ns_sync_row(s, &row, &c)) != SL_OK ||
	    (rc = overlay_sorted(&c->ov, a->prefix, a->prefix_len, &ov, &n_ov)) != SL_OK)
		return rc;
	if (!(st = store_stmt(s, STMT_STATE_RANGE))) {
		rc = sl_error_last()->code;
		goto out;
	}
	sqlite3_bind_int64(st, 1, row.id);
	sqlite3_bind_blob(st, 2, a->prefix_len ? a->prefix : "", (int)a->prefix_len, SQLITE_STATIC);
	if ((rc = table_next(s, st, a, &t, &has_row)) != SL_OK)
		goto out;
	while (has_row || i < n_ov) {
		int cmp = !has_row    ? 1
		          : i == n_ov ? -1
		                      : compare_keys(t.key, t.key_len, ov[i]->head.key,
		                                     ov[i]->head.key_len);
		if (cmp < 0) {
			if ((rc = a->cb(a->ctx, &t)) != 0)
				goto out;
		} else {
			const overlay_entry *e = ov[i++];
			if (!e->deleted) {
				sl_key_entry o = {e->head.key, e->head.key_len, e->st.loc,
				                  e->st.digest, e->st.size};
				if ((rc = a->cb(a->ctx, &o)) != 0)
					goto out;
			}
			if (cmp > 0)
				continue; /* the table row is still to come */
		}
		if ((rc = table_next(s, st, a, &t, &has_row)) != SL_OK)
			goto out;
	}
	rc = SL_OK;
out:
	if (st)
		sqlite3_reset(st);
	sl_free(ov);
	return rc;
}

int sl_store_list(sl_store *s, const char *ns, const char *prefix, size_t prefix_len, sl_key_fn cb,
                  void *ctx)
{
	list_args a = {ns, prefix, prefix_len, cb, ctx};
	return in_read_txn(s, list_locked, &a);
}

/* ------------------------------------------------------------------ log */

typedef struct log_args {
	const char *ns;
	uint64_t from;
	uint64_t limit;
	sl_op_fn cb;
	void *ctx;
} log_args;

static int log_entry_cb(void *ctx, const log_entry *e)
{
	const log_args *a = ctx;
	return a->cb(a->ctx, e->loc, e->op, e->element, e->element_len);
}

static int log_locked(sl_store *s, void *arg)
{
	log_args *a = arg;
	ns_row row;
	uint64_t end;
	int rc;

	if ((rc = store_ns_load(s, a->ns, &row)) != SL_OK)
		return rc;
	if (a->from < row.pruned)
		return sl_error_set(SL_EINVAL, "operations below %llu of '%s' were pruned",
		                    (unsigned long long)row.pruned, a->ns);
	end = row.size;
	if (a->limit && a->from < end && end - a->from > a->limit)
		end = a->from + a->limit;
	return store_log_walk(s, row.id, a->from, end, log_entry_cb, a);
}

int sl_store_log(sl_store *s, const char *ns, uint64_t from, uint64_t limit, sl_op_fn cb, void *ctx)
{
	log_args a = {ns, from, limit, cb, ctx};
	return in_read_txn(s, log_locked, &a);
}

/* --------------------------------------------------------------- proofs */

typedef struct range_args {
	const char *ns;
	uint64_t size, start, end;
	sl_mmr_proof *out;
} range_args;

/* A range starting at `start` of the MMR at `size` operations can be
 * read and proved: size is not past the last commit, and start is not
 * below the pruned boundary (a replica holds only the pinned nodes below
 * its start, replica.c). */
static int check_range(const ns_row *row, uint64_t size, uint64_t start)
{
	if (size > row->size)
		return sl_error_set(SL_EINVAL, "size %llu is past the last commit of '%s' (%llu)",
		                    (unsigned long long)size, row->name,
		                    (unsigned long long)row->size);
	if (start < row->pruned)
		return sl_error_set(SL_EINVAL, "operations below %llu of '%s' were pruned",
		                    (unsigned long long)row->pruned, row->name);
	return SL_OK;
}

static int range_proof_for_row(sl_store *s, const ns_row *row, uint64_t size, uint64_t start,
                               uint64_t end, sl_mmr_proof *out)
{
	chunk_reader reader;
	sl_mmr_nodes nodes;
	int rc;
	if ((rc = check_range(row, size, start)) != SL_OK)
		return rc;
	chunk_reader_init(&reader, s, row->id);
	nodes = chunk_reader_nodes(&reader);
	return sl_mmr_range_proof(out, &nodes, size, start, end);
}

static int range_locked(sl_store *s, void *arg)
{
	range_args *a = arg;
	ns_row row;
	int rc;
	if ((rc = store_ns_load(s, a->ns, &row)) != SL_OK)
		return rc;
	return range_proof_for_row(s, &row, a->size, a->start, a->end, a->out);
}

int sl_store_range_proof(sl_store *s, const char *ns, uint64_t size, uint64_t start, uint64_t end,
                         sl_mmr_proof *out)
{
	range_args a = {ns, size, start, end, out};
	return in_read_txn(s, range_locked, &a);
}

/* ----------------------------------------------------- ranges for sync */

typedef struct read_range_args {
	sl_store *s;
	const char *ns;
	uint64_t size, start, max;
	sl_op_value_fn cb;
	void *ctx;
	sl_mmr_proof *proof;
	int64_t ns_id;
	uint64_t n_read; /* operations handed to cb */
	sl_buf blob;
} read_range_args;

static int range_entry_cb(void *ctx, const log_entry *e)
{
	read_range_args *a = ctx;
	const void *value = NULL;
	size_t value_len = 0;
	int rc;

	if (e->op->type == SL_OP_SET || e->op->type == SL_OP_UPDATE) {
		value = e->value;
		value_len = e->value_len;
		if (!e->has_value) { /* a large value, in blobs */
			state_entry st = {e->loc, e->op->digest, e->op->value_len};
			if ((rc = store_value_get(a->s, a->ns_id, &st, &a->blob)) != SL_OK)
				return rc;
			value = a->blob.data;
			value_len = a->blob.len;
		}
	}
	a->n_read++;
	return a->cb(a->ctx, e->loc, e->op, e->element, e->element_len, value, value_len);
}

static int read_range_locked(sl_store *s, void *arg)
{
	read_range_args *a = arg;
	uint64_t end;
	ns_row row;
	int rc;

	if ((rc = store_ns_load(s, a->ns, &row)) != SL_OK)
		return rc;
	if (a->size == 0)
		a->size = row.size;
	if (a->start >= a->size || a->max == 0)
		return sl_error_set(SL_EINVAL,
		                    "no operations from %llu (max %llu) in the first %llu of '%s'",
		                    (unsigned long long)a->start, (unsigned long long)a->max,
		                    (unsigned long long)a->size, a->ns);
	/* Checked before the walk too: it would meet missing operations. */
	if ((rc = check_range(&row, a->size, a->start)) != SL_OK)
		return rc;
	end = a->size - a->start > a->max ? a->start + a->max : a->size;
	a->ns_id = row.id;
	rc = store_log_walk(s, row.id, a->start, end, range_entry_cb, a);
	if (rc < 0)
		return rc;
	if (!a->proof) /* the caller wants the operations only */
		return SL_OK;
	/* The callback may stop early (rc > 0): prove what it took. */
	return range_proof_for_row(s, &row, a->size, a->start, a->start + a->n_read, a->proof);
}

int sl_store_read_range(sl_store *s, const char *ns, uint64_t size, uint64_t start, uint64_t max,
                        sl_op_value_fn cb, void *ctx, sl_mmr_proof *proof, uint64_t *n_read)
{
	read_range_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.s = s;
	a.ns = ns;
	a.size = size;
	a.start = start;
	a.max = max;
	a.cb = cb;
	a.ctx = ctx;
	a.proof = proof;
	sl_buf_init(&a.blob, SL_VALUE_MAX);
	rc = in_read_txn(s, read_range_locked, &a);
	sl_buf_free(&a.blob);
	if (rc == SL_OK && n_read)
		*n_read = a.n_read;
	return rc;
}

typedef struct pinned_args {
	const char *ns;
	uint64_t start;
	sl_digest *out;
	size_t *n_out;
} pinned_args;

static int pinned_locked(sl_store *s, void *arg)
{
	pinned_args *a = arg;
	uint64_t pos[SL_MMR_MAX_PEAKS];
	chunk_reader reader;
	size_t n;
	ns_row row;
	int rc;

	if ((rc = store_ns_load(s, a->ns, &row)) != SL_OK)
		return rc;
	if (a->start > row.size || (a->start != 0 && a->start < row.pruned))
		return sl_error_set(SL_EINVAL,
		                    "no pinned nodes for %llu in '%s' (pruned %llu, size %llu)",
		                    (unsigned long long)a->start, a->ns,
		                    (unsigned long long)row.pruned, (unsigned long long)row.size);
	n = sl_mmr_pinned_positions(a->start, pos);
	chunk_reader_init(&reader, s, row.id);
	for (size_t i = 0; i < n; i++)
		if ((rc = chunk_reader_get(&reader, pos[i], &a->out[i])) != SL_OK)
			return rc;
	*a->n_out = n;
	return SL_OK;
}

int sl_store_pinned_nodes(sl_store *s, const char *ns, uint64_t start,
                          sl_digest out[SL_MMR_MAX_PEAKS], size_t *n_out)
{
	pinned_args a = {ns, start, out, n_out};
	return in_read_txn(s, pinned_locked, &a);
}

static int consistency_locked(sl_store *s, void *arg)
{
	range_args *a = arg;
	chunk_reader reader;
	sl_mmr_nodes nodes;
	ns_row row;
	int rc;
	if ((rc = store_ns_load(s, a->ns, &row)) != SL_OK)
		return rc;
	if (a->end > row.size || a->start > a->end)
		return sl_error_set(SL_EINVAL,
		                    "no consistency proof from %llu to %llu operations of '%s' "
		                    "(size %llu)",
		                    (unsigned long long)a->start, (unsigned long long)a->end, a->ns,
		                    (unsigned long long)row.size);
	/* The peaks of a size below the pruned boundary may not be stored. */
	if (a->start != 0 && a->start < row.pruned)
		return sl_error_set(SL_EINVAL, "operations below %llu of '%s' were pruned",
		                    (unsigned long long)row.pruned, a->ns);
	chunk_reader_init(&reader, s, row.id);
	nodes = chunk_reader_nodes(&reader);
	return sl_mmr_consistency_proof(a->out, &nodes, a->start, a->end);
}

int sl_store_consistency_proof(sl_store *s, const char *ns, uint64_t old_size, uint64_t new_size,
                               sl_mmr_proof *out)
{
	range_args a = {ns, new_size, old_size, new_size, out};
	return in_read_txn(s, consistency_locked, &a);
}

void sl_key_proof_init(sl_key_proof *p)
{
	memset(p, 0, sizeof(*p));
	sl_buf_init(&p->element, 2 * SL_KEY_MAX);
}

void sl_key_proof_free(sl_key_proof *p)
{
	if (!p)
		return;
	sl_buf_free(&p->element);
	sl_mmr_proof_free(&p->proof);
}

typedef struct prove_args {
	const char *ns;
	const char *key;
	size_t key_len;
	sl_key_proof *out;
} prove_args;

static int prove_locked(sl_store *s, void *arg)
{
	prove_args *a = arg;
	state_entry entry;
	ns_row row;
	sl_mmr_proof proof = {0, 0, NULL};
	int rc;

	if ((rc = find_key(s, a->ns, a->key, a->key_len, &row, &entry)) != SL_OK)
		return rc;
	if (entry.loc >= row.size)
		return sl_error_set(SL_ECORRUPT, "state of '%.*s' points past the log",
		                    (int)a->key_len, a->key);
	if ((rc = store_op_get(s, row.id, entry.loc, &a->out->element, NULL, NULL)) != SL_OK)
		return rc;
	if ((rc = range_proof_for_row(s, &row, row.size, entry.loc, entry.loc + 1, &proof)) !=
	    SL_OK)
		return rc;
	sl_mmr_proof_free(&a->out->proof);
	a->out->proof = proof;
	a->out->loc = entry.loc;
	a->out->target.size = row.size;
	a->out->target.root = row.root;
	a->out->target.floor = row.floor;
	return SL_OK;
}

int sl_store_prove_key(sl_store *s, const char *ns, const char *key, size_t key_len,
                       sl_key_proof *out)
{
	prove_args a = {ns, key, key_len, out};
	return in_read_txn(s, prove_locked, &a);
}

/* --------------------------------------------------------- data version */

int sl_store_data_version(sl_store *s, uint64_t *out)
{
	sqlite3_stmt *st = store_stmt(s, STMT_DATA_VERSION);
	int rc;

	if (!st)
		return sl_error_last()->code;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = store_sqlite_error(s, rc, "read the data version");
		sqlite3_reset(st);
		return rc;
	}
	*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return SL_OK;
}
