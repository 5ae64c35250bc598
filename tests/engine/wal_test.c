/*
 * Tests for the engine's WAL: append, sync and read back; LSNs across
 * reopens; segment roll and release; a torn tail cut at every byte of the
 * last record; a flipped byte (cut in the last segment, SL_ECORRUPT in an
 * earlier one); the max_bytes cap; a failed write refusing everything
 * after it; group commit from 8 threads; the drain reader's limits; the
 * version floor in headers; and kill -9 of a child that writes and syncs.
 *
 * Record contents are a function of the LSN (key_for, value_for), so any
 * record read back can be checked on its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/wal.h"
#include "testutil.h"

#define SEG1 "wal-0000000000000001.seg"
#define SEG2 "wal-0000000000000002.seg"

/* ------------------------------------------------------------- helpers */

static size_t key_for(uint64_t lsn, char *out)
{
	return (size_t)snprintf(out, 32, "key-%llu", (unsigned long long)lsn);
}

static size_t value_for(uint64_t lsn, uint8_t *out)
{
	size_t n = 20 + (size_t)(lsn * 7 % 80);
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(lsn * 31 + i);
	return n;
}

static sl_wal *open_wal(const char *dir, uint64_t segment_bytes, uint64_t max_bytes,
                        sl_wal_open_report *rep)
{
	sl_wal_options o = {dir, segment_bytes, max_bytes};
	sl_wal *w = NULL;
	assert_ok(sl_wal_open(&w, &o, rep));
	return w;
}

/* Appends the record of the next LSN (expected: *next); deletes every
 * 5th. */
static uint64_t put_next(sl_wal *w, uint64_t expect, sl_wal_loc *loc)
{
	char key[32];
	uint8_t value[128];
	sl_wal_record r = {0};
	uint64_t lsn = 0;

	r.key = key;
	r.key_len = key_for(expect, key);
	r.version = expect * 10;
	r.wall_ms = 1000 + expect;
	if (expect % 5 == 0) {
		r.op = SL_WAL_DEL;
	} else {
		r.op = SL_WAL_PUT;
		r.value = value;
		r.value_len = value_for(expect, value);
	}
	assert_ok(sl_wal_append(w, &r, &lsn, loc));
	assert_int_equal(lsn, expect);
	return lsn;
}

static void check_record(const sl_wal_record *r)
{
	char key[32];
	uint8_t value[128];
	size_t key_len = key_for(r->lsn, key);

	assert_int_equal(r->key_len, key_len);
	assert_memory_equal(r->key, key, key_len);
	assert_int_equal(r->version, r->lsn * 10);
	assert_int_equal(r->wall_ms, 1000 + r->lsn);
	if (r->lsn % 5 == 0) {
		assert_int_equal(r->op, SL_WAL_DEL);
		assert_int_equal(r->value_len, 0);
	} else {
		size_t n = value_for(r->lsn, value);
		assert_int_equal(r->op, SL_WAL_PUT);
		assert_int_equal(r->value_len, n);
		assert_memory_equal(r->value, value, n);
	}
}

typedef struct collect {
	uint64_t first, last, count;
	uint64_t stop_at; /* return 42 at this LSN, 0: never */
} collect;

static int collect_cb(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	collect *c = ctx;
	(void)loc;
	if (c->stop_at && r->lsn == c->stop_at)
		return 42;
	check_record(r);
	if (c->count == 0)
		c->first = r->lsn;
	else
		assert_int_equal(r->lsn, c->last + 1);
	c->last = r->lsn;
	c->count++;
	return 0;
}

/* Reads every durable record from the oldest, checking each. */
static collect read_all(sl_wal *w)
{
	collect c = {0, 0, 0, 0};
	sl_wal_cursor cur;
	size_t n;

	sl_wal_cursor_start(w, &cur);
	do
		assert_ok(sl_wal_read_next(w, &cur, 1000, 1 << 20, collect_cb, &c, &n));
	while (n > 0);
	return c;
}

static int file_exists(const char *dir, const char *name)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static long file_size(const char *dir, const char *name)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, "wal-", 4) == 0;
	closedir(d);
	return n;
}

static uint8_t *slurp(const char *dir, const char *name, size_t *len)
{
	char path[4200];
	FILE *f;
	long n = file_size(dir, name);
	uint8_t *data;

	assert_true(n >= 0);
	data = malloc((size_t)n + 1);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return data;
}

