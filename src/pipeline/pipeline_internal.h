/* What run.c needs from state.c beyond the public API. */
#ifndef SLUICE_PIPELINE_INTERNAL_H
#define SLUICE_PIPELINE_INTERNAL_H

#include "sluice/pipeline.h"

/* A failure that is due for another attempt. */
typedef struct sl_pipeline_due {
	char row_id[SL_UUID_TEXT_LEN + 1];
	uint32_t attempts; /* made so far */
} sl_pipeline_due;

/* What happened to one object in a batch. */
typedef struct sl_pipeline_outcome {
	const sl_row *row;
	int stored;               /* else failed */
	uint64_t bytes;           /* stored: its size */
	uint32_t attempts;        /* failed: attempts made so far, this one included */
	int parked;               /* failed: attempts reached max_attempts */
	uint64_t next_attempt_ms; /* failed, not parked: when to try again */
	const char *error;        /* failed: what went wrong */
	int removal;              /* a removal only (changes mode): no object stored */
	/* changes mode: on success, the row's object is at keep_key (NULL:
	 * nowhere), and every other key recorded for it is forgotten; on a
	 * failure the records stay (track_key: do this) */
	int track_key;
	const char *keep_key;
} sl_pipeline_outcome;

/* ------------------------------------------------ the worker pool (exec.c) */

/* One row's work in a batch: remove the remove_keys, then, when store,
 * copy the row's object to row.key. */
typedef struct sl_pipeline_job {
	sl_row row;
	int store;
	char **remove_keys; /* owned, each and the array */
	size_t n_remove;
	uint32_t prior_attempts; /* a retry: attempts made before this run */
	int settled;             /* failed before any transfer (its row is gone) */
	int rc;                  /* SL_OK when done */
	uint64_t bytes;
	char error[SL_ERROR_MSG_MAX + 64];
} sl_pipeline_job;

typedef struct sl_pipeline_pool sl_pipeline_pool;

/* Starts o->concurrency workers, each with its own fetcher. */
int sl_pipeline_pool_start(sl_pipeline_pool **out, const sl_pipeline_options *o, sl_sink *sink);
/* Runs every job, then flushes the sink. Each job's rc says how it went;
 * the return is an error only when the batch must not be saved (an
 * SL_EAUTH: refused credentials or a skewed clock). */
int sl_pipeline_pool_run(sl_pipeline_pool *pool, sl_pipeline_job *jobs, size_t n);
void sl_pipeline_pool_stop(sl_pipeline_pool *pool); /* NULL ok */
/* A job whose outcome is known before any transfer: a failure. */
void sl_pipeline_job_settle(sl_pipeline_job *j, int rc, const char *why);
void sl_pipeline_jobs_free(sl_pipeline_job *jobs, size_t n); /* NULL ok */

/* ---------------------------------------------------------------- state */

/* SL_EBUSY when another process holds PATH.lock. */
int sl_pipeline_state_lock(sl_pipeline_state *st);
void sl_pipeline_state_unlock(sl_pipeline_state *st);

int sl_pipeline_state_cursor(sl_pipeline_state *st, sl_cursor *out);

/* Up to limit failures that are due at now_ms and not parked, soonest first;
 * *out is allocated with sl_malloc. */
int sl_pipeline_state_due(sl_pipeline_state *st, uint64_t now_ms, size_t limit,
                          sl_pipeline_due **out, size_t *n_out);

/* One transaction: the outcomes (stored clears a failure, failed records
 * one), the new cursor (NULL: unchanged) or, in changes mode, the objects'
 * keys and the position (NULL in polling mode), the totals. */
int sl_pipeline_state_save_batch(sl_pipeline_state *st, const sl_cursor *cursor,
                                 const sl_pipeline_changes *position,
                                 const sl_pipeline_outcome *outcomes, size_t n, uint64_t now_ms);

/* Changes mode: the first position (slot, publication, what we created). */
int sl_pipeline_state_changes_begin(sl_pipeline_state *st, const sl_pipeline_changes *pos);
/* The keys recorded for a row's object: where it may be (*n_out 0 when
 * none); *keys_out and each key owned. */
int sl_pipeline_state_object_keys(sl_pipeline_state *st, const char *row_id, char ***keys_out,
                                  size_t *n_out);
/* Records, in one transaction, that each row_ids[i]'s object may be at
 * keys[i] from now on: written before the object is, so a crash never
 * leaves an object at a key nothing remembers. */
int sl_pipeline_state_record_keys(sl_pipeline_state *st, const char *const *row_ids,
                                  const char *const *keys, size_t n);
/* Every row with a recorded object, for a TRUNCATE. */
int sl_pipeline_state_object_ids(sl_pipeline_state *st, int (*cb)(void *ctx, const char *row_id),
                                 void *ctx);

/* The outcomes of run jobs for the state (failures get their next attempt
 * with jittered exponential backoff, or are parked), counted in prog and
 * logged. */
void sl_pipeline_outcomes(const sl_pipeline_options *o, const sl_pipeline_job *jobs, size_t n,
                          sl_pipeline_outcome *outcomes, uint64_t now, uint64_t *rng,
                          sl_pipeline_progress *prog);

#endif
