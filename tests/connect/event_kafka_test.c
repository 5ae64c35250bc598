/*
 * The Kafka event source (sl_kafka_source_open), against librdkafka's mock
 * cluster started in this process (no Kafka broker is packaged):
 *   test_parse          every rule of a message, good and bad, with no
 *                       cluster: nothing added on an error, whose message
 *                       names the offset;
 *   test_events         messages to events: the op header, a value or a
 *                       null one without it, binary and empty values,
 *                       versions from offsets; head is the high watermark;
 *   test_version        a version header, and a message without it;
 *   test_partitions     two partitions read apart; the partition count; a
 *                       missing topic or partition at open; bad settings;
 *   test_resume         max_events, max_bytes, resuming from pos + 1 with
 *                       the same source (back and forth) and a new one;
 *   test_wait           an empty partition; a read waiting on wait_ms takes
 *                       a message produced meanwhile by another thread;
 *                       with none, nothing;
 *   test_bad            a bad message stops a read after the good ones
 *                       before it and is the next read's SL_ECORRUPT, which
 *                       names the offset; reading past it works;
 *   test_markers        offsets without messages (transaction markers,
 *                       written into the mock's log as raw control
 *                       batches): skipped, and a read that finds only them
 *                       moves next past them;
 *   test_gap            the mock's log limit (5 MiB) deletes the oldest
 *                       messages: a read from a deleted offset is a gap
 *                       (SL_ENOTFOUND, next = the new start, the message
 *                       names the offsets), and reading on from next works;
 *                       a position past the end is SL_EINVAL;
 *   test_broker_down    a broker that goes away is a transient error (read
 *                       and head), and reads go on once it is back.
 */
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "connect/event_internal.h"
#include "testutil.h"

#define MiB (1024 * 1024)

/* ------------------------------------------------------------- cluster */

typedef struct cluster {
	rd_kafka_t *owner; /* the handle the mock cluster lives in */
	rd_kafka_mock_cluster_t *mock;
	char bootstraps[256];
	rd_kafka_t *producer;
	int failed; /* deliveries that failed */
} cluster;

static void conf_or_fail(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[256];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		fail_msg("%s: %s", name, errstr);
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	cluster *c = opaque;
	(void)rk;
	if (m->err) {
		fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
		c->failed++;
	}
}

static void cluster_start(cluster *c, int brokers)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];

	memset(c, 0, sizeof(*c));
	conf_or_fail(conf, "log_level", "3");
	c->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!c->owner)
		fail_msg("%s", errstr);
	c->mock = rd_kafka_mock_cluster_new(c->owner, brokers);
	assert_non_null(c->mock);
	snprintf(c->bootstraps, sizeof(c->bootstraps), "%s",
	         rd_kafka_mock_cluster_bootstraps(c->mock));

	conf = rd_kafka_conf_new();
	conf_or_fail(conf, "bootstrap.servers", c->bootstraps);
	conf_or_fail(conf, "acks", "all");
	conf_or_fail(conf, "linger.ms", "0");
	conf_or_fail(conf, "message.max.bytes", "2000000");
	conf_or_fail(conf, "reconnect.backoff.max.ms", "1000");
	conf_or_fail(conf, "log_level", "3");
	rd_kafka_conf_set_dr_msg_cb(conf, delivered);
	rd_kafka_conf_set_opaque(conf, c);
	c->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!c->producer)
		fail_msg("%s", errstr);
}

static void cluster_stop(cluster *c)
{
	rd_kafka_destroy(c->producer);
	rd_kafka_mock_cluster_destroy(c->mock);
	rd_kafka_destroy(c->owner);
}

static void topic_create(cluster *c, const char *topic, int partitions)
{
	assert_int_equal(rd_kafka_mock_topic_create(c->mock, topic, partitions, 1), 0);
}

/* One message, delivered before this returns (one message set each, so
 * the mock's log limit deletes them one by one). key NULL: no key; value
 * NULL: a null value; op, version NULL: no such header. */
static void produce(cluster *c, const char *topic, int32_t partition, const char *key,
                    const void *value, size_t value_len, const char *op, const char *version)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
	rd_kafka_resp_err_t err;
	int failed = c->failed;

	if (op)
		assert_int_equal(rd_kafka_header_add(hdrs, "op", -1, op, -1), 0);
	if (version)
		assert_int_equal(rd_kafka_header_add(hdrs, "ver", -1, version, -1), 0);
	err = rd_kafka_producev(
	        c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
	        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
	        RD_KAFKA_V_VALUE((void *)value, value_len),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
	if (err) {
		rd_kafka_headers_destroy(hdrs);
		fail_msg("produce: %s", rd_kafka_err2str(err));
	}
	assert_int_equal(rd_kafka_flush(c->producer, 30000), 0);
	assert_int_equal(c->failed, failed);
}

static void produce_text(cluster *c, const char *topic, int32_t partition, const char *key,
                         const char *value, const char *op)
{
	produce(c, topic, partition, key, value, value ? strlen(value) : 0, op, NULL);
}

