/* A pipeline's state: one SQLite file (WAL mode) with
 *
 *   cursor    one row: the last source row done, in (created_at, id) order
 *   totals    one row: objects and bytes stored over all runs, last batch time
 *   failures  one row per object that failed and is not yet stored:
 *             attempts, last error, next attempt time, parked flag
 *   changes   changes mode only, one row: the slot and publication, whether
 *             we created them, the first copy's progress (by id) and the
 *             stream's position (an LSN)
 *   objects   changes mode only: the keys each row's object may be at,
 *             recorded before it is written there, so a delete (which
 *             names only the id) or a new key removes every copy
 *
 * In polling mode it grows with failures, not with objects; changes mode
 * keeps one small row per object (deletes need the key). A batch's outcome (new cursor,
 * new and cleared failures, totals) is written in one transaction by
 * sl_pipeline_state_save_batch, so after a crash the state describes either
 * the whole batch or none of it; the objects of an unsaved batch are sent
 * again, which sinks absorb because they are idempotent.
 *
 * The lock: a run holds an exclusive flock on PATH.lock for its duration,
 * so two runs (a `start` daemon and a hand-run `run`) never overlap.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "pipeline/pipeline_internal.h"

struct sl_pipeline_state {
	sqlite3 *db;
	char *path;
	int lock_fd;
};

static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS cursor(id INTEGER PRIMARY KEY CHECK (id = 1),"
        " created_at TEXT NOT NULL, row_id TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1),"
        " objects INTEGER NOT NULL, bytes INTEGER NOT NULL, last_run_ms INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS failures(row_id TEXT PRIMARY KEY, key TEXT NOT NULL,"
        " created_at TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT NOT NULL,"
        " next_attempt_ms INTEGER NOT NULL, parked INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS failures_due ON failures(parked, next_attempt_ms);"
        "CREATE TABLE IF NOT EXISTS changes(id INTEGER PRIMARY KEY CHECK (id = 1),"
        " slot TEXT NOT NULL, publication TEXT NOT NULL, created_slot INTEGER NOT NULL,"
        " created_publication INTEGER NOT NULL, copying INTEGER NOT NULL,"
        " copy_after TEXT NOT NULL, lsn INTEGER NOT NULL, caught_up_ms INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS objects(row_id TEXT NOT NULL, key TEXT NOT NULL,"
        " PRIMARY KEY (row_id, key)) WITHOUT ROWID;";

static int db_error(sl_pipeline_state *st, int rc, const char *what)
{
	char cause[64];
	snprintf(cause, sizeof(cause), "sqlite rc=%d", rc);
	return sl_error_set_cause(rc == SQLITE_BUSY ? SL_EBUSY : SL_EIO, cause, "state %s: %s: %s",
	                          st->path, what, sqlite3_errmsg(st->db));
}

int sl_pipeline_state_open(sl_pipeline_state **out, const char *path)
{
	sl_pipeline_state *st = sl_calloc(1, sizeof(*st));
	int rc;

	if (st == NULL)
		return SL_ENOMEM;
	st->lock_fd = -1;
	if ((st->path = sl_strdup(path)) == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                          NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "open");
		goto cleanup;
	}
	sqlite3_busy_timeout(st->db, 10000);
	if ((rc = sqlite3_exec(st->db, schema, NULL, NULL, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "create tables (is it a sluice state file?)");
		goto cleanup;
	}
	*out = st;
	return SL_OK;
cleanup:
	sl_pipeline_state_close(st);
	return rc;
}

void sl_pipeline_state_close(sl_pipeline_state *st)
{
	if (st == NULL)
		return;
	sl_pipeline_state_unlock(st);
	sqlite3_close(st->db);
	sl_free(st->path);
	sl_free(st);
}

int sl_pipeline_state_lock(sl_pipeline_state *st)
{
	char lock_path[4096];
	int fd;

	if (st->lock_fd >= 0)
		return SL_OK;
	snprintf(lock_path, sizeof(lock_path), "%s.lock", st->path);
	if ((fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return sl_error_set(SL_EIO, "open %s: %s", lock_path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char holder[32] = "";
		ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		close(fd);
		return sl_error_set(SL_EBUSY, "another run holds %s (pid %s)", lock_path,
		                    holder[0] ? holder : "unknown");
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
		close(fd);
		return sl_error_set(SL_EIO, "write %s: %s", lock_path, strerror(errno));
	}
	st->lock_fd = fd;
	return SL_OK;
}

void sl_pipeline_state_unlock(sl_pipeline_state *st)
{
	if (st->lock_fd < 0)
		return;
	close(st->lock_fd); /* drops the flock; the file stays for the next run */
	st->lock_fd = -1;
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
	snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

