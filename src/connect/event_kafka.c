/* The Kafka event source: one partition of a topic, read with librdkafka's
 * consumer, as events (sluice/event_source.h says what makes a message an
 * event).
 *
 * Positions are the partition's offsets. The position PostgreSQL stores
 * with what the mirror applied is the only truth: the consumer joins no
 * group and commits nothing (enable.auto.commit and
 * enable.auto.offset.store are off; group.id is set only because
 * rd_kafka_assign needs one), and is assigned the one partition at the
 * offset a read asks for. It never moves by itself either: with
 * auto.offset.reset=error a fetch at an offset the partition no longer
 * holds is an error event, which becomes a gap (SL_ENOTFOUND), instead of
 * a silent jump to the start or the end of the log.
 *
 * State: `at` is where the assigned consumer stands, or AT_NONE when it
 * is not assigned (after open, after anything that stopped its fetcher).
 *
 * Invariants:
 *   K1. at != AT_NONE: the consumer is assigned, and the next message it
 *       delivers is the partition's first message at an offset >= at
 *       (below at, each offset was taken or holds no message: a
 *       transaction marker, an aborted or compacted record).
 *   K2. While assigned, at only grows: to a message's offset + 1 when the
 *       message is taken, and to the offset of an end-of-partition event
 *       (enable.partition.eof). That event names the fetch position, which
 *       is past the markers and aborted records the fetcher skipped, so a
 *       read that meets only offsets without messages moves past them.
 *       rd_kafka_position() is not used: it moves past a marker only once
 *       the marker is polled, and right after a re-assign it may still
 *       hold the old assignment's offset (it is reset on librdkafka's own
 *       thread), which would skip messages.
 *   K3. A read from `from` != at re-assigns at `from`, after checking it
 *       against the watermarks: below the low one it is a gap, above the
 *       high one SL_EINVAL. Messages of the old assignment still queued
 *       are dropped by librdkafka (an assignment bumps the partition's op
 *       version, and older ops are discarded when polled).
 *   K4. An offset out of range (the fetcher stopped) and a message that is
 *       not an event set at = AT_NONE, so the next read re-assigns and
 *       meets the same thing again. A read that had taken events returns
 *       them first, with next where it stopped. Other errors leave the
 *       consumer where it is: librdkafka retries them itself.
 *
 * Waiting: a read polls the consumer until wait_ms passed for its first
 * event, then takes only what is already fetched. A read that finds
 * nothing, when nothing was heard from the cluster for LIVENESS_MS, asks
 * for the watermarks, so a cluster that is gone is an error (SL_ETIMEOUT,
 * SL_EIO) rather than an endless "nothing yet", and a log that moved past
 * the position is a gap. librdkafka keeps what it prefetches bounded
 * (queued.max.messages.kbytes, default 64 MiB; extra_config may lower it).
 *
 * Errors: librdkafka's codes become SL_ETIMEOUT (timeouts), SL_EAUTH
 * (authentication, authorization) or SL_EIO, with the code's name as the
 * cause. Errors of the whole client other than all brokers being down or
 * refusing us (a lost idle connection, a group coordinator we do not
 * need) are only logged: librdkafka recovers from them by itself.
 */
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect/event_internal.h"

#define TIMEOUT_MS_DEFAULT    10000u
#define WAIT_MS_MAX           86400000u
#define LIVENESS_MS           5000u
#define GROUP_ID_DEFAULT      "sluice-mirror"
#define SOCKET_TIMEOUT_MIN_MS 1500
#define AT_NONE               (-1)
#define EXCERPT_MAX           32

/* ------------------------------------------------------------- messages */

