/*
 * bench_sched.c - work conservation: does a task wait behind a busy or slow
 * worker while another worker is idle?
 *
 * Two scenarios, 4 workers each, the task sleeping (nanosleep) for its
 * argument in ms, so that the machine's CPU count does not matter:
 *
 *   mixed       400 tasks; task i sleeps 200 ms when i % 50 == 0 (8 slow
 *               tasks), 2 ms otherwise (392 quick ones).
 *   slow-first  one task of 1500 ms submitted first, then 40 of 10 ms.
 *
 * Each through two APIs, imap_unordered (chunksize 1) and apply_async (one
 * call per task, all submitted, then all fetched), on two backends,
 * processes and threads: 8 variants. Each variant opens a fresh pool, lets
 * it settle for 100 ms, and runs once, without warm-up tasks unless --warm
 * (a warm-up changes the pool's per-worker estimate of a task's time, and
 * with it how deep the dispatcher queues).
 *
 * Measures, all from t0, taken just before the first task is submitted:
 *
 *   makespan    when the last result arrived (s).
 *   last_quick  when the last quick task's result arrived (s): for
 *               imap_unordered when mproc_iter_next handed it out, for
 *               apply_async when its callback ran (the results are then
 *               fetched in submission order, which alone would report a
 *               quick task only after every slow one submitted before it).
 *   idle_wait   worker-seconds some worker was idle while a submitted task
 *               had not started: the integral over time of
 *               min(idle workers, waiting tasks), from the tasks' own start
 *               and end times (CLOCK_MONOTONIC, read in the worker). Zero
 *               for a work-conserving pool without dispatch latency; what
 *               is left then is the pool's per-task hand-over time.
 *   held        the longest a result waited between its task's end (in
 *               the worker) and its arrival (s): a finished result kept
 *               back, e.g. batched with the results of tasks run after it.
 *
 * and, for each scenario, the greedy schedule computed from the same task
 * list (list scheduling: each idle worker takes the next task in submission
 * order, no overhead): its makespan and its last quick task's completion.
 *
 * Prints one line per measure, "scenario/api/backend/measure value unit"
 * ("scenario/greedy/measure value unit" for the greedy schedule), like
 * bench_pool. bench/compare_sched.py runs this and bench/bench_sched.py
 * (Python's multiprocessing.Pool on the same work) and makes the table.
 *
 * Usage: bench_sched [--only NAME,...] [--warm N] [--trace FILE]
 *   --only  just the variants whose scenario, api and backend are named
 *           (a kind not named is not filtered: "--only slow-first,threads").
 *   --warm  run N tasks of 0 ms through imap on each fresh pool before t0:
 *           the pool's history, which sets its per-worker task-time
 *           estimate and so how deep it queues (default 0: none).
 *   --trace FILE  write every task's times to FILE as CSV: variant, index,
 *           ms, quick, worker (thread id), then submit, start, end and
 *           arrival in seconds from t0.
 * Exit status 0; 1 when a variant failed (the message on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "sched_common.h"

/* The scenarios, the greedy schedule, the task and the two runs are in
 * sched_common.c, shared with mproc-bench's sched workload. */
#define WORKERS SCHED_WORKERS

__attribute__((noreturn)) static void die(const char *variant,
                                          const char *what, int rc)
{
	fprintf(stderr, "bench_sched: %s: %s: %s\n", variant, what,
	        mproc_strerror(rc));
	exit(1);
}

/* ---- one variant ---------------------------------------------------------- */

/* One instant of a task's life: what it changes in the counts. */
struct ev {
	int64_t t;
	int dwait, drun;
};

static int cmp_ev(const void *a, const void *b)
{
	int64_t x = ((const struct ev *)a)->t, y = ((const struct ev *)b)->t;
	return (x > y) - (x < y);
}

/*
 * Worker-ns during which a worker was idle and a task waited: the
 * integral of min(WORKERS - running, waiting) over time, where a task
 * waits from its submission to its start and runs from start to end.
 * The counts change only at those instants, so the integral is a sweep
 * over them in time order (events at the same instant span no time, so
 * their order among themselves does not matter).
 */
static int64_t idle_wait_ns(const struct sched_rec *rec, size_t n)
{
	struct ev *e = calloc(3 * n, sizeof *e);
	if (!e)
		die("idle_wait", "calloc", -ENOMEM);
	for (size_t i = 0; i < n; i++) {
		int64_t start = rec[i].start < rec[i].submit ? rec[i].submit
		                                             : rec[i].start;
		e[3 * i] = (struct ev){rec[i].submit, +1, 0};
		e[3 * i + 1] = (struct ev){start, -1, +1};
		e[3 * i + 2] = (struct ev){rec[i].end, 0, -1};
	}
	qsort(e, 3 * n, sizeof *e, cmp_ev);
	int64_t total = 0;
	int waiting = 0, running = 0;
	for (size_t k = 0; k < 3 * n; k++) {
		if (k > 0) {
			int idle = WORKERS - running;
			int m = idle < waiting ? idle : waiting;
			if (m > 0)
				total += (int64_t)m * (e[k].t - e[k - 1].t);
		}
		waiting += e[k].dwait;
		running += e[k].drun;
	}
	free(e);
	return total;
}

/* --trace FILE: every task's times, a CSV line each. */
static FILE *trace;

/* --warm N: N tasks of 0 ms through imap before t0 (0: none). */
static size_t warm;

