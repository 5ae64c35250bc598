/* Decoding of the logical replication stream (see pgoutput.h). Every read
 * goes through sl_reader, so a short or overlong message is SL_ECORRUPT with
 * the offset, never a read past the input. A message must be consumed
 * exactly: trailing bytes are refused too, since they would mean we read a
 * message of another layout than we think. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "connect/pgoutput.h"
#include "sluice/base.h"

static int corrupt(const char *what)
{
	return sl_error_set(SL_ECORRUPT, "replication stream: %s", what);
}

/* ------------------------------------------------------------- frames */

int sl_pgo_frame_decode(const uint8_t *p, size_t n, sl_pgo_frame *out)
{
	sl_reader r;
	uint8_t kind, reply;
	uint64_t send_time;
	int rc;

	memset(out, 0, sizeof(*out));
	sl_reader_init(&r, p, n);
	if ((rc = sl_reader_u8(&r, &kind)) != SL_OK)
		return corrupt("empty frame");
	switch (kind) {
	case 'w':
		if ((rc = sl_reader_be64(&r, &out->wal_start)) != SL_OK ||
		    (rc = sl_reader_be64(&r, &out->wal_end)) != SL_OK ||
		    (rc = sl_reader_be64(&r, &send_time)) != SL_OK)
			return corrupt("short XLogData header");
		out->kind = SL_PGO_XLOGDATA;
		out->send_time = (int64_t)send_time;
		out->data = p + r.off;
		out->data_len = n - r.off;
		return SL_OK;
	case 'k':
		if ((rc = sl_reader_be64(&r, &out->wal_end)) != SL_OK ||
		    (rc = sl_reader_be64(&r, &send_time)) != SL_OK ||
		    (rc = sl_reader_u8(&r, &reply)) != SL_OK || sl_reader_expect_end(&r) != SL_OK)
			return corrupt("keepalive of the wrong length");
		out->kind = SL_PGO_KEEPALIVE;
		out->send_time = (int64_t)send_time;
		out->reply_requested = reply != 0;
		return SL_OK;
	default:
		return sl_error_set(SL_ECORRUPT, "replication stream: unknown frame type 0x%02x",
		                    kind);
	}
}

void sl_pgo_status_encode(uint8_t out[SL_PGO_STATUS_LEN], uint64_t lsn, int64_t now_us,
                          int reply_requested)
{
	out[0] = 'r';
	sl_be64_put(out + 1, lsn);  /* written */
	sl_be64_put(out + 9, lsn);  /* flushed: what the slot may forget */
	sl_be64_put(out + 17, lsn); /* applied */
	sl_be64_put(out + 25, (uint64_t)now_us);
	out[33] = reply_requested ? 1 : 0;
}

/* ------------------------------------------------------------- pgoutput */

static int read_be16(sl_reader *r, uint16_t *out)
{
	const uint8_t *b;
	int rc = sl_reader_bytes(r, 2, &b);
	if (rc == SL_OK)
		*out = (uint16_t)((b[0] << 8) | b[1]);
	return rc;
}

/* A NUL-terminated string inside the message. */
static int read_cstring(sl_reader *r, const char **out)
{
	const uint8_t *start = r->data + r->off;
	const uint8_t *nul = memchr(start, '\0', sl_reader_remaining(r));
	if (nul == NULL)
		return corrupt("unterminated name");
	*out = (const char *)start;
	r->off += (size_t)(nul - start) + 1;
	return SL_OK;
}

static int read_value(sl_reader *r, sl_pgo_value *out)
{
	uint8_t kind;
	uint32_t len;
	const uint8_t *text;

	if (sl_reader_u8(r, &kind) != SL_OK)
		return corrupt("tuple shorter than its column count");
	memset(out, 0, sizeof(*out));
	switch (kind) {
	case 'n':
	case 'u':
		out->kind = (sl_pgo_value_kind)kind;
		return SL_OK;
	case 't':
		if (sl_reader_be32(r, &len) != SL_OK || sl_reader_bytes(r, len, &text) != SL_OK)
			return corrupt("column value longer than the message");
		out->kind = SL_PGO_TEXT;
		out->text = (const char *)text;
		out->len = len;
		return SL_OK;
	case 'b':
		return corrupt("binary column values were not asked for");
	default:
		return sl_error_set(SL_ECORRUPT, "replication stream: unknown column kind 0x%02x",
		                    kind);
	}
}