int sl_pipeline_state_status(sl_pipeline_state *st, sl_pipeline_status *out)
{
	static const char sql[] =
	        "SELECT (SELECT created_at FROM cursor), (SELECT row_id FROM cursor),"
	        " (SELECT objects FROM totals), (SELECT bytes FROM totals),"
	        " (SELECT last_run_ms FROM totals),"
	        " (SELECT count(*) FROM failures WHERE parked = 0),"
	        " (SELECT count(*) FROM failures WHERE parked = 1)";
	sqlite3_stmt *stmt = NULL;
	sl_pipeline_status s;
	int rc;

	memset(&s, 0, sizeof(s));
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_step(stmt)) != SQLITE_ROW) {
		rc = db_error(st, rc, "read status");
		goto cleanup;
	}
	copy_text(s.cursor.created_at, sizeof(s.cursor.created_at), sqlite3_column_text(stmt, 0));
	copy_text(s.cursor.id, sizeof(s.cursor.id), sqlite3_column_text(stmt, 1));
	s.objects = (uint64_t)sqlite3_column_int64(stmt, 2);
	s.bytes = (uint64_t)sqlite3_column_int64(stmt, 3);
	s.last_run_ms = (uint64_t)sqlite3_column_int64(stmt, 4);
	s.failing = (uint64_t)sqlite3_column_int64(stmt, 5);
	s.parked = (uint64_t)sqlite3_column_int64(stmt, 6);
	*out = s;
	rc = SL_OK;
cleanup:
	sqlite3_finalize(stmt);
	return rc;
}

int sl_pipeline_state_failures(sl_pipeline_state *st, int parked_only, sl_pipeline_failure_fn cb,
                               void *ctx)
{
	static const char sql[] =
	        "SELECT row_id, key, created_at, attempts, last_error, next_attempt_ms, parked"
	        " FROM failures WHERE parked >= ?1 ORDER BY created_at, row_id";
	sqlite3_stmt *stmt = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "list failures");
		goto cleanup;
	}
	sqlite3_bind_int(stmt, 1, parked_only ? 1 : 0);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		sl_pipeline_failure f = {
		        .row_id = (const char *)sqlite3_column_text(stmt, 0),
		        .key = (const char *)sqlite3_column_text(stmt, 1),
		        .created_at = (const char *)sqlite3_column_text(stmt, 2),
		        .attempts = (uint32_t)sqlite3_column_int64(stmt, 3),
		        .last_error = (const char *)sqlite3_column_text(stmt, 4),
		        .next_attempt_ms = (uint64_t)sqlite3_column_int64(stmt, 5),
		        .parked = sqlite3_column_int(stmt, 6),
		};
		if ((rc = cb(ctx, &f)) != 0)
			goto cleanup;
	}
	rc = rc == SQLITE_DONE ? SL_OK : db_error(st, rc, "list failures");
cleanup:
	sqlite3_finalize(stmt);
	return rc;
}

int sl_pipeline_state_due(sl_pipeline_state *st, uint64_t now_ms, size_t limit,
                          sl_pipeline_due **out, size_t *n_out)
{
	static const char sql[] = "SELECT row_id, attempts FROM failures"
	                          " WHERE parked = 0 AND next_attempt_ms <= ?1"
	                          " ORDER BY next_attempt_ms, row_id LIMIT ?2";
	sqlite3_stmt *stmt = NULL;
	sl_pipeline_due *due = NULL;
	size_t n = 0;
	int rc;

	if (limit > 0 && (due = sl_calloc(limit, sizeof(*due))) == NULL)
		return SL_ENOMEM;
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "read due failures");
		goto cleanup;
	}
	sqlite3_bind_int64(stmt, 1, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)limit);
	while (n < limit && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		copy_text(due[n].row_id, sizeof(due[n].row_id), sqlite3_column_text(stmt, 0));
		due[n].attempts = (uint32_t)sqlite3_column_int64(stmt, 1);
		n++;
	}
	if (n < limit && rc != SQLITE_DONE) {
		rc = db_error(st, rc, "read due failures");
		goto cleanup;
	}
	*out = due;
	*n_out = n;
	due = NULL;
	rc = SL_OK;
