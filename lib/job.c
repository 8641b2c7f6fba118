/*
 * job.c - one call's inputs and results: what map, apply and imap share.
 *
 * A job pulls its input lazily into TASK frames (job_pull; ranges and
 * number arrays a chunk at a time, without their generator) and stores each
 * frame of results as it comes back (job_store_run). ALL jobs (map, apply)
 * keep every result, decoded on arrival into a table made once at the
 * input's length, a word per result; iterator jobs keep at most `window`
 * results pulled ahead of the consumer, in a ring of slots whose buffers
 * are reused, so a long imap allocates nothing per task once warm. Tiny
 * results (None, a bool, a small int) take a shared node in both: no copy,
 * no decoding. Every function here runs with the pool's lock held.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "input.h"
#include "pool.h"

/*
 * A map's result table: one word per input. An OK result of a first
 * attempt (the commonest by far) is just its value's address; any other is
 * the address of a whole struct mproc_result kept in the job's records,
 * with bit 0 set (values and records are 8-aligned, so bit 0 is free).
 * mproc_results_get() reads either. Python's list of results takes a word
 * per item too: a map's table is most of the fresh memory it touches, and
 * on a virtual machine fresh memory is dear.
 *
 * A big table comes straight from mmap, 2 MiB aligned and asking for
 * transparent huge pages: 10^6 results are 8 MB, whose first touch would
 * otherwise cost a page fault per 4 KiB while the results come in. Small
 * ones stay with malloc.
 */
#define SLOT_REC ((uintptr_t)1)
#define TABLE_MMAP ((size_t)2 << 20)

