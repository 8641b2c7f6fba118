/*
 * forkserver.c - the "forkserver" start method: workers forked by a small
 * process that was itself forked when the pool opened.
 *
 * With plain fork, a replacement worker is a copy of the program as it is
 * when the old worker died: its memory has moved on, and its other threads
 * may hold locks that the copy will never see released. The fork server is
 * a copy of the program as it was at mproc_pool_open, and it never starts a
 * thread, so every worker it forks — the first ones and every replacement —
 * starts from that same state.
 *
 * Protocol, over a SOCK_SEQPACKET pair (one message per packet):
 *   manager -> server  SPAWN {number}, with the worker's two pipe ends
 *                      (task read end, result write end) as SCM_RIGHTS
 *   server -> manager  SPAWNED {pid} or FAILED {errno}, in answer
 *   server -> manager  EXITED {pid, si_code, si_status} when a worker ends
 * The server reaps its workers (they are its children) and reports how each
 * ended; the manager watches them through pidfds and signals them directly.
 * When the manager closes its end, the server reaps what is left and exits.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

enum { FS_SPAWN = 1, FS_SPAWNED, FS_FAILED, FS_EXITED };

struct fs_msg {
	uint32_t type;
	uint32_t number; /* SPAWN */
	int32_t pid;     /* SPAWNED, EXITED */
	int32_t code;    /* FAILED: errno; EXITED: si_code */
	int32_t status;  /* EXITED: si_status */
};

static int fs_send(int fd, const struct fs_msg *m, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof *m};
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		memset(&u, 0, sizeof u);
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	ssize_t n;
	do {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof *m ? 0 : -EPIPE;
}

/* One message; 1, 0 at end of file, or -errno. fds[] gets what came. */
static int fs_recv(int fd, struct fs_msg *m, int *fds, int *nfds)
{
	struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
	                     .msg_control = u.buf,
	                     .msg_controllen = sizeof u.buf};
	ssize_t n;
	do {
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	*nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (k > 2)
				k = 2;
			memcpy(fds, CMSG_DATA(c), k * sizeof(int));
			*nfds = (int)k;
		}
	}
	return n == (ssize_t)sizeof *m ? 1 : -EPROTO;
}

/* ---- the server (a child of the manager) ------------------------------ */

static void fs_report_exits(int ctl)
{
	for (;;) {
		siginfo_t si = {0};
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
			return;
		struct fs_msg m = {.type = FS_EXITED, .pid = si.si_pid,
		                   .code = si.si_code, .status = si.si_status};
		(void)fs_send(ctl, &m, NULL, 0);
	}
}

static _Noreturn void fs_serve(struct mproc_pool *pool, int ctl,
                               const int *close_fds, size_t nclose,
                               bool pdeathsig, pid_t manager)
{
	if (pdeathsig)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != manager)
		_exit(0);
	for (size_t i = 0; i < nclose; i++)
		close(close_fds[i]);
	mproc__fdreg_child();
	mproc__reset_signals();
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_SETMASK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	prctl(PR_SET_NAME, "mproc-forksrv");
	pid_t self = getpid();

	for (;;) {
		struct pollfd pfd[2] = {{.fd = ctl, .events = POLLIN},
		                        {.fd = sfd, .events = POLLIN}};
		if (poll(pfd, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100) < 0 &&
		    errno != EINTR)
			_exit(70);
		if (sfd < 0 || pfd[1].revents) {
			struct signalfd_siginfo ssi;
			while (sfd >= 0 && read(sfd, &ssi, sizeof ssi) > 0)
				;
			fs_report_exits(ctl);
		}
		if (!pfd[0].revents)
			continue;
		struct fs_msg m;
		int fds[2] = {-1, -1}, nfds = 0;
		int r = fs_recv(ctl, &m, fds, &nfds);
		if (r <= 0) {
			/* The manager is done: reap what is left, then go. */
			while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
				;
			_exit(0);
		}
		if (m.type != FS_SPAWN || nfds != 2 || m.number >= pool->nworkers) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		int keep[2] = {ctl, sfd};
		struct mproc__child_plan plan = {
			.task_fd = fds[0],
			.result_fd = fds[1],
			.close_fds = keep,
			.nclose = sfd >= 0 ? 2 : 1,
			.manager = self,
			.number = m.number,
			.maxtasks = pool->opts.maxtasksperchild,
			.max_rss = pool->opts.max_rss,
			.max_vm = pool->opts.max_vm,
			.pdeathsig = true, /* this process has one thread */
			.initializer = pool->opts.initializer,
			.initarg = pool->opts.initarg,
			.status = &pool->status[m.number],
			.limits = pool->opts.limits,
		};
		atomic_store(&plan.status->task_id, 0);
		atomic_store(&plan.status->retired_rss, 0);
		pid_t pid = fork();
		if (pid == 0)
			mproc__worker_main(&plan);
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		struct fs_msg reply = {.type = pid > 0 ? FS_SPAWNED : FS_FAILED,
		                       .pid = pid, .code = pid > 0 ? 0 : e};
		if (fs_send(ctl, &reply, NULL, 0) < 0)
			_exit(0);
	}
}

