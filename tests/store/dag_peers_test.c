/*
 * What a store keeps about the nodes it syncs dag namespaces with
 * (sluice/dag.h, sluice/store.h):
 *   test_peers            add, list (the namespace's size at add time as
 *                         pushed_seq, a backlog that grows with writes),
 *                         add again re-keys, remove (once), addresses
 *                         refused (empty, blanks, control bytes, too
 *                         long) with nothing stored, records of syncs
 *                         (the outbox moves on, never back, never past
 *                         the namespace; ok clears failures, a failure
 *                         counts and keeps its error and next try), all
 *                         namespaces' peers at once, log and missing
 *                         namespaces refused;
 *   test_requests         access requests: submit (read and write only),
 *                         asking again updates a pending request under its
 *                         id, list, get, pending counts; approve grants the
 *                         role by an entry in the log, twice is harmless;
 *                         deny after approve and approve after deny are
 *                         conflicts; a decided request stays decided; a
 *                         key that is not an admin cannot approve;
 *   test_nonces           a (key, nonce) is claimed once, also across a
 *                         reopened store; old nonces are forgotten by the
 *                         periodic prune, recent ones are not;
 *   test_nonces_format_2  a store of format 2 opened read-only refuses
 *                         nonces and peers with a message saying so, and
 *                         takes them once upgraded.
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include "dag_testutil.h"

/* ------------------------------------------------------------------ peers */

static sl_dag_peer *peers_of(sl_store *s, const char *ns, size_t *n)
{
	sl_dag_peer *list = NULL;
	assert_ok(sl_dag_peer_list(s, ns, &list, n));
	return list;
}

/* The one peer of ns at addr. */
static sl_dag_peer peer_at(sl_store *s, const char *ns, const char *addr)
{
	sl_dag_peer *list, found;
	size_t n, hits = 0;
	list = peers_of(s, ns, &n);
	memset(&found, 0, sizeof(found));
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].addr, addr) == 0) {
			found = list[i];
			hits++;
		}
	sl_free(list);
	if (hits != 1)
		fail_msg("%zu peers of %s at %s", hits, ns, addr);
	return found;
}

static uint64_t entries_of(sl_store *s, const char *ns)
{
	sl_dag_info info;
	assert_ok(sl_dag_info_get(s, ns, &info));
	return info.entries;
}

