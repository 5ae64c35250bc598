/*
 * Reading a namespace's authenticated log: `root` prints its current target
 * (size in operations, MMR root, inactivity floor) and its state's
 * reconciliation fingerprint, `log` prints operations
 * one per line (text or JSON), `verify` recomputes everything the store
 * derived from the log, checks the store's values are each referred to
 * and present, and reports the first mismatch.
 */
#include <string.h>

#include "cli/cli.h"

#define OPT_FROM  CLI_OPT_CMD
#define OPT_LIMIT (CLI_OPT_CMD + 1)

/* ------------------------------------------------------------------ root */

static const char root_usage[] =
        "Usage: sluice root [-d DIR] [--json] NS\n"
        "\n"
        "Print the latest commit of namespace NS: size (number of operations),\n"
        "root (hex) and floor; then the live keys and the state fingerprint, the\n"
        "reconciliation fingerprint of every key and value (equal in two namespaces\n"
        "exactly when they hold the same keys and values, whatever their histories).\n"
        "\n"
        "      --json  {\"size\": N, \"root\": \"<hex>\", \"floor\": N, \"keys\": N,\n"
        "               \"state\": \"<hex>\"}\n";

/* The latest commit and the state's fingerprint, from one snapshot. A
 * store in format 1 has no item index: *has_state is 0 then. */
static int read_root(sl_store *store, const char *ns, sl_ns_info *info, char state[33],
                     int *has_state)
{
	uint8_t fp[SL_FINGERPRINT_LEN];
	sl_item_sum sum;
	sl_items *it;
	sl_item_set set;
	int rc;

	*has_state = 0;
	if (sl_store_items_open(store, ns, &it) != SL_OK) {
		if (sl_store_ns_info(store, ns, info) != SL_OK)
			return SL_EINVAL;
		if (info->kind == SL_NS_DAG)
			return sl_error_set(
			        SL_EINVAL,
			        "namespace '%s' is a dag namespace, without an operation "
			        "log: see `sluice dag info %s`",
			        ns, ns);
		return SL_OK;
	}
	*info = *sl_items_ns(it);
	set = sl_items_set(it);
	rc = set.ops->sum(set.ctx, 0, info->keys, &sum);
	sl_items_close(it);
	if (rc != SL_OK)
		return rc;
	sl_item_sum_fingerprint(fp, &sum, info->keys);
	sl_hex_encode(state, fp, sizeof(fp));
	*has_state = 1;
	return SL_OK;
}

int cli_cmd_root(int argc, char **argv)
{
	cli_cmd cmd = {.name = "root",
	               .usage = root_usage,
	               .flags = CLI_JSON,
	               .min_args = 1,
	               .max_args = 1};
	sl_store *store = NULL;
	sl_ns_info info;
	sl_digest_hex root;
	char state[2 * SL_FINGERPRINT_LEN + 1];
	int has_state;
	json_t *obj = NULL;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (read_root(store, cmd.args[0], &info, state, &has_state) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	root = sl_digest_to_hex(&info.target.root);
	if (!cmd.json) {
		printf("size  %llu\nroot  %s\nfloor %llu\nkeys  %llu\n",
		       (unsigned long long)info.target.size, root.s,
		       (unsigned long long)info.target.floor, (unsigned long long)info.keys);
		if (has_state)
			printf("state %s\n", state);
		rc = CLI_OK;
		goto cleanup;
	}
	obj = json_object();
	if (obj && (cli_json_set(obj, "size", cli_json_u64(info.target.size)) != 0 ||
	            cli_json_set(obj, "root", json_string(root.s)) != 0 ||
	            cli_json_set(obj, "floor", cli_json_u64(info.target.floor)) != 0 ||
	            cli_json_set(obj, "keys", cli_json_u64(info.keys)) != 0 ||
	            (has_state && cli_json_set(obj, "state", json_string(state)) != 0))) {
		json_decref(obj);
		obj = NULL;
	}
	rc = cli_json_print(cmd.name, obj);
cleanup:
	sl_store_free(store);
	return rc;
}

/* ------------------------------------------------------------------- log */

static const char log_usage[] =
        "Usage: sluice log [-d DIR] [--from LOC] [--limit N] [--json] NS\n"
        "\n"
        "Print the committed operations of namespace NS, one per line:\n"
        "  LOC set|update KEY size=N digest=HEX\n"
        "  LOC delete KEY\n"
        "  LOC commit floor=N\n"
        "\n"
        "      --from LOC   start at location LOC (default 0; not below the pruned\n"
        "                   boundary)\n"
        "      --limit N    print at most N operations (default 0: all)\n"
        "      --json       one object per line: {\"loc\", \"op\", \"key\", \"element\"}\n"
        "                   plus \"digest\" and \"value_size\" for set and update,\n"
        "                   \"floor\" for commit; \"key\" is null for commit\n";

static const struct option log_options[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {NULL, 0, NULL, 0},
};

typedef struct log_ctx {
	const char *name;
	uint64_t from;
	uint64_t limit;
	int json;
	int rc; /* CLI_FAIL once an operation could not be printed */
} log_ctx;

static int log_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	log_ctx *lc = ctx;

	if (opt == OPT_FROM)
		return cli_parse_u64(cmd->name, "--from", arg, &lc->from);
	return cli_parse_u64(cmd->name, "--limit", arg, &lc->limit);
}

