/*
 * The MariaDB/MySQL L3 tier, through MariaDB Connector/C: the engine's rows
 * in one InnoDB table (`key` VARBINARY(1024) PRIMARY KEY, value LONGBLOB
 * NULL, version BIGINT, deleted BOOL, updated_at DATETIME(6)) and a row
 * (tbl, batches, born) in sluice_engine_meta next to it that counts
 * committed batches: position() hashes it with the table's name and its
 * CREATE_TIME, so it moves with every committed write. `born` is a UUID
 * made again whenever open finds the table missing, so a table dropped
 * and made again is another position even when its meta row survived.
 * VARBINARY compares bytewise (PostgreSQL's COLLATE "C"); the engine's keys
 * are at most 1024 bytes (wal_internal.h), which fits InnoDB's 3072-byte
 * index key.
 *
 * How a batch flows, in one round trip when nothing goes wrong (one
 * multi-statement query; each row's key and value escaped with
 * mysql_real_escape_string into _binary'...' literals, the connection's
 * character set being `binary`, so bytes travel as they are):
 *
 *   START TRANSACTION;
 *   SELECT `key`, version, deleted FROM t WHERE `key` IN (...) FOR UPDATE;
 *   INSERT INTO t (...) VALUES (...), (...) ON DUPLICATE KEY UPDATE
 *       value      = IF(VALUES(version) > version, VALUES(value), value),
 *       deleted    = IF(VALUES(version) > version, VALUES(deleted), deleted),
 *       updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at),
 *       version    = IF(VALUES(version) > version, VALUES(version), version);
 *   INSERT INTO sluice_engine_meta ... batches = batches + 1;
 *   COMMIT
 *
 * Invariants:
 *
 *   M1. The version guard is the IF(): a row not newer than the stored one
 *       changes nothing. MariaDB and MySQL evaluate the assignments of ON
 *       DUPLICATE KEY UPDATE left to right, and a later one sees the column
 *       as an earlier one already set it; so `version` is assigned LAST and
 *       every other assignment compares with the still-old version. (With
 *       version first, the later comparisons see the new version, are
 *       false, and the value is never updated.)
 *   M2. applied, was_live and is_live come from the old state the locking
 *       SELECT read: applied = no old row or version > old version;
 *       was_live = an old row that is not deleted; is_live = applied ?
 *       !deleted : was_live. The SELECT holds the rows (FOR UPDATE) until
 *       COMMIT, so the state it read is the one the upsert replaced (the
 *       drain is the only writer, but the lock makes that not matter).
 *   M3. A delete is a tombstone (deleted, value NULL, its version), so an
 *       older put cannot bring the key back.
 *   M4. A batch is one transaction or nothing: a failure anywhere rolls it
 *       back (or the server does, when the connection is gone).
 *
 * When every row's maybe_live hint is 0 (the engine's trusted filter says
 * no key of the batch has a live row) the SELECT is left out and the rows
 * go in by a plain multi-row INSERT: each either is new (applied, was_live
 * 0) or the INSERT fails with a duplicate key (a tombstone of the key, or
 * a filter false negative), and the batch is redone the guarded way.
 *
 * The statement must fit MariaDB's max_allowed_packet (read at connect):
 * a batch too large for one is sent as several round trips of SELECT and
 * INSERT pairs inside the one transaction; a row too large on its own is
 * refused (SL_ETOOLARGE) before anything is sent.
 *
 * A data error (SQLSTATE class 22 or 23: a CHECK the user added, a key
 * longer than the column, a unique index of the user's on another column)
 * fails the statement. The batch is then rolled back and redone in one
 * transaction row by row, each row's SELECT and INSERT under its own
 * SAVEPOINT (a round trip per row); a refused row is rolled back to its
 * savepoint and gets rc SL_EINVAL and MariaDB's message, the others
 * commit. The session runs in STRICT_ALL_TABLES, so a value the column
 * cannot hold is an error, never silently truncated.
 *
 * Retrying a batch is harmless, as for tier_pg.c: if a batch whose COMMIT
 * went unanswered did commit, the retry's versions equal the stored ones
 * and the guard writes nothing (only the batches count moves again).
 *
 * Deadlines: the connection's connect, read and write timeouts are
 * timeout_ms rounded up to whole seconds (the client takes seconds), and
 * the session's innodb_lock_wait_timeout and max_statement_time the same,
 * so a call ends within about timeout_ms. A connection that failed at the
 * client level (gone, timed out) is closed; a closed one, or one the
 * server closed while idle (a restart: its socket is readable with nothing
 * asked), is replaced at the start of the next call, so the tier comes
 * back by itself with MariaDB.
 *
 * Threads: the drain connection serves write, scan_live, scan_items and
 * position, the reader connection (a read-only session) get; each has a
 * mutex.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <errmsg.h>
#include <mysql.h>

#include "connect/server_url.h"
#include "engine/tier.h"

#define DEFAULT_TIMEOUT_MS 10000u
#define KEY_MAX            1024u /* the key column's width: the engine's longest key */
#define SCAN_PAGE          10000u
#define PACKET_SLACK       4096u /* room in a packet for the statement around the rows */
#define CLIENT_PACKET_MAX  (1ul << 30)
#define META               "sluice_engine_meta"
#define COLUMNS            "(`key`, value, version, deleted, updated_at)"
#define GUARD              "IF(VALUES(version) > version, "
/* M1: version last, every other column compared with the old version. */
#define UPSERT_TAIL                                                                                \
	" ON DUPLICATE KEY UPDATE value = " GUARD "VALUES(value), value), deleted = " GUARD        \
	"VALUES(deleted), deleted), updated_at = " GUARD "VALUES(updated_at), updated_at),"        \
	" version = " GUARD "VALUES(version), version)"

