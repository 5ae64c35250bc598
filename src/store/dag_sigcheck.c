/*
 * Checking the signatures of entries received in a frame on several
 * threads at once (dag_signatures_check in dag_internal.h).
 *
 * An Ed25519 verification costs tens of microseconds, more than all the
 * other checks of an entry and its storing together, so a frame is split
 * into one contiguous share per thread. Each thread only decodes: it reads
 * its own entries and writes its own stretch of ok[], touching no store
 * and no shared state. A failed entry is left at 0 and checked again in
 * order by dag_offer, which reports why. With one processor, or a frame
 * too small to be worth a thread, it runs on the caller's.
 */
#include "store/dag_internal.h"

#include <pthread.h>
#include <unistd.h>

#define MAX_THREADS      8
#define ENTRIES_A_THREAD 64 /* fewer: not worth starting a thread */

typedef struct share {
	const sl_bytes *entries;
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
		if (sh->ok[i])
			sl_dag_entry_free(&e);
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

int dag_signatures_check(const sl_bytes *entries, size_t n, uint8_t *ok)
{
	pthread_t threads[MAX_THREADS];
	share shares[MAX_THREADS];
	size_t k = thread_count(n), started = 0;

	for (size_t j = 0; j < k; j++) {
		shares[j] = (share){entries, ok, n * j / k, n * (j + 1) / k};
		/* Share 0 runs here; so does any share whose thread cannot start. */
		if (j > 0 && pthread_create(&threads[started], NULL, check_share, &shares[j]) == 0)
			started++;
		else if (j > 0)
			check_share(&shares[j]);
	}
	check_share(&shares[0]);
	for (size_t j = 0; j < started; j++)
		pthread_join(threads[j], NULL);
	return SL_OK;
}
