/*
 * The reconciliation items of a dag namespace: one item (height, entry
 * id) per entry held, sorted by height then id, which is also an order in
 * which every entry comes after its parents. Two nodes holding the same
 * entries hold the same items, so set reconciliation over them finds the
 * entries one side lacks.
 *
 * Entries are only ever added, and numbered in the order they were
 * stored (seq, dag.c), so a view reads the entries it has not seen yet,
 * seq >= its count, and merges them into an sl_item_vec: O(new) reads and
 * O(n) memory moves per refresh, never a full reload. A view holds one
 * namespace; pointed at another (or at a namespace recreated under the
 * same name) it starts over.
 */
#include "store/dag_internal.h"

#include <string.h>

struct sl_dag_items {
	sl_item_vec *vec;
	int64_t ns_row; /* the namespace's row id; 0: none yet */
	sl_digest ns_id;
	uint64_t count;
};

int sl_dag_items_new(sl_dag_items **out)
{
	sl_dag_items *v = sl_calloc(1, sizeof(*v));
	if (!v)
		return SL_ENOMEM;
	if (sl_item_vec_new(&v->vec) != SL_OK) {
		sl_free(v);
		return SL_ENOMEM;
	}
	*out = v;
	return SL_OK;
}

void sl_dag_items_free(sl_dag_items *v)
{
	if (!v)
		return;
	sl_item_vec_free(v->vec);
	sl_free(v);
}

/* Inside a read transaction on row: add the entries of seq >= v->count. */
static int read_new(sl_dag_items *v, sl_store *s, const ns_row *row)
{
	sqlite3_stmt *st = NULL;
	uint64_t added = 0;
	int rc;

	if ((rc = dag_prepare(s, &st,
	                      "SELECT height, id FROM dag_entries WHERE ns = ?1 AND seq >= ?2 "
	                      "ORDER BY seq")) != SL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_int64(st, 2, (int64_t)v->count);
	for (;;) {
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW) {
			rc = step == SQLITE_DONE ? SL_OK
			                         : store_sqlite_error(s, step, "read entries");
			break;
		}
		if (sqlite3_column_bytes(st, 1) != SL_DIGEST_LEN) {
			rc = sl_error_set(SL_ECORRUPT, "a stored entry id is damaged");
			break;
		}
		if ((rc = sl_item_vec_add(v->vec, (uint64_t)sqlite3_column_int64(st, 0),
		                          sqlite3_column_blob(st, 1))) != SL_OK)
			break;
		added++;
	}
	sqlite3_finalize(st);
	if (rc == SL_OK && v->count + added != row->size)
		rc = sl_error_set(SL_ECORRUPT,
		                  "namespace '%s' counts %llu entries, but %llu are numbered",
		                  row->name, (unsigned long long)row->size,
		                  (unsigned long long)(v->count + added));
	if (rc == SL_OK)
		rc = sl_item_vec_seal(v->vec);
	else
		sl_item_vec_discard(v->vec); /* the next refresh reads them again */
	if (rc == SL_OK)
		v->count += added;
	return rc;
}

int sl_dag_items_refresh(sl_dag_items *v, sl_store *s, const char *ns)
{
	ns_row row;
	int rc;

	if ((rc = dag_format_check(s)) != SL_OK || (rc = store_begin_read(s)) != SL_OK)
		return rc;
	if ((rc = dag_load(s, ns, &row)) == SL_OK) {
		if (v->ns_row != row.id || !sl_digest_eq(&v->ns_id, &row.root) ||
		    row.size < v->count) {
			sl_item_vec *fresh;
			if ((rc = sl_item_vec_new(&fresh)) == SL_OK) {
				sl_item_vec_free(v->vec);
				v->vec = fresh;
				v->count = 0;
				v->ns_row = row.id;
				v->ns_id = row.root;
			}
		}
		if (rc == SL_OK && row.size > v->count)
			rc = read_new(v, s, &row);
	}
	store_rollback_txn(s); /* a read: nothing to commit */
	return rc;
}

uint64_t sl_dag_items_count(const sl_dag_items *v)
{
	return v->count;
}

sl_item_set sl_dag_items_set(sl_dag_items *v)
{
	return sl_item_vec_set(v->vec);
}
