/*
 * What the files of DAG namespaces share (src/store/dag*.c):
 *   dag_txn.c     id lists, the tables, one transaction's statements;
 *   dag_roles.c   who may write: settings fronts, closures, roles;
 *   dag.c         verifying and storing entries (the invariants D1..D6);
 *   dag_read.c    info, log, tips, roles and the state as the store reads it;
 *   dag_verify.c  sl_dag_verify, by replaying every entry;
 *   dag_entry.c   the encoding; dag_sigcheck.c  signatures checked in parallel.
 */
#ifndef SLUICE_STORE_DAG_INTERNAL_H
#define SLUICE_STORE_DAG_INTERNAL_H

#include "store/store_internal.h"

#include "sluice/dag.h"

/* ------------------------------------------------------------- id lists */

typedef struct dag_ids {
	sl_digest *ids;
	size_t n, cap;
} dag_ids;

int dag_ids_push(dag_ids *l, const sl_digest *id);
void dag_ids_sort_unique(dag_ids *l);
int dag_ids_has(const dag_ids *l, const sl_digest *id); /* l sorted */
int dag_ids_from_blob(dag_ids *l, const void *blob, int bytes);
int dag_cmp_digest(const void *a, const void *b);

/* --------------------------------------------------------------- entries */

/* sl_dag_entry_decode without the signature check, for an entry whose
 * signature was checked already: read back from the store (nothing is
 * stored unchecked), or vouched for by an sl_dag_verified set. */
int dag_entry_decode_checked(sl_dag_entry *out, const uint8_t *data, size_t len);

/* Whether id is in the set (NULL: an empty set). */
int dag_verified_has(const sl_dag_verified *v, const sl_digest *id);

/* ---------------------------------------------------------- transactions */

/* What one transaction on a dag namespace needs. */
typedef struct dag_txn {
	sl_store *s;
	ns_row row;
	sqlite3_stmt *get_entry, *get_settings, *put_entry, *put_settings, *get_state, *put_state,
	        *add_tip, *del_tip, *blob_size;
	sqlite3_stmt *put_value; /* NULL in a store of a format before 4 */
	int rehash;              /* verify: re-hash every value an entry sets */
	uint64_t rehashed;       /* values re-hashed */
	/* the roles of the last settings front judged, kept for the next */
	dag_ids roles_front;
	uint8_t (*role_pks)[SL_ED25519_PK_LEN];
	sl_dag_role *role_values;
	size_t n_roles, cap_roles;
} dag_txn;

int dag_prepare(sl_store *s, sqlite3_stmt **st, const char *sql);
int dag_format_check(const sl_store *s);
/* Inside a transaction: the dag namespace `name`. */
int dag_load(sl_store *s, const char *name, ns_row *row);
/* t's statements, inside a transaction (t->s and t->row set). */
int dag_txn_prepare(dag_txn *t);
void dag_txn_free(dag_txn *t);
/* Begin a transaction on dag namespace ns and prepare t. */
int dag_txn_begin(dag_txn *t, sl_store *s, const char *ns, int write);
/* Commit (rc SL_OK, the namespace row written first when it changed) or
 * roll back; frees t. */
int dag_txn_end(dag_txn *t, int rc, int row_changed);
/* In a read transaction on ns: prepare sql, bind the namespace's row id
 * to ?1, and hand the statement to fn, whose result is returned. */
typedef int (*dag_query_fn)(dag_txn *t, sqlite3_stmt *st, void *ctx);
int dag_read_query(sl_store *s, const char *ns, const char *sql, dag_query_fn fn, void *ctx);

/* ----------------------------------------------------------------- roles */

/* A settings entry (the root, or one with a ROLE write). */
int dag_is_settings(const sl_dag_entry *e);
/* closure(id) appended to out. */
int dag_closure_get(dag_txn *t, const sl_digest *id, dag_ids *out);
/* Keep of `front` only the entries that are no other's ancestor. */
int dag_reduce_front(dag_txn *t, dag_ids *front);
/* Make t's roles those at a reduced settings front. */
int dag_roles_at(dag_txn *t, const dag_ids *front);
/* A key's role among t's roles. */
sl_dag_role dag_role_in(const dag_txn *t, const uint8_t pk[SL_ED25519_PK_LEN]);

/* --------------------------------------------------------------- storing */

/* The values that came with entries, and their digests. */
typedef struct dag_offered_value {
	sl_digest digest;
	size_t at; /* in values */
} dag_offered_value;

typedef struct dag_offered {
	const sl_bytes *values;
	size_t n_values;
	dag_offered_value *index; /* by digest */
} dag_offered;

/* What became of one entry offered. */
typedef struct dag_verdict {
	enum { DAG_STORED, DAG_KNOWN, DAG_REFUSED } outcome;
	int code; /* when refused: SL_EAUTH (its author may not), SL_ENOTFOUND
	             (a parent is not held), else SL_EINVAL */
	char reason[256];
} dag_verdict;

/* Verify an entry against the namespace as held (D1) and store it,
 * unless it descends from one of `refused` (entry ids, NULL: none; a
 * frame's refusals are looked up in constant time). Its signature is
 * not checked again when its id is in `verified` (may be NULL).
 * Returns an error of the store only; a refusal is in v. */
int dag_offer(dag_txn *t, const uint8_t *enc, size_t len, const sl_dag_verified *verified,
              const dag_offered *o, const keymap *refused, sl_digest *id, dag_verdict *v);
/* A root entry: no parent, and only ROLE writes (SL_EINVAL otherwise). */
int dag_check_root(const sl_dag_entry *root);
/* Store a namespace's root entry (verified, t->row.root its id). */
int dag_store_root(dag_txn *t, const sl_dag_entry *root, const uint8_t *enc, size_t len);

#endif
