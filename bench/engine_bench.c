/*
 * engine_bench: what bench/engine_bench.sh measures of the tiered write
 * engine (include/sluice/engine.h), through the library, next to the
 * physical limits of the same disk measured in the same run. Every mode
 * prints one line per measurement, `what=NAME key=value ...`, times in
 * microseconds (_us) or seconds (_s).
 *
 * L3 is `store` (a fresh store under DIR, namespace "engine", the
 * engine's default), `pg` (a fresh table in the PostgreSQL at
 * $SLUICE_PG_URL), `mysql` (a fresh table in the MariaDB at
 * $SLUICE_MYSQL_URL) or `null` (a tier in this file that takes every batch
 * at once and holds nothing: what the engine costs without L3's work).
 * Keys are 32 bytes ("b/TTT/" and 26 digits: thread, number), values 256
 * random bytes. Per-call latencies are taken with clock_gettime around
 * the call into a preallocated array, sorted at the end; `timer` gives
 * the cost of that pair of clock reads.
 *
 *   engine_bench timer
 *       The pair of clock_gettime calls around each timed call.
 *   engine_bench handoff
 *       Two threads hand a turn back and forth through a mutex and a
 *       condition variable: what waking a blocked thread costs on this
 *       machine, which a `local` submit pays at least once.
 *   engine_bench wal-limit DIR MIB
 *       The disk's sequential write rate, as the WAL writes: MIB MiB by
 *       1 MiB pwrite()s, an fdatasync every 1 MiB, then again every
 *       16 MiB; and as records of this benchmark's size (323 bytes in the
 *       WAL) a second.
 *   engine_bench fsync-limit DIR SECONDS
 *       4 KiB appended and fdatasync'd, in a loop, for SECONDS: the least
 *       a `local` acknowledgement can wait.
 *   engine_bench submit DIR L3 ACK THREADS AMOUNT
 *       THREADS threads submit distinct keys at ACK (memory or local):
 *       AMOUNT submits in all at memory, for AMOUNT seconds at local.
 *       Submits a second, per-call latency, the process's CPU time (all
 *       threads: writers, the WAL's syncer, the drain), the WAL's
 *       fdatasync calls and the rows L3 took during the run. The process
 *       then exits without closing the engine: close would first drain
 *       the backlog into L3, a minute for 1,000,000 rows into a store,
 *       which is the flush measurement's business.
 *   engine_bench get DIR L3 KEYS
 *       Writes KEYS keys and flushes them; gets each once in random order,
 *       timed, and again untimed (L1 hits); closes and reopens the engine
 *       with a 256 KiB L1 and gets each once more (L3 hits), then reads
 *       them straight from the backend (a second store handle, or the
 *       tier's SELECT by key); then gets KEYS absent keys, timed and
 *       untimed (misses the trusted filter answers). The engine's counters
 *       say where each get was answered; the reopen line says how many
 *       records the WAL replayed and the drain wrote again at open.
 *   engine_bench flush DIR L3 ROWS
 *       A plain batched insert of ROWS rows into the L3 backend (store:
 *       sl_batch_put and sl_batch_commit, 1000 a commit, into a fresh
 *       mutable namespace; pg: a binary COPY of 1000 rows per statement,
 *       each its own transaction, into a plain table with the engine's
 *       columns; mysql: a multi-row INSERT of 1000 rows per statement, each
 *       its own transaction, into a plain InnoDB table with the tier's
 *       columns), then the same rows submitted at memory to a fresh engine
 *       and timed until sl_engine_flush returns: end to end, and the
 *       drain alone (the rows it wrote after the last submit returned,
 *       over that time).
 *   engine_bench pg-steps DIR ROWS
 *       Where a PostgreSQL batch's time goes: the statements the tier
 *       sends in one exchange, one at a time and timed each, for ROWS
 *       rows in batches of 1000 into a fresh table, next to a plain COPY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <mysql.h>

#include "engine/engine_internal.h"
#include "connect/server_url.h"
#include "sluice/engine.h"
#include "sluice/store.h"

#define BENCH_NAME "engine_bench"
#include "bench_util.h"

#define KEY_LEN     32
#define VALUE_LEN   256
#define WAL_RECORD  (8 + 27 + KEY_LEN + VALUE_LEN) /* as wal.c stores it */
#define BATCH_ROWS  1000
#define SMALL_L1    ((uint64_t)256 << 10)
#define BIG_L1      ((uint64_t)4 << 30)
#define BIG_WAL     ((uint64_t)16 << 30)
#define FLUSH_MS    600000u
#define CLOSE_MS    600000u
#define LOCAL_PER_S 1500000 /* room in the latency arrays of a timed run */
#define MIB         ((size_t)1 << 20)

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (*text == '\0' || *end != '\0' || *text == '-' || v == 0)
		die("%s: not a positive number: %s", what, text);
	return (uint64_t)v;
}

/* "b/TTT/" and 26 digits of n: 32 bytes, no terminator. */
static void make_key(char out[KEY_LEN], char prefix, unsigned thread, uint64_t n)
{
	out[0] = prefix;
	out[1] = '/';
	out[2] = (char)('0' + thread / 100 % 10);
	out[3] = (char)('0' + thread / 10 % 10);
	out[4] = (char)('0' + thread % 10);
	out[5] = '/';
	for (int i = KEY_LEN - 1; i >= 6; i--, n /= 10)
		out[i] = (char)('0' + n % 10);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)sl_xorshift64(&s);
}

/* The value of row n: random bytes with n in the first eight. */
static void stamp(uint8_t value[VALUE_LEN], uint64_t n)
{
	memcpy(value, &n, sizeof(n));
}

