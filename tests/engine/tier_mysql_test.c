/*
 * Tests for the MariaDB/MySQL L3 tier against a real MariaDB started by
 * scripts/services.sh: the table made on open, puts and tombstones, the
 * version guard and the applied/was_live/is_live flags in every case, the
 * order in which ON DUPLICATE KEY UPDATE assigns (an applied row has the
 * new version, value and deleted; a stale one changes none of them), a
 * CHECK constraint and a key too long refusing one row of a batch, a
 * batch larger than max_allowed_packet, keyset paging in bytewise order
 * with each item's digest, the position, bad URLs and names, and the
 * server killed (then started again).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "connect/server_url.h"
#include "engine/tier.h"
#include "services.h"
#include "tier_testutil.h"

static tu_services svc;
static MYSQL *admin;

/* A connection as the URL's user, or as root over the socket. */
static MYSQL *my_connect(int as_root)
{
	sl_server_url u;
	char sock[1100];
	MYSQL *m = mysql_init(NULL);
	if (sl_server_url_parse(&u, svc.mysql_url, &sl_server_url_mysql) != SL_OK)
		fail_msg("url: %s", sl_error_last()->message);
	snprintf(sock, sizeof(sock), "%s/mysql.sock", svc.dir);
	if (as_root ? mysql_real_connect(m, NULL, "root", NULL, u.database, 0, sock, 0) == NULL
	            : mysql_real_connect(m, u.host, u.user, u.password, u.database, u.port, NULL,
	                                 0) == NULL)
		fail_msg("connect: %s", mysql_error(m));
	sl_server_url_clear(&u);
	return m;
}

/* Runs SQL; the first value of the first row ("NULL" for NULL, "" for no
 * row) into out when out is not NULL. */
static void my_sql(MYSQL *m, char *out, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void my_sql(MYSQL *m, char *out, size_t cap, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	MYSQL_RES *res;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (mysql_query(m, sql) != 0)
		fail_msg("%s: %s", sql, mysql_error(m));
	res = mysql_store_result(m);
	if (out != NULL) {
		MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
		snprintf(out, cap, "%s", row == NULL ? "" : row[0] ? row[0] : "NULL");
	}
	mysql_free_result(res);
}

static long sql_long(const char *fmt, const char *arg)
{
	char text[64];
	my_sql(admin, text, sizeof(text), fmt, arg);
	return atol(text);
}

static sl_tier open_tier(const char *table, unsigned timeout_ms)
{
	sl_tier t = {0};
	my_sql(admin, NULL, 0, "DROP TABLE IF EXISTS `%s`", table);
	if (sl_tier_mysql_open(&t, svc.mysql_url, table, timeout_ms) != SL_OK)
		fail_msg("open %s: %s", table, sl_error_last()->message);
	return t;
}

static int setup(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "mysql") != 0) {
		fprintf(stderr, "could not start MariaDB\n");
		return -1;
	}
	admin = my_connect(0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mysql_close(admin);
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
	assert_string_equal(t.ops->name, "mysql");
	my_sql(admin, text, sizeof(text),
	       "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ':', COLUMN_TYPE) ORDER BY"
	       " ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
	       " DATABASE() AND TABLE_NAME = '%s'",
	       "t_create");
	assert_string_equal(text, "key:varbinary(1024),value:longblob,version:bigint(20),"
	                          "deleted:tinyint(1),updated_at:datetime(6)");
	assert_int_equal(
	        sql_long("SELECT batches FROM sluice_engine_meta WHERE tbl = '%s'", "t_create"), 0);
	t.ops->close(t.impl);

	/* opening again keeps the table and its rows */
	my_sql(admin, NULL, 0, "INSERT INTO t_create (`key`, value, version) VALUES ('%s', 'v', 1)",
	       "k");
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, "t_create", 5000), SL_OK);
	tu_expect_row(&t, "k", "v", 1);
	t.ops->close(t.impl);
}

