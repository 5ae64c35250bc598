/*
 * reconcile_bench: the stores bench/reconcile_bench.sh compares with
 * `sluice diff`, made quickly through the library, and what it needs to
 * judge the answers.
 *
 *   reconcile_bench build DIR N [SEED]
 *       Creates a store in DIR with the mutable namespace `m` holding N
 *       keys `k/0` .. `k/<N-1>`, each with a 32-byte value drawn from SEED,
 *       in commits of 10,000 (durable=0). Prints the seconds it took.
 *
 *   reconcile_bench perturb A B D scattered|clustered SEED
 *       A and B are two copies of one store (checked: same root). Picks D
 *       live keys of `m` and makes them differ: D/3 are deleted from B
 *       (only in A), D/3 are deleted from A (only in B), the rest get a new
 *       value in B (different; D = 1 is one different key). Scattered: the
 *       keys are drawn uniformly from the whole set. Clustered: they are D
 *       consecutive items in item order (sorted by item id), and each new
 *       value is redrawn until its item id also falls between the
 *       cluster's neighbours, so every item that differs, old or new,
 *       lies in one stretch of the item order. Roles are shuffled within
 *       the chosen keys. Prints the seed on stderr and, on stdout, one
 *       JSON object with what `sluice diff -d A m --peer <B>` must report:
 *       {"seed": S, "only_local": [...], "only_remote": [...],
 *        "different": [...]}, each list sorted bytewise.
 *
 *   reconcile_bench fingerprints DIR ROUNDS
 *       Opens the items of `m` (timed: the view is built from the stored
 *       sums and the log's tail), then times ROUNDS sums of random index
 *       ranges, each what one range fingerprint costs a responder.
 *
 *   reconcile_bench rewrite DIR M [SEED]
 *       Gives keys `k/0` .. `k/<M-1>` new values drawn from SEED, the same
 *       in every copy it is run on, in commits of 10,000: operations the
 *       state table has not taken in yet (up to state_flush_ops, 262,144
 *       by default), which a handle replays to build its view of the items.
 *
 *   reconcile_bench sizes DIR
 *       For the live keys of `m` in DIR (sl_store_list), the bytes a naive
 *       exchange would send: every item id (count x 32) and every key (its
 *       bytes plus a LEB128 varint of its length each); and the tail a
 *       handle replays when it opens the items, size - state_loc, read
 *       from the namespaces table with SQLite (-1 if that fails: the
 *       schema is the store's, not an API). Prints
 *       `items=N id_bytes=N key_bytes=N tail=N`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sluice/base.h"
#include "sluice/store.h"

#define BENCH_NAME "reconcile_bench"
#include "bench_util.h"

#define NS           "m"
#define VALUE_LEN    32
#define COMMIT_OPS   10000
#define KEY_CAP      32 /* "k/" and up to 20 digits */
#define STREAM_BUILD 1
#define STREAM_PICK  2
#define STREAM_VALUE 3
#define STREAM_WRITE 4

/* ------------------------------------------------------------- utilities */

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (*text == '\0' || *end != '\0' || *text == '-')
		die("%s: not a number: %s", what, text);
	return (uint64_t)v;
}

/* splitmix64 */
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

static uint64_t stream_state(uint64_t seed, uint64_t stream, uint64_t index)
{
	return mix64(seed ^ mix64((stream << 48) ^ index));
}

static void random_value(uint64_t *state, uint8_t out[VALUE_LEN])
{
	for (size_t i = 0; i < VALUE_LEN; i += 8) {
		uint64_t word = rng_next(state);
		memcpy(out + i, &word, 8);
	}
}

static sl_store *store_open(const char *dir, unsigned flags)
{
	sl_store_options o;
	sl_store *s;
	sl_store_options_init(&o);
	o.flags = flags;
	o.durable = 0;
	check(sl_store_open(&s, dir, &o), dir);
	return s;
}

/* ----------------------------------------------------------------- build */

/* Put keys k/0 .. k/<n-1> with values from (seed, stream), in commits of
 * COMMIT_OPS. */
static void write_keys(sl_store *s, uint64_t n, uint64_t seed, uint64_t stream)
{
	uint8_t value[VALUE_LEN];
	char key[KEY_CAP];
	sl_batch *batch;

	check(sl_batch_new(&batch, s, NS), "batch");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t state = stream_state(seed, stream, i);
		int len = snprintf(key, sizeof(key), "k/%llu", (unsigned long long)i);
		random_value(&state, value);
		check(sl_batch_put(batch, key, (size_t)len, value, VALUE_LEN), "put");
		if (sl_batch_count(batch) == COMMIT_OPS || i + 1 == n)
			check(sl_batch_commit(batch, NULL), "commit");
	}
	sl_batch_free(batch);
}

