/*
 * PostgreSQL for the C integration tests (after services.h and cmocka):
 * an admin connection to the server scripts/services.sh started, and SQL
 * run on it that fails the test when the server refuses it.
 */
#ifndef SLUICE_TEST_PG_TESTUTIL_H
#define SLUICE_TEST_PG_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

/* A connection to url with notices quieted; the test fails without one. */
static inline PGconn *tu_pg_connect(const char *url)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

/* Runs SQL on c; the first value of the first row (or "") into out when out
 * is not NULL. */
static inline void tu_sql(PGconn *c, char *out, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static inline void tu_sql(PGconn *c, char *out, size_t cap, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	PGresult *res;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	if (out != NULL)
		snprintf(out, cap, "%s",
		         PQntuples(res) > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
}

/* The first value of SQL's first row on c, as an integer. */
static inline long tu_sql_long(PGconn *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static inline long tu_sql_long(PGconn *c, const char *fmt, ...)
{
	char sql[4096], text[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	tu_sql(c, text, sizeof(text), "%s", sql);
	return strtol(text, NULL, 10);
}

#endif
