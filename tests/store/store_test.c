/*
 * Store behaviour: namespaces, the immutable and mutable rules, the
 * inactivity floor, persistence of MMR nodes across reopen and across
 * handles, the data version other handles' commits move, proofs,
 * verification and its detection of tampering, and rejection of damaged
 * or foreign files. A seeded random test checks the state against a model
 * and the root against an in-memory MMR built from the log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice/store.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef struct fixture {
	char *dir;
	sl_store *s;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	sl_store_options o;
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	f->dir = tu_tempdir();
	if (!f->dir || sl_store_open(&f->s, f->dir, &o) != SL_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sl_store_free(f->s);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static sl_store *reopen(fixture *f)
{
	sl_store_free(f->s);
	f->s = NULL;
	assert_int_equal(sl_store_open(&f->s, f->dir, NULL), SL_OK);
	return f->s;
}

static void put1(sl_store *s, const char *ns, const char *key, const char *value, int expect)
{
	sl_batch *b;
	assert_int_equal(sl_batch_new(&b, s, ns), SL_OK);
	assert_int_equal(sl_batch_put(b, key, strlen(key), value, strlen(value)), SL_OK);
	assert_int_equal(sl_batch_commit(b, NULL), expect);
	sl_batch_free(b);
}

static void del1(sl_store *s, const char *ns, const char *key)
{
	sl_batch *b;
	assert_int_equal(sl_batch_new(&b, s, ns), SL_OK);
	assert_int_equal(sl_batch_del(b, key, strlen(key)), SL_OK);
	assert_int_equal(sl_batch_commit(b, NULL), SL_OK);
	sl_batch_free(b);
}

static void expect_get(sl_store *s, const char *ns, const char *key, const char *value)
{
	sl_buf v = SL_BUF_INIT(1 << 20);
	int rc = sl_store_get(s, ns, key, strlen(key), &v, NULL);
	if (!value) {
		assert_int_equal(rc, SL_ENOTFOUND);
	} else {
		assert_int_equal(rc, SL_OK);
		assert_int_equal(v.len, strlen(value));
		assert_memory_equal(v.data, value, v.len);
	}
	sl_buf_free(&v);
}

static sl_target target_of(sl_store *s, const char *ns)
{
	sl_ns_info info;
	assert_int_equal(sl_store_ns_info(s, ns, &info), SL_OK);
	return info.target;
}

static void expect_verified(sl_store *s, const char *ns)
{
	sl_verify_report r;
	int rc = sl_store_verify(s, ns, &r);
	if (rc != SL_OK)
		fail_msg("verify %s: %s", ns, sl_error_last()->message);
}

/* Root of an in-memory MMR over every element of the log. */
static int feed_mem(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *el, size_t len)
{
	(void)loc, (void)op;
	return sl_mmr_mem_append(ctx, el, len);
}

static void expect_root_matches_log(sl_store *s, const char *ns)
{
	sl_mmr_mem *m;
	sl_digest root;
	sl_target t = target_of(s, ns);
	assert_int_equal(sl_mmr_mem_new(&m), SL_OK);
	assert_int_equal(sl_store_log(s, ns, 0, 0, feed_mem, m), SL_OK);
	assert_int_equal(sl_mmr_mem_leaves(m), t.size);
	sl_mmr_mem_root(m, &root);
	assert_memory_equal(root.bytes, t.root.bytes, 32);
	sl_mmr_mem_free(m);
}

/* ------------------------------------------------------------------ tests */

/* Run this test program again as a child, in a process image of its own
 * (a fork would inherit this process's SQLite lock bookkeeping), doing
 * `what` on dir; its exit status. */
static int in_child(const char *dir, const char *what)
{
	int status;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "store_test", what, dir, (char *)NULL);
		_exit(101);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static int child_writes(const char *dir)
{
	sl_store *s;
	sl_batch *b;
	int rc = sl_store_open(&s, dir, NULL);
	if (rc == SL_OK && (rc = sl_batch_new(&b, s, "ns")) == SL_OK) {
		if ((rc = sl_batch_put(b, "k2", 2, "v2", 2)) == SL_OK)
			rc = sl_batch_commit(b, NULL);
		sl_batch_free(b);
	}
	sl_store_free(s); /* the last connection, if it sees no other */
	return rc == SL_OK ? 0 : 1;
}

