/*
 * Logging: exact line format captured through sl_log_set_output(tmpfile),
 * level filtering, SLUICE_LOG (read in forked children, since the level is
 * read from the environment once per process), escaping, sl_log_quote, very
 * long lines, errno and sl_error left alone, and whole lines from threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/base.h"

static FILE *out;

static int open_capture(void **state)
{
	(void)state;
	out = tmpfile();
	assert_non_null(out);
	sl_log_set_output(out);
	sl_log_set_level(SL_LOG_INFO);
	return 0;
}

static int close_capture(void **state)
{
	(void)state;
	sl_log_set_output(NULL);
	fclose(out);
	out = NULL;
	return 0;
}

/* Everything logged since open_capture, NUL-terminated; caller frees. */
static char *captured(void)
{
	long n;
	char *text;
	fflush(out);
	n = ftell(out);
	assert_true(n >= 0);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	rewind(out);
	assert_int_equal(fread(text, 1, (size_t)n, out), (size_t)n);
	text[n] = '\0';
	return text;
}

/* Checks "ts=<24 chars> " and returns the rest of the line. */
static const char *after_ts(const char *line)
{
	assert_memory_equal(line, "ts=", 3);
	const char *ts = line + 3;
	assert_int_equal(ts[4], '-');
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[19], '.');
	assert_int_equal(ts[23], 'Z');
	assert_int_equal(ts[24], ' ');
	return ts + 25;
}

