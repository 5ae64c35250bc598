/*
 * L2 on a real Redis 7 (scripts/services.sh): the value codec and its
 * damage checks; a write answered, then read in one GET with its version;
 * a fill (SET NX) never replaces a write; a hole is a miss; a clean close
 * keeps the generation and anything else starts a new one; a Redis that
 * lost writes (its pipeline number below the one answered) is noticed by
 * a new connection, and reads skip it until a new generation; a Redis
 * that is not there fails reads at once and, past the breaker's window,
 * drops writes and makes L2 untrusted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/l1.h"
#include "engine/l2.h"
#include "services.h"
#include "testutil.h"

typedef struct fixture {
	tu_services svc;
	char dir[256];
	char url[300];
	sl_breaker *breaker;
	l2_cache *l2;
} fixture;

static void open_l2(fixture *fx, const char *url)
{
	l2_options o = {.url = url,
	                .prefix = "t:",
	                .state_dir = fx->dir,
	                .timeout_ms = 500,
	                .connect_timeout_ms = 500,
	                .queue_max = 1000,
	                .pipeline_max = 64,
	                .breaker = fx->breaker};
	assert_ok(l2_open(&fx->l2, &o));
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	if (fx == NULL || tu_services_start(&fx->svc, "redis") != 0) {
		free(fx);
		return -1;
	}
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/sluice-l2-test.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->url, sizeof(fx->url), "%s", fx->svc.redis_url);
	sl_breaker_config c;
	sl_breaker_config_init(&c);
	c.open_ms = 100;
	if (sl_breaker_new(&fx->breaker, "l2", &c, NULL) != SL_OK)
		return -1;
	open_l2(fx, fx->url);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	char cmd[600];
	l2_close(fx->l2, 1000);
	sl_breaker_free(fx->breaker);
	tu_services_stop(&fx->svc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static uint64_t hash_of(const char *key)
{
	return l1_hash(key, strlen(key));
}

/* Queues a write and waits for Redis's answer. */
static int put(fixture *fx, l2_kind kind, const char *key, uint64_t version, const char *value,
               int fill)
{
	l2_waiter w;
	l2_write lw = {.kind = kind,
	               .key = key,
	               .key_len = strlen(key),
	               .hash = hash_of(key),
	               .version = version,
	               .value = value,
	               .value_len = value ? strlen(value) : 0,
	               .fill = fill};
	l2_enqueue(fx->l2, &lw, &w);
	return l2_wait(fx->l2, &w);
}

/* SL_OK with the value and version, or the error. */
static int get(fixture *fx, const char *key, sl_buf *value, l2_hit *hit)
{
	return l2_get(fx->l2, key, strlen(key), hash_of(key), value, hit);
}

static void redis_cli(const fixture *fx, const char *args)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "redis-cli -p %d %s >/dev/null", fx->svc.redis_port, args);
	assert_int_equal(system(cmd), 0);
}

static void wait_trusted(fixture *fx, int want)
{
	l2_stats s;
	for (int i = 0; i < 200; i++) {
		l2_stats_get(fx->l2, &s);
		if (s.trusted == want)
			return;
		usleep(20000);
	}
	fail_msg("L2 never became %s", want ? "trusted" : "untrusted");
}

static void test_codec(void **state)
{
	(void)state;
	sl_buf b = SL_BUF_INIT(SIZE_MAX);
	l2_kind kind;
	uint64_t version;
	int cache_only;
	const uint8_t *v;
	size_t vlen;
	assert_ok(l2_encode(&b, L2_VALUE, 42, 1, "hello", 5));
	assert_ok(l2_decode(b.data, b.len, &kind, &version, &cache_only, &v, &vlen));
	assert_int_equal(kind, L2_VALUE);
	assert_int_equal(version, 42);
	assert_int_equal(cache_only, 1);
	assert_int_equal(vlen, 5);
	assert_memory_equal(v, "hello", 5);
	/* a flipped bit anywhere is refused */
	for (size_t i = 0; i < b.len; i++) {
		b.data[i] ^= 0x04;
		assert_int_equal(l2_decode(b.data, b.len, &kind, &version, &cache_only, &v, &vlen),
		                 SL_ECORRUPT);
		b.data[i] ^= 0x04;
	}
	assert_int_equal(l2_decode(b.data, 10, &kind, &version, &cache_only, &v, &vlen),
	                 SL_ECORRUPT);
	assert_ok(l2_encode(&b, L2_TOMBSTONE, 7, 0, NULL, 0));
	assert_ok(l2_decode(b.data, b.len, &kind, &version, &cache_only, &v, &vlen));
	assert_int_equal(kind, L2_TOMBSTONE);
	assert_int_equal(vlen, 0);
	sl_buf_free(&b);
}

