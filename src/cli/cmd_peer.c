/*
 * Sharing dag namespaces between nodes: `sluice ticket` prints the line
 * another node joins with; `sluice join` asks the ticket's node for a
 * role, creates the namespace here from its root entry and registers the
 * node as a peer; `sluice peer ...` lists, adds and removes peers, shows
 * how their sync goes, and decides the requests for a role that joins
 * leave (approve writes the entry that grants the role).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/dag_sync.h"

#define OPT_ADDR  CLI_OPT_CMD
#define OPT_WRITE (CLI_OPT_CMD + 1)
#define OPT_NAME  (CLI_OPT_CMD + 2)
#define OPT_KEY   (CLI_OPT_CMD + 3)

/* ---------------------------------------------------------------- ticket */

static const char ticket_usage[] =
        "Usage: sluice ticket [-d DIR] NS --addr HOST:PORT\n"
        "\n"
        "Print the ticket of dag namespace NS: one line another node gives to\n"
        "`sluice join` to ask this node for a role in it. HOST:PORT is where this\n"
        "node serves (`sluice serve`). A ticket holds no secret: a node that joins\n"
        "with it gets nothing until an admin approves it (`sluice peer approve`).\n";

static const struct option ticket_options[] = {
        {"addr", required_argument, NULL, OPT_ADDR},
        {NULL, 0, NULL, 0},
};

static int opt_addr(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	(void)cmd;
	(void)opt;
	*(const char **)ctx = arg;
	return CLI_OK;
}

int cli_cmd_ticket(int argc, char **argv)
{
	cli_cmd cmd = {.name = "ticket",
	               .usage = ticket_usage,
	               .options = ticket_options,
	               .min_args = 1,
	               .max_args = 1};
	const char *addr = NULL;
	char line[SL_DAG_TICKET_MAX + 1];
	sl_store *store = NULL;
	sl_dag_ticket t, check;
	sl_dag_info info;
	sl_node_key key;
	int rc = cli_parse(&cmd, argc, argv, opt_addr, &addr);

	if (rc != CLI_CONTINUE)
		return rc;
	if (!addr)
		return cli_usage_error(cmd.name, "--addr HOST:PORT is required");
	if ((rc = cli_open_store(&cmd, SL_STORE_READONLY, &store)) != CLI_OK)
		return rc;
	memset(&t, 0, sizeof(t));
	if (sl_dag_info_get(store, cmd.args[0], &info) != SL_OK ||
	    sl_node_key_load(&key, cmd.dir, 0) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto out;
	}
	t.ns_id = info.ns_id;
	snprintf(t.name, sizeof(t.name), "%s", cmd.args[0]);
	memcpy(t.node, key.pk, SL_ED25519_PK_LEN);
	snprintf(t.addr, sizeof(t.addr), "%s", addr);
	memset(&key, 0, sizeof(key));
	/* What join will parse: an address it would refuse is refused here. */
	if (sl_dag_ticket_format(&t, line, sizeof(line)) != SL_OK ||
	    sl_dag_ticket_parse(&check, line) != SL_OK) {
		rc = cli_usage_error(cmd.name, "%s", sl_error_last()->message);
		goto out;
	}
	printf("%s\n", line);
	rc = CLI_OK;
out:
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------------ join */

static const char join_usage[] =
        "Usage: sluice join [-d DIR] TICKET [--write] [--addr HOST:PORT] [--name NS]\n"
        "\n"
        "Ask the node of TICKET (`sluice ticket`) for a role in its dag namespace:\n"
        "read, or write with --write. This creates the namespace here from its root\n"
        "entry (named as on that node, or NS), registers that node as a peer, and\n"
        "prints `pending <request id>` until an admin there approves the request\n"
        "(`sluice peer approve`), then `approved <role>`. Run it again to ask\n"
        "again; `sluice sync NS --once` syncs once approved. Exits 1 when denied.\n"
        "\n"
        "      --write            ask to write, not only read\n"
        "      --addr HOST:PORT   where this node serves, for the peer to sync back\n"
        "      --name NS          the namespace's name here\n";

static const struct option join_options[] = {
        {"write", no_argument, NULL, OPT_WRITE},
        {"addr", required_argument, NULL, OPT_ADDR},
        {"name", required_argument, NULL, OPT_NAME},
        {NULL, 0, NULL, 0},
};

typedef struct join_args {
	int write;
	const char *addr, *name;
} join_args;

static int join_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	join_args *a = ctx;
	if (opt == OPT_WRITE)
		a->write = 1;
	else if (opt == OPT_ADDR)
		a->addr = arg;
	else if (sl_ns_name_validate(arg) != SL_OK)
		return cli_usage_error(cmd->name, "%s", sl_error_last()->message);
	else
		a->name = arg;
	return CLI_OK;
}

