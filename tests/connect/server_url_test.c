/*
 * Server connection URLs in both forms: what a good URL parses to (the
 * defaults, percent-decoding, IPv6), and for a bad one that the error is
 * SL_EINVAL (SL_ETOOLARGE past the cap), names the form's URL and the
 * part that is wrong, and never repeats the password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "connect/server_url.h"
#include "testutil.h"

typedef struct bad_case {
	const char *url;
	const char *says; /* a part of the message */
} bad_case;

/* Each URL is refused with SL_EINVAL, a message naming the form's URL and
 * saying `says`, and without the text "hunter2" (the tests' password). */
static void expect_bad(const sl_server_url_form *form, const bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sl_server_url u;
		int rc = sl_server_url_parse(&u, cases[i].url, form);
		const char *msg = sl_error_last()->message;
		if (rc != SL_EINVAL)
			fail_msg("%s: rc %d, not SL_EINVAL", cases[i].url, rc);
		if (strstr(msg, form->what) == NULL || strstr(msg, cases[i].says) == NULL)
			fail_msg("%s: '%s' does not say '%s: ... %s'", cases[i].url, msg,
			         form->what, cases[i].says);
		if (strstr(msg, "hunter2") != NULL)
			fail_msg("%s: '%s' repeats the password", cases[i].url, msg);
	}
}

static void test_mysql_good(void **state)
{
	sl_server_url u;
	(void)state;

	assert_int_equal(
	        sl_server_url_parse(&u, "mysql://a%40b:p%3Aw%2F@[::1]/d_1", &sl_server_url_mysql),
	        SL_OK);
	assert_string_equal(u.user, "a@b");
	assert_string_equal(u.password, "p:w/");
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 3306);
	assert_string_equal(u.database, "d_1");
	sl_server_url_clear(&u);
	sl_server_url_clear(&u); /* cleared twice is fine */

	assert_int_equal(sl_server_url_parse(&u, "mariadb://sluice@db.example-1.net:3307/S$x",
	                                     &sl_server_url_mysql),
	                 SL_OK);
	assert_string_equal(u.user, "sluice");
	assert_null(u.password);
	assert_string_equal(u.host, "db.example-1.net");
	assert_int_equal(u.port, 3307);
	assert_string_equal(u.database, "S$x");
	sl_server_url_clear(&u);

	/* an empty password is a password */
	assert_int_equal(sl_server_url_parse(&u, "mysql://u:@h/d", &sl_server_url_mysql), SL_OK);
	assert_string_equal(u.password, "");
	sl_server_url_clear(&u);
}

static void test_mysql_bad(void **state)
{
	static const bad_case cases[] = {
	        {"postgresql://sluice@127.0.0.1:5432/sluice", "mysql:// or mariadb://"},
	        {"mysql:/u@h/d", "mysql:// or mariadb://"},
	        {"mysql://127.0.0.1:3306/sluice", "USER@"},
	        {"mysql://:hunter2@h/d", "no user name"},
	        {"mysql://u:hunter2@127.0.0.1:99999/sluice", "port"},
	        {"mysql://u:hunter2@127.0.0.1:0/sluice", "port"},
	        {"mysql://u:hunter2@127.0.0.1:/sluice", "port"},
	        {"mysql://u:hunter2@127.0.0.1:3306", "DATABASE"},
	        {"mysql://u:hunter2@127.0.0.1:3306/", "no database"},
	        {"mysql://u:hunter2@127.0.0.1:3306/db?x=1", "query string"},
	        {"mysql://u:hunter2@127.0.0.1:3306/d-b", "plain identifier"},
	        {"mysql://s%zzuice@127.0.0.1/db", "percent escape in the user"},
	        {"mysql://u:p%4@127.0.0.1/db", "percent escape in the password"},
	        {"mysql://u:hunter2%00@127.0.0.1/db", "%00 in the password"},
	        {"mysql://u:hunter 2@127.0.0.1/db", "password that must be percent-encoded"},
	        {"mysql://u:hunter2@x@h/db", "more than one '@'"},
	        {"mysql://u:hunter2@/db", "no host"},
	        {"mysql://u:hunter2@h st/db", "character in the host"},
	        {"mysql://u:hunter2@[::1/db", "without its ']'"},
	        {"mysql://u:hunter2@[xyz]/db", "bad IPv6"},
	        {"mysql://u:hunter2@[::1]x/db", "not :PORT"},
	        {"", "no connection URL"},
	};
	(void)state;
	expect_bad(&sl_server_url_mysql, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_redis_good(void **state)
{
	sl_server_url u;
	(void)state;

	assert_int_equal(sl_server_url_parse(&u, "redis://127.0.0.1:6379", &sl_server_url_redis),
	                 SL_OK);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6379);
	assert_null(u.user);
	assert_null(u.password);
	assert_null(u.database);
	assert_int_equal(u.db, 0);
	sl_server_url_clear(&u);

	assert_int_equal(sl_server_url_parse(&u, "redis://h", &sl_server_url_redis), SL_OK);
	assert_string_equal(u.host, "h");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	sl_server_url_clear(&u);

	/* a password alone */
	assert_int_equal(sl_server_url_parse(&u, "redis://:pw@h:1/3", &sl_server_url_redis), SL_OK);
	assert_null(u.user);
	assert_string_equal(u.password, "pw");
	assert_string_equal(u.host, "h");
	assert_int_equal(u.port, 1);
	assert_int_equal(u.db, 3);
	sl_server_url_clear(&u);

	assert_int_equal(sl_server_url_parse(&u, "redis://u:pw@h", &sl_server_url_redis), SL_OK);
	assert_string_equal(u.user, "u");
	assert_string_equal(u.password, "pw");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	sl_server_url_clear(&u);

	assert_int_equal(
	        sl_server_url_parse(&u, "redis://:p%40ss@[::1]:6380/1000000", &sl_server_url_redis),
	        SL_OK);
	assert_string_equal(u.password, "p@ss");
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 1000000);
	sl_server_url_clear(&u);

	/* a trailing '/' is database 0 */
	assert_int_equal(sl_server_url_parse(&u, "redis://h/", &sl_server_url_redis), SL_OK);
	assert_int_equal(u.db, 0);
	sl_server_url_clear(&u);
}

