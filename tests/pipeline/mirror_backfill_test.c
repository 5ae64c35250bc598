/*
 * Tests for backfills (pipeline/mirror_backfill.c) against a real
 * PostgreSQL 15 started by scripts/services.sh, with in-memory sources
 * whose positions have gaps (positions without events, as a namespace's
 * commits are), so reads run past a range's end: plans split as asked and
 * are idempotent; workers in threads apply every range exactly once
 * (apply_sql counts the events, a C handler sees was_missed) and leave the
 * table equal to a model; a lease that expires while its worker hangs on
 * its source is taken over and the old owner's next batch is fenced; a
 * lease is renewed while the source is slow, and a stopped worker gives
 * its range back; a range whose apply_sql raises is tried max_attempts
 * times and dies with its error, the others done; a range whose lease
 * expired after its last attempt dies too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_testutil.h"
#include "services.h"
#include "sluice/mirror.h"

static tu_services svc;
static PGconn *admin;

#define sql_long(...) tu_sql_long(admin, __VA_ARGS__)

/* ---------------------------------------------------------- fake sources */

typedef struct fake_event {
	sl_event_op op; /* 0: a position without an event */
	char key[32];
	char value[48];
	uint64_t version;
} fake_event;

/* The events, shared by every worker's source; not changed while read. */
typedef struct fake_data {
	fake_event *ev;
	size_t n, cap;
	size_t events; /* positions with an event */
} fake_data;

/* One worker's source over the data, with what a test makes it do. */
typedef struct fake {
	const fake_data *data;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int blocked; /* a read from block_at or later hangs until cleared */
	uint64_t block_at;
	int stalled; /* a read is hanging */
	int hold;    /* reads return nothing yet (a slow source) */
	uint64_t reads;
} fake;

static int fake_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                     uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	fake *f = self;
	const fake_data *d = f->data;
	int hold;
	size_t k = 0;

	pthread_mutex_lock(&f->lock);
	while (f->blocked && from >= f->block_at) {
		f->stalled = 1;
		pthread_cond_wait(&f->cond, &f->lock);
	}
	f->stalled = 0;
	f->reads++;
	hold = f->hold;
	pthread_mutex_unlock(&f->lock);
	*next = from;
	*at_end = 0;
	if (hold) {
		sl_sleep_ms(wait_ms < 20 ? wait_ms : 20);
		return SL_OK;
	}
	assert_true(max_events >= 1);
	for (uint64_t i = from; i < d->n && k < max_events && out->bytes < max_bytes; i++) {
		const fake_event *e = &d->ev[i];
		*next = i + 1;
		if (e->op == 0)
			continue;
		assert_int_equal(sl_event_batch_add(out, i, e->op, e->key, strlen(e->key),
		                                    e->op == SL_EVENT_DELETE ? NULL : e->value,
		                                    e->op == SL_EVENT_DELETE ? 0 : strlen(e->value),
		                                    e->version),
		                 SL_OK);
		k++;
	}
	return SL_OK;
}

static int fake_head(void *self, sl_event_source_head *out)
{
	fake *f = self;
	out->end = f->data->n;
	out->known = 1;
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

static void fake_init(fake *f, sl_event_source *s, const fake_data *d, const char *name)
{
	memset(f, 0, sizeof(*f));
	f->data = d;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	memset(s, 0, sizeof(*s));
	s->ops = &fake_ops;
	s->self = f;
	snprintf(s->name, sizeof(s->name), "fake:%s", name);
}

static void fake_set(fake *f, int *field, int value)
{
	pthread_mutex_lock(&f->lock);
	*field = value;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static int fake_get(fake *f, const int *field)
{
	int v;
	pthread_mutex_lock(&f->lock);
	v = *field;
	pthread_mutex_unlock(&f->lock);
	return v;
}

static void data_add(fake_data *d, sl_event_op op, const char *key, const char *value,
                     uint64_t version)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->ev = realloc(d->ev, d->cap * sizeof(*d->ev));
		assert_non_null(d->ev);
	}
	memset(&d->ev[d->n], 0, sizeof(d->ev[d->n]));
	d->ev[d->n].op = op;
	if (op != 0) {
		snprintf(d->ev[d->n].key, sizeof(d->ev[d->n].key), "%s", key);
		snprintf(d->ev[d->n].value, sizeof(d->ev[d->n].value), "%s", value ? value : "");
		d->ev[d->n].version = version;
		d->events++;
	}
	d->n++;
}

