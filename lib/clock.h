/*
 * clock.h - the two clocks of the library: CLOCK_MONOTONIC for deadlines
 * and intervals, and its coarse twin (a tick, no syscall) where being late
 * by a tick is fine (the timeout watch, respawn back-off).
 */
#ifndef MPROC_CLOCK_H
#define MPROC_CLOCK_H

#include <math.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t mproc__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mproc__coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The deadline `timeout` seconds from now; UINT64_MAX for a negative,
 * NaN or huge timeout (wait forever). */
static inline uint64_t mproc__deadline(double timeout)
{
	if (timeout < 0 || isnan(timeout) || timeout > 1e9)
		return UINT64_MAX;
	return mproc__now_ns() + (uint64_t)(timeout * 1e9);
}

/* A deadline as the timespec ppoll() wants: what is left of it. */
static inline struct timespec mproc__ts_left(uint64_t deadline, uint64_t now)
{
	uint64_t left = deadline > now ? deadline - now : 0;
	return (struct timespec){.tv_sec = (time_t)(left / 1000000000u),
	                         .tv_nsec = (long)(left % 1000000000u)};
}

#endif
