/*
 * mpilink.h - what rank 0 (be_mpi.c) and the node agents (mpi_agent.c)
 * say to each other over MPI, and how a code address crosses between
 * processes that did not fork from each other (mpilink.c).
 *
 * Every message is one MPI message of MPI_BYTE on the job's own
 * communicator (split from MPI_COMM_WORLD) with one tag: a fixed header
 * (struct mproc__mpi_hdr) and a payload. MPI keeps the order of the
 * messages between two ranks, and the protocol relies on it: a worker's
 * RESULT bytes all come before its EXITED.
 *
 * At the start (mproc__mpi_start), each agent first sends rank 0 its
 * usable CPUs and a byte-order mark, two ints with tag MPROC__MPI_TAG + 1.
 *
 * Rank 0 -> agent:
 *   OPEN   a pool's options for its workers there (struct mproc__mpi_open)
 *   SPAWN  start worker `worker` of pool `pool`
 *   FUNC   function id `a` is (payload) u64 offset, then the object's name
 *   TASK   one TASK frame for a worker, its ref a FUNC id
 *   SIGNAL send signal `a` to the worker whose pid is `b`
 *   CLOSE  the pool is gone
 *   QUIT   rank 0 is finalizing: stop every worker, finalize, exit
 *   HANGUP the engine closed the worker's task pipe: close it there too,
 *          after the frames sent before
 * Agent -> rank 0:
 *   SPAWNED the worker's pid in `a`, or a negated errno
 *   RESULT  bytes the worker wrote to its result pipe; `b` set when the
 *           pipe ended there
 *   STATUS  its status record changed (st)
 *   EXITED  it ended: si_code `a`, si_status `b`, its last status (st) and
 *           its backtrace (payload: per frame u64 offset, u16 name length,
 *           the object's name)
 * Every agent message carries the worker's status (st) as read last.
 *
 * Integers are in host byte order: every rank runs the same binary, and
 * mproc_init refuses a job whose ranks disagree on byte order.
 */
#ifndef MPROC_MPILINK_H
#define MPROC_MPILINK_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MPROC__MPI_TAG 7301

enum {
	MPROC__M_OPEN = 1,
	MPROC__M_SPAWN,
	MPROC__M_FUNC,
	MPROC__M_TASK,
	MPROC__M_SIGNAL,
	MPROC__M_CLOSE,
	MPROC__M_QUIT,
	MPROC__M_HANGUP,
	MPROC__M_SPAWNED,
	MPROC__M_RESULT,
	MPROC__M_STATUS,
	MPROC__M_EXITED,
};

/* What rank 0 needs of a remote worker's status record (status.h). */
struct mproc__mpi_st {
	uint64_t task_id, last_id, culprit;
	uint64_t crash_addr, crash_rss, crash_vm;
	int32_t crash_signal, crash_code, crash_errno;
	uint32_t ready, retired_rss, nframes;
};

struct mproc__mpi_hdr {
	uint32_t type;
	uint32_t pool;
	uint32_t worker;
	int32_t a, b;
	uint32_t zero;
	struct mproc__mpi_st st;
};

/* OPEN's payload: what a worker's plan takes from the pool's options. */
struct mproc__mpi_open {
	uint32_t nworkers;
	uint32_t maxtasks;
	uint64_t max_rss, max_vm;
	uint64_t max_size;
	uint32_t max_depth;
	int32_t init_fn;   /* FUNC id of the initializer, -1 none */
	int32_t init_arg;  /* FUNC id of initarg's address, -1 NULL */
	uint32_t zero;
};

/* Messages sent and not yet known delivered (MPI_Isend's buffers). */
struct mproc__mpi_sendq {
	MPI_Request *req;
	void **buf;
	size_t n, cap;
	bool failed; /* a send failed: the peer is gone */
};

/* Send hdr + payload to `dest` without blocking; the queue keeps the
 * buffer until MPI is done with it. 0, -ENOMEM or -EPIPE. */
int mproc__mpi_send(struct mproc__mpi_sendq *q, MPI_Comm comm, int dest,
                    const struct mproc__mpi_hdr *h, const void *payload,
                    size_t len);
/* Free the buffers of completed sends; true when some completed. */
bool mproc__mpi_sendq_progress(struct mproc__mpi_sendq *q);
/* Wait for every send, then free the queue. */
void mproc__mpi_sendq_drain(struct mproc__mpi_sendq *q);

/* The next message if one has come: 1 with *msg (malloc'd, the header
 * first) and *len, *src; 0 when none; a negative code when MPI failed. */
int mproc__mpi_recv(MPI_Comm comm, void **msg, size_t *len, int *src);

/*
 * Name a code or data address: the loaded object holding it (its name as
 * the dynamic loader has it, "" for the program) and its offset from the
 * object's load address. 0, or -ENOENT when no loaded object holds it (a
 * JIT buffer, the heap, a stack).
 */
int mproc__mpi_name(const void *addr, char *name, size_t cap,
                    uint64_t *offset);
/* The address a name gives in this process (loading a shared object by
 * name if it is not loaded yet); NULL when it cannot. */
void *mproc__mpi_resolve(const char *name, uint64_t offset);

/* How long to wait on the descriptors before looking at MPI again, when
 * nothing happened for quiet_ns: none at first, then 20 us, growing to
 * 1 ms when nothing happened for a while. */
void mproc__mpi_backoff(uint64_t quiet_ns, struct timespec *ts);

#endif
