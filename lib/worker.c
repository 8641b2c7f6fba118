/*
 * worker.c - the child's side: from fork to _exit.
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
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "pool.h"

#define RESULT_LATENCY_NS 200000u  /* 200 us */
#define RESULT_FLUSH_BYTES (256u * 1024u)

bool mproc__title_ready;

uint64_t mproc__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mproc_init(int argc, char *argv[], char *envp[])
{
#if HAVE_SETPROCTITLE
	if (!mproc__title_ready && argc > 0 && argv && argv[0]) {
		setproctitle_init(argc, argv, envp);
		mproc__title_ready = true;
	}
#else
	(void)argc, (void)argv, (void)envp;
#endif
}

/*
 * The only code that runs between fork() and the worker loop. The parent
 * blocked every signal around fork(), so no handler of the host program
 * runs here before the dispositions are reset. Allowed here: prctl,
 * getppid, close, sigaction, sigprocmask, _exit — all async-signal-safe —
 * then the title and the initializer, which may allocate: glibc's malloc
 * is reset in the child by its own fork handlers.
 */
static void worker_setup(const struct mproc__child_plan *plan)
{
	/* Die with the manager: the signal for a later death, the check for
	 * a manager that died before prctl took effect. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != plan->manager)
		_exit(0);

	/* Descriptors of the other workers and pools: keeping them would hide
	 * their EOF from those workers (fork does not honour O_CLOEXEC). */
	for (size_t i = 0; i < plan->nclose; i++)
		close(plan->close_fds[i]);

	/* The host's handlers are not the worker's: default dispositions, and
	 * Ctrl-C is the program's business, not every worker's. */
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa.sa_handler = sig == SIGINT ? SIG_IGN : SIG_DFL;
		sigaction(sig, &sa, NULL);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

#if HAVE_SETPROCTITLE
	if (mproc__title_ready)
		setproctitle("mproc worker %u", plan->number);
	else
#endif
	{
		char name[16];
		snprintf(name, sizeof name, "mproc-worker%u", plan->number);
		prctl(PR_SET_NAME, name);
	}

	if (plan->initializer)
		plan->initializer(plan->initarg);
}

struct worker {
	const struct mproc__child_plan *plan;
	struct mproc_decoder *dec;
	struct mproc_writer *w;
	struct mproc__buf in, out;
	size_t hdr_off;         /* open RESULT frame in out */
	uint64_t frame_id;      /* id of its first record */
	uint32_t frame_count;
	uint64_t frame_start_ns;
	uint64_t first_unflushed_ns;
	/* Read the clock only every `check_every` tasks: short tasks would
	 * otherwise spend a fair part of their time reading the timer. */
	uint32_t check_every, since_check;
	uint64_t last_check_ns;
};

static void worker_flush(struct worker *wk)
{
	size_t sent = 0;
	if (mproc__wire_write(wk->plan->result_fd, &wk->out, &sent) < 0)
		_exit(0); /* the manager is gone: nothing to report to */
	wk->out.len = 0;
	wk->first_unflushed_ns = 0;
}

static void worker_frame_open(struct worker *wk, uint64_t id)
{
	if (mproc__wire_begin(&wk->out, &wk->hdr_off) < 0)
		_exit(70);
	wk->frame_id = id;
	wk->frame_count = 0;
	wk->frame_start_ns = mproc__now_ns();
	if (!wk->first_unflushed_ns)
		wk->first_unflushed_ns = wk->frame_start_ns;
}

static void worker_frame_close(struct worker *wk)
{
	if (wk->frame_count == 0) {
		wk->out.len = wk->hdr_off;
		return;
	}
	mproc__wire_end(&wk->out, wk->hdr_off, MPROC__F_RESULT, 0,
	                wk->frame_count, wk->frame_id,
	                mproc__now_ns() - wk->frame_start_ns);
}

/* Write the result of a task that did not return normally as an exception. */
static void worker_raise_code(struct mproc_writer *w, int rc)
{
	if (rc == MPROC_EWRITER || rc == MPROC_EPICKLE_UTF8 ||
	    rc == MPROC_EPICKLE_DEPTH)
		mproc_raise(w, "ValueError", "task return value: %s",
		            mproc_strerror(rc));
	else
		mproc_raise(w, "OSError", "[%s] %s", mproc_err_name(rc),
		            mproc_strerror(rc));
}

