/*
 * Tests of the pipeline configuration file (src/cli/config.c) and the TOML
 * reader under it (src/cli/toml.c): the example file parses into what it
 * says, every default, the environment fallbacks, every kind of error with
 * the exact file:line and key in its message, the TOML details we read and
 * the ones we refuse, and allocation failures at every step (nothing
 * leaks, *out stays zeroed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/config.h"
#include "cli/toml.h"
#include "testutil.h"

/* Lines 1-7 of most test files: the smallest complete configuration. */
#define DB       "[database]\nurl = \"postgresql://db\"\n"
#define STATE    "[sync_storage]\ndb_path = \"state.db\"\n"
#define DIR_DEST "[destination]\ntype = \"dir\"\npath = \"out\"\n"
#define MINIMAL  DB STATE DIR_DEST

#define S3_KEYS "access_key_id = \"AK\"\nsecret_access_key = \"SK\"\n"

#define NO_DESTINATION                                                                             \
	"sluice.toml: no [destination] table: sluice needs one to know where to copy the "         \
	"objects: "                                                                                \
	"type = \"dir\" (a directory), \"s3\" (a bucket) or \"node\" (a sluice namespace); see "   \
	"config.example.toml"

/* recall-synchronizer's config.example.toml, as it is (no final newline). */
static const char recall_example[] =
        "# Example configuration file for the Recall Data Synchronizer\n"
        "\n"
        "# PostgreSQL database configuration (source of object metadata)\n"
        "[database]\n"
        "url = \"postgresql://recall:recall_password@localhost:5432/recall_competitions\"\n"
        "max_connections = 5\n"
        "\n"
        "# S3 configuration\n"
        "[s3]\n"
        "endpoint = \"https://s3.amazonaws.com\"         # For local testing: "
        "\"http://localhost:9000\"\n"
        "region = \"us-east-1\"\n"
        "bucket = \"competition-data\"\n"
        "access_key_id = \"YOUR_ACCESS_KEY\"            # For local testing: \"minioadmin\"\n"
        "secret_access_key = \"YOUR_SECRET_KEY\"        # For local testing: \"minioadmin\"\n"
        "\n"
        "# Recall network configuration\n"
        "[recall]\n"
        "private_key = \"YOUR_PRIVATE_KEY_HEX\"        # 64 character hex string\n"
        "network = \"mainnet\"                          # Network name from networks.toml\n"
        "config_path = \"networks.toml\"                # Path to network configuration file\n"
        "\n"
        "# Synchronization settings\n"
        "[sync]\n"
        "batch_size = 100\n"
        "state_db_path = \"./sync_state.db\"";

static const char *const env_vars[] = {"SLUICE_DATABASE_URL", "AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY"};

static int clear_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		unsetenv(env_vars[i]);
	sl_alloc_fail_after(-1, 0);
	return 0;
}

static int parse(cli_config *c, const char *text)
{
	return cli_config_parse(c, "sluice.toml", text, strlen(text));
}

static void assert_zeroed(const cli_config *c)
{
	cli_config zero;
	memset(&zero, 0, sizeof(zero));
	assert_memory_equal(c, &zero, sizeof(zero));
}

/* Parsing text fails with code and exactly this message, leaving *out zeroed. */
static void expect_error(const char *text, int code, const char *message)
{
	cli_config c;

	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(parse(&c, text), code);
	assert_string_equal(sl_error_last()->message, message);
	assert_zeroed(&c);
}

/* Same, for the raw TOML reader (no file name: "line N: ..."). */
static void expect_toml_error(const char *text, const char *message)
{
	cli_toml_doc doc;

	memset(&doc, 0, sizeof(doc));
	assert_int_equal(cli_toml_parse(&doc, NULL, text, strlen(text)), SL_EINVAL);
	assert_string_equal(sl_error_last()->message, message);
	assert_null(doc.entries);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	text[len] = '\0';
	fclose(f);
	return text;
}

static void example_path(char *out, size_t cap)
{
	const char *data = getenv("SLUICE_TEST_DATA");
	assert_non_null(data);
	snprintf(out, cap, "%s/../config.example.toml", data);
}

/* A throwaway directory; never NULL. */
static char *temp_dir(void)
{
	char *dir = tu_tempdir();
	if (dir == NULL)
		abort();
	return dir;
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------- example */

static void test_example_parses(void **state)
{
	char path[4096];
	cli_config c;

	(void)state;
	example_path(path, sizeof(path));
	assert_int_equal(cli_config_load(&c, path), SL_OK);
	assert_string_equal(c.path, path);
	assert_string_equal(c.pg.url, "postgresql://sluice:secret@localhost:5432/competitions");
	assert_string_equal(c.pg.table, "object_index");
	assert_string_equal(c.pg.col_id, "id");
	assert_string_equal(c.pg.col_object_key, "object_key");
	assert_string_equal(c.pg.col_competition_id, "competition_id");
	assert_string_equal(c.pg.col_agent_id, "agent_id");
	assert_string_equal(c.pg.col_data_type, "data_type");
	assert_string_equal(c.pg.col_data, "data");
	assert_string_equal(c.pg.col_size_bytes, "size_bytes");
	assert_string_equal(c.pg.col_created_at, "created_at");
	assert_string_equal(c.pg.col_bucket_name, "bucket_name");
	assert_string_equal(c.pg.col_content_hash, "content_hash");
	assert_int_equal(c.pg.s3_mode, 1);
	assert_int_equal(c.max_connections, 0);
	assert_int_equal(c.changes_mode, 0);
	assert_string_equal(c.slot, "sluice_object_index");
	assert_string_equal(c.publication, "sluice_object_index");
	assert_string_equal(c.state_path, "./sluice_state.db");
	assert_int_equal(c.batch_size, 1000);
	assert_int_equal(c.concurrency, 16);
	assert_int_equal(c.max_attempts, 5);
	assert_int_equal(c.retry_base_ms, 1000);
	assert_int_equal(c.retry_max_ms, 3600 * 1000);
	assert_int_equal(c.part_size, 8 << 20);
	assert_int_equal(c.has_source_s3, 1);
	assert_string_equal(c.source_s3.endpoint, "https://s3.amazonaws.com");
	assert_string_equal(c.source_s3.region, "us-east-1");
	assert_string_equal(c.source_s3.bucket, "competition-data");
	assert_string_equal(c.source_s3.access_key_id, "YOUR_ACCESS_KEY");
	assert_string_equal(c.source_s3.secret_access_key, "YOUR_SECRET_KEY");
	assert_int_equal(c.source_s3.path_style, 1);
	assert_int_equal(c.dest_type, CLI_DEST_S3);
	assert_string_equal(c.dest_s3.endpoint, "http://127.0.0.1:9000");
	assert_string_equal(c.dest_s3.bucket, "competition-copy");
	/* "" means none; sl_s3_config_init's default is either. */
	assert_true(c.dest_s3.prefix == NULL || c.dest_s3.prefix[0] == '\0');
	assert_int_equal(c.dest_s3.path_style, 1);
	assert_null(c.dest_dir);
	assert_null(c.node_store);
	cli_config_free(&c);
	assert_zeroed(&c);
}

/* The example with its [destination] replaced by the commented-out block
 * that starts with `marker`, uncommented, minus lines starting with any
 * of `drop`. */
static char *example_with_block(const char *marker, const char *const *drop, size_t n_drop)
{
	char path[4096];
	char *example, *text, *cut, *block;
	size_t len = 0;

	example_path(path, sizeof(path));
	example = read_file(path);
	text = calloc(1, strlen(example) + 1);
	assert_non_null(text);
	block = strstr(example, marker);
	assert_non_null(block);
	cut = strstr(example, "\n[destination]");
	assert_non_null(cut);
	memcpy(text, example, (size_t)(cut - example) + 1);
	len = (size_t)(cut - example) + 1;
	/* The block is "# ..." lines up to the first blank line. */
	while (strncmp(block, "# ", 2) == 0) {
		char *end = strchr(block, '\n');
		size_t line_len = end ? (size_t)(end - block) + 1 : strlen(block);
		int keep = 1;
		for (size_t i = 0; i < n_drop; i++)
			if (strncmp(block + 2, drop[i], strlen(drop[i])) == 0)
				keep = 0;
		if (keep) {
			memcpy(text + len, block + 2, line_len - 2);
			len += line_len - 2;
		}
		block += line_len;
	}
	text[len] = '\0';
	free(example);
	return text;
}

static void test_example_dir_block(void **state)
{
	char *text = example_with_block("# [destination]\n# type = \"dir\"", NULL, 0);
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, text), SL_OK);
	assert_int_equal(c.dest_type, CLI_DEST_DIR);
	assert_string_equal(c.dest_dir, "./objects");
	cli_config_free(&c);
	free(text);
}

