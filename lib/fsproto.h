/*
 * fsproto.h - the fork server's messages, between the manager
 * (be_forkserver.c) and the server (child.c), over a SOCK_SEQPACKET pair,
 * one message per packet:
 *   manager -> server  SPAWN {number}, with the worker's two pipe ends
 *                      (task read end, result write end) as SCM_RIGHTS
 *   server -> manager  SPAWNED {pid} or FAILED {errno}, in answer
 *   server -> manager  EXITED {pid, si_code, si_status} when a worker ends
 */
#ifndef MPROC_FSPROTO_H
#define MPROC_FSPROTO_H

#include <stdint.h>

enum { MPROC__FS_SPAWN = 1, MPROC__FS_SPAWNED, MPROC__FS_FAILED,
       MPROC__FS_EXITED };

struct mproc__fs_msg {
	uint32_t type;
	uint32_t number; /* SPAWN */
	int32_t pid;     /* SPAWNED, EXITED */
	int32_t code;    /* FAILED: errno; EXITED: si_code */
	int32_t status;  /* EXITED: si_status */
	int32_t region;  /* SPAWN: its region of the buffer arena, or -1 */
};

/* Send m with nfds (at most 2) descriptors; 0 or -EPIPE. */
int mproc__fs_send(int fd, const struct mproc__fs_msg *m, const int *fds,
                   int nfds);

/* One message: 1, 0 at end of file, or -errno; fds[2] get what came
 * (*nfds of them, close-on-exec). */
int mproc__fs_recv(int fd, struct mproc__fs_msg *m, int *fds, int *nfds);

#endif
