/*
 * call.c - a submitted call's life in the engine (call.h): from submit,
 * through its chunks going out and coming back, to done, its callbacks,
 * and its free once the caller let go and nothing refers to it.
 */
#include <stdlib.h>

#include "call.h"

void mproc__calls_init(struct mproc__calls *calls, pthread_cond_t *cv)
{
	TAILQ_INIT(&calls->pending);
	TAILQ_INIT(&calls->callbacks);
	TAILQ_INIT(&calls->all);
	calls->active = calls->timed = 0;
	calls->finished = 0;
	calls->cv = cv;
}

struct mproc__call *mproc__call_new(struct mproc_pool *pool,
                                    struct mproc__job *job,
                                    const struct mproc_callbacks *cb)
{
	struct mproc__call *call = calloc(1, sizeof *call);
	if (!call)
		return NULL;
	call->pool = pool;
	call->job = job;
	if (cb)
		call->cb = *cb;
	mproc__job_set_owner(job, call);
	return call;
}

mproc_callback_fn mproc__call_callback(const struct mproc__call *call,
                                       void **cookie)
{
	*cookie = call->cb.cookie;
	return call->final_rc == 0 ? call->cb.callback : call->cb.error_callback;
}

void mproc__call_free(struct mproc__call *call)
{
	if (!call)
		return;
	if (call->in_all)
		TAILQ_REMOVE(&call->calls->all, call, alink);
	mproc__job_free(call->job);
	free(call);
}

void mproc__call_enqueue(struct mproc__calls *calls, struct mproc__call *call)
{
	call->calls = calls;
	TAILQ_INSERT_TAIL(&calls->pending, call, link);
	call->queued = true;
	TAILQ_INSERT_TAIL(&calls->all, call, alink);
	call->in_all = true;
	calls->active++;
	if (mproc__job_timeout(call->job))
		calls->timed++;
}

void mproc__call_dequeue(struct mproc__call *call)
{
	if (call->queued) {
		TAILQ_REMOVE(&call->calls->pending, call, link);
		call->queued = false;
	}
}

void mproc__call_check_done(struct mproc__call *call)
{
	if (call->done || call->inflight || !mproc__job_settled(call->job))
		return;
	struct mproc__calls *calls = call->calls;
	call->done = true;
	calls->finished++;
	calls->active--;
	if (mproc__job_timeout(call->job))
		calls->timed--;
	call->final_rc = mproc__job_finish(call->job);
	if (mproc__job_kind(call->job) == MPROC__JOB_ALL &&
	    (call->cb.callback || call->cb.error_callback)) {
		TAILQ_INSERT_TAIL(&calls->callbacks, call, cblink);
		call->cb_queued = true;
	}
	pthread_cond_broadcast(calls->cv);
}

void mproc__call_maybe_free(struct mproc__call *call)
{
	if (call->user_released && call->done && !call->inflight &&
	    !call->queued && !call->cb_queued)
		mproc__call_free(call);
}

void mproc__call_chunk_done(struct mproc__call *call)
{
	call->inflight--;
	mproc__call_check_done(call);
	mproc__call_maybe_free(call);
}

void mproc__call_release_locked(struct mproc__call *call)
{
	call->user_released = true;
	/* Nobody reads its results now, unless a callback does. */
	if (mproc__job_kind(call->job) != MPROC__JOB_ALL ||
	    (!call->cb.callback && !call->cb.error_callback))
		mproc__job_set_unread(call->job);
	if (call->queued && mproc__job_kind(call->job) != MPROC__JOB_ALL) {
		/* Nobody will read more: stop pulling its input. */
		mproc__call_dequeue(call);
		mproc__job_end_input(call->job, 0);
		mproc__call_check_done(call);
	}
	mproc__call_maybe_free(call);
}

struct mproc__call *mproc__calls_due(struct mproc__calls *calls)
{
	struct mproc__call *call = TAILQ_FIRST(&calls->callbacks);
	if (call)
		TAILQ_REMOVE(&calls->callbacks, call, cblink);
	return call;
}

void mproc__call_callbacks_ran(struct mproc__call *call)
{
	call->cb_queued = false;
	mproc__call_maybe_free(call);
}

void mproc__calls_orphan(struct mproc__calls *calls)
{
	struct mproc__call *call;
	while ((call = TAILQ_FIRST(&calls->all))) {
		TAILQ_REMOVE(&calls->all, call, alink);
		call->in_all = false;
		call->pool = NULL;
		call->calls = NULL;
		mproc__job_detach(call->job);
	}
}

bool mproc__call_stalled(const struct mproc__call *call)
{
	return !call->done && call->queued && !call->inflight &&
	       mproc__job_stalled(call->job);
}