/* n positions over `keys` keys: every 7th a gap; versions grow per key,
 * but one event in ten of a key seen before is stale (a version below its
 * last), as a reordered producer sends; a third of the rest are deletes. */
static void random_data(fake_data *d, uint64_t *rng, size_t n, size_t keys)
{
	uint64_t *ver = calloc(keys, sizeof(*ver));
	assert_non_null(ver);
	for (size_t i = 0; i < n; i++) {
		size_t k = sl_xorshift64(rng) % keys;
		unsigned r = (unsigned)(sl_xorshift64(rng) % 10);
		char key[32], value[48];
		uint64_t v;
		if (i % 7 == 6) {
			data_add(d, 0, NULL, NULL, 0);
			continue;
		}
		snprintf(key, sizeof(key), "k/%zu", k);
		snprintf(value, sizeof(value), "v%zu-%llu", i,
		         (unsigned long long)sl_xorshift64(rng));
		if (r == 0 && ver[k] > 2)
			v = ver[k] - 1 - sl_xorshift64(rng) % 2;
		else
			v = ver[k] += 1 + sl_xorshift64(rng) % 3;
		data_add(d,
		         r < 3   ? SL_EVENT_DELETE
		         : r < 6 ? SL_EVENT_SET
		                 : SL_EVENT_UPDATE,
		         key, value, v);
	}
	free(ver);
}

/* The table must hold, per key, the event of the highest version (of two
 * with one version, the first), deletes as tombstones. */
static void expect_model(const fake_data *d, const char *table)
{
	size_t rows = 0;
	for (size_t i = 0; i < d->n; i++) {
		const fake_event *best = NULL;
		int seen = 0;
		char got[256], want[256];
		if (d->ev[i].op == 0)
			continue;
		for (size_t j = 0; j < d->n && !seen; j++) {
			if (d->ev[j].op == 0 || strcmp(d->ev[j].key, d->ev[i].key) != 0)
				continue;
			if (j < i)
				seen = 1;
			else if (!best || d->ev[j].version > best->version)
				best = &d->ev[j];
		}
		if (seen)
			continue;
		rows++;
		tu_sql(admin, got, sizeof(got),
		       "SELECT coalesce(convert_from(value, 'UTF8'), '<null>') || '|' || version ||"
		       " '|' || deleted FROM %s WHERE key = '%s'",
		       table, best->key);
		snprintf(want, sizeof(want), "%s|%llu|%s",
		         best->op == SL_EVENT_DELETE ? "<null>" : best->value,
		         (unsigned long long)best->version,
		         best->op == SL_EVENT_DELETE ? "true" : "false");
		if (strcmp(got, want) != 0)
			fail_msg("key %s: got %s, want %s", best->key, got, want);
	}
	assert_int_equal(sql_long("SELECT count(*) FROM %s", table), (long)rows);
}

/* ---------------------------------------------------------------- setup */

#define COUNT_SQL                                                                                  \
	"UPDATE bf_counter SET n = n + (SELECT count(*) FROM sluice_batch), missed = missed +"     \
	" (SELECT count(*) FROM sluice_batch WHERE was_missed) WHERE name = '%s';"

static char count_sql[8][256];

