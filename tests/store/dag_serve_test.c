/*
 * What a node hands its peers from a dag namespace (sluice/dag.h):
 *   test_items_refresh      sl_dag_items on a growing namespace: after
 *                           writes, and after entries from another store
 *                           that sort below ones already seen, the items
 *                           are exactly the log's (height, id), counted
 *                           as its entries; a refresh without change
 *                           changes nothing; a view pointed at another
 *                           namespace starts over; another handle on the
 *                           same store serves as well; errors for a log
 *                           or a missing namespace;
 *   test_items_reconcile    two stores sharing a history, each writing
 *                           entries of its own, reconciled over their item
 *                           views (with and without a frame limit, both
 *                           ways round): have and need are exactly the
 *                           differences of their logs; fetching them with
 *                           sl_dag_serve_ids makes the stores equal;
 *   test_serve_ids          ids in random order with repeats, unknown ids
 *                           and another namespace's: each held entry once
 *                           in (height, id) order, each value it sets
 *                           once per call just before it, the unknown ids
 *                           once each; byte budgets cut after the entry
 *                           that reaches them (at least one entry) and
 *                           set more; a sink's error stops the call;
 *   test_serve_after        paging from the root with a small budget
 *                           hands every other entry once, in order, with
 *                           more=0 on the last page only; the pages fed to
 *                           sl_dag_insert on a store joined from
 *                           sl_dag_root_entry rebuild the same store;
 *   test_find_tips_root     sl_dag_find by id (and the first name when
 *                           two hold it), sl_dag_tip_ids beyond its cap,
 *                           sl_dag_root_entry.
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include "dag_testutil.h"

/* ------------------------------------------------------------ histories */

static const char *const pool[] = {
        "", "alpha", "beta", "gamma",
        "a longer value, so that some entries take more bytes than others do"};

/* One entry of 1..3 random writes by k on the tips of s: SETs of pool
 * values (shared between entries) or fresh ones, and DELETEs. */
static sl_digest random_entry(sl_store *s, const char *ns, const key *k)
{
	char keys[3][32], fresh[3][48];
	sl_dag_write w[3];
	size_t n = 1 + (size_t)tu_rng_below(&rng, 3);
	sl_digest id;

	for (size_t i = 0; i < n; i++) {
		uint64_t r = tu_rng_below(&rng, 10);
		snprintf(keys[i], sizeof(keys[i]), "k%zu/%u", i, (unsigned)tu_rng_below(&rng, 8));
		if (r < 2) {
			w[i] = del_w(keys[i]);
		} else if (r < 6) {
			w[i] = set_w(keys[i], pool[tu_rng_below(&rng, 5)]);
		} else {
			snprintf(fresh[i], sizeof(fresh[i]), "value %016llx",
			         (unsigned long long)tu_rng_next(&rng));
			w[i] = set_w(keys[i], fresh[i]);
		}
	}
	assert_ok(write_entry(s, ns, k, w, n, &id));
	return id;
}

/* Namespace ns created in a by admin, which grants writer WRITE; b joins
 * from the root and takes what a holds. */
static sl_digest setup_pair(sl_store *a, sl_store *b, const char *ns, const key *admin,
                            const key *writer)
{
	sl_buf root = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_digest ns_id;
	assert_ok(sl_dag_create(a, ns, admin->sk, &ns_id));
	grant(a, ns, admin, writer->pk, SL_DAG_WRITE);
	assert_ok(sl_dag_root_entry(a, ns, &root));
	assert_ok(sl_dag_create_from_root(b, ns, root.data, root.len));
	assert_int_equal(send_all(a, b, ns), 1);
	sl_buf_free(&root);
	return ns_id;
}

/* rounds of each side writing 0..3 entries, exchanged now and then, so
 * that the log has branches and merges. */
static void grow(sl_store *a, sl_store *b, const char *ns, const key *ka, const key *kb, int rounds)
{
	for (int r = 0; r < rounds; r++) {
		uint64_t na = tu_rng_below(&rng, 4), nb = tu_rng_below(&rng, 4);
		for (uint64_t i = 0; i < na; i++)
			random_entry(a, ns, ka);
		for (uint64_t i = 0; i < nb; i++)
			random_entry(b, ns, kb);
		if (tu_rng_below(&rng, 3) == 0)
			send_all(a, b, ns);
		if (tu_rng_below(&rng, 3) == 0)
			send_all(b, a, ns);
	}
}

/* -------------------------------------------------------------- id sets */

typedef struct id_list {
	sl_digest *v;
	size_t n, cap;
} id_list;

static void ids_push(id_list *l, const uint8_t id[SL_DIGEST_LEN])
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	memcpy(l->v[l->n++].bytes, id, SL_DIGEST_LEN);
}

/* Sort and drop repeats. */
static void ids_settle(id_list *l)
{
	size_t kept = 0;
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_digest);
	for (size_t i = 0; i < l->n; i++)
		if (kept == 0 || !sl_digest_eq(&l->v[kept - 1], &l->v[i]))
			l->v[kept++] = l->v[i];
	l->n = kept;
}

