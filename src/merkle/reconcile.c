/*
 * Negentropy protocol v1: the message codec and both roles.
 *
 * A message is a version byte (0x61) and ranges that cover the item space
 * from (0, empty id) to infinity in ascending order, each an exclusive
 * upper bound, a mode and a payload: Skip (nothing), Fingerprint (16
 * bytes) or IdList (a count and 32-byte ids). Bounds carry a timestamp
 * encoded as 1 + its offset from the previous bound's (0 for infinity) and
 * the shortest id prefix that separates the items on either side. Varints
 * are base 128, most significant digit first.
 *
 * Answering a message, range by range, against the local set:
 *   - Skip: nothing to do; consecutive skips are merged and a trailing one
 *     is left implicit.
 *   - Fingerprint: equal to ours, skip; else split our items of the range:
 *     fewer than 32 go back as an IdList, more are cut into 16 buckets of
 *     near-equal size, each sent with its fingerprint.
 *   - IdList: the initiator now knows the range exactly (ids it has that
 *     are not listed, ids listed that it lacks) and skips it; the
 *     responder answers with its own ids of the range.
 * The initiator is done when its answer would hold no range.
 *
 * Frame size limit: once a message would pass (limit - 200) bytes, the
 * rest of the item space goes as one Fingerprint range up to infinity and
 * the next round takes it up. Here sluice departs from the reference on
 * purpose. The reference drops the answer to the range it was on (with
 * any Skip pending before it) and fingerprints only the items after that
 * range, while the range it sends starts where its output ended: the
 * items in between are left out of the fingerprint, and a peer lacking
 * exactly those would match and skip them, a difference never found.
 * sluice writes the pending Skip, then fingerprints exactly the items of
 * the range it sends. Until the limit comes into play, messages are byte
 * for byte the reference's.
 *
 * Incoming messages are checked whole (sl_reconcile_check) before any
 * range is acted on, so a malformed one reports nothing and writes
 * nothing. Beyond the reference decoder, sluice refuses: varints with a
 * leading zero digit or past 64 bits, bounds that go backwards, a
 * timestamp that passes infinity (so only ranges up to infinity may
 * follow one that ends there, as the reference writes when its limit is
 * reached at the end), and an IdList longer than the bytes left.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/reconcile.h"

enum { MODE_SKIP = 0, MODE_FINGERPRINT = 1, MODE_IDLIST = 2 };

#define BUCKETS        16
#define IDLIST_BELOW   (2 * BUCKETS) /* ranges smaller than this go as ids */
#define FRAME_HEADROOM 200

/* An exclusive upper bound: an item whose id is significant in its first
 * id_len bytes (the rest is zero). */
typedef struct bound {
	sl_item item;
	size_t id_len;
} bound;

/* --------------------------------------------------------------- decode */

typedef struct msg_reader {
	const uint8_t *p;
	size_t len, off;
	uint64_t last_ts;
	bound prev; /* the previous range's upper bound */
} msg_reader;

/* A decoded range; payloads borrow from the message. */
typedef struct range {
	bound upper;
	uint64_t mode;
	const uint8_t *fingerprint;
	uint64_t n_ids;
	const uint8_t *ids;
} range;

static int bad(const msg_reader *r, size_t at, const char *what)
{
	return sl_error_set(SL_EINVAL, "reconciliation message: %s at byte %zu of %zu", what, at,
	                    r->len);
}

static int get_varint(msg_reader *r, uint64_t *out, const char *what)
{
	size_t start = r->off;
	uint64_t v = 0;
	char msg[96];

	for (;;) {
		uint8_t byte;
		if (r->off >= r->len) {
			snprintf(msg, sizeof(msg), "the message ends inside %s", what);
			return bad(r, start, msg);
		}
		byte = r->p[r->off++];
		if (r->off - start == 1 && byte == 0x80) {
			snprintf(msg, sizeof(msg), "%s has a leading zero digit", what);
			return bad(r, start, msg);
		}
		if (v >> 57) {
			snprintf(msg, sizeof(msg), "%s does not fit in 64 bits", what);
			return bad(r, start, msg);
		}
		v = (v << 7) | (byte & 0x7f);
		if (!(byte & 0x80))
			break;
	}
	*out = v;
	return SL_OK;
}