/* The namespace here: created from the root, or already that one. */
static int local_namespace(sl_store *store, const char *name, const sl_dag_ticket *t,
                           const sl_buf *root)
{
	sl_dag_info info;
	int rc = sl_dag_info_get(store, name, &info);
	if (rc == SL_ENOTFOUND)
		return sl_dag_create_from_root(store, name, root->data, root->len);
	if (rc != SL_OK)
		return rc;
	if (!sl_digest_eq(&info.ns_id, &t->ns_id))
		return sl_error_set(SL_EEXISTS,
		                    "namespace '%s' here is another dag namespace (%s); choose "
		                    "another name with --name",
		                    name, sl_digest_to_hex(&info.ns_id).s);
	return SL_OK;
}

int cli_cmd_join(int argc, char **argv)
{
	cli_cmd cmd = {.name = "join",
	               .usage = join_usage,
	               .options = join_options,
	               .min_args = 1,
	               .max_args = 1};
	join_args a = {0, NULL, NULL};
	sl_dag_join_answer ans = {0, "", SL_DAG_NONE, SL_BUF_INIT(SL_DAG_ENTRY_MAX)};
	sl_store *store = NULL;
	sl_dag_ticket t;
	sl_node_key key;
	const char *name;
	int rc = cli_parse(&cmd, argc, argv, join_opt, &a);

	if (rc != CLI_CONTINUE)
		return rc;
	if (sl_dag_ticket_parse(&t, cmd.args[0]) != SL_OK)
		return cli_usage_error(cmd.name, "%s", sl_error_last()->message);
	name = a.name ? a.name : t.name;
	memset(&key, 0, sizeof(key));
	if ((rc = cli_open_store(&cmd, SL_STORE_CREATE, &store)) != CLI_OK)
		goto out;
	if (sl_node_key_load(&key, cmd.dir, 1) != SL_OK ||
	    sl_dag_join(&t, &key, a.write ? SL_DAG_WRITE : SL_DAG_READ, a.addr, &ans) != SL_OK ||
	    local_namespace(store, name, &t, &ans.root) != SL_OK ||
	    sl_dag_peer_add(store, name, t.addr, t.node) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto out;
	}
	if (strcmp(ans.state, "approved") == 0) {
		printf("approved %s\n", sl_dag_role_name(ans.role));
		rc = CLI_OK;
	} else if (strcmp(ans.state, "pending") == 0) {
		printf("pending %llu\n", (unsigned long long)ans.request);
		rc = CLI_OK;
	} else {
		rc = cli_errorf(cmd.name, "request %llu for a role in '%s' was denied",
		                (unsigned long long)ans.request, name);
	}
out:
	memset(&key, 0, sizeof(key));
	sl_buf_free(&ans.root);
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------------ peer */

static const char peer_add_usage[] =
        "Usage: sluice peer add [-d DIR] HOST:PORT NS [--key HEX]\n"
        "\n"
        "Sync dag namespace NS with the node at HOST:PORT, whose node key is HEX\n"
        "(as `sluice key` prints it there; without --key it is read from the\n"
        "node's /api/v0/info, trusted on first use). The node must give this\n"
        "node a role in NS for the sync to work.\n";

static const struct option peer_add_options[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {NULL, 0, NULL, 0},
};

typedef struct peer_add_args {
	uint8_t key[SL_ED25519_PK_LEN];
	int has_key;
} peer_add_args;

static int peer_add_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	peer_add_args *a = ctx;
	(void)opt;
	a->has_key = 1;
	return cli_parse_node_key(cmd->name, arg, a->key);
}

