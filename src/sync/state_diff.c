/*
 * Diffing a namespace's state against a peer's, and pulling what differs.
 *
 * The local side is the initiator of set reconciliation over the state
 * items (docs/protocol.md, "Set reconciliation"); the peer answers, over
 * HTTP (a node's /reconcile and /items) or from a store open here. Both
 * are the same small vtable, so the diff does not know which it talks to.
 * The same loop serves sets that are not a store's: the local side can be
 * any item set with the keys of its ids (sl_diff_local), and the peer's
 * answers for ids come through a codec (sl_diff_codec) that checks them;
 * the diff between engines (engine/engine_items.c) is such a pair.
 *
 *   1. In one read snapshot of the local items: reconcile until done,
 *      gathering the ids only here ("have") and only there ("need"), then
 *      look up the key and digest of each "have" id. The snapshot ends.
 *   2. Ask the peer for the "need" ids (with values when pulling), in
 *      requests of at most 65536 ids, again for those a full frame left
 *      out. Every answer must be for an id asked for, answered once, and
 *      hash to it: SHA-256(key || 0 || digest) = id and, with values,
 *      SHA-256(value) = digest; anything else is SL_EVERIFY and nothing
 *      is written. An id the peer no longer has (it changed since) is
 *      counted as vanished.
 *   3. A key in both lists differs; the rest are only here or only there.
 *   4. Pulling: one batch puts the peer's values of the keys only there
 *      and, in a mutable namespace, of the keys that differ (in an
 *      immutable one they are conflicts, left alone), committed once.
 *      The batch holds each value as it arrives from its frame.
 */
#include "sluice/sync.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUNDS 100000 /* a peer that never lets reconciliation end */
#define HTTP_TRIES 3
#define HTTP_WAITS 20 /* 429s waited out for one request */
#define URL_MAX    600

typedef uint8_t item_id[SL_ITEM_ID_LEN];

/* ------------------------------------------------------------------ peers */

struct sl_diff_peer {
	int (*reconcile)(sl_diff_peer *p, const uint8_t *msg, size_t len, sl_buf *reply);
	int (*items)(sl_diff_peer *p, const uint8_t *request, size_t len, sl_buf *frame);
	const sl_diff_codec *codec;
	char name[URL_MAX];
	/* HTTP */
	sl_http_client *http;
	char reconcile_url[2 * URL_MAX]; /* http://host:port/api/v0/ns/{ns}/reconcile */
	char items_url[2 * URL_MAX];
	/* a local store */
	sl_store *store;
	char ns[SL_NS_NAME_MAX + 1];
};

static int store_reconcile(sl_diff_peer *p, const uint8_t *msg, size_t len, sl_buf *reply)
{
	return sl_state_reconcile_answer(p->store, p->ns, SL_STATE_FRAME_MAX, msg, len, reply);
}

static int store_items(sl_diff_peer *p, const uint8_t *request, size_t len, sl_buf *frame)
{
	return sl_state_items_answer(p->store, p->ns, request, len, SL_STATE_ITEMS_BUDGET, frame);
}

/* ----------------------------------------------------- the items codec */

static int items_request(sl_buf *out, int values, const uint8_t (*ids)[SL_ITEM_ID_LEN], size_t n)
{
	return sl_wire_items_request(out, values ? SL_WIRE_ITEMS_VALUES : 0, ids, n);
}

/* An items frame, each answer checked: SHA-256(key || 0 || digest) is its
 * id and, with values, SHA-256(value) its digest. */
