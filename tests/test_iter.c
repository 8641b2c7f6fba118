/*
 * test_iter.c - imap and imap_unordered: results one at a time, in input
 * order or each index once; next with a timeout, or polled with none; an
 * iterator freed early leaves its pool usable, and join ends an iterator
 * whose consumer stopped reading.
 *
 * Tasks run in workers; every assertion is made in the test process.
 * Each test ends with its pool joined or freed, so no worker outlives it.
 * tests/meson.build runs the suite again with the fork server
 * (iter-forkserver) and on the threads backend (iter-threads).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "testutil.h"

/* ---- tasks (run in workers) ------------------------------------------ */

/* Index-dependent delay so that completion order differs from input order. */
static int t_jitter(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	sleep_ms((x * 7) % 5);
	return mproc_write_int(ret, x);
}

/* Item 0 sleeps 400 ms; the others return their index, or (with a
 * negative index) 128 KiB of bytes. */
#define BIG_RESULT (128u * 1024u)
static int t_slow_head(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	if (x == 0) {
		sleep_ms(400);
		return mproc_write_int(ret, 0);
	}
	if (x > 0)
		return mproc_write_int(ret, x);
	char *big = malloc(BIG_RESULT); /* threads too: one each */
	if (!big)
		return -ENOMEM;
	memset(big, (int)(-x & 0x7f), BIG_RESULT);
	int rc = mproc_write_bytes(ret, big, BIG_RESULT);
	free(big);
	return rc;
}

/* Results done while the consumer waits on item 0, after 0.3 s of it. */
static uint64_t done_behind_slow_head(struct mproc_pool *p, int64_t step,
                                      int64_t n, struct mproc_iter **it)
{
	struct mproc_input in;
	mproc_input_range(&in, 0, step * n, step);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_slow_head, &in, 1, it), 0);
	ck_assert_int_eq(mproc_iter_next(*it, 0.3, &r), -ETIMEDOUT);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	return st.tasks_done;
}

/* ---- imap and imap_unordered ----------------------------------------- */

START_TEST(test_iter_imap_yields_in_input_order)
{
	struct mproc_pool *p = open_pool(3);
	struct mproc_input in;
	mproc_input_range(&in, 0, 200, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_jitter, &in, 1, &it), 0);
	int64_t expect = 0;
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		ck_assert_uint_eq(r->index, (size_t)expect);
		ck_assert_int_eq(int_of(r->value), expect);
		expect++;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(expect, 200);
	ck_assert_int_eq(mproc_iter_next(it, -1, &r), 0);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_imap_chunked_yields_in_input_order)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 1000, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_square, &in, 37, &it), 0);
	int64_t expect = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		ck_assert_int_eq(int_of(r->value), expect * expect);
		expect++;
	}
	ck_assert_int_eq(expect, 1000);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_unordered_yields_each_index_once)
{
	struct mproc_pool *p = open_pool(3);
	struct mproc_input in;
	mproc_input_range(&in, 0, 500, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	static char seen[500];
	memset(seen, 0, sizeof seen);
	ck_assert_int_eq(mproc_imap_unordered(p, t_jitter, &in, 4, &it), 0);
	int count = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		ck_assert_uint_lt(r->index, 500);
		ck_assert_int_eq(seen[r->index], 0);
		ck_assert_int_eq(int_of(r->value), (int64_t)r->index);
		seen[r->index] = 1;
		count++;
	}
	ck_assert_int_eq(count, 500);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_empty_input_is_done_at_once)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_input in;
	mproc_input_range(&in, 5, 5, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap_unordered(p, t_identity, &in, 1, &it), 0);
	ck_assert_int_eq(mproc_iter_next(it, 1, &r), 0);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_generator_failure_after_results)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_fn_init(&in, gen_fail_at_7, NULL);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 1, &it), 0);
	int got = 0, rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1)
		ck_assert_int_eq(int_of(r->value), got++);
	ck_assert_int_eq(got, 7);
	ck_assert_int_eq(rc, MPROC_EINPUT);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

/* ---- next: timeouts and polling -------------------------------------- */

/* An ordered iterator whose next result is slow: the other workers run
 * on far past the usual window (256 here) while the results are small. */
START_TEST(test_iter_ordered_runs_on_past_a_slow_head)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_iter *it;
	uint64_t done = done_behind_slow_head(p, 1, 3000, &it);
	ck_assert_msg(done >= 1500, "%llu results behind the slow one",
	              (unsigned long long)done);
	const struct mproc_result *r;
	for (int64_t i = 0; i < 3000; i++) {
		ck_assert_int_eq(mproc_iter_next(it, 10, &r), 1);
		ck_assert_int_eq(int_of(r->value), i);
	}
	ck_assert_int_eq(mproc_iter_next(it, 10, &r), 0);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

/* With big results, what waits behind the slow one stays near the usual
 * window: 256 results, plus 8 MiB of them (64 of 128 KiB), plus what was
 * in flight; never the whole input. */
