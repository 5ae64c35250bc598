/*
 * Unit tests for the replication stream's decoders (src/connect/pgoutput.c)
 * on messages laid out by hand as PostgreSQL 15's pgoutput writes them
 * (docs: "Logical Replication Message Formats"): every kind we use, the
 * tuple column kinds, truncated and overlong input refused, and LSN text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "connect/pgoutput.h"
#include "sluice/base.h"

typedef struct msg {
	uint8_t b[512];
	size_t n;
} msg;

static void put8(msg *m, uint8_t v)
{
	m->b[m->n++] = v;
}
static void put16(msg *m, uint16_t v)
{
	put8(m, (uint8_t)(v >> 8));
	put8(m, (uint8_t)v);
}
static void put32(msg *m, uint32_t v)
{
	sl_be32_put(m->b + m->n, v);
	m->n += 4;
}
static void put64(msg *m, uint64_t v)
{
	sl_be64_put(m->b + m->n, v);
	m->n += 8;
}
static void puts_(msg *m, const char *s)
{
	memcpy(m->b + m->n, s, strlen(s) + 1);
	m->n += strlen(s) + 1;
}
static void put_text(msg *m, const char *s)
{
	put8(m, 't');
	put32(m, (uint32_t)strlen(s));
	memcpy(m->b + m->n, s, strlen(s));
	m->n += strlen(s);
}

static void test_begin_commit(void **state)
{
	msg m = {.n = 0};
	sl_pgo_msg out;
	(void)state;
	put8(&m, 'B');
	put64(&m, 0x100000200ull);
	put64(&m, 777);
	put32(&m, 42);
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_OK);
	assert_int_equal(out.kind, SL_PGO_BEGIN);
	assert_true(out.lsn == 0x100000200ull);
	assert_int_equal(out.xid, 42);
	assert_true(out.commit_time == 777);
	/* one byte short, one byte too many */
	assert_int_equal(sl_pgo_decode(m.b, m.n - 1, &out), SL_ECORRUPT);
	m.b[m.n] = 0;
	assert_int_equal(sl_pgo_decode(m.b, m.n + 1, &out), SL_ECORRUPT);

	m.n = 0;
	put8(&m, 'C');
	put8(&m, 0);
	put64(&m, 0x10);
	put64(&m, 0x40);
	put64(&m, 9);
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_OK);
	assert_int_equal(out.kind, SL_PGO_COMMIT);
	assert_true(out.lsn == 0x10 && out.end_lsn == 0x40 && out.commit_time == 9);
}

static void test_relation_and_rows(void **state)
{
	msg m = {.n = 0};
	sl_pgo_msg out;
	sl_pgo_column col;
	sl_pgo_value v;
	(void)state;
	put8(&m, 'R');
	put32(&m, 16385);
	puts_(&m, "public");
	puts_(&m, "object_index");
	put8(&m, 'd');
	put16(&m, 2);
	put8(&m, 1);
	puts_(&m, "id");
	put32(&m, 2950);
	put32(&m, 0xffffffff);
	put8(&m, 0);
	puts_(&m, "data_type");
	put32(&m, 25);
	put32(&m, 0xffffffff);
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_OK);
	assert_int_equal(out.kind, SL_PGO_RELATION);
	assert_int_equal(out.relid, 16385);
	assert_string_equal(out.nspname, "public");
	assert_string_equal(out.relname, "object_index");
	assert_int_equal(sl_pgo_column_next(&out.columns, &col), SL_OK);
	assert_string_equal(col.name, "id");
	assert_true(col.is_key);
	assert_int_equal(col.type_oid, 2950);
	assert_int_equal(sl_pgo_column_next(&out.columns, &col), SL_OK);
	assert_string_equal(col.name, "data_type");
	assert_false(col.is_key);
	assert_int_equal(sl_pgo_column_next(&out.columns, &col), SL_ENOTFOUND);
	/* a column list that claims one column more than it has: the count
	 * sits after 'R', the relid, both names and the identity byte */
	msg short_rel = m;
	short_rel.b[1 + 4 + 7 + 13 + 1 + 1] = 3;
	assert_int_equal(sl_pgo_decode(short_rel.b, short_rel.n, &out), SL_ECORRUPT);

	/* an update with the old key, then the new tuple: text, null, unchanged */
	m.n = 0;
	put8(&m, 'U');
	put32(&m, 16385);
	put8(&m, 'K');
	put16(&m, 2);
	put_text(&m, "old-id");
	put8(&m, 'n');
	put8(&m, 'N');
	put16(&m, 3);
	put_text(&m, "new-id");
	put8(&m, 'n');
	put8(&m, 'u');
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_OK);
	assert_int_equal(out.kind, SL_PGO_UPDATE);
	assert_true(out.has_old);
	assert_int_equal(sl_pgo_tuple_next(&out.old_tuple, &v), SL_OK);
	assert_int_equal(v.kind, SL_PGO_TEXT);
	assert_int_equal(v.len, 6);
	assert_memory_equal(v.text, "old-id", 6);
	assert_int_equal(sl_pgo_tuple_next(&out.new_tuple, &v), SL_OK);
	assert_memory_equal(v.text, "new-id", 6);
	assert_int_equal(sl_pgo_tuple_next(&out.new_tuple, &v), SL_OK);
	assert_int_equal(v.kind, SL_PGO_NULL);
	assert_int_equal(sl_pgo_tuple_next(&out.new_tuple, &v), SL_OK);
	assert_int_equal(v.kind, SL_PGO_UNCHANGED);
	assert_int_equal(sl_pgo_tuple_next(&out.new_tuple, &v), SL_ENOTFOUND);

	/* a text value longer than the message */
	m.n = 0;
	put8(&m, 'I');
	put32(&m, 1);
	put8(&m, 'N');
	put16(&m, 1);
	put8(&m, 't');
	put32(&m, 100);
	put8(&m, 'x');
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_ECORRUPT);
	/* a binary value (never asked for) */
	m.n = 0;
	put8(&m, 'I');
	put32(&m, 1);
	put8(&m, 'N');
	put16(&m, 1);
	put8(&m, 'b');
	put32(&m, 1);
	put8(&m, 'x');
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_ECORRUPT);
	/* a delete without its old tuple tag */
	m.n = 0;
	put8(&m, 'D');
	put32(&m, 1);
	put8(&m, 'N');
	put16(&m, 0);
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_ECORRUPT);
}

