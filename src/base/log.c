/*
 * Structured logging in logfmt: one line per call,
 *     ts=2026-11-21T08:47:20.123Z level=info msg="store opened" path=/x
 * The level comes from SLUICE_LOG the first time it is needed (default
 * info) unless sl_log_set_level was called first. Each line is assembled in
 * memory and written with a single fwrite, which stdio locks, so lines from
 * different threads never interleave.
 *
 * Logging is best effort and must not disturb the caller: it neither
 * touches the per-thread sl_error (a failure is often logged right after it
 * was recorded, with its message as an argument) nor errno, and it uses
 * plain malloc rather than sl_malloc so injected allocation failures stay
 * aimed at the code under test. A line that cannot be allocated or passes
 * LINE_MAX_BYTES is truncated.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/base.h"

#define LINE_STACK_BYTES 1024
#define LINE_MAX_BYTES   (64 * 1024)

static pthread_once_t level_once = PTHREAD_ONCE_INIT;
static atomic_int log_level = SL_LOG_INFO;
static FILE *_Atomic log_output;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static int parse_level(const char *s, sl_log_level *out)
{
	if (!s)
		return -1;
	for (int i = SL_LOG_DEBUG; i <= SL_LOG_OFF; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (sl_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = SL_LOG_WARN;
		return 0;
	}
	return -1;
}

static void level_from_env(void)
{
	sl_log_level level;
	if (parse_level(getenv("SLUICE_LOG"), &level) == 0)
		atomic_store(&log_level, (int)level);
}

int sl_log_level_parse(const char *s, sl_log_level *out)
{
	sl_log_level level;
	if (parse_level(s, &level) != 0)
		return sl_error_set(SL_EINVAL,
		                    "unknown log level \"%s\" (debug, info, warn, error, off)",
		                    s ? s : "(null)");
	*out = level;
	return SL_OK;
}

void sl_log_set_level(sl_log_level level)
{
	/* Run the env lookup first so it cannot override this later. */
	pthread_once(&level_once, level_from_env);
	atomic_store(&log_level, (int)level);
}

sl_log_level sl_log_get_level(void)
{
	pthread_once(&level_once, level_from_env);
	return (sl_log_level)atomic_load(&log_level);
}

void sl_log_set_output(FILE *f)
{
	atomic_store(&log_output, f);
}

/* A line under construction: starts on the stack, moves to the heap. */
typedef struct line {
	char *p;
	size_t len;
	size_t cap;
	int truncated;
	char stack[LINE_STACK_BYTES];
} line;

static void line_init(line *l)
{
	l->p = l->stack;
	l->len = 0;
	l->cap = sizeof(l->stack);
	l->truncated = 0;
}

/* Room for n more bytes (plus the final newline); 0 if none. */
static int line_room(line *l, size_t n)
{
	size_t need, new_cap;
	char *grown;

	if (l->truncated)
		return 0;
	need = l->len + n + 1;
	if (need <= l->cap)
		return 1;
	if (need > LINE_MAX_BYTES)
		goto truncate;
	new_cap = l->cap * 2;
	while (new_cap < need)
		new_cap *= 2;
	if (new_cap > LINE_MAX_BYTES)
		new_cap = LINE_MAX_BYTES;
	if (l->p == l->stack) {
		grown = malloc(new_cap);
		if (grown)
			memcpy(grown, l->stack, l->len);
	} else {
		grown = realloc(l->p, new_cap);
	}
	if (!grown)
		goto truncate;
	l->p = grown;
	l->cap = new_cap;
	return 1;
truncate:
	l->truncated = 1;
	return 0;
}

static void line_put(line *l, const char *s, size_t n)
{
	if (line_room(l, n)) {
		memcpy(l->p + l->len, s, n);
		l->len += n;
	}
}

static void line_puts(line *l, const char *s)
{
	line_put(l, s, strlen(s));
}

static void line_free(line *l)
{
	if (l->p != l->stack)
		free(l->p);
}

static int needs_escape(unsigned char c)
{
	return c == '"' || c == '\\' || c < 0x20 || c == 0x7f;
}

/* The escaped form of c inside double quotes; returns its length (1..4). */
static size_t escape_char(char out[5], unsigned char c)
{
	static const char digits[] = "0123456789abcdef";

	if (!needs_escape(c)) {
		out[0] = (char)c;
		return 1;
	}
	out[0] = '\\';
	switch (c) {
	case '"':
	case '\\':
		out[1] = (char)c;
		return 2;
	case '\n':
		out[1] = 'n';
		return 2;
	case '\r':
		out[1] = 'r';
		return 2;
	case '\t':
		out[1] = 't';
		return 2;
	default:
		out[1] = 'x';
		out[2] = digits[c >> 4];
		out[3] = digits[c & 0x0f];
		return 4;
	}
}

