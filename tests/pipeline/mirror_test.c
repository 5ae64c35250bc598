/*
 * Tests for the mirror (pipeline/mirror*.c) against a real PostgreSQL 15
 * started by scripts/services.sh, with an in-memory event source: random
 * streams (sets, updates, deletes, versions out of order) compared with a
 * model key by key; the handler's flags and its counter exactly once;
 * poison events isolated, dead-lettered after max_attempts and retried;
 * replays that never lower a version nor bring a deleted key back; two
 * mirrors on one source (one is fenced); tables of the wrong shape refused
 * before anything is made; PostgreSQL restarted under a following mirror;
 * a source that lost events (a gap) recorded, stopped at or gone past as
 * on_gap says; workers that each own a partition of the keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_testutil.h"
#include "pipeline/mirror_internal.h"
#include "services.h"
#include "sluice/mirror.h"

static tu_services svc;
static PGconn *admin;

#define sql_long(...) tu_sql_long(admin, __VA_ARGS__)

/* -------------------------------------------------------- a fake source */

typedef struct fake_event {
	sl_event_op op;
	char key[32];
	char value[48];
	uint64_t version;
} fake_event;

typedef struct fake {
	fake_event *ev;
	size_t n, cap;
	pthread_mutex_t lock;
	int fail_reads;     /* transient failures still to give */
	uint64_t trimmed;   /* events below this were lost: reading them is a gap */
	uint64_t ver[1024]; /* the last version of key k/i in random streams */
} fake;

static int fake_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                     uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	fake *f = self;
	(void)wait_ms;
	pthread_mutex_lock(&f->lock);
	if (f->fail_reads > 0) {
		f->fail_reads--;
		pthread_mutex_unlock(&f->lock);
		return sl_error_set(SL_EIO, "fake: the source is away");
	}
	if (from < f->trimmed) {
		*next = f->trimmed;
		pthread_mutex_unlock(&f->lock);
		return sl_error_set(SL_ENOTFOUND, "fake: events %llu to %llu were trimmed",
		                    (unsigned long long)from, (unsigned long long)*next - 1);
	}
	*next = from;
	for (size_t i = (size_t)from, k = 0; i < f->n && k < max_events && out->bytes < max_bytes;
	     i++, k++) {
		const fake_event *e = &f->ev[i];
		assert_int_equal(sl_event_batch_add(out, i, e->op, e->key, strlen(e->key),
		                                    e->op == SL_EVENT_DELETE ? NULL : e->value,
		                                    e->op == SL_EVENT_DELETE ? 0 : strlen(e->value),
		                                    e->version),
		                 SL_OK);
		*next = i + 1;
	}
	*at_end = *next >= f->n;
	pthread_mutex_unlock(&f->lock);
	if (wait_ms && *next == from)
		sl_sleep_ms(wait_ms > 20 ? 20 : wait_ms);
	return SL_OK;
}

static int fake_head(void *self, sl_event_source_head *out)
{
	fake *f = self;
	pthread_mutex_lock(&f->lock);
	out->end = f->n;
	out->known = 1;
	pthread_mutex_unlock(&f->lock);
	return SL_OK;
}

static int fake_save(void *self, char *out, size_t cap)
{
	(void)self;
	snprintf(out, cap, "fake-state");
	return SL_OK;
}

static int fake_restore(void *self, const char *state)
{
	(void)self;
	return strcmp(state, "fake-state") == 0 ? SL_OK : SL_ECORRUPT;
}

static void fake_close(void *self)
{
	(void)self;
}

static const sl_event_source_ops fake_ops = {"fake",    fake_read,    fake_head,
                                             fake_save, fake_restore, fake_close};

static void fake_add(fake *f, sl_event_op op, const char *key, const char *value, uint64_t version)
{
	pthread_mutex_lock(&f->lock);
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 256;
		f->ev = realloc(f->ev, f->cap * sizeof(*f->ev));
	}
	memset(&f->ev[f->n], 0, sizeof(f->ev[f->n]));
	f->ev[f->n].op = op;
	snprintf(f->ev[f->n].key, sizeof(f->ev[f->n].key), "%s", key);
	snprintf(f->ev[f->n].value, sizeof(f->ev[f->n].value), "%s", value ? value : "");
	f->ev[f->n].version = version;
	f->n++;
	pthread_mutex_unlock(&f->lock);
}