static void test_peers(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key(), n1 = new_key(), n2 = new_key(), n3 = new_key();
	char long_addr[SL_DAG_ADDR_MAX + 1];
	static const char *const bad[] = {"",           "host name:1", " host:1",
	                                  "host:1 ",    "host:1\t",    "ho\nst:1",
	                                  "host\x01:1", "host:1\x7f",  "host:1\x1f"};
	sl_dag_peer p, *list;
	size_t n;
	uint64_t size;
	(void)state;

	assert_ok(sl_dag_create(s, "d", admin.sk, NULL));
	assert_ok(sl_dag_create(s, "e", admin.sk, NULL));
	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	put(s, "d", &admin, "a", "1");
	put(s, "d", &admin, "b", "2");
	list = peers_of(s, "d", &n);
	assert_int_equal(n, 0);
	sl_free(list);

	/* Added: the outbox starts at what is held now. */
	assert_ok(sl_dag_peer_add(s, "d", "zeta.example:7000", n1.pk));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_string_equal(p.ns, "d");
	assert_memory_equal(p.node, n1.pk, SL_ED25519_PK_LEN);
	assert_int_equal(p.pushed_seq, 3);
	assert_int_equal(p.backlog, 0);
	assert_int_equal(p.last_ok_ms, 0);
	assert_int_equal(p.last_try_ms, 0);
	assert_int_equal(p.next_try_ms, 0);
	assert_int_equal(p.failures, 0);
	assert_string_equal(p.last_error, "");

	/* Writes are owed to it. */
	put(s, "d", &admin, "c", "3");
	put(s, "d", &admin, "d", "4");
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.pushed_seq, 3);
	assert_int_equal(p.backlog, 2);

	/* A second peer starts where the namespace is now. */
	assert_ok(sl_dag_peer_add(s, "d", "alpha.example:7000", n2.pk));
	p = peer_at(s, "d", "alpha.example:7000");
	assert_int_equal(p.pushed_seq, 5);
	assert_int_equal(p.backlog, 0);

	/* Added again: a new key, the outbox as it was. */
	assert_ok(sl_dag_peer_add(s, "d", "zeta.example:7000", n3.pk));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_memory_equal(p.node, n3.pk, SL_ED25519_PK_LEN);
	assert_int_equal(p.pushed_seq, 3);
	assert_int_equal(p.backlog, 2);
	list = peers_of(s, "d", &n);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].addr, "alpha.example:7000"); /* by address */
	assert_string_equal(list[1].addr, "zeta.example:7000");
	sl_free(list);

	/* Addresses refused, nothing stored. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sl_dag_peer_add(s, "d", bad[i], n1.pk) != SL_EINVAL)
			fail_msg("address %zu ('%s') was taken", i, bad[i]);
	assert_int_equal(sl_dag_peer_add(s, "d", NULL, n1.pk), SL_EINVAL);
	memset(long_addr, 'a', sizeof(long_addr));
	long_addr[SL_DAG_ADDR_MAX] = '\0'; /* 256 bytes: one too many */
	assert_int_equal(sl_dag_peer_add(s, "d", long_addr, n1.pk), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "256"));
	list = peers_of(s, "d", &n);
	assert_int_equal(n, 2);
	sl_free(list);
	/* 255 bytes fit, and come back whole. */
	long_addr[SL_DAG_ADDR_MAX - 1] = '\0';
	assert_ok(sl_dag_peer_add(s, "d", long_addr, n1.pk));
	p = peer_at(s, "d", long_addr);
	assert_int_equal(strlen(p.addr), SL_DAG_ADDR_MAX - 1);
	assert_ok(sl_dag_peer_remove(s, "d", long_addr));

	/* A sync that failed: counted, with its error and next try; what
	 * the peer took before it failed is off its outbox all the same. */
	assert_ok(sl_dag_peer_record(s, "d", "zeta.example:7000", 0, 4, "connection refused", 1000,
	                             6000));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.failures, 1);
	assert_string_equal(p.last_error, "connection refused");
	assert_int_equal(p.last_try_ms, 1000);
	assert_int_equal(p.next_try_ms, 6000);
	assert_int_equal(p.last_ok_ms, 0);
	assert_int_equal(p.pushed_seq, 4);
	assert_int_equal(p.backlog, 1);
	assert_ok(sl_dag_peer_record(s, "d", "zeta.example:7000", 0, 0, "timed out", 7000, 17000));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.failures, 2);
	assert_string_equal(p.last_error, "timed out");
	assert_int_equal(p.last_try_ms, 7000);
	assert_int_equal(p.next_try_ms, 17000);
	assert_int_equal(p.pushed_seq, 4); /* never back */

	/* One that went well: failures and error are cleared. */
	assert_ok(sl_dag_peer_record(s, "d", "zeta.example:7000", 1, 4, NULL, 20000, 25000));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.pushed_seq, 4);
	assert_int_equal(p.backlog, 1);
	assert_int_equal(p.failures, 0);
	assert_string_equal(p.last_error, "");
	assert_int_equal(p.last_ok_ms, 20000);
	assert_int_equal(p.last_try_ms, 20000);
	assert_int_equal(p.next_try_ms, 25000);
	/* Never back. */
	assert_ok(sl_dag_peer_record(s, "d", "zeta.example:7000", 1, 1, NULL, 30000, 35000));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.pushed_seq, 4);
	assert_int_equal(p.backlog, 1);
	assert_int_equal(p.last_ok_ms, 30000);
	/* Never past what is held. */
	size = entries_of(s, "d");
	assert_ok(sl_dag_peer_record(s, "d", "zeta.example:7000", 1, 1000, NULL, 40000, 45000));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.pushed_seq, size);
	assert_int_equal(p.backlog, 0);
	put(s, "d", &admin, "e", "5");
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.pushed_seq, size);
	assert_int_equal(p.backlog, 1);
	/* A failure after a success keeps the last success; its outbox too
	 * stops at what is held. */
	assert_ok(sl_dag_peer_record(s, "d", "zeta.example:7000", 0, 1000, NULL, 50000, 55000));
	p = peer_at(s, "d", "zeta.example:7000");
	assert_int_equal(p.failures, 1);
	assert_string_equal(p.last_error, "");
	assert_int_equal(p.last_ok_ms, 40000);
	assert_int_equal(p.last_try_ms, 50000);
	assert_int_equal(p.pushed_seq, size + 1);
	assert_int_equal(p.backlog, 0);
	/* The other peer was not touched. */
	p = peer_at(s, "d", "alpha.example:7000");
	assert_int_equal(p.pushed_seq, 5);
	assert_int_equal(p.backlog, entries_of(s, "d") - 5);
	assert_int_equal(p.failures, 0);
	assert_int_equal(p.last_try_ms, 0);
	assert_memory_equal(p.node, n2.pk, SL_ED25519_PK_LEN);

	/* Peers of every namespace, by namespace then address; one address
	 * may serve two namespaces. */
	assert_ok(sl_dag_peer_add(s, "e", "zeta.example:7000", n1.pk));
	assert_ok(sl_dag_peer_add(s, "e", "beta.example:7000", n2.pk));
	list = peers_of(s, NULL, &n);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].ns, "d");
	assert_string_equal(list[0].addr, "alpha.example:7000");
	assert_string_equal(list[1].ns, "d");
	assert_string_equal(list[1].addr, "zeta.example:7000");
	assert_memory_equal(list[1].node, n3.pk, SL_ED25519_PK_LEN);
	assert_string_equal(list[2].ns, "e");
	assert_string_equal(list[2].addr, "beta.example:7000");
	assert_string_equal(list[3].ns, "e");
	assert_string_equal(list[3].addr, "zeta.example:7000");
	assert_memory_equal(list[3].node, n1.pk, SL_ED25519_PK_LEN);
	assert_int_equal(list[3].pushed_seq, 1);
	assert_int_equal(list[3].failures, 0);
	sl_free(list);
	list = peers_of(s, "e", &n);
	assert_int_equal(n, 2);
	sl_free(list);

	/* Removed once; the same address of the other namespace stays. */
	assert_ok(sl_dag_peer_remove(s, "d", "zeta.example:7000"));
	assert_int_equal(sl_dag_peer_remove(s, "d", "zeta.example:7000"), SL_ENOTFOUND);
	assert_int_equal(sl_dag_peer_record(s, "d", "zeta.example:7000", 1, 1, NULL, 1, 1),
	                 SL_ENOTFOUND);
	list = peers_of(s, "d", &n);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].addr, "alpha.example:7000");
	sl_free(list);
	p = peer_at(s, "e", "zeta.example:7000");
	assert_memory_equal(p.node, n1.pk, SL_ED25519_PK_LEN);

	/* Log namespaces and missing ones are refused. */
	assert_int_equal(sl_dag_peer_add(s, "m", "host:1", n1.pk), SL_EINVAL);
	assert_int_equal(sl_dag_peer_add(s, "nope", "host:1", n1.pk), SL_ENOTFOUND);
	assert_int_equal(sl_dag_peer_remove(s, "m", "host:1"), SL_EINVAL);
	assert_int_equal(sl_dag_peer_remove(s, "nope", "host:1"), SL_ENOTFOUND);
	assert_int_equal(sl_dag_peer_record(s, "m", "host:1", 1, 1, NULL, 1, 1), SL_EINVAL);
	assert_int_equal(sl_dag_peer_record(s, "nope", "host:1", 1, 1, NULL, 1, 1), SL_ENOTFOUND);
	list = peers_of(s, NULL, &n);
	assert_int_equal(n, 3);
	sl_free(list);

	/* All of it persists. */
	sl_store_free(s);
	s = open_store(dir, SL_STORE_READONLY);
	list = peers_of(s, NULL, &n);
	assert_int_equal(n, 3);
	sl_free(list);
	p = peer_at(s, "d", "alpha.example:7000");
	assert_int_equal(p.pushed_seq, 5);

	drop_store(s, dir);
	values_clear();
}

