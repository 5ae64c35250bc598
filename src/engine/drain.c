/* The batcher: on its own thread, reads the WAL in LSN order and writes it
 * to L3 in batches, flushed by count, bytes or time (defaults 1000 items,
 * 1 MiB, 100 ms since the batch's first record), or at once when a caller
 * waits (an `l3` write, a flush, close).
 *
 * Invariants:
 *   D1  l3_lsn only grows, and every record with an LSN <= l3_lsn is in L3,
 *       or in the retry list, or parked (synced in DIR/parked).
 *   D2  The WAL is released only up to min(l3_lsn, the oldest retrying
 *       record's LSN - 1): a record leaves the disk only when L3 or the
 *       parked file holds it.
 *   D3  A batch that L3 did not commit (L3 down, a timeout) is written
 *       again, whole, with the `drain` policy's backoff, until it commits or
 *       close gives up; it stays in the WAL meanwhile (writes keep being
 *       acknowledged up to the WAL's cap). The version guard makes a
 *       repeat harmless.
 *   D4  A row L3 refuses on its own goes to the retry list (the
 *       `batch_write` policy: at most l3_max_attempts), then to the parked
 *       file; it never holds up the other rows or the batches after it.
 *   D5  The filter learns a new live key before its L1 entry turns clean
 *       (filter.c, F1).
 *   D6  An L1 entry turns clean only when the row written carries its
 *       pending LSN: a newer write of the key keeps it dirty.
 *   D7  DIR/drained holds an LSN up to which L3 (or the parked file) held
 *       every record when it was written. It is a hint, written without a
 *       sync after each release: a restart skips the records at or below
 *       it instead of writing them to L3 again. An old or missing mark
 *       only costs that repeat (harmless: the guard); a damaged one reads
 *       as 0.
 *   D8  Every L3 call of the drain (write, the filter rebuild's scans) is
 *       allowed by the L3 breaker first and its outcome recorded after: a
 *       failure of L3 (down, a timeout) is a failure, a committed batch
 *       is a success even with rows refused on their own. While the
 *       breaker is open the drain calls nothing and waits (woken by close);
 *       by D3 the WAL holds what it would have written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_internal.h"

#define REBUILD_RETRY_MS    5000
#define WAL_ERROR_WAIT_MS   2000 /* the WAL could not be read, or no memory */
#define IDLE_WAIT_MS        100
#define UNSYNCED_POLL_MS    1
#define STOP_SLEEP_SLICE_MS 10

struct retry_row {
	char *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	uint64_t version, lsn;
	int deleted;
	uint32_t attempts;
	uint64_t first_ms; /* when L3 first refused it: the policy's elapsed */
	uint64_t next_ms;
	char error[200];
};

typedef struct batch_row {
	uint64_t lsn, version;
	int deleted;
	size_t key_off, key_len, value_off, value_len;
} batch_row;

typedef struct batch {
	sl_buf arena; /* keys and values */
	batch_row *rows;
	size_t n, cap;
	size_t *index; /* open addressing: row number + 1, 0 empty */
	size_t index_cap;
	size_t bytes;
	uint64_t first_ns;
	uint64_t last_lsn;
	uint64_t skip_upto; /* D7 */
	sl_tier_row *tier_rows;
	size_t tier_cap;
} batch;

static int batch_init(batch *b, size_t items)
{
	memset(b, 0, sizeof(*b));
	sl_buf_init(&b->arena, SIZE_MAX);
	b->index_cap = 16;
	while (b->index_cap < items * 2)
		b->index_cap *= 2;
	b->index = sl_calloc(b->index_cap, sizeof(*b->index));
	return b->index ? SL_OK : SL_ENOMEM;
}

static void batch_free(batch *b)
{
	sl_buf_free(&b->arena);
	sl_free(b->rows);
	sl_free(b->index);
	sl_free(b->tier_rows);
}

static void batch_reset(batch *b)
{
	sl_buf_reset(&b->arena);
	memset(b->index, 0, b->index_cap * sizeof(*b->index));
	b->n = 0;
	b->bytes = 0;
	b->first_ns = 0;
}

