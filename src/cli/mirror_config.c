/* The mirror's configuration file (mirror_config.h).
 *
 * Two passes over the TOML document. The first finds each entry's slot in
 * the table of keys below and checks what one entry can say alone: a known
 * table and key, its type, an integer's range, a string not empty. The
 * second reads the slots table by table and checks what depends on several
 * keys (a source type and the keys it takes, url or dir, the retry bounds
 * in order), then reads the apply_sql file. Every message names the file,
 * the line and the key; a key that is missing names its table's header
 * line when there is one.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/mirror_config.h"
#include "cli/toml.h"
#include "sluice/event_source.h"
#include "sluice/store.h"

enum slot {
	S_TYPE,
	S_URL,
	S_DIR,
	S_NAMESPACE,
	S_TRUST_KEY,
	S_PATH,
	S_NAME,
	S_STREAM,
	S_KEY_FIELD,
	S_OP_FIELD,
	S_VALUE_FIELD,
	S_VERSION_FIELD,
	S_BROKERS,
	S_TOPIC,
	S_OP_HEADER,
	S_VERSION_HEADER,
	S_KAFKA_CONFIG,
	P_URL,
	P_TABLE,
	P_APPLY_SQL,
	P_DELETES,
	P_TIMEOUT_MS,
	M_BATCH_SIZE,
	M_BATCH_BYTES,
	M_BATCH_MS,
	M_MAX_ATTEMPTS,
	M_RETRY_BASE_MS,
	M_RETRY_MAX_MS,
	M_METRICS_PORT,
	M_ON_GAP,
	M_WORKERS,
	N_SLOTS
};

#define NODE   (1u << CLI_MIRROR_SOURCE_NODE)
#define NDJSON (1u << CLI_MIRROR_SOURCE_NDJSON)
#define REDIS  (1u << CLI_MIRROR_SOURCE_REDIS)
#define KAFKA  (1u << CLI_MIRROR_SOURCE_KAFKA)

typedef struct key_spec {
	const char *table, *key;
	int is_string;
	int64_t min, max; /* integers */
	unsigned types;   /* the source types that take the key; 0: all */
} key_spec;

/* In enum slot's order. */
static const key_spec keys[N_SLOTS] = {
        {"source", "type", 1, 0, 0, 0},
        {"source", "url", 1, 0, 0, NODE | REDIS},
        {"source", "dir", 1, 0, 0, NODE},
        {"source", "namespace", 1, 0, 0, NODE},
        {"source", "trust_key", 1, 0, 0, NODE},
        {"source", "path", 1, 0, 0, NDJSON},
        {"source", "name", 1, 0, 0, 0},
        {"source", "stream", 1, 0, 0, REDIS},
        {"source", "key_field", 1, 0, 0, REDIS},
        {"source", "op_field", 1, 0, 0, REDIS},
        {"source", "value_field", 1, 0, 0, REDIS},
        {"source", "version_field", 1, 0, 0, REDIS},
        {"source", "brokers", 1, 0, 0, KAFKA},
        {"source", "topic", 1, 0, 0, KAFKA},
        {"source", "op_header", 1, 0, 0, KAFKA},
        {"source", "version_header", 1, 0, 0, KAFKA},
        {"source", "kafka_config", 1, 0, 0, KAFKA},
        {"postgres", "url", 1, 0, 0, 0},
        {"postgres", "table", 1, 0, 0, 0},
        {"postgres", "apply_sql", 1, 0, 0, 0},
        {"postgres", "deletes", 1, 0, 0, 0},
        {"postgres", "timeout_ms", 0, 100, 3600000, 0},
        {"mirror", "batch_size", 0, 1, 1000000, 0},
        {"mirror", "batch_bytes", 0, 1, INT64_C(1) << 30, 0},
        {"mirror", "batch_ms", 0, 1, 600000, 0},
        {"mirror", "max_attempts", 0, 1, 1000, 0},
        {"mirror", "retry_base_ms", 0, 1, 3600000, 0},
        {"mirror", "retry_max_ms", 0, 1, 86400000, 0},
        {"mirror", "metrics_port", 0, 0, 65535, 0},
        {"mirror", "on_gap", 1, 0, 0, 0},
        {"mirror", "workers", 0, 1, CLI_MIRROR_WORKERS_MAX, 0},
};

