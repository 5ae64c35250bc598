/*
 * Signed targets and the node key: the signed message of docs/protocol.md
 * byte for byte, signing and verifying, rejection of every single-bit
 * change to what is signed, the JSON form both ways with rejection of
 * every malformed field, and DIR/node.key: created once with mode 0600,
 * loaded the same afterwards, and never replaced when it does not hold a
 * key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sluice/sync.h"
#include "testutil.h"

#define DOC_ROOT_HEX "5fcd37e0069bf2a7206dd68b2628003d017911e485d6f3d90488f90870e3001f"

/* docs/protocol.md, "Targets". */
static const char message_vector_hex[] = "736c756963652f7461726765742f7631"
                                         "04"
                                         "646f6373"
                                         "0000000000000002" DOC_ROOT_HEX "0000000000000000";

static int setup_sodium(void **state)
{
	(void)state;
	return sl_base_init() == SL_OK ? 0 : -1;
}

static void new_key(sl_node_key *key)
{
	assert_int_equal(sl_ed25519_keypair(key->pk, key->sk), SL_OK);
}

/* The worked example's target, namespace "docs". */
static sl_signed_target doc_target(void)
{
	sl_signed_target t;
	memset(&t, 0, sizeof(t));
	strcpy(t.ns, "docs");
	t.kind = SL_NS_IMMUTABLE;
	t.target.size = 2;
	t.target.floor = 0;
	assert_int_equal(sl_digest_from_hex(&t.target.root, DOC_ROOT_HEX), SL_OK);
	return t;
}

static void assert_targets_equal(const sl_signed_target *a, const sl_signed_target *b)
{
	assert_string_equal(a->ns, b->ns);
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->target.size, b->target.size);
	assert_memory_equal(a->target.root.bytes, b->target.root.bytes, SL_DIGEST_LEN);
	assert_int_equal(a->target.floor, b->target.floor);
	assert_memory_equal(a->node, b->node, SL_ED25519_PK_LEN);
	assert_int_equal(a->has_signature, b->has_signature);
	if (a->has_signature)
		assert_memory_equal(a->signature, b->signature, SL_ED25519_SIG_LEN);
}

/* ------------------------------------------------------------- message */

static void test_message_vector(void **state)
{
	(void)state;
	sl_signed_target t = doc_target();
	sl_buf msg = SL_BUF_INIT(1024);
	uint8_t want[128];
	size_t want_len = 0;

	assert_int_equal(sl_hex_decode(want, sizeof(want), &want_len, message_vector_hex,
	                               strlen(message_vector_hex)),
	                 SL_OK);
	/* 16 + 1 + 4 + 8 + 32 + 8 */
	assert_int_equal(want_len, 69);
	assert_int_equal(sl_target_message(&msg, t.ns, &t.target), SL_OK);
	assert_int_equal(msg.len, want_len);
	assert_memory_equal(msg.data, want, want_len);

	/* The namespace name must be 1..64 bytes. */
	char long_ns[SL_NS_NAME_MAX + 2];
	memset(long_ns, 'n', sizeof(long_ns) - 1);
	long_ns[sizeof(long_ns) - 1] = '\0';
	sl_buf_reset(&msg);
	assert_int_equal(sl_target_message(&msg, "", &t.target), SL_EINVAL);
	assert_int_equal(sl_target_message(&msg, long_ns, &t.target), SL_EINVAL);
	long_ns[SL_NS_NAME_MAX] = '\0';
	assert_int_equal(sl_target_message(&msg, long_ns, &t.target), SL_OK);
	assert_int_equal(msg.len, 16 + 1 + SL_NS_NAME_MAX + 8 + 32 + 8);
	sl_buf_free(&msg);
}

/* --------------------------------------------------------- sign/verify */