static void spit(const char *dir, const char *name, const uint8_t *data, size_t len)
{
	char path[4200];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* -------------------------------------------------------------- tests */

static void test_append_sync_read(void **state)
{
	char *dir = tu_tempdir();
	sl_wal_open_report rep;
	sl_wal_loc locs[21];
	sl_wal_record rec;
	sl_wal_stats st;
	sl_buf buf = SL_BUF_INIT(1 << 20);
	sl_wal *w, *again = NULL;
	sl_wal_options o = {dir, 0, 0};
	(void)state;

	w = open_wal(dir, 0, 0, &rep);
	assert_int_equal(rep.records, 0);
	assert_int_equal(rep.last_lsn, 0);
	assert_true(file_exists(dir, SEG1));
	assert_int_equal(sl_wal_open(&again, &o, NULL), SL_EBUSY);

	for (uint64_t i = 1; i <= 20; i++)
		put_next(w, i, &locs[i - 1]);
	assert_int_equal(sl_wal_sync(w, 21), SL_EINVAL);
	assert_ok(sl_wal_sync(w, 20));
	assert_int_equal(sl_wal_synced_lsn(w), 20);
	/* Not synced yet: read_at waits for the syncer to write it. */
	put_next(w, 21, &locs[20]);
	assert_ok(sl_wal_read_at(w, &locs[20], &rec, &buf));
	assert_int_equal(rec.lsn, 21);
	check_record(&rec);
	assert_ok(sl_wal_sync(w, 21));
	for (int i = 20; i >= 0; i--) {
		assert_ok(sl_wal_read_at(w, &locs[i], &rec, &buf));
		assert_int_equal(rec.lsn, (uint64_t)i + 1);
		check_record(&rec);
	}
	sl_wal_loc bad = {1, 33};
	assert_int_equal(sl_wal_read_at(w, &bad, &rec, &buf), SL_ECORRUPT);
	bad.segment = 9;
	assert_int_equal(sl_wal_read_at(w, &bad, &rec, &buf), SL_ENOTFOUND);

	/* Bad records are refused and use no LSN (W5). */
	sl_wal_record r = {0, 1, 0, SL_WAL_PUT, "k", 0, NULL, 0};
	uint64_t lsn;
	assert_int_equal(sl_wal_append(w, &r, &lsn, NULL), SL_EINVAL);
	r.key_len = 1025;
	assert_int_equal(sl_wal_append(w, &r, &lsn, NULL), SL_EINVAL);
	r.key_len = 1;
	r.op = SL_WAL_DEL;
	r.value = (const uint8_t *)"v";
	r.value_len = 1;
	assert_int_equal(sl_wal_append(w, &r, &lsn, NULL), SL_EINVAL);
	r.op = 3;
	assert_int_equal(sl_wal_append(w, &r, &lsn, NULL), SL_EINVAL);

	collect c = read_all(w);
	assert_int_equal(c.count, 21);
	assert_int_equal(c.first, 1);
	sl_wal_stats_get(w, &st);
	assert_int_equal(st.last_lsn, 21);
	assert_int_equal(st.synced_lsn, 21);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.bytes, (uint64_t)file_size(dir, SEG1));
	assert_int_equal(st.oldest_wall_ms, 1001);
	assert_true(st.syncs >= 1);
	sl_wal_close(w);
	sl_buf_free(&buf);
	tu_rmtree(dir);
	free(dir);
}

static void test_reopen_continues(void **state)
{
	char *dir = tu_tempdir();
	sl_wal_open_report rep;
	uint64_t next = 1;
	(void)state;

	for (int round = 0; round < 4; round++) {
		sl_wal *w = open_wal(dir, 700, 0, &rep);
		assert_int_equal(rep.records, next - 1);
		assert_int_equal(rep.last_lsn, next - 1);
		assert_int_equal(rep.torn_bytes, 0);
		assert_int_equal(rep.max_version, (next - 1) * 10);
		collect c = read_all(w);
		assert_int_equal(c.count, next - 1);
		/* The last round's appends are never synced by the caller:
		 * close still writes them. */
		for (int i = 0; i < 7; i++, next++)
			put_next(w, next, NULL);
		if (round < 3)
			assert_ok(sl_wal_sync(w, next - 1));
		sl_wal_close(w);
	}
	assert_true(count_segments(dir) > 1);
	tu_rmtree(dir);
	free(dir);
}

