/*
 * The pipeline configuration file: TOML (cli/toml.c) mapped into a
 * cli_config, checked strictly so that a typo is an error, not a default.
 *
 * How. The TOML reader gives a flat list of (table, key, value, line)
 * entries. classify() matches every table against the known ones and every
 * entry against one row of `keys` (its table, name and type), and files it
 * under that row's slot; anything unknown or of the wrong type stops there,
 * with the file, line and key in the message. The load_* functions then
 * read the slots into the config in a fixed order: defaults first (from
 * sl_pg_config_init / sl_s3_config_init and the [sync] defaults below),
 * then the file, then the environment for the secrets the file leaves out;
 * ranges and required values are checked as each is read. A key that
 * belongs to another destination type than the one chosen is an error too.
 * The one exception to "unknown is an error" is recall-synchronizer's
 * [recall] table: its keys are left unread, and one logged line says so
 * (notice_recall), so that recall's own config file loads as it is.
 *
 * Ownership. Every string the config points to is a copy listed in
 * cli_config.owned, so the TOML document is freed before returning and
 * cli_config_free releases everything at once. Parsing builds into a local
 * config and moves it to *out only when everything checked out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config.h"
#include "cli/toml.h"
#include "sluice/store.h"

#define TOKEN_MAX 4096 /* bytes of a node token file */

enum slot {
	DB_URL,
	DB_TABLE,
	DB_MAX_CONNECTIONS,
	DB_MODE,
	DB_SLOT,
	DB_PUBLICATION,
	COL_ID,
	COL_OBJECT_KEY,
	COL_COMPETITION_ID,
	COL_AGENT_ID,
	COL_DATA_TYPE,
	COL_DATA,
	COL_SIZE_BYTES,
	COL_CREATED_AT,
	COL_BUCKET_NAME,
	COL_CONTENT_HASH,
	STATE_DB_PATH,
	SYNC_STATE_DB_PATH,
	SYNC_BATCH_SIZE,
	SYNC_CONCURRENCY,
	SYNC_MAX_ATTEMPTS,
	SYNC_RETRY_BASE,
	SYNC_RETRY_MAX,
	SYNC_PART_SIZE_MB,
	SRC_ENDPOINT,
	SRC_REGION,
	SRC_BUCKET,
	SRC_ACCESS_KEY_ID,
	SRC_SECRET_ACCESS_KEY,
	SRC_PATH_STYLE,
	DEST_TYPE,
	DEST_PATH,
	DEST_ENDPOINT,
	DEST_REGION,
	DEST_BUCKET,
	DEST_PREFIX,
	DEST_ACCESS_KEY_ID,
	DEST_SECRET_ACCESS_KEY,
	DEST_PATH_STYLE,
	DEST_STORE,
	DEST_URL,
	DEST_TOKEN_FILE,
	DEST_NAMESPACE,
	N_SLOTS
};

#define FOR_DIR  (1u << CLI_DEST_DIR)
#define FOR_S3   (1u << CLI_DEST_S3)
#define FOR_NODE (1u << CLI_DEST_NODE)

typedef struct key_spec {
	const char *table;
	const char *key;
	cli_toml_type type;
	unsigned dest_types; /* [destination] only: the types that use the key */
} key_spec;

#define S CLI_TOML_STRING
#define I CLI_TOML_INTEGER
#define B CLI_TOML_BOOL

