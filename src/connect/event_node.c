/* The node event source: a namespace of a remote node, read over its sync
 * endpoints (docs/protocol.md, "Sync") and verified as `sluice sync`
 * verifies it (the checks are shared: src/sync/answer_check.c).
 *
 * The source keeps the target T it adopted (size, root; signed by the
 * trusted key when one is given). A read from `from`:
 *   from < T.size   fetch ops [from, min(from + frame_ops, T.size)) with a
 *                   range proof against T.size, check the frame, and give
 *                   its set, update and delete operations as events; more
 *                   frames while the batch has room;
 *   from == T.size  long-poll the target (GET .../target?after=&wait_ms=);
 *                   a larger one is adopted after a consistency proof from
 *                   T, and its operations are read at once;
 *   from > T.size   SL_EINVAL.
 * The last verified frame is kept, so a read that stopped inside it (a
 * full batch) or a read again from the same place (the caller retrying)
 * costs no request.
 *
 * Invariants:
 *   V1. Nothing reaches `out` unverified: every event comes from a frame
 *       that passed sl_sync_check_ops against T's root, T was signed by the
 *       trusted key (when set), and T extends the state restored (V2).
 *   V2. T only grows: a new target is adopted only after a consistency
 *       proof from T verifies, and the first one only after one from the
 *       restored state (when there is one). A smaller target, another root
 *       at the same size, or a failed proof is SL_EVERIFY.
 *   V3. A read that fails appends nothing; a read that already appended
 *       events when a later request fails returns them, and the next read
 *       meets the failure.
 *   V4. No retry loop inside: a read makes at most a long poll, a
 *       consistency proof and the frames the batch has room for. Network
 *       errors, timeouts and 5xx are SL_EIO/SL_ETIMEOUT, a 429 is SL_EBUSY
 *       (and no request is made before its Retry-After), for the caller to
 *       retry with its backoff.
 *
 * A server that does not long-poll answers the target at once; when the
 * size did not change, the read sleeps what is left of wait_ms, at most
 * UNCHANGED_SLEEP_MAX_MS, so a caller reading in a loop does not spin.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "connect/event_internal.h"
#include "sluice/net.h"
#include "sluice/sync.h"

#define BASE_MAX               400
#define URL_MAX                (BASE_MAX + 256)
#define POLL_WAIT_MAX_MS       25000
#define UNCHANGED_SLEEP_MAX_MS 50
#define TARGET_BODY_MAX        ((size_t)1 << 20)

typedef struct node_src {
	char base[BASE_MAX + 1]; /* "http://HOST:PORT" */
	char ns[SL_NS_NAME_MAX + 1];
	uint8_t trust_key[SL_ED25519_PK_LEN];
	int has_trust_key;
	unsigned request_timeout_ms;
	uint32_t frame_ops;
	sl_http_client *http;      /* frames, proofs, plain target requests */
	sl_http_client *poll_http; /* long polls: its timeout covers the wait */
	sl_signed_target target;   /* T */
	int has_target;
	sl_target restored; /* from restore_state, until T is adopted */
	int has_restored;
	uint64_t throttled_until_ns;
	sl_buf frame_body; /* the last verified frame; frame borrows from it */
	sl_wire_ops frame;
	int has_frame;
} node_src;

void sl_node_source_options_init(sl_node_source_options *o)
{
	memset(o, 0, sizeof(*o));
	o->request_timeout_ms = 10000;
	o->frame_ops = 1000;
}

/* ------------------------------------------------------------------ HTTP */

