/* The engine's configuration file (engine_config.h). One table of keys
 * drives everything: each names where its value goes and its range, so a
 * new key is one line. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_config.h"
#include "cli/toml.h"
#include "connect/server_url.h"

#define MIB (UINT64_C(1) << 20)

typedef enum kind {
	K_STRING,  /* char * into the config's strings */
	K_U64,     /* uint64_t */
	K_UINT,    /* unsigned */
	K_SIZE,    /* size_t */
	K_PORT,    /* uint16_t */
	K_MIB,     /* uint64_t, given in MiB */
	K_PERCENT, /* double, given in whole percent */
	K_L3TYPE   /* sl_l3_type, "store" | "postgresql" | "mysql" */
} kind;

typedef struct key_spec {
	const char *table, *key;
	kind kind;
	size_t offset; /* in cli_engine_config */
	int64_t min, max;
} key_spec;

#define E(field) offsetof(cli_engine_config, engine.field)
#define C(field) offsetof(cli_engine_config, field)

static const key_spec keys[] = {
        {"server", "listen", K_STRING, C(listen), 0, 0},
        {"server", "port", K_PORT, C(port), 0, 65535},
        {"server", "metrics_port", K_PORT, C(metrics_port), 0, 65535},
        {"server", "threads", K_UINT, C(threads), 1, 256},
        {"server", "token_file", K_STRING, C(token_file), 0, 0},
        {"wal", "dir", K_STRING, E(wal_dir), 0, 0},
        {"wal", "segment_mb", K_MIB, E(wal_segment_bytes), 1, 4096},
        {"wal", "max_mb", K_MIB, E(wal_max_bytes), 1, INT64_C(1) << 30},
        {"wal", "max_age_ms", K_UINT, E(wal_max_age_ms), 0, 86400000},
        {"l3", "type", K_L3TYPE, E(l3_type), 0, 0},
        {"l3", "dir", K_STRING, E(l3_dir), 0, 0},
        {"l3", "namespace", K_STRING, E(l3_namespace), 0, 0},
        {"l3", "url", K_STRING, E(l3_url), 0, 0},
        {"l3", "table", K_STRING, E(l3_table), 0, 0},
        {"l3", "timeout_ms", K_UINT, E(l3_timeout_ms), 100, 3600000},
        {"l3", "max_attempts", K_UINT, E(l3_max_attempts), 1, 1000},
        {"l3", "ack_timeout_ms", K_UINT, E(l3_ack_timeout_ms), 1, 3600000},
        {"l2", "url", K_STRING, E(l2_url), 0, 0},
        {"l2", "prefix", K_STRING, E(l2_prefix), 0, 0},
        {"l2", "timeout_ms", K_UINT, E(l2_timeout_ms), 1, 600000},
        {"l2", "connect_timeout_ms", K_UINT, E(l2_connect_timeout_ms), 1, 600000},
        {"l2", "default_ttl_ms", K_U64, E(l2_default_ttl_ms), 0, INT64_C(1) << 40},
        {"l2", "queue_max", K_SIZE, E(l2_queue_max), 1, 100000000},
        {"l2", "pipeline_max", K_SIZE, E(l2_pipeline_max), 1, 100000},
        {"l1", "budget_mb", K_MIB, E(l1_budget_bytes), 1, INT64_C(1) << 30},
        {"l1", "shards", K_UINT, E(l1_shards), 1, 65536},
        {"batch", "items", K_SIZE, E(batch_items), 1, 1000000},
        {"batch", "bytes", K_SIZE, E(batch_bytes), 1, INT64_C(1) << 30},
        {"batch", "ms", K_UINT, E(batch_ms), 1, 600000},
        {"filter", "capacity", K_U64, E(filter_capacity), 1024, INT64_C(1) << 36},
        {"filter", "fp_bits", K_UINT, E(filter_fp_bits), 12, 16},
        {"diff", "max_mb", K_MIB, E(diff_max_bytes), 1, INT64_C(1) << 30},
        {"backpressure", "warn_percent", K_PERCENT, E(pressure_warn), 1, 100},
        {"backpressure", "throttle_percent", K_PERCENT, E(pressure_throttle), 1, 100},
        {"backpressure", "reject_percent", K_PERCENT, E(pressure_reject), 1, 100},
        {"backpressure", "throttle_wait_ms", K_UINT, E(throttle_wait_ms), 0, 60000},
        {"limits", "value_max_bytes", K_SIZE, E(value_max), 1, SL_ENGINE_VALUE_MAX},
        {"breaker.l3", "window", K_UINT, E(l3_breaker.window), 1, 1024},
        {"breaker.l3", "min_calls", K_UINT, E(l3_breaker.min_calls), 1, 1024},
        {"breaker.l3", "failure_percent", K_PERCENT, E(l3_breaker.failure_ratio), 1, 100},
        {"breaker.l3", "consecutive", K_UINT, E(l3_breaker.consecutive), 1, 100000},
        {"breaker.l3", "open_ms", K_UINT, E(l3_breaker.open_ms), 1, 3600000},
        {"breaker.l3", "trial_calls", K_UINT, E(l3_breaker.trial_calls), 1, 1000},
        {"breaker.l2", "window", K_UINT, E(l2_breaker.window), 1, 1024},
        {"breaker.l2", "min_calls", K_UINT, E(l2_breaker.min_calls), 1, 1024},
        {"breaker.l2", "failure_percent", K_PERCENT, E(l2_breaker.failure_ratio), 1, 100},
        {"breaker.l2", "consecutive", K_UINT, E(l2_breaker.consecutive), 1, 100000},
        {"breaker.l2", "open_ms", K_UINT, E(l2_breaker.open_ms), 1, 3600000},
        {"breaker.l2", "trial_calls", K_UINT, E(l2_breaker.trial_calls), 1, 1000},
        {"retry.startup", "base_ms", K_UINT, E(retry_startup.base_ms), 1, 3600000},
        {"retry.startup", "max_ms", K_UINT, E(retry_startup.max_ms), 1, 3600000},
        {"retry.startup", "max_attempts", K_UINT, E(retry_startup.max_attempts), 1, 1000},
        {"retry.startup", "max_elapsed_ms", K_UINT, E(retry_startup.max_elapsed_ms), 0, 86400000},
        {"retry.batch_write", "base_ms", K_UINT, E(retry_batch_write.base_ms), 1, 3600000},
        {"retry.batch_write", "max_ms", K_UINT, E(retry_batch_write.max_ms), 1, 3600000},
        /* the same setting as [l3] max_attempts */
        {"retry.batch_write", "max_attempts", K_UINT, E(l3_max_attempts), 1, 1000},
        {"retry.batch_write", "max_elapsed_ms", K_UINT, E(retry_batch_write.max_elapsed_ms), 0,
         86400000},
        {"retry.drain", "base_ms", K_UINT, E(retry_drain.base_ms), 1, 3600000},
        {"retry.drain", "max_ms", K_UINT, E(retry_drain.max_ms), 1, 3600000},
        {"retry.query", "base_ms", K_UINT, E(retry_query.base_ms), 1, 3600000},
        {"retry.query", "max_ms", K_UINT, E(retry_query.max_ms), 1, 3600000},
        {"retry.query", "max_attempts", K_UINT, E(retry_query.max_attempts), 1, 1000},
        {"retry.query", "max_elapsed_ms", K_UINT, E(retry_query.max_elapsed_ms), 0, 86400000},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const key_spec *spec_of(const cli_toml_entry *e)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].table, e->table) == 0 && strcmp(keys[i].key, e->key) == 0)
			return &keys[i];
	return NULL;
}