static int child_reads(const char *dir)
{
	sl_buf v = SL_BUF_INIT(64);
	sl_store *s;
	int missing = 0;
	if (sl_store_open(&s, dir, NULL) != SL_OK)
		return 2;
	missing += sl_store_get(s, "ns", "k1", 2, &v, NULL) != SL_OK;
	missing += sl_store_get(s, "ns", "k2", 2, &v, NULL) != SL_OK;
	missing += sl_store_get(s, "ns", "k3", 2, &v, NULL) != SL_OK;
	sl_store_free(s);
	sl_buf_free(&v);
	return missing;
}

/* A process that opens more handles keeps the locks of those it holds:
 * another process that writes and closes sees it is not the last, so the
 * WAL stays, and a commit through any handle reaches every process. (The
 * store once read its header with open() and close(), which dropped the
 * process's locks; a server's later commits went to a deleted WAL.) */
static void test_second_handle_keeps_locks(void **state)
{
	fixture *f = *state;
	sl_store *more[3];
	char wal[4200];
	struct stat st;
	(void)state;

	assert_int_equal(sl_store_ns_create(f->s, "ns", SL_NS_MUTABLE), SL_OK);
	put1(f->s, "ns", "k1", "v1", SL_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sl_store_open(&more[i], f->dir, NULL), SL_OK);
		expect_get(more[i], "ns", "k1", "v1");
	}
	assert_int_equal(in_child(f->dir, "--child-writes"), 0);
	snprintf(wal, sizeof(wal), "%s/sluice.db-wal", f->dir);
	assert_int_equal(stat(wal, &st), 0); /* still this process's WAL */
	put1(more[2], "ns", "k3", "v3", SL_OK);
	assert_int_equal(in_child(f->dir, "--child-reads"), 0);
	for (int i = 0; i < 3; i++)
		sl_store_free(more[i]);
}

static void test_open_requires_init(void **state)
{
	(void)state;
	char *dir = tu_tempdir();
	char sub[4200];
	sl_store *s = NULL;
	snprintf(sub, sizeof(sub), "%s/nested/store", dir);
	assert_int_equal(sl_store_open(&s, sub, NULL), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "sluice init"));
	assert_null(s);
	sl_store_options o;
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	assert_int_equal(sl_store_open(&s, sub, &o), SL_OK);
	sl_store_free(s);
	assert_int_equal(sl_store_open(&s, sub, NULL), SL_OK);
	sl_store_free(s);
	tu_rmtree(dir);
	free(dir);
}

