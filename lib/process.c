/*
 * process.c - Process (multiprocessing.Process): one task function run in
 * a child process, its return value or raised error read back after join,
 * and, when it crashes, the pool's crash report.
 *
 * The child (child.c, mproc__child_process) has a record in shared memory
 * (struct mproc__process_rec): its crash handler fills the crash part, and
 * a result that fits is written there too; a larger one goes down the
 * result pipe, which join reads as the child writes (a large result never
 * blocks it). The parent keeps the pipe's write end open itself, so the
 * child's exit never shows as an end of file on it: a child with a small
 * result wakes its parent once, at its exit (the pidfd), not once for the
 * end of file and again for the exit. Records are kept for the next
 * Process rather than unmapped (a shared mapping made and dropped per
 * child was a tenth of the parent's time).
 *
 * Start methods. MPROC_START_FORK: forked here; join waits for the pidfd
 * and reaps. MPROC_START_FORKSERVER: forked by the program's Process
 * server (server.c and server_process.c, fsproto.h), started by the first
 * such Process and ending when the program does (it sees its control
 * socket close). The server is the real parent: it reaps the child and
 * writes how it ended, with its record, on the Process's own exit pipe,
 * which join waits for; the pidfd comes from the server, which opened it
 * before it could reap the child, so signals never reach a reused pid.
 *
 * Invariants: `pid` is signalled only before the child is reaped (until
 * then the pid cannot be reused), or through the pidfd; after reaping,
 * `ended` is set and nothing but reading the outcome happens. A handle is
 * used by one thread at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "chan.h"
#include "child.h"
#include "clock.h"
#include "crash.h"
#include "fdreg.h"
#include "fsproto.h"
#include "pickle.h"
#include "server.h"
#include "shm.h"
#include "status.h"

struct mproc_process {
	struct mproc__proc proc;  /* pid, pidfd (exit_fd); its signal path */
	int result_fd;            /* read end, non-blocking; -1 at its end */
	int result_wr;            /* its write end, kept: see the top */
	int server_fd;            /* fork server: the exit pipe's read end */
	bool forkserver;
	bool ended;               /* reaped */
	int exitcode;
	char name[64];
	struct mproc__process_rec *rec; /* shared with the child */
	struct mproc__buf out;    /* what the child wrote down the pipe */
	struct mproc__buf exit;   /* fork server: what came on the exit pipe */
	struct mproc_decoder *dec;
	struct mproc_limits limits;
	struct mproc_result res;
	struct mproc_error err;
	struct mproc_crash crash;
	char msg[200];
	char *report;             /* made for a crash only */
};

static atomic_uint process_counter;

static const unsigned char process_none[] = {0x80, 0x05, 'N', '.'};

/* ---- records ------------------------------------------------------------ */

/* The program's Process server: started by the first forkserver Process,
 * a copy of the program as it was then. Requests are one at a time (the
 * mutex), each answered at once; outcomes come on each Process's own exit
 * pipe, so no reply is ever for another thread. */
static struct {
	pthread_mutex_t mu;
	pid_t owner;    /* the process that started it; another has none */
	pid_t pid;
	int fd;         /* control socket */
} server = {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1};

/* Records of ended Processes, kept for the next ones: making and dropping
 * a shared mapping (a shmem inode) per child costs more than the rest of
 * the parent's side. Owned by the process that made them: a child of this
 * program starts its own list (its copies are shared with the parent's). */
#define REC_KEEP 8
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mproc__process_rec *rec_free[REC_KEEP];
static unsigned rec_nfree;
static pid_t rec_owner;

/* In the child of any fork (the fork server's among them, forked with
 * server.mu held): the locks are free there, whatever held them in the
 * parent; what they guard belongs to the parent (the owner checks). */
static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void process_atfork_child(void)
{
	pthread_mutex_init(&rec_mu, NULL);
	pthread_mutex_init(&server.mu, NULL);
}

static void process_init(void)
{
	pthread_atfork(NULL, NULL, process_atfork_child);
}

