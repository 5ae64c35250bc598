/*
 * The HTTP server: a thin layer over libmicrohttpd (MHD) running its own
 * epoll threads (a pool of `threads`), bound to one IPv4 address. MHD
 * parses HTTP, keeps connections alive, answers malformed requests with
 * 400 and closes connections idle or stalled for timeout_s.
 *
 * MHD calls the access handler several times per request: once when the
 * headers are in (we allocate a request_state and check Content-Length),
 * once per chunk of body (appended to a buffer capped at max_request),
 * and once more with no data when the body is complete, which is when the
 * caller's handler runs and its response is queued. A body past the cap
 * is answered with 413 and never reaches the handler: at once when
 * Content-Length announces it (MHD then skips the body and closes the
 * connection), otherwise after the rest of the body has been read and
 * thrown away, because MHD only accepts a response once the request is
 * complete. A client that keeps sending past twice the cap is cut off.
 * The request_state is freed in the completion callback, which MHD calls
 * for every request it presented to us, finished or not.
 *
 * Every connection and request also goes through the guard
 * (http_guard.c): a client past its share of connections is refused at
 * accept, one over its rate is answered 429 at its head, one with its
 * share of requests in service waits (suspended) for its turn, and a
 * connection whose head is late or whose body trickles is cut. The
 * guard's state for a connection is MHD's socket context; a request's
 * state is made when its request line arrives, so its head is timed.
 *
 * Long polls. A handler may answer "not yet" (sl_http_response.wait_ms
 * with sl_http_request.may_wait): the response is dropped, the request's
 * connection is suspended (http_wait.c) and gives its client's slot back
 * to the guard, so it holds neither a thread nor a turn. It is resumed by
 * sl_http_server_wake (every waiting request: the handlers check again),
 * by its deadline (wait_ms after it first waited), or by stop. MHD then
 * calls the access handler again with no data; the request takes a slot
 * again through the guard (perhaps waiting its turn) and its handler is
 * called once more, with may_wait 0 once the deadline passed, when it must
 * answer. A wake that comes while a handler runs makes a handler that asks
 * to wait run again at once (the wake generation, http_wait.c), so a
 * change that lands between a handler's check and its suspension is not
 * missed. At stop, waiting requests are resumed and answered before the
 * guard's queue is drained and MHD stopped. MHD neither times out nor
 * watches a suspended connection, so a client that goes away while its
 * request waits is noticed when the request resumes: handlers keep their
 * waits short (the sync server's are at most 25 s).
 *
 * Response bodies are handed to MHD without a copy: MHD frees them with
 * sl_free once sent. MHD's own diagnostics go to sl_log at debug level;
 * the last one on the starting thread explains a failed start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "net/http_guard.h"
#include "net/http_wait.h"

#define DEFAULT_LISTEN_ADDR     "127.0.0.1"
#define DEFAULT_THREADS         4
#define DEFAULT_MAX_REQUEST     ((size_t)64 * 1024 * 1024)
#define DEFAULT_MAX_RESPONSE    ((size_t)256 * 1024 * 1024)
#define DEFAULT_TIMEOUT_S       30
#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_CLIENT_RATE     20000.0
#define DEFAULT_HEADER_TIMEOUT  10
#define DEFAULT_MIN_BODY_RATE   1024
#define DEFAULT_BODY_GRACE      10
/* A request costs one token, plus one per this many body bytes, in and
 * out (docs/protocol.md, "Limits"). */
#define COST_BYTES ((size_t)64 * 1024)
/* Error bodies are small; they get their own cap so that a tiny
 * max_response cannot prevent a 413 or 500 from being sent. */
#define ERROR_BODY_MAX  4096
#define MHD_MESSAGE_MAX 256

struct sl_http_server {
	struct MHD_Daemon *daemon;
	sl_http_handler handler;
	void *ctx;
	size_t max_request;
	size_t max_response;
	uint16_t port;
	http_guard *guard;
	http_wait *wait;
};

/* Per request, from its request line (or the first access-handler call)
 * to completion. */
