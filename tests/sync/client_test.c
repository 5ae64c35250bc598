/*
 * The sync client against a sync server in this process, each with its
 * own store:
 *   - the adaptive batch grows to its cap while frames arrive whole, a
 *     fixed batch stays as set, and a server whose byte budget cuts frames
 *     short brings the batch down to what it sends; each sync ends with
 *     the server's root;
 *   - resync: a replica whose server pruned operations it still needs is
 *     rebuilt from the server's floor in a side namespace and then takes
 *     its place: it ends equal to the server (root, keys, values),
 *     verifies (log, MMR, state, item index), no side namespace and no
 *     unreferenced value is left, and sluice_client_resyncs_total counts
 *     it (also under a local name too long for the side name's prefix);
 *   - a resync stopped half way leaves the old copy as it was and
 *     readable; the next run resumes the side copy, or, when the server
 *     pruned past that too, drops it and starts again, and ends equal.
 * The server's store is written and pruned through the test's own handle,
 * as another process (sluice prune) would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "sluice/sync.h"
#include "testutil.h"

#define NS   "demo"
#define SIDE ".resync.demo"

typedef struct fixture {
	char *server_dir, *client_dir;
	sl_store *server; /* the test's handle on the server's store */
	sl_store *client; /* the client's store */
	sl_node_key key;
	sl_sync_server *srv;
	size_t frame_budget; /* 0: the server's default */
	char addr[64];
	tu_rng rng;
	uint64_t next_key;
	uint64_t key_space; /* mutable: keys written over and over */
	const char *local;  /* the client's name for the namespace */
} fixture;

static sl_store *open_store(const char *dir)
{
	sl_store_options o;
	sl_store *s = NULL;
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	o.state_flush_ops = 1000; /* flushes happen during the syncs */
	return sl_store_open(&s, dir, &o) == SL_OK ? s : NULL;
}

static void start_server(fixture *f)
{
	sl_sync_server_options o;
	sl_sync_server_options_init(&o);
	o.store_dir = f->server_dir;
	o.key = &f->key;
	if (f->frame_budget)
		o.frame_budget = f->frame_budget;
	assert_ok(sl_sync_server_start(&f->srv, &o));
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", sl_sync_server_port(f->srv));
}

static int setup_kind(void **state, sl_ns_kind kind, size_t frame_budget)
{
	fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(f->server_dir = tu_tempdir());
	assert_non_null(f->client_dir = tu_tempdir());
	assert_non_null(f->server = open_store(f->server_dir));
	assert_non_null(f->client = open_store(f->client_dir));
	assert_ok(sl_store_ns_create(f->server, NS, kind));
	assert_ok(sl_node_key_load(&f->key, f->server_dir, 1));
	f->frame_budget = frame_budget;
	f->key_space = 300;
	f->local = NS;
	f->rng = tu_rng_seeded("client_test");
	start_server(f);
	*state = f;
	return 0;
}

static int setup_immutable(void **state)
{
	return setup_kind(state, SL_NS_IMMUTABLE, 0);
}

static int setup_mutable(void **state)
{
	return setup_kind(state, SL_NS_MUTABLE, 0);
}

static int setup_small_frames(void **state)
{
	return setup_kind(state, SL_NS_IMMUTABLE, 1024);
}

static int teardown(void **state)
{
	fixture *f = *state;
	sl_sync_server_stop(f->srv);
	sl_store_free(f->server);
	sl_store_free(f->client);
	tu_rmtree(f->server_dir);
	tu_rmtree(f->client_dir);
	free(f->server_dir);
	free(f->client_dir);
	free(f);
	return 0;
}

/* n_commits commits of `per` puts each: new keys in an immutable
 * namespace; in a mutable one, keys of a small space written over and
 * over (so the floor rises), values of 8 to 200 bytes (some in blobs),
 * and a delete now and then. */
static void write_commits(fixture *f, int n_commits, int per)
{
	sl_ns_info info;
	assert_ok(sl_store_ns_head(f->server, NS, &info));
	for (int c = 0; c < n_commits; c++) {
		sl_batch *b = NULL;
		assert_ok(sl_batch_new(&b, f->server, NS));
		for (int i = 0; i < per; i++) {
			char key[48];
			uint8_t value[200];
			size_t len = 8 + (size_t)tu_rng_below(&f->rng, sizeof(value) - 8);
			if (info.kind == SL_NS_IMMUTABLE)
				snprintf(key, sizeof(key), "k/%llu",
				         (unsigned long long)f->next_key++);
			else
				snprintf(key, sizeof(key), "k/%llu",
				         (unsigned long long)tu_rng_below(&f->rng, f->key_space));
			tu_rng_fill(&f->rng, value, len);
			if (info.kind == SL_NS_MUTABLE && tu_rng_below(&f->rng, 10) == 0)
				assert_ok(sl_batch_del(b, key, strlen(key)));
			else
				assert_ok(sl_batch_put(b, key, strlen(key), value, len));
		}
		assert_ok(sl_batch_commit(b, NULL));
		sl_batch_free(b);
	}
}