static int level_in_child(const char *env)
{
	pid_t pid = fork();
	int status;
	assert_true(pid >= 0);
	if (pid == 0) {
		if (env)
			setenv("SLUICE_LOG", env, 1);
		else
			unsetenv("SLUICE_LOG");
		_exit((int)sl_log_get_level());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Runs first, before this process has read its level. */
static void test_level_from_environment(void **state)
{
	(void)state;
	assert_int_equal(level_in_child(NULL), SL_LOG_INFO);
	assert_int_equal(level_in_child("debug"), SL_LOG_DEBUG);
	assert_int_equal(level_in_child("WARN"), SL_LOG_WARN);
	assert_int_equal(level_in_child("error"), SL_LOG_ERROR);
	assert_int_equal(level_in_child("off"), SL_LOG_OFF);
	assert_int_equal(level_in_child("loud"), SL_LOG_INFO);
}

static void test_level_parse(void **state)
{
	sl_log_level level = SL_LOG_ERROR;
	(void)state;
	assert_int_equal(sl_log_level_parse("debug", &level), SL_OK);
	assert_int_equal(level, SL_LOG_DEBUG);
	assert_int_equal(sl_log_level_parse("Info", &level), SL_OK);
	assert_int_equal(level, SL_LOG_INFO);
	assert_int_equal(sl_log_level_parse("warn", &level), SL_OK);
	assert_int_equal(level, SL_LOG_WARN);
	assert_int_equal(sl_log_level_parse("off", &level), SL_OK);
	assert_int_equal(level, SL_LOG_OFF);
	assert_int_equal(sl_log_level_parse("verbose", &level), SL_EINVAL);
	assert_int_equal(sl_log_level_parse("", &level), SL_EINVAL);
	assert_int_equal(sl_log_level_parse(NULL, &level), SL_EINVAL);
	assert_int_equal(level, SL_LOG_OFF);
}

static void test_line_format(void **state)
{
	(void)state;
	sl_log(SL_LOG_INFO, "store opened", "path=%s ops=%d", "/var/x", 12);
	sl_log(SL_LOG_ERROR, "no fields", NULL);
	sl_log(SL_LOG_WARN, "empty fields", "%s", ""); /* fields that format to nothing */
	char *text = captured();
	const char *line = text;

	line = after_ts(line);
	const char *want1 = "level=info msg=\"store opened\" path=/var/x ops=12\n";
	assert_memory_equal(line, want1, strlen(want1));
	line += strlen(want1);
	line = after_ts(line);
	const char *want2 = "level=error msg=\"no fields\"\n";
	assert_memory_equal(line, want2, strlen(want2));
	line += strlen(want2);
	line = after_ts(line);
	assert_string_equal(line, "level=warn msg=\"empty fields\"\n");
	free(text);
}

static void test_level_filter(void **state)
{
	(void)state;
	sl_log_set_level(SL_LOG_WARN);
	assert_int_equal(sl_log_get_level(), SL_LOG_WARN);
	sl_log(SL_LOG_DEBUG, "d", NULL);
	sl_log(SL_LOG_INFO, "i", NULL);
	sl_log(SL_LOG_WARN, "w", NULL);
	sl_log(SL_LOG_ERROR, "e", NULL);
	sl_log(SL_LOG_OFF, "never a message level", NULL);
	sl_log_set_level(SL_LOG_OFF);
	sl_log(SL_LOG_ERROR, "silenced", NULL);
	sl_log_set_level(SL_LOG_DEBUG);
	sl_log(SL_LOG_DEBUG, "d2", NULL);
	char *text = captured();
	assert_null(strstr(text, "msg=\"d\""));
	assert_null(strstr(text, "msg=\"i\""));
	assert_non_null(strstr(text, "level=warn msg=\"w\"\n"));
	assert_non_null(strstr(text, "level=error msg=\"e\"\n"));
	assert_null(strstr(text, "never"));
	assert_null(strstr(text, "silenced"));
	assert_non_null(strstr(text, "level=debug msg=\"d2\"\n"));
	size_t lines = 0;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 3);
	free(text);
}

static void test_message_escaping(void **state)
{
	(void)state;
	sl_log(SL_LOG_INFO, "say \"hi\"\\now\nnext\ttab\x01\x7f", NULL);
	char *text = captured();
	const char *line = after_ts(text);
	assert_string_equal(line,
	                    "level=info msg=\"say \\\"hi\\\"\\\\now\\nnext\\ttab\\x01\\x7f\"\n");
	free(text);
}

static void test_quote(void **state)
{
	char q[64];
	(void)state;
	assert_string_equal(sl_log_quote(q, sizeof(q), "plain"), "plain");
	assert_string_equal(sl_log_quote(q, sizeof(q), "a/b\\c"), "a/b\\c");
	assert_string_equal(sl_log_quote(q, sizeof(q), "a b"), "\"a b\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), ""), "\"\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), NULL), "\"\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), "k=v"), "\"k=v\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), "say \"x\""), "\"say \\\"x\\\"\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), "a\\b c"), "\"a\\\\b c\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), "line\nbreak"), "\"line\\nbreak\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), "bell\a"), "\"bell\\x07\"");
	assert_string_equal(sl_log_quote(q, sizeof(q), "h\xc3\xa9llo"), "h\xc3\xa9llo");
	/* The returned pointer is the buffer, for use inline in sl_log. */
	assert_ptr_equal(sl_log_quote(q, sizeof(q), "x"), q);
}

static void test_quote_truncation(void **state)
{
	char q[10];
	(void)state;
	/* Fits exactly (9 characters + NUL). */
	assert_string_equal(sl_log_quote(q, sizeof(q), "123456789"), "123456789");
	assert_string_equal(sl_log_quote(q, sizeof(q), "1234567890"), "123456...");
	assert_string_equal(sl_log_quote(q, sizeof(q), "1234567 90"), "\"1234...\"");
	/* An escape sequence is never cut in half. */
	assert_string_equal(sl_log_quote(q, sizeof(q), "123\"567 9"), "\"123...\"");
	/* Nor is a UTF-8 character. */
	assert_string_equal(sl_log_quote(q, sizeof(q), "12345\xc3\xa9xyz"), "12345...");
	assert_string_equal(sl_log_quote(q, 4, "abcdef"), "...");
	assert_string_equal(sl_log_quote(q, 3, "abcdef"), "..");
	assert_string_equal(sl_log_quote(q, 1, "abcdef"), "");
	assert_string_equal(sl_log_quote(q, 0, "abcdef"), "");

	char big[64];
	sl_log(SL_LOG_INFO, "quoted", "key=%s n=1", sl_log_quote(big, sizeof(big), "a b"));
	char *text = captured();
	assert_string_equal(after_ts(text), "level=info msg=\"quoted\" key=\"a b\" n=1\n");
	free(text);
}

