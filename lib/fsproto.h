/*
 * fsproto.h - the fork server's messages, between the manager
 * (be_forkserver.c) and the server (child.c), over a SOCK_SEQPACKET pair,
 * one message per packet:
 *   manager -> server  SPAWN {number}, with the worker's two pipe ends
 *                      (task read end, result write end) as SCM_RIGHTS
 *   server -> manager  SPAWNED {pid} or FAILED {errno}, in answer
 *   server -> manager  EXITED {pid, si_code, si_status} when a worker ends
 * and, for a Process started by the fork server (process.c, whose server
 * is its own, serving nothing else):
 *   program -> server  PROCESS, payload struct mproc__fs_process then the
 *                      argument's pickle (unless it comes in a memfd),
 *                      with the result pipe's and the exit pipe's write
 *                      ends and, for a large argument, its memfd
 *   server -> program  SPAWNED {pid} with the child's pidfd (none where
 *                      the kernel has no pidfd), or FAILED {errno}
 *   server -> exit pipe  struct mproc__fs_exit and the child's record
 *                      (struct mproc__process_rec, as much as is used),
 *                      once the server has reaped it; then it closes it
 */
#ifndef MPROC_FSPROTO_H
#define MPROC_FSPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"

enum { MPROC__FS_SPAWN = 1, MPROC__FS_SPAWNED, MPROC__FS_FAILED,
       MPROC__FS_EXITED, MPROC__FS_PROCESS };

/* At most this many descriptors come with one message. */
#define MPROC__FS_MAXFDS 3
/* A Process's argument up to this size travels in its PROCESS message;
 * a larger one in a memfd. */
#define MPROC__FS_INLINE_ARG (32u * 1024u)

struct mproc__fs_msg {
	uint32_t type;
	uint32_t number; /* SPAWN */
	int32_t pid;     /* SPAWNED, EXITED */
	int32_t code;    /* FAILED: errno; EXITED: si_code */
	int32_t status;  /* EXITED: si_status */
	int32_t region;  /* SPAWN: its region of the buffer arena, or -1 */
};

/* What a PROCESS request carries before the argument. */
struct mproc__fs_process {
	uint64_t fn;          /* mproc_task_fn: the server is a copy of the
	                       * program, so the pointer is valid there */
	uint64_t arglen;
	struct mproc_limits limits;
	uint32_t daemon;
	uint32_t arg_in_memfd;
	char name[64];
};

/* What the server writes on a Process's exit pipe, then `len` bytes of
 * its record. At most PIPE_BUF bytes in all: one write, never blocking. */
struct mproc__fs_exit {
	uint32_t len;
	int32_t code;         /* si_code */
	int32_t status;       /* si_status */
};

/* Send m with nfds (at most 2) descriptors; 0 or -EPIPE. */
int mproc__fs_send(int fd, const struct mproc__fs_msg *m, const int *fds,
                   int nfds);

/* One message: 1, 0 at end of file, or -errno; fds[2] get what came
 * (*nfds of them, close-on-exec). */
int mproc__fs_recv(int fd, struct mproc__fs_msg *m, int *fds, int *nfds);

/* The same with a payload after m (len bytes) and up to MPROC__FS_MAXFDS
 * descriptors. recvv: 1 (*len bytes of payload in data, *nfds
 * descriptors), 0 at end of file, -EPROTO for a short message or one
 * longer than cap (its descriptors closed), -errno. */
int mproc__fs_sendv(int fd, const struct mproc__fs_msg *m, const void *data,
                    size_t len, const int *fds, int nfds);
int mproc__fs_recvv(int fd, struct mproc__fs_msg *m, void *data, size_t cap,
                    size_t *len, int *fds, int *nfds);

#endif
