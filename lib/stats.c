/*
 * stats.c - the pool's counters and its halting rule (stats.h).
 */
#include "stats.h"

void mproc__stats_init(struct mproc__stats *st,
                       const struct mproc_pool_opts *opts)
{
	*st = (struct mproc__stats){
		.halt_failures = opts->halt_failures,
		.halt_fraction = opts->halt_fraction,
		.halt_min_tasks = opts->halt_min_tasks ? opts->halt_min_tasks : 10,
	};
}

void mproc__stats_count(struct mproc__stats *st, enum mproc_status status)
{
	struct mproc_pool_stats *s = &st->s;
	s->tasks_done++;
	switch (status) {
	case MPROC_OK: s->ok++; break;
	case MPROC_RAISED: s->raised++; break;
	case MPROC_CRASHED: s->crashed++; break;
	case MPROC_TIMEOUT: s->timed_out++; break;
	case MPROC_MEMORY: s->memory++; break;
	case MPROC_CANCELLED: s->cancelled++; break;
	default: break;
	}
	if (s->halted || status == MPROC_OK || status == MPROC_CANCELLED)
		return;
	uint64_t failed = s->raised + s->crashed + s->timed_out + s->memory;
	uint64_t finished = s->tasks_done - s->cancelled;
	if ((st->halt_failures && failed >= st->halt_failures) ||
	    (st->halt_fraction > 0 && finished >= st->halt_min_tasks &&
	     (double)failed >= st->halt_fraction * (double)finished))
		s->halted = true;
}

void mproc__stats_replaced(struct mproc__stats *st, double seconds)
{
	struct mproc_pool_stats *s = &st->s;
	s->replace_last = seconds;
	if (seconds > s->replace_max)
		s->replace_max = seconds;
	st->replace_total += seconds;
	st->replace_count++;
	s->replace_mean = st->replace_total / (double)st->replace_count;
}
