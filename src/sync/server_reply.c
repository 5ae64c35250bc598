/*
 * How the sync server answers: library errors mapped to HTTP statuses and
 * the JSON error body, and strict parsing of query parameters. Shared by
 * the server's endpoint files (server.c, state_endpoints.c).
 */
#include "sync/server_internal.h"

#include <stdio.h>

/* A status for a library error: the client's fault (4xx) or ours (5xx). */
static int status_for(int code)
{
	switch (code) {
	case SL_EINVAL:
	case SL_ECORRUPT:
		return 400;
	case SL_ENOTFOUND:
		return 404;
	case SL_ECONFLICT:
	case SL_EEXISTS:
		return 409;
	case SL_ETOOLARGE:
		return 413;
	case SL_EBUSY:
	case SL_ETIMEOUT:
		return 503;
	default:
		return 500;
	}
}

static const char *error_name(int status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 401:
		return "unauthorized";
	case 403:
		return "forbidden";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 409:
		return "conflict";
	case 410:
		return "gone";
	case 413:
		return "too_large";
	case 503:
		return "unavailable";
	default:
		return "internal";
	}
}

void server_fail(sl_http_response *resp, int status, const char *message)
{
	sl_http_response_error(resp, status, error_name(status), "%s", message);
}

void server_fail_last(sl_http_response *resp)
{
	const sl_error *e = sl_error_last();
	server_fail(resp, status_for(e->code), e->message);
}

/* A decimal uint64 query parameter: digits only, no overflow. */
int server_query_u64(const sl_http_request *req, const char *name, uint64_t *out, int required,
                     sl_http_response *resp)
{
	const char *s = sl_http_request_query(req, name);
	uint64_t v = 0;
	char msg[128];

	if (!s || !*s) {
		if (!required)
			return SL_OK;
		snprintf(msg, sizeof(msg), "query parameter '%s' is required", name);
		server_fail(resp, 400, msg);
		return SL_EINVAL;
	}
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			snprintf(msg, sizeof(msg), "query parameter '%s' is not a decimal integer",
			         name);
			server_fail(resp, 400, msg);
			return SL_EINVAL;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return SL_OK;
}

void server_fail_store(sl_http_response *resp)
{
	const sl_error *e = sl_error_last();
	int status = 500;
	if (e->code == SL_ENOTFOUND)
		status = 404;
	else if (e->code == SL_EBUSY || e->code == SL_ETIMEOUT)
		status = 503;
	server_fail(resp, status, e->message);
}
