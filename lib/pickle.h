/*
 * pickle.h - the codec's private seams, used by the worker and the pool.
 *
 * The public half (struct mproc_writer, struct mproc_decoder and the value
 * accessors) is in include/mproc.h; this adds what lets the wire layer write
 * a value straight into a frame buffer and keep several decoded messages in
 * one arena.
 */
#ifndef MPROC_PICKLE_H
#define MPROC_PICKLE_H

#include "mproc.h"
#include "buf.h"

/* The opcodes the hot paths below write. */
enum {
	MPROC__OP_STOP = 0x2e,  /* . */
	MPROC__OP_NONE = 0x4e,  /* N */
	MPROC__OP_PROTO = 0x80,
};

/*
 * The writer's state, here rather than in pickle.c so that a worker's
 * per-task steps (attach, raised, the None of a task that wrote nothing)
 * are inlined into its loop. Only pickle.c changes it otherwise.
 */
struct pickle_frame;

/*
 * Out-of-band buffers (pickle protocol 5, PEP 574), for the transport.
 *
 * Where a writer's out-of-band copies and reservations are made. alloc:
 * memory for len bytes and *tag (NULL: the writer falls back to its own
 * malloc); drop: give back a block the writer allocated and nobody took.
 */
struct mproc__oob_ops {
	void *(*alloc)(void *ctx, size_t len, uint64_t *tag);
	void (*drop)(void *ctx, void *p, size_t len, uint64_t tag);
	void *ctx;
};

enum {
	MPROC__OOB_READONLY = 1, /* READONLY_BUFFER followed NEXT_BUFFER */
	MPROC__OOB_OPS = 2,      /* from ops->alloc, tag valid */
	MPROC__OOB_MALLOC = 4,   /* the writer's malloc */
};
/* Neither OPS nor MALLOC: a reference to the caller's memory. */

/* One out-of-band buffer of the value being written, in NEXT_BUFFER order. */
struct mproc__oob_buf {
	const void *data;
	size_t len;
	uint64_t tag;
	unsigned flags; /* MPROC__OOB_* */
};

struct mproc_writer {
	struct mproc__buf own;
	struct mproc__buf *b;  /* &own, or the attached buffer */
	size_t start;          /* offset of this value's PROTO in *b */
	int err;               /* first error, sticky */
	int top_type;          /* type of the top-level value, -1: none yet */
	uint8_t protocol;
	bool raised;
	bool finished;
	unsigned depth;
	unsigned fcap;
	struct pickle_frame *frames;
	/* Out-of-band buffers written since the value began: oob[0..noob),
	 * and the same as the public struct in pub[0..noob) (what
	 * mproc_writer_buffers() hands out). Empty on the hot path. */
	size_t noob;
	size_t oobcap;
	struct mproc__oob_buf *oob;
	struct mproc_buffer *pub;
	/* mproc_write_bytes() of at least this many bytes goes out of band;
	 * SIZE_MAX: never (a threshold of 0). */
	size_t oob_min;
	struct mproc__oob_ops ops; /* alloc NULL: malloc */
};

/* Drop the out-of-band buffers written so far (free the writer's copies,
 * give the ops' blocks back). The slow half of a restart. */
void mproc__writer_oob_drop(struct mproc_writer *w);

/* Start a new value at b->len: state cleared, PROTO written, untaken
 * out-of-band buffers dropped. */
static inline void mproc__writer_restart(struct mproc_writer *w)
{
	if (__builtin_expect(w->noob != 0, 0))
		mproc__writer_oob_drop(w);
	struct mproc__buf *b = w->b;
	w->err = 0;
	w->top_type = -1;
	w->raised = false;
	w->finished = false;
	w->depth = 0;
	b->len = w->start;
	if (mproc__buf_reserve(b, 2) < 0) {
		w->err = -ENOMEM;
		return;
	}
	char *p = b->data + b->len;
	p[0] = (char)MPROC__OP_PROTO;
	p[1] = (char)w->protocol;
	b->len += 2;
}

/*
 * Point `w` at `b`: the next value is appended at b->len (PROTO first,
 * STOP last), so a task's return value lands in the frame that carries it
 * without a copy. Resets w's state and error. Detach with
 * mproc__writer_attach(w, NULL), which returns w to its own buffer.
 */
static inline void mproc__writer_attach(struct mproc_writer *w,
                                        struct mproc__buf *b)
{
	w->b = b ? b : &w->own;
	w->start = b ? b->len : 0;
	mproc__writer_restart(w);
}

