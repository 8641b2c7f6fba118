/*
 * server_process.c - the fork server's side of a Process (process.c): in
 * the server (server.c), fork a Process's child from the server's copy of
 * the program, and once the server has reaped it, hand its record and
 * exit status to the program on the Process's exit pipe.
 *
 * Runs in the server, which has one thread: it may allocate. The child
 * gets a record in memory shared with the server (records are kept for
 * the next child), closes every descriptor of the server's (its control
 * socket, signalfd, the other children's exit pipes) and runs as a forked
 * Process does (child.c, mproc__child_process).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#if HAVE_PIDFD_OPEN
#include <sys/pidfd.h>
#endif

#include "child.h"
#include "fsproto.h"
#include "server.h"
#include "shm.h"

struct sp_child {
	pid_t pid;
	int exit_fd;              /* write end of its exit pipe */
	struct mproc__process_rec *rec;
};

static struct sp_child *sp_kids;
static size_t sp_nkids, sp_cap;
#define SP_KEEP 8
static struct mproc__process_rec *sp_free[SP_KEEP];
static unsigned sp_nfree;

static struct mproc__process_rec *sp_rec_get(void)
{
	struct mproc__process_rec *r = sp_nfree ? sp_free[--sp_nfree]
	                                        : mproc__shm_alloc(MPROC__PROCESS_REC_SIZE);
	if (r) {
		mproc__status_reset(&r->status);
		atomic_store(&r->result_len, 0);
	}
	return r;
}

static void sp_rec_put(struct mproc__process_rec *r)
{
	if (sp_nfree < SP_KEEP)
		sp_free[sp_nfree++] = r;
	else
		mproc__shm_free(r, MPROC__PROCESS_REC_SIZE);
}

/* Fork the child of a valid request; 0 and its pid, or -errno. */
static int sp_fork(const int *own, size_t nown,
                   const struct mproc__fs_process *req, const void *arg,
                   const int *fds, int nfds, struct mproc__process_rec *rec,
                   pid_t *pid)
{
	/* The child closes the server's descriptors, its own exit pipe and
	 * argument memfd, and every other child's exit pipe: a copy kept
	 * by anyone would hold that pipe open. */
	size_t nclose = nown + (size_t)nfds - 1 + sp_nkids;
	int *closelist = calloc(nclose, sizeof *closelist);
	if (!closelist)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < nown; i++)
		closelist[k++] = own[i];
	for (int i = 1; i < nfds; i++)
		closelist[k++] = fds[i];
	for (size_t i = 0; i < sp_nkids; i++)
		closelist[k++] = sp_kids[i].exit_fd;
	char name[sizeof req->name];
	memcpy(name, req->name, sizeof name);
	name[sizeof name - 1] = '\0';
	struct mproc__process_plan plan = {
		.fn = (mproc_task_fn)(uintptr_t)req->fn,
		.arg = arg,
		.arglen = (size_t)req->arglen,
		.result_fd = fds[0],
		.close_fds = closelist,
		.nclose = k,
		.rec = rec,
		.parent = getpid(),
		.daemon = req->daemon != 0,
		.name = name,
		.limits = req->limits,
	};
	int rc = mproc__child_process(&plan, pid);
	free(closelist);
	return rc;
}

void mproc__server_process_spawn(int ctl, const int *own, size_t nown,
                                 const void *payload, size_t len,
                                 const int *fds, int nfds)
{
	struct mproc__fs_msg reply = {.type = MPROC__FS_FAILED, .code = EPROTO};
	struct mproc__fs_process req;
	const void *arg = NULL;
	void *map = MAP_FAILED;
	struct mproc__process_rec *rec = NULL;
	int pidfd = -1;
	pid_t pid = 0;
	if (len < sizeof req)
		goto answer;
	memcpy(&req, payload, sizeof req);
	if (nfds != (req.arg_in_memfd ? 3 : 2) || req.arglen == 0 ||
	    req.arglen > ((uint64_t)1 << 40))
		goto answer;
	if (req.arg_in_memfd) {
		map = mmap(NULL, (size_t)req.arglen, PROT_READ, MAP_PRIVATE,
		           fds[2], 0);
		if (map == MAP_FAILED) {
			reply.code = errno;
			goto answer;
		}
		arg = map;
	} else {
		if (len != sizeof req + req.arglen)
			goto answer;
		arg = (const char *)payload + sizeof req;
	}
	reply.code = ENOMEM;
	if (sp_nkids == sp_cap) {
		size_t cap = sp_cap ? 2 * sp_cap : 16;
		struct sp_child *k = reallocarray(sp_kids, cap, sizeof *k);
		if (!k)
			goto answer;
		sp_kids = k;
		sp_cap = cap;
	}
	if (!(rec = sp_rec_get()))
		goto answer;
	int rc = sp_fork(own, nown, &req, arg, fds, nfds, rec, &pid);
	if (rc < 0) {
		reply.code = -rc;
		goto answer;
	}
	/* Opened before the server can reap it: the pid is still its. */
#if HAVE_PIDFD_OPEN
	pidfd = pidfd_open(pid, 0);
#endif
	sp_kids[sp_nkids++] = (struct sp_child){pid, fds[1], rec};
	rec = NULL;
	reply = (struct mproc__fs_msg){.type = MPROC__FS_SPAWNED, .pid = pid};
answer:
	if (map != MAP_FAILED)
		munmap(map, (size_t)req.arglen);
	if (rec)
		sp_rec_put(rec);
	for (int i = 0; i < nfds; i++)
		if (i != 1 || reply.type != MPROC__FS_SPAWNED)
			close(fds[i]);
	int sent = mproc__fs_send(ctl, &reply, &pidfd, pidfd >= 0 ? 1 : 0);
	if (pidfd >= 0)
		close(pidfd);
	if (sent < 0)
		_exit(0); /* the program is gone */
}

bool mproc__server_process_exited(const siginfo_t *si)
{
	size_t i = 0;
	while (i < sp_nkids && sp_kids[i].pid != si->si_pid)
		i++;
	if (i == sp_nkids)
		return false;
	struct sp_child c = sp_kids[i];
	sp_kids[i] = sp_kids[--sp_nkids];
	/* The record as far as it is used: one write of at most PIPE_BUF,
	 * on a pipe nobody else writes, never blocks. */
	uint32_t rlen = atomic_load(&c.rec->result_len);
	if (rlen > MPROC__PROCESS_RESULT_MAX)
		rlen = 0;
	struct mproc__fs_exit e = {
		.len = (uint32_t)(offsetof(struct mproc__process_rec, result) + rlen),
		.code = si->si_code, .status = si->si_status};
	char buf[sizeof e + MPROC__PROCESS_REC_SIZE];
	memcpy(buf, &e, sizeof e);
	memcpy(buf + sizeof e, c.rec, e.len);
	ssize_t w;
	do {
		w = write(c.exit_fd, buf, sizeof e + e.len);
	} while (w < 0 && errno == EINTR);
	close(c.exit_fd);
	sp_rec_put(c.rec);
	return true;
}
