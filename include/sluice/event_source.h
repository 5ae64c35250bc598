/* connect/: event sources, what a mirror (sluice/mirror.h) reads.
 *
 * An event source gives keyed events in order, each at a position, and can
 * start again from any position it gave: the mirror stores the position
 * with what it applied, in one PostgreSQL transaction, and hands it back
 * after a crash.
 *
 * Positions are u64 and grow with the source. An event's `pos` is where it
 * is; after reading a run of events the source says where the next read
 * starts (`next`), which may skip positions that carry no event (a
 * namespace's commit operations). Resuming from an event's pos + 1 is also
 * valid: it starts right after that event.
 *
 *   node or local store  pos = the operation's location in the namespace's
 *                        log; set, update and delete operations are events,
 *                        commits are not; version = location + 1.
 *   ndjson               pos = the line's index (0 for the first line), so
 *                        a position is the number of lines done; version as
 *                        the line says, else pos + 1. A pipe (path "-")
 *                        cannot be rewound: it counts its lines from the
 *                        position it is started at.
 *   redis stream         pos = MS << 20 | SEQ of the entry id MS-SEQ, so
 *                        positions grow with ids and are sparse; version
 *                        as the entry's version field says, else pos + 1.

 *   kafka                pos = the message's offset in its partition;
 *                        version as a header says, else offset + 1.
 *                        Offsets that carry no message (transaction
 *                        markers, aborted or compacted records) are
 *                        skipped: `next` moves past them.
 *
 * A source is used by one thread at a time.
 */
#ifndef SLUICE_EVENT_SOURCE_H
#define SLUICE_EVENT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_event_op {
	SL_EVENT_SET = 1,    /* "set": the key holds value (first write) */
	SL_EVENT_UPDATE = 2, /* "update": the key holds value */
	SL_EVENT_DELETE = 3  /* "delete": the key is gone (no value) */
} sl_event_op;

/* "set", "update", "delete". */
const char *sl_event_op_name(sl_event_op op);
/* SL_EINVAL for anything else. */
int sl_event_op_parse(sl_event_op *out, const char *name);

/* One event. key and value are owned by the batch that holds it. A key is
 * never empty and holds no NUL byte; it need not be valid UTF-8 (a source
 * passes on what it was given, and the sink refuses what it cannot
 * store). */
typedef struct sl_event {
	uint64_t pos;
	sl_event_op op;
	char *key; /* NUL-terminated, key_len bytes */
	size_t key_len;
	uint8_t *value; /* NULL for a delete; never NULL for a set or update,
	                   even an empty one */
	size_t value_len;
	uint64_t version; /* > 0 */
} sl_event;

typedef struct sl_event_batch {
	sl_event *events;
	size_t n, cap;
	size_t bytes; /* sum of key_len + value_len */
} sl_event_batch;

void sl_event_batch_init(sl_event_batch *b);
/* Frees every event (keeps the array for reuse). */
void sl_event_batch_clear(sl_event_batch *b);
void sl_event_batch_free(sl_event_batch *b);
/* Appends a copy of key and value. SL_ENOMEM, or SL_EINVAL for an empty
 * key, a key with a NUL byte, version 0, or a delete with a value. */
int sl_event_batch_add(sl_event_batch *b, uint64_t pos, sl_event_op op, const char *key,
                       size_t key_len, const void *value, size_t value_len, uint64_t version);

/* What a source knows of where it ends, for status and lag. */
typedef struct sl_event_source_head {
	uint64_t end; /* the position after the last event known to exist */
	int known;    /* 0: the source cannot tell (a pipe) */
} sl_event_source_head;

