/* The engine's configuration file (TOML), for `sluice engine serve` and
 * `sluice engine status`:
 *
 *   [server]        listen, port, metrics_port, threads, token_file
 *   [wal]           dir (required), segment_mb, max_mb, max_age_ms
 *   [l3]            type = "store" | "postgresql";
 *                   store: dir, namespace; postgresql: url, table;
 *                   timeout_ms, max_attempts, ack_timeout_ms
 *   [l1]            budget_mb, shards
 *   [batch]         items, bytes, ms
 *   [filter]        capacity, fp_bits
 *   [backpressure]  warn_percent, throttle_percent, reject_percent,
 *                   throttle_wait_ms
 *   [limits]        value_max_bytes
 *
 * docs/cli.md ("sluice engine") lists every key with its default. Errors
 * name the file, the line and the key, as the pipeline's config does.
 */
#ifndef SLUICE_CLI_ENGINE_CONFIG_H
#define SLUICE_CLI_ENGINE_CONFIG_H

#include "sluice/engine.h"

typedef struct cli_engine_config {
	sl_engine_config engine; /* strings point into `strings` */
	char *listen;
	uint16_t port, metrics_port;
	unsigned threads;
	char *token_file;
	char *strings[16];
	size_t n_strings;
} cli_engine_config;

int cli_engine_config_load(cli_engine_config *out, const char *path);
int cli_engine_config_parse(cli_engine_config *out, const char *name, const char *text, size_t len);
void cli_engine_config_free(cli_engine_config *c);

#endif
