/*
 * sync.c - Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and
 * Barrier, shared by the processes forked after they were made (and their
 * threads). Each object lives in a shared mapping of its own, and the
 * handle is its address, valid in every such process.
 *
 * Lock and RLock are robust process-shared pthread mutexes: a holder that
 * dies makes the next acquire answer MPROC_EABANDONED, with the lock
 * acquired, where Python would deadlock. The others keep their state under
 * an internal robust mutex held for a few instructions, whose state is
 * consistent at every store (a holder that dies there changes nothing the
 * next one cannot read), and wait on futex conditions (shm.h).
 *
 * Invariant of a lock: `owner` is the thread id of its holder and `count`
 * its recursion depth, both written only by the holder; 0 when free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "mproc.h"
#include "shm.h"
#include "sync.h"

struct mproc_lock {
	pthread_mutex_t mu;
	_Atomic pid_t owner;
	unsigned count;
	bool recursive;
};

struct mproc_semaphore {
	pthread_mutex_t mu;
	struct mproc__shm_cond cv;
	unsigned value, max;
	bool bounded;
};

struct mproc_event {
	pthread_mutex_t mu;
	struct mproc__shm_cond cv;
	_Atomic bool flag;
};

struct mproc_condition {
	struct mproc_lock *lock;
	_Atomic uint32_t seq;
	_Atomic uint32_t waiters;
	struct mproc_lock own; /* the RLock made when none was given */
};

struct mproc_barrier {
	pthread_mutex_t mu;
	struct mproc__shm_cond cv;
	unsigned parties, count;
	uint64_t generation, reset_generation;
	bool broken;
};

/* Internal locks: a holder that died left a consistent state. */
static int sync_lock(pthread_mutex_t *m)
{
	int rc = mproc__shm_lock(m, UINT64_MAX);
	return rc > 0 ? 0 : rc;
}

/* A deadline from a timeout: 0 means now (non-blocking), negative or
 * huge forever. */
static uint64_t sync_deadline(double timeout)
{
	return timeout == 0 ? mproc__now_ns() : mproc__deadline(timeout);
}

/* ---- Lock, RLock ---------------------------------------------------------- */

static int lock_init(struct mproc_lock *l, bool recursive)
{
	l->recursive = recursive;
	return mproc__shm_mutex_init(&l->mu, recursive);
}

static int lock_new(struct mproc_lock **out, bool recursive)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_lock *l = mproc__shm_alloc(sizeof *l);
	if (!l)
		return -ENOMEM;
	int rc = lock_init(l, recursive);
	if (rc < 0) {
		mproc__shm_free(l, sizeof *l);
		return rc;
	}
	*out = l;
	return 0;
}

/* shared.c leaves 64 bytes for one after its elements. */
_Static_assert(sizeof(struct mproc_lock) <= 64, "a lock fits 64 bytes");

size_t mproc__shared_lock_size(void)
{
	return sizeof(struct mproc_lock);
}

int mproc__shared_lock_init(struct mproc_lock *l)
{
	return lock_init(l, true);
}

int mproc_lock_new(struct mproc_lock **out)
{
	return lock_new(out, false);
}

int mproc_rlock_new(struct mproc_lock **out)
{
	return lock_new(out, true);
}

int mproc_lock_acquire(struct mproc_lock *l, double timeout)
{
	if (!l || isnan(timeout))
		return -EINVAL;
	int rc = mproc__shm_lock(&l->mu, sync_deadline(timeout));
	/* A look (timeout 0) at a Lock this thread holds: not free, as
	 * Python's acquire(False) answers. */
	if (rc == -EBUSY || (rc == -EDEADLK && timeout == 0))
		rc = -ETIMEDOUT;
	if (rc < 0)
		return rc;
	if (rc == 1)
		l->count = 0; /* the dead holder's depth is not ours */
	l->count++;
	atomic_store_explicit(&l->owner, mproc__shm_tid(), memory_order_relaxed);
	return rc == 1 ? MPROC_EABANDONED : 0;
}

