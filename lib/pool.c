/*
 * pool.c - the pool's public lifecycle: open, close, terminate, join, free
 * and its statistics (Python's Pool(), close(), terminate(), join(), and
 * leaving `with Pool() as p:`). Arguments are checked here; the work is
 * the engine's (engine.c) and the backend's.
 */
#include <errno.h>
#include <execinfo.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "fdreg.h"
#include "journal.h"
#include "oob.h"
#include "wire.h"

/*
 * The caller's options into *o, by their `size` (0: 0.3's layout): what a
 * smaller struct lacks is zero, and what a larger one has past ours must
 * be zero, so that a program built against a later header, setting
 * nothing new, runs here unchanged.
 */
static int opts_copy(struct mproc_pool_opts *o,
                     const struct mproc_pool_opts *opts)
{
	memset(o, 0, sizeof *o);
	if (!opts)
		return 0;
	/* 0 is 0.3's layout, which ends at `backend` whatever is added; 0.3
	 * is the first layout with a size, so no program passes less. */
	const size_t v0_3 = offsetof(struct mproc_pool_opts, backend) +
	                    sizeof opts->backend;
	size_t size = opts->size ? opts->size : v0_3;
	if (size < v0_3)
		return -EINVAL;
	if (size > sizeof *o) {
		const unsigned char *extra = (const unsigned char *)opts + sizeof *o;
		for (size_t i = 0; i < size - sizeof *o; i++)
			if (extra[i])
				return -E2BIG;
		size = sizeof *o;
	}
	memcpy(o, opts, size);
	o->size = sizeof *o;
	return 0;
}

/* What the options ask for, or -EINVAL / -ENOTSUP. */
static int opts_check(const struct mproc_pool_opts *o,
                      const struct mproc__backend_ops **ops)
{
	if (o->processes > 4096 || o->limits.max_size > MPROC_LIMITS_MAX_SIZE ||
	    !(o->task_timeout >= 0 && o->task_timeout < 1e9) ||
	    !(o->kill_grace >= 0 && o->kill_grace < 1e9) ||
	    !(o->halt_fraction >= 0 && o->halt_fraction <= 1) ||
	    o->retries > 1000 || (o->journal && !o->journal[0]) ||
	    (o->journal_flags & ~MPROC_JOURNAL_SYNC))
		return -EINVAL;
	int rc = mproc__backend_pick(o, ops);
	if (rc < 0)
		return rc;
	/* What only a process can do (docs/threads.md). */
	if (!(*ops)->processes &&
	    (o->task_timeout > 0 || o->max_rss || o->max_vm))
		return -ENOTSUP;
	return 0;
}

static void pool_release(struct mproc_pool *pool)
{
	/* Results, async results and iterators the caller still holds outlive
	 * the pool (like a list that Pool.map returned): every one is done
	 * here, and answers from what it holds (async.c, iter.c). */
	mproc__calls_orphan(&pool->calls);
	if (pool->be.ops && pool->be.ops->close)
		pool->be.ops->close(&pool->be);
	for (unsigned i = 0; pool->workers && i < pool->nworkers; i++)
		mproc__worker_free(&pool->be, &pool->workers[i]);
	free(pool->workers);
	free(pool->pfd);
	if (pool->status)
		munmap(pool->status, pool->status_len);
	mproc__fdreg_close(&pool->wakefd);
	(void)mproc__journal_close(pool->env.jnl);
	mproc_writer_free(pool->env.w);
	mproc__oob_put(pool->env.oob);
	mproc_decoder_free(pool->env.dec.spare);
	mproc__requeue_free(&pool->rq);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}

/* The pool's parts, before any worker starts. */
static int pool_alloc(struct mproc_pool *pool)
{
	pool->workers = calloc(pool->nworkers, sizeof *pool->workers);
	if (!pool->workers)
		return -ENOMEM;
	/* Slots with no worker (descriptors -1) before anything can fail:
	 * pool_release closes every slot's, and a zeroed slot holds fd 0. */
	for (unsigned i = 0; i < pool->nworkers; i++)
		mproc__worker_init(&pool->workers[i], i);
	pool->pfd = reallocarray(NULL, 3 * (size_t)pool->nworkers + 1,
	                         sizeof *pool->pfd);
	if (!pool->pfd)
		return -ENOMEM;
	pool->status_len = pool->nworkers * sizeof *pool->status;
	pool->status = mmap(NULL, pool->status_len, PROT_READ | PROT_WRITE,
	                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pool->status == MAP_FAILED) {
		pool->status = NULL;
		return -errno;
	}
	pool->be.status = pool->status;
	int rc = mproc_writer_new(&pool->env.w, 5);
	if (rc < 0)
		return rc;
	/* Before anything forks: every worker maps the arena at the same
	 * address. Workers on other machines get their buffers inline. */
	if (!pool->be.ops->remote) {
		size_t t = pool->opts.buffer_threshold;
		size_t mem = pool->opts.buffer_memory;
		if (!mem && pool->be.ops->processes)
			mem = ((size_t)256 << 20) * (1 + (size_t)pool->nworkers);
		rc = mproc__oob_new(&pool->env.oob, !pool->be.ops->processes,
		                    pool->nworkers, mem,
		                    t ? t : (size_t)16 << 10);
		if (rc < 0)
			return rc;
		pool->be.oob = pool->env.oob;
		pool->env.dec.oob = pool->env.oob;
		mproc__writer_set_oob(pool->env.w,
		                      mproc__oob_arg_ops(pool->env.oob));
		if (pool->env.oob->threshold != SIZE_MAX)
			(void)mproc_writer_set_oob_threshold(pool->env.w,
			                                     pool->env.oob->threshold);
	}
	pool->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pool->wakefd < 0)
		return -errno;
	if ((rc = mproc__fdreg_add(pool->wakefd)) < 0) {
		close(pool->wakefd);
		pool->wakefd = -1;
	}
	return rc;
}

