/*
 * The event sources (sluice/event_source.h) apart from a mirror:
 *   test_batch          batch rules: what add refuses, byte counts, clear;
 *   test_ndjson_parse   every rule of a line, good and bad (base64 edges,
 *                       versions, NUL bytes, duplicates), nothing added on
 *                       an error, whose message names the line and field;
 *   test_ndjson_file    a file of random lines (blank, CRLF) read in pieces
 *                       and from random positions, back and forth, equals
 *                       the lines parsed one by one; a partial last line
 *                       waits for its newline; head counts lines;
 *   test_ndjson_errors  a bad line stops a read before it and is the error
 *                       of the next; a line past the cap; past the end;
 *   test_ndjson_grows   a read waiting on a file sees a line appended by
 *                       another thread; with nothing appended it waits
 *                       wait_ms and says at_end;
 *   test_ndjson_stdin   standard input: positions from the first read, a
 *                       retry of the last read, poll with wait_ms, the last
 *                       line without newline at its end, no going back.
 * The store and node sources are in event_node_test.c.
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connect/event_internal.h"
#include "testutil.h"

static tu_rng rng;

/* ------------------------------------------------------------- helpers */

static void expect_same_event(const sl_event *a, const sl_event *b)
{
	assert_int_equal(a->pos, b->pos);
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->key_len, b->key_len);
	assert_memory_equal(a->key, b->key, a->key_len);
	assert_int_equal(a->key[a->key_len], '\0');
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->value_len, b->value_len);
	assert_int_equal(a->value == NULL, b->value == NULL);
	if (a->value_len)
		assert_memory_equal(a->value, b->value, a->value_len);
}

static int parse(sl_event_batch *b, uint64_t pos, const char *line)
{
	return sl_ndjson_event_parse(b, pos, line, strlen(line));
}

static void write_file(const char *path, const char *text, const char *mode)
{
	FILE *f = fopen(path, mode);
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------- batch */

static void test_batch(void **state)
{
	sl_event_batch b;
	sl_event_op op;
	(void)state;

	sl_event_batch_init(&b);
	assert_int_equal(sl_event_batch_add(&b, 0, SL_EVENT_SET, "", 0, NULL, 0, 1), SL_EINVAL);
	assert_int_equal(sl_event_batch_add(&b, 0, SL_EVENT_SET, "a\0b", 3, NULL, 0, 1), SL_EINVAL);
	assert_int_equal(sl_event_batch_add(&b, 0, SL_EVENT_SET, "a", 1, NULL, 0, 0), SL_EINVAL);
	assert_int_equal(sl_event_batch_add(&b, 0, SL_EVENT_DELETE, "a", 1, "x", 1, 1), SL_EINVAL);
	assert_int_equal(sl_event_batch_add(&b, 0, (sl_event_op)9, "a", 1, NULL, 0, 1), SL_EINVAL);
	assert_int_equal(b.n, 0);
	assert_ok(sl_event_batch_add(&b, 7, SL_EVENT_SET, "ab", 2, NULL, 0, 8));
	assert_ok(sl_event_batch_add(&b, 8, SL_EVENT_UPDATE, "c", 1, "xyz", 3, 9));
	assert_ok(sl_event_batch_add(&b, 9, SL_EVENT_DELETE, "c", 1, NULL, 0, 10));
	assert_int_equal(b.n, 3);
	assert_int_equal(b.bytes, 2 + 1 + 3 + 1);
	assert_non_null(b.events[0].value); /* an empty set still has a value */
	assert_int_equal(b.events[0].value_len, 0);
	assert_memory_equal(b.events[1].value, "xyz", 3);
	assert_null(b.events[2].value);
	assert_string_equal(b.events[0].key, "ab");
	assert_int_equal(sl_event_batch_full(&b, 0, 5, 1), 0); /* at least one */
	assert_int_equal(sl_event_batch_full(&b, 1, 5, 1), 1);
	assert_int_equal(sl_event_batch_full(&b, 5, 5, 1000), 1);
	sl_event_batch_truncate(&b, 1);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.bytes, 2);
	sl_event_batch_clear(&b);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.bytes, 0);
	assert_true(b.cap > 0);
	sl_event_batch_free(&b);

	assert_string_equal(sl_event_op_name(SL_EVENT_UPDATE), "update");
	assert_ok(sl_event_op_parse(&op, "delete"));
	assert_int_equal(op, SL_EVENT_DELETE);
	assert_int_equal(sl_event_op_parse(&op, "Set"), SL_EINVAL);
	sl_event_source_close(NULL);
}

