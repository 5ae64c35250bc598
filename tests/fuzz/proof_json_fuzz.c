/*
 * Fuzz target for the proof files `sluice check-proof` reads: arbitrary
 * bytes go to cli_proof_check, which must classify them (valid, invalid,
 * malformed) without crashing, reading out of bounds or leaking. The seed
 * corpus in corpus/proof_json/ holds real proofs made by `sluice prove
 * --json` and malformed variants of them.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cli/proof_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	cli_proof_result result;

	result = cli_proof_check((const char *)data, size, why, sizeof(why));
	/* Every verdict but VALID comes with a reason. */
	if (result != CLI_PROOF_VALID && why[0] == '\0')
		__builtin_trap();
	/* A reason must also be optional. */
	(void)cli_proof_check((const char *)data, size, NULL, 0);
	return 0;
}