static void test_sign_verify(void **state)
{
	(void)state;
	sl_node_key key, other;
	sl_signed_target t = doc_target();
	sl_buf msg = SL_BUF_INIT(1024);

	new_key(&key);
	new_key(&other);
	assert_int_equal(sl_target_verify(&t, NULL), SL_EVERIFY); /* unsigned */
	assert_int_equal(sl_target_verify(&t, key.pk), SL_EVERIFY);
	assert_int_equal(sl_target_sign(&t, &key), SL_OK);
	assert_true(t.has_signature);
	assert_memory_equal(t.node, key.pk, SL_ED25519_PK_LEN);
	assert_int_equal(sl_target_verify(&t, NULL), SL_OK);
	assert_int_equal(sl_target_verify(&t, key.pk), SL_OK);

	/* The signature is over the documented message. */
	assert_int_equal(sl_target_message(&msg, t.ns, &t.target), SL_OK);
	assert_int_equal(sl_ed25519_verify(t.signature, msg.data, msg.len, key.pk), SL_OK);

	/* Signed by a key other than the trusted one. */
	assert_int_equal(sl_target_verify(&t, other.pk), SL_EVERIFY);
	assert_int_equal(sl_error_last()->code, SL_EVERIFY);

	/* kind is not signed: a wrong kind does not break the signature. */
	t.kind = SL_NS_MUTABLE;
	assert_int_equal(sl_target_verify(&t, key.pk), SL_OK);

	/* Unsigned again, even with the right node and signature bytes. */
	t.has_signature = 0;
	assert_int_equal(sl_target_verify(&t, key.pk), SL_EVERIFY);

	/* Re-signed by the other key: verifies only for that key. */
	assert_int_equal(sl_target_sign(&t, &other), SL_OK);
	assert_int_equal(sl_target_verify(&t, other.pk), SL_OK);
	assert_int_equal(sl_target_verify(&t, key.pk), SL_EVERIFY);

	/* A node field claiming the trusted key over another key's signature. */
	memcpy(t.node, key.pk, SL_ED25519_PK_LEN);
	assert_int_equal(sl_target_verify(&t, key.pk), SL_EVERIFY);
	assert_int_equal(sl_target_verify(&t, NULL), SL_EVERIFY);
	sl_buf_free(&msg);
}

