/*
 * The Redis stream event source (src/connect/event_redis.c):
 *   test_ids            entry ids to positions and back, the order kept
 *                       (seeded), and the ids refused;
 *   test_entry_parse    fields to events: the defaults, every op, binary
 *                       values, the version field, ignored fields, and
 *                       every refusal naming the entry;
 *   test_options        what open refuses, and the name (no password);
 * and on a real Redis 7 (scripts/services.sh), one for the whole run:
 *   test_read           XADDed entries as events, the version field, head,
 *                       the state's text, a database other than 0;
 *   test_limits         max_events, max_bytes, resuming from pos + 1;
 *   test_wait           a read that waits wakes when another connection
 *                       adds an entry; one that times out returns nothing;
 *   test_trim_gap       a trim past the position is a gap that ends right
 *                       after the last entry removed, and reading goes on;
 *   test_xdel_gap       an XDEL ahead of the position is a gap after the
 *                       entries kept before it; one behind is not;
 *   test_trims_behind   trims that take only entries already read (a
 *                       stream of MAXLEN 1, emptied and written again,
 *                       MINID at the position) are no gap; emptied past
 *                       the position, or a reader behind a MAXLEN, is one;
 *   test_restart        the state resumes the count with the position;
 *                       without it a trim past the position is a gap that
 *                       says it may be empty;
 *   test_missing_and_wrongtype  a missing stream is empty; a key of another
 *                       type is refused; a position past the stream's end;
 *   test_bad_entries    entries that do not map are SL_ECORRUPT naming
 *                       the id, after the good ones before them;
 *   test_auth           credentials refused are SL_EAUTH, right ones read;
 *   test_redis_gone     a closed port, a killed connection and a paused
 *                       server are transient errors, and reading resumes.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "connect/event_internal.h"
#include "services.h"
#include "testutil.h"

static tu_services svc;
static redisContext *cli; /* the test's own connection */

/* ------------------------------------------------------------- helpers */

/* A command that must not fail; the reply, for the caller to free. */
static redisReply *cmd_argv(int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(cli, argc, argv, lens);
	if (!r || r->type == REDIS_REPLY_ERROR)
		fail_msg("redis %s: %s", argv[0], r ? r->str : cli->errstr);
	return r;
}

/* A command of text words, NULL-terminated. */
static void cmd(const char *word, ...)
{
	const char *argv[32];
	size_t lens[32];
	int argc = 0;
	va_list ap;

	va_start(ap, word);
	for (const char *w = word; w; w = va_arg(ap, const char *)) {
		argv[argc] = w;
		lens[argc++] = strlen(w);
	}
	va_end(ap);
	freeReplyObject(cmd_argv(argc, argv, lens));
}

/* XADD stream * with n fields and values (lens[i] bytes each); the id
 * Redis gave into id. */
static void xadd_bin(char id[SL_REDIS_ID_MAX], const char *stream, int n, const char **fv,
                     const size_t *lens)
{
	const char *argv[32] = {"XADD", stream, "*"};
	size_t argl[32] = {4, strlen(stream), 1};
	redisReply *r;

	for (int i = 0; i < n; i++) {
		argv[3 + i] = fv[i];
		argl[3 + i] = lens[i];
	}
	r = cmd_argv(3 + n, argv, argl);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	snprintf(id, SL_REDIS_ID_MAX, "%s", r->str);
	freeReplyObject(r);
}

/* XADD stream * with text fields and values, NULL-terminated. */
static void xadd(char id[SL_REDIS_ID_MAX], const char *stream, ...)
{
	const char *fv[28];
	size_t lens[28];
	int n = 0;
	va_list ap;

	va_start(ap, stream);
	for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *)) {
		fv[n] = w;
		lens[n++] = strlen(w);
	}
	va_end(ap);
	xadd_bin(id, stream, n, fv, lens);
}

static uint64_t pos_of(const char *id)
{
	uint64_t pos = 0;
	assert_ok(sl_redis_id_to_pos(&pos, id));
	return pos;
}

static void open_url(sl_event_source *s, const char *url, const char *stream,
                     const char *version_field)
{
	sl_redis_source_options o;
	sl_redis_source_options_init(&o);
	o.url = url;
	o.stream = stream;
	o.version_field = version_field;
	o.timeout_ms = 2000;
	assert_ok(sl_redis_source_open(s, &o));
}

static void open_src(sl_event_source *s, const char *stream)
{
	open_url(s, svc.redis_url, stream, NULL);
}

static int rd(sl_event_source *s, uint64_t from, size_t max_events, size_t max_bytes,
              uint64_t wait_ms, sl_event_batch *b, uint64_t *next)
{
	int at_end = -1, rc;
	*next = UINT64_MAX;
	rc = s->ops->read(s->self, from, max_events, max_bytes, wait_ms, b, next, &at_end);
	assert_int_equal(at_end, 0);
	return rc;
}

static void expect_event(const sl_event *e, const char *id, sl_event_op op, const char *key,
                         const void *value, size_t value_len, uint64_t version)
{
	assert_int_equal(e->pos, pos_of(id));
	assert_int_equal(e->op, op);
	assert_int_equal(e->key_len, strlen(key));
	assert_memory_equal(e->key, key, e->key_len);
	if (op == SL_EVENT_DELETE) {
		assert_null(e->value);
	} else {
		assert_non_null(e->value);
		assert_int_equal(e->value_len, value_len);
		if (value_len)
			assert_memory_equal(e->value, value, value_len);
	}
	assert_int_equal(e->version, version ? version : e->pos + 1);
}

