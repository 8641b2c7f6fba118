/*
 * backend.c - the table of backends. Adding a backend: one file with its
 * struct mproc__backend_ops (be_*.c), and one line in backend_table below.
 */
#include <errno.h>

#include "backend.h"

static const struct {
	enum mproc_backend backend;
	enum mproc_start_method start;
	const struct mproc__backend_ops *ops;
} backend_table[] = {
	{MPROC_BACKEND_PROCESSES, MPROC_START_FORK, &mproc__backend_fork},
	{MPROC_BACKEND_PROCESSES, MPROC_START_FORKSERVER, &mproc__backend_forkserver},
	{MPROC_BACKEND_THREADS, MPROC_START_FORK, &mproc__backend_threads},
};

int mproc__backend_pick(const struct mproc_pool_opts *opts,
                        const struct mproc__backend_ops **ops)
{
	bool backend = false, start = false;
	for (size_t i = 0; i < sizeof backend_table / sizeof backend_table[0]; i++) {
		backend |= backend_table[i].backend == opts->backend;
		start |= backend_table[i].start == opts->start_method;
		if (backend_table[i].backend == opts->backend &&
		    backend_table[i].start == opts->start_method) {
			*ops = backend_table[i].ops;
			return 0;
		}
	}
	/* Both known, but not together: the threads' start is no fork. */
	return backend && start ? -ENOTSUP : -EINVAL;
}
