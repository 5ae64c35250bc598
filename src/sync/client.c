/*
 * The sync client: keeps a local namespace in step with a server's,
 * accepting nothing it has not verified.
 *
 * One sync: fetch the target (size, root, floor; its signature checked
 * when a key is trusted), prove that it extends what is stored locally,
 * then fetch operations in ranges of the batch size with up to
 * max_outstanding requests in flight over kept-alive connections, verify
 * each frame's range proof against the root of the target it was
 * requested for, and apply verified operations in order. Meanwhile the
 * target is polled; a larger one is adopted only after a consistency
 * proof from the current one. The sync is complete when the local root
 * equals the target root.
 *
 * The batch size adapts unless the caller fixes it (batch_size != 0): it
 * starts at BATCH_AUTO_FIRST, doubles each time a frame of the current
 * size comes back whole and verified, up to BATCH_AUTO_MAX, halves when a
 * request fails or a frame is rejected, and drops to what the server sent
 * when the server's byte budget cut a frame short. Larger batches cost
 * fewer requests and proofs per operation; past a few thousand operations
 * they only hold more memory, as the store is the bound (bench/RESULTS.md).
 *
 * Two threads. This one talks to the server: it issues requests, verifies
 * frames, follows targets, and hands verified runs to the apply thread
 * (client_apply.c), which appends them to the store while this one goes
 * on fetching, so neither waits for the other. The store handle is used
 * by one thread at a time: this one before the apply thread starts (the
 * local head, the consistency check, creating a replica at the floor,
 * which happens before any operation is handed over) and after it was
 * stopped (the root check); the apply thread in between. Verified
 * operations not yet in the store are bounded (issue), whether they wait
 * for a lagging range or for the store.
 *
 * A mutable namespace that does not exist locally starts at the server's
 * floor: the first frame is requested with its pinned nodes, whose values
 * the verified proof fixes (sl_mmr_range_verify_pinned), and the replica
 * is created from them (store/replica.c).
 *
 * Invariants:
 *   C1. Nothing reaches the store unverified: every applied operation came
 *       in a frame whose proof checked against the root of a target that
 *       was signed by the trusted key (if any) and proved consistent with
 *       the local log (C3).
 *   C2. Operations are applied in location order, in runs that end with a
 *       commit, each run in one store transaction, so the local size is
 *       always one of the server's commit boundaries and a crash loses at
 *       most the run being written. Runs are handed to the apply thread
 *       contiguously from the local size (queued_size), and it writes
 *       them in the order received and stops at its first failure.
 *   C3. The client moves from target T to T' only after verifying a
 *       consistency proof from T to T'; a sync starts only after verifying
 *       one from the local (size, root) to the target. A server that
 *       rewrote its history cannot produce either, and is not followed.
 *   C4. A restarted client resumes at its local size: nothing applied is
 *       fetched again; verified operations past the last applied commit
 *       were only in memory and are fetched again.
 *   C5. A local namespace is only ever replaced whole, by a complete copy:
 *       a resync (below) writes nothing to it, and its side copy takes
 *       its name in one store transaction once the side copy's root
 *       equals the adopted target's. A crash at any point leaves the old
 *       copy, readable as it was (and the side copy, resumed or dropped
 *       by the next run), or the new one.
 *
 * Resync. A server may prune a mutable namespace below what a replica
 * holds; it then answers 410 to the consistency proof from the local size
 * or to a range the replica needs, and the replica cannot continue. The
 * client rebuilds it in a side namespace (resync_name: a reserved name,
 * which users cannot create) from the server's floor, as it builds a new
 * replica, and then replaces the local namespace with it (choose_local,
 * replace_local; sl_store_ns_replace in store/replica.c). The new copy is
 * verified under C1-C4 like any replica, but, as for a first sync, not
 * proved to extend the old one: the server no longer holds what such a
 * proof needs. With trust_key only a target signed by that key can lead
 * there. An immutable namespace is never pruned: a 410 for one is
 * refused, as a server that rewrote its history is.
 *
 * Faults: a request that fails (network error, timeout, 5xx, a frame
 * that does not decode or verify) is requested again after an exponential
 * backoff with jitter, and counted. A range that keeps failing ends the
 * attempt; the sync then starts over from the target, with backoff, so a
 * server that went away or changed is looked at afresh.
 */
#include "sluice/sync.h"

#include <stdlib.h>
#include <string.h>

#include "sync/client_internal.h"

void sl_sync_client_options_init(sl_sync_client_options *o)
{
	memset(o, 0, sizeof(*o));
	o->batch_size = 0; /* adaptive */
	o->max_outstanding = 4;
	o->target_interval_ms = 1000;
	o->sync_interval_ms = 10000;
	o->request_timeout_ms = 10000;
	o->retry_base_ms = 100;
	o->retry_max_ms = 5000;
}

static int stopping(const client *c)
{
	return c->o->stop && *c->o->stop;
}

/* ------------------------------------------------------------- backoff */

