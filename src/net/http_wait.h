/*
 * Private to net/: requests whose handler answered "not yet"
 * (sl_http_response.wait_ms), held suspended until the server is woken or
 * their wait is over (http_wait.c). http_server.c calls these from
 * libmicrohttpd's callbacks; sl_http_server_wake calls http_wait_wake.
 */
#ifndef SLUICE_NET_HTTP_WAIT_H
#define SLUICE_NET_HTTP_WAIT_H

#include "sluice/net.h"

struct MHD_Connection;

/* One request's wait, kept in its request state. Zeroed: not waiting. */
typedef struct http_waiter {
	struct http_waiter *prev, *next; /* in the list while suspended */
	struct MHD_Connection *mhd;
	uint64_t deadline_ns; /* set when the request first waits */
	int state;            /* enum waiter_state in http_wait.c */
	int final;            /* the wait is over: the handler must answer */
} http_waiter;

typedef struct http_wait http_wait;

/* Starts the timer thread. on_waiting (may be NULL) is called with ctx
 * and the number of waiting requests each time it changes, under the
 * lock. m (may be NULL) gets the gauge of waiting requests. */
int http_wait_new(http_wait **out, sl_metrics *m, void (*on_waiting)(void *, size_t), void *ctx);
/* Before the server stops: no request waits from now on; every waiting one
 * is resumed as final, and this returns once each has been handled again
 * (or after a few seconds). */
void http_wait_drain(http_wait *w);
/* Stops the timer; after the server stopped. NULL ok. */
void http_wait_free(http_wait *w);

/* A count that every wake raises: read it before calling the handler and
 * pass it to http_wait_suspend, so that a wake during the call is seen. */
uint64_t http_wait_generation(http_wait *w);

enum { WAIT_SUSPENDED, WAIT_AGAIN, WAIT_FINAL };
/* The handler asked to wait wait_ms (from inside the access handler of
 * mhd). WAIT_SUSPENDED: the connection is suspended and r is listed until
 * a wake or its deadline resumes it. WAIT_AGAIN: a wake came since
 * `generation`: call the handler again. WAIT_FINAL: the deadline passed or
 * the server is draining: call the handler again with may_wait 0. The
 * deadline is set by the first wait and never moved later. */
int http_wait_suspend(http_wait *w, http_waiter *r, struct MHD_Connection *mhd, uint32_t wait_ms,
                      uint64_t generation);
/* The access handler is called again after a resume: returns 1 if the
 * wait is over (final), else 0 (a wake). */
int http_wait_resumed(http_wait *w, http_waiter *r);
/* The request is over, whatever its state (completion callback). */
void http_wait_forget(http_wait *w, http_waiter *r);

/* Resume every waiting request (as final if its deadline passed). */
void http_wait_wake(http_wait *w);
size_t http_wait_count(http_wait *w);

#endif
