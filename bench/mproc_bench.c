/*
 * mproc_bench.c - mproc-bench: what a process costs over a thread for a
 * given piece of work, and when either beats a plain loop.
 *
 *   build/bench/mproc-bench [--quick] [--workers N] [--repeat N]
 *                           [--only LIST] [--workload LIST]
 *                           [--csv FILE] [--plot FILE.svg|FILE.png]
 *                           [--python PATH]
 *
 * Backends, all on identical work (same task count, same arguments):
 *
 *   serial         a plain loop in this process calling the task's C body
 *                  on raw C values: no pool, no codec. What a program does
 *                  before it reaches for a pool; every speedup is the
 *                  serial median over the backend's median, so serial
 *                  always runs.
 *   pthread-min    a minimal hand-written pthread pool (pthread_min.c): a
 *                  mutex+condvar task queue, one chunk of `chunksize` tasks
 *                  per dequeue, results pushed to a result queue, the main
 *                  thread collecting them in order. The same C body on raw
 *                  values, no codec: the floor of a thread pool.
 *   threads        an mproc pool with MPROC_BACKEND_THREADS. When the mproc
 *                  being measured does not have that backend (pool_open
 *                  fails, or the tasks run in another process), it is
 *                  reported as n/a with a notice.
 *   processes      an mproc pool with the default backend (forked workers).
 *   py-Pool        Python's multiprocessing.Pool (fork start method) and
 *   py-ThreadPool  multiprocessing.pool.ThreadPool, run by mproc_bench.py
 *                  with python3 from PATH, --python or $MPROC_PYTHON;
 *                  skipped with a notice when that python cannot run.
 *
 * Tasks:
 *
 *   empty     returns None (the argument is the task's index).
 *   spin      busy for a chosen duration, 100 ns to 10 ms. In C, a spin
 *             loop of xorshift steps (a dependency chain the compiler
 *             cannot fold) whose iterations per nanosecond are calibrated
 *             once at start; the argument is the iteration count. A clock
 *             read costs ~20 ns, too coarse for 100 ns tasks, so the C
 *             side does not poll a clock. Python's spin cannot be the same
 *             code at the same cost, so it busy-waits on
 *             time.perf_counter_ns() for the same wall duration (the
 *             argument is the duration): in a ThreadPool that includes
 *             time spent waiting for the GIL.
 *   payload   (echo) the argument is bytes of the chosen size (8 B to
 *             16 MiB) and the task returns it: mproc_write_value(ret, arg)
 *             in mproc, `return b` in Python (ThreadPool hands back the
 *             reference; mproc re-emits the value, by reference where the
 *             pool moves big bytes out of band); serial and pthread-min,
 *             on raw values, copy it into a buffer once. From 16 KiB (the
 *             default buffer_threshold) mproc's input lends the bytes
 *             (mproc_write_buffer without a copy), as Python passes the
 *             same bytes object to every task: threads then hand over a
 *             pointer, processes copy the bytes into the pool's arena.
 *   len       the same argument; the task returns its length as an int
 *             (serial and pthread-min: the length, nothing copied).
 *   sleep     (sched) sleeps for its argument in ms (nanosleep; Python's
 *             time.sleep), so that the CPU count does not matter.
 *
 * Workloads (--workload, default all), each a series of points:
 *
 *   empty      empty task, imap, chunksize 1 and 64.
 *   spin       spin task, imap, 100 ns .. 10 ms at chunksize 1, and at
 *              64 up to the spin where 4 chunks a worker take 0.6 s.
 *   payload    payload (echo) task, imap, chunksize 1, 8 B .. 16 MiB.
 *   payload-len  len task, imap, chunksize 1, 1 KiB, 64 KiB, 1 MiB, 16 MiB
 *              (the sizes of bench/bench_payload.c, docs/payloads.md).
 *   chunksize  empty task, imap, chunksize 1 .. 1024.
 *   startup    open a pool of 1 .. 64 workers, one apply, close, join
 *              (no serial: the speedup column is empty).
 *   api        imap, imap_unordered, map and apply_async (the asyncs are
 *              all submitted, then all fetched), empty and 10 us tasks.
 *   sched      work conservation, bench_sched's scenarios (shared code:
 *              sched_common.c) on 4 workers whatever --workers says:
 *              "mixed", 400 sleep tasks, every 50th of 200 ms, the others
 *              of 2 ms; "slow-first", one of 1500 ms, then 40 of 10 ms.
 *              Each through imap_unordered (chunksize 1) and apply_async
 *              (one call a task, all submitted, then all fetched). A run
 *              opens a fresh pool, lets it settle 100 ms, and runs the
 *              scenario once, no warm-up; it measures, from just before
 *              the first submission, the makespan (the last result's
 *              arrival) and the last quick task's arrival (imap_unordered:
 *              when the iterator handed it out; apply_async: when its
 *              callback ran). Its own table, below the others, puts the
 *              greedy schedule (list scheduling with no overhead, computed
 *              from the task list) where serial would be, and gives each
 *              backend's makespan over greedy's and how late its last
 *              quick task was behind greedy's. pthread-min runs it through
 *              its one call, with the time the main thread takes each
 *              result off its queue as the arrival (imap_unordered only).
 *              mproc_bench.py runs bench_sched.py's scenarios and checks
 *              that its greedy schedule is ours.
 *
 * --quick measures a subset (empty at chunksize 1 and 64, spin at 1 us to
 * 1 ms, one payload, startup at --workers, map and apply_async, and one
 * run of sched's mixed scenario through imap_unordered, about 4 s) in
 * under 30 seconds, Python included, on a 2-core machine.
 *
 * Every point runs `--repeat` times (default 5, 3 with --quick; a sched
 * point, without warm-up, once with --quick unless --repeat is given)
 * after an untimed warm-up,
 * on a pool opened for the point. A C backend's run repeats the point's n
 * tasks until 30 ms (--quick) or 100 ms have passed and counts as their
 * mean, for n is sized for Python's slower pools and a single C batch of
 * them can be over in a few ms. The table gives the median, min and max
 * wall time of one run (n tasks), microseconds per task and tasks per second of the
 * median, and the speedup over serial. The task count of a point is the
 * same for every backend, chosen so that a run takes some 50-300 ms on the
 * C backends (Python's pools, slower per task, take longer at small tasks),
 * and at least 4 chunks a worker. Each point is measured on every backend,
 * Python's included, before the next point starts, so that the load of a
 * shared machine drifts less between the backends compared.
 * Under the table: for each backend, the crossover (the shortest spin, at
 * chunksize 1 and --workers workers, whose speedup over serial is > 1),
 * and the thread backend's time against the pthread-min floor.
 *
 * --csv writes every measured point (sched's with columns of their own,
 * and a "greedy" row each); --plot draws, with gnuplot, speedup
 * over serial against task duration for each backend (chunksize 1 solid,
 * 64 dashed, a line at 1). A progress line goes to stderr when it is a
 * terminal. Exit status: 0, 1 when something failed, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "pthread_min.h"
#include "sched_common.h"

#ifndef MPROC_BENCH_PY
#define MPROC_BENCH_PY "bench/mproc_bench.py"
#endif

/* Where an installed mproc-bench finds its Python half (the tools
 * package); the source tree's copy wins when it is there, so a build
 * tree's mproc-bench runs the script beside its own source. */
#ifndef MPROC_BENCH_PY_INSTALLED
#define MPROC_BENCH_PY_INSTALLED MPROC_BENCH_PY
#endif

static const char *bench_py(void)
{
	return access(MPROC_BENCH_PY, R_OK) == 0 ? MPROC_BENCH_PY
	                                         : MPROC_BENCH_PY_INSTALLED;
}

extern char **environ;

#define MAX_REPEAT 101
#define MAX_WORKERS 256
#define MAX_POINTS 128

/* ---- backends ----------------------------------------------------------- */

enum backend {
	B_SERIAL,
	B_PMIN,
	B_THREADS,
	B_PROCESSES,
	B_PY_POOL,
	B_PY_THREADPOOL,
	B_COUNT,
};

/* Display name, and the name --only and the Python script take. */
static const char *const backend_name[B_COUNT] = {
	"serial", "pthread-min", "threads", "processes", "py-Pool",
	"py-ThreadPool",
};
static const char *const backend_key[B_COUNT] = {
	"serial", "pthread-min", "threads", "processes", "py-pool",
	"py-threadpool",
};

static bool selected[B_COUNT];
/* Set once a backend cannot run here; its points print n/a. */
static bool failed[B_COUNT];

/* ---- points ------------------------------------------------------------- */

