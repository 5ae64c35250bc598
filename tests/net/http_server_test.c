/*
 * Tests for the HTTP server, driven by a plain blocking TCP client written
 * here so that every byte on the wire is under the test's control: query
 * parameters and headers, a body echoed back across several reads, two
 * requests on one kept-alive connection, the 413 path (announced and
 * chunked) that never reaches the handler, the body cap exactly, 400 for a
 * malformed request line, a stalled client cut off after timeout_s, port
 * 0, bad addresses, bind failures, concurrent clients and the JSON error
 * body's escaping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sluice/net.h"
#include "testutil.h"

/* ------------------------------------------------------------- handler */

typedef struct handler_ctx {
	atomic_int calls;
} handler_ctx;

/* /echo returns the body, /info describes the request, anything else is
 * left at the defaults (status 0, no content type, empty body). */
static void test_handler(void *ctx, const sl_http_request *req, sl_http_response *resp)
{
	handler_ctx *h = ctx;
	const char *name = sl_http_request_query(req, "name");
	const char *flag = sl_http_request_query(req, "flag");
	const char *header = sl_http_request_header(req, "x-test");

	atomic_fetch_add(&h->calls, 1);
	if (strcmp(req->path, "/echo") == 0) {
		resp->content_type = "application/octet-stream";
		if (sl_buf_append(&resp->body, req->body, req->body_len) != SL_OK)
			sl_http_response_error(resp, 500, "internal", "%s",
			                       sl_error_last()->message);
		return;
	}
	if (strcmp(req->path, "/info") == 0) {
		resp->status = 201;
		resp->content_type = "text/plain";
		sl_buf_printf(&resp->body, "method=%s path=%s name=%s flag=%s missing=%s header=%s",
		              req->method, req->path, name ? name : "(null)",
		              flag ? flag : "(null)",
		              sl_http_request_query(req, "missing") ? "yes" : "(null)",
		              header ? header : "(null)");
		return;
	}
}

static sl_http_server *start_server(handler_ctx *h, size_t max_request, unsigned timeout_s)
{
	sl_http_server_options o;
	sl_http_server *s = NULL;

	sl_http_server_options_init(&o);
	o.threads = 2;
	o.max_request = max_request;
	o.timeout_s = timeout_s;
	assert_int_equal(sl_http_server_start(&s, &o, test_handler, h), SL_OK);
	assert_non_null(s);
	assert_true(sl_http_server_port(s) != 0);
	return s;
}

/* -------------------------------------------------------------- client */

typedef struct client {
	int fd;
	char buf[256 * 1024];
	size_t len; /* bytes read but not yet consumed */
} client;

typedef struct reply {
	int status;
	char headers[4096];
	char *body;
	size_t body_len;
} reply;

static client *client_connect(uint16_t port)
{
	client *c = calloc(1, sizeof(*c));
	struct sockaddr_in sa;
	struct timeval tv = {10, 0};

	assert_non_null(c);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return c;
}