static const key_spec keys[N_SLOTS] = {
        [DB_URL] = {"database", "url", S, 0},
        [DB_TABLE] = {"database", "table", S, 0},
        [DB_MAX_CONNECTIONS] = {"database", "max_connections", I, 0},
        [DB_MODE] = {"database", "mode", S, 0},
        [DB_SLOT] = {"database", "slot", S, 0},
        [DB_PUBLICATION] = {"database", "publication", S, 0},
        [COL_ID] = {"database.columns", "id", S, 0},
        [COL_OBJECT_KEY] = {"database.columns", "object_key", S, 0},
        [COL_COMPETITION_ID] = {"database.columns", "competition_id", S, 0},
        [COL_AGENT_ID] = {"database.columns", "agent_id", S, 0},
        [COL_DATA_TYPE] = {"database.columns", "data_type", S, 0},
        [COL_DATA] = {"database.columns", "data", S, 0},
        [COL_SIZE_BYTES] = {"database.columns", "size_bytes", S, 0},
        [COL_CREATED_AT] = {"database.columns", "created_at", S, 0},
        [COL_BUCKET_NAME] = {"database.columns", "bucket_name", S, 0},
        [COL_CONTENT_HASH] = {"database.columns", "content_hash", S, 0},
        [STATE_DB_PATH] = {"sync_storage", "db_path", S, 0},
        [SYNC_STATE_DB_PATH] = {"sync", "state_db_path", S, 0},
        [SYNC_BATCH_SIZE] = {"sync", "batch_size", I, 0},
        [SYNC_CONCURRENCY] = {"sync", "concurrency", I, 0},
        [SYNC_MAX_ATTEMPTS] = {"sync", "max_attempts", I, 0},
        [SYNC_RETRY_BASE] = {"sync", "retry_base_seconds", I, 0},
        [SYNC_RETRY_MAX] = {"sync", "retry_max_seconds", I, 0},
        [SYNC_PART_SIZE_MB] = {"sync", "part_size_mb", I, 0},
        [SRC_ENDPOINT] = {"s3", "endpoint", S, 0},
        [SRC_REGION] = {"s3", "region", S, 0},
        [SRC_BUCKET] = {"s3", "bucket", S, 0},
        [SRC_ACCESS_KEY_ID] = {"s3", "access_key_id", S, 0},
        [SRC_SECRET_ACCESS_KEY] = {"s3", "secret_access_key", S, 0},
        [SRC_PATH_STYLE] = {"s3", "path_style", B, 0},
        [DEST_TYPE] = {"destination", "type", S, FOR_DIR | FOR_S3 | FOR_NODE},
        [DEST_PATH] = {"destination", "path", S, FOR_DIR},
        [DEST_ENDPOINT] = {"destination", "endpoint", S, FOR_S3},
        [DEST_REGION] = {"destination", "region", S, FOR_S3},
        [DEST_BUCKET] = {"destination", "bucket", S, FOR_S3},
        [DEST_PREFIX] = {"destination", "prefix", S, FOR_S3},
        [DEST_ACCESS_KEY_ID] = {"destination", "access_key_id", S, FOR_S3},
        [DEST_SECRET_ACCESS_KEY] = {"destination", "secret_access_key", S, FOR_S3},
        [DEST_PATH_STYLE] = {"destination", "path_style", B, FOR_S3},
        [DEST_STORE] = {"destination", "store", S, FOR_NODE},
        [DEST_URL] = {"destination", "url", S, FOR_NODE},
        [DEST_TOKEN_FILE] = {"destination", "token_file", S, FOR_NODE},
        [DEST_NAMESPACE] = {"destination", "namespace", S, FOR_NODE},
};

#undef S
#undef I
#undef B

static const char *const known_tables[] = {"database", "database.columns", "sync_storage", "sync",
                                           "s3",       "destination",      "recall"};

/* recall-synchronizer's own table: read as a whole and left alone (see
 * notice_recall). */
#define RECALL_TABLE "recall"

/* A replication slot name as PostgreSQL allows it. */
#define SLOT_NAME_MAX 63

/* The slots of one S3 section; prefix is -1 for the source bucket. */
typedef struct s3_slots {
	int endpoint, region, bucket, prefix, access_key_id, secret_access_key, path_style;
} s3_slots;

static const s3_slots source_s3_slots = {
        .endpoint = SRC_ENDPOINT,
        .region = SRC_REGION,
        .bucket = SRC_BUCKET,
        .prefix = -1,
        .access_key_id = SRC_ACCESS_KEY_ID,
        .secret_access_key = SRC_SECRET_ACCESS_KEY,
        .path_style = SRC_PATH_STYLE,
};
static const s3_slots dest_s3_slots = {
        .endpoint = DEST_ENDPOINT,
        .region = DEST_REGION,
        .bucket = DEST_BUCKET,
        .prefix = DEST_PREFIX,
        .access_key_id = DEST_ACCESS_KEY_ID,
        .secret_access_key = DEST_SECRET_ACCESS_KEY,
        .path_style = DEST_PATH_STYLE,
};