static uintptr_t *table_alloc(size_t n)
{
	if (n > SIZE_MAX / sizeof(uintptr_t) - TABLE_MMAP)
		return NULL;
	size_t bytes = n * sizeof(uintptr_t);
	if (bytes < TABLE_MMAP)
		return malloc(bytes ? bytes : 1);
	size_t len = (bytes + TABLE_MMAP - 1) & ~(TABLE_MMAP - 1);
	char *p = mmap(NULL, len + TABLE_MMAP, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Trim to an aligned start; the tail past len goes too. */
	size_t head = (TABLE_MMAP - ((uintptr_t)p & (TABLE_MMAP - 1))) &
	              (TABLE_MMAP - 1);
	if (head)
		munmap(p, head);
	munmap(p + head + len, TABLE_MMAP - head);
	/* Advice only: without THP the table works the same. */
	(void)madvise(p + head, len, MADV_HUGEPAGE);
	return (uintptr_t *)(void *)(p + head);
}

static void table_free(uintptr_t *t, size_t n)
{
	if (!t)
		return;
	size_t bytes = n * sizeof *t;
	if (bytes < TABLE_MMAP)
		free(t);
	else
		munmap(t, (bytes + TABLE_MMAP - 1) & ~(TABLE_MMAP - 1));
}

/*
 * n bytes from a list of blocks that never move (decoded trees, the result
 * table and results point into them): a new block holds `first` bytes,
 * then twice the last one's up to `most`, and never less than n. NULL
 * without memory. Blocks go with the job (blocks_free).
 */
static void *blocks_alloc(struct mproc__block **list, size_t n, size_t first,
                          size_t most)
{
	struct mproc__block *b = *list;
	if (!b || b->cap - b->len < n) {
		size_t cap = !b ? first : b->cap < most ? 2 * b->cap : most;
		if (cap < n)
			cap = n;
		b = malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		b->len = 0;
		b->cap = cap;
		b->next = *list;
		*list = b;
	}
	void *p = b->data + b->len;
	b->len += n;
	return p;
}

static void blocks_free(struct mproc__block **list)
{
	while (*list) {
		struct mproc__block *b = *list;
		*list = b->next;
		free(b);
	}
}

/* Room for a record of a map's result or error: blocks start small (an
 * apply that raised needs one) and double up to 64 KiB. */
static void *job_record(struct mproc__job *job, size_t size)
{
	return blocks_alloc(&job->recs, (size + 15) & ~(size_t)15, 256,
	                    64u << 10);
}

struct mproc__job *mproc__job_new(struct mproc_pool *pool,
                                  enum mproc__job_kind kind, mproc_task_fn fn,
                                  size_t chunksize, uint8_t flags)
{
	struct mproc__job *job = calloc(1, sizeof *job);
	if (!job)
		return NULL;
	job->pool = pool;
	job->kind = kind;
	job->fn = fn;
	job->flags = flags;
	job->chunksize = chunksize ? chunksize : 1;
	return job;
}

int mproc__job_set_opts(struct mproc__job *job, const struct mproc_call_opts *co)
{
	if (!co)
		return 0;
	if (isnan(co->timeout) || co->timeout >= 1e9)
		return -EINVAL;
	/* A thread running past its timeout cannot be stopped. */
	if (co->timeout > 0 && job->pool->opts.backend == MPROC_BACKEND_THREADS)
		return -ENOTSUP;
	job->timeout_ns = co->timeout > 0   ? (uint64_t)(co->timeout * 1e9)
	                  : co->timeout < 0 ? UINT64_MAX
	                                    : 0;
	if (co->star)
		job->flags |= MPROC__TF_STAR;
	return 0;
}

void mproc__job_free(struct mproc__job *job)
{
	if (!job)
		return;
	mproc__buf_free(&job->pre);
	blocks_free(&job->blocks);
	for (size_t i = 0; i < job->nslots; i++)
		mproc__buf_free(&job->slots[i].data);
	free(job->slots);
	table_free(job->table, job->ntable);
	blocks_free(&job->recs);
	if (job->in_jobs)
		TAILQ_REMOVE(&job->pool->jobs, job, alink);
	/* Keep one small decoder for the next call; a big map's arena goes. */
	if (job->dec && job->pool && !job->pool->spare_dec && job->pulled <= 1024) {
		mproc__decoder_reset(job->dec);
		job->pool->spare_dec = job->dec;
	} else {
		mproc_decoder_free(job->dec);
	}
	free(job);
}

int mproc__job_set_input(struct mproc__job *job, const struct mproc_input *in)
{
	if (!mproc__input_valid(in))
		return -EINVAL;
	/* Our own copy: the caller's may be gone when an async job pulls. */
	job->in = *in;
	job->pack = mproc__input_pack(&job->in);
	return 0;
}

static int job_pre_append(struct mproc__job *job, const void *p, size_t len)
{
	if (len > UINT32_MAX)
		return MPROC_EPICKLE_TOOBIG;
	uint32_t l = (uint32_t)len;
	int rc = mproc__buf_append(&job->pre, &l, sizeof l);
	return rc < 0 ? rc : mproc__buf_append(&job->pre, p, len);
}

int mproc__job_set_arg(struct mproc__job *job, const void *arg, size_t len)
{
	static const char none[] = "\x80\x05N.";
	if (!arg) {
		arg = none;
		len = sizeof none - 1;
	}
	job->use_pre = true;
	job->pack = 0;
	job->in.has_len = true;
	job->in.len = 1;
	return job_pre_append(job, arg, len);
}

/* Pull one item from the generator as a record at the end of `out`. */
static int job_gen_one(struct mproc__job *job, struct mproc_writer *w,
                       struct mproc__buf *out)
{
	size_t rec = out->len;
	int rc = mproc__buf_reserve(out, MPROC__TASK_REC);
	if (rc < 0)
		return rc;
	out->len += MPROC__TASK_REC;
	mproc__writer_attach(w, out);
	rc = mproc_input_write(&job->in, job->pulled, w);
	if (rc > 0)
		rc = mproc__writer_end(w) < 0 ? MPROC_EINPUT : 1;
	else if (rc < 0)
		rc = MPROC_EINPUT;
	mproc__writer_attach(w, NULL);
	if (rc <= 0) {
		out->len = rec;
		return rc;
	}
	uint32_t len = (uint32_t)(out->len - rec - MPROC__TASK_REC);
	memcpy(out->data + rec, &len, sizeof len);
	return 1;
}

int mproc__job_read_all(struct mproc__job *job)
{
	/* map() over an input of unknown length reads it all first, as
	 * Python's map() does list(iterable), to size its chunks. This runs
	 * in the caller's thread without the pool's lock: its own writer. */
	struct mproc_writer *w;
	int wrc = mproc_writer_new(&w, 5);
	if (wrc < 0)
		return wrc;
	size_t n = 0;
	int rc;
	for (;;) {
		job->pulled = n;
		rc = job_gen_one(job, w, &job->pre);
		if (rc <= 0)
			break;
		n++;
	}
	mproc_writer_free(w);
	job->pulled = 0;
	if (rc < 0)
		return rc;
	job->use_pre = true;
	job->pack = 0;
	job->in.has_len = true;
	job->in.len = n;
	return 0;
}

size_t mproc__job_room(const struct mproc__job *job)
{
	if (job->input_done)
		return 0;
	if (job->kind == MPROC__JOB_ALL)
		return SIZE_MAX;
	/* Iterators: at most `window` results between the consumer and the
	 * input, so that an endless input runs in bounded memory. */
	size_t ahead = job->pulled - job->delivered;
	return ahead >= job->window ? 0 : job->window - ahead;
}

static int job_grow_items(struct mproc__job *job, size_t need)
{
	if (need <= job->ntable)
		return 0;
	/* A map knows its length: the table is made once, at its size. */
	size_t n = job->ntable ? job->ntable : 64;
	while (n < need)
		n *= 2;
	if (job->in.has_len && need <= job->in.len && n > job->in.len)
		n = job->in.len;
	/* Not cleared: every item up to `pulled` is written when its result
	 * is stored, and none past it is ever read. */
	uintptr_t *t = table_alloc(n);
	if (!t)
		return -ENOMEM;
	if (job->pulled)
		memcpy(t, job->table, job->pulled * sizeof *t);
	table_free(job->table, job->ntable);
	job->table = t;
	job->ntable = n;
	return 0;
}

/*
 * A packed job's next items: an array's take their 8 bytes; a range's take
 * none (the frame's record says where it starts, pool_dispatch_chunk) but
 * count 16 each against the byte budget, so that a chunk ends near 1 M
 * tasks, as a pickled one did: that bounds what an unexplained death makes
 * of it (a one-task suspect frame per task left).
 */
static size_t job_pull_packed(struct mproc__job *job, struct mproc__buf *out,
                              size_t n, size_t limit)
{
	size_t room = out->len < limit ? limit - out->len : 0;
	room /= job->pack == MPROC__TF_RANGE ? MPROC__RANGE_REC : MPROC__NUM_REC;
	if (n > room)
		n = room;
	if (n > job->in.len - job->pulled)
		n = job->in.len - job->pulled;
	if (n && job->pack != MPROC__TF_RANGE &&
	    mproc__input_numbers(&job->in, job->pulled, n, out) != n) {
		job->input_err = -ENOMEM;
		job->input_done = true;
		return 0;
	}
	job->pulled += n;
	if (job->pulled >= job->in.len)
		job->input_done = true;
	return n;
}

size_t mproc__job_pull(struct mproc__job *job, struct mproc__buf *out,
                       size_t n, size_t limit)
{
	size_t got = 0;
	if (job->kind == MPROC__JOB_ALL && job->in.has_len &&
	    job_grow_items(job, job->in.len) < 0) {
		job->input_err = -ENOMEM;
		job->input_done = true;
		return 0;
	}
	if (job->pack)
		return job->input_done ? 0 : job_pull_packed(job, out, n, limit);
	while (got < n && !job->input_done && out->len < limit) {
		int rc;
		if (job->use_pre) {
			if (job->pre_off >= job->pre.len) {
				rc = 0;
			} else {
				uint32_t len;
				memcpy(&len, job->pre.data + job->pre_off, sizeof len);
				size_t rl = MPROC__TASK_REC + len;
				rc = mproc__buf_append(out, job->pre.data + job->pre_off, rl);
				if (rc == 0) {
					job->pre_off += rl;
					rc = 1;
				}
			}
		} else if (job->in.has_len && job->pulled >= job->in.len) {
			rc = 0;
		} else {
			rc = job_gen_one(job, job->pool->w, out);
		}
		if (rc <= 0) {
			job->input_done = true;
			if (rc < 0)
				job->input_err = rc;
			break;
		}
		if (job->kind == MPROC__JOB_ALL &&
		    job_grow_items(job, job->pulled + 1) < 0) {
			job->input_err = -ENOMEM;
			job->input_done = true;
			break;
		}
		job->pulled++;
		got++;
	}
	if (job->use_pre && job->pre_off >= job->pre.len)
		job->input_done = true;
	return got;
}

/* A stable copy of a result pickle, in the job's 1 MiB blocks. */
static const char *job_keep(struct mproc__job *job, const void *p, size_t len)
{
	char *dst = blocks_alloc(&job->blocks, len, 1u << 20, 1u << 20);
	if (dst)
		memcpy(dst, p, len);
	return dst;
}

/* Errors the pool makes without memory to spare. */
static const struct mproc_error job_err_nomem_keep = {
	"MemoryError", "no memory to keep the result", NULL};
static const struct mproc_error job_err_nomem_decode = {
	"MemoryError", "no memory to decode the result", NULL};
static const struct mproc_error job_err_cancelled = {
	"Cancelled", "the pool was terminated before the task ended", NULL};
static const struct mproc_error job_err_undecodable = {
	"UnpicklingError", "result could not be decoded", NULL};
static const struct mproc_error job_err_lost = {
	"UnpicklingError", "result lost: out of memory", NULL};

/* Where a failed result lives when there was no memory for its record:
 * one per status, so the status stands; its attempts (given as 1) and its
 * own error are lost. mproc_results_get() sets the index. */
static const struct mproc_result job_rec_nomem[] = {
#define NOMEM_REC(st) [st] = {.status = st, .attempts = 1, \
                              .error = &job_err_nomem_keep}
	NOMEM_REC(MPROC_RAISED), NOMEM_REC(MPROC_CRASHED),
	NOMEM_REC(MPROC_TIMEOUT), NOMEM_REC(MPROC_MEMORY),
	NOMEM_REC(MPROC_CANCELLED),
#undef NOMEM_REC
};
/* The slot of a result nobody will read (the caller freed its handle). */
static const struct mproc_result job_rec_unread = {
	.status = MPROC_CANCELLED, .error = &job_err_cancelled};