static void shuffle(uint64_t *a, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++)
		a[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = sl_xorshift64(&s) % i;
		uint64_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* ------------------------------------------------------------- latencies */

typedef struct lat {
	uint32_t *ns; /* each call's duration, saturated at 4.29 s */
	size_t n, cap;
} lat;

static void lat_init(lat *l, size_t cap)
{
	l->ns = calloc(cap ? cap : 1, sizeof(*l->ns));
	if (!l->ns)
		die("out of memory for %zu latencies", cap);
	l->n = 0;
	l->cap = cap;
}

static inline void lat_add(lat *l, uint64_t ns)
{
	l->ns[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* p50, p99, p99.9, max and mean of l, as key=value (µs). Sorts l. */
static void lat_print(lat *l)
{
	double sum = 0;
	if (l->n == 0) {
		printf(" p50_us=0 p99_us=0 p999_us=0 max_us=0 mean_us=0");
		return;
	}
	qsort(l->ns, l->n, sizeof(*l->ns), cmp_u32);
	for (size_t i = 0; i < l->n; i++)
		sum += l->ns[i];
#define AT(q) (l->ns[(size_t)((double)(l->n - 1) * (q))] / 1000.0)
	printf(" p50_us=%.3f p99_us=%.3f p999_us=%.3f max_us=%.1f mean_us=%.3f", AT(0.50), AT(0.99),
	       AT(0.999), l->ns[l->n - 1] / 1000.0, sum / (double)l->n / 1000.0);
#undef AT
}

/* ------------------------------------------------------------ null tier */

static int null_write(void *impl, sl_tier_row *rows, size_t n)
{
	(void)impl;
	for (size_t i = 0; i < n; i++) {
		rows[i].rc = SL_OK;
		rows[i].error[0] = '\0';
		rows[i].applied = 1;
		rows[i].was_live = 0;
		rows[i].is_live = !rows[i].deleted;
	}
	return SL_OK;
}

static int null_get(void *impl, const char *key, size_t key_len, sl_buf *value, uint64_t *version,
                    int *deleted)
{
	(void)impl, (void)key, (void)key_len, (void)value, (void)version, (void)deleted;
	return sl_error_set(SL_ENOTFOUND, "the null tier holds nothing");
}

static int null_scan(void *impl, const char *after, size_t after_len, size_t limit,
                     sl_tier_key_fn cb, void *ctx, size_t *n)
{
	(void)impl, (void)after, (void)after_len, (void)limit, (void)cb, (void)ctx;
	*n = 0;
	return SL_OK;
}

static int null_position(void *impl, sl_digest *out)
{
	(void)impl;
	memset(out, 0, sizeof(*out));
	return SL_OK;
}

static void null_close(void *impl)
{
	(void)impl;
}

static const sl_tier_ops null_ops = {.name = "null",
                                     .write = null_write,
                                     .get = null_get,
                                     .scan_live = null_scan,
                                     .position = null_position,
                                     .close = null_close};

/* --------------------------------------------------------------- engines */

typedef struct bench_l3 {
	const char *kind; /* store, pg, mysql, null */
	char wal[4096];
	char dir[4096];  /* store */
	char table[64];  /* pg */
	const char *url; /* pg, mysql */
} bench_l3;

static void l3_setup(bench_l3 *b, const char *dir, const char *kind, const char *name)
{
	memset(b, 0, sizeof(*b));
	if (strcmp(kind, "store") != 0 && strcmp(kind, "pg") != 0 && strcmp(kind, "mysql") != 0 &&
	    strcmp(kind, "null") != 0)
		die("L3 is store, pg, mysql or null, not %s", kind);
	b->kind = kind;
	snprintf(b->wal, sizeof(b->wal), "%s/%s-%ld-wal", dir, name, (long)getpid());
	snprintf(b->dir, sizeof(b->dir), "%s/%s-%ld-l3", dir, name, (long)getpid());
	snprintf(b->table, sizeof(b->table), "eb_%s_%ld", name, (long)getpid());
	if (strcmp(kind, "pg") == 0 && (b->url = getenv("SLUICE_PG_URL")) == NULL)
		die("L3 pg needs SLUICE_PG_URL");
	if (strcmp(kind, "mysql") == 0 && (b->url = getenv("SLUICE_MYSQL_URL")) == NULL)
		die("L3 mysql needs SLUICE_MYSQL_URL");
}

static sl_engine *engine_open(const bench_l3 *b, uint64_t l1_budget)
{
	sl_engine_config c;
	sl_engine *e;
	sl_engine_config_init(&c);
	c.wal_dir = b->wal;
	c.wal_max_bytes = BIG_WAL;
	c.l1_budget_bytes = l1_budget;
	if (strcmp(b->kind, "pg") == 0 || strcmp(b->kind, "mysql") == 0) {
		c.l3_type = strcmp(b->kind, "pg") == 0 ? SL_L3_POSTGRESQL : SL_L3_MYSQL;
		c.l3_url = b->url;
		c.l3_table = b->table;
	} else {
		c.l3_dir = b->dir;
		c.l3_namespace = "engine";
	}
	if (strcmp(b->kind, "null") == 0) {
		sl_tier t = {&null_ops, NULL};
		check(engine_open_tier(&e, &c, &t), "open the engine");
	} else {
		check(sl_engine_open(&e, &c), "open the engine");
	}
	return e;
}

static sl_engine_stats stats_of(sl_engine *e)
{
	sl_engine_stats st;
	check(sl_engine_stats_get(e, &st), "stats");
	return st;
}

static uint64_t wal_syncs(sl_engine *e)
{
	sl_wal_stats ws;
	sl_wal_stats_get(e->wal, &ws);
	return ws.syncs;
}

/* The drain rebuilds the filter from L3 after open; gets and writes are
 * measured once it is trusted. */
static void wait_trusted(sl_engine *e)
{
	uint64_t deadline = now_ns() + 60 * (uint64_t)1000000000;
	while (!stats_of(e).filter_trusted) {
		if (now_ns() > deadline)
			die("the filter was not trusted within 60 s");
		sl_sleep_ms(1);
	}
}

/* ----------------------------------------------------------------- timer */

static int timer_cost(void)
{
	enum { N = 2000000 };
	uint64_t start = now_ns(), sink = 0;
	for (int i = 0; i < N; i++) {
		uint64_t a = now_ns();
		sink += now_ns() - a;
	}
	printf("what=timer pair_ns=%.1f sink=%" PRIu64 "\n", (double)(now_ns() - start) / N,
	       sink / N);
	return 0;
}

/* The cost of waking a blocked thread here: two threads hand a turn back
 * and forth through a mutex and a condition variable, as a `local` writer
 * and the WAL's syncer do; a round trip is two wake-ups. */
static pthread_mutex_t handoff_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handoff_cond = PTHREAD_COND_INITIALIZER;
static int handoff_turn;

enum { HANDOFF_ROUNDS = 200000 };

static void handoff_play(int mine, int theirs)
{
	for (int i = 0; i < HANDOFF_ROUNDS; i++) {
		pthread_mutex_lock(&handoff_mu);
		while (handoff_turn != mine)
			pthread_cond_wait(&handoff_cond, &handoff_mu);
		handoff_turn = theirs;
		pthread_cond_signal(&handoff_cond);
		pthread_mutex_unlock(&handoff_mu);
	}
}

static void *handoff_main(void *arg)
{
	(void)arg;
	handoff_play(1, 0);
	return NULL;
}

static int handoff(void)
{
	pthread_t t;
	uint64_t start = now_ns();
	if (pthread_create(&t, NULL, handoff_main, NULL) != 0)
		die("cannot start a thread");
	handoff_play(0, 1);
	pthread_join(t, NULL);
	double us = (double)(now_ns() - start) / 1e3 / HANDOFF_ROUNDS;
	printf("what=handoff rounds=%d round_trip_us=%.2f wakeup_us=%.2f\n", HANDOFF_ROUNDS, us,
	       us / 2);
	return 0;
}

/* ------------------------------------------------------------ the disk */

static int open_scratch(const char *dir, const char *name, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	return fd;
}

static void write_at(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("pwrite: %s", strerror(errno));
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
}

static int wal_limit(const char *dir, uint64_t mib)
{
	char path[4200];
	uint8_t *buf = malloc(MIB);
	if (!buf)
		die("out of memory");
	fill_random(buf, MIB, 42);
	const size_t every[2] = {1, 16};
	for (int k = 0; k < 2; k++) {
		int fd = open_scratch(dir, "wal-limit.bin", path, sizeof(path));
		uint64_t start = now_ns(), syncs = 0;
		for (uint64_t i = 0; i < mib; i++) {
			write_at(fd, buf, MIB, i * MIB);
			if ((i + 1) % every[k] == 0 || i + 1 == mib) {
				if (fdatasync(fd) != 0)
					die("fdatasync: %s", strerror(errno));
				syncs++;
			}
		}
		double s = (double)(now_ns() - start) / 1e9;
		close(fd);
		unlink(path);
		printf("what=wal_limit sync_every_mib=%zu mib=%" PRIu64 " s=%.3f mib_per_s=%.1f "
		       "syncs=%" PRIu64 " records_per_s=%.0f record_bytes=%d\n",
		       every[k], mib, s, (double)mib / s, syncs, (double)mib * MIB / s / WAL_RECORD,
		       WAL_RECORD);
	}
	free(buf);
	return 0;
}

static int fsync_limit(const char *dir, uint64_t seconds)
{
	char path[4200];
	uint8_t buf[4096];
	lat l;
	fill_random(buf, sizeof(buf), 7);
	lat_init(&l, 1000000);
	int fd = open_scratch(dir, "fsync-limit.bin", path, sizeof(path));
	uint64_t start = now_ns(), end = start + seconds * 1000000000u, off = 0;
	while (now_ns() < end && l.n < l.cap) {
		uint64_t t = now_ns();
		write_at(fd, buf, sizeof(buf), off);
		if (fdatasync(fd) != 0)
			die("fdatasync: %s", strerror(errno));
		lat_add(&l, now_ns() - t);
		off += sizeof(buf);
	}
	double s = (double)(now_ns() - start) / 1e9;
	close(fd);
	unlink(path);
	printf("what=fsync_limit n=%zu s=%.3f per_s=%.0f", l.n, s, (double)l.n / s);
	lat_print(&l);
	printf("\n");
	free(l.ns);
	return 0;
}

/* -------------------------------------------------------------- submits */

typedef struct worker {
	sl_engine *e;
	unsigned id;
	sl_ack ack;
	uint64_t count; /* memory: submits to make; local: 0 (until stop) */
	atomic_int *stop;
	pthread_barrier_t *start;
	lat l;
	uint64_t done;
	int capped; /* the latency array filled before the run ended */
} worker;

static void *submit_main(void *arg)
{
	worker *w = arg;
	sl_submit_options o;
	char key[KEY_LEN];
	uint8_t value[VALUE_LEN];
	sl_submit_options_init(&o);
	o.ack = w->ack;
	fill_random(value, sizeof(value), 1000 + w->id);
	pthread_barrier_wait(w->start);
	for (uint64_t n = 0;; n++) {
		if (w->count ? n == w->count : atomic_load_explicit(w->stop, memory_order_relaxed))
			break;
		if (w->l.n == w->l.cap) {
			w->capped = 1;
			break;
		}
		make_key(key, 'b', w->id, n);
		stamp(value, n);
		uint64_t t = now_ns();
		int rc = sl_engine_submit(w->e, key, KEY_LEN, value, VALUE_LEN, &o, NULL);
		lat_add(&w->l, now_ns() - t);
		check(rc, "submit");
		w->done++;
	}
	return NULL;
}

static int submit(const char *dir, const char *kind, const char *ack_name, unsigned threads,
                  uint64_t amount)
{
	bench_l3 b;
	sl_ack ack;
	char name[64];
	check(sl_ack_parse(&ack, ack_name), "acknowledgement level");
	if (ack == SL_ACK_L3)
		die("submit measures memory and local");
	snprintf(name, sizeof(name), "submit-%s-%s-%u", kind, ack_name, threads);
	l3_setup(&b, dir, kind, name);
	sl_engine *e = engine_open(&b, BIG_L1);
	wait_trusted(e);

	worker *ws = calloc(threads, sizeof(*ws));
	pthread_t *tids = calloc(threads, sizeof(*tids));
	pthread_barrier_t start;
	atomic_int stop = 0;
	if (!ws || !tids)
		die("out of memory");
	pthread_barrier_init(&start, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++) {
		ws[i] = (worker){.e = e, .id = i, .ack = ack, .stop = &stop, .start = &start};
		if (ack == SL_ACK_MEMORY) {
			ws[i].count = amount / threads + (i < amount % threads);
			lat_init(&ws[i].l, ws[i].count);
		} else {
			lat_init(&ws[i].l, amount * LOCAL_PER_S / threads + 1024);
		}
		if (pthread_create(&tids[i], NULL, submit_main, &ws[i]) != 0)
			die("cannot start thread %u", i);
	}
	uint64_t syncs0 = wal_syncs(e);
	sl_engine_stats st0 = stats_of(e);
	double cpu0 = cpu_s();
	pthread_barrier_wait(&start);
	uint64_t t0 = now_ns();
	if (ack == SL_ACK_LOCAL) {
		sl_sleep_ms(amount * 1000);
		atomic_store(&stop, 1);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	double s = (double)(now_ns() - t0) / 1e9, cpu = cpu_s() - cpu0;
	uint64_t syncs = wal_syncs(e) - syncs0;
	sl_engine_stats st = stats_of(e);

	lat all;
	uint64_t total = 0;
	int capped = 0;
	for (unsigned i = 0; i < threads; i++)
		total += ws[i].done, capped |= ws[i].capped;
	lat_init(&all, total);
	for (unsigned i = 0; i < threads; i++) {
		memcpy(all.ns + all.n, ws[i].l.ns, ws[i].l.n * sizeof(*all.ns));
		all.n += ws[i].l.n;
		free(ws[i].l.ns);
	}
	printf("what=submit l3=%s ack=%s threads=%u n=%" PRIu64 " s=%.3f per_s=%.0f", kind,
	       ack_name, threads, total, s, (double)total / s);
	lat_print(&all);
	printf(" cpu_s=%.2f cpu_us_per_submit=%.3f syncs=%" PRIu64 " per_sync=%.1f"
	       " l3_rows_during=%" PRIu64 " l3_lag_at_end=%" PRIu64 " pressure_at_end=%s"
	       " rejected=%" PRIu64 " capped=%d\n",
	       cpu, cpu * 1e6 / (double)total, syncs, syncs ? (double)total / (double)syncs : 0.0,
	       st.l3_rows - st0.l3_rows, st.l3_lag, sl_pressure_name(st.pressure),
	       st.rejected - st0.rejected, capped);
	/* Not closed: close would drain the backlog into L3 first, which is
	 * the flush measurement's business and takes a minute at 1,000,000
	 * rows into a store. The directory is thrown away. */
	fflush(stdout);
	_exit(0);
}

/* ------------------------------------------------------------------ gets */

/* Gets the key of each number in order (make_key: prefix, thread 0),
 * timing each call into l unless l is NULL, and checks every value found.
 * expect_found: 1 every key must be found, 0 none, -1 either. Returns how
 * many were found. */
static uint64_t get_pass(sl_engine *e, char prefix, const uint64_t *order, size_t n, lat *l,
                         int expect_found)
{
	sl_buf value = SL_BUF_INIT(SIZE_MAX);
	char key[KEY_LEN];
	uint64_t found = 0;
	for (size_t i = 0; i < n; i++) {
		make_key(key, prefix, 0, order[i]);
		uint64_t t = now_ns();
		int rc = sl_engine_get(e, key, KEY_LEN, &value, NULL);
		if (l)
			lat_add(l, now_ns() - t);
		if (rc == SL_OK) {
			if (value.len != VALUE_LEN || memcmp(value.data, &order[i], 8) != 0)
				die("get %.32s: wrong value (%zu bytes)", key, value.len);
			found++;
		} else if (rc != SL_ENOTFOUND) {
			check(rc, "get");
		}
	}
	sl_buf_free(&value);
	if (expect_found >= 0 && found != (expect_found ? n : 0))
		die("%" PRIu64 " of %zu gets found their key", found, n);
	return found;
}

static void print_get(const char *where, const char *kind, lat *l, double untimed_us,
                      uint64_t answered, const char *counter)
{
	printf("what=get from=%s l3=%s n=%zu", where, kind, l->n);
	lat_print(l);
	printf(" mean_untimed_us=%.3f %s=%" PRIu64 "\n", untimed_us, counter, answered);
}

static void direct_pass(const bench_l3 *b, const uint64_t *order, size_t n, lat *l);

static int gets(const char *dir, const char *kind, uint64_t keys)
{
	bench_l3 b;
	sl_submit_options o;
	char key[KEY_LEN];
	uint8_t value[VALUE_LEN];
	uint64_t *order = malloc(keys * sizeof(*order));
	lat l;
	if (!order)
		die("out of memory");
	if (strcmp(kind, "null") == 0)
		die("get reads back from L3: store or pg");
	l3_setup(&b, dir, kind, "get");
	sl_submit_options_init(&o);
	o.ack = SL_ACK_MEMORY;
	fill_random(value, sizeof(value), 99);

	sl_engine *e = engine_open(&b, BIG_L1);
	wait_trusted(e);
	for (uint64_t i = 0; i < keys; i++) {
		make_key(key, 'b', 0, i);
		stamp(value, i);
		check(sl_engine_submit(e, key, KEY_LEN, value, VALUE_LEN, &o, NULL), "submit");
	}
	check(sl_engine_flush(e, FLUSH_MS), "flush");

	/* L1: every key was just written and L1 has room for all */
	sl_engine_stats st0 = stats_of(e);
	shuffle(order, keys, 1);
	lat_init(&l, keys);
	get_pass(e, 'b', order, keys, &l, 1);
	uint64_t t = now_ns();
	get_pass(e, 'b', order, keys, NULL, 1);
	double untimed = (double)(now_ns() - t) / 1e3 / (double)keys;
	sl_engine_stats st = stats_of(e);
	print_get("l1", kind, &l, untimed, (st.gets_l1 - st0.gets_l1) / 2, "answered_l1");
	free(l.ns);
	sl_engine_close(e, CLOSE_MS);

	/* L3: a new engine on the same WAL and L3 with a 256 KiB L1; what the
	 * WAL still holds is replayed into L1 and drained again first */
	t = now_ns();
	e = engine_open(&b, SMALL_L1);
	uint64_t replayed = stats_of(e).l1_entries;
	check(sl_engine_flush(e, FLUSH_MS), "flush the replayed WAL");
	wait_trusted(e);
	double reopen_s = (double)(now_ns() - t) / 1e9;
	st0 = stats_of(e);
	uint64_t redrained = st0.l3_rows;
	shuffle(order, keys, 2);
	lat_init(&l, keys);
	get_pass(e, 'b', order, keys, &l, 1);
	st = stats_of(e);
	print_get("l3", kind, &l, 0, st.gets_l3 - st0.gets_l3, "answered_l3");
	printf("what=get_l3_context l3=%s l1_entries=%" PRIu64 " l1_bytes=%" PRIu64
	       " answered_l1=%" PRIu64 " filter_keys=%" PRIu64 " replayed_at_open=%" PRIu64
	       " redrained=%" PRIu64 " reopen_s=%.2f\n",
	       kind, st.l1_entries, st.l1_bytes, st.gets_l1 - st0.gets_l1, st.filter_keys, replayed,
	       redrained, reopen_s);
	free(l.ns);

	/* the backend read alone, the same keys in another order */
	shuffle(order, keys, 3);
	lat_init(&l, keys);
	direct_pass(&b, order, keys, &l);
	print_get("direct", kind, &l, 0, l.n, "answered_backend");
	free(l.ns);

	/* misses: absent keys ("z/..."), the filter trusted */
	st0 = stats_of(e);
	lat_init(&l, keys);
	get_pass(e, 'z', order, keys, &l, -1);
	t = now_ns();
	get_pass(e, 'z', order, keys, NULL, -1);
	untimed = (double)(now_ns() - t) / 1e3 / (double)keys;
	st = stats_of(e);
	print_get("filter", kind, &l, untimed, (st.gets_filter_miss - st0.gets_filter_miss) / 2,
	          "answered_filter");
	free(l.ns);
	sl_engine_close(e, CLOSE_MS);
	free(order);
	return 0;
}

/* ---------------------------------------------------------------- flush */

static double plain_store(const bench_l3 *b, uint64_t rows)
{
	sl_store_options so;
	sl_store *s;
	char key[KEY_LEN];
	uint8_t value[VALUE_LEN];
	fill_random(value, sizeof(value), 5);
	sl_store_options_init(&so); /* as the store tier opens it */
	so.flags = SL_STORE_CREATE;
	check(sl_store_open(&s, b->dir, &so), "open the plain store");
	check(sl_store_ns_create(s, "plain", SL_NS_MUTABLE), "create the plain namespace");
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < rows;) {
		sl_batch *batch;
		check(sl_batch_new(&batch, s, "plain"), "batch");
		for (uint64_t k = 0; k < BATCH_ROWS && i < rows; k++, i++) {
			make_key(key, 'b', 0, i);
			stamp(value, i);
			check(sl_batch_put(batch, key, KEY_LEN, value, VALUE_LEN), "put");
		}
		check(sl_batch_commit(batch, NULL), "commit");
		sl_batch_free(batch);
	}
	double s_ = (double)(now_ns() - t0) / 1e9;
	sl_store_free(s);
	return s_;
}

static PGresult *pg_exec(PGconn *c, const char *sql, ExecStatusType want)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != want)
		die("PostgreSQL: %s: %s", sql, PQerrorMessage(c));
	return r;
}

/* Rows [first, first + n) in COPY's binary format: with_idx, 5 fields
 * (idx int4, as the tier's staging table has it) else 4: key text, value
 * bytea, version int8, deleted bool (updated_at takes its default). */
static void copy_data(sl_buf *data, uint64_t first, uint64_t n, int with_idx)
{
	static const uint8_t header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	char key[KEY_LEN];
	uint8_t value[VALUE_LEN];
	fill_random(value, sizeof(value), 5);
	sl_buf_reset(data);
	check(sl_buf_append(data, header, sizeof(header)), "copy data");
	for (uint64_t i = first; i < first + n; i++) {
		uint8_t f[2], idx[8], len[4], tail[17];
		make_key(key, 'b', 0, i);
		stamp(value, i);
		f[0] = 0, f[1] = with_idx ? 5 : 4;
		sl_be32_put(idx, 4);
		sl_be32_put(idx + 4, (uint32_t)(i - first));
		sl_be32_put(len, KEY_LEN);
		check(sl_buf_append(data, f, sizeof(f)), "copy data");
		if (with_idx)
			check(sl_buf_append(data, idx, sizeof(idx)), "copy data");
		check(sl_buf_append(data, len, sizeof(len)), "copy data");
		check(sl_buf_append(data, key, KEY_LEN), "copy data");
		sl_be32_put(len, VALUE_LEN);
		check(sl_buf_append(data, len, sizeof(len)), "copy data");
		check(sl_buf_append(data, value, VALUE_LEN), "copy data");
		sl_be32_put(tail, 8);
		sl_be64_put(tail + 4, i + 1);
		sl_be32_put(tail + 12, 1);
		tail[16] = 0;
		check(sl_buf_append(data, tail, sizeof(tail)), "copy data");
	}
	check(sl_buf_append(data, "\377\377", 2), "copy data");
}

static PGconn *pg_connect(const char *url)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		die("PostgreSQL: %s", PQerrorMessage(c));
	return c;
}

