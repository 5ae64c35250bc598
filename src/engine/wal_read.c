/*
 * The WAL's reading side (wal_internal.h; the design and the invariants
 * are at the top of wal.c): the codec of one record, a read window over a
 * segment file, and the two readers, sl_wal_read_at and the drain's cursor
 * (sl_wal_read_next). Open's replay in wal.c reads through the same
 * window and codec, so what open accepts is what the readers accept.
 *
 * A record lies in a segment after its 32-byte header (wal.c), records
 * back to back; every number is big-endian:
 *
 *     0  length n                4  (of the body: what follows the checksum)
 *     4  CRC-32C of the body     4
 *     8  body: lsn 8, version 8, wall_ms 8, op 1 (1 put, 2 delete),
 *        key length 2 (1..1024), key, value (the rest; empty for a delete)
 *
 * A record is bad when n is below the smallest body or above the largest,
 * when it runs past the end of the file, when the checksum differs, when
 * its lsn is not the one before plus one (the header's first LSN for the
 * first), when op is not 1 or 2, when the key length is 0, above 1024 or
 * past n, or when a delete has a value. The codec checks all but the LSN,
 * which its callers check since only they know the one expected.
 *
 * How the readers keep clear of the syncer and of release: "Reading" and
 * W6 at the top of wal.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "engine/wal_internal.h"

enum { REC_SHORT = 2 }; /* parse_record: more bytes needed */

/* ------------------------------------------------------------- helpers */

ssize_t wal_pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, p + got, n - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* The segment with that id, or NULL; under mu. */
static segment *find_seg(sl_wal *w, uint64_t id)
{
	if (w->n_segs == 0 || id < w->segs[0]->id || id - w->segs[0]->id >= w->n_segs)
		return NULL;
	return w->segs[id - w->segs[0]->id];
}

int wal_bad_record(sl_wal *w, uint64_t id, uint64_t off, const char *why)
{
	char name[WAL_SEG_NAME_LEN + 1];
	wal_seg_name(name, id);
	return sl_error_set(SL_ECORRUPT, "wal: %s/%s: bad record at offset %" PRIu64 ": %s", w->dir,
	                    name, off, why);
}

/* ----------------------------------------------------------- the codec */

void wal_encode_record(uint8_t *out, const sl_wal_record *r, uint64_t lsn, uint64_t wall_ms)
{
	uint8_t *body = out + WAL_REC_PREFIX;
	size_t n = WAL_REC_FIXED + r->key_len + r->value_len;

	sl_be64_put(body, lsn);
	sl_be64_put(body + 8, r->version);
	sl_be64_put(body + 16, wall_ms);
	body[24] = (uint8_t)r->op;
	body[25] = (uint8_t)(r->key_len >> 8);
	body[26] = (uint8_t)r->key_len;
	memcpy(body + WAL_REC_FIXED, r->key, r->key_len);
	if (r->value_len)
		memcpy(body + WAL_REC_FIXED + r->key_len, r->value, r->value_len);
	sl_be32_put(out, (uint32_t)n);
	sl_be32_put(out + 4, sl_crc32c(0, body, n));
}

/* WAL_REC_OK (*out, *total), REC_SHORT (*total: bytes needed, more than
 * avail) or WAL_REC_BAD (*why). */