enum task { T_EMPTY, T_SPIN, T_PAYLOAD, T_SLEEP, T_LEN };
static const char *const task_name[] = {"empty", "spin", "payload", "sleep",
                                        "len"};

enum api { API_IMAP, API_IMAP_UNORDERED, API_MAP, API_APPLY_ASYNC };
static const char *const api_name[] = {"imap", "imap_unordered", "map",
                                       "apply_async"};

enum series {
	S_EMPTY,
	S_SPIN,
	S_PAYLOAD,
	S_PAYLOAD_LEN,
	S_CHUNKSIZE,
	S_STARTUP,
	S_API,
	S_SCHED,
	S_COUNT,
};
static const char *const series_name[S_COUNT] = {
	"empty", "spin", "payload", "payload-len", "chunksize", "startup",
	"api", "sched",
};

struct stat3 {
	double med, min, max;
};

struct point {
	enum series series;
	enum task task;
	enum api api;
	bool startup; /* n cycles of open, one apply, close, join */
	unsigned workers;
	size_t chunksize;
	uint64_t task_ns;
	size_t payload;
	size_t n;    /* tasks per run (startup: cycles per run) */
	size_t warm; /* untimed tasks before the runs */
	struct stat3 res[B_COUNT]; /* sched: the makespan */
	bool have[B_COUNT];
	/* sched: the scenario (index in scen[]), runs, the last quick task's
	 * arrival and the greedy schedule's makespan and last quick task. */
	int scen;
	int runs;
	struct stat3 quick[B_COUNT];
	double greedy_span, greedy_quick;
};

static struct point points[MAX_POINTS];
static size_t npoints;

/* The sched workload's scenarios, made once (sched_common.c). */
static struct sched_scenario scen[2];

static int repeat = 5;
static bool repeat_given;
static bool quick;
static unsigned opt_workers = 2;

/* ---- small helpers ------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void notice(const char *fmt, ...) MPROC_PRINTF(1, 2);
static bool progress_on;

static void progress_clear(void)
{
	if (progress_on)
		fputs("\r\033[K", stderr);
}

static void notice(const char *fmt, ...)
{
	va_list ap;
	progress_clear();
	fputs("mproc-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static struct stat3 summarize(double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	struct stat3 s = {n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2,
	                  t[0], t[n - 1]};
	return s;
}

/* "100ns", "10us", "1ms": task durations, exact at the steps we use. */
static void fmt_ns(char *out, size_t len, uint64_t ns)
{
	if (ns >= 1000000 && ns % 1000000 == 0)
		snprintf(out, len, "%" PRIu64 "ms", ns / 1000000);
	else if (ns >= 1000 && ns % 1000 == 0)
		snprintf(out, len, "%" PRIu64 "us", ns / 1000);
	else
		snprintf(out, len, "%" PRIu64 "ns", ns);
}

/* "8B", "64KiB", "1MiB". */
static void fmt_size(char *out, size_t len, size_t n)
{
	if (n >= (1u << 20) && n % (1u << 20) == 0)
		snprintf(out, len, "%zuMiB", n >> 20);
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(out, len, "%zuKiB", n >> 10);
	else
		snprintf(out, len, "%zuB", n);
}

/* A duration in seconds with a unit that keeps three or four digits. */
static void fmt_secs(char *out, size_t len, double s)
{
	if (s < 1e-3)
		snprintf(out, len, "%.1fus", s * 1e6);
	else if (s < 1)
		snprintf(out, len, "%.2fms", s * 1e3);
	else
		snprintf(out, len, "%.3fs", s);
}

/* A rate with an SI suffix: "812", "12.3k", "3.41M". */
static void fmt_rate(char *out, size_t len, double r)
{
	if (r >= 1e6)
		snprintf(out, len, "%.2fM", r / 1e6);
	else if (r >= 1e4)
		snprintf(out, len, "%.1fk", r / 1e3);
	else
		snprintf(out, len, "%.0f", r);
}

static void describe(const struct point *pt, char *out, size_t len)
{
	char a[32];
	if (pt->startup) {
		snprintf(out, len, "startup %u workers", pt->workers);
		return;
	}
	if (pt->series == S_SCHED) {
		snprintf(out, len, "sched %s %s", scen[pt->scen].name,
		         api_name[pt->api]);
		return;
	}
	if (pt->task == T_SPIN)
		fmt_ns(a, sizeof a, pt->task_ns);
	else if (pt->task == T_PAYLOAD || pt->task == T_LEN)
		fmt_size(a, sizeof a, pt->payload);
	else
		snprintf(a, sizeof a, "task");
	snprintf(out, len, "%s %s %s cs%zu", series_name[pt->series],
	         pt->task == T_EMPTY ? "empty" : a, api_name[pt->api],
	         pt->chunksize);
}

/* Steps of the whole run (a point on a backend), for the progress line. */
static size_t prog_done, prog_total;

static void progress(const struct point *pt, const char *backend)
{
	prog_done++;
	if (!progress_on)
		return;
	char d[96];
	describe(pt, d, sizeof d);
	fprintf(stderr, "\r\033[K[%zu/%zu] %s: %s", prog_done, prog_total, d,
	        backend);
}

/* ---- the work, on raw C values ------------------------------------------ */

static double spin_per_ns = 1; /* spin iterations per nanosecond */

/* A chain of xorshift steps: each depends on the last, so the loop costs
 * its latency and the compiler cannot shorten it. */