typedef struct sl_event_source_ops {
	const char *kind; /* "node", "store", "ndjson", "redis" */
	/* Appends to out the events at positions >= from, in order: at most
	 * max_events (>= 1, else SL_EINVAL), stopping once out->bytes reaches
	 * max_bytes (but at least one event when one is there). When none is
	 * there yet it waits up to wait_ms for one. *next is where the
	 * following read starts. SL_OK with no event and *at_end = 1: a finite
	 * source (a file, standard input at its end) has nothing past `from`;
	 * with *at_end = 0: nothing yet (a store or a node always says 0; its
	 * head tells how far it goes). *at_end is 0 whenever events are
	 * returned. A read that meets an error after it appended events may
	 * return them (SL_OK, *next at the failing position), and the next
	 * read meets the error; a read that returns an error appended nothing.
	 * Errors:
	 *   SL_ECORRUPT  the input at a position is not an event: the message
	 *                names the position and what is wrong (a mirror stops);
	 *   SL_EVERIFY   a remote source proved false (a frame, a target, a
	 *                rewritten history): nothing of it was returned;
	 *   SL_EINVAL    `from` cannot be read (pruned, past the end);
	 *   SL_ENOTFOUND a gap: a source that keeps only a window (a Redis
	 *                stream, a Kafka partition) removed events at or after
	 *                `from` before they were read; *next is the first
	 *                position after what was removed (> from), nothing was
	 *                appended, and the message says what was lost. Reading
	 *                from *next goes on past the gap;
	 *   other        transient (network, server; SL_EBUSY when a node
	 *                asked to slow down): read again later. */
	int (*read)(void *self, uint64_t from, size_t max_events, size_t max_bytes,
	            uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end);
	int (*head)(void *self, sl_event_source_head *out);
	/* What must be saved with a position so that a later run can check the
	 * source did not change behind it (a remote node: the size and root of
	 * the target its events were verified against), as text of at most
	 * SL_EVENT_SOURCE_STATE_MAX bytes, or "" for none. */
	int (*save_state)(void *self, char *out, size_t cap);
	/* Given what save_state returned in an earlier run (never called for
	 * ""), before the first read. SL_EVERIFY when the source no longer
	 * extends it; SL_ECORRUPT when it is not such a text. */
	int (*restore_state)(void *self, const char *state);
	void (*close)(void *self);
} sl_event_source_ops;

#define SL_EVENT_SOURCE_STATE_MAX 256

typedef struct sl_event_source {
	const sl_event_source_ops *ops;
	void *self;
	/* Identifies the source in the mirror's position table, e.g.
	 * "node:http://127.0.0.1:8080/events" (set by open). */
	char name[512];
} sl_event_source;

void sl_event_source_close(sl_event_source *s); /* NULL or closed ok */

/* NDJSON (docs/cli.md, "Mirror sources"): one JSON object per line with "key"
 * (text), and optionally "op" ("set" default, "update", "delete"), "value"
 * (text) or "value_b64" (base64), and "version" (a positive integer).
 * Blank lines are positions without events. path "-" is standard input. */
int sl_ndjson_source_open(sl_event_source *out, const char *path);
/* Parses one line (without its newline) into an event at pos; a blank
 * line adds nothing (SL_OK). SL_ECORRUPT names the line (pos + 1) and what
 * is wrong; nothing is added then. Exposed for fuzzing. */
int sl_ndjson_event_parse(sl_event_batch *out, uint64_t pos, const char *line, size_t len);

/* A namespace (immutable or mutable) of a store directory, opened
 * read-only; new commits by other processes are seen. */
int sl_store_source_open(sl_event_source *out, const char *store_dir, const char *ns);

/* A namespace of a remote node: every operation comes in a frame whose
 * range proof is checked against the node's target, signed by trust_key
 * when it is not NULL, and a new target is taken only after a consistency
 * proof from the one before (as `sluice sync` does). New commits are
 * awaited with the target endpoint's long poll. */
typedef struct sl_node_source_options {
	const char *url; /* "http://HOST:PORT" or "HOST:PORT" */
	const char *ns;
	const uint8_t *trust_key;    /* SL_ED25519_PK_LEN bytes, or NULL */
	unsigned request_timeout_ms; /* default 10000 */
	uint32_t frame_ops;          /* operations per request, default 1000 */
} sl_node_source_options;

void sl_node_source_options_init(sl_node_source_options *o);
int sl_node_source_open(sl_event_source *out, const sl_node_source_options *o);