typedef struct my_conn {
	pthread_mutex_t lock;
	MYSQL *conn; /* NULL: to be made by conn_ready */
	int read_only;
	/* the last server error, for a refused row's message */
	unsigned err_no;
	char sqlstate[6];
	char err_msg[160];
} my_conn;

/* A sent row's key, for finding it again in the locking SELECT's result. */
typedef struct key_ref {
	const char *key;
	size_t len;
	size_t idx;
} key_ref;

/* What the locking SELECT found for a row (M2). */
enum { OLD_NONE = 0, OLD_LIVE = 1, OLD_DELETED = 2 };

typedef struct my_tier {
	unsigned timeout_ms;
	sl_server_url url;
	char *name;         /* the table, a plain identifier */
	size_t packet_max;  /* bytes of one statement, from max_allowed_packet */
	my_conn drain;      /* write, scan_live, scan_items, position */
	my_conn reader;     /* get */
	sl_buf sql;         /* the drain's statement */
	key_ref *refs;      /* sorted, for the SELECT's rows */
	uint8_t *old_state; /* OLD_* per row */
	uint64_t *old_ver;  /* the old version per row, when old_state != OLD_NONE */
	size_t cap;         /* of refs, old_state, old_ver */
	size_t *chunk_end;  /* the rows of each round trip, for a large batch */
	size_t chunk_cap;
} my_tier;

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_rc;

static void library_init(void)
{
	/* mysql_init would do it, but not safely from two threads at once */
	library_rc = mysql_library_init(0, NULL, NULL);
}

/* --------------------------------------------------------- connections */

static int is_data_error(const my_conn *c)
{
	return c->sqlstate[0] == '2' && (c->sqlstate[1] == '2' || c->sqlstate[1] == '3');
}

static void drop(my_conn *c)
{
	if (c->conn != NULL)
		mysql_close(c->conn);
	c->conn = NULL;
}

/* Records the connection's error; a client-level one (2000..2999: gone,
 * timed out, out of sync) leaves the connection unusable, so it is
 * dropped. */
static int fail(my_conn *c, const char *what)
{
	unsigned no = c->conn ? mysql_errno(c->conn) : CR_SERVER_GONE_ERROR;
	const char *msg = c->conn ? mysql_error(c->conn) : "no connection";
	char cause[48];
	int rc;

	c->err_no = no;
	snprintf(c->sqlstate, sizeof(c->sqlstate), "%s",
	         c->conn ? mysql_sqlstate(c->conn) : "HY000");
	snprintf(c->err_msg, sizeof(c->err_msg), "%s", msg);
	snprintf(cause, sizeof(cause), "MariaDB error %u (SQLSTATE %s)", no, c->sqlstate);
	if (no == 1205 /* ER_LOCK_WAIT_TIMEOUT */ || no == 1969 /* ER_STATEMENT_TIMEOUT */ ||
	    (no >= 2000 && no < 3000 && (strstr(msg, "timeout") || strstr(msg, "timed out"))))
		rc = SL_ETIMEOUT;
	else if (is_data_error(c))
		rc = SL_EINVAL;
	else
		rc = SL_EIO;
	rc = sl_error_set_cause(rc, cause, "MariaDB L3 %s: %s", what, c->err_msg);
	if (no >= 2000 && no < 3000)
		drop(c);
	return rc;
}

/* Runs sql (one or more statements), handing each result set to fn (the
 * statement's index, counting from 0) when fn is set. Every result is
 * consumed; the first error stops the statements after it and is
 * returned. */
typedef int (*result_fn)(my_tier *t, void *ctx, int stmt, MYSQL_RES *res);

static int run(my_tier *t, my_conn *c, const char *what, const char *sql, size_t len, result_fn fn,
               void *ctx)
{
	int rc = SL_OK, stmt = 0, status;

	c->err_no = 0;
	c->sqlstate[0] = '\0';
	if (c->conn == NULL)
		return fail(c, what);
	if (mysql_real_query(c->conn, sql, (unsigned long)len) != 0)
		return fail(c, what);
	do {
		MYSQL_RES *res = mysql_store_result(c->conn);
		if (res != NULL) {
			if (fn != NULL && rc == SL_OK)
				rc = fn(t, ctx, stmt, res);
			mysql_free_result(res);
		} else if (mysql_field_count(c->conn) != 0) {
			return fail(c, what);
		}
		stmt++;
	} while ((status = mysql_next_result(c->conn)) == 0);
	if (status > 0)
		return fail(c, what);
	return rc;
}

static int run_text(my_tier *t, my_conn *c, const char *what, const char *sql)
{
	return run(t, c, what, sql, strlen(sql), NULL, NULL);
}

static int first_row(my_tier *t, void *ctx, int stmt, MYSQL_RES *res);

/* A working connection: the old one if it is still there and quiet,
 * else a new one with the deadlines and the session set. */
