/*
 * test_queue.c - Queue, SimpleQueue, JoinableQueue: the behaviours
 * CPython's tests check for multiprocessing queues (FIFO order, put/get
 * with block and timeout, Full and Empty, qsize/empty/full, task_done and
 * join, several producers), ported to mproc, plus what the issue asks:
 * too-big values, closed queues, a process that dies holding the queue's
 * lock. Children never assert: they report through their result.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "lib/queue.h"
#include "testutil.h"

static struct mproc_queue *Q; /* inherited by the children */

static struct mproc_process *start(mproc_task_fn fn, int64_t x)
{
	struct mproc_process *p = NULL;
	size_t len;
	const void *arg = pickle_int(x, &len);
	ck_assert_int_eq(mproc_process_start(&p, fn, arg, len, NULL), 0);
	return p;
}

static void join_ok(struct mproc_process *p)
{
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	int rc = mproc_process_result(p, &r);
	if (rc != 0)
		ck_abort_msg("child: %s: %s", r->error->type, r->error->msg);
	mproc_process_free(p);
}

static int64_t get_int(struct mproc_queue *q)
{
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_queue_get(q, true, -1, &v), 0);
	return int_of(v);
}

static void put_int(struct mproc_queue *q, int64_t x)
{
	size_t len;
	const void *p = pickle_int(x, &len);
	ck_assert_int_eq(mproc_queue_put(q, p, len, true, -1), 0);
}

START_TEST(test_queue_is_fifo)
{
	struct mproc_queue *q;
	ck_assert_int_eq(mproc_queue_new(&q, 0), 0);
	ck_assert(mproc_queue_empty(q));
	for (int i = 0; i < 100; i++)
		put_int(q, i);
	size_t n;
	ck_assert_int_eq(mproc_queue_qsize(q, &n), 0);
	ck_assert_int_eq(n, 100);
	ck_assert(!mproc_queue_empty(q));
	ck_assert(!mproc_queue_full(q));
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(get_int(q), i);
	ck_assert(mproc_queue_empty(q));
	mproc_queue_free(q);
}
END_TEST

START_TEST(test_queue_full_and_empty_are_named_codes)
{
	struct mproc_queue *q;
	ck_assert_int_eq(mproc_queue_new(&q, 2), 0);
	ck_assert_int_eq(mproc_queue_maxsize(q), 2);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_queue_get_nowait(q, &v), MPROC_EEMPTY);
	ck_assert_int_eq(mproc_queue_get(q, true, 0.02, &v), MPROC_EEMPTY);
	size_t len;
	const void *p = pickle_int(1, &len);
	ck_assert_int_eq(mproc_queue_put_nowait(q, p, len), 0);
	ck_assert_int_eq(mproc_queue_put_nowait(q, p, len), 0);
	ck_assert(mproc_queue_full(q));
	ck_assert_int_eq(mproc_queue_put_nowait(q, p, len), MPROC_EFULL);
	ck_assert_int_eq(mproc_queue_put(q, p, len, true, 0.02), MPROC_EFULL);
	ck_assert_int_eq(get_int(q), 1);
	ck_assert_int_eq(mproc_queue_put_nowait(q, p, len), 0);
	mproc_queue_free(q);
}
END_TEST

START_TEST(test_queue_none_and_values_of_every_type)
{
	struct mproc_queue *q;
	ck_assert_int_eq(mproc_simple_queue_new(&q), 0);
	ck_assert_int_eq(mproc_queue_maxsize(q), 0);
	ck_assert_int_eq(mproc_queue_put(q, NULL, 0, true, -1), 0);
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_write_list_begin(w);
	mproc_write_int(w, 42);
	mproc_write_none(w);
	mproc_write_cstr(w, "hello");
	mproc_write_float(w, 2.5);
	mproc_write_bytes(w, "\0\1", 2);
	mproc_write_list_end(w);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &p, &len), 0);
	ck_assert_int_eq(mproc_queue_put(q, p, len, true, -1), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_queue_get(q, true, -1, &v), 0);
	ck_assert(mproc_value_is_none(v));
	ck_assert_int_eq(mproc_queue_get(q, true, -1, &v), 0);
	size_t n;
	ck_assert_int_eq(mproc_value_len(v, &n), 0);
	ck_assert_int_eq(n, 5);
	char buf[128];
	ck_assert_int_eq(mproc_value_repr(v, buf, sizeof buf, NULL), 0);
	ck_assert_str_eq(buf, "[42, None, 'hello', 2.5, b'\\x00\\x01']");
	mproc_writer_free(w);
	mproc_queue_free(q);
}
END_TEST

