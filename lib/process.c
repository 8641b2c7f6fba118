/*
 * process.c - Process (multiprocessing.Process): one task function run in
 * a forked child, its return value or raised error read back after join,
 * and, when it crashes, the pool's crash report.
 *
 * The child (child.c, mproc__child_process) writes one status byte and a
 * pickle to a result pipe, then exits; a crash handler fills a status
 * record in shared memory as a pool worker's does. join() reads the pipe
 * as the child writes (a large result never blocks it) while it waits for
 * the child's pidfd; then it reaps the child, so no zombie outlives join.
 *
 * Invariants: `pid` is signalled only before the child is reaped (until
 * then the pid cannot be reused); after reaping, `ended` is set and
 * nothing but reading the outcome happens. A handle is used by one thread
 * at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "chan.h"
#include "child.h"
#include "clock.h"
#include "crash.h"
#include "fdreg.h"
#include "pickle.h"
#include "shm.h"
#include "status.h"
#include "wire.h"

struct mproc_process {
	struct mproc__proc proc;  /* pid, pidfd (exit_fd); its signal path */
	int result_fd;            /* read end, non-blocking; -1 at its end */
	bool ended;               /* reaped */
	int exitcode;
	char name[64];
	struct mproc__status *status; /* shared with the child */
	struct mproc__buf out;    /* what the child wrote */
	struct mproc_decoder *dec;
	struct mproc_limits limits;
	struct mproc_result res;
	struct mproc_error err;
	struct mproc_crash crash;
	char msg[200];
	char report[MPROC__MAX_FRAMES * 160];
};

static atomic_uint process_counter;

static const unsigned char process_none[] = {0x80, 0x05, 'N', '.'};

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
	if (opts->start_method == MPROC_START_FORKSERVER)
		return -ENOTSUP;
	if (opts->start_method != MPROC_START_FORK)
		return -EINVAL;
	if (opts->limits.max_size > MPROC_LIMITS_MAX_SIZE)
		return -EINVAL;
	if (!arg) {
		arg = process_none;
		arglen = sizeof process_none;
	}

	struct mproc_process *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->proc.exit_fd = -1;
	p->result_fd = -1;
	p->limits = opts->limits;
	unsigned n = atomic_fetch_add(&process_counter, 1) + 1;
	if (opts->name)
		snprintf(p->name, sizeof p->name, "%s", opts->name);
	else
		snprintf(p->name, sizeof p->name, "Process-%u", n);
	int rc = -ENOMEM;
	p->status = mproc__shm_alloc(sizeof *p->status);
	if (!p->status)
		goto fail;
	mproc__status_reset(p->status);

	int fds[2];
	int *closelist = NULL;
	/* The registry stays locked from the pipe to the fork, as for a
	 * worker: no pool forks a child in between that would keep the
	 * write end and hide this child's end of file. */
	mproc__fdreg_lock();
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = -errno;
		mproc__fdreg_unlock();
		goto fail;
	}
	struct mproc__process_plan plan = {
		.fn = fn,
		.arg = arg,
		.arglen = arglen,
		.result_fd = fds[1],
		.status = p->status,
		.parent = getpid(),
		.daemon = opts->daemon,
		.name = p->name,
		.limits = opts->limits,
	};
	/* The child closes the pools' descriptors and the read end; it
	 * keeps everything else the program made, as a forked Python child
	 * does (connections and queues to talk through). */
	closelist = mproc__fdreg_list_locked(&fds[0], 1, &plan.nclose);
	if (!closelist || mproc__fdreg_reserve_locked(1) < 0) {
		rc = -ENOMEM;
	} else {
		plan.close_fds = closelist;
		/* `arg` is the caller's: the child reads its copy of this
		 * process's memory, made by fork before the call returns. */
		rc = mproc__child_process(&plan, &p->proc.pid);
	}
	if (rc == 0)
		(void)mproc__fdreg_add_locked(fds[0]);
	close(fds[1]);
	mproc__fdreg_unlock();
	free(closelist);
	if (rc < 0) {
		close(fds[0]);
		goto fail;
	}
	p->result_fd = fds[0];
	fcntl(p->result_fd, F_SETFL, O_NONBLOCK);
	p->proc.exit_fd = mproc__proc_pidfd(p->proc.pid);
	*out = p;
	return 0;

