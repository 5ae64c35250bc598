/*
 * Reconciliation: the target table compared with the source's state, and
 * what the mirror missed applied (`sluice mirror reconcile`).
 *
 * Two kinds of source:
 *
 *   exact   a namespace (of a local store or a node) knows its whole state.
 *           The target's live rows are items (0, SHA-256(key || 0x00 ||
 *           SHA-256(value))), kept by PostgreSQL in the generated, indexed
 *           column sluice_item, so no run rehashes a row; they are
 *           reconciled with the namespace's items (sl_state_diff, the
 *           target as the initiator), so what crosses the network follows
 *           the differences. The values of the keys missing or different
 *           come with the source's answers, each checked to hash to its
 *           id. Keys only in the target are deleted (a tombstone, or the
 *           row removed with deletes = "remove").
 *   window  a Redis stream or a Kafka partition (or an NDJSON file) keeps
 *           only some of its history. Everything it still has is read; a
 *           key's newest event there repairs its row when the row is
 *           missing, older, or holds something else at the same version;
 *           live rows whose key is not in the window are flagged
 *           (missing_in_source_since), counted and shown, never deleted:
 *           absence from a trimmed stream is not a delete.
 *
 * Invariants:
 *   R1. Nothing is written before the comparison is complete: a listing or
 *       an exchange that fails or stops short changes nothing.
 *   R2. Every repair goes through the batch transaction of mirror_pg.c,
 *       with was_missed set (the handler and apply_sql see it), under the
 *       repair guard: a row the live mirror wrote from a newer event keeps
 *       it. An exact repair carries version V, the source's end read
 *       before the comparison began: every event the mirror applied from
 *       before the comparison has a version <= V, every later one > V, so
 *       a reconciliation and a live mirror can run at once in any order.
 *       A window repair carries its event's own version.
 *   R3. Each repair transaction's finishing statement adds its repairs to
 *       `applied` in its run's row of sluice_mirror_reconcile, so the row
 *       says what committed even when the run dies halfway; finished_at is
 *       set last.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/mirror_internal.h"
#include "sluice/reconcile.h"
#include "sluice/sync.h"

#define WINDOW_WAIT_MS   500 /* a window's read that found nothing yet waits this long */
#define WINDOW_EMPTY_MAX 20  /* and gives up after this many in a row */
#define ADVISORY_LOCK    "SELECT pg_advisory_xact_lock(7291, hashtext('sluice_mirror'))"

/* What reconciliation adds to a target table made before it existed. Run
 * only when a column is missing: ALTER TABLE takes the table's strongest
 * lock, and adding the generated column rewrites the table once. */
#define COLUMNS_SQL                                                                                \
	"BEGIN; " ADVISORY_LOCK "; " MIRROR_ITEM_FUNCTION_SQL                                      \
	" ALTER TABLE %s ADD COLUMN IF NOT EXISTS missing_in_source_since timestamptz,"            \
	" ADD COLUMN IF NOT EXISTS sluice_item bytea GENERATED ALWAYS AS"                          \
	" (CASE WHEN deleted THEN NULL ELSE sluice_item_id(key, value) END) STORED;"               \
	" COMMIT"

#define RUNS_SQL                                                                                   \
	"CREATE TABLE IF NOT EXISTS sluice_mirror_reconcile (id bigserial PRIMARY KEY,"            \
	" source text NOT NULL, target text NOT NULL, kind text NOT NULL,"                         \
	" started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,"                 \
	" compared bigint NOT NULL DEFAULT 0, added bigint NOT NULL DEFAULT 0,"                    \
	" changed bigint NOT NULL DEFAULT 0, removed bigint NOT NULL DEFAULT 0,"                   \
	" applied bigint NOT NULL DEFAULT 0, flagged bigint NOT NULL DEFAULT 0,"                   \
	" missing bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0)"

typedef struct recon {
	mirror_db db;
	const sl_mirror_options *o;
	const char *source;
	sl_mirror_reconcile_report *r;
	sl_event_batch repairs; /* what is applied, once the comparison is done */
	uint64_t version;       /* exact: what repairs carry */
	uint64_t rng;           /* backoff jitter */
} recon;

