/*
 * Key-value commands: `put`, `get`, `del` and `ls`. Each write is one
 * commit through an sl_batch, so it is atomic and visible to readers only
 * once committed. Keys are validated here before the store is touched, so
 * a bad key gets the same message whatever the command. Values are read
 * whole (capped at SL_VALUE_MAX) because the store takes them whole.
 */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/dag.h"
#include "sluice/sync.h"

/* In a dag namespace: one entry on top of the tips, signed by the node
 * key, which must be allowed to write. */
static int write_dag(const cli_cmd *cmd, sl_store *store, const char *ns, const char *key,
                     const sl_buf *value)
{
	sl_dag_write w;
	sl_bytes v = {value ? value->data : NULL, value ? value->len : 0};
	sl_node_key node;
	int rc;

	memset(&w, 0, sizeof(w));
	w.kind = value ? SL_DAG_SET : SL_DAG_DELETE;
	w.key = key;
	w.key_len = strlen(key);
	rc = sl_node_key_load(&node, cmd->dir, 0) == SL_OK &&
	                     sl_dag_write_entry(store, ns, node.sk, &w, &v, 1, NULL) == SL_OK
	             ? CLI_OK
	             : cli_fail(cmd->name);
	memset(&node, 0, sizeof(node));
	return rc;
}

/* A one-entry commit: put (value non-NULL) or delete (value NULL). */
static int write_one(const cli_cmd *cmd, const char *ns, const char *key, const sl_buf *value)
{
	sl_store *store = NULL;
	sl_batch *batch = NULL;
	sl_ns_info info;
	int rc;

	rc = cli_open_store(cmd, 0, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_ns_info(store, ns, &info) == SL_OK && info.kind == SL_NS_DAG) {
		rc = write_dag(cmd, store, ns, key, value);
		goto cleanup;
	}
	if (sl_batch_new(&batch, store, ns) != SL_OK ||
	    (value ? sl_batch_put(batch, key, strlen(key), value->data, value->len)
	           : sl_batch_del(batch, key, strlen(key))) != SL_OK ||
	    sl_batch_commit(batch, NULL) != SL_OK) {
		rc = cli_fail(cmd->name);
		goto cleanup;
	}
	rc = CLI_OK;
cleanup:
	sl_batch_free(batch);
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------------- put */

static const char put_usage[] =
        "Usage: sluice put [-d DIR] NS KEY [FILE|-]\n"
        "\n"
        "Set KEY in namespace NS to the contents of FILE, or of stdin when FILE is\n"
        "'-' or missing (at most 1 GiB). In an immutable namespace, setting a key\n"
        "again to the same value changes nothing and to another value is an error.\n"
        "A KEY that starts with '-' goes after '--'.\n";

int cli_cmd_put(int argc, char **argv)
{
	cli_cmd cmd = {.name = "put", .usage = put_usage, .min_args = 2, .max_args = 3};
	sl_buf value = SL_BUF_INIT(SL_VALUE_MAX);
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_check_key(cmd.name, cmd.args[1]);
	if (rc != CLI_OK)
		goto cleanup;
	if (cli_read_file(&value, cmd.n_args == 3 ? cmd.args[2] : NULL, SL_VALUE_MAX) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	rc = write_one(&cmd, cmd.args[0], cmd.args[1], &value);
cleanup:
	sl_buf_free(&value);
	return rc;
}

/* ------------------------------------------------------------------- del */

static const char del_usage[] =
        "Usage: sluice del [-d DIR] NS KEY\n"
        "\n"
        "Delete KEY from the mutable namespace NS. Deleting an absent key is not an\n"
        "error and changes nothing.\n";

int cli_cmd_del(int argc, char **argv)
{
	cli_cmd cmd = {.name = "del", .usage = del_usage, .min_args = 2, .max_args = 2};
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_check_key(cmd.name, cmd.args[1]);
	if (rc != CLI_OK)
		return rc;
	return write_one(&cmd, cmd.args[0], cmd.args[1], NULL);
}

/* ------------------------------------------------------------------- get */

static const char get_usage[] = "Usage: sluice get [-d DIR] NS KEY\n"
                                "\n"
                                "Write the latest value of KEY in namespace NS to stdout, as is.\n";

int cli_cmd_get(int argc, char **argv)
{
	cli_cmd cmd = {.name = "get", .usage = get_usage, .min_args = 2, .max_args = 2};
	sl_store *store = NULL;
	sl_buf value = SL_BUF_INIT(SL_VALUE_MAX);
	const char *key;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	key = cmd.args[1];
	rc = cli_check_key(cmd.name, key);
	if (rc != CLI_OK)
		goto cleanup;
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_get(store, cmd.args[0], key, strlen(key), &value, NULL) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (value.len > 0 && fwrite(value.data, 1, value.len, stdout) != value.len) {
		rc = cli_errorf(cmd.name, "cannot write to stdout: %s", strerror(errno));
		goto cleanup;
	}
	rc = CLI_OK;
cleanup:
	sl_buf_free(&value);
	sl_store_free(store);
	return rc;
}

/* -------------------------------------------------------------------- ls */

static const char ls_usage[] =
        "Usage: sluice ls [-d DIR] [--json] NS [PREFIX]\n"
        "\n"
        "List the live keys of namespace NS that start with PREFIX (bytewise, so\n"
        "'a/b' also matches 'a/bc'), in bytewise order, one per line.\n"
        "\n"
        "      --json  one object per line: {\"key\", \"loc\", \"size\", \"digest\"}\n";

typedef struct ls_ctx {
	const char *name;
	int json;
	int rc; /* CLI_FAIL once an entry could not be printed */
} ls_ctx;

static int ls_entry(void *ctx, const sl_key_entry *e)
{
	ls_ctx *lc = ctx;
	json_t *obj;

	if (!lc->json) {
		printf("%.*s\n", (int)e->key_len, e->key);
		return 0;
	}
	obj = json_object();
	if (obj &&
	    (cli_json_set(obj, "key", json_stringn(e->key, e->key_len)) != 0 ||
	     cli_json_set(obj, "loc", cli_json_u64(e->loc)) != 0 ||
	     cli_json_set(obj, "size", cli_json_u64(e->value_len)) != 0 ||
	     cli_json_set(obj, "digest", json_string(sl_digest_to_hex(&e->digest).s)) != 0)) {
		json_decref(obj);
		obj = NULL;
	}
	lc->rc = cli_json_print(lc->name, obj);
	/* Non-zero stops the walk. */
	return lc->rc == CLI_OK ? 0 : 1;
}

int cli_cmd_ls(int argc, char **argv)
{
	cli_cmd cmd = {
	        .name = "ls", .usage = ls_usage, .flags = CLI_JSON, .min_args = 1, .max_args = 2};
	sl_store *store = NULL;
	ls_ctx lc = {.name = "ls", .rc = CLI_OK};
	const char *prefix;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	lc.json = cmd.json;
	prefix = cmd.n_args == 2 ? cmd.args[1] : "";
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_list(store, cmd.args[0], prefix, strlen(prefix), ls_entry, &lc) != SL_OK) {
		/* A walk stopped by ls_entry has reported already. */
		rc = lc.rc != CLI_OK ? lc.rc : cli_fail(cmd.name);
		goto cleanup;
	}
	rc = CLI_OK;
cleanup:
	sl_store_free(store);
	return rc;
}