/* ---------------------------------------------- a control batch, by hand */

static uint8_t *put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put_varint(uint8_t *p, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	while (z >= 0x80) {
		*p++ = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	*p++ = (uint8_t)z;
	return p;
}

static void read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* A transaction's commit marker appended to the partition's log, as a
 * broker writes one at a transaction's end: a control batch of one record,
 * which takes an offset and is no message. The mock's transactions write
 * none, so it goes in as a raw Produce request (v3) over TCP to the only
 * broker. */
static void produce_marker(cluster *c, const char *topic, int32_t partition)
{
	uint8_t record[32], batch[160], req[400], resp[256], *p, *q;
	size_t record_len, batch_len, req_len, topic_len = strlen(topic);
	struct sockaddr_in addr;
	uint32_t resp_len;
	unsigned port;
	int fd;

	/* The record: key (version 0, type 1: commit), value (version 0,
	 * coordinator epoch 0), no headers. */
	p = record + 1;
	*p++ = 0;             /* attributes */
	p = put_varint(p, 0); /* timestamp delta */
	p = put_varint(p, 0); /* offset delta */
	p = put_varint(p, 4); /* key */
	p = put_be(p, 0, 2);
	p = put_be(p, 1, 2);
	p = put_varint(p, 6); /* value */
	p = put_be(p, 0, 2);
	p = put_be(p, 0, 4);
	p = put_varint(p, 0); /* headers */
	record_len = (size_t)(p - (record + 1));
	record[0] = (uint8_t)(record_len << 1); /* its length, a one-byte varint */
	record_len++;

	/* The batch (magic 2): transactional and control. */
	p = put_be(batch, 0, 8); /* base offset (the broker sets it) */
	p = put_be(p, 0, 4);     /* length, below */
	p = put_be(p, 0, 4);     /* partition leader epoch */
	*p++ = 2;                /* magic */
	q = p;                   /* the crc, below */
	p = put_be(p, 0, 4);
	p = put_be(p, 0x30, 2);       /* attributes: transactional, control */
	p = put_be(p, 0, 4);          /* last offset delta */
	p = put_be(p, 1000, 8);       /* first timestamp */
	p = put_be(p, 1000, 8);       /* max timestamp */
	p = put_be(p, 4242, 8);       /* producer id */
	p = put_be(p, 0, 2);          /* producer epoch */
	p = put_be(p, UINT32_MAX, 4); /* base sequence -1 */
	p = put_be(p, 1, 4);          /* records */
	memcpy(p, record, record_len);
	p += record_len;
	batch_len = (size_t)(p - batch);
	put_be(batch + 8, batch_len - 12, 4);
	put_be(q, sl_crc32c(0, q + 4, (size_t)(p - (q + 4))), 4);

	/* Produce v3: header v1, then no transactional id, acks -1. */
	p = put_be(req + 4, 0, 2); /* api key: Produce */
	p = put_be(p, 3, 2);
	p = put_be(p, 7, 4); /* correlation id */
	p = put_be(p, 4, 2);
	memcpy(p, "test", 4);
	p += 4;
	p = put_be(p, 0xffff, 2); /* transactional id: null */
	p = put_be(p, 0xffff, 2); /* acks: all */
	p = put_be(p, 5000, 4);
	p = put_be(p, 1, 4);
	p = put_be(p, topic_len, 2);
	memcpy(p, topic, topic_len);
	p += topic_len;
	p = put_be(p, 1, 4);
	p = put_be(p, (uint32_t)partition, 4);
	p = put_be(p, batch_len, 4);
	memcpy(p, batch, batch_len);
	p += batch_len;
	req_len = (size_t)(p - req);
	put_be(req, req_len - 4, 4);

	assert_int_equal(sscanf(c->bootstraps, "%*[^:]:%u", &port), 1);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(send(fd, req, req_len, 0), (ssize_t)req_len);
	read_full(fd, resp, 4);
	resp_len = (uint32_t)resp[0] << 24 | (uint32_t)resp[1] << 16 | (uint32_t)resp[2] << 8 |
	           resp[3];
	assert_true(resp_len <= sizeof(resp));
	read_full(fd, resp, resp_len);
	close(fd);
	/* correlation id, 1 topic, its name, 1 partition, its id, the error */
	p = resp + 4 + 4 + 2 + topic_len + 4 + 4;
	assert_true((size_t)(p + 2 - resp) <= resp_len);
	assert_int_equal(p[0] << 8 | p[1], 0);
}

/* -------------------------------------------------------------- sources */

static void options(sl_kafka_source_options *o, const cluster *c, const char *topic,
                    int32_t partition)
{
	sl_kafka_source_options_init(o);
	o->brokers = c->bootstraps;
	o->topic = topic;
	o->partition = partition;
	o->timeout_ms = 5000;
}

static void open_source(sl_event_source *s, const cluster *c, const char *topic, int32_t partition)
{
	sl_kafka_source_options o;
	options(&o, c, topic, partition);
	assert_ok(sl_kafka_source_open(s, &o));
}

static int source_read(sl_event_source *s, uint64_t from, size_t max_events, size_t max_bytes,
                       uint64_t wait_ms, sl_event_batch *b, uint64_t *next)
{
	int at_end = 7;
	int rc = s->ops->read(s->self, from, max_events, max_bytes, wait_ms, b, next, &at_end);
	assert_int_equal(at_end, 0);
	return rc;
}

/* Reads from `from` until n events are in b (or fail). */
static uint64_t read_until(sl_event_source *s, uint64_t from, size_t n, sl_event_batch *b)
{
	uint64_t next = from;
	for (int i = 0; b->n < n; i++) {
		if (i == 100)
			fail_msg("only %zu of %zu events after 100 reads", b->n, n);
		assert_ok(source_read(s, next, n - b->n, SIZE_MAX, 2000, b, &next));
	}
	assert_int_equal(b->n, n);
	return next;
}

static void expect_event(const sl_event *e, uint64_t pos, sl_event_op op, const char *key,
                         const void *value, size_t value_len, uint64_t version)
{
	assert_int_equal(e->pos, pos);
	assert_int_equal(e->op, op);
	assert_string_equal(e->key, key);
	assert_int_equal(e->key_len, strlen(key));
	assert_int_equal(e->version, version);
	if (!value) {
		assert_null(e->value);
		assert_int_equal(e->value_len, 0);
	} else {
		assert_non_null(e->value);
		assert_int_equal(e->value_len, value_len);
		if (value_len)
			assert_memory_equal(e->value, value, value_len);
	}
}

static void expect_message(const char *part)
{
	if (!strstr(sl_error_last()->message, part))
		fail_msg("'%s' does not say '%s'", sl_error_last()->message, part);
}

/* ----------------------------------------------------------------- parse */

static sl_kafka_message message(uint64_t offset, const char *key, const char *value,
                                const sl_kafka_header *h, size_t n)
{
	sl_kafka_message m;
	memset(&m, 0, sizeof(m));
	m.offset = offset;
	m.key = key;
	m.key_len = key ? strlen(key) : 0;
	m.value = value;
	m.value_len = value ? strlen(value) : 0;
	m.headers = h;
	m.n_headers = n;
	return m;
}

static int parse_fails(const sl_kafka_message *m, const sl_kafka_source_options *o,
                       const char *says)
{
	sl_event_batch b;
	int rc;
	char prefix[32];

	sl_event_batch_init(&b);
	rc = sl_kafka_message_parse(&b, m, o);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.bytes, 0);
	snprintf(prefix, sizeof(prefix), "offset %llu: ", (unsigned long long)m->offset);
	if (rc == SL_ECORRUPT) {
		assert_true(strncmp(sl_error_last()->message, prefix, strlen(prefix)) == 0);
		expect_message(says);
	}
	sl_event_batch_free(&b);
	return rc;
}