static int get_bytes(msg_reader *r, size_t n, const uint8_t **out, const char *what)
{
	char msg[96];
	if (r->len - r->off < n) {
		snprintf(msg, sizeof(msg), "the message ends inside %s", what);
		return bad(r, r->off, msg);
	}
	*out = r->p + r->off;
	r->off += n;
	return SL_OK;
}

static int bound_cmp(const bound *a, const bound *b)
{
	return sl_item_cmp(&a->item, &b->item);
}

static int get_bound(msg_reader *r, bound *out)
{
	size_t start = r->off;
	uint64_t enc, len;
	const uint8_t *prefix = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = get_varint(r, &enc, "a bound's timestamp")) != SL_OK)
		return rc;
	if (enc == 0) {
		out->item.ts = SL_ITEM_TS_INFINITY;
	} else {
		if (enc - 1 >= SL_ITEM_TS_INFINITY - r->last_ts)
			return bad(r, start, "a bound's timestamp passes infinity");
		out->item.ts = r->last_ts + (enc - 1);
	}
	r->last_ts = out->item.ts;
	if ((rc = get_varint(r, &len, "a bound's id length")) != SL_OK)
		return rc;
	if (len > SL_ITEM_ID_LEN)
		return bad(r, start, "a bound's id prefix is longer than 32 bytes");
	if ((rc = get_bytes(r, (size_t)len, &prefix, "a bound's id prefix")) != SL_OK)
		return rc;
	memcpy(out->item.id, prefix, (size_t)len);
	out->id_len = (size_t)len;
	return SL_OK;
}

/* The next range, or *more = 0 at the end of the message. */
static int next_range(msg_reader *r, range *out, int *more)
{
	size_t start = r->off;
	uint64_t max_ids;
	int rc;

	*more = r->off < r->len;
	if (!*more)
		return SL_OK;
	memset(out, 0, sizeof(*out));
	if ((rc = get_bound(r, &out->upper)) != SL_OK)
		return rc;
	if (bound_cmp(&out->upper, &r->prev) < 0)
		return bad(r, start, "a range's bound is below the previous range's");
	if ((rc = get_varint(r, &out->mode, "a range's mode")) != SL_OK)
		return rc;
	switch (out->mode) {
	case MODE_SKIP:
		break;
	case MODE_FINGERPRINT:
		rc = get_bytes(r, SL_FINGERPRINT_LEN, &out->fingerprint, "a fingerprint");
		break;
	case MODE_IDLIST:
		if ((rc = get_varint(r, &out->n_ids, "an id list's length")) != SL_OK)
			return rc;
		max_ids = (r->len - r->off) / SL_ITEM_ID_LEN;
		if (out->n_ids > max_ids)
			return bad(r, start, "an id list is longer than the message");
		rc = get_bytes(r, (size_t)out->n_ids * SL_ITEM_ID_LEN, &out->ids, "an id list");
		break;
	default:
		return bad(r, start, "a range has an unknown mode");
	}
	if (rc != SL_OK)
		return rc;
	r->prev = out->upper;
	return SL_OK;
}

static int reader_start(msg_reader *r, const uint8_t *msg, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->p = msg;
	r->len = len;
	if (len == 0)
		return sl_error_set(SL_EINVAL, "reconciliation message is empty");
	if (msg[0] < 0x60 || msg[0] > 0x6f)
		return sl_error_set(SL_EINVAL,
		                    "not a negentropy message: the first byte is 0x%02x, not a "
		                    "protocol version",
		                    msg[0]);
	if (msg[0] != SL_RECONCILE_VERSION)
		return sl_error_set(SL_EINVAL,
		                    "negentropy protocol version %d is not supported; this node "
		                    "speaks version 1 (0x61)",
		                    msg[0] - 0x60);
	r->off = 1;
	return SL_OK;
}

int sl_reconcile_check(const uint8_t *msg, size_t len)
{
	msg_reader r;
	range rg;
	int more = 1, rc;

	if ((rc = reader_start(&r, msg, len)) != SL_OK)
		return rc;
	while ((rc = next_range(&r, &rg, &more)) == SL_OK && more)
		;
	return rc;
}