typedef struct loader {
	const char *name;
	const cli_toml_doc *doc;
	const cli_toml_entry *found[N_SLOTS];
	cli_mirror_config *cfg;
} loader;

static int slot_of(const cli_toml_entry *e)
{
	for (int i = 0; i < N_SLOTS; i++)
		if (strcmp(keys[i].table, e->table) == 0 && strcmp(keys[i].key, e->key) == 0)
			return i;
	return -1;
}

static int known_table(const char *name)
{
	for (int i = 0; i < N_SLOTS; i++)
		if (strcmp(keys[i].table, name) == 0)
			return 1;
	return 0;
}

/* A required key is absent: point at its table's header when there is one. */
static int missing(const loader *l, int slot, const char *hint)
{
	const key_spec *k = &keys[slot];
	for (size_t i = 0; i < l->doc->n_tables; i++)
		if (strcmp(l->doc->tables[i].name, k->table) == 0)
			return sl_error_set(SL_EINVAL, "%s:%d: [%s] %s: missing%s", l->name,
			                    l->doc->tables[i].line, k->table, k->key, hint);
	return sl_error_set(SL_EINVAL, "%s: [%s] %s: missing%s", l->name, k->table, k->key, hint);
}

/* A copy of s owned by the config; NULL on ENOMEM (recorded). */
static char *own(cli_mirror_config *c, const char *s, size_t len)
{
	char *copy;
	if (c->n_strings == sizeof(c->strings) / sizeof(c->strings[0])) {
		sl_error_set(SL_EINTERNAL, "mirror config: too many strings");
		return NULL;
	}
	if ((copy = sl_strndup(s, len)) == NULL)
		return NULL;
	c->strings[c->n_strings++] = copy;
	return copy;
}

/* The string of slot, owned, into *out (left alone when the key is absent). */
static int take_string(loader *l, int slot, char **out)
{
	const cli_toml_entry *e = l->found[slot];
	if (e == NULL)
		return SL_OK;
	*out = own(l->cfg, e->str, strlen(e->str));
	return *out ? SL_OK : sl_error_last()->code;
}

static void set_number(cli_mirror_config *c, int slot, uint64_t v)
{
	sl_mirror_options *o = &c->mirror;
	switch (slot) {
	case P_TIMEOUT_MS:
		o->timeout_ms = (unsigned)v;
		break;
	case M_BATCH_SIZE:
		o->batch_size = (size_t)v;
		break;
	case M_BATCH_BYTES:
		o->batch_bytes = (size_t)v;
		break;
	case M_BATCH_MS:
		o->batch_ms = v;
		break;
	case M_MAX_ATTEMPTS:
		o->max_attempts = (uint32_t)v;
		break;
	case M_RETRY_BASE_MS:
		o->retry_base_ms = v;
		break;
	case M_RETRY_MAX_MS:
		o->retry_max_ms = v;
		break;
	case M_METRICS_PORT:
		c->metrics_port = (uint16_t)v;
		break;
	case M_WORKERS:
		c->workers = (unsigned)v;
		break;
	}
}

