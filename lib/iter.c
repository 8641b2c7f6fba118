/*
 * iter.c - imap and imap_unordered: results handed out one at a time.
 *
 * The input is pulled only while fewer than `window` results stand between
 * the consumer and it, so an endless input runs in bounded memory; the
 * result handed out stays valid until the next call, because its slot is
 * not reused before the consumer asks again (the job's ring has window + 1
 * slots).
 */
#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "engine.h"
#include "input.h"

#define CALL(it) ((struct mproc__call *)(it))

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
	int rc = mproc__engine_call_opts(pool, co);
	if (rc < 0)
		return rc;
	struct mproc__job *job = mproc__job_new(mproc__engine_jobenv(pool), kind,
	                                        fn, chunksize, 0);
	if (!job)
		return -ENOMEM;
	rc = mproc__job_set_input(job, in);
	if (rc == 0)
		rc = mproc__job_set_opts(job, co);
	struct mproc__call *call = rc == 0 ? mproc__call_new(pool, job, NULL) : NULL;
	if (!call) {
		mproc__job_free(job);
		return rc < 0 ? rc : -ENOMEM;
	}
	if ((rc = mproc__engine_submit(pool, call)) < 0) {
		mproc__call_free(call);
		return rc;
	}
	*out = (struct mproc_iter *)call;
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
	return mproc__job_has_next(mproc__call_job(CALL(arg)));
}

int mproc_iter_next(struct mproc_iter *it, double timeout,
                    const struct mproc_result **out)
{
	if (!it || !out)
		return -EINVAL;
	struct mproc__call *call = CALL(it);
	struct mproc_pool *pool = mproc__call_pool(call);
	if (!pool)
		return MPROC_ECLOSED; /* the pool was freed */
	mproc__engine_lock(pool);
	int rc = mproc__engine_wait(pool, iter_has_next, call,
	                            mproc__deadline(timeout));
	if (rc == 0) {
		int err = 0;
		rc = mproc__job_next(mproc__call_job(call), out, &err);
		if (rc == 0)
			rc = err; /* every result was handed out */
		/* The window moved: refill it in batches, so the workers stay
		 * fed while the consumer works; the rest is dispatched when
		 * the consumer next has to wait. */
		else if (mproc__job_wants_input(mproc__call_job(call)))
			mproc__engine_kick(pool);
	}
	mproc__engine_unlock(pool);
	return rc;
}

void mproc_iter_free(struct mproc_iter *it)
{
	if (!it)
		return;
	mproc__engine_release(CALL(it));
}

const char *mproc_iter_input_error(const struct mproc_iter *it)
{
	if (!it)
		return "";
	return mproc__job_input_detail(
	        mproc__call_job((const struct mproc__call *)it));
}
