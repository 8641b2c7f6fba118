/*
 * child.c - the child side: every line that runs in a worker between
 * fork() and _exit(), for workers forked by the manager and by the fork
 * server alike, and the worker loop that the threads backend runs in a
 * thread. This is the one file that calls fork(): the fork server
 * (server.c) is forked through mproc__child_fork_run too.
 *
 * A worker reads TASK frames from its task channel, runs each task, and
 * writes RESULT frames to its result pipe. It batches: everything a read
 * brought is run before the results are written in one write, unless a
 * result has already waited RESULT_LATENCY_NS, so short tasks cost a few
 * syscalls per batch and long ones still report promptly.
 *
 * A worker never returns into the caller's code after fork: it ends with
 * _exit(), so the host program's atexit handlers and stdio buffers are not
 * run twice. It exits 0 at end of file on its task channel (the pool closed
 * it) and when maxtasksperchild is reached.
 *
 * In a thread the process-only parts (signals, title, crash handler,
 * parent checks) are skipped, and where a process would _exit() the
 * thread unwinds to mproc__child_thread (only worker code lies between,
 * never a task) and returns its exit code, having closed its end of the
 * result pipe so that the manager sees end of file as it would for a
 * process.
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "child.h"
#include "clock.h"
#include "fdreg.h"
#include "oob.h"
#include "pickle.h"
#include "wire.h"

#define RESULT_LATENCY_NS 200000u  /* 200 us */
#define RESULT_FLUSH_BYTES (256u * 1024u)

static bool title_ready;

void mproc__child_title_init(int argc, char *argv[], char *envp[])
{
#if HAVE_SETPROCTITLE
	if (!title_ready && argc > 0 && argv && argv[0]) {
		/* libbsd reads the environment block that follows argv. */
		setproctitle_init(argc, argv, envp ? envp : environ);
		title_ready = true;
	}
#else
	(void)argc, (void)argv, (void)envp;
#endif
}

/* Default dispositions for every signal, except that Ctrl-C (SIGINT) is
 * ignored: it is the program's business, not every worker's. Only
 * sigaction: safe right after fork. */
void mproc__child_reset_signals(void)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa.sa_handler = sig == SIGINT ? SIG_IGN : SIG_DFL;
		sigaction(sig, &sa, NULL);
	}
}

static void worker_crash_handlers(void);

/* Set in the child of a fork, in the thread that forked: a task that forks
 * and returns in its child finds it set there and ends that child instead
 * of running the worker loop on the worker's pipes. Thread-local, so that a
 * fork by some other thread of the program marks no worker thread. */
static _Thread_local volatile sig_atomic_t worker_is_grandchild
        __attribute__((tls_model("initial-exec")));
static pthread_once_t worker_fork_once = PTHREAD_ONCE_INIT;

static void worker_mark_grandchild(void)
{
	worker_is_grandchild = 1;
}

static void worker_register_guard(void)
{
	pthread_atfork(NULL, NULL, worker_mark_grandchild);
}

/* Once per process: a forked worker inherits the registration. */
static void worker_guard_forks(void)
{
	pthread_once(&worker_fork_once, worker_register_guard);
}

/*
 * The worker dies with its manager, whatever thread forked it. The death
 * signal follows the thread that forked, not the process, so it is armed
 * only when that is the main thread (or the single-threaded fork server,
 * which itself ends its workers when the manager goes). Otherwise a thread
 * of the worker's own, with every signal blocked, looks at its parent
 * every half second and ends the worker, even in the middle of a task,
 * once the manager is gone. Only then: a second thread makes a process's
 * exit slower (its end waits for that thread to be scheduled).
 */
static void *worker_watch(void *arg)
{
	const struct mproc__child_plan *plan = arg;
	for (;;) {
		struct timespec half = {0, 500000000};
		nanosleep(&half, NULL);
		if (getppid() != plan->manager)
			_exit(0);
	}
	return NULL;
}

static void worker_watch_manager(const struct mproc__child_plan *plan)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Without it (no memory) the worker still notices at its next read. */
	(void)pthread_create(&th, &attr, worker_watch, (void *)plan);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/*
 * The only code that runs between fork() and the worker loop. The parent
 * blocked every signal around fork(), so no handler of the host program
 * runs here before the dispositions are reset. Allowed here: prctl,
 * getppid, close, sigaction, sigprocmask, setrlimit, _exit — all
 * async-signal-safe — then the title and the initializer, which may
 * allocate: glibc's malloc is reset in the child by its own fork handlers.
 */
