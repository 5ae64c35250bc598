/*
 * The answers a node gives about one of its dag namespaces
 * (include/sluice/dag_sync.h), whatever carries them. Requests are decoded
 * and checked whole before the store is read; only a push writes, and it
 * stores nothing it has not verified (sl_dag_insert). Frames hold at most
 * their budget of entries and values, but always one entry, so an entry
 * whose values are large still goes.
 */
#include "sluice/dag_sync.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ tips */

int sl_dag_tips_answer(sl_store *s, const char *ns, const sl_digest *ns_id, sl_buf *out)
{
	sl_digest *tips = sl_malloc(SL_DAG_TIPS_MAX * sizeof(*tips));
	uint64_t entries = 0;
	size_t n = 0;
	int rc;

	if (!tips)
		return SL_ENOMEM;
	if ((rc = sl_dag_tip_ids(s, ns, tips, SL_DAG_TIPS_MAX, &n, &entries)) != SL_OK)
		goto out;
	rc = sl_buf_printf(out, "{\"id\":\"%s\",\"entries\":%llu,\"tips\":[",
	                   sl_digest_to_hex(ns_id).s, (unsigned long long)entries);
	for (size_t i = 0; rc == SL_OK && i < n && i < SL_DAG_TIPS_MAX; i++)
		rc = sl_buf_printf(out, "%s\"%s\"", i ? "," : "", sl_digest_to_hex(&tips[i]).s);
	if (rc == SL_OK)
		rc = sl_buf_printf(out, "],\"more\":%s}", n > SL_DAG_TIPS_MAX ? "true" : "false");
out:
	sl_free(tips);
	return rc;
}

/* ------------------------------------------------------------ reconcile */

int sl_dag_reconcile_answer(sl_dag_items *items, sl_store *s, const char *ns, const uint8_t *msg,
                            size_t len, sl_buf *out)
{
	sl_item_set set;
	int rc;
	if ((rc = sl_reconcile_check(msg, len)) != SL_OK ||
	    (rc = sl_dag_items_refresh(items, s, ns)) != SL_OK)
		return rc;
	set = sl_dag_items_set(items);
	return sl_reconcile_respond(&set, SL_DAG_MSG_MAX, msg, len, out);
}

/* --------------------------------------------------------------- entries */

/* Where served entries go: the frame, and the ids not held aside, as the
 * frame lists them after its records. */
typedef struct frame_ctx {
	sl_buf *out;
	size_t records;
	sl_buf missing;
	size_t n_missing;
	sl_dag_entry_fn on_entry;
	void *on_entry_ctx;
} frame_ctx;

static int sink_value(void *ctx, const sl_digest *digest, const uint8_t *data, size_t len)
{
	frame_ctx *f = ctx;
	(void)digest;
	f->records++;
	return sl_wire_entries_add_value(f->out, data, len);
}

static int sink_entry(void *ctx, const sl_dag_entry *e, const uint8_t *encoding, size_t len)
{
	frame_ctx *f = ctx;
	int rc;
	f->records++;
	if ((rc = sl_wire_entries_add_entry(f->out, encoding, len)) == SL_OK && f->on_entry)
		rc = f->on_entry(f->on_entry_ctx, e, encoding, len);
	return rc;
}

static int sink_missing(void *ctx, const uint8_t id[SL_DIGEST_LEN])
{
	frame_ctx *f = ctx;
	f->n_missing++;
	return sl_buf_append(&f->missing, id, SL_DIGEST_LEN);
}

/* Serve into a frame, then end it. */
typedef int (*serve_fn)(sl_store *s, const char *ns, const void *arg, size_t budget,
                        const sl_dag_sink *sink, sl_dag_served *served);

