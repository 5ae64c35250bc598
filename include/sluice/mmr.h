/*
 * sluice merkle layer: a Merkle Mountain Range (MMR) over SHA-256, hashing
 * exactly as commonware's `mmr` with its `Standard` hasher, so an MMR built
 * from the same elements has the same root.
 *
 * Numbering: nodes are numbered in post-order from 0 (their *position*);
 * leaf number `loc` (its *location*) sits at pos = 2*loc - popcount(loc).
 * An MMR with L leaves has 2*L - popcount(L) nodes. Integers are hashed as
 * 8-byte big-endian:
 *   leaf   = SHA256(pos || element)
 *   node   = SHA256(pos || left || right)
 *   root   = SHA256(size_in_nodes || peak_1 || ... || peak_k), tallest first
 *   empty  = SHA256(be64(0))
 *
 * The module is pure computation. Stored nodes are read through an
 * sl_mmr_nodes callback, so the same code proves from SQLite (store/), from
 * memory (tests, tools) or from anything else.
 *
 * Range proof for leaves [start, end) of an MMR with `leaves` leaves: the
 * digests of the peaks that hold no element of the range, left to right
 * (oldest first), then the digests of the siblings needed to rebuild the
 * peaks that do, in left-first depth-first order: walking each range peak
 * from the top, a child whose leaves are all outside the range contributes
 * its digest, a child that holds range leaves is descended into.
 *
 * Consistency proof from `old` to `new` leaves (old <= new): the peaks of
 * the old MMR (tallest first), then, walking the new MMR's peaks left to
 * right from the top, the digest of every maximal node made only of new
 * leaves (>= old): a new peak, or a child of a node that also covers old
 * leaves, in left-first depth-first order; descent stops at old peaks.
 * Verification rebuilds the old root from the first part and the new root
 * from both.
 *
 * Verification rejects any proof whose digest count differs from what the
 * shape requires, so an extra, missing, altered or reordered digest or
 * element fails with SL_EVERIFY.
 */
#ifndef SLUICE_MMR_H
#define SLUICE_MMR_H

#include "sluice/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest supported number of leaves: 2^62 (positions stay below 2^63). */
#define SL_MMR_MAX_LEAVES (UINT64_C(1) << 62)
/* An MMR has at most 64 peaks; a path has at most 64 nodes. */
#define SL_MMR_MAX_PEAKS 64
/* Hard cap on digests in a decoded proof. */
#define SL_MMR_PROOF_MAX_DIGESTS 512

/* -------------------------------------------------------------- geometry */

uint64_t sl_mmr_leaf_pos(uint64_t loc);           /* 2*loc - popcount(loc) */
uint64_t sl_mmr_size_for_leaves(uint64_t leaves); /* nodes in an MMR of L leaves */
/* SL_EINVAL if size_in_nodes is not the size of any MMR. */
int sl_mmr_leaves_for_size(uint64_t *leaves, uint64_t size_in_nodes);

/* Peaks of an MMR with `leaves` leaves, tallest (leftmost) first: their
 * positions and heights (a leaf has height 0). Returns the count, which is
 * 0 for leaves == 0 and for leaves > SL_MMR_MAX_LEAVES. */
size_t sl_mmr_peaks(uint64_t leaves, uint64_t pos_out[SL_MMR_MAX_PEAKS],
                    uint32_t height_out[SL_MMR_MAX_PEAKS]);

/* ----------------------------------------------------------------- hashing */

void sl_mmr_leaf_digest(sl_digest *out, uint64_t pos, const void *element, size_t len);
void sl_mmr_node_digest(sl_digest *out, uint64_t pos, const sl_digest *left,
                        const sl_digest *right);
void sl_mmr_root_digest(sl_digest *out, uint64_t size_in_nodes, const sl_digest *peaks,
                        size_t n_peaks);

/* ------------------------------------------------------------ node access */

/* Reads the digest stored at position pos. Returns SL_OK, or an error
 * (SL_ENOTFOUND, SL_EIO, ...) with the message set. */
typedef int (*sl_mmr_get_node_fn)(void *ctx, uint64_t pos, sl_digest *out);

typedef struct sl_mmr_nodes {
	sl_mmr_get_node_fn get;
	void *ctx;
} sl_mmr_nodes;

/* --------------------------------------------------------------- frontier */

/* The peaks of an MMR: all that is needed to append and to compute the
 * root. The store keeps one per namespace in memory. */
typedef struct sl_mmr_frontier {
	uint64_t leaves;
	size_t n_peaks;
	sl_digest peaks[SL_MMR_MAX_PEAKS]; /* tallest first */
} sl_mmr_frontier;

