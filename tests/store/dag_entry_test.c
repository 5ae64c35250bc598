/*
 * The encoding of dag entries (src/store/dag_entry.c):
 *   test_entry_vectors    the vectors of docs/protocol.md, byte for byte;
 *   test_entry_encoding   sign/decode round trip of every field, the id,
 *                         the documented layout byte for byte (an encoder
 *                         here, written from the layout), and what decode
 *                         and sign refuse (flipped bits in every region,
 *                         every truncation, trailing bytes, bad parents, a
 *                         root with a height, duplicate writes, bad keys,
 *                         sizes past the caps).
 * Seeded (rerun with SLUICE_SEED=<seed>).
 */
#include "dag_testutil.h"

#define DOMAIN "sluice/dag-entry/v1"

/* ------------------------------------------------------ entry encoding */

typedef struct raw_opts {
	uint8_t version;
	int long_varints; /* key lengths as two-byte varints (not canonical) */
} raw_opts;

static void put_varint(sl_buf *b, uint64_t v, int long_form)
{
	if (long_form && v < 128) {
		assert_ok(sl_buf_append_byte(b, (uint8_t)(v | 0x80)));
		assert_ok(sl_buf_append_byte(b, 0));
		return;
	}
	assert_ok(sl_buf_append_varint(b, v));
}

/* The layout as docs and dag_entry.c describe it, with no check of the
 * form, properly signed: for entries sl_dag_entry_sign would not make. */
static void raw_encode(const sl_dag_entry *e, const sl_digest *parents, size_t n_parents,
                       const uint8_t *sk, const raw_opts *o, sl_buf *out)
{
	sl_buf msg = SL_BUF_INIT(SIZE_MAX);
	uint8_t sig[SL_ED25519_SIG_LEN];
	size_t start = out->len;

	assert_ok(sl_buf_append_byte(out, o ? o->version : SL_DAG_ENTRY_VERSION));
	assert_ok(sl_buf_append(out, e->ns.bytes, SL_DIGEST_LEN));
	assert_ok(sl_buf_append_be64(out, e->height));
	assert_ok(sl_buf_append_byte(out, (uint8_t)n_parents));
	for (size_t i = 0; i < n_parents; i++)
		assert_ok(sl_buf_append(out, parents[i].bytes, SL_DIGEST_LEN));
	assert_ok(sl_buf_append(out, e->author, SL_ED25519_PK_LEN));
	assert_ok(sl_buf_append_be64(out, e->time_ms));
	assert_ok(sl_buf_append_be32(out, (uint32_t)e->n_writes));
	for (size_t i = 0; i < e->n_writes; i++) {
		const sl_dag_write *w = &e->writes[i];
		assert_ok(sl_buf_append_byte(out, (uint8_t)w->kind));
		if (w->kind == SL_DAG_ROLE) {
			assert_ok(sl_buf_append(out, w->pk, SL_ED25519_PK_LEN));
			assert_ok(sl_buf_append_byte(out, (uint8_t)w->role));
			continue;
		}
		put_varint(out, w->key_len, o && o->long_varints);
		assert_ok(sl_buf_append(out, w->key, w->key_len));
		if (w->kind == SL_DAG_SET) {
			put_varint(out, w->value_len, 0);
			assert_ok(sl_buf_append(out, w->digest.bytes, SL_DIGEST_LEN));
		}
	}
	assert_ok(sl_buf_append(&msg, DOMAIN, strlen(DOMAIN)));
	assert_ok(sl_buf_append(&msg, out->data + start, out->len - start));
	assert_ok(sl_ed25519_sign(sig, msg.data, msg.len, sk));
	assert_ok(sl_buf_append(out, sig, SL_ED25519_SIG_LEN));
	sl_buf_free(&msg);
}

