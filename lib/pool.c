/*
 * pool.c - the manager: starting and replacing workers, dispatch,
 * collecting results, and the pool's lifecycle.
 *
 * There is no helper thread. Progress happens inside the calls that wait
 * (mproc__pool_wait): one thread at a time, the driver, runs the engine —
 * dispatch input into per-worker TASK frames, write what the channels take,
 * ppoll() on result pipes, pidfds and a wake eventfd, store what comes back
 * — while other waiting threads sleep on the condition variable. The lock
 * is dropped around ppoll() and around callbacks.
 *
 * Invariants: every task pulled from an input is in exactly one place — a
 * chunk in flight on a worker, a chunk in the requeue, or stored as a
 * result — so a dead worker loses nothing. Every descriptor the pool makes
 * is in the process-wide registry, so each new child closes all of them
 * (fork does not honour O_CLOEXEC, and a stray copy of a task channel
 * would hide its EOF from the worker that reads it).
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>


#include "config.h"
#include "input.h"
#include "pool.h"

#define DEPTH_TARGET_NS 200000.0    /* queue ~200 us of work per worker */
#define DEPTH_MIN 2
#define DEPTH_MAX 512
#define DEPTH_START 8

/* ---- the descriptor registry ------------------------------------------ */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static int *reg_fds;
static size_t reg_len, reg_cap;

/* reg_mu held. */
static int reg_add_locked(int fd)
{
	if (reg_len == reg_cap) {
		size_t cap = reg_cap ? reg_cap * 2 : 64;
		int *p = reallocarray(reg_fds, cap, sizeof *p);
		if (!p)
			return -ENOMEM;
		reg_fds = p;
		reg_cap = cap;
	}
	reg_fds[reg_len++] = fd;
	return 0;
}

static int reg_add(int fd)
{
	pthread_mutex_lock(&reg_mu);
	int rc = reg_add_locked(fd);
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

static void reg_close(int *fd)
{
	if (*fd < 0)
		return;
	pthread_mutex_lock(&reg_mu);
	for (size_t i = 0; i < reg_len; i++) {
		if (reg_fds[i] == *fd) {
			reg_fds[i] = reg_fds[--reg_len];
			break;
		}
	}
	close(*fd);
	pthread_mutex_unlock(&reg_mu);
	*fd = -1;
}

void mproc__fd_close(int *fd)
{
	reg_close(fd);
}

void mproc__fdreg_child(void)
{
	/* In a fresh worker: the parent's lock state and list mean nothing. */
	pthread_mutex_init(&reg_mu, NULL);
	reg_len = 0;
}

/* ---- time ---------------------------------------------------------------- */

uint64_t mproc__deadline(double timeout)
{
	if (timeout < 0 || isnan(timeout) || timeout > 1e9)
		return UINT64_MAX;
	return mproc__now_ns() + (uint64_t)(timeout * 1e9);
}

/* ---- workers --------------------------------------------------------- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Fill in a worker slot whose channels (manager's ends) are ready. */
static void worker_started(struct mproc__worker *w, pid_t pid, int task_wr,
                           int task_rd, int result_rd)
{
	w->pid = pid;
	w->task_fd = task_wr;
	w->task_guard_fd = task_rd;
	w->result_fd = result_rd;
	w->retiring = false;
	w->chunks_sent = 0;
	w->out.len = w->out_acked = w->out_sent = 0;
	w->in.len = w->in_off = 0;
	/* A retried task keeps its id: on the new worker it is timed anew. */
	w->seen_id = 0;
	w->qhead = w->qlen = 0;
	w->inflight_tasks = 0;
	w->spawned_ns = mproc__coarse_ns();
	w->respawn_backoff = 0;
}

static void pipes_close(int sv[2], int pp[2])
{
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (pp[i] >= 0)
			close(pp[i]);
	}
}

/*
 * A worker's two pipes, reg_mu held. sv: the task pipe, the worker reads
 * sv[0], the manager writes sv[1] and keeps sv[0] open too, so that a write
 * to a dead worker's pipe never raises SIGPIPE in the host program: there
 * is always a reader. pp: the result pipe, bigger so that a batch of
 * results goes in one write. The manager's ends do not block.
 */