/* --------------------------------------------------------------- encode */

/* What one message being written needs: the set, the limit and the last
 * timestamp written (bounds are encoded relative to it). */
typedef struct session {
	const sl_item_set *set;
	size_t limit;
	int initiator;
	const sl_reconcile_diff *diff;
	uint64_t count;
	uint64_t last_ts_out;
	size_t base; /* out->len before the version byte */
} session;

static int put_varint(sl_buf *b, uint64_t v)
{
	uint8_t digits[10], enc[10];
	size_t n = 0;
	do {
		digits[n++] = (uint8_t)(v & 0x7f);
		v >>= 7;
	} while (v);
	for (size_t i = 0; i < n; i++)
		enc[i] = (uint8_t)(digits[n - 1 - i] | (i + 1 < n ? 0x80 : 0));
	return sl_buf_append(b, enc, n);
}

static int put_bound(session *s, sl_buf *b, const bound *bd)
{
	int rc;
	if (bd->item.ts == SL_ITEM_TS_INFINITY) {
		s->last_ts_out = SL_ITEM_TS_INFINITY;
		rc = put_varint(b, 0);
	} else {
		rc = put_varint(b, bd->item.ts - s->last_ts_out + 1);
		s->last_ts_out = bd->item.ts;
	}
	if (rc == SL_OK)
		rc = put_varint(b, bd->id_len);
	if (rc == SL_OK)
		rc = sl_buf_append(b, bd->item.id, bd->id_len);
	return rc;
}

static bound infinity_bound(void)
{
	bound b;
	memset(&b, 0, sizeof(b));
	b.item.ts = SL_ITEM_TS_INFINITY;
	return b;
}

/* The shortest bound above prev that curr does not fall below. */
static bound minimal_bound(const sl_item *prev, const sl_item *curr)
{
	bound b;
	memset(&b, 0, sizeof(b));
	b.item.ts = curr->ts;
	if (curr->ts == prev->ts) {
		size_t shared = 0;
		while (shared < SL_ITEM_ID_LEN - 1 && curr->id[shared] == prev->id[shared])
			shared++;
		b.id_len = shared + 1;
		memcpy(b.item.id, curr->id, b.id_len);
	}
	return b;
}

static int exceeded(const session *s, size_t n)
{
	return s->limit && n > s->limit - FRAME_HEADROOM;
}

static int fingerprint(session *s, uint64_t begin, uint64_t end, uint8_t out[SL_FINGERPRINT_LEN])
{
	sl_item_sum sum;
	int rc = s->set->ops->sum(s->set->ctx, begin, end, &sum);
	if (rc == SL_OK)
		sl_item_sum_fingerprint(out, &sum, end - begin);
	return rc;
}

static int append_id(void *ctx, uint64_t index, const sl_item *item)
{
	(void)index;
	return sl_buf_append(ctx, item->id, SL_ITEM_ID_LEN);
}

/* Our items of [lower, upper) as one IdList or 16 fingerprinted buckets. */
static int split_range(session *s, uint64_t lower, uint64_t upper, const bound *upper_bound,
                       sl_buf *o)
{
	uint64_t n = upper - lower, per, extra, curr = lower;
	int rc;

	if (n < IDLIST_BELOW) {
		if ((rc = put_bound(s, o, upper_bound)) != SL_OK ||
		    (rc = put_varint(o, MODE_IDLIST)) != SL_OK || (rc = put_varint(o, n)) != SL_OK)
			return rc;
		return s->set->ops->each(s->set->ctx, lower, upper, append_id, o);
	}
	per = n / BUCKETS;
	extra = n % BUCKETS;
	for (uint64_t i = 0; i < BUCKETS; i++) {
		uint64_t size = per + (i < extra ? 1 : 0);
		uint8_t fp[SL_FINGERPRINT_LEN];
		bound next;
		if ((rc = fingerprint(s, curr, curr + size, fp)) != SL_OK)
			return rc;
		curr += size;
		if (curr == upper) {
			next = *upper_bound;
		} else {
			sl_item before, at;
			if ((rc = s->set->ops->get(s->set->ctx, curr - 1, &before)) != SL_OK ||
			    (rc = s->set->ops->get(s->set->ctx, curr, &at)) != SL_OK)
				return rc;
			next = minimal_bound(&before, &at);
		}
		if ((rc = put_bound(s, o, &next)) != SL_OK ||
		    (rc = put_varint(o, MODE_FINGERPRINT)) != SL_OK ||
		    (rc = sl_buf_append(o, fp, SL_FINGERPRINT_LEN)) != SL_OK)
			return rc;
	}
	return SL_OK;
}

