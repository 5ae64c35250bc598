/*
 * Tests for the PostgreSQL L3 tier against a real PostgreSQL 15 started by
 * scripts/services.sh: the table made on open, puts and tombstones, the
 * version guard and the applied/was_live/is_live flags in every case, a
 * CHECK constraint refusing one row of a batch, keyset paging in bytewise
 * order (keys, and items with their version and value digest), the position, bad names, and
 * outages: the server stopped (then started again) and the server frozen with SIGSTOP.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "engine/tier.h"
#include "pg_testutil.h"
#include "services.h"
#include "tier_testutil.h"

static tu_services svc;
static PGconn *admin;

static long sql_long(const char *fmt, const char *table)
{
	char text[64];
	tu_sql(admin, text, sizeof(text), fmt, table);
	return atol(text);
}

static sl_tier open_tier(const char *table, unsigned timeout_ms)
{
	sl_tier t = {0};
	tu_sql(admin, NULL, 0, "DROP TABLE IF EXISTS %s", table);
	if (sl_tier_pg_open(&t, svc.pg_url, table, timeout_ms) != SL_OK)
		fail_msg("open %s: %s", table, sl_error_last()->message);
	return t;
}

static int setup(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "pg") != 0) {
		fprintf(stderr, "could not start PostgreSQL\n");
		return -1;
	}
	admin = tu_pg_connect(svc.pg_url);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	PQfinish(admin);
	tu_services_stop(&svc);
	return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_open_creates(void **state)
{
	sl_tier t;
	char text[256];
	(void)state;

	t = open_tier("t_create", 5000);
	assert_string_equal(t.ops->name, "postgresql");
	tu_sql(admin, text, sizeof(text),
	       "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)"
	       " FROM information_schema.columns WHERE table_name = 't_create'");
	assert_string_equal(text, "key:text,value:bytea,version:bigint,deleted:boolean,"
	                          "updated_at:timestamp with time zone");
	assert_int_equal(
	        sql_long("SELECT batches FROM sluice_engine_meta WHERE tbl = '%s'", "t_create"), 0);
	t.ops->close(t.impl);

	/* opening again keeps the table and its rows */
	tu_sql(admin, NULL, 0, "INSERT INTO t_create (key, value, version) VALUES ('k', 'v', 1)");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "t_create", 5000), SL_OK);
	tu_expect_row(&t, "k", "v", 1);
	t.ops->close(t.impl);

	/* schema-qualified: the meta table goes next to it */
	tu_sql(admin, NULL, 0, "CREATE SCHEMA IF NOT EXISTS other");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "other.Mixed_Case", 5000), SL_OK);
	assert_int_equal(sql_long("SELECT count(*) FROM other.\"Mixed_Case\" WHERE %s", "true"), 0);
	assert_int_equal(sql_long("SELECT batches FROM other.sluice_engine_meta WHERE tbl = '%s'",
	                          "other.Mixed_Case"),
	                 0);
	t.ops->close(t.impl);
}

static void test_round_trip(void **state)
{
	sl_tier t = open_tier("t_round", 5000);
	sl_tier_row rows[4];
	uint64_t v;
	int deleted;
	static const uint8_t binary[] = {0, 1, 2, 0xff, 0, '\\', '\''};
	sl_buf value = SL_BUF_INIT(1024);
	(void)state;

	tu_put(&rows[0], "a", "alpha", 1);
	tu_put(&rows[1], "b", "", 2);
	tu_del(&rows[2], "c", 3);
	tu_put(&rows[3], "d", "", 4);
	rows[3].value = binary;
	rows[3].value_len = sizeof(binary);
	tu_write_ok(&t, rows, 4);
	tu_expect_row(&t, "a", "alpha", 1);
	tu_expect_row(&t, "b", "", 2);
	tu_expect_row(&t, "c", NULL, 3);
	assert_int_equal(t.ops->get(t.impl, "d", 1, &value, &v, &deleted), SL_OK);
	assert_int_equal(value.len, sizeof(binary));
	assert_memory_equal(value.data, binary, sizeof(binary));
	assert_null(tu_tier_get(&t, "missing", &v, &deleted));
	assert_int_equal(t.ops->get(t.impl, "missing", 7, &value, &v, &deleted), SL_ENOTFOUND);

	/* a tombstone: deleted, value NULL, the version kept */
	tu_del(&rows[0], "a", 5);
	tu_write_ok(&t, rows, 1);
	tu_expect_row(&t, "a", NULL, 5);
	assert_int_equal(sql_long("SELECT count(*) FROM %s WHERE key = 'a' AND value IS NULL"
	                          " AND deleted",
	                          "t_round"),
	                 1);

	/* the value cap of the caller's buffer is kept */
	value.max = 2;
	assert_int_equal(t.ops->get(t.impl, "d", 1, &value, &v, &deleted), SL_ETOOLARGE);
	sl_buf_free(&value);
	t.ops->close(t.impl);
}

