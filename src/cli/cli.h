/*
 * Internal declarations shared by the files of the `sluice` program: the
 * command entry points, the option parser every command goes through, the
 * one error format (`sluice: <command>: <message>`), and small I/O and JSON
 * helpers.
 *
 * Exit status: CLI_OK (0) success, CLI_FAIL (1) the command failed,
 * CLI_USAGE (2) the command line itself was wrong.
 *
 * Everything here is linked into the tests too, so every non-static symbol
 * starts with `cli_`.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "sluice/base.h"
#include "sluice/net.h"
#include "sluice/store.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

enum {
	CLI_CONTINUE = -1, /* cli_parse only: go on and run the command */
	CLI_OK = 0,
	CLI_FAIL = 1,
	CLI_USAGE = 2
};

/* Default store directory when neither -d nor $SLUICE_DIR is given. */
#define CLI_DEFAULT_DIR "./sluice-data"

/* ------------------------------------------------------------ commands */

typedef int (*cli_cmd_fn)(int argc, char **argv);

/* One row of a dispatch table (main.c, and the `ns` and `tool` groups). */
typedef struct cli_command {
	const char *name;
	cli_cmd_fn fn;
	const char *summary; /* one line for the group's --help */
} cli_command;

/* Entry points; argv[0] is the command's own name. */
int cli_cmd_init(int argc, char **argv);
int cli_cmd_ns(int argc, char **argv);
int cli_cmd_put(int argc, char **argv);
int cli_cmd_get(int argc, char **argv);
int cli_cmd_del(int argc, char **argv);
int cli_cmd_ls(int argc, char **argv);
int cli_cmd_import(int argc, char **argv);
int cli_cmd_root(int argc, char **argv);
int cli_cmd_log(int argc, char **argv);
int cli_cmd_verify(int argc, char **argv);
int cli_cmd_prune(int argc, char **argv);
int cli_cmd_prove(int argc, char **argv);
int cli_cmd_check_proof(int argc, char **argv);
int cli_cmd_tool(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_sync(int argc, char **argv);
int cli_cmd_diff(int argc, char **argv);
int cli_cmd_dag(int argc, char **argv);
int cli_cmd_key(int argc, char **argv);
int cli_cmd_ticket(int argc, char **argv);
int cli_cmd_join(int argc, char **argv);
int cli_cmd_peer(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_start(int argc, char **argv);
int cli_cmd_reset(int argc, char **argv);
int cli_cmd_status(int argc, char **argv);
int cli_cmd_failed(int argc, char **argv);
int cli_cmd_retry(int argc, char **argv);
int cli_cmd_engine(int argc, char **argv);
int cli_cmd_mirror(int argc, char **argv);
int cli_cmd_mirror_backfill(int argc, char **argv); /* `sluice mirror backfill` */

/* `sluice` itself: --version, then dispatch through table, then flush
 * stdout (a failed write is a failure). main() only calls this. */
int cli_main(const cli_command *table, size_t n, int argc, char **argv);

/* Run the command of table named by argv[1]. group is NULL at the top
 * level, or the group's name ("ns"); usage is the group's help header. */
int cli_dispatch(const char *group, const char *usage, const cli_command *table, size_t n, int argc,
                 char **argv);

/* --------------------------------------------------------------- options */

/* Takes --json. */
#define CLI_JSON 0x1

/* getopt_long values for long-only options: CLI_OPT_JSON is handled by
 * cli_parse; a command numbers its own from CLI_OPT_CMD. */
#define CLI_OPT_JSON 0x100
#define CLI_OPT_CMD  0x101

/* Most options one command may add to the common ones. */
#define CLI_MAX_OPTIONS 20

/* The per-client limits a server command takes (docs/cli.md, "Limits"),
 * for its option table; cli_limit_opt parses them. */
#define CLI_OPT_LIMIT 0x180
#define CLI_LIMIT_OPTIONS                                                                          \
	{"max-client-connections", required_argument, NULL, CLI_OPT_LIMIT},                        \
	        {"client-rate", required_argument, NULL, CLI_OPT_LIMIT + 1},                       \
	        {"client-burst", required_argument, NULL, CLI_OPT_LIMIT + 2},                      \
	        {"header-timeout", required_argument, NULL, CLI_OPT_LIMIT + 3},                    \
	{                                                                                          \
		"min-body-rate", required_argument, NULL, CLI_OPT_LIMIT + 4                        \
	}
#define CLI_LIMIT_USAGE                                                                            \
	"      --max-client-connections N  connections one client address may hold\n"              \
	"                          (default 64)\n"                                                 \
	"      --client-rate N     request tokens per second per client address (default\n"        \
	"                          20000; 0: no limit); past it, 429 with Retry-After\n"           \
	"      --client-burst N    tokens a client may save up (default 2 x the rate)\n"           \
	"      --header-timeout DURATION  time to send a whole request head (default 10s)\n"       \
	"      --min-body-rate N   bytes per second a request body must average after\n"           \
	"                          10 s (default 1024; 0: none)\n"

/* For an option of CLI_LIMIT_OPTIONS: CLI_OK or CLI_USAGE; CLI_CONTINUE
 * when opt is not one of them. */
int cli_limit_opt(const char *name, int opt, const char *arg, sl_http_limits *l);

/* A command's description and, after cli_parse, its parsed command line.
 * Every command takes -d/--dir DIR and -h/--help. */
typedef struct cli_cmd {
	const char *name;             /* as in messages: "ns create" */
	const char *usage;            /* help text, starting with "Usage: ..." */
	unsigned flags;               /* CLI_JSON */
	const struct option *options; /* the command's own, {0}-terminated, or NULL */
	int min_args;                 /* positional arguments */
	int max_args;

	/* set by cli_parse */
	const char *dir; /* -d, else $SLUICE_DIR, else CLI_DEFAULT_DIR */
	int json;        /* --json was given */
	char **args;     /* positional arguments */
	int n_args;
} cli_cmd;

/* Called for each of the command's own options; returns CLI_OK to go on
 * or CLI_USAGE after reporting the problem. */
typedef int (*cli_opt_fn)(cli_cmd *cmd, int opt, const char *arg, void *ctx);

/* Parse argv (GNU order: options may follow arguments; `--` ends them).
 * Returns CLI_CONTINUE when the command should run, or the exit status:
 * CLI_OK after printing --help, CLI_USAGE after a usage error. */
int cli_parse(cli_cmd *cmd, int argc, char **argv, cli_opt_fn on_opt, void *ctx);

/* Prints cmd's usage and the common options. */
void cli_print_usage(const cli_cmd *cmd, FILE *f);

/* Strict unsigned decimal for option `what`: CLI_OK or CLI_USAGE. */
int cli_parse_u64(const char *name, const char *what, const char *s, uint64_t *out);

/* A duration for option `what`: a number with a unit, ms, s, m or h
 * ("100ms", "1s", "2m"); a bare number is seconds. CLI_OK or CLI_USAGE. */
int cli_parse_duration_ms(const char *name, const char *what, const char *s, uint64_t *out);

/* A per-request timeout for option `what`: a duration from 1ms to 1h.
 * CLI_OK or CLI_USAGE. */
int cli_parse_timeout_ms(const char *name, const char *what, const char *s, unsigned *out);

/* A TCP port for option `what`: 0..65535. CLI_OK or CLI_USAGE. */
int cli_parse_port(const char *name, const char *what, const char *s, uint16_t *out);
/* A node key: 64 hex digits. CLI_OK or CLI_USAGE (said). */
int cli_parse_node_key(const char *name, const char *hex, uint8_t out[SL_ED25519_PK_LEN]);

/* Install SIGINT/SIGTERM handlers that set *flag (and ignore SIGPIPE). */
void cli_on_stop_signal(volatile sig_atomic_t *flag);

/* ---------------------------------------------------------------- errors */

/* `sluice: <name>: <message>` on stderr; name NULL for the program itself.
 * Each returns the exit status it stands for. */
int cli_errorf(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds "Try 'sluice <name> --help'." and returns CLI_USAGE. */
int cli_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The library's last error (message, and cause when there is one). */
int cli_fail(const char *name);

/* Copy len bytes of s into out (cap > 4) for display: control bytes and
 * 0x7f become \xNN, the result is cut with "..." when it does not fit. */
const char *cli_escape(char *out, size_t cap, const char *s, size_t len);

/* CLI_OK, or CLI_FAIL after reporting why key is not a valid key. */
int cli_check_key(const char *name, const char *key);

/* ------------------------------------------------------------------- I/O */

/* Open the store in cmd->dir with SL_STORE_* flags; CLI_OK or CLI_FAIL
 * (reported). */
int cli_open_store(const cli_cmd *cmd, unsigned flags, sl_store **out);

/* Read all of fd (named `what` in messages) into out, which is reset
 * first. More than max bytes is SL_ETOOLARGE. SL_OK or an SL_E* code with
 * the error set; out is left empty on failure. */
int cli_read_fd(sl_buf *out, int fd, const char *what, size_t max);
/* Same for a file; path NULL or "-" reads stdin. */
int cli_read_file(sl_buf *out, const char *path, size_t max);
/* A bearer token: the first line of path, without surrounding blanks; at
 * least 16 printable ASCII characters. CLI_OK, or the error printed. */
#define CLI_TOKEN_MAX 4096
int cli_read_token(const char *name, const char *path, char **out);

/* Lower-case hex of n bytes, allocated with sl_malloc (NULL on ENOMEM). */
char *cli_hex_new(const void *data, size_t n);

/* ------------------------------------------------------------------ JSON */

/* Print v as one line of JSON (keys in insertion order, `": "` and `", "`
 * separators) and release it. v NULL means building it failed. */
int cli_json_print(const char *name, json_t *v);

/* Set obj[key] = v, taking v (NULL is a failure). 0 or -1. */
int cli_json_set(json_t *obj, const char *key, json_t *v);

/* A JSON integer for an unsigned count (NULL past INT64_MAX). */
json_t *cli_json_u64(uint64_t v);

#endif
