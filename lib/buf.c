/*
 * buf.c - growth of struct mproc__buf (the inline parts live in buf.h).
 */
#include "buf.h"

int mproc__buf_grow(struct mproc__buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 256;
	/* A big length known at once (a message's): that much and a little
	 * more for what follows it, not up to twice it. Growth still at
	 * least doubles, so appending stays amortised O(1). */
	if (need >= MPROC__BUF_EXACT && need / 2 > cap &&
	    need <= SIZE_MAX - MPROC__BUF_SLACK)
		cap = need + MPROC__BUF_SLACK;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}