/* Fill a map's slot with r: its value alone, or a record of the whole. */
static void job_set_slot(struct mproc__job *job, uintptr_t *slot,
                         const struct mproc_result *r)
{
	if (r->status == MPROC_OK && r->attempts == 1 &&
	    !((uintptr_t)r->value & SLOT_REC)) {
		*slot = (uintptr_t)r->value;
		return;
	}
	struct mproc_result *rec = job_record(job, sizeof *rec);
	if (!rec) {
		/* An OK value stands (its attempts read as 1); a failure keeps
		 * its status. */
		if (r->status == MPROC_OK && !((uintptr_t)r->value & SLOT_REC))
			*slot = (uintptr_t)r->value;
		else if (r->status > MPROC_OK && r->status <= MPROC_CANCELLED)
			*slot = (uintptr_t)&job_rec_nomem[r->status] | SLOT_REC;
		else {
			if (r->status == MPROC_OK)
				job->failed++; /* a value that cannot be tagged */
			*slot = (uintptr_t)&job_rec_nomem[MPROC_RAISED] | SLOT_REC;
		}
		return;
	}
	*rec = *r;
	*slot = (uintptr_t)rec | SLOT_REC;
}

/* map/apply: decode each result as it arrives, while the workers go on. */
static int job_store_all(struct mproc__job *job, size_t index,
                         enum mproc_status status, unsigned attempts,
                         const void *payload, size_t len)
{
	uintptr_t *slot = &job->table[index];
	job->completed++;
	if (job->user_released && !job->cb.callback && !job->cb.error_callback) {
		/* Nobody will read it: skip decoding. */
		*slot = (uintptr_t)&job_rec_unread | SLOT_REC;
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
		const char *kept = len ? job_keep(job, payload, len) : NULL;
		if (len && !kept) {
			r = (struct mproc_result){.index = index,
			                          .status = MPROC_RAISED,
			                          .attempts = attempts,
			                          .error = &job_err_nomem_keep};
			rc = -ENOMEM;
		} else {
			rc = mproc__job_result(job, status, attempts, index, kept,
			                       len, &r);
			if (rc < 0) {
				r.status = MPROC_RAISED;
				r.value = NULL;
				r.error = &job_err_nomem_decode;
			}
		}
	}
	if (r.status != MPROC_OK)
		job->failed++;
	job_set_slot(job, slot, &r);
	return rc;
}