static void test_roll_and_release(void **state)
{
	char *dir = tu_tempdir();
	sl_wal_loc locs[30];
	sl_wal_open_report rep;
	sl_wal_stats st;
	char name[64];
	sl_wal *w = open_wal(dir, 300, 0, NULL);
	(void)state;

	for (uint64_t i = 1; i <= 30; i++)
		put_next(w, i, &locs[i - 1]);
	assert_ok(sl_wal_sync(w, 30));
	uint64_t last_seg = locs[29].segment;
	assert_true(last_seg >= 5);
	for (int i = 1; i < 30; i++)
		assert_true(locs[i].segment == locs[i - 1].segment ||
		            (locs[i].segment == locs[i - 1].segment + 1 && locs[i].offset == 32));
	sl_wal_stats_get(w, &st);
	assert_int_equal(st.segments, last_seg);
	assert_int_equal(count_segments(dir), (int)last_seg);

	/* Release up to the middle of segment 3: 1 and 2 go, 3 stays. */
	uint64_t upto = 0;
	for (int i = 0; i < 30; i++)
		if (locs[i].segment == 3 && locs[i + 1].segment == 3) {
			upto = (uint64_t)i + 1;
			break;
		}
	assert_ok(sl_wal_release(w, upto));
	sl_wal_stats_get(w, &st);
	assert_int_equal(st.released_lsn, upto);
	assert_int_equal(st.segments, last_seg - 2);
	assert_false(file_exists(dir, SEG1));
	assert_false(file_exists(dir, SEG2));
	snprintf(name, sizeof(name), "wal-%016llx.seg", 3ULL);
	assert_true(file_exists(dir, name));
	/* Segment 3's first record is the oldest one not released. */
	for (int i = 0; i < 30; i++)
		if (locs[i].segment == 3) {
			assert_int_equal(st.oldest_wall_ms, 1000 + (uint64_t)i + 1);
			break;
		}
	collect c = read_all(w);
	assert_int_equal(c.last, 30);

	/* Everything: the active segment stays. */
	assert_ok(sl_wal_release(w, UINT64_MAX));
	sl_wal_stats_get(w, &st);
	assert_int_equal(st.released_lsn, 30);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.oldest_wall_ms, 0);
	assert_int_equal(count_segments(dir), 1);
	snprintf(name, sizeof(name), "wal-%016llx.seg", (unsigned long long)last_seg);
	assert_true(file_exists(dir, name));
	assert_int_equal(st.bytes, (uint64_t)file_size(dir, name));
	sl_wal_close(w);

	w = open_wal(dir, 300, 0, &rep);
	c = read_all(w);
	assert_int_equal(c.last, 30);
	assert_int_equal(rep.records, c.count);
	assert_int_equal(c.first, 30 - c.count + 1);
	put_next(w, 31, NULL);
	assert_ok(sl_wal_sync(w, 31));
	sl_wal_close(w);
	tu_rmtree(dir);
	free(dir);
}

/* Rebuilds DIR from the saved segments, the second cut to `cut` bytes. */
static void restore(const char *dir, const uint8_t *s1, size_t n1, const uint8_t *s2, size_t cut)
{
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/wal-*.seg", dir);
	assert_int_equal(system(cmd), 0);
	spit(dir, SEG1, s1, n1);
	spit(dir, SEG2, s2, cut);
}

static void test_torn_tail(void **state)
{
	tu_rng rng = tu_rng_seeded("test_torn_tail");
	char *dir = tu_tempdir();
	sl_wal_loc locs[16];
	sl_wal_open_report rep;
	size_t n1, n2, in_seg1 = 0;
	sl_wal *w = open_wal(dir, 1200, 0, NULL);
	(void)state;

	for (uint64_t i = 1; i <= 16; i++)
		put_next(w, i, &locs[i - 1]);
	sl_wal_close(w);
	assert_int_equal(locs[15].segment, 2);
	while (locs[in_seg1].segment == 1)
		in_seg1++;
	uint8_t *s1 = slurp(dir, SEG1, &n1);
	uint8_t *s2 = slurp(dir, SEG2, &n2);
	size_t last_off = (size_t)locs[15].offset;

	/* Every byte of the last record, a header cut short (the segment
	 * is then a torn creation), and a few anywhere. */
	size_t n_cuts = n2 - last_off + 10;
	for (size_t k = 0; k < n_cuts; k++) {
		size_t cut = k < n2 - last_off        ? last_off + k
		             : k == n2 - last_off     ? 0
		             : k == n2 - last_off + 1 ? 31
		                                      : (size_t)tu_rng_below(&rng, n2);
		uint64_t expect = in_seg1;
		size_t kept_end = 32;
		for (size_t i = in_seg1; cut >= 32 && i < 16; i++) {
			size_t end = i + 1 < 16 ? (size_t)locs[i + 1].offset : n2;
			if (end > cut)
				break;
			expect = i + 1;
			kept_end = end;
		}
		restore(dir, s1, n1, s2, cut);
		w = open_wal(dir, 1200, 0, &rep);
		assert_int_equal(rep.records, expect);
		assert_int_equal(rep.last_lsn, expect);
		assert_int_equal(rep.torn_bytes, cut >= 32 ? cut - kept_end : cut);
		assert_int_equal(count_segments(dir), cut >= 32 ? 2 : 1);
		if (cut >= 32)
			assert_int_equal(file_size(dir, SEG2), (long)kept_end);
		put_next(w, expect + 1, NULL);
		assert_ok(sl_wal_sync(w, expect + 1));
		sl_wal_close(w);

		w = open_wal(dir, 1200, 0, &rep);
		assert_int_equal(rep.torn_bytes, 0);
		assert_int_equal(rep.records, expect + 1);
		collect c = read_all(w);
		assert_int_equal(c.first, 1);
		assert_int_equal(c.last, expect + 1);
		sl_wal_close(w);
		/* No garbage between the kept records and the new one. */
		if (cut >= 32) {
			char key[32];
			uint8_t value[128];
			size_t rec = 8 + 27 + key_for(expect + 1, key) +
			             ((expect + 1) % 5 ? value_for(expect + 1, value) : 0);
			assert_int_equal(file_size(dir, SEG2), (long)(kept_end + rec));
		}
	}
	free(s1);
	free(s2);
	tu_rmtree(dir);
	free(dir);
}

