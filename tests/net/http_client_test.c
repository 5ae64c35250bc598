/*
 * Tests for the HTTP client against a tiny HTTP/1.1 server that lives in
 * this file: one accept thread on 127.0.0.1 (kernel-chosen port) and a
 * thread per connection, with keep-alive and Content-Length framing. The
 * path picks a canned behaviour:
 *
 *   /ok         200 "hello"           /status500  500 "boom"
 *   /echo       200, the request body /method     200, the request method
 *   /big        200 with a 64 KiB body and its Content-Length
 *   /bigstream  200 with a 64 KiB body, no length, then close
 *   /stall      reads and never answers
 *   /close      closes the connection without answering
 *   /slow?x     waits 30 ms, then 200 with the request target as body
 *
 * The server counts accepted connections and the most requests it was
 * answering at once, so tests can check keep-alive and max_in_flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/net.h"

#define MAX_CONNS      256
#define REQ_BUF        (2 * 1024 * 1024)
#define BIG_BODY       65536
#define SERVER_TICK_MS 20

typedef struct test_server test_server;

typedef struct conn {
	test_server *server;
	int fd;
	pthread_t thread;
} conn;

struct test_server {
	int listen_fd;
	uint16_t port;
	pthread_t accept_thread;
	conn conns[MAX_CONNS];
	int n_conns; /* written by the accept thread, read after it is joined */
	atomic_int stop;
	atomic_int accepts;
	atomic_int active;     /* requests being answered right now */
	atomic_int max_active; /* most at once since start */
};

/* ---------------------------------------------------------------- server */

static int send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read more into buf; 0 on EOF, error, a full buffer or server stop. */
static int read_some(test_server *s, int fd, char *buf, size_t *len, size_t cap)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	if (*len >= cap)
		return 0;
	while (!atomic_load(&s->stop)) {
		int ready = poll(&pfd, 1, SERVER_TICK_MS);
		if (ready < 0 && errno != EINTR)
			return 0;
		if (ready <= 0)
			continue;
		ssize_t n = recv(fd, buf + *len, cap - *len, 0);
		if (n <= 0)
			return 0;
		*len += (size_t)n;
		return 1;
	}
	return 0;
}

static int respond(int fd, int status, const char *method, const void *body, size_t body_len,
                   int with_length, int closing)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", status,
	             status == 200 ? "OK" : "Internal Server Error");
	if (with_length)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n",
		              body_len);
	if (closing)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	if (send_all(fd, head, (size_t)n) != 0)
		return -1;
	if (strcmp(method, "HEAD") == 0 || body_len == 0)
		return 0;
	return send_all(fd, body, body_len);
}

static void note_active(test_server *s)
{
	int now = atomic_fetch_add(&s->active, 1) + 1;
	int seen = atomic_load(&s->max_active);
	while (now > seen && !atomic_compare_exchange_weak(&s->max_active, &seen, now))
		;
}

/* Answer one parsed request; returns 1 to keep the connection open. */
static int serve_one(test_server *s, int fd, const char *method, const char *target,
                     const char *body, size_t body_len)
{
	static char big[BIG_BODY];
	int keep = 1;

	note_active(s);
	if (strcmp(target, "/ok") == 0) {
		keep = respond(fd, 200, method, "hello", 5, 1, 0) == 0;
	} else if (strcmp(target, "/status500") == 0) {
		keep = respond(fd, 500, method, "boom", 4, 1, 0) == 0;
	} else if (strcmp(target, "/echo") == 0) {
		keep = respond(fd, 200, method, body, body_len, 1, 0) == 0;
	} else if (strcmp(target, "/method") == 0) {
		keep = respond(fd, 200, method, method, strlen(method), 1, 0) == 0;
	} else if (strcmp(target, "/big") == 0) {
		memset(big, 'x', sizeof(big));
		keep = respond(fd, 200, method, big, sizeof(big), 1, 0) == 0;
	} else if (strcmp(target, "/bigstream") == 0) {
		memset(big, 'y', sizeof(big));
		respond(fd, 200, method, big, sizeof(big), 0, 1);
		keep = 0;
	} else if (strcmp(target, "/stall") == 0) {
		char sink[1024];
		size_t sink_len = 0;
		while (read_some(s, fd, sink, &sink_len, sizeof(sink)))
			sink_len = 0;
		keep = 0;
	} else if (strcmp(target, "/close") == 0) {
		keep = 0;
	} else if (strncmp(target, "/slow", 5) == 0) {
		usleep(30 * 1000);
		keep = respond(fd, 200, method, target, strlen(target), 1, 0) == 0;
	} else {
		keep = respond(fd, 500, method, "no such path", 12, 1, 0) == 0;
	}
	atomic_fetch_sub(&s->active, 1);
	return keep;
}