static void test_version_guard(void **state)
{
	sl_tier t = open_tier("t_guard", 5000);
	sl_tier_row rows[8];
	(void)state;

	/* new key; delete of an absent key (a tombstone all the same) */
	tu_put(&rows[0], "live", "v5", 5);
	tu_del(&rows[1], "never", 3);
	tu_put(&rows[2], "old", "v9", 9);
	tu_write_ok(&t, rows, 3);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_flags(&rows[1], 1, 0, 0);
	tu_expect_flags(&rows[2], 1, 0, 1);
	tu_expect_row(&t, "never", NULL, 3);

	/* update of a live row; superseded by older and by equal versions */
	tu_put(&rows[0], "live", "v6", 6);
	tu_put(&rows[1], "old", "v4", 4);
	tu_put(&rows[2], "never", "v2", 2); /* older than the tombstone at 3 */
	tu_write_ok(&t, rows, 3);
	tu_expect_flags(&rows[0], 1, 1, 1);
	tu_expect_flags(&rows[1], 0, 1, 1);
	tu_expect_flags(&rows[2], 0, 0, 0);
	tu_expect_row(&t, "live", "v6", 6);
	tu_expect_row(&t, "old", "v9", 9);
	tu_expect_row(&t, "never", NULL, 3);

	tu_put(&rows[0], "old", "v9 again", 9);
	tu_del(&rows[1], "live", 6);
	tu_write_ok(&t, rows, 2);
	tu_expect_flags(&rows[0], 0, 1, 1);
	tu_expect_flags(&rows[1], 0, 1, 1);
	tu_expect_row(&t, "old", "v9", 9);
	tu_expect_row(&t, "live", "v6", 6);

	/* delete of a live row, then update of the tombstone */
	tu_del(&rows[0], "live", 7);
	tu_write_ok(&t, rows, 1);
	tu_expect_flags(&rows[0], 1, 1, 0);
	tu_put(&rows[0], "live", "v8", 8);
	tu_write_ok(&t, rows, 1);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_row(&t, "live", "v8", 8);

	/* a delete at v2 then a put at v1: stays deleted */
	tu_del(&rows[0], "gone", 2);
	tu_write_ok(&t, rows, 1);
	tu_put(&rows[0], "gone", "back", 1);
	tu_write_ok(&t, rows, 1);
	tu_expect_flags(&rows[0], 0, 0, 0);
	tu_expect_row(&t, "gone", NULL, 2);
	/* an older delete of a live row is superseded too */
	tu_del(&rows[0], "live", 1);
	tu_write_ok(&t, rows, 1);
	tu_expect_flags(&rows[0], 0, 1, 1);
	tu_expect_row(&t, "live", "v8", 8);

	/* every case in one batch */
	tu_put(&rows[0], "n1", "new", 20);     /* new */
	tu_put(&rows[1], "live", "v21", 21);   /* update of live */
	tu_put(&rows[2], "gone", "v22", 22);   /* update of a tombstone */
	tu_del(&rows[3], "old", 23);           /* delete of live */
	tu_del(&rows[4], "absent", 24);        /* delete of absent */
	tu_put(&rows[5], "never", "stale", 1); /* superseded (tombstone) */
	tu_put(&rows[6], "n2", "x", 25);
	tu_write_ok(&t, rows, 7);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_flags(&rows[1], 1, 1, 1);
	tu_expect_flags(&rows[2], 1, 0, 1);
	tu_expect_flags(&rows[3], 1, 1, 0);
	tu_expect_flags(&rows[4], 1, 0, 0);
	tu_expect_flags(&rows[5], 0, 0, 0);
	tu_expect_flags(&rows[6], 1, 0, 1);
	tu_expect_row(&t, "gone", "v22", 22);
	tu_expect_row(&t, "old", NULL, 23);
	tu_expect_row(&t, "never", NULL, 3);

	/* a retried batch (same versions) changes nothing */
	tu_write_ok(&t, rows, 7);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(rows[i].applied, 0);
	tu_expect_flags(&rows[3], 0, 0, 0);
	tu_expect_row(&t, "n1", "new", 20);
	t.ops->close(t.impl);
}