static void test_namespaces(void **state)
{
	fixture *f = *state;
	sl_ns_info *list = NULL;
	size_t n = 0;
	assert_int_equal(sl_store_ns_create(f->s, "objects", SL_NS_IMMUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create(f->s, "accounts", SL_NS_MUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create(f->s, "objects", SL_NS_MUTABLE), SL_EEXISTS);
	assert_int_equal(sl_store_ns_create(f->s, "bad/name", SL_NS_MUTABLE), SL_EINVAL);
	assert_int_equal(sl_store_ns_list(f->s, &list, &n), SL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "accounts");
	assert_int_equal(list[0].kind, SL_NS_MUTABLE);
	assert_string_equal(list[1].name, "objects");
	assert_int_equal(list[1].target.size, 0);
	sl_digest empty;
	sl_mmr_root_digest(&empty, 0, NULL, 0);
	assert_memory_equal(list[1].target.root.bytes, empty.bytes, 32);
	sl_free(list);
	sl_ns_info info;
	assert_int_equal(sl_store_ns_info(f->s, "missing", &info), SL_ENOTFOUND);
	sl_batch *b = NULL;
	assert_int_equal(sl_batch_new(&b, f->s, "missing"), SL_ENOTFOUND);
	assert_null(b);
}

static void test_immutable_rules(void **state)
{
	fixture *f = *state;
	sl_batch *b;
	assert_int_equal(sl_store_ns_create(f->s, "obj", SL_NS_IMMUTABLE), SL_OK);
	put1(f->s, "obj", "a/1", "one", SL_OK);
	sl_target t1 = target_of(f->s, "obj");
	assert_int_equal(t1.size, 2); /* set + commit */
	assert_int_equal(t1.floor, 0);

	/* Same value again: no operation, same root. */
	put1(f->s, "obj", "a/1", "one", SL_OK);
	sl_target t2 = target_of(f->s, "obj");
	assert_int_equal(t2.size, t1.size);
	assert_memory_equal(t2.root.bytes, t1.root.bytes, 32);

	/* Another value: the whole batch fails and changes nothing. */
	assert_int_equal(sl_batch_new(&b, f->s, "obj"), SL_OK);
	assert_int_equal(sl_batch_put(b, "a/2", 3, "two", 3), SL_OK);
	assert_int_equal(sl_batch_put(b, "a/1", 3, "uno", 3), SL_OK);
	assert_int_equal(sl_batch_commit(b, NULL), SL_ECONFLICT);
	assert_non_null(strstr(sl_error_last()->message, "a/1"));
	assert_int_equal(sl_batch_count(b), 2); /* kept for the caller */
	sl_batch_free(b);
	sl_target t3 = target_of(f->s, "obj");
	assert_int_equal(t3.size, t1.size);
	assert_memory_equal(t3.root.bytes, t1.root.bytes, 32);
	expect_get(f->s, "obj", "a/1", "one");
	expect_get(f->s, "obj", "a/2", NULL);

	/* Deletes are refused in immutable namespaces. */
	assert_int_equal(sl_batch_new(&b, f->s, "obj"), SL_OK);
	assert_int_equal(sl_batch_del(b, "a/1", 3), SL_EINVAL);
	sl_batch_free(b);
	/* Invalid keys are refused at put. */
	assert_int_equal(sl_batch_new(&b, f->s, "obj"), SL_OK);
	assert_int_equal(sl_batch_put(b, "a//b", 4, "x", 1), SL_EINVAL);
	assert_int_equal(sl_batch_count(b), 0);
	sl_batch_free(b);
	expect_verified(f->s, "obj");
	expect_root_matches_log(f->s, "obj");
}

static void test_mutable_update_delete(void **state)
{
	fixture *f = *state;
	assert_int_equal(sl_store_ns_create(f->s, "kv", SL_NS_MUTABLE), SL_OK);
	put1(f->s, "kv", "k", "v1", SL_OK);
	put1(f->s, "kv", "k", "v2", SL_OK);
	expect_get(f->s, "kv", "k", "v2");
	del1(f->s, "kv", "k");
	expect_get(f->s, "kv", "k", NULL);
	sl_target before = target_of(f->s, "kv");
	del1(f->s, "kv", "k"); /* absent: nothing appended */
	sl_target after = target_of(f->s, "kv");
	assert_int_equal(after.size, before.size);
	put1(f->s, "kv", "k", "v3", SL_OK);
	expect_get(f->s, "kv", "k", "v3");
	expect_verified(f->s, "kv");
	expect_root_matches_log(f->s, "kv");
}

typedef struct floor_check {
	uint64_t floor;
	uint64_t min_loc;
} floor_check;

static int min_loc_cb(void *ctx, const sl_key_entry *e)
{
	floor_check *c = ctx;
	if (e->loc < c->min_loc)
		c->min_loc = e->loc;
	return 0;
}

static void test_floor_and_prune(void **state)
{
	fixture *f = *state;
	char key[16], value[32];
	assert_int_equal(sl_store_ns_create(f->s, "kv", SL_NS_MUTABLE), SL_OK);
	/* 50 commits overwriting 5 keys: most operations become inactive. */
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "k%d", i % 5);
		snprintf(value, sizeof(value), "value-%d", i);
		put1(f->s, "kv", key, value, SL_OK);
	}
	sl_target t = target_of(f->s, "kv");
	assert_true(t.floor > 50);
	floor_check c = {t.floor, UINT64_MAX};
	assert_int_equal(sl_store_list(f->s, "kv", "", 0, min_loc_cb, &c), SL_OK);
	assert_true(c.min_loc >= t.floor);
	expect_verified(f->s, "kv");

	uint64_t pruned = 0;
	assert_int_equal(sl_store_prune(f->s, "kv", &pruned), SL_OK);
	assert_int_equal(pruned, t.floor);
	assert_int_equal(sl_store_log(f->s, "kv", 0, 1, feed_mem, NULL), SL_EINVAL);
	expect_verified(f->s, "kv");
	for (int i = 45; i < 50; i++) {
		snprintf(key, sizeof(key), "k%d", i % 5);
		snprintf(value, sizeof(value), "value-%d", i);
		expect_get(f->s, "kv", key, value);
	}
	/* Writes and proofs keep working after pruning and a reopen. */
	reopen(f);
	put1(f->s, "kv", "k0", "after-prune", SL_OK);
	expect_verified(f->s, "kv");
	sl_key_proof p;
	sl_key_proof_init(&p);
	assert_int_equal(sl_store_prove_key(f->s, "kv", "k0", 2, &p), SL_OK);
	sl_bytes el = {p.element.data, p.element.len};
	assert_int_equal(sl_mmr_range_verify(&p.proof, p.loc, &el, 1, &p.target.root), SL_OK);
	sl_key_proof_free(&p);
}

