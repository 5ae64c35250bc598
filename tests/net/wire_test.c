/*
 * The sync wire codec: the ops frame and batch vectors of docs/protocol.md
 * byte for byte in both directions, seeded round trips (with real range
 * proofs and pinned nodes from an in-memory MMR) and rejection of every
 * malformed frame: each truncation, each trailing byte, bad headers and
 * counts, elements that are not operations, proofs for another size and
 * values or keys that do not fit.
 *
 * A rejected frame must leave the output untouched and nothing allocated;
 * decoders read from heap copies of exactly the frame's length, so under
 * ASan an over-read or a leak fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"
#include "testutil.h"

#define FRAME_MAX (64u << 20)

/* The worked example's elements (docs/protocol.md, "Operations"). */
#define HELLO_DIGEST_HEX "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define SET_AB_HEX       "0103612f6205" HELLO_DIGEST_HEX
#define COMMIT0_HEX      "040000000000000000"
#define DOC_ROOT_HEX     "5fcd37e0069bf2a7206dd68b2628003d017911e485d6f3d90488f90870e3001f"

/* docs/protocol.md, "Ops frame". */
static const char ops_vector_hex[] = "01 0000000000000000 0000000000000002 00000002"
                                     "26 " SET_AB_HEX " 68656c6c6f"
                                     "09 " COMMIT0_HEX "09 0000000000000002 00"
                                     "00";

/* docs/protocol.md, "Batch frame". */
static const char batch_vector_hex[] = "01 00000002 01 03 612f62 05 68656c6c6f 02 01 6b";

/* Hex with optional spaces into out; returns the byte count. */
static size_t unhex(uint8_t *out, size_t cap, const char *text)
{
	char compact[8192];
	size_t n = 0, got = 0;
	for (const char *p = text; *p; p++) {
		if (*p == ' ')
			continue;
		assert_true(n < sizeof(compact));
		compact[n++] = *p;
	}
	assert_int_equal(sl_hex_decode(out, cap, &got, compact, n), SL_OK);
	return got;
}

/* A heap copy of exactly len bytes, so ASan sees any read past the end. */
static uint8_t *exact_copy(const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	if (len)
		memcpy(copy, data, len);
	return copy;
}

static void element_of(sl_buf *out, const sl_op *op)
{
	sl_buf_reset(out);
	assert_int_equal(sl_op_encode(op, out), SL_OK);
}

static sl_op set_op(const char *key, const void *value, size_t value_len)
{
	sl_op op;
	memset(&op, 0, sizeof(op));
	op.type = SL_OP_SET;
	op.key = key;
	op.key_len = strlen(key);
	op.value_len = value_len;
	sl_sha256(&op.digest, value, value_len);
	return op;
}

static sl_op commit_op(uint64_t floor)
{
	sl_op op;
	memset(&op, 0, sizeof(op));
	op.type = SL_OP_COMMIT;
	op.floor = floor;
	return op;
}

/* Decode must fail with `code`, set that code as the last error with a
 * message, and leave *out as it was. */
static void expect_ops_reject(const uint8_t *frame, size_t len, int code)
{
	uint8_t *copy = exact_copy(frame, len);
	sl_wire_ops w, before;
	memset(&w, 0xa5, sizeof(w));
	memcpy(&before, &w, sizeof(w));
	sl_error_clear();
	assert_int_equal(sl_wire_ops_decode(&w, copy, len), code);
	assert_int_equal(sl_error_last()->code, code);
	assert_true(sl_error_last()->message[0] != '\0');
	assert_memory_equal(&w, &before, sizeof(w));
	free(copy);
}

static void expect_batch_reject(const uint8_t *body, size_t len, int code)
{
	uint8_t *copy = exact_copy(body, len);
	sl_wire_entry sentinel, *entries = &sentinel;
	size_t n = 12345;
	sl_error_clear();
	assert_int_equal(sl_wire_batch_decode(&entries, &n, copy, len), code);
	assert_int_equal(sl_error_last()->code, code);
	assert_true(sl_error_last()->message[0] != '\0');
	assert_ptr_equal(entries, &sentinel);
	assert_int_equal(n, 12345);
	free(copy);
}

/* ------------------------------------------------------------ vectors */

/* The two operations of the worked example, proved by an in-memory MMR. */
static void build_vector_frame(sl_buf *frame)
{
	sl_buf set_el = SL_BUF_INIT(4096), commit_el = SL_BUF_INIT(64);
	sl_op set = set_op("a/b", "hello", 5), commit = commit_op(0);
	sl_mmr_mem *mem = NULL;
	sl_mmr_nodes nodes;
	sl_mmr_proof proof = {0};
	uint8_t want[128];
	size_t want_len;

	element_of(&set_el, &set);
	element_of(&commit_el, &commit);
	want_len = unhex(want, sizeof(want), SET_AB_HEX);
	assert_int_equal(set_el.len, want_len);
	assert_memory_equal(set_el.data, want, want_len);
	want_len = unhex(want, sizeof(want), COMMIT0_HEX);
	assert_int_equal(commit_el.len, want_len);
	assert_memory_equal(commit_el.data, want, want_len);

	assert_int_equal(sl_mmr_mem_new(&mem), SL_OK);
	assert_int_equal(sl_mmr_mem_append(mem, set_el.data, set_el.len), SL_OK);
	assert_int_equal(sl_mmr_mem_append(mem, commit_el.data, commit_el.len), SL_OK);
	nodes = sl_mmr_mem_nodes(mem);
	assert_int_equal(sl_mmr_range_proof(&proof, &nodes, 2, 0, 2), SL_OK);

	assert_int_equal(sl_wire_ops_begin(frame, 0, 2), SL_OK);
	assert_int_equal(sl_wire_ops_add(frame, set_el.data, set_el.len, "hello", 5), SL_OK);
	assert_int_equal(sl_wire_ops_add(frame, commit_el.data, commit_el.len, NULL, 0), SL_OK);
	assert_int_equal(sl_wire_ops_end(frame, 2, &proof, NULL, 0), SL_OK);

	sl_mmr_proof_free(&proof);
	sl_mmr_mem_free(mem);
	sl_buf_free(&set_el);
	sl_buf_free(&commit_el);
}