static void pg_copy(PGconn *c, const char *sql, const sl_buf *data)
{
	PQclear(pg_exec(c, sql, PGRES_COPY_IN));
	if (PQputCopyData(c, (const char *)data->data, (int)data->len) != 1 ||
	    PQputCopyEnd(c, NULL) != 1)
		die("PostgreSQL COPY: %s", PQerrorMessage(c));
	PGresult *r = PQgetResult(c);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die("PostgreSQL COPY: %s", PQerrorMessage(c));
	PQclear(r);
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
}

#define PG_COLUMNS                                                                                 \
	"(key text COLLATE \"C\" PRIMARY KEY, value bytea, version bigint NOT NULL,"               \
	" deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now())"

/* One binary COPY of 1000 rows per statement, each its own transaction,
 * into a plain table with the tier's columns. */
static double plain_pg(const bench_l3 *b, uint64_t rows)
{
	char sql[512];
	sl_buf data = SL_BUF_INIT(SIZE_MAX);
	PGconn *c = pg_connect(b->url);
	snprintf(sql, sizeof(sql), "CREATE TABLE plain_%s " PG_COLUMNS, b->table);
	PQclear(pg_exec(c, sql, PGRES_COMMAND_OK));
	snprintf(sql, sizeof(sql),
	         "COPY plain_%s (key, value, version, deleted) FROM STDIN (FORMAT binary)",
	         b->table);
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < rows; i += BATCH_ROWS) {
		copy_data(&data, i, rows - i < BATCH_ROWS ? rows - i : BATCH_ROWS, 0);
		pg_copy(c, sql, &data);
	}
	double s = (double)(now_ns() - t0) / 1e9;
	PQfinish(c);
	sl_buf_free(&data);
	return s;
}

