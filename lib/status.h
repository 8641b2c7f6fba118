/*
 * status.h - each worker's status record, in memory shared between the
 * manager and its workers: the layout both sides agree on, like a frame's.
 *
 * The worker (child.c) writes which task it runs, and its crash handler
 * what killed it; the manager (fault.c) reads it, so that a death is blamed
 * on the exact task and a timeout is timed without a syscall per task.
 */
#ifndef MPROC_STATUS_H
#define MPROC_STATUS_H

#include <stdatomic.h>
#include <stdint.h>

#define MPROC__MAX_FRAMES 32

/* Exit status of a worker that retired itself past max_rss. */
#define MPROC__EXIT_MEMORY 86

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
	int crash_errno;           /* errno of the crashing thread (ENOMEM: an
	                            * allocation had just failed) */
	uint32_t nframes;
	uint64_t frames[MPROC__MAX_FRAMES];
	/* Suspect mode: the task that broke the worker's channel. */
	_Atomic uint64_t culprit;
	/* Set before a worker exits past max_rss, so that the exit status
	 * alone (which a task could also use) never reads as a retirement. */
	_Atomic uint32_t retired_rss;
	/*
	 * Work taken back. Every task a worker reads has a sequence number,
	 * its place in that worker's stream (1, 2, ...). Before it runs one,
	 * the worker claims it: a compare-and-swap of `claim` from what it
	 * read to the task's number. The manager takes back every task it
	 * sent that has not started with one compare-and-swap of `claim` to
	 * MPROC__REVOKED | (the last number it sent): from then on the worker
	 * skips each task up to that number, and claims later ones as
	 * before. Both sides change the one word, so a task is either started
	 * by the worker or taken back by the manager, never both; the values
	 * only grow, so no swap can succeed on a stale read.
	 */
	_Atomic uint64_t claim;
};

#define MPROC__REVOKED (UINT64_C(1) << 63)

/* A fresh record for a worker about to start in its slot. */
static inline void mproc__status_reset(struct mproc__status *st)
{
	atomic_store(&st->task_id, 0);
	atomic_store(&st->last_id, 0);
	atomic_store(&st->ready_ns, 0);
	atomic_store(&st->crash_signal, 0);
	st->nframes = 0;
	atomic_store(&st->culprit, 0);
	atomic_store(&st->retired_rss, 0);
	atomic_store(&st->claim, 0);
}

#endif
