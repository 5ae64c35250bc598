/* Connections of the PostgreSQL source and fetcher (pg_link.c): reads
 * that reconnect and run again when the connection is lost, identifiers
 * quoted, and the catalog's word on a column. Private to connect/. */
#ifndef SLUICE_CONNECT_PG_LINK_H
#define SLUICE_CONNECT_PG_LINK_H

#include <stdint.h>

#include <libpq-fe.h>

#include "sluice/connect.h"

typedef struct pg_link {
	PGconn *conn;
	char *url;
	uint32_t timeout_ms;
	uint32_t reconnect_ms;
	const char *role; /* "source" or "fetcher", for messages */
} pg_link;

/* Connects once (a wrong URL fails now, not after reconnect_ms). role
 * names the connection in messages: "source", "fetcher". */
int pg_link_open(pg_link *l, const sl_pg_config *cfg, const char *role);
void pg_link_close(pg_link *l);
/* Runs a read-only statement (text parameters; result_format 1 for
 * binary), reconnecting and running it again when the connection is lost,
 * for up to reconnect_ms. *out is the result. */
int pg_link_exec(pg_link *l, PGresult **out, const char *sql, int n_params,
                 const char *const *params, int result_format, const char *what);

const char *pg_name_or(const char *name, const char *fallback);
/* Appends name quoted as an identifier; "schema.table" as two. */
int pg_append_ident(sl_buf *b, PGconn *conn, const char *name, size_t len);
int pg_append_table(sl_buf *b, PGconn *conn, const char *table);
/* Quoted identifier as an owned string. */
int pg_quote_ident(char **out, PGconn *conn, const char *name);

/* The base type of column in table_sql, from the catalog: *present is 0
 * when the table has no such column. A table that does not exist is an
 * error, with the SQLSTATE PostgreSQL gives for it. */
int pg_column_type(pg_link *link, const char *table_name, const char *table_sql, const char *column,
                   int *present, char typname[64], char *category);
/* How to read the data column as bytes: itself when bytea, convert_to when
 * a string type. */
int pg_data_expression(pg_link *link, const char *table_name, sl_buf *expr, const char *table_sql,
                       const char *column);

#define PG_SQL_MAX              8192u
#define PG_DEFAULT_TIMEOUT_MS   30000u
#define PG_DEFAULT_RECONNECT_MS 60000u

#endif
