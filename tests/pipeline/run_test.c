/*
 * The pipeline run (src/pipeline/run.c) and its state, against in-memory
 * fakes of a source, a fetcher and a sink with failure injection. The real
 * stores are exercised by tests/cli/pipeline*.sh; these check the rules:
 * nothing skipped, failures retried then parked and never dropped, a fatal
 * error saves nothing, stop finishes the batch, objects move in parts, an
 * object that does not match its recorded size or hash is never stored.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/pipeline_internal.h"
#include "testutil.h"

#define MAX_ROWS 64

/* ---------------------------------------------------------------- fakes */

typedef struct fake_world {
	sl_row rows[MAX_ROWS]; /* sorted by (created_at, id) */
	size_t n_rows;
	int gone[MAX_ROWS];       /* get/read: SL_ENOTFOUND */
	int read_fails[MAX_ROWS]; /* read fails this many more times */
	int late_fails[MAX_ROWS]; /* a read past the first part fails this many more times */
	int aborts;               /* uploads aborted */
	pthread_mutex_t mu;
	/* sink */
	char *stored_key[MAX_ROWS];
	sl_buf stored_value[MAX_ROWS];
	size_t n_stored;
	char refuse_at_flush[64]; /* this key is refused at flush */
	char auth_fail_key[64];   /* begin of this key: SL_EAUTH */
	int auth_fail_flush;      /* this flush (1 = the first) fails with SL_EAUTH */
	int flushes;
} fake_world;

static uint64_t object_size(size_t i)
{
	static const uint64_t sizes[] = {0, 1, 7, 8, 100, 13};
	return sizes[i % 6];
}

static uint8_t object_byte(size_t i, uint64_t off)
{
	return (uint8_t)(i * 31 + off * 7 + 1);
}

static void world_init(fake_world *w, size_t n, int same_ts)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	w->n_rows = n;
	for (size_t i = 0; i < n; i++) {
		sl_row *r = &w->rows[i];
		unsigned second = same_ts ? 0 : (unsigned)(i % 60);
		snprintf(r->id, sizeof(r->id), "00000000-0000-0000-0000-%012u",
		         (unsigned)(i % 100));
		snprintf(r->created_at, sizeof(r->created_at), "2026-11-21 10:00:%02u.000000+00",
		         second);
		char key[64];
		snprintf(key, sizeof(key), "trace/%s", r->id);
		r->key = strdup(key);
		r->size = (int64_t)object_size(i);
		if (i % 4 == 3) { /* listed inline: the fetcher must not be asked */
			r->has_data = 1;
			r->data_len = (size_t)object_size(i);
			r->data = malloc(r->data_len + 1);
			for (size_t off = 0; off < r->data_len; off++)
				r->data[off] = object_byte(i, off);
		}
	}
}

static void world_free(fake_world *w)
{
	for (size_t i = 0; i < w->n_rows; i++) {
		free(w->rows[i].key);
		free(w->rows[i].bucket);
		free(w->rows[i].data);
	}
	for (size_t i = 0; i < w->n_stored; i++) {
		sl_free(w->stored_key[i]);
		sl_buf_free(&w->stored_value[i]);
	}
	pthread_mutex_destroy(&w->mu);
}

static size_t row_index(const fake_world *w, const char *id)
{
	for (size_t i = 0; i < w->n_rows; i++)
		if (strcmp(w->rows[i].id, id) == 0)
			return i;
	return SIZE_MAX;
}

static int cursor_cmp(const sl_row *r, const sl_cursor *c)
{
	int d = strcmp(r->created_at, c->created_at);
	return d != 0 ? d : strcmp(r->id, c->id);
}

static int src_next(void *self, const sl_cursor *after, const char *since, size_t limit,
                    sl_row_batch *out, int *held_by)
{
	fake_world *w = self;
	(void)since;
	*held_by = 0;
	out->rows = sl_calloc(limit, sizeof(sl_row));
	out->n = 0;
	for (size_t i = 0; i < w->n_rows && out->n < limit; i++)
		if (after->created_at[0] == '\0' || cursor_cmp(&w->rows[i], after) > 0)
			assert_int_equal(sl_row_copy(&out->rows[out->n++], &w->rows[i]), SL_OK);
	return SL_OK;
}