static void test_round_trip(void **state)
{
	sl_tier t = open_tier("t_round", 5000);
	sl_tier_row rows[4];
	uint64_t v;
	int deleted;
	static const uint8_t binary[] = {0, 1, 2, 0xff, 0, '\\', '\'', '"', 0x1a, '\n', '\r'};
	static const char key_bin[] = {'k', 0, '\'', '\\', (char)0xff};
	sl_buf value = SL_BUF_INIT(1024);
	(void)state;

	tu_put(&rows[0], "a", "alpha", 1);
	tu_put(&rows[1], "b", "", 2);
	tu_del(&rows[2], "c", 3);
	tu_put(&rows[3], "d", "", 4);
	rows[3].key = key_bin;
	rows[3].key_len = sizeof(key_bin);
	rows[3].value = binary;
	rows[3].value_len = sizeof(binary);
	tu_write_ok(&t, rows, 4);
	tu_expect_row(&t, "a", "alpha", 1);
	tu_expect_row(&t, "b", "", 2);
	tu_expect_row(&t, "c", NULL, 3);
	assert_int_equal(t.ops->get(t.impl, key_bin, sizeof(key_bin), &value, &v, &deleted), SL_OK);
	assert_int_equal(v, 4);
	assert_int_equal(value.len, sizeof(binary));
	assert_memory_equal(value.data, binary, sizeof(binary));
	assert_null(tu_tier_get(&t, "missing", &v, &deleted));
	assert_int_equal(t.ops->get(t.impl, "missing", 7, &value, &v, &deleted), SL_ENOTFOUND);
	/* "b" holds an empty value, not NULL */
	assert_int_equal(
	        sql_long("SELECT COUNT(*) FROM t_round WHERE `key` = '%s' AND value = ''", "b"), 1);

	/* a tombstone: deleted, value NULL, the version kept */
	tu_del(&rows[0], "a", 5);
	tu_write_ok(&t, rows, 1);
	tu_expect_row(&t, "a", NULL, 5);
	assert_int_equal(sql_long("SELECT COUNT(*) FROM %s WHERE `key` = 'a' AND value IS NULL"
	                          " AND deleted",
	                          "t_round"),
	                 1);

	/* the value cap of the caller's buffer is kept */
	value.max = 2;
	assert_int_equal(t.ops->get(t.impl, key_bin, sizeof(key_bin), &value, &v, &deleted),
	                 SL_ETOOLARGE);
	sl_buf_free(&value);
	t.ops->close(t.impl);
}

