/*
 * `sluice import NS DIR`: put every regular file under DIR into namespace
 * NS, keyed by its path relative to DIR ('/'-separated).
 *
 * Two passes, so bad input changes nothing:
 *  1. Walk DIR (lstat: symbolic links are never followed; anything but a
 *     directory or a regular file is skipped) and collect the relative
 *     paths. Every path must be a valid key and every file at most
 *     SL_VALUE_MAX bytes; if any is not, all such paths are reported and the
 *     command stops before touching the store.
 *  2. Sort the paths bytewise (so the same tree always gives the same log
 *     and root) and commit them in batches: one sl_batch commit per at most
 *     --batch files and IMPORT_BATCH_BYTES bytes of values.
 *
 * Memory holds the path list plus one batch of values, whatever the number
 * of files. Each batch is atomic; an error in pass 2 leaves the earlier
 * batches committed. Running the import again is safe: in an immutable
 * namespace a file already imported with the same content is a no-op, and
 * in a mutable one it is written again with the same value.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define OPT_BATCH CLI_OPT_CMD

#define IMPORT_BATCH_DEFAULT 1000
#define IMPORT_BATCH_MAX     1000000
/* A batch also ends once its values reach this many bytes. */
#define IMPORT_BATCH_BYTES (UINT64_C(256) << 20)
/* Invalid paths listed one by one before the rest are only counted. */
#define IMPORT_MAX_REPORTED 20
/* Progress is logged at most this often. */
#define IMPORT_PROGRESS_NS (UINT64_C(1000000000))

static const char import_usage[] =
        "Usage: sluice import [-d DIR] [--batch N] NS SRCDIR\n"
        "\n"
        "Put every regular file under SRCDIR into namespace NS, keyed by its path\n"
        "relative to SRCDIR. Symbolic links and special files are skipped. All\n"
        "paths are checked first: if any is not a valid key, or a file is larger\n"
        "than 1 GiB, they are reported and nothing is imported. Files are then\n"
        "committed in path order, in batches; each batch is one atomic commit. If\n"
        "an error stops the import, earlier batches stay committed; running it\n"
        "again is safe.\n"
        "\n"
        "  -b, --batch N  files per commit (default 1000; a commit also ends at\n"
        "                 256 MiB of values)\n";

