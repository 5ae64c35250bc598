/* Key and namespace-name validation: every rule in DESIGN.md, both ways. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sluice/store.h"

static int valid(const char *key)
{
	return sl_key_validate(key, strlen(key)) == SL_OK;
}

static void test_accepts_ordinary_keys(void **state)
{
	(void)state;
	assert_true(valid("a"));
	assert_true(valid("comp/agent/trade/0b9c2a3e-1111-4222-8333-944445555666"));
	assert_true(valid("a.b/..c/c.."));
	assert_true(valid("ünïcode/日本/🙂"));
	assert_true(valid("with space/and-dash_under"));
}

static void test_rejects_bad_keys(void **state)
{
	(void)state;
	const char *bad[] = {"",      "/",    "a/",     "/a",    "a//b",  ".",    "..",
	                     "a/./b", "a/..", "../etc", "a\x01", "a\x7f", "a\tb", "a\nb"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sl_key_validate(bad[i], strlen(bad[i])), SL_EINVAL);
		assert_non_null(strstr(sl_error_last()->message, "invalid key"));
	}
	/* NUL inside the key. */
	assert_int_equal(sl_key_validate("a\0b", 3), SL_EINVAL);
	/* Malformed UTF-8: lone continuation, overlong '/', surrogate, > U+10FFFF,
	 * truncated sequence, C1 control U+0085. */
	const char *utf8[] = {"\x80",     "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	                      "\xe6\x97", "\xc2\x85"};
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
		assert_int_equal(sl_key_validate(utf8[i], strlen(utf8[i])), SL_EINVAL);
}

static void test_length_limit(void **state)
{
	(void)state;
	char key[SL_KEY_MAX + 2];
	memset(key, 'k', sizeof(key));
	assert_int_equal(sl_key_validate(key, SL_KEY_MAX), SL_OK);
	assert_int_equal(sl_key_validate(key, SL_KEY_MAX + 1), SL_EINVAL);
}

static void test_namespace_names(void **state)
{
	(void)state;
	assert_int_equal(sl_ns_name_validate("demo"), SL_OK);
	assert_int_equal(sl_ns_name_validate("a-b_c.d9"), SL_OK);
	assert_int_equal(sl_ns_name_validate(""), SL_EINVAL);
	assert_int_equal(sl_ns_name_validate(".hidden"), SL_EINVAL);
	assert_int_equal(sl_ns_name_validate("a/b"), SL_EINVAL);
	assert_int_equal(sl_ns_name_validate("a b"), SL_EINVAL);
	char name[SL_NS_NAME_MAX + 2];
	memset(name, 'n', sizeof(name));
	name[SL_NS_NAME_MAX + 1] = '\0';
	assert_int_equal(sl_ns_name_validate(name), SL_EINVAL);
	name[SL_NS_NAME_MAX] = '\0';
	assert_int_equal(sl_ns_name_validate(name), SL_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accepts_ordinary_keys),
	        cmocka_unit_test(test_rejects_bad_keys),
	        cmocka_unit_test(test_length_limit),
	        cmocka_unit_test(test_namespace_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