static void test_version_guard(void **state)
{
	sl_tier t = open_tier("t_guard", 5000);
	sl_tier_row rows[8];
	(void)state;

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
	tu_put(&rows[2], "never", "v2", 2);
	tu_put(&rows[3], "old", "v9 again", 9);
	tu_write_ok(&t, rows, 3);
	tu_expect_flags(&rows[0], 1, 1, 1);
	tu_expect_flags(&rows[1], 0, 1, 1);
	tu_expect_flags(&rows[2], 0, 0, 0);
	tu_write_ok(&t, rows + 3, 1);
	tu_expect_flags(&rows[3], 0, 1, 1);
	tu_expect_row(&t, "live", "v6", 6);
	tu_expect_row(&t, "old", "v9", 9);
	tu_expect_row(&t, "never", NULL, 3);

	/* every case in one batch */
	tu_del(&rows[0], "gone", 2);
	tu_write_ok(&t, rows, 1);
	tu_put(&rows[0], "n1", "new", 20);     /* new */
	tu_put(&rows[1], "live", "v21", 21);   /* update of live */
	tu_put(&rows[2], "gone", "v22", 22);   /* update of a tombstone */
	tu_del(&rows[3], "old", 23);           /* delete of live */
	tu_del(&rows[4], "absent", 24);        /* delete of absent */
	tu_put(&rows[5], "never", "stale", 1); /* superseded (tombstone) */
	tu_del(&rows[6], "live2", 1);          /* delete of absent, low version */
	tu_write_ok(&t, rows, 7);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_flags(&rows[1], 1, 1, 1);
	tu_expect_flags(&rows[2], 1, 0, 1);
	tu_expect_flags(&rows[3], 1, 1, 0);
	tu_expect_flags(&rows[4], 1, 0, 0);
	tu_expect_flags(&rows[5], 0, 0, 0);
	tu_expect_flags(&rows[6], 1, 0, 0);
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

/* The row as stored: "version|deleted|value or NULL|updated_at". */
static void stored(const char *key, char *out, size_t cap)
{
	my_sql(admin, out, cap,
	       "SELECT CONCAT_WS('|', version, deleted, IFNULL(value, 'NULL'), updated_at) FROM"
	       " t_order WHERE `key` = '%s'",
	       key);
}

/* ON DUPLICATE KEY UPDATE assigns left to right, each assignment seeing
 * the ones before: an applied update must carry its version AND value AND
 * deleted, and a stale one must change none of them (updated_at neither). */
static void test_evaluation_order(void **state)
{
	sl_tier t = open_tier("t_order", 5000);
	sl_tier_row rows[4];
	char before[256], after[256];
	(void)state;

	tu_put(&rows[0], "a", "one", 1);
	tu_put(&rows[1], "b", "one", 1);
	tu_put(&rows[2], "c", "one", 1);
	tu_write_ok(&t, rows, 3);

	/* newer: a put, a delete, a put over a put, in one multi-row upsert */
	tu_put(&rows[0], "a", "two", 2);
	tu_del(&rows[1], "b", 2);
	tu_put(&rows[2], "c", "three", 3);
	tu_write_ok(&t, rows, 3);
	stored("a", after, sizeof(after));
	assert_non_null(strstr(after, "2|0|two|"));
	stored("b", after, sizeof(after));
	assert_non_null(strstr(after, "2|1|NULL|"));
	stored("c", after, sizeof(after));
	assert_non_null(strstr(after, "3|0|three|"));

	/* a put over the tombstone brings deleted back to 0 */
	tu_put(&rows[0], "b", "back", 4);
	tu_write_ok(&t, rows, 1);
	stored("b", after, sizeof(after));
	assert_non_null(strstr(after, "4|0|back|"));

	/* stale and equal versions change nothing, not even updated_at */
	stored("a", before, sizeof(before));
	tu_put(&rows[0], "a", "stale", 1);
	tu_del(&rows[1], "b", 4);
	tu_del(&rows[2], "c", 2);
	tu_write_ok(&t, rows, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rows[i].applied, 0);
	stored("a", after, sizeof(after));
	assert_string_equal(after, before);
	stored("b", after, sizeof(after));
	assert_non_null(strstr(after, "4|0|back|"));
	stored("c", after, sizeof(after));
	assert_non_null(strstr(after, "3|0|three|"));
	t.ops->close(t.impl);
}

/* Every row hinted new: the plain INSERT; a tombstone among them sends
 * the batch the guarded way, with the flags right. */
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
	/* all new for real */
	tu_put(&rows[0], "x", "vx", 12);
	tu_del(&rows[1], "y", 13);
	rows[0].maybe_live = rows[1].maybe_live = 0;
	tu_write_ok(&t, rows, 2);
	tu_expect_flags(&rows[0], 1, 0, 1);
	tu_expect_flags(&rows[1], 1, 0, 0);
	tu_expect_row(&t, "y", NULL, 13);
	t.ops->close(t.impl);
}

/* A CHECK the user added refuses one row of 50, a key longer than the
 * column another; the others commit. */
