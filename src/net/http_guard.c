/*
 * Per-client limits of the HTTP server, so that one client (one address)
 * cannot starve the others, and slow clients cannot hold connections.
 *
 * A client is a peer address. For each, under one lock:
 *   - its open connections: a connection past max_client_connections is
 *     refused at accept (libmicrohttpd closes it at once);
 *   - a token bucket of `burst` tokens refilled at `rate` per second. A
 *     request takes one token when its head is in, and is answered 429
 *     with Retry-After if the bucket has less than one; when it is over,
 *     what it cost beyond that is taken too (by the size of its bodies and
 *     what the handler adds for work its bytes do not show), so the
 *     bucket may go below zero and the client waits longer;
 *   - its requests in service (from the head until the handler returns):
 *     at most max_client_requests at once. Another request waits in the
 *     client's queue, its connection suspended (it holds no thread), and
 *     is resumed when one of the client's requests is done. So however
 *     many connections one client opens, it keeps at most that many of
 *     the server's threads busy, and every other client finds the rest;
 *     a client alone only queues behind itself. A long poll (a handler
 *     answering "not yet", http_wait.c) gives its slot back while it
 *     waits and takes one again, in turn, when it is handled again, so a
 *     client's long polls never starve its other requests.
 * For each connection, a phase and the time it began:
 *   NEW      accepted, no complete head yet: cut after header_timeout;
 *   HEAD     a request line arrived on a kept-alive connection: the rest
 *            of the head within header_timeout;
 *   BODY     the head is in: once body_grace has passed, the body must
 *            have arrived at min_body_rate on average, or it is cut;
 *   WAIT     suspended in the client's queue (no deadline: it is resumed
 *            when the client's earlier requests are done);
 *   POLL     suspended in a long poll, holding no slot (no deadline here:
 *            the wait has its own, at most what the handler asked);
 *   RESPOND  the handler runs and the answer is sent (libmicrohttpd's own
 *            idle timeout covers a client that stops reading);
 *   IDLE     kept alive between requests: cut after the idle timeout,
 *            however slowly the next request line trickles in.
 * A sweeper thread checks every connection four times a second and cuts
 * one that is late with shutdown(2); libmicrohttpd then closes it. This
 * is safe against a reused descriptor because libmicrohttpd tells us a
 * connection closed (http_guard_closed, under the lock) before it closes
 * the socket. No connection holds a thread while it waits: the server's
 * threads serve sockets as they become ready.
 *
 * Every refusal and cut is counted in the metrics, and logged once per
 * client and kind, while the client is known; a client with no
 * connection is forgotten once its bucket is full again (at the sweep).
 */
#include "net/http_guard.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define SWEEP_MS    250
#define CLIENTS_MAX 65536 /* known clients; past it, idle ones are forgotten */
#define DRAIN_MS    5000  /* the longest wait for resumed connections at stop */

enum phase { PHASE_NEW, PHASE_HEAD, PHASE_BODY, PHASE_WAIT, PHASE_POLL, PHASE_RESPOND, PHASE_IDLE };

enum logged {
	LOGGED_CONNECTIONS = 1,
	LOGGED_RATE = 2,
	LOGGED_HEADER = 4,
	LOGGED_SLOW_BODY = 8,
	LOGGED_IDLE = 16
};

struct conn;

typedef struct client {
	struct client *next; /* hash chain */
	uint32_t addr;       /* IPv4, host order */
	unsigned connections;
	unsigned in_service;                /* requests between head and handler done */
	struct conn *wait_head, *wait_tail; /* suspended, in arrival order */
	double tokens;
	uint64_t refilled_ns;
	unsigned logged;
} client;

typedef struct conn {
	struct conn *prev, *next;
	struct conn *wait_next;
	client *c;
	struct MHD_Connection *mhd;
	int fd;
	int cut;        /* shut down already */
	int charged;    /* this request paid its token */
	int in_service; /* this request holds one of its client's slots */
	enum phase phase;
	uint64_t since_ns;
	uint64_t body_bytes;
} conn;

struct http_guard {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_t sweeper;
	int sweeper_running, stopping;
	unsigned max_per_client, max_requests;
	int draining;
	double rate, burst;
	uint64_t header_ns, idle_ns, grace_ns;
	double min_body_rate;
	client **buckets; /* hash table of clients */
	size_t n_buckets, n_clients;
	conn *conns; /* every open connection */
	sl_metric *refused, *throttled, *waited, *header_cuts, *slow_cuts, *idle_cuts,
	        *clients_gauge;
};

