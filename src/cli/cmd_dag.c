/*
 * DAG namespaces on the command line (`sluice dag ...`): `info` (the
 * namespace id, counts, tips and this node's role), `log` and `tips`
 * (entries, as text or one JSON object per line), `grant` (an admin
 * sets a key's role), and `key` (this node's public key, which others
 * grant roles to). Writing keys goes through `sluice put` and `del`,
 * which sign an entry with the node key in a dag namespace.
 */
#include <string.h>

#include "cli/cli.h"
#include "sluice/dag.h"
#include "sluice/sync.h"

/* ------------------------------------------------------------- printing */

static json_t *write_json(const sl_dag_write *w)
{
	json_t *obj = json_object();
	if (!obj)
		return NULL;
	if (w->kind == SL_DAG_SET) {
		if (cli_json_set(obj, "set", json_stringn(w->key, w->key_len)) == 0 &&
		    cli_json_set(obj, "size", cli_json_u64(w->value_len)) == 0 &&
		    cli_json_set(obj, "digest", json_string(sl_digest_to_hex(&w->digest).s)) == 0)
			return obj;
	} else if (w->kind == SL_DAG_DELETE) {
		if (cli_json_set(obj, "delete", json_stringn(w->key, w->key_len)) == 0)
			return obj;
	} else {
		if (cli_json_set(obj, "role",
		                 json_string(sl_digest_to_hex((const sl_digest *)w->pk).s)) == 0 &&
		    cli_json_set(obj, "to", json_string(sl_dag_role_name(w->role))) == 0)
			return obj;
	}
	json_decref(obj);
	return NULL;
}

static json_t *entry_json(const sl_dag_entry *e)
{
	json_t *obj = json_object(), *parents = json_array(), *writes = json_array();
	if (!obj || !parents || !writes)
		goto fail;
	for (size_t i = 0; i < e->n_parents; i++)
		if (json_array_append_new(parents, json_string(sl_digest_to_hex(&e->parents[i]).s)))
			goto fail;
	for (size_t i = 0; i < e->n_writes; i++) {
		json_t *w = write_json(&e->writes[i]);
		if (!w || json_array_append_new(writes, w))
			goto fail;
	}
	if (cli_json_set(obj, "id", json_string(sl_digest_to_hex(&e->id).s)) == 0 &&
	    cli_json_set(obj, "height", cli_json_u64(e->height)) == 0 &&
	    cli_json_set(obj, "author",
	                 json_string(sl_digest_to_hex((const sl_digest *)e->author).s)) == 0 &&
	    cli_json_set(obj, "time_ms", cli_json_u64(e->time_ms)) == 0 &&
	    cli_json_set(obj, "parents", parents) == 0 && cli_json_set(obj, "writes", writes) == 0)
		return obj;
	json_decref(obj);
	return NULL;
fail:
	json_decref(obj);
	json_decref(parents);
	json_decref(writes);
	return NULL;
}

/* "<height> <id> by <author>: set KEY (N bytes), delete KEY, role PK=ROLE" */
static void entry_text(const sl_dag_entry *e)
{
	char key[3 * SL_KEY_MAX + 8];
	printf("%llu %s by %.16s:", (unsigned long long)e->height, sl_digest_to_hex(&e->id).s,
	       sl_digest_to_hex((const sl_digest *)e->author).s);
	if (e->n_parents == 0)
		printf(" root");
	for (size_t i = 0; i < e->n_writes; i++) {
		const sl_dag_write *w = &e->writes[i];
		printf("%s", i || e->n_parents == 0 ? ", " : " ");
		if (w->kind == SL_DAG_SET)
			printf("set %s (%llu bytes)",
			       cli_escape(key, sizeof(key), w->key, w->key_len),
			       (unsigned long long)w->value_len);
		else if (w->kind == SL_DAG_DELETE)
			printf("delete %s", cli_escape(key, sizeof(key), w->key, w->key_len));
		else
			printf("role %.16s=%s", sl_digest_to_hex((const sl_digest *)w->pk).s,
			       sl_dag_role_name(w->role));
	}
	printf("\n");
}

typedef struct print_ctx {
	const cli_cmd *cmd;
} print_ctx;

static int print_entry(void *ctx, const sl_dag_entry *e, const uint8_t *encoding, size_t len)
{
	const print_ctx *p = ctx;
	(void)encoding;
	(void)len;
	if (p->cmd->json)
		return cli_json_print(p->cmd->name, entry_json(e)) == CLI_OK ? 0 : 1; /* reported */
	entry_text(e);
	return 0;
}