static void ids_free(id_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void expect_same_ids(id_list *got, id_list *want, const char *what)
{
	ids_settle(got);
	ids_settle(want);
	if (got->n != want->n)
		fail_msg("%s: %zu ids, %zu expected", what, got->n, want->n);
	for (size_t i = 0; i < got->n; i++)
		if (!sl_digest_eq(&got->v[i], &want->v[i]))
			fail_msg("%s: id %zu differs", what, i);
}

/* The ids of log a that are not in log b. */
static void log_minus(const elist *a, const elist *b, id_list *out)
{
	for (size_t i = 0; i < a->n; i++)
		if (!find_item(b, &a->v[i].id))
			ids_push(out, a->v[i].id.bytes);
}

/* ------------------------------------------------------------ item views */

/* The view holds exactly the (height, id) of every entry of ns in s, in
 * the log's order, counted as its entries; ranges sum as their ids. */
static void expect_items(sl_dag_items *v, sl_store *s, const char *ns)
{
	sl_item_set set = sl_dag_items_set(v);
	sl_item_sum want_sum, got_sum;
	sl_dag_info info;
	uint64_t count;
	elist log;

	log_of(s, ns, &log);
	assert_ok(sl_dag_info_get(s, ns, &info));
	assert_int_equal(info.entries, log.n);
	assert_int_equal(sl_dag_items_count(v), log.n);
	assert_ok(set.ops->count(set.ctx, &count));
	assert_int_equal(count, log.n);
	sl_item_sum_zero(&want_sum);
	for (size_t i = 0; i < log.n; i++) {
		sl_item it;
		assert_ok(set.ops->get(set.ctx, i, &it));
		assert_int_equal(it.ts, log.v[i].height);
		assert_memory_equal(it.id, log.v[i].id.bytes, SL_DIGEST_LEN);
		sl_item_sum_add_id(&want_sum, log.v[i].id.bytes);
	}
	assert_ok(set.ops->sum(set.ctx, 0, log.n, &got_sum));
	assert_memory_equal(&got_sum, &want_sum, sizeof(got_sum));
	for (int r = 0; r < 8 && log.n > 0; r++) {
		uint64_t b = tu_rng_below(&rng, log.n), e = b + tu_rng_below(&rng, log.n - b + 1);
		sl_item_sum_zero(&want_sum);
		for (uint64_t i = b; i < e; i++)
			sl_item_sum_add_id(&want_sum, log.v[i].id.bytes);
		assert_ok(set.ops->sum(set.ctx, b, e, &got_sum));
		assert_memory_equal(&got_sum, &want_sum, sizeof(got_sum));
	}
	elist_free(&log);
}

/* The items of a view, copied. */
static sl_item *items_copy(sl_dag_items *v, uint64_t *n)
{
	sl_item_set set = sl_dag_items_set(v);
	sl_item *out;
	assert_ok(set.ops->count(set.ctx, n));
	out = calloc(*n ? *n : 1, sizeof(*out));
	assert_non_null(out);
	for (uint64_t i = 0; i < *n; i++)
		assert_ok(set.ops->get(set.ctx, i, &out[i]));
	return out;
}

static void test_items_refresh(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	sl_store *a2;
	key admin = new_key(), writer = new_key();
	sl_dag_items *v, *late;
	sl_item *before, *after;
	uint64_t n_before, n_after, max_seen;
	sl_dag_info info;
	elist lb;
	(void)state;

	assert_ok(sl_dag_items_new(&v));
	assert_ok(sl_dag_create(a, "d", admin.sk, NULL));
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	assert_int_equal(sl_dag_items_count(v), 1);
	expect_items(v, a, "d");
	grant(a, "d", &admin, writer.pk, SL_DAG_WRITE);
	for (int i = 0; i < 6; i++)
		random_entry(a, "d", &admin);

	/* b joins here; a writes on, refreshing after each write or two. */
	{
		sl_buf root = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
		assert_ok(sl_dag_root_entry(a, "d", &root));
		assert_ok(sl_dag_create_from_root(b, "d", root.data, root.len));
		sl_buf_free(&root);
	}
	send_all(a, b, "d");
	for (int i = 0; i < 20; i++) {
		random_entry(a, "d", &admin);
		if (tu_rng_below(&rng, 2) == 0) {
			assert_ok(sl_dag_items_refresh(v, a, "d"));
			expect_items(v, a, "d");
		}
	}
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	expect_items(v, a, "d");
	assert_ok(sl_dag_info_get(a, "d", &info));
	max_seen = info.max_height;

	/* b's branch sorts below much of what the view holds: its entries
	 * come after in storage order, before in (height, id) order. */
	for (int i = 0; i < 8; i++)
		random_entry(b, "d", &writer);
	log_of(b, "d", &lb);
	assert_true(lb.v[lb.n - 1].height < max_seen);
	elist_free(&lb);
	assert_int_equal(send_all(b, a, "d"), 8);
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	expect_items(v, a, "d");

	/* Twice without change: the same items. */
	before = items_copy(v, &n_before);
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	after = items_copy(v, &n_after);
	assert_int_equal(n_after, n_before);
	assert_memory_equal(after, before, n_before * sizeof(*before));
	expect_items(v, a, "d");
	free(after);

	/* A view made now, refreshed once, holds the same items. */
	assert_ok(sl_dag_items_new(&late));
	assert_ok(sl_dag_items_refresh(late, a, "d"));
	after = items_copy(late, &n_after);
	assert_int_equal(n_after, n_before);
	assert_memory_equal(after, before, n_before * sizeof(*before));
	free(after);
	free(before);
	sl_dag_items_free(late);

	/* Another namespace: the view starts over, and back again. */
	assert_ok(sl_dag_create(a, "e", admin.sk, NULL));
	put(a, "e", &admin, "x", "in e");
	put(a, "e", &admin, "y", "in e too");
	assert_ok(sl_dag_items_refresh(v, a, "e"));
	assert_int_equal(sl_dag_items_count(v), 3);
	expect_items(v, a, "e");
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	expect_items(v, a, "d");

	/* A log namespace or none: refused. */
	assert_ok(sl_store_ns_create(a, "m", SL_NS_MUTABLE));
	assert_int_equal(sl_dag_items_refresh(v, a, "m"), SL_EINVAL);
	assert_int_equal(sl_dag_items_refresh(v, a, "nope"), SL_ENOTFOUND);
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	expect_items(v, a, "d");

	/* Not tied to a handle: writes through one, refreshed through another. */
	a2 = open_store(dir_a, 0);
	for (int i = 0; i < 5; i++)
		random_entry(a2, "d", &writer);
	assert_ok(sl_dag_items_refresh(v, a, "d"));
	expect_items(v, a2, "d");
	random_entry(a, "d", &admin);
	assert_ok(sl_dag_items_refresh(v, a2, "d"));
	expect_items(v, a, "d");
	sl_store_free(a2);

	sl_dag_items_free(v);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* ---------------------------------------------------------------- sinks */

/* What a sink was handed, in order. */
typedef struct handed {
	char kind;     /* 'v' value, 'e' entry */
	sl_digest id;  /* the value's digest as handed, or the entry's id */
	sl_digest sum; /* SHA-256 of the bytes */
	uint64_t height;
	uint8_t *data; /* the value, or the entry's encoding */
	size_t len;
	sl_digest *sets; /* an entry's SET digests */
	size_t n_sets;
} handed;

typedef struct sink_log {
	handed *v;
	size_t n, cap;
	id_list missing;
	size_t bytes;     /* of values and entries */
	size_t fail_at;   /* the entry callback fails at this entry (1-based); 0: never */
	size_t n_entries; /* entries handed */
} sink_log;

static int push_handed(sink_log *l, char kind, const sl_digest *id, const sl_dag_entry *e,
                       const uint8_t *data, size_t len)
{
	handed *h;
	if (l->n == l->cap) {
		handed *grown;
		l->cap = l->cap ? 2 * l->cap : 32;
		if (!(grown = realloc(l->v, l->cap * sizeof(*l->v))))
			return SL_ENOMEM;
		l->v = grown;
	}
	h = &l->v[l->n];
	h->kind = kind;
	h->id = *id;
	sl_sha256(&h->sum, data, len);
	h->height = e ? e->height : 0;
	h->sets = NULL;
	h->n_sets = 0;
	if (!(h->data = malloc(len ? len : 1)))
		return SL_ENOMEM;
	if (e && !(h->sets = calloc(e->n_writes + 1, sizeof(*h->sets)))) {
		free(h->data);
		return SL_ENOMEM;
	}
	for (size_t i = 0; e && i < e->n_writes; i++)
		if (e->writes[i].kind == SL_DAG_SET)
			h->sets[h->n_sets++] = e->writes[i].digest;
	if (len)
		memcpy(h->data, data, len);
	h->len = len;
	l->n++;
	l->bytes += len;
	return 0;
}

static int sink_value(void *ctx, const sl_digest *digest, const uint8_t *data, size_t len)
{
	return push_handed(ctx, 'v', digest, NULL, data, len);
}

static int sink_entry(void *ctx, const sl_dag_entry *e, const uint8_t *enc, size_t len)
{
	sink_log *l = ctx;
	if (l->fail_at && ++l->n_entries == l->fail_at)
		return SL_ETIMEOUT;
	return push_handed(l, 'e', &e->id, e, enc, len);
}

static int sink_missing(void *ctx, const uint8_t id[SL_DIGEST_LEN])
{
	ids_push(&((sink_log *)ctx)->missing, id);
	return 0;
}

static sl_dag_sink sink_of(sink_log *l)
{
	sl_dag_sink s = {sink_value, sink_entry, sink_missing, l};
	return s;
}

static void sink_reset(sink_log *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].data);
		free(l->v[i].sets);
	}
	l->n = 0;
	l->bytes = 0;
	l->n_entries = 0;
	l->fail_at = 0;
	l->missing.n = 0;
}

