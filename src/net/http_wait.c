/*
 * Long polls: requests whose handler answered "not yet"
 * (sl_http_response.wait_ms) wait here, their connections suspended in
 * libmicrohttpd (MHD), so no thread is held, until they are woken
 * (sl_http_server_wake) or their deadline passes. http_server.c then has
 * MHD call the access handler again for the same request.
 *
 * A request's waiter (in its request state) moves through three states,
 * each transition under the one lock:
 *
 *   IDLE --http_wait_suspend--> SUSPENDED --wake, deadline, drain--> RESUMED
 *   RESUMED --http_wait_resumed (the handler is called again)--> IDLE
 *   any --http_wait_forget (the request is over)--> IDLE
 *
 * W1. A waiter is in the list exactly while it is SUSPENDED, and its
 *     connection is suspended exactly then: suspending and listing happen
 *     under the lock, and so do unlisting and resuming, so no connection is
 *     resumed before it was suspended, nor twice.
 * W2. No wake is lost. Every wake raises `generation`; the server reads it
 *     before calling the handler, and http_wait_suspend refuses to suspend
 *     (WAIT_AGAIN) when it moved, so a wake that came while the handler
 *     was deciding to wait has it decide again.
 * W3. A request's deadline is set by its first wait and never moves later,
 *     so a handler that asks to wait after every wake still answers in
 *     time; once it passed, the handler is called with may_wait 0.
 * W4. After http_wait_drain nothing is suspended here and nothing will be:
 *     MHD refuses to stop while a connection is suspended.
 *
 * The timer is a thread that sleeps on a condition variable until the
 * earliest deadline, or with no waiter until signalled, so a server with
 * nothing waiting does no work. Waiters are few (at most one per
 * connection), so finding the earliest is a walk of the list.
 */
#include "net/http_wait.h"

#include <microhttpd.h>
#include <pthread.h>

#define DRAIN_MS 5000 /* the longest wait for resumed requests at stop */

enum waiter_state { WAITER_IDLE, WAITER_SUSPENDED, WAITER_RESUMED };

struct http_wait {
	pthread_mutex_t mu;
	pthread_cond_t timer_wake;
	pthread_t timer;
	int timer_running, stopping, draining;
	uint64_t generation;
	http_waiter *head; /* SUSPENDED */
	size_t n_waiting;  /* in the list */
	size_t n_resumed;  /* RESUMED: the handler is not called again yet */
	sl_metric *gauge;
	void (*on_waiting)(void *, size_t);
	void *ctx;
};

/* Under the lock: tell the gauge and the owner that the count changed. */
static void counted(http_wait *w)
{
	sl_metric_set(w->gauge, (double)w->n_waiting);
	if (w->on_waiting)
		w->on_waiting(w->ctx, w->n_waiting);
}

/* Under the lock: unlist r and resume its connection. */
static void resume(http_wait *w, http_waiter *r, int final)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		w->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	r->state = WAITER_RESUMED;
	r->final |= final;
	w->n_waiting--;
	w->n_resumed++;
	MHD_resume_connection(r->mhd);
}

uint64_t http_wait_generation(http_wait *w)
{
	uint64_t g;
	pthread_mutex_lock(&w->mu);
	g = w->generation;
	pthread_mutex_unlock(&w->mu);
	return g;
}

int http_wait_suspend(http_wait *w, http_waiter *r, struct MHD_Connection *mhd, uint32_t wait_ms,
                      uint64_t generation)
{
	uint64_t now = sl_clock_mono_ns();
	uint64_t until = now + (uint64_t)wait_ms * 1000000u;
	int verdict;

	pthread_mutex_lock(&w->mu);
	if (r->deadline_ns == 0 || until < r->deadline_ns)
		r->deadline_ns = until;
	if (w->draining || now >= r->deadline_ns) {
		r->final = 1;
		verdict = WAIT_FINAL;
	} else if (w->generation != generation) {
		verdict = WAIT_AGAIN;
	} else {
		r->mhd = mhd;
		r->state = WAITER_SUSPENDED;
		r->prev = NULL;
		r->next = w->head;
		if (w->head)
			w->head->prev = r;
		w->head = r;
		w->n_waiting++;
		MHD_suspend_connection(mhd);
		counted(w);
		pthread_cond_signal(&w->timer_wake); /* perhaps the earliest deadline */
		verdict = WAIT_SUSPENDED;
	}
	pthread_mutex_unlock(&w->mu);
	return verdict;
}