typedef struct loader {
	const char *name; /* the file, for messages */
	const cli_toml_doc *doc;
	const cli_toml_entry *found[N_SLOTS];
	cli_config *cfg;
} loader;

/* ------------------------------------------------------------- messages */

/* "<file>:<line>: [<table>] <key>: <what>" */
static int entry_error(const loader *l, const cli_toml_entry *e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int entry_error(const loader *l, const cli_toml_entry *e, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cli_toml_entry_error(l->name, e, "%s", what);
}

/* The line of the [table] header, or 0 when the table is not written. */
static int table_line(const loader *l, const char *table)
{
	for (size_t i = 0; i < l->doc->n_tables; i++)
		if (strcmp(l->doc->tables[i].name, table) == 0)
			return l->doc->tables[i].line;
	return 0;
}

/* A required key is absent: point at its table's header when there is one. */
static int missing(const loader *l, int slot, const char *hint)
{
	const key_spec *k = &keys[slot];
	int line = table_line(l, k->table);

	if (line > 0)
		return sl_error_set(SL_EINVAL, "%s:%d: [%s] %s: missing%s", l->name, line, k->table,
		                    k->key, hint);
	return sl_error_set(SL_EINVAL, "%s: [%s] %s: missing%s", l->name, k->table, k->key, hint);
}

/* ------------------------------------------------------------ ownership */

/* A copy of s kept in c->owned; NULL (SL_ENOMEM recorded) on failure. */
static char *own(cli_config *c, const char *s, size_t len)
{
	char **grown;
	char *copy;

	if ((copy = sl_strndup(s, len)) == NULL)
		return NULL;
	if ((grown = sl_realloc(c->owned, (c->n_owned + 1) * sizeof(*grown))) == NULL) {
		sl_free(copy);
		return NULL;
	}
	c->owned = grown;
	c->owned[c->n_owned++] = copy;
	return copy;
}

/* ---------------------------------------------------------------- slots */

/* Files every entry under its slot; unknown tables and keys and wrong
 * types stop here. */
static int classify(loader *l)
{
	const size_t n_known = sizeof(known_tables) / sizeof(known_tables[0]);

	for (size_t i = 0; i < l->doc->n_tables; i++) {
		const cli_toml_table *t = &l->doc->tables[i];
		size_t k;
		for (k = 0; k < n_known && strcmp(t->name, known_tables[k]) != 0; k++)
			;
		if (k == n_known)
			return sl_error_set(SL_EINVAL,
			                    "%s:%d: [%s]: unknown table (known: [database], "
			                    "[database.columns], [sync_storage], [sync], [s3], "
			                    "[destination], [recall])",
			                    l->name, t->line, t->name);
	}
	for (size_t i = 0; i < l->doc->n_entries; i++) {
		const cli_toml_entry *e = &l->doc->entries[i];
		int slot;
		if (strcmp(e->table, RECALL_TABLE) == 0)
			continue; /* any key: the table is not read */
		if (e->table[0] == '\0')
			return entry_error(l, e,
			                   "unknown key (keys belong in a table such as [sync])");
		for (slot = 0; slot < N_SLOTS; slot++)
			if (strcmp(keys[slot].table, e->table) == 0 &&
			    strcmp(keys[slot].key, e->key) == 0)
				break;
		if (slot == N_SLOTS)
			return entry_error(l, e, "unknown key");
		if (e->type != keys[slot].type)
			return entry_error(l, e, "expected %s, got %s",
			                   cli_toml_type_name(keys[slot].type),
			                   cli_toml_type_name(e->type));
		l->found[slot] = e;
	}
	return SL_OK;
}

/* The string in slot, copied into the config; *out is left alone when the
 * key is absent. Empty strings are refused: no key here means "nothing". */
static int take_string(loader *l, int slot, char **out)
{
	const cli_toml_entry *e = l->found[slot];
	char *copy;

	if (e == NULL)
		return SL_OK;
	if (e->str[0] == '\0')
		return entry_error(l, e, "must not be empty");
	if ((copy = own(l->cfg, e->str, strlen(e->str))) == NULL)
		return SL_ENOMEM;
	*out = copy;
	return SL_OK;
}

static int take_const_string(loader *l, int slot, const char **out)
{
	char *value = NULL;
	int rc = take_string(l, slot, &value);

	if (rc == SL_OK && value != NULL)
		*out = value;
	return rc;
}

/* The file's value, else the environment variable's when set and not empty. */
static int take_string_or_env(loader *l, int slot, const char *env, const char **out)
{
	const char *value;
	char *copy;

	if (l->found[slot] != NULL)
		return take_const_string(l, slot, out);
	value = getenv(env);
	if (value == NULL || value[0] == '\0')
		return SL_OK;
	if ((copy = own(l->cfg, value, strlen(value))) == NULL)
		return SL_ENOMEM;
	*out = copy;
	return SL_OK;
}

/* SL_OK when the key is absent or holds an http:// or https:// URL. */
static int check_url(const loader *l, int slot)
{
	const cli_toml_entry *e = l->found[slot];

	if (e != NULL && strncmp(e->str, "http://", 7) != 0 && strncmp(e->str, "https://", 8) != 0)
		return entry_error(l, e,
		                   "expected a URL starting with http:// or https://, got \"%s\"",
		                   e->str);
	return SL_OK;
}

static int take_int(loader *l, int slot, int64_t min, int64_t max, int64_t *out)
{
	const cli_toml_entry *e = l->found[slot];

	if (e == NULL)
		return SL_OK;
	if (e->integer < min || e->integer > max)
		return entry_error(l, e, "%" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")",
		                   e->integer, min, max);
	*out = e->integer;
	return SL_OK;
}

static void take_bool(loader *l, int slot, int *out)
{
	if (l->found[slot] != NULL)
		*out = l->found[slot]->boolean;
}

/* ------------------------------------------------------------- sections */

static int slot_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* The default slot: "sluice_" and the table's name without its schema,
 * lower-cased, anything but [a-z0-9_] made '_', cut at SLOT_NAME_MAX. */
static int default_slot(loader *l, const char *table, char **out)
{
	const char *dot = strchr(table, '.'); /* the split append_table makes (pg.c) */
	const char *name = dot != NULL ? dot + 1 : table;
	char slot[SLOT_NAME_MAX + 1];
	size_t n = (size_t)snprintf(slot, sizeof(slot), "sluice_%s", name);

	if (n > SLOT_NAME_MAX)
		n = SLOT_NAME_MAX;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)slot[i];
		if (ch >= 'A' && ch <= 'Z')
			ch += 'a' - 'A';
		slot[i] = slot_char(ch) ? (char)ch : '_';
	}
	return (*out = own(l->cfg, slot, n)) != NULL ? SL_OK : SL_ENOMEM;
}