/* A Redis stream (Redis 7 or later: the gap check needs XINFO STREAM's
 * max-deleted-entry-id, entries-added and recorded-first-entry-id). Every
 * entry is an event, mapped by its fields:
 *   key_field      the key (required; not empty, no NUL byte);
 *   op_field       "set", "update" or "delete"; absent: "set";
 *   value_field    the value's bytes as they are; absent: an empty value.
 *                  A delete takes none;
 *   version_field  when set, a decimal integer > 0, required in every
 *                  entry; when NULL or "", the version is pos + 1.
 * Other fields are ignored. Nothing is written to Redis (no consumer
 * group). Entries removed by XTRIM, MAXLEN, MINID or XDEL before they were
 * read are a gap (SL_ENOTFOUND from read, see above). Telling a trim that
 * took unread entries from one that took only read ones needs the number
 * of entries added before the position: save_state gives it for the last
 * few positions the source met, *next among them ("POS:COUNT ...", newest
 * first; "" before the first read). From a position whose count the
 * source does not know (set by hand, or part of a batch committed alone
 * after a restart) that a trim has passed, the read reports a gap whose
 * message says it may hold no entry. A
 * missing key is an empty stream; a key of another type is SL_EINVAL.
 * Redis is first asked at the first read or head, and a lost connection
 * is made again at the next one; wrong credentials are SL_EAUTH. Name:
 * "redis:HOST:PORT/DB/STREAM" (no user or password). */
typedef struct sl_redis_source_options {
	const char *url;           /* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] */
	const char *stream;        /* the stream's key */
	const char *key_field;     /* default "key" */
	const char *op_field;      /* default "op" */
	const char *value_field;   /* default "value" */
	const char *version_field; /* default NULL: version = pos + 1 */
	unsigned timeout_ms;       /* per command and connect, default 10000 */
} sl_redis_source_options;

void sl_redis_source_options_init(sl_redis_source_options *o);
/* SL_EINVAL for a bad url, no stream, or two fields with one name. */
int sl_redis_source_open(sl_event_source *out, const sl_redis_source_options *o);

/* Appends the event of the entry `id` whose fields and values are
 * fields[0], fields[1], ... (n_fields_and_values of them, lens[i] bytes
 * each: field, value, field, value), mapped as the options say (NULL or ""
 * names take the defaults). SL_ECORRUPT, with a message that starts
 * "stream entry " and names the id, when the id has no position or the
 * fields do not map (an odd count, a mapped field twice, no key, an
 * unknown op, a delete with a value, a bad version); nothing is added
 * then. SL_EINVAL when two of the options' fields have one name. Exposed
 * for fuzzing. */
int sl_redis_entry_parse(sl_event_batch *out, const char *id, const char *const *fields,
                         const size_t *lens, size_t n_fields_and_values,
                         const sl_redis_source_options *o);

/* Room for an entry id's text: two decimals of up to 20 digits, '-', NUL. */
#define SL_REDIS_ID_MAX 48

/* The position of the entry id "MS-SEQ" (decimals without leading zeros,
 * as Redis writes them): MS << 20 | SEQ. SL_ECORRUPT for anything else,
 * for SEQ >= 2^20 or MS >= 2^44 (no position), and for the one id whose
 * position would be 2^64 - 1 (no position after it). */
int sl_redis_id_to_pos(uint64_t *out, const char *id);
/* The entry id of a position, into out (cap >= SL_REDIS_ID_MAX). */
void sl_redis_pos_to_id(char *out, size_t cap, uint64_t pos);

/* The events of inner whose key falls in partition index of count
 * (sl_event_key_partition), at inner's positions; the others are passed
 * over. On success inner is taken over (closed with out; *inner is zeroed);
 * on failure it is left as it was. The name is inner's with
 * "#part=INDEX/COUNT" after it. SL_EINVAL unless index < count. */
int sl_partition_source_open(sl_event_source *out, sl_event_source *inner, unsigned index,
                             unsigned count);
/* The partition of a key: FNV-1a 64 of its bytes modulo count (0 when
 * count is 0). Stable: positions are stored under it. */
unsigned sl_event_key_partition(const char *key, size_t len, unsigned count);