/* base * 2^attempt, capped, with jitter in [d/2, d). */
static uint64_t backoff_ms(client *c, unsigned attempt)
{
	return sl_backoff_ms(c->o->retry_base_ms, c->o->retry_max_ms, attempt, &c->rng);
}

/* Sleep in short steps so a stop request is seen. */
static void pause_ms(const client *c, uint64_t ms)
{
	uint64_t end = sl_clock_mono_ns() + ms * 1000000;
	while (!stopping(c) && sl_clock_mono_ns() < end) {
		uint64_t left = (end - sl_clock_mono_ns()) / 1000000;
		sl_sleep_ms(left < 50 ? left + 1 : 50);
	}
}

/* A 429: the server asks this client to slow down. Sets how long to wait
 * before asking again (its Retry-After, or the backoff if longer, at most
 * SL_HTTP_WAIT_MAX_S); such a wait is no failure, so it does not count as
 * an attempt. */
static int throttled(client *c, const sl_http_result *r, unsigned attempt, uint64_t *wait_ms)
{
	if (r->rc != SL_OK || r->status != 429)
		return 0;
	*wait_ms = sl_http_retry_after_ms(r, backoff_ms(c, attempt));
	sl_metric_add(c->m.throttled, 1);
	if (!c->told_throttled) {
		c->told_throttled = 1;
		sl_log(SL_LOG_INFO, "the server asks this client to slow down; waiting as told",
		       "retry_after_s=%llu (logged once)", (unsigned long long)r->retry_after_s);
	}
	return 1;
}

/* ---------------------------------------------------------------- HTTP */