static void test_truncate_and_others(void **state)
{
	msg m = {.n = 0};
	sl_pgo_msg out;
	(void)state;
	put8(&m, 'T');
	put32(&m, 2);
	put8(&m, 0);
	put32(&m, 7);
	put32(&m, 16385);
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_OK);
	assert_int_equal(out.kind, SL_PGO_TRUNCATE);
	assert_int_equal(out.n_truncated, 2);
	assert_int_equal(sl_pgo_truncated_relid(&out, 1), 16385);
	/* a count the message cannot hold */
	m.b[4] = 9;
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_ECORRUPT);

	m.n = 0;
	put8(&m, 'Y');
	put32(&m, 99);
	puts_(&m, "public");
	puts_(&m, "mood");
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_OK);
	assert_int_equal(out.kind, SL_PGO_OTHER);
	m.b[0] = 'Z';
	assert_int_equal(sl_pgo_decode(m.b, m.n, &out), SL_ECORRUPT);
	assert_int_equal(sl_pgo_decode(m.b, 0, &out), SL_ECORRUPT);
}

static void test_frames(void **state)
{
	msg m = {.n = 0};
	sl_pgo_frame f;
	uint8_t status[SL_PGO_STATUS_LEN];
	(void)state;
	put8(&m, 'w');
	put64(&m, 10);
	put64(&m, 20);
	put64(&m, 30);
	put8(&m, 'B');
	assert_int_equal(sl_pgo_frame_decode(m.b, m.n, &f), SL_OK);
	assert_int_equal(f.kind, SL_PGO_XLOGDATA);
	assert_true(f.wal_start == 10 && f.wal_end == 20 && f.send_time == 30);
	assert_int_equal(f.data_len, 1);
	assert_int_equal(f.data[0], 'B');
	assert_int_equal(sl_pgo_frame_decode(m.b, 20, &f), SL_ECORRUPT);

	m.n = 0;
	put8(&m, 'k');
	put64(&m, 0x55);
	put64(&m, 1);
	put8(&m, 1);
	assert_int_equal(sl_pgo_frame_decode(m.b, m.n, &f), SL_OK);
	assert_int_equal(f.kind, SL_PGO_KEEPALIVE);
	assert_true(f.wal_end == 0x55 && f.reply_requested);
	assert_int_equal(sl_pgo_frame_decode(m.b, m.n + 1, &f), SL_ECORRUPT);

	sl_pgo_status_encode(status, 0x1234, 99, 1);
	assert_int_equal(status[0], 'r');
	assert_true(sl_be64_get(status + 1) == 0x1234 && sl_be64_get(status + 9) == 0x1234 &&
	            sl_be64_get(status + 17) == 0x1234 && sl_be64_get(status + 25) == 99);
	assert_int_equal(status[33], 1);
}

static void test_lsn_text(void **state)
{
	char text[24];
	uint64_t lsn = 0;
	(void)state;
	assert_int_equal(sl_pgo_lsn_parse("0/1925878", &lsn), SL_OK);
	assert_true(lsn == 0x1925878);
	assert_int_equal(sl_pgo_lsn_parse("A/ff", &lsn), SL_OK);
	assert_true(lsn == 0xA000000FFull);
	sl_pgo_lsn_format(text, sizeof(text), lsn);
	assert_string_equal(text, "A/FF");
	assert_int_equal(sl_pgo_lsn_parse("1925878", &lsn), SL_EINVAL);
	assert_int_equal(sl_pgo_lsn_parse("0/", &lsn), SL_EINVAL);
	assert_int_equal(sl_pgo_lsn_parse("/1", &lsn), SL_EINVAL);
	assert_int_equal(sl_pgo_lsn_parse("0/123456789", &lsn), SL_EINVAL);
	assert_int_equal(sl_pgo_lsn_parse("0/1/2", &lsn), SL_EINVAL);
	assert_int_equal(sl_pgo_lsn_parse("0/x", &lsn), SL_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_begin_commit),
	        cmocka_unit_test(test_relation_and_rows),
	        cmocka_unit_test(test_truncate_and_others),
	        cmocka_unit_test(test_frames),
	        cmocka_unit_test(test_lsn_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
