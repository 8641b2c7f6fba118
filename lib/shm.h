/*
 * shm.h - memory shared with the processes forked after it was made, and
 * the waiting primitives that live in it: a robust process-shared mutex
 * and a condition built on a futex word (codec and transport layer).
 *
 * Why not pthread_cond_t: a process killed while it waits on a
 * process-shared glibc condition variable leaves the variable's internal
 * counts behind, and later signals and waits can go astray. A futex
 * sequence word holds no per-waiter state: a waiter that dies leaves
 * nothing to clean up. The mutex is a pthread robust mutex, so that a
 * holder that dies is seen by the next locker (EOWNERDEAD) instead of
 * wedging everyone.
 */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The calling thread's id, without a syscall after the first call (the
 * cache is forgotten in the child of a fork). */
pid_t mproc__shm_tid(void);

/* A CPU hint for a spin loop. */
static inline void mproc__shm_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* `size` bytes, zeroed, shared with every process forked after this call
 * (MAP_SHARED | MAP_ANONYMOUS). NULL without memory. */
void *mproc__shm_alloc(size_t size);
void mproc__shm_free(void *p, size_t size);

/* A robust, process-shared mutex; recursive on request. 0 or -errno. */
int mproc__shm_mutex_init(pthread_mutex_t *m, bool recursive);

/*
 * Lock m by `deadline` (CLOCK_MONOTONIC ns, UINT64_MAX: no limit).
 * 0: locked. 1: locked, and its last holder died holding it; the mutex is
 * made consistent again, and the caller decides what that means.
 * -ETIMEDOUT, -EDEADLK (an error-checking or recursive mutex the caller
 * holds past its limit), -EINVAL.
 */
int mproc__shm_lock(pthread_mutex_t *m, uint64_t deadline);
/* 0, or -EPERM when the caller does not hold m. */
int mproc__shm_unlock(pthread_mutex_t *m);

/* A condition: a sequence word waiters sleep on, and how many sleep. */
struct mproc__shm_cond {
	_Atomic uint32_t seq;
	_Atomic uint32_t waiters;
};

/*
 * With m held: release it, sleep until a broadcast or `deadline`, lock it
 * again. As mproc__shm_lock (1 when the mutex's holder died meanwhile),
 * and -ETIMEDOUT past the deadline (the mutex is held again then too).
 * Spurious wakeups happen: callers loop on their predicate.
 */
int mproc__shm_cond_wait(struct mproc__shm_cond *c, pthread_mutex_t *m,
                         uint64_t deadline);

/* Sleep while *word == val, until woken or `deadline`: 0 (woken, or the
 * word had changed already), -ETIMEDOUT, -EINTR. */
int mproc__shm_futex_wait(_Atomic uint32_t *word, uint32_t val,
                          uint64_t deadline);
/* Wake up to n sleepers on word. */
void mproc__shm_futex_wake(_Atomic uint32_t *word, int n);

/* Wake every waiter (call it after changing the state, lock held or not). */
void mproc__shm_cond_broadcast(struct mproc__shm_cond *c);

#endif
