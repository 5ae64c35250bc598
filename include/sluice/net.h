/*
 * sluice net layer: the HTTP server (libmicrohttpd), the HTTP client
 * (libcurl multi), Prometheus metrics and the binary wire codec of the
 * sync protocol (docs/protocol.md, "Sync wire format").
 *
 * Everything here is bounded: request and response bodies have caps
 * (SL_ETOOLARGE / HTTP 413 past them), every client request has a
 * timeout, and an idle or stalled server connection is closed.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include "sluice/base.h"
#include "sluice/mmr.h"
#include "sluice/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ HTTP server */

typedef struct sl_metrics sl_metrics; /* below */

/* A request as handed to a handler; every pointer is borrowed for the
 * duration of the call. */
typedef struct sl_http_request {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* URL path without the query, e.g. "/api/v0/info" */
	const uint8_t *body;
	size_t body_len;
	/* 1 when the handler may answer "not yet" (sl_http_response.wait_ms);
	 * 0 when this call must answer: the request's wait is over, or the
	 * server is stopping. */
	int may_wait;
	void *impl; /* private: the connection */
} sl_http_request;

/* The query parameter `name` (percent-decoded), or NULL if absent. */
const char *sl_http_request_query(const sl_http_request *r, const char *name);
/* The request header `name` (case-insensitive), or NULL if absent. */
const char *sl_http_request_header(const sl_http_request *r, const char *name);
/* 1 when the request carries `Authorization: Bearer <token>`, compared in
 * constant time in the token's bytes (it cannot be guessed byte by byte
 * from response times). */
int sl_http_request_bearer_ok(const sl_http_request *r, const char *token);

/* Filled by the handler. The server sends `body` with `status` and
 * `content_type` (default "application/json") and frees the body. */
typedef struct sl_http_response {
	int status; /* default 200 */
	const char *content_type;
	sl_buf body; /* capped at the server's max_response */
	/* Tokens of the client's rate to charge beyond what the request's
	 * bodies cost (docs/protocol.md, "Limits"): work its bytes do not
	 * show. Default 0. */
	double cost;
	unsigned retry_after_s; /* > 0: sent as Retry-After */
	/* One more header when header_name is not empty, e.g.
	 * "Sluice-Version: 12" */
	char header_name[32];
	char header_value[96];
	/* A long poll: > 0 (with req->may_wait) answers "not yet". The rest of
	 * the response is dropped, the request is held without a thread, and
	 * the handler is called again for the same request (the same method,
	 * path, query, headers and body) when sl_http_server_wake is called or
	 * once wait_ms have passed since the request first waited, whichever
	 * comes first; on that last call may_wait is 0 and the handler must
	 * answer. A wake that comes while the handler runs is not lost: if the
	 * handler then asks to wait, it is called again at once. Default 0. */
	uint32_t wait_ms;
} sl_http_response;

/* Set a JSON error response {"error": code, "message": "..."} (DESIGN.md,
 * "Wire protocol"), replacing whatever the handler wrote. The status is
 * always set: when the body cannot be built (SL_ENOMEM, or SL_ETOOLARGE
 * past the body's cap) it is left empty and the status alone is sent,
 * never a 200 with a half-written body. */
