/*
 * Tests for the HTTP server's long polls (src/net/http_wait.c): a handler
 * that answers "not yet" until a version it watches moves past the one
 * the request names. A wake answers a waiting request (and one that only
 * checks again after a wake with no change waits again); a wake while the
 * handler runs is not lost; a wait that runs out is answered with
 * may_wait 0; many waiting requests of one client leave its other
 * requests their turn; stopping with requests waiting answers them and
 * returns. No test asserts a time: each wait that should end early is
 * long (60 s) and would fail the test's checks, or its client's shorter
 * timeout, if it did not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"
#include "testutil.h"

#define LONG_WAIT_MS 60000

/* ------------------------------------------------------------- handler */

typedef struct poll_ctx {
	atomic_int version;
	atomic_int calls;       /* of /poll */
	atomic_int final_calls; /* of /poll with may_wait 0 */
	atomic_size_t last_waiting;
	atomic_int on_waiting_calls;
	/* /poll?block=1: the first call, once it has read the version, waits
	 * here until the test releases it. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in_handler, released;
} poll_ctx;

static void poll_ctx_init(poll_ctx *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
}

static void poll_ctx_free(poll_ctx *p)
{
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

/* /poll?after=N&wait=MS: "not yet" while the version is N, else (or when
 * it may not wait) "version=V may_wait=M". /info: "ok". */
static void handler(void *ctx, const sl_http_request *req, sl_http_response *resp)
{
	poll_ctx *p = ctx;
	const char *after = sl_http_request_query(req, "after");
	const char *wait = sl_http_request_query(req, "wait");
	const char *block = sl_http_request_query(req, "block");
	int version;

	if (strcmp(req->path, "/info") == 0) {
		sl_buf_append_str(&resp->body, "ok");
		return;
	}
	atomic_fetch_add(&p->calls, 1);
	if (!req->may_wait)
		atomic_fetch_add(&p->final_calls, 1);
	version = atomic_load(&p->version);
	if (block) {
		pthread_mutex_lock(&p->mu);
		if (!p->released) {
			p->in_handler = 1;
			pthread_cond_broadcast(&p->cv);
			while (!p->released)
				pthread_cond_wait(&p->cv, &p->mu);
		}
		pthread_mutex_unlock(&p->mu);
	}
	if (req->may_wait && after && wait && atoi(after) == version) {
		resp->wait_ms = (uint32_t)atoi(wait);
		sl_buf_append_str(&resp->body, "dropped"); /* never sent */
		return;
	}
	sl_buf_printf(&resp->body, "version=%d may_wait=%d", version, req->may_wait);
}

static void on_waiting(void *ctx, size_t n)
{
	poll_ctx *p = ctx;
	atomic_store(&p->last_waiting, n);
	atomic_fetch_add(&p->on_waiting_calls, 1);
}

static sl_http_server *start(poll_ctx *p, unsigned threads, sl_metrics *m)
{
	sl_http_server_options o;
	sl_http_server *s = NULL;

	sl_http_server_options_init(&o);
	o.threads = threads;
	o.metrics = m;
	o.on_waiting = on_waiting;
	assert_ok(sl_http_server_start(&s, &o, handler, p));
	return s;
}

static sl_http_client *client_new(unsigned max_in_flight, unsigned timeout_ms)
{
	sl_http_client_options o;
	sl_http_client *c = NULL;

	sl_http_client_options_init(&o);
	o.max_in_flight = max_in_flight;
	o.request_timeout_ms = timeout_ms;
	assert_ok(sl_http_client_new(&c, &o));
	return c;
}

static void submit(sl_http_client *c, const sl_http_server *s, const char *target, uint64_t tag)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", sl_http_server_port(s), target);
	assert_ok(sl_http_client_submit(c, "GET", url, NULL, NULL, 0, tag));
}

/* The next finished request, within the client's own timeout. */
static void next_result(sl_http_client *c, sl_http_result *r)
{
	int got;
	sl_http_result_init(r);
	while ((got = sl_http_client_poll(c, 100, r)) == 0)
		;
	assert_int_equal(got, 1);
}

/* r's body as a string. */
static const char *body_of(const sl_http_result *r, char *out, size_t cap)
{
	size_t n = r->body.len < cap - 1 ? r->body.len : cap - 1;
	memcpy(out, r->body.data ? (const char *)r->body.data : "", n);
	out[n] = '\0';
	return out;
}