/* Pass one: every entry known, of its type, in range; numbers set. */
static int find_entries(loader *l)
{
	for (size_t i = 0; i < l->doc->n_tables; i++)
		if (!known_table(l->doc->tables[i].name))
			return sl_error_set(SL_EINVAL,
			                    "%s:%d: [%s]: unknown table (known: [source], "
			                    "[postgres], [mirror])",
			                    l->name, l->doc->tables[i].line,
			                    l->doc->tables[i].name);
	for (size_t i = 0; i < l->doc->n_entries; i++) {
		const cli_toml_entry *e = &l->doc->entries[i];
		int slot = slot_of(e);
		if (slot < 0)
			return cli_toml_entry_error(l->name, e, "unknown key");
		const key_spec *k = &keys[slot];
		if (k->is_string != (e->type == CLI_TOML_STRING))
			return cli_toml_entry_error(l->name, e, "expected %s, got %s",
			                            k->is_string ? "a string" : "an integer",
			                            cli_toml_type_name(e->type));
		if (k->is_string && e->str[0] == '\0')
			return cli_toml_entry_error(l->name, e, "must not be empty");
		if (!k->is_string && (e->integer < k->min || e->integer > k->max))
			return cli_toml_entry_error(l->name, e,
			                            "%" PRId64 " is out of range (%" PRId64
			                            "..%" PRId64 ")",
			                            e->integer, k->min, k->max);
		if (!k->is_string)
			set_number(l->cfg, slot, (uint64_t)e->integer);
		l->found[slot] = e;
	}
	return SL_OK;
}

static int load_trust_key(loader *l)
{
	const cli_toml_entry *e = l->found[S_TRUST_KEY];
	sl_digest key;
	if (e == NULL)
		return SL_OK;
	if (l->found[S_URL] == NULL)
		return cli_toml_entry_error(l->name, e, "only used with url, not with dir");
	if (strlen(e->str) != 64 || sl_digest_from_hex(&key, e->str) != SL_OK)
		return cli_toml_entry_error(l->name, e,
		                            "expected 64 hex digits (an Ed25519 public key)");
	memcpy(l->cfg->trust_key, key.bytes, SL_ED25519_PK_LEN);
	l->cfg->has_trust_key = 1;
	return SL_OK;
}

/* type = "redis": the url and stream, the fields' names, all checked by
 * opening (which connects to nothing). */
static int load_redis(loader *l)
{
	cli_mirror_config *c = l->cfg;
	sl_redis_source_options *r = &c->redis;
	sl_event_source probe;
	char why[SL_ERROR_MSG_MAX];
	int rc;

	if (l->found[S_URL] == NULL)
		return missing(l, S_URL, " (redis://[USER:PASSWORD@]HOST:PORT[/DB])");
	if (l->found[S_STREAM] == NULL)
		return missing(l, S_STREAM, " (the stream's key)");
	sl_redis_source_options_init(r);
	if ((rc = take_string(l, S_URL, &c->source_url)) != SL_OK ||
	    (rc = take_string(l, S_STREAM, &c->source_stream)) != SL_OK ||
	    (rc = take_string(l, S_KEY_FIELD, (char **)&r->key_field)) != SL_OK ||
	    (rc = take_string(l, S_OP_FIELD, (char **)&r->op_field)) != SL_OK ||
	    (rc = take_string(l, S_VALUE_FIELD, (char **)&r->value_field)) != SL_OK ||
	    (rc = take_string(l, S_VERSION_FIELD, (char **)&r->version_field)) != SL_OK)
		return rc;
	r->url = c->source_url;
	r->stream = c->source_stream;
	if (sl_redis_source_open(&probe, r) != SL_OK) {
		snprintf(why, sizeof(why), "%s", sl_error_last()->message);
		return cli_toml_entry_error(l->name, l->found[S_URL], "%s", why);
	}
	sl_event_source_close(&probe);
	return SL_OK;
}

/* kafka_config: "name=value;name=value", librdkafka settings (TLS, SASL),
 * split into the config's own strings. */
static int load_kafka_config(loader *l)
{
	const cli_toml_entry *e = l->found[S_KAFKA_CONFIG];
	cli_mirror_config *c = l->cfg;
	const size_t max = sizeof(c->kafka_settings) / sizeof(c->kafka_settings[0]) - 1;
	const char *p;
	size_t n = 0;

	if (e == NULL)
		return SL_OK;
	for (p = e->str; *p;) {
		size_t len = strcspn(p, ";");
		if (len > 0) {
			if (n == max)
				return cli_toml_entry_error(l->name, e, "more than %zu settings",
				                            max);
			if (memchr(p, '=', len) == NULL || p[0] == '=')
				return cli_toml_entry_error(
				        l->name, e,
				        "'%.*s' is not name=value (settings are "
				        "separated by ';')",
				        (int)(len > 64 ? 64 : len), p);
			if ((c->kafka_settings[n++] = own(c, p, len)) == NULL)
				return sl_error_last()->code;
		}
		p += len + (p[len] == ';');
	}
	c->kafka_settings[n] = NULL; /* kafka.extra_config is set where it is used
	                                (mirror_source.c): the config is copied out after parsing */
	return SL_OK;
}

