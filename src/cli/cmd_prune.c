/*
 * `sluice prune NS [--vacuum]`: delete the operations of a mutable
 * namespace below its inactivity floor and the values nothing refers to
 * any more (sl_store_prune_report, one write transaction), then, with
 * --vacuum, give the file's free pages back (sl_store_vacuum). Reports
 * what went and the files' sizes before and after; sluice.db and its WAL
 * are counted together, as a prune's deletions go to the WAL first.
 */
#include <string.h>

#include "cli/cli.h"

#define OPT_VACUUM CLI_OPT_CMD

static const char prune_usage[] =
        "Usage: sluice prune [-d DIR] [--vacuum] [--json] NS\n"
        "\n"
        "Delete the operations of mutable namespace NS below its inactivity floor\n"
        "(each is superseded: `sluice root` prints the floor), then every stored value\n"
        "that no remaining operation of any namespace and no dag entry refers to, in\n"
        "one transaction. Proofs for the operations above the floor keep working.\n"
        "The pages freed stay in the store file, and later writes reuse them before\n"
        "the file grows; --vacuum gives them back to the file system.\n"
        "Immutable and dag namespaces keep everything: pruning one is an error.\n"
        "\n"
        "Prints:\n"
        "  pruned     operations [FROM, TO): N deleted\n"
        "  values     N deleted (BYTES bytes)\n"
        "  pages      N before, N after, of SIZE bytes; N free\n"
        "  files      BYTES bytes before, BYTES after (sluice.db and its WAL)\n"
        "\n"
        "      --vacuum  then rebuild the store file without its free pages (SQLite\n"
        "                VACUUM) and empty the WAL into it: the file shrinks. Needs\n"
        "                free space of the database's size for the copy (in\n"
        "                SQLITE_TMPDIR, else TMPDIR, else /var/tmp or /tmp) and as\n"
        "                much again for the WAL; holds off other writers meanwhile\n"
        "      --json    {\"namespace\", \"from\", \"to\", \"operations\", \"values\",\n"
        "                \"value_bytes\", \"page_size\", \"pages_before\", \"pages\",\n"
        "                \"free_pages\", \"vacuumed\", \"checkpointed\" (null without\n"
        "                --vacuum), \"bytes_before\", \"bytes_after\"}\n";

static const struct option prune_options[] = {
        {"vacuum", no_argument, NULL, OPT_VACUUM},
        {NULL, 0, NULL, 0},
};

static int prune_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	(void)cmd, (void)opt, (void)arg;
	*(int *)ctx = 1; /* --vacuum, the only option */
	return CLI_OK;
}

static uint64_t on_disk(const sl_store_space *sp)
{
	return sp->file_bytes + sp->wal_bytes;
}

static json_t *prune_json(const char *ns, const sl_prune_report *r, const sl_store_space *before,
                          const sl_store_space *after, int vacuumed, int checkpointed)
{
	json_t *obj = json_object();
	if (obj && (cli_json_set(obj, "namespace", json_string(ns)) != 0 ||
	            cli_json_set(obj, "from", cli_json_u64(r->from)) != 0 ||
	            cli_json_set(obj, "to", cli_json_u64(r->to)) != 0 ||
	            cli_json_set(obj, "operations", cli_json_u64(r->to - r->from)) != 0 ||
	            cli_json_set(obj, "values", cli_json_u64(r->values)) != 0 ||
	            cli_json_set(obj, "value_bytes", cli_json_u64(r->value_bytes)) != 0 ||
	            cli_json_set(obj, "page_size", cli_json_u64(after->page_size)) != 0 ||
	            cli_json_set(obj, "pages_before", cli_json_u64(before->pages)) != 0 ||
	            cli_json_set(obj, "pages", cli_json_u64(after->pages)) != 0 ||
	            cli_json_set(obj, "free_pages", cli_json_u64(after->free_pages)) != 0 ||
	            cli_json_set(obj, "vacuumed", json_boolean(vacuumed)) != 0 ||
	            cli_json_set(obj, "checkpointed",
	                         vacuumed ? json_boolean(checkpointed) : json_null()) != 0 ||
	            cli_json_set(obj, "bytes_before", cli_json_u64(on_disk(before))) != 0 ||
	            cli_json_set(obj, "bytes_after", cli_json_u64(on_disk(after))) != 0)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

static void prune_text(const sl_prune_report *r, const sl_store_space *before,
                       const sl_store_space *after, int vacuumed, int checkpointed)
{
	printf("pruned     operations [%llu, %llu): %llu deleted\n", (unsigned long long)r->from,
	       (unsigned long long)r->to, (unsigned long long)(r->to - r->from));
	printf("values     %llu deleted (%llu bytes)\n", (unsigned long long)r->values,
	       (unsigned long long)r->value_bytes);
	printf("pages      %llu before, %llu after, of %llu bytes; %llu free%s\n",
	       (unsigned long long)before->pages, (unsigned long long)after->pages,
	       (unsigned long long)after->page_size, (unsigned long long)after->free_pages,
	       after->free_pages ? " (later writes reuse them)" : "");
	printf("files      %llu bytes before, %llu after (sluice.db and its WAL)\n",
	       (unsigned long long)on_disk(before), (unsigned long long)on_disk(after));
	if (vacuumed && !checkpointed)
		printf("note       another process is reading an older snapshot: the file "
		       "shrinks at a later checkpoint\n");
}

int cli_cmd_prune(int argc, char **argv)
{
	cli_cmd cmd = {.name = "prune",
	               .usage = prune_usage,
	               .flags = CLI_JSON,
	               .options = prune_options,
	               .min_args = 1,
	               .max_args = 1};
	sl_store *store = NULL;
	sl_prune_report report;
	sl_store_space before, after;
	int vacuum = 0, checkpointed = 0;
	int rc = cli_parse(&cmd, argc, argv, prune_opt, &vacuum);

	if (rc != CLI_CONTINUE)
		return rc;
	rc = cli_open_store(&cmd, 0, &store);
	if (rc != CLI_OK)
		goto cleanup;
	if (sl_store_space_get(store, &before) != SL_OK ||
	    sl_store_prune_report(store, cmd.args[0], &report) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (vacuum && sl_store_vacuum(store, &checkpointed) != SL_OK) {
		/* The prune is committed: say so, not only what failed. */
		sl_error_wrap("operations [%llu, %llu) and %llu values were pruned; vacuum",
		              (unsigned long long)report.from, (unsigned long long)report.to,
		              (unsigned long long)report.values);
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (sl_store_space_get(store, &after) != SL_OK) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	if (cmd.json) {
		rc = cli_json_print(cmd.name, prune_json(cmd.args[0], &report, &before, &after,
		                                         vacuum, checkpointed));
		goto cleanup;
	}
	prune_text(&report, &before, &after, vacuum, checkpointed);
	rc = CLI_OK;
cleanup:
	sl_store_free(store);
	return rc;
}