static int items_decode(sl_diff_answers *out, int values, const uint8_t *frame, size_t len)
{
	sl_wire_items w;
	sl_diff_answer *found = NULL;
	int rc;

	if ((rc = sl_wire_items_decode(&w, values ? SL_WIRE_ITEMS_VALUES : 0, frame, len)) != SL_OK)
		return rc;
	if (w.n_found && !(found = sl_calloc(w.n_found, sizeof(*found)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < w.n_found; i++) {
		const sl_wire_item *it = &w.found[i];
		uint8_t id[SL_ITEM_ID_LEN];
		sl_digest actual;
		sl_state_item_id(id, it->key, it->key_len, &it->digest);
		if (memcmp(id, it->id, SL_ITEM_ID_LEN) != 0) {
			rc = sl_error_set(
			        SL_EVERIFY,
			        "item %s came with a key and digest that do not hash to it",
			        sl_digest_to_hex((const sl_digest *)it->id).s);
			goto cleanup;
		}
		if (values) {
			sl_sha256(&actual, it->value, (size_t)it->value_len);
			if (!sl_digest_eq(&actual, &it->digest)) {
				rc = sl_error_set(SL_EVERIFY,
				                  "the value of '%.*s' does not match its digest",
				                  (int)it->key_len, it->key);
				goto cleanup;
			}
		}
		found[i] = (sl_diff_answer){it->id, it->key, it->key_len, it->value,
		                            (size_t)it->value_len};
	}
	out->found = found;
	out->n_found = w.n_found;
	out->missing = w.missing;
	out->n_missing = w.n_missing;
	out->remaining = w.remaining;
	found = NULL;
cleanup:
	sl_free(found);
	sl_wire_items_free(&w);
	return rc;
}

static const sl_diff_codec items_codec = {items_request, items_decode};

int sl_diff_peer_store(sl_diff_peer **out, sl_store *s, const char *ns)
{
	sl_diff_peer *p;
	int rc;
	if ((rc = sl_ns_name_validate(ns)) != SL_OK)
		return rc;
	if (!(p = sl_calloc(1, sizeof(*p))))
		return SL_ENOMEM;
	p->reconcile = store_reconcile;
	p->items = store_items;
	p->codec = &items_codec;
	p->store = s;
	snprintf(p->ns, sizeof(p->ns), "%s", ns);
	snprintf(p->name, sizeof(p->name), "namespace '%s' of %s", ns, sl_store_path(s));
	*out = p;
	return SL_OK;
}

/* The message of a JSON error body, or the start of the body. */
static void http_error(const sl_http_result *r, char *out, size_t cap)
{
	json_t *root = NULL;
	const char *text = NULL;
	if (r->body.len > 0)
		root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
	if (root)
		text = json_string_value(json_object_get(root, "message"));
	if (text)
		snprintf(out, cap, "%s", text);
	else
		snprintf(out, cap, "%.*s", (int)(r->body.len < 200 ? r->body.len : 200),
		         r->body.data ? (const char *)r->body.data : "");
	json_decref(root);
}

/* POST body to url; the 2xx answer's body goes to out. The network and
 * 5xx answers are tried again with backoff; a 4xx is the answer. */
static int http_post(sl_diff_peer *p, const char *url, const uint8_t *body, size_t len, sl_buf *out)
{
	static const char *const headers[] = {"Content-Type: application/octet-stream", NULL};
	char msg[256];
	int rc = SL_EIO;

	for (unsigned attempt = 0, waits = 0, waited = 0; attempt < HTTP_TRIES;) {
		sl_http_result r;
		if (attempt > 0 && !waited)
			sl_sleep_ms(200u << (2 * attempt)); /* 800 ms, 3.2 s */
		waited = 0;
		sl_http_result_init(&r);
		sl_http_client_fetch(p->http, "POST", url, headers, body, len, &r);
		if (r.rc == SL_OK && r.status == 429 && waits++ < HTTP_WAITS) {
			/* Asked to slow down: wait as told, not a failed try. */
			uint64_t ms = sl_http_retry_after_ms(&r, 1000);
			sl_http_result_free(&r);
			sl_sleep_ms(ms);
			waited = 1;
			continue;
		}
		attempt++;
		if (r.rc == SL_OK && r.status >= 200 && r.status < 300) {
			rc = sl_buf_append(out, r.body.data, r.body.len);
			sl_http_result_free(&r);
			return rc;
		}
		if (r.rc != SL_OK) {
			rc = sl_error_set(r.rc, "%s: %s", p->name, r.error);
		} else {
			http_error(&r, msg, sizeof(msg));
			rc = sl_error_set(r.status == 404   ? SL_ENOTFOUND
			                  : r.status == 413 ? SL_ETOOLARGE
			                  : r.status < 500  ? SL_EINVAL
			                                    : SL_EIO,
			                  "%s answered %ld: %s", p->name, r.status, msg);
		}
		sl_http_result_free(&r);
		if (rc != SL_EIO && rc != SL_ETIMEOUT)
			return rc;
	}
	return rc;
}

static int http_reconcile(sl_diff_peer *p, const uint8_t *msg, size_t len, sl_buf *reply)
{
	return http_post(p, p->reconcile_url, msg, len, reply);
}

static int http_items(sl_diff_peer *p, const uint8_t *request, size_t len, sl_buf *frame)
{
	return http_post(p, p->items_url, request, len, frame);
}

int sl_diff_peer_http_at(sl_diff_peer **out, const char *server, const char *reconcile_path,
                         const char *items_path, const sl_diff_codec *codec, unsigned timeout_ms)
{
	sl_http_client_options ho;
	const char *scheme;
	sl_diff_peer *p;
	int rc;

	if (!server || !*server || strlen(server) > 256)
		return sl_error_set(SL_EINVAL, "a peer is HOST:PORT");
	if (strlen(reconcile_path) > 256 || strlen(items_path) > 256)
		return sl_error_set(SL_EINVAL, "a peer's path is at most 256 bytes");
	if (!(p = sl_calloc(1, sizeof(*p))))
		return SL_ENOMEM;
	p->reconcile = http_reconcile;
	p->items = http_items;
	p->codec = codec;
	scheme = strncmp(server, "http://", 7) == 0 ? "" : "http://";
	snprintf(p->reconcile_url, sizeof(p->reconcile_url), "%s%s%s", scheme, server,
	         reconcile_path);
	snprintf(p->items_url, sizeof(p->items_url), "%s%s%s", scheme, server, items_path);
	snprintf(p->name, sizeof(p->name), "%s", server);
	sl_http_client_options_init(&ho);
	ho.max_in_flight = 1;
	ho.request_timeout_ms = timeout_ms ? timeout_ms : 30000;
	ho.max_response = SL_SYNC_FRAME_MAX;
	if ((rc = sl_http_client_new(&p->http, &ho)) != SL_OK) {
		sl_free(p);
		return rc;
	}
	*out = p;
	return SL_OK;
}

int sl_diff_peer_http(sl_diff_peer **out, const char *server, const char *ns, unsigned timeout_ms)
{
	char reconcile_path[URL_MAX], items_path[URL_MAX];
	int rc;

	if ((rc = sl_ns_name_validate(ns)) != SL_OK)
		return rc;
	snprintf(reconcile_path, sizeof(reconcile_path), "/api/v0/ns/%s/reconcile", ns);
	snprintf(items_path, sizeof(items_path), "/api/v0/ns/%s/items", ns);
	return sl_diff_peer_http_at(out, server, reconcile_path, items_path, &items_codec,
	                            timeout_ms);
}

void sl_diff_peer_free(sl_diff_peer *p)
{
	if (!p)
		return;
	sl_http_client_free(p->http);
	sl_free(p);
}

const char *sl_diff_peer_name(const sl_diff_peer *p)
{
	return p->name;
}

/* ------------------------------------------------------------ id lists */

typedef struct id_list {
	item_id *ids;
	size_t n, cap;
} id_list;

static int push_id(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	id_list *l = ctx;
	item_id *grown = sl_grow(l->ids, &l->cap, l->n, sizeof(*l->ids), 256);
	if (!grown)
		return SL_ENOMEM;
	l->ids = grown;
	memcpy(l->ids[l->n++], id, SL_ITEM_ID_LEN);
	return SL_OK;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, SL_ITEM_ID_LEN);
}

/* Sort and drop repeats (a cut frame can report an id twice). */
static void ids_settle(id_list *l)
{
	size_t kept = 0;
	if (l->n == 0)
		return;
	qsort(l->ids, l->n, sizeof(*l->ids), cmp_id);
	for (size_t i = 0; i < l->n; i++)
		if (kept == 0 || memcmp(l->ids[kept - 1], l->ids[i], SL_ITEM_ID_LEN) != 0)
			memmove(l->ids[kept++], l->ids[i], SL_ITEM_ID_LEN);
	l->n = kept;
}

/* ----------------------------------------------------------------- keys */

static int keys_add(sl_diff_keys *k, const char *key, size_t len)
{
	sl_diff_key *grown = sl_grow(k->items, &k->cap, k->n, sizeof(*k->items), 64);
	char *copy;
	if (!grown)
		return SL_ENOMEM;
	k->items = grown;
	if (!(copy = sl_strndup(key, len)))
		return SL_ENOMEM;
	k->items[k->n].key = copy;
	k->items[k->n++].len = len;
	return SL_OK;
}

static void keys_free(sl_diff_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		sl_free(k->items[i].key);
	sl_free(k->items);
	memset(k, 0, sizeof(*k));
}

static int cmp_key(const void *a, const void *b)
{
	const sl_diff_key *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Sort bytewise and drop repeats (a peer may list a key twice). */
static void keys_sort(sl_diff_keys *k)
{
	size_t kept = 0;
	if (k->n == 0)
		return;
	qsort(k->items, k->n, sizeof(*k->items), cmp_key);
	for (size_t i = 0; i < k->n; i++) {
		if (kept > 0 && cmp_key(&k->items[kept - 1], &k->items[i]) == 0)
			sl_free(k->items[i].key);
		else
			k->items[kept++] = k->items[i];
	}
	k->n = kept;
}

/* Index of key in sorted k, or -1. */
static long keys_find(const sl_diff_keys *k, const char *key, size_t len)
{
	sl_diff_key want = {(char *)(uintptr_t)key, len};
	const sl_diff_key *hit;
	if (k->n == 0)
		return -1;
	hit = bsearch(&want, k->items, k->n, sizeof(*k->items), cmp_key);
	return hit ? (long)(hit - k->items) : -1;
}

/* ----------------------------------------------------------------- steps */

typedef struct diff {
	const sl_diff_options *o;
	sl_diff_report *r;
	id_list have, need;
	sl_diff_keys here; /* keys of "have", sorted */
	uint8_t *matched;  /* per key of here: the peer has it too */
	sl_ns_kind kind;
	sl_batch *batch;
} diff;

static int exchange(diff *d, int (*call)(sl_diff_peer *, const uint8_t *, size_t, sl_buf *),
                    const sl_buf *out, sl_buf *in)
{
	int rc;
	sl_buf_reset(in);
	if ((rc = call(d->o->peer, out->data, out->len, in)) != SL_OK)
		return rc;
	d->r->round_trips++;
	d->r->bytes_sent += out->len;
	d->r->bytes_received += in->len;
	return SL_OK;
}

static int on_have(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	return push_id(&((diff *)ctx)->have, id);
}

static int on_need(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	return push_id(&((diff *)ctx)->need, id);
}

/* The key of an id of a store snapshot, as a local side's key_of. */
static int snapshot_key(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], const char **key,
                        size_t *key_len)
{
	sl_key_entry e;
	int rc = sl_items_find(ctx, id, &e);
	if (rc == SL_ENOTFOUND)
		return sl_error_set(SL_EINTERNAL, "an item reconciled here is not in the "
		                                  "snapshot it came from");
	if (rc == SL_OK) {
		*key = e.key;
		*key_len = e.key_len;
	}
	return rc;
}

/* The keys of the ids only here, from the set reconciled. */
static int keys_here(diff *d, const sl_diff_local *local)
{
	int rc = SL_OK;
	for (size_t i = 0; i < d->have.n && rc == SL_OK; i++) {
		const char *key;
		size_t len;
		if ((rc = local->key_of(local->ctx, d->have.ids[i], &key, &len)) == SL_OK)
			rc = keys_add(&d->here, key, len);
	}
	if (rc != SL_OK)
		return rc;
	keys_sort(&d->here);
	if (d->here.n && !(d->matched = sl_calloc(d->here.n, 1)))
		return SL_ENOMEM;
	return SL_OK;
}

/* Step 1: reconcile, then the keys of the ids only here, in one
 * snapshot. */
static int reconcile(diff *d)
{
	sl_buf msg = SL_BUF_INIT(SL_STATE_FRAME_MAX + 1024), reply = SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	sl_reconcile_diff found = {on_have, on_need, d};
	sl_items *it = NULL;
	sl_diff_local snapshot;
	const sl_diff_local *local = d->o->local;
	sl_item_set set;
	unsigned rounds = 0;
	int rc, done = 0;

	if (!local) {
		if ((rc = sl_store_items_open(d->o->store, d->o->ns, &it)) != SL_OK)
			goto cleanup;
		d->kind = sl_items_ns(it)->kind;
		d->r->target = sl_items_ns(it)->target;
		snapshot = (sl_diff_local){sl_items_set(it), snapshot_key, it};
		local = &snapshot;
	}
	set = local->set;
	if ((rc = sl_reconcile_initiate(&set, SL_STATE_FRAME_MAX, &msg)) != SL_OK)
		goto cleanup;
	while (!done) {
		if (++rounds > MAX_ROUNDS) {
			rc = sl_error_set(SL_EIO, "%s did not let reconciliation end in %d rounds",
			                  sl_diff_peer_name(d->o->peer), MAX_ROUNDS);
			goto cleanup;
		}
		if ((rc = exchange(d, d->o->peer->reconcile, &msg, &reply)) != SL_OK)
			goto cleanup;
		sl_buf_reset(&msg);
		if ((rc = sl_reconcile_next(&set, SL_STATE_FRAME_MAX, reply.data, reply.len, &found,
		                            &msg, &done)) != SL_OK) {
			sl_error_wrap("the answer of %s", sl_diff_peer_name(d->o->peer));
			goto cleanup;
		}
	}
	ids_settle(&d->have);
	ids_settle(&d->need);
	rc = keys_here(d, local);
cleanup:
	sl_items_close(it);
	sl_buf_free(&msg);
	sl_buf_free(&reply);
	return rc;
}

/* One answer of the peer: classify it, and with pull take its value. */
static int take_answer(diff *d, const sl_diff_answer *w)
{
	long at = keys_find(&d->here, w->key, w->key_len);
	int rc;

	if (at >= 0) {
		d->matched[at] = 1;
		if ((rc = keys_add(&d->r->different, w->key, w->key_len)) != SL_OK)
			return rc;
		if (d->o->pull && d->kind == SL_NS_IMMUTABLE)
			return keys_add(&d->r->conflicts, w->key, w->key_len);
	} else if ((rc = keys_add(&d->r->only_remote, w->key, w->key_len)) != SL_OK) {
		return rc;
	}
	if (d->o->on_value)
		return d->o->on_value(d->o->on_value_ctx, w->key, w->key_len, w->value,
		                      w->value_len);
	if (!d->o->pull)
		return SL_OK;
	if ((rc = sl_batch_put(d->batch, w->key, w->key_len, w->value, w->value_len)) != SL_OK)
		return rc;
	d->r->pulled++;
	return SL_OK;
}

/* Check a frame answering ids[0..n) (the codec checked that each answer
 * hashes to its id): every answer is for one of them, once. *settled is
 * how many ids it settled. */
static int check_frame(diff *d, const sl_diff_answers *w, const item_id *ids, size_t n,
                       uint8_t *seen, size_t *settled)
{
	const char *peer = sl_diff_peer_name(d->o->peer);
	size_t answered = w->n_found + w->n_missing;

	if (answered + w->remaining != n || answered == 0)
		return sl_error_set(SL_EVERIFY, "%s answered %zu of %zu ids and left %zu", peer,
		                    answered, n, w->remaining);
	memset(seen, 0, n);
	for (size_t i = 0; i < answered; i++) {
		const uint8_t *id = i < w->n_found ? w->found[i].id
		                                   : w->missing + (i - w->n_found) * SL_ITEM_ID_LEN;
		const item_id *hit = bsearch(id, ids, answered, sizeof(*ids), cmp_id);
		if (!hit || seen[hit - ids])
			return sl_error_set(SL_EVERIFY, "%s answered an id it was not asked for",
			                    peer);
		seen[hit - ids] = 1;
	}
	*settled = answered;
	return SL_OK;
}

/* Step 2 and 3: read the ids only there from the peer, in order. */
static int read_theirs(diff *d)
{
	const sl_diff_codec *codec = d->o->peer->codec;
	sl_buf request = SL_BUF_INIT(16 + (size_t)SL_WIRE_MAX_IDS * SL_ITEM_ID_LEN);
	sl_buf frame = SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	uint8_t *seen = NULL;
	size_t next = 0;
	int with_values = d->o->pull || d->o->on_value != NULL;
	int rc = SL_OK;

	if (d->need.n && !(seen = sl_malloc(SL_WIRE_MAX_IDS)))
		return SL_ENOMEM;
	while (next < d->need.n) {
		size_t n = d->need.n - next, settled = 0;
		sl_diff_answers w;
		if (n > SL_WIRE_MAX_IDS)
			n = SL_WIRE_MAX_IDS;
		sl_buf_reset(&request);
		if ((rc = codec->request(&request, with_values,
		                         (const uint8_t(*)[SL_ITEM_ID_LEN])d->need.ids[next], n)) !=
		            SL_OK ||
		    (rc = exchange(d, d->o->peer->items, &request, &frame)) != SL_OK)
			break;
		memset(&w, 0, sizeof(w));
		if ((rc = codec->decode(&w, with_values, frame.data, frame.len)) != SL_OK) {
			sl_error_wrap("the answer of %s", sl_diff_peer_name(d->o->peer));
			break;
		}
		rc = check_frame(d, &w, (const item_id *)d->need.ids[next], n, seen, &settled);
		for (size_t i = 0; rc == SL_OK && i < w.n_found; i++)
			rc = take_answer(d, &w.found[i]);
		d->r->vanished += w.n_missing;
		sl_free(w.found);
		if (rc != SL_OK)
			break;
		next += settled;
	}
	sl_free(seen);
	sl_buf_free(&request);
	sl_buf_free(&frame);
	return rc;
}

int sl_state_diff(const sl_diff_options *o, sl_diff_report *out)
{
	diff d;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&d, 0, sizeof(d));
	d.o = o;
	d.r = out;
	if (o->local && o->pull)
		return sl_error_set(SL_EINVAL, "a diff pulls into a store namespace only");
	if (o->on_value && (!o->local || o->pull))
		return sl_error_set(SL_EINVAL, "a diff passes values on with a local set only");
	if ((rc = reconcile(&d)) != SL_OK)
		goto cleanup;
	if (o->pull && (rc = sl_batch_new(&d.batch, o->store, o->ns)) != SL_OK)
		goto cleanup;
	if ((rc = read_theirs(&d)) != SL_OK)
		goto cleanup;
	for (size_t i = 0; i < d.here.n && rc == SL_OK; i++)
		if (!d.matched[i])
			rc = keys_add(&out->only_local, d.here.items[i].key, d.here.items[i].len);
	if (rc != SL_OK)
		goto cleanup;
	keys_sort(&out->only_local);
	keys_sort(&out->only_remote);
	keys_sort(&out->different);
	keys_sort(&out->conflicts);
	if (d.batch && sl_batch_count(d.batch) > 0 &&
	    (rc = sl_batch_commit(d.batch, &out->target)) != SL_OK)
		sl_error_wrap("pull into '%s'", o->ns);
cleanup:
	sl_batch_free(d.batch);
	sl_free(d.have.ids);
	sl_free(d.need.ids);
	keys_free(&d.here);
	sl_free(d.matched);
	if (rc != SL_OK)
		sl_diff_report_free(out);
	return rc;
}

void sl_diff_report_free(sl_diff_report *r)
{
	if (!r)
		return;
	keys_free(&r->only_local);
	keys_free(&r->only_remote);
	keys_free(&r->different);
	keys_free(&r->conflicts);
}
