/*
 * Fuzz target for negentropy messages (src/merkle/reconcile.c), through
 * the checker and both roles, against a fixed set of 200 items (many
 * sharing a timestamp) with and without a frame limit.
 *
 * Input layout: the whole input is one message.
 *
 * Oracles besides "no crash, no leak": the roles accept exactly the
 * messages sl_reconcile_check accepts (SL_EINVAL otherwise, with nothing
 * written and no id reported); what a role writes is itself a well-formed
 * message within the frame limit; the initiator reports as "have" only
 * ids of the set, each at most once per message (a peer may list an id it
 * has in two ranges, so "need" ids may repeat).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/reconcile.h"

#define FUZZ_NAME "reconcile_msg_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_ITEMS 200
#define LIMIT   4096

static sl_item_vec *set_vec;
static sl_item_set set;

static void build_set(void)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	if (sl_item_vec_new(&set_vec) != SL_OK)
		die("cannot make the set");
	for (int i = 0; i < N_ITEMS; i++) {
		uint8_t id[SL_ITEM_ID_LEN];
		for (int k = 0; k < SL_ITEM_ID_LEN; k++)
			id[k] = (uint8_t)(sl_xorshift64(&x) >> 24);
		/* A small id space in the first byte makes shared prefixes. */
		id[0] &= 0x0f;
		if (sl_item_vec_add(set_vec, (uint64_t)(i / 8), id) != SL_OK)
			die("cannot add an item");
	}
	if (sl_item_vec_seal(set_vec) != SL_OK)
		die("cannot seal the set");
	set = sl_item_vec_set(set_vec);
}

typedef struct seen {
	uint8_t ids[2 * 1024][SL_ITEM_ID_LEN];
	size_t n;
	size_t needs;
} seen;

static int in_set(const uint8_t *id)
{
	const sl_item *items = sl_item_vec_items(set_vec);
	for (size_t i = 0; i < sl_item_vec_count(set_vec); i++)
		if (memcmp(items[i].id, id, SL_ITEM_ID_LEN) == 0)
			return 1;
	return 0;
}

static int note(seen *s, const uint8_t *id, int have)
{
	if (!have) {
		s->needs++;
		return 0;
	}
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->ids[i], id, SL_ITEM_ID_LEN) == 0)
			die("an id was reported twice as had in one message");
	if (!in_set(id))
		die("an id not in the set was reported as had");
	if (s->n < sizeof(s->ids) / sizeof(s->ids[0]))
		memcpy(s->ids[s->n++], id, SL_ITEM_ID_LEN);
	return 0;
}

static int on_have(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	return note(ctx, id, 1);
}

static int on_need(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	return note(ctx, id, 0);
}

static void check_written(const sl_buf *out, size_t limit)
{
	if (out->len == 0)
		return;
	if (sl_reconcile_check(out->data, out->len) != SL_OK)
		die("a role wrote a malformed message");
	if (limit && out->len > limit)
		die("a role passed its frame limit");
}

static void run(const uint8_t *data, size_t size, size_t limit)
{
	sl_buf out = SL_BUF_INIT(64 << 20);
	static seen s;
	sl_reconcile_diff diff = {on_have, on_need, &s};
	int ok = sl_reconcile_check(data, size) == SL_OK;
	int rc, done = 0;

	rc = sl_reconcile_respond(&set, limit, data, size, &out);
	if ((rc == SL_OK) != ok || (!ok && (rc != SL_EINVAL || out.len != 0)))
		die("the responder and the checker disagree");
	check_written(&out, limit);
	sl_buf_reset(&out);
	s.n = 0;
	s.needs = 0;
	rc = sl_reconcile_next(&set, limit, data, size, &diff, &out, &done);
	if ((rc == SL_OK) != ok ||
	    (!ok && (rc != SL_EINVAL || out.len != 0 || s.n != 0 || s.needs != 0)))
		die("the initiator and the checker disagree");
	if (done && out.len != 0)
		die("a finished initiator wrote a message");
	check_written(&out, limit);
	sl_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!set_vec)
		build_set();
	run(data, size, 0);
	run(data, size, LIMIT);
	return 0;
}