typedef struct request_state {
	int started;   /* the access handler has seen the head */
	int waiting;   /* suspended in its client's queue (http_guard.c) */
	int responded; /* answered at the head (429, 413): the rest is discarded */
	int complete;  /* the body is in: a call from now on is after a wait */
	int polling;   /* suspended in a long poll, not handled again yet */
	http_waiter waiter;
	void *conn; /* the guard's tracking of the connection, or NULL */
	sl_buf body;
	/* 0 while all is well, else the status to answer once the body has
	 * been read: 413 (past max_request) or 500 (out of memory). */
	unsigned reject_status;
	size_t discarded; /* body bytes thrown away after a rejection */
	double cost;      /* tokens to charge at completion */
} request_state;

/* The last MHD diagnostic on this thread, to explain a failed start. */
static _Thread_local char mhd_last_message[MHD_MESSAGE_MAX];

void sl_http_server_options_init(sl_http_server_options *o)
{
	memset(o, 0, sizeof(*o));
	o->listen_addr = DEFAULT_LISTEN_ADDR;
	o->port = 0;
	o->threads = DEFAULT_THREADS;
	o->max_request = DEFAULT_MAX_REQUEST;
	o->max_response = DEFAULT_MAX_RESPONSE;
	o->timeout_s = DEFAULT_TIMEOUT_S;
	o->max_connections = DEFAULT_MAX_CONNECTIONS;
	sl_http_limits_init(&o->limits);
}

void sl_http_limits_init(sl_http_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_client_connections = DEFAULT_MAX_CONNECTIONS / 4;
	l->client_rate = DEFAULT_CLIENT_RATE;
	l->client_burst = 2 * DEFAULT_CLIENT_RATE;
	l->header_timeout_s = DEFAULT_HEADER_TIMEOUT;
	l->min_body_rate = DEFAULT_MIN_BODY_RATE;
	l->body_grace_s = DEFAULT_BODY_GRACE;
}

/* ------------------------------------------------------------- requests */

static const char *lookup_value(const sl_http_request *r, enum MHD_ValueKind kind, const char *name)
{
	const char *value = NULL;
	size_t value_len = 0;

	if (!r || !r->impl || !name)
		return NULL;
	if (MHD_lookup_connection_value_n(r->impl, kind, name, strlen(name), &value, &value_len) !=
	    MHD_YES)
		return NULL;
	/* "?flag" is present without a value. */
	return value ? value : "";
}

const char *sl_http_request_query(const sl_http_request *r, const char *name)
{
	return lookup_value(r, MHD_GET_ARGUMENT_KIND, name);
}

const char *sl_http_request_header(const sl_http_request *r, const char *name)
{
	return lookup_value(r, MHD_HEADER_KIND, name);
}

int sl_http_request_bearer_ok(const sl_http_request *r, const char *token)
{
	const char *auth = sl_http_request_header(r, "Authorization");
	if (auth == NULL || token == NULL || strncmp(auth, "Bearer ", 7) != 0)
		return 0;
	const char *given = auth + 7;
	size_t n = strlen(token), m = strlen(given);
	unsigned char diff = (unsigned char)(m != n);
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)((i < m ? given[i] : 0) ^ token[i]);
	return diff == 0;
}

/* ------------------------------------------------------------ responses */

/* Append s as the inside of a JSON string. */
static int append_json_escaped(sl_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;
	char esc[7];
	size_t esc_len;
	int rc = SL_OK;

	for (; *p; p++) {
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		rc = sl_buf_append(b, run, (size_t)(p - run));
		if (rc != SL_OK)
			goto cleanup;
		esc[0] = '\\';
		esc_len = 2;
		switch (*p) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			esc_len = 6;
			break;
		}
		rc = sl_buf_append(b, esc, esc_len);
		if (rc != SL_OK)
			goto cleanup;
		run = p + 1;
	}
	rc = sl_buf_append(b, run, (size_t)(p - run));
cleanup:
	return rc;
}

