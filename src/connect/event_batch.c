/* Events and batches of them, what every event source fills
 * (sluice/event_source.h).
 *
 * An event's key and value live in one allocation: the key, its NUL, then
 * the value, so adding an event costs one allocation and `value` points
 * into it (NULL only for a delete; an empty set or update has a non-NULL
 * empty value). The batch's array is kept across clears, so a reader that
 * clears after each read allocates no array once it has grown.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "connect/event_internal.h"

const char *sl_event_op_name(sl_event_op op)
{
	switch (op) {
	case SL_EVENT_SET:
		return "set";
	case SL_EVENT_UPDATE:
		return "update";
	case SL_EVENT_DELETE:
		return "delete";
	}
	return "unknown";
}

int sl_event_op_parse(sl_event_op *out, const char *name)
{
	static const sl_event_op ops[] = {SL_EVENT_SET, SL_EVENT_UPDATE, SL_EVENT_DELETE};
	for (size_t i = 0; name && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(name, sl_event_op_name(ops[i])) == 0) {
			*out = ops[i];
			return SL_OK;
		}
	return sl_error_set(SL_EINVAL, "unknown event operation '%s' (set, update or delete)",
	                    name ? name : "(null)");
}

void sl_event_batch_init(sl_event_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void sl_event_batch_truncate(sl_event_batch *b, size_t n)
{
	while (b->n > n) {
		sl_event *e = &b->events[--b->n];
		b->bytes -= e->key_len + e->value_len;
		sl_free(e->key);
		memset(e, 0, sizeof(*e));
	}
}

void sl_event_batch_clear(sl_event_batch *b)
{
	sl_event_batch_truncate(b, 0);
	b->bytes = 0;
}

void sl_event_batch_free(sl_event_batch *b)
{
	if (!b)
		return;
	sl_event_batch_clear(b);
	sl_free(b->events);
	sl_event_batch_init(b);
}

int sl_event_batch_add(sl_event_batch *b, uint64_t pos, sl_event_op op, const char *key,
                       size_t key_len, const void *value, size_t value_len, uint64_t version)
{
	sl_event *grown, *e;
	char *mem;

	if (op != SL_EVENT_SET && op != SL_EVENT_UPDATE && op != SL_EVENT_DELETE)
		return sl_error_set(SL_EINVAL, "event at %llu: unknown operation %d",
		                    (unsigned long long)pos, (int)op);
	if (!key || key_len == 0 || memchr(key, '\0', key_len))
		return sl_error_set(SL_EINVAL,
		                    "event at %llu: the key is empty or holds a NUL byte",
		                    (unsigned long long)pos);
	if (version == 0)
		return sl_error_set(SL_EINVAL, "event at %llu: version 0", (unsigned long long)pos);
	if (op == SL_EVENT_DELETE && value_len > 0)
		return sl_error_set(SL_EINVAL, "event at %llu: a delete with a value",
		                    (unsigned long long)pos);
	if (value_len > 0 && !value)
		return sl_error_set(SL_EINVAL, "event at %llu: no bytes for a value of %zu bytes",
		                    (unsigned long long)pos, value_len);
	if (key_len > SIZE_MAX - 1 - value_len)
		return sl_error_set(SL_ETOOLARGE, "event at %llu: key and value too large",
		                    (unsigned long long)pos);
	if (!(grown = sl_grow(b->events, &b->cap, b->n, sizeof(*b->events), 64)))
		return SL_ENOMEM;
	b->events = grown;
	if (!(mem = sl_malloc(key_len + 1 + value_len)))
		return SL_ENOMEM;
	memcpy(mem, key, key_len);
	mem[key_len] = '\0';
	if (value_len)
		memcpy(mem + key_len + 1, value, value_len);
	e = &b->events[b->n++];
	e->pos = pos;
	e->op = op;
	e->key = mem;
	e->key_len = key_len;
	e->value = op == SL_EVENT_DELETE ? NULL : (uint8_t *)mem + key_len + 1;
	e->value_len = value_len;
	e->version = version;
	b->bytes += key_len + value_len;
	return SL_OK;
}

int sl_event_batch_full(const sl_event_batch *b, size_t added, size_t max_events, size_t max_bytes)
{
	return added >= max_events || (added > 0 && b->bytes >= max_bytes);
}

int sl_event_source_set_name(sl_event_source *out, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(out->name, sizeof(out->name), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(out->name))
		return sl_error_set(SL_EINVAL, "the source's name is longer than %zu bytes",
		                    sizeof(out->name) - 1);
	return SL_OK;
}

void sl_event_source_close(sl_event_source *s)
{
	if (!s || !s->ops)
		return;
	s->ops->close(s->self);
	s->ops = NULL;
	s->self = NULL;
}