/* A multi-row INSERT of 1000 rows per statement, each its own transaction
 * (autocommit), into a plain InnoDB table with the tier's columns, the
 * rows escaped as the tier escapes them. */
static double plain_mysql(const bench_l3 *b, uint64_t rows)
{
	sl_server_url u;
	MYSQL *m = mysql_init(NULL);
	sl_buf sql = SL_BUF_INIT(SIZE_MAX);
	char key[KEY_LEN], esc[2 * VALUE_LEN + 1];
	uint8_t value[VALUE_LEN];
	fill_random(value, sizeof(value), 5);
	check(sl_server_url_parse(&u, b->url, &sl_server_url_mysql), "MariaDB url");
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "binary");
	if (mysql_real_connect(m, u.host, u.user, u.password, u.database, u.port, NULL, 0) == NULL)
		die("MariaDB: %s", mysql_error(m));
	check(sl_buf_printf(&sql,
	                    "CREATE TABLE plain_%s (`key` VARBINARY(1024) NOT NULL PRIMARY KEY,"
	                    " value LONGBLOB NULL, version BIGINT NOT NULL, deleted BOOL NOT NULL"
	                    " DEFAULT 0, updated_at DATETIME(6) NOT NULL DEFAULT"
	                    " CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
	                    b->table),
	      "sql");
	if (mysql_real_query(m, (const char *)sql.data, sql.len) != 0)
		die("MariaDB: %s", mysql_error(m));
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < rows;) {
		sl_buf_reset(&sql);
		check(sl_buf_printf(&sql,
		                    "INSERT INTO plain_%s (`key`, value, version, deleted,"
		                    " updated_at) VALUES ",
		                    b->table),
		      "sql");
		for (uint64_t k = 0; k < BATCH_ROWS && i < rows; k++, i++) {
			make_key(key, 'b', 0, i);
			stamp(value, i);
			mysql_real_escape_string(m, esc, (const char *)value, VALUE_LEN);
			check(sl_buf_printf(&sql,
			                    "%s(_binary'%.*s',_binary'%s',%" PRIu64 ",0,NOW(6))",
			                    k ? "," : "", KEY_LEN, key, esc, i + 1),
			      "sql");
		}
		if (mysql_real_query(m, (const char *)sql.data, sql.len) != 0)
			die("MariaDB: %s", mysql_error(m));
	}
	double s = (double)(now_ns() - t0) / 1e9;
	mysql_close(m);
	sl_server_url_clear(&u);
	sl_buf_free(&sql);
	return s;
}