static void url_for(const client *c, char *out, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void url_for(const client *c, char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(out, cap, "%s/api/v0/ns/%s/", c->base, c->o->ns);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < cap)
		vsnprintf(out + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

/* SL_OK for a 2xx answer; otherwise an error saying what went wrong. */
static int result_status(const sl_http_result *r, const char *what)
{
	if (r->rc != SL_OK)
		return sl_error_set(r->rc, "%s: %s", what, r->error);
	if (r->status < 200 || r->status >= 300)
		return sl_error_set(r->status >= 500 ? SL_EIO : SL_EINVAL, "%s: HTTP %ld: %.*s",
		                    what, r->status, (int)(r->body.len < 200 ? r->body.len : 200),
		                    r->body.data ? (const char *)r->body.data : "");
	return SL_OK;
}

static int parse_target(client *c, const sl_http_result *r, sl_signed_target *out)
{
	int rc;
	if ((rc = result_status(r, "fetch target")) != SL_OK)
		return rc;
	if ((rc = sl_target_from_json(out, (const char *)r->body.data, r->body.len)) != SL_OK)
		return rc;
	if (strcmp(out->ns, c->o->ns) != 0)
		return sl_error_set(SL_ECORRUPT, "asked for the target of '%s', got '%s'", c->o->ns,
		                    out->ns);
	if (c->o->trust_key && (rc = sl_target_verify(out, c->o->trust_key)) != SL_OK) {
		sl_metric_add(c->m.refused, 1);
		return rc;
	}
	return SL_OK;
}

/* GET url until the answer is not a 429, waiting as each asks (a wait is
 * no failed attempt). SL_OK with *r filled, or SL_ETIMEOUT once stopped. */
static int fetch_unthrottled(client *c, const char *url, sl_http_result *r)
{
	for (unsigned waits = 0;; waits++) {
		uint64_t wait;
		sl_http_result_init(r);
		sl_http_client_fetch(c->http, "GET", url, NULL, NULL, 0, r);
		if (!throttled(c, r, waits, &wait))
			return SL_OK;
		sl_http_result_free(r);
		if (stopping(c))
			return sl_error_set(SL_ETIMEOUT, "stopped while the server asked to wait");
		pause_ms(c, wait);
	}
}

/* Blocking fetch with retries and backoff until it answers 2xx, a
 * non-retryable error occurs (SL_EVERIFY, or a 4xx: no such namespace,
 * refused credentials, which asking again does not change), or stop. */
static int fetch_target(client *c, sl_signed_target *out)
{
	char url[URL_MAX];
	url_for(c, url, sizeof(url), "target");
	for (unsigned attempt = 0;; attempt++) {
		sl_http_result r;
		uint64_t wait;
		int rc;
		if ((rc = fetch_unthrottled(c, url, &r)) != SL_OK)
			return rc;
		rc = parse_target(c, &r, out);
		if (rc != SL_OK && r.rc == SL_OK && r.status >= 400 && r.status < 500) {
			int code = r.status == 404 || r.status == 410   ? SL_ENOTFOUND
			           : r.status == 401 || r.status == 403 ? SL_EAUTH
			                                                : SL_EINVAL;
			rc = sl_error_set(code, "namespace %s on %s: %s", c->o->ns, c->base,
			                  sl_error_last()->message);
		}
		sl_http_result_free(&r);
		if (rc == SL_OK || rc == SL_EVERIFY || rc == SL_ENOTFOUND || rc == SL_EAUTH)
			return rc;
		if (stopping(c))
			return rc;
		wait = backoff_ms(c, attempt);
		sl_metric_add(c->m.retries, 1);
		sl_log(SL_LOG_WARN, "cannot reach the server; retrying", "reason=\"%s\" in_ms=%llu",
		       sl_error_last()->message, (unsigned long long)wait);
		pause_ms(c, wait);
	}
}

static int check_consistency(uint64_t old_size, const sl_digest *old_root,
                             const sl_signed_target *to, const sl_http_result *r)
{
	int rc;
	if ((rc = result_status(r, "fetch consistency proof")) != SL_OK)
		return rc;
	return sl_sync_check_consistency(r->body.data, r->body.len, old_size, old_root,
	                                 &to->target);
}

/* Blocking: prove (old_size, old_root) is a prefix of `to`. Network
 * failures are retried; SL_EVERIFY is returned, and SYNC_ERR_PRUNED when
 * the server pruned the operations below old_size (it answers 410). */
static int fetch_consistency(client *c, uint64_t old_size, const sl_digest *old_root,
                             const sl_signed_target *to)
{
	char url[URL_MAX];
	url_for(c, url, sizeof(url), "consistency?from=%llu&to=%llu", (unsigned long long)old_size,
	        (unsigned long long)to->target.size);
	for (unsigned attempt = 0;; attempt++) {
		sl_http_result r;
		int rc;
		if ((rc = fetch_unthrottled(c, url, &r)) != SL_OK)
			return rc;
		if (r.rc == SL_OK && r.status == 410) { /* pruned below old_size */
			sl_http_result_free(&r);
			return SYNC_ERR_PRUNED;
		}
		rc = check_consistency(old_size, old_root, to, &r);
		/* A server that answers but cannot prove it is refused; only
		 * network errors and 5xx are retried. */
		if (rc != SL_OK && rc != SL_EVERIFY && r.rc == SL_OK && r.status < 500)
			rc = sl_error_set(SL_EVERIFY,
			                  "the server cannot prove that its log extends the one "
			                  "verified at %llu operations: %s",
			                  (unsigned long long)old_size, sl_error_last()->message);
		sl_http_result_free(&r);
		if (rc == SL_OK || rc == SL_EVERIFY || stopping(c) || attempt + 1 >= RANGE_ATTEMPTS)
			return rc;
		sl_metric_add(c->m.retries, 1);
		pause_ms(c, backoff_ms(c, attempt));
	}
}

/* A 410 for an immutable namespace, which is never pruned: refused, as
 * it always was, since asking again would not change the answer. */
int client_pruned_refused(const client *c)
{
	return sl_error_set(SL_EVERIFY,
	                    "the server pruned operations this client still needs (local size "
	                    "%llu); remove the local namespace to start again from the "
	                    "server's floor",
	                    (unsigned long long)c->local_size);
}

/* ------------------------------------------------------ adaptive batch */

/* With batch_size 0 the batch adapts: it starts at BATCH_AUTO_FIRST,
 * doubles each time a frame of the current size comes back whole and
 * verified, up to BATCH_AUTO_MAX; it halves (to BATCH_AUTO_MIN) when a
 * request fails or a frame is rejected, and drops to what the server sent
 * when the server's byte budget cut a frame short, asking no more than
 * the server gives. A batch_size set by the caller stays as it is. */
static int batch_fixed(const client *c)
{
	return c->o->batch_size != 0;
}

static void batch_set(client *c, uint64_t batch)
{
	if (batch_fixed(c))
		return;
	if (batch < BATCH_AUTO_MIN)
		batch = BATCH_AUTO_MIN;
	if (batch > BATCH_AUTO_MAX)
		batch = BATCH_AUTO_MAX;
	if (batch != c->batch) {
		sl_log(SL_LOG_DEBUG, "batch size", "from=%u to=%llu", c->batch,
		       (unsigned long long)batch);
		c->batch = (uint32_t)batch;
		sl_metric_set(c->m.batch, (double)batch);
	}
}

/* --------------------------------------------------------------- ranges */

static int retry_push(client *c, const range *r)
{
	range *grown = sl_grow(c->retry, &c->cap_retry, c->n_retry, sizeof(*grown), 16);
	if (!grown)
		return SL_ENOMEM;
	c->retry = grown;
	c->retry[c->n_retry++] = *r;
	return SL_OK;
}

/* A range failed: request it again after a backoff, or give up on this
 * attempt (SYNC_ERR_RESTART) after RANGE_ATTEMPTS failures. An adaptive
 * batch halves, and a range larger than it is asked again in two: its
 * first batch (which keeps the count of failures) and the rest. */
static int range_failed(client *c, range *r, const char *why, int rejected)
{
	uint64_t wait = backoff_ms(c, r->attempts);
	int rc;

	if (rejected)
		sl_metric_add(c->m.rejected, 1);
	sl_metric_add(c->m.retries, 1);
	sl_log(rejected ? SL_LOG_WARN : SL_LOG_INFO,
	       rejected ? "rejected a batch that failed verification; fetching it again"
	                : "a request failed; fetching it again",
	       "start=%llu count=%llu attempt=%u in_ms=%llu reason=\"%s\"",
	       (unsigned long long)r->start, (unsigned long long)r->count, r->attempts + 1,
	       (unsigned long long)wait, why);
	if (++r->attempts >= RANGE_ATTEMPTS)
		return SYNC_ERR_RESTART;
	r->ready_ns = sl_clock_mono_ns() + wait * 1000000;
	batch_set(c, c->batch / 2);
	if (!batch_fixed(c) && r->count > c->batch) {
		range rest = *r;
		rest.start += c->batch;
		rest.count -= c->batch;
		rest.pinned = 0;
		rest.attempts = 0;
		r->count = c->batch;
		if ((rc = retry_push(c, &rest)) != SL_OK)
			return rc;
	}
	return retry_push(c, r);
}

/* Verified operations not yet in the store. */
static size_t frames_ops(const client *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n_frames; i++) {
		const frame *f = c->frames[i];
		uint64_t end = f->ops.start + f->ops.n;
		n += end - (f->ops.start > c->local_size ? f->ops.start : c->local_size);
	}
	return n;
}

/* Verified operations not yet handed to the apply thread that are
 * contiguous from what was (the first frames are those handed over
 * whole), how many frames hold them, and how many of them end at the last
 * commit among them. */
void client_contiguous(const client *c, size_t *first, size_t *n_frames, uint64_t *n_ops,
                       uint64_t *n_to_commit)
{
	uint64_t loc = c->queued_size;
	size_t i = 0;

	while (i < c->n_frames && c->frames[i]->queued == c->frames[i]->ops.n)
		i++;
	*first = i;
	*n_frames = 0;
	*n_ops = *n_to_commit = 0;
	for (; i < c->n_frames; i++) {
		const frame *f = c->frames[i];
		if (f->ops.start + f->queued != loc)
			break;
		if (f->commit_end > f->queued)
			*n_to_commit = *n_ops + (f->commit_end - f->queued);
		*n_ops += f->ops.n - f->queued;
		loc = f->ops.start + f->ops.n;
		(*n_frames)++;
	}
}

/* The apply thread has nothing left to write, and every buffered
 * operation is contiguous and none is a commit: nothing can be applied
 * until the rest of the commit arrives, so the buffer must grow past its
 * budget (a commit is applied whole, C2). */
static int needs_commit(const client *c)
{
	size_t first, n_frames;
	uint64_t n_ops, n_to_commit;
	if (c->queued_size != c->local_size)
		return 0;
	client_contiguous(c, &first, &n_frames, &n_ops, &n_to_commit);
	return n_ops > 0 && n_to_commit == 0 && first + n_frames == c->n_frames;
}

static int submit(client *c, const range *r)
{
	char url[URL_MAX];
	uint64_t tag;

	for (tag = 0; tag < c->cap_in_flight && c->in_flight[tag].count != 0; tag++)
		;
	if (tag == c->cap_in_flight)
		return sl_error_set(SL_EINTERNAL, "no free request slot");
	url_for(c, url, sizeof(url), "ops?start=%llu&max=%llu&size=%llu%s",
	        (unsigned long long)r->start, (unsigned long long)r->count,
	        (unsigned long long)r->target.size, r->pinned ? "&pinned=1" : "");
	c->in_flight[tag] = *r;
	sl_log(SL_LOG_DEBUG, "requesting operations", "start=%llu count=%llu size=%llu",
	       (unsigned long long)r->start, (unsigned long long)r->count,
	       (unsigned long long)r->target.size);
	return sl_http_client_submit(c->http, "GET", url, NULL, NULL, 0, tag);
}

static size_t n_in_flight(const client *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->cap_in_flight; i++)
		n += c->in_flight[i].count != 0;
	return n;
}

