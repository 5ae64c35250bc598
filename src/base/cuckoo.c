/*
 * Cuckoo filter: an approximate set of keys that supports removal, built
 * on partial-key cuckoo hashing (the CoNEXT 2014 design).
 *
 * Layout. n_buckets buckets (a power of two, 1 .. 2^32) of 4 slots; a slot
 * holds a fingerprint of fp_bits (12 or 16) bits, 0 meaning empty. Slots
 * are uint16_t in both widths: memory is 16 bits per slot (8 bytes per
 * bucket) and the snapshot stores 2 bytes per slot either way; the width
 * only sets the false-positive rate.
 *
 * Hashing. A key is hashed once with a fast 64-bit hash (8-byte words read
 * little-endian, each scrambled by multiply-rotate-multiply and folded into
 * the state, then a 64-bit finalizer; the same value on every platform,
 * which the snapshot relies on). From that value h:
 *   i1 = h & (n_buckets - 1)                       (low 32 bits at most)
 *   fp = 1 + (((h >> 32) * (2^fp_bits - 1)) >> 32)  (high 32 bits, 1 .. 2^fp_bits - 1)
 *   d  = mix(fp) & (n_buckets - 1), or 1 if that is 0 and n_buckets > 1
 *   i2 = i1 ^ d                                    (partial-key cuckoo hashing)
 * Because d depends only on fp, and xor is its own inverse, a fingerprint
 * sitting in either bucket can find the other one without the key:
 * alt(alt(i, fp), fp) = i. d is never 0 with two buckets or more, so a key
 * always has two distinct buckets (in small filters a zero d would confine
 * 1 key in n_buckets to a single bucket). With one bucket both are 0.
 * Changing any of these derivations invalidates saved snapshots and needs
 * a new magic.
 *
 * Operations. add puts fp in an empty slot of i1 or i2. If both are full
 * it looks one step ahead: can a fingerprint of i1 or i2 move to an empty
 * slot of its other bucket, making room? If not, it walks: swap fp with a
 * random slot of one bucket, carry the evicted fingerprint to its other
 * bucket, try to place it there (again with one step of look-ahead), and
 * so on, at most MAX_KICKS swaps. The walk records each (bucket, slot) it
 * swapped; if it ends without a place, the swaps are replayed in reverse,
 * which restores every slot, and add fails with SL_ETOOLARGE. The
 * look-ahead only writes when it succeeds. With it, a filter of 2^10 to
 * 2^24 buckets first refuses an add at about 96.5-97.5% load (without it,
 * about 95.3-96%, too close to the 95% that sl_cuckoo_new sizes for).
 * contains looks for fp in i1 and i2; remove clears one copy of fp from
 * i1, else from i2.
 *
 * Invariants.
 *   1. Every stored fingerprint is non-zero, below 2^fp_bits, and sits in
 *      one of the two buckets of the key it came from (kicks move it only
 *      between those two).
 *   2. count is the number of non-empty slots.
 *   3. No false negatives: while a key is added and not removed, one of its
 *      fingerprints is in i1 or i2 (from 1), so contains answers 1. This
 *      holds only while callers remove keys they added: removing an absent
 *      key whose fingerprint collides deletes another key's copy.
 *   4. A failed add changes no slot and no count (the undo above); only the
 *      private random state used to pick victims moves on.
 * False positives: an absent key matches when one of the at most 8 slots
 * of its buckets holds its fingerprint: at most 8 * load / (2^fp_bits - 1),
 * which stays under sl_cuckoo_fp_bound() = 8 / 2^fp_bits below 99.9% load.
 *
 * Snapshot format, version 01 (all integers big-endian):
 *
 *   offset      size  field
 *   0           8     magic, the ASCII bytes "SLCKOO01" (the last two
 *                     digits are the format version)
 *   8           1     fp_bits: 12 or 16
 *   9           8     n_buckets: a power of two, 1 <= n_buckets <= 2^32
 *   17          8     count: the number of non-empty slots
 *   25          8 * n_buckets
 *                     the slots, bucket 0 first, 4 per bucket, each a
 *                     2-byte fingerprint (0 = empty, < 2^fp_bits)
 *   25 + 8n     4     CRC-32C (sl_crc32c(0, ...)) of bytes [0, 25 + 8n)
 *
 *   total length: 29 + 8 * n_buckets bytes.
 *
 * load accepts exactly this: any other magic, fp_bits or bucket count, a
 * length other than the total, a fingerprint of fp_bits or more bits, a
 * count that differs from the non-empty slots, or a checksum mismatch is
 * refused with SL_ECORRUPT. The length is checked before anything is
 * allocated, so a snapshot never makes load allocate more than its own
 * size. A snapshot saved and loaded again answers every query the same.
 */
