/*
 * Tickets: one line that tells another node where a dag namespace is and
 * whose it is (docs/protocol.md, "Tickets"):
 *
 *   sluice:?ns=<64 hex>&name=<namespace name>&node=<64 hex>&pr=http:<host:port>
 *
 * ns is the namespace id, name its name on the node that made the ticket
 * (the joiner's default), node that node's public key (requests are
 * signed for it), pr where it serves. Parsing is strict: these fields in
 * this order, each once, lowercase hex, a valid namespace name, and an
 * address of printable bytes with a port. Nothing in a ticket is secret:
 * holding one lets a node ask for a role, which an admin must approve.
 */
#include "sluice/dag_sync.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "sluice:?"

int sl_dag_ticket_format(const sl_dag_ticket *t, char *out, size_t cap)
{
	int n = snprintf(out, cap, PREFIX "ns=%s&name=%s&node=%s&pr=http:%s",
	                 sl_digest_to_hex(&t->ns_id).s, t->name,
	                 sl_digest_to_hex((const sl_digest *)t->node).s, t->addr);
	if (n < 0 || (size_t)n >= cap)
		return sl_error_set(SL_ETOOLARGE, "a ticket needs %d bytes", n);
	return SL_OK;
}

static int bad(const char *what)
{
	return sl_error_set(SL_EINVAL, "not a sluice ticket: %s", what);
}

/* The value of field `name` at *p (which must start with "name="), up to
 * the next '&' or the end; *p moves past it and its '&'. */
static int field(const char **p, const char *name, const char **value, size_t *len, int last)
{
	size_t nlen = strlen(name);
	const char *end;
	if (strncmp(*p, name, nlen) != 0 || (*p)[nlen] != '=')
		return bad(name);
	*value = *p + nlen + 1;
	end = strchr(*value, '&');
	if (last ? end != NULL : end == NULL)
		return bad(last ? "bytes after the address" : "a field is missing");
	*len = end ? (size_t)(end - *value) : strlen(*value);
	*p = end ? end + 1 : *value + *len;
	return SL_OK;
}

static int hex32(const char *v, size_t len, uint8_t out[32], const char *what)
{
	size_t n;
	if (len != 64)
		return bad(what);
	for (size_t i = 0; i < len; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return bad(what);
	if (sl_hex_decode(out, 32, &n, v, len) != SL_OK || n != 32)
		return bad(what);
	return SL_OK;
}

/* host:port, printable, no '/', a port of 1..65535. */
static int check_addr(const char *v, size_t len)
{
	const char *colon;
	char *end;
	long port;
	if (len == 0 || len >= SL_DAG_ADDR_MAX)
		return bad("the address");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f || v[i] == '/' || v[i] == '&')
			return bad("the address");
	colon = NULL;
	for (size_t i = len; i > 0 && !colon; i--)
		if (v[i - 1] == ':')
			colon = v + i - 1;
	if (!colon || colon == v || colon + 1 == v + len || colon[1] == '0')
		return bad("the address has no port");
	port = strtol(colon + 1, &end, 10);
	if (end != v + len || port < 1 || port > 65535)
		return bad("the address has no port");
	return SL_OK;
}

int sl_dag_ticket_parse(sl_dag_ticket *out, const char *text)
{
	sl_dag_ticket t;
	const char *p = text, *v;
	size_t len;
	int rc;

	memset(&t, 0, sizeof(t));
	if (!text || strlen(text) > SL_DAG_TICKET_MAX)
		return bad("too long");
	if (strncmp(p, PREFIX, strlen(PREFIX)) != 0)
		return bad("it does not start with sluice:?");
	p += strlen(PREFIX);
	if ((rc = field(&p, "ns", &v, &len, 0)) != SL_OK ||
	    (rc = hex32(v, len, t.ns_id.bytes, "ns")) != SL_OK ||
	    (rc = field(&p, "name", &v, &len, 0)) != SL_OK)
		return rc;
	if (len == 0 || len > SL_NS_NAME_MAX)
		return bad("name");
	memcpy(t.name, v, len);
	if (sl_ns_name_validate(t.name) != SL_OK)
		return bad("name");
	if ((rc = field(&p, "node", &v, &len, 0)) != SL_OK ||
	    (rc = hex32(v, len, t.node, "node")) != SL_OK ||
	    (rc = field(&p, "pr", &v, &len, 1)) != SL_OK)
		return rc;
	if (len < 5 || strncmp(v, "http:", 5) != 0)
		return bad("pr is not http:<host:port>");
	if ((rc = check_addr(v + 5, len - 5)) != SL_OK)
		return rc;
	memcpy(t.addr, v + 5, len - 5);
	*out = t;
	return SL_OK;
}