static void expect_message(const char *part)
{
	if (!strstr(sl_error_last()->message, part))
		fail_msg("message '%s' does not hold '%s'", sl_error_last()->message, part);
}

/* ----------------------------------------------------------------- ids */

static void test_ids(void **state)
{
	static const struct {
		const char *id;
		uint64_t pos;
	} good[] = {
	        {"0-0", 0},
	        {"0-1", 1},
	        {"1-0", 1u << 20},
	        {"5-1048575", (5u << 20) | 1048575u},
	        {"1526919030474-55", (UINT64_C(1526919030474) << 20) | 55},
	        {"17592186044415-1048574", UINT64_MAX - 1},
	};
	static const char *const bad[] = {
	        "",
	        "1",
	        "1-",
	        "-1",
	        "a-1",
	        "01-1",
	        "1-01",
	        "1-2-3",
	        " 1-2",
	        "1-2 ",
	        "+1-2",
	        "1-+2",
	        "1--2",
	        "1-0x2",
	        "5-1048576",
	        "5-9999999",
	        "17592186044416-0",
	        "17592186044415-1048575",
	        "18446744073709551616-0",
	        "1-18446744073709551616",
	        "99999999999999999999999-1",
	};
	char text[SL_REDIS_ID_MAX];
	tu_rng rng = tu_rng_seeded("test_ids");
	uint64_t pos;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_ok(sl_redis_id_to_pos(&pos, good[i].id));
		assert_int_equal(pos, good[i].pos);
		sl_redis_pos_to_id(text, sizeof(text), pos);
		assert_string_equal(text, good[i].id);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pos = 7;
		if (sl_redis_id_to_pos(&pos, bad[i]) != SL_ECORRUPT)
			fail_msg("id '%s' was taken", bad[i]);
		assert_int_equal(pos, 7);
		assert_memory_equal(sl_error_last()->message, "stream entry ", 13);
	}
	assert_int_equal(sl_redis_id_to_pos(&pos, NULL), SL_ECORRUPT);
	assert_int_equal(sl_redis_id_to_pos(&pos, "5-1048576"), SL_ECORRUPT);
	expect_message("5-1048576");
	expect_message("2^20");
	/* every position is an id and back; positions are ordered as ids */
	sl_redis_pos_to_id(text, sizeof(text), UINT64_MAX);
	assert_string_equal(text, "17592186044415-1048575");
	for (int i = 0; i < 10000; i++) {
		uint64_t ms[2], seq[2], p[2];
		for (int k = 0; k < 2; k++) {
			ms[k] = tu_rng_below(&rng, 4) == 0
			                ? tu_rng_below(&rng, 3)
			                : tu_rng_below(&rng, (UINT64_C(1) << 44) - 1);
			seq[k] = tu_rng_below(&rng, 2) ? tu_rng_below(&rng, 3)
			                               : tu_rng_below(&rng, UINT64_C(1) << 20);
			snprintf(text, sizeof(text), "%llu-%llu", (unsigned long long)ms[k],
			         (unsigned long long)seq[k]);
			assert_ok(sl_redis_id_to_pos(&p[k], text));
			char again[SL_REDIS_ID_MAX];
			sl_redis_pos_to_id(again, sizeof(again), p[k]);
			assert_string_equal(again, text);
		}
		int id_order = ms[0] != ms[1] ? (ms[0] < ms[1] ? -1 : 1)
		                              : (seq[0] < seq[1] ? -1 : seq[0] > seq[1]);
		int pos_order = p[0] < p[1] ? -1 : p[0] > p[1];
		assert_int_equal(id_order, pos_order);
	}
}

/* ------------------------------------------------------- entry parsing */

/* Parses text fields and values (NULL-terminated) of entry id. */
static int parse(sl_event_batch *b, const char *id, const sl_redis_source_options *o, ...)
{
	const char *fv[16];
	size_t lens[16], n = 0;
	va_list ap;

	va_start(ap, o);
	for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *)) {
		fv[n] = w;
		lens[n++] = strlen(w);
	}
	va_end(ap);
	return sl_redis_entry_parse(b, id, fv, lens, n, o);
}

/* A refusal: SL_ECORRUPT naming the entry and holding `part`, nothing added. */
static void refused(sl_event_batch *b, int rc, const char *part)
{
	size_t n = b->n;
	assert_int_equal(rc, SL_ECORRUPT);
	assert_int_equal(b->n, n);
	assert_memory_equal(sl_error_last()->message, "stream entry 5-1: ", 18);
	expect_message(part);
}