static void source_of(sl_event_source *s, fake *f, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->ops = &fake_ops;
	s->self = f;
	snprintf(s->name, sizeof(s->name), "fake:%s", name);
}

/* A random stream over `keys` keys: versions increase per key, events of
 * different keys interleave, and with `stale` some events have a version
 * below one already sent, as a reordered producer would send. (Removals
 * keep no tombstone, so they are only exact for sources in order.) */
static void random_stream(fake *f, uint64_t *rng, size_t n, size_t keys, int stale)
{
	uint64_t *ver = f->ver;
	assert_true(keys <= 1024);
	for (size_t i = 0; i < n; i++) {
		size_t k = sl_xorshift64(rng) % keys;
		unsigned r = (unsigned)(sl_xorshift64(rng) % 10);
		char key[32], value[48];
		uint64_t v;
		snprintf(key, sizeof(key), "k/%zu", k);
		snprintf(value, sizeof(value), "v%zu-%llu", i,
		         (unsigned long long)sl_xorshift64(rng));
		if (stale && r == 0 && ver[k] > 2)
			v = ver[k] - 1 - sl_xorshift64(rng) % 2; /* stale */
		else
			v = ver[k] += 1 + sl_xorshift64(rng) % 3;
		fake_add(f,
		         r < 2   ? SL_EVENT_DELETE
		         : r < 5 ? SL_EVENT_SET
		                 : SL_EVENT_UPDATE,
		         key, value, v);
	}
}

/* The target table must equal the model: per key, the event with the
 * highest version (ties: the first one; a later one is a replay) decides. */
static void expect_model(const fake *f, const char *table, int removes)
{
	size_t rows = 0;
	for (size_t i = 0; i < f->n; i++) {
		const fake_event *best = NULL;
		int seen = 0;
		for (size_t j = 0; j < f->n; j++) {
			if (strcmp(f->ev[j].key, f->ev[i].key) != 0)
				continue;
			if (j < i) {
				seen = 1;
				break;
			}
			if (!best || f->ev[j].version > best->version)
				best = &f->ev[j];
		}
		if (seen)
			continue;
		if (removes && best->op == SL_EVENT_DELETE) {
			assert_int_equal(sql_long("SELECT count(*) FROM %s WHERE key = '%s'", table,
			                          best->key),
			                 0);
			continue;
		}
		rows++;
		{
			char got[256];
			tu_sql(admin, got, sizeof(got),
			       "SELECT coalesce(convert_from(value, 'UTF8'), '<null>') || '|' || "
			       "version"
			       " || '|' || deleted FROM %s WHERE key = '%s'",
			       table, best->key);
			char want[256];
			snprintf(want, sizeof(want), "%s|%llu|%s",
			         best->op == SL_EVENT_DELETE ? "<null>" : best->value,
			         (unsigned long long)best->version,
			         best->op == SL_EVENT_DELETE ? "true" : "false");
			if (strcmp(got, want) != 0)
				fail_msg("key %s: got %s, want %s", best->key, got, want);
		}
	}
	assert_int_equal(sql_long("SELECT count(*) FROM %s", table), (long)rows);
}

static void options(sl_mirror_options *o, const char *table)
{
	sl_mirror_options_init(o);
	o->pg_url = svc.pg_url;
	o->table = table;
	o->retry_base_ms = 5;
	o->retry_max_ms = 50;
}

/* ------------------------------------------------------------- handlers */

typedef struct counting {
	const char *refuse_key; /* POISON when a batch holds it */
	int retry_first;        /* RETRY this many times first */
	long calls;
	long new_rows, applied;
	uint32_t max_attempt;
	const char *counter_sql; /* run inside the transaction */
} counting;

static sl_mirror_verdict counting_handler(void *ctx, struct pg_conn *conn,
                                          const sl_mirror_event *events, size_t n, char *why,
                                          size_t cap)
{
	counting *c = ctx;
	char sql[256];
	PGresult *res;
	c->calls++;
	for (size_t i = 0; i < n; i++) {
		if (events[i].attempt > c->max_attempt)
			c->max_attempt = events[i].attempt;
		if (c->refuse_key && strcmp(events[i].event->key, c->refuse_key) == 0) {
			snprintf(why, cap, "refused %s", c->refuse_key);
			return SL_MIRROR_POISON;
		}
	}
	if (c->retry_first > 0) {
		c->retry_first--;
		return SL_MIRROR_RETRY;
	}
	snprintf(sql, sizeof(sql), "UPDATE mirror_counter SET n = n + %zu", n);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(why, cap, "%s", PQresultErrorMessage(res));
		PQclear(res);
		return SL_MIRROR_RETRY;
	}
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		c->new_rows += events[i].is_new;
		c->applied += events[i].applied;
	}
	return SL_MIRROR_OK;
}