cleanup:
	sqlite3_finalize(stmt);
	sl_free(due);
	return rc;
}

static int exec(sl_pipeline_state *st, const char *sql, const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? SL_OK : db_error(st, rc, what);
}

/* Changes mode: the keys each row's object is no longer at, and the
 * position. */
static int save_changes(sl_pipeline_state *st, const sl_pipeline_changes *pos,
                        const sl_pipeline_outcome *outcomes, size_t n)
{
	static const char sql_forget[] = "DELETE FROM objects WHERE row_id = ?1 AND key IS NOT ?2";
	static const char sql_pos[] = "UPDATE changes SET copying = ?1, copy_after = ?2, lsn = ?3,"
	                              " caught_up_ms = ?4 WHERE id = 1";
	sqlite3_stmt *forget = NULL, *upd = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql_forget, -1, &forget, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(st->db, sql_pos, -1, &upd, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "prepare");
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		const sl_pipeline_outcome *o = &outcomes[i];
		if (!o->track_key || !o->stored)
			continue;
		sqlite3_reset(forget);
		sqlite3_bind_text(forget, 1, o->row->id, -1, SQLITE_STATIC);
		if (o->keep_key != NULL)
			sqlite3_bind_text(forget, 2, o->keep_key, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(forget, 2);
		if ((rc = sqlite3_step(forget)) != SQLITE_DONE) {
			rc = db_error(st, rc, "save object keys");
			goto cleanup;
		}
	}
	sqlite3_bind_int(upd, 1, pos->copying);
	sqlite3_bind_text(upd, 2, pos->copy_after, -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 3, (sqlite3_int64)pos->lsn);
	sqlite3_bind_int64(upd, 4, (sqlite3_int64)pos->caught_up_ms);
	if ((rc = sqlite3_step(upd)) != SQLITE_DONE || sqlite3_changes(st->db) != 1) {
		rc = rc == SQLITE_DONE
		             ? sl_error_set(SL_ECORRUPT, "state %s: no changes position", st->path)
		             : db_error(st, rc, "save position");
		goto cleanup;
	}
	rc = SL_OK;
cleanup:
	sqlite3_finalize(forget);
	sqlite3_finalize(upd);
	return rc;
}

