/*
 * test_mpi.c - the MPI backend (docs/mpi.md), run by tests/mpi-run.sh as
 *     MPROC_BACKEND=mpi CK_FORK=no mpirun --oversubscribe -np 3 test_mpi
 * Rank 0 runs the suite; ranks 1 and 2 become node agents in mproc_init
 * (run_suite) and run every worker. Run alone, without MPI, every test
 * is skipped (it passes).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "testutil.h"

/* ---- tasks (they run on the agents' ranks) ---------------------------- */

/* The pid of the worker's parent: a node agent, never the test process. */
static int t_parent(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, getppid());
}

/* Crashes on 3 (SIGSEGV), exits 4 on 4, hangs on 5, else squares. */
static int t_faulty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	if (x == 3)
		raise(SIGSEGV);
	if (x == 4)
		_exit(4);
	if (x == 5)
		for (;;)
			pause();
	return mproc_write_int(ret, x * x);
}

/* (a, b) -> a - b */
static int t_sub(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const struct mproc_value *a, *b;
	int64_t x, y;
	if (mproc_value_item(arg, 0, &a) < 0 || mproc_value_item(arg, 1, &b) < 0 ||
	    mproc_value_int(a, &x) < 0 || mproc_value_int(b, &y) < 0)
		return mproc_raise(ret, "TypeError", "expected (int, int)");
	return mproc_write_int(ret, x - y);
}

/* Set by the initializer from its argument, a static of this program. */
static const int64_t init_value = 4242;
static int64_t seen_by_init;
static void init_copy(void *arg)
{
	seen_by_init = *(const int64_t *)arg;
}
static int t_seen(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, seen_by_init);
}

/* ---- helpers ---------------------------------------------------------- */

/* The job runs under mpirun with MPROC_BACKEND=mpi; otherwise skip. */
static bool mpi_job(void)
{
	const char *e = getenv("MPROC_BACKEND");
	return e && strcmp(e, "mpi") == 0 &&
	       (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE"));
}

static int world_size(void)
{
	const char *s = getenv("OMPI_COMM_WORLD_SIZE");
	if (!s)
		s = getenv("PMI_SIZE");
	return s ? atoi(s) : 1;
}

static struct mproc_pool *open_mpi(unsigned n, struct mproc_pool_opts *o)
{
	struct mproc_pool_opts def = MPROC_POOL_OPTS_INIT;
	if (!o)
		o = &def;
	o->processes = n;
	o->backend = MPROC_BACKEND_MPI;
	struct mproc_pool *p;
	ck_assert_int_eq(mproc_pool_open(&p, o), 0);
	return p;
}

static void close_join_free(struct mproc_pool *p)
{
	ck_assert_int_eq(mproc_pool_close(p), 0);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
}

#define SKIP_WITHOUT_MPI()                                                     \
	do {                                                                   \
		if (!mpi_job())                                                \
			return;                                                \
	} while (0)

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_mpi_workers_run_on_other_ranks)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *p = open_mpi(4, NULL);
	struct mproc_input in;
	mproc_input_range(&in, 0, 40, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_parent, &in, 1, &r), 0);
	for (size_t i = 0; i < mproc_results_count(r); i++) {
		int64_t ppid = int_of(mproc_results_value(r, i));
		ck_assert_int_ne(ppid, getpid());
	}
	mproc_results_free(r);
	close_join_free(p);
	/* Nothing of ours ran here. */
	ck_assert(no_children());
}
END_TEST

