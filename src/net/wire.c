/*
 * The binary frames of the sync protocol (docs/protocol.md, "Sync wire
 * format"): the ops frame a server sends for GET .../ops and the batch a
 * client posts to .../commit.
 *
 * Encoders write a fixed-width count in the header and patch it at the
 * end, so a server can stream operations out of the store without
 * knowing in advance how many fit its byte budget. Decoders read through
 * a bounds-checked sl_reader, borrow bytes from the input instead of
 * copying, and accept exactly one well-formed frame: any field that does
 * not fit, any count past its cap and any trailing byte is an error, and
 * every element must be exactly one valid operation, because it is what
 * the client will hash and store.
 */
#include "sluice/net.h"

#include <string.h>

#define OPS_HEADER_LEN   (1 + 8 + 8 + 4) /* version, start, size, count */
#define BATCH_HEADER_LEN (1 + 4)         /* version, count */
#define ELEMENT_MAX      (1 + SL_VARINT_MAX + SL_KEY_MAX + SL_VARINT_MAX + SL_DIGEST_LEN)

enum { ENTRY_PUT = 1, ENTRY_DELETE = 2 };

static int corrupt(const char *what)
{
	return sl_error_set(SL_ECORRUPT, "malformed frame: %s", what);
}

/* ------------------------------------------------------------ ops frame */

int sl_wire_ops_begin(sl_buf *out, uint64_t start, uint64_t size)
{
	int rc;
	if ((rc = sl_buf_append_byte(out, SL_WIRE_VERSION)) != SL_OK ||
	    (rc = sl_buf_append_be64(out, start)) != SL_OK ||
	    (rc = sl_buf_append_be64(out, size)) != SL_OK)
		return rc;
	return sl_buf_append_be32(out, 0); /* patched by sl_wire_ops_end */
}

int sl_wire_ops_add(sl_buf *out, const uint8_t *element, size_t element_len, const void *value,
                    size_t value_len)
{
	sl_op op;
	int rc;
	if ((rc = sl_op_decode(&op, element, element_len)) != SL_OK)
		return rc;
	if ((rc = sl_buf_append_varint(out, element_len)) != SL_OK ||
	    (rc = sl_buf_append(out, element, element_len)) != SL_OK)
		return rc;
	if (op.type != SL_OP_SET && op.type != SL_OP_UPDATE)
		return SL_OK;
	if (value_len != op.value_len)
		return sl_error_set(SL_EINVAL, "value of %zu bytes for an operation of %llu",
		                    value_len, (unsigned long long)op.value_len);
	return value_len ? sl_buf_append(out, value, value_len) : SL_OK;
}

int sl_wire_ops_end(sl_buf *out, size_t n_ops, const sl_mmr_proof *proof, const sl_digest *pinned,
                    size_t n_pinned)
{
	sl_buf enc = SL_BUF_INIT(64 + SL_MMR_PROOF_MAX_DIGESTS * SL_DIGEST_LEN);
	int rc;

	if (out->len < OPS_HEADER_LEN || n_ops == 0 || n_ops > SL_WIRE_MAX_OPS ||
	    n_pinned > SL_MMR_MAX_PEAKS)
		return sl_error_set(SL_EINVAL, "ops frame of %zu operations and %zu pinned nodes",
		                    n_ops, n_pinned);
	if ((rc = sl_mmr_proof_encode(proof, &enc)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, enc.len)) != SL_OK ||
	    (rc = sl_buf_append(out, enc.data, enc.len)) != SL_OK ||
	    (rc = sl_buf_append_byte(out, (uint8_t)n_pinned)) != SL_OK ||
	    (n_pinned && (rc = sl_buf_append(out, pinned, n_pinned * SL_DIGEST_LEN)) != SL_OK))
		goto cleanup;
	sl_be32_put(out->data + OPS_HEADER_LEN - 4, (uint32_t)n_ops);
cleanup:
	sl_buf_free(&enc);
	return rc;
}

void sl_wire_ops_free(sl_wire_ops *w)
{
	if (!w)
		return;
	sl_free(w->elements);
	sl_free(w->values);
	sl_mmr_proof_free(&w->proof);
	memset(w, 0, sizeof(*w));
}