/* ---------------------------------------------------------------- parse */

typedef struct bad_line {
	const char *line;
	const char *says; /* in the message */
} bad_line;

static void test_ndjson_parse(void **state)
{
	static const bad_line bad[] = {
	        {"{", "not JSON"},
	        {"[1]", "not a JSON object"},
	        {"\"key\"", "not JSON"},
	        {"{\"key\":\"a\"} x", "not JSON"},
	        {"{\"value\":\"a\"}", "\"key\" is missing"},
	        {"{\"key\":1}", "\"key\" must be a string"},
	        {"{\"key\":null}", "\"key\" must be a string"},
	        {"{\"key\":\"\"}", "\"key\" is empty"},
	        {"{\"key\":\"a\\u0000b\"}", "NUL"},
	        {"{\"key\":\"a\",\"key\":\"b\"}", "duplicate"},
	        {"{\"key\":\"a\",\"op\":\"put\"}", "\"op\""},
	        {"{\"key\":\"a\",\"op\":\"set\\u0000\"}", "\"op\""},
	        {"{\"key\":\"a\",\"op\":1}", "\"op\""},
	        {"{\"key\":\"a\",\"value\":\"x\",\"value_b64\":\"eA==\"}", "together"},
	        {"{\"key\":\"a\",\"op\":\"delete\",\"value\":\"\"}", "delete"},
	        {"{\"key\":\"a\",\"op\":\"delete\",\"value_b64\":\"\"}", "delete"},
	        {"{\"key\":\"a\",\"value\":1}", "\"value\" must be a string"},
	        {"{\"key\":\"a\",\"value_b64\":null}", "\"value_b64\" must be a string"},
	        {"{\"key\":\"a\",\"value_b64\":\"QQ\"}", "value_b64"},    /* no padding */
	        {"{\"key\":\"a\",\"value_b64\":\"QQ=\"}", "value_b64"},   /* short padding */
	        {"{\"key\":\"a\",\"value_b64\":\"Q===\"}", "value_b64"},  /* too much */
	        {"{\"key\":\"a\",\"value_b64\":\"QR==\"}", "value_b64"},  /* stray bits */
	        {"{\"key\":\"a\",\"value_b64\":\"QQ ==\"}", "value_b64"}, /* space */
	        {"{\"key\":\"a\",\"value_b64\":\"QQ==\\n\"}", "value_b64"},
	        {"{\"key\":\"a\",\"value_b64\":\"-_-_\"}", "value_b64"}, /* url-safe */
	        {"{\"key\":\"a\",\"value_b64\":\"QQ==QQ==\"}", "value_b64"},
	        {"{\"key\":\"a\",\"value_b64\":\"QUJD\\u0000\"}", "value_b64"},
	        {"{\"key\":\"a\",\"version\":0}", "\"version\""},
	        {"{\"key\":\"a\",\"version\":-3}", "\"version\""},
	        {"{\"key\":\"a\",\"version\":1.5}", "\"version\""},
	        {"{\"key\":\"a\",\"version\":1e3}", "\"version\""},
	        {"{\"key\":\"a\",\"version\":\"1\"}", "\"version\""},
	        {"{\"key\":\"a\",\"version\":9223372036854775808}", "\"version\""},
	        {"{\"key\":\"a\"}\xff", "not JSON"},
	};
	sl_event_batch b;
	(void)state;

	sl_event_batch_init(&b);
	/* Good lines. */
	assert_ok(parse(&b, 0, "{\"key\":\"a\"}"));
	assert_ok(parse(&b, 1,
	                " {\"op\":\"update\",\"key\":\"b/c\",\"value\":\"h\\u00e9\\u0000\"}\r"));
	assert_ok(parse(&b, 2, "{\"key\":\"d\",\"op\":\"delete\",\"version\":5,\"extra\":[1,{}]}"));
	assert_ok(parse(&b, 3, "{\"key\":\"e\",\"value_b64\":\"\"}"));
	assert_ok(parse(&b, 4, "{\"key\":\"f\",\"value_b64\":\"AA==\"}"));
	assert_ok(parse(&b, 5, "{\"key\":\"g\",\"value_b64\":\"+/+/AAA=\"}"));
	assert_ok(parse(&b, 6, "{\"key\":\"h\",\"version\":9223372036854775807,\"op\":\"set\"}"));
	assert_ok(parse(&b, 7, "{\"key\":\"\\u00ff\\t\",\"value\":\"\"}"));
	assert_int_equal(b.n, 8);
	assert_int_equal(b.events[0].op, SL_EVENT_SET);
	assert_int_equal(b.events[0].version, 1);
	assert_non_null(b.events[0].value);
	assert_int_equal(b.events[0].value_len, 0);
	assert_int_equal(b.events[1].op, SL_EVENT_UPDATE);
	assert_int_equal(b.events[1].value_len, 4);
	assert_memory_equal(b.events[1].value, "h\xc3\xa9\0", 4);
	assert_int_equal(b.events[1].version, 2);
	assert_int_equal(b.events[2].op, SL_EVENT_DELETE);
	assert_null(b.events[2].value);
	assert_int_equal(b.events[2].version, 5);
	assert_int_equal(b.events[3].value_len, 0);
	assert_int_equal(b.events[4].value_len, 1);
	assert_int_equal(b.events[4].value[0], 0);
	assert_int_equal(b.events[5].value_len, 5);
	assert_memory_equal(b.events[5].value, "\xfb\xff\xbf\0\0", 5);
	assert_int_equal(b.events[6].version, UINT64_C(9223372036854775807));
	assert_int_equal(b.events[7].key_len, 3);
	/* Blank lines are positions without events. */
	assert_ok(parse(&b, 8, ""));
	assert_ok(parse(&b, 9, " \t\r"));
	assert_int_equal(b.n, 8);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t bytes = b.bytes;
		int rc = sl_ndjson_event_parse(&b, 41, bad[i].line, strlen(bad[i].line));
		if (rc != SL_ECORRUPT)
			fail_msg("'%s' gave %d", bad[i].line, rc);
		if (!strstr(sl_error_last()->message, "line 42:") ||
		    !strstr(sl_error_last()->message, bad[i].says))
			fail_msg("'%s': message '%s' should say '%s'", bad[i].line,
			         sl_error_last()->message, bad[i].says);
		assert_int_equal(b.n, 8);
		assert_int_equal(b.bytes, bytes);
	}
	sl_event_batch_free(&b);
}

