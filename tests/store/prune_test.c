/*
 * Pruning and the values it collects (src/store/values.c, vacuum.c, and
 * sl_store_prune in verify.c):
 *   test_prune_collects_values  large values overwritten again and again in
 *                               a mutable namespace, one value shared by
 *                               two namespaces and three keys: a prune
 *                               deletes exactly the values no remaining
 *                               operation refers to; live keys read back,
 *                               verify passes, proofs work; the shared
 *                               value goes only when its last reference
 *                               does;
 *   test_prune_keeps_dag_values a value a dag entry sets stays when the
 *                               log that also used it is pruned; verify
 *                               checks dag_values;
 *   test_prune_refusals         immutable, dag and unknown namespaces:
 *                               errors saying why, nothing changed;
 *   test_verify_catches         a missing value of an inactive operation
 *                               and a value nothing refers to;
 *   test_free_pages             pages freed by a prune are reused (the
 *                               database stops growing under the same
 *                               writes) and sl_store_vacuum gives them
 *                               back;
 *   test_upgrade_from_format_3  the upgrade indexes the values, fills
 *                               dag_values and deletes what earlier
 *                               prunes left;
 *   test_lookups_use_the_index  the queries of a prune find references
 *                               through ops_value, not by a scan.
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include "dag_testutil.h"

#include "store/store_internal.h"

#define NS_KEYS 5

/* A value of len bytes that differs for each (tag, n). */
static void make_value(uint8_t *out, size_t len, const char *tag, unsigned n)
{
	char head[64];
	int k = snprintf(head, sizeof(head), "%s #%u ", tag, n);
	for (size_t i = 0; i < len; i++)
		out[i] = i < (size_t)k ? (uint8_t)head[i] : (uint8_t)('a' + (i * 7 + n) % 26);
}

static void put_bytes(sl_store *s, const char *ns, const char *k, const uint8_t *v, size_t len)
{
	sl_batch *b;
	assert_ok(sl_batch_new(&b, s, ns));
	assert_ok(sl_batch_put(b, k, strlen(k), v, len));
	assert_ok(sl_batch_commit(b, NULL));
	sl_batch_free(b);
}

static void expect_bytes(sl_store *s, const char *ns, const char *k, const uint8_t *v, size_t len)
{
	sl_buf got = SL_BUF_INIT(1 << 20);
	assert_ok(sl_store_get(s, ns, k, strlen(k), &got, NULL));
	assert_int_equal(got.len, len);
	assert_memory_equal(got.data, v, len);
	sl_buf_free(&got);
}

/* One integer from sql on DIR/sluice.db, read through a connection of
 * its own (the store may be open). */
static int64_t db_int(const char *dir, const char *sql)
{
	char path[4200];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int64_t blob_rows(const char *dir)
{
	return db_int(dir, "SELECT count(*) FROM blobs");
}

static int blob_held(const char *dir, const sl_digest *d)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM blobs WHERE digest = X'%s'",
	         sl_digest_to_hex(d).s);
	return db_int(dir, sql) == 1;
}

/* The digests of the values in blobs that the remaining operations of a
 * namespace refer to. */
typedef struct digest_set {
	sl_digest d[4096];
	size_t n;
} digest_set;

static void set_add(digest_set *set, const sl_digest *d)
{
	for (size_t i = 0; i < set->n; i++)
		if (sl_digest_eq(&set->d[i], d))
			return;
	assert_true(set->n < sizeof(set->d) / sizeof(set->d[0]));
	set->d[set->n++] = *d;
}

static int set_has(const digest_set *set, const sl_digest *d)
{
	for (size_t i = 0; i < set->n; i++)
		if (sl_digest_eq(&set->d[i], d))
			return 1;
	return 0;
}

static int add_large(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *el, size_t len)
{
	(void)loc, (void)el, (void)len;
	if ((op->type == SL_OP_SET || op->type == SL_OP_UPDATE) &&
	    op->value_len > SL_INLINE_VALUE_MAX)
		set_add(ctx, &op->digest);
	return 0;
}