/* Fill free request slots: due retries first, then new ranges. Verified
 * operations not yet in the store are bounded (a few batches per request
 * in flight: enough for ranges that arrive out of order and for the run
 * the apply thread writes while the next collects), so memory stays
 * bounded when one range lags or the store is slower than the network. */
static int issue(client *c)
{
	size_t budget = (size_t)c->o->max_outstanding * c->batch * 2 + BUFFER_MIN_OPS;
	uint64_t now = sl_clock_mono_ns();
	int rc;

	if (now < c->throttled_until_ns)
		return SL_OK;
	while (n_in_flight(c) < c->o->max_outstanding) {
		size_t due = c->n_retry;
		for (size_t i = 0; i < c->n_retry; i++)
			if (c->retry[i].ready_ns <= now &&
			    (due == c->n_retry || c->retry[i].start < c->retry[due].start))
				due = i;
		if (due < c->n_retry) {
			range r = c->retry[due];
			c->retry[due] = c->retry[--c->n_retry];
			if ((rc = submit(c, &r)) != SL_OK)
				return rc;
			continue;
		}
		if (c->next_start >= c->target.target.size ||
		    (frames_ops(c) >= budget && !needs_commit(c)))
			return SL_OK;
		{
			range r;
			uint64_t left = c->target.target.size - c->next_start;
			memset(&r, 0, sizeof(r));
			r.start = c->next_start;
			r.count = left < c->batch ? left : c->batch;
			r.target = c->target.target;
			if ((rc = submit(c, &r)) != SL_OK)
				return rc;
			c->next_start += r.count;
		}
	}
	return SL_OK;
}

