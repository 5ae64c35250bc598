/*
 * Fuzz target for the logical replication stream's decoders
 * (src/connect/pgoutput.c): a CopyBoth frame, and a pgoutput message with
 * its tuples and column lists read to the end.
 *
 * The first byte chooses what the rest is: even, a frame; odd, a message.
 * Oracles: a decoder returns SL_OK or SL_ECORRUPT; every pointer it gives
 * lies inside the input; a tuple yields exactly its column count of values
 * and then SL_ENOTFOUND, each value's text inside the input; a relation
 * yields its column count of names, each NUL-terminated inside the input;
 * an XLogData frame's data is the input after its 25-byte header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connect/pgoutput.h"
#include "sluice/base.h"

#define FUZZ_NAME "pgoutput_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_tuple(sl_pgo_tuple t, const uint8_t *data, size_t size)
{
	sl_pgo_value v;
	uint16_t n = 0;
	int rc;
	while ((rc = sl_pgo_tuple_next(&t, &v)) == SL_OK) {
		n++;
		if (v.kind == SL_PGO_TEXT && !inside(v.text, v.len, data, size))
			die("a value outside the input");
		if (v.kind != SL_PGO_TEXT && v.kind != SL_PGO_NULL && v.kind != SL_PGO_UNCHANGED)
			die("a value of an unknown kind");
	}
	if (rc != SL_ENOTFOUND || n != t.n_columns)
		die("a checked tuple did not yield its column count");
}

static void read_columns(sl_pgo_columns c, const uint8_t *data, size_t size)
{
	sl_pgo_column col;
	uint16_t n = 0;
	int rc;
	while ((rc = sl_pgo_column_next(&c, &col)) == SL_OK) {
		n++;
		if (!inside(col.name, strlen(col.name) + 1, data, size))
			die("a column name outside the input");
	}
	if (rc != SL_ENOTFOUND || n != c.n_columns)
		die("a checked relation did not yield its column count");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc;
	if (size == 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	if ((data[0] & 1) == 0) {
		sl_pgo_frame f;
		rc = sl_pgo_frame_decode(p, n, &f);
		if (rc != SL_OK && rc != SL_ECORRUPT)
			die("frame: neither OK nor ECORRUPT");
		if (rc == SL_OK && f.kind == SL_PGO_XLOGDATA &&
		    (f.data != p + 25 || f.data_len != n - 25))
			die("XLogData data is not the rest of the frame");
		return 0;
	}
	sl_pgo_msg m;
	rc = sl_pgo_decode(p, n, &m);
	if (rc != SL_OK && rc != SL_ECORRUPT)
		die("message: neither OK nor ECORRUPT");
	if (rc != SL_OK)
		return 0;
	switch (m.kind) {
	case SL_PGO_RELATION:
		if (!inside(m.nspname, strlen(m.nspname) + 1, p, n) ||
		    !inside(m.relname, strlen(m.relname) + 1, p, n))
			die("a relation name outside the input");
		read_columns(m.columns, p, n);
		break;
	case SL_PGO_INSERT:
		read_tuple(m.new_tuple, p, n);
		break;
	case SL_PGO_UPDATE:
		if (m.has_old)
			read_tuple(m.old_tuple, p, n);
		read_tuple(m.new_tuple, p, n);
		break;
	case SL_PGO_DELETE:
		read_tuple(m.old_tuple, p, n);
		break;
	case SL_PGO_TRUNCATE:
		if (!inside(m.truncated, (size_t)m.n_truncated * 4, p, n))
			die("truncated ids outside the input");
		for (uint32_t i = 0; i < m.n_truncated; i++)
			(void)sl_pgo_truncated_relid(&m, i);
		break;
	default:
		break;
	}
	return 0;
}
