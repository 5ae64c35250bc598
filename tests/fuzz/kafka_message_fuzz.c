/*
 * Fuzz target for the Kafka event source's messages: sl_kafka_message_parse.
 *
 * Input layout:
 *   byte 0      flags: 1 the message has a key, 2 it has a value (else a
 *               null one), 4 the version is in the header "ver" (else
 *               offset + 1), 8 no op header (else "op");
 *   bytes 1..8  the offset, big-endian;
 *   then        the key and the value, each a length byte and its bytes
 *               (present even when the flags say there is none);
 *   then        headers to the end: a name (a length byte and its bytes, up
 *               to a NUL), a value length byte (255: a null value), the
 *               value's bytes. A field cut short by the end is cut there.
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: SL_OK
 * with one event that keeps the batch's promises and says what the message
 * says (its offset, key and value; the op of its one op header, or set for
 * a value and delete for a null one; the version of its one version
 * header, or offset + 1), or SL_ECORRUPT with nothing added and a message
 * starting "offset <offset>: "; and the event as a message again (an op
 * header, a version header when versions come from one) parses to the same
 * event.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/event_source.h"

#define FUZZ_NAME "kafka_message_fuzz"
#include "fuzz_util.h"

#define HEADERS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct reader {
	const uint8_t *p, *end;
} reader;

static size_t take(reader *r, size_t want, const uint8_t **out)
{
	size_t n = (size_t)(r->end - r->p) < want ? (size_t)(r->end - r->p) : want;
	*out = r->p;
	r->p += n;
	return n;
}

static size_t take_len(reader *r)
{
	const uint8_t *b;
	return take(r, 1, &b) ? b[0] : 0;
}

/* The one header named name: 1 with it, 0 for none, 2 for several. */
static int only_header(const sl_kafka_message *m, const char *name, const sl_kafka_header **out)
{
	int n = 0;
	for (size_t i = 0; i < m->n_headers; i++)
		if (strcmp(m->headers[i].name, name) == 0) {
			*out = &m->headers[i];
			n++;
		}
	return n > 1 ? 2 : n;
}

static int bytes_are(const sl_kafka_header *h, const char *text)
{
	return h->value && h->value_len == strlen(text) &&
	       memcmp(h->value, text, h->value_len) == 0;
}

static void check_event(const sl_event *e, const sl_kafka_message *m,
                        const sl_kafka_source_options *o)
{
	const sl_kafka_header *h = NULL;
	sl_event_op op;

	if (e->pos != m->offset || e->key_len != m->key_len || e->key_len == 0 ||
	    memcmp(e->key, m->key, m->key_len) != 0 || e->key[e->key_len] != '\0' ||
	    memchr(e->key, '\0', e->key_len) || e->version == 0)
		die("an event breaks the batch's promises or is not its message");
	if (*o->op_header && only_header(m, o->op_header, &h) == 2)
		die("a message with two op headers was taken");
	if (h && *o->op_header) {
		op = bytes_are(h, "set")      ? SL_EVENT_SET
		     : bytes_are(h, "update") ? SL_EVENT_UPDATE
		     : bytes_are(h, "delete")
		             ? SL_EVENT_DELETE
		             : (die("an op header that is no op was taken"), SL_EVENT_SET);
	} else {
		op = m->value ? SL_EVENT_SET : SL_EVENT_DELETE;
	}
	if (e->op != op)
		die("the event's op is not the message's");
	if (op == SL_EVENT_DELETE) {
		if (e->value || e->value_len || m->value_len)
			die("a delete with a value");
	} else if (!m->value || !e->value || e->value_len != m->value_len ||
	           (m->value_len && memcmp(e->value, m->value, m->value_len) != 0)) {
		die("the event's value is not the message's");
	}
	if (o->version_header) {
		char text[32];
		h = NULL;
		if (only_header(m, o->version_header, &h) != 1)
			die("a message without one version header was taken");
		snprintf(text, sizeof(text), "%" PRIu64, e->version);
		if (e->version > INT64_MAX || !h->value || h->value_len < strlen(text))
			die("the version is not the header's");
		/* the header may have leading zeros */
		for (size_t i = 0; i < h->value_len - strlen(text); i++)
			if (((const char *)h->value)[i] != '0')
				die("the version is not the header's");
		if (memcmp((const char *)h->value + h->value_len - strlen(text), text,
		           strlen(text)) != 0)
			die("the version is not the header's");
	} else if (e->version != m->offset + 1) {
		die("the version is not offset + 1");
	}
}

