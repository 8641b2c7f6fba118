/*
 * oob.h - out-of-band buffers between the manager and its workers (codec
 * and transport layer; oob.c).
 *
 * A value's big bytes travel beside its pickle (protocol 5's NEXT_BUFFER),
 * not through the pipes. A record (a task's argument, a task's result)
 * whose pickle has out-of-band buffers carries a trailer after the pickle
 * that says where each buffer is:
 *
 *     pickle (ends with STOP '.') | inline bytes | n descriptors | u32 n | u32 magic
 *
 * A record's body always ends with its pickle's STOP unless it has a
 * trailer, and the magic's last byte is not STOP: one byte tells them apart,
 * so records without buffers cost nothing.
 *
 * Where buffers live:
 *  - processes: an arena of shared memory (a memfd mapped MAP_SHARED) made
 *    when the pool opens, before anything forks, so every worker has it at
 *    the same address. It holds the manager's argument space (written by the
 *    manager only; workers map it read-only) and one result space per
 *    region, two regions per worker slot (written by the worker that holds
 *    the region; the manager only marks blocks released). A descriptor
 *    names a block by its offset in the arena.
 *  - threads: blocks on the heap, each with the same header; a descriptor
 *    carries a pointer, and a buffer the caller lent by reference passes as
 *    its pointer: threads hand over references.
 *  - neither (an MPI pool, a full space): the bytes go inline, inside the
 *    record, as they would in-band.
 *
 * Every block starts with a header holding a reference count: the task
 * that carries an argument holds one until its result is final, a stored
 * result holds one on each block it points into (its own, or its
 * argument's when it echoes it), until the caller releases the result.
 * A space takes a block back once its count is 0.
 */
#ifndef MPROC_OOB_H
#define MPROC_OOB_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mproc.h"
#include "pickle.h"

/* One buffer of a record. */
struct mproc__oobdesc {
	uint64_t addr;  /* arena offset, a pointer (threads), or inline offset */
	uint64_t len;
	uint64_t tag;   /* the block holding it (arena offset of its header,
	                   or a heap header's address); 0: none (lent memory,
	                   inline) */
	uint32_t flags; /* MPROC__OD_* */
	uint32_t zero;
};

enum {
	MPROC__OD_READONLY = 1,
	MPROC__OD_INLINE = 2,   /* addr: offset from the body's start */
	MPROC__OD_ARENA = 4,    /* addr, tag: arena offsets */
	MPROC__OD_HEAP = 8,     /* addr: pointer; tag: heap block or 0 */
	MPROC__OD_NAMED = 16,   /* the block is another record's (a result
	                           that points into its argument) */
};

#define MPROC__OOB_MAGIC 0x424f4f4du /* "MOOB": last byte 'B', not STOP */
#define MPROC__OOB_TAIL 8u          /* u32 n, u32 magic */

/* A block's header, at the start of every block. */
struct mproc__oobhdr {
	uint32_t magic;
	_Atomic uint32_t refs;
	uint64_t size;  /* bytes of the block, header included */
};

/* An allocator over base[0..size) of the arena (state private to its one
 * writer: the manager for arguments, a worker for its region). */
struct mproc__space {
	char *base;
	size_t size;
	struct { size_t off, size; } *blk; /* handed out, in address order */
	size_t n, cap;
};

/* The pool's transport of buffers. */
struct mproc__oob {
	bool threads;           /* heap blocks and pointers; no arena */
	size_t threshold;       /* bytes from which writers go out of band */
	size_t arg_budget;      /* a call's arguments in flight: bytes, */
	size_t arg_tasks;       /* or tasks when they are big */
	char *arena;            /* processes: the mapping; NULL: none */
	int fd;                 /* its memfd (workers map parts read-only) */
	_Atomic int sender;     /* the region of the worker whose results are
	                           being stored, or MPROC__OOB_ANY */
	size_t arena_size;
	size_t region_size;     /* each worker region's bytes */
	unsigned nregions;      /* after the argument space */
	_Atomic uint32_t *holds; /* stored results pointing into each region */
	uint8_t *busy;          /* a worker writes into it */
	_Atomic unsigned long users; /* the pool, and every held result */
	pthread_mutex_t mu;     /* the argument space: map reads its input
	                           without the pool's lock */
	struct mproc__space args;
	struct mproc__oob_ops arg_ops; /* the manager's input writers */
};

/*
 * A transport for `nslots` worker slots: threads true for heap blocks,
 * false for an arena of `memory` bytes (0: the default) for processes.
 * 0 and *out, or -errno. threshold: from the pool's options.
 */
int mproc__oob_new(struct mproc__oob **out, bool threads, unsigned nslots,
                   size_t memory, size_t threshold);
