/*
 * chunkq.c - the chunk ring and the requeue (chunkq.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "chunkq.h"
#include "wire.h"

int mproc__chunkq_push(struct mproc__chunkq *q, const struct mproc__chunk *c)
{
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 16;
		struct mproc__chunk *r = reallocarray(NULL, ncap, sizeof *r);
		if (!r)
			return -ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			r[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = r;
		q->cap = ncap;
		q->head = 0;
	}
	q->ring[(q->head + q->len) % q->cap] = *c;
	q->len++;
	return 0;
}

void mproc__chunkq_free(struct mproc__chunkq *q)
{
	free(q->ring);
	*q = (struct mproc__chunkq){0};
}

int mproc__requeue_add(struct mproc__requeue *rq, struct mproc__chunk *c,
                       uint8_t flags, uint64_t ref, const void *payload,
                       size_t len)
{
	size_t hdr = rq->frames.len;
	if (mproc__wire_begin(&rq->frames, &hdr) == 0 &&
	    mproc__buf_append(&rq->frames, payload, len) == 0) {
		c->frame_len = rq->frames.len - hdr;
		if (mproc__chunkq_push(&rq->q, c) == 0) {
			mproc__wire_end(&rq->frames, hdr, MPROC__F_TASK, flags,
			                c->count, c->id, ref);
			return 0;
		}
	}
	rq->frames.len = hdr; /* whatever part was appended goes */
	return -ENOMEM;
}

struct mproc__chunk mproc__requeue_pop(struct mproc__requeue *rq)
{
	struct mproc__chunk c = mproc__chunkq_pop(&rq->q);
	rq->off += c.frame_len;
	if (rq->q.len == 0)
		rq->frames.len = rq->off = 0;
	return c;
}

void mproc__requeue_free(struct mproc__requeue *rq)
{
	mproc__buf_free(&rq->frames);
	mproc__chunkq_free(&rq->q);
	rq->off = 0;
}
