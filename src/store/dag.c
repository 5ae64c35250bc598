/*
 * DAG namespaces in the store: verified entries, their merged state, and
 * who may write (include/sluice/dag.h; the encoding is dag_entry.c).
 *
 * A dag namespace is a row of `namespaces` with kind SL_NS_DAG, whose
 * `root` column holds the namespace id (the root entry's id) and `size`
 * the number of entries held. Tables (store format 3):
 *   dag_entries(ns, id, height, seq, encoding, sfront)   every entry held;
 *       seq numbers them in the order they were stored, from 0
 *   dag_settings(ns, id, closure)                   per settings entry
 *   dag_state(ns, key, height, id, deleted, digest, size)
 *   dag_tips(ns, id)
 *   dag_values(digest, ns)                          (format 4)
 * Values are in `blobs`, once per digest, shared with operation logs;
 * dag_values tells a prune that an entry still needs one (values.c).
 *
 * Who may write is judged at an entry's parents: dag_roles.c.
 *
 * Invariants, for every dag namespace N, after every transaction:
 *   D1. every entry of dag_entries was verified (form, signature, id,
 *       namespace, height = max parent height + 1, the author's right to
 *       write at its parents) and every parent of each is held: the set
 *       is closed under ancestors, and the root is held;
 *   D2. dag_state holds, for each key any held entry writes, the write of
 *       the greatest (height, id) such entry (a delete as a tombstone);
 *   D3. dag_tips holds exactly the held entries no held entry names as a
 *       parent;
 *   D4. sfront and closure are as dag_roles.c defines them; N.size
 *       counts entries, and their seqs are 0..N.size-1;
 *   D5. the value of every SET write of every held entry is in blobs;
 *   D6. (format 4) dag_values holds, for N, exactly the digests of those
 *       SET writes.
 * sl_dag_insert and sl_dag_write_entry keep them in one write
 * transaction; sl_dag_verify recomputes all of them from the encodings.
 */
#include "store/dag_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- entries */

/* A held entry's height and sfront; SL_ENOTFOUND (no message) if not held. */
static int entry_get(dag_txn *t, const sl_digest *id, uint64_t *height, dag_ids *sfront)
{
	sqlite3_stmt *st = t->get_entry;
	int rc;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, id->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		rc = SL_ENOTFOUND;
	else if (rc != SQLITE_ROW)
		rc = store_sqlite_error(t->s, rc, "read an entry");
	else {
		*height = (uint64_t)sqlite3_column_int64(st, 0);
		rc = sfront ? dag_ids_from_blob(sfront, sqlite3_column_blob(st, 1),
		                                sqlite3_column_bytes(st, 1))
		            : SL_OK;
	}
	sqlite3_reset(st);
	return rc;
}

/* ------------------------------------------------------------- storing */

static int offered_cmp(const void *a, const void *b)
{
	return memcmp(((const dag_offered_value *)a)->digest.bytes,
	              ((const dag_offered_value *)b)->digest.bytes, SL_DIGEST_LEN);
}

/* A frame carries thousands of values: found by binary search over the
 * digests sorted once, not a scan per write. */
static const sl_bytes *offered_value(const dag_offered *o, const sl_digest *digest)
{
	dag_offered_value want = {*digest, 0};
	const dag_offered_value *v =
	        o->n_values ? bsearch(&want, o->index, o->n_values, sizeof(*o->index), offered_cmp)
	                    : NULL;
	return v ? &o->values[v->at] : NULL;
}

/* Whether a value is held, and its size; with t->rehash, its bytes are
 * read and must hash to the digest (SL_ECORRUPT otherwise). */
