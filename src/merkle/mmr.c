/*
 * MMR geometry, hashing, the frontier and the in-memory MMR.
 *
 * Positions follow post-order: a perfect subtree of height h holds
 * 2^(h+1) - 1 nodes, its root comes last, its left child sits 2^h below it
 * and its right child just below it. The peaks of an MMR with L leaves are
 * the set bits of L, tallest (leftmost) first, so all geometry here is bit
 * arithmetic on the leaf count, never a walk over nodes.
 *
 * The frontier holds only the peaks. Appending a leaf merges it with the
 * last peak once for every trailing one bit of the old leaf count (two
 * equal-height peaks become their parent), so an append writes the leaf and
 * then each completed parent, at consecutive positions, without allocating.
 *
 * The in-memory MMR is a frontier plus a geometrically grown array of every
 * node; it appends through the frontier straight into the array, so both
 * produce the same nodes by construction.
 */
#include <inttypes.h>
#include <string.h>

#include "sluice/mmr.h"

/* Roots hash the peaks as one contiguous byte range. */
_Static_assert(sizeof(sl_digest) == SL_DIGEST_LEN, "sl_digest must be exactly 32 bytes");

/* Largest size in nodes: one perfect tree over SL_MMR_MAX_LEAVES leaves. */
#define MAX_SIZE_IN_NODES ((SL_MMR_MAX_LEAVES << 1) - 1)
/* Height of the tallest possible peak (2^62 leaves). */
#define MAX_HEIGHT 62

static uint64_t popcount64(uint64_t v)
{
	return (uint64_t)__builtin_popcountll(v);
}

/* Number of trailing one bits: how many merges appending to `leaves` does. */
static uint32_t trailing_ones(uint64_t v)
{
	return ~v == 0 ? 64 : (uint32_t)__builtin_ctzll(~v);
}

/* Nodes in a perfect tree of height h. */
static uint64_t tree_size(uint32_t height)
{
	return (UINT64_C(1) << (height + 1)) - 1;
}

/* -------------------------------------------------------------- geometry */

uint64_t sl_mmr_leaf_pos(uint64_t loc)
{
	return 2 * loc - popcount64(loc);
}

uint64_t sl_mmr_size_for_leaves(uint64_t leaves)
{
	return 2 * leaves - popcount64(leaves);
}

/* A valid size is a sum of distinct perfect-tree sizes; since the trees
 * shorter than h together hold fewer nodes than one tree of height h,
 * taking the tallest tree that fits at each step finds the decomposition
 * whenever one exists. */
int sl_mmr_leaves_for_size(uint64_t *leaves, uint64_t size_in_nodes)
{
	uint64_t remaining = size_in_nodes;
	uint64_t count = 0;

	if (size_in_nodes > MAX_SIZE_IN_NODES)
		return sl_error_set(SL_EINVAL, "mmr size %" PRIu64 " exceeds the maximum",
		                    size_in_nodes);
	for (uint32_t h = MAX_HEIGHT + 1; h-- > 0;) {
		if (remaining >= tree_size(h)) {
			remaining -= tree_size(h);
			count |= UINT64_C(1) << h;
		}
	}
	if (remaining != 0)
		return sl_error_set(SL_EINVAL, "%" PRIu64 " is not the size of any mmr",
		                    size_in_nodes);
	*leaves = count;
	return SL_OK;
}

/* Returns 0 peaks for leaf counts past SL_MMR_MAX_LEAVES (there is no
 * error channel); every caller in the library validates the count first. */
size_t sl_mmr_peaks(uint64_t leaves, uint64_t pos_out[SL_MMR_MAX_PEAKS],
                    uint32_t height_out[SL_MMR_MAX_PEAKS])
{
	uint64_t size_before = 0;
	size_t n = 0;

	if (leaves > SL_MMR_MAX_LEAVES)
		return 0;
	for (uint32_t h = MAX_HEIGHT + 1; h-- > 0;) {
		if (!(leaves & (UINT64_C(1) << h)))
			continue;
		size_before += tree_size(h);
		pos_out[n] = size_before - 1;
		height_out[n] = h;
		n++;
	}
	return n;
}