/* ------------------------------------------------------------- results */

static int on_ops_result(client *c, uint64_t tag, sl_http_result *res)
{
	range r = c->in_flight[tag];
	sl_digest pinned[SL_MMR_MAX_PEAKS];
	size_t n_pinned = 0;
	frame *f = NULL;
	int rc;

	uint64_t wait;

	memset(&c->in_flight[tag], 0, sizeof(c->in_flight[tag]));
	sl_log(SL_LOG_DEBUG, "received operations", "start=%llu status=%ld bytes=%zu rc=%d",
	       (unsigned long long)r.start, res->status, res->body.len, res->rc);
	if (throttled(c, res, r.attempts, &wait)) {
		/* The server is asking this client, not this range, to slow
		 * down: no range goes out before the wait is over. */
		r.ready_ns = sl_clock_mono_ns() + wait * 1000000;
		if (r.ready_ns > c->throttled_until_ns)
			c->throttled_until_ns = r.ready_ns;
		return retry_push(c, &r);
	}
	if ((rc = result_status(res, "fetch operations")) != SL_OK) {
		if (res->rc == SL_OK && res->status == 410) {
			if (c->target.kind == SL_NS_MUTABLE) {
				c->pruned_past = 1;
				sl_log(SL_LOG_INFO,
				       "the server pruned operations this sync still needs; "
				       "starting over",
				       "ns=%s local=%s start=%llu", c->o->ns, c->apply_ns,
				       (unsigned long long)r.start);
				return SYNC_ERR_PRUNED;
			}
			return client_pruned_refused(c);
		}
		return range_failed(c, &r, sl_error_last()->message, 0);
	}
	if ((rc = client_verify_frame(&r, res, &f, pinned, &n_pinned)) != SL_OK)
		return rc == SL_ENOMEM ? rc : range_failed(c, &r, sl_error_last()->message, 1);
	sl_metric_add(c->m.fetched, f->ops.n);
	if (!c->local_exists && r.pinned) {
		/* The bootstrap frame at the floor: its proof fixed the pinned nodes. */
		if ((rc = sl_store_ns_create_at(c->o->store, c->apply_ns, c->target.kind, r.start,
		                                pinned, n_pinned)) != SL_OK) {
			client_frame_free(f);
			return rc;
		}
		c->local_exists = 1;
		c->local_size = c->queued_size = r.start;
	}
	if (f->ops.n == r.count && r.count == c->batch)
		batch_set(c, (uint64_t)c->batch * 2);
	if (f->ops.n < r.count) { /* the server's byte budget cut it short */
		range rest = r;
		batch_set(c, f->ops.n);
		rest.start += f->ops.n;
		rest.count -= f->ops.n;
		rest.attempts = 0;
		rest.pinned = 0;
		rest.ready_ns = 0;
		if ((rc = retry_push(c, &rest)) != SL_OK) {
			client_frame_free(f);
			return rc;
		}
	}
	if ((rc = client_frames_insert(c, f)) != SL_OK)
		client_frame_free(f);
	return rc;
}

static int on_target_result(client *c, sl_http_result *res)
{
	sl_signed_target t;
	char url[URL_MAX];
	int rc;

	uint64_t wait;

	c->target_in_flight = 0;
	c->next_poll_ns = sl_clock_mono_ns() + c->o->target_interval_ms * 1000000;
	if (throttled(c, res, 0, &wait)) {
		c->next_poll_ns = sl_clock_mono_ns() + wait * 1000000;
		return SL_OK;
	}
	if ((rc = parse_target(c, res, &t)) != SL_OK) {
		if (rc == SL_EVERIFY)
			return rc;
		sl_log(SL_LOG_INFO, "could not poll the target", "reason=\"%s\"",
		       sl_error_last()->message);
		return SL_OK;
	}
	if (t.target.size == c->target.target.size) {
		if (!sl_digest_eq(&t.target.root, &c->target.target.root))
			return sl_error_set(
			        SL_EVERIFY,
			        "the server announced another root for %llu operations: "
			        "it rewrote its history",
			        (unsigned long long)t.target.size);
		return SL_OK;
	}
	if (t.target.size < c->target.target.size)
		return sl_error_set(SL_EVERIFY,
		                    "the server went back from %llu to %llu operations: it rewrote "
		                    "its history",
		                    (unsigned long long)c->target.target.size,
		                    (unsigned long long)t.target.size);
	if (c->has_pending)
		return SL_OK;
	c->pending = t;
	c->has_pending = 1;
	url_for(c, url, sizeof(url), "consistency?from=%llu&to=%llu",
	        (unsigned long long)c->target.target.size, (unsigned long long)t.target.size);
	return sl_http_client_submit(c->http, "GET", url, NULL, NULL, 0, TAG_CONSISTENCY);
}

