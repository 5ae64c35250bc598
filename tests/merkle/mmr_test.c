/*
 * Tests for the MMR (src/merkle): commonware's published roots, geometry,
 * the frontier against the in-memory MMR, range proofs with pinned nodes,
 * consistency proofs, tampering, and the proof encoding.
 *
 * One MMR of BIG_LEAVES variable-length elements is built once; an MMR of
 * L <= BIG_LEAVES leaves is a prefix of it (same nodes at the same
 * positions), so every size is proved from the one node array and checked
 * against the root recorded when that size was reached. Random cases use
 * the seeded PRNG from testutil.h (rerun with SLUICE_SEED=<seed>).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/mmr.h"
#include "testutil.h"

#define BIG_LEAVES        5000
#define ELEM_MAX          48
#define N_STABILITY_ROOTS 200

static struct {
	sl_mmr_mem *mem;
	sl_mmr_nodes nodes;
	sl_digest roots[BIG_LEAVES + 1]; /* roots[L]: root after L appends */
	uint8_t data[BIG_LEAVES][ELEM_MAX];
	sl_bytes elements[BIG_LEAVES];
} big;

/* ------------------------------------------------------------- helpers */

static void make_element(uint64_t i, uint8_t *out, size_t *len)
{
	sl_digest d;
	uint8_t be[8];

	sl_be64_put(be, i);
	sl_sha256(&d, be, sizeof(be));
	*len = 1 + (size_t)(i * 7 % ELEM_MAX);
	for (size_t k = 0; k < *len; k++)
		out[k] = d.bytes[k % SL_DIGEST_LEN] ^ (uint8_t)k;
}

static int setup_big(void **state)
{
	(void)state;
	if (sl_mmr_mem_new(&big.mem) != SL_OK)
		return -1;
	for (uint64_t i = 0; i < BIG_LEAVES; i++) {
		size_t len;
		make_element(i, big.data[i], &len);
		big.elements[i] = (sl_bytes){big.data[i], len};
		sl_mmr_mem_root(big.mem, &big.roots[i]);
		if (sl_mmr_mem_append(big.mem, big.data[i], len) != SL_OK)
			return -1;
	}
	sl_mmr_mem_root(big.mem, &big.roots[BIG_LEAVES]);
	big.nodes = sl_mmr_mem_nodes(big.mem);
	return 0;
}

static int teardown_big(void **state)
{
	(void)state;
	sl_mmr_mem_free(big.mem);
	big.mem = NULL;
	return 0;
}

static void node_at(uint64_t pos, sl_digest *out)
{
	assert_int_equal(big.nodes.get(big.nodes.ctx, pos, out), SL_OK);
}

static void assert_digest_eq(const sl_digest *a, const sl_digest *b)
{
	if (!sl_digest_eq(a, b)) {
		fprintf(stderr, "digest mismatch: %s != %s\n", sl_digest_to_hex(a).s,
		        sl_digest_to_hex(b).s);
		fail();
	}
}

static uint64_t popcount(uint64_t v)
{
	return (uint64_t)__builtin_popcountll(v);
}

static int failing_get(void *ctx, uint64_t pos, sl_digest *out)
{
	(void)ctx;
	(void)out;
	return sl_error_set(SL_EIO, "disk on fire at %" PRIu64, pos);
}

/* Deterministic stand-in digests for shapes too large to build. */
static int fake_get(void *ctx, uint64_t pos, sl_digest *out)
{
	uint8_t be[8];
	(void)ctx;
	sl_be64_put(be, pos);
	sl_sha256(out, be, sizeof(be));
	return SL_OK;
}

/* ----------------------------------------------------- commonware interop */

static void load_stability_roots(sl_digest roots[N_STABILITY_ROOTS])
{
	const char *dir = getenv("SLUICE_TEST_DATA");
	char path[4096], line[256], hex[65];
	unsigned n;
	int seen = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/merkle/commonware_roots.txt", dir ? dir : "tests");
	f = fopen(path, "r");
	if (!f)
		fprintf(stderr, "cannot open %s (set SLUICE_TEST_DATA to the tests dir)\n", path);
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		assert_int_equal(sscanf(line, "%u %64s", &n, hex), 2);
		assert_int_equal(n, seen);
		assert_true(n < N_STABILITY_ROOTS);
		assert_int_equal(sl_digest_from_hex(&roots[n], hex), SL_OK);
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, N_STABILITY_ROOTS);
}

static void test_commonware_roots(void **state)
{
	sl_digest expected[N_STABILITY_ROOTS], root, element, nodes[SL_MMR_MAX_PEAKS + 1];
	sl_mmr_frontier f;
	sl_mmr_mem *m = NULL;
	uint64_t first_pos;
	uint8_t be[8];
	(void)state;

	load_stability_roots(expected);
	assert_int_equal(sl_mmr_mem_new(&m), SL_OK);
	sl_mmr_frontier_init(&f);
	for (uint64_t n = 0; n < N_STABILITY_ROOTS; n++) {
		sl_mmr_mem_root(m, &root);
		assert_digest_eq(&root, &expected[n]);
		sl_mmr_frontier_root(&f, &root);
		assert_digest_eq(&root, &expected[n]);
		sl_be64_put(be, n);
		sl_sha256(&element, be, sizeof(be));
		assert_int_equal(sl_mmr_mem_append(m, element.bytes, SL_DIGEST_LEN), SL_OK);
		assert_true(sl_mmr_frontier_append(&f, element.bytes, SL_DIGEST_LEN, nodes,
		                                   &first_pos) > 0);
	}
	sl_mmr_mem_free(m);
}

static void test_empty_root(void **state)
{
	uint8_t zero[8] = {0};
	sl_digest expected, root;
	sl_mmr_frontier f;
	(void)state;

	sl_sha256(&expected, zero, sizeof(zero));
	sl_mmr_frontier_init(&f);
	sl_mmr_frontier_root(&f, &root);
	assert_digest_eq(&root, &expected);
	assert_digest_eq(&big.roots[0], &expected);
}

/* ---------------------------------------------------------------- geometry */

