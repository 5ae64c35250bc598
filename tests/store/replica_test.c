/*
 * Replication into a store: a replica built by appending another store's
 * operations (from location 0, or from the floor with pinned nodes) ends
 * with the same root, state and values, verifies, serves proofs that check
 * against the source's root, and keeps following new commits. Bad input
 * (wrong start, altered value, wrong kind, a floor that moves back, a run
 * that does not end with a commit, wrong pinned nodes) is refused and
 * changes nothing. Also: consistency proofs from the store.
 *
 * Replacing a replica (sl_store_ns_replace), as sync does when its
 * source pruned operations it still needs: the old copy reads as it was
 * while the new one is built beside it under a reserved name; after the
 * swap the namespace is the new copy under the old name, verifies (log,
 * MMR, state, item index) and keeps following, the side name is gone,
 * and no value is left that nothing refers to. A child process killed
 * at random moments of the swap leaves the old copy and the side copy,
 * or the new copy alone, each verifying. Also: dropping a namespace, and
 * which reserved names the store takes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sluice/store.h"
#include "testutil.h"

typedef struct fixture {
	char *dir_src, *dir_dst;
	sl_store *src, *dst;
	tu_rng rng;
} fixture;

static sl_store *open_store(const char *dir)
{
	sl_store_options o;
	sl_store *s = NULL;
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	o.state_flush_ops = 97; /* exercise flushes on both sides */
	if (sl_store_open(&s, dir, &o) != SL_OK)
		return NULL;
	return s;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	f->dir_src = tu_tempdir();
	f->dir_dst = tu_tempdir();
	if (!f->dir_src || !f->dir_dst || !(f->src = open_store(f->dir_src)) ||
	    !(f->dst = open_store(f->dir_dst)))
		return -1;
	f->rng = tu_rng_seeded("replica_test");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sl_store_free(f->src);
	sl_store_free(f->dst);
	tu_rmtree(f->dir_src);
	tu_rmtree(f->dir_dst);
	free(f->dir_src);
	free(f->dir_dst);
	free(f);
	return 0;
}

/* n_commits random commits of puts (values 0..200 bytes, so some go to
 * blobs) and, in mutable namespaces, deletes, over a small key space. */
static void random_commits(fixture *f, const char *ns, sl_ns_kind kind, int n_commits)
{
	static int next_key = 0;
	for (int c = 0; c < n_commits; c++) {
		sl_batch *b;
		int n = 1 + (int)tu_rng_below(&f->rng, 8);
		assert_int_equal(sl_batch_new(&b, f->src, ns), SL_OK);
		for (int i = 0; i < n; i++) {
			char key[32], value[256];
			size_t len = (size_t)tu_rng_below(&f->rng, 200);
			int k = kind == SL_NS_MUTABLE ? (int)tu_rng_below(&f->rng, 40) : next_key++;
			snprintf(key, sizeof(key), "k/%d", k);
			tu_rng_fill(&f->rng, value, len);
			if (kind == SL_NS_MUTABLE && tu_rng_below(&f->rng, 5) == 0)
				assert_int_equal(sl_batch_del(b, key, strlen(key)), SL_OK);
			else
				assert_int_equal(sl_batch_put(b, key, strlen(key), value, len),
				                 SL_OK);
		}
		assert_int_equal(sl_batch_commit(b, NULL), SL_OK);
		sl_batch_free(b);
	}
}

/* Operations [start, end) of the source, copied with their values. */
typedef struct op_run {
	size_t n;
	sl_bytes elements[4096];
	sl_bytes values[4096];
	uint64_t last_commit; /* index after the last commit in the run */
} op_run;

static int collect(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                   size_t element_len, const void *value, size_t value_len)
{
	op_run *r = ctx;
	uint8_t *e = malloc(element_len), *v = malloc(value_len + 1);
	(void)loc;
	memcpy(e, element, element_len);
	if (value_len)
		memcpy(v, value, value_len);
	r->elements[r->n].data = e;
	r->elements[r->n].len = element_len;
	r->values[r->n].data = v;
	r->values[r->n].len = value_len;
	r->n++;
	if (op->type == SL_OP_COMMIT)
		r->last_commit = r->n;
	return 0;
}

