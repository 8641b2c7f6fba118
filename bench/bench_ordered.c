/*
 * bench_ordered.c - what ordered delivery costs: imap against
 * imap_unordered on the same pool, chunksize 1, empty tasks, in
 * alternating rounds so that both meet the same machine state; the ratio
 * of each round, then the median, min and max of the ratios and of each
 * side's time per task.
 *
 *   build/bench/bench_ordered [processes|threads] [TASKS] [ROUNDS] [WORKERS]
 *
 * Defaults: processes, 200,000 tasks a round, 15 rounds, 2 workers.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mproc.h"

static int t_empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_none(ret);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Microseconds per task of one imap (or imap_unordered) of n tasks, or a
 * negative value on an error. */
static double run(struct mproc_pool *p, size_t n, bool ordered)
{
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	double t0 = now();
	if (mproc_imap_opts(p, t_empty, &in, 1, ordered, NULL, &it) < 0)
		return -1;
	size_t got = 0;
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1)
		got++;
	mproc_iter_free(it);
	if (rc < 0 || got != n)
		return -1;
	return (now() - t0) / (double)n * 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void summary(const char *name, double *v, int n, const char *unit)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("%-28s median %.3f%s (min %.3f, max %.3f)\n", name, v[n / 2],
	       unit, v[0], v[n - 1]);
}

int main(int argc, char *argv[])
{
	mproc_init(argc, argv, NULL);
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	bool threads = argc > 1 && strcmp(argv[1], "threads") == 0;
	if (argc > 1 && !threads && strcmp(argv[1], "processes") != 0) {
		fprintf(stderr, "usage: %s [processes|threads] [TASKS] [ROUNDS] "
		                "[WORKERS]\n", argv[0]);
		return 2;
	}
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
	int rounds = argc > 3 ? atoi(argv[3]) : 15;
	o.processes = argc > 4 ? (unsigned)atoi(argv[4]) : 2;
	if (!n || rounds < 1 || rounds > 1000 || !o.processes) {
		fprintf(stderr, "%s: bad TASKS, ROUNDS or WORKERS\n", argv[0]);
		return 2;
	}
	o.backend = threads ? MPROC_BACKEND_THREADS : MPROC_BACKEND_PROCESSES;
	struct mproc_pool *p;
	if (mproc_pool_open(&p, &o) < 0) {
		fprintf(stderr, "%s: cannot open the pool\n", argv[0]);
		return 1;
	}
	/* Warm: the first iterators of a pool pay for fresh memory. */
	run(p, n / 10 + 1, true);
	run(p, n / 10 + 1, false);
	double *ord = calloc((size_t)rounds, sizeof *ord);
	double *unord = calloc((size_t)rounds, sizeof *unord);
	double *ratio = calloc((size_t)rounds, sizeof *ratio);
	int rc = 0;
	printf("%s, %u workers, %zu empty tasks a round, chunksize 1\n",
	       threads ? "threads" : "processes", o.processes, n);
	for (int i = 0; i < rounds && ord && unord && ratio; i++) {
		ord[i] = run(p, n, true);
		unord[i] = run(p, n, false);
		if (ord[i] < 0 || unord[i] < 0) {
			fprintf(stderr, "%s: an imap failed\n", argv[0]);
			rc = 1;
			break;
		}
		ratio[i] = ord[i] / unord[i];
		printf("round %2d: imap %.3f us, imap_unordered %.3f us, "
		       "ratio %.2f\n", i, ord[i], unord[i], ratio[i]);
		if (i == rounds - 1) {
			summary("imap (us/task)", ord, rounds, "");
			summary("imap_unordered (us/task)", unord, rounds, "");
			summary("imap / imap_unordered", ratio, rounds, "x");
		}
	}
	free(ord);
	free(unord);
	free(ratio);
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
	return rc;
}
