/*
 * Operation encoding: the bytes an MMR leaf hashes, so they are written
 * down exactly in docs/protocol.md ("Operations") and never change.
 *
 *   set, update: type u8 | key_len varint | key | value_len varint | digest[32]
 *   delete:      type u8 | key_len varint | key
 *   commit:      type u8 | floor be64
 *
 * Decoding accepts exactly one well-formed operation: a known type, a
 * valid key (sl_key_validate), a value length within SL_VALUE_MAX,
 * canonical varints and no trailing bytes. Anything else is SL_ECORRUPT.
 */
#include "sluice/store.h"

#include <string.h>

const char *sl_op_type_name(sl_op_type t)
{
	switch (t) {
	case SL_OP_SET:
		return "set";
	case SL_OP_UPDATE:
		return "update";
	case SL_OP_DELETE:
		return "delete";
	case SL_OP_COMMIT:
		return "commit";
	}
	return "unknown";
}

int sl_op_encode(const sl_op *op, sl_buf *out)
{
	int rc;
	size_t mark = out->len;

	if ((rc = sl_buf_append_byte(out, (uint8_t)op->type)) != SL_OK)
		goto fail;
	switch (op->type) {
	case SL_OP_SET:
	case SL_OP_UPDATE:
	case SL_OP_DELETE:
		if ((rc = sl_buf_append_varint(out, op->key_len)) != SL_OK ||
		    (rc = sl_buf_append(out, op->key, op->key_len)) != SL_OK)
			goto fail;
		if (op->type == SL_OP_DELETE)
			break;
		if ((rc = sl_buf_append_varint(out, op->value_len)) != SL_OK ||
		    (rc = sl_buf_append(out, op->digest.bytes, SL_DIGEST_LEN)) != SL_OK)
			goto fail;
		break;
	case SL_OP_COMMIT:
		if ((rc = sl_buf_append_be64(out, op->floor)) != SL_OK)
			goto fail;
		break;
	default:
		rc = sl_error_set(SL_EINVAL, "unknown operation type %d", (int)op->type);
		goto fail;
	}
	return SL_OK;
fail:
	out->len = mark;
	return rc;
}

int sl_op_decode(sl_op *out, const uint8_t *element, size_t len)
{
	sl_reader r;
	sl_op op;
	uint8_t type;
	uint64_t key_len;
	const uint8_t *bytes;

	memset(&op, 0, sizeof(op));
	sl_reader_init(&r, element, len);
	if (sl_reader_u8(&r, &type) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "operation: empty");
	switch (type) {
	case SL_OP_SET:
	case SL_OP_UPDATE:
	case SL_OP_DELETE:
		if (sl_reader_varint(&r, &key_len) != SL_OK || key_len == 0 ||
		    key_len > SL_KEY_MAX || sl_reader_bytes(&r, (size_t)key_len, &bytes) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "operation: bad key length");
		op.key = (const char *)bytes;
		op.key_len = (size_t)key_len;
		if (sl_key_validate(op.key, op.key_len) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "operation: %s", sl_error_last()->message);
		if (type == SL_OP_DELETE)
			break;
		if (sl_reader_varint(&r, &op.value_len) != SL_OK || op.value_len > SL_VALUE_MAX)
			return sl_error_set(SL_ECORRUPT, "operation: bad value length");
		if (sl_reader_bytes(&r, SL_DIGEST_LEN, &bytes) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "operation: truncated digest");
		memcpy(op.digest.bytes, bytes, SL_DIGEST_LEN);
		break;
	case SL_OP_COMMIT:
		if (sl_reader_be64(&r, &op.floor) != SL_OK)
			return sl_error_set(SL_ECORRUPT, "operation: truncated commit");
		break;
	default:
		return sl_error_set(SL_ECORRUPT, "operation: unknown type %u", (unsigned)type);
	}
	if (sl_reader_expect_end(&r) != SL_OK)
		return sl_error_set(SL_ECORRUPT, "operation: %zu trailing bytes",
		                    sl_reader_remaining(&r));
	op.type = (sl_op_type)type;
	*out = op;
	return SL_OK;
}

int sl_ns_kind_parse(sl_ns_kind *out, const char *s)
{
	if (s && strcmp(s, "immutable") == 0)
		*out = SL_NS_IMMUTABLE;
	else if (s && strcmp(s, "mutable") == 0)
		*out = SL_NS_MUTABLE;
	else if (s && strcmp(s, "dag") == 0)
		*out = SL_NS_DAG;
	else
		return sl_error_set(SL_EINVAL,
		                    "unknown namespace kind '%s' (immutable|mutable|dag)",
		                    s ? s : "");
	return SL_OK;
}

const char *sl_ns_kind_name(sl_ns_kind kind)
{
	return kind == SL_NS_IMMUTABLE ? "immutable"
	       : kind == SL_NS_MUTABLE ? "mutable"
	       : kind == SL_NS_DAG     ? "dag"
	                               : "?";
}