static size_t content_length(const char *head)
{
	const char *p = head;
	while ((p = strchr(p, '\n'))) {
		p++;
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			return (size_t)strtoul(p + 15, NULL, 10);
	}
	return 0;
}

static void *conn_main(void *arg)
{
	conn *cn = arg;
	test_server *s = cn->server;
	char *buf = malloc(REQ_BUF + 1);
	size_t len = 0;

	while (buf) {
		char method[16], target[256];
		char *end;
		size_t head_len, total;

		buf[len] = '\0';
		while (!(end = strstr(buf, "\r\n\r\n"))) {
			if (!read_some(s, cn->fd, buf, &len, REQ_BUF))
				goto out;
			buf[len] = '\0';
		}
		head_len = (size_t)(end - buf) + 4;
		if (sscanf(buf, "%15s %255s", method, target) != 2)
			goto out;
		total = head_len + content_length(buf);
		if (total > REQ_BUF)
			goto out;
		while (len < total) {
			if (!read_some(s, cn->fd, buf, &len, REQ_BUF))
				goto out;
		}
		if (!serve_one(s, cn->fd, method, target, buf + head_len, total - head_len))
			goto out;
		memmove(buf, buf + total, len - total);
		len -= total;
	}
out:
	free(buf);
	close(cn->fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	test_server *s = arg;
	struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};

	while (!atomic_load(&s->stop)) {
		if (poll(&pfd, 1, SERVER_TICK_MS) <= 0)
			continue;
		int fd = accept(s->listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&s->accepts, 1);
		if (s->n_conns == MAX_CONNS) {
			close(fd);
			continue;
		}
		conn *cn = &s->conns[s->n_conns];
		cn->server = s;
		cn->fd = fd;
		if (pthread_create(&cn->thread, NULL, conn_main, cn) != 0) {
			close(fd);
			continue;
		}
		s->n_conns++;
	}
	return NULL;
}

static test_server *server_start(void)
{
	test_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t addr_len = sizeof(addr);
	int one = 1;

	assert_non_null(s);
	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(s->listen_fd, 64), 0);
	assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&addr, &addr_len), 0);
	s->port = ntohs(addr.sin_port);
	assert_int_equal(pthread_create(&s->accept_thread, NULL, accept_main, s), 0);
	return s;
}

static void server_stop(test_server *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->accept_thread, NULL);
	for (int i = 0; i < s->n_conns; i++)
		pthread_join(s->conns[i].thread, NULL);
	close(s->listen_fd);
	free(s);
}

static int setup(void **state)
{
	sl_alloc_fail_after(-1, 0);
	*state = server_start();
	return 0;
}

static int teardown(void **state)
{
	sl_alloc_fail_after(-1, 0);
	server_stop(*state);
	return 0;
}

/* ----------------------------------------------------------------- helpers */

static const char *url_for(const test_server *s, const char *path)
{
	static char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)s->port, path);
	return url;
}

static sl_http_client *client_with(unsigned max_in_flight, unsigned request_timeout_ms,
                                   size_t max_response)
{
	sl_http_client_options o;
	sl_http_client *c = NULL;

	sl_http_client_options_init(&o);
	if (max_in_flight)
		o.max_in_flight = max_in_flight;
	if (request_timeout_ms)
		o.request_timeout_ms = request_timeout_ms;
	if (max_response)
		o.max_response = max_response;
	assert_int_equal(sl_http_client_new(&c, &o), SL_OK);
	assert_non_null(c);
	return c;
}

static uint64_t elapsed_ms(uint64_t start_ns)
{
	return (sl_clock_mono_ns() - start_ns) / 1000000u;
}

