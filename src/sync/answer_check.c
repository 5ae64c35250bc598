/*
 * Checking what a node answers, for every reader of a node's log: the sync
 * client (client.c) and the node event source (connect/event_node.c).
 * Nothing a node sends is used before these pass.
 *
 * An ops frame is checked against the target it was asked for: its range
 * and size are the ones asked, its range proof leads to the target's root,
 * and each set or update carries the value its element's digest names
 * (the proof covers the elements, not the values). A consistency proof
 * must lead from a log verified earlier to the new target's root.
 */
#include "sluice/sync.h"

#include <string.h>

int sl_sync_check_ops(const sl_wire_ops *ops, uint64_t start, uint64_t max, const sl_target *t,
                      sl_digest pinned[SL_MMR_MAX_PEAKS], size_t *n_pinned)
{
	sl_digest own_pinned[SL_MMR_MAX_PEAKS];
	size_t own_n;
	int rc;

	if (ops->start != start || ops->size != t->size || ops->n == 0 || ops->n > max)
		return sl_error_set(
		        SL_EVERIFY,
		        "frame for [%llu, +%zu) of %llu, asked for [%llu, +%llu) of %llu",
		        (unsigned long long)ops->start, ops->n, (unsigned long long)ops->size,
		        (unsigned long long)start, (unsigned long long)max,
		        (unsigned long long)t->size);
	if ((rc = sl_mmr_range_verify_pinned(&ops->proof, ops->start, ops->elements, ops->n,
	                                     &t->root, pinned ? pinned : own_pinned,
	                                     n_pinned ? n_pinned : &own_n)) != SL_OK)
		return rc == SL_EVERIFY || rc == SL_ENOMEM
		               ? rc
		               : sl_error_set(SL_EVERIFY, "the frame's range proof: %s",
		                              sl_error_last()->message);
	/* The decoder checked that every element decodes as one operation. */
	for (size_t i = 0; i < ops->n; i++) {
		sl_op op;
		sl_digest actual;
		sl_op_decode(&op, ops->elements[i].data, ops->elements[i].len);
		if (op.type != SL_OP_SET && op.type != SL_OP_UPDATE)
			continue;
		sl_sha256(&actual, ops->values[i].data, ops->values[i].len);
		if (!sl_digest_eq(&actual, &op.digest))
			return sl_error_set(SL_EVERIFY,
			                    "the value of operation %llu does not match its digest",
			                    (unsigned long long)(ops->start + i));
	}
	return SL_OK;
}

int sl_sync_check_consistency(const uint8_t *proof_bytes, size_t len, uint64_t old_size,
                              const sl_digest *old_root, const sl_target *to)
{
	sl_mmr_proof proof = {0, 0, NULL};
	int rc = SL_OK;

	if (sl_mmr_proof_decode(&proof, proof_bytes, len) != SL_OK || proof.leaves != to->size ||
	    sl_mmr_consistency_verify(&proof, old_size, old_root, &to->root) != SL_OK)
		rc = sl_error_set(SL_EVERIFY,
		                  "the server's log at %llu operations does not extend the one "
		                  "verified at %llu: it rewrote its history",
		                  (unsigned long long)to->size, (unsigned long long)old_size);
	sl_mmr_proof_free(&proof);
	return rc;
}