static int blob_held(dag_txn *t, const sl_digest *digest, int *held, uint64_t *size)
{
	int rc;
	sqlite3_reset(t->blob_size);
	sqlite3_bind_blob(t->blob_size, 1, digest->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(t->blob_size);
	if (rc == SQLITE_ROW)
		*size = (uint64_t)sqlite3_column_int64(t->blob_size, 0);
	sqlite3_reset(t->blob_size);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlite_error(t->s, rc, "read a value");
	*held = rc == SQLITE_ROW;
	if (*held && t->rehash) { /* verify: the bytes, not just their presence */
		sl_buf value = SL_BUF_INIT(SL_VALUE_MAX);
		state_entry st;
		st.digest = *digest;
		st.size = *size;
		rc = store_dag_value(t->s, &st, &value);
		sl_buf_free(&value);
		if (rc != SL_OK)
			return rc;
		t->rehashed++;
	}
	return SL_OK;
}

static int step_done(dag_txn *t, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SL_OK : store_sqlite_error(t->s, rc, what);
}

/* D2 for one write of e. */
static int merge_write(dag_txn *t, const sl_dag_entry *e, const sl_dag_write *w)
{
	sqlite3_stmt *st = t->get_state;
	int rc, newer = 1;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, w->key, (int)w->key_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		uint64_t h = (uint64_t)sqlite3_column_int64(st, 0);
		const void *id = sqlite3_column_blob(st, 1);
		newer = e->height > h ||
		        (e->height == h && sqlite3_column_bytes(st, 1) == SL_DIGEST_LEN &&
		         memcmp(e->id.bytes, id, SL_DIGEST_LEN) > 0);
	} else if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(t->s, rc, "read the state");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	if (!newer)
		return SL_OK;
	st = t->put_state;
	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, w->key, (int)w->key_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)e->height);
	sqlite3_bind_blob(st, 4, e->id.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, w->kind == SL_DAG_DELETE);
	sqlite3_bind_blob(st, 6, w->digest.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (int64_t)w->value_len);
	return step_done(t, st, "write the state");
}

/* Store a verified entry (D1..D6) with its sfront. */
static int store_entry(dag_txn *t, const sl_dag_entry *e, const uint8_t *enc, size_t len,
                       const dag_ids *sfront, const dag_ids *closure, const dag_offered *o)
{
	sqlite3_stmt *st = t->put_entry;
	int rc;

	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, e->id.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)e->height);
	sqlite3_bind_int64(st, 4, (int64_t)t->row.size);
	sqlite3_bind_blob(st, 5, enc, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, sfront->ids, (int)(sfront->n * SL_DIGEST_LEN), SQLITE_STATIC);
	if ((rc = step_done(t, st, "store an entry")) != SL_OK)
		return rc;
	if (closure) {
		st = t->put_settings;
		sqlite3_bind_int64(st, 1, t->row.id);
		sqlite3_bind_blob(st, 2, e->id.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, closure->ids, (int)(closure->n * SL_DIGEST_LEN),
		                  SQLITE_STATIC);
		if ((rc = step_done(t, st, "store settings")) != SL_OK)
			return rc;
	}
	for (size_t i = 0; i < e->n_writes; i++) {
		const sl_dag_write *w = &e->writes[i];
		if (w->kind == SL_DAG_ROLE)
			continue;
		if (w->kind == SL_DAG_SET) {
			const sl_bytes *v = offered_value(o, &w->digest);
			if (v && (rc = store_blob_put(t->s, &w->digest, v->data, v->len)) != SL_OK)
				return rc;
			if (t->put_value) { /* D6 */
				sqlite3_bind_blob(t->put_value, 1, w->digest.bytes, SL_DIGEST_LEN,
				                  SQLITE_STATIC);
				sqlite3_bind_int64(t->put_value, 2, t->row.id);
				if ((rc = step_done(t, t->put_value, "record a value")) != SL_OK)
					return rc;
			}
		}
		if ((rc = merge_write(t, e, w)) != SL_OK)
			return rc;
	}
	for (size_t i = 0; i < e->n_parents; i++) {
		sqlite3_bind_int64(t->del_tip, 1, t->row.id);
		sqlite3_bind_blob(t->del_tip, 2, e->parents[i].bytes, SL_DIGEST_LEN, SQLITE_STATIC);
		if ((rc = step_done(t, t->del_tip, "update the tips")) != SL_OK)
			return rc;
	}
	sqlite3_bind_int64(t->add_tip, 1, t->row.id);
	sqlite3_bind_blob(t->add_tip, 2, e->id.bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	if ((rc = step_done(t, t->add_tip, "update the tips")) != SL_OK)
		return rc;
	t->row.size++;
	return SL_OK;
}

