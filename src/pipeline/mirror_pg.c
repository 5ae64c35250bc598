/*
 * The mirror's PostgreSQL side: its tables, and the one transaction each
 * batch is.
 *
 * Tables (made if missing, in the search path's first schema, except the
 * target table, which may be schema-qualified; a table that exists with
 * another shape is refused, naming the column):
 *
 *   <target>(key text COLLATE "C" PRIMARY KEY, value bytea, version bigint
 *            NOT NULL, deleted boolean NOT NULL, updated_at timestamptz)
 *   sluice_mirror_position(source text PRIMARY KEY, pos bigint, state text,
 *            applied bigint, target text, updated_at, last_error,
 *            last_error_at)
 *   sluice_dead_letter(id bigserial, source, pos, key, op, payload bytea,
 *            version, sqlstate, error, attempts, first_failure,
 *            last_failure)
 *   sluice_mirror_gap(id bigserial, source, from_pos, to_pos, message,
 *            continued, detected_at; UNIQUE (source, from_pos)): events a
 *            source removed before the mirror read them (a trimmed stream)
 *   pg_temp.sluice_batch(pos bigint, key text, op text, value bytea,
 *            version bigint, was_missed boolean), per connection, ON COMMIT
 *            DELETE ROWS: what a handler reads.
 *
 * A batch, in two round trips:
 *
 *   BEGIN; <finish: UPDATE sluice_mirror_position SET pos = new ... WHERE
 *       source = s AND pos = old>; COPY sluice_batch FROM STDIN (binary);
 *       <the guarded writes>
 *   -- the C handler, on the same connection
 *   <apply_sql>; COMMIT
 *
 * The finish statement comes first: it takes the position row's lock, so a
 * second mirror of the same source waits there and, once the first
 * commits, finds another position (0 rows: fenced) before doing any work.
 * A batch commits only when the finish changed exactly one row.
 *
 * The guarded writes keep, per key, the batch's newest event (highest
 * version, then highest position) and write it in key order, so that
 * concurrent transactions lock rows in one order:
 *
 *   INSERT INTO t ... SELECT ... ON CONFLICT (key) DO UPDATE ... WHERE
 *       t.version < excluded.version
 *
 * A delete is a tombstone (deleted, value NULL, its version), so a replay
 * of an older event cannot bring the key back and no version goes down.
 * With delete_removes a newer delete removes the row instead; then nothing
 * remembers the key, and only the position keeps old events from coming
 * back (docs/cli.md says so).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect/pg_util.h"
#include "pipeline/mirror_internal.h"

#define SETUP_SQL                                                                                  \
	"CREATE TEMP TABLE IF NOT EXISTS sluice_batch (pos bigint NOT NULL, key text COLLATE "     \
	"\"C\""                                                                                    \
	" NOT NULL, op text NOT NULL, value bytea, version bigint NOT NULL, was_missed boolean "   \
	"NOT"                                                                                      \
	" NULL) ON COMMIT DELETE ROWS"

/* The newest event of each key in the batch. */
#define NEWEST_SQL                                                                                 \
	"(SELECT DISTINCT ON (key) key, op, value, version FROM " MIRROR_BATCH_TABLE               \
	" ORDER BY key, version DESC, pos)"

/* Arguments: table, the filter on op, the guard, RETURNING or "". */
#define UPSERT_SQL                                                                                 \
	" INSERT INTO %s AS t (key, value, version, deleted, updated_at)"                          \
	" SELECT key, CASE WHEN op = 'delete' THEN NULL ELSE value END, version, op = 'delete',"   \
	" now() FROM " NEWEST_SQL " b%s ORDER BY key"                                              \
	" ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,"     \
	" deleted = excluded.deleted, updated_at = excluded.updated_at"                            \
	" WHERE %s%s;"

/* Arguments: table, the comparison of versions, RETURNING or "". */
#define REMOVE_SQL                                                                                 \
	" DELETE FROM %s AS t USING " NEWEST_SQL " b WHERE b.op = 'delete' AND t.key = b.key"      \
	" AND t.version %s b.version%s;"

