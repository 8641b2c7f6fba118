/*
 * server.h - the fork server (server.c): what it needs, prepared before it
 * is forked, and its start. The manager's side is be_forkserver.c.
 */
#ifndef MPROC_SERVER_H
#define MPROC_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "mproc.h"
#include "status.h"

struct mproc__server_plan {
	int ctl;                  /* its end of the control socket */
	const int *close_fds;     /* every other mproc descriptor */
	size_t nclose;
	bool pdeathsig;
	pid_t manager;
	unsigned nworkers;
	struct mproc__status *status; /* the pool's records, one per worker */
	const struct mproc_pool_opts *opts;
	struct mproc__oob *oob;   /* the pool's buffer arena, inherited */
};

/* Fork the fork server (it serves fsproto.h's messages until its control
 * socket ends). 0 and *pid, or -errno. */
int mproc__server_fork(const struct mproc__server_plan *sp, pid_t *pid);

#endif