/* -------------------------------------------------------------- requests */

static sl_dag_request request_of(sl_store *s, uint64_t id)
{
	sl_dag_request r;
	assert_ok(sl_dag_request_get(s, id, &r));
	return r;
}

static void expect_same_request(const sl_dag_request *a, const sl_dag_request *b)
{
	assert_int_equal(a->id, b->id);
	assert_string_equal(a->ns, b->ns);
	assert_memory_equal(a->node, b->node, SL_ED25519_PK_LEN);
	assert_int_equal(a->role, b->role);
	assert_string_equal(a->addr, b->addr);
	assert_int_equal(a->time_ms, b->time_ms);
	assert_int_equal(a->state, b->state);
}

static uint64_t pending_of(sl_store *s, const char *ns)
{
	uint64_t n = UINT64_MAX;
	assert_ok(sl_dag_requests_pending(s, ns, &n));
	return n;
}

/* The one tip of ns is in its log and is author's entry giving node role. */
static void expect_role_entry(sl_store *s, const char *ns, const key *author,
                              const uint8_t node[SL_ED25519_PK_LEN], sl_dag_role role)
{
	elist tips, log;
	sl_dag_entry e;
	tips_of(s, ns, &tips);
	assert_int_equal(tips.n, 1);
	log_of(s, ns, &log);
	assert_non_null(find_item(&log, &tips.v[0].id));
	assert_ok(sl_dag_entry_decode(&e, tips.v[0].enc, tips.v[0].len));
	assert_memory_equal(e.author, author->pk, SL_ED25519_PK_LEN);
	assert_int_equal(e.n_writes, 1);
	assert_int_equal(e.writes[0].kind, SL_DAG_ROLE);
	assert_memory_equal(e.writes[0].pk, node, SL_ED25519_PK_LEN);
	assert_int_equal(e.writes[0].role, role);
	sl_dag_entry_free(&e);
	elist_free(&tips);
	elist_free(&log);
}

