/*
 * Dag sync over HTTP against a sync server in this process (loopback, a
 * free port), with signed requests:
 *   test_bootstrap        a node holding only the root pulls a namespace of
 *                         hundreds of entries in many small pages and ends
 *                         with the same state, tips and entries; a second
 *                         sync takes one round trip (the tips);
 *   test_fork             two nodes write concurrently: one sync pulls and
 *                         pushes exactly the difference, both end equal,
 *                         and the bytes sent are far below the namespace's;
 *   test_refusals         no role: 403 and nothing stored; a pending
 *                         request: 403 saying so; after approval the sync
 *                         works; a request without a signature, with a
 *                         stale time, signed for another server, replayed,
 *                         or naming no namespace here is refused and
 *                         changes nothing;
 *   test_outbox           the entries written since a peer's outbox mark
 *                         are pushed in the order they were stored.
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/dag_sync.h"
#include "testutil.h"

static tu_rng rng;

typedef struct node {
	char *dir;
	sl_store *s;
	sl_node_key key;
	sl_sync_server *srv;
	char addr[64];
} node;

static void node_open(node *n)
{
	sl_store_options o;
	n->dir = tu_tempdir();
	assert_non_null(n->dir);
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	assert_ok(sl_store_open(&n->s, n->dir, &o));
	assert_ok(sl_node_key_load(&n->key, n->dir, 1));
	n->srv = NULL;
}

static void node_serve(node *n, size_t frame_budget)
{
	sl_sync_server_options o;
	sl_sync_server_options_init(&o);
	o.store_dir = n->dir;
	o.key = &n->key;
	o.frame_budget = frame_budget;
	assert_ok(sl_sync_server_start(&n->srv, &o));
	snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%u", sl_sync_server_port(n->srv));
}

static void node_close(node *n)
{
	sl_sync_server_stop(n->srv);
	sl_store_free(n->s);
	tu_rmtree(n->dir);
	free(n->dir);
}

static void put(node *n, const char *ns, const char *key, size_t value_len)
{
	uint8_t value[4096];
	sl_dag_write w;
	sl_bytes v = {value, value_len};
	assert_true(value_len <= sizeof(value));
	tu_rng_fill(&rng, value, value_len);
	memset(&w, 0, sizeof(w));
	w.kind = SL_DAG_SET;
	w.key = key;
	w.key_len = strlen(key);
	assert_ok(sl_dag_write_entry(n->s, ns, n->key.sk, &w, &v, 1, NULL));
}

static void grant(node *admin, const char *ns, const node *to, sl_dag_role role)
{
	sl_dag_write w;
	memset(&w, 0, sizeof(w));
	w.kind = SL_DAG_ROLE;
	memcpy(w.pk, to->key.pk, SL_ED25519_PK_LEN);
	w.role = role;
	assert_ok(sl_dag_write_entry(admin->s, ns, admin->key.sk, &w, NULL, 1, NULL));
}

/* b joins a's namespace ns: the same root, under the same name. */
static void join(node *a, node *b, const char *ns)
{
	sl_buf root = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	assert_ok(sl_dag_root_entry(a->s, ns, &root));
	assert_ok(sl_dag_create_from_root(b->s, ns, root.data, root.len));
	sl_buf_free(&root);
}

/* The requests of the last sync_with, by endpoint. */
static struct {
	unsigned tips, push, other;
} calls;

static int counted_call(void *ctx, const char *endpoint, const uint8_t *body, size_t len,
                        long *status, sl_buf *out)
{
	const sl_dag_transport *inner = ctx;
	if (strcmp(endpoint, "tips") == 0)
		calls.tips++;
	else if (strcmp(endpoint, "push") == 0)
		calls.push++;
	else
		calls.other++;
	return inner->call(inner->ctx, endpoint, body, len, status, out);
}

