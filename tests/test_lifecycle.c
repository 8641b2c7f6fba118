/*
 * test_lifecycle.c - a pool from open to free: close, join, terminate and
 * free in every order, bad arguments and the options' size, the workers
 * (initializer, maxtasksperchild, their names and SIGINT, a crashed one
 * replaced), results that outlive their pool, the CPU counts, and 1000
 * pools opened and freed leaving no descriptor or child behind.
 *
 * Tasks run in workers; every assertion is made in the test process.
 * Each test ends with its pool joined or freed, so no worker outlives it.
 * tests/meson.build runs the suite again with the fork server
 * (lifecycle-forkserver) and on the threads backend (lifecycle-threads).
 * Where threads differ by design (a crash is the program's, a running task
 * cannot be killed, the initializer writes the program's memory) the test
 * asserts what the threads backend promises instead; docs/threads.md
 * lists those differences.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"

/* ---- tasks (run in workers) ------------------------------------------ */

static _Atomic int init_value; /* threads: every worker thread writes it */

static void init_set(void *arg)
{
	init_value = *(int *)arg;
}

static int t_init_value(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, init_value);
}

/* Ctrl-C is not the worker's: a process ignores SIGINT, a thread blocks
 * it (the program's own threads take it). */
static int t_sigint_ignored(const struct mproc_value *arg,
                            struct mproc_writer *ret)
{
	(void)arg;
	sigset_t mask;
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	if (sigismember(&mask, SIGINT))
		return mproc_write_bool(ret, test_threads());
	struct sigaction sa;
	sigaction(SIGINT, NULL, &sa);
	return mproc_write_bool(ret, sa.sa_handler == SIG_IGN && !test_threads());
}

static int t_comm(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	char buf[64] = "";
	FILE *f = fopen("/proc/thread-self/comm", "r");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return mproc_write_cstr(ret, buf);
}

static int t_segv_on_3(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	if (x == 3)
		raise(SIGSEGV);
	return mproc_write_int(ret, x);
}

/* ---- workers --------------------------------------------------------- */

START_TEST(test_lifecycle_initializer_runs_in_each_worker)
{
	static int value = 42;
	struct mproc_pool_opts o = {.processes = 2, .initializer = init_set,
	                            .initarg = &value};
	struct mproc_pool *p;
	ck_assert_int_eq(open_with_start(&p, &o), 0);
	struct mproc_input in;
	mproc_input_range(&in, 0, 20, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_init_value, &in, 1, &r), 0);
	for (size_t i = 0; i < mproc_results_count(r); i++)
		ck_assert_int_eq(int_of(item(r, i).value), 42);
	mproc_results_free(r);
	/* A process's initializer never writes the caller's memory; a
	 * thread's does, the program's memory being its own. */
	ck_assert_int_eq(init_value, test_threads() ? 42 : 0);
	init_value = 0;
	finish_pool(p);
}
END_TEST

START_TEST(test_lifecycle_maxtasksperchild_replaces_workers)
{
	struct mproc_pool_opts o = {.processes = 2, .maxtasksperchild = 2};
	struct mproc_pool *p;
	ck_assert_int_eq(open_with_start(&p, &o), 0);
	struct mproc_input in;
	mproc_input_range(&in, 0, 20, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_worker_id, &in, 1, &r), 0);
	/* Each pid served at most 2 chunks: at least 10 distinct workers. */
	int distinct = 0;
	for (size_t i = 0; i < mproc_results_count(r); i++) {
		int64_t pid = int_of(item(r, i).value), uses = 0;
		bool first = true;
		for (size_t j = 0; j < mproc_results_count(r); j++) {
			if (int_of(item(r, j).value) == pid) {
				uses++;
				if (j < i)
					first = false;
			}
		}
		ck_assert_int_le(uses, 2);
		distinct += first;
	}
	ck_assert_int_ge(distinct, 10);
	mproc_results_free(r);
	finish_pool(p);
	ck_assert(no_children());
}
END_TEST

static void init_slow(void *arg)
{
	(void)arg;
	usleep(40000);
}

/* A worker slow to start has its tasks taken back by those that run
 * (work conservation); those it never ran count for no retirement, so
 * each worker started runs its one task, where a worker used to retire
 * without running any, and its replacement lose its task the same way. */
