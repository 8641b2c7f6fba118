/*
 * bench_overhead.c - one imap of 50,000 empty tasks at chunksize 1, with
 * the given task_timeout (0: none). Run under callgrind to count the
 * manager's instructions, which do not depend on how busy the machine is:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/bench/bench_overhead 0
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/bench/bench_overhead 10
 *
 * valgrind follows the forked workers too; the manager is the process with
 * by far the most instructions ("Collected").
 */
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

static int empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

int main(int argc, char *argv[])
{
	double timeout = argc > 1 ? atof(argv[1]) : 0;
	struct mproc_pool_opts o = {.processes = 2, .task_timeout = timeout};
	struct mproc_pool *p;
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	if (mproc_pool_open(&p, &o) < 0)
		return 1;
	mproc_input_range(&in, 0, 50000, 1);
	if (mproc_imap(p, empty, &in, 1, &it) < 0)
		return 1;
	size_t n = 0;
	while (mproc_iter_next(it, -1, &r) == 1)
		n++;
	mproc_iter_free(it);
	mproc_pool_close(p);
	mproc_pool_join(p);
	mproc_pool_free(p);
	printf("%zu tasks\n", n);
	return n == 50000 ? 0 : 1;
}
