/*
 * job.c - one call's inputs and results: what map, apply and imap share.
 *
 * A job pulls its input lazily into TASK frames (job_pull; ranges and
 * number arrays a chunk at a time, without their generator) and stores each
 * frame of results as it comes back (job_store_run). ALL jobs (map, apply)
 * keep every result, decoded on arrival into a table made once at the
 * input's length, a word per result (result.c); iterator jobs keep at most
 * `window` results pulled ahead of the consumer, in a ring of slots whose
 * buffers are reused, so a long imap allocates nothing per task once warm.
 * Tiny results (None, a bool, a small int) take a shared node in both: no
 * copy, no decoding.
 *
 * Invariant: input_err is set only with input_done; every index below
 * `pulled` gets exactly one stored result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "input.h"
#include "job.h"
#include "clock.h"
#include "detail.h"
#include "journal.h"
#include "oob.h"
#include "pickle.h"
#include "wire.h"

/* Where one result waits in an iterator's ring. */
struct slot {
	size_t index;
	enum mproc_status status;
	unsigned attempts;
	bool ready;
	const struct mproc_value *tiny; /* an OK None, bool or small int */
	bool held;              /* data has buffers whose blocks it holds */
	size_t bytes;           /* data's, and its buffers' (the budget) */
	struct mproc__buf data; /* the result's pickle (empty when `tiny`) */
};

/* A pulled item's out-of-band buffers, held until its task is final. */
struct argbufs {
	size_t index;
	size_t bytes;           /* of its buffers outside the record */
	uint32_t n;             /* 0: released */
	struct mproc__oobdesc *d;
};

struct mproc__job {
	struct mproc__jobenv *env; /* NULL once the pool is gone */
	enum mproc__job_kind kind;
	mproc_task_fn fn;
	uint8_t flags;          /* MPROC__TF_* for its task frames */
	uint8_t pack;           /* MPROC__TF_RANGE, _INTS, _FLOATS, or 0 */
	size_t chunksize;
	uint64_t timeout_ns;    /* 0: the pool's; UINT64_MAX: none */

	/* Input: a generator, or records read ahead (apply; map with no len). */
	struct mproc_input in;
	bool use_pre;
	struct mproc__buf pre;  /* task records (wire.h) */
	size_t pre_off;
	size_t pulled;          /* items taken from the input so far */
	bool input_done;
	int input_err;
	/* Why the input failed (mproc_error_detail() at the failure), for
	 * the call's handle: "" until then. */
	char input_detail[192];

	/* Results. */
	bool unread;            /* nobody will read them */
	size_t completed;       /* results stored */
	size_t delivered;       /* iterators: results handed out */
	size_t window;          /* iterators: most results pulled ahead */
	size_t soft;            /* past this many, only while `held` is under
	                         * MPROC__HELD_BYTES */
	size_t held;            /* bytes of results not handed out */
	size_t kicked;          /* `delivered` when input was last wanted */
	struct slot *slots;     /* iterators: a power of two > window */
	size_t nslots;
	struct slot *last;      /* the slot handed out last */
	struct mproc__buf *spare; /* buffers of handed-out results */
	size_t nspare;
	size_t uhead, ucount;   /* unordered: FIFO of ready slots */
	uintptr_t *table;       /* ALL: a word per input, filled on arrival */
	size_t ntable;
	size_t failed;
	struct mproc__rstore rs;
	struct mproc_result cur;   /* iterators: the result handed out */
	struct mproc_results results; /* ALL: filled when done */

	/* The journal (journal.c), when the pool has one: `jwant` is the one
	 * test on the paths of a pool without. */
	bool jwant;             /* journaled: opened at the first pull */
	bool jtried;
	struct mproc__jcall *jc;
	uint64_t *ihash;        /* input hash of each pulled item, by index
	                         * & jmask, until its result is stored */
	size_t jmask;
	struct mproc__buf ahead; /* an item pulled but not in a chunk: the
	                          * chunk ended before it (it has a result) */
	bool have_ahead;

