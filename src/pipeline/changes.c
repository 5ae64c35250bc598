/* Changes mode: the source table's inserts, updates and deletes, by logical
 * replication, reach the destination in commit order (connect/pg_changes.c
 * reads the stream; exec.c runs each batch's jobs on the workers).
 *
 * A run:
 *   1. The first run opens (or reuses) the publication and the slot. A slot
 *      we create exports a snapshot: the state of the table at the slot's
 *      consistent point. The position (slot, publication, what we created,
 *      "copying", the slot's LSN) is saved before anything is copied.
 *   2. The copy: the table's rows in id order, a batch at a time, read in
 *      the snapshot; each batch's outcomes and the last id done are saved in
 *      one state transaction.
 *   3. The stream, from the saved LSN: each batch of changes is turned into
 *      one job per row id (the last change of a row in the batch wins; a
 *      TRUNCATE deletes every row known before it), run, and saved with the
 *      new LSN; only then is the LSN confirmed to the server. A run ends
 *      when it reaches the server's WAL position read when streaming began.
 *   Failures that are due are retried in every batch, by reading the row
 *   again: present, it is stored at its key; gone, it is removed.
 *
 * Jobs. The keys a row's object may be at are recorded in the state (table
 * `objects`), because a delete names only the id. A job for a row present
 * in the table removes every recorded key but the row's key, then stores
 * the object at that key; a job for a deleted row removes every recorded
 * key. Once a job succeeds, the row's other keys are forgotten. Every job
 * brings the destination in line with the row as the table holds it (or
 * will, once the stream is applied), so running a job again, or an older
 * change after a newer one, is harmless.
 *
 * Invariants:
 *   C1  The LSN is confirmed to the server only after the state transaction
 *       that saved the outcomes of every change before it. After a crash the
 *       server replays from the confirmed LSN (or later, from the saved
 *       one), so no change is lost; replayed jobs are idempotent.
 *   C2  The copy misses nothing: a row changed after the slot's consistent
 *       point is in the stream; one unchanged since is in the snapshot. If
 *       the snapshot is lost (a crash mid-copy), the copy goes on in the
 *       live table: a row read there is at least as new as the snapshot's,
 *       and the stream, replayed from the consistent point, then brings
 *       every later change in order, so the destination still converges to
 *       the table.
 *   C3  No object is ever at a key the state does not remember: a job's
 *       key is recorded, in its own transaction, before the job runs (a
 *       replay after a crash may read a newer row, with another key, than
 *       the run that crashed stored). Keys are forgotten only after the
 *       removal of their object succeeded. A failed object never holds the
 *       LSN back: it becomes a failure row (P2, P3 of run.c), retried
 *       against the row as the table holds it.
 *   C4  A row's jobs never run concurrently: one job per row id per batch,
 *       and keys contain the row id, so two jobs never touch one key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline_internal.h"

#define STREAM_WAIT_MS 500u /* longest a batch waits for its first change */

/* One row's latest change in a batch. */
typedef struct entry {
	const char *id;
	size_t seq;        /* order in the batch; a truncate's deletes take its seq */
	sl_change_op op;   /* UPSERT or DELETE */
	sl_change *change; /* UPSERT: the change; else NULL */
	uint32_t prior;    /* a due failure's attempts */
	int from_failure;  /* no change of the batch, a due failure's retry */
} entry;

typedef struct changes_run {
	sl_pipeline_state *st;
	sl_pg_source *table;
	sl_pipeline_pool *pool;
	const sl_pipeline_options *o;
	sl_pipeline_changes pos;
	sl_pipeline_progress *prog;
	uint64_t rng;
	uint64_t batch_start_ns; /* for progress->batch_ns */
	/* the batch being built */
	entry *entries;
	size_t n_entries, cap_entries;
	char **owned_ids; /* ids the entries point to that no change holds */
	size_t n_owned, cap_owned;
} changes_run;

