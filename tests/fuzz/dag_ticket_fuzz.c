/*
 * Fuzz target for tickets (src/sync/dag_ticket.c), as `sluice join`
 * parses the line it is given.
 *
 * Oracles besides "no crash": whatever parses has a valid namespace name
 * and an address with a port, and formats back to exactly the input (one
 * spelling per ticket).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/dag_sync.h"

#define FUZZ_NAME "dag_ticket_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), line[SL_DAG_TICKET_MAX + 1];
	sl_dag_ticket t;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (sl_dag_ticket_parse(&t, text) == SL_OK) {
		if (sl_ns_name_validate(t.name) != SL_OK || !strchr(t.addr, ':'))
			die("a parsed ticket holds an invalid field");
		if (sl_dag_ticket_format(&t, line, sizeof(line)) != SL_OK)
			die("cannot format a parsed ticket");
		if (strlen(line) != size || memcmp(line, data, size) != 0)
			die("a parsed ticket formats differently");
	}
	free(text);
	return 0;
}
