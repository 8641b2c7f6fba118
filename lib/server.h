/*
 * server.h - the fork server (server.c): what it needs, prepared before it
 * is forked, and its start. The manager's side is be_forkserver.c.
 */
#ifndef MPROC_SERVER_H
#define MPROC_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc.h"
#include "status.h"

struct mproc__server_plan {
	int ctl;                  /* its end of the control socket */
	const int *close_fds;     /* every other mproc descriptor */
	size_t nclose;
	bool pdeathsig;
	pid_t manager;
	unsigned nworkers;        /* 0: the program's Process server */
	struct mproc__status *status; /* the pool's records, one per worker */
	const struct mproc_pool_opts *opts;
	struct mproc__oob *oob;   /* the pool's buffer arena, inherited */
};

/* A Process's request, in the server (server_process.c): fork its child
 * and answer on ctl. `own`: the server's descriptors, for the child to
 * close; fds (nfds) came with the request and are used or closed here. */
void mproc__server_process_spawn(int ctl, const int *own, size_t nown,
                                 const void *payload, size_t len,
                                 const int *fds, int nfds);

/* A child the server reaped: true if it was a Process's (its outcome is
 * written on its exit pipe), false if it is not one. */
bool mproc__server_process_exited(const siginfo_t *si);

/* Fork the fork server (it serves fsproto.h's messages until its control
 * socket ends). 0 and *pid, or -errno. */
int mproc__server_fork(const struct mproc__server_plan *sp, pid_t *pid);

#endif
