/*
 * chan.c - what the backends share (chan.h): a worker's two pipes, the
 * end of its descriptors, and signalling a process.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "config.h"
#include "chan.h"
#include "fdreg.h"

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

void mproc__chan_close(int task[2], int result[2])
{
	for (int i = 0; i < 2; i++) {
		if (task[i] >= 0)
			close(task[i]);
		if (result[i] >= 0)
			close(result[i]);
		task[i] = result[i] = -1;
	}
}

void mproc__chan_forked_locked(int task[2], int result[2])
{
	(void)mproc__fdreg_add_locked(task[0]);
	(void)mproc__fdreg_add_locked(task[1]);
	(void)mproc__fdreg_add_locked(result[0]);
	close(result[1]);
}

/*
 * The engine keeps the task pipe's read end open too, so that a write to a
 * dead worker's pipe never raises SIGPIPE in the host program: there is
 * always a reader. The result pipe is bigger, so that a batch of results
 * goes in one write.
 */
int mproc__chan_pipes(int task[2], int result[2])
{
	int rc;
	task[0] = task[1] = result[0] = result[1] = -1;
	if (pipe2(task, O_CLOEXEC) < 0 || pipe2(result, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	(void)fcntl(result[1], F_SETPIPE_SZ, 256 * 1024);
	if ((rc = set_nonblock(task[1])) < 0 || (rc = set_nonblock(result[0])) < 0)
		goto fail;
	return 0;
fail:
	mproc__chan_close(task, result);
	return rc;
}

void mproc__proc_started(struct mproc__proc *p, pid_t pid, int exit_fd,
                         int task_wr, int task_rd, int result_rd)
{
	p->pid = pid;
	p->exit_fd = exit_fd;
	p->task_fd = task_wr;
	p->task_guard_fd = task_rd;
	p->result_fd = result_rd;
}

void mproc__proc_kill(struct mproc__proc *p, int sig)
{
#if HAVE_PIDFD_OPEN
	if (p->exit_fd >= 0 && pidfd_send_signal(p->exit_fd, sig, NULL, 0) == 0)
		return;
#endif
	kill(p->pid, sig);
}

int mproc__proc_pidfd(pid_t pid)
{
	int fd = -1;
#if HAVE_PIDFD_OPEN
	fd = pidfd_open(pid, 0);
	if (fd >= 0 && mproc__fdreg_add(fd) < 0) {
		close(fd);
		fd = -1;
	}
#else
	(void)pid;
#endif
	return fd;
}
