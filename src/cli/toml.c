/*
 * A small TOML reader: the subset a flat configuration file needs, read in
 * one pass into a list of (table, key, value, line) entries.
 *
 * How it reads. The whole input is checked first: at most
 * CLI_TOML_MAX_INPUT bytes, valid UTF-8, no NUL byte, so the parser itself
 * can treat every non-ASCII byte as opaque string content. Then each line
 * is one of: blank, a comment, a `[table]` header, or `key = value`,
 * optionally followed by a comment. Strings end on the line they start;
 * a value is classified by its first byte, and everything TOML allows that
 * we do not read (arrays, inline tables, floats, dates and times,
 * multi-line strings, dotted keys, arrays of tables, hex/octal/binary
 * integers) is refused by name instead of being misread.
 *
 * Names. A table or key is kept in a canonical spelling: segments joined
 * with '.', bare when the segment is [A-Za-z0-9_-]+ and quoted (with \" \\
 * and \uXXXX for control characters) otherwise. The spelling is unique per
 * sequence of segments and a quoted segment never ends early on a '.', so
 * "is this path a prefix of that one" is a string comparison.
 *
 * TOML's uniqueness rules, as checked here:
 *   - a key appears once per table; a table's keys are contiguous in the
 *     entry list (a header can appear once), so only they are compared;
 *   - a header appears once (an implicit parent such as [a] for [a.b] may
 *     still be written later, once);
 *   - a key and a table never share a path, either way round: `b = 1` in
 *     [a] conflicts with [a.b] and with [a.b.c], before or after.
 * The caps on tables and entries keep these quadratic checks small.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/toml.h"
#include "sluice/base.h"

typedef struct parser {
	const char *name; /* for messages, or NULL */
	const unsigned char *s;
	size_t len;
	size_t pos;
	int line;
	cli_toml_doc doc;
	size_t cap_tables;
	size_t cap_entries;
	const char *table;  /* the current table's canonical name; "" before any header */
	size_t table_first; /* index of the current table's first entry */
	const char *key;    /* the key whose value is being read, for messages */
	sl_buf text;        /* one decoded string or key segment */
	sl_buf path;        /* one canonical table name or key */
} parser;

