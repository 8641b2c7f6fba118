/*
 * test_nomem.c - every -ENOMEM path leaves nothing behind. The test
 * executable interposes malloc, calloc, realloc, reallocarray and free
 * (forwarding to glibc's __libc_* functions) with a failure injector:
 * fail_after(n) makes the n-th allocation from now fail with ENOMEM, once;
 * fail_off() disarms it.
 *
 * Each test runs one public call with allocation 0 failing, then 1, 2, ...
 * until the call makes fewer allocations than that (the injector never
 * fired), and checks every time that the call succeeded or answered
 * -ENOMEM or another documented code, that what it delivered is right (a
 * value, or an error that says memory ran out; an iterator's error is its
 * last word), and that it left nothing behind once the pool is closed,
 * joined and freed: no descriptor, no child process and no heap byte
 * (mallinfo2(), after a warm-up run of the same sequence, so that what
 * libc and libbsd allocate once is there already).
 *
 * Every call runs on the fork backend, with the fork server and on the
 * threads backend (whose stacks are mmap, not malloc), as the first call
 * of a new pool and on a pool that ran it once. On a used pool the same
 * failure is run again until the heap stays put: the pool keeps what its
 * buffers grew to, which converges, where a leak grows every time. Only
 * the calling thread's allocations fail, so that the n-th is the same one
 * at every run (never a forked worker's, whose tid differs), except in
 * the tests of the threads backend that fail its worker threads'
 * allocations too, where the n-th varies from run to run.
 *
 * The heap is measured with glibc's per-thread cache off and one arena
 * (GLIBC_TUNABLES, set by main, which runs itself again): a freed block
 * kept in a cache counts as in use, and an arena made for a thread counts
 * forever. MPROC_NOMEM_BACKTRACE=<run> (as a failure names it:
 * "imap/new/fork/18") prints that run's failing allocation's backtrace.
 *
 * Under AddressSanitizer (or ThreadSanitizer) the sanitizer owns malloc:
 * nothing is interposed there and the suite is one test that passes
 * saying so. Tests run in their own processes (Check's fork mode).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NOMEM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
        __has_feature(memory_sanitizer)
#define NOMEM_SANITIZED 1
#endif
#endif

#ifndef NOMEM_SANITIZED

#include <malloc.h>
#include <execinfo.h>
#include <stdatomic.h>

/* ---- the allocator and its failure injector -------------------------- */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

/* Allocations left before the one that fails; -1 when disarmed. Only the
 * allocations of thread inj_tid count, or with inj_tid 0 those of every
 * thread of process inj_pid: never a forked child's. */
static _Atomic long inj_left = -1;
static _Atomic pid_t inj_tid, inj_pid;
static _Atomic bool inj_fired;

/* The run under way ("map_range/new/fork/3"), named in failures. With
 * MPROC_NOMEM_BACKTRACE set to it, its failing allocation's backtrace goes
 * to stderr. */
static char run_label[100];

static bool inj_fail(void)
{
	if (atomic_load_explicit(&inj_left, memory_order_relaxed) < 0)
		return false;
	pid_t tid = atomic_load_explicit(&inj_tid, memory_order_relaxed);
	if (tid ? gettid() != tid
	        : getpid() != atomic_load_explicit(&inj_pid, memory_order_relaxed))
		return false;
	long left = atomic_load_explicit(&inj_left, memory_order_relaxed);
	while (left >= 0 && !atomic_compare_exchange_weak(&inj_left, &left,
	                                                  left - 1))
		;
	if (left != 0)
		return false;
	/* Disarmed now (-1): what follows allocates normally. */
	atomic_store(&inj_fired, true);
	const char *want = getenv("MPROC_NOMEM_BACKTRACE");
	if (want && strcmp(want, run_label) == 0) {
		void *bt[32];
		backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
	}
	errno = ENOMEM;
	return true;
}

/* The n-th allocation from now (0: the next one) of the calling thread, or
 * of any thread of this process with every_thread, fails with ENOMEM;
 * those after it succeed. */
static void fail_after(long n, bool every_thread)
{
	atomic_store(&inj_fired, false);
	atomic_store(&inj_pid, getpid());
	atomic_store(&inj_tid, every_thread ? 0 : gettid());
	atomic_store(&inj_left, n);
}

