/*
 * be_mpi.c - the MPI backend, rank 0's side: each worker of the pool runs
 * on a node agent (mpi_agent.c, another rank of the same job), and is seen
 * by the engine as any other worker: a task pipe, a result pipe, an end
 * descriptor and a status record.
 *
 * One communication thread in rank 0 (the relay) serves every pool of the
 * MPI backend. For each remote worker it holds the far ends of the worker's
 * pipes: it reads TASK frames the engine writes and sends them to the
 * worker's agent, and writes the RESULT bytes the agent sends back into the
 * result pipe, unchanged. It also keeps the worker's status record in rank
 * 0 up to date from what the agent reports (the task running, ready), and
 * fills it completely from the agent's last report when the worker ends
 * (crash signal, address, memory, backtrace), so that the engine blames
 * and describes a remote death exactly as a local one.
 *
 * Taking work back (status.h) stays exact: the relay claims a frame's
 * tasks in rank 0's record when it sends the frame on, as a worker claims
 * them when it starts them, and skips a frame the engine took back first.
 * It sends a worker only what keeps it busy for about 2 ms by the time
 * its tasks took so far (one frame while that is unknown); the rest waits
 * in rank 0, where the engine can still take it back for an idle worker
 * on another node.
 *
 * MPI is called only with the relay's lock held (MPI_THREAD_SERIALIZED):
 * by the relay, and by the calls of the ops below, which send one message.
 *
 * Task functions cross as (loaded object, offset) pairs (mpilink.c),
 * named once and sent to every agent as FUNC before their first TASK.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "chan.h"
#include "clock.h"
#include "fdreg.h"
#include "mpijob.h"
#include "mpilink.h"
#include "wire.h"

/* A remote worker as the relay serves it. */
struct mpi_proxy {
	unsigned number;
	uint32_t pool;       /* its pool's id */
	int rank;            /* its agent */
	bool live;           /* started, not released */
	bool spawning;       /* SPAWN sent, no answer yet */
	int spawn_rc;
	pid_t pid;           /* on its node */
	bool exited;         /* EXITED came */
	bool ended;          /* and its end is signalled: reap may go */
	bool reaping;        /* the engine waits in reap */
	bool result_eof;     /* the agent saw the result pipe end */
	int end_code, end_status;
	int task_rd;         /* the relay's copy of the task pipe's read end */
	int result_wr;       /* the result pipe's write end */
	int exit_wr;         /* a copy of the end eventfd the engine polls */
	bool hup, hup_sent;  /* the engine closed the task pipe */
	struct mproc__buf tin;  /* task bytes read; tin_off.. not yet sent */
	size_t tin_off;
	uint64_t seq;           /* tasks of the stream claimed or skipped */
	struct mproc__buf rout; /* result bytes not yet written */
	size_t rout_off;
	/* The RESULT frames going by: how many tasks came back. */
	unsigned char rhdr[MPROC__FRAME_HDR];
	size_t rhdr_n;
	uint64_t rskip;
	/* Frames sent and not yet answered in full (tasks left of each). */
	uint32_t fifo[64];
	unsigned fhead, fn;
	uint64_t tasks_out;
	double ns_per_task;
};

struct mpi_pool {
	uint32_t id;
	struct mproc__backend *be;
	unsigned nworkers;
	struct mpi_proxy *px;
};

/* The job as rank 0 sees it, and the relay. */
static struct {
	bool started;        /* mproc_init started MPI here, as rank 0 */
	bool ready;          /* and the job can run pools */
	pid_t pid;           /* the process that did */
	MPI_Comm comm;
	int size;
	int *cpus;           /* each rank's usable CPUs (rank 0's unused) */
	unsigned total;      /* the agents' CPUs together */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool thread_on, stop, lost;
	pthread_t thread;
	int wakefd;
	uint64_t epoch;      /* bumped when a descriptor the relay polls goes */
	struct mproc__mpi_sendq q;
	struct mpi_pool **pools;
	size_t npools, cappools;
	uint32_t next_pool;
	/* Functions named so far: their address here and their id. */
	const void **fns;
	size_t nfns, capfns;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
       .wakefd = -1};

static void wake(void)
{
	uint64_t one = 1;
	if (W.wakefd >= 0)
		(void)!write(W.wakefd, &one, sizeof one);
}