START_TEST(test_mpi_default_processes_is_every_agents_cpus)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *p = open_mpi(0, NULL);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.workers_started,
	                  (uint64_t)(world_size() - 1) *
	                          (uint64_t)mproc_process_cpu_count());
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_apply_map_starmap_exact_and_in_order)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *p = open_mpi(3, NULL);
	size_t len;
	const void *arg = pickle_int(12, &len);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_square, arg, len, &r), 0);
	ck_assert_int_eq(int_of(mproc_results_value(r, 0)), 144);
	mproc_results_free(r);

	static const size_t chunks[] = {0, 1, 7, 64, 5000};
	for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
		struct mproc_input in;
		mproc_input_range(&in, -500, 2500, 1);
		ck_assert_int_eq(mproc_map(p, t_square, &in, chunks[c], &r), 0);
		ck_assert_uint_eq(mproc_results_count(r), 3000);
		for (size_t i = 0; i < 3000; i++) {
			int64_t x = (int64_t)i - 500;
			ck_assert_int_eq(int_of(mproc_results_value(r, i)), x * x);
		}
		mproc_results_free(r);
	}

	/* starmap of items that are not tuples: each raises TypeError */
	struct mproc_input in;
	mproc_input_range(&in, 0, 100, 1);
	ck_assert_int_eq(mproc_starmap(p, t_identity, &in, 3, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_count(r), 100);
	for (size_t i = 0; i < 100; i++) {
		struct mproc_result res;
		ck_assert_int_eq(mproc_results_get(r, i, &res), 0);
		ck_assert_int_eq(res.status, MPROC_RAISED);
		ck_assert_str_eq(res.error->type, "TypeError");
	}
	mproc_results_free(r);
	close_join_free(p);
}
END_TEST

static int gen_pairs(void *cookie, size_t index, struct mproc_writer *w)
{
	(void)cookie;
	if (index >= 300)
		return 0;
	mproc_write_tuple_begin(w);
	mproc_write_int(w, (int64_t)index * 3);
	mproc_write_int(w, (int64_t)index);
	return mproc_write_tuple_end(w) < 0 ? -1 : 1;
}

