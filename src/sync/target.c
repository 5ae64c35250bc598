/*
 * Targets: a namespace's (size, root, floor) as a server announces it,
 * signed by the node's Ed25519 key so a client that trusts the key need
 * not trust the server or the network. The signed message binds the
 * namespace name, so a target cannot be replayed for another namespace.
 * JSON goes through jansson; hex fields are checked for length.
 */
#include "sluice/sync.h"

#include <jansson.h>
#include <string.h>

#define TARGET_DOMAIN "sluice/target/v1"

int sl_target_message(sl_buf *out, const char *ns, const sl_target *t)
{
	size_t ns_len = strlen(ns);
	int rc;
	if (ns_len == 0 || ns_len > SL_NS_NAME_MAX)
		return sl_error_set(SL_EINVAL, "namespace name of %zu bytes", ns_len);
	if ((rc = sl_buf_append(out, TARGET_DOMAIN, strlen(TARGET_DOMAIN))) != SL_OK ||
	    (rc = sl_buf_append_byte(out, (uint8_t)ns_len)) != SL_OK ||
	    (rc = sl_buf_append(out, ns, ns_len)) != SL_OK ||
	    (rc = sl_buf_append_be64(out, t->size)) != SL_OK ||
	    (rc = sl_buf_append(out, t->root.bytes, SL_DIGEST_LEN)) != SL_OK)
		return rc;
	return sl_buf_append_be64(out, t->floor);
}

int sl_target_sign(sl_signed_target *t, const sl_node_key *key)
{
	sl_buf msg = SL_BUF_INIT(256);
	int rc;
	if ((rc = sl_target_message(&msg, t->ns, &t->target)) == SL_OK &&
	    (rc = sl_ed25519_sign(t->signature, msg.data, msg.len, key->sk)) == SL_OK) {
		memcpy(t->node, key->pk, SL_ED25519_PK_LEN);
		t->has_signature = 1;
	}
	sl_buf_free(&msg);
	return rc;
}

int sl_target_verify(const sl_signed_target *t, const uint8_t *trusted_pk)
{
	sl_buf msg = SL_BUF_INIT(256);
	char want[2 * SL_ED25519_PK_LEN + 1], got[2 * SL_ED25519_PK_LEN + 1];
	int rc;

	if (!t->has_signature)
		return sl_error_set(SL_EVERIFY, "target of '%s' is not signed", t->ns);
	if (trusted_pk && memcmp(trusted_pk, t->node, SL_ED25519_PK_LEN) != 0) {
		sl_hex_encode(want, trusted_pk, SL_ED25519_PK_LEN);
		sl_hex_encode(got, t->node, SL_ED25519_PK_LEN);
		return sl_error_set(SL_EVERIFY,
		                    "target of '%s' is signed by node %s, not the trusted key %s",
		                    t->ns, got, want);
	}
	if ((rc = sl_target_message(&msg, t->ns, &t->target)) == SL_OK &&
	    sl_ed25519_verify(t->signature, msg.data, msg.len, t->node) != SL_OK)
		rc = sl_error_set(SL_EVERIFY, "the signature on the target of '%s' does not verify",
		                  t->ns);
	sl_buf_free(&msg);
	return rc;
}

int sl_target_to_json(const sl_signed_target *t, sl_buf *out)
{
	char node[2 * SL_ED25519_PK_LEN + 1], sig[2 * SL_ED25519_SIG_LEN + 1];
	sl_digest_hex root = sl_digest_to_hex(&t->target.root);

	sl_hex_encode(node, t->node, SL_ED25519_PK_LEN);
	sl_hex_encode(sig, t->signature, SL_ED25519_SIG_LEN);
	return sl_buf_printf(out,
	                     "{\"ns\":\"%s\",\"kind\":\"%s\",\"size\":%llu,\"root\":\"%s\","
	                     "\"floor\":%llu,\"node\":\"%s\",\"signature\":%s%s%s}",
	                     t->ns, sl_ns_kind_name(t->kind), (unsigned long long)t->target.size,
	                     root.s, (unsigned long long)t->target.floor, node,
	                     t->has_signature ? "\"" : "", t->has_signature ? sig : "null",
	                     t->has_signature ? "\"" : "");
}

static int hex_field(json_t *obj, const char *name, uint8_t *out, size_t n)
{
	json_t *v = json_object_get(obj, name);
	const char *s;
	size_t got = 0;
	if (!json_is_string(v))
		return sl_error_set(SL_ECORRUPT, "target: '%s' is missing or not a string", name);
	s = json_string_value(v);
	if (strlen(s) != 2 * n || sl_hex_decode(out, n, &got, s, 2 * n) != SL_OK || got != n)
		return sl_error_set(SL_ECORRUPT, "target: '%s' is not %zu bytes of hex", name, n);
	return SL_OK;
}

static int u64_field(json_t *obj, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(obj, name);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return sl_error_set(SL_ECORRUPT, "target: '%s' is not a non-negative integer",
		                    name);
	*out = (uint64_t)json_integer_value(v);
	return SL_OK;
}

int sl_target_from_json(sl_signed_target *out, const char *json, size_t len)
{
	sl_signed_target t;
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *v;
	int rc = SL_OK;

	memset(&t, 0, sizeof(t));
	if (!json_is_object(root)) {
		rc = sl_error_set(SL_ECORRUPT, "target: not a JSON object (%s)",
		                  root ? "other JSON" : jerr.text);
		goto cleanup;
	}
	v = json_object_get(root, "ns");
	if (!json_is_string(v) || sl_ns_name_validate(json_string_value(v)) != SL_OK) {
		rc = sl_error_set(SL_ECORRUPT, "target: 'ns' is not a namespace name");
		goto cleanup;
	}
	strcpy(t.ns, json_string_value(v));
	v = json_object_get(root, "kind");
	if (!json_is_string(v) || sl_ns_kind_parse(&t.kind, json_string_value(v)) != SL_OK) {
		rc = sl_error_set(SL_ECORRUPT, "target: 'kind' is not immutable or mutable");
		goto cleanup;
	}
	if ((rc = u64_field(root, "size", &t.target.size)) != SL_OK ||
	    (rc = u64_field(root, "floor", &t.target.floor)) != SL_OK ||
	    (rc = hex_field(root, "root", t.target.root.bytes, SL_DIGEST_LEN)) != SL_OK ||
	    (rc = hex_field(root, "node", t.node, SL_ED25519_PK_LEN)) != SL_OK)
		goto cleanup;
	if (t.target.floor > t.target.size) {
		rc = sl_error_set(SL_ECORRUPT, "target: floor %llu is past size %llu",
		                  (unsigned long long)t.target.floor,
		                  (unsigned long long)t.target.size);
		goto cleanup;
	}
	v = json_object_get(root, "signature");
	if (v && !json_is_null(v)) {
		if ((rc = hex_field(root, "signature", t.signature, SL_ED25519_SIG_LEN)) != SL_OK)
			goto cleanup;
		t.has_signature = 1;
	}
	*out = t;
cleanup:
	json_decref(root);
	return rc;
}
