/*
 * Fuzz target for ops frames along the sync client's path: decode the
 * frame (sl_wire_ops_decode), then check it as verify_frame in
 * src/sync/client.c does: its range proof against the root of a fixed
 * log (sl_mmr_range_verify_pinned), each value against the digest in its
 * operation, and the pinned nodes it carries against those the proof
 * fixes.
 *
 * Input layout: the whole input is one ops frame (docs/protocol.md,
 * "Ops frame"). The fixed log is 40 operations of an immutable namespace:
 * operation i is a commit (floor 0) when i % 8 == 7, otherwise a set of
 * key "k/<i>" to the value fixed_value(i) (empty for i % 8 == 0). A frame
 * of size S (1..40) is checked against the root of the first S
 * operations, any other size against the root of all 40.
 *
 * Besides "no crash, no leak", three oracles abort on a wrong answer:
 *   1. a decoded frame re-encodes (begin, add, end) to exactly the input;
 *   2. a frame is accepted only if its elements and values are exactly the
 *      fixed ones at their locations and its pinned nodes (if any) are the
 *      stored peaks for its start;
 *   3. a frame of the fixed operations with the honest proof and no or the
 *      honest pinned nodes is accepted.
 *
 * The corpus in corpus/ops_frame/: honest_* are the frames a server sends
 * for several ranges and sizes of the fixed log, with and without pinned
 * nodes (made from fixed_init()'s log with sl_mmr_range_proof and
 * sl_wire_ops_*); altered_* change one thing in honest_5_9_of_40_pinned
 * (a value, key, proof or pinned byte, the start, the order of two
 * operations, the size, a byte cut or added); bad_* break a header or
 * element rule; docs_vector is the frame of docs/protocol.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"

#define FUZZ_NAME "ops_frame_fuzz"
#include "fuzz_util.h"

#define FIXED_OPS 40
#define VALUE_MAX 64
#define FRAME_CAP (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	int ready;
	sl_mmr_mem *mem;
	sl_mmr_nodes nodes;
	sl_digest roots[FIXED_OPS + 1]; /* roots[s]: the first s operations */
	uint8_t elements[FIXED_OPS][128];
	size_t element_lens[FIXED_OPS];
	uint8_t values[FIXED_OPS][VALUE_MAX];
	size_t value_lens[FIXED_OPS];
} fixed;

/* "v<i>" repeated i % 8 times (0..6 for a set), so lengths vary. */
static size_t fixed_value(unsigned i, uint8_t *out)
{
	size_t len = 0;
	for (unsigned copy = 0; copy < i % 8; copy++)
		len += (size_t)snprintf((char *)out + len, VALUE_MAX - len, "v%u", i);
	return len;
}

static void fixed_init(void)
{
	sl_buf element = SL_BUF_INIT(4096);
	char key[16];

	if (fixed.ready)
		return;
	if (sl_mmr_mem_new(&fixed.mem) != SL_OK)
		die("cannot create the fixed mmr");
	for (unsigned i = 0; i < FIXED_OPS; i++) {
		sl_op op;
		memset(&op, 0, sizeof(op));
		if (i % 8 == 7) {
			op.type = SL_OP_COMMIT;
		} else {
			op.type = SL_OP_SET;
			op.key_len = (size_t)snprintf(key, sizeof(key), "k/%u", i);
			op.key = key;
			fixed.value_lens[i] = fixed_value(i, fixed.values[i]);
			op.value_len = fixed.value_lens[i];
			sl_sha256(&op.digest, fixed.values[i], fixed.value_lens[i]);
		}
		sl_buf_reset(&element);
		if (sl_op_encode(&op, &element) != SL_OK || element.len > sizeof(fixed.elements[i]))
			die("cannot encode a fixed operation");
		memcpy(fixed.elements[i], element.data, element.len);
		fixed.element_lens[i] = element.len;
		sl_mmr_mem_root(fixed.mem, &fixed.roots[i]);
		if (sl_mmr_mem_append(fixed.mem, element.data, element.len) != SL_OK)
			die("cannot append to the fixed mmr");
	}
	sl_mmr_mem_root(fixed.mem, &fixed.roots[FIXED_OPS]);
	fixed.nodes = sl_mmr_mem_nodes(fixed.mem);
	sl_buf_free(&element);
	fixed.ready = 1;
}

/* Oracle 1: the decoded frame encodes back to the input. */
static void check_reencode(const sl_wire_ops *w, const uint8_t *data, size_t size)
{
	sl_buf out = SL_BUF_INIT(FRAME_CAP);

	if (sl_wire_ops_begin(&out, w->start, w->size) != SL_OK)
		die("cannot begin a frame");
	for (size_t i = 0; i < w->n; i++)
		if (sl_wire_ops_add(&out, w->elements[i].data, w->elements[i].len,
		                    w->values[i].data, w->values[i].len) != SL_OK)
			die("a decoded operation does not encode");
	if (sl_wire_ops_end(&out, w->n, &w->proof, w->pinned, w->n_pinned) != SL_OK)
		die("a decoded frame does not end");
	if (out.len != size || memcmp(out.data, data, size) != 0)
		die("a decoded frame re-encodes differently");
	sl_buf_free(&out);
}