static void test_requests(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key admin = new_key(), n1 = new_key(), n2 = new_key(), n3 = new_key(), writer = new_key();
	sl_dag_request r1, r2, r3, r, *list;
	uint64_t before;
	size_t n;
	(void)state;

	assert_ok(sl_dag_create(s, "d", admin.sk, NULL));
	assert_ok(sl_dag_create(s, "e", admin.sk, NULL));
	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	grant(s, "e", &admin, writer.pk, SL_DAG_WRITE);
	assert_int_equal(pending_of(s, "d"), 0);

	/* Submitted, then asked again: the same request, updated. */
	assert_ok(sl_dag_request_submit(s, "d", n1.pk, SL_DAG_READ, "n1.example:1", 100, &r1));
	assert_true(r1.id > 0);
	assert_string_equal(r1.ns, "d");
	assert_memory_equal(r1.node, n1.pk, SL_ED25519_PK_LEN);
	assert_int_equal(r1.role, SL_DAG_READ);
	assert_string_equal(r1.addr, "n1.example:1");
	assert_int_equal(r1.time_ms, 100);
	assert_int_equal(r1.state, SL_DAG_REQUEST_PENDING);
	assert_ok(sl_dag_request_submit(s, "d", n1.pk, SL_DAG_WRITE, "n1.example:2", 200, &r));
	assert_int_equal(r.id, r1.id);
	assert_int_equal(r.role, SL_DAG_WRITE);
	assert_string_equal(r.addr, "n1.example:2");
	assert_int_equal(r.time_ms, 200);
	assert_int_equal(r.state, SL_DAG_REQUEST_PENDING);
	r1 = r;
	assert_int_equal(pending_of(s, "d"), 1);

	/* Only read and write may be asked for; nothing is recorded else. */
	assert_int_equal(sl_dag_request_submit(s, "d", n2.pk, SL_DAG_ADMIN, NULL, 1, &r),
	                 SL_EINVAL);
	assert_int_equal(sl_dag_request_submit(s, "d", n2.pk, SL_DAG_NONE, NULL, 1, &r), SL_EINVAL);
	assert_int_equal(sl_dag_request_submit(s, "d", n2.pk, SL_DAG_READ, "bad addr", 1, &r),
	                 SL_EINVAL);
	assert_int_equal(sl_dag_request_submit(s, "m", n2.pk, SL_DAG_READ, NULL, 1, &r), SL_EINVAL);
	assert_int_equal(sl_dag_request_submit(s, "nope", n2.pk, SL_DAG_READ, NULL, 1, &r),
	                 SL_ENOTFOUND);
	assert_ok(sl_dag_request_list(s, &list, &n));
	assert_int_equal(n, 1);
	sl_free(list);

	/* Other nodes, another namespace: requests of their own. */
	assert_ok(sl_dag_request_submit(s, "d", n2.pk, SL_DAG_READ, NULL, 300, &r2));
	assert_string_equal(r2.addr, "");
	assert_ok(sl_dag_request_submit(s, "e", n1.pk, SL_DAG_READ, "n1.example:3", 400, &r3));
	assert_true(r2.id != r1.id && r3.id != r1.id && r3.id != r2.id);
	assert_int_equal(pending_of(s, "d"), 2);
	assert_int_equal(pending_of(s, "e"), 1);
	assert_int_equal(sl_dag_requests_pending(s, "m", &before), SL_EINVAL);
	assert_int_equal(sl_dag_requests_pending(s, "nope", &before), SL_ENOTFOUND);

	/* Listed by id, each as get reads it. */
	assert_ok(sl_dag_request_list(s, &list, &n));
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			assert_true(list[i].id > list[i - 1].id);
		r = request_of(s, list[i].id);
		expect_same_request(&r, &list[i]);
	}
	r = request_of(s, r1.id);
	expect_same_request(&r, &r1);
	assert_int_equal(list[0].id, r1.id);
	r = request_of(s, r3.id);
	assert_string_equal(r.ns, "e");
	assert_memory_equal(r.node, n1.pk, SL_ED25519_PK_LEN);
	assert_int_equal(r.time_ms, 400);
	sl_free(list);
	assert_int_equal(sl_dag_request_get(s, r1.id + r2.id + r3.id + 1, &r), SL_ENOTFOUND);

	/* Approved: an entry by the admin gives n1 the role it asked for. */
	before = entries_of(s, "d");
	expect_role(s, "d", &n1, SL_DAG_NONE);
	assert_ok(sl_dag_request_approve(s, r1.id, admin.sk));
	assert_int_equal(entries_of(s, "d"), before + 1);
	expect_role_entry(s, "d", &admin, n1.pk, SL_DAG_WRITE);
	expect_role(s, "d", &n1, SL_DAG_WRITE);
	assert_int_equal(request_of(s, r1.id).state, SL_DAG_REQUEST_APPROVED);
	assert_int_equal(pending_of(s, "d"), 1);
	put(s, "d", &n1, "by/n1", "granted"); /* the role is in effect */
	check_value(s, "d", "by/n1", "granted");
	/* Again: harmless. */
	assert_ok(sl_dag_request_approve(s, r1.id, admin.sk));
	expect_role(s, "d", &n1, SL_DAG_WRITE);
	assert_int_equal(request_of(s, r1.id).state, SL_DAG_REQUEST_APPROVED);
	assert_int_equal(pending_of(s, "d"), 1);
	/* Denied once approved: a conflict, and it stays approved. */
	assert_int_equal(sl_dag_request_deny(s, r1.id), SL_ECONFLICT);
	assert_int_equal(request_of(s, r1.id).state, SL_DAG_REQUEST_APPROVED);
	expect_role(s, "d", &n1, SL_DAG_WRITE);
	/* Asked again once decided: left as it was. */
	assert_ok(sl_dag_request_submit(s, "d", n1.pk, SL_DAG_READ, "n1.example:9", 900, &r));
	assert_int_equal(r.id, r1.id);
	assert_int_equal(r.state, SL_DAG_REQUEST_APPROVED);
	assert_int_equal(r.role, SL_DAG_WRITE);
	assert_string_equal(r.addr, "n1.example:2");
	assert_int_equal(r.time_ms, 200);
	assert_int_equal(pending_of(s, "d"), 1);

	/* Denied: approving it is a conflict and grants nothing. */
	assert_ok(sl_dag_request_deny(s, r2.id));
	assert_int_equal(request_of(s, r2.id).state, SL_DAG_REQUEST_DENIED);
	assert_int_equal(pending_of(s, "d"), 0);
	before = entries_of(s, "d");
	assert_int_equal(sl_dag_request_approve(s, r2.id, admin.sk), SL_ECONFLICT);
	assert_int_equal(entries_of(s, "d"), before);
	assert_int_equal(request_of(s, r2.id).state, SL_DAG_REQUEST_DENIED);
	expect_role(s, "d", &n2, SL_DAG_NONE);
	assert_ok(sl_dag_request_submit(s, "d", n2.pk, SL_DAG_WRITE, NULL, 1000, &r));
	assert_int_equal(r.id, r2.id);
	assert_int_equal(r.state, SL_DAG_REQUEST_DENIED);
	assert_int_equal(r.role, SL_DAG_READ);
	assert_int_equal(pending_of(s, "d"), 0);

	/* A key that is not an admin cannot approve; the request stays
	 * pending, then an admin approves it. */
	before = entries_of(s, "e");
	assert_int_equal(sl_dag_request_approve(s, r3.id, writer.sk), SL_EAUTH);
	assert_int_equal(sl_dag_request_approve(s, r3.id, n3.sk), SL_EAUTH);
	assert_int_equal(entries_of(s, "e"), before);
	assert_int_equal(request_of(s, r3.id).state, SL_DAG_REQUEST_PENDING);
	assert_int_equal(pending_of(s, "e"), 1);
	expect_role(s, "e", &n1, SL_DAG_NONE);
	assert_ok(sl_dag_request_approve(s, r3.id, admin.sk));
	expect_role_entry(s, "e", &admin, n1.pk, SL_DAG_READ);
	expect_role(s, "e", &n1, SL_DAG_READ);
	expect_role(s, "d", &n1, SL_DAG_WRITE); /* each namespace its own */
	assert_int_equal(pending_of(s, "e"), 0);

	assert_int_equal(sl_dag_request_approve(s, r1.id + r2.id + r3.id + 1, admin.sk),
	                 SL_ENOTFOUND);
	assert_int_equal(sl_dag_request_deny(s, r1.id + r2.id + r3.id + 1), SL_ENOTFOUND);

	/* All of it persists. */
	sl_store_free(s);
	s = open_store(dir, SL_STORE_READONLY);
	assert_ok(sl_dag_request_list(s, &list, &n));
	assert_int_equal(n, 3);
	assert_int_equal(list[0].state, SL_DAG_REQUEST_APPROVED);
	assert_int_equal(list[1].state, SL_DAG_REQUEST_DENIED);
	assert_int_equal(list[2].state, SL_DAG_REQUEST_APPROVED);
	sl_free(list);

	drop_store(s, dir);
	values_clear();
}