static void test_write_then_read(void **state)
{
	fixture *fx = *state;
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	l2_hit hit;
	assert_int_equal(get(fx, "k/1", &v, &hit), SL_ENOTFOUND);
	assert_ok(put(fx, L2_VALUE, "k/1", 10, "one", 0));
	assert_ok(get(fx, "k/1", &v, &hit));
	assert_int_equal(hit.kind, L2_VALUE);
	assert_int_equal(hit.version, 10);
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.data, "one", 3);
	/* a fill never replaces a write */
	assert_ok(put(fx, L2_VALUE, "k/1", 5, "older", 1));
	assert_ok(get(fx, "k/1", &v, &hit));
	assert_int_equal(hit.version, 10);
	/* a fill of an absent key lands */
	assert_ok(put(fx, L2_VALUE, "k/2", 5, "filled", 1));
	assert_ok(get(fx, "k/2", &v, &hit));
	assert_int_equal(hit.version, 5);
	/* a tombstone is a hit without a value; a hole a miss */
	assert_ok(put(fx, L2_TOMBSTONE, "k/1", 11, NULL, 0));
	assert_ok(get(fx, "k/1", &v, &hit));
	assert_int_equal(hit.kind, L2_TOMBSTONE);
	assert_ok(put(fx, L2_HOLE, "k/2", 12, NULL, 0));
	assert_int_equal(get(fx, "k/2", &v, &hit), SL_ENOTFOUND);
	/* ...and a fill cannot land over a hole */
	assert_ok(put(fx, L2_VALUE, "k/2", 5, "filled", 1));
	assert_int_equal(get(fx, "k/2", &v, &hit), SL_ENOTFOUND);
	/* a damaged value is a miss */
	redis_cli(fx, "SET t:1:k/3 garbage");
	assert_int_equal(get(fx, "k/3", &v, &hit), SL_ENOTFOUND);
	sl_buf_free(&v);
}

static void test_generations(void **state)
{
	fixture *fx = *state;
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	l2_hit hit;
	l2_stats s;
	assert_ok(put(fx, L2_VALUE, "g/1", 1, "x", 0));
	l2_stats_get(fx->l2, &s);
	uint64_t first = s.generation;
	/* a clean close keeps the generation and its copies */
	l2_close(fx->l2, 1000);
	open_l2(fx, fx->url);
	l2_stats_get(fx->l2, &s);
	assert_int_equal(s.generation, first);
	assert_ok(get(fx, "g/1", &v, &hit));
	/* a stop that was not clean starts a new generation */
	l2_close(fx->l2, 1000);
	char path[400];
	snprintf(path, sizeof(path), "%s/l2_state", fx->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%llu 0 open\n", (unsigned long long)first);
	fclose(f);
	open_l2(fx, fx->url);
	l2_stats_get(fx->l2, &s);
	assert_int_equal(s.generation, first + 1);
	assert_int_equal(get(fx, "g/1", &v, &hit), SL_ENOTFOUND);
	/* Redis loses its writes (its pipeline number goes back): a new
	 * connection notices, reads skip L2, then a new generation */
	assert_ok(put(fx, L2_VALUE, "g/2", 2, "y", 0));
	char args[200];
	snprintf(args, sizeof(args), "SET t:%llu#seq 0", (unsigned long long)(first + 1));
	redis_cli(fx, args);
	redis_cli(fx, "CLIENT KILL TYPE normal SKIPME yes");
	/* the first read finds its connection gone; the next reconnects */
	get(fx, "g/2", &v, &hit);
	get(fx, "g/2", &v, &hit);
	wait_trusted(fx, 1);
	l2_stats_get(fx->l2, &s);
	assert_true(s.generation > first + 1);
	assert_int_equal(get(fx, "g/2", &v, &hit), SL_ENOTFOUND);
	sl_buf_free(&v);
}

static void test_redis_away(void **state)
{
	fixture *fx = *state;
	sl_buf v = SL_BUF_INIT(SIZE_MAX);
	l2_hit hit;
	l2_stats s;
	assert_ok(put(fx, L2_VALUE, "a/1", 1, "x", 0));
	assert_int_equal(tu_services_run(&fx->svc, "kill-redis"), 0);
	int rc = SL_OK;
	for (int i = 0; i < 20; i++) {
		rc = get(fx, "a/1", &v, &hit);
		assert_int_not_equal(rc, SL_OK);
	}
	assert_int_equal(sl_breaker_state_at(fx->breaker, sl_clock_mono_ns() / 1000000),
	                 SL_BREAKER_OPEN);
	/* a fill is not even queued while the breaker is open: not counted as
	 * dropped, and L2 not distrusted for it (it only lacks a copy) */
	l2_stats before;
	l2_stats_get(fx->l2, &before);
	l2_write fill = {.kind = L2_VALUE,
	                 .key = "a/9",
	                 .key_len = 3,
	                 .hash = hash_of("a/9"),
	                 .version = 9,
	                 .value = "f",
	                 .value_len = 1,
	                 .fill = 1};
	assert_int_not_equal(l2_enqueue(fx->l2, &fill, NULL), SL_OK);
	l2_stats_get(fx->l2, &s);
	assert_int_equal(s.dropped, before.dropped);
	assert_int_equal(s.trusted, before.trusted);
	/* writes are dropped while the breaker is open, and L2 distrusted */
	assert_int_not_equal(put(fx, L2_VALUE, "a/1", 2, "y", 0), SL_OK);
	l2_stats_get(fx->l2, &s);
	assert_true(s.dropped >= 1);
	assert_int_equal(s.trusted, 0);
	/* back: the breaker closes through the writer's probes, and a new
	 * generation holds nothing older than the drop */
	assert_int_equal(tu_services_run(&fx->svc, "start-redis"), 0);
	wait_trusted(fx, 1);
	assert_int_equal(get(fx, "a/1", &v, &hit), SL_ENOTFOUND);
	assert_ok(put(fx, L2_VALUE, "a/1", 3, "z", 0));
	assert_ok(get(fx, "a/1", &v, &hit));
	assert_int_equal(hit.version, 3);
	sl_buf_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_codec),
	        cmocka_unit_test_setup_teardown(test_write_then_read, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_generations, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_redis_away, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
