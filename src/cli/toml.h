/* A small TOML reader for the pipeline configuration file (config.h).
 *
 * It reads the subset a flat configuration needs: comments, `[table]` and
 * `[a.b]` headers, `key = value` with bare or quoted keys, and values that
 * are basic strings (with escapes), literal strings, decimal integers and
 * booleans. Everything else TOML has (arrays, inline tables, floats,
 * dates, multi-line strings, dotted keys) is refused with a message that
 * says so, rather than half-read.
 *
 * The input is a pointer and a length (not NUL-terminated), at most
 * CLI_TOML_MAX_INPUT bytes, valid UTF-8 without NUL bytes. Messages start
 * with "line N: ", or "<name>:N: " when a name is given, and name the key
 * when the error is in a value: "sluice.toml:7: [sync] batch_size: ...".
 */
#ifndef SLUICE_CLI_TOML_H
#define SLUICE_CLI_TOML_H

#include <stddef.h>
#include <stdint.h>

#define CLI_TOML_MAX_INPUT   ((size_t)1 << 20) /* bytes; more is SL_ETOOLARGE */
#define CLI_TOML_MAX_ENTRIES 4096              /* keys per document */
#define CLI_TOML_MAX_TABLES  512               /* table headers per document */

typedef enum cli_toml_type {
	CLI_TOML_STRING = 1,
	CLI_TOML_INTEGER = 2,
	CLI_TOML_BOOL = 3
} cli_toml_type;

/* A `[header]` as written. The name is canonical: segments joined with
 * '.', each bare when it can be ([A-Za-z0-9_-]+) and quoted otherwise, so
 * `["sync"]`, `[ sync ]` and `[sync]` all name "sync". */
typedef struct cli_toml_table {
	char *name;
	int line;
} cli_toml_table;

typedef struct cli_toml_entry {
	const char *table;  /* canonical table name ("" before any header); borrowed */
	char *key;          /* canonical, as table names */
	cli_toml_type type; /* which of the values below is set */
	char *str;          /* STRING: UTF-8, NUL-terminated, no NUL inside */
	int64_t integer;    /* INTEGER */
	int boolean;        /* BOOL: 0 or 1 */
	int line;           /* 1-based */
} cli_toml_entry;

/* Tables and entries in document order. */
typedef struct cli_toml_doc {
	cli_toml_table *tables;
	size_t n_tables;
	cli_toml_entry *entries;
	size_t n_entries;
} cli_toml_doc;

/* Parses len bytes of text. SL_EINVAL for anything malformed or not
 * supported, SL_ETOOLARGE past the caps above, SL_ENOMEM. `name` (or NULL)
 * stands for the file in messages. *out is set only on success. */
int cli_toml_parse(cli_toml_doc *out, const char *name, const char *text, size_t len);
void cli_toml_free(cli_toml_doc *doc); /* zeroes *doc; NULL ok */

/* An error about an entry, as every config reader words it:
 * "<name>:<line>: [<table>] <key>: <what>"; returns SL_EINVAL. */
int cli_toml_entry_error(const char *name, const cli_toml_entry *e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* A type's name with its article for messages: "a string", "an integer". */
const char *cli_toml_type_name(cli_toml_type type);

#endif
