/*
 * fault.c - deaths, timeouts and their attribution: every task ends in
 * exactly one result, whatever its worker does.
 *
 * When a worker dies, the manager reads what it managed to write (its crash
 * handler hands over the results already made), reaps it, and looks at its
 * status record: the task it was running is blamed — CRASHED, TIMEOUT or
 * MEMORY, with the signal, si_code, address and a backtrace — or retried if
 * the caller asked for retries; every other task it held without a result
 * goes to the requeue, in order, neither blamed nor lost. A fresh worker is
 * forked into its slot.
 *
 * When nothing says which task killed a worker (it died between tasks, or
 * a task closed the worker's pipes and the worker could not report), the
 * tasks it held become suspects: each runs alone on a worker, which checks
 * its own pipes after it, so that the next death names its task exactly.
 *
 * All of it runs in the driving thread with the pool's lock held.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "crash.h"
#include "engine.h"
#include "wire.h"

/* How long a worker with no initializer may take to become ready, with
 * tasks waiting and a task timeout set, before it is taken to hang. */
#define SLOW_START_NS 10000000000ull

/* How a worker ended, from waitid and its status record. */
struct death {
	int signal;      /* 0 when it exited */
	int exit_status; /* -1 when killed */
	bool core;
	int si_code;     /* from the crash handler, 0 unknown */
	uint64_t addr;
	uint64_t rss, vm;
	int errno_;       /* the crashing thread's errno */
	uint64_t running; /* task it was running, 0 none */
	uint64_t last;    /* last task it started */
	uint64_t culprit; /* task that broke its channel (suspect mode) */
	enum mproc_status status; /* what the blamed task ends as */
	char msg[200];
	char report[MPROC__MAX_FRAMES * 160];
};

/* A backtrace from the worker's addresses, symbolized in the manager: the
 * worker is a fork of this process, so its code is mapped at the same
 * addresses here. */
static void death_report(struct death *d, const struct mproc__status *st)
{
	mproc__crash_format(st, d->report, sizeof d->report);
}

static void death_describe(struct death *d)
{
	if (d->signal) {
		const char *abbrev = sigabbrev_np(d->signal);
		snprintf(d->msg, sizeof d->msg,
		         "worker killed by signal %d (SIG%s: %s)%s", d->signal,
		         abbrev ? abbrev : "?", strsignal(d->signal),
		         d->core ? ", core dumped" : "");
	} else {
		snprintf(d->msg, sizeof d->msg, "worker exited with status %d",
		         d->exit_status);
	}
}

/* Store a result made by the manager: (type, message, signal, si_code,
 * address, core, exit status, rss, report) — result.c reads it back. */
static void store_note(struct mproc_pool *pool, struct mproc__call *call,
                       size_t index, enum mproc_status status,
                       unsigned attempts, const char *type, const char *msg,
                       const struct death *d)
{
	struct mproc_writer *w = pool->env.w;
	const void *data = NULL;
	size_t len = 0;
	mproc_writer_reset(w);
	mproc_write_tuple_begin(w);
	mproc_write_cstr(w, type);
	mproc_write_cstr(w, msg);
	if (d) {
		mproc_write_int(w, d->signal);
		mproc_write_int(w, d->si_code);
		mproc_write_int(w, (int64_t)d->addr);
		mproc_write_bool(w, d->core);
		mproc_write_int(w, d->exit_status);
		mproc_write_int(w, (int64_t)d->rss);
		if (d->report[0])
			mproc_write_cstr(w, d->report);
		else
			mproc_write_none(w);
	}
	mproc_write_tuple_end(w);
	if (mproc_writer_finish(w, &data, &len) < 0)
		len = 0;
	mproc__job_store(mproc__call_job(call), index, status, attempts, data, len);
}

/*
 * Requeue records [from, to) of chunk c, whose frame header is f and whose
 * record `from` starts at p, as one chunk, or as single-task suspect
 * chunks. In a range's frame p is the frame's one record (task 0's
 * argument, step), which each part remakes for its first task.
 */