static int src_get(void *self, const char *id, sl_row *out)
{
	fake_world *w = self;
	size_t i = row_index(w, id);
	if (i == SIZE_MAX || w->gone[i])
		return sl_error_set(SL_ENOTFOUND, "row %s is gone", id);
	return sl_row_copy(out, &w->rows[i]);
}

static int src_lag(void *self, const sl_cursor *after, const char *since,
                   char newest[SL_TS_TEXT_MAX], uint64_t *rows_after)
{
	fake_world *w = self;
	(void)since;
	*rows_after = 0;
	for (size_t i = 0; i < w->n_rows; i++)
		if (after->created_at[0] == '\0' || cursor_cmp(&w->rows[i], after) > 0)
			(*rows_after)++;
	snprintf(newest, SL_TS_TEXT_MAX, "%s", w->n_rows ? w->rows[w->n_rows - 1].created_at : "");
	return SL_OK;
}

static void src_close(void *self)
{
	(void)self;
}

static const sl_source_ops fake_source_ops = {src_next, src_get, src_lag, src_close};

/* A worker's fake fetcher. Each read lends a new allocation and frees the
 * one lent before, so a caller that keeps a lent part past the next read
 * trips ASan. */
typedef struct fake_fetcher {
	fake_world *w;
	uint8_t *lent;
} fake_fetcher;

static int fetch_read(void *self, const sl_row *row, uint64_t offset, size_t cap,
                      const uint8_t **data, size_t *n_read, uint64_t *total)
{
	fake_fetcher *f = self;
	fake_world *w = f->w;
	size_t i = row_index(w, row->id);
	int fail = 0;
	assert_true(i != SIZE_MAX);
	assert_false(row->has_data);
	/* the row's own bucket reaches the fetcher (copied with the row) */
	if (w->rows[i].bucket == NULL)
		assert_null(row->bucket);
	else
		assert_string_equal(row->bucket, w->rows[i].bucket);
	pthread_mutex_lock(&w->mu);
	if (w->read_fails[i] > 0) {
		w->read_fails[i]--;
		fail = 1;
	} else if (offset > 0 && w->late_fails[i] > 0) {
		w->late_fails[i]--;
		fail = 1;
	}
	pthread_mutex_unlock(&w->mu);
	if (fail)
		return sl_error_set(SL_EIO, "injected read failure");
	if (w->gone[i])
		return sl_error_set(SL_ENOTFOUND, "object gone");
	uint64_t size = object_size(i);
	size_t n = 0;
	free(f->lent);
	f->lent = malloc(cap);
	assert_non_null(f->lent);
	while (offset + n < size && n < cap) {
		f->lent[n] = object_byte(i, offset + n);
		n++;
	}
	*data = f->lent;
	*n_read = n;
	*total = size;
	return SL_OK;
}

static void fetch_close(void *self)
{
	fake_fetcher *f = self;
	free(f->lent);
	free(f);
}

static const sl_fetcher_ops fake_fetcher_ops = {fetch_read, fetch_close};

static int open_fake_fetcher(void *ctx, sl_fetcher *out)
{
	fake_fetcher *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->w = ctx;
	out->ops = &fake_fetcher_ops;
	out->self = f;
	return SL_OK;
}

typedef struct fake_upload {
	char key[128];
	sl_buf value;
	uint64_t size;
} fake_upload;

static int sink_begin(void *self, const char *key, uint64_t size, void **upload)
{
	fake_world *w = self;
	if (strcmp(key, w->auth_fail_key) == 0)
		return sl_error_set(SL_EAUTH, "injected: the clock is off by 3600 s");
	fake_upload *u = calloc(1, sizeof(*u));
	snprintf(u->key, sizeof(u->key), "%s", key);
	sl_buf_init(&u->value, 1 << 20);
	u->size = size;
	*upload = u;
	return SL_OK;
}

static int sink_write(void *self, void *upload, const uint8_t *data, size_t len)
{
	fake_upload *u = upload;
	(void)self;
	assert_true(len > 0);
	return sl_buf_append(&u->value, data, len);
}

static void upload_free(fake_upload *u)
{
	sl_buf_free(&u->value);
	free(u);
}

