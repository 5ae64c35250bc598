/*
 * `sluice mirror backfill plan|work|status`: a stretch of a mirror's source
 * applied by many worker processes at once, through a job table in the
 * mirror's PostgreSQL (pipeline/mirror_backfill.c, sluice/mirror.h). Every
 * command reads the mirror's own config (mirror_config.c) and opens the
 * source as `sluice mirror` does (cli_mirror_source_open); docs/cli.md,
 * "sluice mirror backfill", has the rest.
 *
 * Exit status: 0 success, 1 failure (a config error too), 2 usage; status
 * exits 4 (EXIT_DEAD) when the job has dead ranges, which no worker will
 * apply without help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/mirror_config.h"
#include "cli/mirror_source.h"
#include "sluice/event_source.h"
#include "sluice/mirror.h"

#define DEFAULT_CONFIG "./sluice-mirror.toml"
#define EXIT_DEAD      4
/* How long status waits for PostgreSQL. */
#define QUICK_PG_TIMEOUT_MS 5000
/* A progress line in the log at most this often. */
#define PROGRESS_LOG_MS 10000
/* Shown of an error in a dead range's text line. */
#define SHOWN_MAX  300
#define WORKER_MAX 200

enum {
	OPT_JOB = CLI_OPT_CMD,
	OPT_RANGES,
	OPT_RANGE_SIZE,
	OPT_FROM,
	OPT_TO,
	OPT_NO_HANDOFF,
	OPT_WORKER,
	OPT_LEASE_MS,
	OPT_MAX_ATTEMPTS,
	OPT_NO_WAIT
};

static volatile sig_atomic_t stop_requested;

typedef struct backfill_args {
	const char *config;
	sl_backfill_plan plan;
	sl_backfill_work_options work;
} backfill_args;

/* A number of option `what` in [min, max]: CLI_OK or CLI_USAGE (said). */
static int number(const cli_cmd *cmd, const char *what, const char *arg, uint64_t min, uint64_t max,
                  uint64_t *out)
{
	if (cli_parse_u64(cmd->name, what, arg, out) != CLI_OK)
		return CLI_USAGE;
	if (*out < min || *out > max)
		return cli_usage_error(cmd->name, "%s: %s is out of range (%llu..%llu)", what, arg,
		                       (unsigned long long)min, (unsigned long long)max);
	return CLI_OK;
}

static int backfill_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	backfill_args *a = ctx;
	uint64_t v = 0;
	int rc = CLI_OK;
	switch (opt) {
	case 'c':
		a->config = arg;
		break;
	case OPT_JOB:
		if (arg[0] == '\0' || strlen(arg) > SL_BACKFILL_JOB_MAX)
			return cli_usage_error(cmd->name, "--job: a name of 1 to %d bytes",
			                       SL_BACKFILL_JOB_MAX);
		a->plan.job = a->work.job = arg;
		break;
	case OPT_RANGES:
		if ((rc = number(cmd, "--ranges", arg, 1, SL_BACKFILL_RANGES_MAX, &v)) == CLI_OK)
			a->plan.ranges = (uint32_t)v;
		break;
	case OPT_RANGE_SIZE:
		rc = number(cmd, "--range-size", arg, 1, INT64_MAX, &a->plan.range_size);
		break;
	case OPT_FROM:
		rc = number(cmd, "--from", arg, 0, INT64_MAX, &a->plan.from);
		break;
	case OPT_TO:
		rc = number(cmd, "--to", arg, 0, INT64_MAX, &a->plan.to);
		a->plan.to_set = 1;
		break;
	case OPT_NO_HANDOFF:
		a->plan.handoff = 0;
		break;
	case OPT_WORKER:
		if (arg[0] == '\0' || strlen(arg) > WORKER_MAX)
			return cli_usage_error(cmd->name, "--worker: an id of 1 to %d bytes",
			                       WORKER_MAX);
		a->work.worker = arg;
		break;
	case OPT_LEASE_MS:
		rc = number(cmd, "--lease-ms", arg, 100, 86400000, &a->work.lease_ms);
		break;
	case OPT_MAX_ATTEMPTS:
		if ((rc = number(cmd, "--max-attempts", arg, 1, 1000, &v)) == CLI_OK)
			a->work.max_attempts = (uint32_t)v;
		break;
	case OPT_NO_WAIT:
		a->work.no_wait = 1;
		break;
	default:
		return CLI_USAGE;
	}
	return rc;
}

#define CONFIG_OPTION                                                                              \
	{                                                                                          \
		"config", required_argument, NULL, 'c'                                             \
	}