static void test_parse(void **state)
{
	sl_kafka_source_options o;
	sl_event_batch b;
	sl_kafka_message m;
	sl_kafka_header h[3];
	(void)state;

	sl_kafka_source_options_init(&o);
	sl_event_batch_init(&b);

	/* no header: a value is a set, a null value a delete */
	m = message(4, "k", "v", NULL, 0);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	m = message(5, "k", NULL, NULL, 0);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	m = message(6, "k", "", NULL, 0);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	expect_event(&b.events[0], 4, SL_EVENT_SET, "k", "v", 1, 5);
	expect_event(&b.events[1], 5, SL_EVENT_DELETE, "k", NULL, 0, 6);
	expect_event(&b.events[2], 6, SL_EVENT_SET, "k", "", 0, 7);
	sl_event_batch_clear(&b);

	/* the op header; other headers are ignored */
	h[0] = (sl_kafka_header){"other", "delete", 6};
	h[1] = (sl_kafka_header){"op", "update", 6};
	m = message(0, "k", "v", h, 2);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	h[1] = (sl_kafka_header){"op", "delete", 6};
	m = message(1, "k", NULL, h, 2);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	m = message(2, "k", "", h, 2); /* a delete with an empty value */
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	h[1] = (sl_kafka_header){"op", "set", 3};
	m = message(3, "k", "", h, 2);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	expect_event(&b.events[0], 0, SL_EVENT_UPDATE, "k", "v", 1, 1);
	expect_event(&b.events[1], 1, SL_EVENT_DELETE, "k", NULL, 0, 2);
	expect_event(&b.events[2], 2, SL_EVENT_DELETE, "k", NULL, 0, 3);
	expect_event(&b.events[3], 3, SL_EVENT_SET, "k", "", 0, 4);
	sl_event_batch_clear(&b);

	/* keys */
	m = message(9, NULL, "v", NULL, 0);
	assert_int_equal(parse_fails(&m, &o, "no key"), SL_ECORRUPT);
	m = message(9, "", "v", NULL, 0);
	assert_int_equal(parse_fails(&m, &o, "key is empty"), SL_ECORRUPT);
	m = message(9, "a", "v", NULL, 0);
	m.key = "a\0b";
	m.key_len = 3;
	assert_int_equal(parse_fails(&m, &o, "NUL"), SL_ECORRUPT);
	m = message(9, "a", NULL, NULL, 0);
	m.value_len = 3;
	assert_int_equal(parse_fails(&m, &o, "null value"), SL_EINVAL);

	/* ops */
	h[0] = (sl_kafka_header){"op", "SET", 3};
	m = message(10, "k", "v", h, 1);
	assert_int_equal(parse_fails(&m, &o, "\"op\" header is 'SET'"), SL_ECORRUPT);
	h[0] = (sl_kafka_header){"op", "set\0", 4};
	m = message(11, "k", "v", h, 1);
	assert_int_equal(parse_fails(&m, &o, "'set?'"), SL_ECORRUPT);
	h[0] = (sl_kafka_header){"op", NULL, 0};
	m = message(12, "k", "v", h, 1);
	assert_int_equal(parse_fails(&m, &o, "null value"), SL_ECORRUPT);
	h[0] = (sl_kafka_header){"op", "set", 3};
	h[1] = (sl_kafka_header){"op", "set", 3};
	m = message(13, "k", "v", h, 2);
	assert_int_equal(parse_fails(&m, &o, "more than one \"op\""), SL_ECORRUPT);
	m = message(14, "k", NULL, h, 1);
	assert_int_equal(parse_fails(&m, &o, "a set with a null value"), SL_ECORRUPT);
	h[0] = (sl_kafka_header){"op", "update", 6};
	assert_int_equal(parse_fails(&m, &o, "an update with a null value"), SL_ECORRUPT);
	h[0] = (sl_kafka_header){"op", "delete", 6};
	m = message(15, "k", "gone", h, 1);
	assert_int_equal(parse_fails(&m, &o, "a delete with a value of 4 bytes"), SL_ECORRUPT);

	/* another op header, or none at all */
	o.op_header = "kind";
	h[0] = (sl_kafka_header){"op", "nonsense", 8};
	h[1] = (sl_kafka_header){"kind", "update", 6};
	m = message(16, "k", "v", h, 2);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	expect_event(&b.events[0], 16, SL_EVENT_UPDATE, "k", "v", 1, 17);
	o.op_header = "";
	h[1] = (sl_kafka_header){"", "nonsense", 8};
	m = message(17, "k", NULL, h, 2);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	expect_event(&b.events[1], 17, SL_EVENT_DELETE, "k", NULL, 0, 18);
	sl_event_batch_clear(&b);

	/* versions */
	sl_kafka_source_options_init(&o);
	o.version_header = "ver";
	h[0] = (sl_kafka_header){"ver", "42", 2};
	m = message(20, "k", "v", h, 1);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	h[0] = (sl_kafka_header){"ver", "9223372036854775807", 19};
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	h[0] = (sl_kafka_header){"ver", "007", 3};
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	assert_int_equal(b.events[0].version, 42);
	assert_int_equal(b.events[1].version, INT64_MAX);
	assert_int_equal(b.events[2].version, 7);
	sl_event_batch_clear(&b);
	m = message(21, "k", "v", NULL, 0);
	assert_int_equal(parse_fails(&m, &o, "no \"ver\" header"), SL_ECORRUPT);
	{
		static const char *const bad[] = {"0",
		                                  "",
		                                  "-1",
		                                  "+1",
		                                  " 1",
		                                  "1 ",
		                                  "1x",
		                                  "9223372036854775808",
		                                  "99999999999999999999999"};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			h[0] = (sl_kafka_header){"ver", bad[i], strlen(bad[i])};
			m = message(22, "k", "v", h, 1);
			assert_int_equal(parse_fails(&m, &o, "not a positive decimal integer"),
			                 SL_ECORRUPT);
		}
	}
	h[0] = (sl_kafka_header){"ver", NULL, 0};
	m = message(23, "k", "v", h, 1);
	assert_int_equal(parse_fails(&m, &o, "\"ver\" header has a null value"), SL_ECORRUPT);
	o.version_header = NULL;
	m = message((uint64_t)INT64_MAX, "k", "v", NULL, 0);
	assert_int_equal(parse_fails(&m, &o, "no version"), SL_ECORRUPT);
	m = message((uint64_t)INT64_MAX - 1, "k", "v", NULL, 0);
	assert_ok(sl_kafka_message_parse(&b, &m, &o));
	assert_int_equal(b.events[0].version, INT64_MAX);
	sl_event_batch_free(&b);
}