/* type = "kafka": the brokers and the topic (its partitions are the
 * workers), the headers' names, extra settings. */
static int load_kafka(loader *l)
{
	cli_mirror_config *c = l->cfg;
	sl_kafka_source_options *k = &c->kafka;
	int rc;

	if (l->found[S_BROKERS] == NULL)
		return missing(l, S_BROKERS, " (HOST:PORT[,HOST:PORT...])");
	if (l->found[S_TOPIC] == NULL)
		return missing(l, S_TOPIC, "");
	if (l->found[M_WORKERS])
		return cli_toml_entry_error(l->name, l->found[M_WORKERS],
		                            "not used with type = \"kafka\": each partition of the "
		                            "topic is a worker");
	sl_kafka_source_options_init(k);
	if ((rc = take_string(l, S_BROKERS, &c->source_brokers)) != SL_OK ||
	    (rc = take_string(l, S_TOPIC, &c->source_topic)) != SL_OK ||
	    (rc = take_string(l, S_OP_HEADER, (char **)&k->op_header)) != SL_OK ||
	    (rc = take_string(l, S_VERSION_HEADER, (char **)&k->version_header)) != SL_OK ||
	    (rc = load_kafka_config(l)) != SL_OK)
		return rc;
	if (k->version_header && k->op_header && strcmp(k->op_header, k->version_header) == 0)
		return cli_toml_entry_error(l->name, l->found[S_VERSION_HEADER],
		                            "names the same header as op_header");
	k->brokers = c->source_brokers;
	k->topic = c->source_topic;
	return SL_OK;
}

static int load_source(loader *l)
{
	const cli_toml_entry *type = l->found[S_TYPE];
	cli_mirror_config *c = l->cfg;
	char why[SL_ERROR_MSG_MAX];
	int rc;

	if (type == NULL)
		return missing(l, S_TYPE, " (\"node\", \"ndjson\", \"redis\" or \"kafka\")");
	if (l->found[S_NAME] &&
	    (l->found[S_NAME]->str[0] == '\0' ||
	     strlen(l->found[S_NAME]->str) >= sizeof(((sl_event_source *)0)->name)))
		return cli_toml_entry_error(l->name, l->found[S_NAME],
		                            "a source name is 1 to %zu bytes",
		                            sizeof(((sl_event_source *)0)->name) - 1);
	if ((rc = take_string(l, S_NAME, &c->source_name)) != SL_OK)
		return rc;
	if (strcmp(type->str, "node") == 0)
		c->source_type = CLI_MIRROR_SOURCE_NODE;
	else if (strcmp(type->str, "ndjson") == 0)
		c->source_type = CLI_MIRROR_SOURCE_NDJSON;
	else if (strcmp(type->str, "redis") == 0)
		c->source_type = CLI_MIRROR_SOURCE_REDIS;
	else if (strcmp(type->str, "kafka") == 0)
		c->source_type = CLI_MIRROR_SOURCE_KAFKA;
	else
		return cli_toml_entry_error(
		        l->name, type,
		        "expected \"node\", \"ndjson\", \"redis\" or \"kafka\", got \"%s\"",
		        type->str);
	for (int slot = 0; slot < N_SLOTS; slot++)
		if (l->found[slot] && keys[slot].types &&
		    !(keys[slot].types & (1u << c->source_type)))
			return cli_toml_entry_error(l->name, l->found[slot],
			                            "not used with type = \"%s\"", type->str);
	if (c->source_type == CLI_MIRROR_SOURCE_NDJSON) {
		if (l->found[S_PATH] == NULL)
			return missing(l, S_PATH, " (a file, or \"-\" for stdin)");
		return take_string(l, S_PATH, &c->source_path);
	}
	if (c->source_type == CLI_MIRROR_SOURCE_REDIS)
		return load_redis(l);
	if (c->source_type == CLI_MIRROR_SOURCE_KAFKA)
		return load_kafka(l);
	if (l->found[S_NAMESPACE] == NULL)
		return missing(l, S_NAMESPACE, "");
	if (sl_ns_name_validate(l->found[S_NAMESPACE]->str) != SL_OK) {
		snprintf(why, sizeof(why), "%s", sl_error_last()->message);
		return cli_toml_entry_error(l->name, l->found[S_NAMESPACE], "%s", why);
	}
	if (l->found[S_URL] && l->found[S_DIR])
		return cli_toml_entry_error(l->name, l->found[S_DIR],
		                            "set either url or dir, not both");
	if (l->found[S_URL] == NULL && l->found[S_DIR] == NULL)
		return missing(l, S_URL, " (type = \"node\" needs url, or dir for a local store)");
	if ((rc = load_trust_key(l)) != SL_OK ||
	    (rc = take_string(l, S_URL, &c->source_url)) != SL_OK ||
	    (rc = take_string(l, S_DIR, &c->source_dir)) != SL_OK)
		return rc;
	return take_string(l, S_NAMESPACE, &c->source_ns);
}

