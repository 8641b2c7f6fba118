/*
 * test_big_slow.c - values past 4 GiB end to end, with max_size raised: a
 * 4.5 GiB bytes argument through a process pool, a 4.5 GiB result back,
 * and a 4.5 GiB message over a Connection. Slow (seconds of copying each)
 * and big (several GiB resident at the peak), so it runs in the slow
 * suite, one test at a time:
 *     meson configure build -Dslow_tests=true && meson test -C build --suite slow
 *
 * The values are mostly zero pages never written (an untouched anonymous
 * mapping costs no memory) with a word written every MiB, so that only
 * the library's own copies take memory, and a misplaced byte anywhere
 * still changes the checksum or a checked word. Each test says its peak
 * resident set on stderr: this process's, and its largest child's.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"

/* 4.5 GiB, or MPROC_TEST_BIG_MIB MiB (the MPI run: 1280, past MPI's
 * 1 GiB pieces, as three ranks on one machine would hold it many times). */
static size_t BIG = (size_t)9 << 29;
#define STEP ((size_t)1 << 20)

/* The word at offset i of the test's values (i a multiple of STEP). */
static uint64_t mark(size_t i)
{
	return (uint64_t)i * 0x9e3779b97f4a7c15u + 1;
}

/* n bytes of anonymous memory, a mark every STEP bytes from `first`
 * (so that the marks sit where the value starts inside a pickle). */
static char *sparse(size_t n, size_t first)
{
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	for (size_t i = 0; i + 8 <= n - first; i += STEP) {
		uint64_t m = mark(i);
		memcpy(p + first + i, &m, 8);
	}
	return p;
}

/* A checksum of n bytes that sees every word and where it is. */
static uint64_t checksum(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037u;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 1099511628211u;
	}
	for (; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211u;
	return h;
}

static long peak_kib(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return ru.ru_maxrss;
}

static void say_peak(const char *test)
{
	fprintf(stderr, "# %s: peak RSS %ld MiB here, %ld MiB in the largest "
	        "child\n", test, peak_kib(RUSAGE_SELF) >> 10,
	        peak_kib(RUSAGE_CHILDREN) >> 10);
}

static struct mproc_pool *big_pool(void)
{
	struct mproc_pool_opts o = {.processes = 1};
	o.limits.max_size = (size_t)6 << 30;
	return open_pool_opts(&o);
}

/* (len(arg), checksum(arg)) of a bytes argument. */
static int t_len_sum(const struct mproc_value *arg, struct mproc_writer *w)
{
	const void *p;
	size_t n;
	int rc = mproc_value_bytes(arg, &p, &n);
	if (rc < 0)
		return rc;
	mproc_write_tuple_begin(w);
	mproc_write_int(w, (int64_t)n);
	mproc_write_int(w, (int64_t)checksum(p, n));
	return mproc_write_tuple_end(w);
}

START_TEST(test_big_argument_past_4_gib_reaches_the_task)
{
	/* PROTO 5, BINBYTES8 len, the bytes, STOP. */
	size_t head = 2 + 1 + 8, plen = head + BIG + 1;
	char *pk = sparse(plen, head);
	ck_assert_ptr_nonnull(pk);
	uint64_t n = BIG;
	memcpy(pk, "\x80\x05\x8e", 3);
	memcpy(pk + 3, &n, 8);
	pk[plen - 1] = '.';
	uint64_t want = checksum(pk + head, BIG);

	struct mproc_pool *p = big_pool();
	struct mproc_results *res = NULL;
	ck_assert_int_eq(mproc_apply(p, t_len_sum, pk, plen, &res), 0);
	munmap(pk, plen);
	struct mproc_result r = item(res, 0);
	ck_assert_int_eq(r.status, MPROC_OK);
	const struct mproc_value *x;
	int64_t got;
	ck_assert_int_eq(mproc_value_item(r.value, 0, &x), 0);
	ck_assert_int_eq(mproc_value_int(x, &got), 0);
	ck_assert_uint_eq((uint64_t)got, BIG);
	ck_assert_int_eq(mproc_value_item(r.value, 1, &x), 0);
	ck_assert_int_eq(mproc_value_int(x, &got), 0);
	ck_assert_uint_eq((uint64_t)got, want);
	mproc_results_free(res);
	finish_pool(p);
	say_peak("argument");
}
END_TEST

