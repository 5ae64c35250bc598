/* The node sink's test hook (connect/node.c). */
#ifndef SLUICE_CONNECT_NODE_H
#define SLUICE_CONNECT_NODE_H

#include <stddef.h>

#include "sluice/connect.h"

/* Commit early once the gathered values pass `bytes` (default 16 MiB), so a
 * test can make an early commit with a few small objects. */
void sl_node_sink_set_pending_budget(sl_sink *s, size_t bytes);

#endif