int http_wait_resumed(http_wait *w, http_waiter *r)
{
	int final;
	pthread_mutex_lock(&w->mu);
	if (r->state == WAITER_RESUMED)
		w->n_resumed--;
	r->state = WAITER_IDLE;
	final = r->final;
	pthread_mutex_unlock(&w->mu);
	return final;
}

void http_wait_forget(http_wait *w, http_waiter *r)
{
	pthread_mutex_lock(&w->mu);
	if (r->state == WAITER_SUSPENDED) {
		/* Not expected (MHD does not end a suspended request), but the
		 * list must never point at freed memory. */
		if (r->prev)
			r->prev->next = r->next;
		else
			w->head = r->next;
		if (r->next)
			r->next->prev = r->prev;
		w->n_waiting--;
		counted(w);
	} else if (r->state == WAITER_RESUMED) {
		w->n_resumed--;
	}
	r->prev = r->next = NULL;
	r->state = WAITER_IDLE;
	pthread_mutex_unlock(&w->mu);
}

void http_wait_wake(http_wait *w)
{
	uint64_t now = sl_clock_mono_ns();
	int any;

	pthread_mutex_lock(&w->mu);
	w->generation++;
	any = w->head != NULL;
	while (w->head)
		resume(w, w->head, now >= w->head->deadline_ns);
	if (any)
		counted(w);
	pthread_mutex_unlock(&w->mu);
}

size_t http_wait_count(http_wait *w)
{
	size_t n;
	pthread_mutex_lock(&w->mu);
	n = w->n_waiting;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void http_wait_drain(http_wait *w)
{
	uint64_t until = sl_clock_mono_ns() + (uint64_t)DRAIN_MS * 1000000u;
	size_t left;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->draining = 1;
	w->generation++;
	if (w->head) {
		while (w->head)
			resume(w, w->head, 1);
		counted(w);
	}
	/* MHD calls the access handler of each again on its own thread. */
	while ((left = w->n_resumed) > 0 && sl_clock_mono_ns() < until) {
		pthread_mutex_unlock(&w->mu);
		sl_sleep_ms(5);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	if (left > 0)
		sl_log(SL_LOG_WARN, "waiting requests not handled again at stop", "n=%zu", left);
}

/* ------------------------------------------------------------------ timer */

static void *timer_main(void *arg)
{
	http_wait *w = arg;

	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		uint64_t now = sl_clock_mono_ns(), next = 0;
		http_waiter *r = w->head, *after;
		int any = 0;

		for (; r; r = after) {
			after = r->next;
			if (r->deadline_ns <= now) {
				resume(w, r, 1);
				any = 1;
			} else if (next == 0 || r->deadline_ns < next) {
				next = r->deadline_ns;
			}
		}
		if (any)
			counted(w);
		if (next == 0)
			pthread_cond_wait(&w->timer_wake, &w->mu);
		else
			sl_cond_wait_ms(&w->timer_wake, &w->mu, (next - now + 999999) / 1000000);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* -------------------------------------------------------------- lifecycle */

int http_wait_new(http_wait **out, sl_metrics *m, void (*on_waiting)(void *, size_t), void *ctx)
{
	http_wait *w = sl_calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return SL_ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->timer_wake, NULL);
	w->on_waiting = on_waiting;
	w->ctx = ctx;
	if (m && !(w->gauge = sl_metrics_gauge(m, "sluice_http_waiting_requests", NULL,
	                                       "requests waiting for a change (long polls)"))) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if (pthread_create(&w->timer, NULL, timer_main, w) != 0) {
		rc = sl_error_set(SL_EIO, "http server: cannot start the long poll timer");
		goto fail;
	}
	w->timer_running = 1;
	*out = w;
	return SL_OK;
fail:
	http_wait_free(w);
	return rc;
}

void http_wait_free(http_wait *w)
{
	if (!w)
		return;
	if (w->timer_running) {
		pthread_mutex_lock(&w->mu);
		w->stopping = 1;
		pthread_cond_signal(&w->timer_wake);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->timer, NULL);
	}
	pthread_cond_destroy(&w->timer_wake);
	pthread_mutex_destroy(&w->mu);
	sl_free(w);
}