static void sink_free(sink_log *l)
{
	sink_reset(l);
	free(l->v);
	ids_free(&l->missing);
	memset(l, 0, sizeof(*l));
}

static size_t sink_entries(const sink_log *l)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		n += l->v[i].kind == 'e';
	return n;
}

/* Whether a handed entry sets the value digest d. */
static int entry_sets(const handed *h, const sl_digest *d)
{
	for (size_t i = 0; i < h->n_sets; i++)
		if (sl_digest_eq(&h->sets[i], d))
			return 1;
	return 0;
}

/* One call's handing, checked against the rules: entries as the log
 * holds them, in strictly increasing (height, id); every value's bytes
 * hash to its digest and are those written; each value handed once, just
 * before the first entry that sets it (in the run of values before that
 * entry, set by no earlier entry of the call); every SET of an entry
 * handed before it. Returns the SET writes counted over the entries, to
 * show values were shared. */
static size_t check_handed(const sink_log *l, const elist *log)
{
	size_t sets = 0;
	const handed *prev = NULL;

	for (size_t i = 0; i < l->n; i++) {
		const handed *h = &l->v[i];
		if (h->kind == 'v') {
			const value_rec *rec = value_find(&h->id);
			size_t next = i + 1;
			assert_true(sl_digest_eq(&h->sum, &h->id));
			assert_non_null(rec);
			assert_int_equal(rec->len, h->len);
			if (h->len)
				assert_memory_equal(rec->data, h->data, h->len);
			for (size_t j = 0; j < i; j++) {
				assert_false(l->v[j].kind == 'v' &&
				             sl_digest_eq(&l->v[j].id, &h->id));
				assert_false(l->v[j].kind == 'e' && entry_sets(&l->v[j], &h->id));
			}
			while (next < l->n && l->v[next].kind == 'v')
				next++;
			assert_true(next < l->n); /* a value goes with an entry */
			assert_true(entry_sets(&l->v[next], &h->id));
		} else {
			const item *it = find_item(log, &h->id);
			sl_dag_entry e;
			assert_non_null(it);
			assert_true(sl_digest_eq(&h->sum, &h->id));
			assert_int_equal(h->len, it->len);
			assert_memory_equal(h->data, it->enc, it->len);
			assert_int_equal(h->height, it->height);
			if (prev)
				assert_true(later(h->height, &h->id, prev->height, &prev->id));
			prev = h;
			assert_ok(sl_dag_entry_decode(&e, h->data, h->len));
			for (size_t w = 0; w < e.n_writes; w++) {
				int seen = 0;
				if (e.writes[w].kind != SL_DAG_SET)
					continue;
				sets++;
				for (size_t j = 0; j < i && !seen; j++)
					seen = l->v[j].kind == 'v' &&
					       sl_digest_eq(&l->v[j].id, &e.writes[w].digest);
				assert_true(seen);
			}
			sl_dag_entry_free(&e);
		}
	}
	return sets;
}

