/*
 * What the tests of dag namespaces share (tests/store/dag*_test.c): keys,
 * writes and values kept by the test (so entries can travel between
 * stores with their values), entry lists, the exchange of entries, state
 * dumps, and the state and tips that the merge rule gives, computed from
 * a log independently of the store.
 */
#ifndef SLUICE_TESTS_DAG_TESTUTIL_H
#define SLUICE_TESTS_DAG_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"
#include "sluice/dag.h"
#include "sluice/store.h"
#include "testutil.h"

static tu_rng rng;

/* ------------------------------------------------------------- helpers */

typedef struct key {
	uint8_t pk[SL_ED25519_PK_LEN];
	uint8_t sk[SL_ED25519_SK_LEN];
} key;

static inline key new_key(void)
{
	key k;
	assert_ok(sl_ed25519_keypair(k.pk, k.sk));
	return k;
}

static inline sl_store *open_store(const char *dir, unsigned flags)
{
	sl_store_options o;
	sl_store *s;
	sl_store_options_init(&o);
	o.flags = flags;
	o.durable = 0;
	assert_ok(sl_store_open(&s, dir, &o));
	return s;
}

/* Close a store and remove its directory (from tu_tempdir). */
static inline void drop_store(sl_store *s, char *dir)
{
	sl_store_free(s);
	tu_rmtree(dir);
	free(dir);
}

/* Every value a test wrote, by digest: what a node would send along with
 * the entries that set it. */
typedef struct value_rec {
	sl_digest digest;
	uint8_t *data;
	size_t len;
} value_rec;

static value_rec *values;
static size_t n_values, cap_values;

static inline const value_rec *value_find(const sl_digest *d)
{
	for (size_t i = 0; i < n_values; i++)
		if (sl_digest_eq(&values[i].digest, d))
			return &values[i];
	return NULL;
}

static inline sl_digest remember(const void *data, size_t len)
{
	sl_digest d;
	sl_sha256(&d, data, len);
	if (value_find(&d))
		return d;
	if (n_values == cap_values) {
		cap_values = cap_values ? 2 * cap_values : 64;
		values = realloc(values, cap_values * sizeof(*values));
		assert_non_null(values);
	}
	values[n_values].digest = d;
	values[n_values].data = malloc(len ? len : 1);
	assert_non_null(values[n_values].data);
	memcpy(values[n_values].data, data, len);
	values[n_values].len = len;
	n_values++;
	return d;
}

static inline void values_clear(void)
{
	for (size_t i = 0; i < n_values; i++)
		free(values[i].data);
	free(values);
	values = NULL;
	n_values = cap_values = 0;
}

static inline sl_dag_write set_w(const char *k, const char *value)
{
	sl_dag_write w;
	memset(&w, 0, sizeof(w));
	w.kind = SL_DAG_SET;
	w.key = k;
	w.key_len = strlen(k);
	w.value_len = strlen(value);
	w.digest = remember(value, strlen(value));
	return w;
}

static inline sl_dag_write del_w(const char *k)
{
	sl_dag_write w;
	memset(&w, 0, sizeof(w));
	w.kind = SL_DAG_DELETE;
	w.key = k;
	w.key_len = strlen(k);
	return w;
}

static inline sl_dag_write role_w(const uint8_t pk[SL_ED25519_PK_LEN], sl_dag_role role)
{
	sl_dag_write w;
	memset(&w, 0, sizeof(w));
	w.kind = SL_DAG_ROLE;
	memcpy(w.pk, pk, SL_ED25519_PK_LEN);
	w.role = role;
	return w;
}

/* sl_dag_write_entry with the values of SET writes taken from the table
 * (set_w remembered them). */
static inline int write_entry(sl_store *s, const char *ns, const key *k, const sl_dag_write *w,
                              size_t n, sl_digest *id)
{
	sl_bytes vals[16];
	assert_true(n <= 16);
	memset(vals, 0, sizeof(vals));
	for (size_t i = 0; i < n; i++) {
		if (w[i].kind == SL_DAG_SET) {
			const value_rec *v = value_find(&w[i].digest);
			assert_non_null(v);
			vals[i].data = v->data;
			vals[i].len = v->len;
		}
	}
	return sl_dag_write_entry(s, ns, k->sk, w, vals, n, id);
}

static inline sl_digest put(sl_store *s, const char *ns, const key *k, const char *key_,
                            const char *value)
{
	sl_dag_write w = set_w(key_, value);
	sl_digest id;
	assert_ok(write_entry(s, ns, k, &w, 1, &id));
	return id;
}

static inline sl_digest grant(sl_store *s, const char *ns, const key *admin, const uint8_t *pk,
                              sl_dag_role role)
{
	sl_dag_write w = role_w(pk, role);
	sl_digest id;
	assert_ok(write_entry(s, ns, admin, &w, 1, &id));
	return id;
}

