/*
 * engine.h - the engine: the pool's state and what its files export to
 * each other and to the public calls above them.
 *
 * The engine is one module in four files, each with its own job: engine.c
 * (the poll loop, waiting, submitting, terminate and join), dispatch.c
 * (which worker gets which chunk), fault.c (deaths, timeouts, attribution,
 * requeue, respawn) and pool.c (the public lifecycle calls). struct
 * mproc_pool is theirs alone: the layers below (calls, jobs, workers,
 * backends) get what they need as arguments, and the public calls above
 * (async.c, iter.c) use the functions here.
 *
 * There is no helper thread. Progress happens inside the calls that wait
 * (mproc__engine_wait): one thread at a time, the driver, runs the engine
 * while other waiting threads sleep on the condition variable. The lock is
 * dropped around ppoll() and around callbacks.
 *
 * Invariant: every task pulled from an input is in exactly one place — a
 * chunk on a worker, a chunk in the requeue, or stored as a result — so a
 * dead worker loses nothing.
 */
#ifndef MPROC_ENGINE_H
#define MPROC_ENGINE_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mproc.h"
#include "backend.h"
#include "call.h"
#include "chunkq.h"
#include "job.h"
#include "stats.h"
#include "worker.h"

enum mproc__pool_state { MPROC__RUN, MPROC__CLOSED, MPROC__TERMINATED };

struct mproc_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool driving;           /* one thread at a time runs the engine */
	unsigned engine_wanted; /* threads in take_engine (terminate, join) */
	bool cb_running;        /* a callback runs, in thread cb_thread */
	pthread_t cb_thread;
	int wakefd;             /* eventfd: wakes the driver out of poll */
	bool polling;
	enum mproc__pool_state state;
	bool joined;
	struct mproc_pool_opts opts;
	struct mproc__backend be;
	unsigned nworkers;
	struct mproc__worker *workers;
	struct pollfd *pfd;           /* the driver's ppoll set */
	struct mproc__status *status; /* shared mapping, one per worker */
	size_t status_len;
	uint64_t next_id;
	struct mproc__calls calls;
	struct mproc__requeue rq;     /* chunks taken back, to run first */
	struct mproc__jobenv env;     /* lent to every job */
	struct mproc__stats stats;
	uint64_t timeout_ns, grace_ns;  /* from the options; 0: no timeout */
	unsigned start_failures;        /* workers in a row dead before ready */
	bool broken;                    /* workers cannot start: tasks fail */
	char broken_msg[240];
	size_t max_frame;
};

/* ---- engine.c ------------------------------------------------------------ */

/* The pool's lock, for the public calls' waits. */
void mproc__engine_lock(struct mproc_pool *pool);
void mproc__engine_unlock(struct mproc_pool *pool);
/* What a new job of this pool borrows; how many workers it has. */
struct mproc__jobenv *mproc__engine_jobenv(struct mproc_pool *pool);
unsigned mproc__engine_workers(const struct mproc_pool *pool);

/* Wait, driving the engine when nobody does, until ready(arg) or the
 * deadline (-ETIMEDOUT); -EDEADLK from a callback of this pool. Lock held. */
int mproc__engine_wait(struct mproc_pool *pool, bool (*ready)(void *),
                       void *arg, uint64_t deadline);
/* New work: dispatch it now, or wake the driver. Lock held. */
void mproc__engine_kick(struct mproc_pool *pool);
/* A call's options the backend cannot honour: -ENOTSUP (a timeout on
 * threads), else 0. Checked before anything is read or made. */
int mproc__engine_call_opts(const struct mproc_pool *pool,
                            const struct mproc_call_opts *co);
/* Submit call (takes the lock); MPROC_ECLOSED, MPROC_EHALTED, -ENOMEM. */
int mproc__engine_submit(struct mproc_pool *pool, struct mproc__call *call);
/* The caller let go of a call's handle (takes the lock when the pool is
 * still there). */
void mproc__engine_release(struct mproc__call *call);
/* Terminate and join's work, the lock held. */
int mproc__engine_terminate(struct mproc_pool *pool);
int mproc__engine_join(struct mproc_pool *pool);
/* The caller is running a callback of this pool. */
bool mproc__engine_in_callback(const struct mproc_pool *pool);

/* ---- dispatch.c ---------------------------------------------------------- */

/* Hand out work to every worker that has room (requeue first). */
void mproc__dispatch(struct mproc_pool *pool);
/* Write what every worker's channel takes. */
void mproc__dispatch_flush(struct mproc_pool *pool);
/* Workers whose claim stood still for a while (coarse clock `now`): what
 * they have not started is taken back, and they get no new work. */
void mproc__dispatch_steal(struct mproc_pool *pool, uint64_t now);
/* When dispatch must look again at workers that may stand still
 * (UINT64_MAX: no need). */
uint64_t mproc__dispatch_next(const struct mproc_pool *pool);

/* ---- fault.c ------------------------------------------------------------- */

/* How the engine saw a worker end. */
enum mproc__end {
	MPROC__END_EXIT,  /* its process (or thread) ended */
	MPROC__END_EOF,   /* its channel ended: it may still live */
	MPROC__END_PROTO, /* it sent bytes that are not frames */
};

/* w's channel or process ended: read what it wrote, reap it, blame or
 * requeue what it held, start its replacement. */
void mproc__fault_died(struct mproc_pool *pool, struct mproc__worker *w,
                       enum mproc__end how);
/* w's channel ended: its death when its process ended too, or once it
 * has had MPROC__END_GRACE_NS to (a crashing worker's pipes end just
 * before its exit is seen); until then it gets no work and the driver
 * goes on. Called again by mproc__fault_stalls. */
void mproc__fault_channel_ended(struct mproc_pool *pool,
                                struct mproc__worker *w);
#define MPROC__END_GRACE_NS 1000000000u
/* Workers gone back to waiting for work with a frame cut short in their
 * channel (forged bytes): a protocol error, within MPROC__STALL_NS; and
 * workers whose channel ended, looked at again. */
void mproc__fault_stalls(struct mproc_pool *pool);
#define MPROC__STALL_NS 1000000000u
/* The timeout watch: signal workers past a task's timeout, take in
 * replacement times; the next time it must look again (UINT64_MAX: no
 * need). */
uint64_t mproc__fault_watch(struct mproc_pool *pool);
/* Take back the tasks w was sent and has not started, to the requeue:
 * how many. */
size_t mproc__fault_take_back(struct mproc_pool *pool, struct mproc__worker *w);
/* Take in the replacement times of workers that became ready. */
void mproc__fault_note_ready(struct mproc_pool *pool);
/* Start workers in empty slots whose back-off has passed. */
void mproc__fault_respawn(struct mproc_pool *pool);

#endif
