/*
 * be_threads.c - the threads backend (Python's ThreadPool): each worker is
 * a thread of the program running the same worker loop over the same two
 * pipes, frames and codec, so that the backends differ only in what a
 * process costs over a thread.
 *
 * A thread cannot be killed: "signal" asks it to stop before its next task
 * and closes its task pipe, which ends its wait for one; "reap" joins it
 * once the engine has read its result pipe to the end (the thread closes
 * its end as it ends). Its pid is a value no process has.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "child.h"
#include "fdreg.h"

/* A worker thread, and the plan it runs on (valid until it is joined). */
struct thread_worker {
	pthread_t thread;
	_Atomic int stop;
	struct mproc__child_plan plan;
};

/* The thread takes none of the program's asynchronous signals. The
 * synchronous ones stay open: a fault in a task must reach the program's
 * own handler (or the default action), not be undefined. */
static int thread_create(struct thread_worker *t)
{
	static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
	                                SIGTRAP, SIGSYS, SIGABRT};
	sigset_t all, old;
	sigfillset(&all);
	for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
		sigdelset(&all, sync_sigs[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = -pthread_create(&t->thread, NULL, mproc__child_thread, &t->plan);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Every end stays in the registry while the thread runs, so that a
 * process pool's worker forked meanwhile closes them and never hides their
 * end of file. */
static int threads_start(struct mproc__backend *be, struct mproc__proc *p)
{
	int task[2] = {-1, -1}, result[2] = {-1, -1};
	int rc = -ENOMEM;
	struct thread_worker *t = calloc(1, sizeof *t);
	if (!t)
		return rc;
	mproc__fdreg_lock();
	if ((rc = mproc__chan_pipes(task, result)) < 0 ||
	    (rc = mproc__fdreg_reserve_locked(4)) < 0)
		goto fail;
	mproc__child_plan_init(&t->plan, be->opts, p->number,
	                       &be->status[p->number]);
	t->plan.task_fd = task[0];
	t->plan.result_fd = result[1];
	t->plan.oob = be->oob;
	t->plan.region = -1;
	t->plan.threaded = true;
	t->plan.stop = &t->stop;
	t->plan.max_rss = t->plan.max_vm = 0;
	atomic_store(&t->stop, 0);
	if ((rc = thread_create(t)) < 0)
		goto fail;
	(void)mproc__fdreg_add_locked(task[0]);
	(void)mproc__fdreg_add_locked(task[1]);
	(void)mproc__fdreg_add_locked(result[0]);
	(void)mproc__fdreg_add_locked(result[1]);
	mproc__fdreg_unlock();
	mproc__proc_started(p, MPROC__THREAD_PID, -1, task[1], task[0],
	                    result[0]);
	p->be = t;
	return 0;

fail:
	mproc__chan_close(task, result);
	mproc__fdreg_unlock();
	free(t);
	return rc;
}

static void threads_signal(struct mproc__backend *be, struct mproc__proc *p,
                           int sig)
{
	(void)be, (void)sig;
	struct thread_worker *t = p->be;
	atomic_store_explicit(&t->stop, 1, memory_order_relaxed);
	mproc__fdreg_close(&p->task_fd);
}

static void threads_reap(struct mproc__backend *be, struct mproc__proc *p,
                         siginfo_t *si)
{
	(void)be;
	struct thread_worker *t = p->be;
	void *ret = NULL;
	/* Only the join: the pool's lock is let go meanwhile, and is_caller
	 * may read t from another thread. */
	pthread_join(t->thread, &ret);
	memset(si, 0, sizeof *si);
	si->si_code = CLD_EXITED;
	si->si_status = (int)(intptr_t)ret;
}

static void threads_release(struct mproc__backend *be, struct mproc__proc *p)
{
	(void)be;
	free(p->be);
	p->be = NULL;
}

static bool threads_is_caller(struct mproc__backend *be,
                              const struct mproc__proc *p)
{
	(void)be;
	const struct thread_worker *t = p->be;
	return t && pthread_equal(t->thread, pthread_self());
}

const struct mproc__backend_ops mproc__backend_threads = {
	.name = "threads",
	.processes = false,
	.start = threads_start,
	.signal = threads_signal,
	.reap = threads_reap,
	.release = threads_release,
	.is_caller = threads_is_caller,
};