typedef struct run_opts {
	uint32_t batch_size; /* 0: adaptive */
	unsigned max_outstanding;
	volatile sig_atomic_t *stop;
} run_opts;

/* One `sync --once` into the client's store, with metrics. */
static int run_client(fixture *f, sl_metrics *m, const run_opts *ro)
{
	sl_sync_client_options o;
	sl_sync_client_options_init(&o);
	o.server = f->addr;
	o.ns = NS;
	o.local_ns = f->local;
	o.store = f->client;
	o.once = 1;
	o.metrics = m;
	o.retry_base_ms = 10;
	o.target_interval_ms = 50;
	if (ro) {
		o.batch_size = ro->batch_size;
		if (ro->max_outstanding)
			o.max_outstanding = ro->max_outstanding;
		o.stop = ro->stop;
	}
	return sl_sync_client_run(&o);
}

static double metric(sl_metrics *m, const char *name, int gauge)
{
	sl_metric *x =
	        gauge ? sl_metrics_gauge(m, name, NULL, "") : sl_metrics_counter(m, name, NULL, "");
	assert_non_null(x);
	return sl_metric_value(x);
}

typedef struct kv_list {
	size_t n, cap;
	char (*keys)[48];
	sl_digest *digests;
} kv_list;

static int list_cb(void *ctx, const sl_key_entry *e)
{
	kv_list *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->keys = realloc(l->keys, l->cap * sizeof(*l->keys));
		l->digests = realloc(l->digests, l->cap * sizeof(*l->digests));
		assert_non_null(l->keys);
		assert_non_null(l->digests);
	}
	assert_true(e->key_len < 48);
	memcpy(l->keys[l->n], e->key, e->key_len);
	l->keys[l->n][e->key_len] = 0;
	l->digests[l->n++] = e->digest;
	return 0;
}

static void list_free(kv_list *l)
{
	free(l->keys);
	free(l->digests);
}

/* The client's namespace is the server's: target, keys, values; it
 * verifies, and the client's store holds no side namespace (no reserved
 * name) and no value nothing refers to. */
static void assert_equal_to_server(fixture *f)
{
	sl_ns_info a, b, *list = NULL;
	kv_list la = {0}, lb = {0};
	sl_values_report vr;
	size_t n = 0;

	assert_ok(sl_store_ns_info(f->server, NS, &a));
	assert_ok(sl_store_ns_info(f->client, f->local, &b));
	assert_int_equal(a.target.size, b.target.size);
	assert_int_equal(a.target.floor, b.target.floor);
	assert_memory_equal(a.target.root.bytes, b.target.root.bytes, SL_DIGEST_LEN);
	assert_ok(sl_store_list(f->server, NS, "", 0, list_cb, &la));
	assert_ok(sl_store_list(f->client, f->local, "", 0, list_cb, &lb));
	assert_int_equal(la.n, lb.n);
	for (size_t i = 0; i < la.n; i++) {
		sl_buf va = SL_BUF_INIT(1 << 20), vb = SL_BUF_INIT(1 << 20);
		assert_string_equal(la.keys[i], lb.keys[i]);
		assert_memory_equal(la.digests[i].bytes, lb.digests[i].bytes, SL_DIGEST_LEN);
		assert_ok(sl_store_get(f->server, NS, la.keys[i], strlen(la.keys[i]), &va, NULL));
		assert_ok(sl_store_get(f->client, f->local, lb.keys[i], strlen(lb.keys[i]), &vb,
		                       NULL));
		assert_int_equal(va.len, vb.len);
		assert_memory_equal(va.data, vb.data, va.len);
		sl_buf_free(&va);
		sl_buf_free(&vb);
	}
	list_free(&la);
	list_free(&lb);
	assert_ok(sl_store_verify(f->client, f->local, NULL));
	assert_ok(sl_store_ns_list(f->client, &list, &n));
	for (size_t i = 0; i < n; i++)
		assert_true(list[i].name[0] != '.');
	sl_free(list);
	assert_ok(sl_store_verify_values(f->client, &vr));
}