static void test_geometry_positions(void **state)
{
	static const uint64_t leaf_pos[] = {0, 1, 3, 4, 7, 8, 10, 11, 15, 16, 18, 19, 22};
	static const uint64_t sizes[] = {0, 1, 3, 4, 7, 8, 10, 11, 15, 16, 18, 19, 22};
	(void)state;

	for (uint64_t i = 0; i < sizeof(leaf_pos) / sizeof(leaf_pos[0]); i++) {
		assert_int_equal(sl_mmr_leaf_pos(i), leaf_pos[i]);
		assert_int_equal(sl_mmr_size_for_leaves(i), sizes[i]);
	}
	assert_int_equal(sl_mmr_size_for_leaves(SL_MMR_MAX_LEAVES), (UINT64_C(1) << 63) - 1);
	assert_int_equal(sl_mmr_leaf_pos(SL_MMR_MAX_LEAVES - 1), (UINT64_C(1) << 63) - 63 - 1);
}

static void test_geometry_sizes(void **state)
{
	uint64_t leaves = 12345, next_valid = 0, L = 0;
	(void)state;

	/* Every size up to that of 3000 leaves: valid exactly at size(L). */
	for (uint64_t size = 0; size <= sl_mmr_size_for_leaves(3000); size++) {
		if (size == next_valid) {
			assert_int_equal(sl_mmr_leaves_for_size(&leaves, size), SL_OK);
			assert_int_equal(leaves, L);
			L++;
			next_valid = sl_mmr_size_for_leaves(L);
		} else {
			leaves = 777;
			assert_int_equal(sl_mmr_leaves_for_size(&leaves, size), SL_EINVAL);
			assert_int_equal(leaves, 777); /* untouched on failure */
		}
	}
	assert_int_equal(sl_mmr_leaves_for_size(&leaves, (UINT64_C(1) << 63) - 1), SL_OK);
	assert_int_equal(leaves, SL_MMR_MAX_LEAVES);
	assert_int_equal(
	        sl_mmr_leaves_for_size(&leaves, sl_mmr_size_for_leaves(SL_MMR_MAX_LEAVES - 1)),
	        SL_OK);
	assert_int_equal(leaves, SL_MMR_MAX_LEAVES - 1);
	assert_int_equal(sl_mmr_leaves_for_size(&leaves, UINT64_C(1) << 63), SL_EINVAL);
	assert_int_equal(sl_mmr_leaves_for_size(&leaves, UINT64_MAX), SL_EINVAL);
	assert_int_equal(sl_mmr_leaves_for_size(&leaves, (UINT64_C(1) << 63) - 2), SL_EINVAL);
}

static void test_geometry_peaks(void **state)
{
	uint64_t pos[SL_MMR_MAX_PEAKS];
	uint32_t height[SL_MMR_MAX_PEAKS];
	size_t n;
	(void)state;

	assert_int_equal(sl_mmr_peaks(0, pos, height), 0);
	n = sl_mmr_peaks(11, pos, height); /* 8 + 2 + 1 leaves */
	assert_int_equal(n, 3);
	assert_int_equal(pos[0], 14);
	assert_int_equal(height[0], 3);
	assert_int_equal(pos[1], 17);
	assert_int_equal(height[1], 1);
	assert_int_equal(pos[2], 18);
	assert_int_equal(height[2], 0);

	for (uint64_t L = 1; L <= 2000; L++) {
		uint64_t covered = 0;
		n = sl_mmr_peaks(L, pos, height);
		assert_int_equal(n, popcount(L));
		assert_int_equal(pos[n - 1], sl_mmr_size_for_leaves(L) - 1);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				assert_true(height[i] < height[i - 1]);
			/* A peak ends where its leaves' MMR ends. */
			covered += UINT64_C(1) << height[i];
			assert_int_equal(pos[i], sl_mmr_size_for_leaves(covered) - 1);
		}
		assert_int_equal(covered, L);
	}
	n = sl_mmr_peaks(SL_MMR_MAX_LEAVES, pos, height);
	assert_int_equal(n, 1);
	assert_int_equal(pos[0], (UINT64_C(1) << 63) - 2);
	assert_int_equal(height[0], 62);
	assert_int_equal(sl_mmr_peaks(SL_MMR_MAX_LEAVES - 1, pos, height), 62);
	assert_int_equal(sl_mmr_peaks(SL_MMR_MAX_LEAVES + 1, pos, height), 0);
}

/* ---------------------------------------------------------------- frontier */

static void test_frontier_matches_mem(void **state)
{
	sl_digest new_nodes[SL_MMR_MAX_PEAKS + 1], root, stored;
	sl_mmr_frontier appended, loaded, set;
	uint64_t first_pos;
	(void)state;

	sl_mmr_frontier_init(&appended);
	for (uint64_t i = 0; i <= BIG_LEAVES; i++) {
		assert_int_equal(sl_mmr_frontier_load(&loaded, i, &big.nodes), SL_OK);
		sl_mmr_frontier_root(&loaded, &root);
		assert_digest_eq(&root, &big.roots[i]);
		sl_mmr_frontier_root(&appended, &root);
		assert_digest_eq(&root, &big.roots[i]);
		assert_int_equal(loaded.n_peaks, appended.n_peaks);
		assert_memory_equal(loaded.peaks, appended.peaks,
		                    loaded.n_peaks * sizeof(sl_digest));
		assert_int_equal(sl_mmr_frontier_set(&set, i, loaded.peaks, loaded.n_peaks), SL_OK);
		sl_mmr_frontier_root(&set, &root);
		assert_digest_eq(&root, &big.roots[i]);
		if (i == BIG_LEAVES)
			break;

		size_t n = sl_mmr_frontier_append(&appended, big.elements[i].data,
		                                  big.elements[i].len, new_nodes, &first_pos);
		assert_int_equal(first_pos, sl_mmr_leaf_pos(i));
		assert_int_equal(n, 1 + (size_t)__builtin_ctzll(~i));
		for (size_t k = 0; k < n; k++) {
			node_at(first_pos + k, &stored);
			assert_digest_eq(&new_nodes[k], &stored);
		}
	}
}

