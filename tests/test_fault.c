/*
 * test_fault.c - fault isolation: every task ends in exactly one result,
 * whatever its worker does; one test per row of docs/faults.md.
 *
 * Tasks that crash run in forked workers; every assertion is made in the
 * test process, and every pool is joined or freed before a test ends.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"


#if defined(__SANITIZE_ADDRESS__)
/* A task that calls exit() must end with its own status, not with the leak
 * checker's verdict on the worker (other suites check leaks). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

/* ---- tasks ------------------------------------------------------------- */

static int64_t arg_int(const struct mproc_value *arg)
{
	int64_t x = 0;
	mproc_value_int(arg, &x);
	return x;
}

static volatile int sink;
static char *volatile keep; /* allocations the compiler must not elide */
static int first_pool_fd = 3; /* set before the pool opens */
static volatile uintptr_t bad_address = 0x10;
static volatile int keep_going = 1;

/* Endless recursion, but not one the compiler can prove endless. */
static int recurse(int depth)
{
	volatile char pad[1024];
	pad[0] = (char)depth;
	return keep_going ? recurse(depth + 1) + pad[0] : pad[0];
}

/* What the task does is chosen by its argument. */
enum { DO_OK, DO_SEGV, DO_BUS, DO_FPE, DO_ILL, DO_ABORT, DO_STACK, DO_EXIT, DO__EXIT,
       DO_FORK, DO_SLEEP, DO_IGNORE_TERM, DO_CLOSE_FDS, DO_NOISE, DO_GARBAGE,
       DO_GROW_RSS, DO_GROW_VM, DO_DEVNULL_FDS, DO_FORGED_HEADER, DO_BRIEF,
       DO_BIG_ALLOC, DO_LATE_SEGV };

static int t_fault(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t what = arg_int(arg);
	switch (what) {
	case DO_SEGV:
		*(volatile int *)bad_address = 1;
		break;
	case DO_BUS: {
		/* A mapping past the end of its file: SIGBUS on touch. */
		char path[] = "/tmp/mproc-bus-XXXXXX";
		int fd = mkstemp(path);
		unlink(path);
		volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		                        MAP_SHARED, fd, 0);
		p[0] = 1;
		break;
	}
	case DO_FPE: {
#if defined(__x86_64__) || defined(__i386__)
		/* The hardware's own division, which UBSan cannot intercept. */
		unsigned a = 7, zero = 0;
		__asm__ volatile("xorl %%edx, %%edx\n\tdivl %1"
		                 : "+a"(a)
		                 : "r"(zero)
		                 : "edx");
		sink = (int)a;
#else
		volatile int num = 7, zero = 0;
		sink = num / zero;
#endif
		break;
	}
	case DO_ILL:
		__builtin_trap();
		break;
	case DO_ABORT:
		abort();
	case DO_STACK:
		sink = recurse(0);
		break;
	case DO_EXIT:
		exit(3);
	case DO__EXIT:
		_exit(4);
	case DO_FORK: {
		pid_t pid = fork();
		if (pid == 0)
			return mproc_write_cstr(ret, "from the grandchild");
		waitpid(pid, NULL, 0);
		return mproc_write_cstr(ret, "from the worker");
	}
	case DO_SLEEP:
		sleep_ms(10000);
		break;
	case DO_IGNORE_TERM:
		signal(SIGTERM, SIG_IGN);
		sleep_ms(10000);
		break;
	case DO_CLOSE_FDS:
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		break;
	case DO_NOISE: {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		for (int i = 0; i < 10000; i++)
			printf("noise %d\n", i), fprintf(stderr, "more noise %d\n", i);
		fflush(stdout);
		break;
	}
	case DO_GARBAGE: {
		static const char junk[64] = "garbage garbage garbage";
		/* Only descriptors the pool made: the ones below belong to the
		 * test harness, which shares them with this worker. */
		for (int fd = first_pool_fd; fd < 1024; fd++)
			if (write(fd, junk, sizeof junk) < 0)
				continue;
		break;
	}
	case DO_GROW_RSS: {
		size_t n = 96u << 20;
		char *p = malloc(n);
		if (p)
			memset(p, 1, n); /* kept: the worker is retired after */
		keep = p;
		break;
	}
	case DO_DEVNULL_FDS: {
		/* /dev/null over every descriptor the pool made. */
		int null = open("/dev/null", O_RDWR);
		for (int fd = first_pool_fd; fd < 1024; fd++)
			if (fd != null && fcntl(fd, F_GETFD) >= 0)
				dup2(null, fd);
		close(null);
		break;
	}
	case DO_FORGED_HEADER: {
		/* A well-formed RESULT header that claims 256 MiB, then nothing:
		 * the worker goes back to waiting for work. */
		unsigned char hdr[32] = {0};
		uint32_t len = 256u << 20, count = 1;
		memcpy(hdr, &len, 4);
		hdr[4] = 2; /* RESULT */
		memcpy(hdr + 8, &count, 4);
		for (int fd = first_pool_fd; fd < 1024; fd++)
			if (write(fd, hdr, sizeof hdr) < 0)
				continue;
		break;
	}
	case DO_BRIEF:
		sleep_ms(20);
		break;
	case DO_LATE_SEGV:
		sleep_ms(40);
		*(volatile int *)16 = 1;
		break;
	case DO_BIG_ALLOC: {
		/* One allocation far past the limit fails, and the task aborts:
		 * the worker's address space is nowhere near the limit then. */
		char *big = malloc((size_t)1 << 30);
		if (!big)
			abort();
		keep = big;
		break;
	}
	case DO_GROW_VM:
		/* Allocate until the address-space limit says no, then fail. */
		for (;;) {
			char *p = malloc(16u << 20);
			if (!p)
				abort();
			p[0] = 1;
			keep = p;
		}
	}
	return mproc_write_int(ret, what);
}

/* Its worker's pid, after 5 ms (so that a map spreads). */
static int t_getpid_brief(const struct mproc_value *arg,
                          struct mproc_writer *ret)
{
	(void)arg;
	sleep_ms(5);
	return mproc_write_int(ret, getpid());
}

static int t_getpid(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, getpid());
}

/*
 * What the tasks and the test share (task logs, counters, flags): memory
 * that every worker sees, including the workers of an MPI job's node
 * agents (testutil.h, test_shared). A test resets it with shared_reset()
 * before it opens its pool; tasks count with atomic operations.
 */
#define LOG_MAX 128
struct fault_shared {
	int runs[LOG_MAX]; /* how often each index ran (t_logged, t_log_brief) */
	int flaky_runs;    /* t_flaky's runs */
	int crashed_once;  /* t_crash_once_at crashed */
	double crash_at;   /* t_crash_once_at's argument to crash on */
	int init_fails;    /* init_maybe_fail exits */
};
_Static_assert(sizeof(struct fault_shared) <= TEST_SHARED_SIZE,
               "struct fault_shared fits in test_shared()");

static struct fault_shared *shared(void)
{
	return test_shared();
}

