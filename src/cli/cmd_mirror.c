/*
 * `sluice mirror run|start|status|dlq`: an event source (a node's
 * namespace, a local store's, or an NDJSON file) applied to a PostgreSQL
 * table exactly once, by pipeline/mirror*.c (sluice/mirror.h). These
 * commands read the config (mirror_config.c), open the source, hand both to
 * the library and report; docs/cli.md, "sluice mirror", has the rest.
 *
 * Exit status: 0 success, 1 failure (a config error too, as the other
 * configs' commands do), 2 usage, 3 fenced: another mirror moved this
 * source's position, so this one stopped (EXIT_FENCED).
 */
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/mirror_config.h"
#include "cli/mirror_source.h"
#include "sluice/event_source.h"
#include "sluice/mirror.h"
#include "sluice/store.h"
#include "sluice/sync.h"

#define DEFAULT_CONFIG "./sluice-mirror.toml"
#define EXIT_FENCED    3
/* How long status and dlq wait for PostgreSQL. */
#define QUICK_PG_TIMEOUT_MS 5000
/* A progress line in the log at most this often. */
#define PROGRESS_LOG_MS 10000
/* Shown of a payload or an error in a dead letter's text line. */
#define SHOWN_MAX 200

static volatile sig_atomic_t stop_requested;

typedef struct mirror_args {
	const char *config;
	int dry_run;
	int metrics_set, metrics_off;
	uint16_t metrics_port;
} mirror_args;