static void worker_setup(const struct mproc__child_plan *plan)
{
	/* Die with the manager: the signal for a later death, the check for
	 * a manager that died before prctl took effect. */
	if (plan->pdeathsig)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != plan->manager)
		_exit(0);

	/* Descriptors of the other workers and pools: keeping them would hide
	 * their EOF from those workers (fork does not honour O_CLOEXEC). */
	for (size_t i = 0; i < plan->nclose; i++)
		close(plan->close_fds[i]);

	/* The host's handlers are not the worker's. */
	mproc__child_reset_signals();
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

#if HAVE_SETPROCTITLE
	if (title_ready)
		setproctitle("mproc worker %u", plan->number);
	else
#endif
	{
		char name[16];
		snprintf(name, sizeof name, "mproc-worker%u", plan->number);
		prctl(PR_SET_NAME, name);
	}

	if (plan->max_vm) {
		/* The buffer arena is mapped already: it does not count
		 * against the task's limit. */
		size_t vm = plan->max_vm;
		if (plan->oob && plan->oob->arena &&
		    vm <= SIZE_MAX - plan->oob->arena_size)
			vm += plan->oob->arena_size;
		struct rlimit rl = {vm, vm};
		setrlimit(RLIMIT_AS, &rl);
	}
	/* The fork that made this worker marked it (a thread pool of the
	 * program may have registered the mark): it is the worker, not a
	 * task's child. */
	worker_guard_forks();
	worker_is_grandchild = 0;
	worker_crash_handlers();
	if (!plan->pdeathsig)
		worker_watch_manager(plan);

	if (plan->initializer)
		plan->initializer(plan->initarg);
	atomic_store_explicit(&plan->status->ready_ns, mproc__now_ns(),
	                      memory_order_release);
}

struct worker;
static struct worker *worker_self; /* the one worker of this process */

struct worker {
	const struct mproc__child_plan *plan;
	struct mproc__status *status; /* plan->status */
	/* 1 in the worker, 0 in any process forked from it, even by a raw
	 * fork system call that skips pthread_atfork: the page is
	 * MADV_WIPEONFORK. One load after each task tells a task's child
	 * returning into this loop that it is not the worker. */
	volatile char *self;
	jmp_buf exit_jb;        /* threads: where worker_exit() returns to */
	int exit_code;          /* threads: what worker_exit() was given */
	size_t committed;       /* out bytes that are whole result records */
	int statm_fd;           /* /proc/self/statm, for max_rss */
	ino_t task_ino, result_ino; /* its own pipes, for suspect mode */
	struct mproc_decoder *dec;
	struct mproc_writer *w;
	struct mproc__oob_side side;  /* where its results' buffers go */
	struct mproc__oobdesc *args;  /* the running task's buffers */
	struct mproc_buffer *bufs;
	uint32_t nargs, argcap;
	struct mproc__buf in, out;
	size_t hdr_off;         /* open RESULT frame in out */
	uint64_t frame_id;      /* id of its first record */
	uint32_t frame_count;
	uint64_t frame_start_ns;
	uint64_t chain_ns;      /* end of the last frame of this read, or 0 */
	uint64_t first_unflushed_ns;
	uint64_t seq;           /* tasks read so far: the next one's number - 1 */
	/* Read the clock only every `check_every` tasks: short tasks would
	 * otherwise spend a fair part of their time reading the timer. */
	uint32_t check_every, since_check;
	uint64_t last_check_ns;
};

/* End the worker: _exit() in a process; in a thread, unwind to
 * mproc__child_thread (only worker code lies between, never a task). */
static _Noreturn void worker_exit(struct worker *wk, int code)
{
	if (wk->plan->threaded) {
		wk->exit_code = code;
		longjmp(wk->exit_jb, 1);
	}
	_exit(code);
}

/* Parse the leading decimal of s (async-signal-safe, no locale). */
static uint64_t parse_u64(const char **s)
{
	uint64_t v = 0;
	while (**s == ' ')
		(*s)++;
	while (**s >= '0' && **s <= '9')
		v = v * 10 + (uint64_t)(*(*s)++ - '0');
	return v;
}

/* Address-space and resident bytes from /proc/self/statm, or 0s. Only
 * async-signal-safe calls: the crash handler uses it too. */
static void worker_memory(int fd, uint64_t *vm, uint64_t *rss)
{
	char buf[128];
	*vm = *rss = 0;
	int own = fd < 0;
	if (own)
		fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (own)
		close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	const char *p = buf;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	*vm = parse_u64(&p) * page;
	*rss = parse_u64(&p) * page;
}

/* Write the results already complete, from a crash handler: closed frames,
 * plus the open one cut at its last whole record. */
