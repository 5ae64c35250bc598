/*
 * The HTTP client: one libcurl multi handle driven from the caller's
 * thread by poll and fetch, never by threads of its own.
 *
 * A request moves through three lists and is never copied on the way:
 *
 *   queued  --start_queued-->  running  --finish_request-->  done  --poll-->  caller
 *   (FIFO)                     (attached)                    (FIFO)
 *
 * Invariants:
 *   1. At most max_in_flight requests are running, i.e. attached to the
 *      multi handle; the rest wait in submission order in `queued`.
 *   2. Every request that leaves `queued` ends in `done` with its result
 *      filled in, even when curl could not start it, so submit's success
 *      is a promise that exactly one result comes back.
 *   3. pending() == n_queued + n_running + n_done.
 *
 * A request carries its result from the moment it is submitted, so
 * finishing one allocates nothing and cannot lose it. Easy handles are kept
 * on an idle list when a request finishes and reset for the next one; the
 * connections themselves live in the multi handle's connection cache, so
 * sequential requests to one host reuse one kept-alive connection.
 *
 * The body is written into the result's capped buffer; past max_response
 * the write callback refuses the data, curl aborts the transfer, and the
 * result says SL_ETOOLARGE. A Content-Length past the cap is refused before
 * any body arrives (CURLOPT_MAXFILESIZE_LARGE).
 *
 * fetch() waits on an internal request id rather than a tag, so callers
 * may use any tag values; the results of other requests that finish in the
 * meantime stay in `done`, in order, for poll.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "sluice/net.h"

#define DEFAULT_MAX_IN_FLIGHT      4u
#define DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define DEFAULT_REQUEST_TIMEOUT_MS 30000u
#define DEFAULT_MAX_RESPONSE       ((size_t)256 * 1024 * 1024)

/* Longest single sleep in curl_multi_poll; waits loop over slices. */
#define WAIT_SLICE_MS 1000

typedef struct request {
	struct request *next;
	uint64_t id; /* unique within the client; fetch waits on it */
	char *method;
	char *url;
	struct curl_slist *headers;
	uint8_t *body;
	size_t body_len;
	int has_body;
	CURL *easy;        /* while running */
	int overflowed;    /* the write callback hit max_response */
	int out_of_memory; /* the write callback could not grow the body */
	CURLcode curl_rc;
	char errbuf[CURL_ERROR_SIZE];
	sl_http_result result;
} request;

typedef struct request_list {
	request *head;
	request *tail;
	size_t n;
} request_list;

