/*
 * The pipeline commands: `run`, `start`, `reset`, `status`, `failed` and
 * `retry`, all driven by one config file (--config; without it
 * ./sluice.toml, else ./config.toml, recall-synchronizer's name for it;
 * see config.example.toml). The work is in pipeline/run.c; these commands
 * open its parts (pipeline_setup.c), show progress (progress.c) and report.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/pipeline_metrics.h"
#include "cli/pipeline_setup.h"
#include "cli/progress.h"

#define OPT_SINCE    CLI_OPT_CMD
#define OPT_INTERVAL (CLI_OPT_CMD + 1)
#define OPT_YES      (CLI_OPT_CMD + 2)
#define OPT_ALL      (CLI_OPT_CMD + 3)

/* Where the config is looked for without --config, in this order. */
static const char *const default_configs[] = {"./sluice.toml", "./config.toml"};
/* How long `status` waits for the database before it says "unknown". */
#define STATUS_DB_TIMEOUT_MS 5000

typedef struct pipeline_args {
	const char *config;
	const char *since;
	uint64_t interval_ms;
	int has_interval;
	int yes;
	int all;
	int has_metrics; /* -m */
	uint16_t metrics_port;
} pipeline_args;

static int pipeline_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	pipeline_args *a = ctx;
	switch (opt) {
	case 'c':
		a->config = arg;
		return CLI_OK;
	case OPT_SINCE:
		if (sl_clock_rfc3339_check(arg) != SL_OK)
			return cli_usage_error(cmd->name, "--since: %s", sl_error_last()->message);
		a->since = arg;
		return CLI_OK;
	case OPT_INTERVAL:
		a->has_interval = 1;
		if (cli_parse_duration_ms(cmd->name, "--interval", arg, &a->interval_ms) != CLI_OK)
			return CLI_USAGE;
		if (a->interval_ms == 0)
			return cli_usage_error(cmd->name, "--interval must be more than 0");
		return CLI_OK;
	case OPT_YES:
		a->yes = 1;
		return CLI_OK;
	case OPT_ALL:
		a->all = 1;
		return CLI_OK;
	case 'm':
		a->has_metrics = 1;
		return cli_parse_port(cmd->name, "--metrics-port", arg, &a->metrics_port);
	}
	return CLI_USAGE;
}

#define CONFIG_OPTION                                                                              \
	{                                                                                          \
		"config", required_argument, NULL, 'c'                                             \
	}

#define CONFIG_HELP                                                                                \
	"  -c, --config FILE       pipeline config (default ./sluice.toml, else\n"                 \
	"                          ./config.toml; see config.example.toml)\n"

#define METRICS_OPTION                                                                             \
	{                                                                                          \
		"metrics-port", required_argument, NULL, 'm'                                       \
	}

#define METRICS_HELP                                                                               \
	"  -m, --metrics-port PORT serve metrics at http://127.0.0.1:PORT/metrics (0\n"            \
	"                          picks a free port; docs/cli.md names them)\n"

static int parse_args(cli_cmd *cmd, pipeline_args *a, int argc, char **argv)
{
	int rc;

	memset(a, 0, sizeof(*a));
	if ((rc = cli_parse(cmd, argc, argv, pipeline_opt, a)) != CLI_CONTINUE || a->config != NULL)
		return rc;
	for (size_t i = 0; i < sizeof(default_configs) / sizeof(default_configs[0]); i++) {
		if (access(default_configs[i], F_OK) == 0) {
			a->config = default_configs[i];
			return CLI_CONTINUE;
		}
	}
	return cli_errorf(cmd->name,
	                  "no config: neither %s nor %s exists here (or give one with --config "
	                  "FILE; see config.example.toml)",
	                  default_configs[0], default_configs[1]);
}

/* --------------------------------------------------------------- run */

static volatile sig_atomic_t stop_requested;

static void report_run(const char *name, const sl_pipeline_progress *pr)
{
	printf("%s: %llu new rows, %llu objects stored (%llu bytes), %llu failed\n", name,
	       (unsigned long long)pr->rows, (unsigned long long)pr->objects,
	       (unsigned long long)pr->bytes, (unsigned long long)pr->failed);
	if (pr->removed > 0)
		printf("%s: %llu objects removed (their rows deleted, or moved to another key)\n",
		       name, (unsigned long long)pr->removed);
	if (pr->failed > 0)
		printf("%s: failed objects are retried with backoff; see 'sluice failed --all'\n",
		       name);
	if (pr->held_by)
		printf("%s: newer rows wait for transaction pid %d to end (rows it may still "
		       "commit "
		       "would sort before them)\n",
		       name, pr->held_by);
	fflush(stdout);
}