static struct mproc__process_rec *rec_get(void)
{
	struct mproc__process_rec *r = NULL;
	pid_t self = getpid();
	pthread_mutex_lock(&rec_mu);
	if (rec_owner != self) {
		/* Inherited from the parent, which still uses them: drop this
		 * process's mappings of them. */
		for (unsigned i = 0; i < rec_nfree; i++)
			mproc__shm_free(rec_free[i], MPROC__PROCESS_REC_SIZE);
		rec_nfree = 0;
		rec_owner = self;
	}
	if (rec_nfree)
		r = rec_free[--rec_nfree];
	pthread_mutex_unlock(&rec_mu);
	if (!r)
		r = mproc__shm_alloc(MPROC__PROCESS_REC_SIZE);
	if (r) {
		mproc__status_reset(&r->status);
		atomic_store_explicit(&r->result_len, 0, memory_order_relaxed);
	}
	return r;
}

/* Give a record back once its child is reaped (nothing writes it then: a
 * child of the child never does, process_main checks its pid). */
static void rec_put(struct mproc__process_rec *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&rec_mu);
	if (rec_owner == getpid() && rec_nfree < REC_KEEP) {
		rec_free[rec_nfree++] = r;
		r = NULL;
	}
	pthread_mutex_unlock(&rec_mu);
	mproc__shm_free(r, MPROC__PROCESS_REC_SIZE);
}

/* ---- the fork server ---------------------------------------------------- */

/* Lock held: the server's socket, started if need be; or -errno. */
static int server_get_locked(void)
{
	if (server.owner == getpid() && server.fd >= 0)
		return server.fd;
	/* A child of the program: the socket it inherited is closed (an
	 * mproc child closes every registered descriptor) or another's. */
	server.fd = -1;
	int sv[2] = {-1, -1};
	int *closelist = NULL;
	int rc;
	mproc__fdreg_lock();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		goto out;
	}
	struct mproc__server_plan sp = {
		.ctl = sv[1],
		/* Ends with the program either way (its socket closes); the
		 * death signal too when the main thread starts it. */
		.pdeathsig = gettid() == getpid(),
		.manager = getpid(),
	};
	closelist = mproc__fdreg_list_locked(&sv[0], 1, &sp.nclose);
	if (!closelist || mproc__fdreg_reserve_locked(1) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	sp.close_fds = closelist;
	pid_t pid;
	if ((rc = mproc__server_fork(&sp, &pid)) < 0)
		goto out;
	server.pid = pid;
	server.owner = getpid();
	server.fd = sv[0];
	sv[0] = -1;
	(void)mproc__fdreg_add_locked(server.fd);
	rc = server.fd;
out:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	mproc__fdreg_unlock();
	free(closelist);
	return rc;
}

/* Lock held: forget a server that hung up; the next start makes another.
 * Its children are its own to reap (it is gone: init's). */
static void server_lost_locked(void)
{
	mproc__fdreg_close(&server.fd);
	int rc;
	do {
		rc = waitpid(server.pid, NULL, 0);
	} while (rc < 0 && errno == EINTR);
	server.owner = 0;
}

/* A memfd holding the argument, for one too large for a message. */
static int server_arg_memfd(const void *arg, size_t len)
{
	int fd = memfd_create("mproc-arg", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	const char *p = arg;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int rc = w < 0 ? -errno : -EIO;
			close(fd);
			return rc;
		}
		p += w;
		len -= (size_t)w;
	}
	return fd;
}