struct sl_http_client {
	sl_http_client_options opts;
	char *local_addr; /* opts.local_addr points here */
	CURLM *multi;
	request_list queued;
	request_list running;
	request_list done;
	CURL **idle; /* reusable easy handles, at most max_in_flight */
	size_t n_idle;
	uint64_t next_id;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void list_push(request_list *l, request *r)
{
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static request *list_pop(request_list *l)
{
	request *r = l->head;
	if (!r)
		return NULL;
	l->head = r->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	r->next = NULL;
	return r;
}

/* Unlink r from l; returns 1 if it was there. */
static int list_remove(request_list *l, request *r)
{
	request *prev = NULL;

	for (request *it = l->head; it; prev = it, it = it->next) {
		if (it != r)
			continue;
		if (prev)
			prev->next = it->next;
		else
			l->head = it->next;
		if (l->tail == it)
			l->tail = prev;
		l->n--;
		it->next = NULL;
		return 1;
	}
	return 0;
}

/* The request's inputs are not needed once it has a result. */
static void request_release_inputs(request *r)
{
	sl_free(r->method);
	r->method = NULL;
	sl_free(r->url);
	r->url = NULL;
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	sl_free(r->body);
	r->body = NULL;
}

static void request_free(request *r)
{
	if (!r)
		return;
	request_release_inputs(r);
	sl_http_result_free(&r->result);
	sl_free(r);
}

static void list_free_all(request_list *l)
{
	request *r;
	while ((r = list_pop(l)))
		request_free(r);
}

/* ---------------------------------------------------------------- options */

void sl_http_client_options_init(sl_http_client_options *o)
{
	o->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
	o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	o->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
	o->max_response = DEFAULT_MAX_RESPONSE;
	o->local_addr = NULL;
}

void sl_http_result_init(sl_http_result *r)
{
	r->tag = 0;
	r->rc = SL_OK;
	r->status = 0;
	r->retry_after_s = 0;
	sl_buf_init(&r->body, 0);
	r->error[0] = '\0';
}

uint64_t sl_http_retry_after_ms(const sl_http_result *r, uint64_t floor_ms)
{
	uint64_t s = r->retry_after_s < SL_HTTP_WAIT_MAX_S ? r->retry_after_s : SL_HTTP_WAIT_MAX_S;
	uint64_t ms = s * 1000 > floor_ms ? s * 1000 : floor_ms;
	return ms < SL_HTTP_WAIT_MAX_S * 1000 ? ms : SL_HTTP_WAIT_MAX_S * 1000;
}

void sl_http_result_free(sl_http_result *r)
{
	if (!r)
		return;
	sl_buf_free(&r->body);
	sl_http_result_init(r);
}

/* ------------------------------------------------------------ new / free */

int sl_http_client_new(sl_http_client **out, const sl_http_client_options *o)
{
	sl_http_client *c = NULL;
	CURLMcode mc;
	int rc;

	if (!out)
		return sl_error_set(SL_EINVAL, "http client: NULL output");
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return sl_error_set(SL_EIO, "http client: curl_global_init failed: %s",
		                    curl_easy_strerror(curl_init_rc));
	if (!(c = sl_calloc(1, sizeof(*c)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	/* Zero fields take the defaults: a client without a timeout or a cap
	 * is never what anyone wants. */
	sl_http_client_options_init(&c->opts);
	if (o && o->max_in_flight)
		c->opts.max_in_flight = o->max_in_flight;
	if (o && o->connect_timeout_ms)
		c->opts.connect_timeout_ms = o->connect_timeout_ms;
	if (o && o->request_timeout_ms)
		c->opts.request_timeout_ms = o->request_timeout_ms;
	if (o && o->max_response)
		c->opts.max_response = o->max_response;
	if (o && o->local_addr) {
		if (!(c->local_addr = sl_strdup(o->local_addr))) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		c->opts.local_addr = c->local_addr;
	}
	c->next_id = 1;
	if (!(c->idle = sl_calloc(c->opts.max_in_flight, sizeof(*c->idle)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if (!(c->multi = curl_multi_init())) {
		rc = sl_error_set(SL_ENOMEM, "http client: curl_multi_init failed");
		goto cleanup;
	}
	/* No more connections than requests at once, and keep that many
	 * alive so every running slot can find an idle one. */
	mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	                       (long)c->opts.max_in_flight);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->opts.max_in_flight);
	if (mc != CURLM_OK) {
		rc = sl_error_set(SL_EIO, "http client: configure multi handle: %s",
		                  curl_multi_strerror(mc));
		goto cleanup;
	}
	*out = c;
	c = NULL;
	rc = SL_OK;
cleanup:
	sl_http_client_free(c);
	return rc;
}

void sl_http_client_free(sl_http_client *c)
{
	request *r;

	if (!c)
		return;
	while ((r = list_pop(&c->running))) {
		if (r->easy) {
			curl_multi_remove_handle(c->multi, r->easy);
			curl_easy_cleanup(r->easy);
		}
		request_free(r);
	}
	list_free_all(&c->queued);
	list_free_all(&c->done);
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	sl_free(c->idle);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	sl_free(c->local_addr);
	sl_free(c);
}

size_t sl_http_client_pending(const sl_http_client *c)
{
	if (!c)
		return 0;
	return c->queued.n + c->running.n + c->done.n;
}

/* ---------------------------------------------------------------- submit */

/* An HTTP token (RFC 9110): anything else could split the request line. */
static int method_valid(const char *method)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!*method)
		return 0;
	for (const char *p = method; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		            (ch >= '0' && ch <= '9');
		if (!alnum && !strchr(extra, ch))
			return 0;
	}
	return 1;
}

/* Copy the caller's headers. curl would ask for "100-continue" before a
 * large body and wait a second for it; our servers answer at once, so
 * "Expect:" is sent empty unless the caller set one. */
static int build_headers(struct curl_slist **out, const char *const *headers)
{
	struct curl_slist *list = NULL;
	struct curl_slist *grown;
	int has_expect = 0;
	int rc;

	for (size_t i = 0; headers && headers[i]; i++) {
		if (strpbrk(headers[i], "\r\n") || !strchr(headers[i], ':')) {
			rc = sl_error_set(SL_EINVAL, "http client: malformed header \"%s\"",
			                  headers[i]);
			goto cleanup;
		}
		if (strncasecmp(headers[i], "Expect:", 7) == 0)
			has_expect = 1;
		if (!(grown = curl_slist_append(list, headers[i]))) {
			rc = sl_error_set(SL_ENOMEM, "http client: out of memory copying headers");
			goto cleanup;
		}
		list = grown;
	}
	if (!has_expect) {
		if (!(grown = curl_slist_append(list, "Expect:"))) {
			rc = sl_error_set(SL_ENOMEM, "http client: out of memory copying headers");
			goto cleanup;
		}
		list = grown;
	}
	*out = list;
	list = NULL;
	rc = SL_OK;
cleanup:
	curl_slist_free_all(list);
	return rc;
}

/* Record a failed result. The text is cut at sizeof(error) on purpose: a
 * long URL must not make the message fail. */
static void result_fail(sl_http_result *res, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void result_fail(sl_http_result *res, int code, const char *fmt, ...)
{
	va_list ap;

	res->rc = code;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
}

/* Move r to done with an error that kept it from starting. */
static void fail_before_start(sl_http_client *c, request *r, int code, const char *what)
{
	result_fail(&r->result, code, "cannot start request to %s: %s", r->url, what);
	request_release_inputs(r);
	list_push(&c->done, r);
}

static size_t write_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	request *r = userdata;
	sl_buf *body = &r->result.body;
	size_t n = size * nmemb;

	/* Check the cap here rather than letting sl_buf_append fail, so an
	 * oversized response does not overwrite the thread's error state. */
	if (n > body->max || body->len > body->max - n) {
		r->overflowed = 1;
		return 0;
	}
	if (sl_buf_append(body, data, n) != SL_OK) {
		r->out_of_memory = 1;
		return 0;
	}
	return n;
}

/* Every option of one transfer; the handle was reset, so nothing carries
 * over from the request it ran before. */
static int configure_easy(sl_http_client *c, request *r)
{
	CURL *e = r->easy;
	CURLcode cc = CURLE_OK;
	int rc = SL_EIO; /* until every option is set */

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if ((cc = curl_easy_setopt(e, opt, val)) != CURLE_OK)                              \
			goto cleanup;                                                              \
	} while (0)

	r->errbuf[0] = '\0';
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_PRIVATE, (void *)r);
	SET(CURLOPT_URL, r->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long)c->opts.request_timeout_ms);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_WRITEFUNCTION, write_body);
	SET(CURLOPT_WRITEDATA, (void *)r);
	SET(CURLOPT_HTTPHEADER, r->headers);
	if (c->opts.local_addr)
		SET(CURLOPT_INTERFACE, c->opts.local_addr);
	if (strcmp(r->method, "HEAD") == 0) {
		/* A custom HEAD would wait for a body that never comes. */
		SET(CURLOPT_NOBODY, 1L);
	} else {
		/* Refuse an announced oversized body before reading any of it. */
		SET(CURLOPT_MAXFILESIZE_LARGE, c->opts.max_response > (size_t)INT64_MAX
		                                       ? (curl_off_t)INT64_MAX
		                                       : (curl_off_t)c->opts.max_response);
		if (r->has_body) {
			SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
			SET(CURLOPT_POSTFIELDS, r->body_len ? (const char *)r->body : "");
		} else if (strcmp(r->method, "POST") == 0) {
			SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
			SET(CURLOPT_POSTFIELDS, "");
		} else {
			SET(CURLOPT_HTTPGET, 1L);
		}
		if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, r->method);
		else if (strcmp(r->method, "GET") == 0 && r->has_body)
			SET(CURLOPT_CUSTOMREQUEST, "GET");
	}
