/*
 * What a node hands its peers from a dag namespace: entries asked for by
 * id, or every entry after a (height, id) cursor, in (height, id) order
 * (every entry after its parents), each preceded by the values its writes
 * set that this call has not handed out yet, within a byte budget. One
 * read transaction per call, so a page is one snapshot. Values are
 * re-hashed as they are read: a damaged blob is SL_ECORRUPT, never sent.
 */
#include "store/dag_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct serve_ctx {
	sl_store *s;
	const sl_dag_sink *sink;
	keymap sent; /* digests handed out */
	size_t budget, used;
	sl_buf value;
} serve_ctx;

/* Each value e sets, once per call, then e itself. */
static int serve_entry(serve_ctx *c, const uint8_t *enc, size_t len)
{
	sl_dag_entry e;
	int rc = dag_entry_decode_checked(&e, enc, len);
	if (rc != SL_OK)
		return sl_error_wrap("a stored entry");
	for (size_t i = 0; i < e.n_writes && rc == SL_OK; i++) {
		const sl_dag_write *w = &e.writes[i];
		state_entry st;
		keymap_head *h;
		int created;
		if (w->kind != SL_DAG_SET)
			continue;
		if ((rc = keymap_upsert(&c->sent, (const char *)w->digest.bytes, SL_DIGEST_LEN,
		                        sizeof(*h), &h, &created)) != SL_OK ||
		    !created)
			continue;
		st.digest = w->digest;
		st.size = w->value_len;
		if ((rc = store_dag_value(c->s, &st, &c->value)) == SL_OK) {
			rc = c->sink->value(c->sink->ctx, &w->digest, c->value.data, c->value.len);
			c->used += c->value.len;
		}
	}
	if (rc == SL_OK) {
		rc = c->sink->entry(c->sink->ctx, &e, enc, len);
		c->used += len;
	}
	sl_dag_entry_free(&e);
	return rc;
}

static void serve_init(serve_ctx *c, sl_store *s, const sl_dag_sink *sink, size_t budget)
{
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->sink = sink;
	c->budget = budget;
	keymap_init(&c->sent);
	c->value = (sl_buf)SL_BUF_INIT(SL_VALUE_MAX);
}

static void serve_free(serve_ctx *c)
{
	keymap_clear(&c->sent);
	sl_buf_free(&c->value);
}

/* ---------------------------------------------------------- by id */

typedef struct wanted {
	uint64_t height;
	sl_digest id;
} wanted;

static int cmp_wanted(const void *a, const void *b)
{
	const wanted *x = a, *y = b;
	if (x->height != y->height)
		return x->height < y->height ? -1 : 1;
	return memcmp(x->id.bytes, y->id.bytes, SL_DIGEST_LEN);
}

/* Drop repeats from a sorted array; the new length. */
static size_t unique(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	uint8_t *p = base;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (kept == 0 || cmp(p + (kept - 1) * size, p + i * size) != 0)
			memmove(p + kept++ * size, p + i * size, size);
	return kept;
}

/* The heights of the held ids among ids (each once, in (height, id)
 * order); the others go to missing (each once). */
static int find_wanted(dag_txn *t, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n, wanted *held,
                       size_t *n_held, uint8_t (*missing)[SL_DIGEST_LEN], size_t *n_missing)
{
	sqlite3_stmt *st = t->get_entry;
	*n_held = *n_missing = 0;
	for (size_t i = 0; i < n; i++) {
		int rc;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, t->row.id);
		sqlite3_bind_blob(st, 2, ids[i], SL_DIGEST_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			held[*n_held].height = (uint64_t)sqlite3_column_int64(st, 0);
			memcpy(held[*n_held].id.bytes, ids[i], SL_DIGEST_LEN);
			(*n_held)++;
		} else if (rc == SQLITE_DONE) {
			memcpy(missing[(*n_missing)++], ids[i], SL_DIGEST_LEN);
		} else {
			sqlite3_reset(st);
			return store_sqlite_error(t->s, rc, "read an entry");
		}
	}
	sqlite3_reset(st);
	if (*n_held)
		qsort(held, *n_held, sizeof(*held), cmp_wanted);
	if (*n_missing)
		qsort(missing, *n_missing, sizeof(*missing), dag_cmp_digest);
	*n_held = unique(held, *n_held, sizeof(*held), cmp_wanted);
	*n_missing = unique(missing, *n_missing, sizeof(*missing), dag_cmp_digest);
	return SL_OK;
}