static void test_persistence_and_handles(void **state)
{
	fixture *f = *state;
	char key[32];
	sl_store *other = NULL;
	assert_int_equal(sl_store_ns_create(f->s, "obj", SL_NS_IMMUTABLE), SL_OK);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "obj/%03d", i);
		put1(f->s, "obj", key, key, SL_OK);
	}
	sl_target t = target_of(f->s, "obj");
	reopen(f);
	sl_target t2 = target_of(f->s, "obj");
	assert_int_equal(t2.size, t.size);
	assert_memory_equal(t2.root.bytes, t.root.bytes, 32);

	/* Two handles writing in turn: each must notice the other's commits. */
	assert_int_equal(sl_store_open(&other, f->dir, NULL), SL_OK);
	for (int i = 100; i < 140; i++) {
		snprintf(key, sizeof(key), "obj/%03d", i);
		put1(i % 2 ? other : f->s, "obj", key, key, SL_OK);
	}
	sl_store_free(other);
	expect_verified(f->s, "obj");
	expect_root_matches_log(f->s, "obj");
}

/* The data version moves when another handle commits (in another process
 * too), and not for this handle's own commits or for reads. */
static void test_data_version(void **state)
{
	fixture *f = *state;
	sl_store *watcher = NULL;
	uint64_t v0, v1, v2, v3;

	assert_int_equal(sl_store_ns_create(f->s, "ns", SL_NS_MUTABLE), SL_OK);
	assert_int_equal(sl_store_open(&watcher, f->dir, NULL), SL_OK);
	assert_ok(sl_store_data_version(watcher, &v0));
	assert_ok(sl_store_data_version(watcher, &v1));
	assert_true(v1 == v0);
	put1(f->s, "ns", "k1", "v1", SL_OK);
	assert_ok(sl_store_data_version(watcher, &v1));
	assert_true(v1 != v0);
	/* Its own reads and commits do not move it. */
	target_of(watcher, "ns");
	put1(watcher, "ns", "k0", "v0", SL_OK);
	assert_ok(sl_store_data_version(watcher, &v2));
	assert_true(v2 == v1);
	/* A commit by another process does. */
	assert_int_equal(in_child(f->dir, "--child-writes"), 0);
	assert_ok(sl_store_data_version(watcher, &v3));
	assert_true(v3 != v2);
	sl_store_free(watcher);
}

/* Copies operations [from, from+n) of the log into bufs. */
typedef struct collect_ctx {
	sl_buf *bufs;
	uint64_t from;
} collect_ctx;

static int collect_cb(void *ctx, uint64_t loc, const sl_op *o, const uint8_t *e, size_t len)
{
	collect_ctx *c = ctx;
	(void)o;
	return sl_buf_set(&c->bufs[loc - c->from], e, len);
}

