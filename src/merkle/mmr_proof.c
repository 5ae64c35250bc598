/*
 * MMR range proofs, pinned nodes and consistency proofs (formats in mmr.h).
 *
 * Every proof operation is one walk over the peaks of the proved MMR, left
 * to right, descending left child first. The walk classifies each node it
 * meets from the shape alone (leaf count and leaf range):
 *
 *   PREFIX   its digest sits in the first part of the proof, in walk order:
 *            a peak with no leaf of the range; an old peak (consistency).
 *   SIBLING  its digest sits in the second part, in walk order: a subtree
 *            with no leaf of the range; a subtree of new leaves only.
 *   ELEMENT  a leaf of the range, hashed from the caller's element.
 *   DESCEND  rebuilt from its two children.
 *
 * Proving runs the walk in record mode, writing the position of each PREFIX
 * and SIBLING node into its slot; the prover then reads those nodes.
 * Verifying runs the same walk in compute mode, taking each digest from its
 * slot and hashing upward, then hashes the peaks into a root. Prover and
 * verifier thus agree on the digest order by construction.
 *
 * Nothing is taken from a proof but its leaf count (checked against
 * SL_MMR_MAX_LEAVES) and its digests; the number of PREFIX slots follows
 * from the shape, and a walk that needs a slot past the proof's digests, or
 * leaves some unused, fails with SL_EVERIFY. Recursion depth is the height
 * of the tallest peak (at most 62) and verification allocates nothing.
 */
#include <inttypes.h>
#include <string.h>

#include "sluice/mmr.h"

enum walk_kind { WALK_RANGE, WALK_CONSISTENCY };
enum node_role { ROLE_PREFIX, ROLE_SIBLING, ROLE_ELEMENT, ROLE_DESCEND };

typedef struct walk {
	enum walk_kind kind;
	uint64_t lo, hi; /* range: leaves [lo, hi); consistency: lo = old leaves */
	int compute;     /* 0: record positions; 1: compute digests */
	size_t n_prefix; /* slots [0, n_prefix) are PREFIX nodes */
	size_t n_slots;  /* record: capacity of positions; compute: digests */
	size_t next_prefix, next_sibling;
	uint64_t *positions;      /* record mode */
	const sl_digest *digests; /* compute mode */
	const sl_bytes *elements; /* compute mode, range walks: hi - lo of them */
	/* Compute mode: copy out the digests at these positions when taken. */
	size_t n_pinned;
	uint64_t pinned_pos[SL_MMR_MAX_PEAKS];
	sl_digest pinned[SL_MMR_MAX_PEAKS];
	uint64_t pinned_seen; /* bit i: pinned[i] was taken */
} walk;

static void walk_init(walk *w, enum walk_kind kind, uint64_t lo, uint64_t hi)
{
	memset(w, 0, sizeof(*w));
	w->kind = kind;
	w->lo = lo;
	w->hi = hi;
}

static enum node_role classify(const walk *w, uint32_t height, uint64_t first_leaf, int is_peak)
{
	uint64_t end_leaf = first_leaf + (UINT64_C(1) << height);

	if (w->kind == WALK_CONSISTENCY) {
		if (end_leaf <= w->lo)
			return ROLE_PREFIX;
		return first_leaf >= w->lo ? ROLE_SIBLING : ROLE_DESCEND;
	}
	if (end_leaf <= w->lo || first_leaf >= w->hi)
		return is_peak ? ROLE_PREFIX : ROLE_SIBLING;
	/* A subtree wholly inside the range holds no proof digest: recording
	 * skips it like a leaf, so proving costs O(log n), not O(range). */
	if (!w->compute && first_leaf >= w->lo && end_leaf <= w->hi)
		return ROLE_ELEMENT;
	return height == 0 ? ROLE_ELEMENT : ROLE_DESCEND;
}

/* How many PREFIX nodes the walk over these peaks will meet. */
static size_t count_prefix(const walk *w, const uint32_t *height, size_t n_peaks)
{
	uint64_t first_leaf = 0;
	size_t n = 0;

	if (w->kind == WALK_CONSISTENCY)
		return (size_t)__builtin_popcountll(w->lo); /* the old peaks */
	for (size_t i = 0; i < n_peaks; i++) {
		if (classify(w, height[i], first_leaf, 1) == ROLE_PREFIX)
			n++;
		first_leaf += UINT64_C(1) << height[i];
	}
	return n;
}

