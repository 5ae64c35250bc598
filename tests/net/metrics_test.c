/*
 * Tests for metrics: the exact Prometheus text (HELP/TYPE once per name,
 * label sets grouped under their name, counters as integers, gauges in
 * their shortest exact form, histograms as cumulative buckets with +Inf,
 * _sum and _count), one metric per name and labels, bounds and kinds
 * refused, counts and observations from several threads adding up,
 * out-of-memory during registration leaving the registry intact, and
 * /metrics served over HTTP with 404 and 405 around it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sluice/net.h"

static int reset_injection(void **state)
{
	(void)state;
	sl_alloc_fail_after(-1, 0);
	return 0;
}

static void test_render_exact(void **state)
{
	sl_metrics *m = NULL;
	sl_buf out = SL_BUF_INIT(1 << 20);
	sl_metric *ops_get, *ops_put, *up, *lag, *ratio, *neg, *big;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	ops_get = sl_metrics_counter(m, "sluice_requests_total", "endpoint=\"get\"",
	                             "Requests served.");
	up = sl_metrics_gauge(m, "sluice_up", NULL, "1 when serving.\nSecond line \\ here.");
	ops_put = sl_metrics_counter(m, "sluice_requests_total", "endpoint=\"put\"", "ignored");
	lag = sl_metrics_gauge(m, "sluice_lag_seconds", "peer=\"a\"", "Sync lag.");
	ratio = sl_metrics_gauge(m, "sluice_lag_seconds", "peer=\"b\"", NULL);
	neg = sl_metrics_gauge(m, "sluice_delta", "", "Signed.");
	big = sl_metrics_gauge(m, "sluice_big", NULL, "Huge.");
	assert_non_null(ops_get);
	assert_non_null(ops_put);
	assert_non_null(up);
	assert_non_null(lag);
	assert_non_null(ratio);
	assert_non_null(neg);
	assert_non_null(big);

	sl_metric_add(ops_get, 41);
	sl_metric_add(ops_get, 1);
	sl_metric_add(ops_put, UINT64_C(18446744073709551615));
	sl_metric_set(up, 1);
	sl_metric_set(lag, 0.1);
	sl_metric_set(ratio, 1.0 / 3.0);
	sl_metric_set(neg, -2.5);
	sl_metric_set(big, 1e20);

	assert_int_equal(sl_metrics_render(m, &out), SL_OK);
	assert_string_equal((char *)out.data,
	                    "# HELP sluice_requests_total Requests served.\n"
	                    "# TYPE sluice_requests_total counter\n"
	                    "sluice_requests_total{endpoint=\"get\"} 42\n"
	                    "sluice_requests_total{endpoint=\"put\"} 18446744073709551615\n"
	                    "# HELP sluice_up 1 when serving.\\nSecond line \\\\ here.\n"
	                    "# TYPE sluice_up gauge\n"
	                    "sluice_up 1\n"
	                    "# HELP sluice_lag_seconds Sync lag.\n"
	                    "# TYPE sluice_lag_seconds gauge\n"
	                    "sluice_lag_seconds{peer=\"a\"} 0.1\n"
	                    "sluice_lag_seconds{peer=\"b\"} 0.3333333333333333\n"
	                    "# HELP sluice_delta Signed.\n"
	                    "# TYPE sluice_delta gauge\n"
	                    "sluice_delta -2.5\n"
	                    "# HELP sluice_big Huge.\n"
	                    "# TYPE sluice_big gauge\n"
	                    "sluice_big 1e+20\n");

	/* Rendering appends; special values use the format's spellings. */
	sl_buf_reset(&out);
	sl_metric_set(neg, NAN);
	sl_metric_set(big, -INFINITY);
	sl_metric_set(up, 123456789.0);
	assert_int_equal(sl_buf_append_str(&out, "prefix\n"), SL_OK);
	assert_int_equal(sl_metrics_render(m, &out), SL_OK);
	assert_true(strncmp((char *)out.data, "prefix\n# HELP", 13) == 0);
	assert_non_null(strstr((char *)out.data, "\nsluice_delta NaN\n"));
	assert_non_null(strstr((char *)out.data, "\nsluice_big -Inf\n"));
	assert_non_null(strstr((char *)out.data, "\nsluice_up 123456789\n"));

	/* Past the output cap: an error and the buffer as it was. */
	sl_buf_free(&out);
	sl_buf_init(&out, 100);
	assert_int_equal(sl_buf_append_str(&out, "keep"), SL_OK);
	assert_int_equal(sl_metrics_render(m, &out), SL_ETOOLARGE);
	assert_string_equal((char *)out.data, "keep");
	assert_int_equal(out.len, 4);

	sl_buf_free(&out);
	sl_metrics_free(m);
}

