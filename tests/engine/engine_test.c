/*
 * The engine in one process, on a real store namespace as L3, wrapped in
 * a tier that can be made to fail, to hang or to refuse rows on demand:
 * versions, read-your-writes, a delete cancelling a pending write, every
 * acknowledgement level, replay after a restart with L3 down, refused rows
 * retried then parked (and kept across a restart), backpressure with
 * nothing acknowledged lost, dirty entries never evicted under a small L1
 * budget, the filter (snapshot, rebuild, misses answered without L3), and
 * bad input changing nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "sluice/store.h"
#include "testutil.h"

#define NS "engine"

/* ---------------------------------------------------------- a faulty tier */

typedef struct faulty {
	sl_tier inner;
	atomic_int down;          /* write and get fail with SL_EIO */
	atomic_int hold;          /* write waits while set */
	atomic_int writes;        /* write calls that reached the inner tier */
	atomic_int calls;         /* write and scan calls made, failed or not */
	atomic_int get_calls;     /* get calls made, failed or not */
	const char *refuse;       /* rows whose key starts with it are refused */
	const char *refuse_value; /* and rows whose value starts with it */
} faulty;

static faulty *g_faulty;
static atomic_int g_position_fails; /* position fails this many more times */
static atomic_int g_position_calls;

static int f_write(void *impl, sl_tier_row *rows, size_t n)
{
	faulty *f = impl;
	atomic_fetch_add(&f->calls, 1);
	while (atomic_load(&f->hold))
		sl_sleep_ms(1);
	if (atomic_load(&f->down))
		return sl_error_set(SL_EIO, "test: L3 is down");
	/* refused rows go around the inner tier */
	sl_tier_row *pass = calloc(n ? n : 1, sizeof(*pass));
	size_t *idx = calloc(n ? n : 1, sizeof(*idx)), m = 0;
	for (size_t i = 0; i < n; i++) {
		if ((f->refuse && rows[i].key_len >= strlen(f->refuse) &&
		     memcmp(rows[i].key, f->refuse, strlen(f->refuse)) == 0) ||
		    (f->refuse_value && rows[i].value_len >= strlen(f->refuse_value) &&
		     memcmp(rows[i].value, f->refuse_value, strlen(f->refuse_value)) == 0)) {
			rows[i].rc = SL_EINVAL;
			snprintf(rows[i].error, sizeof(rows[i].error), "test: refused");
			continue;
		}
		pass[m] = rows[i];
		idx[m++] = i;
	}
	int rc = m ? f->inner.ops->write(f->inner.impl, pass, m) : SL_OK;
	for (size_t k = 0; rc == SL_OK && k < m; k++)
		rows[idx[k]] = pass[k];
	free(pass);
	free(idx);
	atomic_fetch_add(&f->writes, 1);
	return rc;
}

static int f_get(void *impl, const char *key, size_t len, sl_buf *value, uint64_t *version,
                 int *deleted)
{
	faulty *f = impl;
	atomic_fetch_add(&f->get_calls, 1);
	if (atomic_load(&f->down))
		return sl_error_set(SL_EIO, "test: L3 is down");
	return f->inner.ops->get(f->inner.impl, key, len, value, version, deleted);
}

static int f_scan(void *impl, const char *after, size_t after_len, size_t limit, sl_tier_key_fn cb,
                  void *ctx, size_t *n)
{
	faulty *f = impl;
	atomic_fetch_add(&f->calls, 1);
	if (atomic_load(&f->down))
		return sl_error_set(SL_EIO, "test: L3 is down");
	return f->inner.ops->scan_live(f->inner.impl, after, after_len, limit, cb, ctx, n);
}

static int f_position(void *impl, sl_digest *out)
{
	faulty *f = impl;
	atomic_fetch_add(&g_position_calls, 1);
	if (atomic_load(&g_position_fails) > 0) {
		atomic_fetch_sub(&g_position_fails, 1);
		return sl_error_set(SL_EIO, "test: L3 is not up yet");
	}
	return f->inner.ops->position(f->inner.impl, out);
}

static void f_close(void *impl)
{
	faulty *f = impl;
	f->inner.ops->close(f->inner.impl);
	free(f);
	if (g_faulty == f)
		g_faulty = NULL;
}