static void capture_pinned(walk *w, uint64_t pos, const sl_digest *digest)
{
	for (size_t i = 0; i < w->n_pinned; i++) {
		if (w->pinned_pos[i] == pos) {
			w->pinned[i] = *digest;
			w->pinned_seen |= UINT64_C(1) << i;
			return;
		}
	}
}

/* The next PREFIX or SIBLING slot: record pos there, or read its digest. */
static int take_slot(walk *w, enum node_role role, uint64_t pos, sl_digest *out)
{
	size_t slot;

	if (role == ROLE_PREFIX) {
		if (w->next_prefix >= w->n_prefix)
			return sl_error_set(SL_EINTERNAL, "mmr walk met too many peak nodes");
		slot = w->next_prefix++;
	} else {
		if (w->next_sibling >= w->n_slots) {
			if (w->compute)
				return sl_error_set(SL_EVERIFY,
				                    "mmr proof is missing digests (has %zu)",
				                    w->n_slots);
			return sl_error_set(SL_EINTERNAL, "mmr proof needs over %zu digests",
			                    w->n_slots);
		}
		slot = w->next_sibling++;
	}
	if (w->compute) {
		*out = w->digests[slot];
		capture_pinned(w, pos, out);
	} else {
		w->positions[slot] = pos;
	}
	return SL_OK;
}

static int visit(walk *w, uint64_t pos, uint32_t height, uint64_t first_leaf, int is_peak,
                 sl_digest *out);

/* Rebuild a node from its children: left 2^height below it, right just
 * below. Depth is bounded by the height, at most 62. */
static int descend(walk *w, uint64_t pos, uint32_t height, uint64_t first_leaf, sl_digest *out)
{
	uint64_t half = UINT64_C(1) << (height - 1);
	sl_digest left, right;
	int rc;

	rc = visit(w, pos - 2 * half, height - 1, first_leaf, 0, &left);
	if (rc != SL_OK)
		return rc;
	rc = visit(w, pos - 1, height - 1, first_leaf + half, 0, &right);
	if (rc != SL_OK)
		return rc;
	if (w->compute)
		sl_mmr_node_digest(out, pos, &left, &right);
	return SL_OK;
}

static int visit(walk *w, uint64_t pos, uint32_t height, uint64_t first_leaf, int is_peak,
                 sl_digest *out)
{
	const sl_bytes *element;

	switch (classify(w, height, first_leaf, is_peak)) {
	case ROLE_PREFIX:
		return take_slot(w, ROLE_PREFIX, pos, out);
	case ROLE_SIBLING:
		return take_slot(w, ROLE_SIBLING, pos, out);
	case ROLE_ELEMENT:
		if (w->compute) {
			element = &w->elements[first_leaf - w->lo];
			sl_mmr_leaf_digest(out, pos, element->data, element->len);
		}
		return SL_OK;
	case ROLE_DESCEND:
		if (height == 0)
			break;
		return descend(w, pos, height, first_leaf, out);
	}
	return sl_error_set(SL_EINTERNAL, "mmr walk cannot classify node %" PRIu64, pos);
}

/* Walk the MMR of `leaves` leaves (already checked against the maximum).
 * In compute mode, every digest must be used and *root gets the result. */
static int walk_mmr(walk *w, uint64_t leaves, sl_digest *root)
{
	uint64_t pos[SL_MMR_MAX_PEAKS];
	uint32_t height[SL_MMR_MAX_PEAKS];
	sl_digest peaks[SL_MMR_MAX_PEAKS];
	size_t n_peaks = sl_mmr_peaks(leaves, pos, height);
	uint64_t first_leaf = 0;
	int rc;

	w->n_prefix = count_prefix(w, height, n_peaks);
	if (w->n_prefix > w->n_slots)
		return sl_error_set(SL_EVERIFY, "mmr proof has %zu digests, needs at least %zu",
		                    w->n_slots, w->n_prefix);
	w->next_prefix = 0;
	w->next_sibling = w->n_prefix;
	for (size_t i = 0; i < n_peaks; i++) {
		rc = visit(w, pos[i], height[i], first_leaf, 1, &peaks[i]);
		if (rc != SL_OK)
			return rc;
		first_leaf += UINT64_C(1) << height[i];
	}
	if (w->next_prefix != w->n_prefix)
		return sl_error_set(SL_EINTERNAL, "mmr walk met %zu of %zu peak nodes",
		                    w->next_prefix, w->n_prefix);
	if (!w->compute)
		return SL_OK;
	if (w->next_sibling != w->n_slots)
		return sl_error_set(SL_EVERIFY, "mmr proof has %zu digests, the shape needs %zu",
		                    w->n_slots, w->next_sibling);
	sl_mmr_root_digest(root, sl_mmr_size_for_leaves(leaves), peaks, n_peaks);
	return SL_OK;
}

