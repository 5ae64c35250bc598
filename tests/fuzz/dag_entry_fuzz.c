/*
 * Fuzz target for the decoder of DAG entries (src/store/dag_entry.c).
 *
 * Input layout: byte 0 chooses. Even: the rest is an entry as a peer
 * would send it. Odd: the rest is an entry's body (all but the
 * signature); its author field, where the input has one, is replaced by
 * the public half of a fixed test key, which then signs the body, so
 * inputs get past the signature check to what comes after it.
 *
 * Oracles besides "no crash, no leak":
 *   - a refusal is SL_ECORRUPT or SL_EVERIFY, or SL_ETOOLARGE exactly
 *     when the entry is past SL_DAG_ENTRY_MAX;
 *   - whatever decodes has as id the SHA-256 of the input, as signature
 *     the input's last 64 bytes, valid for its author over the domain and
 *     the body; at most 16 parents, sorted and distinct; no parent
 *     exactly when its height is 0, and a non-zero namespace when it has
 *     parents (a root's namespace field is its salt); at most
 *     4096 writes, of known kinds, distinct by key and by role key, keys
 *     valid and inside the input, known roles, values within the cap;
 *   - the layout of docs/protocol.md, written here independently,
 *     re-encodes the decoded body to exactly the input (one spelling per
 *     entry);
 *   - decoding again gives the same entry;
 *   - an entry the fixed key signed is reproduced byte for byte by
 *     sl_dag_entry_sign (Ed25519 signatures are deterministic).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/dag.h"

#define FUZZ_NAME "dag_entry_fuzz"
#include "fuzz_util.h"

#define DOMAIN "sluice/dag-entry/v1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A key for tests only: seed then public half, as libsodium keeps them. */
static const uint8_t test_sk[SL_ED25519_SK_LEN] = {
        0xc1, 0x63, 0x94, 0x87, 0xea, 0x51, 0x63, 0x9e, 0x6b, 0xc7, 0xfb, 0x85, 0xb1,
        0x20, 0x32, 0x4e, 0xfe, 0xce, 0x75, 0xd2, 0xcd, 0x77, 0xb5, 0xa0, 0x9d, 0xde,
        0x9f, 0xb8, 0x8b, 0xbf, 0x52, 0xad, 0x8b, 0x49, 0x34, 0xe6, 0xf1, 0xc0, 0x31,
        0x28, 0xf3, 0x8f, 0xc7, 0x40, 0x79, 0x6b, 0x18, 0x1c, 0x39, 0x20, 0xa2, 0xa0,
        0x85, 0x7c, 0xd9, 0xb4, 0x65, 0xe0, 0xd3, 0xfa, 0x4c, 0x24, 0x08, 0x2e,
};
#define TEST_PK (test_sk + 32)

/* Where the author sits in a body: after version, ns, height, n_parents
 * and the parents. */
#define AUTHOR_AT(n_parents) (1 + SL_DIGEST_LEN + 8 + 1 + (size_t)(n_parents)*SL_DIGEST_LEN)

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t any = 0;
	for (size_t i = 0; i < n; i++)
		any |= p[i];
	return any == 0;
}