#define TABLES_SQL                                                                                 \
	"BEGIN; SELECT pg_advisory_xact_lock(7291, hashtext('sluice_mirror'));"                    \
	" " MIRROR_ITEM_FUNCTION_SQL                                                               \
	" CREATE TABLE IF NOT EXISTS %s (key text COLLATE \"C\" PRIMARY KEY, value bytea,"         \
	" version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false,"                        \
	" updated_at timestamptz NOT NULL DEFAULT now(), " MIRROR_RECONCILE_COLUMNS ");"           \
	" CREATE TABLE IF NOT EXISTS sluice_mirror_position (source text PRIMARY KEY,"             \
	" pos bigint NOT NULL, state text NOT NULL DEFAULT '', applied bigint NOT NULL DEFAULT 0," \
	" target text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), last_error text,"   \
	" last_error_at timestamptz);"                                                             \
	" CREATE TABLE IF NOT EXISTS sluice_dead_letter (id bigserial PRIMARY KEY,"                \
	" source text NOT NULL, pos bigint NOT NULL, key text NOT NULL, op text NOT NULL,"         \
	" payload bytea, version bigint NOT NULL, sqlstate text NOT NULL, error text NOT NULL,"    \
	" attempts integer NOT NULL, first_failure timestamptz NOT NULL,"                          \
	" last_failure timestamptz NOT NULL);"                                                     \
	" CREATE INDEX IF NOT EXISTS sluice_dead_letter_source ON sluice_dead_letter (source, "    \
	"id);"                                                                                     \
	" CREATE TABLE IF NOT EXISTS sluice_mirror_gap (id bigserial PRIMARY KEY,"                 \
	" source text NOT NULL, from_pos bigint NOT NULL, to_pos bigint NOT NULL,"                 \
	" message text NOT NULL, continued boolean NOT NULL,"                                      \
	" detected_at timestamptz NOT NULL DEFAULT now(), UNIQUE (source, from_pos));"             \
	" COMMIT"

/* The columns a table must have, and their types as format_type names them. */
typedef mirror_column column;

static const column target_columns[] = {{"key", "text", "character varying"},
                                        {"value", "bytea", NULL},
                                        {"version", "bigint", NULL},
                                        {"deleted", "boolean", NULL},
                                        {"updated_at", "timestamp with time zone", NULL},
                                        {NULL, NULL, NULL}};
static const column position_columns[] = {{"source", "text", NULL},
                                          {"pos", "bigint", NULL},
                                          {"state", "text", NULL},
                                          {"applied", "bigint", NULL},
                                          {"target", "text", NULL},
                                          {"updated_at", "timestamp with time zone", NULL},
                                          {"last_error", "text", NULL},
                                          {"last_error_at", "timestamp with time zone", NULL},
                                          {NULL, NULL, NULL}};
static const column gap_columns[] = {{"id", "bigint", NULL},
                                     {"source", "text", NULL},
                                     {"from_pos", "bigint", NULL},
                                     {"to_pos", "bigint", NULL},
                                     {"message", "text", NULL},
                                     {"continued", "boolean", NULL},
                                     {"detected_at", "timestamp with time zone", NULL},
                                     {NULL, NULL, NULL}};
static const column dead_letter_columns[] = {{"id", "bigint", NULL},
                                             {"source", "text", NULL},
                                             {"pos", "bigint", NULL},
                                             {"key", "text", NULL},
                                             {"op", "text", NULL},
                                             {"payload", "bytea", NULL},
                                             {"version", "bigint", NULL},
                                             {"sqlstate", "text", NULL},
                                             {"error", "text", NULL},
                                             {"attempts", "integer", NULL},
                                             {"first_failure", "timestamp with time zone", NULL},
                                             {"last_failure", "timestamp with time zone", NULL},
                                             {NULL, NULL, NULL}};

/* ---------------------------------------------------------------- errors */

/* What a SQLSTATE (or none: libpq's own, a lost connection) means for a
 * retry. */
static mirror_fail_kind kind_of(int code, const char *state)
{
	if (code == SL_ENOMEM || code == SL_EAUTH)
		return FAIL_FATAL;
	if (state == NULL || state[0] == '\0')
		return code == SL_EINVAL ? FAIL_POISON : FAIL_UNAVAILABLE;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0)
		return FAIL_UNAVAILABLE;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)
		return FAIL_TRANSIENT;
	if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0)
		return FAIL_FATAL;
	return FAIL_POISON;
}

void mirror_fail_from(mirror_fail *fail, int code, const char *sqlstate)
{
	fail->code = code;
	fail->kind = kind_of(code, sqlstate);
	snprintf(fail->sqlstate, sizeof(fail->sqlstate), "%s", sqlstate ? sqlstate : "");
	snprintf(fail->error, sizeof(fail->error), "%s", sl_error_last()->message);
}

/* -------------------------------------------------------------- helpers */

/* s as a SQL literal (escaped by libpq for this connection), or NULL. */
static char *literal(mirror_db *db, const char *s)
{
	char *lit, *out;
	if (db->pg.conn == NULL && sl_pg_conn_ready(&db->pg) != SL_OK)
		return NULL;
	if ((lit = PQescapeLiteral(db->pg.conn, s, strlen(s))) == NULL) {
		sl_error_set(SL_ENOMEM, "mirror: cannot quote a literal");
		return NULL;
	}
	out = sl_strdup(lit);
	PQfreemem(lit);
	return out;
}