static void url_for(const node_src *r, char *out, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void url_for(const node_src *r, char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(out, cap, "%s/api/v0/ns/%s/", r->base, r->ns);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < cap)
		vsnprintf(out + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

static int new_client(sl_http_client **out, unsigned timeout_ms, size_t max_response)
{
	sl_http_client_options ho;
	sl_http_client_options_init(&ho);
	ho.max_in_flight = 1;
	ho.request_timeout_ms = timeout_ms;
	ho.connect_timeout_ms = timeout_ms < 5000 ? timeout_ms : 5000;
	ho.max_response = max_response;
	return sl_http_client_new(out, &ho);
}

/* GET url: SL_OK with a 2xx answer in *res, else the error the read
 * returns (V4). The caller frees *res either way. */
static int get(node_src *r, sl_http_client *c, const char *url, const char *what,
               sl_http_result *res)
{
	uint64_t now = sl_clock_mono_ns();
	int code, rc;

	sl_http_result_init(res);
	if (now < r->throttled_until_ns)
		return sl_error_set(
		        SL_EBUSY, "node %s asked to wait %llu ms more before %s", r->base,
		        (unsigned long long)((r->throttled_until_ns - now) / 1000000), what);
	if ((rc = sl_http_client_fetch(c, "GET", url, NULL, NULL, 0, res)) != SL_OK)
		return sl_error_set(rc, "node %s: %s: %s", r->base, what, res->error);
	if (res->status >= 200 && res->status < 300)
		return SL_OK;
	if (res->status == 429) {
		uint64_t wait = sl_http_retry_after_ms(res, 1000);
		r->throttled_until_ns = sl_clock_mono_ns() + wait * 1000000;
		return sl_error_set(SL_EBUSY, "node %s: %s: asked to slow down for %llu ms",
		                    r->base, what, (unsigned long long)wait);
	}
	code = res->status == 404                         ? SL_ENOTFOUND
	       : res->status == 401 || res->status == 403 ? SL_EAUTH
	       : res->status >= 400 && res->status < 500  ? SL_EINVAL
	                                                  : SL_EIO;
	return sl_error_set(code, "node %s: %s: HTTP %ld: %.*s", r->base, what, res->status,
	                    (int)(res->body.len < 200 ? res->body.len : 200),
	                    res->body.data ? (const char *)res->body.data : "");
}

/* GET .../target, or with poll its long poll for a size past T's. */
static int fetch_target(node_src *r, int poll, uint64_t wait_ms, sl_signed_target *out)
{
	char url[URL_MAX];
	sl_http_result res;
	sl_http_client *c = r->http;
	int rc;

	if (poll) {
		if (!r->poll_http &&
		    (rc = new_client(&r->poll_http, r->request_timeout_ms + POLL_WAIT_MAX_MS,
		                     TARGET_BODY_MAX)) != SL_OK)
			return rc;
		c = r->poll_http;
		url_for(r, url, sizeof(url), "target?after=%llu&wait_ms=%llu",
		        (unsigned long long)r->target.target.size, (unsigned long long)wait_ms);
	} else {
		url_for(r, url, sizeof(url), "target");
	}
	if ((rc = get(r, c, url, "fetch the target", &res)) != SL_OK)
		goto cleanup;
	if (sl_target_from_json(out, (const char *)res.body.data, res.body.len) != SL_OK) {
		rc = sl_error_set(SL_EVERIFY, "node %s: its target of '%s' does not parse: %s",
		                  r->base, r->ns, sl_error_last()->message);
	} else if (strcmp(out->ns, r->ns) != 0) {
		rc = sl_error_set(SL_EVERIFY, "node %s: asked for the target of '%s', got '%s'",
		                  r->base, r->ns, out->ns);
	} else if (r->has_trust_key && sl_target_verify(out, r->trust_key) != SL_OK) {
		rc = sl_error_set(SL_EVERIFY, "node %s: the target of '%s' is refused: %s", r->base,
		                  r->ns, sl_error_last()->message);
	}
cleanup:
	sl_http_result_free(&res);
	return rc;
}

/* SL_OK when t extends the log verified at (old_size, old_root): the same
 * commit, or a longer log with a consistency proof (V2). */
static int check_extends(node_src *r, uint64_t old_size, const sl_digest *old_root,
                         const sl_signed_target *t)
{
	char url[URL_MAX];
	sl_http_result res;
	int rc;

	if (t->target.size < old_size)
		return sl_error_set(SL_EVERIFY,
		                    "node %s went back from %llu to %llu operations in '%s': it "
		                    "rewrote its history",
		                    r->base, (unsigned long long)old_size,
		                    (unsigned long long)t->target.size, r->ns);
	if (t->target.size == old_size) {
		if (!sl_digest_eq(&t->target.root, old_root))
			return sl_error_set(SL_EVERIFY,
			                    "node %s announced another root for %llu operations of "
			                    "'%s': it rewrote its history",
			                    r->base, (unsigned long long)old_size, r->ns);
		return SL_OK;
	}
	if (old_size == 0) /* every log extends the empty one */
		return SL_OK;
	url_for(r, url, sizeof(url), "consistency?from=%llu&to=%llu", (unsigned long long)old_size,
	        (unsigned long long)t->target.size);
	rc = get(r, r->http, url, "fetch a consistency proof", &res);
	if (rc == SL_EINVAL) /* it answered, and cannot prove it */
		rc = sl_error_set(SL_EVERIFY,
		                  "node %s cannot prove that its log of '%s' extends the one "
		                  "verified at %llu operations: %s",
		                  r->base, r->ns, (unsigned long long)old_size,
		                  sl_error_last()->message);
	else if (rc == SL_OK &&
	         (rc = sl_sync_check_consistency(res.body.data, res.body.len, old_size, old_root,
	                                         &t->target)) != SL_OK)
		sl_error_wrap("node %s, '%s'", r->base, r->ns);
	sl_http_result_free(&res);
	return rc;
}

/* T, fetched (and checked against the restored state) if there is none. */
static int ensure_target(node_src *r)
{
	sl_signed_target t;
	int rc;

	if (r->has_target)
		return SL_OK;
	if ((rc = fetch_target(r, 0, 0, &t)) != SL_OK)
		return rc;
	if (r->has_restored &&
	    (rc = check_extends(r, r->restored.size, &r->restored.root, &t)) != SL_OK)
		return rc;
	r->target = t;
	r->has_target = 1;
	return SL_OK;
}

/* Wait up to wait_ms for a target past T and adopt it (V2). */
static int poll_target(node_src *r, uint64_t wait_ms)
{
	uint64_t started = sl_clock_mono_ns(), elapsed_ms;
	sl_signed_target t;
	int rc;

	if ((rc = fetch_target(r, 1, wait_ms < POLL_WAIT_MAX_MS ? wait_ms : POLL_WAIT_MAX_MS,
	                       &t)) != SL_OK ||
	    (rc = check_extends(r, r->target.target.size, &r->target.target.root, &t)) != SL_OK)
		return rc;
	if (t.target.size > r->target.target.size) {
		r->target = t;
		return SL_OK;
	}
	elapsed_ms = (sl_clock_mono_ns() - started) / 1000000;
	if (elapsed_ms < wait_ms) /* a server that does not long-poll */
		sl_sleep_ms(wait_ms - elapsed_ms < UNCHANGED_SLEEP_MAX_MS ? wait_ms - elapsed_ms
		                                                          : UNCHANGED_SLEEP_MAX_MS);
	return SL_OK;
}

/* ---------------------------------------------------------------- frames */

static void drop_frame(node_src *r)
{
	sl_wire_ops_free(&r->frame);
	sl_buf_free(&r->frame_body);
	r->has_frame = 0;
}

static int frame_covers(const node_src *r, uint64_t pos)
{
	return r->has_frame && pos >= r->frame.start && pos - r->frame.start < r->frame.n;
}

/* Fetch and check the frame at from; it replaces the kept one only when
 * it verifies (V1). */
static int fetch_frame(node_src *r, uint64_t from)
{
	uint64_t count = r->target.target.size - from;
	char url[URL_MAX];
	sl_http_result res;
	sl_wire_ops ops;
	int rc;

	memset(&ops, 0, sizeof(ops));
	if (count > r->frame_ops)
		count = r->frame_ops;
	url_for(r, url, sizeof(url), "ops?start=%llu&max=%llu&size=%llu", (unsigned long long)from,
	        (unsigned long long)count, (unsigned long long)r->target.target.size);
	if ((rc = get(r, r->http, url, "fetch operations", &res)) != SL_OK) {
		if (res.rc == SL_OK && res.status == 410)
			rc = sl_error_set(SL_EINVAL,
			                  "node %s pruned the operations of '%s' before position "
			                  "%llu: they can no longer be read (%.*s)",
			                  r->base, r->ns, (unsigned long long)from,
			                  (int)(res.body.len < 200 ? res.body.len : 200),
			                  res.body.data ? (const char *)res.body.data : "");
		goto cleanup;
	}
	if ((rc = sl_wire_ops_decode(&ops, res.body.data, res.body.len)) != SL_OK ||
	    (rc = sl_sync_check_ops(&ops, from, count, &r->target.target, NULL, NULL)) != SL_OK) {
		if (rc != SL_ENOMEM)
			rc = sl_error_set(
			        SL_EVERIFY,
			        "node %s: the frame of '%s' for [%llu, +%llu) against %llu "
			        "operations is refused: %s",
			        r->base, r->ns, (unsigned long long)from, (unsigned long long)count,
			        (unsigned long long)r->target.target.size,
			        sl_error_last()->message);
		sl_wire_ops_free(&ops);
		goto cleanup;
	}
	drop_frame(r);
	r->frame = ops;
	r->frame_body = res.body; /* the ops borrow from it */
	sl_buf_init(&res.body, 0);
	r->has_frame = 1;
cleanup:
	sl_http_result_free(&res);
	return rc;
}

/* Events from the kept frame, from *pos on, while the batch has room. */
static int take_frame(node_src *r, uint64_t *pos, sl_event_batch *out, size_t *added,
                      size_t max_events, size_t max_bytes)
{
	for (size_t i = (size_t)(*pos - r->frame.start); i < r->frame.n; i++) {
		static const sl_bytes no_value = {NULL, 0};
		uint64_t loc = r->frame.start + i;
		sl_event_op kind;
		sl_bytes value;
		sl_op op;
		int rc;

		sl_op_decode(&op, r->frame.elements[i].data,
		             r->frame.elements[i].len); /* checked */
		if (op.type == SL_OP_COMMIT) {
			*pos = loc + 1;
			continue;
		}
		if (sl_event_batch_full(out, *added, max_events, max_bytes))
			return SL_OK;
		kind = op.type == SL_OP_SET      ? SL_EVENT_SET
		       : op.type == SL_OP_UPDATE ? SL_EVENT_UPDATE
		                                 : SL_EVENT_DELETE;
		value = kind == SL_EVENT_DELETE ? no_value : r->frame.values[i];
		if ((rc = sl_event_batch_add(out, loc, kind, op.key, op.key_len, value.data,
		                             value.len, loc + 1)) != SL_OK)
			return rc;
		(*added)++;
		*pos = loc + 1;
	}
	return SL_OK;
}

/* ---------------------------------------------------------------- source */

static int node_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                     uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	node_src *r = self;
	size_t n0 = out->n, added = 0;
	uint64_t pos = from;
	int rc;

	*at_end = 0;
	if (max_events == 0)
		return sl_error_set(SL_EINVAL, "a read of at most 0 events");
	if ((rc = ensure_target(r)) != SL_OK)
		return rc;
	if (from > r->target.target.size)
		return sl_error_set(SL_EINVAL,
		                    "position %llu is past the log of '%s' on node %s (%llu "
		                    "operations verified)",
		                    (unsigned long long)from, r->ns, r->base,
		                    (unsigned long long)r->target.target.size);
	if (from == r->target.target.size && (rc = poll_target(r, wait_ms)) != SL_OK)
		return rc;
	rc = SL_OK;
	while (pos < r->target.target.size &&
	       !sl_event_batch_full(out, added, max_events, max_bytes)) {
		if (!frame_covers(r, pos) && (rc = fetch_frame(r, pos)) != SL_OK)
			break;
		if ((rc = take_frame(r, &pos, out, &added, max_events, max_bytes)) != SL_OK)
			break;
	}
	if (rc != SL_OK && added == 0) {
		sl_event_batch_truncate(out, n0);
		return rc;
	}
	*next = pos; /* a failure after events: the next read meets it (V3) */
	return SL_OK;
}

static int node_head(void *self, sl_event_source_head *out)
{
	node_src *r = self;
	int rc = ensure_target(r);
	if (rc != SL_OK)
		return rc;
	out->end = r->target.target.size;
	out->known = 1;
	return SL_OK;
}

static int node_save_state(void *self, char *out, size_t cap)
{
	node_src *r = self;
	const sl_target *t = r->has_target     ? &r->target.target
	                     : r->has_restored ? &r->restored
	                                       : NULL;
	sl_digest_hex root;
	int n;

	if (cap == 0)
		return sl_error_set(SL_ETOOLARGE, "no room for the source's state");
	out[0] = '\0';
	if (!t)
		return SL_OK;
	root = sl_digest_to_hex(&t->root);
	n = snprintf(out, cap, "%llu %s", (unsigned long long)t->size, root.s);
	if (n < 0 || (size_t)n >= cap) {
		out[0] = '\0';
		return sl_error_set(SL_ETOOLARGE, "the source's state needs %d bytes, %zu given", n,
		                    cap);
	}
	return SL_OK;
}

/* "SIZE HEXROOT": a decimal without leading zeros, one space, 64
 * lower-case hex digits. */
static int node_restore_state(void *self, const char *state)
{
	node_src *r = self;
	sl_target t;
	const char *p = state, *hex;
	size_t digits = 0;

	memset(&t, 0, sizeof(t));
	if (r->has_target)
		return sl_error_set(SL_EINVAL,
		                    "node source: restore the state before the first read");
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (t.size > (UINT64_MAX - d) / 10)
			break;
		t.size = t.size * 10 + d;
	}
	hex = p + 1;
	if (digits == 0 || (digits > 1 && state[0] == '0') || *p != ' ' ||
	    strspn(hex, "0123456789abcdef") != 2 * SL_DIGEST_LEN ||
	    hex[2 * SL_DIGEST_LEN] != '\0' || sl_digest_from_hex(&t.root, hex) != SL_OK)
		return sl_error_set(
		        SL_ECORRUPT,
		        "node source state '%.80s' is not \"SIZE ROOT\" (a decimal size "
		        "and 64 lower-case hex digits)",
		        state);
	r->restored = t;
	r->has_restored = 1;
	return SL_OK;
}

