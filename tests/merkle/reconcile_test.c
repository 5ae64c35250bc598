/*
 * Tests for range-based set reconciliation (src/merkle/items.c and
 * reconcile.c): 256-bit sums, fingerprint vectors, message vectors, the
 * property that reconciling any two sets reports exactly their
 * difference (random sizes up to 200,000, up to 5,000 differences,
 * clustered and scattered, with and without frame limits, both ways
 * round), and malformed messages refused with nothing reported or
 * written. Byte-for-byte agreement with an independent implementation
 * is checked in tests/cli/reconcile_interop.sh (nostr-tools).
 *
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/reconcile.h"
#include "testutil.h"

static tu_rng rng;

/* ------------------------------------------------------------- id lists */

typedef struct id_list {
	uint8_t (*ids)[SL_ITEM_ID_LEN];
	size_t n, cap;
} id_list;

static void ids_push(id_list *l, const uint8_t id[SL_ITEM_ID_LEN])
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->ids = realloc(l->ids, l->cap * SL_ITEM_ID_LEN);
		assert_non_null(l->ids);
	}
	memcpy(l->ids[l->n++], id, SL_ITEM_ID_LEN);
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, SL_ITEM_ID_LEN);
}

static void ids_sort(id_list *l)
{
	if (l->n)
		qsort(l->ids, l->n, SL_ITEM_ID_LEN, cmp_id);
}

static void ids_free(id_list *l)
{
	free(l->ids);
	memset(l, 0, sizeof(*l));
}

static int push_have(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	ids_push(&((id_list *)ctx)[0], id);
	return 0;
}

static int push_need(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	ids_push(&((id_list *)ctx)[1], id);
	return 0;
}

/* ----------------------------------------------------------------- sums */

static void test_sum_carries(void **state)
{
	uint8_t ones[32], one[32] = {1}, out[32], zero[32] = {0};
	sl_item_sum s;
	(void)state;

	memset(ones, 0xff, sizeof(ones));
	sl_item_sum_zero(&s);
	sl_item_sum_add_id(&s, ones);
	sl_item_sum_add_id(&s, one);
	sl_item_sum_to_bytes(out, &s);
	assert_memory_equal(out, zero, 32); /* 2^256 - 1 + 1 wraps to 0 */

	sl_item_sum_sub_id(&s, one);
	sl_item_sum_to_bytes(out, &s);
	assert_memory_equal(out, ones, 32); /* 0 - 1 wraps to 2^256 - 1 */

	/* A carry through the middle words: 0x00..00ff..ff (16 bytes of ff)
	 * + 1 = 1 at byte 16, little-endian. */
	uint8_t half[32] = {0}, want[32] = {0};
	memset(half, 0xff, 16);
	want[16] = 1;
	sl_item_sum_zero(&s);
	sl_item_sum_add_id(&s, half);
	sl_item_sum_add_id(&s, one);
	sl_item_sum_to_bytes(out, &s);
	assert_memory_equal(out, want, 32);
}

static void test_sum_random_inverse(void **state)
{
	sl_item_sum s, t;
	uint8_t before[32], after[32], ids[64][32];
	(void)state;

	sl_item_sum_zero(&s);
	for (int i = 0; i < 64; i++) {
		tu_rng_fill(&rng, ids[i], 32);
		sl_item_sum_add_id(&s, ids[i]);
	}
	sl_item_sum_to_bytes(before, &s);
	t = s;
	for (int i = 0; i < 64; i++)
		sl_item_sum_sub_id(&t, ids[i]);
	sl_item_sum_to_bytes(after, &t);
	for (int i = 0; i < 32; i++)
		assert_int_equal(after[i], 0);
	/* Adding sums equals adding ids one by one, in any order. */
	sl_item_sum_zero(&t);
	for (int i = 63; i >= 0; i--) {
		sl_item_sum one;
		sl_item_sum_from_bytes(&one, ids[i]);
		sl_item_sum_add(&t, &one);
	}
	sl_item_sum_to_bytes(after, &t);
	assert_memory_equal(before, after, 32);
}