int sl_pipeline_state_save_batch(sl_pipeline_state *st, const sl_cursor *cursor,
                                 const sl_pipeline_changes *position,
                                 const sl_pipeline_outcome *outcomes, size_t n, uint64_t now_ms)
{
	static const char sql_cursor[] =
	        "INSERT INTO cursor(id, created_at, row_id) VALUES (1, ?1, ?2)"
	        " ON CONFLICT(id) DO UPDATE SET created_at = ?1, row_id = ?2";
	static const char sql_totals[] =
	        "INSERT INTO totals(id, objects, bytes, last_run_ms) VALUES (1, ?1, ?2, ?3)"
	        " ON CONFLICT(id) DO UPDATE SET objects = objects + ?1, bytes = bytes + ?2,"
	        " last_run_ms = ?3";
	static const char sql_clear[] = "DELETE FROM failures WHERE row_id = ?1";
	static const char sql_fail[] =
	        "INSERT INTO failures(row_id, key, created_at, attempts, last_error,"
	        " next_attempt_ms, parked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
	        " ON CONFLICT(row_id) DO UPDATE SET key = CASE WHEN ?2 = '' THEN key ELSE ?2 END,"
	        " created_at = CASE WHEN ?3 = '' THEN created_at ELSE ?3 END, attempts = ?4,"
	        " last_error = ?5, next_attempt_ms = ?6, parked = ?7";
	sqlite3_stmt *cur = NULL, *tot = NULL, *clear = NULL, *fail = NULL;
	uint64_t objects = 0, bytes = 0;
	int rc, in_txn = 0;

	if ((rc = exec(st, "BEGIN IMMEDIATE", "begin")) != SL_OK)
		return rc;
	in_txn = 1;
	if ((rc = sqlite3_prepare_v2(st->db, sql_cursor, -1, &cur, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(st->db, sql_totals, -1, &tot, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(st->db, sql_clear, -1, &clear, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(st->db, sql_fail, -1, &fail, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "prepare");
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		const sl_pipeline_outcome *o = &outcomes[i];
		sqlite3_stmt *stmt = o->stored ? clear : fail;
		sqlite3_reset(stmt);
		sqlite3_bind_text(stmt, 1, o->row->id, -1, SQLITE_STATIC);
		if (o->stored && !o->removal) {
			objects++;
			bytes += o->bytes;
		} else if (!o->stored) {
			sqlite3_bind_text(stmt, 2, o->row->key ? o->row->key : "", -1,
			                  SQLITE_STATIC);
			sqlite3_bind_text(stmt, 3, o->row->created_at, -1, SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 4, o->attempts);
			sqlite3_bind_text(stmt, 5, o->error, -1, SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 6,
			                   o->parked ? 0 : (sqlite3_int64)o->next_attempt_ms);
			sqlite3_bind_int(stmt, 7, o->parked);
		}
		if ((rc = sqlite3_step(stmt)) != SQLITE_DONE) {
			rc = db_error(st, rc, "save outcome");
			goto cleanup;
		}
	}
	if (position != NULL && (rc = save_changes(st, position, outcomes, n)) != SL_OK)
		goto cleanup;
	if (cursor != NULL) {
		sqlite3_bind_text(cur, 1, cursor->created_at, -1, SQLITE_STATIC);
		sqlite3_bind_text(cur, 2, cursor->id, -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(cur)) != SQLITE_DONE) {
			rc = db_error(st, rc, "save cursor");
			goto cleanup;
		}
	}
	sqlite3_bind_int64(tot, 1, (sqlite3_int64)objects);
	sqlite3_bind_int64(tot, 2, (sqlite3_int64)bytes);
	sqlite3_bind_int64(tot, 3, (sqlite3_int64)now_ms);
	if ((rc = sqlite3_step(tot)) != SQLITE_DONE) {
		rc = db_error(st, rc, "save totals");
		goto cleanup;
	}
	if ((rc = exec(st, "COMMIT", "commit")) != SL_OK)
		goto cleanup;
	in_txn = 0;
cleanup:
	sqlite3_finalize(cur);
	sqlite3_finalize(tot);
	sqlite3_finalize(clear);
	sqlite3_finalize(fail);
	if (in_txn)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int sl_pipeline_state_cursor(sl_pipeline_state *st, sl_cursor *out)
{
	sl_pipeline_status s;
	int rc = sl_pipeline_state_status(st, &s);
	if (rc == SL_OK)
		*out = s.cursor;
	return rc;
}

int sl_pipeline_state_retry_all(sl_pipeline_state *st, uint64_t *n_out)
{
	int rc = exec(st, "UPDATE failures SET parked = 0, attempts = 0, next_attempt_ms = 0",
	              "retry failures");
	if (rc == SL_OK && n_out != NULL)
		*n_out = (uint64_t)sqlite3_changes(st->db);
	return rc;
}

int sl_pipeline_state_reset(sl_pipeline_state *st)
{
	int rc = sl_pipeline_state_lock(st); /* not under a run's feet */
	if (rc != SL_OK)
		return rc;
	rc = exec(st,
	          "BEGIN IMMEDIATE; DELETE FROM cursor; DELETE FROM totals;"
	          " DELETE FROM failures; DELETE FROM changes; DELETE FROM objects; COMMIT",
	          "reset");
	if (rc != SL_OK && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	sl_pipeline_state_unlock(st);
	return rc;
}

int sl_pipeline_state_changes(sl_pipeline_state *st, sl_pipeline_changes *out)
{
	static const char sql[] =
	        "SELECT slot, publication, created_slot, created_publication, copying,"
	        " copy_after, lsn, caught_up_ms, (SELECT count(DISTINCT row_id) FROM objects)"
	        " FROM changes";
	sqlite3_stmt *stmt = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "read changes position");
		goto cleanup;
	}
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		out->known = 1;
		copy_text(out->slot, sizeof(out->slot), sqlite3_column_text(stmt, 0));
		copy_text(out->publication, sizeof(out->publication), sqlite3_column_text(stmt, 1));
		out->created_slot = sqlite3_column_int(stmt, 2);
		out->created_publication = sqlite3_column_int(stmt, 3);
		out->copying = sqlite3_column_int(stmt, 4);
		copy_text(out->copy_after, sizeof(out->copy_after), sqlite3_column_text(stmt, 5));
		out->lsn = (uint64_t)sqlite3_column_int64(stmt, 6);
		out->caught_up_ms = (uint64_t)sqlite3_column_int64(stmt, 7);
		out->objects_tracked = (uint64_t)sqlite3_column_int64(stmt, 8);
	} else if (rc != SQLITE_DONE) {
		rc = db_error(st, rc, "read changes position");
		goto cleanup;
	}
	rc = SL_OK;
cleanup:
	sqlite3_finalize(stmt);
	return rc;
}

int sl_pipeline_state_changes_begin(sl_pipeline_state *st, const sl_pipeline_changes *pos)
{
	static const char sql[] =
	        "INSERT INTO changes(id, slot, publication, created_slot, created_publication,"
	        " copying, copy_after, lsn, caught_up_ms) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, "
	        "0)";
	sqlite3_stmt *stmt = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "save changes position");
		goto cleanup;
	}
	sqlite3_bind_text(stmt, 1, pos->slot, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, pos->publication, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 3, pos->created_slot);
	sqlite3_bind_int(stmt, 4, pos->created_publication);
	sqlite3_bind_int(stmt, 5, pos->copying);
	sqlite3_bind_text(stmt, 6, pos->copy_after, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 7, (sqlite3_int64)pos->lsn);
	rc = sqlite3_step(stmt) == SQLITE_DONE ? SL_OK : db_error(st, rc, "save changes position");
cleanup:
	sqlite3_finalize(stmt);
	return rc;
}

