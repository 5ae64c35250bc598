/*
 * The state items of a namespace (src/store/items.c): the vectors of
 * docs/protocol.md; a seeded model test in which random puts, updates
 * and deletes (with state flushes every few dozen operations, so items
 * come from the stored index and from the view's changes at once) must
 * leave every read of the item set (count, item at index, lower bound,
 * range sums, walks, finding an id) equal to a model computed from
 * scratch; another handle's commits seen at once; reconciliation of two
 * stores' namespaces finding exactly their difference; the upgrade of a
 * format 1 store; and verify catching a damaged index.
 *
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/store.h"
#include "testutil.h"

static tu_rng rng;

static sl_store *open_store(const char *dir, uint64_t flush_ops, unsigned flags)
{
	sl_store_options o;
	sl_store *s;
	sl_store_options_init(&o);
	o.flags = flags;
	o.durable = 0;
	o.state_flush_ops = flush_ops;
	assert_ok(sl_store_open(&s, dir, &o));
	return s;
}

static void put1(sl_store *s, const char *ns, const char *key, const void *value, size_t len)
{
	sl_batch *b;
	assert_ok(sl_batch_new(&b, s, ns));
	assert_ok(sl_batch_put(b, key, strlen(key), value, len));
	assert_ok(sl_batch_commit(b, NULL));
	sl_batch_free(b);
}

/* ---------------------------------------------------------------- vectors */

static void hex_to(uint8_t *out, const char *hex)
{
	size_t n;
	assert_ok(sl_hex_decode(out, 64, &n, hex, strlen(hex)));
}

static void test_vectors(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, 0, SL_STORE_CREATE);
	uint8_t id[32], want_ab[32], want_k[32], fp[16], want_fp[16];
	sl_digest d;
	sl_items *it;
	sl_item_set set;
	sl_item_sum sum;
	sl_buf msg = SL_BUF_INIT(1 << 20);
	(void)state;

	hex_to(want_ab, "e933f0de89a75bb2058379eb361a83827c59c846797123e01bb45d4ff62b96cb");
	hex_to(want_k, "e2a65e3f490d12feaf6ea62a88537ac28767f76233a8c7aa94a5275ea7a900ab");
	hex_to(want_fp, "12a917c620a7f93b831c366f1ddb3dae");
	sl_sha256(&d, "hello", 5);
	sl_state_item_id(id, "a/b", 3, &d);
	assert_memory_equal(id, want_ab, 32);
	sl_sha256(&d, "", 0);
	sl_state_item_id(id, "k", 1, &d);
	assert_memory_equal(id, want_k, 32);

	assert_ok(sl_store_ns_create(s, "v", SL_NS_MUTABLE));
	put1(s, "v", "a/b", "hello", 5);
	put1(s, "v", "k", "", 0);
	assert_ok(sl_store_items_open(s, "v", &it));
	set = sl_items_set(it);
	assert_ok(set.ops->sum(set.ctx, 0, 2, &sum));
	sl_item_sum_fingerprint(fp, &sum, 2);
	assert_memory_equal(fp, want_fp, 16);
	assert_ok(sl_reconcile_initiate(&set, 0, &msg));
	assert_int_equal(msg.len, 5 + 64);
	assert_memory_equal(msg.data, "\x61\x00\x00\x02\x02", 5);
	assert_memory_equal(msg.data + 5, want_k, 32);
	assert_memory_equal(msg.data + 37, want_ab, 32);
	sl_items_close(it);

	sl_buf_free(&msg);
	sl_store_free(s);
	tu_rmtree(dir);
	free(dir);
}

/* ------------------------------------------------------------------ model */

#define MODEL_KEYS 3000

typedef struct model {
	int live[MODEL_KEYS];
	uint32_t value[MODEL_KEYS]; /* the value is this number as 4 bytes, or longer */
	uint8_t len[MODEL_KEYS];
} model;

static void key_name(char *out, size_t cap, int k)
{
	snprintf(out, cap, "dir%d/key-%05d", k % 7, k);
}

static size_t make_value(uint8_t *out, uint32_t v, uint8_t len)
{
	/* Short values sit inline in the log, long ones in blobs. */
	for (uint8_t i = 0; i < len; i++)
		out[i] = (uint8_t)(v >> (8 * (i % 4))) ^ i;
	return len;
}