/* ---------------------------------------------------------------- nonces */

#define NOW    UINT64_C(1700000000)
#define WINDOW 300u

static void nonce_of(uint8_t out[SL_NONCE_LEN], unsigned i)
{
	memset(out, 0, SL_NONCE_LEN);
	memcpy(out, &i, sizeof(i));
	out[SL_NONCE_LEN - 1] = 0xa5;
}

static int claim(sl_store *s, const key *k, unsigned i, uint64_t time_s)
{
	uint8_t nonce[SL_NONCE_LEN];
	nonce_of(nonce, i);
	return sl_store_nonce_claim(s, k->pk, nonce, time_s, NOW, WINDOW);
}

static void test_nonces(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key k1 = new_key(), k2 = new_key();
	uint8_t random_nonce[SL_NONCE_LEN];
	(void)state;

	/* Once each (key, nonce). */
	assert_ok(claim(s, &k1, 1, NOW));
	assert_int_equal(claim(s, &k1, 1, NOW), SL_EEXISTS);
	assert_non_null(strstr(sl_error_last()->message, "replay"));
	assert_int_equal(claim(s, &k1, 1, NOW - 5), SL_EEXISTS); /* its time is no part of it */
	assert_ok(claim(s, &k2, 1, NOW));
	assert_ok(claim(s, &k1, 2, NOW));
	tu_rng_fill(&rng, random_nonce, sizeof(random_nonce));
	assert_ok(sl_store_nonce_claim(s, k1.pk, random_nonce, NOW, NOW, WINDOW));
	assert_int_equal(sl_store_nonce_claim(s, k1.pk, random_nonce, NOW, NOW, WINDOW),
	                 SL_EEXISTS);

	/* Remembered across a restart. */
	sl_store_free(s);
	s = open_store(dir, 0);
	assert_int_equal(claim(s, &k1, 1, NOW), SL_EEXISTS);
	assert_int_equal(claim(s, &k2, 1, NOW), SL_EEXISTS);
	assert_int_equal(claim(s, &k1, 2, NOW), SL_EEXISTS);
	assert_int_equal(sl_store_nonce_claim(s, k1.pk, random_nonce, NOW, NOW, WINDOW),
	                 SL_EEXISTS);
	assert_ok(claim(s, &k2, 2, NOW));

	/* A fresh handle prunes at its first claim and every 256 after:
	 * claim 1 is recent, 2..299 are far in the past, two more sit at
	 * the edge: exactly twice the window old (kept) and a second more
	 * (forgotten). The prune at claim 257 forgets what is older. */
	sl_store_free(s);
	s = open_store(dir, 0);
	assert_ok(claim(s, &k2, 1000, NOW - 10));
	assert_ok(claim(s, &k2, 1001, NOW - 2 * WINDOW));
	assert_ok(claim(s, &k2, 1002, NOW - 2 * WINDOW - 1));
	for (unsigned i = 4; i <= 300; i++)
		assert_ok(claim(s, &k2, 2000 + i, NOW - 100000 - i));
	assert_ok(claim(s, &k2, 2000 + 4, NOW - 100000)); /* forgotten: claimed anew */
	assert_ok(claim(s, &k2, 2000 + 100, NOW - 100000));
	assert_ok(claim(s, &k2, 1002, NOW - 2 * WINDOW - 1));
	assert_int_equal(claim(s, &k2, 1001, NOW - 2 * WINDOW), SL_EEXISTS);
	assert_int_equal(claim(s, &k2, 1000, NOW - 10), SL_EEXISTS);
	assert_int_equal(claim(s, &k1, 1, NOW), SL_EEXISTS);
	assert_int_equal(claim(s, &k2, 2, NOW), SL_EEXISTS);

	drop_store(s, dir);
	values_clear();
}

