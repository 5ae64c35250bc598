/*
 * `sluice sync`: keep a local namespace in step with a server's
 * (sync/client.c), verifying everything it receives. Runs until SIGINT or
 * SIGTERM (finishing the verified operations in hand), or with --once
 * until one sync completed.
 */
#include <arpa/inet.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/dag_sync.h"
#include "sluice/sync.h"

#define OPT_ONCE      CLI_OPT_CMD
#define OPT_TRUST_KEY (CLI_OPT_CMD + 1)
#define OPT_LOCAL_NS  (CLI_OPT_CMD + 2)
#define OPT_TIMEOUT   (CLI_OPT_CMD + 3)
#define OPT_BIND      (CLI_OPT_CMD + 4)

static const char sync_usage[] =
        "Usage: sluice sync [-d DIR] -s HOST:PORT [-b N|auto] [-r N] [-t DURATION]\n"
        "                   [-i DURATION] [--once] [--trust-key HEX] [--local-ns NAME]\n"
        "                   [--timeout DURATION] [--bind ADDR] [-m PORT] NS\n"
        "\n"
        "Keep namespace NS of the store in DIR (created if missing) in step with\n"
        "namespace NS of the server: fetch its target, fetch operations with range\n"
        "proofs, verify each batch against the target root before storing it, follow\n"
        "new targets after checking a consistency proof, and stop when the roots\n"
        "match; then wait and sync again.\n"
        "\n"
        "A dag namespace syncs with its peers instead (`sluice peer add`, `sluice\n"
        "join`), both ways: it takes what a peer has and it lacks, verifying every\n"
        "entry, and gives what the peer lacks. With --once it exits 0 when every\n"
        "peer is in step, 1 when one refused, is pending approval or failed.\n"
        "\n"
        "  -s, --server HOST:PORT  the server (required; for a dag namespace, the\n"
        "                          one peer to sync with, default all of them)\n"
        "  -b, --batch-size N|auto operations per request: N fixes it (1..65536);\n"
        "                          auto (the default) starts at 256, doubles while\n"
        "                          batches arrive whole and verify, up to 16384, and\n"
        "                          halves when a request fails or a batch is rejected\n"
        "  -r, --max-outstanding N requests in flight (default 4)\n"
        "  -t, --target-update-interval DURATION\n"
        "                          how often to poll for a new target (default 1s)\n"
        "  -i, --sync-interval DURATION\n"
        "                          wait between completed syncs (default 10s)\n"
        "      --once              exit 0 after one completed sync\n"
        "      --trust-key HEX     accept only targets signed by this node key\n"
        "      --local-ns NAME     local namespace name (default NS)\n"
        "      --timeout DURATION  per-request timeout (default 10s)\n"
        "      --bind ADDR         send from this local IPv4 address\n"
        "  -m, --metrics-port PORT serve metrics at http://127.0.0.1:PORT/metrics\n";

