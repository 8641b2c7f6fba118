/*
 * test_concurrency.c - several of the program's threads driving one pool:
 * each gets every one of its results once, a terminate from one thread
 * ends another's call promptly, and a map of unknown length runs beside
 * an imap in another thread.
 *
 * Tasks run in workers; every assertion is made in the test process (the
 * threads only count what they got). Each test ends with its pool joined
 * or freed, so no worker outlives it. tests/meson.build runs the suite
 * again with the fork server (concurrency-forkserver) and on the threads
 * backend (concurrency-threads); .ci/run runs it under ThreadSanitizer.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "mproc.h"
#include "testutil.h"

/* ---- several threads, one pool --------------------------------------- */

struct thread_arg {
	struct mproc_pool *pool;
	int which;
	int ok;
};

static void *thread_body(void *p)
{
	struct thread_arg *ta = p;
	ta->ok = 0;
	if (ta->which % 2 == 0) {
		struct mproc_async *a[50];
		for (int i = 0; i < 50; i++) {
			size_t n;
			struct mproc_writer *w;
			const void *d;
			mproc_writer_new(&w, 5);
			mproc_write_int(w, i + 1000 * ta->which);
			mproc_writer_finish(w, &d, &n);
			if (mproc_apply_async(ta->pool, t_square, d, n, NULL, &a[i]) < 0)
				a[i] = NULL;
			mproc_writer_free(w);
		}
		for (int i = 0; i < 50; i++) {
			const struct mproc_results *r;
			int64_t v, x = i + 1000 * ta->which;
			if (a[i] && mproc_async_get(a[i], -1, &r) == 0 &&
			    mproc_value_int(item(r, 0).value, &v) == 0 && v == x * x)
				ta->ok++;
			mproc_async_free(a[i]);
		}
	} else {
		struct mproc_input in;
		mproc_input_range(&in, 0, 300, 1);
		struct mproc_iter *it;
		const struct mproc_result *r;
		if (mproc_imap(ta->pool, t_identity, &in, 1, &it) == 0) {
			int64_t v;
			while (mproc_iter_next(it, -1, &r) == 1)
				if (mproc_value_int(r->value, &v) == 0 &&
				    v == (int64_t)r->index && v == ta->ok)
					ta->ok++;
			mproc_iter_free(it);
		}
	}
	return NULL;
}

START_TEST(test_concurrency_four_threads_get_every_result_once)
{
	struct mproc_pool *p = open_pool(2);
	pthread_t th[4];
	struct thread_arg ta[4];
	for (int i = 0; i < 4; i++) {
		ta[i] = (struct thread_arg){p, i, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, thread_body, &ta[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(ta[i].ok, i % 2 == 0 ? 50 : 300);
	}
	finish_pool(p);
}
END_TEST

/* ---- one thread ends what another drives ----------------------------- */

static void *apply_long(void *arg)
{
	struct mproc_pool *p = arg;
	struct mproc_results *r = NULL;
	size_t n;
	struct mproc_writer *w;
	const void *d;
	mproc_writer_new(&w, 5);
	mproc_write_int(w, test_threads() ? 700 : 30000);
	mproc_writer_finish(w, &d, &n);
	mproc_apply(p, t_sleep, d, n, &r);
	mproc_writer_free(w);
	mproc_results_free(r);
	return NULL;
}

START_TEST(test_concurrency_terminate_while_another_thread_drives_is_prompt)
{
	struct mproc_pool *p = open_pool(1);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, apply_long, p), 0);
	sleep_ms(200);
	time_t t0 = time(NULL);
	ck_assert_int_eq(mproc_pool_terminate(p), 0);
	pthread_join(th, NULL);
	ck_assert_int_le(time(NULL) - t0, 2);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
	ck_assert(no_children());
}
END_TEST

/* ---- a map beside an imap -------------------------------------------- */

static int gen_lists(void *cookie, size_t i, struct mproc_writer *w)
{
	(void)cookie;
	if (i >= 500)
		return 0;
	mproc_write_list_begin(w);
	for (int k = 0; k < 20; k++)
		mproc_write_int(w, (int64_t)i * 1000 + k);
	return mproc_write_list_end(w) < 0 ? -1 : 1;
}

static _Atomic int stop_imap;

static void *imap_loop(void *arg)
{
	struct mproc_pool *p = arg;
	while (!stop_imap) {
		struct mproc_input in;
		mproc_input_fn_init(&in, gen_lists, NULL);
		struct mproc_iter *it;
		const struct mproc_result *r;
		if (mproc_imap(p, t_identity, &in, 4, &it) < 0)
			break;
		while (mproc_iter_next(it, -1, &r) == 1)
			;
		mproc_iter_free(it);
	}
	return NULL;
}

START_TEST(test_concurrency_map_of_unknown_length_beside_an_imap_thread)
{
	struct mproc_pool *p = open_pool(2);
	pthread_t th;
	stop_imap = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, imap_loop, p), 0);
	size_t limit = 2000;
	for (int rep = 0; rep < 50; rep++) {
		struct mproc_input in;
		mproc_input_fn_init(&in, gen_index_below, &limit);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), 0);
		ck_assert_uint_eq(mproc_results_count(r), 2000);
		ck_assert_int_eq(int_of(item(r, 1999).value), 1999);
		mproc_results_free(r);
	}
	stop_imap = 1;
	pthread_join(th, NULL);
	finish_pool(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("concurrency");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_concurrency_four_threads_get_every_result_once);
	tcase_add_test(tc, test_concurrency_terminate_while_another_thread_drives_is_prompt);
	tcase_add_test(tc, test_concurrency_map_of_unknown_length_beside_an_imap_thread);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
