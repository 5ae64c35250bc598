/*
 * Tests for the PostgreSQL source and fetcher against a real PostgreSQL 15
 * started by scripts/services.sh. Each test makes its own object_index-like
 * table (data_type text or an enum, data bytea or text), fills it through a
 * separate libpq connection and checks what the source lists and the
 * fetcher reads: key layout, page boundaries inside one created_at, since,
 * the commit horizon against a transaction left open, byte-exact parts,
 * lag, and a server restart between calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_testutil.h"
#include "services.h"
#include "sluice/connect.h"

static tu_services svc;
static PGconn *admin;

#define ID(n) "00000000-0000-4000-8000-0000000000" n
#define COMP  "11111111-1111-4111-8111-111111111111"
#define AGENT "22222222-2222-4222-8222-222222222222"

/* A fresh table `name`; data_type an enum when `enum_type`, data bytea
 * when `bytea` (else text). */
static void make_table(const char *name, int enum_type, int bytea)
{
	tu_sql(admin, NULL, 0, "DROP TABLE IF EXISTS %s", name);
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE %s (id uuid PRIMARY KEY, object_key text, competition_id uuid,"
	       " agent_id uuid, data_type %s NOT NULL, data %s, size_bytes bigint, metadata jsonb,"
	       " event_timestamp timestamptz, created_at timestamptz NOT NULL DEFAULT now())",
	       name, enum_type ? "dtype" : "text", bytea ? "bytea" : "text");
}

static sl_pg_config config(const char *table)
{
	sl_pg_config cfg;
	sl_pg_config_init(&cfg);
	cfg.url = svc.pg_url;
	cfg.table = table;
	cfg.timeout_ms = 5000;
	cfg.reconnect_ms = 30000;
	return cfg;
}

static sl_pg_source *open_source(const sl_pg_config *cfg)
{
	sl_pg_source *s = NULL;
	int rc = sl_pg_source_open(&s, cfg);
	if (rc != SL_OK)
		fail_msg("open: %s", sl_error_last()->message);
	return s;
}

static void next_ok(sl_pg_source *s, const sl_cursor *after, const char *since, size_t limit,
                    sl_row_batch *out, int *held_by)
{
	int rc = sl_pg_source_next(s, after, since, limit, out, held_by);
	if (rc != SL_OK)
		fail_msg("next: %s", sl_error_last()->message);
}

static void advance(sl_cursor *c, const sl_row *row)
{
	snprintf(c->created_at, sizeof(c->created_at), "%s", row->created_at);
	snprintf(c->id, sizeof(c->id), "%s", row->id);
}

static int setup(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "pg") != 0) {
		fprintf(stderr, "could not start PostgreSQL\n");
		return -1;
	}
	admin = tu_pg_connect(svc.pg_url);
	tu_sql(admin, NULL, 0, "CREATE TYPE dtype AS ENUM ('replay', 'log', 'trace')");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	PQfinish(admin);
	tu_services_stop(&svc);
	return 0;
}

/* ------------------------------------------------------------------ rows */