/* A CHECK the user added refuses one row of 50; the other 49 commit. A
 * key that is not UTF-8 is refused the same way. */
/* A batch whose every row says no live row exists (the engine's trusted
 * filter) skips reading the old rows; the guard still holds, a tombstone
 * included. */
static void test_batch_of_new_keys(void **state)
{
	sl_tier t = open_tier("t_new", 5000);
	sl_tier_row rows[3];
	(void)state;

	tu_del(&rows[0], "gone", 7);
	tu_write_ok(&t, rows, 1);
	tu_put(&rows[0], "a", "va", 10);
	tu_put(&rows[1], "gone", "older", 5); /* older than its tombstone */
	tu_put(&rows[2], "gone2", "vg", 11);
	for (int i = 0; i < 3; i++)
		rows[i].maybe_live = 0;
	tu_write_ok(&t, rows, 3);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_flags(&rows[1], 0, 0, 0);
	tu_expect_flags(&rows[2], 1, 0, 1);
	tu_expect_row(&t, "a", "va", 10);
	tu_expect_row(&t, "gone", NULL, 7);
	/* one row with a hint of 1 takes the reading path for the batch */
	tu_put(&rows[0], "a", "va2", 12);
	tu_put(&rows[1], "b", "vb", 13);
	rows[1].maybe_live = 0;
	tu_write_ok(&t, rows, 2);
	tu_expect_flags(&rows[0], 1, 1, 1);
	tu_expect_flags(&rows[1], 1, 0, 1);
	t.ops->close(t.impl);
}

static void test_refused_rows(void **state)
{
	sl_tier t = open_tier("t_check", 5000);
	sl_tier_row rows[50];
	char keys[50][16], big[200], small[32];
	sl_digest before, after;
	(void)state;

	tu_sql(admin, NULL, 0, "ALTER TABLE t_check ADD CHECK (octet_length(value) < 100)");
	memset(big, 'x', 150);
	big[150] = '\0';
	snprintf(small, sizeof(small), "small");
	for (size_t i = 0; i < 50; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02zu", i);
		tu_put(&rows[i], keys[i], i == 17 ? big : small, 10 + i);
	}
	assert_int_equal(t.ops->position(t.impl, &before), SL_OK);
	if (t.ops->write(t.impl, rows, 50) != SL_OK)
		fail_msg("write: %s", sl_error_last()->message);
	for (size_t i = 0; i < 50; i++) {
		if (i == 17) {
			assert_int_equal(rows[i].rc, SL_EINVAL);
			assert_int_equal(rows[i].applied, 0);
			assert_non_null(strstr(rows[i].error, "check constraint"));
			assert_non_null(strstr(rows[i].error, "23514"));
			continue;
		}
		assert_int_equal(rows[i].rc, SL_OK);
		tu_expect_flags(&rows[i], 1, 0, 1);
	}
	assert_int_equal(sql_long("SELECT count(*) FROM %s", "t_check"), 49);
	assert_int_equal(sql_long("SELECT count(*) FROM %s WHERE key = 'k17'", "t_check"), 0);
	assert_int_equal(t.ops->position(t.impl, &after), SL_OK);
	assert_false(sl_digest_eq(&before, &after));

	/* the next batch takes the fast path again, with the flags right */
	tu_put(&rows[0], "k00", "newer", 100);
	tu_put(&rows[1], "k17", "fits", 100);
	tu_write_ok(&t, rows, 2);
	tu_expect_flags(&rows[0], 1, 1, 1);
	tu_expect_flags(&rows[1], 1, 0, 1);

	/* invalid UTF-8 in a key: refused during COPY, the rest written */
	tu_put(&rows[0], "u1", "a", 1);
	tu_put(&rows[1], "bad\xff", "b", 1);
	tu_put(&rows[2], "u2", "c", 1);
	if (t.ops->write(t.impl, rows, 3) != SL_OK)
		fail_msg("write: %s", sl_error_last()->message);
	assert_int_equal(rows[0].rc, SL_OK);
	assert_int_equal(rows[1].rc, SL_EINVAL);
	assert_non_null(strstr(rows[1].error, "22021"));
	assert_int_equal(rows[2].rc, SL_OK);
	tu_expect_flags(&rows[2], 1, 0, 1);
	tu_expect_row(&t, "u1", "a", 1);
	tu_expect_row(&t, "u2", "c", 1);
	t.ops->close(t.impl);
}

