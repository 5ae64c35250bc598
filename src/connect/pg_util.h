/* Small libpq helpers (pg_link.c) shared by the PostgreSQL source, changes
 * mode, the connections with deadlines (pg_conn.c) and the engine's
 * PostgreSQL tier (engine/tier_pg.c). */
#ifndef SLUICE_CONNECT_PG_UTIL_H
#define SLUICE_CONNECT_PG_UTIL_H

#include <stddef.h>

/* libpq messages end in a newline and may span lines; make them one line
 * (at most cap - 1 characters). msg NULL is "". */
void sl_pg_one_line(char *out, size_t cap, const char *msg);
/* A notice processor that drops notices (they are not errors). */
void sl_pg_ignore_notice(void *arg, const char *message);

#endif