static void hex_to(uint8_t *out, const char *hex)
{
	size_t n;
	assert_int_equal(sl_hex_decode(out, 64, &n, hex, strlen(hex)), SL_OK);
}

static void test_fingerprint_vectors(void **state)
{
	uint8_t fp[16], want[16], ones[32];
	sl_item_sum s;
	(void)state;

	/* SHA-256(32 zero bytes || 0x00), first 16 bytes. */
	sl_item_sum_zero(&s);
	sl_item_sum_fingerprint(fp, &s, 0);
	hex_to(want, "7f9c9e31ac8256ca2f258583df262dbc");
	assert_memory_equal(fp, want, 16);

	/* The count is a varint, most significant digit first: 300 is
	 * 0x82 0x2c. Sum 2^256 - 1. */
	memset(ones, 0xff, 32);
	sl_item_sum_from_bytes(&s, ones);
	sl_item_sum_fingerprint(fp, &s, 300);
	hex_to(want, "d6baf37f3b6c675cb205043f4aa276d4");
	assert_memory_equal(fp, want, 16);
}

/* ---------------------------------------------------------- vector set */

static sl_item_vec *vec_of(const sl_item *items, size_t n)
{
	sl_item_vec *v;
	assert_int_equal(sl_item_vec_new(&v), SL_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sl_item_vec_add(v, items[i].ts, items[i].id), SL_OK);
	assert_int_equal(sl_item_vec_seal(v), SL_OK);
	return v;
}

static void test_vec_rules(void **state)
{
	sl_item_vec *v;
	uint8_t id[32] = {7};
	(void)state;

	assert_int_equal(sl_item_vec_new(&v), SL_OK);
	assert_int_equal(sl_item_vec_add(v, SL_ITEM_TS_INFINITY, id), SL_EINVAL);
	assert_int_equal(sl_item_vec_add(v, 3, id), SL_OK);
	assert_int_equal(sl_item_vec_add(v, 3, id), SL_OK);
	assert_int_equal(sl_item_vec_seal(v), SL_EINVAL); /* the same item twice */
	sl_item_vec_free(v);
}

/* Items added after a seal are merged in by the next: in rounds of random
 * sizes, the set always reads as one sealed at once, and a duplicate
 * drops only the round that brought it. */
static void test_vec_grows(void **state)
{
	sl_item *all = calloc(3000, sizeof(*all));
	sl_item_vec *grown, *once;
	sl_item_set a, b;
	size_t n = 0;
	(void)state;

	assert_non_null(all);
	assert_int_equal(sl_item_vec_new(&grown), SL_OK);
	for (int round = 0; round < 40; round++) {
		size_t k = (size_t)tu_rng_below(&rng, round % 5 == 0 ? 200 : 20);
		uint64_t count, i;
		for (size_t j = 0; j < k; j++) {
			sl_item *it = &all[n++];
			it->ts = tu_rng_below(&rng, 50); /* many share a timestamp */
			tu_rng_fill(&rng, it->id, SL_ITEM_ID_LEN);
			assert_int_equal(sl_item_vec_add(grown, it->ts, it->id), SL_OK);
		}
		if (k > 0) {
			a = sl_item_vec_set(grown);
			assert_int_equal(a.ops->count(a.ctx, &count), SL_EINVAL); /* not sealed */
		}
		assert_int_equal(sl_item_vec_seal(grown), SL_OK);
		if (round % 7 == 3 && n > 0) { /* an item held already: the round is dropped */
			sl_item dup = all[tu_rng_below(&rng, n)];
			uint8_t fresh[SL_ITEM_ID_LEN];
			tu_rng_fill(&rng, fresh, sizeof(fresh));
			assert_int_equal(sl_item_vec_add(grown, 7, fresh), SL_OK);
			assert_int_equal(sl_item_vec_add(grown, dup.ts, dup.id), SL_OK);
			assert_int_equal(sl_item_vec_seal(grown), SL_EINVAL);
		}
		once = vec_of(all, n);
		a = sl_item_vec_set(grown);
		b = sl_item_vec_set(once);
		assert_int_equal(a.ops->count(a.ctx, &count), SL_OK);
		assert_int_equal(count, n);
		for (i = 0; i < n; i++) {
			sl_item x, y;
			sl_item_sum sx, sy;
			uint64_t end = i + tu_rng_below(&rng, n - i + 1);
			assert_int_equal(a.ops->get(a.ctx, i, &x), SL_OK);
			assert_int_equal(b.ops->get(b.ctx, i, &y), SL_OK);
			assert_int_equal(sl_item_cmp(&x, &y), 0);
			assert_int_equal(a.ops->sum(a.ctx, i, end, &sx), SL_OK);
			assert_int_equal(b.ops->sum(b.ctx, i, end, &sy), SL_OK);
			assert_memory_equal(&sx, &sy, sizeof(sx));
		}
		sl_item_vec_free(once);
	}
	assert_true(n > 300);
	sl_item_vec_free(grown);
	free(all);
}