#include <string.h>

#include "sluice/base.h"

#define SLOTS_PER_BUCKET 4
#define MAX_KICKS        500
#define MAX_BUCKETS      (UINT64_C(1) << 32)
/* capacity keys at 95% load need capacity * 100 / (4 * 95) buckets; this
 * many keys fill MAX_BUCKETS. */
#define MAX_CAPACITY (MAX_BUCKETS * 19 / 5)

#define SNAP_MAGIC     "SLCKOO01"
#define SNAP_MAGIC_LEN 8
#define SNAP_HEADER    (SNAP_MAGIC_LEN + 1 + 8 + 8)
#define SNAP_CRC_LEN   4
#define SLOT_BYTES     2

/* The victim picker's starting state (any non-zero value): fixed, so the
 * same operations always give the same filter. */
#define RNG_SEED UINT64_C(0x2545f4914f6cdd1d)

struct sl_cuckoo {
	uint16_t *slots;    /* n_buckets * 4, slot j of bucket b at b * 4 + j */
	uint64_t n_buckets; /* a power of two */
	uint64_t mask;      /* n_buckets - 1 */
	uint64_t count;     /* non-empty slots */
	uint64_t rng;       /* xorshift64 state for picking victims */
	unsigned fp_bits;   /* 12 or 16 */
};

/* ------------------------------------------------------------- hashing */

#define HASH_M1   UINT64_C(0x87c37b91114253d5)
#define HASH_M2   UINT64_C(0x4cf5ad432745937f)
#define HASH_SEED UINT64_C(0x6a09e667f3bcc908)

static uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

/* A murmur-style 64-bit finalizer: every input bit affects every output
 * bit. A bijection, so fmix64(x) == 0 only for x == 0. */
static uint64_t fmix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t scramble(uint64_t word)
{
	return rotl64(word * HASH_M1, 31) * HASH_M2;
}

static uint64_t key_hash(const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t h = HASH_SEED ^ ((uint64_t)len * HASH_M2);
	uint64_t tail = 0;

	while (len >= 8) {
		h = rotl64(h ^ scramble(load_le64(p)), 27) * 5 + UINT64_C(0x52dce729);
		p += 8;
		len -= 8;
	}
	for (size_t i = 0; i < len; i++)
		tail |= (uint64_t)p[i] << (8 * i);
	h ^= scramble(tail);
	return fmix64(h);
}

static uint16_t fingerprint(const sl_cuckoo *f, uint64_t h)
{
	uint64_t range = (UINT64_C(1) << f->fp_bits) - 1;
	return (uint16_t)(1 + (((h >> 32) * range) >> 32));
}

/* The distance (by xor) between a fingerprint's two buckets; never 0 when
 * there are two buckets or more, so every key has two distinct buckets. */
static uint64_t alt_bucket(const sl_cuckoo *f, uint64_t bucket, uint16_t fp)
{
	uint64_t distance = fmix64(fp) & f->mask;
	if (distance == 0)
		distance = f->mask & 1;
	return bucket ^ distance;
}

/* ------------------------------------------------------------- buckets */

static uint16_t *bucket_slots(const sl_cuckoo *f, uint64_t bucket)
{
	return f->slots + bucket * SLOTS_PER_BUCKET;
}

static int bucket_has(const sl_cuckoo *f, uint64_t bucket, uint16_t fp)
{
	const uint16_t *s = bucket_slots(f, bucket);
	return s[0] == fp || s[1] == fp || s[2] == fp || s[3] == fp;
}

/* Put fp in an empty slot of the bucket: 1, or 0 when it is full. */
static int bucket_put(sl_cuckoo *f, uint64_t bucket, uint16_t fp)
{
	uint16_t *s = bucket_slots(f, bucket);
	for (int j = 0; j < SLOTS_PER_BUCKET; j++) {
		if (s[j] == 0) {
			s[j] = fp;
			return 1;
		}
	}
	return 0;
}

/* Clear one copy of fp from the bucket: 1, or 0 when it holds none. */
static int bucket_take(sl_cuckoo *f, uint64_t bucket, uint16_t fp)
{
	uint16_t *s = bucket_slots(f, bucket);
	for (int j = 0; j < SLOTS_PER_BUCKET; j++) {
		if (s[j] == fp) {
			s[j] = 0;
			return 1;
		}
	}
	return 0;
}