static void referenced_by_log(sl_store *s, const char *ns, digest_set *set)
{
	sl_ns_info info;
	assert_ok(sl_store_ns_info(s, ns, &info));
	assert_ok(sl_store_log(s, ns, info.pruned, 0, add_large, set));
}

static void expect_verified(sl_store *s, const char *ns)
{
	sl_verify_report r;
	if (sl_store_verify(s, ns, &r) != SL_OK)
		fail_msg("verify %s: %s", ns, sl_error_last()->message);
}

static sl_values_report expect_values_verified(sl_store *s)
{
	sl_values_report r;
	if (sl_store_verify_values(s, &r) != SL_OK)
		fail_msg("verify values: %s", sl_error_last()->message);
	assert_int_equal(r.checked, 1);
	return r;
}

static void expect_proof(sl_store *s, const char *ns, const char *k)
{
	sl_key_proof p;
	sl_key_proof_init(&p);
	assert_ok(sl_store_prove_key(s, ns, k, strlen(k), &p));
	sl_bytes el = {p.element.data, p.element.len};
	assert_ok(sl_mmr_range_verify(&p.proof, p.loc, &el, 1, &p.target.root));
	sl_key_proof_free(&p);
}

/* ------------------------------------------------------------- collect */

typedef struct model {
	uint8_t value[NS_KEYS][300];
	size_t len[NS_KEYS];
} model;

/* rounds overwrites of keys k0..k4 of ns with fresh values of 65..300
 * bytes (all in blobs); every digest written goes to written. */
static void overwrite_rounds(sl_store *s, const char *ns, model *m, int rounds, unsigned *serial,
                             digest_set *written)
{
	char name[16];
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < NS_KEYS; k++) {
			sl_digest d;
			snprintf(name, sizeof(name), "k%d", k);
			m->len[k] = SL_INLINE_VALUE_MAX + 1 + tu_rng_below(&rng, 236);
			make_value(m->value[k], m->len[k], ns, (*serial)++);
			put_bytes(s, ns, name, m->value[k], m->len[k]);
			sl_sha256(&d, m->value[k], m->len[k]);
			set_add(written, &d);
		}
	}
}

static void expect_model(sl_store *s, const char *ns, const model *m)
{
	char name[16];
	for (int k = 0; k < NS_KEYS; k++) {
		snprintf(name, sizeof(name), "k%d", k);
		expect_bytes(s, ns, name, m->value[k], m->len[k]);
		expect_proof(s, ns, name);
	}
}

/* blobs holds exactly the values the remaining operations of a and b use. */
static void expect_blobs_exactly_referenced(const char *dir, sl_store *s)
{
	digest_set *refs = calloc(1, sizeof(*refs));
	assert_non_null(refs);
	referenced_by_log(s, "a", refs);
	referenced_by_log(s, "b", refs);
	assert_int_equal(blob_rows(dir), refs->n);
	for (size_t i = 0; i < refs->n; i++)
		assert_true(blob_held(dir, &refs->d[i]));
	free(refs);
}