static void test_same_name_and_labels_same_metric(void **state)
{
	sl_metrics *m = NULL;
	sl_metric *a, *b, *c, *d;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	a = sl_metrics_counter(m, "x_total", "k=\"1\"", "X.");
	b = sl_metrics_counter(m, "x_total", "k=\"1\"", "X.");
	c = sl_metrics_counter(m, "x_total", "k=\"2\"", "X.");
	d = sl_metrics_counter(m, "x_total", NULL, "X.");
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_ptr_not_equal(a, d);
	/* NULL and "" both mean no labels. */
	assert_ptr_equal(d, sl_metrics_counter(m, "x_total", "", "X."));
	sl_metric_add(a, 3);
	sl_metric_add(b, 4);
	assert_true(sl_metric_value(a) == 7.0);
	assert_true(sl_metric_value(c) == 0.0);

	/* NULL metrics are no-ops, so unregistered ones cost nothing. */
	sl_metric_add(NULL, 1);
	sl_metric_set(NULL, 1.0);
	assert_true(sl_metric_value(NULL) == 0.0);
	assert_null(sl_metrics_counter(m, NULL, NULL, "no name"));
	assert_null(sl_metrics_gauge(NULL, "g", NULL, "no registry"));
	sl_metrics_free(m);
	sl_metrics_free(NULL);
}

typedef struct adder_arg {
	sl_metrics *m;
	sl_metric *gauge;
} adder_arg;

#define ADDS_PER_THREAD 100000

static void *adder(void *p)
{
	adder_arg *a = p;
	/* Each thread registers for itself: all get the same metric. */
	sl_metric *c = sl_metrics_counter(a->m, "adds_total", "t=\"all\"", "Adds.");
	for (int i = 0; i < ADDS_PER_THREAD; i++) {
		sl_metric_add(c, 1);
		sl_metric_add(a->gauge, 1);
	}
	return NULL;
}

static void test_concurrent_adds(void **state)
{
	sl_metrics *m = NULL;
	pthread_t threads[4];
	adder_arg arg;
	sl_metric *c;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	arg.m = m;
	arg.gauge = sl_metrics_gauge(m, "in_flight", NULL, "A gauge added to.");
	assert_non_null(arg.gauge);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, adder, &arg), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	c = sl_metrics_counter(m, "adds_total", "t=\"all\"", "Adds.");
	assert_true(sl_metric_value(c) == 4.0 * ADDS_PER_THREAD);
	assert_true(sl_metric_value(arg.gauge) == 4.0 * ADDS_PER_THREAD);
	sl_metrics_free(m);
}

