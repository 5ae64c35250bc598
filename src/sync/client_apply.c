/*
 * The sync client's apply thread. The client's own thread fetches frames
 * and verifies them; once verified operations are contiguous from the
 * local size and end at a commit, it hands them here (sync_applier_add)
 * and this thread appends them to the store: one run is one
 * sl_store_append_ops, one store transaction, in the order they were
 * handed over. While a run is being written the next one collects in
 * `pending`, and the thread takes all of it when it is done: runs grow to
 * what arrived while the last one was written, the network never waits
 * for the store, and the store waits for the network only when it is
 * ahead of it.
 *
 * The thread takes the pending run once it holds APPLY_MIN_OPS
 * operations, its oldest has waited APPLY_MAX_WAIT_MS, or the client asked
 * to flush (the run reaches the target, or the client is stopping): a
 * transaction per commit of a slow trickle would cost a sync per commit.
 *
 * Ownership: from sync_applier_start to the end of sync_applier_stop the
 * store belongs to this thread; the client does not touch it. The bytes
 * of the operations belong to the client's frames, which it frees only
 * once sync_applier_status reports a size past them. Everything the two
 * threads share is under `mu`. After a failed run the thread applies
 * nothing more (what follows could not continue it) and keeps the error
 * for the client, whose thread it is recorded on when it asks.
 */
#include "sync/client_apply.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define APPLY_MIN_OPS     4096 /* take a run once this many operations are pending */
#define APPLY_MAX_WAIT_MS 200  /* or once the oldest has waited this long */
#ifndef APPLY_MAX_OPS
#define APPLY_MAX_OPS 16384 /* operations in one run (one store transaction) at most */
#endif

typedef struct run {
	sl_bytes *elements, *values;
	size_t head, n, cap; /* the operations are [head, n) */
} run;

struct sync_applier {
	sl_store *store;
	char ns[SL_NS_NAME_MAX + 1];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* to the thread: work, flush or stop */
	pthread_cond_t done; /* from the thread: a run ended */
	run pending;         /* handed over, not begun */
	run active;          /* being written; only the thread touches it */
	uint64_t pending_since_ns;
	int flush, stop, busy;
	uint64_t size; /* the namespace's size after the last run */
	int rc;        /* SL_OK, or the failure that stopped the thread */
	sl_error error;
};

static void run_free(run *r)
{
	sl_free(r->elements);
	sl_free(r->values);
	memset(r, 0, sizeof(*r));
}

static int run_reserve(run *r, size_t more)
{
	size_t cap = r->cap ? r->cap : 1024;
	sl_bytes *e, *v;

	if (r->head > 0 && r->n + more > r->cap) { /* first reuse the room taken runs left */
		memmove(r->elements, r->elements + r->head, (r->n - r->head) * sizeof(*e));
		memmove(r->values, r->values + r->head, (r->n - r->head) * sizeof(*v));
		r->n -= r->head;
		r->head = 0;
	}
	if (r->n + more <= r->cap)
		return SL_OK;
	while (cap < r->n + more)
		cap *= 2;
	if (!(e = sl_realloc(r->elements, cap * sizeof(*e))))
		return SL_ENOMEM;
	r->elements = e;
	if (!(v = sl_realloc(r->values, cap * sizeof(*v))))
		return SL_ENOMEM;
	r->values = v;
	r->cap = cap;
	return SL_OK;
}