static int cmp_item(const void *a, const void *b)
{
	return sl_item_cmp(a, b);
}

/* The model's items, sorted. */
static size_t model_items(const model *m, sl_item *out)
{
	size_t n = 0;
	for (int k = 0; k < MODEL_KEYS; k++) {
		char key[64];
		uint8_t value[200];
		size_t len;
		sl_digest d;
		if (!m->live[k])
			continue;
		key_name(key, sizeof(key), k);
		len = make_value(value, m->value[k], m->len[k]);
		sl_sha256(&d, value, len);
		out[n].ts = 0;
		sl_state_item_id(out[n].id, key, strlen(key), &d);
		n++;
	}
	qsort(out, n, sizeof(*out), cmp_item);
	return n;
}

typedef struct walk_check {
	const sl_item *want;
	uint64_t next;
	uint64_t stop_after;
} walk_check;

static int check_walk(void *ctx, uint64_t index, const sl_item *item)
{
	walk_check *w = ctx;
	assert_int_equal(index, w->next);
	assert_int_equal(sl_item_cmp(item, &w->want[index]), 0);
	w->next++;
	return w->next == w->stop_after ? 1 : 0;
}

/* Every read of the store's item set against the sorted model items. */
static void compare_items(sl_store *s, const char *ns, const model *m, sl_item *want)
{
	size_t n = model_items(m, want);
	sl_items *it;
	sl_item_set set;
	uint64_t count, at;
	sl_item got;

	assert_ok(sl_store_items_open(s, ns, &it));
	set = sl_items_set(it);
	assert_ok(set.ops->count(set.ctx, &count));
	assert_int_equal(count, n);
	assert_int_equal(sl_items_ns(it)->keys, n);
	for (size_t i = 0; i < n; i += 1 + tu_rng_below(&rng, 7)) {
		assert_ok(set.ops->get(set.ctx, i, &got));
		assert_int_equal(sl_item_cmp(&got, &want[i]), 0);
	}
	assert_int_equal(set.ops->get(set.ctx, n, &got), SL_EINVAL);
	for (int r = 0; r < 40; r++) {
		sl_item bound;
		size_t expect = 0;
		uint64_t begin = n ? tu_rng_below(&rng, n + 1) : 0;
		memset(&bound, 0, sizeof(bound));
		if (n && r % 2)
			bound = want[tu_rng_below(&rng, n)]; /* exactly an item */
		else
			tu_rng_fill(&rng, bound.id, (size_t)(1 + tu_rng_below(&rng, 32)));
		while (expect < n && sl_item_cmp(&want[expect], &bound) < 0)
			expect++;
		if (expect < begin)
			expect = begin;
		assert_ok(set.ops->lower_bound(set.ctx, begin, &bound, &at));
		assert_int_equal(at, expect);
	}
	/* A bound past timestamp 0 is past every state item. */
	{
		sl_item later;
		memset(&later, 0, sizeof(later));
		later.ts = 1;
		assert_ok(set.ops->lower_bound(set.ctx, 0, &later, &at));
		assert_int_equal(at, n);
	}
	for (int r = 0; r < 60; r++) {
		uint64_t a = n ? tu_rng_below(&rng, n + 1) : 0,
		         b = n ? tu_rng_below(&rng, n + 1) : 0;
		sl_item_sum got_sum, want_sum;
		if (a > b) {
			uint64_t t = a;
			a = b;
			b = t;
		}
		sl_item_sum_zero(&want_sum);
		for (uint64_t i = a; i < b; i++)
			sl_item_sum_add_id(&want_sum, want[i].id);
		assert_ok(set.ops->sum(set.ctx, a, b, &got_sum));
		assert_memory_equal(&got_sum, &want_sum, sizeof(want_sum));
	}
	if (n) {
		uint64_t a = tu_rng_below(&rng, n);
		walk_check w = {want, a, a + 1 + tu_rng_below(&rng, n - a)};
		assert_ok(set.ops->each(set.ctx, a, n, check_walk, &w));
		assert_int_equal(w.next, w.stop_after);
	}
	/* Finding ids: live ones give their key and value, dead ones none. */
	for (int k = 0; k < MODEL_KEYS; k += 1 + (int)tu_rng_below(&rng, 40)) {
		char key[64];
		uint8_t value[200], id[32];
		size_t len;
		sl_digest d;
		sl_key_entry e;
		sl_buf v = SL_BUF_INIT(1 << 10);
		key_name(key, sizeof(key), k);
		len = make_value(value, m->value[k], m->len[k]);
		sl_sha256(&d, value, len);
		sl_state_item_id(id, key, strlen(key), &d);
		if (m->live[k]) {
			/* Ids arrive at any offset of a request body: ask with one
			 * that is not aligned (UBSan checks how it is read). */
			uint8_t odd[33];
			memcpy(odd + 1, id, 32);
			assert_ok(sl_items_find(it, odd + 1, &e));
			assert_int_equal(e.key_len, strlen(key));
			assert_memory_equal(e.key, key, e.key_len);
			assert_ok(sl_items_value(it, &e, &v));
			assert_int_equal(v.len, len);
			assert_memory_equal(v.data, value, len);
		} else {
			assert_int_equal(sl_items_find(it, id, &e), SL_ENOTFOUND);
		}
		sl_buf_free(&v);
	}
	sl_items_close(it);
}

