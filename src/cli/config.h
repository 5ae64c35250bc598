/* The pipeline configuration file (TOML), laid out like recall-synchronizer's,
 * whose own config.example.toml loads once a [destination] is added:
 *
 *   [database]      url, table, max_connections; mode, slot, publication
 *                   (the changes mode)
 *   [database.columns]  id, object_key, competition_id, agent_id, data_type,
 *                   data, size_bytes, created_at, bucket_name, content_hash
 *                   (column names)
 *   [sync_storage]  db_path
 *   [sync]          state_db_path (= [sync_storage] db_path), batch_size,
 *                   concurrency, max_attempts, retry_base_seconds,
 *                   retry_max_seconds, part_size_mb
 *   [s3]            the source bucket (S3 mode): endpoint, region, bucket,
 *                   access_key_id, secret_access_key, path_style
 *   [recall]        recall-synchronizer's Recall network settings: any keys,
 *                   not read (one line on stderr says so, per load)
 *   [destination]   type = "s3" | "dir" | "node", then
 *                     dir:  path
 *                     s3:   endpoint, region, bucket, prefix, access_key_id,
 *                           secret_access_key, path_style
 *                     node: store (a local store directory) or url + token_file,
 *                           and namespace
 *
 * config.example.toml documents every key with its default. Secrets may
 * come from the environment instead: SLUICE_DATABASE_URL for [database] url,
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for both S3 sections' keys. A
 * value in the file wins over the environment.
 *
 * Every error names the file, the line and the key:
 *   "sluice.toml:7: [sync] batch_size: expected an integer, got a string"
 *   "sluice.toml:12: [destination] colour: unknown key"
 *   "sluice.toml: [database] url: missing (set it or SLUICE_DATABASE_URL)"
 */
#ifndef SLUICE_CLI_CONFIG_H
#define SLUICE_CLI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/connect.h"

typedef enum cli_dest_type { CLI_DEST_DIR = 1, CLI_DEST_S3 = 2, CLI_DEST_NODE = 3 } cli_dest_type;

typedef struct cli_config {
	char *path; /* the file read */

	/* [database] and [database.columns]: strings owned by the config,
	 * pointed at by pg.* (pg.s3_mode is set when [s3] is present). */
	sl_pg_config pg;
	/* max_connections, 1..1000; 0 when not set (no bound). The PostgreSQL
	 * connections a run opens: cli_config_pg_connections_reserved, and in
	 * direct mode one fetcher per worker, so a run's concurrency is cut
	 * to fit (pipeline_setup.c). */
	uint32_t max_connections;
	/* For the changes mode, which reads the table's changes from a
	 * logical replication slot instead of polling: mode = "poll" (default,
	 * 0) or "changes" (1); slot, by default "sluice_" + the table's name without
	 * its schema, lower-cased, other than [a-z0-9_] made '_', at most 63
	 * bytes (a given one must be ^[a-z0-9_]{1,63}$); publication, by
	 * default the slot's name (at most 63 bytes, no control characters). */
	int changes_mode;
	char *slot;
	char *publication;

	/* [sync_storage] db_path or [sync] state_db_path: one is required;
	 * both must agree */
	char *state_path;

	/* [sync] */
	size_t batch_size;      /* default 1000, 1..100000 */
	size_t concurrency;     /* default 16, 1..256 */
	uint32_t max_attempts;  /* default 5, 1..1000 */
	uint64_t retry_base_ms; /* retry_base_seconds, default 1 s */
	uint64_t retry_max_ms;  /* retry_max_seconds, default 3600 s */
	size_t part_size;       /* part_size_mb, default 8 MiB, 5..1024 MiB */

	/* [s3]: the source bucket; has_source_s3 when the table is present. */
	int has_source_s3;
	sl_s3_config source_s3;

	/* [destination] */
	cli_dest_type dest_type;
	char *dest_dir;       /* dir: path */
	sl_s3_config dest_s3; /* s3 */
	char *node_store;     /* node: store (local), or */
	char *node_url;       /*       url + */
	char *node_token;     /*       the token read from token_file (trailing newline cut) */
	char *node_namespace; /*       namespace (required) */

	/* everything the pointers above point into */
	char **owned;
	size_t n_owned;
} cli_config;

/* Reads and checks path. On error returns SL_EINVAL (or SL_ENOTFOUND for a
 * missing file, SL_EIO for an unreadable one) with the message set as
 * above, and leaves *out zeroed. The S3 configs get the [sync] concurrency
 * and part size. */
int cli_config_load(cli_config *out, const char *path);
/* Same, from text in memory; `name` stands for the file in messages. */
int cli_config_parse(cli_config *out, const char *name, const char *text, size_t len);
void cli_config_free(cli_config *c); /* zeroes *c; NULL ok */

/* The PostgreSQL connections a run opens besides its workers' fetchers:
 * the source's, and in changes mode the replication stream's and its
 * control session's. */
size_t cli_config_pg_connections_reserved(const cli_config *c);

#endif