static void test_long_line_is_truncated(void **state)
{
	size_t n = 200 * 1024;
	char *msg = malloc(n + 1);
	(void)state;
	assert_non_null(msg);
	memset(msg, 'm', n);
	msg[n] = '\0';
	sl_log(SL_LOG_INFO, msg, "after=%d", 1);
	sl_log(SL_LOG_INFO, "short", "v=%s", msg + n - 3000);
	char *text = captured();
	char *second = strchr(text, '\n');
	assert_non_null(second);
	second++;
	assert_true((size_t)(second - text) <= 64 * 1024);
	assert_memory_equal(second - strlen(" truncated=true\n"), " truncated=true\n",
	                    strlen(" truncated=true\n"));
	/* Lines longer than the stack buffer but under the cap are whole. */
	const char *rest = after_ts(second);
	assert_memory_equal(rest, "level=info msg=\"short\" v=mmm", 28);
	assert_int_equal(strlen(rest), strlen("level=info msg=\"short\" v=") + 3000 + 1);
	free(text);
	free(msg);
}

static void test_preserves_errno_and_error(void **state)
{
	(void)state;
	sl_error_set_cause(SL_EIO, "errno=28", "disk full");
	errno = ENOSPC;
	sl_log(SL_LOG_ERROR, "write failed", "err=%s", sl_error_last()->message);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(sl_error_last()->code, SL_EIO);
	assert_string_equal(sl_error_last()->message, "disk full");
	/* Allocation failures injected for the code under test do not hit
	 * the logger, which also uses no sl_malloc. */
	sl_alloc_fail_after(0, 1);
	char msg[4000];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	sl_log(SL_LOG_ERROR, msg, NULL);
	sl_alloc_fail_after(-1, 0);
	assert_int_equal(sl_error_last()->code, SL_EIO);
	char *text = captured();
	assert_non_null(strstr(text, "err=disk full\n"));
	assert_non_null(strstr(text, msg));
	free(text);
}

#define N_THREADS 8
#define N_LINES   300

static void *log_lines(void *arg)
{
	int id = (int)(intptr_t)arg;
	char payload[300];
	memset(payload, 'a' + id, sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < N_LINES; i++)
		sl_log(SL_LOG_INFO, "tick", "thread=%d i=%d payload=%s end=1", id, i, payload);
	return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
	pthread_t threads[N_THREADS];
	int counts[N_THREADS] = {0};
	(void)state;
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, log_lines, (void *)(intptr_t)i),
		                 0);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);

	char *text = captured();
	char *save = NULL;
	size_t n_lines = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int id = -1, i = -1, consumed = 0;
		const char *rest = after_ts(line);
		assert_int_equal(sscanf(rest, "level=info msg=\"tick\" thread=%d i=%d payload=%n",
		                        &id, &i, &consumed),
		                 2);
		assert_true(id >= 0 && id < N_THREADS);
		assert_int_equal(i, counts[id]); /* each thread's lines in order */
		counts[id]++;
		for (int k = 0; k < 299; k++)
			assert_int_equal(rest[consumed + k], 'a' + id);
		assert_string_equal(rest + consumed + 299, " end=1");
		n_lines++;
	}
	assert_int_equal(n_lines, N_THREADS * N_LINES);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_level_from_environment),
	        cmocka_unit_test(test_level_parse),
	        cmocka_unit_test_setup_teardown(test_line_format, open_capture, close_capture),
	        cmocka_unit_test_setup_teardown(test_level_filter, open_capture, close_capture),
	        cmocka_unit_test_setup_teardown(test_message_escaping, open_capture, close_capture),
	        cmocka_unit_test(test_quote),
	        cmocka_unit_test_setup_teardown(test_quote_truncation, open_capture, close_capture),
	        cmocka_unit_test_setup_teardown(test_long_line_is_truncated, open_capture,
	                                        close_capture),
	        cmocka_unit_test_setup_teardown(test_preserves_errno_and_error, open_capture,
	                                        close_capture),
	        cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, open_capture,
	                                        close_capture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
