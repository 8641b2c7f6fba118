/*
 * pool.h - the manager's private structures, shared by pool.c (workers and
 * the progress engine), job.c (inputs and results of one call), iter.c and
 * async.c (the caller-facing handles), and worker.c (the child's plan).
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include "mproc.h"
#include "buf.h"
#include "pickle.h"
#include "wire.h"

/*
 * Each worker's status record, in memory shared with the manager: which
 * task it is running (the manager's timeout watch times it from when it
 * first sees it), so that a death is attributed to the exact task without
 * a syscall per task.
 */
#define MPROC__MAX_FRAMES 32

struct mproc__status {
	_Atomic uint64_t task_id;  /* id of the running task, 0 when idle */
	_Atomic uint64_t last_id;  /* suspects (TF_CHECK): last task started */
	_Atomic uint64_t ready_ns; /* CLOCK_MONOTONIC when setup finished */
	/* Written by the crash handler, read after the worker is reaped. */
	_Atomic int crash_signal;
	int crash_code;
	uint64_t crash_addr;
	uint64_t crash_rss;        /* resident bytes at the crash */
	uint64_t crash_vm;         /* address-space bytes at the crash */
	uint32_t nframes;
	uint64_t frames[MPROC__MAX_FRAMES];
	/* Suspect mode: the task that broke the worker's channel. */
	_Atomic uint64_t culprit;
	/* Set before a worker exits past max_rss, so that the exit status
	 * alone (which a task could also use) never reads as a retirement. */
	_Atomic uint32_t retired_rss;
};

/* Exit status of a worker that retired itself past max_rss. */
#define MPROC__EXIT_MEMORY 86

/* Everything a child needs, prepared before fork as plain data. */
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
};

/* Default signal dispositions, SIGINT ignored (worker.c). */
void mproc__reset_signals(void);

/* Runs in the child after fork; never returns. */
_Noreturn void mproc__worker_main(const struct mproc__child_plan *plan);

/* The threads backend's worker: the same loop in a thread (pthread start
 * routine, arg a struct mproc__child_plan). Returns its exit status as
 * (void *)(intptr_t), after closing plan->result_fd. */
void *mproc__worker_thread(void *arg);

/* Close a descriptor of the registry and set *fd to -1 (pool.c). */
void mproc__fd_close(int *fd);

/* In a new child: forget the parent's descriptor registry (pool.c). */
void mproc__fdreg_child(void);

/* Title support (worker.c). */
extern bool mproc__title_ready;

uint64_t mproc__now_ns(void);
uint64_t mproc__coarse_ns(void);

enum mproc__job_kind {
	MPROC__JOB_ALL,       /* map, apply: every result kept, in order */
	MPROC__JOB_ORDERED,   /* imap */
	MPROC__JOB_UNORDERED, /* imap_unordered */
};

/* Where one result waits: in a job's slot (iterators) or its table. */
struct mproc__slot {
	size_t index;
	enum mproc_status status;
	unsigned attempts;
	bool ready;
	const struct mproc_value *tiny; /* an OK None, bool or small int */
	struct mproc__buf data; /* iterators: the result's pickle (empty when
	                         * `tiny` holds it) */
};

/* ALL jobs: result pickles, records and errors live in blocks that never
 * move, because decoded trees, the table and results point into them. */
struct mproc__block {
	struct mproc__block *next;
	size_t len, cap;
	_Alignas(max_align_t) char data[];
};

/* A result's error, with room for its crash. */
struct mproc__error {
	struct mproc_error e;
	struct mproc_crash c;
};

/* A call's results, as mproc_results_get() reads them. */
struct mproc_results {
	size_t count;
	size_t failed;
	const uintptr_t *slots; /* a word per item (job.c) */
};

struct mproc__job {
	struct mproc_pool *pool;
	TAILQ_ENTRY(mproc__job) link; /* in pool->pending while input is left */
	TAILQ_ENTRY(mproc__job) alink; /* in pool->jobs from submit to free */
	bool in_jobs;
	bool queued;
	enum mproc__job_kind kind;
	mproc_task_fn fn;
	uint8_t flags;          /* MPROC__TF_* for its task frames */
	uint8_t pack;           /* MPROC__TF_RANGE, _INTS, _FLOATS, or 0 */
	size_t chunksize;

	/* Input: a generator, or records read ahead (apply; map with no len). */
	struct mproc_input in;
	bool use_pre;
	struct mproc__buf pre;  /* records: u32 len, pickle */
	size_t pre_off;
	size_t pulled;          /* items taken from the input so far */
	bool input_done;
	int input_err;

