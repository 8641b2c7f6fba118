/*
 * dispatch.c - which worker gets which work: chunks taken back from dead
 * workers first, then each pending call's input in order, into TASK frames
 * batched per worker so that a chunk costs a few syscalls, up to a depth of
 * about 200 us of the worker's work.
 */
#include <fcntl.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "wire.h"

/*
 * A chunk bigger than a pipe (64 KiB by default) would cross it in
 * 64 KiB writes, each a wakeup of the worker, which cannot start before
 * the whole frame is there; its results would come back the same way.
 * Such a worker's pipes grow to 1 MiB, the most an unprivileged process
 * may ask for, once: pools of small chunks keep small pipes.
 */
#define PIPE_BIG (1u << 20)

/*
 * Small chunks queued for one worker in one pass go as one TASK frame: the
 * next chunk of the same call is appended to the worker's last frame while
 * that one is not written yet, below its depth. The tasks were bound for
 * this worker anyway, so balancing is as before; the worker then makes one
 * result frame where it made one per chunk, and the engine tracks one
 * chunk. Not with maxtasksperchild, which counts chunks.
 */
#define MERGE_MAX_BYTES (16u << 10)

/*
 * Work-conserving: a worker whose claim (status.h) has stood still for
 * STEAL_AFTER_NS while it holds tasks it has not started — it runs a long
 * task, is stopped, or has not finished its initializer — is stuck: when
 * another worker can take them, the tasks it has not started are taken
 * back (fault.c) and go to the others first, and it gets new work only
 * when every worker stands still, until it moves. Batching stays: a
 * worker that keeps claiming tasks keeps its queue.
 */
#define STEAL_AFTER_NS 10000000u

/* Some worker moves: then those that stand still get no work. */
static bool any_moving(const struct mproc_pool *pool)
{
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (mproc__worker_usable(&pool->workers[i]) &&
		    !pool->workers[i].d.stuck)
			return true;
	return false;
}

static struct mproc__worker *pick_worker(struct mproc_pool *pool)
{
	/* Workers that stand still get work only when all of them do (else
	 * nothing would run at all, as when every worker is slow to start). */
	bool moving = any_moving(pool);
	struct mproc__worker *best = NULL;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		/* Below its depth, or with fewer than two chunks: with big
		 * chunks the next one is then written while the worker runs
		 * the current one, instead of after. */
		if (!mproc__worker_usable(w) || w->d.retiring || w->d.suspect ||
		    (moving && w->d.stuck) ||
		    (w->inflight_tasks >= mproc__worker_depth(w) &&
		     mproc__chunkq_len(&w->q) >= 2))
			continue;
		if (!best || w->inflight_tasks < best->inflight_tasks)
			best = w;
	}
	return best;
}

static void sent_chunk(struct mproc_pool *pool, struct mproc__worker *w)
{
	w->d.chunks_sent++;
	if (pool->opts.maxtasksperchild &&
	    w->d.chunks_sent >= pool->opts.maxtasksperchild)
		w->d.retiring = true;
}

/* Hand the oldest requeued chunk to w: 0, 1 when it must wait for an idle
 * worker (a suspect), or -ENOMEM. */
static int dispatch_requeued(struct mproc_pool *pool, struct mproc__worker *w)
{
	const char *frame;
	const struct mproc__chunk *c = mproc__requeue_front(&pool->rq, &frame);
	/* A suspect runs alone, so that a death names it. */
	if (c->suspect && mproc__chunkq_len(&w->q))
		return 1;
	int rc = mproc__buf_append(&w->out, frame, c->frame_len);
	if (rc < 0)
		return rc;
	struct mproc__chunk mine = *c;
	mine.seq = w->seq_next;
	if ((rc = mproc__chunkq_push(&w->q, &mine)) < 0) {
		w->out.len -= c->frame_len;
		return rc;
	}
	struct mproc__chunk taken = mproc__requeue_pop(&pool->rq);
	w->seq_next += taken.count;
	w->inflight_tasks += taken.count;
	w->d.suspect = taken.suspect;
	sent_chunk(pool, w);
	return 0;
}

/* A call whose input has ended leaves the pending queue. */
static void call_input_ended(struct mproc__call *call)
{
	mproc__call_dequeue(call);
	mproc__call_check_done(call);
	mproc__call_maybe_free(call);
}

static struct mproc__call *next_call(struct mproc_pool *pool)
{
	struct mproc__call *call, *tmp;
	TAILQ_FOREACH_SAFE(call, &pool->calls.pending, link, tmp) {
		/* Halted: the rest of the input is never read. */
		if (mproc__stats_halted(&pool->stats))
			mproc__job_end_input(mproc__call_job(call), MPROC_EHALTED);
		if (mproc__job_input_done(mproc__call_job(call))) {
			call_input_ended(call);
			continue;
		}
		if (mproc__job_room(mproc__call_job(call)))
			return call;
	}
	return NULL;
}

