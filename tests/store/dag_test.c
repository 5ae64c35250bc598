/*
 * DAG namespaces in one or two stores, through the public API
 * (sluice/dag.h, sluice/store.h):
 *   test_linear_history   writes one after another: merged values through
 *                         sl_store_get/list, info counts, the log order,
 *                         one tip, the namespace row, a reopened store;
 *   test_branch_merge     two stores write the same keys concurrently,
 *                         exchange entries, end equal with two tips; the
 *                         conflicting keys go to the greater (height, id);
 *                         the next write merges the tips;
 *   test_authorization    roles: no role, WRITE granted and revoked, READ,
 *                         a second admin, WRITE keys setting roles, and
 *                         forged entries offered to another store;
 *   test_concurrent_roles roles set on two branches at once: merged per key
 *                         by (height, id), each entry judged at its parents;
 *   test_insert_checks    values missing or of the wrong size, wrong
 *                         heights, another namespace's entries, missing
 *                         parents, garbage, duplicates;
 *   test_namespace_kind   dag namespaces are made only by sl_dag_create and
 *                         are listed with kind dag;
 *   test_namespace_ids    one key's namespaces each have their own id, and
 *                         a root may not set its author's role.
 * Keys are fresh each run, so the entry ids, and with them the winners of
 * equal heights, differ from run to run; the tests check the rule, not a
 * winner. Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include "dag_testutil.h"

/* ------------------------------------------------------ linear history */

static void test_linear_history(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	sl_digest ns_id, ids[4];
	sl_dag_write w[3];
	sl_dag_info info;
	sl_ns_info ni;
	sl_verify_report rep;
	sl_buf dump = SL_BUF_INIT(1 << 20), model = SL_BUF_INIT(1 << 20);
	elist log, tips;
	listing l = {0};
	(void)state;

	assert_ok(sl_dag_create(s, "d", admin.sk, &ns_id));
	assert_ok(sl_dag_info_get(s, "d", &info));
	assert_memory_equal(info.ns_id.bytes, ns_id.bytes, SL_DIGEST_LEN);
	assert_int_equal(info.entries, 1);
	assert_int_equal(info.keys, 0);
	assert_int_equal(info.max_height, 0);
	assert_int_equal(info.n_tips, 1);
	assert_memory_equal(info.tips[0].bytes, ns_id.bytes, SL_DIGEST_LEN);

	w[0] = set_w("a", "one");
	w[1] = set_w("b", "two");
	assert_ok(write_entry(s, "d", &admin, w, 2, &ids[1]));
	w[0] = set_w("a", "three");
	w[1] = del_w("b");
	w[2] = set_w("c/d", "four");
	assert_ok(write_entry(s, "d", &admin, w, 3, &ids[2]));
	w[0] = del_w("never/set"); /* deleting an absent key is a write too */
	w[1] = set_w("e", "five");
	w[2] = set_w("c/e", "");
	assert_ok(write_entry(s, "d", &admin, w, 3, &ids[3]));
	assert_int_equal(sl_dag_write_entry(s, "d", admin.sk, w, NULL, 0, NULL), SL_EINVAL);

	check_value(s, "d", "a", "three");
	check_value(s, "d", "b", NULL);
	check_value(s, "d", "c/d", "four");
	check_value(s, "d", "c/e", "");
	check_value(s, "d", "e", "five");
	check_value(s, "d", "never/set", NULL);
	assert_int_equal(dump_state(s, "d", &dump), 4);
	assert_string_equal((const char *)dump.data, "a=three\nc/d=four\nc/e=\ne=five\n");
	assert_ok(sl_store_list(s, "d", "c/", 2, collect_key, &l));
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].key, "c/d");
	assert_string_equal(l.v[1].key, "c/e");
	free(l.v);

	assert_ok(sl_dag_info_get(s, "d", &info));
	assert_int_equal(info.entries, 4);
	assert_int_equal(info.keys, 4);
	assert_int_equal(info.max_height, 3);
	assert_int_equal(info.n_tips, 1);
	assert_memory_equal(info.tips[0].bytes, ids[3].bytes, SL_DIGEST_LEN);

	log_of(s, "d", &log);
	assert_int_equal(log.n, 4);
	check_log_order(&log);
	ids[0] = ns_id;
	for (size_t i = 0; i < 4; i++) {
		assert_memory_equal(log.v[i].id.bytes, ids[i].bytes, SL_DIGEST_LEN);
		assert_int_equal(log.v[i].height, i);
		assert_int_equal(log.v[i].n_parents, i ? 1 : 0);
		if (i)
			assert_memory_equal(log.v[i].parents[0].bytes, ids[i - 1].bytes,
			                    SL_DIGEST_LEN);
	}
	assert_int_equal(model_state(&log, &model), 4);
	assert_string_equal((const char *)model.data, (const char *)dump.data);
	tips_of(s, "d", &tips);
	assert_int_equal(tips.n, 1);
	assert_memory_equal(tips.v[0].id.bytes, ids[3].bytes, SL_DIGEST_LEN);
	elist_free(&tips);

	/* The namespace row: kind, entries, id, live keys. */
	assert_ok(sl_store_ns_info(s, "d", &ni));
	assert_int_equal(ni.kind, SL_NS_DAG);
	assert_int_equal(ni.target.size, 4);
	assert_memory_equal(ni.target.root.bytes, ns_id.bytes, SL_DIGEST_LEN);
	assert_int_equal(ni.keys, 4);
	assert_ok(sl_dag_verify(s, "d", &rep));
	assert_int_equal(rep.entries_checked, 4);
	assert_ok(sl_store_verify(s, "d", &rep));
	assert_int_equal(rep.entries_checked, 4);

	/* All of it persists, and reads in a read-only handle. */
	sl_store_free(s);
	s = open_store(dir, SL_STORE_READONLY);
	assert_int_equal(dump_state(s, "d", &model), 4);
	assert_string_equal((const char *)model.data, (const char *)dump.data);
	assert_ok(sl_dag_info_get(s, "d", &info));
	assert_int_equal(info.entries, 4);
	assert_memory_equal(info.tips[0].bytes, ids[3].bytes, SL_DIGEST_LEN);
	assert_ok(sl_dag_verify(s, "d", &rep));
	assert_int_equal(rep.entries_checked, 4);

	elist_free(&log);
	sl_buf_free(&dump);
	sl_buf_free(&model);
	drop_store(s, dir);
	values_clear();
}

