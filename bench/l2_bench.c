/*
 * l2_bench: the engine's L2 (Redis) through the library, for
 * bench/engine_bench.sh, which runs redis-benchmark against the same
 * Redis in the same run. One line a measurement, `what=NAME key=value`.
 * The engine has a store L3 under DIR that these writes never reach:
 * they go to L2 only (`tiers = l2`), so what is timed is L2's own path.
 * Keys are 32 bytes, values VALUE_SIZE random bytes.
 *
 *   l2_bench write DIR URL N VALUE_SIZE
 *       N submits to L2 only at `memory` from one thread, queued as fast
 *       as they come (the queue holds them all), timed from the first
 *       submit until Redis answered the last: the writer thread's
 *       pipelined rate, and the submit calls' own rate.
 *   l2_bench get DIR URL N VALUE_SIZE
 *       N keys written as above; then each read once through
 *       sl_engine_get in random order, each call timed (L1 keeps no copy
 *       of an L2-only write, so every get is one GET to Redis).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/engine.h"

#define BENCH_NAME "l2_bench"
#include "bench_util.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void key_of(char out[33], uint64_t i)
{
	snprintf(out, 33, "l2/%029" PRIu64, i);
}

static sl_engine *open_engine(const char *dir, const char *url, uint64_t n)
{
	static char wal[1024], store[1024];
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	sl_engine_config c;
	sl_engine_config_init(&c);
	c.wal_dir = wal;
	c.l3_dir = store;
	c.l3_namespace = "engine";
	c.l2_url = url;
	c.l2_prefix = "bench:";
	c.l2_timeout_ms = 5000;
	c.l2_queue_max = (size_t)n + 1;
	sl_engine *e = NULL;
	check(sl_engine_open(&e, &c), "open the engine");
	return e;
}

/* Writes n keys to L2 only; returns the seconds until Redis took them all. */
static double write_all(sl_engine *e, uint64_t n, size_t value_size, double *submit_s)
{
	uint8_t *value = malloc(value_size);
	if (value == NULL)
		die("out of memory");
	check(sl_random_bytes(value, value_size), "random bytes");
	sl_submit_options o;
	sl_submit_options_init(&o);
	o.tiers = SL_TIER_L2;
	o.ack = SL_ACK_MEMORY;
	sl_engine_stats s;
	check(sl_engine_stats_get(e, &s), "stats");
	uint64_t before = s.l2_writes;
	char key[33];
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		key_of(key, i);
		memcpy(value, &i, sizeof(i) < value_size ? sizeof(i) : value_size);
		check(sl_engine_submit(e, key, 32, value, value_size, &o, NULL), "submit");
	}
	*submit_s = now_s() - t0;
	for (;;) {
		check(sl_engine_stats_get(e, &s), "stats");
		if (s.l2_dropped)
			die("L2 dropped %" PRIu64 " writes: %s", s.l2_dropped, s.l2_error);
		if (s.l2_writes - before >= n)
			break;
		sl_sleep_ms(1); /* polling costs a core otherwise */
	}
	double took = now_s() - t0;
	free(value);
	return took;
}

static int run_write(const char *dir, const char *url, uint64_t n, size_t value_size)
{
	sl_engine *e = open_engine(dir, url, n);
	double submit_s, took = write_all(e, n, value_size, &submit_s);
	printf("what=l2_write n=%" PRIu64 " value_bytes=%zu seconds=%.3f per_s=%.0f "
	       "submit_per_s=%.0f\n",
	       n, value_size, took, (double)n / took, (double)n / submit_s);
	sl_engine_close(e, 10000);
	return 0;
}

static int run_get(const char *dir, const char *url, uint64_t n, size_t value_size)
{
	sl_engine *e = open_engine(dir, url, n);
	double submit_s;
	write_all(e, n, value_size, &submit_s);
	uint64_t *order = malloc(n * sizeof(*order));
	double *lat = malloc(n * sizeof(*lat));
	if (order == NULL || lat == NULL)
		die("out of memory");
	for (uint64_t i = 0; i < n; i++)
		order[i] = i;
	uint64_t rng = 0x9e3779b97f4a7c15u;
	for (uint64_t i = n - 1; i > 0; i--) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		uint64_t j = rng % (i + 1), t = order[i];
		order[i] = order[j], order[j] = t;
	}
	sl_engine_stats before, after;
	check(sl_engine_stats_get(e, &before), "stats");
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	char key[33];
	for (uint64_t i = 0; i < n; i++) {
		key_of(key, order[i]);
		double t0 = now_s();
		check(sl_engine_get(e, key, 32, &v, NULL), "get");
		lat[i] = now_s() - t0;
	}
	check(sl_engine_stats_get(e, &after), "stats");
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("what=l2_get n=%" PRIu64 " p50_us=%.1f p99_us=%.1f max_us=%.1f l2_hits=%" PRIu64
	       " gets_l1=%" PRIu64 "\n",
	       n, lat[n / 2] * 1e6, lat[(n * 99) / 100] * 1e6, lat[n - 1] * 1e6,
	       after.l2_hits - before.l2_hits, after.gets_l1 - before.gets_l1);
	sl_buf_free(&v);
	free(order);
	free(lat);
	sl_engine_close(e, 10000);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: l2_bench write|get DIR URL N VALUE_SIZE\n");
		return 2;
	}
	uint64_t n = strtoull(argv[4], NULL, 10);
	size_t value_size = (size_t)strtoull(argv[5], NULL, 10);
	if (n == 0 || value_size == 0 || value_size > (1u << 20))
		die("N and VALUE_SIZE must be positive (VALUE_SIZE at most 1 MiB)");
	if (strcmp(argv[1], "write") == 0)
		return run_write(argv[2], argv[3], n, value_size);
	if (strcmp(argv[1], "get") == 0)
		return run_get(argv[2], argv[3], n, value_size);
	die("unknown mode '%s'", argv[1]);
}
