/*
 * The dag endpoints of the sync server (docs/protocol.md, "DAG sync"),
 * under /api/v0/dag/{namespace id}/:
 *   GET  tips        {"id", "entries", "tips", "more"}: "already equal?"
 *   POST reconcile   a negentropy message over (height, entry id)
 *   POST entries     ids in, an entries frame out
 *   POST bootstrap   a cursor and the asker's prefix in, a page out
 *   POST push        an entries frame in, what was stored out
 *   POST join        a request for a role: pending, approved or denied
 *
 * Every request must be signed by the asking node (net/signed_request.c)
 * for this server's key, within the clock window, with a nonce the store
 * has not seen (remembered across restarts); else 401 and nothing
 * changes. Except join, every endpoint answers only a node that holds a
 * role in the namespace's current settings (403 otherwise, "pending"
 * while its request waits). The signature covers the path: these
 * endpoints take no query. The order of checks is the order of cost: the
 * route, the method, the body's size, the header's form, the clock, the
 * signature, the nonce (a write), the role, and only then the work.
 *
 * Each namespace has one item view (sl_dag_items), shared by the
 * server's threads under its own lock and refreshed incrementally, so a
 * reconciliation round never reloads the set.
 */
#include "sync/server_internal.h"

#include "sluice/dag_sync.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define DAG_PREFIX     "/api/v0/dag/"
#define CONTENT_BINARY "application/octet-stream"
#define CONTENT_FRAME  "application/vnd.sluice.entries"
#define JOIN_MAX       4096 /* bytes of a join request */

_Static_assert(SL_NONCE_LEN == SL_REQUEST_NONCE_LEN, "one nonce size");

typedef struct dag_view {
	sl_digest id;
	sl_dag_items *items;
	pthread_mutex_t mu;
} dag_view;

struct server_dag {
	uint8_t key[SL_ED25519_PK_LEN]; /* this server's: requests are signed for it */
	size_t frame_budget;
	pthread_mutex_t mu; /* views */
	dag_view **views;
	size_t n_views, cap_views;
	sl_metric *refused_auth, *entries_served, *entries_stored, *entries_refused;
};

int server_dag_new(server_dag **out, const uint8_t key[SL_ED25519_PK_LEN], size_t frame_budget,
                   sl_metrics *m)
{
	server_dag *d = sl_calloc(1, sizeof(*d));
	if (!d)
		return SL_ENOMEM;
	memcpy(d->key, key, SL_ED25519_PK_LEN);
	d->frame_budget = frame_budget ? frame_budget : SL_DAG_FRAME_BUDGET;
	pthread_mutex_init(&d->mu, NULL);
	if (m) {
		d->refused_auth = sl_metrics_counter(m, "sluice_dag_refused_requests_total", NULL,
		                                     "dag requests refused: unsigned, stale, "
		                                     "replayed or not approved");
		d->entries_served = sl_metrics_counter(m, "sluice_dag_entries_served_total", NULL,
		                                       "dag entries sent to peers");
		d->entries_stored =
		        sl_metrics_counter(m, "sluice_dag_entries_received_total", NULL,
		                           "dag entries peers pushed and this node stored");
		d->entries_refused =
		        sl_metrics_counter(m, "sluice_dag_entries_refused_total", NULL,
		                           "dag entries peers pushed that did not verify");
	}
	*out = d;
	return SL_OK;
}

void server_dag_free(server_dag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_views; i++) {
		sl_dag_items_free(d->views[i]->items);
		pthread_mutex_destroy(&d->views[i]->mu);
		sl_free(d->views[i]);
	}
	sl_free(d->views);
	pthread_mutex_destroy(&d->mu);
	sl_free(d);
}

/* The view of namespace id, made on first use; NULL when out of memory. */
static dag_view *view_of(server_dag *d, const sl_digest *id)
{
	dag_view *v = NULL, **grown;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->n_views && !v; i++)
		if (sl_digest_eq(&d->views[i]->id, id))
			v = d->views[i];
	if (!v && (grown = sl_grow(d->views, &d->cap_views, d->n_views, sizeof(*d->views), 4))) {
		d->views = grown;
		if ((v = sl_calloc(1, sizeof(*v))) && sl_dag_items_new(&v->items) == SL_OK) {
			v->id = *id;
			pthread_mutex_init(&v->mu, NULL);
			d->views[d->n_views++] = v;
		} else {
			sl_free(v);
			v = NULL;
		}
	}
	pthread_mutex_unlock(&d->mu);
	return v;
}

/* ------------------------------------------------------------- requests */

