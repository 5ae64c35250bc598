/* The engine's HTTP API (`sluice engine serve`; docs/cli.md, "Engine HTTP
 * API"):
 *
 *   PUT    /api/v0/kv/{key}          body = value; Sluice-Ack: memory|l2|local|l3,
 *                                    Sluice-Tiers: l2|l3|l2,l3, Sluice-TTL: ms (L2's copy)
 *                                    200 {"version": N} once acknowledged
 *   GET    /api/v0/kv/{key}          200 the value, Sluice-Version: N; 404
 *   DELETE /api/v0/kv/{key}          200 {"version": N} (a tombstone)
 *   GET    /api/v0/kv/{key}/status   {"version", "deleted", "l1", "wal", "l2", "l3", "parked"}
 *   GET    /api/v0/engine/status     levels, WAL backlog, L3 lag, L2, breakers, parked rows
 *   POST   /api/v0/kv-reconcile      a negentropy message over L3's items in,
 *                                    the responder's reply out (engine_items.c)
 *   POST   /api/v0/kv-reconcile/keys item ids in, a keys frame out: the key,
 *                                    version and value digest of each
 *
 * The two reconcile endpoints only read, like GET, and need no token.
 * A key whose last segment is `status` is read with GET .../{key}?value.
 * Errors are {"error": code, "message": ...}: 400 a bad key or header, 401
 * a missing token, 413 a body past the cap, 429 backpressure (Retry-After),
 * 503 when the WAL cannot write, L3 did not take an `l3` write in time, or
 * a read needs L3 while its circuit breaker is open (l3_unavailable).
 * Nothing is written on any error.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "sluice/store.h"

#define KV_PREFIX     "/api/v0/kv/"
#define STATUS_SUFFIX "/status"
#define ENGINE_STATUS "/api/v0/engine/status"
#define PARKED_SHOWN  1000
#define RETRY_AFTER_S 1
#define KV_RECONCILE  "/api/v0/kv-reconcile"
#define KV_KEYS       "/api/v0/kv-reconcile/keys"
#define KEYS_REQ_MAX  (6 + (size_t)SL_WIRE_MAX_IDS * SL_ITEM_ID_LEN)

struct sl_engine_http {
	sl_engine *e;
	char *token;
	size_t max_body;
	sl_engine_items *items; /* the diff's; L3 is opened at the first reconcile */
};

int sl_engine_http_new(sl_engine_http **out, sl_engine *e, const sl_engine_http_options *o)
{
	sl_engine_http *h = sl_calloc(1, sizeof(*h));
	if (h == NULL)
		return SL_ENOMEM;
	h->e = e;
	h->max_body = o && o->max_body ? o->max_body : e->cfg.value_max;
	int rc = sl_engine_items_new(&h->items, &e->cfg);
	if (rc == SL_OK && o && o->token && (h->token = sl_strdup(o->token)) == NULL)
		rc = SL_ENOMEM;
	if (rc != SL_OK) {
		sl_engine_items_free(h->items);
		sl_free(h);
		return rc;
	}
	*out = h;
	return SL_OK;
}

void sl_engine_http_free(sl_engine_http *h)
{
	if (h == NULL)
		return;
	if (h->token) {
		memset(h->token, 0, strlen(h->token));
		sl_free(h->token);
	}
	sl_engine_items_free(h->items);
	sl_free(h);
}

/* The status and code of an engine error. */
static void fail(sl_http_response *resp, int rc)
{
	const char *msg = sl_error_last()->message;
	switch (rc) {
	case SL_EINVAL:
		sl_http_response_error(resp, 400, "bad_request", "%s", msg);
		break;
	case SL_ETOOLARGE:
		sl_http_response_error(resp, 413, "too_large", "%s", msg);
		break;
	case SL_ENOTFOUND:
		sl_http_response_error(resp, 404, "not_found", "%s", msg);
		break;
	case SL_EBUSY:
		sl_http_response_error(resp, 429, "busy", "%s", msg);
		resp->retry_after_s = RETRY_AFTER_S;
		break;
	case SL_ETIMEOUT:
		sl_http_response_error(resp, 503, "l3_timeout", "%s", msg);
		resp->retry_after_s = RETRY_AFTER_S;
		break;
	case SL_EUNAVAILABLE:
		sl_http_response_error(resp, 503, "l3_unavailable", "%s", msg);
		resp->retry_after_s = RETRY_AFTER_S;
		break;
	case SL_ENOMEM:
	case SL_EIO:
		sl_http_response_error(resp, 503, "unavailable", "%s", msg);
		resp->retry_after_s = RETRY_AFTER_S;
		break;
	default:
		sl_http_response_error(resp, 500, "internal", "%s", msg);
	}
}

