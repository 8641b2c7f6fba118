/*
 * server.c - the fork server's whole life, from its fork to its _exit: a
 * copy of the program as it was when the pool opened, with one thread,
 * that forks each worker it is asked for (mproc__child_fork, with the two
 * pipe ends that come with the request), reaps them (they are its
 * children) and reports how each ended (fsproto.h). When the manager
 * closes its end, or dies, it kills what is left (its workers armed their
 * death signal on it, so they go with it too), reaps it and exits.
 * The program's Process server (nworkers 0) forks Processes instead
 * (server_process.c) and, when the program goes, exits at once: its
 * daemons die with it (their death signal), the others go on.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "fsproto.h"
#include "server.h"

/* Reap the workers that ended and report each; kids[] (a pid per worker
 * slot) forgets them. */
static void server_report_exits(int ctl, pid_t *kids, unsigned n)
{
	for (;;) {
		siginfo_t si = {0};
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
			return;
		if (mproc__server_process_exited(&si))
			continue;
		for (unsigned i = 0; i < n; i++)
			if (kids[i] == si.si_pid)
				kids[i] = 0;
		struct mproc__fs_msg m = {.type = MPROC__FS_EXITED,
		                          .pid = si.si_pid, .code = si.si_code,
		                          .status = si.si_status};
		(void)mproc__fs_send(ctl, &m, NULL, 0);
	}
}

/* One SPAWN request: fork its worker and answer; its pid, or 0. */
static pid_t server_spawn(const struct mproc__server_plan *sp, int sfd,
                          const struct mproc__fs_msg *m, const int fds[2])
{
	int keep[2] = {sp->ctl, sfd};
	struct mproc__child_plan plan;
	mproc__child_plan_init(&plan, sp->opts, m->number,
	                       &sp->status[m->number]);
	plan.task_fd = fds[0];
	plan.result_fd = fds[1];
	plan.oob = sp->oob;
	plan.region = m->region;
	plan.close_fds = keep;
	plan.nclose = sfd >= 0 ? 2 : 1;
	plan.manager = getpid();
	plan.pdeathsig = true; /* this process has one thread */
	pid_t pid = 0;
	int rc = mproc__child_fork(&plan, &pid);
	close(fds[0]);
	close(fds[1]);
	struct mproc__fs_msg reply = {
		.type = rc == 0 ? MPROC__FS_SPAWNED : MPROC__FS_FAILED,
		.pid = pid, .code = -rc};
	if (mproc__fs_send(sp->ctl, &reply, NULL, 0) < 0)
		_exit(0);
	return rc == 0 ? pid : 0;
}

/* A Process's request: its fixed part and an argument sent inline. */
static unsigned char server_payload[sizeof(struct mproc__fs_process) +
                                    MPROC__FS_INLINE_ARG];

static void server_main(const void *arg)
{
	const struct mproc__server_plan *sp = arg;
	if (sp->pdeathsig)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != sp->manager)
		_exit(0);
	for (size_t i = 0; i < sp->nclose; i++)
		close(sp->close_fds[i]);
	mproc__child_reset_signals();
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_SETMASK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	prctl(PR_SET_NAME, "mproc-forksrv");
	pid_t kids[sp->nworkers + 1]; /* its workers, by slot; 0: none */
	for (unsigned i = 0; i < sp->nworkers; i++)
		kids[i] = 0;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = sp->ctl, .events = POLLIN},
		                        {.fd = sfd, .events = POLLIN}};
		if (poll(pfd, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100) < 0 &&
		    errno != EINTR)
			_exit(70);
		if (sfd < 0 || pfd[1].revents) {
			struct signalfd_siginfo ssi;
			while (sfd >= 0 && read(sfd, &ssi, sizeof ssi) > 0)
				;
			server_report_exits(sp->ctl, kids, sp->nworkers);
		}
		if (!pfd[0].revents)
			continue;
		struct mproc__fs_msg m;
		int fds[MPROC__FS_MAXFDS], nfds = 0;
		size_t len = 0;
		int r = mproc__fs_recvv(sp->ctl, &m, server_payload,
		                        sizeof server_payload, &len, fds, &nfds);
		if (r == -EPROTO)
			continue;
		if (r <= 0 && !sp->nworkers)
			_exit(0); /* Processes: daemons die with it, others go on */
		if (r <= 0) {
			/* The manager is done, or dead: end what is left (after a
			 * join nothing is), reap it, then go. */
			for (unsigned i = 0; i < sp->nworkers; i++)
				if (kids[i] > 0)
					kill(kids[i], SIGKILL);
			while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
				;
			_exit(0);
		}
		if (m.type == MPROC__FS_PROCESS && !sp->nworkers) {
			int own[2] = {sp->ctl, sfd};
			mproc__server_process_spawn(sp->ctl, own, sfd >= 0 ? 2 : 1,
			                            server_payload, len, fds, nfds);
			continue;
		}
		if (m.type != MPROC__FS_SPAWN || nfds != 2 ||
		    m.number >= sp->nworkers) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		kids[m.number] = server_spawn(sp, sfd, &m, fds);
	}
}

int mproc__server_fork(const struct mproc__server_plan *sp, pid_t *pid)
{
	return mproc__child_fork_run(server_main, sp, pid);
}