/* In the test: zeroes the shared state, and answers it. */
static struct fault_shared *shared_reset(void)
{
	struct fault_shared *sh = shared();
	ck_assert_ptr_nonnull(sh);
	memset(sh, 0, sizeof *sh);
	return sh;
}

/* Counts one run of index x in the shared log; false without it. */
static bool log_run(int64_t x)
{
	struct fault_shared *sh = shared();
	if (!sh || x < 0 || x >= LOG_MAX)
		return false;
	__atomic_fetch_add(&sh->runs[x], 1, __ATOMIC_SEQ_CST);
	return true;
}

/* Logs its index, then crashes on index 5. */
static int t_logged(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = arg_int(arg);
	if (!log_run(x))
		return mproc_raise(ret, "OSError", "no shared log");
	if (x == 5)
		raise(SIGSEGV);
	return mproc_write_int(ret, x);
}

/* Crashes until it has run `arg` times before (counted in shared memory). */
static int t_flaky(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t need = arg_int(arg);
	struct fault_shared *sh = shared();
	if (!sh)
		return mproc_raise(ret, "OSError", "no shared counter");
	int runs = __atomic_fetch_add(&sh->flaky_runs, 1, __ATOMIC_SEQ_CST);
	if (runs < need)
		raise(SIGSEGV);
	return mproc_write_int(ret, (int64_t)runs + 1);
}

/* Returns its int or float argument; crashes the first time that it is
 * the shared crash_at (set before the pool opens). */
static int t_crash_once_at(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	double f = 0;
	int64_t x = 0;
	bool is_float = mproc_value_type(arg) == MPROC_FLOAT;
	struct fault_shared *sh = shared();
	if (!sh)
		return mproc_raise(ret, "OSError", "no shared flag");
	if (is_float)
		mproc_value_float(arg, &f);
	else
		f = (double)(x = arg_int(arg));
	if (f == sh->crash_at &&
	    __atomic_exchange_n(&sh->crashed_once, 1, __ATOMIC_SEQ_CST) == 0)
		raise(SIGSEGV);
	return is_float ? mproc_write_float(ret, f) : mproc_write_int(ret, x);
}

static int t_fault_or_segv_at_0(const struct mproc_value *arg,
                                struct mproc_writer *ret)
{
	if (arg_int(arg) == 0)
		raise(SIGSEGV);
	sleep_ms(1);
	return mproc_write_int(ret, arg_int(arg));
}

static int t_raise(const struct mproc_value *arg, struct mproc_writer *ret)
{
	return mproc_raise(ret, "ValueError", "input %lld", (long long)arg_int(arg));
}

/* ---- helpers ----------------------------------------------------------- */

/* Finish the pool (testutil.h); not even a zombie is left. */
static void finish(struct mproc_pool *p)
{
	finish_pool(p);
	ck_assert(no_children());
}

static struct mproc_results *run_one(struct mproc_pool *p, mproc_task_fn fn,
                                     int64_t x)
{
	struct mproc_writer *w;
	const void *d;
	size_t n;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_write_int(w, x);
	ck_assert_int_eq(mproc_writer_finish(w, &d, &n), 0);
	struct mproc_results *r = NULL;
	int rc = mproc_apply(p, fn, d, n, &r);
	mproc_writer_free(w);
	ck_assert(rc == 0 || rc == MPROC_ERAISED);
	return r;
}

/* Logs its index, sleeps 10 ms, returns the index. */
static int t_log_brief(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = arg_int(arg);
	if (!log_run(x))
		return mproc_raise(ret, "OSError", "no shared log");
	sleep_ms(10);
	return mproc_write_int(ret, x);
}

/* How often index x ran, by the shared log. */
static int runs_of(int x)
{
	return __atomic_load_n(&shared()->runs[x], __ATOMIC_SEQ_CST);
}

/* ---- signals ----------------------------------------------------------- */

static void expect_signal(int what, int sig, int si_code, uintptr_t addr)
{
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_fault, what);
	const struct mproc_result item0 = item(r, 0), *it = &item0;
	ck_assert_int_eq(it->status, MPROC_CRASHED);
	ck_assert_ptr_nonnull(it->error->crash);
	ck_assert_int_eq(it->error->crash->signal, sig);
	ck_assert_int_eq(it->error->crash->exit_status, -1);
	if (si_code)
		ck_assert_int_eq(it->error->crash->si_code, si_code);
	if (addr)
		ck_assert_uint_eq(it->error->crash->addr, addr);
	ck_assert_ptr_nonnull(it->error->crash->report);
	ck_assert_ptr_nonnull(strstr(it->error->crash->report, "#0 "));
	ck_assert_str_eq(it->error->type, "WorkerCrashed");
	ck_assert_ptr_nonnull(strstr(it->error->msg, sigabbrev_np(sig)));
	mproc_results_free(r);
	/* The pool goes on with a fresh worker. */
	r = run_one(p, t_fault, DO_OK);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.crashed, 1);
	ck_assert_uint_eq(st.workers_replaced, 1);
	finish(p);
}

START_TEST(test_fault_segv_is_crashed_with_address_and_report)
{
	expect_signal(DO_SEGV, SIGSEGV, SEGV_MAPERR, 0x10);
}
END_TEST

START_TEST(test_fault_bus_is_crashed)
{
	expect_signal(DO_BUS, SIGBUS, BUS_ADRERR, 0);
}
END_TEST

START_TEST(test_fault_fpe_is_crashed_intdiv)
{
	expect_signal(DO_FPE, SIGFPE, FPE_INTDIV, 0);
}
END_TEST

START_TEST(test_fault_ill_is_crashed)
{
	expect_signal(DO_ILL, SIGILL, 0, 0);
}
END_TEST

START_TEST(test_fault_abort_is_crashed_sigabrt)
{
	expect_signal(DO_ABORT, SIGABRT, 0, 0);
}
END_TEST

START_TEST(test_fault_stack_overflow_is_crashed_segv)
{
	expect_signal(DO_STACK, SIGSEGV, 0, 0);
}
END_TEST

/* ---- exits --------------------------------------------------------------- */

START_TEST(test_fault_exit_and__exit_are_crashed_with_status)
{
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_fault, DO_EXIT);
	ck_assert_int_eq(item(r, 0).status, MPROC_CRASHED);
	ck_assert_int_eq(item(r, 0).error->crash->signal, 0);
	ck_assert_int_eq(item(r, 0).error->crash->exit_status, 3);
	ck_assert_ptr_nonnull(strstr(item(r, 0).error->msg, "status 3"));
	mproc_results_free(r);
	r = run_one(p, t_fault, DO__EXIT);
	ck_assert_int_eq(item(r, 0).status, MPROC_CRASHED);
	ck_assert_int_eq(item(r, 0).error->crash->exit_status, 4);
	mproc_results_free(r);
	finish(p);
}
END_TEST

/* First run (no marker file yet): makes the marker, runs 400 ms, dies of
 * SIGKILL. The retry: runs 200 ms and returns. */
