/*
 * Fuzz target for the operation decoder and the key validator: arbitrary
 * bytes must decode to one valid operation or be rejected with
 * SL_ECORRUPT, never crash. A decoded operation must re-encode to exactly
 * the input (the encoding is canonical), and its key must validate.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_op op;
	sl_buf again = SL_BUF_INIT(1 << 16);

	(void)sl_key_validate((const char *)data, size);
	if (sl_op_decode(&op, data, size) != SL_OK) {
		if (sl_error_last()->code != SL_ECORRUPT)
			abort();
		return 0;
	}
	if (op.type != SL_OP_COMMIT && sl_key_validate(op.key, op.key_len) != SL_OK)
		abort();
	if (sl_op_encode(&op, &again) != SL_OK || again.len != size ||
	    memcmp(again.data, data, size) != 0)
		abort();
	sl_buf_free(&again);
	return 0;
}