START_TEST(test_lifecycle_maxtasksperchild_counts_only_tasks_run)
{
	enum { N = 16, W = 2 };
	struct mproc_pool_opts o = {.processes = W, .maxtasksperchild = 1,
	                            .initializer = init_slow};
	struct mproc_pool *p;
	ck_assert_int_eq(open_with_start(&p, &o), 0);
	struct mproc_input in;
	mproc_input_range(&in, 0, N, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_worker_id, &in, 1, &r), 0);
	for (size_t i = 0; i < N; i++)
		for (size_t j = 0; j < i; j++)
			ck_assert_int_ne(int_of(item(r, i).value),
			                 int_of(item(r, j).value));
	mproc_results_free(r);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	/* One start per task, and the replacements of the last W. */
	ck_assert_uint_le(st.workers_started, N + W);
	finish_pool(p);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_lifecycle_workers_ignore_sigint_and_are_named)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_sigint_ignored, NULL, 0, &r), 0);
	bool b = false;
	ck_assert_int_eq(mproc_value_bool(item(r, 0).value, &b), 0);
	ck_assert(b);
	mproc_results_free(r);
	ck_assert_int_eq(mproc_apply(p, t_comm, NULL, 0, &r), 0);
	const char *s;
	size_t len;
	ck_assert_int_eq(mproc_value_str(item(r, 0).value, &s, &len), 0);
	ck_assert_int_eq(strncmp(s, "mproc-worker0", len), 0);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

/* mproc_init with no envp (main declared with two arguments) takes the
 * environment from environ; it does not crash. Run in a child, which
 * exits with what it saw: the test process keeps its own title. */
START_TEST(test_lifecycle_init_without_envp)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char arg0[64] = "mproc-test-init";
		char *argv[] = {arg0, NULL};
		mproc_init(1, argv, NULL);
		mproc_init(1, argv, NULL); /* idempotent */
		_exit(getenv("PATH") ? 0 : 3);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "child status %#x", status);
}
END_TEST

START_TEST(test_lifecycle_crashed_worker_is_replaced)
{
	/* In the threads backend a crash takes the program: nothing to test
	 * there but the documentation of it (docs/threads.md). */
	if (test_threads())
		return;
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 8, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_segv_on_3, &in, 4, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	ck_assert_int_eq(item(r, 3).status, MPROC_CRASHED);
	ck_assert_ptr_nonnull(strstr(item(r, 3).error->msg, "SIGSEGV"));
	for (int i = 0; i < 8; i++)
		if (i != 3)
			ck_assert_int_eq(int_of(item(r, i).value), i);
	mproc_results_free(r);
	finish_pool(p);
	ck_assert(no_children());
}
END_TEST

/* ---- open, close, join, terminate, free ------------------------------ */

START_TEST(test_lifecycle_join_before_close_is_erunning)
{
	struct mproc_pool *p = open_pool(1);
	ck_assert_int_eq(mproc_pool_join(p), MPROC_ERUNNING);
	finish_pool(p);
}
END_TEST

START_TEST(test_lifecycle_submit_after_close_is_eclosed)
{
	struct mproc_pool *p = open_pool(1);
	mproc_pool_close(p);
	struct mproc_results *r = (void *)1;
	ck_assert_int_eq(mproc_apply(p, t_identity, NULL, 0, &r), MPROC_ECLOSED);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
}
END_TEST

START_TEST(test_lifecycle_terminate_cancels_pending_promptly)
{
	struct mproc_pool *p = open_pool(2);
	/* Processes are killed at once. Threads cannot be: the two running
	 * tasks finish (OK), the four others never start (CANCELLED). */
	int64_t t = test_threads() ? 700 : 5000;
	int64_t ms[6] = {t, t, t, t, t, t};
	struct mproc_input in;
	mproc_input_int64s(&in, ms, 6);
	struct mproc_async *a;
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_map_async(p, t_sleep, &in, 1, NULL, &a), 0);
	ck_assert_int_eq(mproc_async_wait(a, 0.1), -ETIMEDOUT);
	uint64_t t0 = (uint64_t)time(NULL);
	ck_assert_int_eq(mproc_pool_terminate(p), 0);
	ck_assert_int_eq(mproc_async_get(a, 1, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_count(r), 6);
	int ok = 0, cancelled = 0;
	for (int i = 0; i < 6; i++) {
		ok += item(r, i).status == MPROC_OK;
		cancelled += item(r, i).status == MPROC_CANCELLED;
	}
	/* Threads: one running task per worker finished. */
	ck_assert_int_eq(ok, test_threads() ? 2 : 0);
	ck_assert_int_eq(cancelled, 6 - ok);
	ck_assert_uint_le((uint64_t)time(NULL) - t0, 2);
	mproc_async_free(a);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
	ck_assert(no_children());
}
END_TEST

/* Every item of a call has one result after terminate: those that ran,
 * and CANCELLED for those that never did (never dispatched included). */
