/*
 * Shared helpers for sluice's cmocka tests: throwaway directories, a
 * seeded PRNG whose seed is printed, so a failing property test can be
 * replayed with SLUICE_SEED=<seed>, and SQL run on a closed store's
 * database (to damage it, or to make it look older).
 */
#ifndef SLUICE_TESTUTIL_H
#define SLUICE_TESTUTIL_H

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* splitmix64: small, fast, good enough for test data. */
typedef struct tu_rng {
	uint64_t state;
} tu_rng;

static inline uint64_t tu_rng_next(tu_rng *r)
{
	uint64_t z = (r->state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t tu_rng_below(tu_rng *r, uint64_t n)
{
	return tu_rng_next(r) % n;
}

static inline void tu_rng_fill(tu_rng *r, void *out, size_t n)
{
	uint8_t *p = out;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)tu_rng_next(r);
}

/* Seed from SLUICE_SEED or the clock; always printed. */
static inline tu_rng tu_rng_seeded(const char *test_name)
{
	const char *env = getenv("SLUICE_SEED");
	uint64_t seed =
	        env ? strtoull(env, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	fprintf(stderr, "%s: seed %" PRIu64 " (rerun with SLUICE_SEED=%" PRIu64 ")\n", test_name,
	        seed, seed);
	tu_rng r = {seed};
	return r;
}

/* In a cmocka test of the library: fail with the library's message
 * unless expr is SL_OK (needs cmocka.h and sluice/base.h). */
#define assert_ok(expr)                                                                            \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != SL_OK)                                                                  \
			fail_msg("%s: %s (%d)", #expr, sl_error_last()->message, rc_);             \
	} while (0)

/* mkdtemp under $TMPDIR; the caller frees the path and removes the tree
 * with tu_rmtree. Returns NULL on failure. */
static inline char *tu_tempdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	snprintf(tmpl, sizeof(tmpl), "%s/sluice-test-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpl))
		return NULL;
	return strdup(tmpl);
}

static inline void tu_rmtree(const char *path)
{
	char cmd[4200];
	if (!path || !*path)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
}

/* Run SQL on DIR/sluice.db (the store closed): the rows the last
 * statement changed, or -1 (the error printed). */
static inline int tu_sql(const char *dir, const char *text)
{
	char path[4200];
	sqlite3 *db = NULL;
	int changed = -1;
	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_exec(db, text, NULL, NULL, NULL) == SQLITE_OK)
		changed = sqlite3_changes(db);
	else
		fprintf(stderr, "%s: %s\n", text, db ? sqlite3_errmsg(db) : "no memory");
	sqlite3_close(db);
	return changed;
}

#endif
