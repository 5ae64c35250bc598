/* Private to pipeline/: the mirror's PostgreSQL side (mirror_pg.c), used by
 * the loop that reads the source and batches (mirror.c) and by the dead
 * letter commands (mirror_dlq.c). */
#ifndef SLUICE_PIPELINE_MIRROR_INTERNAL_H
#define SLUICE_PIPELINE_MIRROR_INTERNAL_H

#include "connect/pg_conn.h"
#include "sluice/mirror.h"

/* Each connection's temporary table of the batch in flight (ON COMMIT
 * DELETE ROWS), and the COPY that fills it (mirror_copy_events). */
#define MIRROR_BATCH_TABLE "pg_temp.sluice_batch"
#define MIRROR_COPY_SQL                                                                            \
	"COPY " MIRROR_BATCH_TABLE                                                                 \
	" (pos, key, op, value, version, was_missed) FROM STDIN (FORMAT binary);"

/* The target's set reconciliation item (mirror_reconcile.c) as PostgreSQL
 * computes it: SHA-256(key || 0x00 || SHA-256(value)), in a generated
 * column of the target table, so it is hashed once per write. Declared
 * immutable: convert_to depends on the database's encoding only, which
 * never changes. */
#define MIRROR_ITEM_FUNCTION_SQL                                                                   \
	"CREATE OR REPLACE FUNCTION sluice_item_id(text, bytea) RETURNS bytea LANGUAGE sql"        \
	" IMMUTABLE STRICT PARALLEL SAFE AS"                                                       \
	" $$SELECT sha256(convert_to($1, 'UTF8') || '\\x00'::bytea || sha256($2))$$;"
/* The columns reconciliation needs in the target table. */
#define MIRROR_RECONCILE_COLUMNS                                                                   \
	"missing_in_source_since timestamptz, sluice_item bytea GENERATED ALWAYS AS"               \
	" (CASE WHEN deleted THEN NULL ELSE sluice_item_id(key, value) END) STORED"

/* How a transaction failed, which decides what happens next. */
typedef enum mirror_fail_kind {
	FAIL_NONE = 0,
	FAIL_UNAVAILABLE, /* the server is gone or refuses work for now (class
	                     08, 57P0x, 53, no SQLSTATE): retried until it
	                     comes back, never a dead letter */
	FAIL_TRANSIENT,   /* a retry can fix it (40001, 40P01, 55P03, 57014,
	                     the handler's RETRY): retried up to max_attempts */
	FAIL_POISON,      /* an event's fault (anything else, the handler's
	                     POISON): isolated and, alone, dead-lettered */
	FAIL_FENCED,      /* the finishing compare-and-set found another value */
	FAIL_FATAL        /* no retry helps: permissions (SL_EAUTH), out of memory */
} mirror_fail_kind;

typedef struct mirror_fail {
	mirror_fail_kind kind;
	int code; /* the sl error code */
	char sqlstate[6];
	char error[512];
} mirror_fail;

typedef struct mirror_db {
	sl_pg_conn pg;
	const sl_mirror_options *o;
	char *table;       /* quoted */
	char *setup;       /* per connection: the temporary table */
	char *sql_write;   /* COPY and the guarded writes */
	int write_results; /* results the writes return */
	int repair;        /* the writes are a reconciliation's repairs */
	uint64_t written;  /* rows the last apply wrote (known with a handler or
	                      repairing) */
} mirror_db;

/* Connects, creates and checks the tables, builds the statements. */
int mirror_db_open(mirror_db *db, const sl_mirror_options *o);
/* The same; with repair, the writes also replace a row of the same
 * version that holds something else (reconciliation: the source's state
 * is the truth), and db->written counts the rows written. */
int mirror_db_open_as(mirror_db *db, const sl_mirror_options *o, int repair);
void mirror_db_close(mirror_db *db);

/* The stored position of source, and the state saved with it. A row made
 * for a new source starts at 0, or, when the source was mirrored under
 * another partitioning (workers), at the slowest of those rows. */
