/*
 * pthread_min.h - the minimal hand-written pthread pool mproc-bench
 * measures mproc's thread backend against: the floor of a thread pool that
 * runs C functions on raw C values, with no codec and no fault handling.
 */
#ifndef MPROC_BENCH_PTHREAD_MIN_H
#define MPROC_BENCH_PTHREAD_MIN_H

#include <stddef.h>
#include <stdint.h>

/* One task's work, as every backend of mproc-bench runs it. */
struct pm_job {
	int task;          /* enum task of mproc_bench.c */
	uint64_t iters;    /* spin: iterations */
	const void *buf;   /* payload: the argument ... */
	size_t len;        /* ... and its size */
	const int64_t *ms; /* sleep: task i sleeps ms[i] milliseconds */
	/*
	 * When not NULL, pm_run sets arrival[i] (CLOCK_MONOTONIC, ns) when it
	 * takes task i's chunk off the result queue: the moment the main
	 * thread has the result, in completion order, as imap_unordered
	 * would hand it out (mproc-bench's sched workload).
	 */
	int64_t *arrival;
};

/*
 * The body of task `index` of `job`: spins, copies the payload into
 * `scratch` (at least job->len bytes, owned by the caller), or does
 * nothing; returns a value the caller folds into a checksum. Defined in
 * mproc_bench.c; thread-safe.
 */
uint64_t bench_work(const struct pm_job *job, size_t index,
                    unsigned char *scratch);

struct pm_pool;

/* Start `workers` threads. 0, or a negated errno (nothing left behind). */
int pm_open(struct pm_pool **out, unsigned workers);

/*
 * Run tasks 0..n-1 of `job`, `chunksize` per dequeue, and collect the
 * results in order into a checksum at *sum (stamping job->arrival, when
 * set, as each chunk comes back). 0 or -ENOMEM. Not thread-safe:
 * one run at a time.
 */
int pm_run(struct pm_pool *p, const struct pm_job *job, size_t n,
           size_t chunksize, uint64_t *sum);

/* Stop and join the threads, free the pool. NULL is allowed. */
void pm_close(struct pm_pool *p);

#endif
