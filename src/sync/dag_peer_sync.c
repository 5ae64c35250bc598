/*
 * Syncing dag namespaces with their peers (the dag_peers table):
 *
 *   sl_dag_sync_peer     one peer, once: a full sync (sl_dag_sync), its
 *                        outcome recorded on the peer's row (a success
 *                        moves its outbox mark, a failure counts and says
 *                        why, and sets when to try again);
 *   sl_dag_syncer_*      the background sync of `sluice serve`: a thread
 *                        that pushes a peer's outbox soon after entries are
 *                        stored (every poll, default 200 ms), runs a full
 *                        sync with each peer every interval (default 60 s),
 *                        and after a failure waits a full-jitter backoff
 *                        (random in [0, min(300 s, 1 s x 2^failures))),
 *                        never giving up and never dropping what is owed.
 *
 * What is owed to a peer is the entries stored since its outbox mark
 * (pushed_seq): in the store, written in the transaction that stores
 * them, so a restart loses nothing; the mark moves only after the peer
 * took them. Entries that came from one peer are owed to the others the
 * same way, so they are relayed: a chain A-B-C converges.
 */
#include "sluice/dag_sync.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t backoff_ms(unsigned failures, uint64_t max_ms, uint64_t *rng)
{
	uint64_t d = 1000;
	for (unsigned i = 0; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	return sl_xorshift64(rng) % d; /* full jitter */
}

static int transport_for(const sl_dag_peer *p, const sl_digest *ns_id, const sl_node_key *key,
                         sl_dag_http **out)
{
	sl_http_client_options ho;
	sl_http_client_options_init(&ho);
	ho.request_timeout_ms = 120000;      /* a page of 16 MiB on a slow link */
	ho.max_response = SL_SYNC_FRAME_MAX; /* a page: its budget and one value */
	return sl_dag_http_new(out, p->addr, p->node, ns_id, key, &ho);
}

/* Record a try on the peer's row: the outbox mark moves on to upto
 * either way; a failure is counted, with its error, and the next try is
 * a full-jitter backoff away. */
static int record(sl_store *s, const sl_dag_peer *p, int ok, uint64_t upto, const char *error,
                  uint64_t next_ok_ms, uint64_t max_backoff_ms, uint64_t *rng)
{
	uint64_t now = sl_clock_wall_ms();
	uint64_t next = ok ? next_ok_ms : now + backoff_ms(p->failures + 1, max_backoff_ms, rng);
	return sl_dag_peer_record(s, p->ns, p->addr, ok, upto, error, now, next);
}

int sl_dag_sync_peer(sl_store *s, const sl_dag_peer *p, const sl_node_key *key,
                     sl_dag_sync_report *report)
{
	uint64_t rng = sl_clock_mono_ns() | 1;
	sl_dag_info info;
	sl_dag_http *h = NULL;
	sl_dag_transport t;
	int rc;

	memset(report, 0, sizeof(*report));
	if ((rc = sl_dag_info_get(s, p->ns, &info)) != SL_OK ||
	    (rc = transport_for(p, &info.ns_id, key, &h)) != SL_OK)
		return rc;
	t = sl_dag_http_transport(h);
	rc = sl_dag_sync(s, p->ns, &t, report);
	sl_dag_http_free(h);
	record(s, p, rc == SL_OK && report->equal, report->upto, report->error,
	       sl_clock_wall_ms() + SL_DAG_INTERVAL_MS, SL_DAG_MAX_BACKOFF_MS, &rng);
	return rc;
}

/* ------------------------------------------------------------ background */

struct sl_dag_syncer {
	sl_dag_syncer_options o;
	char *dir;
	sl_node_key key;
	sl_store *s;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	atomic_int stop; /* read between peers without the lock */
	int started;
	uint64_t rng;
	sl_metric *syncs, *failures, *pushed, *pulled;
};

void sl_dag_syncer_options_init(sl_dag_syncer_options *o)
{
	memset(o, 0, sizeof(*o));
	o->interval_ms = SL_DAG_INTERVAL_MS;
	o->poll_ms = 200;
	o->max_backoff_ms = SL_DAG_MAX_BACKOFF_MS;
}

/* One peer, if its time has come: a full sync when it is due (first,
 * every interval, or to retry after a failure), else its outbox when
 * entries are owed to it. */
static void serve_peer(sl_dag_syncer *y, const sl_dag_peer *p, uint64_t now)
{
	sl_dag_sync_report r;
	sl_dag_info info;
	sl_dag_http *h = NULL;
	sl_dag_transport t;
	int full = now >= p->next_try_ms;
	uint64_t upto = p->pushed_seq;
	int rc;

	if (!full && !(p->backlog > 0 && p->failures == 0))
		return;
	memset(&r, 0, sizeof(r));
	if ((rc = sl_dag_info_get(y->s, p->ns, &info)) != SL_OK ||
	    (rc = transport_for(p, &info.ns_id, &y->key, &h)) != SL_OK) {
		snprintf(r.error, sizeof(r.error), "%.255s", sl_error_last()->message);
	} else {
		t = sl_dag_http_transport(h);
		if (full) {
			rc = sl_dag_sync(y->s, p->ns, &t, &r);
			rc = rc == SL_OK && !r.equal ? SL_EIO : rc;
			upto = r.upto;
		} else {
			rc = sl_dag_push_outbox(y->s, p->ns, &t, p->pushed_seq, &upto, &r);
		}
	}
	sl_dag_http_free(h);
	sl_metric_add(y->syncs, 1);
	sl_metric_add(y->pushed, r.pushed);
	sl_metric_add(y->pulled, r.pulled);
	if (rc != SL_OK) {
		sl_metric_add(y->failures, 1);
		if (p->failures == 0)
			sl_log(SL_LOG_WARN, "a dag peer sync failed; retrying with backoff",
			       "ns=%s peer=%s error=\"%s\"", p->ns, p->addr, r.error);
	} else if (p->failures > 0) {
		sl_log(SL_LOG_INFO, "a dag peer sync works again", "ns=%s peer=%s failures=%u",
		       p->ns, p->addr, p->failures);
	}
	record(y->s, p, rc == SL_OK, upto, r.error, full ? now + y->o.interval_ms : p->next_try_ms,
	       y->o.max_backoff_ms, &y->rng);
}

static void *syncer_main(void *arg)
{
	sl_dag_syncer *y = arg;
	for (;;) {
		sl_dag_peer *peers = NULL;
		size_t n = 0;

		pthread_mutex_lock(&y->mu);
		if (!y->stop) {
			sl_cond_wait_ms(&y->wake, &y->mu, y->o.poll_ms);
		}
		if (y->stop) {
			pthread_mutex_unlock(&y->mu);
			break;
		}
		pthread_mutex_unlock(&y->mu);
		if (sl_dag_peer_list(y->s, NULL, &peers, &n) != SL_OK) {
			sl_log(SL_LOG_WARN, "cannot list dag peers", "error=\"%s\"",
			       sl_error_last()->message);
			continue;
		}
		for (size_t i = 0; i < n && !y->stop; i++)
			serve_peer(y, &peers[i], sl_clock_wall_ms());
		sl_free(peers);
	}
	return NULL;
}

int sl_dag_syncer_start(sl_dag_syncer **out, const sl_dag_syncer_options *o)
{
	sl_store_options so;
	sl_dag_syncer *y;
	int rc;

	if (!o->store_dir || !o->key)
		return sl_error_set(SL_EINVAL, "the dag syncer needs a store and a node key");
	if (!(y = sl_calloc(1, sizeof(*y))))
		return SL_ENOMEM;
	y->o = *o;
	y->key = *o->key;
	y->rng = sl_clock_mono_ns() | 1;
	pthread_mutex_init(&y->mu, NULL);
	pthread_cond_init(&y->wake, NULL);
	sl_store_options_init(&so);
	if (!(y->dir = sl_strdup(o->store_dir))) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if ((rc = sl_store_open(&y->s, y->dir, &so)) != SL_OK)
		goto fail;
	if (o->metrics) {
		y->syncs = sl_metrics_counter(o->metrics, "sluice_dag_peer_syncs_total", NULL,
		                              "syncs and outbox pushes with dag peers");
		y->failures = sl_metrics_counter(o->metrics, "sluice_dag_peer_failures_total", NULL,
		                                 "syncs with dag peers that failed (retried)");
		y->pushed = sl_metrics_counter(o->metrics, "sluice_dag_peer_pushed_total", NULL,
		                               "entries dag peers took from this node");
		y->pulled = sl_metrics_counter(o->metrics, "sluice_dag_peer_pulled_total", NULL,
		                               "entries this node took from dag peers");
	}
	if (pthread_create(&y->thread, NULL, syncer_main, y) != 0) {
		rc = sl_error_set(SL_EINTERNAL, "cannot start the dag sync thread");
		goto fail;
	}
	y->started = 1;
	*out = y;
	return SL_OK;
fail:
	sl_dag_syncer_stop(y);
	return rc;
}

void sl_dag_syncer_stop(sl_dag_syncer *y)
{
	if (!y)
		return;
	if (y->started) {
		pthread_mutex_lock(&y->mu);
		y->stop = 1;
		pthread_cond_signal(&y->wake);
		pthread_mutex_unlock(&y->mu);
		pthread_join(y->thread, NULL);
	}
	sl_store_free(y->s);
	sl_free(y->dir);
	pthread_cond_destroy(&y->wake);
	pthread_mutex_destroy(&y->mu);
	memset(&y->key, 0, sizeof(y->key));
	sl_free(y);
}