static int serve_frame(sl_store *s, const char *ns, serve_fn serve, const void *arg, size_t budget,
                       int answer_form, sl_dag_entry_fn on_entry, void *ctx, sl_buf *out,
                       sl_dag_served *served)
{
	size_t mark = out->len;
	sl_dag_sink sink = {sink_value, sink_entry, sink_missing, NULL};
	frame_ctx f = {out, 0,        SL_BUF_INIT((size_t)SL_WIRE_MAX_IDS * SL_ITEM_ID_LEN),
	               0,   on_entry, ctx};
	int rc;

	sink.ctx = &f;
	if ((rc = sl_wire_entries_begin(out, 0)) == SL_OK &&
	    (rc = serve(s, ns, arg, budget, &sink, served)) == SL_OK) {
		if (!answer_form && f.n_missing)
			rc = sl_error_set(SL_ENOTFOUND, "%zu entries to send are not held here",
			                  f.n_missing);
		else if (answer_form && served->more)
			out->data[mark + 1] |= SL_WIRE_ENTRIES_MORE; /* the flags byte */
	}
	if (rc == SL_OK)
		rc = sl_wire_entries_end(out, f.records, f.missing.data, f.n_missing);
	sl_buf_free(&f.missing);
	if (rc != SL_OK)
		out->len = mark;
	return rc;
}

typedef struct ids_arg {
	const uint8_t (*ids)[SL_DIGEST_LEN];
	size_t n;
} ids_arg;

static int serve_ids(sl_store *s, const char *ns, const void *arg, size_t budget,
                     const sl_dag_sink *sink, sl_dag_served *served)
{
	const ids_arg *a = arg;
	return sl_dag_serve_ids(s, ns, a->ids, a->n, budget, sink, served);
}

int sl_dag_entries_frame(sl_store *s, const char *ns, const uint8_t (*ids)[SL_DIGEST_LEN], size_t n,
                         size_t budget, int answer_form, sl_dag_entry_fn on_entry, void *ctx,
                         sl_buf *out, sl_dag_served *served)
{
	ids_arg a = {ids, n};
	return serve_frame(s, ns, serve_ids, &a, budget, answer_form, on_entry, ctx, out, served);
}

static int serve_seq(sl_store *s, const char *ns, const void *arg, size_t budget,
                     const sl_dag_sink *sink, sl_dag_served *served)
{
	return sl_dag_serve_seq(s, ns, *(const uint64_t *)arg, budget, sink, served);
}

int sl_dag_seq_frame(sl_store *s, const char *ns, uint64_t from_seq, size_t budget, sl_buf *out,
                     sl_dag_served *served)
{
	return serve_frame(s, ns, serve_seq, &from_seq, budget, 0, NULL, NULL, out, served);
}

int sl_dag_entries_answer(sl_store *s, const char *ns, const uint8_t *request, size_t len,
                          size_t budget, sl_buf *out)
{
	const uint8_t *ids;
	sl_dag_served served;
	unsigned flags;
	size_t n;
	int rc;

	if ((rc = sl_wire_items_request_decode(&flags, &ids, &n, request, len)) != SL_OK)
		return rc;
	if (flags != 0)
		return sl_error_set(SL_ECORRUPT, "malformed entries request: flags must be 0");
	return sl_dag_entries_frame(s, ns, (const uint8_t(*)[SL_DIGEST_LEN])ids, n, budget, 1, NULL,
	                            NULL, out, &served);
}

/* ------------------------------------------------------------- bootstrap */

int sl_dag_bootstrap_request(uint8_t out[SL_DAG_BOOTSTRAP_LEN], const sl_item *cursor,
                             uint64_t count, const uint8_t fingerprint[SL_FINGERPRINT_LEN])
{
	out[0] = SL_WIRE_VERSION;
	sl_be64_put(out + 1, cursor->ts);
	memcpy(out + 9, cursor->id, SL_ITEM_ID_LEN);
	sl_be64_put(out + 41, count);
	memcpy(out + 49, fingerprint, SL_FINGERPRINT_LEN);
	return SL_OK;
}

