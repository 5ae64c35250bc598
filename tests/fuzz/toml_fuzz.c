/*
 * Fuzz target for the pipeline configuration file: the TOML reader
 * (cli_toml_parse) and the config mapping on top of it (cli_config_parse).
 *
 * Input layout: the whole input is the file's text (not NUL-terminated).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: a
 * parsed document's entries belong to a table it lists (or the root), have
 * a non-empty key, a known type and lines in order within the input; a
 * failed parse is SL_EINVAL or SL_ETOOLARGE with a message that says where
 * ("line N: ..." from the reader, "fuzz.toml..." from the config); a
 * parsed config has every required value, a replication slot name
 * PostgreSQL takes and a max_connections with room for a worker, and the
 * config parse agrees with the reader about whether the text is TOML at
 * all.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "cli/toml.h"

#define FUZZ_NAME "toml_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_doc(const cli_toml_doc *doc, const uint8_t *data, size_t size)
{
	int last_line = 0, max_line = 1;

	for (size_t i = 0; i < size; i++)
		max_line += data[i] == '\n';
	for (size_t i = 0; i < doc->n_entries; i++) {
		const cli_toml_entry *e = &doc->entries[i];
		int known = e->table[0] == '\0';
		for (size_t t = 0; t < doc->n_tables && !known; t++)
			known = e->table == doc->tables[t].name;
		if (!known)
			die("an entry points at a table the document does not list");
		if (e->key == NULL || e->key[0] == '\0')
			die("an entry has an empty key");
		if (e->type == CLI_TOML_STRING && e->str == NULL)
			die("a string entry without a string");
		if (e->type != CLI_TOML_STRING && e->type != CLI_TOML_INTEGER &&
		    e->type != CLI_TOML_BOOL)
			die("an entry of unknown type");
		if (e->type == CLI_TOML_BOOL && e->boolean != 0 && e->boolean != 1)
			die("a boolean that is neither 0 nor 1");
		if (e->line < last_line || e->line < 1 || e->line > max_line)
			die("entry lines out of order or outside the input");
		last_line = e->line;
	}
	for (size_t t = 0; t < doc->n_tables; t++)
		if (doc->tables[t].name[0] == '\0')
			die("a table with an empty name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int env_cleared;
	cli_toml_doc doc;
	cli_config cfg;
	int toml_rc, config_rc;

	if (!env_cleared) {
		/* Results must not depend on the environment the fuzzer runs in. */
		unsetenv("SLUICE_DATABASE_URL");
		unsetenv("AWS_ACCESS_KEY_ID");
		unsetenv("AWS_SECRET_ACCESS_KEY");
		sl_log_set_level(SL_LOG_ERROR); /* the [recall] notice, on every input */
		env_cleared = 1;
	}
	toml_rc = cli_toml_parse(&doc, NULL, (const char *)data, size);
	if (toml_rc == SL_OK) {
		check_doc(&doc, data, size);
		cli_toml_free(&doc);
	} else {
		if (toml_rc != SL_EINVAL && toml_rc != SL_ETOOLARGE)
			die("the TOML reader failed with an unexpected code");
		if (strncmp(sl_error_last()->message, "line ", 5) != 0 && toml_rc == SL_EINVAL)
			die("a TOML error does not name its line");
	}

	config_rc = cli_config_parse(&cfg, "fuzz.toml", (const char *)data, size);
	if (config_rc == SL_OK) {
		if (toml_rc != SL_OK)
			die("a config parsed from text the TOML reader refuses");
		if (cfg.pg.url == NULL || cfg.state_path == NULL || cfg.dest_type == 0)
			die("a config without a required value");
		if (cfg.dest_type == CLI_DEST_DIR && cfg.dest_dir == NULL)
			die("a dir destination without a path");
		if (cfg.dest_type == CLI_DEST_S3 &&
		    (cfg.dest_s3.bucket == NULL || cfg.dest_s3.endpoint == NULL ||
		     cfg.dest_s3.access_key_id == NULL || cfg.dest_s3.secret_access_key == NULL))
			die("an s3 destination without a required value");
		if (cfg.dest_type == CLI_DEST_NODE &&
		    (cfg.node_namespace == NULL ||
		     (cfg.node_store == NULL) == (cfg.node_url == NULL) ||
		     (cfg.node_url != NULL && cfg.node_token == NULL)))
			die("a node destination without a required value");
		if (cfg.batch_size < 1 || cfg.concurrency < 1 || cfg.part_size < (size_t)5 << 20)
			die("a [sync] value out of range");
		if (cfg.slot == NULL || cfg.slot[0] == '\0' || strlen(cfg.slot) > 63 ||
		    strspn(cfg.slot, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(cfg.slot))
			die("a replication slot name PostgreSQL would refuse");
		if (cfg.publication == NULL || cfg.publication[0] == '\0' ||
		    strlen(cfg.publication) > 63)
			die("a publication name out of bounds");
		if (cfg.pg.col_bucket_name == NULL || cfg.pg.col_content_hash == NULL)
			die("a column without a name");
		if (cfg.max_connections > 1000 ||
		    (cfg.max_connections != 0 && !cfg.has_source_s3 &&
		     cfg.max_connections <= cli_config_pg_connections_reserved(&cfg)))
			die("a max_connections without room for a worker");
		cli_config_free(&cfg);
	} else {
		if (config_rc != SL_EINVAL && config_rc != SL_ETOOLARGE)
			die("the config parse failed with an unexpected code");
		if (strncmp(sl_error_last()->message, "fuzz.toml", 9) != 0)
			die("a config error does not name the file");
		if (toml_rc == SL_OK && config_rc == SL_ETOOLARGE)
			die("a config too large for text the TOML reader accepts");
	}
	return 0;
}