static void test_ops_vector(void **state)
{
	(void)state;
	sl_buf frame = SL_BUF_INIT(FRAME_MAX);
	uint8_t want[256], set_el[64], commit_el[16];
	size_t want_len = unhex(want, sizeof(want), ops_vector_hex);
	size_t set_len = unhex(set_el, sizeof(set_el), SET_AB_HEX);
	size_t commit_len = unhex(commit_el, sizeof(commit_el), COMMIT0_HEX);
	sl_wire_ops w;
	sl_digest root;

	build_vector_frame(&frame);
	assert_int_equal(want_len, 86);
	assert_int_equal(frame.len, want_len);
	assert_memory_equal(frame.data, want, want_len);

	/* And back: fields, borrowed bytes and a proof that checks against
	 * the documented root. */
	assert_int_equal(sl_wire_ops_decode(&w, want, want_len), SL_OK);
	assert_int_equal(w.start, 0);
	assert_int_equal(w.size, 2);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.elements[0].len, set_len);
	assert_memory_equal(w.elements[0].data, set_el, set_len);
	assert_true(w.elements[0].data >= want && w.elements[0].data < want + want_len);
	assert_int_equal(w.values[0].len, 5);
	assert_memory_equal(w.values[0].data, "hello", 5);
	assert_int_equal(w.elements[1].len, commit_len);
	assert_memory_equal(w.elements[1].data, commit_el, commit_len);
	assert_null(w.values[1].data);
	assert_int_equal(w.values[1].len, 0);
	assert_int_equal(w.proof.leaves, 2);
	assert_int_equal(w.proof.n_digests, 0);
	assert_int_equal(w.n_pinned, 0);
	assert_int_equal(sl_digest_from_hex(&root, DOC_ROOT_HEX), SL_OK);
	assert_int_equal(sl_mmr_range_verify(&w.proof, w.start, w.elements, w.n, &root), SL_OK);
	sl_wire_ops_free(&w);
	sl_wire_ops_free(NULL);
	sl_buf_free(&frame);
}

static void test_batch_vector(void **state)
{
	(void)state;
	sl_buf body = SL_BUF_INIT(FRAME_MAX);
	uint8_t want[64];
	size_t want_len = unhex(want, sizeof(want), batch_vector_hex), n = 0;
	sl_wire_entry *entries = NULL;

	assert_int_equal(sl_wire_batch_begin(&body), SL_OK);
	assert_int_equal(sl_wire_batch_put(&body, "a/b", 3, "hello", 5), SL_OK);
	assert_int_equal(sl_wire_batch_del(&body, "k", 1), SL_OK);
	assert_int_equal(sl_wire_batch_end(&body, 2), SL_OK);
	assert_int_equal(want_len, 19);
	assert_int_equal(body.len, want_len);
	assert_memory_equal(body.data, want, want_len);

	assert_int_equal(sl_wire_batch_decode(&entries, &n, want, want_len), SL_OK);
	assert_int_equal(n, 2);
	assert_false(entries[0].is_delete);
	assert_int_equal(entries[0].key_len, 3);
	assert_memory_equal(entries[0].key, "a/b", 3);
	assert_int_equal(entries[0].value_len, 5);
	assert_memory_equal(entries[0].value, "hello", 5);
	assert_true(entries[1].is_delete);
	assert_int_equal(entries[1].key_len, 1);
	assert_memory_equal(entries[1].key, "k", 1);
	sl_free(entries);
	sl_buf_free(&body);
}

/* --------------------------------------------------------- round trips */

/* A valid key of 1..3 segments, some with a two-byte UTF-8 letter. */
static size_t random_key(tu_rng *rng, char *out, size_t cap)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789_-.";
	size_t len = 0, segments = 1 + (size_t)tu_rng_below(rng, 3);
	for (size_t s = 0; s < segments; s++) {
		size_t seg_len = 1 + (size_t)tu_rng_below(rng, 8);
		if (s)
			out[len++] = '/';
		for (size_t i = 0; i < seg_len && len + 3 < cap; i++) {
			if (tu_rng_below(rng, 16) == 0) {
				out[len++] = (char)0xc3; /* U+00E9 */
				out[len++] = (char)0xa9;
			} else {
				/* A segment never starts with '.', so none is "." or "..". */
				size_t pick =
				        (size_t)tu_rng_below(rng, sizeof(alphabet) - (i ? 1 : 2));
				out[len++] = alphabet[pick];
			}
		}
	}
	assert_int_equal(sl_key_validate(out, len), SL_OK);
	return len;
}

#define RT_MAX_OPS   80
#define RT_VALUE_MAX 300

typedef struct random_log {
	size_t n;
	uint8_t elements[RT_MAX_OPS][1 + 2 * SL_VARINT_MAX + 64 + SL_DIGEST_LEN];
	size_t element_lens[RT_MAX_OPS];
	uint8_t values[RT_MAX_OPS][RT_VALUE_MAX];
	size_t value_lens[RT_MAX_OPS]; /* 0 also for delete and commit */
	sl_bytes element_bytes[RT_MAX_OPS];
} random_log;

static void random_log_fill(random_log *log, tu_rng *rng, size_t n)
{
	sl_buf el = SL_BUF_INIT(4096);
	char key[64];
	log->n = n;
	for (size_t i = 0; i < n; i++) {
		sl_op op;
		memset(&op, 0, sizeof(op));
		op.type = (sl_op_type)(1 + tu_rng_below(rng, 4));
		log->value_lens[i] = 0;
		if (op.type == SL_OP_COMMIT) {
			op.floor = tu_rng_next(rng);
		} else {
			op.key_len = random_key(rng, key, sizeof(key));
			op.key = key;
		}
		if (op.type == SL_OP_SET || op.type == SL_OP_UPDATE) {
			log->value_lens[i] = (size_t)tu_rng_below(rng, RT_VALUE_MAX + 1);
			tu_rng_fill(rng, log->values[i], log->value_lens[i]);
			op.value_len = log->value_lens[i];
			sl_sha256(&op.digest, log->values[i], log->value_lens[i]);
		}
		element_of(&el, &op);
		assert_true(el.len <= sizeof(log->elements[i]));
		memcpy(log->elements[i], el.data, el.len);
		log->element_lens[i] = el.len;
		log->element_bytes[i] = (sl_bytes){log->elements[i], el.len};
	}
	sl_buf_free(&el);
}