#undef SET
	rc = SL_OK;
cleanup:
	if (rc != SL_OK)
		rc = sl_error_set(cc == CURLE_OUT_OF_MEMORY ? SL_ENOMEM : SL_EIO,
		                  "configure transfer: %s", curl_easy_strerror(cc));
	return rc;
}

/* Attach queued requests while fewer than max_in_flight run. A request
 * that cannot start goes to done with its error (invariant 2). */
static void start_queued(sl_http_client *c)
{
	request *r;
	CURLMcode mc;

	while (c->running.n < c->opts.max_in_flight && (r = list_pop(&c->queued))) {
		if (c->n_idle > 0) {
			r->easy = c->idle[--c->n_idle];
			curl_easy_reset(r->easy);
		} else if (!(r->easy = curl_easy_init())) {
			fail_before_start(c, r, SL_ENOMEM, "curl_easy_init failed");
			continue;
		}
		if (configure_easy(c, r) != SL_OK) {
			fail_before_start(c, r, sl_error_last()->code, sl_error_last()->message);
			curl_easy_cleanup(r->easy);
			r->easy = NULL;
			continue;
		}
		if ((mc = curl_multi_add_handle(c->multi, r->easy)) != CURLM_OK) {
			fail_before_start(c, r, mc == CURLM_OUT_OF_MEMORY ? SL_ENOMEM : SL_EIO,
			                  curl_multi_strerror(mc));
			curl_easy_cleanup(r->easy);
			r->easy = NULL;
			continue;
		}
		list_push(&c->running, r);
	}
}

