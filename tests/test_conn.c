/*
 * test_conn.c - Pipe and Connection: the behaviours CPython's own tests
 * check for multiprocessing.Pipe/Connection (send/recv of values, bytes,
 * poll, end of file, wait over many), ported to mproc, plus what Python
 * leaves to chance: a peer's death, malformed and oversized messages.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "testutil.h"

static const void *pickle_str(const char *s, size_t *len)
{
	static struct mproc_writer *w;
	if (!w)
		ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_cstr(w, s), 0);
	const void *p;
	ck_assert_int_eq(mproc_writer_finish(w, &p, len), 0);
	return p;
}

START_TEST(test_conn_duplex_carries_values_both_ways)
{
	int fds = count_fds();
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	size_t len;
	const void *p = pickle_int(42, &len);
	ck_assert_int_eq(mproc_conn_send(a, p, len), 0);
	p = pickle_str("hello", &len);
	ck_assert_int_eq(mproc_conn_send(b, p, len), 0);
	ck_assert_int_eq(mproc_conn_send(a, NULL, 0), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_conn_recv(b, &v), 0);
	ck_assert_int_eq(int_of(v), 42);
	ck_assert_int_eq(mproc_conn_recv(b, &v), 0);
	ck_assert(mproc_value_is_none(v));
	ck_assert_int_eq(mproc_conn_recv(a, &v), 0);
	const char *s;
	ck_assert_int_eq(mproc_value_str(v, &s, &len), 0);
	ck_assert_int_eq(len, 5);
	ck_assert(memcmp(s, "hello", 5) == 0);
	ck_assert(mproc_conn_readable(a) && mproc_conn_writable(a));
	mproc_conn_free(a);
	mproc_conn_free(b);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_conn_simplex_ends_refuse_the_other_direction)
{
	struct mproc_conn *r, *w;
	ck_assert_int_eq(mproc_pipe(&r, &w, false), 0);
	ck_assert(mproc_conn_readable(r) && !mproc_conn_writable(r));
	ck_assert(!mproc_conn_readable(w) && mproc_conn_writable(w));
	ck_assert_int_eq(mproc_conn_send_bytes(r, "x", 1), -EBADF);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(w, &p, &len), -EBADF);
	ck_assert_int_eq(mproc_conn_send_bytes(w, "abc", 3), 0);
	ck_assert_int_eq(mproc_conn_recv_bytes(r, &p, &len), 0);
	ck_assert_int_eq(len, 3);
	ck_assert(memcmp(p, "abc", 3) == 0);
	bool ready;
	ck_assert_int_eq(mproc_wait(&w, 1, 0, &ready), -EBADF);
	mproc_conn_free(r);
	mproc_conn_free(w);
}
END_TEST

START_TEST(test_conn_bytes_keep_boundaries_and_empty_messages)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "", 0), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "12", 2), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "345", 3), 0);
	const void *p;
	size_t len = 99;
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), 0);
	ck_assert_int_eq(len, 0);
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), 0);
	ck_assert_int_eq(len, 2);
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), 0);
	ck_assert_int_eq(len, 3);
	ck_assert(memcmp(p, "345", 3) == 0);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

START_TEST(test_conn_poll_sees_data_and_end_of_file)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	ck_assert_int_eq(mproc_conn_poll(b, 0), 0);
	ck_assert_int_eq(mproc_conn_poll(b, 0.01), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "x", 1), 0);
	ck_assert_int_eq(mproc_conn_poll(b, -1), 1);
	/* Polling twice consumes nothing. */
	ck_assert_int_eq(mproc_conn_poll(b, 0), 1);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), 0);
	ck_assert_int_eq(mproc_conn_poll(b, 0), 0);
	mproc_conn_close(a);
	ck_assert_int_eq(mproc_conn_poll(b, 1), 1);
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), MPROC_EEOF);
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), MPROC_EEOF);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

START_TEST(test_conn_data_sent_before_close_is_read_before_eof)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, false), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(b, "last", 4), 0);
	mproc_conn_free(b);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &len), 0);
	ck_assert_int_eq(len, 4);
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &len), MPROC_EEOF);
	mproc_conn_free(a);
}
END_TEST

