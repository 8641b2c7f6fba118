/*
 * test_pool.c - the process pool's Python API: apply, map, starmap, imap,
 * imap_unordered, async results, callbacks and the lifecycle, including
 * the cases of CPython's _TestPool that apply to C.
 *
 * Tasks run in forked workers; every assertion is made in the test process.
 * Each test ends with its pool joined or freed, so no worker outlives it.
 *
 * The same suite runs against the threads backend (MPROC_TEST_START=threads,
 * test "pool-threads"). Where threads differ by design (a crash is the
 * program's, a running task cannot be killed, the initializer writes the
 * program's memory) the test asserts what the threads backend promises
 * instead; docs/threads.md lists those differences.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"


/* ---- tasks (run in workers) ---------------------------------------- */

static int t_identity(const struct mproc_value *arg, struct mproc_writer *ret)
{
	return mproc_write_value(ret, arg);
}

static int t_square(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x;
	if (mproc_value_int(arg, &x) < 0)
		return mproc_raise(ret, "TypeError", "expected int, got %s",
		                   mproc_type_name(mproc_value_type(arg)));
	return mproc_write_int(ret, x * x);
}

static int t_fail_on_5(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	if (x == 5)
		return mproc_raise(ret, "ValueError", "bad input %lld", (long long)x);
	return mproc_write_int(ret, x);
}

static int t_errno(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return -ENOENT;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sleeps `arg` milliseconds, returns arg. */
static int t_sleep(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t ms = 0;
	mproc_value_int(arg, &ms);
	sleep_ms(ms);
	return mproc_write_int(ret, ms);
}

/* Index-dependent delay so that completion order differs from input order. */
static int t_jitter(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	sleep_ms((x * 7) % 5);
	return mproc_write_int(ret, x);
}

/* The worker's identity: its thread id (a process's is its pid). */
static int t_getpid(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, gettid());
}

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

static int t_add(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const struct mproc_value *a, *b;
	int64_t x, y;
	if (mproc_value_item(arg, 0, &a) < 0 || mproc_value_item(arg, 1, &b) < 0 ||
	    mproc_value_int(a, &x) < 0 || mproc_value_int(b, &y) < 0)
		return mproc_raise(ret, "TypeError", "expected (int, int)");
	return mproc_write_int(ret, x + y);
}

static int t_segv_on_3(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	if (x == 3)
		raise(SIGSEGV);
	return mproc_write_int(ret, x);
}

static int t_nothing(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

/* ---- helpers (test process) --------------------------------------- */

static struct mproc_pool *open_pool(unsigned n)
{
	struct mproc_pool_opts o = {.processes = n};
	struct mproc_pool *p = NULL;
	ck_assert_int_eq(open_with_start(&p, &o), 0);
	return p;
}

static void finish_pool(struct mproc_pool *p)
{
	ck_assert_int_eq(mproc_pool_close(p), 0);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
}

static int64_t int_of(const struct mproc_value *v)
{
	int64_t x = -999;
	ck_assert_int_eq(mproc_value_int(v, &x), 0);
	return x;
}

/* Pickle of one int in a static writer (valid until the next call). */
static const void *pickle_int(int64_t x, size_t *len)
{
	static struct mproc_writer *w;
	if (!w)
		ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_int(w, x), 0);
	const void *p;
	ck_assert_int_eq(mproc_writer_finish(w, &p, len), 0);
	return p;
}

/* ---- apply ------------------------------------------------------------ */

START_TEST(test_pool_apply_returns_task_value)
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

START_TEST(test_pool_apply_null_arg_passes_none)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_identity, NULL, 0, &r), 0);
	ck_assert(mproc_value_is_none(item(r, 0).value));
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_pool_apply_reads_python_pickle)
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

START_TEST(test_pool_apply_raise_gives_type_and_message)
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

START_TEST(test_pool_task_error_code_raises_oserror)
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

START_TEST(test_pool_task_writing_nothing_returns_none)
{
	struct mproc_pool *p = open_pool(1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_nothing, NULL, 0, &r), 0);
	ck_assert(mproc_value_is_none(item(r, 0).value));
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_pool_malformed_argument_raises_unpickling_error)
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

/* ---- map and starmap ------------------------------------------------ */

START_TEST(test_pool_map_returns_every_result_in_order)
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