/* For the commands that run: parses argv, opens every part of the
 * pipeline, serves metrics when -m asks (*pm, else NULL) and lets
 * SIGINT/SIGTERM finish the batch in flight. CLI_CONTINUE to go on (then p
 * is open), else the exit status. */
static int open_for_run(cli_cmd *cmd, pipeline_args *a, cli_pipeline *p, cli_pipeline_metrics **pm,
                        int argc, char **argv)
{
	int rc = parse_args(cmd, a, argc, argv);
	*pm = NULL;
	if (rc != CLI_CONTINUE)
		return rc;
	if (strcmp(cmd->name, "start") == 0 && !a->has_interval)
		return cli_usage_error(cmd->name, "--interval is required");
	if (cli_pipeline_open(p, cmd->name, a->config, CLI_PIPELINE_ALL) != CLI_OK)
		return CLI_FAIL;
	if (p->cfg.changes_mode && a->since != NULL) {
		cli_pipeline_close(p);
		return cli_usage_error(cmd->name, "--since lists rows by created_at: polling mode "
		                                  "only ([database] mode = \"changes\" here)");
	}
	cli_on_stop_signal(&stop_requested);
	p->options.since = a->since;
	if (a->has_metrics &&
	    cli_pipeline_metrics_start(pm, cmd->name, p, a->metrics_port) != CLI_OK) {
		cli_pipeline_close(p);
		return CLI_FAIL;
	}
	return CLI_CONTINUE;
}

/* One run; CLI_OK or CLI_FAIL (reported). pm: metrics, or NULL. */
static int run_once(cli_pipeline *p, const char *name, int retry_only, cli_pipeline_metrics *pm)
{
	sl_pipeline_progress pr;
	cli_progress progress;
	int rc;

	cli_progress_init(&progress, stderr);
	p->options.retry_only = retry_only;
	p->options.stop = &stop_requested;
	p->options.progress = cli_progress_update;
	p->options.progress_ctx = &progress;
	p->options.count_behind = progress.tty; /* only the bar shows it */
	cli_pipeline_metrics_run_begin(pm, &p->options);
	rc = cli_pipeline_run(p, &pr);
	cli_pipeline_metrics_run_end(pm, rc);
	cli_progress_done(&progress);
	if (rc != SL_OK)
		return cli_fail(name);
	report_run(name, &pr);
	return CLI_OK;
}

static const char run_usage[] =
        "Usage: sluice run [-c FILE] [--since RFC3339] [-m PORT]\n"
        "\n"
        "Copy the rows of the source table that are not yet copied to the\n"
        "destination, then exit. Resumes where the last run stopped; failed\n"
        "objects are retried with backoff and never hold the others back.\n"
        "SIGINT or SIGTERM finish the batch in flight and exit 0.\n"
        "\n" CONFIG_HELP
        "      --since RFC3339     only rows created after this time\n" METRICS_HELP;

static const struct option run_options[] = {CONFIG_OPTION,
                                            {"since", required_argument, NULL, OPT_SINCE},
                                            METRICS_OPTION,
                                            {NULL, 0, NULL, 0}};

int cli_cmd_run(int argc, char **argv)
{
	cli_cmd cmd = {.name = "run", .usage = run_usage, .options = run_options};
	cli_pipeline_metrics *pm;
	cli_pipeline p;
	pipeline_args a;
	int rc;

	if ((rc = open_for_run(&cmd, &a, &p, &pm, argc, argv)) != CLI_CONTINUE)
		return rc;
	rc = run_once(&p, cmd.name, 0, pm);
	cli_pipeline_metrics_stop(pm);
	cli_pipeline_close(&p);
	return rc;
}

/* ------------------------------------------------------------- start */

static const char start_usage[] =
        "Usage: sluice start --interval SECONDS [-c FILE] [--since RFC3339] [-m PORT]\n"
        "\n"
        "Run again and again: a run, then a wait of --interval, until SIGINT or\n"
        "SIGTERM, which finish the batch in flight and exit 0. Runs never overlap,\n"
        "here or with a 'sluice run' started by hand on the same state. A failed\n"
        "run (the database away, say) is logged and tried again next interval.\n"
        "\n" CONFIG_HELP "      --interval DURATION time between runs: seconds, or with a unit\n"
        "                          (500ms, 30s, 5m)\n"
        "      --since RFC3339     only rows created after this time\n" METRICS_HELP;

