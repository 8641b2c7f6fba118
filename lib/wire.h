/*
 * wire.h - framing of messages between the manager and its workers.
 *
 * A frame is a fixed 32-byte header followed by its payload, whose length
 * is 64 bits in two words: `len_lo` and `len_hi` (the high word was a
 * reserved zero before 0.4, so every older frame reads the same). Read and
 * write it with mproc__frame_len and mproc__frame_set_len only. The header
 * is checked against the channel's maximum before anything is allocated
 * for the payload (mproc__wire_next).
 *
 * TASK frame: a chunk of `count` consecutive tasks with ids id .. id+count-1,
 * all running the function `ref`. Payload: count records of
 *     u32 len, then `len` bytes of pickle (the argument),
 * or, for a pickle of 4 GiB - 1 bytes or more (the escape, below),
 *     u32 0xFFFFFFFF, u64 len, then `len` bytes of pickle,
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
 *     (the return value for OK, the tuple (type, message) for RAISED),
 * or, for a pickle of 4 GiB - 1 bytes or more,
 *     u32 0xFFFFFFFF, u32 status, u64 len, then `len` bytes of pickle
 * (the status stays where a small record has it).
 *
 * The escape: a record's u32 length 0xFFFFFFFF (MPROC__REC_ESC) says a u64
 * length follows, and it must then be at least 0xFFFFFFFF (one encoding
 * per length: a smaller one is MPROC_EPROTO). Records below it keep the
 * 0.3 layout byte for byte, so the paths that read small records
 * (job_store.c's compare of tiny results, child.c's task loop, the
 * requeue's walks) see no change but one branch. Read and write records
 * with the helpers below, which check every length against the bytes
 * present.
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
#include "mproc.h"

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
	uint32_t len_lo; /* payload bytes after the header: low 32 bits */
	uint8_t type;    /* MPROC__F_* */
	uint8_t flags;   /* MPROC__TF_* */
	uint16_t zero;   /* reserved, 0 */
	uint32_t count;  /* records in the payload */
	uint32_t len_hi; /* payload bytes: high 32 bits (reserved 0 in 0.3) */
	uint64_t id;     /* id of the first record */
	uint64_t ref;    /* TASK: function; RESULT: run time in ns */
};

#define MPROC__FRAME_HDR ((size_t)sizeof(struct mproc__frame))
#define MPROC__TASK_REC 4u
#define MPROC__RESULT_REC 8u
/* A record's u32 length that says a u64 length follows. */
#define MPROC__REC_ESC UINT32_MAX
/* Bytes the escape adds to a record's header. */
#define MPROC__REC_ESC_EXTRA 8u

/*
 * The largest frame payload a channel takes for values of up to max_size
 * bytes (0: the default, 1 GiB): a chunk's records around one value that
 * big, or a frame of results that ends with one. Both ends of a pool's
 * pipes agree on it. max_size is at most MPROC_LIMITS_MAX_SIZE (the pool
 * checks), so this does not overflow.
 */
#define MPROC__FRAME_SLACK ((size_t)64 << 20)
static inline size_t mproc__wire_max(size_t max_size)
{
	return (max_size ? max_size : (size_t)1 << 30) + MPROC__FRAME_SLACK;
}

/* The payload length of frame f. */
static inline uint64_t mproc__frame_len(const struct mproc__frame *f)
{
	return (uint64_t)f->len_hi << 32 | f->len_lo;
}

static inline void mproc__frame_set_len(struct mproc__frame *f, uint64_t n)
{
	f->len_lo = (uint32_t)n;
	f->len_hi = (uint32_t)(n >> 32);
}

/*
 * Parse the frame at in->data[*off]: 1 and *f, *payload set (and *off
 * advanced past it) when complete, 0 when more bytes are needed,
 * MPROC_EPROTO when the header is invalid or longer than `max`.
 */
int mproc__wire_next(const struct mproc__buf *in, size_t *off,
                     struct mproc__frame *f, const char **payload,
                     size_t max);