static int entry_cmp(const void *a, const void *b)
{
	const entry *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c != 0 ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int push_entry(changes_run *r, const entry *e)
{
	entry *grown = sl_grow(r->entries, &r->cap_entries, r->n_entries, sizeof(*grown), 64);
	if (grown == NULL)
		return SL_ENOMEM;
	r->entries = grown;
	r->entries[r->n_entries++] = *e;
	return SL_OK;
}

/* An id that outlives the call (the entry points at it). */
static int own_id(changes_run *r, const char *id, const char **out)
{
	char **grown = sl_grow(r->owned_ids, &r->cap_owned, r->n_owned, sizeof(*grown), 64);
	if (grown == NULL)
		return SL_ENOMEM;
	r->owned_ids = grown;
	if ((r->owned_ids[r->n_owned] = sl_strdup(id)) == NULL)
		return SL_ENOMEM;
	*out = r->owned_ids[r->n_owned++];
	return SL_OK;
}

static void batch_reset(changes_run *r)
{
	for (size_t i = 0; i < r->n_owned; i++)
		sl_free(r->owned_ids[i]);
	r->n_owned = 0;
	r->n_entries = 0;
}

typedef struct truncate_ctx {
	changes_run *r;
	size_t seq;
} truncate_ctx;

static int truncate_one(void *ctx, const char *row_id)
{
	truncate_ctx *t = ctx;
	entry e = {.seq = t->seq, .op = SL_CHANGE_DELETE};
	int rc = own_id(t->r, row_id, &e.id);
	return rc == SL_OK ? push_entry(t->r, &e) : rc;
}

/* The batch's changes as entries, the last per row id first after sorting. */
static int collect(changes_run *r, sl_change_batch *b)
{
	int rc;

	for (size_t i = 0; i < b->n; i++) {
		sl_change *c = &b->changes[i];
		if (c->op == SL_CHANGE_TRUNCATE) {
			/* every row known, and every row of the batch so far, is gone */
			truncate_ctx t = {r, i + 1};
			size_t before = r->n_entries;
			if ((rc = sl_pipeline_state_object_ids(r->st, truncate_one, &t)) != SL_OK)
				return rc;
			for (size_t k = 0; k < before; k++) {
				entry e = {.id = r->entries[k].id,
				           .seq = i + 1,
				           .op = SL_CHANGE_DELETE};
				if ((rc = push_entry(r, &e)) != SL_OK)
					return rc;
			}
			continue;
		}
		entry e = {.id = c->row.id,
		           .seq = i + 1,
		           .op = c->op,
		           .change = c->op == SL_CHANGE_UPSERT ? c : NULL};
		if ((rc = push_entry(r, &e)) != SL_OK)
			return rc;
	}
	return SL_OK;
}

/* Due failures join the batch: an entry of their row takes their attempts;
 * a row with no change in the batch is retried as the table holds it. */
static int add_due(changes_run *r)
{
	sl_pipeline_due *due = NULL;
	size_t n_due = 0;
	int rc;

	if ((rc = sl_pipeline_state_due(r->st, sl_clock_wall_ms(), r->o->batch_size, &due,
	                                &n_due)) != SL_OK)
		return rc;
	for (size_t i = 0; i < n_due && rc == SL_OK; i++) {
		entry e = {.seq = 0,
		           .op = SL_CHANGE_UPSERT,
		           .prior = due[i].attempts,
		           .from_failure = 1};
		if ((rc = own_id(r, due[i].row_id, &e.id)) == SL_OK)
			rc = push_entry(r, &e);
	}
	sl_free(due);
	return rc;
}

/* Sorts the entries by (id, seq) and keeps the last of each id, carrying a
 * failure's attempts over to it. */
static void keep_last(changes_run *r)
{
	size_t out = 0;

	if (r->n_entries > 1)
		qsort(r->entries, r->n_entries, sizeof(*r->entries), entry_cmp);
	for (size_t i = 0; i < r->n_entries; i++) {
		entry *e = &r->entries[i];
		if (out > 0 && strcmp(r->entries[out - 1].id, e->id) == 0) {
			uint32_t prior = r->entries[out - 1].prior;
			r->entries[out - 1] = *e;
			if (r->entries[out - 1].prior < prior)
				r->entries[out - 1].prior = prior;
			r->entries[out - 1].from_failure = 0;
			continue;
		}
		r->entries[out++] = *e;
	}
	r->n_entries = out;
}

/* The row as the table holds it now: *gone when it is not there. */
static int read_row(changes_run *r, const char *id, sl_row *out, int *gone)
{
	int rc = sl_pg_source_get(r->table, id, out);
	*gone = rc == SL_ENOTFOUND;
	return *gone ? SL_OK : rc;
}

/* The job for one entry: remove every key recorded for the row but the
 * one it is stored at now (all of them when the row is gone). */
static int make_job(changes_run *r, const entry *e, sl_pipeline_job *j)
{
	char **keys = NULL;
	size_t n_keys = 0;
	int gone = 0, rc;

	memset(j, 0, sizeof(*j));
	snprintf(j->row.id, sizeof(j->row.id), "%s", e->id);
	j->prior_attempts = e->prior;
	if ((rc = sl_pipeline_state_object_keys(r->st, e->id, &keys, &n_keys)) != SL_OK)
		return rc;
	j->remove_keys = keys; /* owned by the job from here */
	j->n_remove = n_keys;
	if (e->op == SL_CHANGE_UPSERT && (e->change == NULL || e->change->incomplete)) {
		sl_row row;
		memset(&row, 0, sizeof(row));
		if ((rc = read_row(r, e->id, &row, &gone)) != SL_OK)
			return rc;
		if (!gone)
			j->row = row;
	} else if (e->op == SL_CHANGE_UPSERT) {
		j->row = e->change->row; /* moved: the batch no longer owns it */
		memset(&e->change->row, 0, sizeof(e->change->row));
	} else {
		gone = 1;
	}
	if (gone) {
		/* removed from the table: remove its object (named by its first
		 * key in failures and logs) */
		if (n_keys > 0 && (j->row.key = sl_strdup(keys[0])) == NULL)
			return SL_ENOMEM;
		return SL_OK;
	}
	if (j->row.error != NULL) {
		/* cannot be moved as it stands: the objects stay as recorded */
		sl_pipeline_job_settle(j, SL_EINVAL, j->row.error);
		return SL_OK;
	}
	j->store = 1;
	for (size_t i = 0; i < j->n_remove; i++) {
		if (strcmp(j->remove_keys[i], j->row.key) == 0) {
			/* where it goes: not removed */
			sl_free(j->remove_keys[i]);
			j->remove_keys[i] = j->remove_keys[--j->n_remove];
			break;
		}
	}
	return SL_OK;
}

/* C3: every key a job may store at is recorded before it runs. */
static int record_keys(changes_run *r, const sl_pipeline_job *jobs, size_t n)
{
	const char **ids = NULL, **keys = NULL;
	size_t m = 0;
	int rc = SL_OK;

	if (n > 0 && ((ids = sl_calloc(n, sizeof(*ids))) == NULL ||
	              (keys = sl_calloc(n, sizeof(*keys))) == NULL))
		rc = SL_ENOMEM;
	for (size_t i = 0; rc == SL_OK && i < n; i++) {
		if (!jobs[i].store || jobs[i].settled)
			continue;
		ids[m] = jobs[i].row.id;
		keys[m++] = jobs[i].row.key;
	}
	if (rc == SL_OK)
		rc = sl_pipeline_state_record_keys(r->st, ids, keys, m);
	sl_free(ids);
	sl_free(keys);
	return rc;
}

/* Runs the jobs and saves them with the position in one transaction. */
static int run_and_save(changes_run *r, sl_pipeline_job *jobs, size_t n)
{
	sl_pipeline_outcome *outcomes = NULL;
	uint64_t now;
	int rc;

	if ((rc = record_keys(r, jobs, n)) != SL_OK)
		return rc;
	if (n > 0 && (rc = sl_pipeline_pool_run(r->pool, jobs, n)) != SL_OK)
		return rc;
	now = sl_clock_wall_ms();
	if (n > 0 && (outcomes = sl_calloc(n, sizeof(*outcomes))) == NULL)
		return SL_ENOMEM;
	sl_pipeline_outcomes(r->o, jobs, n, outcomes, now, &r->rng, r->prog);
	for (size_t i = 0; i < n; i++) {
		outcomes[i].track_key = 1;
		outcomes[i].keep_key = jobs[i].store ? jobs[i].row.key : NULL;
	}
	rc = sl_pipeline_state_save_batch(r->st, NULL, &r->pos, outcomes, n, now);
	sl_free(outcomes);
	if (rc == SL_OK) {
		r->prog->batches++;
		r->prog->batch_ns = sl_clock_mono_ns() - r->batch_start_ns;
		if (r->o->progress != NULL)
			r->o->progress(r->o->progress_ctx, r->prog);
	}
	return rc;
}

/* Entries to jobs, run, saved. */
static int apply_entries(changes_run *r)
{
	sl_pipeline_job *jobs = NULL;
	size_t n = 0;
	int rc = SL_OK;

	keep_last(r);
	if (r->n_entries > 0 && (jobs = sl_calloc(r->n_entries, sizeof(*jobs))) == NULL)
		return SL_ENOMEM;
	for (; n < r->n_entries; n++)
		if ((rc = make_job(r, &r->entries[n], &jobs[n])) != SL_OK) {
			n++;
			goto cleanup;
		}
	rc = run_and_save(r, jobs, n);
cleanup:
	sl_pipeline_jobs_free(jobs, n);
	batch_reset(r);
	return rc;
}

/* Step 2: the table in id order, in the snapshot while it lasts. */
static int copy_table(changes_run *r)
{
	int rc = SL_OK;

	while (r->pos.copying && (r->o->stop == NULL || !*r->o->stop)) {
		sl_row_batch rows = {0};
		sl_change_batch as_changes = {0};

		r->batch_start_ns = sl_clock_mono_ns();
		if ((rc = sl_pg_source_scan(r->table, r->pos.copy_after, r->o->batch_size,
		                            &rows)) != SL_OK)
			break;
		if (rows.n == 0)
			r->pos.copying = 0;
		else
			snprintf(r->pos.copy_after, sizeof(r->pos.copy_after), "%s",
			         rows.rows[rows.n - 1].id);
		/* the rows as upserts, so they take the same path as the stream's */
		if (rows.n > 0 &&
		    (as_changes.changes = sl_calloc(rows.n, sizeof(sl_change))) == NULL)
			rc = SL_ENOMEM;
		for (size_t i = 0; rc == SL_OK && i < rows.n; i++) {
			as_changes.changes[i].op = SL_CHANGE_UPSERT;
			as_changes.changes[i].row = rows.rows[i];
			memset(&rows.rows[i], 0, sizeof(rows.rows[i]));
			as_changes.n++;
		}
		if (rc == SL_OK)
			rc = collect(r, &as_changes);
		if (rc == SL_OK)
			rc = add_due(r);
		if (rc == SL_OK)
			rc = apply_entries(r);
		r->prog->rows += as_changes.n;
		batch_reset(r);
		sl_change_batch_free(&as_changes);
		sl_row_batch_free(&rows);
		if (rc != SL_OK)
			break;
	}
	if (!r->pos.copying)
		sl_pg_source_end_snapshot(r->table);
	return rc;
}

/* Step 3: the stream until the target. */
static int follow(changes_run *r, sl_pg_changes *ch)
{
	uint64_t target = 0;
	int rc;

	if ((rc = sl_pg_changes_wal_position(ch, &target)) != SL_OK ||
	    (rc = sl_pg_changes_start(ch, r->pos.lsn)) != SL_OK)
		return rc;
	while (r->o->stop == NULL || !*r->o->stop) {
		sl_change_batch b;
		uint64_t before = r->pos.lsn;
		int caught_up;

		if ((rc = sl_pg_changes_next(ch, r->o->batch_size, target, STREAM_WAIT_MS, &b)) !=
		    SL_OK)
			return rc;
		r->batch_start_ns =
		        sl_clock_mono_ns(); /* the wait for changes is not the batch's */
		rc = collect(r, &b);
		if (rc == SL_OK)
			rc = add_due(r);
		if (b.done_lsn > r->pos.lsn)
			r->pos.lsn = b.done_lsn;
		if (b.caught_up)
			r->pos.caught_up_ms = sl_clock_wall_ms();
		r->prog->rows += b.n;
		caught_up = b.caught_up;
		if (rc == SL_OK && (r->n_entries > 0 || r->pos.lsn != before || caught_up))
			rc = apply_entries(r);
		batch_reset(r);
		sl_change_batch_free(&b);
		/* C1: confirmed only once saved */
		if (rc == SL_OK)
			rc = sl_pg_changes_confirm(ch, r->pos.lsn);
		if (rc != SL_OK || caught_up)
			return rc;
	}
	return SL_OK;
}

/* `sluice retry`: only the failures that are due, no slot, no stream. */
static int retry_failures(changes_run *r)
{
	int rc;

	if ((rc = sl_pipeline_state_changes(r->st, &r->pos)) != SL_OK || !r->pos.known)
		return rc; /* no run yet: no failure either */
	while (r->o->stop == NULL || !*r->o->stop) {
		r->batch_start_ns = sl_clock_mono_ns();
		if ((rc = add_due(r)) != SL_OK)
			return rc;
		if (r->n_entries == 0)
			return SL_OK;
		if ((rc = apply_entries(r)) != SL_OK)
			return rc;
	}
	return SL_OK;
}

/* Step 1: the position, from the state or made now. */
static int begin(changes_run *r, const sl_pg_config *pg, const char *slot, const char *publication,
                 sl_pg_changes **ch)
{
	sl_pg_changes_setup setup;
	int rc;

	if ((rc = sl_pipeline_state_changes(r->st, &r->pos)) != SL_OK)
		return rc;
	if (r->pos.known &&
	    (strcmp(r->pos.slot, slot) != 0 || strcmp(r->pos.publication, publication) != 0))
		return sl_error_set(
		        SL_EINVAL,
		        "the state follows slot %s and publication %s, the config names "
		        "%s and %s: `sluice reset` first to follow others",
		        r->pos.slot, r->pos.publication, slot, publication);
	memset(&setup, 0, sizeof(setup));
	setup.slot = slot;
	setup.publication = publication;
	setup.may_create = !r->pos.known;
	if ((rc = sl_pg_changes_open(ch, pg, &setup)) != SL_OK)
		return rc;
	if (r->pos.known)
		return SL_OK;
	memset(&r->pos, 0, sizeof(r->pos));
	r->pos.known = 1;
	snprintf(r->pos.slot, sizeof(r->pos.slot), "%s", slot);
	snprintf(r->pos.publication, sizeof(r->pos.publication), "%s", publication);
	r->pos.created_slot = setup.created_slot;
	r->pos.created_publication = setup.created_publication;
	r->pos.copying = 1;
	/* a slot we made: its consistent point; one we found: where it is
	 * (0 asks the server to start from the slot's confirmed position) */
	r->pos.lsn = setup.created_slot ? setup.start_lsn : 0;
	if ((rc = sl_pipeline_state_changes_begin(r->st, &r->pos)) != SL_OK)
		return rc;
	if (setup.snapshot[0] != '\0')
		return sl_pg_source_use_snapshot(r->table, setup.snapshot);
	sl_log(SL_LOG_INFO, "reusing a replication slot: the first copy reads the live table",
	       "slot=%s", slot);
	return SL_OK;
}

int sl_pipeline_run_changes(sl_pipeline_state *st, sl_pg_source *table, const sl_pg_config *pg,
                            const char *slot, const char *publication, sl_sink *sink,
                            const sl_pipeline_options *o, sl_pipeline_progress *out)
{
	sl_pipeline_progress prog;
	sl_pg_changes *ch = NULL;
	changes_run r;
	int rc;

	memset(&prog, 0, sizeof(prog));
	memset(&r, 0, sizeof(r));
	if (sink->ops->remove == NULL)
		return sl_error_set(SL_EINVAL,
		                    "changes mode: the %s destination cannot remove "
		                    "objects",
		                    sink->ops->kind);
	r.st = st;
	r.table = table;
	r.o = o;
	r.prog = &prog;
	r.rng = sl_clock_mono_ns() | 1;
	if ((rc = sl_pipeline_state_lock(st)) != SL_OK)
		return rc;
	if ((rc = sl_pipeline_pool_start(&r.pool, o, sink)) == SL_OK && o->retry_only)
		rc = retry_failures(&r);
	else if (rc == SL_OK && (rc = begin(&r, pg, slot, publication, &ch)) == SL_OK &&
	         (rc = copy_table(&r)) == SL_OK && !r.pos.copying)
		rc = follow(&r, ch);
	sl_pg_source_end_snapshot(table);
	sl_pg_changes_close(ch);
	sl_pipeline_pool_stop(r.pool);
	batch_reset(&r);
	sl_free(r.entries);
	sl_free(r.owned_ids);
	sl_pipeline_state_unlock(st);
	if (out != NULL)
		*out = prog;
	return rc;
}