static void test_example_node_block(void **state)
{
	const char *const no_url[] = {"url", "token_file"};
	const char *const no_store[] = {"store"};
	char *dir = temp_dir(), *text, *both, token_path[4200], cwd[4096];
	cli_config c;

	(void)state;
	assert_non_null(dir);
	text = example_with_block("# [destination]\n# type = \"node\"", no_url, 2);
	assert_int_equal(parse(&c, text), SL_OK);
	assert_int_equal(c.dest_type, CLI_DEST_NODE);
	assert_string_equal(c.node_namespace, "competitions");
	assert_string_equal(c.node_store, "./sluice-data");
	assert_null(c.node_url);
	assert_null(c.node_token);
	cli_config_free(&c);
	free(text);

	/* The remote form reads ./node.token, relative to where sluice runs. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	snprintf(token_path, sizeof(token_path), "%s/node.token", dir);
	write_file(token_path, "s3cret\n", 7);
	text = example_with_block("# [destination]\n# type = \"node\"", no_store, 1);
	assert_int_equal(parse(&c, text), SL_OK);
	assert_string_equal(c.node_url, "http://127.0.0.1:7070");
	assert_string_equal(c.node_token, "s3cret");
	assert_null(c.node_store);
	cli_config_free(&c);
	free(text);

	/* As written, with both store and url, it is refused. */
	both = example_with_block("# [destination]\n# type = \"node\"", NULL, 0);
	assert_int_equal(parse(&c, both), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "url: set either store or url, not both"));
	free(both);
	assert_int_equal(chdir(cwd), 0);
	tu_rmtree(dir);
	free(dir);
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, MINIMAL), SL_OK);
	assert_string_equal(c.path, "sluice.toml");
	assert_string_equal(c.pg.url, "postgresql://db");
	assert_string_equal(c.pg.table, "object_index");
	assert_string_equal(c.pg.col_id, "id");
	assert_string_equal(c.pg.col_object_key, "object_key");
	assert_string_equal(c.pg.col_competition_id, "competition_id");
	assert_string_equal(c.pg.col_agent_id, "agent_id");
	assert_string_equal(c.pg.col_data_type, "data_type");
	assert_string_equal(c.pg.col_data, "data");
	assert_string_equal(c.pg.col_size_bytes, "size_bytes");
	assert_string_equal(c.pg.col_created_at, "created_at");
	assert_int_equal(c.pg.s3_mode, 0);
	assert_int_equal(c.pg.timeout_ms, 30000);
	assert_string_equal(c.state_path, "state.db");
	assert_int_equal(c.batch_size, 1000);
	assert_int_equal(c.concurrency, 16);
	assert_int_equal(c.max_attempts, 5);
	assert_int_equal(c.retry_base_ms, 1000);
	assert_int_equal(c.retry_max_ms, 3600000);
	assert_int_equal(c.part_size, 8 * 1024 * 1024);
	assert_int_equal(c.has_source_s3, 0);
	assert_null(c.source_s3.endpoint);
	assert_int_equal(c.dest_type, CLI_DEST_DIR);
	assert_string_equal(c.dest_dir, "out");
	assert_null(c.node_namespace);
	cli_config_free(&c);

	/* S3 sections: region, path_style and the [sync] sizes. */
	assert_int_equal(parse(&c,
	                       DB STATE "[s3]\nendpoint = \"http://src:9000\"\nbucket = "
	                                "\"in\"\n" S3_KEYS "[destination]\ntype = \"s3\"\n"
	                                "endpoint = \"https://dst\"\nbucket = \"out\"\n" S3_KEYS),
	                 SL_OK);
	assert_int_equal(c.has_source_s3, 1);
	assert_int_equal(c.pg.s3_mode, 1);
	for (int i = 0; i < 2; i++) {
		const sl_s3_config *s3 = i == 0 ? &c.source_s3 : &c.dest_s3;
		assert_string_equal(s3->region, "us-east-1");
		assert_int_equal(s3->path_style, 1);
		assert_int_equal(s3->concurrency, 16);
		assert_int_equal(s3->part_size, 8 << 20);
		assert_true(s3->prefix == NULL || s3->prefix[0] == '\0');
		assert_string_equal(s3->access_key_id, "AK");
		assert_string_equal(s3->secret_access_key, "SK");
		assert_int_equal(s3->timeout_ms, 60000);
	}
	assert_string_equal(c.source_s3.bucket, "in");
	assert_string_equal(c.dest_s3.bucket, "out");
	cli_config_free(&c);
}