static void test_histogram_render_exact(void **state)
{
	static const double bounds[] = {0.01, 0.5, 1, 60};
	sl_metrics *m = NULL;
	sl_buf out = SL_BUF_INIT(1 << 20);
	sl_metric *plain, *put, *get, *empty, *up;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	up = sl_metrics_gauge(m, "sluice_up", NULL, "Up.");
	plain = sl_metrics_histogram(m, "batch_seconds", NULL, "Batch time.", bounds, 4);
	put = sl_metrics_histogram(m, "req_seconds", "op=\"put\"", "Request time.", bounds, 2);
	/* The family's bounds and help are the first registration's. */
	get = sl_metrics_histogram(m, "req_seconds", "op=\"get\"", "ignored", bounds, 4);
	empty = sl_metrics_histogram(m, "only_inf", NULL, "No bounds.", NULL, 0);
	assert_non_null(up);
	assert_non_null(plain);
	assert_non_null(put);
	assert_non_null(get);
	assert_non_null(empty);
	sl_metric_set(up, 1);

	/* On a bound counts in that bucket (le is inclusive); past the last
	 * only in +Inf. */
	sl_metric_observe(plain, 0.01);
	sl_metric_observe(plain, 0.25);
	sl_metric_observe(plain, 0.5);
	sl_metric_observe(plain, 1.5);
	sl_metric_observe(plain, 120);
	sl_metric_observe(plain, -1);
	sl_metric_observe(plain, NAN); /* ignored */
	sl_metric_observe(put, 2);
	sl_metric_observe(empty, 3.25);
	sl_metric_observe(empty, 1);
	/* add and set do not touch a histogram; observe not a gauge. */
	sl_metric_add(plain, 7);
	sl_metric_set(plain, 7);
	sl_metric_observe(up, 5);
	sl_metric_observe(NULL, 1);
	assert_true(sl_metric_value(plain) == 6.0);
	assert_true(sl_metric_value(get) == 0.0);
	assert_true(sl_metric_value(up) == 1.0);

	assert_int_equal(sl_metrics_render(m, &out), SL_OK);
	assert_string_equal((char *)out.data, "# HELP sluice_up Up.\n"
	                                      "# TYPE sluice_up gauge\n"
	                                      "sluice_up 1\n"
	                                      "# HELP batch_seconds Batch time.\n"
	                                      "# TYPE batch_seconds histogram\n"
	                                      "batch_seconds_bucket{le=\"0.01\"} 2\n"
	                                      "batch_seconds_bucket{le=\"0.5\"} 4\n"
	                                      "batch_seconds_bucket{le=\"1\"} 4\n"
	                                      "batch_seconds_bucket{le=\"60\"} 5\n"
	                                      "batch_seconds_bucket{le=\"+Inf\"} 6\n"
	                                      "batch_seconds_sum 121.26\n"
	                                      "batch_seconds_count 6\n"
	                                      "# HELP req_seconds Request time.\n"
	                                      "# TYPE req_seconds histogram\n"
	                                      "req_seconds_bucket{op=\"put\",le=\"0.01\"} 0\n"
	                                      "req_seconds_bucket{op=\"put\",le=\"0.5\"} 0\n"
	                                      "req_seconds_bucket{op=\"put\",le=\"+Inf\"} 1\n"
	                                      "req_seconds_sum{op=\"put\"} 2\n"
	                                      "req_seconds_count{op=\"put\"} 1\n"
	                                      "req_seconds_bucket{op=\"get\",le=\"0.01\"} 0\n"
	                                      "req_seconds_bucket{op=\"get\",le=\"0.5\"} 0\n"
	                                      "req_seconds_bucket{op=\"get\",le=\"+Inf\"} 0\n"
	                                      "req_seconds_sum{op=\"get\"} 0\n"
	                                      "req_seconds_count{op=\"get\"} 0\n"
	                                      "# HELP only_inf No bounds.\n"
	                                      "# TYPE only_inf histogram\n"
	                                      "only_inf_bucket{le=\"+Inf\"} 2\n"
	                                      "only_inf_sum 4.25\n"
	                                      "only_inf_count 2\n");

	/* Past the output cap in the middle of a histogram: nothing added. */
	sl_buf_free(&out);
	sl_buf_init(&out, 120);
	assert_int_equal(sl_metrics_render(m, &out), SL_ETOOLARGE);
	assert_int_equal(out.len, 0);
	sl_buf_free(&out);
	sl_metrics_free(m);
}