/* "table" or "schema.table", each part quoted as an identifier. */
static int quote_table(mirror_db *db, const char *name, char **out)
{
	const char *dot = strchr(name, '.');
	char *a = NULL, *b = NULL;
	size_t len = strlen(name);
	if (len == 0 || len > 127 ||
	    (dot && (dot == name || dot[1] == '\0' || strchr(dot + 1, '.'))))
		return sl_error_set(SL_EINVAL, "mirror: table \"%s\" is not a name or schema.name",
		                    name);
	a = PQescapeIdentifier(db->pg.conn, name, dot ? (size_t)(dot - name) : len);
	if (dot)
		b = PQescapeIdentifier(db->pg.conn, dot + 1, strlen(dot + 1));
	if (!a || (dot && !b)) {
		PQfreemem(a);
		PQfreemem(b);
		return sl_error_set(SL_ENOMEM, "mirror: cannot quote the table's name");
	}
	*out = b ? sl_strdup_printf("%s.%s", a, b) : sl_strdup_printf("%s", a);
	PQfreemem(a);
	PQfreemem(b);
	return *out ? SL_OK : SL_ENOMEM;
}

/* ---------------------------------------------------------------- tables */

/* The table, if it exists, must have each column with its type, and a
 * unique index on `unique` alone. */
static int check_shape(mirror_db *db, const char *table, const char *shown, const column *cols,
                       const char *unique)
{
	static const char sql[] =
	        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
	        " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique"
	        " AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL)"
	        " FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0"
	        " AND NOT a.attisdropped";
	const char *values[1] = {table};
	sl_pg_call q;
	int rc;

	sl_pg_call_init(&q, "check tables", sql);
	sl_pg_call_params(&q, 1, values, NULL, NULL);
	q.binary_result = 0;
	if ((rc = sl_pg_run(&db->pg, &q)) != SL_OK)
		return rc;
	for (const column *c = cols; c->name && PQntuples(q.res[0]) > 0; c++) {
		int found = -1;
		for (int i = 0; i < PQntuples(q.res[0]) && found < 0; i++)
			if (strcmp(PQgetvalue(q.res[0], i, 0), c->name) == 0)
				found = i;
		if (found < 0) {
			rc = sl_error_set(SL_EINVAL,
			                  "mirror: table %s exists but has no column \"%s\" (%s): "
			                  "name another table or make it so",
			                  shown, c->name, c->type);
			break;
		}
		if (strcmp(PQgetvalue(q.res[0], found, 1), c->type) != 0 &&
		    (!c->alt_type || strcmp(PQgetvalue(q.res[0], found, 1), c->alt_type) != 0)) {
			rc = sl_error_set(
			        SL_EINVAL,
			        "mirror: table %s has column \"%s\" of type %s; the mirror "
			        "needs %s",
			        shown, c->name, PQgetvalue(q.res[0], found, 1), c->type);
			break;
		}
		if (unique && strcmp(c->name, unique) == 0 &&
		    strcmp(PQgetvalue(q.res[0], found, 2), "t") != 0) {
			rc = sl_error_set(SL_EINVAL,
			                  "mirror: table %s has no primary key or unique index on "
			                  "\"%s\" alone; the mirror upserts by it",
			                  shown, unique);
			break;
		}
	}
	sl_pg_call_clear(&q);
	return rc;
}

int mirror_db_check_table(mirror_db *db, const char *table, const mirror_column *cols)
{
	return check_shape(db, table, table, cols, NULL);
}

static int check_tables(mirror_db *db)
{
	int rc;
	if ((rc = check_shape(db, db->table, db->o->table, target_columns, "key")) == SL_OK &&
	    (rc = check_shape(db, "sluice_mirror_position", "sluice_mirror_position",
	                      position_columns, "source")) == SL_OK)
		rc = check_shape(db, "sluice_dead_letter", "sluice_dead_letter",
		                 dead_letter_columns, "id");
	if (rc == SL_OK)
		rc = check_shape(db, "sluice_mirror_gap", "sluice_mirror_gap", gap_columns, "id");
	return rc;
}

/* Checked before anything is made, so a refused table changes nothing, and
 * again after (another mirror may have made them meanwhile). */
static int prepare_tables(mirror_db *db)
{
	char *sql;
	int rc;
	if ((rc = check_tables(db)) != SL_OK)
		return rc;
	if ((sql = sl_strdup_printf(TABLES_SQL, db->table)) == NULL)
		return SL_ENOMEM;
	rc = sl_pg_run_simple(&db->pg, "create tables", sql);
	sl_free(sql);
	if (rc != SL_OK) {
		sl_pg_rollback(&db->pg);
		return rc;
	}
	return check_tables(db);
}