static uint64_t spin(uint64_t iters)
{
	uint64_t x = 0x9e3779b97f4a7c15u ^ iters;
	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

static uint64_t spin_iters(uint64_t ns)
{
	double it = (double)ns * spin_per_ns;
	return it < 1 ? 1 : (uint64_t)(it + 0.5);
}

/* Iterations per ns from the fastest of a few timed runs (the others saw
 * an interrupt or a frequency step), then checked at 1 ms. */
static void calibrate(void)
{
	volatile uint64_t keep = 0;
	const uint64_t iters = 2000000;
	double best = 1e9;
	keep += spin(iters / 4); /* wake the core up */
	for (int r = 0; r < 7; r++) {
		double t0 = now();
		keep += spin(iters);
		double dt = now() - t0;
		if (dt < best)
			best = dt;
	}
	spin_per_ns = (double)iters / (best * 1e9);
	(void)keep;
}

/*
 * The body every backend runs for one task: what the mproc tasks below
 * wrap, what serial and pthread-min call directly. noinline and the asm
 * keep the call in serial's plain loop, as in a program whose loop calls a
 * function from elsewhere.
 */
__attribute__((noinline)) uint64_t bench_work(const struct pm_job *job,
                                              size_t index,
                                              unsigned char *scratch)
{
	__asm__ volatile("" ::: "memory");
	switch (job->task) {
	case T_SPIN:
		return spin(job->iters);
	case T_PAYLOAD:
		memcpy(scratch, job->buf, job->len);
		return scratch[job->len - 1];
	case T_LEN:
		return job->len;
	case T_SLEEP: {
		int64_t ms = job->ms[index];
		struct timespec ts = {.tv_sec = ms / 1000,
		                      .tv_nsec = (ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		return index;
	}
	default:
		return index;
	}
}

/* ---- the mproc tasks ----------------------------------------------------- */

static int task_empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

static int task_spin(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t iters;
	int rc = mproc_value_int(arg, &iters);
	if (rc < 0)
		return rc;
	volatile uint64_t keep = spin((uint64_t)iters);
	(void)keep;
	(void)ret;
	return 0;
}

/* echo: the argument, re-emitted (by reference where the codec moves
 * big bytes out of band). */
static int task_payload(const struct mproc_value *arg,
                        struct mproc_writer *ret)
{
	return mproc_write_value(ret, arg);
}

static int task_len(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const void *p;
	size_t len;
	int rc = mproc_value_bytes(arg, &p, &len);
	if (rc < 0)
		return rc;
	return mproc_write_int(ret, (int64_t)len);
}

static int task_pid(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, getpid());
}

static mproc_task_fn task_fn(enum task t)
{
	return t == T_SPIN      ? task_spin
	       : t == T_PAYLOAD ? task_payload
	       : t == T_LEN     ? task_len
	                        : task_empty;
}

/* ---- the run of one point on one backend -------------------------------- */

#define PAYLOAD_MAX ((size_t)16 << 20) /* the largest payload */
#define LEND_FROM ((size_t)16 << 10)  /* buffer_threshold's default */
static unsigned char *payload_buf;  /* the argument of payload tasks */
static unsigned char *serial_out;   /* where serial copies it */

static struct pm_job job_of(const struct point *pt)
{
	struct pm_job j = {.task = pt->task, .buf = payload_buf,
	                   .len = pt->payload};
	if (pt->task == T_SPIN)
		j.iters = spin_iters(pt->task_ns);
	return j;
}

static volatile uint64_t sink;

static int run_serial(const struct point *pt, size_t n, double *secs)
{
	struct pm_job job = job_of(pt);
	uint64_t acc = 0;
	double t0 = now();
	for (size_t i = 0; i < n; i++)
		acc += bench_work(&job, i, serial_out);
	*secs = now() - t0;
	sink += acc;
	return 0;
}

static int run_pmin(const struct point *pt, size_t n, double *secs,
                    struct pm_pool *pool)
{
	struct pm_job job = job_of(pt);
	uint64_t acc;
	if (pt->startup) {
		double t0 = now();
		for (size_t i = 0; i < n; i++) {
			struct pm_pool *p;
			int rc = pm_open(&p, pt->workers);
			if (rc < 0)
				return rc;
			rc = pm_run(p, &job, 1, 1, &acc);
			pm_close(p);
			if (rc < 0)
				return rc;
		}
		*secs = now() - t0;
		return 0;
	}
	double t0 = now();
	int rc = pm_run(pool, &job, n, pt->chunksize, &acc);
	*secs = now() - t0;
	sink += acc;
	return rc;
}

/* The argument of task i, for the mproc backends. */
struct gen {
	const struct point *pt;
	size_t n;
	int64_t iters;
};

static int gen_next(void *cookie, size_t index, struct mproc_writer *w)
{
	const struct gen *g = cookie;
	int rc;
	if (index >= g->n)
		return 0;
	switch (g->pt->task) {
	case T_SPIN:
		rc = mproc_write_int(w, g->iters);
		break;
	case T_PAYLOAD:
	case T_LEN:
		/* From the pool's buffer_threshold up the bytes go out of
		 * band: lent (the buffer lives for the whole run), as a
		 * ThreadPool passes a reference; processes copy them into the
		 * arena once. Below it, in the pickle. */
		rc = g->pt->payload >= LEND_FROM
		             ? mproc_write_buffer(w, payload_buf, g->pt->payload, 0)
		             : mproc_write_bytes(w, payload_buf, g->pt->payload);
		break;
	default:
		rc = mproc_write_int(w, (int64_t)index);
		break;
	}
	return rc < 0 ? rc : 1;
}

static int mp_open(struct mproc_pool **out, enum backend b, unsigned workers)
{
	struct mproc_pool_opts o = {
		.processes = workers,
		.backend = b == B_THREADS ? MPROC_BACKEND_THREADS
		                          : MPROC_BACKEND_PROCESSES,
	};
	return mproc_pool_open(out, &o);
}

static void mp_close(struct mproc_pool *p)
{
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
}

/* apply_async: every task submitted, then every result fetched. */
static int mp_apply_async(struct mproc_pool *p, mproc_task_fn fn,
                          const struct gen *g, size_t n)
{
	struct mproc_writer *w;
	struct mproc_async **as = calloc(n ? n : 1, sizeof *as);
	const void *arg;
	size_t arglen, sent = 0;
	int rc = mproc_writer_new(&w, 5);
	if (rc < 0 || !as) {
		rc = rc < 0 ? rc : -ENOMEM;
		goto out;
	}
	/* Every task's argument is the same pickle (empty: index 0). */
	if ((rc = gen_next((void *)g, 0, w)) < 0 ||
	    (rc = mproc_writer_finish(w, &arg, &arglen)) < 0)
		goto out;
	for (; sent < n; sent++)
		if ((rc = mproc_apply_async(p, fn, arg, arglen, NULL,
		                            &as[sent])) < 0)
			goto out;
	for (size_t i = 0; i < n; i++) {
		const struct mproc_results *res;
		if ((rc = mproc_async_get(as[i], -1, &res)) < 0)
			goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < sent; i++)
		mproc_async_free(as[i]);
	free(as);
	mproc_writer_free(w);
	return rc;
}

static int mp_call(struct mproc_pool *p, const struct point *pt, size_t n)
{
	struct gen g = {.pt = pt, .n = n,
	                .iters = (int64_t)spin_iters(pt->task_ns)};
	struct mproc_input in;
	mproc_task_fn fn = task_fn(pt->task);
	int rc;
	mproc_input_fn_init(&in, gen_next, &g);
	in.has_len = true;
	in.len = n;
	if (pt->api == API_MAP) {
		struct mproc_results *res = NULL;
		rc = mproc_map(p, fn, &in, pt->chunksize, &res);
		if (rc == 0 && mproc_results_count(res) != n)
			rc = -EPROTO;
		mproc_results_free(res);
		return rc;
	}
	if (pt->api == API_APPLY_ASYNC)
		return mp_apply_async(p, fn, &g, n);
	struct mproc_iter *it;
	const struct mproc_result *r;
	size_t got = 0;
	rc = mproc_imap_opts(p, fn, &in, pt->chunksize,
	                     pt->api == API_IMAP, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		if (r->status != MPROC_OK) {
			rc = MPROC_ERAISED;
			break;
		}
		got++;
	}
	mproc_iter_free(it);
	if (rc == 0 && got != n)
		rc = -EPROTO;
	return rc;
}

/*
 * Whether `p`, opened with the threads backend, runs tasks in this
 * process: an mproc that predates the backend ignores the option and
 * forks workers, which must not be reported as threads.
 */
static int mp_check_threads(struct mproc_pool *p)
{
	struct mproc_results *res;
	int64_t pid = 0;
	int rc = mproc_apply(p, task_pid, NULL, 0, &res);
	if (rc == 0)
		rc = mproc_value_int(mproc_results_value(res, 0), &pid);
	mproc_results_free(res);
	if (rc < 0)
		return rc;
	return pid == getpid() ? 0 : -ENOTSUP;
}

static int run_mproc_startup(const struct point *pt, enum backend b, size_t n,
                             double *secs)
{
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		struct mproc_pool *p;
		struct mproc_results *res;
		int rc = mp_open(&p, b, pt->workers);
		if (rc < 0)
			return rc;
		rc = mproc_apply(p, task_empty, NULL, 0, &res);
		mproc_results_free(res);
		mp_close(p);
		if (rc < 0)
			return rc;
	}
	*secs = now() - t0;
	return 0;
}

/* Measure one point on one C backend: warm up, then `repeat` runs. */
static int measure(struct point *pt, enum backend b)
{
	double t[MAX_REPEAT];
	struct mproc_pool *mp = NULL;
	struct pm_pool *pm = NULL;
	int rc = 0;

	if (!pt->startup) {
		if (b == B_PMIN)
			rc = pm_open(&pm, pt->workers);
		else if (b == B_THREADS || b == B_PROCESSES)
			rc = mp_open(&mp, b, pt->workers);
		if (rc < 0)
			goto out;
		if (b == B_THREADS && (rc = mp_check_threads(mp)) < 0)
			goto out;
	} else if (b == B_THREADS) {
		if ((rc = mp_open(&mp, b, pt->workers)) < 0 ||
		    (rc = mp_check_threads(mp)) < 0)
			goto out;
		mp_close(mp);
		mp = NULL;
	}
	/* A C run of the n tasks that Python's pools take some 50-300 ms for
	 * can last a few ms: too short to measure a pool that wakes threads.
	 * So a timed run repeats the same n tasks until `min_run` has passed
	 * and counts as the mean of those batches. */
	double min_run = quick ? 0.03 : 0.1;
	for (int r = -1; r < repeat; r++) {
		/* r == -1 is the untimed warm-up. */
		size_t n = r < 0 ? pt->warm : pt->n;
		if (n == 0)
			continue;
		double total = 0;
		unsigned batches = 0;
		do {
			double dt = 0;
			if (b == B_SERIAL) {
				rc = run_serial(pt, n, &dt);
			} else if (b == B_PMIN) {
				rc = run_pmin(pt, n, &dt, pm);
			} else if (pt->startup) {
				rc = run_mproc_startup(pt, b, n, &dt);
			} else {
				double t0 = now();
				rc = mp_call(mp, pt, n);
				dt = now() - t0;
			}
			if (rc < 0)
				goto out;
			total += dt;
			batches++;
		} while (r >= 0 && total < min_run && batches < 1000);
		if (r >= 0)
			t[r] = total / batches;
	}
	pt->res[b] = summarize(t, repeat);
	pt->have[b] = true;
out:
	if (mp)
		mp_close(mp);
	if (pm)
		pm_close(pm);
	return rc;
}

/*
 * Whether backend b runs point pt: serial has no pool to open or to
 * schedule with (startup, sched: the sched table shows the greedy
 * schedule in its place), and pthread-min has one call, which sched runs
 * as its imap_unordered.
 */
static bool runs_on(const struct point *pt, int b)
{
	if (b == B_SERIAL)
		return !pt->startup && pt->series != S_SCHED;
	if (b == B_PMIN && pt->series == S_SCHED)
		return pt->api == API_IMAP_UNORDERED;
	return true;
}

static void sched_settle(void)
{
	struct timespec ts = {.tv_nsec = SCHED_SETTLE_NS};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One run of a sched point on pthread-min: arrival[] and t0 set. */
static int sched_run_pmin(const struct point *pt, int64_t *arrival,
                          int64_t *t0)
{
	const struct sched_scenario *s = &scen[pt->scen];
	struct pm_pool *pm;
	struct pm_job job = {.task = T_SLEEP, .ms = s->ms, .arrival = arrival};
	uint64_t acc;
	int rc = pm_open(&pm, pt->workers);
	if (rc < 0)
		return rc;
	sched_settle();
	*t0 = sched_mono_ns();
	rc = pm_run(pm, &job, s->n, 1, &acc);
	pm_close(pm);
	return rc;
}

/* One run of a sched point on mproc: a fresh pool, settled, no warm-up,
 * as bench_sched runs it. arrival[] and t0 set. */
static int sched_run_mproc(const struct point *pt, enum backend b,
                           int64_t *arrival, int64_t *t0)
{
	const struct sched_scenario *s = &scen[pt->scen];
	struct sched_rec *rec = calloc(s->n, sizeof *rec);
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	struct mproc_pool *p;
	const char *what;
	int rc;
	if (!rec)
		return -ENOMEM;
	o.processes = pt->workers;
	o.backend = b == B_THREADS ? MPROC_BACKEND_THREADS
	                           : MPROC_BACKEND_PROCESSES;
	if ((rc = mproc_pool_open(&p, &o)) < 0) {
		free(rec);
		return rc;
	}
	sched_settle();
	rc = pt->api == API_APPLY_ASYNC
	             ? sched_run_apply_async(p, s, rec, t0, &what)
	             : sched_run_imap_unordered(p, s, rec, t0, &what);
	if (rc < 0) {
		char d[96];
		describe(pt, d, sizeof d);
		notice("%s: %s: %s: %s", backend_name[b], d, what,
		       mproc_strerror(rc));
		mproc_pool_free(p); /* terminates it; then rec is ours */
		free(rec);
		return rc;
	}
	mp_close(p);
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct sched_rec *r = &rec[i];
		if (!r->arrival)
			rc = MPROC_EPROTO; /* a task without a result */
		else if (r->status != MPROC_OK || r->bad)
			rc = MPROC_ERAISED;
		/* The backend asked for, not an older mproc's default. */
		else if ((b == B_THREADS) != (r->pid == getpid()))
			rc = -ENOTSUP;
		arrival[i] = r->arrival;
	}
	free(rec);
	return rc;
}

/*
 * Measure a sched point on one C backend: pt->runs runs, each on a fresh
 * pool; the makespan (the last arrival) and the last quick task's arrival,
 * both from t0, go to res[b] and quick[b].
 */
static int measure_sched(struct point *pt, enum backend b)
{
	const struct sched_scenario *s = &scen[pt->scen];
	double span[MAX_REPEAT], quick[MAX_REPEAT];
	int64_t *arrival = calloc(s->n, sizeof *arrival);
	int rc = 0;
	if (!arrival)
		return -ENOMEM;
	for (int r = 0; r < pt->runs; r++) {
		int64_t t0 = 0, last = 0, last_quick = 0;
		rc = b == B_PMIN ? sched_run_pmin(pt, arrival, &t0)
		                 : sched_run_mproc(pt, b, arrival, &t0);
		if (rc < 0)
			goto out;
		for (size_t i = 0; i < s->n; i++) {
			int64_t a = arrival[i] - t0;
			if (a > last)
				last = a;
			if (s->quick[i] && a > last_quick)
				last_quick = a;
		}
		span[r] = (double)last / 1e9;
		quick[r] = (double)last_quick / 1e9;
	}
	pt->res[b] = summarize(span, pt->runs);
	pt->quick[b] = summarize(quick, pt->runs);
	pt->have[b] = true;
out:
	free(arrival);
	return rc;
}

/* ---- the points ---------------------------------------------------------- */

/*
 * Tasks per run. The C backends pay ~0.3-3 us a task at chunksize 1 and
 * Python's pools ~20-40 us, so a task is costed at no less than 6 us /
 * chunksize + 300 ns: a run then takes roughly `target` on the C backends
 * for short tasks without Python's taking many seconds.
 */
static size_t tasks_for(uint64_t task_ns, size_t payload, size_t chunksize,
                        double target)
{
	double cost = (double)task_ns;
	double floor_ns = 6000.0 / (double)chunksize + 300;
	double copy_ns = (double)payload * 2.0; /* ~2 ns a byte, both ways */
	if (cost < floor_ns)
		cost = floor_ns;
	if (cost < copy_ns)
		cost = copy_ns;
	double n = target * 1e9 / cost;
	size_t lo = 16;
	if (n < (double)lo)
		return lo;
	if (n > 2e6)
		return 2000000;
	return (size_t)n;
}

static void add_point(enum series s, enum task task, enum api api,
                      size_t chunksize, uint64_t task_ns, size_t payload,
                      unsigned workers, bool startup)
{
	double target = quick ? 0.05 : 0.2;
	if (npoints == MAX_POINTS)
		return;
	struct point *pt = &points[npoints++];
	*pt = (struct point){.series = s, .task = task, .api = api,
	                     .chunksize = chunksize, .task_ns = task_ns,
	                     .payload = payload, .workers = workers,
	                     .startup = startup};
	if (startup) {
		/* Python's Pool forks each worker with a big parent: some ms. */
		double cycle = 0.008 + 0.0015 * workers;
		size_t n = (size_t)(target / cycle);
		pt->n = n < 3 ? 3 : n;
		pt->warm = 1;
		pt->chunksize = 1;
		return;
	}
	pt->n = tasks_for(task_ns, payload, chunksize, target);
	/* Every worker gets a few chunks, or chunksize measures imbalance. */
	if (pt->n < 4 * (size_t)workers * chunksize)
		pt->n = 4 * (size_t)workers * chunksize;
	/* The warm-up spreads a few chunks to every worker, within ~20 ms. */
	size_t warm = 4 * (size_t)workers * chunksize;
	double cost = task_ns > 1000 ? (double)task_ns : 1000;
	size_t by_time = (size_t)(0.02e9 / cost);
	if (by_time < 2 * (size_t)workers)
		by_time = 2 * (size_t)workers;
	if (warm > by_time)
		warm = by_time;
	pt->warm = warm < pt->n ? warm : pt->n;
}

/* A sched point: scenario k through `api`, SCHED_WORKERS workers. */
static void add_sched_point(int k, enum api api, int runs)
{
	if (npoints == MAX_POINTS)
		return;
	struct point *pt = &points[npoints++];
	*pt = (struct point){.series = S_SCHED, .task = T_SLEEP, .api = api,
	                     .chunksize = 1, .workers = SCHED_WORKERS,
	                     .n = scen[k].n, .scen = k, .runs = runs};
	sched_greedy(&scen[k], SCHED_WORKERS, &pt->greedy_span,
	             &pt->greedy_quick);
}

static void build_points(const bool *want)
{
	unsigned w = opt_workers;
	static const uint64_t spins_full[] = {
		100, 300, 1000, 3000, 10000, 30000, 100000, 300000,
		1000000, 3000000, 10000000,
	};
	static const uint64_t spins_quick[] = {1000, 10000, 100000, 1000000};
	static const size_t sizes_full[] = {
		8, 64, 512, 1024, 4096, 32768, 65536, 262144, 1048576,
		16777216,
	};
	static const size_t sizes_len[] = {1024, 65536, 1048576, 16777216};
	static const size_t chunks_full[] = {1, 4, 16, 64, 256, 1024};
	static const unsigned startup_full[] = {1, 2, 4, 8, 16, 32, 64};

	if (want[S_EMPTY]) {
		add_point(S_EMPTY, T_EMPTY, API_IMAP, 1, 0, 0, w, false);
		add_point(S_EMPTY, T_EMPTY, API_IMAP, 64, 0, 0, w, false);
	}
	if (want[S_SPIN]) {
		const uint64_t *s = quick ? spins_quick : spins_full;
		size_t ns = quick ? sizeof spins_quick / sizeof *spins_quick
		                  : sizeof spins_full / sizeof *spins_full;
		for (size_t i = 0; i < ns; i++)
			add_point(S_SPIN, T_SPIN, API_IMAP, 1, s[i], 0, w, false);
		/* At chunksize 64, up to the spins where 4 chunks a worker
		 * still run in 0.6 s serially. */
		for (size_t i = 0; i < ns && !quick; i++)
			if (4.0 * w * 64 * (double)s[i] <= 0.6e9)
				add_point(S_SPIN, T_SPIN, API_IMAP, 64, s[i], 0, w,
				          false);
	}
	if (want[S_PAYLOAD]) {
		if (quick)
			add_point(S_PAYLOAD, T_PAYLOAD, API_IMAP, 1, 0, 65536, w,
			          false);
		for (size_t i = 0; !quick && i < sizeof sizes_full /
		                                 sizeof *sizes_full; i++)
			add_point(S_PAYLOAD, T_PAYLOAD, API_IMAP, 1, 0,
			          sizes_full[i], w, false);
	}
	if (want[S_PAYLOAD_LEN] && !quick)
		for (size_t i = 0; i < sizeof sizes_len / sizeof *sizes_len; i++)
			add_point(S_PAYLOAD_LEN, T_LEN, API_IMAP, 1, 0,
			          sizes_len[i], w, false);
	if (want[S_CHUNKSIZE] && !quick)
		for (size_t i = 0; i < sizeof chunks_full / sizeof *chunks_full;
		     i++)
			add_point(S_CHUNKSIZE, T_EMPTY, API_IMAP, chunks_full[i],
			          0, 0, w, false);
	if (want[S_STARTUP]) {
		if (quick)
			add_point(S_STARTUP, T_EMPTY, API_IMAP, 1, 0, 0, w, true);
		for (size_t i = 0; !quick && i < sizeof startup_full /
		                                 sizeof *startup_full; i++)
			add_point(S_STARTUP, T_EMPTY, API_IMAP, 1, 0, 0,
			          startup_full[i], true);
	}
	if (want[S_API]) {
		static const enum api all[] = {API_IMAP, API_IMAP_UNORDERED,
		                               API_MAP, API_APPLY_ASYNC};
		static const enum api some[] = {API_MAP, API_APPLY_ASYNC};
		const enum api *a = quick ? some : all;
		size_t na = quick ? 2 : 4;
		for (size_t i = 0; i < na; i++)
			add_point(S_API, T_SPIN, a[i], 1, 10000, 0, w, false);
		for (size_t i = 0; i < na && !quick; i++)
			add_point(S_API, T_EMPTY, a[i], 1, 0, 0, w, false);
	}
	if (want[S_SCHED]) {
		/* A run is one schedule of 0.6 s (mixed) or 1.5 s
		 * (slow-first) on a fresh pool; --quick makes one run of
		 * mixed through imap_unordered on each backend (~4 s). */
		int runs = quick && !repeat_given ? 1 : repeat;
		for (int k = 0; k < 2; k++) {
			add_sched_point(k, API_IMAP_UNORDERED, runs);
			if (!quick)
				add_sched_point(k, API_APPLY_ASYNC, runs);
			if (quick)
				break;
		}
	}
}

/* ---- Python -------------------------------------------------------------- */

/*
 * mproc_bench.py runs as a coprocess, driven point by point so that
 * Python's pools are measured right after the C backends on the same
 * point: the machine's load drifts, and a comparison made minutes apart
 * would measure the drift. Protocol, one line each way per step:
 *
 *   C -> Python  "P i:task:api:workers:chunksize:task_ns:payload:n:warm:
 *                startup" (one point; EOF on stdin ends the script), or
 *                "S i:scenario:api:workers:runs" (a sched point)
 *   Python -> C  "R i backend median min max" (seconds) or
 *                "E i backend message", one per Python backend, then
 *                "D i" when the point is done. For a sched point, first
 *                "G i greedy makespan last_quick", the greedy schedule of
 *                the script's own task list (checked against ours: the
 *                same work), and "R i backend median min max qmedian
 *                qmin qmax", the makespan's and the last quick task's
 *                arrival's.
 *
 * The script prints its own errors on stderr.
 */
static pid_t py_pid = -1;
static FILE *py_in, *py_out;

static void py_fail(const char *why)
{
	notice("%s; skipping the Python backends", why);
	for (int b = B_PY_POOL; b < B_COUNT; b++)
		failed[b] = true;
}

/* Start the script; 0, or -1 with the Python backends marked failed. */
static int py_start(const char *python)
{
	char backends[64] = "", rep[16];
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	char msg[300];

	for (int b = B_PY_POOL; b < B_COUNT; b++)
		if (selected[b]) {
			if (*backends)
				strcat(backends, ",");
			strcat(backends, backend_key[b]);
		}
	if (!*backends)
		return 0;
	snprintf(rep, sizeof rep, "%d", repeat);
	char *argv[] = {(char *)python, (char *)bench_py(), "--repeat",
	                rep,            "--backends",           backends,
	                NULL};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		snprintf(msg, sizeof msg, "pipe: %s", strerror(errno));
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	int err = posix_spawnp(&py_pid, python, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		py_pid = -1;
		snprintf(msg, sizeof msg, "%s: %s", python, strerror(err));
		goto fail;
	}
	close(in[0]);
	close(out[1]);
	py_in = fdopen(in[1], "w");
	py_out = fdopen(out[0], "r");
	if (!py_in || !py_out) {
		snprintf(msg, sizeof msg, "fdopen: %s", strerror(errno));
		in[0] = out[1] = -1;
		if (!py_in)
			close(in[1]);
		if (!py_out)
			close(out[0]);
		in[1] = out[0] = -1;
		goto fail;
	}
	return 0;
fail:
	for (int k = 0; k < 2; k++) {
		if (in[k] >= 0)
			close(in[k]);
		if (out[k] >= 0)
			close(out[k]);
	}
	py_fail(msg);
	return -1;
}

/* Stop the script and reap it; 0, or -1 when it failed. */
static int py_stop(void)
{
	int rc = 0, st = 0;
	if (py_in)
		fclose(py_in);
	if (py_out)
		fclose(py_out);
	py_in = py_out = NULL;
	if (py_pid <= 0)
		return 0;
	while (waitpid(py_pid, &st, 0) < 0 && errno == EINTR)
		;
	py_pid = -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
		py_fail("this python has no usable multiprocessing");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		notice("%s failed", bench_py());
		rc = -1;
	}
	return rc;
}

