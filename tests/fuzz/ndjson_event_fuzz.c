/*
 * Fuzz target for the NDJSON event source's lines: sl_ndjson_event_parse.
 *
 * Input layout: the input is a file of lines split at '\n'; line i is
 * parsed at position i (as the source does, without its newline).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: a line
 * gives SL_OK with at most one event, or SL_ECORRUPT with nothing added
 * and a message starting "line <i+1>: "; a blank line gives no event; an
 * event keeps the batch's promises (a non-empty key without NUL, a
 * version > 0, a value exactly when it is not a delete, its position, the
 * byte count); and the event written back as a line (the key as a JSON
 * string, the value as value_b64) parses to the same event.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/event_source.h"

#define FUZZ_NAME "ndjson_event_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int blank(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

static void check_event(const sl_event *e, uint64_t pos)
{
	if (e->pos != pos || e->key_len == 0 || memchr(e->key, '\0', e->key_len) ||
	    e->key[e->key_len] != '\0' || e->version == 0)
		die("an event breaks the batch's promises");
	if ((e->op == SL_EVENT_DELETE) != (e->value == NULL) ||
	    (e->op == SL_EVENT_DELETE && e->value_len != 0))
		die("a delete with a value, or a set without one");
}

/* The event as a line again, parsed at the same position: the same event. */
static void round_trip(const sl_event *e)
{
	size_t b64_cap = sodium_base64_ENCODED_LEN(e->value_len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64_cap), *line;
	json_t *obj = json_object();
	sl_event_batch again;
	const sl_event *a;

	if (!b64 || !obj)
		die("out of memory");
	json_object_set_new(obj, "key", json_stringn(e->key, e->key_len));
	json_object_set_new(obj, "op", json_string(sl_event_op_name(e->op)));
	json_object_set_new(obj, "version", json_integer((json_int_t)e->version));
	if (e->value) {
		sodium_bin2base64(b64, b64_cap, e->value, e->value_len,
		                  sodium_base64_VARIANT_ORIGINAL);
		json_object_set_new(obj, "value_b64", json_string(b64));
	}
	if (!(line = json_dumps(obj, JSON_COMPACT)))
		die("cannot write the event as JSON");
	sl_event_batch_init(&again);
	if (sl_ndjson_event_parse(&again, e->pos, line, strlen(line)) != SL_OK || again.n != 1)
		die("an event written back as a line does not parse");
	a = &again.events[0];
	if (a->op != e->op || a->version != e->version || a->key_len != e->key_len ||
	    memcmp(a->key, e->key, e->key_len) != 0 || a->value_len != e->value_len ||
	    (e->value_len && memcmp(a->value, e->value, e->value_len) != 0))
		die("an event changed on its way through a line");
	sl_event_batch_free(&again);
	free(line);
	free(b64);
	json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_event_batch b;
	uint64_t pos = 0;
	size_t start = 0;

	sl_event_batch_init(&b);
	while (start <= size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t len = nl ? (size_t)(nl - (data + start)) : size - start;
		size_t n_before = b.n, bytes_before = b.bytes;
		char prefix[32];
		int rc = sl_ndjson_event_parse(&b, pos, (const char *)data + start, len);

		if (rc == SL_OK) {
			if (b.n > n_before + 1 || (blank(data + start, len) && b.n != n_before))
				die("a line gave more than one event, or a blank line one");
			if (b.n > n_before) {
				check_event(&b.events[n_before], pos);
				if (b.bytes != bytes_before + b.events[n_before].key_len +
				                       b.events[n_before].value_len)
					die("the batch's byte count is wrong");
				round_trip(&b.events[n_before]);
			}
		} else if (rc == SL_ECORRUPT) {
			snprintf(prefix, sizeof(prefix),
			         "line %llu: ", (unsigned long long)pos + 1);
			if (b.n != n_before || b.bytes != bytes_before)
				die("a refused line added something");
			if (strncmp(sl_error_last()->message, prefix, strlen(prefix)) != 0)
				die("the message does not name the line");
		} else if (rc != SL_ENOMEM) {
			die("a line gave neither SL_OK nor SL_ECORRUPT");
		}
		pos++;
		start += len + 1;
	}
	sl_event_batch_free(&b);
	return 0;
}