/* SQL run on a closed store's database. */
static void test_nonces_format_2(void **state)
{
	char *dir = tu_tempdir();
	sl_store *s = open_store(dir, SL_STORE_CREATE);
	key k = new_key();
	sl_dag_peer *list;
	size_t n;
	(void)state;

	assert_ok(sl_store_ns_create(s, "m", SL_NS_MUTABLE));
	sl_store_free(s);
	/* What the sluice before dag namespaces wrote. */
	assert_true(
	        tu_sql(dir,
	               "DROP TABLE dag_entries; DROP TABLE dag_settings; DROP TABLE dag_state; "
	               "DROP "
	               "TABLE dag_tips; DROP TABLE dag_peers; DROP TABLE dag_requests; DROP TABLE "
	               "request_nonces; DROP TABLE dag_values; DROP INDEX ops_value; PRAGMA "
	               "user_version = 2;") >= 0);

	s = open_store(dir, SL_STORE_READONLY);
	assert_int_equal(claim(s, &k, 1, NOW), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "format 2"));
	assert_non_null(strstr(sl_error_last()->message, "upgrade"));
	assert_int_equal(sl_dag_peer_list(s, NULL, &list, &n), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "format 2"));
	sl_store_free(s);

	/* Opened for writing, it is upgraded and takes them. */
	s = open_store(dir, 0);
	assert_ok(claim(s, &k, 1, NOW));
	assert_int_equal(claim(s, &k, 1, NOW), SL_EEXISTS);
	assert_ok(sl_dag_peer_list(s, NULL, &list, &n));
	assert_int_equal(n, 0);
	sl_free(list);
	drop_store(s, dir);
}