/* [database] mode, slot and publication, for the changes mode (read from
 * logical replication). Only checked and kept here: see cli_config. */
static int load_changes(loader *l)
{
	cli_config *c = l->cfg;
	const cli_toml_entry *mode = l->found[DB_MODE], *slot = l->found[DB_SLOT];
	const cli_toml_entry *publication = l->found[DB_PUBLICATION];
	int rc;

	if (mode != NULL && strcmp(mode->str, "changes") == 0)
		c->changes_mode = 1;
	else if (mode != NULL && strcmp(mode->str, "poll") != 0)
		return entry_error(l, mode, "expected \"poll\" or \"changes\", got \"%s\"",
		                   mode->str);
	if (slot != NULL) {
		size_t n = strlen(slot->str), i = 0;
		while (i < n && slot_char((unsigned char)slot->str[i]))
			i++;
		if (n == 0 || n > SLOT_NAME_MAX || i < n)
			return entry_error(l, slot,
			                   "\"%s\" is not a replication slot name (1 to %d of a-z, "
			                   "0-9 and _)",
			                   slot->str, SLOT_NAME_MAX);
		rc = take_string(l, DB_SLOT, &c->slot);
	} else {
		rc = default_slot(l, c->pg.table, &c->slot);
	}
	if (rc != SL_OK)
		return rc;
	if (publication == NULL) {
		c->publication = c->slot;
		return SL_OK;
	}
	if (strlen(publication->str) > SLOT_NAME_MAX)
		return entry_error(l, publication, "longer than %d bytes", SLOT_NAME_MAX);
	for (const char *p = publication->str; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return entry_error(l, publication, "holds a control character");
	return take_string(l, DB_PUBLICATION, &c->publication);
}

static int load_database(loader *l)
{
	sl_pg_config *pg = &l->cfg->pg;
	const int columns[] = {COL_ID,          COL_OBJECT_KEY,  COL_COMPETITION_ID, COL_AGENT_ID,
	                       COL_DATA_TYPE,   COL_DATA,        COL_SIZE_BYTES,     COL_CREATED_AT,
	                       COL_BUCKET_NAME, COL_CONTENT_HASH};
	const char **column_fields[] = {
	        &pg->col_id,          &pg->col_object_key, &pg->col_competition_id,
	        &pg->col_agent_id,    &pg->col_data_type,  &pg->col_data,
	        &pg->col_size_bytes,  &pg->col_created_at, &pg->col_bucket_name,
	        &pg->col_content_hash};
	int64_t max_connections = 0;
	int rc;

	sl_pg_config_init(pg);
	if ((rc = take_string_or_env(l, DB_URL, "SLUICE_DATABASE_URL", &pg->url)) != SL_OK)
		return rc;
	if (pg->url == NULL)
		return missing(l, DB_URL, " (set it or SLUICE_DATABASE_URL)");
	if ((rc = take_const_string(l, DB_TABLE, &pg->table)) != SL_OK)
		return rc;
	for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
		if ((rc = take_const_string(l, columns[i], column_fields[i])) != SL_OK)
			return rc;
	if ((rc = take_int(l, DB_MAX_CONNECTIONS, 1, 1000, &max_connections)) != SL_OK)
		return rc;
	l->cfg->max_connections = (uint32_t)max_connections;
	return load_changes(l);
}

/* max_connections against what sluice opens besides the workers' fetchers
 * (cli_config_pg_connections_reserved) and, in direct mode, at least one
 * fetcher: fewer is an error, not a pipeline that cannot start. */
static int check_max_connections(loader *l)
{
	const cli_config *c = l->cfg;
	size_t reserved = cli_config_pg_connections_reserved(c);
	size_t needed = reserved + (c->has_source_s3 ? 0 : 1);

	if (c->max_connections == 0 || c->max_connections >= needed)
		return SL_OK;
	return entry_error(l, l->found[DB_MAX_CONNECTIONS],
	                   "%u is too few: sluice opens %zu besides its workers%s, so it needs "
	                   "at least %zu",
	                   c->max_connections, reserved,
	                   c->has_source_s3 ? "" : " and one per worker (direct mode)", needed);
}

/* The state file: [sync_storage] db_path, or [sync] state_db_path as
 * recall-synchronizer names it; both may be set when they agree. */
static int load_state_path(loader *l)
{
	const cli_toml_entry *storage = l->found[STATE_DB_PATH];
	const cli_toml_entry *sync = l->found[SYNC_STATE_DB_PATH];
	cli_config *c = l->cfg;

	if (storage != NULL && sync != NULL && strcmp(storage->str, sync->str) != 0) {
		const cli_toml_entry *later = storage->line > sync->line ? storage : sync;
		return entry_error(l, later,
		                   "[sync_storage] db_path (\"%s\", line %d) and [sync] "
		                   "state_db_path (\"%s\", line %d) name different state files; "
		                   "keep one",
		                   storage->str, storage->line, sync->str, sync->line);
	}
	if (storage == NULL && sync == NULL)
		return missing(l, STATE_DB_PATH, " (or set [sync] state_db_path)");
	return take_string(l, storage != NULL ? STATE_DB_PATH : SYNC_STATE_DB_PATH, &c->state_path);
}

static int load_sync(loader *l)
{
	cli_config *c = l->cfg;
	int64_t batch_size = 1000, concurrency = 16, max_attempts = 5;
	int64_t retry_base = 1, retry_max = 3600, part_size_mb = 8;
	int rc;

	if ((rc = load_state_path(l)) != SL_OK)
		return rc;
	if ((rc = take_int(l, SYNC_BATCH_SIZE, 1, 100000, &batch_size)) != SL_OK ||
	    (rc = take_int(l, SYNC_CONCURRENCY, 1, 256, &concurrency)) != SL_OK ||
	    (rc = take_int(l, SYNC_MAX_ATTEMPTS, 1, 1000, &max_attempts)) != SL_OK ||
	    (rc = take_int(l, SYNC_RETRY_BASE, 0, 86400, &retry_base)) != SL_OK ||
	    (rc = take_int(l, SYNC_RETRY_MAX, 1, 7 * 86400, &retry_max)) != SL_OK ||
	    (rc = take_int(l, SYNC_PART_SIZE_MB, 5, 1024, &part_size_mb)) != SL_OK)
		return rc;
	if (retry_base > retry_max) {
		int slot = l->found[SYNC_RETRY_MAX] != NULL ? SYNC_RETRY_MAX : SYNC_RETRY_BASE;
		return entry_error(l, l->found[slot],
		                   "retry_base_seconds (%" PRId64
		                   ") is more than retry_max_seconds (%" PRId64 ")",
		                   retry_base, retry_max);
	}
	c->batch_size = (size_t)batch_size;
	c->concurrency = (size_t)concurrency;
	c->max_attempts = (uint32_t)max_attempts;
	c->retry_base_ms = (uint64_t)retry_base * 1000;
	c->retry_max_ms = (uint64_t)retry_max * 1000;
	c->part_size = (size_t)part_size_mb << 20;
	return SL_OK;
}

/* The sink's key prefix: "" is allowed and means none. */
static int take_prefix(loader *l, int slot, const char **out)
{
	if (slot < 0 || l->found[slot] == NULL || l->found[slot]->str[0] == '\0')
		return SL_OK;
	return take_const_string(l, slot, out);
}

static int load_s3(loader *l, const s3_slots *k, sl_s3_config *s3)
{
	int rc;

	sl_s3_config_init(s3);
	s3->path_style = 1;
	if ((rc = check_url(l, k->endpoint)) != SL_OK ||
	    (rc = take_const_string(l, k->endpoint, &s3->endpoint)) != SL_OK ||
	    (rc = take_const_string(l, k->region, &s3->region)) != SL_OK ||
	    (rc = take_const_string(l, k->bucket, &s3->bucket)) != SL_OK ||
	    (rc = take_prefix(l, k->prefix, &s3->prefix)) != SL_OK ||
	    (rc = take_string_or_env(l, k->access_key_id, "AWS_ACCESS_KEY_ID",
	                             &s3->access_key_id)) != SL_OK ||
	    (rc = take_string_or_env(l, k->secret_access_key, "AWS_SECRET_ACCESS_KEY",
	                             &s3->secret_access_key)) != SL_OK)
		return rc;
	take_bool(l, k->path_style, &s3->path_style);
	if (s3->region == NULL || s3->region[0] == '\0')
		s3->region = "us-east-1";
	if (s3->endpoint == NULL)
		return missing(l, k->endpoint, "");
	if (s3->bucket == NULL)
		return missing(l, k->bucket, "");
	if (s3->access_key_id == NULL)
		return missing(l, k->access_key_id, " (set it or AWS_ACCESS_KEY_ID)");
	if (s3->secret_access_key == NULL)
		return missing(l, k->secret_access_key, " (set it or AWS_SECRET_ACCESS_KEY)");
	s3->concurrency = l->cfg->concurrency;
	s3->part_size = l->cfg->part_size;
	return SL_OK;
}

/* Reads the node token named by token_file: one trailing newline cut, not
 * empty, no control characters (it goes into an HTTP header). */
static int read_token(loader *l, const cli_toml_entry *e)
{
	char token[TOKEN_MAX + 1];
	size_t len;
	FILE *f;
	int err;

	if ((f = fopen(e->str, "rb")) == NULL)
		return entry_error(l, e, "cannot read %s: %s", e->str, strerror(errno));
	len = fread(token, 1, sizeof(token), f);
	err = ferror(f) ? errno : 0;
	fclose(f);
	if (err != 0)
		return entry_error(l, e, "cannot read %s: %s", e->str, strerror(err));
	if (len > TOKEN_MAX)
		return entry_error(l, e, "%s is longer than %d bytes", e->str, TOKEN_MAX);
	if (len > 0 && token[len - 1] == '\n')
		len--;
	if (len > 0 && token[len - 1] == '\r')
		len--;
	if (len == 0)
		return entry_error(l, e, "%s holds an empty token", e->str);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)token[i];
		if (c < 0x20 || c == 0x7f)
			return entry_error(l, e,
			                   "%s: the token holds a control character (byte %zu)",
			                   e->str, i);
	}
	if ((l->cfg->node_token = own(l->cfg, token, len)) == NULL)
		return SL_ENOMEM;
	return SL_OK;
}

