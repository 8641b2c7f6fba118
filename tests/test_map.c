/*
 * test_map.c - the blocking calls: apply, map and starmap give every
 * result, in input order, with the task's value or its exception; map
 * with any chunksize, over generators of unknown length and inputs that
 * fail part way.
 *
 * Tasks run in workers; every assertion is made in the test process.
 * Each test ends with its pool joined or freed, so no worker outlives it.
 * tests/meson.build runs the suite again with the fork server
 * (map-forkserver) and on the threads backend (map-threads).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "testutil.h"

/* ---- tasks (run in workers) ------------------------------------------ */

static int t_errno(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return -ENOENT;
}

static int t_nothing(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

static int t_add(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const struct mproc_value *a, *b;
	int64_t x, y;
	if (mproc_value_item(arg, 0, &a) < 0 || mproc_value_item(arg, 1, &b) < 0 ||
	    mproc_value_int(a, &x) < 0 || mproc_value_int(b, &y) < 0)
		return mproc_raise(ret, "TypeError", "expected (int, int)");
	return mproc_write_int(ret, x + y);
}

/* ---- apply ----------------------------------------------------------- */

START_TEST(test_map_apply_returns_task_value)
{
	struct mproc_pool *p = open_pool(2);
	size_t n;
	const void *arg = pickle_int(7, &n);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_square, arg, n, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 1);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	ck_assert_int_eq(int_of(item(r, 0).value), 49);
	ck_assert_uint_eq(item(r, 0).attempts, 1);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_apply_null_arg_passes_none)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_identity, NULL, 0, &r), 0);
	ck_assert(mproc_value_is_none(item(r, 0).value));
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_apply_reads_python_pickle)
{
	/* pickle.dumps((1, 'a'), protocol=2) */
	static const char py2[] = "\x80\x02K\x01X\x01\x00\x00\x00" "a\x86q\x00.";
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_identity, py2, sizeof py2 - 1, &r), 0);
	const struct mproc_value *v = item(r, 0).value, *s;
	size_t len;
	const char *str;
	ck_assert_int_eq(mproc_value_type(v), MPROC_TUPLE);
	ck_assert_int_eq(mproc_value_item(v, 1, &s), 0);
	ck_assert_int_eq(mproc_value_str(s, &str, &len), 0);
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(str[0], 'a');
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_apply_raise_gives_type_and_message)
{
	struct mproc_pool *p = open_pool(1);
	size_t n;
	const void *arg = pickle_int(5, &n);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_fail_on_5, arg, n, &r), MPROC_ERAISED);
	ck_assert_int_eq(item(r, 0).status, MPROC_RAISED);
	ck_assert_str_eq(item(r, 0).error->type, "ValueError");
	ck_assert_str_eq(item(r, 0).error->msg, "bad input 5");
	ck_assert_ptr_null(item(r, 0).value);
	ck_assert_ptr_null(mproc_results_value(r, 0));
	ck_assert_ptr_null(mproc_results_value(NULL, 0));
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	mproc_results_free(r);
	/* The worker goes on. */
	arg = pickle_int(4, &n);
	ck_assert_int_eq(mproc_apply(p, t_fail_on_5, arg, n, &r), 0);
	ck_assert_int_eq(int_of(item(r, 0).value), 4);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_task_error_code_raises_oserror)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_errno, NULL, 0, &r), MPROC_ERAISED);
	ck_assert_str_eq(item(r, 0).error->type, "OSError");
	ck_assert_ptr_nonnull(strstr(item(r, 0).error->msg, "ENOENT"));
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_task_writing_nothing_returns_none)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_nothing, NULL, 0, &r), 0);
	ck_assert(mproc_value_is_none(item(r, 0).value));
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_malformed_argument_raises_unpickling_error)
{
	static const char bad[] = "\x80\x05\x63os\nsystem\n.";
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_identity, bad, sizeof bad - 1, &r),
	                 MPROC_ERAISED);
	ck_assert_str_eq(item(r, 0).error->type, "UnpicklingError");
	ck_assert_ptr_nonnull(strstr(item(r, 0).error->msg, "GLOBAL"));
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

/* ---- map ------------------------------------------------------------- */

START_TEST(test_map_returns_every_result_in_order)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 1000, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_square, &in, 0, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 1000);
	ck_assert_uint_eq(mproc_results_failed(r), 0);
	for (size_t i = 0; i < 1000; i++) {
		ck_assert_uint_eq(item(r, i).index, i);
		ck_assert_int_eq(int_of(item(r, i).value), (int64_t)(i * i));
		ck_assert_ptr_null(item(r, i).error);
	}
	/* A map keeps one word per input; the rest is made when read. */
	ck_assert_ptr_eq(mproc_results_value(r, 7), item(r, 7).value);
	ck_assert_ptr_null(mproc_results_value(r, 1000));
	struct mproc_result out = {.index = 99};
	ck_assert_int_eq(mproc_results_get(r, 1000, &out), -EINVAL);
	ck_assert_uint_eq(out.index, 99);
	ck_assert_int_eq(mproc_results_get(NULL, 0, &out), -EINVAL);
	ck_assert_int_eq(mproc_results_get(r, 0, NULL), -EINVAL);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_with_chunksize_matches_without)
{
	struct mproc_pool *p = open_pool(3);
	struct mproc_input in;
	for (size_t cs = 1; cs <= 64; cs *= 4) {
		mproc_input_range(&in, -50, 50, 3);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_map(p, t_square, &in, cs, &r), 0);
		ck_assert_uint_eq(mproc_results_count(r), 34);
		for (size_t i = 0; i < mproc_results_count(r); i++) {
			int64_t x = -50 + 3 * (int64_t)i;
			ck_assert_int_eq(int_of(item(r, i).value), x * x);
		}
		mproc_results_free(r);
	}
	finish_pool(p);
}
END_TEST

