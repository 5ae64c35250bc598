/*
 * What every `sluice` command shares: the dispatcher for the command tables,
 * the option parser (getopt_long over the command's own options plus the
 * common -d/--dir, -h/--help and, where taken, --json), the error format
 * `sluice: <command>: <message>` on stderr, opening the store named by -d
 * or $SLUICE_DIR, reading a file or stdin under a cap, and printing JSON.
 *
 * Results go to stdout, errors to stderr. Exit status: 0 ok, 1 failure,
 * 2 usage error. Commands return their status; only main() exits.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

/* Read granularity of cli_read_fd. */
#define READ_CHUNK 65536

static const char top_usage[] =
        "Usage: sluice [--version] [--help] [-d DIR] COMMAND [ARGS]\n"
        "\n"
        "sluice keeps namespaces of keyed values whose operation logs are\n"
        "authenticated by a Merkle Mountain Range, and proves what they hold.\n";

static const char common_options[] =
        "\n"
        "Common options:\n"
        "  -d, --dir DIR   store directory (default: $SLUICE_DIR, else " CLI_DEFAULT_DIR ")\n"
        "  -h, --help      print this help and exit\n";

/* ---------------------------------------------------------------- errors */

static void vreport(const char *name, const char *fmt, va_list ap)
{
	fputs("sluice: ", stderr);
	if (name)
		fprintf(stderr, "%s: ", name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_errorf(const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(name, fmt, ap);
	va_end(ap);
	return CLI_FAIL;
}

int cli_usage_error(const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(name, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'sluice%s%s --help'.\n", name ? " " : "", name ? name : "");
	return CLI_USAGE;
}

int cli_fail(const char *name)
{
	const sl_error *err = sl_error_last();
	const char *message = err->message[0] ? err->message : sl_strerror(err->code);

	if (err->cause[0])
		return cli_errorf(name, "%s (%s)", message, err->cause);
	return cli_errorf(name, "%s", message);
}

const char *cli_escape(char *out, size_t cap, const char *s, size_t len)
{
	static const char dots[] = "...";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t need = (c < 0x20 || c == 0x7f) ? 4 : 1;

		/* Keep room for "..." and the NUL. */
		if (o + need + sizeof(dots) > cap) {
			memcpy(out + o, dots, sizeof(dots));
			return out;
		}
		if (need == 4) {
			snprintf(out + o, 5, "\\x%02x", c);
		} else {
			out[o] = (char)c;
		}
		o += need;
	}
	out[o] = '\0';
	return out;
}

int cli_check_key(const char *name, const char *key)
{
	char shown[96];

	if (sl_key_validate(key, strlen(key)) == SL_OK)
		return CLI_OK;
	/* The library's message names the problem ("invalid key: ..."). */
	return cli_errorf(name, "%s (key '%s')", sl_error_last()->message,
	                  cli_escape(shown, sizeof(shown), key, strlen(key)));
}

/* --------------------------------------------------------------- options */

void cli_print_usage(const cli_cmd *cmd, FILE *f)
{
	fputs(cmd->usage, f);
	fputs(common_options, f);
}

static const char *default_dir(void)
{
	const char *env = getenv("SLUICE_DIR");

	return env && env[0] ? env : CLI_DEFAULT_DIR;
}

/* Report the option getopt_long stopped at ('?' unknown, ':' missing
 * argument). For a short option optopt holds it; for a long one it is the
 * argv element before optind. */
static int option_error(const cli_cmd *cmd, int c, char **argv)
{
	const char *what = c == ':' ? "option requires an argument" : "unrecognized option";

	if (c == '?' && optopt > 0 && optopt < 128 && isalnum(optopt))
		return cli_usage_error(cmd->name, "%s '-%c'", what, optopt);
	return cli_usage_error(cmd->name, "%s '%s'", what, argv[optind - 1]);
}

int cli_parse(cli_cmd *cmd, int argc, char **argv, cli_opt_fn on_opt, void *ctx)
{
	struct option opts[CLI_MAX_OPTIONS + 4];
	char shortopts[3 * (CLI_MAX_OPTIONS + 4) + 2];
	size_t n_opts = 0, n_short = 0;
	int c, rc;

	/* A leading ':' makes a missing argument ':' rather than '?'. */
	shortopts[n_short++] = ':';
	opts[n_opts++] = (struct option){"dir", required_argument, NULL, 'd'};
	opts[n_opts++] = (struct option){"help", no_argument, NULL, 'h'};
	memcpy(shortopts + n_short, "d:h", 3);
	n_short += 3;
	if (cmd->flags & CLI_JSON)
		opts[n_opts++] = (struct option){"json", no_argument, NULL, CLI_OPT_JSON};
	for (const struct option *o = cmd->options; o && o->name; o++) {
		if (n_opts >= CLI_MAX_OPTIONS + 3)
			return cli_errorf(cmd->name, "internal error: too many options");
		opts[n_opts++] = *o;
		if (o->val > 0 && o->val < 128 && isalnum(o->val)) {
			shortopts[n_short++] = (char)o->val;
			if (o->has_arg == required_argument)
				shortopts[n_short++] = ':';
		}
	}
	opts[n_opts] = (struct option){NULL, 0, NULL, 0};
	shortopts[n_short] = '\0';

	cmd->dir = default_dir();
	cmd->json = 0;
	/* optind 0 makes glibc start over, as each command parses anew. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!optarg[0])
				return cli_usage_error(cmd->name, "-d needs a directory");
			cmd->dir = optarg;
			break;
		case 'h':
			cli_print_usage(cmd, stdout);
			return CLI_OK;
		case CLI_OPT_JSON:
			cmd->json = 1;
			break;
		case '?':
		case ':':
			return option_error(cmd, c, argv);
		default:
			rc = on_opt ? on_opt(cmd, c, optarg, ctx) : CLI_USAGE;
			if (rc != CLI_OK)
				return rc;
			break;
		}
	}
	cmd->args = argv + optind;
	cmd->n_args = argc - optind;
	if (cmd->n_args < cmd->min_args)
		return cli_usage_error(cmd->name, "missing argument");
	if (cmd->n_args > cmd->max_args)
		return cli_usage_error(cmd->name, "unexpected argument '%s'",
		                       cmd->args[cmd->max_args]);
	return CLI_CONTINUE;
}

int cli_parse_u64(const char *name, const char *what, const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s[0])
		return cli_usage_error(name, "%s needs a number", what);
	for (const char *p = s; *p; p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (*p < '0' || *p > '9')
			return cli_usage_error(name, "%s: '%s' is not a non-negative integer", what,
			                       s);
		if (v > (UINT64_MAX - digit) / 10)
			return cli_usage_error(name, "%s: '%s' is too large", what, s);
		v = v * 10 + digit;
	}
	*out = v;
	return CLI_OK;
}

int cli_parse_duration_ms(const char *name, const char *what, const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
	size_t digits = strspn(s, "0123456789");
	char number[32];
	uint64_t v = 0;

	if (digits == 0 || digits >= sizeof(number))
		return cli_usage_error(name, "%s: '%s' is not a duration like 100ms, 5s or 2m",
		                       what, s);
	memcpy(number, s, digits);
	number[digits] = 0;
	if (cli_parse_u64(name, what, number, &v) != CLI_OK)
		return CLI_USAGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + digits, units[i].suffix) != 0)
			continue;
		if (v > UINT64_MAX / 2 / units[i].ms)
			return cli_usage_error(name, "%s: '%s' is too long", what, s);
		*out = v * units[i].ms;
		return CLI_OK;
	}
	return cli_usage_error(name, "%s: '%s' has an unknown unit (use ms, s, m or h)", what, s);
}

int cli_parse_timeout_ms(const char *name, const char *what, const char *s, unsigned *out)
{
	uint64_t ms = 0;
	if (cli_parse_duration_ms(name, what, s, &ms) != CLI_OK)
		return CLI_USAGE;
	if (ms == 0 || ms > 3600000)
		return cli_usage_error(name, "%s must be between 1ms and 1h", what);
	*out = (unsigned)ms;
	return CLI_OK;
}

int cli_limit_opt(const char *name, int opt, const char *arg, sl_http_limits *l)
{
	uint64_t n = 0;
	switch (opt) {
	case CLI_OPT_LIMIT:
		if (cli_parse_u64(name, "--max-client-connections", arg, &n) != CLI_OK)
			return CLI_USAGE;
		if (n == 0 || n > 256)
			return cli_usage_error(name, "--max-client-connections must be 1..256");
		l->max_client_connections = (unsigned)n;
		return CLI_OK;
	case CLI_OPT_LIMIT + 1:
		if (cli_parse_u64(name, "--client-rate", arg, &n) != CLI_OK)
			return CLI_USAGE;
		if (n > 100000000)
			return cli_usage_error(name, "--client-rate must be at most 100000000");
		/* The burst follows the rate unless it was given. */
		if (l->client_burst == 2 * l->client_rate)
			l->client_burst = 2 * (double)n;
		l->client_rate = (double)n;
		return CLI_OK;
	case CLI_OPT_LIMIT + 2:
		if (cli_parse_u64(name, "--client-burst", arg, &n) != CLI_OK)
			return CLI_USAGE;
		if (n == 0 || n > 1000000000)
			return cli_usage_error(name, "--client-burst must be 1..1000000000");
		l->client_burst = (double)n;
		return CLI_OK;
	case CLI_OPT_LIMIT + 3:
		if (cli_parse_duration_ms(name, "--header-timeout", arg, &n) != CLI_OK)
			return CLI_USAGE;
		if (n < 1000 || n > 3600000)
			return cli_usage_error(name, "--header-timeout must be between 1s and 1h");
		l->header_timeout_s = (unsigned)(n / 1000);
		return CLI_OK;
	case CLI_OPT_LIMIT + 4:
		if (cli_parse_u64(name, "--min-body-rate", arg, &n) != CLI_OK)
			return CLI_USAGE;
		if (n > ((uint64_t)1 << 30))
			return cli_usage_error(name, "--min-body-rate must be at most 1 GiB/s");
		l->min_body_rate = (size_t)n;
		return CLI_OK;
	}
	return CLI_CONTINUE;
}

int cli_parse_node_key(const char *name, const char *hex, uint8_t out[SL_ED25519_PK_LEN])
{
	sl_digest key;
	if (sl_digest_from_hex(&key, hex) != SL_OK)
		return cli_usage_error(name, "a node key is 64 hex digits, not '%s'", hex);
	memcpy(out, key.bytes, SL_ED25519_PK_LEN);
	return CLI_OK;
}

int cli_parse_port(const char *name, const char *what, const char *s, uint16_t *out)
{
	uint64_t v = 0;
	if (cli_parse_u64(name, what, s, &v) != CLI_OK)
		return CLI_USAGE;
	if (v > 65535)
		return cli_usage_error(name, "%s: %llu is not a TCP port", what,
		                       (unsigned long long)v);
	*out = (uint16_t)v;
	return CLI_OK;
}

static volatile sig_atomic_t *stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	if (stop_flag)
		*stop_flag = 1;
}

