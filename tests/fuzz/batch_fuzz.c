/*
 * Fuzz target for commit batches (the body of POST .../commit) as the
 * server decodes them: sl_wire_batch_decode.
 *
 * Input layout: the whole input is one batch frame (docs/protocol.md,
 * "Batch frame").
 *
 * Besides "no crash, no leak", the oracle aborts on a wrong answer: a
 * decoded batch has 1..SL_WIRE_MAX_ENTRIES entries with valid keys and
 * values within the input, and re-encodes (begin, put/del, end) to exactly
 * the input, so the decoder accepts one spelling of each batch only
 * (canonical varints, no trailing bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"

#define FUZZ_NAME "batch_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_buf out = SL_BUF_INIT(SIZE_MAX);
	sl_wire_entry *entries = NULL;
	size_t n = 0;

	if (sl_wire_batch_decode(&entries, &n, data, size) != SL_OK)
		return 0;
	if (n == 0 || n > SL_WIRE_MAX_ENTRIES)
		die("a batch with a count out of range was decoded");
	if (sl_wire_batch_begin(&out) != SL_OK)
		die("cannot begin a batch");
	for (size_t i = 0; i < n; i++) {
		const sl_wire_entry *e = &entries[i];
		int rc;
		if (sl_key_validate(e->key, e->key_len) != SL_OK)
			die("an invalid key was decoded");
		if (!inside(e->key, e->key_len, data, size) ||
		    (!e->is_delete && !inside(e->value, e->value_len, data, size)))
			die("an entry points outside the input");
		rc = e->is_delete
		             ? sl_wire_batch_del(&out, e->key, e->key_len)
		             : sl_wire_batch_put(&out, e->key, e->key_len, e->value, e->value_len);
		if (rc != SL_OK)
			die("cannot encode a decoded entry");
	}
	if (sl_wire_batch_end(&out, n) != SL_OK)
		die("cannot end a batch");
	if (out.len != size || memcmp(out.data, data, size) != 0)
		die("a decoded batch re-encodes differently");
	sl_buf_free(&out);
	sl_free(entries);
	return 0;
}