static int conn_ready(my_tier *t, my_conn *c)
{
	unsigned secs = (t->timeout_ms + 999) / 1000;
	unsigned long packet = CLIENT_PACKET_MAX;
	my_bool no = 0;
	char setup[320], packet_text[24] = "";
	MYSQL *m;
	int rc;

	if (c->conn != NULL) {
		struct pollfd pfd = {.fd = (int)mysql_get_socket(c->conn), .events = POLLIN};
		/* idle, nothing asked: readable means closed (or an error sent) */
		if (pfd.fd >= 0 && poll(&pfd, 1, 0) == 0)
			return SL_OK;
		drop(c);
	}
	if ((m = mysql_init(NULL)) == NULL)
		return sl_error_set(SL_ENOMEM, "MariaDB L3: mysql_init");
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
	mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &secs);
	mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &secs);
	mysql_options(m, MYSQL_OPT_RECONNECT, &no); /* we replace it ourselves, between calls */
	mysql_options(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &packet);
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "binary");
	c->conn = m;
	if (mysql_real_connect(m, t->url.host, t->url.user, t->url.password, t->url.database,
	                       t->url.port, NULL, CLIENT_MULTI_STATEMENTS) == NULL) {
		rc = fail(c, "connect");
		drop(c); /* refused by the server (1045, 1049) as well as unreachable */
		return rc;
	}
	snprintf(setup, sizeof(setup),
	         "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION',"
	         " SESSION innodb_lock_wait_timeout = %u, SESSION max_statement_time = %u;"
	         " SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;"
	         " SET SESSION TRANSACTION %s; SELECT @@max_allowed_packet",
	         secs, secs, c->read_only ? "READ ONLY" : "READ WRITE");
	if ((rc = run(t, c, "connect", setup, strlen(setup), first_row, packet_text)) != SL_OK) {
		drop(c);
		return rc;
	}
	if (!c->read_only) {
		unsigned long long server = strtoull(packet_text, NULL, 10);
		if (server < 2 * PACKET_SLACK)
			return sl_error_set(SL_EIO, "MariaDB L3: max_allowed_packet is %llu",
			                    server);
		t->packet_max = (size_t)(server - PACKET_SLACK);
	}
	return SL_OK;
}

/* The first column of the first row of the last result set, as text ("" for
 * NULL or no row); ctx is a char[24]. */
static int first_row(my_tier *t, void *ctx, int stmt, MYSQL_RES *res)
{
	MYSQL_ROW row = mysql_fetch_row(res);
	(void)t;
	(void)stmt;
	snprintf(ctx, 24, "%s", row != NULL && row[0] != NULL ? row[0] : "");
	return SL_OK;
}

/* ---------------------------------------------------------- statements */

/* _binary'p' escaped, into the statement. */
static int append_lit(sl_buf *b, MYSQL *m, const void *p, size_t len)
{
	int rc = sl_buf_reserve(b, 2 * len + 16);
	if (rc != SL_OK)
		return rc;
	memcpy(b->data + b->len, "_binary'", 8);
	b->len += 8;
	b->len += mysql_real_escape_string(m, (char *)b->data + b->len, p, (unsigned long)len);
	b->data[b->len++] = '\'';
	b->data[b->len] = '\0';
	return SL_OK;
}

/* What a row can take of a statement, at most: escaping doubles a byte. */
static size_t row_cost(const sl_tier_row *r)
{
	return 4 * r->key_len + 2 * (r->deleted ? 0 : r->value_len) + 128;
}

static int append_select(my_tier *t, MYSQL *m, const sl_tier_row *rows, size_t from, size_t to)
{
	int rc = sl_buf_printf(&t->sql, "SELECT `key`, version, deleted FROM `%s` WHERE `key` IN (",
	                       t->name);
	int first = 1;
	for (size_t i = from; i < to && rc == SL_OK; i++) {
		if (rows[i].rc != SL_OK)
			continue;
		if (!first)
			rc = sl_buf_append_byte(&t->sql, ',');
		if (rc == SL_OK)
			rc = append_lit(&t->sql, m, rows[i].key, rows[i].key_len);
		first = 0;
	}
	return rc != SL_OK ? rc : sl_buf_append_str(&t->sql, ") FOR UPDATE;");
}

static int append_insert(my_tier *t, MYSQL *m, const sl_tier_row *rows, size_t from, size_t to,
                         int guarded)
{
	int rc = sl_buf_printf(&t->sql, "INSERT INTO `%s` " COLUMNS " VALUES ", t->name);
	int first = 1;
	for (size_t i = from; i < to && rc == SL_OK; i++) {
		const sl_tier_row *r = &rows[i];
		if (r->rc != SL_OK)
			continue;
		if ((rc = sl_buf_append_str(&t->sql, first ? "(" : ",(")) != SL_OK ||
		    (rc = append_lit(&t->sql, m, r->key, r->key_len)) != SL_OK)
			break;
		if (r->deleted)
			rc = sl_buf_append_str(&t->sql, ",NULL");
		else if ((rc = sl_buf_append_byte(&t->sql, ',')) == SL_OK)
			rc = append_lit(&t->sql, m, r->value_len ? (const void *)r->value : "",
			                r->value_len);
		if (rc == SL_OK)
			rc = sl_buf_printf(&t->sql, ",%" PRIu64 ",%d,NOW(6))", r->version,
			                   r->deleted ? 1 : 0);
		first = 0;
	}
	if (rc == SL_OK && guarded)
		rc = sl_buf_append_str(&t->sql, UPSERT_TAIL);
	return rc != SL_OK ? rc : sl_buf_append_byte(&t->sql, ';');
}

