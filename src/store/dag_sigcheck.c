/*
 * Checking the signatures of entries on several threads at once, ahead of
 * storing them (sl_dag_verify_signatures in include/sluice/dag.h).
 *
 * An Ed25519 verification costs tens of microseconds, more than all the
 * other checks of an entry and its storing together, so a frame is split
 * into one contiguous share per thread. Each thread only decodes: it reads
 * its own entries and writes its own stretch of ids[] and ok[], touching
 * no store and no shared state. With one processor, or a frame too small
 * to be worth a thread, it runs on the caller's.
 *
 * What comes out is the set of the ids of the entries that passed. An id
 * is the SHA-256 of the whole encoding, signature included, so the set
 * vouches for exactly those bytes: dag_offer decodes an entry, and skips
 * the signature check only when the entry's id is in the set. An entry
 * that failed is not in it and is checked again in order, which reports
 * why.
 */
#include "store/dag_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS      8
#define ENTRIES_A_THREAD 64 /* fewer: not worth starting a thread */

struct sl_dag_verified {
	dag_ids ids; /* sorted */
};

typedef struct share {
	const sl_bytes *entries;
	sl_digest *ids;
	uint8_t *ok;
	size_t from, to;
} share;

static void *check_share(void *arg)
{
	share *sh = arg;
	for (size_t i = sh->from; i < sh->to; i++) {
		sl_dag_entry e;
		sh->ok[i] =
		        sl_dag_entry_decode(&e, sh->entries[i].data, sh->entries[i].len) == SL_OK;
		if (sh->ok[i]) {
			sh->ids[i] = e.id;
			sl_dag_entry_free(&e);
		}
	}
	return NULL;
}

static size_t thread_count(size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t k = cpus > 0 ? (size_t)cpus : 1;
	if (k > MAX_THREADS)
		k = MAX_THREADS;
	if (k > n / ENTRIES_A_THREAD)
		k = n / ENTRIES_A_THREAD;
	return k ? k : 1;
}

int sl_dag_verify_signatures(const sl_bytes *entries, size_t n, sl_dag_verified **out)
{
	pthread_t threads[MAX_THREADS];
	share shares[MAX_THREADS];
	size_t k = thread_count(n), started = 0;
	sl_dag_verified *v = sl_calloc(1, sizeof(*v));
	sl_digest *ids = sl_malloc((n ? n : 1) * sizeof(*ids));
	uint8_t *ok = sl_calloc(n ? n : 1, 1);
	int rc = SL_OK;

	*out = NULL;
	if (!v || !ids || !ok) {
		rc = SL_ENOMEM;
		goto out;
	}
	for (size_t j = 0; j < k; j++) {
		shares[j] = (share){entries, ids, ok, n * j / k, n * (j + 1) / k};
		/* Share 0 runs here; so does any share whose thread cannot start. */
		if (j > 0 && pthread_create(&threads[started], NULL, check_share, &shares[j]) == 0)
			started++;
		else if (j > 0)
			check_share(&shares[j]);
	}
	check_share(&shares[0]);
	for (size_t j = 0; j < started; j++)
		pthread_join(threads[j], NULL);
	for (size_t i = 0; i < n && rc == SL_OK; i++)
		if (ok[i])
			rc = dag_ids_push(&v->ids, &ids[i]);
	if (rc == SL_OK) {
		dag_ids_sort_unique(&v->ids);
		*out = v;
		v = NULL;
	}
out:
	sl_dag_verified_free(v);
	sl_free(ids);
	sl_free(ok);
	return rc;
}

void sl_dag_verified_free(sl_dag_verified *v)
{
	if (!v)
		return;
	sl_free(v->ids.ids);
	sl_free(v);
}

int dag_verified_has(const sl_dag_verified *v, const sl_digest *id)
{
	return v && dag_ids_has(&v->ids, id);
}