static void test_refused_rows(void **state)
{
	sl_tier t = open_tier("t_check", 5000);
	sl_tier_row rows[50];
	char keys[50][16], big[200], small[32], *long_key = malloc(1101);
	sl_digest before, after;
	(void)state;

	my_sql(admin, NULL, 0,
	       "ALTER TABLE %s ADD CONSTRAINT small CHECK (OCTET_LENGTH(value) < 100)", "t_check");
	memset(big, 'x', 150);
	big[150] = '\0';
	snprintf(small, sizeof(small), "small");
	memset(long_key, 'k', 1100);
	long_key[1100] = '\0';
	for (size_t i = 0; i < 50; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02zu", i);
		tu_put(&rows[i], keys[i], i == 17 ? big : small, 10 + i);
	}
	rows[30].key = long_key;
	rows[30].key_len = 1100;
	assert_int_equal(t.ops->position(t.impl, &before), SL_OK);
	if (t.ops->write(t.impl, rows, 50) != SL_OK)
		fail_msg("write: %s", sl_error_last()->message);
	for (size_t i = 0; i < 50; i++) {
		if (i == 17 || i == 30) {
			assert_int_equal(rows[i].rc, SL_EINVAL);
			assert_int_equal(rows[i].applied, 0);
			printf("refused: %s\n", rows[i].error);
			assert_non_null(strstr(rows[i].error, i == 17 ? "4025" : "1406"));
			continue;
		}
		assert_int_equal(rows[i].rc, SL_OK);
		tu_expect_flags(&rows[i], 1, 0, 1);
	}
	assert_int_equal(sql_long("SELECT COUNT(*) FROM %s", "t_check"), 48);
	assert_int_equal(sql_long("SELECT COUNT(*) FROM %s WHERE `key` = 'k17'", "t_check"), 0);
	assert_int_equal(t.ops->position(t.impl, &after), SL_OK);
	assert_false(sl_digest_eq(&before, &after));

	/* the same when every row is hinted new (the plain INSERT fails first) */
	tu_put(&rows[0], "n1", "fine", 1);
	tu_put(&rows[1], "n2", big, 1);
	rows[0].maybe_live = rows[1].maybe_live = 0;
	assert_int_equal(t.ops->write(t.impl, rows, 2), SL_OK);
	assert_int_equal(rows[0].rc, SL_OK);
	tu_expect_flags(&rows[0], 1, 0, 1);
	assert_int_equal(rows[1].rc, SL_EINVAL);

	/* the next batch takes the fast path again, with the flags right */
	tu_put(&rows[0], "k00", "newer", 100);
	tu_put(&rows[1], "k17", "fits", 100);
	tu_write_ok(&t, rows, 2);
	tu_expect_flags(&rows[0], 1, 1, 1);
	tu_expect_flags(&rows[1], 1, 0, 1);
	free(long_key);
	t.ops->close(t.impl);
}

/* A batch over max_allowed_packet goes in several round trips, still one
 * transaction; a row over it alone is refused. */