/* Reads a tuple's header and checks its columns, leaving r after it. */
static int read_tuple(sl_reader *r, sl_pgo_tuple *out)
{
	sl_pgo_value v;
	uint16_t n;
	int rc;

	if (read_be16(r, &n) != SL_OK)
		return corrupt("tuple without a column count");
	out->n_columns = n;
	out->next = 0;
	out->p = r->data + r->off;
	for (uint16_t i = 0; i < n; i++)
		if ((rc = read_value(r, &v)) != SL_OK)
			return rc;
	out->end = r->data + r->off;
	return SL_OK;
}

int sl_pgo_tuple_next(sl_pgo_tuple *t, sl_pgo_value *out)
{
	sl_reader r;
	int rc;

	if (t->next >= t->n_columns)
		return SL_ENOTFOUND;
	sl_reader_init(&r, t->p, (size_t)(t->end - t->p));
	if ((rc = read_value(&r, out)) != SL_OK)
		return rc;
	t->p += r.off;
	t->next++;
	return SL_OK;
}

/* Reads a relation's column list, leaving r after it. */
static int read_columns(sl_reader *r, sl_pgo_columns *out)
{
	uint16_t n;
	uint8_t flags;
	uint32_t oid, typmod;
	const char *name;

	if (read_be16(r, &n) != SL_OK)
		return corrupt("relation without a column count");
	out->n_columns = n;
	out->next = 0;
	out->p = r->data + r->off;
	for (uint16_t i = 0; i < n; i++)
		if (sl_reader_u8(r, &flags) != SL_OK || read_cstring(r, &name) != SL_OK ||
		    sl_reader_be32(r, &oid) != SL_OK || sl_reader_be32(r, &typmod) != SL_OK)
			return corrupt("relation shorter than its column count");
	out->end = r->data + r->off;
	return SL_OK;
}

int sl_pgo_column_next(sl_pgo_columns *c, sl_pgo_column *out)
{
	sl_reader r;
	uint8_t flags;
	uint32_t typmod;

	if (c->next >= c->n_columns)
		return SL_ENOTFOUND;
	sl_reader_init(&r, c->p, (size_t)(c->end - c->p));
	if (sl_reader_u8(&r, &flags) != SL_OK || read_cstring(&r, &out->name) != SL_OK ||
	    sl_reader_be32(&r, &out->type_oid) != SL_OK || sl_reader_be32(&r, &typmod) != SL_OK)
		return corrupt("relation shorter than its column count");
	out->is_key = (flags & 1) != 0;
	c->p += r.off;
	c->next++;
	return SL_OK;
}

/* 'N' then a tuple, or 'K'/'O' then a tuple (old) and maybe 'N' (new). */
static int read_tuple_tagged(sl_reader *r, uint8_t want, sl_pgo_tuple *out)
{
	uint8_t tag;
	if (sl_reader_u8(r, &tag) != SL_OK || tag != want)
		return corrupt("tuple without its tag");
	return read_tuple(r, out);
}

