/* The NDJSON event source: one JSON object per line of a file or of
 * standard input (docs/cli.md, "Mirror sources", has the format).
 *
 * A line's position is its index, so a position is the number of lines
 * done, and a blank line (empty, or JSON whitespace only) is a position
 * without an event. A line ends at '\n' (a '\r' before it is dropped); a
 * last line without its '\n' is not complete yet: a file is followed while
 * it is written, and such a line is read once its '\n' is there. Only at
 * the end of standard input is a last line without '\n' taken whole.
 *
 * Reading: the reader keeps the next line's index and byte offset (line,
 * off) and a buffer of the input's bytes [buf_off, buf_off + buf.len), so
 * a read that starts where the last one ended costs nothing to find. A
 * read from an earlier position starts again at the last read's start
 * (mark_line, mark_off) when that is not past it, else (a file) at byte 0,
 * and counts lines forward. A read stops at max_events, at max_bytes, or
 * once it has passed READ_SPAN_MAX bytes (plus a line), so what one read
 * holds in memory is bounded.
 *
 * Invariants:
 *   N1. off is where line `line` starts (0, or just past the line-th
 *       '\n'), and [off, scan) holds no '\n'.
 *   N2. mark_line <= line and mark_off is where line mark_line starts.
 *   N3. A stream (standard input, a pipe) keeps its bytes from mark_off in
 *       the buffer (buf_off <= mark_off), since it cannot read them again:
 *       a read again from the last read's start (a retry) still works, and
 *       anything earlier is SL_EINVAL.
 *
 * Waiting: a file that has no complete line past `from` is looked at
 * again every GROWTH_POLL_MS until wait_ms passed (then at_end = 1); a
 * stream is poll()ed for up to wait_ms (then at_end = 0, or 1 at its end).
 * A file is opened once: a file renamed over the path is not seen; a file
 * cut below what was read is SL_EINVAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connect/event_internal.h"

#define LINE_MAX_DEFAULT ((size_t)64 << 20)
#define READ_CHUNK       ((size_t)64 << 10)
#define READ_SPAN_MAX    ((uint64_t)16 << 20)
#define GROWTH_POLL_MS   20

/* ----------------------------------------------------------------- lines */

static int blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