/* Reads the apply_sql file (relative to base_dir) into mirror.apply_sql. */
static int load_apply_sql(loader *l, const char *base_dir)
{
	const cli_toml_entry *e = l->found[P_APPLY_SQL];
	cli_mirror_config *c = l->cfg;
	sl_buf text = SL_BUF_INIT(CLI_MIRROR_SQL_MAX);
	char why[SL_ERROR_MSG_MAX + SL_ERROR_CAUSE_MAX + 4];
	size_t dir_len =
	        base_dir && e->str[0] != '/' && strcmp(base_dir, ".") != 0 ? strlen(base_dir) : 0;
	size_t len = strlen(e->str);
	char *path;
	int rc;

	if ((path = sl_malloc(dir_len + len + 2)) == NULL)
		return SL_ENOMEM;
	if (dir_len > 0)
		snprintf(path, dir_len + len + 2, "%s/%s", base_dir, e->str);
	else
		memcpy(path, e->str, len + 1);
	c->apply_sql_path = own(c, path, strlen(path));
	sl_free(path);
	if (c->apply_sql_path == NULL)
		return sl_error_last()->code;
	if (base_dir == NULL)
		return SL_OK;
	if (strcmp(e->str, "-") == 0)
		return cli_toml_entry_error(l->name, e, "is a file name, not stdin");
	rc = cli_read_file(&text, c->apply_sql_path, CLI_MIRROR_SQL_MAX);
	if (rc != SL_OK) {
		const sl_error *err = sl_error_last();
		snprintf(why, sizeof(why), "%s%s%s%s", err->message, err->cause[0] ? " (" : "",
		         err->cause, err->cause[0] ? ")" : "");
		rc = cli_toml_entry_error(l->name, e, "%s", why);
	} else if (memchr(text.data, '\0', text.len) != NULL) {
		rc = cli_toml_entry_error(l->name, e, "'%s' holds a NUL byte", c->apply_sql_path);
	} else if (text.len == strspn((const char *)text.data, " \t\r\n") || text.len == 0) {
		rc = cli_toml_entry_error(l->name, e, "'%s' is empty", c->apply_sql_path);
	} else if ((c->mirror.apply_sql = own(c, (const char *)text.data, text.len)) == NULL) {
		rc = sl_error_last()->code;
	}
	sl_buf_free(&text);
	return rc;
}