static void test_entry_parse(void **state)
{
	static const char bin[] = {'a', '\0', 'b', '\0', '\n'};
	const char *fv[] = {"key", "k", "value", bin};
	size_t lens[] = {3, 1, 5, sizeof(bin)};
	const char *bad_key[] = {"key", "a\0b"};
	size_t bad_key_lens[] = {3, 3};
	sl_redis_source_options o, ver, custom, dup;
	uint64_t p = pos_of("5-1");
	sl_event_batch b;

	(void)state;
	sl_event_batch_init(&b);
	sl_redis_source_options_init(&o);
	ver = o;
	ver.version_field = "ver";
	memset(&custom, 0, sizeof(custom)); /* NULL names: the defaults */

	assert_ok(parse(&b, "5-1", &o, "key", "a", "value", "x", NULL));
	expect_event(&b.events[0], "5-1", SL_EVENT_SET, "a", "x", 1, 0);
	assert_int_equal(b.events[0].version, p + 1);
	assert_ok(parse(&b, "5-2", &custom, "op", "update", "key", "b", "value", "yy", NULL));
	expect_event(&b.events[1], "5-2", SL_EVENT_UPDATE, "b", "yy", 2, 0);
	assert_ok(parse(&b, "5-3", &o, "key", "c", "op", "delete", NULL));
	expect_event(&b.events[2], "5-3", SL_EVENT_DELETE, "c", NULL, 0, 0);
	assert_ok(parse(&b, "5-4", &o, "key", "d", "op", "set", "other", "z", NULL));
	expect_event(&b.events[3], "5-4", SL_EVENT_SET, "d", "", 0, 0); /* no value: empty */
	assert_ok(sl_redis_entry_parse(&b, "6-0", fv, lens, 4, &o));
	expect_event(&b.events[4], "6-0", SL_EVENT_SET, "k", bin, sizeof(bin), 0);
	assert_int_equal(b.bytes, 1 + 1 + 1 + 2 + 1 + 1 + 1 + sizeof(bin));
	/* the version field */
	assert_ok(parse(&b, "7-0", &ver, "key", "v", "ver", "42", NULL));
	assert_int_equal(b.events[5].version, 42);
	assert_ok(parse(&b, "7-1", &ver, "key", "v", "ver", "0018446744073709551615", NULL));
	assert_int_equal(b.events[6].version, UINT64_MAX);
	/* other names */
	custom.key_field = "k";
	custom.op_field = "o";
	custom.value_field = "v";
	assert_ok(parse(&b, "8-0", &custom, "key", "ignored", "k", "kk", "o", "update", "v", "vv",
	                NULL));
	expect_event(&b.events[7], "8-0", SL_EVENT_UPDATE, "kk", "vv", 2, 0);
	assert_int_equal(b.n, 8);

	refused(&b, parse(&b, "5-1", &o, "key", "a", "value", NULL), "odd");
	refused(&b, parse(&b, "5-1", &o, "value", "x", NULL), "no 'key' field");
	refused(&b, sl_redis_entry_parse(&b, "5-1", NULL, NULL, 0, &o), "no 'key' field");
	refused(&b, parse(&b, "5-1", &o, "key", "", NULL), "empty");
	refused(&b, sl_redis_entry_parse(&b, "5-1", bad_key, bad_key_lens, 2, &o), "NUL");
	refused(&b, parse(&b, "5-1", &o, "key", "a", "op", "SET", NULL), "'SET'");
	refused(&b, parse(&b, "5-1", &o, "key", "a", "op", "", NULL), "not set, update or delete");
	refused(&b, parse(&b, "5-1", &o, "key", "a", "key", "b", NULL), "two 'key' fields");
	refused(&b, parse(&b, "5-1", &o, "key", "a", "op", "delete", "value", "", NULL),
	        "a delete with a 'value' field");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", NULL), "no 'ver' field");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", "ver", "0", NULL), "'0'");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", "ver", "", NULL), "not a decimal");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", "ver", "-1", NULL), "'-1'");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", "ver", "1x", NULL), "'1x'");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", "ver", " 1", NULL), "' 1'");
	refused(&b, parse(&b, "5-1", &ver, "key", "a", "ver", "18446744073709551616", NULL),
	        "not a decimal");
	/* a value shown in a message is cut and escaped */
	refused(&b,
	        parse(&b, "5-1", &o, "key", "a", "op",
	              "\x01xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NULL),
	        "'\\x01xxx");
	expect_message("...'");
	/* an id without a position */
	assert_int_equal(parse(&b, "5-1048576", &o, "key", "a", NULL), SL_ECORRUPT);
	expect_message("stream entry 5-1048576 has no position");
	assert_int_equal(parse(&b, "bogus", &o, "key", "a", NULL), SL_ECORRUPT);
	expect_message("stream entry id 'bogus'");
	/* options with two fields of one name */
	dup = o;
	dup.value_field = "key";
	assert_int_equal(parse(&b, "5-1", &dup, "key", "a", NULL), SL_EINVAL);
	dup = o;
	dup.version_field = "op";
	assert_int_equal(parse(&b, "5-1", &dup, "key", "a", NULL), SL_EINVAL);
	assert_int_equal(b.n, 8);
	sl_event_batch_free(&b);
}

static void test_options(void **state)
{
	sl_redis_source_options o;
	sl_event_source s;

	(void)state;
	assert_int_equal(sl_redis_source_open(&s, NULL), SL_EINVAL);
	sl_redis_source_options_init(&o);
	assert_int_equal(o.timeout_ms, 10000);
	assert_string_equal(o.key_field, "key");
	assert_null(o.version_field);
	o.url = "redis://127.0.0.1:6379";
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL); /* no stream */
	o.stream = "";
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL);
	o.stream = "events";
	o.url = NULL;
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL);
	o.url = "http://127.0.0.1:6379";
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL);
	expect_message("redis source url");
	o.url = "redis://127.0.0.1:6379/x";
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL);
	o.url = "redis://127.0.0.1:6379";
	o.op_field = "key";
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL);
	o.op_field = "op";
	o.version_field = "value";
	assert_int_equal(sl_redis_source_open(&s, &o), SL_EINVAL);
	o.version_field = "";

	/* the name: no user or password; a bracketed IPv6 host; the database */
	o.url = "redis://reader:pa%40ss@127.0.0.1:6400/3";
	assert_ok(sl_redis_source_open(&s, &o));
	assert_string_equal(s.name, "redis:127.0.0.1:6400/3/events");
	assert_string_equal(s.ops->kind, "redis");
	sl_event_source_close(&s);
	sl_event_source_close(&s);
	o.url = "redis://[::1]";
	assert_ok(sl_redis_source_open(&s, &o));
	assert_string_equal(s.name, "redis:[::1]:6379/0/events");
	sl_event_source_close(&s);
}