void cli_on_stop_signal(volatile sig_atomic_t *flag)
{
	struct sigaction sa;
	stop_flag = flag;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* -------------------------------------------------------------- dispatch */

static void print_table(const char *usage, const cli_command *table, size_t n, FILE *f)
{
	fputs(usage, f);
	fputs("\nCommands:\n", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %-12s %s\n", table[i].name, table[i].summary);
}

int cli_dispatch(const char *group, const char *usage, const cli_command *table, size_t n, int argc,
                 char **argv)
{
	const char *name;

	if (argc < 2)
		return cli_usage_error(group, "missing command");
	name = argv[1];
	if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
		print_table(usage, table, n, stdout);
		fprintf(stdout, "\nRun 'sluice %s%sCOMMAND --help' for a command's options.\n",
		        group ? group : "", group ? " " : "");
		return CLI_OK;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(table[i].name, name) == 0)
			return table[i].fn(argc - 1, argv + 1);
	}
	if (name[0] == '-')
		return cli_usage_error(group, "unrecognized option '%s'", name);
	return cli_usage_error(group, "unknown command '%s'", name);
}

/* `sluice -d DIR COMMAND ...` is `sluice COMMAND -d DIR ...`: the leading
 * -d becomes $SLUICE_DIR, which a command's own -d still overrides. Sets
 * *taken to the number of arguments used; returns CLI_CONTINUE or the exit
 * status. */