static const struct option start_options[] = {CONFIG_OPTION,
                                              {"interval", required_argument, NULL, OPT_INTERVAL},
                                              {"since", required_argument, NULL, OPT_SINCE},
                                              METRICS_OPTION,
                                              {NULL, 0, NULL, 0}};

int cli_cmd_start(int argc, char **argv)
{
	cli_cmd cmd = {.name = "start", .usage = start_usage, .options = start_options};
	cli_pipeline_metrics *pm;
	cli_pipeline p;
	pipeline_args a;
	int rc;

	if ((rc = open_for_run(&cmd, &a, &p, &pm, argc, argv)) != CLI_CONTINUE)
		return rc;
	sl_log(SL_LOG_INFO, "pipeline started", "config=%s interval_ms=%llu", a.config,
	       (unsigned long long)a.interval_ms);
	while (!stop_requested) {
		run_once(&p, cmd.name, 0, pm); /* a failure is reported; the next run tries again */
		for (uint64_t waited = 0; waited < a.interval_ms && !stop_requested; waited += 100)
			sl_sleep_ms(a.interval_ms - waited < 100 ? a.interval_ms - waited : 100);
	}
	sl_log(SL_LOG_INFO, "pipeline stopped", NULL);
	cli_pipeline_metrics_stop(pm);
	cli_pipeline_close(&p);
	return CLI_OK;
}

/* ------------------------------------------------------------- reset */

static const char reset_usage[] =
        "Usage: sluice reset [-c FILE] [--yes]\n"
        "\n"
        "Forget the cursor, the totals and the failures, so that the next run\n"
        "copies every row again (the destination is not touched). In changes\n"
        "mode, also drop the replication slot the pipeline made (its\n"
        "publication stays). Asks first unless --yes.\n"
        "\n" CONFIG_HELP "      --yes               do not ask\n";

static const struct option reset_options[] = {
        CONFIG_OPTION, {"yes", no_argument, NULL, OPT_YES}, {NULL, 0, NULL, 0}};

int cli_cmd_reset(int argc, char **argv)
{
	cli_cmd cmd = {.name = "reset", .usage = reset_usage, .options = reset_options};
	sl_pipeline_changes changes;
	char also[128] = "";
	cli_pipeline p;
	pipeline_args a;
	int rc;

	if ((rc = parse_args(&cmd, &a, argc, argv)) != CLI_CONTINUE)
		return rc;
	if (cli_pipeline_open(&p, cmd.name, a.config, CLI_PIPELINE_STATE) != CLI_OK)
		return CLI_FAIL;
	if (sl_pipeline_state_changes(p.state, &changes) != SL_OK) {
		cli_pipeline_close(&p);
		return cli_fail(cmd.name);
	}
	if (changes.known && changes.created_slot)
		snprintf(also, sizeof(also), " and drop replication slot %s", changes.slot);
	if (!a.yes) {
		char answer[16] = "";
		if (!isatty(STDIN_FILENO)) {
			cli_pipeline_close(&p);
			return cli_errorf(cmd.name, "not resetting without --yes: stdin is not a "
			                            "terminal to ask on");
		}
		fprintf(stderr, "Reset %s (cursor, totals and failures)%s? [y/N] ",
		        p.cfg.state_path, also);
		fflush(stderr);
		if (fgets(answer, sizeof(answer), stdin) == NULL ||
		    (answer[0] != 'y' && answer[0] != 'Y')) {
			cli_pipeline_close(&p);
			fprintf(stderr, "not reset\n");
			return CLI_FAIL;
		}
	}
	/* The slot first: a state reset with the slot left would hold WAL on
	 * the server for a pipeline that no longer reads it. */
	if (also[0] != '\0' && sl_pg_slot_drop(&p.cfg.pg, changes.slot) != SL_OK) {
		cli_pipeline_close(&p);
		return cli_errorf(cmd.name, "cannot drop replication slot %s: %s; nothing reset",
		                  changes.slot, sl_error_last()->message);
	}
	rc = sl_pipeline_state_reset(p.state) == SL_OK ? CLI_OK : cli_fail(cmd.name);
	if (rc == CLI_OK && also[0] != '\0')
		printf("dropped replication slot %s\n", changes.slot);
	if (rc == CLI_OK)
		printf("reset %s\n", p.cfg.state_path);
	cli_pipeline_close(&p);
	return rc;
}

