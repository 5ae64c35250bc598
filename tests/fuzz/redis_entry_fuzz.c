/*
 * Fuzz target for the Redis stream source's entries: sl_redis_entry_parse,
 * with sl_redis_id_to_pos and sl_redis_pos_to_id (src/connect/event_redis.c).
 *
 * Input layout: the first byte picks the options (its value mod 3: the
 * default field names; the defaults with version field "version"; the
 * names "k", "o", "v" and version "n"). The rest is split at '\n': the
 * first part is the entry id (up to a NUL byte, as a C string ends), the
 * others are the entry's fields and values, in turn, as Redis would hand
 * them over (any bytes but '\n').
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: an id
 * has a position exactly when it is canonical MS-SEQ within the limits,
 * and the position written back is the same id; an entry gives SL_OK with
 * one event or SL_ECORRUPT with nothing added and a message that starts
 * "stream entry " and names the id; an event keeps the batch's promises,
 * is at the id's position, holds the key field's bytes and the value
 * field's (empty when there is none, NULL for a delete), has version
 * pos + 1 without a version field; and the event written back as fields
 * parses to the same event.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/event_source.h"

#define FUZZ_NAME "redis_entry_fuzz"
#include "fuzz_util.h"

#define PARTS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An independent reading of the id: two canonical decimals below 2^64. */
static int id_parts(const char *id, uint64_t *ms, uint64_t *seq)
{
	const char *dash = strchr(id, '-');
	uint64_t *out[2] = {ms, seq};
	const char *s[2] = {id, dash ? dash + 1 : NULL};
	size_t len[2] = {dash ? (size_t)(dash - id) : 0, dash ? strlen(dash + 1) : 0};

	if (!dash)
		return 0;
	for (int k = 0; k < 2; k++) {
		uint64_t v = 0;
		if (len[k] == 0 || (len[k] > 1 && s[k][0] == '0'))
			return 0;
		for (size_t i = 0; i < len[k]; i++) {
			uint64_t d = (uint64_t)(s[k][i] - '0');
			if (s[k][i] < '0' || s[k][i] > '9' || v > (UINT64_MAX - d) / 10)
				return 0;
			v = v * 10 + d;
		}
		*out[k] = v;
	}
	return 1;
}

static void check_id(const char *id, int *has_pos, uint64_t *pos)
{
	uint64_t ms = 0, seq = 0, got = 0;
	char again[SL_REDIS_ID_MAX];
	int rc = sl_redis_id_to_pos(&got, id);
	int want = id_parts(id, &ms, &seq) && seq < (1u << 20) && ms < (UINT64_C(1) << 44) &&
	           !(ms == (UINT64_C(1) << 44) - 1 && seq == (1u << 20) - 1);

	if ((rc == SL_OK) != want)
		die("an id has a position it should not, or lacks one it should have");
	if (rc != SL_OK) {
		if (rc != SL_ECORRUPT ||
		    strncmp(sl_error_last()->message, "stream entry ", 13) != 0)
			die("a refused id is not SL_ECORRUPT naming the entry");
		*has_pos = 0;
		return;
	}
	if (got != (ms << 20 | seq))
		die("an id at the wrong position");
	sl_redis_pos_to_id(again, sizeof(again), got);
	if (strcmp(again, id) != 0)
		die("a position written back is another id");
	*has_pos = 1;
	*pos = got;
}

/* The value of the only field `name`, or 0 when it is absent. */
static int field(const char *const *parts, const size_t *lens, size_t n, const char *name,
                 const char **value, size_t *value_len)
{
	int found = 0;
	for (size_t i = 0; name && i + 1 < n; i += 2)
		if (lens[i] == strlen(name) && memcmp(parts[i], name, lens[i]) == 0) {
			found++;
			*value = parts[i + 1];
			*value_len = lens[i + 1];
		}
	return found;
}

static void check_event(const sl_event *e, uint64_t pos, const char *const *parts,
                        const size_t *lens, size_t n, const sl_redis_source_options *o)
{
	const char *key = NULL, *value = NULL, *version = NULL;
	size_t key_len = 0, value_len = 0, version_len = 0;

	if (e->pos != pos || e->key_len == 0 || memchr(e->key, '\0', e->key_len) ||
	    e->key[e->key_len] != '\0' || e->version == 0)
		die("an event breaks the batch's promises");
	if ((e->op == SL_EVENT_DELETE) != (e->value == NULL) ||
	    (e->op == SL_EVENT_DELETE && e->value_len != 0))
		die("a delete with a value, or a set without one");
	if (field(parts, lens, n, o->key_field, &key, &key_len) != 1 || key_len != e->key_len ||
	    memcmp(key, e->key, key_len) != 0)
		die("the event's key is not the key field's");
	if (field(parts, lens, n, o->value_field, &value, &value_len) == 1) {
		if (e->op == SL_EVENT_DELETE || value_len != e->value_len ||
		    (value_len && memcmp(value, e->value, value_len) != 0))
			die("the event's value is not the value field's");
	} else if (e->value_len != 0) {
		die("a value without a value field");
	}
	if (!o->version_field && e->version != pos + 1)
		die("without a version field the version is not pos + 1");
	if (o->version_field &&
	    field(parts, lens, n, o->version_field, &version, &version_len) != 1)
		die("a version without its field");
}