/* Reads the keys straight from the L3 backend, bypassing the engine: a
 * second store handle (sl_store_get), or the tier's own SELECT by key,
 * prepared, binary results. */
static void direct_pass(const bench_l3 *b, const uint64_t *order, size_t n, lat *l)
{
	char key[KEY_LEN];
	if (strcmp(b->kind, "store") == 0) {
		sl_store_options so;
		sl_store *s;
		sl_buf value = SL_BUF_INIT(SIZE_MAX);
		sl_store_options_init(&so);
		check(sl_store_open(&s, b->dir, &so), "open the L3 store");
		for (size_t i = 0; i < n; i++) {
			make_key(key, 'b', 0, order[i]);
			uint64_t t = now_ns();
			int rc = sl_store_get(s, "engine", key, KEY_LEN, &value, NULL);
			lat_add(l, now_ns() - t);
			check(rc, "sl_store_get");
			if (value.len != 9 + VALUE_LEN)
				die("sl_store_get: %zu bytes", value.len);
		}
		sl_buf_free(&value);
		sl_store_free(s);
		return;
	}
	if (strcmp(b->kind, "pg") != 0)
		return;
	char sql[256];
	PGconn *c = pg_connect(b->url);
	snprintf(sql, sizeof(sql), "SELECT version, deleted, value FROM %s WHERE key = $1",
	         b->table);
	PQclear(PQprepare(c, "get", sql, 1, NULL));
	for (size_t i = 0; i < n; i++) {
		const char *values[1] = {key};
		int lengths[1] = {KEY_LEN}, formats[1] = {1};
		make_key(key, 'b', 0, order[i]);
		uint64_t t = now_ns();
		PGresult *r = PQexecPrepared(c, "get", 1, values, lengths, formats, 1);
		lat_add(l, now_ns() - t);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
		    PQgetlength(r, 0, 2) != VALUE_LEN)
			die("PostgreSQL get: %s", PQerrorMessage(c));
		PQclear(r);
	}
	PQfinish(c);
}

