/*
 * A client's sync of one dag namespace with one peer (sl_dag_sync), over
 * any sl_dag_transport:
 *
 *   1. tips: equal tip sets mean equal entry sets (each side holds every
 *      ancestor of what it holds), so one request settles a namespace
 *      already in step;
 *   2. bootstrap: when the peer holds more and this node's entries are a
 *      prefix of the peer's in (height, id) order (the peer checks the
 *      count and fingerprint), pull pages after the last entry held. A
 *      client killed mid-way resumes from what it stored: its entries are
 *      still a prefix. The next page is fetched and its signatures checked
 *      on another thread while a page is stored;
 *   3. reconcile: otherwise, negentropy over the items (height, id) finds
 *      what each side lacks in a few round trips whose bytes follow the
 *      differences; then fetch the entries missing here (the peer answers
 *      them in (height, id) order, so parents come first) and push the
 *      ones missing there, in the same order.
 *
 * Every entry taken is verified before it is stored (sl_dag_insert): a
 * peer that sends an entry that does not verify, or an entry not asked
 * for, gets nothing stored of it and the sync stops with SL_EVERIFY.
 *
 * sl_dag_push_outbox sends the entries stored since a peer's outbox mark,
 * in the order they were stored (parents first), for the background sync.
 */
#include "sluice/dag_sync.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_ROUNDS 3 /* exchanges before giving up on equal tips */

typedef uint8_t id_t32[SL_DIGEST_LEN];

typedef struct id_set {
	id_t32 *ids;
	size_t n, cap;
} id_set;

static int set_add(id_set *s, const uint8_t id[SL_DIGEST_LEN])
{
	id_t32 *grown = sl_grow(s->ids, &s->cap, s->n, sizeof(*s->ids), 64);
	if (!grown)
		return SL_ENOMEM;
	s->ids = grown;
	memcpy(s->ids[s->n++], id, SL_DIGEST_LEN);
	return SL_OK;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, SL_DIGEST_LEN);
}

static void set_seal(id_set *s)
{
	size_t kept = 0;
	if (s->n)
		qsort(s->ids, s->n, sizeof(*s->ids), cmp_id);
	for (size_t i = 0; i < s->n; i++)
		if (kept == 0 || memcmp(s->ids[kept - 1], s->ids[i], SL_DIGEST_LEN) != 0)
			memmove(s->ids[kept++], s->ids[i], SL_DIGEST_LEN);
	s->n = kept;
}

static int set_has(const id_set *s, const uint8_t id[SL_DIGEST_LEN])
{
	return s->n && bsearch(id, s->ids, s->n, sizeof(*s->ids), cmp_id) != NULL;
}

/* Keep of s (sealed) the ids not in gone (sealed). */
static void set_remove(id_set *s, const id_set *gone)
{
	size_t kept = 0;
	for (size_t i = 0; i < s->n; i++)
		if (!set_has(gone, s->ids[i]))
			memmove(s->ids[kept++], s->ids[i], SL_DIGEST_LEN);
	s->n = kept;
}

typedef struct sync_ctx {
	sl_store *s;
	const char *ns;
	const sl_dag_transport *peer;
	sl_dag_sync_report *r;
	sl_buf req, ans;
	sl_buf pushed_tips; /* the tips the last push answer reported; empty: none */
	sl_dag_items *view;
	id_set have, need;
} sync_ctx;

/* The message of a JSON error answer, or its first bytes. */
static void answer_message(const sl_buf *ans, char *out, size_t cap)
{
	json_t *j = json_loadb((const char *)ans->data, ans->len, 0, NULL);
	const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
	if (m)
		snprintf(out, cap, "%s", m);
	else
		snprintf(out, cap, "%.*s", (int)(ans->len < 200 ? ans->len : 200),
		         ans->data ? (const char *)ans->data : "");
	json_decref(j);
}

/* What a request came to (rc: the transport's), counted in the report;
 * SL_OK only for a 2xx answer (for bootstrap, a 409 too). */
