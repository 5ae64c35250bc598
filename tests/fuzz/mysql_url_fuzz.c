/*
 * Fuzz target for the MariaDB L3 tier's connection URL
 * (sl_mysql_url_parse, src/engine/mysql_url.c).
 *
 * Input layout: the whole input is the URL (cut at a NUL byte, as a C
 * string would be).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: a
 * refused URL is SL_EINVAL or SL_ETOOLARGE with a message that says it is
 * about the MariaDB URL; a parsed one has a user, a host and a database
 * that are not empty, a port in 1..65535, a database of identifier
 * characters; and the parts written back as a URL (user and password
 * percent-encoded byte by byte, an IPv6 host in brackets) parse to the
 * same parts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mysql_url.h"

#define FUZZ_NAME "mysql_url_fuzz"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	sl_mysql_url u, again;
	sl_buf b = SL_BUF_INIT(4 * SL_MYSQL_URL_MAX);
	int rc;

	if (url == NULL)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	rc = sl_mysql_url_parse(&u, url);
	if (rc != SL_OK) {
		if (rc != SL_EINVAL && rc != SL_ETOOLARGE && rc != SL_ENOMEM)
			die("a refused URL with an unexpected code");
		if (rc != SL_ENOMEM && strstr(sl_error_last()->message, "MariaDB L3") == NULL)
			die("a refusal that does not say what it is about");
		free(url);
		return 0;
	}
	if (u.user == NULL || u.user[0] == '\0' || u.host == NULL || u.host[0] == '\0' ||
	    u.database == NULL || u.database[0] == '\0')
		die("a parsed URL with an empty part");
	if (u.port < 1 || u.port > 65535)
		die("a port out of range");
	if (strlen(u.database) > SL_MYSQL_IDENT_MAX ||
	    strspn(u.database,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") !=
	            strlen(u.database))
		die("a database name that is not an identifier");

	sl_buf_append_str(&b, "mysql://");
	encode(&b, u.user);
	if (u.password != NULL) {
		sl_buf_append_byte(&b, ':');
		encode(&b, u.password);
	}
	sl_buf_printf(&b, strchr(u.host, ':') ? "@[%s]:%u/%s" : "@%s:%u/%s", u.host, u.port,
	              u.database);
	if (b.len <= SL_MYSQL_URL_MAX) {
		if (sl_mysql_url_parse(&again, (const char *)b.data) != SL_OK)
			die("the parts written back do not parse");
		if (!same(u.user, again.user) || !same(u.password, again.password) ||
		    !same(u.host, again.host) || u.port != again.port ||
		    !same(u.database, again.database))
			die("the parts written back parse to other parts");
		sl_mysql_url_clear(&again);
	}
	sl_buf_free(&b);
	sl_mysql_url_clear(&u);
	free(url);
	return 0;
}