static void test_frontier_errors(void **state)
{
	sl_digest peaks[SL_MMR_MAX_PEAKS], new_nodes[SL_MMR_MAX_PEAKS + 1];
	sl_mmr_nodes failing = {failing_get, NULL};
	sl_mmr_frontier f, before;
	uint64_t first_pos = 0;
	(void)state;

	for (size_t i = 0; i < SL_MMR_MAX_PEAKS; i++)
		fake_get(NULL, i, &peaks[i]);
	sl_mmr_frontier_init(&f);
	assert_int_equal(sl_mmr_frontier_load(&f, 7, &big.nodes), SL_OK);
	before = f;
	assert_int_equal(sl_mmr_frontier_set(&f, 7, peaks, 2), SL_EINVAL);
	assert_int_equal(sl_mmr_frontier_set(&f, SL_MMR_MAX_LEAVES + 1, peaks, 2), SL_EINVAL);
	assert_int_equal(sl_mmr_frontier_load(&f, SL_MMR_MAX_LEAVES + 1, &big.nodes), SL_EINVAL);
	assert_int_equal(sl_mmr_frontier_load(&f, 7, &failing), SL_EIO);
	assert_non_null(strstr(sl_error_last()->message, "disk on fire"));
	assert_int_equal(sl_mmr_frontier_load(&f, BIG_LEAVES + 1, &big.nodes), SL_ENOTFOUND);
	assert_memory_equal(&f, &before, sizeof(f));

	/* The last append an MMR can take merges 62 times. */
	assert_int_equal(sl_mmr_frontier_set(&f, SL_MMR_MAX_LEAVES - 1, peaks, 62), SL_OK);
	assert_int_equal(sl_mmr_frontier_append(&f, "x", 1, new_nodes, &first_pos), 63);
	assert_int_equal(first_pos, sl_mmr_leaf_pos(SL_MMR_MAX_LEAVES - 1));
	assert_int_equal(f.leaves, SL_MMR_MAX_LEAVES);
	assert_int_equal(f.n_peaks, 1);
	assert_digest_eq(&f.peaks[0], &new_nodes[62]);
	before = f;
	assert_int_equal(sl_mmr_frontier_append(&f, "x", 1, new_nodes, &first_pos), 0);
	assert_int_equal(sl_error_last()->code, SL_ETOOLARGE);
	assert_memory_equal(&f, &before, sizeof(f));
}

static void test_mem(void **state)
{
	sl_mmr_mem *m = NULL;
	sl_mmr_nodes nodes;
	sl_digest d, root;
	(void)state;

	assert_int_equal(sl_mmr_mem_new(&m), SL_OK);
	assert_int_equal(sl_mmr_mem_leaves(m), 0);
	/* A failed growth leaves the MMR as it was. */
	sl_alloc_fail_after(0, 0);
	assert_int_equal(sl_mmr_mem_append(m, "a", 1), SL_ENOMEM);
	sl_alloc_fail_after(-1, 0);
	assert_int_equal(sl_mmr_mem_leaves(m), 0);
	sl_mmr_mem_root(m, &root);
	assert_digest_eq(&root, &big.roots[0]);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(sl_mmr_mem_append(m, big.elements[i].data, big.elements[i].len),
		                 SL_OK);
	assert_int_equal(sl_mmr_mem_leaves(m), 1000);
	sl_mmr_mem_root(m, &root);
	assert_digest_eq(&root, &big.roots[1000]);
	nodes = sl_mmr_mem_nodes(m);
	assert_int_equal(nodes.get(nodes.ctx, sl_mmr_size_for_leaves(1000) - 1, &d), SL_OK);
	assert_int_equal(nodes.get(nodes.ctx, sl_mmr_size_for_leaves(1000), &d), SL_ENOTFOUND);
	sl_mmr_mem_free(m);
	sl_mmr_mem_free(NULL);
}

/* ----------------------------------------------------------- range proofs */

static void check_range_case(uint64_t L, uint64_t start, uint64_t end)
{
	sl_mmr_proof p = {0};
	uint64_t *positions = NULL, pinned_pos[SL_MMR_MAX_PEAKS];
	sl_digest pinned[SL_MMR_MAX_PEAKS], d;
	sl_mmr_frontier f;
	size_t n_positions = 0, n_pinned = 0;
	uint64_t n = end - start;
	int rc;

	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, L, start, end), SL_OK);
	assert_int_equal(p.leaves, L);
	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n_positions, L, start, end),
	                 SL_OK);
	assert_int_equal(n_positions, p.n_digests);
	for (size_t i = 0; i < n_positions; i++) {
		node_at(positions[i], &d);
		assert_digest_eq(&p.digests[i], &d);
	}
	sl_free(positions);

	rc = sl_mmr_range_verify(&p, start, &big.elements[start], n, &big.roots[L]);
	if (rc != SL_OK)
		fprintf(stderr, "L=%" PRIu64 " [%" PRIu64 ", %" PRIu64 "): %s\n", L, start, end,
		        sl_error_last()->message);
	assert_int_equal(rc, SL_OK);

	assert_int_equal(sl_mmr_range_verify_pinned(&p, start, &big.elements[start], n,
	                                            &big.roots[L], pinned, &n_pinned),
	                 SL_OK);
	assert_int_equal(sl_mmr_pinned_positions(start, pinned_pos), n_pinned);
	assert_int_equal(n_pinned, popcount(start));
	for (size_t i = 0; i < n_pinned; i++) {
		node_at(pinned_pos[i], &d);
		assert_digest_eq(&pinned[i], &d);
	}
	/* The pinned nodes are enough to continue the MMR from start. */
	assert_int_equal(sl_mmr_frontier_set(&f, start, pinned, n_pinned), SL_OK);
	for (uint64_t i = start; i < end; i++) {
		sl_digest new_nodes[SL_MMR_MAX_PEAKS + 1];
		uint64_t first_pos;
		assert_true(sl_mmr_frontier_append(&f, big.elements[i].data, big.elements[i].len,
		                                   new_nodes, &first_pos) > 0);
	}
	sl_mmr_frontier_root(&f, &d);
	assert_digest_eq(&d, &big.roots[end]);

	assert_int_equal(sl_mmr_range_verify(&p, start, &big.elements[start], n, &big.roots[L - 1]),
	                 SL_EVERIFY);
	sl_mmr_proof_free(&p);
	assert_null(p.digests);
}