/* Random logs, random ranges, real proofs, with and without pinned
 * nodes: encode, decode, compare, re-encode, verify. */
static void test_ops_round_trip(void **state)
{
	(void)state;
	tu_rng rng = tu_rng_seeded("test_ops_round_trip");
	random_log *log = calloc(1, sizeof(*log));
	assert_non_null(log);

	for (int iter = 0; iter < 200; iter++) {
		size_t leaves = 1 + (size_t)tu_rng_below(&rng, RT_MAX_OPS);
		size_t start = (size_t)tu_rng_below(&rng, leaves);
		size_t n = 1 + (size_t)tu_rng_below(&rng, leaves - start);
		int with_pinned = (int)tu_rng_below(&rng, 2);
		sl_buf frame = SL_BUF_INIT(FRAME_MAX), again = SL_BUF_INIT(FRAME_MAX);
		sl_digest pinned[SL_MMR_MAX_PEAKS], checked[SL_MMR_MAX_PEAKS], root;
		uint64_t pinned_pos[SL_MMR_MAX_PEAKS];
		size_t n_pinned = 0, n_checked = 0;
		sl_mmr_mem *mem = NULL;
		sl_mmr_nodes nodes;
		sl_mmr_proof proof = {0};
		sl_wire_ops w;
		uint8_t *copy;

		random_log_fill(log, &rng, leaves);
		assert_int_equal(sl_mmr_mem_new(&mem), SL_OK);
		for (size_t i = 0; i < leaves; i++)
			assert_int_equal(
			        sl_mmr_mem_append(mem, log->elements[i], log->element_lens[i]),
			        SL_OK);
		sl_mmr_mem_root(mem, &root);
		nodes = sl_mmr_mem_nodes(mem);
		assert_int_equal(sl_mmr_range_proof(&proof, &nodes, leaves, start, start + n),
		                 SL_OK);
		if (with_pinned) {
			n_pinned = sl_mmr_pinned_positions(start, pinned_pos);
			for (size_t i = 0; i < n_pinned; i++)
				assert_int_equal(nodes.get(nodes.ctx, pinned_pos[i], &pinned[i]),
				                 SL_OK);
		}

		assert_int_equal(sl_wire_ops_begin(&frame, start, leaves), SL_OK);
		for (size_t i = start; i < start + n; i++)
			assert_int_equal(sl_wire_ops_add(&frame, log->elements[i],
			                                 log->element_lens[i], log->values[i],
			                                 log->value_lens[i]),
			                 SL_OK);
		assert_int_equal(sl_wire_ops_end(&frame, n, &proof, pinned, n_pinned), SL_OK);

		copy = exact_copy(frame.data, frame.len);
		assert_int_equal(sl_wire_ops_decode(&w, copy, frame.len), SL_OK);
		assert_int_equal(w.start, start);
		assert_int_equal(w.size, leaves);
		assert_int_equal(w.n, n);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(w.elements[i].len, log->element_lens[start + i]);
			assert_memory_equal(w.elements[i].data, log->elements[start + i],
			                    w.elements[i].len);
			assert_int_equal(w.values[i].len, log->value_lens[start + i]);
			if (w.values[i].len)
				assert_memory_equal(w.values[i].data, log->values[start + i],
				                    w.values[i].len);
		}
		assert_int_equal(w.proof.leaves, proof.leaves);
		assert_int_equal(w.proof.n_digests, proof.n_digests);
		if (proof.n_digests)
			assert_memory_equal(w.proof.digests, proof.digests,
			                    proof.n_digests * sizeof(sl_digest));
		assert_int_equal(w.n_pinned, n_pinned);
		if (n_pinned)
			assert_memory_equal(w.pinned, pinned, n_pinned * sizeof(sl_digest));

		/* Re-encoding the decoded frame gives the same bytes. */
		assert_int_equal(sl_wire_ops_begin(&again, w.start, w.size), SL_OK);
		for (size_t i = 0; i < w.n; i++)
			assert_int_equal(sl_wire_ops_add(&again, w.elements[i].data,
			                                 w.elements[i].len, w.values[i].data,
			                                 w.values[i].len),
			                 SL_OK);
		assert_int_equal(sl_wire_ops_end(&again, w.n, &w.proof, w.pinned, w.n_pinned),
		                 SL_OK);
		assert_int_equal(again.len, frame.len);
		assert_memory_equal(again.data, frame.data, frame.len);

		/* What the client does with it: the proof checks and fixes the
		 * pinned nodes the server sent. */
		assert_int_equal(sl_mmr_range_verify_pinned(&w.proof, w.start, w.elements, w.n,
		                                            &root, checked, &n_checked),
		                 SL_OK);
		if (with_pinned) {
			assert_int_equal(n_checked, w.n_pinned);
			if (n_checked)
				assert_memory_equal(checked, w.pinned,
				                    n_checked * sizeof(sl_digest));
		}

		sl_wire_ops_free(&w);
		free(copy);
		sl_mmr_proof_free(&proof);
		sl_mmr_mem_free(mem);
		sl_buf_free(&frame);
		sl_buf_free(&again);
	}
	free(log);
}

/* Frames the encoder accepts but that carry no real proof: the most
 * pinned nodes, many proof digests and sizes up to SL_MMR_MAX_LEAVES. */