static void test_prune_collects_values(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	digest_set *written = calloc(1, sizeof(*written)), *in_a = calloc(1, sizeof(*in_a));
	model ma, mb;
	uint8_t shared[300], other[200], small[10] = "tiny";
	sl_digest shared_d;
	unsigned serial = 0;
	sl_prune_report rep;
	sl_ns_info info;
	(void)state;

	rng = tu_rng_seeded("test_prune_collects_values");
	assert_non_null(written);
	assert_non_null(in_a);
	assert_ok(sl_store_ns_create(s, "a", SL_NS_MUTABLE));
	assert_ok(sl_store_ns_create(s, "b", SL_NS_MUTABLE));

	/* One value under three keys in two namespaces, and a small one. */
	make_value(shared, sizeof(shared), "shared", 0);
	sl_sha256(&shared_d, shared, sizeof(shared));
	put_bytes(s, "a", "shared/1", shared, sizeof(shared));
	put_bytes(s, "a", "shared/2", shared, sizeof(shared));
	put_bytes(s, "b", "shared", shared, sizeof(shared));
	put_bytes(s, "a", "small", small, 4);
	overwrite_rounds(s, "a", &ma, 10, &serial, written);
	overwrite_rounds(s, "b", &mb, 2, &serial, written);
	/* a lets go of the shared value, and moves its floor past that. */
	make_value(other, sizeof(other), "other", 0);
	put_bytes(s, "a", "shared/1", other, sizeof(other));
	put_bytes(s, "a", "shared/2", other, sizeof(other));
	put_bytes(s, "a", "small", small, 5);
	overwrite_rounds(s, "a", &ma, 10, &serial, written);
	assert_int_equal(blob_rows(dir), written->n + 2);

	assert_ok(sl_store_ns_info(s, "a", &info));
	assert_ok(sl_store_prune_report(s, "a", &rep));
	assert_int_equal(rep.from, 0);
	assert_int_equal(rep.to, info.target.floor);
	assert_true(rep.to > 0);
	expect_blobs_exactly_referenced(dir, s);
	assert_int_equal(blob_rows(dir), written->n + 2 - rep.values);
	/* Most of a's values went; none of b's did. */
	assert_true(rep.values >= written->n / 2);
	assert_true(rep.value_bytes > rep.values * SL_INLINE_VALUE_MAX);
	referenced_by_log(s, "a", in_a);
	assert_false(set_has(in_a, &shared_d)); /* a holds no reference to it... */
	assert_true(blob_held(dir, &shared_d)); /* ...b does */

	expect_model(s, "a", &ma);
	expect_model(s, "b", &mb);
	expect_bytes(s, "a", "shared/2", other, sizeof(other));
	expect_bytes(s, "a", "small", small, 5);
	expect_bytes(s, "b", "shared", shared, sizeof(shared));
	expect_verified(s, "a");
	expect_verified(s, "b");
	sl_values_report vr = expect_values_verified(s);
	assert_int_equal(vr.values, blob_rows(dir));
	assert_int_equal(vr.bytes, db_int(dir, "SELECT sum(length(value)) FROM blobs"));

	/* A second prune with the floor where it was deletes nothing. */
	assert_ok(sl_store_prune_report(s, "a", &rep));
	assert_int_equal(rep.from, rep.to);
	assert_int_equal(rep.values, 0);

	/* b lets go of it too: once b's floor passes it, its prune deletes it. */
	put_bytes(s, "b", "shared", other, sizeof(other));
	overwrite_rounds(s, "b", &mb, 10, &serial, written);
	assert_ok(sl_store_prune_report(s, "b", &rep));
	assert_true(rep.values > 0);
	expect_blobs_exactly_referenced(dir, s);
	assert_false(blob_held(dir, &shared_d));
	/* The value of a's and b's live keys "shared/1", "shared/2", "shared". */
	sl_digest other_d;
	sl_sha256(&other_d, other, sizeof(other));
	assert_true(blob_held(dir, &other_d));

	/* Writes, proofs and verify go on after a reopen. */
	sl_store_free(s);
	s = open_store(dir, 0);
	expect_model(s, "a", &ma);
	expect_model(s, "b", &mb);
	overwrite_rounds(s, "a", &ma, 2, &serial, written);
	expect_model(s, "a", &ma);
	expect_verified(s, "a");
	expect_verified(s, "b");
	expect_values_verified(s);

	free(written);
	free(in_a);
	drop_store(s, dir);
}

/* ------------------------------------------------------------- dag values */