int sl_http_response_error(sl_http_response *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	char *message = NULL;
	sl_buf json = SL_BUF_INIT(r->body.max);
	int n;
	int rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		rc = sl_error_set(SL_EINVAL, "cannot format error message \"%s\"", fmt);
		goto cleanup;
	}
	message = sl_malloc((size_t)n + 1);
	if (!message) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	va_start(ap, fmt);
	vsnprintf(message, (size_t)n + 1, fmt, ap);
	va_end(ap);

	rc = sl_buf_append_str(&json, "{\"error\":\"");
	if (rc == SL_OK)
		rc = append_json_escaped(&json, code ? code : "");
	if (rc == SL_OK)
		rc = sl_buf_append_str(&json, "\",\"message\":\"");
	if (rc == SL_OK)
		rc = append_json_escaped(&json, message);
	if (rc == SL_OK)
		rc = sl_buf_append_str(&json, "\"}");
cleanup:
	/* Whatever the handler wrote so far is replaced. */
	sl_buf_free(&r->body);
	if (rc == SL_OK) {
		r->body = json;
		sl_buf_init(&json, 0);
	}
	r->status = status;
	r->content_type = "application/json";
	sl_buf_free(&json);
	sl_free(message);
	return rc;
}

/* Queue resp on conn. The body moves to MHD, which frees it once sent. */
static enum MHD_Result send_response(struct MHD_Connection *conn, sl_http_response *resp)
{
	static char empty[1];
	struct MHD_Response *reply = NULL;
	unsigned status = resp->status == 0 ? 200u : (unsigned)resp->status;
	const char *content_type = resp->content_type ? resp->content_type : "application/json";
	enum MHD_Result result = MHD_NO;

	if (resp->status != 0 && (resp->status < 100 || resp->status > 599)) {
		sl_log(SL_LOG_WARN, "http handler set an invalid status", "status=%d",
		       resp->status);
		status = 500;
	}
	if (resp->body.data && resp->body.len > 0) {
		reply = MHD_create_response_from_buffer_with_free_callback(
		        resp->body.len, resp->body.data, sl_free);
		if (reply)
			sl_buf_init(&resp->body, resp->body.max); /* now MHD's */
	} else {
		reply = MHD_create_response_from_buffer(0, empty, MHD_RESPMEM_PERSISTENT);
	}
	if (!reply)
		goto cleanup;
	if (MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
		goto cleanup;
	if (resp->retry_after_s > 0) {
		char seconds[16];
		snprintf(seconds, sizeof(seconds), "%u", resp->retry_after_s);
		if (MHD_add_response_header(reply, MHD_HTTP_HEADER_RETRY_AFTER, seconds) != MHD_YES)
			goto cleanup;
	}
	if (resp->header_name[0] != '\0' &&
	    MHD_add_response_header(reply, resp->header_name, resp->header_value) != MHD_YES)
		goto cleanup;
	result = MHD_queue_response(conn, status, reply);
cleanup:
	if (reply)
		MHD_destroy_response(reply);
	sl_buf_free(&resp->body);
	return result;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                  const char *message, unsigned retry_after_s)
{
	sl_http_response resp = {0, NULL, SL_BUF_INIT(ERROR_BODY_MAX), 0, retry_after_s, "", "", 0};

	sl_http_response_error(&resp, (int)status, code, "%s", message);
	return send_response(conn, &resp);
}

/* ----------------------------------------------------------- MHD hooks */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char quoted[MHD_MESSAGE_MAX + 16];
	size_t len;

	(void)cls;
	vsnprintf(mhd_last_message, sizeof(mhd_last_message), fmt, ap);
	len = strlen(mhd_last_message);
	while (len > 0 && (mhd_last_message[len - 1] == '\n' || mhd_last_message[len - 1] == '\r'))
		mhd_last_message[--len] = '\0';
	sl_log(SL_LOG_DEBUG, "http server", "detail=%s",
	       sl_log_quote(quoted, sizeof(quoted), mhd_last_message));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
	const sl_http_server *s = cls;
	request_state *st = *con_cls;

