/*
 * The encoding of DAG entries (docs/protocol.md, "DAG entries"), their
 * signature and id. Only the form is checked here; an entry's place in a
 * namespace (its parents held, its height, its author's right) is
 * checked where it is stored (dag.c).
 *
 *   u8 version | ns[32] | be64 height | u8 n_parents | n x id[32]
 *   | author[32] | be64 time_ms | be32 n_writes | writes | signature[64]
 *   write: u8 1 | varint key_len | key | varint value_len | digest[32]   set
 *          u8 2 | varint key_len | key                                  delete
 *          u8 3 | pk[32] | u8 role                                      role
 *
 * The root entry's ns is a random salt (it has no namespace to name yet),
 * so two namespaces never share an id, even made by one key at once.
 *
 * The signature is Ed25519 by the author over "sluice/dag-entry/v1"
 * followed by everything before the signature; the id is the SHA-256 of
 * the whole encoding, signature included. Decoding accepts one spelling
 * of each entry (canonical varints, sorted distinct parents, writes
 * distinct by key and by role key, no trailing byte), so an id names
 * exactly one entry.
 */
#include "sluice/dag.h"
#include "store/dag_internal.h"

#include <stdlib.h>
#include <string.h>

#define DOMAIN     "sluice/dag-entry/v1"
#define DOMAIN_LEN (sizeof(DOMAIN) - 1)

const char *sl_dag_role_name(sl_dag_role role)
{
	switch (role) {
	case SL_DAG_NONE:
		return "none";
	case SL_DAG_READ:
		return "read";
	case SL_DAG_WRITE:
		return "write";
	case SL_DAG_ADMIN:
		return "admin";
	}
	return "?";
}

