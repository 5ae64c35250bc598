/*
 * The sync server: a store's namespaces over HTTP (/api/v0), on top of
 * net/'s HTTP server. Endpoints (docs/protocol.md, "Sync"):
 *   GET  /api/v0/info                        node id, version, namespaces
 *   GET  /api/v0/ns/{ns}/target?after=&wait_ms=   latest commit, signed;
 *                                            a long poll with after and wait_ms
 *   GET  /api/v0/ns/{ns}/ops?start=&max=&size=&pinned=   ops frame
 *   GET  /api/v0/ns/{ns}/consistency?from=&to=           proof (binary)
 *   POST /api/v0/ns/{ns}/commit              batch frame, bearer token
 *   POST /api/v0/ns/{ns}/reconcile           negentropy message (state_endpoints.c)
 *   POST /api/v0/ns/{ns}/items               items request (state_endpoints.c)
 *   /api/v0/dag/{id}/...                     dag namespaces, signed requests
 *                                            (dag_endpoints.c)
 *
 * Handlers run on the HTTP server's worker threads. An sl_store handle is
 * used by one thread at a time, so each request borrows one from a small
 * pool (opened on demand, kept for the next request); SQLite's WAL lets
 * the readers run while a commit is written. Every read comes from one
 * snapshot of whole commits. An ops frame stops growing once it holds
 * frame_budget bytes (at least one operation), and its proof covers
 * exactly the operations it carries. Parameters are parsed strictly: a
 * malformed request gets a 4xx JSON error and changes nothing.
 *
 * Long polls on the target (a mirror learning of a commit at once): while
 * the namespace's size is still `after`, the handler answers "not yet"
 * (sl_http_response.wait_ms) and the HTTP server holds the request
 * without a thread, calling the handler again whenever it is woken. It is
 * woken by the watcher thread: at once after a commit through this
 * server, and, while any request waits, when the store's data version
 * (sl_store_data_version, read on the watcher's own handle every
 * WATCH_MS) shows that some other handle committed: another process
 * (`sluice put`), a mirror writing through its own handle, or this
 * server's own pool. With no request waiting the watcher sleeps. A commit
 * that lands between a handler's check and its suspension is not missed:
 * either the watcher reads the changed version after the request waits
 * (it compares with its previous reading, however old), or it read it
 * earlier and its wake reached the handler still deciding (the server's
 * wake generation has it check again).
 */
#include "sync/server_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX        16
#define OPS_MAX_DEFAULT 1000
#define FRAME_BUDGET    (16u << 20)
#define API_PREFIX      "/api/v0/"
#define NS_PREFIX       "/api/v0/ns/"
#define CONTENT_OPS     "application/vnd.sluice.ops"
#define CONTENT_PROOF   "application/vnd.sluice.proof"
/* What a request costs beyond its bytes (docs/protocol.md, "Limits"): a
 * token per COST_OPS operations read into an ops frame, and per
 * COST_DIGESTS digests of a consistency proof, each read from the store. */
#define COST_OPS     1000.0
#define COST_DIGESTS 8.0
/* The longest a target long poll waits: below the idle timeout (30 s),
 * so neither side takes the connection for dead. */
#define WAIT_MS_MAX 25000
#define WATCH_MS    10 /* how often the watcher reads the data version */

enum endpoint {
	EP_INFO,
	EP_TARGET,
	EP_OPS,
	EP_CONSISTENCY,
	EP_COMMIT,
	EP_RECONCILE,
	EP_ITEMS,
	EP_DAG,
	EP_OTHER,
	EP__COUNT
};

static void watch_wake(sl_sync_server *srv);

static const char *const endpoint_names[EP__COUNT] = {
        "info", "target", "ops", "consistency", "commit", "reconcile", "items", "dag", "other"};

struct sl_sync_server {
	sl_sync_server_options o;
	char *store_dir;
	char *token;
	sl_node_key key;
	sl_http_server *http;
	server_dag *dag;
	pthread_mutex_t pool_mu;
	sl_store *pool[POOL_MAX];
	size_t n_pool;
	sl_metric *requests[EP__COUNT], *errors[EP__COUNT];
	sl_metric *ops_served, *bytes_served, *ops_committed;
	/* The watcher: wakes long polls after commits. */
	pthread_mutex_t watch_mu;
	pthread_cond_t watch_cv;
	pthread_t watcher;
	int watcher_running, watch_stopping;
	int wake_now;          /* a commit here: wake the waiting requests */
	size_t n_waiting;      /* requests waiting, as the HTTP server tells */
	sl_store *watch_store; /* the watcher's own handle */
	uint64_t data_version; /* its last reading */
};

