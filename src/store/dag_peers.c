/*
 * The peers of dag namespaces and the requests for access to them, kept
 * in the store (tables of format 3, dag_txn.c):
 *
 *   dag_peers(ns, addr, node, pushed_seq, last_ok, last_try, next_try,
 *             failures, last_error)
 *     a node this one syncs the namespace with, by address, and the key
 *     its requests are signed for. pushed_seq is the peer's outbox: the
 *     entries stored here with seq >= pushed_seq are owed to it (seq
 *     numbers entries in the order they were stored, parents first, so
 *     the outbox is sent in that order). It moves only forward, and only
 *     after the peer has taken the entries; a write adds to every peer's
 *     outbox in the transaction that stores it, since it takes the next
 *     seq. Nothing in an outbox is ever dropped: a failed push stays owed
 *     and is retried.
 *   dag_requests(id, ns, node, role, addr, time, state)
 *     a node's request for a role (through a ticket), pending until an
 *     admin approves or denies it; one row per (namespace, node).
 */
#include "store/dag_internal.h"

#include <stdio.h>
#include <string.h>

static int peer_check(const char *addr)
{
	size_t len = addr ? strlen(addr) : 0;
	if (len == 0 || len >= SL_DAG_ADDR_MAX)
		return sl_error_set(SL_EINVAL, "a peer address of 1..%d bytes, not %zu",
		                    SL_DAG_ADDR_MAX - 1, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)addr[i] <= ' ' || addr[i] == 0x7f)
			return sl_error_set(SL_EINVAL,
			                    "peer address '%s' holds a blank or a control "
			                    "byte",
			                    addr);
	return SL_OK;
}

/* One statement on a dag namespace's row, in a transaction of its own. */
typedef int (*row_fn)(sl_store *s, const ns_row *row, void *ctx);

static int with_ns(sl_store *s, const char *ns, int write, row_fn fn, void *ctx)
{
	ns_row row;
	int rc;
	if ((rc = dag_format_check(s)) != SL_OK ||
	    (rc = write ? store_begin_write(s) : store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = dag_load(s, ns, &row)) == SL_OK)
		rc = fn(s, &row, ctx);
	if (rc == SL_OK && write)
		rc = store_commit_txn(s);
	if (rc != SL_OK || !write)
		store_rollback_txn(s);
	return rc;
}

static int step_once(sl_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SL_OK : store_sqlite_error(s, rc, what);
}

/* ------------------------------------------------------------------ peers */

typedef struct peer_add_ctx {
	const char *addr;
	const uint8_t *node;
} peer_add_ctx;

static int peer_add_row(sl_store *s, const ns_row *row, void *ctx)
{
	const peer_add_ctx *a = ctx;
	sqlite3_stmt *st = NULL;
	int rc = dag_prepare(s, &st,
	                     "INSERT INTO dag_peers(ns, addr, node, pushed_seq, last_ok, last_try, "
	                     "next_try, failures, last_error) VALUES (?1, ?2, ?3, ?4, 0, 0, 0, 0, "
	                     "'') ON CONFLICT(ns, addr) DO UPDATE SET node = ?3");
	if (rc != SL_OK)
		return rc;
	/* What is held now is for reconciliation to compare; the outbox owes
	 * the peer what is stored from here on. */
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_text(st, 2, a->addr, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, a->node, SL_ED25519_PK_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)row->size);
	return step_once(s, st, "add a peer");
}

int sl_dag_peer_add(sl_store *s, const char *ns, const char *addr,
                    const uint8_t node[SL_ED25519_PK_LEN])
{
	peer_add_ctx a = {addr, node};
	int rc = peer_check(addr);
	return rc == SL_OK ? with_ns(s, ns, 1, peer_add_row, &a) : rc;
}