static void send_json(sl_http_response *resp, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL || sl_buf_append_str(&resp->body, text) != SL_OK)
		sl_http_response_error(resp, 500, "internal", "cannot build the answer");
	free(text);
}

static void send_version(sl_http_response *resp, uint64_t version)
{
	send_json(resp, json_pack("{s:I}", "version", (json_int_t)version));
}

#define TTL_MAX_MS (UINT64_C(1) << 40)

/* Sluice-Ack, Sluice-Tiers and Sluice-TTL (milliseconds). */
static int parse_write_options(const sl_http_request *req, sl_submit_options *o)
{
	sl_submit_options_init(o);
	const char *ack = sl_http_request_header(req, "Sluice-Ack");
	const char *tiers = sl_http_request_header(req, "Sluice-Tiers");
	const char *ttl = sl_http_request_header(req, "Sluice-TTL");
	int rc = ack ? sl_ack_parse(&o->ack, ack) : SL_OK;
	if (rc == SL_OK && tiers)
		rc = sl_tiers_parse(&o->tiers, tiers);
	if (rc == SL_OK && ttl) {
		uint64_t v = 0;
		const char *p = ttl;
		for (; *p >= '0' && *p <= '9' && v <= TTL_MAX_MS; p++)
			v = v * 10 + (uint64_t)(*p - '0');
		if (p == ttl || *p != '\0' || v == 0 || v > TTL_MAX_MS)
			rc = sl_error_set(SL_EINVAL,
			                  "Sluice-TTL is milliseconds, 1 to %" PRIu64
			                  ", not '%.40s'",
			                  TTL_MAX_MS, ttl);
		o->ttl_ms = v;
	}
	return rc;
}

static int authorized(sl_engine_http *h, const sl_http_request *req, sl_http_response *resp)
{
	if (h->token == NULL || sl_http_request_bearer_ok(req, h->token))
		return 1;
	sl_http_response_error(resp, 401, "unauthorized", "a valid bearer token is required");
	return 0;
}

static void handle_write(sl_engine_http *h, const sl_http_request *req, const char *key, size_t len,
                         int deleted, sl_http_response *resp)
{
	sl_submit_options o;
	uint64_t version = 0;
	if (!authorized(h, req, resp))
		return;
	int rc = parse_write_options(req, &o);
	if (rc == SL_OK && !deleted && req->body_len > h->max_body)
		rc = sl_error_set(SL_ETOOLARGE, "the body has %zu bytes; the cap is %zu",
		                  req->body_len, h->max_body);
	if (rc == SL_OK)
		rc = deleted ? sl_engine_delete(h->e, key, len, &o, &version)
		             : sl_engine_submit(h->e, key, len, req->body, req->body_len, &o,
		                                &version);
	if (rc != SL_OK)
		fail(resp, rc);
	else
		send_version(resp, version);
}

static void handle_get(sl_engine_http *h, const char *key, size_t len, sl_http_response *resp)
{
	uint64_t version = 0;
	int rc = sl_engine_get(h->e, key, len, &resp->body, &version);
	if (rc != SL_OK) {
		fail(resp, rc);
		return;
	}
	resp->content_type = "application/octet-stream";
	snprintf(resp->header_name, sizeof(resp->header_name), "Sluice-Version");
	snprintf(resp->header_value, sizeof(resp->header_value), "%llu",
	         (unsigned long long)version);
}

static void handle_key_status(sl_engine_http *h, const char *key, size_t len,
                              sl_http_response *resp)
{
	sl_key_status st;
	int rc = sl_engine_key_status(h->e, key, len, &st);
	if (rc != SL_OK) {
		fail(resp, rc);
		return;
	}
	send_json(resp, json_pack("{s:I,s:b,s:b,s:b,s:b,s:b,s:b}", "version",
	                          (json_int_t)st.version, "deleted", st.deleted, "l1", st.l1, "wal",
	                          st.wal, "l2", st.l2, "l3", st.l3, "parked", st.parked));
}

static int add_parked(void *ctx, const sl_parked_row *r)
{
	json_t *list = ctx;
	if (json_array_size(list) >= PARKED_SHOWN)
		return 1;
	json_t *row = json_pack("{s:s%,s:I,s:b,s:I,s:i,s:s}", "key", r->key, r->key_len, "version",
	                        (json_int_t)r->version, "deleted", r->deleted, "value_len",
	                        (json_int_t)r->value_len, "attempts", (int)r->attempts, "error",
	                        r->error);
	return row && json_array_append_new(list, row) == 0 ? SL_OK : SL_ENOMEM;
}