/* A counter row `name` that apply_sql adds each batch's events to. */
static const char *counter(int slot, const char *name)
{
	tu_sql(admin, NULL, 0,
	       "CREATE TABLE IF NOT EXISTS bf_counter (name text PRIMARY KEY, n bigint NOT NULL,"
	       " missed bigint NOT NULL)");
	tu_sql(admin, NULL, 0, "INSERT INTO bf_counter VALUES ('%s', 0, 0)", name);
	snprintf(count_sql[slot], sizeof(count_sql[slot]), COUNT_SQL, name);
	return count_sql[slot];
}

static void options(sl_mirror_options *o, const char *table, const char *apply_sql)
{
	sl_mirror_options_init(o);
	o->pg_url = svc.pg_url;
	o->table = table;
	o->apply_sql = apply_sql;
	o->retry_base_ms = 5;
	o->retry_max_ms = 50;
	o->batch_ms = 20;
}

static void plan(sl_event_source *src, const sl_mirror_options *o, const char *job, uint32_t ranges,
                 sl_backfill_planned *out)
{
	sl_backfill_plan p;
	sl_backfill_plan_init(&p);
	p.job = job;
	p.ranges = ranges;
	assert_int_equal(sl_mirror_backfill_plan(src, o, &p, out), SL_OK);
}

/* A worker in a thread, with its own source over shared data. */
typedef struct worker_run {
	fake f;
	sl_event_source src;
	sl_mirror_options o;
	sl_backfill_work_options w;
	sl_backfill_work_result r;
	volatile sig_atomic_t stop;
	int rc;
	pthread_t t;
} worker_run;

static void worker_init(worker_run *wr, const fake_data *d, const char *source,
                        const sl_mirror_options *o, const char *job, const char *name)
{
	memset(wr, 0, sizeof(*wr));
	fake_init(&wr->f, &wr->src, d, source);
	wr->o = *o;
	sl_backfill_work_options_init(&wr->w);
	wr->w.job = job;
	wr->w.worker = name;
	wr->w.stop = &wr->stop;
}

static void *worker_main(void *arg)
{
	worker_run *wr = arg;
	wr->rc = sl_mirror_backfill_work(&wr->src, &wr->o, &wr->w, &wr->r);
	return NULL;
}

static void worker_start(worker_run *wr)
{
	assert_int_equal(pthread_create(&wr->t, NULL, worker_main, wr), 0);
}

static void worker_join(worker_run *wr)
{
	assert_int_equal(pthread_join(wr->t, NULL), 0);
}

/* Polls SQL (a boolean) every 10 ms, up to 30 s. */
static void wait_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wait_sql(const char *fmt, ...)
{
	char sql[2048], v[16];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	for (int i = 0; i < 3000; i++) {
		tu_sql(admin, v, sizeof(v), "%s", sql);
		if (strcmp(v, "t") == 0)
			return;
		sl_sleep_ms(10);
	}
	fail_msg("never true: %s", sql);
}

static void wait_stalled(fake *f)
{
	for (int i = 0; i < 3000 && !fake_get(f, &f->stalled); i++)
		sl_sleep_ms(10);
	assert_true(fake_get(f, &f->stalled));
}

/* ------------------------------------------------------------ the tests */