static void test_prune_keeps_dag_values(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	char large[120], sql[200];
	uint8_t v[100];
	sl_prune_report rep;
	(void)state;

	memset(large, 'L', sizeof(large) - 1);
	large[sizeof(large) - 1] = '\0';
	assert_ok(sl_dag_create(s, "d", admin.sk, NULL));
	put(s, "d", &admin, "doc", large);
	put(s, "d", &admin, "note", "small dag values are in blobs too");
	/* The same value in a log, overwritten until its floor passes it. */
	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	put_bytes(s, "m", "doc", (const uint8_t *)large, strlen(large));
	for (unsigned i = 0; i < 20; i++) {
		make_value(v, sizeof(v), "m", i);
		put_bytes(s, "m", "doc", v, sizeof(v));
	}
	assert_int_equal(db_int(dir, "SELECT count(*) FROM dag_values"), 2);
	assert_ok(sl_store_prune_report(s, "m", &rep));
	assert_true(rep.values > 0);
	sl_digest large_d;
	sl_sha256(&large_d, large, strlen(large));
	assert_true(blob_held(dir, &large_d));
	check_value(s, "d", "doc", large);
	check_value(s, "d", "note", "small dag values are in blobs too");
	expect_verified(s, "d");
	expect_verified(s, "m");
	sl_values_report vr = expect_values_verified(s);
	assert_int_equal(vr.references,
	                 2 + db_int(dir, "SELECT count(*) FROM ops WHERE " STORE_OP_BLOB_WHERE));
	sl_store_free(s);

	/* dag_values is checked like the other tables the entries make. */
	snprintf(sql, sizeof(sql), "DELETE FROM dag_values WHERE digest = X'%s'",
	         sl_digest_to_hex(&large_d).s);
	assert_int_equal(tu_sql(dir, sql), 1);
	s = open_store(dir, 0);
	assert_int_equal(sl_store_verify(s, "d", NULL), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "dag_values"));
	values_clear();
	drop_store(s, dir);
}

/* ------------------------------------------------------------- refusals */

static void test_prune_refusals(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	uint8_t v[100];
	sl_ns_info before, after;
	sl_prune_report rep;
	(void)state;

	assert_ok(sl_store_ns_create(s, "im", SL_NS_IMMUTABLE));
	for (unsigned i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "k%u", i);
		make_value(v, sizeof(v), "im", i);
		put_bytes(s, "im", name, v, sizeof(v));
	}
	assert_ok(sl_dag_create(s, "d", admin.sk, NULL));
	int64_t blobs = blob_rows(dir);
	assert_ok(sl_store_ns_info(s, "im", &before));

	assert_int_equal(sl_store_prune_report(s, "im", &rep), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "immutable"));
	assert_non_null(strstr(sl_error_last()->message, "nothing to prune"));
	assert_int_equal(sl_store_prune(s, "im", NULL), SL_EINVAL);
	assert_int_equal(sl_store_prune_report(s, "d", &rep), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "dag namespace"));
	assert_int_equal(sl_store_prune_report(s, "nosuch", &rep), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "nosuch"));
	assert_int_equal(sl_store_prune_report(s, "bad name!", &rep), SL_EINVAL);

	assert_ok(sl_store_ns_info(s, "im", &after));
	assert_int_equal(after.target.size, before.target.size);
	assert_int_equal(after.pruned, 0);
	assert_int_equal(blob_rows(dir), blobs);
	expect_verified(s, "im");
	drop_store(s, dir);
}

/* ---------------------------------------------------------------- verify */

static void test_verify_catches(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	uint8_t v[100];
	sl_digest first;
	char sql[400];
	(void)state;

	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	/* Two versions of k: the first is inactive but above the floor, in
	 * the log sync serves, so its value must still be there. */
	make_value(v, sizeof(v), "m", 1);
	sl_sha256(&first, v, sizeof(v));
	put_bytes(s, "m", "k", v, sizeof(v));
	make_value(v, sizeof(v), "m", 2);
	put_bytes(s, "m", "k", v, sizeof(v));
	expect_verified(s, "m");
	expect_values_verified(s);
	sl_store_free(s);

	snprintf(sql, sizeof(sql), "DELETE FROM blobs WHERE digest = X'%s'",
	         sl_digest_to_hex(&first).s);
	assert_int_equal(tu_sql(dir, sql), 1);
	s = open_store(dir, 0);
	assert_int_equal(sl_store_verify(s, "m", NULL), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "is missing"));
	assert_int_equal(sl_store_verify_values(s, NULL), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "missing"));
	sl_store_free(s);

	/* Put it back, and add a value nothing refers to. */
	make_value(v, sizeof(v), "m", 1);
	snprintf(sql, sizeof(sql), "INSERT INTO blobs VALUES (X'%s', CAST('%.*s' AS BLOB))",
	         sl_digest_to_hex(&first).s, (int)sizeof(v), (const char *)v);
	assert_int_equal(tu_sql(dir, sql), 1);
	assert_int_equal(tu_sql(dir, "INSERT INTO blobs VALUES (zeroblob(32), "
	                             "CAST('nobody refers to me' AS BLOB))"),
	                 1);
	s = open_store(dir, 0);
	expect_verified(s, "m");
	assert_int_equal(sl_store_verify_values(s, NULL), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "no operation or dag entry"));
	drop_store(s, dir);
}

