/*
 * job_store.c - taking a job's results back: each frame of results is
 * stored as it comes (mproc__job_store_run). ALL jobs (map, apply) decode
 * each result on arrival into a table made once at the input's length, a
 * word per result (result.c); iterator jobs put it in the slot of their
 * ring (job_ring.c hands it out). Tiny results (None, a bool, a small int)
 * take a shared node in both: no copy, no decoding. A journal and a
 * progress callback are reached only behind job->hooks.
 *
 * Invariant: every index below `pulled` gets exactly one stored result
 * (completed counts them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "job_impl.h"
#include "clock.h"
#include "journal.h"
#include "oob.h"
#include "pickle.h"
#include "wire.h"

/* The progress callback, every progress_every ns at most, and once more
 * at the end (`final`). */
void mproc__job_progress(struct mproc__job *job, bool final)
{
	uint64_t now = mproc__coarse_ns();
	if (!final && now < job->progress_next)
		return;
	if (job->progress_final)
		return;
	job->progress_final = final;
	job->progress_next = now + job->progress_every;
	double elapsed = (double)(now - job->progress_start) / 1e9;
	struct mproc_progress p = {
		.done = job->completed,
		.failed = job->nfailed,
		.restored = job->restored,
		.total = job->in.has_len ? job->in.len : SIZE_MAX,
		.elapsed = elapsed,
		.eta = -1,
		.final = final,
	};
	size_t ran = p.done - p.restored;
	if (ran && elapsed > 0) {
		p.rate = (double)ran / elapsed;
		if (p.total != SIZE_MAX)
			p.eta = (double)(p.total - p.done) / p.rate;
	}
	if (final)
		p.eta = 0;
	job->progress(job->progress_cookie, &p);
}

static void job_count(struct mproc__job *job, enum mproc_status status)
{
	if (job->env)
		mproc__stats_count(job->env->stats, status);
}

/* map/apply: decode each result as it arrives, while the workers go on. */
static int job_store_all(struct mproc__job *job, size_t index,
                         enum mproc_status status, unsigned attempts,
                         const void *payload, size_t len)
{
	uintptr_t *slot = &job->table[index];
	job->completed++;
	if (job->unread) {
		/* Nobody will read it: skip decoding. */
		*slot = mproc__table_unread();
		if (len && mproc__oob_has_trailer(payload, len))
			mproc__oob_discard(job->oob, payload, len);
		return 0;
	}
	struct mproc_result r;
	int rc = 0;
	const struct mproc_value *tiny =
	        status == MPROC_OK ? mproc__decode_tiny(payload, len) : NULL;
	if (tiny) {
		r = (struct mproc_result){.index = index, .status = MPROC_OK,
		                          .attempts = attempts, .value = tiny};
	} else {
		const char *kept = len ? mproc__rstore_keep(&job->rs, payload, len)
		                       : NULL;
		bool oob = len && mproc__oob_has_trailer(payload, len);
		if (oob && kept &&
		    mproc__rstore_hold(&job->rs, (char *)kept, len) < 0)
			kept = NULL; /* its blocks went back: not decoded */
		else if (oob && !kept)
			mproc__oob_discard(job->oob, payload, len);
		if (len && !kept) {
			r = (struct mproc_result){.index = index,
			                          .status = MPROC_RAISED,
			                          .attempts = attempts,
			                          .error = &mproc__err_nomem_keep};
			rc = -ENOMEM;
		} else {
			rc = mproc__rstore_result(&job->rs,
			                          job->env ? &job->env->dec : NULL,
			                          status, attempts, index, kept,
			                          len, &r);
			if (rc < 0) {
				r.status = MPROC_RAISED;
				r.value = NULL;
				r.error = &mproc__err_nomem_decode;
			}
		}
	}
	if (r.status != MPROC_OK)
		job->failed++;
	mproc__table_set(&job->rs, slot, &r, &job->failed);
	return rc;
}

/* Inlined in its callers: mproc__job_store is on the hot path of every
 * result that is not a map's tiny first-attempt value, and a call more
 * there cost 39 instructions a result (callgrind, bench_overhead 0). */
