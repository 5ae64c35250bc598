/*
 * Reading the set reconciliation items of a namespace's state: the view
 * each handle keeps of the current items, and the item set over it that
 * reconciliation reads (sl_store_items_open). The stored index (S1, S2)
 * is items_index.c.
 *
 * The current items are those of S1 changed by the operations of
 * [state_loc, size). Each handle that reads items keeps a view of them
 * (struct item_view, in its namespace cache):
 *   V1. two Fenwick trees over the buckets, of counts and of sums, loaded
 *       from S2 and updated for every change, so the count before any
 *       bucket, the sum before it, and the bucket holding the item of a
 *       given index are each O(16) steps;
 *   V2. for every key the operations changed, the id it had at state_loc
 *       (base) and the id the view counts now (cur); from them, sorted
 *       arrays of the ids gone from S1 and the ids new to it;
 *   V3. it reflects the log up to `upto`; a transaction first replays the
 *       operations after it (reading the base of a key from the state
 *       table the first time the key changes), and starts over when the
 *       state table moved (base_loc != state_loc).
 * The items of one bucket are S1's rows in the bucket (one index range
 * scan), less the gone ids, merged with the new ones; a few buckets are
 * kept listed per view generation. Item i is in the bucket the count tree
 * finds, at i less the count before it; the sum of [a, b) is the sum
 * before b less the sum before a, each the tree's sum before the bucket
 * plus the first items of one listed bucket. A listed bucket whose size
 * is not its counted size means S1/S2 and the view disagree: SL_ECORRUPT.
 */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS ITEM_BUCKETS
#define LISTED  8 /* buckets kept listed per view */

typedef uint8_t item_id[SL_ITEM_ID_LEN];

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, SL_ITEM_ID_LEN);
}

/* ------------------------------------------------------------------ view */

typedef struct view_key {
	keymap_head head;
	item_id base, cur;
	uint8_t has_base, has_cur;
} view_key;

typedef struct new_id {
	item_id id;
	const view_key *k;
} new_id;

typedef struct listed_bucket {
	uint32_t bucket;
	uint64_t gen; /* 0: the slot is free */
	uint64_t used;
	item_id *ids;
	size_t n, cap;
} listed_bucket;

struct item_view {
	int valid;
	uint64_t base_loc, upto, gen;
	uint64_t *count_tree;  /* Fenwick, indexes 1..BUCKETS */
	sl_item_sum *sum_tree; /* likewise */
	uint64_t total;
	keymap changed; /* view_key */
	uint64_t sorted_gen;
	item_id *gone; /* sorted */
	size_t n_gone;
	new_id *added; /* sorted by id */
	size_t n_added;
	listed_bucket listed[LISTED];
	uint64_t tick;
};

void store_items_view_free(struct item_view *v)
{
	if (!v)
		return;
	sl_free(v->count_tree);
	sl_free(v->sum_tree);
	keymap_clear(&v->changed);
	sl_free(v->gone);
	sl_free(v->added);
	for (int i = 0; i < LISTED; i++)
		sl_free(v->listed[i].ids);
	sl_free(v);
}

static void tree_add(struct item_view *v, const uint8_t *id, int insert)
{
	for (uint32_t i = item_bucket(id) + 1; i <= BUCKETS; i += i & (~i + 1)) {
		if (insert) {
			v->count_tree[i]++;
			sl_item_sum_add_id(&v->sum_tree[i], id);
		} else {
			v->count_tree[i]--;
			sl_item_sum_sub_id(&v->sum_tree[i], id);
		}
	}
	v->total += insert ? 1 : (uint64_t)-1;
}

/* Count and sum of the items in buckets [0, b). */
static uint64_t tree_before(const struct item_view *v, uint32_t b, sl_item_sum *sum)
{
	uint64_t count = 0;
	if (sum)
		sl_item_sum_zero(sum);
	for (uint32_t i = b; i > 0; i -= i & (~i + 1)) {
		count += v->count_tree[i];
		if (sum)
			sl_item_sum_add(sum, &v->sum_tree[i]);
	}
	return count;
}