static int decode_ops(sl_wire_ops *w, sl_reader *r)
{
	uint8_t version, n_pinned;
	uint32_t n;
	uint64_t len;
	const uint8_t *bytes;
	int rc;

	if (sl_reader_u8(r, &version) != SL_OK || sl_reader_be64(r, &w->start) != SL_OK ||
	    sl_reader_be64(r, &w->size) != SL_OK || sl_reader_be32(r, &n) != SL_OK)
		return corrupt("short header");
	if (version != SL_WIRE_VERSION)
		return sl_error_set(SL_ECORRUPT, "malformed frame: version %u, expected %u",
		                    version, SL_WIRE_VERSION);
	if (n == 0)
		return corrupt("no operations");
	if (n > SL_WIRE_MAX_OPS)
		return sl_error_set(SL_ETOOLARGE, "frame of %u operations exceeds the cap of %d", n,
		                    SL_WIRE_MAX_OPS);
	if (w->start >= w->size || w->size - w->start < n)
		return corrupt("operations past the size they are proved against");
	/* An operation takes at least 2 bytes: do not allocate for a count
	 * the frame cannot hold. */
	if (n > sl_reader_remaining(r) / 2)
		return corrupt("more operations than bytes");
	if (!(w->elements = sl_calloc(n, sizeof(*w->elements))) ||
	    !(w->values = sl_calloc(n, sizeof(*w->values))))
		return SL_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		sl_op op;
		if (sl_reader_varint(r, &len) != SL_OK || len == 0 || len > ELEMENT_MAX ||
		    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return corrupt("bad element length");
		if (sl_op_decode(&op, bytes, (size_t)len) != SL_OK)
			return sl_error_wrap("malformed frame: operation %u", i);
		w->elements[i].data = bytes;
		w->elements[i].len = (size_t)len;
		if (op.type == SL_OP_SET || op.type == SL_OP_UPDATE) {
			if (op.value_len > sl_reader_remaining(r) ||
			    sl_reader_bytes(r, (size_t)op.value_len, &bytes) != SL_OK)
				return corrupt("value runs past the end");
			w->values[i].data = bytes;
			w->values[i].len = (size_t)op.value_len;
		}
	}
	w->n = n;
	if (sl_reader_varint(r, &len) != SL_OK || len > sl_reader_remaining(r) ||
	    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
		return corrupt("bad proof length");
	if ((rc = sl_mmr_proof_decode(&w->proof, bytes, (size_t)len)) != SL_OK)
		return sl_error_wrap("malformed frame: proof");
	if (w->proof.leaves != w->size)
		return corrupt("proof is for another size");
	if (sl_reader_u8(r, &n_pinned) != SL_OK || n_pinned > SL_MMR_MAX_PEAKS ||
	    sl_reader_bytes(r, (size_t)n_pinned * SL_DIGEST_LEN, &bytes) != SL_OK)
		return corrupt("bad pinned nodes");
	w->n_pinned = n_pinned;
	memcpy(w->pinned, bytes, (size_t)n_pinned * SL_DIGEST_LEN);
	if (sl_reader_expect_end(r) != SL_OK)
		return corrupt("trailing bytes");
	return SL_OK;
}

int sl_wire_ops_decode(sl_wire_ops *out, const uint8_t *frame, size_t len)
{
	sl_wire_ops w;
	sl_reader r;
	int rc;

	memset(&w, 0, sizeof(w));
	sl_reader_init(&r, frame, len);
	if ((rc = decode_ops(&w, &r)) != SL_OK) {
		sl_wire_ops_free(&w);
		return rc;
	}
	*out = w;
	return SL_OK;
}

/* --------------------------------------------------------- commit batch */

int sl_wire_batch_begin(sl_buf *out)
{
	int rc;
	if ((rc = sl_buf_append_byte(out, SL_WIRE_VERSION)) != SL_OK)
		return rc;
	return sl_buf_append_be32(out, 0); /* patched by sl_wire_batch_end */
}

static int batch_entry(sl_buf *out, uint8_t kind, const char *key, size_t key_len)
{
	int rc;
	if ((rc = sl_buf_append_byte(out, kind)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, key_len)) != SL_OK)
		return rc;
	return sl_buf_append(out, key, key_len);
}