static void grow_pipes(struct mproc__worker *w, size_t frame_len)
{
	if (frame_len <= (64u << 10))
		return;
	int sz = fcntl(w->proc.task_fd, F_GETPIPE_SZ);
	if (sz < 0 || (size_t)sz >= PIPE_BIG)
		return;
	/* Advice only: past the user's pipe quota the pipes stay small. */
	(void)fcntl(w->proc.task_fd, F_SETPIPE_SZ, (int)PIPE_BIG);
	(void)fcntl(w->proc.result_fd, F_SETPIPE_SZ, (int)PIPE_BIG);
}

/* Append more of call's input to w's last frame; how many tasks. */
static size_t merge_chunk(struct mproc_pool *pool, struct mproc__worker *w,
                          struct mproc__call *call)
{
	if (!mproc__chunkq_len(&w->q) || pool->opts.maxtasksperchild ||
	    w->inflight_tasks >= mproc__worker_depth(w))
		return 0;
	struct mproc__job *job = mproc__call_job(call);
	struct mproc__chunk *t = mproc__chunkq_back(&w->q);
	size_t hdr = w->out.len - t->frame_len;
	if (t->call != call || t->suspect || t->attempts != 1 || t->done ||
	    hdr < w->out_sent || t->frame_len >= MERGE_MAX_BYTES ||
	    t->id + t->count != pool->next_id ||
	    t->index + t->count != mproc__job_pulled(job))
		return 0;
	size_t room = mproc__job_room(job);
	size_t cs = mproc__job_chunksize(job);
	size_t want = cs < room ? cs : room;
	/* Merged frames stay small: a big item goes in a chunk of its own,
	 * with the big-frame handling of dispatch_chunk. */
	size_t got = mproc__job_pull(job, &w->out, want, hdr + MERGE_MAX_BYTES);
	if (got == 0)
		return 0;
	struct mproc__frame f;
	memcpy(&f, w->out.data + hdr, sizeof f);
	mproc__wire_end(&w->out, hdr, MPROC__F_TASK, f.flags,
	                f.count + (uint32_t)got, f.id, f.ref);
	t->count += (uint32_t)got;
	t->frame_len = w->out.len - hdr;
	w->seq_next += got;
	pool->next_id += got;
	w->inflight_tasks += got;
	if (mproc__job_input_done(job))
		mproc__call_dequeue(call);
	return got;
}

/* Pull one chunk of call's input into a TASK frame for w: 1, 0 when there
 * was nothing to pull, or a negative code. */
static int dispatch_chunk(struct mproc_pool *pool, struct mproc__worker *w,
                          struct mproc__call *call)
{
	struct mproc__job *job = mproc__call_job(call);
	/* A journal's stored results first: a chunk starts at an item that
	 * must run (nothing without a journal). */
	mproc__job_skip(job);
	size_t hdr;
	int rc = mproc__wire_begin(&w->out, &hdr);
	if (rc < 0)
		return rc;
	size_t room = mproc__job_room(job);
	size_t cs = mproc__job_chunksize(job);
	size_t want = cs < room ? cs : room;
	size_t index = mproc__job_pulled(job);
	if ((rc = mproc__job_frame_begin(job, &w->out)) < 0) {
		w->out.len = hdr;
		return rc;
	}
	/* A chunk of big items stops at the budget (past it by one item). */
	size_t got = mproc__job_pull(job, &w->out, want, hdr + MPROC__FRAME_BUDGET);
	if (got == 0) {
		w->out.len = hdr;
		if (mproc__job_input_done(job))
			call_input_ended(call);
		return 0;
	}
	mproc__wire_end(&w->out, hdr, MPROC__F_TASK, mproc__job_frame_flags(job),
	                (uint32_t)got, pool->next_id,
	                (uint64_t)(uintptr_t)mproc__job_fn(job));
	struct mproc__chunk c = {
		.call = call,
		.index = index,
		.id = pool->next_id,
		.seq = w->seq_next,
		.count = (uint32_t)got,
		.attempts = 1,
		.frame_len = w->out.len - hdr,
	};
	if ((rc = mproc__chunkq_push(&w->q, &c)) < 0) {
		/* Cannot track it: it ends as an error (MemoryError: no memory
		 * to keep the result) rather than vanish. */
		w->out.len = hdr;
		for (size_t i = 0; i < got; i++)
			mproc__job_store(job, c.index + i, MPROC_RAISED, 0, NULL, 0);
		return rc;
	}
	grow_pipes(w, c.frame_len);
	/* A big frame is written at once (as much as the pipe takes), not
	 * after the next ones are encoded: the worker starts on it meanwhile.
	 * Small frames wait, to go together in one write. */
	if (c.frame_len > (64u << 10))
		(void)mproc__wire_write(w->proc.task_fd, &w->out, &w->out_sent);
	pool->next_id += got;
	w->seq_next += got;
	mproc__call_chunk_out(call);
	w->inflight_tasks += got;
	sent_chunk(pool, w);
	if (mproc__job_input_done(job))
		mproc__call_dequeue(call);
	return 1;
}

