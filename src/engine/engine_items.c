/*
 * The diff between engines: an engine's items over L3's live rows, the
 * answers of POST /api/v0/kv-reconcile and .../keys, and the initiator's
 * side (`sluice engine diff`), which is sl_state_diff's loop with this set
 * as its local side and the engine's endpoints as its peer.
 *
 * An item is (0, SHA-256(key || 0x00 || be64 version || SHA-256(value))):
 * two engines that hold a key with the same version and value hold the
 * same item. Versions are per engine, so engines share items only where
 * they share history (one L3 copied from the other, or rows written with
 * their versions).
 *
 * The set is built by keyset paging over the tier's scan_items into an
 * sl_item_vec (sorted by id, prefix sums: a fingerprint in O(1)) plus, in
 * the same order, where each item's key sits in one arena. It is kept
 * with L3's position() as read before the scan, and rebuilt only when the
 * position has moved, so a reconciliation of many round trips scans L3
 * once. Memory: SL_ENGINE_ITEM_COST bytes an item besides its key while
 * held, 40 more while built, capped by diff_max_bytes (SL_ETOOLARGE past
 * it). Versions and value digests are not held: an answer about an id
 * reads its row back from L3 and hashes it again, so what goes out is
 * what L3 holds now, and an id whose row changed since is answered as
 * missing.
 *
 * The set reads L3 through a tier handle of its own, never the engine's:
 * the drain keeps its handle, and a diff needs no WAL. Every call holds
 * the set's mutex, so HTTP threads share one set and one build.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "sluice/store.h"

#define SCAN_PAGE      ((size_t)1 << 18) /* rows per scan_items call */
#define BUILD_COST     40                /* per item, while built: id and where its key is */
#define KV_RECONCILE   "/api/v0/kv-reconcile"
#define KV_RECONCILE_K "/api/v0/kv-reconcile/keys"

typedef struct key_ref {
	uint64_t off;
	uint32_t len;
} key_ref;

struct sl_engine_items {
	pthread_mutex_t lock;
	/* where L3 is; the tier is opened at the first build */
	sl_l3_type type;
	char *dir_or_url, *ns_or_table;
	unsigned timeout_ms;
	sl_tier tier;
	uint64_t max_bytes;
	size_t page; /* rows per scan_items call */
	/* the set, as of position */
	int built;
	sl_digest position;
	sl_item_vec *vec;
	key_ref *refs; /* per item of vec, in its order */
	char *keys;    /* the arena */
	sl_buf value;  /* find: the row read back */
};

void sl_engine_item_id(uint8_t out[SL_ITEM_ID_LEN], const char *key, size_t key_len,
                       uint64_t version, const uint8_t value_digest[32])
{
	static const uint8_t zero = 0;
	uint8_t be[8];
	sl_digest d;
	sl_be64_put(be, version);
	sl_bytes parts[4] = {
	        {(const uint8_t *)key, key_len}, {&zero, 1}, {be, 8}, {value_digest, 32}};
	sl_sha256_parts(&d, parts, 4);
	memcpy(out, d.bytes, SL_ITEM_ID_LEN);
}

/* ------------------------------------------------------------ open/free */

static int items_alloc(sl_engine_items **out, uint64_t max_bytes)
{
	sl_engine_items *it = sl_calloc(1, sizeof(*it));
	if (it == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&it->lock, NULL);
	it->max_bytes = max_bytes ? max_bytes : SL_ENGINE_DIFF_MAX_BYTES;
	it->page = SCAN_PAGE;
	sl_buf_init(&it->value, SL_ENGINE_VALUE_MAX);
	*out = it;
	return SL_OK;
}

int sl_engine_items_new(sl_engine_items **out, const sl_engine_config *c)
{
	int store = c->l3_type == SL_L3_STORE;
	const char *a = store ? c->l3_dir : c->l3_url, *b = store ? c->l3_namespace : c->l3_table;
	sl_engine_items *it;
	int rc;

	if (a == NULL || b == NULL)
		return sl_error_set(SL_EINVAL, "the diff needs L3's %s",
		                    store ? "directory and namespace" : "URL and table");
	if ((rc = items_alloc(&it, c->diff_max_bytes)) != SL_OK)
		return rc;
	it->type = c->l3_type;
	it->timeout_ms = c->l3_timeout_ms;
	if ((it->dir_or_url = sl_strdup(a)) == NULL || (it->ns_or_table = sl_strdup(b)) == NULL) {
		sl_engine_items_free(it);
		return SL_ENOMEM;
	}
	*out = it;
	return SL_OK;
}

