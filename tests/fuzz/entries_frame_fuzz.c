/*
 * Fuzz target for the entries frame of dag sync (src/net/wire_dag.c), as
 * a client decodes a server's answer and a server a pushed frame.
 *
 * Oracles besides "no crash, no leak": whatever decodes points only
 * inside the input, holds entries and values within their caps, and
 * re-encodes to exactly the input (one spelling per frame; a frame's
 * records are values and entries in the order they came, which the
 * decoded arrays keep apart, so the input's own order is re-read).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/dag.h"
#include "sluice/net.h"

#define FUZZ_NAME "entries_frame_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_buf out = SL_BUF_INIT(SIZE_MAX);
	sl_wire_entries w;
	size_t e = 0, v = 0, records = 0;

	if (sl_wire_entries_decode(&w, data, size) != SL_OK)
		return 0;
	if (!inside(w.missing, w.n_missing * SL_ITEM_ID_LEN, data, size) ||
	    w.n_missing > SL_WIRE_MAX_IDS)
		die("missing ids out of range");
	for (size_t i = 0; i < w.n_entries; i++)
		if (!inside(w.entries[i].data, w.entries[i].len, data, size) ||
		    w.entries[i].len == 0 || w.entries[i].len > SL_DAG_ENTRY_MAX)
			die("an entry out of range");
	for (size_t i = 0; i < w.n_values; i++)
		if (!inside(w.values[i].data, w.values[i].len, data, size) ||
		    (uint64_t)w.values[i].len > SL_VALUE_MAX)
			die("a value out of range");
	/* Re-encode in the input's order: records sit in the input in
	 * ascending position, entries and values each in their own order. */
	if (sl_wire_entries_begin(&out, w.flags) != SL_OK)
		die("cannot begin a frame");
	while (e < w.n_entries || v < w.n_values) {
		int entry_next = v == w.n_values ||
		                 (e < w.n_entries && w.entries[e].data < w.values[v].data);
		int rc = entry_next ? sl_wire_entries_add_entry(&out, w.entries[e].data,
		                                                w.entries[e].len)
		                    : sl_wire_entries_add_value(&out, w.values[v].data,
		                                                w.values[v].len);
		if (rc != SL_OK)
			die("cannot encode a decoded record");
		entry_next ? e++ : v++;
		records++;
	}
	if (sl_wire_entries_end(&out, records, w.missing, w.n_missing) != SL_OK)
		die("cannot end a frame");
	if (out.len != size || memcmp(out.data, data, size) != 0)
		die("a decoded frame re-encodes differently");
	sl_wire_entries_free(&w);
	sl_buf_free(&out);
	return 0;
}