static int sync_with(node *client, node *server, const char *ns, sl_dag_sync_report *r)
{
	sl_dag_info info;
	sl_dag_http *h;
	sl_dag_transport inner, t;
	int rc;
	assert_ok(sl_dag_info_get(client->s, ns, &info));
	assert_ok(
	        sl_dag_http_new(&h, server->addr, server->key.pk, &info.ns_id, &client->key, NULL));
	inner = sl_dag_http_transport(h);
	t = (sl_dag_transport){counted_call, &inner};
	memset(&calls, 0, sizeof(calls));
	rc = sl_dag_sync(client->s, ns, &t, r);
	assert_int_equal(calls.tips + calls.push + calls.other, r->round_trips);
	sl_dag_http_free(h);
	return rc;
}

/* Same entries, tips and state. */
static void expect_equal(node *a, node *b, const char *ns)
{
	sl_dag_info ia, ib;
	sl_dag_items *va, *vb;
	sl_item_set sa, sb;
	uint64_t n;
	assert_ok(sl_dag_info_get(a->s, ns, &ia));
	assert_ok(sl_dag_info_get(b->s, ns, &ib));
	assert_int_equal(ia.entries, ib.entries);
	assert_int_equal(ia.keys, ib.keys);
	assert_int_equal(ia.n_tips, ib.n_tips);
	assert_memory_equal(ia.tips, ib.tips,
	                    (ia.n_tips < SL_DAG_MAX_PARENTS ? ia.n_tips : SL_DAG_MAX_PARENTS) *
	                            sizeof(sl_digest));
	assert_ok(sl_dag_items_new(&va));
	assert_ok(sl_dag_items_new(&vb));
	assert_ok(sl_dag_items_refresh(va, a->s, ns));
	assert_ok(sl_dag_items_refresh(vb, b->s, ns));
	sa = sl_dag_items_set(va);
	sb = sl_dag_items_set(vb);
	assert_ok(sa.ops->count(sa.ctx, &n));
	assert_int_equal(n, ia.entries);
	for (uint64_t i = 0; i < n; i++) {
		sl_item x, y;
		assert_ok(sa.ops->get(sa.ctx, i, &x));
		assert_ok(sb.ops->get(sb.ctx, i, &y));
		assert_int_equal(sl_item_cmp(&x, &y), 0);
	}
	sl_dag_items_free(va);
	sl_dag_items_free(vb);
	assert_ok(sl_dag_verify(a->s, ns, NULL));
	assert_ok(sl_dag_verify(b->s, ns, NULL));
}

/* ------------------------------------------------------------ bootstrap */

static void test_bootstrap(void **state)
{
	node a, b;
	sl_dag_sync_report r;
	(void)state;

	node_open(&a);
	node_open(&b);
	assert_ok(sl_dag_create(a.s, "docs", a.key.sk, NULL));
	grant(&a, "docs", &b, SL_DAG_READ);
	for (int i = 0; i < 400; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k/%03d", (int)tu_rng_below(&rng, 150));
		put(&a, "docs", key, 1 + (size_t)tu_rng_below(&rng, 2000));
	}
	node_serve(&a, 16 << 10); /* pages of about 16 KiB: many of them */
	join(&a, &b, "docs");
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	assert_true(r.bootstrapped);
	assert_int_equal(r.pulled, 401); /* the grant and the writes */
	assert_int_equal(r.pushed, 0);
	assert_true(r.round_trips > 10);
	expect_equal(&a, &b, "docs");

	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	assert_int_equal(r.round_trips, 1);
	assert_int_equal(r.pulled, 0);
	node_close(&a);
	node_close(&b);
}

/* ----------------------------------------------------------------- fork */