static int append_commit(my_tier *t)
{
	return sl_buf_printf(&t->sql,
	                     "INSERT INTO " META " (tbl, batches, born) VALUES ('%s', 1, UUID())"
	                     " ON DUPLICATE KEY UPDATE batches = batches + 1; COMMIT",
	                     t->name);
}

/* ----------------------------------------------------------------- write */

static int cmp_ref(const void *a, const void *b)
{
	const key_ref *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static int grow(my_tier *t, size_t n)
{
	if (n <= t->cap)
		return SL_OK;
	key_ref *refs = sl_realloc(t->refs, n * sizeof(*refs));
	if (refs != NULL)
		t->refs = refs;
	uint8_t *state = sl_realloc(t->old_state, n);
	if (state != NULL)
		t->old_state = state;
	uint64_t *ver = sl_realloc(t->old_ver, n * sizeof(*ver));
	if (ver != NULL)
		t->old_ver = ver;
	if (refs == NULL || state == NULL || ver == NULL)
		return sl_error_set(SL_ENOMEM, "MariaDB L3 write: %zu rows", n);
	t->cap = n;
	return SL_OK;
}

/* The locking SELECT's rows: the old state of each key (M2). */
static int take_old(my_tier *t, void *ctx, int stmt, MYSQL_RES *res)
{
	size_t n_refs = *(size_t *)ctx;
	MYSQL_ROW row;
	(void)stmt;
	if (mysql_num_fields(res) != 3)
		return SL_OK; /* not the SELECT */
	while ((row = mysql_fetch_row(res)) != NULL) {
		unsigned long *len = mysql_fetch_lengths(res);
		key_ref probe = {row[0], len[0], 0}, *hit;
		if (row[0] == NULL || row[1] == NULL || row[2] == NULL ||
		    (hit = bsearch(&probe, t->refs, n_refs, sizeof(probe), cmp_ref)) == NULL)
			return sl_error_set(SL_EINTERNAL,
			                    "MariaDB L3 write: the locking read returned a key"
			                    " not in the batch");
		t->old_state[hit->idx] = row[2][0] != '0' ? OLD_DELETED : OLD_LIVE;
		t->old_ver[hit->idx] = strtoull(row[1], NULL, 10);
	}
	return SL_OK;
}

/* Rows [from, to) split into round trips that each fit a packet. */
static int plan_chunks(my_tier *t, const sl_tier_row *rows, size_t from, size_t to,
                       size_t *n_chunks)
{
	size_t n = 0, used = 0;
	for (size_t i = from; i < to; i++) {
		size_t cost = rows[i].rc == SL_OK ? row_cost(&rows[i]) : 0;
		if (used > 0 && used + cost > t->packet_max) {
			n++;
			used = 0;
		}
		if (n + 1 > t->chunk_cap) {
			size_t cap = t->chunk_cap ? 2 * t->chunk_cap : 8;
			size_t *ends = sl_realloc(t->chunk_end, cap * sizeof(*ends));
			if (ends == NULL)
				return SL_ENOMEM;
			t->chunk_end = ends;
			t->chunk_cap = cap;
		}
		t->chunk_end[n] = i + 1;
		used += cost;
	}
	*n_chunks = n + 1;
	return SL_OK;
}

/* Rows [from, to) in the open transaction (guarded: SELECT and upsert,
 * else a plain INSERT), prefixed by `before`, and `commit` closes the
 * transaction. The drain is locked and connected. */
static int send_rows(my_tier *t, sl_tier_row *rows, size_t from, size_t to, int guarded,
                     const char *before, int commit)
{
	MYSQL *m = t->drain.conn;
	size_t n_refs = 0, n_chunks, start = from;
	int rc;

	for (size_t i = from; i < to; i++) {
		t->old_state[i] = OLD_NONE;
		if (rows[i].rc == SL_OK)
			t->refs[n_refs++] = (key_ref){rows[i].key, rows[i].key_len, i};
	}
	qsort(t->refs, n_refs, sizeof(*t->refs), cmp_ref);
	if ((rc = plan_chunks(t, rows, from, to, &n_chunks)) != SL_OK)
		return rc;
	for (size_t c = 0; c < n_chunks && rc == SL_OK; c++) {
		size_t end = t->chunk_end[c];
		int any = 0;
		for (size_t i = start; i < end; i++)
			any |= rows[i].rc == SL_OK;
		sl_buf_reset(&t->sql);
		if (c == 0 && before != NULL)
			rc = sl_buf_append_str(&t->sql, before);
		if (rc == SL_OK && any && guarded)
			rc = append_select(t, m, rows, start, end);
		if (rc == SL_OK && any)
			rc = append_insert(t, m, rows, start, end, guarded);
		if (rc == SL_OK && commit && c + 1 == n_chunks)
			rc = append_commit(t);
		if (rc == SL_OK)
			rc = run(t, &t->drain, "write", (const char *)t->sql.data, t->sql.len,
			         take_old, &n_refs);
		start = end;
	}
	return rc;
}

static void rollback(my_tier *t)
{
	if (t->drain.conn != NULL && mysql_real_query(t->drain.conn, "ROLLBACK", 8) != 0)
		drop(&t->drain);
}

/* After a data error: one savepoint per row, see the top of the file. */
static int write_rows(my_tier *t, sl_tier_row *rows, size_t n)
{
	int rc = run_text(t, &t->drain, "write", "START TRANSACTION");

	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		if (rows[i].rc != SL_OK)
			continue;
		if ((rc = send_rows(t, rows, i, i + 1, 1, "SAVEPOINT sluice_row;", 0)) == SL_OK)
			rc = run_text(t, &t->drain, "write", "RELEASE SAVEPOINT sluice_row");
		else if (is_data_error(&t->drain) && t->drain.conn != NULL) {
			rows[i].rc = SL_EINVAL;
			snprintf(rows[i].error, sizeof(rows[i].error),
			         "%s (MariaDB error %u, SQLSTATE %s)", t->drain.err_msg,
			         t->drain.err_no, t->drain.sqlstate);
			rc = run_text(
			        t, &t->drain, "write",
			        "ROLLBACK TO SAVEPOINT sluice_row; RELEASE SAVEPOINT sluice_row");
		}
	}
	if (rc == SL_OK) {
		sl_buf_reset(&t->sql);
		if ((rc = append_commit(t)) == SL_OK)
			rc = run(t, &t->drain, "write", (const char *)t->sql.data, t->sql.len, NULL,
			         NULL);
	}
	return rc;
}

