/*
 * What the WAL's two modules share: wal.c (open and replay of segments,
 * append, the syncer, release, stats; its opening comment has the design
 * and the invariants W1..W6) and wal_read.c (the record codec, whose
 * opening comment has every byte of a record, and the readers: read_at and
 * the drain's cursor). Nothing here is for the rest of the engine.
 */
#ifndef SLUICE_ENGINE_WAL_INTERNAL_H
#define SLUICE_ENGINE_WAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "engine/wal.h"

#define WAL_SEG_HEADER   32
#define WAL_SEG_NAME_LEN 24 /* "wal-" + 16 hex + ".seg" */
#define WAL_REC_PREFIX   8  /* length and checksum */
#define WAL_REC_FIXED    27 /* lsn, version, wall_ms, op, key length */
#define WAL_KEY_MAX      1024
#define WAL_BODY_MAX     (WAL_REC_FIXED + WAL_KEY_MAX + SL_WAL_VALUE_MAX)
#define WAL_READ_AHEAD   ((size_t)256 << 10)

/* What wal_read_record says besides a negative error: a good record, or a
 * bad one (checksum, fields, or cut short by the end of what is written). */
enum { WAL_REC_OK = 0, WAL_REC_BAD = 1 };

typedef struct segment {
	uint64_t id;
	uint64_t first_lsn;
	uint64_t last_lsn; /* of its last record, buffered ones too; first_lsn - 1 if none */
	uint64_t size;     /* bytes, buffered ones too */
	uint64_t written;  /* bytes written and synced (W1) */
	uint64_t floor;
	uint64_t first_wall_ms; /* of its first record */
	int fd;                 /* -1 until the syncer creates the file */
	int refs;               /* the list's, and one per reader */
} segment;

/* Bytes of one batch destined for one segment. */
typedef struct chunk {
	segment *seg;
	uint64_t offset; /* in the file; 0: the file is to be created */
	size_t start;    /* in the batch's bytes */
	size_t len;
} chunk;

typedef struct batch {
	sl_buf bytes;
	chunk *chunks;
	size_t n_chunks, cap_chunks;
	uint64_t last_lsn;
} batch;

/* A writer waiting in sl_wal_sync, on its own condition variable: the
 * syncer wakes only the writers whose LSN it made durable, not every
 * waiter at every sync (which cost a wake-up per waiter per sync). */
typedef struct wal_waiter {
	uint64_t lsn;
	pthread_cond_t cond;
	int woken;
	struct wal_waiter *next;
} wal_waiter;

struct sl_wal {
	char *dir;
	int dir_fd;
	uint64_t segment_bytes, max_bytes;
	pthread_mutex_t mu;
	pthread_cond_t work; /* the syncer waits for pending bytes or stop */
	pthread_cond_t done; /* a batch was taken or finished, or the WAL failed */
	pthread_t syncer;
	int syncer_running;
	segment **segs; /* by id, consecutive; the last one is appended to */
	size_t n_segs, cap_segs;
	batch pending;  /* under mu */
	batch inflight; /* the syncer's own */
	uint64_t last_lsn, synced_lsn, released_lsn;
	_Atomic uint64_t synced_seen; /* synced_lsn, readable without mu */
	wal_waiter *waiters;          /* under mu */
	uint64_t version_floor, max_version;
	uint64_t bytes, syncs;
	int stop, failed;
	char fail_msg[SL_ERROR_MSG_MAX];
	char fail_cause[SL_ERROR_CAUSE_MAX];
};

/* ---------------------------------------------------- wal.c: helpers */

/* SL_EIO with errno as the cause: "wal: <what> <dir>[/<name>]: ...". */
int wal_io_fail(const char *what, const char *dir, const char *name);
void wal_seg_name(char out[WAL_SEG_NAME_LEN + 1], uint64_t id);
/* Drops a reference; the last one closes the file and frees. Under mu
 * once the syncer runs. */
void wal_seg_unref(segment *seg);
/* The SL_EIO of a WAL that failed for good (w->fail_msg). Under mu. */
int wal_refuse_failed(sl_wal *w);

/* ---------------------------------------------- wal_read.c: the codec */

/* Writes r (checked by the caller) with lsn and wall_ms at out, which has
 * room for WAL_REC_PREFIX + WAL_REC_FIXED + key_len + value_len bytes. */
void wal_encode_record(uint8_t *out, const sl_wal_record *r, uint64_t lsn, uint64_t wall_ms);

/* A read window over [0, limit) of a file, in buf: sequential records cost
 * one pread per `ahead` bytes. */
typedef struct wal_window {
	int fd;
	uint64_t limit;
	uint64_t start; /* file offset of buf->data[0] */
	sl_buf *buf;
	size_t ahead;
} wal_window;

void wal_window_init(wal_window *win, int fd, uint64_t limit, sl_buf *buf, size_t ahead);
/* The record at off: WAL_REC_OK (*out pointing into the window's buffer,
 * valid until the next read; *total its bytes), WAL_REC_BAD (*why; a record
 * cut short by the limit too) or a negative error. The caller checks the
 * LSN. */
int wal_read_record(wal_window *win, uint64_t off, sl_wal_record *out, size_t *total,
                    const char **why);
/* SL_ECORRUPT naming the segment's file and the offset. */
int wal_bad_record(sl_wal *w, uint64_t id, uint64_t off, const char *why);
/* Bytes read (fewer than n only at the end of the file), or -1 (errno). */
ssize_t wal_pread_all(int fd, uint8_t *p, size_t n, uint64_t off);

#endif