START_TEST(test_queue_bad_input_is_refused_and_nothing_lost)
{
	struct mproc_queue_opts o = {.capacity = 64};
	struct mproc_queue *q;
	ck_assert_int_eq(mproc_queue_new_opts(&q, &o), 0);
	char big[61] = {0};
	ck_assert_int_eq(mproc_queue_put(q, big, 61, true, -1), -EMSGSIZE);
	ck_assert_int_eq(mproc_queue_put(q, "junk", 4, true, -1), 0);
	put_int(q, 5);
	const struct mproc_value *v;
	ck_assert_int_lt(mproc_queue_get(q, true, -1, &v), -4000);
	ck_assert_str_ne(mproc_queue_error(), "");
	ck_assert_int_eq(get_int(q), 5);
	/* Bad arguments. */
	ck_assert_int_eq(mproc_queue_put(NULL, NULL, 0, true, -1), -EINVAL);
	ck_assert_int_eq(mproc_queue_put(q, NULL, 3, true, -1), -EINVAL);
	ck_assert_int_eq(mproc_queue_get(q, true, -1, NULL), -EINVAL);
	ck_assert_int_eq(mproc_queue_task_done(q), -ENOTSUP);
	ck_assert_int_eq(mproc_queue_join(q, 0), -ENOTSUP);
	struct mproc_queue *r = (void *)1;
	o.capacity = 10;
	ck_assert_int_eq(mproc_queue_new_opts(&r, &o), -EINVAL);
	ck_assert_ptr_null(r);
	o = (struct mproc_queue_opts){.kind = 9};
	ck_assert_int_eq(mproc_queue_new_opts(&r, &o), -EINVAL);
	o = (struct mproc_queue_opts){.size = 8};
	ck_assert_int_eq(mproc_queue_new_opts(&r, &o), -EINVAL);
	o = (struct mproc_queue_opts){.size = sizeof o + 8};
	ck_assert_int_eq(mproc_queue_new_opts(&r, &o), -E2BIG);
	ck_assert_int_eq(mproc_queue_new(NULL, 0), -EINVAL);
	/* Closed: this process's calls refuse. */
	ck_assert_int_eq(mproc_queue_close(q), 0);
	ck_assert_int_eq(mproc_queue_put(q, NULL, 0, true, -1), MPROC_ECLOSED);
	ck_assert_int_eq(mproc_queue_get(q, false, 0, &v), MPROC_ECLOSED);
	mproc_queue_free(q);
	mproc_queue_free(NULL);
}
END_TEST

START_TEST(test_queue_ring_wraps_messages_of_every_size)
{
	struct mproc_queue_opts o = {.capacity = 97};
	struct mproc_queue *q;
	ck_assert_int_eq(mproc_queue_new_opts(&q, &o), 0);
	char msg[80];
	for (int round = 0; round < 500; round++) {
		size_t n = (size_t)(round * 7) % 70;
		for (size_t i = 0; i < n; i++)
			msg[i] = (char)(round + i);
		ck_assert_int_eq(mproc_queue_put(q, msg, n, false, 0), 0);
		const void *p;
		size_t len;
		ck_assert_int_eq(mproc_queue_get_bytes(q, false, 0, &p, &len), 0);
		ck_assert_int_eq(len, n);
		ck_assert(memcmp(p, msg, n) == 0);
	}
	mproc_queue_free(q);
}
END_TEST

/* Puts arg ints 0..999 tagged with its number (n * 1000 + i). */
static int t_producer(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)ret;
	int64_t id = 0;
	mproc_value_int(arg, &id);
	struct mproc_writer *w;
	if (mproc_writer_new(&w, 5) < 0)
		return -ENOMEM;
	int rc = 0;
	for (int i = 0; i < 1000 && rc == 0; i++) {
		const void *p;
		size_t len;
		mproc_writer_reset(w);
		mproc_write_int(w, id * 1000 + i);
		rc = mproc_writer_finish(w, &p, &len);
		if (rc == 0)
			rc = mproc_queue_put(Q, p, len, true, -1);
	}
	mproc_writer_free(w);
	return rc;
}