/* Measure point i on the Python backends. 0, or -1 when a point failed. */
static int py_point(size_t i)
{
	const struct point *pt = &points[i];
	char line[512];
	int rc = 0;

	if (!py_in || failed[B_PY_POOL])
		return 0;
	for (int b = B_PY_POOL; b < B_COUNT; b++)
		if (selected[b]) {
			progress(pt, backend_name[b]);
			break;
		}
	bool sched = pt->series == S_SCHED;
	if (sched)
		fprintf(py_in, "S %zu:%s:%s:%u:%d\n", i, scen[pt->scen].name,
		        api_name[pt->api], pt->workers, pt->runs);
	else
		fprintf(py_in,
		        "P %zu:%s:%s:%u:%zu:%" PRIu64 ":%zu:%zu:%zu:%d\n", i,
		        task_name[pt->task], api_name[pt->api], pt->workers,
		        pt->chunksize, pt->task_ns, pt->payload, pt->n,
		        pt->warm, pt->startup);
	if (fflush(py_in) != 0) {
		py_stop();
		py_fail("the Python script exited early");
		return -1;
	}
	while (fgets(line, sizeof line, py_out)) {
		char kind, name[32];
		size_t k;
		struct stat3 s;
		int used = 0;
		int got = sscanf(line, "%c %zu %31s %n", &kind, &k, name, &used);
		if (got >= 2 && kind == 'D' && k == i)
			return rc;
		if (got < 3 || k != i || !used)
			continue;
		double gs, gq;
		if (kind == 'G' && !strcmp(name, "greedy")) {
			if (sscanf(line + used, "%lf %lf", &gs, &gq) != 2 ||
			    fabs(gs - pt->greedy_span) > 1e-9 ||
			    fabs(gq - pt->greedy_quick) > 1e-9) {
				char d[96];
				describe(pt, d, sizeof d);
				notice("%s: the Python script's greedy schedule "
				       "is not ours (%.3f s, %.3f s): not the "
				       "same work", d, gs, gq);
				rc = -1;
			}
			continue;
		}
		int b = B_PY_POOL;
		while (b < B_COUNT && strcmp(backend_key[b], name))
			b++;
		if (b == B_COUNT)
			continue;
		if (b == B_PY_POOL && selected[B_PY_THREADPOOL])
			progress(pt, backend_name[B_PY_THREADPOOL]);
		struct stat3 q;
		int nv = kind == 'R' ? sscanf(line + used,
		                              "%lf %lf %lf %lf %lf %lf", &s.med,
		                              &s.min, &s.max, &q.med, &q.min,
		                              &q.max)
		                     : 0;
		if (kind == 'R' && nv == (sched ? 6 : 3)) {
			points[i].res[b] = s;
			if (sched)
				points[i].quick[b] = q;
			points[i].have[b] = true;
		} else if (kind == 'E') {
			char d[96];
			line[strcspn(line, "\n")] = 0;
			describe(pt, d, sizeof d);
			notice("%s: %s: %s", backend_name[b], d, line + used);
			rc = -1;
		}
	}
	py_stop();
	py_fail("the Python script exited early");
	return -1;
}