static int rpc_outcome(sync_ctx *c, const char *endpoint, int rc, size_t sent, long status,
                       const sl_buf *ans)
{
	char msg[300];
	c->r->round_trips++;
	c->r->bytes_sent += sent;
	if (rc != SL_OK)
		return sl_error_wrap("%s", endpoint);
	c->r->bytes_received += ans->len;
	if (status >= 200 && status < 300)
		return SL_OK;
	if (status == 409 && strcmp(endpoint, "bootstrap") == 0)
		return SL_OK; /* not a prefix: the caller reconciles */
	answer_message(ans, msg, sizeof(msg));
	c->r->status = status;
	snprintf(c->r->error, sizeof(c->r->error), "%s: HTTP %ld: %.200s", endpoint, status, msg);
	if (status == 401 || status == 403)
		return sl_error_set(SL_EAUTH, "the peer refused this node: %s", msg);
	return sl_error_set(status >= 500 || status == 429 ? SL_EIO : SL_EINVAL, "%s: HTTP %ld: %s",
	                    endpoint, status, msg);
}

/* One request, its answer in c->ans. */
static int rpc(sync_ctx *c, const char *endpoint, const uint8_t *body, size_t len, long *status)
{
	int rc = c->peer->call(c->peer->ctx, endpoint, body, len, status, &c->ans);
	return rpc_outcome(c, endpoint, rc, len, *status, &c->ans);
}

/* ----------------------------------------------------------------- tips */

static int parse_tips(const sl_buf *ans, const sl_digest *ns_id, id_set *tips, uint64_t *entries,
                      int *more)
{
	json_t *j = json_loadb((const char *)ans->data, ans->len, JSON_REJECT_DUPLICATES, NULL);
	json_t *list = j ? json_object_get(j, "tips") : NULL, *v;
	sl_digest id;
	size_t i, n;
	int rc = SL_OK;

	if (!j || !json_is_array(list) || !json_is_integer(json_object_get(j, "entries")) ||
	    !json_is_boolean(json_object_get(j, "more")) ||
	    !json_is_string(json_object_get(j, "id")) ||
	    sl_hex_decode(id.bytes, SL_DIGEST_LEN, &n, json_string_value(json_object_get(j, "id")),
	                  strlen(json_string_value(json_object_get(j, "id")))) != SL_OK ||
	    n != SL_DIGEST_LEN) {
		rc = sl_error_set(SL_ECORRUPT, "the peer's tips answer is malformed");
		goto out;
	}
	if (!sl_digest_eq(&id, ns_id)) {
		rc = sl_error_set(SL_ECORRUPT, "the peer answered for another namespace");
		goto out;
	}
	*entries = (uint64_t)json_integer_value(json_object_get(j, "entries"));
	*more = json_is_true(json_object_get(j, "more"));
	json_array_foreach(list, i, v)
	{
		uint8_t tip[SL_DIGEST_LEN];
		const char *hex = json_string_value(v);
		if (!hex || sl_hex_decode(tip, sizeof(tip), &n, hex, strlen(hex)) != SL_OK ||
		    n != SL_DIGEST_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "the peer's tips answer is malformed");
			break;
		}
		if ((rc = set_add(tips, tip)) != SL_OK)
			break;
	}
out:
	json_decref(j);
	return rc;
}

static int tips_equal(sync_ctx *c, const sl_digest *ns_id, uint64_t *remote_entries, int *equal)
{
	sl_digest *mine = sl_malloc(SL_DAG_TIPS_MAX * sizeof(*mine));
	id_set theirs = {0}, ours = {0};
	uint64_t entries = 0;
	size_t n = 0;
	long status;
	int more = 0, rc;

	*equal = 0;
	if (!mine)
		return SL_ENOMEM;
	/* The tips a push answer reported after storing the push are as good
	 * as an answer to a request for them, and save that round trip. */
	if (c->pushed_tips.len == 0 && (rc = rpc(c, "tips", NULL, 0, &status)) != SL_OK)
		goto out;
	if ((rc = parse_tips(c->pushed_tips.len ? &c->pushed_tips : &c->ans, ns_id, &theirs,
	                     remote_entries, &more)) != SL_OK ||
	    (rc = sl_dag_tip_ids(c->s, c->ns, mine, SL_DAG_TIPS_MAX, &n, &entries)) != SL_OK)
		goto out;
	for (size_t i = 0; i < n && i < SL_DAG_TIPS_MAX && rc == SL_OK; i++)
		rc = set_add(&ours, mine[i].bytes);
	set_seal(&ours);
	set_seal(&theirs);
	*equal = rc == SL_OK && !more && n <= SL_DAG_TIPS_MAX && entries == *remote_entries &&
	         ours.n == theirs.n &&
	         (ours.n == 0 || memcmp(ours.ids, theirs.ids, ours.n * SL_DIGEST_LEN) == 0);
out:
	sl_free(mine);
	sl_free(theirs.ids);
	sl_free(ours.ids);
	return rc;
}