static void test_flipped_byte(void **state)
{
	char *dir = tu_tempdir();
	sl_wal_loc locs[16];
	sl_wal_open_report rep;
	size_t n1, n2;
	sl_wal *w = open_wal(dir, 1200, 0, NULL);
	(void)state;

	for (uint64_t i = 1; i <= 16; i++)
		put_next(w, i, &locs[i - 1]);
	sl_wal_close(w);
	uint8_t *s1 = slurp(dir, SEG1, &n1);
	uint8_t *s2 = slurp(dir, SEG2, &n2);

	/* In the last record of the last segment: cut there. */
	s2[locs[15].offset + 20] ^= 0x10;
	spit(dir, SEG2, s2, n2);
	w = open_wal(dir, 1200, 0, &rep);
	assert_int_equal(rep.records, 15);
	assert_int_equal(rep.torn_bytes, n2 - locs[15].offset);
	sl_wal_close(w);

	/* In a record of the first segment: the WAL does not open. */
	s2[locs[15].offset + 20] ^= 0x10;
	spit(dir, SEG2, s2, n2);
	s1[locs[3].offset + 30] ^= 0x01;
	spit(dir, SEG1, s1, n1);
	sl_wal_options o = {dir, 1200, 0};
	w = NULL;
	assert_int_equal(sl_wal_open(&w, &o, &rep), SL_ECORRUPT);
	assert_null(w);
	char where[64];
	snprintf(where, sizeof(where), "offset %llu", (unsigned long long)locs[3].offset);
	assert_non_null(strstr(sl_error_last()->message, SEG1));
	assert_non_null(strstr(sl_error_last()->message, where));
	/* Nothing was cut. */
	assert_int_equal(file_size(dir, SEG1), (long)n1);
	assert_int_equal(file_size(dir, SEG2), (long)n2);
	free(s1);
	free(s2);
	tu_rmtree(dir);
	free(dir);
}

/* Counts records and checks their LSNs ascend. */
static int count_cb(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	uint64_t *last = ctx;
	(void)loc;
	assert_int_equal(r->lsn, *last + 1);
	*last = r->lsn;
	return 0;
}

static void test_max_bytes(void **state)
{
	char *dir = tu_tempdir();
	uint8_t big[200] = {0};
	sl_wal_record r = {0, 7, 1, SL_WAL_PUT, "big", 3, big, sizeof(big)};
	size_t rec = 8 + 27 + 3 + sizeof(big);
	uint64_t cap = 32 + 3 * rec + 60, lsn;
	sl_wal_stats st;
	(void)state;

	sl_wal *w = open_wal(dir, 0, cap, NULL);
	for (uint64_t i = 1; i <= 3; i++) {
		assert_ok(sl_wal_append(w, &r, &lsn, NULL));
		assert_int_equal(lsn, i);
	}
	assert_int_equal(sl_wal_append(w, &r, &lsn, NULL), SL_EBUSY);
	assert_non_null(strstr(sl_error_last()->message, "the WAL is full"));
	sl_wal_stats_get(w, &st);
	assert_int_equal(st.last_lsn, 3);
	assert_int_equal(st.bytes, 32 + 3 * rec);
	/* A small one still fits, at the next LSN. */
	r.value_len = 10;
	assert_ok(sl_wal_append(w, &r, &lsn, NULL));
	assert_int_equal(lsn, 4);
	assert_ok(sl_wal_sync(w, 4));
	sl_wal_close(w);

	/* The bytes on disk count after a reopen too. */
	w = open_wal(dir, 0, cap, NULL);
	r.value_len = sizeof(big);
	assert_int_equal(sl_wal_append(w, &r, &lsn, NULL), SL_EBUSY);
	/* Reading back shows the accepted records only. */
	sl_wal_cursor cur;
	uint64_t last = 0;
	size_t n;
	sl_wal_cursor_start(w, &cur);
	assert_ok(sl_wal_read_next(w, &cur, 100, 1 << 20, count_cb, &last, &n));
	assert_int_equal(n, 4);
	assert_int_equal(last, 4);
	sl_wal_close(w);
	tu_rmtree(dir);
	free(dir);
}

/* W5: an allocation failing anywhere in an append (a roll included)
 * leaves the WAL as it was; the retry gets the same LSN. */
