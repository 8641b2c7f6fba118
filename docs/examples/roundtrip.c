/*
 * roundtrip.c - Python in, C compute, Python out.
 *
 * The Python program this replaces the middle of:
 *
 *     import pickle, sys
 *     from multiprocessing import Pool
 *
 *     def count(item):
 *         text, = item if isinstance(item, tuple) else (item,)
 *         return {"text": text, "words": len(text.split())}
 *
 *     items = pickle.load(sys.stdin.buffer)
 *     with Pool() as p:
 *         results = p.map(count, items)
 *     pickle.dump(results, sys.stdout.buffer)
 *
 * Here a pickled list comes in on stdin, each item is mapped by a task in a
 * worker process, and the results go out on stdout as one pickle that
 * Python's pickle.load reads: a dict per item, or a (type, message) tuple
 * for an item whose task raised (an item that is not a str).
 *
 *     python3 -c 'import pickle,sys; pickle.dump(["a b", "c"], sys.stdout.buffer)' |
 *         build/docs/examples/roundtrip |
 *         python3 -c 'import pickle,sys; print(pickle.load(sys.stdin.buffer))'
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

/* {"text": text, "words": n} for a str; TypeError, named, otherwise. */
static int count(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const char *s;
	size_t len;
	if (mproc_value_parse(arg, "s", &s, &len) < 0)
		return mproc_raise(ret, "TypeError", "%s", mproc_error_detail());
	int words = 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && (i == 0 || s[i - 1] == ' '))
			words++;
	return mproc_write_build(ret, "{s:s#, s:i}", "text", s, len, "words",
	                         words);
}

int main(int argc, char *argv[], char *envp[])
{
	struct mproc_decoder *dec = NULL;
	struct mproc_writer *w = NULL;
	struct mproc_pool *pool = NULL;
	struct mproc_results *res = NULL;
	struct mproc_input in;
	const struct mproc_value *items;
	const void *out;
	size_t len = 0, cap = 1 << 16, outlen;
	char *data = malloc(cap);
	int rc = -1;

	mproc_init(argc, argv, envp);
	/* All of stdin: one pickle. */
	for (size_t n; data && (n = fread(data + len, 1, cap - len, stdin)) > 0;) {
		len += n;
		if (len == cap) {
			char *bigger = realloc(data, cap *= 2);
			if (!bigger) {
				free(data);
				data = NULL;
			}
			data = bigger;
		}
	}
	if (!data) {
		fprintf(stderr, "roundtrip: out of memory\n");
		return 1;
	}
	if ((rc = mproc_decoder_new(&dec, NULL)) < 0 ||
	    (rc = mproc_writer_new(&w, 0)) < 0)
		goto done;
	if ((rc = mproc_decode(dec, data, len, &items)) < 0) {
		fprintf(stderr, "roundtrip: stdin: %s\n", mproc_decoder_error(dec));
		goto done;
	}
	/* The decoded list is the input as it is; data and dec outlive the
	 * map. */
	if ((rc = mproc_input_value(&in, items)) < 0) {
		fprintf(stderr, "roundtrip: %s\n", mproc_error_detail());
		goto done;
	}
	if ((rc = mproc_pool_open(&pool, NULL)) < 0)
		goto done;
	rc = mproc_map(pool, count, &in, 0, &res);
	if (rc < 0 && rc != MPROC_ERAISED)
		goto done;
	if ((rc = mproc_results_write(w, res, 0)) < 0 ||
	    (rc = mproc_writer_finish(w, &out, &outlen)) < 0)
		goto done;
	if (fwrite(out, 1, outlen, stdout) != outlen || fflush(stdout) != 0) {
		perror("roundtrip: stdout");
		rc = -1;
	}
done:
	if (rc < -1)
		fprintf(stderr, "roundtrip: %s\n", mproc_strerror(rc));
	mproc_results_free(res);
	if (pool) {
		mproc_pool_close(pool);
		mproc_pool_join(pool);
	}
	mproc_pool_free(pool);
	mproc_writer_free(w);
	mproc_decoder_free(dec);
	free(data);
	return rc < 0 ? 1 : 0;
}
