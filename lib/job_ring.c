/*
 * job_ring.c - an iterator's ring (imap, imap_unordered): at most
 * `window` results pulled ahead of the consumer, in a ring of slots whose
 * buffers are reused, so a long imap allocates nothing per task once warm.
 * job_store.c fills the slots; this file makes the ring and hands its
 * results out, in input order or in arrival order (a FIFO of ready slots),
 * and says when the engine should pull more.
 *
 * Invariant: the result handed out last stays valid (its slot is not
 * reused) until the next mproc__job_next.
 */
#include <errno.h>
#include <stdlib.h>

#include "job_impl.h"
#include "journal.h"
#include "oob.h"

int mproc__job_set_window(struct mproc__job *job, size_t window, size_t soft)
{
	/* At least window + 1 slots (the result handed out last stays valid
	 * while a full window arrives), a power of two so that a slot is found
	 * with a mask, not a division, once per result. */
	if (window > (SIZE_MAX >> 2) || soft > window)
		return -ENOMEM;
	size_t n = 1;
	while (n < window + 1)
		n <<= 1;
	struct mproc__job_slot *s = calloc(n, sizeof *s);
	/* Buffers outlive their results only up to the soft window's count:
	 * past it, what a slot held goes back to the allocator. */
	struct mproc__buf *spare = soft < window ? calloc(soft, sizeof *spare)
	                                         : NULL;
	if (!s || (soft < window && !spare)) {
		free(s);
		free(spare);
		return -ENOMEM;
	}
	job->window = window;
	job->soft = soft;
	job->slots = s;
	job->nslots = n;
	job->spare = spare;
	return 0;
}

void mproc__job_unstretch(struct mproc__job *job)
{
	if (job->kind != MPROC__JOB_ALL)
		job->window = job->soft;
}

/* A ring larger than its soft window: the buffer of the result
 * handed out last (valid until now) goes to the spares, or back to the
 * allocator when there are enough, so that no more buffers live than
 * results wait. */
static void recycle(struct mproc__job *job, struct mproc__job_slot *s)
{
	if (s->ready || !s->data.cap)
		return;
	if (job->nspare < job->soft) {
		s->data.len = 0;
		job->spare[job->nspare++] = s->data;
	} else {
		mproc__buf_free(&s->data);
	}
	s->data = (struct mproc__buf){0};
}

/* The slot the consumer gets next, or NULL when none is ready. */
static struct mproc__job_slot *job_next_slot(const struct mproc__job *job)
{
	if (job->kind == MPROC__JOB_ORDERED) {
		struct mproc__job_slot *s =
		        &job->slots[job->delivered & (job->nslots - 1)];
		return job->delivered < job->pulled && s->ready ? s : NULL;
	}
	return job->ucount ? &job->slots[job->uhead] : NULL;
}

bool mproc__job_has_next(const struct mproc__job *job)
{
	return job_next_slot(job) ||
	       (job->input_done && job->delivered >= job->pulled);
}

int mproc__job_next(struct mproc__job *job, const struct mproc_result **out,
                    int *err)
{
	if (job->last)
		mproc__job_slot_release(job, job->last);
	if (job->spare && job->last)
		recycle(job, job->last);
	/* Durable before it is handed out: a rerun does not hand it out
	 * again. */
	if (job->hooks && job->jc)
		(void)mproc__journal_commit(mproc__jcall_journal(job->jc));
	struct mproc__job_slot *s = job_next_slot(job);
	if (!s) {
		*err = job->input_err; /* 0, MPROC_EINPUT, _ECLOSED or _EHALTED */
		return 0;
	}
	job->held -= s->bytes;
	job->last = s;
	if (job->kind == MPROC__JOB_UNORDERED) {
		job->uhead = (job->uhead + 1) & (job->nslots - 1);
		job->ucount--;
	}
	s->ready = false;
	job->delivered++;
	if (s->tiny) {
		job->cur = (struct mproc_result){.index = s->index,
		                                 .status = MPROC_OK,
		                                 .attempts = s->attempts,
		                                 .value = s->tiny};
	} else {
		mproc__rstore_reset(&job->rs);
		int rc = mproc__rstore_result(&job->rs,
		                              job->env ? &job->env->dec : NULL,
		                              s->status, s->attempts, s->index,
		                              s->data.data, s->data.len, &job->cur);
		if (rc < 0) {
			/* No memory to decode it (no decoder, say): it is handed
			 * out as an error all the same, as a map's is; answering
			 * -ENOMEM would lose it, its slot being taken already. */
			job->cur.status = MPROC_RAISED;
			job->cur.value = NULL;
			job->cur.error = &mproc__err_nomem_decode;
		}
	}
	*out = &job->cur;
	return 1;
}

bool mproc__job_wants_input(struct mproc__job *job)
{
	/* Refill in batches, not a task per result: once half the (soft)
	 * window has been consumed since the last refill, if there is room. */
	if (job->input_done || job->delivered - job->kicked < job->soft / 2 ||
	    !mproc__job_room(job))
		return false;
	job->kicked = job->delivered;
	return true;
}