/* ---------------------------------------------------------------- events */

static void test_events(void **state)
{
	static const uint8_t binary[] = {0, 1, 0xff, 0, '\n', 0x80};
	cluster c;
	sl_event_source s;
	sl_event_source_head head;
	sl_event_batch b;
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "events", 1);
	produce_text(&c, "events", 0, "a", "one", "set");                  /* 0 */
	produce_text(&c, "events", 0, "a", "two", "update");               /* 1 */
	produce_text(&c, "events", 0, "a", NULL, "delete");                /* 2 */
	produce_text(&c, "events", 0, "b", "plain", NULL);                 /* 3 */
	produce_text(&c, "events", 0, "b", NULL, NULL);                    /* 4: a tombstone */
	produce(&c, "events", 0, "c", binary, sizeof(binary), NULL, NULL); /* 5 */
	produce(&c, "events", 0, "d", "", 0, "set", NULL);                 /* 6: empty */
	produce_text(&c, "events", 0, "\xff\xfe", "not utf-8", NULL);      /* 7 */

	open_source(&s, &c, "events", 0);
	assert_string_equal(s.ops->kind, "kafka");
	assert_true(strncmp(s.name, "kafka:127.0.0.1:", 16) == 0);
	assert_non_null(strstr(s.name, "/events/0"));
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.end, 8);
	assert_int_equal(head.known, 1);

	sl_event_batch_init(&b);
	next = read_until(&s, 0, 8, &b);
	assert_int_equal(next, 8);
	expect_event(&b.events[0], 0, SL_EVENT_SET, "a", "one", 3, 1);
	expect_event(&b.events[1], 1, SL_EVENT_UPDATE, "a", "two", 3, 2);
	expect_event(&b.events[2], 2, SL_EVENT_DELETE, "a", NULL, 0, 3);
	expect_event(&b.events[3], 3, SL_EVENT_SET, "b", "plain", 5, 4);
	expect_event(&b.events[4], 4, SL_EVENT_DELETE, "b", NULL, 0, 5);
	expect_event(&b.events[5], 5, SL_EVENT_SET, "c", binary, sizeof(binary), 6);
	expect_event(&b.events[6], 6, SL_EVENT_SET, "d", "", 0, 7);
	expect_event(&b.events[7], 7, SL_EVENT_SET, "\xff\xfe", "not utf-8", 9, 8);
	assert_int_equal(b.bytes, 1 + 3 + 1 + 3 + 1 + 1 + 5 + 1 + 1 + sizeof(binary) + 1 + 2 + 9);

	/* Nothing more: no event, next stays. */
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, 8, 10, SIZE_MAX, 100, &b, &next));
	assert_int_equal(b.n, 0);
	assert_int_equal(next, 8);

	/* The state is empty, and only an empty one is taken back. */
	{
		char st[SL_EVENT_SOURCE_STATE_MAX];
		assert_ok(s.ops->save_state(s.self, st, sizeof(st)));
		assert_string_equal(st, "");
		assert_int_equal(s.ops->restore_state(s.self, "x"), SL_ECORRUPT);
	}
	assert_int_equal(s.ops->read(s.self, 0, 0, SIZE_MAX, 0, &b, &next, &(int){0}), SL_EINVAL);
	sl_event_source_close(&s);
	sl_event_source_close(&s); /* closed: a no-op */
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