/* A table of the list, or the parent of some ([breaker] of [breaker.l3]). */
static int known_table(const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].table, name) == 0 ||
		    (strncmp(keys[i].table, name, len) == 0 && keys[i].table[len] == '.'))
			return 1;
	return 0;
}

static int take(cli_engine_config *c, const char *name, const cli_toml_entry *e, const key_spec *k)
{
	char *field = (char *)c + k->offset;
	int want_string = k->kind == K_STRING || k->kind == K_L3TYPE;
	if (want_string != (e->type == CLI_TOML_STRING))
		return cli_toml_entry_error(name, e, "expected %s, got %s",
		                            want_string ? "a string" : "an integer",
		                            cli_toml_type_name(e->type));
	if (k->kind == K_L3TYPE) {
		if (strcmp(e->str, "store") == 0)
			*(sl_l3_type *)field = SL_L3_STORE;
		else if (strcmp(e->str, "postgresql") == 0)
			*(sl_l3_type *)field = SL_L3_POSTGRESQL;
		else if (strcmp(e->str, "mysql") == 0)
			*(sl_l3_type *)field = SL_L3_MYSQL;
		else
			return cli_toml_entry_error(
			        name, e,
			        "expected \"store\", \"postgresql\" or \"mysql\", got \"%s\"",
			        e->str);
		return SL_OK;
	}
	if (k->kind == K_STRING) {
		if (e->str[0] == '\0')
			return cli_toml_entry_error(name, e, "must not be empty");
		if (c->n_strings == sizeof(c->strings) / sizeof(c->strings[0]))
			return cli_toml_entry_error(name, e, "too many strings");
		char *copy = sl_strdup(e->str);
		if (copy == NULL)
			return SL_ENOMEM;
		c->strings[c->n_strings++] = copy;
		*(char **)field = copy;
		return SL_OK;
	}
	if (e->integer < k->min || e->integer > k->max)
		return cli_toml_entry_error(
		        name, e, "%" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")",
		        e->integer, k->min, k->max);
	uint64_t v = (uint64_t)e->integer;
	switch (k->kind) {
	case K_U64:
		*(uint64_t *)field = v;
		break;
	case K_MIB:
		*(uint64_t *)field = v * MIB;
		break;
	case K_UINT:
		*(unsigned *)field = (unsigned)v;
		break;
	case K_SIZE:
		*(size_t *)field = (size_t)v;
		break;
	case K_PORT:
		*(uint16_t *)field = (uint16_t)v;
		break;
	case K_PERCENT:
		*(double *)field = (double)v / 100.0;
		break;
	default:
		break;
	}
	return SL_OK;
}