static void worker_flush_committed(struct worker *wk)
{
	size_t end = wk->hdr_off;
	if (wk->frame_count && wk->committed > wk->hdr_off) {
		struct mproc__frame f = {
			.type = MPROC__F_RESULT,
			.count = wk->frame_count,
			.id = wk->frame_id,
		};
		mproc__frame_set_len(&f, wk->committed - wk->hdr_off -
		                             MPROC__FRAME_HDR);
		memcpy(wk->out.data + wk->hdr_off, &f, sizeof f);
		end = wk->committed;
	}
	const char *p = wk->out.data;
	while (end > 0 && p) {
		ssize_t n = write(wk->plan->result_fd, p, end);
		if (n <= 0)
			break;
		p += n;
		end -= (size_t)n;
	}
}

/*
 * What a fatal signal says, into the status record `st`: signal, si_code,
 * address, backtrace, memory, errno. Only async-signal-safe calls;
 * backtrace() was called once at setup (mproc__child_crash_handlers) so
 * that it does not load libgcc here.
 */
void mproc__child_crash_record(struct mproc__status *st, int sig,
                               const siginfo_t *si, int saved_errno)
{
	void *frames[MPROC__MAX_FRAMES];
	int n = backtrace(frames, MPROC__MAX_FRAMES);
	for (int i = 0; i < n; i++)
		st->frames[i] = (uint64_t)(uintptr_t)frames[i];
	st->nframes = n > 0 ? (uint32_t)n : 0;
	st->crash_code = si ? si->si_code : 0;
	st->crash_addr = 0;
	if (si && (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE ||
	           sig == SIGILL))
		st->crash_addr = (uint64_t)(uintptr_t)si->si_addr;
	worker_memory(-1, &st->crash_vm, &st->crash_rss);
	st->crash_errno = saved_errno;
	atomic_store_explicit(&st->crash_signal, sig, memory_order_release);
}

/*
 * A fatal signal in a task: record what happened in the shared status
 * record, hand over the results already made, and die of the same signal.
 * Runs on its own stack, so a stack overflow is reported too.
 */
static void worker_on_crash(int sig, siginfo_t *si, void *uctx)
{
	(void)uctx;
	int saved_errno = errno; /* what the task last failed with */
	struct worker *wk = worker_self;
	if (wk && !worker_is_grandchild && *wk->self) {
		mproc__child_crash_record(wk->plan->status, sig, si,
		                          saved_errno);
		worker_flush_committed(wk);
	}
	/* SA_RESETHAND made the disposition default again; the raised
	 * signal is blocked until the handler returns, then kills. */
	raise(sig);
}

void mproc__child_crash_handlers(void (*handler)(int, siginfo_t *, void *),
                                 bool warm)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
	                           SIGABRT, SIGTRAP, SIGSYS};
	size_t size = 64 * 1024;
	stack_t ss = {.ss_sp = malloc(size), .ss_size = size};
	if (ss.ss_sp)
		sigaltstack(&ss, NULL);
	if (warm) {
		void *frames[2];
		backtrace(frames, 2); /* loads the unwinder now, not in the
		                       * handler */
	}
	struct sigaction sa = {.sa_sigaction = handler,
	                       .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND};
	/* A second fault inside the handler waits: it would flush twice. */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}

static void worker_crash_handlers(void)
{
	mproc__child_crash_handlers(worker_on_crash, true);
}


static void worker_flush(struct worker *wk)
{
	size_t sent = 0;
	if (mproc__wire_write(wk->plan->result_fd, &wk->out, &sent) < 0)
		worker_exit(wk, 0); /* the manager is gone: nothing to report to */
	wk->out.len = 0;
	mproc__buf_trim(&wk->out);
	wk->first_unflushed_ns = 0;
	wk->chain_ns = 0; /* a write may have waited on a full pipe */
}

static void worker_frame_open(struct worker *wk, uint64_t id)
{
	if (mproc__wire_begin(&wk->out, &wk->hdr_off) < 0)
		worker_exit(wk, 70);
	wk->frame_id = id;
	wk->frame_count = 0;
	wk->committed = wk->out.len;
	/* Frames of one read run back to back: the last one's end is this
	 * one's start, one clock read a frame instead of two. */
	wk->frame_start_ns = wk->chain_ns ? wk->chain_ns : mproc__now_ns();
	if (!wk->first_unflushed_ns)
		wk->first_unflushed_ns = wk->frame_start_ns;
}

static void worker_frame_close(struct worker *wk)
{
	if (wk->frame_count == 0) {
		wk->out.len = wk->hdr_off;
		return;
	}
	wk->chain_ns = mproc__now_ns();
	mproc__wire_end(&wk->out, wk->hdr_off, MPROC__F_RESULT, 0,
	                wk->frame_count, wk->frame_id,
	                wk->chain_ns - wk->frame_start_ns);
}