int engine_items_new_tier(sl_engine_items **out, const sl_tier *tier, uint64_t max_bytes)
{
	int rc = items_alloc(out, max_bytes);
	if (rc == SL_OK)
		(*out)->tier = *tier;
	return rc;
}

void engine_items_set_page(sl_engine_items *it, size_t rows)
{
	it->page = rows ? rows : SCAN_PAGE;
}

static void drop_set(sl_engine_items *it)
{
	sl_item_vec_free(it->vec);
	sl_free(it->refs);
	sl_free(it->keys);
	it->vec = NULL;
	it->refs = NULL;
	it->keys = NULL;
	it->built = 0;
}

void sl_engine_items_free(sl_engine_items *it)
{
	if (it == NULL)
		return;
	drop_set(it);
	if (it->tier.ops)
		it->tier.ops->close(it->tier.impl);
	sl_free(it->dir_or_url);
	sl_free(it->ns_or_table);
	sl_buf_free(&it->value);
	pthread_mutex_destroy(&it->lock);
	sl_free(it);
}

static int open_tier(sl_engine_items *it)
{
	if (it->tier.ops)
		return SL_OK;
	return sl_tier_open(&it->tier, it->type, it->dir_or_url, it->ns_or_table, it->timeout_ms);
}

/* ---------------------------------------------------------------- build */

typedef struct pending {
	uint8_t id[SL_ITEM_ID_LEN];
	uint64_t off;
	uint32_t len;
} pending;

typedef struct build {
	const sl_engine_items *it;
	pending *rows;
	size_t n, cap;
	char *keys;
	size_t keys_len, keys_cap;
	uint64_t bytes;
	uint64_t last_off; /* the last key seen, for the next page */
	uint32_t last_len;
} build;

static int on_item(void *ctx, const char *key, size_t key_len, uint64_t version,
                   const uint8_t value_digest[32])
{
	build *b = ctx;
	pending *rows;
	char *keys;

	if (key_len > SL_KEY_MAX)
		return sl_error_set(SL_ECORRUPT, "L3 listed a key of %zu bytes", key_len);
	b->bytes += SL_ENGINE_ITEM_COST + BUILD_COST + key_len;
	if (b->bytes > b->it->max_bytes)
		return sl_error_set(SL_ETOOLARGE,
		                    "L3 holds more live keys than the diff may hold in memory "
		                    "(%zu so far; [diff] max_mb is %llu MiB)",
		                    b->n, (unsigned long long)(b->it->max_bytes >> 20));
	if (!(rows = sl_grow(b->rows, &b->cap, b->n, sizeof(*rows), 1024)))
		return SL_ENOMEM;
	b->rows = rows;
	if (b->keys_len + key_len > b->keys_cap) {
		size_t cap = b->keys_cap ? 2 * b->keys_cap : 64 * 1024;
		if (!(keys = sl_realloc(b->keys, cap)))
			return SL_ENOMEM;
		b->keys = keys;
		b->keys_cap = cap;
	}
	memcpy(b->keys + b->keys_len, key, key_len);
	sl_engine_item_id(rows[b->n].id, key, key_len, version, value_digest);
	rows[b->n].off = b->keys_len;
	rows[b->n].len = (uint32_t)key_len;
	b->last_off = b->keys_len;
	b->last_len = (uint32_t)key_len;
	b->keys_len += key_len;
	b->n++;
	return SL_OK;
}

static int cmp_pending(const void *a, const void *b)
{
	return memcmp(((const pending *)a)->id, ((const pending *)b)->id, SL_ITEM_ID_LEN);
}