static void test_every_value(void **state)
{
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, "[database]\nurl = 'host=db'\ntable = \"pub.objs\"\n"
	                           "[database.columns]\nid = \"i\"\nobject_key = \"ok\"\n"
	                           "competition_id = \"ci\"\nagent_id = \"ai\"\n"
	                           "data_type = \"dt\"\ndata = \"d\"\nsize_bytes = \"sb\"\n"
	                           "created_at = \"ca\"\n" STATE
	                           "[sync]\nbatch_size = 100_000\nconcurrency = 4\n"
	                           "max_attempts = 1000\nretry_base_seconds = 2\n"
	                           "retry_max_seconds = 604_800\npart_size_mb = 1024\n"
	                           "[s3]\nendpoint = \"http://src\"\nregion = \"eu-west-1\"\n"
	                           "bucket = \"in\"\npath_style = false\n" S3_KEYS
	                           "[destination]\ntype = \"s3\"\nendpoint = \"http://dst\"\n"
	                           "bucket = \"b\"\nprefix = \"mirror/\"\nregion = \"r\"\n"
	                           "path_style = false\n" S3_KEYS),
	                 SL_OK);
	assert_string_equal(c.pg.url, "host=db");
	assert_string_equal(c.pg.table, "pub.objs");
	assert_string_equal(c.pg.col_id, "i");
	assert_string_equal(c.pg.col_object_key, "ok");
	assert_string_equal(c.pg.col_competition_id, "ci");
	assert_string_equal(c.pg.col_agent_id, "ai");
	assert_string_equal(c.pg.col_data_type, "dt");
	assert_string_equal(c.pg.col_data, "d");
	assert_string_equal(c.pg.col_size_bytes, "sb");
	assert_string_equal(c.pg.col_created_at, "ca");
	assert_int_equal(c.batch_size, 100000);
	assert_int_equal(c.concurrency, 4);
	assert_int_equal(c.max_attempts, 1000);
	assert_int_equal(c.retry_base_ms, 2000);
	assert_int_equal(c.retry_max_ms, 604800000);
	assert_int_equal(c.part_size, (size_t)1024 << 20);
	assert_string_equal(c.source_s3.region, "eu-west-1");
	assert_int_equal(c.source_s3.path_style, 0);
	assert_int_equal(c.source_s3.concurrency, 4);
	assert_int_equal(c.source_s3.part_size, (size_t)1024 << 20);
	assert_string_equal(c.dest_s3.prefix, "mirror/");
	assert_string_equal(c.dest_s3.region, "r");
	assert_int_equal(c.dest_s3.path_style, 0);
	assert_int_equal(c.dest_s3.concurrency, 4);
	assert_int_equal(c.dest_s3.part_size, (size_t)1024 << 20);
	cli_config_free(&c);
	cli_config_free(&c); /* twice is fine: it zeroes */
	cli_config_free(NULL);
}

/* -------------------------------------------------------- environment */

static void test_env_fallbacks(void **state)
{
	const char *s3_dest = DB STATE "[destination]\ntype = \"s3\"\nendpoint = \"http://dst\"\n"
	                               "bucket = \"b\"\n";
	cli_config c;

	(void)state;
	setenv("SLUICE_DATABASE_URL", "postgresql://from-env", 1);
	assert_int_equal(parse(&c, STATE DIR_DEST), SL_OK);
	assert_string_equal(c.pg.url, "postgresql://from-env");
	cli_config_free(&c);
	/* The file wins over the environment. */
	assert_int_equal(parse(&c, MINIMAL), SL_OK);
	assert_string_equal(c.pg.url, "postgresql://db");
	cli_config_free(&c);
	/* An empty variable counts as unset. */
	setenv("SLUICE_DATABASE_URL", "", 1);
	expect_error(STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml: [database] url: missing (set it or SLUICE_DATABASE_URL)");
	unsetenv("SLUICE_DATABASE_URL");

	expect_error(s3_dest, SL_EINVAL,
	             "sluice.toml:5: [destination] access_key_id: missing (set it or "
	             "AWS_ACCESS_KEY_ID)");
	setenv("AWS_ACCESS_KEY_ID", "env-ak", 1);
	expect_error(s3_dest, SL_EINVAL,
	             "sluice.toml:5: [destination] secret_access_key: missing (set it or "
	             "AWS_SECRET_ACCESS_KEY)");
	setenv("AWS_SECRET_ACCESS_KEY", "env-sk", 1);
	assert_int_equal(parse(&c, s3_dest), SL_OK);
	assert_string_equal(c.dest_s3.access_key_id, "env-ak");
	assert_string_equal(c.dest_s3.secret_access_key, "env-sk");
	cli_config_free(&c);
	/* Both sections fall back; a key in the file wins for its section. */
	assert_int_equal(parse(&c, DB STATE "[s3]\nendpoint = \"http://src\"\nbucket = \"in\"\n"
	                                    "access_key_id = \"file-ak\"\n" DIR_DEST),
	                 SL_OK);
	assert_string_equal(c.source_s3.access_key_id, "file-ak");
	assert_string_equal(c.source_s3.secret_access_key, "env-sk");
	cli_config_free(&c);
}

/* ------------------------------------------------------------- recall */

/* Lines logged while parsing text whose message contains `what`. */
static int parse_logging(cli_config *c, const char *text, int *rc, const char *what)
{
	FILE *log = tmpfile();
	char line[2048];
	int n = 0;

	assert_non_null(log);
	sl_log_set_output(log);
	*rc = parse(c, text);
	sl_log_set_output(NULL);
	rewind(log);
	while (fgets(line, sizeof(line), log) != NULL)
		n += strstr(line, what) != NULL;
	fclose(log);
	return n;
}

/* recall-synchronizer's own config loads once it says where objects go;
 * its [recall] table is not read, and one line says so. */
static void test_recall_example(void **state)
{
	char text[4096];
	cli_config c;
	int rc;

	(void)state;
	snprintf(text, sizeof(text), "%s\n[destination]\ntype = \"dir\"\npath = \"out\"\n",
	         recall_example);
	assert_int_equal(parse_logging(&c, text, &rc, "[recall] is not read"), 1);
	assert_int_equal(rc, SL_OK);
	assert_string_equal(
	        c.pg.url, "postgresql://recall:recall_password@localhost:5432/recall_competitions");
	assert_int_equal(c.max_connections, 5);
	assert_int_equal(c.pg.s3_mode, 1);
	assert_string_equal(c.pg.col_bucket_name, "bucket_name");
	assert_string_equal(c.pg.col_content_hash, "content_hash");
	assert_string_equal(c.source_s3.endpoint, "https://s3.amazonaws.com");
	assert_string_equal(c.source_s3.bucket, "competition-data");
	assert_string_equal(c.source_s3.access_key_id, "YOUR_ACCESS_KEY");
	assert_string_equal(c.state_path, "./sync_state.db");
	assert_int_equal(c.batch_size, 100);
	assert_int_equal(c.dest_type, CLI_DEST_DIR);
	assert_int_equal(c.changes_mode, 0);
	assert_string_equal(c.slot, "sluice_object_index");
	assert_string_equal(c.publication, "sluice_object_index");
	cli_config_free(&c);

	/* As it is, without a [destination]: an error that says what to add,
	 * next to the [recall] line. */
	assert_int_equal(parse_logging(&c, recall_example, &rc, "[recall] is not read"), 1);
	assert_int_equal(rc, SL_EINVAL);
	assert_string_equal(sl_error_last()->message, NO_DESTINATION);
	assert_zeroed(&c);

	/* Any keys and types in [recall]; none elsewhere is ignored. */
	assert_int_equal(
	        parse_logging(&c, MINIMAL "[recall]\nx = 1\ny = true\nz = \"\"\n", &rc, "[recall]"),
	        1);
	assert_int_equal(rc, SL_OK);
	cli_config_free(&c);
	assert_int_equal(parse_logging(&c, MINIMAL, &rc, "[recall]"), 0);
	assert_int_equal(rc, SL_OK);
	cli_config_free(&c);
	expect_error(MINIMAL "[recall.sub]\nx = 1\n", SL_EINVAL,
	             "sluice.toml:8: [recall.sub]: unknown table (known: [database], "
	             "[database.columns], [sync_storage], [sync], [s3], [destination], [recall])");
}

static void test_state_db_path(void **state)
{
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, DB "[sync]\nstate_db_path = \"s.db\"\n" DIR_DEST), SL_OK);
	assert_string_equal(c.state_path, "s.db");
	cli_config_free(&c);
	assert_int_equal(parse(&c, DB STATE "[sync]\nstate_db_path = \"state.db\"\n" DIR_DEST),
	                 SL_OK);
	assert_string_equal(c.state_path, "state.db");
	cli_config_free(&c);
	expect_error(DB STATE "[sync]\nstate_db_path = \"other.db\"\n" DIR_DEST, SL_EINVAL,
	             "sluice.toml:6: [sync] state_db_path: [sync_storage] db_path (\"state.db\", "
	             "line 4) and [sync] state_db_path (\"other.db\", line 6) name different state "
	             "files; keep one");
	expect_error(DB "[sync]\nstate_db_path = \"other.db\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:6: [sync_storage] db_path: [sync_storage] db_path (\"state.db\", "
	             "line 6) and [sync] state_db_path (\"other.db\", line 4) name different state "
	             "files; keep one");
	expect_error(DB "[sync]\nstate_db_path = \"\"\n" DIR_DEST, SL_EINVAL,
	             "sluice.toml:4: [sync] state_db_path: must not be empty");
}

