/* connect/: the stores a pipeline reads from and writes to.
 *
 * A pipeline moves objects. The *source* lists rows in cursor order (their
 * metadata, and the bytes of small objects when it has them at hand); a
 * *fetcher* reads one object's bytes in parts; a *sink*
 * stores objects by key. Fetchers and sinks are small vtables so the
 * pipeline (src/pipeline/) does not know which store it talks to.
 *
 * Threads: a source or a fetcher is used by one thread at a time (the
 * pipeline opens one fetcher per worker). A sink is shared by all workers:
 * begin/write/commit/abort are called concurrently for different objects.
 *
 * Errors follow base.h. Codes with a meaning here:
 *   SL_ENOTFOUND  the object is gone from the source (recorded as a failure)
 *   SL_EAUTH      the remote refused our credentials or our clock: no other
 *                 object can succeed, so the pipeline stops the run
 *   SL_ECONFLICT  the destination holds other bytes under the key
 *   anything else a failure of this object, retried later with backoff
 */
#ifndef SLUICE_CONNECT_H
#define SLUICE_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- rows */

#define SL_UUID_TEXT_LEN 36
#define SL_TS_TEXT_MAX   40

/* Where a pipeline has got to: the last row done, in (created_at, id)
 * order. created_at is PostgreSQL's text for a timestamptz in UTC with
 * microseconds ("2026-11-21 10:00:00.123456+00"); an empty created_at
 * means "before every row". */
typedef struct sl_cursor {
	char created_at[SL_TS_TEXT_MAX];
	char id[SL_UUID_TEXT_LEN + 1];
} sl_cursor;

/* One source row: what the pipeline needs to move one object. */
typedef struct sl_row {
	char id[SL_UUID_TEXT_LEN + 1];   /* uuid, lower case */
	char created_at[SL_TS_TEXT_MAX]; /* as in sl_cursor */
	char *key;                       /* destination key (owned) */
	char *object_key;                /* S3 mode: key in the source bucket (owned); else NULL */
	char *bucket; /* S3 mode: the source bucket of this row (owned); NULL: the fetcher's own */
	int64_t size; /* bytes if known, else -1 */
	int size_recorded; /* size is what the source records for the object (size_bytes), not
	                    * what it measured: bytes of another length are a failure */
	uint8_t content_sha256[32]; /* the SHA-256 the source records for the object, */
	int has_content_sha256;     /* when it records one: other bytes are a failure */
	int has_data;  /* the source listed the object's bytes with the row (small objects) */
	uint8_t *data; /* then: the bytes (owned), and no fetcher is needed */
	size_t data_len;
	char *error; /* the row cannot be moved as it stands (no valid key, no object_key):
	              * why (owned); the pipeline records it as a failure and goes on */
} sl_row;

typedef struct sl_row_batch {
	sl_row *rows;
	size_t n;
} sl_row_batch;

void sl_row_free(sl_row *row);           /* frees what the row owns; NULL ok */
void sl_row_batch_free(sl_row_batch *b); /* frees every row and the array; NULL ok */
int sl_row_copy(sl_row *out, const sl_row *in);

/* The destination key of a row: "[competition_id/][agent_id/]<data_type>/<id>",
 * NULL (or empty) segments left out. SL_EINVAL when the result is not a valid
 * key (store/key.c rules) or data_type is missing. *out is owned by the caller. */
int sl_object_key_build(char **out, const char *competition_id, const char *agent_id,
                        const char *data_type, const char *id);

/* --------------------------------------------------------------- source */

/* Lists rows in cursor order. See sl_pg_source_next for the contract of
 * next, sl_pg_source_get for get and sl_pg_source_lag for lag. */
typedef struct sl_source_ops {
	int (*next)(void *self, const sl_cursor *after, const char *since, size_t limit,
	            sl_row_batch *out, int *held_by);
	int (*get)(void *self, const char *id, sl_row *out);
	int (*lag)(void *self, const sl_cursor *after, const char *since,
	           char newest[SL_TS_TEXT_MAX], uint64_t *rows_after);
	void (*close)(void *self);
} sl_source_ops;

typedef struct sl_source {
	const sl_source_ops *ops;
	void *self;
} sl_source;

void sl_source_close(sl_source *s); /* NULL or closed ok */

/* -------------------------------------------------------------- fetcher */

