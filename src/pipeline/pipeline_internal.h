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
} sl_pipeline_outcome;

/* SL_EBUSY when another process holds PATH.lock. */
int sl_pipeline_state_lock(sl_pipeline_state *st);
void sl_pipeline_state_unlock(sl_pipeline_state *st);

int sl_pipeline_state_cursor(sl_pipeline_state *st, sl_cursor *out);

/* Up to limit failures that are due at now_ms and not parked, soonest first;
 * *out is allocated with sl_malloc. */
int sl_pipeline_state_due(sl_pipeline_state *st, uint64_t now_ms, size_t limit,
                          sl_pipeline_due **out, size_t *n_out);

/* One transaction: the outcomes (stored clears a failure, failed records
 * one), the new cursor (NULL: unchanged), the totals. */
int sl_pipeline_state_save_batch(sl_pipeline_state *st, const sl_cursor *cursor,
                                 const sl_pipeline_outcome *outcomes, size_t n, uint64_t now_ms);

#endif
