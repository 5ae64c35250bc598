/*
 * The state reconciliation endpoints of the sync server (docs/protocol.md,
 * "Set reconciliation"):
 *   POST /api/v0/ns/{ns}/reconcile[?frame_limit=L]   a negentropy message
 *        in, the responder's answer out; no state is kept between
 *        requests, each is answered against the latest commit;
 *   POST /api/v0/ns/{ns}/items   item ids in, their keys, digests and
 *        values (when asked) out, in frames of bounded size.
 * The answers themselves are sl_state_reconcile_answer and
 * sl_state_items_answer, which a diff against a local store calls
 * directly. Each reads one snapshot of the namespace's items
 * (sl_store_items_open), so an answer never mixes two commits. Input is
 * checked before the store is touched: a message or request that does not
 * decode is 400, one past its cap 413, and nothing changes in any case
 * (both are reads).
 */
#include "sync/server_internal.h"

#include <stdio.h>
#include <string.h>

#define CONTENT_BINARY "application/octet-stream"
#define CONTENT_ITEMS  "application/vnd.sluice.items"

int sl_state_reconcile_answer(sl_store *s, const char *ns, size_t frame_limit, const uint8_t *msg,
                              size_t len, sl_buf *out)
{
	sl_items *it = NULL;
	sl_item_set set;
	int rc;

	if ((rc = sl_reconcile_check(msg, len)) != SL_OK ||
	    (rc = sl_store_items_open(s, ns, &it)) != SL_OK)
		return rc;
	set = sl_items_set(it);
	rc = sl_reconcile_respond(&set, frame_limit, msg, len, out);
	sl_items_close(it);
	return rc;
}

void server_reconcile(sl_store *s, const sl_http_request *req, const char *ns,
                      sl_http_response *resp)
{
	uint64_t limit = SL_STATE_FRAME_MAX;
	char msg[160];

	if (req->body_len > SL_STATE_FRAME_MAX) {
		snprintf(msg, sizeof(msg), "a reconciliation message is at most %zu bytes",
		         SL_STATE_FRAME_MAX);
		server_fail(resp, 413, msg);
		return;
	}
	if (server_query_u64(req, "frame_limit", &limit, 0, resp) != SL_OK)
		return;
	if (limit < SL_RECONCILE_FRAME_MIN || limit > SL_STATE_FRAME_MAX) {
		snprintf(msg, sizeof(msg), "'frame_limit' must be between %d and %zu",
		         SL_RECONCILE_FRAME_MIN, SL_STATE_FRAME_MAX);
		server_fail(resp, 400, msg);
		return;
	}
	/* Checked here too, so that a bad message is the client's fault and
	 * whatever fails after it the store's. */
	if (sl_reconcile_check(req->body, req->body_len) != SL_OK) {
		server_fail(resp, 400, sl_error_last()->message);
		return;
	}
	if (sl_state_reconcile_answer(s, ns, (size_t)limit, req->body, req->body_len,
	                              &resp->body) != SL_OK)
		server_fail_store(resp);
	else
		resp->content_type = CONTENT_BINARY;
}

typedef struct item_answer {
	sl_items *items;
	unsigned flags;
	sl_buf value;
} item_answer;

/* An id's key, digest and (when asked) value, or SL_ENOTFOUND. */
static int add_item(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], sl_buf *out)
{
	item_answer *a = ctx;
	int values = (a->flags & SL_WIRE_ITEMS_VALUES) != 0;
	sl_key_entry e;
	int rc = sl_items_find(a->items, id, &e);
	if (rc == SL_OK && values)
		rc = sl_items_value(a->items, &e, &a->value);
	if (rc == SL_OK)
		rc = sl_wire_items_add(out, id, e.key, e.key_len, e.value_len, &e.digest,
		                       values ? a->value.data : NULL);
	return rc;
}

int sl_state_items_answer(sl_store *s, const char *ns, const uint8_t *request, size_t len,
                          size_t budget, sl_buf *out)
{
	const uint8_t *ids;
	unsigned flags;
	size_t n;
	sl_items *it = NULL;
	int rc;

	if ((rc = sl_wire_items_request_decode(&flags, &ids, &n, request, len)) != SL_OK ||
	    (rc = sl_store_items_open(s, ns, &it)) != SL_OK)
		return rc;
	item_answer a = {it, flags, SL_BUF_INIT(SL_VALUE_MAX)};
	rc = sl_wire_items_answer(ids, n, budget, add_item, &a, out);
	sl_buf_free(&a.value);
	sl_items_close(it);
	return rc;
}

void server_items(sl_store *s, const sl_http_request *req, const char *ns, size_t frame_budget,
                  sl_http_response *resp)
{
	const uint8_t *ids;
	unsigned flags;
	size_t n;

	if (sl_wire_items_request_decode(&flags, &ids, &n, req->body, req->body_len) != SL_OK) {
		server_fail_last(resp);
		return;
	}
	if (sl_state_items_answer(s, ns, req->body, req->body_len, frame_budget, &resp->body) !=
	    SL_OK)
		server_fail_store(resp);
	else
		resp->content_type = CONTENT_ITEMS;
}