/* ------------------------------------------------------------ free pages */

/* 40 keys, each overwritten 4 times with values of about a page, then a
 * prune. */
static void cycle(sl_store *s, unsigned *serial)
{
	uint8_t v[3000];
	char name[16];
	for (int r = 0; r < 4; r++) {
		sl_batch *b;
		assert_ok(sl_batch_new(&b, s, "m"));
		for (int k = 0; k < 40; k++) {
			snprintf(name, sizeof(name), "k%02d", k);
			make_value(v, sizeof(v), "cycle", (*serial)++);
			assert_ok(sl_batch_put(b, name, strlen(name), v, sizeof(v)));
		}
		assert_ok(sl_batch_commit(b, NULL));
		sl_batch_free(b);
	}
	assert_ok(sl_store_prune_report(s, "m", NULL));
}

static void test_free_pages(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	sl_store_space start, first, second, third, vacuumed;
	unsigned serial = 0;
	int checkpointed = 0;
	(void)state;

	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	assert_ok(sl_store_space_get(s, &start));
	assert_true(start.page_size >= 512);
	cycle(s, &serial);
	assert_ok(sl_store_space_get(s, &first));
	assert_true(first.free_pages > 0); /* what the prune freed */
	cycle(s, &serial);
	assert_ok(sl_store_space_get(s, &second));
	cycle(s, &serial);
	assert_ok(sl_store_space_get(s, &third));
	/* The same writes again take the freed pages: the database grows by
	 * a small part of what the first cycle took (the MMR is kept). */
	uint64_t grown_first = first.pages - start.pages;
	assert_true(grown_first > 100);
	assert_true(third.pages - second.pages < grown_first / 5);
	assert_true(third.free_pages > 0);

	assert_ok(sl_store_vacuum(s, &checkpointed));
	assert_int_equal(checkpointed, 1);
	assert_ok(sl_store_space_get(s, &vacuumed));
	assert_int_equal(vacuumed.free_pages, 0);
	assert_true(vacuumed.pages <= third.pages - third.free_pages);
	assert_int_equal(vacuumed.file_bytes, vacuumed.pages * vacuumed.page_size);
	assert_int_equal(vacuumed.wal_bytes, 0);
	assert_true(vacuumed.file_bytes + vacuumed.wal_bytes < third.file_bytes + third.wal_bytes);
	expect_verified(s, "m");
	expect_values_verified(s);
	/* And the store goes on. */
	cycle(s, &serial);
	expect_verified(s, "m");

	/* A reader of an older snapshot holds the checkpoint back: the
	 * vacuum is done, and the file shrinks once the reader is gone. */
	sl_store *reader = open_store(dir, 0), *quick;
	sl_store_options o;
	sl_items *it;
	sl_store_options_init(&o);
	o.busy_timeout_ms = 50;
	assert_ok(sl_store_open(&quick, dir, &o));
	assert_ok(sl_store_items_open(reader, "m", &it));
	cycle(quick, &serial);
	assert_ok(sl_store_vacuum(quick, &checkpointed));
	assert_int_equal(checkpointed, 0);
	assert_ok(sl_store_space_get(quick, &vacuumed));
	assert_int_equal(vacuumed.free_pages, 0);
	assert_true(vacuumed.wal_bytes > 0);
	sl_items_close(it);
	assert_ok(sl_store_vacuum(quick, &checkpointed));
	assert_int_equal(checkpointed, 1);
	assert_ok(sl_store_space_get(quick, &vacuumed));
	assert_int_equal(vacuumed.wal_bytes, 0);
	sl_store_free(reader);
	sl_store_free(quick);
	expect_verified(s, "m");

	/* A read-only handle may not vacuum. */
	sl_store *ro = open_store(dir, SL_STORE_READONLY);
	assert_int_equal(sl_store_vacuum(ro, NULL), SL_EINVAL);
	sl_store_free(ro);
	drop_store(s, dir);
}