/* What the engine would refuse, said in the file's terms. */
static int check(const cli_engine_config *c, const char *name)
{
	const sl_engine_config *e = &c->engine;
	if (e->wal_dir == NULL)
		return sl_error_set(SL_EINVAL, "%s: [wal] dir: missing", name);
	if (e->l3_type == SL_L3_STORE && (e->l3_dir == NULL || e->l3_namespace == NULL))
		return sl_error_set(SL_EINVAL, "%s: [l3] type \"store\" needs dir and namespace",
		                    name);
	if (e->l3_type == SL_L3_POSTGRESQL && (e->l3_url == NULL || e->l3_table == NULL))
		return sl_error_set(SL_EINVAL, "%s: [l3] type \"postgresql\" needs url and table",
		                    name);
	if (e->l2_url) {
		sl_server_url parts;
		if (sl_server_url_parse(&parts, e->l2_url, &sl_server_url_redis) != SL_OK)
			return sl_error_wrap("%s: [l2] url", name);
		sl_server_url_clear(&parts);
	}
	if (e->l3_type == SL_L3_MYSQL && (e->l3_url == NULL || e->l3_table == NULL))
		return sl_error_set(SL_EINVAL, "%s: [l3] type \"mysql\" needs url and table", name);
	if (e->l1_shards & (e->l1_shards - 1))
		return sl_error_set(SL_EINVAL, "%s: [l1] shards: %u is not a power of two", name,
		                    e->l1_shards);
	static const struct {
		const char *table;
		size_t offset;
	} breakers[] = {{"breaker.l3", E(l3_breaker)}, {"breaker.l2", E(l2_breaker)}};
	for (size_t i = 0; i < sizeof(breakers) / sizeof(breakers[0]); i++) {
		const sl_breaker_config *b =
		        (const sl_breaker_config *)((const char *)c + breakers[i].offset);
		if (b->min_calls > b->window)
			return sl_error_set(SL_EINVAL,
			                    "%s: [%s] min_calls: %u is more than window (%u)", name,
			                    breakers[i].table, b->min_calls, b->window);
	}
	static const struct {
		const char *table;
		size_t offset;
	} policies[] = {{"retry.startup", E(retry_startup)},
	                {"retry.batch_write", E(retry_batch_write)},
	                {"retry.drain", E(retry_drain)},
	                {"retry.query", E(retry_query)}};
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		const sl_retry_policy *p =
		        (const sl_retry_policy *)((const char *)c + policies[i].offset);
		if (p->max_ms < p->base_ms)
			return sl_error_set(SL_EINVAL,
			                    "%s: [%s] max_ms: %u is less than base_ms (%u)", name,
			                    policies[i].table, p->max_ms, p->base_ms);
	}
	if (!(e->pressure_warn <= e->pressure_throttle &&
	      e->pressure_throttle <= e->pressure_reject))
		return sl_error_set(SL_EINVAL,
		                    "%s: [backpressure]: warn_percent <= throttle_percent <= "
		                    "reject_percent must hold",
		                    name);
	return SL_OK;
}