static void test_plan(void **state)
{
	static fake_data d;
	fake f;
	sl_event_source src, other;
	sl_mirror_options o;
	sl_backfill_plan p;
	sl_backfill_planned r;
	sl_backfill_status st;
	uint64_t rng = 7;
	(void)state;

	memset(&d, 0, sizeof(d));
	random_data(&d, &rng, 1000, 50);
	fake_init(&f, &src, &d, "plan");
	options(&o, "bf_plan_items", NULL);

	/* 7 ranges of near equal size, contiguous, over [0, head) */
	plan(&src, &o, "p1", 7, &r);
	assert_int_equal(r.ranges, 7);
	assert_int_equal(r.from, 0);
	assert_int_equal(r.to, 1000);
	assert_false(r.existed);
	assert_true(r.handoff);
	assert_int_equal(r.live_pos, 1000);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job = 'p1' AND"
	                          " to_pos - from_pos IN (142, 143) AND progress = from_pos AND"
	                          " state = 'pending' AND attempts = 0 AND source = 'fake:plan'"),
	                 7);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range a JOIN"
	                          " sluice_backfill_range b ON b.job = a.job AND b.id = a.id + 1"
	                          " WHERE a.job = 'p1' AND b.from_pos <> a.to_pos"),
	                 0);
	assert_int_equal(sql_long("SELECT min(from_pos) + max(to_pos) * 10 FROM"
	                          " sluice_backfill_range WHERE job = 'p1'"),
	                 10000);
	assert_int_equal(sql_long("SELECT pos FROM sluice_mirror_position WHERE source ="
	                          " 'fake:plan'"),
	                 1000);

	/* the same plan again: nothing changes, also once the source grew (no
	   `to`: the job's own end) */
	tu_sql(admin, NULL, 0, "UPDATE sluice_backfill_range SET updated_at = '2000-01-01'");
	data_add(&d, SL_EVENT_SET, "later", "x", 1);
	plan(&src, &o, "p1", 7, &r);
	assert_true(r.existed);
	assert_int_equal(r.to, 1000);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job = 'p1' AND"
	                          " updated_at = '2000-01-01'"),
	                 7);

	/* another plan under the same name is refused */
	sl_backfill_plan_init(&p);
	p.job = "p1";
	p.ranges = 8;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EEXISTS);
	assert_non_null(strstr(sl_error_last()->message, "exists with another plan"));
	p.ranges = 7;
	p.from = 1;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EEXISTS);
	fake_init(&f, &other, &d, "other");
	p.from = 0;
	assert_int_equal(sl_mirror_backfill_plan(&other, &o, &p, &r), SL_EEXISTS);

	/* by size, from and to given: the last range shorter; the live
	   position exists already and is left alone */
	sl_backfill_plan_init(&p);
	p.job = "p2";
	p.from = 100;
	p.to = 1000;
	p.to_set = 1;
	p.range_size = 400;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_OK);
	assert_int_equal(r.ranges, 3);
	assert_false(r.handoff);
	assert_true(r.live_exists);
	assert_int_equal(r.live_pos, 1000);
	{
		char ranges[128];
		tu_sql(admin, ranges, sizeof(ranges),
		       "SELECT string_agg(from_pos || '-' || to_pos, ',' ORDER BY id) FROM"
		       " sluice_backfill_range WHERE job = 'p2'");
		assert_string_equal(ranges, "100-500,500-900,900-1000");
	}

	/* more ranges than positions: one a position; no handoff */
	sl_backfill_plan_init(&p);
	p.job = "p3";
	p.to = 5;
	p.to_set = 1;
	p.ranges = 10;
	p.handoff = 0;
	assert_int_equal(sl_mirror_backfill_plan(&other, &o, &p, &r), SL_OK);
	assert_int_equal(r.ranges, 5);
	assert_false(r.handoff);
	assert_false(r.live_exists);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_mirror_position WHERE source ="
	                          " 'fake:other'"),
	                 0);

	/* refused: past the head, empty, both or neither of ranges and size */
	p.job = "p4";
	p.to = 5000;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EINVAL);
	p.to = 0;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EINVAL);
	p.to = 10;
	p.range_size = 3;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EINVAL);
	p.ranges = 0;
	p.range_size = 0;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EINVAL);
	p.job = "";
	p.ranges = 1;
	assert_int_equal(sl_mirror_backfill_plan(&src, &o, &p, &r), SL_EINVAL);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job = 'p4'"),
	                 0);

	/* status */
	assert_int_equal(sl_mirror_backfill_status(&o, "p1", &st), SL_OK);
	assert_true(st.exists);
	assert_int_equal(st.ranges, 7);
	assert_int_equal(st.pending, 7);
	assert_int_equal(st.running + st.done + st.dead + st.covered + st.rows, 0);
	assert_int_equal(st.to, 1000);
	assert_string_equal(st.source, "fake:plan");
	assert_int_equal(sl_mirror_backfill_status(&o, "nosuch", &st), SL_OK);
	assert_false(st.exists);
	free(d.ev);
}