static int t_die_once_slowly(const struct mproc_value *arg,
                             struct mproc_writer *ret)
{
	const char *path;
	size_t len;
	char buf[256];
	if (mproc_value_str(arg, &path, &len) < 0 || len >= sizeof buf)
		return mproc_raise(ret, "TypeError", "expected a path");
	memcpy(buf, path, len);
	buf[len] = '\0';
	if (access(buf, F_OK) != 0) {
		close(open(buf, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
		sleep_ms(400);
		raise(SIGKILL);
	}
	sleep_ms(200);
	return mproc_write_cstr(ret, "second run");
}

START_TEST(test_fault_retry_is_timed_from_its_own_start)
{
	/* The retry keeps the task's id; it must not inherit the first run's
	 * start: 400 ms then 200 ms are each under the 500 ms timeout. */
	char path[] = "/tmp/mproc-retry-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	unlink(path);
	struct mproc_pool_opts o = {.processes = 1, .task_timeout = 0.5,
	                            .retries = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_write_cstr(w, path);
	const void *d;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &d, &n), 0);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_die_once_slowly, d, n, &r), 0);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	ck_assert_uint_eq(item(r, 0).attempts, 2);
	mproc_results_free(r);
	mproc_writer_free(w);
	unlink(path);
	finish(p);
}
END_TEST

START_TEST(test_fault_call_timeout_behind_untimed_tasks_fires)
{
	/* Two untimed tasks, then one with its own timeout, all in the one
	 * worker's queue: the watch must look while the timed one runs even
	 * though the first in the queue has no timeout. */
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	const int64_t ms[3] = {200, 100, 3000};
	struct mproc_async *a[3];
	for (int i = 0; i < 3; i++) {
		const void *d;
		size_t n;
		mproc_writer_reset(w);
		mproc_write_int(w, ms[i]);
		ck_assert_int_eq(mproc_writer_finish(w, &d, &n), 0);
		struct mproc_call_opts co = {.timeout = i == 2 ? 0.3 : 0};
		ck_assert_int_eq(mproc_apply_async_opts(p, t_sleep, d, n, NULL,
		                                        &co, &a[i]), 0);
	}
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(a[2], -1, &r), MPROC_ERAISED);
	ck_assert_int_eq(item(r, 0).status, MPROC_TIMEOUT);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(mproc_async_get(a[i], -1, &r), 0);
		ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	}
	for (int i = 0; i < 3; i++)
		mproc_async_free(a[i]);
	mproc_writer_free(w);
	finish(p);
}
END_TEST

START_TEST(test_fault_grandchild_never_runs_the_worker_loop)
{
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	int64_t what[6] = {DO_FORK, DO_OK, DO_FORK, DO_OK, DO_OK, DO_OK};
	mproc_input_int64s(&in, what, 6);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_fault, &in, 6, &r), 0);
	const char *s;
	size_t n;
	ck_assert_int_eq(mproc_value_str(item(r, 0).value, &s, &n), 0);
	ck_assert_int_eq(strncmp(s, "from the worker", n), 0);
	for (int i = 1; i < 6; i++)
		ck_assert_int_eq(item(r, i).status, MPROC_OK);
	ck_assert_uint_eq(item(r, 3).attempts, 1);
	mproc_results_free(r);
	finish(p);
}
END_TEST

/* ---- from outside ---------------------------------------------------- */

START_TEST(test_fault_kill_9_from_outside_is_crashed_sigkill)
{
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_getpid, 0);
	pid_t pid = (pid_t)int_of(item(r, 0).value);
	mproc_results_free(r);
	struct mproc_writer *w;
	const void *d;
	size_t n;
	mproc_writer_new(&w, 5);
	mproc_write_int(w, DO_SLEEP);
	mproc_writer_finish(w, &d, &n);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(p, t_fault, d, n, NULL, &a), 0);
	mproc_writer_free(w);
	ck_assert_int_eq(mproc_async_wait(a, 0.2), -ETIMEDOUT);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	const struct mproc_results *res;
	ck_assert_int_eq(mproc_async_get(a, 5, &res), MPROC_ERAISED);
	ck_assert_int_eq(item(res, 0).status, MPROC_CRASHED);
	ck_assert_int_eq(item(res, 0).error->crash->signal, SIGKILL);
	ck_assert_ptr_null(item(res, 0).error->crash->report);
	mproc_async_free(a);
	finish(p);
}
END_TEST

/* ---- timeouts ---------------------------------------------------------- */

START_TEST(test_fault_timeout_stops_task_with_sigterm)
{
	struct mproc_pool_opts o = {.processes = 2, .task_timeout = 0.2};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	int64_t what[4] = {DO_OK, DO_SLEEP, DO_OK, DO_OK};
	mproc_input_int64s(&in, what, 4);
	struct mproc_results *r;
	time_t t0 = time(NULL);
	ck_assert_int_eq(mproc_map(p, t_fault, &in, 1, &r), MPROC_ERAISED);
	ck_assert_int_le(time(NULL) - t0, 3);
	ck_assert_int_eq(item(r, 1).status, MPROC_TIMEOUT);
	ck_assert_str_eq(item(r, 1).error->type, "TimeoutError");
	ck_assert_ptr_nonnull(strstr(item(r, 1).error->msg, "SIGTERM"));
	ck_assert_int_eq(item(r, 1).error->crash->signal, SIGTERM);
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_uint_eq(st.timed_out, 1);
	finish(p);
}
END_TEST

static void cb_linger(void *cookie, const struct mproc_results *res)
{
	(void)cookie;
	(void)res;
	sleep_ms(400);
}

/* A task that crashes while the thread driving the pool is away (in a
 * callback) for longer than the task's timeout ends CRASHED with its
 * signal: the watch, back first, does not take the dead worker for a
 * running one. */
START_TEST(test_fault_crash_while_driver_away_is_no_timeout)
{
	struct mproc_pool_opts o = {.processes = 2, .task_timeout = 0.1};
	struct mproc_pool *p = open_pool_opts(&o);
	size_t len;
	struct mproc_async *crash, *brief;
	const void *arg = pickle_int(DO_LATE_SEGV, &len);
	ck_assert_int_eq(mproc_apply_async(p, t_fault, arg, len, NULL, &crash), 0);
	/* Its result comes while the crashing task runs, and its callback
	 * keeps the driver away until well past the other's timeout. */
	struct mproc_callbacks cb = {.callback = cb_linger};
	arg = pickle_int(DO_BRIEF, &len);
	ck_assert_int_eq(mproc_apply_async(p, t_fault, arg, len, &cb, &brief), 0);
	const struct mproc_results *res;
	ck_assert_int_eq(mproc_async_get(crash, -1, &res), MPROC_ERAISED);
	ck_assert_int_eq(item(res, 0).status, MPROC_CRASHED);
	ck_assert_int_eq(item(res, 0).error->crash->signal, SIGSEGV);
	ck_assert_int_eq(mproc_async_get(brief, -1, &res), 0);
	mproc_async_free(crash);
	mproc_async_free(brief);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_uint_eq(st.timed_out, 0);
	finish(p);
}
END_TEST