/* A record whose key the batch already holds: the batch is written first
 * (E5: a key's writes reach L3 one by one, in order, so a refused newer
 * write never hides an older acknowledged one). */
#define BATCH_HAS_KEY 1

static int batch_add(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	(void)loc;
	batch *b = ctx;
	if (r->lsn <= b->skip_upto)
		return SL_OK; /* D7: in L3 before the restart */
	size_t mask = b->index_cap - 1, slot = l1_hash(r->key, r->key_len) & mask;
	while (b->index[slot]) {
		const batch_row *o = &b->rows[b->index[slot] - 1];
		if (o->key_len == r->key_len &&
		    memcmp(b->arena.data + o->key_off, r->key, r->key_len) == 0)
			return BATCH_HAS_KEY; /* the cursor stays on this record */
		slot = (slot + 1) & mask;
	}
	size_t key_off = b->arena.len;
	int rc = sl_buf_append(&b->arena, r->key, r->key_len);
	if (rc == SL_OK && r->value_len)
		rc = sl_buf_append(&b->arena, r->value, r->value_len);
	batch_row *rows =
	        rc == SL_OK ? sl_grow(b->rows, &b->cap, b->n + 1, sizeof(*rows), 64) : NULL;
	if (rows == NULL) {
		b->arena.len = key_off;
		return rc != SL_OK ? rc : SL_ENOMEM;
	}
	b->rows = rows;
	batch_row *row = &rows[b->n++];
	b->index[slot] = b->n;
	row->lsn = r->lsn;
	row->version = r->version;
	row->deleted = r->op == SL_WAL_DEL;
	row->key_off = key_off;
	row->key_len = r->key_len;
	row->value_off = key_off + r->key_len;
	row->value_len = r->value_len;
	b->bytes += r->key_len + r->value_len;
	b->last_lsn = r->lsn;
	if (b->first_ns == 0)
		b->first_ns = sl_clock_mono_ns();
	return SL_OK;
}

void drain_wake(sl_engine *e)
{
	pthread_cond_signal(&e->drain_cond);
}

void drain_set_error(sl_engine *e, const char *msg)
{
	pthread_mutex_lock(&e->error_lock);
	snprintf(e->l3_error, sizeof(e->l3_error), "%s", msg);
	pthread_mutex_unlock(&e->error_lock);
}

static int stopping(sl_engine *e)
{
	return atomic_load(&e->drain_stop);
}

static int past_deadline(sl_engine *e)
{
	return stopping(e) && sl_clock_mono_ns() >= e->drain_deadline_ns;
}

/* Sleeps ms, in slices, unless close's deadline passes first. */
static void backoff_sleep(sl_engine *e, uint64_t ms)
{
	uint64_t end = sl_clock_mono_ns() + ms * 1000000;
	while (!past_deadline(e) && sl_clock_mono_ns() < end)
		sl_sleep_ms(STOP_SLEEP_SLICE_MS);
}

/* D8: waits until the L3 breaker lets a call through, asking it again
 * only when its open time is over (so a refusal is counted once per
 * open period, not per wake-up). SL_OK to call, or SL_EUNAVAILABLE once
 * close's deadline passed. */
static int l3_allowed(sl_engine *e)
{
	for (;;) {
		if (sl_breaker_allow(e->l3_breaker, engine_now_ms(e)))
			return SL_OK;
		do {
			if (past_deadline(e))
				return engine_l3_unavailable(e);
			/* half-open with its trials taken: a slice; open: until
			 * the end of its time, woken early by close */
			uint64_t wait = engine_l3_open_left_ms(e);
			wait = wait == 0             ? STOP_SLEEP_SLICE_MS
			       : wait > IDLE_WAIT_MS ? IDLE_WAIT_MS
			                             : wait;
			pthread_mutex_lock(&e->drain_lock);
			sl_cond_wait_ms(&e->drain_cond, &e->drain_lock, wait);
			pthread_mutex_unlock(&e->drain_lock);
		} while (sl_breaker_state_at(e->l3_breaker, engine_now_ms(e)) == SL_BREAKER_OPEN);
	}
}

