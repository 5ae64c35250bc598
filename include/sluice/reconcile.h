/*
 * Range-based set reconciliation (negentropy protocol v1), in merkle/.
 *
 * Two parties each hold a set of items (u64 timestamp, 32-byte id), sorted
 * by timestamp then id. The initiator sends a message, the responder
 * answers, and so on until the initiator has learnt which ids it has that
 * the responder lacks ("have") and which the responder has that it lacks
 * ("need"), in a few round trips and bytes that follow the differences,
 * not the sets. Messages are byte for byte those of the negentropy
 * reference (docs/protocol.md, "Set reconciliation"), so any NIP-77
 * implementation can take either role against sluice.
 *
 * Pure computation: a set is read through sl_item_set, a small vtable, so a
 * store can answer range fingerprints from aggregates instead of loading
 * its items. A message is decoded in full and checked before anything is
 * done with it: a malformed one is SL_EINVAL (with the offset and what was
 * wrong), no callback has run and nothing was written to `out`.
 */
#ifndef SLUICE_RECONCILE_H
#define SLUICE_RECONCILE_H

#include "sluice/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_ITEM_ID_LEN         32
#define SL_FINGERPRINT_LEN     16
#define SL_RECONCILE_VERSION   0x61 /* protocol version 1 */
#define SL_RECONCILE_FRAME_MIN 4096 /* smallest frame size limit but 0 */
/* The timestamp that stands for "after every item"; no item may use it. */
#define SL_ITEM_TS_INFINITY UINT64_MAX

typedef struct sl_item {
	uint64_t ts;
	uint8_t id[SL_ITEM_ID_LEN];
} sl_item;

/* <0, 0, >0 as a sorts before, with, after b: timestamp, then id bytewise. */
int sl_item_cmp(const sl_item *a, const sl_item *b);

/* ----------------------------------------------------------- fingerprints */

/* The sum of ids as 256-bit little-endian integers, mod 2^256: w[0] holds
 * bytes 0..7 of the little-endian number. Sums of disjoint ranges add, so
 * a store can keep them per bucket and subtract what leaves. */
typedef struct sl_item_sum {
	uint64_t w[4];
} sl_item_sum;

void sl_item_sum_zero(sl_item_sum *s);
void sl_item_sum_add_id(sl_item_sum *s, const uint8_t id[SL_ITEM_ID_LEN]);
void sl_item_sum_sub_id(sl_item_sum *s, const uint8_t id[SL_ITEM_ID_LEN]);
void sl_item_sum_add(sl_item_sum *s, const sl_item_sum *other);
void sl_item_sum_sub(sl_item_sum *s, const sl_item_sum *other);
/* The 32 little-endian bytes, as hashed and as a store keeps them. */
void sl_item_sum_to_bytes(uint8_t out[SL_ITEM_ID_LEN], const sl_item_sum *s);
void sl_item_sum_from_bytes(sl_item_sum *s, const uint8_t in[SL_ITEM_ID_LEN]);
/* First 16 bytes of SHA-256(sum || varint(count)). */
void sl_item_sum_fingerprint(uint8_t out[SL_FINGERPRINT_LEN], const sl_item_sum *s, uint64_t count);

/* ----------------------------------------------------------- item sets */

/* Called with each item of a range and its index: 0 goes on, a positive
 * value stops the walk (returned as SL_OK), a negative one is an error and
 * is returned. */
typedef int (*sl_item_fn)(void *ctx, uint64_t index, const sl_item *item);

/* A sorted set of distinct items, read by index. Every function returns
 * SL_OK or an SL_E* code with the error set; indexes are within
 * [0, count] and begin <= end. */
typedef struct sl_item_set_ops {
	int (*count)(void *ctx, uint64_t *out);
	int (*get)(void *ctx, uint64_t index, sl_item *out);
	/* The first index >= begin whose item is not below bound. */
	int (*lower_bound)(void *ctx, uint64_t begin, const sl_item *bound, uint64_t *out);
	/* The sum of the ids of items [begin, end). */
	int (*sum)(void *ctx, uint64_t begin, uint64_t end, sl_item_sum *out);
	/* Items [begin, end) in order. */
	int (*each)(void *ctx, uint64_t begin, uint64_t end, sl_item_fn fn, void *fn_ctx);
} sl_item_set_ops;

typedef struct sl_item_set {
	const sl_item_set_ops *ops;
	void *ctx;
} sl_item_set;

/* An in-memory set: add items, seal, then read it through
 * sl_item_vec_set. Sums of ranges come from prefix sums, so each costs
 * O(1). Items may be added after a seal: reads fail until the next seal,
 * which merges them in at O(n) (a set that only grows, such as the
 * entries of a dag namespace, is kept up to date this way). Adding
 * SL_ITEM_TS_INFINITY is SL_EINVAL; a seal that finds an item twice is
 * SL_EINVAL and drops the items added since the last seal. */
typedef struct sl_item_vec sl_item_vec;

int sl_item_vec_new(sl_item_vec **out);
void sl_item_vec_free(sl_item_vec *v); /* NULL ok */
int sl_item_vec_add(sl_item_vec *v, uint64_t ts, const uint8_t id[SL_ITEM_ID_LEN]);
int sl_item_vec_seal(sl_item_vec *v);
void sl_item_vec_discard(sl_item_vec *v); /* drop the items added since the last seal */
size_t sl_item_vec_count(const sl_item_vec *v);
const sl_item *sl_item_vec_items(const sl_item_vec *v); /* sorted once sealed */
sl_item_set sl_item_vec_set(sl_item_vec *v);

/* -------------------------------------------------------- reconciliation */

/* frame_limit bounds every message this side produces: 0 for none, else
 * at least SL_RECONCILE_FRAME_MIN (SL_EINVAL otherwise). A message that
 * would pass it stops early with a fingerprint of everything after, and
 * the next round takes up the rest. Messages are appended to `out`, whose
 * own cap is an error (SL_ETOOLARGE) if it is smaller than the limit. */

/* The initiator's first message. */
int sl_reconcile_initiate(const sl_item_set *set, size_t frame_limit, sl_buf *out);

/* The responder's answer to msg. */
int sl_reconcile_respond(const sl_item_set *set, size_t frame_limit, const uint8_t *msg, size_t len,
                         sl_buf *out);

/* What the initiator learns: ids it has and the responder lacks, and ids
 * the responder has and it lacks. A "have" id is reported once per
 * message. An id may still come more than once: a later message reports
 * it again when a frame cut short at its limit ended with one fingerprint
 * of everything after the cut, ranges already settled included, and a
 * peer may list one id in two ranges ("need"). Callers keep a set. A
 * non-zero return stops and is returned. */
typedef struct sl_reconcile_diff {
	int (*have)(void *ctx, const uint8_t id[SL_ITEM_ID_LEN]);
	int (*need)(void *ctx, const uint8_t id[SL_ITEM_ID_LEN]);
	void *ctx;
} sl_reconcile_diff;

/* The initiator's next message in answer to the responder's msg, with
 * what msg settles reported through diff. *done is 1 (and nothing is
 * appended to out) when reconciliation is complete. */
int sl_reconcile_next(const sl_item_set *set, size_t frame_limit, const uint8_t *msg, size_t len,
                      const sl_reconcile_diff *diff, sl_buf *out, int *done);

/* Check that msg is one well-formed message: SL_OK or SL_EINVAL naming the
 * offset and the problem. The roles call it first. */
int sl_reconcile_check(const uint8_t *msg, size_t len);

#ifdef __cplusplus
}
#endif
#endif