/* Start every worker; on failure none is left. */
static int pool_start(struct mproc_pool *pool)
{
	int rc = 0;
	pthread_mutex_lock(&pool->mu);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		if ((rc = mproc__worker_spawn(&pool->be, &pool->workers[i])) < 0) {
			for (unsigned j = 0; j < i; j++) {
				siginfo_t si;
				struct mproc__worker *w = &pool->workers[j];
				mproc__worker_signal(&pool->be, w, SIGKILL);
				mproc__worker_reap(&pool->be, w, &pool->mu,
				                   pool->max_frame, &si);
				mproc__worker_close(&pool->be, w);
			}
			break;
		}
	}
	if (rc == 0)
		mproc__stats_started(&pool->stats, pool->nworkers);
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

int mproc_pool_open(struct mproc_pool **out, const struct mproc_pool_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_pool_opts o;
	const struct mproc__backend_ops *ops;
	int rc = opts_copy(&o, opts);
	if (rc < 0 || (rc = opts_check(&o, &ops)) < 0)
		return rc;

	struct mproc_pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		return -ENOMEM;
	pool->opts = o;
	pool->wakefd = -1;
	pool->nworkers = o.processes ? o.processes
	                 : ops->cpus ? ops->cpus()
	                             : (unsigned)mproc_process_cpu_count();
	pool->max_frame = mproc__wire_max(o.limits.max_size);
	pool->timeout_ns = (uint64_t)(o.task_timeout * 1e9);
	pool->grace_ns = (uint64_t)((o.kill_grace > 0 ? o.kill_grace : 1.0) * 1e9);
	pool->next_id = 1;
	pool->be = (struct mproc__backend){.ops = ops, .opts = &pool->opts,
	                                   .nworkers = pool->nworkers};
	mproc__stats_init(&pool->stats, &o);
	pool->env.stats = &pool->stats;
	pool->env.dec.limits = o.limits;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->cv, &ca);
	pthread_condattr_destroy(&ca);
	mproc__calls_init(&pool->calls, &pool->cv);

	if ((rc = pool_alloc(pool)) < 0)
		goto fail;
	/* The journal is the pool's from here to pool_release; the caller's
	 * path is not kept. */
	if (o.journal && (rc = mproc__journal_open(&pool->env.jnl, o.journal,
	                                           o.journal_flags)) < 0)
		goto fail;
	pool->opts.journal = NULL;
	/* Load the unwinder here, once: a worker's crash handler uses it, and
	 * each worker would otherwise load it after fork. */
	void *warm[2];
	backtrace(warm, 2);
	if (ops->open && (rc = ops->open(&pool->be)) < 0)
		goto fail;
	if ((rc = pool_start(pool)) < 0)
		goto fail;
	*out = pool;
	return 0;
fail:
	pool_release(pool);
	return rc;
}

int mproc_pool_close(struct mproc_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	if (pool->state == MPROC__RUN)
		pool->state = MPROC__CLOSED;
	pthread_mutex_unlock(&pool->mu);
	return 0;
}

int mproc_pool_terminate(struct mproc_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	int rc = mproc__engine_terminate(pool);
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

int mproc_pool_join(struct mproc_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	int rc = mproc__engine_join(pool);
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

void mproc_pool_free(struct mproc_pool *pool)
{
	if (!pool)
		return;
	if (!pool->joined) {
		mproc_pool_terminate(pool);
		mproc_pool_join(pool);
	}
	pool_release(pool);
}

int mproc_pool_stats(struct mproc_pool *pool, struct mproc_pool_stats *out)
{
	if (!pool || !out)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	/* Replacement times only: reading statistics never signals a worker
	 * (the timeout watch is the driver's). */
	if (!pool->driving)
		mproc__fault_note_ready(pool);
	*out = pool->stats.s;
	pthread_mutex_unlock(&pool->mu);
	return 0;
}