	/* Results. */
	size_t completed;       /* results stored */
	size_t delivered;       /* iterators: results handed out */
	size_t window;          /* iterators: most results pulled ahead */
	struct mproc__slot *slots; /* iterators: a power of two > window */
	size_t nslots;
	uintptr_t *table;       /* ALL: a word per input, filled on arrival */
	size_t ntable;
	size_t failed;
	size_t uhead, ucount;   /* unordered: FIFO of ready slots */
	struct mproc__block *blocks; /* ALL: result pickles, newest first */
	struct mproc_decoder *dec;
	struct mproc_result cur;   /* iterators: the result handed out */
	struct mproc__error curerr; /* iterators: its error, if any */
	struct mproc__block *recs; /* ALL: records of its results, errors */
	struct mproc_results results; /* ALL: filled when done */
	int final_rc;

	unsigned inflight;      /* chunks of this job on workers */
	uint64_t timeout_ns;    /* per-call timeout; 0: the pool's; MAX: none */
	bool done;              /* every pulled task has its result */
	bool user_released;     /* the caller freed its handle */
	struct mproc_callbacks cb;
	TAILQ_ENTRY(mproc__job) cblink; /* in pool->callbacks when due */
	bool cb_queued;
};


/* One chunk in flight on a worker. */
struct mproc__chunk {
	struct mproc__job *job;
	size_t index;       /* input index of its first task */
	uint64_t id;        /* id of its first task */
	uint32_t count;     /* tasks in the chunk */
	uint32_t done;      /* results received */
	uint16_t attempts;  /* runs of its tasks so far, this one included */
	bool suspect;       /* one task that may have broken a worker */
	size_t frame_len;   /* bytes of its TASK frame in the worker's out */
};

/* A thread worker's pid: never a real process, so that a signal sent by
 * mistake finds nobody (mproc__worker_signal never sends one to it). */
#define MPROC__THREAD_PID ((pid_t)0x7fffffff)

struct mproc__worker {
	unsigned number;
	pid_t pid;          /* 0 when there is no worker; MPROC__THREAD_PID */
	bool threaded;      /* a thread of the threads backend */
	pthread_t thread;
	_Atomic int stop;   /* threads: stop before the next task */
	struct mproc__child_plan tplan; /* threads: the plan it runs on */
	int pidfd;
	int task_fd;        /* manager's end, non-blocking pipe */
	int task_guard_fd;  /* the read end, kept so writes never SIGPIPE */
	int result_fd;      /* manager's end, non-blocking pipe */
	bool retiring;      /* sent its last chunk (maxtasksperchild) */
	unsigned chunks_sent;
	struct mproc__buf out; /* [acked | in flight, sent | unsent] frames */
	size_t out_acked, out_sent;
	struct mproc__buf in;
	size_t in_off;       /* in: bytes parsed, dropped when room runs out */
	struct mproc__chunk *q; /* ring of chunks in flight, oldest first */
	size_t qhead, qlen, qcap;
	size_t inflight_tasks;
	double ns_per_task;  /* running average reported by the worker */
	bool suspect;        /* runs a suspect task: nothing else is sent */
	uint64_t seen_id;    /* running task the timeout watch last saw */
	uint64_t seen_ns;    /* coarse clock when it first saw it */
	uint64_t term_at;    /* when the pool sent SIGTERM (timeout), or 0 */
	uint64_t timeout_task; /* the task that ran past its timeout */
	uint64_t timeout_ns;   /* the timeout it ran past */
	bool killed;         /* SIGKILL sent after the grace period */
	uint64_t death_ns;   /* last death seen, until the replacement is ready */
	uint64_t spawned_ns; /* coarse clock at its fork */
	uint64_t respawn_at; /* empty slot: next fork attempt (coarse clock) */
	uint64_t respawn_backoff;
};

TAILQ_HEAD(mproc__jobq, mproc__job);

/* How a fork server's worker ended, kept until the manager reaps it. */
struct mproc__fs_exit {
	pid_t pid;
	int code, status;
};

enum mproc__pool_state { MPROC__RUN, MPROC__CLOSED, MPROC__TERMINATED };

