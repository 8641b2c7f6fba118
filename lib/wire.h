/*
 * wire.h - framing of messages between the manager and its workers.
 *
 * A frame is a fixed 32-byte header followed by `len` payload bytes. The
 * header is checked against the channel's maximum before anything is
 * allocated for the payload (mproc__wire_next).
 *
 * TASK frame: a chunk of `count` consecutive tasks with ids id .. id+count-1,
 * all running the function `ref`. Payload: count records of
 *     u32 len, then `len` bytes of pickle (the argument),
 * or, when a packing flag says so, the arguments of a range or of a number
 * array without a pickle each (what the decoder would make of each is the
 * same int or float):
 *     TF_RANGE   i64 start, i64 step: task k's argument is the int
 *                start + k * step (wrapping, as mproc_input_range computes);
 *     TF_INTS    count i64, TF_FLOATS count doubles.
 * RESULT frame: `count` consecutive results, ids id .. id+count-1, of one
 * chunk (a chunk may come back in several frames). `ref` carries the
 * nanoseconds the worker spent running them. Payload: count records of
 *     u32 len, u32 status (enum mproc_status), then `len` bytes of pickle
 *     (the return value for OK, the tuple (type, message) for RAISED).
 *
 * Integers are in host byte order: both ends are the same binary on the
 * same machine. A transport to another machine must fix the byte order and
 * name `ref` by symbol instead of address (docs/architecture.md).
 */
#ifndef MPROC_WIRE_H
#define MPROC_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

enum {
	MPROC__F_TASK = 1,
	MPROC__F_RESULT = 2,
};

/* TASK flags. */
enum {
	MPROC__TF_STAR = 1, /* starmap: every argument must be a tuple */
	MPROC__TF_CHECK = 2, /* suspect: check the channel after each task */
	MPROC__TF_RANGE = 4, /* packed: (start, step) */
	MPROC__TF_INTS = 8,  /* packed: an i64 per task */
	MPROC__TF_FLOATS = 16, /* packed: a double per task */
};
#define MPROC__TF_PACKED (MPROC__TF_RANGE | MPROC__TF_INTS | MPROC__TF_FLOATS)
/* A chunk's TASK frame stops growing at this many bytes; a range's task
 * counts MPROC__RANGE_REC against it, so no frame the manager makes holds
 * more than MPROC__FRAME_BUDGET / MPROC__RANGE_REC tasks (1 M). */
#define MPROC__FRAME_BUDGET (16u << 20)
#define MPROC__RANGE_MAX_TASKS (MPROC__FRAME_BUDGET / MPROC__RANGE_REC)
/* Bytes of a range frame's payload, and of a number's in the others. */
#define MPROC__RANGE_REC 16u
#define MPROC__NUM_REC 8u

struct mproc__frame {
	uint32_t len;   /* payload bytes after the header */
	uint8_t type;   /* MPROC__F_* */
	uint8_t flags;  /* MPROC__TF_* */
	uint16_t zero;  /* reserved, 0 */
	uint32_t count; /* records in the payload */
	uint32_t zero2; /* reserved, 0 */
	uint64_t id;    /* id of the first record */
	uint64_t ref;   /* TASK: function; RESULT: run time in ns */
};

#define MPROC__FRAME_HDR ((size_t)sizeof(struct mproc__frame))
#define MPROC__TASK_REC 4u
#define MPROC__RESULT_REC 8u

/*
 * Parse the frame at in->data[*off]: 1 and *f, *payload set (and *off
 * advanced past it) when complete, 0 when more bytes are needed,
 * MPROC_EPROTO when the header is invalid or longer than `max`.
 */
int mproc__wire_next(const struct mproc__buf *in, size_t *off,
                     struct mproc__frame *f, const char **payload,
                     size_t max);

/*
 * Read what is available from fd into `in`, offering at least 64 KiB of
 * room (`in` grows by that much when it has less). >0 bytes read, 0 at end
 * of file, -EAGAIN when nothing is there (non-blocking fd), another -errno
 * on error (-ENOMEM when `in` cannot grow). EINTR is retried inside.
 */
ssize_t mproc__wire_read(int fd, struct mproc__buf *in);

/*
 * Write out->data[*sent .. out->len) to fd. Returns 0 when all was written,
 * -EAGAIN when the fd is full (non-blocking), another -errno on error.
 * EINTR is retried inside.
 */
int mproc__wire_write(int fd, const struct mproc__buf *out, size_t *sent);

/*
 * Bytes of the task record at p in a TASK frame with these flags (p is
 * where it starts, and has at least MPROC__TASK_REC bytes for a plain
 * record): a range's records take none, the range being the frame's.
 */
static inline size_t mproc__task_rec_size(uint8_t flags, const char *p)
{
	if (flags & MPROC__TF_RANGE)
		return 0;
	if (flags & (MPROC__TF_INTS | MPROC__TF_FLOATS))
		return MPROC__NUM_REC;
	uint32_t len;
	memcpy(&len, p, sizeof len);
	return MPROC__TASK_REC + (size_t)len;
}

/* Append a header for a frame whose payload follows; returns its offset. */
static inline int mproc__wire_begin(struct mproc__buf *b, size_t *hdr_off)
{
	int rc = mproc__buf_reserve(b, MPROC__FRAME_HDR);
	if (rc < 0)
		return rc;
	*hdr_off = b->len;
	b->len += MPROC__FRAME_HDR;
	return 0;
}

/* Fill the header at hdr_off now that its payload ends at b->len. */
static inline void mproc__wire_end(struct mproc__buf *b, size_t hdr_off,
                                   uint8_t type, uint8_t flags,
                                   uint32_t count, uint64_t id, uint64_t ref)
{
	struct mproc__frame f = {
		.len = (uint32_t)(b->len - hdr_off - MPROC__FRAME_HDR),
		.type = type,
		.flags = flags,
		.count = count,
		.id = id,
		.ref = ref,
	};
	memcpy(b->data + hdr_off, &f, sizeof f);
}

#endif
