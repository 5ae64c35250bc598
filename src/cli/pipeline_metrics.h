/* Prometheus metrics of `sluice run -m` and `sluice start -m`
 * (pipeline_metrics.c; every name is in docs/cli.md). */
#ifndef SLUICE_CLI_PIPELINE_METRICS_H
#define SLUICE_CLI_PIPELINE_METRICS_H

#include <stdint.h>

#include "cli/pipeline_setup.h"

typedef struct cli_pipeline_metrics cli_pipeline_metrics;

/* Registers the metrics, serves them at http://127.0.0.1:PORT/metrics (0
 * picks a free port, logged as msg="serving metrics" port=N) and starts
 * the sampler, which reads the failures and the lag over its own state
 * handle and source connection. p (its config, its state) must stay open
 * until cli_pipeline_metrics_stop. CLI_OK, or CLI_FAIL reported as command
 * `name`. */
int cli_pipeline_metrics_start(cli_pipeline_metrics **out, const char *name, const cli_pipeline *p,
                               uint16_t port);
/* Stops the sampler and the server and frees it all; NULL ok. */
void cli_pipeline_metrics_stop(cli_pipeline_metrics *pm);

/* Before each run: o->progress (and its ctx) is wrapped, so every saved
 * batch feeds the counters before it reaches the callback set there.
 * pm NULL: nothing. */
void cli_pipeline_metrics_run_begin(cli_pipeline_metrics *pm, sl_pipeline_options *o);
/* After each run; rc is sl_pipeline_run's. pm NULL: nothing. */
void cli_pipeline_metrics_run_end(cli_pipeline_metrics *pm, int rc);

#endif