/* The guards: a stream's event wins over an older version only (of two
 * with one version the first applied stays: a later one is a replay); a
 * repair also over the same version holding something else, since the
 * row was changed behind the mirror's back. */
#define GUARD_NEWER "t.version < excluded.version"
#define GUARD_REPAIR                                                                               \
	"(t.version < excluded.version OR (t.version = excluded.version AND"                       \
	" (t.deleted, t.value) IS DISTINCT FROM (excluded.deleted, excluded.value)))"

static int build_sql(mirror_db *db)
{
	int returning = db->o->handler || db->repair;
	const char *ret_up = returning ? " RETURNING t.key, (t.xmax = 0)" : "";
	const char *ret_rm = returning ? " RETURNING t.key, false" : "";
	const char *guard = db->repair ? GUARD_REPAIR : GUARD_NEWER;
	if (db->o->delete_removes) {
		db->sql_write = sl_strdup_printf(MIRROR_COPY_SQL REMOVE_SQL UPSERT_SQL, db->table,
		                                 db->repair ? "<=" : "<", ret_rm, db->table,
		                                 " WHERE op <> 'delete'", guard, ret_up);
		db->write_results = 3;
	} else {
		db->sql_write =
		        sl_strdup_printf(MIRROR_COPY_SQL UPSERT_SQL, db->table, "", guard, ret_up);
		db->write_results = 2;
	}
	return db->sql_write ? SL_OK : SL_ENOMEM;
}

int mirror_db_open(mirror_db *db, const sl_mirror_options *o)
{
	return mirror_db_open_as(db, o, 0);
}

int mirror_db_open_as(mirror_db *db, const sl_mirror_options *o, int repair)
{
	int rc;
	memset(db, 0, sizeof(*db));
	db->o = o;
	db->repair = repair;
	pthread_mutex_init(&db->pg.lock, NULL);
	db->pg.url = o->pg_url;
	db->pg.timeout_ms = o->timeout_ms;
	db->pg.label = "mirror: PostgreSQL";
	if ((rc = sl_pg_conn_ready(&db->pg)) != SL_OK ||
	    (rc = quote_table(db, o->table, &db->table)) != SL_OK ||
	    (rc = prepare_tables(db)) != SL_OK || (rc = build_sql(db)) != SL_OK)
		goto fail;
	if ((rc = sl_pg_run_simple(&db->pg, "session setup", SETUP_SQL)) != SL_OK)
		goto fail;
	db->pg.setup = SETUP_SQL; /* every new connection makes its own */
	return SL_OK;
fail:
	mirror_db_close(db);
	return rc;
}

void mirror_db_close(mirror_db *db)
{
	sl_pg_conn_drop(&db->pg);
	pthread_mutex_destroy(&db->pg.lock);
	sl_free(db->table);
	sl_free(db->sql_write);
	db->table = db->sql_write = NULL;
}

/* -------------------------------------------------------------- position */

int mirror_db_position(mirror_db *db, const char *source, uint64_t *pos, char *state, size_t cap)
{
	/* A new row starts where the slowest row of the same source under
	 * another partitioning stands ("NAME", "NAME#part=I/N" of another N,
	 * never a worker of this one, which may be ahead already): every key
	 * was applied up to there, and what is applied again is refused by
	 * the version guard. A source never mirrored starts at 0. */
	static const char sql[] =
	        "WITH ins AS (INSERT INTO sluice_mirror_position (source, pos, state, target)"
	        " SELECT $1, coalesce(s.pos, 0), coalesce(s.state, ''), $2 FROM (SELECT 1) one"
	        " LEFT JOIN LATERAL (SELECT pos, state FROM sluice_mirror_position"
	        " WHERE split_part(source, '#part=', 1) = split_part($1, '#part=', 1)"
	        " AND split_part(split_part(source, '#part=', 2), '/', 2)"
	        " <> split_part(split_part($1, '#part=', 2), '/', 2)"
	        " ORDER BY pos LIMIT 1) s ON true"
	        " ON CONFLICT (source) DO NOTHING RETURNING pos, state)"
	        " SELECT pos, state FROM ins UNION ALL"
	        " SELECT pos, state FROM sluice_mirror_position WHERE source = $1";
	const char *values[2] = {source, db->o->table};
	sl_pg_call q;
	int rc;

	/* Two mirrors starting at once: the second's INSERT waits for the
	 * first's and does nothing, but its SELECT runs in the snapshot taken
	 * before the first committed and sees no row either. The statement
	 * run again takes a new snapshot, which sees it. */
	for (int attempt = 0; attempt < 3; attempt++) {
		sl_pg_call_init(&q, "read the position", sql);
		sl_pg_call_params(&q, 2, values, NULL, NULL);
		q.binary_result = 0;
		if ((rc = sl_pg_conn_ready(&db->pg)) != SL_OK ||
		    (rc = sl_pg_run(&db->pg, &q)) != SL_OK)
			return rc;
		int found = PQntuples(q.res[0]) >= 1;
		if (found) {
			*pos = strtoull(PQgetvalue(q.res[0], 0, 0), NULL, 10);
			snprintf(state, cap, "%s", PQgetvalue(q.res[0], 0, 1));
		}
		sl_pg_call_clear(&q);
		if (found)
			return SL_OK;
	}
	return sl_error_set(SL_EIO, "mirror: no position row for %s", source);
}