void sl_sync_server_options_init(sl_sync_server_options *o)
{
	memset(o, 0, sizeof(*o));
	o->listen_addr = "127.0.0.1";
	o->threads = 4;
	o->frame_budget = FRAME_BUDGET;
	o->timeout_s = 30;
	sl_http_limits_init(&o->limits);
}

/* ------------------------------------------------------------ store pool */

static sl_store *pool_get(sl_sync_server *srv)
{
	sl_store *s = NULL;
	sl_store_options so;

	pthread_mutex_lock(&srv->pool_mu);
	if (srv->n_pool > 0)
		s = srv->pool[--srv->n_pool];
	pthread_mutex_unlock(&srv->pool_mu);
	if (s)
		return s;
	sl_store_options_init(&so);
	if (sl_store_open(&s, srv->store_dir, &so) != SL_OK)
		return NULL;
	return s;
}

static void pool_put(sl_sync_server *srv, sl_store *s)
{
	pthread_mutex_lock(&srv->pool_mu);
	if (srv->n_pool < POOL_MAX) {
		srv->pool[srv->n_pool++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&srv->pool_mu);
	sl_store_free(s);
}

/* ------------------------------------------------------------- endpoints */

static void handle_info(sl_sync_server *srv, sl_store *s, sl_http_response *resp)
{
	sl_ns_info *list = NULL;
	size_t n = 0;
	char node[2 * SL_ED25519_PK_LEN + 1];
	int rc;

	if ((rc = sl_store_ns_list(s, &list, &n)) != SL_OK) {
		server_fail_last(resp);
		return;
	}
	sl_hex_encode(node, srv->key.pk, SL_ED25519_PK_LEN);
	rc = sl_buf_printf(&resp->body, "{\"node\":\"%s\",\"version\":\"%s\",\"namespaces\":[",
	                   node, SLUICE_VERSION);
	for (size_t i = 0, listed = 0; rc == SL_OK && i < n; i++) {
		sl_digest_hex root = sl_digest_to_hex(&list[i].target.root);
		if (list[i].kind == SL_NS_DAG)
			continue; /* answered only to their peers, by id */
		if (list[i].name[0] == '.')
			continue; /* reserved: a replica being rebuilt, not served */
		rc = sl_buf_printf(
		        &resp->body,
		        "%s{\"name\":\"%s\",\"kind\":\"%s\",\"size\":%llu,\"root\":\"%s\","
		        "\"floor\":%llu,\"pruned\":%llu}",
		        listed++ ? "," : "", list[i].name, sl_ns_kind_name(list[i].kind),
		        (unsigned long long)list[i].target.size, root.s,
		        (unsigned long long)list[i].target.floor,
		        (unsigned long long)list[i].pruned);
	}
	if (rc == SL_OK)
		rc = sl_buf_append_str(&resp->body, "]}");
	if (rc != SL_OK)
		server_fail_last(resp);
	sl_free(list);
}

static int sign_target(sl_sync_server *srv, const char *ns, const sl_ns_info *info,
                       sl_signed_target *out)
{
	memset(out, 0, sizeof(*out));
	strcpy(out->ns, ns);
	out->kind = info->kind;
	out->target = info->target;
	return sl_target_sign(out, &srv->key);
}

static int current_target(sl_sync_server *srv, sl_store *s, const char *ns, sl_signed_target *out)
{
	sl_ns_info info;
	int rc;
	if ((rc = sl_store_ns_head(s, ns, &info)) != SL_OK)
		return rc;
	return sign_target(srv, ns, &info, out);
}

/* The target, at once unless `after` and `wait_ms` ask for a long poll
 * and the namespace's size is still `after`: then "not yet" (the server
 * calls again when woken, or with may_wait 0 once the wait is over). */
static void handle_target(sl_sync_server *srv, sl_store *s, const sl_http_request *req,
                          const char *ns, sl_http_response *resp)
{
	const char *after_text = sl_http_request_query(req, "after");
	uint64_t after = 0, wait_ms = 0;
	sl_signed_target t;
	sl_ns_info info;

	if (server_query_u64(req, "after", &after, 0, resp) != SL_OK ||
	    server_query_u64(req, "wait_ms", &wait_ms, 0, resp) != SL_OK)
		return;
	if (sl_store_ns_head(s, ns, &info) != SL_OK) {
		server_fail_last(resp);
		return;
	}
	if (after_text && *after_text && wait_ms > 0 && req->may_wait &&
	    info.target.size == after) {
		resp->wait_ms = (uint32_t)(wait_ms < WAIT_MS_MAX ? wait_ms : WAIT_MS_MAX);
		return;
	}
	if (sign_target(srv, ns, &info, &t) != SL_OK || sl_target_to_json(&t, &resp->body) != SL_OK)
		server_fail_last(resp);
}

typedef struct ops_writer {
	sl_buf *body;
	size_t budget;
} ops_writer;

static int add_op(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                  size_t element_len, const void *value, size_t value_len)
{
	ops_writer *w = ctx;
	int rc;
	(void)loc;
	(void)op;
	if ((rc = sl_wire_ops_add(w->body, element, element_len, value, value_len)) != SL_OK)
		return rc;
	return w->body->len >= w->budget ? 1 : 0;
}

static void handle_ops(sl_sync_server *srv, sl_store *s, const sl_http_request *req, const char *ns,
                       sl_http_response *resp)
{
	uint64_t start = 0, max = OPS_MAX_DEFAULT, size = 0, pinned = 0, n_read = 0;
	sl_digest pins[SL_MMR_MAX_PEAKS];
	size_t n_pins = 0;
	sl_mmr_proof proof = {0, 0, NULL};
	sl_ns_info info;
	ops_writer w = {&resp->body, srv->o.frame_budget};
	char msg[160];

	if (server_query_u64(req, "start", &start, 1, resp) != SL_OK ||
	    server_query_u64(req, "max", &max, 0, resp) != SL_OK ||
	    server_query_u64(req, "size", &size, 0, resp) != SL_OK ||
	    server_query_u64(req, "pinned", &pinned, 0, resp) != SL_OK)
		return;
	if (max == 0 || pinned > 1) {
		server_fail(resp, 400, "'max' must be at least 1 and 'pinned' 0 or 1");
		return;
	}
	if (max > SL_WIRE_MAX_OPS)
		max = SL_WIRE_MAX_OPS;
	if (sl_store_ns_head(s, ns, &info) != SL_OK) {
		server_fail_last(resp);
		return;
	}
	if (size == 0)
		size = info.target.size;
	if (start < info.pruned) {
		snprintf(msg, sizeof(msg), "operations below %llu were pruned; start at the floor",
		         (unsigned long long)info.pruned);
		server_fail(resp, 410, msg);
		return;
	}
	if (size > info.target.size || start >= size) {
		snprintf(msg, sizeof(msg), "no operations from %llu in the first %llu (size %llu)",
		         (unsigned long long)start, (unsigned long long)size,
		         (unsigned long long)info.target.size);
		server_fail(resp, 400, msg);
		return;
	}
	if ((pinned && sl_store_pinned_nodes(s, ns, start, pins, &n_pins) != SL_OK) ||
	    sl_wire_ops_begin(&resp->body, start, size) != SL_OK ||
	    sl_store_read_range(s, ns, size, start, max, add_op, &w, &proof, &n_read) != SL_OK ||
	    sl_wire_ops_end(&resp->body, (size_t)n_read, &proof, pins, n_pins) != SL_OK) {
		server_fail_last(resp);
		goto cleanup;
	}
	resp->content_type = CONTENT_OPS;
	resp->cost = (double)n_read / COST_OPS;
	sl_metric_add(srv->ops_served, n_read);
cleanup:
	sl_mmr_proof_free(&proof);
}

static void handle_consistency(sl_store *s, const sl_http_request *req, const char *ns,
                               sl_http_response *resp)
{
	uint64_t from = 0, to = 0;
	sl_mmr_proof proof = {0, 0, NULL};
	sl_ns_info info;

	if (server_query_u64(req, "from", &from, 1, resp) != SL_OK ||
	    server_query_u64(req, "to", &to, 1, resp) != SL_OK)
		return;
	if (sl_store_ns_head(s, ns, &info) != SL_OK) {
		server_fail_last(resp);
		return;
	}
	if (from != 0 && from < info.pruned) {
		server_fail(resp, 410,
		            "operations below the pruned boundary cannot be proved; start at the "
		            "floor");
		return;
	}
	if (sl_store_consistency_proof(s, ns, from, to, &proof) != SL_OK ||
	    sl_mmr_proof_encode(&proof, &resp->body) != SL_OK) {
		server_fail_last(resp);
	} else {
		resp->content_type = CONTENT_PROOF;
		resp->cost = (double)proof.n_digests / COST_DIGESTS;
	}
	sl_mmr_proof_free(&proof);
}

static void handle_commit(sl_sync_server *srv, sl_store *s, const sl_http_request *req,
                          const char *ns, sl_http_response *resp)
{
	sl_wire_entry *entries = NULL;
	sl_signed_target t;
	sl_batch *b = NULL;
	size_t n = 0;
	int rc = SL_OK;

	if (!srv->token) {
		server_fail(resp, 403, "commits are disabled: start the server with --token-file");
		return;
	}
	if (!sl_http_request_bearer_ok(req, srv->token)) {
		server_fail(resp, 401, "a valid bearer token is required");
		return;
	}
	if (sl_wire_batch_decode(&entries, &n, req->body, req->body_len) != SL_OK ||
	    sl_batch_new(&b, s, ns) != SL_OK) {
		server_fail_last(resp);
		goto cleanup;
	}
	for (size_t i = 0; rc == SL_OK && i < n; i++)
		rc = entries[i].is_delete ? sl_batch_del(b, entries[i].key, entries[i].key_len)
		                          : sl_batch_put(b, entries[i].key, entries[i].key_len,
		                                         entries[i].value, entries[i].value_len);
	if (rc != SL_OK || sl_batch_commit(b, NULL) != SL_OK ||
	    current_target(srv, s, ns, &t) != SL_OK ||
	    sl_target_to_json(&t, &resp->body) != SL_OK) {
		server_fail_last(resp);
		goto cleanup;
	}
	sl_metric_add(srv->ops_committed, n);
	watch_wake(srv);
	sl_log(SL_LOG_INFO, "applied a commit", "ns=%s entries=%zu size=%llu", ns, n,
	       (unsigned long long)t.target.size);
cleanup:
	sl_batch_free(b);
	sl_free(entries);
}

/* --------------------------------------------------------------- routing */

/* Splits "/api/v0/ns/{ns}/{action}"; ns is copied into ns_out. */
static enum endpoint route(const char *path, char ns_out[SL_NS_NAME_MAX + 1])
{
	const char *p, *slash;
	size_t len;

	if (strcmp(path, API_PREFIX "info") == 0)
		return EP_INFO;
	if (strncmp(path, NS_PREFIX, strlen(NS_PREFIX)) != 0)
		return EP_OTHER;
	p = path + strlen(NS_PREFIX);
	if (!(slash = strchr(p, '/')) || (len = (size_t)(slash - p)) == 0 || len > SL_NS_NAME_MAX)
		return EP_OTHER;
	memcpy(ns_out, p, len);
	ns_out[len] = 0;
	if (sl_ns_name_validate(ns_out) != SL_OK)
		return EP_OTHER;
	slash++;
	if (strcmp(slash, "target") == 0)
		return EP_TARGET;
	if (strcmp(slash, "ops") == 0)
		return EP_OPS;
	if (strcmp(slash, "consistency") == 0)
		return EP_CONSISTENCY;
	if (strcmp(slash, "commit") == 0)
		return EP_COMMIT;
	if (strcmp(slash, "reconcile") == 0)
		return EP_RECONCILE;
	if (strcmp(slash, "items") == 0)
		return EP_ITEMS;
	return EP_OTHER;
}

static void handle(void *ctx, const sl_http_request *req, sl_http_response *resp)
{
	sl_sync_server *srv = ctx;
	char ns[SL_NS_NAME_MAX + 1] = "";
	const char *dag_rest = NULL;
	enum endpoint ep = server_dag_route(req->path, &dag_rest) ? EP_DAG : route(req->path, ns);
	int is_post = ep == EP_COMMIT || ep == EP_RECONCILE || ep == EP_ITEMS;
	sl_store *s = NULL;

	if (ep == EP_DAG) { /* its own methods and checks */
		if (!(s = pool_get(srv))) {
			server_fail(resp, 503, sl_error_last()->message);
			goto out;
		}
		server_dag_handle(srv->dag, s, req, dag_rest, resp);
		pool_put(srv, s);
		goto out;
	}
	if (ep == EP_OTHER) {
		server_fail(resp, 404, "no such endpoint");
		goto out;
	}
	if (strcmp(req->method, is_post ? "POST" : "GET") != 0) {
		server_fail(resp, 405, is_post ? "use POST" : "use GET");
		goto out;
	}
	if (!(s = pool_get(srv))) {
		server_fail(resp, 503, sl_error_last()->message);
		goto out;
	}
	switch (ep) {
	case EP_INFO:
		handle_info(srv, s, resp);
		break;
	case EP_TARGET:
		handle_target(srv, s, req, ns, resp);
		break;
	case EP_OPS:
		handle_ops(srv, s, req, ns, resp);
		break;
	case EP_CONSISTENCY:
		handle_consistency(s, req, ns, resp);
		break;
	case EP_RECONCILE:
		server_reconcile(s, req, ns, resp);
		break;
	case EP_ITEMS:
		server_items(s, req, ns, srv->o.frame_budget, resp);
		break;
	default:
		handle_commit(srv, s, req, ns, resp);
		break;
	}
	pool_put(srv, s);
out:
	if (resp->wait_ms > 0 && req->may_wait)
		return; /* "not yet": counted when answered */
	sl_metric_add(srv->requests[ep], 1);
	if (resp->status >= 400) {
		sl_metric_add(srv->errors[ep], 1);
		sl_log(SL_LOG_DEBUG, "refused a request", "method=%s path=%s status=%d",
		       req->method, req->path, resp->status);
	} else {
		sl_metric_add(srv->bytes_served, resp->body.len);
	}
}

/* --------------------------------------------------------------- watcher */

/* After a commit through this server: wake the waiting requests now. */
static void watch_wake(sl_sync_server *srv)
{
	pthread_mutex_lock(&srv->watch_mu);
	srv->wake_now = 1;
	pthread_cond_signal(&srv->watch_cv);
	pthread_mutex_unlock(&srv->watch_mu);
}

/* The HTTP server's count of waiting requests (under its lock). */
static void on_waiting(void *ctx, size_t n_waiting)
{
	sl_sync_server *srv = ctx;
	pthread_mutex_lock(&srv->watch_mu);
	srv->n_waiting = n_waiting;
	pthread_cond_signal(&srv->watch_cv);
	pthread_mutex_unlock(&srv->watch_mu);
}

/* Whether another handle committed since the last reading. A failed
 * reading counts as a change: the handlers check for themselves. */
static int store_changed(sl_sync_server *srv)
{
	uint64_t version;
	if (sl_store_data_version(srv->watch_store, &version) != SL_OK)
		return 1;
	if (version == srv->data_version)
		return 0;
	srv->data_version = version;
	return 1;
}

/* Sleeps while no request waits; else reads the data version every
 * WATCH_MS and wakes the waiting requests when it moved. Only this thread
 * wakes the HTTP server, which it outlives. */
static void *watcher_main(void *arg)
{
	sl_sync_server *srv = arg;
	int wake;

	pthread_mutex_lock(&srv->watch_mu);
	while (!srv->watch_stopping) {
		if (!srv->wake_now && srv->n_waiting == 0) {
			pthread_cond_wait(&srv->watch_cv, &srv->watch_mu);
			continue;
		}
		wake = srv->wake_now;
		srv->wake_now = 0;
		pthread_mutex_unlock(&srv->watch_mu);
		if (store_changed(srv) || wake)
			sl_http_server_wake(srv->http);
		pthread_mutex_lock(&srv->watch_mu);
		if (!srv->watch_stopping && !srv->wake_now && srv->n_waiting > 0)
			sl_cond_wait_ms(&srv->watch_cv, &srv->watch_mu, WATCH_MS);
	}
	pthread_mutex_unlock(&srv->watch_mu);
	return NULL;
}

static void watcher_stop(sl_sync_server *srv)
{
	if (!srv->watcher_running)
		return;
	pthread_mutex_lock(&srv->watch_mu);
	srv->watch_stopping = 1;
	pthread_cond_signal(&srv->watch_cv);
	pthread_mutex_unlock(&srv->watch_mu);
	pthread_join(srv->watcher, NULL);
	srv->watcher_running = 0;
}

/* ------------------------------------------------------------- lifecycle */

static int register_metrics(sl_sync_server *srv)
{
	sl_metrics *m = srv->o.metrics;
	if (!m)
		return SL_OK;
	for (int i = 0; i < EP__COUNT; i++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint_names[i]);
		if (!(srv->requests[i] = sl_metrics_counter(m, "sluice_server_requests_total",
		                                            labels, "HTTP requests received")) ||
		    !(srv->errors[i] = sl_metrics_counter(m, "sluice_server_errors_total", labels,
		                                          "HTTP requests answered with an error")))
			return SL_ENOMEM;
	}
	if (!(srv->ops_served = sl_metrics_counter(m, "sluice_server_ops_served_total", NULL,
	                                           "operations sent in ops frames")) ||
	    !(srv->bytes_served = sl_metrics_counter(m, "sluice_server_bytes_served_total", NULL,
	                                             "response body bytes sent")) ||
	    !(srv->ops_committed = sl_metrics_counter(m, "sluice_server_commit_entries_total", NULL,
	                                              "entries received in commits")))
		return SL_ENOMEM;
	return SL_OK;
}