static void test_ops_round_trip_extremes(void **state)
{
	(void)state;
	tu_rng rng = tu_rng_seeded("test_ops_round_trip_extremes");
	random_log *log = calloc(1, sizeof(*log));
	assert_non_null(log);

	for (int iter = 0; iter < 100; iter++) {
		size_t n = 1 + (size_t)tu_rng_below(&rng, RT_MAX_OPS);
		uint64_t size =
		        tu_rng_below(&rng, 2) ? SL_MMR_MAX_LEAVES : n + tu_rng_below(&rng, 1000);
		uint64_t start = size - n;
		size_t n_pinned = (size_t)tu_rng_below(&rng, SL_MMR_MAX_PEAKS + 1);
		sl_digest pinned[SL_MMR_MAX_PEAKS];
		sl_mmr_proof proof = {0};
		sl_buf frame = SL_BUF_INIT(FRAME_MAX);
		sl_wire_ops w;

		if (start > 0 && tu_rng_below(&rng, 2))
			start--;
		random_log_fill(log, &rng, n);
		proof.leaves = size;
		proof.n_digests = (size_t)tu_rng_below(&rng, SL_MMR_PROOF_MAX_DIGESTS + 1);
		proof.digests = calloc(proof.n_digests + 1, sizeof(sl_digest));
		assert_non_null(proof.digests);
		tu_rng_fill(&rng, proof.digests, proof.n_digests * sizeof(sl_digest));
		tu_rng_fill(&rng, pinned, sizeof(pinned));

		assert_int_equal(sl_wire_ops_begin(&frame, start, size), SL_OK);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(sl_wire_ops_add(&frame, log->elements[i],
			                                 log->element_lens[i], log->values[i],
			                                 log->value_lens[i]),
			                 SL_OK);
		assert_int_equal(sl_wire_ops_end(&frame, n, &proof, pinned, n_pinned), SL_OK);
		assert_int_equal(sl_wire_ops_decode(&w, frame.data, frame.len), SL_OK);
		assert_int_equal(w.start, start);
		assert_int_equal(w.size, size);
		assert_int_equal(w.n, n);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(w.elements[i].len, log->element_lens[i]);
			assert_memory_equal(w.elements[i].data, log->elements[i],
			                    log->element_lens[i]);
			assert_int_equal(w.values[i].len, log->value_lens[i]);
			if (log->value_lens[i])
				assert_memory_equal(w.values[i].data, log->values[i],
				                    log->value_lens[i]);
		}
		assert_int_equal(w.proof.n_digests, proof.n_digests);
		if (proof.n_digests)
			assert_memory_equal(w.proof.digests, proof.digests,
			                    proof.n_digests * sizeof(sl_digest));
		assert_int_equal(w.n_pinned, n_pinned);
		if (n_pinned)
			assert_memory_equal(w.pinned, pinned, n_pinned * sizeof(sl_digest));
		sl_wire_ops_free(&w);
		free(proof.digests);
		sl_buf_free(&frame);
	}
	free(log);
}

static void test_batch_round_trip(void **state)
{
	(void)state;
	tu_rng rng = tu_rng_seeded("test_batch_round_trip");
	static char keys[200][64];
	static uint8_t values[200][RT_VALUE_MAX];
	size_t key_lens[200], value_lens[200];
	int deletes[200];

	for (int iter = 0; iter < 200; iter++) {
		size_t n = 1 + (size_t)tu_rng_below(&rng, 200), n_back = 0;
		sl_buf body = SL_BUF_INIT(FRAME_MAX), again = SL_BUF_INIT(FRAME_MAX);
		sl_wire_entry *entries = NULL;
		uint8_t *copy;

		assert_int_equal(sl_wire_batch_begin(&body), SL_OK);
		for (size_t i = 0; i < n; i++) {
			key_lens[i] = random_key(&rng, keys[i], sizeof(keys[i]));
			deletes[i] = tu_rng_below(&rng, 3) == 0;
			value_lens[i] =
			        deletes[i] ? 0 : (size_t)tu_rng_below(&rng, RT_VALUE_MAX + 1);
			tu_rng_fill(&rng, values[i], value_lens[i]);
			if (deletes[i])
				assert_int_equal(sl_wire_batch_del(&body, keys[i], key_lens[i]),
				                 SL_OK);
			else
				assert_int_equal(sl_wire_batch_put(&body, keys[i], key_lens[i],
				                                   values[i], value_lens[i]),
				                 SL_OK);
		}
		assert_int_equal(sl_wire_batch_end(&body, n), SL_OK);

		copy = exact_copy(body.data, body.len);
		assert_int_equal(sl_wire_batch_decode(&entries, &n_back, copy, body.len), SL_OK);
		assert_int_equal(n_back, n);
		assert_int_equal(sl_wire_batch_begin(&again), SL_OK);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(entries[i].is_delete, deletes[i]);
			assert_int_equal(entries[i].key_len, key_lens[i]);
			assert_memory_equal(entries[i].key, keys[i], key_lens[i]);
			if (deletes[i]) {
				assert_int_equal(sl_wire_batch_del(&again, entries[i].key,
				                                   entries[i].key_len),
				                 SL_OK);
				continue;
			}
			assert_int_equal(entries[i].value_len, value_lens[i]);
			if (value_lens[i])
				assert_memory_equal(entries[i].value, values[i], value_lens[i]);
			assert_int_equal(sl_wire_batch_put(&again, entries[i].key,
			                                   entries[i].key_len, entries[i].value,
			                                   entries[i].value_len),
			                 SL_OK);
		}
		assert_int_equal(sl_wire_batch_end(&again, n_back), SL_OK);
		assert_int_equal(again.len, body.len);
		assert_memory_equal(again.data, body.data, body.len);
		sl_free(entries);
		free(copy);
		sl_buf_free(&body);
		sl_buf_free(&again);
	}
}

/* ------------------------------------------------------------ rejection */

/* A frame with a real proof of several digests and pinned nodes: the
 * operations [5, 9) of an MMR of 11 set/commit operations. */