	/* Items with out-of-band buffers, in pull order, from `ahead`. */
	struct argbufs *abuf;
	size_t nabuf, abuf_head, abuf_cap;
	size_t arg_bytes;        /* their buffers' bytes (oob.h's budget) */
	size_t arg_tasks;        /* items whose buffers are held */
	struct mproc__oob *oob;  /* the pool's (a reference, in rs) */

	/* Progress (struct mproc_call_opts): NULL `progress` without. */
	mproc_progress_fn progress;
	void *progress_cookie;
	uint64_t progress_every;   /* ns between two calls */
	uint64_t progress_start;   /* when the job was made */
	uint64_t progress_next;    /* the next call is due */
	size_t nfailed;            /* results stored not OK */
	size_t restored;           /* results read from the journal */
	bool progress_final;       /* the last call was made */
	/* A journal or a progress callback: the one test on the paths of a
	 * job without either. */
	bool hooks;
};

static void job_progress(struct mproc__job *job, bool final)
{
	uint64_t now = mproc__coarse_ns();
	if (!final && now < job->progress_next)
		return;
	if (job->progress_final)
		return;
	job->progress_final = final;
	job->progress_next = now + job->progress_every;
	double elapsed = (double)(now - job->progress_start) / 1e9;
	struct mproc_progress p = {
		.done = job->completed,
		.failed = job->nfailed,
		.restored = job->restored,
		.total = job->in.has_len ? job->in.len : SIZE_MAX,
		.elapsed = elapsed,
		.eta = -1,
		.final = final,
	};
	size_t ran = p.done - p.restored;
	if (ran && elapsed > 0) {
		p.rate = (double)ran / elapsed;
		if (p.total != SIZE_MAX)
			p.eta = (double)(p.total - p.done) / p.rate;
	}
	if (final)
		p.eta = 0;
	job->progress(job->progress_cookie, &p);
}

static void job_count(struct mproc__job *job, enum mproc_status status)
{
	if (job->env)
		mproc__stats_count(job->env->stats, status);
}

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

/* ---- out-of-band buffers (oob.h) ------------------------------------------- */

/* A final result into the journal: with its buffers' bytes, which outlive
 * this run, not where they are now. */
static void job_jnl_put(struct mproc__job *job, size_t index,
                        enum mproc_status status, unsigned attempts,
                        const void *payload, size_t len)
{
	uint64_t h = job->ihash[index & job->jmask];
	if (!len || !mproc__oob_has_trailer(payload, len)) {
		mproc__jcall_put(job->jc, index, h, status, attempts, payload, len);
		return;
	}
	struct mproc__buf flat = {0};
	if (mproc__oob_flatten(job->oob, payload, len, &flat) == 0)
		mproc__jcall_put(job->jc, index, h, status, attempts, flat.data,
		                 flat.len);
	mproc__buf_free(&flat);
}

static void job_args_release(struct mproc__job *job, struct argbufs *a)
{
	if (a->n)
		mproc__oob_release(job->oob, a->d, a->n);
	job->arg_tasks -= a->n != 0;
	job->arg_bytes -= a->bytes;
	a->bytes = 0;
	free(a->d);
	a->d = NULL;
	a->n = 0;
}

/* Item `index`'s record out[rec..] has a trailer: keep its descriptors
 * until its task is final. */
static int job_args_keep(struct mproc__job *job, size_t index,
                         const struct mproc__buf *out, size_t rec)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	const char *body = out->data + rec + MPROC__TASK_REC;
	if (mproc__oob_split(body, out->len - rec - MPROC__TASK_REC, &plen, &d,
	                     &n) < 0 || !n)
		return 0;
	if (job->abuf_head && job->abuf_head == job->nabuf)
		job->abuf_head = job->nabuf = 0;
	if (job->nabuf == job->abuf_cap) {
		if (job->abuf_head > job->nabuf / 2) {
			/* Most at the front are released: move the rest. */
			memmove(job->abuf, job->abuf + job->abuf_head,
			        (job->nabuf - job->abuf_head) * sizeof *job->abuf);
			job->nabuf -= job->abuf_head;
			job->abuf_head = 0;
		} else {
			size_t cap = job->abuf_cap ? 2 * job->abuf_cap : 16;
			struct argbufs *a = reallocarray(job->abuf, cap, sizeof *a);
			if (!a)
				return -ENOMEM;
			job->abuf = a;
			job->abuf_cap = cap;
		}
	}
	struct mproc__oobdesc *copy = malloc((size_t)n * sizeof *copy);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, d, (size_t)n * sizeof *copy);
	/* What the pool holds: blocks, not bytes lent by the caller (threads)
	 * nor bytes inside the record. */
	size_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		if (copy[i].tag)
			bytes += (size_t)copy[i].len;
	job->abuf[job->nabuf++] = (struct argbufs){index, bytes, n, copy};
	job->arg_bytes += bytes;
	job->arg_tasks++;
	return 0;
}

