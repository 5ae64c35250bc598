/*
 * The connection URL of the MariaDB/MySQL L3 tier:
 *
 *   mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE     (also mariadb://)
 *
 * USER and PASSWORD may be percent-encoded (%40 for '@', %3A for ':');
 * HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT
 * defaults to 3306; DATABASE is a plain identifier (letters, digits, _, $).
 * No query string: the tier sets every option itself.
 */
#ifndef SLUICE_ENGINE_MYSQL_URL_H
#define SLUICE_ENGINE_MYSQL_URL_H

#include "sluice/base.h"

#define SL_MYSQL_URL_MAX   2048 /* bytes of a URL */
#define SL_MYSQL_IDENT_MAX 64   /* MariaDB's limit for a database or table name */

typedef struct sl_mysql_url {
	char *user;
	char *password; /* NULL when the URL has none */
	char *host;     /* without the brackets of an IPv6 address */
	unsigned port;
	char *database;
} sl_mysql_url;

/* Fills *out (the caller clears it with sl_mysql_url_clear) or returns
 * SL_EINVAL with a message naming what is wrong, SL_ETOOLARGE for a URL
 * over SL_MYSQL_URL_MAX. The message never repeats the password. */
int sl_mysql_url_parse(sl_mysql_url *out, const char *url);
void sl_mysql_url_clear(sl_mysql_url *u);

#endif