/* ------------------------------------------------------------ the tables */

static int has_columns(recon *x, int *yes)
{
	static const char sql[] = "SELECT count(*) FROM pg_attribute WHERE attrelid ="
	                          " to_regclass($1) AND attname IN ('sluice_item',"
	                          " 'missing_in_source_since') AND NOT attisdropped";
	const char *values[1] = {x->db.table};
	sl_pg_call q;
	int rc;
	sl_pg_call_init(&q, "check the table", sql);
	sl_pg_call_params(&q, 1, values, NULL, NULL);
	q.binary_result = 0;
	if ((rc = sl_pg_run(&x->db.pg, &q)) == SL_OK)
		*yes = strcmp(PQgetvalue(q.res[0], 0, 0), "2") == 0;
	sl_pg_call_clear(&q);
	return rc;
}

/* The index is named after the table (without its schema). */
static char *index_name(recon *x)
{
	const char *dot = strrchr(x->o->table, '.');
	char name[128], *quoted, *out;
	snprintf(name, sizeof(name), "%.50s_sluice_item", dot ? dot + 1 : x->o->table);
	if ((quoted = PQescapeIdentifier(x->db.pg.conn, name, strlen(name))) == NULL)
		return NULL;
	out = sl_strdup_printf("%s", quoted);
	PQfreemem(quoted);
	return out;
}

static int prepare(recon *x)
{
	char *sql = NULL, *index = NULL;
	int rc, ok = 0;
	if ((rc = sl_pg_conn_ready(&x->db.pg)) != SL_OK || (rc = has_columns(x, &ok)) != SL_OK)
		return rc;
	if (!ok) {
		sl_log(SL_LOG_INFO,
		       "mirror reconcile: adding the columns sluice_item and "
		       "missing_in_source_since (once; the table is rewritten)",
		       "table=\"%s\"", x->o->table);
		if ((sql = sl_strdup_printf(COLUMNS_SQL, x->db.table)) == NULL)
			return SL_ENOMEM;
		rc = sl_pg_run_simple(&x->db.pg, "add the columns", sql);
		sl_free(sql);
		if (rc != SL_OK) {
			sl_pg_rollback(&x->db.pg);
			return rc;
		}
	}
	/* The index serves the reading of the items; made here rather than at
	 * every mirror's start, since making it holds writes to the table. */
	if ((index = index_name(x)) == NULL ||
	    (sql = sl_strdup_printf("CREATE INDEX IF NOT EXISTS %s ON %s (sluice_item); " RUNS_SQL,
	                            index, x->db.table)) == NULL)
		rc = SL_ENOMEM;
	else
		rc = sl_pg_run_simple(&x->db.pg, "make the index and the runs table", sql);
	sl_free(sql);
	sl_free(index);
	return rc;
}

static int open_recon(recon *x, const sl_mirror_options *o, const char *source,
                      sl_mirror_reconcile_report *out)
{
	int rc;
	memset(x, 0, sizeof(*x));
	memset(out, 0, sizeof(*out));
	x->o = o;
	x->rng = sl_clock_mono_ns() | 1;
	x->source = source;
	x->r = out;
	sl_event_batch_init(&x->repairs);
	if ((rc = mirror_db_open_as(&x->db, o, 1)) != SL_OK)
		return rc;
	if ((rc = prepare(x)) != SL_OK)
		mirror_db_close(&x->db);
	return rc;
}

static void close_recon(recon *x)
{
	sl_event_batch_free(&x->repairs);
	mirror_db_close(&x->db);
}

/* --------------------------------------------------------------- the run */

