/*
 * bench_mpi.c - mproc's pool over MPI ranks, on the work of bench_mpi.py
 * (mpi4py.futures): empty tasks and 10 us tasks, imap at chunksize 1 and
 * 64, and apply's round trip. bench/compare_mpi.sh runs both, and mproc's
 * local process pool, in alternation.
 *
 *   MPROC_BACKEND=mpi mpirun --oversubscribe -np 3 bench_mpi [--workers N]
 *   bench_mpi --workers N          (the local process pool)
 *
 * Prints one line per measure, "name value unit".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mproc.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int t_empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

/* Busy for 10 us, as bench_mpi.py's spin. */
static int t_spin10(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	double end = now() + 10e-6;
	while (now() < end)
		;
	return 0;
}

static int imap_rate(struct mproc_pool *p, mproc_task_fn fn, size_t n,
                     size_t chunk, double *rate)
{
	struct mproc_input in;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	struct mproc_iter *it;
	double t0 = now();
	int rc = mproc_imap(p, fn, &in, chunk, &it);
	if (rc < 0)
		return rc;
	const struct mproc_result *r;
	size_t got = 0;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1)
		got += r->status == MPROC_OK;
	mproc_iter_free(it);
	*rate = (double)n / (now() - t0);
	return rc < 0 ? rc : got == n ? 0 : -1;
}

int main(int argc, char *argv[], char *envp[])
{
	mproc_init(argc, argv, envp);
	unsigned workers = 2;
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--workers") == 0)
			workers = (unsigned)atoi(argv[i + 1]);
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = workers;
	struct mproc_pool *p;
	int rc = mproc_pool_open(&p, &o);
	if (rc < 0) {
		fprintf(stderr, "bench_mpi: %s\n", mproc_strerror(rc));
		return 1;
	}
	static const struct {
		const char *name;
		mproc_task_fn fn;
		size_t n, chunk;
	} runs[] = {
		{"empty_c1", t_empty, 20000, 1},
		{"empty_c64", t_empty, 200000, 64},
		{"spin10_c1", t_spin10, 20000, 1},
		{"spin10_c64", t_spin10, 100000, 64},
	};
	for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
		double rate;
		if ((rc = imap_rate(p, runs[i].fn, runs[i].n, runs[i].chunk,
		                    &rate)) < 0) {
			fprintf(stderr, "bench_mpi: %s: %s\n", runs[i].name,
			        mproc_strerror(rc));
			return 1;
		}
		printf("%s %.1f tasks/s\n", runs[i].name, rate);
		fflush(stdout);
	}
	/* apply's round trip, after a few to warm up */
	struct mproc_results *res;
	for (int i = 0; i < 20; i++) {
		mproc_apply(p, t_empty, NULL, 0, &res);
		mproc_results_free(res);
	}
	int n = 2000;
	double t0 = now();
	for (int i = 0; i < n; i++) {
		if ((rc = mproc_apply(p, t_empty, NULL, 0, &res)) < 0) {
			fprintf(stderr, "bench_mpi: apply: %s\n", mproc_strerror(rc));
			return 1;
		}
		mproc_results_free(res);
	}
	printf("apply_rtt %.2f us\n", (now() - t0) / n * 1e6);
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
	return 0;
}