START_TEST(test_map_no_failfast_returns_all_results)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 10, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_fail_on_5, &in, 1, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_count(r), 10);
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	for (size_t i = 0; i < 10; i++)
		ck_assert_int_eq(item(r, i).status, i == 5 ? MPROC_RAISED : MPROC_OK);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_empty_input_gives_no_results)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 0, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_square, &in, 0, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 0);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_reads_generator_of_unknown_length)
{
	struct mproc_pool *p = open_pool(2);
	size_t limit = 321;
	struct mproc_input in;
	mproc_input_fn_init(&in, gen_index_below, &limit);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 321);
	ck_assert_int_eq(int_of(item(r, 320).value), 320);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

static int gen_known_len_fail_at_7(void *cookie, size_t index,
                                   struct mproc_writer *w)
{
	return gen_fail_at_7(cookie, index, w);
}

START_TEST(test_map_known_length_failure_keeps_earlier_results)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_fn_init(&in, gen_known_len_fail_at_7, NULL);
	in.has_len = true;
	in.len = 20;
	struct mproc_results *r = NULL;
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 2, &r), MPROC_EINPUT);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(mproc_results_count(r), 7);
	for (size_t i = 0; i < 7; i++)
		ck_assert_int_eq(int_of(item(r, i).value), (int64_t)i);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_generator_failure_is_einput)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_fn_init(&in, gen_fail_at_7, NULL);
	struct mproc_results *r = (void *)1;
	/* map reads an input of unknown length whole before it starts, as
	 * Python does: the failure stops it before any task ran. */
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), MPROC_EINPUT);
	ck_assert_ptr_null(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_small_input_spreads_over_workers)
{
	/* Six tasks at chunksize 1 on two workers: both take a share, even
	 * though one worker's queue could hold all six. */
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 6, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_worker_id, &in, 1, &r), 0);
	int64_t first = int_of(item(r, 0).value);
	int others = 0;
	for (size_t i = 1; i < mproc_results_count(r); i++)
		others += int_of(item(r, i).value) != first;
	ck_assert_int_ge(others, 1);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

/* ---- starmap --------------------------------------------------------- */

static int write_pair(struct mproc_writer *w, const void *el)
{
	const int64_t *pair = el;
	mproc_write_tuple_begin(w);
	mproc_write_int(w, pair[0]);
	mproc_write_int(w, pair[1]);
	return mproc_write_tuple_end(w);
}

START_TEST(test_map_starmap_passes_tuples)
{
	struct mproc_pool *p = open_pool(2);
	int64_t pairs[10][2];
	for (int i = 0; i < 10; i++) {
		pairs[i][0] = i;
		pairs[i][1] = 100 * i;
	}
	struct mproc_input in;
	mproc_input_array(&in, pairs, 10, sizeof pairs[0], write_pair);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_starmap(p, t_add, &in, 3, &r), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(int_of(item(r, i).value), 101 * i);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_map_starmap_non_tuple_item_raises_type_error)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_input in;
	mproc_input_range(&in, 0, 2, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_starmap(p, t_add, &in, 0, &r), MPROC_ERAISED);
	ck_assert_str_eq(item(r, 0).error->type, "TypeError");
	ck_assert_uint_eq(mproc_results_failed(r), 2);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("map");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_map_apply_returns_task_value);
	tcase_add_test(tc, test_map_apply_null_arg_passes_none);
	tcase_add_test(tc, test_map_apply_reads_python_pickle);
	tcase_add_test(tc, test_map_apply_raise_gives_type_and_message);
	tcase_add_test(tc, test_map_task_error_code_raises_oserror);
	tcase_add_test(tc, test_map_task_writing_nothing_returns_none);
	tcase_add_test(tc, test_map_malformed_argument_raises_unpickling_error);
	tcase_add_test(tc, test_map_returns_every_result_in_order);
	tcase_add_test(tc, test_map_with_chunksize_matches_without);
	tcase_add_test(tc, test_map_no_failfast_returns_all_results);
	tcase_add_test(tc, test_map_empty_input_gives_no_results);
	tcase_add_test(tc, test_map_reads_generator_of_unknown_length);
	tcase_add_test(tc, test_map_generator_failure_is_einput);
	tcase_add_test(tc, test_map_known_length_failure_keeps_earlier_results);
	tcase_add_test(tc, test_map_starmap_passes_tuples);
	tcase_add_test(tc, test_map_starmap_non_tuple_item_raises_type_error);
	tcase_add_test(tc, test_map_small_input_spreads_over_workers);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
