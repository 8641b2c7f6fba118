/*
 * pthread_min.c - a minimal pthread pool, written as one would by hand:
 * the floor mproc's thread backend is measured against.
 *
 * One mutex guards two FIFO queues. The main thread pushes every chunk of
 * a run (`chunksize` consecutive task indices) on the task queue and
 * broadcasts `task_cv`; a worker pops one chunk per dequeue, runs its tasks
 * without the lock, writes each result into its slot of `res`, pushes the
 * chunk number on the result queue and signals `done_cv`. The main thread
 * pops finished chunks and consumes the results in input order, as imap
 * hands them out (and, for mproc-bench's sched workload, notes when each
 * chunk came back). No codec, no copies, no fault handling.
 *
 * Invariants: tq_head <= tq_tail <= nchunks and rq_head <= rq_tail <=
 * nchunks within a run; a slot of `res` is written by one worker before
 * its chunk is pushed, and read by the main thread only after popping it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "pthread_min.h"

#define PM_SCRATCH ((size_t)16 << 20) /* the largest payload */

struct pm_pool {
	pthread_mutex_t mu;
	pthread_cond_t task_cv, done_cv;
	pthread_t *th;
	unsigned nth;
	bool stop;

	/* The current run. */
	const struct pm_job *job;
	size_t n, chunksize, nchunks;
	size_t *tq, tq_head, tq_tail; /* chunk numbers to run */
	size_t *rq, rq_head, rq_tail; /* chunk numbers finished */
	size_t cap;                   /* of tq and rq */
	uint64_t *res;                /* one result per task */
	size_t res_cap;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *pm_worker(void *arg)
{
	struct pm_pool *p = arg;
	unsigned char *scratch = malloc(PM_SCRATCH);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->tq_head == p->tq_tail && !p->stop)
			pthread_cond_wait(&p->task_cv, &p->mu);
		if (p->tq_head == p->tq_tail)
			break; /* stopped, nothing left */
		size_t c = p->tq[p->tq_head++];
		const struct pm_job *job = p->job;
		size_t lo = c * p->chunksize, hi = lo + p->chunksize;
		if (hi > p->n)
			hi = p->n;
		uint64_t *res = p->res;
		pthread_mutex_unlock(&p->mu);
		for (size_t i = lo; i < hi; i++)
			res[i] = scratch || job->len == 0
			                 ? bench_work(job, i, scratch)
			                 : 0;
		pthread_mutex_lock(&p->mu);
		p->rq[p->rq_tail++] = c;
		pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	free(scratch);
	return NULL;
}

int pm_open(struct pm_pool **out, unsigned workers)
{
	struct pm_pool *p = calloc(1, sizeof *p);
	int rc = -ENOMEM;
	if (!p)
		return rc;
	p->th = calloc(workers, sizeof *p->th);
	if (!p->th)
		goto fail;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->task_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	for (; p->nth < workers; p->nth++) {
		int err = pthread_create(&p->th[p->nth], NULL, pm_worker, p);
		if (err) {
			rc = -err;
			pm_close(p);
			return rc;
		}
	}
	*out = p;
	return 0;
fail:
	free(p);
	return rc;
}

/* Grow the queues and the result slots for a run, under the lock, while
 * the task queue is empty and no worker holds a chunk. */
static int pm_reserve(struct pm_pool *p, size_t nchunks, size_t n)
{
	if (nchunks > p->cap) {
		size_t *tq = realloc(p->tq, nchunks * sizeof *tq);
		if (!tq)
			return -ENOMEM;
		p->tq = tq;
		size_t *rq = realloc(p->rq, nchunks * sizeof *rq);
		if (!rq)
			return -ENOMEM;
		p->rq = rq;
		p->cap = nchunks;
	}
	if (n > p->res_cap) {
		uint64_t *res = realloc(p->res, n * sizeof *res);
		if (!res)
			return -ENOMEM;
		p->res = res;
		p->res_cap = n;
	}
	return 0;
}

int pm_run(struct pm_pool *p, const struct pm_job *job, size_t n,
           size_t chunksize, uint64_t *sum)
{
	size_t nchunks = (n + chunksize - 1) / chunksize;
	bool *done = calloc(nchunks ? nchunks : 1, sizeof *done);
	uint64_t acc = 0;
	int rc = -ENOMEM;
	if (!done)
		return rc;
	pthread_mutex_lock(&p->mu);
	rc = pm_reserve(p, nchunks, n);
	if (rc < 0) {
		pthread_mutex_unlock(&p->mu);
		free(done);
		return rc;
	}
	p->job = job;
	p->n = n;
	p->chunksize = chunksize;
	p->nchunks = nchunks;
	p->tq_head = p->tq_tail = p->rq_head = p->rq_tail = 0;
	for (size_t c = 0; c < nchunks; c++)
		p->tq[p->tq_tail++] = c;
	pthread_cond_broadcast(&p->task_cv);

	/* Collect in order: results of chunk `next` once it is done. */
	size_t next = 0;
	while (next < nchunks) {
		while (p->rq_head == p->rq_tail)
			pthread_cond_wait(&p->done_cv, &p->mu);
		int64_t t = job->arrival ? now_ns() : 0;
		while (p->rq_head < p->rq_tail) {
			size_t c = p->rq[p->rq_head++];
			done[c] = true;
			for (size_t i = c * chunksize;
			     job->arrival && i < (c + 1) * chunksize && i < n; i++)
				job->arrival[i] = t;
		}
		pthread_mutex_unlock(&p->mu);
		for (; next < nchunks && done[next]; next++) {
			size_t lo = next * chunksize, hi = lo + chunksize;
			for (size_t i = lo; i < hi && i < n; i++)
				acc += p->res[i];
		}
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	free(done);
	*sum = acc;
	return 0;
}

void pm_close(struct pm_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->task_cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->task_cv);
	pthread_cond_destroy(&p->done_cv);
	free(p->th);
	free(p->tq);
	free(p->rq);
	free(p->res);
	free(p);
}