static void reset_counter(void)
{
	tu_sql(admin, NULL, 0, "CREATE TABLE IF NOT EXISTS mirror_counter (n bigint NOT NULL)");
	tu_sql(admin, NULL, 0, "DELETE FROM mirror_counter");
	tu_sql(admin, NULL, 0, "INSERT INTO mirror_counter VALUES (0)");
}

/* ------------------------------------------------------------------ tests */

static void test_random_streams(void **state)
{
	uint64_t seed = sl_clock_mono_ns() | 1, rng = seed;
	(void)state;
	printf("seed %llu\n", (unsigned long long)seed);
	for (int round = 0; round < 4; round++) {
		static fake f;
		sl_event_source src;
		sl_mirror_options o;
		sl_mirror_progress p;
		char table[32];
		int removes = round % 2;
		memset(&f, 0, sizeof(f));
		pthread_mutex_init(&f.lock, NULL);
		snprintf(table, sizeof(table), "m_random_%d", round);
		random_stream(&f, &rng, 3000 + sl_xorshift64(&rng) % 2000, 50 + round * 200,
		              !removes);
		source_of(&src, &f, table);
		options(&o, table);
		o.delete_removes = removes;
		o.batch_size = 1 + sl_xorshift64(&rng) % 700;
		f.fail_reads = 2;
		assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
		assert_int_equal(p.pos, f.n);
		assert_int_equal(p.events, f.n);
		expect_model(&f, table, removes);
		assert_int_equal(sql_long("SELECT pos FROM sluice_mirror_position WHERE source = "
		                          "'fake:%s'",
		                          table),
		                 (long)f.n);

		/* a replay from 0 changes nothing: no version goes down, no
		 * tombstone comes back to life */
		if (!removes) { /* a removal keeps nothing to guard the key */
			tu_sql(admin, NULL, 0,
			       "UPDATE sluice_mirror_position SET pos = 0 WHERE source = 'fake:%s'",
			       table);
			assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
			expect_model(&f, table, removes);
		}

		/* more events later: only they are read */
		random_stream(&f, &rng, 500, 50 + round * 200, !removes);
		assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
		assert_int_equal(p.events, 500);
		expect_model(&f, table, removes);
		free(f.ev);
	}
}

static void test_handler_flags(void **state)
{
	static fake f;
	sl_event_source src;
	sl_mirror_options o;
	counting c = {0};
	(void)state;
	pthread_mutex_init(&f.lock, NULL);
	reset_counter();
	fake_add(&f, SL_EVENT_SET, "a", "1", 1);
	fake_add(&f, SL_EVENT_SET, "b", "1", 1);
	fake_add(&f, SL_EVENT_UPDATE, "a", "2", 2); /* supersedes a@1 in the batch */
	source_of(&src, &f, "flags");
	options(&o, "m_flags");
	o.handler = counting_handler;
	o.handler_ctx = &c;
	assert_int_equal(sl_mirror_run(&src, &o, NULL), SL_OK);
	assert_int_equal(c.applied, 2); /* a@2 and b@1 */
	assert_int_equal(c.new_rows, 2);
	fake_add(&f, SL_EVENT_UPDATE, "b", "2", 2);
	fake_add(&f, SL_EVENT_UPDATE, "a", "old", 1); /* stale: not applied */
	c.applied = c.new_rows = 0;
	assert_int_equal(sl_mirror_run(&src, &o, NULL), SL_OK);
	assert_int_equal(c.applied, 1);
	assert_int_equal(c.new_rows, 0);
	assert_int_equal(sql_long("SELECT n FROM mirror_counter"), 5);
	/* a handler that asks for a retry: the batch is tried again, counted once */
	fake_add(&f, SL_EVENT_SET, "c", "1", 1);
	c.retry_first = 2;
	assert_int_equal(sl_mirror_run(&src, &o, NULL), SL_OK);
	assert_int_equal(c.max_attempt, 3);
	assert_int_equal(sql_long("SELECT n FROM mirror_counter"), 6);
	free(f.ev);
}

