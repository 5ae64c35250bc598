/* L3 on a sluice store namespace (the engine's embedded default).
 *
 * Each batch is one commit of a mutable namespace, so L3 is authenticated:
 * every key the engine holds can be proven (`sluice proof`) against the
 * namespace's root. The stored value carries the version:
 *
 *   byte 0      1 = a live value, 2 = a tombstone (a delete)
 *   bytes 1..8  the version, 8 bytes big-endian
 *   bytes 9..   the value (nothing for a tombstone)
 *
 * A delete is written as a tombstone, not removed, so that a replayed
 * older write can see the newer delete and leave the key deleted.
 *
 * The guard: a row is written only when its version is newer than the
 * stored one. The stored one is read unless the engine says the row is
 * fresh (nothing newer can be in L3) and the key is not live (its trusted
 * filter said so); then neither the guard nor the filter's bookkeeping
 * needs it, which is what keeps a batch of new keys as fast as plain puts.
 *
 * Two handles on the store: the drain's (write, scan, position) and the
 * readers' (get, behind a mutex). scan_items, for the diff between
 * engines, lists through the first and reads each value through the
 * second; the diff opens a tier of its own, so it never runs beside the
 * drain on one handle.
 */
#include <pthread.h>
#include <string.h>

#include "engine/tier.h"
#include "sluice/store.h"

#define HEADER_LEN 9
enum { FLAG_LIVE = 1, FLAG_TOMBSTONE = 2 };

typedef struct tier_store {
	sl_store *writer;
	sl_store *reader;
	pthread_mutex_t read_lock;
	char ns[SL_NS_NAME_MAX + 1];
	sl_buf scratch; /* the drain's: encoded values, stored rows */
} tier_store;

typedef struct stored_row {
	int found;
	uint64_t version;
	int deleted;
} stored_row;

/* Decodes a stored value; SL_ECORRUPT for anything the engine did not write. */
static int decode(const tier_store *t, const char *key, size_t key_len, const sl_buf *v,
                  stored_row *out)
{
	if (v->len < HEADER_LEN || (v->data[0] != FLAG_LIVE && v->data[0] != FLAG_TOMBSTONE) ||
	    (v->data[0] == FLAG_TOMBSTONE && v->len != HEADER_LEN))
		return sl_error_set(SL_ECORRUPT,
		                    "L3 namespace '%s': the value of '%.*s' was not written by the "
		                    "engine (%zu bytes)",
		                    t->ns, (int)(key_len > 200 ? 200 : key_len), key, v->len);
	out->found = 1;
	out->deleted = v->data[0] == FLAG_TOMBSTONE;
	out->version = sl_be64_get(v->data + 1);
	return SL_OK;
}

static int read_row(tier_store *t, sl_store *s, const char *key, size_t key_len, sl_buf *value,
                    stored_row *out)
{
	memset(out, 0, sizeof(*out));
	int rc = sl_store_get(s, t->ns, key, key_len, value, NULL);
	if (rc == SL_ENOTFOUND) {
		sl_error_clear();
		return SL_OK;
	}
	if (rc != SL_OK)
		return rc;
	return decode(t, key, key_len, value, out);
}

static int encode(sl_buf *out, const sl_tier_row *r)
{
	uint8_t head[HEADER_LEN];
	head[0] = r->deleted ? FLAG_TOMBSTONE : FLAG_LIVE;
	sl_be64_put(head + 1, r->version);
	sl_buf_reset(out);
	int rc = sl_buf_append(out, head, sizeof(head));
	if (rc == SL_OK && !r->deleted)
		rc = sl_buf_append(out, r->value, r->value_len);
	return rc;
}

