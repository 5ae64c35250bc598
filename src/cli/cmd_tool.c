/*
 * `sluice tool ...`: helpers that need no store.
 *
 * `tool mmr-root` reads MMR elements as hex, one per line, from stdin and
 * prints the root of the MMR holding them in order. It keeps only the
 * frontier (the peaks), so memory stays constant however many elements come
 * in; a line is capped at TOOL_LINE_MAX bytes. It exists to check the MMR
 * against other implementations (tests/cli/mmr_root.sh compares it with
 * commonware's published roots).
 */
#include <string.h>

#include "cli/cli.h"
#include "sluice/mmr.h"

/* Longest line accepted: 2 MiB of hex (a 1 MiB element), and a '\r'. */
#define TOOL_HEX_MAX  (2u << 20)
#define TOOL_LINE_MAX (TOOL_HEX_MAX + 1)

static const char mmr_root_usage[] =
        "Usage: sluice tool mmr-root < ELEMENTS\n"
        "\n"
        "Read elements as hex, one per line, from stdin (empty lines are skipped,\n"
        "a trailing CR is allowed, at most 2 MiB of hex per line) and print the root\n"
        "(hex) of the MMR holding them in order.\n";

/* Read one line, without its '\n', into line (capped by line->max).
 * *got is 0 at end of input. SL_ETOOLARGE for a longer line, SL_EIO. */
static int read_line(FILE *f, sl_buf *line, int *got)
{
	int c = EOF;
	int any = 0;
	int rc;

	sl_buf_reset(line);
	while ((c = getc(f)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		rc = sl_buf_append_byte(line, (uint8_t)c);
		if (rc != SL_OK)
			return rc;
	}
	if (ferror(f))
		return sl_error_set(SL_EIO, "cannot read stdin");
	*got = any;
	return SL_OK;
}

static int mmr_root(int argc, char **argv)
{
	cli_cmd cmd = {.name = "tool mmr-root", .usage = mmr_root_usage};
	sl_buf line = SL_BUF_INIT(TOOL_LINE_MAX);
	sl_digest new_nodes[SL_MMR_MAX_PEAKS + 1];
	sl_mmr_frontier frontier;
	sl_digest root;
	uint8_t *element = NULL;
	uint64_t line_no = 0, first_pos;
	int got = 1;
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	sl_mmr_frontier_init(&frontier);
	element = sl_malloc(TOOL_HEX_MAX / 2);
	if (!element) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	for (;;) {
		size_t len = 0, element_len = 0;
		const char *hex;

		line_no++;
		rc = read_line(stdin, &line, &got);
		if (rc == SL_ETOOLARGE) {
			rc = cli_errorf(cmd.name, "line %llu: longer than %u bytes",
			                (unsigned long long)line_no, TOOL_LINE_MAX);
			goto cleanup;
		}
		if (rc != SL_OK) {
			rc = cli_fail(cmd.name);
			goto cleanup;
		}
		if (!got)
			break;
		hex = (const char *)line.data;
		len = line.len;
		if (len > 0 && hex[len - 1] == '\r')
			len--;
		if (len == 0)
			continue;
		if (sl_hex_decode(element, TOOL_HEX_MAX / 2, &element_len, hex, len) != SL_OK) {
			rc = cli_errorf(cmd.name, "line %llu: bad hex: %s",
			                (unsigned long long)line_no, sl_error_last()->message);
			goto cleanup;
		}
		if (sl_mmr_frontier_append(&frontier, element, element_len, new_nodes,
		                           &first_pos) == 0) {
			rc = cli_fail(cmd.name);
			goto cleanup;
		}
	}
	sl_mmr_frontier_root(&frontier, &root);
	printf("%s\n", sl_digest_to_hex(&root).s);
	rc = CLI_OK;
cleanup:
	sl_free(element);
	sl_buf_free(&line);
	return rc;
}

static const char tool_usage[] = "Usage: sluice tool COMMAND [ARGS]\n"
                                 "\n"
                                 "Helpers that need no store.\n";

static const cli_command tool_commands[] = {
        {"mmr-root", mmr_root, "print the MMR root of hex elements read from stdin"},
};

int cli_cmd_tool(int argc, char **argv)
{
	return cli_dispatch("tool", tool_usage, tool_commands,
	                    sizeof(tool_commands) / sizeof(tool_commands[0]), argc, argv);
}