static void test_poison_and_retry(void **state)
{
	static fake f;
	sl_event_source src;
	sl_mirror_options o;
	sl_mirror_progress p;
	counting c = {0};
	uint64_t applied, failed;
	char text[256];
	(void)state;
	pthread_mutex_init(&f.lock, NULL);
	reset_counter();
	for (int i = 0; i < 300; i++) {
		char key[32];
		snprintf(key, sizeof(key), i == 137 ? "bad" : "p/%d", i);
		fake_add(&f, SL_EVENT_SET, key, "v", 1);
	}
	source_of(&src, &f, "poison");
	options(&o, "m_poison");
	o.handler = counting_handler;
	o.handler_ctx = &c;
	o.max_attempts = 3;
	c.refuse_key = "bad";
	assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
	assert_int_equal(p.events, 299);
	assert_int_equal(p.dead, 1);
	assert_int_equal(p.pos, 300);
	assert_int_equal(sql_long("SELECT n FROM mirror_counter"), 299);
	assert_int_equal(sql_long("SELECT count(*) FROM m_poison"), 299);
	tu_sql(admin, text, sizeof(text),
	       "SELECT pos || '|' || key || '|' || attempts || '|' || error FROM sluice_dead_letter"
	       " WHERE source = 'fake:poison'");
	assert_string_equal(text, "137|bad|3|mirror: the handler said poison: refused bad");

	/* still refused: it stays, with one more attempt */
	assert_int_equal(sl_mirror_dlq_retry(&o, "fake:poison", 0, &applied, &failed), SL_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(failed, 1);
	assert_int_equal(sql_long("SELECT attempts FROM sluice_dead_letter WHERE source = "
	                          "'fake:poison'"),
	                 4);
	/* fixed: applied once, and gone from the dead letters */
	c.refuse_key = NULL;
	assert_int_equal(sl_mirror_dlq_retry(&o, "fake:poison", 0, &applied, &failed), SL_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(failed, 0);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_dead_letter WHERE source = "
	                          "'fake:poison'"),
	                 0);
	assert_int_equal(sql_long("SELECT n FROM mirror_counter"), 300);
	assert_int_equal(sql_long("SELECT count(*) FROM m_poison"), 300);
	free(f.ev);
}

static void test_data_error_dead_letter(void **state)
{
	static fake f;
	sl_event_source src;
	sl_mirror_options o;
	sl_mirror_progress p;
	char text[256];
	(void)state;
	pthread_mutex_init(&f.lock, NULL);
	/* the user's constraint refuses one value: SQLSTATE 23514 */
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE m_check (key text COLLATE \"C\" PRIMARY KEY, value bytea, version "
	       "bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz "
	       "NOT "
	       "NULL DEFAULT now(), CHECK (value IS NULL OR value <> 'nope'::bytea))");
	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof(key), "c/%d", i);
		fake_add(&f, SL_EVENT_SET, key, i == 7 || i == 41 ? "nope" : "ok", 1);
	}
	source_of(&src, &f, "check");
	options(&o, "m_check");
	o.max_attempts = 2;
	assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
	assert_int_equal(p.events, 48);
	assert_int_equal(p.dead, 2);
	tu_sql(admin, text, sizeof(text),
	       "SELECT string_agg(key || ':' || sqlstate, ',' ORDER BY pos) FROM sluice_dead_letter"
	       " WHERE source = 'fake:check'");
	assert_string_equal(text, "c/7:23514,c/41:23514");
	free(f.ev);
}

typedef struct racer {
	sl_event_source src;
	sl_mirror_options o;
	int rc;
} racer;

static void *race_main(void *arg)
{
	racer *r = arg;
	r->rc = sl_mirror_run(&r->src, &r->o, NULL);
	return NULL;
}

static sl_mirror_verdict slow_handler(void *ctx, struct pg_conn *conn,
                                      const sl_mirror_event *events, size_t n, char *why,
                                      size_t cap)
{
	PGresult *res = PQexec(conn, "SELECT pg_sleep(0.05)");
	PQclear(res);
	return counting_handler(ctx, conn, events, n, why, cap);
}