static int same_key(const sl_dag_write *a, const sl_dag_write *b)
{
	if ((a->kind == SL_DAG_ROLE) != (b->kind == SL_DAG_ROLE))
		return 0;
	if (a->kind == SL_DAG_ROLE)
		return memcmp(a->pk, b->pk, SL_ED25519_PK_LEN) == 0;
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* The body as the documented layout spells it. */
static void encode_body(const sl_dag_entry *e, sl_buf *out)
{
	int rc = sl_buf_append_byte(out, SL_DAG_ENTRY_VERSION);
	rc |= sl_buf_append(out, e->ns.bytes, SL_DIGEST_LEN);
	rc |= sl_buf_append_be64(out, e->height);
	rc |= sl_buf_append_byte(out, (uint8_t)e->n_parents);
	for (size_t i = 0; i < e->n_parents; i++)
		rc |= sl_buf_append(out, e->parents[i].bytes, SL_DIGEST_LEN);
	rc |= sl_buf_append(out, e->author, SL_ED25519_PK_LEN);
	rc |= sl_buf_append_be64(out, e->time_ms);
	rc |= sl_buf_append_be32(out, (uint32_t)e->n_writes);
	for (size_t i = 0; i < e->n_writes; i++) {
		const sl_dag_write *w = &e->writes[i];
		rc |= sl_buf_append_byte(out, (uint8_t)w->kind);
		if (w->kind == SL_DAG_ROLE) {
			rc |= sl_buf_append(out, w->pk, SL_ED25519_PK_LEN);
			rc |= sl_buf_append_byte(out, (uint8_t)w->role);
			continue;
		}
		rc |= sl_buf_append_varint(out, w->key_len);
		rc |= sl_buf_append(out, w->key, w->key_len);
		if (w->kind == SL_DAG_SET) {
			rc |= sl_buf_append_varint(out, w->value_len);
			rc |= sl_buf_append(out, w->digest.bytes, SL_DIGEST_LEN);
		}
	}
	if (rc != SL_OK)
		die("cannot re-encode a body");
}

static void check_form(const sl_dag_entry *e, const uint8_t *data, size_t size)
{
	if (e->n_parents > SL_DAG_MAX_PARENTS)
		die("more than 16 parents");
	for (size_t i = 1; i < e->n_parents; i++)
		if (memcmp(e->parents[i - 1].bytes, e->parents[i].bytes, SL_DIGEST_LEN) >= 0)
			die("parents not sorted and distinct");
	if ((e->n_parents == 0) != (e->height == 0) ||
	    (e->n_parents > 0 && is_zero(e->ns.bytes, SL_DIGEST_LEN)))
		die("the root form without being the root, or the other way round");
	if (e->n_writes > SL_DAG_MAX_WRITES || (e->n_writes && !e->writes))
		die("writes out of bounds");
	for (size_t i = 0; i < e->n_writes; i++) {
		const sl_dag_write *w = &e->writes[i];
		switch (w->kind) {
		case SL_DAG_ROLE:
			if (w->role > SL_DAG_ADMIN)
				die("an unknown role");
			break;
		case SL_DAG_SET:
			if (w->value_len > SL_VALUE_MAX)
				die("a value past the cap");
			/* fall through */
		case SL_DAG_DELETE:
			if (w->key_len > SL_KEY_MAX || !inside(w->key, w->key_len, data, size))
				die("a key outside the input");
			if (sl_key_validate(w->key, w->key_len) != SL_OK)
				die("an invalid key");
			break;
		default:
			die("an unknown kind of write");
		}
		for (size_t j = 0; j < i; j++)
			if (same_key(&e->writes[j], w))
				die("two writes for one key");
	}
}

static void check_same(const sl_dag_entry *a, const sl_dag_entry *b)
{
	if (memcmp(&a->id, &b->id, sizeof(a->id)) || memcmp(&a->ns, &b->ns, sizeof(a->ns)) ||
	    a->height != b->height || a->n_parents != b->n_parents ||
	    memcmp(a->parents, b->parents, a->n_parents * sizeof(a->parents[0])) ||
	    memcmp(a->author, b->author, SL_ED25519_PK_LEN) || a->time_ms != b->time_ms ||
	    a->n_writes != b->n_writes || memcmp(a->signature, b->signature, SL_ED25519_SIG_LEN))
		die("decoding twice gave two entries");
	for (size_t i = 0; i < a->n_writes; i++) {
		const sl_dag_write *x = &a->writes[i], *y = &b->writes[i];
		if (x->kind != y->kind || x->key != y->key || x->key_len != y->key_len ||
		    (x->kind == SL_DAG_SET && (x->value_len != y->value_len ||
		                               memcmp(&x->digest, &y->digest, SL_DIGEST_LEN))) ||
		    (x->kind == SL_DAG_ROLE &&
		     (x->role != y->role || memcmp(x->pk, y->pk, SL_ED25519_PK_LEN))))
			die("decoding twice gave two entries");
	}
}

static void entry(const uint8_t *data, size_t size)
{
	sl_buf body = SL_BUF_INIT(SIZE_MAX), msg = SL_BUF_INIT(SIZE_MAX);
	sl_dag_entry e, again;
	sl_digest id;
	int rc = sl_dag_entry_decode(&e, data, size);

	if (rc != SL_OK) {
		if (rc != sl_error_last()->code)
			die("a refusal's code is not the last error's");
		if ((rc == SL_ETOOLARGE) != (size > SL_DAG_ENTRY_MAX))
			die("SL_ETOOLARGE for an entry within the cap, or not past it");
		if (rc != SL_ECORRUPT && rc != SL_EVERIFY && rc != SL_ETOOLARGE)
			die("refused with an unexpected code");
		return;
	}
	if (size > SL_DAG_ENTRY_MAX || size < AUTHOR_AT(0) + 32 + 8 + 4 + SL_ED25519_SIG_LEN)
		die("an entry of an impossible size decoded");
	sl_sha256(&id, data, size);
	if (memcmp(id.bytes, e.id.bytes, SL_DIGEST_LEN) != 0)
		die("the id is not the SHA-256 of the entry");
	if (memcmp(e.signature, data + size - SL_ED25519_SIG_LEN, SL_ED25519_SIG_LEN) != 0)
		die("the signature is not the last 64 bytes");
	check_form(&e, data, size);

	encode_body(&e, &body);
	if (body.len != size - SL_ED25519_SIG_LEN || memcmp(body.data, data, body.len) != 0)
		die("a decoded entry re-encodes differently");
	if (sl_buf_append(&msg, DOMAIN, strlen(DOMAIN)) != SL_OK ||
	    sl_buf_append(&msg, body.data, body.len) != SL_OK)
		die("out of memory");
	if (sl_ed25519_verify(e.signature, msg.data, msg.len, e.author) != SL_OK)
		die("a decoded entry's signature does not verify");

	if (sl_dag_entry_decode(&again, data, size) != SL_OK)
		die("an entry decoded once but not twice");
	check_same(&e, &again);
	sl_dag_entry_free(&again);

	if (memcmp(e.author, TEST_PK, SL_ED25519_PK_LEN) == 0) {
		sl_dag_entry copy = e;
		sl_buf out = SL_BUF_INIT(SL_DAG_ENTRY_MAX);
		if (sl_dag_entry_sign(&copy, test_sk, &out) != SL_OK)
			die("a decoded entry cannot be signed again");
		if (out.len != size || memcmp(out.data, data, size) != 0 ||
		    memcmp(copy.id.bytes, e.id.bytes, SL_DIGEST_LEN) != 0)
			die("signing a decoded entry again gives other bytes");
		sl_buf_free(&out);
	}
	sl_dag_entry_free(&e);
	if (e.writes || e.n_writes)
		die("sl_dag_entry_free left the writes");
	sl_buf_free(&body);
	sl_buf_free(&msg);
}

/* Sign a body with the test key, as its author. */
static void signed_body(const uint8_t *data, size_t size)
{
	sl_buf msg = SL_BUF_INIT(SIZE_MAX), enc = SL_BUF_INIT(SIZE_MAX);
	uint8_t sig[SL_ED25519_SIG_LEN];

	if (sl_buf_append(&enc, data, size) != SL_OK)
		die("out of memory");
	if (size > AUTHOR_AT(0) - 1 && enc.len >= AUTHOR_AT(data[AUTHOR_AT(0) - 1]) + 32)
		memcpy(enc.data + AUTHOR_AT(data[AUTHOR_AT(0) - 1]), TEST_PK, SL_ED25519_PK_LEN);
	if (sl_buf_append(&msg, DOMAIN, strlen(DOMAIN)) != SL_OK ||
	    sl_buf_append(&msg, enc.data, enc.len) != SL_OK ||
	    sl_ed25519_sign(sig, msg.data, msg.len, test_sk) != SL_OK ||
	    sl_buf_append(&enc, sig, sizeof(sig)) != SL_OK)
		die("cannot sign a body");
	entry(enc.data, enc.len);
	sl_buf_free(&msg);
	sl_buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		entry(data + 1, size - 1);
	else
		signed_body(data + 1, size - 1);
	return 0;
}
