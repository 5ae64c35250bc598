/*
 * Changes of the source table by logical replication (libpq's replication
 * protocol, the built-in pgoutput plugin, protocol version 1).
 *
 * Two connections: `control`, an ordinary session for the checks, the
 * publication and the WAL position, and `stream`, a walsender session
 * (replication=database) that creates the slot and streams from it.
 *
 * Opening checks, each with one message of its own: wal_level is logical;
 * the role may replicate (REPLICATION or superuser); the publication exists
 * and publishes the table, or is created for it with every column but the
 * data column (the bytes are read from the table, so the stream carries
 * only what names an object); the slot exists for pgoutput in this
 * database, or, when the caller allows it, is created with an exported
 * snapshot. That snapshot is the state of the table at the slot's
 * consistent point: a copy made in it plus the stream from that point
 * covers every row exactly once. The export lasts until the next command
 * on `stream`, so the caller imports it before sl_pg_changes_start.
 *
 * Streaming. sl_pg_changes_next reads XLogData frames and returns the rows
 * changed, in commit order, with done_lsn: the position before which every
 * change has been returned. It is the end of the last whole transaction
 * returned, or, between transactions, the server's position from a
 * keepalive (pgoutput sends nothing for other tables, so everything before
 * it has been seen). A batch may end inside a transaction (limit reached):
 * done_lsn then stays at the previous commit, and a restart replays the
 * whole transaction, which the caller's idempotent sink absorbs. A
 * transaction whose commit lies before the position we started from was
 * applied before and is skipped.
 *
 * Confirming. The server may forget WAL before the position we confirm.
 * The caller confirms only what its state has saved (sl_pg_changes_confirm);
 * answers to keepalives repeat that position, never one ahead of it.
 *
 * A lost stream is opened again from the last confirmed position, with
 * backoff, for up to reconnect_ms; the batch that was being read is
 * dropped (its changes will come again).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "connect/pg_conn.h"
#include "connect/pg_link.h"
#include "connect/pg_row.h"
#include "connect/pg_util.h"
#include "connect/pgoutput.h"
#include "sluice/connect.h"

#define STATUS_EVERY_MS  10000u /* well inside wal_sender_timeout (60 s) */
#define IDLE_PROBE_MS    100u   /* quiet this long: ask the server where it is */
#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS   2000u
/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_US 946684800000000LL

struct sl_pg_changes {
	sl_pg_conn control, stream;
	char *url;
	char *slot, *publication, *table;
	uint32_t reconnect_ms;
	int s3_mode;
	uint32_t relid; /* the table's oid */
	/* each relation column's role (PG_ROW_*), or -1; from RELATION */
	int *roles;
	uint16_t n_roles;
	const char *names[PG_ROW_NAMES]; /* the configured column names */
	int streaming;
	uint64_t confirmed;   /* the last position confirmed */
	uint64_t start_lsn;   /* START_REPLICATION's position: skip commits before it */
	uint64_t last_status; /* ms (mono) of the last status sent */
	/* the transaction being read */
	int in_txn, skip_txn;
	uint64_t server_pos; /* the furthest position the server reported */
};

static uint64_t mono_ms(void)
{
	return sl_clock_mono_ns() / 1000000u;
}

static int64_t pg_now_us(void)
{
	return (int64_t)sl_clock_wall_ms() * 1000 - PG_EPOCH_US;
}

/* ------------------------------------------------------------- batches */

void sl_change_batch_free(sl_change_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		sl_row_free(&b->changes[i].row);
	sl_free(b->changes);
	memset(b, 0, sizeof(*b));
}

static int batch_push(sl_change_batch *b, sl_change **out)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		sl_change *grown = sl_realloc(b->changes, cap * sizeof(*grown));
		if (grown == NULL)
			return SL_ENOMEM;
		b->changes = grown;
		b->cap = cap;
	}
	*out = &b->changes[b->n++];
	memset(*out, 0, sizeof(**out));
	return SL_OK;
}