START_TEST(test_queue_many_producers_each_in_order)
{
	/* Small: producers wait for room, the consumer wakes them. */
	struct mproc_queue_opts o = {.capacity = 256, .maxsize = 10};
	ck_assert_int_eq(mproc_queue_new_opts(&Q, &o), 0);
	enum { P = 4 };
	struct mproc_process *p[P];
	for (int i = 0; i < P; i++)
		p[i] = start(t_producer, i);
	int next[P] = {0};
	for (int k = 0; k < P * 1000; k++) {
		int64_t x = get_int(Q);
		int id = (int)(x / 1000);
		ck_assert(id >= 0 && id < P);
		ck_assert_int_eq(x % 1000, next[id]);
		next[id]++;
	}
	for (int i = 0; i < P; i++)
		join_ok(p[i]);
	ck_assert(mproc_queue_empty(Q));
	mproc_queue_free(Q);
	ck_assert(no_children());
}
END_TEST

/* Gets arg items and returns their sum, task_done after each. */
static int t_consumer(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t n = 0, sum = 0;
	mproc_value_int(arg, &n);
	for (int64_t i = 0; i < n; i++) {
		const struct mproc_value *v;
		int rc = mproc_queue_get(Q, true, -1, &v);
		if (rc < 0)
			return rc;
		int64_t x = 0;
		mproc_value_int(v, &x);
		sum += x;
		if ((rc = mproc_queue_task_done(Q)) < 0)
			return rc;
	}
	return mproc_write_int(ret, sum);
}