/* ----------------------------------------------------------------- hashing */

void sl_mmr_leaf_digest(sl_digest *out, uint64_t pos, const void *element, size_t len)
{
	uint8_t pos_be[8];
	sl_bytes parts[2];

	sl_be64_put(pos_be, pos);
	parts[0] = (sl_bytes){pos_be, sizeof(pos_be)};
	parts[1] = (sl_bytes){element, len};
	sl_sha256_parts(out, parts, 2);
}

void sl_mmr_node_digest(sl_digest *out, uint64_t pos, const sl_digest *left, const sl_digest *right)
{
	uint8_t pos_be[8];
	sl_bytes parts[3];

	sl_be64_put(pos_be, pos);
	parts[0] = (sl_bytes){pos_be, sizeof(pos_be)};
	parts[1] = (sl_bytes){left->bytes, SL_DIGEST_LEN};
	parts[2] = (sl_bytes){right->bytes, SL_DIGEST_LEN};
	sl_sha256_parts(out, parts, 3);
}

void sl_mmr_root_digest(sl_digest *out, uint64_t size_in_nodes, const sl_digest *peaks,
                        size_t n_peaks)
{
	uint8_t size_be[8];
	sl_bytes parts[2];

	sl_be64_put(size_be, size_in_nodes);
	parts[0] = (sl_bytes){size_be, sizeof(size_be)};
	parts[1] = (sl_bytes){(const uint8_t *)peaks, n_peaks * SL_DIGEST_LEN};
	sl_sha256_parts(out, parts, 2);
}

/* --------------------------------------------------------------- frontier */

void sl_mmr_frontier_init(sl_mmr_frontier *f)
{
	f->leaves = 0;
	f->n_peaks = 0;
}

int sl_mmr_frontier_load(sl_mmr_frontier *f, uint64_t leaves, const sl_mmr_nodes *nodes)
{
	uint64_t pos[SL_MMR_MAX_PEAKS];
	uint32_t height[SL_MMR_MAX_PEAKS];
	sl_mmr_frontier loaded;
	int rc;

	if (leaves > SL_MMR_MAX_LEAVES)
		return sl_error_set(SL_EINVAL, "mmr of %" PRIu64 " leaves exceeds the maximum",
		                    leaves);
	loaded.leaves = leaves;
	loaded.n_peaks = sl_mmr_peaks(leaves, pos, height);
	for (size_t i = 0; i < loaded.n_peaks; i++) {
		rc = nodes->get(nodes->ctx, pos[i], &loaded.peaks[i]);
		if (rc != SL_OK) {
			sl_error_wrap("load mmr peak at position %" PRIu64, pos[i]);
			return rc;
		}
	}
	*f = loaded;
	return SL_OK;
}

int sl_mmr_frontier_set(sl_mmr_frontier *f, uint64_t leaves, const sl_digest *peaks, size_t n_peaks)
{
	if (leaves > SL_MMR_MAX_LEAVES)
		return sl_error_set(SL_EINVAL, "mmr of %" PRIu64 " leaves exceeds the maximum",
		                    leaves);
	if (n_peaks != popcount64(leaves))
		return sl_error_set(SL_EINVAL,
		                    "mmr of %" PRIu64 " leaves has %" PRIu64 " peaks, not %zu",
		                    leaves, popcount64(leaves), n_peaks);
	f->leaves = leaves;
	f->n_peaks = n_peaks;
	if (n_peaks > 0)
		memcpy(f->peaks, peaks, n_peaks * sizeof(*peaks));
	return SL_OK;
}

