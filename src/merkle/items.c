/*
 * Items, their 256-bit sums and fingerprints, and the in-memory item set
 * of range-based set reconciliation (reconcile.c has the protocol).
 *
 * A range's fingerprint hashes the sum of its ids, read as 256-bit
 * little-endian integers, mod 2^256, and its count. The sum is kept as four
 * 64-bit words, least significant first, so adding is four adds with carry
 * on any host; bytes are converted at the edges only.
 *
 * The in-memory set keeps its items sorted and a prefix sum per item
 * (prefix[i] is the sum of items [0, i)), so the sum of any range is one
 * subtraction: a responder over a million items answers each fingerprint
 * in constant time.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/reconcile.h"

int sl_item_cmp(const sl_item *a, const sl_item *b)
{
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return memcmp(a->id, b->id, SL_ITEM_ID_LEN);
}

/* ------------------------------------------------------------------ sums */

static uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

void sl_item_sum_zero(sl_item_sum *s)
{
	memset(s, 0, sizeof(*s));
}

void sl_item_sum_add(sl_item_sum *s, const sl_item_sum *other)
{
	uint64_t carry = 0;
	for (int i = 0; i < 4; i++) {
		uint64_t a = s->w[i], sum = a + other->w[i];
		uint64_t c1 = sum < a;
		uint64_t with = sum + carry;
		carry = c1 | (with < sum);
		s->w[i] = with;
	}
}

void sl_item_sum_sub(sl_item_sum *s, const sl_item_sum *other)
{
	uint64_t borrow = 0;
	for (int i = 0; i < 4; i++) {
		uint64_t a = s->w[i], diff = a - other->w[i];
		uint64_t b1 = a < other->w[i];
		uint64_t with = diff - borrow;
		borrow = b1 | (diff < borrow);
		s->w[i] = with;
	}
}

void sl_item_sum_from_bytes(sl_item_sum *s, const uint8_t in[SL_ITEM_ID_LEN])
{
	for (int i = 0; i < 4; i++)
		s->w[i] = le64_get(in + 8 * i);
}

void sl_item_sum_to_bytes(uint8_t out[SL_ITEM_ID_LEN], const sl_item_sum *s)
{
	for (int i = 0; i < 4; i++)
		le64_put(out + 8 * i, s->w[i]);
}

void sl_item_sum_add_id(sl_item_sum *s, const uint8_t id[SL_ITEM_ID_LEN])
{
	sl_item_sum other;
	sl_item_sum_from_bytes(&other, id);
	sl_item_sum_add(s, &other);
}

void sl_item_sum_sub_id(sl_item_sum *s, const uint8_t id[SL_ITEM_ID_LEN])
{
	sl_item_sum other;
	sl_item_sum_from_bytes(&other, id);
	sl_item_sum_sub(s, &other);
}

void sl_item_sum_fingerprint(uint8_t out[SL_FINGERPRINT_LEN], const sl_item_sum *s, uint64_t count)
{
	/* The count is a negentropy varint: base 128, most significant
	 * digit first (reconcile.c writes the same form). */
	uint8_t input[SL_ITEM_ID_LEN + 10], digits[10];
	size_t n = 0, len = SL_ITEM_ID_LEN;
	sl_digest d;

	sl_item_sum_to_bytes(input, s);
	do {
		digits[n++] = (uint8_t)(count & 0x7f);
		count >>= 7;
	} while (count);
	while (n > 0) {
		n--;
		input[len++] = (uint8_t)(digits[n] | (n > 0 ? 0x80 : 0));
	}
	sl_sha256(&d, input, len);
	memcpy(out, d.bytes, SL_FINGERPRINT_LEN);
}

/* ------------------------------------------------------- in-memory set */

/* items[0, n_sealed) are sorted, with prefix sums; items[n_sealed, n) were
 * added since and wait for the next seal, which merges them in. */
struct sl_item_vec {
	sl_item *items;
	size_t n, cap, n_sealed;
	sl_item_sum *prefix; /* n_sealed + 1 */
	size_t prefix_cap;
};

int sl_item_vec_new(sl_item_vec **out)
{
	sl_item_vec *v = sl_calloc(1, sizeof(*v));
	if (!v)
		return SL_ENOMEM;
	if (!(v->prefix = sl_calloc(1, sizeof(*v->prefix)))) {
		sl_free(v);
		return SL_ENOMEM;
	}
	v->prefix_cap = 1;
	*out = v;
	return SL_OK;
}

void sl_item_vec_free(sl_item_vec *v)
{
	if (!v)
		return;
	sl_free(v->items);
	sl_free(v->prefix);
	sl_free(v);
}

int sl_item_vec_add(sl_item_vec *v, uint64_t ts, const uint8_t id[SL_ITEM_ID_LEN])
{
	sl_item *grown;
	if (ts == SL_ITEM_TS_INFINITY)
		return sl_error_set(SL_EINVAL, "an item may not use the largest timestamp");
	if (!(grown = sl_grow(v->items, &v->cap, v->n, sizeof(*v->items), 64)))
		return SL_ENOMEM;
	v->items = grown;
	v->items[v->n].ts = ts;
	memcpy(v->items[v->n].id, id, SL_ITEM_ID_LEN);
	v->n++;
	return SL_OK;
}

static int cmp_items(const void *a, const void *b)
{
	return sl_item_cmp(a, b);
}