static void expect_answer(sl_http_client *c, const char *want)
{
	sl_http_result r;
	char body[128];

	next_result(c, &r);
	assert_int_equal(r.rc, SL_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(body_of(&r, body, sizeof(body)), want);
	sl_http_result_free(&r);
}

/* Drive c until n requests wait, none of its requests finishing; fails
 * after 10 s (a request that never waits). */
static void wait_for_waiting(const sl_http_server *s, sl_http_client *c, size_t n)
{
	sl_http_result r;
	for (int i = 0; i < 2000 && sl_http_server_waiting(s) != n; i++)
		assert_int_equal(sl_http_client_poll(c, 5, &r), 0);
	assert_int_equal(sl_http_server_waiting(s), n);
}

/* --------------------------------------------------------------- tests */

static void test_wake_answers_a_waiting_request(void **state)
{
	poll_ctx p;
	sl_http_server *s;
	sl_http_client *c = client_new(1, 2 * LONG_WAIT_MS);
	sl_http_result r;
	char target[64];

	(void)state;
	poll_ctx_init(&p);
	s = start(&p, 2, NULL);
	snprintf(target, sizeof(target), "/poll?after=0&wait=%d", LONG_WAIT_MS);
	submit(c, s, target, 1);
	wait_for_waiting(s, c, 1);
	assert_int_equal(atomic_load(&p.calls), 1);
	assert_int_equal(atomic_load(&p.last_waiting), 1);

	/* Woken with nothing changed: the handler checks and waits again. */
	sl_http_server_wake(s);
	wait_for_waiting(s, c, 1);
	assert_int_equal(atomic_load(&p.calls), 2);
	assert_int_equal(sl_http_client_poll(c, 0, &r), 0);

	/* A change, then a wake: answered at once, the wait not over. */
	atomic_store(&p.version, 1);
	sl_http_server_wake(s);
	expect_answer(c, "version=1 may_wait=1");
	assert_int_equal(atomic_load(&p.calls), 3);
	assert_int_equal(atomic_load(&p.final_calls), 0);
	assert_int_equal(sl_http_server_waiting(s), 0);
	assert_int_equal(atomic_load(&p.last_waiting), 0);

	/* A request past the version is answered without waiting. */
	snprintf(target, sizeof(target), "/poll?after=0&wait=%d", LONG_WAIT_MS);
	submit(c, s, target, 2);
	expect_answer(c, "version=1 may_wait=1");
	assert_int_equal(atomic_load(&p.calls), 4);
	sl_http_client_free(c);
	sl_http_server_stop(s);
	poll_ctx_free(&p);
}

/* The handler reads the version, the version moves and the server is
 * woken, and only then does the handler answer "not yet": it is called
 * again at once instead of sleeping through the change. */
static void test_wake_while_handler_runs_is_not_lost(void **state)
{
	poll_ctx p;
	sl_http_server *s;
	sl_http_client *c = client_new(1, 2 * LONG_WAIT_MS);
	sl_http_result r;
	char target[64];
	int in_handler = 0;

	(void)state;
	poll_ctx_init(&p);
	s = start(&p, 2, NULL);
	snprintf(target, sizeof(target), "/poll?after=0&wait=%d&block=1", LONG_WAIT_MS);
	submit(c, s, target, 1);
	for (int i = 0; i < 2000 && !in_handler; i++) {
		assert_int_equal(sl_http_client_poll(c, 5, &r), 0);
		pthread_mutex_lock(&p.mu);
		in_handler = p.in_handler;
		pthread_mutex_unlock(&p.mu);
	}
	assert_true(in_handler);

	atomic_store(&p.version, 1);
	sl_http_server_wake(s); /* nothing waits yet */
	pthread_mutex_lock(&p.mu);
	p.released = 1;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);

	expect_answer(c, "version=1 may_wait=1");
	assert_int_equal(atomic_load(&p.calls), 2);
	sl_http_client_free(c);
	sl_http_server_stop(s);
	poll_ctx_free(&p);
}

/* Nobody wakes it: once its wait is over the handler is called with
 * may_wait 0 and must answer, which it does with what it has. */