#define JOB_OPTION                                                                                 \
	{                                                                                          \
		"job", required_argument, NULL, OPT_JOB                                            \
	}
#define COMMON_HELP                                                                                \
	"  -c, --config FILE       the mirror's config (default ./sluice-mirror.toml;\n"           \
	"                          docs/cli.md, \"sluice mirror\")\n"                              \
	"      --job NAME          the backfill job (required)\n"

/* Parses the command line (of plan: split 1) and loads the config:
 * CLI_CONTINUE, or the exit status (reported). */
static int setup(cli_cmd *cmd, int argc, char **argv, int split, backfill_args *a,
                 cli_mirror_config *cfg)
{
	int rc;
	memset(a, 0, sizeof(*a));
	memset(cfg, 0, sizeof(*cfg));
	a->config = DEFAULT_CONFIG;
	sl_backfill_plan_init(&a->plan);
	sl_backfill_work_options_init(&a->work);
	if ((rc = cli_parse(cmd, argc, argv, backfill_opt, a)) != CLI_CONTINUE)
		return rc;
	if (a->plan.job == NULL)
		return cli_usage_error(cmd->name, "--job NAME is required");
	if (split && (a->plan.ranges != 0) == (a->plan.range_size != 0))
		return cli_usage_error(cmd->name, "give either --ranges N or --range-size N");
	return cli_mirror_config_load(cfg, a->config) == SL_OK ? CLI_CONTINUE : cli_fail(cmd->name);
}

/* The config's source, for plan and work. CLI_CONTINUE or CLI_FAIL (said). */
static int open_source(const cli_cmd *cmd, const cli_mirror_config *cfg, sl_event_source *src)
{
	if (cfg->source_type == CLI_MIRROR_SOURCE_NDJSON && strcmp(cfg->source_path, "-") == 0)
		return cli_errorf(cmd->name,
		                  "standard input cannot be read from many places by many "
		                  "workers: backfill a file, a store or a node");
	if (cli_mirror_source_open(cfg, src) != SL_OK)
		return cli_fail(cmd->name);
	return CLI_CONTINUE;
}

/* ------------------------------------------------------------------ plan */

static void print_handoff(const sl_backfill_plan *p, const sl_backfill_planned *r,
                          const char *source)
{
	if (r->handoff)
		printf("the live mirror's position of %s is made at %llu: 'sluice mirror start' "
		       "goes "
		       "on from there\n",
		       source, (unsigned long long)r->to);
	else if (r->live_exists && r->live_pos == r->to)
		printf("the live mirror's position of %s is at %llu\n", source,
		       (unsigned long long)r->to);
	else if (r->live_exists && r->live_pos < r->to)
		printf("the live mirror's position of %s is at %llu (left alone): a live mirror "
		       "applies [%llu, %llu) again, which changes no row the backfill wrote but "
		       "runs apply_sql on those events again\n",
		       source, (unsigned long long)r->live_pos, (unsigned long long)r->live_pos,
		       (unsigned long long)r->to);
	else if (r->live_exists)
		printf("the live mirror's position of %s is at %llu (left alone)\n", source,
		       (unsigned long long)r->live_pos);
	else if (!p->handoff)
		printf("no live position made (--no-handoff): a live mirror of %s would start at "
		       "0\n",
		       source);
}

static const char plan_usage[] =
        "Usage: sluice mirror backfill plan --job NAME (--ranges N | --range-size N)\n"
        "                                   [--from P] [--to P] [--no-handoff] [-c FILE]\n"
        "\n"
        "Split the positions [from, to) of the config's source into ranges that\n"
        "'sluice mirror backfill work' processes apply, many at once, in any order.\n"
        "Makes the tables if missing and writes the ranges in one transaction. The\n"
        "same plan again changes nothing and says so; another plan under an existing\n"
        "job's name is refused. Unless --no-handoff, the live mirror's position is\n"
        "made at `to` when the source has none, so that 'sluice mirror start' goes\n"
        "on where the backfill ends.\n"
        "\n" COMMON_HELP "      --ranges N          split into N ranges of near equal size\n"
        "      --range-size N      or into ranges of N positions (the last may be\n"
        "                          shorter)\n"
        "      --from P            the first position (default 0)\n"
        "      --to P              the end, not included (default: where the source\n"
        "                          ends now; the job's own end when it exists)\n"
        "      --no-handoff        leave the live mirror's position alone\n";