static const sl_tier_ops faulty_ops = {.name = "faulty",
                                       .write = f_write,
                                       .get = f_get,
                                       .scan_live = f_scan,
                                       .position = f_position,
                                       .close = f_close};

/* ------------------------------------------------------------- fixture */

typedef struct fx {
	char *dir;
	char wal[4200], store[4200];
	sl_engine_config cfg;
	sl_engine *e;
} fx;

static faulty *open_engine(fx *x)
{
	faulty *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_ok(sl_tier_store_open(&f->inner, x->store, NS, 5000));
	sl_tier t = {&faulty_ops, f};
	g_faulty = f;
	assert_ok(engine_open_tier(&x->e, &x->cfg, &t));
	return f;
}

static void setup_fx(fx *x)
{
	memset(x, 0, sizeof(*x));
	x->dir = tu_tempdir();
	assert_non_null(x->dir);
	snprintf(x->wal, sizeof(x->wal), "%s/wal", x->dir);
	snprintf(x->store, sizeof(x->store), "%s/store", x->dir);
	sl_engine_config_init(&x->cfg);
	x->cfg.wal_dir = x->wal;
	x->cfg.l3_dir = x->store;
	x->cfg.l3_namespace = NS;
	x->cfg.batch_ms = 5;
	x->cfg.filter_capacity = 4096;
	/* L3 comes back within a test: the drain tries it again soon */
	x->cfg.l3_breaker.open_ms = 50;
}

static void teardown_fx(fx *x)
{
	sl_engine_close(x->e, 5000);
	x->e = NULL;
	tu_rmtree(x->dir);
	free(x->dir);
}

static sl_submit_options ack(sl_ack a)
{
	sl_submit_options o;
	sl_submit_options_init(&o);
	o.ack = a;
	return o;
}

static void put(sl_engine *e, const char *key, const char *value, sl_ack a, uint64_t *version)
{
	sl_submit_options o = ack(a);
	assert_ok(sl_engine_submit(e, key, strlen(key), value, strlen(value), &o, version));
}

static void check_value(sl_engine *e, const char *key, const char *want)
{
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	uint64_t version = 0;
	int rc = sl_engine_get(e, key, strlen(key), &v, &version);
	if (want == NULL) {
		assert_int_equal(rc, SL_ENOTFOUND);
	} else {
		if (rc != SL_OK)
			fail_msg("get %s: %s", key, sl_error_last()->message);
		assert_int_equal(v.len, strlen(want));
		assert_memory_equal(v.data, want, v.len);
		assert_true(version > 0);
	}
	sl_buf_free(&v);
}

/* The raw row L3 (the store namespace) holds: version, or 0 if none. */
static uint64_t l3_version(const char *store_dir, const char *key, int *deleted)
{
	sl_store *s;
	sl_store_options o;
	sl_store_options_init(&o);
	o.flags = SL_STORE_READONLY;
	assert_ok(sl_store_open(&s, store_dir, &o));
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	uint64_t version = 0;
	if (sl_store_get(s, NS, key, strlen(key), &v, NULL) == SL_OK) {
		assert_true(v.len >= 9);
		*deleted = v.data[0] == 2;
		version = sl_be64_get(v.data + 1);
	}
	sl_error_clear();
	sl_buf_free(&v);
	sl_store_free(s);
	return version;
}

/* --------------------------------------------------------------- tests */

