/*
 * job_journal.c - a job's hooks into the pool's journal (journal.c,
 * docs/batch.md): the call's part opened at its first pull, each pulled
 * item checked against what the journal holds (its input hash kept until
 * its result is stored), and each final result put. mproc__job_skip
 * (job.c), which pulls, restores the results the journal has.
 *
 * Nothing here runs for a pool without a journal: the callers test
 * job->jwant or job->jc first.
 */
#include <errno.h>
#include <stdlib.h>

#include "job_impl.h"
#include "journal.h"
#include "oob.h"
#include "wire.h"

/* A final result into the journal: with its buffers' bytes, which outlive
 * this run, not where they are now. */
void mproc__job_jnl_put(struct mproc__job *job, size_t index,
                        enum mproc_status status, unsigned attempts,
                        const void *payload, size_t len)
{
	uint64_t h = job->ihash[index & job->jmask];
	if (!len || !mproc__oob_has_trailer(payload, len)) {
		mproc__jcall_put(job->jc, index, h, status, attempts, payload, len);
		return;
	}
	struct mproc__buf flat = {0};
	if (mproc__oob_flatten(job->oob, payload, len, &flat) == 0)
		mproc__jcall_put(job->jc, index, h, status, attempts, flat.data,
		                 flat.len);
	mproc__buf_free(&flat);
}

/* The input hash the journal keeps: a trailer's offsets change from run
 * to run, its buffers' bytes do not. */
uint64_t mproc__job_input_hash(const struct mproc__job *job, const char *body,
                               size_t len)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	if (!mproc__oob_has_trailer(body, len) ||
	    mproc__oob_split(body, len, &plen, &d, &n) < 0)
		return mproc__journal_hash(body, len);
	uint64_t h = mproc__journal_hash(body, plen);
	struct mproc_buffer *b = calloc(n, sizeof *b);
	if (b && mproc__oob_buffers(job->oob, body, len, plen, d, n, b) == 0)
		for (uint32_t i = 0; i < n; i++)
			h = (h ^ mproc__journal_hash(b[i].data, b[i].len)) *
			    UINT64_C(0x100000001b3);
	free(b);
	return h;
}

/* The call's part of the journal, at its first pull, when its length and
 * options are final; an error ends the input (the call answers it). */
void mproc__job_jnl_begin(struct mproc__job *job)
{
	if (job->jtried)
		return;
	job->jtried = true;
	size_t len = job->in.has_len ? job->in.len : SIZE_MAX;
	size_t cap = job->kind == MPROC__JOB_ALL ? (len ? len : 1) : job->nslots;
	int rc = mproc__jcall_open(job->env->jnl, (const void *)(uintptr_t)job->fn,
	                           job->flags & MPROC__TF_STAR, len, &job->jc);
	if (rc == 0 && !(job->ihash = malloc(cap * sizeof *job->ihash)))
		rc = -ENOMEM;
	if (rc < 0) {
		mproc__jcall_free(job->jc);
		job->jc = NULL;
		mproc__job_stop_input(job, rc);
		return;
	}
	job->jmask = job->kind == MPROC__JOB_ALL ? SIZE_MAX : job->nslots - 1;
}

/*
 * The record just pulled at out[rec..] is item `pulled`: 0 when it must
 * run (its hash kept for its result), else it goes back to `ahead` for
 * mproc__job_skip (it has a result, or a result of another input: the
 * skip ends the call with MPROC_EJOURNAL_MISMATCH).
 */
int mproc__job_jnl_check(struct mproc__job *job, struct mproc__buf *out,
                         size_t rec)
{
	size_t len;
	const char *body = mproc__task_rec_body(out->data + rec, &len);
	uint64_t h = mproc__job_input_hash(job, body, len);
	int d = mproc__jcall_done(job->jc, job->pulled, h);
	if (d == 0) {
		job->ihash[job->pulled & job->jmask] = h;
		return 0;
	}
	job->ahead.len = 0;
	if (mproc__buf_append(&job->ahead, out->data + rec, out->len - rec) < 0) {
		mproc__job_stop_input(job, -ENOMEM);
		out->len = rec;
		return -ENOMEM;
	}
	job->have_ahead = true;
	out->len = rec;
	return 1;
}
