/*
 * wire.c - reading and writing frames over the pool's channels.
 *
 * The layer below the pool and the worker: it knows frame headers and
 * partial reads and writes, nothing about tasks. Every length is checked
 * before it is trusted; a bad header is MPROC_EPROTO, never a large
 * allocation or a read past the buffer.
 */
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#include "mproc.h"
#include "wire.h"

int mproc__wire_next(const struct mproc__buf *in, size_t *off,
                     struct mproc__frame *f, const char **payload, size_t max)
{
	size_t avail = in->len - *off;
	if (avail < MPROC__FRAME_HDR)
		return 0;
	memcpy(f, in->data + *off, sizeof *f);
	if ((f->type != MPROC__F_TASK && f->type != MPROC__F_RESULT) ||
	    f->len > max || f->zero != 0 || f->zero2 != 0)
		return MPROC_EPROTO;
	if (avail - MPROC__FRAME_HDR < f->len)
		return 0;
	*payload = in->data + *off + MPROC__FRAME_HDR;
	*off += MPROC__FRAME_HDR + f->len;
	return 1;
}

ssize_t mproc__wire_read(int fd, struct mproc__buf *in)
{
	/* Read in large gulps: one syscall should bring a whole batch. */
	int rc = mproc__buf_reserve(in, 64 * 1024);
	if (rc < 0)
		return rc;
	for (;;) {
		ssize_t n = read(fd, in->data + in->len, in->cap - in->len);
		if (n > 0) {
			in->len += (size_t)n;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int mproc__wire_write(int fd, const struct mproc__buf *out, size_t *sent)
{
	while (*sent < out->len) {
		const char *p = out->data + *sent;
		size_t n = out->len - *sent;
		ssize_t w = write(fd, p, n);
		if (w >= 0) {
			*sent += (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	return 0;
}