/* Write the result of a task that did not return normally as an exception. */
static void worker_raise_code(struct mproc_writer *w, int rc)
{
	if (rc == MPROC_EWRITER || rc == MPROC_EPICKLE_UTF8 ||
	    rc == MPROC_EPICKLE_DEPTH)
		mproc_raise(w, "ValueError", "task return value: %s",
		            mproc_strerror(rc));
	else if (rc == MPROC_ETYPE || rc == MPROC_EINDEX)
		/* An accessor's mismatch, with what it expected and found
		 * (mproc_error_detail). */
		mproc_raise(w, "OSError", "[%s] %s", mproc_err_name(rc),
		            *mproc_error_detail() ? mproc_error_detail()
		                                  : mproc_strerror(rc));
	else
		mproc_raise(w, "OSError", "[%s] %s", mproc_err_name(rc),
		            mproc_strerror(rc));
}

/*
 * Suspect mode: the manager lost a worker without knowing which task broke
 * it, and now runs those tasks one at a time with this check. A task that
 * closed or replaced the worker's own descriptors is named in the status
 * record before the worker gives up.
 */
static void worker_check_channel(struct worker *wk, uint64_t id)
{
	struct stat a, b;
	if (fstat(wk->plan->task_fd, &a) < 0 || fstat(wk->plan->result_fd, &b) < 0 ||
	    a.st_ino != wk->task_ino || b.st_ino != wk->result_ino) {
		atomic_store_explicit(&wk->plan->status->culprit, id,
		                      memory_order_release);
		worker_exit(wk, 72);
	}
}

/* Decode a task's argument record, with its buffers when it has a
 * trailer (oob.h): MPROC_EPROTO for a malformed one. */
static int worker_decode(struct worker *wk, const char *arg, size_t len,
                         const struct mproc_value **v)
{
	if (__builtin_expect(!mproc__oob_has_trailer(arg, len), 1))
		return mproc_decode(wk->dec, arg, len, v);
	size_t plen;
	const struct mproc__oobdesc *d;
	uint32_t n;
	int rc = mproc__oob_split(arg, len, &plen, &d, &n);
	if (rc < 0)
		return rc;
	if (n > wk->argcap) {
		struct mproc__oobdesc *a = reallocarray(wk->args, n, sizeof *a);
		struct mproc_buffer *b = a ? reallocarray(wk->bufs, n, sizeof *b)
		                           : NULL;
		if (a)
			wk->args = a;
		if (!b)
			return -ENOMEM;
		wk->bufs = b;
		wk->argcap = n;
	}
	memcpy(wk->args, d, (size_t)n * sizeof *d);
	rc = mproc__oob_buffers(wk->plan->oob, arg, len, plen, wk->args, n,
	                        wk->bufs);
	if (rc < 0)
		return rc;
	wk->nargs = n;
	return mproc_decode_buffers(wk->dec, arg, plen, wk->bufs, n, v);
}

/* Run one task, its argument `packed` (a packed frame's) or the pickle
 * arg[0..arglen); append its result record to the open frame. */