/* The state letter of process pid in /proc (R, S, Z...), or '?'. */
static char proc_state(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* Reading statistics never signals a worker: only the calls that wait run
 * the timeout watch, and a task is timed from when they first see it. */
START_TEST(test_fault_stats_never_signal_a_worker)
{
	struct mproc_pool_opts o = {.processes = 1, .task_timeout = 0.05};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_worker_id, NULL, 0, &r), 0);
	pid_t pid = (pid_t)int_of(mproc_results_value(r, 0));
	mproc_results_free(r);
	size_t len;
	const void *arg = pickle_int(600, &len);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_apply_async(p, t_sleep, arg, len, NULL, &a), 0);
	struct mproc_pool_stats st;
	for (int i = 0; i < 30; i++) {
		ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
		sleep_ms(10);
	}
	/* Well past its timeout, the worker still runs the task. */
	char state = proc_state(pid);
	ck_assert_msg(state == 'S' || state == 'R', "worker state %c", state);
	ck_assert_uint_eq(st.timed_out, 0);
	const struct mproc_results *res;
	ck_assert_int_eq(mproc_async_get(a, -1, &res), MPROC_ERAISED);
	ck_assert_int_eq(item(res, 0).status, MPROC_TIMEOUT);
	mproc_async_free(a);
	finish(p);
}
END_TEST

START_TEST(test_fault_timeout_ignoring_sigterm_gets_sigkill)
{
	struct mproc_pool_opts o = {.processes = 1, .task_timeout = 0.1,
	                            .kill_grace = 0.2};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_fault, DO_IGNORE_TERM);
	ck_assert_int_eq(item(r, 0).status, MPROC_TIMEOUT);
	ck_assert_int_eq(item(r, 0).error->crash->signal, SIGKILL);
	ck_assert_ptr_nonnull(strstr(item(r, 0).error->msg, "SIGKILL"));
	mproc_results_free(r);
	r = run_one(p, t_fault, DO_OK);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	mproc_results_free(r);
	finish(p);
}
END_TEST

START_TEST(test_fault_per_call_timeout_overrides_the_pool)
{
	/* A pool with no timeout; one call with its own. */
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	int64_t ms[3] = {10, 5000, 10};
	struct mproc_input in;
	mproc_input_int64s(&in, ms, 3);
	struct mproc_call_opts co = {.timeout = 0.2};
	struct mproc_async *a;
	ck_assert_int_eq(mproc_map_async_opts(p, t_sleep, &in, 1, NULL, &co, &a), 0);
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(a, 5, &r), MPROC_ERAISED);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	ck_assert_int_eq(item(r, 1).status, MPROC_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(item(r, 1).error->msg, "0.2 s"));
	ck_assert_int_eq(item(r, 2).status, MPROC_OK);
	mproc_async_free(a);
	finish(p);

	/* A pool with a timeout; one call exempt from it. */
	struct mproc_pool_opts o2 = {.processes = 1, .task_timeout = 0.05};
	p = open_pool_opts(&o2);
	int64_t one = 300;
	mproc_input_int64s(&in, &one, 1);
	struct mproc_call_opts none = {.timeout = -1};
	struct mproc_iter *it;
	const struct mproc_result *res;
	ck_assert_int_eq(mproc_imap_opts(p, t_sleep, &in, 1, true, &none, &it), 0);
	ck_assert_int_eq(mproc_iter_next(it, 5, &res), 1);
	ck_assert_int_eq(res->status, MPROC_OK);
	mproc_iter_free(it);
	struct mproc_call_opts bad = {.timeout = 1e12};
	ck_assert_int_eq(mproc_apply_async_opts(p, t_sleep, NULL, 0, NULL, &bad, &a),
	                 -EINVAL);
	finish(p);
}
END_TEST

/* ---- memory -------------------------------------------------------------- */

START_TEST(test_fault_max_rss_retires_worker_after_task)
{
	struct mproc_pool_opts o = {.processes = 1, .max_rss = 64u << 20};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_getpid, 0);
	int64_t pid1 = int_of(item(r, 0).value);
	mproc_results_free(r);
	r = run_one(p, t_fault, DO_GROW_RSS);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK); /* the task did not fail */
	mproc_results_free(r);
	r = run_one(p, t_getpid, 0);
	ck_assert_int_ne(int_of(item(r, 0).value), pid1);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_uint_eq(st.workers_retired, 1);
	ck_assert_uint_eq(st.crashed + st.memory, 0);
	finish(p);
}
END_TEST

START_TEST(test_fault_max_vm_failure_is_memory)
{
#if defined(__SANITIZE_ADDRESS__)
	/* AddressSanitizer's shadow memory cannot live under RLIMIT_AS. */
	return;
#endif
	struct mproc_pool_opts o = {.processes = 1, .max_vm = 512u << 20};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_fault, DO_GROW_VM);
	ck_assert_int_eq(item(r, 0).status, MPROC_MEMORY);
	ck_assert_str_eq(item(r, 0).error->type, "MemoryError");
	ck_assert_int_eq(item(r, 0).error->crash->signal, SIGABRT);
	mproc_results_free(r);
	r = run_one(p, t_fault, DO_BIG_ALLOC);
	ck_assert_int_eq(item(r, 0).status, MPROC_MEMORY);
	ck_assert_int_eq(item(r, 0).error->crash->signal, SIGABRT);
	mproc_results_free(r);
	finish(p);
}
END_TEST

/* ---- the channel ------------------------------------------------------- */

START_TEST(test_fault_stdout_noise_does_not_disturb_results)
{
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_fault, DO_NOISE);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	ck_assert_int_eq(int_of(item(r, 0).value), DO_NOISE);
	mproc_results_free(r);
	finish(p);
}
END_TEST

static void expect_channel_breaker_blamed(int what)
{
	first_pool_fd = dup(0);
	close(first_pool_fd);
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	int64_t tasks[12];
	for (int i = 0; i < 12; i++)
		tasks[i] = i == 7 ? what : DO_OK;
	struct mproc_input in;
	mproc_input_int64s(&in, tasks, 12);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_fault, &in, 4, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	ck_assert_int_eq(item(r, 7).status, MPROC_CRASHED);
	for (int i = 0; i < 12; i++)
		if (i != 7)
			ck_assert_int_eq(int_of(item(r, i).value), DO_OK);
	mproc_results_free(r);
	finish(p);
}

START_TEST(test_fault_task_closing_pool_fds_is_blamed_exactly)
{
	expect_channel_breaker_blamed(DO_CLOSE_FDS);
}
END_TEST

START_TEST(test_fault_task_writing_into_pool_fds_is_blamed_exactly)
{
	expect_channel_breaker_blamed(DO_GARBAGE);
}
END_TEST

/* A task that breaks its worker's channel in the middle of a chunk, with
 * tasks after it still to run: only that task ends CRASHED, naming what
 * it did; every other task ends as it would have. */
