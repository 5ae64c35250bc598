/*
 * The diff between engines, below HTTP: the item id, the store tier's
 * scan_items (live rows only, keyset paging, the digest of the value
 * without the header), the set built from it (kept until L3's position
 * moves, capped in memory), what an id stands for read back from L3, and
 * the keys frame: its codec and the client's check that every answer
 * hashes to the id asked for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "sluice/store.h"
#include "testutil.h"

#define NS "kv"

typedef struct fx {
	char *dir;
	sl_tier tier; /* writes; the set has its own */
} fx;

static void fx_open(fx *f)
{
	assert_non_null(f->dir = tu_tempdir());
	assert_ok(sl_tier_store_open(&f->tier, f->dir, NS, 5000));
}

static void fx_close(fx *f)
{
	f->tier.ops->close(f->tier.impl);
	tu_rmtree(f->dir);
	free(f->dir);
}

static void put(fx *f, const char *key, uint64_t version, const char *value)
{
	sl_tier_row r;
	memset(&r, 0, sizeof(r));
	r.key = key;
	r.key_len = strlen(key);
	r.value = (const uint8_t *)value;
	r.value_len = value ? strlen(value) : 0;
	r.deleted = value == NULL;
	r.version = version;
	assert_ok(f->tier.ops->write(f->tier.impl, &r, 1));
	assert_int_equal(r.rc, SL_OK);
}

static void id_of(uint8_t id[SL_ITEM_ID_LEN], const char *key, uint64_t version, const char *value)
{
	sl_digest d;
	sl_sha256(&d, value, strlen(value));
	sl_engine_item_id(id, key, strlen(key), version, d.bytes);
}

static sl_engine_items *items_on(fx *f, uint64_t max_bytes)
{
	sl_engine_items *it;
	sl_tier own;
	assert_ok(sl_tier_store_open(&own, f->dir, NS, 5000));
	assert_ok(engine_items_new_tier(&it, &own, max_bytes));
	return it;
}

static void test_item_id(void **state)
{
	(void)state;
	/* SHA-256("a/b" || 00 || 00..01 || SHA-256("hello")) */
	uint8_t buf[3 + 1 + 8 + 32], id[SL_ITEM_ID_LEN];
	sl_digest value, want;
	sl_sha256(&value, "hello", 5);
	memcpy(buf, "a/b", 3);
	memset(buf + 3, 0, 9);
	buf[11] = 1;
	memcpy(buf + 12, value.bytes, 32);
	sl_sha256(&want, buf, sizeof(buf));
	id_of(id, "a/b", 1, "hello");
	assert_memory_equal(id, want.bytes, SL_ITEM_ID_LEN);
	/* the version counts */
	id_of(buf, "a/b", 2, "hello");
	assert_memory_not_equal(id, buf, SL_ITEM_ID_LEN);
}

typedef struct seen {
	char keys[16][16];
	uint64_t versions[16];
	uint8_t digests[16][32];
	size_t n;
} seen;

static int on_item(void *ctx, const char *key, size_t key_len, uint64_t version,
                   const uint8_t digest[32])
{
	seen *s = ctx;
	assert_true(s->n < 16 && key_len < 16);
	memcpy(s->keys[s->n], key, key_len);
	s->keys[s->n][key_len] = '\0';
	s->versions[s->n] = version;
	memcpy(s->digests[s->n++], digest, 32);
	return SL_OK;
}

static void test_store_scan_items(void **state)
{
	(void)state;
	fx f;
	seen s;
	size_t n;
	sl_digest d;
	fx_open(&f);
	put(&f, "a", 5, "one");
	put(&f, "b", 6, NULL); /* a tombstone */
	put(&f, "c", 7, "");   /* an empty value is live */
	put(&f, "d", 8, "four");
	memset(&s, 0, sizeof(s));
	assert_ok(f.tier.ops->scan_items(f.tier.impl, NULL, 0, 2, on_item, &s, &n));
	assert_int_equal(n, 2);
	assert_string_equal(s.keys[0], "a");
	assert_string_equal(s.keys[1], "c");
	assert_int_equal(s.versions[0], 5);
	sl_sha256(&d, "one", 3);
	assert_memory_equal(s.digests[0], d.bytes, 32);
	sl_sha256(&d, "", 0);
	assert_memory_equal(s.digests[1], d.bytes, 32);
	/* the next page, after "c" */
	assert_ok(f.tier.ops->scan_items(f.tier.impl, "c", 1, 2, on_item, &s, &n));
	assert_int_equal(n, 1);
	assert_string_equal(s.keys[2], "d");
	fx_close(&f);
}