static int message_error(uint64_t offset, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static int message_error(uint64_t offset, const char *fmt, ...)
{
	char msg[SL_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sl_error_set(SL_ECORRUPT, "offset %llu: %s", (unsigned long long)offset, msg);
}

/* Bytes for a message: printable ASCII as is, anything else as '?', at
 * most EXCERPT_MAX of them. */
static const char *excerpt(char *out, size_t cap, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	size_t n = 0;
	for (size_t i = 0; i < len && i < EXCERPT_MAX && n + 1 < cap; i++)
		out[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	if (len > EXCERPT_MAX && n + 4 < cap) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* The one header named `name`: *out NULL when there is none. */
static int find_header(const sl_kafka_message *m, const char *name, const sl_kafka_header **out)
{
	*out = NULL;
	for (size_t i = 0; i < m->n_headers; i++) {
		const sl_kafka_header *h = &m->headers[i];
		if (!h->name || strcmp(h->name, name) != 0)
			continue;
		if (*out)
			return message_error(m->offset, "more than one \"%s\" header", name);
		*out = h;
	}
	if (*out && !(*out)->value)
		return message_error(m->offset, "the \"%s\" header has a null value", name);
	return SL_OK;
}

static int bytes_are(const void *bytes, size_t len, const char *text)
{
	return len == strlen(text) && memcmp(bytes, text, len) == 0;
}

/* A positive decimal integer of at most INT64_MAX (a version PostgreSQL's
 * bigint holds): 1 with it in *out, else 0. */
static int parse_version(uint64_t *out, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	uint64_t v = 0;
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned digit = (unsigned)p[i] - '0';
		if (digit > 9 || v > ((uint64_t)INT64_MAX - digit) / 10)
			return 0;
		v = v * 10 + digit;
	}
	*out = v;
	return v > 0;
}

int sl_kafka_message_parse(sl_event_batch *out, const sl_kafka_message *m,
                           const sl_kafka_source_options *o)
{
	const char *op_name = o->op_header ? o->op_header : "op";
	const char *version_name = o->version_header;
	const sl_kafka_header *op_h = NULL, *version_h = NULL;
	sl_event_op op;
	uint64_t version = m->offset + 1;
	char text[EXCERPT_MAX + 4];
	int rc;

	if (!m->value && m->value_len > 0)
		return sl_error_set(SL_EINVAL, "offset %llu: a null value of %zu bytes",
		                    (unsigned long long)m->offset, m->value_len);
	if (!m->key)
		return message_error(m->offset, "the message has no key");
	if (m->key_len == 0)
		return message_error(m->offset, "the message's key is empty");
	if (memchr(m->key, '\0', m->key_len))
		return message_error(m->offset, "the message's key holds a NUL byte");
	if (*op_name && (rc = find_header(m, op_name, &op_h)) != SL_OK)
		return rc;
	if (version_name && *version_name &&
	    (rc = find_header(m, version_name, &version_h)) != SL_OK)
		return rc;
	if (!op_h)
		op = m->value ? SL_EVENT_SET : SL_EVENT_DELETE;
	else if (bytes_are(op_h->value, op_h->value_len, "set"))
		op = SL_EVENT_SET;
	else if (bytes_are(op_h->value, op_h->value_len, "update"))
		op = SL_EVENT_UPDATE;
	else if (bytes_are(op_h->value, op_h->value_len, "delete"))
		op = SL_EVENT_DELETE;
	else
		return message_error(
		        m->offset, "the \"%s\" header is '%s', not set, update or delete", op_name,
		        excerpt(text, sizeof(text), op_h->value, op_h->value_len));
	if (op != SL_EVENT_DELETE && !m->value)
		return message_error(m->offset, "%s with a null value",
		                     op == SL_EVENT_SET ? "a set" : "an update");
	if (op == SL_EVENT_DELETE && m->value_len > 0)
		return message_error(m->offset, "a delete with a value of %zu bytes", m->value_len);
	if (version_name && *version_name) {
		if (!version_h)
			return message_error(m->offset, "no \"%s\" header", version_name);
		if (!parse_version(&version, version_h->value, version_h->value_len))
			return message_error(
			        m->offset,
			        "the \"%s\" header is '%s', not a positive decimal integer "
			        "of at most %lld",
			        version_name,
			        excerpt(text, sizeof(text), version_h->value, version_h->value_len),
			        (long long)INT64_MAX);
	} else if (m->offset >= (uint64_t)INT64_MAX) {
		return message_error(m->offset, "no version for an offset past 2^63 - 2");
	}
	if (op == SL_EVENT_DELETE)
		return sl_event_batch_add(out, m->offset, op, m->key, m->key_len, NULL, 0, version);
	return sl_event_batch_add(out, m->offset, op, m->key, m->key_len, m->value, m->value_len,
	                          version);
}

/* --------------------------------------------------------------- client */

/* What the source depends on; extra_config may not change it. */
static const char *const pinned_settings[] = {
        "bootstrap.servers",        "metadata.broker.list",     "enable.auto.commit",
        "enable.auto.offset.store", "auto.offset.reset",        "enable.partition.eof",
        "isolation.level",          "allow.auto.create.topics",
};

static int kafka_code(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return SL_ETIMEOUT;
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		return SL_EAUTH;
	default:
		return SL_EIO;
	}
}

static int kafka_error(rd_kafka_resp_err_t err, const char *detail, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int kafka_error(rd_kafka_resp_err_t err, const char *detail, const char *fmt, ...)
{
	char msg[SL_ERROR_MSG_MAX], cause[SL_ERROR_CAUSE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(cause, sizeof(cause), "rdkafka %s", rd_kafka_err2name(err));
	return sl_error_set_cause(kafka_code(err), cause, "%s: %s", msg,
	                          detail ? detail : rd_kafka_err2str(err));
}

/* What librdkafka's callbacks are given (the opaque): the name for log
 * lines, set before the handle is made, and the last error of the whole
 * client, which error_cb (called on the thread that polls) leaves for the
 * read to take. */
typedef struct client_ctx {
	char name[sizeof(((sl_event_source *)0)->name)];
	rd_kafka_resp_err_t err;
	char reason[256];
} client_ctx;

static void log_line(const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
	const client_ctx *ctx = rd_kafka_opaque(rk);
	char name_q[256], text_q[1024];
	sl_log_level ours = level <= 4 ? SL_LOG_WARN : level == 5 ? SL_LOG_INFO : SL_LOG_DEBUG;
	sl_log(ours, "kafka client", "source=%s facility=%s text=%s",
	       sl_log_quote(name_q, sizeof(name_q), ctx->name), facility,
	       sl_log_quote(text_q, sizeof(text_q), text));
}

static void client_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	client_ctx *ctx = opaque;
	(void)rk;
	ctx->err = (rd_kafka_resp_err_t)err;
	snprintf(ctx->reason, sizeof(ctx->reason), "%s", reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[256];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		return sl_error_set(SL_EINVAL, "kafka: the setting %s: %s", name, errstr);
	return SL_OK;
}

static int conf_extra(rd_kafka_conf_t *conf, const char *const *extra)
{
	for (size_t i = 0; extra && extra[i]; i++) {
		const char *eq = strchr(extra[i], '=');
		size_t name_len = eq ? (size_t)(eq - extra[i]) : 0;
		char *name;
		int rc;

		if (name_len == 0)
			return sl_error_set(SL_EINVAL,
			                    "kafka: the extra setting '%.64s' is not name=value",
			                    extra[i]);
		if (!(name = sl_malloc(name_len + 1)))
			return SL_ENOMEM;
		memcpy(name, extra[i], name_len);
		name[name_len] = '\0';
		rc = SL_OK;
		for (size_t j = 0; j < sizeof(pinned_settings) / sizeof(pinned_settings[0]); j++)
			if (strcmp(name, pinned_settings[j]) == 0)
				rc = sl_error_set(
				        SL_EINVAL,
				        "kafka: %s cannot be set: the source depends on it", name);
		if (rc == SL_OK)
			rc = conf_set(conf, name, eq + 1);
		sl_free(name);
		if (rc != SL_OK)
			return rc;
	}
	return SL_OK;
}

/* A consumer handle; with group set, one that can be assigned partitions
 * and reads as K1 to K4 need. ctx must outlive the handle.
 *
 * socket.timeout.ms is each request's timeout (librdkafka's default is a
 * minute); it stays 1000 above fetch.wait.max.ms (500), as librdkafka
 * asks.
 * allow.auto.create.topics is false for a consumer unless set. */
static int client_new(rd_kafka_t **out, const char *brokers, const char *const *extra, int group,
                      int timeout_ms, client_ctx *ctx)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512], socket_timeout[16];
	rd_kafka_t *rk;
	int rc;

	if (!conf)
		return SL_ENOMEM;
	rd_kafka_conf_set_opaque(conf, ctx);
	rd_kafka_conf_set_log_cb(conf, log_line);
	rd_kafka_conf_set_error_cb(conf, client_error_cb);
	snprintf(socket_timeout, sizeof(socket_timeout), "%d",
	         timeout_ms < SOCKET_TIMEOUT_MIN_MS ? SOCKET_TIMEOUT_MIN_MS : timeout_ms);
	if ((rc = conf_set(conf, "client.id", "sluice")) != SL_OK ||
	    (group && (rc = conf_set(conf, "group.id", GROUP_ID_DEFAULT)) != SL_OK) ||
	    (rc = conf_set(conf, "socket.timeout.ms", socket_timeout)) != SL_OK ||
	    (rc = conf_extra(conf, extra)) != SL_OK ||
	    (rc = conf_set(conf, "bootstrap.servers", brokers)) != SL_OK ||
	    (rc = conf_set(conf, "enable.auto.commit", "false")) != SL_OK ||
	    (rc = conf_set(conf, "enable.auto.offset.store", "false")) != SL_OK ||
	    (rc = conf_set(conf, "auto.offset.reset", "error")) != SL_OK ||
	    (rc = conf_set(conf, "enable.partition.eof", "true")) != SL_OK ||
	    (rc = conf_set(conf, "isolation.level", "read_committed")) != SL_OK) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
		rd_kafka_conf_destroy(conf);
		return sl_error_set(SL_EINVAL, "kafka: cannot make a client: %s", errstr);
	}
	*out = rk;
	return SL_OK;
}

/* The topic's partition count: SL_ENOTFOUND for no such topic. The
 * metadata of every topic is asked for: a request naming the topic would
 * make a broker older than 0.11 (and the mock cluster) create it. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int32_t *n)
{
	const struct rd_kafka_metadata *md = NULL;
	const struct rd_kafka_metadata_topic *t = NULL;
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
	int rc = SL_OK;

	if (err)
		return kafka_error(err, NULL, "kafka topic %.200s: cannot read the metadata",
		                   topic);
	for (int i = 0; i < md->topic_cnt && !t; i++)
		if (strcmp(md->topics[i].topic, topic) == 0)
			t = &md->topics[i];
	if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		rc = sl_error_set(SL_ENOTFOUND, "kafka: no topic %.200s", topic);
	else if (t->err)
		rc = kafka_error(t->err, NULL, "kafka topic %.200s", topic);
	else
		*n = t->partition_cnt;
	rd_kafka_metadata_destroy(md);
	return rc;
}

static int timeout_or_default(unsigned timeout_ms)
{
	if (timeout_ms == 0)
		return (int)TIMEOUT_MS_DEFAULT;
	return timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
}

int sl_kafka_partitions(int32_t *n, const char *brokers, const char *topic,
                        const char *const *extra_config, unsigned timeout_ms)
{
	rd_kafka_t *rk = NULL;
	client_ctx *ctx;
	int32_t count = 0;
	int rc;

	if (!brokers || !*brokers || !topic || !*topic)
		return sl_error_set(SL_EINVAL, "kafka: no brokers or no topic");
	if (!(ctx = sl_calloc(1, sizeof(*ctx))))
		return SL_ENOMEM;
	snprintf(ctx->name, sizeof(ctx->name), "kafka:%s/%s", brokers, topic);
	rc = client_new(&rk, brokers, extra_config, 0, timeout_or_default(timeout_ms), ctx);
	if (rc == SL_OK)
		rc = topic_partitions(rk, topic, timeout_or_default(timeout_ms), &count);
	if (rk)
		rd_kafka_destroy(rk);
	sl_free(ctx);
	if (rc == SL_OK)
		*n = count;
	return rc;
}

/* --------------------------------------------------------------- source */

typedef struct kafka_src {
	rd_kafka_t *rk;
	char *topic;
	int32_t partition;
	sl_kafka_source_options parse; /* op_header, version_header: ours */
	char *op_header, *version_header;
	int timeout_ms;
	int64_t at;        /* K1 */
	uint64_t heard_ns; /* when the cluster last answered or sent */
	client_ctx ctx;
} kafka_src;

static uint64_t now_ms(void)
{
	return sl_clock_mono_ns() / 1000000u;
}

static int ms_left(uint64_t deadline_ms)
{
	uint64_t now = now_ms();
	uint64_t ms = now >= deadline_ms ? 0 : deadline_ms - now;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* One end of the partition: which is RD_KAFKA_OFFSET_BEGINNING or _END.
 * rd_kafka_offsets_for_times sends the same request as
 * rd_kafka_query_watermark_offsets, but keeps to its timeout: librdkafka
 * 2.0's watermark query retries without end while the leader is down. */
static int list_offset(kafka_src *k, int64_t which, int64_t *out)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_t *part;
	rd_kafka_resp_err_t err;

	if (!parts)
		return sl_error_set(SL_ENOMEM, "kafka: out of memory");
	part = rd_kafka_topic_partition_list_add(parts, k->topic, k->partition);
	part->offset = which;
	err = rd_kafka_offsets_for_times(k->rk, parts, k->timeout_ms);
	if (!err)
		err = part->err;
	*out = part->offset;
	rd_kafka_topic_partition_list_destroy(parts);
	if (err)
		return kafka_error(err, NULL,
		                   "kafka topic %.200s partition %d: cannot read the watermarks",
		                   k->topic, (int)k->partition);
	return SL_OK;
}

static int watermarks(kafka_src *k, int64_t *low, int64_t *high)
{
	int rc;
	if ((rc = list_offset(k, RD_KAFKA_OFFSET_BEGINNING, low)) != SL_OK ||
	    (rc = list_offset(k, RD_KAFKA_OFFSET_END, high)) != SL_OK)
		return rc;
	k->heard_ns = sl_clock_mono_ns();
	if (*low < 0 && *high >= 0) /* an empty partition, as old brokers say it */
		*low = *high;
	if (*low < 0 || *high < *low)
		return sl_error_set(
		        SL_EIO, "kafka topic %.200s partition %d: the watermarks are %lld and %lld",
		        k->topic, (int)k->partition, (long long)*low, (long long)*high);
	return SL_OK;
}

/* Where `from` stands in the partition: SL_OK inside [low, high];
 * SL_ENOTFOUND (a gap, *next = low) below; SL_EINVAL above. */
static int check_range(kafka_src *k, uint64_t from, uint64_t *next)
{
	int64_t low = 0, high = 0;
	int rc = watermarks(k, &low, &high);
	if (rc != SL_OK)
		return rc;
	if (from < (uint64_t)low) {
		*next = (uint64_t)low;
		return sl_error_set(
		        SL_ENOTFOUND,
		        "kafka topic %.200s partition %d: offsets %llu to %lld (at most "
		        "%llu messages) were deleted before they were read; the "
		        "partition now starts at %lld",
		        k->topic, (int)k->partition, (unsigned long long)from, (long long)low - 1,
		        (unsigned long long)low - from, (long long)low);
	}
	if (from > (uint64_t)high)
		return sl_error_set(SL_EINVAL,
		                    "kafka topic %.200s partition %d: position %llu is past the "
		                    "partition's end (%lld): was the topic deleted and made again?",
		                    k->topic, (int)k->partition, (unsigned long long)from,
		                    (long long)high);
	return SL_OK;
}

/* K3: the consumer assigned at from. */
static int reposition(kafka_src *k, uint64_t from, uint64_t *next)
{
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_resp_err_t err;
	int rc;

	k->at = AT_NONE;
	if ((rc = check_range(k, from, next)) != SL_OK)
		return rc;
	if (!(parts = rd_kafka_topic_partition_list_new(1)))
		return sl_error_set(SL_ENOMEM, "kafka: out of memory");
	rd_kafka_topic_partition_list_add(parts, k->topic, k->partition)->offset = (int64_t)from;
	err = rd_kafka_assign(k->rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err)
		return kafka_error(err, NULL, "kafka topic %.200s partition %d: cannot assign it",
		                   k->topic, (int)k->partition);
	k->at = (int64_t)from;
	return SL_OK;
}

/* The message's headers named in the options (two of each at most, which
 * is enough to refuse a second one), into h[4]. */
static int message_headers(kafka_src *k, rd_kafka_message_t *rm, sl_kafka_header *h, size_t *n)
{
	const char *names[2] = {k->op_header, k->version_header};
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_resp_err_t err = rd_kafka_message_headers(rm, &hdrs);

	*n = 0;
	if (err == RD_KAFKA_RESP_ERR__NOENT)
		return SL_OK;
	if (err)
		return message_error((uint64_t)rm->offset, "the headers cannot be read: %s",
		                     rd_kafka_err2str(err));
	for (size_t i = 0; i < 2; i++) {
		if (!names[i] || !*names[i])
			continue;
		for (size_t idx = 0; idx < 2; idx++) {
			const void *value = NULL;
			size_t size = 0;
			if (rd_kafka_header_get(hdrs, idx, names[i], &value, &size) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			h[*n].name = names[i];
			h[*n].value = value;
			h[*n].value_len = value ? size : 0;
			(*n)++;
		}
	}
	return SL_OK;
}

static int take_message(kafka_src *k, rd_kafka_message_t *rm, sl_event_batch *out)
{
	sl_kafka_header headers[4];
	sl_kafka_message m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.offset = (uint64_t)rm->offset;
	m.key = rm->key;
	m.key_len = rm->key ? rm->key_len : 0;
	m.value = rm->payload;
	m.value_len = rm->payload ? rm->len : 0;
	m.headers = headers;
	if ((rc = message_headers(k, rm, headers, &m.n_headers)) != SL_OK ||
	    (rc = sl_kafka_message_parse(out, &m, &k->parse)) != SL_OK)
		return sl_error_wrap("kafka topic %.200s partition %d", k->topic,
		                     (int)k->partition);
	return SL_OK;
}

/* An error of the whole client (error_cb's): all brokers down and being
 * refused are the read's errors; anything else librdkafka recovers from
 * by itself (a lost connection is made again), so it is only logged. */
static int client_error(kafka_src *k, rd_kafka_resp_err_t err, const char *reason)
{
	char text_q[512];
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || kafka_code(err) == SL_EAUTH)
		return kafka_error(err, reason, "%.300s", k->ctx.name);
	sl_log(SL_LOG_DEBUG, "kafka client error", "source=%s error=%s text=%s", k->ctx.name,
	       rd_kafka_err2name(err), sl_log_quote(text_q, sizeof(text_q), reason));
	return SL_OK;
}

/* An error event: SL_OK to go on reading, else the error. *stopped: the
 * fetcher stopped (K4) at an offset out of range. */
static int take_error(kafka_src *k, rd_kafka_message_t *rm, int64_t *pos, int *stopped)
{
	const char *topic = rm->rkt ? rd_kafka_topic_name(rm->rkt) : NULL;

	if (!topic)
		return client_error(k, rm->err, rd_kafka_message_errstr(rm));
	if (strcmp(topic, k->topic) != 0 || rm->partition != k->partition)
		return SL_OK;
	if (rm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		k->heard_ns = sl_clock_mono_ns();
		if (rm->offset > *pos)
			*pos = rm->offset; /* K2 */
		return SL_OK;
	}
	if (rm->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
	    rm->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
		*stopped = 1;
		return kafka_error(rm->err, rd_kafka_message_errstr(rm),
		                   "kafka topic %.200s partition %d: offset %lld is out of range",
		                   k->topic, (int)k->partition, (long long)rm->offset);
	}
	return kafka_error(rm->err, rd_kafka_message_errstr(rm), "kafka topic %.200s partition %d",
	                   k->topic, (int)k->partition);
}

/* One event or error from the consumer. SL_OK to go on; else the error,
 * with *reread set when the consumer must be assigned again (K4). */
static int take(kafka_src *k, rd_kafka_message_t *rm, sl_event_batch *out, size_t *added,
                int64_t *pos, int *reread, int *out_of_range)
{
	size_t before = out->n;
	int rc;

	if (rm->err) {
		rc = take_error(k, rm, pos, out_of_range);
		*reread = *out_of_range;
		return rc;
	}
	if (!rm->rkt || strcmp(rd_kafka_topic_name(rm->rkt), k->topic) != 0 ||
	    rm->partition != k->partition || rm->offset < *pos)
		return SL_OK; /* not ours (K1 and K3 say it cannot be) */
	if ((rc = take_message(k, rm, out)) != SL_OK) {
		*reread = 1;
		return rc;
	}
	*added += out->n - before;
	*pos = rm->offset + 1;
	k->heard_ns = sl_clock_mono_ns();
	return SL_OK;
}

static int kafka_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                      uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	kafka_src *k = self;
	size_t n0 = out->n, added = 0;
	uint64_t deadline_ms;
	int64_t pos;
	int reread = 0, out_of_range = 0, rc = SL_OK;

	*at_end = 0;
	if (max_events == 0)
		return sl_error_set(SL_EINVAL, "a read of at most 0 events");
	if (from > (uint64_t)INT64_MAX)
		return sl_error_set(SL_EINVAL, "kafka: position %llu is past any offset",
		                    (unsigned long long)from);
	if (k->at != (int64_t)from && (rc = reposition(k, from, next)) != SL_OK)
		return rc;
	pos = k->at;
	deadline_ms = now_ms() + (wait_ms > WAIT_MS_MAX ? WAIT_MS_MAX : wait_ms);
	while (rc == SL_OK && !sl_event_batch_full(out, added, max_events, max_bytes)) {
		int timeout = added > 0 ? 0 : ms_left(deadline_ms);
		rd_kafka_message_t *rm = rd_kafka_consumer_poll(k->rk, timeout);
		if (rm) {
			rc = take(k, rm, out, &added, &pos, &reread, &out_of_range);
			rd_kafka_message_destroy(rm);
		} else if (timeout == 0) {
			break;
		}
		if (k->ctx.err) {
			int client_rc = client_error(k, k->ctx.err, k->ctx.reason);
			k->ctx.err = RD_KAFKA_RESP_ERR_NO_ERROR;
			if (rc == SL_OK)
				rc = client_rc;
		}
	}
	k->at = reread ? AT_NONE : pos;
	if (rc != SL_OK && added == 0) {
		sl_event_batch_truncate(out, n0);
		if (out_of_range) {
			/* a gap, a position past the end, or (inside the range
			 * after all) something to read again */
			int range = check_range(k, (uint64_t)pos, next);
			if (range != SL_OK)
				return range;
		}
		return rc;
	}
	if (rc == SL_OK && added == 0 && now_ms() - k->heard_ns / 1000000u >= LIVENESS_MS &&
	    (rc = check_range(k, (uint64_t)pos, next)) != SL_OK) {
		if (rc == SL_ENOTFOUND || rc == SL_EINVAL)
			k->at = AT_NONE;
		return rc;
	}
	*next = (uint64_t)pos;
	return SL_OK;
}