/* The pool lets go; the arena stays mapped while results point into it. */
void mproc__oob_put(struct mproc__oob *o);

/* A free region for worker slot `slot` (one of its two), marked busy; -1
 * when both are still held (its results then go inline). */
int mproc__oob_region_take(struct mproc__oob *o, unsigned slot);
/* The worker of region r is gone. */
void mproc__oob_region_done(struct mproc__oob *o, int r);

/* A worker's side: its space, and its writer's ops. */
struct mproc__oob_side {
	struct mproc__oob *o;
	struct mproc__space space;
	struct mproc__oob_ops ops; /* alloc NULL: none (inline) */
};

/*
 * Set up a worker's side, in the worker: its writer's copies and
 * reservations go into region r (-1: none, they go inline), or on the heap
 * for threads; a process maps the rest of the arena read-only. 0, or
 * -errno when that mapping failed (the worker cannot run).
 */
int mproc__oob_worker_setup(struct mproc__oob *o, int r,
                            struct mproc__oob_side *s);

/* Results of the worker of region `region` (-1: it has none) are being
 * stored: a buffer one of them names as its own must lie in that region,
 * or it is not taken (a task cannot release another worker's block). Set
 * by the engine around each worker's frames; MPROC__OOB_ANY after. */
#define MPROC__OOB_ANY INT_MIN
static inline void mproc__oob_sender(struct mproc__oob *o, int region)
{
	if (o)
		atomic_store_explicit(&o->sender, region, memory_order_relaxed);
}

/* True when body[0..len) ends with a trailer. */
static inline bool mproc__oob_has_trailer(const char *body, size_t len)
{
	return len && body[len - 1] != '.';
}

/*
 * Split a record body: *plen the pickle's bytes, *d and *n its descriptors
 * (n 0 without a trailer). MPROC_EPROTO for a trailer that does not fit.
 * Checks only the shape; mproc__oob_buffers checks the descriptors.
 */
int mproc__oob_split(const char *body, size_t len, size_t *plen,
                     const struct mproc__oobdesc **d, uint32_t *n);

/*
 * The buffers of body's descriptors into bufs[0..n) (n at most
 * MPROC__OOB_MAXBUF), each checked to lie in the arena (processes) or in
 * the record (inline). MPROC_EPROTO for one that does not.
 */
#define MPROC__OOB_MAXBUF 4096u
int mproc__oob_buffers(const struct mproc__oob *o, const char *body,
                       size_t len, size_t plen,
                       const struct mproc__oobdesc *d, uint32_t n,
                       struct mproc_buffer *bufs);

/*
 * Append the trailer of the buffers `w` wrote to the record that ends at
 * out->len (its pickle just written), and take them from w. `space` is the
 * writer's side (NULL: the manager's): a copy that is not already a block
 * goes into it (or inline when it is full). Descriptors in `args` (the task's
 * argument's, worker side) let a result that points into its argument
 * name that block instead of copying. 0, or -ENOMEM.
 */
int mproc__oob_trailer(struct mproc__oob *o, struct mproc_writer *w,
                       struct mproc__space *space, struct mproc__buf *out,
                       size_t body_off, const struct mproc__oobdesc *args,
                       uint32_t nargs);

/*
 * A result record arrives: stored (hold: it keeps its blocks, and takes a
 * reference on an argument's it names), or not (discard: its own blocks
 * go back). A stored result, or a task's argument once its task is final,
 * lets go with release.
 */
void mproc__oob_release(struct mproc__oob *o, const struct mproc__oobdesc *d,
                        uint32_t n);
/* The same, reading the descriptors from a record body; hold marks the
 * stored copy's, and answers the bytes of the buffers it holds. */
size_t mproc__oob_hold_body(struct mproc__oob *o, char *body, size_t len);
void mproc__oob_release_body(struct mproc__oob *o, const char *body,
                             size_t len);
void mproc__oob_discard(struct mproc__oob *o, const char *body, size_t len);
/* The ops of the manager's input writers (copies into the argument space,
 * or heap blocks). */
const struct mproc__oob_ops *mproc__oob_arg_ops(struct mproc__oob *o);

/* A body whose buffers are all inline, into out (appended): what outlives
 * the arena (the journal). 0, MPROC_EPROTO, -ENOMEM. */
int mproc__oob_flatten(const struct mproc__oob *o, const char *body,
                       size_t len, struct mproc__buf *out);

/* A block of len bytes from sp; its header's arena offset in *tag. */
void *mproc__space_alloc(struct mproc__space *r, char *arena, size_t len,
                        uint64_t *tag);

#endif