/* --------------------------------------------------------------- clients */

static uint32_t addr_of(const struct sockaddr *sa)
{
	if (sa && sa->sa_family == AF_INET)
		return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	return 0; /* the server binds IPv4 only */
}

/* Fibonacci hashing: the high bits of the product depend on every bit
 * of the address (the low bits, which % would keep, only on the low). */
static size_t slot_of(const http_guard *g, uint32_t addr)
{
	uint32_t h = addr * UINT32_C(2654435761);
	return (size_t)(((uint64_t)h * g->n_buckets) >> 32);
}

static void addr_text(char out[16], uint32_t addr)
{
	snprintf(out, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
	         addr & 0xff);
}

/* Add what `rate` gave since the last refill, up to `burst`. */
static void refill(const http_guard *g, client *c, uint64_t now)
{
	if (g->rate > 0 && now > c->refilled_ns) {
		c->tokens += (double)(now - c->refilled_ns) / 1e9 * g->rate;
		if (c->tokens > g->burst)
			c->tokens = g->burst;
	}
	c->refilled_ns = now;
}

/* Forget clients with no connection whose bucket is full again; all of
 * them when `all` (the table is full). */
static void forget_idle(http_guard *g, uint64_t now, int all)
{
	for (size_t i = 0; i < g->n_buckets; i++) {
		client **p = &g->buckets[i];
		while (*p) {
			client *c = *p;
			refill(g, c, now);
			if (c->connections == 0 && c->in_service == 0 && !c->wait_head &&
			    (all || g->rate <= 0 || c->tokens >= g->burst)) {
				*p = c->next;
				sl_free(c);
				g->n_clients--;
			} else {
				p = &c->next;
			}
		}
	}
	sl_metric_set(g->clients_gauge, (double)g->n_clients);
}

/* The client of addr, made if new; NULL only when out of memory. */
static client *client_get(http_guard *g, uint32_t addr, uint64_t now)
{
	size_t slot = slot_of(g, addr);
	client *c;
	for (c = g->buckets[slot]; c; c = c->next)
		if (c->addr == addr)
			return c;
	if (g->n_clients >= CLIENTS_MAX)
		forget_idle(g, now, 1);
	if (!(c = sl_calloc(1, sizeof(*c))))
		return NULL;
	c->addr = addr;
	c->tokens = g->burst;
	c->refilled_ns = now;
	c->next = g->buckets[slot];
	g->buckets[slot] = c;
	g->n_clients++;
	sl_metric_set(g->clients_gauge, (double)g->n_clients);
	return c;
}

/* Log a refusal or cut of c's once while c is known. */
static void log_once(client *c, unsigned kind, const char *msg, const char *detail)
{
	char addr[16];
	if (c->logged & kind)
		return;
	c->logged |= kind;
	addr_text(addr, c->addr);
	sl_log(SL_LOG_WARN, msg, "client=%s %s (logged once per client)", addr, detail);
}

/* ------------------------------------------------------- requests in service */

static void unqueue(client *c, conn *k)
{
	for (conn **p = &c->wait_head; *p; p = &(*p)->wait_next) {
		if (*p == k) {
			*p = k->wait_next;
			if (c->wait_tail == k) {
				c->wait_tail = NULL;
				for (conn *w = c->wait_head; w; w = w->wait_next)
					c->wait_tail = w;
			}
			k->wait_next = NULL;
			return;
		}
	}
}

/* Under the lock: the client's first waiting request takes a slot and its
 * connection is resumed. 0 if none was waiting. */
static int resume_next(client *c)
{
	conn *w = c->wait_head;
	if (!w)
		return 0;
	c->wait_head = w->wait_next;
	if (!c->wait_head)
		c->wait_tail = NULL;
	w->wait_next = NULL;
	w->in_service = 1;
	c->in_service++;
	MHD_resume_connection(w->mhd);
	return 1;
}

/* Under the lock: k's request leaves service and gives its slot on. */
static void release(conn *k)
{
	if (!k->in_service || !k->c)
		return;
	k->in_service = 0;
	k->c->in_service--;
	resume_next(k->c);
}

/* ------------------------------------------------------------------- hooks */