static int load_node(loader *l)
{
	cli_config *c = l->cfg;
	char why[SL_ERROR_MSG_MAX];
	int rc;

	if ((rc = take_string(l, DEST_NAMESPACE, &c->node_namespace)) != SL_OK)
		return rc;
	if (c->node_namespace == NULL)
		return missing(l, DEST_NAMESPACE, "");
	if (sl_ns_name_validate(c->node_namespace) != SL_OK) {
		snprintf(why, sizeof(why), "%s", sl_error_last()->message);
		return entry_error(l, l->found[DEST_NAMESPACE], "%s", why);
	}
	if (l->found[DEST_STORE] != NULL && l->found[DEST_URL] != NULL)
		return entry_error(l, l->found[DEST_URL], "set either store or url, not both");
	if (l->found[DEST_STORE] == NULL && l->found[DEST_URL] == NULL)
		return missing(l, DEST_STORE,
		               " (type = \"node\" needs store, or url and token_file)");
	if (l->found[DEST_STORE] != NULL) {
		if (l->found[DEST_TOKEN_FILE] != NULL)
			return entry_error(l, l->found[DEST_TOKEN_FILE],
			                   "only used with url, not with store");
		return take_string(l, DEST_STORE, &c->node_store);
	}
	if ((rc = check_url(l, DEST_URL)) != SL_OK ||
	    (rc = take_string(l, DEST_URL, &c->node_url)) != SL_OK)
		return rc;
	if (l->found[DEST_TOKEN_FILE] == NULL)
		return missing(l, DEST_TOKEN_FILE, " (required with url)");
	if (l->found[DEST_TOKEN_FILE]->str[0] == '\0')
		return entry_error(l, l->found[DEST_TOKEN_FILE], "must not be empty");
	return read_token(l, l->found[DEST_TOKEN_FILE]);
}