static int tier_write(void *impl, sl_tier_row *rows, size_t n)
{
	my_tier *t = impl;
	size_t n_sent = 0;
	int rc, all_new = 1;

	for (size_t i = 0; i < n; i++) {
		sl_tier_row *row = &rows[i];
		int bad = row->key == NULL || row->version > (uint64_t)INT64_MAX ||
		          (!row->deleted && row->value == NULL && row->value_len > 0);
		row->applied = row->was_live = row->is_live = 0;
		row->rc = bad ? SL_EINVAL : SL_OK;
		snprintf(row->error, sizeof(row->error), "%s",
		         bad ? "bad row (key, value or version)" : "");
	}
	pthread_mutex_lock(&t->drain.lock);
	if ((rc = conn_ready(t, &t->drain)) != SL_OK || (rc = grow(t, n)) != SL_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sl_tier_row *row = &rows[i];
		if (row->rc == SL_OK && row_cost(row) > t->packet_max) {
			row->rc = SL_ETOOLARGE;
			snprintf(row->error, sizeof(row->error),
			         "key and value larger than MariaDB's max_allowed_packet (%zu)",
			         t->packet_max + PACKET_SLACK);
		}
		n_sent += row->rc == SL_OK;
		all_new &= row->rc != SL_OK || !row->maybe_live;
	}
	if (n_sent == 0)
		goto out;
	/* the plain INSERT when the filter says every key is new; a key L3
	 * holds after all (a tombstone) fails it with a duplicate key, and the
	 * batch goes the guarded way */
	if (all_new && (rc = send_rows(t, rows, 0, n, 0, "START TRANSACTION;", 1)) != SL_OK) {
		rollback(t);
		if (t->drain.conn == NULL ||
		    (t->drain.err_no != 1062 /* ER_DUP_ENTRY */ && !is_data_error(&t->drain)))
			goto out;
	}
	if ((!all_new || rc != SL_OK) &&
	    (rc = send_rows(t, rows, 0, n, 1, "START TRANSACTION;", 1)) != SL_OK) {
		rollback(t);
		if (is_data_error(&t->drain) && t->drain.conn != NULL &&
		    (rc = write_rows(t, rows, n)) != SL_OK)
			rollback(t);
	}
out:
	if (rc == SL_OK)
		for (size_t i = 0; i < n; i++) {
			sl_tier_row *row = &rows[i];
			if (row->rc != SL_OK)
				continue;
			row->applied = t->old_state[i] == OLD_NONE || row->version > t->old_ver[i];
			row->was_live = t->old_state[i] == OLD_LIVE;
			row->is_live = row->applied ? !row->deleted : row->was_live;
		}
	pthread_mutex_unlock(&t->drain.lock);
	return rc;
}

/* ------------------------------------------------------------------ read */

typedef struct get_out {
	sl_buf *value;
	uint64_t *version;
	int *deleted;
	int found;
} get_out;

static int take_get(my_tier *t, void *ctx, int stmt, MYSQL_RES *res)
{
	get_out *g = ctx;
	MYSQL_ROW row = mysql_fetch_row(res);
	unsigned long *len;
	(void)t;
	(void)stmt;
	if (row == NULL)
		return SL_OK;
	len = mysql_fetch_lengths(res);
	if (row[0] == NULL || row[1] == NULL)
		return sl_error_set(SL_ECORRUPT, "MariaDB L3 get: version or deleted is NULL");
	g->found = 1;
	*g->version = strtoull(row[0], NULL, 10);
	*g->deleted = row[1][0] != '0';
	if (g->value == NULL)
		return SL_OK;
	sl_buf_reset(g->value);
	if (*g->deleted)
		return SL_OK;
	if (row[3] == NULL && row[2] != NULL)
		return sl_error_set(SL_ETOOLARGE, "MariaDB L3 get: a value of %s bytes, over %zu",
		                    row[2], g->value->max);
	return row[3] == NULL ? SL_OK : sl_buf_set(g->value, row[3], len[3]);
}

