/*
 * iter.c - imap and imap_unordered: results handed out one at a time.
 *
 * The input is pulled only while fewer than `window` results stand between
 * the consumer and it, so an endless input runs in bounded memory; the
 * result handed out stays valid until the next call, because its slot is
 * not reused before the consumer asks again (the ring has window + 1
 * slots).
 */
#include <errno.h>
#include <stdlib.h>

#include "input.h"
#include "pool.h"

#define JOB(it) ((struct mproc__job *)(it))

static int imap(struct mproc_pool *pool, mproc_task_fn fn,
                const struct mproc_input *in, size_t chunksize,
                enum mproc__job_kind kind, const struct mproc_call_opts *co,
                struct mproc_iter **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!pool || !fn || !mproc__input_valid(in))
		return -EINVAL;
	struct mproc__job *job = mproc__job_new(pool, kind, fn, chunksize, 0);
	if (!job)
		return -ENOMEM;
	int rc = mproc__job_set_input(job, in);
	if (rc == 0)
		rc = mproc__job_set_opts(job, co);
	if (rc == 0) {
		pthread_mutex_lock(&pool->mu);
		rc = mproc__pool_submit(pool, job);
		pthread_mutex_unlock(&pool->mu);
	}
	if (rc < 0) {
		mproc__job_free(job);
		return rc;
	}
	*out = (struct mproc_iter *)job;
	return 0;
}

int mproc_imap(struct mproc_pool *pool, mproc_task_fn fn,
               const struct mproc_input *in, size_t chunksize,
               struct mproc_iter **out)
{
	return imap(pool, fn, in, chunksize, MPROC__JOB_ORDERED, NULL, out);
}

int mproc_imap_unordered(struct mproc_pool *pool, mproc_task_fn fn,
                         const struct mproc_input *in, size_t chunksize,
                         struct mproc_iter **out)
{
	return imap(pool, fn, in, chunksize, MPROC__JOB_UNORDERED, NULL, out);
}

int mproc_imap_opts(struct mproc_pool *pool, mproc_task_fn fn,
                    const struct mproc_input *in, size_t chunksize,
                    bool ordered, const struct mproc_call_opts *co,
                    struct mproc_iter **out)
{
	return imap(pool, fn, in, chunksize,
	            ordered ? MPROC__JOB_ORDERED : MPROC__JOB_UNORDERED, co, out);
}

static bool iter_has_next(void *arg)
{
	struct mproc__job *job = arg;
	if (job->kind == MPROC__JOB_ORDERED) {
		if (job->delivered < job->pulled &&
		    job->slots[job->delivered & (job->nslots - 1)].ready)
			return true;
	} else if (job->ucount) {
		return true;
	}
	return job->input_done && job->delivered >= job->pulled;
}

int mproc_iter_next(struct mproc_iter *it, double timeout,
                    const struct mproc_result **out)
{
	if (!it || !out)
		return -EINVAL;
	struct mproc__job *job = JOB(it);
	struct mproc_pool *pool = job->pool;
	if (!pool)
		return MPROC_ECLOSED; /* the pool was freed */
	pthread_mutex_lock(&pool->mu);
	int rc = mproc__pool_wait(pool, iter_has_next, job,
	                          mproc__deadline(timeout));
	if (rc < 0)
		goto out;
	struct mproc__slot *s;
	if (job->kind == MPROC__JOB_ORDERED &&
	    job->delivered < job->pulled &&
	    job->slots[job->delivered & (job->nslots - 1)].ready) {
		s = &job->slots[job->delivered & (job->nslots - 1)];
	} else if (job->kind == MPROC__JOB_UNORDERED && job->ucount) {
		s = &job->slots[job->uhead];
		job->uhead = (job->uhead + 1) & (job->nslots - 1);
		job->ucount--;
	} else {
		/* Every result was handed out. */
		rc = job->input_err; /* 0, MPROC_EINPUT, _ECLOSED or _EHALTED */
		goto out;
	}
	s->ready = false;
	job->delivered++;
	if (s->tiny) {
		job->cur = (struct mproc_result){.index = s->index,
		                                 .status = MPROC_OK,
		                                 .attempts = s->attempts,
		                                 .value = s->tiny};
		rc = 0;
	} else {
		if (job->dec)
			mproc__decoder_reset(job->dec);
		rc = mproc__job_result(job, s->status, s->attempts, s->index,
		                       s->data.data, s->data.len, &job->cur);
	}
	if (rc == 0) {
		*out = &job->cur;
		rc = 1;
	}
	/* The window moved. Refill it in batches, not a task per result: once
	 * half of it has been consumed, dispatch what fits now (one write per
	 * worker), so the workers stay fed while the consumer works; the rest
	 * is dispatched when the consumer next has to wait. */
	if (!job->input_done && job->pulled - job->delivered <= job->window / 2)
		mproc__pool_kick(pool);
out:
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

void mproc_iter_free(struct mproc_iter *it)
{
	if (!it)
		return;
	mproc__job_release(JOB(it));
}