START_TEST(test_mpi_starmap_passes_tuples)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *p = open_mpi(3, NULL);
	struct mproc_input in;
	mproc_input_fn_init(&in, gen_pairs, NULL);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_starmap(p, t_sub, &in, 8, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 300);
	for (size_t i = 0; i < 300; i++)
		ck_assert_int_eq(int_of(mproc_results_value(r, i)), 2 * (int64_t)i);
	mproc_results_free(r);
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_imap_in_order_and_unordered_once_each)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *p = open_mpi(4, NULL);
	static const size_t chunks[] = {1, 16};
	for (size_t c = 0; c < 2; c++) {
		struct mproc_input in;
		mproc_input_range(&in, 0, 20000, 1);
		struct mproc_iter *it;
		ck_assert_int_eq(mproc_imap(p, t_square, &in, chunks[c], &it), 0);
		const struct mproc_result *res;
		int64_t i = 0;
		while (mproc_iter_next(it, -1, &res) == 1) {
			ck_assert_int_eq(res->status, MPROC_OK);
			ck_assert_uint_eq(res->index, (size_t)i);
			ck_assert_int_eq(int_of(res->value), i * i);
			i++;
		}
		ck_assert_int_eq(i, 20000);
		mproc_iter_free(it);

		mproc_input_range(&in, 0, 5000, 1);
		ck_assert_int_eq(mproc_imap_unordered(p, t_square, &in, chunks[c],
		                                      &it), 0);
		static bool seen[5000];
		memset(seen, 0, sizeof seen);
		size_t n = 0;
		while (mproc_iter_next(it, -1, &res) == 1) {
			ck_assert_uint_lt(res->index, 5000);
			ck_assert(!seen[res->index]);
			seen[res->index] = true;
			int64_t x = (int64_t)res->index;
			ck_assert_int_eq(int_of(res->value), x * x);
			n++;
		}
		ck_assert_uint_eq(n, 5000);
		mproc_iter_free(it);
	}
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_remote_crash_exit_and_timeout_cost_one_task_each)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.task_timeout = 1.0;
	o.kill_grace = 0.2;
	struct mproc_pool *p = open_mpi(3, &o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 12, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_faulty, &in, 2, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_count(r), 12);
	for (size_t i = 0; i < 12; i++) {
		struct mproc_result res;
		ck_assert_int_eq(mproc_results_get(r, i, &res), 0);
		if (i == 3) {
			ck_assert_int_eq(res.status, MPROC_CRASHED);
			ck_assert_int_eq(res.error->crash->signal, SIGSEGV);
			/* The backtrace, taken on the agent's rank, names this
			 * program at rank 0's addresses. */
			ck_assert_ptr_nonnull(res.error->crash->report);
			ck_assert_ptr_nonnull(strstr(res.error->crash->report,
			                             "test_mpi"));
		} else if (i == 4) {
			ck_assert_int_eq(res.status, MPROC_CRASHED);
			ck_assert_int_eq(res.error->crash->signal, 0);
			ck_assert_int_eq(res.error->crash->exit_status, 4);
		} else if (i == 5) {
			ck_assert_int_eq(res.status, MPROC_TIMEOUT);
		} else {
			ck_assert_int_eq(res.status, MPROC_OK);
			ck_assert_int_eq(int_of(res.value), (int64_t)(i * i));
		}
	}
	mproc_results_free(r);
	/* The pool goes on. */
	size_t len;
	const void *arg = pickle_int(9, &len);
	ck_assert_int_eq(mproc_apply(p, t_faulty, arg, len, &r), 0);
	ck_assert_int_eq(int_of(mproc_results_value(r, 0)), 81);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.crashed, 2);
	ck_assert_uint_eq(st.timed_out, 1);
	ck_assert_uint_eq(st.workers_replaced, 3);
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_retries_run_again_and_count_attempts)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.retries = 2;
	struct mproc_pool *p = open_mpi(2, &o);
	size_t len;
	const void *arg = pickle_int(3, &len);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_faulty, arg, len, &r), MPROC_ERAISED);
	struct mproc_result res;
	ck_assert_int_eq(mproc_results_get(r, 0, &res), 0);
	ck_assert_int_eq(res.status, MPROC_CRASHED);
	ck_assert_uint_eq(res.attempts, 3);
	mproc_results_free(r);
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_unnamed_function_refused_at_submission)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *p = open_mpi(2, NULL);
	/* An address no loaded object holds (never called). */
	void *anon = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(anon, MAP_FAILED);
	mproc_task_fn fn = (mproc_task_fn)(uintptr_t)anon;
	struct mproc_results *r = NULL;
	ck_assert_int_eq(mproc_apply(p, fn, NULL, 0, &r), MPROC_EUNNAMED);
	ck_assert_ptr_null(r);
	struct mproc_input in;
	mproc_input_range(&in, 0, 10, 1);
	struct mproc_iter *it = NULL;
	ck_assert_int_eq(mproc_imap(p, fn, &in, 1, &it), MPROC_EUNNAMED);
	ck_assert_ptr_null(it);
	ck_assert_str_eq(mproc_err_name(MPROC_EUNNAMED), "MPROC_EUNNAMED");
	/* A named one still runs. */
	ck_assert_int_eq(mproc_map(p, t_square, &in, 1, &r), 0);
	mproc_results_free(r);
	munmap(anon, 4096);
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_initializer_and_static_initarg_cross)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.initializer = init_copy;
	o.initarg = (void *)&init_value;
	struct mproc_pool *p = open_mpi(2, &o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 8, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_seen, &in, 1, &r), 0);
	for (size_t i = 0; i < 8; i++)
		ck_assert_int_eq(int_of(mproc_results_value(r, i)), 4242);
	mproc_results_free(r);
	close_join_free(p);

	/* initarg on the heap has no name on another rank */
	int64_t *heap = malloc(sizeof *heap);
	ck_assert_ptr_nonnull(heap);
	o.initarg = heap;
	o.processes = 2;
	o.backend = MPROC_BACKEND_MPI;
	ck_assert_int_eq(mproc_pool_open(&p, &o), MPROC_EUNNAMED);
	free(heap);
}
END_TEST