static int peer_remove_row(sl_store *s, const ns_row *row, void *ctx)
{
	sqlite3_stmt *st = NULL;
	int rc = dag_prepare(s, &st, "DELETE FROM dag_peers WHERE ns = ?1 AND addr = ?2");
	if (rc != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_text(st, 2, ctx, -1, SQLITE_STATIC);
	if ((rc = step_once(s, st, "remove a peer")) == SL_OK && sqlite3_changes(s->db) == 0)
		rc = sl_error_set(SL_ENOTFOUND, "namespace '%s' has no peer %s", row->name,
		                  (const char *)ctx);
	return rc;
}

int sl_dag_peer_remove(sl_store *s, const char *ns, const char *addr)
{
	return with_ns(s, ns, 1, peer_remove_row, (void *)addr);
}

typedef struct peer_record_ctx {
	const char *addr;
	int ok;
	uint64_t pushed_upto, now_ms, next_try_ms;
	const char *error;
} peer_record_ctx;

static int peer_record_row(sl_store *s, const ns_row *row, void *ctx)
{
	const peer_record_ctx *r = ctx;
	sqlite3_stmt *st = NULL;
	int rc = dag_prepare(
	        s, &st,
	        r->ok ? "UPDATE dag_peers SET pushed_seq = max(pushed_seq, ?3), last_ok = ?4, "
	                "last_try = ?4, next_try = ?5, failures = 0, last_error = '' WHERE ns = ?1 "
	                "AND addr = ?2"
	              : "UPDATE dag_peers SET pushed_seq = max(pushed_seq, ?3), last_try = ?4, "
	                "next_try = ?5, failures = failures + 1, last_error = ?6 WHERE ns = ?1 AND "
	                "addr = ?2");
	if (rc != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_text(st, 2, r->addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3,
	                   (int64_t)(r->pushed_upto < row->size ? r->pushed_upto : row->size));
	sqlite3_bind_int64(st, 4, (int64_t)r->now_ms);
	sqlite3_bind_int64(st, 5, (int64_t)r->next_try_ms);
	if (!r->ok)
		sqlite3_bind_text(st, 6, r->error ? r->error : "", -1, SQLITE_STATIC);
	if ((rc = step_once(s, st, "record a peer's sync")) == SL_OK && sqlite3_changes(s->db) == 0)
		rc = sl_error_set(SL_ENOTFOUND, "namespace '%s' has no peer %s", row->name,
		                  r->addr);
	return rc;
}

int sl_dag_peer_record(sl_store *s, const char *ns, const char *addr, int ok, uint64_t pushed_upto,
                       const char *error, uint64_t now_ms, uint64_t next_try_ms)
{
	peer_record_ctx r = {addr, ok, pushed_upto, now_ms, next_try_ms, error};
	return with_ns(s, ns, 1, peer_record_row, &r);
}

int sl_dag_peer_list(sl_store *s, const char *ns, sl_dag_peer **out, size_t *n_out)
{
	sqlite3_stmt *st = NULL;
	sl_dag_peer *list = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_read(s)) != SL_OK)
		return rc;
	if (ns) {
		ns_row row;
		if ((rc = dag_load(s, ns, &row)) != SL_OK)
			goto out;
	}
	if ((rc = dag_prepare(s, &st,
	                      "SELECT n.name, p.addr, p.node, p.pushed_seq, n.size, p.last_ok, "
	                      "p.last_try, p.next_try, p.failures, p.last_error FROM dag_peers p "
	                      "JOIN namespaces n ON n.id = p.ns WHERE ?1 IS NULL OR n.name = ?1 "
	                      "ORDER BY n.name, p.addr")) != SL_OK)
		goto out;
	if (ns)
		sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
	for (;;) {
		sl_dag_peer *p;
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(s, step, "list peers");
			break;
		}
		if (!(p = sl_grow(list, &cap, n, sizeof(*list), 8))) {
			rc = SL_ENOMEM;
			break;
		}
		list = p;
		p = &list[n++];
		memset(p, 0, sizeof(*p));
		snprintf(p->ns, sizeof(p->ns), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(p->addr, sizeof(p->addr), "%s", (const char *)sqlite3_column_text(st, 1));
		if (sqlite3_column_bytes(st, 2) != SL_ED25519_PK_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "the key of peer %s is damaged", p->addr);
			break;
		}
		memcpy(p->node, sqlite3_column_blob(st, 2), SL_ED25519_PK_LEN);
		p->pushed_seq = (uint64_t)sqlite3_column_int64(st, 3);
		p->backlog = (uint64_t)sqlite3_column_int64(st, 4) - p->pushed_seq;
		p->last_ok_ms = (uint64_t)sqlite3_column_int64(st, 5);
		p->last_try_ms = (uint64_t)sqlite3_column_int64(st, 6);
		p->next_try_ms = (uint64_t)sqlite3_column_int64(st, 7);
		p->failures = (uint32_t)sqlite3_column_int64(st, 8);
		snprintf(p->last_error, sizeof(p->last_error), "%s",
		         (const char *)sqlite3_column_text(st, 9));
	}
out:
	sqlite3_finalize(st);
	store_rollback_txn(s);
	if (rc != SL_OK) {
		sl_free(list);
		return rc;
	}
	*out = list;
	*n_out = n;
	return SL_OK;
}

/* ------------------------------------------------------- access requests */