static void l3_record(sl_engine *e, int rc)
{
	sl_breaker_record(e->l3_breaker, !engine_l3_failed(rc), engine_now_ms(e));
}

/* One write of rows to L3, repeated until it commits (D3); SL_OK, or the
 * error when close's deadline passed. */
static int write_rows(sl_engine *e, sl_tier_row *rows, size_t n, uint64_t *rng)
{
	for (;;) {
		int rc = l3_allowed(e);
		if (rc != SL_OK)
			return rc;
		rc = e->tier.ops->write(e->tier.impl, rows, n);
		l3_record(e, rc);
		if (rc == SL_OK) {
			if (!atomic_load(&e->l3_up))
				drain_set_error(e, "");
			atomic_store(&e->l3_up, 1);
			atomic_fetch_add(&e->n_l3_batches, 1);
			e->drain_fails = 0;
			return SL_OK;
		}
		atomic_store(&e->l3_up, 0);
		drain_set_error(e, sl_error_last()->message);
		/* It may have committed after all (a lost COMMIT answer): the
		 * repeat then reports nothing applied, and the filter would never
		 * learn its new keys (F1). It is rebuilt instead. */
		filter_distrust(&e->filter);
		e->drain_fails++;
		uint64_t wait = sl_retry_delay_ms(&e->cfg.retry_drain, e->drain_fails + 1, rng);
		sl_log(SL_LOG_WARN, "L3 write failed", "rows=%zu retry_ms=%llu", n,
		       (unsigned long long)wait);
		if (past_deadline(e))
			return rc;
		backoff_sleep(e, wait);
	}
}

/* After L3 took a row: the filter (D5), then L1 (D6). */
static void row_done(sl_engine *e, const sl_tier_row *r, uint64_t lsn, int refused)
{
	if (!refused && r->applied) {
		if (!r->was_live && r->is_live)
			filter_add(&e->filter, r->key, r->key_len);
		else if (r->was_live && !r->is_live)
			filter_remove(&e->filter, r->key, r->key_len);
	}
	uint64_t h = l1_hash(r->key, r->key_len);
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_lock(s);
	l1_entry *en = l1_find(s, r->key, r->key_len, h);
	if (en && en->pending_lsn == lsn && !refused)
		l1_mark_clean(s, en); /* a refused one stays dirty: retried */
	l1_unlock(s);
}

static void update_min_retry(sl_engine *e)
{
	uint64_t min = UINT64_MAX;
	for (size_t i = 0; i < e->n_retries; i++)
		if (e->retries[i].lsn < min)
			min = e->retries[i].lsn;
	atomic_store(&e->min_retry_lsn, min);
	atomic_store(&e->retrying, (uint64_t)e->n_retries);
}

int drain_retrying(sl_engine *e, uint64_t lsn)
{
	int found = 0;
	pthread_mutex_lock(&e->retry_lock);
	for (size_t i = 0; !found && i < e->n_retries; i++)
		found = e->retries[i].lsn == lsn;
	pthread_mutex_unlock(&e->retry_lock);
	return found;
}

static int retry_add(sl_engine *e, const sl_tier_row *r, uint64_t lsn, uint64_t *rng)
{
	pthread_mutex_lock(&e->retry_lock);
	retry_row *rows = sl_grow(e->retries, &e->cap_retries, e->n_retries + 1, sizeof(*rows), 8);
	if (rows == NULL) {
		pthread_mutex_unlock(&e->retry_lock);
		return SL_ENOMEM;
	}
	e->retries = rows;
	retry_row *t = &rows[e->n_retries];
	memset(t, 0, sizeof(*t));
	if ((t->key = sl_malloc(r->key_len + 1)) == NULL ||
	    (r->value_len && (t->value = sl_malloc(r->value_len)) == NULL)) {
		sl_free(t->key);
		pthread_mutex_unlock(&e->retry_lock);
		return SL_ENOMEM;
	}
	memcpy(t->key, r->key, r->key_len);
	t->key[r->key_len] = '\0';
	if (r->value_len)
		memcpy(t->value, r->value, r->value_len);
	t->key_len = r->key_len;
	t->value_len = r->value_len;
	t->version = r->version;
	t->lsn = lsn;
	t->deleted = r->deleted;
	t->attempts = 1;
	t->first_ms = sl_clock_wall_ms();
	t->next_ms = t->first_ms + sl_retry_delay_ms(&e->batch_write, 2, rng);
	snprintf(t->error, sizeof(t->error), "%s", r->error);
	e->n_retries++;
	pthread_mutex_unlock(&e->retry_lock);
	sl_log(SL_LOG_WARN, "L3 refused a row", "version=%llu error=\"%s\"",
	       (unsigned long long)r->version, r->error);
	return SL_OK;
}