static void test_keys(void **state)
{
	sl_pg_config cfg = config("t_keys");
	sl_pg_source *s;
	sl_row_batch b;
	int held = -1;
	(void)state;

	make_table("t_keys", 0, 1);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_keys (id, competition_id, agent_id, data_type, data, created_at) "
	       "VALUES"
	       " ('" ID(
	               "01") "', '" COMP "', '" AGENT "', 'replay', 'abc', '2024-01-01 00:00:01Z'),"
	                     " ('" ID("02") "', '" COMP
	                                    "', NULL, 'log', '', '2024-01-01 00:00:02.5Z'),"
	                                    " ('" ID("03") "', NULL, '" AGENT
	                                                   "', 'trace', NULL, '2024-01-01 "
	                                                   "02:00:03+02'),"
	                                                   " ('" ID(
	                                                           "04") "', NULL, NULL, 'replay', "
	                                                                 "'\\x00ff', '2024-01-01 "
	                                                                 "00:00:04.000001Z')");
	s = open_source(&cfg);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 4);
	assert_int_equal(held, 0);
	assert_string_equal(b.rows[0].key, COMP "/" AGENT "/replay/" ID("01"));
	assert_string_equal(b.rows[1].key, COMP "/log/" ID("02"));
	assert_string_equal(b.rows[2].key, AGENT "/trace/" ID("03"));
	assert_string_equal(b.rows[3].key, "replay/" ID("04"));
	assert_string_equal(b.rows[0].created_at, "2024-01-01 00:00:01.000000+00");
	assert_string_equal(b.rows[1].created_at, "2024-01-01 00:00:02.500000+00");
	assert_string_equal(b.rows[2].created_at, "2024-01-01 00:00:03.000000+00");
	assert_string_equal(b.rows[3].created_at, "2024-01-01 00:00:04.000001+00");
	assert_string_equal(b.rows[0].id, ID("01"));
	assert_int_equal(b.rows[0].size, 3);
	assert_int_equal(b.rows[1].size, 0);
	assert_int_equal(b.rows[2].size, -1);
	assert_int_equal(b.rows[3].size, 2);
	assert_null(b.rows[0].object_key);
	for (size_t i = 0; i < 4; i++)
		assert_null(b.rows[i].error);
	/* small objects come with their row; NULL data does not */
	assert_true(b.rows[0].has_data);
	assert_int_equal(b.rows[0].data_len, 3);
	assert_memory_equal(b.rows[0].data, "abc", 3);
	assert_true(b.rows[1].has_data);
	assert_int_equal(b.rows[1].data_len, 0);
	assert_false(b.rows[2].has_data);
	assert_true(b.rows[3].has_data);
	assert_memory_equal(b.rows[3].data, "\x00\xff", 2);
	sl_row_batch_free(&b);

	/* A row whose key cannot be built comes back with the reason, and the
	 * rows after it still come: one bad row does not stop the pipeline. */
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_keys (id, data_type, data, created_at) VALUES"
	       " ('" ID("05") "', 'a/../b', 'x', '2024-01-01 00:00:05Z'),"
	                      " ('" ID("06") "', 'log', 'y', '2024-01-01 00:00:06Z')");
	sl_cursor after = {"2024-01-01 00:00:04.000001+00", ID("04")};
	next_ok(s, &after, NULL, 10, &b, &held);
	assert_int_equal(b.n, 2);
	assert_null(b.rows[0].key);
	assert_non_null(b.rows[0].error);
	assert_non_null(strstr(b.rows[0].error, ID("05")));
	assert_string_equal(b.rows[1].key, "log/" ID("06"));
	sl_row_batch_free(&b);
	sl_pg_source_close(s);
}

/* A page carries at most 16 MiB of small objects' bytes, whatever its row
 * count: past that, in page order, rows come without their bytes (the
 * fetchers read them). */
static void test_inline_bytes_per_page(void **state)
{
	sl_pg_config cfg = config("t_inline");
	sl_pg_source *s;
	sl_row_batch b;
	int held = -1;
	(void)state;

	make_table("t_inline", 0, 1);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_inline (id, data_type, data, created_at)"
	       " SELECT gen_random_uuid(), 'log', decode(repeat(md5(g::text), 1024), 'hex'),"
	       " '2024-01-01Z'::timestamptz + g * interval '1 second'"
	       " FROM generate_series(1, 1100) g");
	s = open_source(&cfg);
	next_ok(s, NULL, NULL, 1100, &b, &held);
	assert_int_equal(b.n, 1100);
	for (size_t i = 0; i < b.n; i++) {
		assert_int_equal(b.rows[i].size, 16384);
		if (i < 1024) { /* 1024 x 16 KiB = 16 MiB */
			assert_true(b.rows[i].has_data);
			assert_int_equal(b.rows[i].data_len, 16384);
		} else {
			assert_false(b.rows[i].has_data);
		}
	}
	sl_row_batch_free(&b);
	sl_pg_source_close(s);
}

/* A row newer than the horizon's clock margin (here: in the future) is
 * held back with held_by -1, not a pid: no transaction holds it. */
static void test_clock_margin(void **state)
{
	sl_pg_config cfg = config("t_margin");
	sl_pg_source *s;
	sl_row_batch b;
	int held = 0;
	(void)state;

	make_table("t_margin", 0, 1);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_margin (id, data_type, data, created_at) VALUES"
	       " ('" ID("01") "', 'log', 'a', '2024-01-01Z'),"
	                      " ('" ID("02") "', 'log', 'b', now() + interval '1 hour')");
	s = open_source(&cfg);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	assert_int_equal(held, -1);
	sl_row_batch_free(&b);
	sl_pg_source_close(s);
}

/* Five rows share one created_at; pages of three must give all five, in
 * id order, none twice, and the cursor text must round-trip. */