static void test_two_mirrors_fenced(void **state)
{
	static fake f;
	racer r[2];
	pthread_t t[2];
	counting c[2] = {{0}};
	(void)state;
	pthread_mutex_init(&f.lock, NULL);
	reset_counter();
	for (int i = 0; i < 400; i++) {
		char key[32];
		snprintf(key, sizeof(key), "f/%d", i);
		fake_add(&f, SL_EVENT_SET, key, "v", 1);
	}
	for (int i = 0; i < 2; i++) {
		source_of(&r[i].src, &f, "fenced");
		options(&r[i].o, "m_fenced");
		r[i].o.batch_size = 20;
		r[i].o.handler = slow_handler;
		r[i].o.handler_ctx = &c[i];
	}
	assert_int_equal(sl_mirror_prepare(&r[0].o), SL_OK);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, race_main, &r[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("mirror rcs %d %d\n", r[0].rc, r[1].rc);
	/* one finished, the other was fenced (or found nothing left) */
	assert_true(r[0].rc == SL_ECONFLICT || r[1].rc == SL_ECONFLICT);
	assert_true(r[0].rc == SL_OK || r[1].rc == SL_OK);
	/* the one that finished took what the fenced one did not commit */
	assert_int_equal(sql_long("SELECT n FROM mirror_counter"), 400);
	assert_int_equal(sql_long("SELECT applied FROM sluice_mirror_position WHERE source = "
	                          "'fake:fenced'"),
	                 400);
	free(f.ev);
}

typedef struct position_reader {
	sl_mirror_options o;
	uint64_t pos;
	int rc;
} position_reader;

static void *read_position_main(void *arg)
{
	position_reader *p = arg;
	mirror_db db;
	char state[64];
	memset(&db, 0, sizeof(db));
	p->rc = mirror_db_open(&db, &p->o);
	if (p->rc == SL_OK)
		p->rc = mirror_db_position(&db, "fake:race", &p->pos, state, sizeof(state));
	mirror_db_close(&db);
	return NULL;
}

/* A mirror reading its position while another one's first row is being
 * made: its INSERT waits for the other's and does nothing, and it must
 * still find the row (the SELECT of that statement cannot see it). */
static void test_position_made_by_another(void **state)
{
	position_reader p;
	pthread_t t;
	(void)state;
	options(&p.o, "m_race");
	assert_int_equal(sl_mirror_prepare(&p.o), SL_OK);
	tu_sql(admin, NULL, 0, "DELETE FROM sluice_mirror_position WHERE source = 'fake:race'");
	tu_sql(admin, NULL, 0,
	       "BEGIN; INSERT INTO sluice_mirror_position (source, pos, target)"
	       " VALUES ('fake:race', 7, 'm_race')");
	pthread_create(&t, NULL, read_position_main, &p);
	/* let the reader reach the INSERT and wait on ours (if it is late,
	 * the row is committed and the test only passes more easily) */
	PGconn *watch = tu_pg_connect(svc.pg_url);
	char waiting[16] = "0";
	for (int i = 0; i < 100 && strcmp(waiting, "0") == 0; i++) {
		sl_sleep_ms(20);
		tu_sql(watch, waiting, sizeof(waiting),
		       "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
	}
	PQfinish(watch);
	tu_sql(admin, NULL, 0, "COMMIT");
	pthread_join(t, NULL);
	assert_int_equal(p.rc, SL_OK);
	assert_int_equal(p.pos, 7);
}

static void test_wrong_shape_refused(void **state)
{
	sl_mirror_options o;
	(void)state;
	tu_sql(admin, NULL, 0, "CREATE TABLE m_shape (key text PRIMARY KEY, value text)");
	options(&o, "m_shape");
	assert_int_equal(sl_mirror_prepare(&o), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "value"));
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE m_nokey (key text, value bytea, version bigint, deleted boolean, "
	       "updated_at timestamptz)");
	options(&o, "m_nokey");
	assert_int_equal(sl_mirror_prepare(&o), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "unique"));
	options(&o, "a.b.c");
	assert_int_equal(sl_mirror_prepare(&o), SL_EINVAL);
}