static int global_dir(int argc, char **argv, int *taken)
{
	const char *dir = NULL;
	int i = 1;

	while (i < argc) {
		if (strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--dir") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error(NULL, "option requires an argument '%s'",
				                       argv[i]);
			dir = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--dir=", 6) == 0) {
			dir = argv[i++] + 6;
		} else if (strncmp(argv[i], "-d", 2) == 0 && argv[i][2]) {
			dir = argv[i++] + 2;
		} else {
			break;
		}
	}
	if (dir && !dir[0])
		return cli_usage_error(NULL, "-d needs a directory");
	if (dir && setenv("SLUICE_DIR", dir, 1) != 0)
		return cli_errorf(NULL, "cannot set SLUICE_DIR: %s", strerror(errno));
	*taken = i - 1;
	return CLI_CONTINUE;
}

int cli_main(const cli_command *table, size_t n, int argc, char **argv)
{
	int taken = 0;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("sluice %s\n", SLUICE_VERSION);
		rc = CLI_OK;
	} else if ((rc = global_dir(argc, argv, &taken)) != CLI_CONTINUE) {
		/* reported */
	} else if (sl_base_init() != SL_OK) {
		rc = cli_fail(NULL);
	} else {
		/* The element before the command stands in for argv[0]. */
		rc = cli_dispatch(NULL, top_usage, table, n, argc - taken, argv + taken);
	}
	/* A result that did not reach stdout (full disk, closed pipe) is a
	 * failure, whatever the command thought. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_errorf(NULL, "cannot write to stdout: %s", strerror(errno));
		if (rc == CLI_OK)
			rc = CLI_FAIL;
	}
	return rc;
}

/* ------------------------------------------------------------------- I/O */

