/*
 * Tests for changes by logical replication (src/connect/pg_changes.c)
 * against a real PostgreSQL 15 with wal_level = logical started by
 * scripts/services.sh: the slot and publication made at open, the exported
 * snapshot seen by the source (a row inserted after the slot is not in it),
 * the stream's inserts, updates (same key; a new key), deletes and TRUNCATE
 * in commit order, a restart from the confirmed position that replays
 * nothing already confirmed, the slot's lag, and a missing slot refused.
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
#define AGENT "22222222-2222-4222-8222-222222222222"

static sl_pg_config config(const char *table)
{
	sl_pg_config cfg;
	sl_pg_config_init(&cfg);
	cfg.url = svc.pg_url;
	cfg.table = table;
	cfg.timeout_ms = 5000;
	cfg.reconnect_ms = 5000;
	return cfg;
}

static sl_pg_changes *open_changes(const sl_pg_config *cfg, sl_pg_changes_setup *setup,
                                   const char *slot, int may_create)
{
	sl_pg_changes *c = NULL;
	memset(setup, 0, sizeof(*setup));
	setup->slot = slot;
	setup->publication = "pub_t";
	setup->may_create = may_create;
	if (sl_pg_changes_open(&c, cfg, setup) != SL_OK)
		fail_msg("open: %s", sl_error_last()->message);
	return c;
}

/* Reads until `want` changes came, or caught up with the WAL position. */
static void read_changes(sl_pg_changes *c, size_t want, sl_change_batch *all)
{
	uint64_t target = 0;
	memset(all, 0, sizeof(*all));
	assert_int_equal(sl_pg_changes_wal_position(c, &target), SL_OK);
	for (int round = 0; round < 100 && all->n < want; round++) {
		sl_change_batch b;
		if (sl_pg_changes_next(c, 100, target, 300, &b) != SL_OK)
			fail_msg("next: %s", sl_error_last()->message);
		for (size_t i = 0; i < b.n; i++) {
			sl_change *slot;
			all->changes = realloc(all->changes, (all->n + 1) * sizeof(*slot));
			all->changes[all->n++] = b.changes[i];
			memset(&b.changes[i].row, 0, sizeof(b.changes[i].row));
		}
		if (b.done_lsn > all->done_lsn)
			all->done_lsn = b.done_lsn;
		int caught_up = b.caught_up;
		sl_change_batch_free(&b);
		if (caught_up && all->n >= want)
			break;
	}
}

static void free_changes(sl_change_batch *all)
{
	for (size_t i = 0; i < all->n; i++)
		sl_row_free(&all->changes[i].row);
	free(all->changes);
	memset(all, 0, sizeof(*all));
}

static int setup(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "pg") != 0) {
		fprintf(stderr, "could not start PostgreSQL\n");
		return -1;
	}
	admin = tu_pg_connect(svc.pg_url);
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE t (id uuid PRIMARY KEY, competition_id uuid, agent_id uuid,"
	       " data_type text NOT NULL, data bytea, created_at timestamptz NOT NULL DEFAULT "
	       "now())");
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t (id, data_type, data) VALUES ('" ID(
	               "01") "', 'log', 'one'),"
	                     " ('" ID("02") "', 'log', 'two'), ('" ID("03") "', 'trace', 'three')");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	PQfinish(admin);
	tu_services_stop(&svc);
	return 0;
}