static void run_model(sl_ns_kind kind)
{
	char *dir = tu_tempdir();
	uint64_t flush_ops = 20 + tu_rng_below(&rng, 200);
	sl_store *s = open_store(dir, flush_ops, SL_STORE_CREATE);
	sl_store *reader = open_store(dir, flush_ops, 0);
	model *m = calloc(1, sizeof(*m));
	sl_item *want = calloc(MODEL_KEYS, sizeof(*want));
	sl_verify_report rep;

	assert_ok(sl_store_ns_create(s, "m", kind));
	for (int round = 0; round < 40; round++) {
		sl_batch *b;
		int n_entries = 1 + (int)tu_rng_below(&rng, 120);
		assert_ok(sl_batch_new(&b, s, "m"));
		for (int i = 0; i < n_entries; i++) {
			int k = (int)tu_rng_below(&rng, MODEL_KEYS);
			char key[64];
			uint8_t value[200];
			key_name(key, sizeof(key), k);
			if (kind == SL_NS_MUTABLE && m->live[k] && tu_rng_below(&rng, 3) == 0) {
				assert_ok(sl_batch_del(b, key, strlen(key)));
				m->live[k] = 0;
			} else if (kind == SL_NS_MUTABLE || !m->live[k]) {
				uint32_t v = (uint32_t)tu_rng_next(&rng);
				uint8_t len = (uint8_t)(tu_rng_below(&rng, 4)
				                                ? 4
				                                : 65 + tu_rng_below(&rng, 100));
				assert_ok(sl_batch_put(b, key, strlen(key), value,
				                       make_value(value, v, len)));
				m->live[k] = 1;
				m->value[k] = v;
				m->len[k] = len;
			}
		}
		assert_ok(sl_batch_commit(b, NULL));
		sl_batch_free(b);
		/* Both the writer's handle and another one, whose view has to
		 * catch up with commits it did not make. */
		compare_items(round % 2 ? s : reader, "m", m, want);
	}
	assert_ok(sl_store_verify(reader, "m", &rep));
	assert_true(rep.items_checked > 0);
	assert_ok(sl_store_flush(s, "m"));
	compare_items(reader, "m", m, want);
	assert_ok(sl_store_verify(s, "m", &rep));

	free(m);
	free(want);
	sl_store_free(reader);
	sl_store_free(s);
	tu_rmtree(dir);
	free(dir);
}

static void test_model_mutable(void **state)
{
	(void)state;
	run_model(SL_NS_MUTABLE);
}

static void test_model_immutable(void **state)
{
	(void)state;
	run_model(SL_NS_IMMUTABLE);
}

/* ---------------------------------------------------- two stores reconcile */

typedef struct found {
	size_t have, need;
	uint8_t have_ids[64][32], need_ids[64][32];
} found;

