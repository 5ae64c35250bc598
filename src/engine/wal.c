/*
 * The engine's write-ahead log. A write is acknowledged to a client (level
 * "local") only once sl_wal_sync has returned for its LSN, so everything
 * here is about which bytes are known to be on disk, in which order.
 *
 * Files. DIR/wal-<16 lowercase hex digits: segment id>.seg; ids are
 * consecutive (a gap is a lost file). Every number is big-endian.
 *
 *   segment header, 32 bytes:
 *     0  magic "SLWALSG1"        8
 *     8  segment id              8  (the one in the file name)
 *    16  first LSN               8  (of its first record, even if it has none yet;
 *                                    below 2^63, W4)
 *    24  version floor           8  (no version ever given out is above it or
 *                                    above a version in a record)
 *   records, from offset 32, back to back: length 4, CRC-32C 4, body (lsn,
 *     version, wall_ms, op, key length, key, value). Every byte of a
 *     record, and what makes one bad, is at the top of wal_read.c, with
 *     the codec and the readers.
 *
 * Writing. sl_wal_append encodes the record into `pending` (memory) under
 * the mutex, gives it the next LSN and its place (segment, offset) and
 * returns. A roll to a new segment is decided there too: the new segment
 * exists in memory only, its header is the first pending chunk for it.
 * One syncer thread swaps `pending` with its empty `inflight` batch (so
 * appenders are never blocked by disk I/O), and outside the mutex, chunk
 * by chunk: creates the file of a new segment, pwrite()s, and fdatasync()s
 * a segment before it writes a byte to the next one; for a file it created
 * it then fsyncs the directory. Then, under the mutex, synced_lsn becomes
 * the batch's last LSN and every waiter is woken: all appenders that came
 * during one write share its fdatasync (group commit). A failed write or
 * sync sets `failed` for good: the page cache may have dropped the bytes,
 * so nothing the WAL says afterwards could be trusted.
 *
 * Invariants:
 *  W1  synced_lsn >= x only after the bytes of every record <= x were
 *      written and fdatasync'd, and, for a segment the syncer created, the
 *      directory fsync'd after that: sl_wal_sync reports nothing else as
 *      durable. (An LSN synced before a failure stays durable; sync of it
 *      still says SL_OK.)
 *  W2  Only the last segment can end in a torn record. A segment is
 *      fdatasync'd before any byte of its successor is written, so a crash
 *      tears at most the newest file. Open cuts a bad tail there (only
 *      unsynced records can be in it, by W1) and calls a bad record in any
 *      other segment SL_ECORRUPT. A last segment shorter than its header,
 *      or whose header is all zeros, is a torn creation and is deleted.
 *  W3  A segment is deleted only when every record in it is released and
 *      synced, it is not the segment being appended to, and its successor's
 *      header is synced (so the first LSN and the version floor are never
 *      lost with it). Deletion goes oldest first, one directory fsync per
 *      file, so after a crash the remaining ids are still consecutive.
 *  W4  LSNs are consecutive within and across segments: segment k+1 starts
 *      at segment k's last LSN + 1. The oldest segment may start anywhere
 *      below LSN_LIMIT (2^63); a header past it is damage, not a WAL that
 *      ran for 2^63 appends, and refusing it keeps every LSN from wrapping.
 *  W5  A refused append (SL_EINVAL, SL_ETOOLARGE, SL_EBUSY, SL_ENOMEM, or
 *      SL_EIO after a failure) changes nothing: every allocation is made
 *      before the first change.
 *  W6  The syncer touches only segments that hold records above
 *      synced_lsn; release touches only segments at or below it; readers
 *      hold a reference, so a segment's fd is closed when the last of
 *      them lets go.
 *
 * Reading (wal_read.c). read_at and read_next pread() the files, holding
 * a reference on the segment (W6); read_next gives only records <=
 * synced_lsn, so the drain never sees a record that a crash could still
 * take back, and read_at of a buffered record waits for the syncer to
 * write it. Open's replay reads through the same codec. The
 * stats' oldest_wall_ms is the first record's wall_ms of the oldest
 * segment holding an unreleased record: cheap, and at most one segment's
 * worth of records older than the exact answer.
 *
 * Memory: pending holds at most about PENDING_MAX bytes; an append waits
 * for the syncer to take the batch before it goes past that.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/wal_internal.h"

#define SEG_MAGIC         "SLWALSG1"
#define PENDING_MAX       ((size_t)64 << 20)
#define INFLIGHT_KEEP     ((size_t)4 << 20)
#define DEFAULT_SEG_BYTES ((uint64_t)64 << 20)
#define LSN_LIMIT         ((uint64_t)1 << 63) /* W4 */