int dag_store_root(dag_txn *t, const sl_dag_entry *root, const uint8_t *enc, size_t len)
{
	dag_offered none = {NULL, 0, NULL};
	dag_ids self = {0};
	int rc = dag_ids_push(&self, &root->id); /* its own sfront and closure */
	if (rc == SL_OK)
		rc = store_entry(t, root, enc, len, &self, &self, &none);
	sl_free(self.ids);
	return rc;
}

static int refuse(dag_verdict *v, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int refuse(dag_verdict *v, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	v->outcome = DAG_REFUSED;
	v->code = code;
	return SL_OK;
}

/* An entry decoded; its signature checked unless `verified` vouches for
 * its id. */
static int decode_offered(sl_dag_entry *e, const uint8_t *enc, size_t len,
                          const sl_dag_verified *verified)
{
	if (verified && dag_entry_decode_checked(e, enc, len) == SL_OK) {
		if (dag_verified_has(verified, &e->id))
			return SL_OK;
		sl_dag_entry_free(e);
	}
	return sl_dag_entry_decode(e, enc, len);
}

int dag_offer(dag_txn *t, const uint8_t *enc, size_t len, const sl_dag_verified *verified,
              const dag_offered *o, const keymap *refused, sl_digest *id_out, dag_verdict *v)
{
	sl_dag_entry e;
	dag_ids front = {0}, closure = {0};
	uint64_t max_height = 0, h = 0;
	int rc, held;

	v->outcome = DAG_STORED;
	v->code = SL_OK;
	v->reason[0] = 0;
	if (decode_offered(&e, enc, len, verified) != SL_OK) {
		memset(id_out, 0, sizeof(*id_out));
		sl_sha256(id_out, enc, len);
		return refuse(v, SL_EINVAL, "%s", sl_error_last()->message);
	}
	*id_out = e.id;
	rc = entry_get(t, &e.id, &h, NULL);
	if (rc == SL_OK) {
		v->outcome = DAG_KNOWN;
		goto cleanup;
	}
	if (rc != SL_ENOTFOUND)
		goto cleanup;
	rc = SL_OK;
	if (e.n_parents == 0 || !sl_digest_eq(&e.ns, &t->row.root)) {
		refuse(v, SL_EINVAL, "entry %s is not of this namespace",
		       sl_digest_to_hex(&e.id).s);
		goto cleanup;
	}
	for (size_t i = 0; i < e.n_parents; i++) {
		if (refused &&
		    keymap_get(refused, (const char *)e.parents[i].bytes, SL_DIGEST_LEN)) {
			refuse(v, SL_EINVAL, "entry %s descends from refused entry %s",
			       sl_digest_to_hex(&e.id).s, sl_digest_to_hex(&e.parents[i]).s);
			goto cleanup;
		}
		rc = entry_get(t, &e.parents[i], &h, &front);
		if (rc == SL_ENOTFOUND) {
			rc = SL_OK;
			refuse(v, SL_ENOTFOUND, "entry %s: parent %s is not held",
			       sl_digest_to_hex(&e.id).s, sl_digest_to_hex(&e.parents[i]).s);
			goto cleanup;
		}
		if (rc != SL_OK)
			goto cleanup;
		if (h > max_height)
			max_height = h;
	}
	if (e.height != max_height + 1) {
		refuse(v, SL_EINVAL, "entry %s has height %llu, not %llu",
		       sl_digest_to_hex(&e.id).s, (unsigned long long)e.height,
		       (unsigned long long)max_height + 1);
		goto cleanup;
	}
	if ((rc = dag_reduce_front(t, &front)) != SL_OK || (rc = dag_roles_at(t, &front)) != SL_OK)
		goto cleanup;
	if (dag_role_in(t, e.author) < (dag_is_settings(&e) ? SL_DAG_ADMIN : SL_DAG_WRITE)) {
		refuse(v, SL_EAUTH, "entry %s: its author %s may not %s at its parents",
		       sl_digest_to_hex(&e.id).s, sl_digest_to_hex((const sl_digest *)e.author).s,
		       dag_is_settings(&e) ? "set roles" : "write");
		goto cleanup;
	}
	for (size_t i = 0; i < e.n_writes; i++) { /* D5, sizes as the entry says */
		const sl_dag_write *w = &e.writes[i];
		const sl_bytes *value;
		uint64_t size = 0;
		if (w->kind != SL_DAG_SET)
			continue;
		if ((value = offered_value(o, &w->digest))) {
			held = 1;
			size = value->len;
		} else if ((rc = blob_held(t, &w->digest, &held, &size)) != SL_OK) {
			goto cleanup;
		}
		if (!held) {
			refuse(v, SL_EINVAL, "entry %s: value %s came without its bytes",
			       sl_digest_to_hex(&e.id).s, sl_digest_to_hex(&w->digest).s);
			goto cleanup;
		}
		if (size != w->value_len) {
			refuse(v, SL_EINVAL, "entry %s: value %s has %llu bytes, not %llu",
			       sl_digest_to_hex(&e.id).s, sl_digest_to_hex(&w->digest).s,
			       (unsigned long long)size, (unsigned long long)w->value_len);
			goto cleanup;
		}
	}
	if (dag_is_settings(&e)) { /* a settings entry: its own front and closure */
		for (size_t i = 0; i < front.n && rc == SL_OK; i++)
			rc = dag_closure_get(t, &front.ids[i], &closure);
		if (rc == SL_OK)
			rc = dag_ids_push(&closure, &e.id);
		if (rc != SL_OK)
			goto cleanup;
		dag_ids_sort_unique(&closure);
		front.n = 0;
		if ((rc = dag_ids_push(&front, &e.id)) != SL_OK)
			goto cleanup;
	}
	rc = store_entry(t, &e, enc, len, &front, dag_is_settings(&e) ? &closure : NULL, o);
cleanup:
	sl_free(front.ids);
	sl_free(closure.ids);
	sl_dag_entry_free(&e);
	return rc;
}
static int digest_values(dag_offered *o, const sl_bytes *values, size_t n)
{
	o->values = values;
	o->n_values = n;
	o->index = NULL;
	if (n && !(o->index = sl_malloc(n * sizeof(*o->index))))
		return SL_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		sl_sha256(&o->index[i].digest, values[i].data, values[i].len);
		o->index[i].at = i;
	}
	if (n)
		qsort(o->index, n, sizeof(*o->index), offered_cmp);
	return SL_OK;
}

