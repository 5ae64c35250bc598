/*
 * Tests of the proof JSON (src/cli/proof_json.c) without a store: proofs
 * are built from an in-memory MMR of encoded operations, written with
 * cli_proof_to_json, read back with cli_proof_from_json and checked with
 * cli_proof_check, intact and with every digest byte changed; allocation
 * failures while reading must fail cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/proof_json.h"
#include "sluice/mmr.h"
#include "testutil.h"

#define N_OPS 23

typedef struct fixture {
	sl_mmr_mem *mmr;
	sl_buf elements[N_OPS];
	char keys[N_OPS][32];
} fixture;

/* Operation i: set of key "dir/<i>" with a made-up value; every fourth is
 * a commit, so some locations hold no key. */
static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(sl_mmr_mem_new(&f->mmr), SL_OK);
	for (int i = 0; i < N_OPS; i++) {
		sl_op op;

		memset(&op, 0, sizeof(op));
		sl_buf_init(&f->elements[i], 4096);
		snprintf(f->keys[i], sizeof(f->keys[i]), "dir/%d", i);
		if (i % 4 == 3) {
			op.type = SL_OP_COMMIT;
			op.floor = (uint64_t)i;
		} else {
			op.type = SL_OP_SET;
			op.key = f->keys[i];
			op.key_len = strlen(f->keys[i]);
			op.value_len = (uint64_t)i * 10;
			sl_sha256(&op.digest, f->keys[i], op.key_len);
		}
		assert_int_equal(sl_op_encode(&op, &f->elements[i]), SL_OK);
		assert_int_equal(sl_mmr_mem_append(f->mmr, f->elements[i].data, f->elements[i].len),
		                 SL_OK);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	for (int i = 0; i < N_OPS; i++)
		sl_buf_free(&f->elements[i]);
	sl_mmr_mem_free(f->mmr);
	free(f);
	return 0;
}

/* The JSON text of the proof for operation loc. Caller frees. */
static char *proof_text(fixture *f, uint64_t loc)
{
	sl_mmr_nodes nodes = sl_mmr_mem_nodes(f->mmr);
	sl_key_proof kp;
	json_t *obj = NULL;
	char *text;

	sl_key_proof_init(&kp);
	kp.loc = loc;
	kp.target.size = N_OPS;
	sl_mmr_mem_root(f->mmr, &kp.target.root);
	assert_int_equal(sl_buf_set(&kp.element, f->elements[loc].data, f->elements[loc].len),
	                 SL_OK);
	assert_int_equal(sl_mmr_range_proof(&kp.proof, &nodes, N_OPS, loc, loc + 1), SL_OK);
	assert_int_equal(cli_proof_to_json(&obj, "ns", f->keys[loc], strlen(f->keys[loc]), &kp),
	                 SL_OK);
	text = json_dumps(obj, JSON_PRESERVE_ORDER);
	assert_non_null(text);
	json_decref(obj);
	sl_key_proof_free(&kp);
	return text;
}

static void test_every_set_is_valid(void **state)
{
	fixture *f = *state;
	char why[256];

	for (uint64_t loc = 0; loc < N_OPS; loc++) {
		char *text;

		if (loc % 4 == 3)
			continue;
		text = proof_text(f, loc);
		assert_int_equal(cli_proof_check(text, strlen(text), why, sizeof(why)),
		                 CLI_PROOF_VALID);
		free(text);
	}
}

static void test_round_trip(void **state)
{
	fixture *f = *state;
	char *text = proof_text(f, 9);
	cli_proof p;
	sl_digest root;

	cli_proof_init(&p);
	assert_int_equal(cli_proof_from_json(&p, text, strlen(text)), SL_OK);
	assert_string_equal(p.ns, "ns");
	assert_string_equal(p.key, "dir/9");
	assert_int_equal(p.key_len, 5);
	assert_int_equal(p.kp.loc, 9);
	assert_int_equal(p.kp.target.size, N_OPS);
	assert_int_equal(p.kp.proof.leaves, N_OPS);
	sl_mmr_mem_root(f->mmr, &root);
	assert_true(sl_digest_eq(&root, &p.kp.target.root));
	assert_int_equal(p.kp.element.len, f->elements[9].len);
	assert_memory_equal(p.kp.element.data, f->elements[9].data, f->elements[9].len);
	assert_true(p.kp.proof.n_digests > 0);
	cli_proof_free(&p);
	free(text);
}

/* Whether text[at..] is a quoted string of exactly 64 hex digits. */
static int is_digest_string(const char *text, size_t len, size_t at)
{
	if (at + 65 >= len || text[at] != '"' || text[at + 65] != '"')
		return 0;
	for (size_t i = at + 1; i <= at + 64; i++) {
		if (!strchr("0123456789abcdef", text[i]))
			return 0;
	}
	return 1;
}

/* Changing any hex digit of the root or of any digest makes the proof
 * invalid (not malformed). */
static void test_every_digit_matters(void **state)
{
	fixture *f = *state;
	char *text = proof_text(f, 13);
	char why[256];
	size_t len = strlen(text);
	size_t n_digests = 0;

	for (size_t at = 0; at < len; at++) {
		if (!is_digest_string(text, len, at))
			continue;
		n_digests++;
		for (size_t i = at + 1; i <= at + 64; i++) {
			char saved = text[i];

			text[i] = saved == '0' ? '1' : '0';
			assert_int_equal(cli_proof_check(text, len, why, sizeof(why)),
			                 CLI_PROOF_INVALID);
			text[i] = saved;
		}
	}
	/* The root and at least one digest. */
	assert_true(n_digests >= 2);
	assert_int_equal(cli_proof_check(text, len, why, sizeof(why)), CLI_PROOF_VALID);
	free(text);
}

static void test_malformed(void **state)
{
	static const char *const inputs[] = {
	        "",
	        "{",
	        "null",
	        "{}",
	        "{\"ns\": \"ns\"}",
	        "{\"ns\": \"ns\", \"key\": \"a\", \"loc\": 0, \"size\": 1, \"root\": \"00\", "
	        "\"element\": \"00\", \"digests\": []}",
	        "{\"ns\": 1, \"key\": \"a\", \"loc\": 0, \"size\": 1, \"root\": \"00\", "
	        "\"element\": \"00\", \"digests\": []}",
	};
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		assert_int_equal(cli_proof_check(inputs[i], strlen(inputs[i]), why, sizeof(why)),
		                 CLI_PROOF_MALFORMED);
		assert_true(strncmp(why, "malformed proof file: ", 22) == 0);
	}
	/* Not NUL-terminated: only len bytes are read. */
	assert_int_equal(cli_proof_check("{}xxxx", 2, why, sizeof(why)), CLI_PROOF_MALFORMED);
	assert_non_null(strstr(why, "missing"));
}

/* Every allocation in cli_proof_from_json failing in turn: an error, never
 * a crash or a leak (the sanitizer build checks the leaks). */
static void test_allocation_failures(void **state)
{
	fixture *f = *state;
	char *text = proof_text(f, 5);
	int succeeded = 0;

	for (long after = 0; after < 50 && !succeeded; after++) {
		cli_proof p;
		int rc;

		cli_proof_init(&p);
		sl_alloc_fail_after(after, 0);
		rc = cli_proof_from_json(&p, text, strlen(text));
		sl_alloc_fail_after(-1, 0);
		if (rc == SL_OK)
			succeeded = 1;
		else
			assert_int_equal(rc, SL_ENOMEM);
		cli_proof_free(&p);
	}
	assert_true(succeeded);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_every_set_is_valid, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_every_digit_matters, setup, teardown),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