static json_t *op_json(uint64_t loc, const sl_op *op, const uint8_t *element, size_t element_len)
{
	json_t *obj = json_object();
	char *hex = cli_hex_new(element, element_len);
	int has_value = op->type == SL_OP_SET || op->type == SL_OP_UPDATE;
	int failed;

	failed = !obj || !hex || cli_json_set(obj, "loc", cli_json_u64(loc)) != 0 ||
	         cli_json_set(obj, "op", json_string(sl_op_type_name(op->type))) != 0 ||
	         cli_json_set(obj, "key",
	                      op->type == SL_OP_COMMIT ? json_null()
	                                               : json_stringn(op->key, op->key_len)) != 0 ||
	         cli_json_set(obj, "element", json_string(hex)) != 0;
	if (!failed && has_value)
		failed = cli_json_set(obj, "digest",
		                      json_string(sl_digest_to_hex(&op->digest).s)) != 0 ||
		         cli_json_set(obj, "value_size", cli_json_u64(op->value_len)) != 0;
	if (!failed && op->type == SL_OP_COMMIT)
		failed = cli_json_set(obj, "floor", cli_json_u64(op->floor)) != 0;
	sl_free(hex);
	if (failed) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static int log_op(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                  size_t element_len)
{
	log_ctx *lc = ctx;

	if (lc->json) {
		lc->rc = cli_json_print(lc->name, op_json(loc, op, element, element_len));
		return lc->rc == CLI_OK ? 0 : 1;
	}
	printf("%llu %s", (unsigned long long)loc, sl_op_type_name(op->type));
	switch (op->type) {
	case SL_OP_SET:
	case SL_OP_UPDATE:
		printf(" %.*s size=%llu digest=%s\n", (int)op->key_len, op->key,
		       (unsigned long long)op->value_len, sl_digest_to_hex(&op->digest).s);
		break;
	case SL_OP_DELETE:
		printf(" %.*s\n", (int)op->key_len, op->key);
		break;
	case SL_OP_COMMIT:
		printf(" floor=%llu\n", (unsigned long long)op->floor);
		break;
	}
	return 0;
}

int cli_cmd_log(int argc, char **argv)
{
	cli_cmd cmd = {.name = "log",
	               .usage = log_usage,
	               .flags = CLI_JSON,
	               .options = log_options,
	               .min_args = 1,
	               .max_args = 1};
	log_ctx lc = {.name = "log", .rc = CLI_OK};
	sl_store *store = NULL;
	int rc = cli_parse(&cmd, argc, argv, log_opt, &lc);

	if (rc != CLI_CONTINUE)
		return rc;
	lc.json = cmd.json;
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_log(store, cmd.args[0], lc.from, lc.limit, log_op, &lc) != SL_OK) {
		rc = lc.rc != CLI_OK ? lc.rc : cli_fail(cmd.name);
		goto cleanup;
	}
	rc = CLI_OK;
cleanup:
	sl_store_free(store);
	return rc;
}

/* ---------------------------------------------------------------- verify */

static const char verify_usage[] =
        "Usage: sluice verify [-d DIR] NS\n"
        "\n"
        "Recompute every MMR node and the root of namespace NS from its operation\n"
        "log, its current state from the operations, every value's digest and the\n"
        "reconciliation items of the state, and compare them with what is stored.\n"
        "For a dag namespace: every entry's id, signature, height and right to\n"
        "write, the tips and the merged state, replayed from the entries.\n"
        "Then, for the whole store, that every stored value is referred to by an\n"
        "operation or a dag entry, and every one referred to is there.\n"
        "Prints the counts and 'ok', or reports the first mismatch and exits 1.\n";

int cli_cmd_verify(int argc, char **argv)
{
	cli_cmd cmd = {.name = "verify", .usage = verify_usage, .min_args = 1, .max_args = 1};
	sl_store *store = NULL;
	sl_verify_report report;
	sl_values_report values;
	sl_ns_info info;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_verify(store, cmd.args[0], &report) != SL_OK ||
	    sl_store_verify_values(store, &values) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (sl_store_ns_info(store, cmd.args[0], &info) == SL_OK && info.kind == SL_NS_DAG) {
		printf("entries    %llu\nkeys       %llu\nvalues     %llu\n",
		       (unsigned long long)report.entries_checked,
		       (unsigned long long)report.keys_checked,
		       (unsigned long long)report.blobs_checked);
	} else {
		printf("operations %llu\nnodes      %llu\nkeys       %llu\nvalues     %llu\n"
		       "items      %llu\npruned     %llu\n",
		       (unsigned long long)report.ops_checked,
		       (unsigned long long)report.nodes_checked,
		       (unsigned long long)report.keys_checked,
		       (unsigned long long)report.blobs_checked,
		       (unsigned long long)report.items_checked, (unsigned long long)report.pruned);
	}
	/* A store of a format before 4, read-only, has no index to check. */
	if (values.checked)
		printf("stored     %llu values, %llu bytes, each referred to\n",
		       (unsigned long long)values.values, (unsigned long long)values.bytes);
	printf("ok\n");
	rc = CLI_OK;
cleanup:
	sl_store_free(store);
	return rc;
}