static void expect_breaker_mid_chunk(int what, const char *says)
{
	first_pool_fd = dup(0);
	close(first_pool_fd);
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	int64_t tasks[12];
	for (int i = 0; i < 12; i++)
		tasks[i] = i == 4 ? what : DO_BRIEF;
	struct mproc_input in;
	mproc_input_int64s(&in, tasks, 12);
	struct mproc_results *r;
	uint64_t t0 = (uint64_t)time(NULL);
	ck_assert_int_eq(mproc_map(p, t_fault, &in, 12, &r), MPROC_ERAISED);
	ck_assert_uint_le((uint64_t)time(NULL) - t0, 5);
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	struct mproc_result bad = item(r, 4);
	ck_assert_int_eq(bad.status, MPROC_CRASHED);
	ck_assert_msg(strstr(bad.error->msg, says), "message: %s", bad.error->msg);
	for (int i = 0; i < 12; i++)
		if (i != 4)
			ck_assert_int_eq(int_of(item(r, i).value), DO_BRIEF);
	mproc_results_free(r);
	/* The pool goes on. */
	r = run_one(p, t_fault, DO_OK);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	mproc_results_free(r);
	finish(p);
}

START_TEST(test_fault_closing_fds_mid_chunk_blames_only_that_task)
{
	expect_breaker_mid_chunk(DO_CLOSE_FDS, "pipes");
}
END_TEST

START_TEST(test_fault_devnull_over_fds_mid_chunk_blames_only_that_task)
{
	expect_breaker_mid_chunk(DO_DEVNULL_FDS, "pipes");
}
END_TEST

START_TEST(test_fault_garbage_mid_chunk_blames_only_that_task)
{
	expect_breaker_mid_chunk(DO_GARBAGE, "protocol error");
}
END_TEST

START_TEST(test_fault_forged_header_mid_chunk_blames_only_that_task)
{
	expect_breaker_mid_chunk(DO_FORGED_HEADER, "protocol error");
}
END_TEST

/* A worker stopped (SIGSTOP) while idle keeps none of the tasks sent to
 * it: they are taken back and run elsewhere, and when it resumes it skips
 * them. Every task runs exactly once. */
START_TEST(test_fault_stopped_worker_keeps_no_work)
{
	shared_reset();
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	/* Both workers' pids. */
	pid_t pids[2] = {0, 0};
	for (int tries = 0; tries < 50 && !pids[1]; tries++) {
		struct mproc_input in;
		mproc_input_range(&in, 0, 8, 1);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_map(p, t_getpid_brief, &in, 1, &r), 0);
		for (size_t i = 0; i < 8; i++) {
			pid_t pid = (pid_t)int_of(mproc_results_value(r, i));
			if (!pids[0])
				pids[0] = pid;
			else if (pid != pids[0])
				pids[1] = pid;
		}
		mproc_results_free(r);
	}
	ck_assert_int_ne(pids[1], 0);
	ck_assert_int_eq(kill(pids[0], SIGSTOP), 0);
	struct mproc_input in;
	mproc_input_range(&in, 0, 40, 1);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_map_async(p, t_log_brief, &in, 1, NULL, &a), 0);
	/* 40 tasks of 10 ms on one worker, and the stopped one's taken back. */
	ck_assert_int_eq(mproc_async_wait(a, 5), 0);
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(a, 0, &r), 0);
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(int_of(item(r, i).value), i);
	mproc_async_free(a);
	ck_assert_int_eq(kill(pids[0], SIGCONT), 0);
	/* Resumed, it skips what was taken back, and works again. */
	sleep_ms(100);
	struct mproc_results *again;
	mproc_input_range(&in, 100, 120, 1);
	ck_assert_int_eq(mproc_map(p, t_log_brief, &in, 1, &again), 0);
	mproc_results_free(again);
	finish(p);
	for (int i = 0; i < 40; i++)
		ck_assert_msg(runs_of(i) == 1, "task %d ran %d times", i, runs_of(i));
	for (int i = 100; i < 120; i++)
		ck_assert_int_eq(runs_of(i), 1);
}
END_TEST

/* ---- attribution, retries, halt --------------------------------------- */

START_TEST(test_fault_chunk_blames_only_the_running_task)
{
	shared_reset();
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 10, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_logged, &in, 10, &r), MPROC_ERAISED);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(item(r, i).status, i == 5 ? MPROC_CRASHED : MPROC_OK);
		ck_assert_uint_eq(item(r, i).attempts, 1);
	}
	mproc_results_free(r);
	finish(p);
	/* Each index ran once: finished results were kept, not run again. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(runs_of(i), 1);
}
END_TEST

/* An iterator keeps a tiny result (a small int here) as the shared node:
 * a retried one still says it ran twice, in order and out of order, with
 * a window small enough that slots are reused. */
START_TEST(test_fault_imap_tiny_result_keeps_its_attempts)
{
	for (int ordered = 0; ordered < 2; ordered++) {
		struct mproc_input in;
		mproc_input_range(&in, 0, 200, 1);
		shared_reset()->crash_at = 77;
		struct mproc_pool_opts o = {.processes = 2, .retries = 1,
		                            .window = 3};
		struct mproc_pool *p = open_pool_opts(&o);
		struct mproc_iter *it;
		ck_assert_int_eq(mproc_imap_opts(p, t_crash_once_at, &in, 1,
		                                 ordered, NULL, &it), 0);
		const struct mproc_result *r;
		size_t n = 0;
		while (mproc_iter_next(it, -1, &r) == 1) {
			ck_assert_int_eq(r->status, MPROC_OK);
			ck_assert_int_eq(int_of(r->value), (int64_t)r->index);
			ck_assert_uint_eq(r->attempts, r->index == 77 ? 2 : 1);
			n++;
		}
		ck_assert_uint_eq(n, 200);
		mproc_iter_free(it);
		finish(p);
	}
}
END_TEST

/*
 * Ranges and number arrays travel packed (no pickle per item): a crash in
 * the middle of such a chunk requeues the rest, and retries the crashed
 * task, each with its own argument.
 */
START_TEST(test_fault_packed_chunks_requeue_their_own_arguments)
{
	int64_t ints[200];
	double doubles[200];
	for (int i = 0; i < 200; i++) {
		ints[i] = (int64_t)i * i * 1000003 - 5000;
		doubles[i] = i * 0.25 - 30;
	}
	for (int kind = 0; kind < 3; kind++) {
		struct mproc_input in;
		size_t crash_index = 77;
		struct fault_shared *sh = shared_reset();
		if (kind == 0) {
			mproc_input_range(&in, 1000, -1000, -7); /* 1000, 993, ... */
			sh->crash_at = 1000 - 7 * 77;
		} else if (kind == 1) {
			mproc_input_int64s(&in, ints, 200);
			sh->crash_at = (double)ints[crash_index];
		} else {
			mproc_input_doubles(&in, doubles, 200);
			sh->crash_at = doubles[crash_index];
		}
		struct mproc_pool_opts o = {.processes = 2, .retries = 1};
		struct mproc_pool *p = open_pool_opts(&o);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_map(p, t_crash_once_at, &in, 50, &r), 0);
		ck_assert_uint_eq(mproc_results_count(r), in.len);
		for (size_t i = 0; i < mproc_results_count(r); i++) {
			const struct mproc_result itemi = item(r, i), *it = &itemi;
			ck_assert_int_eq(it->status, MPROC_OK);
			ck_assert_uint_eq(it->index, i);
			ck_assert_uint_eq(it->attempts, i == crash_index ? 2 : 1);
			if (kind == 2) {
				double f;
				ck_assert_int_eq(mproc_value_float(it->value, &f), 0);
				ck_assert(f == doubles[i]);
			} else {
				ck_assert_int_eq(int_of(it->value),
				                 kind == 0 ? 1000 - 7 * (int64_t)i : ints[i]);
			}
		}
		mproc_results_free(r);
		struct mproc_pool_stats st;
		mproc_pool_stats(p, &st);
		ck_assert_uint_eq(st.retried, 1);
		finish(p);
	}
}
END_TEST