START_TEST(test_queue_joinable_join_waits_for_task_done)
{
	ck_assert_int_eq(mproc_joinable_queue_new(&Q, 0), 0);
	ck_assert_int_eq(mproc_queue_join(Q, 0), 0);
	for (int i = 1; i <= 100; i++)
		put_int(Q, i);
	ck_assert_int_eq(mproc_queue_join(Q, 0.01), -ETIMEDOUT);
	struct mproc_process *p = start(t_consumer, 100);
	ck_assert_int_eq(mproc_queue_join(Q, -1), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	ck_assert_int_eq(int_of(r->value), 5050);
	mproc_process_free(p);
	ck_assert_int_eq(mproc_queue_task_done(Q), MPROC_ENOTHELD);
	mproc_queue_free(Q);
}
END_TEST

/* Takes the queue's internal lock and dies holding it. */
static int t_die_holding(const struct mproc_value *arg,
                         struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	mproc__queue_hold(Q);
	raise(SIGKILL);
	return 0;
}

START_TEST(test_queue_survives_a_process_dying_inside_it)
{
	ck_assert_int_eq(mproc_queue_new(&Q, 0), 0);
	put_int(Q, 1);
	struct mproc_process *p = start(t_die_holding, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, -SIGKILL);
	mproc_process_free(p);
	put_int(Q, 2);
	ck_assert_int_eq(get_int(Q), 1);
	ck_assert_int_eq(get_int(Q), 2);
	mproc_queue_free(Q);
}
END_TEST

/* Waits for one item, then puts it back plus one. */
static int t_echo(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	const struct mproc_value *v;
	int rc = mproc_queue_get(Q, true, -1, &v);
	if (rc < 0)
		return rc;
	int64_t x = 0;
	mproc_value_int(v, &x);
	struct mproc_writer *w;
	if (mproc_writer_new(&w, 5) < 0)
		return -ENOMEM;
	const void *p;
	size_t len;
	mproc_write_int(w, x + 1);
	rc = mproc_writer_finish(w, &p, &len);
	if (rc == 0)
		rc = mproc_queue_put(Q, p, len, true, -1);
	mproc_writer_free(w);
	return rc;
}

START_TEST(test_queue_blocked_get_wakes_for_a_later_put)
{
	ck_assert_int_eq(mproc_queue_new(&Q, 0), 0);
	struct mproc_process *p = start(t_echo, 0);
	sleep_ms(20); /* let it block: the put below must wake it */
	put_int(Q, 41);
	/* The child may take its own item back only after putting it. */
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(get_int(Q), 42);
	mproc_process_free(p);
	mproc_queue_free(Q);
}
END_TEST

static void *thread_producer(void *arg)
{
	(void)arg;
	struct mproc_writer *w;
	if (mproc_writer_new(&w, 5) < 0)
		return (void *)1;
	for (int i = 0; i < 2000; i++) {
		const void *p;
		size_t len;
		mproc_writer_reset(w);
		mproc_write_int(w, i);
		if (mproc_writer_finish(w, &p, &len) < 0 ||
		    mproc_queue_put(Q, p, len, true, -1) < 0) {
			mproc_writer_free(w);
			return (void *)1;
		}
	}
	mproc_writer_free(w);
	return NULL;
}

static void *thread_consumer(void *arg)
{
	int64_t *sum = arg;
	for (int i = 0; i < 2000; i++) {
		const struct mproc_value *v;
		int64_t x = 0;
		if (mproc_queue_get(Q, true, -1, &v) < 0 ||
		    mproc_value_int(v, &x) < 0)
			return (void *)1;
		*sum += x;
	}
	return NULL;
}

START_TEST(test_queue_threads_share_one_queue)
{
	ck_assert_int_eq(mproc_queue_new(&Q, 16), 0);
	pthread_t pr[2], co[2];
	int64_t sums[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_create(&pr[i], NULL, thread_producer, NULL), 0);
		ck_assert_int_eq(pthread_create(&co[i], NULL, thread_consumer, &sums[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		void *r;
		ck_assert_int_eq(pthread_join(pr[i], &r), 0);
		ck_assert_ptr_null(r);
		ck_assert_int_eq(pthread_join(co[i], &r), 0);
		ck_assert_ptr_null(r);
	}
	ck_assert_int_eq(sums[0] + sums[1], 2 * (1999 * 2000 / 2));
	mproc_queue_free(Q);
}
END_TEST

/* A pool task: puts its argument into the inherited queue. */
static int t_put_arg(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)ret;
	struct mproc_writer *w;
	if (mproc_writer_new(&w, 5) < 0)
		return -ENOMEM;
	const void *p;
	size_t len;
	int rc = mproc_write_value(w, arg);
	if (rc == 0)
		rc = mproc_writer_finish(w, &p, &len);
	if (rc == 0)
		rc = mproc_queue_put(Q, p, len, true, -1);
	mproc_writer_free(w);
	return rc;
}

/* Under every start method the suite runs with (fork, fork server,
 * threads): a queue made before the pool is the workers' too. */
START_TEST(test_queue_pool_workers_put_into_an_inherited_queue)
{
	ck_assert_int_eq(mproc_queue_new(&Q, 0), 0);
	struct mproc_pool *pool = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100, 1);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(pool, t_put_arg, &in, 0, &res), 0);
	mproc_results_free(res);
	finish_pool(pool);
	bool seen[100] = {false};
	for (int i = 0; i < 100; i++) {
		int64_t x = get_int(Q);
		ck_assert(x >= 0 && x < 100 && !seen[x]);
		seen[x] = true;
	}
	ck_assert(mproc_queue_empty(Q));
	mproc_queue_free(Q);
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_queue_is_fifo);
	tcase_add_test(tc, test_queue_full_and_empty_are_named_codes);
	tcase_add_test(tc, test_queue_none_and_values_of_every_type);
	tcase_add_test(tc, test_queue_bad_input_is_refused_and_nothing_lost);
	tcase_add_test(tc, test_queue_ring_wraps_messages_of_every_size);
	tcase_add_test(tc, test_queue_many_producers_each_in_order);
	tcase_add_test(tc, test_queue_joinable_join_waits_for_task_done);
	tcase_add_test(tc, test_queue_survives_a_process_dying_inside_it);
	tcase_add_test(tc, test_queue_blocked_get_wakes_for_a_later_put);
	tcase_add_test(tc, test_queue_threads_share_one_queue);
	tcase_add_test(tc, test_queue_pool_workers_put_into_an_inherited_queue);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