int mproc__job_store(struct mproc__job *job, size_t index,
                     enum mproc_status status, unsigned attempts,
                     const void *payload, size_t len)
{
	struct mproc__slot *s;
	int rc = 0;
	mproc__fault_count(job->pool, status);
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
	s->data.len = 0;
	if (!s->tiny)
		rc = mproc__buf_append(&s->data, payload, len);
	if (rc < 0) {
		/* Out of memory for this result: it still ends, as an error. */
		s->data.len = 0;
		status = MPROC_RAISED;
	}
	s->index = index;
	s->status = status;
	s->attempts = attempts;
	s->ready = true;
	job->completed++;
	return rc;
}

/* n results stored OK: what mproc__fault_count does for each. */
static void job_count_ok(struct mproc__job *job, size_t n)
{
	job->pool->stats.tasks_done += n;
	job->pool->stats.ok += n;
	job->completed += n;
}

/*
 * The records of one RESULT frame, for tasks index.. of job. A map's
 * results that are just None, a bool or a small int (the commonest) go
 * straight into the table in one tight loop; any other takes the general
 * path, in order. *stored counts the records taken even when one is
 * malformed (MPROC_EPROTO).
 */
int mproc__job_store_run(struct mproc__job *job, size_t index,
                         unsigned attempts, const char *p, const char *end,
                         uint32_t count, size_t *stored)
{
	/* A first attempt's tiny results are their value's address in the
	 * table; a retry's take a record (job_store_all). */
	bool fast = job->kind == MPROC__JOB_ALL && attempts == 1 &&
	            (!job->user_released || job->cb.callback ||
	             job->cb.error_callback);
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
				table[i] = (uintptr_t)last_v;
				p += last_len;
				i++;
			}
			ok += i - (index + k);
			k = (uint32_t)(i - index);
			if (k == count)
				break;
		}
		uint32_t rec[2];
		if ((size_t)(end - p) < MPROC__RESULT_REC) {
			rc = MPROC_EPROTO;
			break;
		}
		memcpy(rec, p, sizeof rec);
		const char *body = p + MPROC__RESULT_REC;
		if ((size_t)(end - body) < rec[0] ||
		    (rec[1] != MPROC_OK && rec[1] != MPROC_RAISED)) {
			rc = MPROC_EPROTO;
			break;
		}
		const struct mproc_value *v = NULL;
		if (fast && rec[1] == MPROC_OK)
			v = mproc__decode_tiny(body, rec[0]);
		if (v) {
			/* Kept as the record to match: 12 or 13 bytes. */
			last_len = MPROC__RESULT_REC + rec[0];
			memcpy(&last_hdr, p, 8);
			last_body = 0;
			memcpy(&last_body, body, rec[0]);
			last_v = v;
			table[index + k] = (uintptr_t)v;
			ok++;
		} else {
			if (ok) {
				/* Counted before anything else, in arrival order. */
				job_count_ok(job, ok);
				ok = 0;
			}
			if (job->user_released && job->kind != MPROC__JOB_ALL) {
				job->completed++;
				mproc__fault_count(job->pool, rec[1]);
			} else {
				mproc__job_store(job, index + k, rec[1], attempts, body,
				                 rec[0]);
			}
		}
		p = body + rec[0];
		k++;
	}
	if (ok)
		job_count_ok(job, ok);
	*stored = k;
	return rc;
}

