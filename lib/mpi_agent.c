/*
 * mpi_agent.c - a node agent: what every rank but 0 of an MPI job runs
 * inside mproc_init, until rank 0 ends.
 *
 * For each pool rank 0 opens (OPEN) it keeps status records in memory
 * shared with its workers, and for each worker rank 0 asks for (SPAWN) it
 * forks a worker exactly as the fork backend does (child.c: the same
 * setup, crash handler, limits and loop). It writes the TASK frames rank 0
 * sends into the worker's task pipe, with the function's address in this
 * process, and sends back every byte the worker writes to its result pipe,
 * with what its status record says. When a worker ends, the agent reaps
 * it and sends how it ended, its status record and its backtrace named
 * by object and offset (EXITED). Timeouts, retries, halting and the
 * decisions of a death are rank 0's engine's; signals come from it.
 *
 * The agent is single-threaded and never runs a task itself: every worker
 * starts from the same state, the agent's, as with a fork server.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "chan.h"
#include "child.h"
#include "clock.h"
#include "fdreg.h"
#include "mpijob.h"
#include "mpilink.h"
#include "wire.h"

#define STATUS_EVERY_NS 2000000u /* a running task's record, at most every 2 ms */

struct aworker {
	uint32_t pool, number;
	pid_t pid;
	int pidfd, task_wr, task_rd, result_rd;
	struct mproc__buf tout;  /* task bytes not yet written */
	size_t tout_off;
	bool hup;                /* close the task pipe once tout is out */
	bool tdrop;              /* a frame's first piece was lost: drop
	                          * its continuations too */
	bool eof;                /* its result pipe ended */
	struct mproc__status *st;
	struct mproc__mpi_st sent;
	uint64_t sent_ns;
};

struct apool {
	uint32_t id;
	struct mproc_pool_opts opts;
	unsigned nworkers;
	struct mproc__status *status;
	size_t status_len;
	struct aworker **w;      /* by number; NULL when none runs here */
};

static struct {
	MPI_Comm comm;
	struct mproc__mpi_sendq q;
	struct apool **pools;
	size_t npools, cappools;
	void **fns;              /* FUNC ids to addresses here */
	size_t nfns;
	char rbuf[256 * 1024];
	bool quit;
} A;

static struct apool *pool_of(uint32_t id)
{
	for (size_t i = 0; i < A.npools; i++)
		if (A.pools[i]->id == id)
			return A.pools[i];
	return NULL;
}

static void snapshot(const struct aworker *w, struct mproc__mpi_st *m)
{
	const struct mproc__status *st = w->st;
	*m = (struct mproc__mpi_st){
		.task_id = atomic_load(&st->task_id),
		.last_id = atomic_load(&st->last_id),
		.culprit = atomic_load(&st->culprit),
		.ready = atomic_load(&st->ready_ns) != 0,
		.retired_rss = atomic_load(&st->retired_rss),
		.crash_signal = atomic_load(&st->crash_signal),
	};
	if (m->crash_signal) {
		m->crash_code = st->crash_code;
		m->crash_addr = st->crash_addr;
		m->crash_rss = st->crash_rss;
		m->crash_vm = st->crash_vm;
		m->crash_errno = st->crash_errno;
		m->nframes = st->nframes > MPROC__MAX_FRAMES ? MPROC__MAX_FRAMES
		                                             : st->nframes;
	}
}

static void send0(const struct aworker *w, uint32_t type, int32_t a,
                  int32_t b, const void *p, size_t len)
{
	/* Rank 0 is finalizing: it reads nothing more. */
	if (A.quit)
		return;
	struct mproc__mpi_hdr h = {.type = type, .pool = w->pool,
	                           .worker = w->number, .a = a, .b = b};
	snapshot(w, &h.st);
	if (mproc__mpi_send(&A.q, A.comm, 0, &h, p, len) == -EPIPE)
		A.quit = true;
}

/* ---- workers ---------------------------------------------------------------- */

/*
 * Every descriptor of the agent but the worker's own two (0, 1 and 2
 * stay): MPI's sockets and shared memory among them, so that a task
 * scribbling over descriptors cannot reach the agent's link to rank 0.
 * *n set; NULL without memory.
 */