/* Reads an object's bytes: up to cap bytes from offset. On SL_OK *data
 * points at the *n_read bytes read, lent until this fetcher's next read or
 * its close, and *total is the object's full size. Lending rather than
 * copying into the caller's buffer saves a copy of every byte and a
 * part-sized buffer per worker: the PostgreSQL fetcher lends libpq's
 * result, the S3 fetcher its own receive buffer. The pipeline reads part
 * by part, so memory is bounded by the part size, not the object size. */
typedef struct sl_fetcher_ops {
	int (*read)(void *self, const sl_row *row, uint64_t offset, size_t cap,
	            const uint8_t **data, size_t *n_read, uint64_t *total);
	void (*close)(void *self);
} sl_fetcher_ops;

typedef struct sl_fetcher {
	const sl_fetcher_ops *ops;
	void *self;
} sl_fetcher;

void sl_fetcher_close(sl_fetcher *f); /* NULL or closed ok */

/* ----------------------------------------------------------------- sink */

/* Stores objects by key. Every sink is idempotent: storing a key again with
 * the same bytes leaves the destination as it was.
 *
 * For each object the pipeline calls begin, then write with consecutive
 * chunks (each `part_size` bytes but the last, total `size`), then commit or
 * abort. `data` is borrowed for the call only. After commit returns SL_OK
 * the object is stored (or, for sinks that batch, will be at flush). abort
 * releases the upload and leaves nothing behind (no partial file, no
 * orphaned multipart parts). flush is called once per batch, after the
 * commits and before the cursor is saved: when it returns SL_OK, every
 * object committed since the last flush is durable, except those it
 * reported through on_failed (a sink that stores in batches finds out about
 * one object's refusal only then). Any other return means none of them is
 * known to be stored. */
typedef void (*sl_sink_failed_fn)(void *ctx, const char *key, int code, const char *message);

typedef struct sl_sink_ops {
	const char *kind; /* "s3", "dir", "node" */
	int (*begin)(void *self, const char *key, uint64_t size, void **upload);
	int (*write)(void *self, void *upload, const uint8_t *data, size_t len);
	int (*commit)(void *self, void *upload);
	void (*abort)(void *self, void *upload);
	/* Removes the object at key (absent already: SL_OK). Like commit, a
	 * sink that batches applies it at flush. Called concurrently. */
	int (*remove)(void *self, const char *key);
	int (*flush)(void *self, sl_sink_failed_fn on_failed, void *ctx);
	void (*close)(void *self);
} sl_sink_ops;

typedef struct sl_sink {
	const sl_sink_ops *ops;
	void *self;
} sl_sink;

void sl_sink_close(sl_sink *s); /* NULL or closed ok */

/* ----------------------------------------------------------- PostgreSQL */

/* Table and column names are configurable; defaults are recall-synchronizer's.
 * bucket_name, content_hash and (in direct mode) size_bytes are optional: a
 * table without them is read as if every row had them NULL. */
typedef struct sl_pg_config {
	const char *url;                /* libpq connection string or URI */
	const char *table;              /* "object_index" (may be schema-qualified) */
	const char *col_id;             /* "id" uuid */
	const char *col_object_key;     /* "object_key" text (S3 mode) */
	const char *col_competition_id; /* "competition_id" uuid NULL */
	const char *col_agent_id;       /* "agent_id" uuid NULL */
	const char *col_data_type;      /* "data_type" text or enum */
	const char *col_data;           /* "data" bytea or text (direct mode) */
	const char *col_size_bytes;     /* "size_bytes" bigint NULL: the object's size */
	const char *col_created_at;     /* "created_at" timestamptz */
	const char *col_bucket_name;    /* "bucket_name" text NULL: S3 mode, the row's bucket */
	const char *col_content_hash;   /* "content_hash" text NULL: 64 hex digits are the
	                                   object's SHA-256; any other value is not checked */
	int s3_mode;                    /* rows name an object in the source bucket */
	uint32_t timeout_ms;            /* connect and statement timeout (default 30000) */
	uint32_t reconnect_ms; /* how long to keep reconnecting after the server goes away (default
	                          60000) */
} sl_pg_config;

void sl_pg_config_init(sl_pg_config *c); /* the defaults above */

typedef struct sl_pg_source sl_pg_source;

int sl_pg_source_open(sl_pg_source **out, const sl_pg_config *cfg);
void sl_pg_source_close(sl_pg_source *s); /* NULL ok */

