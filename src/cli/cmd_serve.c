/*
 * `sluice serve`: the store's namespaces over HTTP for syncing clients
 * (sync/server.c), Prometheus metrics on their own port, and, for demos
 * and tests, a generator that keeps committing operations to namespace
 * `demo` the way commonware's sync server example does. Runs until
 * SIGINT or SIGTERM, then stops accepting, finishes requests in flight
 * and exits 0.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/dag_sync.h"
#include "sluice/sync.h"

#define OPT_DB         CLI_OPT_CMD
#define OPT_LISTEN     (CLI_OPT_CMD + 1)
#define OPT_TOKEN_FILE (CLI_OPT_CMD + 2)
#define OPT_THREADS    (CLI_OPT_CMD + 3)
#define OPT_DAG_SYNC   (CLI_OPT_CMD + 4)
#define OPT_FRAME      (CLI_OPT_CMD + 5)
#define FRAME_MIN      1024
#define DEMO_NS        "demo"
#define DEMO_VALUE_LEN 32

static const char serve_usage[] =
        "Usage: sluice serve [-d DIR] [--listen ADDR] [-p PORT] [-m PORT|off]\n"
        "                    [--token-file FILE] [--threads N] [--frame-budget BYTES]\n"
        "                    [--dag-sync DURATION|off] [--db mutable|immutable]\n"
        "                    [-i N] [-t DURATION] [-o N] [LIMITS]\n"
        "\n"
        "Serve the namespaces of the store in DIR at http://ADDR:PORT/api/v0 (see\n"
        "docs/protocol.md), with metrics at http://ADDR:MPORT/metrics. Targets are\n"
        "signed with the node key in DIR/node.key, created on first start.\n"
        "\n"
        "      --listen ADDR       IPv4 address to bind (default 127.0.0.1)\n"
        "  -p, --port PORT         API port (default 8080; 0 picks a free one)\n"
        "  -m, --metrics-port PORT metrics port (default 9090; 0 picks a free one;\n"
        "                          off disables metrics)\n"
        "      --token-file FILE   accept POST .../commit with this bearer token;\n"
        "                          without it commits are refused\n"
        "      --threads N         request threads (default 4)\n"
        "      --frame-budget BYTES  bytes of operations in one ops frame, and of\n"
        "                          entries and values in one dag page (default\n"
        "                          16777216, 1024 to 67108864); a frame holds one\n"
        "                          operation or entry at least\n"
        "      --dag-sync DURATION|off  a full sync of each dag namespace with each\n"
        "                          of its peers this often (default 60s); entries\n"
        "                          owed to a peer are pushed soon after they are\n"
        "                          stored; off: no background dag sync\n"
        "\n"
        "Generating operations (demos and tests): with --db or -i, namespace 'demo'\n"
        "is created if missing and operations are committed to it.\n"
        "      --db KIND           kind of 'demo': mutable or immutable (default\n"
        "                          mutable)\n"
        "  -i, --initial-ops N     operations committed at start (default 100)\n"
        "  -t, --op-interval DUR   time between commits (default 100ms)\n"
        "  -o, --ops-per-interval N operations per commit (default 5)\n"
        "\n"
        "LIMITS, per client address, so that one client cannot starve the "
        "others:\n" CLI_LIMIT_USAGE;

static const struct option serve_options[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port", required_argument, NULL, 'p'},
        {"metrics-port", required_argument, NULL, 'm'},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"frame-budget", required_argument, NULL, OPT_FRAME},
        {"dag-sync", required_argument, NULL, OPT_DAG_SYNC},
        {"db", required_argument, NULL, OPT_DB},
        {"initial-ops", required_argument, NULL, 'i'},
        {"op-interval", required_argument, NULL, 't'},
        {"ops-per-interval", required_argument, NULL, 'o'},
        CLI_LIMIT_OPTIONS,
        {NULL, 0, NULL, 0},
};

typedef struct serve_args {
	const char *listen;
	uint16_t port, metrics_port;
	int metrics_off;
	const char *token_file;
	uint64_t threads;
	uint64_t frame_budget; /* 0: the server's default */
	uint64_t dag_sync_ms;  /* 0: off */
	int generate;
	sl_ns_kind kind;
	uint64_t initial_ops, interval_ms, ops_per_interval;
	sl_http_limits limits;
} serve_args;

