/*
 * shm.c - shared memory for the process-shared objects (queues, locks,
 * values), its robust mutex and its futex condition (shm.h says why).
 *
 * Invariants: a futex word is only ever waited on with FUTEX_WAIT_BITSET
 * and an absolute CLOCK_MONOTONIC deadline, never FUTEX_PRIVATE: the word
 * is shared between processes.
 */
#include <errno.h>
#include <linux/futex.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

/* Tries of a lock before sleeping on it. */
#define SHM_SPIN 100

static pthread_once_t shm_tid_once = PTHREAD_ONCE_INIT;
static _Thread_local pid_t shm_tid;

static void shm_tid_forget(void)
{
	shm_tid = 0; /* the thread that forked is another in the child */
}

static void shm_tid_init(void)
{
	pthread_atfork(NULL, NULL, shm_tid_forget);
}

pid_t mproc__shm_tid(void)
{
	if (!shm_tid) {
		pthread_once(&shm_tid_once, shm_tid_init);
		shm_tid = gettid();
	}
	return shm_tid;
}

void *mproc__shm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void mproc__shm_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

int mproc__shm_mutex_init(pthread_mutex_t *m, bool recursive)
{
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutexattr_settype(&a, recursive
		                                       ? PTHREAD_MUTEX_RECURSIVE
		                                       : PTHREAD_MUTEX_ERRORCHECK);
	if (!rc)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

static struct timespec shm_ts(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
	                         .tv_nsec = (long)(ns % 1000000000u)};
}

static uint64_t shm_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int mproc__shm_lock(pthread_mutex_t *m, uint64_t deadline)
{
	int rc;
	if (deadline == UINT64_MAX) {
		/* Held for a few instructions by a thread on another CPU,
		 * the usual case: a short spin saves a sleep and a wakeup. */
		rc = EBUSY;
		for (int i = 0; i < SHM_SPIN && rc == EBUSY; i++) {
			rc = pthread_mutex_trylock(m);
			if (rc == EBUSY)
				mproc__shm_pause();
		}
		if (rc == EBUSY)
			rc = pthread_mutex_lock(m);
	} else {
		rc = pthread_mutex_trylock(m);
		if (rc == EBUSY && shm_now() >= deadline)
			return -ETIMEDOUT; /* only a look was asked for */
		if (rc == EBUSY) {
			struct timespec ts = shm_ts(deadline);
			rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
		}
	}
	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(m);
		return 1;
	}
	/* ENOTRECOVERABLE cannot happen: every EOWNERDEAD is made
	 * consistent at once, above. */
	return -rc;
}

int mproc__shm_unlock(pthread_mutex_t *m)
{
	return -pthread_mutex_unlock(m);
}

int mproc__shm_cond_wait(struct mproc__shm_cond *c, pthread_mutex_t *m,
                         uint64_t deadline)
{
	/* Read under the mutex: a broadcast after the unlock changes seq,
	 * and the futex wait then returns at once. */
	uint32_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
	atomic_fetch_add_explicit(&c->waiters, 1, memory_order_relaxed);
	pthread_mutex_unlock(m);
	struct timespec ts = shm_ts(deadline);
	long r = syscall(SYS_futex, &c->seq, FUTEX_WAIT_BITSET, seq,
	                 deadline == UINT64_MAX ? NULL : &ts, NULL,
	                 FUTEX_BITSET_MATCH_ANY);
	int werr = r < 0 ? errno : 0;
	atomic_fetch_sub_explicit(&c->waiters, 1, memory_order_relaxed);
	int rc = mproc__shm_lock(m, UINT64_MAX);
	if (rc < 0)
		return rc;
	if (werr == ETIMEDOUT)
		return -ETIMEDOUT;
	return rc;
}

void mproc__shm_cond_broadcast(struct mproc__shm_cond *c)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_release);
	/* No syscall when nobody sleeps: the common case of a busy queue. */
	if (atomic_load_explicit(&c->waiters, memory_order_seq_cst))
		syscall(SYS_futex, &c->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int mproc__shm_futex_wait(_Atomic uint32_t *word, uint32_t val,
                          uint64_t deadline)
{
	struct timespec ts = shm_ts(deadline);
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, val,
	                 deadline == UINT64_MAX ? NULL : &ts, NULL,
	                 FUTEX_BITSET_MATCH_ANY);
	if (r < 0 && (errno == ETIMEDOUT || errno == EINTR))
		return -errno;
	return 0;
}

void mproc__shm_futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}