static int sink_commit(void *self, void *upload)
{
	fake_world *w = self;
	fake_upload *u = upload;
	assert_int_equal(u->value.len, u->size);
	pthread_mutex_lock(&w->mu);
	size_t slot = w->n_stored;
	for (size_t i = 0; i < w->n_stored; i++)
		if (strcmp(w->stored_key[i], u->key) == 0)
			slot = i; /* idempotent: same key again */
	if (slot == w->n_stored) {
		w->stored_key[slot] = sl_malloc(strlen(u->key) + 1);
		strcpy(w->stored_key[slot], u->key);
		sl_buf_init(&w->stored_value[slot], 1 << 20);
		w->n_stored++;
	}
	sl_buf_set(&w->stored_value[slot], u->value.data, u->value.len);
	pthread_mutex_unlock(&w->mu);
	upload_free(u);
	return SL_OK;
}

static void sink_abort(void *self, void *upload)
{
	fake_world *w = self;
	pthread_mutex_lock(&w->mu);
	w->aborts++;
	pthread_mutex_unlock(&w->mu);
	upload_free(upload);
}

static int sink_flush(void *self, sl_sink_failed_fn on_failed, void *ctx)
{
	fake_world *w = self;
	w->flushes++;
	if (w->flushes == w->auth_fail_flush)
		return sl_error_set(SL_EAUTH, "injected: the node refused the token");
	if (w->refuse_at_flush[0])
		on_failed(ctx, w->refuse_at_flush, SL_ECONFLICT, "injected: other bytes");
	return SL_OK;
}

static void sink_close(void *self)
{
	(void)self;
}

static const sl_sink_ops fake_sink_ops = {.kind = "fake",
                                          .begin = sink_begin,
                                          .write = sink_write,
                                          .commit = sink_commit,
                                          .abort = sink_abort,
                                          .flush = sink_flush,
                                          .close = sink_close};

/* --------------------------------------------------------------- harness */

typedef struct harness {
	fake_world w;
	char *dir;
	char path[4096];
	sl_pipeline_state *st;
	sl_source src;
	sl_sink sink;
	sl_pipeline_options o;
} harness;

static void harness_init(harness *h, size_t n_rows, int same_ts)
{
	world_init(&h->w, n_rows, same_ts);
	h->dir = tu_tempdir();
	assert_non_null(h->dir);
	snprintf(h->path, sizeof(h->path), "%s/state.db", h->dir);
	assert_int_equal(sl_pipeline_state_open(&h->st, h->path), SL_OK);
	h->src = (sl_source){&fake_source_ops, &h->w};
	h->sink = (sl_sink){&fake_sink_ops, &h->w};
	sl_pipeline_options_init(&h->o);
	h->o.batch_size = 3;
	h->o.concurrency = 4;
	h->o.part_size = 7;
	h->o.retry_base_ms = 0; /* failures are due again at once */
	h->o.max_attempts = 3;
	h->o.open_fetcher = open_fake_fetcher;
	h->o.fetcher_ctx = &h->w;
}

static void harness_free(harness *h)
{
	sl_pipeline_state_close(h->st);
	tu_rmtree(h->dir);
	free(h->dir);
	world_free(&h->w);
}

static const sl_buf *stored(const fake_world *w, const char *key)
{
	for (size_t i = 0; i < w->n_stored; i++)
		if (strcmp(w->stored_key[i], key) == 0)
			return &w->stored_value[i];
	return NULL;
}

static void assert_object_stored(const fake_world *w, size_t i)
{
	const sl_buf *v = stored(w, w->rows[i].key);
	assert_non_null(v);
	assert_int_equal(v->len, object_size(i));
	for (uint64_t off = 0; off < v->len; off++)
		assert_int_equal(v->data[off], object_byte(i, off));
}

static int count_failure(void *ctx, const sl_pipeline_failure *f)
{
	(void)f;
	(*(int *)ctx)++;
	return 0;
}

/* ----------------------------------------------------------------- tests */