/* A C handler that counts the events it sees, all of them missed. */
typedef struct seen {
	pthread_mutex_t lock;
	long events, missed, bad_attempt;
} seen;

static sl_mirror_verdict seen_handler(void *ctx, struct pg_conn *conn,
                                      const sl_mirror_event *events, size_t n, char *why,
                                      size_t cap)
{
	seen *s = ctx;
	(void)conn;
	(void)why;
	(void)cap;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		s->events++;
		s->missed += events[i].was_missed;
		s->bad_attempt += events[i].attempt < 1;
	}
	pthread_mutex_unlock(&s->lock);
	return SL_MIRROR_OK;
}

static void test_workers_in_threads(void **state)
{
	static fake_data d;
	static worker_run w[3];
	static seen s = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
	sl_event_source src;
	fake f;
	sl_mirror_options o;
	sl_backfill_planned r;
	sl_backfill_status st;
	uint64_t seed = sl_clock_mono_ns() | 1, rng = seed, done = 0;
	(void)state;

	printf("seed %llu\n", (unsigned long long)seed);
	memset(&d, 0, sizeof(d));
	random_data(&d, &rng, 4000 + sl_xorshift64(&rng) % 1000, 150);
	fake_init(&f, &src, &d, "threads");
	options(&o, "bf_thread_items", counter(0, "threads"));
	o.batch_size = 37;
	o.handler = seen_handler;
	o.handler_ctx = &s;
	plan(&src, &o, "threads", 9, &r);
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", i);
		worker_init(&w[i], &d, "threads", &o, "threads", strdup(name));
		worker_start(&w[i]);
	}
	for (int i = 0; i < 3; i++) {
		worker_join(&w[i]);
		assert_int_equal(w[i].rc, SL_OK);
		assert_int_equal(w[i].r.pending, 0);
		assert_int_equal(w[i].r.ranges_lost + w[i].r.failures, 0);
		done += w[i].r.ranges_done;
		free((char *)w[i].w.worker);
	}
	assert_int_equal(done, 9);
	/* every range done once, to its end; every event applied once */
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job ="
	                          " 'threads' AND state = 'done' AND progress = to_pos AND"
	                          " attempts = 1 AND lease_until IS NULL"),
	                 9);
	assert_int_equal(sql_long("SELECT sum(rows) FROM sluice_backfill_range WHERE job ="
	                          " 'threads'"),
	                 (long)d.events);
	assert_int_equal(sql_long("SELECT n FROM bf_counter WHERE name = 'threads'"),
	                 (long)d.events);
	assert_int_equal(sql_long("SELECT missed FROM bf_counter WHERE name = 'threads'"),
	                 (long)d.events);
	assert_int_equal(s.events, (long)d.events);
	assert_int_equal(s.missed, (long)d.events);
	assert_int_equal(s.bad_attempt, 0);
	expect_model(&d, "bf_thread_items");
	assert_int_equal(sl_mirror_backfill_status(&o, "threads", &st), SL_OK);
	assert_int_equal(st.done, 9);
	assert_int_equal(st.covered, d.n);
	assert_int_equal(st.rows, d.events);
	/* the live mirror takes over at the end: nothing left to apply */
	{
		sl_mirror_progress p;
		o.handler = NULL;
		assert_int_equal(sl_mirror_run(&src, &o, &p), SL_OK);
		assert_int_equal(p.events, 0);
		assert_int_equal(p.pos, d.n);
	}
	free(d.ev);
}

