/*
 * Who may write in a DAG namespace, judged at an entry's parents without
 * walking the DAG.
 *
 * A settings entry is the root or an entry with a ROLE write. For every
 * entry E, sfront(E) is the list of the newest settings entries among E
 * and its ancestors (none of them an ancestor of another): [E] for a
 * settings entry, else the reduction of its parents' sfronts. For every
 * settings entry S, closure(S) is the list of every settings entry among
 * S and its ancestors. The roles at E's parents, by which E is judged,
 * are the merge of the ROLE writes of closure(f) for f in the reduced
 * union of the parents' sfronts, the greatest (height, id) winning per
 * key, the root counting as making its author admin. Settings entries
 * are few, so these lists stay short. dag.c stores sfront with every
 * entry and closure with every settings entry (invariant D4).
 */
#include "store/dag_internal.h"

#include <stdlib.h>
#include <string.h>

int dag_closure_get(dag_txn *t, const sl_digest *id, dag_ids *out)
{
	sqlite3_stmt *st = t->get_settings;
	int rc;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, id->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = dag_ids_from_blob(out, sqlite3_column_blob(st, 0),
		                       sqlite3_column_bytes(st, 0));
	else if (rc == SQLITE_DONE)
		rc = sl_error_set(SL_ECORRUPT, "settings entry %s has no closure",
		                  sl_digest_to_hex(id).s);
	else
		rc = store_sqlite_error(t->s, rc, "read settings");
	sqlite3_reset(st);
	return rc;
}

int dag_reduce_front(dag_txn *t, dag_ids *front)
{
	size_t kept = 0;
	int rc = SL_OK;
	dag_ids_sort_unique(front);
	if (front->n < 2)
		return SL_OK;
	for (size_t i = 0; i < front->n && rc == SL_OK; i++) {
		int below = 0;
		for (size_t j = 0; j < front->n && !below && rc == SL_OK; j++) {
			dag_ids closure = {0};
			if (i == j)
				continue;
			if ((rc = dag_closure_get(t, &front->ids[j], &closure)) == SL_OK) {
				dag_ids_sort_unique(&closure);
				below = dag_ids_has(&closure, &front->ids[i]);
			}
			sl_free(closure.ids);
		}
		if (!below)
			front->ids[kept++] = front->ids[i];
	}
	front->n = kept;
	return rc;
}

typedef struct role_write {
	uint64_t height;
	sl_digest id;
	uint8_t pk[SL_ED25519_PK_LEN];
	sl_dag_role role;
} role_write;

static int cmp_role_write(const void *a, const void *b)
{
	const role_write *x = a, *y = b;
	int c = memcmp(x->pk, y->pk, SL_ED25519_PK_LEN);
	if (c)
		return c;
	if (x->height != y->height)
		return x->height < y->height ? -1 : 1;
	return memcmp(x->id.bytes, y->id.bytes, SL_DIGEST_LEN);
}