/* {"l3": {"state", "state_ms", "opened", "refused", "failures",
 * "successes"}, ...}: one entry per backend's circuit breaker. */
static json_t *breakers_json(const sl_engine_stats *s)
{
	json_t *all = json_object();
	for (size_t i = 0; all && i < s->n_breakers; i++) {
		const sl_engine_breaker_stats *b = &s->breakers[i];
		json_t *one = json_pack(
		        "{s:s,s:I,s:I,s:I,s:I,s:I}", "state", sl_breaker_state_name(b->state),
		        "state_ms", (json_int_t)b->state_ms, "opened", (json_int_t)b->opened,
		        "refused", (json_int_t)b->refused, "failures", (json_int_t)b->failures,
		        "successes", (json_int_t)b->successes);
		if (one == NULL || json_object_set_new(all, b->backend, one) != 0) {
			json_decref(all);
			return NULL;
		}
	}
	return all;
}

static void handle_engine_status(sl_engine_http *h, sl_http_response *resp)
{
	sl_engine_stats s;
	sl_engine_stats_get(h->e, &s);
	json_t *parked = json_array();
	if (parked == NULL || sl_engine_parked(h->e, add_parked, parked) < 0) {
		json_decref(parked);
		sl_http_response_error(resp, 500, "internal", "cannot list the parked rows");
		return;
	}
	json_t *j = json_pack(
	        "{s:s,s:f,"
	        "s:{s:I,s:I,s:I,s:I,s:I},"
	        "s:{s:I,s:I,s:I,s:I,s:I,s:I},"
	        "s:{s:b,s:I,s:I,s:s,s:I,s:I,s:I},"
	        "s:{s:b,s:I},"
	        "s:{s:I,s:I,s:I,s:I,s:I,s:I},"
	        "s:I,s:o}",
	        "pressure", sl_pressure_name(s.pressure), "pressure_ratio", s.pressure_ratio, "l1",
	        "entries", (json_int_t)s.l1_entries, "bytes", (json_int_t)s.l1_bytes, "dirty_bytes",
	        (json_int_t)s.l1_dirty_bytes, "pinned_bytes", (json_int_t)s.l1_pinned_bytes,
	        "budget_bytes", (json_int_t)s.l1_budget_bytes, "wal", "bytes",
	        (json_int_t)s.wal_bytes, "segments", (json_int_t)s.wal_segments, "max_bytes",
	        (json_int_t)s.wal_max_bytes, "oldest_age_ms", (json_int_t)s.wal_oldest_age_ms,
	        "lsn", (json_int_t)s.wal_lsn, "synced_lsn", (json_int_t)s.wal_synced_lsn, "l3",
	        "up", s.l3_up, "lsn", (json_int_t)s.l3_lsn, "lag", (json_int_t)s.l3_lag, "error",
	        s.l3_error, "rows", (json_int_t)s.l3_rows, "batches", (json_int_t)s.l3_batches,
	        "retrying", (json_int_t)s.retrying, "filter", "trusted", s.filter_trusted, "keys",
	        (json_int_t)s.filter_keys, "counts", "submitted", (json_int_t)s.submitted,
	        "deleted", (json_int_t)s.deleted, "rejected", (json_int_t)s.rejected, "gets_l1",
	        (json_int_t)s.gets_l1, "gets_l3", (json_int_t)s.gets_l3, "gets_filter_miss",
	        (json_int_t)s.gets_filter_miss, "parked_count", (json_int_t)s.parked, "parked",
	        parked);
	json_t *breakers = j ? breakers_json(&s) : NULL;
	if (j && (breakers == NULL || json_object_set_new(j, "breakers", breakers) != 0)) {
		json_decref(j);
		j = NULL;
	}
	if (j && s.l2_enabled &&
	    json_object_set_new(
	            j, "l2",
	            json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "up", s.l2_up,
	                      "trusted", s.l2_trusted, "generation", (json_int_t)s.l2_generation,
	                      "hits", (json_int_t)s.l2_hits, "misses", (json_int_t)s.l2_misses,
	                      "skipped", (json_int_t)s.l2_skipped, "errors",
	                      (json_int_t)s.l2_errors, "writes", (json_int_t)s.l2_writes, "dropped",
	                      (json_int_t)s.l2_dropped, "queued", (json_int_t)s.l2_queued, "error",
	                      s.l2_error)) != 0) {
		json_decref(j);
		j = NULL;
	}
	send_json(resp, j);
}