/* Entries as sl_dag_log and sl_dag_tips hand them over, copied. */
typedef struct item {
	sl_digest id;
	uint64_t height;
	size_t n_parents;
	sl_digest parents[SL_DAG_MAX_PARENTS];
	uint8_t *enc;
	size_t len;
} item;

typedef struct elist {
	item *v;
	size_t n, cap;
} elist;

static inline int collect(void *ctx, const sl_dag_entry *e, const uint8_t *enc, size_t len)
{
	elist *l = ctx;
	item *it;
	if (l->n == l->cap) {
		item *grown;
		l->cap = l->cap ? 2 * l->cap : 16;
		if (!(grown = realloc(l->v, l->cap * sizeof(*l->v))))
			return SL_ENOMEM;
		l->v = grown;
	}
	it = &l->v[l->n];
	it->id = e->id;
	it->height = e->height;
	it->n_parents = e->n_parents;
	memcpy(it->parents, e->parents, sizeof(it->parents));
	if (!(it->enc = malloc(len)))
		return SL_ENOMEM;
	memcpy(it->enc, enc, len);
	it->len = len;
	l->n++;
	return 0;
}

static inline void elist_free(elist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].enc);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static inline void log_of(sl_store *s, const char *ns, elist *out)
{
	memset(out, 0, sizeof(*out));
	assert_ok(sl_dag_log(s, ns, collect, out));
}

static inline void tips_of(sl_store *s, const char *ns, elist *out)
{
	memset(out, 0, sizeof(*out));
	assert_ok(sl_dag_tips(s, ns, collect, out));
}

static inline int later(uint64_t h1, const sl_digest *id1, uint64_t h2, const sl_digest *id2)
{
	if (h1 != h2)
		return h1 > h2;
	return memcmp(id1->bytes, id2->bytes, SL_DIGEST_LEN) > 0;
}

static inline const item *find_item(const elist *l, const sl_digest *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (sl_digest_eq(&l->v[i].id, id))
			return &l->v[i];
	return NULL;
}

/* Offer encodings to a store with the values of their SET writes (when
 * with_values) from the table. */
/* Offer entries (with the values they set, when with_values) as if the
 * node `from` (NULL: unknown) had sent them, their signatures vouched for
 * by `verified` (NULL: checked by the store). */
static inline int offer_by(sl_store *to, const char *ns, const uint8_t *from,
                           const sl_dag_verified *verified, const sl_bytes *entries, size_t n,
                           int with_values, sl_dag_insert_report *rep)
{
	sl_bytes *vals = NULL;
	size_t n_vals = 0, cap = 0;
	int rc;

	for (size_t i = 0; with_values && i < n; i++) {
		sl_dag_entry e;
		if (sl_dag_entry_decode(&e, entries[i].data, entries[i].len) != SL_OK)
			continue;
		for (size_t j = 0; j < e.n_writes; j++) {
			const value_rec *v;
			if (e.writes[j].kind != SL_DAG_SET)
				continue;
			v = value_find(&e.writes[j].digest);
			assert_non_null(v);
			if (n_vals == cap) {
				cap = cap ? 2 * cap : 16;
				vals = realloc(vals, cap * sizeof(*vals));
				assert_non_null(vals);
			}
			vals[n_vals].data = v->data;
			vals[n_vals++].len = v->len;
		}
		sl_dag_entry_free(&e);
	}
	rc = sl_dag_insert_from(to, ns, from, verified, entries, n, vals, n_vals, rep);
	free(vals);
	return rc;
}

static inline int offer(sl_store *to, const char *ns, const sl_bytes *entries, size_t n,
                        int with_values, sl_dag_insert_report *rep)
{
	return offer_by(to, ns, NULL, NULL, entries, n, with_values, rep);
}

static inline void offer_items(sl_store *to, const char *ns, const item *const *items, size_t n,
                               int with_values, sl_dag_insert_report *rep)
{
	sl_bytes *entries = calloc(n ? n : 1, sizeof(*entries));
	assert_non_null(entries);
	for (size_t i = 0; i < n; i++) {
		entries[i].data = items[i]->enc;
		entries[i].len = items[i]->len;
	}
	assert_ok(offer(to, ns, entries, n, with_values, rep));
	free(entries);
}

/* Offer every entry `from` holds, in log order; returns how many were new. */
static inline size_t send_all(sl_store *from, sl_store *to, const char *ns)
{
	sl_dag_insert_report rep;
	const item **items;
	elist l;
	log_of(from, ns, &l);
	items = calloc(l.n, sizeof(*items));
	assert_non_null(items);
	for (size_t i = 0; i < l.n; i++)
		items[i] = &l.v[i];
	offer_items(to, ns, items, l.n, 1, &rep);
	if (rep.refused)
		fail_msg("a full exchange refused %zu entries: %s", rep.refused, rep.reason);
	assert_int_equal(rep.stored + rep.known, l.n);
	free(items);
	elist_free(&l);
	return rep.stored;
}

