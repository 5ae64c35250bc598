/*
 * What the two WAL fuzz targets share: wal_segment (the input is the only
 * segment file) and wal_segments (the input split into two consecutive
 * segment files, so that damage in the earlier one is fuzzed too).
 * wal_fuzz_run writes the files wal-0000000000000001.seg, ...02.seg into a
 * fresh directory under /tmp, opens the WAL on it, reads back everything
 * open accepted, and removes the directory.
 *
 * Oracles, besides "no crash, no leak":
 *  - open gives SL_OK or SL_ECORRUPT, nothing else; a bad header (in any
 *    file but a last one torn at creation: shorter than the header or all
 *    zeros) is SL_ECORRUPT, and one good segment alone always opens (its
 *    bad tail is cut, never called corrupt);
 *  - the cursor gives exactly report.records records, LSNs consecutive
 *    from the oldest segment's first LSN up to report.last_lsn, each with
 *    op 1 or 2, a key of 1..1024 bytes, a value only for a put and at most
 *    SL_WAL_VALUE_MAX bytes; sl_wal_read_at of each record's place gives
 *    the same record;
 *  - the stats agree: last and synced LSN are report.last_lsn, and the
 *    bytes are the input's less what open cut (plus a new header when it
 *    had to start afresh);
 *  - a second open finds the same records and nothing more to cut.
 * Each target defines FUZZ_NAME and includes fuzz_util.h first.
 */
#ifndef SLUICE_WAL_FUZZ_H
#define SLUICE_WAL_FUZZ_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/wal.h"

#define WAL_FUZZ_HEADER 32
#define WAL_FUZZ_FILES  2

typedef struct wal_fuzz_read {
	sl_wal *w;
	uint64_t next_lsn;
	uint64_t count;
	sl_buf at; /* for sl_wal_read_at */
} wal_fuzz_read;

static void wal_fuzz_write(const char *dir, uint64_t id, const uint8_t *data, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/wal-%016llx.seg", dir, (unsigned long long)id);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot create a segment file");
	while (len > 0) {
		ssize_t k = write(fd, data, len);
		if (k <= 0)
			die("cannot write a segment file");
		data += k;
		len -= (size_t)k;
	}
	close(fd);
}

static void wal_fuzz_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int dir_fd;

	if (!d)
		die("cannot list the temporary directory");
	dir_fd = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dir_fd, e->d_name, 0) != 0)
			die("cannot remove a file of the temporary directory");
	}
	closedir(d);
	if (rmdir(dir) != 0)
		die("cannot remove the temporary directory");
}

/* A header open must refuse: size, magic, id and first LSN (1..2^63 - 1,
 * wal.c's W4). */
static int wal_fuzz_bad_header(const uint8_t *p, size_t len, uint64_t id)
{
	return len < WAL_FUZZ_HEADER || memcmp(p, "SLWALSG1", 8) != 0 || sl_be64_get(p + 8) != id ||
	       sl_be64_get(p + 16) == 0 || sl_be64_get(p + 16) >= (uint64_t)1 << 63;
}

