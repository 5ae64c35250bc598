/*
 * mirror_bench: what bench/mirror_bench.sh measures of mirrors
 * (include/sluice/mirror.h), through the library, next to a plain COPY of
 * the same rows into the same table shape on the same server. Every mode
 * prints one line per measurement, `what=NAME key=value ...`; rates are a
 * second, latencies in milliseconds (_ms), CPU in seconds (_s).
 *
 * Event i (0 from the first) is at position i: key "ev/" and 17 digits of
 * i + 1 (20 bytes), a value of 180 characters of pseudo-random printable
 * text (letters, digits, '+' and '/'; from the seed, BENCH_SEED or a fixed
 * default, printed on every line), op set, version i + 1. Generation is
 * outside every timed part. Each mode first drops the tables of the earlier
 * modes (copy_items, mirror_items, sluice_mirror_position,
 * sluice_dead_letter) and runs CHECKPOINT, so each starts from the same
 * empty database.
 *
 *   mirror_bench copy URL N
 *       The reference: a fresh table copy_items of the mirror's target
 *       shape, made by sl_mirror_prepare (key, value, version, deleted,
 *       updated_at, missing_in_source_since, and sluice_item generated
 *       from key and value: PostgreSQL hashes every row of the COPY as it
 *       does every row a mirror writes), and one binary COPY of the N
 *       rows (key, value, version) in one transaction, sent in 1 MiB
 *       pieces; timed from BEGIN to the end of COMMIT.
 *   mirror_bench mirror URL N [none|noop|sql]
 *       sl_mirror_run (follow 0, default options: batches of 1000 events,
 *       1 MiB, 100 ms) from a source in this file that hands out the
 *       pregenerated events, into a fresh default table (mirror_items).
 *       none: no handler; noop: a C handler that returns SL_MIRROR_OK
 *       (so the upsert also returns its rows); sql: apply_sql "SELECT 1".
 *       Events a second over the whole call (connecting and preparing the
 *       tables included), each batch's commit latency (from its first
 *       event read to its COMMIT, as the progress callback reports it)
 *       p50, p99 and max, the process's CPU time, and the time spent in
 *       the source's read (copying the events into the batch).
 *   mirror_bench ndjson URL FILE
 *       The same from sl_ndjson_source_open(FILE), no handler: reading and
 *       parsing the file is inside the timed run.
 *   mirror_bench ndjson-gen FILE N
 *       Writes the N events as NDJSON, one line each:
 *       {"key":"ev/...","value":"...","version":N}.
 *   mirror_bench latency URL SECONDS RATE [none|noop|sql]
 *       A paced source: event i is released at t0 + i / RATE (t0 the
 *       source's first read), SECONDS * RATE events in all; the mirror
 *       follows (follow 1, default options) and is stopped once the last
 *       event committed. Each event's latency is its batch's COMMIT (the
 *       progress callback's commit_ns) minus its release: p50, p99 and max
 *       over all events, and the batches' sizes.
 *
 * Every mode's line also says the server's fsync and synchronous_commit,
 * and the CPU time of the timed part: this process's (client_cpu_s), the
 * server's (server_cpu_s, when BENCH_PG_PID names its postmaster: the
 * postmaster, its live children and those it reaped meanwhile), and the
 * whole machine's busy and stolen time (busy_cpu_s, steal_s), so that
 * what other processes used meanwhile is busy less client less server;
 * and the WAL the server wrote meanwhile (wal_mb).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "sluice/event_source.h"
#include "sluice/mirror.h"

#define BENCH_NAME "mirror_bench"
#include "bench_util.h"

#define KEY_LEN      20
#define VALUE_LEN    180
#define DEFAULT_SEED 20261204u
#define COPY_PIECE   ((size_t)1 << 20)
#define COPY_ROW     (2 + 4 + KEY_LEN + 4 + VALUE_LEN + 4 + 8)

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ns(void)
{
	return sl_clock_mono_ns();
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds, from /proc: the server's (the postmaster of BENCH_PG_PID,
 * the children it reaped and its live children), and the whole machine's
 * busy and stolen time, so that the script can tell what others used. */