static int mirror_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	mirror_args *a = ctx;
	switch (opt) {
	case 'c':
		a->config = arg;
		return CLI_OK;
	case 'n':
		a->dry_run = 1;
		return CLI_OK;
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

#define CONFIG_OPTION                                                                              \
	{                                                                                          \
		"config", required_argument, NULL, 'c'                                             \
	}
#define CONFIG_HELP                                                                                \
	"  -c, --config FILE       the mirror's config (default ./sluice-mirror.toml;\n"           \
	"                          docs/cli.md, \"sluice mirror\")\n"

static int parse_args(cli_cmd *cmd, int argc, char **argv, mirror_args *a, cli_mirror_config *cfg)
{
	memset(a, 0, sizeof(*a));
	memset(cfg, 0, sizeof(*cfg));
	a->config = DEFAULT_CONFIG;
	return cli_parse(cmd, argc, argv, mirror_opt, a);
}

/* CLI_CONTINUE once the whole config is good (nothing is opened or touched
 * before), else CLI_FAIL (reported). */
static int load_config(const cli_cmd *cmd, const mirror_args *a, cli_mirror_config *cfg)
{
	return cli_mirror_config_load(cfg, a->config) == SL_OK ? CLI_CONTINUE : cli_fail(cmd->name);
}

/* Both: CLI_CONTINUE to go on, else the exit status. */
static int setup(cli_cmd *cmd, int argc, char **argv, mirror_args *a, cli_mirror_config *cfg)
{
	int rc = parse_args(cmd, argc, argv, a, cfg);
	return rc == CLI_CONTINUE ? load_config(cmd, a, cfg) : rc;
}

/* ------------------------------------------------------------- run, start */

typedef struct progress_log {
	uint64_t last_ns;
} progress_log;

static void log_progress(const char *msg, const sl_mirror_progress *p)
{
	sl_log(SL_LOG_INFO, msg, "events=%llu batches=%llu dead_letters=%llu retries=%llu pos=%llu",
	       (unsigned long long)p->events, (unsigned long long)p->batches,
	       (unsigned long long)p->dead, (unsigned long long)p->retries,
	       (unsigned long long)p->pos);
}

static void on_progress(void *ctx, const sl_mirror_progress *p)
{
	progress_log *pl = ctx;
	uint64_t now = sl_clock_mono_ns();
	if (now - pl->last_ns < (uint64_t)PROGRESS_LOG_MS * 1000000)
		return;
	pl->last_ns = now;
	log_progress("mirror progress", p);
}

/* Serves metrics for start when -m or [mirror] metrics_port asks. */
static int serve_metrics(const cli_cmd *cmd, const mirror_args *a, const cli_mirror_config *cfg,
                         sl_metrics **metrics, sl_http_server **http)
{
	uint16_t port = a->metrics_set ? a->metrics_port : cfg->metrics_port;
	if (a->metrics_off || (!a->metrics_set && cfg->metrics_port == 0))
		return CLI_OK;
	if (sl_metrics_new(metrics) != SL_OK ||
	    sl_metrics_serve(http, *metrics, "127.0.0.1", port) != SL_OK)
		return cli_fail(cmd->name);
	sl_log(SL_LOG_INFO, "serving metrics", "port=%u", sl_http_server_port(*http));
	return CLI_OK;
}

static void print_summary(const cli_cmd *cmd, const sl_mirror_progress *pr, unsigned workers)
{
	printf("%s: %llu events applied in %llu batches, %llu dead letters", cmd->name,
	       (unsigned long long)pr->events, (unsigned long long)pr->batches,
	       (unsigned long long)pr->dead);
	if (workers == 1)
		printf(", position %llu\n", (unsigned long long)pr->pos);
	else
		printf(", %u workers\n", workers);
	if (pr->gaps > 0)
		printf("%s: went past %llu gaps the source left (see 'sluice mirror status'; "
		       "'sluice mirror reconcile' repairs what it can)\n",
		       cmd->name, (unsigned long long)pr->gaps);
	if (pr->dead > 0)
		printf("%s: see 'sluice mirror dlq'; 'sluice mirror dlq retry' applies them "
		       "again\n",
		       cmd->name);
	fflush(stdout);
}

/* run (follow 0) and start (follow 1). */
static int apply(cli_cmd *cmd, int argc, char **argv, int follow)
{
	mirror_args a;
	cli_mirror_config cfg;
	sl_mirror_options o;
	sl_event_source src;
	sl_mirror_progress pr;
	progress_log pl = {sl_clock_mono_ns()};
	sl_metrics *metrics = NULL;
	sl_http_server *metrics_http = NULL;
	char name[sizeof(src.name)];
	unsigned workers;
	int rc = setup(cmd, argc, argv, &a, &cfg);

	memset(&src, 0, sizeof(src));
	memset(&pr, 0, sizeof(pr));
	if (rc != CLI_CONTINUE)
		goto cleanup;
	if (follow && (rc = serve_metrics(cmd, &a, &cfg, &metrics, &metrics_http)) != CLI_OK)
		goto cleanup;
	/* Opened once first (a Kafka topic: its partitions counted), so a
	 * source that cannot be opened fails here, and for its name. */
	if ((cfg.source_type != CLI_MIRROR_SOURCE_KAFKA &&
	     cli_mirror_source_open(&cfg, &src) != SL_OK) ||
	    cli_mirror_workers(&cfg, &workers) != SL_OK) {
		rc = cli_fail(cmd->name);
		goto cleanup;
	}
	cli_mirror_base_name(&cfg, &src, name, sizeof(name));
	o = cfg.mirror;
	o.follow = follow;
	o.stop = &stop_requested;
	o.metrics = metrics;
	o.progress = on_progress;
	o.progress_ctx = &pl;
	cli_on_stop_signal(&stop_requested);
	if (sl_mirror_prepare(&o) != SL_OK) {
		rc = cli_fail(cmd->name);
		goto cleanup;
	}
	if (follow)
		sl_log(SL_LOG_INFO, "mirror started", "source=\"%s\" workers=%u", name, workers);
	sl_event_source_close(&src);
	rc = sl_mirror_run_workers(cli_mirror_worker_open, &cfg, workers, &o, &pr);
	if (follow)
		log_progress("mirror stopped", &pr);
	print_summary(cmd, &pr, workers);
	if (rc == SL_ECONFLICT) {
		cli_errorf(cmd->name,
		           "fenced by another mirror: the position of %s moved under this one, "
		           "which stopped; what it had not committed was not applied",
		           name);
		rc = EXIT_FENCED;
	} else {
		rc = rc == SL_OK ? CLI_OK : cli_fail(cmd->name);
	}
cleanup:
	sl_event_source_close(&src);
	sl_http_server_stop(metrics_http);
	sl_metrics_free(metrics);
	cli_mirror_config_free(&cfg);
	return rc;
}

static const char run_usage[] =
        "Usage: sluice mirror run [-c FILE]\n"
        "\n"
        "Apply the source's events after the stored position to PostgreSQL, batch\n"
        "by batch, each batch in one transaction with the new position, then print\n"
        "a summary and exit. Makes the tables if missing. SIGINT or SIGTERM finish\n"
        "the batch in flight. Exit 3: fenced, another mirror moved the position.\n"
        "\n" CONFIG_HELP;

static const struct option run_options[] = {CONFIG_OPTION, {NULL, 0, NULL, 0}};

static int mirror_run(int argc, char **argv)
{
	cli_cmd cmd = {.name = "mirror run", .usage = run_usage, .options = run_options};
	return apply(&cmd, argc, argv, 0);
}

static const char start_usage[] =
        "Usage: sluice mirror start [-c FILE] [-m PORT|off]\n"
        "\n"
        "As 'run', then wait for new events and apply them as they come, until\n"
        "SIGINT or SIGTERM, which finish the batch in flight and exit 0. Logs its\n"
        "progress every 10 s while it applies events.\n"
        "\n" CONFIG_HELP
        "  -m, --metrics-port PORT serve metrics at http://127.0.0.1:PORT/metrics (0\n"
        "                          picks a free port; default [mirror] metrics_port,\n"
        "                          none when 0; off: none)\n";

static const struct option start_options[] = {
        CONFIG_OPTION, {"metrics-port", required_argument, NULL, 'm'}, {NULL, 0, NULL, 0}};

static int mirror_start(int argc, char **argv)
{
	cli_cmd cmd = {.name = "mirror start", .usage = start_usage, .options = start_options};
	return apply(&cmd, argc, argv, 1);
}

/* ---------------------------------------------------------------- status */

/* RFC 3339, or "" for 0 (never). */
static const char *format_ms(char *out, size_t cap, uint64_t ms)
{
	out[0] = '\0';
	if (ms != 0)
		sl_clock_format_rfc3339(out, cap, ms);
	return out;
}

static json_t *string_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

static json_t *gap_json(const sl_mirror_status *st)
{
	char found[40];
	json_t *o;
	int bad;
	if (st->gaps == 0)
		return json_null();
	format_ms(found, sizeof(found), st->last_gap_ms);
	bad = (o = json_object()) == NULL;
	bad |= cli_json_set(o, "from", cli_json_u64(st->last_gap_from));
	bad |= cli_json_set(o, "to", cli_json_u64(st->last_gap_to));
	bad |= cli_json_set(o, "detected_at", string_or_null(found));
	bad |= cli_json_set(o, "continued", json_boolean(st->last_gap_continued));
	bad |= cli_json_set(o, "message", json_string(st->last_gap_message));
	return bad ? (json_decref(o), NULL) : o;
}

/* One position row's status, or NULL (out of memory). */
static json_t *status_json(const sl_mirror_status *st, const char *why)
{
	char updated[40], errored[40];
	json_t *o = json_object();
	int bad = o == NULL;
	format_ms(updated, sizeof(updated), st->updated_ms);
	format_ms(errored, sizeof(errored), st->last_error_ms);
	bad |= cli_json_set(o, "source", json_string(st->source));
	bad |= cli_json_set(o, "exists", json_boolean(st->exists));
	bad |= cli_json_set(o, "position", cli_json_u64(st->pos));
	bad |= cli_json_set(o, "applied", cli_json_u64(st->applied));
	bad |= cli_json_set(o, "head", st->head_known ? cli_json_u64(st->head) : json_null());
	bad |= cli_json_set(o, "lag_events",
	                    st->head_known ? cli_json_u64(st->lag_events) : json_null());
	bad |= cli_json_set(o, "lag_seconds", st->head_known ? json_real(st->lag_s) : json_null());
	bad |= cli_json_set(o, "lag_unknown", st->head_known ? json_null() : json_string(why));
	bad |= cli_json_set(o, "dead_letters", cli_json_u64(st->dead_letters));
	bad |= cli_json_set(o, "last_error", string_or_null(st->last_error));
	bad |= cli_json_set(o, "last_error_at", string_or_null(errored));
	bad |= cli_json_set(o, "updated_at", string_or_null(updated));
	bad |= cli_json_set(o, "gaps", cli_json_u64(st->gaps));
	bad |= cli_json_set(o, "last_gap", gap_json(st));
	format_ms(updated, sizeof(updated), st->reconciled_ms);
	bad |= cli_json_set(o, "reconciled_at", string_or_null(updated));
	bad |= cli_json_set(o, "reconciled_applied", cli_json_u64(st->reconciled_applied));
	bad |= cli_json_set(o, "missing_in_source", cli_json_u64(st->missing_in_source));
	return bad ? (json_decref(o), NULL) : o;
}

static void print_status_text(const sl_mirror_status *st, const char *why)
{
	char updated[40], errored[40];
	format_ms(updated, sizeof(updated), st->updated_ms);
	format_ms(errored, sizeof(errored), st->last_error_ms);
	printf("source        %s\n", st->source);
	if (st->exists)
		printf("position      %llu\n", (unsigned long long)st->pos);
	else
		printf("position      none yet (never run)\n");
	printf("applied       %llu events\n", (unsigned long long)st->applied);
	if (st->head_known)
		printf("behind        %llu events, %.1f s (the source ends at %llu)\n",
		       (unsigned long long)st->lag_events, st->lag_s, (unsigned long long)st->head);
	else
		printf("behind        unknown (%s)\n", why);
	printf("dead letters  %llu\n", (unsigned long long)st->dead_letters);
	if (st->last_error[0])
		printf("last error    %s (%s)\n", st->last_error, errored[0] ? errored : "?");
	else
		printf("last error    none\n");
	printf("updated       %s\n", updated[0] ? updated : "never");
	if (st->gaps > 0) {
		char found[40];
		format_ms(found, sizeof(found), st->last_gap_ms);
		printf("gaps          %llu; the last: positions %llu to %llu lost at the source "
		       "(found %s; %s)\n              %s\n",
		       (unsigned long long)st->gaps, (unsigned long long)st->last_gap_from,
		       (unsigned long long)st->last_gap_to, found,
		       st->last_gap_continued ? "the mirror went past it" : "the mirror stopped",
		       st->last_gap_message);
	} else {
		printf("gaps          none\n");
	}
	if (st->reconciled_ms) {
		char at[40];
		format_ms(at, sizeof(at), st->reconciled_ms);
		printf("reconciled    %s: %llu rows repaired, %llu rows missing in the source\n",
		       at, (unsigned long long)st->reconciled_applied,
		       (unsigned long long)st->missing_in_source);
	} else {
		printf("reconciled    never\n");
	}
}

static const char status_usage[] =
        "Usage: sluice mirror status [-c FILE] [--json]\n"
        "\n"
        "Where the mirror stands: its position, the events applied over all runs,\n"
        "how far it is behind the source (events and seconds; unknown when the\n"
        "source cannot be opened or cannot tell where it ends), the dead letters\n"
        "waiting, the last error and when the position last moved.\n"
        "\n" CONFIG_HELP;

static const struct option status_options[] = {CONFIG_OPTION, {NULL, 0, NULL, 0}};

/* One worker's status: the head from its own source when it has one (a
 * Kafka partition), else from the whole source (opened, or NULL). */
static int worker_status(const cli_mirror_config *cfg, sl_event_source *whole, const char *base,
                         unsigned w, unsigned n, const sl_mirror_options *o, sl_mirror_status *st)
{
	char name[sizeof(whole->name) + 32];
	sl_event_source own;
	int rc;

	cli_mirror_worker_name(cfg, base, w, n, name, sizeof(name));
	if (cfg->source_type != CLI_MIRROR_SOURCE_KAFKA)
		return sl_mirror_status_read(whole && whole->ops ? whole : NULL, o, name, st);
	memset(&own, 0, sizeof(own));
	if (cli_mirror_worker_open((void *)cfg, w, &own) != SL_OK)
		sl_log(SL_LOG_WARN, "partition not reachable; lag unknown",
		       "partition=%u error=\"%s\"", w, sl_error_last()->message);
	rc = sl_mirror_status_read(own.ops ? &own : NULL, o, name, st);
	sl_event_source_close(&own);
	return rc;
}

static int mirror_status(int argc, char **argv)
{
	cli_cmd cmd = {.name = "mirror status",
	               .usage = status_usage,
	               .flags = CLI_JSON,
	               .options = status_options};
	mirror_args a;
	cli_mirror_config cfg;
	sl_event_source src;
	sl_mirror_status st;
	sl_mirror_options o;
	char why[SL_ERROR_MSG_MAX + 32] = "the source cannot tell where it ends";
	char reason[SL_ERROR_MSG_MAX], base[sizeof(src.name)];
	json_t *all = NULL, *list = NULL;
	unsigned workers;
	int rc = setup(&cmd, argc, argv, &a, &cfg);

	memset(&src, 0, sizeof(src));
	if (rc != CLI_CONTINUE)
		goto cleanup;
	o = cfg.mirror;
	if (o.timeout_ms == 0 || o.timeout_ms > QUICK_PG_TIMEOUT_MS)
		o.timeout_ms = QUICK_PG_TIMEOUT_MS;
	if (cfg.source_type != CLI_MIRROR_SOURCE_KAFKA &&
	    !cli_mirror_source_or_name(&cfg, &src, reason, sizeof(reason))) {
		snprintf(why, sizeof(why), "source not reachable: %s", reason);
		sl_log(SL_LOG_WARN, "source not reachable; lag unknown", "error=\"%s\"", reason);
	}
	cli_mirror_base_name(&cfg, &src, base, sizeof(base));
	if (cli_mirror_workers(&cfg, &workers) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (cmd.json && workers > 1 &&
	    ((all = json_object()) == NULL || (list = json_array()) == NULL ||
	     cli_json_set(all, "source", json_string(base)) ||
	     json_object_set_new(all, "workers", list) != 0)) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	rc = CLI_OK;
	for (unsigned w = 0; w < workers && rc == CLI_OK; w++) {
		if (worker_status(&cfg, &src, base, w, workers, &o, &st) != SL_OK) {
			rc = cli_fail(cmd.name);
		} else if (!cmd.json) {
			printf("%s", w > 0 ? "\n" : "");
			print_status_text(&st, why);
		} else if (workers == 1) {
			rc = cli_json_print(cmd.name, status_json(&st, why));
		} else if (json_array_append_new(list, status_json(&st, why)) != 0) {
			rc = cli_fail(cmd.name);
		}
	}
	if (rc == CLI_OK && all) {
		rc = cli_json_print(cmd.name, all);
		all = NULL;
	}
cleanup:
	json_decref(all);
	sl_event_source_close(&src);
	cli_mirror_config_free(&cfg);
	return rc;
}

/* ------------------------------------------------------------------- dlq */

/* Valid UTF-8 with no control character but tab, CR and LF: as a JSON
 * string, else NULL. */
static json_t *text_of(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
			return NULL;
	return json_stringn((const char *)p, n); /* NULL when not UTF-8 */
}

/* Base64 of n bytes, allocated; NULL on ENOMEM or past 1 GiB. */
static char *base64_new(const uint8_t *p, size_t n)
{
	char *out;
	if (n > ((size_t)1 << 30) || (out = sl_malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

typedef struct dlq_ctx {
	json_t *list; /* --json */
	uint64_t n;
} dlq_ctx;

static int dead_letter_json(dlq_ctx *dc, const sl_dead_letter *d, json_t *text, const char *b64)
{
	json_t *o = json_object();
	int bad = o == NULL;
	bad |= cli_json_set(o, "id", json_integer(d->id));
	bad |= cli_json_set(o, "source", json_string(d->source));
	bad |= cli_json_set(o, "position", cli_json_u64(d->pos));
	bad |= cli_json_set(o, "key", json_string(d->key));
	bad |= cli_json_set(o, "op", json_string(d->op));
	bad |= cli_json_set(o, "version", cli_json_u64(d->version));
	bad |= cli_json_set(o, "attempts", json_integer(d->attempts));
	bad |= cli_json_set(o, "sqlstate", string_or_null(d->sqlstate));
	bad |= cli_json_set(o, "error", json_string(d->error));
	bad |= cli_json_set(o, "first_failure", json_string(d->first_failure));
	bad |= cli_json_set(o, "last_failure", json_string(d->last_failure));
	if (b64)
		bad |= cli_json_set(o, "payload_b64", json_string(b64));
	else
		bad |= cli_json_set(o, "payload", text ? json_incref(text) : json_null());
	if (bad || json_array_append_new(dc->list, o) != 0)
		return sl_error_set(SL_ENOMEM, "cannot build the JSON of a dead letter");
	return SL_OK;
}

static int print_dead_letter(void *ctx, const sl_dead_letter *d)
{
	dlq_ctx *dc = ctx;
	json_t *text = d->payload ? text_of(d->payload, d->payload_len) : NULL;
	char *b64 = NULL;
	char shown[SHOWN_MAX], error[SHOWN_MAX];
	int rc = SL_OK;

	dc->n++;
	if (d->payload && text == NULL && (b64 = base64_new(d->payload, d->payload_len)) == NULL)
		return sl_error_set(SL_ENOMEM, "cannot encode a payload of %zu bytes",
		                    d->payload_len);
	if (dc->list) {
		rc = dead_letter_json(dc, d, text, b64);
	} else {
		printf("%lld\tpos=%llu\tkey=%s\top=%s\tversion=%llu\tattempts=%u\tsqlstate=%s\t"
		       "first=%s\tlast=%s\terror=%s\t",
		       (long long)d->id, (unsigned long long)d->pos, d->key, d->op,
		       (unsigned long long)d->version, d->attempts,
		       d->sqlstate[0] ? d->sqlstate : "-", d->first_failure, d->last_failure,
		       cli_escape(error, sizeof(error), d->error, strlen(d->error)));
		if (text)
			printf("payload=%s\n",
			       cli_escape(shown, sizeof(shown), json_string_value(text),
			                  json_string_length(text)));
		else if (b64)
			printf("payload_b64=%s\n",
			       cli_escape(shown, sizeof(shown), b64, strlen(b64)));
		else
			printf("payload=-\n");
	}
	json_decref(text);
	sl_free(b64);
	return rc;
}

/* The position rows a mirror keeps: one per worker, named after base. */
typedef struct mirror_rows {
	const cli_mirror_config *cfg;
	const char *base;
	unsigned n;
} mirror_rows;

static void row_name(const mirror_rows *rows, unsigned w, char *out, size_t cap)
{
	cli_mirror_worker_name(rows->cfg, rows->base, w, rows->n, out, cap);
}

static int dlq_list(const cli_cmd *cmd, const sl_mirror_options *o, const mirror_rows *rows)
{
	char name[SL_EVENT_SOURCE_STATE_MAX + 600];
	dlq_ctx dc = {0};
	if (cmd->json && (dc.list = json_array()) == NULL)
		return cli_fail(cmd->name);
	for (unsigned w = 0; w < rows->n; w++) {
		row_name(rows, w, name, sizeof(name));
		if (sl_mirror_dlq_list(o, name, print_dead_letter, &dc) != SL_OK) {
			json_decref(dc.list);
			return cli_fail(cmd->name);
		}
	}
	if (cmd->json)
		return cli_json_print(cmd->name, dc.list);
	if (dc.n == 0)
		printf("no dead letters\n");
	return CLI_OK;
}

/* The ID of `dlq retry ID`: CLI_OK or CLI_USAGE (said). */
static int dlq_id(const cli_cmd *cmd, uint64_t *id)
{
	if (cli_parse_u64(cmd->name, "ID", cmd->args[1], id) != CLI_OK)
		return CLI_USAGE;
	if (*id == 0 || *id > INT64_MAX)
		return cli_usage_error(cmd->name, "ID: '%s' is not a dead letter's id",
		                       cmd->args[1]);
	return CLI_OK;
}

static int dlq_retry(const cli_cmd *cmd, const sl_mirror_options *o, const mirror_rows *rows,
                     uint64_t id)
{
	char name[SL_EVENT_SOURCE_STATE_MAX + 600];
	uint64_t applied = 0, failed = 0;
	for (unsigned w = 0; w < rows->n; w++) {
		uint64_t a = 0, f = 0;
		row_name(rows, w, name, sizeof(name));
		if (sl_mirror_dlq_retry(o, name, (int64_t)id, &a, &f) != SL_OK)
			return cli_fail(cmd->name);
		applied += a;
		failed += f;
	}
	if (cmd->json) {
		json_t *r = json_object();
		int bad = r == NULL;
		bad |= cli_json_set(r, "applied", cli_json_u64(applied));
		bad |= cli_json_set(r, "failed", cli_json_u64(failed));
		if (cli_json_print(cmd->name, bad ? (json_decref(r), NULL) : r) != CLI_OK)
			return CLI_FAIL;
	} else {
		printf("%s retry: %llu applied, %llu failed again\n", cmd->name,
		       (unsigned long long)applied, (unsigned long long)failed);
	}
	if (failed > 0)
		return cli_errorf(cmd->name,
		                  "%llu dead letters failed again (see 'sluice mirror dlq')",
		                  (unsigned long long)failed);
	if (id != 0 && applied == 0)
		return cli_errorf(cmd->name, "no dead letter %llu of %s", (unsigned long long)id,
		                  rows->base);
	return CLI_OK;
}

static const char dlq_usage[] =
        "Usage: sluice mirror dlq [-c FILE] [--json]\n"
        "       sluice mirror dlq retry [ID] [-c FILE] [--json]\n"
        "\n"
        "List the dead letters of the config's source, oldest first: the events\n"
        "that failed max_attempts times alone (id, position, key, op, version,\n"
        "attempts, SQLSTATE, error, first and last failure, and the payload: as\n"
        "text when it is printable UTF-8, else as payload_b64).\n"
        "\n"
        "'retry' applies them again now (ID: only that one), each in its own\n"
        "transaction through the same upsert, handler and apply_sql; one applied\n"
        "leaves the dead letters, one that fails again stays with its attempts and\n"
        "error updated. Prints how many of each; exits 1 when any failed again.\n"
        "\n" CONFIG_HELP;

static const struct option dlq_options[] = {CONFIG_OPTION, {NULL, 0, NULL, 0}};

static int mirror_dlq(int argc, char **argv)
{
	cli_cmd cmd = {.name = "mirror dlq",
	               .usage = dlq_usage,
	               .flags = CLI_JSON,
	               .options = dlq_options,
	               .max_args = 2};
	mirror_args a;
	cli_mirror_config cfg;
	sl_event_source src;
	sl_mirror_options o;
	char why[SL_ERROR_MSG_MAX], base[sizeof(src.name)];
	mirror_rows rows;
	uint64_t id = 0;
	int retry, rc = parse_args(&cmd, argc, argv, &a, &cfg);

	memset(&src, 0, sizeof(src));
	if (rc != CLI_CONTINUE)
		goto cleanup;
	retry = cmd.n_args > 0 && strcmp(cmd.args[0], "retry") == 0;
	if (cmd.n_args > 0 && !retry) {
		rc = cli_usage_error(cmd.name, "unknown command '%s' (only 'retry [ID]')",
		                     cmd.args[0]);
		goto cleanup;
	}
	if (cmd.n_args > 1 && dlq_id(&cmd, &id) != CLI_OK) {
		rc = CLI_USAGE;
		goto cleanup;
	}
	if ((rc = load_config(&cmd, &a, &cfg)) != CLI_CONTINUE)
		goto cleanup;
	o = cfg.mirror;
	if (!retry && (o.timeout_ms == 0 || o.timeout_ms > QUICK_PG_TIMEOUT_MS))
		o.timeout_ms = QUICK_PG_TIMEOUT_MS;
	/* Only the source's name is needed, and its workers'. */
	if (cfg.source_type != CLI_MIRROR_SOURCE_KAFKA &&
	    !cli_mirror_source_or_name(&cfg, &src, why, sizeof(why)))
		sl_log(SL_LOG_DEBUG, "source not opened; its name is assumed", "name=\"%s\"",
		       src.name);
	cli_mirror_base_name(&cfg, &src, base, sizeof(base));
	rows.cfg = &cfg;
	rows.base = base;
	if (cli_mirror_workers(&cfg, &rows.n) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	rc = retry ? dlq_retry(&cmd, &o, &rows, id) : dlq_list(&cmd, &o, &rows);
cleanup:
	sl_event_source_close(&src);
	cli_mirror_config_free(&cfg);
	return rc;
}

/* ------------------------------------------------------------- reconcile */

/* A namespace source as the other side of a set reconciliation: the
 * store (opened read-only, another handle than the source's) or the node. */
static int open_peer(const cli_mirror_config *c, sl_store **store, sl_diff_peer **peer)
{
	sl_store_options so;
	if (c->source_url)
		return sl_diff_peer_http(peer, c->source_url, c->source_ns, c->mirror.timeout_ms);
	sl_store_options_init(&so);
	so.flags = SL_STORE_READONLY;
	int rc = sl_store_open(store, c->source_dir, &so);
	return rc == SL_OK ? sl_diff_peer_store(peer, *store, c->source_ns) : rc;
}

static int reconcile_exact(const cli_mirror_config *c, sl_event_source *src, int dry_run,
                           sl_mirror_reconcile_report *r)
{
	sl_event_source_head head;
	sl_store *store = NULL;
	sl_diff_peer *peer = NULL;
	int rc;
	/* The end first: repairs carry it as their version (mirror_reconcile.c, R2). */
	if ((rc = src->ops->head(src->self, &head)) == SL_OK && !head.known)
		rc = sl_error_set(SL_EINTERNAL, "%s cannot tell where it ends", src->name);
	if (rc == SL_OK && (rc = open_peer(c, &store, &peer)) == SL_OK)
		rc = sl_mirror_reconcile_exact(&c->mirror, src->name, peer, head.end, dry_run, r);
	sl_diff_peer_free(peer);
	sl_store_free(store);
	return rc;
}

static int print_reconcile(const cli_cmd *cmd, const char *source,
                           const sl_mirror_reconcile_report *r, int dry_run)
{
	if (cmd->json) {
		json_t *o = json_object();
		int bad = o == NULL;
		bad |= cli_json_set(o, "source", json_string(source));
		bad |= cli_json_set(o, "kind", json_string(r->exact ? "exact" : "window"));
		bad |= cli_json_set(o, "dry_run", json_boolean(dry_run));
		bad |= cli_json_set(o, "compared", cli_json_u64(r->compared));
		bad |= cli_json_set(o, "added", cli_json_u64(r->added));
		bad |= cli_json_set(o, "changed", cli_json_u64(r->changed));
		bad |= cli_json_set(o, "removed", cli_json_u64(r->removed));
		bad |= cli_json_set(o, "written", cli_json_u64(r->written));
		bad |= cli_json_set(o, "flagged", cli_json_u64(r->flagged));
		bad |= cli_json_set(o, "unflagged", cli_json_u64(r->unflagged));
		bad |= cli_json_set(o, "missing_in_source", cli_json_u64(r->missing));
		bad |= cli_json_set(o, "source_events", cli_json_u64(r->source_events));
		bad |= cli_json_set(o, "vanished", cli_json_u64(r->vanished));
		bad |= cli_json_set(o, "round_trips", cli_json_u64(r->round_trips));
		bad |= cli_json_set(o, "bytes_sent", cli_json_u64(r->bytes_sent));
		bad |= cli_json_set(o, "bytes_received", cli_json_u64(r->bytes_received));
		bad |= cli_json_set(o, "run_id", r->run_id ? json_integer(r->run_id) : json_null());
		return cli_json_print(cmd->name, bad ? (json_decref(o), NULL) : o);
	}
	printf("source        %s (%s)\n", source,
	       r->exact ? "its whole state, by set reconciliation" : "the window it still holds");
	printf("compared      %llu rows of the target%s\n", (unsigned long long)r->compared,
	       r->exact ? " (live)" : "");
	if (!r->exact)
		printf("read          %llu events\n", (unsigned long long)r->source_events);
	printf("%s  %llu added, %llu changed", dry_run ? "would repair" : "repaired    ",
	       (unsigned long long)r->added, (unsigned long long)r->changed);
	if (r->exact)
		printf(", %llu deleted (not in the source)", (unsigned long long)r->removed);
	if (!dry_run) {
		uint64_t tried = r->added + r->changed + r->removed;
		printf("; %llu rows written", (unsigned long long)r->written);
		if (tried > r->written)
			printf(" (%llu rows hold a version newer than the source's state, kept)",
			       (unsigned long long)(tried - r->written));
	}
	printf("\n");
	if (!r->exact)
		printf("missing       %llu rows not in the source's window (%llu newly flagged, "
		       "%llu back), kept\n",
		       (unsigned long long)r->missing, (unsigned long long)r->flagged,
		       (unsigned long long)r->unflagged);
	if (r->exact)
		printf("exchanged     %llu bytes sent, %llu received, %llu round trips\n",
		       (unsigned long long)r->bytes_sent, (unsigned long long)r->bytes_received,
		       (unsigned long long)r->round_trips);
	if (r->vanished)
		printf("vanished      %llu items changed at the source meanwhile (the live mirror "
		       "applies them)\n",
		       (unsigned long long)r->vanished);
	return CLI_OK;
}

static const char reconcile_usage[] =
        "Usage: sluice mirror reconcile [-c FILE] [--dry-run] [--json]\n"
        "\n"
        "Compare the target table with the source and apply what the mirror missed,\n"
        "through the same transaction as a batch (the handler sees was_missed).\n"
        "A namespace (node or local store) is compared by set reconciliation, so\n"
        "the traffic follows the differences; keys only in the table are deleted.\n"
        "A source that keeps a window (NDJSON, Redis stream, Kafka) is read whole;\n"
        "rows whose key is not in it are flagged missing_in_source_since, never\n"
        "deleted. Nothing changes unless the comparison completed. Safe to run\n"
        "next to a live mirror.\n"
        "\n" CONFIG_HELP "  -n, --dry-run           compare and report only\n";

static const struct option reconcile_options[] = {
        CONFIG_OPTION, {"dry-run", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};

/* A Kafka topic's window is all its partitions', read together. */
static int reconcile_partitions(const cli_mirror_config *cfg, const char *base, int dry_run,
                                sl_mirror_reconcile_report *r)
{
	sl_event_source *srcs = NULL, **list = NULL;
	unsigned n = 0, opened = 0;
	int rc;

	if ((rc = cli_mirror_workers(cfg, &n)) != SL_OK)
		return rc;
	srcs = sl_calloc(n, sizeof(*srcs));
	list = sl_calloc(n, sizeof(*list));
	if (!srcs || !list)
		rc = SL_ENOMEM;
	for (; rc == SL_OK && opened < n; opened++) {
		list[opened] = &srcs[opened];
		rc = cli_mirror_worker_open((void *)cfg, opened, &srcs[opened]);
	}
	if (rc == SL_OK)
		rc = sl_mirror_reconcile_window(list, n, base, &cfg->mirror, dry_run, r);
	for (unsigned i = 0; srcs && i < opened; i++)
		sl_event_source_close(&srcs[i]);
	sl_free(srcs);
	sl_free(list);
	return rc;
}

static int mirror_reconcile(int argc, char **argv)
{
	cli_cmd cmd = {.name = "mirror reconcile",
	               .usage = reconcile_usage,
	               .flags = CLI_JSON,
	               .options = reconcile_options};
	mirror_args a;
	cli_mirror_config cfg;
	sl_event_source src;
	sl_mirror_reconcile_report r;
	char base[sizeof(src.name)];
	int rc = setup(&cmd, argc, argv, &a, &cfg);

	memset(&src, 0, sizeof(src));
	if (rc != CLI_CONTINUE)
		goto cleanup;
	if (cfg.source_type != CLI_MIRROR_SOURCE_KAFKA &&
	    cli_mirror_source_open(&cfg, &src) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	cli_mirror_base_name(&cfg, &src, base, sizeof(base));
	if (cfg.source_type == CLI_MIRROR_SOURCE_NODE) {
		rc = reconcile_exact(&cfg, &src, a.dry_run, &r);
	} else if (cfg.source_type == CLI_MIRROR_SOURCE_KAFKA) {
		rc = reconcile_partitions(&cfg, base, a.dry_run, &r);
	} else {
		sl_event_source *one = &src;
		rc = sl_mirror_reconcile_window(&one, 1, base, &cfg.mirror, a.dry_run, &r);
	}
	rc = rc == SL_OK ? print_reconcile(&cmd, base, &r, a.dry_run) : cli_fail(cmd.name);
cleanup:
	sl_event_source_close(&src);
	cli_mirror_config_free(&cfg);
	return rc;
}

/* ---------------------------------------------------------------- group */

static const char mirror_usage[] =
        "Usage: sluice mirror COMMAND [-c FILE] [OPTIONS]\n"
        "\n"
        "Mirror an event source (a node's namespace, a local store's, or an NDJSON\n"
        "file) into a PostgreSQL table, exactly once (docs/cli.md, \"sluice\n"
        "mirror\"). Exit status: 0 ok, 1 failed (a config error too), 2 usage,\n"
        "3 fenced by another mirror.\n";

static const cli_command mirror_commands[] = {
        {"run", mirror_run, "apply the source's new events, then exit"},
        {"start", mirror_start, "apply events as they come until SIGINT or SIGTERM"},
        {"status", mirror_status, "position, events applied, lag, dead letters, last error"},
        {"dlq", mirror_dlq, "list dead letters; 'dlq retry [ID]' applies them again"},
        {"reconcile", mirror_reconcile, "compare the table with the source, apply what was missed"},
        {"backfill", cli_cmd_mirror_backfill,
         "plan a stretch of the source, work it by many workers"},
};

int cli_cmd_mirror(int argc, char **argv)
{
	return cli_dispatch("mirror", mirror_usage, mirror_commands,
	                    sizeof(mirror_commands) / sizeof(mirror_commands[0]), argc, argv);
}