/* ------------------------------------------------------- message vectors */

static void test_initiate_vectors(void **state)
{
	sl_buf out = SL_BUF_INIT(1 << 20);
	sl_item items[2];
	sl_item_vec *v;
	sl_item_set set;
	uint8_t want[4 + 1 + 64];
	(void)state;

	/* Empty set: one IdList range up to infinity with no id. */
	v = vec_of(NULL, 0);
	set = sl_item_vec_set(v);
	assert_int_equal(sl_reconcile_initiate(&set, 0, &out), SL_OK);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "\x61\x00\x00\x02\x00", 5);
	sl_item_vec_free(v);

	/* Two items: listed, sorted by timestamp then id. */
	memset(items, 0, sizeof(items));
	items[0].ts = 9;
	items[0].id[0] = 1;
	items[1].ts = 5;
	items[1].id[0] = 2;
	v = vec_of(items, 2);
	set = sl_item_vec_set(v);
	sl_buf_reset(&out);
	assert_int_equal(sl_reconcile_initiate(&set, 0, &out), SL_OK);
	memcpy(want, "\x61\x00\x00\x02\x02", 5);
	memcpy(want + 5, items[1].id, 32);
	memcpy(want + 37, items[0].id, 32);
	assert_int_equal(out.len, 69);
	assert_memory_equal(out.data, want, 69);
	sl_item_vec_free(v);

	/* 40 items: 16 fingerprint ranges; the bounds between them are the
	 * shortest that separate neighbours, and the last is infinity. */
	sl_item many[40];
	for (int i = 0; i < 40; i++) {
		many[i].ts = 100 + (uint64_t)(i / 4); /* four per timestamp */
		tu_rng_fill(&rng, many[i].id, 32);
	}
	v = vec_of(many, 40);
	set = sl_item_vec_set(v);
	sl_buf_reset(&out);
	assert_int_equal(sl_reconcile_initiate(&set, 0, &out), SL_OK);
	assert_int_equal(sl_reconcile_check(out.data, out.len), SL_OK);
	assert_int_equal(out.data[out.len - 18], 0x00); /* infinity: timestamp 0 */
	assert_int_equal(out.data[out.len - 17], 0x01); /* mode Fingerprint */
	sl_item_vec_free(v);
	sl_buf_free(&out);
}