static void test_redis_bad(void **state)
{
	static const bad_case cases[] = {
	        {"http://h", "redis://"},
	        {"mysql://u@h/d", "redis://"},
	        {"redis://h:99999", "port"},
	        {"redis://h:0", "port"},
	        {"redis://h:", "port"},
	        {"redis://h:63a9", "port"},
	        {"redis://:hunter2@h:65536/0", "port"},
	        {"redis://h/x", "not a number"},
	        {"redis://h/-1", "not a number"},
	        {"redis://h/1000001", "not a number"},
	        {"redis://h/99999999999999999999", "not a number"},
	        {"redis://", "no host"},
	        {"redis://:hunter2@", "no host"},
	        {"redis://:hunter2@:6379/0", "no host"},
	        {"redis://@h", "neither a user nor a password"},
	        {"redis://h?timeout=1", "query string"},
	        {"redis://:hunter2@h/0?x", "query string"},
	        {"redis://:hunter2%00@h", "%00 in the password"},
	        {"redis://:hunter2%4@h", "percent escape in the password"},
	        {"redis://:hunter2@x@h", "more than one '@'"},
	        {"redis://h st", "character in the host"},
	        {"redis://[::1", "without its ']'"},
	        {"", "no connection URL"},
	};
	(void)state;
	expect_bad(&sl_server_url_redis, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_length_cap(void **state)
{
	char url[SL_SERVER_URL_MAX + 2];
	sl_server_url u;
	(void)state;

	/* at the cap: parsed (a long password); one byte over: too large */
	snprintf(url, sizeof(url), "redis://:");
	size_t n = strlen(url);
	memset(url + n, 'p', SL_SERVER_URL_MAX - n - strlen("@h"));
	snprintf(url + SL_SERVER_URL_MAX - strlen("@h"), 3, "@h");
	assert_int_equal(strlen(url), SL_SERVER_URL_MAX);
	assert_int_equal(sl_server_url_parse(&u, url, &sl_server_url_redis), SL_OK);
	sl_server_url_clear(&u);
	url[SL_SERVER_URL_MAX - 2] = 'p';
	snprintf(url + SL_SERVER_URL_MAX - 1, 3, "@h");
	assert_int_equal(sl_server_url_parse(&u, url, &sl_server_url_redis), SL_ETOOLARGE);
	assert_non_null(strstr(sl_error_last()->message, "L2 url"));
	assert_int_equal(sl_server_url_parse(&u, url, &sl_server_url_mysql), SL_ETOOLARGE);
	assert_non_null(strstr(sl_error_last()->message, "MariaDB L3 url"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_mysql_good), cmocka_unit_test(test_mysql_bad),
	        cmocka_unit_test(test_redis_good), cmocka_unit_test(test_redis_bad),
	        cmocka_unit_test(test_length_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
