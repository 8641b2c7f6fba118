/*
 * test_sync.c - Lock, RLock, Semaphore, BoundedSemaphore, Event,
 * Condition, Barrier between processes and threads: the behaviours
 * CPython's tests check (acquire/release, recursion, timeouts, notify,
 * wait_for, barrier indexes, reset, abort, timeout), ported to mproc, and
 * what Python lacks: a lock whose holder died answers MPROC_EABANDONED.
 * Children report through their result; only the test process asserts.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mproc.h"
#include "testutil.h"

static struct mproc_lock *L;
static struct mproc_semaphore *S;
static struct mproc_event *E;
static struct mproc_condition *C;
static struct mproc_barrier *B;
static _Atomic int64_t *shared; /* a page shared with the children */

static void setup(void)
{
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(shared != MAP_FAILED);
}

static void teardown(void)
{
	munmap((void *)shared, 4096);
	ck_assert(no_children());
}

static struct mproc_process *start(mproc_task_fn fn, int64_t x)
{
	struct mproc_process *p = NULL;
	size_t len;
	const void *arg = pickle_int(x, &len);
	ck_assert_int_eq(mproc_process_start(&p, fn, arg, len, NULL), 0);
	return p;
}

/* Join p and return the int it returned (its return code, for the
 * tasks below that return what a call answered). */
static int64_t join_int(struct mproc_process *p)
{
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	int rc = mproc_process_result(p, &r);
	if (rc != 0)
		ck_abort_msg("child: %s: %s", r->error->type, r->error->msg);
	int64_t x = int_of(r->value);
	mproc_process_free(p);
	return x;
}

/* ---- Lock and RLock ---------------------------------------------------- */

START_TEST(test_lock_acquire_release_and_misuse)
{
	ck_assert_int_eq(mproc_lock_new(&L), 0);
	ck_assert(!mproc_lock_held(L));
	ck_assert_int_eq(mproc_lock_release(L), MPROC_ENOTHELD);
	ck_assert_int_eq(mproc_lock_acquire(L, -1), 0);
	ck_assert(mproc_lock_held(L));
	ck_assert_int_eq(mproc_lock_acquire(L, 0), -ETIMEDOUT);
	ck_assert_int_eq(mproc_lock_acquire(L, -1), -EDEADLK);
	ck_assert_int_eq(mproc_lock_release(L), 0);
	ck_assert_int_eq(mproc_lock_release(L), MPROC_ENOTHELD);
	ck_assert_int_eq(mproc_lock_acquire(L, 0), 0);
	ck_assert_int_eq(mproc_lock_release(L), 0);
	ck_assert_int_eq(mproc_lock_acquire(NULL, 0), -EINVAL);
	ck_assert_int_eq(mproc_lock_acquire(L, 0.0 / 0.0), -EINVAL);
	ck_assert_int_eq(mproc_lock_new(NULL), -EINVAL);
	mproc_lock_free(L);
	mproc_lock_free(NULL);
}
END_TEST