static int cmd_build(int argc, char **argv)
{
	uint64_t n, seed, start;
	sl_store *s;

	if (argc < 2 || argc > 3)
		die("usage: reconcile_bench build DIR N [SEED]");
	n = parse_u64(argv[1], "N");
	seed = argc > 2 ? parse_u64(argv[2], "SEED") : 20261203;
	start = sl_clock_mono_ns();
	s = store_open(argv[0], SL_STORE_CREATE);
	check(sl_store_ns_create(s, NS, SL_NS_MUTABLE), "create namespace m");
	write_keys(s, n, seed, STREAM_BUILD);
	sl_store_free(s);
	printf("built %llu keys in %.2f s\n", (unsigned long long)n,
	       (double)(sl_clock_mono_ns() - start) / 1e9);
	return 0;
}

static int cmd_rewrite(int argc, char **argv)
{
	sl_store *s;
	if (argc < 2 || argc > 3)
		die("usage: reconcile_bench rewrite DIR M [SEED]");
	s = store_open(argv[0], 0);
	write_keys(s, parse_u64(argv[1], "M"), argc > 2 ? parse_u64(argv[2], "SEED") : 20261203,
	           STREAM_WRITE);
	sl_store_free(s);
	return 0;
}

/* ----------------------------------------------------------------- items */

typedef struct entry {
	uint8_t id[SL_ITEM_ID_LEN];
	char key[KEY_CAP];
	uint8_t key_len;
} entry;

typedef struct entry_list {
	entry *items;
	size_t n, cap;
} entry_list;

static int collect(void *ctx, const sl_key_entry *e)
{
	entry_list *list = ctx;
	entry *slot;
	if (e->key_len >= KEY_CAP)
		die("key longer than %d bytes: this helper handles its own stores only", KEY_CAP);
	if (list->n == list->cap) {
		list->cap = list->cap ? list->cap * 2 : 1 << 16;
		list->items = realloc(list->items, list->cap * sizeof(entry));
		if (!list->items)
			die("out of memory");
	}
	slot = &list->items[list->n++];
	sl_state_item_id(slot->id, e->key, e->key_len, &e->digest);
	memcpy(slot->key, e->key, e->key_len);
	slot->key[e->key_len] = '\0';
	slot->key_len = (uint8_t)e->key_len;
	return 0;
}

static int cmp_entry_id(const void *a, const void *b)
{
	return memcmp(((const entry *)a)->id, ((const entry *)b)->id, SL_ITEM_ID_LEN);
}

/* Bytewise, a prefix first: the order of `sluice diff`'s lists. */
static int cmp_key_ptr(const void *a, const void *b)
{
	const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (int)x->key_len - (int)y->key_len;
}

/* --------------------------------------------------------------- perturb */

enum { ONLY_A, ONLY_B, DIFFERENT, ROLES };

static void print_keys(const char *name, entry **keys, size_t n)
{
	qsort(keys, n, sizeof(*keys), cmp_key_ptr);
	printf(", \"%s\": [", name);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < keys[i]->key_len; j++)
			if (keys[i]->key[j] < 0x20 || keys[i]->key[j] > 0x7e ||
			    keys[i]->key[j] == '"' || keys[i]->key[j] == '\\')
				die("key %s needs JSON escaping", keys[i]->key);
		printf("%s\"%s\"", i ? ", " : "", keys[i]->key);
	}
	printf("]");
}

/* Apply dels (and puts with their values) to s, in commits of COMMIT_OPS. */
static void apply(sl_store *s, entry **dels, size_t n_dels, entry **puts,
                  const uint8_t (*values)[VALUE_LEN], size_t n_puts)
{
	sl_batch *batch;
	check(sl_batch_new(&batch, s, NS), "batch");
	for (size_t i = 0; i < n_dels + n_puts; i++) {
		if (i < n_dels)
			check(sl_batch_del(batch, dels[i]->key, dels[i]->key_len), "delete");
		else
			check(sl_batch_put(batch, puts[i - n_dels]->key, puts[i - n_dels]->key_len,
			                   values[i - n_dels], VALUE_LEN),
			      "put");
		if (sl_batch_count(batch) == COMMIT_OPS || i + 1 == n_dels + n_puts)
			check(sl_batch_commit(batch, NULL), "commit");
	}
	sl_batch_free(batch);
}

