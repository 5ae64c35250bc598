/*
 * The MariaDB L3 tier's URL (mysql_url.h): split at the "://", the one
 * '@' before the first '/' (an '@' in a user or password must be %40, so
 * the split is unambiguous), the host's ':' port (after a ']' for IPv6)
 * and the '/' before the database. Each part is checked on its own so the error can
 * say which one is wrong; percent-decoding refuses a truncated or non-hex
 * escape and a decoded NUL (the client library takes C strings).
 */
#include <stdio.h>
#include <string.h>

#include "engine/mysql_url.h"

static int bad(const char *what)
{
	return sl_error_set(SL_EINVAL,
	                    "MariaDB L3 url: %s (want mysql://USER[:PASSWORD]@HOST[:PORT]/DB)",
	                    what);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* [s, s + len) percent-decoded into a new string. */
static int decode(char **out, const char *s, size_t len, const char *what)
{
	char *d = sl_malloc(len + 1), msg[96];
	size_t n = 0;

	if (d == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] != '%') {
			d[n++] = s[i];
			continue;
		}
		if (i + 2 >= len || (hi = hex_digit(s[i + 1])) < 0 ||
		    (lo = hex_digit(s[i + 2])) < 0) {
			snprintf(msg, sizeof(msg), "bad percent escape in the %s", what);
			sl_free(d);
			return bad(msg);
		}
		if (hi == 0 && lo == 0) {
			snprintf(msg, sizeof(msg), "%%00 in the %s", what);
			sl_free(d);
			return bad(msg);
		}
		d[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[n] = '\0';
	*out = d;
	return SL_OK;
}

/* Characters RFC 3986 allows unencoded in userinfo, less ':' and '@'. */
static int userinfo_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("-._~!$&'()*+,;=%", c) != NULL;
}

static int host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

static int parse_userinfo(sl_mysql_url *u, const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t user_len = colon ? (size_t)(colon - s) : len;
	int rc;

	for (size_t i = 0; i < len; i++)
		if (s + i != colon && !userinfo_char(s[i]))
			return bad(s + i < colon || colon == NULL
			                   ? "a character in the user that must be percent-encoded"
			                   : "a character in the password that must be "
			                     "percent-encoded");
	if (user_len == 0)
		return bad("no user name before '@'");
	if ((rc = decode(&u->user, s, user_len, "user")) != SL_OK)
		return rc;
	if (colon != NULL &&
	    (rc = decode(&u->password, colon + 1, len - user_len - 1, "password")) != SL_OK)
		return rc;
	return SL_OK;
}

static int parse_host_port(sl_mysql_url *u, const char *s, size_t len)
{
	const char *host = s, *port = NULL;
	size_t host_len;

	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL)
			return bad("an IPv6 address without its ']'");
		host = s + 1;
		host_len = (size_t)(close - host);
		for (size_t i = 0; i < host_len; i++)
			if (hex_digit(host[i]) < 0 && host[i] != ':' && host[i] != '.')
				return bad("a bad IPv6 address");
		if (host_len < 2)
			return bad("a bad IPv6 address");
		if (close + 1 < s + len) {
			if (close[1] != ':')
				return bad(
				        "something after the IPv6 address's ']' that is not :PORT");
			port = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', len);
		host_len = colon ? (size_t)(colon - s) : len;
		port = colon ? colon + 1 : NULL;
		for (size_t i = 0; i < host_len; i++)
			if (!host_char(host[i]))
				return bad("a bad character in the host");
	}
	if (host_len == 0)
		return bad("no host");
	if (host_len > 253)
		return bad("a host name over 253 characters");
	u->port = 3306;
	if (port != NULL) {
		size_t port_len = (size_t)(s + len - port);
		unsigned long v = 0;
		if (port_len == 0 || port_len > 5)
			return bad("a bad port (want 1 to 65535)");
		for (size_t i = 0; i < port_len; i++) {
			if (port[i] < '0' || port[i] > '9')
				return bad("a bad port (want 1 to 65535)");
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (v == 0 || v > 65535)
			return bad("a bad port (want 1 to 65535)");
		u->port = (unsigned)v;
	}
	if ((u->host = sl_malloc(host_len + 1)) == NULL)
		return SL_ENOMEM;
	memcpy(u->host, host, host_len);
	u->host[host_len] = '\0';
	return SL_OK;
}

static int parse_database(sl_mysql_url *u, const char *s)
{
	size_t len = strlen(s);
	if (len == 0)
		return bad("no database after the host");
	if (len > SL_MYSQL_IDENT_MAX)
		return bad("a database name over 64 characters");
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '$'))
			return bad(s[i] == '?'
			                   ? "a query string (the tier takes no options in the url)"
			                   : "a database name that is not a plain identifier"
			                     " (letters, digits, _, $)");
	return (u->database = sl_strdup(s)) == NULL ? SL_ENOMEM : SL_OK;
}

int sl_mysql_url_parse(sl_mysql_url *out, const char *url)
{
	sl_mysql_url u = {0};
	const char *rest, *at, *slash;
	int rc;

	if (out == NULL || url == NULL || url[0] == '\0')
		return sl_error_set(SL_EINVAL, "MariaDB L3: no connection URL");
	if (strlen(url) > SL_MYSQL_URL_MAX)
		return sl_error_set(SL_ETOOLARGE, "MariaDB L3 url: over %d bytes",
		                    SL_MYSQL_URL_MAX);
	if (strncmp(url, "mysql://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "mariadb://", 10) == 0)
		rest = url + 10;
	else
		return bad("it does not start with mysql:// or mariadb://");
	if ((slash = strchr(rest, '/')) == NULL)
		return bad("no /DATABASE after the host");
	at = NULL;
	for (const char *p = rest; p < slash; p++)
		if (*p == '@') {
			if (at != NULL)
				return bad("more than one '@' (encode one in a password as %40)");
			at = p;
		}
	if (at == NULL)
		return bad("no USER@ before the host");
	if ((rc = parse_userinfo(&u, rest, (size_t)(at - rest))) != SL_OK ||
	    (rc = parse_host_port(&u, at + 1, (size_t)(slash - at - 1))) != SL_OK ||
	    (rc = parse_database(&u, slash + 1)) != SL_OK) {
		sl_mysql_url_clear(&u);
		return rc;
	}
	*out = u;
	return SL_OK;
}

void sl_mysql_url_clear(sl_mysql_url *u)
{
	if (u == NULL)
		return;
	sl_free(u->user);
	if (u->password != NULL)
		memset(u->password, 0, strlen(u->password));
	sl_free(u->password);
	sl_free(u->host);
	sl_free(u->database);
	memset(u, 0, sizeof(*u));
}
