/*
 * Fuzz target for signed targets in JSON, as the sync client reads them
 * from GET .../target: sl_target_from_json.
 *
 * Input layout: the whole input is the JSON text (not NUL-terminated).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: a
 * parsed target satisfies what the parser promises (a valid namespace
 * name, a known kind, floor <= size), and to_json then from_json gives
 * the same target, whose JSON is then a fixed point of to_json. Checking
 * the signature of a parsed target must not crash either; whether it
 * verifies is not an oracle (the corpus holds one real signature).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sync.h"

#define FUZZ_NAME "target_json_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_target(const sl_signed_target *a, const sl_signed_target *b)
{
	return strcmp(a->ns, b->ns) == 0 && a->kind == b->kind &&
	       a->target.size == b->target.size && a->target.floor == b->target.floor &&
	       sl_digest_eq(&a->target.root, &b->target.root) &&
	       memcmp(a->node, b->node, sizeof(a->node)) == 0 &&
	       a->has_signature == b->has_signature &&
	       (!a->has_signature || memcmp(a->signature, b->signature, sizeof(a->signature)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_buf json = SL_BUF_INIT(1 << 16), again = SL_BUF_INIT(1 << 16);
	sl_signed_target t, back;
	static int sodium_ready;

	if (!sodium_ready) {
		if (sl_base_init() != SL_OK)
			die("cannot initialise libsodium");
		sodium_ready = 1;
	}
	if (sl_target_from_json(&t, (const char *)data, size) != SL_OK)
		return 0;
	if (memchr(t.ns, '\0', sizeof(t.ns)) == NULL || sl_ns_name_validate(t.ns) != SL_OK)
		die("a target with an invalid namespace name was parsed");
	if (t.kind != SL_NS_IMMUTABLE && t.kind != SL_NS_MUTABLE)
		die("a target with an unknown kind was parsed");
	if (t.target.floor > t.target.size)
		die("a target with floor past size was parsed");
	(void)sl_target_verify(&t, NULL);

	if (sl_target_to_json(&t, &json) != SL_OK)
		die("cannot write a parsed target as JSON");
	if (sl_target_from_json(&back, (const char *)json.data, json.len) != SL_OK)
		die("the JSON of a parsed target does not parse");
	if (!same_target(&t, &back))
		die("a target changed on its way through JSON");
	if (sl_target_to_json(&back, &again) != SL_OK || again.len != json.len ||
	    memcmp(again.data, json.data, json.len) != 0)
		die("to_json of the same target differs");
	sl_buf_free(&json);
	sl_buf_free(&again);
	return 0;
}