static void test_versions_and_read_your_writes(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	faulty *f = open_engine(&x);
	uint64_t v1, v2, v3;
	put(x.e, "a/b", "one", SL_ACK_LOCAL, &v1);
	put(x.e, "a/b", "two", SL_ACK_MEMORY, &v2);
	assert_true(v2 > v1);
	check_value(x.e, "a/b", "two");
	/* held: nothing reaches L3, reads still see every write at once */
	atomic_store(&f->hold, 1);
	put(x.e, "c", "pending", SL_ACK_LOCAL, &v3);
	check_value(x.e, "c", "pending");
	sl_key_status st;
	assert_ok(sl_engine_key_status(x.e, "c", 1, &st));
	assert_int_equal(st.version, v3);
	assert_true(st.l1 && st.wal && !st.l3);
	/* a delete cancels the pending write instead of racing it */
	uint64_t vd;
	sl_submit_options o = ack(SL_ACK_LOCAL);
	assert_ok(sl_engine_delete(x.e, "c", 1, &o, &vd));
	assert_true(vd > v3);
	check_value(x.e, "c", NULL);
	atomic_store(&f->hold, 0);
	assert_ok(sl_engine_flush(x.e, 10000));
	int deleted = 0;
	assert_int_equal(l3_version(x.store, "c", &deleted), vd);
	assert_true(deleted);
	assert_int_equal(l3_version(x.store, "a/b", &deleted), v2);
	assert_false(deleted);
	assert_ok(sl_engine_key_status(x.e, "a/b", 3, &st));
	assert_true(st.l3 && !st.wal);
	assert_int_equal(st.version, v2);
	/* l3: acknowledged only once L3 holds it */
	uint64_t v4;
	put(x.e, "d", "durable", SL_ACK_L3, &v4);
	assert_int_equal(l3_version(x.store, "d", &deleted), v4);
	teardown_fx(&x);
}

static void test_replay_after_restart_with_l3_down(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	faulty *f = open_engine(&x);
	atomic_store(&f->down, 1);
	char key[32], val[32];
	uint64_t versions[200];
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "k/%03d", i);
		snprintf(val, sizeof(val), "value %d", i);
		put(x.e, key, val, SL_ACK_LOCAL, &versions[i]);
	}
	sl_engine_close(x.e, 100); /* L3 down: it all stays in the WAL */
	x.e = NULL;
	int deleted;
	assert_int_equal(l3_version(x.store, "k/000", &deleted), 0);
	/* up again: every write is read back at once, then drains */
	f = open_engine(&x);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "k/%03d", i);
		snprintf(val, sizeof(val), "value %d", i);
		check_value(x.e, key, val);
	}
	uint64_t v;
	put(x.e, "k/000", "newer", SL_ACK_LOCAL, &v);
	assert_true(v > versions[199]); /* versions keep growing across restarts */
	assert_ok(sl_engine_flush(x.e, 10000));
	for (int i = 1; i < 200; i++) {
		snprintf(key, sizeof(key), "k/%03d", i);
		assert_int_equal(l3_version(x.store, key, &deleted), versions[i]);
	}
	assert_int_equal(l3_version(x.store, "k/000", &deleted), v);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.l3_lag, 0);
	teardown_fx(&x);
}

/* What L3 held before a clean stop is not written to it again at the next
 * start (the drained mark), yet still read back. */
static void test_restart_skips_what_l3_holds(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	open_engine(&x);
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "m/%03d", i);
		put(x.e, key, "held", SL_ACK_LOCAL, NULL);
	}
	assert_ok(sl_engine_flush(x.e, 10000));
	sl_engine_close(x.e, 1000);
	x.e = NULL;
	faulty *f = open_engine(&x);
	sl_sleep_ms(200);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.l3_lag, 0);
	assert_int_equal(atomic_load(&f->writes), 0);
	assert_int_equal(st.l1_entries, 0);
	check_value(x.e, "m/042", "held");
	teardown_fx(&x);
}

static void test_refused_rows_are_parked(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.l3_max_attempts = 3;
	faulty *f = open_engine(&x);
	f->refuse = "bad/";
	uint64_t vbad, vgood;
	put(x.e, "bad/one", "refused", SL_ACK_LOCAL, &vbad);
	put(x.e, "good/one", "taken", SL_ACK_LOCAL, &vgood);
	/* the good row is not held up by the refused one */
	sl_submit_options o = ack(SL_ACK_L3);
	uint64_t v;
	assert_ok(sl_engine_submit(x.e, "good/two", 8, "x", 1, &o, &v));
	int deleted;
	assert_int_equal(l3_version(x.store, "good/one", &deleted), vgood);
	/* an l3 write L3 refuses is not acknowledged */
	assert_int_equal(sl_engine_submit(x.e, "bad/two", 7, "y", 1, &o, &v), SL_EIO);
	assert_ok(sl_engine_flush(x.e, 20000));
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.parked, 2);
	assert_int_equal(st.retrying, 0);
	sl_key_status ks;
	assert_ok(sl_engine_key_status(x.e, "bad/one", 7, &ks));
	assert_true(ks.parked);
	sl_engine_close(x.e, 1000);
	x.e = NULL;
	/* parked rows survive a restart, once each */
	f = open_engine(&x);
	f->refuse = "bad/";
	assert_ok(sl_engine_flush(x.e, 20000));
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.parked, 2);
	assert_int_equal(st.l3_lag, 0);
	teardown_fx(&x);
}