int sl_http_response_error(sl_http_response *r, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Called from the server's worker threads, possibly several at once. */
typedef void (*sl_http_handler)(void *ctx, const sl_http_request *req, sl_http_response *resp);

/* What one client (one peer address) may take of a server, so that it
 * cannot starve the others (docs/cli.md, "Limits"). */
typedef struct sl_http_limits {
	unsigned max_client_connections; /* open connections; past it a new one is
	                                    refused. Default 64 (a quarter of 256) */
	unsigned max_client_requests;    /* requests in service at once; more wait
	                                    their turn, holding no thread. Default 0:
	                                    half the server's threads (at least 1) */
	double client_rate;              /* request tokens per second, default 20000;
	                                    0: no rate limit. Past it: 429 */
	double client_burst;             /* the bucket, default 2 x client_rate */
	unsigned header_timeout_s;       /* a request head must be complete within
	                                    this, default 10 */
	size_t min_body_rate;            /* bytes per second a body must average once
	                                    body_grace_s passed, default 1024; 0: none */
	unsigned body_grace_s;           /* default 10 */
} sl_http_limits;

void sl_http_limits_init(sl_http_limits *l);

typedef struct sl_http_server_options {
	const char *listen_addr;  /* IPv4 address to bind; default "127.0.0.1" */
	uint16_t port;            /* 0: the kernel picks a free port */
	unsigned threads;         /* worker threads, default 4 */
	size_t max_request;       /* request body cap (413 past it), default 64 MiB */
	size_t max_response;      /* response body cap, default 256 MiB */
	unsigned timeout_s;       /* idle / stalled connection timeout, default 30 */
	unsigned max_connections; /* default 256 */
	sl_http_limits limits;    /* per client */
	sl_metrics *metrics;      /* counts refusals, cuts and waiting requests;
	                             may be NULL */
	/* Called with the handler's ctx and the number of requests waiting
	 * (sl_http_response.wait_ms) whenever that number changes, under the
	 * server's lock: it must return at once and call nothing of the
	 * server's. May be NULL. */
	void (*on_waiting)(void *ctx, size_t n_waiting);
} sl_http_server_options;

void sl_http_server_options_init(sl_http_server_options *o);

typedef struct sl_http_server sl_http_server;

/* Starts listening and serving in background threads. A request whose
 * body passes max_request gets 413 with a JSON error and the handler is
 * not called; malformed HTTP gets 400. */
int sl_http_server_start(sl_http_server **out, const sl_http_server_options *o,
                         sl_http_handler handler, void *ctx);
uint16_t sl_http_server_port(const sl_http_server *s); /* the bound port */
/* Stops accepting, waits for handlers in flight, frees. Requests that
 * wait are called again at once with may_wait 0 and answered first. NULL
 * ok. */
void sl_http_server_stop(sl_http_server *s);
/* Calls the handler again for every waiting request (so it checks whether
 * what it waits for happened), and again for a request whose handler is
 * running now if it then asks to wait. From any thread, any time before
 * stop, even from a handler. */
void sl_http_server_wake(sl_http_server *s);
/* Requests waiting now (suspended after answering "not yet"). */
size_t sl_http_server_waiting(const sl_http_server *s);

/* ------------------------------------------------------------ HTTP client */

typedef struct sl_http_client_options {
	unsigned max_in_flight;      /* requests at once, default 4 */
	unsigned connect_timeout_ms; /* default 5000 */
	unsigned request_timeout_ms; /* whole request, default 30000 */
	size_t max_response;         /* response body cap, default 256 MiB */
	const char *local_addr;      /* send from this local address; NULL: any */
} sl_http_client_options;

void sl_http_client_options_init(sl_http_client_options *o);

/* One libcurl multi handle with kept-alive connections. Used by one thread. */
typedef struct sl_http_client sl_http_client;

int sl_http_client_new(sl_http_client **out, const sl_http_client_options *o);
void sl_http_client_free(sl_http_client *c); /* aborts requests in flight; NULL ok */

/* The outcome of one request. rc is SL_OK when a complete response
 * arrived (whatever its status); otherwise SL_ETIMEOUT, SL_EIO (connect
 * refused, reset, malformed HTTP) or SL_ETOOLARGE, with `error` saying
 * what happened in words. */
typedef struct sl_http_result {
	uint64_t tag;
	int rc;
	long status;
	uint64_t retry_after_s; /* the answer's Retry-After in seconds, 0 if none */
	sl_buf body;
	char error[256];
} sl_http_result;

void sl_http_result_init(sl_http_result *r);

/* How long to wait after a 429: the answer's Retry-After, at least
 * floor_ms, and at most SL_HTTP_WAIT_MAX_S, so that no server can park a
 * client for longer (every client of sluice waits through this). */
#define SL_HTTP_WAIT_MAX_S 60
uint64_t sl_http_retry_after_ms(const sl_http_result *r, uint64_t floor_ms);
void sl_http_result_free(sl_http_result *r);

/* Queue a request. headers: NULL or a NULL-terminated array of
 * "Name: value" strings; url, headers and body are copied. The request
 * starts at once if fewer than max_in_flight are running, else when one
 * finishes. tag is returned with the result. */
int sl_http_client_submit(sl_http_client *c, const char *method, const char *url,
                          const char *const *headers, const void *body, size_t body_len,
                          uint64_t tag);
/* Drive transfers for up to timeout_ms; returns 1 with *out filled (the
 * caller frees it) when a request has finished, 0 if none finished in
 * time, or a negative SL_E* code if the client itself failed. */
int sl_http_client_poll(sl_http_client *c, int timeout_ms, sl_http_result *out);
/* Requests queued or running, not yet returned by poll. */
size_t sl_http_client_pending(const sl_http_client *c);
/* Submit one request and wait for it (other requests keep running and
 * their results stay queued for poll). Returns the result's rc. */
int sl_http_client_fetch(sl_http_client *c, const char *method, const char *url,
                         const char *const *headers, const void *body, size_t body_len,
                         sl_http_result *out);

/* ---------------------------------------------------------------- metrics */

/* Counters, gauges and histograms rendered in the Prometheus text format.
 * Updates are atomic and may come from any thread. */
typedef struct sl_metrics sl_metrics;
typedef struct sl_metric sl_metric;

/* Most bucket bounds of one histogram. */
#define SL_METRICS_MAX_BOUNDS 64

int sl_metrics_new(sl_metrics **out);
void sl_metrics_free(sl_metrics *m); /* NULL ok */
/* Register a metric; the same name and labels twice returns the same
 * metric. labels: NULL or the text between braces, e.g. "endpoint=\"ops\"".
 * Returns NULL when out of memory, or (SL_EINVAL) when the name is a
 * histogram's and the call is not for one, or the other way round. */
sl_metric *sl_metrics_counter(sl_metrics *m, const char *name, const char *labels,
                              const char *help);
sl_metric *sl_metrics_gauge(sl_metrics *m, const char *name, const char *labels, const char *help);
/* A histogram: bounds are the buckets' upper bounds (inclusive, finite,
 * increasing, at most SL_METRICS_MAX_BOUNDS; +Inf is always added), fixed
 * for the name by its first registration, as its help is. Rendered as
 * name_bucket{...,le="B"} (cumulative, then le="+Inf"), name_sum and
 * name_count. NULL also for bounds that are not so (SL_EINVAL,
 * SL_ETOOLARGE). */
sl_metric *sl_metrics_histogram(sl_metrics *m, const char *name, const char *labels,
                                const char *help, const double *bounds, size_t n_bounds);
void sl_metric_add(sl_metric *c, uint64_t n);   /* counter; NULL ok (no-op) */
void sl_metric_set(sl_metric *g, double v);     /* gauge; NULL ok (no-op) */
void sl_metric_observe(sl_metric *h, double v); /* histogram; NULL or NaN: no-op */
/* A counter's or gauge's value; a histogram's count of observations. */
double sl_metric_value(const sl_metric *m);
/* `# HELP`, `# TYPE` and value lines, metrics in registration order. */
int sl_metrics_render(sl_metrics *m, sl_buf *out);
/* Serve GET /metrics on addr:port (404 for anything else). */
int sl_metrics_serve(sl_http_server **out, sl_metrics *m, const char *addr, uint16_t port);

/* ------------------------------------------------------------ wire codec */

/* The binary frames of the sync protocol; every byte is written down in
 * docs/protocol.md ("Sync wire format"). Decoders accept exactly one
 * well-formed frame: a wrong version, a count past its cap, a truncated
 * or overlong field, an element that is not one valid operation, a value
 * of the wrong length or trailing bytes is SL_ECORRUPT (SL_ETOOLARGE for a
 * count past its cap), and nothing is returned. */

#define SL_WIRE_VERSION     1
#define SL_WIRE_MAX_OPS     65536  /* operations in one ops frame */
#define SL_WIRE_MAX_ENTRIES 100000 /* entries in one commit batch */

/* An ops frame: operations [start, start+n) with their values, a range
 * proof for them against the MMR of `size` leaves, and optionally the
 * pinned nodes for `start`. Decoded elements and values borrow from the
 * frame buffer. */
typedef struct sl_wire_ops {
	uint64_t start;
	uint64_t size;
	size_t n;
	sl_bytes *elements; /* n; owned array, borrowed bytes */
	sl_bytes *values;   /* n; {NULL, 0} for delete and commit */
	sl_mmr_proof proof; /* owned */
	size_t n_pinned;
	sl_digest pinned[SL_MMR_MAX_PEAKS];
} sl_wire_ops;

/* Encoding in three steps, so a server can stream operations out of the
 * store: begin writes the header with a count that end patches in. */
int sl_wire_ops_begin(sl_buf *out, uint64_t start, uint64_t size);
/* value: the value of a set/update (value_len must equal the element's),
 * ignored for other operations. */
int sl_wire_ops_add(sl_buf *out, const uint8_t *element, size_t element_len, const void *value,
                    size_t value_len);
int sl_wire_ops_end(sl_buf *out, size_t n_ops, const sl_mmr_proof *proof, const sl_digest *pinned,
                    size_t n_pinned);
int sl_wire_ops_decode(sl_wire_ops *out, const uint8_t *frame, size_t len);
void sl_wire_ops_free(sl_wire_ops *w); /* NULL ok */

/* A commit batch (POST .../commit): puts and deletes in order. */
typedef struct sl_wire_entry {
	int is_delete;
	const char *key; /* borrowed from the body; not NUL-terminated */
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
} sl_wire_entry;

int sl_wire_batch_begin(sl_buf *out);
int sl_wire_batch_put(sl_buf *out, const char *key, size_t key_len, const void *value,
                      size_t value_len);
int sl_wire_batch_del(sl_buf *out, const char *key, size_t key_len);
/* Patches the entry count into the header written by begin. */
int sl_wire_batch_end(sl_buf *out, size_t n_entries);
/* Keys are validated (sl_key_validate); *out is from sl_malloc. */
int sl_wire_batch_decode(sl_wire_entry **out, size_t *n_out, const uint8_t *body, size_t len);

/* The items endpoint of state reconciliation (POST .../items): a request
 * names item ids, the frame answers each as found (its key, digest and,
 * when asked, value) or missing, in the order asked, and says how many at
 * the end it left for another request (docs/protocol.md, "Items request
 * and frame"). Decoders check the form only; the client checks that each
 * answer hashes to the id it asked for. */

#define SL_WIRE_MAX_IDS      65536 /* ids in one items request */
#define SL_WIRE_ITEMS_VALUES 0x1   /* request flag: send values too */

int sl_wire_items_request(sl_buf *out, unsigned flags, const uint8_t (*ids)[SL_ITEM_ID_LEN],
                          size_t n);
/* *ids borrows from body: n ids of SL_ITEM_ID_LEN bytes. */
int sl_wire_items_request_decode(unsigned *flags, const uint8_t **ids, size_t *n,
                                 const uint8_t *body, size_t len);

typedef struct sl_wire_item {
	const uint8_t *id; /* SL_ITEM_ID_LEN bytes; everything borrows from the frame */
	const char *key;
	size_t key_len;
	uint64_t value_len;
	sl_digest digest;
	const uint8_t *value; /* value_len bytes, or NULL in a frame without values */
} sl_wire_item;

typedef struct sl_wire_items {
	size_t n_found;
	sl_wire_item *found; /* owned array */
	size_t n_missing;
	const uint8_t *missing; /* n_missing ids, borrowed */
	size_t remaining;
} sl_wire_items;

/* Encoding: begin, one add per found item (value NULL unless the request
 * asked for values), then end with the missing ids and the count left. */
int sl_wire_items_begin(sl_buf *out);
int sl_wire_items_add(sl_buf *out, const uint8_t id[SL_ITEM_ID_LEN], const char *key,
                      size_t key_len, uint64_t value_len, const sl_digest *digest,
                      const void *value);
int sl_wire_items_end(sl_buf *out, size_t n_found, const uint8_t *missing, size_t n_missing,
                      size_t remaining);
/* A whole frame of this shape answering n ids in order until it holds
 * `budget` bytes (at least one answer): add appends the answer of an id
 * it has and returns SL_OK, or returns SL_ENOTFOUND (the id goes to the
 * missing list); any other return stops with it. */
typedef int (*sl_wire_answer_fn)(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], sl_buf *out);
int sl_wire_items_answer(const uint8_t *ids, size_t n, size_t budget, sl_wire_answer_fn add,
                         void *ctx, sl_buf *out);