/* --------------------------------------------------------- on a Redis */

static void test_read(void **state)
{
	static const char bin[] = {'x', '\0', 'y', '\0'};
	const char *fv[] = {"key", "c", "value", bin};
	size_t lens[] = {3, 1, 5, sizeof(bin)};
	char ids[6][SL_REDIS_ID_MAX], text[SL_EVENT_SOURCE_STATE_MAX], want[300];
	sl_event_source s, v, db3, db0;
	sl_event_source_head head;
	sl_event_batch b;
	uint64_t next;

	(void)state;
	sl_event_batch_init(&b);
	xadd(ids[0], "t:read", "key", "a", "value", "1", NULL);
	xadd(ids[1], "t:read", "key", "b", "op", "update", "value", "2", "extra", "e", NULL);
	xadd(ids[2], "t:read", "op", "delete", "key", "a", NULL);
	xadd_bin(ids[3], "t:read", 4, fv, lens);
	xadd(ids[4], "t:read", "key", "d", NULL);
	open_src(&s, "t:read");
	snprintf(want, sizeof(want), "redis:127.0.0.1:%d/0/t:read", svc.redis_port);
	assert_string_equal(s.name, want);

	assert_ok(rd(&s, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 5);
	expect_event(&b.events[0], ids[0], SL_EVENT_SET, "a", "1", 1, 0);
	expect_event(&b.events[1], ids[1], SL_EVENT_UPDATE, "b", "2", 1, 0);
	expect_event(&b.events[2], ids[2], SL_EVENT_DELETE, "a", NULL, 0, 0);
	expect_event(&b.events[3], ids[3], SL_EVENT_SET, "c", bin, sizeof(bin), 0);
	expect_event(&b.events[4], ids[4], SL_EVENT_SET, "d", "", 0, 0);
	assert_int_equal(next, pos_of(ids[4]) + 1);
	/* nothing after the last: SL_OK, nothing, the same position */
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 0);
	assert_int_equal(next, pos_of(ids[4]) + 1);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.known, 1);
	assert_int_equal(head.end, pos_of(ids[4]) + 1);
	/* the state: the last position returned and the entries added before it */
	assert_ok(s.ops->save_state(s.self, text, sizeof(text)));
	snprintf(want, sizeof(want), "%llu:5", (unsigned long long)pos_of(ids[4]) + 1);
	assert_string_equal(text, want);
	assert_int_equal(s.ops->save_state(s.self, text, 3), SL_ETOOLARGE);
	assert_string_equal(text, "");
	static const char *const bad_states[] = {
	        "5 abc",
	        "5",
	        "5:",
	        ":5",
	        "05:1",
	        "5:01",
	        "5:1 ",
	        " 5:1",
	        "5:1  6:2",
	        "x",
	        "5:1:2",
	        "1:1 2:2 3:3 4:4 5:5",
	        "5:18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++)
		if (s.ops->restore_state(s.self, bad_states[i]) != SL_ECORRUPT)
			fail_msg("state '%s' was taken", bad_states[i]);
	/* several positions, the newest first, come back as they were given */
	assert_ok(s.ops->restore_state(s.self, "9:3 7:2 4:1"));
	assert_ok(s.ops->save_state(s.self, text, sizeof(text)));
	snprintf(want, sizeof(want), "9:3 7:2 4:1 %llu:5", (unsigned long long)pos_of(ids[4]) + 1);
	assert_string_equal(text, want);
	sl_event_source_close(&s);
	/* nothing known before the first read */
	open_src(&s, "t:read");
	assert_ok(s.ops->save_state(s.self, text, sizeof(text)));
	assert_string_equal(text, "");
	sl_event_source_close(&s);

	/* a version field */
	xadd(ids[0], "t:ver", "key", "k", "ver", "42", NULL);
	xadd(ids[1], "t:ver", "key", "k", "ver", "7", "op", "delete", NULL);
	xadd(ids[2], "t:ver", "key", "k", NULL);
	open_url(&v, svc.redis_url, "t:ver", "ver");
	assert_ok(rd(&v, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	expect_event(&b.events[0], ids[0], SL_EVENT_SET, "k", "", 0, 42);
	expect_event(&b.events[1], ids[1], SL_EVENT_DELETE, "k", NULL, 0, 7);
	assert_int_equal(next, pos_of(ids[1]) + 1);
	assert_int_equal(rd(&v, next, 100, 1 << 20, 0, &b, &next), SL_ECORRUPT);
	expect_message(ids[2]);
	expect_message("no 'ver' field");
	assert_int_equal(b.n, 2);
	sl_event_source_close(&v);

	/* a database other than 0 */
	sl_event_batch_clear(&b);
	cmd("SELECT", "3", NULL);
	xadd(ids[0], "t:db", "key", "in3", NULL);
	cmd("SELECT", "0", NULL);
	snprintf(want, sizeof(want), "%s/3", svc.redis_url);
	open_url(&db3, want, "t:db", NULL);
	open_src(&db0, "t:db");
	assert_ok(rd(&db3, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], ids[0], SL_EVENT_SET, "in3", "", 0, 0);
	sl_event_batch_clear(&b);
	assert_ok(rd(&db0, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 0);
	sl_event_source_close(&db3);
	sl_event_source_close(&db0);
	sl_event_batch_free(&b);
}

static void test_limits(void **state)
{
	char ids[10][SL_REDIS_ID_MAX], key[8], value[101];
	sl_event_source s;
	sl_event_batch b;
	uint64_t next, from;
	size_t total = 0;

	(void)state;
	memset(value, 'v', 100);
	value[100] = '\0';
	for (int i = 0; i < 10; i++) { /* ids with room between them */
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(ids[i], sizeof(ids[i]), "%d-1", (i + 1) * 10);
		cmd("XADD", "t:limits", ids[i], "key", key, "value", value, NULL);
	}
	sl_event_batch_init(&b);
	open_src(&s, "t:limits");
	assert_int_equal(rd(&s, 0, 0, 1 << 20, 0, &b, &next), SL_EINVAL);
	assert_ok(rd(&s, 0, 3, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 3);
	assert_int_equal(next, pos_of(ids[2]) + 1);
	/* at least one event, however small max_bytes */
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1, 0, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], ids[3], SL_EVENT_SET, "k3", value, 100, 0);
	/* stops once the batch reaches max_bytes: 102 bytes an event */
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 250, 0, &b, &next));
	assert_int_equal(b.n, 3);
	assert_int_equal(next, pos_of(ids[6]) + 1);
	/* resuming from an event's pos + 1 starts right after it */
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, pos_of(ids[4]) + 1, 2, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	expect_event(&b.events[0], ids[5], SL_EVENT_SET, "k5", value, 100, 0);
	/* and from any position between two ids */
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, pos_of(ids[4]) + 2, 1, 1 << 20, 0, &b, &next));
	expect_event(&b.events[0], ids[5], SL_EVENT_SET, "k5", value, 100, 0);
	/* all of it in small reads, in order */
	for (from = 0;; from = next) {
		sl_event_batch_clear(&b);
		assert_ok(rd(&s, from, 4, 1 << 20, 0, &b, &next));
		if (b.n == 0)
			break;
		for (size_t i = 0; i < b.n; i++) {
			snprintf(key, sizeof(key), "k%zu", total + i);
			expect_event(&b.events[i], ids[total + i], SL_EVENT_SET, key, value, 100,
			             0);
		}
		total += b.n;
	}
	assert_int_equal(total, 10);
	assert_int_equal(from, pos_of(ids[9]) + 1);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
}