START_TEST(test_iter_big_results_wait_within_a_byte_budget)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_iter *it;
	uint64_t done = done_behind_slow_head(p, -1, 1000, &it);
	ck_assert_msg(done <= 500, "%llu results behind the slow one",
	              (unsigned long long)done);
	const struct mproc_result *r;
	for (int64_t i = 0; i < 1000; i++) {
		ck_assert_int_eq(mproc_iter_next(it, 10, &r), 1);
		ck_assert_uint_eq(r->index, (size_t)i);
		if (i == 0)
			continue;
		const void *b;
		size_t len;
		ck_assert_int_eq(mproc_value_bytes(r->value, &b, &len), 0);
		ck_assert_uint_eq(len, BIG_RESULT);
		ck_assert_int_eq(((const char *)b)[len - 1], (int)(i & 0x7f));
	}
	ck_assert_int_eq(mproc_iter_next(it, 10, &r), 0);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_next_timeout_then_continues)
{
	struct mproc_pool *p = open_pool(1);
	int64_t ms[] = {300, 1};
	struct mproc_input in;
	mproc_input_int64s(&in, ms, 2);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_sleep, &in, 1, &it), 0);
	ck_assert_int_eq(mproc_iter_next(it, 0.02, &r), -ETIMEDOUT);
	ck_assert_int_eq(mproc_iter_next(it, 10, &r), 1);
	ck_assert_int_eq(int_of(r->value), 300);
	ck_assert_int_eq(mproc_iter_next(it, 10, &r), 1);
	ck_assert_int_eq(int_of(r->value), 1);
	ck_assert_int_eq(mproc_iter_next(it, 10, &r), 0);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_polling_with_zero_timeout_makes_progress)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 10, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 1, &it), 0);
	int got = 0;
	for (long spins = 0; got < 10 && spins < 50000000; spins++) {
		int rc = mproc_iter_next(it, 0, &r);
		ck_assert(rc == 1 || rc == -ETIMEDOUT);
		got += rc == 1;
	}
	ck_assert_int_eq(got, 10);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

/* ---- ending an iterator early ---------------------------------------- */

START_TEST(test_iter_freed_early_leaves_pool_usable)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, INT64_MAX, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 1, &it), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(mproc_iter_next(it, -1, &r), 1);
	mproc_iter_free(it);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_apply(p, t_identity, NULL, 0, &res), 0);
	mproc_results_free(res);
	finish_pool(p);
}
END_TEST

START_TEST(test_iter_join_ends_iterator_waiting_for_its_consumer)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100000, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	/* Tasks of a few ms, so that little runs before the join begins. */
	ck_assert_int_eq(mproc_imap(p, t_jitter, &in, 1, &it), 0);
	ck_assert_int_eq(mproc_iter_next(it, -1, &r), 1);
	mproc_pool_close(p);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	/* What was run is still delivered, in order, then the end is told. */
	int64_t expect = 1;
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1)
		ck_assert_int_eq(int_of(r->value), expect++);
	ck_assert_int_eq(rc, MPROC_ECLOSED);
	ck_assert_int_gt(expect, 1);
	/* Join runs on no further than the usual window (256 results and
	 * what was in flight), not as far as the window may stretch. */
	ck_assert_int_lt(expect, 1200);
	mproc_iter_free(it);
	mproc_pool_free(p);
	ck_assert(no_children());
}
END_TEST

/* The window is never sized past the input: a chunksize far beyond a short
 * input costs nothing (it once sized the ring from the chunksize alone). */
START_TEST(test_iter_huge_chunksize_over_a_short_input)
{
	struct mproc_pool *p = open_pool(1);
	for (int shift = 20; shift <= 62; shift += 14) {
		struct mproc_input in;
		mproc_input_range(&in, 0, 100, 1);
		struct mproc_iter *it;
		ck_assert_int_eq(mproc_imap(p, t_identity, &in, (size_t)1 << shift,
		                            &it), 0);
		const struct mproc_result *r;
		int64_t expect = 0;
		int rc;
		while ((rc = mproc_iter_next(it, -1, &r)) == 1)
			ck_assert_int_eq(int_of(r->value), expect++);
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(expect, 100);
		mproc_iter_free(it);
	}
	finish_pool(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("iter");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_iter_huge_chunksize_over_a_short_input);
	tcase_add_test(tc, test_iter_imap_yields_in_input_order);
	tcase_add_test(tc, test_iter_imap_chunked_yields_in_input_order);
	tcase_add_test(tc, test_iter_unordered_yields_each_index_once);
	tcase_add_test(tc, test_iter_next_timeout_then_continues);
	tcase_add_test(tc, test_iter_generator_failure_after_results);
	tcase_add_test(tc, test_iter_empty_input_is_done_at_once);
	tcase_add_test(tc, test_iter_freed_early_leaves_pool_usable);
	tcase_add_test(tc, test_iter_join_ends_iterator_waiting_for_its_consumer);
	tcase_add_test(tc, test_iter_polling_with_zero_timeout_makes_progress);
	tcase_add_test(tc, test_iter_ordered_runs_on_past_a_slow_head);
	tcase_add_test(tc, test_iter_big_results_wait_within_a_byte_budget);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