static int serve_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	serve_args *a = ctx;
	int rc = cli_limit_opt(cmd->name, opt, arg, &a->limits);
	if (rc != CLI_CONTINUE)
		return rc;
	switch (opt) {
	case OPT_LISTEN:
		a->listen = arg;
		return CLI_OK;
	case 'p':
		return cli_parse_port(cmd->name, "--port", arg, &a->port);
	case 'm':
		if (strcmp(arg, "off") == 0) {
			a->metrics_off = 1;
			return CLI_OK;
		}
		return cli_parse_port(cmd->name, "--metrics-port", arg, &a->metrics_port);
	case OPT_TOKEN_FILE:
		a->token_file = arg;
		return CLI_OK;
	case OPT_THREADS:
		if (cli_parse_u64(cmd->name, "--threads", arg, &a->threads) != CLI_OK)
			return CLI_USAGE;
		if (a->threads == 0 || a->threads > 64)
			return cli_usage_error(cmd->name, "--threads must be 1..64");
		return CLI_OK;
	case OPT_FRAME:
		if (cli_parse_u64(cmd->name, "--frame-budget", arg, &a->frame_budget) != CLI_OK)
			return CLI_USAGE;
		if (a->frame_budget < FRAME_MIN || a->frame_budget > SL_SYNC_FRAME_BUDGET_MAX)
			return cli_usage_error(cmd->name, "--frame-budget must be %d to %zu bytes",
			                       FRAME_MIN, SL_SYNC_FRAME_BUDGET_MAX);
		return CLI_OK;
	case OPT_DAG_SYNC:
		if (strcmp(arg, "off") == 0) {
			a->dag_sync_ms = 0;
			return CLI_OK;
		}
		if (cli_parse_duration_ms(cmd->name, "--dag-sync", arg, &a->dag_sync_ms) != CLI_OK)
			return CLI_USAGE;
		if (a->dag_sync_ms == 0)
			return cli_usage_error(cmd->name, "--dag-sync must be a duration or off");
		return CLI_OK;
	case OPT_DB:
		a->generate = 1;
		if (sl_ns_kind_parse(&a->kind, arg) != SL_OK)
			return cli_usage_error(cmd->name, "--db: '%s' is not mutable or immutable",
			                       arg);
		return CLI_OK;
	case 'i':
		a->generate = 1;
		return cli_parse_u64(cmd->name, "--initial-ops", arg, &a->initial_ops);
	case 't':
		return cli_parse_duration_ms(cmd->name, "--op-interval", arg, &a->interval_ms);
	case 'o':
		return cli_parse_u64(cmd->name, "--ops-per-interval", arg, &a->ops_per_interval);
	}
	return CLI_USAGE;
}

/* ------------------------------------------------------------ generator */

typedef struct generator {
	sl_store *store;
	sl_ns_kind kind;
	uint64_t next_key; /* immutable: keys are never reused */
	uint64_t key_space;
	uint64_t rng;
} generator;

/* One commit of n operations: fresh keys in an immutable namespace;
 * updates of a bounded key space, and a delete now and then, in a
 * mutable one (so the floor moves). */
static int generate(generator *g, uint64_t n)
{
	sl_batch *b = NULL;
	sl_target t;
	int rc;

	if ((rc = sl_batch_new(&b, g->store, DEMO_NS)) != SL_OK)
		return rc;
	for (uint64_t i = 0; i < n && rc == SL_OK; i++) {
		char key[48];
		uint8_t value[DEMO_VALUE_LEN];
		uint64_t k = g->kind == SL_NS_IMMUTABLE ? g->next_key++
		                                        : sl_xorshift64(&g->rng) % g->key_space;
		/* 32-byte keys, as in the benchmarks. */
		int klen = snprintf(key, sizeof(key), "key/%028llu", (unsigned long long)k);
		for (size_t j = 0; j < sizeof(value); j += 8) {
			uint64_t r = sl_xorshift64(&g->rng);
			memcpy(value + j, &r, 8);
		}
		if (g->kind == SL_NS_MUTABLE && sl_xorshift64(&g->rng) % 10 == 0)
			rc = sl_batch_del(b, key, (size_t)klen);
		else
			rc = sl_batch_put(b, key, (size_t)klen, value, sizeof(value));
	}
	if (rc == SL_OK)
		rc = sl_batch_commit(b, &t);
	sl_batch_free(b);
	if (rc == SL_OK)
		sl_log(SL_LOG_DEBUG, "generated operations",
		       "ns=" DEMO_NS " entries=%llu size=%llu", (unsigned long long)n,
		       (unsigned long long)t.size);
	return rc;
}

static int generator_start(generator *g, const serve_args *a)
{
	sl_ns_info info;
	int rc = sl_store_ns_info(g->store, DEMO_NS, &info);

	if (rc == SL_ENOTFOUND) {
		if ((rc = sl_store_ns_create(g->store, DEMO_NS, a->kind)) != SL_OK)
			return rc;
		rc = sl_store_ns_info(g->store, DEMO_NS, &info);
	}
	if (rc != SL_OK)
		return rc;
	if (info.kind != a->kind)
		return sl_error_set(SL_ECONFLICT, "namespace '" DEMO_NS "' exists and is %s",
		                    sl_ns_kind_name(info.kind));
	g->kind = a->kind;
	g->next_key = info.target.size; /* past every key an earlier run set */
	g->key_space = a->initial_ops > 1000 ? a->initial_ops : 1000;
	g->rng = sl_clock_wall_ms() | 1;
	for (uint64_t done = 0; done < a->initial_ops;) {
		uint64_t n = a->initial_ops - done < 1000 ? a->initial_ops - done : 1000;
		if ((rc = generate(g, n)) != SL_OK)
			return rc;
		done += n;
	}
	if (a->initial_ops)
		sl_log(SL_LOG_INFO, "generated the initial operations",
		       "ns=" DEMO_NS " kind=%s n=%llu", sl_ns_kind_name(a->kind),
		       (unsigned long long)a->initial_ops);
	return SL_OK;
}

