/* The parts of a pipeline, opened from a config file (pipeline_setup.c). */
#ifndef SLUICE_CLI_PIPELINE_SETUP_H
#define SLUICE_CLI_PIPELINE_SETUP_H

#include "cli/config.h"
#include "sluice/pipeline.h"

#define CLI_PIPELINE_STATE  0x1
#define CLI_PIPELINE_SOURCE 0x2
#define CLI_PIPELINE_SINK   0x4
#define CLI_PIPELINE_ALL    0x7

typedef struct cli_pipeline {
	cli_config cfg;
	sl_pipeline_state *state;    /* CLI_PIPELINE_STATE */
	sl_source source;            /* CLI_PIPELINE_SOURCE */
	sl_pg_source *pg;            /* the same source (source.self), for changes mode */
	sl_sink sink;                /* CLI_PIPELINE_SINK */
	sl_pipeline_options options; /* from [sync]; the fetcher from [s3] or [database] */
} cli_pipeline;

/* Loads config_path and opens the parts asked for. CLI_OK, or CLI_FAIL
 * after reporting the error as command `name` (nothing is left open). */
int cli_pipeline_open(cli_pipeline *p, const char *name, const char *config_path, unsigned parts);
/* One run of the configured mode: sl_pipeline_run or, with [database]
 * mode = "changes", sl_pipeline_run_changes. */
int cli_pipeline_run(cli_pipeline *p, sl_pipeline_progress *out);
void cli_pipeline_close(cli_pipeline *p);

/* Seconds since the epoch of a PostgreSQL UTC timestamp as the source and
 * the cursor keep them ("2026-11-21 10:00:00.123456+00"); 0, or -1 when
 * ts is not one. */
int cli_pipeline_ts_seconds(const char *ts, double *out);

/* Changes mode's lag: the state's position and the slot as the server
 * sees it (WAL bytes it keeps for us), and seconds since a run last
 * reached the server's position while bytes wait (-1 unknown). SL_OK with
 * have_slot 0 never happens: a server that does not answer is an error,
 * with position still filled. */
typedef struct cli_slot_lag {
	sl_pipeline_changes position;
	sl_pg_slot_info slot;
	int have_slot;
	double seconds;
} cli_slot_lag;

int cli_pipeline_slot_lag(sl_pipeline_state *st, const sl_pg_config *pg, const char *slot_name,
                          cli_slot_lag *out);

#endif
