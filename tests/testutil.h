/*
 * testutil.h - what the suites share: the start method they run under,
 * pools opened and finished with their checks, common tasks and inputs,
 * the checks that nothing is left behind, and Check's main.
 *
 * Everything is static inline, so a suite uses what it needs and nothing
 * else is compiled in (test_shared() keeps its mapping in a static of its
 * own: one per suite). The helpers that assert are there only when
 * <check.h> was included first: assertions belong to the test process,
 * never to a task (tasks here return an error or raise instead).
 */
#ifndef MPROC_TESTUTIL_H
#define MPROC_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

/* ---- the start method ------------------------------------------------ */

/* The suites run once per start method: MPROC_TEST_START=forkserver picks
 * the fork server, MPROC_TEST_START=threads the threads backend (see
 * tests/meson.build). */
static inline int open_with_start(struct mproc_pool **p,
                                  struct mproc_pool_opts *o)
{
	const char *m = getenv("MPROC_TEST_START");
	o->start_method = m && strcmp(m, "forkserver") == 0
	                          ? MPROC_START_FORKSERVER
	                          : MPROC_START_FORK;
	if (m && strcmp(m, "threads") == 0)
		o->backend = MPROC_BACKEND_THREADS;
	return mproc_pool_open(p, o);
}

/* The suite runs against the threads backend (MPROC_TEST_START=threads). */
static inline bool test_threads(void)
{
	const char *m = getenv("MPROC_TEST_START");
	return m && strcmp(m, "threads") == 0;
}

/* The suite runs on the MPI backend (tests/mpi-run.sh sets MPROC_BACKEND):
 * its workers are forked by node agents, other ranks of the job. */
static inline bool test_mpi(void)
{
	const char *b = getenv("MPROC_BACKEND");
	return b && strcmp(b, "mpi") == 0;
}

/* ---- memory shared with the workers ---------------------------------- */

/* Size of test_shared()'s mapping. */
#define TEST_SHARED_SIZE ((size_t)1 << 16)

/* Memory that the test and the tasks of every worker see alike, whatever
 * forked the worker: the test process, the fork server, or a node agent of
 * an MPI job on the same machine (which never runs the test's code: on the
 * agents, mproc_init() does not return). It is the file named by
 * MPROC_TEST_SHM (tests/mpi-run.sh sets it for every rank; test_shared_setup
 * otherwise), mapped MAP_SHARED by each process on its first call, zeroed
 * when the file is made. Answers NULL if it cannot be mapped (a task then
 * reports an error: it never asserts). */
static inline void *test_shared(void)
{
	static void *mem;
	if (mem)
		return mem;
	const char *path = getenv("MPROC_TEST_SHM");
	if (!path || !*path)
		return NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	/* Every process may come first: each makes the file as large as
	 * needed, which changes nothing once one has. */
	struct stat sb;
	void *m = MAP_FAILED;
	if (fstat(fd, &sb) == 0 &&
	    (sb.st_size >= (off_t)TEST_SHARED_SIZE ||
	     ftruncate(fd, (off_t)TEST_SHARED_SIZE) == 0))
		m = mmap(NULL, TEST_SHARED_SIZE, PROT_READ | PROT_WRITE,
		         MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return NULL;
	return mem = m;
}

/* In main, before run_suite (so on every rank of an MPI job, and before
 * anything forks): names the file of test_shared() if MPROC_TEST_SHM does
 * not (after this process's pid, in /dev/shm), and maps it. Answers true
 * when it named the file: then test_shared_cleanup() removes it. */
static inline bool test_shared_setup(void)
{
	bool named = false;
	const char *path = getenv("MPROC_TEST_SHM");
	if (!path || !*path) {
		char name[64];
		snprintf(name, sizeof name, "/dev/shm/mproc-test-%d",
		         (int)getpid());
		unlink(name); /* not a leftover of an earlier pid */
		setenv("MPROC_TEST_SHM", name, 1);
		named = true;
	}
	test_shared();
	return named;
}

/* Removes the file test_shared_setup() named; the mappings stay. */
static inline void test_shared_cleanup(bool named)
{
	const char *path = getenv("MPROC_TEST_SHM");
	if (named && path)
		unlink(path);
}

/* ---- time and leftovers ---------------------------------------------- */

/* Sleeps ms milliseconds, however often a signal interrupts it. */
static inline void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Descriptors open in this process. */
static inline int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n - 1; /* the one opendir itself holds */
}