static int start_run(recon *x)
{
	static const char sql[] = "INSERT INTO sluice_mirror_reconcile (source, target, kind,"
	                          " compared, bytes) VALUES ($1, $2, $3, $4, $5) RETURNING id";
	char compared[24], bytes[24];
	const char *values[5] = {x->source, x->o->table, x->r->exact ? "exact" : "window", compared,
	                         bytes};
	sl_pg_call q;
	int rc;
	snprintf(compared, sizeof(compared), "%llu", (unsigned long long)x->r->compared);
	snprintf(bytes, sizeof(bytes), "%llu",
	         (unsigned long long)(x->r->bytes_sent + x->r->bytes_received));
	sl_pg_call_init(&q, "record the run", sql);
	sl_pg_call_params(&q, 5, values, NULL, NULL);
	q.binary_result = 0;
	if ((rc = sl_pg_conn_ready(&x->db.pg)) == SL_OK && (rc = sl_pg_run(&x->db.pg, &q)) == SL_OK)
		x->r->run_id = strtoll(PQgetvalue(q.res[0], 0, 0), NULL, 10);
	sl_pg_call_clear(&q);
	return rc;
}

static int finish_run(recon *x)
{
	char *sql = sl_strdup_printf(
	        "UPDATE sluice_mirror_reconcile SET finished_at = now(), added = %llu,"
	        " changed = %llu, removed = %llu, flagged = %llu, missing = %llu WHERE id = %lld",
	        (unsigned long long)x->r->added, (unsigned long long)x->r->changed,
	        (unsigned long long)x->r->removed, (unsigned long long)x->r->flagged,
	        (unsigned long long)x->r->missing, (long long)x->r->run_id);
	int rc;
	if (!sql)
		return SL_ENOMEM;
	rc = sl_pg_run_simple(&x->db.pg, "record the run", sql);
	sl_free(sql);
	return rc;
}

/* R2, R3: the repairs, batch by batch, each counted in the run's row. */
static int apply_repairs(recon *x)
{
	const sl_event *ev = x->repairs.events;
	size_t step = x->o->batch_size ? x->o->batch_size : 1000;
	mirror_finish fin = {NULL, "count the repairs"};
	mirror_fail fail;
	int rc = SL_OK;

	for (size_t at = 0; at < x->repairs.n && rc == SL_OK;) {
		size_t n = x->repairs.n - at < step ? x->repairs.n - at : step;
		for (uint32_t attempt = 1;; attempt++) {
			fin.sql = sl_strdup_printf("UPDATE sluice_mirror_reconcile SET applied ="
			                           " applied + %zu WHERE id = %lld;",
			                           n, (long long)x->r->run_id);
			if (!fin.sql)
				return SL_ENOMEM;
			rc = mirror_db_apply(&x->db, ev + at, n, attempt, 1, &fin, &fail);
			mirror_finish_free(&fin);
			if (rc == SL_OK || attempt >= x->o->max_attempts ||
			    (fail.kind != FAIL_TRANSIENT && fail.kind != FAIL_UNAVAILABLE))
				break;
			sl_sleep_ms(sl_backoff_ms(x->o->retry_base_ms, x->o->retry_max_ms, attempt,
			                          &x->rng));
		}
		if (rc != SL_OK)
			return sl_error_wrap(
			        "mirror reconcile: the repairs stopped after %llu rows",
			        (unsigned long long)x->r->written);
		x->r->written += x->db.written;
		at += n;
	}
	return rc;
}

/* After the comparison (R1): record the run, apply, finish it. */
static int repair(recon *x, int dry_run)
{
	int rc;
	if (dry_run)
		return SL_OK;
	if ((rc = start_run(x)) != SL_OK || (rc = apply_repairs(x)) != SL_OK)
		return rc;
	return finish_run(x);
}

/* ----------------------------------------------------------------- exact */

typedef struct target_item {
	uint8_t id[SL_ITEM_ID_LEN];
	size_t key_off, key_len;
} target_item;

typedef struct target_set {
	sl_item_vec *vec;
	target_item *items; /* sorted by id */
	size_t n;
	char *keys;
} target_set;

static int cmp_item(const void *a, const void *b)
{
	return memcmp(((const target_item *)a)->id, ((const target_item *)b)->id, SL_ITEM_ID_LEN);
}

