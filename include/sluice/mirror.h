/* pipeline/: mirrors, an event source (sluice/event_source.h) applied to
 * PostgreSQL exactly once (src/pipeline/mirror.c has the design and the
 * invariants; docs/cli.md, "Mirror", the commands and the tables).
 *
 * Every batch of events is one transaction: the events are COPYed into a
 * temporary table sluice_batch(pos, key, op, value, version, was_missed),
 * the target table is upserted from it (guarded by version), the handler
 * runs, and the source's position moves with a compare-and-set on its old
 * value, all before COMMIT. A crash repeats at most the batch in flight,
 * whose transaction never committed.
 */
#ifndef SLUICE_MIRROR_H
#define SLUICE_MIRROR_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/event_source.h"
#include "sluice/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libpq's connection (PGconn), declared here so this header does not need
 * libpq's. */
struct pg_conn;

/* What a handler says of a batch. */
typedef enum sl_mirror_verdict {
	SL_MIRROR_OK = 0,    /* commit */
	SL_MIRROR_RETRY = 1, /* transient: roll back, try the batch again later */
	SL_MIRROR_POISON = 2 /* an event is bad: roll back, isolate it by splitting
	                        the batch; alone, it is retried up to max_attempts
	                        and then goes to the dead letters */
} sl_mirror_verdict;

/* One event as the handler sees it. */
typedef struct sl_mirror_event {
	const sl_event *event; /* pos, op, key, value, version */
	int is_new;            /* the target table had no row for the key (not even
	                          a tombstone) before this batch */
	int applied;           /* this event is what the target row now holds: it
	                          was the newest of its key in the batch and newer
	                          than the row */
	int was_missed;        /* it comes from a reconciliation or a dead-letter
	                          retry, not from the stream in order */
	uint32_t attempt;      /* 1 the first time this event is tried */
} sl_mirror_event;

/* Called inside the batch's transaction, after the target table was
 * written, with the connection (blocking mode; sluice_batch holds the
 * batch). It may run any statement but must not COMMIT or ROLLBACK. Events
 * come in position order. `why` (cap bytes) may be filled with a reason
 * for RETRY or POISON; it is recorded as the error. */
typedef sl_mirror_verdict (*sl_mirror_handler)(void *ctx, struct pg_conn *conn,
                                               const sl_mirror_event *events, size_t n, char *why,
                                               size_t cap);

typedef struct sl_mirror_progress {
	uint64_t batches;        /* committed this run */
	uint64_t events;         /* events applied this run (dead letters not counted) */
	uint64_t dead;           /* events sent to the dead letters this run */
	uint64_t retries;        /* transactions tried again */
	uint64_t gaps;           /* gaps gone past (on_gap continue) this run */
	uint64_t pos;            /* the committed position */
	uint64_t last_commit_ms; /* the last batch: from its first event read to
	                            its COMMIT */
	uint64_t first_read_ns;  /* the last batch: monotonic time its first and
	                            last events were read */
	uint64_t last_read_ns;
	uint64_t commit_ns; /* and when it committed */
	size_t last_batch_events;
} sl_mirror_progress;

/* What a mirror does when its source lost events before they were read
 * (a Redis stream or Kafka partition trimmed past the position). Either
 * way the gap is recorded in sluice_mirror_gap and shown by the status. */
typedef enum sl_mirror_on_gap {
	SL_MIRROR_GAP_STOP = 0,    /* stop with SL_ENOTFOUND (the default) */
	SL_MIRROR_GAP_CONTINUE = 1 /* move the position past the gap and go on */
} sl_mirror_on_gap;

typedef struct sl_mirror_options {
	const char *pg_url;        /* required: libpq connection string or URI */
	const char *table;         /* the target table, default "mirror_items" (may be
	                              "schema.table") */
	int delete_removes;        /* a delete removes the row instead of keeping a
	                              tombstone (deleted = true) */
	const char *apply_sql;     /* SQL run once per batch in its transaction (after
	                              the upsert and the handler), or NULL */
	sl_mirror_handler handler; /* or NULL */
	void *handler_ctx;
	size_t batch_size;           /* events per batch, default 1000 */
	size_t batch_bytes;          /* bytes of keys and values, default 1 MiB */
	uint64_t batch_ms;           /* flush a batch this long after its first event,
	                                default 100 */
	uint32_t max_attempts;       /* of one event, then dead letters; default 5 */
	uint64_t retry_base_ms;      /* first backoff, default 100 */
	uint64_t retry_max_ms;       /* backoff cap, default 5000 */
	unsigned timeout_ms;         /* statement and connect timeout, default 30000 */
	int follow;                  /* 1: wait for new events until *stop; 0: apply
	                                what the source has, then return */
	volatile sig_atomic_t *stop; /* non-zero: finish the batch in flight, return */
	sl_mirror_on_gap on_gap;
	sl_metrics *metrics;        /* may be NULL */
	const char *metrics_labels; /* the metrics' labels, e.g. "worker=\"0\"", or NULL */
	void (*progress)(void *ctx, const sl_mirror_progress *p); /* after each commit */
	void *progress_ctx;
} sl_mirror_options;