/* A form-valid, non-root entry with every kind of write. */
static void sample_entry(sl_dag_entry *e, sl_dag_write *w, const key *author, const key *other)
{
	memset(e, 0, sizeof(*e));
	tu_rng_fill(&rng, e->ns.bytes, SL_DIGEST_LEN);
	e->ns.bytes[0] |= 1;
	e->height = 7;
	e->n_parents = 3;
	for (size_t i = 0; i < 3; i++)
		tu_rng_fill(&rng, e->parents[i].bytes, SL_DIGEST_LEN);
	e->parents[1].bytes[0] = e->parents[0].bytes[0] ^ 0x80; /* distinct */
	e->parents[2].bytes[0] = e->parents[0].bytes[0] ^ 0x40;
	qsort(e->parents, 3, sizeof(e->parents[0]), cmp_digest);
	memcpy(e->author, author->pk, SL_ED25519_PK_LEN);
	e->time_ms = UINT64_C(1767225600123);
	w[0] = set_w("dir/a", "the value of a");
	w[1] = del_w("dir/b");
	w[2] = role_w(other->pk, SL_DAG_WRITE);
	e->n_writes = 3;
	e->writes = w;
}

static void expect_same_entry(const sl_dag_entry *got, const sl_dag_entry *want)
{
	assert_memory_equal(got->id.bytes, want->id.bytes, SL_DIGEST_LEN);
	assert_memory_equal(got->ns.bytes, want->ns.bytes, SL_DIGEST_LEN);
	assert_int_equal(got->height, want->height);
	assert_int_equal(got->n_parents, want->n_parents);
	for (size_t i = 0; i < want->n_parents; i++)
		assert_memory_equal(got->parents[i].bytes, want->parents[i].bytes, SL_DIGEST_LEN);
	assert_memory_equal(got->author, want->author, SL_ED25519_PK_LEN);
	assert_int_equal(got->time_ms, want->time_ms);
	assert_int_equal(got->n_writes, want->n_writes);
	for (size_t i = 0; i < want->n_writes; i++) {
		const sl_dag_write *g = &got->writes[i], *w = &want->writes[i];
		assert_int_equal(g->kind, w->kind);
		if (w->kind == SL_DAG_ROLE) {
			assert_memory_equal(g->pk, w->pk, SL_ED25519_PK_LEN);
			assert_int_equal(g->role, w->role);
			continue;
		}
		assert_int_equal(g->key_len, w->key_len);
		assert_memory_equal(g->key, w->key, w->key_len);
		if (w->kind == SL_DAG_SET) {
			assert_int_equal(g->value_len, w->value_len);
			assert_memory_equal(g->digest.bytes, w->digest.bytes, SL_DIGEST_LEN);
		}
	}
	assert_memory_equal(got->signature, want->signature, SL_ED25519_SIG_LEN);
}

/* decode must refuse data with `code` (0: ECORRUPT or EVERIFY). */
static void expect_refused(const uint8_t *data, size_t len, int code, const char *what)
{
	sl_dag_entry e;
	int rc = sl_dag_entry_decode(&e, data, len);
	if (rc == SL_OK) {
		sl_dag_entry_free(&e);
		fail_msg("decode accepted %s", what);
	}
	if (code ? rc != code : rc != SL_ECORRUPT && rc != SL_EVERIFY)
		fail_msg("decode refused %s with %d (%s), not %d", what, rc,
		         sl_error_last()->message, code);
}

/* Form violations, each signed properly so only the form is at fault. */
static void expect_form_refused(const sl_dag_entry *e, const sl_digest *parents, size_t n_parents,
                                const key *k, const raw_opts *o, const char *what)
{
	sl_buf enc = SL_BUF_INIT(SIZE_MAX);
	raw_encode(e, parents, n_parents, k->sk, o, &enc);
	expect_refused(enc.data, enc.len, SL_ECORRUPT, what);
	sl_buf_free(&enc);
}

static void expect_sign_refused(sl_dag_entry *e, const key *k, int code, const char *what)
{
	sl_buf out = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	int rc;
	assert_ok(sl_buf_append(&out, "xyz", 3));
	rc = sl_dag_entry_sign(e, k->sk, &out);
	if (rc != code)
		fail_msg("sign of %s: %d (%s), not %d", what, rc,
		         rc ? sl_error_last()->message : "accepted", code);
	assert_int_equal(out.len, 3); /* nothing appended */
	sl_buf_free(&out);
}

