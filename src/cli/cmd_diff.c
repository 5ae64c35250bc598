/*
 * `sluice diff`: what two namespaces differ by, found by set
 * reconciliation of their state items (sync/state_diff.c), against a node
 * over HTTP or another namespace of a store here; with --pull, the peer's
 * side copied in as one commit.
 */
#include <string.h>

#include "cli/cli.h"
#include "cli/diff_report.h"
#include "sluice/sync.h"

#define OPT_PEER      CLI_OPT_CMD
#define OPT_REMOTE_NS (CLI_OPT_CMD + 1)
#define OPT_OTHER_DIR (CLI_OPT_CMD + 2)
#define OPT_PULL      (CLI_OPT_CMD + 3)
#define OPT_TIMEOUT   (CLI_OPT_CMD + 4)

static const char diff_usage[] =
        "Usage: sluice diff [-d DIR] NS --peer HOST:PORT [--remote-ns NAME] [--pull]\n"
        "                   [--timeout DURATION] [--json]\n"
        "       sluice diff [-d DIR] NS OTHER_NS [--other-dir DIR] [--pull] [--json]\n"
        "\n"
        "Compare namespace NS of the store in DIR with another: namespace NS (or\n"
        "--remote-ns) of the node at --peer, or OTHER_NS of this store (or of the store\n"
        "in --other-dir). The two sides find their differences by set reconciliation\n"
        "(negentropy), in a few round trips and bytes that follow the differences, not\n"
        "the size of the namespaces. Prints the keys only here, only there, and those\n"
        "whose values differ. Every key the other side reports is checked against the\n"
        "item it stands for.\n"
        "\n"
        "      --peer HOST:PORT    the node to compare with (`sluice serve`)\n"
        "      --remote-ns NAME    its namespace (default NS)\n"
        "      --other-dir DIR     the store holding OTHER_NS (default DIR)\n"
        "      --pull              then copy into NS, as one commit, the keys only there\n"
        "                          and, in a mutable namespace, the other side's value\n"
        "                          of the keys that differ; in an immutable namespace\n"
        "                          those are conflicts, left as they are (exit 1)\n"
        "      --timeout DURATION  per-request timeout with --peer (default 30s)\n"
        "\n"
        "Exit status: 0 when the diff ran, whether or not the namespaces differ; 1 when\n"
        "it failed or --pull left conflicts.\n";

static const struct option diff_options[] = {
        {"peer", required_argument, NULL, OPT_PEER},
        {"remote-ns", required_argument, NULL, OPT_REMOTE_NS},
        {"other-dir", required_argument, NULL, OPT_OTHER_DIR},
        {"pull", no_argument, NULL, OPT_PULL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
};

typedef struct diff_args {
	const char *peer, *remote_ns, *other_dir;
	int pull;
	unsigned timeout_ms;
} diff_args;

static int diff_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	diff_args *a = ctx;
	switch (opt) {
	case OPT_PEER:
		a->peer = arg;
		return CLI_OK;
	case OPT_REMOTE_NS:
		if (sl_ns_name_validate(arg) != SL_OK)
			return cli_usage_error(cmd->name, "--remote-ns: %s",
			                       sl_error_last()->message);
		a->remote_ns = arg;
		return CLI_OK;
	case OPT_OTHER_DIR:
		a->other_dir = arg;
		return CLI_OK;
	case OPT_PULL:
		a->pull = 1;
		return CLI_OK;
	case OPT_TIMEOUT:
		return cli_parse_timeout_ms(cmd->name, "--timeout", arg, &a->timeout_ms);
	}
	return CLI_USAGE;
}

/* ------------------------------------------------------------------- run */

int cli_cmd_diff(int argc, char **argv)
{
	cli_cmd cmd = {.name = "diff",
	               .usage = diff_usage,
	               .flags = CLI_JSON,
	               .options = diff_options,
	               .min_args = 1,
	               .max_args = 2};
	sl_store *store = NULL, *other = NULL;
	sl_diff_peer *peer = NULL;
	sl_diff_report report;
	sl_diff_options o;
	sl_store_options so;
	char other_name[700];
	diff_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	memset(&report, 0, sizeof(report));
	if ((rc = cli_parse(&cmd, argc, argv, diff_opt, &a)) != CLI_CONTINUE)
		return rc;
	if ((cmd.n_args == 2) == (a.peer != NULL))
		return cli_usage_error(cmd.name, "give either --peer HOST:PORT or OTHER_NS");
	if (a.peer ? a.other_dir != NULL : (a.remote_ns != NULL || a.timeout_ms))
		return cli_usage_error(cmd.name,
		                       a.peer ? "--other-dir goes with OTHER_NS"
		                              : "--remote-ns and --timeout go with --peer");
	for (int i = 0; i < cmd.n_args; i++)
		if (sl_ns_name_validate(cmd.args[i]) != SL_OK)
			return cli_usage_error(cmd.name, "%s", sl_error_last()->message);
	if ((rc = cli_open_store(&cmd, a.pull ? 0 : SL_STORE_READONLY, &store)) != CLI_OK)
		return rc;
	if (a.peer) {
		const char *remote = a.remote_ns ? a.remote_ns : cmd.args[0];
		snprintf(other_name, sizeof(other_name), "%s on %s", remote, a.peer);
		if (sl_diff_peer_http(&peer, a.peer, remote, a.timeout_ms) != SL_OK) {
			rc = cli_fail(cmd.name);
			goto cleanup;
		}
	} else {
		/* Another handle even for the same store: the diff holds a read
		 * snapshot of this one while the peer answers. */
		const char *dir = a.other_dir ? a.other_dir : cmd.dir;
		sl_store_options_init(&so);
		so.flags = SL_STORE_READONLY;
		if (a.other_dir)
			snprintf(other_name, sizeof(other_name), "%s in %s", cmd.args[1], dir);
		else
			snprintf(other_name, sizeof(other_name), "%s", cmd.args[1]);
		if (sl_store_open(&other, dir, &so) != SL_OK ||
		    sl_diff_peer_store(&peer, other, cmd.args[1]) != SL_OK) {
			rc = cli_fail(cmd.name);
			goto cleanup;
		}
	}
	memset(&o, 0, sizeof(o));
	o.store = store;
	o.ns = cmd.args[0];
	o.peer = peer;
	o.pull = a.pull;
	if (sl_state_diff(&o, &report) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (cmd.json)
		rc = cli_diff_print_json(cmd.name, &report, a.pull);
	else
		cli_diff_print_text(cmd.args[0], other_name, &report, a.pull);
	if (rc == CLI_OK && a.pull && report.conflicts.n > 0)
		rc = cli_errorf(cmd.name,
		                "%zu keys differ in the immutable namespace '%s' and were "
		                "not pulled",
		                report.conflicts.n, cmd.args[0]);
cleanup:
	sl_diff_report_free(&report);
	sl_diff_peer_free(peer);
	sl_store_free(other);
	sl_store_free(store);
	return rc;
}