static void line_put_quoted(line *l, const char *s)
{
	char esc[5];

	line_put(l, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		line_put(l, esc, escape_char(esc, *p));
	line_put(l, "\"", 1);
}

void sl_log(sl_log_level level, const char *msg, const char *fields, ...)
{
	int saved_errno = errno;
	char ts[40];
	FILE *out;
	line l;

	if ((int)level < SL_LOG_DEBUG || level >= SL_LOG_OFF || level < sl_log_get_level())
		return;
	line_init(&l);
	sl_clock_format_rfc3339(ts, sizeof(ts), sl_clock_wall_ms());
	line_puts(&l, "ts=");
	line_puts(&l, ts);
	line_puts(&l, " level=");
	line_puts(&l, level_names[level]);
	line_puts(&l, " msg=");
	line_put_quoted(&l, msg ? msg : "");
	if (fields && fields[0]) {
		va_list ap;
		int n;

		va_start(ap, fields);
		n = vsnprintf(NULL, 0, fields, ap);
		va_end(ap);
		if (n > 0 && line_room(&l, (size_t)n + 1)) {
			l.p[l.len++] = ' ';
			va_start(ap, fields);
			vsnprintf(l.p + l.len, (size_t)n + 1, fields, ap);
			va_end(ap);
			l.len += (size_t)n;
		}
	}
	if (l.truncated) {
		/* line_room keeps one byte for the newline; reuse the tail. */
		const char mark[] = " truncated=true";
		if (l.len + sizeof(mark) - 1 + 1 > l.cap)
			l.len = l.cap - sizeof(mark);
		memcpy(l.p + l.len, mark, sizeof(mark) - 1);
		l.len += sizeof(mark) - 1;
	}
	l.p[l.len++] = '\n';
	out = atomic_load(&log_output);
	if (!out)
		out = stderr;
	fwrite(l.p, 1, l.len, out);
	fflush(out);
	line_free(&l);
	errno = saved_errno;
}

const char *sl_log_quote(char *out, size_t cap, const char *s)
{
	const unsigned char *in = (const unsigned char *)(s ? s : "");
	size_t full = 0, pos = 0, i = 0;
	int quoted = in[0] == '\0';
	char esc[5];

	if (cap == 0)
		return "";
	for (const unsigned char *p = in; *p; p++) {
		if (*p == ' ' || *p == '=' || *p == '"' || *p < 0x20 || *p == 0x7f)
			quoted = 1;
	}
	/* A lone backslash needs no quotes (the value ends at a space
	 * anyway); inside quotes it is escaped like the rest. */
	for (const unsigned char *p = in; *p; p++)
		full += quoted ? escape_char(esc, *p) : 1;
	full += quoted ? 2 : 0;
	if (full < cap) {
		if (quoted)
			out[pos++] = '"';
		for (; in[i]; i++) {
			size_t n = quoted ? escape_char(esc, in[i]) : 1;
			memcpy(out + pos, quoted ? esc : (const char *)in + i, n);
			pos += n;
		}
		if (quoted)
			out[pos++] = '"';
		out[pos] = '\0';
		return out;
	}

	/* Too long: keep a prefix, then "..." and the closing quote. */
	size_t tail = 3 + (quoted ? 1 : 0);
	size_t head = quoted ? 1 : 0;
	if (cap < head + tail + 1) {
		memset(out, '.', cap - 1);
		out[cap - 1] = '\0';
		return out;
	}
	if (quoted)
		out[pos++] = '"';
	for (; in[i]; i++) {
		size_t n = quoted ? escape_char(esc, in[i]) : 1;
		if (pos + n + tail + 1 > cap)
			break;
		memcpy(out + pos, quoted ? esc : (const char *)in + i, n);
		pos += n;
	}
	/* Do not end on half a UTF-8 sequence (those bytes copy 1:1). */
	while (i > 0 && (in[i] & 0xc0) == 0x80 && (in[i - 1] & 0x80)) {
		i--;
		pos--;
	}
	memcpy(out + pos, "...", 3);
	pos += 3;
	if (quoted)
		out[pos++] = '"';
	out[pos] = '\0';
	return out;
}