static void requeue_pieces(struct mproc_pool *pool,
                           const struct mproc__chunk *c,
                           const struct mproc__frame *f, const char *p,
                           uint32_t from, uint32_t to, uint16_t attempts,
                           bool suspect, uint32_t piece)
{
	while (from < to) {
		uint32_t n = suspect ? 1 : to - from < piece ? to - from : piece;
		const char *q = p, *src = p;
		for (uint32_t k = 0; k < n; k++)
			q += mproc__task_rec_size(f->flags, q);
		size_t len = (size_t)(q - p);
		int64_t rec[2];
		if (f->flags & MPROC__TF_RANGE) {
			memcpy(rec, p, sizeof rec);
			rec[0] = (int64_t)((uint64_t)rec[0] +
			                   (uint64_t)from * (uint64_t)rec[1]);
			src = (const char *)rec;
			len = sizeof rec;
		}
		struct mproc__chunk nc = {
			.call = c->call,
			.index = c->index + from,
			.id = c->id + from,
			.count = n,
			.attempts = attempts,
			.suspect = suspect,
		};
		uint8_t flags = f->flags | (suspect ? MPROC__TF_CHECK : 0);
		mproc__call_chunk_out(c->call);
		if (mproc__requeue_add(&pool->rq, &nc, flags, f->ref, src, len) < 0) {
			/* No memory to keep them: they end, never vanish. */
			for (uint32_t k = 0; k < n; k++)
				store_note(pool, c->call, nc.index + k,
				           MPROC_CANCELLED, attempts, "Cancelled",
				           "no memory to run the task again", NULL);
			mproc__call_chunk_done(c->call);
		}
		from += n;
		p = q;
	}
}

static void requeue(struct mproc_pool *pool, const struct mproc__chunk *c,
                    const struct mproc__frame *f, const char *p,
                    uint32_t from, uint32_t to, uint16_t attempts,
                    bool suspect)
{
	requeue_pieces(pool, c, f, p, from, to, attempts, suspect, UINT32_MAX);
}

/* The blamed task: its final result, or a retry. */
static void blame(struct mproc_pool *pool, const struct mproc__chunk *c,
                  const struct mproc__frame *f, const char *rec, uint32_t k,
                  const struct death *d)
{
	if (c->attempts <= pool->opts.retries) {
		mproc__stats_retried(&pool->stats);
		requeue(pool, c, f, rec, k, k + 1, (uint16_t)(c->attempts + 1),
		        c->suspect);
		return;
	}
	const char *type = d->status == MPROC_TIMEOUT  ? "TimeoutError"
	                   : d->status == MPROC_MEMORY ? "MemoryError"
	                                               : "WorkerCrashed";
	store_note(pool, c->call, c->index + k, d->status, c->attempts, type,
	           d->msg, d);
}

/*
 * Take back the chunks still on w: blame `target` (0: nobody), requeue the
 * rest — as suspects when the death is unexplained.
 */
static void salvage(struct mproc_pool *pool, struct mproc__worker *w,
                    uint64_t target, const struct death *d, bool suspects)
{
	size_t off = w->out_acked + w->out_dead;
	for (size_t qi = 0; qi < mproc__chunkq_len(&w->q); qi++) {
		struct mproc__chunk *c = mproc__chunkq_at(&w->q, qi);
		struct mproc__frame f;
		memcpy(&f, w->out.data + off, sizeof f);
		f.flags &= (uint8_t)~MPROC__TF_CHECK;
		const char *p = w->out.data + off + MPROC__FRAME_HDR;
		off += c->frame_len;
		/* Walk to the first record without a result. */
		for (uint32_t k = 0; k < c->done; k++)
			p += mproc__task_rec_size(f.flags, p);
		uint32_t from = c->done;
		const char *from_p = p;
		for (uint32_t k = c->done; k < c->count; k++) {
			const char *next = p + mproc__task_rec_size(f.flags, p);
			if (target && c->id + k == target) {
				requeue(pool, c, &f, from_p, from, k, c->attempts,
				        suspects || c->suspect);
				blame(pool, c, &f, p, k, d);
				from = k + 1;
				from_p = next;
			}
			p = next;
		}
		requeue(pool, c, &f, from_p, from, c->count, c->attempts,
		        suspects || c->suspect);
		mproc__call_chunk_done(c->call);
	}
	mproc__worker_clear(w);
}