/* The outbox of the peer(s) with node key `from` moves from `before` (the
 * namespace's size when the transaction began) to its size now: only if
 * it was at `before`, so that nothing else owed to it is skipped. */
static int sender_level(dag_txn *t, const uint8_t from[SL_ED25519_PK_LEN], uint64_t before)
{
	sqlite3_stmt *st = NULL;
	int rc = dag_prepare(t->s, &st,
	                     "UPDATE dag_peers SET pushed_seq = ?3 WHERE ns = ?1 AND node = ?2 "
	                     "AND pushed_seq = ?4");
	if (rc != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, from, SL_ED25519_PK_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)t->row.size);
	sqlite3_bind_int64(st, 4, (int64_t)before);
	rc = store_step_done(t->s, st, "move a peer's outbox");
	sqlite3_finalize(st);
	return rc;
}

int sl_dag_insert(sl_store *s, const char *ns, const sl_bytes *entries, size_t n,
                  const sl_bytes *values, size_t n_values, sl_dag_insert_report *report)
{
	return sl_dag_insert_from(s, ns, NULL, NULL, entries, n, values, n_values, report);
}

int sl_dag_insert_from(sl_store *s, const char *ns, const uint8_t from[SL_ED25519_PK_LEN],
                       const sl_dag_verified *verified, const sl_bytes *entries, size_t n,
                       const sl_bytes *values, size_t n_values, sl_dag_insert_report *report)
{
	sl_dag_verified *own = NULL;
	keymap refused;
	dag_offered o;
	dag_txn t;
	uint64_t before;
	int rc;

	memset(report, 0, sizeof(*report));
	/* Outside the write transaction: it holds no lock while signatures
	 * are checked. */
	if (!verified) {
		if ((rc = sl_dag_verify_signatures(entries, n, &own)) != SL_OK)
			return rc;
		verified = own;
	}
	if ((rc = digest_values(&o, values, n_values)) != SL_OK) {
		sl_dag_verified_free(own);
		return rc;
	}
	if ((rc = dag_txn_begin(&t, s, ns, 1)) != SL_OK) {
		sl_free(o.index);
		sl_dag_verified_free(own);
		return rc;
	}
	before = t.row.size;
	keymap_init(&refused);
	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		dag_verdict v;
		sl_digest id;
		if ((rc = dag_offer(&t, entries[i].data, entries[i].len, verified, &o, &refused,
		                    &id, &v)) != SL_OK)
			break;
		if (v.outcome == DAG_STORED) {
			report->stored++;
		} else if (v.outcome == DAG_KNOWN) {
			report->known++;
		} else {
			keymap_head *h;
			int created;
			if (report->refused++ == 0) {
				report->first_refused = id;
				snprintf(report->reason, sizeof(report->reason), "%s", v.reason);
			}
			/* An orphan is not bad: its descendants here are orphans
			 * too (their parent is not held), not refused for it. */
			if (v.code == SL_ENOTFOUND)
				report->orphaned++;
			else
				rc = keymap_upsert(&refused, (const char *)id.bytes, SL_DIGEST_LEN,
				                   sizeof(*h), &h, &created);
		}
	}
	if (rc == SL_OK && from && report->stored > 0)
		rc = sender_level(&t, from, before);
	rc = dag_txn_end(&t, rc, report->stored > 0);
	keymap_clear(&refused);
	sl_free(o.index);
	sl_dag_verified_free(own);
	if (rc != SL_OK)
		memset(report, 0, sizeof(*report));
	return rc;
}