/* A newer write of a key that L3 refuses never hides the older one it
 * took: v1 and v2 wait in the WAL together, v2 is refused and parked, and
 * L3 ends with v1. An l3 write that L3 refuses is not acknowledged even
 * when a newer write of its key came after it. */
static void test_refused_newer_write_keeps_the_older(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.l3_max_attempts = 2;
	faulty *f = open_engine(&x);
	f->refuse_value = "BAD";
	atomic_store(&f->hold, 1);
	uint64_t v1, v2;
	put(x.e, "k", "good", SL_ACK_LOCAL, &v1);
	put(x.e, "k", "BAD value", SL_ACK_LOCAL, &v2);
	atomic_store(&f->hold, 0);
	assert_ok(sl_engine_flush(x.e, 20000));
	int deleted;
	assert_int_equal(l3_version(x.store, "k", &deleted), v1);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.parked, 1);
	sl_engine_close(x.e, 1000);
	x.e = NULL;
	open_engine(&x);
	check_value(x.e, "k", "good");
	teardown_fx(&x);
}

static void test_backpressure_loses_nothing(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.wal_max_bytes = 256 * 1024;
	x.cfg.wal_segment_bytes = 32 * 1024;
	x.cfg.throttle_wait_ms = 5;
	faulty *f = open_engine(&x);
	atomic_store(&f->down, 1);
	char key[32], val[300];
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	int acked = 0, busy = 0;
	for (int i = 0; i < 5000 && busy < 50; i++) {
		snprintf(key, sizeof(key), "p/%05d", i);
		sl_submit_options o = ack(SL_ACK_LOCAL);
		int rc = sl_engine_submit(x.e, key, strlen(key), val, strlen(val), &o, NULL);
		if (rc == SL_OK)
			acked = i + 1;
		else if (rc == SL_EBUSY)
			busy++;
		else
			fail_msg("submit: %s", sl_error_last()->message);
		if (rc == SL_OK && busy > 0)
			fail_msg("a write was acknowledged after a refusal with L3 still down");
	}
	assert_true(busy > 0);
	assert_true(acked > 100);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_true(st.wal_bytes <= x.cfg.wal_max_bytes);
	assert_true(st.rejected > 0);
	atomic_store(&f->down, 0);
	assert_ok(sl_engine_flush(x.e, 20000));
	int deleted;
	for (int i = 0; i < acked; i++) {
		snprintf(key, sizeof(key), "p/%05d", i);
		assert_true(l3_version(x.store, key, &deleted) > 0);
	}
	teardown_fx(&x);
}

/* With backpressure out of the way, the WAL's cap itself refuses: the
 * refused write is not acknowledged and leaves no trace. */
static void test_full_wal_refuses_cleanly(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.wal_max_bytes = 64 * 1024;
	x.cfg.wal_segment_bytes = 16 * 1024;
	x.cfg.pressure_warn = x.cfg.pressure_throttle = x.cfg.pressure_reject = 1.0;
	faulty *f = open_engine(&x);
	atomic_store(&f->down, 1);
	char key[32], val[500];
	memset(val, 'w', sizeof(val));
	int refused = -1;
	for (int i = 0; i < 1000 && refused < 0; i++) {
		snprintf(key, sizeof(key), "full/%04d", i);
		sl_submit_options o = ack(SL_ACK_LOCAL);
		int rc = sl_engine_submit(x.e, key, strlen(key), val, sizeof(val), &o, NULL);
		if (rc == SL_EBUSY)
			refused = i;
		else
			assert_ok(rc);
	}
	assert_true(refused > 0);
	if (strstr(sl_error_last()->message, "WAL") == NULL)
		fail_msg("refused, but not by the WAL: %s", sl_error_last()->message);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	snprintf(key, sizeof(key), "full/%04d", refused);
	assert_int_equal(st.wal_lsn, (uint64_t)refused); /* no record for it */
	atomic_store(&f->down, 0);
	check_value(x.e, key, NULL);
	sl_key_status ks;
	assert_ok(sl_engine_key_status(x.e, key, strlen(key), &ks));
	assert_int_equal(ks.version, 0);
	assert_false(ks.l1);
	assert_ok(sl_engine_flush(x.e, 20000));
	for (int i = 0; i < refused; i++) {
		snprintf(key, sizeof(key), "full/%04d", i);
		int deleted;
		assert_true(l3_version(x.store, key, &deleted) > 0);
	}
	teardown_fx(&x);
}