static void test_set_cached_until_l3_moves(void **state)
{
	(void)state;
	fx f;
	sl_engine_items *it;
	sl_engine_item_info info;
	uint8_t id_a[SL_ITEM_ID_LEN], id_b[SL_ITEM_ID_LEN], id_none[SL_ITEM_ID_LEN];
	size_t count = 0;
	sl_digest d;

	fx_open(&f);
	put(&f, "a", 5, "one");
	put(&f, "b", 6, "two");
	put(&f, "c", 7, NULL);
	it = items_on(&f, 0);
	assert_ok(sl_engine_items_refresh(it, &count));
	assert_int_equal(count, 2);
	id_of(id_a, "a", 5, "one");
	id_of(id_b, "b", 6, "two");
	assert_ok(sl_engine_items_find(it, id_a, &info));
	assert_int_equal(info.key_len, 1);
	assert_memory_equal(info.key, "a", 1);
	assert_int_equal(info.version, 5);
	sl_sha256(&d, "one", 3);
	assert_memory_equal(info.value_digest, d.bytes, 32);
	id_of(id_none, "a", 4, "one");
	assert_int_equal(sl_engine_items_find(it, id_none, &info), SL_ENOTFOUND);

	/* b changes in L3: until the next refresh the set still names b's old
	 * item, but L3 no longer holds it, so it is not found */
	put(&f, "b", 9, "nine");
	assert_int_equal(sl_engine_items_find(it, id_b, &info), SL_ENOTFOUND);
	/* a new key: the position moved, the set is rebuilt */
	put(&f, "d", 10, "ten");
	assert_ok(sl_engine_items_refresh(it, &count));
	assert_int_equal(count, 3);
	id_of(id_b, "b", 9, "nine");
	assert_ok(sl_engine_items_find(it, id_b, &info));
	sl_engine_items_free(it);

	/* a cap below the set's size */
	it = items_on(&f, 100);
	assert_int_equal(sl_engine_items_refresh(it, &count), SL_ETOOLARGE);
	sl_engine_items_free(it);
	fx_close(&f);
}

/* Many pages, with keys long enough that the build's key arena moves
 * while a page is read: the next page must not follow a moved key. */
static void test_build_pages_over_a_growing_arena(void **state)
{
	(void)state;
	fx f;
	sl_engine_items *it;
	sl_engine_item_info info;
	uint8_t id[SL_ITEM_ID_LEN];
	char key[SL_KEY_MAX + 1];
	size_t count = 0;
	sl_tier_row rows[300];
	static char keys[300][1001];

	fx_open(&f);
	memset(rows, 0, sizeof(rows));
	for (int i = 0; i < 300; i++) {
		memset(keys[i], 'x', 1000);
		snprintf(keys[i], sizeof(keys[i]), "%04d", i);
		keys[i][4] = 'x';
		keys[i][1000] = '\0';
		rows[i].key = keys[i];
		rows[i].key_len = 1000;
		rows[i].value = (const uint8_t *)"v";
		rows[i].value_len = 1;
		rows[i].version = (uint64_t)i + 1;
	}
	assert_ok(f.tier.ops->write(f.tier.impl, rows, 300));
	it = items_on(&f, 0);
	engine_items_set_page(it, 7);
	assert_ok(sl_engine_items_refresh(it, &count));
	assert_int_equal(count, 300);
	memcpy(key, keys[299], 1001);
	id_of(id, key, 300, "v");
	assert_ok(sl_engine_items_find(it, id, &info));
	assert_int_equal(info.key_len, 1000);
	sl_engine_items_free(it);
	fx_close(&f);
}