/* ----------------------------------------------------------------- file */

/* A random line (no newline), an event or blank. */
static void random_line(char *out, size_t cap, size_t i)
{
	static const char *const ops[] = {"", ",\"op\":\"set\"", ",\"op\":\"update\"",
	                                  ",\"op\":\"delete\""};
	static const char *const b64[] = {"", "AA==", "AAE=", "AAEC", "aGVsbG8gd29ybGQ="};
	uint64_t kind = tu_rng_below(&rng, 10), op = tu_rng_below(&rng, 4);
	if (kind == 0) {
		snprintf(out, cap, "%s", tu_rng_below(&rng, 2) ? "" : "  \t");
		return;
	}
	if (op == 3) {
		snprintf(out, cap, "{\"key\":\"k/%zu\"%s}", i, ops[op]);
	} else if (kind < 4) {
		snprintf(out, cap, "{\"key\":\"k/%zu\"%s,\"value_b64\":\"%s\",\"version\":%zu}", i,
		         ops[op], b64[tu_rng_below(&rng, 5)], 1000 + i);
	} else {
		snprintf(out, cap, "{\"key\":\"k/%zu\"%s,\"value\":\"v%llu\"}", i, ops[op],
		         (unsigned long long)tu_rng_below(&rng, 1000000));
	}
}

/* Read from `from` with the given limits and check the events against
 * the model (events at positions >= from, in order, none skipped). */
