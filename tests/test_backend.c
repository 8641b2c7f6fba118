/*
 * test_backend.c - the backends side by side: the threads backend refuses
 * what needs a process, both backends give byte-identical results, and a
 * task on a worker thread may call its own pool (terminate waits for it;
 * ending the pool from inside is -EDEADLK), fault into the program's own
 * SIGSEGV handler, or fork without the child becoming a second worker.
 *
 * Every assertion is made in the test process. Each test ends with its
 * pool joined or freed, so no worker outlives it. tests/meson.build runs
 * the suite again with the fork server (backend-forkserver) and on the
 * threads backend (backend-threads); only the forking test follows that
 * choice, the others open the backend they are about explicitly.
 */
#include <check.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"

/* ---- what the threads backend refuses -------------------------------- */

START_TEST(test_backend_threads_refuse_what_needs_a_process)
{
	struct mproc_pool *p = NULL;
	struct mproc_pool_opts o = {.processes = 1,
	                            .backend = MPROC_BACKEND_THREADS};
	o.task_timeout = 1;
	ck_assert_int_eq(mproc_pool_open(&p, &o), -ENOTSUP);
	o.task_timeout = 0, o.max_rss = 1u << 30;
	ck_assert_int_eq(mproc_pool_open(&p, &o), -ENOTSUP);
	o.max_rss = 0, o.max_vm = 1u << 30;
	ck_assert_int_eq(mproc_pool_open(&p, &o), -ENOTSUP);
	o.max_vm = 0, o.start_method = MPROC_START_FORKSERVER;
	ck_assert_int_eq(mproc_pool_open(&p, &o), -ENOTSUP);
	o.start_method = MPROC_START_FORK, o.backend = 7;
	ck_assert_int_eq(mproc_pool_open(&p, &o), -EINVAL);
	ck_assert_ptr_null(p);

	/* A call's own timeout, too; "no limit" (negative) is fine. */
	o.backend = MPROC_BACKEND_THREADS;
	ck_assert_int_eq(mproc_pool_open(&p, &o), 0);
	struct mproc_call_opts co = {.timeout = 1};
	struct mproc_async *a = (void *)1;
	ck_assert_int_eq(mproc_apply_async_opts(p, t_identity, NULL, 0, NULL,
	                                        &co, &a), -ENOTSUP);
	ck_assert_ptr_null(a);
	co.timeout = -1;
	ck_assert_int_eq(mproc_apply_async_opts(p, t_identity, NULL, 0, NULL,
	                                        &co, &a), 0);
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(a, -1, &r), 0);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	mproc_async_free(a);
	finish_pool(p);
}
END_TEST

/* ---- both backends, one answer --------------------------------------- */

/* Values of several types, one an exception, for the backend comparison. */
static int gen_mixed(void *cookie, size_t i, struct mproc_writer *w)
{
	(void)cookie;
	if (i >= 300)
		return 0;
	switch (i % 5) {
	case 0: mproc_write_int(w, (int64_t)i * 1000003); break;
	case 1: mproc_write_float(w, (double)i / 7); break;
	case 2: mproc_write_cstr(w, "na\xc3\xafve"); break;
	case 3:
		mproc_write_tuple_begin(w);
		mproc_write_int(w, (int64_t)i);
		mproc_write_bytes(w, "\0\1\2", 3);
		mproc_write_tuple_end(w);
		break;
	default: mproc_write_int(w, 5); break; /* t_fail_on_5 raises */
	}
	return 1;
}

static int t_fail_on_5_any(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	int64_t x = 0;
	if (mproc_value_int(arg, &x) == 0 && x == 5)
		return mproc_raise(ret, "ValueError", "bad input %lld", (long long)x);
	return mproc_write_value(ret, arg);
}

/* The pickle of a result's value, or of its exception, for comparison. */
static size_t result_bytes(const struct mproc_result *r, char *out, size_t cap)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_write_tuple_begin(w);
	mproc_write_int(w, r->status);
	if (r->value)
		mproc_write_value(w, r->value);
	else
		mproc_write_none(w);
	mproc_write_cstr(w, r->error ? r->error->type : "");
	mproc_write_cstr(w, r->error ? r->error->msg : "");
	mproc_write_tuple_end(w);
	const void *d;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &d, &n), 0);
	ck_assert_uint_le(n, cap);
	memcpy(out, d, n);
	mproc_writer_free(w);
	return n;
}