static void test_dirty_entries_survive_a_small_budget(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.l1_budget_bytes = 1024 * 1024;
	x.cfg.l1_shards = 4;
	faulty *f = open_engine(&x);
	atomic_store(&f->down, 1);
	tu_rng rng = tu_rng_seeded("dirty_entries");
	char key[32];
	static uint8_t vals[4000][1000];
	for (int i = 0; i < 4000; i++) {
		snprintf(key, sizeof(key), "d/%04d", i);
		tu_rng_fill(&rng, vals[i], sizeof(vals[i]));
		sl_submit_options o = ack(SL_ACK_LOCAL);
		assert_ok(sl_engine_submit(x.e, key, strlen(key), vals[i], 1000, &o, NULL));
	}
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	/* 4000 x 1000 bytes of values do not fit: released, never dropped */
	assert_true(st.l1_bytes < 2 * x.cfg.l1_budget_bytes);
	assert_true(st.l1_entries == 4000);
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	for (int i = 0; i < 4000; i++) {
		snprintf(key, sizeof(key), "d/%04d", i);
		assert_ok(sl_engine_get(x.e, key, strlen(key), &v, NULL));
		assert_int_equal(v.len, 1000);
		assert_memory_equal(v.data, vals[i], 1000);
	}
	atomic_store(&f->down, 0);
	assert_ok(sl_engine_flush(x.e, 20000));
	for (int i = 0; i < 4000; i += 97) {
		snprintf(key, sizeof(key), "d/%04d", i);
		assert_ok(sl_engine_get(x.e, key, strlen(key), &v, NULL));
		assert_memory_equal(v.data, vals[i], 1000);
	}
	sl_buf_free(&v);
	teardown_fx(&x);
}

static void test_filter(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	open_engine(&x);
	char key[32];
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "f/%03d", i);
		put(x.e, key, "v", SL_ACK_MEMORY, NULL);
	}
	sl_submit_options o = ack(SL_ACK_LOCAL);
	assert_ok(sl_engine_delete(x.e, "f/000", 5, &o, NULL));
	assert_ok(sl_engine_flush(x.e, 10000));
	sl_engine_close(x.e, 1000);
	x.e = NULL;
	/* the snapshot matches L3's position: trusted at once */
	open_engine(&x);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_true(st.filter_trusted);
	assert_int_equal(st.filter_keys, 299);
	check_value(x.e, "f/001", "v");
	check_value(x.e, "f/000", NULL);
	uint64_t misses = 0;
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "absent/%d", i);
		check_value(x.e, key, NULL);
	}
	assert_ok(sl_engine_stats_get(x.e, &st));
	misses = st.gets_filter_miss;
	assert_true(misses >= 190); /* a few false positives may ask L3 */
	/* L3 moved behind the snapshot's back: rebuilt, not trusted blindly */
	sl_engine_close(x.e, 1000);
	x.e = NULL;
	sl_store *s;
	sl_store_options so;
	sl_store_options_init(&so);
	assert_ok(sl_store_open(&s, x.store, &so));
	sl_batch *b;
	uint8_t raw[10] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 'z'};
	assert_ok(sl_batch_new(&b, s, NS));
	assert_ok(sl_batch_put(b, "outside", 7, raw, sizeof(raw)));
	assert_ok(sl_batch_commit(b, NULL));
	sl_batch_free(b);
	sl_store_free(s);
	open_engine(&x);
	check_value(x.e, "outside", "z");
	assert_ok(sl_engine_flush(x.e, 10000));
	st.filter_trusted = 0;
	for (int i = 0; i < 200 && !st.filter_trusted; i++) {
		assert_ok(sl_engine_stats_get(x.e, &st));
		sl_sleep_ms(5);
	}
	assert_ok(sl_engine_stats_get(x.e, &st));
	if (!st.filter_trusted)
		fail_msg("the filter was not rebuilt: %s", st.l3_error);
	assert_int_equal(st.filter_keys, 300);
	teardown_fx(&x);
}