/* ------------------------------------------------------- adaptive batch */

static void test_batch_grows(void **state)
{
	fixture *f = *state;
	sl_metrics *m = NULL;

	write_commits(f, 60, 500);
	assert_ok(sl_metrics_new(&m));
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	/* 256, 512, ... doubling while frames came back whole: at its cap. */
	assert_int_equal((int)metric(m, "sluice_client_batch_size", 1), 4096);
	assert_int_equal((uint64_t)metric(m, "sluice_client_ops_fetched_total", 0), 30060);
	assert_int_equal((uint64_t)metric(m, "sluice_client_ops_applied_total", 0), 30060);
	sl_metrics_free(m);
}

static void test_batch_fixed(void **state)
{
	fixture *f = *state;
	sl_metrics *m = NULL;
	run_opts ro = {100, 2, NULL};

	write_commits(f, 20, 500);
	assert_ok(sl_metrics_new(&m));
	assert_ok(run_client(f, m, &ro));
	assert_equal_to_server(f);
	assert_int_equal((int)metric(m, "sluice_client_batch_size", 1), 100);
	sl_metrics_free(m);
}

static void test_batch_follows_server_budget(void **state)
{
	fixture *f = *state;
	sl_metrics *m = NULL;
	double batch;

	write_commits(f, 10, 300);
	assert_ok(sl_metrics_new(&m));
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	/* Frames of 1024 bytes hold about ten operations: the batch asks for
	 * no more than that (and not below its floor of 16). */
	batch = metric(m, "sluice_client_batch_size", 1);
	assert_true(batch >= 16 && batch <= 32);
	sl_metrics_free(m);
}

/* --------------------------------------------------------------- resync */

/* Write on and prune the server until its pruned boundary passes `size`. */
static void prune_past(fixture *f, uint64_t size)
{
	sl_ns_info info;
	for (int i = 0; i < 100; i++) {
		write_commits(f, 20, 50);
		assert_ok(sl_store_prune(f->server, NS, NULL));
		assert_ok(sl_store_ns_head(f->server, NS, &info));
		if (info.pruned > size)
			return;
	}
	fail_msg("the server's floor did not pass %llu", (unsigned long long)size);
}

static void test_resync(void **state)
{
	fixture *f = *state;
	sl_metrics *m = NULL;
	sl_ns_info before;

	write_commits(f, 40, 50);
	assert_ok(sl_metrics_new(&m));
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	assert_ok(sl_store_ns_head(f->client, f->local, &before));
	prune_past(f, before.target.size);
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	assert_int_equal((int)metric(m, "sluice_client_resyncs_total", 0), 1);
	/* And it follows on as a replica does. */
	write_commits(f, 10, 50);
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	assert_int_equal((int)metric(m, "sluice_client_resyncs_total", 0), 1);
	sl_metrics_free(m);
}

/* Stops the client once the side copy holds operations past its start,
 * as `sluice sync` is stopped: a signal whose handler sets the flag the
 * client polls. */
static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

typedef struct watcher {
	const char *dir;
	pthread_t client_thread, thread;
	atomic_int done, stopped;
} watcher;

static void *watch(void *arg)
{
	watcher *w = arg;
	sl_store *s = open_store(w->dir); /* another handle, as another process */
	while (s && !atomic_load(&w->done)) {
		sl_ns_info side;
		if (sl_store_ns_head(s, SIDE, &side) == SL_OK && side.target.size > side.pruned) {
			atomic_store(&w->stopped, 1);
			pthread_kill(w->client_thread, SIGUSR1);
			break;
		}
		sl_sleep_ms(1);
	}
	sl_store_free(s);
	return NULL;
}

/* Run a resync and stop it half way: the old copy is left as it was, and
 * readable, beside a side copy. */