/* ------------------------------------------------------------- helpers */

int wal_io_fail(const char *what, const char *dir, const char *name)
{
	int err = errno;
	char cause[SL_ERROR_CAUSE_MAX];

	snprintf(cause, sizeof(cause), "errno=%d (%s)", err, strerror(err));
	return sl_error_set_cause(SL_EIO, cause, "wal: %s %s%s%s: %s", what, dir, name ? "/" : "",
	                          name ? name : "", strerror(err));
}

void wal_seg_name(char out[WAL_SEG_NAME_LEN + 1], uint64_t id)
{
	snprintf(out, WAL_SEG_NAME_LEN + 1, "wal-%016" PRIx64 ".seg", id);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = EIO;
			return -1;
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int sync_fd(int fd, int data_only)
{
	int r;
	do
		r = data_only ? fdatasync(fd) : fsync(fd);
	while (r != 0 && errno == EINTR);
	return r;
}

void wal_seg_unref(segment *seg)
{
	if (--seg->refs > 0)
		return;
	if (seg->fd >= 0)
		close(seg->fd);
	sl_free(seg);
}

int wal_refuse_failed(sl_wal *w)
{
	return sl_error_set_cause(SL_EIO, w->fail_cause, "%s", w->fail_msg);
}

static void batch_reset(batch *b)
{
	sl_buf_reset(&b->bytes);
	b->n_chunks = 0;
	b->last_lsn = 0;
}

static void batch_free(batch *b)
{
	sl_buf_free(&b->bytes);
	sl_free(b->chunks);
}

/* Room for `extra` more chunks. */
static int batch_room(batch *b, size_t extra)
{
	while (b->cap_chunks < b->n_chunks + extra) {
		chunk *grown = sl_grow(b->chunks, &b->cap_chunks, b->cap_chunks, sizeof(chunk), 16);
		if (!grown)
			return SL_ENOMEM;
		b->chunks = grown;
	}
	return SL_OK;
}

/* Adds n bytes (already in b->bytes at its end) for seg at offset. */
static void batch_note(batch *b, segment *seg, uint64_t offset, size_t n)
{
	chunk *last = b->n_chunks ? &b->chunks[b->n_chunks - 1] : NULL;
	if (last && last->seg == seg) {
		last->len += n;
		return;
	}
	b->chunks[b->n_chunks++] = (chunk){seg, offset, b->bytes.len - n, n};
}

/* ------------------------------------------------------------ segments */

static void encode_header(uint8_t out[WAL_SEG_HEADER], const segment *seg)
{
	memcpy(out, SEG_MAGIC, 8);
	sl_be64_put(out + 8, seg->id);
	sl_be64_put(out + 16, seg->first_lsn);
	sl_be64_put(out + 24, seg->floor);
}

/* ---------------------------------------------------------------- open */

static int open_dir(sl_wal *w)
{
	size_t n = strlen(w->dir) + 4;
	char *parent;
	int fd;

	if (mkdir(w->dir, 0755) == 0) {
		/* The new directory's entry: fsync its parent. */
		parent = sl_malloc(n);
		if (!parent)
			return SL_ENOMEM;
		snprintf(parent, n, "%s/..", w->dir);
		fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		sl_free(parent);
		if (fd < 0 || sync_fd(fd, 0) != 0) {
			int rc = wal_io_fail("sync the parent of", w->dir, NULL);
			if (fd >= 0)
				close(fd);
			return rc;
		}
		close(fd);
	} else if (errno != EEXIST) {
		return wal_io_fail("create the directory", w->dir, NULL);
	}
	w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0)
		return wal_io_fail("open the directory", w->dir, NULL);
	if (flock(w->dir_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			return sl_error_set(SL_EBUSY, "wal: %s is open elsewhere", w->dir);
		return wal_io_fail("lock the directory", w->dir, NULL);
	}
	return SL_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The segment ids in the directory, sorted. */
static int list_segments(sl_wal *w, uint64_t **ids, size_t *n)
{
	DIR *d = opendir(w->dir);
	struct dirent *e;
	size_t cap = 0;
	int rc = SL_OK;

	if (!d)
		return wal_io_fail("list", w->dir, NULL);
	while ((e = readdir(d)) != NULL) {
		const char *s = e->d_name;
		uint64_t *grown;
		if (strlen(s) != WAL_SEG_NAME_LEN || strncmp(s, "wal-", 4) != 0 ||
		    strcmp(s + 20, ".seg") != 0 || strspn(s + 4, "0123456789abcdef") != 16)
			continue;
		grown = sl_grow(*ids, &cap, *n, sizeof(uint64_t), 16);
		if (!grown) {
			rc = SL_ENOMEM;
			break;
		}
		*ids = grown;
		(*ids)[(*n)++] = strtoull(s + 4, NULL, 16);
	}
	closedir(d);
	if (*n > 1)
		qsort(*ids, *n, sizeof(uint64_t), cmp_u64);
	return rc;
}

/* Reads and checks segment id (W2, W4), cutting a torn tail or deleting a
 * torn creation if it is the last; adds it to w->segs. */
static int scan_segment(sl_wal *w, uint64_t id, int is_last, sl_buf *buf, sl_wal_open_report *rep)
{
	static const uint8_t zero[WAL_SEG_HEADER];
	segment *prev = w->n_segs ? w->segs[w->n_segs - 1] : NULL, *seg, **grown;
	char name[WAL_SEG_NAME_LEN + 1], why_lsn[96];
	uint8_t header[WAL_SEG_HEADER] = {0};
	uint64_t off = WAL_SEG_HEADER, lsn, size;
	sl_wal_record rec;
	struct stat st;
	wal_window win;
	int rc = SL_OK;

	wal_seg_name(name, id);
	seg = sl_calloc(1, sizeof(*seg));
	if (!seg)
		return SL_ENOMEM;
	*seg = (segment){.id = id, .fd = -1, .refs = 1};
	seg->fd = openat(w->dir_fd, name, O_RDWR | O_CLOEXEC);
	if (seg->fd < 0 || fstat(seg->fd, &st) != 0 ||
	    (st.st_size >= WAL_SEG_HEADER &&
	     wal_pread_all(seg->fd, header, WAL_SEG_HEADER, 0) != WAL_SEG_HEADER)) {
		rc = wal_io_fail("read", w->dir, name);
		goto cleanup;
	}
	size = (uint64_t)st.st_size;
	if (is_last && (size < WAL_SEG_HEADER || memcmp(header, zero, WAL_SEG_HEADER) == 0)) {
		/* W2: torn at creation, it never held a synced record. */
		if (unlinkat(w->dir_fd, name, 0) != 0 || sync_fd(w->dir_fd, 0) != 0) {
			rc = wal_io_fail("delete the torn segment", w->dir, name);
			goto cleanup;
		}
		sl_log(SL_LOG_WARN, "wal: deleted a segment torn at creation",
		       "file=%s/%s bytes=%" PRIu64, w->dir, name, size);
		rep->torn_bytes += size;
		goto cleanup;
	}
	if (prev && id != prev->id + 1) {
		rc = sl_error_set(SL_ECORRUPT, "wal: %s/wal-%016" PRIx64 ".seg is missing", w->dir,
		                  prev->id + 1);
		goto cleanup;
	}
	if (size < WAL_SEG_HEADER || memcmp(header, SEG_MAGIC, 8) != 0 ||
	    sl_be64_get(header + 8) != id || sl_be64_get(header + 16) == 0 ||
	    sl_be64_get(header + 16) >= LSN_LIMIT) {
		rc = sl_error_set(SL_ECORRUPT, "wal: %s/%s: bad segment header", w->dir, name);
		goto cleanup;
	}
	seg->first_lsn = sl_be64_get(header + 16);
	seg->floor = sl_be64_get(header + 24);
	if (prev && seg->first_lsn != prev->last_lsn + 1) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "wal: %s/%s starts at LSN %" PRIu64
		                  ", the segment before ends at %" PRIu64,
		                  w->dir, name, seg->first_lsn, prev->last_lsn);
		goto cleanup;
	}
	wal_window_init(&win, seg->fd, size, buf, WAL_READ_AHEAD);
	for (lsn = seg->first_lsn; off < size; lsn++) {
		const char *why = NULL;
		size_t total;
		int r = wal_read_record(&win, off, &rec, &total, &why);
		if (r < 0) {
			rc = r;
			goto cleanup;
		}
		if (r == WAL_REC_OK && rec.lsn != lsn) {
			snprintf(why_lsn, sizeof(why_lsn),
			         "LSN %" PRIu64 " where %" PRIu64 " belongs", rec.lsn, lsn);
			why = why_lsn;
			r = WAL_REC_BAD;
		}
		if (r == WAL_REC_BAD && !is_last) {
			rc = wal_bad_record(w, id, off, why);
			goto cleanup;
		}
		if (r == WAL_REC_BAD) {
			if (ftruncate(seg->fd, (off_t)off) != 0 || sync_fd(seg->fd, 1) != 0) {
				rc = wal_io_fail("cut the torn tail of", w->dir, name);
				goto cleanup;
			}
			sl_log(SL_LOG_WARN, "wal: cut a torn tail",
			       "file=%s/%s offset=%" PRIu64 " bytes=%" PRIu64 " why=\"%s\"", w->dir,
			       name, off, size - off, why);
			rep->torn_bytes += size - off;
			break;
		}
		if (lsn == seg->first_lsn)
			seg->first_wall_ms = rec.wall_ms;
		if (rec.version > w->max_version)
			w->max_version = rec.version;
		rep->records++;
		off += total;
	}
	seg->last_lsn = lsn - 1;
	seg->size = seg->written = off;
	if (seg->floor > w->max_version)
		w->max_version = seg->floor;
	grown = sl_grow(w->segs, &w->cap_segs, w->n_segs, sizeof(segment *), 8);
	if (!grown) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	w->segs = grown;
	w->segs[w->n_segs++] = seg;
	seg = NULL;
cleanup:
	if (seg)
		wal_seg_unref(seg);
	return rc;
}