/* -------------------------------------------------------------- creating */

int dag_check_root(const sl_dag_entry *root)
{
	if (root->n_parents != 0)
		return sl_error_set(SL_EINVAL, "entry %s is not a root entry",
		                    sl_digest_to_hex(&root->id).s);
	for (size_t i = 0; i < root->n_writes; i++) {
		if (root->writes[i].kind != SL_DAG_ROLE)
			return sl_error_set(SL_EINVAL, "a root entry writes no key, only roles");
		if (memcmp(root->writes[i].pk, root->author, SL_ED25519_PK_LEN) == 0)
			return sl_error_set(
			        SL_EINVAL,
			        "a root entry's author is its admin: it sets no role of its own");
	}
	return SL_OK;
}

/* Inside a write transaction: a namespace for root (verified). */
static int create_with_root(sl_store *s, const char *name, const sl_dag_entry *root,
                            const uint8_t *enc, size_t len)
{
	dag_txn t;
	int rc;

	if ((rc = dag_check_root(root)) != SL_OK ||
	    (rc = store_ns_insert(s, name, SL_NS_DAG)) != SL_OK)
		return rc;
	memset(&t, 0, sizeof(t));
	t.s = s;
	if ((rc = store_ns_load_any(s, name, &t.row)) == SL_OK &&
	    (rc = dag_txn_prepare(&t)) == SL_OK) {
		t.row.root = root->id; /* a dag namespace's id */
		if ((rc = dag_store_root(&t, root, enc, len)) == SL_OK)
			rc = store_ns_write(s, &t.row);
	}
	dag_txn_free(&t);
	return rc;
}

static int create_txn(sl_store *s, const char *name, const sl_dag_entry *root, const uint8_t *enc,
                      size_t len)
{
	int rc;
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_write(s)) != SL_OK)
		return rc;
	rc = create_with_root(s, name, root, enc, len);
	if (rc == SL_OK)
		rc = store_commit_txn(s);
	if (rc != SL_OK)
		store_rollback_txn(s);
	return rc;
}

int sl_dag_create(sl_store *s, const char *name, const uint8_t sk[SL_ED25519_SK_LEN],
                  sl_digest *ns_id)
{
	sl_buf enc = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_dag_entry root;
	int rc;

	memset(&root, 0, sizeof(root));
	memcpy(root.author, sk + 32, SL_ED25519_PK_LEN);
	root.time_ms = sl_clock_wall_ms();
	if ((rc = sl_random_bytes(root.ns.bytes, SL_DIGEST_LEN)) == SL_OK && /* the salt */
	    (rc = sl_dag_entry_sign(&root, sk, &enc)) == SL_OK &&
	    (rc = create_txn(s, name, &root, enc.data, enc.len)) == SL_OK && ns_id)
		*ns_id = root.id;
	sl_buf_free(&enc);
	return rc;
}