int mirror_finish_position(mirror_db *db, mirror_finish *f, const char *source, uint64_t old,
                           uint64_t new_pos, const char *state, uint64_t n)
{
	char *src = literal(db, source), *st = src ? literal(db, state) : NULL;
	f->what = "move the position";
	f->sql = st ? sl_strdup_printf(
	                      "UPDATE sluice_mirror_position SET pos = %llu, state = %s,"
	                      " applied = applied + %llu, updated_at = now(), last_error = NULL"
	                      " WHERE source = %s AND pos = %llu;",
	                      (unsigned long long)new_pos, st, (unsigned long long)n, src,
	                      (unsigned long long)old)
	            : NULL;
	sl_free(src);
	sl_free(st);
	return f->sql ? SL_OK : SL_ENOMEM;
}

int mirror_finish_range(mirror_db *db, mirror_finish *f, const char *job, int32_t id,
                        const char *owner, uint32_t claim, uint64_t old, uint64_t new_pos,
                        uint64_t n, uint64_t lease_ms, int done)
{
	char *j = literal(db, job), *own = j ? literal(db, owner) : NULL;
	char lease[64];
	if (done)
		snprintf(lease, sizeof(lease), "NULL");
	else
		snprintf(lease, sizeof(lease), "now() + %llu * interval '1 millisecond'",
		         (unsigned long long)lease_ms);
	f->what = "move the range's progress";
	f->sql = own ? sl_strdup_printf("UPDATE sluice_backfill_range SET progress = %llu,"
	                                " rows = rows + %llu, lease_until = %s, state = '%s',"
	                                " updated_at = now() WHERE job = %s AND id = %d"
	                                " AND owner = %s AND attempts = %u AND progress = %llu"
	                                " AND state = 'pending';",
	                                (unsigned long long)new_pos, (unsigned long long)n, lease,
	                                done ? "done" : "pending", j, (int)id, own, claim,
	                                (unsigned long long)old)
	             : NULL;
	sl_free(j);
	sl_free(own);
	return f->sql ? SL_OK : SL_ENOMEM;
}

void mirror_finish_free(mirror_finish *f)
{
	sl_free(f->sql);
	f->sql = NULL;
}

void mirror_db_note_error(mirror_db *db, const char *source, const char *error)
{
	static const char sql[] = "UPDATE sluice_mirror_position SET last_error = $2,"
	                          " last_error_at = now() WHERE source = $1";
	const char *values[2] = {source, error};
	sl_pg_call q;
	sl_error saved = *sl_error_last();
	sl_pg_call_init(&q, "note the error", sql);
	sl_pg_call_params(&q, 2, values, NULL, NULL);
	if (sl_pg_conn_ready(&db->pg) == SL_OK)
		sl_pg_run(&db->pg, &q);
	sl_pg_call_clear(&q);
	sl_error_set_cause(saved.code, saved.cause, "%s", saved.message);
}

/* ------------------------------------------------------------- the batch */

