/*
 * sched_common.h - the work-conservation scenarios that bench_sched and
 * mproc-bench's "sched" workload both run: the task lists, the greedy
 * schedule computed from them, the sleeping task, and one run of a
 * scenario through imap_unordered or apply_async on an mproc pool with
 * every task's times recorded.
 */
#ifndef MPROC_BENCH_SCHED_COMMON_H
#define MPROC_BENCH_SCHED_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mproc.h>

/* The pool size the scenarios are made for (Python's Pool(4)). */
#define SCHED_WORKERS 4
/* How long a fresh pool settles after pool_open, before t0. */
#define SCHED_SETTLE_NS 100000000L

/* CLOCK_MONOTONIC in ns. */
int64_t sched_mono_ns(void);

/*
 * A scenario: n tasks, submitted in index order, task i sleeping ms[i]
 * milliseconds; quick[i] marks the tasks whose lateness is measured.
 *
 *   mixed       400 tasks; task i sleeps 200 ms when i % 50 == 0 (8 slow
 *               tasks), 2 ms otherwise (392 quick ones).
 *   slow-first  one task of 1500 ms submitted first, then 40 of 10 ms.
 */
struct sched_scenario {
	const char *name;
	size_t n;
	int64_t *ms;
	bool *quick;
};

/* The scenario names sched_scenario_make() knows, NULL-terminated. */
extern const char *const sched_scenario_names[];

/* Fill *s for scenario `name`: 0, -EINVAL (unknown name) or -ENOMEM. */
int sched_scenario_make(struct sched_scenario *s, const char *name);
void sched_scenario_free(struct sched_scenario *s);

/*
 * List scheduling on `workers` workers with no overhead: the next task in
 * submission order goes to the worker that is free first (the
 * lowest-numbered on a tie). Its makespan and its last quick task's
 * completion, in seconds.
 */
void sched_greedy(const struct sched_scenario *s, unsigned workers,
                  double *makespan, double *last_quick);

/* The task: sleep for the argument, in ms (nanosleep); return (pid, tid,
 * start_ns, end_ns), the start and end read in the worker. */
int sched_task_sleep(const struct mproc_value *arg, struct mproc_writer *ret);

/* What the manager and the worker saw of one task. */
struct sched_rec {
	int64_t submit;  /* ns, when it was submitted */
	int64_t arrival; /* ns, when its result reached the caller; 0: not yet */
	int64_t pid, tid, start, end;
	int status;      /* enum mproc_status */
	int bad;         /* the result was not the tuple the task returns */
};

/*
 * Run scenario `s` once on `p`, every task recorded in rec[0..n-1]
 * (zeroed by the caller), t0 taken just before the first submission:
 *
 *   imap_unordered  chunksize 1; a task's arrival is when mproc_iter_next
 *                   handed its result out.
 *   apply_async     one call per task, all submitted, then all fetched in
 *                   submission order; a task's arrival is when its
 *                   callback ran.
 *
 * 0, or a negative code with *what naming the call that failed. A task
 * that failed is recorded (status, bad), not an error here. After an
 * error, tasks still running may write into rec until the pool is freed:
 * keep rec until then.
 */
int sched_run_imap_unordered(struct mproc_pool *p,
                             const struct sched_scenario *s,
                             struct sched_rec *rec, int64_t *t0,
                             const char **what);
int sched_run_apply_async(struct mproc_pool *p, const struct sched_scenario *s,
                          struct sched_rec *rec, int64_t *t0,
                          const char **what);

#endif