/* The target's live rows as items, with their keys: one snapshot. */
static int load_target(recon *x, target_set *t)
{
	char *sql = sl_strdup_printf(
	        "SELECT sluice_item, key FROM %s WHERE sluice_item IS NOT NULL", x->db.table);
	sl_pg_call q;
	size_t bytes = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	if (!sql)
		return SL_ENOMEM;
	sl_pg_call_init(&q, "read the target's items", sql);
	sl_pg_call_params(&q, 0, NULL, NULL, NULL);
	rc = sl_pg_run(&x->db.pg, &q);
	sl_free(sql);
	if (rc != SL_OK)
		return rc;
	t->n = (size_t)PQntuples(q.res[0]);
	for (size_t i = 0; i < t->n; i++)
		bytes += (size_t)PQgetlength(q.res[0], (int)i, 1);
	t->items = sl_malloc((t->n ? t->n : 1) * sizeof(*t->items));
	t->keys = sl_malloc(bytes ? bytes : 1);
	if (!t->items || !t->keys || (rc = sl_item_vec_new(&t->vec)) != SL_OK) {
		rc = rc ? rc : SL_ENOMEM;
		goto done;
	}
	bytes = 0;
	for (size_t i = 0; i < t->n && rc == SL_OK; i++) {
		const char *id = PQgetvalue(q.res[0], (int)i, 0);
		size_t len = (size_t)PQgetlength(q.res[0], (int)i, 1);
		if (PQgetlength(q.res[0], (int)i, 0) != SL_ITEM_ID_LEN) {
			rc = sl_error_set(SL_ECORRUPT,
			                  "mirror reconcile: a sluice_item of %d bytes",
			                  PQgetlength(q.res[0], (int)i, 0));
			break;
		}
		memcpy(t->items[i].id, id, SL_ITEM_ID_LEN);
		memcpy(t->keys + bytes, PQgetvalue(q.res[0], (int)i, 1), len);
		t->items[i].key_off = bytes;
		t->items[i].key_len = len;
		bytes += len;
		rc = sl_item_vec_add(t->vec, 0, t->items[i].id);
	}
	if (rc == SL_OK)
		rc = sl_item_vec_seal(t->vec);
	qsort(t->items, t->n, sizeof(*t->items), cmp_item);
done:
	sl_pg_call_clear(&q);
	return rc;
}

static void free_target(target_set *t)
{
	sl_item_vec_free(t->vec);
	sl_free(t->items);
	sl_free(t->keys);
}

static int target_key(void *ctx, const uint8_t id[SL_ITEM_ID_LEN], const char **key,
                      size_t *key_len)
{
	const target_set *t = ctx;
	target_item probe;
	const target_item *hit;
	memcpy(probe.id, id, SL_ITEM_ID_LEN);
	if ((hit = bsearch(&probe, t->items, t->n, sizeof(*t->items), cmp_item)) == NULL)
		return sl_error_set(SL_EINTERNAL, "mirror reconcile: an item reconciled is not "
		                                  "in the target's snapshot");
	*key = t->keys + hit->key_off;
	*key_len = hit->key_len;
	return SL_OK;
}

static int take_value(void *ctx, const char *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
	recon *x = ctx;
	return sl_event_batch_add(&x->repairs, 0, SL_EVENT_SET, key, key_len,
	                          value ? (const void *)value : "", value_len, x->version);
}

int sl_mirror_reconcile_exact(const sl_mirror_options *o, const char *source,
                              struct sl_diff_peer *peer, uint64_t source_end, int dry_run,
                              sl_mirror_reconcile_report *out)
{
	recon x;
	target_set t;
	sl_diff_local local;
	sl_diff_options d;
	sl_diff_report dr;
	int rc;

	if ((rc = open_recon(&x, o, source, out)) != SL_OK)
		return rc;
	memset(&dr, 0, sizeof(dr));
	out->exact = 1;
	x.version = out->version = source_end > 0 ? source_end : 1;
	if ((rc = load_target(&x, &t)) != SL_OK)
		goto done;
	out->compared = t.n;
	local.set = sl_item_vec_set(t.vec);
	local.key_of = target_key;
	local.ctx = &t;
	memset(&d, 0, sizeof(d));
	d.local = &local;
	d.peer = peer;
	d.on_value = take_value;
	d.on_value_ctx = &x;
	if ((rc = sl_state_diff(&d, &dr)) != SL_OK) { /* R1: nothing written */
		sl_error_wrap("mirror reconcile: comparing with %s", sl_diff_peer_name(peer));
		goto done;
	}
	out->added = dr.only_remote.n;
	out->changed = dr.different.n;
	out->removed = dr.only_local.n;
	out->vanished = dr.vanished;
	out->round_trips = dr.round_trips;
	out->bytes_sent = dr.bytes_sent;
	out->bytes_received = dr.bytes_received;
	for (size_t i = 0; i < dr.only_local.n && rc == SL_OK; i++)
		rc = sl_event_batch_add(&x.repairs, 0, SL_EVENT_DELETE, dr.only_local.items[i].key,
		                        dr.only_local.items[i].len, NULL, 0, x.version);
	if (rc == SL_OK)
		rc = repair(&x, dry_run);
done:
	sl_diff_report_free(&dr);
	free_target(&t);
	close_recon(&x);
	return rc;
}