/* A 4.5 GiB bytes result, the marks in place. */
static int t_big_bytes(const struct mproc_value *arg, struct mproc_writer *w)
{
	(void)arg;
	char *b = sparse(BIG, 0);
	if (!b)
		return -ENOMEM;
	/* The last byte, and the bytes below 4 GiB, say where they are. */
	b[BIG - 1] = 'z';
	if (BIG > ((size_t)4 << 30))
		memcpy(b + ((size_t)4 << 30) - 4, "4GiB", 4);
	int rc = mproc_write_bytes(w, b, BIG);
	munmap(b, BIG);
	return rc;
}

static void check_marks(const char *p, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i += STEP) {
		uint64_t m;
		memcpy(&m, p + i, 8);
		if (m != mark(i))
			ck_abort_msg("word at %zu is %llx", i, (unsigned long long)m);
	}
}

START_TEST(test_big_result_past_4_gib_comes_back)
{
	struct mproc_pool *p = big_pool();
	struct mproc_results *res = NULL;
	ck_assert_int_eq(mproc_apply(p, t_big_bytes, NULL, 0, &res), 0);
	struct mproc_result r = item(res, 0);
	ck_assert_int_eq(r.status, MPROC_OK);
	const void *v;
	size_t n;
	ck_assert_int_eq(mproc_value_bytes(r.value, &v, &n), 0);
	ck_assert_uint_eq(n, BIG);
	const char *b = v;
	check_marks(b, 0x4000000); /* the first 64 MiB's marks, then a few */
	uint64_t m;
	size_t at[] = {STEP * 1023, STEP * 1024, STEP * 4095, STEP * 4096,
	               STEP * 4097, BIG - STEP * 2};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		if (at[i] + 8 > BIG)
			continue;
		memcpy(&m, b + at[i], 8);
		ck_assert_uint_eq(m, mark(at[i]));
	}
	if (BIG > ((size_t)4 << 30))
		ck_assert_int_eq(memcmp(b + ((size_t)4 << 30) - 4, "4GiB", 4), 0);
	ck_assert_int_eq(b[BIG - 1], 'z');
	ck_assert_int_eq(b[BIG - 2], 0);
	mproc_results_free(res);
	finish_pool(p);
	say_peak("result");
}
END_TEST

START_TEST(test_big_connection_message_past_4_gib)
{
	struct mproc_limits lim = {.max_size = (size_t)6 << 30};
	struct mproc_conn *a, *b;
	ck_assert_int_eq(mproc_pipe_limits(&a, &b, false, &lim), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *m = sparse(BIG, 0);
		int rc = m ? mproc_conn_send_bytes(b, m, BIG) : -ENOMEM;
		_exit(rc == 0 ? 0 : 1);
	}
	mproc_conn_close(b);
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &n), 0);
	ck_assert_uint_eq(n, BIG);
	check_marks(p, n);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Its end of file follows, nothing else. */
	ck_assert_int_eq(mproc_conn_recv_bytes(a, &p, &n), MPROC_EEOF);
	mproc_conn_free(a);
	mproc_conn_free(b);
	say_peak("connection");
}
END_TEST

int main(void)
{
	const char *mib = getenv("MPROC_TEST_BIG_MIB");
	if (mib && atoi(mib) > 0)
		BIG = (size_t)atoi(mib) << 20;
	Suite *s = suite_create("big");
	TCase *tc = tcase_create("pool");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_big_argument_past_4_gib_reaches_the_task);
	tcase_add_test(tc, test_big_result_past_4_gib_comes_back);
	suite_add_tcase(s, tc);
	/* Not on MPI: rank 0 must not fork. */
	tc = tcase_create("conn");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_big_connection_message_past_4_gib);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
