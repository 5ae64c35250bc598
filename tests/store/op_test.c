/* Operation encoding: round trips, the exact bytes of docs/protocol.md,
 * and rejection of every malformed form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sluice/store.h"

static void encode(const sl_op *op, sl_buf *out)
{
	sl_buf_reset(out);
	assert_int_equal(sl_op_encode(op, out), SL_OK);
}

static void test_round_trip(void **state)
{
	(void)state;
	sl_buf buf = SL_BUF_INIT(4096);
	sl_op ops[4], back;
	memset(ops, 0, sizeof(ops));
	ops[0].type = SL_OP_SET, ops[0].key = "a/b", ops[0].key_len = 3, ops[0].value_len = 300;
	ops[1].type = SL_OP_UPDATE, ops[1].key = "k", ops[1].key_len = 1, ops[1].value_len = 0;
	ops[2].type = SL_OP_DELETE, ops[2].key = "k", ops[2].key_len = 1;
	ops[3].type = SL_OP_COMMIT, ops[3].floor = UINT64_C(0x0102030405060708);
	for (int i = 0; i < 32; i++)
		ops[0].digest.bytes[i] = (uint8_t)i, ops[1].digest.bytes[i] = (uint8_t)(255 - i);
	for (size_t i = 0; i < 4; i++) {
		encode(&ops[i], &buf);
		assert_int_equal(sl_op_decode(&back, buf.data, buf.len), SL_OK);
		assert_int_equal(back.type, ops[i].type);
		assert_int_equal(back.key_len, ops[i].key_len);
		if (back.key_len)
			assert_memory_equal(back.key, ops[i].key, back.key_len);
		assert_int_equal(back.value_len, ops[i].value_len);
		assert_int_equal(back.floor, ops[i].floor);
		if (back.type == SL_OP_SET || back.type == SL_OP_UPDATE)
			assert_memory_equal(back.digest.bytes, ops[i].digest.bytes, 32);
	}
	sl_buf_free(&buf);
}

/* The vectors written down in docs/protocol.md. */
static void test_exact_bytes(void **state)
{
	(void)state;
	sl_buf buf = SL_BUF_INIT(4096);
	sl_op op;
	memset(&op, 0, sizeof(op));
	op.type = SL_OP_SET, op.key = "a/b", op.key_len = 3, op.value_len = 300;
	memset(op.digest.bytes, 0xab, 32);
	encode(&op, &buf);
	const uint8_t set_prefix[] = {0x01, 0x03, 'a', '/', 'b', 0xac, 0x02};
	assert_int_equal(buf.len, sizeof(set_prefix) + 32);
	assert_memory_equal(buf.data, set_prefix, sizeof(set_prefix));

	memset(&op, 0, sizeof(op));
	op.type = SL_OP_DELETE, op.key = "k", op.key_len = 1;
	encode(&op, &buf);
	const uint8_t del[] = {0x03, 0x01, 'k'};
	assert_int_equal(buf.len, sizeof(del));
	assert_memory_equal(buf.data, del, sizeof(del));

	memset(&op, 0, sizeof(op));
	op.type = SL_OP_COMMIT, op.floor = 5;
	encode(&op, &buf);
	const uint8_t commit[] = {0x04, 0, 0, 0, 0, 0, 0, 0, 5};
	assert_int_equal(buf.len, sizeof(commit));
	assert_memory_equal(buf.data, commit, sizeof(commit));
	sl_buf_free(&buf);
}

static void test_rejects_malformed(void **state)
{
	(void)state;
	sl_op op;
	struct {
		const char *bytes;
		size_t len;
	} bad[] = {
	        {"", 0},
	        {"\x00", 1},                          /* type 0 */
	        {"\x05\x01k", 3},                     /* unknown type */
	        {"\x03", 1},                          /* delete without key */
	        {"\x03\x00", 2},                      /* empty key */
	        {"\x03\x02k", 3},                     /* key shorter than its length */
	        {"\x03\x01k!", 4},                    /* trailing byte */
	        {"\x03\x02..", 4},                    /* invalid key */
	        {"\x03\x81\x00k", 4},                 /* non-canonical varint */
	        {"\x04\x00\x00\x00", 4},              /* truncated commit */
	        {"\x01\x01k\x00", 4},                 /* set without digest */
	        {"\x02\x01k\xff\xff\xff\xff\x0f", 8}, /* value length over the limit */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sl_op_decode(&op, (const uint8_t *)bad[i].bytes, bad[i].len),
		                 SL_ECORRUPT);
	/* A valid set with one digest byte missing or one extra. */
	uint8_t set[3 + 1 + 32 + 1] = {0x01, 0x01, 'k', 0x00};
	assert_int_equal(sl_op_decode(&op, set, 36), SL_OK);
	assert_int_equal(sl_op_decode(&op, set, 35), SL_ECORRUPT);
	assert_int_equal(sl_op_decode(&op, set, 37), SL_ECORRUPT);
}

static void test_kind_names(void **state)
{
	(void)state;
	sl_ns_kind kind;
	assert_int_equal(sl_ns_kind_parse(&kind, "immutable"), SL_OK);
	assert_int_equal(kind, SL_NS_IMMUTABLE);
	assert_int_equal(sl_ns_kind_parse(&kind, "mutable"), SL_OK);
	assert_int_equal(kind, SL_NS_MUTABLE);
	assert_int_equal(sl_ns_kind_parse(&kind, "dag"), SL_OK);
	assert_int_equal(kind, SL_NS_DAG);
	assert_string_equal(sl_ns_kind_name(SL_NS_DAG), "dag");
	assert_int_equal(sl_ns_kind_parse(&kind, "graph"), SL_EINVAL);
	assert_int_equal(sl_ns_kind_parse(&kind, "Mutable"), SL_EINVAL);
	assert_string_equal(sl_ns_kind_name(SL_NS_MUTABLE), "mutable");
	assert_string_equal(sl_op_type_name(SL_OP_COMMIT), "commit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_exact_bytes),
	        cmocka_unit_test(test_rejects_malformed),
	        cmocka_unit_test(test_kind_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
