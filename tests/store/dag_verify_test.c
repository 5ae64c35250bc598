/*
 * sl_dag_verify and sl_store_verify on a damaged dag namespace: every
 * kind of damage to the dag tables and to the values (live or not), and
 * a damaged root entry, is SL_ECORRUPT; an undamaged copy verifies.
 */
#include "dag_testutil.h"

/* ------------------------------------------------------- verify damage */

/* Flip one byte of the encoding of the stored entry at `height` (the
 * first in id order there). */
static void flip_entry_byte(const char *dir, uint64_t height, size_t offset_from_end)
{
	char path[4200];
	sqlite3 *db;
	sqlite3_stmt *st;
	uint8_t *enc;
	size_t len;

	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT ns, id, encoding FROM dag_entries WHERE "
	                                    "height = ?1 ORDER BY id LIMIT 1",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int64(st, 1, (int64_t)height);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	len = (size_t)sqlite3_column_bytes(st, 2);
	assert_true(offset_from_end < len);
	enc = malloc(len);
	assert_non_null(enc);
	memcpy(enc, sqlite3_column_blob(st, 2), len);
	enc[len - 1 - offset_from_end] ^= 0x10;
	{
		sqlite3_stmt *up;
		assert_int_equal(
		        sqlite3_prepare_v2(db,
		                           "UPDATE dag_entries SET encoding = ?1 WHERE ns = "
		                           "?2 AND id = ?3",
		                           -1, &up, NULL),
		        SQLITE_OK);
		sqlite3_bind_blob(up, 1, enc, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(up, 2, sqlite3_column_int64(st, 0));
		sqlite3_bind_blob(up, 3, sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1),
		                  SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(up), SQLITE_DONE);
		assert_int_equal(sqlite3_changes(db), 1);
		sqlite3_finalize(up);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(enc);
}

static void restore(const char *dir)
{
	char cmd[8600];
	snprintf(cmd, sizeof(cmd), "cp '%s/good.db' '%s/sluice.db'", dir, dir);
	assert_int_equal(system(cmd), 0);
}

/* Whether verify, both through sl_dag_verify and sl_store_verify, finds
 * the damage in dir with SL_ECORRUPT; says what it found otherwise. */
static int verify_fails(const char *dir, const char *what)
{
	sl_store *s = open_store(dir, 0);
	sl_verify_report rep;
	int ok = 1, rc = sl_dag_verify(s, "d", &rep);
	if (rc != SL_ECORRUPT) {
		fprintf(stderr, "sl_dag_verify returned %d (%s), not SL_ECORRUPT, for %s\n", rc,
		        rc ? sl_error_last()->message : "ok", what);
		ok = 0;
	}
	rc = sl_store_verify(s, "d", &rep);
	if (rc != SL_ECORRUPT) {
		fprintf(stderr, "sl_store_verify returned %d (%s), not SL_ECORRUPT, for %s\n", rc,
		        rc ? sl_error_last()->message : "ok", what);
		ok = 0;
	}
	/* The other namespace is untouched by any of it. */
	if (sl_store_verify(s, "m", &rep) != SL_OK) {
		fprintf(stderr, "namespace m does not verify after %s\n", what);
		ok = 0;
	}
	sl_store_free(s);
	return ok;
}

static void expect_verify_fails(const char *dir, const char *what)
{
	if (!verify_fails(dir, what))
		fail_msg("verify did not notice %s", what);
}

static void damage(const char *dir, const char *text)
{
	restore(dir);
	assert_true(tu_sql(dir, text) > 0);
	expect_verify_fails(dir, text);
}

/* A store in dir with a mutable namespace "m" and a dag namespace "d" of
 * 7 entries, 2 tips, 4 live keys, a tombstone and an overwritten value
 * (returned), copied to good.db. */
static sl_digest damage_fixture(const char *dir)
{
	char *dir_b = tu_tempdir(), cmd[8600];
	sl_store *s = open_store(dir, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key(), writer = new_key();
	sl_verify_report rep;
	sl_dag_info info;
	sl_dag_write w[2];
	sl_digest old;
	sl_batch *batch;
	elist l;

	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	assert_ok(sl_batch_new(&batch, s, "m"));
	assert_ok(sl_batch_put(batch, "x", 1, "y", 1));
	assert_ok(sl_batch_commit(batch, NULL));
	sl_batch_free(batch);

	assert_ok(sl_dag_create(s, "d", admin.sk, NULL)); /* h0 */
	grant(s, "d", &admin, writer.pk, SL_DAG_WRITE);   /* h1 */
	old = remember("old value", 9);
	w[0] = set_w("a", "old value");
	w[1] = set_w("b", "bee");
	assert_ok(write_entry(s, "d", &writer, w, 2, NULL)); /* h2 */
	w[0] = set_w("a", "new value");
	w[1] = set_w("c", "sea");
	assert_ok(write_entry(s, "d", &writer, w, 2, NULL)); /* h3 */
	w[0] = del_w("b");
	assert_ok(write_entry(s, "d", &admin, w, 1, NULL)); /* h4 */
	/* A second tip, from another store. */
	log_of(s, "d", &l);
	assert_ok(sl_dag_create_from_root(b, "d", l.v[0].enc, l.v[0].len));
	elist_free(&l);
	send_all(s, b, "d");
	put(s, "d", &admin, "d", "dee");  /* h5 */
	put(b, "d", &writer, "e", "eee"); /* h5 */
	assert_int_equal(send_all(b, s, "d"), 1);
	assert_ok(sl_dag_info_get(s, "d", &info));
	assert_int_equal(info.n_tips, 2);
	assert_int_equal(info.entries, 7);
	assert_int_equal(info.keys, 4);
	assert_ok(sl_dag_verify(s, "d", &rep));
	assert_int_equal(rep.entries_checked, 7);
	sl_store_free(b);
	sl_store_free(s); /* the last connection: the WAL is folded in */
	snprintf(cmd, sizeof(cmd), "cp '%s/sluice.db' '%s/good.db'", dir, dir);
	assert_int_equal(system(cmd), 0);
	tu_rmtree(dir_b);
	free(dir_b);
	return old;
}

static void test_verify_damage(void **state)
{
	char *dir = tu_tempdir(), q[512];
	sl_digest old = damage_fixture(dir);
	sl_verify_report rep;
	sl_store *s;
	(void)state;

	/* The state. */
	damage(dir, "UPDATE dag_state SET digest = zeroblob(32) WHERE key = CAST('a' AS BLOB)");
	damage(dir, "UPDATE dag_state SET height = height + 1 WHERE key = CAST('c' AS BLOB)");
	damage(dir, "UPDATE dag_state SET size = size + 1 WHERE key = CAST('c' AS BLOB)");
	damage(dir, "UPDATE dag_state SET deleted = 1 WHERE key = CAST('c' AS BLOB)");
	damage(dir, "DELETE FROM dag_state WHERE deleted = 1");
	damage(dir, "INSERT INTO dag_state SELECT ns, CAST('z' AS BLOB), height, id, deleted, "
	            "digest, size FROM dag_state WHERE key = CAST('a' AS BLOB)");
	/* The tips. */
	damage(dir,
	       "DELETE FROM dag_tips WHERE id = (SELECT id FROM dag_tips ORDER BY id LIMIT 1)");
	damage(dir, "INSERT INTO dag_tips SELECT ns, id FROM dag_entries WHERE height = 0");
	/* The entries. */
	restore(dir);
	flip_entry_byte(dir, 3, 0); /* the signature */
	expect_verify_fails(dir, "a flipped signature byte");
	restore(dir);
	flip_entry_byte(dir, 3, 64 + 40); /* in the writes */
	expect_verify_fails(dir, "a flipped byte in the writes");
	damage(dir, "UPDATE dag_entries SET height = 9 WHERE height = 4");
	damage(dir, "UPDATE dag_entries SET sfront = zeroblob(32) WHERE height = 3");
	damage(dir, "DELETE FROM dag_entries WHERE height = 3");
	damage(dir, "DELETE FROM dag_entries WHERE height = 5 AND id = (SELECT id FROM dag_tips "
	            "ORDER BY id LIMIT 1)");
	damage(dir, "DELETE FROM dag_settings WHERE id = (SELECT id FROM dag_entries WHERE "
	            "height = 1)");
	damage(dir, "UPDATE namespaces SET size = size + 1 WHERE name = 'd'");
	damage(dir, "UPDATE namespaces SET root = zeroblob(32) WHERE name = 'd'");
	/* The values: a live one, one no longer live, one changed. */
	damage(dir, "DELETE FROM blobs WHERE digest = (SELECT digest FROM dag_state WHERE key = "
	            "CAST('a' AS BLOB))");
	snprintf(q, sizeof(q), "DELETE FROM blobs WHERE digest = X'%s'", sl_digest_to_hex(&old).s);
	damage(dir, q);
	damage(dir, "UPDATE blobs SET value = CAST('tampered' AS BLOB) WHERE digest = (SELECT "
	            "digest FROM dag_state WHERE key = CAST('c' AS BLOB))");
	damage(dir, "UPDATE blobs SET value = CAST('SEA' AS BLOB) WHERE digest = (SELECT "
	            "digest FROM dag_state WHERE key = CAST('c' AS BLOB))");
	/* Undamaged, it passes still. */
	restore(dir);
	s = open_store(dir, 0);
	assert_ok(sl_dag_verify(s, "d", &rep));
	assert_int_equal(rep.entries_checked, 7);
	assert_ok(sl_store_verify(s, "d", &rep));
	assert_int_equal(rep.entries_checked, 7);
	sl_store_free(s);

	tu_rmtree(dir);
	free(dir);
	values_clear();
}

/* A damaged root entry is damage like any other: SL_ECORRUPT. */
static void test_verify_damaged_root(void **state)
{
	char *dir = tu_tempdir();
	int found = 0;
	(void)state;

	damage_fixture(dir);
	restore(dir);
	flip_entry_byte(dir, 0, 64 + 4 + 1); /* its time */
	found += verify_fails(dir, "a flipped byte in the root's time");
	restore(dir);
	flip_entry_byte(dir, 0, 0); /* its signature */
	found += verify_fails(dir, "a flipped byte in the root's signature");
	restore(dir);
	flip_entry_byte(dir, 0, 64 + 4 + 8 + 1); /* its author */
	found += verify_fails(dir, "a flipped byte in the root's author");
	tu_rmtree(dir);
	free(dir);
	values_clear();
	assert_int_equal(found, 3);
}

/* A value no longer live is still a value of a held entry (D5), which a
 * peer may ask for: damage to it is damage too. */
static void test_verify_damaged_old_value(void **state)
{
	char *dir = tu_tempdir(), q[512];
	sl_digest old = damage_fixture(dir);
	int found;
	(void)state;

	/* "old value" (9 bytes) overwritten by "new value" (9 bytes). */
	snprintf(q, sizeof(q),
	         "UPDATE blobs SET value = CAST('new value' AS BLOB) WHERE digest = X'%s'",
	         sl_digest_to_hex(&old).s);
	restore(dir);
	assert_true(tu_sql(dir, q) > 0);
	found = verify_fails(dir, "an old value changed");
	tu_rmtree(dir);
	free(dir);
	values_clear();
	assert_true(found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_verify_damage),
	        cmocka_unit_test(test_verify_damaged_root),
	        cmocka_unit_test(test_verify_damaged_old_value),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("dag_verify_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