static void test_version(void **state)
{
	cluster c;
	sl_kafka_source_options o;
	sl_event_source s;
	sl_event_batch b;
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "versions", 1);
	produce(&c, "versions", 0, "a", "x", 1, NULL, "5");
	produce(&c, "versions", 0, "a", "y", 1, "update", "1000000000000");
	produce(&c, "versions", 0, "a", "z", 1, NULL, NULL);

	options(&o, &c, "versions", 0);
	o.version_header = "ver";
	assert_ok(sl_kafka_source_open(&s, &o));
	sl_event_batch_init(&b);
	next = read_until(&s, 0, 2, &b);
	expect_event(&b.events[0], 0, SL_EVENT_SET, "a", "x", 1, 5);
	expect_event(&b.events[1], 1, SL_EVENT_UPDATE, "a", "y", 1, UINT64_C(1000000000000));
	sl_event_batch_clear(&b);
	assert_int_equal(next, 2);
	assert_int_equal(source_read(&s, 2, 10, SIZE_MAX, 2000, &b, &next), SL_ECORRUPT);
	expect_message("offset 2: no \"ver\" header");
	expect_message("topic versions partition 0");
	assert_int_equal(b.n, 0);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

/* ------------------------------------------------------------ partitions */

static void test_partitions(void **state)
{
	static const char *const forbidden[] = {"enable.auto.commit=true", NULL};
	static const char *const not_pair[] = {"client.id", NULL};
	static const char *const unknown[] = {"no.such.setting=1", NULL};
	static const char *const fine[] = {"client.id=mirror-test", "group.id=elsewhere", NULL};
	cluster c;
	sl_kafka_source_options o;
	sl_event_source s0, s1;
	sl_event_batch b;
	int32_t n = 0;
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "two", 2);
	assert_ok(sl_kafka_partitions(&n, c.bootstraps, "two", NULL, 5000));
	assert_int_equal(n, 2);
	assert_int_equal(sl_kafka_partitions(&n, c.bootstraps, "none", NULL, 5000), SL_ENOTFOUND);
	assert_int_equal(n, 2);

	produce_text(&c, "two", 0, "p0-a", "1", NULL);
	produce_text(&c, "two", 1, "p1-a", "2", NULL);
	produce_text(&c, "two", 0, "p0-b", "3", NULL);

	options(&o, &c, "two", 0);
	o.extra_config = fine;
	assert_ok(sl_kafka_source_open(&s0, &o));
	open_source(&s1, &c, "two", 1);
	assert_string_not_equal(s0.name, s1.name);
	sl_event_batch_init(&b);
	next = read_until(&s0, 0, 2, &b);
	assert_int_equal(next, 2);
	expect_event(&b.events[0], 0, SL_EVENT_SET, "p0-a", "1", 1, 1);
	expect_event(&b.events[1], 1, SL_EVENT_SET, "p0-b", "3", 1, 2);
	sl_event_batch_clear(&b);
	next = read_until(&s1, 0, 1, &b);
	assert_int_equal(next, 1);
	expect_event(&b.events[0], 0, SL_EVENT_SET, "p1-a", "2", 1, 1);
	sl_event_source_close(&s0);
	sl_event_source_close(&s1);

	/* What open refuses. */
	options(&o, &c, "two", 2);
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	expect_message("2 partitions");
	options(&o, &c, "none", 0);
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	expect_message("no topic none");
	options(&o, &c, "two", -1);
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	options(&o, &c, "", 0);
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	options(&o, &c, "two", 0);
	o.brokers = NULL;
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	options(&o, &c, "two", 0);
	o.version_header = "op";
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	options(&o, &c, "two", 0);
	o.extra_config = forbidden;
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	expect_message("enable.auto.commit cannot be set");
	o.extra_config = not_pair;
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	expect_message("not name=value");
	o.extra_config = unknown;
	assert_int_equal(sl_kafka_source_open(&s0, &o), SL_EINVAL);
	expect_message("no.such.setting");
	assert_int_equal(sl_kafka_partitions(&n, c.bootstraps, "two", unknown, 5000), SL_EINVAL);

	sl_event_batch_free(&b);
	cluster_stop(&c);
}

