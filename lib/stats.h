/*
 * stats.h - the pool's counters (struct mproc_pool_stats) and its halting
 * rule (GNU parallel's --halt): every stored result is counted here, by
 * whoever stores it, and a failure may halt the pool.
 */
#ifndef MPROC_STATS_H
#define MPROC_STATS_H

#include <stdbool.h>

#include "mproc.h"

struct mproc__stats {
	struct mproc_pool_stats s;
	unsigned halt_failures;   /* from the options */
	double halt_fraction;
	unsigned halt_min_tasks;
	double replace_total;     /* seconds, for s.replace_mean */
	uint64_t replace_count;
};

void mproc__stats_init(struct mproc__stats *st,
                       const struct mproc_pool_opts *opts);

/* One result stored with this status; a failure may halt the pool. */
void mproc__stats_count(struct mproc__stats *st, enum mproc_status status);

/* n results stored OK. */
static inline void mproc__stats_ok(struct mproc__stats *st, uint64_t n)
{
	st->s.tasks_done += n;
	st->s.ok += n;
}

/* What happened to the pool's workers and tasks, for the counters. */
static inline void mproc__stats_started(struct mproc__stats *st, unsigned n)
{
	st->s.workers_started += n;
}

static inline void mproc__stats_ended(struct mproc__stats *st, bool retired)
{
	if (retired)
		st->s.workers_retired++;
	else
		st->s.workers_replaced++;
}

static inline void mproc__stats_retried(struct mproc__stats *st)
{
	st->s.retried++;
}

/* Halting: set by a failure count (mproc__stats_count), or by the pool
 * when no worker can start. */
static inline void mproc__stats_halt(struct mproc__stats *st)
{
	st->s.halted = true;
}

static inline bool mproc__stats_halted(const struct mproc__stats *st)
{
	return st->s.halted;
}

/* A replacement worker became ready `seconds` after its predecessor's
 * death was seen. */
void mproc__stats_replaced(struct mproc__stats *st, double seconds);

#endif
