/*
 * shared_array.c - a map over slices of a big array of doubles in shared
 * memory, each task reading its slice in place and returning a small
 * summary: what joblib does with numpy arrays (it memory-maps arrays over
 * 1 MB so that its workers read them without a copy), with mproc's
 * multiprocessing.Array.
 *
 * Python (docs/payloads.md has both side by side):
 *     a = np.frombuffer(multiprocessing.RawArray('d', n))  # before Pool()
 *     a[:] = values
 *     def summary(k):
 *         s = a[k * step:(k + 1) * step]
 *         return float(s.sum()), float(s.min()), float(s.max())
 *     with Pool() as p:
 *         parts = p.map(summary, range(nslices), 1)
 *
 * The array is made before the pool opens, so every worker, forked from
 * this process, has it mapped at the same address; a task gets only a
 * slice index and returns three floats, so nothing big goes through a pipe.
 * The values are integers (-1000 to 1000), so every sum is exact whatever
 * the order of the additions: the combined sum must equal the parent's own.
 *
 * Run: build/docs/examples/shared_array [SIZE]
 *      SIZE in bytes, with an optional K, M or G (powers of 1024);
 *      default 1G: 134,217,728 doubles.
 * Prints one line; exit status 0 when the sums agree, 1 otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mproc.h>

/* Set before the pool opens: the workers inherit them. */
static struct mproc_shared *array;
static size_t n_items, slice_len;

/* Element i: an integer from -1000 to 1000, from a cheap hash of i. */
static double value_at(size_t i)
{
	return (double)((uint64_t)i * 40503u % 65521u % 2001u) - 1000.0;
}

/* The task: the (sum, min, max) of slice k, read in place. */
static int summary(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t k;
	if (mproc_value_int(arg, &k) < 0 || k < 0 ||
	    (size_t)k * slice_len >= n_items)
		return mproc_raise(ret, "IndexError", "no such slice");
	const double *a = mproc_shared_ptr(array);
	size_t lo = (size_t)k * slice_len;
	size_t hi = lo + slice_len < n_items ? lo + slice_len : n_items;
	double sum = 0, min = a[lo], max = a[lo];
	for (size_t i = lo; i < hi; i++) {
		sum += a[i];
		min = a[i] < min ? a[i] : min;
		max = a[i] > max ? a[i] : max;
	}
	mproc_write_tuple_begin(ret);
	mproc_write_float(ret, sum);
	mproc_write_float(ret, min);
	mproc_write_float(ret, max);
	return mproc_write_tuple_end(ret);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "1G", "64M", "100K" or bytes; 0 when not a size. */
static size_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
	if (errno || end == s || end[shift != 0] || v > (1ull << 40) >> shift)
		return 0;
	return (size_t)(v << shift);
}

int main(int argc, char *argv[], char *envp[])
{
	struct mproc_pool *pool = NULL;
	struct mproc_input in;
	struct mproc_results *res = NULL;
	int rc;

	mproc_init(argc, argv, envp);
	size_t bytes = argc > 1 ? parse_size(argv[1]) : (size_t)1 << 30;
	if (argc > 2 || bytes < sizeof(double)) {
		fprintf(stderr, "usage: shared_array [SIZE, e.g. 1G, 64M, 4096]\n");
		return 2;
	}
	n_items = bytes / sizeof(double);
	/* 64 slices, of at least 1024 doubles. */
	slice_len = (n_items + 63) / 64;
	if (slice_len < 1024)
		slice_len = 1024;
	size_t nslices = (n_items + slice_len - 1) / slice_len;

	/* multiprocessing.RawArray('d', n): before the pool, so that the
	 * workers it forks share it. */
	double t0 = now();
	if ((rc = mproc_shared_array(&array, 'd', n_items, false)) < 0) {
		fprintf(stderr, "shared_array: %zu doubles: %s\n", n_items,
		        mproc_strerror(rc));
		return 1;
	}
	double *a = mproc_shared_ptr(array);
	for (size_t i = 0; i < n_items; i++)
		a[i] = value_at(i);
	double t_fill = now() - t0;

	t0 = now();
	if ((rc = mproc_pool_open(&pool, NULL)) < 0)
		goto out;
	mproc_input_range(&in, 0, (int64_t)nslices, 1);
	/* Chunksize 1: each task is a big piece of work already. */
	rc = mproc_map(pool, summary, &in, 1, &res);
	if (rc < 0)
		goto out;
	double sum = 0, min = INFINITY, max = -INFINITY;
	for (size_t k = 0; k < nslices; k++) {
		const struct mproc_value *t = mproc_results_value(res, k), *v;
		double x[3];
		for (size_t j = 0; j < 3; j++)
			if ((rc = mproc_value_item(t, j, &v)) < 0 ||
			    (rc = mproc_value_float(v, &x[j])) < 0)
				goto out;
		sum += x[0];
		min = x[1] < min ? x[1] : min;
		max = x[2] > max ? x[2] : max;
	}
	double t_map = now() - t0;

	/* The same sum in the parent, by one loop. */
	t0 = now();
	double check = 0;
	for (size_t i = 0; i < n_items; i++)
		check += a[i];
	double t_check = now() - t0;

	printf("%zu doubles in %zu slices: sum %.0f, min %.0f, max %.0f; "
	       "the parent's sum is %s\n",
	       n_items, nslices, sum, min, max,
	       sum == check ? "the same" : "different");
	if (sum != check)
		printf("the parent's sum: %.0f\n", check);
	fprintf(stderr, "shared_array: fill %.3f s, pool open + map %.3f s, "
	                "the parent's loop %.3f s\n",
	        t_fill, t_map, t_check);
	rc = sum == check ? 0 : 1;
out:
	if (rc < 0)
		fprintf(stderr, "shared_array: %s\n", mproc_strerror(rc));
	mproc_results_free(res);
	if (pool) {
		mproc_pool_close(pool);
		mproc_pool_join(pool);
		mproc_pool_free(pool);
	}
	mproc_shared_free(array);
	return rc == 0 ? 0 : 1;
}
