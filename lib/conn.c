/*
 * conn.c - Pipe and Connection (multiprocessing.Pipe,
 * multiprocessing.connection.Connection and wait): messages between two
 * processes, the values as pickles.
 *
 * A one-way Pipe is a pipe(2); a duplex one is two, one each way (a
 * socketpair's round trip costs about twice a pipe's on Linux). A send
 * blocks SIGPIPE in the calling thread for the write and takes back the
 * SIGPIPE a vanished reader raised, so a peer that is gone is
 * MPROC_EPEER and never a signal that would kill the program. A message
 * is a 4-byte length in host order (both ends are the same program) and
 * that many bytes; from 4 GiB - 1 bytes on, the length is 0xFFFFFFFF and
 * a u64 length follows (as Python's Connection does past 2 GiB, with -1
 * and a u64). The length is checked against the connection's limit
 * before anything is allocated for it.
 *
 * Invariants: in.data[0..consumed) is the last message handed out (values
 * and bytes point into it) and is dropped by the next receive; bytes past
 * it are read ahead and belong to later messages. A connection belongs to
 * one thread at a time, as Python's does.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "mproc.h"
#include "wire.h"

#define CONN_HDR 4u
#define CONN_DEFAULT_MAX ((size_t)1 << 30)

struct mproc_conn {
	int fd;                 /* the read end, or the write end of a
	                         * send-only connection: what poll watches */
	int wfd;                /* the write end; -1 on a receive-only one */
	bool readable, writable;
	size_t max_size;
	size_t consumed;        /* bytes of the last message handed out */
	struct mproc__buf in;
	struct mproc_decoder *dec;
	struct mproc_limits limits;
};

static int conn_new(struct mproc_conn **out, int rfd, int wfd,
                    const struct mproc_limits *limits)
{
	struct mproc_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->fd = rfd >= 0 ? rfd : wfd;
	c->wfd = wfd;
	c->readable = rfd >= 0;
	c->writable = wfd >= 0;
	if (limits)
		c->limits = *limits;
	c->max_size = c->limits.max_size ? c->limits.max_size : CONN_DEFAULT_MAX;
	*out = c;
	return 0;
}

static void conn_close_fds(int p1[2], int p2[2])
{
	for (int i = 0; i < 2; i++) {
		if (p1[i] >= 0)
			close(p1[i]);
		if (p2[i] >= 0)
			close(p2[i]);
	}
}

int mproc_pipe(struct mproc_conn **a, struct mproc_conn **b, bool duplex)
{
	return mproc_pipe_limits(a, b, duplex, NULL);
}

int mproc_pipe_limits(struct mproc_conn **a, struct mproc_conn **b,
                      bool duplex, const struct mproc_limits *limits)
{
	if (!a || !b)
		return -EINVAL;
	*a = *b = NULL;
	if (limits && (limits->max_size > MPROC_LIMITS_MAX_SIZE ||
	               limits->max_depth > 100000))
		return -EINVAL;
	int p1[2] = {-1, -1}, p2[2] = {-1, -1};
	if (pipe2(p1, O_CLOEXEC) < 0 || (duplex && pipe2(p2, O_CLOEXEC) < 0)) {
		int rc = -errno;
		conn_close_fds(p1, p2);
		return rc;
	}
	/* Python's Pipe(duplex=False): (receive-only, send-only). Duplex: a
	 * reads p1 and writes p2, b the other way round. */
	int rc = conn_new(a, p1[0], duplex ? p2[1] : -1, limits);
	if (rc == 0)
		rc = conn_new(b, duplex ? p2[0] : -1, p1[1], limits);
	if (rc < 0) {
		free(*a);
		*a = NULL;
		conn_close_fds(p1, p2);
	}
	return rc;
}

int mproc_conn_fileno(const struct mproc_conn *c)
{
	if (!c)
		return -EINVAL;
	return c->fd < 0 ? MPROC_ECLOSED : c->fd;
}


