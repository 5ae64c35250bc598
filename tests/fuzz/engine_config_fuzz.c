/*
 * Fuzz target for the engine's configuration file: the mapping of TOML
 * onto cli_engine_config (cli_engine_config_parse, src/cli/engine_config.c)
 * over the TOML reader (fuzzed on its own by toml_fuzz).
 *
 * Input layout: the whole input is the file's text (not NUL-terminated).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: a
 * failed parse is SL_EINVAL or SL_ETOOLARGE with a message that names the
 * file; a parsed config has everything the engine needs (a WAL directory,
 * the L3 settings of its type, a listen address), every string it points
 * to is one of the strings it owns, every number within the range the key
 * allows, and the config parse agrees with the reader about whether the
 * text is TOML at all.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/engine_config.h"
#include "cli/toml.h"

#define FUZZ_NAME "engine_config_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* s is NULL or one of the config's own strings, non-empty. */
static int owned(const cli_engine_config *c, const char *s)
{
	if (s == NULL)
		return 1;
	for (size_t i = 0; i < c->n_strings; i++)
		if (c->strings[i] == s)
			return s[0] != '\0';
	return 0;
}

static void check_config(const cli_engine_config *c)
{
	const sl_engine_config *e = &c->engine;
	const size_t max_strings = sizeof(c->strings) / sizeof(c->strings[0]);

	if (c->n_strings > max_strings)
		die("more strings than the config has room for");
	if (!owned(c, c->listen) || !owned(c, c->token_file) || !owned(c, e->wal_dir) ||
	    !owned(c, e->l3_dir) || !owned(c, e->l3_namespace) || !owned(c, e->l3_url) ||
	    !owned(c, e->l3_table))
		die("a string the config does not own, or an empty one");
	if (c->listen == NULL || e->wal_dir == NULL)
		die("a config without a listen address or a WAL directory");
	if (e->l3_type == SL_L3_STORE ? e->l3_dir == NULL || e->l3_namespace == NULL
	    : e->l3_type == SL_L3_POSTGRESQL || e->l3_type == SL_L3_MYSQL
	            ? e->l3_url == NULL || e->l3_table == NULL
	            : 1)
		die("an L3 type without its settings");
	if (c->threads < 1 || c->threads > 256)
		die("[server] threads out of range");
	if (e->wal_segment_bytes < ((uint64_t)1 << 20) ||
	    e->wal_segment_bytes > ((uint64_t)4096 << 20) || e->wal_max_bytes < ((uint64_t)1 << 20))
		die("a [wal] size out of range");
	if (e->l1_shards < 1 || e->l1_shards > 65536 || (e->l1_shards & (e->l1_shards - 1)))
		die("[l1] shards out of range or not a power of two");
	if (e->batch_items < 1 || e->batch_items > 1000000 || e->batch_bytes < 1 ||
	    e->batch_ms < 1 || e->batch_ms > 600000)
		die("a [batch] value out of range");
	if (e->filter_fp_bits < 12 || e->filter_fp_bits > 16 || e->filter_capacity < 1024)
		die("a [filter] value out of range");
	if (!(e->pressure_warn > 0 && e->pressure_warn <= e->pressure_throttle &&
	      e->pressure_throttle <= e->pressure_reject && e->pressure_reject <= 1.0))
		die("[backpressure] percentages out of order or range");
	if (e->value_max < 1 || e->value_max > SL_ENGINE_VALUE_MAX)
		die("[limits] value_max_bytes out of range");
	if (e->l3_timeout_ms < 100 || e->l3_max_attempts < 1 || e->l3_ack_timeout_ms < 1)
		die("an [l3] value out of range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cli_toml_doc doc;
	cli_engine_config cfg;
	int toml_rc, config_rc;

	toml_rc = cli_toml_parse(&doc, NULL, (const char *)data, size);
	if (toml_rc == SL_OK)
		cli_toml_free(&doc);

	config_rc = cli_engine_config_parse(&cfg, "fuzz.toml", (const char *)data, size);
	if (config_rc == SL_OK) {
		if (toml_rc != SL_OK)
			die("a config parsed from text the TOML reader refuses");
		check_config(&cfg);
		cli_engine_config_free(&cfg);
		cli_engine_config_free(&cfg); /* zeroed: a second free is a no-op */
	} else {
		if (config_rc != SL_EINVAL && config_rc != SL_ETOOLARGE)
			die("the config parse failed with an unexpected code");
		if (sl_error_last()->code != config_rc)
			die("the error recorded is not the one returned");
		if (strncmp(sl_error_last()->message, "fuzz.toml", 9) != 0)
			die("a config error does not name the file");
		if (toml_rc == SL_OK && config_rc == SL_ETOOLARGE)
			die("a config too large for text the TOML reader accepts");
	}
	return 0;
}
