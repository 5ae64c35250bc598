/*
 * The JSON form of a key proof, as `sluice prove --json` writes it and
 * `sluice check-proof` reads it (docs/cli.md):
 *
 *   {"ns": "<name>", "key": "<key>", "loc": N, "size": N, "root": "<hex>",
 *    "element": "<hex>", "digests": ["<hex>", ...]}
 *
 * loc is the location of the key's latest operation, element its encoding,
 * size the number of operations (MMR leaves) of the commit proved against,
 * root that commit's root and digests the range proof for [loc, loc+1).
 *
 * Reading is strict: the input is capped, every field is required with its
 * type, numbers are non-negative integers, hex has the right length, and
 * unknown or duplicate fields are rejected. cli_proof_check is what the
 * fuzz target drives, so it must reject anything without crashing or
 * leaking.
 */
#ifndef SLUICE_CLI_PROOF_JSON_H
#define SLUICE_CLI_PROOF_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "sluice/store.h"

/* Largest proof file accepted. */
#define CLI_PROOF_JSON_MAX (1024 * 1024)
/* Largest encoded operation accepted in "element" (a key is at most
 * SL_KEY_MAX bytes; the rest of an operation is a few dozen). */
#define CLI_PROOF_ELEMENT_MAX (SL_KEY_MAX + 256)

/* A parsed proof file. */
typedef struct cli_proof {
	char *ns;  /* owned */
	char *key; /* owned, NUL-terminated (a valid key holds no NUL) */
	size_t key_len;
	sl_key_proof kp; /* kp.target.floor is not part of the file: 0 */
} cli_proof;

void cli_proof_init(cli_proof *p);
void cli_proof_free(cli_proof *p); /* releases what p owns; p can be reused after init */

/* Build the JSON object for kp. SL_OK, SL_EINVAL (key not UTF-8),
 * SL_EINTERNAL (kp->proof.leaves differs from kp->target.size) or
 * SL_ENOMEM; *out is a new reference. */
int cli_proof_to_json(json_t **out, const char *ns, const char *key, size_t key_len,
                      const sl_key_proof *kp);

/* Parse len bytes (need not be NUL-terminated). SL_OK, SL_ETOOLARGE past
 * CLI_PROOF_JSON_MAX, SL_ECORRUPT naming the first problem, or SL_ENOMEM.
 * This checks form only; cli_proof_check checks what it proves. */
int cli_proof_from_json(cli_proof *out, const char *json, size_t len);

typedef enum cli_proof_result {
	CLI_PROOF_VALID = 0,
	CLI_PROOF_INVALID = 1,   /* well formed, does not prove the key */
	CLI_PROOF_MALFORMED = 2, /* not a proof file */
	CLI_PROOF_ERROR = 3      /* could not check (out of memory) */
} cli_proof_result;

/* Parse and verify: the element decodes to a set or update of "key", and
 * the range proof shows it is leaf "loc" of the MMR of "size" leaves with
 * root "root". Writes the reason (for anything but VALID) to why, which may
 * be NULL when why_cap is 0; a malformed file's reason starts with
 * "malformed proof file: ". */
cli_proof_result cli_proof_check(const char *json, size_t len, char *why, size_t why_cap);

#endif
