/*
 * Entry point of the `sluice` program: the table of top-level commands.
 * Option parsing, dispatch and error reporting live in common.c; each
 * command in its cmd_*.c file.
 */
#include "cli/cli.h"

static const cli_command commands[] = {
        {"init", cli_cmd_init, "create a store"},
        {"ns", cli_cmd_ns, "create and list namespaces"},
        {"put", cli_cmd_put, "set a key to a value from a file or stdin"},
        {"get", cli_cmd_get, "write a key's value to stdout"},
        {"del", cli_cmd_del, "delete a key (mutable namespaces)"},
        {"ls", cli_cmd_ls, "list keys, optionally under a prefix"},
        {"import", cli_cmd_import, "put every file under a directory"},
        {"root", cli_cmd_root, "print a namespace's size, root and floor"},
        {"log", cli_cmd_log, "print a namespace's operation log"},
        {"prove", cli_cmd_prove, "prove a key's latest operation against the root"},
        {"check-proof", cli_cmd_check_proof, "verify a proof made by 'sluice prove --json'"},
        {"verify", cli_cmd_verify, "recompute and check a namespace's stored data"},
        {"prune", cli_cmd_prune,
         "delete a mutable namespace's superseded operations and unused values"},
        {"serve", cli_cmd_serve, "serve the store's namespaces to syncing clients"},
        {"sync", cli_cmd_sync, "keep a local namespace in step with a server's"},
        {"diff", cli_cmd_diff, "find what two namespaces differ by; --pull copies it"},
        {"dag", cli_cmd_dag, "read dag namespaces and set roles in them"},
        {"key", cli_cmd_key, "print this node's public key"},
        {"ticket", cli_cmd_ticket, "print the line another node joins a dag namespace with"},
        {"join", cli_cmd_join, "ask for a role in another node's dag namespace"},
        {"peer", cli_cmd_peer, "peers of dag namespaces and requests for a role"},
        {"run", cli_cmd_run, "copy new rows of a PostgreSQL table to the destination"},
        {"start", cli_cmd_start, "run the pipeline every --interval until stopped"},
        {"status", cli_cmd_status, "show the pipeline's cursor, totals, failures and lag"},
        {"failed", cli_cmd_failed, "list objects parked after repeated failures"},
        {"retry", cli_cmd_retry, "retry failed objects now"},
        {"reset", cli_cmd_reset, "forget the pipeline's cursor and failures"},
        {"engine", cli_cmd_engine, "the tiered write engine: serve it, ask its status"},
        {"mirror", cli_cmd_mirror, "mirror an event source into PostgreSQL, exactly once"},
        {"tool", cli_cmd_tool, "stand-alone helpers (mmr-root)"},
};

int main(int argc, char **argv)
{
	return cli_main(commands, sizeof(commands) / sizeof(commands[0]), argc, argv);
}
