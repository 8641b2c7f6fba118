/*
 * async.c - apply, map and their _async forms: calls whose results are
 * kept together and handed back at once (Python's AsyncResult/MapResult).
 *
 * The handle given to the caller is the call itself. A handle freed before
 * its call is done is left to the pool, which still runs its callbacks and
 * frees it at the end.
 */
#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "engine.h"
#include "input.h"
#include "wire.h"

#define CALL(a) ((struct mproc__call *)(a))

/* Python's map() chunksize: ceil(n / (4 * processes)), at least 1. */
static size_t default_chunksize(size_t n, unsigned processes)
{
	size_t per = 4 * (size_t)processes;
	size_t c = n / per + (n % per ? 1 : 0);
	return c ? c : 1;
}

/* Wrap job in a call with its callbacks and submit it; on failure the job
 * is freed. */
static int submit(struct mproc_pool *pool, struct mproc__job *job,
                  const struct mproc_callbacks *cb, struct mproc_async **out)
{
	struct mproc__call *call = mproc__call_new(pool, job, cb);
	if (!call) {
		mproc__job_free(job);
		return -ENOMEM;
	}
	int rc = mproc__engine_submit(pool, call);
	if (rc < 0) {
		mproc__call_free(call);
		return rc;
	}
	*out = (struct mproc_async *)call;
	return 0;
}

int mproc_apply_async(struct mproc_pool *pool, mproc_task_fn fn,
                      const void *arg, size_t arglen,
                      const struct mproc_callbacks *cb,
                      struct mproc_async **out)
{
	return mproc_apply_async_opts(pool, fn, arg, arglen, cb, NULL, out);
}

int mproc_apply_async_opts(struct mproc_pool *pool, mproc_task_fn fn,
                           const void *arg, size_t arglen,
                           const struct mproc_callbacks *cb,
                           const struct mproc_call_opts *co,
                           struct mproc_async **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!pool || !fn || (arg && arglen == 0))
		return -EINVAL;
	int rc = mproc__engine_call_opts(pool, co);
	if (rc < 0)
		return rc;
	struct mproc__job *job =
	        mproc__job_new(mproc__engine_jobenv(pool), MPROC__JOB_ALL, fn, 1, 0);
	if (!job)
		return -ENOMEM;
	rc = mproc__job_set_arg(job, arg, arglen);
	if (rc == 0)
		rc = mproc__job_set_opts(job, co);
	if (rc < 0) {
		mproc__job_free(job);
		return rc;
	}
	return submit(pool, job, cb, out);
}

static int map_async(struct mproc_pool *pool, mproc_task_fn fn,
                     const struct mproc_input *in, size_t chunksize,
                     const struct mproc_callbacks *cb, uint8_t flags,
                     const struct mproc_call_opts *co,
                     struct mproc_async **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!pool || !fn || !mproc__input_valid(in))
		return -EINVAL;
	int rc = mproc__engine_call_opts(pool, co);
	if (rc < 0)
		return rc;
	struct mproc__job *job = mproc__job_new(mproc__engine_jobenv(pool),
	                                        MPROC__JOB_ALL, fn, chunksize,
	                                        flags);
	if (!job)
		return -ENOMEM;
	rc = mproc__job_set_input(job, in);
	if (rc == 0)
		rc = mproc__job_set_opts(job, co);
	if (rc == 0 && !in->has_len)
		rc = mproc__job_read_all(job);
	if (rc < 0) {
		mproc__job_free(job);
		return rc;
	}
	if (chunksize == 0)
		mproc__job_set_chunksize(job, default_chunksize(mproc__job_len(job),
		                                                mproc__engine_workers(pool)));
	return submit(pool, job, cb, out);
}

int mproc_map_async(struct mproc_pool *pool, mproc_task_fn fn,
                    const struct mproc_input *in, size_t chunksize,
                    const struct mproc_callbacks *cb, struct mproc_async **out)
{
	return map_async(pool, fn, in, chunksize, cb, 0, NULL, out);
}

int mproc_map_async_opts(struct mproc_pool *pool, mproc_task_fn fn,
                         const struct mproc_input *in, size_t chunksize,
                         const struct mproc_callbacks *cb,
                         const struct mproc_call_opts *co,
                         struct mproc_async **out)
{
	return map_async(pool, fn, in, chunksize, cb, 0, co, out);
}