/* ---------------------------------------------------------------- window */

/* Everything the source still has, up to where it ended when asked (R1:
 * any error but the gap before its first event stops the run, and so does
 * a source that gives nothing more before its end). A read that finds
 * nothing yet below the end waits (a Kafka partition answers before its
 * fetch arrives). */
static int read_window(recon *x, sl_event_source *src, sl_event_batch *all)
{
	sl_event_source_head head;
	uint64_t from = 0;
	unsigned empty = 0;
	int rc;

	if ((rc = src->ops->head(src->self, &head)) != SL_OK)
		return sl_error_wrap("mirror reconcile: where %s ends", src->name);
	for (;;) {
		uint64_t next = from;
		size_t before = all->n;
		int at_end = 0;
		if (head.known && from >= head.end)
			break;
		rc = src->ops->read(src->self, from, x->o->batch_size, x->o->batch_bytes,
		                    empty ? WINDOW_WAIT_MS : 0, all, &next, &at_end);
		if (rc == SL_ENOTFOUND && next > from && all->n == before) {
			from = next; /* the window starts later */
			continue;
		}
		if (rc != SL_OK)
			return sl_error_wrap("mirror reconcile: reading %s at %llu", src->name,
			                     (unsigned long long)from);
		if (at_end || (all->n == before && next == from && !head.known))
			break;
		if (all->n == before && next == from) {
			if (++empty >= WINDOW_EMPTY_MAX)
				return sl_error_set(SL_ETIMEOUT,
				                    "mirror reconcile: %s ends at %llu but gave "
				                    "nothing past %llu; nothing was changed",
				                    src->name, (unsigned long long)head.end,
				                    (unsigned long long)from);
			continue;
		}
		empty = 0;
		from = next;
	}
	return SL_OK;
}

/* Arguments: the table (four times). Results: BEGIN, COPY, the repairs,
 * flagged, unflagged, the rows flagged in all, the rows compared. */
#define WINDOW_SQL                                                                                 \
	"BEGIN; " MIRROR_COPY_SQL                                                                  \
	" SELECT b.pos, b.key, b.op, b.value, b.version, t.key IS NULL FROM"                       \
	" (SELECT DISTINCT ON (key) pos, key, op, value, version FROM " MIRROR_BATCH_TABLE         \
	" ORDER BY key, version DESC, pos) b LEFT JOIN %s t ON t.key = b.key"                      \
	" WHERE (t.key IS NULL AND b.op <> 'delete') OR t.version < b.version OR"                  \
	" (t.version = b.version AND (t.deleted, t.value) IS DISTINCT FROM"                        \
	" (b.op = 'delete', CASE WHEN b.op = 'delete' THEN NULL ELSE b.value END))"                \
	" ORDER BY b.key;"                                                                         \
	" UPDATE %s t SET missing_in_source_since = now() WHERE missing_in_source_since IS NULL"   \
	" AND NOT deleted AND NOT EXISTS (SELECT 1 FROM " MIRROR_BATCH_TABLE " b"                  \
	" WHERE b.key = t.key);"                                                                   \
	" UPDATE %s t SET missing_in_source_since = NULL WHERE missing_in_source_since IS NOT"     \
	" NULL AND EXISTS (SELECT 1 FROM " MIRROR_BATCH_TABLE " b WHERE b.key = t.key);"           \
	" SELECT count(*) FILTER (WHERE missing_in_source_since IS NOT NULL), count(*) FROM %s"