static void test_wait_over_answers_with_may_wait_0(void **state)
{
	poll_ctx p;
	sl_http_server *s;
	sl_http_client *c = client_new(1, LONG_WAIT_MS);

	(void)state;
	poll_ctx_init(&p);
	s = start(&p, 2, NULL);
	submit(c, s, "/poll?after=0&wait=200", 1);
	expect_answer(c, "version=0 may_wait=0");
	/* One "not yet", one answer: nothing in between. */
	assert_int_equal(atomic_load(&p.calls), 2);
	assert_int_equal(atomic_load(&p.final_calls), 1);
	assert_int_equal(sl_http_server_waiting(s), 0);
	sl_http_client_free(c);
	sl_http_server_stop(s);
	poll_ctx_free(&p);
}

/* With two threads a client has one request in service at a time. Eight
 * of its long polls wait; its next request is served while they do (a
 * waiting request holds no slot), and the eight are answered in turn
 * after a change. */
static void test_waiting_requests_leave_the_client_its_turn(void **state)
{
	enum { N = 8 };
	poll_ctx p;
	sl_metrics *m = NULL;
	sl_http_server *s;
	sl_http_client *polls = client_new(N, 2 * LONG_WAIT_MS);
	/* Far shorter than the polls' wait: a request queued behind them
	 * would time out. */
	sl_http_client *other = client_new(1, 10000);
	sl_http_result r;
	sl_buf text = SL_BUF_INIT(1 << 20);
	char target[64], body[64];

	(void)state;
	poll_ctx_init(&p);
	assert_ok(sl_metrics_new(&m));
	s = start(&p, 2, m);
	snprintf(target, sizeof(target), "/poll?after=0&wait=%d", LONG_WAIT_MS);
	for (int i = 0; i < N; i++)
		submit(polls, s, target, (uint64_t)i);
	wait_for_waiting(s, polls, N);
	assert_int_equal(atomic_load(&p.last_waiting), N);
	assert_ok(sl_metrics_render(m, &text));
	assert_non_null(strstr((const char *)text.data, "\nsluice_http_waiting_requests 8\n"));

	submit(other, s, "/info", 100);
	next_result(other, &r);
	assert_int_equal(r.rc, SL_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(body_of(&r, body, sizeof(body)), "ok");
	sl_http_result_free(&r);
	assert_int_equal(sl_http_server_waiting(s), N);

	atomic_store(&p.version, 1);
	sl_http_server_wake(s);
	for (int i = 0; i < N; i++)
		expect_answer(polls, "version=1 may_wait=1");
	assert_int_equal(atomic_load(&p.calls), 2 * N);
	assert_int_equal(sl_http_server_waiting(s), 0);
	sl_buf_free(&text);
	sl_buf_init(&text, 1 << 20);
	assert_ok(sl_metrics_render(m, &text));
	assert_non_null(strstr((const char *)text.data, "\nsluice_http_waiting_requests 0\n"));
	sl_buf_free(&text);
	sl_http_client_free(other);
	sl_http_client_free(polls);
	sl_http_server_stop(s);
	sl_metrics_free(m);
	poll_ctx_free(&p);
}

/* Stopping with requests waiting: each is handled once more with
 * may_wait 0 before the server goes (libmicrohttpd aborts a stop with a
 * connection suspended), and stop returns. */
static void test_stop_with_waiting_requests(void **state)
{
	enum { N = 4 };
	poll_ctx p;
	sl_http_server *s;
	sl_http_client *c = client_new(N, 2 * LONG_WAIT_MS);
	char target[64];
	sl_http_result r;

	(void)state;
	poll_ctx_init(&p);
	s = start(&p, 2, NULL);
	snprintf(target, sizeof(target), "/poll?after=0&wait=%d", LONG_WAIT_MS);
	for (int i = 0; i < N; i++)
		submit(c, s, target, (uint64_t)i);
	wait_for_waiting(s, c, N);

	sl_http_server_stop(s);
	assert_int_equal(atomic_load(&p.final_calls), N);
	assert_int_equal(atomic_load(&p.calls), 2 * N);
	/* Each request ends, answered or cut by the stop; none hangs. */
	for (int i = 0; i < N; i++) {
		next_result(c, &r);
		if (r.rc == SL_OK)
			assert_int_equal(r.status, 200);
		sl_http_result_free(&r);
	}
	sl_http_client_free(c);
	poll_ctx_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_wake_answers_a_waiting_request),
	        cmocka_unit_test(test_wake_while_handler_runs_is_not_lost),
	        cmocka_unit_test(test_wait_over_answers_with_may_wait_0),
	        cmocka_unit_test(test_waiting_requests_leave_the_client_its_turn),
	        cmocka_unit_test(test_stop_with_waiting_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