/* The event as a message again: the same event. */
static void round_trip(const sl_event *e, const sl_kafka_source_options *o)
{
	sl_kafka_header h[2];
	sl_kafka_message m;
	sl_event_batch again;
	char version[32];
	const sl_event *a;

	memset(&m, 0, sizeof(m));
	m.offset = e->pos;
	m.key = e->key;
	m.key_len = e->key_len;
	m.value = e->value;
	m.value_len = e->value_len;
	m.headers = h;
	if (*o->op_header)
		h[m.n_headers++] = (sl_kafka_header){o->op_header, sl_event_op_name(e->op),
		                                     strlen(sl_event_op_name(e->op))};
	else if (e->op == SL_EVENT_UPDATE)
		die("an update without an op header");
	if (o->version_header) {
		snprintf(version, sizeof(version), "%" PRIu64, e->version);
		h[m.n_headers++] = (sl_kafka_header){o->version_header, version, strlen(version)};
	}
	sl_event_batch_init(&again);
	if (sl_kafka_message_parse(&again, &m, o) != SL_OK || again.n != 1)
		die("an event written back as a message does not parse");
	a = &again.events[0];
	if (a->op != e->op || a->version != e->version || a->pos != e->pos ||
	    a->key_len != e->key_len || memcmp(a->key, e->key, e->key_len) != 0 ||
	    a->value_len != e->value_len || (a->value == NULL) != (e->value == NULL) ||
	    (e->value_len && memcmp(a->value, e->value, e->value_len) != 0))
		die("an event changed on its way through a message");
	sl_event_batch_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char names[HEADERS_MAX][256];
	sl_kafka_header headers[HEADERS_MAX];
	sl_kafka_source_options o;
	sl_kafka_message m;
	sl_event_batch b;
	reader r = {data, data + size};
	const uint8_t *flags_b, *offset_b, *bytes;
	uint8_t flags;
	size_t n;
	int rc;

	if (take(&r, 1, &flags_b) == 0)
		return 0;
	flags = flags_b[0];
	memset(&m, 0, sizeof(m));
	n = take(&r, 8, &offset_b);
	for (size_t i = 0; i < n; i++)
		m.offset = m.offset << 8 | offset_b[i];
	n = take(&r, take_len(&r), &bytes);
	if (flags & 1) {
		m.key = bytes;
		m.key_len = n;
	}
	n = take(&r, take_len(&r), &bytes);
	if (flags & 2) {
		m.value = bytes;
		m.value_len = n;
	}
	m.headers = headers;
	while (r.p < r.end && m.n_headers < HEADERS_MAX) {
		sl_kafka_header *h = &headers[m.n_headers];
		size_t value_len;
		n = take(&r, take_len(&r), &bytes);
		memcpy(names[m.n_headers], bytes, n);
		names[m.n_headers][n] = '\0';
		h->name = names[m.n_headers];
		value_len = take_len(&r);
		n = take(&r, value_len == 255 ? 0 : value_len, &bytes);
		h->value = value_len == 255 ? NULL : bytes;
		h->value_len = n;
		m.n_headers++;
	}

	sl_kafka_source_options_init(&o);
	if (flags & 4)
		o.version_header = "ver";
	if (flags & 8)
		o.op_header = "";
	sl_event_batch_init(&b);
	rc = sl_kafka_message_parse(&b, &m, &o);
	if (rc == SL_OK) {
		if (b.n != 1 || b.bytes != b.events[0].key_len + b.events[0].value_len)
			die("a message gave other than one event, or a wrong byte count");
		check_event(&b.events[0], &m, &o);
		round_trip(&b.events[0], &o);
	} else if (rc == SL_ECORRUPT) {
		char prefix[40];
		snprintf(prefix, sizeof(prefix), "offset %" PRIu64 ": ", m.offset);
		if (b.n != 0 || b.bytes != 0)
			die("a refused message added something");
		if (strncmp(sl_error_last()->message, prefix, strlen(prefix)) != 0)
			die("the message does not name the offset");
	} else if (rc != SL_ENOMEM) {
		die("a message gave neither SL_OK nor SL_ECORRUPT");
	}
	sl_event_batch_free(&b);
	return 0;
}