/* At most `limit` rows strictly after `after` in (created_at, id) order,
 * and after `since` (RFC3339, or NULL); in direct mode an object of at
 * most 16 KiB comes with its bytes (has_data), larger ones are left to a
 * fetcher. Only rows
 * older than the commit horizon are returned: the start of the oldest
 * transaction still open in the database, so a row a long transaction
 * commits later (with an earlier created_at) is not passed over. When the
 * horizon holds rows back, *held_by is set to that transaction's backend
 * pid, or to -1 when they only wait for the horizon's clock margin (they
 * pass it within a fraction of a second); else 0. */
int sl_pg_source_next(sl_pg_source *s, const sl_cursor *after, const char *since, size_t limit,
                      sl_row_batch *out, int *held_by);

/* The row with this id, for retries. SL_ENOTFOUND when it is gone. */
int sl_pg_source_get(sl_pg_source *s, const char *id, sl_row *out);

/* For status: the newest created_at in the table ("" when empty) and how
 * many rows lie after the cursor. */
int sl_pg_source_lag(sl_pg_source *s, const sl_cursor *after, const char *since,
                     char newest[SL_TS_TEXT_MAX], uint64_t *rows_after);

/* The source vtable over an open PostgreSQL source; closing it closes s. */
void sl_pg_source_bind(sl_source *out, sl_pg_source *s);

/* Direct mode: a fetcher that reads `data` of a row by id, in parts, over
 * its own connection. */
int sl_pg_fetcher_open(sl_fetcher *out, const sl_pg_config *cfg);

/* ------------------------------------------ PostgreSQL changes (pg_changes.c) */

/* Changes of the source table by logical replication (pgoutput), for the
 * pipeline's changes mode. See src/connect/pg_changes.c for the protocol,
 * the checks made at open and what a position means. */

typedef enum sl_change_op {
	SL_CHANGE_UPSERT = 1,  /* inserted or updated: row is as the source lists it */
	SL_CHANGE_DELETE = 2,  /* deleted: row.id only */
	SL_CHANGE_TRUNCATE = 3 /* the table was truncated: every row is gone */
} sl_change_op;

typedef struct sl_change {
	sl_change_op op;
	/* UPSERT whose stream left out a column we need (an unchanged
	 * TOASTed value): row.id only; read the row from the table. */
	int incomplete;
	sl_row row;
} sl_change;

typedef struct sl_change_batch {
	sl_change *changes;
	size_t n, cap;
	/* Every change before this position is in this batch or an earlier
	 * one: confirm it once they are saved. 0: no new position. */
	uint64_t done_lsn;
	int caught_up; /* reached the target, between transactions */
} sl_change_batch;

void sl_change_batch_free(sl_change_batch *b); /* zeroes *b; NULL ok */

typedef struct sl_pg_changes sl_pg_changes;

typedef struct sl_pg_changes_setup {
	const char *slot;        /* [a-z0-9_]{1,63}, checked by the caller */
	const char *publication; /* the same */
	int may_create;          /* a missing slot is created (else it is an error) */
	/* out */
	int created_slot, created_publication;
	char snapshot[64];  /* created_slot: exported, valid until the next call on the handle */
	uint64_t start_lsn; /* created_slot: its consistent point */
} sl_pg_changes_setup;

int sl_pg_changes_open(sl_pg_changes **out, const sl_pg_config *cfg, sl_pg_changes_setup *setup);
void sl_pg_changes_close(sl_pg_changes *c); /* NULL ok */
/* The server's flushed WAL position: what a run catches up to. */
int sl_pg_changes_wal_position(sl_pg_changes *c, uint64_t *out);
/* Streams from from_lsn (the position saved, or the slot's start). */
int sl_pg_changes_start(sl_pg_changes *c, uint64_t from_lsn);
/* The next changes in commit order: up to limit, or those that came before
 * the stream paused, or none within wait_ms; caught_up once every commit
 * before target was returned. A lost stream is opened again from the
 * confirmed position (the batch being read is dropped). */
int sl_pg_changes_next(sl_pg_changes *c, size_t limit, uint64_t target, uint32_t wait_ms,
                       sl_change_batch *out);
/* Tells the server it may forget the WAL before lsn: only once saved. */
int sl_pg_changes_confirm(sl_pg_changes *c, uint64_t lsn);