static void test_append_out_of_memory(void **state)
{
	char *dir = tu_tempdir();
	sl_wal_stats before, after;
	int failures = 0;
	(void)state;

	sl_wal *w = open_wal(dir, 400, 0, NULL);
	for (uint64_t i = 1; i <= 40; i++) {
		for (long k = 0;; k++) {
			char key[32];
			uint8_t value[128];
			sl_wal_record r = {0, i * 10, 1000 + i, SL_WAL_PUT, key, 0, value, 0};
			uint64_t lsn = 0;
			sl_wal_loc loc;
			r.key_len = key_for(i, key);
			if (i % 5 == 0)
				r.op = SL_WAL_DEL;
			else
				r.value_len = value_for(i, value);
			sl_wal_stats_get(w, &before);
			sl_alloc_fail_after(k, 0);
			int rc = sl_wal_append(w, &r, &lsn, &loc);
			sl_alloc_fail_after(-1, 0);
			if (rc == SL_OK) {
				assert_int_equal(lsn, i);
				break;
			}
			assert_int_equal(rc, SL_ENOMEM);
			sl_wal_stats_get(w, &after);
			assert_int_equal(after.last_lsn, before.last_lsn);
			assert_int_equal(after.bytes, before.bytes);
			assert_int_equal(after.segments, before.segments);
			failures++;
		}
	}
	assert_true(failures > 0);
	assert_ok(sl_wal_sync(w, 40));
	sl_wal_close(w);
	w = open_wal(dir, 400, 0, NULL);
	collect c = read_all(w);
	assert_int_equal(c.count, 40);
	sl_wal_close(w);
	tu_rmtree(dir);
	free(dir);
}

/* A 16 MiB value: alone in its own segment (past segment_bytes), read
 * back by read_at and read_next; one byte more is refused. */
static int big_cb(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	size_t *sizes = ctx;
	(void)loc;
	sizes[r->lsn - 1] = r->value_len;
	return 0;
}