static void *add_later(void *arg)
{
	redisContext *c = redisConnect("127.0.0.1", svc.redis_port);
	redisReply *r;
	(void)arg;
	usleep(100 * 1000);
	if (c && !c->err && (r = redisCommand(c, "XADD t:wait * key late")) != NULL)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return NULL;
}

static void test_wait(void **state)
{
	char id[SL_REDIS_ID_MAX];
	sl_event_source s;
	sl_event_batch b;
	pthread_t t;
	uint64_t next;

	(void)state;
	sl_event_batch_init(&b);
	open_src(&s, "t:wait");
	/* nothing there: a short wait returns nothing */
	assert_ok(rd(&s, 0, 10, 1 << 20, 50, &b, &next));
	assert_int_equal(b.n, 0);
	assert_int_equal(next, 0);
	/* the stream does not exist yet; an entry added while waiting wakes it */
	assert_int_equal(pthread_create(&t, NULL, add_later, NULL), 0);
	assert_ok(rd(&s, 0, 10, 1 << 20, 20000, &b, &next));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.events[0].key, "late");
	/* again past an entry that is there */
	sl_event_batch_clear(&b);
	assert_int_equal(pthread_create(&t, NULL, add_later, NULL), 0);
	assert_ok(rd(&s, next, 10, 1 << 20, 20000, &b, &next));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.events[0].key, "late");
	/* an entry that is there is returned without waiting for more */
	xadd(id, "t:wait", "key", "now", NULL);
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 10, 1 << 20, 20000, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], id, SL_EVENT_SET, "now", "", 0, 0);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
}

static void test_trim_gap(void **state)
{
	char ids[10][SL_REDIS_ID_MAX];
	sl_event_source s;
	sl_event_batch b;
	uint64_t next, after_gap;

	(void)state;
	for (int i = 0; i < 10; i++)
		xadd(ids[i], "t:trim", "key", "k", NULL);
	sl_event_batch_init(&b);
	open_src(&s, "t:trim");
	assert_ok(rd(&s, 0, 3, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 3);
	cmd("XTRIM", "t:trim", "MAXLEN", "2", NULL);
	/* 4 to 8 went unread: a gap up to the first entry kept, nothing added */
	sl_event_batch_clear(&b);
	assert_int_equal(rd(&s, next, 100, 1 << 20, 1000, &b, &next), SL_ENOTFOUND);
	assert_int_equal(b.n, 0);
	assert_int_equal(next, pos_of(ids[8]));
	expect_message("t:trim");
	expect_message(ids[8]);
	expect_message("older than what the stream kept");
	assert_null(strstr(sl_error_last()->message, "may have been"));
	after_gap = next;
	/* reading from there goes on with what was kept */
	assert_ok(rd(&s, after_gap, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	expect_event(&b.events[0], ids[8], SL_EVENT_SET, "k", "", 0, 0);
	expect_event(&b.events[1], ids[9], SL_EVENT_SET, "k", "", 0, 0);
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 0);
	/* a first run from 0 meets the gap at once */
	assert_int_equal(rd(&s, 0, 100, 1 << 20, 0, &b, &next), SL_ENOTFOUND);
	assert_int_equal(next, after_gap);
	expect_message("0-0");
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
}

static void test_xdel_gap(void **state)
{
	char ids[10][SL_REDIS_ID_MAX], more[SL_REDIS_ID_MAX];
	sl_event_source s;
	sl_event_batch b;
	uint64_t next;

	(void)state;
	for (int i = 0; i < 10; i++)
		xadd(ids[i], "t:xdel", "key", "k", NULL);
	sl_event_batch_init(&b);
	open_src(&s, "t:xdel");
	assert_ok(rd(&s, 0, 3, 1 << 20, 0, &b, &next));
	cmd("XDEL", "t:xdel", ids[5], NULL);
	/* the entries kept before the one removed come first */
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	expect_event(&b.events[0], ids[3], SL_EVENT_SET, "k", "", 0, 0);
	expect_event(&b.events[1], ids[4], SL_EVENT_SET, "k", "", 0, 0);
	sl_event_batch_clear(&b);
	assert_int_equal(rd(&s, next, 100, 1 << 20, 0, &b, &next), SL_ENOTFOUND);
	assert_int_equal(b.n, 0);
	assert_int_equal(next, pos_of(ids[5]) + 1);
	expect_message(ids[5]);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 4);
	expect_event(&b.events[0], ids[6], SL_EVENT_SET, "k", "", 0, 0);
	/* an XDEL behind the position is no gap */
	cmd("XDEL", "t:xdel", ids[8], NULL);
	xadd(more, "t:xdel", "key", "more", NULL);
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], more, SL_EVENT_SET, "more", "", 0, 0);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
}

