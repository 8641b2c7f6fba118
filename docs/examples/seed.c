/*
 * seed.c - the introductory Python Pool example, in C with mproc.
 *
 * Python:
 *     from multiprocessing import Pool, cpu_count
 *     def f(x): return x
 *     print(cpu_count())
 *     with Pool(cpu_count()) as p:
 *         for y in p.imap(f, range(10)): print(y)
 *     with Pool(4) as p:
 *         for y in p.imap_unordered(f, range(10)): print(y)
 *
 * Run: build/docs/examples/seed
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

/* The task: return its argument unchanged. */
static int identity(const struct mproc_value *arg, struct mproc_writer *ret)
{
	return mproc_write_value(ret, arg);
}

static int run(unsigned processes, bool ordered)
{
	struct mproc_pool_opts opts = {.processes = processes};
	struct mproc_pool *pool;
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	int rc;

	if ((rc = mproc_pool_open(&pool, &opts)) < 0)
		return rc;
	mproc_input_range(&in, 0, 10, 1);
	rc = ordered ? mproc_imap(pool, identity, &in, 1, &it)
	             : mproc_imap_unordered(pool, identity, &in, 1, &it);
	if (rc == 0) {
		while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
			int64_t v;
			if (r->status == MPROC_OK && mproc_value_int(r->value, &v) == 0)
				printf("%" PRId64 "\n", v);
			else
				printf("index %zu: %s\n", r->index,
				       mproc_status_name(r->status));
		}
		mproc_iter_free(it);
	}
	mproc_pool_close(pool);
	mproc_pool_join(pool);
	mproc_pool_free(pool);
	return rc;
}

int main(int argc, char *argv[], char *envp[])
{
	mproc_init(argc, argv, envp);
	int ncpu = mproc_cpu_count();
	printf("cpu_count\n%d\n", ncpu);
	printf("imap, %d processes\n", ncpu);
	fflush(stdout);
	int rc = run((unsigned)ncpu, true);
	if (rc == 0) {
		printf("imap_unordered, 4 processes\n");
		fflush(stdout);
		rc = run(4, false);
	}
	if (rc < 0) {
		fprintf(stderr, "seed: %s\n", mproc_strerror(rc));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