static void test_fork(void **state)
{
	node a, b;
	sl_dag_sync_report r;
	sl_dag_info info;
	(void)state;

	node_open(&a);
	node_open(&b);
	assert_ok(sl_dag_create(a.s, "docs", a.key.sk, NULL));
	grant(&a, "docs", &b, SL_DAG_WRITE);
	for (int i = 0; i < 2000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k/%04d", i);
		put(&a, "docs", key, 100);
	}
	node_serve(&a, 0);
	join(&a, &b, "docs");
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	/* Both write: 20 entries each, some on the same keys. */
	for (int i = 0; i < 20; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k/%04d", (int)tu_rng_below(&rng, 2000));
		put(&a, "docs", key, 100);
		snprintf(key, sizeof(key), "k/%04d", (int)tu_rng_below(&rng, 2000));
		put(&b, "docs", key, 100);
	}
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	assert_false(r.bootstrapped);
	assert_int_equal(r.pulled, 20);
	assert_int_equal(r.pushed, 20);
	/* The difference, not the namespace: 2000 entries of 100 bytes would
	 * be over 300 KB. */
	assert_true(r.bytes_sent + r.bytes_received < 60000);
	/* One tips request: the last push answer carried the tips after it. */
	assert_int_equal(calls.tips, 1);
	assert_int_equal(calls.push, 1);
	expect_equal(&a, &b, "docs");
	assert_ok(sl_dag_info_get(a.s, "docs", &info));
	assert_int_equal(info.n_tips, 2);
	/* The next write merges the two tips. */
	put(&b, "docs", "merge", 10);
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	assert_int_equal(r.pushed, 1);
	assert_int_equal(calls.tips, 1);
	assert_ok(sl_dag_info_get(a.s, "docs", &info));
	assert_int_equal(info.n_tips, 1);
	expect_equal(&a, &b, "docs");
	node_close(&a);
	node_close(&b);
}

/* ------------------------------------------------ more than one request */

/* n entries in one chain on a's tips, signed by a, each setting a key
 * to a 16-byte value, stored in frames of 10,000 (faster than one write
 * each). */
static void chain(node *a, const char *ns, size_t n)
{
	enum { FRAME = 10000 };
	sl_buf *enc = calloc(FRAME, sizeof(*enc));
	sl_bytes *entries = calloc(FRAME, sizeof(*entries)),
	         *values = calloc(FRAME, sizeof(*values));
	uint8_t(*data)[16] = calloc(FRAME, 16);
	sl_dag_info info;
	sl_digest prev;
	uint64_t height;
	size_t k = 0;

	assert_non_null(enc);
	assert_non_null(entries);
	assert_non_null(values);
	assert_non_null(data);
	assert_ok(sl_dag_info_get(a->s, ns, &info));
	assert_int_equal(info.n_tips, 1);
	prev = info.tips[0];
	height = info.max_height;
	for (size_t i = 0; i < FRAME; i++)
		enc[i] = (sl_buf)SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	for (size_t i = 0; i < n; i++) {
		char key[32];
		sl_dag_write w = {.kind = SL_DAG_SET, .key = key, .value_len = 16};
		sl_dag_entry e = {
		        .ns = info.ns_id, .height = ++height, .n_parents = 1, .n_writes = 1};
		w.key_len = (size_t)snprintf(key, sizeof(key), "chain/%zu", i);
		tu_rng_fill(&rng, data[k], 16);
		sl_sha256(&w.digest, data[k], 16);
		e.parents[0] = prev;
		memcpy(e.author, a->key.pk, SL_ED25519_PK_LEN);
		e.writes = &w;
		enc[k].len = 0;
		assert_ok(sl_dag_entry_sign(&e, a->key.sk, &enc[k]));
		entries[k] = (sl_bytes){enc[k].data, enc[k].len};
		values[k] = (sl_bytes){data[k], 16};
		prev = e.id;
		if (++k == FRAME || i + 1 == n) {
			sl_dag_insert_report rep;
			assert_ok(sl_dag_insert(a->s, ns, entries, k, values, k, &rep));
			assert_int_equal(rep.stored, k);
			k = 0;
		}
	}
	for (size_t i = 0; i < FRAME; i++)
		sl_buf_free(&enc[i]);
	free(enc);
	free(entries);
	free(values);
	free(data);
}

/* More new entries than one entries request or push frame takes
 * (SL_WIRE_MAX_IDS ids), in one chain, so that the requests in id order
 * split children from their parents: pulled, and pushed, parents first. */