static int line_error(uint64_t pos, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int line_error(uint64_t pos, const char *fmt, ...)
{
	char msg[SL_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sl_error_set(SL_ECORRUPT, "line %llu: %s", (unsigned long long)pos + 1, msg);
}

/* Standard base64 with its padding, every character checked (libsodium's
 * decoder, which also refuses non-zero bits after the last byte). *out is
 * from sl_malloc. */
static int base64_decode(uint64_t pos, const char *text, size_t len, uint8_t **out, size_t *n_out)
{
	size_t cap = len / 4 * 3 + 3, n = 0;
	uint8_t *bytes = sl_malloc(cap);
	if (!bytes)
		return SL_ENOMEM;
	if (len % 4 != 0 || sodium_base642bin(bytes, cap, text, len, NULL, &n, NULL,
	                                      sodium_base64_VARIANT_ORIGINAL) != 0) {
		sl_free(bytes);
		return line_error(pos, "\"value_b64\" is not standard base64 with padding");
	}
	*out = bytes;
	*n_out = n;
	return SL_OK;
}

static int parse_object(sl_event_batch *out, uint64_t pos, json_t *obj)
{
	json_t *key = json_object_get(obj, "key"), *op_j = json_object_get(obj, "op");
	json_t *value = json_object_get(obj, "value"), *b64 = json_object_get(obj, "value_b64");
	json_t *version_j = json_object_get(obj, "version");
	sl_event_op op = SL_EVENT_SET;
	uint64_t version = pos + 1;
	uint8_t *decoded = NULL;
	const void *bytes = NULL;
	size_t n_bytes = 0, key_len;
	int rc;

	if (!key)
		return line_error(pos, "\"key\" is missing");
	if (!json_is_string(key))
		return line_error(pos, "\"key\" must be a string");
	if ((key_len = json_string_length(key)) == 0)
		return line_error(pos, "\"key\" is empty");
	if (memchr(json_string_value(key), '\0', key_len))
		return line_error(pos, "\"key\" holds a NUL byte");
	if (op_j &&
	    (!json_is_string(op_j) || strlen(json_string_value(op_j)) != json_string_length(op_j) ||
	     sl_event_op_parse(&op, json_string_value(op_j)) != SL_OK))
		return line_error(pos, "\"op\" must be \"set\", \"update\" or \"delete\"");
	if (value && b64)
		return line_error(pos, "\"value\" and \"value_b64\" together");
	if (op == SL_EVENT_DELETE && (value || b64))
		return line_error(pos, "a delete takes no \"%s\"", value ? "value" : "value_b64");
	if (value && !json_is_string(value))
		return line_error(pos, "\"value\" must be a string");
	if (b64 && !json_is_string(b64))
		return line_error(pos, "\"value_b64\" must be a string");
	if (version_j) {
		if (!json_is_integer(version_j) || json_integer_value(version_j) <= 0)
			return line_error(pos, "\"version\" must be a positive integer");
		version = (uint64_t)json_integer_value(version_j);
	} else if (version == 0) {
		return line_error(pos, "no version for a line past 2^64 - 1");
	}
	if (value) {
		bytes = json_string_value(value);
		n_bytes = json_string_length(value);
	} else if (b64) {
		if ((rc = base64_decode(pos, json_string_value(b64), json_string_length(b64),
		                        &decoded, &n_bytes)) != SL_OK)
			return rc;
		bytes = decoded;
	}
	rc = sl_event_batch_add(out, pos, op, json_string_value(key), key_len, bytes, n_bytes,
	                        version);
	sl_free(decoded);
	return rc;
}

int sl_ndjson_event_parse(sl_event_batch *out, uint64_t pos, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *obj;
	int rc;

	if (blank(line, len))
		return SL_OK;
	obj = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!obj) {
		if (json_error_code(&jerr) == json_error_numeric_overflow)
			return line_error(pos,
			                  "a number is out of range (\"version\" is at most %lld)",
			                  LLONG_MAX);
		return line_error(pos, "not JSON: %s (column %d)", jerr.text, jerr.column);
	}
	rc = json_is_object(obj) ? parse_object(out, pos, obj)
	                         : line_error(pos, "not a JSON object");
	json_decref(obj);
	return rc;
}

/* ---------------------------------------------------------------- reader */

typedef struct ndjson_src {
	int fd;
	int owns_fd;
	int is_stream; /* read(), no going back (N3) */
	char *path;    /* for messages */
	size_t line_max;
	sl_buf buf; /* bytes [buf_off, buf_off + buf.len) of the input */
	uint64_t buf_off;
	int eof;                      /* a stream ended */
	int started;                  /* a stream: the first read named its first line's position */
	uint64_t line, off, scan;     /* N1 */
	uint64_t mark_line, mark_off; /* N2 */
	uint64_t count_lines, count_off; /* head(): '\n's in [0, count_off) */
} ndjson_src;

static uint64_t buf_end(const ndjson_src *r)
{
	return r->buf_off + r->buf.len;
}

static int io_error(const ndjson_src *r, const char *what)
{
	return sl_error_set(SL_EIO, "ndjson %s: %s: %s", r->path, what, strerror(errno));
}

/* The line at off, if complete in the buffer: 1 with its length (before
 * the '\n'), 0 when its '\n' is not there yet. SL_ECORRUPT past line_max. */
static int find_line(ndjson_src *r, size_t *len)
{
	uint64_t end = buf_end(r);

	if (r->off < r->buf_off || r->off > end) { /* not buffered: start afresh there */
		r->buf.len = 0;
		r->buf_off = end = r->off;
	}
	if (r->scan < r->off)
		r->scan = r->off;
	if (r->scan < end) {
		const uint8_t *p = r->buf.data + (r->scan - r->buf_off);
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - r->scan));
		if (nl) {
			uint64_t at = r->buf_off + (uint64_t)(nl - r->buf.data);
			if (at - r->off > r->line_max)
				return line_error(r->line, "longer than %zu bytes", r->line_max);
			*len = (size_t)(at - r->off);
			r->scan = at;
			return 1;
		}
		r->scan = end;
	}
	if (end - r->off > r->line_max)
		return line_error(r->line, "longer than %zu bytes", r->line_max);
	return 0;
}