static void test_pages_same_created_at(void **state)
{
	sl_pg_config cfg = config("t_pages");
	sl_pg_source *s;
	sl_row_batch b;
	sl_cursor cur = {"", ""};
	const char *want[] = {ID("01"), ID("02"), ID("03"), ID("04"), ID("05"), ID("06")};
	size_t seen = 0;
	int held;
	(void)state;

	make_table("t_pages", 1, 1);
	/* inserted out of id order, one row a microsecond later */
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_pages (id, data_type, data, created_at) VALUES"
	       " ('" ID(
	               "04") "', 'log', 'x', '2024-05-05 05:05:05.123456Z'),"
	                     " ('" ID(
	                             "02") "', 'log', 'x', '2024-05-05 05:05:05.123456Z'),"
	                                   " ('" ID(
	                                           "05") "', 'replay', 'x', '2024-05-05 "
	                                                 "05:05:05.123456Z'),"
	                                                 " ('" ID(
	                                                         "06") "', 'log', 'x', '2024-05-05 "
	                                                               "05:05:05.123457Z'),"
	                                                               " ('" ID(
	                                                                       "01") "', 'trace', "
	                                                                             "'x', "
	                                                                             "'2024-05-05 "
	                                                                             "05:05:05."
	                                                                             "123456Z'),"
	                                                                             " ('" ID(
	                                                                                     "03") "'"
	                                                                                           ","
	                                                                                           " "
	                                                                                           "'"
	                                                                                           "l"
	                                                                                           "o"
	                                                                                           "g"
	                                                                                           "'"
	                                                                                           ","
	                                                                                           " "
	                                                                                           "'"
	                                                                                           "x"
	                                                                                           "'"
	                                                                                           ","
	                                                                                           " "
	                                                                                           "'"
	                                                                                           "2"
	                                                                                           "0"
	                                                                                           "2"
	                                                                                           "4"
	                                                                                           "-"
	                                                                                           "0"
	                                                                                           "5"
	                                                                                           "-"
	                                                                                           "0"
	                                                                                           "5"
	                                                                                           " "
	                                                                                           "0"
	                                                                                           "5"
	                                                                                           ":"
	                                                                                           "0"
	                                                                                           "5"
	                                                                                           ":"
	                                                                                           "0"
	                                                                                           "5"
	                                                                                           "."
	                                                                                           "1"
	                                                                                           "2"
	                                                                                           "3"
	                                                                                           "4"
	                                                                                           "5"
	                                                                                           "6"
	                                                                                           "Z"
	                                                                                           "'"
	                                                                                           ")");
	s = open_source(&cfg);
	for (int page = 0; page < 4; page++) {
		next_ok(s, &cur, NULL, 3, &b, &held);
		assert_true(b.n <= 3);
		for (size_t i = 0; i < b.n; i++) {
			assert_true(seen < 6);
			assert_string_equal(b.rows[i].id, want[seen]);
			seen++;
			advance(&cur, &b.rows[i]);
		}
		sl_row_batch_free(&b);
	}
	assert_int_equal(seen, 6);
	assert_string_equal(cur.created_at, "2024-05-05 05:05:05.123457+00");
	/* a cursor made from the fifth row gives exactly the sixth */
	snprintf(cur.created_at, sizeof(cur.created_at), "2024-05-05 05:05:05.123456+00");
	snprintf(cur.id, sizeof(cur.id), ID("05"));
	next_ok(s, &cur, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.rows[0].id, ID("06"));
	assert_string_equal(b.rows[0].key, "log/" ID("06"));
	sl_row_batch_free(&b);
	sl_pg_source_close(s);
}

static void test_since_and_limit(void **state)
{
	sl_pg_config cfg = config("t_since");
	sl_pg_source *s;
	sl_row_batch b;
	int held;
	const char *bad[] = {"yesterday",
	                     "2024-13-01T00:00:00Z",
	                     "2024-01-01",
	                     "2024-01-01T00:00:00",
	                     "2024-01-01T00:00:00Zjunk",
	                     "2024-02-30T00:00:00Z",
	                     ""};
	(void)state;

	make_table("t_since", 0, 0);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_since (id, data_type, data, created_at) VALUES"
	       " ('" ID("01") "', 'log', 'a', '2024-01-01 00:00:01Z'),"
	                      " ('" ID("02") "', 'log', 'b', '2024-01-01 00:00:02Z'),"
	                                     " ('" ID(
	                                             "03") "', 'log', 'c', '2024-01-01 00:00:03Z'),"
	                                                   " ('" ID(
	                                                           "04") "', 'log', 'd', "
	                                                                 "'2024-01-01 00:00:04Z')");
	s = open_source(&cfg);
	next_ok(s, NULL, "2024-01-01T00:00:02Z", 10, &b, &held);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.rows[0].id, ID("03"));
	sl_row_batch_free(&b);
	/* the same instant with an offset, and with a fraction */
	next_ok(s, NULL, "2024-01-01T02:00:02.5+02:00", 10, &b, &held);
	assert_int_equal(b.n, 2);
	sl_row_batch_free(&b);
	next_ok(s, NULL, NULL, 2, &b, &held);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.rows[1].id, ID("02"));
	sl_row_batch_free(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = sl_pg_source_next(s, NULL, bad[i], 10, &b, &held);
		if (rc != SL_EINVAL)
			fail_msg("since '%s': rc %d", bad[i], rc);
		assert_non_null(strstr(sl_error_last()->message, "since"));
	}
	assert_int_equal(sl_pg_source_next(s, NULL, NULL, 0, &b, &held), SL_EINVAL);
	sl_pg_source_close(s);
}