static int decode_body(sl_reader *r, uint8_t kind, sl_pgo_msg *out)
{
	uint64_t u64;
	uint32_t u32;
	uint8_t u8;
	const char *s;
	const uint8_t *bytes;

	switch (kind) {
	case 'B':
		out->kind = SL_PGO_BEGIN;
		if (sl_reader_be64(r, &out->lsn) != SL_OK || sl_reader_be64(r, &u64) != SL_OK ||
		    sl_reader_be32(r, &out->xid) != SL_OK)
			return corrupt("short BEGIN");
		out->commit_time = (int64_t)u64;
		return SL_OK;
	case 'C':
		out->kind = SL_PGO_COMMIT;
		if (sl_reader_u8(r, &u8) != SL_OK || sl_reader_be64(r, &out->lsn) != SL_OK ||
		    sl_reader_be64(r, &out->end_lsn) != SL_OK || sl_reader_be64(r, &u64) != SL_OK)
			return corrupt("short COMMIT");
		out->commit_time = (int64_t)u64;
		return SL_OK;
	case 'R':
		out->kind = SL_PGO_RELATION;
		if (sl_reader_be32(r, &out->relid) != SL_OK ||
		    read_cstring(r, &out->nspname) != SL_OK ||
		    read_cstring(r, &out->relname) != SL_OK || sl_reader_u8(r, &u8) != SL_OK)
			return corrupt("short RELATION");
		return read_columns(r, &out->columns);
	case 'I':
		out->kind = SL_PGO_INSERT;
		if (sl_reader_be32(r, &out->relid) != SL_OK)
			return corrupt("short INSERT");
		return read_tuple_tagged(r, 'N', &out->new_tuple);
	case 'U':
		out->kind = SL_PGO_UPDATE;
		if (sl_reader_be32(r, &out->relid) != SL_OK || sl_reader_u8(r, &u8) != SL_OK)
			return corrupt("short UPDATE");
		if (u8 == 'K' || u8 == 'O') {
			out->has_old = 1;
			if (read_tuple(r, &out->old_tuple) != SL_OK)
				return sl_error_last()->code;
			return read_tuple_tagged(r, 'N', &out->new_tuple);
		}
		if (u8 != 'N')
			return corrupt("UPDATE without its new tuple");
		return read_tuple(r, &out->new_tuple);
	case 'D':
		out->kind = SL_PGO_DELETE;
		if (sl_reader_be32(r, &out->relid) != SL_OK || sl_reader_u8(r, &u8) != SL_OK ||
		    (u8 != 'K' && u8 != 'O'))
			return corrupt("DELETE without its old tuple");
		return read_tuple(r, &out->old_tuple);
	case 'T':
		out->kind = SL_PGO_TRUNCATE;
		if (sl_reader_be32(r, &out->n_truncated) != SL_OK ||
		    sl_reader_u8(r, &u8) != SL_OK ||
		    out->n_truncated > sl_reader_remaining(r) / 4 ||
		    sl_reader_bytes(r, (size_t)out->n_truncated * 4, &bytes) != SL_OK)
			return corrupt("short TRUNCATE");
		out->truncated = bytes;
		return SL_OK;
	case 'O': /* origin: lsn, name */
		out->kind = SL_PGO_OTHER;
		if (sl_reader_be64(r, &u64) != SL_OK || read_cstring(r, &s) != SL_OK)
			return corrupt("short ORIGIN");
		return SL_OK;
	case 'Y': /* type: oid, namespace, name */
		out->kind = SL_PGO_OTHER;
		if (sl_reader_be32(r, &u32) != SL_OK || read_cstring(r, &s) != SL_OK ||
		    read_cstring(r, &s) != SL_OK)
			return corrupt("short TYPE");
		return SL_OK;
	case 'M': /* logical message: flags, lsn, prefix, length, content */
		out->kind = SL_PGO_OTHER;
		if (sl_reader_u8(r, &u8) != SL_OK || sl_reader_be64(r, &u64) != SL_OK ||
		    read_cstring(r, &s) != SL_OK || sl_reader_be32(r, &u32) != SL_OK ||
		    sl_reader_bytes(r, u32, &bytes) != SL_OK)
			return corrupt("short MESSAGE");
		return SL_OK;
	default:
		return sl_error_set(SL_ECORRUPT, "replication stream: unknown message type 0x%02x",
		                    kind);
	}
}

int sl_pgo_decode(const uint8_t *p, size_t n, sl_pgo_msg *out)
{
	sl_reader r;
	uint8_t kind;
	int rc;

	memset(out, 0, sizeof(*out));
	sl_reader_init(&r, p, n);
	if (sl_reader_u8(&r, &kind) != SL_OK)
		return corrupt("empty message");
	if ((rc = decode_body(&r, kind, out)) != SL_OK)
		return rc;
	if (sl_reader_expect_end(&r) != SL_OK)
		return sl_error_set(SL_ECORRUPT,
		                    "replication stream: %zu bytes after a '%c' message",
		                    sl_reader_remaining(&r), kind);
	return SL_OK;
}

uint32_t sl_pgo_truncated_relid(const sl_pgo_msg *m, uint32_t i)
{
	return sl_be32_get(m->truncated + (size_t)i * 4);
}

void sl_pgo_lsn_format(char *out, size_t cap, uint64_t lsn)
{
	snprintf(out, cap, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

int sl_pgo_lsn_parse(const char *text, uint64_t *out)
{
	uint64_t parts[2] = {0, 0};
	size_t digits = 0;
	int part = 0;

	if (text == NULL)
		return sl_error_set(SL_EINVAL, "LSN: missing");
	for (const char *c = text; *c != '\0'; c++) {
		int v = *c >= '0' && *c <= '9'   ? *c - '0'
		        : *c >= 'A' && *c <= 'F' ? *c - 'A' + 10
		        : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10
		                                 : -1;
		if (*c == '/' && part == 0 && digits > 0) {
			part = 1;
			digits = 0;
			continue;
		}
		if (v < 0 || ++digits > 8)
			return sl_error_set(SL_EINVAL, "LSN '%.40s': not X/Y in hex", text);
		parts[part] = parts[part] * 16 + (uint64_t)v;
	}
	if (part != 1 || digits == 0)
		return sl_error_set(SL_EINVAL, "LSN '%.40s': not X/Y in hex", text);
	*out = parts[0] << 32 | parts[1];
	return SL_OK;
}
