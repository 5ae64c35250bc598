/*
 * dag_fill: a store with a large dag namespace, made quickly through the
 * library, for the tests and benchmarks that need one (a 100,000-entry
 * bootstrap killed at random, `make bench-dag`).
 *
 *   dag_fill DIR NS N [SEED]
 *
 * Creates the store in DIR if it is missing (and its node key), the dag
 * namespace NS with a root entry signed by the node key, and N - 1 more
 * entries in one chain, each on top of the one before, signed by the node
 * key, each setting key `k/<i>` (i from 1) to a 32-byte value drawn from
 * SEED (default 1). The entries go in through sl_dag_insert in batches of
 * 10,000, so every one is verified as an entry received from a peer would
 * be; the store is opened with durable=0 (what is committed survives the
 * process, not a power loss). Prints
 * `ns=<id hex> entries=N` when done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/base.h"
#include "sluice/dag.h"
#include "sluice/store.h"
#include "sluice/sync.h"

#define BATCH     10000
#define VALUE_LEN 32
#define KEY_CAP   32

static void check(int rc, const char *what)
{
	if (rc != SL_OK) {
		fprintf(stderr, "dag_fill: %s: %s\n", what, sl_error_last()->message);
		exit(1);
	}
}

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (*text == '\0' || *end != '\0' || *text == '-') {
		fprintf(stderr, "dag_fill: %s: not a number: %s\n", what, text);
		exit(2);
	}
	return (uint64_t)v;
}

/* splitmix64: the values, the same for the same seed. */
static uint64_t mix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

typedef struct batch {
	sl_buf entries[BATCH];
	uint8_t values[BATCH][VALUE_LEN];
	sl_bytes entry_refs[BATCH];
	sl_bytes value_refs[BATCH];
	size_t n;
} batch;

static void flush(sl_store *s, const char *ns, batch *b)
{
	sl_dag_insert_report r;
	for (size_t i = 0; i < b->n; i++) {
		b->entry_refs[i] = (sl_bytes){b->entries[i].data, b->entries[i].len};
		b->value_refs[i] = (sl_bytes){b->values[i], VALUE_LEN};
	}
	check(sl_dag_insert(s, ns, b->entry_refs, b->n, b->value_refs, b->n, &r), "insert");
	if (r.stored != b->n) {
		fprintf(stderr, "dag_fill: %zu of %zu entries stored (%s)\n", r.stored, b->n,
		        r.reason);
		exit(1);
	}
	b->n = 0;
}

int main(int argc, char **argv)
{
	sl_store_options o;
	sl_store *s;
	sl_node_key key;
	sl_digest ns_id, prev;
	uint64_t n, seed_state;
	batch *b;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: dag_fill DIR NS N [SEED]\n");
		return 2;
	}
	n = parse_u64(argv[3], "N");
	seed_state = argc > 4 ? parse_u64(argv[4], "SEED") : 1;
	if (n < 1) {
		fprintf(stderr, "dag_fill: N counts the root entry: at least 1\n");
		return 2;
	}
	check(sl_base_init(), "init");
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.durable = 0;
	check(sl_store_open(&s, argv[1], &o), "open the store");
	check(sl_node_key_load(&key, argv[1], 1), "node key");
	check(sl_dag_create(s, argv[2], key.sk, &ns_id), "create the namespace");
	if (!(b = calloc(1, sizeof(*b)))) {
		fprintf(stderr, "dag_fill: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < BATCH; i++)
		b->entries[i] = (sl_buf)SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	prev = ns_id;
	for (uint64_t h = 1; h < n; h++) {
		char k[KEY_CAP];
		sl_dag_write w = {.kind = SL_DAG_SET, .value_len = VALUE_LEN};
		sl_dag_entry e = {.ns = ns_id, .height = h, .n_parents = 1, .n_writes = 1};
		uint8_t *v = b->values[b->n];

		for (size_t j = 0; j < VALUE_LEN; j += 8) {
			uint64_t x = mix64(&seed_state);
			memcpy(v + j, &x, 8);
		}
		w.key = k;
		w.key_len = (size_t)snprintf(k, sizeof(k), "k/%llu", (unsigned long long)h);
		sl_sha256(&w.digest, v, VALUE_LEN);
		e.parents[0] = prev;
		memcpy(e.author, key.pk, SL_ED25519_PK_LEN);
		e.time_ms = (uint64_t)time(NULL) * 1000;
		e.writes = &w;
		b->entries[b->n].len = 0;
		check(sl_dag_entry_sign(&e, key.sk, &b->entries[b->n]), "sign");
		prev = e.id;
		if (++b->n == BATCH)
			flush(s, argv[2], b);
	}
	if (b->n > 0)
		flush(s, argv[2], b);
	printf("ns=%s entries=%llu\n", sl_digest_to_hex(&ns_id).s, (unsigned long long)n);
	for (size_t i = 0; i < BATCH; i++)
		sl_buf_free(&b->entries[i]);
	free(b);
	sl_store_free(s);
	memset(&key, 0, sizeof(key));
	return 0;
}
