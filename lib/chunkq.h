/*
 * chunkq.h - chunks in flight, and the two queues that hold them: a
 * worker's ring of chunks sent (oldest first), and the pool's requeue of
 * chunks taken back from dead workers, with their TASK frames, to run
 * again first. Both own their buffers and are used only through these
 * functions (chunkq.c; the ring's hot accessors are inline here).
 */
#ifndef MPROC_CHUNKQ_H
#define MPROC_CHUNKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct mproc__call;

/* Consecutive tasks of one call, sent to a worker as one TASK frame. */
struct mproc__chunk {
	struct mproc__call *call;
	size_t index;       /* input index of its first task */
	uint64_t id;        /* id of its first task */
	uint64_t seq;       /* its first task's place in its worker's stream */
	uint32_t count;     /* tasks in the chunk */
	uint32_t done;      /* results received */
	uint16_t attempts;  /* runs of its tasks so far, this one included */
	bool suspect;       /* one task that may have broken a worker */
	size_t frame_len;   /* bytes of its TASK frame */
};

/* A ring of chunks, oldest first. */
struct mproc__chunkq {
	struct mproc__chunk *ring;
	size_t head, len, cap;
};

/* Append c; 0 or -ENOMEM. */
int mproc__chunkq_push(struct mproc__chunkq *q, const struct mproc__chunk *c);
void mproc__chunkq_free(struct mproc__chunkq *q);

static inline size_t mproc__chunkq_len(const struct mproc__chunkq *q)
{
	return q->len;
}

/* The i-th chunk from the oldest (i < len). */
static inline struct mproc__chunk *mproc__chunkq_at(const struct mproc__chunkq *q,
                                                    size_t i)
{
	return &q->ring[(q->head + i) % q->cap];
}

static inline struct mproc__chunk *mproc__chunkq_back(const struct mproc__chunkq *q)
{
	return mproc__chunkq_at(q, q->len - 1);
}

/* Drop the oldest chunk, returning a copy of it. */
static inline struct mproc__chunk mproc__chunkq_pop(struct mproc__chunkq *q)
{
	struct mproc__chunk c = q->ring[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return c;
}

/* Keep the n oldest chunks, drop the rest. */
static inline void mproc__chunkq_truncate(struct mproc__chunkq *q, size_t n)
{
	if (n < q->len)
		q->len = n;
}

static inline void mproc__chunkq_clear(struct mproc__chunkq *q)
{
	q->head = q->len = 0;
}

/* The requeue: chunks and their TASK frames, in order. */
struct mproc__requeue {
	struct mproc__buf frames;
	size_t off;                /* bytes of frames already taken */
	struct mproc__chunkq q;
};

/*
 * Add chunk c (its frame_len is set here) with a TASK frame of these flags
 * and ref whose payload is payload[0..len). 0 or -ENOMEM (nothing added).
 */
int mproc__requeue_add(struct mproc__requeue *rq, struct mproc__chunk *c,
                       uint8_t flags, uint64_t ref, const void *payload,
                       size_t len);

static inline size_t mproc__requeue_len(const struct mproc__requeue *rq)
{
	return rq->q.len;
}

/* The oldest chunk, and its frame (frame_len bytes). */
static inline const struct mproc__chunk *
mproc__requeue_front(const struct mproc__requeue *rq, const char **frame)
{
	*frame = rq->frames.data + rq->off;
	return mproc__chunkq_at(&rq->q, 0);
}

/* Drop the oldest chunk (its frame was taken), returning a copy of it. */
struct mproc__chunk mproc__requeue_pop(struct mproc__requeue *rq);

void mproc__requeue_free(struct mproc__requeue *rq);

#endif