/* sluice_batch's rows: pos, key, op, value, version, was_missed. */
int mirror_copy_events(sl_pg_conn *c, void *ctx)
{
	const mirror_copy_src *src = ctx;
	sl_pg_copy_writer w;
	int rc = sl_pg_copy_start(&w, c);

	for (size_t i = 0; i < src->n && rc == SL_OK; i++) {
		const sl_event *e = &src->events[i];
		const char *op = sl_event_op_name(e->op);
		size_t op_len = strlen(op);
		uint8_t head[14], len[4], tail[4 + 8 + 4 + 1], oplen[4];
		head[0] = 0, head[1] = 6;
		sl_be32_put(head + 2, 8);
		sl_be64_put(head + 6, e->pos);
		sl_be32_put(len, (uint32_t)e->key_len);
		sl_be32_put(oplen, (uint32_t)op_len);
		if ((rc = sl_pg_copy_put(&w, head, sizeof(head))) != SL_OK ||
		    (rc = sl_pg_copy_put(&w, len, 4)) != SL_OK ||
		    (rc = sl_pg_copy_put(&w, e->key, e->key_len)) != SL_OK ||
		    (rc = sl_pg_copy_put(&w, oplen, 4)) != SL_OK ||
		    (rc = sl_pg_copy_put(&w, op, op_len)) != SL_OK)
			break;
		sl_be32_put(len, e->op == SL_EVENT_DELETE ? 0xffffffffu : (uint32_t)e->value_len);
		if ((rc = sl_pg_copy_put(&w, len, 4)) != SL_OK ||
		    (e->op != SL_EVENT_DELETE &&
		     (rc = sl_pg_copy_put(&w, e->value, e->value_len)) != SL_OK))
			break;
		sl_be32_put(tail, 8);
		sl_be64_put(tail + 4, e->version);
		sl_be32_put(tail + 12, 1);
		tail[16] = src->was_missed ? 1 : 0;
		rc = sl_pg_copy_put(&w, tail, sizeof(tail));
	}
	return sl_pg_copy_finish(&w, rc, "write the batch");
}

/* ------------------------------------------------------------- handler */

static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
	return h;
}

static int cmp_keys(const sl_event *x, const sl_event *y)
{
	return x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) != 0;
}

/* Events x and y share a key: does x win (a newer version; of equal ones,
 * the first: a later one is a replay)? */
static int newer(const sl_event *x, const sl_event *y)
{
	return x->version != y->version ? x->version > y->version : x->pos < y->pos;
}

/* The handler's view: is_new and applied from the writes' RETURNING rows
 * (key, inserted), matched to the event the writes kept for each key. */
static int mark_events(sl_mirror_event *me, const sl_event *events, size_t n, PGresult *const *res,
                       int n_res)
{
	size_t cap = 16, *slot;
	while (cap < 2 * n)
		cap *= 2;
	if ((slot = sl_malloc(cap * sizeof(*slot))) == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < cap; i++)
		slot[i] = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t h = (size_t)key_hash(events[i].key, events[i].key_len) & (cap - 1);
		while (slot[h] != SIZE_MAX && cmp_keys(&events[slot[h]], &events[i]) != 0)
			h = (h + 1) & (cap - 1);
		if (slot[h] == SIZE_MAX || newer(&events[i], &events[slot[h]]))
			slot[h] = i;
	}
	for (int r = 0; r < n_res; r++) {
		for (int row = 0; row < PQntuples(res[r]); row++) {
			sl_event probe;
			size_t h;
			probe.key = PQgetvalue(res[r], row, 0);
			probe.key_len = (size_t)PQgetlength(res[r], row, 0);
			h = (size_t)key_hash(probe.key, probe.key_len) & (cap - 1);
			while (slot[h] != SIZE_MAX && cmp_keys(&events[slot[h]], &probe) != 0)
				h = (h + 1) & (cap - 1);
			if (slot[h] == SIZE_MAX)
				continue;
			me[slot[h]].applied = 1;
			me[slot[h]].is_new = PQgetvalue(res[r], row, 1)[0] == 't';
		}
	}
	sl_free(slot);
	return SL_OK;
}

/* Run the C handler in the transaction; SL_OK, or an error with *fail. */
static int run_handler(mirror_db *db, const sl_event *events, size_t n, uint32_t attempt,
                       int was_missed, PGresult *const *res, int n_res, mirror_fail *fail)
{
	sl_mirror_event *me = sl_calloc(n ? n : 1, sizeof(*me));
	sl_mirror_verdict v;
	char why[400] = "";
	int rc;

	if (!me)
		return SL_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		me[i].event = &events[i];
		me[i].was_missed = was_missed;
		me[i].attempt = attempt;
	}
	if ((rc = mark_events(me, events, n, res, n_res)) != SL_OK) {
		sl_free(me);
		return rc;
	}
	PQsetnonblocking(db->pg.conn, 0);
	v = db->o->handler(db->o->handler_ctx, db->pg.conn, me, n, why, sizeof(why));
	sl_free(me);
	if (PQstatus(db->pg.conn) != CONNECTION_OK) {
		sl_pg_conn_drop(&db->pg);
		rc = sl_error_set(SL_EIO, "mirror: the connection broke in the handler");
		mirror_fail_from(fail, rc, NULL);
		return rc;
	}
	PQsetnonblocking(db->pg.conn, 1);
	if (v == SL_MIRROR_OK && PQtransactionStatus(db->pg.conn) == PQTRANS_INERROR)
		v = SL_MIRROR_POISON,
		snprintf(why, sizeof(why), "a statement of the handler failed");
	else if (PQtransactionStatus(db->pg.conn) != PQTRANS_INTRANS &&
	         PQtransactionStatus(db->pg.conn) != PQTRANS_INERROR) {
		sl_pg_conn_drop(&db->pg);
		rc = sl_error_set(SL_EINVAL, "mirror: the handler ended the transaction; it must "
		                             "not COMMIT or ROLLBACK");
		mirror_fail_from(fail, rc, "");
		fail->kind = FAIL_FATAL;
		return rc;
	}
	if (v == SL_MIRROR_OK)
		return SL_OK;
	rc = sl_error_set(SL_EINVAL, "mirror: the handler said %s%s%s",
	                  v == SL_MIRROR_RETRY ? "retry" : "poison", why[0] ? ": " : "", why);
	mirror_fail_from(fail, rc, "");
	fail->kind = v == SL_MIRROR_RETRY ? FAIL_TRANSIENT : FAIL_POISON;
	return rc;
}