/* The frame of chunk c at offset `off` of w->out (its header into *f,
 * TF_CHECK cleared) and its task record k. */
static const char *chunk_record(const struct mproc__worker *w, size_t off,
                                uint32_t k, struct mproc__frame *f)
{
	memcpy(f, w->out.data + off, sizeof *f);
	f->flags &= (uint8_t)~MPROC__TF_CHECK;
	const char *p = w->out.data + off + MPROC__FRAME_HDR;
	for (uint32_t i = 0; i < k; i++)
		p += mproc__task_rec_size(f->flags, p);
	return p;
}

/* The frames of chunks [first, end of ring) of w, starting at `cut`, are
 * dropped: those not sent at all go, one partly sent goes out whole (its
 * worker skips its tasks), as part of the last chunk kept or, with none
 * kept, ahead of what comes next. */
static void drop_frames(struct mproc__worker *w,
                        size_t first, size_t cut)
{
	size_t end = cut;
	for (size_t qi = first; qi < mproc__chunkq_len(&w->q); qi++)
		if (end < w->out_sent)
			end += mproc__chunkq_at(&w->q, qi)->frame_len;
	w->out.len = end;
	if (first)
		mproc__chunkq_at(&w->q, first - 1)->frame_len += end - cut;
	else
		w->out_dead += end - cut;
	mproc__chunkq_truncate(&w->q, first);
}

size_t mproc__fault_take_back(struct mproc_pool *pool, struct mproc__worker *w)
{
	struct mproc__status *st = &pool->status[w->proc.number];
	uint64_t last = w->seq_next - 1;
	/* Only once every frame is written: a frame never sent would leave
	 * the worker's stream numbers behind the manager's. */
	if (w->out_sent < w->out.len)
		return 0;
	uint64_t c = atomic_load_explicit(&st->claim, memory_order_acquire);
	uint64_t started;
	do {
		/* Revoked already and nothing claimed since: it has started
		 * what it had then. */
		started = c & MPROC__REVOKED ? w->f.started : c;
		if (started >= last)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(
	        &st->claim, &c, MPROC__REVOKED | last, memory_order_acq_rel,
	        memory_order_acquire));
	w->f.started = started;

	/* The tasks started are a prefix of the stream: keep their chunks
	 * (the last one cut short to them), requeue the rest. */
	size_t off = w->out_acked + w->out_dead, cut = 0, first = SIZE_MAX;
	size_t taken = 0;
	unsigned whole = 0;
	for (size_t qi = 0; qi < mproc__chunkq_len(&w->q); qi++) {
		struct mproc__chunk *ch = mproc__chunkq_at(&w->q, qi);
		size_t frame = off;
		off += ch->frame_len;
		if (ch->seq + ch->count - 1 <= started)
			continue;
		uint32_t from = ch->seq > started ? 0
		                                  : (uint32_t)(started - ch->seq + 1);
		struct mproc__frame f;
		const char *p = chunk_record(w, frame, from, &f);
		/* In pieces, one per worker, so that what a stuck worker held
		 * spreads over the others rather than moving whole to one. */
		uint32_t n = ch->count - from;
		uint32_t piece = (n + pool->nworkers - 1) / pool->nworkers;
		requeue_pieces(pool, ch, &f, p, from, ch->count, ch->attempts,
		               ch->suspect, piece ? piece : 1);
		taken += ch->count - from;
		if (from) {
			ch->count = from;
			continue;
		}
		if (first == SIZE_MAX) {
			first = qi;
			cut = frame;
		}
		whole++;
		mproc__call_chunk_done(ch->call);
	}
	if (first != SIZE_MAX)
		drop_frames(w, first, cut);
	/* A chunk taken back whole counts for no maxtasksperchild, in the
	 * worker (child.c: it skips the frame) as here, whether its frame was
	 * written or not: a worker slow to start is not retired by tasks it
	 * never ran, and it gets others. (The one place that uncounts.) */
	w->d.chunks_sent -= whole;
	w->d.retiring = pool->opts.maxtasksperchild &&
	                w->d.chunks_sent >= pool->opts.maxtasksperchild;
	w->inflight_tasks -= taken;
	mproc__worker_pop_done(w);
	return taken;
}