/* -------------------------------------------------------- taking entries */

/* Verify and store a frame's entries (their signatures vouched for by
 * verified, or checked here when NULL). A refusal stops the sync: the
 * peer sent what does not verify or does not follow from what is held;
 * with orphans_ok, but for entries whose parents are not held yet (a
 * fetch of more ids than one request takes asks for them again). */
static int take_frame(sync_ctx *c, const sl_wire_entries *w, const sl_dag_verified *verified,
                      int orphans_ok)
{
	sl_dag_insert_report rep;
	int rc;

	if (w->n_entries == 0)
		return SL_OK;
	if ((rc = sl_dag_insert_from(c->s, c->ns, NULL, verified, w->entries, w->n_entries,
	                             w->values, w->n_values, &rep)) != SL_OK)
		return rc;
	c->r->pulled += rep.stored;
	if (rep.refused > (orphans_ok ? rep.orphaned : 0)) {
		c->r->refused += rep.refused;
		snprintf(c->r->error, sizeof(c->r->error),
		         "the peer sent %zu refused entries: %.180s", rep.refused, rep.reason);
		return sl_error_set(SL_EVERIFY, "%s", c->r->error);
	}
	return SL_OK;
}

/* ------------------------------------------------------------ bootstrap */

/* The cursor (the last item held), and the count and sum of all. */
static int prefix_of(sync_ctx *c, sl_item *cursor, uint64_t *count, sl_item_sum *sum)
{
	sl_item_set set;
	int rc;
	if ((rc = sl_dag_items_refresh(c->view, c->s, c->ns)) != SL_OK)
		return rc;
	set = sl_dag_items_set(c->view);
	if ((rc = set.ops->count(set.ctx, count)) != SL_OK || *count == 0 ||
	    (rc = set.ops->get(set.ctx, *count - 1, cursor)) != SL_OK ||
	    (rc = set.ops->sum(set.ctx, 0, *count, sum)) != SL_OK)
		return rc != SL_OK ? rc
		                   : sl_error_set(SL_ECORRUPT, "a dag namespace without entries");
	return SL_OK;
}

/* One page of a bootstrap: asked for, fetched, decoded and its signatures
 * checked, on a thread of its own while the page before it is stored. */
typedef struct page {
	sync_ctx *c;
	uint8_t req[SL_DAG_BOOTSTRAP_LEN];
	sl_buf ans;
	long status;
	int call_rc, rc;   /* the transport's; then the decoding's and checking's */
	char error[256];   /* the message of a failure, from the thread that met it */
	sl_wire_entries w; /* when decoded */
	sl_dag_verified *verified;
	pthread_t thread;
	int running;
} page;

static void *page_fetch(void *arg)
{
	page *p = arg;
	const sl_dag_transport *t = p->c->peer;
	p->call_rc = t->call(t->ctx, "bootstrap", p->req, sizeof(p->req), &p->status, &p->ans);
	if (p->call_rc == SL_OK && p->status >= 200 && p->status < 300 &&
	    (p->rc = sl_wire_entries_decode(&p->w, p->ans.data, p->ans.len)) == SL_OK)
		p->rc = p->w.n_missing ? sl_error_set(SL_ECORRUPT, "it lists missing ids")
		                       : sl_dag_verify_signatures(p->w.entries, p->w.n_entries,
		                                                  &p->verified);
	if (p->call_rc != SL_OK || p->rc != SL_OK)
		snprintf(p->error, sizeof(p->error), "%.255s", sl_error_last()->message);
	return NULL;
}