/* -------------------------------------------------------- transactions */

/* The finish statement's result must say one row changed. */
static int finished(const PGresult *r, const mirror_finish *finish, mirror_fail *fail)
{
	int rc;
	if (strcmp(PQcmdTuples((PGresult *)r), "1") == 0)
		return SL_OK;
	rc = sl_error_set(SL_ECONFLICT,
	                  "mirror: fenced: %s found another value (another mirror got there "
	                  "first); nothing of this batch was applied",
	                  finish->what);
	mirror_fail_from(fail, rc, "");
	fail->kind = FAIL_FENCED;
	return rc;
}

static int failed_call(mirror_db *db, int rc, const sl_pg_call *q, mirror_fail *fail)
{
	mirror_fail_from(fail, rc, q->sqlstate);
	sl_pg_rollback(&db->pg);
	return rc;
}

int mirror_db_apply(mirror_db *db, const sl_event *events, size_t n, uint32_t attempt,
                    int was_missed, const mirror_finish *finish, mirror_fail *fail)
{
	mirror_copy_src src = {events, n, was_missed};
	char *sql = sl_strdup_printf("BEGIN; %s %s", finish->sql, db->sql_write);
	sl_pg_call q;
	int rc;

	memset(fail, 0, sizeof(*fail));
	if (!sql) {
		mirror_fail_from(fail, SL_ENOMEM, NULL);
		return SL_ENOMEM;
	}
	sl_pg_call_init(&q, "apply a batch", sql);
	q.copy = mirror_copy_events;
	q.copy_ctx = &src;
	if ((rc = sl_pg_conn_ready(&db->pg)) != SL_OK || (rc = sl_pg_run(&db->pg, &q)) != SL_OK) {
		sl_free(sql);
		return failed_call(db, rc, &q, fail);
	}
	sl_free(sql);
	if (q.n_res != 2 + db->write_results) {
		rc = sl_error_set(SL_EINTERNAL, "mirror: a batch returned %d results, not %d",
		                  q.n_res, 2 + db->write_results);
		sl_pg_call_clear(&q);
		mirror_fail_from(fail, rc, NULL);
		fail->kind = FAIL_FATAL;
		sl_pg_rollback(&db->pg);
		return rc;
	}
	db->written = 0;
	for (int r = 3; r < q.n_res; r++)
		db->written += (uint64_t)PQntuples(q.res[r]);
	if ((rc = finished(q.res[1], finish, fail)) == SL_OK && db->o->handler && n > 0)
		rc = run_handler(db, events, n, attempt, was_missed, q.res + 3,
		                 db->write_results - 1, fail);
	sl_pg_call_clear(&q);
	if (rc != SL_OK) {
		sl_pg_rollback(&db->pg);
		return rc;
	}
	sql = db->o->apply_sql && n > 0 ? sl_strdup_printf("%s\n;\nCOMMIT", db->o->apply_sql)
	                                : NULL;
	if (db->o->apply_sql && n > 0 && !sql) {
		mirror_fail_from(fail, SL_ENOMEM, NULL);
		sl_pg_rollback(&db->pg);
		return SL_ENOMEM;
	}
	sl_pg_call_init(&q, sql ? "apply_sql" : "commit", sql ? sql : "COMMIT");
	rc = sl_pg_run(&db->pg, &q);
	sl_free(sql);
	if (rc == SL_OK && PQtransactionStatus(db->pg.conn) != PQTRANS_IDLE)
		rc = sl_error_set(SL_EINVAL, "mirror: apply_sql left the transaction open (%s)",
		                  "does it end inside a string or a block?");
	sl_pg_call_clear(&q);
	return rc == SL_OK ? SL_OK : failed_call(db, rc, &q, fail);
}