/* ---------------------------------------------------------------- proving */

static int check_range(uint64_t leaves, uint64_t start, uint64_t end)
{
	if (leaves > SL_MMR_MAX_LEAVES)
		return sl_error_set(SL_EINVAL, "mmr of %" PRIu64 " leaves exceeds the maximum",
		                    leaves);
	if (start >= end || end > leaves)
		return sl_error_set(SL_EINVAL,
		                    "range [%" PRIu64 ", %" PRIu64 ") is empty or past %" PRIu64
		                    " leaves",
		                    start, end, leaves);
	return SL_OK;
}

/* Record-mode walk: positions of the digests a proof carries, in order. */
static int record_positions(walk *w, uint64_t leaves, uint64_t slots[SL_MMR_PROOF_MAX_DIGESTS],
                            size_t *n_slots)
{
	int rc;

	w->positions = slots;
	w->n_slots = SL_MMR_PROOF_MAX_DIGESTS;
	rc = walk_mmr(w, leaves, NULL);
	if (rc != SL_OK)
		return rc;
	*n_slots = w->next_sibling;
	return SL_OK;
}

static int range_positions(uint64_t slots[SL_MMR_PROOF_MAX_DIGESTS], size_t *n_slots,
                           uint64_t leaves, uint64_t start, uint64_t end)
{
	walk w;
	int rc = check_range(leaves, start, end);

	if (rc != SL_OK)
		return rc;
	walk_init(&w, WALK_RANGE, start, end);
	return record_positions(&w, leaves, slots, n_slots);
}

/* Read the nodes at the recorded positions into a new proof. */
static int read_proof(sl_mmr_proof *out, const sl_mmr_nodes *nodes, uint64_t leaves,
                      const uint64_t *slots, size_t n_slots)
{
	sl_digest *digests = NULL;
	int rc = SL_OK;

	if (n_slots > 0) {
		digests = sl_malloc(n_slots * sizeof(*digests));
		if (!digests)
			return SL_ENOMEM;
	}
	for (size_t i = 0; i < n_slots; i++) {
		rc = nodes->get(nodes->ctx, slots[i], &digests[i]);
		if (rc != SL_OK) {
			sl_error_wrap("mmr proof: read node %" PRIu64, slots[i]);
			goto cleanup;
		}
	}
	out->leaves = leaves;
	out->n_digests = n_slots;
	out->digests = digests;
	digests = NULL;
cleanup:
	sl_free(digests);
	return rc;
}

int sl_mmr_range_proof_positions(uint64_t **out, size_t *n_out, uint64_t leaves, uint64_t start,
                                 uint64_t end)
{
	uint64_t slots[SL_MMR_PROOF_MAX_DIGESTS];
	uint64_t *copy;
	size_t n_slots = 0;
	int rc;

	rc = range_positions(slots, &n_slots, leaves, start, end);
	if (rc != SL_OK)
		return rc;
	copy = sl_malloc((n_slots ? n_slots : 1) * sizeof(*copy));
	if (!copy)
		return SL_ENOMEM;
	if (n_slots > 0)
		memcpy(copy, slots, n_slots * sizeof(*copy));
	*out = copy;
	*n_out = n_slots;
	return SL_OK;
}

int sl_mmr_range_proof(sl_mmr_proof *out, const sl_mmr_nodes *nodes, uint64_t leaves,
                       uint64_t start, uint64_t end)
{
	uint64_t slots[SL_MMR_PROOF_MAX_DIGESTS];
	size_t n_slots = 0;
	int rc;

	rc = range_positions(slots, &n_slots, leaves, start, end);
	if (rc != SL_OK)
		return rc;
	return read_proof(out, nodes, leaves, slots, n_slots);
}

int sl_mmr_consistency_proof(sl_mmr_proof *out, const sl_mmr_nodes *nodes, uint64_t old_leaves,
                             uint64_t new_leaves)
{
	uint64_t slots[SL_MMR_PROOF_MAX_DIGESTS];
	size_t n_slots = 0;
	walk w;
	int rc;

	if (new_leaves > SL_MMR_MAX_LEAVES || old_leaves > new_leaves)
		return sl_error_set(SL_EINVAL,
		                    "no consistency proof from %" PRIu64 " to %" PRIu64 " leaves",
		                    old_leaves, new_leaves);
	walk_init(&w, WALK_CONSISTENCY, old_leaves, new_leaves);
	rc = record_positions(&w, new_leaves, slots, &n_slots);
	if (rc != SL_OK)
		return rc;
	return read_proof(out, nodes, new_leaves, slots, n_slots);
}