static void check_read(sl_event_source *s, const sl_event_batch *model, uint64_t n_lines,
                       uint64_t from, size_t max_events, size_t max_bytes)
{
	sl_event_batch got;
	uint64_t next;
	size_t first = 0;
	int at_end;

	sl_event_batch_init(&got);
	assert_ok(s->ops->read(s->self, from, max_events, max_bytes, 0, &got, &next, &at_end));
	while (first < model->n && model->events[first].pos < from)
		first++;
	assert_true(got.n <= max_events);
	assert_true(first + got.n <= model->n);
	for (size_t i = 0; i < got.n; i++)
		expect_same_event(&got.events[i], &model->events[first + i]);
	if (got.n == 0) {
		assert_int_equal(first, model->n);
		assert_int_equal(next, n_lines);
		assert_int_equal(at_end, 1);
	} else {
		assert_true(next > got.events[got.n - 1].pos);
		assert_true(first + got.n == model->n || next <= model->events[first + got.n].pos);
		if (got.n < max_events && got.bytes < max_bytes)
			assert_int_equal(first + got.n, model->n); /* stopped only at the end */
		assert_int_equal(at_end, 0);
	}
	sl_event_batch_free(&got);
}

static void test_ndjson_file(void **state)
{
	char *dir = tu_tempdir(), path[4200], line[256];
	sl_event_batch model, all;
	sl_event_source s;
	sl_event_source_head head;
	size_t n_lines = 400;
	uint64_t from = 0, next;
	int at_end;
	FILE *f;
	(void)state;

	snprintf(path, sizeof(path), "%s/events.ndjson", dir);
	sl_event_batch_init(&model);
	sl_event_batch_init(&all);
	f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n_lines; i++) {
		random_line(line, sizeof(line), i);
		assert_ok(parse(&model, i, line));
		fprintf(f, "%s%s", line, tu_rng_below(&rng, 4) == 0 ? "\r\n" : "\n");
	}
	fputs("{\"key\":\"partial\"", f); /* no newline yet */
	assert_int_equal(fclose(f), 0);

	assert_ok(sl_ndjson_source_open(&s, path));
	assert_string_equal(s.ops->kind, "ndjson");
	assert_true(strncmp(s.name, "ndjson:/", 8) == 0);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.known, 1);
	assert_int_equal(head.end, n_lines);

	/* In pieces, from the start. */
	for (;;) {
		size_t before = all.n;
		assert_ok(s.ops->read(s.self, from, 1 + tu_rng_below(&rng, 20),
		                      1 + tu_rng_below(&rng, 300), 0, &all, &next, &at_end));
		assert_true(next >= from);
		from = next;
		if (all.n == before) {
			assert_int_equal(at_end, 1);
			break;
		}
	}
	assert_int_equal(from, n_lines);
	assert_int_equal(all.n, model.n);
	for (size_t i = 0; i < model.n; i++)
		expect_same_event(&all.events[i], &model.events[i]);

	/* From anywhere, back and forth. */
	for (int i = 0; i < 300; i++)
		check_read(&s, &model, n_lines, tu_rng_below(&rng, n_lines + 1),
		           1 + tu_rng_below(&rng, 30), 1 + tu_rng_below(&rng, 2000));
	for (uint64_t p = 0; p <= n_lines; p++)
		check_read(&s, &model, n_lines, p, 3, 1 << 20);

	/* The partial line comes once its newline does. */
	write_file(path, ",\"value\":\"x\"}\r\n\n", "a");
	sl_event_batch_clear(&all);
	assert_ok(s.ops->read(s.self, n_lines, 10, 1 << 20, 0, &all, &next, &at_end));
	assert_int_equal(all.n, 1);
	assert_string_equal(all.events[0].key, "partial");
	assert_int_equal(all.events[0].pos, n_lines);
	assert_int_equal(next, n_lines + 2);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.end, n_lines + 2);
	sl_event_source_close(&s);
	sl_event_source_close(&s); /* twice is fine */

	/* A second source, starting in the middle. */
	assert_ok(sl_ndjson_source_open(&s, path));
	check_read(&s, &model, n_lines, n_lines / 2, 5, 1 << 20);
	sl_event_source_close(&s);

	assert_int_equal(sl_ndjson_source_open(&s, "/nonexistent/x.ndjson"), SL_ENOTFOUND);
	assert_int_equal(sl_ndjson_source_open(&s, dir), SL_EINVAL);
	sl_event_batch_free(&model);
	sl_event_batch_free(&all);
	tu_rmtree(dir);
	free(dir);
}

