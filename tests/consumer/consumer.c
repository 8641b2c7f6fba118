/*
 * consumer.c - a program outside mproc's tree, built against an installed
 * mproc with pkg-config alone (.ci/packaging), or against mproc as a meson
 * subproject (tests/consumer/subproject).
 *
 * It defines its own strlcpy, as many programs do: that builds only when
 * mproc's compile flags bring nothing of libbsd's overlay along. It reads a
 * list the way Python would hand one over, maps over it, and writes the
 * results as one pickle; it prints "consumer: ok" when all of that worked.
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

/* Not libbsd's: a different signature than <bsd/string.h> declares. */
static int strlcpy(char *dst, const char *src, int size)
{
	int n = (int)strlen(src);
	if (size > 0) {
		int k = n < size - 1 ? n : size - 1;
		memcpy(dst, src, (size_t)k);
		dst[k] = '\0';
	}
	return n;
}

/* (name, count) -> {name: count * count} */
static int task(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const char *name;
	size_t len;
	int count;
	if (mproc_value_parse(arg, "(s#i)", &name, &len, &count) < 0)
		return mproc_raise(ret, "TypeError", "%s", mproc_error_detail());
	return mproc_write_build(ret, "{s#:i}", name, len, count * count);
}

int main(int argc, char *argv[], char *envp[])
{
	struct mproc_writer *w = NULL, *out = NULL;
	struct mproc_decoder *dec = NULL;
	struct mproc_pool *pool = NULL;
	struct mproc_results *res = NULL;
	struct mproc_input in;
	const struct mproc_value *v;
	const void *p;
	size_t len;
	char buf[16];
	int rc, status = 1;

	mproc_init(argc, argv, envp);
	strlcpy(buf, "consumer", sizeof buf);
	if ((rc = mproc_writer_new(&w, 0)) < 0 ||
	    (rc = mproc_writer_new(&out, 0)) < 0 ||
	    (rc = mproc_decoder_new(&dec, NULL)) < 0)
		goto done;
	/* What Python's pickle.dumps([("a", 2), ["b", 3]]) would carry. */
	if ((rc = mproc_write_build(w, "[(si)[si]]", "a", 2, "b", 3)) < 0 ||
	    (rc = mproc_writer_finish(w, &p, &len)) < 0 ||
	    (rc = mproc_decode(dec, p, len, &v)) < 0 ||
	    (rc = mproc_input_value(&in, v)) < 0 ||
	    (rc = mproc_pool_open(&pool, NULL)) < 0 ||
	    (rc = mproc_map(pool, task, &in, 0, &res)) < 0 ||
	    (rc = mproc_results_write(out, res, 0)) < 0 ||
	    (rc = mproc_writer_finish(out, &p, &len)) < 0)
		goto done;
	int a = 0, b = 0;
	const struct mproc_value *r;
	if ((rc = mproc_decode(dec, p, len, &r)) < 0 ||
	    (rc = mproc_value_parse(r, "[OO]", &v, &v)) < 0)
		goto done;
	const struct mproc_value *d0 = NULL, *d1 = NULL, *x;
	mproc_value_item(r, 0, &d0);
	mproc_value_item(r, 1, &d1);
	if (mproc_value_dict_get(d0, "a", &x) == 0)
		mproc_value_parse(x, "i", &a);
	if (mproc_value_dict_get(d1, "b", &x) == 0)
		mproc_value_parse(x, "i", &b);
	if (a == 4 && b == 9) {
		printf("%s: ok\n", buf);
		status = 0;
	} else {
		printf("%s: wrong results %d %d\n", buf, a, b);
	}
done:
	if (rc < 0)
		fprintf(stderr, "consumer: %s (%s)\n", mproc_strerror(rc),
		        mproc_error_detail());
	mproc_results_free(res);
	if (pool) {
		mproc_pool_close(pool);
		mproc_pool_join(pool);
	}
	mproc_pool_free(pool);
	mproc_decoder_free(dec);
	mproc_writer_free(w);
	mproc_writer_free(out);
	return status;
}