static void test_proofs(void **state)
{
	fixture *f = *state;
	char key[32];
	sl_key_proof p;
	sl_op op;
	assert_int_equal(sl_store_ns_create(f->s, "obj", SL_NS_IMMUTABLE), SL_OK);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k/%d", i);
		put1(f->s, "obj", key, "v", SL_OK);
	}
	sl_target past = target_of(f->s, "obj");
	for (int i = 30; i < 60; i++) {
		snprintf(key, sizeof(key), "k/%d", i);
		put1(f->s, "obj", key, "v", SL_OK);
	}
	sl_key_proof_init(&p);
	assert_int_equal(sl_store_prove_key(f->s, "obj", "k/7", 3, &p), SL_OK);
	assert_int_equal(sl_op_decode(&op, p.element.data, p.element.len), SL_OK);
	assert_int_equal(op.key_len, 3);
	assert_memory_equal(op.key, "k/7", 3);
	sl_bytes el = {p.element.data, p.element.len};
	assert_int_equal(p.proof.leaves, p.target.size);
	assert_int_equal(sl_mmr_range_verify(&p.proof, p.loc, &el, 1, &p.target.root), SL_OK);
	assert_int_equal(sl_mmr_range_verify(&p.proof, p.loc + 1, &el, 1, &p.target.root),
	                 SL_EVERIFY);
	assert_int_equal(sl_store_prove_key(f->s, "obj", "k/none", 6, &p), SL_ENOTFOUND);
	sl_key_proof_free(&p);

	/* A range proof at a past size verifies against the past root. */
	sl_mmr_proof rp = {0, 0, NULL};
	assert_int_equal(sl_store_range_proof(f->s, "obj", past.size, 4, 10, &rp), SL_OK);
	sl_buf els[6];
	sl_bytes ebytes[6];
	for (int i = 0; i < 6; i++)
		sl_buf_init(&els[i], 4096);
	collect_ctx cc = {els, 4};
	assert_int_equal(sl_store_log(f->s, "obj", 4, 6, collect_cb, &cc), SL_OK);
	for (int i = 0; i < 6; i++)
		ebytes[i].data = els[i].data, ebytes[i].len = els[i].len;
	assert_int_equal(sl_mmr_range_verify(&rp, 4, ebytes, 6, &past.root), SL_OK);
	sl_target now = target_of(f->s, "obj");
	assert_int_equal(sl_mmr_range_verify(&rp, 4, ebytes, 6, &now.root), SL_EVERIFY);
	assert_int_equal(sl_store_range_proof(f->s, "obj", now.size + 1, 0, 1, &rp), SL_EINVAL);
	sl_mmr_proof_free(&rp);
	for (int i = 0; i < 6; i++)
		sl_buf_free(&els[i]);
}

/* Change the database behind the store's back and expect verify to say so. */
static void tamper(fixture *f, const char *sql)
{
	sqlite3 *db;
	char path[4200];
	snprintf(path, sizeof(path), "%s/sluice.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("tamper: %s", err);
	assert_true(sqlite3_changes(db) > 0);
	sqlite3_close(db);
}

/* Keys k0..k6 in a mutable namespace, the state table flushed up to date,
 * then k0 updated once more (so the overlay is not empty). Even keys hold
 * small values (inline in their operation), odd keys 100-byte values (in
 * blobs): "k<n>" followed by '.' padding. */
static void build_tamper_fixture(fixture *f)
{
	char key[32], value[128];
	assert_int_equal(sl_store_ns_create(f->s, "kv", SL_NS_MUTABLE), SL_OK);
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%d", i % 7);
		memset(value, '.', sizeof(value));
		snprintf(value, sizeof(value), "%s", key);
		value[strlen(key)] = (i % 7) % 2 ? '.' : '\0';
		value[100] = '\0';
		put1(f->s, "kv", key, value, SL_OK);
		if (i == 34)
			assert_int_equal(sl_store_flush(f->s, "kv"), SL_OK);
	}
	expect_verified(f->s, "kv");
	sl_store_free(f->s);
	f->s = NULL;
}

static void expect_corrupt_after(fixture *f, const char *sql)
{
	build_tamper_fixture(f);
	tamper(f, sql);
	reopen(f);
	assert_int_equal(sl_store_verify(f->s, "kv", NULL), SL_ECORRUPT);
}

static void test_tamper_op(void **state)
{
	/* Flip the last byte of the last update's digest. */
	expect_corrupt_after(*state,
	                     "UPDATE ops SET element = substr(element, 1, length(element) - 1) "
	                     "|| x'00' WHERE id = (SELECT max(id) - 1 FROM ops)");
}