static void client_close(client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

static void send_all(client *c, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void send_str(client *c, const char *s)
{
	send_all(c, s, strlen(s));
}

/* Read more bytes; returns what recv returned. */
static ssize_t fill(client *c)
{
	ssize_t n;
	if (c->len == sizeof(c->buf))
		return -1;
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

static void consume(client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Header value from a reply's header block, or NULL. */
static const char *reply_header(const reply *r, const char *name, char *out, size_t cap)
{
	const char *line = strstr(r->headers, "\r\n");
	size_t name_len = strlen(name);

	while (line && line[2]) {
		line += 2;
		if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
			const char *v = line + name_len + 1;
			const char *end = strstr(v, "\r\n");
			size_t n;
			while (*v == ' ')
				v++;
			n = end ? (size_t)(end - v) : strlen(v);
			if (n >= cap)
				n = cap - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return out;
		}
		line = strstr(line, "\r\n");
	}
	return NULL;
}

/* Read one response (the server always sends Content-Length). */
static void read_reply(client *c, reply *r)
{
	char *end;
	char value[64];
	size_t head_len;

	memset(r, 0, sizeof(*r));
	for (;;) {
		c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = '\0';
		end = strstr(c->buf, "\r\n\r\n");
		if (end)
			break;
		assert_true(fill(c) > 0);
	}
	head_len = (size_t)(end - c->buf) + 4;
	assert_true(head_len < sizeof(r->headers));
	memcpy(r->headers, c->buf, head_len);
	r->headers[head_len] = '\0';
	assert_int_equal(sscanf(r->headers, "HTTP/1.1 %d", &r->status), 1);
	consume(c, head_len);
	assert_non_null(reply_header(r, "Content-Length", value, sizeof(value)));
	r->body_len = strtoull(value, NULL, 10);
	while (c->len < r->body_len)
		assert_true(fill(c) > 0);
	r->body = malloc(r->body_len + 1);
	assert_non_null(r->body);
	memcpy(r->body, c->buf, r->body_len);
	r->body[r->body_len] = '\0';
	consume(c, r->body_len);
}

static void reply_free(reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* Wait for the server to close the connection (EOF or reset). */
static int wait_closed(client *c)
{
	for (;;) {
		ssize_t n = fill(c);
		if (n == 0)
			return 1;
		if (n < 0)
			return errno == ECONNRESET;
		c->len = 0;
	}
}

/* --------------------------------------------------------------- tests */

static void test_get_query_and_headers(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	reply r;
	char value[64];

	(void)state;
	send_str(c, "GET /info?name=hello%20w%C3%B6rld%26more&flag HTTP/1.1\r\n"
	            "Host: localhost\r\nX-Test: abc def\r\n\r\n");
	read_reply(c, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(reply_header(&r, "Content-Type", value, sizeof(value)), "text/plain");
	assert_string_equal(r.body, "method=GET path=/info name=hello w\xc3\xb6rld&more flag= "
	                            "missing=(null) header=abc def");
	assert_int_equal(atomic_load(&h.calls), 1);
	reply_free(&r);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_post_body_echoed(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1 << 20, 5);
	client *c = client_connect(sl_http_server_port(s));
	tu_rng rng = tu_rng_seeded("test_post_body_echoed");
	size_t body_len = 200 * 1000; /* many reads on the server's side */
	uint8_t *body = malloc(body_len);
	char head[256];
	char value[64];
	reply r;

	(void)state;
	assert_non_null(body);
	tu_rng_fill(&rng, body, body_len);
	snprintf(head, sizeof(head),
	         "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n", body_len);
	send_str(c, head);
	send_all(c, body, body_len);
	read_reply(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(reply_header(&r, "Content-Type", value, sizeof(value)),
	                    "application/octet-stream");
	assert_int_equal(r.body_len, body_len);
	assert_memory_equal(r.body, body, body_len);
	reply_free(&r);
	free(body);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_keep_alive_two_requests(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	char value[64];
	reply r;

	(void)state;
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst");
	read_reply(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "first");
	assert_null(reply_header(&r, "Connection", value, sizeof(value)));
	reply_free(&r);

	/* The same socket: the server kept the connection open. */
	send_str(c, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
	read_reply(c, &r);
	/* A handler that sets nothing gives 200, JSON and an empty body. */
	assert_int_equal(r.status, 200);
	assert_string_equal(reply_header(&r, "Content-Type", value, sizeof(value)),
	                    "application/json");
	assert_int_equal(r.body_len, 0);
	reply_free(&r);
	assert_int_equal(atomic_load(&h.calls), 2);

	/* Stopping does not wait for the idle connection: it is closed. */
	sl_http_server_stop(s);
	assert_true(wait_closed(c));
	client_close(c);
}

static void assert_too_large(const reply *r)
{
	char value[64];

	assert_int_equal(r->status, 413);
	assert_string_equal(reply_header(r, "Content-Type", value, sizeof(value)),
	                    "application/json");
	assert_true(strncmp(r->body, "{\"error\":\"too_large\",\"message\":\"", 32) == 0);
	assert_non_null(strstr(r->body, "1024"));
	assert_string_equal(r->body + r->body_len - 2, "\"}");
}

static void test_content_length_over_cap_is_413(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	char body[1025];
	ssize_t n;
	reply r;

	(void)state;
	/* Only the headers: the answer must come without the body. */
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n");
	read_reply(c, &r);
	assert_too_large(&r);
	assert_non_null(strstr(r.body, "1025"));
	reply_free(&r);
	assert_int_equal(atomic_load(&h.calls), 0);

	/* The body that follows is not taken for a next request: the
	 * server hangs up without another answer. */
	memset(body, 'x', sizeof(body));
	(void)send(c->fd, body, sizeof(body), MSG_NOSIGNAL);
	n = fill(c);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	assert_int_equal(c->len, 0);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_chunked_body_over_cap_is_413(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	char chunk[600];
	reply r;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 2; i++) {
		send_str(c, "258\r\n"); /* 600 */
		send_all(c, chunk, sizeof(chunk));
		send_str(c, "\r\n");
	}
	send_str(c, "0\r\n\r\n");
	read_reply(c, &r);
	assert_too_large(&r);
	reply_free(&r);
	assert_int_equal(atomic_load(&h.calls), 0);

	/* The connection stays usable: the body was read to its end. */
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
	read_reply(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok");
	reply_free(&r);
	assert_int_equal(atomic_load(&h.calls), 1);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_chunked_body_far_over_cap_is_cut_off(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	char chunk[1000];
	ssize_t n;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* Keep streaming well past twice the cap: the server hangs up. */
	for (int i = 0; i < 64; i++) {
		char head[16];
		snprintf(head, sizeof(head), "%zx\r\n", sizeof(chunk));
		if (send(c->fd, head, strlen(head), MSG_NOSIGNAL) < 0 ||
		    send(c->fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0 ||
		    send(c->fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
			break;
	}
	n = fill(c);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	assert_int_equal(atomic_load(&h.calls), 0);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_body_exactly_at_cap(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	char body[1024];
	reply r;

	(void)state;
	memset(body, 'b', sizeof(body));
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");
	send_all(c, body, sizeof(body));
	read_reply(c, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, sizeof(body));
	assert_memory_equal(r.body, body, sizeof(body));
	reply_free(&r);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_malformed_request_is_400(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	client *c = client_connect(sl_http_server_port(s));
	reply r;

	(void)state;
	send_str(c, "THIS IS NOT HTTP\r\nHost: x\r\n\r\n");
	read_reply(c, &r);
	assert_int_equal(r.status, 400);
	reply_free(&r);
	assert_int_equal(atomic_load(&h.calls), 0);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_stalled_client_is_disconnected(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 1);
	client *c = client_connect(sl_http_server_port(s));
	uint64_t start_ns, elapsed_ms;

	(void)state;
	start_ns = sl_clock_mono_ns();
	send_str(c, "GET /info HTTP/1.1\r\nHost: x\r\n"); /* no blank line */
	assert_true(wait_closed(c));
	elapsed_ms = (sl_clock_mono_ns() - start_ns) / 1000000;
	/* Closed after about a second, well before the client's own 10 s. */
	assert_true(elapsed_ms >= 900);
	assert_true(elapsed_ms < 5000);
	assert_int_equal(atomic_load(&h.calls), 0);
	client_close(c);
	sl_http_server_stop(s);
}

static void test_port_zero_gives_real_port(void **state)
{
	handler_ctx h = {0};
	sl_http_server *a = start_server(&h, 1024, 5);
	sl_http_server *b = start_server(&h, 1024, 5);
	client *c;
	reply r;

	(void)state;
	assert_true(sl_http_server_port(a) != sl_http_server_port(b));
	c = client_connect(sl_http_server_port(b));
	send_str(c, "GET /info HTTP/1.1\r\nHost: x\r\n\r\n");
	read_reply(c, &r);
	assert_int_equal(r.status, 201);
	reply_free(&r);
	client_close(c);
	sl_http_server_stop(a);
	sl_http_server_stop(b);
	assert_int_equal(sl_http_server_port(NULL), 0);
	sl_http_server_stop(NULL);
}

static void test_bad_listen_address(void **state)
{
	static const char *const bad[] = {"localhost", "256.1.1.1", "::1", "", "1.2.3"};
	handler_ctx h = {0};
	sl_http_server_options o;
	sl_http_server *s = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sl_http_server_options_init(&o);
		o.listen_addr = bad[i];
		assert_int_equal(sl_http_server_start(&s, &o, test_handler, &h), SL_EINVAL);
		assert_null(s);
		assert_int_equal(sl_error_last()->code, SL_EINVAL);
		assert_non_null(strstr(sl_error_last()->message, "not an IPv4 address"));
	}
	sl_http_server_options_init(&o);
	assert_int_equal(sl_http_server_start(&s, &o, NULL, &h), SL_EINVAL);
	o.timeout_s = 0;
	assert_int_equal(sl_http_server_start(&s, &o, test_handler, &h), SL_EINVAL);
	assert_null(s);
}

static void test_bind_failure_is_eio(void **state)
{
	handler_ctx h = {0};
	sl_http_server *first = start_server(&h, 1024, 5);
	sl_http_server_options o;
	sl_http_server *second = NULL;
	char want[64];

	(void)state;
	sl_http_server_options_init(&o);
	o.port = sl_http_server_port(first);
	assert_int_equal(sl_http_server_start(&second, &o, test_handler, &h), SL_EIO);
	assert_null(second);
	snprintf(want, sizeof(want), "127.0.0.1:%u", (unsigned)o.port);
	assert_non_null(strstr(sl_error_last()->message, want));
	sl_http_server_stop(first);
}

typedef struct worker_arg {
	uint16_t port;
	int id;
	int ok;
} worker_arg;

static void *worker(void *p)
{
	worker_arg *a = p;
	client *c = client_connect(a->port);
	char request[256], body[64];
	reply r;

	for (int i = 0; i < 25; i++) {
		int n = snprintf(body, sizeof(body), "worker %d request %d", a->id, i);
		snprintf(request, sizeof(request),
		         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", n, body);
		send_str(c, request);
		read_reply(c, &r);
		if (r.status == 200 && strcmp(r.body, body) == 0)
			a->ok++;
		reply_free(&r);
	}
	client_close(c);
	return NULL;
}

static void test_concurrent_clients(void **state)
{
	handler_ctx h = {0};
	sl_http_server *s = start_server(&h, 1024, 5);
	pthread_t threads[4];
	worker_arg args[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i] = (worker_arg){sl_http_server_port(s), i, 0};
		assert_int_equal(pthread_create(&threads[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(args[i].ok, 25);
	}
	assert_int_equal(atomic_load(&h.calls), 100);
	sl_http_server_stop(s);
}

static void test_error_body_escaping(void **state)
{
	sl_http_response resp = {0, NULL, SL_BUF_INIT(1024), 0, 0, "", "", 0};

	(void)state;
	assert_int_equal(sl_buf_append_str(&resp.body, "partial handler output"), SL_OK);
	assert_int_equal(sl_http_response_error(&resp, 404, "not_found", "no \"%s\" here\\%c\n\t%c",
	                                        "k", 'x', 1),
	                 SL_OK);
	assert_int_equal(resp.status, 404);
	assert_string_equal(resp.content_type, "application/json");
	assert_string_equal((char *)resp.body.data,
	                    "{\"error\":\"not_found\",\"message\":\"no \\\"k\\\" here\\\\x\\n\\t"
	                    "\\u0001\"}");
	assert_int_equal(resp.body.len, strlen((char *)resp.body.data));
	sl_buf_free(&resp.body);

	/* Too small a cap, or out of memory: the status still goes out, with no
	 * body, and not the handler's partial output under a 200. */
	sl_buf_init(&resp.body, 16);
	resp.status = 0;
	assert_int_equal(sl_buf_append_str(&resp.body, "partial"), SL_OK);
	assert_int_equal(sl_http_response_error(&resp, 500, "internal", "%s", "a long message"),
	                 SL_ETOOLARGE);
	assert_int_equal(resp.status, 500);
	assert_int_equal(resp.body.len, 0);
	sl_buf_free(&resp.body);

	sl_buf_init(&resp.body, 1024);
	resp.status = 0;
	assert_int_equal(sl_buf_append_str(&resp.body, "partial"), SL_OK);
	sl_alloc_fail_after(0, 1);
	assert_int_equal(sl_http_response_error(&resp, 409, "conflict", "%s", "refused"),
	                 SL_ENOMEM);
	sl_alloc_fail_after(-1, 0);
	assert_int_equal(resp.status, 409);
	assert_int_equal(resp.body.len, 0);
	sl_buf_free(&resp.body);
}

/* A client over its rate is answered 429 with Retry-After and a JSON
 * error, without reaching the handler; the HTTP client reads the header;
 * a client over its share of connections is refused at once. */
static void test_client_limits(void **state)
{
	handler_ctx h = {0};
	sl_http_server_options o;
	sl_http_server *s = NULL;
	sl_http_client *hc = NULL;
	sl_http_result r;
	client *held[3];
	char url[64];
	int calls;

	(void)state;
	sl_http_server_options_init(&o);
	o.threads = 2;
	o.limits.client_rate = 0.5; /* a token every 2 s */
	o.limits.client_burst = 1;
	o.limits.max_client_connections = 2;
	assert_ok(sl_http_server_start(&s, &o, test_handler, &h));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/info", sl_http_server_port(s));
	assert_ok(sl_http_client_new(&hc, NULL));

	sl_http_result_init(&r);
	assert_ok(sl_http_client_fetch(hc, "GET", url, NULL, NULL, 0, &r));
	assert_int_equal(r.status, 201);
	assert_int_equal(r.retry_after_s, 0);
	sl_http_result_free(&r);
	calls = atomic_load(&h.calls);
	assert_ok(sl_http_client_fetch(hc, "GET", url, NULL, NULL, 0, &r));
	assert_int_equal(r.status, 429);
	assert_true(r.retry_after_s >= 1 && r.retry_after_s <= 3);
	assert_non_null(strstr((const char *)r.body.data, "\"too_many_requests\""));
	assert_int_equal(atomic_load(&h.calls), calls); /* the handler never ran */
	sl_http_result_free(&r);
	sl_http_client_free(hc);

	/* Two connections are this client's share; a third is closed. */
	held[0] = client_connect(sl_http_server_port(s));
	held[1] = client_connect(sl_http_server_port(s));
	usleep(200000);
	held[2] = client_connect(sl_http_server_port(s));
	assert_true(wait_closed(held[2]));
	for (int i = 0; i < 3; i++)
		client_close(held[i]);
	sl_http_server_stop(s);
}

/* Option checks: a share past the connection limit, a zero header
 * timeout, a rate without a bucket. */
static void test_limit_options_checked(void **state)
{
	handler_ctx h = {0};
	sl_http_server_options o;
	sl_http_server *s = NULL;

	(void)state;
	sl_http_server_options_init(&o);
	o.limits.max_client_connections = o.max_connections + 1;
	assert_int_equal(sl_http_server_start(&s, &o, test_handler, &h), SL_EINVAL);
	sl_http_server_options_init(&o);
	o.limits.header_timeout_s = 0;
	assert_int_equal(sl_http_server_start(&s, &o, test_handler, &h), SL_EINVAL);
	sl_http_server_options_init(&o);
	o.limits.client_burst = 0.5;
	assert_int_equal(sl_http_server_start(&s, &o, test_handler, &h), SL_EINVAL);
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_get_query_and_headers),
	        cmocka_unit_test(test_post_body_echoed),
	        cmocka_unit_test(test_keep_alive_two_requests),
	        cmocka_unit_test(test_content_length_over_cap_is_413),
	        cmocka_unit_test(test_chunked_body_over_cap_is_413),
	        cmocka_unit_test(test_chunked_body_far_over_cap_is_cut_off),
	        cmocka_unit_test(test_body_exactly_at_cap),
	        cmocka_unit_test(test_malformed_request_is_400),
	        cmocka_unit_test(test_stalled_client_is_disconnected),
	        cmocka_unit_test(test_port_zero_gives_real_port),
	        cmocka_unit_test(test_bad_listen_address),
	        cmocka_unit_test(test_bind_failure_is_eio),
	        cmocka_unit_test(test_concurrent_clients),
	        cmocka_unit_test(test_error_body_escaping),
	        cmocka_unit_test(test_client_limits),
	        cmocka_unit_test(test_limit_options_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