/* ------------------------------------------------------- control queries */

/* One text value of a one-row query with text parameters ("" for NULL). */
static int query_value(sl_pg_changes *c, const char *what, const char *sql, int n,
                       const char *const *params, char *out, size_t cap)
{
	sl_pg_call q;
	int rc;

	sl_pg_call_init(&q, what, sql);
	sl_pg_call_params(&q, n, params, NULL, NULL);
	q.binary_result = 0;
	if ((rc = sl_pg_conn_ready(&c->control)) == SL_OK &&
	    (rc = sl_pg_run(&c->control, &q)) == SL_OK) {
		PGresult *res = q.res[q.n_res - 1];
		if (PQntuples(res) != 1 || PQnfields(res) < 1)
			rc = sl_error_set(SL_EINTERNAL, "PostgreSQL %s: unexpected result", what);
		else
			snprintf(out, cap, "%s",
			         PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
	}
	sl_pg_call_clear(&q);
	return rc;
}

static int check_server(sl_pg_changes *c)
{
	char v[64];
	int rc;

	if ((rc = query_value(c, "wal_level", "SELECT current_setting('wal_level')", 0, NULL, v,
	                      sizeof(v))) != SL_OK)
		return rc;
	if (strcmp(v, "logical") != 0)
		return sl_error_set(
		        SL_EINVAL,
		        "changes mode needs wal_level = logical, and the server has '%s':"
		        " set it in postgresql.conf and restart PostgreSQL",
		        v);
	if ((rc = query_value(c, "role",
	                      "SELECT (rolreplication OR rolsuper)::text || ' ' || rolname"
	                      " FROM pg_roles WHERE rolname = current_user",
	                      0, NULL, v, sizeof(v))) != SL_OK)
		return rc;
	if (strncmp(v, "true", 4) != 0)
		return sl_error_set(SL_EAUTH,
		                    "changes mode needs a role with the REPLICATION attribute, and "
		                    "role %s has not: ALTER ROLE %s REPLICATION",
		                    v + 6, v + 6);
	if ((rc = query_value(c, "table", "SELECT to_regclass($1)::oid::text", 1,
	                      (const char *const[]){c->table}, v, sizeof(v))) != SL_OK)
		return rc;
	if (v[0] == '\0')
		return sl_error_set_cause(SL_EINVAL, "sqlstate=42P01",
		                          "PostgreSQL: table %s does not exist", c->table);
	c->relid = (uint32_t)strtoul(v, NULL, 10);
	return SL_OK;
}

/* The publication: reused when it publishes the table, else created. */
static int ensure_publication(sl_pg_changes *c, const char *data_column, int *created)
{
	char relid[16], v[16];
	const char *params[3] = {c->publication, relid, data_column};
	sl_pg_call q;
	int rc;

	*created = 0;
	snprintf(relid, sizeof(relid), "%" PRIu32, c->relid);
	if ((rc = query_value(c, "publication",
	                      "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_publication"
	                      " WHERE pubname = $1) THEN 'none'"
	                      " WHEN EXISTS (SELECT 1 FROM pg_publication_tables t"
	                      " WHERE t.pubname = $1 AND format('%I.%I', t.schemaname,"
	                      " t.tablename)::regclass = $2::oid::regclass) THEN 'ok'"
	                      " ELSE 'other' END",
	                      2, params, v, sizeof(v))) != SL_OK)
		return rc;
	if (strcmp(v, "ok") == 0)
		return SL_OK;
	if (strcmp(v, "other") == 0)
		return sl_error_set(SL_EINVAL,
		                    "publication %s exists but does not publish table %s: add it "
		                    "(ALTER PUBLICATION %s ADD TABLE %s) or name another "
		                    "([database] publication)",
		                    c->publication, c->table, c->publication, c->table);
	/* Every column but the data; format() quotes the names. The
	 * statement is built by one query and run by the next. */
	sl_pg_call_init(&q, "create publication",
	                "SELECT format('CREATE PUBLICATION %I FOR TABLE %s (%s)', $1::text,"
	                " $2::oid::regclass, string_agg(quote_ident(attname), ', '"
	                " ORDER BY attnum)) FROM pg_attribute WHERE attrelid = $2::oid"
	                " AND attnum > 0 AND NOT attisdropped AND attname <> $3::name");
	sl_pg_call_params(&q, 3, params, NULL, NULL);
	q.binary_result = 0;
	if ((rc = sl_pg_conn_ready(&c->control)) == SL_OK &&
	    (rc = sl_pg_run(&c->control, &q)) == SL_OK) {
		char *stmt = sl_strdup(PQgetvalue(q.res[0], 0, 0));
		sl_pg_call_clear(&q);
		if (stmt == NULL)
			return SL_ENOMEM;
		rc = sl_pg_run_simple(&c->control, "create publication", stmt);
		sl_free(stmt);
	}
	sl_pg_call_clear(&q);
	if (rc != SL_OK)
		return sl_error_wrap("publication %s for table %s", c->publication, c->table);
	*created = 1;
	sl_log(SL_LOG_INFO, "created a publication", "publication=%s table=%s", c->publication,
	       c->table);
	return SL_OK;
}

/* "missing", "ok", or why the slot cannot be used. */
static int check_slot(sl_pg_changes *c, int *exists)
{
	const char *params[1] = {c->slot};
	char v[128];
	int rc;

	if ((rc = query_value(c, "replication slot",
	                      "SELECT coalesce((SELECT CASE WHEN slot_type <> 'logical' OR plugin"
	                      " <> 'pgoutput' THEN 'a ' || slot_type || ' slot of plugin ' ||"
	                      " coalesce(plugin, 'none') WHEN database <> current_database() THEN"
	                      " 'a slot of database ' || database ELSE 'ok' END FROM"
	                      " pg_replication_slots WHERE slot_name = $1), 'missing')",
	                      1, params, v, sizeof(v))) != SL_OK)
		return rc;
	*exists = strcmp(v, "missing") != 0;
	if (*exists && strcmp(v, "ok") != 0)
		return sl_error_set(
		        SL_EINVAL,
		        "replication slot %s is %s, not a pgoutput slot of this database:"
		        " name another ([database] slot)",
		        c->slot, v);
	return SL_OK;
}

static int create_slot(sl_pg_changes *c, sl_pg_changes_setup *setup)
{
	char sql[160];
	sl_pg_call q;
	int rc;

	snprintf(sql, sizeof(sql),
	         "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export')",
	         c->slot); /* the name was checked: [a-z0-9_] */
	sl_pg_call_init(&q, "create replication slot", sql);
	if ((rc = sl_pg_conn_ready(&c->stream)) == SL_OK &&
	    (rc = sl_pg_run(&c->stream, &q)) == SL_OK) {
		PGresult *res = q.res[q.n_res - 1];
		if (PQntuples(res) != 1 || PQnfields(res) < 3)
			rc = sl_error_set(SL_EINTERNAL,
			                  "CREATE_REPLICATION_SLOT: unexpected result");
		else if ((rc = sl_pgo_lsn_parse(PQgetvalue(res, 0, 1), &setup->start_lsn)) == SL_OK)
			snprintf(setup->snapshot, sizeof(setup->snapshot), "%s",
			         PQgetvalue(res, 0, 2));
	}
	sl_pg_call_clear(&q);
	if (rc != SL_OK)
		return sl_error_wrap("replication slot %s", c->slot);
	setup->created_slot = 1;
	sl_log(SL_LOG_INFO, "created a replication slot", "slot=%s snapshot=%s", c->slot,
	       setup->snapshot);
	return SL_OK;
}

/* ------------------------------------------------------------------ open */

static int own(char **out, const char *s)
{
	if ((*out = sl_strdup(s)) == NULL)
		return SL_ENOMEM;
	return SL_OK;
}

int sl_pg_changes_open(sl_pg_changes **out, const sl_pg_config *cfg, sl_pg_changes_setup *setup)
{
	sl_pg_changes *c;
	int rc, exists = 0;

	setup->created_slot = setup->created_publication = 0;
	setup->snapshot[0] = '\0';
	setup->start_lsn = 0;
	if (cfg->url == NULL || cfg->url[0] == '\0')
		return sl_error_set(SL_EINVAL, "PostgreSQL changes: no connection URL");
	if ((c = sl_calloc(1, sizeof(*c))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&c->control.lock, NULL); /* before any way out: close destroys them */
	pthread_mutex_init(&c->stream.lock, NULL);
	if ((rc = own(&c->url, cfg->url)) != SL_OK || (rc = own(&c->slot, setup->slot)) != SL_OK ||
	    (rc = own(&c->publication, setup->publication)) != SL_OK ||
	    (rc = own(&c->table, cfg->table ? cfg->table : "object_index")) != SL_OK)
		goto fail;
	c->s3_mode = cfg->s3_mode;
	c->reconnect_ms = cfg->reconnect_ms ? cfg->reconnect_ms : PG_DEFAULT_RECONNECT_MS;
	sl_pg_row_names(cfg, c->names);
	c->control.url = c->stream.url = c->url;
	c->control.timeout_ms = c->stream.timeout_ms =
	        cfg->timeout_ms ? cfg->timeout_ms : PG_DEFAULT_TIMEOUT_MS;
	c->control.label = "PostgreSQL changes";
	c->stream.label = "PostgreSQL replication";
	c->stream.replication = 1;
	c->control.setup = c->stream.setup = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'";
	if ((rc = check_server(c)) != SL_OK ||
	    (rc = ensure_publication(c, c->s3_mode ? "" : c->names[PG_ROW_DATA],
	                             &setup->created_publication)) != SL_OK ||
	    (rc = check_slot(c, &exists)) != SL_OK)
		goto fail;
	if (!exists && !setup->may_create) {
		rc = sl_error_set(
		        SL_ENOTFOUND,
		        "replication slot %s is gone (dropped, or the server was restored "
		        "from a backup), so the changes since it went cannot be replayed: "
		        "run `sluice reset` to copy the table again",
		        c->slot);
		goto fail;
	}
	if (!exists && (rc = create_slot(c, setup)) != SL_OK)
		goto fail;
	*out = c;
	return SL_OK;
fail:
	sl_pg_changes_close(c);
	return rc;
}

void sl_pg_changes_close(sl_pg_changes *c)
{
	if (c == NULL)
		return;
	sl_pg_conn_drop(&c->control);
	sl_pg_conn_drop(&c->stream);
	pthread_mutex_destroy(&c->control.lock);
	pthread_mutex_destroy(&c->stream.lock);
	sl_free(c->roles);
	sl_free(c->url);
	sl_free(c->slot);
	sl_free(c->publication);
	sl_free(c->table);
	sl_free(c);
}

int sl_pg_changes_wal_position(sl_pg_changes *c, uint64_t *out)
{
	char v[32];
	int rc = query_value(c, "WAL position", "SELECT pg_current_wal_flush_lsn()::text", 0, NULL,
	                     v, sizeof(v));
	return rc == SL_OK ? sl_pgo_lsn_parse(v, out) : rc;
}

/* ------------------------------------------------------------- streaming */

static int start_once(sl_pg_changes *c, uint64_t from)
{
	char sql[256], lsn[24];
	PGresult *res;
	int rc;

	sl_pgo_lsn_format(lsn, sizeof(lsn), from);
	/* the names were checked: [a-z0-9_] */
	snprintf(sql, sizeof(sql),
	         "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names "
	         "'%s')",
	         c->slot, lsn, c->publication);
	if ((rc = sl_pg_conn_ready(&c->stream)) != SL_OK)
		return rc;
	if (!PQsendQuery(c->stream.conn, sql) || sl_pg_flush(&c->stream, "start") != SL_OK)
		goto lost;
	/* The answer is CopyBothResponse, or an error. */
	for (uint64_t deadline = mono_ms() + c->stream.timeout_ms; PQisBusy(c->stream.conn);) {
		struct pollfd pfd = {.fd = PQsocket(c->stream.conn), .events = POLLIN};
		uint64_t now = mono_ms();
		if (now >= deadline) {
			sl_pg_conn_drop(&c->stream);
			return sl_error_set(SL_ETIMEOUT,
			                    "START_REPLICATION: no answer within %u ms",
			                    c->stream.timeout_ms);
		}
		if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			goto lost;
		if (!PQconsumeInput(c->stream.conn))
			goto lost;
	}
	res = PQgetResult(c->stream.conn);
	if (PQresultStatus(res) != PGRES_COPY_BOTH) {
		char msg[SL_ERROR_MSG_MAX];
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		sl_pg_one_line(msg, sizeof(msg), PQresultErrorMessage(res));
		PQclear(res);
		sl_pg_conn_drop(&c->stream);
		/* 55006: the slot is used by another process */
		return sl_error_set_cause(state && strcmp(state, "55006") == 0 ? SL_EBUSY : SL_EIO,
		                          "replication", "START_REPLICATION from %s: %s", lsn, msg);
	}
	PQclear(res);
	c->streaming = 1;
	c->start_lsn = from;
	c->in_txn = c->skip_txn = 0;
	c->last_status = 0;
	return SL_OK;
lost : {
	char msg[SL_ERROR_MSG_MAX];
	sl_pg_one_line(msg, sizeof(msg), c->stream.conn ? PQerrorMessage(c->stream.conn) : "");
	sl_pg_conn_drop(&c->stream);
	return sl_error_set_cause(SL_EIO, "libpq", "START_REPLICATION: %s", msg);
}
}

int sl_pg_changes_start(sl_pg_changes *c, uint64_t from_lsn)
{
	c->confirmed = from_lsn;
	return start_once(c, from_lsn);
}

static int send_status(sl_pg_changes *c, int reply_requested)
{
	uint8_t msg[SL_PGO_STATUS_LEN];
	sl_pgo_status_encode(msg, c->confirmed, pg_now_us(), reply_requested);
	if (PQputCopyData(c->stream.conn, (const char *)msg, sizeof(msg)) != 1)
		return sl_error_set(SL_EIO, "replication: cannot send our position");
	c->last_status = mono_ms();
	return sl_pg_flush(&c->stream, "status");
}

int sl_pg_changes_confirm(sl_pg_changes *c, uint64_t lsn)
{
	if (lsn <= c->confirmed)
		return SL_OK;
	c->confirmed = lsn;
	return c->streaming && c->stream.conn != NULL ? send_status(c, 0) : SL_OK;
}

/* A value as a NUL-terminated copy in *out (NULL for a NULL column). */
static int value_copy(const sl_pgo_value *v, char **out)
{
	*out = NULL;
	if (v->kind != SL_PGO_TEXT)
		return SL_OK;
	if (memchr(v->text, '\0', v->len) != NULL)
		return sl_error_set(SL_ECORRUPT, "replication stream: a NUL inside a text value");
	if ((*out = sl_malloc(v->len + 1)) == NULL)
		return SL_ENOMEM;
	memcpy(*out, v->text, v->len);
	(*out)[v->len] = '\0';
	return SL_OK;
}

static int on_relation(sl_pg_changes *c, sl_pgo_msg *m)
{
	sl_pgo_column col;
	int *roles;
	int rc;

	if (m->relid != c->relid)
		return SL_OK;
	if ((roles = sl_calloc(m->columns.n_columns + 1u, sizeof(*roles))) == NULL)
		return SL_ENOMEM;
	for (uint16_t i = 0; (rc = sl_pgo_column_next(&m->columns, &col)) == SL_OK; i++) {
		roles[i] = -1;
		for (int r = 0; r < PG_ROW_N; r++)
			if (c->names[r] != NULL && strcmp(col.name, c->names[r]) == 0)
				roles[i] = r;
	}
	if (rc != SL_ENOTFOUND) {
		sl_free(roles);
		return rc;
	}
	sl_free(c->roles);
	c->roles = roles;
	c->n_roles = m->columns.n_columns;
	return SL_OK;
}

/* The row of a tuple: its fields by role, then the row as the polling
 * source would list it. An unchanged TOASTed column we need leaves the
 * change incomplete: the caller reads the row from the table. */
static int tuple_row(sl_pg_changes *c, sl_pgo_tuple *t, sl_change *ch, int id_only)
{
	char *fields[PG_ROW_N] = {NULL};
	sl_pgo_value v;
	int rc;

	if (c->roles == NULL || t->n_columns != c->n_roles)
		return sl_error_set(SL_ECORRUPT,
		                    "replication stream: a row of %s before its relation, or of "
		                    "another shape",
		                    c->table);
	for (uint16_t i = 0; (rc = sl_pgo_tuple_next(t, &v)) == SL_OK; i++) {
		int role = c->roles[i];
		if (role < 0 || (id_only && role != PG_ROW_ID))
			continue;
		if (v.kind == SL_PGO_UNCHANGED)
			ch->incomplete = 1;
		sl_free(fields[role]);
		if ((rc = value_copy(&v, &fields[role])) != SL_OK)
			break;
	}
	if (rc == SL_ENOTFOUND)
		rc = SL_OK;
	if (rc == SL_OK && fields[PG_ROW_ID] == NULL)
		rc = sl_error_set(SL_ECORRUPT, "replication stream: a row of %s without its id",
		                  c->table);
	if (rc == SL_OK && (id_only || ch->incomplete)) {
		if (strlen(fields[PG_ROW_ID]) > SL_UUID_TEXT_LEN)
			rc = sl_error_set(SL_ECORRUPT, "replication stream: id too long");
		else
			snprintf(ch->row.id, sizeof(ch->row.id), "%s", fields[PG_ROW_ID]);
	} else if (rc == SL_OK) {
		rc = sl_pg_row_build(&ch->row, c->s3_mode, (const char *const *)fields, c->table);
	}
	for (int r = 0; r < PG_ROW_N; r++)
		sl_free(fields[r]);
	return rc;
}

/* One pgoutput message into the batch. */
static int on_message(sl_pg_changes *c, const sl_pgo_frame *f, sl_change_batch *b)
{
	sl_pgo_msg m;
	sl_change *ch;
	int rc;

	if ((rc = sl_pgo_decode(f->data, f->data_len, &m)) != SL_OK)
		return rc;
	switch (m.kind) {
	case SL_PGO_BEGIN:
		c->in_txn = 1;
		/* committed before where we started: applied already */
		c->skip_txn = m.lsn < c->start_lsn;
		return SL_OK;
	case SL_PGO_COMMIT:
		c->in_txn = 0;
		if (!c->skip_txn && m.end_lsn > b->done_lsn)
			b->done_lsn = m.end_lsn;
		c->skip_txn = 0;
		return SL_OK;
	case SL_PGO_RELATION:
		return on_relation(c, &m);
	case SL_PGO_INSERT:
	case SL_PGO_UPDATE:
	case SL_PGO_DELETE:
		if (m.relid != c->relid || c->skip_txn)
			return SL_OK;
		if ((rc = batch_push(b, &ch)) != SL_OK)
			return rc;
		ch->op = m.kind == SL_PGO_DELETE ? SL_CHANGE_DELETE : SL_CHANGE_UPSERT;
		rc = m.kind == SL_PGO_DELETE ? tuple_row(c, &m.old_tuple, ch, 1)
		                             : tuple_row(c, &m.new_tuple, ch, 0);
		if (rc != SL_OK) {
			sl_row_free(&ch->row);
			b->n--;
		}
		return rc;
	case SL_PGO_TRUNCATE:
		if (c->skip_txn)
			return SL_OK;
		for (uint32_t i = 0; i < m.n_truncated; i++) {
			if (sl_pgo_truncated_relid(&m, i) != c->relid)
				continue;
			if ((rc = batch_push(b, &ch)) != SL_OK)
				return rc;
			ch->op = SL_CHANGE_TRUNCATE;
			break;
		}
		return SL_OK;
	default:
		return SL_OK;
	}
}

/* Wait for the stream's socket, at most ms. */
static int wait_readable(sl_pg_changes *c, uint32_t ms)
{
	struct pollfd pfd = {.fd = PQsocket(c->stream.conn), .events = POLLIN};
	int n = poll(&pfd, 1, (int)ms);
	if (n < 0 && errno != EINTR)
		return sl_error_set_cause(SL_EIO, strerror(errno), "replication: poll");
	if (n > 0 && !PQconsumeInput(c->stream.conn))
		return sl_error_set(SL_EIO, "replication: connection lost");
	return SL_OK;
}

/* Reads until limit changes, the target, a pause of the stream after some
 * changes, or wait_ms. */
static int next_once(sl_pg_changes *c, size_t limit, uint64_t target, uint32_t wait_ms,
                     sl_change_batch *b)
{
	uint64_t started = mono_ms(), quiet_since = started;
	int probed = 0, rc;

	for (;;) {
		char *buf = NULL;
		int len = PQgetCopyData(c->stream.conn, &buf, 1);
		uint64_t now = mono_ms();

		if (len == -2 || len == -1) {
			char msg[SL_ERROR_MSG_MAX];
			sl_pg_one_line(msg, sizeof(msg), PQerrorMessage(c->stream.conn));
			return sl_error_set_cause(SL_EIO, "replication",
			                          "replication stream ended: %s", msg);
		}
		if (len > 0) {
			sl_pgo_frame f;
			rc = sl_pgo_frame_decode((const uint8_t *)buf, (size_t)len, &f);
			if (rc == SL_OK && f.wal_end > c->server_pos)
				c->server_pos = f.wal_end;
			if (rc == SL_OK && f.kind == SL_PGO_XLOGDATA) {
				rc = on_message(c, &f, b);
				quiet_since = now;
				probed = 0;
			} else if (rc == SL_OK) {
				/* a keepalive between transactions: all before it seen */
				if (!c->in_txn && f.wal_end > b->done_lsn)
					b->done_lsn = f.wal_end;
				if (f.reply_requested)
					rc = send_status(c, 0);
			}
			PQfreemem(buf);
			if (rc != SL_OK)
				return rc;
			if (b->n >= limit)
				return SL_OK;
			if (!c->in_txn && target != 0 && c->server_pos >= target &&
			    b->done_lsn >= target) {
				b->caught_up = 1;
				return SL_OK;
			}
			continue;
		}
		if (now - c->last_status >= STATUS_EVERY_MS && (rc = send_status(c, 0)) != SL_OK)
			return rc;
		if (b->n > 0 && now - quiet_since >= IDLE_PROBE_MS)
			return SL_OK; /* the stream paused: hand over what came */
		if (now - started >= wait_ms)
			return SL_OK;
		if (!probed && !c->in_txn && now - quiet_since >= IDLE_PROBE_MS) {
			/* where is the server? its keepalive answer says */
			if ((rc = send_status(c, 1)) != SL_OK)
				return rc;
			probed = 1;
		}
		if ((rc = wait_readable(c, IDLE_PROBE_MS)) != SL_OK)
			return rc;
	}
}

int sl_pg_changes_next(sl_pg_changes *c, size_t limit, uint64_t target, uint32_t wait_ms,
                       sl_change_batch *out)
{
	uint64_t deadline = 0, backoff = BACKOFF_FIRST_MS;
	int rc;

	memset(out, 0, sizeof(*out));
	for (;;) {
		if (!c->streaming || c->stream.conn == NULL)
			rc = start_once(c, c->confirmed);
		else
			rc = next_once(c, limit, target, wait_ms, out);
		if (rc == SL_OK && c->streaming && c->stream.conn != NULL)
			return SL_OK;
		if (rc == SL_ENOMEM || rc == SL_ECORRUPT || rc == SL_EBUSY)
			return rc;
		/* lost: drop what this batch read, open the stream again from
		 * the confirmed position */
		sl_change_batch_free(out);
		c->streaming = 0;
		sl_pg_conn_drop(&c->stream);
		if (deadline == 0)
			deadline = mono_ms() + c->reconnect_ms;
		if (mono_ms() >= deadline)
			return sl_error_wrap("replication stream lost for %u ms", c->reconnect_ms);
		sl_log(SL_LOG_WARN, "replication stream lost; opening it again", "error=\"%s\"",
		       sl_error_last()->message);
		sl_sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* ---------------------------------------------------- status and reset */

/* An ordinary connection of its own, for one call. */
static void oneshot_init(sl_pg_conn *conn, const sl_pg_config *cfg)
{
	memset(conn, 0, sizeof(*conn));
	pthread_mutex_init(&conn->lock, NULL);
	conn->url = cfg->url;
	conn->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : PG_DEFAULT_TIMEOUT_MS;
	conn->label = "PostgreSQL";
}

static void oneshot_close(sl_pg_conn *conn)
{
	sl_pg_conn_drop(conn);
	pthread_mutex_destroy(&conn->lock);
}

int sl_pg_slot_status(const sl_pg_config *cfg, const char *slot, sl_pg_slot_info *out)
{
	const char *params[1] = {slot};
	sl_pg_conn conn;
	sl_pg_call q;
	int rc;

	memset(out, 0, sizeof(*out));
	oneshot_init(&conn, cfg);
	sl_pg_call_init(&q, "replication slot",
	                "SELECT s.active, s.confirmed_flush_lsn::text,"
	                " pg_current_wal_flush_lsn()::text,"
	                " (pg_current_wal_flush_lsn() - s.confirmed_flush_lsn)::bigint"
	                " FROM (SELECT 1) one LEFT JOIN pg_replication_slots s"
	                " ON s.slot_name = $1");
	sl_pg_call_params(&q, 1, params, NULL, NULL);
	q.binary_result = 0;
	if ((rc = sl_pg_conn_ready(&conn)) == SL_OK && (rc = sl_pg_run(&conn, &q)) == SL_OK) {
		PGresult *res = q.res[q.n_res - 1];
		if (PQntuples(res) != 1) {
			rc = sl_error_set(SL_EINTERNAL, "replication slot: unexpected result");
		} else if (!PQgetisnull(res, 0, 0)) {
			out->exists = 1;
			out->active = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
			if (!PQgetisnull(res, 0, 1))
				sl_pgo_lsn_parse(PQgetvalue(res, 0, 1), &out->confirmed_lsn);
			sl_pgo_lsn_parse(PQgetvalue(res, 0, 2), &out->server_lsn);
			out->lag_bytes =
			        PQgetisnull(res, 0, 3)
			                ? 0
			                : (uint64_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		}
	}
	sl_pg_call_clear(&q);
	oneshot_close(&conn);
	return rc;
}

int sl_pg_slot_drop(const sl_pg_config *cfg, const char *slot)
{
	const char *params[1] = {slot};
	sl_pg_conn conn;
	sl_pg_call q;
	int rc;

	oneshot_init(&conn, cfg);
	/* A slot in use by a run is refused (55006): that run keeps it. */
	sl_pg_call_init(&q, "drop replication slot",
	                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
	                " WHERE slot_name = $1");
	sl_pg_call_params(&q, 1, params, NULL, NULL);
	if ((rc = sl_pg_conn_ready(&conn)) == SL_OK)
		rc = sl_pg_run(&conn, &q);
	sl_pg_call_clear(&q);
	oneshot_close(&conn);
	return rc;
}
