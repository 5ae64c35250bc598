/*
 * What the event sources (connect/event_*.c) share, and their test hooks.
 * Private to connect/ and its tests.
 */
#ifndef SLUICE_CONNECT_EVENT_INTERNAL_H
#define SLUICE_CONNECT_EVENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/event_source.h"

/* 1 when a read that has appended `added` events to b must stop before
 * another: it has max_events, or at least one and b->bytes reached
 * max_bytes (the read contract in event_source.h). */
int sl_event_batch_full(const sl_event_batch *b, size_t added, size_t max_events, size_t max_bytes);

/* Frees the events past the first n (a read that fails takes back what it
 * appended). */
void sl_event_batch_truncate(sl_event_batch *b, size_t n);

/* out->name from a printf format; SL_EINVAL when it does not fit. */
int sl_event_source_set_name(sl_event_source *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Test hook: lines of more than max bytes are SL_ECORRUPT (default
 * 64 MiB), so a test needs no 64 MiB file. */
void sl_ndjson_source_set_line_max(sl_event_source *s, size_t max);

#endif