	(void)conn;
	(void)why;
	if (!st)
		return;
	if (st->polling)
		http_wait_forget(s->wait, &st->waiter);
	http_guard_request_done(s->guard, st->conn, st->cost);
	sl_buf_free(&st->body);
	sl_free(st);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
	const sl_http_server *s = cls;
	const union MHD_ConnectionInfo *fd, *addr;

	if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
		http_guard_closed(s->guard, socket_context);
		return;
	}
	fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	http_guard_opened(s->guard, conn, fd ? fd->connect_fd : -1, addr ? addr->client_addr : NULL,
	                  socket_context);
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addr_len)
{
	const sl_http_server *s = cls;
	(void)addr_len;
	return http_guard_accept(s->guard, addr) ? MHD_YES : MHD_NO;
}

static void *request_new(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	request_state *st = sl_calloc(1, sizeof(*st));
	if (st)
		st->conn = info ? info->socket_context : NULL;
	return st;
}

/* A request line arrived: its state is made here, so the head is timed. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	const sl_http_server *s = cls;
	request_state *st = request_new(conn);
	(void)uri;
	if (st)
		http_guard_request_line(s->guard, st->conn);
	return st;
}

/* The announced body length, or 0 when there is no Content-Length (a
 * chunked body is checked as it arrives). An absurd value counts as huge. */
static unsigned long long declared_length(struct MHD_Connection *conn)
{
	const char *value =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;

	if (!value)
		return 0;
	errno = 0;
	n = strtoull(value, NULL, 10);
	if (errno == ERANGE)
		return ULLONG_MAX;
	return n;
}

/* Take one chunk of body, or throw it away once the request is rejected. */
static void take_body(request_state *st, const char *data, size_t len)
{
	int rc;

	if (st->reject_status == 0) {
		rc = sl_buf_append(&st->body, data, len);
		if (rc == SL_OK)
			return;
		st->reject_status = rc == SL_ETOOLARGE ? 413u : 500u;
		st->discarded = st->body.len;
		sl_buf_free(&st->body);
	}
	st->discarded = len > SIZE_MAX - st->discarded ? SIZE_MAX : st->discarded + len;
}

/* First call for a request: the headers are in, the body is not. Called
 * again when a request that waited for its turn is resumed. */
static enum MHD_Result start_request(const sl_http_server *s, struct MHD_Connection *conn,
                                     request_state *st)
{
	unsigned long long declared;
	unsigned wait_s = 0;
	char message[160];

	if (!st->started) {
		st->started = 1;
		sl_buf_init(&st->body, s->max_request);
	}
	switch (http_guard_request_start(s->guard, st->conn, &wait_s)) {
	case GUARD_THROTTLE:
		st->responded = 1;
		snprintf(message, sizeof(message),
		         "too many requests from this address: retry after %u s", wait_s);
		return send_error(conn, 429, "too_many_requests", message, wait_s);
	case GUARD_WAIT:
		st->waiting = 1; /* suspended; resumed in turn */
		return MHD_YES;
	default:
		st->waiting = 0;
		break;
	}
	declared = declared_length(conn);
	if (declared <= s->max_request)
		return MHD_YES;
	st->responded = 1;
	snprintf(message, sizeof(message),
	         "request body of %llu bytes exceeds the limit of %zu bytes", declared,
	         s->max_request);
	return send_error(conn, 413, "too_large", message, 0);
}

/* Last call: the whole body is in. Called again for a request that waited
 * (a long poll) once it is resumed and has its turn. */