/* -------------------------------------------------------- resume, limits */

static void test_resume(void **state)
{
	cluster c;
	sl_event_source s, again;
	sl_event_batch b;
	char key[16], value[100];
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "many", 1);
	memset(value, 'v', sizeof(value));
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		produce(&c, "many", 0, key, value, sizeof(value), NULL, NULL);
	}
	open_source(&s, &c, "many", 0);
	sl_event_batch_init(&b);

	/* max_events */
	next = read_until(&s, 0, 3, &b);
	assert_int_equal(next, 3);
	assert_int_equal(b.events[2].pos, 2);
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, next, 4, SIZE_MAX, 2000, &b, &next));
	assert_true(b.n >= 1 && b.n <= 4);
	assert_int_equal(b.events[0].pos, 3);
	assert_int_equal(next, 3 + b.n);

	/* max_bytes: an event is 103 bytes; stops once 250 are reached. */
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, 10, 100, 250, 2000, &b, &next));
	assert_true(b.n >= 1 && b.n <= 3);
	if (b.n < 3) /* what was fetched so far; read on */
		assert_ok(source_read(&s, next, 100, 250 - b.bytes, 2000, &b, &next));
	assert_int_equal(b.events[0].pos, 10);
	assert_int_equal(next, 10 + b.n);
	assert_true(b.bytes >= 250 || b.n < 3);

	/* Back to an earlier position (pos + 1 of an event), then forward. */
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, 2, 1, SIZE_MAX, 2000, &b, &next));
	assert_int_equal(b.n, 1);
	assert_int_equal(b.events[0].pos, 2);
	assert_string_equal(b.events[0].key, "k02");
	assert_int_equal(next, 3);
	sl_event_batch_clear(&b);
	next = read_until(&s, 17, 3, &b);
	assert_int_equal(b.events[0].pos, 17);
	assert_int_equal(next, 20);

	/* A new source from a stored position. */
	sl_event_batch_clear(&b);
	open_source(&again, &c, "many", 0);
	next = read_until(&again, 15, 5, &b);
	assert_int_equal(b.events[0].pos, 15);
	assert_string_equal(b.events[4].key, "k19");
	assert_int_equal(next, 20);
	sl_event_source_close(&again);

	/* The end itself is a position; past it is not. */
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, 20, 10, SIZE_MAX, 0, &b, &next));
	assert_int_equal(next, 20);
	assert_int_equal(source_read(&s, 21, 10, SIZE_MAX, 0, &b, &next), SL_EINVAL);
	expect_message("past the partition's end");
	assert_int_equal(source_read(&s, UINT64_MAX, 10, SIZE_MAX, 0, &b, &next), SL_EINVAL);
	assert_int_equal(b.n, 0);

	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

/* ------------------------------------------------------------------ wait */

static void *produce_later(void *arg)
{
	cluster *c = arg;
	sl_sleep_ms(300);
	produce_text(c, "wait", 0, "late", "v", NULL);
	return NULL;
}

