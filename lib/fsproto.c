/*
 * fsproto.c - sending and receiving the fork server's messages
 * (fsproto.h), with descriptors passed as SCM_RIGHTS.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fsproto.h"

int mproc__fs_sendv(int fd, const struct mproc__fs_msg *m, const void *data,
                    size_t len, const int *fds, int nfds)
{
	struct iovec iov[2] = {{.iov_base = (void *)m, .iov_len = sizeof *m},
	                       {.iov_base = (void *)data, .iov_len = len}};
	union {
		char buf[CMSG_SPACE(MPROC__FS_MAXFDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	if (nfds) {
		memset(&u, 0, sizeof u);
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	ssize_t n;
	do {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)(sizeof *m + len) ? 0 : -EPIPE;
}

int mproc__fs_send(int fd, const struct mproc__fs_msg *m, const int *fds,
                   int nfds)
{
	return mproc__fs_sendv(fd, m, NULL, 0, fds, nfds);
}

int mproc__fs_recvv(int fd, struct mproc__fs_msg *m, void *data, size_t cap,
                    size_t *len, int *fds, int *nfds)
{
	struct iovec iov[2] = {{.iov_base = m, .iov_len = sizeof *m},
	                       {.iov_base = data, .iov_len = cap}};
	union {
		char buf[CMSG_SPACE(MPROC__FS_MAXFDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = cap ? 2 : 1,
	                     .msg_control = u.buf,
	                     .msg_controllen = sizeof u.buf};
	ssize_t n;
	*nfds = 0;
	do {
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (k > MPROC__FS_MAXFDS)
				k = MPROC__FS_MAXFDS;
			memcpy(fds, CMSG_DATA(c), k * sizeof(int));
			*nfds = (int)k;
		}
	}
	if (n < (ssize_t)sizeof *m || (msg.msg_flags & MSG_TRUNC)) {
		for (int i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		return -EPROTO;
	}
	if (len)
		*len = (size_t)n - sizeof *m;
	return 1;
}

int mproc__fs_recv(int fd, struct mproc__fs_msg *m, int *fds, int *nfds)
{
	/* The pool's messages carry at most two descriptors and no payload:
	 * anything more is not one of them. */
	int got[MPROC__FS_MAXFDS], ngot = 0;
	int r = mproc__fs_recvv(fd, m, NULL, 0, NULL, got, &ngot);
	*nfds = 0;
	for (int i = 0; i < ngot; i++) {
		if (i < 2)
			fds[(*nfds)++] = got[i];
		else
			close(got[i]);
	}
	return r;
}