enum dag_ep { DAG_TIPS, DAG_RECONCILE, DAG_ENTRIES, DAG_BOOTSTRAP, DAG_PUSH, DAG_JOIN, DAG__COUNT };

static const struct {
	const char *name, *method;
	size_t max_body;
} dag_eps[DAG__COUNT] = {
        {"tips", "GET", 0},
        {"reconcile", "POST", SL_DAG_MSG_MAX},
        {"entries", "POST", (size_t)SL_WIRE_MAX_IDS *SL_ITEM_ID_LEN + 6},
        {"bootstrap", "POST", SL_DAG_BOOTSTRAP_LEN},
        {"push", "POST", SL_DAG_PUSH_MAX},
        {"join", "POST", JOIN_MAX},
};

/* "{64 hex}/{endpoint}" */
static int parse_route(const char *rest, sl_digest *id, enum dag_ep *ep)
{
	size_t n;
	if (strlen(rest) < 2 * SL_DIGEST_LEN + 2 || rest[2 * SL_DIGEST_LEN] != '/')
		return SL_ENOTFOUND;
	if (sl_hex_decode(id->bytes, SL_DIGEST_LEN, &n, rest, 2 * SL_DIGEST_LEN) != SL_OK ||
	    n != SL_DIGEST_LEN)
		return SL_ENOTFOUND;
	for (int i = 0; i < DAG__COUNT; i++)
		if (strcmp(rest + 2 * SL_DIGEST_LEN + 1, dag_eps[i].name) == 0) {
			*ep = (enum dag_ep)i;
			return SL_OK;
		}
	return SL_ENOTFOUND;
}

/* The signature, clock and nonce of the request; 401 when any fails. */
static int authenticate(server_dag *d, sl_store *s, const sl_http_request *req,
                        sl_request_auth *auth, sl_http_response *resp)
{
	const char *h = sl_http_request_header(req, "Authorization");
	uint64_t now = sl_clock_wall_ms() / 1000;
	int rc;

	if (!h) {
		server_fail(resp, 401,
		            "a signed request is required (docs/protocol.md, \"Signed "
		            "requests\")");
		return SL_EAUTH;
	}
	if (sl_request_auth_parse(auth, h) != SL_OK ||
	    sl_request_auth_verify(auth, req->method, req->path, req->body, req->body_len, d->key,
	                           now, SL_REQUEST_WINDOW_S) != SL_OK) {
		server_fail(resp, 401, sl_error_last()->message);
		return SL_EAUTH;
	}
	rc = sl_store_nonce_claim(s, auth->key, auth->nonce, auth->time_s, now,
	                          SL_REQUEST_WINDOW_S);
	if (rc == SL_EEXISTS) {
		server_fail(resp, 401, "the request was replayed: its nonce was used before");
		return SL_EAUTH;
	}
	if (rc != SL_OK) {
		server_fail_store(resp);
		return rc;
	}
	return SL_OK;
}

/* The node may read the namespace: a role in its current settings. */
static int authorize(sl_store *s, const char *ns, const sl_request_auth *auth,
                     sl_http_response *resp)
{
	sl_dag_request *list = NULL;
	sl_dag_role role = SL_DAG_NONE;
	const char *why = "this node holds no role in the namespace: ask for one with a ticket";
	size_t n = 0;

	if (sl_dag_role_of(s, ns, auth->key, &role) != SL_OK) {
		server_fail_store(resp);
		return SL_EAUTH;
	}
	if (role >= SL_DAG_READ)
		return SL_OK;
	if (sl_dag_request_list(s, &list, &n) == SL_OK)
		for (size_t i = 0; i < n; i++)
			if (strcmp(list[i].ns, ns) == 0 &&
			    memcmp(list[i].node, auth->key, SL_ED25519_PK_LEN) == 0)
				why = list[i].state == SL_DAG_REQUEST_PENDING
				              ? "pending: the request for a role waits for an admin"
				              : "the request for a role was denied";
	sl_free(list);
	server_fail(resp, 403, why);
	return SL_EAUTH;
}

/* ----------------------------------------------------------- endpoints */

static void reply_store_error(sl_http_response *resp)
{
	/* Input was checked first: a decode error here is the client's. */
	int code = sl_error_last()->code;
	if (code == SL_ECORRUPT || code == SL_EINVAL || code == SL_ETOOLARGE)
		server_fail(resp, code == SL_ETOOLARGE ? 413 : 400, sl_error_last()->message);
	else if (code == SL_ECONFLICT)
		server_fail(resp, 409, sl_error_last()->message);
	else
		server_fail_store(resp);
}

