/* The source a mirror's config names, opened for the `sluice mirror`
 * commands (mirror_source.c): the whole source, one worker's share of it,
 * or, when it cannot be opened, the name it would have. */
#ifndef SLUICE_CLI_MIRROR_SOURCE_H
#define SLUICE_CLI_MIRROR_SOURCE_H

#include <stddef.h>

#include "cli/mirror_config.h"
#include "sluice/event_source.h"

/* Opens the source, known by [source] name when the config gives one; a
 * Kafka topic is no one source (SL_EINVAL): its partitions are workers. */
int cli_mirror_source_open(const cli_mirror_config *c, sl_event_source *out);

/* For commands that only need the source's name: opens it (1), or, when it
 * cannot be opened, puts the name it would have in src->name and the
 * reason in why (0). */
int cli_mirror_source_or_name(const cli_mirror_config *c, sl_event_source *src, char *why,
                              size_t cap);

/* The name the config's mirror is known by, which its position rows' names
 * start with: [source] name, or the name of the source as opened (when
 * opened is not NULL) or as it would be. */
void cli_mirror_base_name(const cli_mirror_config *c, const sl_event_source *opened, char *out,
                          size_t cap);

/* How many workers the mirror runs: [mirror] workers, or for a Kafka topic
 * its partitions (asked of the cluster). */
int cli_mirror_workers(const cli_mirror_config *c, unsigned *n);

/* An sl_mirror_open_fn with ctx the config: worker's share of the source,
 * the keys of its partition when there are several workers, or the
 * partition of that number of a Kafka topic. */
int cli_mirror_worker_open(void *ctx, unsigned worker, sl_event_source *out);

/* The position row's name of worker (of n) of the mirror known by base. */
void cli_mirror_worker_name(const cli_mirror_config *c, const char *base, unsigned worker,
                            unsigned n, char *out, size_t cap);

#endif