/* The node key a server announces at /api/v0/info. */
static int fetch_node_key(const char *addr, uint8_t out[SL_ED25519_PK_LEN])
{
	sl_http_client *c = NULL;
	sl_http_result r;
	char url[SL_DAG_ADDR_MAX + 32];
	json_t *j = NULL;
	const char *hex;
	sl_digest key;
	int rc;

	snprintf(url, sizeof(url), "http://%s/api/v0/info", addr);
	sl_http_result_init(&r);
	if ((rc = sl_http_client_new(&c, NULL)) != SL_OK ||
	    (rc = sl_http_client_fetch(c, "GET", url, NULL, NULL, 0, &r)) != SL_OK) {
		rc = sl_error_set(rc, "%s: %s", url, r.error);
		goto out;
	}
	j = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
	hex = j ? json_string_value(json_object_get(j, "node")) : NULL;
	if (r.status != 200 || !hex || sl_digest_from_hex(&key, hex) != SL_OK)
		rc = sl_error_set(SL_EIO, "%s did not say its node key (HTTP %ld)", url, r.status);
	else
		memcpy(out, key.bytes, SL_ED25519_PK_LEN);
out:
	json_decref(j);
	sl_http_result_free(&r);
	sl_http_client_free(c);
	return rc;
}

static int peer_add(int argc, char **argv)
{
	cli_cmd cmd = {.name = "peer add",
	               .usage = peer_add_usage,
	               .options = peer_add_options,
	               .min_args = 2,
	               .max_args = 2};
	peer_add_args a;
	sl_store *store = NULL;
	int rc;

	memset(&a, 0, sizeof(a));
	if ((rc = cli_parse(&cmd, argc, argv, peer_add_opt, &a)) != CLI_CONTINUE)
		return rc;
	if (!a.has_key && fetch_node_key(cmd.args[0], a.key) != SL_OK)
		return cli_fail(cmd.name);
	if ((rc = cli_open_store(&cmd, 0, &store)) != CLI_OK)
		return rc;
	if (sl_dag_peer_add(store, cmd.args[1], cmd.args[0], a.key) != SL_OK)
		rc = cli_fail(cmd.name);
	sl_store_free(store);
	return rc;
}

static const char peer_remove_usage[] = "Usage: sluice peer remove [-d DIR] HOST:PORT NS\n"
                                        "\n"
                                        "Stop syncing dag namespace NS with HOST:PORT.\n";

static int peer_remove(int argc, char **argv)
{
	cli_cmd cmd = {
	        .name = "peer remove", .usage = peer_remove_usage, .min_args = 2, .max_args = 2};
	sl_store *store = NULL;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
	if (rc != CLI_CONTINUE)
		return rc;
	if ((rc = cli_open_store(&cmd, 0, &store)) != CLI_OK)
		return rc;
	if (sl_dag_peer_remove(store, cmd.args[1], cmd.args[0]) != SL_OK)
		rc = cli_fail(cmd.name);
	sl_store_free(store);
	return rc;
}

static const char peer_list_usage[] =
        "Usage: sluice peer list|status [-d DIR] [--json] [NS]\n"
        "\n"
        "The peers of every dag namespace (or of NS) and how their sync goes: the\n"
        "entries owed to each (its outbox), the last success, failures since, the\n"
        "last error and the next try. With --json, one object a line:\n"
        "{\"ns\", \"addr\", \"node\", \"backlog\", \"pushed_seq\", \"last_ok_ms\",\n"
        " \"last_try_ms\", \"next_try_ms\", \"failures\", \"last_error\"}\n";