/* What open takes for a segment torn at creation, when it is the last. */
static int wal_fuzz_torn_creation(const uint8_t *p, size_t len)
{
	if (len < WAL_FUZZ_HEADER)
		return 1;
	for (size_t i = 0; i < WAL_FUZZ_HEADER; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static int wal_fuzz_check_record(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	wal_fuzz_read *st = ctx;
	sl_wal_record again;

	if (r->lsn != st->next_lsn)
		die("the cursor gave LSNs out of order");
	if (r->op != SL_WAL_PUT && r->op != SL_WAL_DEL)
		die("a record with a bad op");
	if (r->key == NULL || r->key_len < 1 || r->key_len > 1024)
		die("a record with a bad key length");
	if (r->value_len > SL_WAL_VALUE_MAX || (r->value_len > 0) != (r->value != NULL))
		die("a record with a bad value");
	if (r->op == SL_WAL_DEL && r->value_len != 0)
		die("a delete with a value");
	if (loc->segment < 1 || loc->segment > WAL_FUZZ_FILES || loc->offset < WAL_FUZZ_HEADER)
		die("a record at an impossible place");
	if (sl_wal_read_at(st->w, loc, &again, &st->at) != SL_OK)
		die("read_at refuses a record the cursor gave");
	if (again.lsn != r->lsn || again.version != r->version || again.wall_ms != r->wall_ms ||
	    again.op != r->op || again.key_len != r->key_len ||
	    memcmp(again.key, r->key, r->key_len) != 0 || again.value_len != r->value_len ||
	    (r->value_len && memcmp(again.value, r->value, r->value_len) != 0))
		die("read_at and the cursor disagree");
	st->next_lsn++;
	st->count++;
	return 0;
}

/* Reads every record with a cursor; checks it against the report. */
static void wal_fuzz_read_all(sl_wal *w, const sl_wal_open_report *rep)
{
	wal_fuzz_read st = {w, 0, 0, SL_BUF_INIT(SIZE_MAX)};
	sl_wal_cursor c;
	size_t n;

	sl_wal_cursor_start(w, &c);
	st.next_lsn = c.next_lsn;
	do {
		if (sl_wal_read_next(w, &c, 64, (size_t)1 << 20, wal_fuzz_check_record, &st, &n) !=
		    SL_OK)
			die("the cursor refuses what open accepted");
	} while (n > 0);
	sl_buf_free(&st.at);
	if (st.count != rep->records)
		die("the cursor gave a different number of records than open counted");
	if (c.next_lsn != rep->last_lsn + 1 || st.next_lsn != c.next_lsn)
		die("the cursor did not end after the last LSN");
}

static void wal_fuzz_run(const uint8_t *const *parts, const size_t *lens, size_t n_parts)
{
	static int quiet;
	char dir[] = "/tmp/sluice-fuzz-wal-XXXXXX";
	sl_wal_options o = {dir, 0, 0};
	sl_wal_open_report rep, again;
	sl_wal_stats stats;
	sl_wal *w = NULL;
	uint64_t total = 0;
	int bad_header = 0, fresh, rc;

	if (!quiet) {
		sl_log_set_level(SL_LOG_OFF); /* not a line per torn tail */
		quiet = 1;
	}
	if (!mkdtemp(dir))
		die("cannot make a temporary directory");
	for (size_t i = 0; i < n_parts; i++) {
		wal_fuzz_write(dir, i + 1, parts[i], lens[i]);
		total += lens[i];
		if (i + 1 < n_parts || !wal_fuzz_torn_creation(parts[i], lens[i]))
			bad_header |= wal_fuzz_bad_header(parts[i], lens[i], i + 1);
	}
	fresh = n_parts == 1 && wal_fuzz_torn_creation(parts[0], lens[0]);

	rc = sl_wal_open(&w, &o, &rep);
	if (rc != SL_OK && rc != SL_ECORRUPT)
		die("open failed with an unexpected code");
	if (rc != SL_OK && sl_error_last()->code != rc)
		die("open's error is not the one it returned");
	if (bad_header && rc == SL_OK)
		die("open accepted a bad segment header");
	if (n_parts == 1 && !bad_header && rc != SL_OK)
		die("open refused a single segment with a good header");
	if (rc != SL_OK)
		goto out;

	if (rep.torn_bytes > total)
		die("open cut more than there was");
	sl_wal_stats_get(w, &stats);
	if (stats.last_lsn != rep.last_lsn || stats.synced_lsn != rep.last_lsn)
		die("the stats' LSNs differ from open's report");
	if (stats.bytes != total - rep.torn_bytes + (fresh ? WAL_FUZZ_HEADER : 0))
		die("the stats' bytes differ from the files less what open cut");
	wal_fuzz_read_all(w, &rep);
	sl_wal_close(w);
	w = NULL;

	/* The cut is durable: a second open finds exactly the same. */
	if (sl_wal_open(&w, &o, &again) != SL_OK)
		die("a WAL that opened once does not open again");
	if (again.records != rep.records || again.torn_bytes != 0 ||
	    again.last_lsn != rep.last_lsn || again.max_version != rep.max_version)
		die("a second open finds something else");
	wal_fuzz_read_all(w, &again);
out:
	sl_wal_close(w);
	wal_fuzz_remove(dir);
}

#endif
