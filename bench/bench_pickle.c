/*
 * bench_pickle.c - the value codec against CPython's pickle, same data,
 * same run.
 *
 *   build/bench/bench_pickle [--repeat N] [--python PATH]
 *
 * Cases: (a) a list of the ints 0..999999, (b) a list of 100,000
 * (i, i * 0.5, "s<i>") tuples, (c) one 16 MiB bytes value (zeros).
 * For each: encode (writer reset, write, finish) and decode, N repeats
 * (default 7), median/min/max; then bench_pickle.py times pickle.dumps and
 * pickle.loads (protocol 5) on the same values, and the C decoder also
 * decodes the very bytes Python wrote. Prints a Markdown table; the ratio
 * is Python's median over mproc's. Decoding (c) must not copy: the bytes
 * value must point into the input buffer, which is checked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

#ifndef MPROC_BENCH_PY
#define MPROC_BENCH_PY "bench/bench_pickle.py"
#endif

#define MAX_REPEAT 101
#define N_INTS 1000000
#define N_TUPLES 100000
#define BYTES_LEN ((size_t)16 << 20)

static int repeat = 7;

struct stat3 {
	double med, min, max;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static struct stat3 summarize(double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	struct stat3 s = {n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2,
	                  t[0], t[n - 1]};
	return s;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_pickle: %s: %s\n", what, mproc_strerror(rc));
	exit(1);
}

/* ---- the three values, written with the writer ------------------------- */

static char *zeros;

static int write_ints(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	for (int64_t i = 0; i < N_INTS; i++)
		mproc_write_int(w, i);
	return mproc_write_list_end(w);
}

/* The strings "s<i>" exist before timing, as they do in Python. */
static char (*strs)[12];
static unsigned char *strlens;

static void make_strs(void)
{
	strs = malloc(N_TUPLES * sizeof *strs);
	strlens = malloc(N_TUPLES);
	if (!strs || !strlens)
		die("setup", -ENOMEM);
	for (int i = 0; i < N_TUPLES; i++)
		strlens[i] = (unsigned char)snprintf(strs[i], sizeof strs[i],
		                                     "s%d", i);
}

static int write_tuples(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	for (int64_t i = 0; i < N_TUPLES; i++) {
		mproc_write_tuple_begin(w);
		mproc_write_int(w, i);
		mproc_write_float(w, (double)i * 0.5);
		mproc_write_str(w, strs[i], strlens[i]);
		mproc_write_tuple_end(w);
	}
	return mproc_write_list_end(w);
}

static int write_bytes(struct mproc_writer *w)
{
	return mproc_write_bytes(w, zeros, BYTES_LEN);
}

/* Sum over the tree, so that the decode is used (and checked). */
static double consume(const struct mproc_value *v)
{
	size_t n;
	double sum = 0;
	if (mproc_value_len(v, &n) != 0) {
		const void *p;
		if (mproc_value_bytes(v, &p, &n) == 0)
			return (double)n;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const struct mproc_value *it, *x;
		int64_t k;
		if (mproc_value_item(v, i, &it))
			die("item", MPROC_EINDEX);
		if (mproc_value_int(it, &k) == 0) {
			sum += (double)k;
		} else if (mproc_value_item(it, 0, &x) == 0 &&
		           mproc_value_int(x, &k) == 0) {
			sum += (double)k;
		}
	}
	return sum;
}

struct bcase {
	const char *name;
	const char *label;
	int (*write)(struct mproc_writer *w);
	struct stat3 c_enc, c_dec, c_dec_py, py_enc, py_dec;
	bool have_py, have_dec_py;
	size_t c_size, py_size;
};

static struct bcase cases[] = {
	{.name = "ints", .label = "(a) list of 1,000,000 ints",
	 .write = write_ints},
	{.name = "tuples", .label = "(b) list of 100,000 (int, float, str)",
	 .write = write_tuples},
	{.name = "bytes16m", .label = "(c) one 16 MiB bytes",
	 .write = write_bytes},
};

static struct stat3 time_decode(struct mproc_decoder *d, const void *p,
                                size_t n, const char *name)
{
	double t[MAX_REPEAT];
	const struct mproc_value *v;
	volatile double sink = 0;
	/* One untimed run first (so does bench_pickle.py): the decoder's
	 * arena reaches its steady size, as it does in a long-lived pool. */
	if (mproc_decode(d, p, n, &v) == 0)
		sink += consume(v);
	for (int r = 0; r < repeat; r++) {
		double t0 = now();
		int rc = mproc_decode(d, p, n, &v);
		if (rc) {
			fprintf(stderr, "%s: %s\n", name, mproc_decoder_error(d));
			die("decode", rc);
		}
		t[r] = now() - t0;
		sink += consume(v);
	}
	(void)sink;
	return summarize(t, repeat);
}