static void test_lease_stolen(void **state)
{
	static fake_data d;
	static worker_run a, b;
	sl_event_source src;
	fake f;
	sl_mirror_options o;
	sl_backfill_planned r;
	(void)state;

	memset(&d, 0, sizeof(d));
	for (int i = 0; i < 100; i++) {
		char key[16];
		snprintf(key, sizeof(key), "s/%d", i);
		data_add(&d, SL_EVENT_SET, key, "x", (uint64_t)i + 1);
	}
	fake_init(&f, &src, &d, "stolen");
	options(&o, "bf_stolen_items", counter(1, "stolen"));
	o.batch_size = 10;
	plan(&src, &o, "stolen", 1, &r);

	/* a applies [0, 30), then hangs reading from 30 past its lease */
	worker_init(&a, &d, "stolen", &o, "stolen", "a");
	a.w.lease_ms = 300;
	a.f.blocked = 1;
	a.f.block_at = 30;
	worker_start(&a);
	wait_stalled(&a.f);
	assert_int_equal(
	        sql_long("SELECT progress FROM sluice_backfill_range WHERE job = 'stolen'"), 30);
	wait_sql("SELECT lease_until < now() FROM sluice_backfill_range WHERE job = 'stolen'");

	/* b takes the range over from its progress and finishes it */
	worker_init(&b, &d, "stolen", &o, "stolen", "b");
	worker_start(&b);
	worker_join(&b);
	assert_int_equal(b.rc, SL_OK);
	assert_int_equal(b.r.claims, 1);
	assert_int_equal(b.r.ranges_done, 1);
	assert_int_equal(b.r.events, 70);

	/* a wakes up: its next batch is fenced, nothing of it applied */
	fake_set(&a.f, &a.f.blocked, 0);
	worker_join(&a);
	assert_int_equal(a.rc, SL_OK);
	assert_int_equal(a.r.ranges_lost, 1);
	assert_int_equal(a.r.ranges_done, 0);
	assert_int_equal(a.r.events, 30);
	assert_int_equal(a.r.pending, 0);
	assert_int_equal(sql_long("SELECT n FROM bf_counter WHERE name = 'stolen'"), 100);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job = 'stolen'"
	                          " AND state = 'done' AND progress = 100 AND attempts = 2 AND"
	                          " owner = 'b' AND rows = 100"),
	                 1);
	assert_int_equal(sql_long("SELECT count(*) FROM bf_stolen_items"), 100);
	free(d.ev);
}

static void test_lease_renewed_and_given_back(void **state)
{
	static fake_data d;
	static worker_run c, e;
	sl_event_source src;
	fake f;
	sl_mirror_options o;
	sl_backfill_planned r;
	(void)state;

	memset(&d, 0, sizeof(d));
	for (int i = 0; i < 50; i++)
		data_add(&d, SL_EVENT_SET, "same", "v", (uint64_t)i + 1);
	fake_init(&f, &src, &d, "slow");
	options(&o, "bf_slow_items", counter(2, "slow"));
	plan(&src, &o, "slow", 1, &r);

	/* c's source has nothing yet: c keeps its lease over many leases */
	worker_init(&c, &d, "slow", &o, "slow", "c");
	c.w.lease_ms = 300;
	c.f.hold = 1;
	worker_start(&c);
	wait_sql("SELECT owner = 'c' FROM sluice_backfill_range WHERE job = 'slow'");
	sl_sleep_ms(1200);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job = 'slow'"
	                          " AND owner = 'c' AND attempts = 1 AND lease_until > now()"),
	                 1);
	/* another worker finds nothing to claim and, not waiting, returns */
	worker_init(&e, &d, "slow", &o, "slow", "e");
	e.w.no_wait = 1;
	worker_start(&e);
	worker_join(&e);
	assert_int_equal(e.rc, SL_OK);
	assert_int_equal(e.r.claims, 0);
	assert_int_equal(e.r.pending, 1);

	/* c stopped: the range back at once, the claim not counted */
	c.stop = 1;
	worker_join(&c);
	assert_int_equal(c.rc, SL_OK);
	assert_int_equal(sql_long("SELECT count(*) FROM sluice_backfill_range WHERE job = 'slow'"
	                          " AND state = 'pending' AND attempts = 0 AND lease_until <="
	                          " now() AND progress = 0"),
	                 1);
	worker_init(&e, &d, "slow", &o, "slow", "e");
	worker_start(&e);
	worker_join(&e);
	assert_int_equal(e.rc, SL_OK);
	assert_int_equal(e.r.ranges_done, 1);
	assert_int_equal(sql_long("SELECT n FROM bf_counter WHERE name = 'slow'"), 50);
	assert_int_equal(sql_long("SELECT version FROM bf_slow_items WHERE key = 'same'"), 50);
	free(d.ev);
}

