/*
 * bench_pool.c - what one task costs in mproc's process pool, beside the
 * floors it is measured against in the same run: a bare pipe round trip
 * between two processes, and a minimal hand-written fork-and-pipe pool.
 *
 * Prints one line per measure: "name value unit". bench/compare_pool.py runs
 * this and bench/bench_pool.py (Python's multiprocessing.Pool on the same
 * work) several times and makes the table in docs/benchmarks.md.
 *
 * Usage: bench_pool [--quick] [--only NAME,...]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_pool: %s: %s\n", what, mproc_strerror(rc));
	exit(1);
}

/* The empty task: returns None. */
static int empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

static double bench_timeout; /* task_timeout of the pools opened below */
static enum mproc_start_method bench_start; /* and their start method */

static struct mproc_pool *open2(void)
{
	struct mproc_pool_opts o = {.processes = 2, .task_timeout = bench_timeout,
	                            .start_method = bench_start};
	struct mproc_pool *p;
	int rc = mproc_pool_open(&p, &o);
	if (rc < 0)
		die("pool_open", rc);
	return p;
}

static void close2(struct mproc_pool *p)
{
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
}

static void bench_imap(size_t n, size_t chunksize, const char *name)
{
	struct mproc_pool *p = open2();
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	double t0 = now();
	int rc = mproc_imap(p, empty, &in, chunksize, &it);
	if (rc < 0)
		die("imap", rc);
	size_t got = 0;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1)
		got++;
	double dt = now() - t0;
	if (rc < 0 || got != n)
		die("imap next", rc);
	mproc_iter_free(it);
	close2(p);
	printf("%s %.1f tasks/s\n", name, (double)n / dt);
}

static void bench_map(size_t n)
{
	struct mproc_pool *p = open2();
	struct mproc_input in;
	struct mproc_results *res;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	double t0 = now();
	int rc = mproc_map(p, empty, &in, 0, &res);
	double dt = now() - t0;
	if (rc < 0 || mproc_results_count(res) != n)
		die("map", rc);
	mproc_results_free(res);
	close2(p);
	printf("map_default %.1f tasks/s\n", (double)n / dt);
}

static void bench_apply(size_t n)
{
	struct mproc_pool *p = open2();
	struct mproc_results *res;
	/* Warm up both workers. */
	for (int i = 0; i < 10; i++) {
		mproc_apply(p, empty, NULL, 0, &res);
		mproc_results_free(res);
	}
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		int rc = mproc_apply(p, empty, NULL, 0, &res);
		if (rc < 0)
			die("apply", rc);
		mproc_results_free(res);
	}
	double dt = now() - t0;
	close2(p);
	printf("apply_rtt %.2f us\n", dt / (double)n * 1e6);
}

static void bench_open_close(size_t n, const char *name)
{
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		struct mproc_pool *p = open2();
		struct mproc_results *res;
		int rc = mproc_apply(p, empty, NULL, 0, &res);
		if (rc < 0)
			die("apply", rc);
		mproc_results_free(res);
		close2(p);
	}
	double dt = now() - t0;
	printf("%s %.3f ms\n", name, dt / (double)n * 1e3);
}

/* Two processes, two pipes, one byte each way: the physical floor of a
 * synchronous call into another process. */
static void bench_pipe_rtt(size_t n)
{
	int a[2], b[2];
	char c = 0;
	if (pipe(a) < 0 || pipe(b) < 0)
		die("pipe", -errno);
	pid_t pid = fork();
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		while (read(a[0], &c, 1) == 1)
			if (write(b[1], &c, 1) != 1)
				break;
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	for (int i = 0; i < 100; i++)
		if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
			die("pipe warmup", -errno);
	double t0 = now();
	for (size_t i = 0; i < n; i++)
		if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
			die("pipe rtt", -errno);
	double dt = now() - t0;
	close(a[1]);
	close(b[0]);
	waitpid(pid, NULL, 0);
	printf("pipe_rtt %.2f us\n", dt / (double)n * 1e6);
}

/*
 * The floor for imap: a minimal hand-written fork-and-pipe pool, as one
 * would write it without a library. Two workers, each with a task pipe and
 * a result pipe; a task and a result are one 8-byte integer, moved with one
 * read() and one write() each; the manager keeps up to FLOOR_DEPTH tasks in
 * flight per worker so that no worker waits for it. No serialization, no
 * ordering, no fault handling.
 *
 * With `batch`, workers and manager move as many tasks per syscall as the
 * pipe holds: not a pool anyone writes by hand, but the ceiling of the
 * transport itself (memcpy through the kernel), reported for scale.
 */
#define FLOOR_WORKERS 2
#define FLOOR_DEPTH 64

static void floor_worker(int tin, int rout, bool batch)
{
	int64_t buf[FLOOR_DEPTH];
	size_t want = batch ? sizeof buf : sizeof buf[0];
	for (;;) {
		ssize_t n = read(tin, buf, want);
		if (n <= 0)
			_exit(0);
		/* Writes are whole 8-byte multiples below PIPE_BUF: atomic. */
		if (write(rout, buf, (size_t)n) < 0)
			_exit(1);
	}
}