static void run_free(op_run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free((void *)r->elements[i].data);
		free((void *)r->values[i].data);
	}
	r->n = 0;
	r->last_commit = 0;
}

/* Read [start, start+max) of the source against its latest size and check
 * its proof; with pinned non-NULL, return the pinned nodes for start. */
static void read_verified(fixture *f, const char *ns, uint64_t start, uint64_t max, op_run *r,
                          sl_digest *pinned, size_t *n_pinned)
{
	sl_ns_info info;
	sl_mmr_proof proof = {0, 0, NULL};
	sl_digest pins[SL_MMR_MAX_PEAKS];
	size_t n_pins = 0;

	assert_int_equal(sl_store_ns_info(f->src, ns, &info), SL_OK);
	memset(r, 0, sizeof(*r));
	assert_int_equal(sl_store_read_range(f->src, ns, 0, start, max, collect, r, &proof, NULL),
	                 SL_OK);
	assert_true(r->n > 0);
	assert_int_equal(sl_mmr_range_verify_pinned(&proof, start, r->elements, r->n,
	                                            &info.target.root, pins, &n_pins),
	                 SL_OK);
	if (pinned) {
		memcpy(pinned, pins, n_pins * sizeof(*pins));
		*n_pinned = n_pins;
	}
	sl_mmr_proof_free(&proof);
}

/* Bring dst's namespace dst_ns up to the source's namespace ns, in runs
 * of at most max operations cut at commits; stop once it holds `upto`
 * operations (0: the source's size). */
static void follow_into(fixture *f, const char *ns, const char *dst_ns, uint64_t max, uint64_t upto)
{
	sl_ns_info src, dst;
	assert_int_equal(sl_store_ns_info(f->src, ns, &src), SL_OK);
	for (;;) {
		op_run r;
		assert_int_equal(sl_store_ns_info(f->dst, dst_ns, &dst), SL_OK);
		if (dst.target.size == src.target.size || (upto && dst.target.size >= upto))
			break;
		read_verified(f, ns, dst.target.size, max, &r, NULL, NULL);
		if (r.last_commit == 0) { /* no commit in the run: read more */
			run_free(&r);
			max *= 2;
			continue;
		}
		assert_int_equal(sl_store_append_ops(f->dst, dst_ns, dst.target.size, r.elements,
		                                     r.values, (size_t)r.last_commit, NULL),
		                 SL_OK);
		run_free(&r);
	}
}

static void follow(fixture *f, const char *ns, uint64_t max)
{
	follow_into(f, ns, ns, max, 0);
}

typedef struct kv_list {
	size_t n;
	char keys[2048][32];
	sl_digest digests[2048];
} kv_list;

static int list_cb(void *ctx, const sl_key_entry *e)
{
	kv_list *l = ctx;
	assert_true(l->n < 2048 && e->key_len < 32);
	memcpy(l->keys[l->n], e->key, e->key_len);
	l->keys[l->n][e->key_len] = 0;
	l->digests[l->n++] = e->digest;
	return 0;
}

/* Same target, same keys and digests, every value readable, and the
 * copy verifies. */