struct mproc_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool driving;           /* one thread at a time runs the engine */
	unsigned engine_wanted; /* threads in pool_take_engine (terminate, join) */
	bool cb_running;        /* a callback runs, in thread cb_thread */
	pthread_t cb_thread;
	int wakefd;             /* eventfd: wakes the driver out of poll */
	bool polling;
	enum mproc__pool_state state;
	bool joined;
	struct mproc_pool_opts opts;
	unsigned nworkers;
	struct mproc__worker *workers;
	struct pollfd *pfd;           /* the driver's ppoll set */
	struct mproc__status *status; /* shared mapping, one per worker */
	size_t status_len;
	uint64_t next_id;
	struct mproc__jobq pending;   /* jobs with input left, FIFO */
	struct mproc__jobq callbacks; /* jobs whose callbacks are due */
	struct mproc__jobq jobs;      /* every submitted job not yet freed */
	size_t active;                /* jobs not done */
	/* Chunks taken back from dead workers, to run again first. */
	struct mproc__buf requeue;    /* their TASK frames */
	struct mproc__chunk *rq;
	size_t rqhead, rqlen, rqcap;
	size_t rq_off;                /* bytes of requeue already re-sent */
	struct mproc_writer *w;       /* encodes inputs into frames */
	struct mproc_decoder *spare_dec; /* kept from a finished small job */
	uint64_t timeout_ns, grace_ns;  /* from the options; 0: no timeout */
	size_t call_timeouts;           /* live jobs with a timeout of their own */
	struct mproc_pool_stats stats;
	double replace_total;           /* seconds, for stats.replace_mean */
	uint64_t replace_count;
	unsigned start_failures;        /* workers in a row dead before ready */
	bool broken;                    /* workers cannot start: tasks fail */
	pid_t fs_pid;                   /* the fork server, 0 with plain fork */
	int fs_fd;                      /* its control socket */
	struct mproc__fs_exit *fs_exits; /* exits reported, not yet reaped */
	size_t fs_nexits, fs_cap;
	char broken_msg[240];
	size_t max_frame;
};

/* Engine (pool.c). All take pool->mu held. */
uint64_t mproc__deadline(double timeout);
int mproc__pool_wait(struct mproc_pool *pool, bool (*ready)(void *), void *arg,
                     uint64_t deadline);
void mproc__pool_kick(struct mproc_pool *pool);
int mproc__pool_submit(struct mproc_pool *pool, struct mproc__job *job);

/* Workers and chunks (pool.c), for fault.c. */
int mproc__pool_spawn(struct mproc_pool *pool, struct mproc__worker *w);
void mproc__worker_reap(struct mproc_pool *pool, struct mproc__worker *w,
                        siginfo_t *si);
void mproc__worker_close(struct mproc__worker *w);
void mproc__worker_signal(struct mproc__worker *w, int sig);
int mproc__worker_read(struct mproc_pool *pool, struct mproc__worker *w,
                       int max_reads);
int mproc__rq_push(struct mproc_pool *pool, const struct mproc__chunk *c);
void mproc__chunk_finish(struct mproc__chunk *c);
void mproc__job_maybe_free(struct mproc__job *job);

/* The fork server (forkserver.c). */
int mproc__fs_start(struct mproc_pool *pool, const int *close_fds,
                    size_t nclose);
int mproc__fs_spawn(struct mproc_pool *pool, unsigned number, int task_rd,
                    int result_wr, pid_t *pid);
void mproc__fs_reap(struct mproc_pool *pool, pid_t pid, siginfo_t *si);
void mproc__fs_stop(struct mproc_pool *pool);

/* Faults (fault.c). */
void mproc__worker_died(struct mproc_pool *pool, struct mproc__worker *w);
uint64_t mproc__fault_watch(struct mproc_pool *pool);
void mproc__fault_count(struct mproc_pool *pool, enum mproc_status status);
void mproc__fault_respawn(struct mproc_pool *pool);

/* Jobs (job.c). */
struct mproc__job *mproc__job_new(struct mproc_pool *pool,
                                  enum mproc__job_kind kind, mproc_task_fn fn,
                                  size_t chunksize, uint8_t flags);
void mproc__job_free(struct mproc__job *job);
int mproc__job_set_opts(struct mproc__job *job, const struct mproc_call_opts *co);
int mproc__job_set_input(struct mproc__job *job, const struct mproc_input *in);
int mproc__job_set_arg(struct mproc__job *job, const void *arg, size_t len);
int mproc__job_read_all(struct mproc__job *job);
/* Up to n tasks of job's input as records at the end of out, stopping once
 * out->len reaches `limit`; returns how many (input_done set at the end). */
size_t mproc__job_pull(struct mproc__job *job, struct mproc__buf *out,
                       size_t n, size_t limit);
size_t mproc__job_room(const struct mproc__job *job);
int mproc__job_store(struct mproc__job *job, size_t index,
                     enum mproc_status status, unsigned attempts,
                     const void *payload, size_t len);
int mproc__job_store_run(struct mproc__job *job, size_t index,
                         unsigned attempts, const char *p, const char *end,
                         uint32_t count, size_t *stored);
void mproc__job_check_done(struct mproc__job *job);
void mproc__job_cancel(struct mproc__job *job, size_t index, size_t count);
int mproc__job_finalize(struct mproc__job *job);
/* The caller's handle is freed (takes the pool's lock; a job whose pool
 * was freed first is freed at once). */
void mproc__job_release(struct mproc__job *job);
int mproc__job_result(struct mproc__job *job, enum mproc_status status,
                      unsigned attempts, size_t index, const void *p,
                      size_t len, struct mproc_result *out);

#endif