static int load_destination(loader *l)
{
	const cli_toml_entry *type = l->found[DEST_TYPE];
	cli_config *c = l->cfg;
	const char *name;
	int rc;

	if (type == NULL && table_line(l, "destination") == 0)
		return sl_error_set(SL_EINVAL,
		                    "%s: no [destination] table: sluice needs one to know where to "
		                    "copy the objects: type = \"dir\" (a directory), \"s3\" (a "
		                    "bucket) or \"node\" (a sluice namespace); see "
		                    "config.example.toml",
		                    l->name);
	if (type == NULL)
		return missing(l, DEST_TYPE, " (\"s3\", \"dir\" or \"node\")");
	if (strcmp(type->str, "dir") == 0)
		c->dest_type = CLI_DEST_DIR;
	else if (strcmp(type->str, "s3") == 0)
		c->dest_type = CLI_DEST_S3;
	else if (strcmp(type->str, "node") == 0)
		c->dest_type = CLI_DEST_NODE;
	else
		return entry_error(l, type, "expected \"s3\", \"dir\" or \"node\", got \"%s\"",
		                   type->str);
	name = type->str;
	for (int slot = 0; slot < N_SLOTS; slot++) {
		const cli_toml_entry *e = l->found[slot];
		if (e != NULL && keys[slot].dest_types != 0 &&
		    !(keys[slot].dest_types & (1u << c->dest_type)))
			return entry_error(l, e, "not used with type = \"%s\"", name);
	}
	switch (c->dest_type) {
	case CLI_DEST_DIR:
		if ((rc = take_string(l, DEST_PATH, &c->dest_dir)) != SL_OK)
			return rc;
		if (c->dest_dir == NULL)
			return missing(l, DEST_PATH, " (required for type = \"dir\")");
		return SL_OK;
	case CLI_DEST_S3:
		return load_s3(l, &dest_s3_slots, &c->dest_s3);
	case CLI_DEST_NODE:
		return load_node(l);
	}
	return sl_error_set(SL_EINTERNAL, "unhandled destination type %d", (int)c->dest_type);
}