fail:
	mproc__shm_free(p->status, sizeof *p->status);
	free(p);
	return rc;
}

/* Read what the child wrote so far; false once the pipe has ended. */
static bool process_read(struct mproc_process *p)
{
	while (p->result_fd >= 0) {
		ssize_t n = mproc__wire_read(p->result_fd, &p->out);
		if (n > 0)
			continue;
		if (n == -EAGAIN)
			return true;
		/* End of file, or an error (no memory): either way the
		 * outcome is what arrived. */
		mproc__fdreg_close(&p->result_fd);
	}
	return false;
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
	if (p->out.len >= 1 && mproc_decoder_new(&p->dec, &p->limits) == 0) {
		int st = (unsigned char)p->out.data[0];
		const struct mproc_value *v = NULL;
		int rc = mproc_decode(p->dec, p->out.data + 1, p->out.len - 1, &v);
		if (rc == 0 && st == MPROC_OK) {
			p->res.status = MPROC_OK;
			p->res.value = v;
			return;
		}
		const struct mproc_value *t = NULL, *m = NULL;
		const char *s;
		size_t len;
		p->res.status = MPROC_RAISED;
		p->res.error = &p->err;
		p->err.type = "UnpicklingError";
		p->err.msg = "the process's result could not be read";
		if (rc == 0 && st == MPROC_RAISED &&
		    mproc_value_item(v, 0, &t) == 0 &&
		    mproc_value_item(v, 1, &m) == 0) {
			if (mproc_value_str(t, &s, &len) == 0)
				p->err.type = mproc__decoder_strdup(p->dec, s, len);
			if (mproc_value_str(m, &s, &len) == 0)
				p->err.msg = mproc__decoder_strdup(p->dec, s, len);
		}
		return;
	}
	/* No result: it exited without returning, or died. */
	struct mproc__status *st = p->status;
	if (p->crash.signal &&
	    atomic_load_explicit(&st->crash_signal, memory_order_acquire)) {
		p->crash.si_code = st->crash_code;
		p->crash.addr = (uintptr_t)st->crash_addr;
		p->crash.rss = (size_t)st->crash_rss;
		mproc__crash_format(st, p->report, sizeof p->report);
		if (p->report[0])
			p->crash.report = p->report;
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

/* Reap the child if it has ended (blocking: wait for it). true if it has. */
static bool process_reap(struct mproc_process *p, bool block)
{
	if (p->ended)
		return true;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int rc;
	do {
		rc = waitid(P_PID, (id_t)p->proc.pid, &si,
		            WEXITED | (block ? 0 : WNOHANG));
	} while (rc < 0 && errno == EINTR);
	if (rc < 0 && errno == ECHILD) {
		/* Reaped by someone else (the program's own waitpid(-1)):
		 * how it ended is lost; say so, never wait forever. */
		si.si_code = CLD_EXITED;
		si.si_status = 255;
	} else if (rc < 0 || si.si_pid == 0) {
		return false; /* running */
	}
	/* It has exited: what it wrote is all in the pipe (unless a child of
	 * its own still holds the write end: then what is there is all). */
	process_read(p);
	mproc__fdreg_close(&p->result_fd);
	mproc__fdreg_close(&p->proc.exit_fd);
	p->ended = true;
	/* The value and the error point into p->out: kept until release. */
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
		if (p->proc.exit_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = p->proc.exit_fd,
			                           .events = POLLIN};
		if (p->result_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = p->result_fd,
			                           .events = POLLIN};
		uint64_t now = mproc__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = mproc__ts_left(deadline, now);
		/* Without a pidfd (valgrind) the exit is looked for every
		 * 10 ms. */
		if (p->proc.exit_fd < 0 && deadline - now > 10000000)
			ts = (struct timespec){0, 10000000};
		if (deadline == UINT64_MAX && p->proc.exit_fd >= 0) {
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
	mproc__fdreg_close(&p->proc.exit_fd);
	mproc__buf_free(&p->out);
	mproc_decoder_free(p->dec);
	mproc__shm_free(p->status, sizeof *p->status);
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