static void test_histogram_refused(void **state)
{
	static const double good[] = {1, 2};
	static const double flat[] = {1, 1};
	static const double down[] = {2, 1};
	const double inf[] = {1, INFINITY};
	const double nan_bound[] = {NAN};
	double many[SL_METRICS_MAX_BOUNDS + 1];
	sl_metrics *m = NULL;
	sl_metric *h;

	(void)state;
	for (size_t i = 0; i < SL_METRICS_MAX_BOUNDS + 1; i++)
		many[i] = (double)i;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	assert_null(sl_metrics_histogram(m, "h", NULL, "H.", flat, 2));
	assert_int_equal(sl_error_last()->code, SL_EINVAL);
	assert_null(sl_metrics_histogram(m, "h", NULL, "H.", down, 2));
	assert_null(sl_metrics_histogram(m, "h", NULL, "H.", inf, 2));
	assert_null(sl_metrics_histogram(m, "h", NULL, "H.", nan_bound, 1));
	assert_null(sl_metrics_histogram(m, "h", NULL, "H.", NULL, 2));
	assert_int_equal(sl_error_last()->code, SL_EINVAL);
	assert_null(sl_metrics_histogram(m, "h", NULL, "H.", many, SL_METRICS_MAX_BOUNDS + 1));
	assert_int_equal(sl_error_last()->code, SL_ETOOLARGE);
	assert_null(sl_metrics_histogram(m, NULL, NULL, "H.", good, 2));
	assert_non_null(sl_metrics_histogram(m, "h", NULL, "H.", many, SL_METRICS_MAX_BOUNDS));

	/* A name is a histogram or not, whatever asks for it later. */
	h = sl_metrics_histogram(m, "h2", NULL, "H.", good, 2);
	assert_non_null(h);
	assert_ptr_equal(sl_metrics_histogram(m, "h2", NULL, "H.", good, 2), h);
	assert_null(sl_metrics_counter(m, "h2", NULL, "C."));
	assert_int_equal(sl_error_last()->code, SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "h2 is a histogram"));
	assert_null(sl_metrics_gauge(m, "h2", "x=\"1\"", "G."));
	assert_non_null(sl_metrics_counter(m, "c_total", NULL, "C."));
	assert_null(sl_metrics_histogram(m, "c_total", NULL, "H.", good, 2));
	assert_non_null(strstr(sl_error_last()->message, "c_total is not a histogram"));
	sl_metrics_free(m);
}

typedef struct observer_arg {
	sl_metric *h;
	int thread;
} observer_arg;

#define OBSERVES_PER_THREAD 50000

static void *observer(void *p)
{
	observer_arg *a = p;
	/* Whole numbers, so the sum is exact whatever the order of adds. */
	for (int i = 0; i < OBSERVES_PER_THREAD; i++)
		sl_metric_observe(a->h, (double)((i + a->thread) % 4));
	return NULL;
}

static void test_histogram_concurrent_observes(void **state)
{
	static const double bounds[] = {0, 1, 2};
	sl_metrics *m = NULL;
	sl_buf out = SL_BUF_INIT(1 << 16);
	observer_arg args[4];
	pthread_t threads[4];
	sl_metric *h;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	h = sl_metrics_histogram(m, "obs", NULL, "Observed.", bounds, 3);
	assert_non_null(h);
	for (int i = 0; i < 4; i++) {
		args[i].h = h;
		args[i].thread = i;
		assert_int_equal(pthread_create(&threads[i], NULL, observer, &args[i]), 0);
	}
	/* Scrapes while they observe: +Inf and _count always agree. */
	for (int i = 0; i < 50; i++) {
		char *inf, *count;
		sl_buf_reset(&out);
		assert_int_equal(sl_metrics_render(m, &out), SL_OK);
		inf = strstr((char *)out.data, "obs_bucket{le=\"+Inf\"} ");
		count = strstr((char *)out.data, "obs_count ");
		assert_non_null(inf);
		assert_non_null(count);
		assert_int_equal(strtoull(inf + strlen("obs_bucket{le=\"+Inf\"} "), NULL, 10),
		                 strtoull(count + strlen("obs_count "), NULL, 10));
	}
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	/* Each thread observes 0, 1, 2 and 3 equally often. */
	sl_buf_reset(&out);
	assert_int_equal(sl_metrics_render(m, &out), SL_OK);
	assert_string_equal((char *)out.data, "# HELP obs Observed.\n"
	                                      "# TYPE obs histogram\n"
	                                      "obs_bucket{le=\"0\"} 50000\n"
	                                      "obs_bucket{le=\"1\"} 100000\n"
	                                      "obs_bucket{le=\"2\"} 150000\n"
	                                      "obs_bucket{le=\"+Inf\"} 200000\n"
	                                      "obs_sum 300000\n"
	                                      "obs_count 200000\n");
	sl_buf_free(&out);
	sl_metrics_free(m);
}