static const struct option plan_options[] = {
        CONFIG_OPTION,
        JOB_OPTION,
        {"ranges", required_argument, NULL, OPT_RANGES},
        {"range-size", required_argument, NULL, OPT_RANGE_SIZE},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"no-handoff", no_argument, NULL, OPT_NO_HANDOFF},
        {NULL, 0, NULL, 0}};

static int backfill_plan(int argc, char **argv)
{
	cli_cmd cmd = {
	        .name = "mirror backfill plan", .usage = plan_usage, .options = plan_options};
	backfill_args a;
	cli_mirror_config cfg;
	sl_event_source src;
	sl_backfill_planned r;
	int rc = setup(&cmd, argc, argv, 1, &a, &cfg);

	memset(&src, 0, sizeof(src));
	if (rc != CLI_CONTINUE || (rc = open_source(&cmd, &cfg, &src)) != CLI_CONTINUE)
		goto cleanup;
	if (sl_mirror_backfill_plan(&src, &cfg.mirror, &a.plan, &r) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (r.existed)
		printf("%s: job %s exists with this plan (%u ranges over [%llu, %llu) of %s): "
		       "nothing changed\n",
		       cmd.name, a.plan.job, r.ranges, (unsigned long long)r.from,
		       (unsigned long long)r.to, src.name);
	else
		printf("%s: job %s: %u ranges over [%llu, %llu) of %s\n", cmd.name, a.plan.job,
		       r.ranges, (unsigned long long)r.from, (unsigned long long)r.to, src.name);
	print_handoff(&a.plan, &r, src.name);
	rc = CLI_OK;
cleanup:
	sl_event_source_close(&src);
	cli_mirror_config_free(&cfg);
	return rc;
}

/* ------------------------------------------------------------------ work */

typedef struct progress_log {
	uint64_t last_ns;
} progress_log;

static void log_progress(const char *msg, const sl_backfill_work_result *r)
{
	sl_log(SL_LOG_INFO, msg,
	       "claims=%llu ranges_done=%llu lost=%llu failures=%llu batches=%llu events=%llu",
	       (unsigned long long)r->claims, (unsigned long long)r->ranges_done,
	       (unsigned long long)r->ranges_lost, (unsigned long long)r->failures,
	       (unsigned long long)r->batches, (unsigned long long)r->events);
}

static void on_progress(void *ctx, const sl_backfill_work_result *r)
{
	progress_log *pl = ctx;
	uint64_t now = sl_clock_mono_ns();
	if (now - pl->last_ns < (uint64_t)PROGRESS_LOG_MS * 1000000)
		return;
	pl->last_ns = now;
	log_progress("backfill progress", r);
}

static const char work_usage[] =
        "Usage: sluice mirror backfill work --job NAME [--worker ID] [--lease-ms N]\n"
        "                                   [--max-attempts N] [--no-wait] [-c FILE]\n"
        "\n"
        "Claim the job's ranges one at a time and apply each from where it stands to\n"
        "its end, batch by batch, each batch in one transaction with the range's\n"
        "progress; run as many at once, anywhere, as the source and PostgreSQL bear.\n"
        "A worker that dies loses its range when its lease expires, and another goes\n"
        "on from the committed progress. A range that fails is tried again by the\n"
        "next claim, and is dead after max-attempts claims. Exits 0 once no range is\n"
        "pending (dead ranges too: 'status' exits 4 for them). SIGINT or SIGTERM\n"
        "finish the batch in flight and give the range back.\n"
        "\n" COMMON_HELP
        "      --worker ID         this worker's name on the ranges (default HOST:PID)\n"
        "      --lease-ms N        how long a claim holds without a word from its\n"
        "                          worker (default 30000)\n"
        "      --max-attempts N    claims of one range before it is dead (default 5)\n"
        "      --no-wait           exit once nothing can be claimed, instead of waiting\n"
        "                          for the ranges others hold (and taking over those\n"
        "                          whose lease expires)\n";

static const struct option work_options[] = {
        CONFIG_OPTION,
        JOB_OPTION,
        {"worker", required_argument, NULL, OPT_WORKER},
        {"lease-ms", required_argument, NULL, OPT_LEASE_MS},
        {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {NULL, 0, NULL, 0}};

static int backfill_work(int argc, char **argv)
{
	cli_cmd cmd = {
	        .name = "mirror backfill work", .usage = work_usage, .options = work_options};
	backfill_args a;
	cli_mirror_config cfg;
	sl_event_source src;
	sl_backfill_work_result r;
	progress_log pl = {sl_clock_mono_ns()};
	char worker[WORKER_MAX + 32], host[WORKER_MAX] = "";
	int rc = setup(&cmd, argc, argv, 0, &a, &cfg);

	memset(&src, 0, sizeof(src));
	memset(&r, 0, sizeof(r));
	if (rc != CLI_CONTINUE || (rc = open_source(&cmd, &cfg, &src)) != CLI_CONTINUE)
		goto cleanup;
	if (a.work.worker == NULL) {
		if (gethostname(host, sizeof(host) - 1) != 0)
			snprintf(host, sizeof(host), "localhost");
		snprintf(worker, sizeof(worker), "%s:%ld", host, (long)getpid());
		a.work.worker = worker;
	}
	a.work.stop = &stop_requested;
	a.work.progress = on_progress;
	a.work.progress_ctx = &pl;
	cli_on_stop_signal(&stop_requested);
	sl_log(SL_LOG_INFO, "backfill worker started", "job=\"%s\" worker=\"%s\"", a.work.job,
	       a.work.worker);
	rc = sl_mirror_backfill_work(&src, &cfg.mirror, &a.work, &r);
	log_progress("backfill worker stopped", &r);
	printf("%s: %s claimed %llu ranges: %llu finished, %llu lost to others, %llu failed; "
	       "%llu events applied in %llu batches\n",
	       cmd.name, a.work.worker, (unsigned long long)r.claims,
	       (unsigned long long)r.ranges_done, (unsigned long long)r.ranges_lost,
	       (unsigned long long)r.failures, (unsigned long long)r.events,
	       (unsigned long long)r.batches);
	if (rc != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (!stop_requested)
		printf("%s: job %s: %llu ranges done, %llu dead, %llu pending\n", cmd.name,
		       a.work.job, (unsigned long long)r.done, (unsigned long long)r.dead,
		       (unsigned long long)r.pending);
	if (!stop_requested && r.dead > 0)
		cli_errorf(cmd.name,
		           "%llu ranges of job %s are dead: see 'sluice mirror backfill "
		           "status'",
		           (unsigned long long)r.dead, a.work.job);
	rc = CLI_OK;
cleanup:
	sl_event_source_close(&src);
	cli_mirror_config_free(&cfg);
	return rc;
}

/* ---------------------------------------------------------------- status */

typedef struct dead_ctx {
	json_t *list; /* --json */
} dead_ctx;

static int print_dead(void *ctx, const sl_backfill_range *b)
{
	dead_ctx *dc = ctx;
	char error[SHOWN_MAX];
	if (dc->list) {
		json_t *o = json_object();
		int bad = o == NULL;
		bad |= cli_json_set(o, "id", json_integer(b->id));
		bad |= cli_json_set(o, "from", cli_json_u64(b->from));
		bad |= cli_json_set(o, "to", cli_json_u64(b->to));
		bad |= cli_json_set(o, "progress", cli_json_u64(b->progress));
		bad |= cli_json_set(o, "attempts", json_integer(b->attempts));
		bad |= cli_json_set(o, "rows", cli_json_u64(b->rows));
		bad |= cli_json_set(o, "owner", b->owner[0] ? json_string(b->owner) : json_null());
		bad |= cli_json_set(o, "error", json_string(b->error));
		if (bad || json_array_append_new(dc->list, o) != 0)
			return sl_error_set(SL_ENOMEM, "cannot build the JSON of a range");
		return SL_OK;
	}
	printf("dead range %d  [%llu, %llu) at %llu, %u attempts, last by %s: %s\n", (int)b->id,
	       (unsigned long long)b->from, (unsigned long long)b->to,
	       (unsigned long long)b->progress, b->attempts, b->owner[0] ? b->owner : "-",
	       cli_escape(error, sizeof(error), b->error, strlen(b->error)));
	return SL_OK;
}

static int print_status_json(const cli_cmd *cmd, const sl_backfill_status *st, json_t *dead)
{
	json_t *o = json_object();
	int bad = o == NULL;
	bad |= cli_json_set(o, "job", json_string(st->job));
	bad |= cli_json_set(o, "source", json_string(st->source));
	bad |= cli_json_set(o, "from", cli_json_u64(st->from));
	bad |= cli_json_set(o, "to", cli_json_u64(st->to));
	bad |= cli_json_set(o, "covered", cli_json_u64(st->covered));
	bad |= cli_json_set(o, "ranges", cli_json_u64(st->ranges));
	bad |= cli_json_set(o, "pending", cli_json_u64(st->pending));
	bad |= cli_json_set(o, "running", cli_json_u64(st->running));
	bad |= cli_json_set(o, "done", cli_json_u64(st->done));
	bad |= cli_json_set(o, "dead", cli_json_u64(st->dead));
	bad |= cli_json_set(o, "rows", cli_json_u64(st->rows));
	bad |= cli_json_set(o, "dead_ranges", json_incref(dead));
	return cli_json_print(cmd->name, bad ? (json_decref(o), NULL) : o);
}

static void print_status_text(const sl_backfill_status *st)
{
	uint64_t len = st->to - st->from;
	printf("job        %s\n", st->job);
	printf("source     %s\n", st->source);
	printf("positions  [%llu, %llu): %llu covered (%.1f%%)\n", (unsigned long long)st->from,
	       (unsigned long long)st->to, (unsigned long long)st->covered,
	       len ? 100.0 * (double)st->covered / (double)len : 100.0);
	printf("ranges     %llu: %llu pending, %llu running, %llu done, %llu dead\n",
	       (unsigned long long)st->ranges, (unsigned long long)st->pending,
	       (unsigned long long)st->running, (unsigned long long)st->done,
	       (unsigned long long)st->dead);
	printf("applied    %llu events\n", (unsigned long long)st->rows);
}

static const char status_usage[] =
        "Usage: sluice mirror backfill status --job NAME [-c FILE] [--json]\n"
        "\n"
        "Where the job stands: its ranges pending (waiting for a claim), running\n"
        "(leased), done and dead, the positions covered, the events applied, and\n"
        "each dead range with its last error and attempts. Exits 4 when a range is\n"
        "dead, 0 otherwise (done or not); 1 when the job does not exist. Creates\n"
        "nothing, and waits at most 5 s for PostgreSQL.\n"
        "\n" COMMON_HELP;

static const struct option status_options[] = {CONFIG_OPTION, JOB_OPTION, {NULL, 0, NULL, 0}};

static int backfill_status(int argc, char **argv)
{
	cli_cmd cmd = {.name = "mirror backfill status",
	               .usage = status_usage,
	               .flags = CLI_JSON,
	               .options = status_options};
	backfill_args a;
	cli_mirror_config cfg;
	sl_mirror_options o;
	sl_backfill_status st;
	dead_ctx dc = {NULL};
	int rc = setup(&cmd, argc, argv, 0, &a, &cfg);

	if (rc != CLI_CONTINUE)
		goto cleanup;
	o = cfg.mirror;
	if (o.timeout_ms == 0 || o.timeout_ms > QUICK_PG_TIMEOUT_MS)
		o.timeout_ms = QUICK_PG_TIMEOUT_MS;
	if (sl_mirror_backfill_status(&o, a.plan.job, &st) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (!st.exists) {
		rc = cli_errorf(cmd.name,
		                "no backfill job %s (plan it with 'sluice mirror backfill "
		                "plan')",
		                a.plan.job);
		goto cleanup;
	}
	if (cmd.json && (dc.list = json_array()) == NULL) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (!cmd.json)
		print_status_text(&st);
	if (st.dead > 0 &&
	    sl_mirror_backfill_ranges(&o, a.plan.job, "dead", print_dead, &dc) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (cmd.json && print_status_json(&cmd, &st, dc.list) != CLI_OK) {
		rc = CLI_FAIL;
		goto cleanup;
	}
	rc = st.dead > 0 ? EXIT_DEAD : CLI_OK;
cleanup:
	json_decref(dc.list);
	cli_mirror_config_free(&cfg);
	return rc;
}

/* ---------------------------------------------------------------- group */

static const char backfill_usage[] =
        "Usage: sluice mirror backfill COMMAND --job NAME [-c FILE] [OPTIONS]\n"
        "\n"
        "Apply a stretch of a mirror's source by many workers at once: 'plan' splits\n"
        "it into ranges in a PostgreSQL job table, 'work' processes claim and apply\n"
        "them, 'status' says where the job stands (docs/cli.md, \"sluice mirror\n"
        "backfill\"). Exit status: 0 ok, 1 failed (a config error too), 2 usage,\n"
        "4 (status) dead ranges.\n";

static const cli_command backfill_commands[] = {
        {"plan", backfill_plan, "split [from, to) of the source into a job's ranges"},
        {"work", backfill_work, "claim and apply the job's ranges until none is pending"},
        {"status", backfill_status, "the job's ranges pending, running, done and dead"},
};

int cli_cmd_mirror_backfill(int argc, char **argv)
{
	return cli_dispatch("mirror backfill", backfill_usage, backfill_commands,
	                    sizeof(backfill_commands) / sizeof(backfill_commands[0]), argc, argv);
}