/* The bytes handed up to and including the k-th entry (1-based). */
static size_t bytes_through(const sink_log *l, size_t k)
{
	size_t bytes = 0, seen = 0;
	for (size_t i = 0; i < l->n && seen < k; i++) {
		bytes += l->v[i].len;
		seen += l->v[i].kind == 'e';
	}
	return bytes;
}

/* The entries and values of a call, offered to another store. */
static void insert_handed(sl_store *to, const char *ns, const sink_log *l,
                          sl_dag_insert_report *rep)
{
	sl_bytes *entries = calloc(l->n + 1, sizeof(*entries)),
	         *vals = calloc(l->n + 1, sizeof(*vals));
	size_t ne = 0, nv = 0;
	assert_non_null(entries);
	assert_non_null(vals);
	for (size_t i = 0; i < l->n; i++) {
		sl_bytes *b = l->v[i].kind == 'e' ? &entries[ne++] : &vals[nv++];
		b->data = l->v[i].data;
		b->len = l->v[i].len;
	}
	assert_ok(sl_dag_insert(to, ns, entries, ne, vals, nv, rep));
	free(entries);
	free(vals);
}

/* ------------------------------------------------------- reconciliation */

static int on_have(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	ids_push(&((id_list *)ctx)[0], id);
	return 0;
}

static int on_need(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	ids_push(&((id_list *)ctx)[1], id);
	return 0;
}

/* Reconcile view a (initiator) against view b (responder); have and need
 * into found[0] and found[1]; the rounds taken. */
static unsigned reconcile(sl_dag_items *a, sl_dag_items *b, size_t limit, id_list found[2])
{
	sl_item_set sa = sl_dag_items_set(a), sb = sl_dag_items_set(b);
	sl_buf msg = SL_BUF_INIT(16 << 20), reply = SL_BUF_INIT(16 << 20);
	sl_reconcile_diff diff = {on_have, on_need, found};
	unsigned rounds = 0;
	int done = 0;

	assert_ok(sl_reconcile_initiate(&sa, limit, &msg));
	while (!done) {
		assert_true(++rounds < 200);
		sl_buf_reset(&reply);
		assert_ok(sl_reconcile_respond(&sb, limit, msg.data, msg.len, &reply));
		sl_buf_reset(&msg);
		assert_ok(sl_reconcile_next(&sa, limit, reply.data, reply.len, &diff, &msg, &done));
	}
	sl_buf_free(&msg);
	sl_buf_free(&reply);
	return rounds;
}

/* Reconcile the stores' views both ways round, with and without a frame
 * limit, against the differences of their logs; the differences found. */
static size_t expect_differences(sl_store *a, sl_store *b, sl_dag_items *va, sl_dag_items *vb)
{
	static const size_t limits[] = {0, SL_RECONCILE_FRAME_MIN};
	id_list a_only = {0}, b_only = {0};
	elist la, lb;
	size_t diff;

	assert_ok(sl_dag_items_refresh(va, a, "d"));
	assert_ok(sl_dag_items_refresh(vb, b, "d"));
	log_of(a, "d", &la);
	log_of(b, "d", &lb);
	log_minus(&la, &lb, &a_only);
	log_minus(&lb, &la, &b_only);
	diff = a_only.n + b_only.n;
	for (size_t i = 0; i < 2; i++) {
		for (int way = 0; way < 2; way++) {
			id_list found[2] = {{0}, {0}};
			unsigned rounds = way ? reconcile(vb, va, limits[i], found)
			                      : reconcile(va, vb, limits[i], found);
			expect_same_ids(&found[0], way ? &b_only : &a_only, "have");
			expect_same_ids(&found[1], way ? &a_only : &b_only, "need");
			if (diff == 0)
				assert_int_equal(rounds, 1);
			ids_free(&found[0]);
			ids_free(&found[1]);
		}
	}
	ids_free(&a_only);
	ids_free(&b_only);
	elist_free(&la);
	elist_free(&lb);
	return diff;
}

/* The entries `to` needs from `from`, by id, through sl_dag_serve_ids. */
static void fetch(sl_store *from, sl_store *to, id_list *ids)
{
	sink_log l = {0};
	sl_dag_sink sink = sink_of(&l);
	sl_dag_served out;
	sl_dag_insert_report rep;
	elist log;
	log_of(from, "d", &log);
	assert_ok(sl_dag_serve_ids(from, "d", (const uint8_t(*)[SL_DIGEST_LEN])ids->v, ids->n,
	                           SIZE_MAX, &sink, &out));
	assert_int_equal(out.entries, ids->n);
	assert_int_equal(out.missing, 0);
	check_handed(&l, &log);
	insert_handed(to, "d", &l, &rep);
	assert_int_equal(rep.stored, ids->n);
	assert_int_equal(rep.refused, 0);
	sink_free(&l);
	elist_free(&log);
}