static void test_enomem_during_registration(void **state)
{
	static const double hist_bounds[] = {1, 2};
	sl_metrics *m = NULL;
	sl_buf before = SL_BUF_INIT(1 << 16);
	sl_buf after = SL_BUF_INIT(1 << 16);
	sl_metric *base;
	int n_failed = 0;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	base = sl_metrics_counter(m, "base_total", NULL, "Base.");
	sl_metric_add(base, 5);
	assert_int_equal(sl_metrics_render(m, &before), SL_OK);
	/* A new name takes four allocations, a new label set two. */
	for (long fail_at = 0; fail_at < 4; fail_at++) {
		sl_alloc_fail_after(fail_at, 0);
		sl_metric *g = sl_metrics_gauge(m, "new_gauge", "a=\"1\"", "New.");
		sl_alloc_fail_after(-1, 0);
		assert_null(g);
		assert_int_equal(sl_error_last()->code, SL_ENOMEM);
		sl_buf_reset(&after);
		assert_int_equal(sl_metrics_render(m, &after), SL_OK);
		assert_string_equal((char *)after.data, (char *)before.data);
		n_failed++;
	}
	for (long fail_at = 0; fail_at < 2; fail_at++) {
		sl_alloc_fail_after(fail_at, 0);
		assert_null(sl_metrics_counter(m, "base_total", "b=\"2\"", "Base."));
		sl_alloc_fail_after(-1, 0);
		sl_buf_reset(&after);
		assert_int_equal(sl_metrics_render(m, &after), SL_OK);
		assert_string_equal((char *)after.data, (char *)before.data);
		n_failed++;
	}
	/* A new histogram name takes seven allocations (its bounds and its
	 * buckets too), a new label set of one three: each fails cleanly,
	 * and with one more the registration goes through. */
	for (long fail_at = 0; fail_at < 7; fail_at++) {
		sl_alloc_fail_after(fail_at, 0);
		assert_null(sl_metrics_histogram(m, "new_hist", NULL, "New.", hist_bounds, 2));
		sl_alloc_fail_after(-1, 0);
		assert_int_equal(sl_error_last()->code, SL_ENOMEM);
		sl_buf_reset(&after);
		assert_int_equal(sl_metrics_render(m, &after), SL_OK);
		assert_string_equal((char *)after.data, (char *)before.data);
		n_failed++;
	}
	assert_int_equal(n_failed, 13);
	sl_alloc_fail_after(7, 0);
	assert_non_null(sl_metrics_histogram(m, "new_hist", NULL, "New.", hist_bounds, 2));
	sl_alloc_fail_after(-1, 0);
	sl_buf_reset(&before);
	assert_int_equal(sl_metrics_render(m, &before), SL_OK);
	for (long fail_at = 0; fail_at < 3; fail_at++) {
		sl_alloc_fail_after(fail_at, 0);
		assert_null(sl_metrics_histogram(m, "new_hist", "l=\"2\"", "New.", hist_bounds, 2));
		sl_alloc_fail_after(-1, 0);
		sl_buf_reset(&after);
		assert_int_equal(sl_metrics_render(m, &after), SL_OK);
		assert_string_equal((char *)after.data, (char *)before.data);
	}
	sl_alloc_fail_after(3, 0);
	assert_non_null(sl_metrics_histogram(m, "new_hist", "l=\"2\"", "New.", hist_bounds, 2));
	sl_alloc_fail_after(-1, 0);
	assert_non_null(sl_metrics_gauge(m, "new_gauge", "a=\"1\"", "New."));
	assert_non_null(sl_metrics_counter(m, "base_total", "b=\"2\"", "Base."));
	assert_ptr_equal(sl_metrics_counter(m, "base_total", NULL, "Base."), base);
	sl_alloc_fail_after(0, 0);
	assert_int_equal(sl_metrics_new(&m), SL_ENOMEM);
	sl_alloc_fail_after(-1, 0);
	sl_buf_free(&before);
	sl_buf_free(&after);
	sl_metrics_free(m);
}

