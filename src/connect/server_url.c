/*
 * Server connection URLs (server_url.h), for every server sluice
 * talks to (MariaDB and Redis for the engine, Redis for mirrors): one
 * parser, and a form per server that says which schemes,
 * which default port, whether a user is required and what the path holds.
 *
 * The parse splits at the "://", the one '@' before the first '/' (an '@'
 * in a user or password must be %40, so the split is unambiguous), the
 * host's ':' port (after a ']' for IPv6) and the '/' before the path. Each
 * part is checked on its own so the error can say which one is wrong;
 * percent-decoding refuses a truncated or non-hex escape and a decoded NUL
 * (the client libraries take C strings). A '?' anywhere after the user
 * and password is a query string, refused: no form takes options in the
 * URL. Messages name the form's URL and the part, never a part's text,
 * so a password cannot leak into a log through them.
 */
#include <stdio.h>
#include <string.h>

#include "connect/server_url.h"

static const char *const mysql_schemes[] = {"mysql", "mariadb", NULL};
static const char *const redis_schemes[] = {"redis", NULL};

const sl_server_url_form sl_server_url_mysql = {
        .what = "MariaDB L3 url",
        .schemes = mysql_schemes,
        .usage = "mysql://USER[:PASSWORD]@HOST[:PORT]/DB",
        .default_port = 3306,
        .user_required = 1,
        .path = SL_SERVER_URL_PATH_NAME,
};

const sl_server_url_form sl_server_url_redis = {
        .what = "L2 url",
        .schemes = redis_schemes,
        .usage = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
        .default_port = 6379,
        .user_required = 0,
        .path = SL_SERVER_URL_PATH_NUMBER,
        .db_max = 1000000,
};

static int bad(const sl_server_url_form *f, const char *what)
{
	return sl_error_set(SL_EINVAL, "%s: %s (want %s)", f->what, what, f->usage);
}