static void test_many_differences(void **state)
{
	const size_t n = SL_WIRE_MAX_IDS + 4000;
	node a, b, c;
	sl_dag_sync_report r;
	(void)state;

	node_open(&a);
	node_open(&b);
	node_open(&c);
	assert_ok(sl_dag_create(a.s, "docs", a.key.sk, NULL));
	grant(&a, "docs", &b, SL_DAG_WRITE);
	grant(&a, "docs", &c, SL_DAG_WRITE);
	node_serve(&a, 0);
	join(&a, &b, "docs");
	join(&a, &c, "docs");
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_ok(sync_with(&c, &a, "docs", &r));
	/* b and c each write one entry of their own: neither is a prefix of
	 * a any more, so a's chain goes by reconciliation, not bootstrap. */
	put(&b, "docs", "b", 10);
	put(&c, "docs", "c", 10);
	chain(&a, "docs", n);

	/* b pulls the chain (and pushes its entry). */
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	assert_false(r.bootstrapped);
	assert_int_equal(r.pulled, n);
	assert_int_equal(r.pushed, 1);
	expect_equal(&a, &b, "docs");

	/* a pushes the chain and b's entry to c, and pulls c's entry. */
	node_serve(&c, 0);
	assert_ok(sync_with(&a, &c, "docs", &r));
	assert_true(r.equal);
	assert_int_equal(r.pushed, n + 1);
	assert_int_equal(r.pulled, 1);
	expect_equal(&a, &c, "docs");
	node_close(&a);
	node_close(&b);
	node_close(&c);
}

/* ------------------------------------------------------------- refusals */

/* A raw request with the given Authorization (NULL: none). */
static long raw(node *server, const char *method, const char *path, const char *auth,
                const void *body, size_t len)
{
	sl_http_client *c;
	sl_http_result res;
	char url[256], header[SL_REQUEST_AUTH_MAX + 32];
	const char *headers[] = {header, NULL};
	long status;
	snprintf(url, sizeof(url), "http://%s%s", server->addr, path);
	snprintf(header, sizeof(header), "Authorization: %s", auth ? auth : "");
	assert_ok(sl_http_client_new(&c, NULL));
	sl_http_result_init(&res);
	assert_ok(sl_http_client_fetch(c, method, url, auth ? headers : NULL, body, len, &res));
	status = res.status;
	sl_http_result_free(&res);
	sl_http_client_free(c);
	return status;
}

static void sign(char *out, const node *from, const node *to_key_of, const char *method,
                 const char *path, uint64_t time_s)
{
	sl_request_auth a;
	assert_ok(sl_request_auth_sign(&a, from->key.sk, method, path, NULL, 0, to_key_of->key.pk,
	                               time_s));
	assert_ok(sl_request_auth_format(&a, out, SL_REQUEST_AUTH_MAX + 1));
}