/* The suspect task w was given, if it started it (it runs alone). */
static uint64_t suspect_started(const struct mproc__worker *w, uint64_t last)
{
	for (size_t qi = 0; qi < mproc__chunkq_len(&w->q); qi++) {
		const struct mproc__chunk *c = mproc__chunkq_at(&w->q, qi);
		if (c->suspect && c->done < c->count && c->id + c->done == last)
			return last;
	}
	return 0;
}

static void respawn(struct mproc_pool *pool, struct mproc__worker *w);

/* The pool cannot start workers: what waits in the requeue fails. */
static void fail_requeue(struct mproc_pool *pool)
{
	struct death d = {.exit_status = -1, .status = MPROC_CRASHED};
	snprintf(d.msg, sizeof d.msg, "%.199s", pool->broken_msg);
	while (mproc__requeue_len(&pool->rq)) {
		struct mproc__chunk c = mproc__requeue_pop(&pool->rq);
		for (uint32_t k = 0; k < c.count; k++)
			store_note(pool, c.call, c.index + k, MPROC_CRASHED, c.attempts,
			           "WorkerCrashed", d.msg, &d);
		mproc__call_chunk_done(c.call);
	}
}

void mproc__fault_channel_ended(struct mproc_pool *pool,
                                struct mproc__worker *w)
{
	/* How long a worker whose channel ended may take to end by itself
	 * (a crashing worker's pipe ends before its exit is seen, and on a
	 * loaded machine the exit may wait for a CPU) before it is taken to
	 * live on with a broken channel. Only a broken channel waits this
	 * long, and the pool's lock is not held meanwhile. */
	uint64_t now = mproc__coarse_ns();
	if (!w->cut_ns)
		w->cut_ns = now ? now : 1;
	if (mproc__worker_ends(w, 0) || now - w->cut_ns >= MPROC__END_GRACE_NS)
		mproc__fault_died(pool, w, MPROC__END_EOF);
}

void mproc__fault_died(struct mproc_pool *pool, struct mproc__worker *w,
                       enum mproc__end how)
{
	struct mproc__status *st = &pool->status[w->proc.number];
	struct death d = {.exit_status = -1, .status = MPROC_CRASHED};

	/* Whatever it wrote before it died still counts. */
	int r = mproc__worker_read(&pool->be, w, INT_MAX, pool->max_frame);
	if (r == MPROC_EPROTO || w->f.proto_stall)
		how = MPROC__END_PROTO;
	/* A channel that ended, or carried bytes that are not frames, while
	 * its worker lives was broken by a task: the task then running may be
	 * innocent (the culprit may have returned already), so nobody is
	 * blamed before the suspects' runs name the one. */
	bool broken = how == MPROC__END_PROTO ||
	              (how == MPROC__END_EOF && !mproc__worker_ends(w, 0));
	mproc__worker_signal(&pool->be, w, SIGKILL);
	siginfo_t si;
	mproc__worker_reap(&pool->be, w, &pool->mu, pool->max_frame, &si);
	mproc__worker_close(&pool->be, w);
	w->f.death_ns = mproc__now_ns();

