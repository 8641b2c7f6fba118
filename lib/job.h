/*
 * job.h - one call's inputs, window and results (job.c and its parts,
 * job_impl.h): what map, apply and imap share. A job knows no worker and
 * no pool: the engine takes work from it (mproc__job_pull) and hands
 * results back (mproc__job_store_run), and the public calls read what it
 * holds.
 * Every function here runs with the pool's lock held, or on a job no other
 * thread sees yet.
 */
#ifndef MPROC_JOB_H
#define MPROC_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "mproc.h"
#include "buf.h"
#include "result.h"
#include "stats.h"

struct mproc__journal;

enum mproc__job_kind {
	MPROC__JOB_ALL,       /* map, apply: every result kept, in order */
	MPROC__JOB_ORDERED,   /* imap */
	MPROC__JOB_UNORDERED, /* imap_unordered */
};

/* What the jobs of one pool share, lent by the engine to each. */
struct mproc__jobenv {
	struct mproc_writer *w;     /* encodes generator items into frames */
	struct mproc__decsrc dec;   /* the spare decoder, the limits */
	struct mproc__stats *stats; /* every stored result is counted */
	struct mproc__journal *jnl; /* journal.c: NULL without a journal */
	struct mproc__oob *oob;     /* out-of-band buffers, or NULL (oob.h) */
};

struct mproc__job;

/* ---- making a job (the public calls) ------------------------------------- */

struct mproc__job *mproc__job_new(struct mproc__jobenv *env,
                                  enum mproc__job_kind kind, mproc_task_fn fn,
                                  size_t chunksize, uint8_t flags);
void mproc__job_free(struct mproc__job *job);
/* The pool is gone: the job no longer uses what it lent. */
void mproc__job_detach(struct mproc__job *job);
/* A call's options: -EINVAL for a bad timeout; the timeout is read back
 * with mproc__job_timeout. */
int mproc__job_set_opts(struct mproc__job *job, const struct mproc_call_opts *co);
int mproc__job_set_input(struct mproc__job *job, const struct mproc_input *in);
/* apply's one argument (a pickle; NULL passes None). */
int mproc__job_set_arg(struct mproc__job *job, const void *arg, size_t len);
/* map over an input of unknown length reads it whole first, as Python's
 * map() does list(iterable), in the caller's thread without the lock. */
int mproc__job_read_all(struct mproc__job *job);

/* Why the job's input failed, as mproc_error_detail() said when it did;
 * "" while it has not. */
const char *mproc__job_input_detail(const struct mproc__job *job);
/* The input's length, when known (after read_all, always for map). */
size_t mproc__job_len(const struct mproc__job *job);
void mproc__job_set_chunksize(struct mproc__job *job, size_t chunksize);
/* Iterators: at most `window` results pulled ahead of the consumer, and
 * past `soft` of them (soft <= window) only while they hold less than
 * MPROC__HELD_BYTES. 0 or -ENOMEM. */
#define MPROC__HELD_BYTES ((size_t)8 << 20)
int mproc__job_set_window(struct mproc__job *job, size_t window, size_t soft);
/* What mproc_results_free() hands back to release. */
void mproc__job_set_owner(struct mproc__job *job, void *owner);

enum mproc__job_kind mproc__job_kind(const struct mproc__job *job);
size_t mproc__job_chunksize(const struct mproc__job *job);
/* 0: the pool's timeout; UINT64_MAX: none for this call. */
uint64_t mproc__job_timeout(const struct mproc__job *job);

/* ---- giving out work (the engine) ---------------------------------------- */

/* Tasks that may be pulled now (0 once the input ended, or while an
 * iterator's window is full). */
size_t mproc__job_room(const struct mproc__job *job);
/* Items known to be left in the input; SIZE_MAX when its length is not
 * known. */
size_t mproc__job_left(const struct mproc__job *job);
bool mproc__job_input_done(const struct mproc__job *job);
/* End the input (terminate, halt, join): err is what the call answers
 * once its results are out, unless the input had ended already. */
void mproc__job_end_input(struct mproc__job *job, int err);
/* With a journal: store the stored results of the items next in the
 * input, so that the next chunk starts at an item that must run. Call it
 * before reading mproc__job_pulled for a new chunk. Without a journal it
 * does nothing. */
void mproc__job_skip(struct mproc__job *job);
/* Index of the next task to be pulled. */
size_t mproc__job_pulled(const struct mproc__job *job);
/* The function and the TASK frame flags of its chunks. */
mproc_task_fn mproc__job_fn(const struct mproc__job *job);
uint8_t mproc__job_frame_flags(const struct mproc__job *job);
/* The start of a chunk's payload at the end of out, before its tasks (a
 * range's record). 0 or -ENOMEM. */
int mproc__job_frame_begin(const struct mproc__job *job, struct mproc__buf *out);
/* Up to n tasks of the input as records at the end of out, stopping once
 * out->len reaches `limit`; returns how many. */
size_t mproc__job_pull(struct mproc__job *job, struct mproc__buf *out,
                       size_t n, size_t limit);

/* ---- taking results back (the engine) ------------------------------------ */

/* One result, made by a worker or by the pool (payload: the pickle). */
int mproc__job_store(struct mproc__job *job, size_t index,
                     enum mproc_status status, unsigned attempts,
                     const void *payload, size_t len);
/* The records of one RESULT frame, for tasks index.. (*stored counts the
 * records taken even when one is malformed: MPROC_EPROTO). */
int mproc__job_store_run(struct mproc__job *job, size_t index,
                         unsigned attempts, const char *p, const char *end,
                         uint32_t count, size_t *stored);
/* Tasks that will never run (terminate): CANCELLED. */
void mproc__job_cancel(struct mproc__job *job, size_t index, size_t count);
/* Terminate: a map's or apply's items never pulled end CANCELLED (every
 * item has its result); an iterator's input just ends (MPROC_ECLOSED). */
void mproc__job_cancel_rest(struct mproc__job *job);
/* Nobody will read what comes (the caller let go, no callback reads). */
void mproc__job_set_unread(struct mproc__job *job);
/* Every pulled task has its result and the input ended. */
bool mproc__job_settled(const struct mproc__job *job);
/* An iterator whose consumer must read on before more input is pulled. */
bool mproc__job_stalled(const struct mproc__job *job);
/* The job is done: its results' totals, and what the call answers
 * (0, MPROC_ERAISED, or the input's error). */
int mproc__job_finish(struct mproc__job *job);

/* ---- reading results (the public calls) ---------------------------------- */

struct mproc_results *mproc__job_results(struct mproc__job *job);
/* Iterators: no more than the soft window ahead from now on (join: an
 * iterator nobody reads is not run on for 16384 results). */
void mproc__job_unstretch(struct mproc__job *job);
/* Iterators: a result can be handed out now, or every one was. */
bool mproc__job_has_next(const struct mproc__job *job);
/* The next result into *out (valid until the next call): 1, or 0 when
 * every result was handed out (*err: 0 or the input's error). A result
 * that cannot be decoded for lack of memory comes out as a MemoryError. */
int mproc__job_next(struct mproc__job *job, const struct mproc_result **out,
                    int *err);
/* The window moved far enough that the engine should pull more now. */
bool mproc__job_wants_input(struct mproc__job *job);

#endif