/* Poll until one result arrives; fails the test after 5 s. */
static void poll_one(sl_http_client *c, sl_http_result *out)
{
	uint64_t start = sl_clock_mono_ns();
	int got;

	while ((got = sl_http_client_poll(c, 200, out)) == 0)
		assert_true(elapsed_ms(start) < 5000);
	assert_int_equal(got, 1);
}

/* ------------------------------------------------------------------- tests */

static void test_options_defaults(void **state)
{
	sl_http_client_options o;
	sl_http_result r;
	(void)state;

	sl_http_client_options_init(&o);
	assert_int_equal(o.max_in_flight, 4);
	assert_int_equal(o.connect_timeout_ms, 5000);
	assert_int_equal(o.request_timeout_ms, 30000);
	assert_int_equal(o.max_response, (size_t)256 * 1024 * 1024);
	sl_http_result_init(&r);
	assert_int_equal(r.rc, SL_OK);
	assert_null(r.body.data);
	sl_http_result_free(&r);
	sl_http_result_free(&r);
	sl_http_result_free(NULL);
	sl_http_client_free(NULL);
}

static void test_get_ok(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 0, 0);
	sl_http_result r;

	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/ok"), NULL, NULL, 0, &r),
	                 SL_OK);
	assert_int_equal(r.rc, SL_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 5);
	assert_string_equal((char *)r.body.data, "hello");
	assert_string_equal(r.error, "");
	assert_int_equal(sl_http_client_pending(c), 0);
	sl_http_result_free(&r);
	sl_http_client_free(c);
}

static void test_post_echo_and_methods(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 0, 0);
	const char *headers[] = {"Content-Type: application/octet-stream", "X-Test: 1", NULL};
	const uint8_t payload[] = {'a', 0, 'b', 0xff, '\n', 'c'};
	size_t large_len = 1100 * 1024;
	uint8_t *large = malloc(large_len);
	sl_http_result r;

	assert_int_equal(sl_http_client_fetch(c, "POST", url_for(s, "/echo"), headers, payload,
	                                      sizeof(payload), &r),
	                 SL_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, sizeof(payload));
	assert_memory_equal(r.body.data, payload, sizeof(payload));
	sl_http_result_free(&r);

	/* Past curl's threshold for "Expect: 100-continue", which the client
	 * turns off so the server need not send 100. */
	assert_non_null(large);
	for (size_t i = 0; i < large_len; i++)
		large[i] = (uint8_t)(i * 7);
	uint64_t start = sl_clock_mono_ns();
	assert_int_equal(
	        sl_http_client_fetch(c, "POST", url_for(s, "/echo"), NULL, large, large_len, &r),
	        SL_OK);
	assert_true(elapsed_ms(start) < 900);
	assert_int_equal(r.body.len, large_len);
	assert_memory_equal(r.body.data, large, large_len);
	sl_http_result_free(&r);
	free(large);

	/* An empty POST still sends a body of length 0. */
	assert_int_equal(sl_http_client_fetch(c, "POST", url_for(s, "/echo"), NULL, NULL, 0, &r),
	                 SL_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);
	sl_http_result_free(&r);

	assert_int_equal(
	        sl_http_client_fetch(c, "PUT", url_for(s, "/echo"), NULL, "put body", 8, &r),
	        SL_OK);
	assert_string_equal((char *)r.body.data, "put body");
	sl_http_result_free(&r);

	assert_int_equal(
	        sl_http_client_fetch(c, "DELETE", url_for(s, "/method"), NULL, NULL, 0, &r), SL_OK);
	assert_string_equal((char *)r.body.data, "DELETE");
	sl_http_result_free(&r);

	assert_int_equal(sl_http_client_fetch(c, "HEAD", url_for(s, "/ok"), NULL, NULL, 0, &r),
	                 SL_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);
	sl_http_result_free(&r);
	sl_http_client_free(c);
}

static void test_status_500_is_a_response(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 0, 0);
	sl_http_result r;

	assert_int_equal(
	        sl_http_client_fetch(c, "GET", url_for(s, "/status500"), NULL, NULL, 0, &r), SL_OK);
	assert_int_equal(r.rc, SL_OK);
	assert_int_equal(r.status, 500);
	assert_string_equal((char *)r.body.data, "boom");
	sl_http_result_free(&r);
	sl_http_client_free(c);
}