	if (si.si_code == CLD_EXITED) {
		d.exit_status = si.si_status;
	} else {
		d.signal = si.si_status;
		d.core = si.si_code == CLD_DUMPED;
	}
	d.running = atomic_load_explicit(&st->task_id, memory_order_acquire);
	d.culprit = atomic_load_explicit(&st->culprit, memory_order_acquire);
	if (atomic_load_explicit(&st->crash_signal, memory_order_acquire)) {
		d.si_code = st->crash_code;
		d.addr = st->crash_addr;
		d.rss = st->crash_rss;
		d.vm = st->crash_vm;
		d.errno_ = st->crash_errno;
		death_report(&d, st);
	}
	death_describe(&d);

	bool was_ready = atomic_load_explicit(&st->ready_ns,
	                                      memory_order_acquire) != 0;
	/* Deaths that are no failure: maxtasksperchild, max_rss. Neither
	 * happens inside a task, and max_rss says so in the status record, so
	 * a task calling exit() with the same status is not mistaken. */
	bool clean_exit =
	        d.signal == 0 && r >= 0 && !d.running &&
	        ((w->d.retiring && mproc__chunkq_len(&w->q) == 0 && d.exit_status == 0) ||
	         (d.exit_status == MPROC__EXIT_MEMORY &&
	          atomic_load_explicit(&st->retired_rss, memory_order_acquire)));
	/* Our SIGTERM hit a worker whose timed-out task had just ended. */
	bool stray_term = w->f.term_at && w->f.timeout_task != d.running;

	uint64_t target = 0;
	bool suspects = false;
	if (d.culprit) {
		target = d.culprit;
		snprintf(d.msg, sizeof d.msg,
		         "the task closed or replaced the worker's pipes to the pool");
	} else if (stray_term || clean_exit || !was_ready) {
		/* Requeue what it held, blame nobody: a retirement, our own
		 * signal, or a worker that died before it could run anything
		 * (its initializer; counted below). */
		target = 0;
	} else if (broken) {
		/* Only a suspect, which runs alone, is named by a broken
		 * channel; otherwise every task it held becomes one. */
		target = suspect_started(w, st->last_id);
		suspects = !target;
		snprintf(d.msg, sizeof d.msg, "%s",
		         how == MPROC__END_PROTO
		                 ? "protocol error: the task wrote bytes that are not "
		                   "result frames into the worker's channel to the pool"
		                 : "the task closed or replaced the worker's pipes to "
		                   "the pool");
	} else if (d.running && r >= 0) {
		target = d.running;
		if (w->f.term_at &&
		    !atomic_load_explicit(&st->crash_signal, memory_order_acquire)) {
			/* Timed out, unless it crashed by itself first: the
			 * signal or exit status says how it then ended (a task
			 * may catch SIGTERM and exit). */
			d.status = MPROC_TIMEOUT;
			snprintf(d.msg, sizeof d.msg,
			         "ran past its timeout of %.3g s; worker stopped with %s",
			         (double)w->f.timeout_ns / 1e9,
			         w->f.killed ? "SIGKILL" : "SIGTERM");
		} else if ((pool->opts.max_rss && d.rss > pool->opts.max_rss) ||
		           (pool->opts.max_vm &&
		            (d.vm + (pool->opts.max_vm >> 4) >= pool->opts.max_vm ||
		             d.errno_ == ENOMEM))) {
			d.status = MPROC_MEMORY;
			size_t n = strlen(d.msg);
			snprintf(d.msg + n, sizeof d.msg - n,
			         " at %zu MiB resident, %zu MiB mapped",
			         (size_t)(d.rss >> 20), (size_t)(d.vm >> 20));
		}
	} else if (mproc__chunkq_len(&w->q)) {
		/* Nothing names the task. A suspect it started is the one: it
		 * ran alone. Otherwise its tasks are suspects from now on. */
		target = suspect_started(w, st->last_id);
		suspects = !target;
	}
	salvage(pool, w, target, &d, suspects);
	mproc__stats_ended(&pool->stats, clean_exit);

