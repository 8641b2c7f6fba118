/*
 * child.h - the child side: every line that runs in a worker, from fork()
 * to _exit() (child.c), for workers forked by the manager, by the fork
 * server, and for the worker loop the threads backend runs in a thread.
 *
 * What a child needs is prepared before fork as plain data (struct
 * mproc__child_plan, filled by mproc__child_plan_init), so nothing is
 * decided or allocated in the child before its setup is done.
 */
#ifndef MPROC_CHILD_H
#define MPROC_CHILD_H

#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "mproc.h"
#include "status.h"

struct mproc__child_plan {
	int task_fd;              /* its end of the task channel (reads) */
	int result_fd;            /* its end of the result pipe (writes) */
	const int *close_fds;     /* every other mproc descriptor */
	size_t nclose;
	pid_t manager;            /* getppid() must answer this; 0: a thread */
	bool threaded;            /* runs in a thread of the program */
	_Atomic int *stop;        /* threads: set by terminate, checked per task */
	unsigned number;          /* worker number, for its title */
	unsigned maxtasks;        /* chunks before it retires; 0 = never */
	bool pdeathsig;           /* arm PR_SET_PDEATHSIG (forked by main thread) */
	size_t max_rss;           /* retire past this resident size */
	size_t max_vm;            /* RLIMIT_AS */
	mproc_initializer_fn initializer;
	void *initarg;
	struct mproc__status *status;
	struct mproc_limits limits;
	struct mproc__oob *oob;   /* out-of-band buffers, or NULL (oob.h) */
	int region;               /* its region of the arena, or -1 */
};

/*
 * The one place a plan is filled from the pool's options: worker `number`,
 * its status record `status` (reset here for the new worker). The channel,
 * the close list and who the manager is are the starter's to set.
 */
void mproc__child_plan_init(struct mproc__child_plan *plan,
                            const struct mproc_pool_opts *opts,
                            unsigned number, struct mproc__status *status);

/*
 * Fork a worker that runs `plan` (every signal blocked across the fork, so
 * that no handler of the program runs in the child before its setup).
 * 0 and *pid, or -errno. The caller holds the descriptor registry.
 */
int mproc__child_fork(const struct mproc__child_plan *plan, pid_t *pid);

/*
 * The threads backend's worker: the same loop in a thread (a pthread start
 * routine; arg is its struct mproc__child_plan). Returns its exit status as
 * (void *)(intptr_t), after closing plan->result_fd through the registry.
 */
void *mproc__child_thread(void *arg);

/*
 * Fork a child that runs body(arg), which must end with _exit() (every
 * signal blocked across the fork, the registry forgotten in the child): the
 * one fork() of the library. 0 and *pid, or -errno.
 */
int mproc__child_fork_run(void (*body)(const void *), const void *arg,
                          pid_t *pid);

/* Workers' titles: setproctitle_init once, with main's arguments (the
 * first half of mproc_init, init.c). */
void mproc__child_title_init(int argc, char *argv[], char *envp[]);

/* Default dispositions for every signal, SIGINT ignored: what a child of
 * the pool sets first (async-signal-safe). */
void mproc__child_reset_signals(void);

/*
 * A fatal signal's facts into `st` (signal, si_code, address, backtrace,
 * memory, errno), from a crash handler: async-signal-safe.
 */
void mproc__child_crash_record(struct mproc__status *st, int sig,
                               const siginfo_t *si, int saved_errno);

/* Install `handler` for the fatal signals (SEGV, BUS, FPE, ILL, ABRT, TRAP,
 * SYS) on an alternate stack; `warm`: load the unwinder first (unless the
 * parent did before the fork). In a child. */
void mproc__child_crash_handlers(void (*handler)(int, siginfo_t *, void *),
                                 bool warm);

/*
 * A Process's record, in memory shared with the process that reads its
 * outcome (the program, or with the fork server the server, which passes
 * it on): the crash record, and the result when it is small enough to
 * skip the result pipe (one wakeup of the parent at the child's exit
 * instead of one for the data and one for the exit).
 */
#define MPROC__PROCESS_REC_SIZE 4096
struct mproc__process_rec {
	struct mproc__status status;
	/* Bytes in result[] (a status byte, then the pickle), written before
	 * the child exits; 0: the result, if any, is in the pipe. */
	_Atomic uint32_t result_len;
	unsigned char result[];
};
/* Room for the result: what a record holds less 64 bytes, so that the
 * fork server passes a record on in one write of at most PIPE_BUF. */
#define MPROC__PROCESS_RESULT_MAX \
	(MPROC__PROCESS_REC_SIZE - sizeof(struct mproc__process_rec) - 64)

/* What a Process's child needs, prepared before fork (process.c). */
struct mproc__process_plan {
	mproc_task_fn fn;
	const void *arg;          /* the argument's pickle */
	size_t arglen;
	int result_fd;            /* write end of its result pipe */
	const int *close_fds;     /* the pools' descriptors, its read end */
	size_t nclose;
	struct mproc__process_rec *rec; /* shared: crash record, small result */
	pid_t parent;
	bool daemon;              /* dies with the thread that started it */
	const char *name;         /* its title in ps */
	struct mproc_limits limits;
};

/* Fork a Process's child running `plan`; 0 and *pid, or -errno. */
int mproc__child_process(const struct mproc__process_plan *plan, pid_t *pid);

#endif