/* The ROLE writes (and the root's admin) of one settings entry. */
static int settings_writes(dag_txn *t, const sl_digest *id, role_write **list, size_t *n,
                           size_t *cap)
{
	sqlite3_stmt *st = NULL;
	sl_dag_entry e;
	int rc;

	if ((rc = dag_prepare(t->s, &st,
	                      "SELECT encoding FROM dag_entries WHERE ns = ?1 AND id = ?2")) !=
	    SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, t->row.id);
	sqlite3_bind_blob(st, 2, id->bytes, SL_DIGEST_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? sl_error_set(SL_ECORRUPT, "settings entry %s is missing",
		                                      sl_digest_to_hex(id).s)
		                       : store_sqlite_error(t->s, rc, "read a settings entry");
		sqlite3_finalize(st);
		return rc;
	}
	rc = dag_entry_decode_checked(&e, sqlite3_column_blob(st, 0),
	                              (size_t)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	if (rc != SL_OK)
		return sl_error_wrap("stored entry %s", sl_digest_to_hex(id).s);
	for (size_t i = 0; i <= e.n_writes && rc == SL_OK; i++) {
		role_write w;
		role_write *grown;
		if (i == e.n_writes) { /* the root makes its author admin */
			if (e.n_parents != 0)
				break;
			memcpy(w.pk, e.author, SL_ED25519_PK_LEN);
			w.role = SL_DAG_ADMIN;
		} else if (e.writes[i].kind == SL_DAG_ROLE) {
			memcpy(w.pk, e.writes[i].pk, SL_ED25519_PK_LEN);
			w.role = e.writes[i].role;
		} else {
			continue;
		}
		w.height = e.height;
		w.id = e.id;
		if (!(grown = sl_grow(*list, cap, *n, sizeof(**list), 16))) {
			rc = SL_ENOMEM;
			break;
		}
		*list = grown;
		(*list)[(*n)++] = w;
	}
	sl_dag_entry_free(&e);
	return rc;
}

/* The roles at a reduced settings front, kept for the next entry judged
 * at the same front (most entries are). */
int dag_roles_at(dag_txn *t, const dag_ids *front)
{
	dag_ids all = {0};
	role_write *writes = NULL;
	size_t n_writes = 0, cap_writes = 0;
	int rc = SL_OK;

	if (t->roles_front.ids && front->n == t->roles_front.n &&
	    memcmp(front->ids, t->roles_front.ids, front->n * sizeof(*front->ids)) == 0)
		return SL_OK;
	for (size_t i = 0; i < front->n && rc == SL_OK; i++)
		rc = dag_closure_get(t, &front->ids[i], &all);
	if (rc == SL_OK)
		dag_ids_sort_unique(&all);
	for (size_t i = 0; i < all.n && rc == SL_OK; i++)
		rc = settings_writes(t, &all.ids[i], &writes, &n_writes, &cap_writes);
	if (rc != SL_OK)
		goto cleanup;
	/* Per key, the greatest (height, id) wins: sorted by key then by
	 * (height, id), the last of each run. */
	if (n_writes)
		qsort(writes, n_writes, sizeof(*writes), cmp_role_write);
	t->n_roles = 0;
	for (size_t i = 0; i < n_writes; i++) {
		if (i + 1 < n_writes &&
		    memcmp(writes[i].pk, writes[i + 1].pk, SL_ED25519_PK_LEN) == 0)
			continue;
		if (t->n_roles == t->cap_roles) {
			size_t cap = t->cap_roles ? 2 * t->cap_roles : 16;
			void *pks = sl_realloc(t->role_pks, cap * sizeof(*t->role_pks));
			void *vals;
			if (!pks) {
				rc = SL_ENOMEM;
				goto cleanup;
			}
			t->role_pks = pks;
			if (!(vals = sl_realloc(t->role_values, cap * sizeof(*t->role_values)))) {
				rc = SL_ENOMEM;
				goto cleanup;
			}
			t->role_values = vals;
			t->cap_roles = cap;
		}
		memcpy(t->role_pks[t->n_roles], writes[i].pk, SL_ED25519_PK_LEN);
		t->role_values[t->n_roles++] = writes[i].role;
	}
	t->roles_front.n = 0;
	for (size_t i = 0; i < front->n && rc == SL_OK; i++)
		rc = dag_ids_push(&t->roles_front, &front->ids[i]);
cleanup:
	if (rc != SL_OK) {
		t->roles_front.n = 0;
		sl_free(t->roles_front.ids);
		t->roles_front.ids = NULL;
	}
	sl_free(all.ids);
	sl_free(writes);
	return rc;
}

sl_dag_role dag_role_in(const dag_txn *t, const uint8_t pk[SL_ED25519_PK_LEN])
{
	for (size_t i = 0; i < t->n_roles; i++) /* sorted, but few */
		if (memcmp(t->role_pks[i], pk, SL_ED25519_PK_LEN) == 0)
			return t->role_values[i];
	return SL_DAG_NONE;
}

int dag_is_settings(const sl_dag_entry *e)
{
	for (size_t i = 0; i < e->n_writes; i++)
		if (e->writes[i].kind == SL_DAG_ROLE)
			return 1;
	return e->n_parents == 0;
}