static void test_cap_exceeded(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 0, 1024);
	sl_http_result r;

	/* Announced by Content-Length. */
	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/big"), NULL, NULL, 0, &r),
	                 SL_ETOOLARGE);
	assert_int_equal(r.rc, SL_ETOOLARGE);
	assert_non_null(strstr(r.error, "exceeds the cap of 1024 bytes"));
	assert_non_null(strstr(r.error, "/big"));
	assert_null(r.body.data);
	assert_int_equal(sl_error_last()->code, SL_ETOOLARGE);
	sl_http_result_free(&r);

	/* Only found out while reading. */
	assert_int_equal(
	        sl_http_client_fetch(c, "GET", url_for(s, "/bigstream"), NULL, NULL, 0, &r),
	        SL_ETOOLARGE);
	assert_non_null(strstr(r.error, "exceeds the cap of 1024 bytes"));
	assert_int_equal(r.body.len, 0);
	sl_http_result_free(&r);

	/* The client is still fine. */
	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/ok"), NULL, NULL, 0, &r),
	                 SL_OK);
	assert_string_equal((char *)r.body.data, "hello");
	sl_http_result_free(&r);
	sl_http_client_free(c);
}

static void test_stall_times_out(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 300, 0);
	sl_http_result r;
	uint64_t start = sl_clock_mono_ns();

	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/stall"), NULL, NULL, 0, &r),
	                 SL_ETIMEOUT);
	uint64_t took = elapsed_ms(start);
	assert_true(took >= 250);
	assert_true(took < 1500);
	assert_int_equal(r.rc, SL_ETIMEOUT);
	assert_non_null(strstr(r.error, "no complete response from"));
	assert_non_null(strstr(r.error, "within 300 ms"));
	assert_int_equal(sl_error_last()->code, SL_ETIMEOUT);
	sl_http_result_free(&r);
	sl_http_client_free(c);
}

/* A listener whose accept queue is full: the kernel drops further SYNs,
 * so a connect hangs until the client's connect timeout. */
static void test_connect_timeout(void **state)
{
	sl_http_client_options o;
	sl_http_client *c = NULL;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t addr_len = sizeof(addr);
	int listen_fd, fillers[4];
	char url[128];
	sl_http_result r;
	(void)state;

	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(listen_fd >= 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(listen_fd, 0), 0);
	assert_int_equal(getsockname(listen_fd, (struct sockaddr *)&addr, &addr_len), 0);
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(fillers[i] >= 0);
		connect(fillers[i], (struct sockaddr *)&addr, sizeof(addr));
	}
	usleep(50 * 1000);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ok", (unsigned)ntohs(addr.sin_port));

	sl_http_client_options_init(&o);
	o.connect_timeout_ms = 200;
	o.request_timeout_ms = 5000;
	assert_int_equal(sl_http_client_new(&c, &o), SL_OK);
	uint64_t start = sl_clock_mono_ns();
	assert_int_equal(sl_http_client_fetch(c, "GET", url, NULL, NULL, 0, &r), SL_ETIMEOUT);
	assert_true(elapsed_ms(start) < 2000);
	assert_non_null(strstr(r.error, "no connection to"));
	assert_non_null(strstr(r.error, "within 200 ms"));
	sl_http_result_free(&r);
	sl_http_client_free(c);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(listen_fd);
}

static void test_connection_errors(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 2000, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t addr_len = sizeof(addr);
	char url[128];
	sl_http_result r;
	int fd;

	/* A port that was free a moment ago and has no listener. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &addr_len), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ok", (unsigned)ntohs(addr.sin_port));

	assert_int_equal(sl_http_client_fetch(c, "GET", url, NULL, NULL, 0, &r), SL_EIO);
	assert_int_equal(r.rc, SL_EIO);
	assert_non_null(strstr(r.error, url));
	assert_int_equal(sl_error_last()->code, SL_EIO);
	assert_non_null(strstr(sl_error_last()->cause, "curl rc=7"));
	sl_http_result_free(&r);

	/* Connection closed before any response. */
	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/close"), NULL, NULL, 0, &r),
	                 SL_EIO);
	assert_int_equal(r.rc, SL_EIO);
	sl_http_result_free(&r);

	/* Only http and https. */
	assert_int_equal(sl_http_client_fetch(c, "GET", "file:///etc/passwd", NULL, NULL, 0, &r),
	                 SL_EIO);
	sl_http_result_free(&r);
	sl_http_client_free(c);
}