/* No child process is left, not even a zombie. */
static inline bool no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* ---- tasks (run in workers: they never assert) ----------------------- */

/* Returns its argument. */
static inline int t_identity(const struct mproc_value *arg,
                             struct mproc_writer *ret)
{
	return mproc_write_value(ret, arg);
}

/* Returns the square of an int; raises TypeError for anything else. */
static inline int t_square(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	int64_t x;
	if (mproc_value_int(arg, &x) < 0)
		return mproc_raise(ret, "TypeError", "expected int, got %s",
		                   mproc_type_name(mproc_value_type(arg)));
	return mproc_write_int(ret, x * x);
}

/* Returns its int argument; raises ValueError for 5. */
static inline int t_fail_on_5(const struct mproc_value *arg,
                              struct mproc_writer *ret)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	if (x == 5)
		return mproc_raise(ret, "ValueError", "bad input %lld", (long long)x);
	return mproc_write_int(ret, x);
}

/* Sleeps `arg` milliseconds, returns arg. */
static inline int t_sleep(const struct mproc_value *arg,
                          struct mproc_writer *ret)
{
	int64_t ms = 0;
	mproc_value_int(arg, &ms);
	sleep_ms(ms);
	return mproc_write_int(ret, ms);
}

/* The worker's identity: its thread id (a process's is its pid). */
static inline int t_worker_id(const struct mproc_value *arg,
                              struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, gettid());
}

/* ---- generators (mproc_input_fn_init) -------------------------------- */

/* Yields 0, 1, ... up to *(size_t *)cookie, excluded: a generator of
 * unknown length. */
static inline int gen_index_below(void *cookie, size_t index,
                                  struct mproc_writer *w)
{
	size_t *limit = cookie;
	if (index >= *limit)
		return 0;
	return mproc_write_int(w, (int64_t)index) < 0 ? -1 : 1;
}

/* Yields 0 to 6, then fails with -EIO. */
static inline int gen_fail_at_7(void *cookie, size_t index,
                                struct mproc_writer *w)
{
	(void)cookie;
	if (index == 7)
		return -EIO;
	return mproc_write_int(w, (int64_t)index) < 0 ? -1 : 1;
}

/* ---- in the test process only: helpers that assert ------------------- */

#ifdef ck_assert_int_eq
/* A pool with options o (start method from the environment); o keeps the
 * start method it was opened with. */
static inline struct mproc_pool *open_pool_opts(struct mproc_pool_opts *o)
{
	struct mproc_pool *p = NULL;
	ck_assert_int_eq(open_with_start(&p, o), 0);
	return p;
}

/* A pool of n workers, with the start method from the environment. */
static inline struct mproc_pool *open_pool(unsigned n)
{
	struct mproc_pool_opts o = {.processes = n};
	return open_pool_opts(&o);
}

/* Close, join and free: every worker is reaped before it returns. */
static inline void finish_pool(struct mproc_pool *p)
{
	ck_assert_int_eq(mproc_pool_close(p), 0);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
}

/* Item i of a call's results, by value; asserts that it is there. */
static inline struct mproc_result item(const struct mproc_results *r, size_t i)
{
	struct mproc_result it = {0};
	ck_assert_int_eq(mproc_results_get(r, i, &it), 0);
	return it;
}

/* A value that must be an int. */
static inline int64_t int_of(const struct mproc_value *v)
{
	int64_t x = -999;
	ck_assert_int_eq(mproc_value_int(v, &x), 0);
	return x;
}

/* Pickle of one int in a static writer (valid until the next call). */
static inline const void *pickle_int(int64_t x, size_t *len)
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

/* Check's main: runs suite s in the mode CK_FORK asks for (fork by
 * default), frees it, and answers the program's exit status. Under
 * MPROC_BACKEND=mpi and mpirun (tests/mpi-run.sh, CK_FORK=no) rank 0 runs
 * the suite and the other ranks serve it as node agents from
 * mproc_init, which they never leave. */
static inline int run_suite(Suite *s)
{
	mproc_init(0, NULL, NULL);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif

#endif