static int on_consistency_result(client *c, sl_http_result *res)
{
	uint64_t wait;
	int rc;
	c->has_pending = 0;
	if (throttled(c, res, 0, &wait)) { /* asked again with the next poll */
		c->next_poll_ns = sl_clock_mono_ns() + wait * 1000000;
		return SL_OK;
	}
	rc = check_consistency(c->target.target.size, &c->target.target.root, &c->pending, res);
	if (rc == SL_EVERIFY)
		return rc;
	if (rc != SL_OK) {
		sl_log(SL_LOG_INFO, "could not check the new target; will poll again",
		       "reason=\"%s\"", sl_error_last()->message);
		return SL_OK;
	}
	sl_log(SL_LOG_INFO, "moving to a new target", "ns=%s size=%llu previous=%llu", c->o->ns,
	       (unsigned long long)c->pending.target.size,
	       (unsigned long long)c->target.target.size);
	c->target = c->pending;
	sl_metric_set(c->m.target_size, (double)c->target.target.size);
	return SL_OK;
}

/* ----------------------------------------------------------------- sync */

static void reset_attempt(client *c)
{
	/* First the apply thread: what it holds borrows from the frames. */
	sync_applier_stop(c->applier);
	c->applier = NULL;
	for (size_t i = 0; i < c->n_frames; i++)
		client_frame_free(c->frames[i]);
	c->n_frames = 0;
	c->n_retry = 0;
	c->has_pending = 0;
	c->target_in_flight = 0;
	memset(c->in_flight, 0, c->cap_in_flight * sizeof(*c->in_flight));
	/* Requests still running belong to the old attempt: drop them. */
	sl_http_client_free(c->http);
	c->http = NULL;
}

static int open_http(client *c)
{
	sl_http_client_options ho;
	sl_http_client_options_init(&ho);
	ho.max_in_flight = c->o->max_outstanding + 2; /* + target poll and its proof */
	ho.request_timeout_ms = c->o->request_timeout_ms;
	ho.connect_timeout_ms = c->o->request_timeout_ms < 5000 ? c->o->request_timeout_ms : 5000;
	ho.max_response = SL_SYNC_FRAME_MAX; /* a frame may carry one value of SL_VALUE_MAX */
	ho.local_addr = c->o->local_addr;
	return sl_http_client_new(&c->http, &ho);
}

int client_check_kind(const client *c, const sl_ns_info *info)
{
	if (info->kind != c->target.kind)
		return sl_error_set(SL_ECONFLICT, "local namespace '%s' is %s, the server's is %s",
		                    c->local_ns, sl_ns_kind_name(info->kind),
		                    sl_ns_kind_name(c->target.kind));
	return SL_OK;
}

/* Where the namespace this sync writes stands, and proof that the
 * target extends it; SYNC_ERR_PRUNED if the server pruned below it. */
int client_check_local(client *c)
{
	sl_ns_info info;
	int rc = sl_store_ns_head(c->o->store, c->apply_ns, &info);

	if (rc == SL_ENOTFOUND) {
		c->local_exists = 0;
		c->local_size = 0;
		return SL_OK;
	}
	if (rc != SL_OK)
		return rc;
	if ((rc = client_check_kind(c, &info)) != SL_OK)
		return rc;
	c->local_exists = 1;
	c->local_size = info.target.size;
	if (info.target.size > c->target.target.size)
		return sl_error_set(
		        SL_EVERIFY,
		        "the server holds %llu operations, fewer than the %llu verified "
		        "here: it rewrote its history",
		        (unsigned long long)c->target.target.size,
		        (unsigned long long)info.target.size);
	if (info.target.size == c->target.target.size) {
		if (!sl_digest_eq(&info.target.root, &c->target.target.root))
			return sl_error_set(SL_EVERIFY,
			                    "the server's root at %llu operations differs from the "
			                    "one verified here: it rewrote its history",
			                    (unsigned long long)info.target.size);
		return SL_OK;
	}
	if (info.target.size == 0)
		return SL_OK;
	return fetch_consistency(c, info.target.size, &info.target.root, &c->target);
}

/* One sync: from the target to root match. SL_OK when complete (or
 * stopped), SYNC_ERR_RESTART or SYNC_ERR_PRUNED to start over, or an
 * error. */
