/*
 * backend.h - the backend seam: what starts, signals, stops and reaps a
 * worker, and gives the engine its channel. One file per backend
 * (be_fork.c, be_forkserver.c, be_threads.c), one entry each in the table
 * of backend.c. A backend knows no job, no chunk and no task: it deals in
 * workers and their two descriptors.
 *
 * The engine calls start, signal, is_caller and release with the pool's
 * lock held, from the thread that drives the pool (or terminates it);
 * reap with the lock held for processes, and let go for threads (a thread
 * is joined, and its task may call the pool meanwhile): reap touches
 * nothing but its worker. open and close run while no other thread can
 * use the pool (mproc_pool_open, and its end).
 */
#ifndef MPROC_BACKEND_H
#define MPROC_BACKEND_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "mproc.h"
#include "status.h"

/* One worker as its backend started it: its identity and its channel. */
struct mproc__proc {
	unsigned number;    /* its slot, and its status record's index */
	int region;         /* its region of the buffer arena (oob.h), -1 */
	pid_t pid;          /* 0 when there is none (a thread: a value no
	                     * process has, MPROC__THREAD_PID) */
	int exit_fd;        /* readable once it has ended (a pidfd), or -1 */
	int task_fd;        /* the engine writes TASK frames (non-blocking) */
	int task_guard_fd;  /* the read end, kept so writes never SIGPIPE */
	int result_fd;      /* the engine reads RESULT frames (non-blocking) */
	void *be;           /* the backend's own state of this worker */
};

#define MPROC__THREAD_PID ((pid_t)0x7fffffff)

struct mproc__backend;

struct mproc__backend_ops {
	const char *name;
	/** Workers are processes: a running task can be killed, timed out
	 *  and limited in memory. Without it, a worker ends only between
	 *  tasks, and its result pipe must be read to its end before it is
	 *  reaped (a thread blocked on a full pipe would never end). */
	bool processes;
	/** Workers run on other machines: buffers travel inside records. */
	bool remote;
	/** Set up what the pool's workers need (optional); 0 or -errno. */
	int (*open)(struct mproc__backend *be);
	/** Start worker p->number with a new channel: fills *p. 0 or -errno;
	 *  -EPIPE when the backend can never start one again. */
	int (*start)(struct mproc__backend *be, struct mproc__proc *p);
	/** Ask it to end (SIGTERM) or end it (SIGKILL). */
	void (*signal)(struct mproc__backend *be, struct mproc__proc *p, int sig);
	/** Wait for a worker that is ending; *si says how (si_code CLD_EXITED,
	 *  CLD_KILLED, CLD_DUMPED; si_status). Its state stays until release. */
	void (*reap)(struct mproc__backend *be, struct mproc__proc *p,
	             siginfo_t *si);
	/** Free the backend's state of a reaped worker (optional). */
	void (*release)(struct mproc__backend *be, struct mproc__proc *p);
	/** The calling thread is worker p itself (optional: never). */
	bool (*is_caller)(struct mproc__backend *be, const struct mproc__proc *p);
	/** Why no worker can start again, when start answers -EPIPE. */
	const char *lost;
	/** No worker will start again (optional). */
	void (*close)(struct mproc__backend *be);
	/** Workers of a pool whose `processes` is 0 (optional: the CPUs this
	 *  process may use). */
	unsigned (*cpus)(void);
	/** Whether a task function can run on this backend's workers, asked
	 *  at submission (optional: every one can): 0, or a negative code the
	 *  submitting call answers. */
	int (*task_ok)(struct mproc__backend *be, mproc_task_fn fn);
};

/* A pool's backend: its operations, what they start workers from. */
struct mproc__backend {
	const struct mproc__backend_ops *ops;
	const struct mproc_pool_opts *opts;
	struct mproc__status *status; /* shared records, one per worker */
	unsigned nworkers;
	void *state;                  /* the backend's own (fork server) */
	struct mproc__oob *oob;       /* out-of-band buffers, or NULL */
};

extern const struct mproc__backend_ops mproc__backend_fork;
extern const struct mproc__backend_ops mproc__backend_forkserver;
extern const struct mproc__backend_ops mproc__backend_threads;
/* Only in a build with MPI (config.h: HAVE_MPI). */
extern const struct mproc__backend_ops mproc__backend_mpi;

/* The backend the options ask for (backend.c's table): 0 and *ops;
 * -EINVAL for a backend or start method no entry has; -ENOTSUP for a
 * start method the backend does not have, or for MPI when it cannot be
 * used (not built, or not started by mproc_init). The processes backend
 * is MPI's when MPROC_BACKEND=mpi and mproc_init started MPI; in a job of
 * one rank MPI's is the processes backend (workers run here). */
int mproc__backend_pick(const struct mproc_pool_opts *opts,
                        const struct mproc__backend_ops **ops);

#endif