static void check_every_item_once(const struct mproc_results *r, size_t n)
{
	ck_assert_uint_eq(mproc_results_count(r), n);
	size_t cancelled = 0;
	for (size_t i = 0; i < n; i++) {
		struct mproc_result it = item(r, i);
		ck_assert_uint_eq(it.index, i);
		ck_assert(it.status == MPROC_OK || it.status == MPROC_CANCELLED);
		if (it.status == MPROC_CANCELLED) {
			ck_assert_ptr_nonnull(it.error);
			cancelled++;
		}
	}
	ck_assert_uint_eq(mproc_results_failed(r), cancelled);
	ck_assert_uint_gt(cancelled, n / 2);
}

struct map_thread {
	struct mproc_pool *pool;
	struct mproc_results *res;
	int rc;
};

static int64_t ms_200[1000];

static void *map_in_thread(void *arg)
{
	struct map_thread *m = arg;
	struct mproc_input in;
	for (int i = 0; i < 1000; i++)
		ms_200[i] = 200;
	mproc_input_int64s(&in, ms_200, 1000);
	m->rc = mproc_map(m->pool, t_sleep, &in, 1, &m->res);
	return NULL;
}

START_TEST(test_lifecycle_terminate_gives_every_item_one_result)
{
	struct mproc_pool *p = open_pool(3);
	int64_t ms[1000];
	for (int i = 0; i < 1000; i++)
		ms[i] = 200;
	struct mproc_input in;
	mproc_input_int64s(&in, ms, 1000);
	struct mproc_async *map, *apply;
	size_t len;
	const void *arg = pickle_int(1, &len);
	ck_assert_int_eq(mproc_map_async(p, t_sleep, &in, 1, NULL, &map), 0);
	ck_assert_int_eq(mproc_apply_async(p, t_identity, arg, len, NULL, &apply), 0);
	ck_assert_int_eq(mproc_async_wait(map, 0.05), -ETIMEDOUT);
	ck_assert_int_eq(mproc_pool_terminate(p), 0);
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(map, 0, &r), MPROC_ERAISED);
	check_every_item_once(r, 1000);
	ck_assert_int_eq(mproc_async_get(apply, 0, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_count(r), 1);
	ck_assert_int_eq(item(r, 0).status, MPROC_CANCELLED);
	ck_assert_int_eq(mproc_async_successful(apply), 0);
	mproc_async_free(map);
	mproc_async_free(apply);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
	ck_assert(no_children());

	/* A blocking map terminated from another thread keeps its results. */
	struct map_thread m = {.pool = open_pool(3)};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, map_in_thread, &m), 0);
	sleep_ms(100);
	ck_assert_int_eq(mproc_pool_terminate(m.pool), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(m.rc, MPROC_ERAISED);
	ck_assert_ptr_nonnull(m.res);
	check_every_item_once(m.res, 1000);
	mproc_results_free(m.res);
	mproc_pool_free(m.pool);

	/* So does a map whose pool is freed without a join. */
	p = open_pool(3);
	ck_assert_int_eq(mproc_map_async(p, t_sleep, &in, 1, NULL, &map), 0);
	ck_assert_int_eq(mproc_async_wait(map, 0.05), -ETIMEDOUT);
	mproc_pool_free(p);
	ck_assert_int_eq(mproc_async_get(map, -1, &r), MPROC_ERAISED);
	check_every_item_once(r, 1000);
	mproc_async_free(map);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_lifecycle_free_without_join_terminates)
{
	struct mproc_pool *p = open_pool(2);
	size_t n;
	/* A thread's running task is waited for, not killed. */
	const void *arg = pickle_int(test_threads() ? 300 : 10000, &n);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(p, t_sleep, arg, n, NULL, &a), 0);
	mproc_async_free(a);
	mproc_pool_free(p);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_lifecycle_bad_arguments_are_einval)
{
	struct mproc_pool *p = NULL;
	struct mproc_pool_opts o = {.processes = 100000};
	ck_assert_int_eq(mproc_pool_open(NULL, NULL), -EINVAL);
	ck_assert_int_eq(mproc_pool_open(&p, &o), -EINVAL);
	ck_assert_ptr_null(p);
	p = open_pool(1);
	struct mproc_results *r;
	struct mproc_input in = {0};
	ck_assert_int_eq(mproc_apply(p, NULL, NULL, 0, &r), -EINVAL);
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), -EINVAL);
	ck_assert_int_eq(mproc_map(p, t_identity, NULL, 0, &r), -EINVAL);
	ck_assert_int_eq(mproc_input_range(&in, 0, 1, 0), -EINVAL);
	ck_assert_int_eq(mproc_pool_close(NULL), -EINVAL);
	ck_assert_int_eq(mproc_pool_join(NULL), -EINVAL);
	ck_assert_int_eq(mproc_pool_terminate(NULL), -EINVAL);
	/* A helper's input with a state no helper writes. */
	mproc_input_range(&in, 0, 3, 1);
	memset(in.reserved_, 0x7f, sizeof in.reserved_);
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), -EINVAL);
	finish_pool(p);
}
END_TEST