typedef struct sl_pg_slot_info {
	int exists, active;
	uint64_t confirmed_lsn; /* what the slot keeps WAL from */
	uint64_t server_lsn;    /* the server's flushed position */
	uint64_t lag_bytes;     /* between the two */
} sl_pg_slot_info;

int sl_pg_slot_status(const sl_pg_config *cfg, const char *slot, sl_pg_slot_info *out);
/* Drops the slot (none: nothing to do); a slot in use is refused. The
 * publication stays: other slots may use it, and it holds no WAL. */
int sl_pg_slot_drop(const sl_pg_config *cfg, const char *slot);

/* The source's rows by id for the first copy of changes mode: up to limit
 * rows with id > after_id ("" for the start), in id order, without the
 * commit horizon (the copy runs in the slot's snapshot, or after it was
 * lost, on the live table: see src/pipeline/changes.c). */
int sl_pg_source_scan(sl_pg_source *s, const char *after_id, size_t limit, sl_row_batch *out);
/* Reads in the exported snapshot from now on, in one repeatable-read
 * transaction, until sl_pg_source_end_snapshot (or a lost connection). */
int sl_pg_source_use_snapshot(sl_pg_source *s, const char *snapshot);
void sl_pg_source_end_snapshot(sl_pg_source *s);

/* ------------------------------------------------------------------- S3 */

typedef struct sl_s3_config {
	const char *endpoint; /* "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com" */
	const char *region;   /* "us-east-1" */
	const char *bucket;
	const char *prefix; /* sink only: prepended to every key ("" or NULL: none) */
	const char *access_key_id;
	const char *secret_access_key;
	int path_style;       /* 1: endpoint/bucket/key; 0: bucket.host/key */
	uint32_t timeout_ms;  /* per request (default 60000) */
	uint32_t max_retries; /* per request, on connection errors, timeouts, 408, 429,
	                         500, 502, 503 and 504 (default 6) */
	size_t part_size;     /* multipart part size and threshold (default 8 MiB, min 5 MiB) */
	size_t concurrency;   /* connections kept (default 16) */
	/* Added to the local clock when signing: 0 normally; lets tests show the
	 * clock-skew error. */
	int64_t clock_offset_ms;
} sl_s3_config;

void sl_s3_config_init(sl_s3_config *c);

/* A sink into a bucket: objects up to part_size in one PUT, larger ones by
 * multipart upload (aborted on failure). 503 SlowDown slows every worker
 * down (honouring Retry-After) and speeds back up on success. A refused
 * signature or a skewed clock is SL_EAUTH with a message that says which. */
int sl_s3_sink_open(sl_sink *out, const sl_s3_config *cfg);

/* S3 mode: a fetcher that reads row->object_key with ranged GETs from
 * row->bucket, or from cfg's bucket when the row names none (one fetcher
 * may read from many buckets, path-style or virtual-hosted alike).
 * SL_ENOTFOUND for a missing object or bucket; SL_EINVAL for a bucket name
 * that is not one (see sl_s3_bucket_name_check). */
int sl_s3_fetcher_open(sl_fetcher *out, const sl_s3_config *cfg);

/* SL_OK when name can be a bucket's: 1 to 255 bytes of letters, digits,
 * '.', '-' and '_' (S3's rules today are stricter, older buckets were not);
 * else SL_EINVAL saying why. A name from a table goes into a URL and, in
 * virtual-hosted style, the Host header, so nothing else is let through. */
int sl_s3_bucket_name_check(const char *name);

/* ------------------------------------------------------ directory, node */

/* A sink into a directory: each key becomes a file under root (its segments
 * directories), written to a temporary file, fsynced and renamed. A key
 * that could escape root is SL_EINVAL. An existing file with the same bytes
 * is left untouched. */
int sl_dir_sink_open(sl_sink *out, const char *root);

/* A sink into a sluice node namespace (created if missing: immutable, or
 * mutable when mutable_ns, which changes mode needs for its deletes; an
 * existing namespace that is not mutable is then refused):
 * a local store directory, or a remote node's commit endpoint with a token
 * (url like "http://127.0.0.1:7070"). Objects are committed at flush, in one
 * commit per batch. */
int sl_node_sink_open_local(sl_sink *out, const char *store_dir, const char *ns, int mutable_ns);
int sl_node_sink_open_remote(sl_sink *out, const char *url, const char *token, const char *ns,
                             uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