	/* Workers that die before they are ready, again and again (a failing
	 * initializer), would be replaced forever: after three in a row the
	 * pool halts and the tasks waiting for a worker fail instead. A
	 * SIGKILL from outside (the OOM killer, an operator) says nothing
	 * about the initializer and is not counted; ours, for an initializer
	 * that outlived the task timeout, is. */
	bool start_failed = !was_ready && !clean_exit && !w->f.slow_start &&
	                    (d.signal != SIGKILL || w->f.killed || broken);
	if (start_failed) {
		if (++pool->start_failures >= 3 && !pool->broken) {
			pool->broken = true;
			mproc__stats_halt(&pool->stats);
			snprintf(pool->broken_msg, sizeof pool->broken_msg,
			         "workers fail to start: %.200s", d.msg);
		}
	} else if (was_ready) {
		pool->start_failures = 0;
	}
	if (pool->broken)
		fail_requeue(pool);

	w->f.term_at = 0;
	w->f.timeout_task = 0;
	w->f.killed = false;
	w->f.slow_start = false;
	w->f.proto_stall = false;
	mproc__status_reset(st);
	w->f.respawn_backoff = 0;
	w->f.respawn_at = 0;
	if (pool->state != MPROC__TERMINATED && !pool->broken)
		respawn(pool, w);
	if (clean_exit)
		w->f.death_ns = 0; /* only replacements after a death are timed */
}

/* Fork into an empty slot; on failure (EAGAIN, EMFILE...) try again later,
 * backing off from 10 ms to 1 s. */
static void respawn(struct mproc_pool *pool, struct mproc__worker *w)
{
	int rc = mproc__worker_spawn(&pool->be, w);
	if (rc == 0) {
		mproc__stats_started(&pool->stats, 1);
		return;
	}
	if (rc == -EPIPE) {
		/* The backend can start no worker again (the fork server was
		 * killed from outside: a new one could not start from the state
		 * at open), so the pool halts and what waits for a worker
		 * fails. */
		pool->broken = true;
		mproc__stats_halt(&pool->stats);
		snprintf(pool->broken_msg, sizeof pool->broken_msg, "%s",
		         pool->be.ops->lost ? pool->be.ops->lost
		                            : "no worker can start");
		fail_requeue(pool);
		return;
	}
	uint64_t b = w->f.respawn_backoff ? w->f.respawn_backoff * 2 : 10000000u;
	w->f.respawn_backoff = b > 1000000000u ? 1000000000u : b;
	w->f.respawn_at = mproc__coarse_ns() + w->f.respawn_backoff;
}

void mproc__fault_respawn(struct mproc_pool *pool)
{
	if (pool->state == MPROC__TERMINATED || pool->broken)
		return;
	uint64_t now = 0;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (mproc__worker_alive(w))
			continue;
		if (!now)
			now = mproc__coarse_ns();
		if (now >= w->f.respawn_at)
			respawn(pool, w);
	}
}

/* The timeout of task `id` on w (its call's, or the pool's), or of the
 * first task w holds when id is 0; 0 means none. */
static uint64_t task_timeout(const struct mproc_pool *pool,
                             const struct mproc__worker *w, uint64_t id)
{
	for (size_t qi = 0; qi < mproc__chunkq_len(&w->q); qi++) {
		const struct mproc__chunk *c = mproc__chunkq_at(&w->q, qi);
		if (!id || (id >= c->id && id < c->id + c->count)) {
			uint64_t t = mproc__job_timeout(mproc__call_job(c->call));
			if (t)
				return t == UINT64_MAX ? 0 : t;
			break;
		}
	}
	return pool->timeout_ns;
}