static void test_max_connections(void **state)
{
	const char *s3 = "[s3]\nendpoint = \"http://src\"\nbucket = \"in\"\n" S3_KEYS;
	char text[1024];
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, MINIMAL), SL_OK);
	assert_int_equal(c.max_connections, 0);
	assert_int_equal(cli_config_pg_connections_reserved(&c), 1);
	cli_config_free(&c);
	assert_int_equal(parse(&c, DB "max_connections = 2\n" STATE DIR_DEST), SL_OK);
	assert_int_equal(c.max_connections, 2);
	cli_config_free(&c);
	expect_error(DB "max_connections = 0\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] max_connections: 0 is out of range (1..1000)");
	expect_error(DB "max_connections = 1001\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] max_connections: 1001 is out of range (1..1000)");
	/* Direct mode needs a connection for the source and one per worker. */
	expect_error(DB "max_connections = 1\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] max_connections: 1 is too few: sluice opens 1 "
	             "besides its workers and one per worker (direct mode), so it needs at least "
	             "2");
	/* S3 mode: the workers read from S3. */
	snprintf(text, sizeof(text), "%s%s%s", DB "max_connections = 1\n" STATE, s3, DIR_DEST);
	assert_int_equal(parse(&c, text), SL_OK);
	assert_int_equal(c.max_connections, 1);
	cli_config_free(&c);
	expect_error(DB "max_connections = \"5\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] max_connections: expected an integer, got a "
	             "string");
}

static void test_changes_keys(void **state)
{
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, DB "mode = \"changes\"\nslot = \"my_slot_1\"\n"
	                              "publication = \"Pub Lication\"\n" STATE DIR_DEST),
	                 SL_OK);
	assert_int_equal(c.changes_mode, 1);
	assert_string_equal(c.slot, "my_slot_1");
	assert_string_equal(c.publication, "Pub Lication");
	cli_config_free(&c);
	assert_int_equal(parse(&c, DB "mode = \"poll\"\nslot = \"s\"\n" STATE DIR_DEST), SL_OK);
	assert_int_equal(c.changes_mode, 0);
	assert_string_equal(c.slot, "s");
	assert_string_equal(c.publication, "s");
	cli_config_free(&c);

	/* The default slot comes from the table's name without its schema. */
	assert_int_equal(parse(&c, DB "table = \"Recall.Object-Index 2\"\n" STATE DIR_DEST), SL_OK);
	assert_string_equal(c.slot, "sluice_object_index_2");
	assert_string_equal(c.publication, "sluice_object_index_2");
	cli_config_free(&c);
	assert_int_equal(parse(&c, DB "table = \"t_\xc3\xa9\"\n" STATE DIR_DEST), SL_OK);
	assert_string_equal(c.slot, "sluice_t___"); /* two bytes of UTF-8 */
	cli_config_free(&c);
	assert_int_equal(parse(&c, DB "table = \"abcdefghijklmnopqrstuvwxyz0123456789"
	                              "abcdefghijklmnopqrstuvwxyz\"\n" STATE DIR_DEST),
	                 SL_OK);
	assert_string_equal(c.slot,
	                    "sluice_abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrst");
	assert_int_equal(strlen(c.slot), 63);
	cli_config_free(&c);

	expect_error(DB "mode = \"stream\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] mode: expected \"poll\" or \"changes\", got "
	             "\"stream\"");
	expect_error(DB "slot = \"Slot\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] slot: \"Slot\" is not a replication slot name (1 "
	             "to 63 of a-z, 0-9 and _)");
	expect_error(DB "slot = \"\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] slot: \"\" is not a replication slot name (1 to 63 "
	             "of a-z, 0-9 and _)");
	expect_error(
	        DB "slot = "
	           "\"a234567890123456789012345678901234567890123456789012345678901234\"\n" STATE
	                   DIR_DEST,
	        SL_EINVAL,
	        "sluice.toml:3: [database] slot: "
	        "\"a234567890123456789012345678901234567890123456789012345678901234\" is not a "
	        "replication slot name (1 to 63 of a-z, 0-9 and _)");
	expect_error(DB "publication = \"a\\tb\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] publication: holds a control character");
	expect_error(DB "publication = \"\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:3: [database] publication: must not be empty");
}

static void test_recorded_columns(void **state)
{
	cli_config c;

	(void)state;
	assert_int_equal(parse(&c, DB "[database.columns]\nbucket_name = \"bkt\"\n"
	                              "content_hash = \"sha\"\n" STATE DIR_DEST),
	                 SL_OK);
	assert_string_equal(c.pg.col_bucket_name, "bkt");
	assert_string_equal(c.pg.col_content_hash, "sha");
	cli_config_free(&c);
	assert_int_equal(parse(&c, MINIMAL), SL_OK);
	assert_string_equal(c.pg.col_bucket_name, "bucket_name");
	assert_string_equal(c.pg.col_content_hash, "content_hash");
	cli_config_free(&c);
}

/* -------------------------------------------------------------- errors */