/* [s, s + len) percent-decoded into a new string. */
static int decode(char **out, const char *s, size_t len, const char *what,
                  const sl_server_url_form *f)
{
	char *d = sl_malloc(len + 1), msg[96];
	size_t n = 0;

	if (d == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		uint8_t byte;
		size_t byte_len;
		if (s[i] != '%') {
			d[n++] = s[i];
			continue;
		}
		if (i + 2 >= len || sl_hex_decode(&byte, 1, &byte_len, s + i + 1, 2) != SL_OK) {
			snprintf(msg, sizeof(msg), "bad percent escape in the %s", what);
			sl_free(d);
			return bad(f, msg); /* replaces the hex decoder's message */
		}
		if (byte == 0) {
			snprintf(msg, sizeof(msg), "%%00 in the %s", what);
			sl_free(d);
			return bad(f, msg);
		}
		d[n++] = (char)byte;
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

static int parse_userinfo(sl_server_url *u, const char *s, size_t len, const sl_server_url_form *f)
{
	const char *colon = memchr(s, ':', len);
	size_t user_len = colon ? (size_t)(colon - s) : len;
	int rc;

	for (size_t i = 0; i < len; i++)
		if (s + i != colon && !userinfo_char(s[i]))
			return bad(f,
			           s + i < colon || colon == NULL
			                   ? "a character in the user that must be percent-encoded"
			                   : "a character in the password that must be "
			                     "percent-encoded");
	if (user_len == 0 && f->user_required)
		return bad(f, "no user name before '@'");
	if (user_len == 0 && colon == NULL)
		return bad(f, "an '@' with neither a user nor a password before it");
	if (user_len > 0 && (rc = decode(&u->user, s, user_len, "user", f)) != SL_OK)
		return rc;
	if (colon != NULL &&
	    (rc = decode(&u->password, colon + 1, len - user_len - 1, "password", f)) != SL_OK)
		return rc;
	return SL_OK;
}

static int parse_host_port(sl_server_url *u, const char *s, size_t len, const sl_server_url_form *f)
{
	const char *host = s, *port = NULL;
	size_t host_len;

	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL)
			return bad(f, "an IPv6 address without its ']'");
		host = s + 1;
		host_len = (size_t)(close - host);
		if (host_len < 2 || strspn(host, "0123456789abcdefABCDEF:.") < host_len)
			return bad(f, "a bad IPv6 address");
		if (close + 1 < s + len) {
			if (close[1] != ':')
				return bad(f, "something after the IPv6 address's ']' that is not "
				              ":PORT");
			port = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', len);
		host_len = colon ? (size_t)(colon - s) : len;
		port = colon ? colon + 1 : NULL;
		for (size_t i = 0; i < host_len; i++)
			if (!host_char(host[i]))
				return bad(f, "a bad character in the host");
	}
	if (host_len == 0)
		return bad(f, "no host");
	if (host_len > 253)
		return bad(f, "a host name over 253 characters");
	u->port = f->default_port;
	if (port != NULL) {
		size_t port_len = (size_t)(s + len - port);
		unsigned long v = 0;
		if (port_len == 0 || port_len > 5)
			return bad(f, "a bad port (want 1 to 65535)");
		for (size_t i = 0; i < port_len; i++) {
			if (port[i] < '0' || port[i] > '9')
				return bad(f, "a bad port (want 1 to 65535)");
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (v == 0 || v > 65535)
			return bad(f, "a bad port (want 1 to 65535)");
		u->port = (unsigned)v;
	}
	if ((u->host = sl_malloc(host_len + 1)) == NULL)
		return SL_ENOMEM;
	memcpy(u->host, host, host_len);
	u->host[host_len] = '\0';
	return SL_OK;
}

/* path: what follows the '/' after the host, NULL when there is none. */
static int parse_path(sl_server_url *u, const char *path, const sl_server_url_form *f)
{
	size_t len = path ? strlen(path) : 0;

	if (f->path == SL_SERVER_URL_PATH_NUMBER) {
		unsigned long v = 0;
		char msg[96];
		snprintf(msg, sizeof(msg), "a database that is not a number from 0 to %u",
		         f->db_max);
		for (size_t i = 0; i < len; i++) {
			if (path[i] < '0' || path[i] > '9')
				return bad(f, msg);
			if ((v = v * 10 + (unsigned long)(path[i] - '0')) > f->db_max)
				return bad(f, msg);
		}
		u->db = (unsigned)v;
		return SL_OK;
	}
	if (path == NULL)
		return bad(f, "no /DATABASE after the host");
	if (len == 0)
		return bad(f, "no database after the host");
	if (len > SL_SERVER_IDENT_MAX)
		return bad(f, "a database name over 64 characters");
	for (size_t i = 0; i < len; i++)
		if (!((path[i] >= 'a' && path[i] <= 'z') || (path[i] >= 'A' && path[i] <= 'Z') ||
		      (path[i] >= '0' && path[i] <= '9') || path[i] == '_' || path[i] == '$'))
			return bad(f, "a database name that is not a plain identifier"
			              " (letters, digits, _, $)");
	return (u->database = sl_strdup(path)) == NULL ? SL_ENOMEM : SL_OK;
}

/* The part after "SCHEME://", or NULL when no scheme of the form's matches. */
static const char *after_scheme(const char *url, const sl_server_url_form *f)
{
	for (const char *const *s = f->schemes; *s != NULL; s++) {
		size_t n = strlen(*s);
		if (strncmp(url, *s, n) == 0 && strncmp(url + n, "://", 3) == 0)
			return url + n + 3;
	}
	return NULL;
}

static int bad_scheme(const sl_server_url_form *f)
{
	char msg[160] = "it does not start with ";
	size_t n = strlen(msg);

	for (const char *const *s = f->schemes; *s != NULL && n < sizeof(msg); s++) {
		const char *sep = s == f->schemes ? "" : s[1] == NULL ? " or " : ", ";
		int w = snprintf(msg + n, sizeof(msg) - n, "%s%s://", sep, *s);
		n += w > 0 ? (size_t)w : 0;
	}
	return bad(f, msg);
}

int sl_server_url_parse(sl_server_url *out, const char *url, const sl_server_url_form *f)
{
	sl_server_url u = {0};
	const char *rest, *auth_end, *slash, *at = NULL, *host;
	int rc;

	if (f == NULL)
		return sl_error_set(SL_EINVAL, "server url: no form to parse it by");
	if (out == NULL || url == NULL || url[0] == '\0')
		return sl_error_set(SL_EINVAL, "%s: no connection URL", f->what);
	if (strlen(url) > SL_SERVER_URL_MAX)
		return sl_error_set(SL_ETOOLARGE, "%s: over %d bytes", f->what, SL_SERVER_URL_MAX);
	if ((rest = after_scheme(url, f)) == NULL)
		return bad_scheme(f);
	slash = strchr(rest, '/');
	auth_end = slash ? slash : rest + strlen(rest);
	for (const char *p = rest; p < auth_end; p++)
		if (*p == '@') {
			if (at != NULL)
				return bad(f,
				           "more than one '@' (encode one in a password as %40)");
			at = p;
		}
	if (at == NULL && f->user_required)
		return bad(f, "no USER@ before the host");
	host = at ? at + 1 : rest;
	if (strchr(host, '?') != NULL)
		return bad(f, "a query string (options are not taken in the url)");
	if (slash == NULL && f->path == SL_SERVER_URL_PATH_NAME)
		return bad(f, "no /DATABASE after the host");
	if ((at != NULL && (rc = parse_userinfo(&u, rest, (size_t)(at - rest), f)) != SL_OK) ||
	    (rc = parse_host_port(&u, host, (size_t)(auth_end - host), f)) != SL_OK ||
	    (rc = parse_path(&u, slash ? slash + 1 : NULL, f)) != SL_OK) {
		sl_server_url_clear(&u);
		return rc;
	}
	*out = u;
	return SL_OK;
}

void sl_server_url_clear(sl_server_url *u)
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