static void test_keys_frame_codec(void **state)
{
	(void)state;
	sl_buf b = SL_BUF_INIT(SIZE_MAX);
	uint8_t id[SL_ITEM_ID_LEN], missing[2 * SL_ITEM_ID_LEN], digest[32];
	sl_kv_keys k;

	memset(id, 7, sizeof(id));
	memset(missing, 9, sizeof(missing));
	memset(digest, 3, sizeof(digest));
	assert_ok(sl_wire_items_begin(&b));
	assert_ok(sl_kv_keys_add(&b, id, "x/y", 3, 42, digest));
	assert_ok(sl_wire_items_end(&b, 1, missing, 2, 5));
	assert_int_equal(b.len, 5 + 32 + 1 + 3 + 8 + 32 + 4 + 64 + 4);
	assert_ok(sl_kv_keys_decode(&k, b.data, b.len));
	assert_int_equal(k.n_found, 1);
	assert_int_equal(k.n_missing, 2);
	assert_int_equal(k.remaining, 5);
	assert_memory_equal(k.found[0].id, id, SL_ITEM_ID_LEN);
	assert_int_equal(k.found[0].key_len, 3);
	assert_memory_equal(k.found[0].key, "x/y", 3);
	assert_int_equal(k.found[0].version, 42);
	assert_memory_equal(k.found[0].value_digest, digest, 32);
	sl_kv_keys_free(&k);
	/* every cut and a trailing byte are refused */
	for (size_t cut = 0; cut < b.len; cut++)
		assert_int_equal(sl_kv_keys_decode(&k, b.data, cut), SL_ECORRUPT);
	assert_ok(sl_buf_append_byte(&b, 0));
	assert_int_equal(sl_kv_keys_decode(&k, b.data, b.len), SL_ECORRUPT);
	sl_buf_free(&b);
}

static void test_keys_answer_checked(void **state)
{
	(void)state;
	fx f;
	sl_engine_items *it;
	uint8_t ids[2][SL_ITEM_ID_LEN];
	sl_buf req = SL_BUF_INIT(SIZE_MAX), frame = SL_BUF_INIT(SIZE_MAX);
	sl_diff_answers a;

	fx_open(&f);
	put(&f, "a", 5, "one");
	it = items_on(&f, 0);
	id_of(ids[0], "a", 5, "one");
	memset(ids[1], 0xee, SL_ITEM_ID_LEN);
	assert_ok(sl_engine_keys_codec.request(&req, 0, (const uint8_t(*)[SL_ITEM_ID_LEN])ids, 2));
	assert_ok(sl_engine_keys_answer(it, req.data, req.len, 1 << 20, &frame));
	memset(&a, 0, sizeof(a));
	assert_ok(sl_engine_keys_codec.decode(&a, 0, frame.data, frame.len));
	assert_int_equal(a.n_found, 1);
	assert_int_equal(a.n_missing, 1);
	assert_memory_equal(a.found[0].key, "a", 1);
	assert_memory_equal(a.missing, ids[1], SL_ITEM_ID_LEN);
	sl_free(a.found);
	/* a version that is not the one hashed: a verification error */
	frame.data[5 + 32 + 1 + 1 + 7] ^= 1;
	assert_int_equal(sl_engine_keys_codec.decode(&a, 0, frame.data, frame.len), SL_EVERIFY);
	/* requests: values and garbage are refused, nothing answered */
	sl_buf_reset(&frame);
	req.data[1] = SL_WIRE_ITEMS_VALUES;
	assert_int_equal(sl_engine_keys_answer(it, req.data, req.len, 1 << 20, &frame), SL_EINVAL);
	assert_int_equal(sl_engine_keys_answer(it, req.data, 3, 1 << 20, &frame), SL_ECORRUPT);
	assert_int_equal(frame.len, 0);
	assert_int_equal(
	        sl_engine_keys_codec.request(&req, 1, (const uint8_t(*)[SL_ITEM_ID_LEN])ids, 2),
	        SL_EINVAL);
	sl_buf_free(&req);
	sl_buf_free(&frame);
	sl_engine_items_free(it);
	fx_close(&f);
}

int main(void)
{
	sl_log_set_level(SL_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_item_id),
	        cmocka_unit_test(test_store_scan_items),
	        cmocka_unit_test(test_set_cached_until_l3_moves),
	        cmocka_unit_test(test_build_pages_over_a_growing_arena),
	        cmocka_unit_test(test_keys_frame_codec),
	        cmocka_unit_test(test_keys_answer_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