int sl_wire_batch_put(sl_buf *out, const char *key, size_t key_len, const void *value,
                      size_t value_len)
{
	int rc;
	if ((rc = batch_entry(out, ENTRY_PUT, key, key_len)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, value_len)) != SL_OK)
		return rc;
	return value_len ? sl_buf_append(out, value, value_len) : SL_OK;
}

int sl_wire_batch_del(sl_buf *out, const char *key, size_t key_len)
{
	return batch_entry(out, ENTRY_DELETE, key, key_len);
}

int sl_wire_batch_end(sl_buf *out, size_t n_entries)
{
	if (out->len < BATCH_HEADER_LEN || n_entries == 0 || n_entries > SL_WIRE_MAX_ENTRIES)
		return sl_error_set(SL_EINVAL, "batch of %zu entries", n_entries);
	sl_be32_put(out->data + 1, (uint32_t)n_entries);
	return SL_OK;
}

static int decode_batch(sl_wire_entry *entries, uint32_t n, sl_reader *r)
{
	for (uint32_t i = 0; i < n; i++) {
		sl_wire_entry *e = &entries[i];
		const uint8_t *bytes;
		uint64_t len;
		uint8_t kind;

		if (sl_reader_u8(r, &kind) != SL_OK || (kind != ENTRY_PUT && kind != ENTRY_DELETE))
			return sl_error_set(SL_ECORRUPT,
			                    "malformed batch: entry %u has no valid kind", i);
		if (sl_reader_varint(r, &len) != SL_OK || len > SL_KEY_MAX ||
		    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "malformed batch: entry %u key length", i);
		e->key = (const char *)bytes;
		e->key_len = (size_t)len;
		if (sl_key_validate(e->key, e->key_len) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "malformed batch: entry %u: %s", i,
			                    sl_error_last()->message);
		e->is_delete = kind == ENTRY_DELETE;
		if (e->is_delete)
			continue;
		if (sl_reader_varint(r, &len) != SL_OK || len > SL_VALUE_MAX ||
		    len > sl_reader_remaining(r) ||
		    sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "malformed batch: entry %u value length",
			                    i);
		e->value = bytes;
		e->value_len = (size_t)len;
	}
	if (sl_reader_expect_end(r) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "malformed batch: trailing bytes");
	return SL_OK;
}

int sl_wire_batch_decode(sl_wire_entry **out, size_t *n_out, const uint8_t *body, size_t len)
{
	sl_wire_entry *entries = NULL;
	sl_reader r;
	uint8_t version;
	uint32_t n;
	int rc;

	sl_reader_init(&r, body, len);
	if (sl_reader_u8(&r, &version) != SL_OK || sl_reader_be32(&r, &n) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "malformed batch: short header");
	if (version != SL_WIRE_VERSION)
		return sl_error_set(SL_ECORRUPT, "malformed batch: version %u, expected %u",
		                    version, SL_WIRE_VERSION);
	if (n == 0)
		return sl_error_set(SL_ECORRUPT, "malformed batch: no entries");
	if (n > SL_WIRE_MAX_ENTRIES)
		return sl_error_set(SL_ETOOLARGE, "batch of %u entries exceeds the cap of %d", n,
		                    SL_WIRE_MAX_ENTRIES);
	/* Each entry takes at least 3 bytes: do not allocate for a count the
	 * body cannot hold. */
	if ((size_t)n > sl_reader_remaining(&r) / 3)
		return sl_error_set(SL_ECORRUPT, "malformed batch: %u entries in %zu bytes", n,
		                    sl_reader_remaining(&r));
	if (!(entries = sl_calloc(n, sizeof(*entries))))
		return SL_ENOMEM;
	if ((rc = decode_batch(entries, n, &r)) != SL_OK) {
		sl_free(entries);
		return rc;
	}
	*out = entries;
	*n_out = n;
	return SL_OK;
}
