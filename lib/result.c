/*
 * result.c - a call's stored results and how each becomes the struct
 * mproc_result its caller reads; the public results accessors.
 *
 * A map's result table: one word per input. An OK result of a first
 * attempt (the commonest by far) is just its value's address; any other is
 * the address of a whole struct mproc_result kept in the records, with
 * bit 0 set (values and records are 8-aligned, so bit 0 is free).
 * mproc_results_get() reads either. Python's list of results takes a word
 * per item too: a map's table is most of the fresh memory it touches, and
 * on a virtual machine fresh memory is dear.
 *
 * A big table comes straight from mmap, 2 MiB aligned and asking for
 * transparent huge pages: 10^6 results are 8 MB, whose first touch would
 * otherwise cost a page fault per 4 KiB while the results come in. Small
 * ones stay with malloc.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "oob.h"
#include "pickle.h"
#include "result.h"

#define SLOT_REC ((uintptr_t)1)
#define TABLE_MMAP ((size_t)2 << 20)

struct mproc__block {
	struct mproc__block *next;
	size_t len, cap;
	_Alignas(max_align_t) char data[];
};

uintptr_t *mproc__table_alloc(size_t n)
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

void mproc__table_free(uintptr_t *t, size_t n)
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
 * n bytes from a list of blocks that never move: a new block holds `first`
 * bytes, then twice the last one's up to `most`, and never less than n.
 * NULL without memory.
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
static void *rstore_record(struct mproc__rstore *rs, size_t size)
{
	return blocks_alloc(&rs->recs, (size + 15) & ~(size_t)15, 256,
	                    64u << 10);
}

void mproc__rstore_use_oob(struct mproc__rstore *rs, struct mproc__oob *o)
{
	if (!o || rs->oob)
		return;
	atomic_fetch_add(&o->users, 1);
	rs->oob = o;
}

int mproc__rstore_hold(struct mproc__rstore *rs, char *body, size_t len)
{
	if (rs->nheld == rs->heldcap) {
		size_t cap = rs->heldcap ? 2 * rs->heldcap : 16;
		struct mproc__held *h = reallocarray(rs->held, cap, sizeof *h);
		if (!h) {
			mproc__oob_discard(rs->oob, body, len);
			return -ENOMEM;
		}
		rs->held = h;
		rs->heldcap = cap;
	}
	(void)mproc__oob_hold_body(rs->oob, body, len);
	rs->held[rs->nheld++] = (struct mproc__held){body, len};
	return 0;
}

void mproc__rstore_free(struct mproc__rstore *rs, struct mproc__decsrc *src,
                        bool small)
{
	for (size_t i = 0; i < rs->nheld; i++)
		mproc__oob_release_body(rs->oob, rs->held[i].body,
		                        rs->held[i].len);
	free(rs->held);
	rs->held = NULL;
	rs->nheld = rs->heldcap = 0;
	mproc__oob_put(rs->oob);
	rs->oob = NULL;
	blocks_free(&rs->blocks);
	blocks_free(&rs->recs);
	/* Keep one small decoder for the next call; a big map's arena goes. */
	if (rs->dec && src && !src->spare && small) {
		mproc__decoder_reset(rs->dec);
		src->spare = rs->dec;
	} else {
		mproc_decoder_free(rs->dec);
	}
	rs->dec = NULL;
}

const char *mproc__rstore_keep(struct mproc__rstore *rs, const void *p,
                               size_t len)
{
	char *dst = blocks_alloc(&rs->blocks, len, 1u << 20, 1u << 20);
	if (dst)
		memcpy(dst, p, len);
	return dst;
}

void mproc__rstore_reset(struct mproc__rstore *rs)
{
	if (rs->dec)
		mproc__decoder_reset(rs->dec);
}

const struct mproc_error mproc__err_nomem_keep = {
	"MemoryError", "no memory to keep the result", NULL};
const struct mproc_error mproc__err_nomem_decode = {
	"MemoryError", "no memory to decode the result", NULL};
static const struct mproc_error err_cancelled = {
	"Cancelled", "the pool was terminated before the task ended", NULL};
static const struct mproc_error err_undecodable = {
	"UnpicklingError", "result could not be decoded", NULL};
static const struct mproc_error err_lost = {
	"UnpicklingError", "result lost: out of memory", NULL};

/* Where a failed result lives when there was no memory for its record:
 * one per status, so the status stands; its attempts (given as 1) and its
 * own error are lost. mproc_results_get() sets the index. */
static const struct mproc_result rec_nomem[] = {
#define NOMEM_REC(st) [st] = {.status = st, .attempts = 1, \
                              .error = &mproc__err_nomem_keep}
	NOMEM_REC(MPROC_RAISED), NOMEM_REC(MPROC_CRASHED),
	NOMEM_REC(MPROC_TIMEOUT), NOMEM_REC(MPROC_MEMORY),
	NOMEM_REC(MPROC_CANCELLED),
#undef NOMEM_REC
};
/* The slot of a result nobody will read (the caller freed its handle). */
static const struct mproc_result rec_unread = {
	.status = MPROC_CANCELLED, .error = &err_cancelled};

uintptr_t mproc__table_unread(void)
{
	return (uintptr_t)&rec_unread | SLOT_REC;
}

