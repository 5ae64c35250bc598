/* pipeline/: runs that move rows of a source into a sink, and the state that
 * makes them resumable (src/pipeline/run.c has the design and invariants of
 * polling mode, src/pipeline/changes.c those of changes mode).
 *
 * State lives in one SQLite file: the cursor (the last row done, in
 * (created_at, id) order), running totals, and a failures table keyed by
 * row id; in changes mode also the stream's position and the keys each
 * row's object may be at. In polling mode it grows with failures, never
 * with the number of objects; changes mode keeps one small row per object
 * (a delete names only the row's id). A run holds an exclusive lock
 * (DB_PATH.lock) so two runs never overlap.
 */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/connect.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- state */

typedef struct sl_pipeline_state sl_pipeline_state;

/* Opens (creating) the state database at path. */
int sl_pipeline_state_open(sl_pipeline_state **out, const char *path);
void sl_pipeline_state_close(sl_pipeline_state *st); /* NULL ok */

typedef struct sl_pipeline_status {
	sl_cursor cursor;     /* created_at "" before the first row */
	uint64_t objects;     /* objects stored, over all runs */
	uint64_t bytes;       /* their bytes */
	uint64_t failing;     /* failures that will be retried */
	uint64_t parked;      /* failures past max_attempts, waiting for `retry` */
	uint64_t last_run_ms; /* wall clock of the last batch saved, 0 never */
} sl_pipeline_status;

int sl_pipeline_state_status(sl_pipeline_state *st, sl_pipeline_status *out);

typedef struct sl_pipeline_failure {
	const char *row_id;
	const char *key;
	const char *created_at;
	uint32_t attempts;
	const char *last_error;
	uint64_t next_attempt_ms; /* wall clock; 0 when parked */
	int parked;
} sl_pipeline_failure;

/* Calls cb for each failure (parked only, or all), oldest first; a
 * non-zero return stops the walk and is returned. */
typedef int (*sl_pipeline_failure_fn)(void *ctx, const sl_pipeline_failure *f);
int sl_pipeline_state_failures(sl_pipeline_state *st, int parked_only, sl_pipeline_failure_fn cb,
                               void *ctx);

/* Changes mode's position (src/pipeline/changes.c). */
typedef struct sl_pipeline_changes {
	int known; /* a changes run has begun on this state */
	char slot[64], publication[64];
	int created_slot, created_publication; /* by us: `reset` drops them */
	int copying;                           /* the first copy is not finished */
	char copy_after[SL_UUID_TEXT_LEN + 1]; /* the copy's last id done, "" none */
	uint64_t lsn;                          /* the stream's position saved */
	uint64_t caught_up_ms;    /* wall clock when a run last reached the server's position */
	uint64_t objects_tracked; /* rows whose object key is recorded */
} sl_pipeline_changes;

int sl_pipeline_state_changes(sl_pipeline_state *st, sl_pipeline_changes *out);

/* Makes every failure (parked or not) due now with its attempts reset;
 * *n_out (may be NULL) is how many. */
int sl_pipeline_state_retry_all(sl_pipeline_state *st, uint64_t *n_out);

/* Forgets the cursor, the totals and the failures; SL_EBUSY while a run
 * holds the lock. */
int sl_pipeline_state_reset(sl_pipeline_state *st);

/* ------------------------------------------------------------------ run */

typedef struct sl_pipeline_progress {
	uint64_t batches;
	uint64_t rows;    /* new rows read this run */
	uint64_t objects; /* objects stored this run (new and retried) */
	uint64_t bytes;
	uint64_t failed;      /* objects that failed this run */
	uint64_t removed;     /* changes mode: objects removed this run */
	uint64_t rows_behind; /* rows after the cursor at the start (0 if unknown or
	                         not counted: count_behind) */
	int held_by;          /* pid of a transaction holding rows back, else 0 */
	const sl_cursor *cursor;
	uint64_t batch_ns; /* the batch just saved: from reading its rows to its
	                      state saved (monotonic clock) */
} sl_pipeline_progress;

typedef struct sl_pipeline_options {
	size_t batch_size;      /* rows per batch, default 1000 */
	size_t concurrency;     /* workers, default 16 */
	uint32_t max_attempts;  /* then parked, default 5 */
	uint64_t retry_base_ms; /* first retry after this, doubling; default 1000 */
	uint64_t retry_max_ms;  /* cap on the retry delay, default 3600000 */
	size_t part_size;       /* bytes read and written at a time, default 8 MiB */
	const char *since;      /* RFC3339: only rows created after it; NULL all */
	int retry_only;         /* read no new rows: only the failures that are due */
	/* When *stop becomes non-zero the batch in flight finishes, its state
	 * is saved, and the run returns SL_OK. May be NULL. */
	volatile sig_atomic_t *stop;
	/* One worker's fetcher; called once per worker per run. */
	int (*open_fetcher)(void *ctx, sl_fetcher *out);
	void *fetcher_ctx;
	/* After each saved batch. */
	void (*progress)(void *ctx, const sl_pipeline_progress *p);
	void *progress_ctx;
	/* Count the rows after the cursor at the start (rows_behind, for a
	 * progress bar): one source query, a scan of the rest of the table. */
	int count_behind;
} sl_pipeline_options;

void sl_pipeline_options_init(sl_pipeline_options *o);

/* Runs batches until the source has no row left (and no failure is due),
 * or *stop. Takes the state's lock (SL_EBUSY when another run holds it).
 * *out (may be NULL) gets the totals of this run. SL_EAUTH (and source
 * errors) end the run; the batch in flight is then not saved, so its rows
 * are read again next time. */
int sl_pipeline_run(sl_pipeline_state *st, sl_source *src, sl_sink *sink,
                    const sl_pipeline_options *o, sl_pipeline_progress *out);

/* Changes mode (src/pipeline/changes.c): the first copy of the table, then
 * its changes by logical replication through slot and publication (made
 * when missing), until the server's WAL position at the start of streaming,
 * or *stop. table reads rows by id (retries, and the first copy); the sink
 * must be able to remove objects. With retry_only, only the failures that
 * are due are tried (no slot is opened). Otherwise as sl_pipeline_run. */
int sl_pipeline_run_changes(sl_pipeline_state *st, sl_pg_source *table, const sl_pg_config *pg,
                            const char *slot, const char *publication, sl_sink *sink,
                            const sl_pipeline_options *o, sl_pipeline_progress *out);

#ifdef __cplusplus
}
#endif
#endif
