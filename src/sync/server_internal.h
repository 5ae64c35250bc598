/*
 * Private to the sync server's files: the error replies and parameter
 * parsing they share (server_reply.c) and the state reconciliation
 * endpoints (state_endpoints.c) that server.c routes to.
 */
#ifndef SLUICE_SYNC_SERVER_INTERNAL_H
#define SLUICE_SYNC_SERVER_INTERNAL_H

#include "sluice/sync.h"

/* The JSON error {"error": name of status, "message": message}. */
void server_fail(sl_http_response *resp, int status, const char *message);
/* The last library error, as the client's fault (4xx: bad input, no such
 * namespace, a conflict, too large) or ours (5xx). */
void server_fail_last(sl_http_response *resp);
/* The last library error of reading the store once the request was found
 * well formed: 404 for what does not exist, 503 for a busy store, else
 * 500 (a damaged store is not the client's fault). */
void server_fail_store(sl_http_response *resp);
/* A decimal uint64 query parameter: digits only, no overflow. On failure
 * the 400 is already set. */
int server_query_u64(const sl_http_request *req, const char *name, uint64_t *out, int required,
                     sl_http_response *resp);

/* POST /api/v0/ns/{ns}/reconcile: one negentropy message in, the
 * responder's answer out (state_endpoints.c). */
void server_reconcile(sl_store *s, const sl_http_request *req, const char *ns,
                      sl_http_response *resp);
/* POST /api/v0/ns/{ns}/items: ids in, an items frame of at most
 * frame_budget bytes (at least one answer) out. */
void server_items(sl_store *s, const sl_http_request *req, const char *ns, size_t frame_budget,
                  sl_http_response *resp);

/* The dag endpoints (dag_endpoints.c): one per server, shared by its
 * threads. */
typedef struct server_dag server_dag;
int server_dag_new(server_dag **out, const uint8_t key[SL_ED25519_PK_LEN], size_t frame_budget,
                   sl_metrics *m);
void server_dag_free(server_dag *d); /* NULL ok */
/* 1 and *rest (the path after /api/v0/dag/) for a dag endpoint, else 0. */
int server_dag_route(const char *path, const char **rest);
void server_dag_handle(server_dag *d, sl_store *s, const sl_http_request *req, const char *rest,
                       sl_http_response *resp);

#endif
