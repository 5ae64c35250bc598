/* The store event source: a namespace of a store directory on this
 * machine, opened read-only, as events.
 *
 * Positions are the log's locations. The set, update and delete
 * operations are the events (version = location + 1); commit operations
 * are not, but a read moves past them. One read is one read transaction
 * (sl_store_read_range without a proof), so it sees whole commits only,
 * with the values the operations set. Every read transaction sees the
 * commits made before it began (SQLite's WAL), by this process or
 * another, so the handle is never reopened.
 *
 * Waiting: when nothing is past `from`, the namespace's head is read again
 * every HEAD_POLL_MS until wait_ms passed. A store is never finished:
 * at_end is always 0 (head() says how far it goes).
 *
 * Errors: `from` below the pruned boundary or past the size is SL_EINVAL;
 * the store's own errors pass through, and nothing is appended then.
 */
#include <stdlib.h>
#include <string.h>

#include "connect/event_internal.h"
#include "sluice/store.h"

#define HEAD_POLL_MS 10

typedef struct store_src {
	sl_store *store;
	char ns[SL_NS_NAME_MAX + 1];
	char *dir; /* for messages */
} store_src;

/* What a read has taken so far. */
typedef struct take {
	sl_event_batch *out;
	size_t added, max_events, max_bytes;
	uint64_t next; /* past the last operation taken */
} take;

static int take_op(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                   size_t element_len, const void *value, size_t value_len)
{
	take *t = ctx;
	sl_event_op kind;
	int rc;

	(void)element;
	(void)element_len;
	if (op->type == SL_OP_COMMIT) {
		t->next = loc + 1;
		return 0;
	}
	kind = op->type == SL_OP_SET      ? SL_EVENT_SET
	       : op->type == SL_OP_UPDATE ? SL_EVENT_UPDATE
	                                  : SL_EVENT_DELETE;
	if (kind == SL_EVENT_DELETE)
		value_len = 0;
	if ((rc = sl_event_batch_add(t->out, loc, kind, op->key, op->key_len, value, value_len,
	                             loc + 1)) != SL_OK)
		return rc;
	t->added++;
	t->next = loc + 1;
	return sl_event_batch_full(t->out, t->added, t->max_events, t->max_bytes) ? 1 : 0;
}

/* The namespace's head, with `from` checked against it. */
static int head_for(store_src *r, uint64_t from, sl_ns_info *info)
{
	int rc = sl_store_ns_head(r->store, r->ns, info);
	if (rc != SL_OK)
		return sl_error_wrap("store %s", r->dir);
	if (from < info->pruned)
		return sl_error_set(SL_EINVAL,
		                    "store %s: operations below %llu of '%s' were pruned: position "
		                    "%llu can no longer be read",
		                    r->dir, (unsigned long long)info->pruned, r->ns,
		                    (unsigned long long)from);
	if (from > info->target.size)
		return sl_error_set(SL_EINVAL,
		                    "store %s: position %llu is past the end of '%s' (%llu "
		                    "operations)",
		                    r->dir, (unsigned long long)from, r->ns,
		                    (unsigned long long)info->target.size);
	return SL_OK;
}

static int store_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                      uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	store_src *r = self;
	uint64_t deadline = sl_clock_mono_ns() + wait_ms * 1000000;
	take t = {out, 0, max_events, max_bytes, from};
	size_t n0 = out->n;
	sl_ns_info info;
	int rc;

	*at_end = 0;
	if (max_events == 0)
		return sl_error_set(SL_EINVAL, "a read of at most 0 events");
	for (;;) {
		uint64_t now;
		if ((rc = head_for(r, from, &info)) != SL_OK)
			return rc;
		if (from < info.target.size)
			break;
		if ((now = sl_clock_mono_ns()) >= deadline) {
			*next = from;
			return SL_OK;
		}
		sl_sleep_ms((deadline - now) / 1000000 < HEAD_POLL_MS
		                    ? (deadline - now) / 1000000 + 1
		                    : HEAD_POLL_MS);
	}
	rc = sl_store_read_range(r->store, r->ns, 0, from, UINT64_MAX - from, take_op, &t, NULL,
	                         NULL);
	if (rc != SL_OK) {
		sl_event_batch_truncate(out, n0);
		return sl_error_wrap("store %s", r->dir);
	}
	*next = t.next;
	return SL_OK;
}

static int store_head(void *self, sl_event_source_head *out)
{
	store_src *r = self;
	sl_ns_info info;
	if (sl_store_ns_head(r->store, r->ns, &info) != SL_OK)
		return sl_error_wrap("store %s", r->dir);
	out->end = info.target.size;
	out->known = 1;
	return SL_OK;
}

static int store_save_state(void *self, char *out, size_t cap)
{
	(void)self;
	if (cap == 0)
		return sl_error_set(SL_ETOOLARGE, "no room for the source's state");
	out[0] = '\0';
	return SL_OK;
}

static int store_restore_state(void *self, const char *state)
{
	(void)self;
	if (state[0] != '\0')
		return sl_error_set(SL_ECORRUPT, "a store source keeps no state, given '%.64s'",
		                    state);
	return SL_OK;
}

static void store_close(void *self)
{
	store_src *r = self;
	if (!r)
		return;
	sl_store_free(r->store);
	sl_free(r->dir);
	sl_free(r);
}

static const sl_event_source_ops store_ops = {
        "store", store_read, store_head, store_save_state, store_restore_state, store_close,
};

int sl_store_source_open(sl_event_source *out, const char *store_dir, const char *ns)
{
	sl_store_options o;
	sl_ns_info info;
	store_src *r;
	char *real;
	int rc;

	if (!store_dir || !ns)
		return sl_error_set(SL_EINVAL, "a store source needs a directory and a namespace");
	if ((rc = sl_ns_name_validate(ns)) != SL_OK)
		return rc;
	if (!(r = sl_calloc(1, sizeof(*r))) || !(r->dir = sl_strdup(store_dir))) {
		sl_free(r);
		return SL_ENOMEM;
	}
	strcpy(r->ns, ns);
	sl_store_options_init(&o);
	o.flags = SL_STORE_READONLY;
	if ((rc = sl_store_open(&r->store, store_dir, &o)) != SL_OK ||
	    (rc = sl_store_ns_head(r->store, ns, &info)) != SL_OK) {
		sl_error_wrap("store %s", store_dir);
		goto fail;
	}
	real = realpath(store_dir, NULL);
	rc = sl_event_source_set_name(out, "store:%s/%s", real ? real : store_dir, ns);
	free(real);
	if (rc != SL_OK)
		goto fail;
	out->ops = &store_ops;
	out->self = r;
	return SL_OK;
fail:
	store_close(r);
	return rc;
}