static int load_postgres(loader *l, const char *base_dir)
{
	cli_mirror_config *c = l->cfg;
	const cli_toml_entry *deletes = l->found[P_DELETES];
	char *url = NULL, *table = NULL;
	int rc;

	if (l->found[P_URL] == NULL)
		return missing(l, P_URL, " (a libpq URL, postgresql://USER@HOST:PORT/DB)");
	if ((rc = take_string(l, P_URL, &url)) != SL_OK ||
	    (rc = take_string(l, P_TABLE, &table)) != SL_OK)
		return rc;
	c->mirror.pg_url = url;
	if (table)
		c->mirror.table = table;
	if (deletes && strcmp(deletes->str, "tombstone") != 0 &&
	    strcmp(deletes->str, "remove") != 0)
		return cli_toml_entry_error(l->name, deletes,
		                            "expected \"tombstone\" or \"remove\", got \"%s\"",
		                            deletes->str);
	c->mirror.delete_removes = deletes && strcmp(deletes->str, "remove") == 0;
	return l->found[P_APPLY_SQL] ? load_apply_sql(l, base_dir) : SL_OK;
}

static int load_mirror(loader *l)
{
	sl_mirror_options *o = &l->cfg->mirror;
	const cli_toml_entry *gap = l->found[M_ON_GAP];
	if (gap && strcmp(gap->str, "stop") != 0 && strcmp(gap->str, "continue") != 0)
		return cli_toml_entry_error(
		        l->name, gap, "expected \"stop\" or \"continue\", got \"%s\"", gap->str);
	o->on_gap = gap && strcmp(gap->str, "continue") == 0 ? SL_MIRROR_GAP_CONTINUE
	                                                     : SL_MIRROR_GAP_STOP;
	if (o->retry_base_ms > o->retry_max_ms) {
		const cli_toml_entry *e = l->found[M_RETRY_BASE_MS] ? l->found[M_RETRY_BASE_MS]
		                                                    : l->found[M_RETRY_MAX_MS];
		return cli_toml_entry_error(l->name, e,
		                            "retry_base_ms (%" PRIu64 ") is more than retry_max_ms "
		                            "(%" PRIu64 ")",
		                            o->retry_base_ms, o->retry_max_ms);
	}
	return SL_OK;
}

int cli_mirror_config_parse(cli_mirror_config *out, const char *name, const char *text, size_t len,
                            const char *base_dir)
{
	cli_toml_doc doc;
	cli_mirror_config c;
	loader l;
	int rc;

	memset(&c, 0, sizeof(c));
	sl_mirror_options_init(&c.mirror);
	c.workers = 1;
	if ((rc = cli_toml_parse(&doc, name, text, len)) != SL_OK)
		return rc;
	memset(&l, 0, sizeof(l));
	l.name = name;
	l.doc = &doc;
	l.cfg = &c;
	if ((rc = find_entries(&l)) == SL_OK && (rc = load_source(&l)) == SL_OK &&
	    (rc = load_mirror(&l)) == SL_OK)
		rc = load_postgres(&l, base_dir);
	cli_toml_free(&doc);
	if (rc != SL_OK) {
		cli_mirror_config_free(&c);
		return rc;
	}
	*out = c;
	return SL_OK;
}

int cli_mirror_config_load(cli_mirror_config *out, const char *path)
{
	sl_buf text = SL_BUF_INIT(CLI_TOML_MAX_INPUT);
	const char *slash = strrchr(path, '/');
	/* apply_sql is relative to the config's directory ("." for stdin). */
	char *base_dir = slash ? sl_strndup(path, slash == path ? 1 : (size_t)(slash - path))
	                       : sl_strdup(".");
	int rc;

	if (base_dir == NULL)
		return SL_ENOMEM;
	rc = cli_read_file(&text, path, CLI_TOML_MAX_INPUT);
	if (rc == SL_OK)
		rc = cli_mirror_config_parse(out, path, (const char *)text.data, text.len,
		                             base_dir);
	sl_buf_free(&text);
	sl_free(base_dir);
	return rc;
}

void cli_mirror_config_free(cli_mirror_config *c)
{
	for (size_t i = 0; i < c->n_strings; i++)
		sl_free(c->strings[i]);
	memset(c, 0, sizeof(*c));
}