static enum MHD_Result finish_request(const sl_http_server *s, struct MHD_Connection *conn,
                                      const char *url, const char *method, request_state *st)
{
	sl_http_request req;
	sl_http_response resp;
	char message[160];
	double handler_cost = 0;
	uint64_t generation;

	if (st->reject_status == 413) {
		snprintf(message, sizeof(message),
		         "request body of %zu bytes exceeds the limit of %zu bytes", st->discarded,
		         s->max_request);
		return send_error(conn, 413, "too_large", message, 0);
	}
	if (st->reject_status != 0)
		return send_error(conn, 500, "internal", "out of memory reading the request body",
		                  0);

	st->complete = 1;
	http_guard_body_done(s->guard, st->conn);
	req.method = method;
	req.path = url;
	req.body = st->body.data ? st->body.data : (const uint8_t *)"";
	req.body_len = st->body.len;
	req.impl = conn;
	for (;;) {
		req.may_wait = !st->waiter.final;
		memset(&resp, 0, sizeof(resp));
		sl_buf_init(&resp.body, s->max_response);
		generation = http_wait_generation(s->wait);
		s->handler(s->ctx, &req, &resp);
		handler_cost += resp.cost;
		if (!req.may_wait || resp.wait_ms == 0)
			break;
		sl_buf_free(&resp.body); /* "not yet": nothing is sent */
		if (http_wait_suspend(s->wait, &st->waiter, conn, resp.wait_ms, generation) ==
		    WAIT_SUSPENDED) {
			st->polling = 1;
			http_guard_handler_wait(s->guard, st->conn);
			return MHD_YES;
		}
		/* A wake came while the handler ran (call it again), or the
		 * wait is over (again, and it must answer). */
	}
	http_guard_handler_done(s->guard, st->conn);
	/* The token paid at the start covers one request; bodies and the
	 * handler's own work cost more. */
	st->cost = (double)((req.body_len + resp.body.len) / COST_BYTES) + handler_cost;
	return send_response(conn, &resp);
}

/* A call after the body was complete: the request was resumed after a
 * long poll, or after waiting its turn to be handled again. */
static enum MHD_Result continue_request(const sl_http_server *s, struct MHD_Connection *conn,
                                        const char *url, const char *method, request_state *st)
{
	enum MHD_Result result;

	if (st->polling) {
		st->polling = 0;
		http_wait_resumed(s->wait, &st->waiter);
	}
	/* Its turn again: it may wait in its client's queue first. */
	result = start_request(s, conn, st);
	if (result != MHD_YES || st->waiting || st->responded)
		return result;
	return finish_request(s, conn, url, method, st);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	const sl_http_server *s = cls;
	request_state *st = *con_cls;
	enum MHD_Result result;

	(void)version;
	if (!st && !(st = *con_cls = request_new(conn)))
		return MHD_NO;
	if (st->complete) {
		result = continue_request(s, conn, url, method, st);
		goto cleanup;
	}
	if (!st->started || st->waiting) {
		result = start_request(s, conn, st);
		/* Body bytes may come with the call that resumes a request. */
		if (result != MHD_YES || st->waiting || st->responded || *upload_data_size == 0)
			goto cleanup;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		take_body(st, upload_data, n);
		*upload_data_size = 0;
		/* Reading a rejected body is bounded too: past twice the cap
		 * the connection is closed without an answer; and a body
		 * trickling in below the minimum rate is cut. */
		result = (st->reject_status && st->discarded / 2 > s->max_request) ||
		                         http_guard_body(s->guard, st->conn, n) != 0
		                 ? MHD_NO
		                 : MHD_YES;
		goto cleanup;
	}
	result = finish_request(s, conn, url, method, st);
cleanup:
	return result;
}

/* --------------------------------------------------------------- server */

static int check_options(const sl_http_server_options *o, sl_http_handler handler)
{
	if (!handler)
		return sl_error_set(SL_EINVAL, "http server: no handler");
	if (o->threads == 0)
		return sl_error_set(SL_EINVAL, "http server: threads must be at least 1");
	if (o->timeout_s == 0)
		return sl_error_set(SL_EINVAL,
		                    "http server: timeout_s must be at least 1 (idle connections "
		                    "must be closed)");
	if (o->max_connections < o->threads)
		return sl_error_set(
		        SL_EINVAL,
		        "http server: max_connections (%u) must be at least threads (%u)",
		        o->max_connections, o->threads);
	if (o->limits.max_client_connections == 0 ||
	    o->limits.max_client_connections > o->max_connections)
		return sl_error_set(SL_EINVAL,
		                    "http server: connections per client must be 1..%u (the "
		                    "connection limit)",
		                    o->max_connections);
	if (o->limits.client_rate < 0 || o->limits.client_burst < 0 ||
	    (o->limits.client_rate > 0 && o->limits.client_burst < 1))
		return sl_error_set(SL_EINVAL,
		                    "http server: a client's rate and burst must be positive (a "
		                    "burst of at least 1)");
	if (o->limits.header_timeout_s == 0)
		return sl_error_set(SL_EINVAL, "http server: header_timeout_s must be at least 1");
	return SL_OK;
}

