/*
 * The connection URL of a server the engine talks to, one parser for all
 * of them; a form says what a server's URL looks like:
 *
 *   mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE    (sl_server_url_mysql;
 *                                                     also mariadb://)
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]      (sl_server_url_redis)
 *
 * USER and PASSWORD may be percent-encoded (%40 for '@', %3A for ':');
 * HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT
 * defaults to the form's. The path is the form's: a plain identifier
 * (letters, digits, _, $) for MariaDB, a decimal number for Redis. No
 * query string: the callers set every option themselves.
 */
#ifndef SLUICE_ENGINE_SERVER_URL_H
#define SLUICE_ENGINE_SERVER_URL_H

#include "sluice/base.h"

#define SL_SERVER_URL_MAX   2048 /* bytes of a URL */
#define SL_SERVER_IDENT_MAX 64   /* MariaDB's limit for a database or table name */

typedef enum sl_server_url_path {
	SL_SERVER_URL_PATH_NAME = 1,  /* /DATABASE, required, an identifier */
	SL_SERVER_URL_PATH_NUMBER = 2 /* [/N], optional, 0 to db_max */
} sl_server_url_path;

typedef struct sl_server_url_form {
	const char *what;           /* names the URL in messages: "L2 url" */
	const char *const *schemes; /* "mysql", ...; NULL-terminated */
	const char *usage;          /* the shape, shown in every error */
	unsigned default_port;
	int user_required;
	sl_server_url_path path;
	unsigned db_max; /* SL_SERVER_URL_PATH_NUMBER only */
} sl_server_url_form;

extern const sl_server_url_form sl_server_url_mysql; /* the MariaDB L3 tier */
extern const sl_server_url_form sl_server_url_redis; /* L2 */

typedef struct sl_server_url {
	char *user;     /* NULL when the URL has none */
	char *password; /* NULL when the URL has none */
	char *host;     /* without the brackets of an IPv6 address */
	unsigned port;
	char *database; /* SL_SERVER_URL_PATH_NAME: the name; else NULL */
	unsigned db;    /* SL_SERVER_URL_PATH_NUMBER: the number, 0 by default */
} sl_server_url;

/* Fills *out (the caller clears it with sl_server_url_clear) or returns
 * SL_EINVAL with a message that names the form's URL and what is wrong,
 * SL_ETOOLARGE for a URL over SL_SERVER_URL_MAX. The message never
 * repeats the password (nor any other part of the URL). */
int sl_server_url_parse(sl_server_url *out, const char *url, const sl_server_url_form *form);
/* Frees the parts (wiping the password); a cleared url may be cleared again. */
void sl_server_url_clear(sl_server_url *u);

#endif
