/* The mirror's configuration file (TOML), for the `sluice mirror` commands:
 *
 *   [source]    type = "node" | "ndjson" | "redis";
 *               node: url (a remote node) or dir (a local store), namespace,
 *               trust_key (with url only: 64 hex digits, Ed25519);
 *               ndjson: path (a file, or "-" for stdin);
 *               redis: url, stream, key_field, op_field, value_field,
 *               version_field;
 *               kafka: brokers, topic, op_header, version_header,
 *               kafka_config ("name=value;..." librdkafka settings);
 *               name (any type: what the position is stored under, instead
 *               of the source's own name)
 *   [postgres]  url (required), table, apply_sql (a file of SQL run once per
 *               batch, relative to the config file's directory), deletes =
 *               "tombstone" | "remove", timeout_ms
 *   [mirror]    batch_size, batch_bytes, batch_ms, max_attempts,
 *               retry_base_ms, retry_max_ms, metrics_port, on_gap = "stop" |
 *               "continue", workers (mirrors at once, each owning the keys
 *               whose hash falls in its partition)
 *
 * docs/cli.md ("sluice mirror") lists every key with its default. Errors
 * name the file, the line and the key, as the other configs' do.
 */
#ifndef SLUICE_CLI_MIRROR_CONFIG_H
#define SLUICE_CLI_MIRROR_CONFIG_H

#include <stdint.h>

#include "sluice/base.h"
#include "sluice/event_source.h"
#include "sluice/mirror.h"

/* The most workers one mirror runs, and the most partitions of a topic. */
#define CLI_MIRROR_WORKERS_MAX          64
#define CLI_MIRROR_KAFKA_PARTITIONS_MAX 256

/* The largest apply_sql file. */
#define CLI_MIRROR_SQL_MAX ((size_t)1 << 20)

typedef enum cli_mirror_source_type {
	CLI_MIRROR_SOURCE_NODE = 1,   /* source_url or source_dir, with source_ns */
	CLI_MIRROR_SOURCE_NDJSON = 2, /* source_path */
	CLI_MIRROR_SOURCE_REDIS = 3,  /* redis: source_url, source_stream */
	CLI_MIRROR_SOURCE_KAFKA = 4   /* kafka: source_brokers, source_topic */
} cli_mirror_source_type;

typedef struct cli_mirror_config {
	cli_mirror_source_type source_type;
	char *source_url, *source_dir, *source_ns, *source_path; /* NULL when not set */
	char *source_stream;
	sl_redis_source_options redis; /* type = "redis" */
	char *source_brokers, *source_topic;
	sl_kafka_source_options kafka; /* type = "kafka" (partition and extra_config
	                                  set where it is opened) */
	char *kafka_settings[17];      /* kafka_config split, NULL-terminated */
	char *source_name; /* [source] name: the position's key, else the source's own */
	int has_trust_key;
	uint8_t trust_key[SL_ED25519_PK_LEN];
	/* pg_url, table, delete_removes, apply_sql (the file's text), batch
	 * and retry settings, timeout_ms; the rest is for the command to set. */
	sl_mirror_options mirror;
	char *apply_sql_path;  /* as resolved, or NULL */
	uint16_t metrics_port; /* 0: no metrics unless -m */
	unsigned workers;      /* [mirror] workers, default 1 */
	char *strings[48];     /* what the pointers above point into */
	size_t n_strings;
} cli_mirror_config;

/* Reads and checks path, and the apply_sql file it names. SL_OK, or
 * SL_EINVAL (SL_ETOOLARGE: the config file is too large) with a message
 * naming the file, the line and the key; reading the config file itself
 * fails as cli_read_file does. *out is set only on success. */
int cli_mirror_config_load(cli_mirror_config *out, const char *path);

/* The same from text; `name` stands for the file in messages. apply_sql is
 * read relative to base_dir; with base_dir NULL it is not read (its path
 * is kept, mirror.apply_sql stays NULL): for the fuzz target. */
int cli_mirror_config_parse(cli_mirror_config *out, const char *name, const char *text, size_t len,
                            const char *base_dir);

void cli_mirror_config_free(cli_mirror_config *c); /* zeroes *c; twice is fine */

#endif
