/*
 * The frames of the items endpoint of state reconciliation
 * (docs/protocol.md, "Items request and frame"): a client names item ids,
 * the server answers each with the key, digest and (when asked) value it
 * stands for, or as missing.
 *
 * Like wire.c, the frame's first count is patched in at the end, so a
 * server can add answers until its byte budget is spent; decoders borrow
 * from the input and accept exactly one well-formed frame. Whether an
 * answer is the one asked for (its key and digest hash to the id, its
 * value to the digest) is for the client to check, which knows what it
 * asked.
 */
#include "sluice/net.h"

#include <string.h>

#define REQUEST_HEADER_LEN (1 + 1 + 4) /* version, flags, count */
#define FRAME_HEADER_LEN   (1 + 4)     /* version, found count */

static int malformed(const char *what, const char *detail)
{
	return sl_error_set(SL_ECORRUPT, "malformed items %s: %s", what, detail);
}

int sl_wire_items_request(sl_buf *out, unsigned flags, const uint8_t (*ids)[SL_ITEM_ID_LEN],
                          size_t n)
{
	int rc;
	if (n == 0 || n > SL_WIRE_MAX_IDS || (flags & ~(unsigned)SL_WIRE_ITEMS_VALUES))
		return sl_error_set(SL_EINVAL, "an items request names 1..%d ids, not %zu",
		                    SL_WIRE_MAX_IDS, n);
	if ((rc = sl_buf_append_byte(out, SL_WIRE_VERSION)) != SL_OK ||
	    (rc = sl_buf_append_byte(out, (uint8_t)flags)) != SL_OK ||
	    (rc = sl_buf_append_be32(out, (uint32_t)n)) != SL_OK)
		return rc;
	return sl_buf_append(out, ids, n * SL_ITEM_ID_LEN);
}

int sl_wire_items_request_decode(unsigned *flags, const uint8_t **ids, size_t *n,
                                 const uint8_t *body, size_t len)
{
	uint32_t count;
	if (len < REQUEST_HEADER_LEN)
		return malformed("request", "short header");
	if (body[0] != SL_WIRE_VERSION)
		return malformed("request", "unknown version");
	if (body[1] & ~SL_WIRE_ITEMS_VALUES)
		return malformed("request", "unknown flags");
	count = sl_be32_get(body + 2);
	if (count == 0)
		return malformed("request", "no ids");
	if (count > SL_WIRE_MAX_IDS)
		return sl_error_set(SL_ETOOLARGE,
		                    "an items request of %u ids exceeds the cap of %d", count,
		                    SL_WIRE_MAX_IDS);
	if (len - REQUEST_HEADER_LEN != (size_t)count * SL_ITEM_ID_LEN)
		return malformed("request", "the body does not hold exactly its ids");
	*flags = body[1];
	*ids = body + REQUEST_HEADER_LEN;
	*n = count;
	return SL_OK;
}

int sl_wire_items_begin(sl_buf *out)
{
	int rc;
	if ((rc = sl_buf_append_byte(out, SL_WIRE_VERSION)) != SL_OK)
		return rc;
	return sl_buf_append_be32(out, 0); /* patched by sl_wire_items_end */
}

int sl_wire_items_add(sl_buf *out, const uint8_t id[SL_ITEM_ID_LEN], const char *key,
                      size_t key_len, uint64_t value_len, const sl_digest *digest,
                      const void *value)
{
	int rc;
	if ((rc = sl_buf_append(out, id, SL_ITEM_ID_LEN)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, key_len)) != SL_OK ||
	    (rc = sl_buf_append(out, key, key_len)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, value_len)) != SL_OK ||
	    (rc = sl_buf_append(out, digest->bytes, SL_DIGEST_LEN)) != SL_OK)
		return rc;
	return value && value_len ? sl_buf_append(out, value, (size_t)value_len) : SL_OK;
}

int sl_wire_items_end(sl_buf *out, size_t n_found, const uint8_t *missing, size_t n_missing,
                      size_t remaining)
{
	int rc;
	if (out->len < FRAME_HEADER_LEN || n_found + n_missing + remaining > SL_WIRE_MAX_IDS)
		return sl_error_set(SL_EINVAL, "an items frame answers at most %d ids",
		                    SL_WIRE_MAX_IDS);
	sl_be32_put(out->data + 1, (uint32_t)n_found);
	if ((rc = sl_buf_append_be32(out, (uint32_t)n_missing)) != SL_OK ||
	    (n_missing && (rc = sl_buf_append(out, missing, n_missing * SL_ITEM_ID_LEN)) != SL_OK))
		return rc;
	return sl_buf_append_be32(out, (uint32_t)remaining);
}