/* Disarm; whether the failure was injected. */
static bool fail_off(void)
{
	atomic_store(&inj_left, -1);
	return atomic_load(&inj_fired);
}

void *malloc(size_t size)
{
	return inj_fail() ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	return inj_fail() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	/* realloc(p, 0) frees (glibc): not an allocation. */
	if ((!p || size) && inj_fail())
		return NULL;
	return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n * size);
}

void free(void *p)
{
	__libc_free(p);
}

/* Bytes in use on the heap, every arena and mmapped block included. */
static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* ---- how the pool runs ------------------------------------------------ */

enum { HOW_FORK, HOW_FORKSERVER, HOW_THREADS, HOW_N };
static const char *const how_name[HOW_N] = {"fork", "forkserver", "threads"};

static int open_how(struct mproc_pool **p, int how, unsigned processes)
{
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = processes;
	o.start_method = how == HOW_FORKSERVER ? MPROC_START_FORKSERVER
	                                       : MPROC_START_FORK;
	o.backend = how == HOW_THREADS ? MPROC_BACKEND_THREADS
	                               : MPROC_BACKEND_PROCESSES;
	return mproc_pool_open(p, &o);
}

/* ---- tasks and inputs (tasks run in workers: they never assert) ------ */

/* (x, "x"): a result that is neither tiny nor an int, so that it is kept
 * and decoded. */
static int t_pair(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	char s[24];
	mproc_value_int(arg, &x);
	snprintf(s, sizeof s, "%lld", (long long)x);
	mproc_write_tuple_begin(ret);
	mproc_write_int(ret, x);
	mproc_write_cstr(ret, s);
	return mproc_write_tuple_end(ret);
}

/* Is v t_pair's result for x? */
static bool is_pair(const struct mproc_value *v, int64_t x)
{
	const struct mproc_value *a, *b;
	int64_t got;
	const char *s;
	size_t len;
	char want[24];
	int n = snprintf(want, sizeof want, "%lld", (long long)x);
	return mproc_value_item(v, 0, &a) == 0 && mproc_value_int(a, &got) == 0 &&
	       got == x && mproc_value_item(v, 1, &b) == 0 &&
	       mproc_value_str(b, &s, &len) == 0 && len == (size_t)n &&
	       memcmp(s, want, len) == 0;
}

/* The error of a task that failed for lack of memory, as the pool or the
 * task reports it. */
static bool nomem_error(const struct mproc_error *e)
{
	if (!e || !e->type || !e->msg)
		return false;
	/* The pool had no memory to keep or decode the result. */
	if (strcmp(e->type, "MemoryError") == 0)
		return true;
	/* The task's own writer failed (a worker thread's allocation): the
	 * task returned -ENOMEM, raised as OSError. */
	if (strcmp(e->type, "OSError") == 0)
		return strstr(e->msg, "ENOMEM") != NULL;
	return false;
}

/* Item `i` (of input x) as it was delivered: its value right, or failed
 * for lack of memory (an error, never a wrong value). Writes why not into
 * bad. */
static bool item_ok(const struct mproc_result *r, size_t i, int64_t x,
                    bool pair, char *bad, size_t badlen)
{
	if (r->index != i) {
		snprintf(bad, badlen, "item %zu has index %zu", i, r->index);
		return false;
	}
	if (r->status == MPROC_OK) {
		int64_t v;
		bool right = pair ? is_pair(r->value, x)
		                  : mproc_value_int(r->value, &v) == 0 && v == x * x;
		if (!right)
			snprintf(bad, badlen, "item %zu has a wrong value", i);
		return right;
	}
	if (r->status == MPROC_RAISED && nomem_error(r->error))
		return true;
	snprintf(bad, badlen, "item %zu: %s %s: %s", i,
	         mproc_status_name(r->status),
	         r->error && r->error->type ? r->error->type : "?",
	         r->error && r->error->msg ? r->error->msg : "?");
	return false;
}

