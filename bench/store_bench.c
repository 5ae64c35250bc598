/*
 * store_bench: how fast the store appends, commits and proves, next to the
 * limits this machine sets, all measured in one run and printed as one
 * table (name, value, unit, note) on stdout. Progress goes to stderr.
 *
 * Sections, in order:
 *   1. SHA-256 through sl_sha256: 72-byte inputs (an MMR node's input) and
 *      1 MiB buffers, plus the three hashes one store operation costs
 *      (value, leaf, parent node) and the op rate they alone would allow.
 *   2. Plain SQLite, 1000 rows per transaction through prepared statements,
 *      WAL mode with the store's cache and mmap pragmas: a rowid table of
 *      32-byte blobs (synchronous NORMAL and FULL), then the rows one store
 *      operation writes (an op row, a WITHOUT ROWID blob row and a WITHOUT
 *      ROWID state row, both under random 32-byte keys): the I/O floor for
 *      the store.
 *   3. The store: N puts (default 1,000,000) with random 32-byte keys and
 *      values, batches of 1000, into an immutable and a mutable namespace,
 *      with durable=0 (synchronous NORMAL) and durable=1 (FULL, fsync per
 *      commit), each into a fresh store. Only sl_batch_put and
 *      sl_batch_commit are timed, not making up keys and values. Then the
 *      immutable and mutable rates (durable=0) as fractions of the plain
 *      rowid append rate (synchronous NORMAL) of the same run, next to
 *      the goals (0.35 and 0.2).
 *   4. Proofs against the immutable, durable=0 store of section 3 (kept
 *      until the other runs are done): key proofs (sl_store_prove_key) and
 *      their verification (sl_mmr_range_verify), range proofs of 1000
 *      operations, and the in-memory MMR's append rate as a reference.
 *   5. Peak RSS.
 *
 * Besides time, sections 2 and 3 report the bytes the process passed to
 * write(2) (wchar in /proc/self/io), which is where the store's time goes:
 * SQLite writes whole pages to the WAL at each commit and again to the
 * database at each checkpoint, and random keys dirty a page per row.
 *
 * Keys and values come from a seeded generator (--seed), a pure function of
 * (seed, stream, index), so the proof section can pick random existing keys
 * without keeping them. Rates are measured over at least about a second of
 * work, or over the whole work where it is fixed. All data lives in a
 * fresh directory under --dir (default $TMPDIR or /tmp), removed at the end.
 *
 * Usage: store_bench [--ops N] [--batch N] [--seed N] [--dir DIR]
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sluice/base.h"
#include "sluice/mmr.h"
#include "sluice/store.h"

#define BENCH_NAME "store_bench"
#include "bench_util.h"

#define KEY_LEN         32
#define VALUE_LEN       32
#define MIN_SECONDS     1.0   /* time-bounded loops run at least this long */
#define KEY_PROOFS_KEPT 20000 /* key proofs kept for the verification pass */
#define RANGE_LEN       1000  /* operations per range proof */
#define RANGE_SAMPLES   64    /* distinct ranges proved and verified */

/* Generator streams: each kind of data draws from its own. */
enum { STREAM_PLAIN = 1, STREAM_IMMUTABLE = 2, STREAM_MUTABLE = 3, STREAM_PICK = 4 };

static uint64_t opt_seed = 20261121;

/* ------------------------------------------------------------- utilities */