/* The state as the store reads it: "key=value\n" in key order, through
 * sl_store_list and sl_store_get (values are text here). */
typedef struct listed {
	char key[128];
	size_t key_len;
	sl_digest digest;
	uint64_t value_len;
} listed;

typedef struct listing {
	listed *v;
	size_t n, cap;
} listing;

static inline int collect_key(void *ctx, const sl_key_entry *e)
{
	listing *l = ctx;
	if (e->key_len >= sizeof(l->v[0].key))
		return SL_ETOOLARGE;
	if (l->n == l->cap) {
		listed *grown;
		l->cap = l->cap ? 2 * l->cap : 16;
		if (!(grown = realloc(l->v, l->cap * sizeof(*l->v))))
			return SL_ENOMEM;
		l->v = grown;
	}
	memcpy(l->v[l->n].key, e->key, e->key_len);
	l->v[l->n].key[e->key_len] = '\0';
	l->v[l->n].key_len = e->key_len;
	l->v[l->n].digest = e->digest;
	l->v[l->n].value_len = e->value_len;
	l->n++;
	return 0;
}

static inline size_t dump_state(sl_store *s, const char *ns, sl_buf *out)
{
	sl_buf v = SL_BUF_INIT(1 << 20);
	listing l = {0};

	sl_buf_reset(out);
	assert_ok(sl_store_list(s, ns, "", 0, collect_key, &l));
	for (size_t i = 0; i < l.n; i++) {
		sl_digest d;
		if (i > 0)
			assert_true(strcmp(l.v[i - 1].key, l.v[i].key) < 0);
		assert_ok(sl_store_get(s, ns, l.v[i].key, l.v[i].key_len, &v, NULL));
		sl_sha256(&d, v.data, v.len);
		assert_true(sl_digest_eq(&d, &l.v[i].digest));
		assert_int_equal(v.len, l.v[i].value_len);
		assert_ok(sl_buf_printf(out, "%s=%.*s\n", l.v[i].key, (int)v.len,
		                        (const char *)v.data));
	}
	sl_buf_free(&v);
	free(l.v);
	return l.n;
}

/* The merge rule computed here from a log: per key, the write of the entry
 * greatest in (height, id); "key=value\n" of the live keys in key order. */
typedef struct mkey {
	char key[128];
	uint64_t height;
	sl_digest id;
	int deleted;
	sl_digest digest;
} mkey;

static inline int cmp_mkey(const void *a, const void *b)
{
	return strcmp(((const mkey *)a)->key, ((const mkey *)b)->key);
}

static inline size_t model_state(const elist *log, sl_buf *out)
{
	mkey *m = NULL;
	size_t n = 0, cap = 0, live = 0;

	sl_buf_reset(out);
	for (size_t i = 0; i < log->n; i++) {
		sl_dag_entry e;
		assert_ok(sl_dag_entry_decode(&e, log->v[i].enc, log->v[i].len));
		for (size_t j = 0; j < e.n_writes; j++) {
			const sl_dag_write *w = &e.writes[j];
			size_t k;
			if (w->kind == SL_DAG_ROLE)
				continue;
			assert_true(w->key_len < sizeof(m[0].key));
			for (k = 0; k < n; k++)
				if (strlen(m[k].key) == w->key_len &&
				    memcmp(m[k].key, w->key, w->key_len) == 0)
					break;
			if (k == n) {
				if (n == cap) {
					cap = cap ? 2 * cap : 16;
					m = realloc(m, cap * sizeof(*m));
					assert_non_null(m);
				}
				memset(&m[n], 0, sizeof(m[n]));
				memcpy(m[n].key, w->key, w->key_len);
				n++;
			} else if (!later(e.height, &e.id, m[k].height, &m[k].id)) {
				continue;
			}
			m[k].height = e.height;
			m[k].id = e.id;
			m[k].deleted = w->kind == SL_DAG_DELETE;
			m[k].digest = w->digest;
		}
		sl_dag_entry_free(&e);
	}
	if (n)
		qsort(m, n, sizeof(*m), cmp_mkey);
	for (size_t k = 0; k < n; k++) {
		const value_rec *v;
		if (m[k].deleted)
			continue;
		v = value_find(&m[k].digest);
		assert_non_null(v);
		assert_ok(sl_buf_printf(out, "%s=%.*s\n", m[k].key, (int)v->len,
		                        (const char *)v->data));
		live++;
	}
	free(m);
	return live;
}

/* The tips a log makes: entries no other names as a parent, in (height,
 * id) order (the log's order). */