static void handle_reconcile(server_dag *d, sl_store *s, const char *ns, const sl_digest *id,
                             const sl_http_request *req, sl_http_response *resp)
{
	dag_view *v;
	int rc;
	if (sl_reconcile_check(req->body, req->body_len) != SL_OK) {
		server_fail(resp, 400, sl_error_last()->message);
		return;
	}
	if (!(v = view_of(d, id))) {
		server_fail(resp, 503, "out of memory");
		return;
	}
	pthread_mutex_lock(&v->mu);
	rc = sl_dag_reconcile_answer(v->items, s, ns, req->body, req->body_len, &resp->body);
	/* The responder's work grows with the set's ranges it fingerprints. */
	resp->cost = (double)sl_dag_items_count(v->items) / 65536.0;
	pthread_mutex_unlock(&v->mu);
	if (rc != SL_OK)
		reply_store_error(resp);
	else
		resp->content_type = CONTENT_BINARY;
}

/* An entries frame was written: its type, its cost to the client's rate
 * (the bytes read for it), its entries counted. */
static void frame_written(server_dag *d, sl_http_response *resp)
{
	sl_wire_entries w;
	resp->content_type = CONTENT_FRAME;
	resp->cost = (double)resp->body.len / 65536.0;
	if (sl_wire_entries_decode(&w, resp->body.data, resp->body.len) == SL_OK) {
		sl_metric_add(d->entries_served, w.n_entries);
		sl_wire_entries_free(&w);
	}
}

static void handle_bootstrap(server_dag *d, sl_store *s, const char *ns, const sl_digest *id,
                             const sl_http_request *req, sl_http_response *resp)
{
	dag_view *v = view_of(d, id);
	int rc;
	if (!v) {
		server_fail(resp, 503, "out of memory");
		return;
	}
	pthread_mutex_lock(&v->mu);
	rc = sl_dag_bootstrap_answer(v->items, s, ns, req->body, req->body_len, d->frame_budget,
	                             &resp->body);
	pthread_mutex_unlock(&v->mu);
	if (rc != SL_OK)
		reply_store_error(resp);
	else
		frame_written(d, resp);
}

static void handle_entries(server_dag *d, sl_store *s, const char *ns, const sl_http_request *req,
                           sl_http_response *resp)
{
	if (sl_dag_entries_answer(s, ns, req->body, req->body_len, d->frame_budget, &resp->body) !=
	    SL_OK)
		reply_store_error(resp);
	else
		frame_written(d, resp);
}

static void handle_push(server_dag *d, sl_store *s, const char *ns, const sl_digest *ns_id,
                        const sl_request_auth *auth, const sl_http_request *req,
                        sl_http_response *resp)
{
	sl_dag_insert_report r;
	sl_buf tips = SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	json_t *answer;
	char *text = NULL;

	if (sl_dag_push_answer(s, ns, auth->key, req->body, req->body_len, &r) != SL_OK) {
		reply_store_error(resp);
		return;
	}
	sl_metric_add(d->entries_stored, r.stored);
	sl_metric_add(d->entries_refused, r.refused);
	/* With the tips after the push: the pusher's last comparison needs no
	 * request of its own. */
	if (sl_dag_tips_answer(s, ns, ns_id, &tips) != SL_OK) {
		sl_buf_free(&tips);
		reply_store_error(resp);
		return;
	}
	answer =
	        json_pack("{s:I,s:I,s:I,s:s,s:s,s:o?}", "stored", (json_int_t)r.stored, "known",
	                  (json_int_t)r.known, "refused", (json_int_t)r.refused, "first_refused",
	                  r.refused ? sl_digest_to_hex(&r.first_refused).s : "", "reason", r.reason,
	                  "tips", json_loadb((const char *)tips.data, tips.len, 0, NULL));
	sl_buf_free(&tips);
	if (!answer || !json_is_object(json_object_get(answer, "tips")) ||
	    !(text = json_dumps(answer, JSON_COMPACT)) ||
	    sl_buf_append_str(&resp->body, text) != SL_OK)
		server_fail(resp, 500, "could not write the answer");
	free(text);
	json_decref(answer);
}

