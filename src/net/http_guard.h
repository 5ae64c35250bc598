/*
 * Private to net/: what keeps one client of an HTTP server from starving
 * the others (http_guard.c). http_server.c calls these hooks from
 * libmicrohttpd's callbacks.
 */
#ifndef SLUICE_NET_HTTP_GUARD_H
#define SLUICE_NET_HTTP_GUARD_H

#include <sys/socket.h>

#include "sluice/net.h"

typedef struct http_guard http_guard;

/* Starts the sweeper thread. The options are those of the server. */
int http_guard_new(http_guard **out, const sl_http_server_options *o);
/* Before the server stops: resume every waiting connection and wait (at
 * most a few seconds) until none is left suspended, which the library
 * requires. No request waits after this. */
void http_guard_drain(http_guard *g);
/* Stops the sweeper; call after the server stopped (NULL ok). */
void http_guard_free(http_guard *g);

/* Accept policy: 1 to accept a connection from addr, 0 to refuse it (the
 * client holds its share of the connections already). */
int http_guard_accept(http_guard *g, const struct sockaddr *addr);

/* A connection opened (mhd the library's connection, fd its socket,
 * addr its peer): *ctx takes the connection's tracking, which every later
 * hook is given. */
void http_guard_opened(http_guard *g, void *mhd, int fd, const struct sockaddr *addr, void **ctx);
/* It closed, for whatever reason: *ctx is released. */
void http_guard_closed(http_guard *g, void **ctx);

/* A request line has arrived: the head must be complete within the
 * header timeout. */
void http_guard_request_line(http_guard *g, void *ctx);
enum { GUARD_GO, GUARD_THROTTLE, GUARD_WAIT };
/* The head is complete (or the connection was resumed: the call comes
 * again). GUARD_GO: serve it. GUARD_THROTTLE: answer 429 with
 * *retry_after_s. GUARD_WAIT: the client has its share of requests in
 * service; the connection was suspended and will be resumed in turn (the
 * caller returns without answering). */
int http_guard_request_start(http_guard *g, void *ctx, unsigned *retry_after_s);
/* The handler returned: the client's slot goes to its next waiting
 * request. */
void http_guard_handler_done(http_guard *g, void *ctx);
/* The handler answered "not yet" and the connection is suspended (a long
 * poll, http_wait.c): the client's slot goes on as after handler_done, and
 * the connection has no deadline until it resumes, when
 * http_guard_request_start comes again (it may then wait its turn). */
void http_guard_handler_wait(http_guard *g, void *ctx);
/* n more body bytes arrived. 0 to go on; -1 when the body trickles in
 * slower than the minimum rate (cut the connection). */
int http_guard_body(http_guard *g, void *ctx, size_t n);
/* The body is complete: the answer is being made and sent. */
void http_guard_body_done(http_guard *g, void *ctx);
/* The request is over; cost (tokens beyond the one it paid at the start)
 * is charged to the client. */
void http_guard_request_done(http_guard *g, void *ctx, double cost);

#endif