static void test_many_in_flight(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(4, 0, 0);
	int seen[20] = {0};
	sl_http_result r;

	for (uint64_t tag = 0; tag < 20; tag++) {
		char path[32];
		snprintf(path, sizeof(path), "/slow?%" PRIu64, tag);
		assert_int_equal(
		        sl_http_client_submit(c, "GET", url_for(s, path), NULL, NULL, 0, tag),
		        SL_OK);
	}
	assert_int_equal(sl_http_client_pending(c), 20);
	for (int i = 0; i < 20; i++) {
		char expect[32];
		poll_one(c, &r);
		assert_int_equal(r.rc, SL_OK);
		assert_true(r.tag < 20);
		assert_int_equal(seen[r.tag], 0);
		seen[r.tag] = 1;
		snprintf(expect, sizeof(expect), "/slow?%" PRIu64, r.tag);
		assert_string_equal((char *)r.body.data, expect);
		assert_int_equal(sl_http_client_pending(c), (size_t)(19 - i));
		sl_http_result_free(&r);
	}
	assert_int_equal(sl_http_client_poll(c, 50, &r), 0);
	assert_true(atomic_load(&s->max_active) <= 4);
	assert_true(atomic_load(&s->max_active) >= 2);
	assert_true(atomic_load(&s->accepts) <= 4);
	sl_http_client_free(c);
}

static void test_fetch_while_pending(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(1, 0, 0);
	sl_http_result r;

	for (uint64_t tag = 100; tag < 103; tag++)
		assert_int_equal(
		        sl_http_client_submit(c, "GET", url_for(s, "/slow?x"), NULL, NULL, 0, tag),
		        SL_OK);
	/* Queued behind the three, so all of them finish while fetch waits. */
	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/ok"), NULL, NULL, 0, &r),
	                 SL_OK);
	assert_string_equal((char *)r.body.data, "hello");
	sl_http_result_free(&r);
	assert_int_equal(sl_http_client_pending(c), 3);
	for (uint64_t tag = 100; tag < 103; tag++) {
		/* Already finished: poll hands them out in order without waiting. */
		assert_int_equal(sl_http_client_poll(c, 0, &r), 1);
		assert_int_equal(r.tag, tag);
		assert_int_equal(r.rc, SL_OK);
		assert_string_equal((char *)r.body.data, "/slow?x");
		sl_http_result_free(&r);
	}
	assert_int_equal(sl_http_client_pending(c), 0);

	/* And with requests still running when fetch returns. */
	sl_http_client_free(c);
	c = client_with(4, 0, 0);
	for (uint64_t tag = 200; tag < 203; tag++)
		assert_int_equal(
		        sl_http_client_submit(c, "GET", url_for(s, "/slow?y"), NULL, NULL, 0, tag),
		        SL_OK);
	assert_int_equal(sl_http_client_fetch(c, "GET", url_for(s, "/ok"), NULL, NULL, 0, &r),
	                 SL_OK);
	assert_string_equal((char *)r.body.data, "hello");
	sl_http_result_free(&r);
	assert_int_equal(sl_http_client_pending(c), 3);
	int seen[3] = {0};
	for (int i = 0; i < 3; i++) {
		poll_one(c, &r);
		assert_true(r.tag >= 200 && r.tag < 203);
		assert_int_equal(seen[r.tag - 200], 0);
		seen[r.tag - 200] = 1;
		assert_string_equal((char *)r.body.data, "/slow?y");
		sl_http_result_free(&r);
	}
	assert_int_equal(sl_http_client_pending(c), 0);
	sl_http_client_free(c);
}

static void test_connections_are_reused(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 0, 0);
	sl_http_result r;

	for (int i = 0; i < 20; i++) {
		assert_int_equal(
		        sl_http_client_fetch(c, "GET", url_for(s, "/ok"), NULL, NULL, 0, &r),
		        SL_OK);
		sl_http_result_free(&r);
	}
	assert_int_equal(atomic_load(&s->accepts), 1);
	sl_http_client_free(c);
}