/* POST /api/v0/kv-reconcile[?frame_limit=L]: as a node's .../reconcile. */
static void handle_reconcile(sl_engine_http *h, const sl_http_request *req, sl_http_response *resp)
{
	const char *text = sl_http_request_query(req, "frame_limit");
	unsigned long long limit = SL_STATE_FRAME_MAX;
	char *end = NULL;
	int rc;

	if (req->body_len > SL_STATE_FRAME_MAX) {
		sl_http_response_error(resp, 413, "too_large",
		                       "a reconciliation message is at most %zu bytes",
		                       SL_STATE_FRAME_MAX);
		return;
	}
	if (text && text[0] >= '0' && text[0] <= '9')
		limit = strtoull(text, &end, 10);
	if (text && (end == NULL || *end != '\0' || limit < SL_RECONCILE_FRAME_MIN ||
	             limit > SL_STATE_FRAME_MAX)) {
		sl_http_response_error(resp, 400, "bad_request",
		                       "'frame_limit' must be between %d and %zu",
		                       SL_RECONCILE_FRAME_MIN, SL_STATE_FRAME_MAX);
		return;
	}
	/* checked here too, so that a bad message is the client's fault and
	 * whatever fails after it L3's */
	if (sl_reconcile_check(req->body, req->body_len) != SL_OK) {
		sl_http_response_error(resp, 400, "bad_request", "%s", sl_error_last()->message);
		return;
	}
	rc = sl_engine_reconcile_answer(h->items, (size_t)limit, req->body, req->body_len,
	                                &resp->body);
	if (rc != SL_OK) {
		sl_buf_reset(&resp->body);
		fail(resp, rc == SL_EINVAL ? SL_EIO : rc);
		return;
	}
	resp->content_type = "application/octet-stream";
}

/* POST /api/v0/kv-reconcile/keys: ids in, their keys frame out. */
static void handle_keys(sl_engine_http *h, const sl_http_request *req, sl_http_response *resp)
{
	const uint8_t *ids;
	unsigned flags;
	size_t n;
	int rc;

	if (req->body_len > KEYS_REQ_MAX) {
		sl_http_response_error(resp, 413, "too_large",
		                       "a keys request names at most %d ids", SL_WIRE_MAX_IDS);
		return;
	}
	rc = sl_wire_items_request_decode(&flags, &ids, &n, req->body, req->body_len);
	if (rc == SL_OK && flags != 0)
		rc = sl_error_set(SL_EINVAL, "a keys request has no flags: an engine sends no "
		                             "values");
	if (rc != SL_OK) {
		fail(resp, rc == SL_ETOOLARGE ? rc : SL_EINVAL);
		return;
	}
	rc = sl_engine_keys_answer(h->items, req->body, req->body_len, SL_STATE_ITEMS_BUDGET,
	                           &resp->body);
	if (rc != SL_OK) {
		sl_buf_reset(&resp->body);
		fail(resp, rc == SL_EINVAL ? SL_EIO : rc);
		return;
	}
	resp->content_type = "application/vnd.sluice.kv-keys";
}

void sl_engine_http_handle(void *ctx, const sl_http_request *req, sl_http_response *resp)
{
	sl_engine_http *h = ctx;
	const char *m = req->method, *path = req->path;
	if (strcmp(path, KV_RECONCILE) == 0 || strcmp(path, KV_KEYS) == 0) {
		if (strcmp(m, "POST") != 0)
			sl_http_response_error(resp, 405, "method_not_allowed", "use POST");
		else if (strcmp(path, KV_RECONCILE) == 0)
			handle_reconcile(h, req, resp);
		else
			handle_keys(h, req, resp);
		return;
	}
	if (strcmp(path, ENGINE_STATUS) == 0) {
		if (strcmp(m, "GET") == 0)
			handle_engine_status(h, resp);
		else
			sl_http_response_error(resp, 405, "method_not_allowed", "use GET");
		return;
	}
	if (strncmp(path, KV_PREFIX, strlen(KV_PREFIX)) != 0) {
		sl_http_response_error(resp, 404, "not_found", "no such endpoint");
		return;
	}
	const char *key = path + strlen(KV_PREFIX);
	size_t len = strlen(key), sl = strlen(STATUS_SUFFIX);
	int is_get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
	if (is_get && len > sl && strcmp(key + len - sl, STATUS_SUFFIX) == 0 &&
	    sl_http_request_query(req, "value") == NULL) {
		handle_key_status(h, key, len - sl, resp);
		return;
	}
	if (is_get)
		handle_get(h, key, len, resp);
	else if (strcmp(m, "PUT") == 0)
		handle_write(h, req, key, len, 0, resp);
	else if (strcmp(m, "DELETE") == 0)
		handle_write(h, req, key, len, 1, resp);
	else
		sl_http_response_error(resp, 405, "method_not_allowed", "use GET, PUT or DELETE");
}
