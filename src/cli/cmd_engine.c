/*
 * `sluice engine serve` runs the tiered write engine (sluice/engine.h)
 * behind its HTTP API, with metrics on their own port; `sluice engine
 * status` asks a running one for its levels, WAL backlog, L3 lag and
 * parked rows; `sluice engine diff` compares this engine's L3 with the
 * one another engine serves, by set reconciliation (engine_items.c).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/diff_report.h"
#include "cli/engine_config.h"
#include "sluice/engine.h"

#define OPT_CONFIG  'c'
#define OPT_PEER    CLI_OPT_CMD
#define OPT_TIMEOUT (CLI_OPT_CMD + 1)
#define DRAIN_MS    10000
#define STATUS_MAX  (16u << 20)
#define STATUS_WAIT 10000

static const struct option engine_options[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"port", required_argument, NULL, 'p'},
        {"metrics-port", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
};

typedef struct engine_args {
	const char *config;
	int port_set, metrics_set, metrics_off;
	uint16_t port, metrics_port;
} engine_args;

static int engine_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	engine_args *a = ctx;
	switch (opt) {
	case OPT_CONFIG:
		a->config = arg;
		return CLI_OK;
	case 'p':
		a->port_set = 1;
		return cli_parse_port(cmd->name, "--port", arg, &a->port);
	case 'm':
		a->metrics_set = 1;
		if (strcmp(arg, "off") == 0) {
			a->metrics_off = 1;
			return CLI_OK;
		}
		return cli_parse_port(cmd->name, "--metrics-port", arg, &a->metrics_port);
	}
	return CLI_USAGE;
}

/* Parses the command line and loads the config; CLI_CONTINUE to go on. */
static int engine_setup(cli_cmd *cmd, int argc, char **argv, engine_args *a, cli_engine_config *cfg)
{
	int rc = cli_parse(cmd, argc, argv, engine_opt, a);
	if (rc != CLI_CONTINUE)
		return rc;
	if (a->config == NULL)
		return cli_usage_error(cmd->name, "--config FILE is required");
	if (cli_engine_config_load(cfg, a->config) != SL_OK)
		return cli_fail(cmd->name);
	if (a->port_set)
		cfg->port = a->port;
	if (a->metrics_set)
		cfg->metrics_port = a->metrics_port;
	return CLI_CONTINUE;
}

/* ----------------------------------------------------------------- serve */

static const char serve_usage[] =
        "Usage: sluice engine serve --config FILE [-p PORT] [-m PORT|off]\n"
        "\n"
        "Run the tiered write engine configured in FILE (docs/cli.md, \"sluice\n"
        "engine\") and serve its HTTP API at http://LISTEN:PORT/api/v0/kv/{key}.\n"
        "Until SIGINT or SIGTERM; then it stops taking writes, drains what it can\n"
        "to L3 for up to 10 s (the rest stays in the WAL) and exits 0.\n"
        "\n"
        "  -c, --config FILE       the engine's TOML configuration (required)\n"
        "  -p, --port PORT         API port (default [server] port, 8480; 0 picks one)\n"
        "  -m, --metrics-port PORT metrics port (default [server] metrics_port, 9480;\n"
        "                          off disables metrics)\n";

static int is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0;
}