static int cmd_perturb(int argc, char **argv)
{
	entry_list all = {0};
	entry **picked[ROLES];
	size_t n_role[ROLES];
	uint8_t(*values)[VALUE_LEN];
	uint64_t d, seed, pick, first = 0, redraws = 0;
	uint32_t *order;
	sl_ns_info info_a, info_b;
	sl_store *a, *b;
	int clustered;

	if (argc != 5)
		die("usage: reconcile_bench perturb A B D scattered|clustered SEED");
	d = parse_u64(argv[2], "D");
	if (strcmp(argv[3], "scattered") != 0 && strcmp(argv[3], "clustered") != 0)
		die("layout must be scattered or clustered, not %s", argv[3]);
	clustered = argv[3][0] == 'c';
	seed = parse_u64(argv[4], "SEED");
	pick = stream_state(seed, STREAM_PICK, d);
	fprintf(stderr, "reconcile_bench: perturb d=%llu %s seed=%llu\n", (unsigned long long)d,
	        argv[3], (unsigned long long)seed);

	a = store_open(argv[0], 0);
	b = store_open(argv[1], 0);
	check(sl_store_ns_head(a, NS, &info_a), argv[0]);
	check(sl_store_ns_head(b, NS, &info_b), argv[1]);
	if (!sl_digest_eq(&info_a.target.root, &info_b.target.root))
		die("%s and %s are not copies of one store", argv[0], argv[1]);
	check(sl_store_list(a, NS, "", 0, collect, &all), "list");
	if (d > all.n)
		die("%llu differences asked for, but the namespace has %zu keys",
		    (unsigned long long)d, all.n);
	qsort(all.items, all.n, sizeof(entry), cmp_entry_id);

	/* order[0..d) are the picked positions in item order, in the order
	 * their roles are dealt. */
	order = malloc((all.n ? all.n : 1) * sizeof(*order));
	values = malloc((d ? d : 1) * VALUE_LEN);
	if (!order || !values)
		die("out of memory");
	for (size_t i = 0; i < all.n; i++)
		order[i] = (uint32_t)i;
	if (clustered) {
		first = rng_below(&pick, all.n - d + 1);
		memmove(order, order + first, d * sizeof(*order));
	}
	/* A partial Fisher-Yates shuffle: scattered draws d of all.n, clustered
	 * only shuffles the roles among its d. */
	for (uint64_t i = 0; i < d; i++) {
		uint64_t j = i + rng_below(&pick, (clustered ? d : all.n) - i);
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	n_role[ONLY_A] = n_role[ONLY_B] = d / 3;
	n_role[DIFFERENT] = d - 2 * (d / 3);
	for (size_t r = 0, at = 0; r < ROLES; at += n_role[r], r++) {
		picked[r] = malloc((n_role[r] ? n_role[r] : 1) * sizeof(entry *));
		if (!picked[r])
			die("out of memory");
		for (size_t i = 0; i < n_role[r]; i++)
			picked[r][i] = &all.items[order[at + i]];
	}

	/* New values. Clustered: an id strictly between the items just
	 * outside the cluster, which are not part of it. */
	for (size_t i = 0; i < n_role[DIFFERENT]; i++) {
		const entry *e = picked[DIFFERENT][i];
		const uint8_t *below = clustered && first > 0 ? all.items[first - 1].id : NULL;
		const uint8_t *above =
		        clustered && first + d < all.n ? all.items[first + d].id : NULL;
		uint64_t state = stream_state(seed, STREAM_VALUE, i);
		for (;;) {
			uint8_t id[SL_ITEM_ID_LEN];
			sl_digest digest;
			random_value(&state, values[i]);
			sl_sha256(&digest, values[i], VALUE_LEN);
			sl_state_item_id(id, e->key, e->key_len, &digest);
			if (memcmp(id, e->id, SL_ITEM_ID_LEN) != 0 &&
			    (!below || memcmp(id, below, SL_ITEM_ID_LEN) > 0) &&
			    (!above || memcmp(id, above, SL_ITEM_ID_LEN) < 0))
				break;
			redraws++;
		}
	}

	apply(a, picked[ONLY_B], n_role[ONLY_B], NULL, NULL, 0);
	apply(b, picked[ONLY_A], n_role[ONLY_A], picked[DIFFERENT],
	      (const uint8_t(*)[VALUE_LEN])values, n_role[DIFFERENT]);
	sl_store_free(a);
	sl_store_free(b);
	fprintf(stderr, "reconcile_bench: %zu keys: %zu only in A, %zu only in B, %zu different",
	        all.n, n_role[ONLY_A], n_role[ONLY_B], n_role[DIFFERENT]);
	if (clustered)
		fprintf(stderr, ", items %llu.. in item order (%llu value redraws)",
		        (unsigned long long)first, (unsigned long long)redraws);
	fprintf(stderr, "\n");

	printf("{\"seed\": %llu", (unsigned long long)seed);
	print_keys("only_local", picked[ONLY_A], n_role[ONLY_A]);
	print_keys("only_remote", picked[ONLY_B], n_role[ONLY_B]);
	print_keys("different", picked[DIFFERENT], n_role[DIFFERENT]);
	printf("}\n");

	for (size_t r = 0; r < ROLES; r++)
		free(picked[r]);
	free(values);
	free(order);
	free(all.items);
	return 0;
}

/* ----------------------------------------------------------------- sizes */

typedef struct sizes {
	uint64_t items, key_bytes;
} sizes;

static int count(void *ctx, const sl_key_entry *e)
{
	sizes *z = ctx;
	z->items++;
	z->key_bytes += e->key_len + sl_varint_len(e->key_len);
	return 0;
}

/* size - state_loc of `m`, or -1. */
static long long unflushed_tail(const char *dir)
{
	char path[4096];
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	long long tail = -1;

	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT size - state_loc FROM namespaces WHERE name = ?1", -1,
	                       &stmt, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(stmt, 1, NS, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		tail = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return tail;
}

static int cmd_sizes(int argc, char **argv)
{
	sizes z = {0, 0};
	sl_store *s;
	if (argc != 1)
		die("usage: reconcile_bench sizes DIR");
	s = store_open(argv[0], SL_STORE_READONLY);
	check(sl_store_list(s, NS, "", 0, count, &z), "list");
	sl_store_free(s);
	printf("items=%llu id_bytes=%llu key_bytes=%llu tail=%lld\n", (unsigned long long)z.items,
	       (unsigned long long)(z.items * SL_ITEM_ID_LEN), (unsigned long long)z.key_bytes,
	       unflushed_tail(argv[0]));
	return 0;
}

/* Random range sums on one snapshot of the items, as a responder asks for
 * them: the view is built first (the cold cost, timed apart), then each
 * sum of a random index range is timed. */
static int cmd_fingerprints(int argc, char **argv)
{
	uint64_t n, rounds, count, state = 1, t0, t1, t2;
	sl_item_set set;
	sl_item_sum sum;
	sl_items *it;
	sl_store *s;

	if (argc != 2)
		die("usage: reconcile_bench fingerprints DIR ROUNDS");
	rounds = parse_u64(argv[1], "ROUNDS");
	s = store_open(argv[0], SL_STORE_READONLY);
	t0 = sl_clock_mono_ns();
	check(sl_store_items_open(s, NS, &it), "open items");
	t1 = sl_clock_mono_ns();
	set = sl_items_set(it);
	check(set.ops->count(set.ctx, &count), "count");
	n = count ? count : 1;
	for (uint64_t i = 0; i < rounds; i++) {
		uint64_t a = rng_below(&state, n), b = rng_below(&state, n);
		check(set.ops->sum(set.ctx, a < b ? a : b, a < b ? b : a, &sum), "sum");
	}
	t2 = sl_clock_mono_ns();
	sl_items_close(it);
	sl_store_free(s);
	printf("items=%llu open_ms=%.1f fingerprints=%llu us_per_fingerprint=%.2f\n",
	       (unsigned long long)count, (double)(t1 - t0) / 1e6, (unsigned long long)rounds,
	       (double)(t2 - t1) / 1e3 / (double)(rounds ? rounds : 1));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: reconcile_bench build|perturb|rewrite|sizes|fingerprints ...");
	check(sl_base_init(), "init");
	if (strcmp(argv[1], "build") == 0)
		return cmd_build(argc - 2, argv + 2);
	if (strcmp(argv[1], "perturb") == 0)
		return cmd_perturb(argc - 2, argv + 2);
	if (strcmp(argv[1], "rewrite") == 0)
		return cmd_rewrite(argc - 2, argv + 2);
	if (strcmp(argv[1], "sizes") == 0)
		return cmd_sizes(argc - 2, argv + 2);
	if (strcmp(argv[1], "fingerprints") == 0)
		return cmd_fingerprints(argc - 2, argv + 2);
	die("unknown command %s (build, perturb, rewrite, sizes or fingerprints)", argv[1]);
}