static void test_range_exhaustive_small(void **state)
{
	(void)state;
	for (uint64_t L = 1; L <= 32; L++)
		for (uint64_t start = 0; start < L; start++)
			for (uint64_t end = start + 1; end <= L; end++)
				check_range_case(L, start, end);
}

static void test_range_random(void **state)
{
	tu_rng rng = tu_rng_seeded("test_range_random");
	(void)state;

	for (int i = 0; i < 300; i++) {
		uint64_t L = tu_rng_below(&rng, 4) == 0 ? 1 + tu_rng_below(&rng, 70)
		                                        : 1 + tu_rng_below(&rng, BIG_LEAVES);
		uint64_t start = tu_rng_below(&rng, L);
		uint64_t max_len = L - start;
		uint64_t len = tu_rng_below(&rng, 10) == 0
		                       ? max_len
		                       : 1 + tu_rng_below(&rng, max_len < 256 ? max_len : 256);
		check_range_case(L, start, start + len);
	}
	check_range_case(BIG_LEAVES, 0, BIG_LEAVES);
	check_range_case(4096, 0, 4096);
	check_range_case(4097, 4096, 4097);
}

/* Shapes far too large to build: the proof stays small and the walk takes
 * every digest (the root cannot match stand-in digests). */
static void test_range_huge_shapes(void **state)
{
	sl_mmr_nodes fake = {fake_get, NULL};
	tu_rng rng = tu_rng_seeded("test_range_huge_shapes");
	(void)state;

	for (int i = 0; i < 300; i++) {
		uint64_t L, start, end, *positions = NULL;
		sl_mmr_proof p = {0};
		size_t n_positions = 0;
		sl_digest root;
		sl_bytes elements[4];

		switch (i % 3) {
		case 0:
			L = SL_MMR_MAX_LEAVES - tu_rng_below(&rng, 3);
			break;
		case 1:
			L = 1 + tu_rng_below(&rng, SL_MMR_MAX_LEAVES);
			break;
		default:
			L = 1 + (tu_rng_next(&rng) >> (2 + tu_rng_below(&rng, 60)));
			break;
		}
		start = tu_rng_below(&rng, L);
		end = start + 1 + tu_rng_below(&rng, L - start);
		if (i % 2)
			end = start + 1 + tu_rng_below(&rng, L - start < 4 ? L - start : 4);
		assert_int_equal(
		        sl_mmr_range_proof_positions(&positions, &n_positions, L, start, end),
		        SL_OK);
		assert_true(n_positions <= 3 * 62);
		sl_free(positions);
		if (end - start > 4)
			continue;
		assert_int_equal(sl_mmr_range_proof(&p, &fake, L, start, end), SL_OK);
		for (size_t k = 0; k < end - start; k++)
			elements[k] = big.elements[k];
		fake_get(NULL, 0, &root);
		assert_int_equal(sl_mmr_range_verify(&p, start, elements, end - start, &root),
		                 SL_EVERIFY);
		assert_non_null(strstr(sl_error_last()->message, "does not match the root"));
		sl_mmr_proof_free(&p);
	}
}

static void test_range_argument_errors(void **state)
{
	sl_mmr_nodes failing = {failing_get, NULL};
	sl_mmr_proof p = {0}, untouched = {0};
	uint64_t *positions = NULL;
	size_t n = 0;
	(void)state;

	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n, 10, 3, 3), SL_EINVAL);
	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n, 10, 4, 3), SL_EINVAL);
	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n, 10, 3, 11), SL_EINVAL);
	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n, 0, 0, 1), SL_EINVAL);
	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n, SL_MMR_MAX_LEAVES + 1, 0, 1),
	                 SL_EINVAL);
	assert_null(positions);
	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, 10, 5, 5), SL_EINVAL);
	assert_int_equal(sl_mmr_range_proof(&p, &failing, 100, 5, 9), SL_EIO);
	assert_non_null(strstr(sl_error_last()->message, "disk on fire"));
	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, BIG_LEAVES + 1, 5, 9), SL_ENOTFOUND);
	sl_alloc_fail_after(0, 0);
	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, 100, 5, 9), SL_ENOMEM);
	sl_alloc_fail_after(0, 0);
	assert_int_equal(sl_mmr_range_proof_positions(&positions, &n, 100, 5, 9), SL_ENOMEM);
	sl_alloc_fail_after(-1, 0);
	assert_memory_equal(&p, &untouched, sizeof(p));
	assert_null(positions);

	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, 100, 5, 9), SL_OK);
	assert_int_equal(sl_mmr_range_verify(&p, 5, big.elements + 5, 4, NULL), SL_EINVAL);
	assert_int_equal(sl_mmr_range_verify(&p, 5, NULL, 4, &big.roots[100]), SL_EINVAL);
	assert_int_equal(sl_mmr_range_verify(NULL, 5, big.elements + 5, 4, &big.roots[100]),
	                 SL_EINVAL);
	assert_int_equal(sl_mmr_range_verify(&p, UINT64_MAX, big.elements + 5, 4, &big.roots[100]),
	                 SL_EINVAL);
	sl_mmr_proof_free(&p);
	sl_mmr_proof_free(NULL);
}

/* --------------------------------------------------------- range tampering */

/* The result a tampered verify must give: out-of-bounds ranges are invalid
 * arguments, everything else a failed verification. */
static int expected_failure(uint64_t leaves, uint64_t start, size_t n)
{
	if (n == 0 || start >= leaves || n > leaves - start)
		return SL_EINVAL;
	return SL_EVERIFY;
}

/* A verification under test: SL_OK or an error for proof q. */
typedef int (*verify_fn)(const sl_mmr_proof *q, const void *ctx);

