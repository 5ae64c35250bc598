/*
 * Sorting many byte strings: by a 64-bit big-endian prefix with a radix
 * sort, then by the caller's comparison only among equal prefixes.
 *
 * A flush sorts up to state_flush_ops overlay keys, and then as many item
 * ids; qsort over pointers compared with memcmp took a tenth of a commit
 * that flushes, most of it cache misses following the pointers. Keys and
 * ids mostly differ in their first eight bytes (ids are hashes), so four
 * passes over (prefix, pointer) pairs order nearly everything, and the
 * rare runs of equal prefixes are finished by the comparison.
 */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

#define RADIX_BITS 8
#define RADIX_SIZE (1u << RADIX_BITS)
#define SMALL      32 /* runs this short are insertion-sorted */

typedef int (*tie_fn)(const void *, const void *);

static int cmp_ref(const prefix_ref *x, const prefix_ref *y, tie_fn tie)
{
	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return tie(x->ptr, y->ptr);
}

/* A stable merge sort by (prefix, tie), tmp holding n entries. The
 * comparison is passed down, not kept in a global: handles of different
 * threads sort at the same time. */
static void merge_sort(prefix_ref *a, size_t n, prefix_ref *tmp, tie_fn tie)
{
	if (n <= SMALL) {
		for (size_t i = 1; i < n; i++) {
			prefix_ref x = a[i];
			size_t j = i;
			for (; j > 0 && cmp_ref(&a[j - 1], &x, tie) > 0; j--)
				a[j] = a[j - 1];
			a[j] = x;
		}
		return;
	}
	size_t half = n / 2, i = 0, j = half, k = 0;
	merge_sort(a, half, tmp, tie);
	merge_sort(a + half, n - half, tmp, tie);
	if (cmp_ref(&a[half - 1], &a[half], tie) <= 0)
		return; /* already in order */
	while (i < half && j < n)
		tmp[k++] = cmp_ref(&a[j], &a[i], tie) < 0 ? a[j++] : a[i++];
	while (i < half)
		tmp[k++] = a[i++];
	memcpy(a, tmp, k * sizeof(*a)); /* the rest of the right half is in place */
}

uint64_t prefix_of(const void *bytes, size_t len)
{
	uint8_t buf[8] = {0};
	memcpy(buf, bytes, len < 8 ? len : 8);
	return sl_be64_get(buf);
}

int prefix_sort(prefix_ref *refs, size_t n, int (*tie)(const void *, const void *))
{
	prefix_ref *tmp, *src = refs, *dst;
	size_t count[RADIX_SIZE];

	if (n < 2)
		return SL_OK;
	if (!(tmp = sl_malloc(n * sizeof(*tmp))))
		return SL_ENOMEM;
	if (n <= SMALL) {
		merge_sort(refs, n, tmp, tie);
		sl_free(tmp);
		return SL_OK;
	}
	/* Least significant digit first; each pass is stable, and a digit all
	 * entries share is passed over. */
	dst = tmp;
	for (unsigned shift = 0; shift < 64; shift += RADIX_BITS) {
		size_t sum = 0, first = (src[0].prefix >> shift) & (RADIX_SIZE - 1);
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[(src[i].prefix >> shift) & (RADIX_SIZE - 1)]++;
		if (count[first] == n)
			continue;
		for (size_t d = 0; d < RADIX_SIZE; d++) {
			size_t c = count[d];
			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i].prefix >> shift) & (RADIX_SIZE - 1)]++] = src[i];
		prefix_ref *t = src;
		src = dst;
		dst = t;
	}
	if (src != refs)
		memcpy(refs, src, n * sizeof(*refs));
	/* Runs of equal prefixes, in the caller's order. */
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && refs[j].prefix == refs[i].prefix)
			j++;
		if (j - i > 1)
			merge_sort(refs + i, j - i, tmp, tie);
		i = j;
	}
	sl_free(tmp);
	return SL_OK;
}