static int tier_get(void *impl, const char *key, size_t key_len, sl_buf *value, uint64_t *version,
                    int *deleted)
{
	my_tier *t = impl;
	uint64_t v = 0;
	int d = 0, rc;
	get_out g = {value, &v, &d, 0};
	sl_buf sql = SL_BUF_INIT(4 * KEY_MAX + 512);
	/* the value only when it fits the caller's buffer: a result stays bounded */
	size_t cap = value != NULL ? value->max : 0;

	if (key == NULL || key_len > KEY_MAX)
		return sl_error_set(SL_EINVAL, "MariaDB L3 get: bad key");
	pthread_mutex_lock(&t->reader.lock);
	if ((rc = conn_ready(t, &t->reader)) == SL_OK &&
	    (rc = sl_buf_printf(&sql,
	                        "SELECT version, deleted, OCTET_LENGTH(value),"
	                        " IF(OCTET_LENGTH(value) <= %zu, value, NULL) FROM `%s`"
	                        " WHERE `key` = ",
	                        cap, t->name)) == SL_OK &&
	    (rc = append_lit(&sql, t->reader.conn, key, key_len)) == SL_OK)
		rc = run(t, &t->reader, "get", (const char *)sql.data, sql.len, take_get, &g);
	pthread_mutex_unlock(&t->reader.lock);
	sl_buf_free(&sql);
	if (rc == SL_OK && !g.found)
		rc = sl_error_set(SL_ENOTFOUND, "MariaDB L3 get: no row for the key");
	if (rc == SL_OK) {
		*version = v;
		*deleted = d;
	}
	return rc;
}

typedef struct scan_ctx {
	sl_tier_key_fn key_cb;
	sl_tier_item_fn item_cb;
	void *ctx;
	sl_buf *last;
	size_t rows;
} scan_ctx;

static int take_scan(my_tier *t, void *ctx, int stmt, MYSQL_RES *res)
{
	scan_ctx *s = ctx;
	MYSQL_ROW row;
	int rc = SL_OK;
	(void)t;
	(void)stmt;
	while (rc == SL_OK && (row = mysql_fetch_row(res)) != NULL) {
		unsigned long *len = mysql_fetch_lengths(res);
		if (row[0] == NULL)
			return sl_error_set(SL_ECORRUPT, "MariaDB L3 scan: a NULL key");
		if (s->item_cb != NULL) {
			if (row[1] == NULL || row[2] == NULL || len[2] != 32)
				return sl_error_set(SL_ECORRUPT, "MariaDB L3 scan: a bad digest");
			rc = s->item_cb(s->ctx, row[0], len[0], strtoull(row[1], NULL, 10),
			                (const uint8_t *)row[2]);
		} else {
			rc = s->key_cb(s->ctx, row[0], len[0]);
		}
		if (rc == SL_OK)
			rc = sl_buf_set(s->last, row[0], len[0]);
		s->rows++;
	}
	return rc;
}

/* Keyset paging over the live rows, SCAN_PAGE at most a query. */
static int scan(my_tier *t, const char *after, size_t after_len, size_t limit, scan_ctx *s,
                size_t *n)
{
	sl_buf last = SL_BUF_INIT(KEY_MAX + 1), sql = SL_BUF_INIT(4 * KEY_MAX + 512);
	size_t done = 0;
	int rc = SL_OK, from_start = after == NULL;

	if (after != NULL && (rc = sl_buf_set(&last, after, after_len)) != SL_OK)
		return rc;
	s->last = &last;
	pthread_mutex_lock(&t->drain.lock);
	rc = conn_ready(t, &t->drain);
	while (rc == SL_OK && done < limit) {
		size_t page = limit - done < SCAN_PAGE ? limit - done : SCAN_PAGE;
		sl_buf_reset(&sql);
		rc = sl_buf_printf(&sql, "SELECT `key`%s FROM `%s` WHERE NOT deleted",
		                   s->item_cb ? ", version, UNHEX(SHA2(COALESCE(value, ''), 256))"
		                              : "",
		                   t->name);
		if (rc == SL_OK && !from_start &&
		    (rc = sl_buf_append_str(&sql, " AND `key` > ")) == SL_OK)
			rc = append_lit(&sql, t->drain.conn,
			                last.data ? (const void *)last.data : "", last.len);
		if (rc == SL_OK)
			rc = sl_buf_printf(&sql, " ORDER BY `key` LIMIT %zu", page);
		s->rows = 0;
		if (rc == SL_OK)
			rc = run(t, &t->drain, "scan", (const char *)sql.data, sql.len, take_scan,
			         s);
		done += s->rows;
		from_start = 0;
		if (s->rows < page)
			break;
	}
	pthread_mutex_unlock(&t->drain.lock);
	sl_buf_free(&last);
	sl_buf_free(&sql);
	if (rc == SL_OK)
		*n = done;
	return rc;
}