size_t sl_mmr_frontier_append(sl_mmr_frontier *f, const void *element, size_t len,
                              sl_digest new_nodes[SL_MMR_MAX_PEAKS + 1], uint64_t *first_pos)
{
	uint64_t pos = sl_mmr_size_for_leaves(f->leaves);
	uint32_t merges;
	size_t n = 1;

	if (f->leaves >= SL_MMR_MAX_LEAVES) {
		sl_error_set(SL_ETOOLARGE, "mmr is full at %" PRIu64 " leaves", f->leaves);
		return 0;
	}
	merges = trailing_ones(f->leaves);
	*first_pos = pos;
	sl_mmr_leaf_digest(&new_nodes[0], pos, element, len);
	for (uint32_t i = 0; i < merges; i++, n++) {
		f->n_peaks--;
		sl_mmr_node_digest(&new_nodes[n], pos + n, &f->peaks[f->n_peaks],
		                   &new_nodes[n - 1]);
	}
	f->peaks[f->n_peaks++] = new_nodes[n - 1];
	f->leaves++;
	return n;
}

void sl_mmr_frontier_root(const sl_mmr_frontier *f, sl_digest *root)
{
	sl_mmr_root_digest(root, sl_mmr_size_for_leaves(f->leaves), f->peaks, f->n_peaks);
}

/* -------------------------------------------------------- in-memory MMR */

struct sl_mmr_mem {
	sl_mmr_frontier frontier;
	sl_digest *nodes; /* nodes[pos] for pos < size */
	uint64_t size;
	size_t cap;
};

int sl_mmr_mem_new(sl_mmr_mem **out)
{
	sl_mmr_mem *m = sl_calloc(1, sizeof(*m));

	if (!m)
		return SL_ENOMEM;
	sl_mmr_frontier_init(&m->frontier);
	*out = m;
	return SL_OK;
}

void sl_mmr_mem_free(sl_mmr_mem *m)
{
	if (!m)
		return;
	sl_free(m->nodes);
	sl_free(m);
}

/* Make room for the most nodes one append can write, doubling the array. */
static int mem_reserve_append(sl_mmr_mem *m)
{
	const uint64_t max_nodes = SIZE_MAX / sizeof(sl_digest);
	uint64_t need = m->size + SL_MMR_MAX_PEAKS + 1;
	uint64_t cap = m->cap ? m->cap : 256;
	sl_digest *grown;

	if (need <= m->cap)
		return SL_OK;
	if (need > max_nodes)
		return sl_error_set(SL_ETOOLARGE, "in-memory mmr of %" PRIu64 " nodes is too large",
		                    m->size);
	while (cap < need)
		cap = cap > max_nodes / 2 ? max_nodes : cap * 2;
	grown = sl_realloc(m->nodes, (size_t)cap * sizeof(sl_digest));
	if (!grown)
		return SL_ENOMEM;
	m->nodes = grown;
	m->cap = (size_t)cap;
	return SL_OK;
}

int sl_mmr_mem_append(sl_mmr_mem *m, const void *element, size_t len)
{
	uint64_t first_pos;
	size_t n;
	int rc;

	if (m->frontier.leaves >= SL_MMR_MAX_LEAVES)
		return sl_error_set(SL_ETOOLARGE, "mmr is full at %" PRIu64 " leaves",
		                    m->frontier.leaves);
	rc = mem_reserve_append(m);
	if (rc != SL_OK)
		return rc;
	n = sl_mmr_frontier_append(&m->frontier, element, len, m->nodes + m->size, &first_pos);
	m->size = first_pos + n;
	return SL_OK;
}

uint64_t sl_mmr_mem_leaves(const sl_mmr_mem *m)
{
	return m->frontier.leaves;
}

void sl_mmr_mem_root(const sl_mmr_mem *m, sl_digest *root)
{
	sl_mmr_frontier_root(&m->frontier, root);
}

static int mem_get_node(void *ctx, uint64_t pos, sl_digest *out)
{
	const sl_mmr_mem *m = ctx;

	if (pos >= m->size)
		return sl_error_set(SL_ENOTFOUND,
		                    "mmr node %" PRIu64 " not found (size %" PRIu64 ")", pos,
		                    m->size);
	*out = m->nodes[pos];
	return SL_OK;
}

sl_mmr_nodes sl_mmr_mem_nodes(const sl_mmr_mem *m)
{
	sl_mmr_nodes nodes = {mem_get_node, (void *)m};
	return nodes;
}