int cli_open_store(const cli_cmd *cmd, unsigned flags, sl_store **out)
{
	sl_store_options opts;
	sl_store *store = NULL;
	int rc;

	sl_store_options_init(&opts);
	opts.flags = flags;
	rc = sl_store_open(&store, cmd->dir, &opts);
	if (rc == SL_ENOTFOUND)
		return cli_errorf(cmd->name,
		                  "no store in '%s' (create one with 'sluice init -d %s')",
		                  cmd->dir, cmd->dir);
	if (rc != SL_OK)
		return cli_fail(cmd->name);
	*out = store;
	return CLI_OK;
}

/* "cannot <verb> '<path>'" with errno as the cause. */
static int errno_error(int code, const char *verb, const char *path)
{
	char cause[SL_ERROR_CAUSE_MAX];
	int err = errno;

	snprintf(cause, sizeof(cause), "errno=%d (%s)", err, strerror(err));
	return sl_error_set_cause(code, cause, "cannot %s '%s'", verb, path);
}

int cli_read_fd(sl_buf *out, int fd, const char *what, size_t max)
{
	uint8_t chunk[READ_CHUNK];
	struct stat st;
	int rc;

	sl_buf_reset(out);
	/* Fail fast on a regular file that is too large, and size the buffer
	 * once for one that is not. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > max) {
			rc = sl_error_set(SL_ETOOLARGE, "%s is larger than %zu bytes", what, max);
			goto cleanup;
		}
		if (st.st_size > 0 && (rc = sl_buf_reserve(out, (size_t)st.st_size)) != SL_OK)
			goto cleanup;
	}
	for (;;) {
		ssize_t got = read(fd, chunk, sizeof(chunk));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = errno_error(SL_EIO, "read", what);
			goto cleanup;
		}
		if (got == 0)
			break;
		rc = sl_buf_append(out, chunk, (size_t)got);
		if (rc == SL_ETOOLARGE)
			rc = sl_error_set(SL_ETOOLARGE, "%s is larger than %zu bytes", what, max);
		if (rc != SL_OK)
			goto cleanup;
	}
	rc = SL_OK;
cleanup:
	if (rc != SL_OK)
		sl_buf_reset(out);
	return rc;
}

int cli_read_file(sl_buf *out, const char *path, size_t max)
{
	int fd;
	int rc;

	if (!path || strcmp(path, "-") == 0)
		return cli_read_fd(out, STDIN_FILENO, "stdin", max);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno_error(errno == ENOENT ? SL_ENOTFOUND : SL_EIO, "open", path);
	rc = cli_read_fd(out, fd, path, max);
	close(fd);
	return rc;
}

char *cli_hex_new(const void *data, size_t n)
{
	char *hex = sl_malloc(2 * n + 1);

	if (hex)
		sl_hex_encode(hex, data, n);
	return hex;
}

/* ------------------------------------------------------------------ JSON */

int cli_json_print(const char *name, json_t *v)
{
	int rc;

	if (!v)
		return cli_errorf(
		        name,
		        "cannot build JSON output (out of memory, or text that is not UTF-8)");
	rc = json_dumpf(v, stdout, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(v);
	if (rc != 0 || putchar('\n') == EOF)
		return cli_errorf(name, "cannot write JSON output");
	return CLI_OK;
}

int cli_json_set(json_t *obj, const char *key, json_t *v)
{
	/* json_object_set_new releases v even when it fails. */
	return v ? json_object_set_new(obj, key, v) : -1;
}

json_t *cli_json_u64(uint64_t v)
{
	return v > INT64_MAX ? NULL : json_integer((json_int_t)v);
}

/* The token: the file's first line, without surrounding whitespace. */
int cli_read_token(const char *name, const char *path, char **out)
{
	sl_buf text = SL_BUF_INIT(CLI_TOKEN_MAX);
	size_t start = 0, end;
	int rc = CLI_OK;

	if (cli_read_file(&text, path, CLI_TOKEN_MAX) != SL_OK) {
		rc = cli_fail(name);
		goto cleanup;
	}
	end = text.len;
	for (size_t i = 0; i < text.len; i++)
		if (text.data[i] == '\n') {
			end = i;
			break;
		}
	while (start < end && (text.data[start] == ' ' || text.data[start] == '\t'))
		start++;
	while (end > start && (text.data[end - 1] == ' ' || text.data[end - 1] == '\t' ||
	                       text.data[end - 1] == '\r'))
		end--;
	if (end - start < 16) {
		rc = cli_errorf(name, "the token in '%s' is shorter than 16 characters", path);
		goto cleanup;
	}
	for (size_t i = start; i < end; i++)
		if (text.data[i] < 0x21 || text.data[i] > 0x7e) {
			rc = cli_errorf(name,
			                "the token in '%s' has a character that cannot go in an "
			                "HTTP header",
			                path);
			goto cleanup;
		}
	if (!(*out = sl_strndup((const char *)text.data + start, end - start)))
		rc = cli_fail(name);
cleanup:
	sl_buf_free(&text);
	return rc;
}