static int parse_record(const uint8_t *p, size_t avail, sl_wal_record *out, size_t *total,
                        const char **why)
{
	const uint8_t *body = p + WAL_REC_PREFIX;
	uint32_t n;
	size_t key_len;

	*total = WAL_REC_PREFIX;
	if (avail < WAL_REC_PREFIX)
		return REC_SHORT;
	n = sl_be32_get(p);
	if (n < WAL_REC_FIXED + 1 || n > WAL_BODY_MAX) {
		*why = "bad length";
		return WAL_REC_BAD;
	}
	*total = WAL_REC_PREFIX + (size_t)n;
	if (avail < *total)
		return REC_SHORT;
	key_len = (size_t)body[25] << 8 | body[26];
	*why = sl_crc32c(0, body, n) != sl_be32_get(p + 4)        ? "checksum mismatch"
	       : body[24] != SL_WAL_PUT && body[24] != SL_WAL_DEL ? "bad op"
	       : key_len == 0 || key_len > WAL_KEY_MAX || key_len > n - WAL_REC_FIXED
	               ? "bad key length"
	       : body[24] == SL_WAL_DEL && key_len != n - WAL_REC_FIXED ? "a delete with a value"
	                                                                : NULL;
	if (*why)
		return WAL_REC_BAD;
	out->lsn = sl_be64_get(body);
	out->version = sl_be64_get(body + 8);
	out->wall_ms = sl_be64_get(body + 16);
	out->op = body[24];
	out->key = (const char *)body + WAL_REC_FIXED;
	out->key_len = key_len;
	out->value_len = n - WAL_REC_FIXED - key_len;
	out->value = out->value_len ? body + WAL_REC_FIXED + key_len : NULL;
	return WAL_REC_OK;
}

/* ----------------------------------------------------- the read window */

void wal_window_init(wal_window *win, int fd, uint64_t limit, sl_buf *buf, size_t ahead)
{
	*win = (wal_window){fd, limit, 0, buf, ahead};
	sl_buf_reset(buf);
}

/* Makes [off, off + n) readable at *p: SL_OK, REC_SHORT past the limit,
 * or an error. */
static int window_get(wal_window *win, uint64_t off, size_t n, const uint8_t **p)
{
	sl_buf *b = win->buf;
	size_t want = n > win->ahead ? n : win->ahead;
	ssize_t got;
	int rc;

	if (off > win->limit || n > win->limit - off)
		return REC_SHORT;
	if (off >= win->start && off - win->start + n <= b->len) {
		*p = b->data + (off - win->start);
		return SL_OK;
	}
	if (want > win->limit - off)
		want = (size_t)(win->limit - off);
	sl_buf_reset(b);
	rc = sl_buf_reserve(b, want);
	if (rc != SL_OK)
		return rc;
	got = wal_pread_all(win->fd, b->data, want, off);
	if (got < 0)
		return wal_io_fail("read", "segment", NULL);
	if ((size_t)got < n)
		return REC_SHORT; /* the file is shorter than we were told */
	b->len = (size_t)got;
	win->start = off;
	*p = b->data;
	return SL_OK;
}

int wal_read_record(wal_window *win, uint64_t off, sl_wal_record *out, size_t *total,
                    const char **why)
{
	const uint8_t *p = NULL;
	int rc = window_get(win, off, WAL_REC_PREFIX, &p);

	if (rc == SL_OK) {
		rc = parse_record(p, WAL_REC_PREFIX, out, total, why);
		if (rc == REC_SHORT) {
			rc = window_get(win, off, *total, &p);
			if (rc == SL_OK)
				rc = parse_record(p, *total, out, total, why);
		}
	}
	if (rc == REC_SHORT) {
		*why = "cut short";
		rc = WAL_REC_BAD;
	}
	return rc;
}

/* ------------------------------------------------------------- reading */

