/*
 * backend.c - the table of backends. Adding a backend: one file with its
 * struct mproc__backend_ops (be_*.c), and one line in backend_table below.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "backend.h"
#if HAVE_MPI
#include "mpijob.h"
#endif

static const struct {
	enum mproc_backend backend;
	enum mproc_start_method start;
	const struct mproc__backend_ops *ops;
} backend_table[] = {
	{MPROC_BACKEND_PROCESSES, MPROC_START_FORK, &mproc__backend_fork},
	{MPROC_BACKEND_PROCESSES, MPROC_START_FORKSERVER, &mproc__backend_forkserver},
	{MPROC_BACKEND_THREADS, MPROC_START_FORK, &mproc__backend_threads},
#if HAVE_MPI
	/* The agents fork every worker from their own unchanging state,
	 * whichever start method: both are the same there (docs/mpi.md). */
	{MPROC_BACKEND_MPI, MPROC_START_FORK, &mproc__backend_mpi},
	{MPROC_BACKEND_MPI, MPROC_START_FORKSERVER, &mproc__backend_mpi},
#endif
};

/* MPI's backend, or the processes' in a job of one rank; -ENOTSUP when
 * mproc_init did not start MPI (or the build has none). */
static enum mproc_backend mpi_or_local(int *rc)
{
	*rc = 0;
#if HAVE_MPI
	int n = mproc__mpi_world();
	if (n > 1)
		return MPROC_BACKEND_MPI;
	if (n == 1)
		return MPROC_BACKEND_PROCESSES;
#endif
	*rc = -ENOTSUP;
	return MPROC_BACKEND_MPI;
}

int mproc__backend_pick(const struct mproc_pool_opts *opts,
                        const struct mproc__backend_ops **ops)
{
	enum mproc_backend want = opts->backend;
	const char *env = getenv("MPROC_BACKEND");
	int rc;
	if (want == MPROC_BACKEND_MPI ||
	    (want == MPROC_BACKEND_PROCESSES && env && strcmp(env, "mpi") == 0)) {
		want = mpi_or_local(&rc);
		if (rc < 0)
			return rc;
	}
	bool backend = false, start = false;
	for (size_t i = 0; i < sizeof backend_table / sizeof backend_table[0]; i++) {
		backend |= backend_table[i].backend == want;
		start |= backend_table[i].start == opts->start_method;
		if (backend_table[i].backend == want &&
		    backend_table[i].start == opts->start_method) {
			*ops = backend_table[i].ops;
			return 0;
		}
	}
	/* Both known, but not together: the threads' start is no fork. */
	return backend && start ? -ENOTSUP : -EINVAL;
}
