/*
 * Mirrors run as workers: one sl_mirror_run per worker, each in its own
 * thread with its own source and its own PostgreSQL connection, each
 * moving its own position row. What a worker reads is the opener's choice:
 * a partition of a source's keys (sl_partition_source_open), or a
 * partition of a Kafka topic. Since every key is in one worker only, the
 * events of a key are still applied in source order by one transaction at
 * a time (M3 of mirror.c holds per worker).
 *
 * One worker that fails stops the others (each finishes its batch in
 * flight); the first failure is what the run returns, with its message.
 * Progress callbacks come one at a time.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/mirror_internal.h"

typedef struct workers workers;

typedef struct worker {
	workers *all;
	unsigned index;
	sl_mirror_options o;
	char labels[32];
	sl_mirror_progress p;
	int rc;
	sl_error error;
	int done;
} worker;

struct workers {
	sl_mirror_open_fn open;
	void *open_ctx;
	const sl_mirror_options *o;
	volatile sig_atomic_t stop; /* every worker's stop flag */
	pthread_mutex_t lock;       /* progress callbacks, first_rc */
	int first_rc;
	sl_error first_error;
};

static void on_progress(void *ctx, const sl_mirror_progress *p)
{
	worker *w = ctx;
	pthread_mutex_lock(&w->all->lock);
	w->all->o->progress(w->all->o->progress_ctx, p);
	pthread_mutex_unlock(&w->all->lock);
}

static void *run_worker(void *arg)
{
	worker *w = arg;
	workers *all = w->all;
	sl_event_source src;

	memset(&src, 0, sizeof(src));
	w->rc = all->open(all->open_ctx, w->index, &src);
	if (w->rc == SL_OK)
		w->rc = sl_mirror_run(&src, &w->o, &w->p);
	if (w->rc != SL_OK) {
		sl_error_wrap("worker %u (%s)", w->index, src.name[0] ? src.name : "not opened");
		w->error = *sl_error_last();
		pthread_mutex_lock(&all->lock);
		if (all->first_rc == SL_OK) {
			all->first_rc = w->rc;
			all->first_error = w->error;
		}
		pthread_mutex_unlock(&all->lock);
		all->stop = 1;
	}
	sl_event_source_close(&src);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void add_progress(sl_mirror_progress *sum, const sl_mirror_progress *p)
{
	sum->batches += p->batches;
	sum->events += p->events;
	sum->dead += p->dead;
	sum->retries += p->retries;
	sum->gaps += p->gaps;
}

int sl_mirror_run_workers(sl_mirror_open_fn open, void *ctx, unsigned n, const sl_mirror_options *o,
                          sl_mirror_progress *out)
{
	workers all;
	worker *w;
	pthread_t *threads;
	unsigned started = 0;
	int rc = SL_OK;

	if (out)
		memset(out, 0, sizeof(*out));
	if (n == 0)
		return sl_error_set(SL_EINVAL, "mirror: at least one worker");
	memset(&all, 0, sizeof(all));
	all.open = open;
	all.open_ctx = ctx;
	all.o = o;
	pthread_mutex_init(&all.lock, NULL);
	w = sl_calloc(n, sizeof(*w));
	threads = sl_calloc(n, sizeof(*threads));
	if (!w || !threads) {
		rc = SL_ENOMEM;
		goto done;
	}
	for (unsigned i = 0; i < n; i++) {
		w[i].all = &all;
		w[i].index = i;
		w[i].o = *o;
		w[i].o.stop = &all.stop;
		if (n > 1) {
			snprintf(w[i].labels, sizeof(w[i].labels), "worker=\"%u\"", i);
			w[i].o.metrics_labels = w[i].labels;
		}
		if (o->progress) {
			w[i].o.progress = on_progress;
			w[i].o.progress_ctx = &w[i];
		}
		if (pthread_create(&threads[i], NULL, run_worker, &w[i]) != 0) {
			rc = sl_error_set(SL_EIO, "mirror: cannot start worker %u", i);
			all.stop = 1;
			break;
		}
		started++;
	}
	/* Pass a stop request on, and stop the others when one fails. */
	for (;;) {
		unsigned running = 0;
		for (unsigned i = 0; i < started; i++)
			running += !__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
		if (running == 0)
			break;
		if (o->stop && *o->stop)
			all.stop = 1;
		sl_sleep_ms(20);
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		if (out)
			add_progress(out, &w[i].p);
	}
	if (n == 1 && out)
		out->pos = w[0].p.pos;
	if (rc == SL_OK && all.first_rc != SL_OK) {
		rc = all.first_rc;
		sl_error_set_cause(all.first_error.code, all.first_error.cause, "%s",
		                   all.first_error.message);
	}
done:
	sl_free(w);
	sl_free(threads);
	pthread_mutex_destroy(&all.lock);
	return rc;
}
