/*
 * job.c - one call's inputs and results: what map, apply and imap share.
 *
 * A job pulls its input lazily into TASK frames (job_pull; ranges and
 * number arrays a chunk at a time, without their generator) and stores each
 * frame of results as it comes back (job_store_run, job_store.c). ALL jobs
 * (map, apply) keep every result, decoded on arrival into a table made once
 * at the input's length, a word per result (result.c); iterator jobs keep
 * at most `window` results pulled ahead of the consumer, in a ring of slots
 * whose buffers are reused, so a long imap allocates nothing per task once
 * warm (job_ring.c). Tiny results (None, a bool, a small int) take a shared
 * node in both: no copy, no decoding.
 *
 * This file makes a job, takes its options and gives out its work; the
 * other parts are job_args.c, job_journal.c, job_store.c and job_ring.c,
 * which share struct mproc__job through job_impl.h (its top says who calls
 * whom).
 *
 * Invariant: input_err is set only with input_done; every index below
 * `pulled` gets exactly one stored result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "job_impl.h"
#include "clock.h"
#include "detail.h"
#include "journal.h"
#include "oob.h"
#include "pickle.h"
#include "wire.h"

struct mproc__job *mproc__job_new(struct mproc__jobenv *env,
                                  enum mproc__job_kind kind, mproc_task_fn fn,
                                  size_t chunksize, uint8_t flags)
{
	struct mproc__job *job = calloc(1, sizeof *job);
	if (!job)
		return NULL;
	job->env = env;
	job->kind = kind;
	job->fn = fn;
	job->flags = flags;
	job->chunksize = chunksize ? chunksize : 1;
	job->rs.errors_in_recs = kind == MPROC__JOB_ALL;
	job->results.owner = job;
	if (env && env->oob) {
		mproc__rstore_use_oob(&job->rs, env->oob);
		job->oob = env->oob;
	}
	return job;
}

void mproc__job_free(struct mproc__job *job)
{
	if (!job)
		return;
	mproc__buf_free(&job->pre);
	mproc__job_args_free(job);
	for (size_t i = 0; i < job->nslots; i++) {
		mproc__job_slot_release(job, &job->slots[i]);
		mproc__buf_free(&job->slots[i].data);
	}
	free(job->slots);
	for (size_t i = 0; i < job->nspare; i++)
		mproc__buf_free(&job->spare[i]);
	free(job->spare);
	mproc__table_free(job->table, job->ntable);
	mproc__jcall_free(job->jc);
	free(job->ihash);
	mproc__buf_free(&job->ahead);
	mproc__rstore_free(&job->rs, job->env ? &job->env->dec : NULL,
	                   job->pulled <= 1024);
	free(job);
}

void mproc__job_detach(struct mproc__job *job)
{
	job->env = NULL;
	/* The journal closes with the pool. */
	mproc__jcall_free(job->jc);
	job->jc = NULL;
	job->jwant = false;
}

int mproc__job_set_opts(struct mproc__job *job, const struct mproc_call_opts *co)
{
	if (!co)
		return 0;
	if (isnan(co->timeout) || co->timeout >= 1e9)
		return -EINVAL;
	job->timeout_ns = co->timeout > 0   ? (uint64_t)(co->timeout * 1e9)
	                  : co->timeout < 0 ? UINT64_MAX
	                                    : 0;
	if (co->star)
		job->flags |= MPROC__TF_STAR;
	if (co->progress) {
		if (!(co->progress_interval >= 0 && co->progress_interval < 1e9))
			return -EINVAL;
		job->progress = co->progress;
		job->progress_cookie = co->progress_cookie;
		job->progress_every = (uint64_t)((co->progress_interval > 0
		                                          ? co->progress_interval
		                                          : 0.1) * 1e9);
		job->progress_start = mproc__coarse_ns();
		job->progress_next = job->progress_start + job->progress_every;
		job->hooks = true;
	}
	return 0;
}

int mproc__job_set_input(struct mproc__job *job, const struct mproc_input *in)
{
	if (!mproc__input_valid(in))
		return -EINVAL;
	/* Our own copy: the caller's may be gone when an async job pulls. */
	job->in = *in;
	job->pack = mproc__input_pack(&job->in);
	if (job->env && job->env->jnl) {
		/* Every item is hashed as a pickle: no packed chunks. */
		job->jwant = true;
		job->hooks = true;
		job->pack = 0;
	}
	return 0;
}

static int job_pre_append(struct mproc__job *job, const void *p, size_t len)
{
	return mproc__task_rec_append(&job->pre, p, len);
}