size_t sl_mmr_pinned_positions(uint64_t start, uint64_t pos_out[SL_MMR_MAX_PEAKS])
{
	uint32_t height[SL_MMR_MAX_PEAKS];

	return sl_mmr_peaks(start, pos_out, height);
}

/* ------------------------------------------------------------- verifying */

/* What any proof must satisfy before its shape is trusted. */
static int check_proof(const sl_mmr_proof *proof)
{
	if (!proof || (proof->n_digests > 0 && !proof->digests))
		return sl_error_set(SL_EINVAL, "mmr proof is missing");
	if (proof->leaves > SL_MMR_MAX_LEAVES)
		return sl_error_set(SL_EVERIFY,
		                    "mmr proof claims %" PRIu64 " leaves, over the maximum",
		                    proof->leaves);
	if (proof->n_digests > SL_MMR_PROOF_MAX_DIGESTS)
		return sl_error_set(SL_EVERIFY, "mmr proof has %zu digests, over the cap of %d",
		                    proof->n_digests, SL_MMR_PROOF_MAX_DIGESTS);
	return SL_OK;
}

static int compare_root(const sl_digest *computed, const sl_digest *expected, const char *what)
{
	if (!sl_digest_eq(computed, expected))
		return sl_error_set(SL_EVERIFY, "%s does not match the root", what);
	return SL_OK;
}

/* Range verification with w set up for pinned capture (or not). */
static int range_verify(walk *w, const sl_mmr_proof *proof, uint64_t start,
                        const sl_bytes *elements, size_t n, const sl_digest *root)
{
	sl_digest computed;
	int rc = check_proof(proof);

	if (rc != SL_OK)
		return rc;
	if (!root || !elements || n == 0)
		return sl_error_set(SL_EINVAL,
		                    "range verify needs a root and at least one element");
	if (start >= proof->leaves || n > proof->leaves - start)
		return sl_error_set(SL_EINVAL,
		                    "range of %zu elements at %" PRIu64 " is past %" PRIu64
		                    " leaves",
		                    n, start, proof->leaves);
	w->kind = WALK_RANGE;
	w->lo = start;
	w->hi = start + n;
	w->compute = 1;
	w->digests = proof->digests;
	w->n_slots = proof->n_digests;
	w->elements = elements;
	rc = walk_mmr(w, proof->leaves, &computed);
	if (rc != SL_OK)
		return rc;
	return compare_root(&computed, root, "range proof");
}

int sl_mmr_range_verify(const sl_mmr_proof *proof, uint64_t start, const sl_bytes *elements,
                        size_t n, const sl_digest *root)
{
	walk w;

	walk_init(&w, WALK_RANGE, 0, 0);
	return range_verify(&w, proof, start, elements, n, root);
}

/* Every pinned node of `start` lies left of the range, so the walk takes it
 * either as a peak before the range or as a left sibling on the path down
 * to leaf `start`; it is authenticated once the root matches. */
int sl_mmr_range_verify_pinned(const sl_mmr_proof *proof, uint64_t start, const sl_bytes *elements,
                               size_t n, const sl_digest *root,
                               sl_digest pinned_out[SL_MMR_MAX_PEAKS], size_t *n_pinned)
{
	walk w;
	uint64_t all_seen;
	int rc;

	walk_init(&w, WALK_RANGE, 0, 0);
	w.n_pinned = sl_mmr_pinned_positions(start, w.pinned_pos);
	rc = range_verify(&w, proof, start, elements, n, root);
	if (rc != SL_OK)
		return rc;
	all_seen = w.n_pinned == 64 ? ~UINT64_C(0) : (UINT64_C(1) << w.n_pinned) - 1;
	if (w.pinned_seen != all_seen)
		return sl_error_set(SL_EINTERNAL, "range proof at %" PRIu64 " lacks pinned nodes",
		                    start);
	if (w.n_pinned > 0)
		memcpy(pinned_out, w.pinned, w.n_pinned * sizeof(*pinned_out));
	*n_pinned = w.n_pinned;
	return SL_OK;
}