START_TEST(test_rlock_is_reentrant)
{
	ck_assert_int_eq(mproc_rlock_new(&L), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(mproc_lock_acquire(L, 0), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert(mproc_lock_held(L));
		ck_assert_int_eq(mproc_lock_release(L), 0);
	}
	ck_assert(!mproc_lock_held(L));
	ck_assert_int_eq(mproc_lock_release(L), MPROC_ENOTHELD);
	mproc_lock_free(L);
}
END_TEST

/* Tries the lock without waiting; returns what that answered, then
 * waits for it and returns 100 + that. */
static int t_try_lock(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	int a = mproc_lock_acquire(L, 0);
	atomic_store(&shared[0], 1); /* tried */
	int b = mproc_lock_acquire(L, -1);
	if (b == 0)
		mproc_lock_release(L);
	return mproc_write_int(ret, a == -ETIMEDOUT && b == 0 ? 1 : a * 1000 + b);
}

START_TEST(test_lock_excludes_other_processes)
{
	ck_assert_int_eq(mproc_lock_new(&L), 0);
	ck_assert_int_eq(mproc_lock_acquire(L, -1), 0);
	struct mproc_process *p = start(t_try_lock, 0);
	while (!atomic_load(&shared[0]))
		sleep_ms(1);
	ck_assert_int_eq(mproc_lock_release(L), 0);
	ck_assert_int_eq(join_int(p), 1);
	mproc_lock_free(L);
}
END_TEST

/* Adds 1 to shared[1], 2000 times, under L. */
static int t_count(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (int i = 0; i < 2000; i++) {
		int rc = mproc_lock_acquire(L, -1);
		if (rc < 0)
			return rc;
		int64_t v = atomic_load_explicit(&shared[1], memory_order_relaxed);
		atomic_store_explicit(&shared[1], v + 1, memory_order_relaxed);
		if ((rc = mproc_lock_release(L)) < 0)
			return rc;
	}
	return 0;
}

START_TEST(test_lock_counter_from_four_processes)
{
	ck_assert_int_eq(mproc_lock_new(&L), 0);
	struct mproc_process *p[4];
	for (int i = 0; i < 4; i++)
		p[i] = start(t_count, 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(mproc_process_join(p[i], -1), 0);
		const struct mproc_result *r;
		ck_assert_int_eq(mproc_process_result(p[i], &r), 0);
		mproc_process_free(p[i]);
	}
	ck_assert_int_eq(atomic_load(&shared[1]), 8000);
	mproc_lock_free(L);
}
END_TEST

/* Takes L (arg times: an RLock) and dies holding it. */
static int t_die_holding(const struct mproc_value *arg,
                         struct mproc_writer *ret)
{
	(void)ret;
	int64_t n = 1;
	mproc_value_int(arg, &n);
	for (int64_t i = 0; i < n; i++)
		mproc_lock_acquire(L, -1);
	raise(SIGKILL);
	return 0;
}

static void dead_holder(bool recursive)
{
	ck_assert_int_eq(recursive ? mproc_rlock_new(&L) : mproc_lock_new(&L), 0);
	struct mproc_process *p = start(t_die_holding, recursive ? 3 : 1);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	mproc_process_free(p);
	ck_assert_int_eq(mproc_lock_acquire(L, 5), MPROC_EABANDONED);
	ck_assert(mproc_lock_held(L));
	ck_assert_int_eq(mproc_lock_release(L), 0);
	ck_assert_int_eq(mproc_lock_release(L), MPROC_ENOTHELD);
	/* Repaired: the next holder gets it plainly. */
	ck_assert_int_eq(mproc_lock_acquire(L, 0), 0);
	ck_assert_int_eq(mproc_lock_release(L), 0);
	mproc_lock_free(L);
}

START_TEST(test_lock_dead_holder_is_a_named_code_not_a_deadlock)
{
	dead_holder(false);
}
END_TEST

START_TEST(test_rlock_dead_holder_is_a_named_code_not_a_deadlock)
{
	dead_holder(true);
}
END_TEST

/* ---- Semaphores --------------------------------------------------------- */

START_TEST(test_semaphore_counts)
{
	ck_assert_int_eq(mproc_semaphore_new(&S, 2), 0);
	unsigned v;
	ck_assert_int_eq(mproc_semaphore_get_value(S, &v), 0);
	ck_assert_uint_eq(v, 2);
	ck_assert_int_eq(mproc_semaphore_acquire(S, 0), 0);
	ck_assert_int_eq(mproc_semaphore_acquire(S, -1), 0);
	ck_assert_int_eq(mproc_semaphore_acquire(S, 0), -ETIMEDOUT);
	ck_assert_int_eq(mproc_semaphore_acquire(S, 0.02), -ETIMEDOUT);
	ck_assert_int_eq(mproc_semaphore_get_value(S, &v), 0);
	ck_assert_uint_eq(v, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(mproc_semaphore_release(S), 0);
	ck_assert_int_eq(mproc_semaphore_get_value(S, &v), 0);
	ck_assert_uint_eq(v, 3); /* a plain semaphore may go past its start */
	mproc_semaphore_free(S);

	ck_assert_int_eq(mproc_bounded_semaphore_new(&S, 1), 0);
	ck_assert_int_eq(mproc_semaphore_release(S), MPROC_ENOTHELD);
	ck_assert_int_eq(mproc_semaphore_acquire(S, 0), 0);
	ck_assert_int_eq(mproc_semaphore_release(S), 0);
	ck_assert_int_eq(mproc_semaphore_release(S), MPROC_ENOTHELD);
	ck_assert_int_eq(mproc_semaphore_acquire(NULL, 0), -EINVAL);
	ck_assert_int_eq(mproc_semaphore_new(&S, 1u << 31), -EINVAL);
	mproc_semaphore_free(S);
}
END_TEST

/* Waits for the semaphore; returns what acquire answered. */
static int t_sem_wait(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, mproc_semaphore_acquire(S, -1));
}

START_TEST(test_semaphore_release_wakes_a_waiting_process)
{
	ck_assert_int_eq(mproc_semaphore_new(&S, 0), 0);
	struct mproc_process *p[3];
	for (int i = 0; i < 3; i++)
		p[i] = start(t_sem_wait, 0);
	sleep_ms(20);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(mproc_semaphore_release(S), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(join_int(p[i]), 0);
	unsigned v;
	mproc_semaphore_get_value(S, &v);
	ck_assert_uint_eq(v, 0);
	mproc_semaphore_free(S);
}
END_TEST

/* ---- Event -------------------------------------------------------------- */

static int t_event_wait(const struct mproc_value *arg, struct mproc_writer *ret)
{
	double t = -1;
	mproc_value_float(arg, &t);
	return mproc_write_int(ret, mproc_event_wait(E, t));
}

START_TEST(test_event_set_clear_wait)
{
	ck_assert_int_eq(mproc_event_new(&E), 0);
	ck_assert(!mproc_event_is_set(E));
	ck_assert_int_eq(mproc_event_wait(E, 0), -ETIMEDOUT);
	ck_assert_int_eq(mproc_event_wait(E, 0.02), -ETIMEDOUT);
	struct mproc_process *p[3];
	for (int i = 0; i < 3; i++)
		p[i] = start(t_event_wait, -1);
	sleep_ms(20);
	ck_assert_int_eq(mproc_event_set(E), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(join_int(p[i]), 0);
	ck_assert(mproc_event_is_set(E));
	ck_assert_int_eq(mproc_event_wait(E, 0), 0);
	ck_assert_int_eq(mproc_event_clear(E), 0);
	ck_assert(!mproc_event_is_set(E));
	ck_assert_int_eq(join_int(start(t_event_wait, 0)), -ETIMEDOUT);
	ck_assert_int_eq(mproc_event_set(NULL), -EINVAL);
	mproc_event_free(E);
}
END_TEST

/* ---- Condition ---------------------------------------------------------- */

static bool flag_is_set(void *cookie)
{
	(void)cookie;
	return atomic_load(&shared[2]) != 0;
}

/* wait_for(shared[2]) under C; returns what it answered, or 100 when it
 * came back without the lock. */
static int t_cond_wait_for(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	(void)arg;
	int rc = mproc_condition_acquire(C, -1);
	if (rc < 0)
		return mproc_write_int(ret, rc);
	atomic_fetch_add(&shared[3], 1); /* waiting */
	rc = mproc_condition_wait_for(C, flag_is_set, NULL, -1);
	if (!mproc_lock_held(mproc_condition_lock(C)))
		rc = 100;
	mproc_condition_release(C);
	return mproc_write_int(ret, rc);
}

START_TEST(test_condition_notify_all_wakes_every_process)
{
	ck_assert_int_eq(mproc_condition_new(&C, NULL), 0);
	struct mproc_process *p[3];
	for (int i = 0; i < 3; i++)
		p[i] = start(t_cond_wait_for, 0);
	while (atomic_load(&shared[3]) < 3)
		sleep_ms(1);
	ck_assert_int_eq(mproc_condition_acquire(C, -1), 0);
	atomic_store(&shared[2], 1);
	ck_assert_int_eq(mproc_condition_notify_all(C), 0);
	ck_assert_int_eq(mproc_condition_release(C), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(join_int(p[i]), 0);
	mproc_condition_free(C);
}
END_TEST

START_TEST(test_condition_needs_its_lock)
{
	ck_assert_int_eq(mproc_lock_new(&L), 0);
	ck_assert_int_eq(mproc_condition_new(&C, L), 0);
	ck_assert_ptr_eq(mproc_condition_lock(C), L);
	ck_assert_int_eq(mproc_condition_notify(C, 1), MPROC_ENOTHELD);
	ck_assert_int_eq(mproc_condition_wait(C, 0), MPROC_ENOTHELD);
	ck_assert_int_eq(mproc_condition_acquire(C, -1), 0);
	ck_assert_int_eq(mproc_condition_wait(C, 0.02), -ETIMEDOUT);
	ck_assert(mproc_lock_held(L));
	ck_assert_int_eq(mproc_condition_wait(C, 0), -ETIMEDOUT);
	ck_assert_int_eq(mproc_condition_wait_for(C, flag_is_set, NULL, 0.01),
	                 -ETIMEDOUT);
	ck_assert(mproc_lock_held(L));
	ck_assert_int_eq(mproc_condition_notify(C, 1), 0);
	ck_assert_int_eq(mproc_condition_release(C), 0);
	ck_assert_int_eq(mproc_condition_wait_for(C, NULL, NULL, 0), -EINVAL);
	mproc_condition_free(C);
	mproc_lock_free(L);
}
END_TEST

/* A thread takes the condition's RLock while the test's thread waits
 * holding it twice: wait released it whole. */
static void *thread_notify(void *arg)
{
	(void)arg;
	if (mproc_condition_acquire(C, -1) < 0)
		return (void *)1;
	atomic_store(&shared[2], 1);
	mproc_condition_notify(C, 1);
	mproc_condition_release(C);
	return NULL;
}

START_TEST(test_condition_wait_releases_an_rlock_held_twice)
{
	ck_assert_int_eq(mproc_condition_new(&C, NULL), 0);
	ck_assert_int_eq(mproc_condition_acquire(C, -1), 0);
	ck_assert_int_eq(mproc_condition_acquire(C, -1), 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, thread_notify, NULL), 0);
	ck_assert_int_eq(mproc_condition_wait_for(C, flag_is_set, NULL, -1), 0);
	void *r;
	ck_assert_int_eq(pthread_join(th, &r), 0);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(mproc_condition_release(C), 0);
	ck_assert(mproc_lock_held(mproc_condition_lock(C)));
	ck_assert_int_eq(mproc_condition_release(C), 0);
	ck_assert_int_eq(mproc_condition_release(C), MPROC_ENOTHELD);
	mproc_condition_free(C);
}
END_TEST

/* ---- Barrier ------------------------------------------------------------ */

/* Waits at the barrier `arg` times; returns the sum of bits 1 << index,
 * or the first error. */
static int t_barrier(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t rounds = 1, bits = 0;
	mproc_value_int(arg, &rounds);
	for (int64_t i = 0; i < rounds; i++) {
		int idx = mproc_barrier_wait(B, -1);
		if (idx < 0)
			return mproc_write_int(ret, idx);
		bits |= (int64_t)1 << (idx + 8 * i);
	}
	return mproc_write_int(ret, bits);
}

START_TEST(test_barrier_lets_parties_go_together_and_is_reusable)
{
	ck_assert_int_eq(mproc_barrier_new(&B, 4), 0);
	ck_assert_uint_eq(mproc_barrier_parties(B), 4);
	struct mproc_process *p[3];
	for (int i = 0; i < 3; i++)
		p[i] = start(t_barrier, 2);
	int64_t all = 0;
	for (int round = 0; round < 2; round++) {
		int idx = mproc_barrier_wait(B, -1);
		ck_assert(idx >= 0 && idx < 4);
		all |= (int64_t)1 << (idx + 8 * round);
	}
	for (int i = 0; i < 3; i++) {
		int64_t bits = join_int(p[i]);
		ck_assert_int_ge(bits, 0);
		ck_assert_int_eq(all & bits, 0);
		all |= bits;
	}
	/* Every index 0..3 once per round. */
	ck_assert_int_eq(all, 0x0f0f);
	ck_assert(!mproc_barrier_broken(B));
	ck_assert_uint_eq(mproc_barrier_n_waiting(B), 0);
	mproc_barrier_free(B);
}
END_TEST

START_TEST(test_barrier_timeout_breaks_it_until_reset)
{
	ck_assert_int_eq(mproc_barrier_new(&B, 2), 0);
	ck_assert_int_eq(mproc_barrier_wait(B, 0.02), -ETIMEDOUT);
	ck_assert(mproc_barrier_broken(B));
	ck_assert_int_eq(mproc_barrier_wait(B, -1), MPROC_EBROKEN);
	ck_assert_int_eq(mproc_barrier_reset(B), 0);
	ck_assert(!mproc_barrier_broken(B));
	ck_assert_uint_eq(mproc_barrier_n_waiting(B), 0);
	struct mproc_process *p = start(t_barrier, 1);
	ck_assert_int_ge(mproc_barrier_wait(B, -1), 0);
	ck_assert_int_gt(join_int(p), 0);
	mproc_barrier_free(B);
	ck_assert_int_eq(mproc_barrier_new(&B, 0), -EINVAL);
}
END_TEST

static void abort_or_reset(bool abort)
{
	ck_assert_int_eq(mproc_barrier_new(&B, 3), 0);
	struct mproc_process *p[2];
	for (int i = 0; i < 2; i++)
		p[i] = start(t_barrier, 1);
	while (mproc_barrier_n_waiting(B) < 2)
		sleep_ms(1);
	ck_assert_int_eq(abort ? mproc_barrier_abort(B) : mproc_barrier_reset(B), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(join_int(p[i]), MPROC_EBROKEN);
	ck_assert_int_eq(mproc_barrier_broken(B), abort);
	mproc_barrier_free(B);
}

START_TEST(test_barrier_abort_breaks_the_waiters)
{
	abort_or_reset(true);
}
END_TEST

START_TEST(test_barrier_reset_breaks_the_waiters)
{
	abort_or_reset(false);
}
END_TEST

START_TEST(test_barrier_single_party_never_waits)
{
	ck_assert_int_eq(mproc_barrier_new(&B, 1), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(mproc_barrier_wait(B, 0), 0);
	mproc_barrier_free(B);
}
END_TEST

/* A pool task: adds 1 to shared[4] under L, 10 times. */
static int t_pool_count(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (int i = 0; i < 10; i++) {
		int rc = mproc_lock_acquire(L, -1);
		if (rc < 0)
			return rc;
		int64_t v = atomic_load_explicit(&shared[4], memory_order_relaxed);
		atomic_store_explicit(&shared[4], v + 1, memory_order_relaxed);
		if ((rc = mproc_lock_release(L)) < 0)
			return rc;
	}
	return 0;
}

/* Under every start method the suite runs with: a lock made before the
 * pool guards its workers. */
START_TEST(test_lock_guards_pool_workers)
{
	ck_assert_int_eq(mproc_lock_new(&L), 0);
	struct mproc_pool *pool = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 200, 1);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(pool, t_pool_count, &in, 1, &res), 0);
	mproc_results_free(res);
	finish_pool(pool);
	ck_assert_int_eq(atomic_load(&shared[4]), 2000);
	mproc_lock_free(L);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sync");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lock_acquire_release_and_misuse);
	tcase_add_test(tc, test_rlock_is_reentrant);
	tcase_add_test(tc, test_lock_excludes_other_processes);
	tcase_add_test(tc, test_lock_counter_from_four_processes);
	tcase_add_test(tc, test_lock_dead_holder_is_a_named_code_not_a_deadlock);
	tcase_add_test(tc, test_rlock_dead_holder_is_a_named_code_not_a_deadlock);
	tcase_add_test(tc, test_semaphore_counts);
	tcase_add_test(tc, test_semaphore_release_wakes_a_waiting_process);
	tcase_add_test(tc, test_event_set_clear_wait);
	tcase_add_test(tc, test_condition_notify_all_wakes_every_process);
	tcase_add_test(tc, test_condition_needs_its_lock);
	tcase_add_test(tc, test_condition_wait_releases_an_rlock_held_twice);
	tcase_add_test(tc, test_barrier_lets_parties_go_together_and_is_reusable);
	tcase_add_test(tc, test_barrier_timeout_breaks_it_until_reset);
	tcase_add_test(tc, test_barrier_abort_breaks_the_waiters);
	tcase_add_test(tc, test_barrier_reset_breaks_the_waiters);
	tcase_add_test(tc, test_barrier_single_party_never_waits);
	tcase_add_test(tc, test_lock_guards_pool_workers);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
