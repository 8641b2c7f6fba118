/*
 * be_forkserver.c - the "forkserver" start method: workers forked by a
 * small process that was itself forked when the pool opened.
 *
 * With plain fork, a replacement worker is a copy of the program as it is
 * when the old worker died: its memory has moved on, and its other threads
 * may hold locks that the copy will never see released. The fork server is
 * a copy of the program as it was at mproc_pool_open, and it never starts a
 * thread, so every worker it forks — the first ones and every replacement —
 * starts from that same state. Its loop is in server.c, its messages in
 * fsproto.h. The server reaps its workers (they are its children) and
 * reports how each ended; the engine watches them through pidfds and
 * signals them directly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "child.h"
#include "fdreg.h"
#include "fsproto.h"
#include "server.h"

/* How a worker ended, kept until the engine reaps it. */
struct fs_exit {
	pid_t pid;
	int code, status;
};

struct fs_state {
	pid_t pid;              /* the server */
	int fd;                 /* its control socket */
	struct fs_exit *exits;  /* reported, not yet reaped */
	size_t nexits, cap;
};

static int fs_open(struct mproc__backend *be)
{
	struct fs_state *fs = calloc(1, sizeof *fs);
	int sv[2] = {-1, -1};
	int *closelist = NULL;
	int rc = -ENOMEM;
	if (!fs)
		return rc;
	fs->fd = -1;
	/* Room for a report per worker from the start (fs_stash): growing
	 * it while a reaper waits could fail, and a dropped report would
	 * leave that reaper waiting forever (join after an allocation
	 * failure hung in fs_reap). */
	fs->exits = reallocarray(NULL, be->nworkers, sizeof *fs->exits);
	if (!fs->exits) {
		free(fs);
		return rc;
	}
	fs->cap = be->nworkers;
	/* Forked with the registry locked, it closes every other mproc
	 * descriptor, as a worker does. */
	mproc__fdreg_lock();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		goto fail;
	}
	struct mproc__server_plan sp = {
		.ctl = sv[1],
		.pdeathsig = gettid() == getpid(),
		.manager = getpid(),
		.nworkers = be->nworkers,
		.status = be->status,
		.opts = be->opts,
		.oob = be->oob,
	};
	closelist = mproc__fdreg_list_locked(&sv[0], 1, &sp.nclose);
	if (!closelist || mproc__fdreg_reserve_locked(1) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	sp.close_fds = closelist;
	if ((rc = mproc__server_fork(&sp, &fs->pid)) < 0)
		goto fail;
	close(sv[1]);
	fs->fd = sv[0];
	(void)mproc__fdreg_add_locked(fs->fd);
	mproc__fdreg_unlock();
	free(closelist);
	be->state = fs;
	return 0;
fail:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	mproc__fdreg_unlock();
	free(closelist);
	free(fs->exits);
	free(fs);
	return rc;
}

/* Keep an EXITED report for a worker reaped later. At most one per worker
 * waits here, since every death is reaped soon after it is seen, and
 * fs_open made room for that many; the array grows rather than drop one
 * (a dropped report would leave its reaper waiting). */
static void fs_stash(struct fs_state *fs, const struct mproc__fs_msg *m)
{
	if (fs->nexits == fs->cap) {
		size_t cap = fs->cap ? fs->cap * 2 : 16;
		struct fs_exit *e = reallocarray(fs->exits, cap, sizeof *e);
		if (!e)
			return; /* out of memory: its reaper waits for the server to end */
		fs->exits = e;
		fs->cap = cap;
	}
	fs->exits[fs->nexits++] = (struct fs_exit){
		.pid = m->pid, .code = m->code, .status = m->status};
}

