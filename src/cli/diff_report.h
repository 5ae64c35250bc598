/* Printing a diff's report (diff_report.c), shared by `sluice diff` and
 * `sluice engine diff`. */
#ifndef SLUICE_CLI_DIFF_REPORT_H
#define SLUICE_CLI_DIFF_REPORT_H

#include "sluice/sync.h"

/* {only_local, only_remote, different, round_trips, bytes_sent,
 * bytes_received, vanished} and, with pull, {pulled, conflicts}. */
int cli_diff_print_json(const char *name, const sl_diff_report *r, int pull);
/* "only in HERE", "only in THERE", "different", then the traffic. */
void cli_diff_print_text(const char *here, const char *there, const sl_diff_report *r, int pull);

#endif