/* ---------------------------------------------------------------- upgrade */

static void test_upgrade_from_format_3(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	char large[100];
	uint8_t v[100];
	sl_values_report vr;
	sl_prune_report rep;
	(void)state;

	memset(large, 'D', sizeof(large) - 1);
	large[sizeof(large) - 1] = '\0';
	assert_ok(sl_dag_create(s, "d", admin.sk, NULL));
	put(s, "d", &admin, "doc", large);
	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	put_bytes(s, "m", "doc", (const uint8_t *)large, strlen(large));
	for (unsigned i = 0; i < 10; i++) {
		make_value(v, sizeof(v), "m", i);
		put_bytes(s, "m", "k", v, sizeof(v));
	}
	int64_t referenced = blob_rows(dir);
	sl_store_free(s);
	/* What a sluice before format 4 wrote, with a value its prune left. */
	assert_true(tu_sql(dir, "DROP INDEX ops_value; DROP TABLE dag_values; INSERT INTO blobs "
	                        "VALUES (zeroblob(32), CAST('left by a prune' AS BLOB)); "
	                        "PRAGMA user_version = 3;") >= 0);

	/* Read-only: everything reads, the store-wide check is skipped. */
	s = open_store(dir, SL_STORE_READONLY);
	expect_verified(s, "m");
	expect_verified(s, "d");
	assert_ok(sl_store_verify_values(s, &vr));
	assert_int_equal(vr.checked, 0);
	sl_store_free(s);
	assert_int_equal(db_int(dir, "PRAGMA user_version"), 3);

	/* Opened for writing, it is upgraded. */
	s = open_store(dir, 0);
	assert_int_equal(db_int(dir, "PRAGMA user_version"), SL_SCHEMA_VERSION);
	assert_int_equal(blob_rows(dir), referenced);
	assert_int_equal(db_int(dir, "SELECT count(*) FROM dag_values"), 1);
	expect_verified(s, "d");
	expect_values_verified(s);
	/* The dag entry keeps its value when m lets go of it. */
	put_bytes(s, "m", "doc", v, sizeof(v));
	for (unsigned i = 10; i < 20; i++) {
		make_value(v, sizeof(v), "m", i);
		put_bytes(s, "m", "k", v, sizeof(v));
	}
	assert_ok(sl_store_prune_report(s, "m", &rep));
	assert_true(rep.values > 0);
	check_value(s, "d", "doc", large);
	expect_verified(s, "m");
	expect_verified(s, "d");
	expect_values_verified(s);
	values_clear();
	drop_store(s, dir);
}

/* ----------------------------------------------------------------- cost */

static void expect_plan(const char *dir, const char *sql, const char *want)
{
	char path[4200], query[600], plan[1024] = "";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	snprintf(query, sizeof(query), "EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, query, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", query, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = strlen(plan);
		snprintf(plan + len, sizeof(plan) - len, "%s; ",
		         (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (!strstr(plan, want))
		fail_msg("%s: plan '%s' lacks '%s'", sql, plan, want);
}

static void test_lookups_use_the_index(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	(void)state;

	sl_store_free(s);
	expect_plan(dir,
	            "SELECT 1 FROM ops WHERE " STORE_OP_BLOB_DIGEST
	            " = ?1 AND " STORE_OP_BLOB_WHERE,
	            "INDEX ops_value (<expr>=?)");
	expect_plan(dir, "SELECT 1 FROM dag_values WHERE digest = ?1", "PRIMARY KEY (digest=?)");
	expect_plan(dir,
	            "SELECT " STORE_OP_BLOB_DIGEST
	            " FROM ops WHERE id >= ?1 AND id < ?2 AND " STORE_OP_BLOB_WHERE,
	            "INTEGER PRIMARY KEY (rowid>? AND rowid<?)");
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_prune_collects_values),
	        cmocka_unit_test(test_prune_keeps_dag_values),
	        cmocka_unit_test(test_prune_refusals),
	        cmocka_unit_test(test_verify_catches),
	        cmocka_unit_test(test_free_pages),
	        cmocka_unit_test(test_upgrade_from_format_3),
	        cmocka_unit_test(test_lookups_use_the_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