/* Entries a peer pushed are not owed back to it, and nothing else owed
 * to it is skipped for them. */
static void test_pushed_not_owed_back(void **state)
{
	char *dir_w = tu_tempdir(), *dir_r = tu_tempdir();
	sl_store *w = open_store(dir_w, SL_STORE_CREATE), *r = open_store(dir_r, SL_STORE_CREATE);
	key admin = new_key(), wnode = new_key(), other = new_key();
	sl_dag_insert_report rep;
	elist lw;
	sl_bytes frame[8];
	(void)state;

	assert_ok(sl_dag_create(w, "d", admin.sk, NULL));
	log_of(w, "d", &lw);
	assert_ok(sl_dag_create_from_root(r, "d", lw.v[0].enc, lw.v[0].len));
	elist_free(&lw);
	assert_ok(sl_dag_peer_add(r, "d", "w.example:1", wnode.pk));
	put(w, "d", &admin, "a", "1");
	put(w, "d", &admin, "b", "2");
	put(w, "d", &admin, "c", "3");

	/* Pushed by the peer: its outbox stays empty. */
	log_of(w, "d", &lw);
	for (size_t i = 1; i < lw.n; i++)
		frame[i - 1] = (sl_bytes){lw.v[i].enc, lw.v[i].len};
	assert_ok(offer_by(r, "d", wnode.pk, NULL, frame, 3, 1, &rep));
	assert_int_equal(rep.stored, 3);
	assert_int_equal(peer_at(r, "d", "w.example:1").backlog, 0);
	assert_int_equal(peer_at(r, "d", "w.example:1").pushed_seq, 4);
	elist_free(&lw);

	/* From another node: owed to the peer. */
	put(w, "d", &admin, "d", "4");
	log_of(w, "d", &lw);
	frame[0] = (sl_bytes){lw.v[4].enc, lw.v[4].len};
	assert_ok(offer_by(r, "d", other.pk, NULL, frame, 1, 1, &rep));
	assert_int_equal(rep.stored, 1);
	assert_int_equal(peer_at(r, "d", "w.example:1").backlog, 1);
	elist_free(&lw);

	/* Then from the peer, with that one still owed: nothing is skipped. */
	put(w, "d", &admin, "e", "5");
	log_of(w, "d", &lw);
	frame[0] = (sl_bytes){lw.v[5].enc, lw.v[5].len};
	assert_ok(offer_by(r, "d", wnode.pk, NULL, frame, 1, 1, &rep));
	assert_int_equal(rep.stored, 1);
	assert_int_equal(peer_at(r, "d", "w.example:1").backlog, 2);
	assert_int_equal(peer_at(r, "d", "w.example:1").pushed_seq, 4);
	elist_free(&lw);

	drop_store(w, dir_w);
	drop_store(r, dir_r);
	values_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_peers),
	        cmocka_unit_test(test_requests),
	        cmocka_unit_test(test_pushed_not_owed_back),
	        cmocka_unit_test(test_nonces),
	        cmocka_unit_test(test_nonces_format_2),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("dag_peers_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