int mproc_conn_send_bytes(struct mproc_conn *c, const void *buf, size_t len)
{
	if (!c || (!buf && len))
		return -EINVAL;
	if (c->fd < 0)
		return MPROC_ECLOSED;
	if (!c->writable)
		return -EBADF;
	if (len > c->max_size)
		return MPROC_EPICKLE_TOOBIG;
	/* The length, escaped past 4 GiB - 2 (wire.h's record escape). */
	struct {
		uint32_t l;
		uint64_t big;
	} __attribute__((packed)) hdr = {(uint32_t)len, len};
	size_t hlen = CONN_HDR;
	if (len >= MPROC__REC_ESC) {
		hdr.l = MPROC__REC_ESC;
		hlen += MPROC__REC_ESC_EXTRA;
	}
	struct iovec iovs[2] = {{&hdr, hlen}, {(void *)buf, len}};
	struct iovec *iov = iovs;
	int niov = 2;
	/* A reader that is gone raises SIGPIPE in the writing thread: keep
	 * it blocked for the write, and take back the one the write raised.
	 * When the program blocks SIGPIPE itself, one of its own may be
	 * pending already, and is left alone. */
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	bool was_pending = false;
	if (sigismember(&old, SIGPIPE)) {
		sigset_t pend;
		sigpending(&pend);
		was_pending = sigismember(&pend, SIGPIPE);
	}
	int rc = 0;
	size_t left = hlen + len;
	while (left) {
		ssize_t n = writev(c->wfd, iov, niov);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = errno == EPIPE ? MPROC_EPEER : -errno;
			break;
		}
		left -= (size_t)n;
		/* A partial write: skip what went. */
		while (n > 0 && niov) {
			size_t k = (size_t)n < iov->iov_len ? (size_t)n
			                                    : iov->iov_len;
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= k;
			n -= (ssize_t)k;
			if (iov->iov_len == 0) {
				iov++;
				niov--;
			}
		}
	}
	if (rc == MPROC_EPEER && !was_pending) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int mproc_conn_send(struct mproc_conn *c, const void *pickle, size_t len)
{
	static const unsigned char none[] = {0x80, 0x05, 'N', '.'};
	if (!pickle && len)
		return -EINVAL;
	if (!pickle)
		return mproc_conn_send_bytes(c, none, sizeof none);
	return mproc_conn_send_bytes(c, pickle, len);
}

int mproc_conn_send_value(struct mproc_conn *c, const struct mproc_value *v)
{
	if (!c)
		return -EINVAL;
	struct mproc_writer *w;
	int rc = mproc_writer_new(&w, 5);
	if (rc < 0)
		return rc;
	const void *p;
	size_t len;
	rc = mproc_write_value(w, v);
	if (rc == 0)
		rc = mproc_writer_finish(w, &p, &len);
	if (rc == 0)
		rc = mproc_conn_send_bytes(c, p, len);
	mproc_writer_free(w);
	return rc;
}

/* Drop the message handed out last. */
static void conn_drop_last(struct mproc_conn *c)
{
	if (c->consumed) {
		mproc__buf_consume(&c->in, c->consumed);
		c->consumed = 0;
		mproc__buf_trim(&c->in);
	}
}

/* The length of the next message and of its header when that is
 * buffered: 1, 0 when more bytes are needed, MPROC_EPICKLE_TOOBIG past
 * the limit, MPROC_EPROTO for an escape of less than 4 GiB - 1. */
static int conn_peek_len(struct mproc_conn *c, size_t *len, size_t *hlen)
{
	if (c->in.len < CONN_HDR)
		return 0;
	uint32_t hdr;
	memcpy(&hdr, c->in.data, CONN_HDR);
	*len = hdr;
	*hlen = CONN_HDR;
	if (hdr == MPROC__REC_ESC) {
		if (c->in.len < CONN_HDR + MPROC__REC_ESC_EXTRA)
			return 0;
		uint64_t big;
		memcpy(&big, c->in.data + CONN_HDR, sizeof big);
		if (big < MPROC__REC_ESC)
			return MPROC_EPROTO;
		if (big > c->max_size)
			return MPROC_EPICKLE_TOOBIG;
		*len = (size_t)big;
		*hlen += MPROC__REC_ESC_EXTRA;
	}
	return *len > c->max_size ? MPROC_EPICKLE_TOOBIG : 1;
}

static int conn_read_more(struct mproc_conn *c)
{
	ssize_t n = mproc__wire_read(c->fd, &c->in);
	if (n > 0)
		return 0;
	if (n == 0)
		return MPROC_EEOF;
	return (int)n;
}