int sl_mmr_consistency_verify(const sl_mmr_proof *proof, uint64_t old_leaves,
                              const sl_digest *old_root, const sl_digest *new_root)
{
	sl_digest computed;
	size_t n_old_peaks;
	walk w;
	int rc = check_proof(proof);

	if (rc != SL_OK)
		return rc;
	if (!old_root || !new_root)
		return sl_error_set(SL_EINVAL, "consistency verify needs both roots");
	if (old_leaves > proof->leaves)
		return sl_error_set(SL_EINVAL,
		                    "consistency proof to %" PRIu64
		                    " leaves cannot start at %" PRIu64,
		                    proof->leaves, old_leaves);
	n_old_peaks = (size_t)__builtin_popcountll(old_leaves);
	if (proof->n_digests < n_old_peaks)
		return sl_error_set(SL_EVERIFY,
		                    "consistency proof has %zu digests, needs %zu peaks",
		                    proof->n_digests, n_old_peaks);
	sl_mmr_root_digest(&computed, sl_mmr_size_for_leaves(old_leaves), proof->digests,
	                   n_old_peaks);
	rc = compare_root(&computed, old_root, "consistency proof (old peaks)");
	if (rc != SL_OK)
		return rc;
	walk_init(&w, WALK_CONSISTENCY, old_leaves, proof->leaves);
	w.compute = 1;
	w.digests = proof->digests;
	w.n_slots = proof->n_digests;
	rc = walk_mmr(&w, proof->leaves, &computed);
	if (rc != SL_OK)
		return rc;
	return compare_root(&computed, new_root, "consistency proof (new peaks)");
}

/* --------------------------------------------------------------- encoding */

void sl_mmr_proof_free(sl_mmr_proof *p)
{
	if (!p)
		return;
	sl_free(p->digests);
	memset(p, 0, sizeof(*p));
}

int sl_mmr_proof_encode(const sl_mmr_proof *p, sl_buf *out)
{
	uint8_t header[8 + SL_VARINT_MAX];
	size_t header_len;
	size_t body_len;
	int rc;

	if (p->n_digests > SL_MMR_PROOF_MAX_DIGESTS)
		return sl_error_set(SL_ETOOLARGE, "mmr proof has %zu digests, over the cap of %d",
		                    p->n_digests, SL_MMR_PROOF_MAX_DIGESTS);
	sl_be64_put(header, p->leaves);
	header_len = 8 + sl_varint_put(header + 8, p->n_digests);
	body_len = p->n_digests * sizeof(sl_digest);
	/* Reserve everything first so a failure leaves out unchanged. */
	rc = sl_buf_reserve(out, header_len + body_len);
	if (rc != SL_OK)
		return rc;
	rc = sl_buf_append(out, header, header_len);
	if (rc == SL_OK && body_len > 0)
		rc = sl_buf_append(out, p->digests, body_len);
	return rc;
}

int sl_mmr_proof_decode(sl_mmr_proof *out, const uint8_t *data, size_t len)
{
	sl_reader r;
	uint64_t leaves, n_digests;
	const uint8_t *body;
	sl_digest *digests = NULL;
	int rc;

	sl_reader_init(&r, data, len);
	rc = sl_reader_be64(&r, &leaves);
	if (rc == SL_OK)
		rc = sl_reader_varint(&r, &n_digests);
	if (rc != SL_OK) {
		sl_error_wrap("mmr proof");
		return rc;
	}
	if (leaves > SL_MMR_MAX_LEAVES)
		return sl_error_set(SL_ECORRUPT,
		                    "mmr proof claims %" PRIu64 " leaves, over the maximum",
		                    leaves);
	if (n_digests > SL_MMR_PROOF_MAX_DIGESTS)
		return sl_error_set(SL_ETOOLARGE,
		                    "mmr proof has %" PRIu64 " digests, over the cap of %d",
		                    n_digests, SL_MMR_PROOF_MAX_DIGESTS);
	rc = sl_reader_bytes(&r, (size_t)n_digests * sizeof(sl_digest), &body);
	if (rc == SL_OK)
		rc = sl_reader_expect_end(&r);
	if (rc != SL_OK) {
		sl_error_wrap("mmr proof");
		return rc;
	}
	if (n_digests > 0) {
		digests = sl_malloc((size_t)n_digests * sizeof(sl_digest));
		if (!digests)
			return SL_ENOMEM;
		memcpy(digests, body, (size_t)n_digests * sizeof(sl_digest));
	}
	out->leaves = leaves;
	out->n_digests = (size_t)n_digests;
	out->digests = digests;
	return SL_OK;
}