int sl_http_client_submit(sl_http_client *c, const char *method, const char *url,
                          const char *const *headers, const void *body, size_t body_len,
                          uint64_t tag)
{
	request *r = NULL;
	int rc;

	if (!c || !method || !url)
		return sl_error_set(SL_EINVAL, "http client: NULL client, method or url");
	if (!body && body_len > 0)
		return sl_error_set(SL_EINVAL, "http client: NULL body of %zu bytes", body_len);
	if (!method_valid(method))
		return sl_error_set(SL_EINVAL, "http client: invalid method \"%s\"", method);
	if (body_len > (size_t)INT64_MAX)
		return sl_error_set(SL_ETOOLARGE, "http client: body of %zu bytes", body_len);
	if (!(r = sl_calloc(1, sizeof(*r)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	sl_http_result_init(&r->result);
	r->result.tag = tag;
	sl_buf_init(&r->result.body, c->opts.max_response);
	if (!(r->method = sl_strdup(method)) || !(r->url = sl_strdup(url))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = build_headers(&r->headers, headers)) != SL_OK)
		goto cleanup;
	if (body) {
		r->has_body = 1;
		r->body_len = body_len;
		if (body_len > 0) {
			if (!(r->body = sl_malloc(body_len))) {
				rc = SL_ENOMEM;
				goto cleanup;
			}
			memcpy(r->body, body, body_len);
		}
	}
	r->id = c->next_id++;
	list_push(&c->queued, r);
	r = NULL;
	start_queued(c);
	rc = SL_OK;
cleanup:
	request_free(r);
	return rc;
}

/* ------------------------------------------------------------------ poll */

/* Fill r's result from curl's verdict, detach its easy handle and move it
 * from running to done. */
static void finish_request(sl_http_client *c, request *r, CURLcode cc)
{
	sl_http_result *res = &r->result;
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	res->status = status;
	{
		curl_off_t retry_after = 0;
		if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
		    retry_after > 0)
			res->retry_after_s = (uint64_t)retry_after;
	}
	r->curl_rc = cc;
	if (cc == CURLE_OK) {
		res->rc = SL_OK;
	} else if (r->overflowed || cc == CURLE_FILESIZE_EXCEEDED) {
		result_fail(res, SL_ETOOLARGE, "response from %s exceeds the cap of %zu bytes",
		            r->url, c->opts.max_response);
	} else if (r->out_of_memory) {
		result_fail(res, SL_ENOMEM, "out of memory buffering the response from %s", r->url);
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		/* curl reports both deadlines with one code. The connect
		 * timeout can only be the one that passed if it is the shorter,
		 * and then curl gave up nearer to it than to the other. */
		curl_off_t took_us = 0;
		curl_off_t connect_us = (curl_off_t)c->opts.connect_timeout_ms * 1000;
		curl_off_t request_us = (curl_off_t)c->opts.request_timeout_ms * 1000;
		curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &took_us);
		if (connect_us < request_us && took_us < connect_us + (request_us - connect_us) / 2)
			result_fail(res, SL_ETIMEOUT, "no connection to %s within %u ms (%s)",
			            r->url, c->opts.connect_timeout_ms, r->errbuf);
		else
			result_fail(res, SL_ETIMEOUT,
			            "no complete response from %s within %u ms (%s)", r->url,
			            c->opts.request_timeout_ms, r->errbuf);
	} else {
		result_fail(res, SL_EIO, "request to %s failed: %s%s%s%s", r->url,
		            curl_easy_strerror(cc), r->errbuf[0] ? " (" : "", r->errbuf,
		            r->errbuf[0] ? ")" : "");
	}
	/* A partial body is of no use to anyone; give the memory back now. */
	if (res->rc != SL_OK)
		sl_buf_free(&res->body);

	curl_multi_remove_handle(c->multi, r->easy);
	if (c->n_idle < c->opts.max_in_flight)
		c->idle[c->n_idle++] = r->easy;
	else
		curl_easy_cleanup(r->easy);
	r->easy = NULL;
	list_remove(&c->running, r);
	request_release_inputs(r);
	list_push(&c->done, r);
}