/* recall-synchronizer's table records each object's bucket, size and hash:
 * rows carry them, a hash only when it is a SHA-256 (64 hex digits, either
 * case), a bucket only in S3 mode. A table without those columns lists
 * rows without them, in both modes. */
static void test_recorded_columns(void **state)
{
	static const char sha[] =
	        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	sl_pg_config cfg = config("t_recall");
	sl_pg_source *s;
	sl_row_batch b;
	sl_row row;
	int held;
	(void)state;

	tu_sql(admin, NULL, 0, "DROP TABLE IF EXISTS t_recall");
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE t_recall (id uuid PRIMARY KEY, object_key text UNIQUE NOT NULL,"
	       " bucket_name varchar(100) NOT NULL DEFAULT '', competition_id uuid,"
	       " agent_id uuid, data_type varchar(50) NOT NULL, size_bytes bigint,"
	       " content_hash varchar(128), metadata jsonb, event_timestamp timestamptz,"
	       " object_last_modified_at timestamptz NOT NULL DEFAULT now(),"
	       " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL"
	       " DEFAULT now(), data bytea)");
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_recall (id, object_key, bucket_name, data_type, size_bytes,"
	       " content_hash, data, created_at) VALUES"
	       " ('" ID("01") "', 'k1', 'other-bucket', 'log', 4, '%s', 'test', '2024-01-01Z'),"
	                      " ('" ID(
	                              "02") "', 'k2', '', 'log', NULL, upper('%s'), 'x', "
	                                    "'2024-01-02Z'),"
	                                    " ('" ID(
	                                            "03") "', 'k3', 'b', 'log', -1, "
	                                                  "'a1b2c3d4e5f60718', 'y', '2024-01-03Z'),"
	                                                  " ('" ID("04") "', 'k4', 'bad/bucket', "
	                                                                 "'log', 0, NULL, '', "
	                                                                 "'2024-01-04Z'),"
	                                                                 " ('" ID("05") "', 'k5', "
	                                                                                "'b', "
	                                                                                "'log', 1, "
	                                                                                "'%.63sg', "
	                                                                                "'z', "
	                                                                                "'2024-01-"
	                                                                                "05Z')",
	       sha, sha, sha);

	cfg.s3_mode = 1;
	s = open_source(&cfg);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 5);
	assert_string_equal(b.rows[0].bucket, "other-bucket");
	assert_int_equal(b.rows[0].size, 4);
	assert_true(b.rows[0].size_recorded);
	assert_true(b.rows[0].has_content_sha256);
	assert_memory_equal(b.rows[0].content_sha256, "\x9f\x86\xd0\x81\x88\x4c", 6);
	assert_null(b.rows[1].bucket); /* empty: the configured bucket */
	assert_int_equal(b.rows[1].size, -1);
	assert_false(b.rows[1].size_recorded);
	assert_true(b.rows[1].has_content_sha256); /* upper case */
	assert_memory_equal(b.rows[1].content_sha256, b.rows[0].content_sha256, 32);
	assert_string_equal(b.rows[2].bucket, "b");
	assert_false(b.rows[2].size_recorded);      /* negative: not a size */
	assert_false(b.rows[2].has_content_sha256); /* 16 digits: not a SHA-256 */
	assert_null(b.rows[3].bucket);
	assert_non_null(b.rows[3].error); /* a bucket name that cannot be one */
	assert_non_null(strstr(b.rows[3].error, "bucket_name"));
	assert_non_null(strstr(b.rows[3].error, ID("04")));
	assert_false(b.rows[4].has_content_sha256); /* not hex */
	assert_true(b.rows[4].size_recorded);
	for (size_t i = 0; i < b.n; i++)
		assert_false(b.rows[i].has_data);
	sl_row_batch_free(&b);
	assert_int_equal(sl_pg_source_get(s, ID("01"), &row), SL_OK);
	assert_string_equal(row.bucket, "other-bucket");
	assert_true(row.has_content_sha256);
	sl_row_free(&row);
	sl_pg_source_close(s);

	/* Direct mode: no bucket; size_bytes is the recorded size, the data
	 * column's length the size otherwise. */
	cfg.s3_mode = 0;
	s = open_source(&cfg);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 5);
	assert_null(b.rows[0].bucket);
	assert_true(b.rows[0].has_content_sha256);
	assert_true(b.rows[0].size_recorded);
	assert_int_equal(b.rows[0].size, 4);
	assert_false(b.rows[1].size_recorded);
	assert_int_equal(b.rows[1].size, 1);
	assert_null(b.rows[3].error);
	assert_true(b.rows[3].size_recorded);
	assert_int_equal(b.rows[3].size, 0);
	sl_row_batch_free(&b);
	sl_pg_source_close(s);

	/* Without the columns (and other names for them), nothing is recorded. */
	cfg.col_bucket_name = "no_bucket";
	cfg.col_content_hash = "no_hash";
	cfg.col_size_bytes = "no_size";
	for (int mode = 0; mode < 2; mode++) {
		cfg.s3_mode = mode;
		s = open_source(&cfg);
		next_ok(s, NULL, NULL, 10, &b, &held);
		assert_int_equal(b.n, 5);
		for (size_t i = 0; i < b.n; i++) {
			assert_null(b.rows[i].bucket);
			assert_null(b.rows[i].error);
			assert_false(b.rows[i].has_content_sha256);
			assert_false(b.rows[i].size_recorded);
			assert_int_equal(b.rows[i].size, mode ? -1 : (i == 0 ? 4 : i == 3 ? 0 : 1));
		}
		sl_row_batch_free(&b);
		sl_pg_source_close(s);
	}
}