START_TEST(test_fault_retries_rerun_until_success)
{
	shared_reset();
	struct mproc_pool_opts o = {.processes = 2, .retries = 3};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_flaky, 2);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	ck_assert_uint_eq(item(r, 0).attempts, 3);
	/* A retried OK result is kept as a record: its value reads the same. */
	ck_assert_int_eq(int_of(mproc_results_value(r, 0)), 3);
	ck_assert_ptr_eq(mproc_results_value(r, 0), item(r, 0).value);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_uint_eq(st.retried, 2);
	finish(p);
}
END_TEST

START_TEST(test_fault_retries_exhausted_give_final_crash)
{
	shared_reset();
	struct mproc_pool_opts o = {.processes = 1, .retries = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_results *r = run_one(p, t_flaky, 100);
	ck_assert_int_eq(item(r, 0).status, MPROC_CRASHED);
	ck_assert_uint_eq(item(r, 0).attempts, 3);
	mproc_results_free(r);
	finish(p);
}
END_TEST

START_TEST(test_fault_halt_after_failures_stops_input)
{
	struct mproc_pool_opts o = {.processes = 2, .halt_failures = 3};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 10000, 1);
	struct mproc_iter *it;
	const struct mproc_result *res;
	ck_assert_int_eq(mproc_imap(p, t_raise, &in, 1, &it), 0);
	int got = 0, rc;
	while ((rc = mproc_iter_next(it, -1, &res)) == 1) {
		ck_assert_int_eq(res->status, MPROC_RAISED);
		got++;
	}
	ck_assert_int_eq(rc, MPROC_EHALTED);
	ck_assert_int_ge(got, 3);
	ck_assert_int_lt(got, 10000);
	mproc_iter_free(it);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert(st.halted);
	struct mproc_results *r = NULL;
	ck_assert_int_eq(mproc_apply(p, t_raise, NULL, 0, &r), MPROC_EHALTED);
	finish(p);
}
END_TEST

START_TEST(test_fault_halt_fraction)
{
	struct mproc_pool_opts o = {.processes = 2, .halt_fraction = 0.5,
	                            .halt_min_tasks = 20};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 5000, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_raise, &in, 1, &r), MPROC_EHALTED);
	ck_assert_uint_ge(mproc_results_count(r), 20);
	ck_assert_uint_lt(mproc_results_count(r), 5000);
	mproc_results_free(r);
	finish(p);
}
END_TEST

/* ---- the manager's death, Ctrl-C ------------------------------------- */

/* Runs in a child: a manager with 2 workers that reports their pids. */
static void manager_child(int fd)
{
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p;
	if (open_with_start(&p, &o) < 0)
		_exit(1);
	struct mproc_input in;
	mproc_input_range(&in, 0, 64, 1);
	struct mproc_results *r;
	if (mproc_map(p, t_getpid, &in, 1, &r) < 0)
		_exit(1);
	for (size_t i = 0; i < mproc_results_count(r); i++) {
		int64_t pid;
		mproc_value_int(item(r, i).value, &pid);
		if (write(fd, &pid, sizeof pid) < 0)
			_exit(1);
	}
	close(fd);
	int64_t what = DO_SLEEP;
	mproc_input_int64s(&in, &what, 1);
	mproc_map(p, t_fault, &in, 1, &r); /* busy until killed */
	_exit(0);
}

static void reap_orphans(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static bool process_gone(pid_t pid)
{
	reap_orphans();
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static void *open_in_thread(void *arg)
{
	struct mproc_pool_opts o = {.processes = 2};
	if (open_with_start(arg, &o) < 0)
		*(struct mproc_pool **)arg = NULL;
	return NULL;
}

/* A manager that opened its pool from a thread that has ended since:
 * the workers outlive that thread, and run a long task when killed. */
static void manager_child_thread(int fd)
{
	struct mproc_pool *p = NULL;
	pthread_t th;
	if (pthread_create(&th, NULL, open_in_thread, &p) != 0)
		_exit(1);
	pthread_join(th, NULL);
	if (!p)
		_exit(1);
	sleep_ms(50);
	struct mproc_input in;
	mproc_input_range(&in, 0, 8, 1);
	struct mproc_results *r;
	if (mproc_map(p, t_getpid, &in, 1, &r) < 0)
		_exit(1);
	int64_t ok = mproc_results_failed(r) == 0;
	if (write(fd, &ok, sizeof ok) < 0)
		_exit(1);
	close(fd);
	int64_t what = DO_SLEEP;
	mproc_input_int64s(&in, &what, 1);
	mproc_map(p, t_fault, &in, 1, &r); /* busy until killed */
	_exit(0);
}

/* Every process the pool made (workers, the fork server) ends within a
 * second of its manager's SIGKILL, though the thread that opened the pool
 * ended long before (PR_SET_PDEATHSIG follows that thread, so it is not
 * armed: the workers watch their task pipe and their parent). */
START_TEST(test_fault_manager_sigkill_ends_a_thread_opened_pool_within_1s)
{
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t mgr = fork();
	if (mgr == 0) {
		close(fds[0]);
		manager_child_thread(fds[1]);
	}
	close(fds[1]);
	int64_t ok = 0;
	ck_assert_int_eq(read(fds[0], &ok, sizeof ok), sizeof ok);
	close(fds[0]);
	ck_assert_int_eq(ok, 1); /* the workers outlived the opening thread */
	sleep_ms(100);
	ck_assert_int_eq(kill(mgr, SIGKILL), 0);
	waitpid(mgr, NULL, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool gone = false;
	for (;;) {
		reap_orphans();
		gone = waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (gone || t1.tv_sec - t0.tv_sec >= 3)
			break;
		sleep_ms(10);
	}
	double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(gone, "the pool's processes outlived their manager");
	ck_assert_double_lt(dt, 1.0);
}
END_TEST

START_TEST(test_fault_manager_sigkill_ends_workers_within_1s)
{
	/* Orphaned workers are re-parented to us, so we can see them go. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t mgr = fork();
	if (mgr == 0) {
		close(fds[0]);
		manager_child(fds[1]);
	}
	close(fds[1]);
	int64_t pids[64];
	size_t n = 0;
	while (n < 64 && read(fds[0], &pids[n], sizeof pids[0]) == sizeof pids[0])
		n++;
	close(fds[0]);
	ck_assert_uint_eq(n, 64);
	sleep_ms(100);
	ck_assert_int_eq(kill(mgr, SIGKILL), 0);
	waitpid(mgr, NULL, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool all_gone = false;
	while (!all_gone) {
		all_gone = true;
		for (size_t i = 0; i < n; i++)
			all_gone &= process_gone((pid_t)pids[i]);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec >= 2)
			break;
		sleep_ms(10);
	}
	double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert(all_gone);
	ck_assert_double_lt(dt, 1.0);
	reap_orphans();
}
END_TEST

static volatile sig_atomic_t got_sigint;
static void on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
}

START_TEST(test_fault_sigint_to_group_reaches_program_not_workers)
{
	struct sigaction sa = {.sa_handler = on_sigint};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	setpgid(0, 0); /* our own group, as a terminal's foreground job */
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	int64_t what[2] = {DO_SLEEP, DO_SLEEP};
	struct mproc_input in;
	mproc_input_int64s(&in, what, 2);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_map_async(p, t_fault, &in, 1, NULL, &a), 0);
	ck_assert_int_eq(mproc_async_wait(a, 0.2), -ETIMEDOUT);
	kill(0, SIGINT); /* Ctrl-C: the whole group */
	ck_assert_int_eq(mproc_async_wait(a, 0.2), -ETIMEDOUT);
	ck_assert(got_sigint);
	/* The workers ignored it: their tasks are still running. */
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_uint_eq(st.crashed, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(mproc_pool_terminate(p), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 2);
	const struct mproc_results *r;
	ck_assert_int_eq(mproc_async_get(a, 1, &r), MPROC_ERAISED);
	ck_assert_int_eq(item(r, 0).status, MPROC_CANCELLED);
	mproc_async_free(a);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);
	ck_assert(no_children());
}
END_TEST

/* ---- threads in the program ------------------------------------------- */

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop_thread;

static void *busy_thread(void *arg)
{
	(void)arg;
	while (!stop_thread) {
		pthread_mutex_lock(&held);
		for (int i = 0; i < 100; i++)
			free(malloc((size_t)(i + 1) * 64));
		pthread_mutex_unlock(&held);
	}
	return NULL;
}

/* Replacements forked while a thread of the program holds malloc's locks
 * (on MPI the agents fork them: there the relay serves beside the
 * allocating thread). */
START_TEST(test_fault_replacements_start_while_program_threads_allocate)
{
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	pthread_t th;
	stop_thread = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, busy_thread, NULL), 0);
	int64_t what[200];
	for (int i = 0; i < 200; i++)
		what[i] = i % 4 == 0 ? DO_SEGV : DO_OK;
	struct mproc_input in;
	mproc_input_int64s(&in, what, 200);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_fault, &in, 1, &r), MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_failed(r), 50);
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(item(r, i).status,
		                 i % 4 == 0 ? MPROC_CRASHED : MPROC_OK);
	mproc_results_free(r);
	stop_thread = 1;
	pthread_join(th, NULL);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_uint_eq(st.workers_replaced, 50);
	ck_assert_double_gt(st.replace_max, 0);
	finish(p);
}
END_TEST

