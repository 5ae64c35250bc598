/* L1, the engine's in-memory table (l1.h has the contract).
 *
 * Invariants:
 *   L1  A dirty entry (pending_lsn > 0) is never removed by l1_shrink: it
 *       holds the newest version of its key, which L3 does not have yet.
 *   L2  A dirty entry's value is released only when its WAL record is
 *       synced, so it can always be read back from the WAL.
 *   L3  bytes and dirty_bytes are the sums over the shard's entries, as
 *       entry_bytes() counts them (pinned_bytes: without the values);
 *       budget is the shard's share.
 */
#include <string.h>

#include "engine/l1.h"

#define MIN_BUCKETS    64
#define SAMPLES        5  /* entries looked at per eviction */
#define FRUITLESS_MAX  16 /* samplings in a row that freed nothing: stop */
#define SAMPLE_BUCKETS 64 /* empty buckets skipped at most to find one entry */

struct l1 {
	l1_shard *shards;
	unsigned n_shards; /* a power of two */
};

uint64_t l1_hash(const char *key, size_t len)
{
	/* FNV-1a, then a 64-bit finaliser so the low bits mix well. */
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * UINT64_C(0x100000001b3);
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

static uint64_t entry_bytes(const l1_entry *e)
{
	return sizeof(*e) + e->key_len + (e->value ? e->value_len : 0);
}

int l1_new(l1 **out, unsigned shards, uint64_t budget)
{
	if (shards == 0 || (shards & (shards - 1)) != 0 || shards > 65536)
		return sl_error_set(SL_EINVAL,
		                    "L1 shards must be a power of two up to 65536, not %u", shards);
	l1 *t = sl_calloc(1, sizeof(*t));
	if (t == NULL)
		return SL_ENOMEM;
	t->n_shards = shards;
	if ((t->shards = sl_calloc(shards, sizeof(*t->shards))) == NULL) {
		sl_free(t);
		return SL_ENOMEM;
	}
	for (unsigned i = 0; i < shards; i++) {
		l1_shard *s = &t->shards[i];
		pthread_mutex_init(&s->lock, NULL);
		s->budget = budget / shards;
		s->rng = UINT64_C(0x9e3779b97f4a7c15) * (i + 1);
		s->table = t;
		s->n_buckets = MIN_BUCKETS;
		if ((s->buckets = sl_calloc(MIN_BUCKETS, sizeof(*s->buckets))) == NULL) {
			l1_free(t);
			return SL_ENOMEM;
		}
	}
	*out = t;
	return SL_OK;
}

void l1_free(l1 *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; t->shards && i < t->n_shards; i++) {
		l1_shard *s = &t->shards[i];
		for (size_t b = 0; s->buckets && b < s->n_buckets; b++) {
			l1_entry *e = s->buckets[b];
			while (e) {
				l1_entry *next = e->next;
				sl_free(e->value);
				sl_free(e);
				e = next;
			}
		}
		sl_free(s->buckets);
		pthread_mutex_destroy(&s->lock);
	}
	sl_free(t->shards);
	sl_free(t);
}

l1_shard *l1_shard_of(l1 *t, uint64_t hash)
{
	/* the top bits pick the shard, the low bits the bucket */
	return &t->shards[(hash >> 48) & (t->n_shards - 1)];
}

void l1_lock(l1_shard *s)
{
	pthread_mutex_lock(&s->lock);
}

void l1_unlock(l1_shard *s)
{
	pthread_mutex_unlock(&s->lock);
}

l1_entry *l1_find(l1_shard *s, const char *key, size_t len, uint64_t hash)
{
	for (l1_entry *e = s->buckets[hash & (s->n_buckets - 1)]; e; e = e->next)
		if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0) {
			e->tick = ++s->clock;
			return e;
		}
	return NULL;
}