static int sync_once(client *c)
{
	uint64_t started = sl_clock_mono_ns(), first_size;
	sl_ns_info info;
	int rc;

	if ((rc = open_http(c)) != SL_OK)
		return rc;
	if ((rc = fetch_target(c, &c->target)) != SL_OK)
		return stopping(c) ? SL_OK : rc;
	sl_metric_set(c->m.target_size, (double)c->target.target.size);
	if ((rc = client_choose_local(c)) != SL_OK)
		return stopping(c) ? SL_OK : rc;
	if (c->resyncing && !c->local_exists)
		sl_log(SL_LOG_WARN,
		       "the server pruned operations this replica still needs; rebuilding it from "
		       "the server's floor beside the local copy, which stays readable until then",
		       "ns=%s side=%s floor=%llu size=%llu", c->local_ns, c->side_ns,
		       (unsigned long long)c->target.target.floor,
		       (unsigned long long)c->target.target.size);
	first_size = c->local_size;
	if (!c->local_exists) {
		uint64_t start = c->target.kind == SL_NS_MUTABLE ? c->target.target.floor : 0;
		if (start == 0 || c->target.target.size == 0) {
			if ((rc = sl_store_ns_create_at(c->o->store, c->apply_ns, c->target.kind, 0,
			                                NULL, 0)) != SL_OK)
				return rc;
			c->local_exists = 1;
		} else {
			range r;
			memset(&r, 0, sizeof(r));
			r.start = start;
			r.count = c->batch;
			if (r.count > c->target.target.size - start)
				r.count = c->target.target.size - start;
			r.target = c->target.target;
			r.pinned = 1;
			if ((rc = retry_push(c, &r)) != SL_OK)
				return rc;
			c->next_start = start + r.count;
			first_size = start;
		}
	}
	if (c->local_exists)
		c->next_start = c->queued_size = c->local_size;
	sl_log(SL_LOG_INFO, "syncing", "ns=%s local_size=%llu target_size=%llu", c->o->ns,
	       (unsigned long long)c->local_size, (unsigned long long)c->target.target.size);
	c->next_poll_ns = sl_clock_mono_ns() + c->o->target_interval_ms * 1000000;

	while (!(c->local_exists && c->local_size == c->target.target.size)) {
		sl_http_result res;
		uint64_t now;

		if (stopping(c))
			return client_apply_all(c);
		if ((rc = client_collect_applied(c)) != SL_OK || (rc = issue(c)) != SL_OK)
			return rc;
		now = sl_clock_mono_ns();
		if (!c->target_in_flight && !c->has_pending && now >= c->next_poll_ns) {
			char url[URL_MAX];
			url_for(c, url, sizeof(url), "target");
			if ((rc = sl_http_client_submit(c->http, "GET", url, NULL, NULL, 0,
			                                TAG_TARGET)) != SL_OK)
				return rc;
			c->target_in_flight = 1;
		}
		sl_http_result_init(&res);
		/* With nothing in flight (ranges waiting out their backoff, or
		 * all fetched and being applied), poll returns at once: wait a
		 * little instead of spinning. */
		if (sl_http_client_pending(c->http) == 0) {
			if (c->applier)
				sync_applier_wait(c->applier, 5);
			else
				pause_ms(c, 5);
		}
		rc = sl_http_client_poll(c->http, 20, &res);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (res.tag == TAG_TARGET)
				rc = on_target_result(c, &res);
			else if (res.tag == TAG_CONSISTENCY)
				rc = on_consistency_result(c, &res);
			else if (res.tag < c->cap_in_flight && c->in_flight[res.tag].count)
				rc = on_ops_result(c, res.tag, &res);
			else
				rc = SL_OK;
			sl_http_result_free(&res);
			if (rc != SL_OK)
				return rc;
		}
		if ((rc = client_hand_over(c, 0)) != SL_OK)
			return rc;
	}
	/* The store is this thread's again. */
	sync_applier_stop(c->applier);
	c->applier = NULL;
	if ((rc = sl_store_ns_head(c->o->store, c->apply_ns, &info)) != SL_OK)
		return rc;
	if (!sl_digest_eq(&info.target.root, &c->target.target.root))
		return sl_error_set(SL_EINTERNAL, "local root differs from the target after sync");
	if (c->resyncing && (rc = client_replace_local(c, &info)) != SL_OK)
		return rc;
	{
		double seconds = (double)(sl_clock_mono_ns() - started) / 1e9;
		sl_digest_hex root = sl_digest_to_hex(&info.target.root);
		uint64_t ops = info.target.size - first_size;
		sl_metric_set(c->m.last_duration, seconds);
		sl_metric_set(c->m.local_size, (double)info.target.size);
		sl_metric_add(c->m.syncs, 1);
		sl_log(SL_LOG_INFO, "root match",
		       "ns=%s size=%llu root=%s ops_fetched=%llu seconds=%.3f", c->o->ns,
		       (unsigned long long)info.target.size, root.s, (unsigned long long)ops,
		       seconds);
	}
	return SL_OK;
}