static int store_write(void *impl, sl_tier_row *rows, size_t n)
{
	tier_store *t = impl;
	sl_batch *b = NULL;
	int rc = sl_batch_new(&b, t->writer, t->ns);
	for (size_t i = 0; rc == SL_OK && i < n; i++) {
		sl_tier_row *r = &rows[i];
		stored_row old = {0, 0, 0};
		if ((!r->fresh || r->maybe_live) &&
		    (rc = read_row(t, t->writer, r->key, r->key_len, &t->scratch, &old)) != SL_OK)
			break;
		r->rc = SL_OK;
		r->error[0] = '\0';
		r->was_live = old.found && !old.deleted;
		r->applied = !old.found || old.version < r->version;
		r->is_live = r->applied ? !r->deleted : r->was_live;
		if (!r->applied)
			continue;
		if ((rc = encode(&t->scratch, r)) == SL_OK)
			rc = sl_batch_put(b, r->key, r->key_len, t->scratch.data, t->scratch.len);
	}
	if (rc == SL_OK && sl_batch_count(b) > 0)
		rc = sl_batch_commit(b, NULL);
	sl_batch_free(b);
	if (rc != SL_OK)
		sl_error_wrap("L3 namespace '%s'", t->ns);
	return rc;
}

static int store_get(void *impl, const char *key, size_t key_len, sl_buf *value, uint64_t *version,
                     int *deleted)
{
	tier_store *t = impl;
	stored_row row;
	pthread_mutex_lock(&t->read_lock);
	int rc = read_row(t, t->reader, key, key_len, value, &row);
	pthread_mutex_unlock(&t->read_lock);
	if (rc != SL_OK)
		return rc;
	if (!row.found)
		return sl_error_set(SL_ENOTFOUND, "L3 has no row for the key");
	*version = row.version;
	*deleted = row.deleted;
	if (row.deleted) {
		sl_buf_reset(value);
	} else {
		memmove(value->data, value->data + HEADER_LEN, value->len - HEADER_LEN);
		value->len -= HEADER_LEN;
	}
	return SL_OK;
}

typedef struct scan_args {
	tier_store *t;
	const char *after;
	size_t after_len;
	size_t limit, n;
	sl_tier_key_fn cb;       /* scan_live */
	sl_tier_item_fn on_item; /* scan_items */
	void *ctx;
	sl_buf value; /* scan_items: the row read back */
} scan_args;

#define SCAN_FULL 1 /* the page is full: stop the walk */

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int scan_one(void *ctx, const sl_key_entry *e)
{
	scan_args *a = ctx;
	if (a->after && key_cmp(e->key, e->key_len, a->after, a->after_len) <= 0)
		return SL_OK;
	if (e->value_len == HEADER_LEN) { /* a tombstone, or an empty value */
		/* the walk holds the writer's read transaction: ask the reader */
		stored_row row;
		pthread_mutex_lock(&a->t->read_lock);
		int rc = read_row(a->t, a->t->reader, e->key, e->key_len, &a->t->scratch, &row);
		pthread_mutex_unlock(&a->t->read_lock);
		if (rc != SL_OK)
			return rc;
		if (row.deleted)
			return SL_OK;
	}
	int rc = a->cb(a->ctx, e->key, e->key_len);
	if (rc != SL_OK)
		return rc;
	return ++a->n >= a->limit ? SCAN_FULL : SL_OK;
}

/* A live row with its version and the digest of its value. The listing
 * gives the digest of the stored bytes, header included, so the row is
 * read back (through the reader: the walk holds the writer's read
 * transaction). It may be newer than the listing; it is still a row L3
 * held, and position() has moved, so a cached set is rebuilt. */
static int scan_item_one(void *ctx, const sl_key_entry *e)
{
	scan_args *a = ctx;
	stored_row row;
	sl_digest digest;
	int rc;

	if (a->after && key_cmp(e->key, e->key_len, a->after, a->after_len) <= 0)
		return SL_OK;
	pthread_mutex_lock(&a->t->read_lock);
	rc = read_row(a->t, a->t->reader, e->key, e->key_len, &a->value, &row);
	pthread_mutex_unlock(&a->t->read_lock);
	if (rc != SL_OK)
		return rc;
	if (!row.found || row.deleted)
		return SL_OK;
	sl_sha256(&digest, a->value.data + HEADER_LEN, a->value.len - HEADER_LEN);
	if ((rc = a->on_item(a->ctx, e->key, e->key_len, row.version, digest.bytes)) != SL_OK)
		return rc;
	return ++a->n >= a->limit ? SCAN_FULL : SL_OK;
}

/* The store lists keys from the start of a prefix only, so a page skips
 * the keys up to `after`; the engine asks for large pages. */