/* One HTTP/1.0 exchange over a fresh socket; the server closes after it.
 * Returns the whole response (headers and body), caller frees. */
static char *http_exchange(uint16_t port, const char *request)
{
	struct sockaddr_in sa;
	struct timeval tv = {10, 0};
	size_t cap = 1 << 16, len = 0;
	char *resp = malloc(cap + 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	assert_non_null(resp);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL),
	                 (ssize_t)strlen(request));
	while ((n = recv(fd, resp + len, cap - len, 0)) > 0)
		len += (size_t)n;
	assert_int_equal(n, 0);
	resp[len] = '\0';
	close(fd);
	return resp;
}

static void test_serve_metrics(void **state)
{
	sl_metrics *m = NULL;
	sl_http_server *s = NULL;
	sl_buf want = SL_BUF_INIT(1 << 16);
	char *resp, *body;

	(void)state;
	assert_int_equal(sl_metrics_new(&m), SL_OK);
	sl_metric_add(sl_metrics_counter(m, "served_total", "path=\"/x\"", "Served."), 9);
	sl_metric_set(sl_metrics_gauge(m, "temperature", NULL, "Degrees."), 21.5);
	assert_int_equal(sl_metrics_serve(&s, m, "127.0.0.1", 0), SL_OK);
	assert_true(sl_http_server_port(s) != 0);
	assert_int_equal(sl_metrics_render(m, &want), SL_OK);

	resp = http_exchange(sl_http_server_port(s), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_true(strncmp(resp, "HTTP/1.", 7) == 0);
	assert_true(strncmp(resp + 8, " 200 ", 5) == 0);
	assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4\r\n"));
	body = strstr(resp, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, (char *)want.data);
	free(resp);

	resp = http_exchange(sl_http_server_port(s), "GET /other HTTP/1.0\r\n\r\n");
	assert_true(strncmp(resp + 8, " 404 ", 5) == 0);
	assert_non_null(strstr(resp, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(resp, "\r\n\r\n{\"error\":\"not_found\",\"message\":\""));
	free(resp);

	resp = http_exchange(sl_http_server_port(s),
	                     "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	assert_true(strncmp(resp + 8, " 405 ", 5) == 0);
	assert_non_null(strstr(resp, "\r\n\r\n{\"error\":\"method_not_allowed\",\"message\":\""));
	free(resp);

	sl_http_server_stop(s);
	s = NULL;
	assert_int_equal(sl_metrics_serve(&s, m, "not-an-address", 0), SL_EINVAL);
	assert_null(s);
	assert_non_null(strstr(sl_error_last()->message, "metrics server: "));
	sl_buf_free(&want);
	sl_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_render_exact),
	        cmocka_unit_test(test_same_name_and_labels_same_metric),
	        cmocka_unit_test(test_concurrent_adds),
	        cmocka_unit_test(test_histogram_render_exact),
	        cmocka_unit_test(test_histogram_refused),
	        cmocka_unit_test(test_histogram_concurrent_observes),
	        cmocka_unit_test_teardown(test_enomem_during_registration, reset_injection),
	        cmocka_unit_test(test_serve_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