/* ---- output -------------------------------------------------------------- */

static double speedup(const struct point *pt, int b)
{
	if (pt->startup || pt->series == S_SCHED || !pt->have[B_SERIAL] ||
	    !pt->have[b] ||
	    pt->res[b].med <= 0)
		return NAN;
	return pt->res[B_SERIAL].med / pt->res[b].med;
}

static void point_cells(const struct point *pt, char *task, size_t tlen,
                        char *pay, size_t plen)
{
	if (pt->startup)
		snprintf(task, tlen, "-");
	else if (pt->task == T_SPIN)
		fmt_ns(task, tlen, pt->task_ns);
	else
		snprintf(task, tlen, "%s", task_name[pt->task]);
	if (pt->task == T_PAYLOAD || pt->task == T_LEN)
		fmt_size(pay, plen, pt->payload);
	else
		snprintf(pay, plen, "-");
}

static void print_table(void)
{
	bool any = false;
	for (size_t i = 0; i < npoints; i++)
		any |= points[i].series != S_SCHED;
	if (!any)
		return;
	printf("mproc-bench: %d runs a point (median, min, max of one run); "
	       "speedup = serial median / backend median; spin calibrated at "
	       "%.3f iterations/ns\n\n",
	       repeat, spin_per_ns);
	printf("%-11s %-14s %3s %5s %6s %7s %8s  %-13s %9s %9s %9s %9s %8s "
	       "%8s\n",
	       "workload", "api", "w", "cs", "task", "payload", "n", "backend",
	       "median", "min", "max", "us/task", "tasks/s", "speedup");
	bool rows = false;
	for (size_t i = 0; i < npoints; i++) {
		const struct point *pt = &points[i];
		char task[24], pay[24];
		if (pt->series == S_SCHED)
			continue; /* its own table: print_sched() */
		point_cells(pt, task, sizeof task, pay, sizeof pay);
		bool first = true;
		for (int b = 0; b < B_COUNT; b++) {
			if (!selected[b] || !runs_on(pt, b))
				continue;
			if (first && rows)
				putchar('\n');
			first = false;
			rows = true;
			printf("%-11s %-14s %3u %5zu %6s %7s %8zu  %-13s",
			       series_name[pt->series],
			       pt->startup ? "apply" : api_name[pt->api],
			       pt->workers, pt->chunksize, task, pay, pt->n,
			       backend_name[b]);
			if (!pt->have[b]) {
				printf(" %9s\n", "n/a");
				continue;
			}
			char med[16], mn[16], mx[16], rate[16], sp[16];
			fmt_secs(med, sizeof med, pt->res[b].med);
			fmt_secs(mn, sizeof mn, pt->res[b].min);
			fmt_secs(mx, sizeof mx, pt->res[b].max);
			fmt_rate(rate, sizeof rate,
			         (double)pt->n / pt->res[b].med);
			double s = speedup(pt, b);
			if (isnan(s))
				snprintf(sp, sizeof sp, "-");
			else
				snprintf(sp, sizeof sp, "%.2fx", s);
			printf(" %9s %9s %9s %9.3f %8s %8s\n", med, mn, mx,
			       pt->res[b].med / (double)pt->n * 1e6, rate, sp);
		}
	}
}