static int worker_pipes(int sv[2], int pp[2])
{
	int rc;
	if (pipe2(sv, O_CLOEXEC) < 0 || pipe2(pp, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	(void)fcntl(pp[1], F_SETPIPE_SZ, 256 * 1024);
	if ((rc = set_nonblock(sv[1])) < 0 || (rc = set_nonblock(pp[0])) < 0)
		goto fail;
	return 0;
fail:
	pipes_close(sv, pp);
	sv[0] = sv[1] = pp[0] = pp[1] = -1;
	return rc;
}

/*
 * The threads backend: the same two pipes, and a thread where a process
 * would be. The thread owns the result pipe's write end and closes it when
 * it ends; every end stays in the registry meanwhile, so that a process
 * pool's worker forked in between closes them and never hides their end of
 * file.
 */
static int pool_spawn_thread(struct mproc_pool *pool, struct mproc__worker *w)
{
	int sv[2] = {-1, -1}, pp[2] = {-1, -1};
	int rc;

	pthread_mutex_lock(&reg_mu);
	if ((rc = worker_pipes(sv, pp)) < 0)
		goto fail;
	if (reg_cap < reg_len + 4) {
		/* Room first, so that the four adds below cannot fail. */
		int *p = reallocarray(reg_fds, reg_len + 64, sizeof *p);
		if (!p) {
			rc = -ENOMEM;
			goto fail;
		}
		reg_fds = p;
		reg_cap = reg_len + 64;
	}
	w->tplan = (struct mproc__child_plan){
		.task_fd = sv[0],
		.result_fd = pp[1],
		.number = w->number,
		.threaded = true,
		.stop = &w->stop,
		.maxtasks = pool->opts.maxtasksperchild,
		.initializer = pool->opts.initializer,
		.initarg = pool->opts.initarg,
		.status = &pool->status[w->number],
		.limits = pool->opts.limits,
	};
	atomic_store(&w->stop, 0);
	atomic_store(&w->tplan.status->task_id, 0);
	atomic_store(&w->tplan.status->retired_rss, 0);

	/* The thread takes none of the program's asynchronous signals. The
	 * synchronous ones stay open: a fault in a task must reach the
	 * program's own handler (or the default action), not be undefined. */
	sigset_t all, old;
	sigfillset(&all);
	static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
	                                SIGTRAP, SIGSYS, SIGABRT};
	for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
		sigdelset(&all, sync_sigs[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&w->thread, NULL, mproc__worker_thread, &w->tplan);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		goto fail;
	(void)reg_add_locked(sv[0]);
	(void)reg_add_locked(sv[1]);
	(void)reg_add_locked(pp[0]);
	(void)reg_add_locked(pp[1]);
	pthread_mutex_unlock(&reg_mu);
	w->threaded = true;
	w->pidfd = -1;
	worker_started(w, MPROC__THREAD_PID, sv[1], sv[0], pp[0]);
	return 0;

fail:
	pipes_close(sv, pp);
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

int mproc__pool_spawn(struct mproc_pool *pool, struct mproc__worker *w)
{
	int sv[2] = {-1, -1}, pp[2] = {-1, -1};
	int *closelist = NULL;
	int rc;

	if (pool->opts.backend == MPROC_BACKEND_THREADS)
		return pool_spawn_thread(pool, w);

	/* The registry stays locked from the pipes' creation to the fork, so
	 * that no other pool forks a child between, which would inherit these
	 * pipes without knowing to close them. */
	pthread_mutex_lock(&reg_mu);
	if ((rc = worker_pipes(sv, pp)) < 0)
		goto fail;

	struct mproc__child_plan plan = {
		.task_fd = sv[0],
		.result_fd = pp[1],
		.manager = getpid(),
		.number = w->number,
		.maxtasks = pool->opts.maxtasksperchild,
		.max_rss = pool->opts.max_rss,
		.max_vm = pool->opts.max_vm,
		.initializer = pool->opts.initializer,
		.initarg = pool->opts.initarg,
		.status = &pool->status[w->number],
		.limits = pool->opts.limits,
		/* PR_SET_PDEATHSIG follows the thread that forks, not the
		 * process: armed only when that is the main thread, which lives
		 * as long as the process. Otherwise the worker relies on end of
		 * file on its task pipe and getppid(). */
		.pdeathsig = gettid() == getpid(),
	};
	atomic_store(&plan.status->task_id, 0);
	atomic_store(&plan.status->retired_rss, 0);

	closelist = reallocarray(NULL, reg_len + 3, sizeof *closelist);
	if (!closelist) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(closelist, reg_fds, reg_len * sizeof *closelist);
	closelist[reg_len] = sv[1];
	closelist[reg_len + 1] = pp[0];
	plan.close_fds = closelist;
	plan.nclose = reg_len + 2;

	pid_t pid;
	if (pool->fs_pid) {
		/* The fork server forks it, from the state at open. */
		if ((rc = mproc__fs_spawn(pool, w->number, sv[0], pp[1], &pid)) < 0)
			goto fail;
	} else {
		/* Block every signal across fork: the child must not run a
		 * handler of the host program before worker_setup() resets
		 * them. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pid = fork();
		if (pid == 0) {
			mproc__fdreg_child();
			mproc__worker_main(&plan);
		}
		int fork_errno = errno;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (pid < 0) {
			rc = -fork_errno;
			goto fail;
		}
	}
	(void)reg_add_locked(sv[0]);
	(void)reg_add_locked(sv[1]);
	(void)reg_add_locked(pp[0]);
	close(pp[1]);
	pthread_mutex_unlock(&reg_mu);
	free(closelist);

	w->pidfd = -1;
#if HAVE_PIDFD_OPEN
	w->pidfd = pidfd_open(pid, 0);
	if (w->pidfd >= 0 && reg_add(w->pidfd) < 0) {
		close(w->pidfd);
		w->pidfd = -1;
	}
#endif
	worker_started(w, pid, sv[1], sv[0], pp[0]);
	return 0;

fail:
	free(closelist);
	pipes_close(sv, pp);
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

/* Wait for a worker that is known to be exiting (or killed); *si says
 * how it ended (si_code CLD_EXITED, CLD_KILLED, CLD_DUMPED). */
void mproc__worker_reap(struct mproc_pool *pool, struct mproc__worker *w,
                        siginfo_t *si)
{
	if (w->threaded) {
		/* Take in what it still writes until its end of file: a
		 * thread blocked on a full result pipe would never end. The
		 * lock is let go while waiting, for the running task may call
		 * this pool (the caller holds the engine, so nobody drives). */
		int r;
		struct pollfd p = {.fd = w->result_fd, .events = POLLIN};
		while ((r = mproc__worker_read(pool, w, INT_MAX)) == 0) {
			pthread_mutex_unlock(&pool->mu);
			(void)poll(&p, 1, -1);
			pthread_mutex_lock(&pool->mu);
		}
		if (r < 0) {
			/* Unreadable stream, or no memory: discard up to end of
			 * file (a zero-byte read) all the same. */
			char junk[4096];
			ssize_t n;
			pthread_mutex_unlock(&pool->mu);
			while ((n = read(w->result_fd, junk, sizeof junk)) != 0)
				if (n < 0 && errno == EAGAIN)
					(void)poll(&p, 1, -1);
			pthread_mutex_lock(&pool->mu);
		}
		void *ret = NULL;
		pthread_mutex_unlock(&pool->mu);
		pthread_join(w->thread, &ret);
		pthread_mutex_lock(&pool->mu);
		memset(si, 0, sizeof *si);
		si->si_code = CLD_EXITED;
		si->si_status = (int)(intptr_t)ret;
		return;
	}
	if (pool->fs_pid) {
		mproc__fs_reap(pool, w->pid, si); /* the server's child */
		return;
	}
	int rc;
	memset(si, 0, sizeof *si);
	do {
		rc = waitid(P_PID, (id_t)w->pid, si, WEXITED);
	} while (rc < 0 && errno == EINTR);
}

void mproc__worker_close(struct mproc__worker *w)
{
	reg_close(&w->task_fd);
	reg_close(&w->task_guard_fd);
	reg_close(&w->result_fd);
	reg_close(&w->pidfd);
	w->pid = 0;
}

/* Signal a worker through its pidfd (no pid reuse race), else by pid. */
void mproc__worker_signal(struct mproc__worker *w, int sig)
{
	if (w->threaded) {
		/* A thread cannot be killed: it stops before its next task,
		 * and end of file on its task pipe ends its wait for one. */
		(void)sig;
		atomic_store_explicit(&w->stop, 1, memory_order_relaxed);
		reg_close(&w->task_fd);
		return;
	}
#if HAVE_PIDFD_OPEN
	if (w->pidfd >= 0 && pidfd_send_signal(w->pidfd, sig, NULL, 0) == 0)
		return;
#endif
	kill(w->pid, sig);
}

static size_t worker_depth(const struct mproc__worker *w)
{
	if (w->ns_per_task <= 0)
		return DEPTH_START;
	double d = DEPTH_TARGET_NS / w->ns_per_task;
	if (d < DEPTH_MIN)
		return DEPTH_MIN;
	if (d > DEPTH_MAX)
		return DEPTH_MAX;
	return (size_t)d;
}

/* Append c to a ring of chunks (a worker's queue, the requeue). */
static int ring_push(struct mproc__chunk **ring, size_t *head, size_t *len,
                     size_t *cap, const struct mproc__chunk *c)
{
	if (*len == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct mproc__chunk *q = reallocarray(NULL, ncap, sizeof *q);
		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < *len; i++)
			q[i] = (*ring)[(*head + i) % *cap];
		free(*ring);
		*ring = q;
		*cap = ncap;
		*head = 0;
	}
	(*ring)[(*head + *len) % *cap] = *c;
	(*len)++;
	return 0;
}

static int chunk_push(struct mproc__worker *w, const struct mproc__chunk *c)
{
	return ring_push(&w->q, &w->qhead, &w->qlen, &w->qcap, c);
}

int mproc__rq_push(struct mproc_pool *pool, const struct mproc__chunk *c)
{
	return ring_push(&pool->rq, &pool->rqhead, &pool->rqlen, &pool->rqcap, c);
}

void mproc__job_maybe_free(struct mproc__job *job)
{
	if (job->user_released && job->done && !job->inflight && !job->queued &&
	    !job->cb_queued)
		mproc__job_free(job);
}

static void job_dequeue(struct mproc_pool *pool, struct mproc__job *job)
{
	if (job->queued) {
		TAILQ_REMOVE(&pool->pending, job, link);
		job->queued = false;
	}
}

/* A chunk is finished (all results, or cancelled): release its job. */
void mproc__chunk_finish(struct mproc__chunk *c)
{
	struct mproc__job *job = c->job;
	job->inflight--;
	mproc__job_check_done(job);
	mproc__job_maybe_free(job);
}

/* ---- dispatch ---------------------------------------------------------- */

static struct mproc__worker *pool_pick_worker(struct mproc_pool *pool)
{
	struct mproc__worker *best = NULL;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		/* Below its depth, or with fewer than two chunks: with big
		 * chunks the next one is then written while the worker runs
		 * the current one, instead of after. */
		if (!w->pid || w->retiring || w->suspect ||
		    (w->inflight_tasks >= worker_depth(w) && w->qlen >= 2))
			continue;
		if (!best || w->inflight_tasks < best->inflight_tasks)
			best = w;
	}
	return best;
}

static void worker_sent_chunk(struct mproc_pool *pool, struct mproc__worker *w)
{
	w->chunks_sent++;
	if (pool->opts.maxtasksperchild &&
	    w->chunks_sent >= pool->opts.maxtasksperchild)
		w->retiring = true;
}

/* Hand the oldest requeued chunk to w. */
static int pool_dispatch_requeued(struct mproc_pool *pool,
                                  struct mproc__worker *w)
{
	struct mproc__chunk c = pool->rq[pool->rqhead];
	/* A suspect runs alone, so that a death names it. */
	if (c.suspect && w->qlen)
		return 1;
	int rc = mproc__buf_append(&w->out, pool->requeue.data + pool->rq_off,
	                           c.frame_len);
	if (rc < 0)
		return rc;
	if ((rc = chunk_push(w, &c)) < 0) {
		w->out.len -= c.frame_len;
		return rc;
	}
	pool->rq_off += c.frame_len;
	pool->rqhead = (pool->rqhead + 1) % pool->rqcap;
	if (--pool->rqlen == 0)
		pool->requeue.len = pool->rq_off = 0;
	w->inflight_tasks += c.count;
	w->suspect = c.suspect;
	worker_sent_chunk(pool, w);
	return 0;
}

static struct mproc__job *pool_next_job(struct mproc_pool *pool)
{
	struct mproc__job *job, *tmp;
	TAILQ_FOREACH_SAFE(job, &pool->pending, link, tmp) {
		if (pool->stats.halted && !job->input_done) {
			/* Halted: the rest of the input is never read. */
			job->input_done = true;
			job->input_err = MPROC_EHALTED;
		}
		if (job->input_done) {
			job_dequeue(pool, job);
			mproc__job_check_done(job);
			mproc__job_maybe_free(job);
			continue;
		}
		if (mproc__job_room(job))
			return job;
	}
	return NULL;
}

/*
 * A chunk bigger than a pipe (64 KiB by default) would cross it in
 * 64 KiB writes, each a wakeup of the worker, which cannot start before
 * the whole frame is there; its results would come back the same way.
 * Such a worker's pipes grow to 1 MiB, the most an unprivileged process
 * may ask for, once: pools of small chunks keep small pipes.
 */
#define PIPE_BIG (1u << 20)

static void worker_grow_pipes(struct mproc__worker *w, size_t frame_len)
{
	if (frame_len <= (64u << 10))
		return;
	int sz = fcntl(w->task_fd, F_GETPIPE_SZ);
	if (sz < 0 || (size_t)sz >= PIPE_BIG)
		return;
	/* Advice only: past the user's pipe quota the pipes stay small. */
	(void)fcntl(w->task_fd, F_SETPIPE_SZ, (int)PIPE_BIG);
	(void)fcntl(w->result_fd, F_SETPIPE_SZ, (int)PIPE_BIG);
}

/* Pull one chunk of `job` into a TASK frame for w. */
/*
 * Small chunks queued for one worker in one pass go as one TASK frame: the
 * next chunk of the same job is appended to the worker's last frame while
 * that one is not written yet, below its depth. The tasks were bound for
 * this worker anyway, so balancing is as before; the worker then makes one
 * result frame where it made one per chunk, and the manager tracks one
 * chunk. Not with maxtasksperchild, which counts chunks.
 */
#define MERGE_MAX_BYTES (16u << 10)

static size_t pool_merge_chunk(struct mproc_pool *pool, struct mproc__worker *w,
                               struct mproc__job *job)
{
	if (!w->qlen || pool->opts.maxtasksperchild ||
	    w->inflight_tasks >= worker_depth(w))
		return 0;
	struct mproc__chunk *t = &w->q[(w->qhead + w->qlen - 1) % w->qcap];
	size_t hdr = w->out.len - t->frame_len;
	if (t->job != job || t->suspect || t->attempts != 1 || t->done ||
	    hdr < w->out_sent || t->frame_len >= MERGE_MAX_BYTES ||
	    t->id + t->count != pool->next_id ||
	    t->index + t->count != job->pulled)
		return 0;
	size_t room = mproc__job_room(job);
	size_t want = job->chunksize < room ? job->chunksize : room;
	/* Merged frames stay small: a big item goes in a chunk of its own,
	 * with the big-frame handling of pool_dispatch_chunk. */
	size_t got = mproc__job_pull(job, &w->out, want, hdr + MERGE_MAX_BYTES);
	if (got == 0)
		return 0;
	struct mproc__frame f;
	memcpy(&f, w->out.data + hdr, sizeof f);
	mproc__wire_end(&w->out, hdr, MPROC__F_TASK, f.flags, f.count + (uint32_t)got,
	                f.id, f.ref);
	t->count += (uint32_t)got;
	t->frame_len = w->out.len - hdr;
	pool->next_id += got;
	w->inflight_tasks += got;
	if (job->input_done)
		job_dequeue(pool, job);
	return got;
}

static int pool_dispatch_chunk(struct mproc_pool *pool,
                               struct mproc__worker *w,
                               struct mproc__job *job)
{
	size_t hdr;
	int rc = mproc__wire_begin(&w->out, &hdr);
	if (rc < 0)
		return rc;
	size_t room = mproc__job_room(job);
	size_t want = job->chunksize < room ? job->chunksize : room;
	if (job->pack == MPROC__TF_RANGE) {
		/* The frame's one record: where its part of the range starts. */
		int64_t rec[2];
		mproc__input_range_at(&job->in, job->pulled, rec);
		if ((rc = mproc__buf_append(&w->out, rec, sizeof rec)) < 0) {
			w->out.len = hdr;
			return rc;
		}
	}
	/* A chunk of big items stops at the budget (past it by one item). */
	size_t got = mproc__job_pull(job, &w->out, want, hdr + MPROC__FRAME_BUDGET);
	if (got == 0) {
		w->out.len = hdr;
		if (job->input_done) {
			job_dequeue(pool, job);
			mproc__job_check_done(job);
			mproc__job_maybe_free(job);
		}
		return 0;
	}
	mproc__wire_end(&w->out, hdr, MPROC__F_TASK, job->flags | job->pack,
	                (uint32_t)got, pool->next_id,
	                (uint64_t)(uintptr_t)job->fn);
	struct mproc__chunk c = {
		.job = job,
		.index = job->pulled - got,
		.id = pool->next_id,
		.count = (uint32_t)got,
		.attempts = 1,
		.frame_len = w->out.len - hdr,
	};
	if ((rc = chunk_push(w, &c)) < 0) {
		/* Cannot track it: it ends as an error rather than vanish. */
		w->out.len = hdr;
		for (size_t i = 0; i < got; i++)
			mproc__job_store(job, c.index + i, MPROC_CANCELLED, 0, NULL, 0);
		return rc;
	}
	worker_grow_pipes(w, c.frame_len);
	/* A big frame is written at once (as much as the pipe takes), not
	 * after the next ones are encoded: the worker starts on it meanwhile.
	 * Small frames wait, to go together in one write. */
	if (c.frame_len > (64u << 10))
		(void)mproc__wire_write(w->task_fd, &w->out, &w->out_sent);
	pool->next_id += got;
	job->inflight++;
	w->inflight_tasks += got;
	worker_sent_chunk(pool, w);
	if (job->input_done)
		job_dequeue(pool, job);
	return 1;
}

static bool pool_idle_worker(struct mproc_pool *pool)
{
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (pool->workers[i].pid && !pool->workers[i].qlen &&
		    !pool->workers[i].retiring)
			return true;
	return false;
}

static void pool_dispatch(struct mproc_pool *pool)
{
	if (pool->state == MPROC__TERMINATED)
		return;
	/* Halted: end every job's input now, even with no worker left to
	 * pick (pool_next_job does the ending). */
	if (pool->stats.halted && !TAILQ_EMPTY(&pool->pending))
		(void)pool_next_job(pool);
	for (;;) {
		struct mproc__worker *w = pool_pick_worker(pool);
		if (!w)
			return;
		if (pool->rqlen) {
			int rc = pool_dispatch_requeued(pool, w);
			if (rc < 0)
				return;
			if (rc == 0)
				continue;
			/* The suspect waits for an idle worker. */
			if (!pool_idle_worker(pool))
				return;
			continue;
		}
		struct mproc__job *job = pool_next_job(pool);
		if (!job)
			return;
		/* This worker's share of what may be pulled now; it takes it in
		 * one frame (pool_merge_chunk) unless its depth says less. */
		size_t share = mproc__job_room(job);
		if (job->in.has_len && job->in.len - job->pulled < share)
			share = job->in.len - job->pulled;
		share /= pool->nworkers;
		int rc = pool_dispatch_chunk(pool, w, job);
		if (rc < 0)
			return;
		for (size_t given = job->chunksize; rc > 0 && given < share;) {
			size_t got = pool_merge_chunk(pool, w, job);
			if (!got)
				break;
			given += got;
		}
	}
}

static void worker_flush(struct mproc__worker *w)
{
	if (w->pid && w->out_sent < w->out.len)
		(void)mproc__wire_write(w->task_fd, &w->out, &w->out_sent);
}

/* ---- results --------------------------------------------------------- */

/*
 * Drop acknowledged frames from the front of w->out now and then: when
 * what is still in flight behind them is small (a map's chunk frames are
 * megabytes: moving them at each finished chunk copied every task frame
 * again), or when they pass a frame's budget.
 */
static void worker_compact(struct mproc__worker *w)
{
	size_t live = w->out.len - w->out_acked;
	if (w->out_acked == w->out.len && w->out_sent == w->out.len) {
		w->out.len = w->out_acked = w->out_sent = 0;
	} else if ((w->out_acked >= (64u << 10) && live <= w->out_acked / 8) ||
	           w->out_acked >= MPROC__FRAME_BUDGET) {
		mproc__buf_consume(&w->out, w->out_acked);
		w->out_sent -= w->out_acked;
		w->out_acked = 0;
	}
}

static int worker_result_frame(struct mproc__worker *w,
                               const struct mproc__frame *f, const char *p)
{
	if (f->type != MPROC__F_RESULT || w->qlen == 0)
		return MPROC_EPROTO;
	struct mproc__chunk *c = &w->q[w->qhead];
	if (f->id != c->id + c->done || f->count > c->count - c->done)
		return MPROC_EPROTO;
	struct mproc__job *job = c->job;
	size_t stored;
	int rc = mproc__job_store_run(job, c->index + c->done, c->attempts, p,
	                              p + f->len, f->count, &stored);
	c->done += (uint32_t)stored;
	w->inflight_tasks -= stored;
	if (rc < 0)
		return rc;
	if (f->count) {
		double sample = (double)f->ref / f->count;
		w->ns_per_task = w->ns_per_task > 0
		                         ? 0.75 * w->ns_per_task + 0.25 * sample
		                         : sample;
	}
	if (c->done == c->count) {
		struct mproc__chunk done = *c;
		if (done.suspect)
			w->suspect = false;
		w->out_acked += c->frame_len;
		w->qhead = (w->qhead + 1) % w->qcap;
		w->qlen--;
		mproc__chunk_finish(&done);
		worker_compact(w);
	} else {
		mproc__job_check_done(job);
	}
	return 0;
}

/* Read and store what w sent. 0, or 1 at end of file, or MPROC_EPROTO or
 * a negated errno (the channel is unusable). */
int mproc__worker_read(struct mproc_pool *pool, struct mproc__worker *w,
                       int max_reads)
{
	int eof = 0;
	if (w->in_off > w->in.len)
		w->in_off = 0; /* a new worker in the slot: in was emptied */
	for (int i = 0; i < max_reads; i++) {
		/* Parsed bytes are dropped only when the read would otherwise
		 * grow the buffer: moving a partial frame to the front after
		 * every read copied much of the result stream again. */
		if (w->in_off && w->in.cap - w->in.len < (64u << 10)) {
			mproc__buf_consume(&w->in, w->in_off);
			w->in_off = 0;
		}
		ssize_t n = mproc__wire_read(w->result_fd, &w->in);
		if (n == -EAGAIN)
			break;
		if (n == 0) {
			eof = 1;
			break;
		}
		if (n < 0)
			return (int)n;
		size_t off = w->in_off;
		struct mproc__frame f;
		const char *payload;
		int rc;
		while ((rc = mproc__wire_next(&w->in, &off, &f, &payload,
		                              pool->max_frame)) == 1) {
			if ((rc = worker_result_frame(w, &f, payload)) < 0)
				break;
		}
		if (off == w->in.len)
			w->in.len = off = 0;
		w->in_off = off;
		if (rc < 0)
			return MPROC_EPROTO;
		/* A read that did not fill the buffer drained the pipe: save
		 * the syscall that would only answer EAGAIN (each read offers at
		 * least 64 KiB, see mproc__wire_read). At death we read
		 * on to the end of file. */
		if (max_reads != INT_MAX && (size_t)n < 64 * 1024)
			break;
	}
	return eof;
}

/* ---- the engine ------------------------------------------------------ */

static void pool_run_callbacks(struct mproc_pool *pool)
{
	struct mproc__job *job;
	while ((job = TAILQ_FIRST(&pool->callbacks))) {
		TAILQ_REMOVE(&pool->callbacks, job, cblink);
		mproc_callback_fn fn = job->final_rc == 0 ? job->cb.callback
		                                          : job->cb.error_callback;
		if (fn) {
			pool->cb_running = true;
			pool->cb_thread = pthread_self();
			pthread_mutex_unlock(&pool->mu);
			fn(job->cb.cookie, &job->results);
			pthread_mutex_lock(&pool->mu);
			pool->cb_running = false;
		}
		job->cb_queued = false;
		mproc__job_maybe_free(job);
	}
}

static int pool_progress(struct mproc_pool *pool, uint64_t deadline)
{
	mproc__fault_respawn(pool);
	pool_dispatch(pool);
	unsigned n = pool->nworkers;
	struct pollfd *pfd = pool->pfd; /* 3 per worker + 1, made at open */
	unsigned np = 0;
	for (unsigned i = 0; i < n; i++) {
		struct mproc__worker *w = &pool->workers[i];
		worker_flush(w);
		if (!w->pid)
			continue;
		pfd[np++] = (struct pollfd){.fd = w->result_fd, .events = POLLIN};
		pfd[np++] = (struct pollfd){
			.fd = w->task_fd,
			.events = w->out_sent < w->out.len ? POLLOUT : 0};
		pfd[np++] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
	}
	pfd[np++] = (struct pollfd){.fd = pool->wakefd, .events = POLLIN};

	struct timespec ts, *tsp = NULL;
	if (deadline != UINT64_MAX) {
		uint64_t now = mproc__now_ns();
		uint64_t left = deadline > now ? deadline - now : 0;
		ts.tv_sec = (time_t)(left / 1000000000u);
		ts.tv_nsec = (long)(left % 1000000000u);
		tsp = &ts;
	}
	/* Wake for the nearest task deadline, too. */
	uint64_t watch = mproc__fault_watch(pool);
	if (watch < deadline) {
		uint64_t now = mproc__now_ns();
		uint64_t left = watch > now ? watch - now : 0;
		ts.tv_sec = (time_t)(left / 1000000000u);
		ts.tv_nsec = (long)(left % 1000000000u);
		tsp = &ts;
	}
	pool->polling = true;
	pthread_mutex_unlock(&pool->mu);
	int rc = ppoll(pfd, np, tsp, NULL);
	int poll_errno = errno;
	pthread_mutex_lock(&pool->mu);
	pool->polling = false;
	if (rc < 0)
		return poll_errno == EINTR ? 0 : -poll_errno;
	if (pfd[np - 1].revents) {
		uint64_t v;
		(void)read(pool->wakefd, &v, sizeof v);
	}
	if (pool->state == MPROC__TERMINATED)
		return 0;

	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (!w->pid)
			continue;
		struct pollfd *res = &pfd[k], *task = &pfd[k + 1], *pid = &pfd[k + 2];
		k += 3;
		bool dead = false;
		if (res->revents) {
			int r = mproc__worker_read(pool, w, 4);
			if (r != 0)
				dead = true;
		}
		if (pid->revents & POLLIN)
			dead = true;
		if (task->revents & (POLLERR | POLLHUP))
			dead = true;
		if (dead)
			mproc__worker_died(pool, w);
		else if (task->revents & POLLOUT)
			worker_flush(w);
	}
	pool_dispatch(pool);
	for (unsigned i = 0; i < n; i++)
		worker_flush(&pool->workers[i]);
	return 0;
}

/* A callback that waits on its own pool would wait for itself. */
static bool pool_in_callback(const struct mproc_pool *pool)
{
	return pool->cb_running && pthread_equal(pool->cb_thread, pthread_self());
}

int mproc__pool_wait(struct mproc_pool *pool, bool (*ready)(void *), void *arg,
                     uint64_t deadline)
{
	if (!ready(arg) && pool_in_callback(pool))
		return -EDEADLK;
	for (;;) {
		if (ready(arg))
			return 0;
		/* Drive when nobody does and nobody (terminate, join) asked for
		 * the engine. Even a zero timeout drives once, without blocking,
		 * so that polling with timeout 0 takes in what has arrived. */
		if (!pool->driving && !pool->engine_wanted) {
			pool->driving = true;
			int rc = pool_progress(pool, deadline);
			pool_run_callbacks(pool);
			pool->driving = false;
			pthread_cond_broadcast(&pool->cv);
			if (ready(arg))
				return 0;
			if (rc < 0)
				return rc;
			if (mproc__now_ns() >= deadline)
				return -ETIMEDOUT;
			continue;
		}
		if (mproc__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (deadline == UINT64_MAX) {
			pthread_cond_wait(&pool->cv, &pool->mu);
		} else {
			struct timespec ts = {
				.tv_sec = (time_t)(deadline / 1000000000u),
				.tv_nsec = (long)(deadline % 1000000000u)};
			pthread_cond_timedwait(&pool->cv, &pool->mu, &ts);
		}
	}
}

void mproc__pool_kick(struct mproc_pool *pool)
{
	if (pool->polling) {
		uint64_t one = 1;
		(void)write(pool->wakefd, &one, sizeof one);
	} else if (!pool->driving) {
		pool_dispatch(pool);
		for (unsigned i = 0; i < pool->nworkers; i++)
			worker_flush(&pool->workers[i]);
	}
}

int mproc__pool_submit(struct mproc_pool *pool, struct mproc__job *job)
{
	if (pool->state != MPROC__RUN)
		return MPROC_ECLOSED;
	if (pool->stats.halted)
		return MPROC_EHALTED;
	if (job->kind != MPROC__JOB_ALL) {
		size_t win = pool->opts.window;
		if (!win) {
			win = 8 * (size_t)pool->nworkers * job->chunksize;
			if (win < 256)
				win = 256;
		}
		if (win < job->chunksize)
			win = job->chunksize;
		job->window = win;
		/* At least window + 1 slots, a power of two so that a slot is
		 * found with a mask, not a division, once per result. */
		if (win > (SIZE_MAX >> 2))
			return -ENOMEM;
		job->nslots = 1;
		while (job->nslots < win + 1)
			job->nslots <<= 1;
		job->slots = calloc(job->nslots, sizeof *job->slots);
		if (!job->slots)
			return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&pool->pending, job, link);
	job->queued = true;
	TAILQ_INSERT_TAIL(&pool->jobs, job, alink);
	job->in_jobs = true;
	pool->active++;
	if (job->timeout_ns)
		pool->call_timeouts++;
	mproc__pool_kick(pool);
	return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

/* No more workers will start: let the fork server go. */
static void pool_stop_server(struct mproc_pool *pool)
{
	if (!pool->fs_pid)
		return;
	reg_close(&pool->fs_fd);
	mproc__fs_stop(pool);
}

static void pool_release(struct mproc_pool *pool)
{
	/* Results, async results and iterators the caller still holds outlive
	 * the pool (like a list that Pool.map returned): every one is done
	 * here, and answers from what it holds (async.c, iter.c). */
	struct mproc__job *job;
	while ((job = TAILQ_FIRST(&pool->jobs))) {
		TAILQ_REMOVE(&pool->jobs, job, alink);
		job->in_jobs = false;
		job->pool = NULL;
	}
	pool_stop_server(pool);
	for (unsigned i = 0; pool->workers && i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		mproc__worker_close(w);
		mproc__buf_free(&w->out);
		mproc__buf_free(&w->in);
		free(w->q);
	}
	free(pool->workers);
	free(pool->pfd);
	if (pool->status)
		munmap(pool->status, pool->status_len);
	reg_close(&pool->wakefd);
	mproc_writer_free(pool->w);
	mproc_decoder_free(pool->spare_dec);
	mproc__buf_free(&pool->requeue);
	free(pool->rq);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}

/*
 * The caller's options into *o, by their `size` (0: this version's layout):
 * what a smaller struct lacks is zero, and what a larger one has past ours
 * must be zero, so that a program built against a later header, setting
 * nothing new, runs here unchanged.
 */
static int opts_copy(struct mproc_pool_opts *o,
                            const struct mproc_pool_opts *opts)
{
	memset(o, 0, sizeof *o);
	if (!opts)
		return 0;
	/* 0 is 0.3's layout, which ends at `backend`, whatever is added. */
	size_t size = opts->size ? opts->size
	                         : offsetof(struct mproc_pool_opts, backend) +
	                                   sizeof opts->backend;
	if (size < offsetof(struct mproc_pool_opts, processes) +
	                   sizeof opts->processes)
		return -EINVAL;
	if (size > sizeof *o) {
		const unsigned char *extra = (const unsigned char *)opts + sizeof *o;
		for (size_t i = 0; i < size - sizeof *o; i++)
			if (extra[i])
				return -E2BIG;
		size = sizeof *o;
	}
	memcpy(o, opts, size);
	o->size = sizeof *o;
	return 0;
}

int mproc_pool_open(struct mproc_pool **out, const struct mproc_pool_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_pool_opts o;
	int rc = opts_copy(&o, opts);
	if (rc < 0)
		return rc;
	opts = &o;
	if (opts->processes > 4096 || opts->limits.max_size > (1ull << 31) ||
	    !(opts->task_timeout >= 0 && opts->task_timeout < 1e9) ||
	    !(opts->kill_grace >= 0 && opts->kill_grace < 1e9) ||
	    !(opts->halt_fraction >= 0 && opts->halt_fraction <= 1) ||
	    opts->retries > 1000 ||
	    (opts->backend != MPROC_BACKEND_PROCESSES &&
	     opts->backend != MPROC_BACKEND_THREADS))
		return -EINVAL;
	/* What only a process can do (docs/threads.md). */
	if (opts->backend == MPROC_BACKEND_THREADS &&
	    (opts->task_timeout > 0 || opts->max_rss || opts->max_vm ||
	     opts->start_method == MPROC_START_FORKSERVER))
		return -ENOTSUP;

	struct mproc_pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		return -ENOMEM;
	pool->opts = *opts;
	pool->wakefd = -1;
	pool->fs_fd = -1;
	pool->nworkers = opts->processes ? opts->processes
	                                 : (unsigned)mproc_process_cpu_count();
	size_t max_size = opts->limits.max_size ? opts->limits.max_size : (1u << 30);
	pool->max_frame = max_size + (64u << 20);
	pool->timeout_ns = (uint64_t)(opts->task_timeout * 1e9);
	pool->grace_ns = (uint64_t)((opts->kill_grace > 0 ? opts->kill_grace : 1.0) * 1e9);
	pool->next_id = 1;
	TAILQ_INIT(&pool->pending);
	TAILQ_INIT(&pool->callbacks);
	TAILQ_INIT(&pool->jobs);
	pthread_mutex_init(&pool->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->cv, &ca);
	pthread_condattr_destroy(&ca);

	rc = -ENOMEM;
	pool->workers = calloc(pool->nworkers, sizeof *pool->workers);
	pool->pfd = reallocarray(NULL, 3 * (size_t)pool->nworkers + 1,
	                         sizeof *pool->pfd);
	if (!pool->workers || !pool->pfd)
		goto fail;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		w->number = i;
		w->task_fd = w->task_guard_fd = w->result_fd = w->pidfd = -1;
	}
	pool->status_len = pool->nworkers * sizeof *pool->status;
	pool->status = mmap(NULL, pool->status_len, PROT_READ | PROT_WRITE,
	                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pool->status == MAP_FAILED) {
		pool->status = NULL;
		rc = -errno;
		goto fail;
	}
	if ((rc = mproc_writer_new(&pool->w, 5)) < 0)
		goto fail;
	pool->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pool->wakefd < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = reg_add(pool->wakefd)) < 0) {
		close(pool->wakefd);
		pool->wakefd = -1;
		goto fail;
	}
	/* Load the unwinder here, once: a worker's crash handler uses it, and
	 * each worker would otherwise load it after fork. */
	void *warm[2];
	backtrace(warm, 2);
	if (opts->start_method == MPROC_START_FORKSERVER) {
		/* Forked with the registry locked, it closes every other mproc
		 * descriptor, as a worker does. */
		pthread_mutex_lock(&reg_mu);
		rc = mproc__fs_start(pool, reg_fds, reg_len);
		if (rc == 0 && reg_add_locked(pool->fs_fd) < 0)
			rc = -ENOMEM;
		pthread_mutex_unlock(&reg_mu);
		if (rc < 0)
			goto fail;
	} else if (opts->start_method != MPROC_START_FORK) {
		rc = -EINVAL;
		goto fail;
	}
	pthread_mutex_lock(&pool->mu);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		if ((rc = mproc__pool_spawn(pool, &pool->workers[i])) < 0) {
			for (unsigned j = 0; j < i; j++) {
				siginfo_t si;
				mproc__worker_signal(&pool->workers[j], SIGKILL);
				mproc__worker_reap(pool, &pool->workers[j], &si);
				mproc__worker_close(&pool->workers[j]);
			}
			pthread_mutex_unlock(&pool->mu);
			goto fail;
		}
	}
	pool->stats.workers_started = pool->nworkers;
	pthread_mutex_unlock(&pool->mu);
	*out = pool;
	return 0;
fail:
	pool_release(pool);
	return rc;
}