/* Records an error at the current line, naming the key when inside a value. */
static int fail(const parser *p, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(const parser *p, int code, const char *fmt, ...)
{
	char what[256], where[160], context[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (p->name != NULL)
		snprintf(where, sizeof(where), "%s:%d: ", p->name, p->line);
	else
		snprintf(where, sizeof(where), "line %d: ", p->line);
	context[0] = '\0';
	if (p->key != NULL && p->table[0] != '\0')
		snprintf(context, sizeof(context), "[%s] %s: ", p->table, p->key);
	else if (p->key != NULL)
		snprintf(context, sizeof(context), "%s: ", p->key);
	return sl_error_set(code, "%s%s%s", where, context, what);
}

static int peek(const parser *p, size_t ahead)
{
	if (ahead >= p->len - p->pos)
		return -1;
	return p->s[p->pos + ahead];
}

static int is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Where a value or a key ends: whitespace, a comment or the line end. */
static int is_delimiter(int c)
{
	return c == -1 || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#';
}

static int is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

/* A byte for a message: 'x' when printable ASCII, else its value. */
static const char *describe(char *out, size_t cap, int c)
{
	if (c == -1)
		snprintf(out, cap, "the end of the file");
	else if (c > 0x20 && c < 0x7f)
		snprintf(out, cap, "'%c'", c);
	else
		snprintf(out, cap, "byte 0x%02x", (unsigned)c);
	return out;
}

static void skip_ws(parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
		p->pos++;
}

/* --------------------------------------------------------------- input */

/* The whole input is UTF-8 without NUL bytes (TOML requires UTF-8; a NUL
 * would silently end a C string later). */
static int check_text(parser *p)
{
	size_t i = 0;

	while (i < p->len) {
		unsigned c = p->s[i];
		size_t n;
		uint32_t cp, min;

		if (c == '\n')
			p->line++;
		if (c == 0)
			return fail(p, SL_EINVAL, "a NUL byte");
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return fail(p, SL_EINVAL, "invalid UTF-8 (byte 0x%02x)", c);
		}
		if (n > p->len - i)
			return fail(p, SL_EINVAL, "invalid UTF-8 (truncated sequence)");
		for (size_t k = 1; k < n; k++) {
			if ((p->s[i + k] & 0xc0) != 0x80)
				return fail(p, SL_EINVAL, "invalid UTF-8 (byte 0x%02x)",
				            (unsigned)p->s[i + k]);
			cp = (cp << 6) | (p->s[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return fail(p, SL_EINVAL, "invalid UTF-8 (overlong or out of range)");
		i += n;
	}
	p->line = 1;
	return SL_OK;
}

/* After a header, a value or nothing: blanks, an optional comment, then
 * a line end (LF or CRLF) or the end of the input. */
static int end_line(parser *p)
{
	char what[32];
	int c;

	skip_ws(p);
	if (peek(p, 0) == '#') {
		while ((c = peek(p, 0)) != -1 && c != '\n') {
			if (c == '\r')
				break; /* CRLF ends the comment; a lone CR is refused below */
			if (is_control(c))
				return fail(p, SL_EINVAL, "control character U+%04X in a comment",
				            (unsigned)c);
			p->pos++;
		}
	}
	c = peek(p, 0);
	if (c == -1)
		return SL_OK;
	if (c == '\n') {
		p->pos++;
		p->line++;
		return SL_OK;
	}
	if (c == '\r' && peek(p, 1) == '\n') {
		p->pos += 2;
		p->line++;
		return SL_OK;
	}
	if (c == '\r')
		return fail(p, SL_EINVAL, "a carriage return without a line feed");
	return fail(p, SL_EINVAL, "expected the end of the line, found %s",
	            describe(what, sizeof(what), c));
}

/* ------------------------------------------------------------- strings */

static int append_utf8(sl_buf *b, uint32_t cp)
{
	uint8_t out[4];
	size_t n;

	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (uint8_t)(0xc0 | (cp >> 6));
		out[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (uint8_t)(0xe0 | (cp >> 12));
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		out[0] = (uint8_t)(0xf0 | (cp >> 18));
		out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return sl_buf_append(b, out, n);
}

/* At the backslash of an escape in a basic string; appends what it means. */
static int read_escape(parser *p)
{
	char what[32];
	uint32_t cp = 0;
	int c, digits;

	p->pos++;
	c = peek(p, 0);
	switch (c) {
	case 'b':
		cp = '\b';
		break;
	case 't':
		cp = '\t';
		break;
	case 'n':
		cp = '\n';
		break;
	case 'f':
		cp = '\f';
		break;
	case 'r':
		cp = '\r';
		break;
	case '"':
		cp = '"';
		break;
	case '\\':
		cp = '\\';
		break;
	case 'u':
	case 'U':
		digits = c == 'u' ? 4 : 8;
		for (int i = 1; i <= digits; i++) {
			int h = peek(p, (size_t)i);
			if (!is_hex(h))
				return fail(p, SL_EINVAL,
				            "invalid escape: \\%c needs %d hex digits", c, digits);
			cp = (cp << 4) | (uint32_t)(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return fail(p, SL_EINVAL,
			            "invalid escape: \\%c%0*X is not a Unicode scalar value", c,
			            digits, cp);
		if (cp == 0)
			return fail(p, SL_EINVAL, "a NUL character (\\%c%0*X) is not supported", c,
			            digits, cp);
		p->pos += (size_t)digits;
		break;
	case -1:
		return fail(p, SL_EINVAL, "unterminated string");
	default:
		return fail(p, SL_EINVAL, "invalid escape: backslash followed by %s",
		            describe(what, sizeof(what), c));
	}
	p->pos++;
	return append_utf8(&p->text, cp);
}

/* At the opening quote of a basic ("...", with escapes) or literal ('...',
 * taken as written) string; leaves it decoded in p->text. */
static int read_string(parser *p)
{
	const int quote = peek(p, 0), basic = quote == '"';
	int rc;

	sl_buf_reset(&p->text);
	p->pos++;
	for (;;) {
		int c = peek(p, 0);
		if (c == -1 || c == '\n' || c == '\r')
			return fail(p, SL_EINVAL,
			            "unterminated string (a string ends on its line)");
		if (c == quote) {
			p->pos++;
			return SL_OK;
		}
		if (basic && c == '\\') {
			if ((rc = read_escape(p)) != SL_OK)
				return rc;
			continue;
		}
		if (is_control(c))
			return basic ? fail(p, SL_EINVAL,
			                    "control character U+%04X in a string (write it as an "
			                    "escape)",
			                    (unsigned)c)
			             : fail(p, SL_EINVAL,
			                    "control character U+%04X in a literal string",
			                    (unsigned)c);
		if ((rc = sl_buf_append_byte(&p->text, (uint8_t)c)) != SL_OK)
			return rc;
		p->pos++;
	}
}

static char *dup_buf(const sl_buf *b)
{
	return sl_strndup(b->len ? (const char *)b->data : "", b->len);
}

/* ---------------------------------------------------------------- names */

/* Appends one segment to p->path in its canonical spelling. */
static int append_segment(parser *p)
{
	const uint8_t *seg = p->text.data;
	size_t n = p->text.len, i;
	int rc = SL_OK;

	for (i = 0; i < n && is_bare(seg[i]); i++)
		;
	if (n > 0 && i == n)
		return sl_buf_append(&p->path, seg, n);
	if ((rc = sl_buf_append_byte(&p->path, '"')) != SL_OK)
		return rc;
	for (i = 0; i < n && rc == SL_OK; i++) {
		if (seg[i] == '"' || seg[i] == '\\')
			rc = sl_buf_printf(&p->path, "\\%c", seg[i]);
		else if (is_control(seg[i]))
			rc = sl_buf_printf(&p->path, "\\u%04X", (unsigned)seg[i]);
		else
			rc = sl_buf_append_byte(&p->path, seg[i]);
	}
	if (rc == SL_OK)
		rc = sl_buf_append_byte(&p->path, '"');
	return rc;
}

/* One key segment: bare, "basic" or 'literal', decoded into p->text. */
static int read_segment(parser *p)
{
	char what[32];
	int c = peek(p, 0), rc;

	if (c == '"' || c == '\'')
		return read_string(p);
	if (!is_bare(c))
		return fail(p, SL_EINVAL, "expected a key, found %s",
		            describe(what, sizeof(what), c));
	sl_buf_reset(&p->text);
	while (is_bare(c = peek(p, 0))) {
		if ((rc = sl_buf_append_byte(&p->text, (uint8_t)c)) != SL_OK)
			return rc;
		p->pos++;
	}
	return SL_OK;
}

/* True when the path of `key` in `table` is `name` or a prefix of it. */
static int path_covers(const char *table, const char *key, const char *name)
{
	size_t table_len = strlen(table), key_len = strlen(key);
	const char *rest = name;

	if (table_len > 0) {
		if (strncmp(rest, table, table_len) != 0 || rest[table_len] != '.')
			return 0;
		rest += table_len + 1;
	}
	if (strncmp(rest, key, key_len) != 0)
		return 0;
	return rest[key_len] == '\0' || rest[key_len] == '.';
}

/* ---------------------------------------------------------------- lines */

static int read_header(parser *p)
{
	char what[32];
	char *name = NULL;
	int c, rc;

	p->pos++;
	if (peek(p, 0) == '[')
		return fail(p, SL_EINVAL, "arrays of tables ([[...]]) are not supported");
	sl_buf_reset(&p->path);
	for (;;) {
		skip_ws(p);
		if ((rc = read_segment(p)) != SL_OK || (rc = append_segment(p)) != SL_OK)
			return rc;
		skip_ws(p);
		c = peek(p, 0);
		if (c == ']') {
			p->pos++;
			break;
		}
		if (c != '.')
			return fail(p, SL_EINVAL, "expected '.' or ']' in a table header, found %s",
			            describe(what, sizeof(what), c));
		p->pos++;
		if ((rc = sl_buf_append_byte(&p->path, '.')) != SL_OK)
			return rc;
	}
	if (p->path.len > 200)
		return fail(p, SL_EINVAL, "table name longer than 200 bytes");
	for (size_t i = 0; i < p->doc.n_tables; i++) {
		const cli_toml_table *t = &p->doc.tables[i];
		if (strcmp(t->name, (const char *)p->path.data) == 0)
			return fail(p, SL_EINVAL, "duplicate table [%s] (first at line %d)",
			            t->name, t->line);
	}
	for (size_t i = 0; i < p->doc.n_entries; i++) {
		const cli_toml_entry *e = &p->doc.entries[i];
		if (!path_covers(e->table, e->key, (const char *)p->path.data))
			continue;
		if (e->table[0] == '\0')
			return fail(p, SL_EINVAL, "[%s]: key %s (line %d) is not a table",
			            (const char *)p->path.data, e->key, e->line);
		return fail(p, SL_EINVAL, "[%s]: key %s of [%s] (line %d) is not a table",
		            (const char *)p->path.data, e->key, e->table, e->line);
	}
	if (p->doc.n_tables >= CLI_TOML_MAX_TABLES)
		return fail(p, SL_ETOOLARGE, "more than %d tables", CLI_TOML_MAX_TABLES);
	cli_toml_table *grown =
	        sl_grow(p->doc.tables, &p->cap_tables, p->doc.n_tables, sizeof(*grown), 8);
	if (grown == NULL)
		return SL_ENOMEM;
	p->doc.tables = grown;
	if ((name = dup_buf(&p->path)) == NULL)
		return SL_ENOMEM;
	p->doc.tables[p->doc.n_tables].name = name;
	p->doc.tables[p->doc.n_tables].line = p->line;
	p->doc.n_tables++;
	p->table = name;
	p->table_first = p->doc.n_entries;
	return end_line(p);
}

/* True when the input at pos is `word` followed by a delimiter. */
static int at_word(const parser *p, const char *word)
{
	size_t n = strlen(word);

	if (n > p->len - p->pos || memcmp(p->s + p->pos, word, n) != 0)
		return 0;
	return is_delimiter(peek(p, n));
}

/* A run of non-delimiters that starts like a number: a decimal integer,
 * or one of the numeric forms we do not read, each refused by name. */
static int read_number(parser *p, cli_toml_entry *e)
{
	const unsigned char *token = p->s + p->pos, *body;
	size_t n = 0, body_len, i;
	uint64_t magnitude = 0, limit;
	int negative = 0;

	while (!is_delimiter(peek(p, n)))
		n++;
	body = token;
	body_len = n;
	if (n > 0 && (token[0] == '+' || token[0] == '-')) {
		negative = token[0] == '-';
		body++;
		body_len--;
	}
	if (body_len >= 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o' || body[1] == 'b'))
		return fail(p, SL_EINVAL,
		            "hexadecimal, octal and binary integers are not supported");
	if (body_len == 3 && (memcmp(body, "inf", 3) == 0 || memcmp(body, "nan", 3) == 0))
		return fail(p, SL_EINVAL, "floats are not supported");
	if (memchr(body, ':', body_len) != NULL ||
	    (memchr(body, '-', body_len) != NULL && memchr(body, 'e', body_len) == NULL &&
	     memchr(body, 'E', body_len) == NULL))
		return fail(p, SL_EINVAL, "dates and times are not supported");
	if (memchr(body, '.', body_len) != NULL || memchr(body, 'e', body_len) != NULL ||
	    memchr(body, 'E', body_len) != NULL)
		return fail(p, SL_EINVAL, "floats are not supported");
	if (body_len == 0 || !is_digit(body[0]))
		return fail(p, SL_EINVAL, "invalid integer '%.*s'", (int)(n > 40 ? 40 : n),
		            (const char *)token);
	if (body[0] == '0' && body_len > 1)
		return fail(p, SL_EINVAL, "leading zeros are not allowed in integers");
	limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (i = 0; i < body_len; i++) {
		unsigned digit;
		if (body[i] == '_') {
			if (i + 1 == body_len || !is_digit(body[i + 1]))
				return fail(p, SL_EINVAL,
				            "'_' in an integer must stand between digits");
			continue;
		}
		if (!is_digit(body[i]))
			return fail(p, SL_EINVAL, "invalid integer '%.*s'", (int)(n > 40 ? 40 : n),
			            (const char *)token);
		digit = (unsigned)(body[i] - '0');
		if (magnitude > (limit - digit) / 10)
			return fail(p, SL_EINVAL, "integer out of range (64-bit)");
		magnitude = magnitude * 10 + digit;
	}
	e->type = CLI_TOML_INTEGER;
	if (negative)
		e->integer = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
	else
		e->integer = (int64_t)magnitude;
	p->pos += n;
	return SL_OK;
}

static int read_value(parser *p, cli_toml_entry *e)
{
	int c = peek(p, 0), rc;

	if (c == '"' || c == '\'') {
		if (peek(p, 1) == c && peek(p, 2) == c)
			return fail(p, SL_EINVAL, "multi-line strings are not supported");
		rc = read_string(p);
		if (rc != SL_OK)
			return rc;
		if ((e->str = dup_buf(&p->text)) == NULL)
			return SL_ENOMEM;
		e->type = CLI_TOML_STRING;
		return SL_OK;
	}
	if (c == '[')
		return fail(p, SL_EINVAL, "arrays are not supported");
	if (c == '{')
		return fail(p, SL_EINVAL, "inline tables are not supported");
	if (c == -1 || c == '\n' || c == '\r' || c == '#')
		return fail(p, SL_EINVAL, "missing value after '='");
	if (at_word(p, "true") || at_word(p, "false")) {
		e->type = CLI_TOML_BOOL;
		e->boolean = c == 't';
		p->pos += e->boolean ? 4 : 5;
		return SL_OK;
	}
	if (is_digit(c) || c == '+' || c == '-' || at_word(p, "inf") || at_word(p, "nan"))
		return read_number(p, e);
	return fail(p, SL_EINVAL,
	            "expected a value: a \"quoted string\", an integer, true or false");
}

static int read_key_value(parser *p)
{
	cli_toml_entry e;
	int rc;

	memset(&e, 0, sizeof(e));
	sl_buf_reset(&p->path);
	if ((rc = read_segment(p)) != SL_OK || (rc = append_segment(p)) != SL_OK)
		return rc;
	skip_ws(p);
	if (peek(p, 0) == '.')
		return fail(p, SL_EINVAL, "dotted keys are not supported (use a [table] header)");
	if (peek(p, 0) != '=')
		return fail(p, SL_EINVAL, "expected '=' after key %s", (const char *)p->path.data);
	p->pos++;
	skip_ws(p);
	if (p->path.len > 200)
		return fail(p, SL_EINVAL, "key longer than 200 bytes");
	if ((e.key = dup_buf(&p->path)) == NULL)
		return SL_ENOMEM;
	e.table = p->table;
	e.line = p->line;
	p->key = e.key;
	for (size_t i = p->table_first; i < p->doc.n_entries; i++) {
		if (strcmp(p->doc.entries[i].key, e.key) == 0) {
			rc = fail(p, SL_EINVAL, "duplicate key (first at line %d)",
			          p->doc.entries[i].line);
			goto cleanup;
		}
	}
	for (size_t i = 0; i < p->doc.n_tables; i++) {
		const cli_toml_table *t = &p->doc.tables[i];
		if (path_covers(p->table, e.key, t->name)) {
			rc = fail(p, SL_EINVAL, "already defined as table [%s] at line %d", t->name,
			          t->line);
			goto cleanup;
		}
	}
	if (p->doc.n_entries >= CLI_TOML_MAX_ENTRIES) {
		rc = fail(p, SL_ETOOLARGE, "more than %d keys", CLI_TOML_MAX_ENTRIES);
		goto cleanup;
	}
	cli_toml_entry *grown =
	        sl_grow(p->doc.entries, &p->cap_entries, p->doc.n_entries, sizeof(*grown), 32);
	if (grown == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	p->doc.entries = grown;
	if ((rc = read_value(p, &e)) != SL_OK || (rc = end_line(p)) != SL_OK)
		goto cleanup;
	p->doc.entries[p->doc.n_entries++] = e;
	memset(&e, 0, sizeof(e));
cleanup:
	p->key = NULL;
	sl_free(e.key);
	sl_free(e.str);
	return rc;
}

/* ------------------------------------------------------------------ API */

int cli_toml_parse(cli_toml_doc *out, const char *name, const char *text, size_t len)
{
	parser p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.s = (const unsigned char *)text;
	p.len = len;
	p.line = 1;
	p.table = "";
	sl_buf_init(&p.text, CLI_TOML_MAX_INPUT + 16);
	sl_buf_init(&p.path, CLI_TOML_MAX_INPUT * 2 + 16);
	if (len > CLI_TOML_MAX_INPUT) {
		rc = sl_error_set(SL_ETOOLARGE, "%s%slarger than %zu bytes", name ? name : "",
		                  name ? ": " : "", CLI_TOML_MAX_INPUT);
		goto cleanup;
	}
	if (text == NULL && len > 0) {
		rc = sl_error_set(SL_EINVAL, "TOML text is NULL");
		goto cleanup;
	}
	if ((rc = check_text(&p)) != SL_OK)
		goto cleanup;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		p.pos = 3; /* a byte order mark some editors write */
	while (p.pos < p.len) {
		int c;
		skip_ws(&p);
		c = peek(&p, 0);
		if (c == '[')
			rc = read_header(&p);
		else if (c == -1 || c == '\n' || c == '\r' || c == '#')
			rc = end_line(&p);
		else
			rc = read_key_value(&p);
		if (rc != SL_OK)
			goto cleanup;
	}
	*out = p.doc;
	memset(&p.doc, 0, sizeof(p.doc));
cleanup:
	cli_toml_free(&p.doc);
	sl_buf_free(&p.text);
	sl_buf_free(&p.path);
	return rc;
}

void cli_toml_free(cli_toml_doc *doc)
{
	if (doc == NULL)
		return;
	for (size_t i = 0; i < doc->n_entries; i++) {
		sl_free(doc->entries[i].key);
		sl_free(doc->entries[i].str);
	}
	for (size_t i = 0; i < doc->n_tables; i++)
		sl_free(doc->tables[i].name);
	sl_free(doc->entries);
	sl_free(doc->tables);
	memset(doc, 0, sizeof(*doc));
}

int cli_toml_entry_error(const char *name, const cli_toml_entry *e, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e->table[0] == '\0')
		return sl_error_set(SL_EINVAL, "%s:%d: %s: %s", name, e->line, e->key, what);
	return sl_error_set(SL_EINVAL, "%s:%d: [%s] %s: %s", name, e->line, e->table, e->key, what);
}

const char *cli_toml_type_name(cli_toml_type type)
{
	switch (type) {
	case CLI_TOML_STRING:
		return "a string";
	case CLI_TOML_INTEGER:
		return "an integer";
	case CLI_TOML_BOOL:
		return "a boolean";
	}
	return "an unknown type";
}