static int request_from_row(sqlite3_stmt *st, sl_dag_request *r)
{
	memset(r, 0, sizeof(*r));
	r->id = (uint64_t)sqlite3_column_int64(st, 0);
	snprintf(r->ns, sizeof(r->ns), "%s", (const char *)sqlite3_column_text(st, 1));
	if (sqlite3_column_bytes(st, 2) != SL_ED25519_PK_LEN)
		return sl_error_set(SL_ECORRUPT, "the key of access request %llu is damaged",
		                    (unsigned long long)r->id);
	memcpy(r->node, sqlite3_column_blob(st, 2), SL_ED25519_PK_LEN);
	r->role = (sl_dag_role)sqlite3_column_int(st, 3);
	snprintf(r->addr, sizeof(r->addr), "%s", (const char *)sqlite3_column_text(st, 4));
	r->time_ms = (uint64_t)sqlite3_column_int64(st, 5);
	r->state = (sl_dag_request_state)sqlite3_column_int(st, 6);
	if (r->role < SL_DAG_READ || r->role > SL_DAG_ADMIN || r->state > SL_DAG_REQUEST_DENIED)
		return sl_error_set(SL_ECORRUPT, "access request %llu is damaged",
		                    (unsigned long long)r->id);
	return SL_OK;
}

#define REQUEST_COLUMNS                                                                            \
	"SELECT r.id, n.name, r.node, r.role, r.addr, r.time, r.state FROM dag_requests r JOIN "   \
	"namespaces n ON n.id = r.ns "

/* Inside a transaction: the requests the WHERE clause (binding ?1 to
 * arg, text or integer) selects. */
static int requests_where(sl_store *s, const char *where, const char *text_arg, int64_t int_arg,
                          sl_dag_request **out, size_t *n_out)
{
	char sql[512];
	sqlite3_stmt *st = NULL;
	sl_dag_request *list = NULL;
	size_t n = 0, cap = 0;
	int rc;

	snprintf(sql, sizeof(sql), "%s%s ORDER BY r.id", REQUEST_COLUMNS, where);
	if ((rc = dag_prepare(s, &st, sql)) != SL_OK)
		return rc;
	if (text_arg)
		sqlite3_bind_text(st, 1, text_arg, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, int_arg);
	for (;;) {
		sl_dag_request *grown;
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(s, step, "list requests");
			break;
		}
		if (!(grown = sl_grow(list, &cap, n, sizeof(*list), 8))) {
			rc = SL_ENOMEM;
			break;
		}
		list = grown;
		if ((rc = request_from_row(st, &list[n++])) != SL_OK)
			break;
	}
	sqlite3_finalize(st);
	if (rc != SL_OK) {
		sl_free(list);
		return rc;
	}
	*out = list;
	*n_out = n;
	return SL_OK;
}

typedef struct submit_ctx {
	const uint8_t *node;
	sl_dag_role role;
	const char *addr;
	uint64_t now_ms;
	sl_dag_request *out;
} submit_ctx;

static int submit_row(sl_store *s, const ns_row *row, void *ctx)
{
	submit_ctx *c = ctx;
	sqlite3_stmt *st = NULL;
	sl_dag_request *found = NULL;
	size_t n = 0;
	int rc;

	/* A repeated request from the node updates a pending one and leaves
	 * a decided one as it was. */
	if ((rc = dag_prepare(s, &st,
	                      "INSERT INTO dag_requests(ns, node, role, addr, time, state) VALUES "
	                      "(?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT(ns, node) DO UPDATE SET role = "
	                      "?3, addr = ?4, time = ?5 WHERE state = 0")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_blob(st, 2, c->node, SL_ED25519_PK_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)c->role);
	sqlite3_bind_text(st, 4, c->addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)c->now_ms);
	if ((rc = step_once(s, st, "record an access request")) != SL_OK)
		return rc;
	/* The node's row: a blob can't be the text argument, so select by
	 * the namespace and compare keys here. */
	if ((rc = requests_where(s, "WHERE r.ns = ?1", NULL, row->id, &found, &n)) != SL_OK)
		return rc;
	rc = sl_error_set(SL_EINTERNAL, "an access request was recorded but not found");
	for (size_t i = 0; i < n; i++)
		if (memcmp(found[i].node, c->node, SL_ED25519_PK_LEN) == 0) {
			*c->out = found[i];
			rc = SL_OK;
		}
	sl_free(found);
	return rc;
}