/* One statement with parameters, in the transaction that finish's
 * statement opens (it must change one row, else fenced) and COMMIT ends;
 * without finish, on its own. */
static int finished_statement(mirror_db *db, const char *what, const mirror_finish *finish,
                              const char *sql, int n, const char *const *values, const int *lengths,
                              const int *formats, mirror_fail *fail)
{
	sl_pg_call q;
	int rc;

	memset(fail, 0, sizeof(*fail));
	if ((rc = sl_pg_conn_ready(&db->pg)) != SL_OK) {
		mirror_fail_from(fail, rc, NULL);
		return rc;
	}
	if (finish) {
		char *begin = sl_strdup_printf("BEGIN; %s", finish->sql);
		if (!begin) {
			mirror_fail_from(fail, SL_ENOMEM, NULL);
			return SL_ENOMEM;
		}
		sl_pg_call_init(&q, what, begin);
		rc = sl_pg_run(&db->pg, &q);
		sl_free(begin);
		if (rc != SL_OK)
			return failed_call(db, rc, &q, fail);
		rc = finished(q.res[1], finish, fail);
		sl_pg_call_clear(&q);
		if (rc != SL_OK) {
			sl_pg_rollback(&db->pg);
			return rc;
		}
	}
	sl_pg_call_init(&q, what, sql);
	sl_pg_call_params(&q, n, values, lengths, formats);
	if ((rc = sl_pg_run(&db->pg, &q)) != SL_OK)
		return failed_call(db, rc, &q, fail);
	sl_pg_call_clear(&q);
	if (finish && (rc = sl_pg_run_simple(&db->pg, "commit", "COMMIT")) != SL_OK) {
		mirror_fail_from(fail, rc, NULL);
		sl_pg_rollback(&db->pg);
	}
	return rc;
}

int mirror_db_dead_letter(mirror_db *db, const char *source, const sl_event *ev,
                          const mirror_fail *why, uint32_t attempts, uint64_t first_failure_ms,
                          const mirror_finish *finish, mirror_fail *fail)
{
	static const char insert[] =
	        "INSERT INTO sluice_dead_letter (source, pos, key, op, payload, version, sqlstate,"
	        " error, attempts, first_failure, last_failure) VALUES ($1, $2, $3, $4, $5, $6, $7,"
	        " $8, $9, to_timestamp($10::double precision / 1000), now())";
	char pos[24], version[24], n_attempts[16], first[24];
	mirror_fail why_copy;
	const char *values[10];
	int lengths[10] = {0}, formats[10] = {0};

	why_copy = *why; /* why may be fail */
	why = &why_copy;
	snprintf(pos, sizeof(pos), "%llu", (unsigned long long)ev->pos);
	snprintf(version, sizeof(version), "%llu", (unsigned long long)ev->version);
	snprintf(n_attempts, sizeof(n_attempts), "%u", attempts);
	snprintf(first, sizeof(first), "%llu", (unsigned long long)first_failure_ms);
	values[0] = source, values[1] = pos, values[2] = ev->key;
	values[3] = sl_event_op_name(ev->op), values[4] = (const char *)ev->value;
	values[5] = version, values[6] = why->sqlstate, values[7] = why->error;
	values[8] = n_attempts, values[9] = first;
	lengths[4] = (int)ev->value_len, formats[4] = 1;
	if (ev->op == SL_EVENT_DELETE)
		values[4] = NULL;
	else if (!values[4])
		values[4] = "";
	return finished_statement(db, "write a dead letter", finish, insert, 10, values, lengths,
	                          formats, fail);
}

int mirror_db_gap(mirror_db *db, const char *source, uint64_t from, uint64_t to,
                  const char *message, const mirror_finish *finish, mirror_fail *fail)
{
	static const char insert[] =
	        "INSERT INTO sluice_mirror_gap (source, from_pos, to_pos, message, continued)"
	        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, from_pos) DO UPDATE SET"
	        " to_pos = greatest(sluice_mirror_gap.to_pos, excluded.to_pos),"
	        " message = excluded.message,"
	        " continued = sluice_mirror_gap.continued OR excluded.continued";
	char from_s[24], to_s[24];
	const char *values[5] = {source, from_s, to_s, message, finish ? "true" : "false"};

	snprintf(from_s, sizeof(from_s), "%llu", (unsigned long long)from);
	snprintf(to_s, sizeof(to_s), "%llu", (unsigned long long)to);
	return finished_statement(db, "record a gap", finish, insert, 5, values, NULL, NULL, fail);
}