/* A responder with the same set skips everything: one byte back. */
static void test_equal_sets_one_round(void **state)
{
	sl_buf msg = SL_BUF_INIT(1 << 20), reply = SL_BUF_INIT(1 << 20);
	sl_item items[1000];
	sl_item_vec *v;
	sl_item_set set;
	id_list found[2] = {{0}};
	sl_reconcile_diff diff = {push_have, push_need, found};
	int done = 0;
	(void)state;

	for (int i = 0; i < 1000; i++) {
		items[i].ts = 0;
		tu_rng_fill(&rng, items[i].id, 32);
	}
	v = vec_of(items, 1000);
	set = sl_item_vec_set(v);
	assert_int_equal(sl_reconcile_initiate(&set, 0, &msg), SL_OK);
	assert_true(msg.len < 1024);
	assert_int_equal(sl_reconcile_respond(&set, 0, msg.data, msg.len, &reply), SL_OK);
	assert_int_equal(reply.len, 1);
	assert_int_equal(reply.data[0], 0x61);
	sl_buf_reset(&msg);
	assert_int_equal(sl_reconcile_next(&set, 0, reply.data, reply.len, &diff, &msg, &done),
	                 SL_OK);
	assert_int_equal(done, 1);
	assert_int_equal(msg.len, 0);
	assert_int_equal(found[0].n + found[1].n, 0);
	sl_item_vec_free(v);
	sl_buf_free(&msg);
	sl_buf_free(&reply);
}

/* -------------------------------------------------------------- property */

typedef struct run_stats {
	unsigned rounds;
	size_t bytes_out, bytes_in, max_msg_out, max_msg_in;
} run_stats;

/* Reconcile a (initiator) against b (responder) until done; have/need
 * gathered into found[0] and found[1]. */
static void reconcile(sl_item_vec *a, sl_item_vec *b, size_t limit_a, size_t limit_b,
                      id_list found[2], run_stats *st)
{
	sl_item_set sa = sl_item_vec_set(a), sb = sl_item_vec_set(b);
	sl_buf msg = SL_BUF_INIT(64 << 20), reply = SL_BUF_INIT(64 << 20);
	sl_reconcile_diff diff = {push_have, push_need, found};
	int done = 0;

	memset(st, 0, sizeof(*st));
	assert_int_equal(sl_reconcile_initiate(&sa, limit_a, &msg), SL_OK);
	while (!done) {
		assert_true(++st->rounds < 2000);
		st->bytes_out += msg.len;
		if (msg.len > st->max_msg_out)
			st->max_msg_out = msg.len;
		sl_buf_reset(&reply);
		assert_ok(sl_reconcile_respond(&sb, limit_b, msg.data, msg.len, &reply));
		st->bytes_in += reply.len;
		if (reply.len > st->max_msg_in)
			st->max_msg_in = reply.len;
		sl_buf_reset(&msg);
		assert_ok(
		        sl_reconcile_next(&sa, limit_a, reply.data, reply.len, &diff, &msg, &done));
	}
	sl_buf_free(&msg);
	sl_buf_free(&reply);
}

/* What the case being run is, for failure messages. */
static char case_desc[160];

static void assert_same_ids(id_list *got, id_list *want, const char *what)
{
	size_t kept = 0;
	ids_sort(got);
	ids_sort(want);
	/* A later round may report an id again (a cut frame's last range
	 * covers ranges already settled); what counts is the set. */
	for (size_t i = 0; i < got->n; i++)
		if (kept == 0 || memcmp(got->ids[kept - 1], got->ids[i], 32) != 0)
			memmove(got->ids[kept++], got->ids[i], 32);
	got->n = kept;
	if (got->n != want->n)
		fail_msg("%s: %zu ids reported, %zu expected (%s)", what, got->n, want->n,
		         case_desc);
	for (size_t i = 0; i < got->n; i++)
		if (memcmp(got->ids[i], want->ids[i], 32) != 0)
			fail_msg("%s: id %zu differs (%s)", what, i, case_desc);
}

/* Two sets sharing `common` items, with `only_a` and `only_b` items of
 * their own, placed at random (scattered) or in one stretch of the order
 * (clustered); timestamps in [0, ts_span) so many items share one. */