/* ------------------------------------------------------------ initiator */

static int cmp_ids(const void *a, const void *b)
{
	return memcmp(a, b, SL_ITEM_ID_LEN);
}

typedef struct idlist_match {
	const sl_reconcile_diff *diff;
	uint8_t *theirs; /* sorted, distinct */
	uint8_t *seen;   /* one flag per id in theirs */
	size_t n;
} idlist_match;

static int match_ours(void *ctx, uint64_t index, const sl_item *item)
{
	idlist_match *m = ctx;
	/* bsearch may not be given a NULL base, even for no elements. */
	uint8_t *hit = m->n ? bsearch(item->id, m->theirs, m->n, SL_ITEM_ID_LEN, cmp_ids) : NULL;
	(void)index;
	if (hit) {
		m->seen[(size_t)(hit - m->theirs) / SL_ITEM_ID_LEN] = 1;
		return 0;
	}
	return m->diff->have ? m->diff->have(m->diff->ctx, item->id) : 0;
}

/* The responder listed its ids of [lower, upper): ours not listed are
 * "have", listed ones we lack are "need". */
static int settle_idlist(session *s, const range *rg, uint64_t lower, uint64_t upper)
{
	idlist_match m = {s->diff, NULL, NULL, 0};
	size_t n_in = (size_t)rg->n_ids;
	int rc = SL_OK;

	if (n_in > 0) {
		if (!(m.theirs = sl_malloc(n_in * SL_ITEM_ID_LEN)) ||
		    !(m.seen = sl_calloc(n_in, 1))) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		memcpy(m.theirs, rg->ids, n_in * SL_ITEM_ID_LEN);
		qsort(m.theirs, n_in, SL_ITEM_ID_LEN, cmp_ids);
		for (size_t i = 0; i < n_in; i++)
			if (m.n == 0 || memcmp(m.theirs + (m.n - 1) * SL_ITEM_ID_LEN,
			                       m.theirs + i * SL_ITEM_ID_LEN, SL_ITEM_ID_LEN) != 0)
				memmove(m.theirs + m.n++ * SL_ITEM_ID_LEN,
				        m.theirs + i * SL_ITEM_ID_LEN, SL_ITEM_ID_LEN);
	}
	if ((rc = s->set->ops->each(s->set->ctx, lower, upper, match_ours, &m)) != SL_OK)
		goto cleanup;
	for (size_t i = 0; i < m.n && rc == SL_OK; i++)
		if (!m.seen[i] && s->diff->need)
			rc = s->diff->need(s->diff->ctx, m.theirs + i * SL_ITEM_ID_LEN);
cleanup:
	sl_free(m.theirs);
	sl_free(m.seen);
	return rc;
}

/* ------------------------------------------------------------ responder */

typedef struct idlist_writer {
	session *s;
	const sl_buf *out;
	sl_buf *ids;
	uint64_t n;
	uint64_t stop_index; /* where the list was cut, or UINT64_MAX */
	sl_item stop_item;
} idlist_writer;

static int list_ours(void *ctx, uint64_t index, const sl_item *item)
{
	idlist_writer *w = ctx;
	if (exceeded(w->s, w->out->len - w->s->base + w->ids->len)) {
		w->stop_index = index;
		w->stop_item = *item;
		return 1;
	}
	w->n++;
	return sl_buf_append(w->ids, item->id, SL_ITEM_ID_LEN);
}

/* Our ids of [lower, *upper) as an IdList straight into out, cut at the
 * frame limit; *end is the list's bound (where it was cut, if it was, and
 * *upper moves there too). o holds a pending Skip, written first. */
