/*
 * job_args.c - a job's arguments' out-of-band buffers (oob.h): each pulled
 * item whose record has a trailer keeps its descriptors here, in pull
 * order, until its task is final (a result stored, cancelled, or restored
 * from the journal), and then lets go of their blocks.
 *
 * Invariant: every entry before abuf_head is released; arg_tasks counts
 * the entries that still hold their descriptors (n != 0) and arg_bytes
 * their blocks' bytes, which mproc__job_room holds to the pool's budget of
 * arguments in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "job_impl.h"
#include "oob.h"
#include "wire.h"

static void job_args_release(struct mproc__job *job,
                             struct mproc__job_argbufs *a)
{
	if (a->n)
		mproc__oob_release(job->oob, a->d, a->n);
	job->arg_tasks -= a->n != 0;
	job->arg_bytes -= a->bytes;
	a->bytes = 0;
	free(a->d);
	a->d = NULL;
	a->n = 0;
}

/* Item `index`'s record out[rec..] has a trailer: keep its descriptors
 * until its task is final. */
int mproc__job_args_keep(struct mproc__job *job, size_t index,
                         const struct mproc__buf *out, size_t rec)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	const char *body = out->data + rec + MPROC__TASK_REC;
	if (mproc__oob_split(body, out->len - rec - MPROC__TASK_REC, &plen, &d,
	                     &n) < 0 || !n)
		return 0;
	if (job->abuf_head && job->abuf_head == job->nabuf)
		job->abuf_head = job->nabuf = 0;
	if (job->nabuf == job->abuf_cap) {
		if (job->abuf_head > job->nabuf / 2) {
			/* Most at the front are released: move the rest. */
			memmove(job->abuf, job->abuf + job->abuf_head,
			        (job->nabuf - job->abuf_head) * sizeof *job->abuf);
			job->nabuf -= job->abuf_head;
			job->abuf_head = 0;
		} else {
			size_t cap = job->abuf_cap ? 2 * job->abuf_cap : 16;
			struct mproc__job_argbufs *a =
			        reallocarray(job->abuf, cap, sizeof *a);
			if (!a)
				return -ENOMEM;
			job->abuf = a;
			job->abuf_cap = cap;
		}
	}
	struct mproc__oobdesc *copy = malloc((size_t)n * sizeof *copy);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, d, (size_t)n * sizeof *copy);
	/* What the pool holds: blocks, not bytes lent by the caller (threads)
	 * nor bytes inside the record. */
	size_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		if (copy[i].tag)
			bytes += (size_t)copy[i].len;
	job->abuf[job->nabuf++] =
	        (struct mproc__job_argbufs){index, bytes, n, copy};
	job->arg_bytes += bytes;
	job->arg_tasks++;
	return 0;
}

/* Tasks index .. index+count-1 are final: their arguments' blocks go. */
void mproc__job_args_done(struct mproc__job *job, size_t index, size_t count)
{
	size_t lo = job->abuf_head, hi = job->nabuf;
	while (lo < hi) { /* the first entry >= index */
		size_t mid = lo + (hi - lo) / 2;
		if (job->abuf[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < job->nabuf && job->abuf[i].index < index + count;
	     i++)
		job_args_release(job, &job->abuf[i]);
	while (job->abuf_head < job->nabuf && !job->abuf[job->abuf_head].n)
		job->abuf_head++;
}

void mproc__job_args_free(struct mproc__job *job)
{
	for (size_t i = job->abuf_head; i < job->nabuf; i++)
		job_args_release(job, &job->abuf[i]);
	free(job->abuf);
}