/* Every byte of every digest flipped in turn must fail. */
static void flip_digest_bytes(sl_mmr_proof *p, verify_fn verify, const void *ctx)
{
	for (size_t i = 0; i < p->n_digests; i++) {
		for (size_t b = 0; b < SL_DIGEST_LEN; b++) {
			p->digests[i].bytes[b] ^= 0x01;
			assert_int_equal(verify(p, ctx), SL_EVERIFY);
			p->digests[i].bytes[b] ^= 0x01;
		}
	}
}

/* One digest missing, one extra anywhere, two adjacent swapped, too many
 * digests or too many leaves claimed: all must fail. */
static void tamper_digest_list(const sl_mmr_proof *p, verify_fn verify, const void *ctx)
{
	sl_mmr_proof q = {p->leaves, 0, calloc(p->n_digests + 1, sizeof(sl_digest))};
	sl_digest extra;

	assert_non_null(q.digests);
	fake_get(NULL, 12345, &extra);
	for (size_t drop = 0; drop < p->n_digests; drop++) {
		q.n_digests = 0;
		for (size_t i = 0; i < p->n_digests; i++)
			if (i != drop)
				q.digests[q.n_digests++] = p->digests[i];
		assert_int_equal(verify(&q, ctx), SL_EVERIFY);
	}
	for (size_t at = 0; at <= p->n_digests; at++) {
		q.n_digests = 0;
		for (size_t i = 0; i <= p->n_digests; i++) {
			if (i == at) /* a duplicate of the previous digest, or a stranger */
				q.digests[q.n_digests++] = at > 0 ? p->digests[at - 1] : extra;
			if (i < p->n_digests)
				q.digests[q.n_digests++] = p->digests[i];
		}
		assert_int_equal(verify(&q, ctx), SL_EVERIFY);
	}
	for (size_t swap = 0; swap + 1 < p->n_digests; swap++) {
		for (size_t i = 0; i < p->n_digests; i++)
			q.digests[i] = p->digests[i];
		q.n_digests = p->n_digests;
		q.digests[swap] = p->digests[swap + 1];
		q.digests[swap + 1] = p->digests[swap];
		assert_int_equal(verify(&q, ctx), SL_EVERIFY);
	}
	for (size_t i = 0; i < p->n_digests; i++)
		q.digests[i] = p->digests[i];
	q.n_digests = SL_MMR_PROOF_MAX_DIGESTS + 1; /* over the cap: rejected unread */
	assert_int_equal(verify(&q, ctx), SL_EVERIFY);
	q.n_digests = p->n_digests;
	q.leaves = SL_MMR_MAX_LEAVES + 1;
	assert_int_equal(verify(&q, ctx), SL_EVERIFY);
	q.leaves = p->leaves + 1;
	assert_int_equal(verify(&q, ctx), SL_EVERIFY);
	q.leaves = p->leaves;
	assert_int_equal(verify(&q, ctx), SL_OK);
	free(q.digests);
}

typedef struct range_ctx {
	uint64_t start;
	const sl_bytes *elements;
	size_t n;
	const sl_digest *root;
} range_ctx;

static int verify_range(const sl_mmr_proof *q, const void *ctx)
{
	const range_ctx *c = ctx;
	return sl_mmr_range_verify(q, c->start, c->elements, c->n, c->root);
}

/* Every byte of every element and of the root flipped must fail. */
static void flip_element_bytes(sl_mmr_proof *p, uint64_t start, sl_bytes *elements, size_t n,
                               const sl_digest *root)
{
	uint8_t buf[ELEM_MAX];
	sl_digest bad_root = *root;

	for (size_t i = 0; i < n; i++) {
		sl_bytes saved = elements[i];
		memcpy(buf, saved.data, saved.len);
		elements[i].data = buf;
		for (size_t b = 0; b < saved.len; b++) {
			buf[b] ^= 0x80;
			assert_int_equal(sl_mmr_range_verify(p, start, elements, n, root),
			                 SL_EVERIFY);
			buf[b] ^= 0x80;
		}
		elements[i] = saved;
	}
	for (size_t b = 0; b < SL_DIGEST_LEN; b++) {
		bad_root.bytes[b] ^= 0x01;
		assert_int_equal(sl_mmr_range_verify(p, start, elements, n, &bad_root), SL_EVERIFY);
		bad_root.bytes[b] ^= 0x01;
	}
}

static void tamper_shape(sl_mmr_proof *p, uint64_t start, sl_bytes *elements, size_t n,
                         const sl_digest *root)
{
	uint64_t L = p->leaves;
	sl_bytes dummy = {(const uint8_t *)"x", 1};

	for (size_t i = 0; i + 1 < n; i++) { /* two elements swapped */
		sl_bytes saved = elements[i];
		if (n > 16 && i > 1 && i != n / 2 && i + 2 != n)
			continue; /* a few places suffice in long ranges */
		elements[i] = elements[i + 1];
		elements[i + 1] = saved;
		assert_int_equal(sl_mmr_range_verify(p, start, elements, n, root), SL_EVERIFY);
		elements[i + 1] = elements[i];
		elements[i] = saved;
	}
	/* one element too many (the real next one when there is one) */
	elements[n] = start + n < BIG_LEAVES ? big.elements[start + n] : dummy;
	assert_int_equal(sl_mmr_range_verify(p, start, elements, n + 1, root),
	                 expected_failure(L, start, n + 1));
	/* one too few, at either end */
	assert_int_equal(sl_mmr_range_verify(p, start, elements, n - 1, root),
	                 expected_failure(L, start, n - 1));
	assert_int_equal(sl_mmr_range_verify(p, start + 1, elements + 1, n - 1, root),
	                 expected_failure(L, start + 1, n - 1));
	/* wrong start */
	assert_int_equal(sl_mmr_range_verify(p, start + 1, elements, n, root),
	                 expected_failure(L, start + 1, n));
	if (start > 0)
		assert_int_equal(sl_mmr_range_verify(p, start - 1, elements, n, root), SL_EVERIFY);
	/* wrong leaves */
	p->leaves = L + 1;
	assert_int_equal(sl_mmr_range_verify(p, start, elements, n, root), SL_EVERIFY);
	p->leaves = L - 1;
	assert_int_equal(sl_mmr_range_verify(p, start, elements, n, root),
	                 expected_failure(L - 1, start, n));
	p->leaves = L;
	/* wrong roots */
	assert_int_equal(sl_mmr_range_verify(p, start, elements, n, &big.roots[L - 1]), SL_EVERIFY);
	if (L < BIG_LEAVES)
		assert_int_equal(sl_mmr_range_verify(p, start, elements, n, &big.roots[L + 1]),
		                 SL_EVERIFY);
	assert_int_equal(sl_mmr_range_verify(p, start, elements, n, root), SL_OK);
}

