/*
 * oob.c - out-of-band buffers between the manager and its workers: the
 * arena of shared memory, its spaces, the heap blocks of the threads
 * backend, and the trailer that names a record's buffers (oob.h).
 *
 * Invariants: a block's count is 1 from its allocation (the task that
 * carries an argument, or the result in transit) and moves only through
 * hold/release/discard; a space takes a block back when its count is 0,
 * and what does not fit then
 * travels inline (slower, never lost). Nothing here trusts a descriptor
 * read from a pipe: each is checked against the arena's bounds and its
 * block's header before it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "oob.h"

#define ALIGN 64u
#define HDR ((size_t)sizeof(struct mproc__oobhdr))
#define BLOCK_MAGIC 0x6b6c626du
/* `zero` of a stored descriptor: its block was held (what release lets
 * go; a worker's own value there is cleared first). */
#define HELD 1u

/* Defaults: the manager's argument space, and each worker region. */
#define ARG_BYTES ((size_t)256 << 20)
#define REGION_BYTES ((size_t)128 << 20)

static inline size_t round_up(size_t n)
{
	return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

/* The argument space and the regions start on pages: a worker maps the
 * parts it only reads apart from its own. */
static size_t round_page(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (n + page - 1) / page * page;
}

/* ---- spaces ------------------------------------------------------------------ */

/*
 * A space hands out the lowest gap that fits, among the blocks it has
 * handed out (a list in address order, private to its one writer), and
 * takes back a block once its count is 0. Lowest first keeps the memory
 * it cycles through small and warm (a fresh page costs a fault and a
 * clearing), and a block held for long stops nothing but itself.
 */
static void space_reclaim(struct mproc__space *sp)
{
	size_t k = 0;
	for (size_t i = 0; i < sp->n; i++) {
		struct mproc__oobhdr *h = (void *)(sp->base + sp->blk[i].off);
		if (atomic_load_explicit(&h->refs, memory_order_acquire))
			sp->blk[k++] = sp->blk[i];
	}
	sp->n = k;
}

void *mproc__space_alloc(struct mproc__space *sp, char *arena, size_t len,
                         uint64_t *tag)
{
	if (!sp->base || len > sp->size - HDR - ALIGN)
		return NULL;
	size_t need = round_up(HDR + len);
	space_reclaim(sp);
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? 2 * sp->cap : 32;
		void *b = reallocarray(sp->blk, cap, sizeof *sp->blk);
		if (!b)
			return NULL;
		sp->blk = b;
		sp->cap = cap;
	}
	size_t at = 0, i = 0;
	for (; i < sp->n; i++) {
		if (sp->blk[i].off - at >= need)
			break;
		at = sp->blk[i].off + sp->blk[i].size;
	}
	if (i == sp->n && sp->size - at < need)
		return NULL;
	memmove(sp->blk + i + 1, sp->blk + i, (sp->n - i) * sizeof *sp->blk);
	sp->blk[i].off = at;
	sp->blk[i].size = need;
	sp->n++;
	struct mproc__oobhdr *h = (void *)(sp->base + at);
	h->magic = BLOCK_MAGIC;
	h->size = need;
	atomic_store_explicit(&h->refs, 1, memory_order_release);
	*tag = (uint64_t)((char *)h - arena);
	return (char *)h + HDR;
}

/* ---- the transport ---------------------------------------------------------- */

static void *heap_alloc(void *ctx, size_t len, uint64_t *tag);
static void block_drop(void *ctx, void *p, size_t len, uint64_t tag);
static void *args_alloc(void *ctx, size_t len, uint64_t *tag);