/*
 * The sched table: for each scenario and api, the greedy schedule's
 * makespan and last quick task first (in serial's place), then each
 * backend's, with the makespan over greedy's and the last quick task's
 * lateness behind greedy's (median).
 */
static void print_sched(void)
{
	bool any = false;
	int runs = 0;
	for (size_t i = 0; i < npoints; i++)
		if (points[i].series == S_SCHED) {
			any = true;
			runs = points[i].runs;
		}
	if (!any)
		return;
	printf("\nWork conservation (sched): %d workers, every task sleeps; "
	       "mixed: 400 tasks, every 50th of 200 ms,\nthe others of 2 ms; "
	       "slow-first: one of 1500 ms, then 40 of 10 ms. %d run%s a "
	       "point, each on a fresh pool\n(settled 100 ms, no warm-up): "
	       "median, min, max. makespan: when the last result arrived; "
	       "last quick: when the\nlast quick task's result did (both "
	       "from just before the first submission); greedy: list "
	       "scheduling\nwith no overhead; late: last quick - greedy's "
	       "last quick (medians). pthread-min has one call, run as\n"
	       "imap_unordered.\n\n",
	       SCHED_WORKERS, runs, runs == 1 ? "" : "s");
	printf("%-10s %-14s %2s %4s  %-13s %9s %9s %9s %7s %10s %9s %9s "
	       "%9s\n",
	       "scenario", "api", "w", "n", "backend", "makespan", "min", "max",
	       "/greedy", "last quick", "min", "max", "late");
	bool rows = false;
	for (size_t i = 0; i < npoints; i++) {
		const struct point *pt = &points[i];
		if (pt->series != S_SCHED)
			continue;
		if (rows)
			putchar('\n');
		rows = true;
		const char *sn = scen[pt->scen].name, *an = api_name[pt->api];
		char span[16], quick[16];
		fmt_secs(span, sizeof span, pt->greedy_span);
		fmt_secs(quick, sizeof quick, pt->greedy_quick);
		printf("%-10s %-14s %2u %4zu  %-13s %9s %9s %9s %6.2fx %10s %9s "
		       "%9s %+7.1fms\n",
		       sn, an, pt->workers, pt->n, "greedy", span, "", "", 1.0,
		       quick, "", "", 0.0);
		for (int b = 0; b < B_COUNT; b++) {
			if (!selected[b] || !runs_on(pt, b))
				continue;
			printf("%-10s %-14s %2u %4zu  %-13s", sn, an, pt->workers,
			       pt->n, backend_name[b]);
			if (!pt->have[b]) {
				printf(" %9s\n", "n/a");
				continue;
			}
			char mn[16], mx[16], qmn[16], qmx[16];
			fmt_secs(span, sizeof span, pt->res[b].med);
			fmt_secs(mn, sizeof mn, pt->res[b].min);
			fmt_secs(mx, sizeof mx, pt->res[b].max);
			fmt_secs(quick, sizeof quick, pt->quick[b].med);
			fmt_secs(qmn, sizeof qmn, pt->quick[b].min);
			fmt_secs(qmx, sizeof qmx, pt->quick[b].max);
			printf(" %9s %9s %9s %6.2fx %10s %9s %9s %+7.1fms\n",
			       span, mn, mx, pt->res[b].med / pt->greedy_span,
			       quick, qmn, qmx,
			       (pt->quick[b].med - pt->greedy_quick) * 1e3);
		}
	}
}