static void test_ndjson_errors(void **state)
{
	char *dir = tu_tempdir(), path[4200], state_text[8];
	sl_event_batch b;
	sl_event_source s;
	uint64_t next;
	int at_end;
	(void)state;

	snprintf(path, sizeof(path), "%s/bad.ndjson", dir);
	write_file(path, "{\"key\":\"a\"}\n\n{\"key\":\"b\",\"op\":\"erase\"}\n{\"key\":\"c\"}\n",
	           "w");
	sl_event_batch_init(&b);
	assert_ok(sl_ndjson_source_open(&s, path));
	assert_ok(s.ops->read(s.self, 0, 10, 1 << 20, 0, &b, &next, &at_end));
	assert_int_equal(b.n, 1);
	assert_int_equal(next, 2); /* stopped before the bad line */
	assert_int_equal(s.ops->read(s.self, next, 10, 1 << 20, 0, &b, &next, &at_end),
	                 SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "line 3: \"op\""));
	assert_int_equal(b.n, 1);
	assert_ok(s.ops->read(s.self, 3, 10, 1 << 20, 0, &b, &next, &at_end));
	assert_int_equal(b.n, 2);
	assert_int_equal(next, 4);
	assert_int_equal(s.ops->read(s.self, 5, 10, 1 << 20, 0, &b, &next, &at_end), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "past the end"));
	assert_int_equal(s.ops->read(s.self, 0, 0, 1 << 20, 0, &b, &next, &at_end), SL_EINVAL);
	assert_ok(s.ops->save_state(s.self, state_text, sizeof(state_text)));
	assert_string_equal(state_text, "");
	assert_int_equal(s.ops->restore_state(s.self, "x"), SL_ECORRUPT);

	/* Lines past the cap, complete or not. */
	sl_ndjson_source_set_line_max(&s, 12);
	assert_int_equal(s.ops->read(s.self, 2, 10, 1 << 20, 0, &b, &next, &at_end), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "line 3: longer than 12 bytes"));
	sl_event_source_close(&s);
	write_file(path, "{\"key\":\"a\"}\n{\"key\":\"abcdefgh", "w");
	assert_ok(sl_ndjson_source_open(&s, path));
	sl_ndjson_source_set_line_max(&s, 12);
	sl_event_batch_clear(&b);
	assert_ok(s.ops->read(s.self, 0, 10, 1 << 20, 0, &b, &next, &at_end));
	assert_int_equal(b.n, 1);
	assert_int_equal(s.ops->read(s.self, 1, 10, 1 << 20, 0, &b, &next, &at_end), SL_ECORRUPT);
	assert_non_null(strstr(sl_error_last()->message, "line 2: longer than"));
	sl_event_source_close(&s);

	/* A file cut below what was read. */
	write_file(path, "{\"key\":\"a\"}\n{\"key\":\"b\"}\n", "w");
	assert_ok(sl_ndjson_source_open(&s, path));
	assert_ok(s.ops->read(s.self, 0, 10, 1 << 20, 0, &b, &next, &at_end));
	assert_int_equal(truncate(path, 3), 0);
	assert_int_equal(s.ops->read(s.self, next, 10, 1 << 20, 0, &b, &next, &at_end), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "truncated"));
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	tu_rmtree(dir);
	free(dir);
}

typedef struct appender {
	const char *path;
	unsigned delay_ms;
} appender;

static void *append_later(void *arg)
{
	appender *a = arg;
	sl_sleep_ms(a->delay_ms);
	write_file(a->path, "{\"key\":\"late\"}\n", "a");
	return NULL;
}