/* The shortest timeout among the chunks w holds, 0 when none has one. */
static uint64_t queued_timeout(const struct mproc_pool *pool,
                               const struct mproc__worker *w)
{
	uint64_t least = 0;
	for (size_t qi = 0; qi < mproc__chunkq_len(&w->q); qi++) {
		uint64_t t = mproc__job_timeout(mproc__call_job(mproc__chunkq_at(&w->q, qi)->call));
		if (!t)
			t = pool->timeout_ns;
		if (t && t != UINT64_MAX && (!least || t < least))
			least = t;
	}
	return least;
}

/* How often the watch looks while a task with this timeout may run. */
static uint64_t watch_every(uint64_t limit_ns)
{
	return limit_ns / 8 > 1000000u ? limit_ns / 8 : 1000000u;
}

void mproc__fault_stalls(struct mproc_pool *pool)
{
	uint64_t now = 0;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (mproc__worker_alive(w) && w->cut_ns) {
			mproc__fault_channel_ended(pool, w);
			continue;
		}
		if (!mproc__worker_alive(w) || !w->partial_ns)
			continue;
		if (!now)
			now = mproc__coarse_ns();
		if (w->partial_ns == UINT64_MAX) {
			w->partial_ns = now; /* bytes came: timed from here */
			continue;
		}
		/* Its worker waits for work, not writing, and no byte of the
		 * frame came for MPROC__STALL_NS: the rest never comes. */
		if (now - w->partial_ns >= MPROC__STALL_NS &&
		    !atomic_load_explicit(&pool->status[i].task_id,
		                          memory_order_acquire)) {
			w->f.proto_stall = true;
			mproc__fault_died(pool, w, MPROC__END_PROTO);
		}
	}
}

void mproc__fault_note_ready(struct mproc_pool *pool)
{
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		if (!mproc__worker_alive(w) || !w->f.death_ns)
			continue;
		uint64_t ready = atomic_load_explicit(&pool->status[i].ready_ns,
		                                      memory_order_acquire);
		if (ready) {
			mproc__stats_replaced(&pool->stats,
			                      ready > w->f.death_ns
			                              ? (double)(ready - w->f.death_ns) / 1e9
			                              : 0);
			w->f.death_ns = 0;
		}
	}
}