static int multi_error(CURLMcode mc, const char *what)
{
	return sl_error_set(mc == CURLM_OUT_OF_MEMORY ? SL_ENOMEM : SL_EIO, "http client: %s: %s",
	                    what, curl_multi_strerror(mc));
}

/* One round without waiting: start what may start, let curl move every
 * transfer along, collect the finished ones and fill their slots. */
static int drive(sl_http_client *c)
{
	CURLMsg *msg;
	CURLMcode mc;
	int still_running;
	int msgs_left;
	int rc;

	start_queued(c);
	if (c->running.n == 0) {
		rc = SL_OK;
		goto cleanup;
	}
	if ((mc = curl_multi_perform(c->multi, &still_running)) != CURLM_OK) {
		rc = multi_error(mc, "curl_multi_perform");
		goto cleanup;
	}
	while ((msg = curl_multi_info_read(c->multi, &msgs_left))) {
		char *priv = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (!priv) {
			rc = sl_error_set(SL_EINTERNAL, "http client: a finished transfer has "
			                                "no request");
			goto cleanup;
		}
		finish_request(c, (request *)priv, msg->data.result);
	}
	start_queued(c);
	rc = SL_OK;
cleanup:
	return rc;
}

/* The first done request with this id (0: any), unlinked, or NULL. */
static request *take_done(sl_http_client *c, uint64_t id)
{
	for (request *r = c->done.head; r; r = r->next) {
		if (id == 0 || r->id == id) {
			list_remove(&c->done, r);
			return r;
		}
	}
	return NULL;
}

/* Drive transfers until a request with this id (0: any) is done or
 * deadline_ns passes. *out is the request or NULL on timeout. */