static void handle_join(sl_store *s, const char *ns, const sl_request_auth *auth,
                        const sl_http_request *req, sl_http_response *resp)
{
	json_t *body, *role_j, *addr_j;
	json_error_t jerr;
	sl_dag_role role = SL_DAG_NONE, held = SL_DAG_NONE;
	sl_dag_request r;
	sl_buf root = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	const char *addr = "", *state;
	uint64_t pending = 0;
	char *root_hex = NULL;
	int rc;

	body = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	role_j = body ? json_object_get(body, "role") : NULL;
	addr_j = body ? json_object_get(body, "addr") : NULL;
	if (!body || !json_is_object(body) || !json_is_string(role_j) ||
	    (addr_j && !json_is_string(addr_j)) ||
	    json_object_size(body) != 1u + (addr_j != NULL) ||
	    sl_dag_role_parse(&role, json_string_value(role_j)) != SL_OK ||
	    (role != SL_DAG_READ && role != SL_DAG_WRITE)) {
		server_fail(resp, 400,
		            "a join request is {\"role\": \"read\"|\"write\", \"addr\": "
		            "\"host:port\"} (addr optional)");
		goto out;
	}
	if (addr_j)
		addr = json_string_value(addr_j);
	if (sl_dag_role_of(s, ns, auth->key, &held) != SL_OK ||
	    sl_dag_root_entry(s, ns, &root) != SL_OK) {
		server_fail_store(resp);
		goto out;
	}
	if (held < role) {
		if ((rc = sl_dag_requests_pending(s, ns, &pending)) != SL_OK) {
			server_fail_store(resp);
			goto out;
		}
		if (pending >= SL_DAG_PENDING_MAX) {
			server_fail(resp, 503, "too many requests for a role wait for an admin");
			resp->retry_after_s = 60;
			goto out;
		}
		if (sl_dag_request_submit(s, ns, auth->key, role, addr, sl_clock_wall_ms(), &r) !=
		    SL_OK) {
			reply_store_error(resp);
			goto out;
		}
		state = r.state == SL_DAG_REQUEST_DENIED ? "denied" : "pending";
	} else {
		memset(&r, 0, sizeof(r));
		state = "approved";
	}
	if (!(root_hex = sl_malloc(2 * root.len + 1))) {
		server_fail(resp, 503, "out of memory");
		goto out;
	}
	sl_hex_encode(root_hex, root.data, root.len);
	if (sl_buf_printf(&resp->body,
	                  "{\"request\":%llu,\"state\":\"%s\",\"role\":\"%s\",\"name\":\"%s\","
	                  "\"root\":\"%s\"}",
	                  (unsigned long long)r.id, state,
	                  sl_dag_role_name(held >= role ? held : role), ns, root_hex) != SL_OK)
		server_fail_last(resp);
out:
	json_decref(body);
	sl_free(root_hex);
	sl_buf_free(&root);
}

void server_dag_handle(server_dag *d, sl_store *s, const sl_http_request *req, const char *rest,
                       sl_http_response *resp)
{
	char ns[SL_NS_NAME_MAX + 1];
	sl_request_auth auth;
	enum dag_ep ep;
	sl_digest id;
	char msg[160];

	if (parse_route(rest, &id, &ep) != SL_OK) {
		server_fail(resp, 404, "no such endpoint");
		return;
	}
	if (strcmp(req->method, dag_eps[ep].method) != 0) {
		snprintf(msg, sizeof(msg), "use %s", dag_eps[ep].method);
		server_fail(resp, 405, msg);
		return;
	}
	if (req->body_len > dag_eps[ep].max_body) {
		snprintf(msg, sizeof(msg), "a %s request is at most %zu bytes", dag_eps[ep].name,
		         dag_eps[ep].max_body);
		server_fail(resp, 413, msg);
		return;
	}
	if (authenticate(d, s, req, &auth, resp) != SL_OK) {
		sl_metric_add(d->refused_auth, 1);
		return;
	}
	if (sl_dag_find(s, &id, ns) != SL_OK) {
		/* Whether a namespace is held is told only to signed requests. */
		server_fail(resp, 404, "no such dag namespace here");
		return;
	}
	if (ep == DAG_JOIN) {
		handle_join(s, ns, &auth, req, resp);
		return;
	}
	if (authorize(s, ns, &auth, resp) != SL_OK) {
		sl_metric_add(d->refused_auth, 1);
		return;
	}
	switch (ep) {
	case DAG_TIPS:
		if (sl_dag_tips_answer(s, ns, &id, &resp->body) != SL_OK)
			server_fail_store(resp);
		break;
	case DAG_RECONCILE:
		handle_reconcile(d, s, ns, &id, req, resp);
		break;
	case DAG_ENTRIES:
		handle_entries(d, s, ns, req, resp);
		break;
	case DAG_BOOTSTRAP:
		handle_bootstrap(d, s, ns, &id, req, resp);
		break;
	default:
		handle_push(d, s, ns, &id, &auth, req, resp);
		break;
	}
}

int server_dag_route(const char *path, const char **rest)
{
	if (strncmp(path, DAG_PREFIX, strlen(DAG_PREFIX)) != 0)
		return 0;
	*rest = path + strlen(DAG_PREFIX);
	return 1;
}