static int tier_scan_live(void *impl, const char *after, size_t after_len, size_t limit,
                          sl_tier_key_fn cb, void *ctx, size_t *n)
{
	scan_ctx s = {.key_cb = cb, .ctx = ctx};
	return scan(impl, after, after_len, limit, &s, n);
}

static int tier_scan_items(void *impl, const char *after, size_t after_len, size_t limit,
                           sl_tier_item_fn cb, void *ctx, size_t *n)
{
	scan_ctx s = {.item_cb = cb, .ctx = ctx};
	return scan(impl, after, after_len, limit, &s, n);
}

typedef struct position_ctx {
	char meta[64], created[32];
} position_ctx;

static int take_position(my_tier *t, void *ctx, int stmt, MYSQL_RES *res)
{
	position_ctx *p = ctx;
	MYSQL_ROW row = mysql_fetch_row(res);
	(void)t;
	(void)stmt;
	if (row == NULL || mysql_num_fields(res) != 2)
		return sl_error_set(SL_EINTERNAL, "MariaDB L3 position: no row");
	snprintf(p->meta, sizeof(p->meta), "%s", row[0] ? row[0] : "-");
	snprintf(p->created, sizeof(p->created), "%s", row[1] ? row[1] : "-");
	return SL_OK;
}

static int tier_position(void *impl, sl_digest *out)
{
	my_tier *t = impl;
	position_ctx p;
	char sql[512], text[SL_ERROR_MSG_MAX];
	int rc;

	snprintf(sql, sizeof(sql),
	         "SELECT (SELECT CONCAT(batches, ' ', born) FROM " META " WHERE tbl = '%s'),"
	         " (SELECT CREATE_TIME FROM information_schema.TABLES WHERE TABLE_SCHEMA ="
	         " DATABASE() AND TABLE_NAME = '%s')",
	         t->name, t->name);
	pthread_mutex_lock(&t->drain.lock);
	if ((rc = conn_ready(t, &t->drain)) == SL_OK)
		rc = run(t, &t->drain, "position", sql, strlen(sql), take_position, &p);
	pthread_mutex_unlock(&t->drain.lock);
	if (rc != SL_OK)
		return rc;
	snprintf(text, sizeof(text), "sluice L3 mysql\n%s\n%s\n%s\n%s", t->url.database, t->name,
	         p.meta, p.created);
	sl_sha256(out, text, strlen(text));
	return SL_OK;
}

/* ------------------------------------------------------------ open/close */