static const struct option import_options[] = {
        {"batch", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
};

/* Pass 1 state. */
typedef struct import_walk {
	const char *name; /* command name for messages */
	sl_buf path;      /* SRCDIR "/" relative path of the entry at hand */
	size_t root_len;  /* bytes of SRCDIR "/" at the start of path */
	char **keys;      /* relative paths of the files to import */
	size_t n_keys;
	size_t cap_keys;
	uint64_t bytes;   /* their total size */
	size_t n_invalid; /* paths that cannot be imported */
	size_t n_skipped; /* not a directory or regular file */
} import_walk;

static int import_opt(cli_cmd *cmd, int opt, const char *arg, void *ctx)
{
	uint64_t *batch = ctx;
	int rc;

	(void)opt; /* --batch is the only one */
	rc = cli_parse_u64(cmd->name, "--batch", arg, batch);
	if (rc == CLI_OK && (*batch == 0 || *batch > IMPORT_BATCH_MAX))
		rc = cli_usage_error(cmd->name, "--batch must be 1..%d", IMPORT_BATCH_MAX);
	return rc;
}

static int errno_fail(const char *name, const char *what, const char *path)
{
	char shown[256];

	return cli_errorf(name, "cannot %s '%s': %s", what,
	                  cli_escape(shown, sizeof(shown), path, strlen(path)), strerror(errno));
}

/* A path that cannot be imported: list the first few, count them all. */
static void report_invalid(import_walk *w, const char *rel, size_t rel_len, const char *why)
{
	char shown[256];

	if (w->n_invalid++ < IMPORT_MAX_REPORTED)
		cli_errorf(w->name, "cannot import '%s': %s",
		           cli_escape(shown, sizeof(shown), rel, rel_len), why);
}

static int add_key(import_walk *w, const char *rel, size_t rel_len)
{
	char *key, **grown = sl_grow(w->keys, &w->cap_keys, w->n_keys, sizeof(*grown), 256);

	if (!grown)
		return cli_fail(w->name);
	w->keys = grown;
	key = sl_strndup(rel, rel_len);
	if (!key)
		return cli_fail(w->name);
	w->keys[w->n_keys++] = key;
	return CLI_OK;
}

/* Look at the entry whose path is in w->path. */
static int walk_dir(import_walk *w);

static int walk_entry(import_walk *w)
{
	const char *path = (const char *)w->path.data;
	const char *rel = path + w->root_len;
	size_t rel_len = w->path.len - w->root_len;
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno_fail(w->name, "stat", path);
	if (S_ISDIR(st.st_mode)) {
		/* Every file below would have a key past the limit. */
		if (rel_len >= SL_KEY_MAX) {
			report_invalid(w, rel, rel_len, "directory path is too long for a key");
			return CLI_OK;
		}
		if (sl_buf_append_byte(&w->path, '/') != SL_OK)
			return cli_fail(w->name);
		return walk_dir(w);
	}
	if (!S_ISREG(st.st_mode)) {
		w->n_skipped++;
		return CLI_OK;
	}
	if (sl_key_validate(rel, rel_len) != SL_OK) {
		report_invalid(w, rel, rel_len, sl_error_last()->message);
		return CLI_OK;
	}
	if ((uint64_t)st.st_size > SL_VALUE_MAX) {
		report_invalid(w, rel, rel_len, "larger than 1 GiB (SL_VALUE_MAX)");
		return CLI_OK;
	}
	w->bytes += (uint64_t)st.st_size;
	return add_key(w, rel, rel_len);
}

/* Walk the directory whose path, ending in '/', is in w->path. */
static int walk_dir(import_walk *w)
{
	size_t base = w->path.len;
	struct dirent *ent;
	DIR *dir;
	int rc;

	dir = opendir((const char *)w->path.data);
	if (!dir)
		return errno_fail(w->name, "open directory", (const char *)w->path.data);
	for (;;) {
		errno = 0;
		ent = readdir(dir);
		if (!ent) {
			rc = errno ? errno_fail(w->name, "read directory",
			                        (const char *)w->path.data)
			           : CLI_OK;
			break;
		}
		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		if (sl_buf_append_str(&w->path, ent->d_name) != SL_OK) {
			rc = cli_fail(w->name);
			break;
		}
		rc = walk_entry(w);
		/* Back to this directory's path. */
		w->path.len = base;
		w->path.data[base] = '\0';
		if (rc != CLI_OK)
			break;
	}
	closedir(dir);
	return rc;
}

static int compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read the file for key into value; it must still be a regular file. */
static int read_value(import_walk *w, const char *key, sl_buf *value)
{
	struct stat st;
	int fd = -1;
	int rc;

	w->path.len = w->root_len;
	if (sl_buf_append_str(&w->path, key) != SL_OK)
		return cli_fail(w->name);
	/* O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a FIFO since
	 * the walk must neither be followed nor block us. */
	fd = open((const char *)w->path.data, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = errno_fail(w->name, "open", (const char *)w->path.data);
		goto cleanup;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = cli_errorf(w->name, "'%s' is no longer a regular file", key);
		goto cleanup;
	}
	if (cli_read_fd(value, fd, key, SL_VALUE_MAX) != SL_OK) {
		rc = cli_fail(w->name);
		goto cleanup;
	}
	rc = CLI_OK;
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Pass 2: commit the sorted keys in batches. */
static int import_files(import_walk *w, sl_store *store, const char *ns, size_t batch_files)
{
	sl_buf value = SL_BUF_INIT(SL_VALUE_MAX);
	sl_batch *batch = NULL;
	sl_ns_info info;
	sl_target target;
	size_t done = 0, commits = 0;
	uint64_t last_log = sl_clock_mono_ns();
	int rc;

	/* Also checks that the namespace exists when there are no files. */
	if (sl_store_ns_info(store, ns, &info) != SL_OK ||
	    sl_batch_new(&batch, store, ns) != SL_OK) {
		rc = cli_fail(w->name);
		goto cleanup;
	}
	target = info.target;
	while (done < w->n_keys) {
		size_t i = done, in_batch = 0;
		uint64_t batch_bytes = 0;
		sl_target committed;

		for (; i < w->n_keys && in_batch < batch_files && batch_bytes < IMPORT_BATCH_BYTES;
		     i++, in_batch++) {
			const char *key = w->keys[i];

			rc = read_value(w, key, &value);
			if (rc != CLI_OK)
				goto stopped;
			if (sl_batch_put(batch, key, strlen(key), value.data, value.len) != SL_OK) {
				rc = cli_fail(w->name);
				goto stopped;
			}
			batch_bytes += value.len;
		}
		if (sl_batch_commit(batch, &committed) != SL_OK) {
			rc = cli_fail(w->name);
			goto stopped;
		}
		/* A batch of files already there with the same content appends
		 * nothing. */
		if (committed.size != target.size)
			commits++;
		target = committed;
		done = i;
		if (sl_clock_mono_ns() - last_log >= IMPORT_PROGRESS_NS && done < w->n_keys) {
			sl_log(SL_LOG_INFO, "importing", "files=%zu of=%zu commits=%zu", done,
			       w->n_keys, commits);
			last_log = sl_clock_mono_ns();
		}
	}
	printf("files   %zu\n", w->n_keys);
	printf("bytes   %llu\n", (unsigned long long)w->bytes);
	printf("skipped %zu\n", w->n_skipped);
	printf("commits %zu\n", commits);
	printf("size    %llu\n", (unsigned long long)target.size);
	printf("root    %s\n", sl_digest_to_hex(&target.root).s);
	rc = CLI_OK;
	goto cleanup;
stopped:
	cli_errorf(w->name,
	           "stopped after %zu of %zu files (%zu commits); those stay committed and "
	           "running the import again is safe",
	           done, w->n_keys, commits);
cleanup:
	sl_batch_free(batch);
	sl_buf_free(&value);
	return rc;
}

int cli_cmd_import(int argc, char **argv)
{
	cli_cmd cmd = {.name = "import",
	               .usage = import_usage,
	               .options = import_options,
	               .min_args = 2,
	               .max_args = 2};
	import_walk w = {.name = "import"};
	uint64_t batch_files = IMPORT_BATCH_DEFAULT;
	sl_store *store = NULL;
	const char *ns, *src;
	size_t src_len;
	struct stat st;
	int rc = cli_parse(&cmd, argc, argv, import_opt, &batch_files);

	if (rc != CLI_CONTINUE)
		return rc;
	ns = cmd.args[0];
	src = cmd.args[1];
	src_len = strlen(src);
	while (src_len > 1 && src[src_len - 1] == '/')
		src_len--;
	if (stat(src, &st) != 0) {
		rc = errno_fail(cmd.name, "stat", src);
		goto cleanup;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = cli_errorf(cmd.name, "'%s' is not a directory", src);
		goto cleanup;
	}
	/* Room for SRCDIR, '/', a relative path a little past the key limit
	 * (walk_entry stops descending there) and one more name. */
	sl_buf_init(&w.path, src_len + 1 + SL_KEY_MAX + 256 + 2);
	if (sl_buf_append(&w.path, src, src_len) != SL_OK ||
	    (src[src_len - 1] != '/' && sl_buf_append_byte(&w.path, '/') != SL_OK)) {
		rc = cli_fail(cmd.name);
		goto cleanup;
	}
	w.root_len = w.path.len;
	rc = walk_dir(&w);
	if (rc != CLI_OK)
		goto cleanup;
	if (w.n_invalid > 0) {
		if (w.n_invalid > IMPORT_MAX_REPORTED)
			cli_errorf(cmd.name, "... and %zu more", w.n_invalid - IMPORT_MAX_REPORTED);
		rc = cli_errorf(cmd.name, "%zu path%s cannot be imported; nothing was imported",
		                w.n_invalid, w.n_invalid == 1 ? "" : "s");
		goto cleanup;
	}
	if (w.n_keys > 1)
		qsort(w.keys, w.n_keys, sizeof(*w.keys), compare_keys);
	rc = cli_open_store(&cmd, 0, &store);
	if (rc != CLI_OK)
		goto cleanup;
	rc = import_files(&w, store, ns, (size_t)batch_files);
cleanup:
	for (size_t i = 0; i < w.n_keys; i++)
		sl_free(w.keys[i]);
	sl_free(w.keys);
	sl_buf_free(&w.path);
	sl_store_free(store);
	return rc;
}