void mproc__job_check_done(struct mproc__job *job)
{
	if (job->done || !job->input_done || job->completed < job->pulled ||
	    job->inflight)
		return;
	job->done = true;
	job->pool->active--;
	if (job->timeout_ns)
		job->pool->call_timeouts--;
	if (job->kind == MPROC__JOB_ALL &&
	    (!job->user_released || job->cb.callback || job->cb.error_callback)) {
		job->final_rc = mproc__job_finalize(job);
		if (job->cb.callback || job->cb.error_callback) {
			TAILQ_INSERT_TAIL(&job->pool->callbacks, job, cblink);
			job->cb_queued = true;
		}
	}
	pthread_cond_broadcast(&job->pool->cv);
}

void mproc__job_cancel(struct mproc__job *job, size_t index, size_t count)
{
	/* Terminate: tasks of a chunk that had no result end CANCELLED. */
	for (size_t i = 0; i < count; i++)
		mproc__job_store(job, index + i, MPROC_CANCELLED, 0, NULL, 0);
	job->inflight--;
}

/* Item i of tuple v as an int, or 0. */
static int64_t item_int(const struct mproc_value *v, size_t i)
{
	const struct mproc_value *x;
	int64_t n = 0;
	bool b;
	if (mproc_value_item(v, i, &x) == 0 && mproc_value_int(x, &n) < 0 &&
	    mproc_value_bool(x, &b) == 0)
		n = b;
	return n;
}