static void print_summary(void)
{
	bool any = false;
	for (size_t i = 0; i < npoints; i++)
		any |= points[i].series == S_SPIN;
	if (any) {
		printf("\nCrossover: the shortest spin task whose speedup over "
		       "serial is > 1 (imap, chunksize 1, %u workers):\n",
		       opt_workers);
		for (int b = B_PMIN; b < B_COUNT; b++) {
			if (!selected[b])
				continue;
			bool measured = false;
			uint64_t best = 0, longest = 0;
			for (size_t i = 0; i < npoints; i++) {
				const struct point *pt = &points[i];
				if (pt->series != S_SPIN || pt->chunksize != 1 ||
				    pt->workers != opt_workers || !pt->have[b])
					continue;
				measured = true;
				if (pt->task_ns > longest)
					longest = pt->task_ns;
				double s = speedup(pt, b);
				if (s > 1 && (!best || pt->task_ns < best))
					best = pt->task_ns;
			}
			char d[24];
			printf("  %-13s ", backend_name[b]);
			if (!measured) {
				printf("n/a\n");
			} else if (best) {
				fmt_ns(d, sizeof d, best);
				printf("%s\n", d);
			} else {
				fmt_ns(d, sizeof d, longest);
				printf("none up to %s\n", d);
			}
		}
	}
	/* The thread backend against the hand-written floor. */
	for (size_t i = 0; i < npoints; i++) {
		const struct point *pt = &points[i];
		if (pt->series != S_EMPTY || pt->chunksize != 1 ||
		    !pt->have[B_THREADS] || !pt->have[B_PMIN])
			continue;
		printf("\nAn empty task on mproc's threads backend took %.2fx "
		       "the time it took on a minimal pthread pool (imap, "
		       "chunksize 1, median of the runs): what mproc's queue, "
		       "codec and pipes add over the bare minimum.\n",
		       pt->res[B_THREADS].med / pt->res[B_PMIN].med);
	}
}

static int write_csv(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		notice("%s: %s", path, strerror(errno));
		return -1;
	}
	/* The columns after speedup are the sched workload's (empty on the
	 * other rows): there median_s, min_s and max_s are the makespan's,
	 * us_per_task, tasks_per_s and speedup are empty, and each point
	 * starts with a row of backend "greedy", the greedy schedule. */
	fprintf(f, "workload,api,backend,workers,chunksize,task_ns,payload,"
	           "n_tasks,median_s,min_s,max_s,us_per_task,tasks_per_s,"
	           "speedup,scenario,makespan_vs_greedy,last_quick_median_s,"
	           "last_quick_min_s,last_quick_max_s,greedy_makespan_s,"
	           "greedy_last_quick_s,late_ms\n");
	for (size_t i = 0; i < npoints; i++) {
		const struct point *pt = &points[i];
		if (pt->series == S_SCHED) {
			const char *sn = scen[pt->scen].name;
			double gs = pt->greedy_span, gq = pt->greedy_quick;
			fprintf(f, "sched,%s,greedy,%u,%zu,0,0,%zu,%.9f,%.9f,%.9f,"
			           ",,,%s,1.0000,%.9f,%.9f,%.9f,%.9f,%.9f,0.000\n",
			        api_name[pt->api], pt->workers, pt->chunksize,
			        pt->n, gs, gs, gs, sn, gq, gq, gq, gs, gq);
			for (int b = 0; b < B_COUNT; b++) {
				if (!pt->have[b])
					continue;
				const struct stat3 *m = &pt->res[b],
				                   *q = &pt->quick[b];
				fprintf(f, "sched,%s,%s,%u,%zu,0,0,%zu,%.9f,%.9f,"
				           "%.9f,,,,%s,%.4f,%.9f,%.9f,%.9f,%.9f,"
				           "%.9f,%.3f\n",
				        api_name[pt->api], backend_key[b],
				        pt->workers, pt->chunksize, pt->n, m->med,
				        m->min, m->max, sn, m->med / gs, q->med,
				        q->min, q->max, gs, gq,
				        (q->med - gq) * 1e3);
			}
			continue;
		}
		for (int b = 0; b < B_COUNT; b++) {
			if (!pt->have[b])
				continue;
			double s = speedup(pt, b);
			char sp[32] = "";
			if (!isnan(s))
				snprintf(sp, sizeof sp, "%.4f", s);
			fprintf(f, "%s,%s,%s,%u,%zu,%" PRIu64 ",%zu,%zu,%.9f,%.9f,"
			           "%.9f,%.4f,%.1f,%s,,,,,,,,\n",
			        pt->startup ? "startup" : series_name[pt->series],
			        pt->startup ? "apply" : api_name[pt->api],
			        backend_key[b], pt->workers, pt->chunksize,
			        pt->task_ns, pt->payload, pt->n, pt->res[b].med,
			        pt->res[b].min, pt->res[b].max,
			        pt->res[b].med / (double)pt->n * 1e6,
			        (double)pt->n / pt->res[b].med, sp);
		}
	}
	if (fclose(f) != 0) {
		notice("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Draw speedup against task duration with gnuplot: the data go to a temp
 * file, one block per backend and chunksize, and the script to gnuplot's
 * stdin.
 */
static int write_plot(const char *path)
{
	const char *dot = strrchr(path, '.');
	bool svg = dot && !strcmp(dot, ".svg");
	char data[] = "/tmp/mproc-bench.XXXXXX";
	int fd = mkstemp(data), rc = -1;
	FILE *df = fd >= 0 ? fdopen(fd, "w") : NULL;
	FILE *gp = NULL;
	int fds[2] = {-1, -1};
	pid_t pid = -1;
	struct block {
		int b;
		size_t cs;
	} blocks[2 * B_COUNT];
	size_t nb = 0;

	if (!df) {
		notice("temp file: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	for (int b = B_PMIN; b < B_COUNT; b++) {
		static const size_t css[] = {1, 64};
		for (size_t c = 0; c < 2; c++) {
			size_t rows = 0;
			for (size_t i = 0; i < npoints; i++) {
				const struct point *pt = &points[i];
				double s = speedup(pt, b);
				if (pt->series != S_SPIN ||
				    pt->chunksize != css[c] || isnan(s))
					continue;
				if (!rows && nb)
					fputs("\n\n", df);
				fprintf(df, "%" PRIu64 " %.6f\n", pt->task_ns, s);
				rows++;
			}
			if (rows)
				blocks[nb++] = (struct block){b, css[c]};
		}
	}
	if (fclose(df) != 0 || !nb) {
		if (!nb)
			notice("--plot: no spin points with a speedup to draw");
		goto out;
	}

	if (pipe2(fds, O_CLOEXEC) < 0)
		goto out;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
	char *argv[] = {(char *)"gnuplot", NULL};
	int err = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	if (err) {
		pid = -1;
		close(fds[1]);
		notice("gnuplot: %s (Debian: apt install gnuplot-nox)",
		       strerror(err));
		goto out;
	}
	gp = fdopen(fds[1], "w");
	if (!gp) {
		close(fds[1]);
		goto out;
	}
	/* The line colour of each backend, the same in both chunksizes. */
	static const char *const colour[B_COUNT] = {
		"black", "#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
	};
	if (svg)
		fputs("set terminal svg size 900,560 dynamic "
		      "font 'sans,12'\n", gp);
	else
		fputs("set terminal pngcairo size 900,560 font 'sans,10'\n", gp);
	fprintf(gp, "set output '%s'\n", path);
	/* The title names the dashed lines only when some are drawn
	 * (--quick measures chunksize 1 alone). */
	bool any_dashed = false;
	for (size_t k = 0; k < nb; k++)
		any_dashed |= blocks[k].cs != 1;
	fprintf(gp, "set title 'Speedup over a serial loop, %u workers "
	            "(imap; %s)'\n",
	        opt_workers,
	        any_dashed ? "solid: chunksize 1, dashed: chunksize 64"
	                   : "chunksize 1");
	fputs("set logscale xy\n"
	      "set xrange [80:12000000]\n"
	      "set xtics ('100 ns' 100, '1 us' 1000, '10 us' 10000, "
	      "'100 us' 100000, '1 ms' 1000000, '10 ms' 10000000)\n"
	      "set xlabel 'task duration (spin)'\n"
	      "set ylabel 'speedup over serial (serial time / backend time)'\n"
	      "set grid\n"
	      "set key bottom right box opaque\n",
	      gp);
	fputs("plot 1 with lines lc 'black' dt 3 lw 1 title 'speedup 1 "
	      "(serial)'",
	      gp);
	for (size_t k = 0; k < nb; k++) {
		int b = blocks[k].b;
		bool dashed = blocks[k].cs != 1;
		fprintf(gp, ", \\\n  '%s' index %zu using 1:2 with linespoints "
		            "lc '%s' dt %d pt 7 ps 0.6 lw 2 title '%s%s'",
		        data, k, colour[b], dashed ? 2 : 1, backend_name[b],
		        dashed ? ", chunksize 64" : "");
	}
	fputs("\n", gp);
	rc = 0;
out:
	if (gp && fclose(gp) != 0)
		rc = -1;
	if (pid > 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			notice("gnuplot failed");
			rc = -1;
		}
	}
	if (fd >= 0)
		unlink(data);
	return rc;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: mproc-bench [options]\n"
	        "\n"
	        "Runs the same tasks on a serial loop, a minimal pthread pool, "
	        "mproc's thread\n"
	        "and process pools and Python's Pool and ThreadPool, and "
	        "prints a table of\n"
	        "times, tasks/s and the speedup over the serial loop.\n"
	        "\n"
	        "  --quick            a subset, 3 runs a point, in under 30 s\n"
	        "  --workers N        pool size (default 2; 1..%d)\n"
	        "  --repeat N         runs per point (default 5, --quick 3; "
	        "1..%d)\n"
	        "  --only LIST        backends, comma-separated: serial, "
	        "pthread-min,\n"
	        "                     threads, processes, py-pool, "
	        "py-threadpool\n"
	        "                     (serial always runs: speedups need it)\n"
	        "  --workload LIST    empty, spin, payload, payload-len, "
	        "chunksize,\n"
	        "                     startup, api, sched (default: all)\n"
	        "  --csv FILE         write every point as CSV\n"
	        "  --plot FILE        draw speedup against task duration with "
	        "gnuplot;\n"
	        "                     FILE ends in .svg or .png\n"
	        "  --python PATH      the python3 for the Python backends "
	        "(default:\n"
	        "                     $MPROC_PYTHON, else python3 from PATH)\n"
	        "  --help             this text\n"
	        "\n"
	        "Exit status: 0, 1 when a backend or an output failed, 2 on a "
	        "usage error.\n",
	        MAX_WORKERS, MAX_REPEAT);
}

static int usage_error(const char *fmt, ...) MPROC_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("mproc-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'mproc-bench --help'.\n", stderr);
	return 2;
}

