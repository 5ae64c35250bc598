/* The node sink: objects become keys of a sluice namespace, either in a
 * local store directory or on a remote node through its commit endpoint
 * (POST /api/v0/ns/{ns}/commit, bearer token, the batch frame of
 * docs/protocol.md).
 *
 * A namespace's log grows by one commit per write, so objects are gathered
 * and committed together: at flush (once per pipeline batch), or earlier
 * when the gathered values pass PENDING_BUDGET. Each object's bytes are held
 * whole until then (store values are single blobs), so memory is the
 * budget plus the objects being written.
 *
 * An early commit carries objects whose commit() already returned SL_OK.
 * If it fails, their bytes are gone, so the failure is kept and the next
 * flush returns it: the pipeline then counts none of the batch as stored
 * (the sink contract in connect.h) and sends it again.
 *
 * Idempotence comes from the namespace: in an immutable namespace, setting
 * a key again with the same bytes appends nothing. Setting it with other
 * bytes is refused, and the store refuses the whole commit; so a refused
 * commit is retried one object at a time, and only the objects refused on
 * their own are reported as failed (through flush's on_failed). Locally the
 * existing digest is checked first, so a conflict is known at commit.
 *
 * Threads: the workers call begin/write/commit concurrently; the pending
 * list and the store handle are guarded by one mutex.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "connect/node.h"
#include "sluice/connect.h"
#include "sluice/net.h"
#include "sluice/store.h"

#define PENDING_BUDGET ((size_t)16 << 20)
/* The node's request cap is 64 MiB: one object must fit a commit frame. */
#define REMOTE_OBJECT_MAX ((uint64_t)40 << 20)
/* What one commit frame may reach: the budget plus the object that passed
 * it, within the node's 64 MiB request cap. */
#define REMOTE_FRAME_MAX ((size_t)64 << 20)

typedef struct pending {
	char *key;
	sl_buf value;
	int is_del; /* a removal (changes mode, mutable namespaces) */
} pending;

typedef struct refused {
	char *key;
	int code;
	char message[SL_ERROR_MSG_MAX];
} refused;

typedef struct node_sink {
	pthread_mutex_t mu;
	char *ns;
	sl_store *store;      /* local */
	sl_http_client *http; /* remote */
	char *commit_url;
	char *auth_header;
	pending *pend;
	size_t n_pend, cap_pend, pend_bytes;
	size_t pending_budget; /* PENDING_BUDGET but in tests */
	refused *refused;
	size_t n_refused, cap_refused;
	int early_rc; /* an early commit's failure, for the next flush */
	char early_message[SL_ERROR_MSG_MAX];
} node_sink;

typedef struct node_upload {
	char *key;
	sl_buf value;
} node_upload;

/* ------------------------------------------------------------- commits */

/* One commit of entries [from, to) locally. */
static int commit_local(node_sink *n, size_t from, size_t to)
{
	sl_batch *b = NULL;
	int rc;

	if ((rc = sl_batch_new(&b, n->store, n->ns)) != SL_OK)
		return rc;
	for (size_t i = from; rc == SL_OK && i < to; i++)
		rc = n->pend[i].is_del ? sl_batch_del(b, n->pend[i].key, strlen(n->pend[i].key))
		                       : sl_batch_put(b, n->pend[i].key, strlen(n->pend[i].key),
		                                      n->pend[i].value.data, n->pend[i].value.len);
	if (rc == SL_OK)
		rc = sl_batch_commit(b, NULL);
	sl_batch_free(b);
	return rc;
}

static int commit_remote(node_sink *n, size_t from, size_t to)
{
	const char *headers[] = {n->auth_header, "Content-Type: application/octet-stream", NULL};
	sl_buf frame = SL_BUF_INIT(REMOTE_FRAME_MAX);
	sl_http_result res;
	int rc;

	sl_http_result_init(&res);
	if ((rc = sl_wire_batch_begin(&frame)) != SL_OK)
		goto cleanup;
	for (size_t i = from; i < to; i++)
		if ((rc = n->pend[i].is_del
		                  ? sl_wire_batch_del(&frame, n->pend[i].key,
		                                      strlen(n->pend[i].key))
		                  : sl_wire_batch_put(&frame, n->pend[i].key,
		                                      strlen(n->pend[i].key), n->pend[i].value.data,
		                                      n->pend[i].value.len)) != SL_OK)
			goto cleanup;
	if ((rc = sl_wire_batch_end(&frame, to - from)) != SL_OK)
		goto cleanup;
	if ((rc = sl_http_client_fetch(n->http, "POST", n->commit_url, headers, frame.data,
	                               frame.len, &res)) != SL_OK) {
		rc = sl_error_set(rc, "commit to %s: %s", n->commit_url, res.error);
		goto cleanup;
	}
	if (res.status == 200)
		goto cleanup;
	rc = res.status == 401 || res.status == 403  ? SL_EAUTH
	     : res.status == 409                     ? SL_ECONFLICT
	     : res.status == 404                     ? SL_ENOTFOUND
	     : res.status >= 400 && res.status < 500 ? SL_EINVAL
	                                             : SL_EIO;
	{
		char cause[32];
		snprintf(cause, sizeof(cause), "http %ld", res.status);
		sl_error_set_cause(rc, cause, "commit to %s: HTTP %ld: %.*s", n->commit_url,
		                   res.status, (int)(res.body.len < 300 ? res.body.len : 300),
		                   res.body.data ? (const char *)res.body.data : "");
	}
cleanup:
	sl_buf_free(&frame);
	sl_http_result_free(&res);
	return rc;
}