void sl_mirror_options_init(sl_mirror_options *o);

/* Creates the mirror's tables if missing (the target table,
 * sluice_mirror_position, sluice_dead_letter) and checks their shape: a
 * table that exists with another shape is SL_EINVAL naming what differs. */
int sl_mirror_prepare(const sl_mirror_options *o);

/* Applies the source's events from the stored position (0 the first time)
 * until it has no more (follow 0) or *stop. Transient failures (the server
 * gone, serialization failures, deadlocks, timeouts) are retried with
 * backoff; other failures isolate the event that causes them, which goes
 * to the dead letters after max_attempts. Returns SL_OK, or:
 *   SL_ECONFLICT  fenced: another mirror moved this source's position;
 *   SL_ENOTFOUND  the source lost events before they were read (a gap,
 *                 recorded) and on_gap says stop;
 *   SL_EVERIFY    the source proved false (nothing of it was applied);
 *   SL_ECORRUPT   the source's input is not an event at some position;
 *   SL_EINVAL     a table of the wrong shape, a position the source
 *                 cannot read from, SQL that is not valid;
 *   SL_EAUTH      PostgreSQL refused the credentials or a permission.
 * *out (may be NULL) gets the totals of this run. */
int sl_mirror_run(sl_event_source *src, const sl_mirror_options *o, sl_mirror_progress *out);

/* Opens worker's source (0 <= worker < the number of workers), e.g. a
 * partition of a source's keys (sl_partition_source_open) or of a topic.
 * Each worker's source must have its own name (its position row). */
typedef int (*sl_mirror_open_fn)(void *ctx, unsigned worker, sl_event_source *out);

/* Runs `workers` mirrors at once, each with the source open_source gives
 * it, its own connection and its own position, in threads. A worker that
 * fails stops the others after their batch in flight, and its error (the
 * first) is returned. *out (may be NULL) sums the workers' counts (pos is
 * set with one worker only). With several workers the metrics carry a
 * label worker="I" and progress callbacks come one at a time. */
int sl_mirror_run_workers(sl_mirror_open_fn open_source, void *ctx, unsigned workers,
                          const sl_mirror_options *o, sl_mirror_progress *out);

/* ------------------------------------------------------ reconciliation */

struct sl_diff_peer; /* sluice/sync.h */

typedef struct sl_mirror_reconcile_report {
	int exact;              /* 1: with a namespace's items; 0: with a window */
	uint64_t compared;      /* target rows compared (exact: live rows) */
	uint64_t source_events; /* window: events read */
	uint64_t added;         /* keys the target lacked */
	uint64_t changed;       /* keys whose row held something else */
	uint64_t removed;       /* exact: keys the source does not have, deleted */
	uint64_t written;       /* rows the repairs wrote (fewer when the live
	                           mirror wrote a newer event first) */
	uint64_t flagged;       /* window: rows newly missing_in_source_since */
	uint64_t unflagged;     /* window: flags cleared, the key is back */
	uint64_t missing;       /* window: rows flagged in all */
	uint64_t vanished;      /* exact: source items gone while it was read */
	uint64_t round_trips;   /* exact: exchanges with the source */
	uint64_t bytes_sent, bytes_received;
	uint64_t version; /* exact: the version repairs carry */
	int64_t run_id;   /* its row in sluice_mirror_reconcile (0: dry run) */
} sl_mirror_reconcile_report;

/* Reconciles the target table with a namespace whose whole state peer
 * answers for (a store's or a node's, sluice/sync.h), by set
 * reconciliation: keys missing or different get the source's value, keys
 * only in the target are deleted, all at version source_end (the source's
 * end, read before this is called), through the batch transaction with
 * was_missed set. dry_run: compare and report only. Nothing is written
 * unless the comparison completed. Adds the columns sluice_item and
 * missing_in_source_since to the target table when it lacks them. */
int sl_mirror_reconcile_exact(const sl_mirror_options *o, const char *source,
                              struct sl_diff_peer *peer, uint64_t source_end, int dry_run,
                              sl_mirror_reconcile_report *out);