/* Flip each bit of `field` in turn; none of them may verify. */
static void expect_each_flip_fails(sl_signed_target *t, uint8_t *field, size_t len,
                                   const uint8_t *trusted)
{
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			field[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(sl_target_verify(t, trusted), SL_EVERIFY);
			field[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(sl_target_verify(t, trusted), SL_OK);
}

static void test_verify_rejects_every_flipped_bit(void **state)
{
	(void)state;
	sl_node_key key;
	sl_signed_target t = doc_target();

	new_key(&key);
	t.target.size = UINT64_C(0x8877665544332211);
	t.target.floor = UINT64_C(0x1122334455667788);
	assert_int_equal(sl_target_sign(&t, &key), SL_OK);

	for (int pass = 0; pass < 2; pass++) {
		const uint8_t *trusted = pass ? key.pk : NULL;
		expect_each_flip_fails(&t, t.signature, SL_ED25519_SIG_LEN, trusted);
		expect_each_flip_fails(&t, t.target.root.bytes, SL_DIGEST_LEN, trusted);
		/* Every bit of "docs" is in the message; no single flip makes a
		 * NUL, which would shorten the name instead. */
		expect_each_flip_fails(&t, (uint8_t *)t.ns, strlen(t.ns), trusted);
		expect_each_flip_fails(&t, t.node, SL_ED25519_PK_LEN, trusted);
		for (int bit = 0; bit < 64; bit++) {
			t.target.size ^= UINT64_C(1) << bit;
			assert_int_equal(sl_target_verify(&t, trusted), SL_EVERIFY);
			t.target.size ^= UINT64_C(1) << bit;
			t.target.floor ^= UINT64_C(1) << bit;
			assert_int_equal(sl_target_verify(&t, trusted), SL_EVERIFY);
			t.target.floor ^= UINT64_C(1) << bit;
		}
	}
	assert_int_equal(sl_target_verify(&t, key.pk), SL_OK);

	/* A signature for the same target under another namespace name. */
	strcpy(t.ns, "docs2");
	assert_int_equal(sl_target_verify(&t, key.pk), SL_EVERIFY);
	strcpy(t.ns, "doc");
	assert_int_equal(sl_target_verify(&t, key.pk), SL_EVERIFY);
}

/* ----------------------------------------------------------------- JSON */

static void test_json_round_trip(void **state)
{
	(void)state;
	tu_rng rng = tu_rng_seeded("test_json_round_trip");
	sl_node_key key;
	sl_buf json = SL_BUF_INIT(4096);
	sl_signed_target t = doc_target(), back;

	new_key(&key);
	/* Unsigned: "signature": null. */
	assert_int_equal(sl_target_to_json(&t, &json), SL_OK);
	assert_non_null(strstr((const char *)json.data, "\"signature\":null"));
	assert_int_equal(sl_target_from_json(&back, (const char *)json.data, json.len), SL_OK);
	assert_targets_equal(&t, &back);

	/* Signed, and still verifying after the trip. */
	assert_int_equal(sl_target_sign(&t, &key), SL_OK);
	sl_buf_reset(&json);
	assert_int_equal(sl_target_to_json(&t, &json), SL_OK);
	assert_int_equal(sl_target_from_json(&back, (const char *)json.data, json.len), SL_OK);
	assert_targets_equal(&t, &back);
	assert_int_equal(sl_target_verify(&back, key.pk), SL_OK);

	/* Random targets of both kinds, names up to the longest. */
	for (int iter = 0; iter < 200; iter++) {
		static const char name_chars[] =
		        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		        "0123456789_.-";
		size_t ns_len = 1 + (size_t)tu_rng_below(&rng, SL_NS_NAME_MAX);
		memset(&t, 0, sizeof(t));
		for (size_t i = 0; i < ns_len; i++)
			t.ns[i] = name_chars[tu_rng_below(&rng, i ? sizeof(name_chars) - 1
			                                          : sizeof(name_chars) - 3)];
		t.kind = tu_rng_below(&rng, 2) ? SL_NS_MUTABLE : SL_NS_IMMUTABLE;
		t.target.size = tu_rng_below(&rng, 2) ? tu_rng_below(&rng, 1000)
		                                      : tu_rng_next(&rng) >> 1; /* <= INT64_MAX */
		t.target.floor = tu_rng_below(&rng, t.target.size + 1);
		tu_rng_fill(&rng, t.target.root.bytes, SL_DIGEST_LEN);
		tu_rng_fill(&rng, t.node, SL_ED25519_PK_LEN);
		if (tu_rng_below(&rng, 2))
			assert_int_equal(sl_target_sign(&t, &key), SL_OK);
		sl_buf_reset(&json);
		assert_int_equal(sl_target_to_json(&t, &json), SL_OK);
		assert_int_equal(sl_target_from_json(&back, (const char *)json.data, json.len),
		                 SL_OK);
		assert_targets_equal(&t, &back);
		if (t.has_signature)
			assert_int_equal(sl_target_verify(&back, key.pk), SL_OK);
	}

	/* Other spellings that are still the same target: whitespace, key
	 * order, upper-case hex, a missing signature. */
	const char *same =
	        " {\n\"floor\" : 0, \"size\": 2, \"kind\": \"immutable\", \"ns\": \"docs\","
	        "\"root\": \"5FCD37E0069BF2A7206DD68B2628003D017911E485D6F3D90488F90870E3001F\","
	        "\"node\": \"" DOC_ROOT_HEX "\"} ";
	assert_int_equal(sl_target_from_json(&back, same, strlen(same)), SL_OK);
	t = doc_target();
	size_t node_len = 0;
	assert_int_equal(sl_hex_decode(t.node, sizeof(t.node), &node_len, DOC_ROOT_HEX, 64), SL_OK);
	assert_targets_equal(&t, &back);
	sl_buf_free(&json);
}

/* A JSON template whose fields are substituted one at a time. */
#define F_NS    "\"ns\":\"docs\""
#define F_KIND  "\"kind\":\"mutable\""
#define F_SIZE  "\"size\":1840"
#define F_ROOT  "\"root\":\"" DOC_ROOT_HEX "\""
#define F_FLOOR "\"floor\":1502"
#define F_NODE  "\"node\":\"" DOC_ROOT_HEX "\""
#define F_SIG   "\"signature\":\"" DOC_ROOT_HEX DOC_ROOT_HEX "\""

static void test_json_rejects(void **state)
{
	(void)state;
	const char *good =
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "," F_SIG "}";
	const char *bad[] = {
	        /* not an object */
	        "",
	        " ",
	        "null",
	        "[]",
	        "1",
	        "\"docs\"",
	        "{",
	        "{}}",
	        "[" F_NS "]",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "," F_SIG,
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "} x",
	        /* missing fields */
	        "{" F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "}",
	        /* wrong types */
	        "{\"ns\":7," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":null," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS ",\"kind\":2," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":\"1840\"," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":1840.0," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":1.84e3," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":true," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":[1840]," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE ",\"root\":7," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE ",\"root\":null," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT ",\"floor\":\"0\"," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR ",\"node\":{}}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE
	        ",\"signature\":1}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE
	        ",\"signature\":false}",
	        /* hex of the wrong length or not hex */
	        "{" F_NS "," F_KIND "," F_SIZE ",\"root\":\"\"," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE ",\"root\":\"" DOC_ROOT_HEX "0\"," F_FLOOR "," F_NODE
	        "}",
	        "{" F_NS "," F_KIND "," F_SIZE ",\"root\":\"" DOC_ROOT_HEX "00\"," F_FLOOR
	        "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE
	        ",\"root\":\"5fcd37e0069bf2a7206dd68b2628003d017911e485d6f3d90488f90870e300\","
	        " " F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE
	        ",\"root\":\"5fcd37e0069bf2a7206dd68b2628003d017911e485d6f3d90488f90870e3001g\","
	        " " F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE
	        ",\"root\":\" fcd37e0069bf2a7206dd68b2628003d017911e485d6f3d90488f90870e3001f\","
	        " " F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR
	        ",\"node\":\"" DOC_ROOT_HEX DOC_ROOT_HEX "\"}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR ",\"node\":\"abc\"}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE
	        ",\"signature\":\"" DOC_ROOT_HEX "\"}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE
	        ",\"signature\":\"" DOC_ROOT_HEX DOC_ROOT_HEX "00\"}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE
	        ",\"signature\":\"\"}",
	        /* unknown kind */
	        "{" F_NS ",\"kind\":\"append\"," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS ",\"kind\":\"Mutable\"," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS ",\"kind\":\"\"," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        /* negative or out-of-range numbers */
	        "{" F_NS "," F_KIND ",\"size\":-1," F_ROOT ",\"floor\":0," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT ",\"floor\":-1," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":-9223372036854775808," F_ROOT ",\"floor\":0,"
	        " " F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":18446744073709551615," F_ROOT ",\"floor\":0,"
	        " " F_NODE "}",
	        /* floor past size */
	        "{" F_NS "," F_KIND ",\"size\":1501," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND ",\"size\":0," F_ROOT ",\"floor\":1," F_NODE "}",
	        /* invalid namespace names */
	        "{\"ns\":\"\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\".docs\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\"a/b\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\"a b\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\"d\\\"s\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\"d\\u0000s\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\"d\\u00e9\"," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{\"ns\":\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\","
	        " " F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        /* duplicate keys */
	        "{" F_NS "," F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE ",\"size\":1841," F_ROOT "," F_FLOOR "," F_NODE "}",
	        "{" F_NS "," F_KIND "," F_SIZE "," F_ROOT "," F_FLOOR "," F_NODE "," F_SIG "," F_SIG
	        "}",
	};
	sl_signed_target t, before;

	assert_int_equal(sl_target_from_json(&t, good, strlen(good)), SL_OK);
	assert_true(t.has_signature);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&t, 0xa5, sizeof(t));
		memcpy(&before, &t, sizeof(t));
		sl_error_clear();
		if (sl_target_from_json(&t, bad[i], strlen(bad[i])) != SL_ECORRUPT)
			fail_msg("accepted or wrong code for bad JSON %zu: %s", i, bad[i]);
		assert_int_equal(sl_error_last()->code, SL_ECORRUPT);
		assert_non_null(strstr(sl_error_last()->message, "target"));
		assert_memory_equal(&t, &before, sizeof(t));
	}

	/* The longest name, size = floor and the largest size JSON integers
	 * hold are fine. */
	const char *edge =
	        "{\"ns\":\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\","
	        " " F_KIND ",\"size\":9223372036854775807," F_ROOT
	        ",\"floor\":9223372036854775807," F_NODE ",\"signature\":null}";
	assert_int_equal(sl_target_from_json(&t, edge, strlen(edge)), SL_OK);
	assert_int_equal(strlen(t.ns), SL_NS_NAME_MAX);
	assert_int_equal(t.target.size, INT64_MAX);
	assert_int_equal(t.target.floor, INT64_MAX);
	assert_false(t.has_signature);

	/* The length is honoured: the same text cut short is not an object. */
	assert_int_equal(sl_target_from_json(&t, good, strlen(good) - 1), SL_ECORRUPT);
}

/* ------------------------------------------------------------ node key */

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	assert_non_null(f);
	n = fread(out, 1, cap, f);
	fclose(f);
	return n;
}