int mproc_pool_close(struct mproc_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	if (pool->state == MPROC__RUN)
		pool->state = MPROC__CLOSED;
	pthread_mutex_unlock(&pool->mu);
	return 0;
}

/* Take the engine for ourselves (terminate, join): wait out the driver. */
static void pool_take_engine(struct mproc_pool *pool)
{
	/* Announce it, so that the driver, once out of ppoll, lets go
	 * instead of driving again; the waiters leave it to us. */
	pool->engine_wanted++;
	while (pool->driving) {
		if (pool->polling) {
			uint64_t one = 1;
			(void)write(pool->wakefd, &one, sizeof one);
		}
		pthread_cond_wait(&pool->cv, &pool->mu);
	}
	pool->engine_wanted--;
	pool->driving = true;
}

static void pool_give_engine(struct mproc_pool *pool)
{
	pool->driving = false;
	pthread_cond_broadcast(&pool->cv);
}

/* The calling thread is one of the pool's own worker threads (a task of
 * the threads backend): terminate or join would wait for that very task. */
static bool pool_in_worker(const struct mproc_pool *pool)
{
	if (pool->opts.backend != MPROC_BACKEND_THREADS)
		return false;
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (pool->workers[i].pid &&
		    pthread_equal(pool->workers[i].thread, pthread_self()))
			return true;
	return false;
}