__attribute__((always_inline)) static inline int
job_store(struct mproc__job *job, size_t index, enum mproc_status status,
          unsigned attempts, const void *payload, size_t len)
{
	struct mproc__job_slot *s;
	int rc = 0;
	if (job->kind == MPROC__JOB_ALL)
		return job_store_all(job, index, status, attempts, payload, len);
	if (job->kind == MPROC__JOB_ORDERED) {
		s = &job->slots[index & (job->nslots - 1)];
	} else {
		s = &job->slots[(job->uhead + job->ucount) & (job->nslots - 1)];
		job->ucount++;
	}
	/* The commonest results need neither a copy nor, later, a decoder. */
	s->tiny = status == MPROC_OK ? mproc__decode_tiny(payload, len) : NULL;
	mproc__job_slot_release(job, s);
	s->data.len = 0;
	if (!s->tiny) {
		if (!s->data.cap && job->nspare)
			s->data = job->spare[--job->nspare];
		rc = mproc__buf_append(&s->data, payload, len);
	}
	if (rc < 0) {
		/* Out of memory for this result: it still ends, as an error. */
		if (len && mproc__oob_has_trailer(payload, len))
			mproc__oob_discard(job->oob, payload, len);
		s->data.len = 0;
		status = MPROC_RAISED;
	}
	s->bytes = s->data.len;
	if (s->data.len && mproc__oob_has_trailer(s->data.data, s->data.len)) {
		s->bytes += mproc__oob_hold_body(job->oob, s->data.data, len);
		s->held = true;
	}
	s->index = index;
	s->status = status;
	s->attempts = attempts;
	s->ready = true;
	job->held += s->bytes;
	job->completed++;
	return rc;
}

int mproc__job_store(struct mproc__job *job, size_t index,
                     enum mproc_status status, unsigned attempts,
                     const void *payload, size_t len)
{
	job_count(job, status);
	int rc;
	if (!job->hooks) {
		rc = job_store(job, index, status, attempts, payload, len);
	} else {
		/* A cancelled task is not final: it runs again on resume. */
		if (job->jc && status != MPROC_CANCELLED)
			mproc__job_jnl_put(job, index, status, attempts, payload,
			                   len);
		job->nfailed += status != MPROC_OK;
		rc = job_store(job, index, status, attempts, payload, len);
		if (job->progress)
			mproc__job_progress(job, false);
	}
	/* Its argument's buffers go (a result that echoes them holds its
	 * own reference). */
	if (job->nabuf > job->abuf_head)
		mproc__job_args_done(job, index, 1);
	return rc;
}

/* A result the journal had, for mproc__job_skip: counted as restored,
 * not in the pool's statistics, not journaled again. */
void mproc__job_restore(struct mproc__job *job, size_t index,
                        enum mproc_status status, unsigned attempts,
                        const void *payload, size_t len)
{
	job->restored++;
	job->nfailed += status != MPROC_OK;
	job_store(job, index, status, attempts, payload, len);
}

/* n results stored OK in the table. */
static void job_count_ok(struct mproc__job *job, size_t n)
{
	if (job->env)
		mproc__stats_ok(job->env->stats, n);
	job->completed += n;
}

/*
 * A map's results that are just None, a bool or a small int (the
 * commonest) go straight into the table in one tight loop; any other takes
 * the general path, in order.
 */