int sl_wal_read_at(sl_wal *w, const sl_wal_loc *loc, sl_wal_record *out, sl_buf *buf)
{
	const char *why = NULL;
	segment *seg;
	sl_wal_record rec;
	size_t total;
	wal_window win;
	int rc;

	pthread_mutex_lock(&w->mu);
	seg = find_seg(w, loc->segment);
	if (!seg || loc->offset < WAL_SEG_HEADER || loc->offset >= seg->size) {
		pthread_mutex_unlock(&w->mu);
		return sl_error_set(SL_ENOTFOUND,
		                    "wal: no record at segment %" PRIu64 " offset %" PRIu64,
		                    loc->segment, loc->offset);
	}
	seg->refs++;
	/* Buffered: the syncer writes it soon. */
	while (seg->written <= loc->offset && !w->failed)
		pthread_cond_wait(&w->done, &w->mu);
	if (seg->written <= loc->offset) {
		rc = wal_refuse_failed(w);
		goto out;
	}
	wal_window_init(&win, seg->fd, seg->written, buf, 4096);
	pthread_mutex_unlock(&w->mu);

	rc = wal_read_record(&win, loc->offset, &rec, &total, &why);
	if (rc == WAL_REC_BAD)
		rc = wal_bad_record(w, loc->segment, loc->offset, why);
	if (rc == SL_OK)
		*out = rec;
	pthread_mutex_lock(&w->mu);
out:
	wal_seg_unref(seg);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void sl_wal_cursor_start(sl_wal *w, sl_wal_cursor *c)
{
	pthread_mutex_lock(&w->mu);
	c->segment = w->segs[0]->id;
	c->offset = WAL_SEG_HEADER;
	c->next_lsn = w->segs[0]->first_lsn;
	pthread_mutex_unlock(&w->mu);
}

/* Points the cursor at the segment holding c->next_lsn (<= synced_lsn);
 * under mu. */
static int locate(sl_wal *w, sl_wal_cursor *c, segment **out)
{
	segment *seg = find_seg(w, c->segment);

	if (seg && seg->first_lsn <= c->next_lsn && c->next_lsn <= seg->last_lsn &&
	    c->offset >= WAL_SEG_HEADER) {
		*out = seg;
		return SL_OK;
	}
	if (c->next_lsn < w->segs[0]->first_lsn)
		return sl_error_set(SL_ENOTFOUND, "wal: LSN %" PRIu64 " was released", c->next_lsn);
	for (size_t i = 0; i < w->n_segs; i++) {
		seg = w->segs[i];
		if (seg->first_lsn == c->next_lsn && seg->last_lsn >= seg->first_lsn) {
			c->segment = seg->id;
			c->offset = WAL_SEG_HEADER;
			*out = seg;
			return SL_OK;
		}
	}
	return sl_error_set(SL_EINVAL,
	                    "wal: the cursor (segment %" PRIu64 ", offset %" PRIu64 ", LSN %" PRIu64
	                    ") does not match the WAL",
	                    c->segment, c->offset, c->next_lsn);
}

int sl_wal_read_next(sl_wal *w, sl_wal_cursor *c, size_t max_records, size_t max_bytes,
                     sl_wal_record_fn cb, void *ctx, size_t *n)
{
	sl_buf buf = SL_BUF_INIT(WAL_READ_AHEAD + WAL_REC_PREFIX + WAL_BODY_MAX);
	size_t given = 0, bytes = 0;
	int rc = SL_OK, full = 0;

	while (rc == SL_OK && !full && given < max_records) {
		uint64_t upto;
		segment *seg = NULL;
		wal_window win;

		pthread_mutex_lock(&w->mu);
		if (c->next_lsn > w->synced_lsn || (rc = locate(w, c, &seg)) != SL_OK) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		upto = seg->last_lsn < w->synced_lsn ? seg->last_lsn : w->synced_lsn;
		seg->refs++;
		wal_window_init(&win, seg->fd, seg->written, &buf, WAL_READ_AHEAD);
		pthread_mutex_unlock(&w->mu);

		while (given < max_records && c->next_lsn <= upto) {
			const char *why = "";
			sl_wal_record rec;
			sl_wal_loc loc = {seg->id, c->offset};
			size_t total;

			rc = wal_read_record(&win, c->offset, &rec, &total, &why);
			if (rc == WAL_REC_OK && rec.lsn != c->next_lsn) {
				why = "unexpected LSN";
				rc = WAL_REC_BAD;
			}
			if (rc == WAL_REC_BAD)
				rc = wal_bad_record(w, seg->id, c->offset, why);
			if (rc != SL_OK)
				break;
			if (given > 0 && bytes + total > max_bytes) {
				full = 1;
				break;
			}
			rc = cb(ctx, &rec, &loc);
			if (rc != 0)
				break;
			c->offset += total;
			c->next_lsn++;
			given++;
			bytes += total;
		}
		pthread_mutex_lock(&w->mu);
		wal_seg_unref(seg);
		pthread_mutex_unlock(&w->mu);
	}
	sl_buf_free(&buf);
	if (n)
		*n = given;
	return rc;
}