/* Reconciles the target table with what sources that keep a window (a
 * stream, the partitions of a topic) still hold, each read from its start
 * to where it ends now; source names the run. A key's newest event there
 * repairs its row when the row is missing, older, or different at the
 * same version; live rows whose key is in none of them are flagged
 * (missing_in_source_since), never deleted. */
int sl_mirror_reconcile_window(sl_event_source *const *srcs, size_t n, const char *source,
                               const sl_mirror_options *o, int dry_run,
                               sl_mirror_reconcile_report *out);

typedef struct sl_mirror_status {
	char source[512];
	int exists;                          /* 0: no position stored yet */
	uint64_t pos;                        /* the committed position */
	uint64_t applied;                    /* events applied, over all runs */
	uint64_t dead_letters;               /* of this source, waiting */
	uint64_t updated_ms;                 /* wall clock of the last commit, 0 never */
	char last_error[512];                /* the last failure, "" when the last batch worked */
	uint64_t last_error_ms;              /* its wall clock */
	int head_known;                      /* the source told where it ends */
	uint64_t head;                       /* then: its end position */
	uint64_t lag_events;                 /* head - pos (head known) */
	double lag_s;                        /* seconds since the position last moved while
	                                        events wait (0 when caught up) */
	uint64_t gaps;                       /* gaps recorded for this source */
	uint64_t last_gap_from, last_gap_to; /* the latest one's positions */
	uint64_t last_gap_ms;                /* when it was found */
	int last_gap_continued;              /* the mirror went on past it */
	char last_gap_message[512];
	uint64_t reconciled_ms;      /* the last finished reconcile of the source, 0 never */
	uint64_t reconciled_applied; /* its repairs */
	uint64_t missing_in_source;  /* rows it found flagged (a window) */
} sl_mirror_status;

/* src may be NULL (then nothing is known of the head). */
int sl_mirror_status_read(sl_event_source *src, const sl_mirror_options *o, const char *source,
                          sl_mirror_status *out);

typedef struct sl_dead_letter {
	int64_t id;
	const char *source;
	uint64_t pos;
	const char *key;
	const char *op;
	const uint8_t *payload; /* the value; NULL for a delete */
	size_t payload_len;
	uint64_t version;
	const char *sqlstate; /* "" when the handler refused it */
	const char *error;
	uint32_t attempts;
	const char *first_failure, *last_failure; /* timestamps, PostgreSQL's text */
} sl_dead_letter;

/* Calls cb for each dead letter (of source, or all when NULL), oldest
 * first; a non-zero return stops the walk and is returned. */
typedef int (*sl_dead_letter_fn)(void *ctx, const sl_dead_letter *d);
int sl_mirror_dlq_list(const sl_mirror_options *o, const char *source, sl_dead_letter_fn cb,
                       void *ctx);

/* Applies dead letters again (id, or all of source when id is 0; source
 * NULL: of every source), each in its own transaction that also deletes
 * it, through the same upsert and handler (was_missed set). One that fails
 * again stays, with its attempts and error updated. */
int sl_mirror_dlq_retry(const sl_mirror_options *o, const char *source, int64_t id,
                        uint64_t *applied, uint64_t *failed);

/* ------------------------------------------------------------ backfills
 *
 * A backfill applies [from, to) of a source by many workers at once
 * (pipeline/mirror_backfill.c has the design and the invariants): plan
 * splits it into ranges, rows of sluice_backfill_range; each worker claims
 * a range with a lease, applies its events from the range's progress in
 * batches, each batch one transaction with the guarded upsert, the
 * handler, apply_sql and the progress's compare-and-set, and renews its
 * lease as it goes. A worker that dies loses its lease, and another goes
 * on from the committed progress. Since every write is guarded by version,
 * ranges applied in any order give the table that applying the source in
 * order gives. */

#define SL_BACKFILL_JOB_MAX    128     /* bytes of a job's name */
#define SL_BACKFILL_RANGES_MAX 1000000 /* ranges of one job */

typedef struct sl_backfill_plan {
	const char *job;     /* required: 1 to SL_BACKFILL_JOB_MAX bytes */
	uint64_t from;       /* default 0 */
	uint64_t to;         /* used when to_set */
	int to_set;          /* 0: the source's head (the stored plan's end when the
	                        job exists) */
	uint32_t ranges;     /* split into this many ranges (of near equal size), */
	uint64_t range_size; /* or into ranges of this many positions (the last may
	                        be shorter): exactly one of them */
	int handoff;         /* default 1: make the live mirror's position row at
	                        `to` when the source has none, so that a mirror run
	                        or start goes on where the backfill ends */
} sl_backfill_plan;

void sl_backfill_plan_init(sl_backfill_plan *p);