int mproc_pool_terminate(struct mproc_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	if (pool_in_callback(pool) || pool_in_worker(pool)) {
		pthread_mutex_unlock(&pool->mu);
		return -EDEADLK;
	}
	pool_take_engine(pool);
	if (pool->state == MPROC__TERMINATED && !pool->active) {
		pool_give_engine(pool);
		pthread_mutex_unlock(&pool->mu);
		return 0;
	}
	pool->state = MPROC__TERMINATED;
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (pool->workers[i].pid)
			mproc__worker_signal(&pool->workers[i], SIGKILL);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (w->pid) {
			siginfo_t si;
			mproc__worker_reap(pool, w, &si);
			mproc__worker_close(w);
		}
		for (size_t qi = 0; qi < w->qlen; qi++) {
			struct mproc__chunk c = w->q[(w->qhead + qi) % w->qcap];
			mproc__job_cancel(c.job, c.index + c.done, c.count - c.done);
			mproc__job_check_done(c.job);
			mproc__job_maybe_free(c.job);
		}
		w->qlen = 0;
		w->inflight_tasks = 0;
		w->out.len = w->out_acked = w->out_sent = 0;
	}
	while (pool->rqlen) {
		struct mproc__chunk c = pool->rq[pool->rqhead];
		pool->rqhead = (pool->rqhead + 1) % pool->rqcap;
		pool->rqlen--;
		mproc__job_cancel(c.job, c.index, c.count);
		mproc__job_check_done(c.job);
		mproc__job_maybe_free(c.job);
	}
	pool->requeue.len = pool->rq_off = 0;
	struct mproc__job *job, *tmp;
	TAILQ_FOREACH_SAFE(job, &pool->pending, link, tmp) {
		job_dequeue(pool, job);
		if (!job->input_done && !job->input_err)
			job->input_err = MPROC_ECLOSED; /* input left unread */
		job->input_done = true;
		mproc__job_check_done(job);
		mproc__job_maybe_free(job);
	}
	pool_stop_server(pool);
	pool_run_callbacks(pool);
	pool_give_engine(pool);
	pthread_mutex_unlock(&pool->mu);
	return 0;
}

