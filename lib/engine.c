/*
 * engine.c - the poll loop and the calls that wait on it: one ppoll() over
 * the workers' result pipes (readable), task pipes (writable while frames
 * wait), exit descriptors and a wake eventfd, with the nearest task
 * deadline as its timeout; submitting work; and the engine side of
 * terminate and join.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"

void mproc__engine_lock(struct mproc_pool *pool)
{
	pthread_mutex_lock(&pool->mu);
}

void mproc__engine_unlock(struct mproc_pool *pool)
{
	pthread_mutex_unlock(&pool->mu);
}

struct mproc__jobenv *mproc__engine_jobenv(struct mproc_pool *pool)
{
	return &pool->env;
}

unsigned mproc__engine_workers(const struct mproc_pool *pool)
{
	return pool->nworkers;
}

static void run_callbacks(struct mproc_pool *pool)
{
	struct mproc__call *call;
	while ((call = mproc__calls_due(&pool->calls))) {
		void *cookie;
		mproc_callback_fn fn = mproc__call_callback(call, &cookie);
		if (fn) {
			pool->cb_running = true;
			pool->cb_thread = pthread_self();
			pthread_mutex_unlock(&pool->mu);
			fn(cookie, mproc__job_results(mproc__call_job(call)));
			pthread_mutex_lock(&pool->mu);
			pool->cb_running = false;
		}
		mproc__call_callbacks_ran(call);
	}
}

/* The ppoll set: three descriptors a live worker, then the wake fd. */
static unsigned poll_set(struct mproc_pool *pool)
{
	struct pollfd *pfd = pool->pfd; /* 3 per worker + 1, made at open */
	unsigned np = 0;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		mproc__worker_flush(w);
		if (!mproc__worker_alive(w))
			continue;
		/* A channel that ended is not looked at again (it would wake
		 * the poll at once): only the worker's end. */
		bool cut = w->cut_ns != 0;
		pfd[np++] = (struct pollfd){.fd = cut ? -1 : w->proc.result_fd,
		                            .events = POLLIN};
		pfd[np++] = (struct pollfd){
			.fd = cut ? -1 : w->proc.task_fd,
			.events = w->out_sent < w->out.len ? POLLOUT : 0};
		pfd[np++] = (struct pollfd){.fd = w->proc.exit_fd, .events = POLLIN};
	}
	pfd[np++] = (struct pollfd){.fd = pool->wakefd, .events = POLLIN};
	return np;
}

/* What the poll saw, worker by worker. */
static void poll_results(struct mproc_pool *pool)
{
	struct pollfd *pfd = pool->pfd;
	unsigned k = 0;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (!mproc__worker_alive(w))
			continue;
		struct pollfd *res = &pfd[k], *task = &pfd[k + 1], *ex = &pfd[k + 2];
		k += 3;
		int r = res->revents ? mproc__worker_read(&pool->be, w, 4, pool->max_frame) : 0;
		if (r == -ENOMEM)
			continue; /* no room to read into: the worker is fine */
		if (r == MPROC_EPROTO)
			mproc__fault_died(pool, w, MPROC__END_PROTO);
		else if (ex->revents & POLLIN)
			mproc__fault_died(pool, w, MPROC__END_EXIT);
		else if (r != 0 || (task->revents & (POLLERR | POLLHUP)))
			mproc__fault_channel_ended(pool, w);
		else if (task->revents & POLLOUT)
			mproc__worker_flush(w);
	}
}

static int progress(struct mproc_pool *pool, uint64_t deadline)
{
	uint64_t finished = pool->calls.finished;
	mproc__fault_respawn(pool);
	mproc__dispatch_steal(pool, mproc__coarse_ns());
	mproc__dispatch(pool);
	unsigned np = poll_set(pool);

	/* Wake for the caller's deadline, the nearest task deadline, or a
	 * worker that may stand still. */
	uint64_t wake = mproc__fault_watch(pool);
	uint64_t steal = mproc__dispatch_next(pool);
	if (steal < wake)
		wake = steal;
	if (deadline < wake)
		wake = deadline;
	struct timespec ts, *tsp = NULL;
	if (pool->calls.finished != finished) {
		/* A call ended before the poll: its waiter looks first. */
		ts = (struct timespec){0, 0};
		tsp = &ts;
	} else if (wake != UINT64_MAX) {
		ts = mproc__ts_left(wake, mproc__now_ns());
		tsp = &ts;
	}
	pool->polling = true;
	pthread_mutex_unlock(&pool->mu);
	int rc = ppoll(pool->pfd, np, tsp, NULL);
	int poll_errno = errno;
	pthread_mutex_lock(&pool->mu);
	pool->polling = false;
	if (rc < 0)
		return poll_errno == EINTR ? 0 : -poll_errno;
	if (pool->pfd[np - 1].revents) {
		/* An eventfd: the read takes every wakeup at once, and fails
		 * only when another thread took them first. */
		uint64_t v;
		ssize_t n = read(pool->wakefd, &v, sizeof v);
		(void)n;
	}
	if (pool->state == MPROC__TERMINATED)
		return 0;
	poll_results(pool);
	mproc__fault_stalls(pool);
	mproc__dispatch(pool);
	mproc__dispatch_flush(pool);
	return 0;
}