/* Ask for the page after cursor, on a thread when `ahead`. */
static void page_start(page *p, sync_ctx *c, const sl_item *cursor, uint64_t count,
                       const sl_item_sum *sum, int ahead)
{
	uint8_t fp[SL_FINGERPRINT_LEN];
	memset(p, 0, sizeof(*p));
	p->c = c;
	p->ans = (sl_buf)SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	sl_item_sum_fingerprint(fp, sum, count);
	sl_dag_bootstrap_request(p->req, cursor, count, fp);
	if (ahead && pthread_create(&p->thread, NULL, page_fetch, p) == 0)
		p->running = 1;
	else
		page_fetch(p);
}

static void page_wait(page *p)
{
	if (p->running)
		pthread_join(p->thread, NULL);
	p->running = 0;
}

static void page_free(page *p)
{
	page_wait(p);
	sl_wire_entries_free(&p->w);
	sl_dag_verified_free(p->verified);
	sl_buf_free(&p->ans);
	memset(p, 0, sizeof(*p));
}

/* The prefix once every entry of w is stored: w's entries are the peer's
 * next items in order, so the cursor moves to its last entry and the
 * count and sum take in all of them. */
static int prefix_after(const sl_wire_entries *w, sl_item *cursor, uint64_t *count,
                        sl_item_sum *sum)
{
	sl_dag_entry last;
	const sl_bytes *e = &w->entries[w->n_entries - 1];
	int rc = sl_dag_entry_decode(&last, e->data, e->len);
	if (rc != SL_OK)
		return rc;
	cursor->ts = last.height;
	memcpy(cursor->id, last.id.bytes, SL_DIGEST_LEN);
	sl_dag_entry_free(&last);
	for (size_t i = 0; i < w->n_entries; i++) {
		sl_digest id;
		sl_sha256(&id, w->entries[i].data, w->entries[i].len);
		sl_item_sum_add_id(sum, id.bytes);
	}
	*count += w->n_entries;
	return SL_OK;
}

/* Pull pages after the last entry held while this node's entries are a
 * prefix of the peer's. Each page is stored while the next one is fetched
 * and its signatures checked: its request assumes the page before is
 * stored whole, and when that fails the prefetched page is dropped (if
 * the assumption was wrong the peer answers 409, and reconciliation
 * settles the rest). */
static int bootstrap(sync_ctx *c, uint64_t remote_entries)
{
	page pages[2];
	sl_item cursor;
	sl_item_sum sum;
	uint64_t count;
	int rc, cur = 0;

	memset(pages, 0, sizeof(pages));
	if ((rc = prefix_of(c, &cursor, &count, &sum)) != SL_OK || count >= remote_entries)
		return rc;
	page_start(&pages[0], c, &cursor, count, &sum, 0);
	for (;;) {
		page *p = &pages[cur], *next = &pages[!cur];
		uint64_t before = c->r->pulled;
		int more;

		page_wait(p);
		if (p->call_rc != SL_OK)
			sl_error_set(p->call_rc, "%s", p->error);
		rc = rpc_outcome(c, "bootstrap", p->call_rc, sizeof(p->req), p->status, &p->ans);
		if (rc == SL_OK && p->status == 409)
			break; /* not a prefix: reconcile */
		if (rc == SL_OK && p->rc != SL_OK)
			rc = sl_error_set(p->rc, "a bootstrap page: %s", p->error);
		if (rc != SL_OK)
			break;
		more = (p->w.flags & SL_WIRE_ENTRIES_MORE) != 0 && p->w.n_entries > 0;
		if (more && (rc = prefix_after(&p->w, &cursor, &count, &sum)) != SL_OK)
			break;
		if (more)
			page_start(next, c, &cursor, count, &sum, 1);
		if ((rc = take_frame(c, &p->w, p->verified, 0)) != SL_OK)
			break;
		c->r->bootstrapped = 1;
		if (!more || c->r->pulled == before)
			break; /* the end, or no progress: reconcile settles the rest */
		page_free(p);
		cur = !cur;
	}
	page_free(&pages[0]);
	page_free(&pages[1]);
	return rc;
}

/* ------------------------------------------------------------ reconcile */

static int on_have(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	return set_add(&((sync_ctx *)ctx)->have, id);
}

static int on_need(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	return set_add(&((sync_ctx *)ctx)->need, id);
}