static int commit_range(node_sink *n, size_t from, size_t to)
{
	return n->store != NULL ? commit_local(n, from, to) : commit_remote(n, from, to);
}

static int note_refused(node_sink *n, const char *key, int code)
{
	refused *grown = sl_grow(n->refused, &n->cap_refused, n->n_refused, sizeof(*grown), 8);
	if (grown == NULL)
		return SL_ENOMEM;
	n->refused = grown;
	refused *r = &n->refused[n->n_refused];
	if ((r->key = sl_strdup(key)) == NULL)
		return SL_ENOMEM;
	r->code = code;
	snprintf(r->message, sizeof(r->message), "%s", sl_error_last()->message);
	n->n_refused++;
	return SL_OK;
}

static void drop_pending(node_sink *n)
{
	for (size_t i = 0; i < n->n_pend; i++) {
		sl_free(n->pend[i].key);
		sl_buf_free(&n->pend[i].value);
	}
	n->n_pend = 0;
	n->pend_bytes = 0;
}

/* Commits everything pending; with n->mu held. When the whole commit is
 * refused for one entry's sake, commits entry by entry and notes the
 * refused ones. */
static int commit_pending(node_sink *n)
{
	int rc = SL_OK;

	if (n->n_pend == 0)
		return SL_OK;
	rc = commit_range(n, 0, n->n_pend);
	if (rc == SL_ECONFLICT || rc == SL_EINVAL) {
		rc = SL_OK;
		for (size_t i = 0; rc == SL_OK && i < n->n_pend; i++) {
			int one = commit_range(n, i, i + 1);
			if (one == SL_ECONFLICT || one == SL_EINVAL)
				rc = note_refused(n, n->pend[i].key, one);
			else
				rc = one;
		}
	}
	drop_pending(n);
	return rc;
}

/* --------------------------------------------------------------- vtable */

static int node_begin(void *self, const char *key, uint64_t size, void **upload)
{
	node_sink *n = self;
	node_upload *u;
	int rc;

	if ((rc = sl_key_validate(key, strlen(key))) != SL_OK)
		return rc;
	if (size > SL_VALUE_MAX || (n->http != NULL && size > REMOTE_OBJECT_MAX))
		return sl_error_set(SL_ETOOLARGE,
		                    "%s: %llu bytes is more than a node value may hold", key,
		                    (unsigned long long)size);
	if ((u = sl_calloc(1, sizeof(*u))) == NULL)
		return SL_ENOMEM;
	sl_buf_init(&u->value, (size_t)size);
	if ((u->key = sl_strdup(key)) == NULL ||
	    (rc = sl_buf_reserve(&u->value, (size_t)size)) != SL_OK) {
		sl_free(u->key);
		sl_buf_free(&u->value);
		sl_free(u);
		return SL_ENOMEM;
	}
	*upload = u;
	return SL_OK;
}

static int node_write(void *self, void *upload, const uint8_t *data, size_t len)
{
	node_upload *u = upload;
	(void)self;
	return sl_buf_append(&u->value, data, len);
}

static void upload_free(node_upload *u)
{
	if (u == NULL)
		return;
	sl_free(u->key);
	sl_buf_free(&u->value);
	sl_free(u);
}

typedef struct existing_ctx {
	const char *key;
	size_t key_len;
	int found;
	sl_digest digest;
} existing_ctx;

static int find_existing(void *ctx, const sl_key_entry *e)
{
	existing_ctx *x = ctx;
	if (e->key_len == x->key_len && memcmp(e->key, x->key, x->key_len) == 0) {
		x->found = 1;
		x->digest = e->digest;
		return 1; /* stop */
	}
	return 0;
}

