/*
 * The entries frame of dag sync (docs/protocol.md, "DAG sync"): entries
 * and the values their writes set, as a server answers a fetch or a
 * bootstrap page and as a client pushes.
 *
 *   u8 version (1) | u8 flags (bit 0: more) | be32 n_records | record*
 *   | be32 n_missing | n_missing x id[32]
 *   record = u8 1 | varint len | entry[len]     (len <= SL_DAG_ENTRY_MAX)
 *          | u8 2 | varint len | value[len]     (len <= SL_VALUE_MAX)
 *
 * A value comes before the first entry that sets it, once per frame.
 * Like the other frames, the record count is patched in at the end so a
 * server can add records until its budget is spent. The decoder borrows
 * from the input and accepts exactly one well-formed frame; whether the
 * entries verify and the values are theirs is for sl_dag_insert.
 */
#include "sluice/net.h"

#include "sluice/dag.h"

#include <string.h>

#define HEADER_LEN (1 + 1 + 4) /* version, flags, record count */
#define REC_ENTRY  1
#define REC_VALUE  2

static int malformed(const char *detail)
{
	return sl_error_set(SL_ECORRUPT, "malformed entries frame: %s", detail);
}

int sl_wire_entries_begin(sl_buf *out, unsigned flags)
{
	int rc;
	if (flags & ~(unsigned)SL_WIRE_ENTRIES_MORE)
		return sl_error_set(SL_EINVAL, "unknown entries frame flags %#x", flags);
	if ((rc = sl_buf_append_byte(out, SL_WIRE_VERSION)) != SL_OK ||
	    (rc = sl_buf_append_byte(out, (uint8_t)flags)) != SL_OK)
		return rc;
	return sl_buf_append_be32(out, 0); /* patched by sl_wire_entries_end */
}

static int add_record(sl_buf *out, uint8_t kind, const void *data, size_t len)
{
	int rc;
	if ((rc = sl_buf_append_byte(out, kind)) != SL_OK ||
	    (rc = sl_buf_append_varint(out, len)) != SL_OK)
		return rc;
	return sl_buf_append(out, data, len);
}

int sl_wire_entries_add_entry(sl_buf *out, const uint8_t *entry, size_t len)
{
	if (len == 0 || len > SL_DAG_ENTRY_MAX)
		return sl_error_set(SL_EINVAL, "an entry of %zu bytes", len);
	return add_record(out, REC_ENTRY, entry, len);
}

int sl_wire_entries_add_value(sl_buf *out, const void *value, size_t len)
{
	if ((uint64_t)len > SL_VALUE_MAX)
		return sl_error_set(SL_EINVAL, "a value of %zu bytes", len);
	return add_record(out, REC_VALUE, value, len);
}

int sl_wire_entries_end(sl_buf *out, size_t n_records, const uint8_t *missing, size_t n_missing)
{
	int rc;
	if (out->len < HEADER_LEN || n_records > UINT32_MAX || n_missing > SL_WIRE_MAX_IDS)
		return sl_error_set(SL_EINVAL,
		                    "an entries frame of %zu records and %zu missing ids",
		                    n_records, n_missing);
	sl_be32_put(out->data + 2, (uint32_t)n_records);
	if ((rc = sl_buf_append_be32(out, (uint32_t)n_missing)) != SL_OK)
		return rc;
	return n_missing ? sl_buf_append(out, missing, n_missing * SL_ITEM_ID_LEN) : SL_OK;
}

static int push_bytes(sl_bytes **list, size_t *n, size_t *cap, const uint8_t *data, size_t len)
{
	sl_bytes *grown = sl_grow(*list, cap, *n, sizeof(**list), 16);
	if (!grown)
		return SL_ENOMEM;
	*list = grown;
	grown[*n].data = data;
	grown[*n].len = len;
	(*n)++;
	return SL_OK;
}

static int decode_records(sl_wire_entries *w, uint32_t n, sl_reader *r)
{
	size_t cap_entries = 0, cap_values = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t kind;
		uint64_t len;
		const uint8_t *bytes;
		int rc;
		if (sl_reader_u8(r, &kind) != SL_OK || sl_reader_varint(r, &len) != SL_OK)
			return malformed("a record is cut short");
		if (kind == REC_ENTRY) {
			if (len == 0 || len > SL_DAG_ENTRY_MAX)
				return malformed("an entry of a size past its cap");
		} else if (kind == REC_VALUE) {
			if (len > SL_VALUE_MAX)
				return malformed("a value of a size past its cap");
		} else {
			return malformed("a record of an unknown kind");
		}
		if (sl_reader_bytes(r, (size_t)len, &bytes) != SL_OK)
			return malformed("a record is cut short");
		rc = kind == REC_ENTRY ? push_bytes(&w->entries, &w->n_entries, &cap_entries, bytes,
		                                    (size_t)len)
		                       : push_bytes(&w->values, &w->n_values, &cap_values, bytes,
		                                    (size_t)len);
		if (rc != SL_OK)
			return rc;
	}
	return SL_OK;
}

int sl_wire_entries_decode(sl_wire_entries *out, const uint8_t *frame, size_t len)
{
	sl_wire_entries w;
	sl_reader r;
	uint8_t version, flags;
	uint32_t n_records, n_missing;
	int rc;

	memset(&w, 0, sizeof(w));
	memset(out, 0, sizeof(*out));
	sl_reader_init(&r, frame, len);
	if (sl_reader_u8(&r, &version) != SL_OK || sl_reader_u8(&r, &flags) != SL_OK ||
	    sl_reader_be32(&r, &n_records) != SL_OK)
		return malformed("short header");
	if (version != SL_WIRE_VERSION)
		return malformed("unknown version");
	if (flags & ~SL_WIRE_ENTRIES_MORE)
		return malformed("unknown flags");
	if (n_records > len) /* each record takes at least two bytes */
		return malformed("more records than bytes");
	w.flags = flags;
	if ((rc = decode_records(&w, n_records, &r)) != SL_OK)
		goto fail;
	if (sl_reader_be32(&r, &n_missing) != SL_OK) {
		rc = malformed("no missing count");
		goto fail;
	}
	if (n_missing > SL_WIRE_MAX_IDS) {
		rc = malformed("too many missing ids");
		goto fail;
	}
	if (sl_reader_bytes(&r, (size_t)n_missing * SL_ITEM_ID_LEN, &w.missing) != SL_OK) {
		rc = malformed("the missing ids are cut short");
		goto fail;
	}
	w.n_missing = n_missing;
	if (sl_reader_remaining(&r) != 0) {
		rc = malformed("trailing bytes");
		goto fail;
	}
	*out = w;
	return SL_OK;
fail:
	sl_wire_entries_free(&w);
	return rc;
}

void sl_wire_entries_free(sl_wire_entries *w)
{
	if (!w)
		return;
	sl_free(w->entries);
	sl_free(w->values);
	memset(w, 0, sizeof(*w));
}