/* Send to one agent, lock held. */
static int send_to(int rank, uint32_t type, uint32_t pool, uint32_t worker,
                   int32_t a, int32_t b, const void *payload, size_t len)
{
	struct mproc__mpi_hdr h = {.type = type, .pool = pool, .worker = worker,
	                           .a = a, .b = b};
	int rc = mproc__mpi_send(&W.q, W.comm, rank, &h, payload, len);
	if (rc == -EPIPE)
		W.lost = true;
	return rc;
}

/* The id of a function or static address, naming it to every agent the
 * first time; -1 when it has no name. Lock held. */
static int32_t fn_id(const void *addr)
{
	for (size_t i = 0; i < W.nfns; i++)
		if (W.fns[i] == addr)
			return (int32_t)i;
	char msg[8 + 4096];
	uint64_t off;
	if (mproc__mpi_name(addr, msg + 8, sizeof msg - 8, &off) < 0)
		return -1;
	if (W.nfns == W.capfns) {
		size_t cap = W.capfns ? W.capfns * 2 : 16;
		const void **f = reallocarray(W.fns, cap, sizeof *f);
		if (!f)
			return -1;
		W.fns = f;
		W.capfns = cap;
	}
	memcpy(msg, &off, 8);
	int32_t id = (int32_t)W.nfns;
	for (int r = 1; r < W.size; r++)
		if (send_to(r, MPROC__M_FUNC, 0, 0, id, 0, msg,
		            8 + strlen(msg + 8) + 1) < 0)
			return -1;
	W.fns[W.nfns++] = addr;
	return id;
}

/* ---- the relay -------------------------------------------------------------- */

static struct mpi_proxy *proxy_of(uint32_t pool, uint32_t worker)
{
	for (size_t i = 0; i < W.npools; i++)
		if (W.pools[i]->id == pool)
			return worker < W.pools[i]->nworkers ? &W.pools[i]->px[worker]
			                                      : NULL;
	return NULL;
}

static struct mproc__status *status_of(uint32_t pool, uint32_t worker)
{
	for (size_t i = 0; i < W.npools; i++)
		if (W.pools[i]->id == pool && worker < W.pools[i]->nworkers)
			return &W.pools[i]->be->status[worker];
	return NULL;
}

/* What the agent read of the worker's record, into rank 0's copy. Its
 * ready time is rank 0's clock: the node's may differ. */
static void status_apply(struct mproc__status *st, const struct mproc__mpi_st *m)
{
	atomic_store_explicit(&st->last_id, m->last_id, memory_order_relaxed);
	atomic_store_explicit(&st->task_id, m->task_id, memory_order_release);
	if (m->ready && !atomic_load_explicit(&st->ready_ns, memory_order_relaxed))
		atomic_store_explicit(&st->ready_ns, mproc__now_ns(),
		                      memory_order_release);
}

/* Its end: every result written, the result pipe closed, the end
 * descriptor readable. Lock held. */
static void proxy_finish(struct mpi_proxy *px)
{
	if (px->ended)
		return;
	bool drained = px->rout_off >= px->rout.len || px->reaping;
	if ((px->exited || px->result_eof) && drained && px->result_wr >= 0) {
		mproc__fdreg_close(&px->result_wr);
		W.epoch++;
	}
	if (!px->exited || !drained)
		return;
	uint64_t one = 1;
	if (px->exit_wr >= 0)
		(void)!write(px->exit_wr, &one, sizeof one);
	mproc__fdreg_close(&px->exit_wr);
	mproc__fdreg_close(&px->task_rd);
	W.epoch++;
	px->ended = true;
	pthread_cond_broadcast(&W.cv);
}

