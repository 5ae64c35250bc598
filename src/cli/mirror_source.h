/* The source a mirror's config names, opened for the `sluice mirror`
 * commands (mirror_source.c): the whole source, one worker's share of it,
 * or, when it cannot be opened, the name it would have. */
#ifndef SLUICE_CLI_MIRROR_SOURCE_H
#define SLUICE_CLI_MIRROR_SOURCE_H

#include <stddef.h>

#include "cli/mirror_config.h"
#include "sluice/event_source.h"

/* Opens the source, known by [source] name when the config gives one. */
int cli_mirror_source_open(const cli_mirror_config *c, sl_event_source *out);

/* For commands that only need the source's name: opens it (1), or, when it
 * cannot be opened, puts the name it would have in src->name and the
 * reason in why (0). */
int cli_mirror_source_or_name(const cli_mirror_config *c, sl_event_source *src, char *why,
                              size_t cap);

/* How many workers the config asks for ([mirror] workers). */
unsigned cli_mirror_workers(const cli_mirror_config *c);

/* An sl_mirror_open_fn with ctx the config: worker's share of the source,
 * the keys of its partition when there are several workers. */
int cli_mirror_worker_open(void *ctx, unsigned worker, sl_event_source *out);

/* The position row's name of a worker whose source is named `name`. */
void cli_mirror_worker_name(const cli_mirror_config *c, unsigned worker, const char *name,
                            char *out, size_t cap);

#endif