/*
 * When in->data[off..] holds the header of a frame of more than 1 MiB,
 * within `max`, whose payload is not all there yet: make room for the
 * rest of it (and 64 KiB more) at once, so that reading it 64 KiB at a
 * time grows the buffer once to its size instead of doubling past it.
 * 0, or -ENOMEM (the reads then grow it as they can).
 */
int mproc__wire_expect(struct mproc__buf *in, size_t off, size_t max);

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
 * Bytes of the task record at p in a TASK frame with these flags, for
 * frames the manager made itself (the requeue's walks over w->out): p is
 * where it starts and the record is whole. A range's records take none,
 * the range being the frame's. Bytes from a channel go through
 * mproc__task_rec_next, which checks them.
 */
static inline size_t mproc__task_rec_size(uint8_t flags, const char *p)
{
	if (flags & MPROC__TF_RANGE)
		return 0;
	if (flags & (MPROC__TF_INTS | MPROC__TF_FLOATS))
		return MPROC__NUM_REC;
	uint32_t len;
	memcpy(&len, p, sizeof len);
	if (__builtin_expect(len == MPROC__REC_ESC, 0)) {
		uint64_t big;
		memcpy(&big, p + MPROC__TASK_REC, sizeof big);
		return MPROC__TASK_REC + MPROC__REC_ESC_EXTRA + (size_t)big;
	}
	return MPROC__TASK_REC + (size_t)len;
}

/* The pickle of the whole task record at p (as mproc__task_rec_size, for
 * the manager's own records), its length into *len. */
static inline const char *mproc__task_rec_body(const char *p, size_t *len)
{
	size_t size = mproc__task_rec_size(0, p);
	size_t hdr = size - MPROC__TASK_REC < MPROC__REC_ESC
	                     ? MPROC__TASK_REC
	                     : MPROC__TASK_REC + MPROC__REC_ESC_EXTRA;
	*len = size - hdr;
	return p + hdr;
}

/*
 * The escaped length at p (after a record's u32 0xFFFFFFFF), with
 * end - p bytes present: 0 and *len when it is whole, canonical (at least
 * 0xFFFFFFFF) and fits a size_t, else MPROC_EPROTO.
 */
static inline int mproc__rec_esc_read(const char *p, const char *end,
                                      size_t *len)
{
	uint64_t big;
	if ((size_t)(end - p) < MPROC__REC_ESC_EXTRA)
		return MPROC_EPROTO;
	memcpy(&big, p, sizeof big);
	if (big < MPROC__REC_ESC || big > SIZE_MAX)
		return MPROC_EPROTO;
	*len = (size_t)big;
	return 0;
}

/*
 * Step over the plain task record at *p, with end - *p bytes present:
 * 0, *p at its pickle of *len bytes, all of them present; MPROC_EPROTO
 * when a length runs past `end` (forged or cut bytes), *p then unchanged.
 */
static inline int mproc__task_rec_next(const char **p, const char *end,
                                       size_t *len)
{
	const char *q = *p;
	uint32_t l;
	if ((size_t)(end - q) < MPROC__TASK_REC)
		return MPROC_EPROTO;
	memcpy(&l, q, sizeof l);
	q += MPROC__TASK_REC;
	size_t n = l;
	if (__builtin_expect(l == MPROC__REC_ESC, 0)) {
		if (mproc__rec_esc_read(q, end, &n) < 0)
			return MPROC_EPROTO;
		q += MPROC__REC_ESC_EXTRA;
	}
	if ((size_t)(end - q) < n)
		return MPROC_EPROTO;
	*p = q;
	*len = n;
	return 0;
}

/* A record as read: its pickle at body (NULL: the record was refused),
 * len bytes. Two words, so that it comes back in registers. */
struct mproc__rec {
	const char *body;
	size_t len;
};

/* Out of line, off the path of small records: an escaped record, or a
 * refused one. */
struct mproc__rec mproc__result_rec_slow(const char *p, const char *end);

/*
 * The result record at p, with end - p bytes present: its pickle, every
 * byte of it present (the next record starts at body + len); body NULL
 * when a length runs past `end` (MPROC_EPROTO for the caller). A small
 * record costs the checks it always did and one compare for the escape.
 * Its status is mproc__result_rec_status(p), not checked here.
 */
static inline struct mproc__rec mproc__result_rec_read(const char *p,
                                                       const char *end)
{
	uint32_t len;
	if (__builtin_expect((size_t)(end - p) < MPROC__RESULT_REC, 0))
		return (struct mproc__rec){0};
	memcpy(&len, p, sizeof len);
	const char *b = p + MPROC__RESULT_REC;
	if (__builtin_expect(len == MPROC__REC_ESC ||
	                     (size_t)(end - b) < len, 0))
		return mproc__result_rec_slow(p, end);
	return (struct mproc__rec){b, len};
}

/* The status of the result record at p (read by mproc__result_rec_read). */
static inline uint32_t mproc__result_rec_status(const char *p)
{
	uint32_t status;
	memcpy(&status, p + MPROC__TASK_REC, sizeof status);
	return status;
}

/* Out of line: the escape's 8 bytes go in before a big pickle. */
int mproc__rec_close_big(struct mproc__buf *b, size_t rec, size_t hdr,
                         size_t len, uint32_t status);

/*
 * Close the task record that starts at b->data[rec]: its MPROC__TASK_REC
 * header bytes were reserved there and its pickle runs to b->len. A
 * pickle of 4 GiB - 1 bytes or more moves up by the escape's 8 bytes
 * (once, and only then). 0, or -ENOMEM when b cannot grow by 8 bytes.
 */
static inline int mproc__task_rec_close(struct mproc__buf *b, size_t rec)
{
	size_t n = b->len - rec - MPROC__TASK_REC;
	if (__builtin_expect(n >= MPROC__REC_ESC, 0))
		return mproc__rec_close_big(b, rec, MPROC__TASK_REC, n, 0);
	uint32_t l = (uint32_t)n;
	memcpy(b->data + rec, &l, sizeof l);
	return 0;
}

/* The same for a result record (MPROC__RESULT_REC header bytes reserved
 * at rec) with this status. */
static inline int mproc__result_rec_close(struct mproc__buf *b, size_t rec,
                                          uint32_t status)
{
	size_t n = b->len - rec - MPROC__RESULT_REC;
	if (__builtin_expect(n >= MPROC__REC_ESC, 0))
		return mproc__rec_close_big(b, rec, MPROC__RESULT_REC, n, status);
	uint32_t hdr[2] = {(uint32_t)n, status};
	memcpy(b->data + rec, hdr, sizeof hdr);
	return 0;
}

/*
 * Append a whole task record for the pickle p[0..n): its header (escaped
 * when n needs it) and the bytes, room made once for exactly both.
 * 0 or -ENOMEM.
 */
static inline int mproc__task_rec_append(struct mproc__buf *b, const void *p,
                                         size_t n)
{
	bool big = n >= MPROC__REC_ESC;
	size_t hdr = MPROC__TASK_REC + (big ? MPROC__REC_ESC_EXTRA : 0);
	if (n > SIZE_MAX - hdr)
		return -ENOMEM;
	int rc = mproc__buf_reserve(b, hdr + n);
	if (rc < 0)
		return rc;
	char *d = b->data + b->len;
	uint32_t l = big ? MPROC__REC_ESC : (uint32_t)n;
	memcpy(d, &l, sizeof l);
	if (big) {
		uint64_t n64 = n;
		memcpy(d + MPROC__TASK_REC, &n64, sizeof n64);
	}
	if (n)
		memcpy(d + hdr, p, n);
	b->len += hdr + n;
	return 0;
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
	uint64_t len = b->len - hdr_off - MPROC__FRAME_HDR;
	struct mproc__frame f = {
		.len_lo = (uint32_t)len,
		.type = type,
		.flags = flags,
		.count = count,
		.len_hi = (uint32_t)(len >> 32), /* mproc__frame_set_len */
		.id = id,
		.ref = ref,
	};
	memcpy(b->data + hdr_off, &f, sizeof f);
}

#endif