typedef struct case_spec {
	size_t common, only_a, only_b;
	int clustered;
	uint64_t ts_span;
	size_t limit_a, limit_b;
} case_spec;

static void run_case(const case_spec *c, run_stats *st_out)
{
	size_t total = c->common + c->only_a + c->only_b;
	sl_item *all = malloc((total ? total : 1) * sizeof(*all));
	sl_item_vec *a, *b;
	id_list truth[2] = {{0}}, found[2] = {{0}};
	size_t cluster_at;
	run_stats st;

	assert_non_null(all);
	snprintf(case_desc, sizeof(case_desc),
	         "common %zu, only_a %zu, only_b %zu, %s, ts_span %llu, limits %zu/%zu", c->common,
	         c->only_a, c->only_b, c->clustered ? "clustered" : "scattered",
	         (unsigned long long)c->ts_span, c->limit_a, c->limit_b);
	for (size_t i = 0; i < total; i++) {
		all[i].ts = c->ts_span ? tu_rng_below(&rng, c->ts_span) : 0;
		tu_rng_fill(&rng, all[i].id, 32);
	}
	/* Sort, then choose which items are not common: a random sample, or
	 * a contiguous stretch. Order: [ common | only_a | only_b ] after a
	 * shuffle (scattered) or a rotation into one place (clustered). */
	qsort(all, total, sizeof(*all), (int (*)(const void *, const void *))sl_item_cmp);
	assert_int_equal(sl_item_vec_new(&a), SL_OK);
	assert_int_equal(sl_item_vec_new(&b), SL_OK);
	cluster_at = total ? tu_rng_below(&rng, total) : 0;
	if (!c->clustered) {
		for (size_t i = total; i > 1; i--) {
			size_t j = tu_rng_below(&rng, i);
			sl_item t = all[i - 1];
			all[i - 1] = all[j];
			all[j] = t;
		}
	}
	for (size_t k = 0; k < total; k++) {
		/* Clustered: the differing items are the (only_a + only_b)
		 * consecutive items from cluster_at on, in item order. */
		size_t i = c->clustered ? (k + cluster_at) % total : k;
		const sl_item *it = &all[i];
		if (k < c->only_a) {
			assert_int_equal(sl_item_vec_add(a, it->ts, it->id), SL_OK);
			ids_push(&truth[0], it->id);
		} else if (k < c->only_a + c->only_b) {
			assert_int_equal(sl_item_vec_add(b, it->ts, it->id), SL_OK);
			ids_push(&truth[1], it->id);
		} else {
			assert_int_equal(sl_item_vec_add(a, it->ts, it->id), SL_OK);
			assert_int_equal(sl_item_vec_add(b, it->ts, it->id), SL_OK);
		}
	}
	assert_int_equal(sl_item_vec_seal(a), SL_OK);
	assert_int_equal(sl_item_vec_seal(b), SL_OK);

	reconcile(a, b, c->limit_a, c->limit_b, found, &st);
	assert_same_ids(&found[0], &truth[0], "have");
	assert_same_ids(&found[1], &truth[1], "need");
	if (c->limit_a)
		assert_true(st.max_msg_out <= c->limit_a);
	if (c->limit_b)
		assert_true(st.max_msg_in <= c->limit_b);
	if (st_out)
		*st_out = st;

	for (int i = 0; i < 2; i++) {
		ids_free(&truth[i]);
		ids_free(&found[i]);
	}
	sl_item_vec_free(a);
	sl_item_vec_free(b);
	free(all);
}

static size_t pick_limit(void)
{
	static const size_t limits[] = {0, 0, SL_RECONCILE_FRAME_MIN, 10000, 60000, 1 << 20};
	return limits[tu_rng_below(&rng, sizeof(limits) / sizeof(limits[0]))];
}