static void test_refusals(void **state)
{
	node a, b;
	sl_dag_sync_report r;
	sl_dag_request req, *list;
	sl_dag_info before, after;
	char path[128], auth[SL_REQUEST_AUTH_MAX + 1];
	uint64_t now = sl_clock_wall_ms() / 1000;
	size_t n;
	(void)state;

	node_open(&a);
	node_open(&b);
	assert_ok(sl_dag_create(a.s, "docs", a.key.sk, NULL));
	put(&a, "docs", "secret", 10);
	node_serve(&a, 0);
	join(&a, &b, "docs");
	assert_ok(sl_dag_info_get(b.s, "docs", &before));

	/* No role: refused, nothing taken. */
	assert_int_equal(sync_with(&b, &a, "docs", &r), SL_EAUTH);
	assert_int_equal(r.status, 403);
	assert_false(r.equal);
	assert_ok(sl_dag_info_get(b.s, "docs", &after));
	assert_int_equal(after.entries, before.entries);

	/* Pending: refused, saying so. */
	assert_ok(sl_dag_request_submit(a.s, "docs", b.key.pk, SL_DAG_READ, "", 1, &req));
	assert_int_equal(sync_with(&b, &a, "docs", &r), SL_EAUTH);
	assert_non_null(strstr(r.error, "pending"));
	/* Approved: the sync works. */
	assert_ok(sl_dag_request_list(a.s, &list, &n));
	assert_int_equal(n, 1);
	assert_ok(sl_dag_request_approve(a.s, list[0].id, a.key.sk));
	sl_free(list);
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	expect_equal(&a, &b, "docs");

	/* Malformed or replayed requests: 401, whoever signs. */
	snprintf(path, sizeof(path), "/api/v0/dag/%s/tips", sl_digest_to_hex(&before.ns_id).s);
	assert_int_equal(raw(&a, "GET", path, NULL, NULL, 0), 401);
	assert_int_equal(raw(&a, "GET", path, "Sluice-Ed25519 key=00", NULL, 0), 401);
	sign(auth, &b, &a, "GET", path, now - 3600); /* stale */
	assert_int_equal(raw(&a, "GET", path, auth, NULL, 0), 401);
	sign(auth, &b, &b, "GET", path, now); /* for another server */
	assert_int_equal(raw(&a, "GET", path, auth, NULL, 0), 401);
	sign(auth, &b, &a, "POST", path, now); /* for another method */
	assert_int_equal(raw(&a, "GET", path, auth, NULL, 0), 401);
	sign(auth, &b, &a, "GET", path, now);
	assert_int_equal(raw(&a, "GET", path, auth, NULL, 0), 200);
	assert_int_equal(raw(&a, "GET", path, auth, NULL, 0), 401); /* replayed */
	/* A namespace not held: 404, to a signed request only. */
	snprintf(path, sizeof(path), "/api/v0/dag/%064d/tips", 7);
	sign(auth, &b, &a, "GET", path, now);
	assert_int_equal(raw(&a, "GET", path, auth, NULL, 0), 404);
	/* Wrong method, unknown endpoint. */
	snprintf(path, sizeof(path), "/api/v0/dag/%s/push", sl_digest_to_hex(&before.ns_id).s);
	assert_int_equal(raw(&a, "GET", path, NULL, NULL, 0), 405);
	snprintf(path, sizeof(path), "/api/v0/dag/%s/nothing", sl_digest_to_hex(&before.ns_id).s);
	assert_int_equal(raw(&a, "GET", path, NULL, NULL, 0), 404);
	node_close(&a);
	node_close(&b);
}

/* --------------------------------------------------------------- outbox */

static void test_outbox(void **state)
{
	node a, b;
	sl_dag_sync_report r;
	sl_dag_info ia;
	sl_dag_http *h;
	sl_dag_transport t;
	uint64_t upto;
	(void)state;

	node_open(&a);
	node_open(&b);
	assert_ok(sl_dag_create(a.s, "docs", a.key.sk, NULL));
	grant(&a, "docs", &b, SL_DAG_WRITE);
	node_serve(&a, 4 << 10);
	join(&a, &b, "docs");
	assert_ok(sync_with(&b, &a, "docs", &r));
	assert_true(r.equal);
	assert_int_equal(r.upto, 2);
	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof(key), "b/%02d", i);
		put(&b, "docs", key, 500);
	}
	assert_ok(sl_dag_info_get(a.s, "docs", &ia));
	assert_ok(sl_dag_http_new(&h, a.addr, a.key.pk, &ia.ns_id, &b.key, NULL));
	t = sl_dag_http_transport(h);
	assert_ok(sl_dag_push_outbox(b.s, "docs", &t, r.upto, &upto, &r));
	assert_int_equal(upto, 52);
	assert_int_equal(r.pushed, 50);
	assert_int_equal(r.round_trips, 1); /* 25 KB: one frame */
	expect_equal(&a, &b, "docs");
	/* Nothing owed: nothing sent. */
	assert_ok(sl_dag_push_outbox(b.s, "docs", &t, upto, &upto, &r));
	assert_int_equal(r.round_trips, 0);
	sl_dag_http_free(h);
	node_close(&a);
	node_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bootstrap),        cmocka_unit_test(test_fork),
	        cmocka_unit_test(test_many_differences), cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_outbox),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("dag_sync_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