/* Every item of a map's results. */
static void check_results(const struct mproc_results *res, size_t n,
                          bool pair, char *bad, size_t badlen)
{
	if (mproc_results_count(res) != n) {
		snprintf(bad, badlen, "%zu results for %zu items",
		         mproc_results_count(res), n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct mproc_result r;
		if (mproc_results_get(res, i, &r) < 0) {
			snprintf(bad, badlen, "item %zu unreadable", i);
			return;
		}
		if (!item_ok(&r, i, (int64_t)i, pair, bad, badlen))
			return;
	}
}

/* Every item of an iterator, in order or each once, to its end or its
 * first error, which it answers. An error ends the iterator: asked again,
 * it answers the same (an item after it would be one the consumer was
 * told nothing about, or lost). */
static int drain_iter(struct mproc_iter *it, size_t n, bool ordered,
                      bool pair, char *bad, size_t badlen)
{
	const struct mproc_result *r;
	unsigned char seen[128] = {0};
	size_t got = 0;
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		size_t i = ordered ? got : r->index;
		if (i >= n || i >= sizeof seen || seen[i]++) {
			snprintf(bad, badlen, "index %zu again or out of range", i);
			return 0;
		}
		if (!item_ok(r, i, (int64_t)i, pair, bad, badlen))
			return 0;
		got++;
	}
	int again = mproc_iter_next(it, -1, &r);
	if (again != rc)
		snprintf(bad, badlen, "after %zu items answered %s, then %s", got,
		         mproc_err_name(rc),
		         again == 1 ? "an item" : mproc_err_name(again));
	else if (rc == 0 && got != n)
		snprintf(bad, badlen, "%zu items of %zu, then the end", got, n);
	return rc;
}

/* ---- the calls under test --------------------------------------------- */

#define NITEMS 40

/* One public call on an open pool, with what it delivered checked (bad
 * says what was wrong). Answers the call's code. */
struct call {
	const char *name;
	unsigned processes;
	int (*run)(struct mproc_pool *pool, char *bad, size_t badlen);
	/* The codes it may answer besides 0 and -ENOMEM. */
	int also[3];
};

static bool allowed(const struct call *c, int rc)
{
	if (rc == 0 || rc == -ENOMEM)
		return true;
	for (size_t i = 0; i < sizeof c->also / sizeof c->also[0]; i++)
		if (c->also[i] && rc == c->also[i])
			return true;
	return false;
}

/* map over range(NITEMS): ints of two bytes, decoded as they arrive. */
static int call_map_range(struct mproc_pool *pool, char *bad, size_t badlen)
{
	struct mproc_input in;
	struct mproc_results *res = NULL;
	mproc_input_range(&in, 0, NITEMS, 1);
	int rc = mproc_map(pool, t_square, &in, 0, &res);
	if (res)
		check_results(res, NITEMS, false, bad, badlen);
	else if (rc == 0 || rc == MPROC_ERAISED)
		snprintf(bad, badlen, "answered %s without results",
		         mproc_err_name(rc));
	mproc_results_free(res);
	return rc;
}

/* map over a generator of unknown length (read whole first), pairs. */
static int call_map_gen(struct mproc_pool *pool, char *bad, size_t badlen)
{
	static size_t limit = NITEMS;
	struct mproc_input in;
	struct mproc_results *res = NULL;
	mproc_input_fn_init(&in, gen_index_below, &limit);
	int rc = mproc_map(pool, t_pair, &in, 3, &res);
	if (res)
		check_results(res, NITEMS, true, bad, badlen);
	else if (rc == 0 || rc == MPROC_ERAISED)
		snprintf(bad, badlen, "answered %s without results",
		         mproc_err_name(rc));
	mproc_results_free(res);
	return rc;
}

/* imap over range(NITEMS), pairs, iterated to the end. */
static int call_imap(struct mproc_pool *pool, char *bad, size_t badlen)
{
	struct mproc_input in;
	struct mproc_iter *it = NULL;
	mproc_input_range(&in, 0, NITEMS, 1);
	int rc = mproc_imap(pool, t_pair, &in, 1, &it);
	if (rc == 0)
		rc = drain_iter(it, NITEMS, true, true, bad, badlen);
	mproc_iter_free(it);
	return rc;
}