static void test_bad_input_changes_nothing(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.value_max = 100;
	open_engine(&x);
	sl_submit_options o = ack(SL_ACK_LOCAL);
	char big[101] = {0};
	assert_int_equal(sl_engine_submit(x.e, "", 0, "v", 1, &o, NULL), SL_EINVAL);
	assert_int_equal(sl_engine_submit(x.e, "a//b", 4, "v", 1, &o, NULL), SL_EINVAL);
	assert_int_equal(sl_engine_submit(x.e, "a/../b", 6, "v", 1, &o, NULL), SL_EINVAL);
	assert_int_equal(sl_engine_submit(x.e, "big", 3, big, sizeof(big), &o, NULL), SL_ETOOLARGE);
	o.ack = (sl_ack)7;
	assert_int_equal(sl_engine_submit(x.e, "k", 1, "v", 1, &o, NULL), SL_EINVAL);
	o = ack(SL_ACK_LOCAL);
	o.ttl_ms = 5;
	assert_int_equal(sl_engine_submit(x.e, "k", 1, "v", 1, &o, NULL), SL_EINVAL);
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.wal_lsn, 0);
	assert_int_equal(st.l1_entries, 0);
	sl_ack a;
	assert_int_equal(sl_ack_parse(&a, "disk"), SL_EINVAL);
	assert_ok(sl_ack_parse(&a, "l3"));
	assert_int_equal(a, SL_ACK_L3);
	teardown_fx(&x);
}

/* Many writers at once, each key written by one thread in order: every
 * key ends at its last version, in L1 and in L3. */
typedef struct writer {
	sl_engine *e;
	int id;
	uint64_t last[100];
} writer;

static void *write_many(void *arg)
{
	writer *w = arg;
	char key[32], val[32];
	for (int round = 0; round < 20; round++)
		for (int k = 0; k < 100; k++) {
			snprintf(key, sizeof(key), "w%d/%d", w->id, k);
			snprintf(val, sizeof(val), "%d", round);
			sl_submit_options o;
			sl_submit_options_init(&o);
			o.ack = round % 2 ? SL_ACK_LOCAL : SL_ACK_MEMORY;
			if (sl_engine_submit(w->e, key, strlen(key), val, strlen(val), &o,
			                     &w->last[k]) != SL_OK)
				return (void *)1;
		}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	open_engine(&x);
	pthread_t t[4];
	writer w[4];
	for (int i = 0; i < 4; i++) {
		w[i].e = x.e;
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
	assert_ok(sl_engine_flush(x.e, 20000));
	char key[32];
	int deleted;
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 100; k++) {
			snprintf(key, sizeof(key), "w%d/%d", i, k);
			check_value(x.e, key, "19");
			assert_int_equal(l3_version(x.store, key, &deleted), w[i].last[k]);
		}
	teardown_fx(&x);
}

/* ------------------------------------------------- the L3 circuit breaker */

static sl_engine_breaker_stats l3_breaker(sl_engine *e)
{
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(e, &st));
	assert_int_equal(st.n_breakers, 1);
	assert_string_equal(st.breakers[0].backend, "l3");
	return st.breakers[0];
}

/* Waits (bounded) until the L3 breaker is in `state` with `opened`
 * openings; fails the test when it never gets there. */
static void await_breaker(sl_engine *e, sl_breaker_state state, uint64_t opened)
{
	sl_engine_breaker_stats b;
	for (int i = 0; i < 2000; i++) {
		b = l3_breaker(e);
		if (b.state == state && b.opened == opened)
			return;
		sl_sleep_ms(5);
	}
	fail_msg("the L3 breaker is %s (opened %llu), not %s (opened %llu)",
	         sl_breaker_state_name(b.state), (unsigned long long)b.opened,
	         sl_breaker_state_name(state), (unsigned long long)opened);
}