int cli_engine_config_parse(cli_engine_config *out, const char *name, const char *text, size_t len)
{
	cli_toml_doc doc;
	cli_engine_config c;
	memset(&c, 0, sizeof(c));
	sl_engine_config_init(&c.engine);
	c.port = 8480;
	c.metrics_port = 9480;
	c.threads = 8;
	int rc = cli_toml_parse(&doc, name, text, len);
	if (rc != SL_OK)
		return rc;
	for (size_t i = 0; rc == SL_OK && i < doc.n_tables; i++)
		if (!known_table(doc.tables[i].name))
			rc = sl_error_set(
			        SL_EINVAL,
			        "%s:%d: [%s]: unknown table (known: [server], [wal], [l2], [l3], "
			        "[l1], [batch], [filter], [backpressure], [limits], "
			        "[breaker.l3], [breaker.l2], [retry.startup], "
			        "[retry.batch_write], [retry.drain], [retry.query])",
			        name, doc.tables[i].line, doc.tables[i].name);
	for (size_t i = 0; rc == SL_OK && i < doc.n_entries; i++) {
		const cli_toml_entry *e = &doc.entries[i];
		const key_spec *k = spec_of(e);
		rc = k ? take(&c, name, e, k) : cli_toml_entry_error(name, e, "unknown key");
	}
	for (size_t i = 0; rc == SL_OK && i < doc.n_tables; i++)
		if (strcmp(doc.tables[i].name, "l2") == 0 && c.engine.l2_url == NULL)
			rc = sl_error_set(SL_EINVAL, "%s:%d: [l2]: url is missing", name,
			                  doc.tables[i].line);
	cli_toml_free(&doc);
	if (rc == SL_OK && c.listen == NULL && (c.listen = sl_strdup("127.0.0.1")) != NULL)
		c.strings[c.n_strings++] = c.listen;
	if (rc == SL_OK && c.listen == NULL)
		rc = SL_ENOMEM;
	if (rc == SL_OK)
		rc = check(&c, name);
	if (rc != SL_OK) {
		cli_engine_config_free(&c);
		return rc;
	}
	*out = c;
	return SL_OK;
}

int cli_engine_config_load(cli_engine_config *out, const char *path)
{
	sl_buf text = SL_BUF_INIT(CLI_TOML_MAX_INPUT);
	int rc = cli_read_file(&text, path, CLI_TOML_MAX_INPUT);
	if (rc == SL_OK)
		rc = cli_engine_config_parse(out, path, (const char *)text.data, text.len);
	sl_buf_free(&text);
	return rc;
}

void cli_engine_config_free(cli_engine_config *c)
{
	for (size_t i = 0; i < c->n_strings; i++)
		sl_free(c->strings[i]);
	memset(c, 0, sizeof(*c));
}