/* Locally: SL_OK and *same when the key already holds these bytes;
 * SL_ECONFLICT when it holds others in an immutable namespace. */
static int check_existing(node_sink *n, const node_upload *u, int *same)
{
	existing_ctx x = {.key = u->key, .key_len = strlen(u->key)};
	sl_ns_info info;
	sl_digest digest;
	int rc;

	*same = 0;
	rc = sl_store_list(n->store, n->ns, u->key, x.key_len, find_existing, &x);
	if (rc < 0)
		return rc;
	if (!x.found)
		return SL_OK;
	sl_sha256(&digest, u->value.data, u->value.len);
	if (sl_digest_eq(&digest, &x.digest)) {
		*same = 1;
		return SL_OK;
	}
	if ((rc = sl_store_ns_head(n->store, n->ns, &info)) != SL_OK)
		return rc;
	if (info.kind == SL_NS_IMMUTABLE)
		return sl_error_set(SL_ECONFLICT,
		                    "%s already holds other bytes in immutable namespace %s",
		                    u->key, n->ns);
	return SL_OK;
}

/* Adds a write (value) or a removal (value NULL) to the pending list, taking
 * *key and *value; commits early past the budget. With n->mu held. */
static int add_pending(node_sink *n, char **key, sl_buf *value)
{
	pending *grown = sl_grow(n->pend, &n->cap_pend, n->n_pend, sizeof(*grown), 64);
	int rc = SL_OK;

	if (grown == NULL)
		return SL_ENOMEM;
	n->pend = grown;
	memset(&n->pend[n->n_pend], 0, sizeof(n->pend[n->n_pend]));
	n->pend[n->n_pend].key = *key;
	*key = NULL;
	if (value != NULL) {
		n->pend[n->n_pend].value = *value;
		n->pend_bytes += value->len;
		memset(value, 0, sizeof(*value));
	} else {
		n->pend[n->n_pend].is_del = 1;
	}
	n->n_pend++;
	if (n->pend_bytes >= n->pending_budget && (rc = commit_pending(n)) != SL_OK &&
	    n->early_rc == SL_OK) {
		n->early_rc = rc;
		snprintf(n->early_message, sizeof(n->early_message), "%s",
		         sl_error_last()->message);
	}
	return rc;
}

static int node_commit(void *self, void *upload)
{
	node_sink *n = self;
	node_upload *u = upload;
	int rc = SL_OK, same = 0;

	pthread_mutex_lock(&n->mu);
	if (n->store == NULL || ((rc = check_existing(n, u, &same)) == SL_OK && !same))
		rc = add_pending(n, &u->key, &u->value);
	pthread_mutex_unlock(&n->mu);
	upload_free(u);
	return rc;
}

/* A delete in the namespace, committed with the batch; an immutable
 * namespace refuses it (reported at flush). */
static int node_remove(void *self, const char *key)
{
	node_sink *n = self;
	char *copy;
	int rc;

	if ((rc = sl_key_validate(key, strlen(key))) != SL_OK)
		return rc;
	if ((copy = sl_strdup(key)) == NULL)
		return SL_ENOMEM;
	pthread_mutex_lock(&n->mu);
	rc = add_pending(n, &copy, NULL);
	pthread_mutex_unlock(&n->mu);
	sl_free(copy);
	return rc;
}

static void node_abort(void *self, void *upload)
{
	(void)self;
	upload_free(upload);
}

static int node_flush(void *self, sl_sink_failed_fn on_failed, void *ctx)
{
	node_sink *n = self;
	int rc;

	pthread_mutex_lock(&n->mu);
	rc = commit_pending(n);
	if (n->early_rc != SL_OK) {
		rc = sl_error_set(n->early_rc, "an earlier commit of this batch failed: %s",
		                  n->early_message);
		n->early_rc = SL_OK;
	}
	for (size_t i = 0; i < n->n_refused; i++) {
		if (rc == SL_OK)
			on_failed(ctx, n->refused[i].key, n->refused[i].code,
			          n->refused[i].message);
		sl_free(n->refused[i].key);
	}
	n->n_refused = 0;
	pthread_mutex_unlock(&n->mu);
	return rc;
}

static void node_close(void *self)
{
	node_sink *n = self;
	if (n == NULL)
		return;
	drop_pending(n);
	for (size_t i = 0; i < n->n_refused; i++)
		sl_free(n->refused[i].key);
	sl_free(n->refused);
	sl_free(n->pend);
	sl_store_free(n->store);
	sl_http_client_free(n->http);
	sl_free(n->commit_url);
	sl_free(n->auth_header);
	sl_free(n->ns);
	pthread_mutex_destroy(&n->mu);
	sl_free(n);
}

