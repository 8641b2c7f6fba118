/*
 * chan.h - what the backends share (chan.c): a worker's channel (two
 * pipes), the end of its descriptors, and signalling a process. Below
 * every backend file; the engine does not use it.
 */
#ifndef MPROC_CHAN_H
#define MPROC_CHAN_H

#include "backend.h"

/* A worker's two pipes, registry locked by the caller: task[0] the worker
 * reads, task[1] the engine writes; result[1] the worker writes,
 * result[0] the engine reads. The engine's ends do not block. 0 or
 * -errno, with every end -1 on failure. */
int mproc__chan_pipes(int task[2], int result[2]);
/* Close what chan_pipes made (ends < 0 skipped). */
void mproc__chan_close(int task[2], int result[2]);
/* A worker process was forked with the pipes, registry still locked:
 * register the three ends later children must close, and close
 * result[1], which only the worker writes. */
void mproc__chan_forked_locked(int task[2], int result[2]);

/* Fill p with a started worker's identity and the engine's ends. */
void mproc__proc_started(struct mproc__proc *p, pid_t pid, int exit_fd,
                         int task_wr, int task_rd, int result_rd);

/* The process side's signal: through its pidfd (no pid reuse race),
 * else by pid. */
void mproc__proc_kill(struct mproc__proc *p, int sig);

/* A process's pidfd, registered; -1 where the kernel has none. */
int mproc__proc_pidfd(pid_t pid);

#endif
