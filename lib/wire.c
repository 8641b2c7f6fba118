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
	uint64_t len = mproc__frame_len(f);
	if ((f->type != MPROC__F_TASK && f->type != MPROC__F_RESULT) ||
	    len > max || f->zero != 0)
		return MPROC_EPROTO;
	if (avail - MPROC__FRAME_HDR < len)
		return 0;
	*payload = in->data + *off + MPROC__FRAME_HDR;
	*off += MPROC__FRAME_HDR + (size_t)len;
	return 1;
}

int mproc__wire_expect(struct mproc__buf *in, size_t off, size_t max)
{
	if (in->len - off < MPROC__FRAME_HDR)
		return 0;
	struct mproc__frame f;
	memcpy(&f, in->data + off, sizeof f);
	uint64_t len = mproc__frame_len(&f);
	size_t have = in->len - off - MPROC__FRAME_HDR;
	/* A bad header is mproc__wire_next's to refuse. */
	if (len <= (1u << 20) || len > max || have >= len)
		return 0;
	return mproc__buf_reserve(in, (size_t)(len - have) + (64u << 10));
}

struct mproc__rec mproc__result_rec_slow(const char *p, const char *end)
{
	uint32_t rec[2];
	memcpy(rec, p, sizeof rec);
	const char *b = p + MPROC__RESULT_REC;
	size_t n = rec[0];
	if (rec[0] == MPROC__REC_ESC) {
		if (mproc__rec_esc_read(b, end, &n) < 0)
			return (struct mproc__rec){0};
		b += MPROC__REC_ESC_EXTRA;
	}
	if ((size_t)(end - b) < n)
		return (struct mproc__rec){0};
	return (struct mproc__rec){b, n};
}

int mproc__rec_close_big(struct mproc__buf *b, size_t rec, size_t hdr,
                         size_t len, uint32_t status)
{
	int rc = mproc__buf_reserve(b, MPROC__REC_ESC_EXTRA);
	if (rc < 0)
		return rc;
	char *p = b->data + rec;
	memmove(p + hdr + MPROC__REC_ESC_EXTRA, p + hdr, len);
	uint32_t words[2] = {MPROC__REC_ESC, status};
	uint64_t n = len;
	memcpy(p, words, hdr);
	memcpy(p + hdr, &n, sizeof n);
	b->len += MPROC__REC_ESC_EXTRA;
	return 0;
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