/* imap_unordered over a generator pulled lazily, iterated to the end. */
static int call_imap_unordered_gen(struct mproc_pool *pool, char *bad,
                                   size_t badlen)
{
	static size_t limit = NITEMS;
	struct mproc_input in;
	struct mproc_iter *it = NULL;
	mproc_input_fn_init(&in, gen_index_below, &limit);
	int rc = mproc_imap_unordered(pool, t_square, &in, 2, &it);
	if (rc == 0)
		rc = drain_iter(it, NITEMS, false, false, bad, badlen);
	mproc_iter_free(it);
	return rc;
}

/* apply_async, then get. */
static int call_apply_async(struct mproc_pool *pool, char *bad,
                            size_t badlen)
{
	static const char arg[] = "\x80\x05K\x07."; /* pickle.dumps(7) */
	struct mproc_async *a = NULL;
	const struct mproc_results *res = NULL;
	int rc = mproc_apply_async(pool, t_pair, arg, sizeof arg - 1, NULL, &a);
	if (rc == 0) {
		rc = mproc_async_get(a, -1, &res);
		struct mproc_result r;
		if ((rc == 0 || rc == MPROC_ERAISED) &&
		    mproc_results_get(res, 0, &r) == 0) {
			(void)item_ok(&r, 0, 7, true, bad, badlen);
		} else if (rc == 0 || rc == MPROC_ERAISED) {
			snprintf(bad, badlen, "answered %s without a result",
			         mproc_err_name(rc));
		}
	}
	mproc_async_free(a);
	return rc;
}

/* imap with a chunksize of 2^25 over range(100), one worker: the window
 * is the input's length, one chunk holds it all. */
static int call_imap_huge_chunk(struct mproc_pool *pool, char *bad,
                                size_t badlen)
{
	struct mproc_input in;
	struct mproc_iter *it = NULL;
	mproc_input_range(&in, 0, 100, 1);
	int rc = mproc_imap(pool, t_square, &in, (size_t)1 << 25, &it);
	if (rc == 0)
		rc = drain_iter(it, 100, true, false, bad, badlen);
	mproc_iter_free(it);
	return rc;
}

static const struct call calls[] = {
	/* A generator's item that cannot be written ends the input:
	 * MPROC_EINPUT. A result kept or decoded without memory is an
	 * error in the results: MPROC_ERAISED. */
	{"map_range", 2, call_map_range, {MPROC_ERAISED}},
	{"map_gen", 2, call_map_gen, {MPROC_ERAISED, MPROC_EINPUT}},
	{"imap", 2, call_imap, {0}},
	{"imap_unordered_gen", 2, call_imap_unordered_gen, {MPROC_EINPUT}},
	{"apply_async", 2, call_apply_async, {MPROC_ERAISED}},
	{"imap_huge_chunk", 1, call_imap_huge_chunk, {0}},
};
enum { NCALLS = sizeof calls / sizeof calls[0] };

/* ---- the sweep -------------------------------------------------------- */

/* At most this many allocations per call: past it the sweep is broken. */
#define MAX_ALLOCS 5000

/* Where the call runs and whose allocations fail. */
enum mode {
	ON_NEW_POOL,  /* the first call of a new pool */
	ON_USED_POOL, /* a call on a pool that ran it once (buffers grown) */
	ALL_THREADS,  /* new pool, threads backend: its threads' allocations
	               * fail too (which one is n-th varies from run to run) */
};
static const char *const mode_name[] = {"new", "used", "all"};

/* What one run left behind. */
struct outcome {
	int rc;
	bool fired;
	char bad[256];
	int fds;          /* descriptors more than before the pool's open */
	long heap_pool;   /* heap bytes more than before the pool's open */
	long heap_again;  /* heap bytes the same failure keeps taking on a
	                   * used pool (heap_left_by_again) */
	bool children;    /* a child left after the pool's free */
};