/* recall-synchronizer's [recall] table says how it writes to the Recall
 * network, which sluice cannot reach offline: one line says so, and which
 * destinations it has instead, whatever happens to the rest of the file
 * (so it shows next to a missing [destination] too). */
static void notice_recall(const loader *l)
{
	int line = table_line(l, RECALL_TABLE);
	char name[256];

	if (line > 0)
		sl_log(SL_LOG_WARN,
		       "[recall] is not read: the Recall network is not a destination sluice can "
		       "reach offline; copy to a [destination] of type dir, s3 or node instead",
		       "config=%s line=%d", sl_log_quote(name, sizeof(name), l->name), line);
}

/* ------------------------------------------------------------------ API */

size_t cli_config_pg_connections_reserved(const cli_config *c)
{
	/* The source's connection; changes mode adds the slot's two: the
	 * replication stream and its control session (pg_changes.c). */
	return c->changes_mode ? 3 : 1;
}

int cli_config_parse(cli_config *out, const char *name, const char *text, size_t len)
{
	cli_toml_doc doc;
	cli_config cfg;
	loader l;
	int rc;

	memset(&doc, 0, sizeof(doc));
	memset(&cfg, 0, sizeof(cfg));
	memset(&l, 0, sizeof(l));
	l.name = name != NULL ? name : "config";
	l.doc = &doc;
	l.cfg = &cfg;
	if ((cfg.path = own(&cfg, l.name, strlen(l.name))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = cli_toml_parse(&doc, l.name, text, len)) != SL_OK || (rc = classify(&l)) != SL_OK)
		goto cleanup;
	notice_recall(&l);
	/* [sync] first: the S3 sections take its concurrency and part size. */
	if ((rc = load_database(&l)) != SL_OK || (rc = load_sync(&l)) != SL_OK)
		goto cleanup;
	cfg.has_source_s3 = table_line(&l, "s3") > 0;
	cfg.pg.s3_mode = cfg.has_source_s3;
	if ((rc = check_max_connections(&l)) != SL_OK)
		goto cleanup;
	if (cfg.has_source_s3 && (rc = load_s3(&l, &source_s3_slots, &cfg.source_s3)) != SL_OK)
		goto cleanup;
	if ((rc = load_destination(&l)) != SL_OK)
		goto cleanup;
	*out = cfg;
	memset(&cfg, 0, sizeof(cfg));
cleanup:
	cli_config_free(&cfg);
	cli_toml_free(&doc);
	if (rc != SL_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

int cli_config_load(cli_config *out, const char *path)
{
	sl_buf text = SL_BUF_INIT(CLI_TOML_MAX_INPUT);
	int rc = cli_read_file(&text, path, CLI_TOML_MAX_INPUT);

	if (rc == SL_OK)
		rc = cli_config_parse(out, path, (const char *)text.data, text.len);
	sl_buf_free(&text);
	if (rc != SL_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

void cli_config_free(cli_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_owned; i++)
		sl_free(c->owned[i]);
	sl_free(c->owned);
	memset(c, 0, sizeof(*c));
}