static void build_rich_frame(sl_buf *frame)
{
	sl_buf el = SL_BUF_INIT(4096);
	uint8_t elements[11][128];
	size_t lens[11];
	char keys[11][8], values[11][16];
	sl_digest pinned[SL_MMR_MAX_PEAKS];
	uint64_t pinned_pos[SL_MMR_MAX_PEAKS];
	size_t n_pinned;
	sl_mmr_mem *mem = NULL;
	sl_mmr_nodes nodes;
	sl_mmr_proof proof = {0};

	assert_int_equal(sl_mmr_mem_new(&mem), SL_OK);
	for (int i = 0; i < 11; i++) {
		sl_op op;
		snprintf(keys[i], sizeof(keys[i]), "k/%d", i);
		snprintf(values[i], sizeof(values[i]), "value %d", i);
		op = i % 4 == 3 ? commit_op(0) : set_op(keys[i], values[i], strlen(values[i]));
		element_of(&el, &op);
		memcpy(elements[i], el.data, el.len);
		lens[i] = el.len;
		assert_int_equal(sl_mmr_mem_append(mem, el.data, el.len), SL_OK);
	}
	nodes = sl_mmr_mem_nodes(mem);
	assert_int_equal(sl_mmr_range_proof(&proof, &nodes, 11, 5, 9), SL_OK);
	assert_true(proof.n_digests > 1);
	n_pinned = sl_mmr_pinned_positions(5, pinned_pos);
	assert_int_equal(n_pinned, 2);
	for (size_t i = 0; i < n_pinned; i++)
		assert_int_equal(nodes.get(nodes.ctx, pinned_pos[i], &pinned[i]), SL_OK);
	assert_int_equal(sl_wire_ops_begin(frame, 5, 11), SL_OK);
	for (int i = 5; i < 9; i++)
		assert_int_equal(
		        sl_wire_ops_add(frame, elements[i], lens[i], values[i], strlen(values[i])),
		        SL_OK);
	assert_int_equal(sl_wire_ops_end(frame, 4, &proof, pinned, n_pinned), SL_OK);
	sl_mmr_proof_free(&proof);
	sl_mmr_mem_free(mem);
	sl_buf_free(&el);
}

static void test_ops_rejects_truncation_and_trailing(void **state)
{
	(void)state;
	sl_buf frames[2] = {SL_BUF_INIT(FRAME_MAX), SL_BUF_INIT(FRAME_MAX)};
	sl_wire_ops w;

	build_vector_frame(&frames[0]);
	build_rich_frame(&frames[1]);
	for (size_t f = 0; f < 2; f++) {
		const sl_buf *frame = &frames[f];
		uint8_t *longer = malloc(frame->len + 2);
		assert_non_null(longer);
		assert_int_equal(sl_wire_ops_decode(&w, frame->data, frame->len), SL_OK);
		sl_wire_ops_free(&w);
		for (size_t len = 0; len < frame->len; len++)
			expect_ops_reject(frame->data, len, SL_ECORRUPT);
		memcpy(longer, frame->data, frame->len);
		for (int byte = 0; byte < 256; byte++) {
			longer[frame->len] = (uint8_t)byte;
			expect_ops_reject(longer, frame->len + 1, SL_ECORRUPT);
			longer[frame->len + 1] = (uint8_t)byte;
			expect_ops_reject(longer, frame->len + 2, SL_ECORRUPT);
		}
		free(longer);
	}
	sl_buf_free(&frames[0]);
	sl_buf_free(&frames[1]);
}

/* Raw frame pieces, for frames the encoder refuses to write. */
static void raw_header(sl_buf *b, uint8_t version, uint64_t start, uint64_t size, uint32_t n)
{
	sl_buf_reset(b);
	assert_int_equal(sl_buf_append_byte(b, version), SL_OK);
	assert_int_equal(sl_buf_append_be64(b, start), SL_OK);
	assert_int_equal(sl_buf_append_be64(b, size), SL_OK);
	assert_int_equal(sl_buf_append_be32(b, n), SL_OK);
}

static void raw_element(sl_buf *b, const char *element_hex, const char *value)
{
	uint8_t element[2048];
	size_t len = unhex(element, sizeof(element), element_hex);
	assert_int_equal(sl_buf_append_varint(b, len), SL_OK);
	assert_int_equal(sl_buf_append(b, element, len), SL_OK);
	if (value)
		assert_int_equal(sl_buf_append_str(b, value), SL_OK);
}

static void raw_proof(sl_buf *b, uint64_t leaves, size_t n_digests)
{
	assert_int_equal(
	        sl_buf_append_varint(b, 8 + sl_varint_len(n_digests) + n_digests * SL_DIGEST_LEN),
	        SL_OK);
	assert_int_equal(sl_buf_append_be64(b, leaves), SL_OK);
	assert_int_equal(sl_buf_append_varint(b, n_digests), SL_OK);
	for (size_t i = 0; i < n_digests * SL_DIGEST_LEN; i++)
		assert_int_equal(sl_buf_append_byte(b, (uint8_t)i), SL_OK);
}

static void raw_pinned(sl_buf *b, size_t n_pinned)
{
	assert_int_equal(sl_buf_append_byte(b, (uint8_t)n_pinned), SL_OK);
	for (size_t i = 0; i < n_pinned * SL_DIGEST_LEN; i++)
		assert_int_equal(sl_buf_append_byte(b, (uint8_t)(i * 7)), SL_OK);
}

/* The vector's frame from raw pieces, with one piece changed. */
static void raw_vector(sl_buf *b, uint8_t version, uint64_t start, uint64_t size, uint32_t n,
                       uint64_t proof_leaves, size_t n_pinned)
{
	raw_header(b, version, start, size, n);
	raw_element(b, SET_AB_HEX, "hello");
	raw_element(b, COMMIT0_HEX, NULL);
	raw_proof(b, proof_leaves, 0);
	raw_pinned(b, n_pinned);
}