static void test_snapshot_then_stream(void **state)
{
	sl_pg_config cfg = config("t");
	sl_pg_changes_setup st;
	sl_pg_changes *c;
	sl_pg_source *src = NULL;
	sl_row_batch rows = {0};
	sl_change_batch all;
	(void)state;

	c = open_changes(&cfg, &st, "slot_t", 1);
	assert_true(st.created_slot);
	assert_true(st.created_publication);
	assert_true(st.snapshot[0] != '\0');
	assert_true(st.start_lsn > 0);
	assert_int_equal(sl_pg_source_open(&src, &cfg), SL_OK);
	assert_int_equal(sl_pg_source_use_snapshot(src, st.snapshot), SL_OK);
	/* committed after the slot: in the stream, not in the snapshot */
	tu_sql(admin, NULL, 0,
	       "INSERT INTO t (id, data_type, data) VALUES ('" ID("04") "', 'log', 'four')");
	assert_int_equal(sl_pg_source_scan(src, "", 100, &rows), SL_OK);
	assert_int_equal(rows.n, 3);
	assert_string_equal(rows.rows[0].id, ID("01"));
	assert_string_equal(rows.rows[0].key, "log/" ID("01"));
	assert_true(rows.rows[0].has_data);
	sl_row_batch_free(&rows);
	assert_int_equal(sl_pg_source_scan(src, ID("02"), 100, &rows), SL_OK);
	assert_int_equal(rows.n, 1);
	assert_string_equal(rows.rows[0].id, ID("03"));
	sl_row_batch_free(&rows);
	sl_pg_source_end_snapshot(src);
	assert_int_equal(sl_pg_source_scan(src, "", 100, &rows), SL_OK);
	assert_int_equal(rows.n, 4); /* the live table */
	sl_row_batch_free(&rows);

	assert_int_equal(sl_pg_changes_start(c, st.start_lsn), SL_OK);
	tu_sql(admin, NULL, 0, "UPDATE t SET data = 'ONE' WHERE id = '" ID("01") "'");
	tu_sql(admin, NULL, 0, "UPDATE t SET agent_id = '" AGENT "' WHERE id = '" ID("02") "'");
	tu_sql(admin, NULL, 0,
	       "BEGIN; DELETE FROM t WHERE id = '" ID(
	               "03") "';"
	                     " INSERT INTO t (id, data_type) VALUES ('" ID(
	                             "05") "', 'trace'); COMMIT");
	read_changes(c, 5, &all);
	assert_int_equal(all.n, 5);
	assert_int_equal(all.changes[0].op, SL_CHANGE_UPSERT);
	assert_string_equal(all.changes[0].row.key, "log/" ID("04"));
	assert_false(all.changes[0].row.has_data); /* bytes are read from the table */
	assert_int_equal(all.changes[1].op, SL_CHANGE_UPSERT);
	assert_string_equal(all.changes[1].row.key, "log/" ID("01"));
	assert_string_equal(all.changes[2].row.key, AGENT "/log/" ID("02"));
	assert_int_equal(all.changes[3].op, SL_CHANGE_DELETE);
	assert_string_equal(all.changes[3].row.id, ID("03"));
	assert_null(all.changes[3].row.key);
	assert_int_equal(all.changes[4].op, SL_CHANGE_UPSERT);
	assert_string_equal(all.changes[4].row.id, ID("05"));
	assert_true(all.done_lsn > st.start_lsn);
	assert_int_equal(sl_pg_changes_confirm(c, all.done_lsn), SL_OK);
	uint64_t confirmed = all.done_lsn;
	free_changes(&all);
	sl_pg_changes_close(c);
	sl_pg_source_close(src);

	/* Again from the confirmed position: nothing old comes back. */
	tu_sql(admin, NULL, 0, "TRUNCATE t");
	c = open_changes(&cfg, &st, "slot_t", 0);
	assert_false(st.created_slot);
	assert_false(st.created_publication);
	assert_int_equal(sl_pg_changes_start(c, confirmed), SL_OK);
	read_changes(c, 1, &all);
	assert_int_equal(all.n, 1);
	assert_int_equal(all.changes[0].op, SL_CHANGE_TRUNCATE);
	assert_int_equal(sl_pg_changes_confirm(c, all.done_lsn), SL_OK);
	free_changes(&all);
	sl_pg_changes_close(c);

	sl_pg_slot_info info;
	assert_int_equal(sl_pg_slot_status(&cfg, "slot_t", &info), SL_OK);
	assert_true(info.exists);
	assert_false(info.active);
	assert_true(info.confirmed_lsn >= confirmed);
	tu_sql(admin, NULL, 0, "INSERT INTO t (id, data_type) VALUES ('" ID("06") "', 'log')");
	assert_int_equal(sl_pg_slot_status(&cfg, "slot_t", &info), SL_OK);
	assert_true(info.lag_bytes > 0);

	assert_int_equal(sl_pg_slot_drop(&cfg, "slot_t"), SL_OK);
	assert_int_equal(sl_pg_slot_status(&cfg, "slot_t", &info), SL_OK);
	assert_false(info.exists);
	memset(&st, 0, sizeof(st));
	st.slot = "slot_t";
	st.publication = "pub_t";
	c = NULL;
	assert_int_equal(sl_pg_changes_open(&c, &cfg, &st), SL_ENOTFOUND);
	assert_non_null(strstr(sl_error_last()->message, "is gone"));
	assert_null(c);
}

static void test_publication_of_another_table(void **state)
{
	sl_pg_config cfg = config("t");
	sl_pg_changes_setup st;
	sl_pg_changes *c = NULL;
	(void)state;
	tu_sql(admin, NULL, 0, "CREATE TABLE other (id uuid PRIMARY KEY)");
	tu_sql(admin, NULL, 0, "CREATE PUBLICATION pub_other FOR TABLE other");
	memset(&st, 0, sizeof(st));
	st.slot = "slot_other";
	st.publication = "pub_other";
	st.may_create = 1;
	assert_int_equal(sl_pg_changes_open(&c, &cfg, &st), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "does not publish table t"));
	/* nothing was made */
	sl_pg_slot_info info;
	assert_int_equal(sl_pg_slot_status(&cfg, "slot_other", &info), SL_OK);
	assert_false(info.exists);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_snapshot_then_stream),
	        cmocka_unit_test(test_publication_of_another_table),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
