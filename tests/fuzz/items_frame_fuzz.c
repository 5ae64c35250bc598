/*
 * Fuzz target for the items request and frame of state reconciliation
 * (src/net/wire_items.c), as a server and a client decode them.
 *
 * Input layout: byte 0 chooses the decoder: even, the request; odd, the
 * frame, read with the request flags in bit 1 (values or not). The rest
 * of the input is the request or the frame.
 *
 * Oracles besides "no crash, no leak": whatever decodes re-encodes to
 * exactly the input (one spelling per request and frame), points only
 * inside the input, and holds counts within the caps and valid keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/net.h"

#define FUZZ_NAME "items_frame_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void request(const uint8_t *data, size_t size)
{
	sl_buf out = SL_BUF_INIT(SIZE_MAX);
	const uint8_t *ids;
	unsigned flags;
	size_t n;

	if (sl_wire_items_request_decode(&flags, &ids, &n, data, size) != SL_OK)
		return;
	if (n == 0 || n > SL_WIRE_MAX_IDS || !inside(ids, n * SL_ITEM_ID_LEN, data, size))
		die("a request decoded out of range");
	if (sl_wire_items_request(&out, flags, (const uint8_t(*)[SL_ITEM_ID_LEN])ids, n) != SL_OK)
		die("cannot encode a decoded request");
	if (out.len != size || memcmp(out.data, data, size) != 0)
		die("a decoded request re-encodes differently");
	sl_buf_free(&out);
}

static void frame(const uint8_t *data, size_t size, unsigned flags)
{
	sl_buf out = SL_BUF_INIT(SIZE_MAX);
	sl_wire_items w;

	if (sl_wire_items_decode(&w, flags, data, size) != SL_OK)
		return;
	if (w.n_found + w.n_missing + w.remaining > SL_WIRE_MAX_IDS ||
	    !inside(w.missing, w.n_missing * SL_ITEM_ID_LEN, data, size))
		die("a frame decoded out of range");
	if (sl_wire_items_begin(&out) != SL_OK)
		die("cannot begin a frame");
	for (size_t i = 0; i < w.n_found; i++) {
		const sl_wire_item *it = &w.found[i];
		if (!inside(it->id, SL_ITEM_ID_LEN, data, size) ||
		    !inside(it->key, it->key_len, data, size) ||
		    (it->value && !inside(it->value, (size_t)it->value_len, data, size)))
			die("an answer points outside the input");
		if (!(flags & SL_WIRE_ITEMS_VALUES) && it->value)
			die("a value in a frame that was not asked for values");
		if ((flags & SL_WIRE_ITEMS_VALUES) && it->value_len > 0 && !it->value)
			die("a value missing from a frame that was asked for values");
		if (sl_key_validate(it->key, it->key_len) != SL_OK)
			die("an invalid key was decoded");
		if (sl_wire_items_add(&out, it->id, it->key, it->key_len, it->value_len,
		                      &it->digest, it->value) != SL_OK)
			die("cannot encode a decoded answer");
	}
	if (sl_wire_items_end(&out, w.n_found, w.missing, w.n_missing, w.remaining) != SL_OK)
		die("cannot end a frame");
	if (out.len != size || memcmp(out.data, data, size) != 0)
		die("a decoded frame re-encodes differently");
	sl_wire_items_free(&w);
	sl_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		request(data + 1, size - 1);
	else
		frame(data + 1, size - 1, (data[0] & 2) ? SL_WIRE_ITEMS_VALUES : 0);
	return 0;
}
