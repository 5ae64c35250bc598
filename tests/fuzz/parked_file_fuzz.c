/*
 * Fuzz target for the engine's parked-rows file (src/engine/parked.c, the
 * format in its opening comment): parked_open reads DIR/parked, keeps the
 * good records and cuts a torn tail.
 *
 * Input layout: the whole input is the file DIR/parked, in a fresh
 * directory under /tmp (removed afterwards).
 *
 * Besides "no crash, no leak", the oracles abort on a wrong answer: open
 * takes any file (a bad record ends the good prefix, it never fails the
 * open); what it leaves on disk is a prefix of the input; each row has a
 * key and an error as strings, and key_len bytes of key are readable;
 * parked_count is the number of rows parked_each gives and
 * parked_version of a row's key is at least its version; a row appended
 * after the cut (parked_add) is found by a second open, after the same rows
 * as before, with nothing more to cut.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine_internal.h"

#define FUZZ_NAME "parked_file_fuzz"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define APPENDED_KEY     "fuzz/appended"
#define APPENDED_VERSION UINT64_C(0xfffffffffffffff0)
/* Its record: length and checksum 8, version 8, deleted 1, attempts 4,
 * key 2 + 13, error 2 + 7, value 1. */
#define APPENDED_BYTES 46

typedef struct seen {
	char *key; /* a copy of key_len bytes */
	size_t key_len;
	uint64_t version;
} seen;

typedef struct walk {
	uint64_t n_rows;
	sl_parked_row last;
	seen *rows;
	size_t cap_rows;
} walk;

/* parked_each holds the list's lock: the rows are checked against
 * parked_version after it returns. */
static int check_row(void *ctx, const sl_parked_row *row)
{
	walk *st = ctx;
	seen *rows;

	if (row->key == NULL || row->error == NULL)
		die("a row without a key or an error string");
	if (row->key_len > 0xffff || strlen(row->error) > 0xffff)
		die("a row with a key or an error longer than its 2-byte length");
	if (row->deleted != 0 && row->deleted != 1)
		die("a row with deleted neither 0 nor 1");
	rows = sl_grow(st->rows, &st->cap_rows, st->n_rows + 1, sizeof(*rows), 16);
	if (rows == NULL)
		die("out of memory");
	st->rows = rows;
	rows[st->n_rows].key = sl_malloc(row->key_len + 1);
	if (rows[st->n_rows].key == NULL)
		die("out of memory");
	memcpy(rows[st->n_rows].key, row->key, row->key_len); /* every byte is readable */
	rows[st->n_rows].key_len = row->key_len;
	rows[st->n_rows].version = row->version;
	st->n_rows++;
	st->last = *row;
	return 0;
}

static void walk_rows(parked_list *p, walk *st)
{
	*st = (walk){0};
	if (parked_each(p, check_row, st) != SL_OK)
		die("parked_each failed");
	if (parked_count(p) != st->n_rows)
		die("parked_count differs from the rows parked_each gives");
	for (size_t i = 0; i < st->n_rows; i++) {
		if (parked_version(p, st->rows[i].key, st->rows[i].key_len) < st->rows[i].version)
			die("parked_version is below a parked row's version");
		sl_free(st->rows[i].key);
	}
	sl_free(st->rows);
	st->rows = NULL;
}

/* The file's bytes now; checks they are a prefix of data. */
static size_t check_prefix(const char *path, const uint8_t *data, size_t size)
{
	uint8_t chunk[4096];
	size_t off = 0;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("cannot open the parked file again");
	while ((got = read(fd, chunk, sizeof(chunk))) > 0) {
		if ((size_t)got > size - off || memcmp(chunk, data + off, (size_t)got) != 0)
			die("open left a file that is not a prefix of the input");
		off += (size_t)got;
	}
	close(fd);
	if (got < 0)
		die("cannot read the parked file again");
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	char dir[] = "/tmp/sluice-fuzz-parked-XXXXXX";
	char path[sizeof(dir) + 16];
	parked_list *p = NULL;
	walk first, again;
	size_t kept;
	uint64_t before;
	struct stat st;
	int fd;

	if (!quiet) {
		sl_log_set_level(SL_LOG_OFF);
		quiet = 1;
	}
	if (!mkdtemp(dir))
		die("cannot make a temporary directory");
	snprintf(path, sizeof(path), "%s/parked", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot create the parked file");
	for (size_t off = 0; off < size;) {
		ssize_t k = write(fd, data + off, size - off);
		if (k <= 0)
			die("cannot write the parked file");
		off += (size_t)k;
	}
	close(fd);

	if (parked_open(&p, dir) != SL_OK)
		die("parked_open refused a file");
	walk_rows(p, &first);
	kept = check_prefix(path, data, size);
	if (kept == 0 && first.n_rows != 0)
		die("rows from a file cut to nothing");

	/* Append after the cut: the row must be readable after the rows kept. */
	before = parked_version(p, APPENDED_KEY, strlen(APPENDED_KEY));
	if (parked_add(p, APPENDED_KEY, strlen(APPENDED_KEY), APPENDED_VERSION, 0,
	               (const uint8_t *)"v", 1, 3, "refused") != SL_OK)
		die("parked_add failed");
	parked_close(p);
	p = NULL;

	if (parked_open(&p, dir) != SL_OK)
		die("parked_open refused a file it wrote");
	if (stat(path, &st) != 0 ||
	    (uint64_t)st.st_size != kept + (before == APPENDED_VERSION ? 0 : APPENDED_BYTES))
		die("a second open cut the file, or the appended row has another size");
	walk_rows(p, &again);
	if (before == APPENDED_VERSION) {
		if (again.n_rows != first.n_rows)
			die("parked_add of a row already parked added one");
	} else {
		if (again.n_rows != first.n_rows + 1)
			die("a second open lost or found rows");
		if (again.last.key_len != strlen(APPENDED_KEY) ||
		    memcmp(again.last.key, APPENDED_KEY, again.last.key_len) != 0 ||
		    again.last.version != APPENDED_VERSION || again.last.deleted != 0 ||
		    again.last.value_len != 1 || again.last.attempts != 3 ||
		    strcmp(again.last.error, "refused") != 0)
			die("the appended row reads back differently");
	}
	parked_close(p);

	if (unlink(path) != 0 || rmdir(dir) != 0)
		die("cannot remove the temporary directory");
	return 0;
}