static void retry_remove(sl_engine *e, size_t i)
{
	pthread_mutex_lock(&e->retry_lock);
	sl_free(e->retries[i].key);
	sl_free(e->retries[i].value);
	e->retries[i] = e->retries[--e->n_retries];
	pthread_mutex_unlock(&e->retry_lock);
}

/* D7: 8 bytes of LSN and their CRC-32C, big-endian. */
#define MARK_LEN 12

static void mark_open(sl_engine *e)
{
	char path[4200];
	uint8_t buf[MARK_LEN];
	snprintf(path, sizeof(path), "%s/drained", e->wal_dir);
	e->drained_mark = 0;
	e->drained_fd = open(path, O_RDWR | O_CREAT, 0644);
	if (e->drained_fd >= 0 && pread(e->drained_fd, buf, MARK_LEN, 0) == MARK_LEN &&
	    sl_crc32c(0, buf, 8) == sl_be32_get(buf + 8))
		e->drained_mark = sl_be64_get(buf);
	if (e->drained_fd < 0)
		sl_log(SL_LOG_WARN, "cannot keep the drained mark", "path=%s errno=%d", path,
		       errno);
}

static void mark_write(sl_engine *e, uint64_t lsn)
{
	uint8_t buf[MARK_LEN];
	sl_be64_put(buf, lsn);
	sl_be32_put(buf + 8, sl_crc32c(0, buf, 8));
	if (e->drained_fd >= 0 && pwrite(e->drained_fd, buf, MARK_LEN, 0) != MARK_LEN)
		sl_error_clear(); /* a hint: an old mark only means a longer replay */
}

static void publish_l3(sl_engine *e, uint64_t lsn)
{
	pthread_mutex_lock(&e->drain_lock);
	if (lsn > atomic_load(&e->l3_lsn))
		atomic_store(&e->l3_lsn, lsn);
	pthread_cond_broadcast(&e->l3_cond);
	pthread_mutex_unlock(&e->drain_lock);
	uint64_t min = atomic_load(&e->min_retry_lsn);
	uint64_t upto = atomic_load(&e->l3_lsn);
	if (min != UINT64_MAX && min - 1 < upto)
		upto = min - 1;
	if (sl_wal_release(e->wal, upto) != SL_OK) { /* D2 */
		drain_set_error(e, sl_error_last()->message);
		sl_error_clear();
	} else if (upto > e->drained_mark) {
		mark_write(e, upto);
		e->drained_mark = upto;
	}
}

static int flush_batch(sl_engine *e, batch *b, uint64_t *rng)
{
	if (b->n > b->tier_cap) {
		sl_tier_row *t = sl_realloc(b->tier_rows, b->n * sizeof(*t));
		if (t == NULL)
			return SL_ENOMEM;
		b->tier_rows = t;
		b->tier_cap = b->n;
	}
	for (size_t i = 0; i < b->n; i++) {
		const batch_row *br = &b->rows[i];
		sl_tier_row *r = &b->tier_rows[i];
		memset(r, 0, sizeof(*r));
		r->key = (const char *)b->arena.data + br->key_off;
		r->key_len = br->key_len;
		r->value = br->deleted ? NULL : b->arena.data + br->value_off;
		r->value_len = br->value_len;
		r->version = br->version;
		r->deleted = br->deleted;
		r->fresh = br->version > e->open_version;
		r->maybe_live = filter_maybe(&e->filter, r->key, r->key_len);
	}
	int rc = write_rows(e, b->tier_rows, b->n, rng);
	if (rc != SL_OK)
		return rc;
	for (size_t i = 0; i < b->n; i++) {
		sl_tier_row *r = &b->tier_rows[i];
		int refused = r->rc != SL_OK;
		if (refused && (rc = retry_add(e, r, b->rows[i].lsn, rng)) != SL_OK)
			return rc;
		row_done(e, r, b->rows[i].lsn, refused);
	}
	atomic_fetch_add(&e->n_l3_rows, b->n);
	update_min_retry(e);
	publish_l3(e, b->last_lsn);
	batch_reset(b);
	return SL_OK;
}