static void check_sqlite(sqlite3 *db, int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		die("%s: sqlite rc=%d (%s)", what, rc,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static double seconds_since(uint64_t start_ns)
{
	return (double)(sl_clock_mono_ns() - start_ns) / 1e9;
}

/* splitmix64: the generator behind every key, value and pick. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t rng_next(uint64_t *state)
{
	*state += UINT64_C(0x9e3779b97f4a7c15);
	return mix64(*state);
}

static uint64_t rng_below(uint64_t *state, uint64_t n)
{
	return n ? rng_next(state) % n : 0;
}

static uint64_t stream_state(uint64_t stream, uint64_t index)
{
	return mix64(opt_seed ^ mix64((stream << 48) ^ index));
}

static void random_bytes(uint64_t *state, uint8_t *out, size_t n)
{
	while (n > 0) {
		uint64_t word = rng_next(state);
		size_t take = n < 8 ? n : 8;
		memcpy(out, &word, take);
		out += take;
		n -= take;
	}
}

/* Key `index` of a stream: 32 characters of [A-Za-z0-9_-] (a valid
 * one-segment key), and its 32-byte value. */
static void make_entry(uint64_t stream, uint64_t index, char key[KEY_LEN], uint8_t value[VALUE_LEN])
{
	static const char alphabet[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
	uint64_t state = stream_state(stream, index);
	for (size_t i = 0; i < KEY_LEN; i += 8) {
		uint64_t word = rng_next(&state);
		for (size_t j = 0; j < 8; j++, word >>= 6)
			key[i + j] = alphabet[word & 63];
	}
	if (value)
		random_bytes(&state, value, VALUE_LEN);
}

/* ------------------------------------------------------------- the table */

/* 1234567.8 -> "1,234,568"; small values keep a few decimals. */
static void format_value(char *out, size_t cap, double v)
{
	char digits[32], grouped[48];
	size_t n, j = 0;

	if (v < 0 || v >= 1000) {
		snprintf(digits, sizeof(digits), "%.0f", v);
		n = strlen(digits);
		for (size_t i = 0; i < n; i++) {
			if (i > 0 && (n - i) % 3 == 0 && digits[i - 1] != '-')
				grouped[j++] = ',';
			grouped[j++] = digits[i];
		}
		grouped[j] = '\0';
		snprintf(out, cap, "%s", grouped);
	} else if (v >= 100) {
		snprintf(out, cap, "%.0f", v);
	} else if (v >= 10) {
		snprintf(out, cap, "%.1f", v);
	} else {
		snprintf(out, cap, "%.2f", v);
	}
}

static void table_header(void)
{
	printf("%-46s %14s  %-8s %s\n", "name", "value", "unit", "note");
	printf("%-46s %14s  %-8s %s\n", "----", "-----", "----", "----");
	fflush(stdout);
}

static void section(const char *title)
{
	printf("%s\n", title);
	fflush(stdout);
}

static void row(const char *name, double value, const char *unit, const char *note_fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void row(const char *name, double value, const char *unit, const char *note_fmt, ...)
{
	char value_text[48], note[256] = "";
	va_list ap;

	format_value(value_text, sizeof(value_text), value);
	if (note_fmt) {
		va_start(ap, note_fmt);
		vsnprintf(note, sizeof(note), note_fmt, ap);
		va_end(ap);
	}
	printf("  %-44s %14s  %-8s %s\n", name, value_text, unit, note);
	fflush(stdout);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "store_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static double peak_rss_mib(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

/* Bytes this process has passed to write(2) and friends so far, from
 * /proc/self/io (Linux); 0 where that is not available. */
static uint64_t bytes_written(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	unsigned long long wchar = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "wchar: %llu", &wchar) == 1)
			break;
	fclose(f);
	return (uint64_t)wchar;
}

/* ------------------------------------------------------------- temp files */

static char work_dir[4096];

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* A database and its WAL, in bytes. */
static uint64_t db_bytes(const char *db_path)
{
	char wal[4200];
	snprintf(wal, sizeof(wal), "%s-wal", db_path);
	return file_bytes(db_path) + file_bytes(wal);
}

static void remove_db(const char *db_path)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char path[4200];
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", db_path, suffixes[i]);
		if (unlink(path) != 0 && errno != ENOENT)
			die("remove %s: %s", path, strerror(errno));
	}
}

static void remove_store(const char *dir)
{
	char db_path[4200];
	snprintf(db_path, sizeof(db_path), "%s/sluice.db", dir);
	remove_db(db_path);
	if (rmdir(dir) != 0 && errno != ENOENT)
		die("remove %s: %s", dir, strerror(errno));
}

/* ------------------------------------------------------------- 1. SHA-256 */

/* Repeat fn(i) until MIN_SECONDS passed; returns calls per second. */
typedef void (*work_fn)(void *ctx, uint64_t i);

static double rate_of(work_fn fn, void *ctx)
{
	uint64_t start = sl_clock_mono_ns(), calls = 0;
	double elapsed;
	do {
		for (uint64_t j = 0; j < 1024; j++, calls++)
			fn(ctx, calls);
		elapsed = seconds_since(start);
	} while (elapsed < MIN_SECONDS);
	return (double)calls / elapsed;
}

typedef struct hash_ctx {
	uint8_t *data;
	size_t len;
	sl_digest digest, left, right;
} hash_ctx;

static void hash_plain(void *ctx, uint64_t i)
{
	hash_ctx *h = ctx;
	h->data[0] = (uint8_t)i; /* a different input each time */
	sl_sha256(&h->digest, h->data, h->len);
}

static void hash_leaf(void *ctx, uint64_t i)
{
	hash_ctx *h = ctx;
	sl_mmr_leaf_digest(&h->digest, i, h->data, h->len);
}

static void hash_node(void *ctx, uint64_t i)
{
	hash_ctx *h = ctx;
	sl_mmr_node_digest(&h->digest, i, &h->left, &h->right);
}

/* Element length of a set/update with a 32-byte key and a 32-byte value:
 * type, key length, key, value length, digest. */
#define OP_ELEMENT_LEN (1 + 1 + KEY_LEN + 1 + SL_DIGEST_LEN)
/* Room per element when reading ranges back: a set or a commit (9 B). */
#define RANGE_ELEMENT_MAX OP_ELEMENT_LEN

static void bench_sha256(void)
{
	uint8_t small[72], *big;
	hash_ctx h;
	uint64_t start, calls = 0;
	double per_op_s, rate, elapsed;

	section("SHA-256 (sl_sha256, OpenSSL EVP)");
	memset(&h, 0, sizeof(h));
	memset(small, 0xa5, sizeof(small));
	h.data = small;
	h.len = sizeof(small);
	rate_of(hash_plain, &h); /* warm up: first calls, CPU frequency */
	rate = rate_of(hash_plain, &h);
	row("sha256 72 B (MMR node input size)", rate, "hash/s", "%.0f ns each", 1e9 / rate);

	if (!(big = malloc(1 << 20)))
		die("out of memory");
	memset(big, 0x5a, 1 << 20);
	h.data = big;
	h.len = 1 << 20;
	start = sl_clock_mono_ns();
	do {
		hash_plain(&h, calls++);
		elapsed = seconds_since(start);
	} while (elapsed < MIN_SECONDS);
	row("sha256 1 MiB buffers", (double)calls / elapsed, "MiB/s", NULL);
	free(big);

	/* What one immutable set costs in hashing: its value (32 B), its leaf
	 * (8 + element) and on average one parent node. */
	h.data = small;
	h.len = VALUE_LEN;
	per_op_s = 1.0 / rate_of(hash_plain, &h);
	h.len = OP_ELEMENT_LEN;
	rate = rate_of(hash_leaf, &h);
	per_op_s += 1.0 / rate;
	row("sl_mmr_leaf_digest (8 + 67 B, 2 parts)", rate, "hash/s", "%.0f ns each", 1e9 / rate);
	rate = rate_of(hash_node, &h);
	per_op_s += 1.0 / rate;
	row("sl_mmr_node_digest (8 + 32 + 32 B, 3 parts)", rate, "hash/s", "%.0f ns each",
	    1e9 / rate);
	row("hashing limit per store op", 1.0 / per_op_s, "op/s",
	    "value + leaf + 1 node = %.2f us/op", per_op_s * 1e6);
}

/* -------------------------------------------------------- 2. plain SQLite */

/* The store's pragmas (store.c), with the given synchronous mode. */
static sqlite3 *plain_open(const char *path, const char *sync, const char *schema)
{
	sqlite3 *db = NULL;
	char pragmas[256];
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	check_sqlite(db, rc, "open plain database");
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA cache_size = -65536; "
	         "PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 268435456;",
	         sync);
	check_sqlite(db, sqlite3_exec(db, pragmas, NULL, NULL, NULL), "set pragmas");
	check_sqlite(db, sqlite3_exec(db, schema, NULL, NULL, NULL), "create tables");
	return db;
}