static void tamper_range_case(uint64_t L, uint64_t start, uint64_t end, int flip_bytes)
{
	size_t n = end - start;
	sl_bytes *elements = calloc(n + 1, sizeof(*elements));
	sl_mmr_proof p = {0};

	assert_non_null(elements);
	memcpy(elements, &big.elements[start], n * sizeof(*elements));
	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, L, start, end), SL_OK);
	range_ctx ctx = {start, elements, n, &big.roots[L]};
	assert_int_equal(sl_mmr_range_verify(&p, start, elements, n, &big.roots[L]), SL_OK);
	if (flip_bytes) {
		flip_digest_bytes(&p, verify_range, &ctx);
		flip_element_bytes(&p, start, elements, n, &big.roots[L]);
	}
	tamper_digest_list(&p, verify_range, &ctx);
	tamper_shape(&p, start, elements, n, &big.roots[L]);
	sl_mmr_proof_free(&p);
	free(elements);
}

static void test_range_tamper(void **state)
{
	static const uint64_t flipped[][3] = {
	        {1, 0, 1},     {2, 1, 2},        {7, 2, 5},          {11, 0, 11},
	        {100, 37, 40}, {1000, 500, 503}, {4097, 4095, 4097}, {BIG_LEAVES, 0, 1},
	};
	static const uint64_t structural[][3] = {
	        {2, 0, 1},
	        {3, 0, 3},
	        {8, 3, 4},
	        {255, 0, 255},
	        {256, 100, 200},
	        {4096, 0, 4096},
	        {BIG_LEAVES, 1234, 1300},
	        {BIG_LEAVES, BIG_LEAVES - 1, BIG_LEAVES},
	        {BIG_LEAVES - 1, 17, 4000},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(flipped) / sizeof(flipped[0]); i++)
		tamper_range_case(flipped[i][0], flipped[i][1], flipped[i][2], 1);
	for (size_t i = 0; i < sizeof(structural) / sizeof(structural[0]); i++)
		tamper_range_case(structural[i][0], structural[i][1], structural[i][2], 0);
}

/* ------------------------------------------------------ consistency proofs */

static void check_consistency_case(uint64_t old_leaves, uint64_t new_leaves)
{
	uint64_t pos[SL_MMR_MAX_PEAKS];
	uint32_t height[SL_MMR_MAX_PEAKS];
	sl_mmr_proof p = {0};
	sl_digest d;
	size_t n_old;
	int rc;

	assert_int_equal(sl_mmr_consistency_proof(&p, &big.nodes, old_leaves, new_leaves), SL_OK);
	assert_int_equal(p.leaves, new_leaves);
	n_old = sl_mmr_peaks(old_leaves, pos, height);
	assert_true(p.n_digests >= n_old);
	for (size_t i = 0; i < n_old; i++) {
		node_at(pos[i], &d);
		assert_digest_eq(&p.digests[i], &d);
	}
	rc = sl_mmr_consistency_verify(&p, old_leaves, &big.roots[old_leaves],
	                               &big.roots[new_leaves]);
	if (rc != SL_OK)
		fprintf(stderr, "%" PRIu64 " -> %" PRIu64 ": %s\n", old_leaves, new_leaves,
		        sl_error_last()->message);
	assert_int_equal(rc, SL_OK);
	if (new_leaves > 0) {
		assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves, &big.roots[old_leaves],
		                                           &big.roots[new_leaves - 1]),
		                 SL_EVERIFY);
	}
	if (old_leaves > 0) {
		assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves,
		                                           &big.roots[old_leaves - 1],
		                                           &big.roots[new_leaves]),
		                 SL_EVERIFY);
	}
	sl_mmr_proof_free(&p);
}

static void test_consistency_exhaustive_small(void **state)
{
	(void)state;
	for (uint64_t new_leaves = 0; new_leaves <= 40; new_leaves++)
		for (uint64_t old_leaves = 0; old_leaves <= new_leaves; old_leaves++)
			check_consistency_case(old_leaves, new_leaves);
}

static void test_consistency_random(void **state)
{
	tu_rng rng = tu_rng_seeded("test_consistency_random");
	(void)state;

	for (int i = 0; i < 300; i++) {
		uint64_t new_leaves = tu_rng_below(&rng, 3001);
		uint64_t old_leaves = tu_rng_below(&rng, new_leaves + 1);
		check_consistency_case(old_leaves, new_leaves);
	}
	check_consistency_case(0, BIG_LEAVES);
	check_consistency_case(BIG_LEAVES, BIG_LEAVES);
	check_consistency_case(4095, 4096);
	check_consistency_case(4096, 4097);
}

static void test_consistency_huge_shapes(void **state)
{
	sl_mmr_nodes fake = {fake_get, NULL};
	tu_rng rng = tu_rng_seeded("test_consistency_huge_shapes");
	(void)state;

	for (int i = 0; i < 300; i++) {
		uint64_t new_leaves = i % 2 ? SL_MMR_MAX_LEAVES - tu_rng_below(&rng, 3)
		                            : 1 + tu_rng_below(&rng, SL_MMR_MAX_LEAVES);
		uint64_t old_leaves = tu_rng_below(&rng, new_leaves + 1);
		sl_mmr_proof p = {0};
		sl_digest old_root, new_root;
		size_t n_old = (size_t)popcount(old_leaves);

		assert_int_equal(sl_mmr_consistency_proof(&p, &fake, old_leaves, new_leaves),
		                 SL_OK);
		assert_true(p.n_digests <= 3 * 62);
		/* The old peaks alone give the old root; the rest cannot match. */
		sl_mmr_root_digest(&old_root, sl_mmr_size_for_leaves(old_leaves), p.digests, n_old);
		fake_get(NULL, 1, &new_root);
		assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves, &old_root, &new_root),
		                 SL_EVERIFY);
		assert_non_null(strstr(sl_error_last()->message, "(new peaks) does not match"));
		sl_mmr_proof_free(&p);
	}
}