static void test_node_key_create_and_load(void **state)
{
	(void)state;
	char *dir = tu_tempdir(), path[4200], text[512];
	sl_node_key key, again, fresh;
	sl_signed_target t = doc_target();
	struct stat st;
	size_t len;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/node.key", dir);

	/* Without create: not found, and nothing is written. */
	assert_int_equal(sl_node_key_load(&key, dir, 0), SL_ENOTFOUND);
	assert_int_equal(sl_error_last()->code, SL_ENOTFOUND);
	assert_int_not_equal(stat(path, &st), 0);

	/* First use creates DIR/node.key, 0600, 128 hex digits and a newline. */
	assert_int_equal(sl_node_key_load(&key, dir, 1), SL_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	len = read_file(path, text, sizeof(text));
	assert_int_equal(len, 2 * SL_ED25519_SK_LEN + 1);
	assert_int_equal(text[len - 1], '\n');
	for (size_t i = 0; i + 1 < len; i++)
		assert_non_null(strchr("0123456789abcdef", text[i]));
	assert_memory_equal(key.pk, key.sk + 32, SL_ED25519_PK_LEN);

	/* Later loads, with or without create, give the same key. */
	assert_int_equal(sl_node_key_load(&again, dir, 0), SL_OK);
	assert_memory_equal(&again, &key, sizeof(key));
	assert_int_equal(sl_node_key_load(&again, dir, 1), SL_OK);
	assert_memory_equal(&again, &key, sizeof(key));

	/* The loaded key signs targets that verify for its public key. */
	assert_int_equal(sl_target_sign(&t, &again), SL_OK);
	assert_int_equal(sl_target_verify(&t, key.pk), SL_OK);

	/* Another directory gets another key. */
	char *dir2 = tu_tempdir();
	assert_non_null(dir2);
	assert_int_equal(sl_node_key_load(&fresh, dir2, 1), SL_OK);
	assert_memory_not_equal(fresh.pk, key.pk, SL_ED25519_PK_LEN);
	assert_int_equal(sl_target_verify(&t, fresh.pk), SL_EVERIFY);

	/* Without the trailing newline the file is still a key. */
	write_file(path, text, len - 1);
	assert_int_equal(sl_node_key_load(&again, dir, 0), SL_OK);
	assert_memory_equal(&again, &key, sizeof(key));

	tu_rmtree(dir2);
	free(dir2);
	tu_rmtree(dir);
	free(dir);
}

static void test_node_key_refuses_bad_files(void **state)
{
	(void)state;
	char *dir = tu_tempdir(), path[4200], good[256], bad[512], after[512];
	sl_node_key key, other, loaded;
	size_t hex_len = 2 * SL_ED25519_SK_LEN;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	new_key(&key);
	new_key(&other);
	sl_hex_encode(good, key.sk, SL_ED25519_SK_LEN);

	struct {
		const char *what;
		size_t len;
	} cases[16];
	size_t n_cases = 0;
	char texts[16][512];

#define ADD_CASE(what_, ...)                                                                       \
	do {                                                                                       \
		int n_ = snprintf(texts[n_cases], sizeof(texts[0]), __VA_ARGS__);                  \
		cases[n_cases].what = (what_);                                                     \
		cases[n_cases].len = (size_t)n_;                                                   \
		n_cases++;                                                                         \
	} while (0)

	ADD_CASE("empty", "%s", "");
	ADD_CASE("garbage", "%s", "this is not a key\n");
	ADD_CASE("one digit short", "%.*s\n", (int)hex_len - 1, good);
	ADD_CASE("one byte short", "%.*s\n", (int)hex_len - 2, good);
	ADD_CASE("one byte long", "%s00\n", good);
	ADD_CASE("two newlines", "%s\n\n", good);
	ADD_CASE("carriage return", "%s\r\n", good);
	ADD_CASE("leading space", " %s", good);
	ADD_CASE("public key only", "%.*s\n", (int)hex_len / 2, good + hex_len / 2);
	{
		/* Not hex in the middle. */
		char text[256];
		memcpy(text, good, hex_len + 1);
		text[40] = 'g';
		ADD_CASE("not hex", "%s\n", text);
	}
	{
		/* The seed of one key with the public half of another. */
		char seed_hex[2 * 32 + 1], pk_hex[2 * SL_ED25519_PK_LEN + 1];
		sl_hex_encode(seed_hex, key.sk, 32);
		sl_hex_encode(pk_hex, other.pk, SL_ED25519_PK_LEN);
		ADD_CASE("inconsistent pair", "%s%s\n", seed_hex, pk_hex);
	}
	{
		/* One flipped bit in the public half. */
		char text[256];
		memcpy(text, good, hex_len + 1);
		text[hex_len - 1] = text[hex_len - 1] == '0' ? '1' : '0';
		ADD_CASE("flipped public key", "%s\n", text);
	}
#undef ADD_CASE

	for (size_t i = 0; i < n_cases; i++) {
		memcpy(bad, texts[i], cases[i].len);
		write_file(path, bad, cases[i].len);
		for (int create = 0; create <= 1; create++) {
			sl_error_clear();
			memset(&loaded, 0, sizeof(loaded));
			if (sl_node_key_load(&loaded, dir, create) != SL_ECORRUPT)
				fail_msg("node.key '%s' was not refused", cases[i].what);
			assert_int_equal(sl_error_last()->code, SL_ECORRUPT);
			/* Left as it was: same bytes, not replaced by a new key. */
			assert_int_equal(read_file(path, after, sizeof(after)), cases[i].len);
			assert_memory_equal(after, bad, cases[i].len);
		}
	}

	/* The good text of the same key loads. */
	good[hex_len] = '\n';
	write_file(path, good, hex_len + 1);
	assert_int_equal(sl_node_key_load(&loaded, dir, 0), SL_OK);
	assert_memory_equal(loaded.sk, key.sk, SL_ED25519_SK_LEN);
	assert_memory_equal(loaded.pk, key.pk, SL_ED25519_PK_LEN);

	/* A directory that does not exist: not found without create, an
	 * error (not a key) with it. */
	char missing[4300];
	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
	assert_int_equal(sl_node_key_load(&loaded, missing, 0), SL_ENOTFOUND);
	assert_int_equal(sl_node_key_load(&loaded, missing, 1), SL_EIO);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_message_vector),
	        cmocka_unit_test(test_sign_verify),
	        cmocka_unit_test(test_verify_rejects_every_flipped_bit),
	        cmocka_unit_test(test_json_round_trip),
	        cmocka_unit_test(test_json_rejects),
	        cmocka_unit_test(test_node_key_create_and_load),
	        cmocka_unit_test(test_node_key_refuses_bad_files),
	};
	return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