static int engine_serve(int argc, char **argv)
{
	cli_cmd cmd = {.name = "engine serve", .usage = serve_usage, .options = engine_options};
	engine_args a = {0};
	cli_engine_config cfg;
	static volatile sig_atomic_t stop;
	sl_metrics *metrics = NULL;
	sl_http_server *metrics_http = NULL, *api = NULL;
	sl_engine *engine = NULL;
	sl_engine_http *handler = NULL;
	char *token = NULL;
	memset(&cfg, 0, sizeof(cfg));
	int rc = engine_setup(&cmd, argc, argv, &a, &cfg);
	if (rc != CLI_CONTINUE)
		goto cleanup;
	if (cfg.token_file && (rc = cli_read_token(cmd.name, cfg.token_file, &token)) != CLI_OK)
		goto cleanup;
	if (token == NULL && !is_loopback(cfg.listen)) {
		rc = cli_errorf(cmd.name,
		                "listening on %s takes a token: set [server] token_file, or "
		                "listen on 127.0.0.1",
		                cfg.listen);
		goto cleanup;
	}
	rc = CLI_FAIL;
	if (!a.metrics_off &&
	    (sl_metrics_new(&metrics) != SL_OK ||
	     sl_metrics_serve(&metrics_http, metrics, cfg.listen, cfg.metrics_port) != SL_OK)) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	cfg.engine.metrics = metrics;
	sl_engine_http_options ho = {token, 0};
	sl_http_server_options so;
	sl_http_server_options_init(&so);
	so.listen_addr = cfg.listen;
	so.port = cfg.port;
	so.threads = cfg.threads;
	so.metrics = metrics;
	/* a value, or the largest request of the diff between engines */
	so.max_request = cfg.engine.value_max + 1;
	if (so.max_request < 6 + (size_t)SL_WIRE_MAX_IDS * SL_ITEM_ID_LEN)
		so.max_request = 6 + (size_t)SL_WIRE_MAX_IDS * SL_ITEM_ID_LEN;
	if (sl_engine_open(&engine, &cfg.engine) != SL_OK ||
	    sl_engine_http_new(&handler, engine, &ho) != SL_OK ||
	    sl_http_server_start(&api, &so, sl_engine_http_handle, handler) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	sl_log(SL_LOG_INFO, "serving", "listen=%s port=%u metrics_port=%u l2=%s l3=%s writes=%s",
	       cfg.listen, sl_http_server_port(api),
	       metrics_http ? sl_http_server_port(metrics_http) : 0,
	       cfg.engine.l2_url ? cfg.engine.l2_url : "none",
	       cfg.engine.l3_type == SL_L3_STORE        ? "store"
	       : cfg.engine.l3_type == SL_L3_POSTGRESQL ? "postgresql"
	                                                : "mysql",
	       token ? "token" : "open");
	cli_on_stop_signal(&stop);
	while (!stop)
		sl_sleep_ms(50);
	sl_log(SL_LOG_INFO, "stopping", "port=%u", sl_http_server_port(api));
	rc = CLI_OK;
cleanup:
	sl_http_server_stop(api);
	sl_engine_http_free(handler);
	sl_engine_close(engine, DRAIN_MS);
	sl_http_server_stop(metrics_http);
	sl_metrics_free(metrics);
	if (token) {
		memset(token, 0, strlen(token));
		sl_free(token);
	}
	cli_engine_config_free(&cfg);
	return rc;
}

/* ---------------------------------------------------------------- status */

static const char status_usage[] =
        "Usage: sluice engine status --config FILE [-p PORT] [--json]\n"
        "\n"
        "Ask the engine serving on [server] listen and port (or PORT) for its\n"
        "backpressure level, L1 and WAL backlog, L3 lag and last error, and the\n"
        "rows L3 refused (parked). --json prints the answer as it came.\n";

static json_t *get_obj(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_object(v) ? v : NULL;
}

static long long num(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void print_status(json_t *s)
{
	json_t *l1 = get_obj(s, "l1"), *wal = get_obj(s, "wal"), *l3 = get_obj(s, "l3"),
	       *filter = get_obj(s, "filter"), *parked = json_object_get(s, "parked");
	printf("pressure     %s (%.1f%% of a cap)\n",
	       json_string_value(json_object_get(s, "pressure")),
	       100.0 * json_number_value(json_object_get(s, "pressure_ratio")));
	printf("l1           %lld keys, %lld bytes, %lld dirty, budget %lld\n", num(l1, "entries"),
	       num(l1, "bytes"), num(l1, "dirty_bytes"), num(l1, "budget_bytes"));
	printf("wal          %lld bytes in %lld segments (cap %lld), oldest %lld ms, lsn %lld\n",
	       num(wal, "bytes"), num(wal, "segments"), num(wal, "max_bytes"),
	       num(wal, "oldest_age_ms"), num(wal, "lsn"));
	const char *err = json_string_value(json_object_get(l3, "error"));
	printf("l3           %s, lag %lld records, %lld rows in %lld batches, %lld retrying%s%s\n",
	       json_is_true(json_object_get(l3, "up")) ? "up" : "DOWN", num(l3, "lag"),
	       num(l3, "rows"), num(l3, "batches"), num(l3, "retrying"),
	       err && err[0] ? ", last error: " : "", err && err[0] ? err : "");
	json_t *l2 = get_obj(s, "l2");
	if (l2) {
		const char *l2err = json_string_value(json_object_get(l2, "error"));
		printf("l2           %s, %s (generation %lld), %lld hits, %lld misses, %lld "
		       "skipped, %lld writes, %lld dropped, %lld queued%s%s\n",
		       json_is_true(json_object_get(l2, "up")) ? "up" : "DOWN",
		       json_is_true(json_object_get(l2, "trusted")) ? "trusted" : "NOT trusted",
		       num(l2, "generation"), num(l2, "hits"), num(l2, "misses"),
		       num(l2, "skipped"), num(l2, "writes"), num(l2, "dropped"), num(l2, "queued"),
		       l2err && l2err[0] ? ", last error: " : "", l2err && l2err[0] ? l2err : "");
	}
	const char *name;
	json_t *b;
	json_object_foreach(get_obj(s, "breakers"), name, b)
	{
		printf("breaker %-4s %s for %lld ms, opened %lld times, refused %lld calls\n", name,
		       json_string_value(json_object_get(b, "state")), num(b, "state_ms"),
		       num(b, "opened"), num(b, "refused"));
	}
	printf("filter       %s, %lld keys\n",
	       json_is_true(json_object_get(filter, "trusted")) ? "trusted" : "not trusted",
	       num(filter, "keys"));
	printf("parked       %lld\n", num(s, "parked_count"));
	size_t i;
	json_t *row;
	json_array_foreach(parked, i, row)
	{
		printf("  %s  version %lld%s  %lld attempts  %s\n",
		       json_string_value(json_object_get(row, "key")), num(row, "version"),
		       json_is_true(json_object_get(row, "deleted")) ? " (delete)" : "",
		       num(row, "attempts"), json_string_value(json_object_get(row, "error")));
	}
}

static int engine_status(int argc, char **argv)
{
	cli_cmd cmd = {.name = "engine status",
	               .usage = status_usage,
	               .flags = CLI_JSON,
	               .options = engine_options};
	engine_args a = {0};
	cli_engine_config cfg;
	sl_http_client *client = NULL;
	sl_http_result res;
	char url[512];
	memset(&cfg, 0, sizeof(cfg));
	sl_http_result_init(&res);
	int rc = engine_setup(&cmd, argc, argv, &a, &cfg);
	if (rc != CLI_CONTINUE)
		goto cleanup;
	sl_http_client_options co;
	sl_http_client_options_init(&co);
	co.request_timeout_ms = STATUS_WAIT;
	co.max_response = STATUS_MAX;
	snprintf(url, sizeof(url), "http://%s:%u/api/v0/engine/status",
	         strcmp(cfg.listen, "0.0.0.0") == 0 ? "127.0.0.1" : cfg.listen, cfg.port);
	rc = CLI_FAIL;
	if (sl_http_client_new(&client, &co) != SL_OK ||
	    sl_http_client_fetch(client, "GET", url, NULL, NULL, 0, &res) != SL_OK) {
		rc = cli_errorf(cmd.name, "no engine answers at %s: %s", url,
		                res.error[0] ? res.error : sl_error_last()->message);
		goto cleanup;
	}
	if (res.status != 200) {
		rc = cli_errorf(cmd.name, "%s answered %ld: %.*s", url, res.status,
		                (int)res.body.len, (const char *)res.body.data);
		goto cleanup;
	}
	json_error_t jerr;
	json_t *s = json_loadb((const char *)res.body.data, res.body.len, 0, &jerr);
	if (!json_is_object(s)) {
		json_decref(s);
		rc = cli_errorf(cmd.name, "%s answered something that is not a status", url);
		goto cleanup;
	}
	if (cmd.json) {
		rc = cli_json_print(cmd.name, s); /* releases s */
	} else {
		print_status(s);
		json_decref(s);
		rc = CLI_OK;
	}
cleanup:
	sl_http_result_free(&res);
	sl_http_client_free(client);
	cli_engine_config_free(&cfg);
	return rc;
}

/* ------------------------------------------------------------------ diff */

static const char diff_usage[] =
        "Usage: sluice engine diff -c FILE --peer HOST:PORT [--timeout DURATION] [--json]\n"
        "\n"
        "Compare the L3 of the engine configured in FILE with the L3 of the engine\n"
        "serving at --peer (`sluice engine serve`), by set reconciliation over their\n"
        "live keys: a few round trips and bytes that follow the differences, not the\n"
        "number of keys. A key counts as the same on both sides when it has the same\n"
        "version and value. Prints the keys only here, only there, and those in both\n"
        "that differ; every key the peer names is checked against the item it\n"
        "stands for.\n"
        "\n"
        "Only L3 is read here (no WAL, no drain): writes this engine acknowledged but\n"
        "has not drained into L3 yet are not counted. Run it against the L3 of a\n"
        "stopped engine, or of a serving one after `flush`.\n"
        "\n"
        "  -c, --config FILE       the engine's TOML configuration (required)\n"
        "      --peer HOST:PORT    the engine to compare with\n"
        "      --timeout DURATION  per-request timeout (default 30s)\n"
        "\n"
        "Exit status: 0 when the diff ran, whether or not the engines differ; 1 when\n"
        "it failed.\n";

static const struct option diff_options[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"peer", required_argument, NULL, OPT_PEER},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
};

typedef struct diff_args {
	const char *config, *peer;
	unsigned timeout_ms;
} diff_args;

static int diff_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	diff_args *a = ctx;
	switch (opt) {
	case OPT_CONFIG:
		a->config = arg;
		return CLI_OK;
	case OPT_PEER:
		a->peer = arg;
		return CLI_OK;
	case OPT_TIMEOUT:
		return cli_parse_timeout_ms(cmd->name, "--timeout", arg, &a->timeout_ms);
	}
	return CLI_USAGE;
}

