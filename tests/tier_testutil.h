/*
 * What the tests of the L3 tiers share (after cmocka and engine/tier.h):
 * rows to write (a put, a delete, both with no hint, so the tier reads the
 * old rows), a write whose every row must be taken, the flags a row must
 * come back with, reading a key back, scan_live paged over every key, and
 * scan_items checked against what was written.
 */
#ifndef SLUICE_TEST_TIER_TESTUTIL_H
#define SLUICE_TEST_TIER_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void tu_put(sl_tier_row *r, const char *key, const char *value, uint64_t version)
{
	memset(r, 0, sizeof(*r));
	r->key = key;
	r->key_len = strlen(key);
	r->value = (const uint8_t *)value;
	r->value_len = strlen(value);
	r->version = version;
	r->maybe_live = 1; /* no hint: the tier reads the old rows */
}

static inline void tu_del(sl_tier_row *r, const char *key, uint64_t version)
{
	memset(r, 0, sizeof(*r));
	r->key = key;
	r->key_len = strlen(key);
	r->version = version;
	r->deleted = 1;
	r->maybe_live = 1;
}

static inline void tu_write_ok(sl_tier *t, sl_tier_row *rows, size_t n)
{
	if (t->ops->write(t->impl, rows, n) != SL_OK)
		fail_msg("write: %s", sl_error_last()->message);
	for (size_t i = 0; i < n; i++)
		if (rows[i].rc != SL_OK)
			fail_msg("row %zu refused: %s", i, rows[i].error);
}

static inline void tu_expect_flags(const sl_tier_row *r, int applied, int was_live, int is_live)
{
	if (r->applied != applied || r->was_live != was_live || r->is_live != is_live)
		fail_msg("%.*s v%llu: applied %d was_live %d is_live %d, want %d %d %d",
		         (int)r->key_len, r->key, (unsigned long long)r->version, r->applied,
		         r->was_live, r->is_live, applied, was_live, is_live);
}

/* get: the value ("" when deleted) or NULL when there is no row. */
static inline const char *tu_tier_get(sl_tier *t, const char *key, uint64_t *version, int *deleted)
{
	static sl_buf value = SL_BUF_INIT(1 << 20);
	int rc = t->ops->get(t->impl, key, strlen(key), &value, version, deleted);
	if (rc == SL_ENOTFOUND)
		return NULL;
	if (rc != SL_OK)
		fail_msg("get %s: %s", key, sl_error_last()->message);
	sl_buf_append_byte(&value, 0);
	return (const char *)value.data;
}

/* The key's row is value at version (value NULL: a tombstone). */
static inline void tu_expect_row(sl_tier *t, const char *key, const char *value, uint64_t version)
{
	uint64_t v = 0;
	int deleted = -1;
	const char *got = tu_tier_get(t, key, &v, &deleted);
	if (got == NULL)
		fail_msg("%s: no row", key);
	assert_int_equal(v, version);
	assert_int_equal(deleted, value == NULL);
	if (value != NULL)
		assert_string_equal(got, value);
}

typedef struct tu_scan_seen {
	char **keys;
	size_t n, cap;
} tu_scan_seen;

static inline int tu_collect(void *ctx, const char *key, size_t key_len)
{
	tu_scan_seen *s = ctx;
	if (s->n == s->cap)
		return SL_ETOOLARGE;
	s->keys[s->n] = strndup(key, key_len);
	s->n++;
	return SL_OK;
}

static inline int tu_cmp_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b); /* bytewise */
}

/* Pages of 1000 over every live key: each once, in bytewise order (want
 * sorted by tu_cmp_bytes; the first starts with '0', the last with 0xf0). */