void sl_node_sink_set_pending_budget(sl_sink *s, size_t bytes)
{
	node_sink *n = s->self;
	n->pending_budget = bytes;
}

static const sl_sink_ops node_ops = {
        .kind = "node",
        .begin = node_begin,
        .write = node_write,
        .commit = node_commit,
        .abort = node_abort,
        .remove = node_remove,
        .flush = node_flush,
        .close = node_close,
};

static int node_new(node_sink **out, const char *ns)
{
	node_sink *n;
	int rc;

	if (ns == NULL || ns[0] == '\0')
		return sl_error_set(SL_EINVAL, "node sink: no namespace");
	if ((n = sl_calloc(1, sizeof(*n))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&n->mu, NULL);
	n->pending_budget = PENDING_BUDGET;
	if ((n->ns = sl_strdup(ns)) == NULL) {
		rc = SL_ENOMEM;
		node_close(n);
		return rc;
	}
	*out = n;
	return SL_OK;
}

int sl_node_sink_open_local(sl_sink *out, const char *store_dir, const char *ns, int mutable_ns)
{
	sl_store_options opts;
	sl_ns_info info;
	node_sink *n = NULL;
	int rc;

	if ((rc = node_new(&n, ns)) != SL_OK)
		return rc;
	sl_store_options_init(&opts);
	opts.flags |= SL_STORE_CREATE;
	if ((rc = sl_store_open(&n->store, store_dir, &opts)) != SL_OK)
		goto cleanup;
	rc = sl_store_ns_head(n->store, ns, &info);
	if (rc == SL_ENOTFOUND)
		rc = sl_store_ns_create(n->store, ns, mutable_ns ? SL_NS_MUTABLE : SL_NS_IMMUTABLE);
	else if (rc == SL_OK && mutable_ns && info.kind != SL_NS_MUTABLE)
		rc = sl_error_set(SL_EINVAL,
		                  "namespace %s is not mutable, and deletes (changes mode) need a "
		                  "mutable one: name another [destination] namespace",
		                  ns);
	if (rc != SL_OK)
		goto cleanup;
	out->ops = &node_ops;
	out->self = n;
	return SL_OK;
cleanup:
	node_close(n);
	return rc;
}

int sl_node_sink_open_remote(sl_sink *out, const char *url, const char *token, const char *ns,
                             uint32_t timeout_ms)
{
	sl_http_client_options ho;
	sl_http_result res;
	sl_buf target_url = SL_BUF_INIT(4096);
	node_sink *n = NULL;
	int rc;

	sl_http_result_init(&res);
	if (url == NULL || token == NULL || token[0] == '\0') {
		rc = sl_error_set(SL_EINVAL, "node sink: a url and a token are required");
		goto cleanup;
	}
	if ((rc = node_new(&n, ns)) != SL_OK)
		goto cleanup;
	sl_http_client_options_init(&ho);
	ho.max_in_flight = 1;
	if (timeout_ms > 0)
		ho.request_timeout_ms = timeout_ms;
	ho.max_response = 1 << 20;
	if ((rc = sl_http_client_new(&n->http, &ho)) != SL_OK)
		goto cleanup;
	sl_buf commit_url = SL_BUF_INIT(4096), auth = SL_BUF_INIT(4096);
	if ((rc = sl_buf_printf(&commit_url, "%s/api/v0/ns/%s/commit", url, ns)) != SL_OK ||
	    (rc = sl_buf_printf(&auth, "Authorization: Bearer %s", token)) != SL_OK ||
	    (rc = sl_buf_printf(&target_url, "%s/api/v0/ns/%s/target", url, ns)) != SL_OK) {
		sl_buf_free(&commit_url);
		sl_buf_free(&auth);
		goto cleanup;
	}
	n->commit_url = (char *)commit_url.data;
	n->auth_header = (char *)auth.data;
	/* Fail at open, not at the first flush, when the node or the
	 * namespace is not there. */
	if ((rc = sl_http_client_fetch(n->http, "GET", (const char *)target_url.data, NULL, NULL, 0,
	                               &res)) != SL_OK) {
		rc = sl_error_set(rc, "node %s: %s", url, res.error);
		goto cleanup;
	}
	if (res.status != 200) {
		rc = sl_error_set(
		        res.status == 404 ? SL_ENOTFOUND : SL_EIO,
		        "node %s: namespace %s: HTTP %ld (create the namespace on the node)", url,
		        ns, res.status);
		goto cleanup;
	}
	out->ops = &node_ops;
	out->self = n;
	n = NULL;
	rc = SL_OK;
cleanup:
	sl_http_result_free(&res);
	sl_buf_free(&target_url);
	node_close(n);
	return rc;
}