static int register_metrics(client *c)
{
	sl_metrics *m = c->o->metrics;
	if (!m)
		return SL_OK;
	c->m.fetched = sl_metrics_counter(m, "sluice_client_ops_fetched_total", NULL,
	                                  "operations received in verified frames");
	c->m.applied = sl_metrics_counter(m, "sluice_client_ops_applied_total", NULL,
	                                  "operations applied to the local store");
	c->m.rejected = sl_metrics_counter(m, "sluice_client_batches_rejected_total", NULL,
	                                   "frames that failed decoding or verification");
	c->m.retries = sl_metrics_counter(m, "sluice_client_retries_total", NULL,
	                                  "requests made again after a failure");
	c->m.refused = sl_metrics_counter(m, "sluice_client_targets_refused_total", NULL,
	                                  "targets refused: bad signature or rewritten history");
	c->m.syncs = sl_metrics_counter(m, "sluice_client_syncs_total", NULL,
	                                "syncs completed with a root match");
	c->m.throttled = sl_metrics_counter(m, "sluice_client_throttled_total", NULL,
	                                    "answers 429: the server asked to slow down");
	c->m.target_size = sl_metrics_gauge(m, "sluice_client_target_size", NULL,
	                                    "operations in the adopted target");
	c->m.local_size = sl_metrics_gauge(m, "sluice_client_local_size", NULL,
	                                   "operations in the local namespace");
	c->m.last_duration = sl_metrics_gauge(m, "sluice_client_last_sync_seconds", NULL,
	                                      "duration of the last completed sync");
	c->m.batch = sl_metrics_gauge(m, "sluice_client_batch_size", NULL,
	                              "operations asked for per request, now");
	c->m.resyncs = sl_metrics_counter(m, "sluice_client_resyncs_total", NULL,
	                                  "replicas rebuilt from the server's floor after it "
	                                  "pruned operations they still needed");
	if (!c->m.fetched || !c->m.applied || !c->m.rejected || !c->m.retries || !c->m.refused ||
	    !c->m.syncs || !c->m.target_size || !c->m.local_size || !c->m.last_duration ||
	    !c->m.throttled || !c->m.batch || !c->m.resyncs)
		return SL_ENOMEM;
	return SL_OK;
}

int sl_sync_client_run(const sl_sync_client_options *o)
{
	client c;
	unsigned failures = 0;
	int rc = SL_OK;

	memset(&c, 0, sizeof(c));
	c.o = o;
	c.local_ns = o->local_ns ? o->local_ns : o->ns;
	c.apply_ns = c.local_ns;
	c.rng = sl_clock_mono_ns() | 1;
	if (!o->server || !o->ns || !o->store || o->max_outstanding == 0)
		return sl_error_set(SL_EINVAL, "sync needs a server, a namespace, a store and at "
		                               "least one request in flight");
	if (o->batch_size > SL_WIRE_MAX_OPS)
		return sl_error_set(SL_EINVAL, "a batch holds at most %d operations",
		                    SL_WIRE_MAX_OPS);
	if (sl_ns_name_validate(o->ns) != SL_OK || sl_ns_name_validate(c.local_ns) != SL_OK)
		return sl_error_last()->code;
	client_resync_name(c.side_ns, c.local_ns);
	if ((size_t)snprintf(c.base, sizeof(c.base), "%s%s",
	                     strncmp(o->server, "http://", 7) == 0 ? "" : "http://",
	                     o->server) >= sizeof(c.base) - 64)
		return sl_error_set(SL_EINVAL, "server address too long");
	if ((rc = register_metrics(&c)) != SL_OK)
		return rc;
	c.batch = o->batch_size ? o->batch_size : BATCH_AUTO_FIRST;
	sl_metric_set(c.m.batch, (double)c.batch);
	c.cap_in_flight = o->max_outstanding;
	if (!(c.in_flight = sl_calloc(c.cap_in_flight, sizeof(*c.in_flight))))
		return SL_ENOMEM;

	while (!stopping(&c)) {
		rc = sync_once(&c);
		reset_attempt(&c);
		if (rc == SL_OK) {
			failures = 0;
			if (o->once || stopping(&c))
				break;
			pause_ms(&c, o->sync_interval_ms);
			continue;
		}
		if (rc == SL_EVERIFY) {
			sl_metric_add(c.m.refused, 1);
			sl_log(SL_LOG_ERROR, "refusing the server", "reason=\"%s\"",
			       sl_error_last()->message);
			if (o->once)
				break;
			pause_ms(&c, o->sync_interval_ms);
			continue;
		}
		if (rc != SYNC_ERR_RESTART && rc != SYNC_ERR_PRUNED && rc != SL_EIO &&
		    rc != SL_ETIMEOUT && rc != SL_EINVAL && rc != SL_ECORRUPT)
			break; /* the local store failed: nothing to retry */
		{
			uint64_t wait = backoff_ms(&c, failures++);
			sl_metric_add(c.m.retries, 1);
			sl_log(SL_LOG_WARN, "sync attempt failed; starting over",
			       "reason=\"%s\" in_ms=%llu",
			       rc == SYNC_ERR_RESTART  ? "a range kept failing"
			       : rc == SYNC_ERR_PRUNED ? "the server pruned operations it needs"
			                               : sl_error_last()->message,
			       (unsigned long long)wait);
			pause_ms(&c, wait);
			rc = SL_OK;
		}
	}
	sl_free(c.in_flight);
	sl_free(c.retry);
	sl_free(c.frames);
	return rc;
}