static bool parse_uint(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Mark each comma-separated name of `list` found in `names`. */
static bool parse_list(const char *list, const char *const *names, int n,
                       bool *mark, char *bad, size_t badlen)
{
	const char *p = list;
	if (!*p) {
		snprintf(bad, badlen, "(empty)");
		return false;
	}
	while (*p) {
		size_t len = strcspn(p, ",");
		int k = 0;
		while (k < n && (strlen(names[k]) != len ||
		                 strncasecmp(names[k], p, len)))
			k++;
		if (k == n) {
			snprintf(bad, badlen, "%.*s", (int)len, p);
			return false;
		}
		mark[k] = true;
		p += len;
		if (*p == ',')
			p++;
	}
	return true;
}

/*
 * Whether `path` can be written as an output file, tried for real (the
 * permission bits alone say nothing for root): an existing file is opened
 * for writing without being truncated; a new one is created and removed
 * again. Says why not in `why`.
 */
static bool output_writable(const char *path, char *why, size_t n)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(why, n, "'%s' is a directory", path);
		return false;
	}
	bool existed = stat(path, &st) == 0;
	int fd = open(path, O_WRONLY | O_CLOEXEC | (existed ? 0 : O_CREAT | O_EXCL),
	              0644);
	if (fd < 0) {
		snprintf(why, n, "cannot write '%s': %s", path, strerror(errno));
		return false;
	}
	close(fd);
	if (!existed)
		unlink(path);
	return true;
}

int main(int argc, char *argv[], char *envp[])
{
	const char *python = getenv("MPROC_PYTHON");
	const char *csv = NULL, *plot = NULL;
	bool only[B_COUNT] = {0}, any_only = false;
	bool want[S_COUNT] = {0}, any_want = false;
	char bad[64];
	long v;

	mproc_init(argc, argv, envp);
	if (!python || !*python)
		python = "python3";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = !strcmp(a, "--workers") || !strcmp(a, "--repeat") ||
		             !strcmp(a, "--only") || !strcmp(a, "--workload") ||
		             !strcmp(a, "--csv") || !strcmp(a, "--plot") ||
		             !strcmp(a, "--python");
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--quick")) {
			quick = true;
			continue;
		} else if (!takes) {
			return usage_error("unknown option '%s'", a);
		}
		if (!val)
			return usage_error("%s needs a value", a);
		i++;
		if (!strcmp(a, "--workers")) {
			if (!parse_uint(val, 1, MAX_WORKERS, &v))
				return usage_error("--workers: '%s' is not a "
				                   "number from 1 to %d",
				                   val, MAX_WORKERS);
			opt_workers = (unsigned)v;
		} else if (!strcmp(a, "--repeat")) {
			if (!parse_uint(val, 1, MAX_REPEAT, &v))
				return usage_error("--repeat: '%s' is not a "
				                   "number from 1 to %d",
				                   val, MAX_REPEAT);
			repeat = (int)v;
			repeat_given = true;
		} else if (!strcmp(a, "--only")) {
			if (!parse_list(val, backend_key, B_COUNT, only, bad,
			                sizeof bad))
				return usage_error("--only: unknown backend "
				                   "'%s'", bad);
			any_only = true;
		} else if (!strcmp(a, "--workload")) {
			if (!parse_list(val, series_name, S_COUNT, want, bad,
			                sizeof bad))
				return usage_error("--workload: unknown "
				                   "workload '%s'", bad);
			any_want = true;
		} else if (!strcmp(a, "--csv")) {
			if (!*val)
				return usage_error("--csv: empty file name");
			csv = val;
		} else if (!strcmp(a, "--plot")) {
			const char *dot = strrchr(val, '.');
			if (!dot || (strcmp(dot, ".svg") && strcmp(dot, ".png")))
				return usage_error("--plot: '%s' must end in "
				                   ".svg or .png", val);
			if (strchr(val, '\'') || strchr(val, '\n'))
				return usage_error("--plot: quotes and newlines "
				                   "are not supported in the "
				                   "file name");
			plot = val;
		} else {
			if (!*val)
				return usage_error("--python: empty path");
			python = val;
		}
	}
	/* An output that cannot be written is refused now, not after the
	 * whole run. */
	char why[160];
	if (csv && !output_writable(csv, why, sizeof why))
		return usage_error("--csv: %s", why);
	if (plot && !output_writable(plot, why, sizeof why))
		return usage_error("--plot: %s", why);
	/* --quick keeps its 30 s on a loaded machine with 3 runs a point. */
	if (quick && !repeat_given)
		repeat = 3;
	for (int b = 0; b < B_COUNT; b++)
		selected[b] = !any_only || only[b];
	selected[B_SERIAL] = true;
	for (int s = 0; s < S_COUNT; s++)
		want[s] = !any_want || want[s];

	setvbuf(stdout, NULL, _IOLBF, 0);
	progress_on = isatty(STDERR_FILENO);
	signal(SIGPIPE, SIG_IGN);

	payload_buf = malloc(PAYLOAD_MAX);
	serial_out = malloc(PAYLOAD_MAX);
	if (!payload_buf || !serial_out) {
		notice("out of memory");
		return 1;
	}
	memset(payload_buf, 0xa5, PAYLOAD_MAX);
	memset(serial_out, 0, PAYLOAD_MAX);
	for (int k = 0; k < 2; k++)
		if (sched_scenario_make(&scen[k], sched_scenario_names[k]) < 0) {
			notice("out of memory");
			return 1;
		}
	calibrate();
	build_points(want);

	int status = 0;
	for (size_t i = 0; i < npoints; i++)
		for (int b = 0; b < B_COUNT; b++)
			prog_total += selected[b] && runs_on(&points[i], b);
	py_start(python);
	for (size_t i = 0; i < npoints; i++) {
		for (int b = 0; b < B_PY_POOL; b++) {
			if (!selected[b] || !runs_on(&points[i], b))
				continue;
			progress(&points[i], backend_name[b]);
			if (failed[b])
				continue;
			int rc = points[i].series == S_SCHED
			                 ? measure_sched(&points[i], (enum backend)b)
			                 : measure(&points[i], (enum backend)b);
			if (rc == -ENOTSUP && b == B_THREADS) {
				notice("threads: this mproc runs the thread "
				       "backend's tasks in another process (the "
				       "backend is not built here); reported as "
				       "n/a");
				failed[b] = true;
			} else if (rc < 0) {
				char d[96];
				describe(&points[i], d, sizeof d);
				notice("%s: %s: %s%s", backend_name[b], d,
				       mproc_strerror(rc),
				       b == B_THREADS ? "; reported as n/a" : "");
				if (b == B_THREADS)
					failed[b] = true;
				else
					status = 1;
			}
		}
		if (py_point(i) < 0)
			status = 1;
	}
	if (py_stop() < 0)
		status = 1;
	progress_clear();

	print_table();
	print_summary();
	print_sched();
	if (csv && write_csv(csv) < 0)
		status = 1;
	if (plot && write_plot(plot) < 0)
		status = 1;
	free(payload_buf);
	free(serial_out);
	for (int k = 0; k < 2; k++)
		sched_scenario_free(&scen[k]);
	return status;
}