START_TEST(test_conn_closed_end_answers_eclosed)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	ck_assert_int_eq(mproc_conn_close(a), 0);
	ck_assert_int_eq(mproc_conn_close(a), 0);
	ck_assert(mproc_conn_closed(a));
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_conn_recv(a, &v), MPROC_ECLOSED);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "x", 1), MPROC_ECLOSED);
	ck_assert_int_eq(mproc_conn_poll(a, 0), MPROC_ECLOSED);
	ck_assert_int_eq(mproc_conn_fileno(a), MPROC_ECLOSED);
	/* The peer of a closed end: sending is a clear code, not SIGPIPE. */
	int rc = 0;
	for (int i = 0; i < 1000 && rc == 0; i++)
		rc = mproc_conn_send_bytes(b, "x", 1);
	ck_assert_int_eq(rc, MPROC_EPEER);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

/* With SIGPIPE blocked by the program and one of its own pending, a
 * send to a gone peer leaves that one pending; with it unblocked, no
 * signal reaches the program at all (the test would die of it). */
START_TEST(test_conn_send_to_gone_peer_raises_no_sigpipe)
{
	struct mproc_conn *r, *w;
	ck_assert_int_eq(mproc_pipe(&r, &w, false), 0);
	mproc_conn_free(r);
	ck_assert_int_eq(mproc_conn_send_bytes(w, "x", 1), MPROC_EPEER);
	sigset_t set, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &set, NULL);
	ck_assert_int_eq(mproc_conn_send_bytes(w, "x", 1), MPROC_EPEER);
	sigpending(&pend);
	ck_assert(!sigismember(&pend, SIGPIPE));
	raise(SIGPIPE);
	ck_assert_int_eq(mproc_conn_send_bytes(w, "x", 1), MPROC_EPEER);
	sigpending(&pend);
	ck_assert(sigismember(&pend, SIGPIPE));
	int sig;
	sigwait(&set, &sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	mproc_conn_free(w);
}
END_TEST

START_TEST(test_conn_bad_arguments_are_einval)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(NULL, &b, true), -EINVAL);
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(NULL, "x", 1), -EINVAL);
	ck_assert_int_eq(mproc_conn_send_bytes(a, NULL, 1), -EINVAL);
	ck_assert_int_eq(mproc_conn_send(a, NULL, 3), -EINVAL);
	ck_assert_int_eq(mproc_conn_recv(a, NULL), -EINVAL);
	ck_assert_int_eq(mproc_conn_recv(NULL, NULL), -EINVAL);
	ck_assert_int_eq(mproc_conn_poll(NULL, 0), -EINVAL);
	bool ready[1];
	ck_assert_int_eq(mproc_wait(NULL, 1, 0, ready), -EINVAL);
	ck_assert_int_eq(mproc_wait(&a, 0, 0, ready), -EINVAL);
	ck_assert_int_eq(mproc_wait(&a, 1, 0, NULL), -EINVAL);
	struct mproc_limits big = {.max_size = MPROC_LIMITS_MAX_SIZE + 1};
	struct mproc_conn *c, *d;
	ck_assert_int_eq(mproc_pipe_limits(&c, &d, true, &big), -EINVAL);
	ck_assert_ptr_null(c);
	mproc_conn_free(NULL);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

START_TEST(test_conn_malformed_pickle_is_an_error_and_the_next_message_reads)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "garbage", 7), 0);
	size_t len;
	const void *p = pickle_int(7, &len);
	ck_assert_int_eq(mproc_conn_send(a, p, len), 0);
	const struct mproc_value *v = (void *)1;
	int rc = mproc_conn_recv(b, &v);
	ck_assert_int_lt(rc, -4000);
	ck_assert_ptr_null(v);
	ck_assert_str_ne(mproc_conn_error(b), "");
	ck_assert_int_eq(mproc_conn_recv(b, &v), 0);
	ck_assert_int_eq(int_of(v), 7);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