uint64_t mproc__fault_watch(struct mproc_pool *pool)
{
	uint64_t next = UINT64_MAX;
	uint64_t now = 0;
	mproc__fault_note_ready(pool);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct mproc__worker *w = &pool->workers[i];
		struct mproc__status *st = &pool->status[i];
		if (!mproc__worker_alive(w))
			continue;
		if (!pool->timeout_ns && !pool->calls.timed)
			continue;
		if (!now)
			now = mproc__coarse_ns();
		uint64_t id = atomic_load_explicit(&st->task_id, memory_order_acquire);
		uint64_t limit_ns = task_timeout(pool, w, id);
		/* Look often enough for the shortest timeout this worker holds:
		 * a task behind this one may start any moment. */
		uint64_t shortest = limit_ns;
		if (pool->calls.timed) {
			uint64_t q = queued_timeout(pool, w);
			if (q && (!shortest || q < shortest))
				shortest = q;
		}
		uint64_t look = watch_every(shortest);
		if (!atomic_load_explicit(&st->ready_ns, memory_order_acquire)) {
			/* Not ready yet with tasks waiting: its initializer gets
			 * the task timeout to finish, then SIGKILL. A worker with
			 * none is only slow to start (a loaded machine; its tasks
			 * are taken back if another moves), or hung before its
			 * first task (a fork handler): it gets SLOW_START_NS, and
			 * its kill is no start failure. Look again soon, to see
			 * its first task start. */
			bool init = pool->opts.initializer != NULL;
			uint64_t grant = init || limit_ns > SLOW_START_NS
			                         ? limit_ns
			                         : SLOW_START_NS;
			uint64_t limit = w->f.spawned_ns + grant;
			if (!mproc__chunkq_len(&w->q))
				continue;
			if (limit_ns && now >= limit && !w->f.killed) {
				mproc__worker_signal(&pool->be, w, SIGKILL);
				w->f.killed = true;
				w->f.slow_start = !init;
			} else if (limit_ns && limit < next) {
				next = limit;
			}
			if (shortest && now + look < next)
				next = now + look;
			continue;
		}
		if (w->f.term_at) {
			uint64_t kill_at = w->f.term_at + pool->grace_ns;
			if (now >= kill_at) {
				if (!w->f.killed) {
					mproc__worker_signal(&pool->be, w, SIGKILL);
					w->f.killed = true;
				}
			} else if (kill_at < next) {
				next = kill_at;
			}
			continue;
		}
		if (!limit_ns) {
			/* This task has none, but one queued behind it may. */
			if (shortest && now + look < next)
				next = now + look;
			continue;
		}
		if (!id) {
			/* Tasks sent but not started: look again soon enough to
			 * see the next one start. */
			if (mproc__chunkq_len(&w->q) && now + look < next)
				next = now + look;
			continue;
		}
		/* A task is timed from when the watch first sees it running:
		 * the worker reads no clock. While one runs, the watch looks
		 * at least every eighth of its timeout, so it fires at most
		 * that much (plus a coarse tick) late, never early. */
		if (id != w->f.seen_id) {
			w->f.seen_id = id;
			w->f.seen_ns = now;
		}
		uint64_t start = w->f.seen_ns;
		if (now + look < next)
			next = now + look;
		if (now >= start + limit_ns) {
			/* A task that crashed, or a worker already gone, while
			 * the driver was away is no timeout: its death, waiting
			 * in the poll, says what ended it. A crashed worker that
			 * still has not ended a grace period later (stopped in
			 * its crash handler) is stopped all the same, and its
			 * task still ends CRASHED. */
			bool gone = atomic_load_explicit(&st->crash_signal,
			                                 memory_order_acquire) ||
			            (w->proc.exit_fd >= 0 && mproc__worker_ends(w, 0));
			if (gone && now < start + limit_ns + pool->grace_ns) {
				if (start + limit_ns + pool->grace_ns < next)
					next = start + limit_ns + pool->grace_ns;
				continue;
			}
			mproc__worker_signal(&pool->be, w, SIGTERM);
			w->f.term_at = now;
			w->f.timeout_task = id;
			w->f.timeout_ns = limit_ns;
			if (now + pool->grace_ns < next)
				next = now + pool->grace_ns;
		} else if (start + limit_ns < next) {
			next = start + limit_ns;
		}
	}
	/* A channel that ended: its worker's end wakes the poll (a pidfd);
	 * without one, look every few milliseconds; at the latest, when its
	 * grace ends. */
	for (unsigned i = 0; i < pool->nworkers; i++) {
		const struct mproc__worker *w = &pool->workers[i];
		if (!mproc__worker_alive(w) || !w->cut_ns)
			continue;
		uint64_t at = w->cut_ns + MPROC__END_GRACE_NS;
		if (w->proc.exit_fd < 0) {
			if (!now)
				now = mproc__coarse_ns();
			if (now + 2000000u < at)
				at = now + 2000000u;
		}
		if (at < next)
			next = at;
	}
	/* A frame cut short is looked at again when it would stall. */
	for (unsigned i = 0; i < pool->nworkers; i++) {
		uint64_t p = pool->workers[i].partial_ns;
		if (p == UINT64_MAX)
			p = mproc__coarse_ns();
		if (mproc__worker_alive(&pool->workers[i]) && p &&
		    p + MPROC__STALL_NS < next)
			next = p + MPROC__STALL_NS;
	}
	/* Empty slots wait for their next fork attempt. */
	for (unsigned i = 0; i < pool->nworkers; i++)
		if (!mproc__worker_alive(&pool->workers[i]) &&
		    pool->state != MPROC__TERMINATED &&
		    !pool->broken && pool->workers[i].f.respawn_at < next)
			next = pool->workers[i].f.respawn_at;
	/* The coarse clock lags by up to a tick: wake a little after. */
	return next == UINT64_MAX ? next : next + 5000000u;
}