static void outcome_check(const struct call *c, const struct outcome *o)
{
	ck_assert_msg(allowed(c, o->rc), "[%s] answered %s (%d)", run_label,
	              mproc_err_name(o->rc), o->rc);
	ck_assert_msg(o->fired || o->rc == 0,
	              "[%s] answered %s with no allocation failing", run_label,
	              mproc_err_name(o->rc));
	ck_assert_msg(o->bad[0] == '\0', "[%s] %s", run_label, o->bad);
	ck_assert_msg(o->fds == 0, "[%s] %d descriptors left after the pool's "
	              "free", run_label, o->fds);
	ck_assert_msg(!o->children, "[%s] a child outlived the pool",
	              run_label);
	ck_assert_msg(o->heap_pool == 0, "[%s] answered %s: %ld heap bytes "
	              "left after the pool's free", run_label,
	              mproc_err_name(o->rc), o->heap_pool);
	ck_assert_msg(o->heap_again == 0, "[%s] answered %s: each run of the "
	              "same failure on the open pool left %ld heap bytes more",
	              run_label, mproc_err_name(o->rc), o->heap_again);
}

/*
 * The same failure again on a used pool, up to four times, until a run
 * leaves the heap as it found it. The pool keeps what its buffers grew to,
 * and a failure may move which of them grow (and when results come in,
 * which worker gets what): those converge, while a leak grows each time.
 * Answers what the last run left.
 */
static long heap_left_by_again(const struct call *c, struct mproc_pool *pool,
                               long n)
{
	long left = 0;
	for (int i = 0; i < 4; i++) {
		char bad[256] = "";
		size_t heap = heap_bytes();
		fail_after(n, false);
		(void)c->run(pool, bad, sizeof bad);
		(void)fail_off();
		if ((left = (long)(heap_bytes() - heap)) == 0)
			break;
	}
	return left;
}

/* One run: open a pool, run the call with allocation n failing (n < 0:
 * none), then close, join and free the pool. */
static struct outcome run_call(const struct call *c, int how, enum mode mode,
                               long n)
{
	struct outcome o = {0};
	struct mproc_pool *pool = NULL;
	snprintf(run_label, sizeof run_label, "%s/%s/%s/%ld", c->name,
	         mode_name[mode], how_name[how], n);
	int fds0 = count_fds();
	size_t heap0 = heap_bytes();
	ck_assert_int_eq(open_how(&pool, how, c->processes), 0);
	if (mode == ON_USED_POOL) {
		char bad[256] = "";
		ck_assert_int_eq(c->run(pool, bad, sizeof bad), 0);
		ck_assert_str_eq(bad, "");
	}

	if (n >= 0)
		fail_after(n, mode == ALL_THREADS);
	o.rc = c->run(pool, o.bad, sizeof o.bad);
	o.fired = fail_off();
	if (mode == ON_USED_POOL && n >= 0)
		o.heap_again = heap_left_by_again(c, pool, n);

	ck_assert_int_eq(mproc_pool_close(pool), 0);
	ck_assert_int_eq(mproc_pool_join(pool), 0);
	mproc_pool_free(pool);
	o.children = !no_children();
	o.fds = count_fds() - fds0;
	o.heap_pool = (long)(heap_bytes() - heap0);
	return o;
}

/* Fail allocation 0, 1, 2, ... of call c until it makes no more. */
static void sweep_call(const struct call *c, int how, enum mode mode)
{
	/* Warm-up: what libc, libbsd and the test allocate once. */
	for (int i = 0; i < 2; i++)
		(void)run_call(c, how, mode, -1);
	for (long n = 0;; n++) {
		ck_assert_msg(n < MAX_ALLOCS, "[%s] more than %d allocations",
		              run_label, MAX_ALLOCS);
		struct outcome o = run_call(c, how, mode, n);
		outcome_check(c, &o);
		if (!o.fired)
			break;
	}
}

/* Each call on each backend: _i is call * HOW_N + how. */
START_TEST(test_nomem_call_on_new_pool_leaves_nothing_behind)
{
	sweep_call(&calls[_i / HOW_N], _i % HOW_N, ON_NEW_POOL);
}
END_TEST

START_TEST(test_nomem_call_on_used_pool_leaves_nothing_behind)
{
	sweep_call(&calls[_i / HOW_N], _i % HOW_N, ON_USED_POOL);
}
END_TEST

/* Each call on the threads backend, the worker threads' allocations
 * failing too: _i is the call. */