static void assert_same_as(fixture *f, const char *ns, const char *dst_ns)
{
	sl_ns_info a, b;
	kv_list la, lb;
	sl_verify_report rep;

	assert_int_equal(sl_store_ns_info(f->src, ns, &a), SL_OK);
	assert_int_equal(sl_store_ns_info(f->dst, dst_ns, &b), SL_OK);
	assert_int_equal(a.target.size, b.target.size);
	assert_int_equal(a.target.floor, b.target.floor);
	assert_memory_equal(a.target.root.bytes, b.target.root.bytes, SL_DIGEST_LEN);
	memset(&la, 0, sizeof(la));
	memset(&lb, 0, sizeof(lb));
	assert_int_equal(sl_store_list(f->src, ns, "", 0, list_cb, &la), SL_OK);
	assert_int_equal(sl_store_list(f->dst, dst_ns, "", 0, list_cb, &lb), SL_OK);
	assert_int_equal(la.n, lb.n);
	for (size_t i = 0; i < la.n; i++) {
		sl_buf va = SL_BUF_INIT(1 << 20), vb = SL_BUF_INIT(1 << 20);
		assert_string_equal(la.keys[i], lb.keys[i]);
		assert_memory_equal(la.digests[i].bytes, lb.digests[i].bytes, SL_DIGEST_LEN);
		assert_int_equal(
		        sl_store_get(f->src, ns, la.keys[i], strlen(la.keys[i]), &va, NULL), SL_OK);
		assert_int_equal(
		        sl_store_get(f->dst, dst_ns, lb.keys[i], strlen(lb.keys[i]), &vb, NULL),
		        SL_OK);
		assert_int_equal(va.len, vb.len);
		if (va.len)
			assert_memory_equal(va.data, vb.data, va.len);
		sl_buf_free(&va);
		sl_buf_free(&vb);
	}
	assert_int_equal(sl_store_verify(f->dst, dst_ns, &rep), SL_OK);
}

static void assert_same(fixture *f, const char *ns)
{
	assert_same_as(f, ns, ns);
}

static void test_replica_from_zero(void **state)
{
	fixture *f = *state;
	for (int k = 1; k <= 2; k++) {
		const char *ns = k == 1 ? "imm" : "mut";
		sl_ns_kind kind = k == 1 ? SL_NS_IMMUTABLE : SL_NS_MUTABLE;
		assert_int_equal(sl_store_ns_create(f->src, ns, kind), SL_OK);
		assert_int_equal(sl_store_ns_create_at(f->dst, ns, kind, 0, NULL, 0), SL_OK);
		random_commits(f, ns, kind, 60);
		follow(f, ns, 1 + tu_rng_below(&f->rng, 40));
		assert_same(f, ns);
		random_commits(f, ns, kind, 30); /* and it keeps following */
		follow(f, ns, 7);
		assert_same(f, ns);
	}
}

static void test_replica_from_floor(void **state)
{
	fixture *f = *state;
	sl_digest pinned[SL_MMR_MAX_PEAKS];
	size_t n_pinned = 0;
	sl_ns_info src, dst;
	sl_key_proof kp;
	op_run r;

	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	random_commits(f, "m", SL_NS_MUTABLE, 150);
	assert_int_equal(sl_store_ns_info(f->src, "m", &src), SL_OK);
	assert_true(src.target.floor > 0);
	/* Pinned nodes come authenticated with the first verified range. */
	read_verified(f, "m", src.target.floor, 5, &r, pinned, &n_pinned);
	run_free(&r);
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, src.target.floor, pinned,
	                                       n_pinned),
	                 SL_OK);
	assert_int_equal(sl_store_ns_info(f->dst, "m", &dst), SL_OK);
	assert_int_equal(dst.target.size, src.target.floor);
	assert_int_equal(dst.pruned, src.target.floor);
	follow(f, "m", 13);
	assert_same(f, "m");

	/* Proofs from the replica check against the source's root. */
	sl_key_proof_init(&kp);
	{
		kv_list l;
		memset(&l, 0, sizeof(l));
		assert_int_equal(sl_store_list(f->dst, "m", "", 0, list_cb, &l), SL_OK);
		assert_true(l.n > 0);
		assert_int_equal(sl_store_prove_key(f->dst, "m", l.keys[0], strlen(l.keys[0]), &kp),
		                 SL_OK);
	}
	{
		sl_bytes el = {kp.element.data, kp.element.len};
		assert_int_equal(sl_mmr_range_verify(&kp.proof, kp.loc, &el, 1, &src.target.root),
		                 SL_OK);
	}
	sl_key_proof_free(&kp);

	/* It keeps following, survives reopen, and can be pruned. */
	random_commits(f, "m", SL_NS_MUTABLE, 40);
	follow(f, "m", 50);
	assert_same(f, "m");
	sl_store_free(f->dst);
	assert_non_null(f->dst = open_store(f->dir_dst));
	if (sl_store_prune(f->dst, "m", NULL) != SL_OK)
		fail_msg("prune: %s", sl_error_last()->message);
	random_commits(f, "m", SL_NS_MUTABLE, 10);
	follow(f, "m", 50);
	assert_same(f, "m");
}