static int kafka_head(void *self, sl_event_source_head *out)
{
	kafka_src *k = self;
	int64_t low = 0, high = 0;
	int rc = watermarks(k, &low, &high);

	memset(out, 0, sizeof(*out));
	if (rc != SL_OK)
		return rc;
	out->end = (uint64_t)high;
	out->known = 1;
	return SL_OK;
}

static int kafka_save_state(void *self, char *out, size_t cap)
{
	(void)self;
	if (cap == 0)
		return sl_error_set(SL_ETOOLARGE, "no room for the source's state");
	out[0] = '\0';
	return SL_OK;
}

static int kafka_restore_state(void *self, const char *state)
{
	(void)self;
	if (state[0] != '\0')
		return sl_error_set(SL_ECORRUPT, "a kafka source keeps no state, given '%.64s'",
		                    state);
	return SL_OK;
}

static void kafka_close(void *self)
{
	kafka_src *k = self;
	if (!k)
		return;
	/* No consumer close: there is no group to leave and nothing to
	 * commit, and it would wait on a cluster that may be gone. */
	if (k->rk)
		rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	sl_free(k->topic);
	sl_free(k->op_header);
	sl_free(k->version_header);
	sl_free(k);
}

static const sl_event_source_ops kafka_ops = {
        "kafka", kafka_read, kafka_head, kafka_save_state, kafka_restore_state, kafka_close,
};

