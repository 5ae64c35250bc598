/* Progress display for pipeline runs (progress.c). */
#ifndef SLUICE_CLI_PROGRESS_H
#define SLUICE_CLI_PROGRESS_H

#include <stdio.h>

#include "sluice/pipeline.h"

typedef struct cli_progress {
	FILE *out;
	int tty;
	int drawn;
	uint64_t start_ns;
} cli_progress;

void cli_progress_init(cli_progress *p, FILE *out);
/* An sl_pipeline_options.progress callback; ctx is the cli_progress. */
void cli_progress_update(void *ctx, const sl_pipeline_progress *pr);
/* Ends the redrawn line, if any. */
void cli_progress_done(cli_progress *p);

#endif