static void test_ops_rejects_bad_header(void **state)
{
	(void)state;
	sl_buf b = SL_BUF_INIT(FRAME_MAX);
	uint8_t want[256];
	size_t want_len = unhex(want, sizeof(want), ops_vector_hex);
	sl_wire_ops w;

	/* The raw builder makes the vector itself... */
	raw_vector(&b, 1, 0, 2, 2, 2, 0);
	assert_int_equal(b.len, want_len);
	assert_memory_equal(b.data, want, want_len);
	assert_int_equal(sl_wire_ops_decode(&w, b.data, b.len), SL_OK);
	sl_wire_ops_free(&w);

	/* ...and each broken variant of it. */
	const uint8_t versions[] = {0, 2, 3, 0x81, 0xff};
	for (size_t i = 0; i < sizeof(versions); i++) {
		raw_vector(&b, versions[i], 0, 2, 2, 2, 0);
		expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	}
	raw_vector(&b, 1, 0, 2, 0, 2, 0); /* n = 0 */
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, 0, 2, SL_WIRE_MAX_OPS + 1, 2, 0);
	expect_ops_reject(b.data, b.len, SL_ETOOLARGE);
	raw_vector(&b, 1, 0, UINT64_MAX, SL_WIRE_MAX_OPS + 1, UINT64_MAX, 0);
	expect_ops_reject(b.data, b.len, SL_ETOOLARGE);
	raw_vector(&b, 1, 0, 2, UINT32_MAX, 2, 0);
	expect_ops_reject(b.data, b.len, SL_ETOOLARGE);
	/* A count within the cap that the frame cannot hold. */
	raw_vector(&b, 1, 0, SL_WIRE_MAX_OPS, SL_WIRE_MAX_OPS, SL_WIRE_MAX_OPS, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, 0, 3, 3, 3, 0); /* more than the frame holds */
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, 0, 2, 1, 2, 0); /* fewer than the frame holds */
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);

	/* start + n > size, also where the sum overflows. */
	raw_vector(&b, 1, 1, 2, 2, 2, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, 0, 1, 2, 1, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, 2, 2, 2, 2, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, UINT64_MAX - 1, UINT64_MAX, 2, UINT64_MAX, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, UINT64_MAX, 1, 2, 1, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	/* The largest size a proof may have, and one past it. */
	raw_vector(&b, 1, SL_MMR_MAX_LEAVES - 2, SL_MMR_MAX_LEAVES, 2, SL_MMR_MAX_LEAVES, 0);
	assert_int_equal(sl_wire_ops_decode(&w, b.data, b.len), SL_OK);
	sl_wire_ops_free(&w);
	raw_vector(&b, 1, 0, SL_MMR_MAX_LEAVES + 1, 2, SL_MMR_MAX_LEAVES + 1, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);

	/* A proof whose leaves differ from size. */
	const uint64_t other_leaves[] = {0, 1, 3, UINT64_MAX};
	for (size_t i = 0; i < sizeof(other_leaves) / sizeof(other_leaves[0]); i++) {
		raw_vector(&b, 1, 0, 2, 2, other_leaves[i], 0);
		expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	}

	/* Pinned nodes: 64 is the most, 65 (with its bytes present) too many. */
	raw_vector(&b, 1, 0, 2, 2, 2, SL_MMR_MAX_PEAKS);
	assert_int_equal(sl_wire_ops_decode(&w, b.data, b.len), SL_OK);
	assert_int_equal(w.n_pinned, SL_MMR_MAX_PEAKS);
	sl_wire_ops_free(&w);
	raw_vector(&b, 1, 0, 2, 2, 2, SL_MMR_MAX_PEAKS + 1);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_vector(&b, 1, 0, 2, 2, 2, 255);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	sl_buf_free(&b);
}