/* The event as fields again parses to the same event. */
static void round_trip(const char *id, const sl_event *e, const sl_redis_source_options *o)
{
	char version[24];
	const char *parts[8];
	size_t lens[8], n = 0;
	sl_event_batch again;
	const sl_event *a;

	parts[n] = o->key_field;
	lens[n++] = strlen(o->key_field);
	parts[n] = e->key;
	lens[n++] = e->key_len;
	parts[n] = o->op_field;
	lens[n++] = strlen(o->op_field);
	parts[n] = sl_event_op_name(e->op);
	lens[n] = strlen(parts[n]);
	n++;
	if (e->op != SL_EVENT_DELETE) {
		parts[n] = o->value_field;
		lens[n++] = strlen(o->value_field);
		parts[n] = (const char *)e->value;
		lens[n++] = e->value_len;
	}
	if (o->version_field) {
		snprintf(version, sizeof(version), "%llu", (unsigned long long)e->version);
		parts[n] = o->version_field;
		lens[n++] = strlen(o->version_field);
		parts[n] = version;
		lens[n++] = strlen(version);
	}
	sl_event_batch_init(&again);
	if (sl_redis_entry_parse(&again, id, parts, lens, n, o) != SL_OK || again.n != 1)
		die("an event written back as fields does not parse");
	a = &again.events[0];
	if (a->pos != e->pos || a->op != e->op || a->version != e->version ||
	    a->key_len != e->key_len || memcmp(a->key, e->key, e->key_len) != 0 ||
	    a->value_len != e->value_len ||
	    (e->value_len && memcmp(a->value, e->value, e->value_len) != 0))
		die("an event changed on its way through fields");
	sl_event_batch_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const sl_redis_source_options options[3] = {
	        {NULL, "s", "key", "op", "value", NULL, 0},
	        {NULL, "s", "key", "op", "value", "version", 0},
	        {NULL, "s", "k", "o", "v", "n", 0},
	};
	const sl_redis_source_options *o;
	const char *parts[PARTS_MAX];
	size_t lens[PARTS_MAX], n = 0, start = 1;
	char *id;
	uint64_t pos = 0;
	int has_pos, rc;
	sl_event_batch b;

	if (size == 0)
		return 0;
	o = &options[data[0] % 3];
	while (start <= size && n < PARTS_MAX) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t len = nl ? (size_t)(nl - (data + start)) : size - start;
		parts[n] = (const char *)data + start;
		lens[n++] = len;
		start += len + 1;
	}
	if (!(id = malloc(lens[0] + 1)))
		return 0;
	memcpy(id, parts[0], lens[0]);
	id[lens[0]] = '\0';
	check_id(id, &has_pos, &pos);

	sl_event_batch_init(&b);
	if (sl_event_batch_add(&b, 1, SL_EVENT_SET, "x", 1, "y", 1, 1) != SL_OK)
		die("out of memory");
	rc = sl_redis_entry_parse(&b, id, parts + 1, lens + 1, n - 1, o);
	if (rc == SL_OK) {
		if (!has_pos || b.n != 2)
			die("an entry gave other than one event, or one without a position");
		if (b.bytes != 2 + b.events[1].key_len + b.events[1].value_len)
			die("the batch's byte count is wrong");
		check_event(&b.events[1], pos, parts + 1, lens + 1, n - 1, o);
		round_trip(id, &b.events[1], o);
	} else if (rc == SL_ECORRUPT) {
		const char *msg = sl_error_last()->message;
		if (b.n != 1 || b.bytes != 2)
			die("a refused entry added something");
		if (strncmp(msg, "stream entry ", 13) != 0 ||
		    (has_pos && (strncmp(msg + 13, id, strlen(id)) != 0 ||
		                 (msg[13 + strlen(id)] != ':' && msg[13 + strlen(id)] != ' '))))
			die("the message does not name the entry");
	} else if (rc != SL_ENOMEM) {
		die("an entry gave neither SL_OK nor SL_ECORRUPT");
	}
	sl_event_batch_free(&b);
	free(id);
	return 0;
}