/* Trims that take only what was read are no gap. */
static void test_trims_behind(void **state)
{
	char id[SL_REDIS_ID_MAX], ids[6][SL_REDIS_ID_MAX];
	sl_event_source s, lag;
	sl_event_batch b;
	uint64_t next = 0;

	(void)state;
	sl_event_batch_init(&b);
	open_src(&s, "t:cap");
	/* a stream that keeps one entry, read as it grows */
	for (int i = 0; i < 20; i++) {
		const char *argv[] = {"XADD", "t:cap", "MAXLEN", "1", "*", "key", "k"};
		size_t lens[] = {4, 5, 6, 1, 1, 3, 1};
		freeReplyObject(cmd_argv(7, argv, lens));
		sl_event_batch_clear(&b);
		assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
		assert_int_equal(b.n, 1);
	}
	/* emptied, then written again */
	cmd("XTRIM", "t:cap", "MAXLEN", "0", NULL);
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 0);
	xadd(id, "t:cap", "key", "again", NULL);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], id, SL_EVENT_SET, "again", "", 0, 0);
	/* emptied past what was read: a gap right after the last id */
	xadd(ids[0], "t:cap", "key", "lost", NULL);
	cmd("XTRIM", "t:cap", "MAXLEN", "0", NULL);
	sl_event_batch_clear(&b);
	assert_int_equal(rd(&s, next, 100, 1 << 20, 0, &b, &next), SL_ENOTFOUND);
	assert_int_equal(next, pos_of(ids[0]) + 1);
	expect_message(ids[0]);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 0);
	sl_event_source_close(&s);

	/* MINID at exactly the position: the ids leave room between entries */
	for (int i = 0; i < 6; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%d-1", (i + 1) * 10);
		cmd("XADD", "t:minid", ids[i], "key", "k", NULL);
	}
	open_src(&s, "t:minid");
	assert_ok(rd(&s, 0, 3, 1 << 20, 0, &b, &next));
	cmd("XTRIM", "t:minid", "MINID", ids[3], NULL);
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 3);
	expect_event(&b.events[0], ids[3], SL_EVENT_SET, "k", "", 0, 0);
	sl_event_source_close(&s);

	/* a reader that falls behind a MAXLEN loses what it had not read */
	open_src(&lag, "t:lag");
	for (int i = 0; i < 2; i++)
		xadd(ids[i], "t:lag", "key", "k", NULL);
	sl_event_batch_clear(&b);
	assert_ok(rd(&lag, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	for (int i = 0; i < 5; i++) {
		const char *argv[] = {"XADD", "t:lag", "MAXLEN", "3", "*", "key", "k"};
		size_t lens[] = {4, 5, 6, 1, 1, 3, 1};
		redisReply *r = cmd_argv(7, argv, lens);
		snprintf(ids[i], sizeof(ids[i]), "%s", r->str);
		freeReplyObject(r);
	}
	assert_int_equal(rd(&lag, next, 100, 1 << 20, 0, &b, &next), SL_ENOTFOUND);
	assert_int_equal(next, pos_of(ids[2]));
	assert_ok(rd(&lag, next, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2 + 3);
	sl_event_source_close(&lag);
	sl_event_batch_free(&b);
}

/* A new source resumes from a stored position with the state stored with
 * it; without it, a trim past the position cannot be ruled out. */
static void test_restart(void **state)
{
	char ids[6][SL_REDIS_ID_MAX], saved[SL_EVENT_SOURCE_STATE_MAX], want[64];
	sl_event_source s;
	sl_event_batch b;
	uint64_t next, pos;

	(void)state;
	sl_event_batch_init(&b);
	for (int i = 0; i < 6; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%d-1", (i + 1) * 10);
		cmd("XADD", "t:restart", ids[i], "key", "k", NULL);
	}
	open_src(&s, "t:restart");
	assert_ok(rd(&s, 0, 3, 1 << 20, 0, &b, &pos));
	assert_ok(s.ops->save_state(s.self, saved, sizeof(saved)));
	snprintf(want, sizeof(want), "%llu:3", (unsigned long long)pos);
	assert_string_equal(saved, want);
	sl_event_source_close(&s);
	cmd("XTRIM", "t:restart", "MINID", ids[3], NULL); /* only what was read */

	/* with the state: no gap */
	open_src(&s, "t:restart");
	assert_ok(s.ops->restore_state(s.self, saved));
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, pos, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 3);
	sl_event_source_close(&s);

	/* without it, or with another position's: a gap it cannot rule out */
	for (int k = 0; k < 2; k++) {
		open_src(&s, "t:restart");
		if (k == 1)
			assert_ok(s.ops->restore_state(s.self, "12345:3"));
		sl_event_batch_clear(&b);
		assert_int_equal(rd(&s, pos, 100, 1 << 20, 0, &b, &next), SL_ENOTFOUND);
		assert_int_equal(b.n, 0);
		assert_int_equal(next, pos_of(ids[3]));
		expect_message("may have been removed");
		expect_message("cannot tell");
		assert_ok(rd(&s, next, 100, 1 << 20, 0, &b, &next));
		assert_int_equal(b.n, 3);
		sl_event_source_close(&s);
	}

	/* a position the source reached by reading to the end needs no state */
	open_src(&s, "t:restart");
	sl_event_batch_clear(&b);
	assert_ok(rd(&s, pos_of(ids[4]), 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	assert_ok(s.ops->save_state(s.self, saved, sizeof(saved)));
	snprintf(want, sizeof(want), "%llu:6 %llu:4", (unsigned long long)next,
	         (unsigned long long)pos_of(ids[4]));
	assert_string_equal(saved, want);
	sl_event_source_close(&s);
	sl_event_batch_free(&b);
}

static void test_missing_and_wrongtype(void **state)
{
	char id[SL_REDIS_ID_MAX];
	sl_event_source_head head = {7, 0};
	sl_event_source s, str, past;
	sl_event_batch b;
	uint64_t next;

	(void)state;
	sl_event_batch_init(&b);
	open_src(&s, "t:missing");
	assert_ok(rd(&s, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 0);
	assert_int_equal(next, 0);
	assert_ok(rd(&s, 12345, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(next, 12345);
	assert_ok(s.ops->head(s.self, &head));
	assert_int_equal(head.known, 1);
	assert_int_equal(head.end, 0);
	sl_event_source_close(&s);

	cmd("SET", "t:string", "x", NULL);
	open_src(&str, "t:string");
	assert_int_equal(rd(&str, 0, 100, 1 << 20, 0, &b, &next), SL_EINVAL);
	expect_message("holds a string, not a stream");
	assert_int_equal(str.ops->head(str.self, &head), SL_EINVAL);
	sl_event_source_close(&str);

	/* a position past the stream's last id is another stream's */
	cmd("XADD", "t:past", "5-1", "key", "a", NULL);
	open_src(&past, "t:past");
	assert_ok(rd(&past, pos_of("5-1") + 1, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(rd(&past, pos_of("9-0") + 1, 100, 1 << 20, 0, &b, &next), SL_EINVAL);
	expect_message("past the stream's last id 5-1");
	xadd(id, "t:past", "key", "b", NULL); /* a time id, far after 9-0 */
	assert_ok(rd(&past, pos_of("9-0") + 1, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 1);
	expect_event(&b.events[0], id, SL_EVENT_SET, "b", "", 0, 0);
	sl_event_source_close(&past);
	sl_event_batch_free(&b);
}

static void test_bad_entries(void **state)
{
	char ids[4][SL_REDIS_ID_MAX];
	sl_event_source s, big, op;
	sl_event_batch b;
	uint64_t next;

	(void)state;
	sl_event_batch_init(&b);
	xadd(ids[0], "t:bad", "key", "a", NULL);
	xadd(ids[1], "t:bad", "key", "b", NULL);
	xadd(ids[2], "t:bad", "value", "no key", NULL);
	xadd(ids[3], "t:bad", "key", "d", NULL);
	open_src(&s, "t:bad");
	/* the good ones before it come back; the next read meets it */
	assert_ok(rd(&s, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 2);
	assert_int_equal(next, pos_of(ids[2]));
	sl_event_batch_clear(&b);
	assert_int_equal(rd(&s, next, 100, 1 << 20, 0, &b, &next), SL_ECORRUPT);
	assert_int_equal(b.n, 0);
	expect_message(s.name);
	expect_message(ids[2]);
	expect_message("no 'key' field");
	/* past it, reading goes on */
	assert_ok(rd(&s, pos_of(ids[2]) + 1, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 1);
	sl_event_source_close(&s);

	cmd("XADD", "t:bigseq", "5-1048576", "key", "a", NULL);
	open_src(&big, "t:bigseq");
	assert_int_equal(rd(&big, 0, 100, 1 << 20, 0, &b, &next), SL_ECORRUPT);
	expect_message("5-1048576 has no position");
	sl_event_source_close(&big);

	cmd("XADD", "t:badop", "5-1", "key", "a", "op", "frob", NULL);
	open_src(&op, "t:badop");
	assert_int_equal(rd(&op, 0, 100, 1 << 20, 0, &b, &next), SL_ECORRUPT);
	expect_message("5-1: the 'op' field is 'frob'");
	sl_event_source_close(&op);
	sl_event_batch_free(&b);
}

static void test_auth(void **state)
{
	char url[300], id[SL_REDIS_ID_MAX];
	sl_event_source s;
	sl_event_batch b;
	uint64_t next;

	(void)state;
	sl_event_batch_init(&b);
	xadd(id, "t:auth", "key", "a", NULL);
	cmd("ACL", "SETUSER", "reader", "on", ">s3cret", "~*", "&*", "+@all", NULL);
	snprintf(url, sizeof(url), "redis://reader:wrong@127.0.0.1:%d", svc.redis_port);
	open_url(&s, url, "t:auth", NULL);
	assert_int_equal(rd(&s, 0, 100, 1 << 20, 0, &b, &next), SL_EAUTH);
	assert_null(strstr(sl_error_last()->message, "wrong"));
	sl_event_source_close(&s);
	/* a password for a default user that has none */
	snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d", svc.redis_port);
	open_url(&s, url, "t:auth", NULL);
	assert_int_equal(rd(&s, 0, 100, 1 << 20, 0, &b, &next), SL_EAUTH);
	sl_event_source_close(&s);
	/* a user without the right to read the key */
	cmd("ACL", "SETUSER", "other", "on", ">s3cret", "~elsewhere:*", "+@all", NULL);
	snprintf(url, sizeof(url), "redis://other:s3cret@127.0.0.1:%d", svc.redis_port);
	open_url(&s, url, "t:auth", NULL);
	assert_int_equal(rd(&s, 0, 100, 1 << 20, 0, &b, &next), SL_EAUTH);
	sl_event_source_close(&s);
	/* the right credentials */
	snprintf(url, sizeof(url), "redis://reader:s3cret@127.0.0.1:%d", svc.redis_port);
	open_url(&s, url, "t:auth", NULL);
	assert_null(strstr(s.name, "s3cret"));
	assert_null(strstr(s.name, "reader"));
	assert_ok(rd(&s, 0, 100, 1 << 20, 0, &b, &next));
	assert_int_equal(b.n, 1);
	sl_event_source_close(&s);
	cmd("ACL", "DELUSER", "reader", "other", NULL);
	sl_event_batch_free(&b);
}

static int transient(int rc)
{
	return rc == SL_EIO || rc == SL_ETIMEOUT;
}

static void test_redis_gone(void **state)
{
	sl_redis_source_options o;
	sl_event_source_head head;
	char id[SL_REDIS_ID_MAX];
	sl_event_source s, paused;
	sl_event_batch b;
	uint64_t next;
	int rc = SL_OK;

	(void)state;
	sl_event_batch_init(&b);
	/* nothing listens there */
	sl_redis_source_options_init(&o);
	o.url = "redis://127.0.0.1:1";
	o.stream = "t:gone";
	o.timeout_ms = 500;
	assert_ok(sl_redis_source_open(&s, &o));
	for (int i = 0; i < 3; i++) {
		assert_true(transient(rd(&s, 0, 100, 1 << 20, 100, &b, &next)));
		assert_int_equal(b.n, 0);
	}
	assert_true(transient(s.ops->head(s.self, &head)));
	sl_event_source_close(&s);

	/* the connection killed: a read may fail once, then it connects again */
	xadd(id, "t:gone", "key", "a", NULL);
	open_src(&s, "t:gone");
	assert_ok(rd(&s, 0, 100, 1 << 20, 0, &b, &next));
	cmd("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes", NULL);
	sl_event_batch_clear(&b);
	for (int i = 0; i < 2 && (i == 0 || rc != SL_OK); i++)
		if ((rc = rd(&s, 0, 100, 1 << 20, 0, &b, &next)) != SL_OK) {
			assert_true(transient(rc));
			assert_int_equal(b.n, 0);
		}
	assert_ok(rc);
	assert_int_equal(b.n, 1);
	sl_event_source_close(&s);

	/* a server that does not answer in time */
	o.url = svc.redis_url;
	o.timeout_ms = 200;
	assert_ok(sl_redis_source_open(&paused, &o));
	sl_event_batch_clear(&b);
	assert_ok(rd(&paused, 0, 100, 1 << 20, 0, &b, &next));
	cmd("CLIENT", "PAUSE", "1500", "ALL", NULL);
	sl_event_batch_clear(&b);
	assert_int_equal(rd(&paused, 0, 100, 1 << 20, 0, &b, &next), SL_ETIMEOUT);
	assert_int_equal(b.n, 0);
	expect_message("timeout");
	/* once it answers again, so does the source */
	for (int i = 0; i < 100 && (rc = rd(&paused, 0, 100, 1 << 20, 0, &b, &next)) != SL_OK;
	     i++) {
		assert_true(transient(rc));
		usleep(50 * 1000);
	}
	assert_ok(rc);
	assert_int_equal(b.n, 1);
	sl_event_source_close(&paused);
	sl_event_batch_free(&b);
}

/* ---------------------------------------------------------------- main */

static int start_redis(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "redis") != 0)
		return -1;
	cli = redisConnect("127.0.0.1", svc.redis_port);
	return cli && !cli->err ? 0 : -1;
}

static int stop_redis(void **state)
{
	(void)state;
	if (cli)
		redisFree(cli);
	tu_services_stop(&svc);
	return 0;
}

int main(void)
{
	const struct CMUnitTest offline[] = {
	        cmocka_unit_test(test_ids),
	        cmocka_unit_test(test_entry_parse),
	        cmocka_unit_test(test_options),
	};
	const struct CMUnitTest online[] = {
	        cmocka_unit_test(test_read),        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_wait),        cmocka_unit_test(test_trim_gap),
	        cmocka_unit_test(test_xdel_gap),    cmocka_unit_test(test_trims_behind),
	        cmocka_unit_test(test_restart),     cmocka_unit_test(test_missing_and_wrongtype),
	        cmocka_unit_test(test_bad_entries), cmocka_unit_test(test_auth),
	        cmocka_unit_test(test_redis_gone),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN); /* as the CLI does: a write to a closed connection */
	failed = cmocka_run_group_tests(offline, NULL, NULL);
	return failed + cmocka_run_group_tests(online, start_redis, stop_redis);
}