static void deadline_after(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Under mu: the pending run is to be taken now; otherwise *wait_ms says
 * how long until its oldest operation has waited long enough (0: nothing
 * pending, wait to be woken). */
static int run_due(const sync_applier *a, uint64_t *wait_ms)
{
	uint64_t waited;

	*wait_ms = 0;
	if (a->pending.n == a->pending.head)
		return 0;
	if (a->flush || a->pending.n - a->pending.head >= APPLY_MIN_OPS)
		return 1;
	waited = (sl_clock_mono_ns() - a->pending_since_ns) / 1000000;
	if (waited >= APPLY_MAX_WAIT_MS)
		return 1;
	*wait_ms = APPLY_MAX_WAIT_MS - waited;
	return 0;
}

static int is_commit(const sl_bytes *element)
{
	sl_op op;
	return sl_op_decode(&op, element->data, element->len) == SL_OK && op.type == SL_OP_COMMIT;
}

/* Under mu: move the next run from pending to active: all of it, or when
 * it holds more than APPLY_MAX_OPS, the longest part that ends at a
 * commit and holds at most APPLY_MAX_OPS (or, without a commit in them,
 * up to the first commit after). Pending always ends at a commit. */
static int run_take(sync_applier *a)
{
	run *p = &a->pending;
	size_t k = p->n - p->head;
	int rc;

	if (k > APPLY_MAX_OPS) {
		size_t end = p->head + APPLY_MAX_OPS;
		while (end > p->head && !is_commit(&p->elements[end - 1]))
			end--;
		if (end == p->head)
			for (end = p->head + APPLY_MAX_OPS; end < p->n; end++)
				if (is_commit(&p->elements[end - 1]))
					break;
		k = end - p->head;
	}
	a->active.head = a->active.n = 0;
	if ((rc = run_reserve(&a->active, k)) != SL_OK)
		return rc;
	memcpy(a->active.elements, p->elements + p->head, k * sizeof(*p->elements));
	memcpy(a->active.values, p->values + p->head, k * sizeof(*p->values));
	a->active.n = k;
	p->head += k;
	if (p->head == p->n)
		p->head = p->n = 0;
	else
		a->pending_since_ns = sl_clock_mono_ns();
	return SL_OK;
}

static void *apply_thread(void *arg)
{
	sync_applier *a = arg;
	uint64_t wait_ms;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		sl_target after;
		int rc;

		while (!a->stop && !run_due(a, &wait_ms)) {
			if (wait_ms == 0) {
				pthread_cond_wait(&a->wake, &a->mu);
			} else {
				struct timespec ts;
				deadline_after(&ts, wait_ms);
				pthread_cond_timedwait(&a->wake, &a->mu, &ts);
			}
		}
		if (a->stop)
			break;
		if ((rc = run_take(a)) != SL_OK) {
			a->rc = rc;
			a->error = *sl_error_last();
			break;
		}
		if (a->pending.n == 0)
			a->flush = 0;
		a->busy = 1;
		pthread_mutex_unlock(&a->mu);

		rc = sl_store_append_ops(a->store, a->ns, a->size, a->active.elements,
		                         a->active.values, a->active.n, &after);

		pthread_mutex_lock(&a->mu);
		a->busy = 0;
		a->active.n = 0;
		if (rc == SL_OK) {
			a->size = after.size;
		} else {
			a->rc = rc;
			a->error = *sl_error_last();
			a->stop = 1;
		}
		pthread_cond_broadcast(&a->done);
		if (a->stop)
			break;
	}
	pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int sync_applier_start(sync_applier **out, sl_store *store, const char *ns, uint64_t size)
{
	sync_applier *a;
	pthread_condattr_t attr;
	int rc = SL_OK;

	if (strlen(ns) > SL_NS_NAME_MAX)
		return sl_error_set(SL_EINVAL, "namespace name too long");
	if (!(a = sl_calloc(1, sizeof(*a))))
		return SL_ENOMEM;
	a->store = store;
	strcpy(a->ns, ns);
	a->size = size;
	pthread_mutex_init(&a->mu, NULL);
	/* Timed waits count on the monotonic clock, as the rest of sync. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&a->wake, &attr);
	pthread_cond_init(&a->done, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&a->thread, NULL, apply_thread, a) != 0) {
		rc = sl_error_set(SL_ENOMEM, "cannot start the sync client's apply thread");
		pthread_cond_destroy(&a->wake);
		pthread_cond_destroy(&a->done);
		pthread_mutex_destroy(&a->mu);
		sl_free(a);
		return rc;
	}
	*out = a;
	return SL_OK;
}

/* Under mu: SL_OK, or the thread's failure recorded on this thread. */
static int status_locked(const sync_applier *a, uint64_t *size)
{
	*size = a->size;
	if (a->rc == SL_OK)
		return SL_OK;
	if (a->error.cause[0])
		return sl_error_set_cause(a->rc, a->error.cause, "%s", a->error.message);
	return sl_error_set(a->rc, "%s", a->error.message);
}

int sync_applier_add(sync_applier *a, const sl_bytes *elements, const sl_bytes *values, size_t n,
                     int flush)
{
	int rc;

	pthread_mutex_lock(&a->mu);
	if (a->rc != SL_OK) {
		uint64_t size;
		rc = status_locked(a, &size);
		goto out;
	}
	if ((rc = run_reserve(&a->pending, n)) != SL_OK)
		goto out;
	memcpy(a->pending.elements + a->pending.n, elements, n * sizeof(*elements));
	memcpy(a->pending.values + a->pending.n, values, n * sizeof(*values));
	if (a->pending.n == a->pending.head)
		a->pending_since_ns = sl_clock_mono_ns();
	a->pending.n += n;
	a->flush |= flush;
	pthread_cond_signal(&a->wake);
out:
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int sync_applier_status(sync_applier *a, uint64_t *size)
{
	int rc;
	pthread_mutex_lock(&a->mu);
	rc = status_locked(a, size);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

void sync_applier_wait(sync_applier *a, unsigned timeout_ms)
{
	struct timespec ts;

	deadline_after(&ts, timeout_ms);
	pthread_mutex_lock(&a->mu);
	if (a->rc == SL_OK)
		pthread_cond_timedwait(&a->done, &a->mu, &ts);
	pthread_mutex_unlock(&a->mu);
}

int sync_applier_finish(sync_applier *a, uint64_t *size)
{
	int rc;

	pthread_mutex_lock(&a->mu);
	a->flush = 1;
	pthread_cond_signal(&a->wake);
	while (a->rc == SL_OK && (a->busy || a->pending.n > a->pending.head))
		pthread_cond_wait(&a->done, &a->mu);
	rc = status_locked(a, size);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

void sync_applier_stop(sync_applier *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	run_free(&a->pending);
	run_free(&a->active);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->done);
	pthread_mutex_destroy(&a->mu);
	sl_free(a);
}
