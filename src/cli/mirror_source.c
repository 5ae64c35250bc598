/*
 * Opening the source a mirror's config names (mirror_source.h). Every
 * `sluice mirror` command goes through here, so the names positions are
 * stored under are made in one place.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mirror_source.h"

static int open_as_is(const cli_mirror_config *c, sl_event_source *out)
{
	if (c->source_type == CLI_MIRROR_SOURCE_NDJSON)
		return sl_ndjson_source_open(out, c->source_path);
	if (c->source_type == CLI_MIRROR_SOURCE_REDIS)
		return sl_redis_source_open(out, &c->redis);
	if (c->source_dir != NULL)
		return sl_store_source_open(out, c->source_dir, c->source_ns);
	sl_node_source_options no;
	sl_node_source_options_init(&no);
	no.url = c->source_url;
	no.ns = c->source_ns;
	no.trust_key = c->has_trust_key ? c->trust_key : NULL;
	return sl_node_source_open(out, &no);
}

/* Opens the source, known by [source] name when the config gives one. */
int cli_mirror_source_open(const cli_mirror_config *c, sl_event_source *out)
{
	int rc;
	if (c->source_type == CLI_MIRROR_SOURCE_KAFKA)
		return sl_error_set(SL_EINVAL, "a Kafka topic is read partition by partition, each "
		                               "its own source; this command takes one source");
	rc = open_as_is(c, out);
	if (rc == SL_OK && c->source_name)
		snprintf(out->name, sizeof(out->name), "%s", c->source_name);
	return rc;
}

/* The name the source would give itself (event_*.c: "ndjson:REALPATH",
 * "store:REALDIR/NS", "node:http://HOST:PORT/NS"), for when it cannot be
 * opened. */
static void assumed_name(const cli_mirror_config *c, char *out, size_t cap)
{
	if (c->source_name) {
		snprintf(out, cap, "%s", c->source_name);
		return;
	}
	if (c->source_type == CLI_MIRROR_SOURCE_REDIS) { /* opening it connects to nothing */
		snprintf(out, cap, "redis:%s", c->source_stream);
		return;
	}
	if (c->source_type == CLI_MIRROR_SOURCE_KAFKA) { /* as event_kafka.c, less the partition */
		snprintf(out, cap, "kafka:%s/%s", c->source_brokers, c->source_topic);
		return;
	}
	const char *path =
	        c->source_type == CLI_MIRROR_SOURCE_NDJSON ? c->source_path : c->source_dir;
	if (path != NULL) {
		char *real = strcmp(path, "-") == 0 ? NULL : realpath(path, NULL);
		if (c->source_type == CLI_MIRROR_SOURCE_NDJSON)
			snprintf(out, cap, "ndjson:%s", real ? real : path);
		else
			snprintf(out, cap, "store:%s/%s", real ? real : path, c->source_ns);
		free(real);
		return;
	}
	const char *url = c->source_url;
	int scheme = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
	size_t len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		len--;
	snprintf(out, cap, "node:%s%.*s/%s", scheme ? "" : "http://", (int)len, url, c->source_ns);
}

/* For the commands that only need the source's name (status, dlq): opens
 * it, or, when it cannot be opened, puts the name it would have in
 * src->name, the reason in why, and returns 0. 1 when open. */
int cli_mirror_source_or_name(const cli_mirror_config *c, sl_event_source *src, char *why,
                              size_t cap)
{
	if (cli_mirror_source_open(c, src) == SL_OK)
		return 1;
	snprintf(why, cap, "%s", sl_error_last()->message);
	memset(src, 0, sizeof(*src));
	assumed_name(c, src->name, sizeof(src->name));
	return 0;
}

void cli_mirror_base_name(const cli_mirror_config *c, const sl_event_source *opened, char *out,
                          size_t cap)
{
	if (opened && opened->ops && c->source_type != CLI_MIRROR_SOURCE_KAFKA)
		snprintf(out, cap, "%s", opened->name);
	else
		assumed_name(c, out, cap);
}

/* The Kafka options of the config, with its extra settings. */
static sl_kafka_source_options kafka_options(const cli_mirror_config *c)
{
	sl_kafka_source_options k = c->kafka;
	k.extra_config = c->kafka_settings[0] ? (const char *const *)c->kafka_settings : NULL;
	return k;
}

int cli_mirror_workers(const cli_mirror_config *c, unsigned *n)
{
	int32_t partitions;
	int rc;
	if (c->source_type != CLI_MIRROR_SOURCE_KAFKA) {
		*n = c->workers ? c->workers : 1;
		return SL_OK;
	}
	sl_kafka_source_options k = kafka_options(c);
	if ((rc = sl_kafka_partitions(&partitions, k.brokers, k.topic, k.extra_config,
	                              k.timeout_ms)) != SL_OK)
		return rc;
	if (partitions < 1 || partitions > CLI_MIRROR_KAFKA_PARTITIONS_MAX)
		return sl_error_set(
		        SL_EINVAL, "kafka: topic %s has %d partitions; a mirror takes 1 to %d",
		        c->kafka.topic, (int)partitions, CLI_MIRROR_KAFKA_PARTITIONS_MAX);
	*n = (unsigned)partitions;
	return SL_OK;
}

int cli_mirror_worker_open(void *ctx, unsigned worker, sl_event_source *out)
{
	const cli_mirror_config *c = ctx;
	unsigned n = c->workers ? c->workers : 1;
	sl_event_source whole;
	int rc;

	if (c->source_type == CLI_MIRROR_SOURCE_KAFKA) {
		sl_kafka_source_options k = kafka_options(c);
		k.partition = (int32_t)worker;
		if ((rc = sl_kafka_source_open(out, &k)) == SL_OK && c->source_name)
			snprintf(out->name, sizeof(out->name), "%s/%u", c->source_name, worker);
		return rc;
	}
	if (n == 1)
		return cli_mirror_source_open(c, out);
	if ((rc = cli_mirror_source_open(c, &whole)) != SL_OK)
		return rc;
	if ((rc = sl_partition_source_open(out, &whole, worker, n)) != SL_OK)
		sl_event_source_close(&whole);
	return rc;
}

void cli_mirror_worker_name(const cli_mirror_config *c, const char *base, unsigned worker,
                            unsigned n, char *out, size_t cap)
{
	if (c->source_type == CLI_MIRROR_SOURCE_KAFKA)
		snprintf(out, cap, "%s/%u", base, worker);
	else if (n == 1)
		snprintf(out, cap, "%s", base);
	else
		snprintf(out, cap, "%s#part=%u/%u", base, worker, n);
}