static const struct option sync_options[] = {
        {"server", required_argument, NULL, 's'},
        {"batch-size", required_argument, NULL, 'b'},
        {"max-outstanding", required_argument, NULL, 'r'},
        {"target-update-interval", required_argument, NULL, 't'},
        {"sync-interval", required_argument, NULL, 'i'},
        {"once", no_argument, NULL, OPT_ONCE},
        {"trust-key", required_argument, NULL, OPT_TRUST_KEY},
        {"local-ns", required_argument, NULL, OPT_LOCAL_NS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"bind", required_argument, NULL, OPT_BIND},
        {"metrics-port", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
};

typedef struct sync_args {
	sl_sync_client_options o;
	uint8_t trust_key[SL_ED25519_PK_LEN];
	uint64_t batch, outstanding;
	uint16_t metrics_port;
	int metrics;
} sync_args;

static int sync_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	sync_args *a = ctx;
	size_t n = 0;

	switch (opt) {
	case 's':
		a->o.server = arg;
		return CLI_OK;
	case 'b':
		if (strcmp(arg, "auto") == 0) {
			a->o.batch_size = 0;
			return CLI_OK;
		}
		if (cli_parse_u64(cmd->name, "--batch-size", arg, &a->batch) != CLI_OK)
			return CLI_USAGE;
		if (a->batch == 0 || a->batch > SL_WIRE_MAX_OPS)
			return cli_usage_error(cmd->name, "--batch-size must be 1..%d or auto",
			                       SL_WIRE_MAX_OPS);
		a->o.batch_size = (uint32_t)a->batch;
		return CLI_OK;
	case 'r':
		if (cli_parse_u64(cmd->name, "--max-outstanding", arg, &a->outstanding) != CLI_OK)
			return CLI_USAGE;
		if (a->outstanding == 0 || a->outstanding > 64)
			return cli_usage_error(cmd->name, "--max-outstanding must be 1..64");
		a->o.max_outstanding = (unsigned)a->outstanding;
		return CLI_OK;
	case 't':
		return cli_parse_duration_ms(cmd->name, "--target-update-interval", arg,
		                             &a->o.target_interval_ms);
	case 'i':
		return cli_parse_duration_ms(cmd->name, "--sync-interval", arg,
		                             &a->o.sync_interval_ms);
	case OPT_ONCE:
		a->o.once = 1;
		return CLI_OK;
	case OPT_TRUST_KEY:
		if (strlen(arg) != 2 * SL_ED25519_PK_LEN ||
		    sl_hex_decode(a->trust_key, sizeof(a->trust_key), &n, arg, strlen(arg)) !=
		            SL_OK ||
		    n != SL_ED25519_PK_LEN)
			return cli_usage_error(cmd->name, "--trust-key needs %d hex digits",
			                       2 * SL_ED25519_PK_LEN);
		a->o.trust_key = a->trust_key;
		return CLI_OK;
	case OPT_LOCAL_NS:
		if (sl_ns_name_validate(arg) != SL_OK)
			return cli_usage_error(cmd->name, "--local-ns: %s",
			                       sl_error_last()->message);
		a->o.local_ns = arg;
		return CLI_OK;
	case OPT_TIMEOUT:
		return cli_parse_timeout_ms(cmd->name, "--timeout", arg, &a->o.request_timeout_ms);
	case OPT_BIND: {
		struct in_addr ip;
		if (inet_pton(AF_INET, arg, &ip) != 1)
			return cli_usage_error(cmd->name, "--bind: '%s' is not an IPv4 address",
			                       arg);
		a->o.local_addr = arg;
		return CLI_OK;
	}
	case 'm':
		a->metrics = 1;
		return cli_parse_port(cmd->name, "--metrics-port", arg, &a->metrics_port);
	}
	return CLI_USAGE;
}

static int is_dag(sl_store *store, const char *ns)
{
	sl_ns_info info;
	return sl_store_ns_info(store, ns, &info) == SL_OK && info.kind == SL_NS_DAG;
}

/* One round with every peer of ns (or the one at a->o.server): 0 when
 * every one ends equal. */
static int dag_round(const cli_cmd *cmd, sl_store *store, const char *ns, const sync_args *a,
                     const sl_node_key *key, int *n_peers)
{
	sl_dag_peer *peers = NULL;
	size_t n = 0;
	int failed = 0;

	*n_peers = 0;
	if (sl_dag_peer_list(store, ns, &peers, &n) != SL_OK)
		return cli_fail(cmd->name);
	for (size_t i = 0; i < n; i++) {
		sl_dag_sync_report r;
		int rc;
		if (a->o.server && strcmp(a->o.server, peers[i].addr) != 0)
			continue;
		(*n_peers)++;
		rc = sl_dag_sync_peer(store, &peers[i], key, &r);
		if (rc == SL_OK && r.equal) {
			printf("%s: in step (pulled %llu, pushed %llu, %llu round trips)\n",
			       peers[i].addr, (unsigned long long)r.pulled,
			       (unsigned long long)r.pushed, (unsigned long long)r.round_trips);
		} else {
			failed = 1;
			cli_errorf(cmd->name, "%s: %s", peers[i].addr,
			           r.error[0] ? r.error : sl_error_last()->message);
		}
	}
	fflush(stdout);
	sl_free(peers);
	return failed ? CLI_FAIL : CLI_OK;
}