/* What verify_frame accepts, with the pinned nodes checked when the frame
 * carries any. *pinned gets the nodes the proof fixes. */
static int accepted(const sl_wire_ops *w, const sl_digest *root, sl_digest *pinned,
                    size_t *n_pinned)
{
	if (sl_mmr_range_verify_pinned(&w->proof, w->start, w->elements, w->n, root, pinned,
	                               n_pinned) != SL_OK)
		return 0;
	for (size_t i = 0; i < w->n; i++) {
		sl_op op;
		sl_digest actual;
		if (sl_op_decode(&op, w->elements[i].data, w->elements[i].len) != SL_OK)
			die("a decoded frame holds an element that is not an operation");
		if (op.type != SL_OP_SET && op.type != SL_OP_UPDATE) {
			if (w->values[i].len != 0)
				die("a value for an operation without one");
			continue;
		}
		if (w->values[i].len != op.value_len)
			die("a value of the wrong length was decoded");
		sl_sha256(&actual, w->values[i].data, w->values[i].len);
		if (!sl_digest_eq(&actual, &op.digest))
			return 0;
	}
	if (w->n_pinned &&
	    (w->n_pinned != *n_pinned || memcmp(w->pinned, pinned, *n_pinned * sizeof(*pinned))))
		return 0;
	return 1;
}

static int is_fixed_range(const sl_wire_ops *w)
{
	if (w->size > FIXED_OPS)
		return 0;
	for (size_t i = 0; i < w->n; i++) {
		uint64_t loc = w->start + i;
		if (w->elements[i].len != fixed.element_lens[loc] ||
		    memcmp(w->elements[i].data, fixed.elements[loc], w->elements[i].len) != 0 ||
		    w->values[i].len != fixed.value_lens[loc] ||
		    (w->values[i].len &&
		     memcmp(w->values[i].data, fixed.values[loc], w->values[i].len) != 0))
			return 0;
	}
	return 1;
}

/* The stored peaks of the MMR of `start` operations. */
static size_t stored_pinned(uint64_t start, sl_digest *out)
{
	uint64_t pos[SL_MMR_MAX_PEAKS];
	size_t n = sl_mmr_pinned_positions(start, pos);
	for (size_t i = 0; i < n; i++)
		if (fixed.nodes.get(fixed.nodes.ctx, pos[i], &out[i]) != SL_OK)
			die("cannot read a stored pinned node");
	return n;
}

static int is_honest_proof(const sl_wire_ops *w)
{
	sl_mmr_proof honest = {0};
	int same;
	if (sl_mmr_range_proof(&honest, &fixed.nodes, w->size, w->start, w->start + w->n) != SL_OK)
		die("cannot build the honest range proof");
	same = honest.leaves == w->proof.leaves && honest.n_digests == w->proof.n_digests &&
	       (honest.n_digests == 0 || memcmp(honest.digests, w->proof.digests,
	                                        honest.n_digests * sizeof(sl_digest)) == 0);
	sl_mmr_proof_free(&honest);
	return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_digest pinned[SL_MMR_MAX_PEAKS], stored[SL_MMR_MAX_PEAKS];
	size_t n_pinned = 0, n_stored;
	const sl_digest *root;
	sl_wire_ops w;
	int ok;

	fixed_init();
	if (sl_wire_ops_decode(&w, data, size) != SL_OK)
		return 0;
	if (w.n == 0 || w.start >= w.size || w.size - w.start < w.n || w.proof.leaves != w.size)
		die("a decoded frame breaks its own header rules");
	check_reencode(&w, data, size);

	root = &fixed.roots[w.size <= FIXED_OPS ? w.size : FIXED_OPS];
	ok = accepted(&w, root, pinned, &n_pinned);
	if (ok) {
		/* Oracle 2. */
		if (!is_fixed_range(&w))
			die("a frame with operations or values not in the log was accepted");
		n_stored = stored_pinned(w.start, stored);
		if (n_pinned != n_stored || memcmp(pinned, stored, n_stored * sizeof(*stored)) != 0)
			die("the proof fixed pinned nodes other than the stored ones");
	} else if (is_fixed_range(&w) && is_honest_proof(&w)) {
		/* Oracle 3. */
		n_stored = stored_pinned(w.start, stored);
		if (w.n_pinned == 0 || (w.n_pinned == n_stored &&
		                        memcmp(w.pinned, stored, n_stored * sizeof(*stored)) == 0))
			die("an honest frame was rejected");
	}
	sl_wire_ops_free(&w);
	return 0;
}