static void expect_unchanged(fixture *f, const char *ns, const sl_ns_info *before)
{
	sl_ns_info now;
	assert_int_equal(sl_store_ns_info(f->dst, ns, &now), SL_OK);
	assert_int_equal(now.target.size, before->target.size);
	assert_memory_equal(now.target.root.bytes, before->target.root.bytes, SL_DIGEST_LEN);
}

static void test_refuses_bad_input(void **state)
{
	fixture *f = *state;
	sl_ns_info before;
	sl_digest pinned[SL_MMR_MAX_PEAKS];
	op_run r;
	uint8_t *mutable_byte;

	assert_int_equal(sl_store_ns_create(f->src, "i", SL_NS_IMMUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	random_commits(f, "i", SL_NS_IMMUTABLE, 5);
	random_commits(f, "m", SL_NS_MUTABLE, 5);
	assert_int_equal(sl_store_ns_create_at(f->dst, "i", SL_NS_IMMUTABLE, 0, NULL, 0), SL_OK);
	assert_int_equal(sl_store_ns_create_at(f->dst, "i", SL_NS_IMMUTABLE, 0, NULL, 0),
	                 SL_EEXISTS);
	assert_int_equal(sl_store_ns_create_at(f->dst, "x", SL_NS_MUTABLE, 3, pinned, 1),
	                 SL_EINVAL); /* 3 leaves have 2 peaks */
	assert_int_equal(sl_store_ns_info(f->dst, "x", &before), SL_ENOTFOUND);
	assert_int_equal(sl_store_ns_info(f->dst, "i", &before), SL_OK);

	read_verified(f, "i", 0, 1000, &r, NULL, NULL);
	/* Wrong start. */
	assert_int_equal(
	        sl_store_append_ops(f->dst, "i", 1, r.elements, r.values, r.last_commit, NULL),
	        SL_ECONFLICT);
	/* Not ending with a commit. */
	assert_int_equal(
	        sl_store_append_ops(f->dst, "i", 0, r.elements, r.values, r.last_commit - 1, NULL),
	        SL_EINVAL);
	expect_unchanged(f, "i", &before);
	/* An altered value (the first set's, which is not empty). */
	for (size_t i = 0; i < r.n; i++)
		if (r.values[i].len > 0) {
			mutable_byte = (uint8_t *)r.values[i].data;
			mutable_byte[0] ^= 1;
			assert_int_equal(sl_store_append_ops(f->dst, "i", 0, r.elements, r.values,
			                                     r.last_commit, NULL),
			                 SL_EVERIFY);
			mutable_byte[0] ^= 1;
			break;
		}
	expect_unchanged(f, "i", &before);
	/* An altered element. */
	mutable_byte = (uint8_t *)r.elements[0].data;
	mutable_byte[0] = 0x09;
	assert_int_equal(
	        sl_store_append_ops(f->dst, "i", 0, r.elements, r.values, r.last_commit, NULL),
	        SL_ECORRUPT);
	mutable_byte[0] = 0x01;
	expect_unchanged(f, "i", &before);
	run_free(&r);

	/* Mutable operations into an immutable namespace. */
	read_verified(f, "m", 0, 1000, &r, NULL, NULL);
	assert_int_equal(
	        sl_store_append_ops(f->dst, "i", 0, r.elements, r.values, r.last_commit, NULL),
	        SL_ECORRUPT);
	expect_unchanged(f, "i", &before);
	/* A commit floor past its own location. */
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	assert_int_equal(sl_store_ns_info(f->dst, "m", &before), SL_OK);
	{
		uint8_t commit[9] = {0x04, 0, 0, 0, 0, 0, 0, 0, 9};
		sl_bytes el = {commit, sizeof(commit)}, val = {NULL, 0};
		assert_int_equal(sl_store_append_ops(f->dst, "m", 0, &el, &val, 1, NULL),
		                 SL_ECORRUPT);
	}
	expect_unchanged(f, "m", &before);
	/* The good run still applies. */
	assert_int_equal(
	        sl_store_append_ops(f->dst, "m", 0, r.elements, r.values, r.last_commit, NULL),
	        SL_OK);
	run_free(&r);
}

static void test_consistency_proofs(void **state)
{
	fixture *f = *state;
	sl_ns_info info;
	sl_digest roots[64];
	uint64_t sizes[64];
	size_t n = 0;

	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	for (int i = 0; i < 40; i++) {
		random_commits(f, "m", SL_NS_MUTABLE, 1);
		assert_int_equal(sl_store_ns_info(f->src, "m", &info), SL_OK);
		sizes[n] = info.target.size;
		roots[n++] = info.target.root;
	}
	for (size_t i = 0; i < n; i += 3)
		for (size_t j = i; j < n; j += 5) {
			sl_mmr_proof p = {0, 0, NULL};
			assert_int_equal(
			        sl_store_consistency_proof(f->src, "m", sizes[i], sizes[j], &p),
			        SL_OK);
			assert_int_equal(
			        sl_mmr_consistency_verify(&p, sizes[i], &roots[i], &roots[j]),
			        SL_OK);
			if (i != j)
				assert_int_equal(sl_mmr_consistency_verify(&p, sizes[i], &roots[j],
				                                           &roots[j]),
				                 SL_EVERIFY);
			sl_mmr_proof_free(&p);
		}
	{
		sl_mmr_proof p = {0, 0, NULL};
		assert_int_equal(
		        sl_store_consistency_proof(f->src, "m", sizes[0], sizes[n - 1] + 1, &p),
		        SL_EINVAL);
		assert_int_equal(sl_store_prune(f->src, "m", NULL), SL_OK);
		assert_int_equal(sl_store_consistency_proof(f->src, "m", 1, sizes[n - 1], &p),
		                 SL_EINVAL);
	}
}

/* ------------------------------------------------------------ replacing */

#define SIDE ".resync.m"

/* A replica of the source's namespace ns under dst_ns, started at the
 * source's floor from the pinned nodes a verified range fixes. */
static void replica_at_floor(fixture *f, const char *ns, const char *dst_ns)
{
	sl_digest pinned[SL_MMR_MAX_PEAKS];
	size_t n_pinned = 0;
	sl_ns_info src;
	op_run r;

	assert_int_equal(sl_store_ns_info(f->src, ns, &src), SL_OK);
	read_verified(f, ns, src.target.floor, 5, &r, pinned, &n_pinned);
	run_free(&r);
	assert_int_equal(
	        sl_store_ns_create_at(f->dst, dst_ns, src.kind, src.target.floor, pinned, n_pinned),
	        SL_OK);
}

/* No value in the store is left that nothing refers to, and none is
 * missing (V1, values.c). */
static void assert_values_ok(sl_store *s)
{
	sl_values_report vr;
	if (sl_store_verify_values(s, &vr) != SL_OK)
		fail_msg("values: %s", sl_error_last()->message);
}

/* A key of ns in dst and its value, to read again later. */
static void first_key(fixture *f, const char *ns, char key[32], sl_buf *value)
{
	kv_list *l = calloc(1, sizeof(*l));
	assert_non_null(l);
	assert_int_equal(sl_store_list(f->dst, ns, "", 0, list_cb, l), SL_OK);
	assert_true(l->n > 0);
	strcpy(key, l->keys[0]);
	assert_int_equal(sl_store_get(f->dst, ns, key, strlen(key), value, NULL), SL_OK);
	free(l);
}

static void assert_reads(fixture *f, const char *ns, const sl_ns_info *before, const char *key,
                         const sl_buf *value)
{
	sl_buf now = SL_BUF_INIT(1 << 20);
	expect_unchanged(f, ns, before);
	assert_int_equal(sl_store_get(f->dst, ns, key, strlen(key), &now, NULL), SL_OK);
	assert_int_equal(now.len, value->len);
	if (now.len)
		assert_memory_equal(now.data, value->data, now.len);
	sl_buf_free(&now);
}

static void test_replace(void **state)
{
	fixture *f = *state;
	sl_buf value = SL_BUF_INIT(1 << 20);
	sl_ns_info old, src, info;
	char key[32];

	/* An old copy, left behind: the source writes on and prunes. */
	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	random_commits(f, "m", SL_NS_MUTABLE, 80);
	follow(f, "m", 29);
	assert_int_equal(sl_store_ns_info(f->dst, "m", &old), SL_OK);
	first_key(f, "m", key, &value);
	random_commits(f, "m", SL_NS_MUTABLE, 120);
	assert_int_equal(sl_store_prune(f->src, "m", NULL), SL_OK);
	assert_int_equal(sl_store_ns_info(f->src, "m", &src), SL_OK);
	assert_true(src.pruned > old.target.size); /* the old copy cannot go on */

	/* The new copy is built beside it; the old one reads as it was. */
	replica_at_floor(f, "m", SIDE);
	assert_reads(f, "m", &old, key, &value);
	follow_into(f, "m", SIDE, 11, src.target.floor + (src.target.size - src.target.floor) / 2);
	assert_reads(f, "m", &old, key, &value);
	assert_int_equal(sl_store_verify(f->dst, "m", NULL), SL_OK);
	assert_int_equal(sl_store_verify(f->dst, SIDE, NULL), SL_OK);
	follow_into(f, "m", SIDE, 11, 0);
	assert_reads(f, "m", &old, key, &value);

	/* The swap: the namespace is the new copy, the side name is gone. */
	assert_int_equal(sl_store_ns_replace(f->dst, "m", SIDE), SL_OK);
	assert_same(f, "m");
	assert_int_equal(sl_store_ns_info(f->dst, "m", &info), SL_OK);
	assert_int_equal(info.pruned, src.target.floor);
	assert_int_equal(sl_store_ns_info(f->dst, SIDE, &info), SL_ENOTFOUND);
	assert_values_ok(f->dst);

	/* It keeps following, as the same handle and after reopening. */
	random_commits(f, "m", SL_NS_MUTABLE, 30);
	follow(f, "m", 17);
	assert_same(f, "m");
	sl_store_free(f->dst);
	assert_non_null(f->dst = open_store(f->dir_dst));
	assert_same(f, "m");
	random_commits(f, "m", SL_NS_MUTABLE, 10);
	follow(f, "m", 50);
	assert_same(f, "m");
	assert_values_ok(f->dst);
	sl_buf_free(&value);
}

static void test_replace_refuses(void **state)
{
	fixture *f = *state;
	sl_ns_info before;

	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	random_commits(f, "m", SL_NS_MUTABLE, 20);
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	follow(f, "m", 100);
	assert_int_equal(sl_store_ns_info(f->dst, "m", &before), SL_OK);

	assert_int_equal(sl_store_ns_replace(f->dst, "m", SIDE), SL_ENOTFOUND);
	assert_int_equal(sl_store_ns_replace(f->dst, "nosuch", "m"), SL_ENOTFOUND);
	assert_int_equal(sl_store_ns_replace(f->dst, "m", "m"), SL_EINVAL);
	assert_int_equal(sl_store_ns_create_at(f->dst, ".resync.i", SL_NS_IMMUTABLE, 0, NULL, 0),
	                 SL_OK);
	assert_int_equal(sl_store_ns_replace(f->dst, "m", ".resync.i"), SL_ECONFLICT);
	expect_unchanged(f, "m", &before);
	assert_int_equal(sl_store_ns_info(f->dst, ".resync.i", &before), SL_OK);
	assert_same(f, "m");
}

static void test_drop(void **state)
{
	fixture *f = *state;
	sl_ns_info info;

	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	random_commits(f, "m", SL_NS_MUTABLE, 60);
	/* Two copies share their values; dropping one keeps the other's. */
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	follow(f, "m", 40);
	replica_at_floor(f, "m", SIDE);
	follow_into(f, "m", SIDE, 40, 0);
	assert_int_equal(sl_store_ns_drop(f->dst, SIDE), SL_OK);
	assert_int_equal(sl_store_ns_info(f->dst, SIDE, &info), SL_ENOTFOUND);
	assert_same(f, "m");
	assert_values_ok(f->dst);
	/* The last copy of its values: they go with it. */
	assert_int_equal(sl_store_ns_drop(f->dst, "m"), SL_OK);
	assert_values_ok(f->dst);
	assert_int_equal(sl_store_ns_drop(f->dst, "m"), SL_ENOTFOUND);
	/* The name can be used again, and is a new, empty namespace. */
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	assert_int_equal(sl_store_ns_info(f->dst, "m", &info), SL_OK);
	assert_int_equal(info.target.size, 0);
	assert_int_equal(info.keys, 0);
	follow(f, "m", 25);
	assert_same(f, "m");
}

/* The id the store file gives namespace name, read beside the store. */
static int64_t ns_id_of(const char *dir, const char *name)
{
	char path[4200];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t id = -1;

	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "SELECT id FROM namespaces WHERE name = ?1", -1, &st, NULL),
	        SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return id;
}

/* Dropping the newest namespace does not hand its id to the next one,
 * not even after a reopen: a cache another process keeps of the dropped
 * one must never match a namespace created later. */
static void test_ids_not_given_twice(void **state)
{
	fixture *f = *state;
	int64_t first, second;

	assert_int_equal(sl_store_ns_create(f->dst, "a", SL_NS_MUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create_at(f->dst, SIDE, SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	assert_true((first = ns_id_of(f->dir_dst, SIDE)) > ns_id_of(f->dir_dst, "a"));
	assert_int_equal(sl_store_ns_drop(f->dst, SIDE), SL_OK);
	assert_int_equal(sl_store_ns_create_at(f->dst, SIDE, SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	assert_true((second = ns_id_of(f->dir_dst, SIDE)) > first);
	assert_int_equal(sl_store_ns_drop(f->dst, SIDE), SL_OK);
	sl_store_free(f->dst);
	assert_non_null(f->dst = open_store(f->dir_dst));
	assert_int_equal(sl_store_ns_create(f->dst, "b", SL_NS_MUTABLE), SL_OK);
	assert_true(ns_id_of(f->dir_dst, "b") > second);
}

static void test_reserved_names(void **state)
{
	fixture *f = *state;
	char name[SL_NS_NAME_MAX + 2];

	/* What users may name refuses them; the store takes them. */
	assert_int_equal(sl_ns_name_validate(SIDE), SL_EINVAL);
	assert_int_equal(sl_store_ns_create_at(f->dst, SIDE, SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	assert_int_equal(sl_store_ns_create_at(f->dst, ".", SL_NS_MUTABLE, 0, NULL, 0), SL_EINVAL);
	assert_int_equal(sl_store_ns_create_at(f->dst, "..x", SL_NS_MUTABLE, 0, NULL, 0),
	                 SL_EINVAL);
	assert_int_equal(sl_store_ns_create_at(f->dst, ".a b", SL_NS_MUTABLE, 0, NULL, 0),
	                 SL_EINVAL);
	memset(name, 'x', sizeof(name));
	name[0] = '.';
	name[SL_NS_NAME_MAX + 1] = 0;
	assert_int_equal(sl_store_ns_create_at(f->dst, name, SL_NS_MUTABLE, 0, NULL, 0), SL_EINVAL);
	name[SL_NS_NAME_MAX] = 0;
	assert_int_equal(sl_store_ns_create_at(f->dst, name, SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
}

/* ------------------------------------------------- a crash in the swap */

typedef struct swap_state {
	int old_there, side_there, new_there;
} swap_state;

static void copy_store(const char *from, const char *to)
{
	char cmd[8500];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
	assert_int_equal(system(cmd), 0);
}

static void child_replace(const char *dir)
{
	sl_store *s = open_store(dir);
	_exit(s && sl_store_ns_replace(s, "m", SIDE) == SL_OK ? 0 : 3);
}

/* After the swap was cut short somewhere: the old copy with the side
 * copy, or the new copy alone; whichever it is verifies. */
static swap_state check_after_crash(const char *dir, const sl_ns_info *old,
                                    const sl_ns_info *new_copy)
{
	sl_store *s = open_store(dir);
	sl_ns_info m, side;
	swap_state st = {0, 0, 0};
	int rc;

	assert_non_null(s);
	assert_int_equal(sl_store_ns_info(s, "m", &m), SL_OK);
	rc = sl_store_ns_info(s, SIDE, &side);
	assert_true(rc == SL_OK || rc == SL_ENOTFOUND);
	if (sl_digest_eq(&m.target.root, &old->target.root)) {
		assert_int_equal(rc, SL_OK);
		assert_memory_equal(side.target.root.bytes, new_copy->target.root.bytes,
		                    SL_DIGEST_LEN);
		assert_int_equal(sl_store_verify(s, SIDE, NULL), SL_OK);
		st.old_there = st.side_there = 1;
	} else {
		assert_memory_equal(m.target.root.bytes, new_copy->target.root.bytes,
		                    SL_DIGEST_LEN);
		assert_int_equal(rc, SL_ENOTFOUND);
		st.new_there = 1;
	}
	assert_int_equal(sl_store_verify(s, "m", NULL), SL_OK);
	assert_values_ok(s);
	sl_store_free(s);
	return st;
}

static void test_replace_crash(void **state)
{
	fixture *f = *state;
	const char *runs_env = getenv("SLUICE_CRASH_RUNS");
	int runs = runs_env ? atoi(runs_env) : 12, saw_old = 0, saw_new = 0;
	char *work = tu_tempdir(), copy[4200];
	sl_ns_info old, new_copy;
	uint64_t swap_us;

	assert_non_null(work);
	snprintf(copy, sizeof(copy), "%s/copy", work);
	assert_int_equal(sl_store_ns_create(f->src, "m", SL_NS_MUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create_at(f->dst, "m", SL_NS_MUTABLE, 0, NULL, 0), SL_OK);
	random_commits(f, "m", SL_NS_MUTABLE, 1500);
	follow(f, "m", 4000);
	assert_int_equal(sl_store_ns_info(f->dst, "m", &old), SL_OK);
	random_commits(f, "m", SL_NS_MUTABLE, 1500);
	assert_int_equal(sl_store_prune(f->src, "m", NULL), SL_OK);
	replica_at_floor(f, "m", SIDE);
	follow_into(f, "m", SIDE, 4000, 0);
	assert_int_equal(sl_store_ns_info(f->dst, SIDE, &new_copy), SL_OK);
	sl_store_free(f->dst);
	f->dst = NULL;

	/* How long a whole swap takes here, opening included. */
	{
		struct timespec a, b;
		pid_t pid;
		int status;
		copy_store(f->dir_dst, copy);
		clock_gettime(CLOCK_MONOTONIC, &a);
		if ((pid = fork()) == 0)
			child_replace(copy);
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		clock_gettime(CLOCK_MONOTONIC, &b);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		swap_us = (uint64_t)(((int64_t)b.tv_sec - a.tv_sec) * 1000000 +
		                     ((int64_t)b.tv_nsec - a.tv_nsec) / 1000);
		assert_true(check_after_crash(copy, &old, &new_copy).new_there);
	}
	for (int i = 0; i < runs; i++) {
		uint64_t delay = tu_rng_below(&f->rng, swap_us + swap_us / 4 + 1);
		swap_state st;
		pid_t pid;
		copy_store(f->dir_dst, copy);
		if ((pid = fork()) == 0)
			child_replace(copy);
		assert_true(pid > 0);
		usleep((useconds_t)delay);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		st = check_after_crash(copy, &old, &new_copy);
		saw_old += st.old_there;
		saw_new += st.new_there;
	}
	fprintf(stderr,
	        "replace killed %d times (a swap takes %llu us): old copy %d, new copy %d\n", runs,
	        (unsigned long long)swap_us, saw_old, saw_new);
	assert_non_null(f->dst = open_store(f->dir_dst));
	tu_rmtree(work);
	free(work);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_replica_from_zero, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replica_from_floor, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refuses_bad_input, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_consistency_proofs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace_refuses, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ids_not_given_twice, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reserved_names, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace_crash, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
