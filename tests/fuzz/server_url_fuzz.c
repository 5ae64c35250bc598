/*
 * Fuzz target for the engine's server connection URLs
 * (sl_server_url_parse, src/engine/server_url.c).
 *
 * Input layout: the whole input is the URL (cut at a NUL byte, as a C
 * string would be). Every input is parsed in both forms, MariaDB's and
 * Redis's, so each corpus file exercises both (a mysql:// URL is a bad
 * scheme to the Redis form and the other way round).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer, in
 * each form: a refused URL is SL_EINVAL or SL_ETOOLARGE with a message
 * that names the form's URL; a parsed one has a host that is not empty, a
 * port in 1..65535, a user that is not empty when there is one (always,
 * in a form that requires it), a database name of identifier characters
 * (MariaDB) or a database number within the form's bound (Redis); and the
 * parts written back as a URL (user and password percent-encoded byte by
 * byte, an IPv6 host in brackets) parse to the same parts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect/server_url.h"

#define FUZZ_NAME "server_url_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void encode(sl_buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		if (sl_buf_printf(b, "%%%02X", (unsigned char)*s) != SL_OK)
			die("encode");
}

static int same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_parts(const sl_server_url *u, const sl_server_url_form *form)
{
	if (u->host == NULL || u->host[0] == '\0')
		die("a parsed URL with an empty host");
	if ((u->user == NULL && form->user_required) || (u->user != NULL && u->user[0] == '\0'))
		die("a parsed URL with a missing or empty user");
	if (u->port < 1 || u->port > 65535)
		die("a port out of range");
	if (form->path == SL_SERVER_URL_PATH_NAME) {
		if (u->database == NULL || u->database[0] == '\0' || u->db != 0)
			die("a parsed URL without its database name");
		if (strlen(u->database) > SL_SERVER_IDENT_MAX ||
		    strspn(u->database,
		           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") !=
		            strlen(u->database))
			die("a database name that is not an identifier");
	} else if (u->database != NULL || u->db > form->db_max) {
		die("a database number out of range, or a name where a number goes");
	}
}

/* The parts written back as a URL of the form parse to the same parts. */
static void check_round_trip(const sl_server_url *u, const sl_server_url_form *form)
{
	sl_buf b = SL_BUF_INIT(4 * SL_SERVER_URL_MAX);
	sl_server_url again;

	sl_buf_printf(&b, "%s://", form->schemes[0]);
	if (u->user != NULL)
		encode(&b, u->user);
	if (u->password != NULL) {
		sl_buf_append_byte(&b, ':');
		encode(&b, u->password);
	}
	if (u->user != NULL || u->password != NULL)
		sl_buf_append_byte(&b, '@');
	sl_buf_printf(&b, strchr(u->host, ':') ? "[%s]:%u/" : "%s:%u/", u->host, u->port);
	if (form->path == SL_SERVER_URL_PATH_NAME)
		sl_buf_append_str(&b, u->database);
	else
		sl_buf_printf(&b, "%u", u->db);
	if (b.len <= SL_SERVER_URL_MAX) {
		if (sl_server_url_parse(&again, (const char *)b.data, form) != SL_OK)
			die("the parts written back do not parse");
		if (!same(u->user, again.user) || !same(u->password, again.password) ||
		    !same(u->host, again.host) || u->port != again.port ||
		    !same(u->database, again.database) || u->db != again.db)
			die("the parts written back parse to other parts");
		sl_server_url_clear(&again);
	}
	sl_buf_free(&b);
}

static void one_form(const char *url, const sl_server_url_form *form)
{
	sl_server_url u;
	int rc = sl_server_url_parse(&u, url, form);

	if (rc != SL_OK) {
		if (rc != SL_EINVAL && rc != SL_ETOOLARGE && rc != SL_ENOMEM)
			die("a refused URL with an unexpected code");
		if (rc != SL_ENOMEM && strstr(sl_error_last()->message, form->what) == NULL)
			die("a refusal that does not say what it is about");
		return;
	}
	check_parts(&u, form);
	check_round_trip(&u, form);
	sl_server_url_clear(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);

	if (url == NULL)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	one_form(url, &sl_server_url_mysql);
	one_form(url, &sl_server_url_redis);
	free(url);
	return 0;
}