START_TEST(test_conn_message_over_the_limit_is_refused)
{
	struct mproc_limits lim = {.max_size = 16};
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe_limits(&a, &b, true, &lim), 0);
	char buf[32] = {0};
	ck_assert_int_eq(mproc_conn_send_bytes(a, buf, 17), MPROC_EPICKLE_TOOBIG);
	ck_assert_int_eq(mproc_conn_send_bytes(a, buf, 16), 0);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(b, &p, &len), 0);
	ck_assert_int_eq(len, 16);
	ck_assert_int_eq(mproc_conn_poll(b, 0), 0);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

/* A header that claims 4 GiB - 2 bytes: refused by its length. */
START_TEST(test_conn_huge_header_is_refused_without_allocating)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, false), 0);
	int fd = mproc_conn_fileno(b); /* a send-only end: its write end */
	uint32_t hdr = UINT32_MAX - 1;
	ck_assert_int_eq(write(fd, &hdr, 4), 4);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &len), MPROC_EPICKLE_TOOBIG);
	ck_assert(mproc_conn_closed(a));
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

/* The escape (0xFFFFFFFF, then a u64): a length past the limit is
 * refused before anything is allocated, one below 4 GiB - 1 is not
 * the escape's and is a protocol error, and a u64 cut short by the
 * writer's end is the end of the stream. */
START_TEST(test_conn_escaped_header_is_checked)
{
	struct {
		uint32_t esc;
		uint64_t len;
	} __attribute__((packed)) hdr[] = {
		{UINT32_MAX, (uint64_t)1 << 40},
		{UINT32_MAX, 5},
	};
	int want[] = {MPROC_EPICKLE_TOOBIG, MPROC_EPROTO};
	for (int i = 0; i < 2; i++) {
		struct mproc_conn *a, *b;
		ck_assert_int_eq(mproc_pipe(&a, &b, false), 0);
		int fd = mproc_conn_fileno(b);
		ck_assert_int_eq(write(fd, &hdr[i], sizeof hdr[i]), sizeof hdr[i]);
		const void *p;
		size_t len;
		ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &len), want[i]);
		ck_assert(mproc_conn_closed(a));
		mproc_conn_free(a);
		mproc_conn_free(b);
	}
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, false), 0);
	ck_assert_int_eq(write(mproc_conn_fileno(b), &hdr[0], 8), 8);
	mproc_conn_close(b);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &len), MPROC_EEOF);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

/* Runs in a child: sends a large message, then its argument back. */
static struct mproc_conn *child_end;
static int t_send_big(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)ret;
	size_t n = 4u << 20;
	char *buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(i * 7);
	int rc = mproc_conn_send_bytes(child_end, buf, n);
	free(buf);
	if (rc == 0)
		rc = mproc_conn_send_value(child_end, arg);
	return rc;
}

START_TEST(test_conn_large_message_crosses_processes)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	child_end = b;
	struct mproc_process *p;
	size_t len;
	const void *arg = pickle_int(99, &len);
	ck_assert_int_eq(mproc_process_start(&p, t_send_big, arg, len, NULL), 0);
	mproc_conn_close(b);
	const void *buf;
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &buf, &len), 0);
	ck_assert_int_eq(len, 4u << 20);
	const char *c = buf;
	for (size_t i = 0; i < len; i += 4099)
		ck_assert_int_eq(c[i], (char)(i * 7));
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_conn_recv(a, &v), 0);
	ck_assert_int_eq(int_of(v), 99);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(mproc_conn_recv(a, &v), MPROC_EEOF);
	mproc_process_free(p);
	mproc_conn_free(a);
	mproc_conn_free(b);
	ck_assert(no_children());
}
END_TEST

/* Dies of SIGKILL holding its end: the parent's recv ends in EOF. */
static int t_die(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	raise(SIGKILL);
	return 0;
}

START_TEST(test_conn_peer_death_is_eof_not_a_hang)
{
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe(&a, &b, true), 0);
	struct mproc_process *p;
	ck_assert_int_eq(mproc_process_start(&p, t_die, NULL, 0, NULL), 0);
	mproc_conn_close(b);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_conn_recv(a, &v), MPROC_EEOF);
	ck_assert_int_eq(mproc_conn_send_bytes(a, "x", 1), MPROC_EPEER);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	mproc_process_free(p);
	mproc_conn_free(a);
	mproc_conn_free(b);
}
END_TEST