static void test_items_reconcile(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key(), writer = new_key();
	sl_dag_items *va, *vb;
	size_t total = 0;
	id_list found[2] = {{0}, {0}};
	sl_buf dump = SL_BUF_INIT(1 << 20);
	sl_dag_info info;
	(void)state;

	assert_ok(sl_dag_items_new(&va));
	assert_ok(sl_dag_items_new(&vb));
	setup_pair(a, b, "d", &admin, &writer);
	grow(a, b, "d", &admin, &writer, 20);
	send_all(a, b, "d");
	send_all(b, a, "d");
	assert_int_equal(expect_differences(a, b, va, vb), 0);

	/* Rounds of writes on both sides, some exchanged one way. */
	for (int r = 0; r < 5; r++) {
		uint64_t na = tu_rng_below(&rng, 25), nb = 1 + tu_rng_below(&rng, 25);
		for (uint64_t i = 0; i < na; i++)
			random_entry(a, "d", &admin);
		for (uint64_t i = 0; i < nb; i++)
			random_entry(b, "d", &writer);
		if (r == 2)
			send_all(a, b, "d");
		if (r == 3)
			send_all(b, a, "d");
		total += expect_differences(a, b, va, vb);
	}
	assert_true(total > 0);

	/* What reconciliation found, fetched by id, makes the stores equal. */
	assert_ok(sl_dag_items_refresh(va, a, "d"));
	assert_ok(sl_dag_items_refresh(vb, b, "d"));
	reconcile(va, vb, 0, found);
	ids_settle(&found[0]);
	ids_settle(&found[1]);
	assert_true(found[1].n > 0);
	fetch(b, a, &found[1]);
	fetch(a, b, &found[0]);
	assert_int_equal(expect_differences(a, b, va, vb), 0);
	assert_ok(sl_dag_info_get(a, "d", &info));
	expect_same_stores(a, b, "d", dump_state(a, "d", &dump), info.n_tips);

	ids_free(&found[0]);
	ids_free(&found[1]);
	sl_buf_free(&dump);
	sl_dag_items_free(va);
	sl_dag_items_free(vb);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* ---------------------------------------------------------- serving ids */

static void test_serve_ids(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key(), writer = new_key();
	sl_digest other_id, ask[512], unknown[3], shared_id;
	sl_dag_write w[2];
	sl_dag_served out;
	sink_log l = {0}, full = {0};
	sl_dag_sink sink = sink_of(&l), sink_full = sink_of(&full);
	id_list want_missing = {0}, rest = {0};
	elist log;
	size_t n_ask = 0, n_want = 0, sets, n_entries;
	(void)state;

	setup_pair(a, b, "d", &admin, &writer);
	grow(a, b, "d", &admin, &writer, 15);
	/* One entry sets one value under two keys. */
	w[0] = set_w("same/1", "the same bytes twice");
	w[1] = set_w("same/2", "the same bytes twice");
	assert_ok(write_entry(b, "d", &writer, w, 2, &shared_id));
	send_all(b, a, "d");
	assert_ok(sl_dag_create(a, "other", admin.sk, &other_id));
	log_of(a, "d", &log);
	assert_true(log.n > 10);

	/* Every other entry or so, some twice, the two-value one surely;
	 * unknown ids, one twice; the other namespace's root. */
	for (size_t i = 0; i < log.n; i++) {
		if (tu_rng_below(&rng, 2) == 0 && !sl_digest_eq(&log.v[i].id, &shared_id))
			continue;
		n_want++;
		ask[n_ask++] = log.v[i].id;
		if (tu_rng_below(&rng, 4) == 0)
			ask[n_ask++] = log.v[i].id;
	}
	for (int i = 0; i < 3; i++) {
		tu_rng_fill(&rng, unknown[i].bytes, SL_DIGEST_LEN);
		ask[n_ask++] = unknown[i];
		ids_push(&want_missing, unknown[i].bytes);
	}
	ask[n_ask++] = unknown[1];
	ask[n_ask++] = other_id;
	ids_push(&want_missing, other_id.bytes);
	assert_true(n_ask <= sizeof(ask) / sizeof(ask[0]));
	for (size_t i = n_ask - 1; i > 0; i--) {
		size_t j = (size_t)tu_rng_below(&rng, i + 1);
		sl_digest t = ask[i];
		ask[i] = ask[j];
		ask[j] = t;
	}

	/* No budget to speak of: all of them. */
	assert_ok(sl_dag_serve_ids(a, "d", (const uint8_t(*)[SL_DIGEST_LEN])ask, n_ask, SIZE_MAX,
	                           &sink_full, &out));
	sets = check_handed(&full, &log);
	n_entries = sink_entries(&full);
	assert_int_equal(n_entries, n_want);
	assert_int_equal(out.entries, n_want);
	assert_int_equal(out.missing, 4);
	assert_int_equal(out.more, 0);
	assert_int_equal(full.missing.n, 4); /* each once */
	expect_same_ids(&full.missing, &want_missing, "missing");
	{
		/* The entries asked for, in the log's order. */
		size_t k = 0;
		for (size_t i = 0; i < full.n; i++) {
			int asked = 0;
			if (full.v[i].kind != 'e')
				continue;
			while (k < log.n && !sl_digest_eq(&log.v[k].id, &full.v[i].id))
				k++;
			assert_true(k < log.n);
			for (size_t j = 0; j < n_ask && !asked; j++)
				asked = sl_digest_eq(&ask[j], &full.v[i].id);
			assert_true(asked);
		}
	}
	/* Values were shared among the entries, and went once. */
	assert_true(sets > full.n - n_entries);

	/* Budgets: cut after the entry whose bytes reach it, never before
	 * the first; the same handing as far as it goes. */
	assert_true(n_entries >= 3);
	{
		size_t budgets[8];
		budgets[0] = 0;
		budgets[1] = 1;
		budgets[2] = bytes_through(&full, 1);
		budgets[3] = bytes_through(&full, 1) + 1;
		budgets[4] = bytes_through(&full, 2) - 1;
		budgets[5] = bytes_through(&full, 3);
		budgets[6] = full.bytes / 2;
		budgets[7] = full.bytes;
		for (size_t i = 0; i < 8; i++) {
			size_t k = 1;
			while (k < n_entries && bytes_through(&full, k) < budgets[i])
				k++;
			sink_reset(&l);
			assert_ok(sl_dag_serve_ids(a, "d", (const uint8_t(*)[SL_DIGEST_LEN])ask,
			                           n_ask, budgets[i], &sink, &out));
			assert_int_equal(out.entries, k);
			assert_int_equal(sink_entries(&l), k);
			assert_int_equal(out.more, k < n_entries);
			assert_int_equal(out.missing, 4);
			assert_int_equal(l.missing.n, 4);
			assert_int_equal(l.bytes, bytes_through(&full, k));
			for (size_t j = 0; j < l.n; j++) {
				assert_int_equal(l.v[j].kind, full.v[j].kind);
				assert_true(sl_digest_eq(&l.v[j].id, &full.v[j].id));
			}
			check_handed(&l, &log);
		}
	}

	/* The rest after a cut page, asked for again: each entry once over
	 * both calls, with the values the second one's entries set. */
	sink_reset(&l);
	assert_ok(sl_dag_serve_ids(a, "d", (const uint8_t(*)[SL_DIGEST_LEN])ask, n_ask,
	                           bytes_through(&full, 2), &sink, &out));
	assert_int_equal(out.entries, 2);
	assert_int_equal(out.more, 1);
	for (size_t i = 0; i < full.n; i++) {
		int served = 0;
		if (full.v[i].kind != 'e')
			continue;
		for (size_t j = 0; j < l.n && !served; j++)
			served = l.v[j].kind == 'e' && sl_digest_eq(&l.v[j].id, &full.v[i].id);
		if (!served)
			ids_push(&rest, full.v[i].id.bytes);
	}
	assert_int_equal(rest.n, n_entries - 2);
	sink_reset(&l);
	assert_ok(sl_dag_serve_ids(a, "d", (const uint8_t(*)[SL_DIGEST_LEN])rest.v, rest.n,
	                           SIZE_MAX, &sink, &out));
	assert_int_equal(out.entries, n_entries - 2);
	assert_int_equal(out.missing, 0);
	assert_int_equal(out.more, 0);
	check_handed(&l, &log);

	/* A sink's error stops the call and is returned. */
	sink_reset(&l);
	l.fail_at = 2;
	assert_int_equal(sl_dag_serve_ids(a, "d", (const uint8_t(*)[SL_DIGEST_LEN])ask, n_ask,
	                                  SIZE_MAX, &sink, &out),
	                 SL_ETIMEOUT);
	assert_int_equal(sink_entries(&l), 1);

	/* Nothing asked; a log namespace; none. */
	sink_reset(&l);
	assert_ok(sl_dag_serve_ids(a, "d", NULL, 0, 0, &sink, &out));
	assert_int_equal(out.entries, 0);
	assert_int_equal(out.missing, 0);
	assert_int_equal(out.more, 0);
	assert_int_equal(l.n, 0);
	assert_ok(sl_store_ns_create(a, "m", SL_NS_MUTABLE));
	assert_int_equal(
	        sl_dag_serve_ids(a, "m", (const uint8_t(*)[SL_DIGEST_LEN])ask, 1, 0, &sink, &out),
	        SL_EINVAL);
	assert_int_equal(sl_dag_serve_ids(a, "nope", (const uint8_t(*)[SL_DIGEST_LEN])ask, 1, 0,
	                                  &sink, &out),
	                 SL_ENOTFOUND);
	assert_int_equal(l.n, 0);

	ids_free(&want_missing);
	ids_free(&rest);
	sink_free(&l);
	sink_free(&full);
	elist_free(&log);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* ------------------------------------------------- serving after a cursor */

static void test_serve_after(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir(), *dir_c = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	sl_store *c = open_store(dir_c, SL_STORE_CREATE);
	key admin = new_key(), writer = new_key();
	sl_buf root = SL_BUF_INIT(SL_DAG_ENTRY_MAX), dump = SL_BUF_INIT(1 << 20);
	sl_dag_entry re;
	sl_digest ns_id, cursor_id;
	uint64_t cursor_h;
	sl_dag_served out;
	sl_dag_insert_report rep;
	sl_dag_info info;
	sink_log l = {0};
	sl_dag_sink sink = sink_of(&l);
	elist log;
	size_t got = 0, pages = 0, budget = 600;
	(void)state;

	ns_id = setup_pair(a, b, "d", &admin, &writer);
	grow(a, b, "d", &admin, &writer, 15);
	send_all(b, a, "d");
	for (int i = 0; i < 3; i++)
		random_entry(b, "d", &writer); /* a branch a has not seen yet */
	for (int i = 0; i < 3; i++)
		random_entry(a, "d", &admin);
	send_all(b, a, "d");
	log_of(a, "d", &log);
	assert_true(log.n > 10);

	/* The root entry: the namespace's, and a store joins from it. */
	assert_ok(sl_dag_root_entry(a, "d", &root));
	assert_ok(sl_dag_entry_decode(&re, root.data, root.len));
	assert_true(sl_digest_eq(&re.id, &ns_id));
	assert_int_equal(re.n_parents, 0);
	assert_int_equal(re.height, 0);
	sl_dag_entry_free(&re);
	assert_ok(sl_dag_create_from_root(c, "d", root.data, root.len));

	/* Pages from the root on. */
	cursor_h = 0;
	cursor_id = ns_id;
	for (;;) {
		size_t k;
		sink_reset(&l);
		assert_ok(sl_dag_serve_after(a, "d", cursor_h, &cursor_id, budget, &sink, &out));
		check_handed(&l, &log);
		k = sink_entries(&l);
		assert_int_equal(out.entries, k);
		assert_int_equal(out.missing, 0);
		pages++;
		if (k == 0) {
			assert_int_equal(out.more, 0);
			break;
		}
		/* Cut after the entry that reached the budget, not earlier. */
		assert_true(k == 1 || bytes_through(&l, k - 1) < budget);
		if (out.more)
			assert_true(l.bytes >= budget);
		/* The log's next entries, after the cursor. */
		for (size_t i = 0, e = 0; i < l.n; i++) {
			if (l.v[i].kind != 'e')
				continue;
			assert_true(1 + got + e < log.n);
			assert_true(sl_digest_eq(&l.v[i].id, &log.v[1 + got + e].id));
			assert_true(later(l.v[i].height, &l.v[i].id, cursor_h, &cursor_id));
			e++;
		}
		insert_handed(c, "d", &l, &rep);
		assert_int_equal(rep.stored, k);
		assert_int_equal(rep.refused, 0);
		got += k;
		for (size_t i = l.n; i-- > 0;)
			if (l.v[i].kind == 'e') {
				cursor_h = l.v[i].height;
				cursor_id = l.v[i].id;
				break;
			}
		if (!out.more)
			break;
	}
	assert_int_equal(got, log.n - 1);
	assert_true(pages >= 3);
	/* After the last entry: nothing, and no more. */
	sink_reset(&l);
	assert_ok(sl_dag_serve_after(a, "d", cursor_h, &cursor_id, budget, &sink, &out));
	assert_int_equal(out.entries, 0);
	assert_int_equal(out.more, 0);
	assert_int_equal(l.n, 0);

	/* The store rebuilt from the pages is the same store. */
	assert_ok(sl_dag_info_get(a, "d", &info));
	expect_same_stores(a, c, "d", dump_state(a, "d", &dump), info.n_tips);

	/* All in one page; and a cursor between entries: all of height h+1
	 * and up after (h, ff..ff). */
	sink_reset(&l);
	assert_ok(sl_dag_serve_after(a, "d", 0, &ns_id, SIZE_MAX, &sink, &out));
	assert_int_equal(out.entries, log.n - 1);
	assert_int_equal(out.more, 0);
	check_handed(&l, &log);
	memset(cursor_id.bytes, 0xff, SL_DIGEST_LEN);
	cursor_h = log.v[log.n / 2].height;
	sink_reset(&l);
	assert_ok(sl_dag_serve_after(a, "d", cursor_h, &cursor_id, SIZE_MAX, &sink, &out));
	{
		size_t want = 0;
		for (size_t i = 0; i < log.n; i++)
			want += log.v[i].height > cursor_h;
		assert_true(want > 0);
		assert_int_equal(out.entries, want);
		check_handed(&l, &log);
		for (size_t i = 0; i < l.n; i++)
			assert_true(l.v[i].kind != 'e' || l.v[i].height > cursor_h);
	}
	/* Budget 0 still hands one entry. */
	sink_reset(&l);
	assert_ok(sl_dag_serve_after(a, "d", 0, &ns_id, 0, &sink, &out));
	assert_int_equal(out.entries, 1);
	assert_int_equal(out.more, 1);
	assert_true(sl_digest_eq(&l.v[l.n - 1].id, &log.v[1].id));

	sink_free(&l);
	elist_free(&log);
	sl_buf_free(&root);
	sl_buf_free(&dump);
	sl_store_free(a);
	sl_store_free(b);
	sl_store_free(c);
	tu_rmtree(dir_a);
	tu_rmtree(dir_b);
	tu_rmtree(dir_c);
	free(dir_a);
	free(dir_b);
	free(dir_c);
	values_clear();
}

/* ------------------------------------------------- find, tips and root */

/* An entry by k on parent `on` at height h, deleting key `k_name`. */
static void forge_on(sl_buf *out, const key *k, const sl_digest *ns, const sl_digest *on,
                     uint64_t h, const char *k_name)
{
	sl_dag_write w = del_w(k_name);
	sl_dag_entry e;
	memset(&e, 0, sizeof(e));
	e.ns = *ns;
	e.height = h;
	e.n_parents = 1;
	e.parents[0] = *on;
	memcpy(e.author, k->pk, SL_ED25519_PK_LEN);
	e.time_ms = 7;
	e.writes = &w;
	e.n_writes = 1;
	sl_buf_reset(out);
	assert_ok(sl_dag_entry_sign(&e, k->sk, out));
}

static void test_find_tips_root(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	char name[SL_NS_NAME_MAX + 1];
	sl_digest ns_id, e_id, unknown, ids[64], model[64], one_of;
	sl_buf root = SL_BUF_INIT(SL_DAG_ENTRY_MAX), root_c = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_buf enc[21];
	sl_bytes offered[21];
	sl_dag_insert_report rep;
	sl_dag_entry re;
	sl_dag_info info;
	sl_ns_info mi;
	size_t n, n_model;
	uint64_t entries;
	elist log;
	(void)state;

	/* Found by id; the first by name when two hold it; not a log one. */
	assert_ok(sl_dag_create(s, "d", admin.sk, &ns_id));
	assert_ok(sl_dag_create(s, "e", admin.sk, &e_id));
	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	assert_ok(sl_dag_find(s, &ns_id, name));
	assert_string_equal(name, "d");
	assert_ok(sl_dag_find(s, &e_id, name));
	assert_string_equal(name, "e");
	tu_rng_fill(&rng, unknown.bytes, SL_DIGEST_LEN);
	assert_int_equal(sl_dag_find(s, &unknown, name), SL_ENOTFOUND);
	assert_ok(sl_store_ns_info(s, "m", &mi));
	assert_int_equal(sl_dag_find(s, &mi.target.root, name), SL_ENOTFOUND);

	/* The root entry: the namespace id, no parent, the admin's. */
	assert_ok(sl_dag_root_entry(s, "d", &root));
	assert_ok(sl_dag_entry_decode(&re, root.data, root.len));
	assert_true(sl_digest_eq(&re.id, &ns_id));
	sl_sha256(&unknown, root.data, root.len);
	assert_true(sl_digest_eq(&unknown, &ns_id));
	assert_int_equal(re.n_parents, 0);
	assert_int_equal(re.height, 0);
	assert_memory_equal(re.author, admin.pk, SL_ED25519_PK_LEN);
	sl_dag_entry_free(&re);
	assert_int_equal(sl_dag_root_entry(s, "m", &root_c), SL_EINVAL);
	assert_int_equal(sl_dag_root_entry(s, "nope", &root_c), SL_ENOTFOUND);

	/* Joined again here under a name before "d": found first. */
	assert_ok(sl_dag_create_from_root(s, "c", root.data, root.len));
	assert_ok(sl_dag_find(s, &ns_id, name));
	assert_string_equal(name, "c");
	assert_ok(sl_dag_root_entry(s, "c", &root_c));
	assert_int_equal(root_c.len, root.len);
	assert_memory_equal(root_c.data, root.data, root.len);

	/* 20 entries on the root, then one on the first of them: 20 tips,
	 * the last of height 2. */
	for (int i = 0; i < 20; i++) {
		char k_name[16];
		snprintf(k_name, sizeof(k_name), "t%d", i);
		enc[i] = (sl_buf)SL_BUF_INIT(SL_DAG_ENTRY_MAX);
		forge_on(&enc[i], &admin, &ns_id, &ns_id, 1, k_name);
		offered[i].data = enc[i].data;
		offered[i].len = enc[i].len;
	}
	sl_sha256(&one_of, enc[0].data, enc[0].len);
	enc[20] = (sl_buf)SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	forge_on(&enc[20], &admin, &ns_id, &one_of, 2, "top");
	offered[20].data = enc[20].data;
	offered[20].len = enc[20].len;
	assert_ok(sl_dag_insert(s, "d", offered, 21, NULL, 0, &rep));
	assert_int_equal(rep.stored, 21);
	assert_int_equal(rep.refused, 0);
	log_of(s, "d", &log);
	n_model = model_tips(&log, model, 64);
	assert_int_equal(n_model, 20);
	assert_int_equal(log.n, 22);

	/* Fewer slots than tips: the first ones, and how many there are. */
	memset(ids, 0, sizeof(ids));
	assert_ok(sl_dag_tip_ids(s, "d", ids, 3, &n, &entries));
	assert_int_equal(n, 20);
	assert_int_equal(entries, 22);
	assert_memory_equal(ids, model, 3 * sizeof(*ids));
	for (size_t i = 3; i < 64; i++)
		for (size_t j = 0; j < SL_DIGEST_LEN; j++)
			assert_int_equal(ids[i].bytes[j], 0); /* nothing past the cap */
	assert_ok(sl_dag_tip_ids(s, "d", NULL, 0, &n, &entries));
	assert_int_equal(n, 20);
	assert_ok(sl_dag_tip_ids(s, "d", ids, 64, &n, &entries));
	assert_int_equal(n, 20);
	assert_memory_equal(ids, model, 20 * sizeof(*ids));
	for (size_t i = 1; i < 20; i++) {
		const item *x = find_item(&log, &ids[i - 1]), *y = find_item(&log, &ids[i]);
		assert_true(later(y->height, &y->id, x->height, &x->id));
	}
	assert_int_equal(find_item(&log, &ids[19])->height, 2);
	assert_ok(sl_dag_info_get(s, "d", &info));
	assert_int_equal(info.n_tips, 20);
	assert_memory_equal(info.tips, ids, SL_DAG_MAX_PARENTS * sizeof(*ids));
	/* Another namespace's tips are its own. */
	assert_ok(sl_dag_tip_ids(s, "e", ids, 64, &n, &entries));
	assert_int_equal(n, 1);
	assert_int_equal(entries, 1);
	assert_true(sl_digest_eq(&ids[0], &e_id));
	assert_int_equal(sl_dag_tip_ids(s, "m", ids, 64, &n, &entries), SL_EINVAL);
	assert_int_equal(sl_dag_tip_ids(s, "nope", ids, 64, &n, &entries), SL_ENOTFOUND);

	for (int i = 0; i < 21; i++)
		sl_buf_free(&enc[i]);
	elist_free(&log);
	sl_buf_free(&root);
	sl_buf_free(&root_c);
	drop_store(s, dir);
	values_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_items_refresh),  cmocka_unit_test(test_items_reconcile),
	        cmocka_unit_test(test_serve_ids),      cmocka_unit_test(test_serve_after),
	        cmocka_unit_test(test_find_tips_root),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("dag_serve_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