typedef struct sl_backfill_planned {
	uint64_t from, to;
	uint32_t ranges;
	int existed;       /* the job was there with this plan: nothing was written */
	int handoff;       /* the live mirror's position was made at `to` now */
	int live_exists;   /* the source has a live position (made now or before), */
	uint64_t live_pos; /* this one */
} sl_backfill_planned;

/* Makes the tables if missing (the mirror's and sluice_backfill_range) and
 * writes the job's ranges, and the handoff, in one transaction. The same
 * plan of an existing job is SL_OK with existed = 1; another plan under
 * the job's name is SL_EEXISTS saying what the job holds. SL_EINVAL: an
 * empty or inverted interval, a `to` past the source's head, a source
 * that cannot tell its head and no `to`, too many ranges. */
int sl_mirror_backfill_plan(sl_event_source *src, const sl_mirror_options *o,
                            const sl_backfill_plan *p, sl_backfill_planned *out);

typedef struct sl_backfill_work_result {
	uint64_t claims;      /* ranges this worker claimed */
	uint64_t ranges_done; /* ranges it finished */
	uint64_t ranges_lost; /* leases it lost to another worker (its batch in
	                         flight was not applied) */
	uint64_t failures;    /* claims that ended in an error, recorded on the range */
	uint64_t batches;     /* committed by this worker */
	uint64_t events;      /* applied by this worker */
	uint64_t pending;     /* the job when the worker returned: ranges not
	                         finished (leased or not) */
	uint64_t done, dead;
} sl_backfill_work_result;

typedef struct sl_backfill_work_options {
	const char *job;             /* required */
	const char *worker;          /* the owner written on the ranges it claims; NULL:
	                                "HOST:PID" */
	uint64_t lease_ms;           /* default 30000: a claim not renewed for this long
	                                may be taken by another worker */
	uint32_t max_attempts;       /* default 5: claims of one range; a range claimed this
	                                often without finishing is dead */
	int no_wait;                 /* 1: return once nothing can be claimed; 0: wait for
	                                the ranges others hold, taking over those whose
	                                lease expires, until every range is done or dead */
	volatile sig_atomic_t *stop; /* non-zero: finish the batch in flight, give
	                                the range back (the claim not counted), return */
	void (*progress)(void *ctx, const sl_backfill_work_result *r); /* after each batch */
	void *progress_ctx;
} sl_backfill_work_options;

void sl_backfill_work_options_init(sl_backfill_work_options *w);

/* Works the job's ranges with src (a source of the job's own, by name, and
 * of this worker alone) until no range is pending (or, with no_wait,
 * claimable) or *stop. o gives the table, apply_sql, the handler (events
 * come with was_missed 1), batches and in-place retries of transient
 * failures as for a mirror. A range's failure is recorded on it and is
 * not the worker's: SL_OK then too (the result counts it, dead ranges
 * are in the job's counts). Errors: SL_ENOTFOUND no such job; SL_EINVAL
 * the job is of another source, tables of the wrong shape; SL_EAUTH;
 * what PostgreSQL says when it cannot be reached to claim. */
int sl_mirror_backfill_work(sl_event_source *src, const sl_mirror_options *o,
                            const sl_backfill_work_options *w, sl_backfill_work_result *out);

typedef struct sl_backfill_status {
	char job[SL_BACKFILL_JOB_MAX + 1];
	char source[512];
	int exists; /* 0: no such job (nothing else is set) */
	uint64_t from, to;
	uint64_t ranges;  /* all of them: */
	uint64_t pending; /* waiting for a claim (never claimed, released, or their
	                     lease expired) */
	uint64_t running; /* leased, the lease not expired */
	uint64_t done, dead;
	uint64_t rows;    /* events applied, over all ranges */
	uint64_t covered; /* positions done: the sum of progress - from */
} sl_backfill_status;

/* Reads the job; creates nothing. */
int sl_mirror_backfill_status(const sl_mirror_options *o, const char *job, sl_backfill_status *out);

typedef struct sl_backfill_range {
	int32_t id;
	uint64_t from, to, progress;
	const char *state; /* "pending", "done", "dead" */
	int running;       /* pending and leased */
	uint32_t attempts;
	const char *owner; /* the last claim's worker, "" never claimed */
	const char *error; /* the last error, "" none */
	uint64_t rows;
} sl_backfill_range;

/* Calls cb for each range of the job in state (NULL: all), by id; a
 * non-zero return stops the walk and is returned. */
typedef int (*sl_backfill_range_fn)(void *ctx, const sl_backfill_range *r);
int sl_mirror_backfill_ranges(const sl_mirror_options *o, const char *job, const char *state,
                              sl_backfill_range_fn cb, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
