/*
 * Events and batches of them (sluice/event_source.h): what every event
 * source fills and a mirror applies. A batch owns copies of its keys and
 * values, so a source may reuse its buffers as soon as add returns.
 */
#include <string.h>

#include "sluice/event_source.h"

static const char *const op_names[] = {NULL, "set", "update", "delete"};

const char *sl_event_op_name(sl_event_op op)
{
	return op >= SL_EVENT_SET && op <= SL_EVENT_DELETE ? op_names[op] : "?";
}

int sl_event_op_parse(sl_event_op *out, const char *name)
{
	for (int op = SL_EVENT_SET; op <= SL_EVENT_DELETE; op++)
		if (name && strcmp(name, op_names[op]) == 0) {
			*out = (sl_event_op)op;
			return SL_OK;
		}
	return sl_error_set(SL_EINVAL, "event op \"%s\" is not set, update or delete",
	                    name ? name : "");
}

void sl_event_batch_init(sl_event_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void sl_event_batch_clear(sl_event_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		sl_free(b->events[i].key);
		sl_free(b->events[i].value);
	}
	b->n = 0;
	b->bytes = 0;
}

void sl_event_batch_free(sl_event_batch *b)
{
	sl_event_batch_clear(b);
	sl_free(b->events);
	sl_event_batch_init(b);
}

int sl_event_batch_add(sl_event_batch *b, uint64_t pos, sl_event_op op, const char *key,
                       size_t key_len, const void *value, size_t value_len, uint64_t version)
{
	sl_event *e, *grown;
	if (key_len == 0 || memchr(key, '\0', key_len) != NULL)
		return sl_error_set(SL_EINVAL,
		                    "event at %llu: a key must be non-empty text without "
		                    "NUL",
		                    (unsigned long long)pos);
	if (version == 0 || version > INT64_MAX)
		return sl_error_set(SL_EINVAL, "event at %llu: version must be 1..2^63-1",
		                    (unsigned long long)pos);
	if (op < SL_EVENT_SET || op > SL_EVENT_DELETE || (op == SL_EVENT_DELETE && value_len > 0))
		return sl_error_set(SL_EINVAL, "event at %llu: a delete carries no value",
		                    (unsigned long long)pos);
	if ((grown = sl_grow(b->events, &b->cap, b->n, sizeof(*grown), 64)) == NULL)
		return SL_ENOMEM;
	b->events = grown;
	e = &b->events[b->n];
	memset(e, 0, sizeof(*e));
	if ((e->key = sl_malloc(key_len + 1)) == NULL)
		return SL_ENOMEM;
	memcpy(e->key, key, key_len);
	e->key[key_len] = '\0';
	if (op != SL_EVENT_DELETE && (e->value = sl_malloc(value_len ? value_len : 1)) == NULL) {
		sl_free(e->key);
		return SL_ENOMEM;
	}
	if (value_len)
		memcpy(e->value, value, value_len);
	e->pos = pos;
	e->op = op;
	e->key_len = key_len;
	e->value_len = value_len;
	e->version = version;
	b->n++;
	b->bytes += key_len + value_len;
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
