/*
 * The long poll on a namespace's target (GET .../target?after=&wait_ms=)
 * against a sync server in this process: a commit through another handle
 * of the store (as a mirror writes) answers a poll waiting on the size
 * before it, a poll on another size is answered at once, and stopping the
 * server with a poll waiting answers it and returns. The client's timeout
 * (10 s) is far below the polls' wait (20 s), so a poll that a commit
 * failed to answer fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sluice/sync.h"
#include "testutil.h"

typedef struct fixture {
	char *dir;
	sl_store *store; /* the test's own handle: the "mirror" writing */
	sl_node_key key;
	sl_metrics *metrics;
	sl_metric *waiting; /* the HTTP server's gauge */
	sl_sync_server *srv;
	sl_http_client *client;
	char base[96];
} fixture;

static void put1(sl_store *s, const char *key, const char *value)
{
	sl_batch *b = NULL;
	assert_ok(sl_batch_new(&b, s, "docs"));
	assert_ok(sl_batch_put(b, key, strlen(key), value, strlen(value)));
	assert_ok(sl_batch_commit(b, NULL));
	sl_batch_free(b);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	sl_store_options so;
	sl_sync_server_options o;
	sl_http_client_options co;

	assert_non_null(f);
	assert_non_null(f->dir = tu_tempdir());
	sl_store_options_init(&so);
	so.flags = SL_STORE_CREATE;
	so.durable = 0;
	assert_ok(sl_store_open(&f->store, f->dir, &so));
	assert_ok(sl_store_ns_create(f->store, "docs", SL_NS_IMMUTABLE));
	put1(f->store, "a/b", "hello");
	assert_ok(sl_node_key_load(&f->key, f->dir, 1));
	assert_ok(sl_metrics_new(&f->metrics));
	sl_sync_server_options_init(&o);
	o.store_dir = f->dir;
	o.key = &f->key;
	o.metrics = f->metrics;
	assert_ok(sl_sync_server_start(&f->srv, &o));
	/* The same name and labels: the gauge the server registered. */
	assert_non_null(f->waiting = sl_metrics_gauge(f->metrics, "sluice_http_waiting_requests",
	                                              NULL, "requests waiting"));
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u/api/v0/ns/docs/target",
	         sl_sync_server_port(f->srv));
	sl_http_client_options_init(&co);
	co.request_timeout_ms = 10000;
	assert_ok(sl_http_client_new(&f->client, &co));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sl_http_client_free(f->client);
	sl_sync_server_stop(f->srv);
	sl_metrics_free(f->metrics);
	sl_store_free(f->store);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void submit(fixture *f, const char *query)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", f->base, query);
	assert_ok(sl_http_client_submit(f->client, "GET", url, NULL, NULL, 0, 0));
}

/* The next answer, with *status; rc as sl_http_result's. */
static int next_result(fixture *f, long *status, sl_signed_target *t)
{
	sl_http_result r;
	int got, rc;

	sl_http_result_init(&r);
	while ((got = sl_http_client_poll(f->client, 100, &r)) == 0)
		;
	assert_int_equal(got, 1);
	rc = r.rc;
	*status = r.status;
	if (rc == SL_OK && r.status == 200)
		assert_ok(sl_target_from_json(t, (const char *)r.body.data, r.body.len));
	sl_http_result_free(&r);
	return rc;
}

static uint64_t answered_size(fixture *f)
{
	sl_signed_target t;
	long status = 0;
	assert_ok(next_result(f, &status, &t));
	assert_int_equal(status, 200);
	assert_ok(sl_target_verify(&t, f->key.pk));
	return t.target.size;
}

/* Drive the client until one request waits in the server (10 s at most). */
static void wait_for_poll(fixture *f)
{
	sl_http_result r;
	for (int i = 0; i < 2000 && sl_metric_value(f->waiting) != 1; i++)
		assert_int_equal(sl_http_client_poll(f->client, 5, &r), 0);
	assert_true(sl_metric_value(f->waiting) == 1);
}

static void test_commit_by_another_handle_answers_a_poll(void **state)
{
	fixture *f = *state;

	submit(f, "");
	assert_int_equal(answered_size(f), 2);
	submit(f, "?after=2&wait_ms=20000");
	wait_for_poll(f);
	put1(f->store, "a/c", "from the mirror's own handle");
	assert_int_equal(answered_size(f), 4);
	assert_true(sl_metric_value(f->waiting) == 0);

	/* Another size than the current one: at once. */
	submit(f, "?after=2&wait_ms=20000");
	assert_int_equal(answered_size(f), 4);
	/* Again, waiting on the new size. */
	submit(f, "?after=4&wait_ms=20000");
	wait_for_poll(f);
	put1(f->store, "a/d", "once more");
	assert_int_equal(answered_size(f), 6);
}

static void test_stop_with_a_poll_waiting(void **state)
{
	fixture *f = *state;
	sl_signed_target t;
	long status = 0;

	submit(f, "?after=2&wait_ms=20000");
	wait_for_poll(f);
	sl_sync_server_stop(f->srv);
	f->srv = NULL;
	/* Answered as the server stopped (the same target), or cut. */
	if (next_result(f, &status, &t) == SL_OK) {
		assert_int_equal(status, 200);
		assert_int_equal(t.target.size, 2);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_commit_by_another_handle_answers_a_poll, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_stop_with_a_poll_waiting, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