int sl_dag_role_parse(sl_dag_role *out, const char *name)
{
	for (int r = SL_DAG_NONE; r <= SL_DAG_ADMIN; r++)
		if (strcmp(name, sl_dag_role_name((sl_dag_role)r)) == 0) {
			*out = (sl_dag_role)r;
			return SL_OK;
		}
	return sl_error_set(SL_EINVAL, "unknown role '%s': none, read, write or admin", name);
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t any = 0;
	for (size_t i = 0; i < n; i++)
		any |= p[i];
	return any == 0;
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

/* Writes in (role or not, key) order. */
static int cmp_write(const void *a, const void *b)
{
	const sl_dag_write *x = *(const sl_dag_write *const *)a;
	const sl_dag_write *y = *(const sl_dag_write *const *)b;
	int xr = x->kind == SL_DAG_ROLE, yr = y->kind == SL_DAG_ROLE;
	if (xr != yr)
		return xr - yr;
	return xr ? memcmp(x->pk, y->pk, SL_ED25519_PK_LEN)
	          : cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

/* One write per key and one per role key: sorted, then neighbours
 * compared, so 4096 writes cost n log n, not n^2, before any signature
 * is checked. */
static int check_distinct(const sl_dag_entry *e)
{
	const sl_dag_write **order;
	int rc = SL_OK;
	if (e->n_writes < 2)
		return SL_OK;
	if (!(order = sl_malloc(e->n_writes * sizeof(*order))))
		return SL_ENOMEM;
	for (size_t i = 0; i < e->n_writes; i++)
		order[i] = &e->writes[i];
	qsort(order, e->n_writes, sizeof(*order), cmp_write);
	for (size_t i = 1; i < e->n_writes && rc == SL_OK; i++) {
		if (cmp_write(&order[i - 1], &order[i]) == 0) {
			size_t a = (size_t)(order[i - 1] - e->writes),
			       b = (size_t)(order[i] - e->writes);
			rc = sl_error_set(SL_ECORRUPT,
			                  "entry: writes %zu and %zu are for the same key",
			                  a < b ? a : b, a < b ? b : a);
		}
	}
	sl_free(order);
	return rc;
}

/* The rules of the form that both directions check. */
static int check_form(const sl_dag_entry *e)
{
	int root = e->n_parents == 0;
	if (root != (e->height == 0))
		return sl_error_set(SL_ECORRUPT, "entry: only the root entry has no parent, and it "
		                                 "alone has height 0");
	if (!root && is_zero(e->ns.bytes, SL_DIGEST_LEN))
		return sl_error_set(SL_ECORRUPT,
		                    "entry: an entry but the root names its namespace");
	if (e->n_parents > SL_DAG_MAX_PARENTS)
		return sl_error_set(SL_ECORRUPT, "entry: more than %d parents", SL_DAG_MAX_PARENTS);
	for (size_t i = 1; i < e->n_parents; i++)
		if (memcmp(e->parents[i - 1].bytes, e->parents[i].bytes, SL_DIGEST_LEN) >= 0)
			return sl_error_set(SL_ECORRUPT,
			                    "entry: parents are not sorted and distinct");
	if (e->n_writes > SL_DAG_MAX_WRITES)
		return sl_error_set(SL_ECORRUPT, "entry: more than %d writes", SL_DAG_MAX_WRITES);
	for (size_t i = 0; i < e->n_writes; i++) {
		const sl_dag_write *w = &e->writes[i];
		if (w->kind == SL_DAG_ROLE) {
			if (w->role > SL_DAG_ADMIN)
				return sl_error_set(SL_ECORRUPT,
				                    "entry: write %zu: unknown role %d", i,
				                    (int)w->role);
		} else if (w->kind == SL_DAG_SET || w->kind == SL_DAG_DELETE) {
			if (sl_key_validate(w->key, w->key_len) != SL_OK)
				return sl_error_set(SL_ECORRUPT, "entry: write %zu: %s", i,
				                    sl_error_last()->message);
			if (w->kind == SL_DAG_SET && w->value_len > SL_VALUE_MAX)
				return sl_error_set(SL_ECORRUPT,
				                    "entry: write %zu: value too large", i);
		} else {
			return sl_error_set(SL_ECORRUPT, "entry: write %zu: unknown kind %d", i,
			                    (int)w->kind);
		}
	}
	return check_distinct(e);
}

/* The body: everything the signature covers but the domain. */
static int encode_body(const sl_dag_entry *e, sl_buf *out)
{
	int rc;
	if ((rc = sl_buf_append_byte(out, SL_DAG_ENTRY_VERSION)) != SL_OK ||
	    (rc = sl_buf_append(out, e->ns.bytes, SL_DIGEST_LEN)) != SL_OK ||
	    (rc = sl_buf_append_be64(out, e->height)) != SL_OK ||
	    (rc = sl_buf_append_byte(out, (uint8_t)e->n_parents)) != SL_OK)
		return rc;
	for (size_t i = 0; i < e->n_parents; i++)
		if ((rc = sl_buf_append(out, e->parents[i].bytes, SL_DIGEST_LEN)) != SL_OK)
			return rc;
	if ((rc = sl_buf_append(out, e->author, SL_ED25519_PK_LEN)) != SL_OK ||
	    (rc = sl_buf_append_be64(out, e->time_ms)) != SL_OK ||
	    (rc = sl_buf_append_be32(out, (uint32_t)e->n_writes)) != SL_OK)
		return rc;
	for (size_t i = 0; i < e->n_writes && rc == SL_OK; i++) {
		const sl_dag_write *w = &e->writes[i];
		if ((rc = sl_buf_append_byte(out, (uint8_t)w->kind)) != SL_OK)
			return rc;
		if (w->kind == SL_DAG_ROLE) {
			if ((rc = sl_buf_append(out, w->pk, SL_ED25519_PK_LEN)) == SL_OK)
				rc = sl_buf_append_byte(out, (uint8_t)w->role);
			continue;
		}
		if ((rc = sl_buf_append_varint(out, w->key_len)) != SL_OK ||
		    (rc = sl_buf_append(out, w->key, w->key_len)) != SL_OK)
			return rc;
		if (w->kind == SL_DAG_SET &&
		    ((rc = sl_buf_append_varint(out, w->value_len)) != SL_OK ||
		     (rc = sl_buf_append(out, w->digest.bytes, SL_DIGEST_LEN)) != SL_OK))
			return rc;
	}
	return rc;
}

static int signed_message(const uint8_t *body, size_t len, sl_buf *msg)
{
	int rc = sl_buf_append(msg, DOMAIN, DOMAIN_LEN);
	return rc == SL_OK ? sl_buf_append(msg, body, len) : rc;
}

int sl_dag_entry_sign(sl_dag_entry *e, const uint8_t sk[SL_ED25519_SK_LEN], sl_buf *out)
{
	sl_buf msg = SL_BUF_INIT(SL_DAG_ENTRY_MAX + DOMAIN_LEN);
	size_t start = out->len;
	int rc;

	if (check_form(e) != SL_OK) /* the caller's mistake, not damaged input */
		return sl_error_set(SL_EINVAL, "%s", sl_error_last()->message);
	if (memcmp(sk + 32, e->author, SL_ED25519_PK_LEN) != 0) /* libsodium keeps pk there */
		return sl_error_set(SL_EINVAL, "entry: the key signing is not its author's");
	if ((rc = encode_body(e, out)) != SL_OK)
		goto fail;
	if (out->len - start + SL_ED25519_SIG_LEN > SL_DAG_ENTRY_MAX) {
		rc = sl_error_set(SL_ETOOLARGE, "entry of %zu bytes exceeds the limit of %zu",
		                  out->len - start + SL_ED25519_SIG_LEN, SL_DAG_ENTRY_MAX);
		goto fail;
	}
	if ((rc = signed_message(out->data + start, out->len - start, &msg)) != SL_OK ||
	    (rc = sl_ed25519_sign(e->signature, msg.data, msg.len, sk)) != SL_OK ||
	    (rc = sl_buf_append(out, e->signature, SL_ED25519_SIG_LEN)) != SL_OK)
		goto fail;
	sl_sha256(&e->id, out->data + start, out->len - start);
	sl_buf_free(&msg);
	return SL_OK;
fail:
	out->len = start;
	sl_buf_free(&msg);
	return rc;
}

static int decode_writes(sl_dag_entry *e, sl_reader *r)
{
	for (size_t i = 0; i < e->n_writes; i++) {
		sl_dag_write *w = &e->writes[i];
		const uint8_t *bytes;
		uint64_t len;
		uint8_t kind, role;

		if (sl_reader_u8(r, &kind) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "entry: write %zu is cut short", i);
		w->kind = (sl_dag_write_kind)kind;
		if (kind == SL_DAG_ROLE) {
			if (sl_reader_bytes(r, SL_ED25519_PK_LEN, &bytes) != SL_OK ||
			    sl_reader_u8(r, &role) != SL_OK)
				return sl_error_set(SL_ECORRUPT, "entry: write %zu is cut short",
				                    i);
			memcpy(w->pk, bytes, SL_ED25519_PK_LEN);
			w->role = (sl_dag_role)role;
			continue;
		}
		if (kind != SL_DAG_SET && kind != SL_DAG_DELETE)
			return sl_error_set(SL_ECORRUPT, "entry: write %zu has unknown kind %u", i,
			                    kind);
		if (sl_reader_varint(r, &len) != SL_OK || len > SL_KEY_MAX ||
		    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "entry: write %zu has a bad key", i);
		w->key = (const char *)bytes;
		w->key_len = (size_t)len;
		if (kind == SL_DAG_DELETE)
			continue;
		if (sl_reader_varint(r, &w->value_len) != SL_OK ||
		    sl_reader_bytes(r, SL_DIGEST_LEN, &bytes) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "entry: write %zu is cut short", i);
		memcpy(w->digest.bytes, bytes, SL_DIGEST_LEN);
	}
	return SL_OK;
}

/* signature: 0 for an entry whose signature was checked before (read
 * back from the store, or checked by dag_signatures_check). */
static int decode(sl_dag_entry *out, const uint8_t *data, size_t len, int signature)
{
	sl_buf msg = SL_BUF_INIT(SL_DAG_ENTRY_MAX + DOMAIN_LEN);
	sl_dag_entry e;
	sl_reader r;
	const uint8_t *bytes;
	uint8_t version, n_parents;
	uint32_t n_writes;
	size_t body_len;
	int rc;

	memset(&e, 0, sizeof(e));
	if (len > SL_DAG_ENTRY_MAX)
		return sl_error_set(SL_ETOOLARGE, "entry of %zu bytes exceeds the limit of %zu",
		                    len, SL_DAG_ENTRY_MAX);
	sl_reader_init(&r, data, len);
	rc = SL_ECORRUPT;
	if (sl_reader_u8(&r, &version) != SL_OK || version != SL_DAG_ENTRY_VERSION) {
		sl_error_set(SL_ECORRUPT, "entry: not version %d", SL_DAG_ENTRY_VERSION);
		goto fail;
	}
	if (sl_reader_bytes(&r, SL_DIGEST_LEN, &bytes) != SL_OK)
		goto short_input;
	memcpy(e.ns.bytes, bytes, SL_DIGEST_LEN);
	if (sl_reader_be64(&r, &e.height) != SL_OK || sl_reader_u8(&r, &n_parents) != SL_OK)
		goto short_input;
	if (n_parents > SL_DAG_MAX_PARENTS) {
		sl_error_set(SL_ECORRUPT, "entry: more than %d parents", SL_DAG_MAX_PARENTS);
		goto fail;
	}
	e.n_parents = n_parents;
	for (size_t i = 0; i < e.n_parents; i++) {
		if (sl_reader_bytes(&r, SL_DIGEST_LEN, &bytes) != SL_OK)
			goto short_input;
		memcpy(e.parents[i].bytes, bytes, SL_DIGEST_LEN);
	}
	if (sl_reader_bytes(&r, SL_ED25519_PK_LEN, &bytes) != SL_OK)
		goto short_input;
	memcpy(e.author, bytes, SL_ED25519_PK_LEN);
	if (sl_reader_be64(&r, &e.time_ms) != SL_OK || sl_reader_be32(&r, &n_writes) != SL_OK)
		goto short_input;
	/* Each write takes at least 3 bytes: allocate nothing the input
	 * cannot hold. */
	if (n_writes > SL_DAG_MAX_WRITES || n_writes > sl_reader_remaining(&r) / 3) {
		sl_error_set(SL_ECORRUPT, "entry: %u writes cannot fit", n_writes);
		goto fail;
	}
	e.n_writes = n_writes;
	if (n_writes && !(e.writes = sl_calloc(n_writes, sizeof(*e.writes)))) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if ((rc = decode_writes(&e, &r)) != SL_OK)
		goto fail;
	body_len = r.off;
	rc = SL_ECORRUPT;
	if (sl_reader_bytes(&r, SL_ED25519_SIG_LEN, &bytes) != SL_OK)
		goto short_input;
	memcpy(e.signature, bytes, SL_ED25519_SIG_LEN);
	if (sl_reader_expect_end(&r) != SL_OK) {
		sl_error_set(SL_ECORRUPT, "entry: trailing bytes");
		goto fail;
	}
	if ((rc = check_form(&e)) != SL_OK)
		goto fail;
	if (signature && (rc = signed_message(data, body_len, &msg)) != SL_OK)
		goto fail;
	if (signature && sl_ed25519_verify(e.signature, msg.data, msg.len, e.author) != SL_OK) {
		rc = sl_error_set(SL_EVERIFY, "entry: the signature does not verify");
		goto fail;
	}
	sl_sha256(&e.id, data, len);
	sl_buf_free(&msg);
	*out = e;
	return SL_OK;
short_input:
	sl_error_set(SL_ECORRUPT, "entry: cut short at byte %zu", r.off);
	rc = SL_ECORRUPT;
fail:
	sl_free(e.writes);
	sl_buf_free(&msg);
	return rc;
}

int sl_dag_entry_decode(sl_dag_entry *out, const uint8_t *data, size_t len)
{
	return decode(out, data, len, 1);
}

int dag_entry_decode_checked(sl_dag_entry *out, const uint8_t *data, size_t len)
{
	return decode(out, data, len, 0);
}

void sl_dag_entry_free(sl_dag_entry *e)
{
	if (!e)
		return;
	sl_free(e->writes);
	e->writes = NULL;
	e->n_writes = 0;
}