static inline size_t model_tips(const elist *log, sl_digest *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < log->n; i++) {
		int named = 0;
		for (size_t j = 0; j < log->n && !named; j++)
			for (size_t p = 0; p < log->v[j].n_parents && !named; p++)
				named = sl_digest_eq(&log->v[j].parents[p], &log->v[i].id);
		if (!named) {
			assert_true(n < cap);
			out[n++] = log->v[i].id;
		}
	}
	return n;
}

/* The log is in strict (height, id) order, every id is the hash of its
 * encoding, every parent comes earlier, every height is right. */
static inline void check_log_order(const elist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		const item *it = &l->v[i];
		uint64_t max = 0;
		sl_digest d;
		sl_sha256(&d, it->enc, it->len);
		assert_true(sl_digest_eq(&d, &it->id));
		if (i > 0)
			assert_true(
			        later(it->height, &it->id, l->v[i - 1].height, &l->v[i - 1].id));
		for (size_t p = 0; p < it->n_parents; p++) {
			const item *parent = NULL;
			for (size_t j = 0; j < i && !parent; j++)
				if (sl_digest_eq(&l->v[j].id, &it->parents[p]))
					parent = &l->v[j];
			assert_non_null(parent);
			if (parent->height > max)
				max = parent->height;
		}
		assert_int_equal(it->height, it->n_parents ? max + 1 : 0);
	}
}

static inline void check_value(sl_store *s, const char *ns, const char *k, const char *want)
{
	sl_buf v = SL_BUF_INIT(1 << 20);
	int rc = sl_store_get(s, ns, k, strlen(k), &v, NULL);
	if (!want) {
		assert_int_equal(rc, SL_ENOTFOUND);
	} else {
		assert_ok(rc);
		assert_int_equal(v.len, strlen(want));
		assert_memory_equal(v.data, want, v.len);
	}
	sl_buf_free(&v);
}

static inline void expect_role(sl_store *s, const char *ns, const key *k, sl_dag_role want)
{
	sl_dag_role r = (sl_dag_role)-1;
	assert_ok(sl_dag_role_of(s, ns, k->pk, &r));
	assert_int_equal(r, want);
}

static inline void expect_same_stores(sl_store *a, sl_store *b, const char *ns, size_t want_keys,
                                      size_t want_tips)
{
	sl_buf da = SL_BUF_INIT(1 << 20), db = SL_BUF_INIT(1 << 20), dm = SL_BUF_INIT(1 << 20);
	sl_dag_info ia, ib;
	elist la, lb, ta, tb;
	sl_digest want[SL_DAG_MAX_PARENTS];

	assert_int_equal(dump_state(a, ns, &da), want_keys);
	assert_int_equal(dump_state(b, ns, &db), want_keys);
	assert_string_equal((const char *)da.data, (const char *)db.data);
	log_of(a, ns, &la);
	log_of(b, ns, &lb);
	assert_int_equal(la.n, lb.n);
	for (size_t i = 0; i < la.n; i++) {
		assert_int_equal(la.v[i].len, lb.v[i].len);
		assert_memory_equal(la.v[i].enc, lb.v[i].enc, la.v[i].len);
	}
	check_log_order(&la);
	assert_int_equal(model_state(&la, &dm), want_keys);
	assert_string_equal((const char *)dm.data, (const char *)da.data);
	tips_of(a, ns, &ta);
	tips_of(b, ns, &tb);
	assert_int_equal(ta.n, want_tips);
	assert_int_equal(tb.n, want_tips);
	assert_int_equal(model_tips(&la, want, SL_DAG_MAX_PARENTS), want_tips);
	assert_ok(sl_dag_info_get(a, ns, &ia));
	assert_ok(sl_dag_info_get(b, ns, &ib));
	assert_int_equal(ia.entries, la.n);
	assert_int_equal(ib.entries, la.n);
	assert_int_equal(ia.keys, want_keys);
	assert_int_equal(ib.keys, want_keys);
	assert_int_equal(ia.max_height, ib.max_height);
	assert_int_equal(ia.n_tips, want_tips);
	assert_int_equal(ib.n_tips, want_tips);
	for (size_t i = 0; i < want_tips; i++) {
		assert_memory_equal(ta.v[i].id.bytes, want[i].bytes, SL_DIGEST_LEN);
		assert_memory_equal(tb.v[i].id.bytes, want[i].bytes, SL_DIGEST_LEN);
		assert_memory_equal(ia.tips[i].bytes, want[i].bytes, SL_DIGEST_LEN);
		assert_memory_equal(ib.tips[i].bytes, want[i].bytes, SL_DIGEST_LEN);
	}
	elist_free(&la);
	elist_free(&lb);
	elist_free(&ta);
	elist_free(&tb);
	sl_buf_free(&da);
	sl_buf_free(&db);
	sl_buf_free(&dm);
}

static inline int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, SL_DIGEST_LEN);
}

#endif
