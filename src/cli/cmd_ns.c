/*
 * Store and namespace administration: `sluice init` creates the store
 * directory and database (and says so, exiting 0, when one is already
 * there); `sluice ns create` adds a namespace of a kind; `sluice ns list`
 * prints every namespace with its current target as a table or as one JSON
 * object per line.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "sluice/dag.h"
#include "sluice/sync.h"

#define OPT_KIND CLI_OPT_CMD

/* ------------------------------------------------------------------ init */

static const char init_usage[] =
        "Usage: sluice init [-d DIR]\n"
        "\n"
        "Create a store in DIR (the directory and DIR/sluice.db). If DIR already\n"
        "holds a store, say so and change nothing.\n";

int cli_cmd_init(int argc, char **argv)
{
	cli_cmd cmd = {.name = "init", .usage = init_usage};
	sl_store *store = NULL;
	char db_path[4096];
	struct stat st;
	int exists;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	snprintf(db_path, sizeof(db_path), "%s/sluice.db", cmd.dir);
	exists = stat(db_path, &st) == 0;
	/* Opening an existing store without SL_STORE_CREATE also checks that it
	 * is one. */
	rc = cli_open_store(&cmd, exists ? 0 : SL_STORE_CREATE, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (exists)
		printf("store already exists in %s\n", cmd.dir);
	else
		printf("created store in %s\n", cmd.dir);
	rc = CLI_OK;
cleanup:
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------- ns create */

static const char ns_create_usage[] =
        "Usage: sluice ns create [-d DIR] NAME --kind immutable|mutable|dag\n"
        "\n"
        "Create namespace NAME: 1..64 bytes of [A-Za-z0-9_.-], not starting with '.'.\n"
        "\n"
        "  -k, --kind KIND  immutable: a key is set once; setting it again to another\n"
        "                   value is an error. mutable: keys can be updated and deleted.\n"
        "                   dag: many writers, each write a signed entry; its root\n"
        "                   entry, signed by the node key (DIR/node.key), makes that\n"
        "                   key the namespace's admin.\n";

static const struct option ns_create_options[] = {
        {"kind", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
};

static int ns_create_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	sl_ns_kind *kind = ctx;

	(void)opt; /* --kind is the only one */
	if (sl_ns_kind_parse(kind, arg) != SL_OK)
		return cli_usage_error(
		        cmd->name, "--kind must be 'immutable', 'mutable' or 'dag', not '%s'", arg);
	return CLI_OK;
}

static int ns_create(int argc, char **argv)
{
	cli_cmd cmd = {.name = "ns create",
	               .usage = ns_create_usage,
	               .options = ns_create_options,
	               .min_args = 1,
	               .max_args = 1};
	sl_ns_kind kind = 0;
	sl_store *store = NULL;
	const char *name;
	int rc = cli_parse(&cmd, argc, argv, ns_create_opt, &kind);

	if (rc != CLI_CONTINUE)
		return rc;
	name = cmd.args[0];
	if (kind == 0)
		return cli_usage_error(cmd.name, "--kind immutable|mutable|dag is required");
	if (sl_ns_name_validate(name) != SL_OK)
		return cli_fail(cmd.name);
	rc = cli_open_store(&cmd, 0, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (kind == SL_NS_DAG) {
		/* Its root entry, signed by the node key, makes that key admin. */
		sl_node_key key;
		sl_digest id;
		rc = sl_node_key_load(&key, cmd.dir, 1) == SL_OK &&
		                     sl_dag_create(store, name, key.sk, &id) == SL_OK
		             ? CLI_OK
		             : cli_fail(cmd.name);
		memset(&key, 0, sizeof(key));
		if (rc == CLI_OK)
			printf("created dag namespace %s (id %s)\n", name, sl_digest_to_hex(&id).s);
		goto cleanup;
	}
	if (sl_store_ns_create(store, name, kind) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	printf("created %s namespace %s\n", sl_ns_kind_name(kind), name);
	rc = CLI_OK;
cleanup:
	sl_store_free(store);
	return rc;
}

/* --------------------------------------------------------------- ns list */

static const char ns_list_usage[] =
        "Usage: sluice ns list [-d DIR] [--json]\n"
        "\n"
        "List namespaces: name, kind, size (operations), floor and root.\n"
        "\n"
        "      --json  one object per line: {\"name\", \"kind\", \"size\", \"floor\",\n"
        "              \"root\", \"keys\", \"pruned\"}\n";

static json_t *ns_json(const sl_ns_info *info)
{
	sl_digest_hex root = sl_digest_to_hex(&info->target.root);
	json_t *obj = json_object();

	if (!obj || cli_json_set(obj, "name", json_string(info->name)) != 0 ||
	    cli_json_set(obj, "kind", json_string(sl_ns_kind_name(info->kind))) != 0 ||
	    cli_json_set(obj, "size", cli_json_u64(info->target.size)) != 0 ||
	    cli_json_set(obj, "floor", cli_json_u64(info->target.floor)) != 0 ||
	    cli_json_set(obj, "root", json_string(root.s)) != 0 ||
	    cli_json_set(obj, "keys", cli_json_u64(info->keys)) != 0 ||
	    cli_json_set(obj, "pruned", cli_json_u64(info->pruned)) != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static int ns_list(int argc, char **argv)
{
	cli_cmd cmd = {.name = "ns list", .usage = ns_list_usage, .flags = CLI_JSON};
	sl_store *store = NULL;
	sl_ns_info *list = NULL;
	size_t n = 0;
	int width = 4; /* "NAME" */
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_ns_list(store, &list, &n) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		int len = (int)strlen(list[i].name);
		if (len > width)
			width = len;
	}
	if (!cmd.json)
		printf("%-*s %-9s %10s %10s %s\n", width, "NAME", "KIND", "SIZE", "FLOOR", "ROOT");
	for (size_t i = 0; i < n; i++) {
		const sl_ns_info *info = &list[i];

		if (cmd.json) {
			rc = cli_json_print(cmd.name, ns_json(info));
			if (rc != CLI_OK)
				goto cleanup;
		} else {
			printf("%-*s %-9s %10llu %10llu %s\n", width, info->name,
			       sl_ns_kind_name(info->kind), (unsigned long long)info->target.size,
			       (unsigned long long)info->target.floor,
			       sl_digest_to_hex(&info->target.root).s);
		}
	}
	rc = CLI_OK;
cleanup:
	sl_free(list);
	sl_store_free(store);
	return rc;
}

/* -------------------------------------------------------------------- ns */

static const char ns_usage[] = "Usage: sluice ns COMMAND [ARGS]\n"
                               "\n"
                               "Create and list namespaces.\n";

static const cli_command ns_commands[] = {
        {"create", ns_create, "create a namespace: NAME --kind immutable|mutable|dag"},
        {"list", ns_list, "list namespaces with size, floor and root"},
};

int cli_cmd_ns(int argc, char **argv)
{
	return cli_dispatch("ns", ns_usage, ns_commands,
	                    sizeof(ns_commands) / sizeof(ns_commands[0]), argc, argv);
}