static void test_shape_refused_changes_nothing(void **state)
{
	sl_mirror_options o;
	(void)state;
	/* run first in a fresh database: no mirror table may appear */
	tu_sql(admin, NULL, 0, "CREATE DATABASE mirror_fresh");
	PQfinish(admin);
	{
		char url[512];
		snprintf(url, sizeof(url), "%s", svc.pg_url);
		char *slash = strrchr(url, '/');
		snprintf(slash + 1, sizeof(url) - (size_t)(slash + 1 - url), "mirror_fresh");
		admin = PQconnectdb(url);
		tu_sql(admin, NULL, 0, "CREATE TABLE m_bad (key text PRIMARY KEY, version text)");
		options(&o, "m_bad");
		o.pg_url = url;
		assert_int_equal(sl_mirror_prepare(&o), SL_EINVAL);
		assert_int_equal(sql_long("SELECT count(*) FROM pg_class WHERE relname LIKE "
		                          "'sluice_%%'"),
		                 0);
		PQfinish(admin);
	}
	admin = PQconnectdb(svc.pg_url);
}

typedef struct follower {
	sl_event_source src;
	sl_mirror_options o;
	volatile sig_atomic_t stop;
	int rc;
} follower;

static void *follow_main(void *arg)
{
	follower *w = arg;
	w->rc = sl_mirror_run(&w->src, &w->o, NULL);
	return NULL;
}

static void test_gap(void **state)
{
	static fake f;
	sl_event_source src;
	sl_mirror_options o;
	sl_mirror_progress p;
	sl_mirror_status st;
	char text[256];
	(void)state;
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.lock, NULL);
	for (int i = 0; i < 100; i++) {
		char key[16];
		snprintf(key, sizeof(key), "g/%d", i);
		fake_add(&f, SL_EVENT_SET, key, "a", (uint64_t)i + 1);
	}
	source_of(&src, &f, "gap");
	options(&o, "m_gap");
	assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
	assert_int_equal(p.pos, 100);
	for (int i = 100; i < 200; i++) {
		char key[16];
		snprintf(key, sizeof(key), "g/%d", i);
		fake_add(&f, SL_EVENT_SET, key, "b", (uint64_t)i + 1);
	}
	f.trimmed = 150; /* 100..149 lost before the mirror read them */

	/* stop (the default): recorded, the position stays, every run says so */
	for (int run = 0; run < 2; run++) {
		assert_int_equal(sl_mirror_run(&src, &o, &p), SL_ENOTFOUND);
		assert_non_null(strstr(sl_error_last()->message, "recorded as a gap"));
		assert_int_equal(sql_long("SELECT pos FROM sluice_mirror_position WHERE source = "
		                          "'fake:gap'"),
		                 100);
		assert_int_equal(sql_long("SELECT count(*) FROM sluice_mirror_gap WHERE source = "
		                          "'fake:gap' AND from_pos = 100 AND to_pos = 150 AND NOT "
		                          "continued"),
		                 1);
	}
	assert_int_equal(sql_long("SELECT count(*) FROM m_gap"), 100);
	assert_int_equal(sl_mirror_status_read(&src, &o, "fake:gap", &st), SL_OK);
	assert_int_equal(st.gaps, 1);
	assert_int_equal(st.last_gap_from, 100);
	assert_int_equal(st.last_gap_to, 150);
	assert_int_equal(st.last_gap_continued, 0);
	assert_non_null(strstr(st.last_gap_message, "trimmed"));

	/* continue: the position moves past it in the transaction that marks
	 * it, and what follows is applied */
	o.on_gap = SL_MIRROR_GAP_CONTINUE;
	assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
	assert_int_equal(p.gaps, 1);
	assert_int_equal(p.events, 50);
	assert_int_equal(p.pos, 200);
	assert_int_equal(sql_long("SELECT count(*) FROM m_gap"), 150);
	assert_int_equal(sql_long("SELECT count(*) FROM m_gap WHERE key IN ('g/100', 'g/149')"), 0);
	tu_sql(admin, text, sizeof(text),
	       "SELECT count(*) || '|' || bool_and(continued) FROM sluice_mirror_gap WHERE "
	       "source = 'fake:gap'");
	assert_string_equal(text, "1|true");
	assert_int_equal(sl_mirror_status_read(&src, &o, "fake:gap", &st), SL_OK);
	assert_int_equal(st.last_gap_continued, 1);
	free(f.ev);
}