/* ------------------------------------------------------------ horizon */

static void test_late_commit(void **state)
{
	sl_pg_config cfg = config("t_late");
	sl_pg_source *s;
	sl_source src;
	sl_row_batch b;
	sl_cursor cur = {"", ""};
	PGconn *late = tu_pg_connect(svc.pg_url);
	int held = -1;
	(void)state;

	make_table("t_late", 1, 0);
	cfg.s3_mode = 1;
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_late (id, object_key, data_type, size_bytes, created_at)"
	       " VALUES ('" ID("01") "', 'old/one', 'log', 7, '2020-01-01Z')");
	tu_sql(late, NULL, 0, "BEGIN");
	tu_sql(late, NULL, 0,
	       "INSERT INTO t_late (id, object_key, data_type) VALUES"
	       " ('" ID("99") "', 'late/one', 'replay')");
	sl_sleep_ms(300);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_late (id, object_key, data_type, size_bytes) VALUES"
	       " ('" ID("02") "', 'new/two', 'log', 2), ('" ID("03") "', 'new/three', 'log', 3)");
	sl_sleep_ms(300);

	s = open_source(&cfg);
	sl_pg_source_bind(&src, s);
	assert_int_equal(src.ops->next(src.self, &cur, NULL, 10, &b, &held), SL_OK);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.rows[0].id, ID("01"));
	assert_string_equal(b.rows[0].object_key, "old/one");
	assert_int_equal(b.rows[0].size, 7);
	assert_int_equal(held, PQbackendPID(late));
	advance(&cur, &b.rows[0]);
	sl_row_batch_free(&b);

	/* still held while the transaction is open */
	assert_int_equal(src.ops->next(src.self, &cur, NULL, 10, &b, &held), SL_OK);
	assert_int_equal(b.n, 0);
	assert_null(b.rows);
	assert_int_equal(held, PQbackendPID(late));

	tu_sql(late, NULL, 0, "COMMIT");
	sl_sleep_ms(200);
	assert_int_equal(src.ops->next(src.self, &cur, NULL, 10, &b, &held), SL_OK);
	assert_int_equal(held, 0);
	assert_int_equal(b.n, 3);
	assert_string_equal(b.rows[0].id, ID("99"));
	assert_string_equal(b.rows[0].key, "replay/" ID("99"));
	assert_int_equal(b.rows[0].size, -1); /* size_bytes NULL */
	assert_string_equal(b.rows[1].id, ID("02"));
	assert_string_equal(b.rows[2].id, ID("03"));
	sl_row_batch_free(&b);
	sl_source_close(&src);
	PQfinish(late);
}

/* A role without pg_read_all_stats cannot see when another role's
 * transaction started: the source says so in a warning, once. */