void sl_mmr_frontier_init(sl_mmr_frontier *f); /* empty MMR */
/* Load the peaks of an MMR with `leaves` leaves from stored nodes. */
int sl_mmr_frontier_load(sl_mmr_frontier *f, uint64_t leaves, const sl_mmr_nodes *nodes);
/* Set the peaks directly (e.g. pinned nodes received from a server). */
int sl_mmr_frontier_set(sl_mmr_frontier *f, uint64_t leaves, const sl_digest *peaks,
                        size_t n_peaks);

/* Append one element. Writes the new nodes (the leaf, then each parent it
 * completes) to new_nodes; their positions are consecutive from
 * *first_pos. Returns how many (1..64). SL_ETOOLARGE at SL_MMR_MAX_LEAVES is
 * reported by returning 0 and setting the error. */
size_t sl_mmr_frontier_append(sl_mmr_frontier *f, const void *element, size_t len,
                              sl_digest new_nodes[SL_MMR_MAX_PEAKS + 1], uint64_t *first_pos);
void sl_mmr_frontier_root(const sl_mmr_frontier *f, sl_digest *root);

/* -------------------------------------------------------- in-memory MMR */

/* Every node in a growable array: for tests, tools and benchmarks. */
typedef struct sl_mmr_mem sl_mmr_mem;

int sl_mmr_mem_new(sl_mmr_mem **out);
void sl_mmr_mem_free(sl_mmr_mem *m);
int sl_mmr_mem_append(sl_mmr_mem *m, const void *element, size_t len);
uint64_t sl_mmr_mem_leaves(const sl_mmr_mem *m);
void sl_mmr_mem_root(const sl_mmr_mem *m, sl_digest *root);
/* A node reader over m (valid while m lives and is not appended to). */
sl_mmr_nodes sl_mmr_mem_nodes(const sl_mmr_mem *m);

/* ----------------------------------------------------------------- proofs */

typedef struct sl_mmr_proof {
	uint64_t leaves; /* size of the MMR proved against, in leaves */
	size_t n_digests;
	sl_digest *digests; /* owned; sl_mmr_proof_free releases */
} sl_mmr_proof;

void sl_mmr_proof_free(sl_mmr_proof *p); /* frees digests, zeroes p; NULL ok */

/* Positions of the digests a range proof carries, in proof order. *out is
 * allocated with sl_malloc (also when *n_out is 0) and freed with sl_free.
 * SL_EINVAL unless start < end <= leaves. */
int sl_mmr_range_proof_positions(uint64_t **out, size_t *n_out, uint64_t leaves, uint64_t start,
                                 uint64_t end);

int sl_mmr_range_proof(sl_mmr_proof *out, const sl_mmr_nodes *nodes, uint64_t leaves,
                       uint64_t start, uint64_t end);

/* Verify that elements[0..n) are the leaves [start, start+n) of the MMR
 * with proof->leaves leaves and root `root`. SL_OK or SL_EVERIFY (with a
 * message saying what did not match); SL_EINVAL for n == 0 or a range past
 * proof->leaves. */
int sl_mmr_range_verify(const sl_mmr_proof *proof, uint64_t start, const sl_bytes *elements,
                        size_t n, const sl_digest *root);

/* Pinned nodes for a start location: the peaks of the MMR with `start`
 * leaves, which a client needs to continue appending from `start` without
 * the leaves before it. Returns the count (0 for start == 0). */
size_t sl_mmr_pinned_positions(uint64_t start, uint64_t pos_out[SL_MMR_MAX_PEAKS]);

/* Like sl_mmr_range_verify, and on success also returns the pinned nodes
 * for `start` (tallest first), which the verified proof authenticates. */
int sl_mmr_range_verify_pinned(const sl_mmr_proof *proof, uint64_t start, const sl_bytes *elements,
                               size_t n, const sl_digest *root,
                               sl_digest pinned_out[SL_MMR_MAX_PEAKS], size_t *n_pinned);

/* Consistency proof that the MMR of old_leaves leaves is a prefix of the
 * MMR of new_leaves leaves (old_leaves <= new_leaves). proof->leaves is
 * new_leaves. */
int sl_mmr_consistency_proof(sl_mmr_proof *out, const sl_mmr_nodes *nodes, uint64_t old_leaves,
                             uint64_t new_leaves);
int sl_mmr_consistency_verify(const sl_mmr_proof *proof, uint64_t old_leaves,
                              const sl_digest *old_root, const sl_digest *new_root);

/* Binary encoding: be64 leaves | varint n_digests | n_digests * 32 bytes.
 * Decoding rejects trailing bytes and more than SL_MMR_PROOF_MAX_DIGESTS
 * digests (SL_ECORRUPT / SL_ETOOLARGE). */
int sl_mmr_proof_encode(const sl_mmr_proof *p, sl_buf *out);
int sl_mmr_proof_decode(sl_mmr_proof *out, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