/* The bucket holding item `index` (< total) and the count before it. */
static uint32_t tree_find(const struct item_view *v, uint64_t index, uint64_t *before)
{
	uint32_t pos = 0;
	uint64_t rest = index;
	for (uint32_t step = BUCKETS; step > 0; step >>= 1) {
		if (pos + step <= BUCKETS && v->count_tree[pos + step] <= rest) {
			pos += step;
			rest -= v->count_tree[pos];
		}
	}
	*before = index - rest;
	return pos;
}

/* Load S2 into the trees (linear-time Fenwick construction). */
static int view_load(sl_store *s, struct item_view *v, int64_t ns_id)
{
	int rc;

	v->count_tree[0] = 0;
	sl_item_sum_zero(&v->sum_tree[0]);
	if ((rc = store_item_sums_read(s, ns_id, v->count_tree + 1, v->sum_tree + 1)) != SL_OK)
		return rc;
	v->total = 0;
	for (uint32_t i = 1; i <= BUCKETS; i++)
		v->total += v->count_tree[i];
	for (uint32_t i = 1; i <= BUCKETS; i++) {
		uint32_t parent = i + (i & (~i + 1));
		if (parent <= BUCKETS) {
			v->count_tree[parent] += v->count_tree[i];
			sl_item_sum_add(&v->sum_tree[parent], &v->sum_tree[i]);
		}
	}
	return SL_OK;
}

typedef struct replay_ctx {
	sl_store *s;
	int64_t ns_id;
	struct item_view *v;
} replay_ctx;

/* V2 and V1 for one operation of the log. */
static int view_apply(void *ctx, const log_entry *e)
{
	replay_ctx *x = ctx;
	const sl_op *op = e->op;
	keymap_head *head;
	view_key *k;
	int created, rc;

	if (op->type != SL_OP_SET && op->type != SL_OP_UPDATE && op->type != SL_OP_DELETE)
		return SL_OK;
	if ((rc = keymap_upsert(&x->v->changed, op->key, op->key_len, sizeof(*k), &head,
	                        &created)) != SL_OK)
		return rc;
	k = (view_key *)head;
	if (created) {
		state_entry base;
		rc = store_state_get(x->s, x->ns_id, op->key, op->key_len, &base);
		if (rc != SL_OK && rc != SL_ENOTFOUND)
			return rc;
		k->has_base = k->has_cur = rc == SL_OK;
		if (rc == SL_OK)
			sl_state_item_id(k->base, op->key, op->key_len, &base.digest);
		memcpy(k->cur, k->base, SL_ITEM_ID_LEN);
	}
	if (k->has_cur)
		tree_add(x->v, k->cur, 0);
	k->has_cur = op->type != SL_OP_DELETE;
	if (k->has_cur) {
		sl_state_item_id(k->cur, op->key, op->key_len, &op->digest);
		tree_add(x->v, k->cur, 1);
	}
	return SL_OK;
}

/* Bring c's view up to row (V3). */
static int view_sync(sl_store *s, const ns_row *row, ns_cache *c, struct item_view **out)
{
	struct item_view *v = c->items;
	replay_ctx x;
	int rc;

	if (!v) {
		if (!(v = sl_calloc(1, sizeof(*v))))
			return SL_ENOMEM;
		keymap_init(&v->changed);
		if (!(v->count_tree = sl_calloc(BUCKETS + 1, sizeof(*v->count_tree))) ||
		    !(v->sum_tree = sl_calloc(BUCKETS + 1, sizeof(*v->sum_tree)))) {
			store_items_view_free(v);
			return SL_ENOMEM;
		}
		c->items = v;
	}
	if (!v->valid || v->base_loc != row->state_loc || v->upto > row->size) {
		v->valid = 0;
		keymap_clear(&v->changed);
		if ((rc = view_load(s, v, row->id)) != SL_OK)
			return sl_error_wrap("namespace '%s'", row->name);
		v->base_loc = v->upto = row->state_loc;
		v->valid = 1;
		v->gen++;
	}
	if (v->upto < row->size) {
		x.s = s;
		x.ns_id = row->id;
		x.v = v;
		if ((rc = store_log_walk(s, row->id, v->upto, row->size, view_apply, &x)) !=
		    SL_OK) {
			v->valid = 0;
			return sl_error_wrap("namespace '%s'", row->name);
		}
		v->upto = row->size;
		v->gen++;
	}
	*out = v;
	return SL_OK;
}