/* The end of a frame of this shape after its n_found answers (the keys
 * frame of the diff between engines shares it): the missing ids, the
 * count left, nothing after. SL_ECORRUPT naming `what` otherwise. */
int sl_wire_items_tail(sl_reader *r, const char *what, size_t n_found, const uint8_t **missing,
                       size_t *n_missing, size_t *remaining);
/* flags: those of the request the frame answers. */
int sl_wire_items_decode(sl_wire_items *out, unsigned flags, const uint8_t *frame, size_t len);
void sl_wire_items_free(sl_wire_items *w); /* NULL ok */

/* The entries frame of dag sync (docs/protocol.md, "DAG sync"): entries
 * and the values their writes set, as a server answers a fetch or a
 * bootstrap page and as a client pushes. A value comes before the first
 * entry that sets it; the ids asked for but not held are listed after
 * the records. The decoder checks the form only (sl_dag_insert verifies
 * the entries); everything borrows from the frame. */
#define SL_WIRE_ENTRIES_MORE 0x1 /* flag: entries were left out (a page, a fetch) */

typedef struct sl_wire_entries {
	unsigned flags;
	size_t n_entries;
	sl_bytes *entries; /* owned array, borrowed bytes, in frame order */
	size_t n_values;
	sl_bytes *values;
	size_t n_missing;
	const uint8_t *missing; /* n_missing ids */
} sl_wire_entries;