/* In a full bucket, move one fingerprint to an empty slot of its other
 * bucket and put fp in its place: 1, or 0 (nothing changed) when every
 * other bucket is full too. One step of look-ahead makes each kick of the
 * random walk count for more, so the same kick budget reaches higher
 * loads. */
static int make_room(sl_cuckoo *f, uint64_t bucket, uint16_t fp)
{
	uint16_t *s = bucket_slots(f, bucket);
	for (int j = 0; j < SLOTS_PER_BUCKET; j++) {
		uint64_t other = alt_bucket(f, bucket, s[j]);
		if (other != bucket && bucket_put(f, other, s[j])) {
			s[j] = fp;
			return 1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ lifetime */

/* A filter of n_buckets empty buckets; the caller has checked n_buckets. */
static int alloc_filter(sl_cuckoo **out, uint64_t n_buckets, unsigned fp_bits)
{
	sl_cuckoo *f;

	if (n_buckets > SIZE_MAX / (SLOTS_PER_BUCKET * sizeof(uint16_t)))
		return sl_error_set(SL_ETOOLARGE,
		                    "cuckoo filter of %llu buckets does not fit in memory here",
		                    (unsigned long long)n_buckets);
	f = sl_calloc(1, sizeof(*f));
	if (!f)
		return SL_ENOMEM;
	f->slots = sl_calloc((size_t)n_buckets * SLOTS_PER_BUCKET, sizeof(uint16_t));
	if (!f->slots) {
		sl_free(f);
		return SL_ENOMEM;
	}
	f->n_buckets = n_buckets;
	f->mask = n_buckets - 1;
	f->fp_bits = fp_bits;
	f->rng = RNG_SEED;
	*out = f;
	return SL_OK;
}

int sl_cuckoo_new(sl_cuckoo **out, uint64_t capacity, unsigned fp_bits)
{
	uint64_t min_buckets, n_buckets = 1;

	if (!out)
		return sl_error_set(SL_EINVAL, "cuckoo filter: no output pointer");
	if (fp_bits != 12 && fp_bits != 16)
		return sl_error_set(SL_EINVAL,
		                    "cuckoo filter: fingerprints of %u bits, want 12 or 16",
		                    fp_bits);
	if (capacity > MAX_CAPACITY)
		return sl_error_set(SL_ETOOLARGE,
		                    "cuckoo filter: capacity of %llu keys, the most is %llu",
		                    (unsigned long long)capacity, (unsigned long long)MAX_CAPACITY);
	/* ceil(capacity / (4 * 0.95)) */
	min_buckets = (capacity * 5 + 18) / 19;
	while (n_buckets < min_buckets)
		n_buckets <<= 1;
	return alloc_filter(out, n_buckets, fp_bits);
}

void sl_cuckoo_free(sl_cuckoo *f)
{
	if (!f)
		return;
	sl_free(f->slots);
	sl_free(f);
}

/* ---------------------------------------------------------- operations */

int sl_cuckoo_add(sl_cuckoo *f, const void *key, size_t len)
{
	uint64_t path_bucket[MAX_KICKS];
	uint8_t path_slot[MAX_KICKS];
	uint64_t h, i1, i2, bucket;
	uint16_t fp, carried;
	int kicks;

	if (!f || (!key && len > 0))
		return sl_error_set(SL_EINVAL, "cuckoo filter: add needs a filter and a key");
	h = key_hash(key, len);
	fp = fingerprint(f, h);
	i1 = h & f->mask;
	i2 = alt_bucket(f, i1, fp);
	if (bucket_put(f, i1, fp) || bucket_put(f, i2, fp))
		goto added;
	if (f->count == f->n_buckets * SLOTS_PER_BUCKET)
		goto full;

	if (make_room(f, i1, fp) || make_room(f, i2, fp))
		goto added;

	carried = fp;
	bucket = (sl_xorshift64(&f->rng) & 1) ? i2 : i1;
	for (kicks = 0; kicks < MAX_KICKS; kicks++) {
		unsigned j = (unsigned)(sl_xorshift64(&f->rng) % SLOTS_PER_BUCKET);
		uint16_t *slot = &bucket_slots(f, bucket)[j];
		uint16_t evicted = *slot;

		*slot = carried;
		carried = evicted;
		path_bucket[kicks] = bucket;
		path_slot[kicks] = (uint8_t)j;
		bucket = alt_bucket(f, bucket, carried);
		if (bucket_put(f, bucket, carried) || make_room(f, bucket, carried))
			goto added;
	}
	/* Every step swapped `carried` with one slot; the same swaps in
	 * reverse order put every fingerprint back where it was. */
	while (kicks-- > 0) {
		uint16_t *slot = &bucket_slots(f, path_bucket[kicks])[path_slot[kicks]];
		uint16_t held = *slot;

		*slot = carried;
		carried = held;
	}
	if (carried != fp)
		return sl_error_set(SL_EINTERNAL, "cuckoo filter: undoing a failed add went wrong");
full:
	return sl_error_set(
	        SL_ETOOLARGE,
	        "cuckoo filter is full: %llu of %llu slots used, no room after %d moves",
	        (unsigned long long)f->count, (unsigned long long)(f->n_buckets * SLOTS_PER_BUCKET),
	        MAX_KICKS);
added:
	f->count++;
	return SL_OK;
}

int sl_cuckoo_contains(const sl_cuckoo *f, const void *key, size_t len)
{
	uint64_t h, i1;
	uint16_t fp;

	if (!f || (!key && len > 0))
		return 0; /* such a key was never added */
	h = key_hash(key, len);
	fp = fingerprint(f, h);
	i1 = h & f->mask;
	return bucket_has(f, i1, fp) || bucket_has(f, alt_bucket(f, i1, fp), fp);
}

int sl_cuckoo_remove(sl_cuckoo *f, const void *key, size_t len)
{
	uint64_t h, i1;
	uint16_t fp;

	if (!f || (!key && len > 0))
		return 0;
	h = key_hash(key, len);
	fp = fingerprint(f, h);
	i1 = h & f->mask;
	if (bucket_take(f, i1, fp) || bucket_take(f, alt_bucket(f, i1, fp), fp)) {
		f->count--;
		return 1;
	}
	return 0;
}

uint64_t sl_cuckoo_count(const sl_cuckoo *f)
{
	return f ? f->count : 0;
}

uint64_t sl_cuckoo_capacity(const sl_cuckoo *f)
{
	return f ? f->n_buckets * SLOTS_PER_BUCKET : 0;
}

double sl_cuckoo_fp_bound(const sl_cuckoo *f)
{
	if (!f)
		return 0.0;
	return 2.0 * SLOTS_PER_BUCKET / (double)(UINT64_C(1) << f->fp_bits);
}

/* ----------------------------------------------------------- snapshots */

int sl_cuckoo_save(const sl_cuckoo *f, sl_buf *out)
{
	uint8_t header[SNAP_HEADER];
	uint64_t n_slots;
	size_t start, total;
	int rc;

	if (!f || !out)
		return sl_error_set(SL_EINVAL, "cuckoo filter: save needs a filter and a buffer");
	n_slots = f->n_buckets * SLOTS_PER_BUCKET;
	/* alloc_filter made sure n_slots * 2 fits in a size_t; the header
	 * and checksum might not. */
	if (n_slots * SLOT_BYTES > SIZE_MAX - SNAP_HEADER - SNAP_CRC_LEN)
		return sl_error_set(SL_ETOOLARGE, "cuckoo filter snapshot does not fit in memory");
	total = SNAP_HEADER + (size_t)n_slots * SLOT_BYTES + SNAP_CRC_LEN;
	/* Reserve everything first so a failure leaves out unchanged. */
	rc = sl_buf_reserve(out, total);
	if (rc != SL_OK)
		return sl_error_wrap("cuckoo filter snapshot of %zu bytes", total);

	start = out->len;
	memcpy(header, SNAP_MAGIC, SNAP_MAGIC_LEN);
	header[SNAP_MAGIC_LEN] = (uint8_t)f->fp_bits;
	sl_be64_put(header + SNAP_MAGIC_LEN + 1, f->n_buckets);
	sl_be64_put(header + SNAP_MAGIC_LEN + 9, f->count);
	memcpy(out->data + out->len, header, SNAP_HEADER);
	out->len += SNAP_HEADER;
	for (uint64_t i = 0; i < n_slots; i++) {
		out->data[out->len++] = (uint8_t)(f->slots[i] >> 8);
		out->data[out->len++] = (uint8_t)f->slots[i];
	}
	sl_be32_put(out->data + out->len, sl_crc32c(0, out->data + start, out->len - start));
	out->len += SNAP_CRC_LEN;
	out->data[out->len] = '\0'; /* sl_buf keeps a NUL after the data */
	return SL_OK;
}

int sl_cuckoo_load(sl_cuckoo **out, const uint8_t *data, size_t len)
{
	sl_reader r;
	const uint8_t *magic, *slot_bytes, *stored_crc;
	uint8_t fp_bits;
	uint64_t n_buckets, count, n_slots, non_empty = 0;
	uint32_t crc;
	uint16_t fp_limit;
	sl_cuckoo *f = NULL;
	int rc;

	if (!out || (!data && len > 0))
		return sl_error_set(SL_EINVAL, "cuckoo filter: load needs an output and data");
	sl_reader_init(&r, data, len);
	rc = sl_reader_bytes(&r, SNAP_MAGIC_LEN, &magic);
	if (rc == SL_OK && memcmp(magic, SNAP_MAGIC, SNAP_MAGIC_LEN) != 0)
		rc = sl_error_set(SL_ECORRUPT, "bad magic, want %s", SNAP_MAGIC);
	if (rc == SL_OK)
		rc = sl_reader_u8(&r, &fp_bits);
	if (rc == SL_OK && fp_bits != 12 && fp_bits != 16)
		rc = sl_error_set(SL_ECORRUPT, "fingerprints of %u bits, want 12 or 16",
		                  (unsigned)fp_bits);
	if (rc == SL_OK)
		rc = sl_reader_be64(&r, &n_buckets);
	if (rc == SL_OK &&
	    (n_buckets == 0 || n_buckets > MAX_BUCKETS || (n_buckets & (n_buckets - 1)) != 0))
		rc = sl_error_set(SL_ECORRUPT, "%llu buckets, want a power of two from 1 to 2^32",
		                  (unsigned long long)n_buckets);
	if (rc == SL_OK)
		rc = sl_reader_be64(&r, &count);
	if (rc != SL_OK)
		return sl_error_wrap("cuckoo filter snapshot header");

	/* n_slots * 2 <= 2^35: no overflow in 64 bits. */
	n_slots = n_buckets * SLOTS_PER_BUCKET;
	if ((uint64_t)sl_reader_remaining(&r) != n_slots * SLOT_BYTES + SNAP_CRC_LEN)
		return sl_error_set(
		        SL_ECORRUPT,
		        "cuckoo filter snapshot is %zu bytes; with n_buckets %llu it "
		        "must be %llu",
		        len, (unsigned long long)n_buckets,
		        (unsigned long long)(SNAP_HEADER + n_slots * SLOT_BYTES + SNAP_CRC_LEN));
	/* The length matched, so the slots are in memory and fit a size_t. */
	if (sl_reader_bytes(&r, (size_t)n_slots * SLOT_BYTES, &slot_bytes) != SL_OK ||
	    sl_reader_bytes(&r, SNAP_CRC_LEN, &stored_crc) != SL_OK)
		return sl_error_set(SL_EINTERNAL, "cuckoo filter snapshot: length check failed");
	crc = sl_crc32c(0, data, len - SNAP_CRC_LEN);
	if (crc != sl_be32_get(stored_crc))
		return sl_error_set(SL_ECORRUPT,
		                    "cuckoo filter snapshot checksum mismatch: stored %08x, "
		                    "computed %08x",
		                    sl_be32_get(stored_crc), crc);

	fp_limit = (uint16_t)((UINT32_C(1) << fp_bits) - 1);
	for (uint64_t i = 0; i < n_slots; i++) {
		uint16_t fp = (uint16_t)(slot_bytes[2 * i] << 8 | slot_bytes[2 * i + 1]);
		if (fp > fp_limit)
			return sl_error_set(SL_ECORRUPT,
			                    "cuckoo filter snapshot: slot %llu holds %u, more than "
			                    "%u bits",
			                    (unsigned long long)i, (unsigned)fp, (unsigned)fp_bits);
		non_empty += fp != 0;
	}
	if (non_empty != count)
		return sl_error_set(
		        SL_ECORRUPT,
		        "cuckoo filter snapshot: count says %llu fingerprints, the slots hold "
		        "%llu",
		        (unsigned long long)count, (unsigned long long)non_empty);

	rc = alloc_filter(&f, n_buckets, fp_bits);
	if (rc != SL_OK)
		return rc;
	for (uint64_t i = 0; i < n_slots; i++)
		f->slots[i] = (uint16_t)(slot_bytes[2 * i] << 8 | slot_bytes[2 * i + 1]);
	f->count = count;
	*out = f;
	return SL_OK;
}