/* An idle worker that pick_worker may choose. */
static bool idle_worker(struct mproc_pool *pool)
{
	bool moving = any_moving(pool);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		const struct mproc__worker *w = &pool->workers[i];
		if (mproc__worker_usable(w) && !mproc__chunkq_len(&w->q) &&
		    !w->d.retiring && !w->d.suspect && !(moving && w->d.stuck))
			return true;
	}
	return false;
}

/* How long w may stand still before it is stuck: STEAL_AFTER_NS, or four
 * of its tasks' usual time when that is longer (a worker of 20 ms tasks is
 * not stuck 10 ms into one). */
static uint64_t steal_after(const struct mproc__worker *w)
{
	double usual = 4 * w->ns_per_task;
	return usual > STEAL_AFTER_NS ? (uint64_t)usual : STEAL_AFTER_NS;
}

void mproc__dispatch_steal(struct mproc_pool *pool, uint64_t now)
{
	unsigned moving = 0;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (!mproc__worker_usable(w))
			continue;
		if (!mproc__chunkq_len(&w->q) || w->d.suspect) {
			/* Holds nothing of ours: it can take work (a stopped one
			 * is found again once it holds some). */
			w->d.stuck = false;
			w->d.claim_ns = 0;
			moving++;
			continue;
		}
		uint64_t c = atomic_load_explicit(&pool->status[i].claim,
		                                  memory_order_acquire);
		/* Moving: a new task claimed, or frames still being written
		 * (a big one takes its worker a while to read). */
		if ((c != w->d.claim_seen && !(c & MPROC__REVOKED)) ||
		    w->out_sent < w->out.len) {
			w->d.claim_seen = c;
			w->d.claim_ns = now; /* still since at most now */
			w->d.stuck = false;
		} else if (!w->d.claim_ns) {
			w->d.claim_ns = now; /* still since at least now */
		} else if (now - w->d.claim_ns >= steal_after(w)) {
			w->d.stuck = true;
		}
		moving += !w->d.stuck;
	}
	/* When every worker stands still, nobody would take the work. */
	if (!moving)
		return;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (mproc__worker_usable(w) && w->d.stuck &&
		    mproc__fault_take_back(pool, w))
			w->d.claim_seen = atomic_load_explicit(&pool->status[i].claim,
			                                       memory_order_acquire);
	}
}

uint64_t mproc__dispatch_next(const struct mproc_pool *pool)
{
	uint64_t next = UINT64_MAX;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		const struct mproc__worker *w = &pool->workers[i];
		if (!mproc__worker_usable(w) || !mproc__chunkq_len(&w->q) ||
		    w->d.stuck)
			continue;
		/* Work given since the last look: timed from now. */
		uint64_t since = w->d.claim_ns ? w->d.claim_ns : mproc__coarse_ns();
		if (since + steal_after(w) < next)
			next = since + steal_after(w);
	}
	/* The coarse clock lags by up to a tick: wake a little after. */
	return next == UINT64_MAX ? next : next + 5000000u;
}

void mproc__dispatch(struct mproc_pool *pool)
{
	if (pool->state == MPROC__TERMINATED)
		return;
	/* Halted: end every call's input now, even with no worker left to
	 * pick (next_call does the ending). */
	if (mproc__stats_halted(&pool->stats) && !TAILQ_EMPTY(&pool->calls.pending))
		(void)next_call(pool);
	for (;;) {
		struct mproc__worker *w = pick_worker(pool);
		if (!w)
			return;
		if (mproc__requeue_len(&pool->rq)) {
			int rc = dispatch_requeued(pool, w);
			if (rc < 0)
				return;
			if (rc == 0)
				continue;
			/* The suspect waits for an idle worker, which the next
			 * pick finds (it holds the fewest tasks) if there is one. */
			if (!idle_worker(pool) || !mproc__chunkq_len(&w->q) ||
			    pick_worker(pool) == w)
				return;
			continue;
		}
		struct mproc__call *call = next_call(pool);
		if (!call)
			return;
		/* This worker's share of what may be pulled now; it takes it in
		 * one frame (merge_chunk) unless its depth says less. */
		struct mproc__job *job = mproc__call_job(call);
		size_t share = mproc__job_room(job);
		size_t left = mproc__job_left(job);
		if (left < share)
			share = left;
		share /= pool->nworkers;
		int rc = dispatch_chunk(pool, w, call);
		if (rc < 0)
			return;
		if (rc == 0)
			continue; /* its input ended: the call may be gone */
		for (size_t given = mproc__job_chunksize(job); given < share;) {
			size_t got = merge_chunk(pool, w, call);
			if (!got)
				break;
			given += got;
		}
	}
}

void mproc__dispatch_flush(struct mproc_pool *pool)
{
	for (unsigned i = 0; i < pool->nworkers; i++)
		mproc__worker_flush(&pool->workers[i]);
}
