/*
 * The engine's local write-ahead log: append-only segment files in one
 * directory, a checksum per record, group commit (many appenders share one
 * fdatasync), replay at open with a torn tail cut at the last good record,
 * a reader for the drain, and deletion of segments once L3 holds them.
 *
 * Files: DIR/wal-<16 hex digits: segment id>.seg. A segment starts with a
 * 32-byte header and holds whole records; the opening comments of wal.c
 * (segments, and the invariants: what is durable when, what open cuts)
 * and wal_read.c (records) have every byte.
 * One handle at a time: the directory is locked (flock) while open.
 *
 * Thread safety: append, sync, stats and read_at may be called from any
 * thread; the cursor functions and release from one (the drain).
 */
#ifndef SLUICE_ENGINE_WAL_H
#define SLUICE_ENGINE_WAL_H

#include "sluice/base.h"

typedef struct sl_wal sl_wal;

typedef struct sl_wal_options {
	const char *dir;        /* created if missing */
	uint64_t segment_bytes; /* a new segment starts past this; default 64 MiB */
	uint64_t max_bytes;     /* all segments together; an append past it is SL_EBUSY */
} sl_wal_options;

enum { SL_WAL_PUT = 1, SL_WAL_DEL = 2 };

#define SL_WAL_VALUE_MAX ((size_t)16 << 20) /* bytes of one record's value */

typedef struct sl_wal_record {
	uint64_t lsn; /* set by append: 1, 2, 3, ... across segments and restarts */
	uint64_t version;
	uint64_t wall_ms; /* when it was appended (0 to append: now) */
	int op;           /* SL_WAL_PUT or SL_WAL_DEL */
	const char *key;
	size_t key_len;       /* 1..1024 */
	const uint8_t *value; /* PUT only, at most 16 MiB */
	size_t value_len;
} sl_wal_record;

/* Where a record lies, to read its value back (sl_wal_read_at). */
typedef struct sl_wal_loc {
	uint64_t segment;
	uint64_t offset;
} sl_wal_loc;

/* What open found. */
typedef struct sl_wal_open_report {
	uint64_t records;     /* good records in all segments */
	uint64_t torn_bytes;  /* bytes cut from the last segment's tail */
	uint64_t last_lsn;    /* 0 if none */
	uint64_t max_version; /* the highest version in a record or a header */
} sl_wal_open_report;

/* Opens (creating) the WAL. Every record of every segment is checked; a
 * bad record in the last segment cuts the file there (a torn tail); one
 * in an earlier segment is SL_ECORRUPT naming file and offset. SL_EBUSY
 * when another handle has the directory open. */
int sl_wal_open(sl_wal **out, const sl_wal_options *o, sl_wal_open_report *report);
/* Stops the syncer (syncing what is buffered first) and frees. NULL ok. */
void sl_wal_close(sl_wal *w);

/* Buffers one record and gives it the next LSN (*lsn, *loc; either may be
 * NULL). SL_EINVAL for a bad record, SL_ETOOLARGE for a value over 16 MiB,
 * SL_EBUSY when the WAL (on disk and buffered) would pass max_bytes, SL_EIO
 * once a write or sync has failed (the WAL refuses everything after that);
 * a refused append changes nothing. The syncer writes buffered records
 * promptly, synced or not; an append waits only when 64 MiB are buffered.
 * Records become durable in append order. */
int sl_wal_append(sl_wal *w, const sl_wal_record *r, uint64_t *lsn, sl_wal_loc *loc);
/* Raises the version floor written into each new segment's header, so
 * that the highest version survives even when every record was drained
 * and released. */
void sl_wal_set_version_floor(sl_wal *w, uint64_t version);
/* Waits until lsn is durable (fdatasync'd). SL_EIO if the write or sync of
 * it failed (an LSN made durable before a failure still gives SL_OK);
 * SL_EINVAL for an LSN not appended yet. */
int sl_wal_sync(sl_wal *w, uint64_t lsn);
uint64_t sl_wal_synced_lsn(sl_wal *w);

/* Reads one record at loc into *out (key and value point into buf). One
 * still buffered is waited for. SL_ENOTFOUND once its segment was
 * released, SL_ECORRUPT when loc holds no good record. */
int sl_wal_read_at(sl_wal *w, const sl_wal_loc *loc, sl_wal_record *out, sl_buf *buf);

/* The drain's reader: starts at the oldest record still on disk. */
typedef struct sl_wal_cursor {
	uint64_t segment;
	uint64_t offset;
	uint64_t next_lsn;
} sl_wal_cursor;

void sl_wal_cursor_start(sl_wal *w, sl_wal_cursor *c);
typedef int (*sl_wal_record_fn)(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc);
/* Calls cb for the durable records after the cursor, at most max_records
 * and at most max_bytes of records as stored (but at least one record),
 * moving the cursor; *n the number given (0: none durable yet). The
 * record's pointers are valid during the call only. A non-zero return of
 * cb stops and is returned; the cursor stays on that record (not counted
 * in *n), so the next call gives it again. */
int sl_wal_read_next(sl_wal *w, sl_wal_cursor *c, size_t max_records, size_t max_bytes,
                     sl_wal_record_fn cb, void *ctx, size_t *n);
/* Every record with LSN <= lsn is in L3: deletes the segments that hold
 * only such records (never the one being written, nor one whose successor
 * is not on disk yet). lsn is taken down to synced_lsn. */
int sl_wal_release(sl_wal *w, uint64_t lsn);

typedef struct sl_wal_stats {
	uint64_t bytes; /* all segments, on disk and buffered */
	uint64_t segments;
	uint64_t last_lsn; /* appended */
	uint64_t synced_lsn;
	uint64_t released_lsn;
	/* Of the oldest record not released, 0 if none. Approximate: the first
	 * record's of the oldest segment that holds one not released, so up to
	 * a segment's worth of records older than the exact answer. */
	uint64_t oldest_wall_ms;
	uint64_t syncs; /* fdatasync calls made */
} sl_wal_stats;

void sl_wal_stats_get(sl_wal *w, sl_wal_stats *out);

#endif