static void worker_run(struct worker *wk, mproc_task_fn fn, uint8_t flags,
                       uint64_t id, const struct mproc_value *packed,
                       const char *arg, size_t arglen)
{
	struct mproc__buf *out = &wk->out;
	/* Room for the record and the commonest result, None, whole. */
	if (mproc__buf_reserve(out, MPROC__RESULT_REC + 4) < 0)
		worker_exit(wk, 70);
	size_t rec = out->len;
	out->len += MPROC__RESULT_REC;
	mproc__writer_attach(wk->w, out);

	/* No clock read: the manager times a task from when it first sees
	 * its id here (fault.c), so that a timeout costs the worker nothing.
	 * The last id started matters only to a suspect, which runs alone
	 * and with TF_CHECK: a death between tasks then names it. */
	if (flags & MPROC__TF_CHECK)
		atomic_store_explicit(&wk->status->last_id, id,
		                      memory_order_relaxed);
	atomic_store_explicit(&wk->status->task_id, id, memory_order_release);

	const struct mproc_value *v = packed;
	wk->nargs = 0;
	int rc = packed ? 0 : worker_decode(wk, arg, arglen, &v);
	if (rc == MPROC_EPROTO) {
		mproc_raise(wk->w, "UnpicklingError",
		            "task argument: malformed buffer table");
	} else if (rc < 0) {
		mproc_raise(wk->w, "UnpicklingError", "task argument: %s",
		            mproc_decoder_error(wk->dec));
	} else if ((flags & MPROC__TF_STAR) &&
	           mproc_value_type(v) != MPROC_TUPLE &&
	           mproc_value_type(v) != MPROC_LIST) {
		/* Python's starmap unpacks any sequence: a list too. */
		mproc_raise(wk->w, "TypeError",
		            "starmap item must be a tuple or list, not %s",
		            mproc_type_name(mproc_value_type(v)));
	} else {
		rc = fn(v, wk->w);
		/* A task that forked and returned in its child: that child is
		 * not a worker and must not read this worker's tasks, nor write
		 * results or the status record. */
		if (worker_is_grandchild || !*wk->self)
			_exit(0);
		if (rc < 0 && !mproc__writer_raised(wk->w))
			worker_raise_code(wk->w, rc);
	}
	enum mproc_status status =
	        mproc__writer_raised(wk->w) ? MPROC_RAISED : MPROC_OK;
	/* A task that returned without writing returned None. */
	rc = mproc__writer_end_result(wk->w);
	if (rc < 0) {
		/* What the task wrote is unusable: say so instead. */
		worker_raise_code(wk->w, rc);
		status = MPROC_RAISED;
		if (mproc__writer_end(wk->w) < 0)
			worker_exit(wk, 70);
	}
	/* Its buffers: named in a trailer after the pickle. */
	if (__builtin_expect(mproc__writer_oob_count(wk->w) != 0, 0) &&
	    mproc__oob_trailer(wk->plan->oob, wk->w, &wk->side.space, out,
	                       rec + MPROC__RESULT_REC, wk->args,
	                       wk->nargs) < 0) {
		out->len = rec + MPROC__RESULT_REC;
		mproc__writer_attach(wk->w, out);
		worker_raise_code(wk->w, -ENOMEM);
		status = MPROC_RAISED;
		if (mproc__writer_end(wk->w) < 0)
			worker_exit(wk, 70);
	}
	/* Left attached: the next task attaches it anew, and the end of the
	 * chunk detaches it (worker_chunk), a restart less per task. */

	atomic_store_explicit(&wk->status->task_id, 0, memory_order_release);
	if (mproc__result_rec_close(out, rec, (uint32_t)status) < 0)
		worker_exit(wk, 70);
	wk->frame_count++;
	wk->committed = out->len;

	if (flags & MPROC__TF_CHECK)
		worker_check_channel(wk, id);
}

/* Claim the next task of the stream (status.h): false when the manager
 * took it back, and the worker skips it. */
static bool worker_claim(struct worker *wk)
{
	uint64_t seq = ++wk->seq;
	_Atomic uint64_t *claim = &wk->status->claim;
	uint64_t c = atomic_load_explicit(claim, memory_order_relaxed);
	do {
		if ((c & MPROC__REVOKED) && seq <= (c & ~MPROC__REVOKED))
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	        claim, &c, seq, memory_order_acq_rel, memory_order_relaxed));
	return true;
}

static bool worker_should_flush(struct worker *wk)
{
	if (wk->out.len >= RESULT_FLUSH_BYTES)
		return true;
	if (++wk->since_check < wk->check_every)
		return false;
	wk->since_check = 0;
	uint64_t now = mproc__now_ns();
	uint64_t span = now - wk->last_check_ns;
	wk->last_check_ns = now;
	/* Aim at one clock read per ~20 us of work. */
	if (span < 20000 && wk->check_every < 256)
		wk->check_every *= 2;
	else if (span > 100000)
		wk->check_every = 1;
	return now - wk->first_unflushed_ns >= RESULT_LATENCY_NS;
}

static bool worker_over_rss(struct worker *wk)
{
	uint64_t vm, rss;
	worker_memory(wk->statm_fd, &vm, &rss);
	return rss > wk->plan->max_rss;
}

/* A packed frame's payload must be exactly what its flags say. */
static bool worker_packed_ok(const struct mproc__frame *f)
{
	uint8_t pack = f->flags & MPROC__TF_PACKED;
	if (pack == MPROC__TF_RANGE)
		return mproc__frame_len(f) == MPROC__RANGE_REC &&
		       f->count <= MPROC__RANGE_MAX_TASKS;
	if (pack == MPROC__TF_INTS || pack == MPROC__TF_FLOATS)
		return mproc__frame_len(f) == (uint64_t)f->count * MPROC__NUM_REC;
	return false;
}