static void advance(ndjson_src *r, size_t len_with_newline)
{
	r->off += len_with_newline;
	r->line++;
}

/* Reads more of the input after the buffer: *n bytes (0: nothing now: the
 * end of a file, the end of a stream (eof set), or a stream with nothing
 * within timeout_ms). The buffer drops what is before off (a stream: before
 * mark_off, N3). */
static int fill(ndjson_src *r, int timeout_ms, size_t *n)
{
	uint64_t keep = r->is_stream ? r->mark_off : r->off;
	ssize_t got;
	size_t room;
	int rc;

	*n = 0;
	if (keep > r->buf_off && keep <= buf_end(r)) {
		size_t drop = (size_t)(keep - r->buf_off);
		memmove(r->buf.data, r->buf.data + drop, r->buf.len - drop);
		r->buf.len -= drop;
		r->buf_off = keep;
	}
	if ((rc = sl_buf_reserve(&r->buf, READ_CHUNK)) != SL_OK)
		return rc;
	room = r->buf.cap - 1 - r->buf.len;
	if (!r->is_stream) {
		struct stat st;
		do
			got = pread(r->fd, r->buf.data + r->buf.len, room, (off_t)buf_end(r));
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return io_error(r, "read");
		if (got == 0 && fstat(r->fd, &st) == 0 && (uint64_t)st.st_size < buf_end(r))
			return sl_error_set(SL_EINVAL,
			                    "ndjson %s: the file was cut to %llu bytes, below the "
			                    "%llu read: it was truncated or rewritten",
			                    r->path, (unsigned long long)st.st_size,
			                    (unsigned long long)buf_end(r));
	} else {
		struct pollfd p = {r->fd, POLLIN, 0};
		int ready;
		if (r->eof)
			return SL_OK;
		ready = poll(&p, 1, timeout_ms);
		if (ready < 0 && errno != EINTR)
			return io_error(r, "poll");
		if (ready <= 0)
			return SL_OK;
		do
			got = read(r->fd, r->buf.data + r->buf.len, room);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return io_error(r, "read");
		r->eof = got == 0;
	}
	r->buf.len += (size_t)got;
	r->buf.data[r->buf.len] = 0;
	*n = (size_t)got;
	return SL_OK;
}

static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = sl_clock_mono_ns();
	uint64_t ms = now >= deadline_ns ? 0 : (deadline_ns - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The next line: 1 with its text (without "\n" or "\r\n") and the bytes it
 * takes up, 0 when none is complete now (*at_end: none will be: the end of
 * a stream). A file's end is waited for only while wait_file is set; a
 * stream is poll()ed until the deadline. */
static int next_line(ndjson_src *r, uint64_t deadline_ns, int wait_file, const char **text,
                     size_t *len, size_t *taken, int *at_end)
{
	*at_end = 0;
	for (;;) {
		size_t n;
		int left, rc = find_line(r, len);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			*taken = *len + 1;
			break;
		}
		if (r->is_stream && r->eof) {
			if (buf_end(r) == r->off) {
				*at_end = 1;
				return 0;
			}
			*len = *taken = (size_t)(buf_end(r) - r->off); /* the last line, whole */
			break;
		}
		if ((rc = fill(r, r->is_stream ? ms_left(deadline_ns) : 0, &n)) != SL_OK)
			return rc;
		if (n > 0 || (r->is_stream && r->eof))
			continue;
		if (r->is_stream || !wait_file || (left = ms_left(deadline_ns)) == 0)
			return 0;
		sl_sleep_ms((uint64_t)(left < GROWTH_POLL_MS ? left : GROWTH_POLL_MS));
	}
	*text = (const char *)r->buf.data + (r->off - r->buf_off);
	if (*len > 0 && (*text)[*len - 1] == '\r' && *taken == *len + 1)
		(*len)--;
	return 1;
}

