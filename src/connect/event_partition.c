/*
 * A partition of an event source: the events whose key falls in one of
 * `count` key-hash partitions, at the source's own positions. Workers of
 * one mirror each read the whole source through one of these, so each key
 * is only ever applied by one worker, in source order, and each worker's
 * position row (its name ends in "#part=INDEX/COUNT") moves on its own.
 *
 * Events of other partitions are read and passed over: a read that finds
 * only those returns no event with *next moved past them, so the worker's
 * position can still move (the mirror saves positions without events).
 *
 * The partition of a key is FNV-1a 64 of its bytes modulo count: stable
 * across versions and machines, since positions are stored under it.
 */
#include <stdio.h>
#include <string.h>

#include "connect/event_internal.h"

typedef struct partition {
	sl_event_source inner;
	unsigned index, count;
} partition;

unsigned sl_event_key_partition(const char *key, size_t len, unsigned count)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
	return count ? (unsigned)(h % count) : 0;
}

/* Keep only this partition's events of out[from..]. */
static void keep_own(const partition *p, sl_event_batch *out, size_t from)
{
	size_t kept = from;
	for (size_t i = from; i < out->n; i++) {
		sl_event *e = &out->events[i];
		if (sl_event_key_partition(e->key, e->key_len, p->count) != p->index) {
			out->bytes -= e->key_len + e->value_len;
			sl_free(e->key);
			continue;
		}
		if (kept != i)
			out->events[kept] = *e;
		kept++;
	}
	for (size_t i = kept; i < out->n; i++)
		memset(&out->events[i], 0, sizeof(out->events[i]));
	out->n = kept;
}

static int partition_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                          uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	partition *p = self;
	size_t before = out->n;
	int rc = p->inner.ops->read(p->inner.self, from, max_events, max_bytes, wait_ms, out, next,
	                            at_end);
	keep_own(p, out, before);
	return rc;
}

static int partition_head(void *self, sl_event_source_head *out)
{
	partition *p = self;
	return p->inner.ops->head(p->inner.self, out);
}

static int partition_save_state(void *self, char *out, size_t cap)
{
	partition *p = self;
	return p->inner.ops->save_state(p->inner.self, out, cap);
}

static int partition_restore_state(void *self, const char *state)
{
	partition *p = self;
	return p->inner.ops->restore_state(p->inner.self, state);
}

static void partition_close(void *self)
{
	partition *p = self;
	sl_event_source_close(&p->inner);
	sl_free(p);
}

static const sl_event_source_ops partition_ops = {
        "partition",          partition_read,          partition_head,
        partition_save_state, partition_restore_state, partition_close,
};

int sl_partition_source_open(sl_event_source *out, sl_event_source *inner, unsigned index,
                             unsigned count)
{
	partition *p;
	int rc;

	if (count == 0 || index >= count)
		return sl_error_set(SL_EINVAL, "partition %u of %u: not a partition", index, count);
	if ((p = sl_calloc(1, sizeof(*p))) == NULL)
		return SL_ENOMEM;
	memset(out, 0, sizeof(*out));
	if ((rc = sl_event_source_set_name(out, "%s#part=%u/%u", inner->name, index, count)) !=
	    SL_OK) {
		sl_free(p);
		return rc;
	}
	p->inner = *inner;
	p->index = index;
	p->count = count;
	memset(inner, 0, sizeof(*inner));
	out->ops = &partition_ops;
	out->self = p;
	return SL_OK;
}