int mproc_lock_release(struct mproc_lock *l)
{
	if (!l)
		return -EINVAL;
	if (atomic_load_explicit(&l->owner, memory_order_relaxed) != mproc__shm_tid() ||
	    l->count == 0)
		return MPROC_ENOTHELD;
	if (--l->count == 0)
		atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
	if (mproc__shm_unlock(&l->mu) < 0) {
		l->count++;
		atomic_store_explicit(&l->owner, mproc__shm_tid(), memory_order_relaxed);
		return MPROC_ENOTHELD;
	}
	return 0;
}

bool mproc_lock_held(const struct mproc_lock *l)
{
	return l && atomic_load_explicit(&l->owner, memory_order_relaxed) ==
	                    mproc__shm_tid();
}

void mproc_lock_free(struct mproc_lock *l)
{
	mproc__shm_free(l, sizeof *l);
}

/* ---- Semaphore, BoundedSemaphore ----------------------------------------- */

static int sem_new(struct mproc_semaphore **out, unsigned value, bool bounded)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (value > INT32_MAX)
		return -EINVAL;
	struct mproc_semaphore *s = mproc__shm_alloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	int rc = mproc__shm_mutex_init(&s->mu, false);
	if (rc < 0) {
		mproc__shm_free(s, sizeof *s);
		return rc;
	}
	s->value = value;
	s->max = value;
	s->bounded = bounded;
	*out = s;
	return 0;
}

int mproc_semaphore_new(struct mproc_semaphore **out, unsigned value)
{
	return sem_new(out, value, false);
}

int mproc_bounded_semaphore_new(struct mproc_semaphore **out, unsigned value)
{
	return sem_new(out, value, true);
}

