/*
 * The keys frame of the diff between engines (docs/protocol.md, "Keys
 * request and frame"): the answer of POST /api/v0/kv-reconcile/keys, each
 * id asked for answered with the key, version and value digest it stands
 * for, or as missing. The request is the items request of state
 * reconciliation (net/wire_items.c) with no flags.
 *
 * Built like the items frame, and begun and ended by its functions
 * (sl_wire_items_begin, sl_wire_items_end: the header and the tail are
 * the same), so a server adds answers until its byte budget is spent; the
 * decoder
 * borrows from the input and accepts exactly one well-formed frame.
 * Whether an answer hashes to the id asked for is the client's to check
 * (sl_engine_keys_codec, engine_items.c).
 */
#include <string.h>

#include "sluice/engine.h"
#include "sluice/store.h"

#define FRAME_HEADER_LEN 5 /* version, found count */
/* An answer takes at least id, a 1-byte key length, a 1-byte key,
 * version and digest. */
#define ANSWER_MIN (SL_ITEM_ID_LEN + 1 + 1 + 8 + 32)

static int malformed(const char *detail)
{
	return sl_error_set(SL_ECORRUPT, "malformed keys frame: %s", detail);
}

int sl_kv_keys_add(sl_buf *out, const uint8_t id[SL_ITEM_ID_LEN], const char *key, size_t key_len,
                   uint64_t version, const uint8_t value_digest[32])
{
	int rc;
	if ((rc = sl_buf_append(out, id, SL_ITEM_ID_LEN)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, key_len)) != SL_OK ||
	    (rc = sl_buf_append(out, key, key_len)) != SL_OK ||
	    (rc = sl_buf_append_be64(out, version)) != SL_OK)
		return rc;
	return sl_buf_append(out, value_digest, 32);
}

static int decode_found(sl_kv_key *keys, uint32_t n, sl_reader *r)
{
	for (uint32_t i = 0; i < n; i++) {
		sl_kv_key *k = &keys[i];
		const uint8_t *bytes;
		uint64_t len;

		if (sl_reader_bytes(r, SL_ITEM_ID_LEN, &k->id) != SL_OK ||
		    sl_reader_varint(r, &len) != SL_OK || len > SL_KEY_MAX ||
		    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return sl_error_set(
			        SL_ECORRUPT,
			        "malformed keys frame: answer %u is cut short or its key "
			        "too long",
			        i);
		k->key = (const char *)bytes;
		k->key_len = (size_t)len;
		if (sl_key_validate(k->key, k->key_len) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "malformed keys frame: answer %u: %s", i,
			                    sl_error_last()->message);
		if (sl_reader_be64(r, &k->version) != SL_OK ||
		    sl_reader_bytes(r, 32, &k->value_digest) != SL_OK)
			return sl_error_set(SL_ECORRUPT,
			                    "malformed keys frame: answer %u is cut short", i);
	}
	return SL_OK;
}

int sl_kv_keys_decode(sl_kv_keys *out, const uint8_t *frame, size_t len)
{
	sl_kv_keys k;
	sl_reader r;
	uint8_t version;
	uint32_t n_found;
	int rc;

	memset(&k, 0, sizeof(k));
	sl_reader_init(&r, frame, len);
	if (sl_reader_u8(&r, &version) != SL_OK || sl_reader_be32(&r, &n_found) != SL_OK)
		return malformed("short header");
	if (version != SL_WIRE_VERSION)
		return malformed("unknown version");
	/* allocate nothing the frame cannot hold */
	if (n_found > SL_WIRE_MAX_IDS || n_found > sl_reader_remaining(&r) / ANSWER_MIN)
		return malformed("more answers than the frame can hold");
	if (n_found && !(k.found = sl_calloc(n_found, sizeof(*k.found))))
		return SL_ENOMEM;
	if ((rc = decode_found(k.found, n_found, &r)) != SL_OK)
		goto fail;
	k.n_found = n_found;
	if ((rc = sl_wire_items_tail(&r, "keys", n_found, &k.missing, &k.n_missing,
	                             &k.remaining)) != SL_OK)
		goto fail;
	*out = k;
	return SL_OK;
fail:
	sl_free(k.found);
	return rc;
}

void sl_kv_keys_free(sl_kv_keys *k)
{
	if (!k)
		return;
	sl_free(k->found);
	memset(k, 0, sizeof(*k));
}