int sl_sync_server_start(sl_sync_server **out, const sl_sync_server_options *o)
{
	sl_http_server_options ho;
	sl_sync_server *srv;
	int rc;

	if (!o->store_dir || !o->key)
		return sl_error_set(SL_EINVAL, "a store directory and a node key are required");
	if (o->frame_budget > SL_SYNC_FRAME_BUDGET_MAX)
		return sl_error_set(SL_EINVAL, "a frame budget of %zu bytes is more than %zu",
		                    o->frame_budget, SL_SYNC_FRAME_BUDGET_MAX);
	if (!(srv = sl_calloc(1, sizeof(*srv))))
		return SL_ENOMEM;
	srv->o = *o;
	srv->key = *o->key;
	srv->o.key = &srv->key;
	if (!srv->o.frame_budget)
		srv->o.frame_budget = FRAME_BUDGET;
	pthread_mutex_init(&srv->pool_mu, NULL);
	pthread_mutex_init(&srv->watch_mu, NULL);
	pthread_cond_init(&srv->watch_cv, NULL);
	if (!(srv->store_dir = sl_strdup(o->store_dir)) ||
	    (o->token && !(srv->token = sl_strdup(o->token)))) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if ((rc = register_metrics(srv)) != SL_OK ||
	    (rc = server_dag_new(&srv->dag, srv->key.pk, srv->o.frame_budget, o->metrics)) != SL_OK)
		goto fail;
	/* The watcher's handle, opened now so that a missing or damaged store
	 * fails at start; it and its first reading come before any request
	 * can read the store, so no commit falls between a handler's check
	 * and a reading the watcher compares with. */
	if (!(srv->watch_store = pool_get(srv))) {
		rc = sl_error_last()->code;
		goto fail;
	}
	if ((rc = sl_store_data_version(srv->watch_store, &srv->data_version)) != SL_OK)
		goto fail;
	sl_http_server_options_init(&ho);
	ho.listen_addr = o->listen_addr ? o->listen_addr : "127.0.0.1";
	ho.port = o->port;
	ho.threads = o->threads ? o->threads : 4;
	ho.timeout_s = o->timeout_s ? o->timeout_s : 30;
	ho.max_response = SL_SYNC_FRAME_MAX;
	ho.limits = o->limits;
	ho.metrics = o->metrics;
	ho.on_waiting = on_waiting;
	if ((rc = sl_http_server_start(&srv->http, &ho, handle, srv)) != SL_OK)
		goto fail;
	if (pthread_create(&srv->watcher, NULL, watcher_main, srv) != 0) {
		rc = sl_error_set(SL_EIO, "sync server: cannot start the commit watcher");
		goto fail;
	}
	srv->watcher_running = 1;
	*out = srv;
	return SL_OK;
fail:
	sl_sync_server_stop(srv);
	return rc;
}

uint16_t sl_sync_server_port(const sl_sync_server *s)
{
	return sl_http_server_port(s->http);
}

void sl_sync_server_stop(sl_sync_server *s)
{
	if (!s)
		return;
	/* The watcher first: it wakes the HTTP server. Requests still
	 * waiting are answered as the server stops. */
	watcher_stop(s);
	sl_http_server_stop(s->http);
	server_dag_free(s->dag);
	for (size_t i = 0; i < s->n_pool; i++)
		sl_store_free(s->pool[i]);
	sl_store_free(s->watch_store);
	pthread_cond_destroy(&s->watch_cv);
	pthread_mutex_destroy(&s->watch_mu);
	pthread_mutex_destroy(&s->pool_mu);
	sl_free(s->store_dir);
	if (s->token) {
		memset(s->token, 0, strlen(s->token));
		sl_free(s->token);
	}
	memset(&s->key, 0, sizeof(s->key));
	sl_free(s);
}