START_TEST(test_backend_processes_and_threads_give_identical_results)
{
	/* Threads first: a process pool opened after a thread pool in the
	 * same program must work as well as one opened before. */
	struct mproc_results *r[2];
	for (int b = 0; b < 2; b++) {
		struct mproc_pool_opts o = {
		        .processes = 2,
		        .backend = b ? MPROC_BACKEND_PROCESSES : MPROC_BACKEND_THREADS};
		struct mproc_pool *p;
		ck_assert_int_eq(mproc_pool_open(&p, &o), 0);
		struct mproc_input in;
		mproc_input_fn_init(&in, gen_mixed, NULL);
		ck_assert_int_eq(mproc_map(p, t_fail_on_5_any, &in, 7, &r[b]),
		                 MPROC_ERAISED);
		finish_pool(p);
	}
	ck_assert_uint_eq(mproc_results_count(r[0]), 300);
	ck_assert_uint_eq(mproc_results_count(r[1]), 300);
	ck_assert_uint_eq(mproc_results_failed(r[0]), 60);
	ck_assert_uint_eq(mproc_results_failed(r[1]), 60);
	for (size_t i = 0; i < 300; i++) {
		char a[256], b[256];
		struct mproc_result ra = item(r[0], i), rb = item(r[1], i);
		size_t na = result_bytes(&ra, a, sizeof a);
		size_t nb = result_bytes(&rb, b, sizeof b);
		ck_assert_uint_eq(na, nb);
		ck_assert_mem_eq(a, b, na);
	}
	mproc_results_free(r[0]);
	mproc_results_free(r[1]);
	ck_assert(no_children());
}
END_TEST

/* ---- threads backend: what its tasks may do -------------------------- */

static struct mproc_pool *own_pool; /* the pool the tasks below run in */

/* Sleeps a little, then asks its own pool for statistics. */
static int t_stats_own_pool(const struct mproc_value *arg,
                            struct mproc_writer *ret)
{
	(void)arg;
	sleep_ms(200);
	struct mproc_pool_stats st;
	return mproc_write_int(ret, mproc_pool_stats(own_pool, &st));
}

/* Tries to terminate and join its own pool. */
static int t_end_own_pool(const struct mproc_value *arg,
                          struct mproc_writer *ret)
{
	(void)arg;
	mproc_write_tuple_begin(ret);
	mproc_write_int(ret, mproc_pool_terminate(own_pool));
	mproc_pool_close(own_pool);
	mproc_write_int(ret, mproc_pool_join(own_pool));
	return mproc_write_tuple_end(ret);
}

static struct mproc_pool *open_threads(unsigned n)
{
	struct mproc_pool_opts o = {.processes = n,
	                            .backend = MPROC_BACKEND_THREADS};
	struct mproc_pool *p = NULL;
	ck_assert_int_eq(mproc_pool_open(&p, &o), 0);
	return p;
}

START_TEST(test_backend_threads_terminate_while_task_calls_its_pool)
{
	own_pool = open_threads(1);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(own_pool, t_stats_own_pool, NULL, 0,
	                                   NULL, &a), 0);
	sleep_ms(50);
	/* The task needs the pool's lock while terminate waits for it. */
	ck_assert_int_eq(mproc_pool_terminate(own_pool), 0);
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(a, 0, &r), 0);
	ck_assert_int_eq(int_of(item(r, 0).value), 0);
	mproc_async_free(a);
	ck_assert_int_eq(mproc_pool_join(own_pool), 0);
	mproc_pool_free(own_pool);
}
END_TEST

START_TEST(test_backend_threads_task_ending_its_own_pool_is_edeadlk)
{
	own_pool = open_threads(2);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(own_pool, t_end_own_pool, NULL, 0, &r), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_value_item(item(r, 0).value, 0, &v), 0);
	ck_assert_int_eq(int_of(v), -EDEADLK);
	ck_assert_int_eq(mproc_value_item(item(r, 0).value, 1, &v), 0);
	ck_assert_int_eq(int_of(v), -EDEADLK);
	mproc_results_free(r);
	finish_pool(own_pool);
}
END_TEST

