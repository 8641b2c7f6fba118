/*
 * stats.h - the pool's counters (struct mproc_pool_stats) and its halting
 * rule (GNU parallel's --halt): every stored result is counted here, by
 * whoever stores it, and a failure may halt the pool.
 */
#ifndef MPROC_STATS_H
#define MPROC_STATS_H

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

/* A replacement worker became ready `seconds` after its predecessor's
 * death was seen. */
void mproc__stats_replaced(struct mproc__stats *st, double seconds);

#endif