typedef struct workers_ctx {
	fake *f;
	unsigned n;
} workers_ctx;

static int open_worker(void *ctx, unsigned worker, sl_event_source *out)
{
	workers_ctx *w = ctx;
	sl_event_source whole;
	source_of(&whole, w->f, "workers");
	return sl_partition_source_open(out, &whole, worker, w->n);
}

static void test_workers(void **state)
{
	static fake f;
	uint64_t rng = sl_clock_mono_ns() | 1;
	workers_ctx w = {&f, 3};
	sl_mirror_options o;
	sl_mirror_progress p;
	(void)state;
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.lock, NULL);
	random_stream(&f, &rng, 4000, 300, 1);
	options(&o, "m_workers");
	o.batch_size = 97;
	assert_int_equal(sl_mirror_run_workers(open_worker, &w, w.n, &o, &p), SL_OK);
	assert_int_equal(p.events, f.n); /* each event applied by one worker */
	expect_model(&f, "m_workers", 0);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_mirror_position WHERE source LIKE "
	                          "'fake:workers#part=%%/3' AND pos = %zu",
	                          f.n),
	                 3);
	/* each key in one partition only, stable */
	for (int i = 0; i < 50; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k/%d", i);
		assert_true(sl_event_key_partition(key, strlen(key), 3) < 3);
		assert_int_equal(sl_event_key_partition(key, strlen(key), 3),
		                 sl_event_key_partition(key, strlen(key), 3));
	}
	assert_int_equal(sl_event_key_partition("a", 1, 1), 0);

	/* more events: read from each worker's own position */
	random_stream(&f, &rng, 600, 300, 1);
	assert_int_equal(sl_mirror_run_workers(open_worker, &w, w.n, &o, &p), SL_OK);
	assert_int_equal(p.events, 600);
	expect_model(&f, "m_workers", 0);
	free(f.ev);
}

static void test_restart_under_follower(void **state)
{
	static fake f;
	follower w;
	pthread_t t;
	counting c = {0};
	uint64_t rng = 77;
	(void)state;
	pthread_mutex_init(&f.lock, NULL);
	reset_counter();
	memset(&w, 0, sizeof(w));
	source_of(&w.src, &f, "restart");
	options(&w.o, "m_restart");
	w.o.follow = 1;
	w.o.stop = &w.stop;
	w.o.handler = counting_handler;
	w.o.handler_ctx = &c;
	w.o.batch_size = 50;
	w.o.timeout_ms = 3000;
	pthread_create(&t, NULL, follow_main, &w);
	random_stream(&f, &rng, 2000, 300, 1);
	sl_sleep_ms(200);
	PQfinish(admin);
	assert_int_equal(tu_services_run(&svc, "restart-pg"), 0);
	random_stream(&f, &rng, 2000, 300, 1);
	admin = PQconnectdb(svc.pg_url);
	for (int i = 0; i < 600; i++) {
		if (sql_long(
		            "SELECT coalesce(max(pos), 0) FROM sluice_mirror_position WHERE source "
		            "= 'fake:restart'") == (long)f.n)
			break;
		sl_sleep_ms(50);
	}
	w.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(w.rc, SL_OK);
	assert_int_equal(sql_long("SELECT n FROM mirror_counter"), (long)f.n);
	expect_model(&f, "m_restart", 0);
	free(f.ev);
}

static int setup(void **state)
{
	(void)state;
	if (tu_services_start(&svc, "pg") != 0) {
		fprintf(stderr, "could not start PostgreSQL\n");
		return -1;
	}
	admin = tu_pg_connect(svc.pg_url);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	PQfinish(admin);
	tu_services_stop(&svc);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_shape_refused_changes_nothing),
	        cmocka_unit_test(test_random_streams),
	        cmocka_unit_test(test_handler_flags),
	        cmocka_unit_test(test_poison_and_retry),
	        cmocka_unit_test(test_data_error_dead_letter),
	        cmocka_unit_test(test_two_mirrors_fenced),
	        cmocka_unit_test(test_position_made_by_another),
	        cmocka_unit_test(test_wrong_shape_refused),
	        cmocka_unit_test(test_gap),
	        cmocka_unit_test(test_workers),
	        cmocka_unit_test(test_restart_under_follower),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