typedef struct dead_seen {
	int n;
	int32_t id;
	uint32_t attempts;
	uint64_t progress;
	char error[512];
} dead_seen;

static int on_dead(void *ctx, const sl_backfill_range *b)
{
	dead_seen *ds = ctx;
	ds->n++;
	ds->id = b->id;
	ds->attempts = b->attempts;
	ds->progress = b->progress;
	snprintf(ds->error, sizeof(ds->error), "%s", b->error);
	assert_string_equal(b->state, "dead");
	return 0;
}

static void test_failing_range_dies(void **state)
{
	static fake_data d;
	static worker_run w;
	sl_event_source src;
	fake f;
	sl_mirror_options o;
	sl_backfill_planned r;
	sl_backfill_status st;
	dead_seen ds = {0};
	char sql[512];
	(void)state;

	memset(&d, 0, sizeof(d));
	for (int i = 0; i < 200; i++) {
		char key[16];
		snprintf(key, sizeof(key), i == 120 ? "poison" : "f/%d", i);
		data_add(&d, SL_EVENT_SET, key, "x", (uint64_t)i + 1);
	}
	fake_init(&f, &src, &d, "failing");
	snprintf(sql, sizeof(sql),
	         "DO $$ BEGIN IF EXISTS (SELECT 1 FROM sluice_batch WHERE key = 'poison') THEN"
	         " RAISE EXCEPTION 'poison key seen'; END IF; END $$; %s",
	         counter(3, "failing"));
	options(&o, "bf_failing_items", sql);
	o.batch_size = 10;
	plan(&src, &o, "failing", 4, &r);

	worker_init(&w, &d, "failing", &o, "failing", "w");
	w.w.max_attempts = 3;
	worker_start(&w);
	worker_join(&w);
	assert_int_equal(w.rc, SL_OK);
	assert_int_equal(w.r.failures, 3);
	assert_int_equal(w.r.ranges_done, 3);
	assert_int_equal(w.r.done, 3);
	assert_int_equal(w.r.dead, 1);
	assert_int_equal(w.r.pending, 0);
	/* [100, 150) stopped at the poison's batch, with the error */
	assert_int_equal(sl_mirror_backfill_ranges(&o, "failing", "dead", on_dead, &ds), SL_OK);
	assert_int_equal(ds.n, 1);
	assert_int_equal(ds.id, 3);
	assert_int_equal(ds.attempts, 3);
	assert_int_equal(ds.progress, 120);
	assert_non_null(strstr(ds.error, "poison key seen"));
	assert_int_equal(sql_long("SELECT n FROM bf_counter WHERE name = 'failing'"), 170);
	assert_int_equal(sql_long("SELECT count(*) FROM bf_failing_items WHERE key = 'poison'"), 0);
	assert_int_equal(sl_mirror_backfill_status(&o, "failing", &st), SL_OK);
	assert_int_equal(st.dead, 1);
	assert_int_equal(st.done, 3);
	assert_int_equal(st.covered, 170);
	free(d.ev);
}