static void test_wait(void **state)
{
	cluster c;
	sl_event_source s;
	sl_event_batch b;
	pthread_t t;
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "wait", 1);
	open_source(&s, &c, "wait", 0);
	sl_event_batch_init(&b);

	/* An empty partition: nothing, from 0. */
	assert_ok(source_read(&s, 0, 10, SIZE_MAX, 100, &b, &next));
	assert_int_equal(b.n, 0);
	assert_int_equal(next, 0);
	assert_int_equal(source_read(&s, 1, 10, SIZE_MAX, 0, &b, &next), SL_EINVAL);

	produce_text(&c, "wait", 0, "first", "v", NULL);
	next = read_until(&s, 0, 1, &b);
	assert_int_equal(next, 1);

	/* Nothing comes: no event, next stays. */
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, 1, 10, SIZE_MAX, 200, &b, &next));
	assert_int_equal(b.n, 0);
	assert_int_equal(next, 1);

	/* A message produced while the read waits. */
	assert_int_equal(pthread_create(&t, NULL, produce_later, &c), 0);
	assert_ok(source_read(&s, 1, 10, SIZE_MAX, 60000, &b, &next));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], 1, SL_EVENT_SET, "late", "v", 1, 2);
	assert_int_equal(next, 2);

	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

/* ------------------------------------------------------------------- bad */

static void test_bad(void **state)
{
	cluster c;
	sl_event_source s;
	sl_event_batch b;
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "bad", 1);
	produce_text(&c, "bad", 0, "good", "v", NULL);        /* 0 */
	produce_text(&c, "bad", 0, NULL, "v", NULL);          /* 1: no key */
	produce_text(&c, "bad", 0, "good", "v", "put");       /* 2: no such op */
	produce_text(&c, "bad", 0, "good", "w", NULL);        /* 3 */
	produce_text(&c, "bad", 0, "good", "gone", "delete"); /* 4: a delete's value */

	open_source(&s, &c, "bad", 0);
	sl_event_batch_init(&b);

	/* The good message before the bad one, then the bad one's error. */
	next = read_until(&s, 0, 1, &b);
	assert_int_equal(next, 1);
	for (int i = 0; i < 20 && b.n == 1; i++) {
		int rc = source_read(&s, next, 10, SIZE_MAX, 1000, &b, &next);
		if (rc == SL_ECORRUPT)
			break;
		assert_ok(rc);
	}
	assert_int_equal(b.n, 1);
	assert_int_equal(next, 1);
	assert_int_equal(source_read(&s, 1, 10, SIZE_MAX, 1000, &b, &next), SL_ECORRUPT);
	expect_message("kafka topic bad partition 0: offset 1: the message has no key");
	assert_int_equal(b.n, 1);
	assert_int_equal(source_read(&s, 2, 10, SIZE_MAX, 1000, &b, &next), SL_ECORRUPT);
	expect_message("offset 2: the \"op\" header is 'put'");
	assert_int_equal(b.n, 1);

	/* Past them (a mirror that wrote them off) it goes on. */
	sl_event_batch_clear(&b);
	assert_ok(source_read(&s, 3, 10, SIZE_MAX, 1000, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], 3, SL_EVENT_SET, "good", "w", 1, 4);
	assert_int_equal(next, 4);
	sl_event_batch_clear(&b);
	assert_int_equal(source_read(&s, 4, 10, SIZE_MAX, 1000, &b, &next), SL_ECORRUPT);
	expect_message("offset 4: a delete with a value of 4 bytes");

	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

/* --------------------------------------------------------------- markers */

static void test_markers(void **state)
{
	cluster c;
	sl_event_source s, again;
	sl_event_batch b;
	uint64_t next;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "markers", 1);
	produce_text(&c, "markers", 0, "a", "1", NULL); /* 0 */
	produce_marker(&c, "markers", 0);               /* 1 */
	produce_marker(&c, "markers", 0);               /* 2 */
	produce_text(&c, "markers", 0, "b", "2", NULL); /* 3 */
	produce_marker(&c, "markers", 0);               /* 4 */

	open_source(&s, &c, "markers", 0);
	sl_event_batch_init(&b);
	next = read_until(&s, 0, 2, &b);
	expect_event(&b.events[0], 0, SL_EVENT_SET, "a", "1", 1, 1);
	expect_event(&b.events[1], 3, SL_EVENT_SET, "b", "2", 1, 4);
	assert_true(next == 4 || next == 5);
	/* Only a marker left: no event, and next moves past it. */
	sl_event_batch_clear(&b);
	for (int i = 0; i < 20 && next != 5; i++)
		assert_ok(source_read(&s, next, 10, SIZE_MAX, 1000, &b, &next));
	assert_int_equal(next, 5);
	assert_int_equal(b.n, 0);

	/* From a marker's offset, with a new source: the message after it. */
	open_source(&again, &c, "markers", 0);
	next = read_until(&again, 1, 1, &b);
	expect_event(&b.events[0], 3, SL_EVENT_SET, "b", "2", 1, 4);
	sl_event_batch_clear(&b);
	/* From the last marker's: nothing but the move past it. */
	for (int i = 0; i < 20 && next != 5; i++)
		assert_ok(source_read(&again, 4, 10, SIZE_MAX, 1000, &b, &next));
	assert_int_equal(next, 5);
	assert_int_equal(b.n, 0);

	sl_event_source_close(&again);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