int mirror_db_position(mirror_db *db, const char *source, uint64_t *pos, char *state, size_t cap);

/* How a batch's transaction ends: a statement that must change exactly
 * one row (the position's compare-and-set, or the removal of the dead
 * letter being retried), else the batch is fenced and rolled back. */
typedef struct mirror_finish {
	char *sql; /* owned */
	const char *what;
} mirror_finish;

/* The compare-and-set of source's position from old to new, saving state
 * and adding n events to its count. */
int mirror_finish_position(mirror_db *db, mirror_finish *f, const char *source, uint64_t old,
                           uint64_t new_pos, const char *state, uint64_t n);
void mirror_finish_free(mirror_finish *f);

/* The events to COPY into pg_temp.sluice_batch, as COPY_SQL of mirror_pg.c
 * names its columns: a copy callback (sl_pg_call.copy) with ctx a
 * mirror_copy_src. */
typedef struct mirror_copy_src {
	const sl_event *events;
	size_t n;
	int was_missed;
} mirror_copy_src;
int mirror_copy_events(sl_pg_conn *c, void *ctx);

/* The compare-and-set of a backfill range's progress (mirror_backfill.c)
 * from old to new_pos, by the claim that holds it (owner and the attempts
 * its claim made), adding n to its rows and renewing its lease by
 * lease_ms; done: the range ends there (state 'done', no lease). */
int mirror_finish_range(mirror_db *db, mirror_finish *f, const char *job, int32_t id,
                        const char *owner, uint32_t claim, uint64_t old, uint64_t new_pos,
                        uint64_t n, uint64_t lease_ms, int done);

/* A column a table must have: its name and its type as format_type names
 * it (or alt_type). */
typedef struct mirror_column {
	const char *name, *type, *alt_type;
} mirror_column;

/* The table, if it exists, must have each column of cols ({NULL}-ended)
 * with its type: SL_EINVAL naming what differs. */
int mirror_db_check_table(mirror_db *db, const char *table, const mirror_column *cols);

/* One transaction: finish's statement, the events into sluice_batch, the
 * guarded writes, the handler, apply_sql, COMMIT. attempt and was_missed
 * go to the handler. SL_OK, or an error with *fail saying what kind. */
int mirror_db_apply(mirror_db *db, const sl_event *events, size_t n, uint32_t attempt,
                    int was_missed, const mirror_finish *finish, mirror_fail *fail);

/* One transaction: finish's statement and a dead letter for ev. */
int mirror_db_dead_letter(mirror_db *db, const char *source, const sl_event *ev,
                          const mirror_fail *why, uint32_t attempts, uint64_t first_failure_ms,
                          const mirror_finish *finish, mirror_fail *fail);

/* Record that source lost the events at positions [from, to) before they
 * were read (message: what the source said). With finish (the position's
 * compare-and-set to `to`) in the same transaction, marked continued;
 * without, only recorded (the mirror stops there). Recording the same gap
 * again keeps one row. */
int mirror_db_gap(mirror_db *db, const char *source, uint64_t from, uint64_t to,
                  const char *message, const mirror_finish *finish, mirror_fail *fail);

/* Best effort: remember the last error of source in its position row
 * (NULL: clear it). */
void mirror_db_note_error(mirror_db *db, const char *source, const char *error);

/* Whether a source's read error may pass if read again (network, server,
 * a source asking to slow down), as opposed to one about what it holds
 * (malformed, proved false, a gap, a position it cannot read); mirror.c. */
int mirror_read_error_transient(int rc);

/* A connection for reading only (status, dead letters, backfill jobs),
 * made on demand; mirror_admin.c. */
void mirror_reader_init(sl_pg_conn *c, const sl_mirror_options *o);
void mirror_reader_close(sl_pg_conn *c);

/* Fill *fail from the error just set (sl_error_last) and the SQLSTATE. */
void mirror_fail_from(mirror_fail *fail, int code, const char *sqlstate);

#endif