typedef struct cpu_snap {
	double self, server, busy, steal;
	int server_known;
} cpu_snap;

/* utime + stime (+ cutime + cstime when reaped is set) of pid, or -1. */
static double proc_cpu_s(long pid, int reaped)
{
	char path[64], buf[1024], *p;
	unsigned long long f[17] = {0};
	size_t got;
	FILE *fp;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	got = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[got] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* after the name: state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime cutime cstime */
	if (sscanf(p + 2,
	           "%*c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
	           &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10],
	           &f[11], &f[12], &f[13]) != 14)
		return -1;
	return (double)(f[10] + f[11] + (reaped ? f[12] + f[13] : 0)) /
	       (double)sysconf(_SC_CLK_TCK);
}

static void cpu_snapshot(cpu_snap *s)
{
	const char *pm = getenv("BENCH_PG_PID");
	unsigned long long v[8] = {0};
	FILE *fp;
	memset(s, 0, sizeof(*s));
	s->self = cpu_s();
	if (pm && *pm) {
		char path[64], list[4096];
		long pid = strtol(pm, NULL, 10);
		double t = proc_cpu_s(pid, 1);
		s->server_known = t >= 0;
		s->server = t;
		snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
		if (s->server_known && (fp = fopen(path, "r")) != NULL) {
			size_t got = fread(list, 1, sizeof(list) - 1, fp);
			char *tok, *save = NULL;
			fclose(fp);
			list[got] = '\0';
			for (tok = strtok_r(list, " \n", &save); tok;
			     tok = strtok_r(NULL, " \n", &save))
				if ((t = proc_cpu_s(strtol(tok, NULL, 10), 0)) > 0)
					s->server += t;
		}
	}
	if ((fp = fopen("/proc/stat", "r")) != NULL) {
		/* user nice system idle iowait irq softirq steal */
		if (fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		           &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
			s->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) /
			          (double)sysconf(_SC_CLK_TCK);
			s->steal = (double)v[7] / (double)sysconf(_SC_CLK_TCK);
		}
		fclose(fp);
	}
}

/* " client_cpu_s=... server_cpu_s=... busy_cpu_s=... steal_s=..." */
static void cpu_text(const cpu_snap *a, const cpu_snap *b, char *out, size_t cap)
{
	int n = snprintf(out, cap, " client_cpu_s=%.3f", b->self - a->self);
	if (a->server_known && b->server_known && n > 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, " server_cpu_s=%.2f",
		              b->server - a->server);
	if (n > 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, " busy_cpu_s=%.2f steal_s=%.2f",
		         b->busy - a->busy, b->steal - a->steal);
}

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (*text == '\0' || *end != '\0' || *text == '-' || v == 0)
		die("%s: not a positive number: %s", what, text);
	return (uint64_t)v;
}