int sl_dag_serve_ids(sl_store *s, const char *ns, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n,
                     size_t budget, const sl_dag_sink *sink, sl_dag_served *out)
{
	wanted *held = NULL;
	uint8_t(*missing)[SL_DIGEST_LEN] = NULL;
	sqlite3_stmt *st = NULL;
	serve_ctx c;
	dag_txn t;
	size_t n_held = 0, n_missing = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	serve_init(&c, s, sink, budget);
	if (n && (!(held = sl_malloc(n * sizeof(*held))) ||
	          !(missing = sl_malloc(n * sizeof(*missing))))) {
		sl_free(held);
		serve_free(&c);
		return SL_ENOMEM;
	}
	if ((rc = dag_txn_begin(&t, s, ns, 0)) != SL_OK)
		goto out;
	if ((rc = find_wanted(&t, ids, n, held, &n_held, missing, &n_missing)) != SL_OK ||
	    (rc = dag_prepare(s, &st,
	                      "SELECT encoding FROM dag_entries WHERE ns = ?1 AND id = ?2")) !=
	            SL_OK)
		goto end;
	for (size_t i = 0; i < n_missing && rc == SL_OK; i++)
		rc = sink->missing(sink->ctx, missing[i]);
	out->missing = n_missing;
	for (size_t i = 0; i < n_held && rc == SL_OK; i++) {
		if (i > 0 && c.used >= c.budget)
			break;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, t.row.id);
		sqlite3_bind_blob(st, 2, held[i].id.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
			rc = store_sqlite_error(s, rc, "read an entry");
			break;
		}
		rc = serve_entry(&c, sqlite3_column_blob(st, 0),
		                 (size_t)sqlite3_column_bytes(st, 0));
		if (rc == SL_OK)
			out->entries++;
	}
	out->more = out->entries < n_held;
end:
	sqlite3_finalize(st);
	rc = dag_txn_end(&t, rc, 0);
out:
	sl_free(held);
	sl_free(missing);
	serve_free(&c);
	return rc;
}

/* --------------------------------------------------- after a cursor, a seq */

/* Entries of a query (the namespace bound to ?1, its other parameters by
 * bind), in its order, until the budget. */
static int serve_query(sl_store *s, const char *ns, const char *sql,
                       void (*bind)(sqlite3_stmt *st, const void *arg), const void *arg,
                       size_t budget, const sl_dag_sink *sink, sl_dag_served *out)
{
	sqlite3_stmt *st = NULL;
	serve_ctx c;
	dag_txn t;
	int rc;

	memset(out, 0, sizeof(*out));
	serve_init(&c, s, sink, budget);
	if ((rc = dag_txn_begin(&t, s, ns, 0)) != SL_OK) {
		serve_free(&c);
		return rc;
	}
	if ((rc = dag_prepare(s, &st, sql)) != SL_OK)
		goto end;
	sqlite3_bind_int64(st, 1, t.row.id);
	bind(st, arg);
	for (;;) {
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(s, step, "read entries");
			break;
		}
		if (out->entries > 0 && c.used >= c.budget) {
			out->more = 1;
			break;
		}
		if ((rc = serve_entry(&c, sqlite3_column_blob(st, 0),
		                      (size_t)sqlite3_column_bytes(st, 0))) != SL_OK)
			break;
		out->entries++;
	}
end:
	sqlite3_finalize(st);
	serve_free(&c);
	return dag_txn_end(&t, rc, 0);
}

typedef struct cursor_arg {
	uint64_t height;
	const sl_digest *id;
} cursor_arg;

static void bind_cursor(sqlite3_stmt *st, const void *arg)
{
	const cursor_arg *a = arg;
	sqlite3_bind_int64(st, 2, (int64_t)a->height);
	sqlite3_bind_blob(st, 3, a->id->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
}

int sl_dag_serve_after(sl_store *s, const char *ns, uint64_t height, const sl_digest *id,
                       size_t budget, const sl_dag_sink *sink, sl_dag_served *out)
{
	cursor_arg a = {height, id};
	return serve_query(s, ns,
	                   "SELECT encoding FROM dag_entries WHERE ns = ?1 AND (height > ?2 OR "
	                   "(height = ?2 AND id > ?3)) ORDER BY height, id",
	                   bind_cursor, &a, budget, sink, out);
}

static void bind_seq(sqlite3_stmt *st, const void *arg)
{
	sqlite3_bind_int64(st, 2, (int64_t) * (const uint64_t *)arg);
}

int sl_dag_serve_seq(sl_store *s, const char *ns, uint64_t from_seq, size_t budget,
                     const sl_dag_sink *sink, sl_dag_served *out)
{
	return serve_query(
	        s, ns, "SELECT encoding FROM dag_entries WHERE ns = ?1 AND seq >= ?2 ORDER BY seq",
	        bind_seq, &from_seq, budget, sink, out);
}