static int cmp_new_id(const void *a, const void *b)
{
	return memcmp(((const new_id *)a)->id, ((const new_id *)b)->id, SL_ITEM_ID_LEN);
}

/* For bsearch: the key is a bare id, the element a new_id. */
static int cmp_id_new_id(const void *id, const void *elem)
{
	return memcmp(id, ((const new_id *)elem)->id, SL_ITEM_ID_LEN);
}

/* The sorted arrays of V2, rebuilt once per generation. */
static int view_sort(struct item_view *v)
{
	size_t n = 0;
	if (v->sorted_gen == v->gen)
		return SL_OK;
	sl_free(v->gone);
	sl_free(v->added);
	v->gone = NULL;
	v->added = NULL;
	v->n_gone = v->n_added = 0;
	n = v->changed.count ? v->changed.count : 1;
	if (!(v->gone = sl_malloc(n * sizeof(*v->gone))) ||
	    !(v->added = sl_malloc(n * sizeof(*v->added))))
		return SL_ENOMEM;
	for (size_t i = 0; i < v->changed.cap; i++) {
		const view_key *k = (const view_key *)v->changed.slots[i];
		if (!k || (k->has_base == k->has_cur &&
		           (!k->has_cur || memcmp(k->base, k->cur, SL_ITEM_ID_LEN) == 0)))
			continue;
		if (k->has_base)
			memcpy(v->gone[v->n_gone++], k->base, SL_ITEM_ID_LEN);
		if (k->has_cur) {
			memcpy(v->added[v->n_added].id, k->cur, SL_ITEM_ID_LEN);
			v->added[v->n_added++].k = k;
		}
	}
	qsort(v->gone, v->n_gone, sizeof(*v->gone), cmp_id);
	qsort(v->added, v->n_added, sizeof(*v->added), cmp_new_id);
	v->sorted_gen = v->gen;
	return SL_OK;
}