static void warm_up(const char *v, struct mproc_pool *p)
{
	int64_t *zero = calloc(warm, sizeof *zero);
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	if (!zero)
		die(v, "calloc", -ENOMEM);
	int rc = mproc_input_int64s(&in, zero, warm);
	if (rc < 0 || (rc = mproc_imap(p, sched_task_sleep, &in, 1, &it)) < 0)
		die(v, "warm-up imap", rc);
	while ((rc = mproc_iter_next(it, -1, &r)) == 1)
		;
	if (rc < 0)
		die(v, "warm-up iter_next", rc);
	mproc_iter_free(it);
	free(zero);
}

static void run_variant(const struct sched_scenario *s, const char *api,
                        enum mproc_backend backend, const char *bname)
{
	char v[96];
	snprintf(v, sizeof v, "%s/%s/%s", s->name, api, bname);
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = WORKERS;
	o.backend = backend;
	struct mproc_pool *p;
	int rc = mproc_pool_open(&p, &o);
	if (rc < 0)
		die(v, "pool_open", rc);
	struct sched_rec *rec = calloc(s->n, sizeof *rec);
	if (!rec)
		die(v, "calloc", -ENOMEM);
	struct timespec settle = {.tv_nsec = SCHED_SETTLE_NS};
	if (warm)
		warm_up(v, p);
	nanosleep(&settle, NULL);

	int64_t t0;
	const char *what;
	rc = strcmp(api, "imap_unordered") == 0
	             ? sched_run_imap_unordered(p, s, rec, &t0, &what)
	             : sched_run_apply_async(p, s, rec, &t0, &what);
	if (rc < 0)
		die(v, what, rc);
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);

	int64_t span = 0, quick = 0, held = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct sched_rec *r = &rec[i];
		if (!r->arrival)
			die(v, "a task without a result", MPROC_EPROTO);
		if (r->status != MPROC_OK || r->bad)
			die(v, "a task failed", MPROC_ERAISED);
		/* The backend asked for, not an older mproc's silent default. */
		if ((backend == MPROC_BACKEND_THREADS) != (r->pid == getpid()))
			die(v, "tasks ran in the wrong kind of worker", -ENOTSUP);
		if (r->arrival - t0 > span)
			span = r->arrival - t0;
		if (s->quick[i] && r->arrival - t0 > quick)
			quick = r->arrival - t0;
		if (r->arrival - r->end > held)
			held = r->arrival - r->end;
	}
	if (trace)
		for (size_t i = 0; i < s->n; i++) {
			const struct sched_rec *r = &rec[i];
			fprintf(trace,
			        "%s,%zu,%lld,%d,%lld,%.6f,%.6f,%.6f,%.6f\n", v, i,
			        (long long)s->ms[i], s->quick[i],
			        (long long)r->tid, (double)(r->submit - t0) / 1e9,
			        (double)(r->start - t0) / 1e9,
			        (double)(r->end - t0) / 1e9,
			        (double)(r->arrival - t0) / 1e9);
		}
	printf("%s/makespan %.6f s\n", v, (double)span / 1e9);
	printf("%s/last_quick %.6f s\n", v, (double)quick / 1e9);
	printf("%s/idle_wait %.6f s\n", v, (double)idle_wait_ns(rec, s->n) / 1e9);
	printf("%s/held %.6f s\n", v, (double)held / 1e9);
	free(rec);
}

/* --only NAME,NAME...: just the variants whose scenario, api or backend is
 * named. */
static const char *only;

static bool named(const char *name)
{
	size_t n = strlen(name);
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static bool want(const char *scenario, const char *api, const char *backend)
{
	if (!only)
		return true;
	bool any_s = named("mixed") || named("slow-first");
	bool any_a = named("imap_unordered") || named("apply_async");
	bool any_b = named("processes") || named("threads") ||
	             named("py-pool");
	return (!any_s || named(scenario)) && (!any_a || named(api)) &&
	       (!any_b || named(backend));
}

int main(int argc, char *argv[], char *envp[])
{
	mproc_init(argc, argv, envp);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
			if (!(trace = fopen(argv[++i], "w"))) {
				perror(argv[i]);
				return 1;
			}
			fputs("variant,index,ms,quick,worker,submit,start,end,"
			      "arrival\n", trace);
		} else if (strcmp(argv[i], "--warm") == 0 && i + 1 < argc) {
			warm = strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: %s [--only NAME,...] [--warm N] "
			        "[--trace FILE]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sched_scenario sc[2];
	int rc;
	if ((rc = sched_scenario_make(&sc[0], "mixed")) < 0 ||
	    (rc = sched_scenario_make(&sc[1], "slow-first")) < 0)
		die("scenarios", "calloc", rc);
	static const char *const apis[] = {"imap_unordered", "apply_async"};
	static const struct {
		enum mproc_backend b;
		const char *name;
	} backends[] = {{MPROC_BACKEND_PROCESSES, "processes"},
	                {MPROC_BACKEND_THREADS, "threads"}};
	for (size_t k = 0; k < 2; k++) {
		bool any = false;
		for (size_t a = 0; a < 2; a++)
			for (size_t b = 0; b < 2; b++)
				any |= want(sc[k].name, apis[a], backends[b].name);
		if (any) {
			double gs, gq;
			sched_greedy(&sc[k], WORKERS, &gs, &gq);
			printf("%s/greedy/makespan %.6f s\n", sc[k].name, gs);
			printf("%s/greedy/last_quick %.6f s\n", sc[k].name, gq);
		}
		for (size_t a = 0; a < 2; a++)
			for (size_t b = 0; b < 2; b++)
				if (want(sc[k].name, apis[a], backends[b].name))
					run_variant(&sc[k], apis[a], backends[b].b,
					            backends[b].name);
		sched_scenario_free(&sc[k]);
	}
	if (trace && fclose(trace) != 0) {
		perror("--trace");
		return 1;
	}
	return 0;
}
