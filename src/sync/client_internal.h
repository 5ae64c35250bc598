/*
 * Private to the sync client: the state one client keeps (client.c runs
 * it, client_frames.c holds its verified frames and hands them to the
 * apply thread, client_resync.c chooses the namespace a sync writes and
 * swaps a rebuilt replica in). The invariants C1-C5 are at the top of
 * client.c.
 */
#ifndef SLUICE_SYNC_CLIENT_INTERNAL_H
#define SLUICE_SYNC_CLIENT_INTERNAL_H

#include "sluice/sync.h"
#include "sync/client_apply.h"

#define URL_MAX          512
#define RANGE_ATTEMPTS   8     /* failures of one range before starting over */
#define BUFFER_MIN_OPS   32768 /* verified ops that may wait, beyond the ranges */
#define BATCH_AUTO_FIRST 256   /* adaptive batch: the first request's size, */
#define BATCH_AUTO_MIN   16    /* the least it shrinks to, */
#define BATCH_AUTO_MAX   4096  /* and the most it grows to */
#define TAG_TARGET       (UINT64_MAX - 1)
#define TAG_CONSISTENCY  (UINT64_MAX - 2)
#define SYNC_ERR_RESTART 1 /* positive: start the sync over (not an error) */
#define SYNC_ERR_PRUNED  2 /* the server pruned what the namespace written needs */

/* A range of operations to fetch, against one target. */
typedef struct range {
	uint64_t start, count;
	sl_target target; /* the proof is requested and checked against this */
	int pinned;       /* ask for the pinned nodes (bootstrap at the floor) */
	unsigned attempts;
	uint64_t ready_ns; /* not before this time (backoff) */
} range;

/* A verified frame waiting to be applied; its elements borrow from body. */
typedef struct frame {
	sl_buf body;
	sl_wire_ops ops;
	size_t queued;     /* ops of this frame handed to the apply thread */
	size_t commit_end; /* ops up to and including its last commit; 0: none */
} frame;

typedef struct metrics {
	sl_metric *fetched, *applied, *rejected, *retries, *target_size, *local_size,
	        *last_duration, *syncs, *refused, *throttled, *batch, *resyncs;
} metrics;

typedef struct client {
	const sl_sync_client_options *o;
	const char *local_ns;
	char side_ns[SL_NS_NAME_MAX + 1]; /* where a replica is rebuilt (resync_name) */
	const char *apply_ns;             /* the one this sync writes: local_ns or side_ns */
	int resyncing;                    /* apply_ns is side_ns */
	int pruned_past;                  /* a 410: the server pruned what apply_ns needs */
	char base[URL_MAX];
	sl_http_client *http;
	metrics m;
	uint64_t rng;

	/* one sync */
	int told_throttled;          /* a 429 was logged */
	uint64_t throttled_until_ns; /* after a 429, no new range before this */
	sl_signed_target target;     /* adopted */
	sl_signed_target pending;    /* awaiting its consistency proof */
	int has_pending, target_in_flight;
	uint64_t next_poll_ns;
	uint64_t local_size; /* in the store (the apply thread's last run) */
	int local_exists;
	uint64_t queued_size;  /* handed to the apply thread, >= local_size */
	sync_applier *applier; /* while running, the store is its alone */
	uint32_t batch;        /* operations per request, now */
	uint64_t next_start;   /* first location not yet requested */
	range *in_flight;      /* indexed by tag */
	size_t cap_in_flight;
	range *retry;
	size_t n_retry, cap_retry;
	frame **frames; /* sorted by start */
	size_t n_frames, cap_frames;
} client;

/* --- client.c */
/* Verified operations not yet handed over that are contiguous from what
 * was, the frames holding them, and how many end at their last commit. */
void client_contiguous(const client *c, size_t *first, size_t *n_frames, uint64_t *n_ops,
                       uint64_t *n_to_commit);
/* Where the namespace this sync writes stands, and proof that the target
 * extends it; SYNC_ERR_PRUNED if the server pruned below it. */
int client_check_local(client *c);
int client_check_kind(const client *c, const sl_ns_info *info);
/* The error for a 410 that a resync cannot answer (an immutable namespace). */
int client_pruned_refused(const client *c);

/* --- client_frames.c */
void client_frame_free(frame *f); /* NULL ok */
/* Decode and verify a frame for range r: SL_OK with *out, or the reason. */
int client_verify_frame(const range *r, sl_http_result *res, frame **out,
                        sl_digest pinned[SL_MMR_MAX_PEAKS], size_t *n_pinned);
int client_frames_insert(client *c, frame *f);
/* What the apply thread has written: the local size moves, applied frames go. */
int client_collect_applied(client *c);
/* Hand contiguous verified operations, up to their last commit, to the
 * apply thread; flush: apply them without waiting for more. */
int client_hand_over(client *c, int flush);
/* Everything verified to the store, and wait for it. */
int client_apply_all(client *c);

/* --- client_resync.c */
void client_resync_name(char out[SL_NS_NAME_MAX + 1], const char *name);
/* Which namespace this sync writes (the local one or the side copy). */
int client_choose_local(client *c);
/* After a resync's root match: the side copy takes the local name (C5). */
int client_replace_local(client *c, const sl_ns_info *side);

#endif