/* Reconcile against the view as it is now; *snapshot: the entries it has. */
static int reconcile(sync_ctx *c, uint64_t *snapshot)
{
	sl_reconcile_diff diff = {on_have, on_need, c};
	sl_item_set set;
	int rc, done = 0;

	if ((rc = sl_dag_items_refresh(c->view, c->s, c->ns)) != SL_OK)
		return rc;
	*snapshot = sl_dag_items_count(c->view);
	set = sl_dag_items_set(c->view);
	c->req.len = 0;
	if ((rc = sl_reconcile_initiate(&set, SL_DAG_MSG_MAX, &c->req)) != SL_OK)
		return rc;
	while (!done) {
		long status;
		if ((rc = rpc(c, "reconcile", c->req.data, c->req.len, &status)) != SL_OK)
			return rc;
		c->req.len = 0;
		if ((rc = sl_reconcile_next(&set, SL_DAG_MSG_MAX, c->ans.data, c->ans.len, &diff,
		                            &c->req, &done)) != SL_OK)
			return sl_error_wrap("the peer's reconciliation answer");
	}
	set_seal(&c->have);
	set_seal(&c->need);
	return SL_OK;
}

/* An id with the height of its entry (UINT64_MAX: not known yet). */
typedef struct ordered_id {
	uint64_t height;
	id_t32 id;
} ordered_id;

static int cmp_ordered(const void *a, const void *b)
{
	const ordered_id *x = a, *y = b;
	if (x->height != y->height)
		return x->height < y->height ? -1 : 1;
	return memcmp(x->id, y->id, SL_DIGEST_LEN);
}

/* Before anything of w is stored: every entry in it was asked for. */
static int asked_for(const sync_ctx *c, const sl_wire_entries *w)
{
	for (size_t i = 0; i < w->n_entries; i++) {
		sl_digest id;
		sl_sha256(&id, w->entries[i].data, w->entries[i].len);
		if (!set_has(&c->need, id.bytes))
			return sl_error_set(SL_EVERIFY, "the peer sent an entry not asked for");
	}
	return SL_OK;
}

/* The ids of w's entries that are held now, and of those the peer said
 * it lacks, go to out: settled, not to be asked for again. Entries not
 * stored (a parent is in another request) go to waiting with their
 * heights, read from the encoding (docs/protocol.md: after the version
 * byte and the namespace). */
static int settled(sync_ctx *c, const sl_wire_entries *w, id_set *out, ordered_id **waiting,
                   size_t *n_waiting, size_t *cap_waiting)
{
	uint8_t(*ids)[SL_DIGEST_LEN] = NULL;
	uint64_t *heights = NULL;
	int rc = SL_OK;

	if (w->n_entries && (!(ids = sl_malloc(w->n_entries * sizeof(*ids))) ||
	                     !(heights = sl_malloc(w->n_entries * sizeof(*heights))))) {
		rc = SL_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < w->n_entries; i++) {
		sl_digest id;
		sl_sha256(&id, w->entries[i].data, w->entries[i].len);
		memcpy(ids[i], id.bytes, SL_DIGEST_LEN);
	}
	if (w->n_entries && (rc = sl_dag_heights(c->s, c->ns, (const uint8_t(*)[SL_DIGEST_LEN])ids,
	                                         w->n_entries, heights)) != SL_OK)
		goto out;
	for (size_t i = 0; i < w->n_entries && rc == SL_OK; i++) {
		ordered_id *grown;
		if (heights[i] != UINT64_MAX) {
			rc = set_add(out, ids[i]);
			continue;
		}
		if (!(grown = sl_grow(*waiting, cap_waiting, *n_waiting, sizeof(**waiting), 64))) {
			rc = SL_ENOMEM;
			break;
		}
		*waiting = grown;
		grown[*n_waiting].height =
		        w->entries[i].len >= 1 + SL_DIGEST_LEN + 8
		                ? sl_be64_get(w->entries[i].data + 1 + SL_DIGEST_LEN)
		                : UINT64_MAX;
		memcpy(grown[(*n_waiting)++].id, ids[i], SL_DIGEST_LEN);
	}
	for (size_t i = 0; i < w->n_missing && rc == SL_OK; i++)
		rc = set_add(out, w->missing + i * SL_DIGEST_LEN);
out:
	sl_free(ids);
	sl_free(heights);
	return rc;
}

static int cmp_id_of_ordered(const void *a, const void *b)
{
	return memcmp(((const ordered_id *)a)->id, ((const ordered_id *)b)->id, SL_DIGEST_LEN);
}