static int wait_for(sl_http_client *c, uint64_t id, uint64_t deadline_ns, request **out)
{
	request *found = NULL;
	CURLMcode mc;
	uint64_t now;
	int rc;

	for (;;) {
		if ((found = take_done(c, id)))
			break;
		if ((rc = drive(c)) != SL_OK)
			goto cleanup;
		if ((found = take_done(c, id)))
			break;
		/* Nothing queued or running: nothing could finish by waiting. */
		if (c->running.n == 0 && c->queued.n == 0)
			break;
		now = sl_clock_mono_ns();
		if (now >= deadline_ns)
			break;
		uint64_t left_ms = (deadline_ns - now + 999999) / 1000000;
		int wait_ms = left_ms > WAIT_SLICE_MS ? WAIT_SLICE_MS : (int)left_ms;
		if ((mc = curl_multi_poll(c->multi, NULL, 0, wait_ms, NULL)) != CURLM_OK) {
			rc = multi_error(mc, "curl_multi_poll");
			goto cleanup;
		}
	}
	*out = found;
	rc = SL_OK;
cleanup:
	return rc;
}

/* Hand r's result to the caller and free the rest of it. */
static void deliver(request *r, sl_http_result *out)
{
	*out = r->result;
	sl_http_result_init(&r->result);
	request_free(r);
}

int sl_http_client_poll(sl_http_client *c, int timeout_ms, sl_http_result *out)
{
	request *r = NULL;
	uint64_t deadline_ns;
	int rc;

	if (!c || !out)
		return sl_error_set(SL_EINVAL, "http client: NULL client or result");
	/* A negative timeout is taken as 0: every call here is bounded. */
	deadline_ns = sl_clock_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	if ((rc = wait_for(c, 0, deadline_ns, &r)) != SL_OK)
		goto cleanup;
	if (!r) {
		rc = 0;
		goto cleanup;
	}
	deliver(r, out);
	rc = 1;
cleanup:
	return rc;
}

/* Drop request `id` wherever it is, for a fetch that gives up on it. */
static void abandon(sl_http_client *c, uint64_t id)
{
	request_list *lists[] = {&c->queued, &c->running, &c->done};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		for (request *r = lists[i]->head; r; r = r->next) {
			if (r->id != id)
				continue;
			list_remove(lists[i], r);
			if (r->easy) {
				curl_multi_remove_handle(c->multi, r->easy);
				curl_easy_cleanup(r->easy);
			}
			request_free(r);
			return;
		}
	}
}

int sl_http_client_fetch(sl_http_client *c, const char *method, const char *url,
                         const char *const *headers, const void *body, size_t body_len,
                         sl_http_result *out)
{
	request *r = NULL;
	uint64_t id;
	int rc;

	if (!out)
		return sl_error_set(SL_EINVAL, "http client: NULL result");
	/* Filled in every case, so the caller can always read and free it. */
	sl_http_result_init(out);
	if (!c) {
		rc = sl_error_set(SL_EINVAL, "http client: NULL client");
		goto cleanup;
	}
	id = c->next_id;
	if ((rc = sl_http_client_submit(c, method, url, headers, body, body_len, 0)) != SL_OK)
		goto cleanup;
	/* No deadline of our own: the request has its timeouts, and so has
	 * every request queued before it. */
	if ((rc = wait_for(c, id, UINT64_MAX, &r)) != SL_OK) {
		abandon(c, id);
		goto cleanup;
	}
	if (!r) {
		rc = sl_error_set(SL_EINTERNAL, "http client: request %" PRIu64 " vanished", id);
		goto cleanup;
	}
	rc = r->result.rc;
	if (rc != SL_OK) {
		char cause[64];
		snprintf(cause, sizeof(cause), "curl rc=%d (%s)", (int)r->curl_rc,
		         curl_easy_strerror(r->curl_rc));
		sl_error_set_cause(rc, cause, "%s", r->result.error);
	}
	deliver(r, out);
cleanup:
	/* A failure of the client itself, not of the request: say so in out. */
	if (rc != SL_OK && out->error[0] == '\0') {
		result_fail(out, rc, "%s", sl_error_last()->message);
	}
	return rc;
}