static int on_have(void *ctx, const uint8_t id[32])
{
	found *f = ctx;
	assert_true(f->have < 64);
	memcpy(f->have_ids[f->have++], id, 32);
	return 0;
}

static int on_need(void *ctx, const uint8_t id[32])
{
	found *f = ctx;
	assert_true(f->need < 64);
	memcpy(f->need_ids[f->need++], id, 32);
	return 0;
}

static void test_two_stores(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, 500, SL_STORE_CREATE);
	sl_store *b = open_store(dir_b, 700, SL_STORE_CREATE);
	sl_batch *ba, *bb;
	sl_items *ia, *ib;
	sl_item_set sa, sb;
	sl_buf msg = SL_BUF_INIT(1 << 22), reply = SL_BUF_INIT(1 << 22);
	found f;
	sl_reconcile_diff diff = {on_have, on_need, &f};
	int done = 0, rounds = 0;
	uint8_t only_a[32], only_b[32];
	sl_digest d;
	(void)state;

	memset(&f, 0, sizeof(f));
	assert_ok(sl_store_ns_create(a, "x", SL_NS_MUTABLE));
	assert_ok(sl_store_ns_create(b, "x", SL_NS_MUTABLE));
	assert_ok(sl_batch_new(&ba, a, "x"));
	assert_ok(sl_batch_new(&bb, b, "x"));
	for (int i = 0; i < 5000; i++) {
		char key[32], value[16];
		snprintf(key, sizeof(key), "k/%d", i);
		snprintf(value, sizeof(value), "v%d", i);
		if (i != 17)
			assert_ok(sl_batch_put(ba, key, strlen(key), value, strlen(value)));
		if (i != 4001)
			assert_ok(sl_batch_put(bb, key, strlen(key), value, strlen(value)));
	}
	assert_ok(sl_batch_commit(ba, NULL));
	assert_ok(sl_batch_commit(bb, NULL));
	sl_batch_free(ba);
	sl_batch_free(bb);
	sl_sha256(&d, "v4001", 5);
	sl_state_item_id(only_a, "k/4001", 6, &d);
	sl_sha256(&d, "v17", 3);
	sl_state_item_id(only_b, "k/17", 4, &d);

	assert_ok(sl_store_items_open(a, "x", &ia));
	assert_ok(sl_store_items_open(b, "x", &ib));
	sa = sl_items_set(ia);
	sb = sl_items_set(ib);
	assert_ok(sl_reconcile_initiate(&sa, 0, &msg));
	while (!done) {
		assert_true(++rounds < 10);
		sl_buf_reset(&reply);
		assert_ok(sl_reconcile_respond(&sb, 0, msg.data, msg.len, &reply));
		sl_buf_reset(&msg);
		assert_ok(sl_reconcile_next(&sa, 0, reply.data, reply.len, &diff, &msg, &done));
	}
	assert_int_equal(f.have, 1);
	assert_int_equal(f.need, 1);
	assert_memory_equal(f.have_ids[0], only_a, 32);
	assert_memory_equal(f.need_ids[0], only_b, 32);
	assert_true(rounds <= 3);
	sl_items_close(ia);
	sl_items_close(ib);

	sl_buf_free(&msg);
	sl_buf_free(&reply);
	sl_store_free(a);
	sl_store_free(b);
	tu_rmtree(dir_a);
	tu_rmtree(dir_b);
	free(dir_a);
	free(dir_b);
}

/* ------------------------------------------------------ format 1 upgrade */