/* ---- the manager's side --------------------------------------------- */

int mproc__fs_start(struct mproc_pool *pool, const int *close_fds,
                    size_t nclose)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	int *all = reallocarray(NULL, nclose + 1, sizeof *all);
	if (!all) {
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	memcpy(all, close_fds, nclose * sizeof *all);
	all[nclose] = sv[0];
	bool pdeathsig = gettid() == getpid();
	pid_t manager = getpid();
	sigset_t every, old;
	sigfillset(&every);
	pthread_sigmask(SIG_SETMASK, &every, &old);
	pid_t pid = fork();
	if (pid == 0)
		fs_serve(pool, sv[1], all, nclose + 1, pdeathsig, manager);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	free(all);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -e;
	}
	pool->fs_pid = pid;
	pool->fs_fd = sv[0];
	return 0;
}

/* Keep an EXITED report for a worker reaped later. At most one per worker
 * waits here, since every death is reaped soon after it is seen; the
 * array grows rather than drop one (a dropped report would leave its
 * reaper waiting). */
static void fs_stash(struct mproc_pool *pool, const struct fs_msg *m)
{
	if (pool->fs_nexits == pool->fs_cap) {
		size_t cap = pool->fs_cap ? pool->fs_cap * 2 : 16;
		struct mproc__fs_exit *e =
		        reallocarray(pool->fs_exits, cap, sizeof *e);
		if (!e)
			return; /* out of memory: its reaper waits for the server to end */
		pool->fs_exits = e;
		pool->fs_cap = cap;
	}
	pool->fs_exits[pool->fs_nexits++] = (struct mproc__fs_exit){
		.pid = m->pid, .code = m->code, .status = m->status};
}

int mproc__fs_spawn(struct mproc_pool *pool, unsigned number, int task_rd,
                    int result_wr, pid_t *pid)
{
	struct fs_msg m = {.type = FS_SPAWN, .number = number};
	int fds[2] = {task_rd, result_wr};
	if (fs_send(pool->fs_fd, &m, fds, 2) < 0)
		return -EPIPE;
	for (;;) {
		int got[2], ngot = 0;
		int r = fs_recv(pool->fs_fd, &m, got, &ngot);
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		if (r <= 0)
			return r < 0 ? r : -EPIPE;
		if (m.type == FS_EXITED) {
			fs_stash(pool, &m);
		} else if (m.type == FS_SPAWNED) {
			*pid = m.pid;
			return 0;
		} else if (m.type == FS_FAILED) {
			return m.code > 0 ? -m.code : -EAGAIN;
		}
	}
}

void mproc__fs_reap(struct mproc_pool *pool, pid_t pid, siginfo_t *si)
{
	memset(si, 0, sizeof *si);
	for (;;) {
		for (size_t i = 0; i < pool->fs_nexits; i++) {
			if (pool->fs_exits[i].pid != pid)
				continue;
			si->si_pid = pid;
			si->si_code = pool->fs_exits[i].code;
			si->si_status = pool->fs_exits[i].status;
			memmove(pool->fs_exits + i, pool->fs_exits + i + 1,
			        (--pool->fs_nexits - i) * sizeof pool->fs_exits[0]);
			return;
		}
		struct fs_msg m;
		int got[2], ngot = 0;
		int r = fs_recv(pool->fs_fd, &m, got, &ngot);
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		if (r <= 0 || (m.type == FS_EXITED && m.pid == pid)) {
			if (r > 0) {
				si->si_pid = pid;
				si->si_code = m.code;
				si->si_status = m.status;
				return;
			}
			/* The server is gone: so is the worker, status unknown. */
			si->si_pid = pid;
			si->si_code = CLD_KILLED;
			si->si_status = SIGKILL;
			return;
		}
		if (m.type == FS_EXITED)
			fs_stash(pool, &m);
	}
}

void mproc__fs_stop(struct mproc_pool *pool)
{
	if (pool->fs_pid <= 0)
		return;
	if (pool->fs_fd >= 0) {
		close(pool->fs_fd);
		pool->fs_fd = -1;
	}
	int rc;
	do {
		rc = waitpid(pool->fs_pid, NULL, 0);
	} while (rc < 0 && errno == EINTR);
	pool->fs_pid = 0;
	free(pool->fs_exits);
	pool->fs_exits = NULL;
	pool->fs_nexits = pool->fs_cap = 0;
}
