/*
 * call.h - one submitted call as the engine tracks it (call.c): its job,
 * the chunks of it out on workers, its callbacks, and whether its caller
 * still holds it. The handles the caller holds (struct mproc_async,
 * struct mproc_iter, and through the job its struct mproc_results) are
 * calls. A pool's calls are kept in a struct mproc__calls.
 *
 * Every function runs with the pool's lock held.
 */
#ifndef MPROC_CALL_H
#define MPROC_CALL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "mproc.h"
#include "job.h"

struct mproc__call {
	struct mproc_pool *pool;  /* NULL once the pool was freed */
	struct mproc__calls *calls;
	struct mproc__job *job;
	TAILQ_ENTRY(mproc__call) link;   /* in calls->pending while input is left */
	TAILQ_ENTRY(mproc__call) alink;  /* in calls->all from submit to free */
	TAILQ_ENTRY(mproc__call) cblink; /* in calls->callbacks when due */
	bool in_all, queued, cb_queued;
	bool done;              /* every pulled task has its result */
	bool user_released;     /* the caller freed its handle */
	unsigned inflight;      /* chunks of this call on workers or requeued */
	int final_rc;
	struct mproc_callbacks cb;
};

TAILQ_HEAD(mproc__callq, mproc__call);

/* A pool's calls. */
struct mproc__calls {
	struct mproc__callq pending;   /* with input left, FIFO */
	struct mproc__callq callbacks; /* whose callbacks are due */
	struct mproc__callq all;       /* every submitted call not yet freed */
	size_t active;                 /* calls not done */
	size_t timed;                  /* live calls with a timeout of their own */
	uint64_t finished;             /* calls done so far */
	pthread_cond_t *cv;            /* broadcast when a call is done */
};

void mproc__calls_init(struct mproc__calls *calls, pthread_cond_t *cv);

/* What a call is: its job, its pool (NULL once freed), whether it is done
 * and what it answers then. */
static inline struct mproc__job *mproc__call_job(const struct mproc__call *call)
{
	return call->job;
}

static inline struct mproc_pool *mproc__call_pool(const struct mproc__call *call)
{
	return call->pool;
}

static inline bool mproc__call_done(const struct mproc__call *call)
{
	return call->done;
}

static inline int mproc__call_rc(const struct mproc__call *call)
{
	return call->final_rc;
}

/* The callback a done call runs (its callback or its error callback, by
 * its answer; NULL when none), and its cookie. */
mproc_callback_fn mproc__call_callback(const struct mproc__call *call,
                                       void **cookie);

/* A call around job (which it owns from now on), with its callbacks (cb
 * may be NULL); NULL without memory. */
struct mproc__call *mproc__call_new(struct mproc_pool *pool,
                                    struct mproc__job *job,
                                    const struct mproc_callbacks *cb);
/* Free a call never submitted, or whose end mproc__call_maybe_free saw. */
void mproc__call_free(struct mproc__call *call);

/* Track it: pending and live. */
void mproc__call_enqueue(struct mproc__calls *calls, struct mproc__call *call);
/* No input will be pulled for it any more. */
void mproc__call_dequeue(struct mproc__call *call);

/* A chunk of it was sent or requeued / is finished (all its results, or
 * cancelled). */
static inline void mproc__call_chunk_out(struct mproc__call *call)
{
	call->inflight++;
}
void mproc__call_chunk_done(struct mproc__call *call);

/* Done once its input ended, every result is stored and no chunk is out:
 * then its totals are made and its callbacks queued. */
void mproc__call_check_done(struct mproc__call *call);
/* Free it when its caller let go and nothing refers to it any more. */
void mproc__call_maybe_free(struct mproc__call *call);
/* The caller let go of its handle (the pool's lock held). */
void mproc__call_release_locked(struct mproc__call *call);

/* The next call whose callbacks are due, or NULL; it stays referred to
 * (not freed) until mproc__call_callbacks_ran. */
struct mproc__call *mproc__calls_due(struct mproc__calls *calls);
void mproc__call_callbacks_ran(struct mproc__call *call);

/* The pool is freed: every call ends with it (the caller's handles still
 * answer from what they hold). */
void mproc__calls_orphan(struct mproc__calls *calls);

/* An iterator waiting for its consumer to make room in its window. */
bool mproc__call_stalled(const struct mproc__call *call);

#endif