static void test_tamper_node(void **state)
{
	expect_corrupt_after(*state, "UPDATE mmr SET nodes = x'00' || substr(nodes, 2) "
	                             "WHERE id = (SELECT min(id) FROM mmr)");
}

static void test_tamper_state(void **state)
{
	expect_corrupt_after(*state, "DELETE FROM state WHERE key = CAST('k3' AS BLOB)");
}

static void test_tamper_blob_value(void **state)
{
	fixture *f = *state;
	expect_corrupt_after(f, "UPDATE blobs SET value = CAST('evil' AS BLOB) "
	                        "WHERE substr(value, 1, 3) = CAST('k3.' AS BLOB)");
	sl_buf v = SL_BUF_INIT(1024);
	assert_int_equal(sl_store_get(f->s, "kv", "k3", 2, &v, NULL), SL_ECORRUPT);
	sl_buf_free(&v);
}

static void test_tamper_inline_value(void **state)
{
	fixture *f = *state;
	expect_corrupt_after(f, "UPDATE ops SET value = CAST('k9' AS BLOB) "
	                        "WHERE value = CAST('k2' AS BLOB)");
	sl_buf v = SL_BUF_INIT(1024);
	assert_int_equal(sl_store_get(f->s, "kv", "k2", 2, &v, NULL), SL_ECORRUPT);
	sl_buf_free(&v);
}

static void test_tamper_state_loc(void **state)
{
	/* Claim the state table is current up to the end: it is not. */
	expect_corrupt_after(*state, "UPDATE namespaces SET state_loc = size");
}

static void test_tamper_root(void **state)
{
	expect_corrupt_after(*state, "UPDATE namespaces SET root = zeroblob(32)");
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void test_damaged_files(void **state)
{
	fixture *f = *state;
	char path[4200], key[64];
	sl_store *s = NULL;
	assert_int_equal(sl_store_ns_create(f->s, "obj", SL_NS_IMMUTABLE), SL_OK);
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "obj/%04d/padding-padding-padding", i);
		put1(f->s, "obj", key, key, SL_OK);
	}
	sl_store_free(f->s);
	f->s = NULL;
	snprintf(path, sizeof(path), "%s/sluice.db", f->dir);
	/* Checkpoint the WAL into the file so truncation is visible. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);

	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	long size = ftell(fp);
	fclose(fp);
	assert_int_equal(truncate(path, size / 2), 0);
	assert_int_equal(sl_store_open(&s, f->dir, NULL), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "truncated"));

	const char *garbage = "not a database at all, just some text that is long enough to "
	                      "pass the first length check of one hundred bytes";
	write_file(path, garbage, strlen(garbage));
	assert_int_equal(sl_store_open(&s, f->dir, NULL), SL_ECORRUPT);
	write_file(path, "short", 5);
	assert_int_equal(sl_store_open(&s, f->dir, NULL), SL_ECORRUPT);

	/* A SQLite database that is not a sluice store. */
	unlink(path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sl_store_open(&s, f->dir, NULL), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "not a sluice store"));
	assert_null(s);
}

/* The worked example of docs/protocol.md: an immutable namespace after
 * `put a/b hello`, computed independently of this code base. */
static void test_protocol_vector(void **state)
{
	fixture *f = *state;
	sl_digest expect;
	assert_int_equal(sl_store_ns_create(f->s, "doc", SL_NS_IMMUTABLE), SL_OK);
	put1(f->s, "doc", "a/b", "hello", SL_OK);
	sl_target t = target_of(f->s, "doc");
	assert_int_equal(t.size, 2);
	assert_int_equal(sl_digest_from_hex(&expect,
	                                    "5fcd37e0069bf2a7206dd68b2628003d017911e485d6f3"
	                                    "d90488f90870e3001f"),
	                 SL_OK);
	assert_memory_equal(t.root.bytes, expect.bytes, 32);
}

/* Random operations on a mutable namespace against a model. */
#define MODEL_KEYS 40

typedef struct list_collect {
	char keys[MODEL_KEYS][16];
	size_t n;
	int sorted;
} list_collect;