void mproc__table_set(struct mproc__rstore *rs, uintptr_t *slot,
                      const struct mproc_result *r, size_t *failed)
{
	if (r->status == MPROC_OK && r->attempts == 1 &&
	    !((uintptr_t)r->value & SLOT_REC)) {
		*slot = (uintptr_t)r->value;
		return;
	}
	struct mproc_result *rec = rstore_record(rs, sizeof *rec);
	if (!rec) {
		/* An OK value stands (its attempts read as 1); a failure keeps
		 * its status. */
		if (r->status == MPROC_OK && !((uintptr_t)r->value & SLOT_REC))
			*slot = (uintptr_t)r->value;
		else if (r->status > MPROC_OK && r->status <= MPROC_CANCELLED)
			*slot = (uintptr_t)&rec_nomem[r->status] | SLOT_REC;
		else {
			if (r->status == MPROC_OK)
				(*failed)++; /* a value that cannot be tagged */
			*slot = (uintptr_t)&rec_nomem[MPROC_RAISED] | SLOT_REC;
		}
		return;
	}
	*rec = *r;
	*slot = (uintptr_t)rec | SLOT_REC;
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

/* Room for a result's error: in the store for an iterator (one result out
 * at a time), in its records for a map. NULL without memory. */
static struct mproc__error *rstore_error(struct mproc__rstore *rs)
{
	struct mproc__error *r = &rs->cur_err;
	if (rs->errors_in_recs && !(r = rstore_record(rs, sizeof *r)))
		return NULL;
	*r = (struct mproc__error){0};
	return r;
}

/* The crash record of a result the manager wrote (fault.c's store_note):
 * (type, message, signal, si_code, address, core, exit status, rss,
 * report). */
static void rstore_crash(struct mproc__rstore *rs, const struct mproc_value *v,
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
		r->c.report = mproc__decoder_strdup(rs->dec, s, len);
	r->e.crash = &r->c;
}

static int rstore_decoder(struct mproc__rstore *rs, struct mproc__decsrc *src)
{
	if (rs->dec)
		return 0;
	/* apply() in a loop should not build a decoder per call. */
	if (src && src->spare) {
		rs->dec = src->spare;
		src->spare = NULL;
		return 0;
	}
	return mproc_decoder_new(&rs->dec, src ? &src->limits : NULL);
}

/* A body with a trailer: its pickle, with its buffers. */
static int rstore_decode_oob(struct mproc__rstore *rs, const char *p,
                             size_t len, const struct mproc_value **v)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	int rc = mproc__oob_split(p, len, &plen, &d, &n);
	struct mproc_buffer one, *bufs = &one;
	if (rc == 0 && n > 1 && !(bufs = calloc(n, sizeof *bufs)))
		return -ENOMEM;
	if (rc == 0)
		rc = mproc__oob_buffers(rs->oob, p, len, plen, d, n, bufs);
	if (rc == 0)
		rc = mproc__decode_keep_buffers(rs->dec, p, plen, bufs, n, v);
	if (bufs != &one)
		free(bufs);
	return rc;
}

int mproc__rstore_result(struct mproc__rstore *rs, struct mproc__decsrc *src,
                         enum mproc_status status, unsigned attempts,
                         size_t index, const void *p, size_t len,
                         struct mproc_result *out)
{
	*out = (struct mproc_result){.index = index, .status = status,
	                             .attempts = attempts};
	if (status != MPROC_OK && len == 0) {
		/* Ended by the pool with nothing recorded: terminate, or no
		 * memory to keep what the worker sent. */
		out->error = status == MPROC_CANCELLED ? &err_cancelled
		                                       : &mproc__err_nomem_keep;
		return 0;
	}
	int rc = rstore_decoder(rs, src);
	if (rc < 0)
		return rc;
	const struct mproc_value *v = NULL;
	if (len && mproc__oob_has_trailer(p, len))
		rc = rstore_decode_oob(rs, p, len, &v);
	else
		rc = len ? mproc__decode_keep(rs->dec, p, len, &v)
		         : MPROC_EPICKLE_TRUNCATED;
	if (rc == -ENOMEM) {
		out->status = MPROC_RAISED;
		out->error = &mproc__err_nomem_decode;
		return 0;
	}
	if (rc < 0) {
		out->status = MPROC_RAISED;
		struct mproc__error *r = len ? rstore_error(rs) : NULL;
		const char *why = rc == MPROC_EPROTO
		                          ? "malformed out-of-band buffer table"
		                          : mproc_decoder_error(rs->dec);
		const char *msg = r ? mproc__decoder_strdup(rs->dec, why,
		                                            strlen(why))
		                    : NULL;
		if (msg) {
			r->e.type = "UnpicklingError";
			r->e.msg = msg;
			out->error = &r->e;
		} else {
			out->error = len ? &err_undecodable : &err_lost;
		}
		return 0;
	}
	if (status == MPROC_OK) {
		out->value = v;
		return 0;
	}
	/* Every other status carries (type, message). */
	struct mproc__error *r = rstore_error(rs);
	if (!r)
		return -ENOMEM;
	const struct mproc_value *t = NULL, *m = NULL;
	const char *s;
	size_t n;
	r->e.type = "Exception";
	r->e.msg = "";
	if (mproc_value_item(v, 0, &t) == 0 && mproc_value_str(t, &s, &n) == 0)
		r->e.type = mproc__decoder_strdup(rs->dec, s, n);
	if (mproc_value_item(v, 1, &m) == 0 && mproc_value_str(m, &s, &n) == 0)
		r->e.msg = mproc__decoder_strdup(rs->dec, s, n);
	if (!r->e.type || !r->e.msg)
		return -ENOMEM;
	if (status == MPROC_CRASHED || status == MPROC_TIMEOUT ||
	    status == MPROC_MEMORY)
		rstore_crash(rs, v, r);
	out->error = &r->e;
	return 0;
}

/* ---- the public accessors ------------------------------------------------ */

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