int mproc__job_store_run(struct mproc__job *job, size_t index,
                         unsigned attempts, const char *p, const char *end,
                         uint32_t count, size_t *stored)
{
	/* A first attempt's tiny results are their value's address in the
	 * table; a retry's take a record (job_store_all). */
	bool fast = job->kind == MPROC__JOB_ALL && attempts == 1 && !job->unread;
	uintptr_t *table = job->table;
	/*
	 * A map's results are mostly the same few bytes (None, say): the last
	 * tiny record (header and pickle, 12 or 13 bytes) and its node are
	 * kept, and a record equal to it is stored with two compares.
	 */
	uint64_t last_hdr = 0, last_body = 0;
	size_t last_len = 0;
	const struct mproc_value *last_v = NULL;
	size_t ok = 0;
	uint32_t k = 0;
	int rc = 0;
	if (job->hooks && job->jc)
		fast = false; /* each result goes through mproc__job_store */
	while (k < count) {
		if (last_v) {
			uint64_t mask = (UINT64_C(1) << (8 * (last_len - 8))) - 1;
			size_t i = index + k, stop = index + count;
			while (i < stop && (size_t)(end - p) >= 16) {
				uint64_t hdr, body;
				memcpy(&hdr, p, 8);
				memcpy(&body, p + 8, 8);
				if (hdr != last_hdr || ((body ^ last_body) & mask))
					break;
				table[i] = mproc__table_value(last_v);
				p += last_len;
				i++;
			}
			ok += i - (index + k);
			k = (uint32_t)(i - index);
			if (k == count)
				break;
		}
		struct mproc__rec r = mproc__result_rec_read(p, end);
		uint32_t status;
		if (!r.body || ((status = mproc__result_rec_status(p)) != MPROC_OK &&
		                status != MPROC_RAISED)) {
			rc = MPROC_EPROTO;
			break;
		}
		const struct mproc_value *v = NULL;
		if (fast && status == MPROC_OK)
			v = mproc__decode_tiny(r.body, r.len);
		else if (job->jc && job->unread && job->kind != MPROC__JOB_ALL)
			mproc__job_jnl_put(job, index + k, status, attempts,
			                   r.body, r.len);
		if (v) {
			/* Kept as the record to match: 12 or 13 bytes. */
			last_len = MPROC__RESULT_REC + r.len;
			memcpy(&last_hdr, p, 8);
			last_body = 0;
			memcpy(&last_body, r.body, r.len);
			last_v = v;
			table[index + k] = mproc__table_value(v);
			ok++;
		} else {
			if (ok) {
				/* Counted before anything else, in arrival order. */
				job_count_ok(job, ok);
				ok = 0;
			}
			if (job->unread && job->kind != MPROC__JOB_ALL) {
				job->completed++;
				job_count(job, status);
				if (r.len && mproc__oob_has_trailer(r.body, r.len))
					mproc__oob_discard(job->oob, r.body, r.len);
			} else {
				mproc__job_store(job, index + k, status, attempts,
				                 r.body, r.len);
			}
		}
		p = r.body + r.len;
		k++;
	}
	if (ok)
		job_count_ok(job, ok);
	*stored = k;
	if (job->nabuf > job->abuf_head)
		mproc__job_args_done(job, index, k);
	if (job->hooks && job->progress)
		mproc__job_progress(job, false);
	return rc;
}

void mproc__job_cancel(struct mproc__job *job, size_t index, size_t count)
{
	for (size_t i = 0; i < count; i++)
		mproc__job_store(job, index + i, MPROC_CANCELLED, 0, NULL, 0);
}

void mproc__job_set_unread(struct mproc__job *job)
{
	job->unread = true;
}

bool mproc__job_settled(const struct mproc__job *job)
{
	return job->input_done && job->completed >= job->pulled;
}

int mproc__job_finish(struct mproc__job *job)
{
	if (job->jc) {
		/* Durable before the call returns. */
		int jrc = mproc__journal_commit(mproc__jcall_journal(job->jc));
		if (jrc == 0)
			jrc = mproc__jcall_error(job->jc);
		if (!job->input_err && jrc < 0)
			job->input_err = jrc;
	}
	if (job->progress)
		mproc__job_progress(job, true);
	if (job->kind != MPROC__JOB_ALL || job->unread)
		return job->input_err;
	/* Every result was decoded as it arrived: only the totals are left. */
	job->results.count = job->pulled;
	job->results.slots = job->table;
	job->results.failed = job->failed;
	if (job->input_err)
		return job->input_err;
	return job->failed ? MPROC_ERAISED : 0;
}

struct mproc_results *mproc__job_results(struct mproc__job *job)
{
	return &job->results;
}