/* ---------------------------------------------------- branch and merge */

static void test_branch_merge(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key ka = new_key(), kb = new_key();
	sl_digest ns_id, a1, a2, b1, m1, m2, m3;
	sl_dag_write w[3];
	sl_dag_insert_report rep;
	sl_dag_info ia, ib;
	sl_verify_report vr;
	elist la, tips;
	const item *it;
	const char *x_winner, *y_winner;
	(void)state;

	assert_ok(sl_dag_create(a, "d", ka.sk, &ns_id));
	grant(a, "d", &ka, kb.pk, SL_DAG_WRITE); /* h1 */
	put(a, "d", &ka, "base", "common");      /* h2 */

	/* B joins from the root's encoding, then takes the rest. */
	log_of(a, "d", &la);
	assert_int_equal(la.n, 3);
	assert_int_equal(la.v[0].height, 0);
	assert_ok(sl_dag_create_from_root(b, "d", la.v[0].enc, la.v[0].len));
	assert_ok(sl_dag_info_get(b, "d", &ib));
	assert_memory_equal(ib.ns_id.bytes, ns_id.bytes, SL_DIGEST_LEN);
	assert_int_equal(ib.entries, 1);
	/* Joining twice, or from a non-root, is refused. */
	assert_int_equal(sl_dag_create_from_root(b, "d", la.v[0].enc, la.v[0].len), SL_EEXISTS);
	assert_int_equal(sl_dag_create_from_root(b, "d2", la.v[1].enc, la.v[1].len), SL_EINVAL);
	elist_free(&la);
	assert_int_equal(send_all(a, b, "d"), 2);
	expect_same_stores(a, b, "d", 1, 1);

	/* Concurrent writes at the same heights on the same keys: x set on
	 * both sides, y set on A and deleted on B, w at different heights. */
	w[0] = set_w("x", "x from A");
	w[1] = set_w("y", "y from A");
	assert_ok(write_entry(a, "d", &ka, w, 2, &a1)); /* h3 */
	w[0] = set_w("w", "w from A");
	assert_ok(write_entry(a, "d", &ka, w, 1, &a2)); /* h4 */
	w[0] = set_w("x", "x from B");
	w[1] = del_w("y");
	w[2] = set_w("w", "w from B");
	assert_ok(write_entry(b, "d", &kb, w, 3, &b1)); /* h3 */
	x_winner = later(3, &a1, 3, &b1) ? "x from A" : "x from B";
	y_winner = later(3, &a1, 3, &b1) ? "y from A" : NULL;

	/* Each side first sees its own writes only. */
	check_value(a, "d", "x", "x from A");
	check_value(b, "d", "x", "x from B");
	check_value(b, "d", "y", NULL);

	assert_int_equal(send_all(a, b, "d"), 2);
	assert_int_equal(send_all(b, a, "d"), 1);
	/* Offered again: all known. */
	assert_int_equal(send_all(a, b, "d"), 0);
	expect_same_stores(a, b, "d", y_winner ? 4 : 3, 2);
	check_value(a, "d", "x", x_winner);
	check_value(b, "d", "x", x_winner);
	check_value(a, "d", "y", y_winner);
	check_value(b, "d", "y", y_winner);
	check_value(a, "d", "w", "w from A"); /* height 4 beats height 3 */
	check_value(b, "d", "w", "w from A");
	check_value(b, "d", "base", "common");
	assert_ok(sl_dag_info_get(a, "d", &ia));
	assert_int_equal(ia.n_tips, 2);
	assert_memory_equal(ia.tips[0].bytes, b1.bytes, SL_DIGEST_LEN); /* (3, b1) < (4, a2) */
	assert_memory_equal(ia.tips[1].bytes, a2.bytes, SL_DIGEST_LEN);
	assert_int_equal(ia.max_height, 4);

	/* The next write merges: parents both tips, height max + 1. */
	m1 = put(b, "d", &kb, "merged", "by B");
	log_of(b, "d", &la);
	it = find_item(&la, &m1);
	assert_non_null(it);
	assert_int_equal(it->height, 5);
	assert_int_equal(it->n_parents, 2);
	{
		sl_digest want[2] = {a2, b1};
		qsort(want, 2, sizeof(want[0]), cmp_digest);
		assert_memory_equal(it->parents, want, sizeof(want));
	}
	elist_free(&la);
	tips_of(b, "d", &tips);
	assert_int_equal(tips.n, 1);
	assert_memory_equal(tips.v[0].id.bytes, m1.bytes, SL_DIGEST_LEN);
	elist_free(&tips);
	assert_int_equal(send_all(b, a, "d"), 1);
	expect_same_stores(a, b, "d", y_winner ? 5 : 4, 1);

	/* Both merge-level writes at once, then one merge of those. */
	m2 = put(a, "d", &ka, "x", "x again from A");
	m3 = put(b, "d", &kb, "x", "x again from B");
	assert_int_equal(send_all(a, b, "d"), 1);
	assert_int_equal(send_all(b, a, "d"), 1);
	expect_same_stores(a, b, "d", y_winner ? 5 : 4, 2);
	check_value(a, "d", "x", later(6, &m2, 6, &m3) ? "x again from A" : "x again from B");
	put(a, "d", &ka, "last", "1");
	assert_ok(sl_dag_info_get(a, "d", &ia));
	assert_int_equal(ia.n_tips, 1);
	assert_int_equal(ia.max_height, 7);
	assert_int_equal(send_all(a, b, "d"), 1);
	expect_same_stores(a, b, "d", y_winner ? 6 : 5, 1);

	/* Report counts of a mixed offer: one new, the rest known. */
	put(a, "d", &ka, "one/more", "2");
	log_of(a, "d", &la);
	{
		sl_bytes all[64];
		assert_true(la.n <= 64);
		for (size_t i = 0; i < la.n; i++) {
			all[i].data = la.v[i].enc;
			all[i].len = la.v[i].len;
		}
		assert_ok(offer(b, "d", all, la.n, 1, &rep));
		assert_int_equal(rep.stored, 1);
		assert_int_equal(rep.known, la.n - 1);
		assert_int_equal(rep.refused, 0);
	}
	elist_free(&la);

	assert_ok(sl_dag_verify(a, "d", &vr));
	assert_int_equal(vr.entries_checked, 11);
	assert_ok(sl_dag_verify(b, "d", &vr));
	assert_int_equal(vr.entries_checked, 11);

	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* -------------------------------------------------------- authorization */

/* A form-valid entry on the tips `on` of a namespace, signed by k. */
static void forge(sl_buf *out, const key *k, const sl_digest *ns, const sl_digest *on, size_t n_on,
                  uint64_t height, sl_dag_write *w, size_t n_w)
{
	sl_dag_entry e;
	memset(&e, 0, sizeof(e));
	e.ns = *ns;
	e.height = height;
	e.n_parents = n_on;
	memcpy(e.parents, on, n_on * sizeof(*on));
	qsort(e.parents, n_on, sizeof(e.parents[0]), cmp_digest);
	memcpy(e.author, k->pk, SL_ED25519_PK_LEN);
	e.time_ms = 42;
	e.writes = w;
	e.n_writes = n_w;
	sl_buf_reset(out);
	assert_ok(sl_dag_entry_sign(&e, k->sk, out));
}

/* Forge on the current tips of s. */
static void forge_on_tips(sl_buf *out, sl_store *s, const char *ns, const key *k, sl_dag_write *w,
                          size_t n_w)
{
	sl_dag_info info;
	elist tips;
	sl_digest on[SL_DAG_MAX_PARENTS];
	uint64_t h = 0;
	assert_ok(sl_dag_info_get(s, ns, &info));
	tips_of(s, ns, &tips);
	assert_true(tips.n >= 1 && tips.n <= SL_DAG_MAX_PARENTS);
	for (size_t i = 0; i < tips.n; i++) {
		on[i] = tips.v[i].id;
		if (tips.v[i].height > h)
			h = tips.v[i].height;
	}
	forge(out, k, &info.ns_id, on, tips.n, h + 1, w, n_w);
	elist_free(&tips);
}

static void expect_write_refused(sl_store *s, const char *ns, const key *k, sl_dag_write *w,
                                 size_t n)
{
	sl_dag_info before, after;
	assert_ok(sl_dag_info_get(s, ns, &before));
	assert_int_equal(write_entry(s, ns, k, w, n, NULL), SL_EAUTH);
	assert_non_null(strstr(sl_error_last()->message, "may not"));
	assert_ok(sl_dag_info_get(s, ns, &after));
	assert_int_equal(after.entries, before.entries);
	assert_memory_equal(after.tips, before.tips, sizeof(before.tips));
}

static void test_authorization(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key(), writer = new_key(), reader = new_key(), admin2 = new_key(),
	    outsider = new_key();
	sl_digest ns_id, before_revoke, valid_id;
	sl_dag_write w[2];
	sl_dag_insert_report rep;
	sl_dag_info ib, ib2;
	sl_buf forged = SL_BUF_INIT(SL_DAG_ENTRY_MAX), child = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_buf late = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_verify_report vr;
	elist la;
	(void)state;

	assert_ok(sl_dag_create(a, "d", admin.sk, &ns_id));
	expect_role(a, "d", &admin, SL_DAG_ADMIN);
	expect_role(a, "d", &writer, SL_DAG_NONE);

	/* No role: no write. */
	w[0] = set_w("k", "v");
	expect_write_refused(a, "d", &writer, w, 1);

	/* Granted WRITE: may write, may not set roles. */
	grant(a, "d", &admin, writer.pk, SL_DAG_WRITE);
	expect_role(a, "d", &writer, SL_DAG_WRITE);
	w[0] = set_w("k", "by the writer");
	assert_ok(write_entry(a, "d", &writer, w, 1, NULL));
	check_value(a, "d", "k", "by the writer");
	w[0] = role_w(outsider.pk, SL_DAG_READ);
	expect_write_refused(a, "d", &writer, w, 1);
	w[0] = set_w("k2", "v");
	w[1] = role_w(writer.pk, SL_DAG_ADMIN); /* not even for itself */
	expect_write_refused(a, "d", &writer, w, 2);
	expect_role(a, "d", &writer, SL_DAG_WRITE);
	expect_role(a, "d", &outsider, SL_DAG_NONE);

	/* READ is not enough to write. */
	grant(a, "d", &admin, reader.pk, SL_DAG_READ);
	expect_role(a, "d", &reader, SL_DAG_READ);
	w[0] = set_w("k", "by the reader");
	expect_write_refused(a, "d", &reader, w, 1);

	/* A second admin may grant. */
	grant(a, "d", &admin, admin2.pk, SL_DAG_ADMIN);
	expect_role(a, "d", &admin2, SL_DAG_ADMIN);
	grant(a, "d", &admin2, reader.pk, SL_DAG_WRITE);
	expect_role(a, "d", &reader, SL_DAG_WRITE);
	w[0] = set_w("r", "by the reader, now a writer");
	assert_ok(write_entry(a, "d", &reader, w, 1, NULL));

	/* B takes everything so far. */
	log_of(a, "d", &la);
	assert_ok(sl_dag_create_from_root(b, "d", la.v[0].enc, la.v[0].len));
	elist_free(&la);
	assert_int_equal(send_all(a, b, "d"), 6);
	expect_role(b, "d", &writer, SL_DAG_WRITE);
	expect_role(b, "d", &admin2, SL_DAG_ADMIN);

	/* An entry the writer signs now, on the tips before the revocation,
	 * delivered after it. */
	w[0] = set_w("late", "signed before the revocation");
	forge_on_tips(&late, a, "d", &writer, w, 1);
	assert_ok(sl_dag_info_get(a, "d", &ib));
	before_revoke = ib.tips[0];

	/* Revoked: the writer's new entries on the current tips are refused. */
	grant(a, "d", &admin, writer.pk, SL_DAG_NONE);
	expect_role(a, "d", &writer, SL_DAG_NONE);
	w[0] = set_w("k", "after the revocation");
	expect_write_refused(a, "d", &writer, w, 1);
	check_value(a, "d", "k", "by the writer");
	forge_on_tips(&forged, a, "d", &writer, w, 1);
	{
		sl_bytes one = {forged.data, forged.len};
		assert_ok(offer(a, "d", &one, 1, 1, &rep));
		assert_int_equal(rep.refused, 1);
		assert_int_equal(rep.stored, 0);
		assert_non_null(strstr(rep.reason, "may not write"));
	}
	/* ... but its entry on the earlier tips is judged there, and kept. */
	{
		sl_bytes one = {late.data, late.len};
		sl_dag_entry le;
		assert_ok(sl_dag_entry_decode(&le, late.data, late.len));
		assert_memory_equal(le.parents[0].bytes, before_revoke.bytes, SL_DIGEST_LEN);
		sl_dag_entry_free(&le);
		assert_ok(offer(a, "d", &one, 1, 1, &rep));
		assert_int_equal(rep.stored, 1);
		assert_int_equal(rep.refused, 0);
		check_value(a, "d", "late", "signed before the revocation");
	}

	/* Forged entries offered to B: by an outsider, by a WRITE key
	 * setting a role, and an admin's entry on top of a forged one; an
	 * unrelated valid entry in the same call is stored. */
	assert_ok(sl_dag_info_get(b, "d", &ib));
	w[0] = set_w("k", "forged by an outsider");
	forge_on_tips(&forged, b, "d", &outsider, w, 1);
	{
		sl_dag_entry fe;
		sl_buf roles = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
		sl_bytes batch[4];
		sl_digest forged_id, on;
		sl_dag_write cw = set_w("k", "on a forged entry");
		sl_dag_write rw = role_w(outsider.pk, SL_DAG_ADMIN);

		assert_ok(sl_dag_entry_decode(&fe, forged.data, forged.len));
		forged_id = fe.id;
		forge(&child, &admin, &ns_id, &forged_id, 1, fe.height + 1, &cw, 1);
		sl_dag_entry_free(&fe);
		on = ib.tips[0];
		forge(&roles, &reader, &ns_id, &on, 1, ib.max_height + 1, &rw, 1);

		valid_id = put(a, "d", &admin, "valid", "unrelated and valid");
		log_of(a, "d", &la);
		batch[0].data = forged.data;
		batch[0].len = forged.len;
		batch[1].data = child.data;
		batch[1].len = child.len;
		batch[2].data = roles.data;
		batch[2].len = roles.len;
		batch[3].data = NULL;
		for (size_t i = 0; i < la.n; i++)
			if (sl_digest_eq(&la.v[i].id, &valid_id)) {
				batch[3].data = la.v[i].enc;
				batch[3].len = la.v[i].len;
			}
		assert_non_null(batch[3].data);
		/* The valid entry sits on A's tips, which B lacks in part:
		 * first give B all but it. */
		{
			const item **items = calloc(la.n, sizeof(*items));
			size_t n = 0;
			for (size_t i = 0; i < la.n; i++)
				if (!sl_digest_eq(&la.v[i].id, &valid_id))
					items[n++] = &la.v[i];
			offer_items(b, "d", items, n, 1, &rep);
			assert_int_equal(rep.refused, 0);
			assert_int_equal(rep.stored, 2); /* the revocation and the late one */
			free(items);
		}
		assert_ok(sl_dag_info_get(b, "d", &ib));
		assert_ok(offer(b, "d", batch, 4, 1, &rep));
		assert_int_equal(rep.stored, 1);
		assert_int_equal(rep.known, 0);
		assert_int_equal(rep.refused, 3);
		assert_memory_equal(rep.first_refused.bytes, forged_id.bytes, SL_DIGEST_LEN);
		assert_non_null(strstr(rep.reason, "may not write"));
		assert_ok(sl_dag_info_get(b, "d", &ib2));
		assert_int_equal(ib2.entries, ib.entries + 1);
		assert_int_equal(ib2.n_tips, 1);
		assert_memory_equal(ib2.tips[0].bytes, valid_id.bytes, SL_DIGEST_LEN);
		check_value(b, "d", "valid", "unrelated and valid");
		check_value(b, "d", "k", "by the writer");

		/* The role-setting one alone: refused for its roles. */
		batch[0] = batch[2];
		assert_ok(offer(b, "d", batch, 1, 1, &rep));
		assert_int_equal(rep.refused, 1);
		assert_non_null(strstr(rep.reason, "may not set roles"));
		/* The child alone now: its parent is not held. */
		batch[0].data = child.data;
		batch[0].len = child.len;
		assert_ok(offer(b, "d", batch, 1, 1, &rep));
		assert_int_equal(rep.refused, 1);
		assert_non_null(strstr(rep.reason, "not held"));
		sl_buf_free(&roles);
		elist_free(&la);
	}
	expect_role(b, "d", &outsider, SL_DAG_NONE);
	expect_role(b, "d", &writer, SL_DAG_NONE);
	expect_role(b, "d", &reader, SL_DAG_WRITE);
	expect_role(b, "d", &admin, SL_DAG_ADMIN);
	expect_role(b, "d", &admin2, SL_DAG_ADMIN);
	expect_same_stores(a, b, "d", 4, 1);

	/* An admin may demote the first admin. */
	grant(a, "d", &admin2, admin.pk, SL_DAG_READ);
	expect_role(a, "d", &admin, SL_DAG_READ);
	w[0] = set_w("k", "by the demoted admin");
	expect_write_refused(a, "d", &admin, w, 1);

	assert_ok(sl_dag_verify(a, "d", &vr));
	assert_ok(sl_dag_verify(b, "d", &vr));

	sl_buf_free(&forged);
	sl_buf_free(&child);
	sl_buf_free(&late);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* ----------------------------------------------------- concurrent roles */

static void test_concurrent_roles(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key(), admin2 = new_key(), x = new_key(), y = new_key(), z = new_key();
	sl_digest ns_id, ga, gb, on_b;
	sl_dag_write w[2];
	sl_dag_insert_report rep;
	sl_dag_info info;
	sl_buf enc = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_dag_role x_role;
	sl_verify_report vr;
	elist la;
	(void)state;

	assert_ok(sl_dag_create(a, "d", admin.sk, &ns_id));
	grant(a, "d", &admin, admin2.pk, SL_DAG_ADMIN); /* h1 */
	log_of(a, "d", &la);
	assert_ok(sl_dag_create_from_root(b, "d", la.v[0].enc, la.v[0].len));
	elist_free(&la);
	assert_int_equal(send_all(a, b, "d"), 1);

	/* At height 2 on both sides: x gets READ on A and WRITE on B; y
	 * WRITE on A only, z WRITE on B only. */
	w[0] = role_w(x.pk, SL_DAG_READ);
	w[1] = role_w(y.pk, SL_DAG_WRITE);
	assert_ok(write_entry(a, "d", &admin, w, 2, &ga));
	w[0] = role_w(x.pk, SL_DAG_WRITE);
	w[1] = role_w(z.pk, SL_DAG_WRITE);
	assert_ok(write_entry(b, "d", &admin2, w, 2, &gb));
	expect_role(a, "d", &x, SL_DAG_READ);
	expect_role(a, "d", &z, SL_DAG_NONE);
	expect_role(b, "d", &x, SL_DAG_WRITE);
	expect_role(b, "d", &y, SL_DAG_NONE);

	/* Exchanged: two tips, the roles of both merged, x's by id. */
	assert_int_equal(send_all(a, b, "d"), 1);
	assert_int_equal(send_all(b, a, "d"), 1);
	x_role = later(2, &ga, 2, &gb) ? SL_DAG_READ : SL_DAG_WRITE;
	for (int i = 0; i < 2; i++) {
		sl_store *s = i ? b : a;
		assert_ok(sl_dag_info_get(s, "d", &info));
		assert_int_equal(info.n_tips, 2);
		expect_role(s, "d", &x, x_role);
		expect_role(s, "d", &y, SL_DAG_WRITE);
		expect_role(s, "d", &z, SL_DAG_WRITE);
		expect_role(s, "d", &admin, SL_DAG_ADMIN);
	}

	/* y is judged at its parents: on B's branch alone it has no role. */
	on_b = gb;
	w[0] = set_w("y", "on B's branch");
	forge(&enc, &y, &ns_id, &on_b, 1, 3, w, 1);
	{
		sl_bytes one = {enc.data, enc.len};
		assert_ok(offer(a, "d", &one, 1, 1, &rep));
		assert_int_equal(rep.refused, 1);
		assert_non_null(strstr(rep.reason, "may not write"));
	}
	/* ... z is on it, and on both merged so is y. */
	forge(&enc, &z, &ns_id, &on_b, 1, 3, w, 1);
	{
		sl_bytes one = {enc.data, enc.len};
		assert_ok(offer(a, "d", &one, 1, 1, &rep));
		assert_int_equal(rep.stored, 1);
	}
	w[0] = set_w("y", "on both");
	assert_ok(write_entry(a, "d", &y, w, 1, NULL)); /* h4, on ga and z's entry */

	/* Different heights: x made admin on B at h3, removed on A at h5:
	 * the higher wins whatever the ids. */
	grant(b, "d", &admin2, x.pk, SL_DAG_ADMIN); /* h3 on B */
	expect_role(b, "d", &x, SL_DAG_ADMIN);
	grant(a, "d", &admin, x.pk, SL_DAG_NONE); /* h5 on A */
	assert_int_equal(send_all(a, b, "d"), 3);
	assert_int_equal(send_all(b, a, "d"), 1);
	expect_role(a, "d", &x, SL_DAG_NONE);
	expect_role(b, "d", &x, SL_DAG_NONE);
	expect_same_stores(a, b, "d", 1, 2);
	check_value(a, "d", "y", "on both");
	/* x's admin entry is held, yet x may do nothing on the tips. */
	w[0] = set_w("x", "by x");
	expect_write_refused(a, "d", &x, w, 1);
	put(a, "d", &y, "merged", "1");
	expect_role(a, "d", &x, SL_DAG_NONE);

	assert_ok(sl_dag_verify(a, "d", &vr));
	assert_ok(sl_dag_verify(b, "d", &vr));
	sl_buf_free(&enc);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* -------------------------------------------------------- insert checks */

/* The encoding of entry id as s holds it. */
static void encoding_of(sl_store *s, const char *ns, const sl_digest *id, sl_buf *out)
{
	elist l;
	const item *it;
	log_of(s, ns, &l);
	it = find_item(&l, id);
	assert_non_null(it);
	assert_ok(sl_buf_set(out, it->enc, it->len));
	elist_free(&l);
}

/* Offer one encoding; the report. */
static sl_dag_insert_report offer_one(sl_store *to, const char *ns, const sl_buf *enc,
                                      int with_values)
{
	sl_dag_insert_report rep;
	sl_bytes one = {enc->data, enc->len};
	assert_ok(offer(to, ns, &one, 1, with_values, &rep));
	return rep;
}

static void expect_refusal(const sl_dag_insert_report *rep, const sl_buf *enc, const char *why)
{
	sl_digest id;
	sl_sha256(&id, enc->data, enc->len);
	assert_int_equal(rep->refused, 1);
	assert_int_equal(rep->stored, 0);
	assert_int_equal(rep->known, 0);
	assert_memory_equal(rep->first_refused.bytes, id.bytes, SL_DIGEST_LEN);
	if (!strstr(rep->reason, why))
		fail_msg("refused for '%s', not '%s'", rep->reason, why);
}

static void test_insert_checks(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key(), admin2 = new_key();
	sl_buf e1 = SL_BUF_INIT(SL_DAG_ENTRY_MAX), e2 = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_buf e3 = SL_BUF_INIT(SL_DAG_ENTRY_MAX), e4 = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_buf bad = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_digest ns_id, other_id, id;
	sl_dag_insert_report rep;
	sl_dag_info before, after;
	sl_dag_write w;
	sl_verify_report vr;
	elist la;
	(void)state;

	assert_ok(sl_dag_create(a, "d", admin.sk, &ns_id));
	log_of(a, "d", &la);
	assert_ok(sl_dag_create_from_root(b, "d", la.v[0].enc, la.v[0].len));
	elist_free(&la);

	/* A SET whose value is neither offered nor held. */
	id = put(a, "d", &admin, "k1", "payload one");
	encoding_of(a, "d", &id, &e1);
	rep = offer_one(b, "d", &e1, 0);
	expect_refusal(&rep, &e1, "came without its bytes");
	assert_ok(sl_dag_info_get(b, "d", &after));
	assert_int_equal(after.entries, 1);
	assert_int_equal(after.keys, 0);
	rep = offer_one(b, "d", &e1, 1);
	assert_int_equal(rep.stored, 1);
	assert_int_equal(rep.refused, 0);
	check_value(b, "d", "k1", "payload one");

	/* The same bytes set again elsewhere: held now, so need not come. */
	id = put(a, "d", &admin, "k2", "payload one");
	encoding_of(a, "d", &id, &e2);
	rep = offer_one(b, "d", &e2, 0);
	assert_int_equal(rep.stored, 1);
	check_value(b, "d", "k2", "payload one");

	/* A SET whose size is not its value's, offered or held. */
	w = set_w("k3", "payload one");
	w.value_len++;
	forge_on_tips(&bad, b, "d", &admin, &w, 1);
	rep = offer_one(b, "d", &bad, 1);
	expect_refusal(&rep, &bad, "bytes, not");
	rep = offer_one(b, "d", &bad, 0);
	expect_refusal(&rep, &bad, "bytes, not");
	w.value_len -= 2;
	forge_on_tips(&bad, b, "d", &admin, &w, 1);
	rep = offer_one(b, "d", &bad, 0);
	expect_refusal(&rep, &bad, "bytes, not");

	/* Wrong heights: one too many, and that of the parent. */
	assert_ok(sl_dag_info_get(b, "d", &before));
	w = set_w("k3", "payload three");
	forge(&bad, &admin, &ns_id, before.tips, 1, before.max_height + 2, &w, 1);
	rep = offer_one(b, "d", &bad, 1);
	expect_refusal(&rep, &bad, "has height");
	forge(&bad, &admin, &ns_id, before.tips, 1, before.max_height, &w, 1);
	rep = offer_one(b, "d", &bad, 1);
	expect_refusal(&rep, &bad, "has height");

	/* Another namespace's entries, and its root. */
	assert_ok(sl_dag_create(a, "other", admin2.sk, &other_id));
	assert_memory_not_equal(other_id.bytes, ns_id.bytes, SL_DIGEST_LEN);
	id = put(a, "other", &admin2, "k3", "payload three");
	encoding_of(a, "other", &id, &bad);
	rep = offer_one(b, "d", &bad, 1);
	expect_refusal(&rep, &bad, "not of this namespace");
	encoding_of(a, "other", &other_id, &bad);
	rep = offer_one(b, "d", &bad, 1);
	expect_refusal(&rep, &bad, "not of this namespace");
	/* An entry naming the namespace on another's entries. */
	forge(&bad, &admin, &ns_id, &id, 1, 2, &w, 1);
	rep = offer_one(b, "d", &bad, 1);
	expect_refusal(&rep, &bad, "is not held");
	/* The own root is known. */
	encoding_of(a, "d", &ns_id, &bad);
	rep = offer_one(b, "d", &bad, 1);
	assert_int_equal(rep.known, 1);
	assert_int_equal(rep.refused, 0);

	/* A parent not held: refused, nothing of it stored; then the parent
	 * after the child in one call, then the child again. */
	id = put(a, "d", &admin, "k3", "payload three");
	encoding_of(a, "d", &id, &e3);
	w = del_w("k1");
	assert_ok(write_entry(a, "d", &admin, &w, 1, &id));
	encoding_of(a, "d", &id, &e4);
	assert_ok(sl_dag_info_get(b, "d", &before));
	assert_int_equal(before.entries, 3);
	assert_int_equal(before.keys, 2);
	rep = offer_one(b, "d", &e4, 1);
	expect_refusal(&rep, &e4, "is not held");
	assert_ok(sl_dag_info_get(b, "d", &after));
	assert_memory_equal(&after, &before, sizeof(after));
	check_value(b, "d", "k1", "payload one");
	{
		sl_bytes two[2] = {{e4.data, e4.len}, {e3.data, e3.len}};
		assert_ok(offer(b, "d", two, 2, 1, &rep));
		assert_int_equal(rep.refused, 1);
		assert_int_equal(rep.stored, 1);
		assert_non_null(strstr(rep.reason, "is not held"));
	}
	check_value(b, "d", "k3", "payload three");
	check_value(b, "d", "k1", "payload one");
	rep = offer_one(b, "d", &e4, 1);
	assert_int_equal(rep.stored, 1);
	check_value(b, "d", "k1", NULL);

	/* Duplicates, within one call and across calls. */
	id = put(a, "d", &admin, "k4", "payload four");
	encoding_of(a, "d", &id, &bad);
	{
		sl_bytes dup[4] = {{bad.data, bad.len},
		                   {bad.data, bad.len},
		                   {e1.data, e1.len},
		                   {e3.data, e3.len}};
		assert_ok(offer(b, "d", dup, 4, 1, &rep));
		assert_int_equal(rep.stored, 1);
		assert_int_equal(rep.known, 3);
		assert_int_equal(rep.refused, 0);
		assert_ok(offer(b, "d", dup, 4, 1, &rep));
		assert_int_equal(rep.stored, 0);
		assert_int_equal(rep.known, 4);
	}

	/* Garbage and a cut entry are refused, the others still stored. */
	id = put(a, "d", &admin, "k5", "payload five");
	encoding_of(a, "d", &id, &e2);
	{
		sl_bytes mixed[3] = {
		        {(const uint8_t *)"garbage", 7}, {e2.data, e2.len - 1}, {e2.data, e2.len}};
		sl_digest g;
		assert_ok(offer(b, "d", mixed, 3, 1, &rep));
		assert_int_equal(rep.stored, 1);
		assert_int_equal(rep.refused, 2);
		sl_sha256(&g, "garbage", 7);
		assert_memory_equal(rep.first_refused.bytes, g.bytes, SL_DIGEST_LEN);
		assert_true(strlen(rep.reason) > 0);
	}

	/* Not a dag namespace, no namespace. */
	assert_ok(sl_store_ns_create(b, "m", SL_NS_MUTABLE));
	assert_int_equal(offer(b, "m", NULL, 0, 0, &rep), SL_EINVAL);
	assert_int_equal(offer(b, "nope", NULL, 0, 0, &rep), SL_ENOTFOUND);

	send_all(a, b, "d");
	expect_same_stores(a, b, "d", 4, 1);
	assert_ok(sl_dag_verify(a, "d", &vr));
	assert_int_equal(vr.entries_checked, 7);
	assert_ok(sl_dag_verify(b, "d", &vr));
	assert_int_equal(vr.entries_checked, 7);

	sl_buf_free(&e1);
	sl_buf_free(&e2);
	sl_buf_free(&e3);
	sl_buf_free(&e4);
	sl_buf_free(&bad);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

/* ------------------------------------------------------ namespace kind */

/* One key making namespaces back to back: each has an id of its own (the
 * root's salt); and a root may not set its own author's role. */
static void test_namespace_ids(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	sl_digest ids[8];
	sl_dag_entry root;
	sl_dag_write w;
	sl_ns_info ni;
	sl_buf enc = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	(void)state;

	for (int i = 0; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof(name), "many%d", i);
		assert_ok(sl_dag_create(s, name, admin.sk, &ids[i]));
		for (int j = 0; j < i; j++)
			assert_false(sl_digest_eq(&ids[i], &ids[j]));
	}
	memset(&root, 0, sizeof(root));
	memset(&w, 0, sizeof(w));
	memcpy(root.author, admin.pk, SL_ED25519_PK_LEN);
	root.ns.bytes[0] = 1;
	w.kind = SL_DAG_ROLE;
	memcpy(w.pk, admin.pk, SL_ED25519_PK_LEN);
	w.role = SL_DAG_READ;
	root.writes = &w;
	root.n_writes = 1;
	assert_ok(sl_dag_entry_sign(&root, admin.sk, &enc));
	assert_int_equal(sl_dag_create_from_root(s, "selfrole", enc.data, enc.len), SL_EINVAL);
	assert_int_equal(sl_store_ns_info(s, "selfrole", &ni), SL_ENOTFOUND);
	sl_buf_free(&enc);
	drop_store(s, dir);
}

static void test_namespace_kind(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key();
	sl_ns_info *list = NULL, ni;
	size_t n = 0;
	sl_ns_kind kind;
	sl_digest ns_id;
	sl_batch *b;
	sl_dag_info info;
	int rc;
	(void)state;

	assert_int_equal(sl_store_ns_create(s, "x", SL_NS_DAG), SL_EINVAL);
	assert_int_equal(sl_store_ns_info(s, "x", &ni), SL_ENOTFOUND);
	assert_ok(sl_ns_kind_parse(&kind, "dag"));
	assert_int_equal(kind, SL_NS_DAG);
	assert_string_equal(sl_ns_kind_name(SL_NS_DAG), "dag");

	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	assert_ok(sl_dag_create(s, "d", admin.sk, &ns_id));
	put(s, "d", &admin, "k", "v");
	put(s, "d", &admin, "k2", "v2");
	assert_int_equal(sl_dag_create(s, "d", admin.sk, NULL), SL_EEXISTS);
	assert_int_equal(sl_dag_create(s, "m", admin.sk, NULL), SL_EEXISTS);
	assert_int_equal(sl_store_ns_create(s, "d", SL_NS_MUTABLE), SL_EEXISTS);
	assert_int_equal(sl_dag_create(s, "bad name", admin.sk, NULL), SL_EINVAL);
	/* dag calls on a log namespace, and log writes on a dag one. */
	assert_int_equal(sl_dag_info_get(s, "m", &info), SL_EINVAL);
	assert_int_equal(sl_dag_info_get(s, "nope", &info), SL_ENOTFOUND);
	rc = sl_batch_new(&b, s, "d");
	if (rc == SL_OK) {
		assert_ok(sl_batch_put(b, "k", 1, "w", 1));
		rc = sl_batch_commit(b, NULL);
		sl_batch_free(b);
	}
	assert_int_equal(rc, SL_EINVAL);
	check_value(s, "d", "k", "v");

	assert_ok(sl_store_ns_list(s, &list, &n));
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "d");
	assert_int_equal(list[0].kind, SL_NS_DAG);
	assert_int_equal(list[0].target.size, 3);
	assert_memory_equal(list[0].target.root.bytes, ns_id.bytes, SL_DIGEST_LEN);
	assert_int_equal(list[0].keys, 2);
	assert_string_equal(list[1].name, "m");
	assert_int_equal(list[1].kind, SL_NS_MUTABLE);
	sl_free(list);

	drop_store(s, dir);
	values_clear();
}

/* A frame large enough that its signatures are checked on several
 * threads: one bad signature in the middle refuses that entry and its
 * descendants, and only those. */
static void test_large_frame_signatures(void **state)
{
	char *dir_a = tu_tempdir(), *dir_b = tu_tempdir();
	sl_store *a = open_store(dir_a, SL_STORE_CREATE), *b = open_store(dir_b, SL_STORE_CREATE);
	key admin = new_key();
	sl_dag_insert_report rep;
	sl_dag_info info;
	sl_dag_verified *verified;
	sl_bytes *frame;
	uint8_t *tampered;
	elist la;
	size_t n = 300, bad = 1 + tu_rng_below(&rng, n - 1);
	(void)state;

	assert_ok(sl_dag_create(a, "d", admin.sk, NULL));
	for (size_t i = 0; i < n; i++) {
		char k[32], v[32];
		snprintf(k, sizeof(k), "k/%zu", i);
		snprintf(v, sizeof(v), "v%zu", i);
		put(a, "d", &admin, k, v);
	}
	log_of(a, "d", &la); /* the root and a chain of n */
	assert_int_equal(la.n, n + 1);
	assert_ok(sl_dag_create_from_root(b, "d", la.v[0].enc, la.v[0].len));
	frame = calloc(n, sizeof(*frame));
	tampered = malloc(la.v[bad].len);
	assert_non_null(frame);
	assert_non_null(tampered);
	for (size_t i = 0; i < n; i++)
		frame[i] = (sl_bytes){la.v[i + 1].enc, la.v[i + 1].len};
	memcpy(tampered, la.v[bad].enc, la.v[bad].len);
	tampered[la.v[bad].len - 1] ^= 0x01; /* the signature's last byte */
	frame[bad - 1] = (sl_bytes){tampered, la.v[bad].len};

	/* Signatures checked ahead, on the untampered frame: the set vouches
	 * for those bytes only, so the tampered entry is still checked. */
	frame[bad - 1] = (sl_bytes){la.v[bad].enc, la.v[bad].len};
	assert_ok(sl_dag_verify_signatures(frame, n, &verified));
	frame[bad - 1] = (sl_bytes){tampered, la.v[bad].len};
	assert_ok(offer_by(b, "d", NULL, verified, frame, n, 1, &rep));
	sl_dag_verified_free(verified);
	assert_int_equal(rep.stored, bad - 1);
	assert_int_equal(rep.refused, n - bad + 1);
	assert_non_null(strstr(rep.reason, "signature"));
	assert_ok(sl_dag_info_get(b, "d", &info));
	assert_int_equal(info.entries, bad);
	assert_int_equal(info.max_height, bad - 1);

	/* The untampered frame: the rest is taken. */
	frame[bad - 1] = (sl_bytes){la.v[bad].enc, la.v[bad].len};
	assert_ok(offer(b, "d", frame, n, 1, &rep));
	assert_int_equal(rep.stored, n - bad + 1);
	assert_int_equal(rep.known, bad - 1);
	assert_int_equal(rep.refused, 0);

	free(tampered);
	free(frame);
	elist_free(&la);
	drop_store(a, dir_a);
	drop_store(b, dir_b);
	values_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_linear_history),
	        cmocka_unit_test(test_branch_merge),
	        cmocka_unit_test(test_authorization),
	        cmocka_unit_test(test_concurrent_roles),
	        cmocka_unit_test(test_insert_checks),
	        cmocka_unit_test(test_namespace_kind),
	        cmocka_unit_test(test_namespace_ids),
	        cmocka_unit_test(test_large_frame_signatures),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("dag_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
