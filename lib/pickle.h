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
};

/* Start a new value at b->len: state cleared, PROTO written. */
static inline void mproc__writer_restart(struct mproc_writer *w)
{
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