START_TEST(test_pool_map_with_chunksize_matches_without)
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

START_TEST(test_pool_map_of_ranges_and_arrays_returns_every_value)
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

START_TEST(test_pool_map_no_failfast_returns_all_results)
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

START_TEST(test_pool_map_empty_input_gives_no_results)
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

static int gen_squares_then_stop(void *cookie, size_t index,
                                 struct mproc_writer *w)
{
	size_t *limit = cookie;
	if (index >= *limit)
		return 0;
	return mproc_write_int(w, (int64_t)index) < 0 ? -1 : 1;
}

START_TEST(test_pool_map_reads_generator_of_unknown_length)
{
	struct mproc_pool *p = open_pool(2);
	size_t limit = 321;
	struct mproc_input in;
	mproc_input_fn_init(&in, gen_squares_then_stop, &limit);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_identity, &in, 0, &r), 0);
	ck_assert_uint_eq(mproc_results_count(r), 321);
	ck_assert_int_eq(int_of(item(r, 320).value), 320);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

static int gen_fail_at_7(void *cookie, size_t index, struct mproc_writer *w)
{
	(void)cookie;
	if (index == 7)
		return -EIO;
	return mproc_write_int(w, (int64_t)index) < 0 ? -1 : 1;
}

static int gen_known_len_fail_at_7(void *cookie, size_t index,
                                   struct mproc_writer *w)
{
	return gen_fail_at_7(cookie, index, w);
}

START_TEST(test_pool_map_known_length_failure_keeps_earlier_results)
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

START_TEST(test_pool_map_generator_failure_is_einput)
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

static int write_pair(struct mproc_writer *w, const void *el)
{
	const int64_t *pair = el;
	mproc_write_tuple_begin(w);
	mproc_write_int(w, pair[0]);
	mproc_write_int(w, pair[1]);
	return mproc_write_tuple_end(w);
}

START_TEST(test_pool_starmap_passes_tuples)
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

START_TEST(test_pool_starmap_non_tuple_item_raises_type_error)
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

/* ---- async results -------------------------------------------------- */

START_TEST(test_pool_async_get_timeout_then_result)
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

START_TEST(test_pool_map_async_runs_callback_once)
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

START_TEST(test_pool_async_error_callback_on_raise)
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

START_TEST(test_pool_async_freed_early_still_runs_callback)
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

/* ---- imap --------------------------------------------------------------- */

START_TEST(test_pool_imap_yields_in_input_order)
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

START_TEST(test_pool_imap_chunked_yields_in_input_order)
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

START_TEST(test_pool_imap_unordered_yields_each_index_once)
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

START_TEST(test_pool_imap_next_timeout_then_continues)
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

START_TEST(test_pool_imap_generator_failure_after_results)
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

static int wrap_input(void *cookie, size_t index, struct mproc_writer *w)
{
	return mproc_input_write(cookie, index, w);
}

/* A helper's input wrapped by a generator of unknown length (has_len
 * false, len 0) goes through the generator, not packed by its len. */
START_TEST(test_pool_imap_wrapped_range_generator_yields_every_item)
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

START_TEST(test_pool_imap_empty_input_is_done_at_once)
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

START_TEST(test_pool_imap_freed_early_leaves_pool_usable)
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

START_TEST(test_pool_join_ends_iterator_waiting_for_its_consumer)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100000, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 1, &it), 0);
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
	ck_assert_int_lt(expect, 100000);
	mproc_iter_free(it);
	mproc_pool_free(p);
	ck_assert(no_children());
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

START_TEST(test_pool_callback_waiting_on_its_pool_is_edeadlk)
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

/* ---- workers ----------------------------------------------------------- */

START_TEST(test_pool_initializer_runs_in_each_worker)
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

START_TEST(test_pool_maxtasksperchild_replaces_workers)
{
	struct mproc_pool_opts o = {.processes = 2, .maxtasksperchild = 2};
	struct mproc_pool *p;
	ck_assert_int_eq(open_with_start(&p, &o), 0);
	struct mproc_input in;
	mproc_input_range(&in, 0, 20, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_getpid, &in, 1, &r), 0);
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

START_TEST(test_pool_workers_ignore_sigint_and_are_named)
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

START_TEST(test_pool_crashed_worker_is_replaced)
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

/* ---- lifecycle ------------------------------------------------------ */