static void test_scan_paging(void **state)
{
	enum { N = 2500 };
	static const char *const stems[] = {"Apple",
	                                    "apple",
	                                    "Zeta",
	                                    "zeta",
	                                    "_x",
	                                    "\xc3\xa9t\xc3\xa9",
	                                    "\xe6\x97\xa5\xe6\x9c\xac",
	                                    "\xf0\x9f\x98\x80",
	                                    "~",
	                                    "0"};
	static char key_text[N][32], values[N][16];
	char *want[N], first[64];
	sl_tier_row *rows = calloc(N, sizeof(*rows));
	size_t n_live = 0;
	sl_tier t;
	(void)state;

	for (size_t i = 0; i < N; i++) {
		snprintf(key_text[i], sizeof(key_text[i]), "%s%04zu", stems[i % 10], i);
		if (i % 7 == 3) {
			tu_del(&rows[i], key_text[i], 1);
		} else {
			snprintf(values[i], sizeof(values[i]), "%s", i % 5 == 0 ? "" : "v");
			tu_put(&rows[i], key_text[i], values[i], i + 1);
			want[n_live++] = key_text[i];
		}
	}
	qsort(want, n_live, sizeof(want[0]), tu_cmp_bytes);

	t = open_tier("t_scan", 5000);
	for (size_t i = 0; i < N; i += 500)
		tu_write_ok(&t, rows + i, 500);
	tu_scan_check(&t, want, n_live);
	tu_items_check(&t, rows, N, n_live);
	t.ops->close(t.impl);

	/* A table made by someone else, its key in a linguistic collation
	 * (where "apple" sorts before "Apple" and "~" first): still bytewise. */
	tu_sql(admin, NULL, 0, "DROP TABLE IF EXISTS t_scan_icu");
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE t_scan_icu (key text COLLATE \"und-x-icu\" PRIMARY KEY, value bytea,"
	       " version bigint NOT NULL, deleted boolean NOT NULL, updated_at timestamptz"
	       " NOT NULL DEFAULT now())");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "t_scan_icu", 5000), SL_OK);
	for (size_t i = 0; i < N; i += 500)
		tu_write_ok(&t, rows + i, 500);
	tu_sql(admin, first, sizeof(first), "SELECT key FROM t_scan_icu ORDER BY key LIMIT 1");
	assert_string_not_equal(first, want[0]);
	tu_scan_check(&t, want, n_live);
	t.ops->close(t.impl);
	free(rows);
}

static void test_position(void **state)
{
	sl_tier t = open_tier("t_pos", 5000);
	sl_digest p0, p4;
	(void)state;

	tu_position_moves(&t, &p0);
	/* the same table dropped and made again is another position */
	t.ops->close(t.impl);
	tu_sql(admin, NULL, 0, "DELETE FROM sluice_engine_meta WHERE tbl = 't_pos'");
	t = open_tier("t_pos", 5000);
	assert_int_equal(t.ops->position(t.impl, &p4), SL_OK);
	assert_false(sl_digest_eq(&p0, &p4));
	t.ops->close(t.impl);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {
	        "",
	        "a;drop table x",
	        "1abc",
	        "a.b.c",
	        ".x",
	        "x.",
	        "a b",
	        "\"x\"",
	        "tbl-1",
	        "sluice_engine_meta",
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	sl_tier t;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, bad[i], 5000), SL_EINVAL);
		assert_non_null(strstr(sl_error_last()->message, "table name"));
	}
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, NULL, 5000), SL_EINVAL);

	/* an existing table without a column we need, or with the wrong type */
	tu_sql(admin, NULL, 0, "DROP TABLE IF EXISTS t_other");
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE t_other (key text PRIMARY KEY, value bytea, deleted boolean,"
	       " updated_at timestamptz)");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "no column \"version\""));
	tu_sql(admin, NULL, 0, "ALTER TABLE t_other ADD version integer");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(
	        strstr(sl_error_last()->message, "\"version\" of type integer, not bigint"));
	tu_sql(admin, NULL, 0,
	       "ALTER TABLE t_other ALTER version TYPE bigint, DROP CONSTRAINT t_other_pkey");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "unique index on key"));
	/* with the key back it works, collation "default" and all */
	tu_sql(admin, NULL, 0, "ALTER TABLE t_other ADD PRIMARY KEY (key)");
	assert_int_equal(sl_tier_pg_open(&t, svc.pg_url, "t_other", 5000), SL_OK);
	t.ops->close(t.impl);

	/* a server that is not there */
	assert_int_equal(sl_tier_pg_open(&t, "postgresql://sluice@127.0.0.1:1/sluice", "t", 1000),
	                 SL_EIO);
}