/* Starts segment id after the last one, in memory: its header becomes the
 * first pending chunk for it, and the syncer creates the file. Under mu,
 * with room in pending for the header and a chunk; fails (SL_ENOMEM)
 * before any change. */
static int start_segment(sl_wal *w, uint64_t id)
{
	segment **grown = sl_grow(w->segs, &w->cap_segs, w->n_segs, sizeof(segment *), 8);
	segment *seg = grown ? sl_calloc(1, sizeof(*seg)) : NULL;

	if (grown)
		w->segs = grown;
	if (!seg)
		return SL_ENOMEM;
	*seg = (segment){.id = id,
	                 .first_lsn = w->last_lsn + 1,
	                 .last_lsn = w->last_lsn,
	                 .size = WAL_SEG_HEADER,
	                 .floor = w->version_floor > w->max_version ? w->version_floor
	                                                            : w->max_version,
	                 .fd = -1,
	                 .refs = 1};
	encode_header(w->pending.bytes.data + w->pending.bytes.len, seg);
	w->pending.bytes.len += WAL_SEG_HEADER;
	batch_note(&w->pending, seg, 0, WAL_SEG_HEADER);
	w->segs[w->n_segs++] = seg;
	w->bytes += WAL_SEG_HEADER;
	return SL_OK;
}