START_TEST(test_pool_join_before_close_is_erunning)
{
	struct mproc_pool *p = open_pool(1);
	ck_assert_int_eq(mproc_pool_join(p), MPROC_ERUNNING);
	finish_pool(p);
}
END_TEST

START_TEST(test_pool_submit_after_close_is_eclosed)
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

START_TEST(test_pool_terminate_cancels_pending_promptly)
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

START_TEST(test_pool_free_without_join_terminates)
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

START_TEST(test_pool_bad_arguments_are_einval)
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
START_TEST(test_pool_opts_size_lets_the_struct_grow)
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
	big.o.size = 0;
	ck_assert_int_eq(open_with_start(&p, &big.o), 0);
	ck_assert_int_eq(mproc_results_count(NULL), 0);
	ck_assert_int_eq(mproc_results_failed(NULL), 0);
	finish_pool(p);
}
END_TEST

START_TEST(test_pool_threads_refuse_what_needs_a_process)
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

START_TEST(test_pool_backends_give_identical_results)
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

/* ---- threads backend: what its tasks may do ------------------------- */

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

START_TEST(test_pool_threads_terminate_while_task_calls_its_pool)
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

START_TEST(test_pool_threads_task_ending_its_own_pool_is_edeadlk)
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

START_TEST(test_pool_threads_program_segv_handler_runs)
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

START_TEST(test_pool_task_forking_never_makes_a_second_worker)
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

START_TEST(test_pool_small_map_spreads_over_workers)
{
	/* Six tasks at chunksize 1 on two workers: both take a share, even
	 * though one worker's queue could hold all six. */
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 6, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_getpid, &in, 1, &r), 0);
	int64_t first = int_of(item(r, 0).value);
	int others = 0;
	for (size_t i = 1; i < mproc_results_count(r); i++)
		others += int_of(item(r, i).value) != first;
	ck_assert_int_ge(others, 1);
	mproc_results_free(r);
	finish_pool(p);
}
END_TEST

START_TEST(test_pool_results_outlive_the_pool)
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

START_TEST(test_pool_input_range_matches_python)
{
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 10, 3), 0);
	ck_assert_uint_eq(in.len, 4); /* 0 3 6 9 */
	ck_assert_int_eq(mproc_input_range(&in, 10, 0, -3), 0);
	ck_assert_uint_eq(in.len, 4); /* 10 7 4 1 */
	ck_assert_int_eq(mproc_input_range(&in, 0, -5, 1), 0);
	ck_assert_uint_eq(in.len, 0);
	ck_assert_int_eq(mproc_input_range(&in, INT64_MIN, INT64_MAX, INT64_MAX), 0);
	ck_assert_uint_eq(in.len, 3);
}
END_TEST

START_TEST(test_pool_cpu_counts_are_sane)
{
	int all = mproc_cpu_count(), mine = mproc_process_cpu_count();
	ck_assert_int_ge(all, 1);
	ck_assert_int_ge(mine, 1);
	ck_assert_int_le(mine, all);
}
END_TEST

START_TEST(test_pool_open_use_free_1000_pools_leaks_nothing)
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

/* ---- threads ------------------------------------------------------------ */

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

START_TEST(test_pool_four_threads_get_every_result_once)
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

/* ---- regressions --------------------------------------------------- */

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

START_TEST(test_pool_terminate_while_another_thread_drives_is_prompt)
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

START_TEST(test_pool_polling_with_zero_timeout_makes_progress)
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

