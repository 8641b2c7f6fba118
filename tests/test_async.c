/*
 * test_async.c - apply_async and map_async: get and wait with timeouts,
 * ready and successful, the callback or the error callback run once, a
 * handle freed before its result still runs its callback, and a callback
 * that waits on its own pool is told -EDEADLK instead of hanging.
 *
 * Tasks run in workers; every assertion is made in the test process.
 * Each test ends with its pool joined or freed, so no worker outlives it.
 * tests/meson.build runs the suite again with the fork server
 * (async-forkserver) and on the threads backend (async-threads).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "mproc.h"
#include "testutil.h"

/* ---- get, wait, ready, successful ------------------------------------ */

START_TEST(test_async_get_timeout_then_result)
{
	struct mproc_pool *p = open_pool(1);
	size_t n;
	const void *arg = pickle_int(300, &n);
	struct mproc_async *a;
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_apply_async(p, t_sleep, arg, n, NULL, &a), 0);
	ck_assert(!mproc_async_ready(a));
	ck_assert_int_eq(mproc_async_successful(a), MPROC_ENOTREADY);
	ck_assert_int_eq(mproc_async_get(a, 0.05, &r), -ETIMEDOUT);
	ck_assert_int_eq(mproc_async_wait(a, 0.01), -ETIMEDOUT);
	ck_assert_int_eq(mproc_async_get(a, 10, &r), 0);
	ck_assert(mproc_async_ready(a));
	ck_assert_int_eq(mproc_async_successful(a), 1);
	ck_assert_int_eq(int_of(item(r, 0).value), 300);
	mproc_async_free(a);
	finish_pool(p);
}
END_TEST

/* ---- callbacks ------------------------------------------------------- */

struct cb_record {
	int calls, error_calls;
	size_t count, failed;
	int64_t first;
};

static void on_done(void *cookie, const struct mproc_results *res)
{
	struct cb_record *rec = cookie;
	rec->calls++;
	rec->count = mproc_results_count(res);
	rec->failed = mproc_results_failed(res);
	if (mproc_results_count(res) && item(res, 0).value)
		mproc_value_int(item(res, 0).value, &rec->first);
}

static void on_error(void *cookie, const struct mproc_results *res)
{
	struct cb_record *rec = cookie;
	rec->error_calls++;
	rec->count = mproc_results_count(res);
	rec->failed = mproc_results_failed(res);
}

START_TEST(test_async_map_runs_callback_once)
{
	struct mproc_pool *p = open_pool(2);
	struct cb_record rec = {0};
	struct mproc_callbacks cb = {on_done, on_error, &rec};
	struct mproc_input in;
	mproc_input_range(&in, 3, 13, 1);
	struct mproc_async *a;
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_map_async(p, t_square, &in, 0, &cb, &a), 0);
	ck_assert_int_eq(mproc_async_get(a, -1, &r), 0);
	ck_assert_int_eq(rec.calls, 1);
	ck_assert_int_eq(rec.error_calls, 0);
	ck_assert_uint_eq(rec.count, 10);
	ck_assert_int_eq(rec.first, 9);
	mproc_async_free(a);
	finish_pool(p);
}
END_TEST

START_TEST(test_async_error_callback_on_raise)
{
	struct mproc_pool *p = open_pool(2);
	struct cb_record rec = {0};
	struct mproc_callbacks cb = {on_done, on_error, &rec};
	struct mproc_input in;
	mproc_input_range(&in, 0, 8, 1);
	struct mproc_async *a;
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_map_async(p, t_fail_on_5, &in, 2, &cb, &a), 0);
	ck_assert_int_eq(mproc_async_get(a, -1, &r), MPROC_ERAISED);
	ck_assert_int_eq(rec.calls, 0);
	ck_assert_int_eq(rec.error_calls, 1);
	ck_assert_uint_eq(rec.failed, 1);
	ck_assert_int_eq(mproc_async_successful(a), 0);
	mproc_async_free(a);
	finish_pool(p);
}
END_TEST

START_TEST(test_async_freed_early_still_runs_callback)
{
	struct mproc_pool *p = open_pool(1);
	struct cb_record rec = {0};
	struct mproc_callbacks cb = {on_done, on_error, &rec};
	size_t n;
	const void *arg = pickle_int(20, &n);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(p, t_sleep, arg, n, &cb, &a), 0);
	mproc_async_free(a);
	mproc_pool_close(p);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	ck_assert_int_eq(rec.calls, 1);
	mproc_pool_free(p);
}
END_TEST

struct deadlock_probe {
	struct mproc_pool *pool;
	int wait_rc, join_rc, terminate_rc, apply_rc;
};

static void on_done_waits(void *cookie, const struct mproc_results *res)
{
	(void)res;
	struct deadlock_probe *d = cookie;
	struct mproc_async *a = NULL;
	d->apply_rc = mproc_apply_async(d->pool, t_sleep, NULL, 0, NULL, &a);
	d->wait_rc = a ? mproc_async_wait(a, -1) : -1;
	mproc_async_free(a);
	d->join_rc = mproc_pool_join(d->pool);
	d->terminate_rc = mproc_pool_terminate(d->pool);
}

START_TEST(test_async_callback_waiting_on_its_pool_is_edeadlk)
{
	struct mproc_pool *p = open_pool(1);
	struct deadlock_probe d = {p, 1, 1, 1, 1};
	struct mproc_callbacks cb = {on_done_waits, NULL, &d};
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(p, t_identity, NULL, 0, &cb, &a), 0);
	ck_assert_int_eq(mproc_async_wait(a, -1), 0);
	ck_assert_int_eq(d.apply_rc, 0);
	ck_assert_int_eq(d.wait_rc, -EDEADLK);
	ck_assert_int_eq(d.join_rc, MPROC_ERUNNING);
	ck_assert_int_eq(d.terminate_rc, -EDEADLK);
	mproc_async_free(a);
	finish_pool(p);
}
END_TEST

/* No task waits for a busy worker while another is idle: one long task
 * first, then 40 of 10 ms on four workers; the quick ones are all done
 * long before the long one (Python's Pool(4): 0.15 s; the greedy schedule
 * 0.14 s). */
START_TEST(test_async_quick_tasks_never_wait_behind_a_long_one)
{
	struct mproc_pool *p = open_pool(4);
	size_t len;
	const void *arg = pickle_int(1500, &len);
	struct mproc_async *slow, *quick[40];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(mproc_apply_async(p, t_sleep, arg, len, NULL, &slow), 0);
	for (int i = 0; i < 40; i++) {
		arg = pickle_int(10, &len);
		ck_assert_int_eq(mproc_apply_async(p, t_sleep, arg, len, NULL,
		                                   &quick[i]), 0);
	}
	for (int i = 0; i < 40; i++) {
		const struct mproc_results *r;
		ck_assert_int_eq(mproc_async_get(quick[i], -1, &r), 0);
		ck_assert_int_eq(int_of(mproc_results_value(r, 0)), 10);
		mproc_async_free(quick[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) +
	           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(s < 0.75, "the last quick task after %.3f s", s);
	ck_assert(!mproc_async_ready(slow));
	mproc_async_free(slow);
	finish_pool(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("async");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_async_get_timeout_then_result);
	tcase_add_test(tc, test_async_quick_tasks_never_wait_behind_a_long_one);
	tcase_add_test(tc, test_async_map_runs_callback_once);
	tcase_add_test(tc, test_async_error_callback_on_raise);
	tcase_add_test(tc, test_async_freed_early_still_runs_callback);
	tcase_add_test(tc, test_async_callback_waiting_on_its_pool_is_edeadlk);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