static uint64_t seed_of(void)
{
	const char *s = getenv("BENCH_SEED");
	return s && *s ? parse_u64(s, "BENCH_SEED") : DEFAULT_SEED;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of a sorted array, in ms from ns. */
static double pct_ms(const uint64_t *sorted, size_t n, double p)
{
	size_t rank;
	if (n == 0)
		return 0;
	rank = (size_t)(p * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1e6;
}

/* --------------------------------------------------------------- the rows */

typedef struct rows {
	size_t n;
	char *keys;      /* n * KEY_LEN, no terminators */
	uint8_t *values; /* n * VALUE_LEN */
} rows;

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void make_rows(rows *r, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull | 1;
	char key[32];
	r->n = n;
	r->keys = malloc(n * KEY_LEN);
	r->values = malloc(n * VALUE_LEN);
	if (!r->keys || !r->values)
		die("out of memory for %zu rows", n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *v = r->values + i * VALUE_LEN;
		snprintf(key, sizeof(key), "ev/%017llu", (unsigned long long)i + 1);
		memcpy(r->keys + i * KEY_LEN, key, KEY_LEN);
		for (size_t j = 0; j < VALUE_LEN;) {
			uint64_t x = sl_xorshift64(&s);
			for (int k = 0; k < 10 && j < VALUE_LEN; k++, j++, x >>= 6)
				v[j] = (uint8_t)alphabet[x & 63];
		}
	}
}

static void free_rows(rows *r)
{
	free(r->keys);
	free(r->values);
}

/* ---------------------------------------------------------- PostgreSQL */

static PGconn *pg_connect(const char *url)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		die("PostgreSQL: %s", PQerrorMessage(c));
	return c;
}

static void pg_exec(PGconn *c, const char *sql, ExecStatusType want)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != want)
		die("PostgreSQL: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

static void pg_show(PGconn *c, const char *name, char *out, size_t cap)
{
	char sql[64];
	PGresult *r;
	snprintf(sql, sizeof(sql), "SHOW %s", name);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		die("PostgreSQL: %s: %s", sql, PQerrorMessage(c));
	snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static uint64_t pg_count(const char *url, const char *table)
{
	char sql[128];
	PGconn *c = pg_connect(url);
	PGresult *r;
	uint64_t n;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die("PostgreSQL: %s: %s", sql, PQerrorMessage(c));
	n = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return n;
}

/* Bytes of WAL the server has written so far. */
static double wal_bytes(const char *url)
{
	PGconn *c = pg_connect(url);
	PGresult *r = PQexec(c, "SELECT pg_current_wal_lsn() - '0/0'");
	double v;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die("PostgreSQL: the WAL position: %s", PQerrorMessage(c));
	v = strtod(PQgetvalue(r, 0, 0), NULL);
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The server's settings that matter to a commit, as " fsync=... ...". */
typedef struct server_info {
	char text[256];
} server_info;

/* Drops the tables of every mode, checkpoints, and says what the server
 * is. */
static void fresh_database(const char *url, server_info *info)
{
	char fsync[32], sync_commit[32], version[64];
	PGconn *c = pg_connect(url);
	pg_exec(c,
	        "SET client_min_messages = warning; DROP TABLE IF EXISTS copy_items, mirror_items,"
	        " sluice_mirror_position, sluice_dead_letter, sluice_mirror_gap",
	        PGRES_COMMAND_OK);
	pg_exec(c, "CHECKPOINT", PGRES_COMMAND_OK);
	pg_show(c, "fsync", fsync, sizeof(fsync));
	pg_show(c, "synchronous_commit", sync_commit, sizeof(sync_commit));
	pg_show(c, "server_version_num", version, sizeof(version));
	snprintf(info->text, sizeof(info->text), "fsync=%s synchronous_commit=%s server=%s", fsync,
	         sync_commit, version);
	PQfinish(c);
}

/* ------------------------------------------------------------------ copy */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static int run_copy(const char *url, size_t n)
{
	static const uint8_t header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	uint64_t seed = seed_of();
	size_t len = sizeof(header) + n * COPY_ROW + 2;
	server_info info;
	rows r;
	uint8_t *data, *p;
	PGconn *c;
	PGresult *res;
	uint64_t t0, t1;
	cpu_snap c0, c1;
	char cpu[200];
	double wal0, wal1;

	fresh_database(url, &info);
	make_rows(&r, n, seed);
	if ((data = malloc(len)) == NULL)
		die("out of memory for %zu bytes of COPY data", len);
	memcpy(data, header, sizeof(header));
	p = data + sizeof(header);
	for (size_t i = 0; i < n; i++) {
		put_be16(p, 3);
		sl_be32_put(p + 2, KEY_LEN);
		memcpy(p + 6, r.keys + i * KEY_LEN, KEY_LEN);
		p += 6 + KEY_LEN;
		sl_be32_put(p, VALUE_LEN);
		memcpy(p + 4, r.values + i * VALUE_LEN, VALUE_LEN);
		p += 4 + VALUE_LEN;
		sl_be32_put(p, 8);
		sl_be64_put(p + 4, (uint64_t)i + 1);
		p += 12;
	}
	put_be16(p, 0xffff);
	free_rows(&r);

	{ /* the mirror's own target shape, generated item column included */
		sl_mirror_options o;
		sl_mirror_options_init(&o);
		o.pg_url = url;
		o.table = "copy_items";
		check(sl_mirror_prepare(&o), "make copy_items");
	}
	c = pg_connect(url);
	wal0 = wal_bytes(url);
	cpu_snapshot(&c0);
	t0 = now_ns();
	pg_exec(c, "BEGIN", PGRES_COMMAND_OK);
	pg_exec(c, "COPY copy_items (key, value, version) FROM STDIN (FORMAT binary)",
	        PGRES_COPY_IN);
	for (size_t off = 0; off < len; off += COPY_PIECE) {
		size_t piece = len - off < COPY_PIECE ? len - off : COPY_PIECE;
		if (PQputCopyData(c, (const char *)data + off, (int)piece) != 1)
			die("PostgreSQL COPY: %s", PQerrorMessage(c));
	}
	if (PQputCopyEnd(c, NULL) != 1)
		die("PostgreSQL COPY: %s", PQerrorMessage(c));
	res = PQgetResult(c);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("PostgreSQL COPY: %s", PQerrorMessage(c));
	PQclear(res);
	while ((res = PQgetResult(c)) != NULL)
		PQclear(res);
	pg_exec(c, "COMMIT", PGRES_COMMAND_OK);
	t1 = now_ns();
	cpu_snapshot(&c1);
	cpu_text(&c0, &c1, cpu, sizeof(cpu));
	wal1 = wal_bytes(url);
	PQfinish(c);
	free(data);
	if (pg_count(url, "copy_items") != n)
		die("copy_items does not hold %zu rows", n);
	printf("what=copy rows=%zu seconds=%.3f rows_per_s=%.0f%s wal_mb=%.1f bytes=%zu "
	       "seed=%" PRIu64 " %s\n",
	       n, (double)(t1 - t0) / 1e9, (double)n * 1e9 / (double)(t1 - t0), cpu,
	       (wal1 - wal0) / 1e6, len, seed, info.text);
	return 0;
}

/* --------------------------------------------------------------- sources */

/* Hands out the pregenerated rows; paced (rate > 0): event i only from
 * t0 + i / rate, t0 its first read. */
typedef struct mem_source {
	const rows *r;
	uint64_t rate;
	uint64_t t0;
	uint64_t read_ns; /* spent in read, waits excluded */
	uint64_t reads;
} mem_source;

/* Rounded up, so that event i is released exactly when released() counts
 * it. */
static uint64_t release_ns(const mem_source *m, uint64_t i)
{
	return m->t0 + (i * 1000000000ull + m->rate - 1) / m->rate;
}

/* Events released by now: all of them unpaced. */
static uint64_t released(const mem_source *m, uint64_t now)
{
	uint64_t k;
	if (m->rate == 0)
		return m->r->n;
	k = (now - m->t0) * m->rate / 1000000000ull + 1;
	return k < m->r->n ? k : m->r->n;
}

static int mem_read(void *self, uint64_t from, size_t max_events, size_t max_bytes,
                    uint64_t wait_ms, sl_event_batch *out, uint64_t *next, int *at_end)
{
	mem_source *m = self;
	uint64_t now = now_ns(), avail, start;
	int rc;

	if (m->rate && m->t0 == 0)
		m->t0 = now;
	avail = released(m, now);
	*next = from;
	*at_end = 0;
	if (from >= m->r->n) {
		*at_end = m->rate == 0;
		if (m->rate && wait_ms) /* a follower waits for what never comes */
			sl_sleep_ms(wait_ms > 50 ? 50 : wait_ms);
		return SL_OK;
	}
	if (avail <= from) {
		uint64_t due = release_ns(m, from), until = now + wait_ms * 1000000ull;
		if (wait_ms == 0)
			return SL_OK;
		if (due > until)
			due = until;
		while ((now = now_ns()) < due) {
			struct timespec ts = {(time_t)((due - now) / 1000000000u),
			                      (long)((due - now) % 1000000000u)};
			nanosleep(&ts, NULL);
		}
		avail = released(m, now);
		if (avail <= from)
			return SL_OK;
	}
	start = now_ns();
	m->reads++;
	for (uint64_t i = from; i < avail; i++) {
		if (max_events == 0 || (out->bytes >= max_bytes && i > from))
			break;
		rc = sl_event_batch_add(out, i, SL_EVENT_SET, m->r->keys + i * KEY_LEN, KEY_LEN,
		                        m->r->values + i * VALUE_LEN, VALUE_LEN, i + 1);
		if (rc != SL_OK)
			return rc;
		max_events--;
		*next = i + 1;
	}
	*at_end = m->rate == 0 && *next >= m->r->n;
	m->read_ns += now_ns() - start;
	return SL_OK;
}

static int mem_head(void *self, sl_event_source_head *out)
{
	const mem_source *m = self;
	out->end = m->r->n;
	out->known = 1;
	return SL_OK;
}

static int mem_save_state(void *self, char *out, size_t cap)
{
	(void)self;
	if (cap > 0)
		out[0] = '\0';
	return SL_OK;
}

static int mem_restore_state(void *self, const char *state)
{
	(void)self;
	(void)state;
	return SL_OK;
}

static void mem_close(void *self)
{
	(void)self;
}

static const sl_event_source_ops mem_ops = {"memory",       mem_read,          mem_head,
                                            mem_save_state, mem_restore_state, mem_close};

/* ----------------------------------------------------------------- mirror */

static sl_mirror_verdict noop_handler(void *ctx, struct pg_conn *conn,
                                      const sl_mirror_event *events, size_t n, char *why,
                                      size_t cap)
{
	(void)ctx, (void)conn, (void)events, (void)n, (void)why, (void)cap;
	return SL_MIRROR_OK;
}

static void set_handler(sl_mirror_options *o, const char *handler)
{
	if (strcmp(handler, "noop") == 0)
		o->handler = noop_handler;
	else if (strcmp(handler, "sql") == 0)
		o->apply_sql = "SELECT 1";
	else if (strcmp(handler, "none") != 0)
		die("handler is none, noop or sql, not %s", handler);
}

/* What the progress callback keeps. */
typedef struct tally {
	uint64_t *batch_ns; /* each batch: first read to COMMIT */
	size_t n_batches, cap_batches;
	uint64_t *event_ns; /* latency mode: each event, release to COMMIT */
	size_t n_events;
	const mem_source *paced;
	uint64_t last_pos, total;
	uint64_t first_read_ns, last_commit_ns;
	volatile sig_atomic_t stop;
} tally;

static void on_progress(void *ctx, const sl_mirror_progress *p)
{
	tally *t = ctx;
	uint64_t *grown;
	if (t->n_batches == t->cap_batches) {
		t->cap_batches = t->cap_batches ? 2 * t->cap_batches : 4096;
		if ((grown = realloc(t->batch_ns, t->cap_batches * sizeof(*grown))) == NULL)
			die("out of memory for batch latencies");
		t->batch_ns = grown;
	}
	t->batch_ns[t->n_batches++] = p->commit_ns - p->first_read_ns;
	if (t->first_read_ns == 0)
		t->first_read_ns = p->first_read_ns;
	t->last_commit_ns = p->commit_ns;
	if (t->paced) {
		for (uint64_t i = t->last_pos; i < p->pos && t->n_events < t->paced->r->n; i++)
			t->event_ns[t->n_events++] = p->commit_ns - release_ns(t->paced, i);
		if (p->pos >= t->total)
			t->stop = 1;
	}
	t->last_pos = p->pos;
}

typedef struct run_result {
	double seconds, loop_seconds, wal_mb;
	char cpu[200];
	sl_mirror_progress p;
} run_result;

static void run_mirror(sl_event_source *src, const char *url, const char *handler, int follow,
                       tally *t, run_result *out)
{
	sl_mirror_options o;
	uint64_t t0, t1;
	cpu_snap c0, c1;
	double wal0;
	int rc;

	sl_mirror_options_init(&o);
	o.pg_url = url;
	set_handler(&o, handler);
	o.follow = follow;
	o.stop = &t->stop;
	o.progress = on_progress;
	o.progress_ctx = t;
	wal0 = wal_bytes(url);
	cpu_snapshot(&c0);
	t0 = now_ns();
	rc = sl_mirror_run(src, &o, &out->p);
	t1 = now_ns();
	cpu_snapshot(&c1);
	cpu_text(&c0, &c1, out->cpu, sizeof(out->cpu));
	out->wal_mb = (wal_bytes(url) - wal0) / 1e6;
	check(rc, "sl_mirror_run");
	out->seconds = (double)(t1 - t0) / 1e9;
	out->loop_seconds = t->last_commit_ns > t->first_read_ns
	                            ? (double)(t->last_commit_ns - t->first_read_ns) / 1e9
	                            : out->seconds;
	qsort(t->batch_ns, t->n_batches, sizeof(*t->batch_ns), cmp_u64);
}

static void print_mirror(const char *what, const char *handler, const run_result *r, const tally *t,
                         const server_info *info, const char *extra)
{
	printf("what=%s handler=%s events=%" PRIu64 " seconds=%.3f events_per_s=%.0f"
	       " loop_events_per_s=%.0f batches=%" PRIu64 " commit_p50_ms=%.2f commit_p99_ms=%.2f"
	       " commit_max_ms=%.2f%s wal_mb=%.1f retries=%" PRIu64 " dead=%" PRIu64 "%s %s\n",
	       what, handler, r->p.events, r->seconds, (double)r->p.events / r->seconds,
	       (double)r->p.events / r->loop_seconds, r->p.batches,
	       pct_ms(t->batch_ns, t->n_batches, 0.50), pct_ms(t->batch_ns, t->n_batches, 0.99),
	       pct_ms(t->batch_ns, t->n_batches, 1.0), r->cpu, r->wal_mb, r->p.retries, r->p.dead,
	       extra, info->text);
}

static int mirror_mode(const char *url, size_t n, const char *handler)
{
	uint64_t seed = seed_of();
	server_info info;
	rows r;
	mem_source m = {0};
	sl_event_source src = {&mem_ops, &m, "bench:memory"};
	tally t = {0};
	run_result res;
	char extra[128];

	fresh_database(url, &info);
	make_rows(&r, n, seed);
	m.r = &r;
	run_mirror(&src, url, handler, 0, &t, &res);
	if (res.p.events != n || pg_count(url, "mirror_items") != n)
		die("mirror applied %" PRIu64 " events, not %zu", res.p.events, n);
	snprintf(extra, sizeof(extra), " source_read_s=%.3f seed=%" PRIu64, (double)m.read_ns / 1e9,
	         seed);
	print_mirror("mirror", handler, &res, &t, &info, extra);
	free(t.batch_ns);
	free_rows(&r);
	return 0;
}

static int ndjson_mode(const char *url, const char *file)
{
	server_info info;
	sl_event_source src;
	tally t = {0};
	run_result res;
	uint64_t n;

	fresh_database(url, &info);
	check(sl_ndjson_source_open(&src, file), "sl_ndjson_source_open");
	run_mirror(&src, url, "none", 0, &t, &res);
	sl_event_source_close(&src);
	n = pg_count(url, "mirror_items");
	if (res.p.events != n)
		die("mirror applied %" PRIu64 " events but the table holds %" PRIu64, res.p.events,
		    n);
	print_mirror("ndjson", "none", &res, &t, &info, "");
	free(t.batch_ns);
	return 0;
}

static int ndjson_gen(const char *file, size_t n)
{
	uint64_t seed = seed_of();
	FILE *f = fopen(file, "w");
	rows r;
	if (!f)
		die("cannot write %s", file);
	make_rows(&r, n, seed);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "{\"key\":\"%.*s\",\"value\":\"%.*s\",\"version\":%zu}\n", KEY_LEN,
		        r.keys + i * KEY_LEN, VALUE_LEN, (const char *)r.values + i * VALUE_LEN,
		        i + 1);
	if (fclose(f) != 0)
		die("cannot write %s", file);
	free_rows(&r);
	printf("what=ndjson_gen file=%s events=%zu seed=%" PRIu64 "\n", file, n, seed);
	return 0;
}

static int latency_mode(const char *url, uint64_t seconds, uint64_t rate, const char *handler)
{
	uint64_t seed = seed_of();
	size_t n = (size_t)(seconds * rate);
	server_info info;
	rows r;
	mem_source m = {0};
	sl_event_source src = {&mem_ops, &m, "bench:paced"};
	tally t = {0};
	run_result res;
	double mean = 0;
	char extra[256];

	fresh_database(url, &info);
	make_rows(&r, n, seed);
	m.r = &r;
	m.rate = rate;
	t.paced = &m;
	t.total = n;
	if ((t.event_ns = malloc(n * sizeof(*t.event_ns))) == NULL)
		die("out of memory for event latencies");
	run_mirror(&src, url, handler, 1, &t, &res);
	if (t.n_events != n)
		die("latency: %zu events committed, not %zu", t.n_events, n);
	for (size_t i = 0; i < n; i++)
		mean += (double)t.event_ns[i] / 1e6 / (double)n;
	qsort(t.event_ns, n, sizeof(*t.event_ns), cmp_u64);
	snprintf(extra, sizeof(extra),
	         " rate=%" PRIu64 " run_s=%" PRIu64 " event_p50_ms=%.2f event_p99_ms=%.2f"
	         " event_max_ms=%.2f event_mean_ms=%.2f events_per_batch=%.1f seed=%" PRIu64,
	         rate, seconds, pct_ms(t.event_ns, n, 0.50), pct_ms(t.event_ns, n, 0.99),
	         pct_ms(t.event_ns, n, 1.0), mean, (double)n / (double)res.p.batches, seed);
	print_mirror("latency", handler, &res, &t, &info, extra);
	free(t.event_ns);
	free(t.batch_ns);
	free_rows(&r);
	return 0;
}

/* ------------------------------------------------------------------- main */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: mirror_bench copy URL N\n"
	                "       mirror_bench mirror URL N [none|noop|sql]\n"
	                "       mirror_bench ndjson URL FILE\n"
	                "       mirror_bench ndjson-gen FILE N\n"
	                "       mirror_bench latency URL SECONDS RATE [none|noop|sql]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int rc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	sl_log_set_level(SL_LOG_WARN);
	if (strcmp(mode, "copy") == 0 && argc == 4)
		rc = run_copy(argv[2], (size_t)parse_u64(argv[3], "N"));
	else if (strcmp(mode, "mirror") == 0 && (argc == 4 || argc == 5))
		rc = mirror_mode(argv[2], (size_t)parse_u64(argv[3], "N"),
		                 argc == 5 ? argv[4] : "none");
	else if (strcmp(mode, "ndjson") == 0 && argc == 4)
		rc = ndjson_mode(argv[2], argv[3]);
	else if (strcmp(mode, "ndjson-gen") == 0 && argc == 4)
		rc = ndjson_gen(argv[2], (size_t)parse_u64(argv[3], "N"));
	else if (strcmp(mode, "latency") == 0 && (argc == 5 || argc == 6))
		rc = latency_mode(argv[2], parse_u64(argv[3], "SECONDS"),
		                  parse_u64(argv[4], "RATE"), argc == 6 ? argv[5] : "none");
	else
		usage();
	return rc;
}