static void test_hidden_transactions_warn(void **state)
{
	sl_pg_config cfg = config("t_hidden");
	char url[512], line[1024];
	sl_pg_source *s;
	sl_row_batch b;
	PGconn *writer;
	FILE *log = tmpfile();
	int held, warnings = 0;
	(void)state;

	make_table("t_hidden", 0, 1);
	tu_sql(admin, NULL, 0,
	       "DO $$ BEGIN CREATE ROLE reader LOGIN; CREATE ROLE writer LOGIN;"
	       " EXCEPTION WHEN duplicate_object THEN NULL; END $$");
	tu_sql(admin, NULL, 0,
	       "GRANT SELECT ON t_hidden TO reader; GRANT ALL ON t_hidden TO writer");
	snprintf(url, sizeof(url), "postgresql://writer@127.0.0.1:%d/sluice", svc.pg_port);
	writer = PQconnectdb(url);
	assert_int_equal(PQstatus(writer), CONNECTION_OK);
	tu_sql(writer, NULL, 0, "BEGIN");
	tu_sql(writer, NULL, 0,
	       "INSERT INTO t_hidden (id, data_type) VALUES ('" ID("01") "', 'log')");

	snprintf(url, sizeof(url), "postgresql://reader@127.0.0.1:%d/sluice", svc.pg_port);
	cfg.url = url;
	s = open_source(&cfg);
	assert_non_null(log);
	sl_log_set_output(log);
	next_ok(s, NULL, NULL, 10, &b, &held);
	next_ok(s, NULL, NULL, 10, &b, &held);
	sl_log_set_output(NULL);
	rewind(log);
	while (fgets(line, sizeof(line), log) != NULL)
		warnings += strstr(line, "pg_read_all_stats") != NULL;
	assert_int_equal(warnings, 1);
	assert_int_equal(held, 0);
	fclose(log);
	tu_sql(writer, NULL, 0, "ROLLBACK");
	PQfinish(writer);
	sl_pg_source_close(s);
}

/* ------------------------------------------------------------ get, lag */

static void test_get_and_lag(void **state)
{
	sl_pg_config cfg = config("t_get");
	sl_pg_source *s;
	sl_row row;
	sl_cursor cur = {"2024-01-01 00:00:02.000000+00", ID("02")};
	char newest[SL_TS_TEXT_MAX];
	uint64_t n = 99;
	(void)state;

	make_table("t_get", 1, 1);
	s = open_source(&cfg);
	assert_int_equal(sl_pg_source_lag(s, NULL, NULL, newest, &n), SL_OK);
	assert_string_equal(newest, "");
	assert_int_equal(n, 0);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_get (id, competition_id, data_type, data, created_at) VALUES"
	       " ('" ID("01") "', '" COMP "', 'log', 'a', '2024-01-01 00:00:01Z'),"
	                      " ('" ID("02") "', NULL, 'log', 'bb', '2024-01-01 00:00:02Z'),"
	                                     " ('" ID(
	                                             "03") "', NULL, 'trace', 'ccc', '2024-01-01 "
	                                                   "00:00:02Z'),"
	                                                   " ('" ID(
	                                                           "04") "', NULL, 'log', 'dddd', "
	                                                                 "'2024-01-01 00:00:04Z')");
	assert_int_equal(sl_pg_source_get(s, ID("01"), &row), SL_OK);
	assert_string_equal(row.key, COMP "/log/" ID("01"));
	assert_string_equal(row.created_at, "2024-01-01 00:00:01.000000+00");
	assert_int_equal(row.size, 1);
	sl_row_free(&row);
	assert_int_equal(sl_pg_source_get(s, ID("77"), &row), SL_ENOTFOUND);
	assert_int_equal(sl_pg_source_get(s, "not-a-uuid", &row), SL_EINVAL);

	assert_int_equal(sl_pg_source_lag(s, NULL, NULL, newest, &n), SL_OK);
	assert_string_equal(newest, "2024-01-01 00:00:04.000000+00");
	assert_int_equal(n, 4);
	assert_int_equal(sl_pg_source_lag(s, &cur, NULL, newest, &n), SL_OK);
	assert_int_equal(n, 2);
	assert_int_equal(sl_pg_source_lag(s, NULL, "2024-01-01T00:00:01Z", newest, &n), SL_OK);
	assert_int_equal(n, 3);
	assert_int_equal(sl_pg_source_lag(s, NULL, "soon", newest, &n), SL_EINVAL);
	sl_pg_source_close(s);
}

/* -------------------------------------------------------------- fetcher */