/* Room for a result's error: in the job for an iterator (one result out
 * at a time), in the job's records for a map. NULL without memory. */
static struct mproc__error *job_error(struct mproc__job *job)
{
	struct mproc__error *r = &job->curerr;
	if (job->kind == MPROC__JOB_ALL && !(r = job_record(job, sizeof *r)))
		return NULL;
	*r = (struct mproc__error){0};
	return r;
}

/* The crash record of a result the manager wrote (fault.c's store_note):
 * (type, message, signal, si_code, address, core, exit status, rss,
 * report). */
static void job_crash(struct mproc__job *job, const struct mproc_value *v,
                      struct mproc__error *r)
{
	size_t n = 0;
	if (mproc_value_len(v, &n) < 0 || n < 9)
		return;
	r->c = (struct mproc_crash){
		.signal = (int)item_int(v, 2),
		.si_code = (int)item_int(v, 3),
		.addr = (uintptr_t)item_int(v, 4),
		.core_dumped = item_int(v, 5) != 0,
		.exit_status = (int)item_int(v, 6),
		.rss = (size_t)item_int(v, 7),
	};
	const struct mproc_value *x;
	const char *s;
	size_t len;
	if (mproc_value_item(v, 8, &x) == 0 && mproc_value_str(x, &s, &len) == 0)
		r->c.report = mproc__decoder_strdup(job->dec, s, len);
	r->e.crash = &r->c;
}

