/* Private to pipeline/: what the backfill's job (mirror_backfill_job.c)
 * and its workers (mirror_backfill.c) share. */
#ifndef SLUICE_PIPELINE_MIRROR_BACKFILL_INTERNAL_H
#define SLUICE_PIPELINE_MIRROR_BACKFILL_INTERNAL_H

#include "pipeline/mirror_internal.h"

/* SL_EINVAL unless job is a job's name (1 to SL_BACKFILL_JOB_MAX bytes). */
int backfill_check_job(const char *job);
/* SL_EINVAL for options a backfill cannot run with (deletes that remove). */
int backfill_check_options(const sl_mirror_options *o);
/* Makes sluice_backfill_range if missing and checks its shape. */
int backfill_prepare_table(mirror_db *db);
/* One statement with text parameters and text results, on a connection
 * made ready unless in_txn. The caller clears q. */
int backfill_query(sl_pg_conn *c, int in_txn, sl_pg_call *q, const char *what, const char *sql,
                   int n, const char *const *values);
uint64_t backfill_u64(const PGresult *r, int row, int col);

#endif