/* ---- regressions ---------------------------------------------------- */

static int t_exit_86(const struct mproc_value *arg, struct mproc_writer *ret)
{
	if (arg_int(arg) == 3)
		_exit(86); /* the status a worker uses to retire past max_rss */
	return mproc_write_int(ret, arg_int(arg));
}

START_TEST(test_fault_task_exit_with_retire_status_is_crashed)
{
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	mproc_input_range(&in, 0, 8, 1);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_exit_86, &in, 1, &r), MPROC_ERAISED);
	ck_assert_int_eq(item(r, 3).status, MPROC_CRASHED);
	ck_assert_int_eq(item(r, 3).error->crash->exit_status, 86);
	ck_assert_uint_eq(mproc_results_failed(r), 1);
	mproc_results_free(r);
	finish(p);
}
END_TEST

/* Fails once the shared flag is set: a flag in the program's own memory
 * would not reach workers that the fork server starts from the state at
 * open, nor those of an MPI job's agents. */
static void init_maybe_fail(void *arg)
{
	(void)arg;
	struct fault_shared *sh = shared();
	if (!sh || __atomic_load_n(&sh->init_fails, __ATOMIC_SEQ_CST))
		_exit(3);
}

START_TEST(test_fault_failing_initializer_halts_instead_of_looping)
{
	struct fault_shared *sh = shared_reset();
	struct mproc_pool_opts o = {.processes = 2, .initializer = init_maybe_fail};
	struct mproc_pool *p = open_pool_opts(&o);
	__atomic_store_n(&sh->init_fails, 1, __ATOMIC_SEQ_CST); /* replacements fail */
	struct mproc_input in;
	mproc_input_range(&in, 0, 50, 1);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_map_async(p, t_fault_or_segv_at_0, &in, 5, NULL, &a), 0);
	const struct mproc_results *r;
	int rc = mproc_async_get(a, 10, &r);
	ck_assert_int_eq(rc, MPROC_EHALTED);
	size_t crashed = 0;
	for (size_t i = 0; i < mproc_results_count(r); i++) {
		ck_assert(item(r, i).status == MPROC_OK ||
		          item(r, i).status == MPROC_CRASHED);
		crashed += item(r, i).status == MPROC_CRASHED;
	}
	ck_assert_uint_ge(crashed, 1);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert(st.halted);
	ck_assert_uint_le(st.workers_started, 6);
	mproc_async_free(a);
	mproc_pool_free(p);
	ck_assert(no_children());
}
END_TEST

static int t_slow_7(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	sleep_ms(1500);
	return mproc_write_int(ret, 7);
}

static void *crash_then_exit(void *arg)
{
	struct mproc_pool *p = arg;
	struct mproc_results *r = NULL;
	struct mproc_writer *w;
	const void *d;
	size_t n;
	mproc_writer_new(&w, 5);
	mproc_write_int(w, DO_SEGV);
	mproc_writer_finish(w, &d, &n);
	mproc_apply(p, t_fault, d, n, &r); /* this thread forks the replacement */
	mproc_writer_free(w);
	mproc_results_free(r);
	return NULL; /* and exits */
}

START_TEST(test_fault_replacement_outlives_the_thread_that_forked_it)
{
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, crash_then_exit, p), 0);
	pthread_join(th, NULL);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_apply(p, t_slow_7, NULL, 0, &r), 0);
	ck_assert_int_eq(item(r, 0).status, MPROC_OK);
	ck_assert_int_eq(int_of(item(r, 0).value), 7);
	mproc_results_free(r);
	finish(p);
}
END_TEST

/* 0 as loaded, and so at mproc_init; the test changes it after. */
static int64_t generation;

static int t_generation(const struct mproc_value *arg, struct mproc_writer *ret)
{
	if (arg_int(arg) == 1)
		raise(SIGSEGV);
	return mproc_write_int(ret, generation);
}

