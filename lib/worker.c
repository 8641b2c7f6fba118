/*
 * worker.c - one worker as the engine sees it: starting it through its
 * backend, writing its TASK frames, reading its RESULT frames into the
 * calls they belong to, and reaping it.
 *
 * Invariant: w->out holds, in order, the TASK frame of every chunk in w->q
 * (from out_acked on), the first out_sent bytes of it written; a chunk
 * leaves the ring only when all its results are stored (or it is taken
 * back by fault.c), so a worker's death loses nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "clock.h"
#include "fdreg.h"
#include "oob.h"
#include "wire.h"
#include "worker.h"


void mproc__worker_init(struct mproc__worker *w, unsigned number)
{
	*w = (struct mproc__worker){0};
	w->proc.number = number;
	w->proc.task_fd = w->proc.task_guard_fd = w->proc.result_fd = -1;
	w->proc.exit_fd = -1;
	w->proc.region = -1;
}

void mproc__worker_free(struct mproc__backend *be, struct mproc__worker *w)
{
	mproc__worker_close(be, w);
	mproc__buf_free(&w->out);
	mproc__buf_free(&w->in);
	mproc__chunkq_free(&w->q);
}

int mproc__worker_spawn(struct mproc__backend *be, struct mproc__worker *w)
{
	w->proc.region = mproc__oob_region_take(be->oob, w->proc.number);
	int rc = be->ops->start(be, &w->proc);
	if (rc < 0) {
		mproc__oob_region_done(be->oob, w->proc.region);
		w->proc.region = -1;
		return rc;
	}
	w->d.retiring = false;
	w->d.chunks_sent = 0;
	w->out.len = w->out_acked = w->out_sent = w->out_dead = 0;
	w->seq_next = 1;
	w->d.stuck = false;
	w->d.claim_seen = 0;
	w->d.claim_ns = 0;
	w->in.len = w->in_off = 0;
	w->partial_ns = 0;
	w->cut_ns = 0;
	/* A retried task keeps its id: on the new worker it is timed anew. */
	w->f.seen_id = 0;
	mproc__chunkq_clear(&w->q);
	w->inflight_tasks = 0;
	w->f.spawned_ns = mproc__coarse_ns();
	w->f.respawn_backoff = 0;
	return 0;
}

