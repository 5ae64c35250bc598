/*
 * negentropy_harness: sluice's set reconciliation (include/sluice/reconcile.h)
 * behind the line protocol of the conformance harness of the negentropy
 * reference project, so a test can drive it like any other implementation
 * (tests/tools/nip77_compare.mjs does, against nostr-tools).
 *
 * One command per line on stdin:
 *
 *   item,<timestamp>,<id hex>   add an item to the set
 *   seal                        the set is complete
 *   initiate                    take the initiator's role: print msg,<hex>
 *   msg,<hex>                   a message from the other side. As responder,
 *                               print msg,<hex> with the answer. As initiator,
 *                               print have,<id hex> and need,<id hex> lines
 *                               (haves first) for what the message settles,
 *                               then msg,<hex> with the next message, or
 *                               done when reconciliation is complete.
 *   reset                       forget the set and the role, as if the
 *                               process had just started
 *
 * reset is not part of the reference's protocol: it lets a test run many
 * sets through one process instead of starting one per set, which is most
 * of the cost under a sanitizer. The others are as the reference has them.
 * The frame size limit comes from the environment (FRAMESIZELIMIT, default
 * 0 for none); a message this side writes that passes it is an error, as in
 * the reference harness. Every answer is flushed. Any error, in a command
 * or from the library, prints error,<message> on stdout and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/base.h"
#include "sluice/reconcile.h"

#define LINE_MAX_BYTES (256u << 20) /* a line of input, hex included */
#define MSG_MAX_BYTES  (128u << 20) /* one message either way */

typedef struct harness {
	sl_item_vec *items;
	sl_item_set set;
	size_t frame_limit;
	int initiator;
	sl_buf line; /* the command being run, NUL-terminated */
	sl_buf in;   /* the incoming message, decoded */
	sl_buf out;  /* the message being answered with */
	sl_buf hex;  /* hex of whatever is printed */
	sl_buf have; /* have,<hex> lines of the current answer */
	sl_buf need; /* need,<hex> lines of the current answer */
} harness;

/* The next line into h->line without its line end; *eof is 1 when the
 * input is exhausted and no line was read. */
static int read_line(harness *h, FILE *in, int *eof)
{
	int c, rc;

	sl_buf_reset(&h->line);
	*eof = 0;
	while ((c = getc(in)) != EOF && c != '\n')
		if ((rc = sl_buf_append_byte(&h->line, (uint8_t)c)) != SL_OK)
			return sl_error_wrap("input line");
	if (ferror(in))
		return sl_error_set(SL_EIO, "reading stdin: %s", strerror(errno));
	if (c == EOF && h->line.len == 0) {
		*eof = 1;
		return SL_OK;
	}
	if (h->line.len > 0 && h->line.data[h->line.len - 1] == '\r')
		h->line.len--;
	/* Room for the NUL, allocated even for an empty line. */
	if ((rc = sl_buf_reserve(&h->line, 0)) != SL_OK)
		return rc;
	h->line.data[h->line.len] = 0;
	return SL_OK;
}

static int parse_limit(const char *text, size_t *out)
{
	char *end;
	unsigned long long v;

	if (!text || !*text) {
		*out = 0;
		return SL_OK;
	}
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || text[0] == '-' || v > SIZE_MAX)
		return sl_error_set(SL_EINVAL, "FRAMESIZELIMIT is not a byte count: %s", text);
	*out = (size_t)v;
	return SL_OK;
}

/* Hex of n bytes into h->hex. */
static int to_hex(harness *h, const uint8_t *data, size_t n)
{
	int rc;
	sl_buf_reset(&h->hex);
	if (n > (SIZE_MAX - 1) / 2)
		return sl_error_set(SL_ETOOLARGE, "%zu bytes are too many to print", n);
	if ((rc = sl_buf_reserve(&h->hex, 2 * n)) != SL_OK)
		return rc;
	sl_hex_encode((char *)h->hex.data, data, n);
	h->hex.len = 2 * n;
	return SL_OK;
}

static int flush_out(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return sl_error_set(SL_EIO, "writing stdout: %s", strerror(errno));
	return SL_OK;
}

/* Print msg,<hex> of h->out, which must be within the frame limit. */
static int print_msg(harness *h)
{
	int rc;
	if (h->frame_limit && h->out.len > h->frame_limit)
		return sl_error_set(SL_EINTERNAL,
		                    "a message of %zu bytes passes the frame limit of %zu",
		                    h->out.len, h->frame_limit);
	if ((rc = to_hex(h, h->out.data, h->out.len)) != SL_OK)
		return rc;
	fputs("msg,", stdout);
	fwrite(h->hex.data, 1, h->hex.len, stdout);
	fputc('\n', stdout);
	return flush_out();
}

static int cmd_item(harness *h, char *args)
{
	char *comma = strchr(args, ',');
	char *end;
	unsigned long long ts;
	uint8_t id[SL_ITEM_ID_LEN];
	size_t id_len;
	int rc;

	if (!comma)
		return sl_error_set(SL_EINVAL, "item wants <timestamp>,<id hex>");
	*comma = 0;
	errno = 0;
	ts = strtoull(args, &end, 10);
	if (errno || *end || !*args || args[0] == '-')
		return sl_error_set(SL_EINVAL, "bad item timestamp: %s", args);
	if ((rc = sl_hex_decode(id, sizeof(id), &id_len, comma + 1, strlen(comma + 1))) != SL_OK)
		return sl_error_wrap("item id");
	if (id_len != SL_ITEM_ID_LEN)
		return sl_error_set(SL_EINVAL, "an item id is %zu bytes, not %d", id_len,
		                    SL_ITEM_ID_LEN);
	return sl_item_vec_add(h->items, (uint64_t)ts, id);
}

