/*
 * be_fork.c - the fork backend: each worker is forked from the program as
 * it is when the worker starts (Python's "fork" start method).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "child.h"
#include "fdreg.h"

static int fork_start(struct mproc__backend *be, struct mproc__proc *p)
{
	int task[2], result[2];
	int *closelist = NULL;
	int rc;

	/* The registry stays locked from the pipes' creation to the fork, so
	 * that no other pool forks a child between, which would inherit these
	 * pipes without knowing to close them. */
	mproc__fdreg_lock();
	if ((rc = mproc__chan_pipes(task, result)) < 0)
		goto fail;
	struct mproc__child_plan plan;
	mproc__child_plan_init(&plan, be->opts, p->number,
	                       &be->status[p->number]);
	plan.task_fd = task[0];
	plan.result_fd = result[1];
	plan.oob = be->oob;
	plan.region = p->region;
	plan.manager = getpid();
	/* PR_SET_PDEATHSIG follows the thread that forks, not the process:
	 * armed only when that is the main thread, which lives as long as the
	 * process. Otherwise the worker relies on end of file on its task pipe
	 * and getppid(). */
	plan.pdeathsig = gettid() == getpid();
	int mine[2] = {task[1], result[0]};
	closelist = mproc__fdreg_list_locked(mine, 2, &plan.nclose);
	if (!closelist || mproc__fdreg_reserve_locked(3) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	plan.close_fds = closelist;
	pid_t pid;
	if ((rc = mproc__child_fork(&plan, &pid)) < 0)
		goto fail;
	mproc__chan_forked_locked(task, result);
	mproc__fdreg_unlock();
	free(closelist);
	mproc__proc_started(p, pid, mproc__proc_pidfd(pid), task[1], task[0],
	                    result[0]);
	return 0;

fail:
	free(closelist);
	mproc__chan_close(task, result);
	mproc__fdreg_unlock();
	return rc;
}

static void fork_signal(struct mproc__backend *be, struct mproc__proc *p,
                        int sig)
{
	(void)be;
	mproc__proc_kill(p, sig);
}

static void fork_reap(struct mproc__backend *be, struct mproc__proc *p,
                      siginfo_t *si)
{
	(void)be;
	int rc;
	memset(si, 0, sizeof *si);
	do {
		rc = waitid(P_PID, (id_t)p->pid, si, WEXITED);
	} while (rc < 0 && errno == EINTR);
}

const struct mproc__backend_ops mproc__backend_fork = {
	.name = "fork",
	.processes = true,
	.start = fork_start,
	.signal = fork_signal,
	.reap = fork_reap,
};