/* The ids still needed, in the order to ask for them: by the heights
 * learnt from entries received (those not known yet last), so that
 * requests after the first pass go parents first even across requests. */
static int fetch_order(const sync_ctx *c, ordered_id *waiting, size_t n_waiting, ordered_id **out)
{
	ordered_id *order = sl_malloc((c->need.n ? c->need.n : 1) * sizeof(*order));
	if (!order)
		return SL_ENOMEM;
	if (n_waiting)
		qsort(waiting, n_waiting, sizeof(*waiting), cmp_id_of_ordered);
	for (size_t i = 0; i < c->need.n; i++) {
		ordered_id key, *seen;
		memcpy(key.id, c->need.ids[i], SL_DIGEST_LEN);
		seen = n_waiting ? bsearch(&key, waiting, n_waiting, sizeof(*waiting),
		                           cmp_id_of_ordered)
		                 : NULL;
		order[i].height = seen ? seen->height : UINT64_MAX;
		memcpy(order[i].id, c->need.ids[i], SL_DIGEST_LEN);
	}
	if (c->need.n)
		qsort(order, c->need.n, sizeof(*order), cmp_ordered);
	*out = order;
	return SL_OK;
}

/* Fetch what reconciliation found missing here. The peer answers each
 * request parents first, but one request takes at most SL_WIRE_MAX_IDS
 * ids: in the first pass, asked in id order, an entry whose parent is in
 * a later request is not stored. It is asked for again in the next pass,
 * which goes by the heights the first one showed, parents first. Every
 * pass settles something, or the sync fails. */
static int fetch(sync_ctx *c)
{
	ordered_id *waiting = NULL, *order = NULL;
	size_t n_waiting = 0, cap_waiting = 0;
	id_t32 *chunk = NULL;
	int rc = SL_OK;

	if (c->need.n && !(chunk = sl_malloc(SL_WIRE_MAX_IDS * sizeof(*chunk))))
		return SL_ENOMEM;
	while (rc == SL_OK && c->need.n > 0) {
		id_set got = {0};
		size_t n = c->need.n;

		rc = fetch_order(c, waiting, n_waiting, &order);
		n_waiting = 0;
		for (size_t at = 0; at < n && rc == SL_OK;) {
			size_t k = n - at < SL_WIRE_MAX_IDS ? n - at : SL_WIRE_MAX_IDS;
			sl_wire_entries w;
			long status;

			for (size_t i = 0; i < k; i++)
				memcpy(chunk[i], order[at + i].id, SL_DIGEST_LEN);
			c->req.len = 0;
			if ((rc = sl_wire_items_request(&c->req, 0,
			                                (const uint8_t(*)[SL_ITEM_ID_LEN])chunk,
			                                k)) != SL_OK ||
			    (rc = rpc(c, "entries", c->req.data, c->req.len, &status)) != SL_OK)
				break;
			if ((rc = sl_wire_entries_decode(&w, c->ans.data, c->ans.len)) != SL_OK) {
				sl_error_wrap("an entries frame");
				break;
			}
			if ((rc = asked_for(c, &w)) == SL_OK &&
			    (rc = take_frame(c, &w, NULL, 1)) == SL_OK)
				rc = settled(c, &w, &got, &waiting, &n_waiting, &cap_waiting);
			sl_wire_entries_free(&w);
			at += k;
		}
		sl_free(order);
		order = NULL;
		set_seal(&got);
		if (rc == SL_OK && got.n == 0)
			rc = sl_error_set(SL_EIO,
			                  "the peer answered none of the entries asked for, "
			                  "or only entries whose parents it did not send");
		if (rc == SL_OK)
			set_remove(&c->need, &got);
		sl_free(got.ids);
	}
	sl_free(waiting);
	sl_free(chunk);
	return rc;
}

/* ----------------------------------------------------------------- push */

static int collect_id(void *ctx, const sl_dag_entry *e, const uint8_t *encoding, size_t len)
{
	(void)encoding;
	(void)len;
	return set_add(ctx, e->id.bytes);
}