static sqlite3_stmt *plain_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	check_sqlite(db, sqlite3_prepare_v2(db, sql, -1, &st, NULL), sql);
	return st;
}

static void plain_step(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		check_sqlite(db, rc == SQLITE_ROW ? SQLITE_MISUSE : rc, "insert");
	sqlite3_reset(st);
}

static void plain_exec(sqlite3 *db, const char *sql)
{
	check_sqlite(db, sqlite3_exec(db, sql, NULL, NULL, NULL), sql);
}

/* One 32-byte blob per row in a rowid table; returns rows/s. */
static double bench_plain_rowid(const char *sync, uint64_t n_rows, size_t batch)
{
	char path[4200], name[64];
	uint8_t *values;
	uint64_t state = stream_state(STREAM_PLAIN, 0), timed_ns = 0, written = bytes_written();
	sqlite3 *db;
	sqlite3_stmt *st;

	snprintf(path, sizeof(path), "%s/plain-rowid.db", work_dir);
	db = plain_open(path, sync, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL);");
	st = plain_prepare(db, "INSERT INTO t(id, v) VALUES (?1, ?2)");
	if (!(values = malloc(batch * VALUE_LEN)))
		die("out of memory");
	for (uint64_t done = 0; done < n_rows;) {
		size_t n = n_rows - done < batch ? (size_t)(n_rows - done) : batch;
		random_bytes(&state, values, n * VALUE_LEN);
		uint64_t start = sl_clock_mono_ns();
		plain_exec(db, "BEGIN IMMEDIATE");
		for (size_t i = 0; i < n; i++) {
			sqlite3_bind_int64(st, 1, (int64_t)(done + i));
			sqlite3_bind_blob(st, 2, values + i * VALUE_LEN, VALUE_LEN, SQLITE_STATIC);
			plain_step(db, st);
		}
		plain_exec(db, "COMMIT");
		timed_ns += sl_clock_mono_ns() - start;
		done += n;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	written = bytes_written() - written;
	free(values);
	snprintf(name, sizeof(name), "rowid 32 B blobs, synchronous=%s", sync);
	row(name, (double)n_rows / ((double)timed_ns / 1e9), "row/s",
	    "%.1f s; %.0f MB on disk; %.2f KB written per row", (double)timed_ns / 1e9,
	    (double)db_bytes(path) / 1e6, (double)written / 1e3 / (double)n_rows);
	remove_db(path);
	return (double)n_rows / ((double)timed_ns / 1e9);
}

/* The rows one store operation writes, in the store's table shapes: an op
 * row (a 67-byte element), a blob row and a state row, both WITHOUT ROWID
 * under random 32-byte keys. The store also writes MMR chunks (about 64
 * bytes per operation, appended in order), left out here. */
static void bench_plain_store_rows(const char *sync, uint64_t n_ops, size_t batch)
{
	enum { ROW_BYTES = OP_ELEMENT_LEN + SL_DIGEST_LEN + VALUE_LEN + KEY_LEN + SL_DIGEST_LEN };
	char path[4200], name[80];
	uint8_t *data;
	uint64_t state = stream_state(STREAM_PLAIN, 1), timed_ns = 0, written = bytes_written();
	sqlite3 *db;
	sqlite3_stmt *op_st, *blob_st, *state_st;

	snprintf(path, sizeof(path), "%s/plain-store.db", work_dir);
	db = plain_open(path, sync,
	                "CREATE TABLE ops(id INTEGER PRIMARY KEY, element BLOB NOT NULL);"
	                "CREATE TABLE blobs(digest BLOB PRIMARY KEY, value BLOB NOT NULL) "
	                "WITHOUT ROWID;"
	                "CREATE TABLE state(ns INTEGER NOT NULL, key BLOB NOT NULL, "
	                "loc INTEGER NOT NULL, digest BLOB NOT NULL, size INTEGER NOT NULL, "
	                "PRIMARY KEY(ns, key)) WITHOUT ROWID;");
	op_st = plain_prepare(db, "INSERT INTO ops(id, element) VALUES (?1, ?2)");
	blob_st = plain_prepare(db, "INSERT OR IGNORE INTO blobs(digest, value) VALUES (?1, ?2)");
	state_st = plain_prepare(db, "INSERT INTO state(ns, key, loc, digest, size) VALUES "
	                             "(1, ?1, ?2, ?3, ?4) ON CONFLICT(ns, key) DO NOTHING");
	if (!(data = malloc(batch * ROW_BYTES)))
		die("out of memory");
	for (uint64_t done = 0; done < n_ops;) {
		size_t n = n_ops - done < batch ? (size_t)(n_ops - done) : batch;
		random_bytes(&state, data, n * ROW_BYTES);
		uint64_t start = sl_clock_mono_ns();
		plain_exec(db, "BEGIN IMMEDIATE");
		for (size_t i = 0; i < n; i++) {
			const uint8_t *element = data + i * ROW_BYTES;
			const uint8_t *digest = element + OP_ELEMENT_LEN;
			const uint8_t *value = digest + SL_DIGEST_LEN, *key = value + VALUE_LEN;
			const uint8_t *state_digest = key + KEY_LEN;
			int64_t loc = (int64_t)(done + i);
			sqlite3_bind_int64(op_st, 1, ((int64_t)1 << 40) | loc);
			sqlite3_bind_blob(op_st, 2, element, OP_ELEMENT_LEN, SQLITE_STATIC);
			plain_step(db, op_st);
			sqlite3_bind_blob(blob_st, 1, digest, SL_DIGEST_LEN, SQLITE_STATIC);
			sqlite3_bind_blob(blob_st, 2, value, VALUE_LEN, SQLITE_STATIC);
			plain_step(db, blob_st);
			sqlite3_bind_blob(state_st, 1, key, KEY_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(state_st, 2, loc);
			sqlite3_bind_blob(state_st, 3, state_digest, SL_DIGEST_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(state_st, 4, VALUE_LEN);
			plain_step(db, state_st);
		}
		plain_exec(db, "COMMIT");
		timed_ns += sl_clock_mono_ns() - start;
		done += n;
	}
	sqlite3_finalize(op_st);
	sqlite3_finalize(blob_st);
	sqlite3_finalize(state_st);
	sqlite3_close(db);
	written = bytes_written() - written;
	free(data);
	snprintf(name, sizeof(name), "op+blob+state rows, synchronous=%s", sync);
	row(name, (double)n_ops / ((double)timed_ns / 1e9), "op/s",
	    "%.1f s; %.0f MB on disk; %.1f KB written per op", (double)timed_ns / 1e9,
	    (double)db_bytes(path) / 1e6, (double)written / 1e3 / (double)n_ops);
	remove_db(path);
}

/* Returns the rate of plain appends with synchronous=NORMAL, the limit
 * the store's goals are stated against. */
static double bench_plain(uint64_t n_ops, size_t batch)
{
	char title[128];
	double normal;
	snprintf(title, sizeof(title),
	         "Plain SQLite %s (WAL, %zu rows per transaction, prepared statements)",
	         sqlite3_libversion(), batch);
	section(title);
	progress("plain sqlite: rowid inserts");
	normal = bench_plain_rowid("NORMAL", n_ops, batch);
	bench_plain_rowid("FULL", n_ops, batch);
	progress("plain sqlite: store-shaped rows");
	bench_plain_store_rows("NORMAL", n_ops, batch);
	return normal;
}

/* ----------------------------------------------------------- 3. the store */

static sl_store *store_open(const char *dir, int durable, int create)
{
	sl_store_options o;
	sl_store *s = NULL;
	sl_store_options_init(&o);
	o.durable = durable;
	o.flags = create ? SL_STORE_CREATE : 0;
	check(sl_store_open(&s, dir, &o), "open store");
	return s;
}

/* Fill a fresh store's namespace "bench" with n_ops puts; returns op/s,
 * and the store directory's path in dir (the store is closed). */
static double bench_store(char *dir, size_t dir_cap, sl_ns_kind kind, int durable, uint64_t n_ops,
                          size_t batch_size)
{
	const uint64_t stream = kind == SL_NS_IMMUTABLE ? STREAM_IMMUTABLE : STREAM_MUTABLE;
	char name[80], db_path[4200], (*keys)[KEY_LEN];
	uint8_t(*values)[VALUE_LEN];
	uint64_t put_ns = 0, commit_ns = 0, commits = 0, written;
	sl_target target = {0, {{0}}, 0};
	sl_batch *batch = NULL;
	sl_store *s;
	double total_s;

	snprintf(dir, dir_cap, "%s/store-%s-%s", work_dir, sl_ns_kind_name(kind),
	         durable ? "full" : "normal");
	progress("store: %llu puts, %s namespace, durable=%d", (unsigned long long)n_ops,
	         sl_ns_kind_name(kind), durable);
	written = bytes_written();
	s = store_open(dir, durable, 1);
	check(sl_store_ns_create(s, "bench", kind), "create namespace");
	check(sl_batch_new(&batch, s, "bench"), "new batch");
	keys = malloc(batch_size * sizeof(*keys));
	values = malloc(batch_size * sizeof(*values));
	if (!keys || !values)
		die("out of memory");
	for (uint64_t done = 0; done < n_ops;) {
		size_t n = n_ops - done < batch_size ? (size_t)(n_ops - done) : batch_size;
		for (size_t i = 0; i < n; i++)
			make_entry(stream, done + i, keys[i], values[i]);
		uint64_t start = sl_clock_mono_ns();
		for (size_t i = 0; i < n; i++)
			check(sl_batch_put(batch, keys[i], KEY_LEN, values[i], VALUE_LEN), "put");
		uint64_t mid = sl_clock_mono_ns();
		check(sl_batch_commit(batch, &target), "commit");
		uint64_t end = sl_clock_mono_ns();
		put_ns += mid - start;
		commit_ns += end - mid;
		commits++;
		done += n;
	}
	written = bytes_written() - written;
	sl_batch_free(batch);
	sl_store_free(s);
	free(keys);
	free(values);
	snprintf(db_path, sizeof(db_path), "%s/sluice.db", dir);

	total_s = (double)(put_ns + commit_ns) / 1e9;
	snprintf(name, sizeof(name), "%s, durable=%d (synchronous=%s)", sl_ns_kind_name(kind),
	         durable, durable ? "FULL" : "NORMAL");
	row(name, (double)n_ops / total_s, "op/s",
	    "put %.2f s (validate, copy, hash) + commit %.1f s", (double)put_ns / 1e9,
	    (double)commit_ns / 1e9);
	row("  total time", total_s, "s", "%llu commits, %.2f ms each", (unsigned long long)commits,
	    (double)commit_ns / 1e6 / (double)commits);
	row("  store size", (double)db_bytes(db_path) / 1e6, "MB",
	    "%.0f B per put; log holds %llu ops", (double)db_bytes(db_path) / (double)n_ops,
	    (unsigned long long)target.size);
	row("  written per put", (double)written / 1e3 / (double)n_ops, "KB",
	    "%.2f GB through write(2): WAL frames and checkpoints", (double)written / 1e9);
	return (double)n_ops / total_s;
}

/* A store rate against the plain append rate of the same run. */
static void goal_row(const char *name, double rate, double plain, double goal)
{
	row(name, rate / plain, "x", "goal >= %.2f: %s", goal,
	    rate / plain >= goal ? "met" : "not met");
}

/* ------------------------------------------------------------- 4. proofs */

typedef struct range_sample {
	uint64_t start;
	sl_mmr_proof proof;
	uint8_t *elements; /* RANGE_LEN elements, RANGE_ELEMENT_MAX bytes each at most */
	sl_bytes *parts;   /* each element, pointing into `elements` */
	size_t n;
	size_t used;
} range_sample;

static int collect_element(void *ctx, uint64_t loc, const sl_op *op, const uint8_t *element,
                           size_t element_len)
{
	range_sample *r = ctx;
	(void)loc;
	(void)op;
	if (r->n >= RANGE_LEN || element_len > RANGE_ELEMENT_MAX)
		die("unexpected operation of %zu bytes in the log", element_len);
	memcpy(r->elements + r->used, element, element_len);
	r->parts[r->n].data = r->elements + r->used;
	r->parts[r->n].len = element_len;
	r->used += element_len;
	r->n++;
	return 0;
}

static size_t proof_bytes(const sl_mmr_proof *p)
{
	return 8 + sl_varint_len(p->n_digests) + p->n_digests * SL_DIGEST_LEN;
}

typedef struct size_stats {
	size_t min, max;
	double sum;
	uint64_t count;
} size_stats;

static void size_add(size_stats *z, size_t v)
{
	if (z->count == 0 || v < z->min)
		z->min = v;
	if (v > z->max)
		z->max = v;
	z->sum += (double)v;
	z->count++;
}

static void bench_key_proofs(sl_store *s, uint64_t n_keys)
{
	sl_key_proof *proofs;
	size_stats digests = {0, 0, 0, 0}, bytes = {0, 0, 0, 0};
	uint64_t pick = stream_state(STREAM_PICK, 0), n_gen = 0, n_ver = 0, start;
	size_t kept;
	double gen_s, ver_s;
	char key[KEY_LEN];

	progress("proofs: key proofs");
	if (!(proofs = calloc(KEY_PROOFS_KEPT, sizeof(*proofs))))
		die("out of memory");
	for (size_t i = 0; i < KEY_PROOFS_KEPT; i++)
		sl_key_proof_init(&proofs[i]);
	start = sl_clock_mono_ns();
	do {
		for (int j = 0; j < 64; j++, n_gen++) {
			sl_key_proof *p = &proofs[n_gen % KEY_PROOFS_KEPT];
			make_entry(STREAM_IMMUTABLE, rng_below(&pick, n_keys), key, NULL);
			check(sl_store_prove_key(s, "bench", key, KEY_LEN, p), "prove key");
			size_add(&digests, p->proof.n_digests);
			size_add(&bytes, proof_bytes(&p->proof));
		}
		gen_s = seconds_since(start);
	} while (gen_s < MIN_SECONDS || n_gen < KEY_PROOFS_KEPT);
	kept = n_gen < KEY_PROOFS_KEPT ? (size_t)n_gen : KEY_PROOFS_KEPT;

	start = sl_clock_mono_ns();
	do {
		for (size_t i = 0; i < kept; i++, n_ver++) {
			sl_key_proof *p = &proofs[i];
			sl_bytes element = {p->element.data, p->element.len};
			check(sl_mmr_range_verify(&p->proof, p->loc, &element, 1, &p->target.root),
			      "verify key proof");
		}
		ver_s = seconds_since(start);
	} while (ver_s < MIN_SECONDS);

	row("key proof (sl_store_prove_key)", (double)n_gen / gen_s, "proof/s",
	    "random existing keys, %.1f us each", gen_s * 1e6 / (double)n_gen);
	row("key proof verify (sl_mmr_range_verify)", (double)n_ver / ver_s, "proof/s",
	    "%.1f us each", ver_s * 1e6 / (double)n_ver);
	row("key proof size, avg", digests.sum / (double)digests.count, "digests",
	    "min %zu, max %zu", digests.min, digests.max);
	row("key proof size, avg", bytes.sum / (double)bytes.count, "B",
	    "min %zu, max %zu; encoded MMR proof, + %d B element", bytes.min, bytes.max,
	    OP_ELEMENT_LEN);
	for (size_t i = 0; i < KEY_PROOFS_KEPT; i++)
		sl_key_proof_free(&proofs[i]);
	free(proofs);
}

static void bench_range_proofs(sl_store *s, const sl_target *target)
{
	range_sample *samples;
	size_stats digests = {0, 0, 0, 0}, bytes = {0, 0, 0, 0};
	const uint64_t leaves = target->size, len = leaves < RANGE_LEN ? leaves : RANGE_LEN;
	uint64_t pick = stream_state(STREAM_PICK, 1), n_gen = 0, n_ver = 0, start;
	double fetch_s, gen_s, ver_s;
	char name[80], ops_rate[48];
	size_t ops_bytes = 0;

	progress("proofs: range proofs of %llu ops", (unsigned long long)len);
	if (!(samples = calloc(RANGE_SAMPLES, sizeof(*samples))))
		die("out of memory");
	for (size_t i = 0; i < RANGE_SAMPLES; i++) {
		range_sample *r = &samples[i];
		r->start = rng_below(&pick, leaves - len + 1);
		r->elements = malloc(RANGE_LEN * RANGE_ELEMENT_MAX);
		r->parts = malloc(RANGE_LEN * sizeof(*r->parts));
		if (!r->elements || !r->parts)
			die("out of memory");
	}

	/* What a sync server reads besides the proof: the operations. */
	start = sl_clock_mono_ns();
	for (size_t i = 0; i < RANGE_SAMPLES; i++) {
		range_sample *r = &samples[i];
		check(sl_store_log(s, "bench", r->start, len, collect_element, r), "read log");
		if (r->n != len)
			die("read %zu of %llu operations", r->n, (unsigned long long)len);
	}
	fetch_s = seconds_since(start);

	start = sl_clock_mono_ns();
	do {
		for (size_t i = 0; i < RANGE_SAMPLES; i++, n_gen++) {
			range_sample *r = &samples[i];
			sl_mmr_proof_free(&r->proof);
			check(sl_store_range_proof(s, "bench", leaves, r->start, r->start + len,
			                           &r->proof),
			      "range proof");
			size_add(&digests, r->proof.n_digests);
			size_add(&bytes, proof_bytes(&r->proof));
		}
		gen_s = seconds_since(start);
	} while (gen_s < MIN_SECONDS);

	start = sl_clock_mono_ns();
	do {
		for (size_t i = 0; i < RANGE_SAMPLES; i++, n_ver++) {
			range_sample *r = &samples[i];
			check(sl_mmr_range_verify(&r->proof, r->start, r->parts, r->n,
			                          &target->root),
			      "verify range proof");
		}
		ver_s = seconds_since(start);
	} while (ver_s < MIN_SECONDS);

	snprintf(name, sizeof(name), "range proof of %llu ops (sl_store_range_proof)",
	         (unsigned long long)len);
	row(name, (double)n_gen / gen_s, "proof/s", "%.1f us each; digests only",
	    gen_s * 1e6 / (double)n_gen);
	format_value(ops_rate, sizeof(ops_rate), (double)(RANGE_SAMPLES * len) / fetch_s);
	row("  read its ops (sl_store_log)", (double)RANGE_SAMPLES / fetch_s, "range/s",
	    "%.0f us each, %s op/s", fetch_s * 1e6 / RANGE_SAMPLES, ops_rate);
	format_value(ops_rate, sizeof(ops_rate), (double)(n_ver * len) / ver_s);
	row("  verify (sl_mmr_range_verify)", (double)n_ver / ver_s, "proof/s",
	    "%.0f us each, %s op/s", ver_s * 1e6 / (double)n_ver, ops_rate);
	row("  size, avg", digests.sum / (double)digests.count, "digests", "min %zu, max %zu",
	    digests.min, digests.max);
	for (size_t i = 0; i < RANGE_SAMPLES; i++)
		ops_bytes += samples[i].used;
	row("  size, avg", bytes.sum / (double)bytes.count, "B",
	    "min %zu, max %zu; encoded, next to %.0f B of ops", bytes.min, bytes.max,
	    (double)ops_bytes / RANGE_SAMPLES);
	for (size_t i = 0; i < RANGE_SAMPLES; i++) {
		sl_mmr_proof_free(&samples[i].proof);
		free(samples[i].elements);
		free(samples[i].parts);
	}
	free(samples);
}

static void bench_mem_mmr(uint64_t n)
{
	uint8_t element[OP_ELEMENT_LEN];
	sl_mmr_mem *m = NULL;
	char count[48];
	uint64_t start;
	double elapsed;

	progress("in-memory MMR: %llu appends", (unsigned long long)n);
	memset(element, 0x42, sizeof(element));
	check(sl_mmr_mem_new(&m), "new in-memory MMR");
	start = sl_clock_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		sl_be64_put(element + 2, i); /* a different element each time */
		check(sl_mmr_mem_append(m, element, sizeof(element)), "append");
	}
	elapsed = seconds_since(start);
	sl_mmr_mem_free(m);
	format_value(count, sizeof(count), (double)n);
	row("in-memory MMR append (sl_mmr_mem)", (double)n / elapsed, "op/s",
	    "%s elements of %d B in %.2f s", count, OP_ELEMENT_LEN, elapsed);
}

static void bench_proofs(const char *dir, uint64_t n_keys)
{
	sl_ns_info info;
	sl_store *s = store_open(dir, 0, 0);
	char title[128];

	check(sl_store_ns_info(s, "bench", &info), "namespace info");
	snprintf(title, sizeof(title), "Proofs (immutable store above, %llu leaves)",
	         (unsigned long long)info.target.size);
	section(title);
	bench_key_proofs(s, n_keys);
	bench_range_proofs(s, &info.target);
	sl_store_free(s);
}

/* ------------------------------------------------------------------ main */

static uint64_t parse_number(const char *flag, const char *text, uint64_t min)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v < min)
		die("%s wants an integer of at least %llu, not '%s'", flag, (unsigned long long)min,
		    text);
	return (uint64_t)v;
}