/*
 * Complete the value being written into the attached buffer (append STOP).
 * Returns 0, or the writer's first error / MPROC_EWRITER; on error the bytes
 * written since attach are removed from the buffer (b->len restored).
 */
int mproc__writer_end(struct mproc_writer *w);

/* mproc__writer_end(), writing None first when nothing was written (a
 * task that returned without a value). */
static inline int mproc__writer_end_result(struct mproc_writer *w)
{
	/* A whole value, or nothing (None, PROTO already there): STOP, in
	 * one step. Anything else fails in mproc__writer_end(). */
	struct mproc__buf *b = w->b;
	if (!w->err && !w->depth && mproc__buf_reserve(b, 2) == 0) {
		char *p = b->data + b->len;
		if (w->top_type < 0) {
			*p++ = (char)MPROC__OP_NONE;
			w->top_type = MPROC_NONE;
		}
		*p++ = (char)MPROC__OP_STOP;
		b->len = (size_t)(p - b->data);
		w->finished = true;
		return 0;
	}
	return mproc__writer_end(w);
}

/*
 * Where the writer's out-of-band copies and reservations are made (NULL:
 * its own malloc). Buffers still in the list are dropped first, with the
 * ops that made them. `ops` is copied.
 */
void mproc__writer_set_oob(struct mproc_writer *w,
                           const struct mproc__oob_ops *ops);

/*
 * The out-of-band buffers written since the value began (attach, restart,
 * reset), in NEXT_BUFFER order. After mproc__writer_end() (or _end_result,
 * or mproc_writer_finish()) they are the value's, until taken or until the
 * next restart drops them. mproc__writer_end() that fails drops them.
 */
static inline size_t mproc__writer_oob_count(const struct mproc_writer *w)
{
	return w->noob;
}

static inline const struct mproc__oob_buf *
mproc__writer_oob(const struct mproc_writer *w)
{
	return w->oob;
}

/*
 * The caller takes the buffers: the list empties and the writer will
 * neither drop nor free them (the caller now frees MALLOC ones with free()
 * and gives OPS ones back itself; references stay the writer's caller's).
 */
static inline void mproc__writer_oob_take(struct mproc_writer *w)
{
	w->noob = 0;
}

/* True when mproc_raise() was the last thing done on w (since attach/reset). */
static inline bool mproc__writer_raised(const struct mproc_writer *w)
{
	return w->raised;
}

/*
 * The top-level type of the value written so far (the first opcode's),
 * or -1 when nothing was written. Lets starmap check for a tuple.
 */
int mproc__writer_top_type(const struct mproc_writer *w);

/*
 * Decode like mproc_decode() but keep the trees of earlier
 * mproc__decode_keep() calls alive (the arena is not reset), so that one
 * decoder holds every result of a map. mproc_decode() or
 * mproc__decoder_reset() frees them all at once.
 */
int mproc__decode_keep(struct mproc_decoder *d, const void *buf, size_t len,
                       const struct mproc_value **out);
void mproc__decoder_reset(struct mproc_decoder *d);

/* mproc__decode_keep() with out-of-band buffers, as mproc_decode_buffers()
 * takes them: bufs[i].data must outlive the trees. */
int mproc__decode_keep_buffers(struct mproc_decoder *d, const void *buf,
                               size_t len, const struct mproc_buffer *bufs,
                               size_t nbufs, const struct mproc_value **out);

/*
 * The shared node of a message that is just None, True, False or an int
 * below 256 (protocol 4 or 5, no frame), or NULL for anything else: the
 * commonest task results, taken without a decoder.
 */
const struct mproc_value *mproc__decode_tiny(const void *buf, size_t len);

/*
 * Storage for one int or float node outside any decoder (a worker's packed
 * task arguments). mproc__scalar_int/float fill it, or answer a shared
 * node, and return the value: the same node the decoder makes for that
 * number's pickle.
 */
struct mproc__scalar {
	uint64_t raw[2];
};
const struct mproc_value *mproc__scalar_int(struct mproc__scalar *s, int64_t i);
const struct mproc_value *mproc__scalar_float(struct mproc__scalar *s,
                                              double f);

/* A NUL-terminated copy of s[0..n) in d's arena (lives as its trees do). */
const char *mproc__decoder_strdup(struct mproc_decoder *d, const char *s,
                                  size_t n);

#endif