void sl_kafka_source_options_init(sl_kafka_source_options *o)
{
	memset(o, 0, sizeof(*o));
	o->op_header = "op";
	o->timeout_ms = TIMEOUT_MS_DEFAULT;
}

int sl_kafka_source_open(sl_event_source *out, const sl_kafka_source_options *o)
{
	sl_event_source s;
	kafka_src *k;
	int32_t n_partitions = 0;
	int rc;

	if (!o->brokers || !*o->brokers)
		return sl_error_set(SL_EINVAL, "a kafka source needs brokers (HOST:PORT)");
	if (!o->topic || !*o->topic)
		return sl_error_set(SL_EINVAL, "a kafka source needs a topic");
	if (o->partition < 0)
		return sl_error_set(SL_EINVAL, "kafka: partition %d", (int)o->partition);
	if (o->version_header && *o->version_header &&
	    strcmp(o->version_header, o->op_header ? o->op_header : "op") == 0)
		return sl_error_set(SL_EINVAL, "kafka: the op and the version header are both '%s'",
		                    o->version_header);
	memset(&s, 0, sizeof(s));
	if ((rc = sl_event_source_set_name(&s, "kafka:%s/%s/%d", o->brokers, o->topic,
	                                   (int)o->partition)) != SL_OK)
		return rc;
	if (!(k = sl_calloc(1, sizeof(*k))))
		return SL_ENOMEM;
	memcpy(k->ctx.name, s.name, sizeof(k->ctx.name));
	k->partition = o->partition;
	k->timeout_ms = timeout_or_default(o->timeout_ms);
	k->at = AT_NONE;
	k->topic = sl_strdup(o->topic);
	k->op_header = sl_strdup(o->op_header ? o->op_header : "op");
	if (o->version_header && *o->version_header)
		k->version_header = sl_strdup(o->version_header);
	if (!k->topic || !k->op_header ||
	    (o->version_header && *o->version_header && !k->version_header)) {
		rc = SL_ENOMEM;
		goto fail;
	}
	k->parse.op_header = k->op_header;
	k->parse.version_header = k->version_header;
	if ((rc = client_new(&k->rk, o->brokers, o->extra_config, 1, k->timeout_ms, &k->ctx)) !=
	    SL_OK)
		goto fail;
	if (rd_kafka_poll_set_consumer(k->rk) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rc = sl_error_set(SL_EINTERNAL, "kafka: cannot poll the consumer's queue");
		goto fail;
	}
	rc = topic_partitions(k->rk, k->topic, k->timeout_ms, &n_partitions);
	if (rc == SL_ENOTFOUND) {
		rc = sl_error_set(SL_EINVAL, "kafka: no topic %.200s at %.200s", k->topic,
		                  o->brokers);
		goto fail;
	}
	if (rc != SL_OK)
		goto fail;
	if (o->partition >= n_partitions) {
		rc = sl_error_set(
		        SL_EINVAL, "kafka topic %.200s has %d partitions (0 to %d), not %d",
		        k->topic, (int)n_partitions, (int)n_partitions - 1, (int)o->partition);
		goto fail;
	}
	k->heard_ns = sl_clock_mono_ns();
	s.ops = &kafka_ops;
	s.self = k;
	*out = s;
	return SL_OK;
fail:
	kafka_close(k);
	return rc;
}