int mproc__job_set_arg(struct mproc__job *job, const void *arg, size_t len)
{
	static const char none[] = "\x80\x05N.";
	if (!arg) {
		arg = none;
		len = sizeof none - 1;
	}
	job->use_pre = true;
	job->pack = 0;
	job->in.has_len = true;
	job->in.len = 1;
	return job_pre_append(job, arg, len);
}

/* Pull one item from the generator as a record at the end of `out`. */
static int job_gen_one(struct mproc__job *job, struct mproc_writer *w,
                       struct mproc__buf *out)
{
	size_t rec = out->len;
	int rc = mproc__buf_reserve(out, MPROC__TASK_REC);
	if (rc < 0)
		return rc;
	out->len += MPROC__TASK_REC;
	mproc__writer_attach(w, out);
	rc = mproc_input_write(&job->in, job->pulled, w);
	if (rc > 0) {
		int end = mproc__writer_end(w);
		if (end == 0 && mproc__writer_oob_count(w)) {
			/* Its buffers: named in a trailer, in the argument
			 * ring (a copy unless the writer made them there), by
			 * pointer (threads), or inline (a pool without). */
			end = mproc__oob_trailer(job->oob, w, NULL, out,
			                         rec + MPROC__TASK_REC, NULL, 0);
			if (end == 0 && job->oob)
				end = mproc__job_args_keep(job, job->pulled,
				                           out, rec);
		}
		rc = end < 0 ? mproc__detail_text(MPROC_EINPUT,
		                       "input item %zu: what the generator "
		                       "wrote is not one value: %s",
		                       job->pulled, mproc_strerror(end))
		             : 1;
	} else if (rc < 0) {
		/* The helpers name the item and why themselves (input.c); a
		 * generator's own code is named here. */
		if (job->in.fn)
			mproc__detail_text(MPROC_EINPUT,
			                   "input item %zu: the generator "
			                   "answered %s (%s)", job->pulled,
			                   mproc_err_name(rc), mproc_strerror(rc));
		rc = MPROC_EINPUT;
	}
	if (rc == MPROC_EINPUT)
		snprintf(job->input_detail, sizeof job->input_detail, "%s",
		         mproc_error_detail());
	mproc__writer_attach(w, NULL);
	if (rc <= 0) {
		out->len = rec;
		return rc;
	}
	if (mproc__task_rec_close(out, rec) < 0) {
		out->len = rec;
		return -ENOMEM;
	}
	return 1;
}

const char *mproc__job_input_detail(const struct mproc__job *job)
{
	return job->input_detail;
}

int mproc__job_read_all(struct mproc__job *job)
{
	/* This runs in the caller's thread without the pool's lock: its own
	 * writer. */
	struct mproc_writer *w;
	int wrc = mproc_writer_new(&w, 5);
	if (wrc < 0)
		return wrc;
	if (job->oob) {
		mproc__writer_set_oob(w, mproc__oob_arg_ops(job->oob));
		(void)mproc_writer_set_oob_threshold(w, job->oob->threshold);
	}
	size_t n = 0;
	int rc;
	for (;;) {
		job->pulled = n;
		rc = job_gen_one(job, w, &job->pre);
		if (rc <= 0)
			break;
		n++;
	}
	mproc_writer_free(w);
	job->pulled = 0;
	if (rc < 0)
		return rc;
	job->use_pre = true;
	job->pack = 0;
	job->in.has_len = true;
	job->in.len = n;
	return 0;
}

size_t mproc__job_len(const struct mproc__job *job)
{
	return job->in.len;
}

void mproc__job_set_chunksize(struct mproc__job *job, size_t chunksize)
{
	job->chunksize = chunksize ? chunksize : 1;
}

void mproc__job_set_owner(struct mproc__job *job, void *owner)
{
	job->results.owner = owner;
}

enum mproc__job_kind mproc__job_kind(const struct mproc__job *job)
{
	return job->kind;
}

size_t mproc__job_chunksize(const struct mproc__job *job)
{
	return job->chunksize;
}

uint64_t mproc__job_timeout(const struct mproc__job *job)
{
	return job->timeout_ns;
}

/* ---- giving out work ---------------------------------------------------- */