static void insert_blob(const char *table, const char *id, const void *data, int len)
{
	const char *values[2] = {id, data};
	int lengths[2] = {0, len}, formats[2] = {0, 1};
	char sql[256];
	PGresult *res;
	snprintf(sql, sizeof(sql),
	         "INSERT INTO %s (id, data_type, data) VALUES ($1::uuid, 'log', $2)", table);
	res = PQexecParams(admin, sql, 2, NULL, values, data ? lengths : NULL,
	                   data ? formats : NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("insert: %s", PQresultErrorMessage(res));
	PQclear(res);
}

/* Reads a row in parts of `part` bytes into out (cap bytes). */
static int read_all(sl_fetcher *f, const char *id, size_t part, uint8_t *out, size_t cap,
                    size_t *len)
{
	sl_row row = {0};
	uint64_t total = 0, offset = 0;
	snprintf(row.id, sizeof(row.id), "%s", id);
	for (;;) {
		const uint8_t *data = NULL;
		size_t n = 0;
		int rc = f->ops->read(f->self, &row, offset, part, &data, &n, &total);
		if (rc != SL_OK)
			return rc;
		assert_true(n <= part);
		assert_true(offset + n <= cap);
		memcpy(out + offset, data, n);
		offset += n;
		if (offset >= total || n == 0)
			break;
	}
	assert_int_equal(offset, total);
	*len = (size_t)offset;
	return SL_OK;
}

static void test_fetcher_bytea(void **state)
{
	sl_pg_config cfg = config("t_fetch_bytea");
	sl_fetcher f = {0};
	uint8_t blob[1000], got[1100];
	size_t len;
	(void)state;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7 + (i >> 3));
	blob[0] = 0;
	make_table("t_fetch_bytea", 0, 1);
	insert_blob("t_fetch_bytea", ID("01"), blob, (int)sizeof(blob));
	insert_blob("t_fetch_bytea", ID("02"), "", 0);
	insert_blob("t_fetch_bytea", ID("03"), NULL, 0);
	assert_int_equal(sl_pg_fetcher_open(&f, &cfg), SL_OK);
	assert_int_equal(read_all(&f, ID("01"), 300, got, sizeof(got), &len), SL_OK);
	assert_int_equal(len, sizeof(blob));
	assert_memory_equal(got, blob, sizeof(blob));
	assert_int_equal(read_all(&f, ID("01"), 4096, got, sizeof(got), &len), SL_OK);
	assert_memory_equal(got, blob, sizeof(blob));
	assert_int_equal(read_all(&f, ID("02"), 300, got, sizeof(got), &len), SL_OK);
	assert_int_equal(len, 0);
	assert_int_equal(read_all(&f, ID("03"), 300, got, sizeof(got), &len), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "no data"));
	assert_int_equal(read_all(&f, ID("55"), 300, got, sizeof(got), &len), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "gone"));
	sl_fetcher_close(&f);
}

static void test_fetcher_text(void **state)
{
	sl_pg_config cfg = config("public.t_fetch_text");
	sl_fetcher f = {0};
	char text[800];
	uint8_t got[900];
	size_t len, n = 0;
	(void)state;

	while (n + 20 < sizeof(text))
		n += (size_t)snprintf(text + n, sizeof(text) - n, "h\xc3\xa9llo \xe2\x9c\x93 ");
	make_table("t_fetch_text", 1, 0);
	insert_blob("t_fetch_text", ID("01"), text, (int)n);
	insert_blob("t_fetch_text", ID("02"), "", 0);
	assert_int_equal(sl_pg_fetcher_open(&f, &cfg), SL_OK);
	/* 7-byte parts split the multi-byte characters */
	assert_int_equal(read_all(&f, ID("01"), 7, got, sizeof(got), &len), SL_OK);
	assert_int_equal(len, n);
	assert_memory_equal(got, text, n);
	assert_int_equal(read_all(&f, ID("02"), 7, got, sizeof(got), &len), SL_OK);
	assert_int_equal(len, 0);
	sl_fetcher_close(&f);
}

/* ------------------------------------------------------------- failures */

static void test_wrong_names(void **state)
{
	sl_pg_config cfg = config("no_such_table");
	sl_pg_source *s = NULL;
	sl_fetcher f = {0};
	(void)state;

	assert_int_equal(sl_pg_source_open(&s, &cfg), SL_EINVAL);
	assert_null(s);
	assert_non_null(strstr(sl_error_last()->message, "no_such_table"));
	assert_string_equal(sl_error_last()->cause, "sqlstate=42P01");
	assert_int_equal(sl_pg_fetcher_open(&f, &cfg), SL_EINVAL);
	assert_null(f.ops);
	assert_non_null(strstr(sl_error_last()->message, "no_such_table"));

	make_table("t_cols", 0, 1);
	cfg = config("t_cols");
	cfg.col_agent_id = "agent";
	assert_int_equal(sl_pg_source_open(&s, &cfg), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "agent"));
	cfg = config("t_cols");
	cfg.col_data = "payload";
	assert_int_equal(sl_pg_fetcher_open(&f, &cfg), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "payload"));

	cfg = config("t_cols");
	cfg.url = "postgresql://sluice@127.0.0.1:1/sluice";
	assert_int_equal(sl_pg_source_open(&s, &cfg), SL_EIO);
}

/* Quoting: a schema and a table whose names need quotes. */
static void test_quoted_names(void **state)
{
	sl_pg_config cfg = config("Odd Schema.Object \"Index\"");
	sl_pg_source *s;
	sl_row_batch b;
	int held;
	(void)state;

	tu_sql(admin, NULL, 0, "CREATE SCHEMA IF NOT EXISTS \"Odd Schema\"");
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE \"Odd Schema\".\"Object \"\"Index\"\"\" (\"Id\" uuid, "
	       "\"Made\" timestamptz, data_type text, data bytea, competition_id uuid,"
	       " agent_id uuid)");
	tu_sql(admin, NULL, 0,
	       "INSERT INTO \"Odd Schema\".\"Object \"\"Index\"\"\" VALUES ('" ID(
	               "01") "',"
	                     " '2024-01-01Z', 'log', 'x', NULL, NULL)");
	cfg.col_id = "Id";
	cfg.col_created_at = "Made";
	s = open_source(&cfg);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.rows[0].key, "log/" ID("01"));
	sl_row_batch_free(&b);
	sl_pg_source_close(s);
}

