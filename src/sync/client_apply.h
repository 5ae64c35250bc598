/*
 * Private to the sync client (client.c): the thread that appends verified
 * operations to the local store while the client's own thread goes on
 * fetching and verifying (client_apply.c).
 */
#ifndef SLUICE_SYNC_CLIENT_APPLY_H
#define SLUICE_SYNC_CLIENT_APPLY_H

#include "sluice/store.h"

typedef struct sync_applier sync_applier;

/* Start the thread for namespace ns of store, whose size is `size`. From
 * here until sync_applier_stop returns, only that thread uses the store. */
int sync_applier_start(sync_applier **out, sl_store *store, const char *ns, uint64_t size);

/* Hand over the next n verified operations (they continue the operations
 * handed over before; the last of them is a commit). The arrays are
 * copied; the bytes they point to are borrowed and must stay valid until
 * sync_applier_status reports a size at or past their end. With flush the
 * thread applies what it holds without waiting for more. */
int sync_applier_add(sync_applier *a, const sl_bytes *elements, const sl_bytes *values, size_t n,
                     int flush);

/* The namespace's size after the runs the thread has committed; SL_OK,
 * or the error that stopped the thread (recorded on the calling thread;
 * nothing is applied after it). */
int sync_applier_status(sync_applier *a, uint64_t *size);

/* Wait up to timeout_ms for a run to end. */
void sync_applier_wait(sync_applier *a, unsigned timeout_ms);

/* Apply everything handed over and wait for it; as sync_applier_status. */
int sync_applier_finish(sync_applier *a, uint64_t *size);

/* Let the run being written end (never cut in the middle: a run is one
 * store transaction), drop the operations not yet begun, and end the
 * thread. NULL ok. */
void sync_applier_stop(sync_applier *a);

#endif