static void stopped_resync(fixture *f, const sl_ns_info *old, const char *key, const sl_buf *value)
{
	run_opts ro = {4, 1, &stop_flag}; /* slow: a run is applied before the end */
	sl_buf now = SL_BUF_INIT(1 << 20);
	struct sigaction sa;
	sl_ns_info info, side;
	watcher w;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGUSR1, &sa, NULL);
	stop_flag = 0;
	w.dir = f->client_dir;
	w.client_thread = pthread_self();
	atomic_init(&w.done, 0);
	atomic_init(&w.stopped, 0);
	assert_int_equal(pthread_create(&w.thread, NULL, watch, &w), 0);
	assert_ok(run_client(f, NULL, &ro));
	atomic_store(&w.done, 1);
	pthread_join(w.thread, NULL);
	assert_true(atomic_load(&w.stopped));
	assert_ok(sl_store_ns_head(f->client, NS, &info));
	assert_int_equal(info.target.size, old->target.size);
	assert_memory_equal(info.target.root.bytes, old->target.root.bytes, SL_DIGEST_LEN);
	assert_ok(sl_store_get(f->client, NS, key, strlen(key), &now, NULL));
	assert_int_equal(now.len, value->len);
	assert_memory_equal(now.data, value->data, now.len);
	assert_ok(sl_store_verify(f->client, NS, NULL));
	assert_ok(sl_store_ns_head(f->client, SIDE, &side));
	assert_true(side.target.size > side.pruned);
	assert_ok(sl_store_verify(f->client, SIDE, NULL));
	sl_buf_free(&now);
}

/* A key of the client's namespace and its value, to read again later. */
static void pick_key(fixture *f, char key[48], sl_buf *value)
{
	kv_list l = {0};
	assert_ok(sl_store_list(f->client, NS, "", 0, list_cb, &l));
	assert_true(l.n > 0);
	strcpy(key, l.keys[l.n / 2]);
	assert_ok(sl_store_get(f->client, NS, key, strlen(key), value, NULL));
	list_free(&l);
}

static void test_resync_stopped_and_resumed(void **state)
{
	fixture *f = *state;
	sl_buf value = SL_BUF_INIT(1 << 20);
	sl_metrics *m = NULL;
	sl_ns_info old, side, after;
	char key[48];

	/* Many live keys: a replica from the floor copies thousands of
	 * operations, which a slow client takes long enough over to be seen
	 * half way. */
	f->key_space = 20000;
	write_commits(f, 200, 100);
	assert_ok(run_client(f, NULL, NULL));
	assert_ok(sl_store_ns_head(f->client, NS, &old));
	pick_key(f, key, &value);
	prune_past(f, old.target.size);

	/* Stopped half way, then resumed where the side copy stands. */
	stopped_resync(f, &old, key, &value);
	assert_ok(sl_store_ns_head(f->client, SIDE, &side));
	assert_ok(sl_metrics_new(&m));
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	assert_int_equal((int)metric(m, "sluice_client_resyncs_total", 0), 1);
	assert_ok(sl_store_ns_head(f->client, NS, &after));
	assert_int_equal(after.pruned, side.pruned); /* the same side copy, resumed */
	assert_true((uint64_t)metric(m, "sluice_client_ops_fetched_total", 0) <
	            after.target.size - side.pruned);
	sl_metrics_free(m);

	/* Stopped half way again, and the server prunes past the side copy:
	 * it is dropped and begun again from the new floor. */
	assert_ok(sl_store_ns_head(f->client, NS, &old));
	pick_key(f, key, &value);
	prune_past(f, old.target.size);
	stopped_resync(f, &old, key, &value);
	assert_ok(sl_store_ns_head(f->client, SIDE, &side));
	prune_past(f, side.target.size);
	assert_ok(sl_metrics_new(&m));
	assert_ok(run_client(f, m, NULL));
	assert_equal_to_server(f);
	assert_int_equal((int)metric(m, "sluice_client_resyncs_total", 0), 1);
	assert_ok(sl_store_ns_head(f->client, NS, &after));
	assert_true(after.pruned > side.target.size);
	sl_metrics_free(m);
	sl_buf_free(&value);
}

/* A local name too long for ".resync." in front: the side copy's name
 * is made shorter with a digest of it, and all goes as before. */
static void test_resync_long_name(void **state)
{
	fixture *f = *state;
	f->local = "a-local-name-of-61-bytes-which-leaves-no-room-for-the-prefixx";
	assert_int_equal(strlen(f->local), 61); /* 8 + 61 > SL_NS_NAME_MAX */
	test_resync(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_batch_grows, setup_immutable, teardown),
	        cmocka_unit_test_setup_teardown(test_batch_fixed, setup_immutable, teardown),
	        cmocka_unit_test_setup_teardown(test_batch_follows_server_budget,
	                                        setup_small_frames, teardown),
	        cmocka_unit_test_setup_teardown(test_resync, setup_mutable, teardown),
	        cmocka_unit_test_setup_teardown(test_resync_long_name, setup_mutable, teardown),
	        cmocka_unit_test_setup_teardown(test_resync_stopped_and_resumed, setup_mutable,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