/* A statement blocked behind another transaction's lock ends at
 * timeout_ms as SL_ETIMEOUT, and the source works again afterwards. */
static void test_statement_timeout(void **state)
{
	sl_pg_config cfg = config("t_lock");
	sl_pg_source *s;
	sl_row_batch b;
	sl_row row;
	PGconn *locker = tu_pg_connect(svc.pg_url);
	uint64_t start;
	int held;
	(void)state;

	make_table("t_lock", 0, 1);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_lock (id, data_type, data, created_at) VALUES"
	       " ('" ID("01") "', 'log', 'x', '2024-01-01Z')");
	cfg.timeout_ms = 1000;
	s = open_source(&cfg);
	tu_sql(locker, NULL, 0, "BEGIN");
	tu_sql(locker, NULL, 0, "LOCK TABLE t_lock IN ACCESS EXCLUSIVE MODE");
	start = sl_clock_mono_ns();
	assert_int_equal(sl_pg_source_next(s, NULL, NULL, 10, &b, &held), SL_ETIMEOUT);
	assert_string_equal(sl_error_last()->cause, "sqlstate=57014");
	assert_int_equal(sl_pg_source_get(s, ID("01"), &row), SL_ETIMEOUT);
	assert_true(sl_clock_mono_ns() - start < UINT64_C(5000000000));
	tu_sql(locker, NULL, 0, "ROLLBACK");
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	sl_row_batch_free(&b);
	sl_pg_source_close(s);
	PQfinish(locker);
}

static void test_restart(void **state)
{
	sl_pg_config cfg = config("t_restart");
	sl_pg_source *s;
	sl_fetcher f = {0};
	sl_row_batch b;
	sl_row row = {0};
	const uint8_t *data = NULL;
	size_t n;
	uint64_t total;
	int held;
	(void)state;

	make_table("t_restart", 0, 1);
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t_restart (id, data_type, data, created_at) VALUES"
	       " ('" ID("01") "', 'log', 'hello', '2024-01-01Z')");
	s = open_source(&cfg);
	assert_int_equal(sl_pg_fetcher_open(&f, &cfg), SL_OK);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	sl_row_batch_free(&b);

	assert_int_equal(tu_services_run(&svc, "restart-pg"), 0);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	snprintf(row.id, sizeof(row.id), "%s", b.rows[0].id);
	sl_row_batch_free(&b);
	assert_int_equal(f.ops->read(f.self, &row, 1, 64, &data, &n, &total), SL_OK);
	assert_int_equal(n, 4);
	assert_int_equal(total, 5);
	assert_memory_equal(data, "ello", 4);

	/* down for longer than reconnect_ms: SL_EIO with libpq's words */
	sl_pg_source_close(s);
	cfg.reconnect_ms = 500;
	s = open_source(&cfg);
	assert_int_equal(tu_services_run(&svc, "stop-pg"), 0);
	assert_int_equal(sl_pg_source_next(s, NULL, NULL, 10, &b, &held), SL_EIO);
	assert_non_null(strstr(sl_error_last()->message, "unreachable"));
	assert_int_equal(tu_services_run(&svc, "start-pg"), 0);
	next_ok(s, NULL, NULL, 10, &b, &held);
	assert_int_equal(b.n, 1);
	sl_row_batch_free(&b);

	sl_pg_source_close(s);
	sl_fetcher_close(&f);
	PQfinish(admin);
	admin = tu_pg_connect(svc.pg_url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_keys),
	        cmocka_unit_test(test_inline_bytes_per_page),
	        cmocka_unit_test(test_clock_margin),
	        cmocka_unit_test(test_pages_same_created_at),
	        cmocka_unit_test(test_since_and_limit),
	        cmocka_unit_test(test_recorded_columns),
	        cmocka_unit_test(test_late_commit),
	        cmocka_unit_test(test_hidden_transactions_warn),
	        cmocka_unit_test(test_get_and_lag),
	        cmocka_unit_test(test_fetcher_bytea),
	        cmocka_unit_test(test_fetcher_text),
	        cmocka_unit_test(test_wrong_names),
	        cmocka_unit_test(test_quoted_names),
	        cmocka_unit_test(test_statement_timeout),
	        cmocka_unit_test(test_restart),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