static int list_collect_cb(void *ctx, const sl_key_entry *e)
{
	list_collect *c = ctx;
	if (c->n == MODEL_KEYS || e->key_len >= sizeof(c->keys[0]))
		return SL_EINTERNAL;
	memcpy(c->keys[c->n], e->key, e->key_len);
	c->keys[c->n][e->key_len] = '\0';
	if (c->n > 0 && strcmp(c->keys[c->n - 1], c->keys[c->n]) >= 0)
		c->sorted = 0;
	c->n++;
	return 0;
}

/* list and the key count must agree with the model. */
static void expect_listing(sl_store *s, const int *live)
{
	list_collect c = {.n = 0, .sorted = 1};
	size_t n_live = 0;
	sl_ns_info info;
	assert_int_equal(sl_store_list(s, "kv", "key/", 4, list_collect_cb, &c), SL_OK);
	assert_true(c.sorted);
	for (int k = 0; k < MODEL_KEYS; k++)
		n_live += (size_t)live[k];
	assert_int_equal(c.n, n_live);
	for (size_t i = 0; i < c.n; i++)
		assert_true(live[atoi(c.keys[i] + 4)]);
	assert_int_equal(sl_store_ns_info(s, "kv", &info), SL_OK);
	assert_int_equal(info.keys, n_live);
}

/* Reopen with a small random flush threshold, so state-table flushes land
 * between and inside the commits of the random test. */
static void reopen_flushing(fixture *f, tu_rng *rng)
{
	sl_store_options o;
	sl_store_free(f->s);
	sl_store_options_init(&o);
	o.durable = 0;
	o.state_flush_ops = 1 + tu_rng_below(rng, 60);
	assert_int_equal(sl_store_open(&f->s, f->dir, &o), SL_OK);
}

static void test_random_against_model(void **state)
{
	fixture *f = *state;
	tu_rng rng = tu_rng_seeded("test_random_against_model");
	char model[MODEL_KEYS][128];
	int live[MODEL_KEYS] = {0};
	char key[16];
	assert_int_equal(sl_store_ns_create(f->s, "kv", SL_NS_MUTABLE), SL_OK);
	for (int commit = 0; commit < 120; commit++) {
		sl_batch *b;
		assert_int_equal(sl_batch_new(&b, f->s, "kv"), SL_OK);
		int n = 1 + (int)tu_rng_below(&rng, 12);
		for (int i = 0; i < n; i++) {
			int k = (int)tu_rng_below(&rng, MODEL_KEYS);
			snprintf(key, sizeof(key), "key/%02d", k);
			if (tu_rng_below(&rng, 4) == 0) {
				assert_int_equal(sl_batch_del(b, key, strlen(key)), SL_OK);
				live[k] = 0;
			} else {
				int n_pad = tu_rng_below(&rng, 3) == 0 ? 100 : 0;
				snprintf(model[k], sizeof(model[k]), "v%llu%.*s",
				         (unsigned long long)tu_rng_next(&rng), n_pad,
				         "........................................................."
				         "...........................................");
				assert_int_equal(sl_batch_put(b, key, strlen(key), model[k],
				                              strlen(model[k])),
				                 SL_OK);
				live[k] = 1;
			}
		}
		assert_int_equal(sl_batch_commit(b, NULL), SL_OK);
		sl_batch_free(b);
		if (commit % 10 == 9)
			expect_listing(f->s, live);
		if (commit % 40 == 39) {
			reopen_flushing(f, &rng);
			if (tu_rng_below(&rng, 2))
				assert_int_equal(sl_store_prune(f->s, "kv", NULL), SL_OK);
			expect_verified(f->s, "kv");
		}
	}
	for (int k = 0; k < MODEL_KEYS; k++) {
		snprintf(key, sizeof(key), "key/%02d", k);
		expect_get(f->s, "kv", key, live[k] ? model[k] : NULL);
	}
	expect_verified(f->s, "kv");
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child-writes") == 0)
		return child_writes(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--child-reads") == 0)
		return child_reads(argv[2]);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_requires_init),
	        cmocka_unit_test_setup_teardown(test_namespaces, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_immutable_rules, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_mutable_update_delete, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_floor_and_prune, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_persistence_and_handles, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_second_handle_keeps_locks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_data_version, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_proofs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_op, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_node, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_state, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_blob_value, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_inline_value, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_state_loc, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tamper_root, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_files, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_protocol_vector, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