typedef int (*each_fn)(sl_store *s, const char *ns, sl_dag_entry_fn cb, void *ctx);

/* `dag log` and `dag tips`: entries of each(), printed. */
static int print_entries(cli_cmd *cmd, int argc, char **argv, each_fn each)
{
	sl_store *store = NULL;
	print_ctx ctx = {cmd};
	int rc = cli_parse(cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	if ((rc = cli_open_store(cmd, SL_STORE_READONLY, &store)) == CLI_OK) {
		int got = each(store, cmd->args[0], print_entry, &ctx);
		rc = got == SL_OK ? CLI_OK : got > 0 ? CLI_FAIL : cli_fail(cmd->name);
	}
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------- commands */

static const char log_usage[] =
        "Usage: sluice dag log [-d DIR] [--json] NS\n"
        "\n"
        "Print every entry of dag namespace NS in (height, id) order: height, id,\n"
        "author (its first 16 hex digits) and writes, one entry a line.\n"
        "\n"
        "      --json  one object a line: {\"id\", \"height\", \"author\", \"time_ms\",\n"
        "              \"parents\": [id], \"writes\": [{\"set\": KEY, \"size\", \"digest\"}\n"
        "              | {\"delete\": KEY} | {\"role\": KEY, \"to\": ROLE}]}\n";

static int dag_log(int argc, char **argv)
{
	cli_cmd cmd = {.name = "dag log",
	               .usage = log_usage,
	               .flags = CLI_JSON,
	               .min_args = 1,
	               .max_args = 1};
	return print_entries(&cmd, argc, argv, sl_dag_log);
}

static const char tips_usage[] =
        "Usage: sluice dag tips [-d DIR] [--json] NS\n"
        "\n"
        "Print the tips of dag namespace NS, the entries no other entry is written\n"
        "on top of, as `sluice dag log` prints entries. The next write names them\n"
        "as its parents.\n";

static int dag_tips(int argc, char **argv)
{
	cli_cmd cmd = {.name = "dag tips",
	               .usage = tips_usage,
	               .flags = CLI_JSON,
	               .min_args = 1,
	               .max_args = 1};
	return print_entries(&cmd, argc, argv, sl_dag_tips);
}

static const char info_usage[] =
        "Usage: sluice dag info [-d DIR] [--json] NS\n"
        "\n"
        "Print dag namespace NS: its id (the root entry's), the entries held, live\n"
        "keys, the greatest height, the tips, and the role of this node's key.\n"
        "\n"
        "      --json  {\"id\", \"entries\", \"keys\", \"height\", \"tips\": [id] (the\n"
        "               first 16), \"n_tips\", \"node\": KEY, \"role\": ROLE}\n";

static int dag_info(int argc, char **argv)
{
	cli_cmd cmd = {.name = "dag info",
	               .usage = info_usage,
	               .flags = CLI_JSON,
	               .min_args = 1,
	               .max_args = 1};
	sl_store *store = NULL;
	sl_node_key key;
	sl_dag_info info;
	sl_dag_role role = SL_DAG_NONE;
	int has_key;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	if ((rc = cli_open_store(&cmd, SL_STORE_READONLY, &store)) != CLI_OK)
		goto cleanup;
	has_key = sl_node_key_load(&key, cmd.dir, 0) == SL_OK;
	if (sl_dag_info_get(store, cmd.args[0], &info) != SL_OK ||
	    (has_key && sl_dag_role_of(store, cmd.args[0], key.pk, &role) != SL_OK)) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (cmd.json) {
		json_t *obj = json_object(), *tips = json_array();
		for (size_t i = 0; tips && i < info.n_tips && i < SL_DAG_MAX_PARENTS; i++)
			json_array_append_new(tips, json_string(sl_digest_to_hex(&info.tips[i]).s));
		if (!obj || cli_json_set(obj, "id", json_string(sl_digest_to_hex(&info.ns_id).s)) ||
		    cli_json_set(obj, "entries", cli_json_u64(info.entries)) ||
		    cli_json_set(obj, "keys", cli_json_u64(info.keys)) ||
		    cli_json_set(obj, "height", cli_json_u64(info.max_height)) ||
		    cli_json_set(obj, "tips", tips) ||
		    cli_json_set(obj, "n_tips", cli_json_u64(info.n_tips)) ||
		    cli_json_set(
		            obj, "node",
		            has_key ? json_string(sl_digest_to_hex((const sl_digest *)key.pk).s)
		                    : json_null()) ||
		    cli_json_set(obj, "role", json_string(sl_dag_role_name(role)))) {
			json_decref(obj);
			obj = NULL;
		}
		rc = cli_json_print(cmd.name, obj);
		goto cleanup;
	}
	printf("id       %s\nentries  %llu\nkeys     %llu\nheight   %llu\n",
	       sl_digest_to_hex(&info.ns_id).s, (unsigned long long)info.entries,
	       (unsigned long long)info.keys, (unsigned long long)info.max_height);
	for (size_t i = 0; i < info.n_tips && i < SL_DAG_MAX_PARENTS; i++)
		printf("%s %s\n", i ? "        " : "tips    ", sl_digest_to_hex(&info.tips[i]).s);
	if (info.n_tips > SL_DAG_MAX_PARENTS)
		printf("         ... %zu tips in all (`sluice dag tips`)\n", info.n_tips);
	if (has_key)
		printf("node     %s (%s)\n", sl_digest_to_hex((const sl_digest *)key.pk).s,
		       sl_dag_role_name(role));
	else
		printf("node     no key in %s\n", cmd.dir);
	rc = CLI_OK;
cleanup:
	memset(&key, 0, sizeof(key));
	sl_store_free(store);
	return rc;
}

static const char grant_usage[] =
        "Usage: sluice dag grant [-d DIR] NS KEY ROLE\n"
        "\n"
        "Set the role of KEY (an Ed25519 public key, 64 hex digits, as `sluice key`\n"
        "prints it) in dag namespace NS: none, read, write or admin. The entry is\n"
        "signed with this node's key, which must be an admin of NS.\n";

static int dag_grant(int argc, char **argv)
{
	cli_cmd cmd = {.name = "dag grant", .usage = grant_usage, .min_args = 3, .max_args = 3};
	sl_store *store = NULL;
	sl_node_key key;
	sl_dag_write w;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	memset(&w, 0, sizeof(w));
	memset(&key, 0, sizeof(key));
	w.kind = SL_DAG_ROLE;
	if ((rc = cli_parse_node_key(cmd.name, cmd.args[1], w.pk)) != CLI_OK)
		return rc;
	if (sl_dag_role_parse(&w.role, cmd.args[2]) != SL_OK)
		return cli_usage_error(cmd.name, "%s", sl_error_last()->message);
	if ((rc = cli_open_store(&cmd, 0, &store)) != CLI_OK)
		goto cleanup;
	if (sl_node_key_load(&key, cmd.dir, 0) != SL_OK ||
	    sl_dag_write_entry(store, cmd.args[0], key.sk, &w, NULL, 1, NULL) != SL_OK)
		rc = cli_fail(cmd.name);
cleanup:
	memset(&key, 0, sizeof(key));
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------------ dag */

static const char dag_usage[] = "Usage: sluice dag COMMAND [ARGS]\n"
                                "\n"
                                "Read dag namespaces and set roles in them.\n";

static const cli_command dag_commands[] = {
        {"info", dag_info, "the namespace id, counts, tips and this node's role"},
        {"log", dag_log, "every entry in (height, id) order"},
        {"tips", dag_tips, "the entries the next write goes on top of"},
        {"grant", dag_grant, "set a key's role: NS KEY none|read|write|admin"},
};

int cli_cmd_dag(int argc, char **argv)
{
	return cli_dispatch("dag", dag_usage, dag_commands,
	                    sizeof(dag_commands) / sizeof(dag_commands[0]), argc, argv);
}

/* ------------------------------------------------------------------ key */

static const char key_usage[] =
        "Usage: sluice key [-d DIR]\n"
        "\n"
        "Print this node's public key (64 hex digits), creating the key in\n"
        "DIR/node.key when there is none. Servers sign targets with it; dag\n"
        "namespaces grant it roles.\n";

int cli_cmd_key(int argc, char **argv)
{
	cli_cmd cmd = {.name = "key", .usage = key_usage};
	sl_node_key key;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	if (sl_node_key_load(&key, cmd.dir, 1) != SL_OK)
		return cli_fail(cmd.name);
	printf("%s\n", sl_digest_to_hex((const sl_digest *)key.pk).s);
	memset(&key, 0, sizeof(key));
	return CLI_OK;
}