int mproc__oob_new(struct mproc__oob **out, bool threads, unsigned nslots,
                   size_t memory, size_t threshold)
{
	struct mproc__oob *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->threads = threads;
	o->threshold = threshold;
	atomic_init(&o->users, 1);
	atomic_init(&o->sender, MPROC__OOB_ANY);
	o->fd = -1;
	pthread_mutex_init(&o->mu, NULL);
	if (!threads) {
		size_t args = ARG_BYTES, region = REGION_BYTES;
		if (memory) {
			/* A quarter for arguments, the rest shared by the
			 * regions, each at least 1 MiB; 8 MiB in all at
			 * least. */
			if (memory < ((size_t)8 << 20))
				memory = (size_t)8 << 20;
			args = round_page(memory / 4);
			region = round_page((memory - args) / (2 * (size_t)nslots));
			if (region < ((size_t)1 << 20))
				region = (size_t)1 << 20;
		}
		o->nregions = 2 * nslots;
		o->region_size = region;
		o->arena_size = args + region * o->nregions;
		o->holds = calloc(o->nregions, sizeof *o->holds);
		o->busy = calloc(o->nregions, 1);
		int fd = memfd_create("mproc-buffers", MFD_CLOEXEC);
		void *m = MAP_FAILED;
		int e = ENOMEM;
		if (o->holds && o->busy) {
			if (fd < 0 || ftruncate(fd, (off_t)o->arena_size) < 0 ||
			    (m = mmap(NULL, o->arena_size, PROT_READ | PROT_WRITE,
			              MAP_SHARED | MAP_NORESERVE, fd, 0)) == MAP_FAILED)
				e = errno;
		}
		if (m == MAP_FAILED) {
			if (fd >= 0)
				close(fd);
			free(o->holds);
			free(o->busy);
			free(o);
			return -(e ? e : ENOMEM);
		}
		o->arena = m;
		o->fd = fd;
		/* Offset 0 is no block's: a tag of 0 names none. */
		o->args = (struct mproc__space){.base = (char *)m + ALIGN,
		                                .size = args - ALIGN};
	}
	/* Little enough to stay warm; half the space at most. */
	o->arg_budget = (size_t)16 << 20;
	if (!threads && o->arg_budget > o->args.size / 2)
		o->arg_budget = o->args.size / 2;
	o->arg_tasks = 2 * (size_t)nslots;
	o->arg_ops = threads ? (struct mproc__oob_ops){heap_alloc, block_drop, o}
	                     : (struct mproc__oob_ops){args_alloc, block_drop, o};
	*out = o;
	return 0;
}

void mproc__oob_put(struct mproc__oob *o)
{
	if (!o || atomic_fetch_sub(&o->users, 1) != 1)
		return;
	if (o->arena) {
		munmap(o->arena, o->arena_size);
		if (o->fd >= 0)
			close(o->fd);
	}
	pthread_mutex_destroy(&o->mu);
	free(o->args.blk);
	free(o->holds);
	free(o->busy);
	free(o);
}

int mproc__oob_region_take(struct mproc__oob *o, unsigned slot)
{
	if (!o || !o->arena)
		return -1;
	for (unsigned k = 0; k < 2; k++) {
		unsigned r = 2 * slot + k;
		if (r < o->nregions && !o->busy[r] &&
		    !atomic_load(&o->holds[r])) {
			o->busy[r] = 1;
			return (int)r;
		}
	}
	return -1;
}

void mproc__oob_region_done(struct mproc__oob *o, int r)
{
	if (o && r >= 0 && (unsigned)r < o->nregions)
		o->busy[r] = 0;
}

/* ---- blocks ------------------------------------------------------------------ */

static void *heap_alloc(void *ctx, size_t len, uint64_t *tag)
{
	(void)ctx;
	if (len > SIZE_MAX - HDR)
		return NULL;
	struct mproc__oobhdr *h = malloc(HDR + len);
	if (!h)
		return NULL;
	h->magic = BLOCK_MAGIC;
	h->size = HDR + len;
	atomic_init(&h->refs, 1);
	*tag = (uint64_t)(uintptr_t)h;
	return (char *)h + HDR;
}

/* The header of a block named by tag, checked; NULL when it is not one. */
static struct mproc__oobhdr *block_size_of(const struct mproc__oob *o,
                                           uint64_t tag, bool arena,
                                           uint64_t *size)
{
	if (!tag)
		return NULL;
	if (!arena)
		return o->threads ? (void *)(uintptr_t)tag : NULL;
	if (!o->arena || tag % ALIGN || tag > o->arena_size - HDR)
		return NULL;
	struct mproc__oobhdr *h = (void *)(o->arena + tag);
	/* A worker may write its region's headers while this reads them:
	 * each word is read once, and what is checked is what is used. */
	uint32_t magic = *(volatile uint32_t *)&h->magic;
	uint64_t sz = *(volatile uint64_t *)&h->size;
	if (magic != BLOCK_MAGIC || sz < ALIGN || sz > o->arena_size - tag)
		return NULL;
	*size = sz;
	return h;
}

static struct mproc__oobhdr *block_of(const struct mproc__oob *o, uint64_t tag,
                                      bool arena)
{
	uint64_t size;
	return block_size_of(o, tag, arena, &size);
}