static void test_invalid_arguments(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(0, 0, 0);
	const char *bad_header[] = {"X-A: 1\r\nX-B: 2", NULL};
	const char *no_colon[] = {"X-A", NULL};
	sl_http_result r;
	uint64_t start;

	assert_int_equal(sl_http_client_new(NULL, NULL), SL_EINVAL);
	assert_int_equal(sl_http_client_submit(c, "GE T", url_for(s, "/ok"), NULL, NULL, 0, 1),
	                 SL_EINVAL);
	assert_int_equal(sl_http_client_submit(c, "", url_for(s, "/ok"), NULL, NULL, 0, 1),
	                 SL_EINVAL);
	assert_int_equal(sl_http_client_submit(c, "GET", NULL, NULL, NULL, 0, 1), SL_EINVAL);
	assert_int_equal(sl_http_client_submit(c, "GET", url_for(s, "/ok"), bad_header, NULL, 0, 1),
	                 SL_EINVAL);
	assert_int_equal(sl_http_client_submit(c, "GET", url_for(s, "/ok"), no_colon, NULL, 0, 1),
	                 SL_EINVAL);
	assert_int_equal(sl_http_client_submit(c, "POST", url_for(s, "/ok"), NULL, NULL, 3, 1),
	                 SL_EINVAL);
	assert_int_equal(sl_http_client_fetch(c, "GE T", url_for(s, "/ok"), NULL, NULL, 0, &r),
	                 SL_EINVAL);
	assert_int_equal(r.rc, SL_EINVAL);
	assert_non_null(strstr(r.error, "invalid method"));
	sl_http_result_free(&r);
	assert_int_equal(sl_http_client_pending(c), 0);

	/* Nothing pending: poll does not sit out its timeout. */
	start = sl_clock_mono_ns();
	assert_int_equal(sl_http_client_poll(c, 2000, &r), 0);
	assert_true(elapsed_ms(start) < 500);
	sl_http_client_free(c);
}

static void test_free_aborts_in_flight(void **state)
{
	test_server *s = *state;
	sl_http_client *c = client_with(2, 0, 0);
	sl_http_result r;

	for (uint64_t tag = 0; tag < 5; tag++)
		assert_int_equal(
		        sl_http_client_submit(c, "POST", url_for(s, "/stall"), NULL, "x", 1, tag),
		        SL_OK);
	assert_int_equal(sl_http_client_submit(c, "GET", url_for(s, "/ok"), NULL, NULL, 0, 9),
	                 SL_OK);
	assert_int_equal(sl_http_client_poll(c, 100, &r), 0);
	assert_int_equal(sl_http_client_pending(c), 6);
	sl_http_client_free(c); /* and nothing may leak */
}

static void test_out_of_memory(void **state)
{
	test_server *s = *state;
	int done = 0;

	/* Fail each of our allocations in turn; every step must fail cleanly
	 * or succeed, and the last must succeed. */
	for (long after = 0; after < 100 && !done; after++) {
		sl_http_client *c = NULL;
		sl_http_result r;
		int rc;

		sl_alloc_fail_after(after, 0);
		rc = sl_http_client_new(&c, NULL);
		if (rc == SL_OK) {
			rc = sl_http_client_fetch(c, "POST", url_for(s, "/echo"), NULL, "abc", 3,
			                          &r);
			assert_int_equal(r.rc, rc);
			if (rc == SL_OK) {
				assert_string_equal((char *)r.body.data, "abc");
				done = 1;
			} else {
				assert_int_equal(rc, SL_ENOMEM);
			}
			sl_http_result_free(&r);
			assert_int_equal(sl_http_client_pending(c), 0);
		} else {
			assert_int_equal(rc, SL_ENOMEM);
			assert_null(c);
		}
		sl_alloc_fail_after(-1, 0);
		sl_http_client_free(c);
	}
	assert_true(done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_options_defaults),
	        cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_post_echo_and_methods, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_status_500_is_a_response, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cap_exceeded, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stall_times_out, setup, teardown),
	        cmocka_unit_test(test_connect_timeout),
	        cmocka_unit_test_setup_teardown(test_connection_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fetch_while_pending, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_connections_are_reused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_free_aborts_in_flight, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