/* 1 when another row of the retry list has the same key and a newer
 * version: a write takes distinct keys, and the newest is tried first (if
 * L3 takes it, the older ones are superseded). */
static int newer_retry(const sl_engine *e, size_t i)
{
	const retry_row *t = &e->retries[i];
	for (size_t k = 0; k < e->n_retries; k++) {
		const retry_row *o = &e->retries[k];
		if (k != i && o->version > t->version && o->key_len == t->key_len &&
		    memcmp(o->key, t->key, t->key_len) == 0)
			return 1;
	}
	return 0;
}

/* Retries the refused rows that are due (D4). */
static int run_retries(sl_engine *e, uint64_t *rng)
{
	uint64_t now = sl_clock_wall_ms();
	size_t due = 0;
	for (size_t i = 0; i < e->n_retries; i++)
		due += e->retries[i].next_ms <= now;
	if (due == 0)
		return SL_OK;
	sl_tier_row *rows = sl_calloc(due, sizeof(*rows));
	size_t *which = sl_calloc(due, sizeof(*which));
	int rc = rows && which ? SL_OK : SL_ENOMEM;
	size_t n = 0;
	for (size_t i = 0; rc == SL_OK && i < e->n_retries; i++) {
		retry_row *t = &e->retries[i];
		if (t->next_ms > now || newer_retry(e, i))
			continue; /* one row per key in a write: the newest goes first */
		rows[n] = (sl_tier_row){.key = t->key,
		                        .key_len = t->key_len,
		                        .value = t->deleted ? NULL : t->value,
		                        .value_len = t->value_len,
		                        .version = t->version,
		                        .deleted = t->deleted,
		                        .maybe_live = 1};
		which[n++] = i;
	}
	if (rc == SL_OK && !sl_breaker_allow(e->l3_breaker, engine_now_ms(e))) {
		/* D8: the rows wait until the breaker lets a call through */
		uint64_t wait = engine_l3_open_left_ms(e);
		for (size_t k = 0; k < n; k++)
			e->retries[which[k]].next_ms = now + (wait ? wait : STOP_SLEEP_SLICE_MS);
		n = 0;
	} else if (rc == SL_OK) {
		rc = e->tier.ops->write(e->tier.impl, rows, n);
		l3_record(e, rc);
		if (rc != SL_OK) {
			/* L3 is down: the rows wait for the next round, later */
			drain_set_error(e, sl_error_last()->message);
			sl_error_clear();
			filter_distrust(&e->filter); /* as in write_rows */
			e->drain_fails++;
			for (size_t k = 0; k < n; k++)
				e->retries[which[k]].next_ms =
				        now + sl_retry_delay_ms(&e->cfg.retry_drain,
				                                e->drain_fails + 1, rng);
			rc = SL_OK;
			n = 0;
		} else {
			e->drain_fails = 0;
		}
	}
	/* back to front, so retry_remove's swap leaves earlier indexes alone */
	for (size_t k = n; rc == SL_OK && k-- > 0;) {
		retry_row *t = &e->retries[which[k]];
		sl_tier_row *r = &rows[k];
		if (r->rc == SL_OK) {
			row_done(e, r, t->lsn, 0);
			retry_remove(e, which[k]);
			continue;
		}
		t->attempts++;
		snprintf(t->error, sizeof(t->error), "%s", r->error);
		if (sl_retry_may(&e->batch_write, t->attempts + 1,
		                 now > t->first_ms ? now - t->first_ms : 0)) {
			t->next_ms = now + sl_retry_delay_ms(&e->batch_write, t->attempts + 1, rng);
			continue;
		}
		rc = parked_add(e->parked, t->key, t->key_len, t->version, t->deleted, t->value,
		                t->value_len, t->attempts, t->error);
		if (rc != SL_OK)
			break;
		sl_log(SL_LOG_WARN, "row parked", "version=%llu attempts=%u",
		       (unsigned long long)t->version, t->attempts);
		/* parked: L1 shows what L3 holds again */
		uint64_t h = l1_hash(t->key, t->key_len);
		l1_shard *s = l1_shard_of(e->l1, h);
		l1_lock(s);
		l1_entry *en = l1_find(s, t->key, t->key_len, h);
		if (en && en->pending_lsn == t->lsn) {
			l1_mark_clean(s, en);
			if ((en = l1_find(s, t->key, t->key_len, h)) != NULL)
				l1_remove(s, en);
		}
		l1_unlock(s);
		retry_remove(e, which[k]);
	}
	sl_free(rows);
	sl_free(which);
	update_min_retry(e);
	publish_l3(e, atomic_load(&e->l3_lsn));
	return rc;
}