static void test_copies_everything_in_parts(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 20, 0);
	h.o.count_behind = 1;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 20);
	assert_int_equal(pr.objects, 20);
	assert_int_equal(pr.failed, 0);
	assert_int_equal(pr.rows_behind, 20);
	assert_true(pr.batch_ns > 0); /* the last batch was timed */
	assert_int_equal(h.w.n_stored, 20);
	for (size_t i = 0; i < 20; i++)
		assert_object_stored(&h.w, i);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_string_equal(s.cursor.id, h.w.rows[19].id);
	assert_int_equal(s.objects, 20);
	assert_int_equal(s.failing + s.parked, 0);
	assert_int_equal(h.w.flushes, 7); /* one per batch of 3 */

	/* Nothing new: a second run reads nothing and stores nothing. */
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 0);
	assert_int_equal(pr.objects, 0);
	harness_free(&h);
}

static void test_equal_timestamps_across_batches(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	(void)state;

	harness_init(&h, 5, 1); /* five rows, one created_at, batches of 3 */
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 5);
	assert_int_equal(pr.batches, 2);
	assert_int_equal(pr.rows_behind, 0); /* not counted unless asked */
	for (size_t i = 0; i < 5; i++)
		assert_object_stored(&h.w, i);
	harness_free(&h);
}

static void test_failure_retried_then_stored(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 9, 0);
	h.w.read_fails[4] = 2; /* fails twice, then works: within max_attempts 3 */
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 9);
	assert_int_equal(pr.failed, 2);
	assert_int_equal(pr.objects, 9);
	for (size_t i = 0; i < 9; i++)
		assert_object_stored(&h.w, i);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_int_equal(s.failing + s.parked, 0);
	assert_string_equal(s.cursor.id, h.w.rows[8].id);
	harness_free(&h);
}

typedef struct parked_check {
	const char *key;
	int seen;
} parked_check;

static int check_parked(void *ctx, const sl_pipeline_failure *f)
{
	parked_check *c = ctx;
	assert_string_equal(f->key, c->key);
	assert_true(f->parked);
	assert_int_equal(f->attempts, 3);
	assert_non_null(strstr(f->last_error, "injected read failure"));
	c->seen++;
	return 0;
}

static void test_failure_parked_not_blocking_then_retried(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	uint64_t n = 0;
	(void)state;

	harness_init(&h, 10, 0);
	h.w.read_fails[2] = 1000; /* always fails */
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 10);
	assert_int_equal(pr.objects, 9);
	assert_int_equal(pr.failed, 3); /* three attempts, then parked */
	assert_null(stored(&h.w, h.w.rows[2].key));
	for (size_t i = 0; i < 10; i++)
		if (i != 2)
			assert_object_stored(&h.w, i);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_string_equal(s.cursor.id, h.w.rows[9].id); /* not held back */
	assert_int_equal(s.parked, 1);
	assert_int_equal(s.failing, 0);
	parked_check c = {h.w.rows[2].key, 0};
	assert_int_equal(sl_pipeline_state_failures(h.st, 1, check_parked, &c), SL_OK);
	assert_int_equal(c.seen, 1);

	/* A later run leaves a parked failure alone... */
	h.w.read_fails[2] = 0;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.objects, 0);
	/* ...until `retry`. */
	assert_int_equal(sl_pipeline_state_retry_all(h.st, &n), SL_OK);
	assert_int_equal(n, 1);
	h.o.retry_only = 1;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.objects, 1);
	assert_int_equal(pr.rows, 0);
	assert_object_stored(&h.w, 2);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_int_equal(s.parked + s.failing, 0);
	assert_int_equal(s.objects, 10);
	harness_free(&h);
}

static void test_row_gone_stays_a_failure(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	int n = 0;
	(void)state;

	harness_init(&h, 4, 0);
	h.w.gone[1] = 1; /* object missing: recorded, the rest continue */
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.objects, 3);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_int_equal(s.parked, 1);
	assert_int_equal(sl_pipeline_state_failures(h.st, 1, count_failure, &n), SL_OK);
	assert_int_equal(n, 1);
	harness_free(&h);
}

static void test_bad_row_recorded_and_passed(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 5, 0);
	free(h.w.rows[1].key);
	h.w.rows[1].key = NULL;
	h.w.rows[1].error = strdup("row 1: data_type 'a/..' makes no valid key");
	h.o.max_attempts = 1;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 5);
	assert_int_equal(pr.objects, 4);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_string_equal(s.cursor.id, h.w.rows[4].id);
	assert_int_equal(s.parked, 1);
	free(h.w.rows[1].error);
	h.w.rows[1].error = NULL;
	harness_free(&h);
}

