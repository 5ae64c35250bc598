/*
 * Crash test: a child process commits batches to a mutable and an
 * immutable namespace as fast as it can (a third of the values large
 * enough for the blob table; pruning now and then, which deletes values;
 * flushing the state table every few thousand operations), and
 * reports each acknowledged commit's size on a pipe. The parent kills it
 * with SIGKILL at a random moment, reopens the store and checks that
 *   - sl_store_verify passes for both namespaces (log, MMR, state, values),
 *     and sl_store_verify_values for the store (every value referenced,
 *     every reference found);
 *   - no acknowledged commit was lost (size >= last acknowledged size);
 *   - the store resumes: the next child continues from what is there.
 * SLUICE_CRASH_RUNS sets the number of kills (default 24).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/store.h"
#include "testutil.h"

typedef struct ack {
	uint64_t mutable_size;
	uint64_t immutable_size;
} ack;

static void child_main(const char *dir, int fd, uint64_t seed)
{
	tu_rng rng = {seed};
	sl_store *s;
	char key[48], value[256];
	uint64_t serial = 0;

	sl_store_options o;
	sl_store_options_init(&o);
	/* Small, so that kills also land inside state-table flushes. */
	o.state_flush_ops = 1 + tu_rng_below(&rng, 3000);
	if (sl_store_open(&s, dir, &o) != SL_OK)
		_exit(3);
	for (;;) {
		sl_batch *m, *im;
		sl_target tm, ti;
		if (sl_batch_new(&m, s, "kv") != SL_OK || sl_batch_new(&im, s, "obj") != SL_OK)
			_exit(4);
		int n = 1 + (int)tu_rng_below(&rng, 200);
		for (int i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "k/%llu",
			         (unsigned long long)tu_rng_below(&rng, 500));
			/* "v<n>", or "v<n>" and padding: then in blobs */
			int len = snprintf(value, sizeof(value), "v%llu",
			                   (unsigned long long)tu_rng_next(&rng));
			if (tu_rng_below(&rng, 3) == 0) {
				memset(value + len, '.', sizeof(value) - 1 - (size_t)len);
				value[65 + tu_rng_below(&rng, sizeof(value) - 66)] = '\0';
			}
			int rc = tu_rng_below(&rng, 5) == 0
			                 ? sl_batch_del(m, key, strlen(key))
			                 : sl_batch_put(m, key, strlen(key), value, strlen(value));
			/* Immutable keys are unique per child run: seed + serial. */
			snprintf(key, sizeof(key), "o/%llx/%llu", (unsigned long long)seed,
			         (unsigned long long)serial++);
			if (rc != SL_OK ||
			    sl_batch_put(im, key, strlen(key), key, strlen(key)) != SL_OK)
				_exit(5);
		}
		if (sl_batch_commit(m, &tm) != SL_OK || sl_batch_commit(im, &ti) != SL_OK)
			_exit(6);
		sl_batch_free(m);
		sl_batch_free(im);
		if (tu_rng_below(&rng, 10) == 0 && sl_store_prune(s, "kv", NULL) != SL_OK)
			_exit(7);
		ack a = {tm.size, ti.size};
		if (write(fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
			_exit(8);
	}
}

static void check_ns(sl_store *s, const char *ns, uint64_t acked)
{
	sl_ns_info info;
	sl_verify_report r;
	if (sl_store_verify(s, ns, &r) != SL_OK)
		fail_msg("verify %s after crash: %s", ns, sl_error_last()->message);
	assert_int_equal(sl_store_ns_info(s, ns, &info), SL_OK);
	if (info.target.size < acked)
		fail_msg("%s lost acknowledged commits: size %llu < acked %llu", ns,
		         (unsigned long long)info.target.size, (unsigned long long)acked);
}

static void test_kill9_and_resume(void **state)
{
	(void)state;
	tu_rng rng = tu_rng_seeded("test_kill9_and_resume");
	const char *env = getenv("SLUICE_CRASH_RUNS");
	int runs = env ? atoi(env) : 24;
	char *dir = tu_tempdir();
	sl_store *s;
	sl_store_options o;
	ack last = {0, 0};

	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	assert_int_equal(sl_store_open(&s, dir, &o), SL_OK);
	assert_int_equal(sl_store_ns_create(s, "kv", SL_NS_MUTABLE), SL_OK);
	assert_int_equal(sl_store_ns_create(s, "obj", SL_NS_IMMUTABLE), SL_OK);
	sl_store_free(s);

	for (int run = 0; run < runs; run++) {
		int fds[2];
		assert_int_equal(pipe(fds), 0);
		uint64_t child_seed = tu_rng_next(&rng);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			child_main(dir, fds[1], child_seed);
		}
		close(fds[1]);
		sl_sleep_ms(5 + tu_rng_below(&rng, 120));
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("child exited early with status %d", WEXITSTATUS(status));
		ack a;
		size_t n_acks = 0;
		while (read(fds[0], &a, sizeof(a)) == (ssize_t)sizeof(a)) {
			last = a;
			n_acks++;
		}
		close(fds[0]);

		assert_int_equal(sl_store_open(&s, dir, NULL), SL_OK);
		check_ns(s, "kv", last.mutable_size);
		check_ns(s, "obj", last.immutable_size);
		sl_values_report vr;
		if (sl_store_verify_values(s, &vr) != SL_OK)
			fail_msg("verify values after crash: %s", sl_error_last()->message);
		sl_store_free(s);
		fprintf(stderr,
		        "run %d: %zu commits acknowledged, kv size %llu, %llu values held\n", run,
		        n_acks, (unsigned long long)last.mutable_size,
		        (unsigned long long)vr.values);
	}
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_kill9_and_resume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