static void block_drop(void *ctx, void *p, size_t len, uint64_t tag)
{
	struct mproc__oob *o = ctx;
	(void)p;
	(void)len;
	struct mproc__oobhdr *h = block_of(o, tag, !o->threads);
	if (h && atomic_fetch_sub(&h->refs, 1) == 1 && o->threads)
		free(h);
}

/* Where the argument space ends and the regions begin. */
static inline size_t args_end(const struct mproc__oob *o)
{
	return ALIGN + o->args.size;
}

/* The region of an arena offset, or -1 (the argument space). */
static int region_of(const struct mproc__oob *o, uint64_t off)
{
	size_t start = args_end(o);
	if (off < start)
		return -1;
	return (int)((off - start) / o->region_size);
}

static void *region_alloc(void *ctx, size_t len, uint64_t *tag)
{
	struct mproc__oob_side *side = ctx;
	return mproc__space_alloc(&side->space, side->o->arena, len, tag);
}

static void region_drop(void *ctx, void *p, size_t len, uint64_t tag)
{
	struct mproc__oob_side *side = ctx;
	block_drop(side->o, p, len, tag);
}

static void *args_alloc(void *ctx, size_t len, uint64_t *tag)
{
	struct mproc__oob *o = ctx;
	pthread_mutex_lock(&o->mu);
	void *p = mproc__space_alloc(&o->args, o->arena, len, tag);
	pthread_mutex_unlock(&o->mu);
	return p;
}

/* Bytes [off, off + len) of the arena, mapped again read-only in place. */
static bool ro_map(struct mproc__oob *o, size_t off, size_t len)
{
	return !len || mmap(o->arena + off, len, PROT_READ,
	                    MAP_SHARED | MAP_NORESERVE | MAP_FIXED, o->fd,
	                    (off_t)off) != MAP_FAILED;
}

int mproc__oob_worker_setup(struct mproc__oob *o, int r,
                            struct mproc__oob_side *s)
{
	*s = (struct mproc__oob_side){.o = o};
	if (o->threads) {
		s->ops = (struct mproc__oob_ops){heap_alloc, block_drop, o};
		return 0;
	}
	/* What is not its own region it only reads: the manager's arguments,
	 * the other workers' results. Mapped again read-only rather than
	 * mprotect()ed: the same pages, and memcheck takes seconds to
	 * mprotect a big mapping where it maps one at once. */
	bool own = r >= 0 && (unsigned)r < o->nregions;
	size_t below = own ? args_end(o) + (size_t)r * o->region_size
	                   : o->arena_size;
	size_t above = own ? below + o->region_size : o->arena_size;
	if (!ro_map(o, 0, below) || !ro_map(o, above, o->arena_size - above))
		return -errno;
	/* The worker's copy of the descriptor: nothing needs it now. */
	close(o->fd);
	o->fd = -1;
	if (!own)
		return 0;
	s->space.base = o->arena + below;
	s->space.size = o->region_size;
	s->ops = (struct mproc__oob_ops){region_alloc, region_drop, s};
	return 0;
}

const struct mproc__oob_ops *mproc__oob_arg_ops(struct mproc__oob *o)
{
	return o ? &o->arg_ops : NULL;
}

/* ---- trailers ---------------------------------------------------------------- */

int mproc__oob_split(const char *body, size_t len, size_t *plen,
                     const struct mproc__oobdesc **d, uint32_t *n)
{
	*n = 0;
	*d = NULL;
	*plen = len;
	if (!mproc__oob_has_trailer(body, len))
		return 0;
	uint32_t tail[2];
	if (len < MPROC__OOB_TAIL)
		return MPROC_EPROTO;
	memcpy(tail, body + len - MPROC__OOB_TAIL, sizeof tail);
	size_t room = len - MPROC__OOB_TAIL;
	if (tail[1] != MPROC__OOB_MAGIC || tail[0] == 0 ||
	    tail[0] > MPROC__OOB_MAXBUF ||
	    (size_t)tail[0] * sizeof **d > room)
		return MPROC_EPROTO;
	size_t dstart = room - (size_t)tail[0] * sizeof **d;
	/* Descriptors are 8-aligned in the record: its writer pads. */
	*d = (const void *)(body + dstart);
	*n = tail[0];
	/* The pickle ends where the first inline byte or the table starts:
	 * its STOP is the last byte before either. */
	size_t end = dstart;
	for (uint32_t i = 0; i < tail[0]; i++) {
		struct mproc__oobdesc x;
		memcpy(&x, body + dstart + i * sizeof x, sizeof x);
		if ((x.flags & MPROC__OD_INLINE) && x.addr < end)
			end = (size_t)x.addr;
	}
	/* Padding (zeros) between the pickle and what follows. */
	while (end && body[end - 1] == 0)
		end--;
	if (!end || body[end - 1] != '.')
		return MPROC_EPROTO;
	*plen = end;
	return 0;
}