/* First index in added whose id is not below id. */
static size_t added_lower(const struct item_view *v, const uint8_t *id)
{
	size_t lo = 0, hi = v->n_added;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(v->added[mid].id, id, SL_ITEM_ID_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int push_id(listed_bucket *l, const uint8_t *id)
{
	item_id *grown = sl_grow(l->ids, &l->cap, l->n, sizeof(*l->ids), 32);
	if (!grown)
		return SL_ENOMEM;
	l->ids = grown;
	memcpy(l->ids[l->n++], id, SL_ITEM_ID_LEN);
	return SL_OK;
}

/* The items of bucket b, sorted: S1's rows in it, less the gone ids,
 * merged with the added ones. */
static int list_bucket(sl_store *s, struct item_view *v, int64_t ns_id, uint32_t b,
                       const listed_bucket **out)
{
	listed_bucket *l = NULL;
	uint8_t lo[SL_ITEM_ID_LEN] = {0}, hi[SL_ITEM_ID_LEN + 1];
	size_t hi_len = SL_ITEM_ID_LEN, j;
	sqlite3_stmt *st;
	uint64_t counted;
	int rc;

	for (int i = 0; i < LISTED; i++) {
		if (v->listed[i].gen == v->gen && v->listed[i].bucket == b) {
			v->listed[i].used = ++v->tick;
			*out = &v->listed[i];
			return SL_OK;
		}
		if (!l || v->listed[i].used < l->used)
			l = &v->listed[i];
	}
	if ((rc = view_sort(v)) != SL_OK)
		return rc;
	l->gen = 0;
	l->n = 0;
	lo[0] = (uint8_t)(b >> 8);
	lo[1] = (uint8_t)b;
	memset(hi, 0, sizeof(hi));
	if (b + 1 < BUCKETS) {
		hi[0] = (uint8_t)((b + 1) >> 8);
		hi[1] = (uint8_t)(b + 1);
	} else {
		memset(hi, 0xff, sizeof(hi)); /* past every 32-byte id */
		hi_len = sizeof(hi);
	}
	if (!(st = store_stmt(s, STMT_ITEM_RANGE)))
		return sl_error_last()->code;
	sqlite3_bind_int64(st, 1, ns_id);
	sqlite3_bind_blob(st, 2, lo, SL_ITEM_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, hi, (int)hi_len, SQLITE_STATIC);
	j = added_lower(v, lo);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const uint8_t *id = sqlite3_column_blob(st, 0);
		if (sqlite3_column_bytes(st, 0) != SL_ITEM_ID_LEN || item_bucket(id) != b) {
			rc = sl_error_set(SL_ECORRUPT, "an item id in bucket %u is damaged", b);
			goto done;
		}
		if (bsearch(id, v->gone, v->n_gone, sizeof(*v->gone), cmp_id))
			continue;
		for (; j < v->n_added && memcmp(v->added[j].id, id, SL_ITEM_ID_LEN) < 0; j++)
			if ((rc = push_id(l, v->added[j].id)) != SL_OK)
				goto done;
		if ((rc = push_id(l, id)) != SL_OK)
			goto done;
	}
	if (rc != SQLITE_DONE) {
		rc = store_sqlite_error(s, rc, "read items");
		goto done;
	}
	for (; j < v->n_added && item_bucket(v->added[j].id) == b; j++)
		if ((rc = push_id(l, v->added[j].id)) != SL_OK)
			goto done;
	counted = tree_before(v, b + 1, NULL) - tree_before(v, b, NULL);
	if (l->n != counted) {
		rc = sl_error_set(SL_ECORRUPT,
		                  "the item index is out of step with the state (bucket %u lists "
		                  "%zu items, its sums count %llu); run `sluice verify`",
		                  b, l->n, (unsigned long long)counted);
		goto done;
	}
	rc = SL_OK;
	l->bucket = b;
	l->gen = v->gen;
	l->used = ++v->tick;
	*out = l;
done:
	sqlite3_reset(st);
	return rc;
}

/* -------------------------------------------------------- the item set */

struct sl_items {
	sl_store *s;
	ns_row row;
	ns_cache *c;
	struct item_view *v;
	sl_ns_info info;
	sl_buf key; /* the key sl_items_find returned last */
};

static int index_check(const sl_items *it, uint64_t index, const char *what)
{
	if (index > it->v->total)
		return sl_error_set(SL_EINVAL, "%s %llu is past the %llu items", what,
		                    (unsigned long long)index, (unsigned long long)it->v->total);
	return SL_OK;
}

static int items_count(void *ctx, uint64_t *out)
{
	*out = ((sl_items *)ctx)->v->total;
	return SL_OK;
}

static int items_get(void *ctx, uint64_t index, sl_item *out)
{
	sl_items *it = ctx;
	const listed_bucket *l;
	uint64_t before;
	uint32_t b;
	int rc;

	if (index >= it->v->total)
		return index_check(it, index + 1, "item");
	b = tree_find(it->v, index, &before);
	if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
		return rc;
	out->ts = 0;
	memcpy(out->id, l->ids[index - before], SL_ITEM_ID_LEN);
	return SL_OK;
}

static int items_lower_bound(void *ctx, uint64_t begin, const sl_item *bound, uint64_t *out)
{
	sl_items *it = ctx;
	const listed_bucket *l;
	uint64_t at;
	uint32_t b;
	size_t lo, hi;
	int rc;

	if ((rc = index_check(it, begin, "index")) != SL_OK)
		return rc;
	if (bound->ts > 0) {
		*out = it->v->total; /* every item has timestamp 0 */
		return SL_OK;
	}
	b = item_bucket(bound->id);
	if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
		return rc;
	lo = 0;
	hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(l->ids[mid], bound->id, SL_ITEM_ID_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	at = tree_before(it->v, b, NULL) + lo;
	*out = at > begin ? at : begin;
	return SL_OK;
}

/* The sum of items [0, index). */
static int sum_before(sl_items *it, uint64_t index, sl_item_sum *out)
{
	const listed_bucket *l;
	uint64_t before;
	uint32_t b;
	int rc;

	if (index >= it->v->total) {
		tree_before(it->v, BUCKETS, out);
		return SL_OK;
	}
	b = tree_find(it->v, index, &before);
	tree_before(it->v, b, out);
	if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
		return rc;
	for (uint64_t i = 0; i < index - before; i++)
		sl_item_sum_add_id(out, l->ids[i]);
	return SL_OK;
}

static int items_sum(void *ctx, uint64_t begin, uint64_t end, sl_item_sum *out)
{
	sl_items *it = ctx;
	sl_item_sum below;
	int rc;

	if ((rc = index_check(it, end, "index")) != SL_OK)
		return rc;
	if (begin > end)
		return sl_error_set(SL_EINVAL, "item range [%llu, %llu) is backwards",
		                    (unsigned long long)begin, (unsigned long long)end);
	if ((rc = sum_before(it, end, out)) != SL_OK ||
	    (rc = sum_before(it, begin, &below)) != SL_OK)
		return rc;
	sl_item_sum_sub(out, &below);
	return SL_OK;
}

static int items_each(void *ctx, uint64_t begin, uint64_t end, sl_item_fn fn, void *fn_ctx)
{
	sl_items *it = ctx;
	uint64_t index = begin;
	int rc;

	if ((rc = index_check(it, end, "index")) != SL_OK)
		return rc;
	while (index < end) {
		const listed_bucket *l;
		uint64_t before;
		uint32_t b = tree_find(it->v, index, &before);
		if ((rc = list_bucket(it->s, it->v, it->row.id, b, &l)) != SL_OK)
			return rc;
		for (size_t i = (size_t)(index - before); i < l->n && index < end; i++, index++) {
			sl_item item;
			item.ts = 0;
			memcpy(item.id, l->ids[i], SL_ITEM_ID_LEN);
			if ((rc = fn(fn_ctx, index, &item)) != 0)
				return rc > 0 ? SL_OK : rc;
		}
	}
	return SL_OK;
}

static const sl_item_set_ops items_ops = {items_count, items_get, items_lower_bound, items_sum,
                                          items_each};

static int format_check(const sl_store *s)
{
	if (s->format < 2)
		return sl_error_set(SL_EINVAL,
		                    "store %s has format 1, without the item index that "
		                    "reconciliation reads; open it for writing once to upgrade it "
		                    "(`sluice init -d %s`)",
		                    s->dir, s->dir);
	return SL_OK;
}

int sl_store_items_open(sl_store *s, const char *ns, sl_items **out)
{
	sl_items *it;
	int rc;

	if ((rc = format_check(s)) != SL_OK)
		return rc;
	if (!(it = sl_calloc(1, sizeof(*it))))
		return SL_ENOMEM;
	it->s = s;
	sl_buf_init(&it->key, SL_KEY_MAX + 1);
	if ((rc = store_begin_read(s)) != SL_OK) {
		sl_free(it);
		return rc;
	}
	if ((rc = store_ns_sync(s, ns, &it->row, &it->c)) != SL_OK ||
	    (rc = view_sync(s, &it->row, it->c, &it->v)) != SL_OK) {
		store_rollback_txn(s);
		sl_free(it);
		return rc;
	}
	snprintf(it->info.name, sizeof(it->info.name), "%s", it->row.name);
	it->info.kind = it->row.kind;
	it->info.target.size = it->row.size;
	it->info.target.root = it->row.root;
	it->info.target.floor = it->row.floor;
	it->info.pruned = it->row.pruned;
	it->info.keys = it->v->total;
	*out = it;
	return SL_OK;
}

void sl_items_close(sl_items *it)
{
	if (!it)
		return;
	store_rollback_txn(it->s); /* a read transaction: nothing to keep */
	sl_buf_free(&it->key);
	sl_free(it);
}

const sl_ns_info *sl_items_ns(const sl_items *it)
{
	return &it->info;
}

sl_item_set sl_items_set(sl_items *it)
{
	sl_item_set set = {&items_ops, it};
	return set;
}

int sl_items_find(sl_items *it, const uint8_t id[SL_ITEM_ID_LEN], sl_key_entry *out)
{
	struct item_view *v = it->v;
	const new_id *hit;
	state_entry st;
	item_id check;
	int rc;

	if ((rc = view_sort(v)) != SL_OK)
		return rc;
	hit = bsearch(id, v->added, v->n_added, sizeof(*v->added), cmp_id_new_id);
	if (hit) {
		rc = sl_buf_set(&it->key, hit->k->head.key, hit->k->head.key_len);
	} else {
		sqlite3_stmt *q;
		if (bsearch(id, v->gone, v->n_gone, sizeof(*v->gone), cmp_id))
			return SL_ENOTFOUND;
		if (!(q = store_stmt(it->s, STMT_ITEM_KEY)))
			return sl_error_last()->code;
		sqlite3_bind_int64(q, 1, it->row.id);
		sqlite3_bind_blob(q, 2, id, SL_ITEM_ID_LEN, SQLITE_STATIC);
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW)
			rc = sl_buf_set(&it->key, sqlite3_column_blob(q, 0),
			                (size_t)sqlite3_column_bytes(q, 0));
		else if (rc == SQLITE_DONE)
			rc = SL_ENOTFOUND;
		else
			rc = store_sqlite_error(it->s, rc, "read items");
		sqlite3_reset(q);
	}
	if (rc != SL_OK)
		return rc;
	rc = store_lookup(it->s, it->c, (const char *)it->key.data, it->key.len, &st);
	if (rc == SL_ENOTFOUND)
		return sl_error_set(SL_ECORRUPT,
		                    "the item of '%.*s' is listed but the key is not live",
		                    (int)it->key.len, (const char *)it->key.data);
	if (rc != SL_OK)
		return rc;
	sl_state_item_id(check, (const char *)it->key.data, it->key.len, &st.digest);
	if (memcmp(check, id, SL_ITEM_ID_LEN) != 0)
		return sl_error_set(SL_ECORRUPT, "the item of '%.*s' is out of step with its state",
		                    (int)it->key.len, (const char *)it->key.data);
	out->key = (const char *)it->key.data;
	out->key_len = it->key.len;
	out->loc = st.loc;
	out->digest = st.digest;
	out->value_len = st.size;
	return SL_OK;
}

int sl_items_value(sl_items *it, const sl_key_entry *entry, sl_buf *value)
{
	state_entry st = {entry->loc, entry->digest, entry->value_len};
	return store_value_get(it->s, it->row.id, &st, value);
}

/* ---------------------------------------------------------------- verify */

int store_items_verify(sl_store *s, const ns_row *row, ns_cache *c, uint64_t n_live,
                       const sl_item_sum *live_sum, uint64_t *checked)
{
	struct item_view *v;
	sl_item_sum sum;
	int rc;

	if (s->format < 2)
		return SL_OK; /* nothing to check yet: no index */
	if ((rc = store_items_verify_index(s, row)) != SL_OK ||
	    (rc = view_sync(s, row, c, &v)) != SL_OK)
		return rc;
	tree_before(v, BUCKETS, &sum);
	if (v->total != n_live || memcmp(&sum, live_sum, sizeof(sum)) != 0)
		return sl_error_set(SL_ECORRUPT,
		                    "the current items (%llu) differ from the %llu live keys",
		                    (unsigned long long)v->total, (unsigned long long)n_live);
	*checked = n_live;
	return SL_OK;
}