/* Where a PostgreSQL batch's time goes: the statements the tier sends in
 * one exchange (src/engine/tier_pg.c, UPSERT_SQL), sent one at a time and
 * timed each, on a fresh table; next to a plain COPY of the same rows. */
static int pg_steps(const char *dir, uint64_t rows)
{
	enum { BEGIN, STAGE, LOCK, UPSERT, META, COMMIT, N_STEPS };
	static const char *const names[N_STEPS] = {"begin",  "copy_stage", "lock_select",
	                                           "upsert", "meta",       "commit"};
	char sql[N_STEPS][1024];
	double ms[N_STEPS] = {0};
	bench_l3 b;
	sl_buf data = SL_BUF_INIT(SIZE_MAX);
	l3_setup(&b, dir, "pg", "steps");
	if (strcmp(b.kind, "pg") != 0)
		die("pg-steps needs pg");
	double plain_s = plain_pg(&b, rows);

	PGconn *c = pg_connect(b.url);
	char setup[2048];
	snprintf(setup, sizeof(setup),
	         "CREATE TABLE %s " PG_COLUMNS "; CREATE TABLE meta_%s (tbl text PRIMARY KEY,"
	         " batches bigint NOT NULL); INSERT INTO meta_%s VALUES ('%s', 0);"
	         " CREATE TEMP TABLE stage ON COMMIT DELETE ROWS AS SELECT 0::int4 AS idx, key,"
	         " value, version, deleted FROM %s WITH NO DATA",
	         b.table, b.table, b.table, b.table, b.table);
	PQclear(pg_exec(c, setup, PGRES_COMMAND_OK));
	snprintf(sql[BEGIN], sizeof(sql[0]), "BEGIN");
	snprintf(sql[STAGE], sizeof(sql[0]),
	         "COPY pg_temp.stage (idx, key, value, version, deleted) FROM STDIN (FORMAT "
	         "binary)");
	snprintf(sql[LOCK], sizeof(sql[0]),
	         "SELECT s.idx, t.deleted FROM pg_temp.stage s JOIN %s t ON t.key = s.key"
	         " ORDER BY s.key FOR UPDATE OF t",
	         b.table);
	snprintf(sql[UPSERT], sizeof(sql[0]),
	         "WITH up AS (INSERT INTO %s AS t (key, value, version, deleted, updated_at)"
	         " SELECT s.key, s.value, s.version, s.deleted, now() FROM pg_temp.stage s"
	         " ON CONFLICT (key) DO UPDATE SET value = excluded.value, version ="
	         " excluded.version, deleted = excluded.deleted, updated_at = excluded.updated_at"
	         " WHERE t.version < excluded.version RETURNING t.key)"
	         " SELECT s.idx FROM up JOIN pg_temp.stage s ON s.key = up.key",
	         b.table);
	snprintf(sql[META], sizeof(sql[0]),
	         "INSERT INTO meta_%s AS m (tbl, batches) VALUES ('%s', 1) ON CONFLICT (tbl)"
	         " DO UPDATE SET batches = m.batches + 1",
	         b.table, b.table);
	snprintf(sql[COMMIT], sizeof(sql[0]), "COMMIT");
	uint64_t batches = 0, t0 = now_ns();
	lat steps[N_STEPS];
	for (int k = 0; k < N_STEPS; k++)
		lat_init(&steps[k], rows / BATCH_ROWS + 1);
	for (uint64_t i = 0; i < rows; i += BATCH_ROWS, batches++) {
		uint64_t n = rows - i < BATCH_ROWS ? rows - i : BATCH_ROWS;
		copy_data(&data, i, n, 1);
		for (int k = 0; k < N_STEPS; k++) {
			uint64_t t = now_ns();
			if (k == STAGE) {
				pg_copy(c, sql[k], &data);
			} else {
				PGresult *r = PQexec(c, sql[k]);
				if (PQresultStatus(r) != PGRES_COMMAND_OK &&
				    PQresultStatus(r) != PGRES_TUPLES_OK)
					die("PostgreSQL: %s: %s", sql[k], PQerrorMessage(c));
				if ((k == UPSERT && (uint64_t)PQntuples(r) != n) ||
				    (k == LOCK && PQntuples(r) != 0))
					die("PostgreSQL: %s: %d rows", names[k], PQntuples(r));
				PQclear(r);
			}
			ms[k] += (double)(now_ns() - t) / 1e6;
			lat_add(&steps[k], now_ns() - t);
		}
	}
	double s = (double)(now_ns() - t0) / 1e9;
	printf("what=pg_steps rows=%" PRIu64 " batches=%" PRIu64 " plain_copy_ms=%.3f", rows,
	       batches, plain_s * 1e3 / (double)batches);
	for (int k = 0; k < N_STEPS; k++) {
		qsort(steps[k].ns, steps[k].n, sizeof(*steps[k].ns), cmp_u32);
		printf(" %s_ms=%.3f %s_p50_ms=%.3f", names[k], ms[k] / (double)batches, names[k],
		       steps[k].ns[steps[k].n / 2] / 1e6);
		free(steps[k].ns);
	}
	printf(" total_ms=%.3f per_s=%.0f plain_per_s=%.0f\n", s * 1e3 / (double)batches,
	       (double)rows / s, (double)rows / plain_s);
	PQfinish(c);
	sl_buf_free(&data);
	return 0;
}