int mproc__oob_buffers(const struct mproc__oob *o, const char *body,
                       size_t len, size_t plen,
                       const struct mproc__oobdesc *dp, uint32_t n,
                       struct mproc_buffer *bufs)
{
	size_t table = len - MPROC__OOB_TAIL - (size_t)n * sizeof *dp;
	for (uint32_t i = 0; i < n; i++) {
		struct mproc__oobdesc d;
		memcpy(&d, (const char *)dp + i * sizeof d, sizeof d);
		const char *p = NULL;
		if (d.flags & MPROC__OD_INLINE) {
			if (d.addr < plen || d.addr > table ||
			    d.len > table - d.addr)
				return MPROC_EPROTO;
			p = body + d.addr;
		} else if (d.flags & MPROC__OD_ARENA) {
			if (!o || !o->arena)
				return MPROC_EPROTO;
			uint64_t size;
			struct mproc__oobhdr *h = block_size_of(o, d.tag, true,
			                                        &size);
			if (!h || d.addr < d.tag + HDR || d.addr > d.tag + size ||
			    d.len > d.tag + size - d.addr)
				return MPROC_EPROTO;
			p = o->arena + d.addr;
		} else if (d.flags & MPROC__OD_HEAP) {
			if (!o || !o->threads)
				return MPROC_EPROTO;
			p = (const char *)(uintptr_t)d.addr;
		} else {
			return MPROC_EPROTO;
		}
		bufs[i] = (struct mproc_buffer){
		        .data = p, .len = (size_t)d.len,
		        .readonly = d.flags & MPROC__OD_READONLY};
	}
	return 0;
}

/* Where p[0..len) lies among the task's argument buffers, or NULL. */
static const struct mproc__oobdesc *in_args(const struct mproc__oob *o,
                                            const char *p, size_t len,
                                            const struct mproc__oobdesc *args,
                                            uint32_t nargs)
{
	for (uint32_t i = 0; i < nargs; i++) {
		const struct mproc__oobdesc *a = &args[i];
		if (!a->tag && !(a->flags & MPROC__OD_HEAP))
			continue;
		const char *base = o->threads ? (const char *)(uintptr_t)a->addr
		                              : o->arena + a->addr;
		if ((a->flags & MPROC__OD_INLINE) || p < base ||
		    p > base + a->len || len > (size_t)(base + a->len - p))
			continue;
		return a;
	}
	return NULL;
}