START_TEST(test_pool_map_of_unknown_length_beside_an_imap_thread)
{
	struct mproc_pool *p = open_pool(2);
	pthread_t th;
	stop_imap = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, imap_loop, p), 0);
	size_t limit = 2000;
	for (int rep = 0; rep < 50; rep++) {
		struct mproc_input in;
		mproc_input_fn_init(&in, gen_squares_then_stop, &limit);
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
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pool_apply_returns_task_value);
	tcase_add_test(tc, test_pool_apply_null_arg_passes_none);
	tcase_add_test(tc, test_pool_apply_reads_python_pickle);
	tcase_add_test(tc, test_pool_apply_raise_gives_type_and_message);
	tcase_add_test(tc, test_pool_task_error_code_raises_oserror);
	tcase_add_test(tc, test_pool_task_writing_nothing_returns_none);
	tcase_add_test(tc, test_pool_malformed_argument_raises_unpickling_error);
	tcase_add_test(tc, test_pool_map_returns_every_result_in_order);
	tcase_add_test(tc, test_pool_map_with_chunksize_matches_without);
	tcase_add_test(tc, test_pool_map_of_ranges_and_arrays_returns_every_value);
	tcase_add_test(tc, test_pool_map_no_failfast_returns_all_results);
	tcase_add_test(tc, test_pool_map_empty_input_gives_no_results);
	tcase_add_test(tc, test_pool_map_reads_generator_of_unknown_length);
	tcase_add_test(tc, test_pool_map_generator_failure_is_einput);
	tcase_add_test(tc, test_pool_map_known_length_failure_keeps_earlier_results);
	tcase_add_test(tc, test_pool_starmap_passes_tuples);
	tcase_add_test(tc, test_pool_starmap_non_tuple_item_raises_type_error);
	tcase_add_test(tc, test_pool_async_get_timeout_then_result);
	tcase_add_test(tc, test_pool_map_async_runs_callback_once);
	tcase_add_test(tc, test_pool_async_error_callback_on_raise);
	tcase_add_test(tc, test_pool_async_freed_early_still_runs_callback);
	tcase_add_test(tc, test_pool_imap_yields_in_input_order);
	tcase_add_test(tc, test_pool_imap_chunked_yields_in_input_order);
	tcase_add_test(tc, test_pool_imap_unordered_yields_each_index_once);
	tcase_add_test(tc, test_pool_imap_next_timeout_then_continues);
	tcase_add_test(tc, test_pool_imap_generator_failure_after_results);
	tcase_add_test(tc, test_pool_imap_empty_input_is_done_at_once);
	tcase_add_test(tc, test_pool_imap_wrapped_range_generator_yields_every_item);
	tcase_add_test(tc, test_pool_imap_freed_early_leaves_pool_usable);
	tcase_add_test(tc, test_pool_join_ends_iterator_waiting_for_its_consumer);
	tcase_add_test(tc, test_pool_callback_waiting_on_its_pool_is_edeadlk);
	tcase_add_test(tc, test_pool_initializer_runs_in_each_worker);
	tcase_add_test(tc, test_pool_maxtasksperchild_replaces_workers);
	tcase_add_test(tc, test_pool_workers_ignore_sigint_and_are_named);
	tcase_add_test(tc, test_pool_crashed_worker_is_replaced);
	tcase_add_test(tc, test_pool_join_before_close_is_erunning);
	tcase_add_test(tc, test_pool_submit_after_close_is_eclosed);
	tcase_add_test(tc, test_pool_terminate_cancels_pending_promptly);
	tcase_add_test(tc, test_pool_free_without_join_terminates);
	tcase_add_test(tc, test_pool_bad_arguments_are_einval);
	tcase_add_test(tc, test_pool_opts_size_lets_the_struct_grow);
	tcase_add_test(tc, test_pool_threads_refuse_what_needs_a_process);
	tcase_add_test(tc, test_pool_backends_give_identical_results);
	tcase_add_test(tc, test_pool_results_outlive_the_pool);
	tcase_add_test(tc, test_pool_small_map_spreads_over_workers);
	tcase_add_test(tc, test_pool_threads_terminate_while_task_calls_its_pool);
	tcase_add_test(tc, test_pool_threads_task_ending_its_own_pool_is_edeadlk);
	tcase_add_test(tc, test_pool_threads_program_segv_handler_runs);
	tcase_add_test(tc, test_pool_task_forking_never_makes_a_second_worker);
	tcase_add_test(tc, test_pool_input_range_matches_python);
	tcase_add_test(tc, test_pool_cpu_counts_are_sane);
	tcase_add_test(tc, test_pool_four_threads_get_every_result_once);
	tcase_add_test(tc, test_pool_terminate_while_another_thread_drives_is_prompt);
	tcase_add_test(tc, test_pool_polling_with_zero_timeout_makes_progress);
	tcase_add_test(tc, test_pool_map_of_unknown_length_beside_an_imap_thread);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("resources");
	tcase_set_timeout(tr, 240);
	tcase_add_test(tr, test_pool_open_use_free_1000_pools_leaks_nothing);
	suite_add_tcase(s, tr);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