static void test_refused_at_flush_is_a_failure(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 3, 0);
	snprintf(h.w.refuse_at_flush, sizeof(h.w.refuse_at_flush), "%s", h.w.rows[1].key);
	h.o.max_attempts = 1;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.objects, 2);
	assert_int_equal(pr.failed, 1);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_int_equal(s.parked, 1);
	assert_int_equal(s.objects, 2);
	harness_free(&h);
}

static void test_auth_error_saves_nothing(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 9, 0);
	snprintf(h.w.auth_fail_key, sizeof(h.w.auth_fail_key), "%s", h.w.rows[4].key);
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_EAUTH);
	assert_non_null(strstr(sl_error_last()->message, "clock"));
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	/* The first batch (rows 0-2) was saved; the one holding row 4 was not. */
	assert_string_equal(s.cursor.id, h.w.rows[2].id);
	assert_int_equal(s.failing + s.parked, 0);
	assert_int_equal(s.objects, 3);

	h.w.auth_fail_key[0] = '\0';
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 6);
	for (size_t i = 0; i < 9; i++)
		assert_object_stored(&h.w, i);
	harness_free(&h);
}

/* A batching sink learns of refused credentials only at flush: the run
 * ends there too, with nothing of that batch saved. */
static void test_auth_error_at_flush_saves_nothing(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 9, 0);
	h.w.auth_fail_flush = 2;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_EAUTH);
	assert_non_null(strstr(sl_error_last()->message, "token"));
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_string_equal(s.cursor.id, h.w.rows[2].id);
	assert_int_equal(s.failing + s.parked, 0);
	assert_int_equal(s.objects, 3);
	harness_free(&h);
}

/* Rows record their object's size and SHA-256 (as recall-synchronizer's
 * table does): an object whose bytes do not match is a failure, recorded
 * with why, retried and parked like any other, and never stored; the rest
 * are stored. Objects of several parts are hashed across them, inline ones
 * too, and an object whose transfer broke off does not spoil the next
 * one's hash (one worker does them all). */
typedef struct mismatch_check {
	const fake_world *w;
	int seen[MAX_ROWS];
} mismatch_check;

static int check_mismatch(void *ctx, const sl_pipeline_failure *f)
{
	mismatch_check *c = ctx;
	size_t i = row_index(c->w, f->row_id);
	assert_true(i == 2 || i == 4 || i == 7);
	assert_true(f->parked);
	assert_int_equal(f->attempts, 2);
	if (i == 2)
		assert_string_equal(
		        f->last_error,
		        "source object does not match its recorded size (9 bytes, got 7)");
	else
		assert_non_null(
		        strstr(f->last_error, "source object does not match its recorded hash"));
	c->seen[i]++;
	return 0;
}