int http_guard_accept(http_guard *g, const struct sockaddr *addr)
{
	uint64_t now = sl_clock_mono_ns();
	char detail[80];
	client *c;
	int ok = 1;

	pthread_mutex_lock(&g->mu);
	c = client_get(g, addr_of(addr), now);
	if (!c) {
		ok = 0; /* out of memory: take no more */
	} else if (g->max_per_client && c->connections >= g->max_per_client) {
		ok = 0;
		sl_metric_add(g->refused, 1);
		snprintf(detail, sizeof(detail), "connections=%u limit=%u", c->connections,
		         g->max_per_client);
		log_once(c, LOGGED_CONNECTIONS, "refused a connection: the client holds its share",
		         detail);
	}
	pthread_mutex_unlock(&g->mu);
	return ok;
}

void http_guard_opened(http_guard *g, void *mhd, int fd, const struct sockaddr *addr, void **ctx)
{
	uint64_t now = sl_clock_mono_ns();
	conn *k = sl_calloc(1, sizeof(*k));

	*ctx = k;
	if (!k)
		return; /* untracked: the server's own timeout still applies */
	k->mhd = mhd;
	k->fd = fd;
	k->phase = PHASE_NEW;
	k->since_ns = now;
	pthread_mutex_lock(&g->mu);
	k->c = client_get(g, addr_of(addr), now);
	if (k->c)
		k->c->connections++;
	k->next = g->conns;
	if (g->conns)
		g->conns->prev = k;
	g->conns = k;
	pthread_mutex_unlock(&g->mu);
}

void http_guard_closed(http_guard *g, void **ctx)
{
	conn *k = *ctx;
	if (!k)
		return;
	pthread_mutex_lock(&g->mu);
	if (k->c) {
		unqueue(k->c, k);
		release(k);
		if (k->c->connections > 0)
			k->c->connections--;
	}
	if (k->prev)
		k->prev->next = k->next;
	else
		g->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&g->mu);
	sl_free(k);
	*ctx = NULL;
}

static void enter(http_guard *g, conn *k, enum phase phase)
{
	pthread_mutex_lock(&g->mu);
	/* A head on a fresh connection is timed from the accept. */
	if (!(phase == PHASE_HEAD && k->phase == PHASE_NEW)) {
		k->phase = phase;
		k->since_ns = sl_clock_mono_ns();
	}
	k->body_bytes = 0;
	pthread_mutex_unlock(&g->mu);
}

void http_guard_request_line(http_guard *g, void *ctx)
{
	if (ctx)
		enter(g, ctx, PHASE_HEAD);
}

int http_guard_request_start(http_guard *g, void *ctx, unsigned *retry_after_s)
{
	conn *k = ctx;
	char detail[80];
	int verdict = GUARD_GO;

	if (!k)
		return GUARD_GO;
	pthread_mutex_lock(&g->mu);
	if (k->phase == PHASE_WAIT) {
		/* Resumed: the slot was given to it by release(). */
		k->phase = PHASE_BODY;
		k->since_ns = sl_clock_mono_ns();
		k->body_bytes = 0;
		pthread_mutex_unlock(&g->mu);
		return GUARD_GO;
	}
	k->phase = PHASE_BODY;
	k->since_ns = sl_clock_mono_ns();
	k->body_bytes = 0;
	if (g->rate > 0 && k->c && !k->charged) {
		refill(g, k->c, k->since_ns);
		if (k->c->tokens >= 1) {
			k->c->tokens -= 1;
			k->charged = 1;
		} else {
			double need = 1 - k->c->tokens;
			*retry_after_s = (unsigned)(need / g->rate) + 1;
			verdict = GUARD_THROTTLE;
			sl_metric_add(g->throttled, 1);
			snprintf(detail, sizeof(detail), "rate=%.0f/s burst=%.0f retry_after_s=%u",
			         g->rate, g->burst, *retry_after_s);
			log_once(k->c, LOGGED_RATE,
			         "answered 429: the client is over its request rate", detail);
		}
	}
	if (verdict == GUARD_GO && k->c && !k->in_service) {
		if (g->draining || !g->max_requests || k->c->in_service < g->max_requests) {
			k->in_service = 1;
			k->c->in_service++;
		} else {
			k->phase = PHASE_WAIT;
			if (k->c->wait_tail)
				k->c->wait_tail->wait_next = k;
			else
				k->c->wait_head = k;
			k->c->wait_tail = k;
			sl_metric_add(g->waited, 1);
			/* Under the lock, so release() cannot resume it before it
			 * is suspended. */
			MHD_suspend_connection(k->mhd);
			verdict = GUARD_WAIT;
		}
	}
	pthread_mutex_unlock(&g->mu);
	return verdict;
}