static void bench_c(struct bcase *c, struct mproc_writer *w,
                    struct mproc_decoder *d)
{
	double t[MAX_REPEAT];
	const void *p = NULL;
	size_t n = 0;
	/* An untimed warm-up: the writer's buffer reaches its size. */
	mproc_writer_reset(w);
	c->write(w);
	for (int r = 0; r < repeat; r++) {
		double t0 = now();
		mproc_writer_reset(w);
		int rc = c->write(w);
		if (!rc)
			rc = mproc_writer_finish(w, &p, &n);
		t[r] = now() - t0;
		if (rc)
			die("encode", rc);
	}
	c->c_enc = summarize(t, repeat);
	c->c_size = n;
	c->c_dec = time_decode(d, p, n, c->name);
	if (c->write == write_bytes) {
		/* Zero-copy: the value points into the message. */
		const struct mproc_value *v;
		const void *b;
		size_t len;
		if (mproc_decode(d, p, n, &v) || mproc_value_bytes(v, &b, &len) ||
		    len != BYTES_LEN || (const char *)b < (const char *)p ||
		    (const char *)b + len > (const char *)p + n) {
			fprintf(stderr, "bench_pickle: 16 MiB bytes was copied\n");
			exit(1);
		}
	}
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1 << 20;
			char *nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		if (!got)
			break;
		n += got;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void bench_python(const char *python, struct mproc_decoder *d)
{
	char dir[] = "/tmp/mproc-bench.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return;
	}
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' '%s' --repeat %d --dump '%s'", python,
	         MPROC_BENCH_PY, repeat, dir);
	FILE *pp = popen(cmd, "r");
	if (!pp) {
		perror("popen");
		return;
	}
	char line[256];
	while (fgets(line, sizeof line, pp)) {
		char name[32], op[32];
		struct stat3 s;
		if (sscanf(line, "%31s %31s %lf %lf %lf", name, op, &s.med,
		           &s.min, &s.max) != 5)
			continue;
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			if (strcmp(cases[i].name, name))
				continue;
			cases[i].have_py = true;
			if (!strcmp(op, "encode"))
				cases[i].py_enc = s;
			else
				cases[i].py_dec = s;
		}
	}
	if (pclose(pp) != 0)
		fprintf(stderr, "bench_pickle: %s failed\n", cmd);
	/* Decode the bytes Python wrote too (FRAME, MEMOIZE and all). */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[256];
		snprintf(path, sizeof path, "%s/%s.pickle", dir, cases[i].name);
		size_t n;
		char *buf = read_file(path, &n);
		if (buf) {
			cases[i].c_dec_py = time_decode(d, buf, n, path);
			cases[i].have_dec_py = true;
			cases[i].py_size = n;
			free(buf);
		}
		unlink(path);
	}
	rmdir(dir);
}

static void ms(char *out, size_t n, struct stat3 s)
{
	/* Microseconds matter for the zero-copy decode of (c). */
	if (s.max < 1e-3)
		snprintf(out, n, "%.4f (%.4f–%.4f)", s.med * 1e3, s.min * 1e3,
		         s.max * 1e3);
	else
		snprintf(out, n, "%.2f (%.2f–%.2f)", s.med * 1e3, s.min * 1e3,
		         s.max * 1e3);
}

/* A ratio of times too small to measure says nothing: print ">1000x". */
static void ratio(char *out, size_t n, double py, double c)
{
	if (c <= 0 || py / c > 1000)
		snprintf(out, n, ">1000x");
	else
		snprintf(out, n, "%.1fx", py / c);
}

static void row(const char *label, const char *op, struct stat3 c,
                struct stat3 py, bool have_py)
{
	char a[64], b[64], r1[16], r2[16];
	ms(a, sizeof a, c);
	ms(b, sizeof b, py);
	ratio(r1, sizeof r1, py.med, c.med);
	ratio(r2, sizeof r2, py.min, c.min);
	printf("| %s | %s | %s | %s | %s | %s |\n", label, op, a,
	       have_py ? b : "n/a", have_py ? r1 : "n/a", have_py ? r2 : "n/a");
}

int main(int argc, char **argv)
{
	const char *python = getenv("MPROC_PYTHON");
	if (!python)
		python = "python3";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			repeat = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--python") && i + 1 < argc) {
			python = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--repeat N] [--python PATH]\n",
			        argv[0]);
			return 2;
		}
	}
	if (repeat < 1 || repeat > MAX_REPEAT)
		repeat = 7;
	zeros = calloc(1, BYTES_LEN);
	make_strs();
	struct mproc_writer *w;
	struct mproc_decoder *d;
	if (!zeros || mproc_writer_new(&w, 5) || mproc_decoder_new(&d, NULL))
		die("setup", -ENOMEM);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		bench_c(&cases[i], w, d);
	bench_python(python, d);

	printf("Times in ms: median (min–max) of %d runs; ratio = CPython / "
	       "mproc, of the medians and of the minimums.\n\n", repeat);
	printf("| case | op | mproc | CPython pickle | ratio (median) | "
	       "ratio (min) |\n");
	printf("|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct bcase *c = &cases[i];
		row(c->label, "encode", c->c_enc, c->py_enc, c->have_py);
		row(c->label, "decode", c->c_dec, c->py_dec, c->have_py);
		if (c->have_dec_py)
			row(c->label, "decode Python's bytes", c->c_dec_py,
			    c->py_dec, c->have_py);
	}
	printf("\nPickle sizes: ");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		printf("%s%s mproc %zu B, Python %zu B", i ? "; " : "",
		       cases[i].name, cases[i].c_size, cases[i].py_size);
	printf(".\n(c) decode: the bytes value points into the input buffer "
	       "(checked; no copy).\n");
	mproc_writer_free(w);
	mproc_decoder_free(d);
	free(zeros);
	free(strs);
	free(strlens);
	return 0;
}
