/*
 * The direct-mode fetcher (libpq): it reads the data column of one row in
 * parts over its own connection (pg_link.c), as substring(...) in binary
 * result format, so bytes come back raw; a text column is read as
 * convert_to(data, 'UTF8').
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "connect/pg_link.h"
#include "sluice/connect.h"

typedef struct pg_fetcher {
	pg_link link;
	char *sql_read; /* $1 id, $2 1-based offset, $3 count */
	char *table_name;
	PGresult *lent; /* the last read's result, whose bytes the caller holds */
} pg_fetcher;

static void fetcher_free(pg_fetcher *f)
{
	if (f == NULL)
		return;
	PQclear(f->lent);
	pg_link_close(&f->link);
	sl_free(f->sql_read);
	sl_free(f->table_name);
	sl_free(f);
}

static int fetcher_read(void *self, const sl_row *row, uint64_t offset, size_t cap,
                        const uint8_t **data, size_t *n_read, uint64_t *total)
{
	pg_fetcher *f = self;
	PGresult *res = NULL;
	char from[24], count[24];
	const char *params[3] = {row->id, from, count};
	uint64_t size;
	size_t len;
	int rc;

	/* substring takes int positions; a bytea is at most 1 GB, so a
	 * clamped position past it still reads nothing */
	snprintf(from, sizeof(from), "%" PRIu64, offset < INT_MAX ? offset + 1 : (uint64_t)INT_MAX);
	snprintf(count, sizeof(count), "%zu", cap < INT_MAX ? cap : (size_t)INT_MAX);
	PQclear(f->lent); /* the caller is done with the previous read */
	f->lent = NULL;
	if ((rc = pg_link_exec(&f->link, &res, f->sql_read, 3, params, 1, "read data")) != SL_OK)
		goto cleanup;
	if (PQntuples(res) == 0) {
		rc = sl_error_set(SL_ENOTFOUND, "PostgreSQL: row %s is gone from %s", row->id,
		                  f->table_name);
		goto cleanup;
	}
	if (PQgetisnull(res, 0, 0)) {
		rc = sl_error_set(SL_ENOTFOUND, "PostgreSQL: row %s of %s has no data (NULL)",
		                  row->id, f->table_name);
		goto cleanup;
	}
	if (PQgetlength(res, 0, 0) != 8) {
		rc = sl_error_set(SL_ECORRUPT, "PostgreSQL read data: size is not an int8");
		goto cleanup;
	}
	size = sl_be64_get((const uint8_t *)PQgetvalue(res, 0, 0));
	len = (size_t)PQgetlength(res, 0, 1);
	if (len > cap) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "PostgreSQL read data: %zu bytes for a %zu-byte part", len, cap);
		goto cleanup;
	}
	*data = (const uint8_t *)PQgetvalue(res, 0, 1);
	*n_read = len;
	*total = size;
	f->lent = res;
	res = NULL;
cleanup:
	PQclear(res);
	return rc;
}

static void fetcher_close(void *self)
{
	fetcher_free(self);
}

static const sl_fetcher_ops fetcher_ops = {fetcher_read, fetcher_close};

int sl_pg_fetcher_open(sl_fetcher *out, const sl_pg_config *cfg)
{
	pg_fetcher *f = NULL;
	sl_buf table = SL_BUF_INIT(PG_SQL_MAX), expr = SL_BUF_INIT(PG_SQL_MAX),
	       sql = SL_BUF_INIT(PG_SQL_MAX);
	char *id = NULL;
	int rc;

	if ((f = sl_calloc(1, sizeof(*f))) == NULL)
		return SL_ENOMEM;
	if ((rc = pg_link_open(&f->link, cfg, "fetcher")) != SL_OK)
		goto cleanup;
	if ((f->table_name = sl_strdup(pg_name_or(cfg->table, "object_index"))) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = pg_append_table(&table, f->link.conn, f->table_name)) != SL_OK ||
	    (rc = pg_data_expression(&f->link, f->table_name, &expr, (const char *)table.data,
	                             pg_name_or(cfg->col_data, "data"))) != SL_OK ||
	    (rc = pg_quote_ident(&id, f->link.conn, pg_name_or(cfg->col_id, "id"))) != SL_OK)
		goto cleanup;
	/* The data expression is evaluated once, in the subquery (its LIMIT
	 * keeps the planner from pulling it up and evaluating it twice): a
	 * text column's conversion costs the whole value per part. A bytea
	 * stays a TOAST pointer there, so substring still reads only a slice. */
	if ((rc = sl_buf_printf(
	             &sql,
	             "SELECT octet_length(d)::bigint, substring(d from $2::int for $3::int)"
	             " FROM (SELECT %s AS d FROM %s WHERE %s = $1::uuid LIMIT 1) row_data",
	             (const char *)expr.data, (const char *)table.data, id)) != SL_OK)
		goto cleanup;
	f->sql_read = (char *)sql.data;
	sql.data = NULL;
	out->ops = &fetcher_ops;
	out->self = f;
	f = NULL;
cleanup:
	sl_free(id);
	sl_buf_free(&table);
	sl_buf_free(&expr);
	sl_buf_free(&sql);
	fetcher_free(f);
	return rc;
}