/* Tasks index .. index+count-1 are final: their arguments' blocks go. */
static void job_args_done(struct mproc__job *job, size_t index, size_t count)
{
	size_t lo = job->abuf_head, hi = job->nabuf;
	while (lo < hi) { /* the first entry >= index */
		size_t mid = lo + (hi - lo) / 2;
		if (job->abuf[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < job->nabuf && job->abuf[i].index < index + count;
	     i++)
		job_args_release(job, &job->abuf[i]);
	while (job->abuf_head < job->nabuf && !job->abuf[job->abuf_head].n)
		job->abuf_head++;
}

static void slot_release(struct mproc__job *job, struct slot *s)
{
	if (s->held) {
		mproc__oob_release_body(job->oob, s->data.data, s->data.len);
		s->held = false;
	}
}

/* The input hash the journal keeps: a trailer's offsets change from run
 * to run, its buffers' bytes do not. */
static uint64_t job_input_hash(const struct mproc__job *job, const char *body,
                               size_t len)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	if (!mproc__oob_has_trailer(body, len) ||
	    mproc__oob_split(body, len, &plen, &d, &n) < 0)
		return mproc__journal_hash(body, len);
	uint64_t h = mproc__journal_hash(body, plen);
	struct mproc_buffer *b = calloc(n, sizeof *b);
	if (b && mproc__oob_buffers(job->oob, body, len, plen, d, n, b) == 0)
		for (uint32_t i = 0; i < n; i++)
			h = (h ^ mproc__journal_hash(b[i].data, b[i].len)) *
			    UINT64_C(0x100000001b3);
	free(b);
	return h;
}

void mproc__job_free(struct mproc__job *job)
{
	if (!job)
		return;
	mproc__buf_free(&job->pre);
	for (size_t i = job->abuf_head; i < job->nabuf; i++)
		job_args_release(job, &job->abuf[i]);
	free(job->abuf);
	for (size_t i = 0; i < job->nslots; i++) {
		slot_release(job, &job->slots[i]);
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
				end = job_args_keep(job, job->pulled, out, rec);
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

int mproc__job_set_window(struct mproc__job *job, size_t window, size_t soft)
{
	/* At least window + 1 slots (the result handed out last stays valid
	 * while a full window arrives), a power of two so that a slot is found
	 * with a mask, not a division, once per result. */
	if (window > (SIZE_MAX >> 2) || soft > window)
		return -ENOMEM;
	size_t n = 1;
	while (n < window + 1)
		n <<= 1;
	struct slot *s = calloc(n, sizeof *s);
	/* Buffers outlive their results only up to the soft window's count:
	 * past it, what a slot held goes back to the allocator. */
	struct mproc__buf *spare = soft < window ? calloc(soft, sizeof *spare)
	                                         : NULL;
	if (!s || (soft < window && !spare)) {
		free(s);
		free(spare);
		return -ENOMEM;
	}
	job->window = window;
	job->soft = soft;
	job->slots = s;
	job->nslots = n;
	job->spare = spare;
	return 0;
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
	if (job->input_done)
		return;
	job->input_done = true;
	job->input_err = err;
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

/* ---- the journal ----------------------------------------------------------- */

static inline int job_store(struct mproc__job *job, size_t index,
                            enum mproc_status status, unsigned attempts,
                            const void *payload, size_t len);

/* The call's part of the journal, at its first pull, when its length and
 * options are final; an error ends the input (the call answers it). */
static void job_jnl_begin(struct mproc__job *job)
{
	if (job->jtried)
		return;
	job->jtried = true;
	size_t len = job->in.has_len ? job->in.len : SIZE_MAX;
	size_t cap = job->kind == MPROC__JOB_ALL ? (len ? len : 1) : job->nslots;
	int rc = mproc__jcall_open(job->env->jnl, (const void *)(uintptr_t)job->fn,
	                           job->flags & MPROC__TF_STAR, len, &job->jc);
	if (rc == 0 && !(job->ihash = malloc(cap * sizeof *job->ihash)))
		rc = -ENOMEM;
	if (rc < 0) {
		mproc__jcall_free(job->jc);
		job->jc = NULL;
		mproc__job_end_input(job, rc);
		return;
	}
	job->jmask = job->kind == MPROC__JOB_ALL ? SIZE_MAX : job->nslots - 1;
}

/*
 * The record just pulled at out[rec..] is item `pulled`: 0 when it must
 * run (its hash kept for its result), else it goes back to `ahead` for
 * mproc__job_skip (it has a result, or a result of another input: the
 * skip ends the call with MPROC_EJOURNAL_MISMATCH).
 */
static int job_jnl_check(struct mproc__job *job, struct mproc__buf *out,
                         size_t rec)
{
	size_t len;
	const char *body = mproc__task_rec_body(out->data + rec, &len);
	uint64_t h = job_input_hash(job, body, len);
	int d = mproc__jcall_done(job->jc, job->pulled, h);
	if (d == 0) {
		job->ihash[job->pulled & job->jmask] = h;
		return 0;
	}
	job->ahead.len = 0;
	if (mproc__buf_append(&job->ahead, out->data + rec, out->len - rec) < 0) {
		mproc__job_end_input(job, -ENOMEM);
		out->len = rec;
		return -ENOMEM;
	}
	job->have_ahead = true;
	out->len = rec;
	return 1;
}

static void job_jnl_skip(struct mproc__job *job)
{
	job_jnl_begin(job);
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
		uint64_t h = job_input_hash(job, body, blen);
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
		job->restored++;
		job->nfailed += status != MPROC_OK;
		job_store(job, index, status, attempts, p, len);
		/* Its argument was pulled (and its buffers made): they go. */
		if (job->nabuf > job->abuf_head)
			job_args_done(job, index, 1);
	}
	if (!job->have_ahead &&
	    ((job->use_pre && job->pre_off >= job->pre.len) ||
	     (job->in.has_len && job->pulled >= job->in.len)))
		job->input_done = true;
	if (job->progress)
		job_progress(job, false);
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
		job_jnl_begin(job);
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
		if (job->jc && job_jnl_check(job, out, rec) != 0)
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

/* ---- taking results back -------------------------------------------------- */

/* map/apply: decode each result as it arrives, while the workers go on. */
static int job_store_all(struct mproc__job *job, size_t index,
                         enum mproc_status status, unsigned attempts,
                         const void *payload, size_t len)
{
	uintptr_t *slot = &job->table[index];
	job->completed++;
	if (job->unread) {
		/* Nobody will read it: skip decoding. */
		*slot = mproc__table_unread();
		if (len && mproc__oob_has_trailer(payload, len))
			mproc__oob_discard(job->oob, payload, len);
		return 0;
	}
	struct mproc_result r;
	int rc = 0;
	const struct mproc_value *tiny =
	        status == MPROC_OK ? mproc__decode_tiny(payload, len) : NULL;
	if (tiny) {
		r = (struct mproc_result){.index = index, .status = MPROC_OK,
		                          .attempts = attempts, .value = tiny};
	} else {
		const char *kept = len ? mproc__rstore_keep(&job->rs, payload, len)
		                       : NULL;
		bool oob = len && mproc__oob_has_trailer(payload, len);
		if (oob && kept &&
		    mproc__rstore_hold(&job->rs, (char *)kept, len) < 0)
			kept = NULL; /* its blocks went back: not decoded */
		else if (oob && !kept)
			mproc__oob_discard(job->oob, payload, len);
		if (len && !kept) {
			r = (struct mproc_result){.index = index,
			                          .status = MPROC_RAISED,
			                          .attempts = attempts,
			                          .error = &mproc__err_nomem_keep};
			rc = -ENOMEM;
		} else {
			rc = mproc__rstore_result(&job->rs,
			                          job->env ? &job->env->dec : NULL,
			                          status, attempts, index, kept,
			                          len, &r);
			if (rc < 0) {
				r.status = MPROC_RAISED;
				r.value = NULL;
				r.error = &mproc__err_nomem_decode;
			}
		}
	}
	if (r.status != MPROC_OK)
		job->failed++;
	mproc__table_set(&job->rs, slot, &r, &job->failed);
	return rc;
}

/* Inlined in both callers: mproc__job_store is on the hot path of every
 * result that is not a map's tiny first-attempt value, and a call more
 * there cost 39 instructions a result (callgrind, bench_overhead 0). */
__attribute__((always_inline)) static inline int
job_store(struct mproc__job *job, size_t index, enum mproc_status status,
          unsigned attempts, const void *payload, size_t len)
{
	struct slot *s;
	int rc = 0;
	if (job->kind == MPROC__JOB_ALL)
		return job_store_all(job, index, status, attempts, payload, len);
	if (job->kind == MPROC__JOB_ORDERED) {
		s = &job->slots[index & (job->nslots - 1)];
	} else {
		s = &job->slots[(job->uhead + job->ucount) & (job->nslots - 1)];
		job->ucount++;
	}
	/* The commonest results need neither a copy nor, later, a decoder. */
	s->tiny = status == MPROC_OK ? mproc__decode_tiny(payload, len) : NULL;
	slot_release(job, s);
	s->data.len = 0;
	if (!s->tiny) {
		if (!s->data.cap && job->nspare)
			s->data = job->spare[--job->nspare];
		rc = mproc__buf_append(&s->data, payload, len);
	}
	if (rc < 0) {
		/* Out of memory for this result: it still ends, as an error. */
		if (len && mproc__oob_has_trailer(payload, len))
			mproc__oob_discard(job->oob, payload, len);
		s->data.len = 0;
		status = MPROC_RAISED;
	}
	s->bytes = s->data.len;
	if (s->data.len && mproc__oob_has_trailer(s->data.data, s->data.len)) {
		s->bytes += mproc__oob_hold_body(job->oob, s->data.data, len);
		s->held = true;
	}
	s->index = index;
	s->status = status;
	s->attempts = attempts;
	s->ready = true;
	job->held += s->bytes;
	job->completed++;
	return rc;
}

int mproc__job_store(struct mproc__job *job, size_t index,
                     enum mproc_status status, unsigned attempts,
                     const void *payload, size_t len)
{
	job_count(job, status);
	int rc;
	if (!job->hooks) {
		rc = job_store(job, index, status, attempts, payload, len);
	} else {
		/* A cancelled task is not final: it runs again on resume. */
		if (job->jc && status != MPROC_CANCELLED)
			job_jnl_put(job, index, status, attempts, payload, len);
		job->nfailed += status != MPROC_OK;
		rc = job_store(job, index, status, attempts, payload, len);
		if (job->progress)
			job_progress(job, false);
	}
	/* Its argument's buffers go (a result that echoes them holds its
	 * own reference). */
	if (job->nabuf > job->abuf_head)
		job_args_done(job, index, 1);
	return rc;
}

/* n results stored OK in the table. */
static void job_count_ok(struct mproc__job *job, size_t n)
{
	if (job->env)
		mproc__stats_ok(job->env->stats, n);
	job->completed += n;
}

/*
 * A map's results that are just None, a bool or a small int (the
 * commonest) go straight into the table in one tight loop; any other takes
 * the general path, in order.
 */
int mproc__job_store_run(struct mproc__job *job, size_t index,
                         unsigned attempts, const char *p, const char *end,
                         uint32_t count, size_t *stored)
{
	/* A first attempt's tiny results are their value's address in the
	 * table; a retry's take a record (job_store_all). */
	bool fast = job->kind == MPROC__JOB_ALL && attempts == 1 && !job->unread;
	uintptr_t *table = job->table;
	/*
	 * A map's results are mostly the same few bytes (None, say): the last
	 * tiny record (header and pickle, 12 or 13 bytes) and its node are
	 * kept, and a record equal to it is stored with two compares.
	 */
	uint64_t last_hdr = 0, last_body = 0;
	size_t last_len = 0;
	const struct mproc_value *last_v = NULL;
	size_t ok = 0;
	uint32_t k = 0;
	int rc = 0;
	if (job->hooks && job->jc)
		fast = false; /* each result goes through mproc__job_store */
	while (k < count) {
		if (last_v) {
			uint64_t mask = (UINT64_C(1) << (8 * (last_len - 8))) - 1;
			size_t i = index + k, stop = index + count;
			while (i < stop && (size_t)(end - p) >= 16) {
				uint64_t hdr, body;
				memcpy(&hdr, p, 8);
				memcpy(&body, p + 8, 8);
				if (hdr != last_hdr || ((body ^ last_body) & mask))
					break;
				table[i] = mproc__table_value(last_v);
				p += last_len;
				i++;
			}
			ok += i - (index + k);
			k = (uint32_t)(i - index);
			if (k == count)
				break;
		}
		struct mproc__rec r = mproc__result_rec_read(p, end);
		uint32_t status;
		if (!r.body || ((status = mproc__result_rec_status(p)) != MPROC_OK &&
		                status != MPROC_RAISED)) {
			rc = MPROC_EPROTO;
			break;
		}
		const struct mproc_value *v = NULL;
		if (fast && status == MPROC_OK)
			v = mproc__decode_tiny(r.body, r.len);
		else if (job->jc && job->unread && job->kind != MPROC__JOB_ALL)
			job_jnl_put(job, index + k, status, attempts, r.body,
			            r.len);
		if (v) {
			/* Kept as the record to match: 12 or 13 bytes. */
			last_len = MPROC__RESULT_REC + r.len;
			memcpy(&last_hdr, p, 8);
			last_body = 0;
			memcpy(&last_body, r.body, r.len);
			last_v = v;
			table[index + k] = mproc__table_value(v);
			ok++;
		} else {
			if (ok) {
				/* Counted before anything else, in arrival order. */
				job_count_ok(job, ok);
				ok = 0;
			}
			if (job->unread && job->kind != MPROC__JOB_ALL) {
				job->completed++;
				job_count(job, status);
				if (r.len && mproc__oob_has_trailer(r.body, r.len))
					mproc__oob_discard(job->oob, r.body, r.len);
			} else {
				mproc__job_store(job, index + k, status, attempts,
				                 r.body, r.len);
			}
		}
		p = r.body + r.len;
		k++;
	}
	if (ok)
		job_count_ok(job, ok);
	*stored = k;
	if (job->nabuf > job->abuf_head)
		job_args_done(job, index, k);
	if (job->hooks && job->progress)
		job_progress(job, false);
	return rc;
}

void mproc__job_cancel(struct mproc__job *job, size_t index, size_t count)
{
	for (size_t i = 0; i < count; i++)
		mproc__job_store(job, index + i, MPROC_CANCELLED, 0, NULL, 0);
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

void mproc__job_set_unread(struct mproc__job *job)
{
	job->unread = true;
}

bool mproc__job_settled(const struct mproc__job *job)
{
	return job->input_done && job->completed >= job->pulled;
}

void mproc__job_unstretch(struct mproc__job *job)
{
	if (job->kind != MPROC__JOB_ALL)
		job->window = job->soft;
}

bool mproc__job_stalled(const struct mproc__job *job)
{
	return job->kind != MPROC__JOB_ALL && job->completed == job->pulled &&
	       mproc__job_room(job) == 0;
}

int mproc__job_finish(struct mproc__job *job)
{
	if (job->jc) {
		/* Durable before the call returns. */
		int jrc = mproc__journal_commit(mproc__jcall_journal(job->jc));
		if (jrc == 0)
			jrc = mproc__jcall_error(job->jc);
		if (!job->input_err && jrc < 0)
			job->input_err = jrc;
	}
	if (job->progress)
		job_progress(job, true);
	if (job->kind != MPROC__JOB_ALL || job->unread)
		return job->input_err;
	/* Every result was decoded as it arrived: only the totals are left. */
	job->results.count = job->pulled;
	job->results.slots = job->table;
	job->results.failed = job->failed;
	if (job->input_err)
		return job->input_err;
	return job->failed ? MPROC_ERAISED : 0;
}

/* ---- reading results ------------------------------------------------------ */

struct mproc_results *mproc__job_results(struct mproc__job *job)
{
	return &job->results;
}

/* A ring larger than its soft window: the buffer of the result
 * handed out last (valid until now) goes to the spares, or back to the
 * allocator when there are enough, so that no more buffers live than
 * results wait. */
static void recycle(struct mproc__job *job, struct slot *s)
{
	if (s->ready || !s->data.cap)
		return;
	if (job->nspare < job->soft) {
		s->data.len = 0;
		job->spare[job->nspare++] = s->data;
	} else {
		mproc__buf_free(&s->data);
	}
	s->data = (struct mproc__buf){0};
}

/* The slot the consumer gets next, or NULL when none is ready. */
static struct slot *job_next_slot(const struct mproc__job *job)
{
	if (job->kind == MPROC__JOB_ORDERED) {
		struct slot *s = &job->slots[job->delivered & (job->nslots - 1)];
		return job->delivered < job->pulled && s->ready ? s : NULL;
	}
	return job->ucount ? &job->slots[job->uhead] : NULL;
}

bool mproc__job_has_next(const struct mproc__job *job)
{
	return job_next_slot(job) ||
	       (job->input_done && job->delivered >= job->pulled);
}

int mproc__job_next(struct mproc__job *job, const struct mproc_result **out,
                    int *err)
{
	if (job->last)
		slot_release(job, job->last);
	if (job->spare && job->last)
		recycle(job, job->last);
	/* Durable before it is handed out: a rerun does not hand it out
	 * again. */
	if (job->hooks && job->jc)
		(void)mproc__journal_commit(mproc__jcall_journal(job->jc));
	struct slot *s = job_next_slot(job);
	if (!s) {
		*err = job->input_err; /* 0, MPROC_EINPUT, _ECLOSED or _EHALTED */
		return 0;
	}
	job->held -= s->bytes;
	job->last = s;
	if (job->kind == MPROC__JOB_UNORDERED) {
		job->uhead = (job->uhead + 1) & (job->nslots - 1);
		job->ucount--;
	}
	s->ready = false;
	job->delivered++;
	if (s->tiny) {
		job->cur = (struct mproc_result){.index = s->index,
		                                 .status = MPROC_OK,
		                                 .attempts = s->attempts,
		                                 .value = s->tiny};
	} else {
		mproc__rstore_reset(&job->rs);
		int rc = mproc__rstore_result(&job->rs,
		                              job->env ? &job->env->dec : NULL,
		                              s->status, s->attempts, s->index,
		                              s->data.data, s->data.len, &job->cur);
		if (rc < 0) {
			/* No memory to decode it (no decoder, say): it is handed
			 * out as an error all the same, as a map's is; answering
			 * -ENOMEM would lose it, its slot being taken already. */
			job->cur.status = MPROC_RAISED;
			job->cur.value = NULL;
			job->cur.error = &mproc__err_nomem_decode;
		}
	}
	*out = &job->cur;
	return 1;
}

bool mproc__job_wants_input(struct mproc__job *job)
{
	/* Refill in batches, not a task per result: once half the (soft)
	 * window has been consumed since the last refill, if there is room. */
	if (job->input_done || job->delivered - job->kicked < job->soft / 2 ||
	    !mproc__job_room(job))
		return false;
	job->kicked = job->delivered;
	return true;
}