static void grow(l1_shard *s)
{
	size_t n = s->n_buckets * 2;
	l1_entry **b = sl_calloc(n, sizeof(*b));
	if (b == NULL) {
		sl_error_clear(); /* longer chains, still correct */
		return;
	}
	for (size_t i = 0; i < s->n_buckets; i++) {
		l1_entry *e = s->buckets[i];
		while (e) {
			l1_entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	sl_free(s->buckets);
	s->buckets = b;
	s->n_buckets = n;
}

static void account(l1_shard *s, const l1_entry *e, int sign)
{
	uint64_t n = entry_bytes(e), meta = sizeof(*e) + e->key_len;
	if (sign > 0) {
		s->bytes += n;
		if (e->pending_lsn) {
			s->dirty_bytes += n;
			s->pinned_bytes += meta;
		}
	} else {
		s->bytes -= n;
		if (e->pending_lsn) {
			s->dirty_bytes -= n;
			s->pinned_bytes -= meta;
		}
	}
}

/* Sets e's version and value (copied first, so a failure changes nothing). */
static int set_value(l1_shard *s, l1_entry *e, uint64_t version, const void *value,
                     size_t value_len, int deleted)
{
	uint8_t *copy = NULL;
	if (!deleted) {
		if ((copy = sl_malloc(value_len ? value_len : 1)) == NULL)
			return SL_ENOMEM;
		if (value_len)
			memcpy(copy, value, value_len);
	}
	account(s, e, -1);
	sl_free(e->value);
	e->value = copy;
	e->value_len = deleted ? 0 : value_len;
	e->deleted = (uint8_t)(deleted != 0);
	e->version = version;
	return SL_OK;
}

static l1_entry *insert_new(l1_shard *s, const char *key, size_t len, uint64_t hash)
{
	l1_entry *e = sl_calloc(1, sizeof(*e) + len);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, len);
	e->key_len = (uint16_t)len;
	e->hash = hash;
	e->tick = ++s->clock;
	if (s->entries >= s->n_buckets)
		grow(s);
	l1_entry **b = &s->buckets[hash & (s->n_buckets - 1)];
	e->next = *b;
	*b = e;
	s->entries++;
	account(s, e, 1);
	return e;
}

int l1_put_dirty(l1_shard *s, const char *key, size_t len, uint64_t hash, uint64_t version,
                 const void *value, size_t value_len, int deleted, uint64_t lsn,
                 const sl_wal_loc *loc)
{
	l1_entry *e = l1_find(s, key, len, hash);
	int fresh = e == NULL;
	if (fresh && (e = insert_new(s, key, len, hash)) == NULL)
		return SL_ENOMEM;
	int rc = set_value(s, e, version, value, value_len, deleted);
	if (rc != SL_OK) { /* set_value changed nothing */
		if (fresh)
			l1_remove(s, e);
		return rc;
	}
	e->pending_lsn = lsn;
	e->loc = *loc;
	account(s, e, 1);
	return SL_OK;
}

int l1_put_clean(l1_shard *s, const char *key, size_t len, uint64_t hash, uint64_t version,
                 const void *value, size_t value_len, int deleted, uint64_t evictions)
{
	if (s->evictions != evictions || l1_find(s, key, len, hash) != NULL)
		return SL_OK;
	l1_entry *e = insert_new(s, key, len, hash);
	if (e == NULL)
		return SL_ENOMEM;
	int rc = set_value(s, e, version, value, value_len, deleted);
	if (rc != SL_OK) {
		l1_remove(s, e);
		return rc;
	}
	account(s, e, 1);
	return SL_OK;
}

void l1_mark_clean(l1_shard *s, l1_entry *e)
{
	if (e->pending_lsn == 0)
		return;
	s->dirty_bytes -= entry_bytes(e);
	s->pinned_bytes -= sizeof(*e) + e->key_len;
	e->pending_lsn = 0;
	if (e->value == NULL && !e->deleted) {
		/* released: L3 holds it now, so the entry itself can go */
		l1_remove(s, e);
	}
}

void l1_remove(l1_shard *s, l1_entry *e)
{
	l1_entry **p = &s->buckets[e->hash & (s->n_buckets - 1)];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	account(s, e, -1);
	s->entries--;
	s->evictions++; /* any removal: see l1_put_clean */
	sl_free(e->value);
	sl_free(e);
}

/* Some entry of the shard, at random (NULL when it is empty). */
static l1_entry *sample(l1_shard *s)
{
	size_t start = sl_xorshift64(&s->rng) & (s->n_buckets - 1);
	for (size_t i = 0; i < SAMPLE_BUCKETS; i++) {
		l1_entry *e = s->buckets[(start + i) & (s->n_buckets - 1)];
		if (e)
			return e;
	}
	return NULL;
}

void l1_shrink(l1_shard *s, uint64_t synced_lsn)
{
	int fruitless = 0;
	while (s->bytes > s->budget && s->entries > 0 && fruitless < FRUITLESS_MAX) {
		l1_entry *victim = NULL, *release = NULL;
		for (int i = 0; i < SAMPLES; i++) {
			l1_entry *e = sample(s);
			if (e == NULL)
				continue;
			if (e->pending_lsn == 0) {
				if (victim == NULL || e->tick < victim->tick)
					victim = e;
			} else if (e->value && e->value_len > 0 && e->pending_lsn <= synced_lsn &&
			           (release == NULL || e->value_len > release->value_len)) {
				release = e;
			}
		}
		if (victim) {
			l1_remove(s, victim);
			fruitless = 0;
		} else if (release) {
			account(s, release, -1);
			sl_free(release->value);
			release->value = NULL;
			account(s, release, 1);
			fruitless = 0;
		} else {
			fruitless++;
		}
	}
}

void l1_shrink_all(l1 *t, uint64_t synced_lsn)
{
	for (unsigned i = 0; i < t->n_shards; i++) {
		l1_shard *s = &t->shards[i];
		l1_lock(s);
		if (s->bytes > s->budget)
			l1_shrink(s, synced_lsn);
		l1_unlock(s);
	}
}

void l1_stats_get(l1 *t, l1_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < t->n_shards; i++) {
		l1_shard *s = &t->shards[i];
		l1_lock(s);
		out->entries += s->entries;
		out->bytes += s->bytes;
		out->dirty_bytes += s->dirty_bytes;
		out->pinned_bytes += s->pinned_bytes;
		out->budget += s->budget;
		l1_unlock(s);
	}
}