START_TEST(test_mpi_maxtasksperchild_retires_remote_workers)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.maxtasksperchild = 2;
	struct mproc_pool *p = open_mpi(2, &o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 20, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_square, &in, 1, &r), 0);
	for (size_t i = 0; i < 20; i++)
		ck_assert_int_eq(int_of(mproc_results_value(r, i)), (int64_t)(i * i));
	mproc_results_free(r);
	close_join_free(p);
}
END_TEST

START_TEST(test_mpi_terminate_cancels_and_two_pools_live_together)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool *a = open_mpi(2, NULL);
	struct mproc_pool *b = open_mpi(2, NULL);
	struct mproc_input in;
	mproc_input_range(&in, 0, 6, 1);
	struct mproc_async *hang;
	struct mproc_pool_opts unused = {0};
	(void)unused;
	/* Pool a: tasks that never end, then terminate. */
	size_t len;
	const void *arg = pickle_int(5, &len);
	ck_assert_int_eq(mproc_apply_async(a, t_faulty, arg, len, NULL, &hang), 0);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(b, t_square, &in, 1, &r), 0);
	ck_assert_int_eq(int_of(mproc_results_value(r, 5)), 25);
	mproc_results_free(r);
	ck_assert_int_eq(mproc_async_wait(hang, 0.2), -ETIMEDOUT);
	ck_assert_int_eq(mproc_pool_terminate(a), 0);
	const struct mproc_results *hr;
	ck_assert_int_eq(mproc_async_get(hang, -1, &hr), MPROC_ERAISED);
	struct mproc_result res;
	ck_assert_int_eq(mproc_results_get(hr, 0, &res), 0);
	ck_assert_int_eq(res.status, MPROC_CANCELLED);
	mproc_async_free(hang);
	ck_assert_int_eq(mproc_pool_join(a), 0);
	mproc_pool_free(a);
	/* b goes on after a is gone. */
	ck_assert_int_eq(mproc_map(b, t_square, &in, 2, &r), 0);
	ck_assert_int_eq(int_of(mproc_results_value(r, 4)), 16);
	mproc_results_free(r);
	close_join_free(b);
}
END_TEST

START_TEST(test_mpi_halt_stops_pulling_input)
{
	SKIP_WITHOUT_MPI();
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.halt_failures = 1;
	struct mproc_pool *p = open_mpi(2, &o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100000, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_fail_on_5, &in, 1, &r), MPROC_EHALTED);
	ck_assert_uint_lt(mproc_results_count(r), 100000);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	ck_assert(st.halted);
	ck_assert_int_eq(mproc_pool_terminate(p), 0);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mpi");
	TCase *tc = tcase_create("mpi");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mpi_workers_run_on_other_ranks);
	tcase_add_test(tc, test_mpi_default_processes_is_every_agents_cpus);
	tcase_add_test(tc, test_mpi_apply_map_starmap_exact_and_in_order);
	tcase_add_test(tc, test_mpi_starmap_passes_tuples);
	tcase_add_test(tc, test_mpi_imap_in_order_and_unordered_once_each);
	tcase_add_test(tc, test_mpi_remote_crash_exit_and_timeout_cost_one_task_each);
	tcase_add_test(tc, test_mpi_retries_run_again_and_count_attempts);
	tcase_add_test(tc, test_mpi_unnamed_function_refused_at_submission);
	tcase_add_test(tc, test_mpi_initializer_and_static_initarg_cross);
	tcase_add_test(tc, test_mpi_maxtasksperchild_retires_remote_workers);
	tcase_add_test(tc, test_mpi_terminate_cancels_and_two_pools_live_together);
	tcase_add_test(tc, test_mpi_halt_stops_pulling_input);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