static int answer_idlist(session *s, uint64_t lower, uint64_t *upper, const bound *upper_bound,
                         sl_buf *o, sl_buf *out, bound *end)
{
	sl_buf ids = SL_BUF_INIT(out->max);
	idlist_writer w = {s, out, &ids, 0, UINT64_MAX, {0, {0}}};
	int rc;

	*end = *upper_bound;
	if ((rc = s->set->ops->each(s->set->ctx, lower, *upper, list_ours, &w)) != SL_OK)
		goto cleanup;
	if (w.stop_index != UINT64_MAX) {
		end->item = w.stop_item;
		end->id_len = SL_ITEM_ID_LEN;
		*upper = w.stop_index;
	}
	if ((rc = put_bound(s, o, end)) != SL_OK || (rc = put_varint(o, MODE_IDLIST)) != SL_OK ||
	    (rc = put_varint(o, w.n)) != SL_OK ||
	    (rc = sl_buf_append(o, ids.data, ids.len)) != SL_OK ||
	    (rc = sl_buf_append(out, o->data, o->len)) != SL_OK)
		goto cleanup;
	sl_buf_reset(o);
cleanup:
	sl_buf_free(&ids);
	return rc;
}

/* ---------------------------------------------------------------- rounds */

static int put_skip(session *s, sl_buf *b, const bound *upper)
{
	int rc = put_bound(s, b, upper);
	return rc == SL_OK ? put_varint(b, MODE_SKIP) : rc;
}

static int is_infinity(const bound *b)
{
	return b->item.ts == SL_ITEM_TS_INFINITY;
}

/* The frame is full: close it with one Fingerprint range over every item
 * from `from` up to infinity. `last` is the bound out ends at now; a Skip
 * up to `skip_to` (when not NULL) is written first. */
static int close_frame(session *s, sl_buf *out, const bound *last, const bound *skip_to,
                       uint64_t from)
{
	bound inf = infinity_bound();
	uint8_t fp[SL_FINGERPRINT_LEN];
	int rc;

	if (skip_to) {
		if (is_infinity(skip_to))
			return SL_OK; /* everything is settled; the Skip is implicit */
		if ((rc = put_skip(s, out, skip_to)) != SL_OK)
			return rc;
	} else if (is_infinity(last)) {
		return SL_OK;
	}
	if ((rc = fingerprint(s, from, s->count, fp)) != SL_OK ||
	    (rc = put_bound(s, out, &inf)) != SL_OK ||
	    (rc = put_varint(out, MODE_FINGERPRINT)) != SL_OK)
		return rc;
	return sl_buf_append(out, fp, SL_FINGERPRINT_LEN);
}

/* Answer msg range by range into out (after the version byte). Invariant
 * at the top of the loop: out covers the item space up to last_out, and
 * the ranges from there to prev_bound are settled (skip is set) or there
 * are none; prev_index is our first item at or above prev_bound. */
static int answer(session *s, const uint8_t *msg, size_t len, sl_buf *out)
{
	sl_buf o = SL_BUF_INIT(out->max);
	msg_reader r;
	range rg;
	bound prev_bound, last_out;
	uint64_t prev_index = 0;
	int skip = 0, more = 1, rc;

	memset(&prev_bound, 0, sizeof(prev_bound));
	last_out = prev_bound;
	if ((rc = reader_start(&r, msg, len)) != SL_OK)
		goto cleanup;
	while ((rc = next_range(&r, &rg, &more)) == SL_OK && more) {
		uint64_t lower = prev_index, upper;
		uint8_t ours[SL_FINGERPRINT_LEN];
		int pending = skip, answered = 0;
		uint64_t ts_mark = s->last_ts_out; /* bounds in o are relative to it */
		bound end = rg.upper;

		sl_buf_reset(&o);
		if ((rc = s->set->ops->lower_bound(s->set->ctx, lower, &rg.upper.item, &upper)) !=
		    SL_OK)
			goto cleanup;
		if (rg.mode == MODE_SKIP) {
			skip = 1;
		} else if (rg.mode == MODE_FINGERPRINT) {
			if ((rc = fingerprint(s, lower, upper, ours)) != SL_OK)
				goto cleanup;
			if (memcmp(ours, rg.fingerprint, SL_FINGERPRINT_LEN) == 0) {
				skip = 1;
			} else {
				if (skip && (rc = put_skip(s, &o, &prev_bound)) != SL_OK)
					goto cleanup;
				skip = 0;
				if ((rc = split_range(s, lower, upper, &rg.upper, &o)) != SL_OK)
					goto cleanup;
			}
		} else if (s->initiator) {
			skip = 1;
			if ((rc = settle_idlist(s, &rg, lower, upper)) != SL_OK)
				goto cleanup;
		} else {
			if (skip && (rc = put_skip(s, &o, &prev_bound)) != SL_OK)
				goto cleanup;
			skip = 0;
			if ((rc = answer_idlist(s, lower, &upper, &rg.upper, &o, out, &end)) !=
			    SL_OK)
				goto cleanup;
			last_out = end;
			answered = 1;
		}

		if (exceeded(s, out->len - s->base + o.len)) {
			if (o.len > 0) { /* drop the answer to this range */
				s->last_ts_out = ts_mark;
				rc = close_frame(s, out, &last_out, pending ? &prev_bound : NULL,
				                 lower);
			} else
				rc = close_frame(s, out, &last_out, answered ? NULL : &rg.upper,
				                 upper);
			goto cleanup;
		}
		if (o.len > 0) {
			if ((rc = sl_buf_append(out, o.data, o.len)) != SL_OK)
				goto cleanup;
			last_out = rg.upper;
		}
		prev_index = upper;
		prev_bound = rg.upper;
	}
cleanup:
	sl_buf_free(&o);
	return rc;
}