/* Send a frame; the peer must store or know every entry in it. */
static int push_frame(sync_ctx *c, const sl_buf *frame, size_t n_entries)
{
	json_t *j;
	long status;
	int rc;
	if ((rc = rpc(c, "push", frame->data, frame->len, &status)) != SL_OK)
		return rc;
	j = json_loadb((const char *)c->ans.data, c->ans.len, 0, NULL);
	if (!j || !json_is_integer(json_object_get(j, "stored")) ||
	    !json_is_integer(json_object_get(j, "refused"))) {
		json_decref(j);
		return sl_error_set(SL_ECORRUPT, "the peer's push answer is malformed");
	}
	c->r->pushed += (uint64_t)json_integer_value(json_object_get(j, "stored"));
	c->pushed_tips.len = 0;
	if (json_is_object(json_object_get(j, "tips"))) {
		char *text = json_dumps(json_object_get(j, "tips"), JSON_COMPACT);
		if (!text || sl_buf_append_str(&c->pushed_tips, text) != SL_OK)
			rc = SL_ENOMEM;
		free(text);
	}
	if (json_integer_value(json_object_get(j, "refused")) > 0) {
		const char *why = json_string_value(json_object_get(j, "reason"));
		c->r->refused += (uint64_t)json_integer_value(json_object_get(j, "refused"));
		snprintf(c->r->error, sizeof(c->r->error),
		         "the peer refused %lld of %zu entries: %.180s",
		         (long long)json_integer_value(json_object_get(j, "refused")), n_entries,
		         why ? why : "");
		rc = sl_error_set(SL_EVERIFY, "%s", c->r->error);
	}
	json_decref(j);
	return rc;
}

/* Push what the peer lacks in (height, id) order, so that across frames
 * too every entry comes after its parents. */
static int push(sync_ctx *c)
{
	size_t n = c->have.n, at = 0;
	uint64_t *heights = sl_malloc((n ? n : 1) * sizeof(*heights));
	ordered_id *order = sl_malloc((n ? n : 1) * sizeof(*order));
	id_t32 *chunk =
	        sl_malloc((n < SL_WIRE_MAX_IDS ? (n ? n : 1) : SL_WIRE_MAX_IDS) * sizeof(*chunk));
	int rc = heights && order && chunk ? SL_OK : SL_ENOMEM;

	if (rc == SL_OK && n)
		rc = sl_dag_heights(c->s, c->ns, (const uint8_t(*)[SL_DIGEST_LEN])c->have.ids, n,
		                    heights);
	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		if (heights[i] == UINT64_MAX)
			rc = sl_error_set(SL_EINTERNAL, "an entry to push is not held");
		order[i].height = heights[i];
		memcpy(order[i].id, c->have.ids[i], SL_DIGEST_LEN);
	}
	if (rc == SL_OK && n)
		qsort(order, n, sizeof(*order), cmp_ordered);
	while (rc == SL_OK && at < n) {
		size_t k = n - at < SL_WIRE_MAX_IDS ? n - at : SL_WIRE_MAX_IDS;
		id_set sent = {0};
		sl_dag_served served;

		for (size_t i = 0; i < k; i++)
			memcpy(chunk[i], order[at + i].id, SL_DIGEST_LEN);
		c->req.len = 0;
		/* Served in (height, id) order up to the budget: the first
		 * sent.n of the chunk. */
		rc = sl_dag_entries_frame(c->s, c->ns, (const uint8_t(*)[SL_DIGEST_LEN])chunk, k,
		                          SL_DAG_FRAME_BUDGET, 0, collect_id, &sent, &c->req,
		                          &served);
		if (rc == SL_OK && sent.n == 0)
			rc = sl_error_set(SL_EINTERNAL, "nothing to push of %zu entries", k);
		if (rc == SL_OK)
			rc = push_frame(c, &c->req, sent.n);
		at += sent.n;
		sl_free(sent.ids);
	}
	if (rc == SL_OK)
		c->have.n = 0;
	sl_free(heights);
	sl_free(order);
	sl_free(chunk);
	return rc;
}

/* ----------------------------------------------------------------- sync */

/* One exchange: bootstrap or reconcile, fetch, push; *upto as for the
 * report. */