/* Stand at line `from`: 1 when there, 0 when a stream has not got there
 * within the deadline (or ended before it). */
static int seek(ndjson_src *r, uint64_t from, uint64_t deadline_ns)
{
	if (r->is_stream && !r->started) {
		r->line = r->mark_line = from; /* the first line read is at from */
		r->started = 1;
	}
	if (from < r->line) {
		if (from >= r->mark_line && (!r->is_stream || r->mark_off >= r->buf_off)) {
			r->line = r->mark_line;
			r->off = r->mark_off;
		} else if (!r->is_stream) {
			r->line = r->off = 0;
		} else {
			return sl_error_set(
			        SL_EINVAL,
			        "ndjson %s: cannot go back to line %llu: standard input "
			        "was read up to line %llu",
			        r->path, (unsigned long long)from + 1,
			        (unsigned long long)r->line + 1);
		}
		r->scan = r->off;
	}
	r->mark_line = r->line;
	r->mark_off = r->off;
	while (r->line < from) {
		const char *text;
		size_t len, taken;
		int at_end, rc = next_line(r, deadline_ns, 0, &text, &len, &taken, &at_end);
		if (rc < 0)
			return rc;
		if (rc == 0 && !r->is_stream)
			return sl_error_set(SL_EINVAL,
			                    "ndjson %s: position %llu is past the end of the file "
			                    "(%llu complete lines)",
			                    r->path, (unsigned long long)from,
			                    (unsigned long long)r->line);
		if (rc == 0)
			return 0;
		advance(r, taken);
		r->mark_line = r->line; /* lines skipped need not be kept (N3) */
		r->mark_off = r->off;
	}
	return 1;
}

static int ndjson_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                       uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	ndjson_src *r = self;
	uint64_t deadline =
	        sl_clock_mono_ns() + (wait_ms > 86400000 ? 86400000 : wait_ms) * 1000000;
	size_t n0 = out->n, added = 0;
	int rc;

	*at_end = 0;
	if (max_events == 0)
		return sl_error_set(SL_EINVAL, "a read of at most 0 events");
	if ((rc = seek(r, from, deadline)) < 0)
		return rc;
	if (rc == 0) { /* a stream that has not reached from */
		*at_end = r->eof;
		*next = from;
		return SL_OK;
	}
	while (!sl_event_batch_full(out, added, max_events, max_bytes) &&
	       r->off - r->mark_off < READ_SPAN_MAX) {
		const char *text;
		size_t len, taken, before = out->n;
		int end;
		rc = next_line(r, deadline, added == 0, &text, &len, &taken, &end);
		if (rc == 0) {
			*at_end = added == 0 && (end || !r->is_stream);
			break;
		}
		if (rc < 0 || (rc = sl_ndjson_event_parse(out, r->line, text, len)) != SL_OK) {
			if (added == 0) {
				sl_event_batch_truncate(out, n0);
				return rc;
			}
			break; /* give what was read; the next read meets the error */
		}
		added += out->n - before;
		advance(r, taken);
		if (added > 0)
			deadline = 0; /* from now on, take only what is there */
	}
	*next = r->line;
	return SL_OK;
}

/* For a file, the complete lines in it now, counted from where the last
 * count (or the reader) got to. */