static int cmd_initiate(harness *h)
{
	int rc;
	sl_buf_reset(&h->out);
	if ((rc = sl_reconcile_initiate(&h->set, h->frame_limit, &h->out)) != SL_OK)
		return rc;
	h->initiator = 1;
	return print_msg(h);
}

static int report(sl_buf *lines, const char *what, const uint8_t id[SL_ITEM_ID_LEN])
{
	char hex[2 * SL_ITEM_ID_LEN + 1];
	sl_hex_encode(hex, id, SL_ITEM_ID_LEN);
	return sl_buf_printf(lines, "%s,%s\n", what, hex);
}

static int on_have(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	harness *h = ctx;
	return report(&h->have, "have", id);
}

static int on_need(void *ctx, const uint8_t id[SL_ITEM_ID_LEN])
{
	harness *h = ctx;
	return report(&h->need, "need", id);
}

static int cmd_msg(harness *h, const char *hex)
{
	size_t hex_len = strlen(hex), len;
	sl_reconcile_diff diff = {on_have, on_need, h};
	int done = 0, rc;

	sl_buf_reset(&h->in);
	sl_buf_reset(&h->out);
	sl_buf_reset(&h->have);
	sl_buf_reset(&h->need);
	if ((rc = sl_buf_reserve(&h->in, hex_len / 2)) != SL_OK)
		return sl_error_wrap("incoming message");
	if ((rc = sl_hex_decode(h->in.data, hex_len / 2, &len, hex, hex_len)) != SL_OK)
		return sl_error_wrap("incoming message");
	h->in.len = len;
	if (!h->initiator) {
		if ((rc = sl_reconcile_respond(&h->set, h->frame_limit, h->in.data, h->in.len,
		                               &h->out)) != SL_OK)
			return rc;
		return print_msg(h);
	}
	if ((rc = sl_reconcile_next(&h->set, h->frame_limit, h->in.data, h->in.len, &diff, &h->out,
	                            &done)) != SL_OK)
		return rc;
	if (h->have.len > 0)
		fwrite(h->have.data, 1, h->have.len, stdout);
	if (h->need.len > 0)
		fwrite(h->need.data, 1, h->need.len, stdout);
	if (done) {
		fputs("done\n", stdout);
		return flush_out();
	}
	return print_msg(h);
}

static int cmd_reset(harness *h)
{
	sl_item_vec *fresh;
	int rc;

	if ((rc = sl_item_vec_new(&fresh)) != SL_OK)
		return rc;
	sl_item_vec_free(h->items);
	h->items = fresh;
	h->set = sl_item_vec_set(h->items);
	h->initiator = 0;
	return SL_OK;
}

static int run_command(harness *h)
{
	char *line = (char *)h->line.data;
	char *comma = strchr(line, ',');
	size_t name_len = comma ? (size_t)(comma - line) : strlen(line);
	char *args = comma ? comma + 1 : NULL;

	if (name_len == 4 && memcmp(line, "item", 4) == 0 && args)
		return cmd_item(h, args);
	if (strcmp(line, "seal") == 0)
		return sl_item_vec_seal(h->items);
	if (strcmp(line, "initiate") == 0)
		return cmd_initiate(h);
	if (name_len == 3 && memcmp(line, "msg", 3) == 0)
		return cmd_msg(h, args ? args : "");
	if (strcmp(line, "reset") == 0)
		return cmd_reset(h);
	return sl_error_set(SL_EINVAL, "unknown command: %.*s",
	                    (int)(name_len < 64 ? name_len : 64), line);
}

int main(void)
{
	harness h;
	int eof = 0, rc;

	memset(&h, 0, sizeof(h));
	sl_buf_init(&h.line, LINE_MAX_BYTES);
	sl_buf_init(&h.in, MSG_MAX_BYTES);
	sl_buf_init(&h.out, MSG_MAX_BYTES);
	sl_buf_init(&h.hex, 2 * (size_t)MSG_MAX_BYTES);
	sl_buf_init(&h.have, LINE_MAX_BYTES);
	sl_buf_init(&h.need, LINE_MAX_BYTES);
	if ((rc = parse_limit(getenv("FRAMESIZELIMIT"), &h.frame_limit)) != SL_OK ||
	    (rc = sl_item_vec_new(&h.items)) != SL_OK)
		goto cleanup;
	h.set = sl_item_vec_set(h.items);
	while ((rc = read_line(&h, stdin, &eof)) == SL_OK && !eof)
		if ((rc = run_command(&h)) != SL_OK)
			break;
cleanup:
	if (rc != SL_OK) {
		printf("error,%s\n", sl_error_last()->message);
		fflush(stdout);
	}
	sl_item_vec_free(h.items);
	sl_buf_free(&h.line);
	sl_buf_free(&h.in);
	sl_buf_free(&h.out);
	sl_buf_free(&h.hex);
	sl_buf_free(&h.have);
	sl_buf_free(&h.need);
	return rc == SL_OK ? 0 : 1;
}
