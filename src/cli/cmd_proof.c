/*
 * Proof commands. `prove` asks the store for a key's latest operation and
 * the MMR range proof tying it to the namespace's latest root, and prints
 * it readably or as the JSON of proof_json.h. `check-proof` reads such a
 * file and checks it with nothing but the file: it needs no store, so
 * anyone holding a trusted root can check a proof someone else made.
 */
#include <string.h>

#include "cli/cli.h"
#include "cli/proof_json.h"

/* ----------------------------------------------------------------- prove */

static const char prove_usage[] =
        "Usage: sluice prove [-d DIR] [--json] NS KEY\n"
        "\n"
        "Prove the latest operation on KEY in namespace NS against the namespace's\n"
        "latest commit: the operation's location and encoding (element), the size\n"
        "and root proved against, and the MMR range proof digests.\n"
        "\n"
        "      --json  {\"ns\", \"key\", \"loc\", \"size\", \"root\", \"element\",\n"
        "              \"digests\": [\"<hex>\", ...]}, the input of 'sluice check-proof'\n";

static void print_proof(const char *ns, const char *key, const sl_key_proof *kp,
                        const char *element_hex)
{
	sl_op op;

	printf("namespace %s\n", ns);
	printf("key       %s\n", key);
	printf("loc       %llu\n", (unsigned long long)kp->loc);
	printf("size      %llu\n", (unsigned long long)kp->target.size);
	printf("root      %s\n", sl_digest_to_hex(&kp->target.root).s);
	printf("element   %s\n", element_hex);
	if (sl_op_decode(&op, kp->element.data, kp->element.len) == SL_OK &&
	    (op.type == SL_OP_SET || op.type == SL_OP_UPDATE))
		printf("operation %s size=%llu digest=%s\n", sl_op_type_name(op.type),
		       (unsigned long long)op.value_len, sl_digest_to_hex(&op.digest).s);
	printf("digests   %zu\n", kp->proof.n_digests);
	for (size_t i = 0; i < kp->proof.n_digests; i++)
		printf("  %s\n", sl_digest_to_hex(&kp->proof.digests[i]).s);
}

int cli_cmd_prove(int argc, char **argv)
{
	cli_cmd cmd = {.name = "prove",
	               .usage = prove_usage,
	               .flags = CLI_JSON,
	               .min_args = 2,
	               .max_args = 2};
	sl_store *store = NULL;
	sl_key_proof kp;
	json_t *obj = NULL;
	char *element_hex = NULL;
	const char *ns, *key;
	int rc;

	sl_key_proof_init(&kp);
	rc = cli_parse(&cmd, argc, argv, NULL, NULL);
	if (rc != CLI_CONTINUE)
		goto cleanup;
	ns = cmd.args[0];
	key = cmd.args[1];
	rc = cli_check_key(cmd.name, key);
	if (rc != CLI_OK)
		goto cleanup;
	rc = cli_open_store(&cmd, SL_STORE_READONLY, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_prove_key(store, ns, key, strlen(key), &kp) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (cmd.json) {
		if (cli_proof_to_json(&obj, ns, key, strlen(key), &kp) != SL_OK) {
			rc = cli_fail(cmd.name);
			goto cleanup;
		}
		rc = cli_json_print(cmd.name, obj);
		goto cleanup;
	}
	element_hex = cli_hex_new(kp.element.data, kp.element.len);
	if (!element_hex) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	print_proof(ns, key, &kp, element_hex);
	rc = CLI_OK;
cleanup:
	sl_free(element_hex);
	sl_key_proof_free(&kp);
	sl_store_free(store);
	return rc;
}

/* ----------------------------------------------------------- check-proof */

static const char check_proof_usage[] =
        "Usage: sluice check-proof FILE|-\n"
        "\n"
        "Check a proof written by 'sluice prove --json' (read from stdin for '-'):\n"
        "its element must be a set or update of its key, and the digests must\n"
        "rebuild its root from that element at location loc of size operations.\n"
        "Prints 'valid' (exit 0) or 'invalid: <why>' (exit 1). Compare the root with\n"
        "one you trust (e.g. from 'sluice root'): the proof shows the key is in the\n"
        "namespace whose root that is. The store is not used.\n";

int cli_cmd_check_proof(int argc, char **argv)
{
	cli_cmd cmd = {
	        .name = "check-proof", .usage = check_proof_usage, .min_args = 1, .max_args = 1};
	sl_buf input = SL_BUF_INIT(CLI_PROOF_JSON_MAX);
	char why[SL_ERROR_MSG_MAX + 64];
	int rc = cli_parse(&cmd, argc, argv, NULL, NULL);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_read_file(&input, cmd.args[0], CLI_PROOF_JSON_MAX);
	if (rc == SL_ETOOLARGE) {
		printf("invalid: malformed proof file: larger than %d bytes\n", CLI_PROOF_JSON_MAX);
		rc = CLI_FAIL;
		goto cleanup;
	}
	if (rc != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	switch (cli_proof_check((const char *)input.data, input.len, why, sizeof(why))) {
	case CLI_PROOF_VALID:
		printf("valid\n");
		rc = CLI_OK;
		break;
	case CLI_PROOF_INVALID:
	case CLI_PROOF_MALFORMED:
		printf("invalid: %s\n", why);
		rc = CLI_FAIL;
		break;
	default:
		rc = cli_errorf(cmd.name, "%s", why);
		break;
	}
cleanup:
	sl_buf_free(&input);
	return rc;
}