bool mproc__engine_in_callback(const struct mproc_pool *pool)
{
	return pool->cb_running && pthread_equal(pool->cb_thread, pthread_self());
}

int mproc__engine_wait(struct mproc_pool *pool, bool (*ready)(void *),
                       void *arg, uint64_t deadline)
{
	if (!ready(arg) && mproc__engine_in_callback(pool))
		return -EDEADLK;
	for (;;) {
		if (ready(arg))
			return 0;
		/* Drive when nobody does and nobody (terminate, join) asked for
		 * the engine. Even a zero timeout drives once, without blocking,
		 * so that polling with timeout 0 takes in what has arrived. */
		if (!pool->driving && !pool->engine_wanted) {
			pool->driving = true;
			int rc = progress(pool, deadline);
			run_callbacks(pool);
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

static void wake_driver(struct mproc_pool *pool)
{
	/* Fails only when the counter is full: it is nonzero then, and the
	 * driver wakes all the same. */
	uint64_t one = 1;
	ssize_t n = write(pool->wakefd, &one, sizeof one);
	(void)n;
}

void mproc__engine_kick(struct mproc_pool *pool)
{
	if (pool->polling) {
		wake_driver(pool);
	} else if (!pool->driving) {
		mproc__dispatch(pool);
		mproc__dispatch_flush(pool);
	}
}

/* An iterator's window: what the pool's options say, or enough to keep
 * every worker eight chunks ahead; never more than the input holds. */
static size_t window_of(const struct mproc_pool *pool,
                        const struct mproc__job *job, size_t win)
{
	size_t chunksize = mproc__job_chunksize(job);
	if (!win) {
		win = chunksize > SIZE_MAX / 8 / pool->nworkers
		              ? SIZE_MAX
		              : 8 * (size_t)pool->nworkers * chunksize;
		if (win < 256)
			win = 256;
	}
	if (win < chunksize)
		win = chunksize;
	size_t left = mproc__job_left(job);
	return left < win ? (left ? left : 1) : win;
}

/* By default an iterator's window reaches this many results, past the
 * usual one only while they are small (MPROC__HELD_BYTES): an ordered
 * iterator's results wait for the one before them, and a worker
 * descheduled or slow on that one would stop every other worker once a
 * small window is full; an unordered one gets its results in fewer,
 * larger batches. */
#define SMALL_RESULTS_WINDOW 16383u /* a ring of 16384 slots */

static int set_window(const struct mproc_pool *pool, struct mproc__job *job)
{
	size_t soft = window_of(pool, job, pool->opts.window);
	size_t win = soft;
	if (!pool->opts.window && soft < SMALL_RESULTS_WINDOW)
		win = window_of(pool, job, SMALL_RESULTS_WINDOW);
	return mproc__job_set_window(job, win, soft);
}

int mproc__engine_call_opts(const struct mproc_pool *pool,
                            const struct mproc_call_opts *co)
{
	/* A thread running past its timeout cannot be stopped. */
	if (co && co->timeout > 0 && !pool->be.ops->processes)
		return -ENOTSUP;
	return 0;
}

int mproc__engine_submit(struct mproc_pool *pool, struct mproc__call *call)
{
	struct mproc__job *job = mproc__call_job(call);
	pthread_mutex_lock(&pool->mu);
	int rc = 0;
	if (pool->state != MPROC__RUN)
		rc = MPROC_ECLOSED;
	else if (mproc__stats_halted(&pool->stats))
		rc = MPROC_EHALTED;
	else if (mproc__job_kind(job) != MPROC__JOB_ALL)
		rc = set_window(pool, job);
	/* The backend's word on the function (MPI: it must have a name). */
	if (rc == 0 && pool->be.ops->task_ok)
		rc = pool->be.ops->task_ok(&pool->be, mproc__job_fn(job));
	if (rc == 0) {
		mproc__call_enqueue(&pool->calls, call);
		mproc__engine_kick(pool);
	}
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

void mproc__engine_release(struct mproc__call *call)
{
	struct mproc_pool *pool = mproc__call_pool(call);
	if (!pool) {
		/* The pool was freed first: the call ended with it. */
		mproc__call_free(call);
		return;
	}
	pthread_mutex_lock(&pool->mu);
	mproc__call_release_locked(call);
	pthread_mutex_unlock(&pool->mu);
}

/* ---- terminate and join --------------------------------------------------- */

/* Take the engine for ourselves (terminate, join): wait out the driver. */
static void take_engine(struct mproc_pool *pool)
{
	/* Announce it, so that the driver, once out of ppoll, lets go
	 * instead of driving again; the waiters leave it to us. */
	pool->engine_wanted++;
	while (pool->driving) {
		if (pool->polling)
			wake_driver(pool);
		pthread_cond_wait(&pool->cv, &pool->mu);
	}
	pool->engine_wanted--;
	pool->driving = true;
}

static void give_engine(struct mproc_pool *pool)
{
	pool->driving = false;
	pthread_cond_broadcast(&pool->cv);
}

/* The calling thread is one of the pool's own worker threads (a task of
 * the threads backend): terminate or join would wait for that very task. */
static bool in_worker(struct mproc_pool *pool)
{
	if (!pool->be.ops->is_caller)
		return false;
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (mproc__worker_alive(&pool->workers[i]) &&
		    pool->be.ops->is_caller(&pool->be, &pool->workers[i].proc))
			return true;
	return false;
}

/* Reap every worker (signalled, or told to stop) and close its slot. */
static void reap_all(struct mproc_pool *pool)
{
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (mproc__worker_alive(w)) {
			siginfo_t si;
			mproc__worker_reap(&pool->be, w, &pool->mu, pool->max_frame,
			                   &si);
			mproc__worker_close(&pool->be, w);
		}
	}
}

/* Tasks that will never run end CANCELLED. */
static void cancel_chunk(const struct mproc__chunk *c, uint32_t from)
{
	mproc__job_cancel(mproc__call_job(c->call), c->index + from, c->count - from);
	mproc__call_chunk_done(c->call);
}

static void backend_close(struct mproc_pool *pool)
{
	if (pool->be.ops->close)
		pool->be.ops->close(&pool->be);
}

int mproc__engine_terminate(struct mproc_pool *pool)
{
	if (mproc__engine_in_callback(pool) || in_worker(pool))
		return -EDEADLK;
	take_engine(pool);
	if (pool->state == MPROC__TERMINATED && !pool->calls.active) {
		give_engine(pool);
		return 0;
	}
	pool->state = MPROC__TERMINATED;
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (mproc__worker_alive(&pool->workers[i]))
			mproc__worker_signal(&pool->be, &pool->workers[i], SIGKILL);
	reap_all(pool);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		for (size_t qi = 0; qi < mproc__chunkq_len(&w->q); qi++) {
			const struct mproc__chunk *c = mproc__chunkq_at(&w->q, qi);
			cancel_chunk(c, c->done);
		}
		mproc__worker_clear(w);
	}
	while (mproc__requeue_len(&pool->rq)) {
		struct mproc__chunk c = mproc__requeue_pop(&pool->rq);
		cancel_chunk(&c, 0);
	}
	struct mproc__call *call, *tmp;
	TAILQ_FOREACH_SAFE(call, &pool->calls.pending, link, tmp) {
		mproc__call_dequeue(call);
		mproc__job_cancel_rest(mproc__call_job(call));
		mproc__call_check_done(call);
		mproc__call_maybe_free(call);
	}
	backend_close(pool);
	run_callbacks(pool);
	give_engine(pool);
	return 0;
}

/*
 * Nothing left to run: every call is done, or is an iterator stalled on its
 * window (its consumer has not read far enough for more input to be
 * pulled). Python's imap reads its whole input at once, so there join
 * never waits for a consumer; here join ends such iterators instead.
 */
static bool pool_idle(void *arg)
{
	struct mproc_pool *pool = arg;
	if (pool->calls.active == 0)
		return true;
	size_t stalled = 0;
	struct mproc__call *call;
	TAILQ_FOREACH(call, &pool->calls.pending, link)
		stalled += mproc__call_stalled(call);
	return stalled == pool->calls.active && mproc__requeue_len(&pool->rq) == 0;
}

static void end_stalled(struct mproc_pool *pool)
{
	struct mproc__call *call, *tmp;
	TAILQ_FOREACH_SAFE(call, &pool->calls.pending, link, tmp) {
		if (!mproc__call_stalled(call))
			continue;
		mproc__call_dequeue(call);
		mproc__job_end_input(mproc__call_job(call), MPROC_ECLOSED);
		mproc__call_check_done(call);
		mproc__call_maybe_free(call);
	}
}

int mproc__engine_join(struct mproc_pool *pool)
{
	if (pool->state == MPROC__RUN)
		return MPROC_ERUNNING;
	if (in_worker(pool))
		return -EDEADLK;
	/* An iterator whose consumer stopped reading stalls at its soft
	 * window, as it would have before the window stretched. */
	struct mproc__call *call;
	TAILQ_FOREACH(call, &pool->calls.pending, link)
		mproc__job_unstretch(mproc__call_job(call));
	int rc = mproc__engine_wait(pool, pool_idle, pool, UINT64_MAX);
	if (rc == 0 && mproc__engine_in_callback(pool))
		rc = -EDEADLK;
	if (rc < 0)
		return rc;
	take_engine(pool);
	end_stalled(pool);
	/* Idle workers read end of file and exit; reap them all. */
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (mproc__worker_alive(w))
			mproc__worker_hangup(w);
	}
	reap_all(pool);
	backend_close(pool);
	pool->joined = true;
	give_engine(pool);
	return 0;
}