static int *agent_fds(int keep0, int keep1, size_t *n)
{
	*n = 0;
	size_t cap = 64;
	int *fds = malloc(cap * sizeof *fds);
	DIR *d = opendir("/proc/self/fd");
	if (!fds || !d) {
		if (d)
			closedir(d);
		return fds;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || e->d_name[0] == '.' || fd < 3 || fd == dirfd(d) ||
		    fd == keep0 || fd == keep1)
			continue;
		if (*n == cap) {
			int *f = reallocarray(fds, cap * 2, sizeof *f);
			if (!f)
				break;
			fds = f;
			cap *= 2;
		}
		fds[(*n)++] = (int)fd;
	}
	closedir(d);
	return fds;
}

static int worker_spawn(struct apool *pl, uint32_t number, pid_t *pid_out)
{
	int task[2], result[2];
	int *closelist = NULL;
	int rc;
	struct aworker *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	mproc__fdreg_lock();
	if ((rc = mproc__chan_pipes(task, result)) < 0)
		goto fail;
	struct mproc__child_plan plan;
	mproc__child_plan_init(&plan, &pl->opts, number, &pl->status[number]);
	plan.task_fd = task[0];
	plan.result_fd = result[1];
	plan.manager = getpid();
	plan.pdeathsig = true; /* the agent's one thread is its main one */
	size_t nfds;
	int *fds = agent_fds(task[0], result[1], &nfds);
	if (fds)
		closelist = mproc__fdreg_list_locked(fds, nfds, &plan.nclose);
	free(fds);
	if (!closelist || mproc__fdreg_reserve_locked(4) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	plan.close_fds = closelist;
	pid_t pid;
	if ((rc = mproc__child_fork(&plan, &pid)) < 0)
		goto fail;
	mproc__chan_forked_locked(task, result);
	mproc__fdreg_unlock();
	free(closelist);
	*w = (struct aworker){.pool = pl->id, .number = number, .pid = pid,
	                      .pidfd = mproc__proc_pidfd(pid), .task_wr = task[1],
	                      .task_rd = task[0], .result_rd = result[0],
	                      .st = &pl->status[number]};
	pl->w[number] = w;
	*pid_out = pid;
	return 0;
fail:
	free(closelist);
	mproc__chan_close(task, result);
	mproc__fdreg_unlock();
	free(w);
	return rc;
}

static void worker_write(struct aworker *w)
{
	while (w->task_wr >= 0 && w->tout_off < w->tout.len) {
		ssize_t n = write(w->task_wr, w->tout.data + w->tout_off,
		                  w->tout.len - w->tout_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			w->tout_off = w->tout.len; /* it closed its end: gone soon */
			break;
		}
		if (n <= 0)
			break;
		w->tout_off += (size_t)n;
	}
	if (w->tout_off >= w->tout.len) {
		w->tout.len = w->tout_off = 0;
		if (w->hup)
			mproc__fdreg_close(&w->task_wr);
	} else if (w->tout_off > (1u << 20)) {
		mproc__buf_consume(&w->tout, w->tout_off);
		w->tout_off = 0;
	}
}

/* Send what the worker wrote; false at its end of file. */
static bool worker_read(struct aworker *w, int rounds)
{
	for (int i = 0; i < rounds && w->result_rd >= 0; i++) {
		ssize_t n = read(w->result_rd, A.rbuf, sizeof A.rbuf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return true;
		if (n == 0) {
			w->eof = true;
			mproc__fdreg_close(&w->result_rd);
			send0(w, MPROC__M_RESULT, 0, 1, NULL, 0);
			return false;
		}
		send0(w, MPROC__M_RESULT, 0, 0, A.rbuf, (size_t)n);
		snapshot(w, &w->sent);
		w->sent_ns = mproc__coarse_ns();
	}
	return true;
}

/* The worker ended: what it wrote last, how it ended, its record and its
 * backtrace go to rank 0; then it is forgotten here. */
static void worker_end(struct apool *pl, struct aworker *w)
{
	while (w->result_rd >= 0 && worker_read(w, 64))
		if (w->result_rd >= 0) {
			/* Dead, so nothing more comes but end of file. */
			int fl = fcntl(w->result_rd, F_GETFL);
			fcntl(w->result_rd, F_SETFL, fl & ~O_NONBLOCK);
		}
	siginfo_t si = {0};
	int rc;
	do {
		rc = waitid(P_PID, (id_t)w->pid, &si, WEXITED);
	} while (rc < 0 && errno == EINTR);
	struct mproc__buf fr = {0};
	uint32_t nf = w->st->nframes > MPROC__MAX_FRAMES ? MPROC__MAX_FRAMES
	                                                 : w->st->nframes;
	if (atomic_load(&w->st->crash_signal)) {
		for (uint32_t i = 0; i < nf; i++) {
			char name[4096];
			uint64_t off = 0;
			if (mproc__mpi_name((void *)(uintptr_t)w->st->frames[i], name,
			                    sizeof name, &off) < 0)
				name[0] = '\0';
			uint16_t len = (uint16_t)strlen(name);
			if (mproc__buf_append(&fr, &off, 8) < 0 ||
			    mproc__buf_append(&fr, &len, 2) < 0 ||
			    mproc__buf_append(&fr, name, len) < 0)
				break;
		}
	}
	send0(w, MPROC__M_EXITED, si.si_code, si.si_status, fr.data, fr.len);
	mproc__buf_free(&fr);
	mproc__fdreg_close(&w->pidfd);
	mproc__fdreg_close(&w->task_wr);
	mproc__fdreg_close(&w->task_rd);
	mproc__fdreg_close(&w->result_rd);
	mproc__buf_free(&w->tout);
	pl->w[w->number] = NULL;
	free(w);
}

static bool worker_gone(const struct aworker *w, short pidfd_events)
{
	if (w->pidfd >= 0)
		return pidfd_events & POLLIN;
	/* No pidfd (valgrind): only after end of file, without reaping. */
	siginfo_t si = {0};
	return w->eof && (waitid(P_PID, (id_t)w->pid, &si,
	                         WEXITED | WNOHANG | WNOWAIT) < 0 ||
	                  si.si_pid);
}

static void worker_kill(struct aworker *w, int sig)
{
#if HAVE_PIDFD_OPEN
	if (w->pidfd >= 0 && pidfd_send_signal(w->pidfd, sig, NULL, 0) == 0)
		return;
#endif
	kill(w->pid, sig);
}

/* ---- pools ------------------------------------------------------------------ */

static void pool_free(struct apool *pl)
{
	for (unsigned i = 0; i < pl->nworkers; i++)
		if (pl->w[i]) {
			worker_kill(pl->w[i], SIGKILL);
			worker_end(pl, pl->w[i]);
		}
	if (pl->status)
		munmap(pl->status, pl->status_len);
	free(pl->w);
	free(pl);
}

static void *fn_at(int32_t id)
{
	return id >= 0 && (size_t)id < A.nfns ? A.fns[id] : NULL;
}

static void pool_open(uint32_t id, const char *p, size_t n)
{
	struct mproc__mpi_open o;
	if (n < sizeof o || pool_of(id))
		return;
	memcpy(&o, p, sizeof o);
	struct apool *pl = calloc(1, sizeof *pl);
	if (!pl)
		return;
	pl->id = id;
	pl->nworkers = o.nworkers;
	pl->opts = (struct mproc_pool_opts){
		.size = sizeof pl->opts,
		.processes = o.nworkers,
		.maxtasksperchild = o.maxtasks,
		.max_rss = (size_t)o.max_rss,
		.max_vm = (size_t)o.max_vm,
		.limits = {.max_size = (size_t)o.max_size, .max_depth = o.max_depth},
		.initializer = (mproc_initializer_fn)(uintptr_t)fn_at(o.init_fn),
		.initarg = fn_at(o.init_arg),
	};
	pl->w = calloc(o.nworkers ? o.nworkers : 1, sizeof *pl->w);
	pl->status_len = (o.nworkers ? o.nworkers : 1) * sizeof *pl->status;
	pl->status = mmap(NULL, pl->status_len, PROT_READ | PROT_WRITE,
	                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pl->status == MAP_FAILED)
		pl->status = NULL;
	if (!pl->w || !pl->status || A.npools == SIZE_MAX / 2) {
		pool_free(pl);
		return; /* its SPAWNs fail */
	}
	if (A.npools == A.cappools) {
		size_t cap = A.cappools ? A.cappools * 2 : 4;
		struct apool **np = reallocarray(A.pools, cap, sizeof *np);
		if (!np) {
			pool_free(pl);
			return;
		}
		A.pools = np;
		A.cappools = cap;
	}
	A.pools[A.npools++] = pl;
}

static void pool_close(uint32_t id)
{
	for (size_t i = 0; i < A.npools; i++)
		if (A.pools[i]->id == id) {
			struct apool *pl = A.pools[i];
			A.pools[i] = A.pools[--A.npools];
			pool_free(pl);
			return;
		}
}

/* ---- messages from rank 0 ------------------------------------------------------ */

static void handle(char *m, size_t len)
{
	struct mproc__mpi_hdr h;
	memcpy(&h, m, sizeof h);
	char *p = m + sizeof h;
	size_t n = len - sizeof h;
	struct apool *pl = pool_of(h.pool);
	struct aworker *w = pl && h.worker < pl->nworkers ? pl->w[h.worker] : NULL;
	switch (h.type) {
	case MPROC__M_OPEN:
		pool_open(h.pool, p, n);
		break;
	case MPROC__M_CLOSE:
		pool_close(h.pool);
		break;
	case MPROC__M_QUIT:
		A.quit = true;
		break;
	case MPROC__M_FUNC: {
		if (n < 9 || p[n - 1] != '\0' || h.a < 0)
			break;
		if ((size_t)h.a >= A.nfns) {
			void **f = reallocarray(A.fns, (size_t)h.a + 1, sizeof *f);
			if (!f)
				break;
			for (size_t i = A.nfns; i <= (size_t)h.a; i++)
				f[i] = NULL;
			A.fns = f;
			A.nfns = (size_t)h.a + 1;
		}
		uint64_t off;
		memcpy(&off, p, 8);
		A.fns[h.a] = mproc__mpi_resolve(p + 8, off);
		break;
	}
	case MPROC__M_SPAWN: {
		struct mproc__mpi_hdr r = {.type = MPROC__M_SPAWNED, .pool = h.pool,
		                           .worker = h.worker, .a = -EPIPE};
		pid_t pid;
		if (pl && h.worker < pl->nworkers && !w) {
			int rc = worker_spawn(pl, h.worker, &pid);
			r.a = rc < 0 ? rc : (int32_t)pid;
		}
		if (mproc__mpi_send(&A.q, A.comm, 0, &r, NULL, 0) == -EPIPE)
			A.quit = true;
		break;
	}
	case MPROC__M_TASK: {
		struct mproc__frame f;
		if (w && h.a == 1) {
			/* More of a frame too big for one MPI message (MPI
			 * counts are int): its bytes as they are. */
			if (!w->tdrop && mproc__buf_append(&w->tout, p, n) == 0)
				worker_write(w);
			else
				w->tdrop = true;
			break;
		}
		if (!w || n < sizeof f)
			break;
		memcpy(&f, p, sizeof f);
		/* An id this agent cannot resolve runs as a null function:
		 * the task crashes in its worker, which is what rank 0 hears. */
		f.ref = (uint64_t)(uintptr_t)fn_at((int32_t)(int64_t)f.ref);
		memcpy(p, &f, sizeof f);
		w->tdrop = mproc__buf_append(&w->tout, p, n) < 0;
		if (!w->tdrop)
			worker_write(w);
		break;
	}
	case MPROC__M_HANGUP:
		if (w) {
			w->hup = true;
			worker_write(w);
		}
		break;
	case MPROC__M_SIGNAL:
		if (w && w->pid == h.b)
			worker_kill(w, h.a);
		break;
	}
}

/* A running worker's record, when it changed and was not sent lately. */
static void status_report(struct aworker *w, uint64_t now)
{
	struct mproc__mpi_st m;
	snapshot(w, &m);
	if (m.task_id == w->sent.task_id && m.ready == w->sent.ready)
		return;
	if (m.ready == w->sent.ready && now - w->sent_ns < STATUS_EVERY_NS)
		return;
	send0(w, MPROC__M_STATUS, 0, 0, NULL, 0);
	w->sent = m;
	w->sent_ns = now;
}

_Noreturn void mproc__mpi_agent(MPI_Comm comm)
{
	A.comm = comm;
	/* Ctrl-C reaches every rank from mpirun: rank 0 decides; the agent
	 * ends when it does. */
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	struct pollfd *pfd = NULL;
	struct aworker **who = NULL;
	size_t cap = 0;
	uint64_t last_busy = mproc__now_ns();
	while (!A.quit) {
		size_t need = 0;
		for (size_t i = 0; i < A.npools; i++)
			need += 3 * (size_t)A.pools[i]->nworkers;
		if (need > cap) {
			struct pollfd *np = reallocarray(pfd, need, sizeof *np);
			struct aworker **nw = reallocarray(who, need, sizeof *nw);
			if (np)
				pfd = np;
			if (nw)
				who = nw;
			if (np && nw)
				cap = need;
		}
		size_t n = 0;
		for (size_t i = 0; i < A.npools; i++)
			for (unsigned j = 0; j < A.pools[i]->nworkers; j++) {
				struct aworker *w = A.pools[i]->w[j];
				if (!w || n + 3 > cap)
					continue;
				if (w->result_rd >= 0) {
					who[n] = w;
					pfd[n++] = (struct pollfd){.fd = w->result_rd,
					                           .events = POLLIN};
				}
				if (w->task_wr >= 0 && w->tout_off < w->tout.len) {
					who[n] = w;
					pfd[n++] = (struct pollfd){.fd = w->task_wr,
					                           .events = POLLOUT};
				}
				if (w->pidfd >= 0) {
					who[n] = w;
					pfd[n++] = (struct pollfd){.fd = w->pidfd,
					                           .events = POLLIN};
				}
			}
		struct timespec ts;
		mproc__mpi_backoff(mproc__now_ns() - last_busy, &ts);
		int r = ppoll(pfd, n, &ts, NULL);
		bool busy = r > 0;
		for (size_t k = 0; r > 0 && k < n; k++) {
			struct aworker *w = who[k];
			if (!pfd[k].revents)
				continue;
			if (pfd[k].fd == w->result_rd)
				worker_read(w, 4);
			else if (pfd[k].fd == w->task_wr)
				worker_write(w);
		}
		/* Ends last: a worker that ended is freed there. */
		uint64_t now = mproc__coarse_ns();
		for (size_t i = 0; i < A.npools; i++)
			for (unsigned j = 0; j < A.pools[i]->nworkers; j++) {
				struct aworker *w = A.pools[i]->w[j];
				if (!w)
					continue;
				short ev = 0;
				for (size_t k = 0; k < n; k++)
					if (who[k] == w && pfd[k].fd == w->pidfd)
						ev = r > 0 ? pfd[k].revents : 0;
				if (worker_gone(w, ev)) {
					worker_end(A.pools[i], w);
					busy = true;
				} else {
					status_report(w, now);
				}
			}
		for (int k = 0; k < 256 && !A.quit; k++) {
			void *m;
			size_t len;
			int src;
			int rc = mproc__mpi_recv(comm, &m, &len, &src);
			if (rc < 0 && rc != -ENOMEM && rc != -EPROTO)
				A.quit = true; /* rank 0 is gone */
			if (rc <= 0)
				break;
			handle(m, len);
			free(m);
			busy = true;
		}
		busy |= mproc__mpi_sendq_progress(&A.q);
		if (A.q.failed)
			A.quit = true;
		if (busy)
			last_busy = mproc__now_ns();
	}
	while (A.npools)
		pool_close(A.pools[0]->id);
	mproc__mpi_sendq_drain(&A.q);
	MPI_Finalize();
	_exit(0);
}