static int store_scan_live(void *impl, const char *after, size_t after_len, size_t limit,
                           sl_tier_key_fn cb, void *ctx, size_t *n)
{
	tier_store *t = impl;
	scan_args a = {t,    after, after_len,     limit ? limit : SIZE_MAX, 0, cb,
	               NULL, ctx,   SL_BUF_INIT(0)};
	int rc = sl_store_list(t->writer, t->ns, NULL, 0, scan_one, &a);
	if (rc == SCAN_FULL)
		rc = SL_OK;
	if (rc == SL_OK)
		*n = a.n;
	return rc;
}

static int store_scan_items(void *impl, const char *after, size_t after_len, size_t limit,
                            sl_tier_item_fn cb, void *ctx, size_t *n)
{
	tier_store *t = impl;
	scan_args a = {t,    after, after_len, limit ? limit : SIZE_MAX, 0,
	               NULL, cb,    ctx,       SL_BUF_INIT(SIZE_MAX)};
	int rc = sl_store_list(t->writer, t->ns, NULL, 0, scan_item_one, &a);
	if (rc == SCAN_FULL)
		rc = SL_OK;
	if (rc == SL_OK)
		*n = a.n;
	sl_buf_free(&a.value);
	return rc;
}

static int store_position(void *impl, sl_digest *out)
{
	tier_store *t = impl;
	sl_ns_info info;
	int rc = sl_store_ns_head(t->writer, t->ns, &info);
	if (rc != SL_OK)
		return rc;
	uint8_t size[8];
	sl_be64_put(size, info.target.size);
	sl_bytes parts[3] = {{(const uint8_t *)t->ns, strlen(t->ns)},
	                     {size, sizeof(size)},
	                     {info.target.root.bytes, SL_DIGEST_LEN}};
	sl_sha256_parts(out, parts, 3);
	return SL_OK;
}

static void store_close(void *impl)
{
	tier_store *t = impl;
	if (t == NULL)
		return;
	sl_store_free(t->writer);
	sl_store_free(t->reader);
	pthread_mutex_destroy(&t->read_lock);
	sl_buf_free(&t->scratch);
	sl_free(t);
}

static const sl_tier_ops store_ops = {.name = "store",
                                      .write = store_write,
                                      .get = store_get,
                                      .scan_live = store_scan_live,
                                      .scan_items = store_scan_items,
                                      .position = store_position,
                                      .close = store_close};

int sl_tier_store_open(sl_tier *out, const char *dir, const char *ns, unsigned timeout_ms)
{
	if (dir == NULL || ns == NULL)
		return sl_error_set(SL_EINVAL, "an L3 store needs a directory and a namespace");
	int rc = sl_ns_name_validate(ns);
	if (rc != SL_OK)
		return rc;
	tier_store *t = sl_calloc(1, sizeof(*t));
	if (t == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&t->read_lock, NULL);
	snprintf(t->ns, sizeof(t->ns), "%s", ns);
	sl_buf_init(&t->scratch, SIZE_MAX);
	sl_store_options o;
	sl_store_options_init(&o);
	o.flags = SL_STORE_CREATE;
	o.busy_timeout_ms = (int)timeout_ms;
	sl_ns_info info;
	if ((rc = sl_store_open(&t->writer, dir, &o)) != SL_OK)
		goto fail;
	rc = sl_store_ns_head(t->writer, ns, &info);
	if (rc == SL_ENOTFOUND) {
		sl_error_clear();
		rc = sl_store_ns_create(t->writer, ns, SL_NS_MUTABLE);
		info.kind = SL_NS_MUTABLE;
	}
	if (rc != SL_OK)
		goto fail;
	if (info.kind != SL_NS_MUTABLE) {
		rc = sl_error_set(SL_EINVAL,
		                  "L3 namespace '%s' is %s; the engine needs a mutable one", ns,
		                  sl_ns_kind_name(info.kind));
		goto fail;
	}
	if ((rc = sl_store_open(&t->reader, dir, &o)) != SL_OK)
		goto fail;
	out->ops = &store_ops;
	out->impl = t;
	return SL_OK;
fail:
	sl_error_wrap("L3 store '%s'", dir);
	store_close(t);
	return rc;
}