void http_guard_handler_done(http_guard *g, void *ctx)
{
	conn *k = ctx;
	if (!k)
		return;
	pthread_mutex_lock(&g->mu);
	release(k);
	k->phase = PHASE_RESPOND;
	k->since_ns = sl_clock_mono_ns();
	pthread_mutex_unlock(&g->mu);
}

void http_guard_handler_wait(http_guard *g, void *ctx)
{
	conn *k = ctx;
	if (!k)
		return;
	pthread_mutex_lock(&g->mu);
	release(k);
	k->phase = PHASE_POLL;
	k->since_ns = sl_clock_mono_ns();
	pthread_mutex_unlock(&g->mu);
}

void http_guard_drain(http_guard *g)
{
	uint64_t until = sl_clock_mono_ns() + (uint64_t)DRAIN_MS * 1000000;
	int waiting;

	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->draining = 1;
	for (size_t i = 0; i < g->n_buckets; i++)
		for (client *c = g->buckets[i]; c; c = c->next)
			while (resume_next(c))
				;
	for (;;) {
		waiting = 0;
		for (conn *k = g->conns; k; k = k->next)
			waiting += k->phase == PHASE_WAIT;
		if (!waiting || sl_clock_mono_ns() > until)
			break;
		pthread_mutex_unlock(&g->mu);
		sl_sleep_ms(5);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	if (waiting)
		sl_log(SL_LOG_WARN, "connections still suspended at stop", "n=%d", waiting);
}

/* Whether a body in progress is behind the minimum rate. */
static int too_slow(const http_guard *g, const conn *k, uint64_t now)
{
	uint64_t elapsed = now - k->since_ns;
	if (k->phase != PHASE_BODY || g->min_body_rate <= 0 || elapsed <= g->grace_ns)
		return 0;
	return (double)k->body_bytes < g->min_body_rate * (double)elapsed / 1e9;
}

static void note_slow(http_guard *g, conn *k)
{
	char detail[80];
	sl_metric_add(g->slow_cuts, 1);
	snprintf(detail, sizeof(detail), "bytes=%llu min_rate=%.0f/s",
	         (unsigned long long)k->body_bytes, g->min_body_rate);
	if (k->c)
		log_once(k->c, LOGGED_SLOW_BODY, "cut a connection: its body is too slow", detail);
}

int http_guard_body(http_guard *g, void *ctx, size_t n)
{
	conn *k = ctx;
	int slow;
	if (!k)
		return 0;
	pthread_mutex_lock(&g->mu);
	k->body_bytes += n;
	slow = !k->cut && too_slow(g, k, sl_clock_mono_ns());
	if (slow) {
		k->cut = 1;
		note_slow(g, k);
	}
	pthread_mutex_unlock(&g->mu);
	return slow ? -1 : 0;
}

void http_guard_body_done(http_guard *g, void *ctx)
{
	if (ctx)
		enter(g, ctx, PHASE_RESPOND);
}

void http_guard_request_done(http_guard *g, void *ctx, double cost)
{
	conn *k = ctx;
	if (!k)
		return;
	pthread_mutex_lock(&g->mu);
	if (k->c) {
		unqueue(k->c, k);
		release(k); /* a request that never reached its handler */
		if (g->rate > 0 && cost > 0) {
			refill(g, k->c, sl_clock_mono_ns());
			k->c->tokens -= cost;
		}
	}
	k->charged = 0;
	k->phase = PHASE_IDLE;
	k->since_ns = sl_clock_mono_ns();
	k->body_bytes = 0;
	pthread_mutex_unlock(&g->mu);
}

/* ---------------------------------------------------------------- sweeper */

/* Cut k if it is late; under the lock. */
static void sweep_one(http_guard *g, conn *k, uint64_t now)
{
	uint64_t age = now - k->since_ns;
	char detail[80];

	if (k->cut)
		return;
	if ((k->phase == PHASE_NEW || k->phase == PHASE_HEAD) && age > g->header_ns) {
		sl_metric_add(g->header_cuts, 1);
		snprintf(detail, sizeof(detail), "timeout_s=%llu",
		         (unsigned long long)(g->header_ns / 1000000000));
		if (k->c)
			log_once(k->c, LOGGED_HEADER,
			         "cut a connection: no complete request head in time", detail);
	} else if (k->phase == PHASE_IDLE && age > g->idle_ns) {
		sl_metric_add(g->idle_cuts, 1);
	} else if (too_slow(g, k, now)) {
		note_slow(g, k);
	} else {
		return;
	}
	k->cut = 1;
	shutdown(k->fd, SHUT_RDWR);
}

static void *sweeper_main(void *arg)
{
	http_guard *g = arg;
	unsigned round = 0;

	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		uint64_t now = sl_clock_mono_ns();
		for (conn *k = g->conns; k; k = k->next)
			sweep_one(g, k, now);
		if (++round % 16 == 0) /* every 4 s */
			forget_idle(g, now, 0);
		sl_cond_wait_ms(&g->wake, &g->mu, SWEEP_MS);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* -------------------------------------------------------------- lifecycle */

static int register_metrics(http_guard *g, sl_metrics *m)
{
	if (!m)
		return SL_OK;
	if (!(g->refused = sl_metrics_counter(m, "sluice_http_refused_connections_total", NULL,
	                                      "connections refused: the client held its share")) ||
	    !(g->throttled = sl_metrics_counter(m, "sluice_http_throttled_requests_total", NULL,
	                                        "requests answered 429: the client was over its "
	                                        "rate")) ||
	    !(g->waited = sl_metrics_counter(m, "sluice_http_queued_requests_total", NULL,
	                                     "requests that waited: the client had its share "
	                                     "of requests in service")) ||
	    !(g->header_cuts = sl_metrics_counter(m, "sluice_http_header_timeouts_total", NULL,
	                                          "connections cut: no complete request head "
	                                          "within the header timeout")) ||
	    !(g->slow_cuts = sl_metrics_counter(m, "sluice_http_slow_bodies_total", NULL,
	                                        "connections cut: a request body below the "
	                                        "minimum rate")) ||
	    !(g->idle_cuts = sl_metrics_counter(m, "sluice_http_idle_closed_total", NULL,
	                                        "kept-alive connections closed after the idle "
	                                        "timeout")) ||
	    !(g->clients_gauge = sl_metrics_gauge(m, "sluice_http_clients", NULL,
	                                          "client addresses the server keeps limits for")))
		return SL_ENOMEM;
	return SL_OK;
}

int http_guard_new(http_guard **out, const sl_http_server_options *o)
{
	http_guard *g = sl_calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return SL_ENOMEM;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->wake, NULL);
	g->max_per_client = o->limits.max_client_connections;
	g->max_requests = o->limits.max_client_requests ? o->limits.max_client_requests
	                                                : (o->threads > 1 ? o->threads / 2 : 1);
	g->rate = o->limits.client_rate;
	g->burst = o->limits.client_burst > 0 ? o->limits.client_burst : 2 * o->limits.client_rate;
	g->header_ns = (uint64_t)o->limits.header_timeout_s * 1000000000u;
	g->idle_ns = (uint64_t)o->timeout_s * 1000000000u;
	g->grace_ns = (uint64_t)o->limits.body_grace_s * 1000000000u;
	g->min_body_rate = (double)o->limits.min_body_rate;
	g->n_buckets = 4096;
	if (!(g->buckets = sl_calloc(g->n_buckets, sizeof(*g->buckets)))) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if ((rc = register_metrics(g, o->metrics)) != SL_OK)
		goto fail;
	if (pthread_create(&g->sweeper, NULL, sweeper_main, g) != 0) {
		rc = sl_error_set(SL_EIO, "http server: cannot start the connection sweeper");
		goto fail;
	}
	g->sweeper_running = 1;
	*out = g;
	return SL_OK;
fail:
	http_guard_free(g);
	return rc;
}

void http_guard_free(http_guard *g)
{
	if (!g)
		return;
	if (g->sweeper_running) {
		pthread_mutex_lock(&g->mu);
		g->stopping = 1;
		pthread_cond_signal(&g->wake);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->sweeper, NULL);
	}
	while (g->conns) { /* only if the server was not stopped first */
		conn *k = g->conns;
		g->conns = k->next;
		sl_free(k);
	}
	for (size_t i = 0; g->buckets && i < g->n_buckets; i++)
		while (g->buckets[i]) {
			client *c = g->buckets[i];
			g->buckets[i] = c->next;
			sl_free(c);
		}
	sl_free(g->buckets);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->mu);
	sl_free(g);
}