static void test_upgrade_from_format_1(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, 10, SL_STORE_CREATE);
	model *m = calloc(1, sizeof(*m));
	sl_item *want = calloc(MODEL_KEYS, sizeof(*want));
	sl_items *it;
	sl_buf v = SL_BUF_INIT(1 << 10);
	sl_verify_report rep;
	(void)state;

	assert_ok(sl_store_ns_create(s, "old", SL_NS_MUTABLE));
	for (int k = 0; k < 50; k++) {
		char key[64];
		uint8_t value[200];
		key_name(key, sizeof(key), k);
		m->live[k] = 1;
		m->value[k] = (uint32_t)k * 7;
		m->len[k] = 4;
		put1(s, "old", key, value, make_value(value, m->value[k], 4));
	}
	sl_store_free(s);
	/* What an older sluice wrote: no item or dag tables, no index of values,
	 * format 1. */
	assert_true(
	        tu_sql(dir,
	               "DROP TABLE items; DROP TABLE item_sums; DROP TABLE dag_entries; DROP TABLE "
	               "dag_settings; DROP TABLE dag_state; DROP TABLE dag_tips; DROP TABLE "
	               "dag_peers; "
	               "DROP TABLE dag_requests; DROP TABLE "
	               "request_nonces; DROP TABLE dag_values; DROP INDEX ops_value; PRAGMA "
	               "user_version = 1;") >= 0);

	/* Read-only: everything but items works, and items say how to
	 * upgrade. */
	s = open_store(dir, 10, SL_STORE_READONLY);
	assert_ok(sl_store_get(s, "old", "dir0/key-00000", 14, &v, NULL));
	assert_int_equal(sl_store_items_open(s, "old", &it), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "format 1"));
	assert_ok(sl_store_verify(s, "old", &rep));
	assert_int_equal(rep.items_checked, 0);
	sl_store_free(s);

	/* Opened for writing, it is upgraded in place. */
	s = open_store(dir, 10, 0);
	compare_items(s, "old", m, want);
	assert_ok(sl_store_verify(s, "old", &rep));
	assert_true(rep.items_checked > 0);
	sl_store_free(s);

	sl_buf_free(&v);
	free(m);
	free(want);
	tu_rmtree(dir);
	free(dir);
}

/* ---------------------------------------------------- damage is detected */

/* Apply damage to a copy of the good store file, then verify. */
static void expect_verify_fails(const char *dir, const char *damage)
{
	char cmd[8600];
	sl_store *s;
	sl_verify_report rep;
	snprintf(cmd, sizeof(cmd), "cp '%s/good.db' '%s/sluice.db'", dir, dir);
	assert_int_equal(system(cmd), 0);
	assert_true(tu_sql(dir, damage) >= 0);
	s = open_store(dir, 10, 0);
	if (sl_store_verify(s, "d", &rep) != SL_ECORRUPT)
		fail_msg("verify did not notice: %s", damage);
	sl_store_free(s);
}

static void test_verify_catches_damage(void **state)
{
	char *dir = tu_tempdir(), cmd[8600];
	sl_store *s = open_store(dir, 5, SL_STORE_CREATE);
	sl_verify_report rep;
	(void)state;

	assert_ok(sl_store_ns_create(s, "d", SL_NS_MUTABLE));
	for (int k = 0; k < 30; k++) {
		char key[64];
		key_name(key, sizeof(key), k);
		put1(s, "d", key, "x", 1);
	}
	assert_ok(sl_store_flush(s, "d"));
	assert_ok(sl_store_verify(s, "d", &rep));
	assert_int_equal(rep.items_checked, 30);
	sl_store_free(s); /* the last connection: the WAL is folded in */
	snprintf(cmd, sizeof(cmd), "cp '%s/sluice.db' '%s/good.db'", dir, dir);
	assert_int_equal(system(cmd), 0);

	expect_verify_fails(dir, "UPDATE items SET id = zeroblob(32) WHERE id = "
	                         "(SELECT id FROM items LIMIT 1)");
	expect_verify_fails(dir, "DELETE FROM items WHERE id = (SELECT id FROM items LIMIT 1)");
	expect_verify_fails(dir, "INSERT INTO items VALUES (1, zeroblob(32), 'nope')");
	expect_verify_fails(dir, "UPDATE items SET key = 'dir0/other' WHERE id = "
	                         "(SELECT id FROM items LIMIT 1)");
	expect_verify_fails(dir, "UPDATE item_sums SET sums = zeroblob(10240)");
	expect_verify_fails(dir, "DELETE FROM item_sums");
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vectors),
	        cmocka_unit_test(test_model_mutable),
	        cmocka_unit_test(test_model_immutable),
	        cmocka_unit_test(test_two_stores),
	        cmocka_unit_test(test_upgrade_from_format_1),
	        cmocka_unit_test(test_verify_catches_damage),
	};
	rng = tu_rng_seeded("items_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