/* Ask the server for worker `number` with these pipe ends; its pid. */
static int fs_request(struct fs_state *fs, unsigned number, int region,
                      int task_rd, int result_wr, pid_t *pid)
{
	struct mproc__fs_msg m = {.type = MPROC__FS_SPAWN, .number = number,
	                          .region = region};
	int fds[2] = {task_rd, result_wr};
	if (mproc__fs_send(fs->fd, &m, fds, 2) < 0)
		return -EPIPE;
	for (;;) {
		int got[2], ngot = 0;
		int r = mproc__fs_recv(fs->fd, &m, got, &ngot);
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		if (r <= 0)
			return r < 0 ? r : -EPIPE;
		if (m.type == MPROC__FS_EXITED) {
			fs_stash(fs, &m);
		} else if (m.type == MPROC__FS_SPAWNED) {
			*pid = m.pid;
			return 0;
		} else if (m.type == MPROC__FS_FAILED) {
			return m.code > 0 ? -m.code : -EAGAIN;
		}
	}
}

static int fs_start(struct mproc__backend *be, struct mproc__proc *p)
{
	struct fs_state *fs = be->state;
	int task[2], result[2];
	int rc;
	if (!fs)
		return -EPIPE;
	/* Locked as for a fork: the server forks from its own copy, but no
	 * other pool may fork a child holding these ends meanwhile. */
	mproc__fdreg_lock();
	if ((rc = mproc__chan_pipes(task, result)) < 0)
		goto fail;
	pid_t pid;
	if ((rc = mproc__fdreg_reserve_locked(3)) < 0 ||
	    (rc = fs_request(fs, p->number, p->region, task[0], result[1], &pid)) < 0)
		goto fail;
	mproc__chan_forked_locked(task, result);
	mproc__fdreg_unlock();
	mproc__proc_started(p, pid, mproc__proc_pidfd(pid), task[1], task[0],
	                    result[0]);
	return 0;
fail:
	mproc__chan_close(task, result);
	mproc__fdreg_unlock();
	/* A server that hung up can start nothing again. */
	return rc == -ECONNRESET ? -EPIPE : rc;
}

static void fs_signal(struct mproc__backend *be, struct mproc__proc *p, int sig)
{
	(void)be;
	mproc__proc_kill(p, sig);
}

static void fs_reap(struct mproc__backend *be, struct mproc__proc *p,
                    siginfo_t *si)
{
	struct fs_state *fs = be->state;
	memset(si, 0, sizeof *si);
	si->si_pid = p->pid;
	/* With the server gone, so is the worker, status unknown. */
	si->si_code = CLD_KILLED;
	si->si_status = SIGKILL;
	while (fs) {
		for (size_t i = 0; i < fs->nexits; i++) {
			if (fs->exits[i].pid != p->pid)
				continue;
			si->si_code = fs->exits[i].code;
			si->si_status = fs->exits[i].status;
			memmove(fs->exits + i, fs->exits + i + 1,
			        (--fs->nexits - i) * sizeof fs->exits[0]);
			return;
		}
		struct mproc__fs_msg m;
		int got[2], ngot = 0;
		int r = mproc__fs_recv(fs->fd, &m, got, &ngot);
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		if (r <= 0)
			return;
		if (m.type == MPROC__FS_EXITED && m.pid == p->pid) {
			si->si_code = m.code;
			si->si_status = m.status;
			return;
		}
		if (m.type == MPROC__FS_EXITED)
			fs_stash(fs, &m);
	}
}

/* No more workers will start: let the server go, and wait for it. */
static void fs_close(struct mproc__backend *be)
{
	struct fs_state *fs = be->state;
	if (!fs)
		return;
	mproc__fdreg_close(&fs->fd);
	int rc;
	do {
		rc = waitpid(fs->pid, NULL, 0);
	} while (rc < 0 && errno == EINTR);
	free(fs->exits);
	free(fs);
	be->state = NULL;
}

const struct mproc__backend_ops mproc__backend_forkserver = {
	.name = "forkserver",
	.processes = true,
	.open = fs_open,
	.start = fs_start,
	.signal = fs_signal,
	.reap = fs_reap,
	.lost = "the pool's fork server died; no worker can start",
	.close = fs_close,
};