/* Task k's argument in a packed frame, made in *node. */
static const struct mproc_value *worker_packed_arg(const struct mproc__frame *f,
                                                   const char *p, uint32_t k,
                                                   struct mproc__scalar *node)
{
	int64_t rec[2];
	double d;
	switch (f->flags & MPROC__TF_PACKED) {
	case MPROC__TF_RANGE:
		memcpy(rec, p, sizeof rec);
		return mproc__scalar_int(node, (int64_t)((uint64_t)rec[0] +
		                                         (uint64_t)k *
		                                                 (uint64_t)rec[1]));
	case MPROC__TF_INTS:
		memcpy(rec, p + (size_t)k * MPROC__NUM_REC, sizeof rec[0]);
		return mproc__scalar_int(node, rec[0]);
	default:
		memcpy(&d, p + (size_t)k * MPROC__NUM_REC, sizeof d);
		return mproc__scalar_float(node, d);
	}
}

/* Run the tasks of frame f; false when the manager took back all of them
 * before the first began: such a frame counts for no maxtasksperchild, on
 * the manager's side either (fault.c's take-back). */
static bool worker_chunk(struct worker *wk, const struct mproc__frame *f,
                         const char *p)
{
	mproc_task_fn fn = (mproc_task_fn)(uintptr_t)f->ref;
	const char *end = p + mproc__frame_len(f);
	bool packed = f->flags & MPROC__TF_PACKED;
	_Atomic int *stop = wk->plan->stop;
	size_t max_rss = wk->plan->max_rss;
	struct mproc__scalar node;
	bool began = true;
	if (packed && !worker_packed_ok(f))
		worker_exit(wk, 71);
	worker_frame_open(wk, f->id);
	for (uint32_t k = 0; k < f->count; k++) {
		size_t len = 0;
		const struct mproc_value *arg = NULL;
		if (packed)
			arg = worker_packed_arg(f, p, k, &node);
		else if (mproc__task_rec_next(&p, end, &len) < 0)
			worker_exit(wk, 71);
		/* Threads: terminate asks them to stop before the next task. */
		if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
			worker_frame_close(wk);
			worker_flush(wk);
			worker_exit(wk, 0);
		}
		if (!worker_claim(wk)) {
			/* Taken back: so is the rest of this frame, which the
			 * manager sent before it took them. */
			wk->seq += f->count - k - 1;
			began = k > 0;
			break;
		}
		worker_run(wk, fn, f->flags, f->id + k, arg, p, len);
		p += len;
		if (max_rss && worker_over_rss(wk)) {
			/* Retire after the task that grew it; the rest of the
			 * chunk goes back to the manager's queue. */
			worker_frame_close(wk);
			worker_flush(wk);
			atomic_store(&wk->plan->status->retired_rss, 1);
			worker_exit(wk, MPROC__EXIT_MEMORY);
		}
		/* Long tasks report as they finish, not at the end of the batch. */
		if (k + 1 < f->count && worker_should_flush(wk)) {
			worker_frame_close(wk);
			worker_flush(wk);
			worker_frame_open(wk, f->id + k + 1);
		}
	}
	mproc__writer_attach(wk->w, NULL);
	worker_frame_close(wk);
	return began;
}

