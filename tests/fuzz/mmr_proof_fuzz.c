/*
 * Fuzz target for MMR proofs: decoding, range verification (with pinned
 * nodes) and consistency verification against a fixed MMR.
 *
 * Input layout:
 *   u8    n      number of elements (0..255)
 *   be64  start  first leaf of the range; also the old size for consistency
 *   n  x  (be16 len, len bytes)   the elements
 *   rest         a proof in sl_mmr_proof_encode's format
 *
 * Besides "no crash, no leak", three oracles abort on a wrong answer:
 * a decoded proof re-encodes to exactly its input bytes; a range proof
 * verifies only if the proof bytes and the elements are the honest ones;
 * a consistency proof verifies only if its bytes are the honest proof's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/mmr.h"

#define FUZZ_NAME "mmr_proof_fuzz"
#include "fuzz_util.h"

#define FIXED_LEAVES 37
#define ELEMENT_MAX  32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	int ready;
	sl_mmr_mem *mem;
	sl_mmr_nodes nodes;
	sl_digest roots[FIXED_LEAVES + 1];
	uint8_t elements[FIXED_LEAVES][ELEMENT_MAX];
	size_t lens[FIXED_LEAVES];
} fixed;

/* The same MMR the corpus generator proved against: element i is the
 * text "element-<i>". */
static void fixed_init(void)
{
	if (fixed.ready)
		return;
	if (sl_mmr_mem_new(&fixed.mem) != SL_OK)
		die("cannot create the fixed mmr");
	for (unsigned i = 0; i < FIXED_LEAVES; i++) {
		int len = snprintf((char *)fixed.elements[i], ELEMENT_MAX, "element-%u", i);
		fixed.lens[i] = (size_t)len;
		sl_mmr_mem_root(fixed.mem, &fixed.roots[i]);
		if (sl_mmr_mem_append(fixed.mem, fixed.elements[i], fixed.lens[i]) != SL_OK)
			die("cannot append to the fixed mmr");
	}
	sl_mmr_mem_root(fixed.mem, &fixed.roots[FIXED_LEAVES]);
	fixed.nodes = sl_mmr_mem_nodes(fixed.mem);
	fixed.ready = 1;
}

/* Abort with `why` unless `proof_bytes` is exactly the encoding of p. */
static void require_encoding(const sl_mmr_proof *p, const uint8_t *proof_bytes, size_t len,
                             const char *why)
{
	sl_buf buf = SL_BUF_INIT(1 << 16);

	if (sl_mmr_proof_encode(p, &buf) != SL_OK)
		die("cannot encode a proof");
	if (buf.len != len || memcmp(buf.data, proof_bytes, len) != 0)
		die(why);
	sl_buf_free(&buf);
}

static void check_range(const sl_mmr_proof *proof, uint64_t start, const sl_bytes *elements,
                        size_t n, const uint8_t *proof_bytes, size_t proof_len)
{
	sl_digest pinned[SL_MMR_MAX_PEAKS], stored;
	uint64_t pinned_pos[SL_MMR_MAX_PEAKS];
	sl_mmr_proof honest = {0};
	size_t n_pinned = 0;

	if (sl_mmr_range_verify(proof, start, elements, n, &fixed.roots[FIXED_LEAVES]) != SL_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *real = fixed.elements[start + i];
		if (elements[i].len != fixed.lens[start + i] ||
		    memcmp(elements[i].data, real, elements[i].len) != 0)
			die("a range proof verified a wrong element");
	}
	if (sl_mmr_range_proof(&honest, &fixed.nodes, FIXED_LEAVES, start, start + n) != SL_OK)
		die("cannot build the honest range proof");
	require_encoding(&honest, proof_bytes, proof_len,
	                 "a range proof other than the honest one verified");
	sl_mmr_proof_free(&honest);

	if (sl_mmr_range_verify_pinned(proof, start, elements, n, &fixed.roots[FIXED_LEAVES],
	                               pinned, &n_pinned) != SL_OK)
		die("verify_pinned disagrees with verify");
	if (sl_mmr_pinned_positions(start, pinned_pos) != n_pinned)
		die("wrong number of pinned nodes");
	for (size_t i = 0; i < n_pinned; i++) {
		if (fixed.nodes.get(fixed.nodes.ctx, pinned_pos[i], &stored) != SL_OK ||
		    !sl_digest_eq(&stored, &pinned[i]))
			die("a pinned node differs from the stored one");
	}
}

static void check_consistency(const sl_mmr_proof *proof, uint64_t old_leaves,
                              const uint8_t *proof_bytes, size_t proof_len)
{
	const sl_digest *old_root = &fixed.roots[old_leaves <= FIXED_LEAVES ? old_leaves : 0];
	sl_mmr_proof honest = {0};

	if (sl_mmr_consistency_verify(proof, old_leaves, old_root, &fixed.roots[FIXED_LEAVES]) !=
	    SL_OK)
		return;
	if (old_leaves > FIXED_LEAVES)
		die("a consistency proof from past the fixed size verified");
	if (sl_mmr_consistency_proof(&honest, &fixed.nodes, old_leaves, FIXED_LEAVES) != SL_OK)
		die("cannot build the honest consistency proof");
	require_encoding(&honest, proof_bytes, proof_len,
	                 "a consistency proof other than the honest one verified");
	sl_mmr_proof_free(&honest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_bytes elements[255];
	sl_mmr_proof proof = {0};
	size_t n, off = 9;
	uint64_t start;

	fixed_init();
	if (size < 9)
		return 0;
	n = data[0];
	start = sl_be64_get(data + 1);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		if (size - off < 2)
			return 0;
		len = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (size - off < len)
			return 0;
		elements[i] = (sl_bytes){data + off, len};
		off += len;
	}
	if (sl_mmr_proof_decode(&proof, data + off, size - off) != SL_OK)
		return 0;
	require_encoding(&proof, data + off, size - off, "a decoded proof re-encodes differently");
	check_range(&proof, start, elements, n, data + off, size - off);
	check_consistency(&proof, start, data + off, size - off);
	sl_mmr_proof_free(&proof);
	return 0;
}