int mproc_semaphore_acquire(struct mproc_semaphore *s, double timeout)
{
	if (!s || isnan(timeout))
		return -EINVAL;
	uint64_t deadline = sync_deadline(timeout);
	int rc = sync_lock(&s->mu);
	if (rc < 0)
		return rc;
	while (s->value == 0) {
		if (mproc__now_ns() >= deadline) {
			mproc__shm_unlock(&s->mu);
			return -ETIMEDOUT;
		}
		rc = mproc__shm_cond_wait(&s->cv, &s->mu, deadline);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	/* Stored atomically: get_value reads without the lock. */
	__atomic_store_n(&s->value, s->value - 1, __ATOMIC_RELAXED);
	mproc__shm_unlock(&s->mu);
	return 0;
}

int mproc_semaphore_release(struct mproc_semaphore *s)
{
	if (!s)
		return -EINVAL;
	int rc = sync_lock(&s->mu);
	if (rc < 0)
		return rc;
	if ((s->bounded && s->value >= s->max) || s->value >= INT32_MAX) {
		mproc__shm_unlock(&s->mu);
		return MPROC_ENOTHELD;
	}
	__atomic_store_n(&s->value, s->value + 1, __ATOMIC_RELAXED);
	mproc__shm_unlock(&s->mu);
	mproc__shm_cond_broadcast(&s->cv);
	return 0;
}

int mproc_semaphore_get_value(const struct mproc_semaphore *s, unsigned *out)
{
	if (!s || !out)
		return -EINVAL;
	*out = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
	return 0;
}

void mproc_semaphore_free(struct mproc_semaphore *s)
{
	mproc__shm_free(s, sizeof *s);
}

/* ---- Event ---------------------------------------------------------------- */

int mproc_event_new(struct mproc_event **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_event *e = mproc__shm_alloc(sizeof *e);
	if (!e)
		return -ENOMEM;
	int rc = mproc__shm_mutex_init(&e->mu, false);
	if (rc < 0) {
		mproc__shm_free(e, sizeof *e);
		return rc;
	}
	*out = e;
	return 0;
}

static int event_change(struct mproc_event *e, bool flag)
{
	if (!e)
		return -EINVAL;
	int rc = sync_lock(&e->mu);
	if (rc < 0)
		return rc;
	atomic_store(&e->flag, flag);
	mproc__shm_unlock(&e->mu);
	if (flag)
		mproc__shm_cond_broadcast(&e->cv);
	return 0;
}

int mproc_event_set(struct mproc_event *e)
{
	return event_change(e, true);
}

int mproc_event_clear(struct mproc_event *e)
{
	return event_change(e, false);
}

bool mproc_event_is_set(const struct mproc_event *e)
{
	return e && atomic_load(&e->flag);
}

int mproc_event_wait(struct mproc_event *e, double timeout)
{
	if (!e || isnan(timeout))
		return -EINVAL;
	if (atomic_load(&e->flag))
		return 0;
	uint64_t deadline = sync_deadline(timeout);
	int rc = sync_lock(&e->mu);
	if (rc < 0)
		return rc;
	while (!atomic_load(&e->flag)) {
		if (mproc__now_ns() >= deadline) {
			mproc__shm_unlock(&e->mu);
			return -ETIMEDOUT;
		}
		rc = mproc__shm_cond_wait(&e->cv, &e->mu, deadline);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	mproc__shm_unlock(&e->mu);
	return 0;
}

void mproc_event_free(struct mproc_event *e)
{
	mproc__shm_free(e, sizeof *e);
}

/* ---- Condition ------------------------------------------------------------ */

int mproc_condition_new(struct mproc_condition **out, struct mproc_lock *lock)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct mproc_condition *c = mproc__shm_alloc(sizeof *c);
	if (!c)
		return -ENOMEM;
	c->lock = lock ? lock : &c->own;
	if (!lock) {
		int rc = lock_init(&c->own, true);
		if (rc < 0) {
			mproc__shm_free(c, sizeof *c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

struct mproc_lock *mproc_condition_lock(struct mproc_condition *c)
{
	return c ? c->lock : NULL;
}

int mproc_condition_acquire(struct mproc_condition *c, double timeout)
{
	return c ? mproc_lock_acquire(c->lock, timeout) : -EINVAL;
}

int mproc_condition_release(struct mproc_condition *c)
{
	return c ? mproc_lock_release(c->lock) : -EINVAL;
}

int mproc_condition_wait(struct mproc_condition *c, double timeout)
{
	if (!c || isnan(timeout))
		return -EINVAL;
	struct mproc_lock *l = c->lock;
	if (!mproc_lock_held(l))
		return MPROC_ENOTHELD;
	uint64_t deadline = mproc__deadline(timeout);
	/* Read before the lock goes: a notify after it changes seq, and the
	 * futex wait returns at once. */
	uint32_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
	unsigned depth = l->count;
	atomic_fetch_add(&c->waiters, 1);
	l->count = 0;
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
	for (unsigned i = 0; i < depth; i++)
		mproc__shm_unlock(&l->mu);
	int w = timeout == 0 ? -ETIMEDOUT
	                     : mproc__shm_futex_wait(&c->seq, seq, deadline);
	atomic_fetch_sub(&c->waiters, 1);
	bool abandoned = false;
	for (unsigned i = 0; i < depth; i++) {
		int rc = mproc__shm_lock(&l->mu, UINT64_MAX);
		if (rc < 0)
			return rc;
		abandoned |= rc == 1;
	}
	l->count = depth;
	atomic_store_explicit(&l->owner, mproc__shm_tid(), memory_order_relaxed);
	if (abandoned)
		return MPROC_EABANDONED;
	return w == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

int mproc_condition_wait_for(struct mproc_condition *c,
                             bool (*predicate)(void *cookie), void *cookie,
                             double timeout)
{
	if (!c || !predicate || isnan(timeout))
		return -EINVAL;
	uint64_t deadline = mproc__deadline(timeout);
	while (!predicate(cookie)) {
		uint64_t now = mproc__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		double left = deadline == UINT64_MAX
		                      ? -1 : (double)(deadline - now) / 1e9;
		int rc = mproc_condition_wait(c, left);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	return 0;
}

int mproc_condition_notify(struct mproc_condition *c, unsigned n)
{
	if (!c)
		return -EINVAL;
	if (!mproc_lock_held(c->lock))
		return MPROC_ENOTHELD;
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_release);
	if (n && atomic_load(&c->waiters))
		mproc__shm_futex_wake(&c->seq, n > INT32_MAX ? INT32_MAX : (int)n);
	return 0;
}

int mproc_condition_notify_all(struct mproc_condition *c)
{
	return mproc_condition_notify(c, INT32_MAX);
}

void mproc_condition_free(struct mproc_condition *c)
{
	mproc__shm_free(c, sizeof *c);
}

/* ---- Barrier -------------------------------------------------------------- */

int mproc_barrier_new(struct mproc_barrier **out, unsigned parties)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (parties == 0 || parties > INT32_MAX)
		return -EINVAL;
	struct mproc_barrier *b = mproc__shm_alloc(sizeof *b);
	if (!b)
		return -ENOMEM;
	int rc = mproc__shm_mutex_init(&b->mu, false);
	if (rc < 0) {
		mproc__shm_free(b, sizeof *b);
		return rc;
	}
	b->parties = parties;
	b->reset_generation = UINT64_MAX;
	*out = b;
	return 0;
}

int mproc_barrier_wait(struct mproc_barrier *b, double timeout)
{
	if (!b || isnan(timeout))
		return -EINVAL;
	uint64_t deadline = mproc__deadline(timeout);
	int rc = sync_lock(&b->mu);
	if (rc < 0)
		return rc;
	if (b->broken) {
		mproc__shm_unlock(&b->mu);
		return MPROC_EBROKEN;
	}
	uint64_t gen = b->generation;
	int index = (int)b->count;
	__atomic_store_n(&b->count, b->count + 1, __ATOMIC_RELAXED);
	if (b->count == b->parties) {
		/* The last to arrive lets the others go. */
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		b->generation++;
		mproc__shm_unlock(&b->mu);
		mproc__shm_cond_broadcast(&b->cv);
		return index;
	}
	while (b->generation == gen && !b->broken) {
		rc = mproc__shm_cond_wait(&b->cv, &b->mu, deadline);
		if (rc == -ETIMEDOUT && b->generation == gen && !b->broken) {
			/* Python: a timeout breaks the barrier for all. */
			__atomic_store_n(&b->broken, true, __ATOMIC_RELAXED);
			__atomic_store_n(&b->count, b->count - 1, __ATOMIC_RELAXED);
			mproc__shm_unlock(&b->mu);
			mproc__shm_cond_broadcast(&b->cv);
			return -ETIMEDOUT;
		}
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	if (b->generation == gen || b->reset_generation == gen) {
		/* Broken (abort, another's timeout) or reset while waiting. */
		if (b->generation == gen)
			__atomic_store_n(&b->count, b->count - 1,
			                 __ATOMIC_RELAXED);
		mproc__shm_unlock(&b->mu);
		return MPROC_EBROKEN;
	}
	mproc__shm_unlock(&b->mu);
	return index;
}

int mproc_barrier_abort(struct mproc_barrier *b)
{
	if (!b)
		return -EINVAL;
	int rc = sync_lock(&b->mu);
	if (rc < 0)
		return rc;
	__atomic_store_n(&b->broken, true, __ATOMIC_RELAXED);
	mproc__shm_unlock(&b->mu);
	mproc__shm_cond_broadcast(&b->cv);
	return 0;
}

int mproc_barrier_reset(struct mproc_barrier *b)
{
	if (!b)
		return -EINVAL;
	int rc = sync_lock(&b->mu);
	if (rc < 0)
		return rc;
	if (b->count) {
		/* Those waiting now are let go with MPROC_EBROKEN. */
		b->reset_generation = b->generation;
		b->generation++;
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&b->broken, false, __ATOMIC_RELAXED);
	mproc__shm_unlock(&b->mu);
	mproc__shm_cond_broadcast(&b->cv);
	return 0;
}

unsigned mproc_barrier_parties(const struct mproc_barrier *b)
{
	return b ? b->parties : 0;
}

unsigned mproc_barrier_n_waiting(const struct mproc_barrier *b)
{
	return b ? __atomic_load_n(&b->count, __ATOMIC_RELAXED) : 0;
}

bool mproc_barrier_broken(const struct mproc_barrier *b)
{
	return b && __atomic_load_n(&b->broken, __ATOMIC_RELAXED);
}

void mproc_barrier_free(struct mproc_barrier *b)
{
	mproc__shm_free(b, sizeof *b);
}
