/*
 * queue.c - Queue, SimpleQueue and JoinableQueue (multiprocessing.Queue
 * and friends): a FIFO of pickles in memory shared by the processes forked
 * after it was made, and by threads.
 *
 * The queue is a ring of bytes in one shared mapping, behind a robust
 * process-shared mutex, with futex conditions for "not empty", "not full"
 * and "all done" (shm.h). A message is a 4-byte length and its bytes, and
 * may wrap around the end of the ring. No helper thread (Python's feeder):
 * put copies the pickle into the ring, get copies it out.
 *
 * Invariants, under the mutex: rpos <= wpos, wpos - rpos <= cap (byte
 * counts since creation, never wrapped); the bytes [rpos, wpos) mod cap
 * are whole messages. A put or get makes its change visible by storing
 * wpos or rpos last, after the bytes are in place: a process that dies
 * holding the mutex (which the next locker is told of and repairs) leaves
 * either its whole message or none of it, and the queue goes on. nput and
 * nget, stored after, only count (qsize); a death between the two stores
 * makes qsize off by one, which it is allowed to be.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "mproc.h"
#include "queue.h"
#include "shm.h"

#define QUEUE_HDR 4u
/* Pauses a blocking get spins on an empty queue before it sleeps (a few
 * microseconds), when there is another CPU to fill it. */
#define QUEUE_SPIN 200
#define QUEUE_DEFAULT_CAP ((size_t)4 << 20)
#define QUEUE_MAX_CAP ((size_t)1 << 30)
#define QUEUE_MAX_MAXSIZE ((size_t)1 << 40)

#define Q_JOINABLE MPROC_QUEUE_JOINABLE

struct queue_shm {
	pthread_mutex_t mu;
	struct mproc__shm_cond not_empty, not_full, all_done;
	_Atomic uint64_t wpos, rpos;
	_Atomic uint64_t nput, nget;
	uint64_t unfinished;  /* JoinableQueue: puts not yet task_done */
	size_t cap;           /* bytes of ring */
	size_t maxsize;       /* items; 0: no limit */
	int kind;
	char ring[];
};

struct mproc_queue {
	struct queue_shm *shm;
	size_t maplen;
	bool closed;          /* this process's handle only */
	struct mproc_limits limits;
};

/* What a thread's get hands out: the message and the tree decoded from
 * it, valid until that thread's next get. */
struct queue_local {
	struct mproc__buf msg;
	struct mproc_decoder *dec;
	struct mproc_limits limits;
};

static bool queue_spin; /* more than one CPU (set at the first new) */

static pthread_key_t queue_key;
static pthread_once_t queue_key_once = PTHREAD_ONCE_INIT;

static void queue_local_free(void *arg)
{
	struct queue_local *l = arg;
	if (!l)
		return;
	mproc__buf_free(&l->msg);
	mproc_decoder_free(l->dec);
	free(l);
}

static void queue_key_init(void)
{
	(void)pthread_key_create(&queue_key, queue_local_free);
}

static struct queue_local *queue_local(void)
{
	pthread_once(&queue_key_once, queue_key_init);
	struct queue_local *l = pthread_getspecific(queue_key);
	if (!l) {
		l = calloc(1, sizeof *l);
		if (l && pthread_setspecific(queue_key, l) != 0) {
			free(l);
			l = NULL;
		}
	}
	return l;
}

int mproc_queue_new_opts(struct mproc_queue **out,
                         const struct mproc_queue_opts *opts)
{
	static const struct mproc_queue_opts defaults = {0};
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (opts->size && opts->size != sizeof *opts)
		return opts->size < sizeof *opts ? -EINVAL : -E2BIG;
	size_t cap = opts->capacity ? opts->capacity : QUEUE_DEFAULT_CAP;
	if (cap < 64 || cap > QUEUE_MAX_CAP || opts->maxsize > QUEUE_MAX_MAXSIZE ||
	    opts->kind > MPROC_QUEUE_JOINABLE ||
	    opts->limits.max_size > MPROC_LIMITS_MAX_SIZE)
		return -EINVAL;
	struct mproc_queue *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	queue_spin = mproc_process_cpu_count() > 1;
	q->maplen = sizeof(struct queue_shm) + cap;
	q->limits = opts->limits;
	q->shm = mproc__shm_alloc(q->maplen);
	if (!q->shm) {
		free(q);
		return -ENOMEM;
	}
	int rc = mproc__shm_mutex_init(&q->shm->mu, false);
	if (rc < 0) {
		mproc__shm_free(q->shm, q->maplen);
		free(q);
		return rc;
	}
	q->shm->cap = cap;
	q->shm->maxsize = opts->kind == MPROC_QUEUE_SIMPLE ? 0 : opts->maxsize;
	q->shm->kind = (int)opts->kind;
	*out = q;
	return 0;
}

int mproc_queue_new(struct mproc_queue **out, size_t maxsize)
{
	struct mproc_queue_opts o = {.maxsize = maxsize};
	return mproc_queue_new_opts(out, &o);
}