size_t mproc__job_room(const struct mproc__job *job)
{
	if (job->input_done)
		return 0;
	/* Big arguments: what waits for a worker, or runs, stays within a
	 * budget of bytes, or two tasks a worker past it (one running, one
	 * waiting), so that the memory they cycle through stays small and
	 * warm. Not an input read whole already (map of unknown length):
	 * its buffers are made. */
	if (__builtin_expect(job->arg_bytes != 0, 0) && !job->use_pre &&
	    job->arg_bytes >= job->oob->arg_budget &&
	    job->arg_tasks >= job->oob->arg_tasks)
		return 0;
	if (job->kind == MPROC__JOB_ALL)
		return SIZE_MAX;
	/* Iterators: at most `window` results between the consumer and the
	 * input, so that an endless input runs in bounded memory. */
	size_t ahead = job->pulled - job->delivered;
	if (ahead >= job->window)
		return 0;
	/* Past the soft window, only small results: a worker that holds the
	 * next result back (descheduled, slow) stops the others only once
	 * they have filled the window or a few MiB. */
	if (ahead >= job->soft) {
		if (job->held >= MPROC__HELD_BYTES)
			return 0;
		/* Few at a time, so that a run of big results is seen coming:
		 * past the soft window, what waits holds under the budget plus
		 * what is in flight. */
		size_t room = job->window - ahead, step = job->soft / 8 + 1;
		return room < step ? room : step;
	}
	return job->window - ahead;
}

size_t mproc__job_left(const struct mproc__job *job)
{
	return job->in.has_len ? job->in.len - job->pulled : SIZE_MAX;
}

bool mproc__job_input_done(const struct mproc__job *job)
{
	return job->input_done;
}

void mproc__job_end_input(struct mproc__job *job, int err)
{
	mproc__job_stop_input(job, err);
}

size_t mproc__job_pulled(const struct mproc__job *job)
{
	return job->pulled;
}

mproc_task_fn mproc__job_fn(const struct mproc__job *job)
{
	return job->fn;
}

uint8_t mproc__job_frame_flags(const struct mproc__job *job)
{
	return job->flags | job->pack;
}

int mproc__job_frame_begin(const struct mproc__job *job, struct mproc__buf *out)
{
	if (job->pack != MPROC__TF_RANGE)
		return 0;
	/* The frame's one record: where its part of the range starts. */
	int64_t rec[2];
	mproc__input_range_at(&job->in, job->pulled, rec);
	return mproc__buf_append(out, rec, sizeof rec);
}

static int job_grow_items(struct mproc__job *job, size_t need)
{
	if (need <= job->ntable)
		return 0;
	/* A map knows its length: the table is made once, at its size. */
	size_t n = job->ntable ? job->ntable : 64;
	while (n < need)
		n *= 2;
	if (job->in.has_len && need <= job->in.len && n > job->in.len)
		n = job->in.len;
	/* Not cleared: every item up to `pulled` is written when its result
	 * is stored, and none past it is ever read. */
	uintptr_t *t = mproc__table_alloc(n);
	if (!t)
		return -ENOMEM;
	if (job->pulled)
		memcpy(t, job->table, job->pulled * sizeof *t);
	mproc__table_free(job->table, job->ntable);
	job->table = t;
	job->ntable = n;
	return 0;
}

/*
 * A packed job's next items: an array's take their 8 bytes; a range's take
 * none (the frame's record says where it starts, mproc__job_frame_begin)
 * but count 16 each against the byte budget, so that a chunk ends near
 * 1 M tasks, as a pickled one did: that bounds what an unexplained death
 * makes of it (a one-task suspect frame per task left).
 */
static size_t job_pull_packed(struct mproc__job *job, struct mproc__buf *out,
                              size_t n, size_t limit)
{
	size_t room = out->len < limit ? limit - out->len : 0;
	room /= job->pack == MPROC__TF_RANGE ? MPROC__RANGE_REC : MPROC__NUM_REC;
	if (n > room)
		n = room;
	if (n > job->in.len - job->pulled)
		n = job->in.len - job->pulled;
	if (n && job->pack != MPROC__TF_RANGE &&
	    mproc__input_numbers(&job->in, job->pulled, n, out) != n) {
		mproc__job_end_input(job, -ENOMEM);
		return 0;
	}
	job->pulled += n;
	if (job->pulled >= job->in.len)
		job->input_done = true;
	return n;
}

/* The next item, read ahead or from the generator: 1, 0 at the end, or a
 * negative code. */
static int job_pull_one(struct mproc__job *job, struct mproc__buf *out)
{
	if (job->have_ahead) {
		int rc = mproc__buf_append(out, job->ahead.data, job->ahead.len);
		if (rc < 0)
			return rc;
		job->have_ahead = false;
		job->ahead.len = 0;
		return 1;
	}
	if (!job->use_pre) {
		if (job->in.has_len && job->pulled >= job->in.len)
			return 0;
		return job_gen_one(job, job->env->w, out);
	}
	if (job->pre_off >= job->pre.len)
		return 0;
	size_t rl = mproc__task_rec_size(0, job->pre.data + job->pre_off);
	int rc = mproc__buf_append(out, job->pre.data + job->pre_off, rl);
	if (rc < 0)
		return rc;
	job->pre_off += rl;
	/* A big argument read ahead is in the frame now: not twice (the
	 * tests of pre_off >= pre.len hold as well at 0). */
	if (__builtin_expect(job->pre.cap > MPROC__BUF_KEEP, 0) &&
	    job->pre_off >= job->pre.len)
		mproc__buf_free(&job->pre);
	return 1;
}