static void test_large_record(void **state)
{
	char *dir = tu_tempdir();
	size_t big_len = (size_t)16 << 20, sizes[3] = {0}, n;
	uint8_t *big = malloc(big_len + 1);
	sl_wal_record r = {0, 1, 1, SL_WAL_PUT, "big", 3, big, big_len + 1};
	sl_wal_loc locs[3];
	sl_wal_record rec;
	sl_wal_cursor cur;
	sl_buf buf = SL_BUF_INIT(SIZE_MAX);
	(void)state;

	for (size_t i = 0; i <= big_len; i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	sl_wal *w = open_wal(dir, 1 << 20, 0, NULL);
	assert_int_equal(sl_wal_append(w, &r, NULL, NULL), SL_ETOOLARGE);
	r.value_len = 10;
	assert_ok(sl_wal_append(w, &r, NULL, &locs[0]));
	r.value_len = big_len;
	assert_ok(sl_wal_append(w, &r, NULL, &locs[1]));
	r.value_len = 10;
	assert_ok(sl_wal_append(w, &r, NULL, &locs[2]));
	assert_int_equal(locs[0].segment, 1);
	assert_int_equal(locs[1].segment, 2);
	assert_int_equal(locs[1].offset, 32);
	assert_int_equal(locs[2].segment, 3);
	assert_ok(sl_wal_read_at(w, &locs[1], &rec, &buf));
	assert_int_equal(rec.value_len, big_len);
	assert_memory_equal(rec.value, big, big_len);
	sl_wal_cursor_start(w, &cur);
	assert_ok(sl_wal_sync(w, 3));
	assert_ok(sl_wal_read_next(w, &cur, 10, 1, big_cb, sizes, &n));
	assert_int_equal(n, 1);
	assert_ok(sl_wal_read_next(w, &cur, 10, 1 << 20, big_cb, sizes, &n));
	assert_int_equal(n, 1); /* the big one, alone: past max_bytes */
	assert_ok(sl_wal_read_next(w, &cur, 10, 1 << 20, big_cb, sizes, &n));
	assert_int_equal(n, 1);
	assert_int_equal(sizes[0], 10);
	assert_int_equal(sizes[1], big_len);
	assert_int_equal(sizes[2], 10);
	sl_wal_close(w);
	sl_buf_free(&buf);
	free(big);
	tu_rmtree(dir);
	free(dir);
}

static void test_write_failure(void **state)
{
	char *dir = tu_tempdir();
	char path[4200];
	sl_wal_loc loc;
	sl_wal_record rec;
	sl_buf buf = SL_BUF_INIT(1 << 20);
	uint64_t next = 1, last = 0;
	size_t n;
	sl_wal_cursor cur;
	(void)state;

	sl_wal *w = open_wal(dir, 400, 0, NULL);
	for (; next <= 3; next++)
		put_next(w, next, NULL);
	assert_ok(sl_wal_sync(w, 3));
	/* Segment 2's file cannot be created: a directory has its name. */
	snprintf(path, sizeof(path), "%s/%s", dir, SEG2);
	assert_int_equal(mkdir(path, 0755), 0);
	do
		put_next(w, next++, &loc);
	while (loc.segment == 1);
	assert_int_equal(sl_wal_sync(w, next - 1), SL_EIO);
	assert_non_null(strstr(sl_error_last()->message, "create"));
	assert_non_null(strstr(sl_error_last()->cause, "errno="));
	uint64_t synced = sl_wal_synced_lsn(w);
	assert_true(synced >= 3 && synced < next - 1);
	assert_ok(sl_wal_sync(w, synced)); /* durable before the failure */
	sl_wal_record r = {0, 1, 1, SL_WAL_DEL, "k", 1, NULL, 0};
	assert_int_equal(sl_wal_append(w, &r, NULL, NULL), SL_EIO);
	assert_int_equal(sl_wal_read_at(w, &loc, &rec, &buf), SL_EIO);
	/* The reader never gives what was not synced. */
	sl_wal_cursor_start(w, &cur);
	assert_ok(sl_wal_read_next(w, &cur, 1000, 1 << 20, count_cb, &last, &n));
	assert_int_equal(n, synced);
	assert_int_equal(last, synced);
	/* Nor does release delete past it. */
	assert_ok(sl_wal_release(w, UINT64_MAX));
	assert_true(file_exists(dir, SEG1));
	sl_wal_close(w);

	assert_int_equal(rmdir(path), 0);
	sl_wal_open_report rep;
	w = open_wal(dir, 400, 0, &rep);
	assert_true(rep.last_lsn >= synced);
	collect c = read_all(w);
	assert_int_equal(c.last, rep.last_lsn);
	sl_wal_close(w);
	sl_buf_free(&buf);
	tu_rmtree(dir);
	free(dir);
}

static void test_read_next_limits(void **state)
{
	char *dir = tu_tempdir();
	uint8_t value[50] = {0};
	sl_wal_record r = {0, 1, 1, SL_WAL_PUT, "key", 3, value, sizeof(value)};
	size_t rec = 8 + 27 + 3 + sizeof(value), n;
	sl_wal_cursor cur;
	uint64_t last = 0;
	(void)state;

	sl_wal *w = open_wal(dir, 0, 0, NULL);
	for (int i = 0; i < 10; i++)
		assert_ok(sl_wal_append(w, &r, NULL, NULL));
	assert_ok(sl_wal_sync(w, 10));
	sl_wal_cursor_start(w, &cur);
	assert_ok(sl_wal_read_next(w, &cur, 3, 1 << 20, count_cb, &last, &n));
	assert_int_equal(n, 3);
	assert_ok(sl_wal_read_next(w, &cur, 100, 1, count_cb, &last, &n));
	assert_int_equal(n, 1); /* at least one */
	assert_ok(sl_wal_read_next(w, &cur, 100, rec * 5 / 2, count_cb, &last, &n));
	assert_int_equal(n, 2); /* never past max_bytes after the first */
	assert_ok(sl_wal_read_next(w, &cur, 100, rec * 3, count_cb, &last, &n));
	assert_int_equal(n, 3);
	assert_ok(sl_wal_read_next(w, &cur, 100, 1 << 20, count_cb, &last, &n));
	assert_int_equal(n, 1);
	assert_int_equal(last, 10);
	assert_ok(sl_wal_read_next(w, &cur, 100, 1 << 20, count_cb, &last, &n));
	assert_int_equal(n, 0);
	assert_int_equal(cur.next_lsn, 11);

	sl_wal_close(w);
	tu_rmtree(dir);
	free(dir);

	/* A callback's refusal stops the read before that record. */
	collect c = {0, 0, 0, 3};
	dir = tu_tempdir();
	w = open_wal(dir, 0, 0, NULL);
	for (uint64_t i = 1; i <= 6; i++)
		put_next(w, i, NULL);
	assert_ok(sl_wal_sync(w, 6));
	sl_wal_cursor_start(w, &cur);
	assert_int_equal(sl_wal_read_next(w, &cur, 100, 1 << 20, collect_cb, &c, &n), 42);
	assert_int_equal(n, 2);
	assert_int_equal(cur.next_lsn, 3);
	c.stop_at = 0;
	assert_ok(sl_wal_read_next(w, &cur, 100, 1 << 20, collect_cb, &c, &n));
	assert_int_equal(n, 4);
	assert_int_equal(c.last, 6);
	sl_wal_close(w);
	tu_rmtree(dir);
	free(dir);
}

static void test_version_floor(void **state)
{
	char *dir = tu_tempdir();
	uint8_t value[100] = {0};
	sl_wal_record r = {0, 0, 1, SL_WAL_PUT, "key", 3, value, sizeof(value)};
	sl_wal_open_report rep;
	sl_wal_loc loc;
	uint64_t lsn;
	(void)state;

	for (int with_floor = 0; with_floor < 2; with_floor++) {
		sl_wal *w = open_wal(dir, 300, 0, NULL);
		for (r.version = 10; r.version <= 30; r.version += 10)
			assert_ok(sl_wal_append(w, &r, NULL, &loc));
		if (with_floor)
			sl_wal_set_version_floor(w, 1000);
		r.version = 5;
		do
			assert_ok(sl_wal_append(w, &r, &lsn, &loc));
		while (loc.segment == 1);
		assert_ok(sl_wal_sync(w, lsn));
		assert_ok(sl_wal_release(w, UINT64_MAX));
		assert_false(file_exists(dir, SEG1));
		sl_wal_close(w);

		w = open_wal(dir, 300, 0, &rep);
		/* Segment 2 holds version 5 only; its header keeps the rest. */
		assert_int_equal(rep.max_version, with_floor ? 1000 : 30);
		sl_wal_close(w);
		tu_rmtree(dir);
		assert_int_equal(mkdir(dir, 0755), 0);
	}
	tu_rmtree(dir);
	free(dir);
}

/* ------------------------------------------------------- group commit */

#define GC_THREADS 8
#define GC_EACH    2000

typedef struct gc_arg {
	sl_wal *w;
	int t;
	uint64_t lsns[GC_EACH];
} gc_arg;

static void gc_value(int t, int i, uint8_t out[16])
{
	for (int k = 0; k < 16; k++)
		out[k] = (uint8_t)(t * 131 + i * 7 + k);
}

static void *gc_main(void *p)
{
	gc_arg *a = p;
	char key[32];
	uint8_t value[16];
	for (int i = 0; i < GC_EACH; i++) {
		sl_wal_record r = {0, (uint64_t)i, 1, SL_WAL_PUT, key, 0, value, 16};
		r.key_len = (size_t)snprintf(key, sizeof(key), "t%d-%d", a->t, i);
		gc_value(a->t, i, value);
		if (sl_wal_append(a->w, &r, &a->lsns[i], NULL) != SL_OK ||
		    sl_wal_sync(a->w, a->lsns[i]) != SL_OK)
			return (void *)1;
	}
	return NULL;
}

typedef struct gc_check {
	gc_arg *args;
	sl_wal *w;
	uint64_t n, last; /* last: LSN of the last record seen (or before the first) */
	char error[600];
} gc_check;

/* Checks a record against what its thread appended. Runs on the drain
 * thread too, so it reports instead of asserting. */
static int gc_cb(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	gc_check *g = ctx;
	int t, i;
	uint8_t value[16];
	char key[32];
	(void)loc;
	snprintf(key, sizeof(key), "%.*s", (int)r->key_len, r->key);
	if (sscanf(key, "t%d-%d", &t, &i) != 2 || t < 0 || t >= GC_THREADS || i < 0 ||
	    i >= GC_EACH) {
		snprintf(g->error, sizeof(g->error), "LSN %llu: key %s", (unsigned long long)r->lsn,
		         key);
		return -1;
	}
	gc_value(t, i, value);
	if (r->lsn != g->last + 1 || g->args[t].lsns[i] != r->lsn || r->value_len != 16 ||
	    memcmp(r->value, value, 16) != 0) {
		snprintf(g->error, sizeof(g->error), "LSN %llu (after %llu): %s is wrong",
		         (unsigned long long)r->lsn, (unsigned long long)g->last, key);
		return -1;
	}
	g->last = r->lsn;
	g->n++;
	return 0;
}

/* The drain: reads what is synced while the writers write, and releases
 * it, so segments roll and go under the writers' feet. */
static void *gc_drain(void *p)
{
	gc_check *g = p;
	sl_wal_cursor cur;
	size_t n;

	sl_wal_cursor_start(g->w, &cur);
	while (g->n < GC_THREADS * GC_EACH) {
		int rc = sl_wal_read_next(g->w, &cur, 500, 32 << 10, gc_cb, g, &n);
		if (rc == SL_OK && n > 0)
			rc = sl_wal_release(g->w, g->last);
		if (rc != SL_OK) {
			if (!g->error[0])
				snprintf(g->error, sizeof(g->error), "drain: %s",
				         sl_error_last()->message);
			return (void *)1;
		}
		if (n == 0)
			sl_sleep_ms(1);
	}
	return NULL;
}

static void test_group_commit(void **state)
{
	char *dir = tu_tempdir();
	pthread_t th[GC_THREADS], drain;
	gc_arg *args = calloc(GC_THREADS, sizeof(gc_arg));
	sl_wal_open_report rep;
	sl_wal_stats st;
	sl_wal_cursor cur;
	size_t n;
	void *ret;
	(void)state;

	sl_wal *w = open_wal(dir, 64 << 10, 0, NULL);
	gc_check g = {args, w, 0, 0, ""};
	for (int t = 0; t < GC_THREADS; t++) {
		args[t].w = w;
		args[t].t = t;
		assert_int_equal(pthread_create(&th[t], NULL, gc_main, &args[t]), 0);
	}
	assert_int_equal(pthread_create(&drain, NULL, gc_drain, &g), 0);
	for (int t = 0; t < GC_THREADS; t++) {
		pthread_join(th[t], &ret);
		assert_null(ret);
		for (int i = 1; i < GC_EACH; i++)
			assert_true(args[t].lsns[i] > args[t].lsns[i - 1]);
	}
	pthread_join(drain, &ret);
	if (ret)
		fail_msg("%s", g.error);
	assert_int_equal(g.n, GC_THREADS * GC_EACH);
	sl_wal_stats_get(w, &st);
	fprintf(stderr,
	        "group commit: %d appends+syncs from %d threads, %llu fdatasyncs; "
	        "%llu segment(s) left after the drain released\n",
	        GC_THREADS * GC_EACH, GC_THREADS, (unsigned long long)st.syncs,
	        (unsigned long long)st.segments);
	assert_int_equal(st.last_lsn, GC_THREADS * GC_EACH);
	assert_int_equal(st.released_lsn, GC_THREADS * GC_EACH);
	assert_int_equal(st.segments, 1);
	assert_true(st.syncs < GC_THREADS * GC_EACH / 2);
	sl_wal_close(w);

	/* What the drain did not delete is still there, in order. */
	w = open_wal(dir, 64 << 10, 0, &rep);
	sl_wal_cursor_start(w, &cur);
	gc_check again = {args, w, 0, cur.next_lsn - 1, ""};
	do
		assert_int_equal(sl_wal_read_next(w, &cur, 5000, 1 << 20, gc_cb, &again, &n), 0);
	while (n > 0);
	assert_int_equal(again.n, rep.records);
	assert_int_equal(again.last, GC_THREADS * GC_EACH);
	sl_wal_close(w);
	free(args);
	tu_rmtree(dir);
	free(dir);
}

/* --------------------------------------------------------------- crash */

static void crash_child(const char *dir, int fd, uint64_t seed)
{
	tu_rng rng = {seed};
	sl_wal_options o = {dir, 64 << 10, 0};
	sl_wal_open_report rep;
	sl_wal *w;
	char key[32];
	uint8_t value[128];

	if (sl_wal_open(&w, &o, &rep) != SL_OK)
		_exit(3);
	for (uint64_t next = rep.last_lsn + 1;; next++) {
		sl_wal_record r = {0, next * 10, 1000 + next, SL_WAL_PUT, key, 0, value, 0};
		uint64_t lsn;
		r.key_len = key_for(next, key);
		if (next % 5 == 0)
			r.op = SL_WAL_DEL;
		else
			r.value_len = value_for(next, value);
		if (sl_wal_append(w, &r, &lsn, NULL) != SL_OK || lsn != next)
			_exit(4);
		if (tu_rng_below(&rng, 4) == 0)
			continue; /* acknowledged at "memory": not reported */
		if (sl_wal_sync(w, lsn) != SL_OK)
			_exit(5);
		if (write(fd, &lsn, sizeof(lsn)) != (ssize_t)sizeof(lsn))
			_exit(6);
	}
}

static void test_kill9(void **state)
{
	tu_rng rng = tu_rng_seeded("test_kill9");
	char *dir = tu_tempdir();
	uint64_t total_acks = 0;
	(void)state;

	for (int run = 0; run < 20; run++) {
		int fds[2], status;
		uint64_t lsn, max_ack = 0, min_ack = UINT64_MAX, n_acks = 0;
		sl_wal_open_report rep;

		assert_int_equal(pipe(fds), 0);
		uint64_t child_seed = tu_rng_next(&rng);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			crash_child(dir, fds[1], child_seed);
		}
		close(fds[1]);
		sl_sleep_ms(3 + tu_rng_below(&rng, 100));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("child exited early with status %d", WEXITSTATUS(status));
		while (read(fds[0], &lsn, sizeof(lsn)) == (ssize_t)sizeof(lsn)) {
			max_ack = lsn > max_ack ? lsn : max_ack;
			min_ack = lsn < min_ack ? lsn : min_ack;
			n_acks++;
		}
		close(fds[0]);

		sl_wal *w = open_wal(dir, 64 << 10, 0, &rep);
		collect c = read_all(w); /* checks every record's contents */
		assert_int_equal(c.count, rep.records);
		assert_int_equal(c.last, rep.last_lsn);
		if (n_acks > 0) {
			if (c.first > min_ack || c.last < max_ack)
				fail_msg("run %d: acknowledged LSNs %llu..%llu, the WAL holds "
				         "%llu..%llu",
				         run, (unsigned long long)min_ack,
				         (unsigned long long)max_ack, (unsigned long long)c.first,
				         (unsigned long long)c.last);
		}
		fprintf(stderr, "run %d: %llu acknowledged, WAL %llu..%llu, torn %llu bytes\n", run,
		        (unsigned long long)n_acks, (unsigned long long)c.first,
		        (unsigned long long)c.last, (unsigned long long)rep.torn_bytes);
		total_acks += n_acks;
		if (tu_rng_below(&rng, 3) == 0)
			assert_ok(sl_wal_release(w, rep.last_lsn));
		sl_wal_close(w);
	}
	assert_true(total_acks > 0);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	sl_log_set_level(SL_LOG_ERROR); /* not a line per torn tail */
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_append_sync_read),
	        cmocka_unit_test(test_reopen_continues),
	        cmocka_unit_test(test_roll_and_release),
	        cmocka_unit_test(test_torn_tail),
	        cmocka_unit_test(test_flipped_byte),
	        cmocka_unit_test(test_max_bytes),
	        cmocka_unit_test(test_append_out_of_memory),
	        cmocka_unit_test(test_large_record),
	        cmocka_unit_test(test_write_failure),
	        cmocka_unit_test(test_read_next_limits),
	        cmocka_unit_test(test_version_floor),
	        cmocka_unit_test(test_group_commit),
	        cmocka_unit_test(test_kill9),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