/* ----------------------------------------------------------------- serve */

int cli_cmd_serve(int argc, char **argv)
{
	cli_cmd cmd = {.name = "serve", .usage = serve_usage, .options = serve_options};
	serve_args a = {.listen = "127.0.0.1",
	                .port = 8080,
	                .metrics_port = 9090,
	                .threads = 4,
	                .kind = SL_NS_MUTABLE,
	                .initial_ops = 100,
	                .interval_ms = 100,
	                .ops_per_interval = 5,
	                .dag_sync_ms = SL_DAG_INTERVAL_MS};
	static volatile sig_atomic_t stop;
	sl_sync_server_options so;
	sl_sync_server *server = NULL;
	sl_dag_syncer *syncer = NULL;
	sl_http_server *metrics_http = NULL;
	sl_metrics *metrics = NULL;
	sl_node_key key;
	generator gen;
	char *token = NULL, node[2 * SL_ED25519_PK_LEN + 1];
	sl_http_limits_init(&a.limits);
	int rc = cli_parse(&cmd, argc, argv, serve_opt, &a);

	if (rc != CLI_CONTINUE)
		return rc;
	memset(&gen, 0, sizeof(gen));
	if (a.token_file && (rc = cli_read_token(cmd.name, a.token_file, &token)) != CLI_OK)
		goto cleanup;
	if ((rc = cli_open_store(&cmd, a.generate ? SL_STORE_CREATE : 0, &gen.store)) != CLI_OK)
		goto cleanup;
	rc = CLI_FAIL;
	if (sl_base_init() != SL_OK || sl_node_key_load(&key, cmd.dir, 1) != SL_OK ||
	    (a.generate && generator_start(&gen, &a) != SL_OK) ||
	    (!a.metrics_off &&
	     (sl_metrics_new(&metrics) != SL_OK ||
	      sl_metrics_serve(&metrics_http, metrics, a.listen, a.metrics_port) != SL_OK))) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	sl_sync_server_options_init(&so);
	so.store_dir = cmd.dir;
	so.listen_addr = a.listen;
	so.port = a.port;
	so.threads = (unsigned)a.threads;
	if (a.frame_budget)
		so.frame_budget = (size_t)a.frame_budget;
	so.token = token;
	so.key = &key;
	so.metrics = metrics;
	so.limits = a.limits;
	if (sl_sync_server_start(&server, &so) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (a.dag_sync_ms) {
		sl_dag_syncer_options yo;
		sl_dag_syncer_options_init(&yo);
		yo.store_dir = cmd.dir;
		yo.key = &key;
		yo.interval_ms = a.dag_sync_ms;
		yo.metrics = metrics;
		if (sl_dag_syncer_start(&syncer, &yo) != SL_OK) {
			rc = cli_fail(cmd.name);
			goto cleanup;
		}
	}
	sl_hex_encode(node, key.pk, SL_ED25519_PK_LEN);
	sl_log(SL_LOG_INFO, "serving",
	       "listen=%s port=%u metrics_port=%u node=%s store=%s commits=%s", a.listen,
	       sl_sync_server_port(server), metrics_http ? sl_http_server_port(metrics_http) : 0,
	       node, cmd.dir, token ? "token" : "refused");
	cli_on_stop_signal(&stop);
	rc = CLI_OK;
	while (!stop) {
		uint64_t until = sl_clock_mono_ns() + a.interval_ms * 1000000;
		if (a.generate && a.ops_per_interval &&
		    generate(&gen, a.ops_per_interval) != SL_OK) {
			sl_log(SL_LOG_ERROR, "could not generate operations", "reason=\"%s\"",
			       sl_error_last()->message);
			rc = CLI_FAIL;
			break;
		}
		while (!stop && sl_clock_mono_ns() < until)
			sl_sleep_ms(a.generate ? 5 : 100);
	}
	sl_log(SL_LOG_INFO, "stopping", "port=%u", sl_sync_server_port(server));
cleanup:
	sl_dag_syncer_stop(syncer);
	sl_sync_server_stop(server);
	sl_http_server_stop(metrics_http);
	sl_metrics_free(metrics);
	sl_store_free(gen.store);
	if (token) {
		memset(token, 0, strlen(token));
		sl_free(token);
	}
	memset(&key, 0, sizeof(key));
	return rc;
}