static void test_large_batch(void **state)
{
	enum { N = 400, VALUE = 8192 };
	MYSQL *root = my_connect(1);
	sl_tier t;
	sl_tier_row *rows = calloc(N + 1, sizeof(*rows));
	static char keys[N][16];
	uint8_t *value = malloc(VALUE), *huge = malloc(3 << 20);
	(void)state;

	/* 1 MiB: the batch's statement is about 3 MiB */
	my_sql(root, NULL, 0, "SET GLOBAL max_allowed_packet = %d", 1 << 20);
	t = open_tier("t_large", 5000);
	memset(value, '\'', VALUE); /* every byte escaped: twice the size */
	memset(huge, 'h', 3 << 20);
	for (size_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "big%04zu", i);
		tu_put(&rows[i], keys[i], "", 1);
		rows[i].value = value;
		rows[i].value_len = VALUE;
	}
	tu_put(&rows[N], "huge", "", 1);
	rows[N].value = huge;
	rows[N].value_len = 3 << 20;
	assert_int_equal(t.ops->write(t.impl, rows, N + 1), SL_OK);
	assert_int_equal(rows[N].rc, SL_ETOOLARGE);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(rows[i].rc, SL_OK);
		tu_expect_flags(&rows[i], 1, 0, 1);
	}
	assert_int_equal(
	        sql_long("SELECT COUNT(*) FROM %s WHERE OCTET_LENGTH(value) = 8192", "t_large"), N);
	assert_int_equal(
	        sql_long("SELECT batches FROM sluice_engine_meta WHERE tbl = '%s'", "t_large"), 1);
	t.ops->close(t.impl);
	my_sql(root, NULL, 0, "SET GLOBAL max_allowed_packet = %d", 64 << 20);
	mysql_close(root);
	free(value);
	free(huge);
	free(rows);
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
	char *want[N];
	sl_tier_row *rows = calloc(N, sizeof(*rows));
	size_t n_live = 0;
	sl_tier t;
	(void)state;

	for (size_t i = 0; i < N; i++) {
		snprintf(key_text[i], sizeof(key_text[i]), "%s%04zu", stems[i % 10], i);
		snprintf(values[i], sizeof(values[i]), "%s", i % 5 == 0 ? "" : "value");
		if (i % 7 == 3) {
			tu_del(&rows[i], key_text[i], 1);
		} else {
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
	free(rows);
}

static void test_position(void **state)
{
	sl_tier t = open_tier("t_pos", 5000);
	sl_digest p0, p4;
	(void)state;

	tu_position_moves(&t, &p0);
	/* the table dropped and made again is another position, even with
	 * its meta row back at 0 batches */
	t.ops->close(t.impl);
	my_sql(admin, NULL, 0, "UPDATE sluice_engine_meta SET batches = 0 WHERE tbl = '%s'",
	       "t_pos");
	t = open_tier("t_pos", 5000);
	assert_int_equal(t.ops->position(t.impl, &p4), SL_OK);
	assert_false(sl_digest_eq(&p0, &p4));
	t.ops->close(t.impl);
}

static void test_bad_url_and_names(void **state)
{
	static const char *const bad_urls[][2] = {
	        {"postgresql://sluice@127.0.0.1:5432/sluice", "mysql://"},
	        {"mysql://127.0.0.1:3306/sluice", "USER@"},
	        {"mysql://sluice@127.0.0.1:99999/sluice", "port"},
	        {"mysql://sluice@127.0.0.1:3306", "DATABASE"},
	        {"mysql://sluice@127.0.0.1:3306/db?x=1", "query string"},
	        {"mysql://s%zzuice@127.0.0.1/db", "percent escape in the user"},
	        {"mysql://u:p%4@127.0.0.1/db", "percent escape in the password"},
	        {"", "no connection URL"},
	};
	static const char *const bad_names[] = {
	        "", "a;drop table x", "1abc", "a.b", "a b", "`x`", "tbl-1", "sluice_engine_meta"};
	sl_tier t;
	(void)state;

	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		assert_int_equal(sl_tier_mysql_open(&t, bad_urls[i][0], "t", 1000), SL_EINVAL);
		if (strstr(sl_error_last()->message, bad_urls[i][1]) == NULL)
			fail_msg("%s: '%s' does not say '%s'", bad_urls[i][0],
			         sl_error_last()->message, bad_urls[i][1]);
	}
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, bad_names[i], 5000),
		                 SL_EINVAL);
		assert_non_null(strstr(sl_error_last()->message, "table name"));
	}
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, NULL, 5000), SL_EINVAL);

	/* an existing table without a column we need, or with the wrong type */
	my_sql(admin, NULL, 0, "DROP TABLE IF EXISTS %s", "t_other");
	my_sql(admin, NULL, 0,
	       "CREATE TABLE %s (`key` VARBINARY(100) PRIMARY KEY, value LONGBLOB, deleted BOOL,"
	       " updated_at DATETIME)",
	       "t_other");
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "no column `version`"));
	my_sql(admin, NULL, 0, "ALTER TABLE %s ADD version INT", "t_other");
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "`version` of type int, not bigint"));
	my_sql(admin, NULL, 0,
	       "ALTER TABLE %s MODIFY `key` VARCHAR(100) COLLATE utf8mb4_general_ci", "t_other");
	my_sql(admin, NULL, 0, "ALTER TABLE %s MODIFY version BIGINT", "t_other");
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "not a binary one"));
	/* a binary collation works, as does VARBINARY */
	my_sql(admin, NULL, 0, "ALTER TABLE %s MODIFY `key` VARCHAR(100) COLLATE utf8mb4_bin",
	       "t_other");
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, "t_other", 5000), SL_OK);
	t.ops->close(t.impl);
	my_sql(admin, NULL, 0, "ALTER TABLE %s DROP PRIMARY KEY", "t_other");
	assert_int_equal(sl_tier_mysql_open(&t, svc.mysql_url, "t_other", 5000), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "unique index on `key`"));

	/* a server that is not there, a database that is not */
	assert_int_equal(sl_tier_mysql_open(&t, "mysql://sluice@127.0.0.1:1/sluice", "t", 1000),
	                 SL_EIO);
	assert_non_null(strstr(sl_error_last()->message, "MariaDB"));
	char url[300];
	snprintf(url, sizeof(url), "mysql://sluice@127.0.0.1:%d/nope", svc.mysql_port);
	assert_int_equal(sl_tier_mysql_open(&t, url, "t", 1000), SL_EIO);
	assert_non_null(strstr(sl_error_last()->message, "nope"));
}