START_TEST(test_nomem_call_with_worker_threads_failing_leaves_nothing_behind)
{
	sweep_call(&calls[_i], HOW_THREADS, ALL_THREADS);
}
END_TEST

/* ---- opening a pool --------------------------------------------------- */

/* mproc_pool_open, then close, join and free, allocation n failing in any
 * of them (every thread's on the threads backend). */
static struct outcome run_open(int how, long n)
{
	struct outcome o = {0};
	struct mproc_pool *pool = NULL;
	snprintf(run_label, sizeof run_label, "pool_open/%s/%ld", how_name[how],
	         n);
	int fds0 = count_fds();
	size_t heap0 = heap_bytes();
	if (n >= 0)
		fail_after(n, how == HOW_THREADS);
	o.rc = open_how(&pool, how, 2);
	int close_rc = 0, join_rc = 0;
	if (o.rc == 0) {
		close_rc = mproc_pool_close(pool);
		join_rc = mproc_pool_join(pool);
		mproc_pool_free(pool);
	} else if (pool) {
		snprintf(o.bad, sizeof o.bad, "a pool set with %s",
		         mproc_err_name(o.rc));
	}
	o.fired = fail_off();
	if (close_rc || join_rc)
		snprintf(o.bad, sizeof o.bad, "close %s, join %s",
		         mproc_err_name(close_rc), mproc_err_name(join_rc));
	o.children = !no_children();
	o.fds = count_fds() - fds0;
	o.heap_pool = (long)(heap_bytes() - heap0);
	return o;
}

/* pthread_create answers EAGAIN when it cannot allocate. */
static const struct call open_call = {"pool_open", 2, NULL, {-EAGAIN}};

START_TEST(test_nomem_pool_open_leaves_nothing_behind)
{
	for (int i = 0; i < 2; i++)
		(void)run_open(_i, -1);
	for (long n = 0;; n++) {
		ck_assert_msg(n < MAX_ALLOCS, "[%s] more than %d allocations",
		              run_label, MAX_ALLOCS);
		struct outcome o = run_open(_i, n);
		outcome_check(&open_call, &o);
		if (!o.fired)
			break;
	}
}
END_TEST

/* ---- main ------------------------------------------------------------- */

/* Runs the program again with glibc's per-thread cache off and one arena,
 * unless they are already: then freed memory is free to mallinfo2. */
static void exec_with_tunables(char **argv)
{
	static const char want[] =
	        "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1";
	const char *t = getenv("GLIBC_TUNABLES");
	if (t && strstr(t, want))
		return;
	char buf[1024];
	snprintf(buf, sizeof buf, "%s%s%s", t ? t : "", t && *t ? ":" : "",
	         want);
	setenv("GLIBC_TUNABLES", buf, 1);
	execv("/proc/self/exe", argv);
	/* Not run again: the heap checks may then see cached blocks. */
}

int main(int argc, char **argv)
{
	(void)argc;
	exec_with_tunables(argv);
	Suite *s = suite_create("nomem");
	TCase *tc = tcase_create("nomem");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_nomem_pool_open_leaves_nothing_behind, 0,
	                    HOW_N);
	tcase_add_loop_test(tc, test_nomem_call_on_new_pool_leaves_nothing_behind,
	                    0, NCALLS * HOW_N);
	tcase_add_loop_test(tc, test_nomem_call_on_used_pool_leaves_nothing_behind,
	                    0, NCALLS * HOW_N);
	tcase_add_loop_test(
	        tc, test_nomem_call_with_worker_threads_failing_leaves_nothing_behind,
	        0, NCALLS);
	suite_add_tcase(s, tc);
	return run_suite(s);
}

#else /* NOMEM_SANITIZED */

/* The sanitizer owns malloc: nothing to interpose, nothing to inject.
 * This test passes to say the suite was skipped. */
START_TEST(test_nomem_skipped_under_sanitizer)
{
}
END_TEST

int main(void)
{
	Suite *s = suite_create("nomem");
	TCase *tc = tcase_create("skipped");
	tcase_add_test(tc, test_nomem_skipped_under_sanitizer);
	suite_add_tcase(s, tc);
	return run_suite(s);
}

#endif