int sl_wire_items_answer(const uint8_t *ids, size_t n, size_t budget, sl_wire_answer_fn add,
                         void *ctx, sl_buf *out)
{
	sl_buf missing = SL_BUF_INIT((size_t)SL_WIRE_MAX_IDS * SL_ITEM_ID_LEN);
	size_t n_found = 0, n_missing = 0, i;
	int rc;

	if ((rc = sl_wire_items_begin(out)) != SL_OK)
		goto cleanup;
	for (i = 0; i < n; i++) {
		const uint8_t *id = ids + i * SL_ITEM_ID_LEN;
		if (i > 0 && out->len >= budget)
			break;
		rc = add(ctx, id, out);
		if (rc == SL_ENOTFOUND) {
			sl_error_clear();
			if ((rc = sl_buf_append(&missing, id, SL_ITEM_ID_LEN)) != SL_OK)
				goto cleanup;
			n_missing++;
			continue;
		}
		if (rc != SL_OK)
			goto cleanup;
		n_found++;
	}
	rc = sl_wire_items_end(out, n_found, missing.data, n_missing, n - i);
cleanup:
	sl_buf_free(&missing);
	return rc;
}

int sl_wire_items_tail(sl_reader *r, const char *what, size_t n_found, const uint8_t **missing,
                       size_t *n_missing, size_t *remaining)
{
	uint32_t count, left;
	if (sl_reader_be32(r, &count) != SL_OK || count > SL_WIRE_MAX_IDS ||
	    sl_reader_bytes(r, (size_t)count * SL_ITEM_ID_LEN, missing) != SL_OK ||
	    sl_reader_be32(r, &left) != SL_OK || (uint64_t)n_found + count + left > SL_WIRE_MAX_IDS)
		return sl_error_set(SL_ECORRUPT,
		                    "malformed %s frame: bad missing ids or remaining "
		                    "count",
		                    what);
	if (sl_reader_expect_end(r) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "malformed %s frame: trailing bytes", what);
	*n_missing = count;
	*remaining = left;
	return SL_OK;
}

static int decode_found(sl_wire_item *items, uint32_t n, unsigned flags, sl_reader *r)
{
	for (uint32_t i = 0; i < n; i++) {
		sl_wire_item *it = &items[i];
		const uint8_t *bytes;
		uint64_t len;
		char detail[64];

		snprintf(detail, sizeof(detail), "answer %u is cut short or too long", i);
		if (sl_reader_bytes(r, SL_ITEM_ID_LEN, &it->id) != SL_OK ||
		    sl_reader_varint(r, &len) != SL_OK || len > SL_KEY_MAX ||
		    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return malformed("frame", detail);
		it->key = (const char *)bytes;
		it->key_len = (size_t)len;
		if (sl_key_validate(it->key, it->key_len) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "malformed items frame: answer %u: %s", i,
			                    sl_error_last()->message);
		if (sl_reader_varint(r, &it->value_len) != SL_OK || it->value_len > SL_VALUE_MAX ||
		    sl_reader_bytes(r, SL_DIGEST_LEN, &bytes) != SL_OK)
			return malformed("frame", detail);
		memcpy(it->digest.bytes, bytes, SL_DIGEST_LEN);
		it->value = NULL;
		if (!(flags & SL_WIRE_ITEMS_VALUES))
			continue;
		if (it->value_len > sl_reader_remaining(r) ||
		    sl_reader_bytes(r, (size_t)it->value_len, &it->value) != SL_OK)
			return malformed("frame", detail);
	}
	return SL_OK;
}

int sl_wire_items_decode(sl_wire_items *out, unsigned flags, const uint8_t *frame, size_t len)
{
	sl_wire_items w;
	sl_reader r;
	uint8_t version;
	uint32_t n_found;
	int rc;

	memset(&w, 0, sizeof(w));
	sl_reader_init(&r, frame, len);
	if (sl_reader_u8(&r, &version) != SL_OK || sl_reader_be32(&r, &n_found) != SL_OK)
		return malformed("frame", "short header");
	if (version != SL_WIRE_VERSION)
		return malformed("frame", "unknown version");
	/* An answer takes at least 66 bytes: allocate nothing the frame
	 * cannot hold. */
	if (n_found > SL_WIRE_MAX_IDS || n_found > sl_reader_remaining(&r) / 66)
		return malformed("frame", "more answers than the frame can hold");
	if (n_found && !(w.found = sl_calloc(n_found, sizeof(*w.found))))
		return SL_ENOMEM;
	if ((rc = decode_found(w.found, n_found, flags, &r)) != SL_OK)
		goto fail;
	w.n_found = n_found;
	if ((rc = sl_wire_items_tail(&r, "items", n_found, &w.missing, &w.n_missing,
	                             &w.remaining)) != SL_OK)
		goto fail;
	*out = w;
	return SL_OK;
fail:
	sl_free(w.found);
	return rc;
}

void sl_wire_items_free(sl_wire_items *w)
{
	if (!w)
		return;
	sl_free(w->found);
	memset(w, 0, sizeof(*w));
}