/* MariaDB killed: write and get fail and commit nothing; started again:
 * the same tier writes and reads without being reopened. */
static void test_crash_restart(void **state)
{
	sl_tier t = open_tier("t_stop", 2000);
	sl_tier_row rows[3];
	uint64_t v;
	int deleted, rc;
	sl_buf value = SL_BUF_INIT(64);
	(void)state;

	tu_put(&rows[0], "before", "1", 1);
	tu_write_ok(&t, rows, 1);
	tu_expect_row(&t, "before", "1", 1);
	mysql_close(admin);
	assert_int_equal(tu_services_run(&svc, "crash-mysql"), 0);
	tu_put(&rows[0], "during1", "x", 2);
	tu_put(&rows[1], "during2", "y", 2);
	tu_del(&rows[2], "before", 2);
	rc = t.ops->write(t.impl, rows, 3);
	assert_true(rc == SL_EIO || rc == SL_ETIMEOUT);
	assert_non_null(strstr(sl_error_last()->message, "MariaDB"));
	rc = t.ops->get(t.impl, "before", 6, &value, &v, &deleted);
	assert_true(rc == SL_EIO || rc == SL_ETIMEOUT);
	assert_int_equal(tu_services_run(&svc, "start-mysql"), 0);
	admin = my_connect(0);
	assert_int_equal(sql_long("SELECT COUNT(*) FROM %s WHERE `key` LIKE 'during%%'", "t_stop"),
	                 0);
	tu_expect_row(&t, "before", "1", 1);
	tu_write_ok(&t, rows, 3);
	tu_expect_flags(&rows[2], 1, 1, 0);
	tu_expect_row(&t, "during1", "x", 2);
	tu_expect_row(&t, "before", NULL, 2);

	/* a restart while idle is noticed before the next call */
	mysql_close(admin);
	assert_int_equal(tu_services_run(&svc, "stop-mysql"), 0);
	assert_int_equal(tu_services_run(&svc, "start-mysql"), 0);
	tu_put(&rows[0], "after", "z", 3);
	tu_write_ok(&t, rows, 1);
	tu_expect_row(&t, "after", "z", 3);
	admin = my_connect(0);
	sl_buf_free(&value);
	t.ops->close(t.impl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_open_creates),      cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_version_guard),     cmocka_unit_test(test_evaluation_order),
	        cmocka_unit_test(test_batch_of_new_keys), cmocka_unit_test(test_refused_rows),
	        cmocka_unit_test(test_large_batch),       cmocka_unit_test(test_scan_paging),
	        cmocka_unit_test(test_position),          cmocka_unit_test(test_bad_url_and_names),
	        cmocka_unit_test(test_crash_restart),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