/* ------------------------------------------------------------------- gap */

static void test_gap(void **state)
{
	cluster c;
	sl_event_source s;
	sl_event_source_head head;
	sl_event_batch b;
	uint8_t *big = malloc(900000);
	uint64_t next, start;
	char key[16];
	int rc;
	(void)state;

	assert_non_null(big);
	memset(big, 'x', 900000);
	cluster_start(&c, 1);
	topic_create(&c, "gap", 1);
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "small%d", i);
		produce_text(&c, "gap", 0, key, "v", NULL);
	}
	open_source(&s, &c, "gap", 0);
	sl_event_batch_init(&b);
	next = read_until(&s, 0, 1, &b);
	assert_int_equal(next, 1);
	sl_event_source_close(&s); /* a mirror that stopped at position 1 */

	/* 6.3 MB more: the mock keeps 5 MiB of a partition, so the oldest
	 * messages go. */
	for (int i = 0; i < 7; i++) {
		snprintf(key, sizeof(key), "big%d", i);
		produce(&c, "gap", 0, key, big, 900000, NULL, NULL);
	}

	open_source(&s, &c, "gap", 0);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.end, 10);
	sl_event_batch_clear(&b);
	next = 0;
	rc = source_read(&s, 1, 10, SIZE_MAX, 1000, &b, &next);
	assert_int_equal(rc, SL_ENOTFOUND);
	assert_int_equal(b.n, 0);
	assert_true(next > 3 && next < 10);
	start = next;
	expect_message("kafka topic gap partition 0: offsets 1 to ");
	expect_message("deleted before they were read");

	/* From next, the messages that are left. */
	next = read_until(&s, start, (size_t)(10 - start), &b);
	assert_int_equal(b.events[0].pos, start);
	assert_int_equal(b.events[0].value_len, 900000);
	assert_int_equal(next, 10);

	/* Back to a deleted position with the same (assigned) source. */
	sl_event_batch_clear(&b);
	assert_int_equal(source_read(&s, 0, 10, SIZE_MAX, 1000, &b, &next), SL_ENOTFOUND);
	assert_int_equal(next, start);
	assert_int_equal(b.n, 0);

	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
	free(big);
}

/* ----------------------------------------------------------- broker down */

static int transient(int rc)
{
	return rc == SL_EIO || rc == SL_ETIMEOUT;
}

static void test_broker_down(void **state)
{
	static const char *const quick[] = {"reconnect.backoff.max.ms=1000", NULL};
	cluster c;
	sl_kafka_source_options o;
	sl_event_source s;
	sl_event_source_head head;
	sl_event_batch b;
	uint64_t next = 0;
	int rc = SL_OK;
	(void)state;

	cluster_start(&c, 1);
	topic_create(&c, "down", 1);
	produce_text(&c, "down", 0, "a", "1", NULL);
	options(&o, &c, "down", 0);
	o.timeout_ms = 1000;
	o.extra_config = quick;
	assert_ok(sl_kafka_source_open(&s, &o));
	sl_event_batch_init(&b);
	next = read_until(&s, 0, 1, &b);

	assert_int_equal(rd_kafka_mock_broker_set_down(c.mock, 1), 0);
	for (int i = 0; i < 60 && rc == SL_OK; i++) {
		rc = source_read(&s, next, 10, SIZE_MAX, 500, &b, &next);
		assert_int_equal(b.n, 1);
	}
	if (!transient(rc))
		fail_msg("a broker that is down: %d (%s)", rc, sl_error_last()->message);
	assert_int_equal(next, 1);
	rc = s.ops->head(s.self, &head);
	assert_true(transient(rc));

	/* Back: the reads go on where they were. */
	assert_int_equal(rd_kafka_mock_broker_set_up(c.mock, 1), 0);
	produce_text(&c, "down", 0, "b", "2", NULL);
	sl_event_batch_clear(&b);
	for (int i = 0; i < 60 && b.n == 0; i++) {
		rc = source_read(&s, next, 10, SIZE_MAX, 500, &b, &next);
		assert_true(rc == SL_OK || transient(rc));
	}
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], 1, SL_EVENT_SET, "b", "2", 1, 2);
	assert_int_equal(next, 2);

	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	cluster_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),   cmocka_unit_test(test_events),
	        cmocka_unit_test(test_version), cmocka_unit_test(test_partitions),
	        cmocka_unit_test(test_resume),  cmocka_unit_test(test_wait),
	        cmocka_unit_test(test_bad),     cmocka_unit_test(test_markers),
	        cmocka_unit_test(test_gap),     cmocka_unit_test(test_broker_down),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	/* Every handle is gone: no librdkafka thread outlives the tests. */
	if (rd_kafka_wait_destroyed(5000) != 0) {
		fprintf(stderr, "librdkafka handles are left\n");
		failed++;
	}
	return failed;
}