static void node_close(void *self)
{
	node_src *r = self;
	if (!r)
		return;
	drop_frame(r);
	sl_http_client_free(r->http);
	sl_http_client_free(r->poll_http);
	sl_free(r);
}

static const sl_event_source_ops node_ops = {
        "node", node_read, node_head, node_save_state, node_restore_state, node_close,
};

int sl_node_source_open(sl_event_source *out, const sl_node_source_options *o)
{
	node_src *r;
	size_t len;
	int rc;

	if (!o || !o->url || !*o->url || !o->ns)
		return sl_error_set(SL_EINVAL, "a node source needs a url and a namespace");
	if ((rc = sl_ns_name_validate(o->ns)) != SL_OK)
		return rc;
	if (!(r = sl_calloc(1, sizeof(*r))))
		return SL_ENOMEM;
	len = (size_t)snprintf(r->base, sizeof(r->base), "%s%s",
	                       strncmp(o->url, "http://", 7) == 0 ||
	                                       strncmp(o->url, "https://", 8) == 0
	                               ? ""
	                               : "http://",
	                       o->url);
	if (len >= sizeof(r->base)) {
		rc = sl_error_set(SL_EINVAL, "node url longer than %d bytes", BASE_MAX);
		goto fail;
	}
	while (len > 0 && r->base[len - 1] == '/')
		r->base[--len] = '\0';
	strcpy(r->ns, o->ns);
	if (o->trust_key) {
		memcpy(r->trust_key, o->trust_key, SL_ED25519_PK_LEN);
		r->has_trust_key = 1;
	}
	r->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 10000;
	r->frame_ops = o->frame_ops == 0                ? 1000
	               : o->frame_ops > SL_WIRE_MAX_OPS ? SL_WIRE_MAX_OPS
	                                                : o->frame_ops;
	sl_buf_init(&r->frame_body, 0);
	if ((rc = new_client(&r->http, r->request_timeout_ms, SL_SYNC_FRAME_MAX)) != SL_OK ||
	    (rc = sl_event_source_set_name(out, "node:%s/%s", r->base, r->ns)) != SL_OK)
		goto fail;
	out->ops = &node_ops;
	out->self = r;
	return SL_OK;
fail:
	node_close(r);
	return rc;
}