/* The repairs from the comparison's rows (text results). */
static int take_repairs(recon *x, const PGresult *r)
{
	int rc = SL_OK;
	for (int i = 0; i < PQntuples(r) && rc == SL_OK; i++) {
		sl_event_op op;
		size_t len = 0;
		unsigned char *value = NULL;
		if (sl_event_op_parse(&op, PQgetvalue(r, i, 2)) != SL_OK)
			return sl_error_set(SL_EINTERNAL, "mirror reconcile: op '%s'",
			                    PQgetvalue(r, i, 2));
		if (op != SL_EVENT_DELETE &&
		    !(value = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 3), &len)))
			return SL_ENOMEM;
		rc = sl_event_batch_add(&x->repairs, strtoull(PQgetvalue(r, i, 0), NULL, 10), op,
		                        PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
		                        value ? (const void *)value : "", len,
		                        strtoull(PQgetvalue(r, i, 4), NULL, 10));
		PQfreemem(value);
		if (PQgetvalue(r, i, 5)[0] == 't')
			x->r->added++;
		else
			x->r->changed++;
	}
	return rc;
}

/* One transaction: the window into sluice_batch, the repairs it calls
 * for, and the flags moved (kept, or rolled back in a dry run). */
static int compare_window(recon *x, const sl_event_batch *all, int dry_run)
{
	mirror_copy_src src = {all->events, all->n, 1};
	char *sql =
	        sl_strdup_printf(WINDOW_SQL, x->db.table, x->db.table, x->db.table, x->db.table);
	sl_pg_call q;
	int rc;

	if (!sql)
		return SL_ENOMEM;
	sl_pg_call_init(&q, "compare with the window", sql);
	q.copy = mirror_copy_events;
	q.copy_ctx = &src;
	rc = sl_pg_run(&x->db.pg, &q);
	sl_free(sql);
	if (rc != SL_OK) {
		sl_pg_rollback(&x->db.pg);
		return rc;
	}
	if (q.n_res != 6) {
		sl_pg_call_clear(&q);
		sl_pg_rollback(&x->db.pg);
		return sl_error_set(SL_EINTERNAL, "mirror reconcile: %d results, not 6", q.n_res);
	}
	x->r->flagged = strtoull(PQcmdTuples(q.res[3]), NULL, 10);
	x->r->unflagged = strtoull(PQcmdTuples(q.res[4]), NULL, 10);
	x->r->missing = strtoull(PQgetvalue(q.res[5], 0, 0), NULL, 10);
	x->r->compared = strtoull(PQgetvalue(q.res[5], 0, 1), NULL, 10);
	rc = take_repairs(x, q.res[2]);
	sl_pg_call_clear(&q);
	if (rc != SL_OK || dry_run) {
		sl_pg_rollback(&x->db.pg);
		return rc;
	}
	return sl_pg_run_simple(&x->db.pg, "commit", "COMMIT");
}

int sl_mirror_reconcile_window(sl_event_source *const *srcs, size_t n, const char *source,
                               const sl_mirror_options *o, int dry_run,
                               sl_mirror_reconcile_report *out)
{
	sl_event_batch all;
	recon x;
	int rc = SL_OK;

	if ((rc = open_recon(&x, o, source, out)) != SL_OK)
		return rc;
	sl_event_batch_init(&all);
	for (size_t i = 0; i < n && rc == SL_OK; i++)
		rc = read_window(&x, srcs[i], &all);
	out->source_events = all.n;
	if (rc == SL_OK && (rc = sl_pg_conn_ready(&x.db.pg)) == SL_OK &&
	    (rc = compare_window(&x, &all, dry_run)) == SL_OK)
		rc = repair(&x, dry_run);
	sl_event_batch_free(&all);
	close_recon(&x);
	return rc;
}