int sl_http_server_start(sl_http_server **out, const sl_http_server_options *o,
                         sl_http_handler handler, void *ctx)
{
	sl_http_server_options defaults;
	sl_http_server *s = NULL;
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;
	const char *addr;
	unsigned int flags;
	int rc;

	if (!o) {
		sl_http_server_options_init(&defaults);
		o = &defaults;
	}
	addr = o->listen_addr ? o->listen_addr : DEFAULT_LISTEN_ADDR;
	rc = check_options(o, handler);
	if (rc != SL_OK)
		goto cleanup;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(o->port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		rc = sl_error_set(SL_EINVAL,
		                  "http server: listen address \"%s\" is not an IPv4 address "
		                  "(such as 127.0.0.1 or 0.0.0.0)",
		                  addr);
		goto cleanup;
	}

	s = sl_calloc(1, sizeof(*s));
	if (!s) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	s->handler = handler;
	s->ctx = ctx;
	s->max_request = o->max_request;
	s->max_response = o->max_response;

	if ((rc = http_guard_new(&s->guard, o)) != SL_OK ||
	    (rc = http_wait_new(&s->wait, o->metrics, o->on_waiting, ctx)) != SL_OK)
		goto cleanup;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
	        MHD_ALLOW_SUSPEND_RESUME;
	mhd_last_message[0] = '\0';
	/* The logger comes first so that start-up messages reach it too. */
	s->daemon = MHD_start_daemon(
	        flags, o->port, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
	        s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
	        (unsigned int)o->threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->timeout_s,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)o->max_connections,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
	        on_connection, s, MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s, MHD_OPTION_END);
	if (!s->daemon) {
		rc = sl_error_set_cause(
		        SL_EIO, mhd_last_message, "http server: cannot listen on %s:%u%s%s", addr,
		        (unsigned)o->port, mhd_last_message[0] ? ": " : "", mhd_last_message);
		goto cleanup;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info && info->port ? info->port : o->port;
	if (s->port == 0) {
		rc = sl_error_set(SL_EIO, "http server: cannot tell which port %s:0 was bound to",
		                  addr);
		goto cleanup;
	}
	sl_log(SL_LOG_DEBUG, "http server listening", "addr=%s port=%u threads=%u", addr,
	       (unsigned)s->port, o->threads);
	*out = s;
	s = NULL;
	rc = SL_OK;
cleanup:
	sl_http_server_stop(s);
	return rc;
}

uint16_t sl_http_server_port(const sl_http_server *s)
{
	return s ? s->port : 0;
}

void sl_http_server_stop(sl_http_server *s)
{
	if (!s)
		return;
	/* Joins MHD's threads, so handlers in flight finish first; requests
	 * still open get their completion callback. */
	/* The library stops only with no connection suspended: the waiting
	 * ones are resumed and served first, long polls (which may then wait
	 * their client's turn) before the client queues. */
	http_wait_drain(s->wait);
	http_guard_drain(s->guard);
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	http_wait_free(s->wait); /* after: every connection has closed */
	http_guard_free(s->guard);
	sl_free(s);
}

void sl_http_server_wake(sl_http_server *s)
{
	if (s && s->wait)
		http_wait_wake(s->wait);
}

size_t sl_http_server_waiting(const sl_http_server *s)
{
	return s && s->wait ? http_wait_count(s->wait) : 0;
}
