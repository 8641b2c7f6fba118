/*
 * mpilink.c - the transport between rank 0 and the node agents
 * (mpilink.h): non-blocking sends whose buffers are kept until MPI is done
 * with them, probing receives, and naming addresses across processes.
 *
 * Sends never block: two ranks each sending a large message to the other
 * with MPI_Send would wait for each other forever.
 */
#include <errno.h>
#include <link.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpilink.h"

int mproc__mpi_send(struct mproc__mpi_sendq *q, MPI_Comm comm, int dest,
                    const struct mproc__mpi_hdr *h, const void *payload,
                    size_t len)
{
	if (q->failed)
		return -EPIPE;
	if (len > (size_t)INT32_MAX - sizeof *h)
		return -EMSGSIZE;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		MPI_Request *r = reallocarray(q->req, cap, sizeof *r);
		if (!r)
			return -ENOMEM;
		q->req = r;
		void **b = reallocarray(q->buf, cap, sizeof *b);
		if (!b)
			return -ENOMEM;
		q->buf = b;
		q->cap = cap;
	}
	char *m = malloc(sizeof *h + len);
	if (!m)
		return -ENOMEM;
	memcpy(m, h, sizeof *h);
	if (len)
		memcpy(m + sizeof *h, payload, len);
	MPI_Request req;
	if (MPI_Isend(m, (int)(sizeof *h + len), MPI_BYTE, dest, MPROC__MPI_TAG,
	              comm, &req) != MPI_SUCCESS) {
		free(m);
		q->failed = true;
		return -EPIPE;
	}
	/* A small message is usually out at once: no need to keep it. */
	int done = 0;
	if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
		q->failed = true;
		done = 0;
	}
	if (done) {
		free(m);
		return 0;
	}
	q->req[q->n] = req;
	q->buf[q->n++] = m;
	return 0;
}

bool mproc__mpi_sendq_progress(struct mproc__mpi_sendq *q)
{
	bool any = false;
	size_t j = 0;
	for (size_t i = 0; i < q->n; i++) {
		int done = 0;
		if (MPI_Test(&q->req[i], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
			q->failed = true;
			done = 1; /* the peer is gone: the buffer is ours again */
		}
		if (done) {
			free(q->buf[i]);
			any = true;
		} else {
			q->req[j] = q->req[i];
			q->buf[j++] = q->buf[i];
		}
	}
	q->n = j;
	return any;
}

void mproc__mpi_sendq_drain(struct mproc__mpi_sendq *q)
{
	while (q->n && !q->failed) {
		if (!mproc__mpi_sendq_progress(q)) {
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL);
		}
	}
	/* After a failure MPI may still hold the buffers: leave them. */
	if (!q->failed)
		for (size_t i = 0; i < q->n; i++)
			free(q->buf[i]);
	free(q->req);
	free(q->buf);
	*q = (struct mproc__mpi_sendq){0};
}

int mproc__mpi_recv(MPI_Comm comm, void **msg, size_t *len, int *src)
{
	int flag = 0;
	MPI_Status st;
	if (MPI_Iprobe(MPI_ANY_SOURCE, MPROC__MPI_TAG, comm, &flag, &st) !=
	    MPI_SUCCESS)
		return -EPIPE;
	if (!flag)
		return 0;
	int n = 0;
	MPI_Get_count(&st, MPI_BYTE, &n);
	char *m = malloc(n > 0 ? (size_t)n : 1);
	if (!m)
		return -ENOMEM;
	if (MPI_Recv(m, n, MPI_BYTE, st.MPI_SOURCE, MPROC__MPI_TAG, comm,
	             MPI_STATUS_IGNORE) != MPI_SUCCESS) {
		free(m);
		return -EPIPE;
	}
	if ((size_t)n < sizeof(struct mproc__mpi_hdr)) {
		free(m);
		return -EPROTO;
	}
	*msg = m;
	*len = (size_t)n;
	*src = st.MPI_SOURCE;
	return 1;
}

/* ---- names of addresses --------------------------------------------------- */

struct find_addr {
	uintptr_t addr;
	const char *name;
	uintptr_t base;
	bool found;
};

static int find_addr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct find_addr *f = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (f->addr >= lo && f->addr - lo < ph->p_memsz) {
			f->name = info->dlpi_name ? info->dlpi_name : "";
			f->base = info->dlpi_addr;
			f->found = true;
			return 1;
		}
	}
	return 0;
}

int mproc__mpi_name(const void *addr, char *name, size_t cap,
                    uint64_t *offset)
{
	struct find_addr f = {.addr = (uintptr_t)addr};
	dl_iterate_phdr(find_addr_cb, &f);
	/* The kernel's vDSO sits at a random place of its own in each process. */
	if (!f.found || strstr(f.name, "linux-vdso") || strlen(f.name) >= cap)
		return -ENOENT;
	strcpy(name, f.name);
	*offset = (uint64_t)(f.addr - f.base);
	return 0;
}

struct find_name {
	const char *name;
	uintptr_t base;
	bool found;
};

static int find_name_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct find_name *f = arg;
	const char *n = info->dlpi_name ? info->dlpi_name : "";
	if (strcmp(n, f->name) != 0)
		return 0;
	f->base = info->dlpi_addr;
	f->found = true;
	return 1;
}

void *mproc__mpi_resolve(const char *name, uint64_t offset)
{
	struct find_name f = {.name = name};
	dl_iterate_phdr(find_name_cb, &f);
	if (!f.found && name[0]) {
		/* Loaded by the program on rank 0 after it started (dlopen):
		 * load it here too, for good. */
		if (!dlopen(name, RTLD_NOW | RTLD_GLOBAL))
			return NULL;
		dl_iterate_phdr(find_name_cb, &f);
	}
	return f.found ? (void *)(f.base + (uintptr_t)offset) : NULL;
}

void mproc__mpi_backoff(uint64_t quiet_ns, struct timespec *ts)
{
	/* MPI has no descriptor to wait on: look again at once right after
	 * something happened (a reply often comes within tens of
	 * microseconds), every 20 us while work is likely to follow (a
	 * stream of applies), then less and less often, at most 1 ms apart. */
	long ns;
	if (quiet_ns < 200000)
		ns = 0;
	else if (quiet_ns < 20000000)
		ns = 20000;
	else
		ns = quiet_ns / 20 < 1000000 ? (long)(quiet_ns / 20) : 1000000;
	*ts = (struct timespec){0, ns};
}