typedef struct consistency_ctx {
	uint64_t old_leaves;
	const sl_digest *old_root, *new_root;
} consistency_ctx;

static int verify_consistency(const sl_mmr_proof *q, const void *ctx)
{
	const consistency_ctx *c = ctx;
	return sl_mmr_consistency_verify(q, c->old_leaves, c->old_root, c->new_root);
}

static void tamper_consistency_case(uint64_t old_leaves, uint64_t new_leaves)
{
	const sl_digest *old_root = &big.roots[old_leaves], *new_root = &big.roots[new_leaves];
	consistency_ctx ctx = {old_leaves, old_root, new_root};
	sl_mmr_proof p = {0};

	assert_int_equal(sl_mmr_consistency_proof(&p, &big.nodes, old_leaves, new_leaves), SL_OK);
	assert_int_equal(verify_consistency(&p, &ctx), SL_OK);
	flip_digest_bytes(&p, verify_consistency, &ctx);
	tamper_digest_list(&p, verify_consistency, &ctx);
	/* wrong old size */
	assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves + 1, old_root, new_root),
	                 old_leaves + 1 > new_leaves ? SL_EINVAL : SL_EVERIFY);
	if (old_leaves > 0)
		assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves - 1, old_root, new_root),
		                 SL_EVERIFY);
	sl_mmr_proof_free(&p);
}

static void test_consistency_tamper(void **state)
{
	static const uint64_t shapes[][2] = {
	        {0, 0},       {0, 5},       {3, 3},       {5, 11},         {100, 1000},
	        {1023, 1024}, {1024, 1025}, {2047, 3000}, {1, BIG_LEAVES},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		tamper_consistency_case(shapes[i][0], shapes[i][1]);
	assert_int_equal(sl_mmr_consistency_verify(NULL, 0, &big.roots[0], &big.roots[0]),
	                 SL_EINVAL);
}

/* A server that rewrote one old element cannot prove its new MMR extends
 * the old root a client holds. */
static void check_rewritten_history(uint64_t old_leaves, uint64_t new_leaves, uint64_t changed)
{
	sl_digest fake_old_root, fake_new_root;
	sl_mmr_mem *m = NULL;
	sl_mmr_nodes nodes;
	sl_mmr_proof p = {0};

	assert_int_equal(sl_mmr_mem_new(&m), SL_OK);
	for (uint64_t i = 0; i < new_leaves; i++) {
		if (i == old_leaves)
			sl_mmr_mem_root(m, &fake_old_root);
		if (i == changed)
			assert_int_equal(sl_mmr_mem_append(m, "rewritten", 9), SL_OK);
		else
			assert_int_equal(
			        sl_mmr_mem_append(m, big.elements[i].data, big.elements[i].len),
			        SL_OK);
	}
	sl_mmr_mem_root(m, &fake_new_root);
	if (old_leaves == new_leaves)
		fake_old_root = fake_new_root;
	nodes = sl_mmr_mem_nodes(m);
	assert_int_equal(sl_mmr_consistency_proof(&p, &nodes, old_leaves, new_leaves), SL_OK);
	assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves, &fake_old_root, &fake_new_root),
	                 SL_OK);
	assert_int_equal(
	        sl_mmr_consistency_verify(&p, old_leaves, &big.roots[old_leaves], &fake_new_root),
	        SL_EVERIFY);
	assert_int_equal(sl_mmr_consistency_verify(&p, old_leaves, &big.roots[old_leaves],
	                                           &big.roots[new_leaves]),
	                 SL_EVERIFY);
	sl_mmr_proof_free(&p);
	sl_mmr_mem_free(m);
}

static void test_consistency_rewritten_history(void **state)
{
	(void)state;
	check_rewritten_history(1, 2, 0);
	check_rewritten_history(10, 17, 9);
	check_rewritten_history(100, 300, 0);
	check_rewritten_history(100, 300, 64);
	check_rewritten_history(1024, 1500, 1023);
	check_rewritten_history(777, 777, 500);
}

static void test_consistency_argument_errors(void **state)
{
	sl_mmr_nodes failing = {failing_get, NULL};
	sl_mmr_proof p = {0}, untouched = {0};
	(void)state;

	assert_int_equal(sl_mmr_consistency_proof(&p, &big.nodes, 6, 5), SL_EINVAL);
	assert_int_equal(sl_mmr_consistency_proof(&p, &big.nodes, 0, SL_MMR_MAX_LEAVES + 1),
	                 SL_EINVAL);
	assert_int_equal(sl_mmr_consistency_proof(&p, &failing, 3, 5), SL_EIO);
	assert_memory_equal(&p, &untouched, sizeof(p));
	/* 0 -> 0 carries nothing and verifies against the empty root. */
	assert_int_equal(sl_mmr_consistency_proof(&p, &failing, 0, 0), SL_OK);
	assert_int_equal(p.n_digests, 0);
	assert_int_equal(sl_mmr_consistency_verify(&p, 0, &big.roots[0], &big.roots[0]), SL_OK);
	assert_int_equal(sl_mmr_consistency_verify(&p, 1, &big.roots[0], &big.roots[0]), SL_EINVAL);
	sl_mmr_proof_free(&p);
}

/* ---------------------------------------------------------------- encoding */