/* Throughput of the fast path: printed, not checked. */
static void test_batch_rate(void **state)
{
	enum { BATCH = 1000, ROUNDS = 10 };
	sl_tier t = open_tier("t_rate", 10000);
	static char keys[BATCH][24];
	static uint8_t value[256];
	sl_tier_row *rows = calloc(BATCH, sizeof(*rows));
	uint64_t start;
	double secs;
	(void)state;

	memset(value, 'v', sizeof(value));
	start = sl_clock_mono_ns();
	for (size_t round = 0; round < ROUNDS; round++) {
		for (size_t i = 0; i < BATCH; i++) {
			snprintf(keys[i], sizeof(keys[i]), "user/%06zu", round * BATCH + i);
			tu_put(&rows[i], keys[i], "", 1);
			rows[i].value = value;
			rows[i].value_len = sizeof(value);
		}
		tu_write_ok(&t, rows, BATCH);
	}
	secs = (double)(sl_clock_mono_ns() - start) / 1e9;
	printf("tier_pg: %d batches of %d rows (256-byte values, new keys): %.0f rows/s\n", ROUNDS,
	       BATCH, ROUNDS * BATCH / secs);
	start = sl_clock_mono_ns();
	for (size_t round = 0; round < ROUNDS; round++) {
		for (size_t i = 0; i < BATCH; i++) {
			snprintf(keys[i], sizeof(keys[i]), "user/%06zu", round * BATCH + i);
			tu_put(&rows[i], keys[i], "", 2);
			rows[i].value = value;
			rows[i].value_len = sizeof(value);
		}
		tu_write_ok(&t, rows, BATCH);
	}
	secs = (double)(sl_clock_mono_ns() - start) / 1e9;
	printf("tier_pg: %d batches of %d rows (256-byte values, updates): %.0f rows/s\n", ROUNDS,
	       BATCH, ROUNDS * BATCH / secs);
	free(rows);
	t.ops->close(t.impl);
}

/* PostgreSQL stopped: write fails and commits nothing; started again: the
 * same tier writes and reads without being reopened. */
static void test_stop_start(void **state)
{
	sl_tier t = open_tier("t_stop", 2000);
	sl_tier_row rows[3];
	uint64_t v;
	int deleted;
	sl_buf value = SL_BUF_INIT(64);
	int rc;
	(void)state;

	tu_put(&rows[0], "before", "1", 1);
	tu_write_ok(&t, rows, 1);
	PQfinish(admin);
	assert_int_equal(tu_services_run(&svc, "stop-pg"), 0);
	tu_put(&rows[0], "during1", "x", 2);
	tu_put(&rows[1], "during2", "y", 2);
	tu_del(&rows[2], "before", 2);
	rc = t.ops->write(t.impl, rows, 3);
	assert_true(rc == SL_EIO || rc == SL_ETIMEOUT);
	assert_non_null(strstr(sl_error_last()->message, "PostgreSQL"));
	rc = t.ops->get(t.impl, "before", 6, &value, &v, &deleted);
	assert_true(rc == SL_EIO || rc == SL_ETIMEOUT);
	assert_int_equal(tu_services_run(&svc, "start-pg"), 0);
	admin = tu_pg_connect(svc.pg_url);
	/* nothing of the failed batch is there */
	assert_int_equal(sql_long("SELECT count(*) FROM %s WHERE key LIKE 'during%%'", "t_stop"),
	                 0);
	tu_expect_row(&t, "before", "1", 1);
	tu_write_ok(&t, rows, 3);
	tu_expect_flags(&rows[2], 1, 1, 0);
	tu_expect_row(&t, "during1", "x", 2);
	tu_expect_row(&t, "before", NULL, 2);

	/* a restart while idle is noticed before the next call */
	assert_int_equal(tu_services_run(&svc, "restart-pg"), 0);
	tu_put(&rows[0], "after", "z", 3);
	tu_write_ok(&t, rows, 1);
	tu_expect_row(&t, "after", "z", 3);
	PQfinish(admin);
	admin = tu_pg_connect(svc.pg_url);
	sl_buf_free(&value);
	t.ops->close(t.impl);
}