/* Take out back to len bytes (what it held before this message). */
static void truncate_to(sl_buf *out, size_t len)
{
	out->len = len;
	if (out->data)
		out->data[len] = 0;
}

static int check_limit(size_t frame_limit)
{
	if (frame_limit != 0 && frame_limit < SL_RECONCILE_FRAME_MIN)
		return sl_error_set(SL_EINVAL, "a frame size limit of %zu bytes is below %d",
		                    frame_limit, SL_RECONCILE_FRAME_MIN);
	return SL_OK;
}

static int session_start(session *s, const sl_item_set *set, size_t frame_limit, sl_buf *out)
{
	int rc;
	memset(s, 0, sizeof(*s));
	s->set = set;
	s->limit = frame_limit;
	s->base = out->len;
	if ((rc = check_limit(frame_limit)) != SL_OK ||
	    (rc = set->ops->count(set->ctx, &s->count)) != SL_OK)
		return rc;
	return sl_buf_append_byte(out, SL_RECONCILE_VERSION);
}

int sl_reconcile_initiate(const sl_item_set *set, size_t frame_limit, sl_buf *out)
{
	session s;
	bound inf = infinity_bound();
	int rc;

	if ((rc = session_start(&s, set, frame_limit, out)) == SL_OK)
		rc = split_range(&s, 0, s.count, &inf, out);
	if (rc != SL_OK)
		truncate_to(out, s.base);
	return rc;
}

int sl_reconcile_respond(const sl_item_set *set, size_t frame_limit, const uint8_t *msg, size_t len,
                         sl_buf *out)
{
	session s;
	int rc;

	s.base = out->len;
	if ((rc = sl_reconcile_check(msg, len)) == SL_OK &&
	    (rc = session_start(&s, set, frame_limit, out)) == SL_OK)
		rc = answer(&s, msg, len, out);
	if (rc != SL_OK)
		truncate_to(out, s.base);
	return rc;
}

int sl_reconcile_next(const sl_item_set *set, size_t frame_limit, const uint8_t *msg, size_t len,
                      const sl_reconcile_diff *diff, sl_buf *out, int *done)
{
	static const sl_reconcile_diff none = {NULL, NULL, NULL};
	session s;
	int rc;

	s.base = out->len;
	if ((rc = sl_reconcile_check(msg, len)) == SL_OK &&
	    (rc = session_start(&s, set, frame_limit, out)) == SL_OK) {
		s.initiator = 1;
		s.diff = diff ? diff : &none;
		rc = answer(&s, msg, len, out);
	}
	if (rc != SL_OK) {
		truncate_to(out, s.base);
		return rc;
	}
	*done = out->len - s.base == 1;
	if (*done)
		truncate_to(out, s.base);
	return SL_OK;
}