static int engine_diff(int argc, char **argv)
{
	cli_cmd cmd = {.name = "engine diff",
	               .usage = diff_usage,
	               .flags = CLI_JSON,
	               .options = diff_options};
	diff_args a = {0};
	cli_engine_config cfg;
	sl_engine_items *items = NULL;
	sl_diff_report report;
	char here[600], there[300];

	memset(&cfg, 0, sizeof(cfg));
	memset(&report, 0, sizeof(report));
	int rc = cli_parse(&cmd, argc, argv, diff_opt, &a);
	if (rc != CLI_CONTINUE)
		return rc;
	if (a.config == NULL || a.peer == NULL)
		return cli_usage_error(cmd.name, "--config FILE and --peer HOST:PORT are required");
	if (cli_engine_config_load(&cfg, a.config) != SL_OK ||
	    sl_engine_items_new(&items, &cfg.engine) != SL_OK ||
	    sl_engine_diff(items, a.peer, a.timeout_ms, &report) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	rc = CLI_OK;
	if (cmd.json) {
		rc = cli_diff_print_json(cmd.name, &report, 0);
	} else {
		snprintf(here, sizeof(here), "%s", a.config);
		snprintf(there, sizeof(there), "%s", a.peer);
		cli_diff_print_text(here, there, &report, 0);
	}
cleanup:
	sl_diff_report_free(&report);
	sl_engine_items_free(items);
	cli_engine_config_free(&cfg);
	return rc;
}

static const char engine_usage[] = "Usage: sluice engine COMMAND [OPTIONS]\n"
                                   "\n"
                                   "The tiered write engine (docs/cli.md, \"sluice engine\").\n";

static const cli_command engine_commands[] = {
        {"serve", engine_serve, "run the engine and its HTTP API"},
        {"status", engine_status, "levels, WAL backlog, L3 lag and parked rows"},
        {"diff", engine_diff, "compare this engine's L3 with another engine's"},
};

int cli_cmd_engine(int argc, char **argv)
{
	return cli_dispatch("engine", engine_usage, engine_commands,
	                    sizeof(engine_commands) / sizeof(engine_commands[0]), argc, argv);
}