static int flush_rate(const char *dir, const char *kind, uint64_t rows)
{
	bench_l3 b;
	sl_submit_options o;
	char key[KEY_LEN];
	uint8_t value[VALUE_LEN];
	if (strcmp(kind, "null") == 0)
		die("flush compares with a real backend: store, pg or mysql");

	l3_setup(&b, dir, kind, "plain");
	double plain_s = strcmp(kind, "pg") == 0      ? plain_pg(&b, rows)
	                 : strcmp(kind, "mysql") == 0 ? plain_mysql(&b, rows)
	                                              : plain_store(&b, rows);

	l3_setup(&b, dir, kind, "flush");
	sl_submit_options_init(&o);
	o.ack = SL_ACK_MEMORY;
	fill_random(value, sizeof(value), 5);
	sl_engine *e = engine_open(&b, BIG_L1);
	wait_trusted(e);
	sl_engine_stats st0 = stats_of(e);
	double cpu0 = cpu_s();
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < rows; i++) {
		make_key(key, 'b', 0, i);
		stamp(value, i);
		check(sl_engine_submit(e, key, KEY_LEN, value, VALUE_LEN, &o, NULL), "submit");
	}
	uint64_t t_sub = now_ns();
	uint64_t l3_at_sub = stats_of(e).l3_rows - st0.l3_rows;
	check(sl_engine_flush(e, FLUSH_MS), "flush");
	uint64_t t1 = now_ns();
	double cpu = cpu_s() - cpu0;
	sl_engine_stats st = stats_of(e);
	uint64_t c0 = now_ns();
	sl_engine_close(e, CLOSE_MS);
	double close_s = (double)(now_ns() - c0) / 1e9;

	double engine_s = (double)(t1 - t0) / 1e9, submit_s = (double)(t_sub - t0) / 1e9;
	double drain_s = (double)(t1 - t_sub) / 1e9;
	double plain_rate = (double)rows / plain_s, engine_rate = (double)rows / engine_s;
	double drain_rate = (double)(rows - l3_at_sub) / drain_s;
	printf("what=flush l3=%s rows=%" PRIu64 " plain_s=%.3f plain_per_s=%.0f engine_s=%.3f"
	       " engine_per_s=%.0f submit_s=%.3f l3_rows_at_submit_end=%" PRIu64
	       " drain_s=%.3f drain_per_s=%.0f ratio=%.3f drain_ratio=%.3f l3_rows=%" PRIu64
	       " l3_batches=%" PRIu64 " cpu_s=%.2f close_s=%.2f\n",
	       kind, rows, plain_s, plain_rate, engine_s, engine_rate, submit_s, l3_at_sub, drain_s,
	       drain_rate, engine_rate / plain_rate, drain_rate / plain_rate,
	       st.l3_rows - st0.l3_rows, st.l3_batches - st0.l3_batches, cpu, close_s);
	return 0;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	check(sl_base_init(), "init");
	sl_log_set_level(SL_LOG_ERROR);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "timer") == 0)
		return timer_cost();
	if (argc == 2 && strcmp(argv[1], "handoff") == 0)
		return handoff();
	if (argc == 4 && strcmp(argv[1], "wal-limit") == 0)
		return wal_limit(argv[2], parse_u64(argv[3], "MIB"));
	if (argc == 4 && strcmp(argv[1], "fsync-limit") == 0)
		return fsync_limit(argv[2], parse_u64(argv[3], "SECONDS"));
	if (argc == 7 && strcmp(argv[1], "submit") == 0)
		return submit(argv[2], argv[3], argv[4], (unsigned)parse_u64(argv[5], "THREADS"),
		              parse_u64(argv[6], "AMOUNT"));
	if (argc == 5 && strcmp(argv[1], "get") == 0)
		return gets(argv[2], argv[3], parse_u64(argv[4], "KEYS"));
	if (argc == 4 && strcmp(argv[1], "pg-steps") == 0)
		return pg_steps(argv[2], parse_u64(argv[3], "ROWS"));
	if (argc == 5 && strcmp(argv[1], "flush") == 0)
		return flush_rate(argv[2], argv[3], parse_u64(argv[4], "ROWS"));
	fprintf(stderr,
	        "usage: engine_bench timer | handoff | wal-limit DIR MIB | fsync-limit DIR SECONDS "
	        "|\n"
	        "       submit DIR L3 ACK THREADS AMOUNT | get DIR L3 KEYS |\n"
	        "       flush DIR L3 ROWS | pg-steps DIR ROWS    (L3: store, pg, mysql or null)\n");
	return 2;
}
