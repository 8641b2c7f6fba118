/*
 * bench_overhead.c - where the time of the pool's own work goes, in two
 * modes.
 *
 * `bench_overhead TIMEOUT`: one imap of 50,000 empty tasks at chunksize 1,
 * with the given task_timeout (0: none). Run under callgrind to count the
 * manager's instructions, which do not depend on how busy the machine is:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/bench/bench_overhead 0
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/bench/bench_overhead 10
 *
 * `bench_overhead map`: one map of 1,000,000 empty tasks over a range, the
 * default chunksize, 2 workers; prints its wall time and the CPU time of
 * the manager (this process, getrusage) and of the workers (its children,
 * reaped by then), each per task. Run it a few times: the first map of a
 * fresh process pays for fresh memory. Under callgrind it gives the
 * instructions of the manager and of each worker for one map:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/bench/bench_overhead map
 *
 * valgrind follows the forked workers too; in imap mode the manager is the
 * process with by far the most instructions ("Collected").
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mproc.h>

static int empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User and system CPU seconds of this process or of its reaped children. */
static double cpu(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int map_mode(void)
{
	const size_t n = 1000000;
	struct mproc_pool_opts o = {.processes = 2};
	struct mproc_pool *p;
	struct mproc_input in;
	struct mproc_results *res;
	if (mproc_pool_open(&p, &o) < 0)
		return 1;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	double c0 = cpu(RUSAGE_SELF), w0 = cpu(RUSAGE_CHILDREN), t0 = now();
	int rc = mproc_map(p, empty, &in, 0, &res);
	double wall = now() - t0, manager = cpu(RUSAGE_SELF) - c0;
	bool ok = rc == 0 && mproc_results_count(res) == n;
	mproc_results_free(res);
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
	if (!ok)
		return 1;
	/* The workers' time is known once they are reaped: it includes their
	 * start and end, a small part of a million tasks. */
	double workers = cpu(RUSAGE_CHILDREN) - w0;
	printf("map of %zu: wall %.1f ns a task; CPU a task: manager %.1f ns, "
	       "workers %.1f ns\n",
	       n, wall / (double)n * 1e9, manager / (double)n * 1e9,
	       workers / (double)n * 1e9);
	return 0;
}

int main(int argc, char *argv[])
{
	if (argc > 1 && strcmp(argv[1], "map") == 0)
		return map_mode();
	double timeout = argc > 1 ? atof(argv[1]) : 0;
	struct mproc_pool_opts o = {.processes = 2, .task_timeout = timeout};
	struct mproc_pool *p;
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	if (mproc_pool_open(&p, &o) < 0)
		return 1;
	mproc_input_range(&in, 0, 50000, 1);
	if (mproc_imap(p, empty, &in, 1, &it) < 0)
		return 1;
	size_t n = 0;
	while (mproc_iter_next(it, -1, &r) == 1)
		n++;
	mproc_iter_free(it);
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
	printf("%zu tasks\n", n);
	return n == 50000 ? 0 : 1;
}