static void test_unknown_key_and_table(void **state)
{
	(void)state;
	expect_error(MINIMAL "colour = \"red\"\n", SL_EINVAL,
	             "sluice.toml:8: [destination] colour: unknown key");
	expect_error(MINIMAL "[colours]\nred = 1\n", SL_EINVAL,
	             "sluice.toml:8: [colours]: unknown table (known: [database], "
	             "[database.columns], [sync_storage], [sync], [s3], [destination], [recall])");
	expect_error(MINIMAL "[sync.extra]\n", SL_EINVAL,
	             "sluice.toml:8: [sync.extra]: unknown table (known: [database], "
	             "[database.columns], [sync_storage], [sync], [s3], [destination], [recall])");
	expect_error("batch_size = 10\n" MINIMAL, SL_EINVAL,
	             "sluice.toml:1: batch_size: unknown key (keys belong in a table such as "
	             "[sync])");
	/* A key of another table is unknown here. */
	expect_error(MINIMAL "[sync]\ndb_path = \"x\"\n", SL_EINVAL,
	             "sluice.toml:9: [sync] db_path: unknown key");
}

static void test_wrong_type(void **state)
{
	(void)state;
	expect_error(DB STATE "[sync]\nbatch_size = \"1000\"\n" DIR_DEST, SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: expected an integer, got a string");
	expect_error(MINIMAL "[s3]\npath_style = \"yes\"\n", SL_EINVAL,
	             "sluice.toml:9: [s3] path_style: expected a boolean, got a string");
	expect_error("[database]\nurl = 5\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:2: [database] url: expected a string, got an integer");
	expect_error(DB STATE "[destination]\ntype = true\n", SL_EINVAL,
	             "sluice.toml:6: [destination] type: expected a string, got a boolean");
}

static void test_out_of_range(void **state)
{
	(void)state;
	expect_error(MINIMAL "[sync]\nbatch_size = 0\n", SL_EINVAL,
	             "sluice.toml:9: [sync] batch_size: 0 is out of range (1..100000)");
	expect_error(MINIMAL "[sync]\nbatch_size = 100_001\n", SL_EINVAL,
	             "sluice.toml:9: [sync] batch_size: 100001 is out of range (1..100000)");
	expect_error(MINIMAL "[sync]\nconcurrency = 257\n", SL_EINVAL,
	             "sluice.toml:9: [sync] concurrency: 257 is out of range (1..256)");
	expect_error(MINIMAL "[sync]\nmax_attempts = -1\n", SL_EINVAL,
	             "sluice.toml:9: [sync] max_attempts: -1 is out of range (1..1000)");
	expect_error(MINIMAL "[sync]\npart_size_mb = 4\n", SL_EINVAL,
	             "sluice.toml:9: [sync] part_size_mb: 4 is out of range (5..1024)");
	expect_error(MINIMAL "[sync]\nretry_base_seconds = -1\n", SL_EINVAL,
	             "sluice.toml:9: [sync] retry_base_seconds: -1 is out of range (0..86400)");
	expect_error(MINIMAL "[sync]\nretry_max_seconds = 604801\n", SL_EINVAL,
	             "sluice.toml:9: [sync] retry_max_seconds: 604801 is out of range "
	             "(1..604800)");
	expect_error(MINIMAL "[sync]\nretry_base_seconds = 60\nretry_max_seconds = 10\n", SL_EINVAL,
	             "sluice.toml:10: [sync] retry_max_seconds: retry_base_seconds (60) is more "
	             "than retry_max_seconds (10)");
	expect_error(MINIMAL "[sync]\nretry_base_seconds = 7200\n", SL_EINVAL,
	             "sluice.toml:9: [sync] retry_base_seconds: retry_base_seconds (7200) is more "
	             "than retry_max_seconds (3600)");
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_error(STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml: [database] url: missing (set it or SLUICE_DATABASE_URL)");
	expect_error("[database]\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:1: [database] url: missing (set it or SLUICE_DATABASE_URL)");
	expect_error(DB DIR_DEST, SL_EINVAL,
	             "sluice.toml: [sync_storage] db_path: missing (or set [sync] state_db_path)");
	expect_error(DB STATE, SL_EINVAL, NO_DESTINATION);
	expect_error(DB STATE "[destination]\n", SL_EINVAL,
	             "sluice.toml:5: [destination] type: missing (\"s3\", \"dir\" or \"node\")");
	expect_error(DB STATE "[destination]\ntype = \"dir\"\n", SL_EINVAL,
	             "sluice.toml:5: [destination] path: missing (required for type = \"dir\")");
	expect_error(DB STATE "[destination]\ntype = \"s3\"\nbucket = \"b\"\n" S3_KEYS, SL_EINVAL,
	             "sluice.toml:5: [destination] endpoint: missing");
	expect_error(DB STATE "[destination]\ntype = \"s3\"\nendpoint = \"http://e\"\n" S3_KEYS,
	             SL_EINVAL, "sluice.toml:5: [destination] bucket: missing");
	expect_error(MINIMAL "[s3]\nendpoint = \"http://e\"\n" S3_KEYS, SL_EINVAL,
	             "sluice.toml:8: [s3] bucket: missing");
	expect_error(DB STATE "[destination]\ntype = \"node\"\nstore = \"d\"\n", SL_EINVAL,
	             "sluice.toml:5: [destination] namespace: missing");
	expect_error(DB STATE "[destination]\ntype = \"node\"\nnamespace = \"ns\"\n", SL_EINVAL,
	             "sluice.toml:5: [destination] store: missing (type = \"node\" needs store, "
	             "or url and token_file)");
	expect_error(DB STATE "[destination]\ntype = \"node\"\nnamespace = \"ns\"\n"
	                      "url = \"http://node\"\n",
	             SL_EINVAL,
	             "sluice.toml:5: [destination] token_file: missing (required with url)");
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_error(DB STATE "[destination]\ntype = \"ftp\"\n", SL_EINVAL,
	             "sluice.toml:6: [destination] type: expected \"s3\", \"dir\" or \"node\", got "
	             "\"ftp\"");
	expect_error(MINIMAL "bucket = \"b\"\n", SL_EINVAL,
	             "sluice.toml:8: [destination] bucket: not used with type = \"dir\"");
	expect_error(DB STATE "[destination]\ntype = \"node\"\nnamespace = \"ns\"\nstore = \"d\"\n"
	                      "url = \"http://n\"\n",
	             SL_EINVAL,
	             "sluice.toml:9: [destination] url: set either store or url, not both");
	expect_error(DB STATE "[destination]\ntype = \"node\"\nnamespace = \"ns\"\nstore = \"d\"\n"
	                      "token_file = \"t\"\n",
	             SL_EINVAL,
	             "sluice.toml:9: [destination] token_file: only used with url, not with store");
	expect_error(DB STATE
	             "[destination]\ntype = \"node\"\nnamespace = \".ns\"\nstore = \"d\"\n",
	             SL_EINVAL,
	             "sluice.toml:7: [destination] namespace: invalid namespace name '.ns': starts "
	             "with '.'");
	expect_error(DB STATE "[destination]\ntype = \"node\"\nnamespace = \"ns\"\n"
	                      "url = \"node:7070\"\ntoken_file = \"t\"\n",
	             SL_EINVAL,
	             "sluice.toml:8: [destination] url: expected a URL starting with http:// or "
	             "https://, got \"node:7070\"");
	expect_error(MINIMAL "[s3]\nendpoint = \"s3.amazonaws.com\"\n", SL_EINVAL,
	             "sluice.toml:9: [s3] endpoint: expected a URL starting with http:// or "
	             "https://, got \"s3.amazonaws.com\"");
	expect_error("[database]\nurl = \"\"\n" STATE DIR_DEST, SL_EINVAL,
	             "sluice.toml:2: [database] url: must not be empty");
}

static void test_token_file(void **state)
{
	char *dir = temp_dir(), path[4200], text[8192];
	const char *head = DB STATE "[destination]\ntype = \"node\"\nnamespace = \"ns\"\n"
	                            "url = \"http://127.0.0.1:7070\"\n";
	cli_config c;

	(void)state;
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/token", dir);
	snprintf(text, sizeof(text), "%stoken_file = \"%s\"\n", head, path);

	write_file(path, "abc\n", 4);
	assert_int_equal(parse(&c, text), SL_OK);
	assert_string_equal(c.node_token, "abc");
	assert_string_equal(c.node_url, "http://127.0.0.1:7070");
	assert_string_equal(c.node_namespace, "ns");
	cli_config_free(&c);

	write_file(path, "abc\r\n", 5);
	assert_int_equal(parse(&c, text), SL_OK);
	assert_string_equal(c.node_token, "abc");
	cli_config_free(&c);

	write_file(path, "abc", 3);
	assert_int_equal(parse(&c, text), SL_OK);
	assert_string_equal(c.node_token, "abc");
	cli_config_free(&c);

	/* One newline is cut, not two; the second is a control character. */
	write_file(path, "abc\n\n", 5);
	assert_int_equal(parse(&c, text), SL_EINVAL);
	assert_non_null(
	        strstr(sl_error_last()->message, "sluice.toml:9: [destination] token_file: "));
	assert_non_null(strstr(sl_error_last()->message, "control character (byte 3)"));

	write_file(path, "\n", 1);
	assert_int_equal(parse(&c, text), SL_EINVAL);
	assert_non_null(
	        strstr(sl_error_last()->message, "sluice.toml:9: [destination] token_file: "));
	assert_non_null(strstr(sl_error_last()->message, "holds an empty token"));
	assert_zeroed(&c);

	unlink(path);
	assert_int_equal(parse(&c, text), SL_EINVAL);
	{
		char expected[4400];
		snprintf(expected, sizeof(expected),
		         "sluice.toml:9: [destination] token_file: cannot read %s: No such file or "
		         "directory",
		         path);
		assert_string_equal(sl_error_last()->message, expected);
	}
	assert_zeroed(&c);
	tu_rmtree(dir);
	free(dir);
}

static void test_toml_errors_name_file_line_key(void **state)
{
	(void)state;
	expect_error(DB STATE "[sync]\nbatch_size = 1\nbatch_size = 2\n" DIR_DEST, SL_EINVAL,
	             "sluice.toml:7: [sync] batch_size: duplicate key (first at line 6)");
	expect_error(MINIMAL "[sync]\n[destination]\n", SL_EINVAL,
	             "sluice.toml:9: duplicate table [destination] (first at line 5)");
	expect_error("[database]\nurl = \"post\\qgres\"\n", SL_EINVAL,
	             "sluice.toml:2: [database] url: invalid escape: backslash followed by 'q'");
	expect_error("[database]\nurl = \"postgres\n", SL_EINVAL,
	             "sluice.toml:2: [database] url: unterminated string (a string ends on its "
	             "line)");
	expect_error(DB STATE "[sync]\nbatch_size = [1, 2]\n", SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: arrays are not supported");
	expect_error(DB STATE "[sync]\nbatch_size = {a = 1}\n", SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: inline tables are not supported");
	expect_error(DB STATE "[sync]\nbatch_size = 1.5\n", SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: floats are not supported");
	expect_error(DB STATE "[sync]\nbatch_size = 2026-01-01\n", SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: dates and times are not supported");
	expect_error(DB STATE "[sync]\nbatch_size = 99999999999999999999\n", SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: integer out of range (64-bit)");
	expect_error(DB STATE "[sync]\nbatch_size = 0100\n", SL_EINVAL,
	             "sluice.toml:6: [sync] batch_size: leading zeros are not allowed in integers");
	expect_error(DB "path = \"\"\"x\"\"\"\n", SL_EINVAL,
	             "sluice.toml:3: [database] path: multi-line strings are not supported");
	expect_error(DB "columns.id = \"x\"\n", SL_EINVAL,
	             "sluice.toml:3: dotted keys are not supported (use a [table] header)");
	expect_error(DB "[[sync]]\n", SL_EINVAL,
	             "sluice.toml:3: arrays of tables ([[...]]) are not supported");
	expect_error(DB "[sync]\nbatch_size = 10 20\n", SL_EINVAL,
	             "sluice.toml:4: [sync] batch_size: expected the end of the line, found '2'");
	expect_error(DB "[sync]\nbatch_size = hello\n", SL_EINVAL,
	             "sluice.toml:4: [sync] batch_size: expected a value: a \"quoted string\", an "
	             "integer, true or false");
	expect_error(DB "[sync]\nbatch_size =\n", SL_EINVAL,
	             "sluice.toml:4: [sync] batch_size: missing value after '='");
}

static void test_input_bounds(void **state)
{
	size_t big = CLI_TOML_MAX_INPUT + 1;
	char *text = malloc(big);
	cli_config c;
	const char nul[] = "[database]\nurl = \"a\0b\"\n";
	const char bad_utf8[] = "[database]\n# \xc3\x28\n";

	(void)state;
	assert_non_null(text);
	memset(text, '#', big);
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(cli_config_parse(&c, "sluice.toml", text, big), SL_ETOOLARGE);
	assert_string_equal(sl_error_last()->message, "sluice.toml: larger than 1048576 bytes");
	assert_zeroed(&c);
	free(text);

	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(cli_config_parse(&c, "sluice.toml", nul, sizeof(nul) - 1), SL_EINVAL);
	assert_string_equal(sl_error_last()->message, "sluice.toml:2: a NUL byte");
	assert_zeroed(&c);
	assert_int_equal(cli_config_parse(&c, "sluice.toml", bad_utf8, sizeof(bad_utf8) - 1),
	                 SL_EINVAL);
	assert_string_equal(sl_error_last()->message, "sluice.toml:2: invalid UTF-8 (byte 0x28)");

	/* The text need not end in NUL: only len bytes are read. */
	assert_int_equal(cli_config_parse(&c, "sluice.toml", MINIMAL "garbage", strlen(MINIMAL)),
	                 SL_OK);
	cli_config_free(&c);
	/* An empty file parses as TOML but misses [database] url. */
	assert_int_equal(cli_config_parse(&c, NULL, NULL, 0), SL_EINVAL);
	assert_string_equal(sl_error_last()->message,
	                    "config: [database] url: missing (set it or SLUICE_DATABASE_URL)");
}

static void test_load_errors(void **state)
{
	char *dir = temp_dir(), path[4200];
	cli_config c;
	char *big;

	(void)state;
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/none.toml", dir);
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(cli_config_load(&c, path), SL_ENOTFOUND);
	assert_zeroed(&c);
	assert_int_equal(cli_config_load(&c, dir), SL_EIO);
	assert_zeroed(&c);

	snprintf(path, sizeof(path), "%s/big.toml", dir);
	big = malloc(CLI_TOML_MAX_INPUT + 10);
	assert_non_null(big);
	memset(big, '\n', CLI_TOML_MAX_INPUT + 10);
	write_file(path, big, CLI_TOML_MAX_INPUT + 10);
	free(big);
	assert_int_equal(cli_config_load(&c, path), SL_ETOOLARGE);
	assert_zeroed(&c);

	snprintf(path, sizeof(path), "%s/sluice.toml", dir);
	write_file(path, MINIMAL "[sync]\nbatch_size = \"x\"\n", strlen(MINIMAL) + 24);
	assert_int_equal(cli_config_load(&c, path), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message,
	                       "/sluice.toml:9: [sync] batch_size: expected an integer, got a "
	                       "string"));
	tu_rmtree(dir);
	free(dir);
}

/* ---------------------------------------------------------------- TOML */

static const cli_toml_entry *find(const cli_toml_doc *doc, const char *table, const char *key)
{
	for (size_t i = 0; i < doc->n_entries; i++)
		if (strcmp(doc->entries[i].table, table) == 0 &&
		    strcmp(doc->entries[i].key, key) == 0)
			return &doc->entries[i];
	fail_msg("no key %s in [%s]", key, table);
	return NULL;
}

static void test_toml_values(void **state)
{
	const char text[] = "\xef\xbb\xbf# leading comment\n"
	                    "top = 1\n"
	                    "[ strings ]   # a comment after a header\n"
	                    "esc = \"q\\\" b\\\\ n\\n t\\t r\\r b\\b f\\f\"\n"
	                    "uni = \"caf\\u00e9 \\U0001F600 \\u00E9\"\n"
	                    "raw = 'C:\\path\\n \"quoted\"'  # literal: no escapes\n"
	                    "utf8 = \"ünï\"\n"
	                    "empty = \"\"\n"
	                    "hash = \"# not a comment\"\n"
	                    "\"quoted key\" = 1\n"
	                    "'lit.key' = 2\n"
	                    "\"bare\" = 3\n"
	                    "\t\n"
	                    "[ints]\r\n"
	                    "a = 1_000_000\r\n"
	                    "b = -9223372036854775808\n"
	                    "c = +9223372036854775807\n"
	                    "d = 0\n"
	                    "e = -0\n"
	                    "f = +0\n"
	                    "t = true\n"
	                    "u = false # comment\n"
	                    "[a.\"b.c\".d]\n"
	                    "x = 1";
	cli_toml_doc doc;

	(void)state;
	assert_int_equal(cli_toml_parse(&doc, NULL, text, sizeof(text) - 1), SL_OK);
	assert_int_equal(find(&doc, "", "top")->integer, 1);
	assert_string_equal(find(&doc, "strings", "esc")->str, "q\" b\\ n\n t\t r\r b\b f\f");
	assert_string_equal(find(&doc, "strings", "uni")->str,
	                    "caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa9");
	assert_string_equal(find(&doc, "strings", "raw")->str, "C:\\path\\n \"quoted\"");
	assert_string_equal(find(&doc, "strings", "utf8")->str, "ünï");
	assert_string_equal(find(&doc, "strings", "empty")->str, "");
	assert_string_equal(find(&doc, "strings", "hash")->str, "# not a comment");
	assert_int_equal(find(&doc, "strings", "\"quoted key\"")->integer, 1);
	assert_int_equal(find(&doc, "strings", "\"lit.key\"")->integer, 2);
	assert_int_equal(find(&doc, "strings", "bare")->integer, 3);
	assert_int_equal(find(&doc, "strings", "bare")->line, 12);
	assert_int_equal(find(&doc, "ints", "a")->integer, 1000000);
	assert_int_equal(find(&doc, "ints", "a")->line, 15);
	assert_true(find(&doc, "ints", "b")->integer == INT64_MIN);
	assert_true(find(&doc, "ints", "c")->integer == INT64_MAX);
	assert_int_equal(find(&doc, "ints", "d")->integer, 0);
	assert_int_equal(find(&doc, "ints", "e")->integer, 0);
	assert_int_equal(find(&doc, "ints", "f")->integer, 0);
	assert_int_equal(find(&doc, "ints", "t")->type, CLI_TOML_BOOL);
	assert_int_equal(find(&doc, "ints", "t")->boolean, 1);
	assert_int_equal(find(&doc, "ints", "u")->boolean, 0);
	assert_int_equal(find(&doc, "a.\"b.c\".d", "x")->integer, 1);
	assert_int_equal(doc.n_tables, 3);
	assert_string_equal(doc.tables[0].name, "strings");
	assert_int_equal(doc.tables[0].line, 3);
	assert_int_equal(find(&doc, "strings", "raw")->type, CLI_TOML_STRING);
	cli_toml_free(&doc);
	cli_toml_free(&doc);
	cli_toml_free(NULL);
}

static void test_toml_tables_and_keys(void **state)
{
	cli_toml_doc doc;
	const char ok[] = "[a.b]\nx = 1\n[a]\ny = 2\n[\"c\" . 'd']\n";

	(void)state;
	/* An implicit parent may be written once, later. */
	assert_int_equal(cli_toml_parse(&doc, NULL, ok, sizeof(ok) - 1), SL_OK);
	assert_int_equal(doc.n_tables, 3);
	assert_string_equal(doc.tables[2].name, "c.d");
	cli_toml_free(&doc);

	expect_toml_error("[a]\n[a]\n", "line 2: duplicate table [a] (first at line 1)");
	expect_toml_error("[a]\nb = 1\n[a.b]\n",
	                  "line 3: [a.b]: key b of [a] (line 2) is not a table");
	expect_toml_error("[a]\nb = 1\n[a.b.c]\n",
	                  "line 3: [a.b.c]: key b of [a] (line 2) is not a table");
	expect_toml_error("b = 1\n[b]\n", "line 2: [b]: key b (line 1) is not a table");
	expect_toml_error("[a.b]\n[a]\nb = 1\n",
	                  "line 3: [a] b: already defined as table [a.b] at line 1");
	expect_toml_error("[a]\nk = 1\n\"k\" = 2\n",
	                  "line 3: [a] k: duplicate key (first at line 2)");
	expect_toml_error("[a]\nk = 1\n'k' = 2\n",
	                  "line 3: [a] k: duplicate key (first at line 2)");
	expect_toml_error("[a]\n\"k\\u0001\" = 1\n\"k\\u0001\" = 2\n",
	                  "line 3: [a] \"k\\u0001\": duplicate key (first at line 2)");
	/* Same key in different tables is fine. */
	assert_int_equal(cli_toml_parse(&doc, NULL, "[a]\nk = 1\n[b]\nk = 1\n", 20), SL_OK);
	cli_toml_free(&doc);
	expect_toml_error("[a\n", "line 1: expected '.' or ']' in a table header, found byte 0x0a");
	expect_toml_error("[]\n", "line 1: expected a key, found ']'");
	expect_toml_error("[a] x\n", "line 1: expected the end of the line, found 'x'");
	expect_toml_error("= 1\n", "line 1: expected a key, found '='");
	expect_toml_error("a 1\n", "line 1: expected '=' after key a");
	expect_toml_error("a.b = 1\n",
	                  "line 1: dotted keys are not supported (use a [table] header)");
	expect_toml_error("a = 1\rb = 2\n", "line 1: a: a carriage return without a line feed");
	expect_toml_error("# ok\n# bell \x07\n", "line 2: control character U+0007 in a comment");
	expect_toml_error("# ok\r\n# cr \r# x\n", "line 2: a carriage return without a line feed");
}

static void test_toml_refusals(void **state)
{
	(void)state;
	expect_toml_error("a = \"\\x41\"\n",
	                  "line 1: a: invalid escape: backslash followed by 'x'");
	expect_toml_error("a = \"\\e\"\n", "line 1: a: invalid escape: backslash followed by 'e'");
	expect_toml_error("a = \"\\ \"\n",
	                  "line 1: a: invalid escape: backslash followed by byte 0x20");
	expect_toml_error("a = \"\\u12\"\n", "line 1: a: invalid escape: \\u needs 4 hex digits");
	expect_toml_error("a = \"\\U0001F60\"\n",
	                  "line 1: a: invalid escape: \\U needs 8 hex digits");
	expect_toml_error("a = \"\\uD800\"\n",
	                  "line 1: a: invalid escape: \\uD800 is not a Unicode scalar value");
	expect_toml_error("a = \"\\U00110000\"\n",
	                  "line 1: a: invalid escape: \\U00110000 is not a Unicode scalar value");
	expect_toml_error("a = \"\\u0000\"\n",
	                  "line 1: a: a NUL character (\\u0000) is not supported");
	expect_toml_error(
	        "a = \"tab\tok bell\x07\"\n",
	        "line 1: a: control character U+0007 in a string (write it as an escape)");
	expect_toml_error("a = 'x\x7f'\n",
	                  "line 1: a: control character U+007F in a literal string");
	expect_toml_error("a = 'abc\n",
	                  "line 1: a: unterminated string (a string ends on its line)");
	expect_toml_error("a = \"abc\\", "line 1: a: unterminated string");
	expect_toml_error("a = '''x'''\n", "line 1: a: multi-line strings are not supported");
	expect_toml_error("a = 0x1F\n",
	                  "line 1: a: hexadecimal, octal and binary integers are not supported");
	expect_toml_error("a = 0o17\n",
	                  "line 1: a: hexadecimal, octal and binary integers are not supported");
	expect_toml_error("a = 1e3\n", "line 1: a: floats are not supported");
	expect_toml_error("a = -1E-3\n", "line 1: a: floats are not supported");
	expect_toml_error("a = inf\n", "line 1: a: floats are not supported");
	expect_toml_error("a = -nan\n", "line 1: a: floats are not supported");
	expect_toml_error("a = 07:32:00\n", "line 1: a: dates and times are not supported");
	expect_toml_error("a = 1979-05-27T07:32:00Z\n",
	                  "line 1: a: dates and times are not supported");
	expect_toml_error("a = 1__0\n", "line 1: a: '_' in an integer must stand between digits");
	expect_toml_error("a = 10_\n", "line 1: a: '_' in an integer must stand between digits");
	expect_toml_error("a = +\n", "line 1: a: invalid integer '+'");
	expect_toml_error("a = 12abc\n", "line 1: a: invalid integer '12abc'");
	expect_toml_error("a = 9223372036854775808\n", "line 1: a: integer out of range (64-bit)");
	expect_toml_error("a = -9223372036854775809\n", "line 1: a: integer out of range (64-bit)");
	expect_toml_error("a = True\n",
	                  "line 1: a: expected a value: a \"quoted string\", an integer, true or "
	                  "false");
	expect_toml_error("a = truex\n",
	                  "line 1: a: expected a value: a \"quoted string\", an integer, true or "
	                  "false");
}

/* Every allocation of a full parse fails in turn: SL_ENOMEM each time,
 * nothing leaks (ASan), *out zeroed; then the parse succeeds. */
static void test_allocation_failures(void **state)
{
	char path[4096];
	char *text;
	cli_config c;
	int rc = SL_ENOMEM;
	long n;

	(void)state;
	example_path(path, sizeof(path));
	text = read_file(path);
	for (n = 0; n < 10000 && rc == SL_ENOMEM; n++) {
		memset(&c, 0xa5, sizeof(c));
		sl_alloc_fail_after(n, 0);
		rc = parse(&c, text);
		sl_alloc_fail_after(-1, 0);
		if (rc == SL_ENOMEM)
			assert_zeroed(&c);
	}
	assert_int_equal(rc, SL_OK);
	assert_true(n > 20);
	cli_config_free(&c);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_example_parses, clear_env),
	        cmocka_unit_test_setup(test_example_dir_block, clear_env),
	        cmocka_unit_test_setup(test_example_node_block, clear_env),
	        cmocka_unit_test_setup(test_defaults, clear_env),
	        cmocka_unit_test_setup(test_every_value, clear_env),
	        cmocka_unit_test_setup(test_env_fallbacks, clear_env),
	        cmocka_unit_test_setup(test_recall_example, clear_env),
	        cmocka_unit_test_setup(test_state_db_path, clear_env),
	        cmocka_unit_test_setup(test_max_connections, clear_env),
	        cmocka_unit_test_setup(test_changes_keys, clear_env),
	        cmocka_unit_test_setup(test_recorded_columns, clear_env),
	        cmocka_unit_test_setup(test_unknown_key_and_table, clear_env),
	        cmocka_unit_test_setup(test_wrong_type, clear_env),
	        cmocka_unit_test_setup(test_out_of_range, clear_env),
	        cmocka_unit_test_setup(test_missing_required, clear_env),
	        cmocka_unit_test_setup(test_bad_values, clear_env),
	        cmocka_unit_test_setup(test_token_file, clear_env),
	        cmocka_unit_test_setup(test_toml_errors_name_file_line_key, clear_env),
	        cmocka_unit_test_setup(test_input_bounds, clear_env),
	        cmocka_unit_test_setup(test_load_errors, clear_env),
	        cmocka_unit_test_setup(test_toml_values, clear_env),
	        cmocka_unit_test_setup(test_toml_tables_and_keys, clear_env),
	        cmocka_unit_test_setup(test_toml_refusals, clear_env),
	        cmocka_unit_test_setup(test_allocation_failures, clear_env),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