static inline void tu_scan_check(sl_tier *t, char **want, size_t n_live)
{
	tu_scan_seen seen = {calloc(n_live + 1, sizeof(char *)), 0, n_live + 1};
	const char *after = NULL;
	size_t after_len = 0, n, pages = 0;

	do {
		size_t before = seen.n;
		assert_int_equal(
		        t->ops->scan_live(t->impl, after, after_len, 1000, tu_collect, &seen, &n),
		        SL_OK);
		assert_int_equal(seen.n - before, n);
		assert_true(n <= 1000);
		if (n > 0) {
			after = seen.keys[seen.n - 1];
			after_len = strlen(after);
		}
		pages++;
	} while (n == 1000);
	assert_int_equal(pages, n_live / 1000 + 1);
	assert_int_equal(seen.n, n_live);
	for (size_t i = 0; i < n_live; i++)
		assert_string_equal(seen.keys[i], want[i]);
	/* bytewise: digits, upper case, '_', lower case, '~', then UTF-8 */
	assert_int_equal(seen.keys[0][0], '0');
	assert_int_equal((unsigned char)seen.keys[n_live - 1][0], 0xf0);

	/* a limit of 0, and a limit past the end */
	assert_int_equal(t->ops->scan_live(t->impl, NULL, 0, 0, tu_collect, &seen, &n), SL_OK);
	assert_int_equal(n, 0);
	for (size_t i = 0; i < seen.n; i++)
		free(seen.keys[i]);
	seen.n = 0;
	assert_int_equal(t->ops->scan_live(t->impl, NULL, 0, 100000, tu_collect, &seen, &n), SL_OK);
	assert_int_equal(n, n_live);
	for (size_t i = 0; i < seen.n; i++)
		free(seen.keys[i]);
	free(seen.keys);
}

typedef struct tu_items_seen {
	sl_tier_row *rows; /* what was written, by key */
	size_t n_rows, n, n_empty;
	char last[64];
} tu_items_seen;

/* Each item's digest is SHA-256 of the value written, computed here. */
static inline int tu_check_item(void *ctx, const char *key, size_t key_len, uint64_t version,
                                const uint8_t digest[32])
{
	tu_items_seen *s = ctx;
	char k[64];
	snprintf(k, sizeof(k), "%.*s", (int)key_len, key);
	assert_true(strcmp(k, s->last) > 0);
	snprintf(s->last, sizeof(s->last), "%s", k);
	for (size_t i = 0; i < s->n_rows; i++) {
		const sl_tier_row *r = &s->rows[i];
		sl_digest want;
		if (r->key_len != key_len || memcmp(r->key, key, key_len) != 0)
			continue;
		assert_false(r->deleted);
		assert_int_equal(version, r->version);
		sl_sha256(&want, r->value, r->value_len);
		assert_memory_equal(digest, want.bytes, 32);
		s->n_empty += r->value_len == 0;
		s->n++;
		return SL_OK;
	}
	fail_msg("an item for a key never written: %s", k);
	return SL_EINTERNAL;
}

/* scan_items in pages of 1000: every live row of `rows` once, in key
 * order, with its version and the SHA-256 of its value (of "" for an
 * empty one, never NULL: some rows must be empty). */
static inline void tu_items_check(sl_tier *t, sl_tier_row *rows, size_t n_rows, size_t n_live)
{
	tu_items_seen seen = {rows, n_rows, 0, 0, ""};
	size_t n, pages = 0;
	do {
		n = 0;
		assert_int_equal(t->ops->scan_items(t->impl, pages ? seen.last : NULL,
		                                    strlen(seen.last), 1000, tu_check_item, &seen,
		                                    &n),
		                 SL_OK);
		pages++;
	} while (n == 1000);
	assert_int_equal(seen.n, n_live);
	assert_true(seen.n_empty > 0);
	assert_int_equal(pages, n_live / 1000 + 1);
}

/* The position of a fresh table (*p0), then: it moves with a committed
 * write, stays put through a read, and moves again with a committed
 * write that changed no row. Leaves the tier open. */
static inline void tu_position_moves(sl_tier *t, sl_digest *p0)
{
	sl_tier_row rows[1];
	sl_digest p1, p2, p3;
	uint64_t v;
	int deleted;

	assert_int_equal(t->ops->position(t->impl, p0), SL_OK);
	tu_put(&rows[0], "a", "1", 1);
	tu_write_ok(t, rows, 1);
	assert_int_equal(t->ops->position(t->impl, &p1), SL_OK);
	assert_false(sl_digest_eq(p0, &p1));
	assert_non_null(tu_tier_get(t, "a", &v, &deleted));
	assert_int_equal(t->ops->position(t->impl, &p2), SL_OK);
	assert_true(sl_digest_eq(&p1, &p2));
	tu_write_ok(t, rows, 1);
	assert_int_equal(rows[0].applied, 0);
	assert_int_equal(t->ops->position(t->impl, &p3), SL_OK);
	assert_false(sl_digest_eq(&p2, &p3));
}

#endif