static json_t *peer_json(const sl_dag_peer *p)
{
	json_t *o = json_object();
	if (o && cli_json_set(o, "ns", json_string(p->ns)) == 0 &&
	    cli_json_set(o, "addr", json_string(p->addr)) == 0 &&
	    cli_json_set(o, "node", json_string(sl_digest_to_hex((const sl_digest *)p->node).s)) ==
	            0 &&
	    cli_json_set(o, "backlog", cli_json_u64(p->backlog)) == 0 &&
	    cli_json_set(o, "pushed_seq", cli_json_u64(p->pushed_seq)) == 0 &&
	    cli_json_set(o, "last_ok_ms", cli_json_u64(p->last_ok_ms)) == 0 &&
	    cli_json_set(o, "last_try_ms", cli_json_u64(p->last_try_ms)) == 0 &&
	    cli_json_set(o, "next_try_ms", cli_json_u64(p->next_try_ms)) == 0 &&
	    cli_json_set(o, "failures", cli_json_u64(p->failures)) == 0 &&
	    cli_json_set(o, "last_error", json_string(p->last_error)) == 0)
		return o;
	json_decref(o);
	return NULL;
}

/* "12s ago", "never" */
static void ago(char *out, size_t cap, uint64_t then_ms, uint64_t now_ms)
{
	if (then_ms == 0)
		snprintf(out, cap, "never");
	else if (then_ms > now_ms)
		snprintf(out, cap, "in %llus", (unsigned long long)(then_ms - now_ms + 999) / 1000);
	else
		snprintf(out, cap, "%llus ago", (unsigned long long)(now_ms - then_ms) / 1000);
}

static int peer_list(int argc, char **argv)
{
	cli_cmd cmd = {.name = "peer list",
	               .usage = peer_list_usage,
	               .flags = CLI_JSON,
	               .min_args = 0,
	               .max_args = 1};
	sl_store *store = NULL;
	sl_dag_peer *peers = NULL;
	uint64_t now = sl_clock_wall_ms();
	size_t n = 0;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	if ((rc = cli_open_store(&cmd, SL_STORE_READONLY, &store)) != CLI_OK)
		return rc;
	if (sl_dag_peer_list(store, cmd.n_args ? cmd.args[0] : NULL, &peers, &n) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto out;
	}
	if (!cmd.json && n)
		printf("%-20s %-24s %8s %-12s %-12s %8s %s\n", "NS", "PEER", "BACKLOG", "LAST OK",
		       "NEXT TRY", "FAILURES", "LAST ERROR");
	for (size_t i = 0; i < n && rc == CLI_OK; i++) {
		char ok[32], next[32];
		if (cmd.json) {
			rc = cli_json_print(cmd.name, peer_json(&peers[i]));
			continue;
		}
		ago(ok, sizeof(ok), peers[i].last_ok_ms, now);
		ago(next, sizeof(next), peers[i].next_try_ms, now);
		printf("%-20s %-24s %8llu %-12s %-12s %8u %s\n", peers[i].ns, peers[i].addr,
		       (unsigned long long)peers[i].backlog, ok, next, peers[i].failures,
		       peers[i].last_error);
	}
out:
	sl_free(peers);
	sl_store_free(store);
	return rc;
}

static const char requests_usage[] =
        "Usage: sluice peer requests [-d DIR] [--json]\n"
        "\n"
        "Requests for a role that nodes left with `sluice join`: id, namespace,\n"
        "node key, the role asked for, where the node serves, when, and the state\n"
        "(pending, approved, denied). With --json, one object a line.\n";

static const char *request_state(const sl_dag_request *r)
{
	static const char *const states[] = {"pending", "approved", "denied"};
	return states[r->state];
}

static json_t *request_json(const sl_dag_request *r)
{
	json_t *o = json_object();
	if (o && cli_json_set(o, "id", cli_json_u64(r->id)) == 0 &&
	    cli_json_set(o, "ns", json_string(r->ns)) == 0 &&
	    cli_json_set(o, "node", json_string(sl_digest_to_hex((const sl_digest *)r->node).s)) ==
	            0 &&
	    cli_json_set(o, "role", json_string(sl_dag_role_name(r->role))) == 0 &&
	    cli_json_set(o, "addr", json_string(r->addr)) == 0 &&
	    cli_json_set(o, "time_ms", cli_json_u64(r->time_ms)) == 0 &&
	    cli_json_set(o, "state", json_string(request_state(r))) == 0)
		return o;
	json_decref(o);
	return NULL;
}