/* The vectors of docs/protocol.md ("DAG entries"): the RFC 8032 test 1
 * key signs a root (salt 00..1f) and an entry on it, byte for byte. */
static void test_entry_vectors(void **state)
{
	static const char root_hex[] =
	        "01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
	        "1f000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa6"
	        "2325af021a68f707511a0000018bcfe568000000000092e85ea5614515f88d95"
	        "4cb4507c92508f43b016eb33c4895c92696ba7c1b70aaab3f6ff6bc8aede1bbe"
	        "61908867e181d5c6121e887b776df921b2b8eaa46c07";
	static const char child_hex[] =
	        "01219095c4240be09b0259e68aaca21510a809d6ec23356da2c557471536fd6c"
	        "10000000000000000101219095c4240be09b0259e68aaca21510a809d6ec2335"
	        "6da2c557471536fd6c10d75a980182b10ab7d54bfed3c964073a0ee172f3daa6"
	        "2325af021a68f707511a0000018bcfe56801000000020103612f62052cf24dba"
	        "5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982403111111"
	        "111111111111111111111111111111111111111111111111111111111102818f"
	        "fc674ec4f6b1cd05ce03f7cd781f4d0755c1170e5492c52bc63bbd10d2c7bef7"
	        "d29f86803dd55a57084396de9b1cfa498e2c8768e43802a76576f2293b0a";
	uint8_t sk[SL_ED25519_SK_LEN], want[1024];
	sl_buf enc = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
	sl_dag_entry root, child;
	sl_dag_write w[2];
	size_t n;
	(void)state;

	assert_ok(sl_hex_decode(sk, 32, &n,
	                        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	                        64));
	assert_ok(sl_hex_decode(sk + 32, 32, &n,
	                        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
	                        64));
	memset(&root, 0, sizeof(root));
	memcpy(root.author, sk + 32, SL_ED25519_PK_LEN);
	root.time_ms = UINT64_C(1700000000000);
	for (int i = 0; i < SL_DIGEST_LEN; i++)
		root.ns.bytes[i] = (uint8_t)i;
	assert_ok(sl_dag_entry_sign(&root, sk, &enc));
	assert_ok(sl_hex_decode(want, sizeof(want), &n, root_hex, strlen(root_hex)));
	assert_int_equal(enc.len, n);
	assert_memory_equal(enc.data, want, n);

	memset(&child, 0, sizeof(child));
	memset(w, 0, sizeof(w));
	child.ns = root.id;
	child.height = 1;
	child.n_parents = 1;
	child.parents[0] = root.id;
	memcpy(child.author, sk + 32, SL_ED25519_PK_LEN);
	child.time_ms = UINT64_C(1700000000001);
	w[0].kind = SL_DAG_SET;
	w[0].key = "a/b";
	w[0].key_len = 3;
	w[0].value_len = 5;
	sl_sha256(&w[0].digest, "hello", 5);
	w[1].kind = SL_DAG_ROLE;
	memset(w[1].pk, 0x11, SL_ED25519_PK_LEN);
	w[1].role = SL_DAG_WRITE;
	child.writes = w;
	child.n_writes = 2;
	enc.len = 0;
	assert_ok(sl_dag_entry_sign(&child, sk, &enc));
	assert_ok(sl_hex_decode(want, sizeof(want), &n, child_hex, strlen(child_hex)));
	assert_int_equal(enc.len, n);
	assert_memory_equal(enc.data, want, n);
	assert_string_equal(sl_digest_to_hex(&root.id).s,
	                    "219095c4240be09b0259e68aaca21510a809d6ec23356da2c557471536fd6c10");
	assert_string_equal(sl_digest_to_hex(&child.id).s,
	                    "1d1ed1b5ec00a58736af47630727f9737dd8b539f3f2d90497ca855789cf193e");
	sl_buf_free(&enc);
}