int mproc_conn_recv_bytes(struct mproc_conn *c, const void **buf, size_t *len)
{
	if (!c || !buf || !len)
		return -EINVAL;
	if (c->fd < 0)
		return MPROC_ECLOSED;
	if (!c->readable)
		return -EBADF;
	conn_drop_last(c);
	size_t n = 0, h = CONN_HDR;
	int rc;
	while ((rc = conn_peek_len(c, &n, &h)) == 0 ||
	       (rc == 1 && c->in.len - h < n)) {
		/* The whole message's room at once, not doubling up to it. */
		if (rc == 1 && c->in.cap < h + n &&
		    mproc__buf_reserve(&c->in, h + n - c->in.len) < 0)
			return -ENOMEM;
		rc = conn_read_more(c);
		if (rc < 0)
			return rc;
	}
	if (rc < 0) {
		/* Nothing can follow a header the connection refused: the
		 * stream has lost its framing. Close our end of it. */
		mproc_conn_close(c);
		return rc;
	}
	*buf = c->in.data + h;
	*len = n;
	c->consumed = h + n;
	return 0;
}

int mproc_conn_recv(struct mproc_conn *c, const struct mproc_value **out)
{
	if (!c || !out)
		return -EINVAL;
	*out = NULL;
	if (!c->dec) {
		int rc = mproc_decoder_new(&c->dec, &c->limits);
		if (rc < 0)
			return rc;
	}
	const void *p;
	size_t n;
	int rc = mproc_conn_recv_bytes(c, &p, &n);
	if (rc < 0)
		return rc;
	return mproc_decode(c->dec, p, n, out);
}

const char *mproc_conn_error(const struct mproc_conn *c)
{
	return c && c->dec ? mproc_decoder_error(c->dec) : "";
}

/* Bytes of a message are here already (read ahead), or the fd is. */
static bool conn_buffered(const struct mproc_conn *c)
{
	return c->in.len > c->consumed;
}

int mproc_conn_poll(struct mproc_conn *c, double timeout)
{
	if (!c)
		return -EINVAL;
	bool ready;
	struct mproc_conn *one[1] = {c};
	int rc = mproc_wait(one, 1, timeout, &ready);
	return rc < 0 ? rc : rc > 0;
}

int mproc_wait(struct mproc_conn *const *conns, size_t n, double timeout,
               bool *ready)
{
	if (!conns || !ready || n == 0 || n > 65536 || isnan(timeout))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!conns[i])
			return -EINVAL;
		if (conns[i]->fd < 0)
			return MPROC_ECLOSED;
		if (!conns[i]->readable)
			return -EBADF;
	}
	struct pollfd small[16];
	struct pollfd *pfd = n <= 16 ? small : calloc(n, sizeof *pfd);
	if (!pfd)
		return -ENOMEM;
	uint64_t deadline = mproc__deadline(timeout);
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		ready[i] = conn_buffered(conns[i]);
		count += ready[i];
		pfd[i] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
	}
	for (;;) {
		uint64_t now = mproc__now_ns();
		struct timespec ts = mproc__ts_left(deadline, now);
		/* With data already read ahead, only look, never wait. */
		struct timespec zero = {0, 0};
		int r = ppoll(pfd, n, count ? &zero
		                    : deadline == UINT64_MAX ? NULL : &ts, NULL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			count = -errno;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (pfd[i].revents && !ready[i]) {
				/* Readable, end of file or an error: a read
				 * now answers at once, as Python's wait says. */
				ready[i] = true;
				count++;
			}
		break;
	}
	if (pfd != small)
		free(pfd);
	return count;
}

int mproc_conn_close(struct mproc_conn *c)
{
	if (!c)
		return -EINVAL;
	if (c->fd >= 0 && c->fd != c->wfd)
		close(c->fd);
	if (c->wfd >= 0)
		close(c->wfd);
	c->fd = c->wfd = -1;
	return 0;
}

void mproc_conn_free(struct mproc_conn *c)
{
	if (!c)
		return;
	mproc_conn_close(c);
	mproc__buf_free(&c->in);
	mproc_decoder_free(c->dec);
	free(c);
}

bool mproc_conn_closed(const struct mproc_conn *c)
{
	return !c || c->fd < 0;
}

bool mproc_conn_readable(const struct mproc_conn *c)
{
	return c && c->readable;
}

bool mproc_conn_writable(const struct mproc_conn *c)
{
	return c && c->writable;
}
