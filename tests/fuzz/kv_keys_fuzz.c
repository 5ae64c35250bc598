/*
 * Fuzz target for the keys frame of the diff between engines
 * (src/engine/kv_keys.c), as `sluice engine diff` decodes a peer's answer
 * to POST /api/v0/kv-reconcile/keys. (The request is the items request,
 * fuzzed by items_frame_fuzz.)
 *
 * Oracles besides "no crash, no leak": whatever decodes re-encodes to
 * exactly the input (one spelling per frame), points only inside the
 * input, and holds counts within the caps and valid keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/engine.h"
#include "sluice/store.h"

#define FUZZ_NAME "kv_keys_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_buf out = SL_BUF_INIT(SIZE_MAX);
	sl_kv_keys k;

	if (sl_kv_keys_decode(&k, data, size) != SL_OK)
		return 0;
	if (k.n_found + k.n_missing + k.remaining > SL_WIRE_MAX_IDS ||
	    !inside(k.missing, k.n_missing * SL_ITEM_ID_LEN, data, size))
		die("a frame decoded out of range");
	if (sl_wire_items_begin(&out) != SL_OK)
		die("cannot begin a frame");
	for (size_t i = 0; i < k.n_found; i++) {
		const sl_kv_key *a = &k.found[i];
		if (!inside(a->id, SL_ITEM_ID_LEN, data, size) ||
		    !inside(a->key, a->key_len, data, size) ||
		    !inside(a->value_digest, 32, data, size))
			die("an answer points outside the input");
		if (sl_key_validate(a->key, a->key_len) != SL_OK)
			die("an invalid key was decoded");
		if (sl_kv_keys_add(&out, a->id, a->key, a->key_len, a->version, a->value_digest) !=
		    SL_OK)
			die("cannot encode a decoded answer");
	}
	if (sl_wire_items_end(&out, k.n_found, k.missing, k.n_missing, k.remaining) != SL_OK)
		die("cannot end a frame");
	if (out.len != size || memcmp(out.data, data, size) != 0)
		die("a decoded frame re-encodes differently");
	sl_kv_keys_free(&k);
	sl_buf_free(&out);
	return 0;
}