static void test_ndjson_grows(void **state)
{
	char *dir = tu_tempdir(), path[4200];
	sl_event_batch b;
	sl_event_source s;
	sl_event_source_head head;
	appender a = {path, 150};
	pthread_t t;
	uint64_t next, started;
	int at_end;
	(void)state;

	snprintf(path, sizeof(path), "%s/grows.ndjson", dir);
	write_file(path, "{\"key\":\"a\"}\n", "w");
	sl_event_batch_init(&b);
	assert_ok(sl_ndjson_source_open(&s, path));
	assert_ok(s.ops->read(s.self, 0, 10, 1 << 20, 0, &b, &next, &at_end));
	assert_int_equal(next, 1);

	/* Nothing appended: waits about wait_ms, then at_end. */
	started = sl_clock_mono_ns();
	assert_ok(s.ops->read(s.self, 1, 10, 1 << 20, 80, &b, &next, &at_end));
	assert_true(sl_clock_mono_ns() - started >= UINT64_C(70) * 1000000);
	assert_int_equal(b.n, 1);
	assert_int_equal(at_end, 1);
	assert_int_equal(next, 1);

	/* Appended while the read waits. */
	assert_int_equal(pthread_create(&t, NULL, append_later, &a), 0);
	started = sl_clock_mono_ns();
	assert_ok(s.ops->read(s.self, 1, 10, 1 << 20, 5000, &b, &next, &at_end));
	assert_true(sl_clock_mono_ns() - started < UINT64_C(4000) * 1000000);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.events[1].key, "late");
	assert_int_equal(b.events[1].pos, 1);
	assert_int_equal(next, 2);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.end, 2);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	tu_rmtree(dir);
	free(dir);
}

static void test_ndjson_stdin(void **state)
{
	int fds[2], saved = dup(STDIN_FILENO), at_end;
	const char *first = "{\"key\":\"a\"}\n\n{\"key\":\"b\",\"op\":\"delete\"}\n";
	const char *rest = "{\"key\":\"c\"}\n{\"key\":\"d\"}";
	sl_event_source_head head;
	sl_event_batch b;
	sl_event_source s;
	uint64_t next, started;
	(void)state;

	assert_true(saved >= 0);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
	close(fds[0]);
	sl_event_batch_init(&b);
	assert_ok(sl_ndjson_source_open(&s, "-"));
	assert_string_equal(s.name, "ndjson:-");
	assert_int_equal(write(fds[1], first, strlen(first)), (ssize_t)strlen(first));

	/* Positions count from the first read's. */
	assert_ok(s.ops->read(s.self, 100, 10, 1 << 20, 1000, &b, &next, &at_end));
	assert_int_equal(b.n, 2);
	assert_int_equal(b.events[0].pos, 100);
	assert_int_equal(b.events[0].version, 101);
	assert_int_equal(b.events[1].pos, 102);
	assert_int_equal(next, 103);
	/* The same read again (a retry) gives the same events. */
	sl_event_batch_clear(&b);
	assert_ok(s.ops->read(s.self, 101, 10, 1 << 20, 0, &b, &next, &at_end));
	assert_int_equal(b.n, 1);
	assert_int_equal(b.events[0].pos, 102);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.known, 0);

	/* Nothing there: poll waits wait_ms. */
	started = sl_clock_mono_ns();
	assert_ok(s.ops->read(s.self, 103, 10, 1 << 20, 60, &b, &next, &at_end));
	assert_true(sl_clock_mono_ns() - started >= UINT64_C(50) * 1000000);
	assert_int_equal(b.n, 1);
	assert_int_equal(at_end, 0);
	assert_int_equal(next, 103);

	/* At its end, the last line needs no newline. */
	assert_int_equal(write(fds[1], rest, strlen(rest)), (ssize_t)strlen(rest));
	close(fds[1]);
	sl_event_batch_clear(&b);
	for (next = 103; b.n < 2;) {
		assert_ok(s.ops->read(s.self, next, 10, 1 << 20, 1000, &b, &next, &at_end));
		assert_int_equal(at_end, 0);
	}
	assert_string_equal(b.events[1].key, "d");
	assert_int_equal(b.events[1].pos, 104);
	assert_int_equal(next, 105);
	assert_ok(s.ops->read(s.self, 105, 10, 1 << 20, 1000, &b, &next, &at_end));
	assert_int_equal(at_end, 1);
	assert_int_equal(b.n, 2);
	assert_int_equal(s.ops->read(s.self, 101, 10, 1 << 20, 0, &b, &next, &at_end), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "cannot go back"));
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_batch),        cmocka_unit_test(test_ndjson_parse),
	        cmocka_unit_test(test_ndjson_file),  cmocka_unit_test(test_ndjson_errors),
	        cmocka_unit_test(test_ndjson_grows), cmocka_unit_test(test_ndjson_stdin),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("event_source_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