int sl_dag_request_submit(sl_store *s, const char *ns, const uint8_t node[SL_ED25519_PK_LEN],
                          sl_dag_role role, const char *addr, uint64_t now_ms, sl_dag_request *out)
{
	submit_ctx c = {node, role, addr ? addr : "", now_ms, out};
	int rc;
	if (role != SL_DAG_READ && role != SL_DAG_WRITE)
		return sl_error_set(SL_EINVAL, "a node may ask for read or write, not %s",
		                    sl_dag_role_name(role));
	if (addr && *addr && (rc = peer_check(addr)) != SL_OK)
		return rc;
	return with_ns(s, ns, 1, submit_row, &c);
}

int sl_dag_request_list(sl_store *s, sl_dag_request **out, size_t *n)
{
	int rc;
	*out = NULL;
	*n = 0;
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_read(s)) != SL_OK)
		return rc;
	rc = requests_where(s, "WHERE ?1 = 0", NULL, 0, out, n); /* all */
	store_rollback_txn(s);
	return rc;
}

/* Inside a transaction: request id. */
static int request_get(sl_store *s, uint64_t id, sl_dag_request *out)
{
	sl_dag_request *found = NULL;
	size_t n = 0;
	int rc = requests_where(s, "WHERE r.id = ?1", NULL, (int64_t)id, &found, &n);
	if (rc == SL_OK && n == 0)
		rc = sl_error_set(SL_ENOTFOUND, "no access request %llu", (unsigned long long)id);
	if (rc == SL_OK)
		*out = found[0];
	sl_free(found);
	return rc;
}

int sl_dag_request_get(sl_store *s, uint64_t id, sl_dag_request *out)
{
	int rc;
	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_read(s)) != SL_OK)
		return rc;
	rc = request_get(s, id, out);
	store_rollback_txn(s);
	return rc;
}

/* Mark request id decided, unless another decision came first: an
 * approval does not overturn a denial, nor a denial an approval. */
static int request_decide(sl_store *s, uint64_t id, sl_dag_request_state state)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = store_begin_write(s)) != SL_OK)
		return rc;
	if ((rc = dag_prepare(s, &st,
	                      "UPDATE dag_requests SET state = ?2 WHERE id = ?1 AND state IN (0, "
	                      "?2)")) == SL_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)id);
		sqlite3_bind_int(st, 2, (int)state);
		if ((rc = step_once(s, st, "decide an access request")) == SL_OK &&
		    sqlite3_changes(s->db) == 0)
			rc = sl_error_set(SL_ECONFLICT,
			                  "access request %llu was decided otherwise meanwhile",
			                  (unsigned long long)id);
	}
	if (rc == SL_OK)
		rc = store_commit_txn(s);
	if (rc != SL_OK)
		store_rollback_txn(s);
	return rc;
}

int sl_dag_request_approve(sl_store *s, uint64_t id, const uint8_t sk[SL_ED25519_SK_LEN])
{
	sl_dag_request r;
	sl_dag_write w;
	sl_dag_role mine;
	int rc;

	if ((rc = sl_dag_request_get(s, id, &r)) != SL_OK)
		return rc;
	if (r.state == SL_DAG_REQUEST_DENIED)
		return sl_error_set(SL_ECONFLICT, "access request %llu was denied",
		                    (unsigned long long)id);
	if ((rc = sl_dag_role_of(s, r.ns, sk + 32, &mine)) != SL_OK)
		return rc;
	if (mine != SL_DAG_ADMIN)
		return sl_error_set(SL_EAUTH, "only an admin of '%s' approves requests", r.ns);
	/* Marked first, then the role written: a deny cannot land in between
	 * (it refuses an approved request), so a role is never granted on a
	 * request that reads denied. A crash between the two leaves it
	 * approved without the role; approving it again writes the role. */
	if ((rc = request_decide(s, id, SL_DAG_REQUEST_APPROVED)) != SL_OK)
		return rc;
	memset(&w, 0, sizeof(w));
	w.kind = SL_DAG_ROLE;
	memcpy(w.pk, r.node, SL_ED25519_PK_LEN);
	w.role = r.role;
	return sl_dag_write_entry(s, r.ns, sk, &w, NULL, 1, NULL);
}

int sl_dag_request_deny(sl_store *s, uint64_t id)
{
	sl_dag_request r;
	int rc;
	if ((rc = sl_dag_request_get(s, id, &r)) != SL_OK)
		return rc;
	if (r.state == SL_DAG_REQUEST_APPROVED)
		return sl_error_set(
		        SL_ECONFLICT,
		        "access request %llu was approved: to take the role back, `sluice "
		        "dag grant %s <key> none`",
		        (unsigned long long)id, r.ns);
	return request_decide(s, id, SL_DAG_REQUEST_DENIED);
}