/* ---- what the journal has ------------------------------------------------ */

static void job_jnl_skip(struct mproc__job *job)
{
	mproc__job_jnl_begin(job);
	if (!job->jc || (job->kind == MPROC__JOB_ALL && job->in.has_len &&
	                 job_grow_items(job, job->in.len) < 0))
		return;
	while (!job->input_done && mproc__job_room(job) > 0) {
		if (!job->have_ahead) {
			int rc = job_pull_one(job, &job->ahead);
			if (rc <= 0) {
				mproc__job_end_input(job, rc);
				break;
			}
			job->have_ahead = true;
		}
		size_t blen;
		const char *body = mproc__task_rec_body(job->ahead.data, &blen);
		uint64_t h = mproc__job_input_hash(job, body, blen);
		int d = mproc__jcall_done(job->jc, job->pulled, h);
		if (d == 0)
			break;
		enum mproc_status status;
		unsigned attempts;
		const void *p = NULL;
		size_t len = 0;
		if (d < 0 || (d = mproc__jcall_get(job->jc, job->pulled, &status,
		                                   &attempts, &p, &len)) < 0 ||
		    (job->kind == MPROC__JOB_ALL &&
		     (d = job_grow_items(job, job->pulled + 1)) < 0)) {
			mproc__job_end_input(job, d);
			break;
		}
		job->have_ahead = false;
		job->ahead.len = 0;
		/* Stored as it was, neither counted nor journaled again: it did
		 * not run in this pool. */
		size_t index = job->pulled++;
		mproc__job_restore(job, index, status, attempts, p, len);
		/* Its argument was pulled (and its buffers made): they go. */
		if (job->nabuf > job->abuf_head)
			mproc__job_args_done(job, index, 1);
	}
	if (!job->have_ahead &&
	    ((job->use_pre && job->pre_off >= job->pre.len) ||
	     (job->in.has_len && job->pulled >= job->in.len)))
		job->input_done = true;
	if (job->progress)
		mproc__job_progress(job, false);
}

void mproc__job_skip(struct mproc__job *job)
{
	if (job->jwant)
		job_jnl_skip(job);
}

size_t mproc__job_pull(struct mproc__job *job, struct mproc__buf *out,
                       size_t n, size_t limit)
{
	size_t got = 0;
	if (job->kind == MPROC__JOB_ALL && job->in.has_len &&
	    job_grow_items(job, job->in.len) < 0) {
		mproc__job_end_input(job, -ENOMEM);
		return 0;
	}
	if (job->pack)
		return job->input_done ? 0 : job_pull_packed(job, out, n, limit);
	if (job->jwant && !job->jc) {
		mproc__job_jnl_begin(job);
		if (!job->jc)
			return 0;
	}
	while (got < n && !job->input_done && out->len < limit) {
		size_t rec = out->len;
		int rc = job_pull_one(job, out);
		if (rc <= 0) {
			mproc__job_end_input(job, rc);
			break;
		}
		if (job->jc && mproc__job_jnl_check(job, out, rec) != 0)
			break; /* the chunk ends before an item with a result */
		if (job->kind == MPROC__JOB_ALL &&
		    job_grow_items(job, job->pulled + 1) < 0) {
			mproc__job_end_input(job, -ENOMEM);
			break;
		}
		job->pulled++;
		got++;
	}
	if (job->use_pre && job->pre_off >= job->pre.len && !job->have_ahead)
		job->input_done = true;
	return got;
}

void mproc__job_cancel_rest(struct mproc__job *job)
{
	if (job->input_done)
		return;
	if (job->kind != MPROC__JOB_ALL || !job->in.has_len) {
		/* An iterator hands out what it pulled, then MPROC_ECLOSED. */
		mproc__job_end_input(job, MPROC_ECLOSED);
		return;
	}
	if (job_grow_items(job, job->in.len) < 0) {
		mproc__job_end_input(job, -ENOMEM);
		return;
	}
	size_t from = job->pulled;
	job->pulled = job->in.len;
	job->input_done = true;
	mproc__job_cancel(job, from, job->in.len - from);
}

bool mproc__job_stalled(const struct mproc__job *job)
{
	return job->kind != MPROC__JOB_ALL && job->completed == job->pulled &&
	       mproc__job_room(job) == 0;
}