/* Reads every live row of L3 into a new set; the old one stays on error. */
static int rebuild(sl_engine_items *it, const sl_digest *position)
{
	build b = {.it = it};
	sl_item_vec *vec = NULL;
	key_ref *refs = NULL;
	size_t got;
	int rc, first = 1;

	do {
		/* the arena moves as it grows during the page: page after a copy */
		char after[SL_KEY_MAX];
		size_t after_len = first ? 0 : b.last_len;
		if (after_len)
			memcpy(after, b.keys + b.last_off, after_len);
		rc = it->tier.ops->scan_items(it->tier.impl, first ? NULL : after, after_len,
		                              it->page, on_item, &b, &got);
		first = 0;
	} while (rc == SL_OK && got == it->page);
	if (rc != SL_OK)
		goto cleanup;
	qsort(b.rows, b.n, sizeof(*b.rows), cmp_pending);
	if ((rc = sl_item_vec_new(&vec)) != SL_OK)
		goto cleanup;
	if (b.n && !(refs = sl_malloc(b.n * sizeof(*refs)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < b.n && rc == SL_OK; i++) {
		rc = sl_item_vec_add(vec, 0, b.rows[i].id);
		refs[i] = (key_ref){b.rows[i].off, b.rows[i].len};
	}
	if (rc != SL_OK || (rc = sl_item_vec_seal(vec)) != SL_OK)
		goto cleanup;
	drop_set(it);
	it->vec = vec;
	it->refs = refs;
	it->keys = b.keys;
	it->position = *position;
	it->built = 1;
	vec = NULL;
	refs = NULL;
	b.keys = NULL;
	sl_log(SL_LOG_DEBUG, "diff items built", "items=%zu key_bytes=%zu", b.n, b.keys_len);
cleanup:
	sl_item_vec_free(vec);
	sl_free(refs);
	sl_free(b.keys);
	sl_free(b.rows);
	return rc;
}

/* The set as of L3's position now; the caller holds the lock. */
static int refresh_locked(sl_engine_items *it)
{
	sl_digest position;
	int rc;
	if ((rc = open_tier(it)) != SL_OK ||
	    (rc = it->tier.ops->position(it->tier.impl, &position)) != SL_OK)
		return rc;
	if (it->built && sl_digest_eq(&position, &it->position))
		return SL_OK;
	return rebuild(it, &position);
}

int sl_engine_items_refresh(sl_engine_items *it, size_t *count)
{
	pthread_mutex_lock(&it->lock);
	int rc = refresh_locked(it);
	if (rc == SL_OK && count)
		*count = sl_item_vec_count(it->vec);
	pthread_mutex_unlock(&it->lock);
	return rc;
}

/* --------------------------------------------------------------- lookup */

static int cmp_item_id(const void *id, const void *item)
{
	return memcmp(id, ((const sl_item *)item)->id, SL_ITEM_ID_LEN);
}

/* The index of id in the set, or -1. */
static long index_of(const sl_engine_items *it, const uint8_t id[SL_ITEM_ID_LEN])
{
	const sl_item *items = sl_item_vec_items(it->vec);
	size_t n = sl_item_vec_count(it->vec);
	const sl_item *hit = n ? bsearch(id, items, n, sizeof(*items), cmp_item_id) : NULL;
	return hit ? (long)(hit - items) : -1;
}

static int find_locked(sl_engine_items *it, const uint8_t id[SL_ITEM_ID_LEN],
                       sl_engine_item_info *out)
{
	long at = it->built ? index_of(it, id) : -1;
	uint8_t again[SL_ITEM_ID_LEN];
	sl_digest digest;
	int deleted, rc;

	if (at < 0)
		return SL_ENOTFOUND;
	out->key = it->keys + it->refs[at].off;
	out->key_len = it->refs[at].len;
	rc = it->tier.ops->get(it->tier.impl, out->key, out->key_len, &it->value, &out->version,
	                       &deleted);
	if (rc == SL_ENOTFOUND || (rc == SL_OK && deleted)) {
		sl_error_clear();
		return SL_ENOTFOUND;
	}
	if (rc != SL_OK)
		return rc;
	sl_sha256(&digest, it->value.data, it->value.len);
	memcpy(out->value_digest, digest.bytes, 32);
	sl_engine_item_id(again, out->key, out->key_len, out->version, out->value_digest);
	return memcmp(again, id, SL_ITEM_ID_LEN) == 0 ? SL_OK : SL_ENOTFOUND;
}

int sl_engine_items_find(sl_engine_items *it, const uint8_t id[SL_ITEM_ID_LEN],
                         sl_engine_item_info *out)
{
	pthread_mutex_lock(&it->lock);
	int rc = find_locked(it, id, out);
	pthread_mutex_unlock(&it->lock);
	return rc;
}

/* -------------------------------------------------------------- answers */

int sl_engine_reconcile_answer(sl_engine_items *it, size_t frame_limit, const uint8_t *msg,
                               size_t len, sl_buf *out)
{
	int rc;
	if ((rc = sl_reconcile_check(msg, len)) != SL_OK)
		return rc;
	pthread_mutex_lock(&it->lock);
	if ((rc = refresh_locked(it)) == SL_OK) {
		sl_item_set set = sl_item_vec_set(it->vec);
		rc = sl_reconcile_respond(&set, frame_limit, msg, len, out);
	}
	pthread_mutex_unlock(&it->lock);
	return rc;
}

/* An id's key, version and value digest, or SL_ENOTFOUND. */
static int add_key(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], sl_buf *out)
{
	sl_engine_item_info info;
	int rc = find_locked(ctx, id, &info);
	if (rc == SL_OK)
		rc = sl_kv_keys_add(out, id, info.key, info.key_len, info.version,
		                    info.value_digest);
	return rc;
}

int sl_engine_keys_answer(sl_engine_items *it, const uint8_t *request, size_t len, size_t budget,
                          sl_buf *out)
{
	const uint8_t *ids;
	unsigned flags;
	size_t n;
	int rc;

	if ((rc = sl_wire_items_request_decode(&flags, &ids, &n, request, len)) != SL_OK)
		return rc;
	if (flags != 0)
		return sl_error_set(SL_EINVAL, "a keys request has no flags: an engine sends no "
		                               "values");
	pthread_mutex_lock(&it->lock);
	if ((rc = refresh_locked(it)) == SL_OK)
		rc = sl_wire_items_answer(ids, n, budget, add_key, it, out);
	pthread_mutex_unlock(&it->lock);
	return rc;
}

/* ------------------------------------------------------------ initiator */

static int keys_request(sl_buf *out, int values, const uint8_t (*ids)[SL_ITEM_ID_LEN], size_t n)
{
	if (values)
		return sl_error_set(SL_EINVAL, "an engine sends no values");
	return sl_wire_items_request(out, 0, ids, n);
}

/* A keys frame, each answer checked to hash to its id. */
static int keys_decode(sl_diff_answers *out, int values, const uint8_t *frame, size_t len)
{
	sl_diff_answer *found = NULL;
	sl_kv_keys k;
	int rc;

	(void)values;
	if ((rc = sl_kv_keys_decode(&k, frame, len)) != SL_OK)
		return rc;
	if (k.n_found && !(found = sl_calloc(k.n_found, sizeof(*found)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < k.n_found; i++) {
		const sl_kv_key *a = &k.found[i];
		uint8_t id[SL_ITEM_ID_LEN];
		sl_engine_item_id(id, a->key, a->key_len, a->version, a->value_digest);
		if (memcmp(id, a->id, SL_ITEM_ID_LEN) != 0) {
			rc = sl_error_set(
			        SL_EVERIFY,
			        "item %s came with a key, version and value digest that do "
			        "not hash to it",
			        sl_digest_to_hex((const sl_digest *)a->id).s);
			goto cleanup;
		}
		found[i] = (sl_diff_answer){a->id, a->key, a->key_len, NULL, 0};
	}
	out->found = found;
	out->n_found = k.n_found;
	out->missing = k.missing;
	out->n_missing = k.n_missing;
	out->remaining = k.remaining;
	found = NULL;
cleanup:
	sl_free(found);
	sl_kv_keys_free(&k);
	return rc;
}

const sl_diff_codec sl_engine_keys_codec = {keys_request, keys_decode};

/* The key of an item of the set reconciled (its lock held). */
static int local_key(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], const char **key, size_t *key_len)
{
	sl_engine_items *it = ctx;
	long at = index_of(it, id);
	if (at < 0)
		return sl_error_set(SL_EINTERNAL, "an item reconciled here is not in the set");
	*key = it->keys + it->refs[at].off;
	*key_len = it->refs[at].len;
	return SL_OK;
}

int sl_engine_diff(sl_engine_items *local, const char *peer, unsigned timeout_ms,
                   sl_diff_report *out)
{
	sl_diff_peer *p = NULL;
	sl_diff_options o;
	sl_diff_local side;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = sl_diff_peer_http_at(&p, peer, KV_RECONCILE, KV_RECONCILE_K,
	                               &sl_engine_keys_codec, timeout_ms)) != SL_OK)
		return rc;
	pthread_mutex_lock(&local->lock);
	if ((rc = refresh_locked(local)) == SL_OK) {
		side = (sl_diff_local){sl_item_vec_set(local->vec), local_key, local};
		memset(&o, 0, sizeof(o));
		o.local = &side;
		o.peer = p;
		rc = sl_state_diff(&o, out);
	}
	pthread_mutex_unlock(&local->lock);
	sl_diff_peer_free(p);
	return rc;
}