int mproc__oob_trailer(struct mproc__oob *o, struct mproc_writer *w,
                       struct mproc__space *space, struct mproc__buf *out,
                       size_t body_off, const struct mproc__oobdesc *args,
                       uint32_t nargs)
{
	size_t n = mproc__writer_oob_count(w);
	const struct mproc__oob_buf *b = mproc__writer_oob(w);
	if (!n)
		return 0;
	if (n > MPROC__OOB_MAXBUF)
		return MPROC_EWRITER;
	struct mproc__oobdesc *d = calloc(n, sizeof *d);
	if (!d)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		const struct mproc__oob_buf *x = &b[i];
		uint32_t ro = (x->flags & MPROC__OOB_READONLY) ? MPROC__OD_READONLY
		                                               : 0;
		d[i] = (struct mproc__oobdesc){.len = x->len, .flags = ro};
		const struct mproc__oobdesc *a;
		if (o && (x->flags & MPROC__OOB_OPS)) {
			/* Already a block of ours: named, not copied. */
			d[i].tag = x->tag;
			if (o->threads) {
				d[i].addr = (uint64_t)(uintptr_t)x->data;
				d[i].flags |= MPROC__OD_HEAP;
			} else {
				d[i].addr = (uint64_t)((const char *)x->data - o->arena);
				d[i].flags |= MPROC__OD_ARENA;
			}
			continue;
		}
		if (o && (a = in_args(o, x->data, x->len, args, nargs))) {
			/* A result that points into its argument: the same
			 * block, one more reference when it is stored. */
			d[i].tag = a->tag;
			d[i].flags |= MPROC__OD_NAMED |
			              (a->flags & (MPROC__OD_ARENA | MPROC__OD_HEAP));
			d[i].addr = o->threads ? (uint64_t)(uintptr_t)x->data
			                       : (uint64_t)((const char *)x->data -
			                                    o->arena);
			continue;
		}
		if (o && o->threads && !(x->flags & MPROC__OOB_MALLOC) && !space) {
			/* The manager's input, lent by reference: its pointer. */
			d[i].addr = (uint64_t)(uintptr_t)x->data;
			d[i].flags |= MPROC__OD_HEAP;
			continue;
		}
		uint64_t tag;
		void *dst = NULL;
		if (o && o->threads)
			dst = heap_alloc(NULL, x->len, &tag);
		else if (o && o->arena)
			dst = space ? mproc__space_alloc(space, o->arena, x->len, &tag)
			           : args_alloc(o, x->len, &tag);
		if (dst) {
			memcpy(dst, x->data, x->len);
			d[i].tag = tag;
			d[i].zero = 1; /* ours: dropped if the trailer fails */
			if (o->threads) {
				d[i].addr = (uint64_t)(uintptr_t)dst;
				d[i].flags |= MPROC__OD_HEAP;
			} else {
				d[i].addr = (uint64_t)((char *)dst - o->arena);
				d[i].flags |= MPROC__OD_ARENA;
			}
			continue;
		}
		/* No room: the bytes go in the record. */
		while ((out->len - body_off) % 8)
			if ((rc = mproc__buf_append(out, "", 1)) < 0)
				goto fail;
		d[i].addr = out->len - body_off;
		d[i].flags |= MPROC__OD_INLINE;
		if ((rc = mproc__buf_append(out, x->data, x->len)) < 0)
			goto fail;
	}
	while ((out->len - body_off) % 8)
		if ((rc = mproc__buf_append(out, "", 1)) < 0)
			goto fail;
	/* The writer's reference (an argument's block, held by its task
	 * until it is final): what mproc__oob_release lets go. A worker's
	 * result is marked when the manager stores it (oob_hold). */
	for (size_t i = 0; i < n; i++)
		d[i].zero = !space && d[i].tag ? HELD : 0;
	uint32_t tail[2] = {(uint32_t)n, MPROC__OOB_MAGIC};
	if ((rc = mproc__buf_append(out, d, n * sizeof *d)) < 0 ||
	    (rc = mproc__buf_append(out, tail, sizeof tail)) < 0)
		goto fail;
	/* Copies the writer made with malloc were copied again above. */
	for (size_t i = 0; i < n; i++)
		if (b[i].flags & MPROC__OOB_MALLOC)
			free((void *)b[i].data);
	mproc__writer_oob_take(w);
	free(d);
	return 0;
fail:
	/* The copies made here go back; the writer drops its own. */
	for (size_t i = 0; i < n; i++)
		if (d[i].zero)
			block_drop(o, NULL, 0, d[i].tag);
	free(d);
	return rc;
}

/* ---- references ---------------------------------------------------------------- */

static void desc_at(const struct mproc__oobdesc *dp, uint32_t i,
                    struct mproc__oobdesc *d)
{
	memcpy(d, (const char *)dp + i * sizeof *d, sizeof *d);
}

static struct mproc__oobhdr *desc_block(const struct mproc__oob *o,
                                        const struct mproc__oobdesc *d)
{
	if (d->flags & MPROC__OD_INLINE)
		return NULL;
	if (d->flags & MPROC__OD_ARENA)
		return block_of(o, d->tag, true);
	if (d->flags & MPROC__OD_HEAP)
		return block_of(o, d->tag, false);
	return NULL;
}

/*
 * Whether a result's descriptor names a block where its kind may lie: its
 * own in its sender's region (mproc__oob_sender), one it names (its
 * argument's) in the argument space.
 */
static bool desc_owner_ok(const struct mproc__oob *o,
                          const struct mproc__oobdesc *d)
{
	if (!o->arena || !(d->flags & MPROC__OD_ARENA))
		return true;
	int r = region_of(o, d->tag);
	if (d->flags & MPROC__OD_NAMED)
		return r < 0;
	int from = atomic_load_explicit(&o->sender, memory_order_relaxed);
	return r >= 0 && (from == MPROC__OOB_ANY || r == from);
}

