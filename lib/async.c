/*
 * async.c - apply, map and their _async forms: calls whose results are
 * kept together and handed back at once (Python's AsyncResult/MapResult).
 *
 * The handle given to the caller is the job itself. A handle freed before
 * its job is done is left to the pool, which still runs its callbacks and
 * frees it at the end.
 */
#include <errno.h>
#include <stdlib.h>

#include "input.h"
#include "pool.h"

#define JOB(a) ((struct mproc__job *)(a))

static unsigned pool_processes(struct mproc_pool *pool)
{
	return pool->nworkers;
}

/* Python's map() chunksize: ceil(n / (4 * processes)), at least 1. */
static size_t default_chunksize(size_t n, unsigned processes)
{
	size_t per = 4 * (size_t)processes;
	size_t c = n / per + (n % per ? 1 : 0);
	return c ? c : 1;
}

static int submit_locked(struct mproc_pool *pool, struct mproc__job *job)
{
	pthread_mutex_lock(&pool->mu);
	int rc = mproc__pool_submit(pool, job);
	pthread_mutex_unlock(&pool->mu);
	return rc;
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
	struct mproc__job *job = mproc__job_new(pool, MPROC__JOB_ALL, fn, 1, 0);
	if (!job)
		return -ENOMEM;
	int rc = mproc__job_set_arg(job, arg, arglen);
	if (rc == 0)
		rc = mproc__job_set_opts(job, co);
	if (rc == 0 && cb)
		job->cb = *cb;
	if (rc == 0)
		rc = submit_locked(pool, job);
	if (rc < 0) {
		mproc__job_free(job);
		return rc;
	}
	*out = (struct mproc_async *)job;
	return 0;
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
	struct mproc__job *job =
	        mproc__job_new(pool, MPROC__JOB_ALL, fn, chunksize, flags);
	if (!job)
		return -ENOMEM;
	int rc = mproc__job_set_input(job, in);
	if (rc == 0)
		rc = mproc__job_set_opts(job, co);
	if (rc == 0 && !in->has_len)
		rc = mproc__job_read_all(job);
	if (rc == 0 && chunksize == 0)
		job->chunksize = default_chunksize(job->in.len, pool_processes(pool));
	if (rc == 0 && cb)
		job->cb = *cb;
	if (rc == 0)
		rc = submit_locked(pool, job);
	if (rc < 0) {
		mproc__job_free(job);
		return rc;
	}
	*out = (struct mproc_async *)job;
	return 0;
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

static bool job_is_done(void *arg)
{
	return JOB(arg)->done;
}

int mproc_async_get(struct mproc_async *a, double timeout,
                    const struct mproc_results **out)
{
	if (!a || !out)
		return -EINVAL;
	struct mproc__job *job = JOB(a);
	struct mproc_pool *pool = job->pool;
	if (!pool) {
		/* The pool was freed: the job ended with it. */
		*out = &job->results;
		return job->final_rc;
	}
	pthread_mutex_lock(&pool->mu);
	int rc = mproc__pool_wait(pool, job_is_done, job, mproc__deadline(timeout));
	if (rc == 0) {
		*out = &job->results;
		rc = job->final_rc;
	}
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

int mproc_async_wait(struct mproc_async *a, double timeout)
{
	if (!a)
		return -EINVAL;
	struct mproc__job *job = JOB(a);
	struct mproc_pool *pool = job->pool;
	if (!pool)
		return 0;
	pthread_mutex_lock(&pool->mu);
	int rc = mproc__pool_wait(pool, job_is_done, job, mproc__deadline(timeout));
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

bool mproc_async_ready(struct mproc_async *a)
{
	if (!a)
		return false;
	struct mproc__job *job = JOB(a);
	struct mproc_pool *pool = job->pool;
	if (!pool)
		return true;
	pthread_mutex_lock(&pool->mu);
	/* Zero timeout: take in what has arrived, never block. */
	if (!job->done)
		(void)mproc__pool_wait(pool, job_is_done, job, mproc__now_ns());
	bool done = job->done;
	pthread_mutex_unlock(&pool->mu);
	return done;
}

int mproc_async_successful(struct mproc_async *a)
{
	if (!a)
		return -EINVAL;
	if (!mproc_async_ready(a))
		return MPROC_ENOTREADY;
	return JOB(a)->final_rc == 0;
}

void mproc_async_free(struct mproc_async *a)
{
	if (!a)
		return;
	mproc__job_release(JOB(a));
}

void mproc_results_free(struct mproc_results *res)
{
	if (!res)
		return;
	struct mproc__job *job =
	        (struct mproc__job *)((char *)res -
	                              offsetof(struct mproc__job, results));
	mproc_async_free((struct mproc_async *)job);
}

/* Wait for an async job and hand its results over as the call's own. */
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