static int peer_requests(int argc, char **argv)
{
	cli_cmd cmd = {.name = "peer requests", .usage = requests_usage, .flags = CLI_JSON};
	sl_store *store = NULL;
	sl_dag_request *list = NULL;
	size_t n = 0;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	if ((rc = cli_open_store(&cmd, SL_STORE_READONLY, &store)) != CLI_OK)
		return rc;
	if (sl_dag_request_list(store, &list, &n) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto out;
	}
	if (!cmd.json && n)
		printf("%-6s %-20s %-16s %-6s %-9s %s\n", "ID", "NS", "NODE", "ROLE", "STATE",
		       "ADDR");
	for (size_t i = 0; i < n && rc == CLI_OK; i++) {
		if (cmd.json)
			rc = cli_json_print(cmd.name, request_json(&list[i]));
		else
			printf("%-6llu %-20s %.16s %-6s %-9s %s\n", (unsigned long long)list[i].id,
			       list[i].ns, sl_digest_to_hex((const sl_digest *)list[i].node).s,
			       sl_dag_role_name(list[i].role), request_state(&list[i]),
			       list[i].addr);
	}
out:
	sl_free(list);
	sl_store_free(store);
	return rc;
}

static const char decide_usage[] =
        "Usage: sluice peer approve|deny [-d DIR] ID\n"
        "\n"
        "Decide request ID (`sluice peer requests`). approve writes the entry that\n"
        "gives the node the role it asked for, signed by this node's key, which\n"
        "must be an admin of the namespace; deny refuses it.\n";

static int peer_decide(int argc, char **argv, int approve)
{
	cli_cmd cmd = {.name = approve ? "peer approve" : "peer deny",
	               .usage = decide_usage,
	               .min_args = 1,
	               .max_args = 1};
	sl_store *store = NULL;
	sl_node_key key;
	uint64_t id;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	if (cli_parse_u64(cmd.name, "ID", cmd.args[0], &id) != CLI_OK)
		return CLI_USAGE;
	memset(&key, 0, sizeof(key));
	if ((rc = cli_open_store(&cmd, 0, &store)) != CLI_OK)
		return rc;
	if (approve ? sl_node_key_load(&key, cmd.dir, 0) != SL_OK ||
	                      sl_dag_request_approve(store, id, key.sk) != SL_OK
	            : sl_dag_request_deny(store, id) != SL_OK)
		rc = cli_fail(cmd.name);
	memset(&key, 0, sizeof(key));
	sl_store_free(store);
	return rc;
}

static int peer_approve(int argc, char **argv)
{
	return peer_decide(argc, argv, 1);
}

static int peer_deny(int argc, char **argv)
{
	return peer_decide(argc, argv, 0);
}

static const char peer_usage[] = "Usage: sluice peer COMMAND [ARGS]\n"
                                 "\n"
                                 "The peers of dag namespaces, and requests for a role in "
                                 "them.\n";

static const cli_command peer_commands[] = {
        {"add", peer_add, "sync a dag namespace with a node: HOST:PORT NS [--key HEX]"},
        {"remove", peer_remove, "stop syncing with a node: HOST:PORT NS"},
        {"list", peer_list, "peers and how their sync goes [--json] [NS]"},
        {"status", peer_list, "the same as list"},
        {"requests", peer_requests, "requests for a role left by `sluice join` [--json]"},
        {"approve", peer_approve, "grant a request's role: ID"},
        {"deny", peer_deny, "refuse a request: ID"},
};

int cli_cmd_peer(int argc, char **argv)
{
	return cli_dispatch("peer", peer_usage, peer_commands,
	                    sizeof(peer_commands) / sizeof(peer_commands[0]), argc, argv);
}