/* ------------------------------------------------------------------ join */

static int parse_join(const sl_buf *ans, const sl_dag_ticket *t, sl_dag_join_answer *out)
{
	json_t *j = json_loadb((const char *)ans->data, ans->len, JSON_REJECT_DUPLICATES, NULL);
	const char *state = j ? json_string_value(json_object_get(j, "state")) : NULL;
	const char *role = j ? json_string_value(json_object_get(j, "role")) : NULL;
	const char *root = j ? json_string_value(json_object_get(j, "root")) : NULL;
	json_t *request = j ? json_object_get(j, "request") : NULL;
	sl_dag_entry e;
	size_t n;
	int rc = SL_OK;

	if (!state || !role || !root || !json_is_integer(request) ||
	    (strcmp(state, "pending") != 0 && strcmp(state, "approved") != 0 &&
	     strcmp(state, "denied") != 0) ||
	    sl_dag_role_parse(&out->role, role) != SL_OK || strlen(root) % 2 != 0 ||
	    strlen(root) / 2 > SL_DAG_ENTRY_MAX) {
		rc = sl_error_set(SL_ECORRUPT, "the peer's join answer is malformed");
		goto out;
	}
	snprintf(out->state, sizeof(out->state), "%s", state);
	out->request = (uint64_t)json_integer_value(request);
	out->root.len = 0;
	if ((rc = sl_buf_reserve(&out->root, strlen(root) / 2)) != SL_OK)
		goto out;
	if (sl_hex_decode(out->root.data, strlen(root) / 2, &n, root, strlen(root)) != SL_OK) {
		rc = sl_error_set(SL_ECORRUPT, "the peer's join answer is malformed");
		goto out;
	}
	out->root.len = n;
	if ((rc = sl_dag_entry_decode(&e, out->root.data, out->root.len)) != SL_OK) {
		rc = sl_error_set(SL_EVERIFY, "the peer's root entry: %s",
		                  sl_error_last()->message);
		goto out;
	}
	if (e.n_parents != 0 || !sl_digest_eq(&e.id, &t->ns_id))
		rc = sl_error_set(SL_EVERIFY, "the peer answered with a root entry of another "
		                              "namespace");
	sl_dag_entry_free(&e);
out:
	json_decref(j);
	return rc;
}

int sl_dag_join(const sl_dag_ticket *t, const sl_node_key *key, sl_dag_role role, const char *addr,
                sl_dag_join_answer *out)
{
	sl_buf body = SL_BUF_INIT(4096), ans = SL_BUF_INIT(1 << 20);
	sl_dag_http *h = NULL;
	sl_dag_transport tr;
	long status = 0;
	int rc;

	out->request = 0;
	out->state[0] = 0;
	if ((rc = sl_buf_printf(&body, "{\"role\":\"%s\"", sl_dag_role_name(role))) != SL_OK ||
	    (addr && *addr && (rc = sl_buf_printf(&body, ",\"addr\":\"%s\"", addr)) != SL_OK) ||
	    (rc = sl_buf_append_str(&body, "}")) != SL_OK ||
	    (rc = sl_dag_http_new(&h, t->addr, t->node, &t->ns_id, key, NULL)) != SL_OK)
		goto out;
	tr = sl_dag_http_transport(h);
	if ((rc = tr.call(tr.ctx, "join", body.data, body.len, &status, &ans)) != SL_OK)
		goto out;
	if (status != 200) {
		json_t *j = json_loadb((const char *)ans.data, ans.len, 0, NULL);
		const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
		rc = sl_error_set(status == 401 || status == 403 ? SL_EAUTH : SL_EIO,
		                  "the peer refused the join request: HTTP %ld: %.200s", status,
		                  m ? m : "");
		json_decref(j);
		goto out;
	}
	rc = parse_join(&ans, t, out);
out:
	sl_dag_http_free(h);
	sl_buf_free(&body);
	sl_buf_free(&ans);
	return rc;
}