/* One partition of a Kafka topic (through librdkafka). The key is the
 * message's key (a message without one, or with a NUL byte in it, is
 * SL_ECORRUPT). The operation is the op header's value ("set", "update" or
 * "delete"); without that header a message with a value is a set and one
 * with a null value (a tombstone) a delete. A delete's value must be null
 * or empty. The version is offset + 1, or the version header's value (a
 * positive decimal integer of at most 2^63 - 1) when one is named. A
 * header named op_header or version_header may appear once; a header's
 * null value is an error.
 *
 * The position lives in PostgreSQL with what the mirror applied; nothing
 * is committed to Kafka. The consumer is assigned the one partition at the
 * position a read asks for (no group membership: librdkafka's assign needs
 * a group.id, which is set but never joined or written), reads with
 * isolation.level=read_committed, and never moves by itself: a position
 * the partition no longer holds (deleted by retention, or compacted away
 * before it was read) is a gap (SL_ENOTFOUND, with next at the partition's
 * start and a message naming the offsets lost; so is position 0 of a
 * partition whose log no longer starts there), and one past its end is
 * SL_EINVAL (the topic was recreated). head() is the high watermark.
 *
 * Tested only against librdkafka's mock cluster (rdkafka_mock.h), not a
 * real broker: no Kafka broker is packaged for the test machines. */
typedef struct sl_kafka_source_options {
	const char *brokers; /* bootstrap.servers, "HOST:PORT[,HOST:PORT...]" */
	const char *topic;
	int32_t partition; /* one source per partition; default 0 */
	/* The header that holds the operation; default "op"; "" for none
	 * (the value alone decides: set, or delete for a null value). */
	const char *op_header;
	/* NULL or "" (default): version = offset + 1; else the header that
	 * holds it. */
	const char *version_header;
	/* Each request to the cluster (socket.timeout.ms, at least 1500),
	 * and each watermark or metadata query; default 10000. */
	unsigned timeout_ms;
	/* NULL or a NULL-terminated list of "name=value" librdkafka settings
	 * (security.protocol, sasl.*, ssl.*, client.id, group.id, ...). The
	 * settings the source depends on cannot be changed (bootstrap.servers,
	 * enable.auto.commit, enable.auto.offset.store, auto.offset.reset,
	 * enable.partition.eof, isolation.level, allow.auto.create.topics):
	 * SL_EINVAL. */
	const char *const *extra_config;
} sl_kafka_source_options;

void sl_kafka_source_options_init(sl_kafka_source_options *o);
/* Checks the topic and partition exist (metadata): SL_EINVAL when they do
 * not or an option is wrong; SL_EIO or SL_ETIMEOUT when the cluster cannot
 * be reached. The source is named "kafka:BROKERS/TOPIC/PARTITION". */
int sl_kafka_source_open(sl_event_source *out, const sl_kafka_source_options *o);
/* The topic's partition count from the cluster's metadata: SL_ENOTFOUND
 * for no such topic, SL_EIO or SL_ETIMEOUT when the cluster cannot be
 * reached. extra_config as above; timeout_ms 0 is the default. */
int sl_kafka_partitions(int32_t *n, const char *brokers, const char *topic,
                        const char *const *extra_config, unsigned timeout_ms);

/* A message as the source sees it, for sl_kafka_message_parse. */
typedef struct sl_kafka_header {
	const char *name;  /* NUL-terminated */
	const void *value; /* NULL: a null value */
	size_t value_len;
} sl_kafka_header;

typedef struct sl_kafka_message {
	uint64_t offset;
	const void *key; /* NULL: no key */
	size_t key_len;
	const void *value; /* NULL: a null value (a tombstone); value_len 0 */
	size_t value_len;
	const sl_kafka_header *headers; /* those not named in the options are
	                                   ignored */
	size_t n_headers;
} sl_kafka_message;

/* The message as an event at its offset, appended to out, by the rules
 * above (o: only op_header and version_header are read). SL_ECORRUPT, with
 * nothing added, when it is not one: the message starts "offset N: " and
 * says what is wrong. Exposed for fuzzing. */
int sl_kafka_message_parse(sl_event_batch *out, const sl_kafka_message *m,
                           const sl_kafka_source_options *o);

#ifdef __cplusplus
}
#endif
#endif