/* L3 fails: the breaker opens, the drain stops calling L3 while it is open
 * (the engine's clock is moved by hand, so "while open" lasts as long as
 * the test needs), acknowledged writes wait in the WAL, gets that need L3
 * fail at once; a failed trial opens it again, a good one closes it and
 * everything drains. */
static void test_breaker_stops_l3_calls_and_recovers(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.l3_breaker.open_ms = 600000; /* only the skew ends it */
	x.cfg.l3_breaker.trial_calls = 1;
	x.cfg.l3_ack_timeout_ms = 3600000; /* an `l3` write must not wait it out */
	x.cfg.retry_drain.base_ms = 1;
	x.cfg.retry_drain.max_ms = 5;
	faulty *f = open_engine(&x);
	assert_int_equal(l3_breaker(x.e).state, SL_BREAKER_CLOSED);
	atomic_store(&f->down, 1);
	char key[32];
	uint64_t versions[50];
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "b/%02d", i);
		put(x.e, key, "kept", SL_ACK_LOCAL, &versions[i]);
	}
	await_breaker(x.e, SL_BREAKER_OPEN, 1);
	/* open: the drain makes no call, though it is asked to flush */
	int calls = atomic_load(&f->calls);
	put(x.e, "b/late", "kept", SL_ACK_LOCAL, NULL);
	assert_int_equal(sl_engine_flush(x.e, 200), SL_ETIMEOUT);
	assert_int_equal(atomic_load(&f->calls), calls);
	/* a get that needs L3 is refused without a call */
	filter_distrust(&x.e->filter);
	int gets = atomic_load(&f->get_calls);
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	assert_int_equal(sl_engine_get(x.e, "absent", 6, &v, NULL), SL_EUNAVAILABLE);
	assert_non_null(strstr(sl_error_last()->message, "circuit breaker"));
	assert_int_equal(atomic_load(&f->get_calls), gets);
	check_value(x.e, "b/07", "kept"); /* L1 still answers */
	/* an `l3` write is answered at once (it is in the WAL), not after its
	 * acknowledgement timeout */
	sl_submit_options l3;
	sl_submit_options_init(&l3);
	l3.ack = SL_ACK_L3;
	assert_int_equal(sl_engine_submit(x.e, "b/l3", 4, "kept", 4, &l3, NULL), SL_ETIMEOUT);
	assert_non_null(strstr(sl_error_last()->message, "circuit breaker"));
	sl_engine_stats st;
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.gets_refused, 1);
	assert_true(st.breakers[0].refused >= 1);
	assert_true(st.l3_lag > 0);
	/* the open time ends with L3 still down: the trial fails, open again */
	atomic_fetch_add(&x.e->clock_skew_ms, 600000);
	await_breaker(x.e, SL_BREAKER_OPEN, 2);
	assert_true(atomic_load(&f->calls) > calls);
	calls = atomic_load(&f->calls);
	assert_int_equal(sl_engine_flush(x.e, 100), SL_ETIMEOUT);
	assert_int_equal(atomic_load(&f->calls), calls);
	/* L3 is back: the trial succeeds, closed, and everything drains */
	atomic_store(&f->down, 0);
	atomic_fetch_add(&x.e->clock_skew_ms, 600000);
	assert_ok(sl_engine_flush(x.e, 20000));
	await_breaker(x.e, SL_BREAKER_CLOSED, 2);
	int deleted;
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "b/%02d", i);
		assert_int_equal(l3_version(x.store, key, &deleted), versions[i]);
	}
	assert_true(l3_version(x.store, "b/late", &deleted) > 0);
	assert_true(l3_version(x.store, "b/l3", &deleted) > 0);
	assert_ok(sl_engine_stats_get(x.e, &st));
	assert_int_equal(st.l3_lag, 0);
	assert_true(st.l3_up);
	assert_int_equal(sl_engine_get(x.e, "absent", 6, &v, NULL), SL_ENOTFOUND);
	sl_buf_free(&v);
	teardown_fx(&x);
}