/* Wakes the writers whose LSN is durable (all of them once the WAL
 * failed), each on its own condition. Under mu. */
static void wake_waiters(sl_wal *w)
{
	wal_waiter **p = &w->waiters;
	while (*p) {
		wal_waiter *x = *p;
		if (x->lsn <= w->synced_lsn || w->failed) {
			*p = x->next;
			x->woken = 1;
			pthread_cond_signal(&x->cond);
		} else {
			p = &x->next;
		}
	}
}

static void *syncer_main(void *arg);

static void wal_free(sl_wal *w)
{
	for (size_t i = 0; i < w->n_segs; i++)
		wal_seg_unref(w->segs[i]);
	sl_free(w->segs);
	batch_free(&w->pending);
	batch_free(&w->inflight);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	if (w->dir_fd >= 0)
		close(w->dir_fd); /* and the lock */
	sl_free(w->dir);
	sl_free(w);
}

int sl_wal_open(sl_wal **out, const sl_wal_options *o, sl_wal_open_report *report)
{
	sl_wal_open_report rep = {0, 0, 0, 0};
	sl_buf buf = SL_BUF_INIT(WAL_READ_AHEAD + WAL_REC_PREFIX + WAL_BODY_MAX);
	uint64_t *ids = NULL;
	size_t n_ids = 0;
	sl_wal *w;
	int rc;

	if (!out || !o || !o->dir || !*o->dir)
		return sl_error_set(SL_EINVAL, "wal: no directory");
	w = sl_calloc(1, sizeof(*w));
	if (!w)
		return SL_ENOMEM;
	w->dir_fd = -1;
	w->segment_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEG_BYTES;
	w->max_bytes = o->max_bytes;
	sl_buf_init(&w->pending.bytes,
	            PENDING_MAX + WAL_REC_PREFIX + WAL_BODY_MAX + WAL_SEG_HEADER);
	sl_buf_init(&w->inflight.bytes,
	            PENDING_MAX + WAL_REC_PREFIX + WAL_BODY_MAX + WAL_SEG_HEADER);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	w->dir = sl_strdup(o->dir);
	rc = w->dir ? open_dir(w) : SL_ENOMEM;
	if (rc == SL_OK)
		rc = list_segments(w, &ids, &n_ids);
	for (size_t i = 0; rc == SL_OK && i < n_ids; i++)
		rc = scan_segment(w, ids[i], i + 1 == n_ids, &buf, &rep);
	for (size_t i = 0; i < w->n_segs; i++)
		w->bytes += w->segs[i]->size;
	if (w->n_segs > 0)
		w->last_lsn = w->synced_lsn = w->segs[w->n_segs - 1]->last_lsn;
	atomic_store(&w->synced_seen, w->synced_lsn);
	if (rc == SL_OK && w->n_segs == 0) {
		/* None, or only one torn at creation: start (again). */
		rc = sl_buf_reserve(&w->pending.bytes, WAL_SEG_HEADER);
		if (rc == SL_OK)
			rc = batch_room(&w->pending, 1);
		if (rc == SL_OK)
			rc = start_segment(w, n_ids ? ids[n_ids - 1] : 1);
	}
	if (rc != SL_OK)
		goto cleanup;
	w->released_lsn = w->segs[0]->first_lsn - 1;
	if (pthread_create(&w->syncer, NULL, syncer_main, w) != 0) {
		rc = sl_error_set(SL_EINTERNAL, "wal: cannot start the syncer thread");
		goto cleanup;
	}
	w->syncer_running = 1;
	/* A segment started here exists on disk before open returns. */
	pthread_mutex_lock(&w->mu);
	while (w->segs[0]->written == 0 && !w->failed)
		pthread_cond_wait(&w->done, &w->mu);
	rc = w->failed ? wal_refuse_failed(w) : SL_OK;
	pthread_mutex_unlock(&w->mu);
	if (rc != SL_OK)
		goto cleanup;
	rep.last_lsn = w->last_lsn;
	rep.max_version = w->max_version;
	if (report)
		*report = rep;
	*out = w;
	w = NULL;
cleanup:
	sl_wal_close(w);
	sl_free(ids);
	sl_buf_free(&buf);
	return rc;
}