static size_t oob_hold(struct mproc__oob *o, char *dp, uint32_t n)
{
	size_t bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct mproc__oobdesc d;
		desc_at((const void *)dp, i, &d);
		d.zero = 0;
		struct mproc__oobhdr *h = o ? desc_block(o, &d) : NULL;
		if (h && !desc_owner_ok(o, &d))
			h = NULL;
		if (h && (d.flags & MPROC__OD_NAMED)) {
			/* Another's block (the argument it echoes): one more
			 * reference, on a block that is still held. */
			uint32_t r = atomic_load(&h->refs);
			while (r && !atomic_compare_exchange_weak(&h->refs, &r,
			                                          r + 1))
				;
			if (!r)
				h = NULL;
		}
		if (h) {
			d.zero = HELD;
			bytes += (size_t)d.len;
			if (!(d.flags & MPROC__OD_NAMED)) {
				/* Its writer's reference passes to the stored
				 * result; a worker's region is not given to the
				 * next worker while results point into it. */
				int r = o->arena ? region_of(o, d.tag) : -1;
				if (r >= 0)
					atomic_fetch_add(&o->holds[r], 1);
			}
		}
		memcpy(dp + i * sizeof d, &d, sizeof d);
	}
	return bytes;
}

/* held: a stored result's (or a task's argument's) blocks, as marked by
 * oob_hold or made by the manager; else a record not stored, whose own
 * blocks go back. */
static void oob_unref(struct mproc__oob *o, const struct mproc__oobdesc *dp,
                      uint32_t n, bool held)
{
	for (uint32_t i = 0; o && i < n; i++) {
		struct mproc__oobdesc d;
		desc_at(dp, i, &d);
		if (held ? d.zero != HELD : (d.flags & MPROC__OD_NAMED) != 0)
			continue;
		struct mproc__oobhdr *h = desc_block(o, &d);
		if (!h || (!held && !desc_owner_ok(o, &d)))
			continue;
		int r = held && o->arena && !(d.flags & MPROC__OD_NAMED)
		                ? region_of(o, d.tag)
		                : -1;
		uint32_t left = atomic_fetch_sub(&h->refs, 1);
		if (r >= 0)
			atomic_fetch_sub(&o->holds[r], 1);
		if (left == 1 && o->threads)
			free(h);
	}
}

void mproc__oob_discard(struct mproc__oob *o, const char *body, size_t len)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	if (mproc__oob_split(body, len, &plen, &d, &n) == 0)
		oob_unref(o, d, n, false);
}

void mproc__oob_release(struct mproc__oob *o, const struct mproc__oobdesc *d,
                        uint32_t n)
{
	oob_unref(o, d, n, true);
}

size_t mproc__oob_hold_body(struct mproc__oob *o, char *body, size_t len)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	if (mproc__oob_split(body, len, &plen, &d, &n) < 0)
		return 0;
	return oob_hold(o, (char *)d, n);
}

void mproc__oob_release_body(struct mproc__oob *o, const char *body,
                             size_t len)
{
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	if (mproc__oob_split(body, len, &plen, &d, &n) == 0)
		mproc__oob_release(o, d, n);
}

int mproc__oob_flatten(const struct mproc__oob *o, const char *body,
                       size_t len, struct mproc__buf *out)
{
	size_t plen;
	const struct mproc__oobdesc *dp;
	uint32_t n;
	int rc = mproc__oob_split(body, len, &plen, &dp, &n);
	if (rc < 0)
		return rc;
	struct mproc_buffer *b = calloc(n ? n : 1, sizeof *b);
	struct mproc__oobdesc *d = calloc(n ? n : 1, sizeof *d);
	if (!b || !d) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = mproc__oob_buffers(o, body, len, plen, dp, n, b)) < 0 ||
	    (rc = mproc__buf_append(out, body, plen)) < 0)
		goto done;
	for (uint32_t i = 0; i < n; i++) {
		while (out->len % 8)
			if ((rc = mproc__buf_append(out, "", 1)) < 0)
				goto done;
		d[i] = (struct mproc__oobdesc){
		        .addr = out->len, .len = b[i].len,
		        .flags = MPROC__OD_INLINE |
		                 (b[i].readonly ? MPROC__OD_READONLY : 0)};
		if ((rc = mproc__buf_append(out, b[i].data, b[i].len)) < 0)
			goto done;
	}
	while (out->len % 8)
		if ((rc = mproc__buf_append(out, "", 1)) < 0)
			goto done;
	uint32_t tail[2] = {n, MPROC__OOB_MAGIC};
	if ((rc = mproc__buf_append(out, d, (size_t)n * sizeof *d)) == 0)
		rc = mproc__buf_append(out, tail, sizeof tail);
done:
	free(b);
	free(d);
	return rc;
}