/* Run one task record; append its result record to the open frame. */
static void worker_run(struct worker *wk, mproc_task_fn fn, uint8_t flags,
                       uint64_t id, const char *arg, uint32_t arglen)
{
	struct mproc__buf *out = &wk->out;
	if (mproc__buf_reserve(out, MPROC__RESULT_REC) < 0)
		_exit(70);
	size_t rec = out->len;
	out->len += MPROC__RESULT_REC;
	mproc__writer_attach(wk->w, out);

	/* The coarse clock costs no timer read; timeouts are far coarser. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	atomic_store_explicit(&wk->plan->status->start_ns,
	                      (uint64_t)ts.tv_sec * 1000000000u +
	                              (uint64_t)ts.tv_nsec,
	                      memory_order_relaxed);
	atomic_store_explicit(&wk->plan->status->task_id, id,
	                      memory_order_release);

	const struct mproc_value *v = NULL;
	int rc = mproc_decode(wk->dec, arg, arglen, &v);
	if (rc < 0) {
		mproc_raise(wk->w, "UnpicklingError", "task argument: %s",
		            mproc_decoder_error(wk->dec));
	} else if ((flags & MPROC__TF_STAR) &&
	           mproc_value_type(v) != MPROC_TUPLE) {
		mproc_raise(wk->w, "TypeError",
		            "starmap item must be a tuple, not %s",
		            mproc_type_name(mproc_value_type(v)));
	} else {
		rc = fn(v, wk->w);
		if (rc < 0 && !mproc__writer_raised(wk->w))
			worker_raise_code(wk->w, rc);
		else if (rc >= 0 && mproc__writer_top_type(wk->w) < 0)
			mproc_write_none(wk->w);
	}
	enum mproc_status status =
	        mproc__writer_raised(wk->w) ? MPROC_RAISED : MPROC_OK;
	rc = mproc__writer_end(wk->w);
	if (rc < 0) {
		/* What the task wrote is unusable: say so instead. */
		worker_raise_code(wk->w, rc);
		status = MPROC_RAISED;
		if (mproc__writer_end(wk->w) < 0)
			_exit(70);
	}
	mproc__writer_attach(wk->w, NULL);

	atomic_store_explicit(&wk->plan->status->task_id, 0,
	                      memory_order_release);
	uint32_t hdr[2] = {(uint32_t)(out->len - rec - MPROC__RESULT_REC),
	                   (uint32_t)status};
	memcpy(out->data + rec, hdr, sizeof hdr);
	wk->frame_count++;
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

static void worker_chunk(struct worker *wk, const struct mproc__frame *f,
                         const char *p)
{
	mproc_task_fn fn = (mproc_task_fn)(uintptr_t)f->ref;
	const char *end = p + f->len;
	worker_frame_open(wk, f->id);
	for (uint32_t k = 0; k < f->count; k++) {
		uint32_t len;
		if ((size_t)(end - p) < MPROC__TASK_REC)
			_exit(71);
		memcpy(&len, p, sizeof len);
		p += MPROC__TASK_REC;
		if ((size_t)(end - p) < len)
			_exit(71);
		worker_run(wk, fn, f->flags, f->id + k, p, len);
		p += len;
		/* Long tasks report as they finish, not at the end of the batch. */
		if (k + 1 < f->count && worker_should_flush(wk)) {
			worker_frame_close(wk);
			worker_flush(wk);
			worker_frame_open(wk, f->id + k + 1);
		}
	}
	worker_frame_close(wk);
}

_Noreturn void mproc__worker_main(const struct mproc__child_plan *plan)
{
	worker_setup(plan);

	struct worker wk = {.plan = plan, .check_every = 1};
	if (mproc_decoder_new(&wk.dec, &plan->limits) < 0 ||
	    mproc_writer_new(&wk.w, 5) < 0)
		_exit(70);
	size_t max = plan->limits.max_size ? plan->limits.max_size : (1u << 30);
	unsigned chunks = 0;

	for (;;) {
		ssize_t n = mproc__wire_read(plan->task_fd, &wk.in);
		if (n == 0)
			_exit(0);
		if (n < 0)
			_exit(n == -ENOMEM ? 70 : 0);
		size_t off = 0;
		struct mproc__frame f;
		const char *payload;
		int rc;
		while ((rc = mproc__wire_next(&wk.in, &off, &f, &payload, max)) == 1) {
			if (f.type != MPROC__F_TASK)
				_exit(71);
			worker_chunk(&wk, &f, payload);
			if (plan->maxtasks && ++chunks >= plan->maxtasks) {
				worker_flush(&wk);
				_exit(0);
			}
		}
		if (rc < 0)
			_exit(71);
		mproc__buf_consume(&wk.in, off);
		if (wk.out.len)
			worker_flush(&wk);
	}
}