static int check_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	int ok = len > 0 && len <= SL_SERVER_IDENT_MAX && !(name[0] >= '0' && name[0] <= '9');
	for (size_t i = 0; ok && i < len; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		     (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
	if (!ok)
		return sl_error_set(SL_EINVAL,
		                    "MariaDB L3: bad table name '%s' (want a plain SQL identifier:"
		                    " letters, digits, _, at most %d; the database is the url's)",
		                    name ? name : "(null)", SL_SERVER_IDENT_MAX);
	if (strcasecmp(name, META) == 0)
		return sl_error_set(SL_EINVAL, "MariaDB L3: table name '%s' is reserved", name);
	return SL_OK;
}

typedef struct table_check {
	int exists;
	char problem[200];
} table_check;

/* Result sets of the checks in prepare_table: 0 does the table exist; 1
 * its engine; 2 its columns (name, type, collation); 3 a unique index on
 * `key` alone. */
static int take_check(my_tier *t, void *ctx, int stmt, MYSQL_RES *res)
{
	static const struct {
		const char *col, *types;
	} want[] = {{"key", "varbinary binary varchar char"},
	            {"value", "longblob mediumblob blob"},
	            {"version", "bigint"},
	            {"deleted", "tinyint"},
	            {"updated_at", ""}};
	table_check *c = ctx;
	MYSQL_ROW row;
	int seen[5] = {0};
	(void)t;
	if (stmt == 0) {
		c->exists = (row = mysql_fetch_row(res)) != NULL && row[0] && row[0][0] != '0';
		return SL_OK;
	}
	if (c->problem[0] != '\0' || !c->exists)
		return SL_OK;
	if (stmt == 1) {
		row = mysql_fetch_row(res);
		if (row == NULL || row[0] == NULL || strcasecmp(row[0], "InnoDB") != 0)
			snprintf(c->problem, sizeof(c->problem), "uses engine %s, not InnoDB",
			         row && row[0] ? row[0] : "?");
		return SL_OK;
	}
	if (stmt == 3) {
		if (mysql_fetch_row(res) == NULL)
			snprintf(c->problem, sizeof(c->problem),
			         "has no primary key or unique index on `key` alone");
		return SL_OK;
	}
	while ((row = mysql_fetch_row(res)) != NULL) {
		for (size_t i = 0; i < 5; i++) {
			if (row[0] == NULL || strcasecmp(row[0], want[i].col) != 0)
				continue;
			seen[i] = 1;
			const char *type = row[1] ? row[1] : "?", *coll = row[2];
			char padded[32];
			snprintf(padded, sizeof(padded), " %s ", type);
			char types[64];
			snprintf(types, sizeof(types), " %s ", want[i].types);
			if (want[i].types[0] != '\0' && strstr(types, padded) == NULL)
				snprintf(c->problem, sizeof(c->problem),
				         "has column `%s` of type %s, not %s", want[i].col, type,
				         want[i].types);
			else if (i == 0 && coll != NULL &&
			         (strlen(coll) < 4 || strcmp(coll + strlen(coll) - 4, "_bin") != 0))
				snprintf(
				        c->problem, sizeof(c->problem),
				        "has column `key` with collation %s, not a binary one (keys"
				        " compare bytewise)",
				        coll);
		}
	}
	for (size_t i = 0; i < 5 && c->problem[0] == '\0'; i++)
		if (!seen[i])
			snprintf(c->problem, sizeof(c->problem), "has no column `%s`", want[i].col);
	return SL_OK;
}

/* Creates the table and the meta row when missing, then checks that the
 * table has what we need, naming what is missing. */
static int prepare_table(my_tier *t)
{
	table_check c = {0};
	char *sql = sl_strdup_printf(
	        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
	        " AND TABLE_NAME = '%s';"
	        " SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
	        " AND TABLE_NAME = '%s';"
	        " SELECT COLUMN_NAME, DATA_TYPE, COLLATION_NAME FROM information_schema.COLUMNS"
	        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s';"
	        " SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA ="
	        " DATABASE() AND TABLE_NAME = '%s' AND NON_UNIQUE = 0 GROUP BY INDEX_NAME"
	        " HAVING COUNT(*) = 1 AND MAX(COLUMN_NAME) = 'key'",
	        t->name, t->name, t->name, t->name);
	char *create = sl_strdup_printf(
	        "CREATE TABLE IF NOT EXISTS `%s` (`key` VARBINARY(%u) NOT NULL PRIMARY KEY,"
	        " value LONGBLOB NULL, version BIGINT NOT NULL, deleted BOOL NOT NULL DEFAULT 0,"
	        " updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;"
	        " CREATE TABLE IF NOT EXISTS " META " (tbl VARCHAR(64) NOT NULL PRIMARY KEY,"
	        " batches BIGINT NOT NULL, born CHAR(36) NOT NULL) ENGINE=InnoDB;",
	        t->name, KEY_MAX);
	char *meta = NULL;
	int rc;

	if (sql == NULL || create == NULL) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	if ((rc = run(t, &t->drain, "open", sql, strlen(sql), take_check, &c)) != SL_OK)
		goto cleanup;
	if (c.problem[0] != '\0') {
		rc = sl_error_set(SL_EINVAL,
		                  "MariaDB L3: table %s %s (it needs `key` VARBINARY, value"
		                  " LONGBLOB, version BIGINT, deleted BOOL, updated_at)",
		                  t->name, c.problem);
		goto cleanup;
	}
	/* a table made now gets a new `born`: another position than any before */
	meta = sl_strdup_printf("INSERT INTO " META " (tbl, batches, born) VALUES ('%s', 0, UUID())"
	                        " ON DUPLICATE KEY UPDATE %s",
	                        t->name, c.exists ? "tbl = tbl" : "born = UUID()");
	if (meta == NULL)
		rc = SL_ENOMEM;
	else if ((rc = run_text(t, &t->drain, "open", create)) == SL_OK)
		rc = run_text(t, &t->drain, "open", meta);
cleanup:
	sl_free(sql);
	sl_free(create);
	sl_free(meta);
	return rc;
}

static void tier_close(void *impl)
{
	my_tier *t = impl;
	if (t == NULL)
		return;
	drop(&t->drain);
	drop(&t->reader);
	pthread_mutex_destroy(&t->drain.lock);
	pthread_mutex_destroy(&t->reader.lock);
	sl_server_url_clear(&t->url);
	sl_buf_free(&t->sql);
	sl_free(t->refs);
	sl_free(t->old_state);
	sl_free(t->old_ver);
	sl_free(t->chunk_end);
	sl_free(t->name);
	sl_free(t);
}

static const sl_tier_ops mysql_ops = {.name = "mysql",
                                      .write = tier_write,
                                      .get = tier_get,
                                      .scan_live = tier_scan_live,
                                      .scan_items = tier_scan_items,
                                      .position = tier_position,
                                      .close = tier_close};

int sl_tier_mysql_open(sl_tier *out, const char *url, const char *table, unsigned timeout_ms)
{
	my_tier *t;
	int rc;

	if (out == NULL)
		return sl_error_set(SL_EINVAL, "MariaDB L3: no tier to open");
	if ((rc = check_name(table)) != SL_OK)
		return rc;
	pthread_once(&library_once, library_init);
	if (library_rc != 0)
		return sl_error_set(SL_EIO, "MariaDB L3: the client library did not start");
	if ((t = sl_calloc(1, sizeof(*t))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&t->drain.lock, NULL);
	pthread_mutex_init(&t->reader.lock, NULL);
	t->reader.read_only = 1;
	t->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	sl_buf_init(&t->sql, SIZE_MAX);
	if ((rc = sl_server_url_parse(&t->url, url, &sl_server_url_mysql)) != SL_OK)
		goto fail;
	if ((t->name = sl_strdup(table)) == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if ((rc = conn_ready(t, &t->drain)) != SL_OK || (rc = prepare_table(t)) != SL_OK ||
	    (rc = conn_ready(t, &t->reader)) != SL_OK)
		goto fail;
	out->ops = &mysql_ops;
	out->impl = t;
	return SL_OK;
fail:
	sl_error_wrap("open MariaDB table %s", table);
	tier_close(t);
	return rc;
}
