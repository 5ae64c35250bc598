/*
 * Fuzz target for the mirror's configuration file: the mapping of TOML
 * onto cli_mirror_config (cli_mirror_config_parse, src/cli/mirror_config.c)
 * over the TOML reader (fuzzed on its own by toml_fuzz). The apply_sql file
 * is not read (base_dir NULL), so the input is the only thing looked at.
 *
 * Input layout: the whole input is the file's text (not NUL-terminated).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: a
 * failed parse is SL_EINVAL or SL_ETOOLARGE with a message that names the
 * file; a parsed config has what its source type needs and nothing another
 * type takes (node: a valid namespace and exactly one of url and dir, a
 * trust key only with url; ndjson: a path; redis: a url and a stream; kafka: brokers and a topic,
 * settings of name=value), a PostgreSQL URL, workers in range, every string it points to one of the
 * strings it owns, every number within the range its key allows, the retry bounds in order, and the
 * config parse agrees with the reader about whether the text is TOML at all.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mirror_config.h"
#include "cli/toml.h"
#include "sluice/store.h"

#define FUZZ_NAME "mirror_config_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* s is NULL or one of the config's own strings, non-empty. */
static int owned(const cli_mirror_config *c, const char *s)
{
	if (s == NULL)
		return 1;
	for (size_t i = 0; i < c->n_strings; i++)
		if (c->strings[i] == s)
			return s[0] != '\0';
	return 0;
}

static void check_source(const cli_mirror_config *c)
{
	switch (c->source_type) {
	case CLI_MIRROR_SOURCE_NODE:
		if (c->source_ns == NULL || sl_ns_name_validate(c->source_ns) != SL_OK)
			die("a node source without a valid namespace");
		if ((c->source_url == NULL) == (c->source_dir == NULL))
			die("a node source without exactly one of url and dir");
		if (c->has_trust_key && c->source_url == NULL)
			die("a trust key without a url");
		if (c->source_path != NULL)
			die("a node source with a path");
		break;
	case CLI_MIRROR_SOURCE_NDJSON:
		if (c->source_path == NULL)
			die("an ndjson source without a path");
		if (c->source_url || c->source_dir || c->source_ns || c->has_trust_key)
			die("an ndjson source with a node's settings");
		break;
	case CLI_MIRROR_SOURCE_REDIS:
		if (c->source_url == NULL || c->source_stream == NULL ||
		    c->redis.url != c->source_url || c->redis.stream != c->source_stream)
			die("a redis source without its url and stream");
		if (c->source_dir || c->source_ns || c->source_path || c->has_trust_key)
			die("a redis source with another type's settings");
		if (!owned(c, c->redis.key_field) || !owned(c, c->redis.op_field) ||
		    !owned(c, c->redis.value_field) || !owned(c, c->redis.version_field))
			die("a redis field name the config does not own");
		break;
	case CLI_MIRROR_SOURCE_KAFKA:
		if (c->source_brokers == NULL || c->source_topic == NULL ||
		    c->kafka.brokers != c->source_brokers || c->kafka.topic != c->source_topic)
			die("a kafka source without its brokers and topic");
		if (c->source_url || c->source_dir || c->source_ns || c->source_path ||
		    c->has_trust_key || c->workers != 1)
			die("a kafka source with another type's settings, or workers");
		for (size_t i = 0; c->kafka_settings[i]; i++)
			if (i + 1 >= sizeof(c->kafka_settings) / sizeof(c->kafka_settings[0]) ||
			    !owned(c, c->kafka_settings[i]) || !strchr(c->kafka_settings[i], '='))
				die("a kafka setting that is not the config's own name=value");
		break;
	default:
		die("a config without a source type");
	}
}

static void check_config(const cli_mirror_config *c)
{
	const sl_mirror_options *o = &c->mirror;

	if (c->workers < 1 || c->workers > CLI_MIRROR_WORKERS_MAX)
		die("workers out of range");
	if (o->on_gap != SL_MIRROR_GAP_STOP && o->on_gap != SL_MIRROR_GAP_CONTINUE)
		die("an on_gap that is neither");
	if (c->n_strings > sizeof(c->strings) / sizeof(c->strings[0]))
		die("more strings than the config has room for");
	if (!owned(c, c->source_url) || !owned(c, c->source_dir) || !owned(c, c->source_ns) ||
	    !owned(c, c->source_path) || !owned(c, o->pg_url) || !owned(c, c->apply_sql_path))
		die("a string the config does not own, or an empty one");
	if (o->table != NULL && o->table[0] == '\0')
		die("an empty table name");
	check_source(c);
	if (o->pg_url == NULL)
		die("a config without a PostgreSQL URL");
	if (o->apply_sql != NULL)
		die("apply_sql read although no directory was given");
	if (o->delete_removes != 0 && o->delete_removes != 1)
		die("deletes neither tombstone nor remove");
	if (o->timeout_ms < 100 || o->timeout_ms > 3600000)
		die("[postgres] timeout_ms out of range");
	if (o->batch_size < 1 || o->batch_size > 1000000 || o->batch_bytes < 1 ||
	    o->batch_bytes > ((size_t)1 << 30) || o->batch_ms < 1 || o->batch_ms > 600000)
		die("a batch bound out of range");
	if (o->max_attempts < 1 || o->max_attempts > 1000)
		die("[mirror] max_attempts out of range");
	if (o->retry_base_ms < 1 || o->retry_base_ms > o->retry_max_ms ||
	    o->retry_max_ms > 86400000)
		die("retry bounds out of range or order");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cli_toml_doc doc;
	cli_mirror_config cfg;
	int toml_rc, config_rc;

	toml_rc = cli_toml_parse(&doc, NULL, (const char *)data, size);
	if (toml_rc == SL_OK)
		cli_toml_free(&doc);

	config_rc = cli_mirror_config_parse(&cfg, "fuzz.toml", (const char *)data, size, NULL);
	if (config_rc == SL_OK) {
		if (toml_rc != SL_OK)
			die("a config parsed from text the TOML reader refuses");
		check_config(&cfg);
		cli_mirror_config_free(&cfg);
		cli_mirror_config_free(&cfg); /* zeroed: a second free is a no-op */
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