int mproc__job_result(struct mproc__job *job, enum mproc_status status,
                      unsigned attempts, size_t index, const void *p,
                      size_t len, struct mproc_result *out)
{
	*out = (struct mproc_result){.index = index, .status = status,
	                             .attempts = attempts};
	if (status != MPROC_OK && len == 0) {
		/* Ended by the pool with nothing recorded: terminate, or no
		 * memory to keep what the worker sent. */
		out->error = status == MPROC_CANCELLED ? &job_err_cancelled
		                                       : &job_err_nomem_keep;
		return 0;
	}
	if (!job->dec) {
		/* apply() in a loop should not build a decoder per call. */
		if (job->pool->spare_dec) {
			job->dec = job->pool->spare_dec;
			job->pool->spare_dec = NULL;
		} else {
			int rc = mproc_decoder_new(&job->dec, &job->pool->opts.limits);
			if (rc < 0)
				return rc;
		}
	}
	const struct mproc_value *v = NULL;
	int rc = len ? mproc__decode_keep(job->dec, p, len, &v) : MPROC_EPICKLE_TRUNCATED;
	if (rc < 0) {
		out->status = MPROC_RAISED;
		struct mproc__error *r = len ? job_error(job) : NULL;
		const char *msg = r ? mproc__decoder_strdup(job->dec,
		                              mproc_decoder_error(job->dec),
		                              strlen(mproc_decoder_error(job->dec)))
		                    : NULL;
		if (msg) {
			r->e.type = "UnpicklingError";
			r->e.msg = msg;
			out->error = &r->e;
		} else {
			out->error = len ? &job_err_undecodable : &job_err_lost;
		}
		return 0;
	}
	if (status == MPROC_OK) {
		out->value = v;
		return 0;
	}
	/* Every other status carries (type, message). */
	struct mproc__error *r = job_error(job);
	if (!r)
		return -ENOMEM;
	const struct mproc_value *t = NULL, *m = NULL;
	const char *s;
	size_t n;
	r->e.type = "Exception";
	r->e.msg = "";
	if (mproc_value_item(v, 0, &t) == 0 && mproc_value_str(t, &s, &n) == 0)
		r->e.type = mproc__decoder_strdup(job->dec, s, n);
	if (mproc_value_item(v, 1, &m) == 0 && mproc_value_str(m, &s, &n) == 0)
		r->e.msg = mproc__decoder_strdup(job->dec, s, n);
	if (!r->e.type || !r->e.msg)
		return -ENOMEM;
	if (status == MPROC_CRASHED || status == MPROC_TIMEOUT ||
	    status == MPROC_MEMORY)
		job_crash(job, v, r);
	out->error = &r->e;
	return 0;
}

int mproc__job_finalize(struct mproc__job *job)
{
	/* Every result was decoded as it arrived: only the totals are left. */
	job->results.count = job->pulled;
	job->results.slots = job->table;
	job->results.failed = job->failed;
	if (job->input_err)
		return job->input_err;
	return job->failed ? MPROC_ERAISED : 0;
}

void mproc__job_release(struct mproc__job *job)
{
	struct mproc_pool *pool = job->pool;
	if (!pool) {
		/* The pool was freed first: the job ended with it. */
		mproc__job_free(job);
		return;
	}
	pthread_mutex_lock(&pool->mu);
	job->user_released = true;
	if (job->queued && job->kind != MPROC__JOB_ALL) {
		/* Nobody will read more: stop pulling its input. */
		TAILQ_REMOVE(&pool->pending, job, link);
		job->queued = false;
		job->input_done = true;
		mproc__job_check_done(job);
	}
	mproc__job_maybe_free(job);
	pthread_mutex_unlock(&pool->mu);
}

int mproc_results_get(const struct mproc_results *res, size_t i,
                      struct mproc_result *out)
{
	if (!res || !out || i >= res->count || !res->slots)
		return -EINVAL;
	uintptr_t slot = res->slots[i];
	/* Every slot below count was written when its result was stored. */
	if (slot & SLOT_REC)
		*out = *(const struct mproc_result *)(slot & ~SLOT_REC);
	else
		*out = (struct mproc_result){.status = MPROC_OK, .attempts = 1,
		                             .value = (const void *)slot};
	out->index = i;
	return 0;
}

const struct mproc_value *mproc_results_value(const struct mproc_results *res,
                                              size_t i)
{
	if (!res || i >= res->count || !res->slots)
		return NULL;
	uintptr_t slot = res->slots[i];
	if (!(slot & SLOT_REC))
		return (const void *)slot;
	const struct mproc_result *r = (const void *)(slot & ~SLOT_REC);
	return r->status == MPROC_OK ? r->value : NULL;
}

size_t mproc_results_count(const struct mproc_results *res)
{
	return res ? res->count : 0;
}

size_t mproc_results_failed(const struct mproc_results *res)
{
	return res ? res->failed : 0;
}