int sl_pipeline_state_object_keys(sl_pipeline_state *st, const char *row_id, char ***keys_out,
                                  size_t *n_out)
{
	static const char sql[] = "SELECT key FROM objects WHERE row_id = ?1 ORDER BY key";
	sqlite3_stmt *stmt = NULL;
	char **keys = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*keys_out = NULL;
	*n_out = 0;
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "read object keys");
		goto cleanup;
	}
	sqlite3_bind_text(stmt, 1, row_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		char **grown = sl_grow(keys, &cap, n, sizeof(*keys), 2);
		if (grown == NULL ||
		    (keys = grown,
		     (keys[n] = sl_strdup((const char *)sqlite3_column_text(stmt, 0))) == NULL)) {
			rc = SL_ENOMEM;
			goto cleanup;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(st, rc, "read object keys");
		goto cleanup;
	}
	*keys_out = keys;
	*n_out = n;
	keys = NULL;
	n = 0;
	rc = SL_OK;
cleanup:
	for (size_t i = 0; i < n; i++)
		sl_free(keys[i]);
	sl_free(keys);
	sqlite3_finalize(stmt);
	return rc;
}

int sl_pipeline_state_record_keys(sl_pipeline_state *st, const char *const *row_ids,
                                  const char *const *keys, size_t n)
{
	static const char sql[] = "INSERT OR IGNORE INTO objects(row_id, key) VALUES (?1, ?2)";
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (n == 0)
		return SL_OK;
	if ((rc = exec(st, "BEGIN IMMEDIATE", "begin")) != SL_OK)
		return rc;
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "record object keys");
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_text(stmt, 1, row_ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, keys[i], -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(stmt)) != SQLITE_DONE) {
			rc = db_error(st, rc, "record object keys");
			goto cleanup;
		}
	}
	rc = exec(st, "COMMIT", "commit");
cleanup:
	sqlite3_finalize(stmt);
	if (rc != SL_OK && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int sl_pipeline_state_object_ids(sl_pipeline_state *st, int (*cb)(void *ctx, const char *row_id),
                                 void *ctx)
{
	static const char sql[] = "SELECT DISTINCT row_id FROM objects ORDER BY row_id";
	sqlite3_stmt *stmt = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
		rc = db_error(st, rc, "list objects");
		goto cleanup;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		if ((rc = cb(ctx, (const char *)sqlite3_column_text(stmt, 0))) != SL_OK)
			goto cleanup;
	rc = rc == SQLITE_DONE ? SL_OK : db_error(st, rc, "list objects");
cleanup:
	sqlite3_finalize(stmt);
	return rc;
}
