/*
 * test_input.c - the input helpers: range() has Python's length, ranges
 * and arrays of every width reach the task as the values they hold, and
 * mproc_input_write lets a generator wrap a helper's input.
 *
 * Tasks run in workers; every assertion is made in the test process.
 * Each test ends with its pool joined or freed, so no worker outlives it.
 * tests/meson.build runs the suite again with the fork server
 * (input-forkserver) and on the threads backend (input-threads).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "mproc.h"
#include "testutil.h"

/* ---- range ----------------------------------------------------------- */

/* in's items, as mproc_input_write writes them, are want[0..n). */
static void expect_items(const struct mproc_input *in, const int64_t *want,
                         size_t n)
{
	ck_assert_uint_eq(in->len, n);
	struct mproc_writer *w;
	struct mproc_decoder *d;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc_decoder_new(&d, NULL), 0);
	for (size_t i = 0; i <= n; i++) {
		mproc_writer_reset(w);
		int rc = mproc_input_write(in, i, w);
		if (i == n) {
			ck_assert_int_eq(rc, 0); /* past the end */
			break;
		}
		ck_assert_int_eq(rc, 1);
		const void *data;
		size_t len;
		const struct mproc_value *v;
		int64_t x;
		ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
		ck_assert_int_eq(mproc_decode(d, data, len, &v), 0);
		ck_assert_int_eq(mproc_value_int(v, &x), 0);
		ck_assert_int_eq(x, want[i]);
	}
	mproc_decoder_free(d);
	mproc_writer_free(w);
}

START_TEST(test_input_range_matches_python)
{
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 10, 3), 0);
	expect_items(&in, (const int64_t[]){0, 3, 6, 9}, 4);
	ck_assert_int_eq(mproc_input_range(&in, 10, 0, -3), 0);
	expect_items(&in, (const int64_t[]){10, 7, 4, 1}, 4);
	ck_assert_int_eq(mproc_input_range(&in, 0, -5, 1), 0);
	expect_items(&in, NULL, 0);
	ck_assert_int_eq(mproc_input_range(&in, INT64_MIN, INT64_MAX, INT64_MAX), 0);
	expect_items(&in, (const int64_t[]){INT64_MIN, -1, INT64_MAX - 1}, 3);
	ck_assert_int_eq(mproc_input_range(&in, 0, 1, 0), -EINVAL);
	ck_assert_int_eq(mproc_input_write(NULL, 0, NULL), -EINVAL);
}
END_TEST

/* ---- ranges and arrays through a pool -------------------------------- */

START_TEST(test_input_ranges_and_arrays_map_to_every_value)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	struct mproc_results *r;
	/* Every int width of the pickle: 1, 2, 4 and 5-8 byte forms. */
	int64_t step = INT64_C(1) << 53;
	mproc_input_range(&in, INT64_MIN + 7, INT64_MAX, step);
	size_t n = in.len;
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(int_of(item(r, i).value),
		                 (int64_t)((uint64_t)(INT64_MIN + 7) +
		                           (uint64_t)i * (uint64_t)step));
	mproc_results_free(r);
	mproc_input_range(&in, -70000, 70000, 13);
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), 0);
	for (size_t i = 0; i < mproc_results_count(r); i++)
		ck_assert_int_eq(int_of(item(r, i).value), -70000 + 13 * (int64_t)i);
	mproc_results_free(r);
	double d[300];
	for (size_t i = 0; i < 300; i++)
		d[i] = (double)i * -0.5;
	mproc_input_doubles(&in, d, 300);
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 7, &r), 0);
	for (size_t i = 0; i < 300; i++) {
		double x;
		ck_assert_int_eq(mproc_value_float(item(r, i).value, &x), 0);
		ck_assert(x == d[i]);
	}
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

/* ---- a helper's input wrapped by a generator ------------------------- */

static int wrap_input(void *cookie, size_t index, struct mproc_writer *w)
{
	return mproc_input_write(cookie, index, w);
}

/* A helper's input wrapped by a generator of unknown length (has_len
 * false, len 0) goes through the generator, not packed by its len. */
START_TEST(test_input_wrapped_range_generator_yields_every_item)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input r, in;
	mproc_input_range(&r, 0, 50, 1);
	ck_assert_int_eq(mproc_input_fn_init(&in, wrap_input, &r), 0);
	struct mproc_iter *it;
	const struct mproc_result *res;
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 4, &it), 0);
	int64_t expect = 0;
	int rc;
	while ((rc = mproc_iter_next(it, -1, &res)) == 1) {
		ck_assert_int_eq(int_of(res->value), expect);
		expect++;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(expect, 50);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

static int gen_from_100(void *cookie, size_t index, struct mproc_writer *w)
{
	(void)cookie;
	return index < 3 ? (mproc_write_int(w, 100 + (int64_t)index) < 0 ? -1 : 1)
	                 : 0;
}

/* An input with a generator is a generator, whatever its reserved block
 * holds; a helper's block that breaks the helper's own rules is refused. */
START_TEST(test_input_generator_ignores_the_reserved_block)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_input in;
	mproc_input_range(&in, 0, 10, 1);  /* a stale helper state... */
	in.fn = gen_from_100;              /* ...under a generator */
	in.has_len = false;
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(int_of(mproc_results_value(r, i)), 100 + i);
	mproc_results_free(r);
	/* A range whose step was zeroed by hand: refused, as
	 * mproc_input_range(0, 10, 0) is. */
	mproc_input_range(&in, 0, 10, 1);
	memset((char *)in.reserved_ + 16, 0, 8);
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), -EINVAL);
	int64_t a[2] = {1, 2};
	mproc_input_int64s(&in, a, 2);
	memset((char *)in.reserved_ + 24, 0, 8); /* its base gone */
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), -EINVAL);
	finish_pool(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("input");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_input_ranges_and_arrays_map_to_every_value);
	tcase_add_test(tc, test_input_wrapped_range_generator_yields_every_item);
	tcase_add_test(tc, test_input_range_matches_python);
	tcase_add_test(tc, test_input_generator_ignores_the_reserved_block);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