static void proxy_write(struct mpi_proxy *px)
{
	while (px->result_wr >= 0 && px->rout_off < px->rout.len) {
		ssize_t n = write(px->result_wr, px->rout.data + px->rout_off,
		                  px->rout.len - px->rout_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		px->rout_off += (size_t)n;
	}
	if (px->rout_off >= px->rout.len) {
		px->rout.len = px->rout_off = 0;
	} else if (px->rout_off > (1u << 20)) {
		mproc__buf_consume(&px->rout, px->rout_off);
		px->rout_off = 0;
	}
	proxy_finish(px);
}

/* Count the RESULT frames in bytes going to the engine: what came back. */
static void proxy_count_results(struct mpi_proxy *px, const char *p, size_t n)
{
	while (n) {
		if (px->rskip) {
			size_t k = n < px->rskip ? n : (size_t)px->rskip;
			px->rskip -= k;
			p += k, n -= k;
			continue;
		}
		size_t k = MPROC__FRAME_HDR - px->rhdr_n;
		if (k > n)
			k = n;
		memcpy(px->rhdr + px->rhdr_n, p, k);
		px->rhdr_n += k;
		p += k, n -= k;
		if (px->rhdr_n < MPROC__FRAME_HDR)
			continue;
		struct mproc__frame f;
		memcpy(&f, px->rhdr, sizeof f);
		px->rhdr_n = 0;
		px->rskip = mproc__frame_len(&f);
		uint64_t c = f.count;
		if (c) {
			double ns = (double)f.ref / (double)c;
			px->ns_per_task = px->ns_per_task ? 0.75 * px->ns_per_task + 0.25 * ns
			                                  : ns;
		}
		px->tasks_out = px->tasks_out > c ? px->tasks_out - c : 0;
		while (c && px->fn) {
			uint32_t *h = &px->fifo[px->fhead];
			uint32_t t = *h < c ? *h : (uint32_t)c;
			*h -= t, c -= t;
			if (!*h) {
				px->fhead = (px->fhead + 1) % 64;
				px->fn--;
			}
		}
	}
}

/* Enough sent to keep the worker busy for a while: the rest waits here,
 * where the engine may still take it back. Until a result says how long
 * its tasks take, one frame at a time: a long task first must not hold
 * quick ones sent behind it. */
static bool proxy_full(const struct mpi_proxy *px)
{
	if (px->fn == 0)
		return false;
	if (px->fn >= 64 || px->ns_per_task <= 0)
		return true;
	return (double)px->tasks_out * px->ns_per_task > 2e6;
}

/* The most bytes of a frame in one MPI message (their count is an int,
 * with the link's header); the agent's results come in pieces of its
 * read buffer already. */
#define MPI_PIECE ((size_t)1 << 30)

/* Send the complete frames read, as far as the worker needs them. */
static void proxy_forward(struct mpi_proxy *px, struct mproc__status *st)
{
	while (!px->exited && !proxy_full(px)) {
		size_t avail = px->tin.len - px->tin_off;
		if (avail < MPROC__FRAME_HDR)
			break;
		char *p = px->tin.data + px->tin_off;
		struct mproc__frame f;
		memcpy(&f, p, sizeof f);
		uint64_t flen = mproc__frame_len(&f);
		if (avail - MPROC__FRAME_HDR < flen)
			break;
		size_t total = MPROC__FRAME_HDR + (size_t)flen;
		px->tin_off += total;
		/* Claim them as the worker would (child.c): the engine takes
		 * back only whole frames it wrote, so a frame is taken back
		 * whole or not at all. */
		uint64_t last = px->seq + f.count;
		uint64_t c = atomic_load_explicit(&st->claim, memory_order_relaxed);
		bool taken = false;
		do {
			if ((c & MPROC__REVOKED) && last <= (c & ~MPROC__REVOKED)) {
				taken = true;
				break;
			}
		} while (!atomic_compare_exchange_weak_explicit(
		        &st->claim, &c, last, memory_order_acq_rel,
		        memory_order_relaxed));
		px->seq = last;
		if (f.type != MPROC__F_TASK)
			continue;
		/* Taken back whole: a frame the worker never sees, which
		 * counts for no maxtasksperchild, as the engine counts it. */
		if (taken)
			continue;
		int32_t id = fn_id((const void *)(uintptr_t)f.ref);
		f.ref = (uint64_t)(int64_t)id;
		memcpy(p, &f, sizeof f);
		/* MPI counts are int: a bigger frame goes in pieces, the
		 * first with its header, the rest as continuations (a = 1)
		 * that the agent appends as they are. */
		size_t first = total < MPI_PIECE ? total : MPI_PIECE;
		bool lost = send_to(px->rank, MPROC__M_TASK, px->pool, px->number,
		                    0, 0, p, first) < 0;
		for (size_t at = first; at < total && !lost; at += MPI_PIECE)
			lost = send_to(px->rank, MPROC__M_TASK, px->pool, px->number,
			               1, 0, p + at,
			               total - at < MPI_PIECE ? total - at
			                                      : MPI_PIECE) < 0;
		if (lost)
			continue; /* the agent is gone: its EXITED comes (lost) */
		px->fifo[(px->fhead + px->fn++) % 64] = f.count;
		px->tasks_out += f.count;
	}
	if (px->tin_off == px->tin.len) {
		px->tin.len = px->tin_off = 0;
	} else if (px->tin_off > (1u << 20)) {
		mproc__buf_consume(&px->tin, px->tin_off);
		px->tin_off = 0;
	}
	if (px->hup && !px->hup_sent && px->tin_off == px->tin.len &&
	    !px->exited) {
		send_to(px->rank, MPROC__M_HANGUP, px->pool, px->number, 0, 0, NULL, 0);
		px->hup_sent = true;
	}
}

static void proxy_read(struct mpi_proxy *px)
{
	for (int i = 0; i < 16 && px->task_rd >= 0; i++) {
		if (mproc__buf_reserve(&px->tin, 64 * 1024) < 0)
			return;
		ssize_t n = read(px->task_rd, px->tin.data + px->tin.len,
		                 px->tin.cap - px->tin.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		if (n == 0) {
			px->hup = true;
			mproc__fdreg_close(&px->task_rd);
			W.epoch++;
			return;
		}
		px->tin.len += (size_t)n;
	}
}

/* Every worker of a rank that is gone ends as killed. Lock held. */
static void lose_all(void)
{
	for (size_t i = 0; i < W.npools; i++)
		for (unsigned j = 0; j < W.pools[i]->nworkers; j++) {
			struct mpi_proxy *px = &W.pools[i]->px[j];
			if (px->spawning) {
				px->spawning = false;
				px->spawn_rc = -EPIPE;
			}
			if (px->live && !px->exited) {
				px->exited = true;
				px->end_code = CLD_KILLED;
				px->end_status = SIGKILL;
				px->reaping = true;
				proxy_finish(px);
			}
		}
	pthread_cond_broadcast(&W.cv);
}

/* The frames of a remote backtrace, at the same code here. */
static void frames_apply(struct mproc__status *st, const char *p, size_t n,
                         uint32_t nframes)
{
	uint32_t k = 0;
	for (; k < nframes && k < MPROC__MAX_FRAMES && n >= 10; k++) {
		uint64_t off;
		uint16_t len;
		memcpy(&off, p, 8);
		memcpy(&len, p + 8, 2);
		p += 10, n -= 10;
		if (len > n || len >= 4096)
			break;
		char name[4096];
		memcpy(name, p, len);
		name[len] = '\0';
		p += len, n -= len;
		void *a = mproc__mpi_resolve(name, off);
		st->frames[k] = (uint64_t)(uintptr_t)a;
	}
	st->nframes = k;
}

static void handle(const char *m, size_t len)
{
	struct mproc__mpi_hdr h;
	memcpy(&h, m, sizeof h);
	const char *p = m + sizeof h;
	size_t n = len - sizeof h;
	struct mpi_proxy *px = proxy_of(h.pool, h.worker);
	struct mproc__status *st = status_of(h.pool, h.worker);
	if (!px || !st)
		return;
	switch (h.type) {
	case MPROC__M_SPAWNED:
		if (px->spawning) {
			px->spawning = false;
			px->spawn_rc = h.a < 0 ? h.a : 0;
			px->pid = h.a;
			/* Live from here, not from when mpi_start's thread
			 * has the lock again: a worker that dies at once (its
			 * initializer fails) has its RESULT end and EXITED
			 * come right behind, maybe in this very round, and
			 * they must not be dropped. */
			px->live = h.a >= 0;
			pthread_cond_broadcast(&W.cv);
		}
		break;
	case MPROC__M_RESULT:
		if (!px->live || px->exited)
			break;
		if (n) {
			proxy_count_results(px, p, n);
			if (px->result_wr >= 0 && !px->reaping)
				(void)mproc__buf_append(&px->rout, p, n);
		}
		status_apply(st, &h.st);
		if (h.b)
			px->result_eof = true;
		proxy_write(px);
		break;
	case MPROC__M_STATUS:
		if (px->live && !px->exited)
			status_apply(st, &h.st);
		break;
	case MPROC__M_EXITED:
		if (!px->live || px->exited)
			break;
		status_apply(st, &h.st);
		atomic_store(&st->culprit, h.st.culprit);
		atomic_store(&st->retired_rss, h.st.retired_rss);
		if (h.st.crash_signal) {
			st->crash_code = h.st.crash_code;
			st->crash_addr = h.st.crash_addr;
			st->crash_rss = h.st.crash_rss;
			st->crash_vm = h.st.crash_vm;
			st->crash_errno = h.st.crash_errno;
			frames_apply(st, p, n, h.st.nframes);
			atomic_store_explicit(&st->crash_signal, h.st.crash_signal,
			                      memory_order_release);
		}
		px->exited = true;
		px->end_code = h.a;
		px->end_status = h.b;
		proxy_write(px);
		break;
	}
}

static void *relay_main(void *arg)
{
	(void)arg;
	struct pollfd *pfd = NULL;
	struct mpi_proxy **who = NULL;
	size_t cap = 0;
	uint64_t last_busy = mproc__now_ns();
	pthread_mutex_lock(&W.mu);
	while (!W.stop) {
		size_t need = 1;
		for (size_t i = 0; i < W.npools; i++)
			need += 2 * (size_t)W.pools[i]->nworkers;
		if (need > cap) {
			struct pollfd *np = reallocarray(pfd, need, sizeof *np);
			struct mpi_proxy **nw = reallocarray(who, need, sizeof *nw);
			if (np)
				pfd = np;
			if (nw)
				who = nw;
			if (np && nw)
				cap = need;
		}
		size_t n = 0;
		if (cap)
			pfd[n++] = (struct pollfd){.fd = W.wakefd, .events = POLLIN};
		for (size_t i = 0; i < W.npools && n + 2 <= cap; i++)
			for (unsigned j = 0; j < W.pools[i]->nworkers && n + 2 <= cap; j++) {
				struct mpi_proxy *px = &W.pools[i]->px[j];
				if (!px->live)
					continue;
				if (px->task_rd >= 0) {
					who[n] = px;
					pfd[n++] = (struct pollfd){.fd = px->task_rd,
					                           .events = POLLIN};
				}
				if (px->result_wr >= 0 && px->rout_off < px->rout.len) {
					who[n] = px;
					pfd[n++] = (struct pollfd){.fd = px->result_wr,
					                           .events = POLLOUT};
				}
			}
		uint64_t epoch = W.epoch;
		struct timespec ts;
		mproc__mpi_backoff(mproc__now_ns() - last_busy, &ts);
		pthread_mutex_unlock(&W.mu);
		int r = ppoll(pfd, n, &ts, NULL);
		pthread_mutex_lock(&W.mu);
		bool busy = r > 0;
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			uint64_t v;
			(void)!read(W.wakefd, &v, sizeof v);
		}
		/* A descriptor polled may have been closed meanwhile: its
		 * number may be another's now. Look again next round. */
		if (r > 0 && epoch == W.epoch) {
			for (size_t k = 1; k < n; k++) {
				if (!pfd[k].revents)
					continue;
				if (pfd[k].fd == who[k]->task_rd)
					proxy_read(who[k]);
				else if (pfd[k].fd == who[k]->result_wr)
					proxy_write(who[k]);
			}
		}
		for (size_t i = 0; i < W.npools; i++)
			for (unsigned j = 0; j < W.pools[i]->nworkers; j++) {
				struct mpi_proxy *px = &W.pools[i]->px[j];
				if (px->live && !px->exited)
					proxy_forward(px, &W.pools[i]->be->status[j]);
			}
		for (int k = 0; k < 256; k++) {
			void *m;
			size_t len;
			int src;
			int rc = mproc__mpi_recv(W.comm, &m, &len, &src);
			if (rc < 0 && rc != -ENOMEM && rc != -EPROTO)
				W.lost = true;
			if (rc <= 0)
				break;
			handle(m, len);
			free(m);
			busy = true;
		}
		busy |= mproc__mpi_sendq_progress(&W.q);
		if (W.q.failed)
			W.lost = true;
		if (W.lost)
			lose_all();
		if (busy)
			last_busy = mproc__now_ns();
	}
	pthread_mutex_unlock(&W.mu);
	free(pfd);
	free(who);
	return NULL;
}

/* Lock held. */
static int relay_start(void)
{
	if (W.thread_on)
		return 0;
	if (W.wakefd < 0) {
		W.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (W.wakefd < 0)
			return -errno;
		if (mproc__fdreg_add(W.wakefd) < 0) {
			close(W.wakefd);
			W.wakefd = -1;
			return -ENOMEM;
		}
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = -pthread_create(&W.thread, NULL, relay_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		W.thread_on = true;
	return rc;
}

/* ---- the backend's operations ---------------------------------------------- */

static int mpi_open(struct mproc__backend *be)
{
	if (!W.ready)
		return -ENOTSUP;
	struct mpi_pool *pl = calloc(1, sizeof *pl);
	if (!pl)
		return -ENOMEM;
	pl->px = calloc(be->nworkers, sizeof *pl->px);
	if (!pl->px) {
		free(pl);
		return -ENOMEM;
	}
	pl->be = be;
	pl->nworkers = be->nworkers;
	/* Slots go to the agents in proportion to their CPUs, interleaved
	 * (a CPU of each node, then a second of each...): the first workers
	 * are spread over every node. */
	unsigned maxc = 0, slot = 0;
	for (int r = 1; r < W.size; r++)
		if ((unsigned)W.cpus[r] > maxc)
			maxc = (unsigned)W.cpus[r];
	while (slot < pl->nworkers)
		for (unsigned round = 0; round < maxc && slot < pl->nworkers; round++)
			for (int r = 1; r < W.size && slot < pl->nworkers; r++)
				if (round < (unsigned)W.cpus[r])
					pl->px[slot++].rank = r;
	for (unsigned i = 0; i < pl->nworkers; i++)
		pl->px[i].task_rd = pl->px[i].result_wr = pl->px[i].exit_wr = -1;

	pthread_mutex_lock(&W.mu);
	int rc = 0;
	struct mproc__mpi_open o = {
		.nworkers = pl->nworkers,
		.maxtasks = be->opts->maxtasksperchild,
		.max_rss = be->opts->max_rss,
		.max_vm = be->opts->max_vm,
		.max_size = be->opts->limits.max_size,
		.max_depth = be->opts->limits.max_depth,
		.init_fn = -1,
		.init_arg = -1,
	};
	if (be->opts->initializer &&
	    (o.init_fn = fn_id((const void *)(uintptr_t)be->opts->initializer)) < 0)
		rc = MPROC_EUNNAMED;
	if (rc == 0 && be->opts->initarg &&
	    (o.init_arg = fn_id(be->opts->initarg)) < 0)
		rc = MPROC_EUNNAMED;
	if (rc == 0 && W.npools == W.cappools) {
		size_t cap = W.cappools ? W.cappools * 2 : 4;
		struct mpi_pool **p = reallocarray(W.pools, cap, sizeof *p);
		if (p) {
			W.pools = p;
			W.cappools = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (rc == 0)
		rc = relay_start();
	if (rc == 0) {
		pl->id = ++W.next_pool;
		for (int r = 1; r < W.size && rc == 0; r++)
			rc = send_to(r, MPROC__M_OPEN, pl->id, 0, 0, 0, &o, sizeof o);
	}
	if (rc == 0) {
		W.pools[W.npools++] = pl;
		be->state = pl;
		wake();
	}
	pthread_mutex_unlock(&W.mu);
	if (rc < 0) {
		free(pl->px);
		free(pl);
	}
	return rc;
}

static int mpi_start(struct mproc__backend *be, struct mproc__proc *p)
{
	struct mpi_pool *pl = be->state;
	if (!pl)
		return -EPIPE;
	struct mpi_proxy *px = &pl->px[p->number];
	int task[2] = {-1, -1}, result[2] = {-1, -1};
	int efd = -1, relay_rd = -1, exit_wr = -1;
	int rc;
	mproc__status_reset(&be->status[p->number]);

	mproc__fdreg_lock();
	if ((rc = mproc__chan_pipes(task, result)) < 0 ||
	    (rc = mproc__fdreg_reserve_locked(7)) < 0)
		goto fail;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	relay_rd = fcntl(task[0], F_DUPFD_CLOEXEC, 0);
	exit_wr = efd >= 0 ? fcntl(efd, F_DUPFD_CLOEXEC, 0) : -1;
	if (efd < 0 || relay_rd < 0 || exit_wr < 0 ||
	    fcntl(result[1], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(relay_rd, F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	int mine[] = {task[0], task[1], result[0], result[1], efd, relay_rd,
	              exit_wr};
	for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++)
		(void)mproc__fdreg_add_locked(mine[i]);
	mproc__fdreg_unlock();

	pthread_mutex_lock(&W.mu);
	int rank = px->rank;
	*px = (struct mpi_proxy){.number = p->number, .rank = rank,
	                         .pool = pl->id,
	                         .task_rd = relay_rd, .result_wr = result[1],
	                         .exit_wr = exit_wr, .spawning = true};
	if (W.lost ||
	    send_to(rank, MPROC__M_SPAWN, pl->id, p->number, 0, 0, NULL, 0) < 0)
		px->spawning = false, px->spawn_rc = -EPIPE;
	while (px->spawning)
		pthread_cond_wait(&W.cv, &W.mu);
	rc = px->spawn_rc;
	if (rc == 0) {
		wake(); /* live since SPAWNED came (handle) */
	} else {
		px->task_rd = px->result_wr = px->exit_wr = -1;
	}
	pid_t pid = px->pid;
	pthread_mutex_unlock(&W.mu);
	if (rc < 0) {
		int t[2] = {task[0], task[1]}, res[2] = {result[0], result[1]};
		mproc__fdreg_close(&t[0]);
		mproc__fdreg_close(&t[1]);
		mproc__fdreg_close(&res[0]);
		mproc__fdreg_close(&res[1]);
		mproc__fdreg_close(&efd);
		mproc__fdreg_close(&relay_rd);
		mproc__fdreg_close(&exit_wr);
		return rc;
	}
	mproc__proc_started(p, pid, efd, task[1], task[0], result[0]);
	return 0;

fail:
	mproc__chan_close(task, result);
	if (efd >= 0)
		close(efd);
	if (relay_rd >= 0)
		close(relay_rd);
	if (exit_wr >= 0)
		close(exit_wr);
	mproc__fdreg_unlock();
	return rc;
}

static void mpi_signal(struct mproc__backend *be, struct mproc__proc *p,
                       int sig)
{
	struct mpi_pool *pl = be->state;
	if (!pl)
		return;
	pthread_mutex_lock(&W.mu);
	struct mpi_proxy *px = &pl->px[p->number];
	if (px->live && !px->exited)
		send_to(px->rank, MPROC__M_SIGNAL, pl->id, p->number, sig, px->pid,
		        NULL, 0);
	pthread_mutex_unlock(&W.mu);
}

static void mpi_reap(struct mproc__backend *be, struct mproc__proc *p,
                     siginfo_t *si)
{
	struct mpi_pool *pl = be->state;
	memset(si, 0, sizeof *si);
	si->si_pid = p->pid;
	si->si_code = CLD_KILLED;
	si->si_status = SIGKILL;
	if (!pl)
		return;
	pthread_mutex_lock(&W.mu);
	struct mpi_proxy *px = &pl->px[p->number];
	/* What it wrote no one reads any more once its end came. */
	px->reaping = true;
	if (px->exited)
		proxy_finish(px);
	while (px->live && !px->ended && W.thread_on)
		pthread_cond_wait(&W.cv, &W.mu);
	if (px->ended) {
		si->si_code = px->end_code;
		si->si_status = px->end_status;
	}
	pthread_mutex_unlock(&W.mu);
}

static void proxy_drop(struct mpi_proxy *px)
{
	mproc__fdreg_close(&px->task_rd);
	mproc__fdreg_close(&px->result_wr);
	mproc__fdreg_close(&px->exit_wr);
	mproc__buf_free(&px->tin);
	mproc__buf_free(&px->rout);
	px->live = false;
	W.epoch++;
}

static void mpi_release(struct mproc__backend *be, struct mproc__proc *p)
{
	struct mpi_pool *pl = be->state;
	if (!pl)
		return;
	pthread_mutex_lock(&W.mu);
	proxy_drop(&pl->px[p->number]);
	pthread_mutex_unlock(&W.mu);
}

static void mpi_close(struct mproc__backend *be)
{
	struct mpi_pool *pl = be->state;
	if (!pl)
		return;
	pthread_mutex_lock(&W.mu);
	for (size_t i = 0; i < W.npools; i++)
		if (W.pools[i] == pl) {
			W.pools[i] = W.pools[--W.npools];
			break;
		}
	for (unsigned i = 0; i < pl->nworkers; i++)
		proxy_drop(&pl->px[i]);
	for (int r = 1; r < W.size && !W.lost; r++)
		send_to(r, MPROC__M_CLOSE, pl->id, 0, 0, 0, NULL, 0);
	pthread_mutex_unlock(&W.mu);
	free(pl->px);
	free(pl);
	be->state = NULL;
}

static unsigned mpi_cpus(void)
{
	return W.total ? W.total : 1;
}

/* A task function must have a name the agents can find (mpilink.c). */
static int mpi_task_ok(struct mproc__backend *be, mproc_task_fn fn)
{
	(void)be;
	static _Atomic(mproc_task_fn) last_ok;
	if (atomic_load_explicit(&last_ok, memory_order_relaxed) == fn)
		return 0;
	char name[4096];
	uint64_t off;
	if (mproc__mpi_name((const void *)(uintptr_t)fn, name, sizeof name,
	                    &off) < 0)
		return MPROC_EUNNAMED;
	atomic_store_explicit(&last_ok, fn, memory_order_relaxed);
	return 0;
}

const struct mproc__backend_ops mproc__backend_mpi = {
	.name = "mpi",
	.processes = true,
	.remote = true,
	.open = mpi_open,
	.start = mpi_start,
	.signal = mpi_signal,
	.reap = mpi_reap,
	.release = mpi_release,
	.lost = "a node agent of the MPI job is gone; no worker can start there",
	.close = mpi_close,
	.cpus = mpi_cpus,
	.task_ok = mpi_task_ok,
};

/* ---- the job's start and end -------------------------------------------------- */

/* Rank 0 at exit: the relay stops, every agent is told to end, MPI is
 * finalized. Only in the process that started MPI (not in a child of a
 * fork that exits). */
static void mpi_atexit(void)
{
	if (!W.started || getpid() != W.pid)
		return;
	pthread_mutex_lock(&W.mu);
	W.stop = true;
	wake();
	bool on = W.thread_on;
	pthread_mutex_unlock(&W.mu);
	if (on)
		pthread_join(W.thread, NULL);
	pthread_mutex_lock(&W.mu);
	W.thread_on = false;
	pthread_cond_broadcast(&W.cv);
	for (int r = 1; r < W.size && !W.lost; r++)
		send_to(r, MPROC__M_QUIT, 0, 0, 0, 0, NULL, 0);
	mproc__mpi_sendq_drain(&W.q);
	W.ready = false;
	pthread_mutex_unlock(&W.mu);
	int fin = 0;
	MPI_Finalized(&fin);
	if (!fin)
		MPI_Finalize();
}

int mproc__mpi_start(void)
{
	const char *e = getenv("MPROC_BACKEND");
	if (!e || strcmp(e, "mpi") != 0 || W.started)
		return 0;
	int inited = 0, provided = 0;
	MPI_Initialized(&inited);
	if (inited)
		MPI_Query_thread(&provided);
	else if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) !=
	         MPI_SUCCESS)
		return -ENOTSUP;
	if (provided < MPI_THREAD_SERIALIZED)
		return -ENOTSUP;
	int rank, size;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Comm comm;
	if (MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &comm) != MPI_SUCCESS)
		return -ENOTSUP;
	MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
	/* Each agent says its CPUs and byte order to rank 0, then serves it.
	 * Rank 0 hears every agent whatever happens here: from then on, only
	 * its QUIT (at exit) ends them. */
	int mine[2] = {mproc_process_cpu_count(), 0x01020304};
	if (rank != 0) {
		MPI_Send(mine, 2, MPI_INT, 0, MPROC__MPI_TAG + 1, comm);
		mproc__mpi_agent(comm); /* never returns */
	}
	W.comm = comm;
	W.size = size;
	W.pid = getpid();
	W.cpus = calloc((size_t)size, sizeof *W.cpus);
	int rc = W.cpus ? 0 : -ENOMEM;
	for (int r = 1; r < size; r++) {
		int got[2] = {1, 0};
		MPI_Recv(got, 2, MPI_INT, r, MPROC__MPI_TAG + 1, comm,
		         MPI_STATUS_IGNORE);
		if (got[1] != mine[1])
			rc = -ENOTSUP;
		if (W.cpus) {
			W.cpus[r] = got[0] > 0 ? got[0] : 1;
			W.total += (unsigned)W.cpus[r];
		}
	}
	W.started = true;
	W.ready = rc == 0;
	atexit(mpi_atexit);
	return rc;
}

int mproc__mpi_world(void)
{
	return W.ready ? W.size : 0;
}