/* Have the server fork the child: p's pipes made, its pid and pidfd set. */
static int server_spawn(struct mproc_process *p, mproc_task_fn fn,
                        const void *arg, size_t arglen,
                        const struct mproc_process_opts *opts)
{
	struct mproc__fs_process req = {
		.fn = (uint64_t)(uintptr_t)fn,
		.arglen = arglen,
		.limits = opts->limits,
		.daemon = opts->daemon,
		.arg_in_memfd = arglen > MPROC__FS_INLINE_ARG,
	};
	snprintf(req.name, sizeof req.name, "%s", p->name);
	unsigned char *msg = malloc(sizeof req + (req.arg_in_memfd ? 0 : arglen));
	if (!msg)
		return -ENOMEM;
	memcpy(msg, &req, sizeof req);
	size_t msglen = sizeof req;
	if (!req.arg_in_memfd) {
		memcpy(msg + sizeof req, arg, arglen);
		msglen += arglen;
	}
	int res[2] = {-1, -1}, ex[2] = {-1, -1}, mfd = -1;
	int rc;
	pthread_mutex_lock(&server.mu);
	int ctl = server_get_locked();
	if (ctl < 0) {
		rc = ctl;
		goto out;
	}
	/* Every one registered before another thread can fork, so that no
	 * child keeps a copy (one of the exit pipe's write end would hold it
	 * open); the server's own children close them in the server. */
	mproc__fdreg_lock();
	if (req.arg_in_memfd && (rc = mfd = server_arg_memfd(arg, arglen)) < 0) {
		mproc__fdreg_unlock();
		goto out;
	}
	if (pipe2(res, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
		rc = -errno;
		mproc__fdreg_unlock();
		goto out;
	}
	if ((rc = mproc__fdreg_reserve_locked(5)) < 0) {
		mproc__fdreg_unlock();
		goto out;
	}
	(void)mproc__fdreg_add_locked(res[0]);
	(void)mproc__fdreg_add_locked(res[1]);
	(void)mproc__fdreg_add_locked(ex[0]);
	(void)mproc__fdreg_add_locked(ex[1]);
	if (mfd >= 0)
		(void)mproc__fdreg_add_locked(mfd);
	mproc__fdreg_unlock();
	p->result_fd = res[0];
	p->result_wr = res[1];
	p->server_fd = ex[0];
	res[0] = res[1] = ex[0] = -1;

	struct mproc__fs_msg m = {.type = MPROC__FS_PROCESS};
	int fds[3] = {p->result_wr, ex[1], mfd};
	if (mproc__fs_sendv(ctl, &m, msg, msglen, fds, mfd >= 0 ? 3 : 2) < 0) {
		server_lost_locked();
		rc = -EPIPE;
		goto out;
	}
	int got[MPROC__FS_MAXFDS], ngot = 0;
	int r = mproc__fs_recvv(ctl, &m, NULL, 0, NULL, got, &ngot);
	if (r <= 0) {
		server_lost_locked();
		rc = -EPIPE;
		goto out;
	}
	if (m.type == MPROC__FS_SPAWNED) {
		p->proc.pid = m.pid;
		for (int i = 0; i < ngot; i++) {
			if (p->proc.exit_fd < 0 && mproc__fdreg_add(got[i]) == 0)
				p->proc.exit_fd = got[i];
			else
				close(got[i]);
		}
		rc = 0;
	} else {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		rc = m.type == MPROC__FS_FAILED && m.code > 0 ? -m.code : -EAGAIN;
	}
out:
	pthread_mutex_unlock(&server.mu);
	/* res[0] and res[1] are unregistered only when pipe2 failed after
	 * them (before the registry saw them), as is ex[] then. */
	bool registered = p->server_fd >= 0;
	for (int i = 0; i < 2; i++) {
		if (res[i] >= 0)
			close(res[i]);
		if (registered)
			mproc__fdreg_close(&ex[i]);
		else if (ex[i] >= 0)
			close(ex[i]);
	}
	if (registered)
		mproc__fdreg_close(&mfd);
	else if (mfd >= 0)
		close(mfd);
	free(msg);
	return rc;
}

/* ---- starting ------------------------------------------------------------ */

/* Fork the child here (MPROC_START_FORK). */
static int fork_spawn(struct mproc_process *p, mproc_task_fn fn,
                      const void *arg, size_t arglen,
                      const struct mproc_process_opts *opts)
{
	int fds[2];
	int *closelist = NULL;
	int rc;
	/* The registry stays locked from the pipe to the fork, as for a
	 * worker: no pool forks a child in between that would keep the
	 * write end. */
	mproc__fdreg_lock();
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = -errno;
		mproc__fdreg_unlock();
		return rc;
	}
	struct mproc__process_plan plan = {
		.fn = fn,
		.arg = arg,
		.arglen = arglen,
		.result_fd = fds[1],
		.rec = p->rec,
		.parent = getpid(),
		.daemon = opts->daemon,
		.name = p->name,
		.limits = opts->limits,
	};
	/* The child closes the pools' descriptors and the read end; it
	 * keeps everything else the program made, as a forked Python child
	 * does (connections and queues to talk through). */
	closelist = mproc__fdreg_list_locked(&fds[0], 1, &plan.nclose);
	if (!closelist || mproc__fdreg_reserve_locked(2) < 0) {
		rc = -ENOMEM;
	} else {
		plan.close_fds = closelist;
		/* `arg` is the caller's: the child reads its copy of this
		 * process's memory, made by fork before the call returns. */
		rc = mproc__child_process(&plan, &p->proc.pid);
	}
	if (rc == 0) {
		(void)mproc__fdreg_add_locked(fds[0]);
		(void)mproc__fdreg_add_locked(fds[1]);
	}
	mproc__fdreg_unlock();
	free(closelist);
	if (rc < 0) {
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	p->result_fd = fds[0];
	p->result_wr = fds[1];
	p->proc.exit_fd = mproc__proc_pidfd(p->proc.pid);
	return 0;
}

static void process_release(struct mproc_process *p);

int mproc_process_start(struct mproc_process **out, mproc_task_fn fn,
                        const void *arg, size_t arglen,
                        const struct mproc_process_opts *opts)
{
	static const struct mproc_process_opts defaults = {0};
	if (!out || !fn || (!arg && arglen))
		return -EINVAL;
	*out = NULL;
	if (!opts)
		opts = &defaults;
	/* 0.3 is the first layout: a size is it, or 0. */
	if (opts->size && opts->size != sizeof *opts)
		return opts->size < sizeof *opts ? -EINVAL : -E2BIG;
	if (opts->start_method != MPROC_START_FORK &&
	    opts->start_method != MPROC_START_FORKSERVER)
		return -EINVAL;
	if (opts->limits.max_size > MPROC_LIMITS_MAX_SIZE)
		return -EINVAL;
	if (!arg) {
		arg = process_none;
		arglen = sizeof process_none;
	}

	pthread_once(&process_once, process_init);
	struct mproc_process *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->proc.exit_fd = -1;
	p->result_fd = -1;
	p->result_wr = -1;
	p->server_fd = -1;
	p->limits = opts->limits;
	p->forkserver = opts->start_method == MPROC_START_FORKSERVER;
	unsigned n = atomic_fetch_add(&process_counter, 1) + 1;
	if (opts->name)
		snprintf(p->name, sizeof p->name, "%s", opts->name);
	else
		snprintf(p->name, sizeof p->name, "Process-%u", n);
	int rc = -ENOMEM;
	/* With the fork server the record the child writes is the server's;
	 * this one gets a copy of it at the end. */
	p->rec = rec_get();
	if (!p->rec)
		goto fail;
	rc = p->forkserver ? server_spawn(p, fn, arg, arglen, opts)
	                   : fork_spawn(p, fn, arg, arglen, opts);
	if (rc < 0)
		goto fail;
	fcntl(p->result_fd, F_SETFL, O_NONBLOCK);
	if (p->server_fd >= 0)
		fcntl(p->server_fd, F_SETFL, O_NONBLOCK);
	*out = p;
	return 0;

fail:
	p->ended = true;
	process_release(p);
	return rc;
}

/* ---- waiting and reaping -------------------------------------------------- */

/* Read what the child wrote down the pipe so far (a large result). */
static void process_read(struct mproc_process *p)
{
	while (p->result_fd >= 0) {
		/* Nothing is allocated until something comes: most results
		 * are in the record. */
		char tmp[4096];
		bool room = p->out.cap - p->out.len >= sizeof tmp;
		char *dst = room ? p->out.data + p->out.len : tmp;
		ssize_t n = read(p->result_fd, dst,
		                 room ? p->out.cap - p->out.len : sizeof tmp);
		if (n > 0) {
			if (room)
				p->out.len += (size_t)n;
			else if (mproc__buf_append(&p->out, tmp, (size_t)n) < 0)
				break;
			/* A large result: the rest in large gulps. */
			if (mproc__buf_reserve(&p->out, 64 * 1024) < 0)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* End of file (only once the program's own write end is
		 * closed), an error, no memory: what arrived is the outcome. */
		break;
	}
	mproc__fdreg_close(&p->result_fd);
}

/* The result the child wrote, or how it died, into p->res. */
static void process_outcome(struct mproc_process *p, const siginfo_t *si)
{
	p->res = (struct mproc_result){.status = MPROC_CRASHED, .attempts = 1};
	p->crash = (struct mproc_crash){.exit_status = -1};
	if (si->si_code == CLD_EXITED) {
		p->exitcode = si->si_status;
		p->crash.exit_status = si->si_status;
	} else {
		p->exitcode = -si->si_status;
		p->crash.signal = si->si_status;
		p->crash.core_dumped = si->si_code == CLD_DUMPED;
	}
	/* The result: in the record when small, else what the pipe brought.
	 * The length is the child's word: checked before it is used. */
	const unsigned char *data = (const unsigned char *)p->out.data;
	size_t len = p->out.len;
	uint32_t rlen = atomic_load_explicit(&p->rec->result_len,
	                                     memory_order_acquire);
	if (rlen && rlen <= MPROC__PROCESS_RESULT_MAX) {
		data = p->rec->result;
		len = rlen;
	}
	if (len >= 1) {
		int st = data[0];
		const struct mproc_value *v = mproc__decode_tiny(data + 1, len - 1);
		int rc = 0;
		if (!v) {
			rc = mproc_decoder_new(&p->dec, &p->limits);
			if (rc == 0)
				rc = mproc_decode(p->dec, data + 1, len - 1, &v);
		}
		if (rc == 0 && st == MPROC_OK) {
			p->res.status = MPROC_OK;
			p->res.value = v;
			return;
		}
		const struct mproc_value *t = NULL, *m = NULL;
		const char *s;
		size_t slen;
		p->res.status = MPROC_RAISED;
		p->res.error = &p->err;
		p->err.type = "UnpicklingError";
		p->err.msg = "the process's result could not be read";
		if (rc == 0 && st == MPROC_RAISED && p->dec &&
		    mproc_value_item(v, 0, &t) == 0 &&
		    mproc_value_item(v, 1, &m) == 0) {
			if (mproc_value_str(t, &s, &slen) == 0)
				p->err.type = mproc__decoder_strdup(p->dec, s, slen);
			if (mproc_value_str(m, &s, &slen) == 0)
				p->err.msg = mproc__decoder_strdup(p->dec, s, slen);
		}
		return;
	}
	/* No result: it exited without returning, or died. */
	struct mproc__status *st = &p->rec->status;
	size_t rsize = MPROC__MAX_FRAMES * 160;
	if (p->crash.signal &&
	    atomic_load_explicit(&st->crash_signal, memory_order_acquire)) {
		p->crash.si_code = st->crash_code;
		p->crash.addr = (uintptr_t)st->crash_addr;
		p->crash.rss = (size_t)st->crash_rss;
		if (st->nframes > MPROC__MAX_FRAMES)
			st->nframes = MPROC__MAX_FRAMES;
		p->report = malloc(rsize);
		if (p->report) {
			mproc__crash_format(st, p->report, rsize);
			if (p->report[0])
				p->crash.report = p->report;
		}
	}
	if (p->crash.signal) {
		const char *abbrev = sigabbrev_np(p->crash.signal);
		snprintf(p->msg, sizeof p->msg,
		         "process killed by signal %d (SIG%s: %s)%s",
		         p->crash.signal, abbrev ? abbrev : "?",
		         strsignal(p->crash.signal),
		         p->crash.core_dumped ? ", core dumped" : "");
	} else {
		snprintf(p->msg, sizeof p->msg,
		         "process exited with status %d before returning",
		         p->crash.exit_status);
	}
	p->err.type = "ProcessCrashed";
	p->err.msg = p->msg;
	p->err.crash = &p->crash;
	p->res.error = &p->err;
}

/* Fork server: read the exit pipe; true once it has said how the child
 * ended (*si, and the record copied into p->rec), or has ended without
 * saying (the server died: the status is lost, as when the program
 * reaped a child itself). */
static bool server_outcome(struct mproc_process *p, bool block, siginfo_t *si)
{
	struct mproc__fs_exit e;
	for (;;) {
		/* Done once the whole of it is here (the server closes the
		 * pipe after it, but a copy of its write end elsewhere must
		 * not keep this waiting for the end of file). */
		if (p->exit.len >= sizeof e) {
			memcpy(&e, p->exit.data, sizeof e);
			if (p->exit.len >= sizeof e + e.len)
				break;
		}
		char tmp[PIPE_BUF + 64];
		ssize_t n = read(p->server_fd, tmp, sizeof tmp);
		if (n > 0) {
			if (mproc__buf_append(&p->exit, tmp, (size_t)n) < 0)
				n = 0; /* no memory: as lost */
			else
				continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!block)
				return false;
			struct pollfd pfd = {.fd = p->server_fd, .events = POLLIN};
			poll(&pfd, 1, -1);
			continue;
		}
		break; /* end of file */
	}
	si->si_code = CLD_EXITED;
	si->si_status = 255;
	if (p->exit.len >= sizeof e) {
		memcpy(&e, p->exit.data, sizeof e);
		if (e.len <= MPROC__PROCESS_REC_SIZE &&
		    p->exit.len == sizeof e + e.len) {
			si->si_code = e.code;
			si->si_status = e.status;
			memcpy(p->rec, p->exit.data + sizeof e, e.len);
		}
	}
	return true;
}

/* Reap the child if it has ended (blocking: wait for it). true if it has. */
static bool process_reap(struct mproc_process *p, bool block)
{
	if (p->ended)
		return true;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (p->forkserver) {
		if (!server_outcome(p, block, &si))
			return false;
	} else {
		int rc;
		do {
			rc = waitid(P_PID, (id_t)p->proc.pid, &si,
			            WEXITED | (block ? 0 : WNOHANG));
		} while (rc < 0 && errno == EINTR);
		if (rc < 0 && errno == ECHILD) {
			/* Reaped by someone else (the program's own
			 * waitpid(-1)): how it ended is lost; say so, never
			 * wait forever. */
			si.si_code = CLD_EXITED;
			si.si_status = 255;
		} else if (rc < 0 || si.si_pid == 0) {
			return false; /* running */
		}
	}
	/* It has exited: what it wrote is all in the pipe (a child of its
	 * own may write more: that is not its result). */
	process_read(p);
	mproc__fdreg_close(&p->result_fd);
	mproc__fdreg_close(&p->result_wr);
	mproc__fdreg_close(&p->server_fd);
	mproc__fdreg_close(&p->proc.exit_fd);
	p->ended = true;
	/* The value and the error point into p->out or the record: kept
	 * until release. */
	process_outcome(p, &si);
	return true;
}

int mproc_process_join(struct mproc_process *p, double timeout)
{
	if (!p || isnan(timeout))
		return -EINVAL;
	uint64_t deadline = mproc__deadline(timeout);
	while (!process_reap(p, false)) {
		process_read(p);
		struct pollfd pfd[2];
		nfds_t n = 0;
		/* The end: with the fork server, its word on the exit pipe;
		 * else the pidfd. */
		int end_fd = p->forkserver ? p->server_fd : p->proc.exit_fd;
		if (end_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = end_fd, .events = POLLIN};
		if (p->result_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = p->result_fd,
			                           .events = POLLIN};
		uint64_t now = mproc__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = mproc__ts_left(deadline, now);
		/* Without a pidfd (valgrind) the exit is looked for every
		 * 10 ms. */
		if (end_fd < 0 && deadline - now > 10000000)
			ts = (struct timespec){0, 10000000};
		if (deadline == UINT64_MAX && end_fd >= 0) {
			if (ppoll(pfd, n, NULL, NULL) < 0 && errno != EINTR)
				return -errno;
		} else if (ppoll(pfd, n, &ts, NULL) < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

bool mproc_process_is_alive(struct mproc_process *p)
{
	if (!p)
		return false;
	process_read(p);
	return !process_reap(p, false);
}

pid_t mproc_process_pid(const struct mproc_process *p)
{
	return p ? p->proc.pid : -1;
}

const char *mproc_process_name(const struct mproc_process *p)
{
	return p ? p->name : "";
}

int mproc_process_sentinel(const struct mproc_process *p)
{
	if (!p)
		return -EINVAL;
	if (p->ended)
		return MPROC_ECLOSED;
	return p->proc.exit_fd >= 0 ? p->proc.exit_fd : -ENOTSUP;
}

int mproc_process_exitcode(struct mproc_process *p, int *code)
{
	if (!p || !code)
		return -EINVAL;
	if (!p->ended && !process_reap(p, false))
		return MPROC_ENOTREADY;
	*code = p->exitcode;
	return 0;
}

static int process_signal(struct mproc_process *p, int sig)
{
	if (!p)
		return -EINVAL;
	/* Reaped: its pid may be another process's now. Python does nothing
	 * to a process that has ended. */
	if (!p->ended && !process_reap(p, false))
		mproc__proc_kill(&p->proc, sig);
	return 0;
}

int mproc_process_terminate(struct mproc_process *p)
{
	return process_signal(p, SIGTERM);
}

int mproc_process_kill(struct mproc_process *p)
{
	return process_signal(p, SIGKILL);
}

int mproc_process_result(struct mproc_process *p,
                         const struct mproc_result **out)
{
	if (!p || !out)
		return -EINVAL;
	*out = NULL;
	if (!p->ended && !process_reap(p, false))
		return MPROC_ENOTREADY;
	*out = &p->res;
	return p->res.status == MPROC_OK ? 0 : MPROC_ERAISED;
}

static void process_release(struct mproc_process *p)
{
	mproc__fdreg_close(&p->result_fd);
	mproc__fdreg_close(&p->result_wr);
	mproc__fdreg_close(&p->server_fd);
	mproc__fdreg_close(&p->proc.exit_fd);
	mproc__buf_free(&p->out);
	mproc__buf_free(&p->exit);
	mproc_decoder_free(p->dec);
	/* Only a reaped child's record is reused; any other is dropped. */
	if (p->ended)
		rec_put(p->rec);
	else
		mproc__shm_free(p->rec, MPROC__PROCESS_REC_SIZE);
	free(p->report);
	free(p);
}

int mproc_process_close(struct mproc_process *p)
{
	if (!p)
		return -EINVAL;
	if (!p->ended && !process_reap(p, false))
		return MPROC_ERUNNING;
	process_release(p);
	return 0;
}

void mproc_process_free(struct mproc_process *p)
{
	if (!p)
		return;
	if (!p->ended && !process_reap(p, false)) {
		mproc__proc_kill(&p->proc, SIGKILL);
		/* Dead now; a pipe still held by a child of its own must not
		 * keep this waiting. */
		mproc__fdreg_close(&p->result_fd);
		process_reap(p, true);
	}
	process_release(p);
}