/* Loads every record the WAL holds into L1 as dirty (E4 after a restart:
 * a write acknowledged before the crash is read back before L3 has it). */
static int replay_one(void *ctx, const sl_wal_record *r, const sl_wal_loc *loc)
{
	sl_engine *e = ctx;
	if (r->lsn <= e->drained_mark)
		return SL_OK; /* D7: L3 has it; reads go there */
	uint64_t h = l1_hash(r->key, r->key_len);
	l1_shard *s = l1_shard_of(e->l1, h);
	l1_lock(s);
	int rc = l1_put_dirty(s, r->key, r->key_len, h, r->version, r->value, r->value_len,
	                      r->op == SL_WAL_DEL, r->lsn, loc);
	l1_shrink(s, r->lsn);
	l1_unlock(s);
	return rc;
}

static int replay(sl_engine *e)
{
	sl_wal_cursor c;
	size_t n;
	int rc;
	sl_wal_cursor_start(e->wal, &c);
	do
		rc = sl_wal_read_next(e->wal, &c, 4096, 16 << 20, replay_one, e, &n);
	while (rc == SL_OK && n > 0);
	return rc;
}

static void *drain_main(void *arg)
{
	sl_engine *e = arg;
	batch b;
	sl_wal_cursor cur;
	uint64_t rng = sl_clock_mono_ns() | 1, next_rebuild = 0;
	if (batch_init(&b, e->cfg.batch_items) != SL_OK) {
		drain_set_error(e, "out of memory");
		return NULL;
	}
	sl_wal_cursor_start(e->wal, &cur);
	b.skip_upto = e->drained_mark;
	atomic_store(&e->l3_lsn,
	             cur.next_lsn - 1 > e->drained_mark ? cur.next_lsn - 1 : e->drained_mark);
	for (;;) {
		uint64_t trusted_keys;
		if (past_deadline(e))
			break; /* close gave up: what is left stays in the WAL */
		if (!filter_trusted(&e->filter, &trusted_keys) &&
		    sl_clock_wall_ms() >= next_rebuild && !stopping(e)) {
			/* D8: the rebuild's scans are one call for the breaker */
			if (!sl_breaker_allow(e->l3_breaker, engine_now_ms(e))) {
				uint64_t wait = engine_l3_open_left_ms(e);
				next_rebuild =
				        sl_clock_wall_ms() + (wait ? wait : STOP_SLEEP_SLICE_MS);
			} else {
				int rc = filter_rebuild(&e->filter, &e->tier);
				l3_record(e, rc);
				if (rc != SL_OK) {
					drain_set_error(e, sl_error_last()->message);
					sl_error_clear();
					next_rebuild = sl_clock_wall_ms() + REBUILD_RETRY_MS;
				}
			}
		}
		size_t got = 0;
		int rc = SL_OK;
		if (b.n < e->cfg.batch_items && b.bytes < e->cfg.batch_bytes)
			rc = sl_wal_read_next(e->wal, &cur, e->cfg.batch_items - b.n,
			                      e->cfg.batch_bytes - b.bytes, batch_add, &b, &got);
		int has_key = rc == BATCH_HAS_KEY;
		if (has_key)
			rc = SL_OK;
		if (rc != SL_OK) { /* an I/O error or no memory: try again, never give up */
			drain_set_error(e, sl_error_last()->message);
			sl_log(SL_LOG_ERROR, "the drain cannot read the WAL", "error=\"%s\"",
			       sl_error_last()->message);
			backoff_sleep(e, WAL_ERROR_WAIT_MS);
			continue;
		}
		int full = has_key || b.n >= e->cfg.batch_items || b.bytes >= e->cfg.batch_bytes;
		int due = b.n > 0 &&
		          (sl_clock_mono_ns() - b.first_ns >= (uint64_t)e->cfg.batch_ms * 1000000 ||
		           atomic_load(&e->flush_wanted) > 0 || stopping(e));
		if (full || due) {
			if (flush_batch(e, &b, &rng) != SL_OK) {
				if (past_deadline(e))
					break; /* close gave up: the rest stays in the WAL */
				drain_set_error(e, sl_error_last()->message);
				backoff_sleep(e, WAL_ERROR_WAIT_MS); /* no memory: again */
			}
			continue;
		}
		if (got > 0)
			continue;
		if (e->n_retries > 0 && run_retries(e, &rng) != SL_OK) {
			drain_set_error(e, sl_error_last()->message); /* parked file: again */
			backoff_sleep(e, WAL_ERROR_WAIT_MS);
		}
		sl_wal_stats ws;
		sl_wal_stats_get(e->wal, &ws);
		int unsynced = ws.last_lsn >= cur.next_lsn;
		if (stopping(e) && (!unsynced || past_deadline(e)) && b.n == 0 &&
		    (e->n_retries == 0 || past_deadline(e)))
			break;
		uint64_t wait_ms = unsynced ? UNSYNCED_POLL_MS : IDLE_WAIT_MS;
		if (b.n > 0) {
			uint64_t age_ms = (sl_clock_mono_ns() - b.first_ns) / 1000000;
			uint64_t left = e->cfg.batch_ms > age_ms ? e->cfg.batch_ms - age_ms : 0;
			wait_ms = left < wait_ms ? left : wait_ms;
		}
		if (stopping(e) || e->n_retries > 0)
			wait_ms = wait_ms < 10 ? wait_ms : 10;
		int idle = !unsynced && b.n == 0 && e->n_retries == 0;
		if (idle)
			atomic_store(&e->drain_idle, 1);
		pthread_mutex_lock(&e->drain_lock);
		sl_cond_wait_ms(&e->drain_cond, &e->drain_lock, wait_ms);
		pthread_mutex_unlock(&e->drain_lock);
		atomic_store(&e->drain_idle, 0);
	}
	batch_free(&b);
	return NULL;
}

int drain_start(sl_engine *e)
{
	mark_open(e);
	int rc = replay(e);
	if (rc != SL_OK)
		return sl_error_wrap("replay the WAL into L1");
	if (pthread_create(&e->drain_thread, NULL, drain_main, e) != 0)
		return sl_error_set(SL_EINTERNAL, "cannot start the drain thread");
	e->drain_started = 1;
	return SL_OK;
}

void drain_stop(sl_engine *e)
{
	if (!e->drain_started)
		return;
	atomic_store(&e->drain_stop, 1);
	drain_wake(e);
	pthread_join(e->drain_thread, NULL);
	e->drain_started = 0;
	if (e->drained_fd >= 0) {
		fdatasync(e->drained_fd);
		close(e->drained_fd);
		e->drained_fd = -1;
	}
	for (size_t i = e->n_retries; i-- > 0;)
		retry_remove(e, i);
}