/* Encoding: begin, then values and entries in order, then end with the
 * number of records added and the missing ids. */
int sl_wire_entries_begin(sl_buf *out, unsigned flags);
int sl_wire_entries_add_value(sl_buf *out, const void *value, size_t len);
int sl_wire_entries_add_entry(sl_buf *out, const uint8_t *entry, size_t len);
int sl_wire_entries_end(sl_buf *out, size_t n_records, const uint8_t *missing, size_t n_missing);
int sl_wire_entries_decode(sl_wire_entries *out, const uint8_t *frame, size_t len);
void sl_wire_entries_free(sl_wire_entries *w); /* NULL ok */

/* -------------------------------------------------------- signed requests */

/* A node signs an HTTP request with its Ed25519 key in the Authorization
 * header (src/net/signed_request.c has the exact form and the signed
 * message):
 *
 *   Sluice-Ed25519 key=<64 hex>, time=<unix s>, nonce=<32 hex>, sig=<128 hex>
 *
 * The signature covers the method, the target as sent (path and query),
 * the SHA-256 of the body, the server's public key, the time and the
 * nonce. Verifying checks the clock window and the signature; whether the
 * key may do what it asks, and that the nonce was not seen before, are
 * the caller's to check. */

#define SL_REQUEST_WINDOW_S  60 /* default clock window, seconds each way */
#define SL_REQUEST_NONCE_LEN 16
#define SL_REQUEST_AUTH_MAX  512 /* bytes of the header value */