/* An iterator that waits for its consumer to make room in its window. */
static bool job_stalled(const struct mproc__job *job)
{
	return job->kind != MPROC__JOB_ALL && !job->done && job->queued &&
	       !job->inflight && job->completed == job->pulled &&
	       mproc__job_room(job) == 0;
}

/*
 * Nothing left to run: every job is done, or is an iterator stalled on its
 * window (its consumer has not read far enough for more input to be
 * pulled). Python's imap reads its whole input at once, so there join
 * never waits for a consumer; here join ends such iterators instead.
 */
static bool pool_idle(void *arg)
{
	struct mproc_pool *pool = arg;
	if (pool->active == 0)
		return true;
	size_t stalled = 0;
	struct mproc__job *job;
	TAILQ_FOREACH(job, &pool->pending, link)
		stalled += job_stalled(job);
	return stalled == pool->active && pool->rqlen == 0;
}

static void pool_end_stalled(struct mproc_pool *pool)
{
	struct mproc__job *job, *tmp;
	TAILQ_FOREACH_SAFE(job, &pool->pending, link, tmp) {
		if (!job_stalled(job))
			continue;
		job_dequeue(pool, job);
		job->input_done = true;
		job->input_err = MPROC_ECLOSED;
		mproc__job_check_done(job);
		mproc__job_maybe_free(job);
	}
}