/* The worker's own state, once setup is done; -ENOMEM on failure. */
static int worker_init(struct worker *wk, const struct mproc__child_plan *plan)
{
	wk->plan = plan;
	wk->status = plan->status;
	wk->check_every = 1;
	wk->statm_fd = -1;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *self = mmap(NULL, page, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (self == MAP_FAILED)
		return -ENOMEM;
	/* Without MADV_WIPEONFORK (before Linux 4.14) the atfork mark is
	 * the only guard. */
	(void)madvise(self, page, MADV_WIPEONFORK);
	wk->self = self;
	*wk->self = 1;
	if (mproc_decoder_new(&wk->dec, &plan->limits) < 0 ||
	    mproc_writer_new(&wk->w, 5) < 0)
		return -ENOMEM;
	if (plan->oob) {
		if (mproc__oob_worker_setup(plan->oob, plan->region, &wk->side) < 0)
			return -ENOMEM;
		if (wk->side.ops.alloc)
			mproc__writer_set_oob(wk->w, &wk->side.ops);
		(void)mproc_writer_set_oob_threshold(wk->w, plan->oob->threshold);
	}
	struct stat st;
	if (fstat(plan->task_fd, &st) == 0)
		wk->task_ino = st.st_ino;
	if (fstat(plan->result_fd, &st) == 0)
		wk->result_ino = st.st_ino;
	if (plan->max_rss)
		wk->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	return 0;
}

/* Read TASK frames and run them until the task channel ends; the exit
 * status, or worker_exit() from deeper down. */
static int worker_loop(struct worker *wk)
{
	const struct mproc__child_plan *plan = wk->plan;
	size_t max = mproc__wire_max(plan->limits.max_size);
	unsigned chunks = 0;

	for (;;) {
		wk->chain_ns = 0; /* the wait for more is nobody's run time */
		ssize_t n = mproc__wire_read(plan->task_fd, &wk->in);
		if (n == 0 || (plan->manager && getppid() != plan->manager))
			return 0; /* the pool closed its pipe, or the manager died */
		if (n < 0)
			return n == -ENOMEM ? 70 : 0;
		size_t off = 0;
		struct mproc__frame f;
		const char *payload;
		int rc;
		while ((rc = mproc__wire_next(&wk->in, &off, &f, &payload, max)) == 1) {
			if (f.type != MPROC__F_TASK)
				return 71;
			/* Results that have waited long enough go before the
			 * next frame, which may be long: the clock was read as
			 * the last frame closed. */
			if (wk->out.len && wk->chain_ns &&
			    wk->chain_ns - wk->first_unflushed_ns >= RESULT_LATENCY_NS)
				worker_flush(wk);
			if (worker_chunk(wk, &f, payload) && plan->maxtasks &&
			    ++chunks >= plan->maxtasks) {
				worker_flush(wk);
				return 0;
			}
		}
		if (rc < 0)
			return 71;
		mproc__buf_consume(&wk->in, off);
		mproc__buf_trim(&wk->in);
		(void)mproc__wire_expect(&wk->in, 0, max);
		if (wk->out.len)
			worker_flush(wk);
	}
}

static _Noreturn void worker_main(const struct mproc__child_plan *plan)
{
	worker_setup(plan);

	struct worker wk = {0};
	if (worker_init(&wk, plan) < 0)
		_exit(70);
	worker_self = &wk;
	_exit(worker_loop(&wk));
}

/* End of file for the manager, as a process's exit would give; also when
 * a task or the initializer ends the thread with pthread_exit. */
static void worker_thread_end(void *arg)
{
	struct mproc__child_plan *plan = arg;
	mproc__fdreg_close(&plan->result_fd);
}

static void worker_free(void *arg)
{
	struct worker *wk = arg;
	if (!wk)
		return;
	mproc_decoder_free(wk->dec);
	free(wk->args);
	free(wk->bufs);
	mproc_writer_free(wk->w);
	mproc__buf_free(&wk->in);
	mproc__buf_free(&wk->out);
	if (wk->statm_fd >= 0)
		close(wk->statm_fd);
	if (wk->self)
		munmap((void *)wk->self, (size_t)sysconf(_SC_PAGESIZE));
	free(wk);
}

/* The loop, or where worker_exit() lands; no local changes in between. */
static int worker_loop_thread(struct worker *wk)
{
	if (setjmp(wk->exit_jb) != 0)
		return wk->exit_code;
	return worker_loop(wk);
}

void *mproc__child_thread(void *arg)
{
	struct mproc__child_plan *plan = arg;
	volatile int code = 70; /* set inside pthread_cleanup_push (a setjmp) */
	char name[16];
	snprintf(name, sizeof name, "mproc-worker%u", plan->number);
	pthread_setname_np(pthread_self(), name);
	worker_guard_forks();
	pthread_cleanup_push(worker_thread_end, plan);
	if (plan->initializer)
		plan->initializer(plan->initarg);
	atomic_store_explicit(&plan->status->ready_ns, mproc__now_ns(),
	                      memory_order_release);
	struct worker *wk = calloc(1, sizeof *wk);
	pthread_cleanup_push(worker_free, wk);
	if (wk && worker_init(wk, plan) == 0)
		code = worker_loop_thread(wk);
	pthread_cleanup_pop(1);
	pthread_cleanup_pop(1);
	return (void *)(intptr_t)code;
}

/* ---- starting a child ---------------------------------------------------- */

void mproc__child_plan_init(struct mproc__child_plan *plan,
                            const struct mproc_pool_opts *opts,
                            unsigned number, struct mproc__status *status)
{
	*plan = (struct mproc__child_plan){
		.task_fd = -1,
		.result_fd = -1,
		.number = number,
		.maxtasks = opts->maxtasksperchild,
		.max_rss = opts->max_rss,
		.max_vm = opts->max_vm,
		.initializer = opts->initializer,
		.initarg = opts->initarg,
		.status = status,
		.limits = opts->limits,
		.region = -1,
	};
	mproc__status_reset(status);
}

/*
 * Fork, with every signal blocked across it: the child must not run a
 * handler of the host program before its setup resets them. The child
 * runs `body(arg)`, which never returns.
 */
int mproc__child_fork_run(void (*body)(const void *), const void *arg,
                          pid_t *pid)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t p = fork();
	if (p == 0) {
		mproc__fdreg_child();
		body(arg);
		_exit(70); /* not reached: body ends with _exit() */
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p < 0)
		return -fork_errno;
	*pid = p;
	return 0;
}

static void worker_body(const void *arg)
{
	worker_main(arg);
}

