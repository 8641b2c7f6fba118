/*
 * buf.h - a growable byte buffer, shared by the codec and the wire layer.
 *
 * Invariant: data[0..len) is valid; cap is the allocated size; data is NULL
 * when cap is 0. Growth doubles, so appending is amortised O(1); a big
 * request (MPROC__BUF_EXACT or more) past twice the capacity gets what it
 * asks for and MPROC__BUF_SLACK more, not a power of two up to twice it.
 */
#ifndef MPROC_BUF_H
#define MPROC_BUF_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MPROC__BUF_EXACT ((size_t)64 << 20)
#define MPROC__BUF_SLACK ((size_t)1 << 20)
/* An empty buffer bigger than this gives its memory back at
 * mproc__buf_trim: one big message does not pin its size for good. */
#define MPROC__BUF_KEEP ((size_t)256 << 20)

struct mproc__buf {
	char *data;
	size_t len;
	size_t cap;
};

int mproc__buf_grow(struct mproc__buf *b, size_t need);

/* Make room for `extra` more bytes after len. 0 or -ENOMEM. */
static inline int mproc__buf_reserve(struct mproc__buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	if (b->len + extra <= b->cap)
		return 0;
	return mproc__buf_grow(b, b->len + extra);
}

static inline int mproc__buf_append(struct mproc__buf *b, const void *p,
                                    size_t n)
{
	int rc = mproc__buf_reserve(b, n);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Drop the first n bytes, keeping the rest at the front. */
static inline void mproc__buf_consume(struct mproc__buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static inline void mproc__buf_free(struct mproc__buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Free an empty buffer past MPROC__BUF_KEEP (see there). */
static inline void mproc__buf_trim(struct mproc__buf *b)
{
	if (__builtin_expect(b->cap > MPROC__BUF_KEEP, 0) && b->len == 0)
		mproc__buf_free(b);
}

#endif