START_TEST(test_conn_wait_reports_each_ready_connection)
{
	enum { N = 20 };
	struct mproc_conn *r[N], *w[N];
	bool ready[N];
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(mproc_pipe(&r[i], &w[i], false), 0);
	ck_assert_int_eq(mproc_wait(r, N, 0, ready), 0);
	ck_assert_int_eq(mproc_wait(r, N, 0.02, ready), 0);
	for (int i = 0; i < N; i += 3)
		ck_assert_int_eq(mproc_conn_send_bytes(w[i], "x", 1), 0);
	mproc_conn_close(w[N - 1]); /* end of file counts as ready */
	int n = mproc_wait(r, N, -1, ready);
	int expect = 0;
	for (int i = 0; i < N; i++) {
		bool want = i % 3 == 0 || i == N - 1;
		ck_assert_int_eq(ready[i], want);
		expect += want;
	}
	ck_assert_int_eq(n, expect);
	/* Read ahead: two messages in one read, the second still ready. */
	ck_assert_int_eq(mproc_conn_send_bytes(w[1], "a", 1), 0);
	ck_assert_int_eq(mproc_conn_send_bytes(w[1], "b", 1), 0);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(r[1], &p, &len), 0);
	ck_assert_int_eq(mproc_wait(&r[1], 1, 0, ready), 1);
	ck_assert_int_eq(mproc_conn_recv_bytes(r[1], &p, &len), 0);
	ck_assert(memcmp(p, "b", 1) == 0);
	for (int i = 0; i < N; i++) {
		mproc_conn_free(r[i]);
		mproc_conn_free(w[i]);
	}
}
END_TEST

/* A pool task: sends its argument on the inherited end. */
static int t_send_arg(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)ret;
	return mproc_conn_send_value(child_end, arg);
}

/* Under the start method the suite runs with (fork, fork server): an end
 * made before the pool is its workers' too. */
START_TEST(test_conn_pool_workers_send_on_an_inherited_end)
{
	struct mproc_conn *r, *w;
	ck_assert_int_eq(mproc_pipe(&r, &w, false), 0);
	child_end = w;
	struct mproc_pool *pool = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100, 1);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(pool, t_send_arg, &in, 0, &res), 0);
	mproc_results_free(res);
	finish_pool(pool);
	bool seen[100] = {false};
	for (int i = 0; i < 100; i++) {
		const struct mproc_value *v;
		ck_assert_int_eq(mproc_conn_recv(r, &v), 0);
		int64_t x = int_of(v);
		ck_assert(x >= 0 && x < 100 && !seen[x]);
		seen[x] = true;
	}
	ck_assert_int_eq(mproc_conn_poll(r, 0), 0);
	mproc_conn_free(w);
	ck_assert_int_eq(mproc_conn_poll(r, -1), 1);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_conn_recv_bytes(r, &p, &len), MPROC_EEOF);
	mproc_conn_free(r);
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_conn_duplex_carries_values_both_ways);
	tcase_add_test(tc, test_conn_simplex_ends_refuse_the_other_direction);
	tcase_add_test(tc, test_conn_bytes_keep_boundaries_and_empty_messages);
	tcase_add_test(tc, test_conn_poll_sees_data_and_end_of_file);
	tcase_add_test(tc, test_conn_data_sent_before_close_is_read_before_eof);
	tcase_add_test(tc, test_conn_closed_end_answers_eclosed);
	tcase_add_test(tc, test_conn_send_to_gone_peer_raises_no_sigpipe);
	tcase_add_test(tc, test_conn_bad_arguments_are_einval);
	tcase_add_test(tc, test_conn_malformed_pickle_is_an_error_and_the_next_message_reads);
	tcase_add_test(tc, test_conn_message_over_the_limit_is_refused);
	tcase_add_test(tc, test_conn_huge_header_is_refused_without_allocating);
	tcase_add_test(tc, test_conn_escaped_header_is_checked);
	tcase_add_test(tc, test_conn_large_message_crosses_processes);
	tcase_add_test(tc, test_conn_peer_death_is_eof_not_a_hang);
	tcase_add_test(tc, test_conn_wait_reports_each_ready_connection);
	tcase_add_test(tc, test_conn_pool_workers_send_on_an_inherited_end);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