int mproc_pool_join(struct mproc_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	if (pool->state == MPROC__RUN) {
		pthread_mutex_unlock(&pool->mu);
		return MPROC_ERUNNING;
	}
	if (pool_in_worker(pool)) {
		pthread_mutex_unlock(&pool->mu);
		return -EDEADLK;
	}
	int rc = mproc__pool_wait(pool, pool_idle, pool, UINT64_MAX);
	if (rc == 0 && pool_in_callback(pool))
		rc = -EDEADLK;
	if (rc == 0) {
		pool_take_engine(pool);
		pool_end_stalled(pool);
		/* Idle workers read EOF and exit; reap them all. */
		for (unsigned i = 0; i < pool->nworkers; i++) {
			struct mproc__worker *w = &pool->workers[i];
			if (w->pid)
				reg_close(&w->task_fd);
		}
		for (unsigned i = 0; i < pool->nworkers; i++) {
			struct mproc__worker *w = &pool->workers[i];
			if (w->pid) {
				siginfo_t si;
				mproc__worker_reap(pool, w, &si);
				mproc__worker_close(w);
			}
		}
		pool_stop_server(pool);
		pool->joined = true;
		pool_give_engine(pool);
	}
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

void mproc_pool_free(struct mproc_pool *pool)
{
	if (!pool)
		return;
	if (!pool->joined) {
		mproc_pool_terminate(pool);
		mproc_pool_join(pool);
	}
	pool_release(pool);
}