static void usage(void)
{
	fprintf(stderr, "usage: store_bench [--ops N] [--batch N] [--seed N] [--dir DIR]\n"
	                "  --ops N    operations per store run (default 1000000)\n"
	                "  --batch N  operations per commit (default 1000)\n"
	                "  --seed N   generator seed (default 20261121)\n"
	                "  --dir DIR  where to make the temporary directory "
	                "(default $TMPDIR or /tmp)\n");
}

int main(int argc, char **argv)
{
	uint64_t n_ops = 1000000, batch = 1000;
	const char *parent = getenv("TMPDIR");
	char dir[4200], proof_dir[4200];
	uint64_t start = sl_clock_mono_ns();
	double rss_stores, plain, immutable, mutable;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			usage();
			return 0;
		}
		if (i + 1 >= argc) {
			usage();
			die("unknown or incomplete argument '%s'", arg);
		}
		if (strcmp(arg, "--ops") == 0)
			n_ops = parse_number(arg, argv[++i], 1);
		else if (strcmp(arg, "--batch") == 0)
			batch = parse_number(arg, argv[++i], 1);
		else if (strcmp(arg, "--seed") == 0)
			opt_seed = parse_number(arg, argv[++i], 0);
		else if (strcmp(arg, "--dir") == 0)
			parent = argv[++i];
		else {
			usage();
			die("unknown argument '%s'", arg);
		}
	}
	if (batch > 1000000)
		die("--batch is capped at 1000000");
	if (!parent || !*parent)
		parent = "/tmp";
	snprintf(work_dir, sizeof(work_dir), "%s/sluice-bench.XXXXXX", parent);
	if (!mkdtemp(work_dir))
		die("make a temporary directory under %s: %s", parent, strerror(errno));
	check(sl_base_init(), "init");
	sl_log_set_level(SL_LOG_WARN);

	printf("store_bench: %llu ops per run, batches of %llu, 32-byte keys and values, "
	       "seed %llu\n\n",
	       (unsigned long long)n_ops, (unsigned long long)batch, (unsigned long long)opt_seed);
	table_header();
	bench_sha256();
	plain = bench_plain(n_ops, (size_t)batch);

	section("Store: put + commit (sl_batch_put, sl_batch_commit), a fresh store per run");
	immutable =
	        bench_store(proof_dir, sizeof(proof_dir), SL_NS_IMMUTABLE, 0, n_ops, (size_t)batch);
	mutable = bench_store(dir, sizeof(dir), SL_NS_MUTABLE, 0, n_ops, (size_t)batch);
	remove_store(dir);
	bench_store(dir, sizeof(dir), SL_NS_IMMUTABLE, 1, n_ops, (size_t)batch);
	remove_store(dir);
	bench_store(dir, sizeof(dir), SL_NS_MUTABLE, 1, n_ops, (size_t)batch);
	remove_store(dir);
	section("Against the plain append rate (synchronous=NORMAL) of this run");
	goal_row("immutable / plain appends", immutable, plain, 0.35);
	goal_row("mutable / plain appends", mutable, plain, 0.20);

	bench_proofs(proof_dir, n_ops);
	remove_store(proof_dir);
	rss_stores = peak_rss_mib();
	bench_mem_mmr(n_ops);

	section("Process");
	row("peak RSS after the store runs and proofs", rss_stores, "MiB",
	    "ru_maxrss; counts the store's mmap (<= 256 MiB) and page cache (64 MiB)");
	row("peak RSS at the end", peak_rss_mib(), "MiB", "after the in-memory MMR too");
	row("wall time of this run", seconds_since(start), "s", NULL);
	if (rmdir(work_dir) != 0)
		die("remove %s: %s", work_dir, strerror(errno));
	return 0;
}