int mproc__child_fork(const struct mproc__child_plan *plan, pid_t *pid)
{
	return mproc__child_fork_run(worker_body, plan, pid);
}

/* ---- a Process's child (process.c) --------------------------------------- */

static struct mproc__status *process_status; /* its crash record */
static pid_t process_pid;                    /* the Process itself */

static void process_on_crash(int sig, siginfo_t *si, void *uctx)
{
	(void)uctx;
	int saved_errno = errno;
	/* Not a child the task forked: its crash is not the Process's. */
	if (process_status && getpid() == process_pid)
		mproc__child_crash_record(process_status, sig, si, saved_errno);
	raise(sig);
}

static void process_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the parent is gone: nobody to tell */
		p += w;
		n -= (size_t)w;
	}
}

/*
 * What runs in a Process from fork() to _exit(): the setup below (the
 * same async-signal-safe calls as worker_setup, but SIGINT keeps its
 * default, as in a Python child), then the task, then its result as one
 * status byte and a pickle on the result pipe. Exit status 0 when the
 * task returned, 1 when it raised (Python's exitcode for an exception).
 */
static _Noreturn void process_main(const struct mproc__process_plan *plan)
{
	if (plan->daemon)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Its parent ended before prctl took effect: what the signal would
	 * have done. */
	if (plan->daemon && getppid() != plan->parent)
		raise(SIGKILL);
	for (size_t i = 0; i < plan->nclose; i++)
		close(plan->close_fds[i]);
	mproc__child_reset_signals();
	signal(SIGINT, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
#if HAVE_SETPROCTITLE
	if (title_ready)
		setproctitle("%s", plan->name);
	else
#endif
		prctl(PR_SET_NAME, plan->name);

	process_pid = getpid();
	process_status = &plan->rec->status;
	/* The parent loaded the unwinder before the fork (below): warming
	 * it again here would only copy its pages. */
	mproc__child_crash_handlers(process_on_crash, false);

	struct mproc_decoder *dec = NULL;
	struct mproc_writer *w = NULL;
	if (mproc_writer_new(&w, 5) < 0)
		_exit(70);
	/* None, a bool, a small int: no decoder (and its arena) to make. */
	const struct mproc_value *arg = mproc__decode_tiny(plan->arg,
	                                                   plan->arglen);
	int rc = 0;
	if (!arg) {
		if (mproc_decoder_new(&dec, &plan->limits) < 0)
			_exit(70);
		rc = mproc_decode(dec, plan->arg, plan->arglen, &arg);
	}
	if (rc < 0) {
		mproc_raise(w, "UnpicklingError", "process argument: %s",
		            mproc_decoder_error(dec));
	} else {
		rc = plan->fn(arg, w);
		if (getpid() != process_pid)
			_exit(0); /* the task forked and returned in its child */
		if (rc < 0 && !mproc__writer_raised(w))
			worker_raise_code(w, rc);
	}
	bool raised = mproc__writer_raised(w);
	if (!raised && mproc__writer_top_type(w) < 0)
		mproc_write_none(w);
	const void *data = NULL;
	size_t len = 0;
	if (mproc_writer_finish(w, &data, &len) < 0) {
		/* What the task wrote is unusable: say so instead. */
		mproc_writer_reset(w);
		worker_raise_code(w, MPROC_EWRITER);
		raised = true;
		if (mproc_writer_finish(w, &data, &len) < 0)
			_exit(70);
	}
	char st = raised ? (char)MPROC_RAISED : (char)MPROC_OK;
	struct mproc__process_rec *rec = plan->rec;
	if (len < MPROC__PROCESS_RESULT_MAX) {
		/* Small: into the shared record, and the parent wakes once, at
		 * the exit. */
		rec->result[0] = (unsigned char)st;
		memcpy(rec->result + 1, data, len);
		atomic_store_explicit(&rec->result_len, (uint32_t)len + 1,
		                      memory_order_release);
	} else {
		process_write_all(plan->result_fd, &st, 1);
		process_write_all(plan->result_fd, data, len);
	}
	_exit(raised ? 1 : 0);
}

static void process_body(const void *arg)
{
	process_main(arg);
}

static pthread_once_t process_warm_once = PTHREAD_ONCE_INIT;

static void process_warm(void)
{
	void *warm[2];
	backtrace(warm, 2);
}

int mproc__child_process(const struct mproc__process_plan *plan, pid_t *pid)
{
	/* The unwinder is loaded on the first backtrace(), a dlopen that
	 * costs more than the fork: load it once here, and every child
	 * inherits it ready. */
	pthread_once(&process_warm_once, process_warm);
	return mproc__child_fork_run(process_body, plan, pid);
}