static void round_trip(const sl_mmr_proof *p)
{
	sl_buf buf = SL_BUF_INIT(1 << 20);
	sl_mmr_proof q = {0};

	assert_int_equal(sl_mmr_proof_encode(p, &buf), SL_OK);
	assert_int_equal(buf.len, 8 + sl_varint_len(p->n_digests) + 32 * p->n_digests);
	assert_int_equal(sl_mmr_proof_decode(&q, buf.data, buf.len), SL_OK);
	assert_int_equal(q.leaves, p->leaves);
	assert_int_equal(q.n_digests, p->n_digests);
	if (p->n_digests > 0)
		assert_memory_equal(q.digests, p->digests, p->n_digests * sizeof(sl_digest));
	sl_mmr_proof_free(&q);
	sl_buf_free(&buf);
}

static void test_encoding_round_trip(void **state)
{
	sl_mmr_proof p = {0}, empty = {0}, full = {0};
	(void)state;

	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, 1000, 5, 9), SL_OK);
	round_trip(&p);
	sl_mmr_proof_free(&p);
	assert_int_equal(sl_mmr_consistency_proof(&p, &big.nodes, 3, 2999), SL_OK);
	round_trip(&p);
	sl_mmr_proof_free(&p);
	empty.leaves = 1;
	round_trip(&empty);
	full.leaves = SL_MMR_MAX_LEAVES;
	full.n_digests = SL_MMR_PROOF_MAX_DIGESTS;
	full.digests = calloc(full.n_digests, sizeof(sl_digest));
	assert_non_null(full.digests);
	for (size_t i = 0; i < full.n_digests; i++)
		fake_get(NULL, i, &full.digests[i]);
	round_trip(&full);
	full.n_digests = SL_MMR_PROOF_MAX_DIGESTS + 1;
	{
		sl_buf buf = SL_BUF_INIT(1 << 20);
		assert_int_equal(sl_mmr_proof_encode(&full, &buf), SL_ETOOLARGE);
		assert_int_equal(buf.len, 0);
		sl_buf_free(&buf);
	}
	free(full.digests);
}

static void test_encoding_rejects(void **state)
{
	sl_buf buf = SL_BUF_INIT(1 << 20), small = SL_BUF_INIT(40);
	sl_mmr_proof p = {0}, q = {0}, untouched = {0};
	uint8_t header[8 + SL_VARINT_MAX + 1];
	size_t header_len;
	(void)state;

	assert_int_equal(sl_mmr_range_proof(&p, &big.nodes, 1000, 5, 9), SL_OK);
	assert_int_equal(sl_mmr_proof_encode(&p, &buf), SL_OK);
	/* every truncation */
	for (size_t len = 0; len < buf.len; len++) {
		assert_int_equal(sl_mmr_proof_decode(&q, buf.data, len), SL_ECORRUPT);
		assert_memory_equal(&q, &untouched, sizeof(q));
	}
	/* a trailing byte */
	assert_int_equal(sl_buf_append_byte(&buf, 0), SL_OK);
	assert_int_equal(sl_mmr_proof_decode(&q, buf.data, buf.len), SL_ECORRUPT);
	/* over the digest cap, with or without the body */
	sl_be64_put(header, 10);
	header_len = 8 + sl_varint_put(header + 8, SL_MMR_PROOF_MAX_DIGESTS + 1);
	assert_int_equal(sl_mmr_proof_decode(&q, header, header_len), SL_ETOOLARGE);
	header_len = 8 + sl_varint_put(header + 8, UINT64_MAX);
	assert_int_equal(sl_mmr_proof_decode(&q, header, header_len), SL_ETOOLARGE);
	/* over the leaf cap */
	sl_be64_put(header, SL_MMR_MAX_LEAVES + 1);
	header[8] = 0;
	assert_int_equal(sl_mmr_proof_decode(&q, header, 9), SL_ECORRUPT);
	/* a non-canonical digest count */
	sl_be64_put(header, 10);
	header[8] = 0x80;
	header[9] = 0x00;
	assert_int_equal(sl_mmr_proof_decode(&q, header, 10), SL_ECORRUPT);
	assert_memory_equal(&q, &untouched, sizeof(q));
	/* allocation failure */
	sl_buf_reset(&buf);
	assert_int_equal(sl_mmr_proof_encode(&p, &buf), SL_OK);
	sl_alloc_fail_after(0, 0);
	assert_int_equal(sl_mmr_proof_decode(&q, buf.data, buf.len), SL_ENOMEM);
	sl_alloc_fail_after(-1, 0);
	assert_memory_equal(&q, &untouched, sizeof(q));
	/* an encoding past the buffer's cap leaves it unchanged */
	assert_int_equal(sl_buf_append(&small, "abc", 3), SL_OK);
	assert_int_equal(sl_mmr_proof_encode(&p, &small), SL_ETOOLARGE);
	assert_int_equal(small.len, 3);

	sl_mmr_proof_free(&p);
	sl_buf_free(&buf);
	sl_buf_free(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_commonware_roots),
	        cmocka_unit_test(test_empty_root),
	        cmocka_unit_test(test_geometry_positions),
	        cmocka_unit_test(test_geometry_sizes),
	        cmocka_unit_test(test_geometry_peaks),
	        cmocka_unit_test(test_frontier_matches_mem),
	        cmocka_unit_test(test_frontier_errors),
	        cmocka_unit_test(test_mem),
	        cmocka_unit_test(test_range_exhaustive_small),
	        cmocka_unit_test(test_range_random),
	        cmocka_unit_test(test_range_huge_shapes),
	        cmocka_unit_test(test_range_argument_errors),
	        cmocka_unit_test(test_range_tamper),
	        cmocka_unit_test(test_consistency_exhaustive_small),
	        cmocka_unit_test(test_consistency_random),
	        cmocka_unit_test(test_consistency_huge_shapes),
	        cmocka_unit_test(test_consistency_tamper),
	        cmocka_unit_test(test_consistency_rewritten_history),
	        cmocka_unit_test(test_consistency_argument_errors),
	        cmocka_unit_test(test_encoding_round_trip),
	        cmocka_unit_test(test_encoding_rejects),
	};
	if (getenv("SLUICE_TEST_FILTER")) /* e.g. SLUICE_TEST_FILTER='test_range*' */
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup_big, teardown_big);
}
