/*
 * The sync client's verified frames (client.c): decoded and checked
 * against the target they were requested for, kept in location order
 * until the apply thread (client_apply.c) has written them, and handed to
 * it in runs that end at a commit (C2).
 */
#include "sync/client_internal.h"

#include <string.h>

void client_frame_free(frame *f)
{
	if (!f)
		return;
	sl_wire_ops_free(&f->ops);
	sl_buf_free(&f->body);
	sl_free(f);
}

/* Decode and verify a frame for range r. SL_OK with *out, or an error
 * saying why it was rejected. */
int client_verify_frame(const range *r, sl_http_result *res, frame **out,
                        sl_digest pinned[SL_MMR_MAX_PEAKS], size_t *n_pinned)
{
	frame *f;
	int rc;

	if (!(f = sl_calloc(1, sizeof(*f))))
		return SL_ENOMEM;
	f->body = res->body; /* take the body: the ops borrow from it */
	sl_buf_init(&res->body, 0);
	if ((rc = sl_wire_ops_decode(&f->ops, f->body.data, f->body.len)) != SL_OK ||
	    (rc = sl_sync_check_ops(&f->ops, r->start, r->count, &r->target, pinned, n_pinned)) !=
	            SL_OK)
		goto fail;
	for (size_t i = 0; i < f->ops.n; i++) { /* checked: every element decodes */
		sl_op op;
		sl_op_decode(&op, f->ops.elements[i].data, f->ops.elements[i].len);
		if (op.type == SL_OP_COMMIT)
			f->commit_end = i + 1;
	}
	if (r->pinned && (f->ops.n_pinned != *n_pinned ||
	                  memcmp(f->ops.pinned, pinned, *n_pinned * sizeof(*pinned)) != 0)) {
		rc = sl_error_set(SL_EVERIFY, "the pinned nodes do not match the proof");
		goto fail;
	}
	*out = f;
	return SL_OK;
fail:
	client_frame_free(f);
	return rc;
}

int client_frames_insert(client *c, frame *f)
{
	size_t i;
	frame **grown = sl_grow(c->frames, &c->cap_frames, c->n_frames, sizeof(*grown), 16);
	if (!grown)
		return SL_ENOMEM;
	c->frames = grown;
	for (i = c->n_frames; i > 0 && c->frames[i - 1]->ops.start > f->ops.start; i--)
		c->frames[i] = c->frames[i - 1];
	c->frames[i] = f;
	c->n_frames++;
	return SL_OK;
}

/* What the apply thread has written: move the local size, and free the
 * frames now wholly in the store. Its failure is returned. */
int client_collect_applied(client *c)
{
	uint64_t size;
	size_t done = 0;
	int rc;

	if (!c->applier)
		return SL_OK;
	rc = sync_applier_status(c->applier, &size);
	if (size != c->local_size) {
		sl_metric_add(c->m.applied, size - c->local_size);
		sl_metric_set(c->m.local_size, (double)size);
		c->local_size = size;
	}
	while (done < c->n_frames &&
	       c->frames[done]->ops.start + c->frames[done]->ops.n <= c->local_size)
		client_frame_free(c->frames[done++]);
	if (done) {
		memmove(c->frames, c->frames + done, (c->n_frames - done) * sizeof(*c->frames));
		c->n_frames -= done;
	}
	return rc;
}

/* Hand the contiguous verified operations up to their last commit (C2) to
 * the apply thread, starting it first if need be; with flush it applies
 * them without waiting for more. */
int client_hand_over(client *c, int flush)
{
	size_t first, n_frames, k = 0;
	uint64_t n_ops, n_apply;
	sl_bytes *elements = NULL, *values = NULL;
	int rc;

	if (!c->local_exists) /* waiting for the bootstrap frame */
		return SL_OK;
	client_contiguous(c, &first, &n_frames, &n_ops, &n_apply);
	if (n_apply == 0)
		return SL_OK;
	if (!c->applier && (rc = sync_applier_start(&c->applier, c->o->store, c->apply_ns,
	                                            c->local_size)) != SL_OK)
		return rc;
	if (!(elements = sl_malloc(n_apply * sizeof(*elements))) ||
	    !(values = sl_malloc(n_apply * sizeof(*values)))) {
		rc = SL_ENOMEM;
		goto cleanup;
	}
	for (size_t i = first; i < first + n_frames && k < n_apply; i++) {
		frame *f = c->frames[i];
		size_t j = f->queued;
		for (; j < f->ops.n && k < n_apply; j++, k++) {
			elements[k] = f->ops.elements[j];
			values[k] = f->ops.values[j];
		}
	}
	flush |= c->queued_size + n_apply == c->target.target.size;
	if ((rc = sync_applier_add(c->applier, elements, values, (size_t)n_apply, flush)) != SL_OK)
		goto cleanup;
	c->queued_size += n_apply;
	k = (size_t)n_apply;
	for (size_t i = first; k > 0; i++) {
		frame *f = c->frames[i];
		size_t take = f->ops.n - f->queued < k ? f->ops.n - f->queued : k;
		f->queued += take;
		k -= take;
	}
cleanup:
	sl_free(elements);
	sl_free(values);
	return rc;
}

/* Everything verified goes to the store, and is waited for. */
int client_apply_all(client *c)
{
	uint64_t size;
	int rc;

	if ((rc = client_hand_over(c, 1)) != SL_OK || !c->applier)
		return rc;
	rc = sync_applier_finish(c->applier, &size);
	return rc == SL_OK ? client_collect_applied(c) : rc;
}