static void test_entry_encoding(void **state)
{
	key k = new_key(), other = new_key();
	sl_dag_write w[8], w2[8];
	sl_dag_entry e, got, bad;
	sl_digest parents[SL_DAG_MAX_PARENTS + 1], d;
	sl_buf enc = SL_BUF_INIT(SL_DAG_ENTRY_MAX), raw = SL_BUF_INIT(SIZE_MAX);
	sl_buf big = SL_BUF_INIT(SL_DAG_ENTRY_MAX + 2);
	size_t off_parents, off_author, off_time, off_nwrites, off_writes, off_sig;
	uint8_t *copy;
	(void)state;

	/* Round trip of every field; the id is the hash of the encoding. */
	sample_entry(&e, w, &k, &other);
	assert_ok(sl_dag_entry_sign(&e, k.sk, &enc));
	sl_sha256(&d, enc.data, enc.len);
	assert_memory_equal(d.bytes, e.id.bytes, SL_DIGEST_LEN);
	assert_ok(sl_dag_entry_decode(&got, enc.data, enc.len));
	expect_same_entry(&got, &e);
	/* Keys borrow from the encoding. */
	assert_true((const uint8_t *)got.writes[0].key > enc.data &&
	            (const uint8_t *)got.writes[0].key < enc.data + enc.len);
	sl_dag_entry_free(&got);
	assert_null(got.writes);

	/* The layout is the documented one, byte for byte (Ed25519 signing
	 * is deterministic). */
	raw_encode(&e, e.parents, e.n_parents, k.sk, NULL, &raw);
	assert_int_equal(raw.len, enc.len);
	assert_memory_equal(raw.data, enc.data, enc.len);
	off_parents = 1 + 32 + 8 + 1;
	off_author = off_parents + 3 * 32;
	off_time = off_author + 32;
	off_nwrites = off_time + 8;
	off_writes = off_nwrites + 4;
	off_sig = enc.len - SL_ED25519_SIG_LEN;
	assert_int_equal(enc.data[off_writes], SL_DAG_SET);
	assert_int_equal(enc.data[off_writes + 1], strlen("dir/a"));
	assert_int_equal(enc.len, off_writes + (1 + 1 + 5 + 1 + 32) + (1 + 1 + 5) + (1 + 32 + 1) +
	                                  SL_ED25519_SIG_LEN);

	/* A root: no parent, height 0, zero ns, ROLE writes only. */
	{
		sl_dag_entry root;
		sl_dag_write rw = role_w(other.pk, SL_DAG_READ);
		sl_buf renc = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
		memset(&root, 0, sizeof(root));
		memcpy(root.author, k.pk, SL_ED25519_PK_LEN);
		root.time_ms = 1;
		root.writes = &rw;
		root.n_writes = 1;
		assert_ok(sl_dag_entry_sign(&root, k.sk, &renc));
		assert_ok(sl_dag_entry_decode(&got, renc.data, renc.len));
		expect_same_entry(&got, &root);
		sl_dag_entry_free(&got);
		sl_buf_free(&renc);
	}

	/* Every single flipped bit, low and high, in every region. */
	copy = malloc(enc.len + 1);
	assert_non_null(copy);
	for (size_t i = 0; i < enc.len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			int code = 0;
			char what[64];
			memcpy(copy, enc.data, enc.len);
			copy[i] ^= (uint8_t)(1u << bit);
			if (i == 0)
				code = SL_ECORRUPT; /* the version */
			else if ((i >= 1 && i < 1 + 32) || (i >= off_author && i < off_nwrites) ||
			         i >= off_sig)
				code = SL_EVERIFY; /* ns, author, time, signature */
			snprintf(what, sizeof(what), "bit %d of byte %zu flipped", bit, i);
			expect_refused(copy, enc.len, code, what);
		}
	}
	/* Every truncation, and a trailing byte. */
	for (size_t len = 0; len < enc.len; len++)
		expect_refused(enc.data, len, SL_ECORRUPT, "a truncated entry");
	memcpy(copy, enc.data, enc.len);
	copy[enc.len] = 0;
	expect_refused(copy, enc.len + 1, SL_ECORRUPT, "a trailing byte");
	free(copy);
	/* Past the cap: ETOOLARGE before anything else. */
	assert_ok(sl_buf_append(&big, enc.data, enc.len));
	while (big.len < SL_DAG_ENTRY_MAX + 1)
		assert_ok(sl_buf_append_byte(&big, 0));
	expect_refused(big.data, big.len, SL_ETOOLARGE, "an entry past the cap");

	/* The raw encoder spells valid entries as decode wants them. */
	raw.len = 0;
	raw_encode(&e, e.parents, e.n_parents, k.sk, NULL, &raw);
	assert_ok(sl_dag_entry_decode(&got, raw.data, raw.len));
	sl_dag_entry_free(&got);

	/* Form violations, properly signed. */
	memcpy(parents, e.parents, 3 * sizeof(parents[0]));
	{
		sl_digest swapped[3] = {parents[1], parents[0], parents[2]};
		sl_digest dup[3] = {parents[0], parents[1], parents[1]};
		expect_form_refused(&e, swapped, 3, &k, NULL, "unsorted parents");
		expect_form_refused(&e, dup, 3, &k, NULL, "duplicate parents");
	}
	for (size_t i = 0; i < SL_DAG_MAX_PARENTS + 1; i++) {
		memset(parents[i].bytes, 0, SL_DIGEST_LEN);
		parents[i].bytes[0] = (uint8_t)(i + 1);
	}
	expect_form_refused(&e, parents, SL_DAG_MAX_PARENTS + 1, &k, NULL, "17 parents");
	raw.len = 0; /* 16 parents are fine */
	raw_encode(&e, parents, SL_DAG_MAX_PARENTS, &k.sk[0], NULL, &raw);
	assert_ok(sl_dag_entry_decode(&got, raw.data, raw.len));
	assert_int_equal(got.n_parents, SL_DAG_MAX_PARENTS);
	sl_dag_entry_free(&got);

	bad = e;
	bad.height = 1; /* a root with a height */
	memset(bad.ns.bytes, 0, SL_DIGEST_LEN);
	expect_form_refused(&bad, NULL, 0, &k, NULL, "a root of height 1");
	bad = e;
	bad.height = 0; /* a non-root of height 0 */
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "an entry with parents at height 0");
	bad = e; /* a root's ns is its salt: any bytes */
	bad.height = 0;
	raw.len = 0;
	raw_encode(&bad, NULL, 0, &k.sk[0], NULL, &raw);
	assert_ok(sl_dag_entry_decode(&got, raw.data, raw.len));
	assert_memory_equal(got.ns.bytes, e.ns.bytes, SL_DIGEST_LEN);
	sl_dag_entry_free(&got);
	bad = e; /* a non-root that names none */
	memset(bad.ns.bytes, 0, SL_DIGEST_LEN);
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "an entry with no namespace");
	{
		raw_opts v2 = {2, 0}, lv = {SL_DAG_ENTRY_VERSION, 1};
		expect_form_refused(&e, e.parents, 3, &k, &v2, "version 2");
		expect_form_refused(&e, e.parents, 3, &k, &lv, "a long varint");
	}

	/* Duplicate writes: same key (SET/SET, SET/DELETE), same role key. */
	bad = e;
	bad.writes = w2;
	w2[0] = set_w("x", "1");
	w2[1] = set_w("x", "2");
	bad.n_writes = 2;
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "two SETs of one key");
	w2[1] = del_w("x");
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "a SET and a DELETE of one key");
	w2[0] = role_w(other.pk, SL_DAG_READ);
	w2[1] = role_w(other.pk, SL_DAG_WRITE);
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "two roles of one key");
	/* Bad writes: keys, kinds, roles, sizes. */
	bad.n_writes = 1;
	w2[0] = del_w("a//b");
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "an invalid key");
	w2[0] = del_w("");
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "an empty key");
	w2[0] = del_w("x");
	w2[0].kind = (sl_dag_write_kind)4;
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "write kind 4");
	w2[0] = role_w(other.pk, SL_DAG_READ);
	w2[0].role = (sl_dag_role)4;
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "role 4");
	w2[0] = set_w("x", "1");
	w2[0].value_len = SL_VALUE_MAX + 1;
	expect_form_refused(&bad, e.parents, 3, &k, NULL, "a value past the cap");

	/* sign checks the same form, and more. */
	{
		sl_dag_entry s = e;
		sl_dag_write *many;
		char *keys;
		/* 17 parents, sorted as far as they go (the author, after the
		 * array, sorting above them), so only the count is at fault. */
		key high = new_key();
		while (high.pk[0] <= SL_DAG_MAX_PARENTS)
			high = new_key();
		memcpy(s.author, high.pk, SL_ED25519_PK_LEN);
		memcpy(s.parents, parents, SL_DAG_MAX_PARENTS * sizeof(parents[0]));
		s.n_parents = SL_DAG_MAX_PARENTS + 1;
		expect_sign_refused(&s, &high, SL_EINVAL, "17 parents");
		s = e;
		s.parents[0] = e.parents[1];
		s.parents[1] = e.parents[0];
		expect_sign_refused(&s, &k, SL_EINVAL, "unsorted parents");
		s = e;
		s.height = 0;
		expect_sign_refused(&s, &k, SL_EINVAL, "height 0 with parents");
		s = e;
		s.writes = w2;
		s.n_writes = 1;
		w2[0] = del_w("../x");
		expect_sign_refused(&s, &k, SL_EINVAL, "an invalid key");
		w2[0] = del_w("a\x01");
		expect_sign_refused(&s, &k, SL_EINVAL, "a key with a control byte");
		w2[0] = set_w("x", "1");
		w2[1] = del_w("x");
		s.n_writes = 2;
		expect_sign_refused(&s, &k, SL_EINVAL, "two writes of one key");
		s = e;
		expect_sign_refused(&s, &other, SL_EINVAL, "another key than the author's");

		/* Too many writes, and too many bytes. */
		many = calloc(SL_DAG_MAX_WRITES + 1, sizeof(*many));
		keys = malloc((size_t)(SL_DAG_MAX_WRITES + 1) * 100);
		assert_non_null(many);
		assert_non_null(keys);
		for (size_t i = 0; i <= SL_DAG_MAX_WRITES; i++) {
			char *kk = keys + i * 100;
			memset(kk, 'k', 99);
			snprintf(kk, 100, "key-%05zu-", i);
			kk[strlen(kk)] = 'k'; /* pad the key to 99 bytes */
			kk[99] = '\0';
			many[i].kind = SL_DAG_DELETE;
			many[i].key = kk;
			many[i].key_len = 99;
		}
		s = e;
		s.writes = many;
		s.n_writes = SL_DAG_MAX_WRITES + 1;
		expect_sign_refused(&s, &k, SL_EINVAL, "4097 writes");
		s.n_writes = SL_DAG_MAX_WRITES; /* 4096 deletes of 99 bytes: ~414 KiB */
		expect_sign_refused(&s, &k, SL_ETOOLARGE, "an entry past the cap");
		s.n_writes = 2000; /* ~206 KiB: fits */
		{
			sl_buf ok = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
			assert_ok(sl_dag_entry_sign(&s, k.sk, &ok));
			assert_true(ok.len > 200000 && ok.len <= SL_DAG_ENTRY_MAX);
			assert_ok(sl_dag_entry_decode(&got, ok.data, ok.len));
			assert_int_equal(got.n_writes, 2000);
			sl_dag_entry_free(&got);
			sl_buf_free(&ok);
		}
		free(many);
		free(keys);
	}

	sl_buf_free(&enc);
	sl_buf_free(&raw);
	sl_buf_free(&big);
	values_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_entry_vectors),
	        cmocka_unit_test(test_entry_encoding),
	};
	assert_int_equal(sl_base_init(), SL_OK);
	rng = tu_rng_seeded("dag_entry_test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