int mproc_simple_queue_new(struct mproc_queue **out)
{
	struct mproc_queue_opts o = {.kind = MPROC_QUEUE_SIMPLE};
	return mproc_queue_new_opts(out, &o);
}

int mproc_joinable_queue_new(struct mproc_queue **out, size_t maxsize)
{
	struct mproc_queue_opts o = {.maxsize = maxsize,
	                             .kind = MPROC_QUEUE_JOINABLE};
	return mproc_queue_new_opts(out, &o);
}

/* The deadline of a put or get: now for a non-blocking one. */
static uint64_t queue_deadline(bool block, double timeout)
{
	return block ? mproc__deadline(timeout) : 0;
}

static void ring_copy_in(struct queue_shm *s, uint64_t pos, const void *p,
                         size_t n)
{
	size_t off = (size_t)(pos % s->cap);
	size_t first = n < s->cap - off ? n : s->cap - off;
	memcpy(s->ring + off, p, first);
	memcpy(s->ring, (const char *)p + first, n - first);
}

static void ring_copy_out(const struct queue_shm *s, uint64_t pos, void *p,
                          size_t n)
{
	size_t off = (size_t)(pos % s->cap);
	size_t first = n < s->cap - off ? n : s->cap - off;
	memcpy(p, s->ring + off, first);
	memcpy((char *)p + first, s->ring, n - first);
}

static uint64_t queue_items(const struct queue_shm *s)
{
	uint64_t put = atomic_load(&s->nput), got = atomic_load(&s->nget);
	return put > got ? put - got : 0;
}

/* Lock the queue's mutex; a holder that died is repaired by the lock. */
static int queue_lock(struct queue_shm *s, uint64_t deadline)
{
	int rc = mproc__shm_lock(&s->mu, deadline);
	return rc > 0 ? 0 : rc;
}