static void test_property_small(void **state)
{
	(void)state;
	for (int i = 0; i < 300; i++) {
		case_spec c = {
		        .common = tu_rng_below(&rng, 3000),
		        .only_a = tu_rng_below(&rng, 4) ? tu_rng_below(&rng, 60) : 0,
		        .only_b = tu_rng_below(&rng, 4) ? tu_rng_below(&rng, 60) : 0,
		        .clustered = (int)tu_rng_below(&rng, 2),
		        .ts_span = tu_rng_below(&rng, 3) == 0 ? 0 : 1 + tu_rng_below(&rng, 50),
		        .limit_a = pick_limit(),
		        .limit_b = pick_limit(),
		};
		run_case(&c, NULL);
	}
}

static void test_property_large(void **state)
{
	(void)state;
	/* Sizes up to 200,000 and up to 5,000 differences, including the
	 * empty side and the corner cases the sizes cross (31/32 items). */
	static const case_spec fixed[] = {
	        {0, 0, 0, 0, 0, 0, 0},
	        {0, 31, 0, 0, 0, 0, 0},
	        {0, 0, 32, 0, 0, 0, 0},
	        {200000, 0, 0, 0, 0, 60000, 60000},
	        {0, 0, 200000, 1, 0, 0, 1 << 20},
	        {200000, 2500, 2500, 1, 0, 0, 0},
	        {200000, 2500, 2500, 0, 0, 60000, 60000},
	        {195000, 5000, 0, 0, 1000, 0, SL_RECONCILE_FRAME_MIN},
	        {100000, 100, 0, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		run_case(&fixed[i], NULL);
	for (int i = 0; i < 6; i++) {
		size_t d = tu_rng_below(&rng, 5001);
		size_t a = tu_rng_below(&rng, d + 1);
		case_spec c = {
		        .common = tu_rng_below(&rng, 200001 - d),
		        .only_a = a,
		        .only_b = d - a,
		        .clustered = (int)tu_rng_below(&rng, 2),
		        .ts_span = tu_rng_below(&rng, 2) ? 0 : 1 + tu_rng_below(&rng, 100000),
		        .limit_a = pick_limit(),
		        .limit_b = pick_limit(),
		};
		run_case(&c, NULL);
	}
}

/* The goals of the issue, on the vector sets: d = 100 in at most four
 * round trips and 256 KiB, d = 0 in one round trip under 1 KiB. */
static void test_cost_shape(void **state)
{
	run_stats st;
	case_spec equal = {100000, 0, 0, 0, 0, 1 << 20, 1 << 20};
	case_spec hundred = {100000, 50, 50, 0, 0, 1 << 20, 1 << 20};
	(void)state;

	run_case(&equal, &st);
	assert_int_equal(st.rounds, 1);
	assert_true(st.bytes_out + st.bytes_in < 1024);
	run_case(&hundred, &st);
	assert_true(st.rounds <= 4);
	assert_true(st.bytes_out + st.bytes_in <= 256 * 1024);
}

/* ------------------------------------------------------------ bad input */

static int must_not_run(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	(void)ctx;
	(void)id;
	fail_msg("a callback ran for a malformed message");
	return 0;
}

static void expect_refused(const sl_item_set *set, const uint8_t *msg, size_t len,
                           const char *needle)
{
	sl_buf out = SL_BUF_INIT(1 << 20);
	sl_reconcile_diff diff = {must_not_run, must_not_run, NULL};
	int done = 7;

	assert_int_equal(sl_buf_append(&out, "keep", 4), SL_OK);
	assert_int_equal(sl_reconcile_check(msg, len), SL_EINVAL);
	if (needle && !strstr(sl_error_last()->message, needle))
		fail_msg("message '%s' does not say '%s'", sl_error_last()->message, needle);
	assert_int_equal(sl_reconcile_respond(set, 0, msg, len, &out), SL_EINVAL);
	assert_int_equal(sl_reconcile_next(set, 0, msg, len, &diff, &out, &done), SL_EINVAL);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "keep", 4);
	assert_int_equal(done, 7);
	sl_buf_free(&out);
}

static void test_bad_messages(void **state)
{
	sl_item items[50];
	sl_item_vec *v;
	sl_item_set set;
	sl_buf good = SL_BUF_INIT(1 << 20);
	uint8_t buf[256];
	(void)state;

	for (int i = 0; i < 50; i++) {
		items[i].ts = (uint64_t)i;
		tu_rng_fill(&rng, items[i].id, 32);
	}
	v = vec_of(items, 50);
	set = sl_item_vec_set(v);

	expect_refused(&set, (const uint8_t *)"", 0, "empty");
	expect_refused(&set, (const uint8_t *)"\x00", 1, "not a negentropy message");
	expect_refused(&set, (const uint8_t *)"\x62", 1, "version 2 is not supported");
	expect_refused(&set, (const uint8_t *)"\x61\x00", 2, "ends inside");
	expect_refused(&set, (const uint8_t *)"\x61\x00\x00\x07", 4, "unknown mode");
	expect_refused(&set, (const uint8_t *)"\x61\x00\x21", 3, "longer than 32");
	expect_refused(&set, (const uint8_t *)"\x61\x80\x01\x00\x00", 5, "leading zero");
	expect_refused(&set, (const uint8_t *)"\x61\x00\x00\x02\x05", 5, "longer than the message");
	/* 11 digits: past 64 bits. */
	memcpy(buf, "\x61\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00", 14);
	expect_refused(&set, buf, 14, "64 bits");
	/* A bound below the previous one: ts 5 (enc 6) then ... ts cannot go
	 * back, so go back in the id: (5, 0x20) then (5+0, 0x10). */
	memcpy(buf, "\x61\x06\x01\x20\x00\x01\x01\x10\x00", 9);
	expect_refused(&set, buf, 9, "below the previous");
	/* Infinity then a finite timestamp. */
	memcpy(buf, "\x61\x00\x00\x00\x02\x00\x00", 7);
	expect_refused(&set, buf, 7, "passes infinity");

	/* Every strict prefix of a good message is refused. */
	assert_int_equal(sl_reconcile_initiate(&set, 0, &good), SL_OK);
	for (size_t cut = 0; cut < good.len; cut++) {
		if (cut > 0 && sl_reconcile_check(good.data, cut) == SL_OK)
			continue; /* a prefix that ends between ranges is a message */
		expect_refused(&set, good.data, cut, NULL);
	}
	/* Two ranges up to infinity are accepted: the reference writes that
	 * when its frame limit is reached at the end. */
	assert_int_equal(sl_reconcile_check((const uint8_t *)"\x61\x00\x00\x00\x00\x00\x00", 7),
	                 SL_OK);
	sl_buf_free(&good);
	sl_item_vec_free(v);
}

static void test_frame_limit_rules(void **state)
{
	sl_item_vec *v = vec_of(NULL, 0);
	sl_item_set set = sl_item_vec_set(v);
	sl_buf out = SL_BUF_INIT(1 << 20);
	(void)state;

	assert_int_equal(sl_reconcile_initiate(&set, 4095, &out), SL_EINVAL);
	assert_int_equal(out.len, 0);
	assert_int_equal(sl_reconcile_initiate(&set, 4096, &out), SL_OK);
	sl_item_vec_free(v);
	sl_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sum_carries),
	        cmocka_unit_test(test_sum_random_inverse),
	        cmocka_unit_test(test_fingerprint_vectors),
	        cmocka_unit_test(test_vec_rules),
	        cmocka_unit_test(test_vec_grows),
	        cmocka_unit_test(test_initiate_vectors),
	        cmocka_unit_test(test_equal_sets_one_round),
	        cmocka_unit_test(test_property_small),
	        cmocka_unit_test(test_property_large),
	        cmocka_unit_test(test_cost_shape),
	        cmocka_unit_test(test_bad_messages),
	        cmocka_unit_test(test_frame_limit_rules),
	};
	rng = tu_rng_seeded("reconcile_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