static int serve_after(sl_store *s, const char *ns, const void *arg, size_t budget,
                       const sl_dag_sink *sink, sl_dag_served *served)
{
	const sl_item *cursor = arg;
	sl_digest id;
	memcpy(id.bytes, cursor->id, SL_DIGEST_LEN);
	return sl_dag_serve_after(s, ns, cursor->ts, &id, budget, sink, served);
}

/* The asker's items up to the cursor are this node's: the cursor is held,
 * and the count and fingerprint of [0, cursor] match. */
static int check_prefix(sl_dag_items *items, sl_store *s, const char *ns, const sl_item *cursor,
                        uint64_t count, const uint8_t *fingerprint)
{
	uint8_t fp[SL_FINGERPRINT_LEN];
	sl_item_set set;
	sl_item_sum sum;
	sl_item at;
	uint64_t n, index;
	int rc;

	if ((rc = sl_dag_items_refresh(items, s, ns)) != SL_OK)
		return rc;
	set = sl_dag_items_set(items);
	if ((rc = set.ops->count(set.ctx, &n)) != SL_OK ||
	    (rc = set.ops->lower_bound(set.ctx, 0, cursor, &index)) != SL_OK)
		return rc;
	if (index == n || (rc = set.ops->get(set.ctx, index, &at)) != SL_OK ||
	    sl_item_cmp(&at, cursor) != 0 || index + 1 != count)
		return rc != SL_OK ? rc
		                   : sl_error_set(SL_ECONFLICT,
		                                  "the asker's entries are not a prefix of "
		                                  "this node's: reconcile instead");
	if ((rc = set.ops->sum(set.ctx, 0, count, &sum)) != SL_OK)
		return rc;
	sl_item_sum_fingerprint(fp, &sum, count);
	if (memcmp(fp, fingerprint, SL_FINGERPRINT_LEN) != 0)
		return sl_error_set(SL_ECONFLICT, "the asker's entries are not a prefix of this "
		                                  "node's: reconcile instead");
	return SL_OK;
}

int sl_dag_bootstrap_answer(sl_dag_items *items, sl_store *s, const char *ns,
                            const uint8_t *request, size_t len, size_t budget, sl_buf *out)
{
	sl_dag_served served;
	sl_item cursor;
	uint64_t count;
	int rc;

	if (len != SL_DAG_BOOTSTRAP_LEN || request[0] != SL_WIRE_VERSION)
		return sl_error_set(SL_ECORRUPT,
		                    "malformed bootstrap request: %zu bytes, version %d", len,
		                    len ? request[0] : -1);
	cursor.ts = sl_be64_get(request + 1);
	memcpy(cursor.id, request + 9, SL_ITEM_ID_LEN);
	count = sl_be64_get(request + 41);
	if (cursor.ts == SL_ITEM_TS_INFINITY || count == 0)
		return sl_error_set(SL_ECORRUPT, "malformed bootstrap request: no such cursor");
	if ((rc = check_prefix(items, s, ns, &cursor, count, request + 49)) != SL_OK)
		return rc;
	return serve_frame(s, ns, serve_after, &cursor, budget, 1, NULL, NULL, out, &served);
}

/* ------------------------------------------------------------------ push */

int sl_dag_push_answer(sl_store *s, const char *ns, const uint8_t from[SL_ED25519_PK_LEN],
                       const uint8_t *frame, size_t len, sl_dag_insert_report *report)
{
	sl_wire_entries w;
	int rc;

	memset(report, 0, sizeof(*report));
	if ((rc = sl_wire_entries_decode(&w, frame, len)) != SL_OK)
		return rc;
	if (w.flags != 0 || w.n_missing != 0 || w.n_entries == 0)
		rc = sl_error_set(SL_ECORRUPT, "a pushed frame holds entries only");
	else
		rc = sl_dag_insert_from(s, ns, from, NULL, w.entries, w.n_entries, w.values,
		                        w.n_values, report);
	sl_wire_entries_free(&w);
	return rc;
}