static int exchange(sync_ctx *c, uint64_t remote_entries, uint64_t *upto)
{
	sl_dag_info info;
	uint64_t snapshot = 0, pulled_before;
	int rc;

	c->have.n = c->need.n = 0;
	c->pushed_tips.len = 0;
	if ((rc = bootstrap(c, remote_entries)) != SL_OK)
		return rc;
	/* What the bootstrap pulled is in the snapshot reconcile takes. */
	pulled_before = c->r->pulled;
	if ((rc = reconcile(c, &snapshot)) != SL_OK || (rc = fetch(c)) != SL_OK ||
	    (rc = push(c)) != SL_OK || (rc = sl_dag_info_get(c->s, c->ns, &info)) != SL_OK)
		return rc;
	/* Every entry held at the snapshot is the peer's now; so are those
	 * stored since, if they are all what was pulled from it. */
	*upto = info.entries == snapshot + (c->r->pulled - pulled_before) ? info.entries : snapshot;
	return SL_OK;
}

int sl_dag_sync(sl_store *s, const char *ns, const sl_dag_transport *peer,
                sl_dag_sync_report *report)
{
	sync_ctx c;
	sl_dag_info info;
	uint64_t remote_entries = 0, upto = 0;
	int rc, equal = 0;

	memset(report, 0, sizeof(*report));
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.ns = ns;
	c.peer = peer;
	c.r = report;
	c.req = (sl_buf)SL_BUF_INIT(SL_DAG_PUSH_MAX + SL_VALUE_MAX);
	c.ans = (sl_buf)SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	c.pushed_tips = (sl_buf)SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	if ((rc = sl_dag_info_get(s, ns, &info)) != SL_OK ||
	    (rc = sl_dag_items_new(&c.view)) != SL_OK)
		goto out;
	/* Equal tips end it; a round that does not (the peer keeps writing,
	 * or its answers were altered on the way) is followed by another. */
	for (int round = 0; round < SYNC_ROUNDS; round++) {
		if ((rc = tips_equal(&c, &info.ns_id, &remote_entries, &equal)) != SL_OK)
			goto out;
		if (equal)
			break;
		if ((rc = exchange(&c, remote_entries, &upto)) != SL_OK)
			goto out;
		report->upto = upto;
	}
	if (equal) {
		report->equal = 1;
		if ((rc = sl_dag_info_get(s, ns, &info)) == SL_OK)
			report->upto = info.entries;
	} else {
		snprintf(report->error, sizeof(report->error),
		         "the peer's tips still differ after %d rounds: it keeps writing, or its "
		         "answers are altered on the way",
		         SYNC_ROUNDS);
	}
out:
	if (rc != SL_OK && !report->error[0])
		snprintf(report->error, sizeof(report->error), "%.255s", sl_error_last()->message);
	sl_dag_items_free(c.view);
	sl_free(c.have.ids);
	sl_free(c.need.ids);
	sl_buf_free(&c.req);
	sl_buf_free(&c.ans);
	sl_buf_free(&c.pushed_tips);
	return rc;
}

/* --------------------------------------------------------------- outbox */

int sl_dag_push_outbox(sl_store *s, const char *ns, const sl_dag_transport *peer, uint64_t from_seq,
                       uint64_t *upto, sl_dag_sync_report *report)
{
	sync_ctx c;
	int rc = SL_OK;

	memset(report, 0, sizeof(*report));
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.ns = ns;
	c.peer = peer;
	c.r = report;
	c.req = (sl_buf)SL_BUF_INIT(SL_DAG_PUSH_MAX + SL_VALUE_MAX);
	c.ans = (sl_buf)SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	c.pushed_tips = (sl_buf)SL_BUF_INIT(SL_SYNC_FRAME_MAX);
	*upto = from_seq;
	for (;;) {
		sl_dag_served served;
		c.req.len = 0;
		if ((rc = sl_dag_seq_frame(s, ns, *upto, SL_DAG_FRAME_BUDGET, &c.req, &served)) !=
		            SL_OK ||
		    served.entries == 0)
			break;
		if ((rc = push_frame(&c, &c.req, served.entries)) != SL_OK)
			break;
		*upto += served.entries;
		if (!served.more)
			break;
	}
	if (rc != SL_OK && !report->error[0])
		snprintf(report->error, sizeof(report->error), "%.255s", sl_error_last()->message);
	sl_buf_free(&c.req);
	sl_buf_free(&c.ans);
	sl_buf_free(&c.pushed_tips);
	return rc;
}