/* A dag namespace syncs with its peers (`sluice peer add`, `sluice join`),
 * both ways: --once a round and exit 0 when all are in step (1 when one
 * refused, is pending or failed); else a round every --sync-interval. */
static int sync_dag(const cli_cmd *cmd, sl_store *store, const char *ns, const sync_args *a,
                    volatile sig_atomic_t *stop)
{
	sl_node_key key;
	int rc, n_peers = 0;

	if (sl_node_key_load(&key, cmd->dir, 0) != SL_OK)
		return cli_fail(cmd->name);
	for (;;) {
		rc = dag_round(cmd, store, ns, a, &key, &n_peers);
		if (n_peers == 0) {
			rc = cli_errorf(
			        cmd->name,
			        a->o.server ? "%s is not a peer of namespace '%s' (`sluice peer "
			                      "add`)"
			                    : "namespace '%s' has no peers (`sluice peer add` or "
			                      "`sluice join`)",
			        a->o.server ? a->o.server : ns, ns);
			break;
		}
		if (a->o.once || *stop)
			break;
		for (uint64_t waited = 0; waited < a->o.sync_interval_ms && !*stop; waited += 100)
			sl_sleep_ms(100);
		if (*stop) {
			rc = CLI_OK;
			break;
		}
	}
	memset(&key, 0, sizeof(key));
	return rc;
}

int cli_cmd_sync(int argc, char **argv)
{
	cli_cmd cmd = {.name = "sync",
	               .usage = sync_usage,
	               .options = sync_options,
	               .min_args = 1,
	               .max_args = 1};
	static volatile sig_atomic_t stop;
	sl_http_server *metrics_http = NULL;
	sl_metrics *metrics = NULL;
	sl_store *store = NULL;
	sync_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	sl_sync_client_options_init(&a.o);
	if ((rc = cli_parse(&cmd, argc, argv, sync_opt, &a)) != CLI_CONTINUE)
		return rc;
	if (sl_ns_name_validate(cmd.args[0]) != SL_OK)
		return cli_usage_error(cmd.name, "%s", sl_error_last()->message);
	if ((rc = cli_open_store(&cmd, SL_STORE_CREATE, &store)) != CLI_OK)
		return rc;
	if (is_dag(store, a.o.local_ns ? a.o.local_ns : cmd.args[0])) {
		cli_on_stop_signal(&stop);
		rc = sync_dag(&cmd, store, a.o.local_ns ? a.o.local_ns : cmd.args[0], &a, &stop);
		goto cleanup;
	}
	if (!a.o.server) {
		rc = cli_usage_error(cmd.name, "-s HOST:PORT is required");
		goto cleanup;
	}
	if (a.metrics &&
	    (sl_metrics_new(&metrics) != SL_OK ||
	     sl_metrics_serve(&metrics_http, metrics, "127.0.0.1", a.metrics_port) != SL_OK)) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (metrics_http)
		sl_log(SL_LOG_INFO, "serving metrics", "port=%u",
		       sl_http_server_port(metrics_http));
	cli_on_stop_signal(&stop);
	a.o.ns = cmd.args[0];
	a.o.store = store;
	a.o.metrics = metrics;
	a.o.stop = &stop;
	rc = sl_sync_client_run(&a.o) == SL_OK ? CLI_OK : cli_fail(cmd.name);
cleanup:
	sl_http_server_stop(metrics_http);
	sl_metrics_free(metrics);
	sl_store_free(store);
	return rc;
}