/* The options' size: 0 and sizeof are this version's layout; a larger
 * struct (a later header) is taken when what lies past ours is zero. */
START_TEST(test_lifecycle_opts_size_lets_the_struct_grow)
{
	struct {
		struct mproc_pool_opts o;
		uint64_t later[4];
	} big = {.o = MPROC_POOL_OPTS_INIT};
	struct mproc_pool *p = NULL;
	big.o.processes = 1;
	big.o.size = sizeof big;
	ck_assert_int_eq(open_with_start(&p, &big.o), 0);
	finish_pool(p);
	big.later[3] = 1;
	ck_assert_int_eq(open_with_start(&p, &big.o), -E2BIG);
	ck_assert_ptr_null(p);
	big.o.size = 4;
	ck_assert_int_eq(open_with_start(&p, &big.o), -EINVAL);
	big.o.size = 20; /* ends inside a field */
	ck_assert_int_eq(open_with_start(&p, &big.o), -EINVAL);
	big.o.size = 0;
	ck_assert_int_eq(open_with_start(&p, &big.o), 0);
	ck_assert_int_eq(mproc_results_count(NULL), 0);
	ck_assert_int_eq(mproc_results_failed(NULL), 0);
	finish_pool(p);
}
END_TEST

START_TEST(test_lifecycle_results_outlive_the_pool)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_square, &in, 0, &r), 0);
	size_t n;
	const void *arg = pickle_int(7, &n);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(p, t_square, arg, n, NULL, &a), 0);
	ck_assert_int_eq(mproc_async_wait(a, -1), 0);
	struct mproc_iter *it;
	mproc_input_range(&in, 0, 100000, 1);
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 1, &it), 0);
	finish_pool(p); /* join ends the iterator; then the pool is freed */

	ck_assert_int_eq(int_of(item(r, 99).value), 99 * 99);
	const struct mproc_results *ar;
	ck_assert_int_eq(mproc_async_get(a, 0, &ar), 0);
	ck_assert_int_eq(int_of(item(ar, 0).value), 49);
	ck_assert(mproc_async_ready(a));
	const struct mproc_result *ir;
	ck_assert_int_eq(mproc_iter_next(it, 0, &ir), MPROC_ECLOSED);
	mproc_iter_free(it);
	mproc_async_free(a);
	mproc_results_free(r);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_lifecycle_cpu_counts_are_sane)
{
	int all = mproc_cpu_count(), mine = mproc_process_cpu_count();
	ck_assert_int_ge(all, 1);
	ck_assert_int_ge(mine, 1);
	ck_assert_int_le(mine, all);
}
END_TEST

/* ---- resources ------------------------------------------------------- */

START_TEST(test_lifecycle_open_use_free_1000_pools_leaks_nothing)
{
	int fds = count_fds();
	for (int i = 0; i < 1000; i++) {
		struct mproc_pool *p = open_pool(2);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_apply(p, t_identity, NULL, 0, &r), 0);
		mproc_results_free(r);
		if (i % 2)
			finish_pool(p);
		else
			mproc_pool_free(p); /* terminate path */
	}
	ck_assert_int_eq(count_fds(), fds);
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lifecycle_initializer_runs_in_each_worker);
	tcase_add_test(tc, test_lifecycle_maxtasksperchild_replaces_workers);
	tcase_add_test(tc, test_lifecycle_maxtasksperchild_counts_only_tasks_run);
	tcase_add_test(tc, test_lifecycle_workers_ignore_sigint_and_are_named);
	tcase_add_test(tc, test_lifecycle_init_without_envp);
	tcase_add_test(tc, test_lifecycle_crashed_worker_is_replaced);
	tcase_add_test(tc, test_lifecycle_join_before_close_is_erunning);
	tcase_add_test(tc, test_lifecycle_submit_after_close_is_eclosed);
	tcase_add_test(tc, test_lifecycle_terminate_cancels_pending_promptly);
	tcase_add_test(tc, test_lifecycle_free_without_join_terminates);
	tcase_add_test(tc, test_lifecycle_terminate_gives_every_item_one_result);
	tcase_add_test(tc, test_lifecycle_bad_arguments_are_einval);
	tcase_add_test(tc, test_lifecycle_opts_size_lets_the_struct_grow);
	tcase_add_test(tc, test_lifecycle_results_outlive_the_pool);
	tcase_add_test(tc, test_lifecycle_cpu_counts_are_sane);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("resources");
	tcase_set_timeout(tr, 240);
	tcase_add_test(tr, test_lifecycle_open_use_free_1000_pools_leaks_nothing);
	suite_add_tcase(s, tr);
	return run_suite(s);
}