START_TEST(test_fault_replacement_starts_from_the_state_its_method_promises)
{
	generation = 1;
	struct mproc_pool_opts o = {.processes = 1};
	struct mproc_pool *p = open_pool_opts(&o);
	generation = 2; /* the program moves on after open */
	struct mproc_input in;
	int64_t what[3] = {0, 1, 0}; /* the crash forces a replacement */
	mproc_input_int64s(&in, what, 3);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_generation, &in, 1, &r), MPROC_ERAISED);
	/* MPI: every worker an agent forks, replacements too, starts from
	 * the agent, which ran nothing of the program after mproc_init. */
	ck_assert_int_eq(int_of(item(r, 0).value), test_mpi() ? 0 : 1);
	/* fork: a copy of the program now; forkserver: of the state at open */
	ck_assert_int_eq(int_of(item(r, 2).value),
	                 test_mpi() ? 0
	                 : o.start_method == MPROC_START_FORKSERVER ? 1 : 2);
	mproc_results_free(r);
	finish(p);
}
END_TEST

static pthread_mutex_t taken_after_open = PTHREAD_MUTEX_INITIALIZER;
static int t_lock(const struct mproc_value *arg, struct mproc_writer *ret)
{
	if (arg_int(arg) == 1)
		raise(SIGSEGV);
	pthread_mutex_lock(&taken_after_open);
	pthread_mutex_unlock(&taken_after_open);
	return mproc_write_int(ret, 1);
}

static void *hold_lock(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&taken_after_open);
	while (!stop_thread)
		sleep_ms(5);
	pthread_mutex_unlock(&taken_after_open);
	return NULL;
}

START_TEST(test_fault_forkserver_replacement_never_sees_program_locks)
{
	struct mproc_pool_opts o = {.processes = 1,
	                            .start_method = MPROC_START_FORKSERVER};
	struct mproc_pool *p;
	ck_assert_int_eq(mproc_pool_open(&p, &o), 0);
	pthread_t th;
	stop_thread = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, hold_lock, NULL), 0);
	sleep_ms(20); /* the program's thread now holds the lock */
	struct mproc_input in;
	int64_t what[3] = {0, 1, 0};
	mproc_input_int64s(&in, what, 3);
	struct mproc_results *r;
	/* With plain fork the replacement would copy the held lock and wait
	 * forever in task 2; from the fork server it never sees it. */
	ck_assert_int_eq(mproc_map(p, t_lock, &in, 1, &r), MPROC_ERAISED);
	ck_assert_int_eq(item(r, 2).status, MPROC_OK);
	mproc_results_free(r);
	stop_thread = 1;
	pthread_join(th, NULL);
	finish(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault");
	/* Everywhere, and on the MPI backend too (tests/mpi-run.sh, the
	 * fault-mpi test: CK_RUN_CASE=faults): what the tasks and the test
	 * share is in test_shared()'s file, which every rank of a job on one
	 * machine maps; a test that finds a worker by its pid (kill, /proc)
	 * counts on the agents' workers being on this machine too. */
	TCase *tc = tcase_create("faults");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fault_segv_is_crashed_with_address_and_report);
	tcase_add_test(tc, test_fault_bus_is_crashed);
	tcase_add_test(tc, test_fault_fpe_is_crashed_intdiv);
	tcase_add_test(tc, test_fault_ill_is_crashed);
	tcase_add_test(tc, test_fault_abort_is_crashed_sigabrt);
	tcase_add_test(tc, test_fault_stack_overflow_is_crashed_segv);
	tcase_add_test(tc, test_fault_exit_and__exit_are_crashed_with_status);
	tcase_add_test(tc, test_fault_grandchild_never_runs_the_worker_loop);
	tcase_add_test(tc, test_fault_retry_is_timed_from_its_own_start);
	tcase_add_test(tc, test_fault_call_timeout_behind_untimed_tasks_fires);
	tcase_add_test(tc, test_fault_kill_9_from_outside_is_crashed_sigkill);
	tcase_add_test(tc, test_fault_timeout_stops_task_with_sigterm);
	tcase_add_test(tc, test_fault_crash_while_driver_away_is_no_timeout);
	tcase_add_test(tc, test_fault_timeout_ignoring_sigterm_gets_sigkill);
	tcase_add_test(tc, test_fault_per_call_timeout_overrides_the_pool);
	tcase_add_test(tc, test_fault_max_rss_retires_worker_after_task);
	tcase_add_test(tc, test_fault_max_vm_failure_is_memory);
	tcase_add_test(tc, test_fault_stdout_noise_does_not_disturb_results);
	tcase_add_test(tc, test_fault_task_closing_pool_fds_is_blamed_exactly);
	tcase_add_test(tc, test_fault_task_writing_into_pool_fds_is_blamed_exactly);
	tcase_add_test(tc, test_fault_chunk_blames_only_the_running_task);
	tcase_add_test(tc, test_fault_packed_chunks_requeue_their_own_arguments);
	tcase_add_test(tc, test_fault_imap_tiny_result_keeps_its_attempts);
	tcase_add_test(tc, test_fault_retries_rerun_until_success);
	tcase_add_test(tc, test_fault_retries_exhausted_give_final_crash);
	tcase_add_test(tc, test_fault_halt_after_failures_stops_input);
	tcase_add_test(tc, test_fault_halt_fraction);
	tcase_add_test(tc, test_fault_replacements_start_while_program_threads_allocate);
	tcase_add_test(tc, test_fault_task_exit_with_retire_status_is_crashed);
	tcase_add_test(tc, test_fault_failing_initializer_halts_instead_of_looping);
	tcase_add_test(tc, test_fault_replacement_starts_from_the_state_its_method_promises);
	tcase_add_test(tc, test_fault_stats_never_signal_a_worker);
	tcase_add_test(tc, test_fault_closing_fds_mid_chunk_blames_only_that_task);
	tcase_add_test(tc, test_fault_devnull_over_fds_mid_chunk_blames_only_that_task);
	tcase_add_test(tc, test_fault_garbage_mid_chunk_blames_only_that_task);
	tcase_add_test(tc, test_fault_forged_header_mid_chunk_blames_only_that_task);
	suite_add_tcase(s, tc);
	/* On one machine only: each is about the local machine by nature. */
	tc = tcase_create("faults-local");
	tcase_set_timeout(tc, 60);
	/* Forks a manager (a copy of the program) and SIGKILLs it. */
	tcase_add_test(tc, test_fault_manager_sigkill_ends_workers_within_1s);
	/* Sends SIGINT to the program's own process group. */
	tcase_add_test(tc, test_fault_sigint_to_group_reaches_program_not_workers);
	/* PR_SET_PDEATHSIG of the program thread that forked a worker. */
	tcase_add_test(tc, test_fault_replacement_outlives_the_thread_that_forked_it);
	/* The fork server against locks the program holds when it forks. */
	tcase_add_test(tc, test_fault_forkserver_replacement_never_sees_program_locks);
	/* Forks a manager whose pool a finished thread opened. */
	tcase_add_test(tc, test_fault_manager_sigkill_ends_a_thread_opened_pool_within_1s);
	/* Takes work back from a worker's pipe: on MPI a frame is claimed
	 * when sent ahead to the agent (docs/mpi.md), so a stopped remote
	 * worker keeps it until it resumes. */
	tcase_add_test(tc, test_fault_stopped_worker_keeps_no_work);
	suite_add_tcase(s, tc);
	bool named = test_shared_setup();
	int rc = run_suite(s);
	test_shared_cleanup(named);
	return rc;
}