/* A get that L3 fails is retried within the query policy, then fails with
 * L3's error (not the breaker's: it stays closed here). */
static void test_query_retries_are_bounded(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.l3_breaker.window = 100;
	x.cfg.l3_breaker.min_calls = 100;
	x.cfg.l3_breaker.consecutive = 100;
	x.cfg.retry_query.base_ms = 1;
	x.cfg.retry_query.max_ms = 2;
	x.cfg.retry_query.max_attempts = 3;
	open_engine(&x);
	put(x.e, "q", "in L3", SL_ACK_L3, NULL);
	sl_engine_close(x.e, 1000);
	/* reopened: L1 is empty and the filter says L3 may hold q */
	faulty *f = open_engine(&x);
	atomic_store(&f->down, 1);
	int gets = atomic_load(&f->get_calls);
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	assert_int_equal(sl_engine_get(x.e, "q", 1, &v, NULL), SL_EIO);
	assert_int_equal(atomic_load(&f->get_calls) - gets, 3);
	/* L3 answers again: one call */
	atomic_store(&f->down, 0);
	gets = atomic_load(&f->get_calls);
	check_value(x.e, "q", "in L3");
	assert_int_equal(atomic_load(&f->get_calls) - gets, 1);
	sl_buf_free(&v);
	assert_int_equal(l3_breaker(x.e).state, SL_BREAKER_CLOSED);
	teardown_fx(&x);
}

/* An L3 that is not up yet at open is tried again with the startup
 * policy; one that stays down fails open with its last error. */
static void test_startup_retries_l3(void **state)
{
	(void)state;
	fx x;
	setup_fx(&x);
	x.cfg.retry_startup.base_ms = 1;
	x.cfg.retry_startup.max_ms = 2;
	x.cfg.retry_startup.max_attempts = 4;
	atomic_store(&g_position_calls, 0);
	atomic_store(&g_position_fails, 3);
	open_engine(&x);
	assert_int_equal(atomic_load(&g_position_calls), 4);
	put(x.e, "s", "up", SL_ACK_L3, NULL);
	sl_engine_close(x.e, 1000);
	x.e = NULL;
	/* down for longer than the policy waits */
	faulty *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_ok(sl_tier_store_open(&f->inner, x.store, NS, 5000));
	sl_tier t = {&faulty_ops, f};
	atomic_store(&g_position_calls, 0);
	atomic_store(&g_position_fails, 100);
	assert_int_equal(engine_open_tier(&x.e, &x.cfg, &t), SL_EIO);
	assert_null(x.e);
	assert_non_null(strstr(sl_error_last()->message, "not up yet"));
	assert_int_equal(atomic_load(&g_position_calls), 4);
	atomic_store(&g_position_fails, 0);
	/* and a bad policy is refused by name */
	x.cfg.retry_query.max_ms = 0;
	assert_int_equal(sl_engine_open(&x.e, &x.cfg), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "max_ms"));
	x.cfg.retry_query = *sl_retry_policy_default("query");
	x.cfg.l2_breaker.min_calls = 0;
	assert_int_equal(sl_engine_open(&x.e, &x.cfg), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "min_calls"));
	teardown_fx(&x);
}

int main(void)
{
	sl_log_set_level(SL_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_versions_and_read_your_writes),
	        cmocka_unit_test(test_replay_after_restart_with_l3_down),
	        cmocka_unit_test(test_restart_skips_what_l3_holds),
	        cmocka_unit_test(test_refused_rows_are_parked),
	        cmocka_unit_test(test_refused_newer_write_keeps_the_older),
	        cmocka_unit_test(test_backpressure_loses_nothing),
	        cmocka_unit_test(test_full_wal_refuses_cleanly),
	        cmocka_unit_test(test_dirty_entries_survive_a_small_budget),
	        cmocka_unit_test(test_filter),
	        cmocka_unit_test(test_bad_input_changes_nothing),
	        cmocka_unit_test(test_concurrent_writers),
	        cmocka_unit_test(test_breaker_stops_l3_calls_and_recovers),
	        cmocka_unit_test(test_query_retries_are_bounded),
	        cmocka_unit_test(test_startup_retries_l3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