int mproc_queue_put(struct mproc_queue *q, const void *pickle, size_t len,
                    bool block, double timeout)
{
	static const unsigned char none[] = {0x80, 0x05, 'N', '.'};
	if (!q || (!pickle && len) || isnan(timeout))
		return -EINVAL;
	if (!pickle) {
		pickle = none;
		len = sizeof none;
	}
	if (q->closed)
		return MPROC_ECLOSED;
	struct queue_shm *s = q->shm;
	if (len > s->cap - QUEUE_HDR || len > UINT32_MAX)
		return -EMSGSIZE;
	uint64_t deadline = queue_deadline(block, timeout);
	int rc = queue_lock(s, UINT64_MAX);
	if (rc < 0)
		return rc;
	size_t need = QUEUE_HDR + len;
	for (;;) {
		uint64_t used = atomic_load(&s->wpos) - atomic_load(&s->rpos);
		bool full = (s->maxsize && queue_items(s) >= s->maxsize) ||
		            s->cap - used < need;
		if (!full)
			break;
		if (mproc__now_ns() >= deadline) {
			mproc__shm_unlock(&s->mu);
			return MPROC_EFULL;
		}
		rc = mproc__shm_cond_wait(&s->not_full, &s->mu, deadline);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	uint64_t w = atomic_load(&s->wpos);
	uint32_t hdr = (uint32_t)len;
	ring_copy_in(s, w, &hdr, QUEUE_HDR);
	ring_copy_in(s, w + QUEUE_HDR, pickle, len);
	atomic_store_explicit(&s->wpos, w + need, memory_order_release);
	atomic_fetch_add(&s->nput, 1);
	if (s->kind == Q_JOINABLE)
		s->unfinished++;
	mproc__shm_unlock(&s->mu);
	mproc__shm_cond_broadcast(&s->not_empty);
	return 0;
}

int mproc_queue_put_nowait(struct mproc_queue *q, const void *pickle,
                           size_t len)
{
	return mproc_queue_put(q, pickle, len, false, 0);
}

int mproc_queue_get_bytes(struct mproc_queue *q, bool block, double timeout,
                          const void **buf, size_t *len)
{
	if (!q || !buf || !len || isnan(timeout))
		return -EINVAL;
	if (q->closed)
		return MPROC_ECLOSED;
	struct queue_local *l = queue_local();
	if (!l)
		return -ENOMEM;
	struct queue_shm *s = q->shm;
	uint64_t deadline = queue_deadline(block, timeout);
	/* Empty, and the caller will wait: a producer on another CPU is
	 * usually a moment away, and a short spin saves the sleep and the
	 * wakeup (two syscalls and a context switch an item). */
	if (block && queue_spin)
		for (int i = 0; i < QUEUE_SPIN &&
		                atomic_load_explicit(&s->wpos, memory_order_relaxed) ==
		                        atomic_load_explicit(&s->rpos, memory_order_relaxed);
		     i++)
			mproc__shm_pause();
	int rc = queue_lock(s, UINT64_MAX);
	if (rc < 0)
		return rc;
	while (atomic_load(&s->wpos) == atomic_load(&s->rpos)) {
		if (mproc__now_ns() >= deadline) {
			mproc__shm_unlock(&s->mu);
			return MPROC_EEMPTY;
		}
		rc = mproc__shm_cond_wait(&s->not_empty, &s->mu, deadline);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	uint64_t r = atomic_load(&s->rpos);
	uint32_t n;
	ring_copy_out(s, r, &n, QUEUE_HDR);
	if (n > s->cap - QUEUE_HDR) {
		/* Cannot happen unless the memory was overwritten: refuse
		 * rather than read past the ring. */
		mproc__shm_unlock(&s->mu);
		return MPROC_EPROTO;
	}
	l->msg.len = 0;
	if (mproc__buf_reserve(&l->msg, n ? n : 1) < 0) {
		mproc__shm_unlock(&s->mu);
		return -ENOMEM; /* the message stays queued */
	}
	ring_copy_out(s, r + QUEUE_HDR, l->msg.data, n);
	l->msg.len = n;
	atomic_store_explicit(&s->rpos, r + QUEUE_HDR + n, memory_order_release);
	atomic_fetch_add(&s->nget, 1);
	mproc__shm_unlock(&s->mu);
	mproc__shm_cond_broadcast(&s->not_full);
	*buf = l->msg.data;
	*len = n;
	return 0;
}

int mproc_queue_get(struct mproc_queue *q, bool block, double timeout,
                    const struct mproc_value **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	const void *p;
	size_t n;
	int rc = mproc_queue_get_bytes(q, block, timeout, &p, &n);
	if (rc < 0)
		return rc;
	struct queue_local *l = queue_local();
	if (!l->dec || memcmp(&l->limits, &q->limits, sizeof l->limits) != 0) {
		mproc_decoder_free(l->dec);
		l->dec = NULL;
		rc = mproc_decoder_new(&l->dec, &q->limits);
		if (rc < 0)
			return rc;
		l->limits = q->limits;
	}
	return mproc_decode(l->dec, p, n, out);
}

int mproc_queue_get_nowait(struct mproc_queue *q,
                           const struct mproc_value **out)
{
	return mproc_queue_get(q, false, 0, out);
}

const char *mproc_queue_error(void)
{
	struct queue_local *l = queue_local();
	return l && l->dec ? mproc_decoder_error(l->dec) : "";
}

int mproc_queue_qsize(const struct mproc_queue *q, size_t *out)
{
	if (!q || !out)
		return -EINVAL;
	*out = (size_t)queue_items(q->shm);
	return 0;
}

bool mproc_queue_empty(const struct mproc_queue *q)
{
	return !q || atomic_load(&q->shm->wpos) == atomic_load(&q->shm->rpos);
}

bool mproc_queue_full(const struct mproc_queue *q)
{
	return q && q->shm->maxsize && queue_items(q->shm) >= q->shm->maxsize;
}

size_t mproc_queue_maxsize(const struct mproc_queue *q)
{
	return q ? q->shm->maxsize : 0;
}

int mproc_queue_task_done(struct mproc_queue *q)
{
	if (!q)
		return -EINVAL;
	if (q->shm->kind != Q_JOINABLE)
		return -ENOTSUP;
	struct queue_shm *s = q->shm;
	int rc = queue_lock(s, UINT64_MAX);
	if (rc < 0)
		return rc;
	if (s->unfinished == 0) {
		mproc__shm_unlock(&s->mu);
		return MPROC_ENOTHELD;
	}
	bool done = --s->unfinished == 0;
	mproc__shm_unlock(&s->mu);
	if (done)
		mproc__shm_cond_broadcast(&s->all_done);
	return 0;
}

int mproc_queue_join(struct mproc_queue *q, double timeout)
{
	if (!q || isnan(timeout))
		return -EINVAL;
	if (q->shm->kind != Q_JOINABLE)
		return -ENOTSUP;
	struct queue_shm *s = q->shm;
	uint64_t deadline = mproc__deadline(timeout);
	int rc = queue_lock(s, UINT64_MAX);
	if (rc < 0)
		return rc;
	while (s->unfinished) {
		if (mproc__now_ns() >= deadline) {
			mproc__shm_unlock(&s->mu);
			return -ETIMEDOUT;
		}
		rc = mproc__shm_cond_wait(&s->all_done, &s->mu, deadline);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	mproc__shm_unlock(&s->mu);
	return 0;
}

int mproc_queue_close(struct mproc_queue *q)
{
	if (!q)
		return -EINVAL;
	q->closed = true;
	return 0;
}

void mproc_queue_free(struct mproc_queue *q)
{
	if (!q)
		return;
	mproc__shm_free(q->shm, q->maplen);
	free(q);
}

int mproc__queue_hold(struct mproc_queue *q)
{
	return mproc__shm_lock(&q->shm->mu, UINT64_MAX);
}