bool mproc__worker_ends(struct mproc__worker *w, int ms)
{
	if (w->proc.exit_fd >= 0) {
		struct pollfd p = {.fd = w->proc.exit_fd, .events = POLLIN};
		int r;
		do {
			r = poll(&p, 1, ms);
		} while (r < 0 && errno == EINTR);
		return r != 0;
	}
	/* No pidfd (an old kernel, valgrind): a child of ours can be waited
	 * for without reaping it; anything else is taken as ended. */
	for (int i = 0; i <= ms; i++) {
		siginfo_t si = {0};
		if (waitid(P_PID, (id_t)w->proc.pid, &si,
		           WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid)
			return true;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return false;
}

void mproc__worker_signal(struct mproc__backend *be, struct mproc__worker *w,
                          int sig)
{
	be->ops->signal(be, &w->proc, sig);
}

void mproc__worker_close(struct mproc__backend *be, struct mproc__worker *w)
{
	if (be->ops->release)
		be->ops->release(be, &w->proc);
	mproc__fdreg_close(&w->proc.task_fd);
	mproc__fdreg_close(&w->proc.task_guard_fd);
	mproc__fdreg_close(&w->proc.result_fd);
	mproc__fdreg_close(&w->proc.exit_fd);
	w->proc.pid = 0;
	mproc__oob_region_done(be->oob, w->proc.region);
	w->proc.region = -1;
}

void mproc__worker_hangup(struct mproc__worker *w)
{
	mproc__fdreg_close(&w->proc.task_fd);
}

void mproc__worker_clear(struct mproc__worker *w)
{
	mproc__chunkq_clear(&w->q);
	w->inflight_tasks = 0;
	w->d.suspect = false;
	w->out.len = w->out_acked = w->out_sent = w->out_dead = 0;
}

void mproc__worker_flush(struct mproc__worker *w)
{
	if (mproc__worker_alive(w) && w->out_sent < w->out.len)
		(void)mproc__wire_write(w->proc.task_fd, &w->out, &w->out_sent);
	/* Frames of tasks taken back, all out and nothing else held. */
	if (w->out_dead && w->out_sent == w->out.len &&
	    !mproc__chunkq_len(&w->q))
		w->out.len = w->out_acked = w->out_sent = w->out_dead = 0;
}

/*
 * Drop acknowledged frames from the front of w->out now and then: when
 * what is still in flight behind them is small (a map's chunk frames are
 * megabytes: moving them at each finished chunk copied every task frame
 * again), or when they pass a frame's budget.
 */
static void worker_compact(struct mproc__worker *w)
{
	size_t live = w->out.len - w->out_acked;
	if (w->out_acked + w->out_dead == w->out.len &&
	    w->out_sent == w->out.len) {
		w->out.len = w->out_acked = w->out_sent = w->out_dead = 0;
		mproc__buf_trim(&w->out);
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
	if (f->type != MPROC__F_RESULT || mproc__chunkq_len(&w->q) == 0)
		return MPROC_EPROTO;
	struct mproc__chunk *c = mproc__chunkq_at(&w->q, 0);
	if (f->id != c->id + c->done || f->count > c->count - c->done)
		return MPROC_EPROTO;
	struct mproc__call *call = c->call;
	size_t stored;
	int rc = mproc__job_store_run(mproc__call_job(call), c->index + c->done, c->attempts,
	                              p, p + mproc__frame_len(f), f->count,
	                              &stored);
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
	if (c->done == c->count)
		mproc__worker_pop_done(w);
	else
		mproc__call_check_done(call);
	return 0;
}

void mproc__worker_pop_done(struct mproc__worker *w)
{
	/* More than the head when chunks behind it were cut short to what
	 * their worker had started (fault.c's take back), all of it done. */
	while (mproc__chunkq_len(&w->q)) {
		struct mproc__chunk *c = mproc__chunkq_at(&w->q, 0);
		if (c->done < c->count)
			break;
		struct mproc__chunk done = mproc__chunkq_pop(&w->q);
		if (done.suspect)
			w->d.suspect = false;
		/* Frames taken back ahead of it are acknowledged with it. */
		w->out_acked += w->out_dead + done.frame_len;
		w->out_dead = 0;
		mproc__call_chunk_done(done.call);
	}
	worker_compact(w);
}

static int worker_read(struct mproc__worker *w, int max_reads,
                       size_t max_frame)
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
		ssize_t n = mproc__wire_read(w->proc.result_fd, &w->in);
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
		                              max_frame)) == 1) {
			if ((rc = worker_result_frame(w, &f, payload)) < 0)
				break;
		}
		if (off == w->in.len) {
			w->in.len = off = 0;
			mproc__buf_trim(&w->in);
		} else {
			(void)mproc__wire_expect(&w->in, off, max_frame);
		}
		w->in_off = off;
		/* Bytes of a frame not yet whole came: the engine times the
		 * wait for the rest (fault.c). */
		w->partial_ns = off < w->in.len ? UINT64_MAX : 0;
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

int mproc__worker_read(struct mproc__backend *be, struct mproc__worker *w,
                       int max_reads, size_t max_frame)
{
	mproc__oob_sender(be->oob, w->proc.region);
	int rc = worker_read(w, max_reads, max_frame);
	mproc__oob_sender(be->oob, MPROC__OOB_ANY);
	return rc;
}

/* Take in what a worker that cannot be killed still writes, up to its end
 * of file: a thread blocked on a full result pipe would never end. (Threads
 * have no arena: no sender to name.) */
static void worker_drain(struct mproc__worker *w, pthread_mutex_t *mu,
                         size_t max_frame)
{
	int r;
	struct pollfd p = {.fd = w->proc.result_fd, .events = POLLIN};
	while ((r = worker_read(w, INT_MAX, max_frame)) == 0) {
		pthread_mutex_unlock(mu);
		(void)poll(&p, 1, -1);
		pthread_mutex_lock(mu);
	}
	if (r < 0) {
		/* Unreadable stream, or no memory: discard up to end of file
		 * (a zero-byte read) all the same. */
		char junk[4096];
		ssize_t n;
		pthread_mutex_unlock(mu);
		while ((n = read(w->proc.result_fd, junk, sizeof junk)) != 0)
			if (n < 0 && errno == EAGAIN)
				(void)poll(&p, 1, -1);
		pthread_mutex_lock(mu);
	}
}

void mproc__worker_reap(struct mproc__backend *be, struct mproc__worker *w,
                        pthread_mutex_t *mu, size_t max_frame, siginfo_t *si)
{
	if (!be->ops->processes) {
		worker_drain(w, mu, max_frame);
		/* Its end of file came as it ended: the join waits for little,
		 * but without the lock, as before the drain. */
		pthread_mutex_unlock(mu);
		be->ops->reap(be, &w->proc, si);
		pthread_mutex_lock(mu);
		return;
	}
	be->ops->reap(be, &w->proc, si);
}
