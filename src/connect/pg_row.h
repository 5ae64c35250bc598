/* A source row from its columns' text: shared by the polling source
 * (pg.c, from a query's result) and changes mode (pg_changes.c, from a
 * replication stream's tuple), so both name, check and refuse rows alike. */
#ifndef SLUICE_CONNECT_PG_ROW_H
#define SLUICE_CONNECT_PG_ROW_H

#include "sluice/connect.h"

/* The columns a row is made of, by role. */
enum {
	PG_ROW_ID,
	PG_ROW_CREATED_AT,
	PG_ROW_COMPETITION,
	PG_ROW_AGENT,
	PG_ROW_DATA_TYPE,
	PG_ROW_OBJECT_KEY,
	PG_ROW_SIZE,            /* what the listing knows (octet_length; S3 mode: size_bytes) */
	PG_ROW_RECORDED_SIZE,   /* size_bytes: what the row records */
	PG_ROW_BUCKET,          /* S3 mode: bucket_name */
	PG_ROW_CONTENT_HASH,    /* content_hash */
	PG_ROW_N,               /* fields of a row */
	PG_ROW_DATA = PG_ROW_N, /* the data column: named, never a field */
	PG_ROW_NAMES
};

/* The configured column name of each role (NULL for roles the mode does
 * not read: object_key in direct mode, say, or SIZE, which is computed). */
void sl_pg_row_names(const sl_pg_config *cfg, const char *names[PG_ROW_NAMES]);

/* The row of these fields (NULL: a NULL column), as the polling source
 * lists it, without bytes. id and created_at are required (SL_ECORRUPT);
 * a row that cannot be moved as it stands (no valid key, no object_key)
 * comes back with its reason in out->error. */
int sl_pg_row_build(sl_row *out, int s3_mode, const char *const fields[PG_ROW_N],
                    const char *table_name);

#endif