int mproc_starmap_async(struct mproc_pool *pool, mproc_task_fn fn,
                        const struct mproc_input *in, size_t chunksize,
                        const struct mproc_callbacks *cb,
                        struct mproc_async **out)
{
	return map_async(pool, fn, in, chunksize, cb, MPROC__TF_STAR, NULL, out);
}

static bool call_is_done(void *arg)
{
	return mproc__call_done(CALL(arg));
}

int mproc_async_get(struct mproc_async *a, double timeout,
                    const struct mproc_results **out)
{
	if (!a || !out)
		return -EINVAL;
	struct mproc__call *call = CALL(a);
	struct mproc_pool *pool = mproc__call_pool(call);
	if (!pool) {
		/* The pool was freed: the call ended with it. */
		*out = mproc__job_results(mproc__call_job(call));
		return mproc__call_rc(call);
	}
	mproc__engine_lock(pool);
	int rc = mproc__engine_wait(pool, call_is_done, call,
	                            mproc__deadline(timeout));
	if (rc == 0) {
		*out = mproc__job_results(mproc__call_job(call));
		rc = mproc__call_rc(call);
	}
	mproc__engine_unlock(pool);
	return rc;
}

int mproc_async_wait(struct mproc_async *a, double timeout)
{
	if (!a)
		return -EINVAL;
	struct mproc__call *call = CALL(a);
	struct mproc_pool *pool = mproc__call_pool(call);
	if (!pool)
		return 0;
	mproc__engine_lock(pool);
	int rc = mproc__engine_wait(pool, call_is_done, call,
	                            mproc__deadline(timeout));
	mproc__engine_unlock(pool);
	return rc;
}

bool mproc_async_ready(struct mproc_async *a)
{
	if (!a)
		return false;
	struct mproc__call *call = CALL(a);
	struct mproc_pool *pool = mproc__call_pool(call);
	if (!pool)
		return true;
	mproc__engine_lock(pool);
	/* Zero timeout: take in what has arrived, never block. */
	if (!mproc__call_done(call))
		(void)mproc__engine_wait(pool, call_is_done, call, mproc__now_ns());
	bool done = mproc__call_done(call);
	mproc__engine_unlock(pool);
	return done;
}

int mproc_async_successful(struct mproc_async *a)
{
	if (!a)
		return -EINVAL;
	if (!mproc_async_ready(a))
		return MPROC_ENOTREADY;
	return mproc__call_rc(CALL(a)) == 0;
}

void mproc_async_free(struct mproc_async *a)
{
	if (!a)
		return;
	mproc__engine_release(CALL(a));
}

void mproc_results_free(struct mproc_results *res)
{
	if (!res)
		return;
	mproc_async_free(res->owner);
}

/* Wait for an async call and hand its results over as the call's own. */
static int wait_results(struct mproc_async *a, struct mproc_results **out)
{
	const struct mproc_results *res = NULL;
	int rc = mproc_async_get(a, -1, &res);
	if (rc == 0 || rc == MPROC_ERAISED || rc == MPROC_EINPUT ||
	    rc == MPROC_EHALTED) {
		*out = (struct mproc_results *)res;
		return rc;
	}
	mproc_async_free(a);
	return rc;
}

int mproc_apply(struct mproc_pool *pool, mproc_task_fn fn, const void *arg,
                size_t arglen, struct mproc_results **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_async *a;
	int rc = mproc_apply_async(pool, fn, arg, arglen, NULL, &a);
	return rc < 0 ? rc : wait_results(a, out);
}

/* map and starmap: map_async, then wait for every result. */
static int map_wait(struct mproc_pool *pool, mproc_task_fn fn,
                    const struct mproc_input *in, size_t chunksize,
                    uint8_t flags, struct mproc_results **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_async *a;
	int rc = map_async(pool, fn, in, chunksize, NULL, flags, NULL, &a);
	return rc < 0 ? rc : wait_results(a, out);
}

int mproc_map(struct mproc_pool *pool, mproc_task_fn fn,
              const struct mproc_input *in, size_t chunksize,
              struct mproc_results **out)
{
	return map_wait(pool, fn, in, chunksize, 0, out);
}

int mproc_starmap(struct mproc_pool *pool, mproc_task_fn fn,
                  const struct mproc_input *in, size_t chunksize,
                  struct mproc_results **out)
{
	return map_wait(pool, fn, in, chunksize, MPROC__TF_STAR, out);
}

const char *mproc_async_input_error(const struct mproc_async *a)
{
	if (!a)
		return "";
	return mproc__job_input_detail(
	        mproc__call_job((const struct mproc__call *)a));
}
