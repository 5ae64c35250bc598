/*
 * The HTTP transport of dag sync (include/sluice/dag_sync.h): each call is
 * one request to http://{addr}/api/v0/dag/{namespace id}/{endpoint},
 * signed by this node's key for the peer's key (a fresh time and nonce on
 * every attempt, so a retry is never a replay). A 429 is waited out as
 * its Retry-After says (each wait at most SL_HTTP_WAIT_MAX_S, at most
 * MAX_WAITS times, then it is the answer);
 * every other answer is the caller's to judge.
 */
#include "sluice/dag_sync.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_WAITS 20
#define URL_MAX   512

struct sl_dag_http {
	sl_http_client *client;
	char base[URL_MAX];   /* http://addr */
	char prefix[URL_MAX]; /* /api/v0/dag/{id}/ */
	uint8_t server_key[SL_ED25519_PK_LEN];
	sl_node_key key;
	int told_throttled;
};

int sl_dag_http_new(sl_dag_http **out, const char *addr,
                    const uint8_t server_key[SL_ED25519_PK_LEN], const sl_digest *ns_id,
                    const sl_node_key *key, const sl_http_client_options *opts)
{
	sl_http_client_options defaults;
	sl_dag_http *h;
	int rc;

	if (!addr || !*addr || strlen(addr) >= SL_DAG_ADDR_MAX || strchr(addr, '/'))
		return sl_error_set(SL_EINVAL, "a peer address is host:port, not '%s'",
		                    addr ? addr : "");
	if (!(h = sl_calloc(1, sizeof(*h))))
		return SL_ENOMEM;
	if (!opts) {
		sl_http_client_options_init(&defaults);
		opts = &defaults;
	}
	snprintf(h->base, sizeof(h->base), "http://%s", addr);
	snprintf(h->prefix, sizeof(h->prefix), "/api/v0/dag/%s/", sl_digest_to_hex(ns_id).s);
	memcpy(h->server_key, server_key, SL_ED25519_PK_LEN);
	h->key = *key;
	if ((rc = sl_http_client_new(&h->client, opts)) != SL_OK) {
		sl_dag_http_free(h);
		return rc;
	}
	*out = h;
	return SL_OK;
}

void sl_dag_http_free(sl_dag_http *h)
{
	if (!h)
		return;
	sl_http_client_free(h->client);
	memset(&h->key, 0, sizeof(h->key));
	sl_free(h);
}

static int call(void *ctx, const char *endpoint, const uint8_t *body, size_t len, long *status,
                sl_buf *out)
{
	sl_dag_http *h = ctx;
	const char *method = strcmp(endpoint, "tips") == 0 ? "GET" : "POST";
	char target[URL_MAX + 32], url[2 * URL_MAX + 32], auth_value[SL_REQUEST_AUTH_MAX + 1];
	char auth_header[SL_REQUEST_AUTH_MAX + 32];
	const char *headers[] = {auth_header, "Content-Type: application/octet-stream", NULL};
	int rc;

	snprintf(target, sizeof(target), "%s%s", h->prefix, endpoint);
	snprintf(url, sizeof(url), "%s%s", h->base, target);
	for (unsigned waits = 0;; waits++) {
		sl_request_auth a;
		sl_http_result r;
		if ((rc = sl_request_auth_sign(&a, h->key.sk, method, target, body, len,
		                               h->server_key, sl_clock_wall_ms() / 1000)) !=
		            SL_OK ||
		    (rc = sl_request_auth_format(&a, auth_value, sizeof(auth_value))) != SL_OK)
			return rc;
		snprintf(auth_header, sizeof(auth_header), "Authorization: %s", auth_value);
		sl_http_result_init(&r);
		rc = sl_http_client_fetch(h->client, method, url, headers, body, len, &r);
		if (rc != SL_OK) {
			rc = sl_error_set(r.rc, "%s %s: %s", method, url, r.error);
			sl_http_result_free(&r);
			return rc;
		}
		if (r.status == 429 && waits < MAX_WAITS) {
			if (!h->told_throttled) {
				h->told_throttled = 1;
				sl_log(SL_LOG_INFO,
				       "the peer asks this node to slow down; waiting as told",
				       "peer=%s retry_after_s=%llu (logged once)", h->base,
				       (unsigned long long)r.retry_after_s);
			}
			uint64_t ms = sl_http_retry_after_ms(&r, 1000);
			sl_http_result_free(&r);
			sl_sleep_ms(ms);
			continue;
		}
		*status = r.status;
		out->len = 0;
		rc = sl_buf_append(out, r.body.data, r.body.len);
		sl_http_result_free(&r);
		return rc;
	}
}

sl_dag_transport sl_dag_http_transport(sl_dag_http *h)
{
	sl_dag_transport t = {call, h};
	return t;
}
