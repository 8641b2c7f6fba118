/*
 * job_impl.h - the inside of a job (job.h), for the files that make one
 * up, and for them only: job.c, job_args.c, job_journal.c, job_store.c and
 * job_ring.c include it; every other file sees a job through job.h.
 *
 * The files, from the bottom up (each calls only files listed before it,
 * and nothing of them calls it back):
 *   job_args.c     a pulled item's out-of-band buffers, held until its
 *                  task is final (the byte budget that mproc__job_room
 *                  reads is counted here);
 *   job_journal.c  the journal's hooks on the way in and out: opening the
 *                  call's part, checking a pulled item, putting a final
 *                  result, the input hash;
 *   job_store.c    taking results back: a map's table, an iterator's
 *                  ring filled, cancelling, finishing, progress;
 *   job.c          making a job, its options, giving out work (pulling
 *                  input into TASK frames, skipping what the journal has);
 *   job_ring.c     an iterator's ring: its window, its spare buffers,
 *                  handing results out.
 * What is on the path of every task or result is inline in its own file,
 * or here.
 */
#ifndef MPROC_JOB_IMPL_H
#define MPROC_JOB_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc.h"
#include "buf.h"
#include "job.h"
#include "oob.h"
#include "result.h"

struct mproc__jcall;

/* Where one result waits in an iterator's ring. */
struct mproc__job_slot {
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
struct mproc__job_argbufs {
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
	struct mproc__job_slot *slots; /* iterators: a power of two > window */
	size_t nslots;
	struct mproc__job_slot *last; /* the slot handed out last */
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
	struct mproc__job_argbufs *abuf;
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

/* ---- job_args.c ---------------------------------------------------------- */

/* Item `index`'s record out[rec..] has a trailer: keep its descriptors
 * until its task is final. 0 or -ENOMEM. */
int mproc__job_args_keep(struct mproc__job *job, size_t index,
                         const struct mproc__buf *out, size_t rec);
/* Tasks index .. index+count-1 are final: their arguments' blocks go.
 * Callers test job->nabuf > job->abuf_head first (no call without). */
void mproc__job_args_done(struct mproc__job *job, size_t index, size_t count);
/* Every buffer still held goes, and the list (mproc__job_free). */
void mproc__job_args_free(struct mproc__job *job);

/* ---- job_journal.c ------------------------------------------------------- */

/* The input hash the journal keeps of a task record's body. */
uint64_t mproc__job_input_hash(const struct mproc__job *job, const char *body,
                               size_t len);
/* The call's part of the journal, at its first pull; an error ends the
 * input (the call answers it) and leaves job->jc NULL. */
void mproc__job_jnl_begin(struct mproc__job *job);
/* The record just pulled at out[rec..] is item `pulled`: 0 when it must
 * run, else (1, or -ENOMEM) it is not in out. */
int mproc__job_jnl_check(struct mproc__job *job, struct mproc__buf *out,
                         size_t rec);
/* A final result into the journal (job->jc is open). */
void mproc__job_jnl_put(struct mproc__job *job, size_t index,
                        enum mproc_status status, unsigned attempts,
                        const void *payload, size_t len);

/* ---- job_store.c --------------------------------------------------------- */

/* The progress callback, when it is due (or the last call, `final`);
 * callers test job->progress first. */
void mproc__job_progress(struct mproc__job *job, bool final);
/* A result the journal had (mproc__job_skip): stored as it was, neither
 * counted nor journaled again. */
void mproc__job_restore(struct mproc__job *job, size_t index,
                        enum mproc_status status, unsigned attempts,
                        const void *payload, size_t len);

/* ---- inline, for more than one of the files ------------------------------ */

/* What mproc__job_end_input does: the input ends with err, unless it
 * had ended already (inline for the files below job.c, which call
 * nothing of it). */
static inline void mproc__job_stop_input(struct mproc__job *job, int err)
{
	if (job->input_done)
		return;
	job->input_done = true;
	job->input_err = err;
}

/* A slot's result lets go of the blocks its buffers hold: when it is
 * stored over, handed out, or freed. */
static inline void mproc__job_slot_release(struct mproc__job *job,
                                           struct mproc__job_slot *s)
{
	if (s->held) {
		mproc__oob_release_body(job->oob, s->data.data, s->data.len);
		s->held = false;
	}
}

#endif