static void test_expired_last_lease_dies(void **state)
{
	static fake_data d;
	static worker_run w;
	sl_event_source src;
	fake f;
	sl_mirror_options o;
	sl_backfill_planned r;
	char error[512];
	(void)state;

	memset(&d, 0, sizeof(d));
	for (int i = 0; i < 20; i++)
		data_add(&d, SL_EVENT_SET, "g", "x", (uint64_t)i + 1);
	fake_init(&f, &src, &d, "ghost");
	options(&o, "bf_ghost_items", NULL);
	plan(&src, &o, "ghost", 2, &r);
	/* the first range's last claim was by a worker that died */
	tu_sql(admin, NULL, 0,
	       "UPDATE sluice_backfill_range SET attempts = 3, owner = 'ghost', lease_until ="
	       " now() - interval '1 second' WHERE job = 'ghost' AND id = 1");
	worker_init(&w, &d, "ghost", &o, "ghost", "w");
	w.w.max_attempts = 3;
	worker_start(&w);
	worker_join(&w);
	assert_int_equal(w.rc, SL_OK);
	assert_int_equal(w.r.claims, 1);
	assert_int_equal(w.r.dead, 1);
	assert_int_equal(w.r.done, 1);
	tu_sql(admin, error, sizeof(error),
	       "SELECT state || ': ' || error FROM sluice_backfill_range WHERE job = 'ghost' AND"
	       " id = 1");
	assert_non_null(strstr(error, "dead: claimed 3 times"));
	assert_non_null(strstr(error, "ghost"));
	free(d.ev);
}

static void test_worker_refusals(void **state)
{
	static fake_data d;
	static worker_run w;
	sl_event_source src;
	fake f;
	sl_mirror_options o;
	sl_backfill_planned r;
	(void)state;

	memset(&d, 0, sizeof(d));
	data_add(&d, SL_EVENT_SET, "a", "x", 1);
	fake_init(&f, &src, &d, "mine");
	options(&o, "bf_refusal_items", NULL);
	plan(&src, &o, "mine", 1, &r);
	/* a job never planned */
	worker_init(&w, &d, "mine", &o, "nosuch", "w");
	assert_int_equal(sl_mirror_backfill_work(&w.src, &w.o, &w.w, &w.r), SL_ENOTFOUND);
	/* a worker of another source */
	worker_init(&w, &d, "theirs", &o, "mine", "w");
	assert_int_equal(sl_mirror_backfill_work(&w.src, &w.o, &w.w, &w.r), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "fake:theirs"));
	assert_int_equal(sql_long("SELECT attempts FROM sluice_backfill_range WHERE job = 'mine'"),
	                 0);
	/* deletes that remove rows: ranges out of order could bring a key back */
	o.delete_removes = 1;
	worker_init(&w, &d, "mine", &o, "mine", "w");
	assert_int_equal(sl_mirror_backfill_work(&w.src, &w.o, &w.w, &w.r), SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "tombstone"));
	assert_int_equal(
	        sl_mirror_backfill_plan(&src, &o, &(sl_backfill_plan){.job = "x", .ranges = 1}, &r),
	        SL_EINVAL);
	o.delete_removes = 0;
	/* a job table of another shape is refused before anything is made */
	tu_sql(admin, NULL, 0, "ALTER TABLE sluice_backfill_range RENAME COLUMN progress TO prog");
	assert_int_equal(
	        sl_mirror_backfill_plan(&src, &o, &(sl_backfill_plan){.job = "x", .ranges = 1}, &r),
	        SL_EINVAL);
	assert_non_null(strstr(sl_error_last()->message, "progress"));
	tu_sql(admin, NULL, 0, "ALTER TABLE sluice_backfill_range RENAME COLUMN prog TO progress");
	free(d.ev);
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
	        cmocka_unit_test(test_plan),
	        cmocka_unit_test(test_workers_in_threads),
	        cmocka_unit_test(test_lease_stolen),
	        cmocka_unit_test(test_lease_renewed_and_given_back),
	        cmocka_unit_test(test_failing_range_dies),
	        cmocka_unit_test(test_expired_last_lease_dies),
	        cmocka_unit_test(test_worker_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
