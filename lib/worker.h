/*
 * worker.h - one worker as the engine sees it (worker.c): the process or
 * thread its backend started, the TASK frames written to it, the chunks it
 * holds, the RESULT frames read from it. Dispatch (dispatch.c) and the
 * fault handling (fault.c) keep their own parts of it in the sub-structs
 * named after them.
 */
#ifndef MPROC_WORKER_H
#define MPROC_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "buf.h"
#include "chunkq.h"

struct mproc__worker {
	struct mproc__proc proc;  /* identity and channel (its backend's) */
	struct mproc__buf out;    /* [acked | in flight, sent | unsent] frames */
	size_t out_acked, out_sent;
	size_t out_dead;          /* after out_acked: frames of tasks taken back
	                           * that still go out (the worker skips them) */
	uint64_t seq_next;        /* stream number of the next task sent */
	struct mproc__buf in;
	size_t in_off;            /* in: bytes parsed, dropped when room runs out */
	uint64_t partial_ns;      /* a frame not yet whole: 0 none; UINT64_MAX
	                           * bytes of it just came; else the coarse
	                           * clock since when none came */
	uint64_t cut_ns;          /* its channel ended while it lived: the
	                           * coarse clock since when (fault.c waits for
	                           * its end, without the pool's lock); else 0 */
	struct mproc__chunkq q;   /* chunks in flight, oldest first */
	size_t inflight_tasks;
	double ns_per_task;       /* running average reported by the worker */
	/* dispatch.c's */
	struct {
		bool retiring;        /* sent its last chunk (maxtasksperchild) */
		unsigned chunks_sent;
		bool suspect;         /* runs a suspect task: nothing else is sent */
		bool stuck;           /* its claim stood still: no new work */
		uint64_t claim_seen;  /* its claim word when last looked at */
		uint64_t claim_ns;    /* coarse clock since when it stands still */
	} d;
	/* fault.c's */
	struct {
		uint64_t seen_id;     /* running task the timeout watch last saw */
		uint64_t seen_ns;     /* coarse clock when it first saw it */
		uint64_t term_at;     /* when the pool sent SIGTERM (timeout), or 0 */
		uint64_t timeout_task; /* the task that ran past its timeout */
		uint64_t timeout_ns;  /* the timeout it ran past */
		bool killed;          /* SIGKILL sent after the grace period */
		bool slow_start;      /* killed for not starting, no initializer */
		bool proto_stall;     /* a frame cut short: killed for it */
		uint64_t death_ns;    /* last death seen, until the replacement is ready */
		uint64_t spawned_ns;  /* coarse clock at its start */
		uint64_t respawn_at;  /* empty slot: next start attempt (coarse clock) */
		uint64_t respawn_backoff;
		uint64_t started;     /* its last task started when work was taken back */
	} f;
};

/* A slot with no worker yet. */
void mproc__worker_init(struct mproc__worker *w, unsigned number);
/* Free its buffers (no worker in it any more). */
void mproc__worker_free(struct mproc__backend *be, struct mproc__worker *w);

static inline bool mproc__worker_alive(const struct mproc__worker *w)
{
	return w->proc.pid != 0;
}

/* A worker that can be given work: alive, its channel whole. */
static inline bool mproc__worker_usable(const struct mproc__worker *w)
{
	return w->proc.pid != 0 && !w->cut_ns;
}

/* Start a worker in the empty slot w; 0 or -errno. */
int mproc__worker_spawn(struct mproc__backend *be, struct mproc__worker *w);

/* Write what its channel takes of the frames not yet sent. */
void mproc__worker_flush(struct mproc__worker *w);

/* Read and store what w sent, up to max_reads reads (INT_MAX: to the end
 * of what is there). 0, or 1 at end of file, or MPROC_EPROTO or a negated
 * errno (the channel is unusable). The buffers its results name as their
 * own must lie in its region of be's arena. */
int mproc__worker_read(struct mproc__backend *be, struct mproc__worker *w,
                       int max_reads, size_t max_frame);

/*
 * Wait for a worker that is ending (signalled, or told to stop): *si says
 * how it ended. A worker that cannot be killed (a thread) is first read to
 * the end of its result pipe, with `mu` (held) let go while waiting: its
 * running task may call the pool.
 */
void mproc__worker_reap(struct mproc__backend *be, struct mproc__worker *w,
                        pthread_mutex_t *mu, size_t max_frame, siginfo_t *si);

/* Wait up to ms for a worker whose channel ended to end by itself: true
 * when it did (or cannot be told: then it is taken as ended). */
bool mproc__worker_ends(struct mproc__worker *w, int ms);

/* Ask it to end, or end it (SIGTERM, SIGKILL). */
void mproc__worker_signal(struct mproc__backend *be, struct mproc__worker *w,
                          int sig);

/* Close its task channel: an idle worker reads end of file and exits. */
void mproc__worker_hangup(struct mproc__worker *w);

/* Close its channel and free its backend state (it was reaped): the slot
 * is empty after. */
void mproc__worker_close(struct mproc__backend *be, struct mproc__worker *w);

/* Forget the frames and chunks it held (they were taken back). */
void mproc__worker_clear(struct mproc__worker *w);

/* Pop the chunks at the front of the ring that have every result. */
void mproc__worker_pop_done(struct mproc__worker *w);

/* How many tasks to keep queued on it: about 200 us of its work (8 before
 * it has reported any). Inline: dispatch asks for every worker it looks
 * at. */
static inline size_t mproc__worker_depth(const struct mproc__worker *w)
{
	if (w->ns_per_task <= 0)
		return 8;
	double d = 200000.0 / w->ns_per_task;
	return d < 2 ? 2 : d > 512 ? 512 : (size_t)d;
}

#endif