static void test_recorded_size_and_hash(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	uint64_t n = 0;
	(void)state;

	harness_init(&h, 12, 0);
	for (size_t i = 0; i < 12; i++) {
		sl_row *r = &h.w.rows[i];
		uint8_t bytes[128];
		sl_digest d;
		for (uint64_t off = 0; off < object_size(i); off++)
			bytes[off] = object_byte(i, off);
		sl_sha256(&d, bytes, (size_t)object_size(i));
		memcpy(r->content_sha256, d.bytes, sizeof(r->content_sha256));
		r->has_content_sha256 = i != 10; /* 10: no hash recorded, not checked */
		r->size_recorded = 1;
		if (i % 3 == 0)
			r->bucket = strdup("other-bucket");
	}
	h.w.rows[2].size = 9;                  /* 7 bytes, recorded as 9 */
	h.w.rows[4].content_sha256[31] ^= 1;   /* 100 bytes in 15 parts */
	h.w.rows[7].content_sha256[0] ^= 0x80; /* listed inline */
	h.w.rows[10].content_sha256[5] ^= 1;   /* not checked: has_content_sha256 is 0 */
	h.w.late_fails[5] = 1;                 /* 13 bytes: the second part fails once */
	h.o.concurrency = 1;
	h.o.max_attempts = 2;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 12);
	assert_int_equal(pr.objects, 9);
	assert_int_equal(pr.failed, 7); /* 2, 4 and 7 twice, 5 once */
	for (size_t i = 0; i < 12; i++) {
		if (i == 2 || i == 4 || i == 7)
			assert_null(stored(&h.w, h.w.rows[i].key));
		else
			assert_object_stored(&h.w, i);
	}
	/* 4 and 7 twice (begun, then aborted at the hash), 5 once; 2 was
	 * refused at its size, before any upload began */
	assert_int_equal(h.w.aborts, 5);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_string_equal(s.cursor.id, h.w.rows[11].id);
	assert_int_equal(s.parked, 3);
	assert_int_equal(s.failing, 0);
	mismatch_check c = {&h.w, {0}};
	assert_int_equal(sl_pipeline_state_failures(h.st, 1, check_mismatch, &c), SL_OK);
	assert_int_equal(c.seen[2] + c.seen[4] + c.seen[7], 3);

	/* Once the table records what the objects hold, `retry` copies them. */
	h.w.rows[2].size = 7;
	h.w.rows[4].content_sha256[31] ^= 1;
	h.w.rows[7].content_sha256[0] ^= 0x80;
	assert_int_equal(sl_pipeline_state_retry_all(h.st, &n), SL_OK);
	assert_int_equal(n, 3);
	h.o.retry_only = 1;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.objects, 3);
	for (size_t i = 0; i < 12; i++)
		assert_object_stored(&h.w, i);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_int_equal(s.parked + s.failing, 0);
	harness_free(&h);
}

static volatile sig_atomic_t stop_flag;

static void stop_after_first(void *ctx, const sl_pipeline_progress *p)
{
	(void)ctx;
	if (p->batches == 1)
		stop_flag = 1;
}

static void test_stop_finishes_the_batch(void **state)
{
	harness h;
	sl_pipeline_progress pr;
	sl_pipeline_status s;
	(void)state;

	harness_init(&h, 9, 0);
	stop_flag = 0;
	h.o.stop = &stop_flag;
	h.o.progress = stop_after_first;
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.batches, 1);
	assert_int_equal(sl_pipeline_state_status(h.st, &s), SL_OK);
	assert_string_equal(s.cursor.id, h.w.rows[2].id);
	harness_free(&h);
}

static void test_runs_never_overlap(void **state)
{
	harness h;
	sl_pipeline_state *other = NULL;
	sl_pipeline_progress pr;
	(void)state;

	harness_init(&h, 3, 0);
	assert_int_equal(sl_pipeline_state_open(&other, h.path), SL_OK);
	assert_int_equal(sl_pipeline_state_lock(other), SL_OK);
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_EBUSY);
	assert_non_null(strstr(sl_error_last()->message, "another run"));
	assert_int_equal(sl_pipeline_state_reset(h.st), SL_EBUSY);
	sl_pipeline_state_unlock(other);
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.objects, 3);
	sl_pipeline_state_close(other);

	/* reset forgets everything: the next run copies every row again. */
	assert_int_equal(sl_pipeline_state_reset(h.st), SL_OK);
	assert_int_equal(sl_pipeline_run(h.st, &h.src, &h.sink, &h.o, &pr), SL_OK);
	assert_int_equal(pr.rows, 3);
	harness_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_copies_everything_in_parts),
	        cmocka_unit_test(test_equal_timestamps_across_batches),
	        cmocka_unit_test(test_failure_retried_then_stored),
	        cmocka_unit_test(test_failure_parked_not_blocking_then_retried),
	        cmocka_unit_test(test_row_gone_stays_a_failure),
	        cmocka_unit_test(test_bad_row_recorded_and_passed),
	        cmocka_unit_test(test_refused_at_flush_is_a_failure),
	        cmocka_unit_test(test_auth_error_saves_nothing),
	        cmocka_unit_test(test_auth_error_at_flush_saves_nothing),
	        cmocka_unit_test(test_recorded_size_and_hash),
	        cmocka_unit_test(test_stop_finishes_the_batch),
	        cmocka_unit_test(test_runs_never_overlap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