int sl_dag_create_from_root(sl_store *s, const char *name, const uint8_t *root, size_t len)
{
	sl_dag_entry e;
	int rc;
	if ((rc = sl_dag_entry_decode(&e, root, len)) != SL_OK)
		return rc;
	rc = create_txn(s, name, &e, root, len);
	sl_dag_entry_free(&e);
	return rc;
}

/* --------------------------------------------------------------- writing */

/* The first (at most 16) tips in (height, id) order, and their height. */
static int tips_for_write(dag_txn *t, sl_dag_entry *e)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = dag_prepare(
	             t->s, &st,
	             "SELECT e.id, e.height FROM dag_tips t JOIN dag_entries e ON e.ns = t.ns "
	             "AND e.id = t.id WHERE t.ns = ?1 ORDER BY e.height, e.id LIMIT 16")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, t->row.id);
	e->height = 0;
	e->n_parents = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t h = (uint64_t)sqlite3_column_int64(st, 1);
		if (sqlite3_column_bytes(st, 0) != SL_DIGEST_LEN) {
			sqlite3_finalize(st);
			return sl_error_set(SL_ECORRUPT, "a tip's id is damaged");
		}
		memcpy(e->parents[e->n_parents++].bytes, sqlite3_column_blob(st, 0), SL_DIGEST_LEN);
		if (h + 1 > e->height)
			e->height = h + 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_sqlite_error(t->s, rc, "read the tips");
	if (e->n_parents == 0)
		return sl_error_set(SL_ECORRUPT, "the namespace has no tip");
	qsort(e->parents, e->n_parents, sizeof(e->parents[0]), dag_cmp_digest);
	return SL_OK;
}

int sl_dag_write_entry(sl_store *s, const char *ns, const uint8_t sk[SL_ED25519_SK_LEN],
                       const sl_dag_write *writes, const sl_bytes *values, size_t n, sl_digest *id)
{
	sl_buf enc = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_dag_write *own = NULL;
	sl_bytes *vals = NULL;
	sl_dag_entry e;
	dag_offered o = {NULL, 0, NULL};
	size_t n_vals = 0;
	dag_verdict v;
	dag_txn t;
	int rc;

	memset(&e, 0, sizeof(e));
	if (n == 0 || n > SL_DAG_MAX_WRITES)
		return sl_error_set(SL_EINVAL, "an entry holds 1..%d writes", SL_DAG_MAX_WRITES);
	if (!(own = sl_calloc(n, sizeof(*own))) || !(vals = sl_calloc(n, sizeof(*vals)))) {
		sl_free(own);
		return SL_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		own[i] = writes[i];
		if (own[i].kind == SL_DAG_SET) {
			own[i].value_len = values[i].len;
			sl_sha256(&own[i].digest, values[i].data, values[i].len);
			vals[n_vals++] = values[i];
		}
	}
	if ((rc = digest_values(&o, vals, n_vals)) != SL_OK)
		goto out;
	if ((rc = dag_txn_begin(&t, s, ns, 1)) != SL_OK)
		goto out;
	e.ns = t.row.root;
	memcpy(e.author, sk + 32, SL_ED25519_PK_LEN);
	e.time_ms = sl_clock_wall_ms();
	e.n_writes = n;
	e.writes = own;
	if ((rc = tips_for_write(&t, &e)) == SL_OK &&
	    (rc = sl_dag_entry_sign(&e, sk, &enc)) == SL_OK)
		rc = dag_offer(&t, enc.data, enc.len, NULL, &o, NULL, &e.id, &v);
	if (rc == SL_OK && v.outcome == DAG_REFUSED)
		rc = sl_error_set(v.code, "%s", v.reason);
	rc = dag_txn_end(&t, rc, 1);
	if (rc == SL_OK && id)
		*id = e.id;
out:
	sl_free(o.index);
	sl_free(own);
	sl_free(vals);
	sl_buf_free(&enc);
	return rc;
}
