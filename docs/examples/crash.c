/*
 * crash.c - a batch over a library that sometimes crashes: every input
 * still ends in exactly one result.
 *
 * Maps a task over 0..19 where inputs 3, 11 and 17 segfault, 7 calls
 * abort(), 13 calls exit(2) and 5 loops forever (the pool's task timeout
 * is 1 second). Prints one line per index with its status and
 * description, then the pool's statistics. Python's Pool would hang on
 * the first crash.
 *
 * Run: build/docs/examples/crash
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

static volatile int *volatile nowhere;

/* Stands for a call into a C library that is not always well behaved. */
static int parse(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x;
	if (mproc_value_int(arg, &x) < 0)
		return mproc_raise(ret, "TypeError", "expected an int");
	switch (x) {
	case 3: case 11: case 17:
		*nowhere = 1; /* SIGSEGV */
		break;
	case 7:
		abort();
	case 13:
		exit(2);
	case 5:
		for (;;)
			;
	}
	return mproc_write_int(ret, x * x);
}

int main(int argc, char *argv[], char *envp[])
{
	mproc_init(argc, argv, envp);
	struct mproc_pool_opts opts = {.processes = 2, .task_timeout = 1.0};
	struct mproc_pool *pool;
	struct mproc_input in;
	struct mproc_results *res;
	int rc = mproc_pool_open(&pool, &opts);
	if (rc < 0) {
		fprintf(stderr, "crash: %s\n", mproc_strerror(rc));
		return EXIT_FAILURE;
	}
	mproc_input_range(&in, 0, 20, 1);
	rc = mproc_map(pool, parse, &in, 1, &res);
	if (rc < 0 && rc != MPROC_ERAISED) {
		fprintf(stderr, "crash: map: %s\n", mproc_strerror(rc));
		mproc_pool_free(pool);
		return EXIT_FAILURE;
	}
	struct mproc_result r;
	for (size_t i = 0; i < mproc_results_count(res); i++) {
		mproc_results_get(res, i, &r);
		int64_t v;
		if (r.status == MPROC_OK && mproc_value_int(r.value, &v) == 0)
			printf("%2zu %-8s %" PRId64 "\n", r.index,
			       mproc_status_name(r.status), v);
		else
			printf("%2zu %-8s %s: %s\n", r.index,
			       mproc_status_name(r.status), r.error->type, r.error->msg);
	}
	/* The first crash report: the worker's backtrace at the fault. */
	for (size_t i = 0; i < mproc_results_count(res); i++) {
		mproc_results_get(res, i, &r);
		const struct mproc_crash *c = r.error ? r.error->crash : NULL;
		if (c && c->report) {
			printf("report of index %zu (si_code %d, address %#lx):\n%s",
			       i, c->si_code, (unsigned long)c->addr, c->report);
			break;
		}
	}
	mproc_results_free(res);

	struct mproc_pool_stats st;
	mproc_pool_stats(pool, &st);
	printf("tasks %llu: ok %llu, raised %llu, crashed %llu, timed out %llu\n",
	       (unsigned long long)st.tasks_done, (unsigned long long)st.ok,
	       (unsigned long long)st.raised, (unsigned long long)st.crashed,
	       (unsigned long long)st.timed_out);
	printf("workers replaced %llu, replacement ready after %.2f ms on "
	       "average (%.2f ms at most)\n",
	       (unsigned long long)st.workers_replaced, st.replace_mean * 1e3,
	       st.replace_max * 1e3);
	mproc_pool_close(pool);
	mproc_pool_join(pool);
	mproc_pool_free(pool);
	return EXIT_SUCCESS;
}