/* The postmaster and its children, from postmaster.pid and pgrep -P. */
static size_t pg_pids(pid_t *pids, size_t cap)
{
	char path[1200], line[64];
	FILE *f;
	size_t n = 0;
	snprintf(path, sizeof(path), "%s/pg/postmaster.pid", svc.dir);
	if ((f = fopen(path, "r")) == NULL || fgets(line, sizeof(line), f) == NULL)
		fail_msg("read %s", path);
	fclose(f);
	pids[n++] = (pid_t)atol(line);
	snprintf(path, sizeof(path), "pgrep -P %ld", (long)pids[0]);
	if ((f = popen(path, "r")) == NULL)
		fail_msg("pgrep");
	while (n < cap && fgets(line, sizeof(line), f) != NULL)
		pids[n++] = (pid_t)atol(line);
	pclose(f);
	return n;
}

static void signal_all(const pid_t *pids, size_t n, int sig)
{
	for (size_t i = 0; i < n; i++)
		kill(pids[i], sig);
}

/* A frozen server (SIGSTOP): write and get fail within about the timeout
 * instead of hanging; after SIGCONT the next write works. */
static void test_frozen(void **state)
{
	sl_tier t = open_tier("t_frozen", 1000);
	sl_tier_row rows[2];
	pid_t pids[256];
	size_t n_pids;
	uint64_t start, write_ms, get_ms, v;
	int write_rc, get_rc, deleted;
	sl_buf value = SL_BUF_INIT(64);
	(void)state;

	tu_put(&rows[0], "warm", "1", 1);
	tu_write_ok(&t, rows, 1);
	tu_expect_row(&t, "warm", "1", 1);
	n_pids = pg_pids(pids, 256);
	assert_true(n_pids > 2);

	signal_all(pids, n_pids, SIGSTOP);
	tu_put(&rows[0], "frozen1", "x", 2);
	tu_put(&rows[1], "frozen2", "y", 2);
	start = sl_clock_mono_ns();
	write_rc = t.ops->write(t.impl, rows, 2);
	write_ms = (sl_clock_mono_ns() - start) / 1000000;
	start = sl_clock_mono_ns();
	get_rc = t.ops->get(t.impl, "warm", 4, &value, &v, &deleted);
	get_ms = (sl_clock_mono_ns() - start) / 1000000;
	/* a new connection while frozen times out as well */
	start = sl_clock_mono_ns();
	int again_rc = t.ops->write(t.impl, rows, 2);
	uint64_t again_ms = (sl_clock_mono_ns() - start) / 1000000;
	signal_all(pids, n_pids, SIGCONT);

	printf("frozen: write %d in %llu ms, get %d in %llu ms, reconnect %d in %llu ms\n",
	       write_rc, (unsigned long long)write_ms, get_rc, (unsigned long long)get_ms, again_rc,
	       (unsigned long long)again_ms);
	assert_true(write_rc == SL_ETIMEOUT || write_rc == SL_EIO);
	assert_true(get_rc == SL_ETIMEOUT || get_rc == SL_EIO);
	assert_true(again_rc == SL_ETIMEOUT || again_rc == SL_EIO);
	/* bounded: about timeout_ms plus a grace, far from forever */
	assert_true(write_ms < 5000);
	assert_true(get_ms < 5000);
	assert_true(again_ms < 5000);

	tu_write_ok(&t, rows, 2);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_row(&t, "frozen1", "x", 2);
	tu_expect_row(&t, "warm", "1", 1);
	sl_buf_free(&value);
	t.ops->close(t.impl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_creates),  cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_version_guard), cmocka_unit_test(test_batch_of_new_keys),
	        cmocka_unit_test(test_refused_rows),  cmocka_unit_test(test_scan_paging),
	        cmocka_unit_test(test_position),      cmocka_unit_test(test_bad_names),
	        cmocka_unit_test(test_batch_rate),    cmocka_unit_test(test_stop_start),
	        cmocka_unit_test(test_frozen),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