/* A program's own SIGSEGV handler that jumps back into the task: it must
 * run for a fault in a worker thread (synchronous signals are not blocked
 * there). */
static _Thread_local sigjmp_buf segv_jb;

static void segv_back(int sig)
{
	(void)sig;
	siglongjmp(segv_jb, 1);
}

/* Not NULL, which UBSan would report before the fault; unmapped all the
 * same. */
static int *volatile bad_address = (int *)16;

static int t_fault_and_recover(const struct mproc_value *arg,
                               struct mproc_writer *ret)
{
	(void)arg;
	if (sigsetjmp(segv_jb, 1) == 0) {
		*bad_address = 1;
		return mproc_write_cstr(ret, "no fault");
	}
	return mproc_write_cstr(ret, "recovered");
}

START_TEST(test_backend_threads_program_segv_handler_runs)
{
	struct sigaction sa = {.sa_handler = segv_back}, old;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old);
	struct mproc_pool *p = open_threads(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_fault_and_recover, NULL, 0, &r), 0);
	const char *s;
	size_t n;
	ck_assert_int_eq(mproc_value_str(item(r, 0).value, &s, &n), 0);
	ck_assert_int_eq(strncmp(s, "recovered", n), 0);
	mproc_results_free(r);
	finish_pool(p);
	sigaction(SIGSEGV, &old, NULL);
}
END_TEST

/* Forks; the child returns from the task, the parent waits for it. */
static int t_fork_and_return(const struct mproc_value *arg,
                             struct mproc_writer *ret)
{
	(void)arg;
	pid_t pid = fork();
	if (pid == 0)
		return mproc_write_cstr(ret, "from the child");
	waitpid(pid, NULL, 0);
	return mproc_write_cstr(ret, "from the worker");
}

/* The same with a raw fork system call, which runs no pthread_atfork
 * handler; the child writes nothing (it may not allocate). */
static int t_raw_fork_and_return(const struct mproc_value *arg,
                                 struct mproc_writer *ret)
{
	(void)arg;
	pid_t pid = (pid_t)syscall(SYS_fork);
	if (pid == 0)
		return 0;
	waitpid(pid, NULL, 0);
	return mproc_write_cstr(ret, "from the worker");
}

START_TEST(test_backend_task_raw_forking_never_makes_a_second_worker)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_input in;
	mproc_input_range(&in, 0, 4, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_raw_fork_and_return, &in, 2, &r), 0);
	for (int i = 0; i < 4; i++) {
		const char *s;
		size_t n;
		ck_assert_int_eq(mproc_value_str(item(r, i).value, &s, &n), 0);
		ck_assert_int_eq(strncmp(s, "from the worker", n), 0);
	}
	mproc_results_free(r);
	finish_pool(p);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_backend_task_forking_never_makes_a_second_worker)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_input in;
	mproc_input_range(&in, 0, 4, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_fork_and_return, &in, 1, &r), 0);
	for (int i = 0; i < 4; i++) {
		const char *s;
		size_t n;
		ck_assert_int_eq(mproc_value_str(item(r, i).value, &s, &n), 0);
		ck_assert_int_eq(strncmp(s, "from the worker", n), 0);
	}
	mproc_results_free(r);
	finish_pool(p); /* a child left on the task pipe would hang this */
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_backend_threads_refuse_what_needs_a_process);
	tcase_add_test(tc, test_backend_task_raw_forking_never_makes_a_second_worker);
	tcase_add_test(tc, test_backend_processes_and_threads_give_identical_results);
	tcase_add_test(tc, test_backend_threads_terminate_while_task_calls_its_pool);
	tcase_add_test(tc, test_backend_threads_task_ending_its_own_pool_is_edeadlk);
	tcase_add_test(tc, test_backend_threads_program_segv_handler_runs);
	tcase_add_test(tc, test_backend_task_forking_never_makes_a_second_worker);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