void sl_wal_close(sl_wal *w)
{
	if (!w)
		return;
	if (w->syncer_running) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_signal(&w->work);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->syncer, NULL);
	}
	wal_free(w);
}

/* -------------------------------------------------------------- append */

int sl_wal_append(sl_wal *w, const sl_wal_record *r, uint64_t *lsn, sl_wal_loc *loc)
{
	segment *seg;
	size_t total, need;
	uint64_t wall_ms, offset;
	int rc = SL_OK, roll;

	if (!w || !r || (r->op != SL_WAL_PUT && r->op != SL_WAL_DEL) || !r->key ||
	    r->key_len == 0 || r->key_len > WAL_KEY_MAX || (r->value_len && !r->value) ||
	    (r->op == SL_WAL_DEL && r->value_len))
		return sl_error_set(SL_EINVAL,
		                    "wal: bad record (op %d, key of %zu bytes, value of %zu)",
		                    r ? r->op : 0, r ? r->key_len : 0, r ? r->value_len : 0);
	if (r->value_len > SL_WAL_VALUE_MAX)
		return sl_error_set(SL_ETOOLARGE, "wal: a value of %zu bytes, at most %zu",
		                    r->value_len, SL_WAL_VALUE_MAX);
	total = WAL_REC_PREFIX + WAL_REC_FIXED + r->key_len + r->value_len;
	wall_ms = r->wall_ms ? r->wall_ms : sl_clock_wall_ms();

	pthread_mutex_lock(&w->mu);
	while (!w->failed && w->pending.bytes.len > 0 && w->pending.bytes.len + total > PENDING_MAX)
		pthread_cond_wait(&w->done, &w->mu);
	if (w->failed) {
		rc = wal_refuse_failed(w);
		goto out;
	}
	seg = w->segs[w->n_segs - 1];
	roll = seg->size > WAL_SEG_HEADER && seg->size + total > w->segment_bytes;
	need = total + (roll ? WAL_SEG_HEADER : 0);
	if (w->max_bytes && (w->bytes > w->max_bytes || need > w->max_bytes - w->bytes)) {
		rc = sl_error_set(SL_EBUSY, "the WAL is full: %" PRIu64 " bytes of %" PRIu64,
		                  w->bytes, w->max_bytes);
		goto out;
	}
	/* W5: what can fail comes before any change (start_segment's too). */
	rc = sl_buf_reserve(&w->pending.bytes, need);
	if (rc == SL_OK)
		rc = batch_room(&w->pending, 2);
	if (rc == SL_OK && roll)
		rc = start_segment(w, seg->id + 1);
	if (rc != SL_OK)
		goto out;
	seg = w->segs[w->n_segs - 1];
	offset = seg->size;
	wal_encode_record(w->pending.bytes.data + w->pending.bytes.len, r, w->last_lsn + 1,
	                  wall_ms);
	w->pending.bytes.len += total;
	w->pending.bytes.data[w->pending.bytes.len] = '\0';
	batch_note(&w->pending, seg, offset, total);
	w->pending.last_lsn = ++w->last_lsn;
	if (seg->last_lsn < seg->first_lsn)
		seg->first_wall_ms = wall_ms;
	seg->last_lsn = w->last_lsn;
	seg->size += total;
	w->bytes += total;
	if (r->version > w->max_version)
		w->max_version = r->version;
	if (lsn)
		*lsn = w->last_lsn;
	if (loc)
		*loc = (sl_wal_loc){seg->id, offset};
	pthread_cond_signal(&w->work);
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void sl_wal_set_version_floor(sl_wal *w, uint64_t version)
{
	pthread_mutex_lock(&w->mu);
	if (version > w->version_floor)
		w->version_floor = version;
	pthread_mutex_unlock(&w->mu);
}

/* -------------------------------------------------------------- syncer */

/* Writes a batch: W1 and W2's order. Outside mu. */
static int write_batch(sl_wal *w, batch *b, uint64_t *syncs)
{
	char name[WAL_SEG_NAME_LEN + 1];
	int created = 0;

	for (size_t i = 0; i < b->n_chunks; i++) {
		chunk *c = &b->chunks[i];
		wal_seg_name(name, c->seg->id);
		if (c->offset == 0) {
			int fd = openat(w->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			                0644);
			if (fd < 0)
				return wal_io_fail("create", w->dir, name);
			pthread_mutex_lock(&w->mu);
			c->seg->fd = fd;
			pthread_mutex_unlock(&w->mu);
			created = 1;
		}
		if (pwrite_all(c->seg->fd, b->bytes.data + c->start, c->len, c->offset) != 0)
			return wal_io_fail("write", w->dir, name);
		if (i + 1 < b->n_chunks && b->chunks[i + 1].seg == c->seg)
			continue;
		if (sync_fd(c->seg->fd, 1) != 0)
			return wal_io_fail("fdatasync", w->dir, name);
		(*syncs)++;
		if (created && sync_fd(w->dir_fd, 0) != 0)
			return wal_io_fail("sync the directory", w->dir, NULL);
		created = 0;
	}
	return SL_OK;
}

static void *syncer_main(void *arg)
{
	sl_wal *w = arg;
	batch spare;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		uint64_t syncs = 0;
		int rc;

		while (!w->stop && w->pending.n_chunks == 0)
			pthread_cond_wait(&w->work, &w->mu);
		if (w->pending.n_chunks == 0)
			break; /* stopped, and everything is written */
		if (w->failed) {
			batch_reset(&w->pending);
			wake_waiters(w);
			pthread_cond_broadcast(&w->done);
			continue;
		}
		spare = w->inflight;
		w->inflight = w->pending;
		w->pending = spare;
		pthread_cond_broadcast(&w->done); /* room in pending */
		pthread_mutex_unlock(&w->mu);

		rc = write_batch(w, &w->inflight, &syncs);

		pthread_mutex_lock(&w->mu);
		w->syncs += syncs;
		if (rc != SL_OK) {
			const sl_error *e = sl_error_last();
			w->failed = 1;
			snprintf(w->fail_msg, sizeof(w->fail_msg), "%s", e->message);
			snprintf(w->fail_cause, sizeof(w->fail_cause), "%s", e->cause);
			sl_log(SL_LOG_ERROR, "wal: write failed, refusing every write from now on",
			       "error=\"%s\"", e->message);
		} else {
			for (size_t i = 0; i < w->inflight.n_chunks; i++) {
				chunk *c = &w->inflight.chunks[i];
				c->seg->written = c->offset + c->len;
			}
			if (w->inflight.last_lsn > w->synced_lsn)
				w->synced_lsn = w->inflight.last_lsn;
		}
		batch_reset(&w->inflight);
		if (w->inflight.bytes.cap > INFLIGHT_KEEP)
			sl_buf_free(&w->inflight.bytes);
		atomic_store(&w->synced_seen, w->synced_lsn);
		wake_waiters(w);
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int sl_wal_sync(sl_wal *w, uint64_t lsn)
{
	int rc = SL_OK;

	pthread_mutex_lock(&w->mu);
	if (lsn > w->last_lsn) {
		rc = sl_error_set(SL_EINVAL,
		                  "wal: LSN %" PRIu64 " was not appended (last %" PRIu64 ")", lsn,
		                  w->last_lsn);
		goto out;
	}
	if (w->synced_lsn < lsn && !w->failed) {
		wal_waiter me = {lsn, PTHREAD_COND_INITIALIZER, 0, w->waiters};
		w->waiters = &me;
		while (!me.woken) /* the syncer unlinks me before it wakes me */
			pthread_cond_wait(&me.cond, &w->mu);
		pthread_cond_destroy(&me.cond);
	}
	if (w->synced_lsn < lsn)
		rc = wal_refuse_failed(w);
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

uint64_t sl_wal_synced_lsn(sl_wal *w)
{
	return atomic_load(&w->synced_seen);
}

/* ------------------------------------------------------------- release */

int sl_wal_release(sl_wal *w, uint64_t lsn)
{
	char name[WAL_SEG_NAME_LEN + 1];
	int rc = SL_OK;

	pthread_mutex_lock(&w->mu);
	if (lsn > w->synced_lsn)
		lsn = w->synced_lsn;
	if (lsn > w->released_lsn)
		w->released_lsn = lsn;
	pthread_mutex_unlock(&w->mu);

	for (;;) {
		segment *seg = NULL;

		/* W3; only this thread removes segments, so seg stays listed. */
		pthread_mutex_lock(&w->mu);
		if (w->n_segs > 1 && w->segs[0]->last_lsn <= lsn && w->segs[1]->written > 0)
			seg = w->segs[0];
		pthread_mutex_unlock(&w->mu);
		if (!seg)
			break;
		wal_seg_name(name, seg->id);
		if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT) {
			rc = wal_io_fail("delete", w->dir, name);
			break;
		}
		pthread_mutex_lock(&w->mu);
		memmove(w->segs, w->segs + 1, (w->n_segs - 1) * sizeof(segment *));
		w->n_segs--;
		w->bytes -= seg->size;
		wal_seg_unref(seg);
		pthread_mutex_unlock(&w->mu);
		if (sync_fd(w->dir_fd, 0) != 0) {
			rc = wal_io_fail("sync the directory", w->dir, NULL);
			break;
		}
	}
	return rc;
}

void sl_wal_stats_get(sl_wal *w, sl_wal_stats *out)
{
	pthread_mutex_lock(&w->mu);
	out->bytes = w->bytes;
	out->segments = w->n_segs;
	out->last_lsn = w->last_lsn;
	out->synced_lsn = w->synced_lsn;
	out->released_lsn = w->released_lsn;
	out->syncs = w->syncs;
	out->oldest_wall_ms = 0;
	for (size_t i = 0; i < w->n_segs; i++) {
		const segment *seg = w->segs[i];
		if (seg->last_lsn > w->released_lsn && seg->last_lsn >= seg->first_lsn) {
			out->oldest_wall_ms = seg->first_wall_ms;
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
}