/* The first sealed index whose item is not below bound. */
static size_t sealed_lower_bound(const sl_item_vec *v, const sl_item *bound)
{
	size_t lo = 0, hi = v->n_sealed;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sl_item_cmp(&v->items[mid], bound) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Sorts the items added since the last seal and merges them into the
 * sealed ones from the back, then brings the prefix sums up to date from
 * the first index that moved: O(n) for a few new items among many. On
 * any error the items added since are dropped. */
void sl_item_vec_discard(sl_item_vec *v)
{
	v->n = v->n_sealed;
}

int sl_item_vec_seal(sl_item_vec *v)
{
	size_t m = v->n - v->n_sealed, first, i, j, k;
	sl_item *pending = v->items + v->n_sealed, *copy;
	sl_item_sum *prefix;

	if (m == 0)
		return SL_OK;
	qsort(pending, m, sizeof(*pending), cmp_items);
	for (i = 0; i < m; i++) {
		size_t at = sealed_lower_bound(v, &pending[i]);
		if ((i > 0 && sl_item_cmp(&pending[i - 1], &pending[i]) == 0) ||
		    (at < v->n_sealed && sl_item_cmp(&v->items[at], &pending[i]) == 0)) {
			sl_item_vec_discard(v); /* back to the set as last sealed */
			return sl_error_set(SL_EINVAL, "item set holds the same item twice");
		}
	}
	if (v->prefix_cap < v->n + 1) {
		size_t cap = v->n + 1 > 2 * v->prefix_cap ? v->n + 1 : 2 * v->prefix_cap;
		if (!(prefix = sl_realloc(v->prefix, cap * sizeof(*prefix)))) {
			sl_item_vec_discard(v);
			return SL_ENOMEM;
		}
		v->prefix = prefix;
		v->prefix_cap = cap;
	}
	if (!(copy = sl_malloc(m * sizeof(*copy)))) {
		sl_item_vec_discard(v);
		return SL_ENOMEM;
	}
	memcpy(copy, pending, m * sizeof(*copy));
	first = sealed_lower_bound(v, &copy[0]);
	i = v->n_sealed; /* items[first, i) and copy[0, j) are left to place */
	j = m;
	k = v->n;
	while (j > 0) {
		if (i > first && sl_item_cmp(&v->items[i - 1], &copy[j - 1]) > 0)
			v->items[--k] = v->items[--i];
		else
			v->items[--k] = copy[--j];
	}
	sl_free(copy);
	for (i = first; i < v->n; i++) {
		v->prefix[i + 1] = v->prefix[i];
		sl_item_sum_add_id(&v->prefix[i + 1], v->items[i].id);
	}
	v->n_sealed = v->n;
	return SL_OK;
}

size_t sl_item_vec_count(const sl_item_vec *v)
{
	return v->n;
}

const sl_item *sl_item_vec_items(const sl_item_vec *v)
{
	return v->items;
}

static int vec_check(const sl_item_vec *v, uint64_t begin, uint64_t end)
{
	if (v->n_sealed != v->n)
		return sl_error_set(SL_EINVAL, "item set has items added since it was sealed");
	if (begin > end || end > v->n)
		return sl_error_set(SL_EINVAL, "item range [%llu, %llu) is outside the set of %zu",
		                    (unsigned long long)begin, (unsigned long long)end, v->n);
	return SL_OK;
}

static int vec_count(void *ctx, uint64_t *out)
{
	sl_item_vec *v = ctx;
	int rc = vec_check(v, 0, 0);
	if (rc == SL_OK)
		*out = v->n;
	return rc;
}

static int vec_get(void *ctx, uint64_t index, sl_item *out)
{
	sl_item_vec *v = ctx;
	int rc = vec_check(v, index, index + 1);
	if (rc == SL_OK)
		*out = v->items[index];
	return rc;
}

static int vec_lower_bound(void *ctx, uint64_t begin, const sl_item *bound, uint64_t *out)
{
	sl_item_vec *v = ctx;
	uint64_t lo = begin, hi = v->n;
	int rc = vec_check(v, begin, v->n);
	if (rc != SL_OK)
		return rc;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (sl_item_cmp(&v->items[mid], bound) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*out = lo;
	return SL_OK;
}

static int vec_sum(void *ctx, uint64_t begin, uint64_t end, sl_item_sum *out)
{
	sl_item_vec *v = ctx;
	int rc = vec_check(v, begin, end);
	if (rc != SL_OK)
		return rc;
	*out = v->prefix[end];
	sl_item_sum_sub(out, &v->prefix[begin]);
	return SL_OK;
}

static int vec_each(void *ctx, uint64_t begin, uint64_t end, sl_item_fn fn, void *fn_ctx)
{
	sl_item_vec *v = ctx;
	int rc = vec_check(v, begin, end);
	for (uint64_t i = begin; rc == SL_OK && i < end; i++) {
		rc = fn(fn_ctx, i, &v->items[i]);
		if (rc > 0)
			return SL_OK;
	}
	return rc;
}

static const sl_item_set_ops vec_ops = {vec_count, vec_get, vec_lower_bound, vec_sum, vec_each};

sl_item_set sl_item_vec_set(sl_item_vec *v)
{
	sl_item_set set = {&vec_ops, v};
	return set;
}