static int ndjson_head(void *self, sl_event_source_head *out)
{
	ndjson_src *r = self;
	struct stat st;
	uint8_t *chunk;

	memset(out, 0, sizeof(*out));
	if (r->is_stream) {
		out->end = r->line;
		return SL_OK;
	}
	if (fstat(r->fd, &st) != 0)
		return io_error(r, "stat");
	if ((uint64_t)st.st_size < r->count_off)
		r->count_off = r->count_lines = 0;
	if (r->off > r->count_off && r->off <= (uint64_t)st.st_size) {
		r->count_off = r->off; /* N1: line '\n's before off */
		r->count_lines = r->line;
	}
	if (!(chunk = sl_malloc(READ_CHUNK)))
		return SL_ENOMEM;
	while (r->count_off < (uint64_t)st.st_size) {
		ssize_t got = pread(r->fd, chunk, READ_CHUNK, (off_t)r->count_off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int rc = io_error(r, "read");
			sl_free(chunk);
			return rc;
		}
		if (got == 0)
			break;
		for (const uint8_t *p = chunk, *e = chunk + got;
		     (p = memchr(p, '\n', (size_t)(e - p))); p++)
			r->count_lines++;
		r->count_off += (uint64_t)got;
	}
	sl_free(chunk);
	out->end = r->count_lines;
	out->known = 1;
	return SL_OK;
}

static int ndjson_save_state(void *self, char *out, size_t cap)
{
	(void)self;
	if (cap == 0)
		return sl_error_set(SL_ETOOLARGE, "no room for the source's state");
	out[0] = '\0';
	return SL_OK;
}

static int ndjson_restore_state(void *self, const char *state)
{
	(void)self;
	if (state[0] != '\0')
		return sl_error_set(SL_ECORRUPT, "an ndjson source keeps no state, given '%.64s'",
		                    state);
	return SL_OK;
}

static void ndjson_close(void *self)
{
	ndjson_src *r = self;
	if (!r)
		return;
	if (r->owns_fd && r->fd >= 0)
		close(r->fd);
	sl_buf_free(&r->buf);
	sl_free(r->path);
	sl_free(r);
}

static const sl_event_source_ops ndjson_ops = {
        "ndjson", ndjson_read, ndjson_head, ndjson_save_state, ndjson_restore_state, ndjson_close,
};

void sl_ndjson_source_set_line_max(sl_event_source *s, size_t max)
{
	ndjson_src *r = s->self;
	r->line_max = max;
	r->buf.max = READ_SPAN_MAX + 2 * (uint64_t)max + 2 * READ_CHUNK;
}

int sl_ndjson_source_open(sl_event_source *out, const char *path)
{
	ndjson_src *r;
	char *real = NULL;
	struct stat st;
	int rc;

	if (!path || !*path)
		return sl_error_set(SL_EINVAL,
		                    "an ndjson source needs a path, or - for standard input");
	if (!(r = sl_calloc(1, sizeof(*r))))
		return SL_ENOMEM;
	r->fd = -1;
	if (strcmp(path, "-") == 0) {
		r->fd = STDIN_FILENO;
		r->is_stream = 1;
		r->path = sl_strdup("(standard input)");
	} else {
		r->owns_fd = 1;
		r->path = sl_strdup(path);
		if (r->path && (r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			rc = sl_error_set(errno == ENOENT ? SL_ENOTFOUND : SL_EIO,
			                  "ndjson %s: open: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (!r->path) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if (fstat(r->fd, &st) != 0) {
		rc = io_error(r, "stat");
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = sl_error_set(SL_EINVAL, "ndjson %s is a directory", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode))
		r->is_stream = 1; /* a named pipe or a device: read as it comes */
	out->ops = &ndjson_ops;
	out->self = r;
	sl_ndjson_source_set_line_max(out, LINE_MAX_DEFAULT);
	if (r->owns_fd)
		real = realpath(path, NULL);
	rc = sl_event_source_set_name(out, "ndjson:%s", r->owns_fd ? (real ? real : path) : "-");
	free(real);
	if (rc == SL_OK)
		return SL_OK;
	out->ops = NULL;
	out->self = NULL;
fail:
	ndjson_close(r);
	return rc;
}