/* ------------------------------------------------------------ status */

/* Changes mode's status: the position, and the slot as the server sees it
 * (its lag: WAL bytes it keeps for us, and the time since a run last
 * reached the server's position while bytes wait). */
static int status_changes(cli_cmd *cmd, cli_pipeline *p, const sl_pipeline_status *st)
{
	cli_slot_lag lag;
	const sl_pipeline_changes *ch = &lag.position;
	const sl_pg_slot_info *slot = &lag.slot;
	char lsn[24] = "", last_run[32] = "";
	int have_slot;
	double lag_s;

	if (cli_pipeline_slot_lag(p->state, &p->cfg.pg, p->cfg.slot, &lag) != SL_OK) {
		if (!lag.position.known && lag.position.slot[0] == '\0')
			return cli_fail(cmd->name); /* the state could not be read */
		sl_log(SL_LOG_WARN, "source not reachable; slot lag unknown", "error=\"%s\"",
		       sl_error_last()->message);
	}
	have_slot = lag.have_slot;
	lag_s = lag.seconds;
	snprintf(lsn, sizeof(lsn), "%X/%X", (unsigned)(ch->lsn >> 32), (unsigned)ch->lsn);
	if (st->last_run_ms)
		sl_clock_format_rfc3339(last_run, sizeof(last_run), st->last_run_ms);
	if (cmd->json) {
		json_t *o = json_object();
		int bad = o == NULL;
		bad |= cli_json_set(o, "mode", json_string("changes"));
		bad |= cli_json_set(o, "slot", json_string(ch->slot));
		bad |= cli_json_set(o, "publication", json_string(p->cfg.publication));
		bad |= cli_json_set(o, "copying", json_boolean(!ch->known || ch->copying));
		bad |= cli_json_set(o, "lsn", ch->known ? json_string(lsn) : json_null());
		bad |= cli_json_set(o, "objects_tracked", cli_json_u64(ch->objects_tracked));
		bad |= cli_json_set(o, "objects", cli_json_u64(st->objects));
		bad |= cli_json_set(o, "bytes", cli_json_u64(st->bytes));
		bad |= cli_json_set(o, "failing", cli_json_u64(st->failing));
		bad |= cli_json_set(o, "parked", cli_json_u64(st->parked));
		bad |= cli_json_set(o, "last_batch",
		                    last_run[0] ? json_string(last_run) : json_null());
		bad |= cli_json_set(o, "slot_exists",
		                    have_slot ? json_boolean(slot->exists) : json_null());
		bad |= cli_json_set(o, "slot_active",
		                    have_slot && slot->exists ? json_boolean(slot->active)
		                                              : json_null());
		bad |= cli_json_set(o, "slot_lag_bytes",
		                    have_slot && slot->exists ? cli_json_u64(slot->lag_bytes)
		                                              : json_null());
		bad |= cli_json_set(o, "slot_lag_seconds",
		                    have_slot && slot->exists && lag_s >= 0 ? json_real(lag_s)
		                                                            : json_null());
		return cli_json_print(cmd->name, bad ? (json_decref(o), NULL) : o);
	}
	printf("state        %s\n", p->cfg.state_path);
	printf("mode         changes (slot %s, publication %s)\n", ch->slot, p->cfg.publication);
	if (!ch->known)
		printf("position     (no run yet)\n");
	else if (ch->copying)
		printf("position     first copy, after id %s\n",
		       ch->copy_after[0] ? ch->copy_after : "(start)");
	else
		printf("position     %s\n", lsn);
	printf("objects      %llu (%llu bytes); %llu rows known\n", (unsigned long long)st->objects,
	       (unsigned long long)st->bytes, (unsigned long long)ch->objects_tracked);
	printf("failures     %llu retrying, %llu parked\n", (unsigned long long)st->failing,
	       (unsigned long long)st->parked);
	printf("last batch   %s\n", last_run[0] ? last_run : "never");
	if (!have_slot)
		printf("slot         unknown (source not reachable)\n");
	else if (!slot->exists)
		printf("slot         missing%s\n",
		       ch->known ? ": changes since it went are lost; `sluice reset` copies again"
		                 : "");
	else {
		printf("slot lag     %llu bytes", (unsigned long long)slot->lag_bytes);
		if (lag_s >= 0)
			printf(", %.1f s", lag_s);
		printf("%s\n", slot->active ? " (a run is reading it)" : "");
	}
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

static const char status_usage[] =
        "Usage: sluice status [-c FILE] [--json]\n"
        "\n"
        "Where the pipeline stands: its cursor, the objects and bytes copied,\n"
        "failures (retrying and parked), and how far it lags behind the newest\n"
        "row of the source (when the database answers).\n"
        "\n" CONFIG_HELP;

static const struct option status_options[] = {CONFIG_OPTION, {NULL, 0, NULL, 0}};

int cli_cmd_status(int argc, char **argv)
{
	cli_cmd cmd = {.name = "status",
	               .usage = status_usage,
	               .options = status_options,
	               .flags = CLI_JSON};
	char newest[SL_TS_TEXT_MAX] = "", last_run[32] = "";
	uint64_t rows_after = 0;
	int have_lag = 0;
	double lag_s = -1;
	sl_pipeline_status st;
	sl_pg_source *pg = NULL;
	cli_pipeline p;
	pipeline_args a;
	int rc;

	if ((rc = parse_args(&cmd, &a, argc, argv)) != CLI_CONTINUE)
		return rc;
	if (cli_pipeline_open(&p, cmd.name, a.config, CLI_PIPELINE_STATE) != CLI_OK)
		return CLI_FAIL;
	if (sl_pipeline_state_status(p.state, &st) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	/* The source is optional here: status still answers, soon, with the
	 * database away. */
	p.cfg.pg.reconnect_ms = 0;
	if (p.cfg.pg.timeout_ms == 0 || p.cfg.pg.timeout_ms > STATUS_DB_TIMEOUT_MS)
		p.cfg.pg.timeout_ms = STATUS_DB_TIMEOUT_MS;
	if (p.cfg.changes_mode) {
		rc = status_changes(&cmd, &p, &st);
		goto cleanup;
	}
	if (sl_pg_source_open(&pg, &p.cfg.pg) == SL_OK &&
	    sl_pg_source_lag(pg, &st.cursor, NULL, newest, &rows_after) == SL_OK) {
		double t_new, t_cur;
		have_lag = 1;
		if (newest[0] && st.cursor.created_at[0] &&
		    cli_pipeline_ts_seconds(newest, &t_new) == 0 &&
		    cli_pipeline_ts_seconds(st.cursor.created_at, &t_cur) == 0)
			lag_s = rows_after > 0 && t_new > t_cur ? t_new - t_cur : 0;
	} else {
		sl_log(SL_LOG_WARN, "source not reachable; lag unknown", "error=\"%s\"",
		       sl_error_last()->message);
	}
	sl_pg_source_close(pg);
	if (st.last_run_ms)
		sl_clock_format_rfc3339(last_run, sizeof(last_run), st.last_run_ms);

	if (cmd.json) {
		json_t *o = json_object();
		int bad = o == NULL;
		bad |= cli_json_set(o, "cursor_created_at", json_string(st.cursor.created_at));
		bad |= cli_json_set(o, "cursor_id", json_string(st.cursor.id));
		bad |= cli_json_set(o, "objects", cli_json_u64(st.objects));
		bad |= cli_json_set(o, "bytes", cli_json_u64(st.bytes));
		bad |= cli_json_set(o, "failing", cli_json_u64(st.failing));
		bad |= cli_json_set(o, "parked", cli_json_u64(st.parked));
		bad |= cli_json_set(o, "last_batch",
		                    last_run[0] ? json_string(last_run) : json_null());
		bad |= cli_json_set(o, "newest_created_at",
		                    have_lag ? json_string(newest) : json_null());
		bad |= cli_json_set(o, "rows_behind",
		                    have_lag ? cli_json_u64(rows_after) : json_null());
		bad |= cli_json_set(o, "lag_seconds", lag_s >= 0 ? json_real(lag_s) : json_null());
		rc = cli_json_print(cmd.name, bad ? (json_decref(o), NULL) : o);
		goto cleanup;
	}
	printf("state        %s\n", p.cfg.state_path);
	printf("cursor       %s %s\n", st.cursor.created_at[0] ? st.cursor.created_at : "(start)",
	       st.cursor.id);
	printf("objects      %llu (%llu bytes)\n", (unsigned long long)st.objects,
	       (unsigned long long)st.bytes);
	printf("failures     %llu retrying, %llu parked\n", (unsigned long long)st.failing,
	       (unsigned long long)st.parked);
	printf("last batch   %s\n", last_run[0] ? last_run : "never");
	if (have_lag) {
		printf("newest row   %s\n", newest[0] ? newest : "(table empty)");
		printf("behind       %llu rows", (unsigned long long)rows_after);
		if (lag_s >= 0)
			printf(", %.1f s", lag_s);
		printf("\n");
	} else {
		printf("behind       unknown (source not reachable)\n");
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
cleanup:
	cli_pipeline_close(&p);
	return rc;
}

/* ------------------------------------------------------------ failed */

typedef struct failed_ctx {
	json_t *list; /* --json */
	uint64_t n;
} failed_ctx;

static int print_failure(void *ctx, const sl_pipeline_failure *f)
{
	failed_ctx *fc = ctx;
	char next[32] = "";
	fc->n++;
	if (!f->parked)
		sl_clock_format_rfc3339(next, sizeof(next), f->next_attempt_ms);
	if (fc->list != NULL) {
		json_t *o = json_object();
		int bad = o == NULL;
		bad |= cli_json_set(o, "key", json_string(f->key));
		bad |= cli_json_set(o, "row_id", json_string(f->row_id));
		bad |= cli_json_set(o, "created_at", json_string(f->created_at));
		bad |= cli_json_set(o, "attempts", json_integer(f->attempts));
		bad |= cli_json_set(o, "parked", json_boolean(f->parked));
		bad |= cli_json_set(o, "next_attempt", f->parked ? json_null() : json_string(next));
		bad |= cli_json_set(o, "last_error", json_string(f->last_error));
		if (bad || json_array_append_new(fc->list, o) != 0)
			return SL_ENOMEM;
		return 0;
	}
	printf("%s\trow=%s\tattempts=%u\t%s\t%s\n", f->key, f->row_id, f->attempts,
	       f->parked ? "parked" : next, f->last_error);
	return 0;
}

static const char failed_usage[] =
        "Usage: sluice failed [-c FILE] [--all] [--json]\n"
        "\n"
        "List the objects parked after max_attempts failures (with --all, also\n"
        "those still being retried): key, row id, attempts, next attempt, last\n"
        "error. 'sluice retry' tries them again now.\n"
        "\n" CONFIG_HELP "      --all               include failures still being retried\n";

static const struct option failed_options[] = {
        CONFIG_OPTION, {"all", no_argument, NULL, OPT_ALL}, {NULL, 0, NULL, 0}};

int cli_cmd_failed(int argc, char **argv)
{
	cli_cmd cmd = {.name = "failed",
	               .usage = failed_usage,
	               .options = failed_options,
	               .flags = CLI_JSON};
	failed_ctx fc = {0};
	cli_pipeline p;
	pipeline_args a;
	int rc;

	if ((rc = parse_args(&cmd, &a, argc, argv)) != CLI_CONTINUE)
		return rc;
	if (cli_pipeline_open(&p, cmd.name, a.config, CLI_PIPELINE_STATE) != CLI_OK)
		return CLI_FAIL;
	if (cmd.json && (fc.list = json_array()) == NULL) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (sl_pipeline_state_failures(p.state, !a.all, print_failure, &fc) != SL_OK) {
		json_decref(fc.list);
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	rc = cmd.json ? cli_json_print(cmd.name, fc.list)
	              : (fflush(stdout) == 0 ? CLI_OK : CLI_FAIL);
cleanup:
	cli_pipeline_close(&p);
	return rc;
}

/* ------------------------------------------------------------- retry */

static const char retry_usage[] =
        "Usage: sluice retry [-c FILE]\n"
        "\n"
        "Try every failed object again now, parked or not, with its attempts\n"
        "counted from zero. Objects that fail again go back to the failures.\n"
        "\n" CONFIG_HELP;

static const struct option retry_options[] = {CONFIG_OPTION, {NULL, 0, NULL, 0}};

int cli_cmd_retry(int argc, char **argv)
{
	cli_cmd cmd = {.name = "retry", .usage = retry_usage, .options = retry_options};
	cli_pipeline_metrics *pm; /* stays NULL: retry takes no -m */
	uint64_t n = 0;
	cli_pipeline p;
	pipeline_args a;
	int rc;

	if ((rc = open_for_run(&cmd, &a, &p, &pm, argc, argv)) != CLI_CONTINUE)
		return rc;
	if (sl_pipeline_state_retry_all(p.state, &n) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	printf("retry: %llu failed objects due now\n", (unsigned long long)n);
	rc = n > 0 ? run_once(&p, cmd.name, 1, pm) : CLI_OK;
cleanup:
	cli_pipeline_close(&p);
	return rc;
}
