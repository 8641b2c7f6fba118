/*
 * bench_journal.c - what the journal (pool option `journal`) costs per
 * result: the same map or imap over a pool without a journal and over a
 * pool with a fresh one, in alternating rounds so that both meet the same
 * machine state; each round's ratio (journal / none) and extra time per
 * result, then their median, min and max.
 *
 *   build/bench/bench_journal [TASKS] [ROUNDS] [CHUNKSIZE] [WORKERS]
 *
 * Defaults: 100,000 tasks a round (20,000 for the 10 us tasks), 7 rounds,
 * chunksize 64, 2 workers. The journal goes to $TMPDIR (or /tmp) and is
 * removed after each round. Times include the call's last commit (made
 * before the call returns), not opening or closing the pool.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int t_empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	(void)mproc_value_int(arg, &x);
	return mproc_write_int(ret, x);
}

/* 10 microseconds of work (a spin: sleeping is not that precise). */
static int t_10us(const struct mproc_value *arg, struct mproc_writer *ret)
{
	double end = now() + 10e-6;
	while (now() < end)
		;
	return t_empty(arg, ret);
}

/* Seconds of one call of n tasks, or a negative value on an error. */
static double run(const char *journal, bool imap, mproc_task_fn fn, size_t n,
                  size_t chunksize, unsigned workers)
{
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = workers;
	o.journal = journal;
	struct mproc_pool *p;
	if (mproc_pool_open(&p, &o) < 0)
		return -1;
	struct mproc_input in;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	double t0 = now(), t = -1;
	if (imap) {
		struct mproc_iter *it;
		const struct mproc_result *r;
		size_t got = 0;
		int rc = mproc_imap(p, fn, &in, chunksize, &it);
		if (rc == 0)
			while ((rc = mproc_iter_next(it, -1, &r)) == 1)
				got++;
		if (rc == 0 && got == n)
			t = now() - t0;
		else
			fprintf(stderr, "bench_journal: imap: %s after %zu of %zu\n",
			        mproc_strerror(rc), got, n);
		mproc_iter_free(it);
	} else {
		struct mproc_results *r;
		if (mproc_map(p, fn, &in, chunksize, &r) == 0 &&
		    mproc_results_count(r) == n)
			t = now() - t0;
		mproc_results_free(r);
	}
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
	return t;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void summary(const char *what, double *v, int n, const char *unit)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("  %-26s median %8.3f%s  min %8.3f%s  max %8.3f%s\n", what,
	       v[n / 2], unit, v[0], unit, v[n - 1], unit);
}

int main(int argc, char **argv)
{
	size_t tasks = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	int rounds = argc > 2 ? atoi(argv[2]) : 7;
	size_t chunksize = argc > 3 ? strtoul(argv[3], NULL, 10) : 64;
	unsigned workers = argc > 4 ? (unsigned)atoi(argv[4]) : 2;
	if (!tasks || rounds < 1 || rounds > 1000 || !chunksize || !workers) {
		fprintf(stderr, "usage: bench_journal [TASKS] [ROUNDS] [CHUNKSIZE] [WORKERS]\n");
		return 2;
	}
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char path[4096];
	snprintf(path, sizeof path, "%s/bench_journal.%d.db", dir, (int)getpid());
	char wal[4200];
	snprintf(wal, sizeof wal, "%s-wal", path);
	static const struct {
		const char *name;
		bool imap;
		mproc_task_fn fn;
		size_t div;
	} cases[] = {
		{"map, empty tasks", false, t_empty, 1},
		{"imap, empty tasks", true, t_empty, 1},
		{"map, 10 us tasks", false, t_10us, 5},
		{"imap, 10 us tasks", true, t_10us, 5},
	};
	printf("bench_journal: %d rounds, chunksize %zu, %u workers\n", rounds,
	       chunksize, workers);
	double *ratio = calloc((size_t)rounds, sizeof *ratio);
	double *extra = calloc((size_t)rounds, sizeof *extra);
	double *base = calloc((size_t)rounds, sizeof *base);
	if (!ratio || !extra || !base)
		return 1;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = tasks / cases[c].div;
		for (int i = 0; i < rounds; i++) {
			double tn = 0, tj = 0;
			/* Alternate which goes first. */
			for (int k = 0; k < 2; k++) {
				bool with = (k == 0) == (i % 2 == 1);
				unlink(path);
				unlink(wal);
				double t = run(with ? path : NULL, cases[c].imap,
				               cases[c].fn, n, chunksize, workers);
				if (t < 0) {
					fprintf(stderr, "bench_journal: a run failed\n");
					return 1;
				}
				*(with ? &tj : &tn) = t;
			}
			ratio[i] = tj / tn;
			extra[i] = (tj - tn) / (double)n * 1e6;
			base[i] = tn / (double)n * 1e6;
		}
		printf("%s, %zu tasks a round:\n", cases[c].name, n);
		summary("no journal, per result", base, rounds, " us");
		summary("journal / none", ratio, rounds, "x ");
		summary("journal's extra per result", extra, rounds, " us");
	}
	unlink(path);
	unlink(wal);
	free(ratio);
	free(extra);
	free(base);
	return 0;
}
