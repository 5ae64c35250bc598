/*
 * From a config file to the parts of a pipeline: the state file, the
 * PostgreSQL source, the fetcher each worker opens (the data column in
 * direct mode, the source bucket in S3 mode) and the sink named by
 * [destination]. Each command opens only what it needs: `status` does not
 * connect to a sink, `reset` touches nothing but the state. Also here: the
 * reading of the source's timestamps, for the lag that `status` and the
 * metrics tell.
 *
 * [database] max_connections bounds the PostgreSQL connections a run
 * opens: the reserved ones (cli_config_pg_connections_reserved: the
 * source's, and in changes mode the replication stream's and its control
 * session's) and, in direct mode, one fetcher per worker. So in direct mode
 * a run's concurrency is at most max_connections - reserved; an S3-mode
 * run's fetchers talk to S3 and are not bounded by it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/pipeline_setup.h"

static int open_fetcher(void *ctx, sl_fetcher *out)
{
	const cli_config *cfg = ctx;
	return cfg->has_source_s3 ? sl_s3_fetcher_open(out, &cfg->source_s3)
	                          : sl_pg_fetcher_open(out, &cfg->pg);
}

static int open_sink(cli_pipeline *p)
{
	const cli_config *cfg = &p->cfg;
	switch (cfg->dest_type) {
	case CLI_DEST_DIR:
		return sl_dir_sink_open(&p->sink, cfg->dest_dir);
	case CLI_DEST_S3:
		return sl_s3_sink_open(&p->sink, &cfg->dest_s3);
	case CLI_DEST_NODE:
		if (cfg->node_store != NULL)
			return sl_node_sink_open_local(&p->sink, cfg->node_store,
			                               cfg->node_namespace, cfg->changes_mode);
		return sl_node_sink_open_remote(&p->sink, cfg->node_url, cfg->node_token,
		                                cfg->node_namespace, 60000);
	}
	return sl_error_set(SL_EINVAL, "%s: [destination] type is not set", cfg->path);
}

/* The workers a run may have within max_connections; logs when that is
 * fewer than [sync] concurrency. */
static size_t bounded_concurrency(const cli_config *cfg, int log)
{
	size_t reserved = cli_config_pg_connections_reserved(cfg), room;

	if (cfg->has_source_s3 || cfg->max_connections == 0)
		return cfg->concurrency;
	/* config.c refused a max_connections without room for one worker */
	room = cfg->max_connections > reserved ? cfg->max_connections - reserved : 1;
	if (cfg->concurrency <= room)
		return cfg->concurrency;
	if (log)
		sl_log(SL_LOG_INFO, "concurrency lowered to fit [database] max_connections",
		       "concurrency=%zu configured=%zu max_connections=%u reserved=%zu", room,
		       cfg->concurrency, cfg->max_connections, reserved);
	return room;
}

int cli_pipeline_open(cli_pipeline *p, const char *name, const char *config_path, unsigned parts)
{
	sl_pg_source *pg = NULL;

	memset(p, 0, sizeof(*p));
	if (cli_config_load(&p->cfg, config_path) != SL_OK)
		return cli_fail(name);
	if ((parts & CLI_PIPELINE_STATE) &&
	    sl_pipeline_state_open(&p->state, p->cfg.state_path) != SL_OK)
		goto fail;
	if (parts & CLI_PIPELINE_SOURCE) {
		if (sl_pg_source_open(&pg, &p->cfg.pg) != SL_OK)
			goto fail;
		sl_pg_source_bind(&p->source, pg);
		p->pg = pg;
	}
	if ((parts & CLI_PIPELINE_SINK) && open_sink(p) != SL_OK)
		goto fail;
	sl_pipeline_options_init(&p->options);
	p->options.batch_size = p->cfg.batch_size;
	/* only a run (which opens a sink) has workers to say it about */
	p->options.concurrency = bounded_concurrency(&p->cfg, (parts & CLI_PIPELINE_SINK) != 0);
	p->options.max_attempts = p->cfg.max_attempts;
	p->options.retry_base_ms = p->cfg.retry_base_ms;
	p->options.retry_max_ms = p->cfg.retry_max_ms;
	p->options.part_size = p->cfg.part_size;
	p->options.open_fetcher = open_fetcher;
	p->options.fetcher_ctx = &p->cfg;
	return CLI_OK;
fail:
	cli_fail(name);
	cli_pipeline_close(p);
	return CLI_FAIL;
}

int cli_pipeline_run(cli_pipeline *p, sl_pipeline_progress *out)
{
	if (p->cfg.changes_mode)
		return sl_pipeline_run_changes(p->state, p->pg, &p->cfg.pg, p->cfg.slot,
		                               p->cfg.publication, &p->sink, &p->options, out);
	return sl_pipeline_run(p->state, &p->source, &p->sink, &p->options, out);
}

int cli_pipeline_slot_lag(sl_pipeline_state *st, const sl_pg_config *pg, const char *slot_name,
                          cli_slot_lag *out)
{
	memset(out, 0, sizeof(*out));
	out->seconds = -1;
	if (sl_pipeline_state_changes(st, &out->position) != SL_OK)
		return sl_error_last()->code;
	if (!out->position.known)
		snprintf(out->position.slot, sizeof(out->position.slot), "%s", slot_name);
	if (sl_pg_slot_status(pg, out->position.slot, &out->slot) != SL_OK)
		return sl_error_last()->code;
	out->have_slot = 1;
	if (out->slot.lag_bytes == 0)
		out->seconds = 0;
	else if (out->position.caught_up_ms > 0)
		out->seconds = (double)(sl_clock_wall_ms() - out->position.caught_up_ms) / 1000.0;
	return SL_OK;
}

void cli_pipeline_close(cli_pipeline *p)
{
	sl_sink_close(&p->sink);
	sl_source_close(&p->source);
	sl_pipeline_state_close(p->state);
	cli_config_free(&p->cfg);
	memset(p, 0, sizeof(*p));
}

int cli_pipeline_ts_seconds(const char *ts, double *out)
{
	struct tm tm;
	double frac = 0;
	int n = 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(ts, "%4d-%2d-%2d %2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	if (ts[n] == '.')
		sscanf(ts + n, "%lf", &frac);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = (double)timegm(&tm) + frac;
	return 0;
}