static void bench_floor(size_t n, bool batch, const char *name)
{
	int tin[FLOOR_WORKERS][2], rout[FLOOR_WORKERS][2];
	pid_t pid[FLOOR_WORKERS];
	for (int w = 0; w < FLOOR_WORKERS; w++) {
		if (pipe(tin[w]) < 0 || pipe(rout[w]) < 0)
			die("pipe", -errno);
		pid[w] = fork();
		if (pid[w] == 0) {
			for (int o = 0; o < w; o++) {
				close(tin[o][1]);
				close(rout[o][0]);
			}
			close(tin[w][1]);
			close(rout[w][0]);
			floor_worker(tin[w][0], rout[w][1], batch);
		}
		close(tin[w][0]);
		close(rout[w][1]);
	}
	double t0 = now();
	size_t sent = 0, done = 0, inflight[FLOOR_WORKERS] = {0};
	int64_t buf[FLOOR_DEPTH];
	while (done < n) {
		for (int w = 0; w < FLOOR_WORKERS; w++) {
			if (batch) {
				size_t k = 0;
				while (inflight[w] + k < FLOOR_DEPTH && sent + k < n) {
					buf[k] = (int64_t)(sent + k);
					k++;
				}
				if (k && write(tin[w][1], buf, k * sizeof buf[0]) < 0)
					die("floor write", -errno);
				sent += k;
				inflight[w] += k;
				continue;
			}
			while (inflight[w] < FLOOR_DEPTH && sent < n) {
				int64_t t = (int64_t)sent;
				if (write(tin[w][1], &t, sizeof t) != sizeof t)
					die("floor write", -errno);
				sent++;
				inflight[w]++;
			}
		}
		for (int w = 0; w < FLOOR_WORKERS; w++) {
			if (!inflight[w])
				continue;
			size_t want = batch ? sizeof buf : sizeof buf[0];
			ssize_t r = read(rout[w][0], buf, want);
			if (r <= 0)
				die("floor read", -errno);
			size_t k = (size_t)r / sizeof buf[0];
			inflight[w] -= k;
			done += k;
		}
	}
	double dt = now() - t0;
	for (int w = 0; w < FLOOR_WORKERS; w++) {
		close(tin[w][1]);
		close(rout[w][0]);
		waitpid(pid[w], NULL, 0);
	}
	printf("%s %.1f tasks/s\n", name, (double)n / dt);
}

/* The physical floor of replacing a worker: fork, the child exits, reap. */
static void bench_fork(size_t n)
{
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
	}
	printf("fork_wait %.1f us\n", (now() - t0) / (double)n * 1e6);
}

static volatile int *volatile nowhere;

static int segv(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	*nowhere = 1;
	return 0;
}

/* Death to replacement ready, as the pool measures it, over n crashes. */
static void bench_recovery(size_t n)
{
	struct mproc_pool *p = open2();
	struct mproc_input in;
	struct mproc_results *res;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	double t0 = now();
	int rc = mproc_map(p, segv, &in, 1, &res);
	double dt = now() - t0;
	if (rc != MPROC_ERAISED || mproc_results_failed(res) != n)
		die("recovery map", rc);
	mproc_results_free(res);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	close2(p);
	printf("recovery %.1f us\n", st.replace_mean * 1e6);
	printf("crash_task %.1f us\n", dt / (double)n * 1e6);
}

/* --only NAME,NAME...: just those measures (by their printed name). */
static const char *only;

static bool want(const char *name)
{
	if (!only)
		return true;
	size_t n = strlen(name);
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

int main(int argc, char *argv[], char *envp[])
{
	mproc_init(argc, argv, envp);
	bool quick = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--quick] [--only NAME,...]\n", argv[0]);
			return 2;
		}
	}
	size_t scale = quick ? 10 : 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (want("pipe_rtt"))
		bench_pipe_rtt(20000 / scale);
	if (want("floor_imap"))
		bench_floor(300000 / scale, false, "floor_imap");
	if (want("transport_ceiling"))
		bench_floor(1000000 / scale, true, "transport_ceiling");
	if (want("imap_c1"))
		bench_imap(300000 / scale, 1, "imap_c1");
	if (want("map_default"))
		bench_map(1000000 / scale);
	if (want("apply_rtt"))
		bench_apply(5000 / scale);
	if (want("open_apply_close"))
		bench_open_close(50 / scale, "open_apply_close");
	if (want("open_apply_close_forkserver")) {
		bench_start = MPROC_START_FORKSERVER;
		bench_open_close(50 / scale, "open_apply_close_forkserver");
		bench_start = MPROC_START_FORK;
	}
	if (want("fork_wait"))
		bench_fork(2000 / scale);
	if (want("recovery") || want("crash_task"))
		bench_recovery(500 / scale);
	/* The same imap with the fault machinery's timeout watch on. */
	if (want("imap_c1_timeout")) {
		bench_timeout = 10.0;
		bench_imap(300000 / scale, 1, "imap_c1_timeout");
		bench_timeout = 0;
	}
	return 0;
}