typedef struct sl_request_auth {
	uint8_t key[SL_ED25519_PK_LEN]; /* the requesting node */
	uint64_t time_s;                /* Unix seconds when signed */
	uint8_t nonce[SL_REQUEST_NONCE_LEN];
	uint8_t sig[SL_ED25519_SIG_LEN];
} sl_request_auth;

/* Sign a request to the server whose public key is server_key: fills out
 * with sk's public half, time_s, a fresh random nonce and the signature.
 * method: 1..16 of A-Z; target: path and query exactly as sent, 1..4096
 * bytes starting with '/' (else SL_EINVAL). body may be NULL when
 * body_len is 0. */
int sl_request_auth_sign(sl_request_auth *out, const uint8_t sk[SL_ED25519_SK_LEN],
                         const char *method, const char *target, const void *body, size_t body_len,
                         const uint8_t server_key[SL_ED25519_PK_LEN], uint64_t time_s);
/* The header value, NUL-terminated, into out; SL_REQUEST_AUTH_MAX + 1
 * bytes always suffice (SL_ETOOLARGE when cap is too small for it). */
int sl_request_auth_format(const sl_request_auth *a, char *out, size_t cap);
/* Parse a header value in exactly the form format writes (one spelling:
 * lowercase hex, no extra spaces, no leading zeros); anything else is
 * SL_EINVAL with a message naming what is wrong. */
int sl_request_auth_parse(sl_request_auth *out, const char *value);
/* Check a parsed header against the request it came with: its time must
 * be within window_s of now_s either way (else SL_EAUTH; pass
 * SL_REQUEST_WINDOW_S for the default), method and target of the form
 * sign accepts (else SL_EINVAL), and the signature valid for a->key over
 * this request to server_key (else SL_EVERIFY). */
int sl_request_auth_verify(const sl_request_auth *a, const char *method, const char *target,
                           const void *body, size_t body_len,
                           const uint8_t server_key[SL_ED25519_PK_LEN], uint64_t now_s,
                           unsigned window_s);

#ifdef __cplusplus
}
#endif
#endif
