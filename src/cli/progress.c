/*
 * Progress of a pipeline run: on a terminal, one line redrawn in place
 * (a bar over the rows that were behind at the start, rates, failures);
 * otherwise one log line per saved batch, for journals and files.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"

void cli_progress_init(cli_progress *p, FILE *out)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	p->tty = isatty(fileno(out));
	p->start_ns = sl_clock_mono_ns();
}

void cli_progress_update(void *ctx, const sl_pipeline_progress *pr)
{
	cli_progress *p = ctx;
	double secs = (double)(sl_clock_mono_ns() - p->start_ns) / 1e9;
	double rate = secs > 0 ? (double)pr->objects / secs : 0;
	double mbs = secs > 0 ? (double)pr->bytes / secs / 1e6 : 0;

	if (!p->tty) {
		sl_log(SL_LOG_INFO, "batch saved",
		       "batch=%llu rows=%llu objects=%llu bytes=%llu failed=%llu cursor=\"%s\"%s",
		       (unsigned long long)pr->batches, (unsigned long long)pr->rows,
		       (unsigned long long)pr->objects, (unsigned long long)pr->bytes,
		       (unsigned long long)pr->failed, pr->cursor ? pr->cursor->created_at : "",
		       pr->held_by ? " held_back=1" : "");
		return;
	}
	char bar[31];
	size_t filled = 0;
	if (pr->rows_behind > 0) {
		uint64_t done = pr->rows < pr->rows_behind ? pr->rows : pr->rows_behind;
		filled = (size_t)(done * 30 / pr->rows_behind);
	}
	for (size_t i = 0; i < 30; i++)
		bar[i] = i < filled ? '#' : (pr->rows_behind ? '-' : ' ');
	bar[30] = '\0';
	fprintf(p->out, "\r[%s] %llu/%llu rows  %.0f obj/s  %.1f MB/s  failed %llu%s\033[K", bar,
	        (unsigned long long)pr->rows, (unsigned long long)pr->rows_behind, rate, mbs,
	        (unsigned long long)pr->failed,
	        pr->held_by ? "  (held back by an open transaction)" : "");
	fflush(p->out);
	p->drawn = 1;
}

void cli_progress_done(cli_progress *p)
{
	if (p->tty && p->drawn)
		fputc('\n', p->out);
	p->drawn = 0;
}