static void test_ops_rejects_bad_body(void **state)
{
	(void)state;
	sl_buf b = SL_BUF_INIT(FRAME_MAX);
	/* Elements that are not exactly one operation, each followed by a
	 * valid commit, a proof and no pinned nodes. */
	const char *not_ops[] = {
	        "05016b",                                 /* unknown type */
	        "00",                                     /* type 0 */
	        "03",                                     /* delete without a key */
	        "0300",                                   /* empty key */
	        "03016b00",                               /* trailing byte */
	        "0304612f2f62",                           /* key a//b */
	        "03022e2e",                               /* key .. */
	        "0301 01",                                /* control character */
	        "038100 6b",                              /* non-canonical varint */
	        "0400000000000000",                       /* short commit */
	        "04000000000000000000",                   /* long commit */
	        "0101 6b 00",                             /* set without a digest */
	        ("0101 6b 8080808008 " HELLO_DIGEST_HEX), /* value length past 2^30 */
	};
	for (size_t i = 0; i < sizeof(not_ops) / sizeof(not_ops[0]); i++) {
		raw_header(&b, 1, 0, 2, 2);
		raw_element(&b, not_ops[i], NULL);
		raw_element(&b, COMMIT0_HEX, NULL);
		raw_proof(&b, 2, 0);
		raw_pinned(&b, 0);
		expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	}

	/* Element lengths: 0, past the end, longer than any operation. */
	raw_header(&b, 1, 0, 2, 2);
	assert_int_equal(sl_buf_append_byte(&b, 0), SL_OK);
	raw_element(&b, COMMIT0_HEX, NULL);
	raw_proof(&b, 2, 0);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_header(&b, 1, 0, 2, 2);
	raw_element(&b, COMMIT0_HEX, NULL);
	assert_int_equal(sl_buf_append_varint(&b, 1u << 20), SL_OK);
	raw_element(&b, COMMIT0_HEX, NULL);
	raw_proof(&b, 2, 0);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);

	/* A value shorter than its operation says, longer, or missing. */
	const char *values[] = {"hell", "hello!", ""};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		raw_header(&b, 1, 0, 2, 2);
		raw_element(&b, SET_AB_HEX, values[i]);
		raw_element(&b, COMMIT0_HEX, NULL);
		raw_proof(&b, 2, 0);
		raw_pinned(&b, 0);
		expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	}
	/* A value length that runs far past the end of the frame. */
	raw_header(&b, 1, 0, 2, 1);
	raw_element(&b, "0103612f62 8080808004 " HELLO_DIGEST_HEX, NULL);
	raw_proof(&b, 2, 0);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);

	/* A proof length past the end, a proof with a trailing byte, one
	 * digest short of its own count, and no proof at all. */
	raw_header(&b, 1, 0, 2, 2);
	raw_element(&b, SET_AB_HEX, "hello");
	raw_element(&b, COMMIT0_HEX, NULL);
	assert_int_equal(sl_buf_append_varint(&b, 200), SL_OK);
	assert_int_equal(sl_buf_append_be64(&b, 2), SL_OK);
	assert_int_equal(sl_buf_append_byte(&b, 0), SL_OK);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_header(&b, 1, 0, 2, 2);
	raw_element(&b, SET_AB_HEX, "hello");
	raw_element(&b, COMMIT0_HEX, NULL);
	assert_int_equal(sl_buf_append_varint(&b, 10), SL_OK);
	assert_int_equal(sl_buf_append_be64(&b, 2), SL_OK);
	assert_int_equal(sl_buf_append_byte(&b, 0), SL_OK);
	assert_int_equal(sl_buf_append_byte(&b, 0), SL_OK);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_header(&b, 1, 0, 2, 2);
	raw_element(&b, SET_AB_HEX, "hello");
	raw_element(&b, COMMIT0_HEX, NULL);
	assert_int_equal(sl_buf_append_varint(&b, 9 + 31), SL_OK);
	assert_int_equal(sl_buf_append_be64(&b, 2), SL_OK);
	assert_int_equal(sl_buf_append_byte(&b, 1), SL_OK);
	for (int i = 0; i < 31; i++)
		assert_int_equal(sl_buf_append_byte(&b, 0xee), SL_OK);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	raw_header(&b, 1, 0, 2, 2);
	raw_element(&b, SET_AB_HEX, "hello");
	raw_element(&b, COMMIT0_HEX, NULL);
	assert_int_equal(sl_buf_append_byte(&b, 0), SL_OK);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	/* More proof digests than the cap: SL_ETOOLARGE from the proof codec. */
	raw_header(&b, 1, 0, 2, 2);
	raw_element(&b, SET_AB_HEX, "hello");
	raw_element(&b, COMMIT0_HEX, NULL);
	raw_proof(&b, 2, SL_MMR_PROOF_MAX_DIGESTS + 1);
	raw_pinned(&b, 0);
	expect_ops_reject(b.data, b.len, SL_ETOOLARGE);
	/* Pinned nodes short of their count. */
	raw_vector(&b, 1, 0, 2, 2, 2, 3);
	b.len -= 1;
	expect_ops_reject(b.data, b.len, SL_ECORRUPT);
	sl_buf_free(&b);
}

/* Every allocation the decoder makes can fail: SL_ENOMEM, nothing leaked,
 * *out untouched; then it succeeds. */
static void test_ops_decode_out_of_memory(void **state)
{
	(void)state;
	sl_buf frame = SL_BUF_INIT(FRAME_MAX);
	sl_wire_ops w, before;
	int rc = SL_ENOMEM;
	long after;

	build_rich_frame(&frame);
	for (after = 0; rc == SL_ENOMEM && after < 100; after++) {
		memset(&w, 0x5a, sizeof(w));
		memcpy(&before, &w, sizeof(w));
		sl_alloc_fail_after(after, 1);
		rc = sl_wire_ops_decode(&w, frame.data, frame.len);
		sl_alloc_fail_after(-1, 0);
		if (rc == SL_ENOMEM)
			assert_memory_equal(&w, &before, sizeof(w));
	}
	assert_int_equal(rc, SL_OK);
	assert_true(after > 1);
	sl_wire_ops_free(&w);

	rc = SL_ENOMEM;
	for (after = 0; rc == SL_ENOMEM && after < 100; after++) {
		sl_wire_entry *entries = NULL;
		size_t n = 0;
		uint8_t body[64];
		size_t len = unhex(body, sizeof(body), batch_vector_hex);
		sl_alloc_fail_after(after, 1);
		rc = sl_wire_batch_decode(&entries, &n, body, len);
		sl_alloc_fail_after(-1, 0);
		if (rc == SL_ENOMEM)
			assert_null(entries);
		else
			sl_free(entries);
	}
	assert_int_equal(rc, SL_OK);
	sl_buf_free(&frame);
}

/* The encoder refuses what the decoder would refuse. */
static void test_ops_encoder_refuses(void **state)
{
	(void)state;
	sl_buf b = SL_BUF_INIT(FRAME_MAX);
	uint8_t set_el[64], bad[] = {0x05, 0x01, 'k'};
	size_t set_len = unhex(set_el, sizeof(set_el), SET_AB_HEX);
	sl_mmr_proof proof = {2, 0, NULL};
	sl_digest pinned[SL_MMR_MAX_PEAKS + 1];

	memset(pinned, 0, sizeof(pinned));
	assert_int_equal(sl_wire_ops_begin(&b, 0, 2), SL_OK);
	assert_int_equal(sl_wire_ops_add(&b, bad, sizeof(bad), NULL, 0), SL_ECORRUPT);
	assert_int_equal(sl_wire_ops_add(&b, set_el, set_len, "hell", 4), SL_EINVAL);
	assert_int_equal(sl_wire_ops_add(&b, set_el, set_len, "hello!", 6), SL_EINVAL);
	assert_int_equal(sl_wire_ops_end(&b, 0, &proof, NULL, 0), SL_EINVAL);
	assert_int_equal(sl_wire_ops_end(&b, SL_WIRE_MAX_OPS + 1, &proof, NULL, 0), SL_EINVAL);
	assert_int_equal(sl_wire_ops_end(&b, 1, &proof, pinned, SL_MMR_MAX_PEAKS + 1), SL_EINVAL);
	sl_buf_reset(&b);
	assert_int_equal(sl_wire_ops_end(&b, 1, &proof, NULL, 0), SL_EINVAL); /* no header */
	assert_int_equal(sl_wire_batch_end(&b, 1), SL_EINVAL);
	assert_int_equal(sl_wire_batch_begin(&b), SL_OK);
	assert_int_equal(sl_wire_batch_end(&b, 0), SL_EINVAL);
	assert_int_equal(sl_wire_batch_end(&b, SL_WIRE_MAX_ENTRIES + 1), SL_EINVAL);
	sl_buf_free(&b);
}

static void test_batch_rejects(void **state)
{
	(void)state;
	uint8_t body[4096], longer[64];
	size_t len = unhex(body, sizeof(body), batch_vector_hex);

	/* Every truncation and every trailing byte of the vector. */
	for (size_t i = 0; i < len; i++)
		expect_batch_reject(body, i, SL_ECORRUPT);
	memcpy(longer, body, len);
	for (int byte = 0; byte < 256; byte++) {
		longer[len] = (uint8_t)byte;
		expect_batch_reject(longer, len + 1, SL_ECORRUPT);
	}

	const struct {
		const char *hex;
		int code;
	} bad[] = {
	        {"00 00000001 02 01 6b", SL_ECORRUPT},                   /* version 0 */
	        {"02 00000001 02 01 6b", SL_ECORRUPT},                   /* version 2 */
	        {"01 00000000", SL_ECORRUPT},                            /* n = 0 */
	        {"01 00000000 02 01 6b", SL_ECORRUPT},                   /* n = 0, an entry */
	        {"01 000186a1 02 01 6b", SL_ETOOLARGE},                  /* n = 100001 */
	        {"01 ffffffff 02 01 6b", SL_ETOOLARGE},                  /* n = 2^32 - 1 */
	        {"01 00000002 02 01 6b", SL_ECORRUPT},                   /* one entry short */
	        {"01 000186a0 02 01 6b", SL_ECORRUPT},                   /* count past the body */
	        {"01 00000004 02 01 6b 02 01 6b 02 01 6b", SL_ECORRUPT}, /* 4 in 9 bytes */
	        {"01 00000001 00 01 6b", SL_ECORRUPT},                   /* kind 0 */
	        {"01 00000001 03 01 6b", SL_ECORRUPT},                   /* kind 3 */
	        {"01 00000001 ff 01 6b", SL_ECORRUPT},                   /* kind 255 */
	        {"01 00000001 01 01 6b", SL_ECORRUPT},                   /* put without value */
	        {"01 00000001 01 01 6b 06 68656c6c6f", SL_ECORRUPT},     /* value past the end */
	        {"01 00000001 01 01 6b 8080808004", SL_ECORRUPT},        /* 2^30, past the end */
	        {"01 00000001 01 01 6b 8180808004 00", SL_ECORRUPT},     /* past SL_VALUE_MAX */
	        {"01 00000001 01 01 6b ffffffffffffffffff01", SL_ECORRUPT},
	        {"01 00000001 01 01 6b 8000", SL_ECORRUPT}, /* non-canonical varint */
	        {"01 00000001 02 8100 6b", SL_ECORRUPT},    /* non-canonical varint */
	        {"01 00000001 02 02 6b", SL_ECORRUPT},      /* key past the end */
	        {"01 00000001 02 8108 6b", SL_ECORRUPT},    /* key longer than SL_KEY_MAX */
	        /* Keys that decode but are not valid keys: malformed too. */
	        {"01 00000001 02 04 612f2f62", SL_ECORRUPT}, /* a//b */
	        {"01 00000001 02 02 2e2e", SL_ECORRUPT},     /* .. */
	        {"01 00000001 01 02 2e2e 00", SL_ECORRUPT},  /* .. (put) */
	        {"01 00000001 01 00 00", SL_ECORRUPT},       /* empty key */
	        {"01 00000001 02 02 6b00", SL_ECORRUPT},     /* NUL in key */
	        {"01 00000001 02 02 c0af", SL_ECORRUPT},     /* overlong UTF-8 */
	        {"01 00000002 02 01 6b 02 02 2e2e", SL_ECORRUPT},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = unhex(body, sizeof(body), bad[i].hex);
		expect_batch_reject(body, n, bad[i].code);
	}

	/* A key of exactly SL_KEY_MAX bytes is fine, one more is not. */
	for (size_t key_len = SL_KEY_MAX; key_len <= SL_KEY_MAX + 1; key_len++) {
		sl_buf b = SL_BUF_INIT(FRAME_MAX);
		sl_wire_entry *entries = NULL;
		size_t n = 0;
		char key[SL_KEY_MAX + 1];
		memset(key, 'k', sizeof(key));
		assert_int_equal(sl_wire_batch_begin(&b), SL_OK);
		assert_int_equal(sl_wire_batch_put(&b, key, key_len, "", 0), SL_OK);
		assert_int_equal(sl_wire_batch_end(&b, 1), SL_OK);
		if (key_len == SL_KEY_MAX) {
			assert_int_equal(sl_wire_batch_decode(&entries, &n, b.data, b.len), SL_OK);
			assert_int_equal(entries[0].key_len, SL_KEY_MAX);
			assert_int_equal(entries[0].value_len, 0);
			sl_free(entries);
		} else {
			expect_batch_reject(b.data, b.len, SL_ECORRUPT);
		}
		sl_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ops_vector),
	        cmocka_unit_test(test_batch_vector),
	        cmocka_unit_test(test_ops_round_trip),
	        cmocka_unit_test(test_ops_round_trip_extremes),
	        cmocka_unit_test(test_batch_round_trip),
	        cmocka_unit_test(test_ops_rejects_truncation_and_trailing),
	        cmocka_unit_test(test_ops_rejects_bad_header),
	        cmocka_unit_test(test_ops_rejects_bad_body),
	        cmocka_unit_test(test_ops_decode_out_of_memory),
	        cmocka_unit_test(test_ops_encoder_refuses),
	        cmocka_unit_test(test_batch_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
