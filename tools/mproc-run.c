/*
 * mproc-run - run a task function from a shared object over input lines,
 * in a pool of worker processes, with GNU parallel's option names where
 * they fit (docs/batch.md, mproc-run.1).
 *
 *   mproc-run [options] LIB.so:FUNCTION [INPUTFILE]
 *
 * Each input line is one argument (a str, or an int, float or JSON value
 * with --type). Every input gets exactly one outcome: its value's Python
 * repr on standard output, or a line on standard error, and a line in the
 * joblog and the results file. A run killed at any point and started again
 * with --resume runs only the inputs that the joblog does not hold.
 *
 * Exit status, as GNU parallel's: 0 all OK; 1-100 that many inputs failed;
 * 101 more than 100 failed; 255 another error.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

/* The joblog's and results' buffers; flush_all runs before a quarter of
 * one is used. */
#define OUT_BUF ((size_t)4 << 20)

/* --timeout N%: the median of this many last runtimes; the inputs go in
 * calls of BATCH, each with the timeout known when it is submitted. */
#define RUNTIMES 1001
#define BATCH 1024

enum argtype { ARG_STR, ARG_INT, ARG_FLOAT, ARG_JSON };

struct run {
	/* options */
	unsigned jobs, retries, chunksize;
	bool keep_order, resume, resume_failed, bar, eta;
	double timeout;
	double timeout_pct;   /* --timeout N%: N, else 0 */
	enum argtype type;
	const char *joblog, *results, *journal, *input;
	bool results_csv;
	bool halt_now;
	unsigned halt_count;
	double halt_fraction;
	/* input */
	char **lines;
	size_t n;
	size_t *todo;      /* indices of the inputs this run runs */
	size_t ntodo;
	unsigned char *done; /* per input: its line is kept in the joblog */
	/* output */
	FILE *jl, *res;
	size_t unflushed;  /* bytes of inputs recorded since the last flush */
	char *jlbuf, *resbuf; /* their buffers (glibc ignores a size alone) */
	/* Runtimes of the last RUNTIMES inputs that ended OK (--timeout N%). */
	double rt[RUNTIMES];
	size_t nrt, rtpos;
	size_t failed, ok;
	struct mproc_writer *w;
	struct mproc_decoder *dec;
};

static mproc_task_fn user_fn;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mproc-run: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(255);
}

/* ---- the task, in a worker: the user's function, timed ---------------- */

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* (value, start, runtime): the value as the function wrote it (none: None),
 * when it started and how long it ran, for the joblog. */
static int run_task(const struct mproc_value *arg, struct mproc_writer *ret)
{
	double start = wall(), t0 = mono();
	mproc_write_tuple_begin(ret);
	int rc = user_fn(arg, ret);
	if (rc < 0)
		return rc;
	mproc_write_float(ret, start);
	mproc_write_float(ret, mono() - t0);
	return mproc_write_tuple_end(ret);
}

/* ---- Python's repr and JSON ------------------------------------------- */

static void put_float(FILE *f, double d, bool json)
{
	if (isnan(d)) {
		fputs(json ? "NaN" : "nan", f);
		return;
	}
	if (isinf(d)) {
		fputs(d < 0 ? (json ? "-Infinity" : "-inf")
		            : (json ? "Infinity" : "inf"), f);
		return;
	}
	/* The shortest that reads back, as Python's repr. */
	char buf[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	fputs(buf, f);
	if (!strpbrk(buf, ".en"))
		fputs(".0", f);
}

static void put_str(FILE *f, const char *s, size_t n, bool json, char q)
{
	fputc(q, f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == (unsigned char)q || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, json ? "\\u%04x" : "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc(q, f);
}

static void put_value(FILE *f, const struct mproc_value *v, bool json)
{
	const char *s;
	size_t n = 0;
	int64_t i;
	double d;
	bool b;
	const struct mproc_value *x, *k;
	enum mproc_type t = mproc_value_type(v);
	switch (t) {
	case MPROC_NONE:
		fputs(json ? "null" : "None", f);
		return;
	case MPROC_BOOL:
		mproc_value_bool(v, &b);
		fputs(json ? (b ? "true" : "false") : (b ? "True" : "False"), f);
		return;
	case MPROC_INT:
		mproc_value_int(v, &i);
		fprintf(f, "%" PRId64, i);
		return;
	case MPROC_FLOAT:
		mproc_value_float(v, &d);
		put_float(f, d, json);
		return;
	case MPROC_STR:
		mproc_value_str(v, &s, &n);
		put_str(f, s, n, json,
		        json || (memchr(s, '\'', n) && !memchr(s, '"', n)) ? '"'
		                                                           : '\'');
		return;
	case MPROC_BYTES: {
		const void *p;
		mproc_value_bytes(v, &p, &n);
		if (json) {
			put_str(f, p, n, true, '"');
			return;
		}
		fputc('b', f);
		put_str(f, p, n, false, '\'');
		return;
	}
	case MPROC_DICT:
		mproc_value_len(v, &n);
		fputc('{', f);
		for (size_t j = 0; j < n; j++) {
			mproc_value_dict_entry(v, j, &k, &x);
			if (j)
				fputs(", ", f);
			if (json && mproc_value_type(k) != MPROC_STR) {
				/* JSON keys are strings: the key's repr. */
				char *buf = NULL;
				size_t len = 0;
				FILE *m = open_memstream(&buf, &len);
				if (m) {
					put_value(m, k, false);
					fclose(m);
					put_str(f, buf, len, true, '"');
				}
				free(buf);
			} else {
				put_value(f, k, json);
			}
			fputs(": ", f);
			put_value(f, x, json);
		}
		fputc('}', f);
		return;
	default: {
		const char *open = "[", *close = "]";
		if (!json && t == MPROC_TUPLE)
			open = "(", close = ")";
		if (!json && (t == MPROC_SET || t == MPROC_FROZENSET))
			open = t == MPROC_SET ? "{" : "frozenset({",
			close = t == MPROC_SET ? "}" : "})";
		mproc_value_len(v, &n);
		if (!json && n == 0 && t == MPROC_SET) {
			fputs("set()", f);
			return;
		}
		fputs(open, f);
		for (size_t j = 0; j < n; j++) {
			mproc_value_item(v, j, &x);
			if (j)
				fputs(", ", f);
			put_value(f, x, json);
		}
		if (!json && t == MPROC_TUPLE && n == 1)
			fputc(',', f);
		fputs(close, f);
	}
	}
}

/* ---- input ------------------------------------------------------------- */

/* JSON into the writer: objects become dicts, arrays lists. */
static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

static const char *json_value(struct mproc_writer *w, const char *p, int depth);

static const char *json_string(struct mproc_writer *w, const char *p)
{
	/* p at the opening quote. */
	char *buf = malloc(strlen(p) * 4 + 1);
	if (!buf)
		return NULL;
	size_t n = 0;
	for (p++; *p && *p != '"'; p++) {
		if (*p != '\\') {
			buf[n++] = *p;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': buf[n++] = '\n'; break;
		case 't': buf[n++] = '\t'; break;
		case 'r': buf[n++] = '\r'; break;
		case 'b': buf[n++] = '\b'; break;
		case 'f': buf[n++] = '\f'; break;
		case '/': case '\\': case '"': buf[n++] = *p; break;
		case 'u': {
			unsigned cp;
			if (sscanf(p + 1, "%4x", &cp) != 1) {
				free(buf);
				return NULL;
			}
			p += 4;
			/* Surrogate pairs are not joined: a lone one is refused
			 * by the writer as invalid UTF-8. */
			if (cp < 0x80) {
				buf[n++] = (char)cp;
			} else if (cp < 0x800) {
				buf[n++] = (char)(0xc0 | cp >> 6);
				buf[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				buf[n++] = (char)(0xe0 | cp >> 12);
				buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				buf[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			free(buf);
			return NULL;
		}
	}
	int rc = *p == '"' ? mproc_write_str(w, buf, n) : -1;
	free(buf);
	return rc < 0 ? NULL : p + 1;
}

static const char *json_value(struct mproc_writer *w, const char *p, int depth)
{
	p = json_ws(p);
	if (depth > 200)
		return NULL;
	if (*p == '"')
		return json_string(w, p);
	if (*p == '[' || *p == '{') {
		bool obj = *p == '{';
		char close = obj ? '}' : ']';
		if ((obj ? mproc_write_dict_begin(w) : mproc_write_list_begin(w)) < 0)
			return NULL;
		p = json_ws(p + 1);
		if (*p != close) {
			for (;;) {
				if (obj) {
					p = json_ws(p);
					if (*p != '"' || !(p = json_string(w, p)))
						return NULL;
					p = json_ws(p);
					if (*p++ != ':')
						return NULL;
				}
				if (!(p = json_value(w, p, depth + 1)))
					return NULL;
				p = json_ws(p);
				if (*p == ',') {
					p++;
					continue;
				}
				break;
			}
		}
		if (*p != close)
			return NULL;
		if ((obj ? mproc_write_dict_end(w) : mproc_write_list_end(w)) < 0)
			return NULL;
		return p + 1;
	}
	if (strncmp(p, "true", 4) == 0)
		return mproc_write_bool(w, true) < 0 ? NULL : p + 4;
	if (strncmp(p, "false", 5) == 0)
		return mproc_write_bool(w, false) < 0 ? NULL : p + 5;
	if (strncmp(p, "null", 4) == 0)
		return mproc_write_none(w) < 0 ? NULL : p + 4;
	char *end;
	errno = 0;
	long long i = strtoll(p, &end, 10);
	if (end != p && !strchr(".eE", *end) && errno == 0)
		return mproc_write_int(w, i) < 0 ? NULL : end;
	double d = strtod(p, &end);
	if (end == p)
		return NULL;
	return mproc_write_float(w, d) < 0 ? NULL : end;
}

/* One call's part of the inputs: todo[base .. base + n). */
struct feed {
	struct run *r;
	size_t base, n;
};

static int gen_item(void *cookie, size_t index, struct mproc_writer *w)
{
	const struct feed *fd = cookie;
	struct run *r = fd->r;
	if (index >= fd->n)
		return 0;
	const char *line = r->lines[r->todo[fd->base + index]];
	char *end;
	switch (r->type) {
	case ARG_STR:
		return mproc_write_cstr(w, line) < 0 ? -EINVAL : 1;
	case ARG_INT: {
		errno = 0;
		long long i = strtoll(line, &end, 10);
		if (end == line || *json_ws(end) || errno)
			return mproc_write_cstr(w, line) < 0 ? -EINVAL : 1;
		return mproc_write_int(w, i) < 0 ? -EINVAL : 1;
	}
	case ARG_FLOAT: {
		double d = strtod(line, &end);
		if (end == line || *json_ws(end))
			return mproc_write_cstr(w, line) < 0 ? -EINVAL : 1;
		return mproc_write_float(w, d) < 0 ? -EINVAL : 1;
	}
	case ARG_JSON: {
		const char *p = json_value(w, line, 0);
		if (!p || *json_ws(p))
			return -EINVAL;
		return 1;
	}
	}
	return -EINVAL;
}

static void read_lines(struct run *r)
{
	FILE *in = stdin;
	if (r->input && strcmp(r->input, "-") != 0 && !(in = fopen(r->input, "r")))
		die("%s: %s", r->input, strerror(errno));
	size_t cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	while ((len = getline(&line, &lcap, in)) >= 0) {
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		if (r->n == cap) {
			cap = cap ? 2 * cap : 4096;
			r->lines = realloc(r->lines, cap * sizeof *r->lines);
			if (!r->lines)
				die("out of memory");
		}
		if (!(r->lines[r->n++] = strdup(line)))
			die("out of memory");
	}
	free(line);
	if (in != stdin)
		fclose(in);
}

/* ---- joblog and results ------------------------------------------------ */

static const char joblog_header[] =
	"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/* The seq (1-based) a results line starts with, or 0. */
static size_t results_seq(const char *line, bool csv)
{
	unsigned long long s = 0;
	if (csv ? sscanf(line, "%llu,", &s) != 1
	        : sscanf(line, "{\"seq\": %llu,", &s) != 1)
		return 0;
	return (size_t)s;
}

/*
 * --resume: keep the joblog's whole lines of inputs that need not run
 * again (every line; with --resume-failed only those that ended OK), and
 * the results lines of the same inputs; a line cut short by a kill is
 * dropped. Both files are rewritten (a new file renamed over the old), so
 * that each input is in them at most once.
 */
static void resume_files(struct run *r)
{
	FILE *f = fopen(r->joblog, "r");
	if (!f)
		return; /* a first run */
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.mproc-new", r->joblog);
	FILE *o = fopen(tmp, "w");
	if (!o)
		die("%s: %s", tmp, strerror(errno));
	fputs(joblog_header, o);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] != '\n')
			break; /* cut short */
		unsigned long long seq;
		int exitval, sig;
		char host[64];
		double st, rt;
		long snd, rcv;
		if (sscanf(line, "%llu\t%63s\t%lf\t%lf\t%ld\t%ld\t%d\t%d\t", &seq,
		           host, &st, &rt, &snd, &rcv, &exitval, &sig) != 8 ||
		    seq == 0 || seq > r->n || r->done[seq - 1])
			continue;
		if (r->resume_failed && (exitval != 0 || sig != 0))
			continue;
		r->done[seq - 1] = 1;
		fputs(line, o);
	}
	fclose(f);
	if (fclose(o) != 0 || rename(tmp, r->joblog) != 0)
		die("%s: %s", r->joblog, strerror(errno));
	if (!r->results || !(f = fopen(r->results, "r"))) {
		free(line);
		return;
	}
	snprintf(tmp, sizeof tmp, "%s.mproc-new", r->results);
	if (!(o = fopen(tmp, "w")))
		die("%s: %s", tmp, strerror(errno));
	unsigned char *seen = calloc(r->n ? r->n : 1, 1);
	if (!seen)
		die("out of memory");
	bool first = true;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] != '\n')
			break;
		if (r->results_csv && first) {
			first = false;
			fputs(line, o); /* the header */
			continue;
		}
		size_t seq = results_seq(line, r->results_csv);
		if (seq && seq <= r->n && r->done[seq - 1] && !seen[seq - 1]) {
			seen[seq - 1] = 1;
			fputs(line, o);
		}
	}
	free(seen);
	free(line);
	fclose(f);
	if (fclose(o) != 0 || rename(tmp, r->results) != 0)
		die("%s: %s", r->results, strerror(errno));
}

static void open_outputs(struct run *r)
{
	r->done = calloc(r->n ? r->n : 1, 1);
	if (!r->done)
		die("out of memory");
	bool resuming = (r->resume || r->resume_failed) && r->joblog;
	if (resuming)
		resume_files(r);
	if (r->joblog) {
		FILE *f = fopen(r->joblog, "r");
		bool fresh = !resuming || !f;
		if (f)
			fclose(f);
		if (!(r->jl = fopen(r->joblog, fresh ? "w" : "a")))
			die("%s: %s", r->joblog, strerror(errno));
		/* Only flush_all writes it out (a full buffer would write the
		 * joblog ahead of the results): a buffer larger than what is
		 * written between two flushes, set before the first write. */
		if (!(r->jlbuf = malloc(OUT_BUF)) ||
		    setvbuf(r->jl, r->jlbuf, _IOFBF, OUT_BUF) != 0)
			die("out of memory");
		if (fresh)
			fputs(joblog_header, r->jl);
	}
	if (r->results) {
		FILE *f = fopen(r->results, "r");
		bool fresh = !resuming || !f;
		if (f)
			fclose(f);
		if (!(r->res = fopen(r->results, fresh ? "w" : "a")))
			die("%s: %s", r->results, strerror(errno));
		if (!(r->resbuf = malloc(OUT_BUF)) ||
		    setvbuf(r->res, r->resbuf, _IOFBF, OUT_BUF) != 0)
			die("out of memory");
		if (fresh && r->results_csv)
			fputs("seq,input,status,value,error,signal,attempts\n", r->res);
	}
	r->todo = malloc((r->n ? r->n : 1) * sizeof *r->todo);
	if (!r->todo)
		die("out of memory");
	for (size_t i = 0; i < r->n; i++)
		if (!r->done[i])
			r->todo[r->ntodo++] = i;
}

static void csv_field(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			fputc('"', f);
		fputc(s[i], f);
	}
	fputc('"', f);
}

static void record(struct run *r, size_t seq, const struct mproc_result *res)
{
	const char *line = r->lines[seq - 1];
	const struct mproc_value *value = NULL, *x;
	double start = 0, runtime = 0;
	if (res->status == MPROC_OK) {
		size_t n = 0;
		mproc_value_len(res->value, &n);
		if (n == 3)
			mproc_value_item(res->value, 0, &value);
		if (mproc_value_item(res->value, n - 2, &x) == 0)
			mproc_value_float(x, &start);
		if (mproc_value_item(res->value, n - 1, &x) == 0)
			mproc_value_float(x, &runtime);
	}
	const struct mproc_crash *c = res->error ? res->error->crash : NULL;
	int sig = c ? c->signal : 0;
	int exitval = res->status == MPROC_OK ? 0
	              : c ? (c->signal ? -1 : c->exit_status)
	                  : 1;
	if (res->status == MPROC_OK) {
		r->ok++;
		r->rt[r->rtpos] = runtime;
		r->rtpos = (r->rtpos + 1) % RUNTIMES;
		if (r->nrt < RUNTIMES)
			r->nrt++;
		if (value)
			put_value(stdout, value, false);
		else
			fputs("None", stdout);
		fputc('\n', stdout);
	} else {
		r->failed++;
		fprintf(stderr, "mproc-run: input %zu: %s: %s: %s\n", seq,
		        mproc_status_name(res->status), res->error->type,
		        res->error->msg);
	}
	if (r->res) {
		if (r->results_csv) {
			fprintf(r->res, "%zu,", seq);
			csv_field(r->res, line, strlen(line));
			fprintf(r->res, ",%s,", mproc_status_name(res->status));
			if (value) {
				char *buf = NULL;
				size_t len = 0;
				FILE *m = open_memstream(&buf, &len);
				if (m) {
					put_value(m, value, false);
					fclose(m);
					csv_field(r->res, buf, len);
				}
				free(buf);
			}
			fputc(',', r->res);
			if (res->error) {
				char *buf = NULL;
				size_t len = 0;
				FILE *m = open_memstream(&buf, &len);
				if (m) {
					fprintf(m, "%s: %s", res->error->type,
					        res->error->msg);
					fclose(m);
					csv_field(r->res, buf, len);
				}
				free(buf);
			}
			fprintf(r->res, ",%d,%u\n", sig, res->attempts);
		} else {
			fprintf(r->res, "{\"seq\": %zu, \"input\": ", seq);
			put_str(r->res, line, strlen(line), true, '"');
			fprintf(r->res, ", \"status\": \"%s\", \"value\": ",
			        mproc_status_name(res->status));
			if (res->status == MPROC_OK && value)
				put_value(r->res, value, true);
			else
				fputs("null", r->res);
			fputs(", \"error\": ", r->res);
			if (res->error) {
				fputs("{\"type\": ", r->res);
				put_str(r->res, res->error->type,
				        strlen(res->error->type), true, '"');
				fputs(", \"message\": ", r->res);
				put_str(r->res, res->error->msg,
				        strlen(res->error->msg), true, '"');
				fputc('}', r->res);
			} else {
				fputs("null", r->res);
			}
			fprintf(r->res, ", \"signal\": %d, \"attempts\": %u}\n", sig,
			        res->attempts);
		}
	}
	if (r->jl) {
		if (start == 0)
			start = wall() - runtime;
		fprintf(r->jl, "%zu\t:\t%.3f\t%9.3f\t%zu\t%d\t%d\t%d\t", seq, start,
		        runtime, strlen(line) + 1, 0, exitval, sig);
		/* The "command": the function and its input, on one line. */
		for (const char *p = line; *p; p++)
			fputc(*p == '\t' ? ' ' : *p, r->jl);
		fputc('\n', r->jl);
	}
}

/* What is written goes out in the order stdout, results, joblog, so that a
 * kill leaves the joblog (what --resume trusts) behind the others. */
static void flush_all(struct run *r)
{
	fflush(stdout);
	if (r->res)
		fflush(r->res);
	if (r->jl)
		fflush(r->jl);
	r->unflushed = 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ---- progress ---------------------------------------------------------- */

static void on_progress(void *cookie, const struct mproc_progress *pp)
{
	const struct feed *fd = cookie;
	struct run *r = fd->r;
	struct mproc_progress q = *pp, *p = &q;
	/* Calls of a part of the inputs: counted from the part's start. */
	q.done += fd->base;
	q.total = r->ntodo;
	if (q.rate > 0)
		q.eta = (double)(q.total - q.done) / q.rate;
	q.final = pp->final && fd->base + fd->n >= r->ntodo;
	size_t total = p->total;
	if (r->bar && total) {
		int width = 30, fill = (int)(width * p->done / total);
		fprintf(stderr, "\r%3d%% [%.*s%*s] %zu/%zu", (int)(100 * p->done / total),
		        fill, "##############################", width - fill, "",
		        p->done, total);
	} else {
		fprintf(stderr, "\r%zu/%zu done", p->done, total);
	}
	if (r->eta) {
		if (p->eta >= 0)
			fprintf(stderr, " ETA %.0fs %.0f/s", p->eta, p->rate);
		else
			fprintf(stderr, " %.0f/s", p->rate);
	}
	fprintf(stderr, " %zu failed  ", p->failed);
	if (p->final)
		fputc('\n', stderr);
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: mproc-run [options] LIB.so:FUNCTION [INPUTFILE]\n"
	      "  -j, --jobs N          worker processes (default: the CPUs)\n"
	      "  -k, --keep-order      output in input order\n"
	      "      --type T          each line as a str (default), int, float or json\n"
	      "      --joblog FILE     GNU parallel's joblog, a line per input\n"
	      "      --resume          run only the inputs not in the joblog\n"
	      "      --resume-failed   ... and those the joblog holds as failed\n"
	      "      --retries N       run a crashed or timed-out input up to N more times\n"
	      "      --timeout SECS    kill an input's worker past SECS seconds\n"
	      "      --halt WHEN,fail=N|fail=P%  stop after failures (now or soon)\n"
	      "      --results FILE    one record per input: FILE.jsonl or FILE.csv\n"
	      "      --journal FILE    the library's journal (resume by the library)\n"
	      "      --chunksize N     inputs sent to a worker at a time (default 1)\n"
	      "      --bar, --eta      progress on standard error (a terminal only)\n"
	      "  -h, --help\n", f);
}

static unsigned parse_uint(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || *end || errno || v > 100000)
		die("bad %s: %s", what, s);
	return (unsigned)v;
}

static void parse_halt(struct run *r, const char *s)
{
	char when[16];
	char rest[64];
	if (sscanf(s, "%15[a-z],%63s", when, rest) != 2)
		die("bad --halt: %s (WHEN,fail=N or WHEN,fail=P%%)", s);
	if (strcmp(when, "now") == 0)
		r->halt_now = true;
	else if (strcmp(when, "soon") != 0)
		die("bad --halt: %s (now or soon)", s);
	size_t len = strlen(rest);
	if (strncmp(rest, "fail=", 5) != 0 || len < 6)
		die("bad --halt: %s", s);
	if (rest[len - 1] == '%') {
		rest[len - 1] = 0;
		char *end;
		double p = strtod(rest + 5, &end);
		if (*end || !(p > 0 && p <= 100))
			die("bad --halt: %s", s);
		r->halt_fraction = p / 100;
	} else {
		r->halt_count = parse_uint(rest + 5, "--halt");
	}
}

int main(int argc, char *argv[])
{
	struct run r = {.type = ARG_STR, .chunksize = 1};
	enum { O_TYPE = 256, O_JOBLOG, O_RESUME, O_RESUME_FAILED, O_RETRIES,
	       O_TIMEOUT, O_HALT, O_RESULTS, O_JOURNAL, O_CHUNK, O_BAR, O_ETA };
	static const struct option longopts[] = {
		{"jobs", required_argument, NULL, 'j'},
		{"keep-order", no_argument, NULL, 'k'},
		{"type", required_argument, NULL, O_TYPE},
		{"joblog", required_argument, NULL, O_JOBLOG},
		{"resume", no_argument, NULL, O_RESUME},
		{"resume-failed", no_argument, NULL, O_RESUME_FAILED},
		{"retries", required_argument, NULL, O_RETRIES},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"halt", required_argument, NULL, O_HALT},
		{"halt-on-error", required_argument, NULL, O_HALT},
		{"results", required_argument, NULL, O_RESULTS},
		{"journal", required_argument, NULL, O_JOURNAL},
		{"chunksize", required_argument, NULL, O_CHUNK},
		{"bar", no_argument, NULL, O_BAR},
		{"eta", no_argument, NULL, O_ETA},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	mproc_init(argc, argv, NULL);
	int opt;
	char *end;
	while ((opt = getopt_long(argc, argv, "+j:kh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j': r.jobs = parse_uint(optarg, "-j"); break;
		case 'k': r.keep_order = true; break;
		case O_TYPE:
			if (strcmp(optarg, "str") == 0) r.type = ARG_STR;
			else if (strcmp(optarg, "int") == 0) r.type = ARG_INT;
			else if (strcmp(optarg, "float") == 0) r.type = ARG_FLOAT;
			else if (strcmp(optarg, "json") == 0) r.type = ARG_JSON;
			else die("bad --type: %s (str, int, float or json)", optarg);
			break;
		case O_JOBLOG: r.joblog = optarg; break;
		case O_RESUME: r.resume = true; break;
		case O_RESUME_FAILED: r.resume_failed = true; break;
		case O_RETRIES: r.retries = parse_uint(optarg, "--retries"); break;
		case O_TIMEOUT:
			r.timeout = strtod(optarg, &end);
			if (*end == '%' && !end[1] && r.timeout > 0 && r.timeout < 1e9) {
				r.timeout_pct = r.timeout;
				r.timeout = 0;
				break;
			}
			if (*end || !(r.timeout > 0 && r.timeout < 1e9))
				die("bad --timeout: %s", optarg);
			break;
		case O_HALT: parse_halt(&r, optarg); break;
		case O_RESULTS: {
			r.results = optarg;
			size_t l = strlen(optarg);
			r.results_csv = l > 4 && strcmp(optarg + l - 4, ".csv") == 0;
			break;
		}
		case O_JOURNAL: r.journal = optarg; break;
		case O_CHUNK: r.chunksize = parse_uint(optarg, "--chunksize"); break;
		case O_BAR: r.bar = true; break;
		case O_ETA: r.eta = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 255;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		usage(stderr);
		return 255;
	}
	if ((r.resume || r.resume_failed) && !r.joblog)
		die("--resume needs --joblog FILE");
	char *spec = argv[optind];
	char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1])
		die("%s: expected LIB.so:FUNCTION", spec);
	*colon = 0;
	/* A path without a slash is looked up as dlopen does; "./x.so" is a
	 * file here. */
	void *lib = dlopen(spec, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		die("%s", dlerror());
	user_fn = (mproc_task_fn)(uintptr_t)dlsym(lib, colon + 1);
	if (!user_fn)
		die("%s: no function %s", spec, colon + 1);
	r.input = argc - optind == 2 ? argv[optind + 1] : NULL;
	read_lines(&r);
	open_outputs(&r);

	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = r.jobs;
	o.retries = r.retries;
	o.task_timeout = r.timeout;
	o.halt_failures = r.halt_now ? 0 : r.halt_count;
	o.halt_fraction = r.halt_now ? 0 : r.halt_fraction;
	o.journal = r.journal;
	struct mproc_pool *pool;
	int rc = mproc_pool_open(&pool, &o);
	if (rc < 0)
		die("cannot start the pool: %s", mproc_strerror(rc));
	/* One call over every input; with --timeout N%, calls of BATCH inputs,
	 * the next submitted as the one before starts to be read, each with
	 * the timeout the runtimes so far give. */
	size_t batch = r.timeout_pct ? BATCH : (r.ntodo ? r.ntodo : 1);
	size_t nbatch = r.ntodo ? (r.ntodo + batch - 1) / batch : 1;
	struct feed feeds[2];
	struct mproc_iter *its[2] = {NULL, NULL};
	const struct mproc_result *res;
	double last_flush = mono();
	size_t since = 0;
	bool halted = false;
	for (size_t b = 0; b <= nbatch && rc >= 0; b++) {
		/* Submit batch b (if any), then read batch b - 1. */
		if (b < nbatch) {
			struct feed *fd = &feeds[b % 2];
			*fd = (struct feed){&r, b * batch,
			                    r.ntodo - b * batch < batch ? r.ntodo - b * batch
			                                                : batch};
			struct mproc_input in;
			mproc_input_fn_init(&in, gen_item, fd);
			in.has_len = true;
			in.len = fd->n;
			struct mproc_call_opts co = {0};
			if ((r.bar || r.eta) && isatty(2)) {
				co.progress = on_progress;
				co.progress_cookie = fd;
				co.progress_interval = 0.2;
			}
			if (r.timeout_pct) {
				/* GNU parallel's N%: of the median runtime of the
				 * inputs that ended OK; none before three did. */
				co.timeout = -1;
				if (r.nrt >= 3) {
					double v[RUNTIMES];
					memcpy(v, r.rt, r.nrt * sizeof *v);
					qsort(v, r.nrt, sizeof *v, cmp_double);
					co.timeout = v[r.nrt / 2] * r.timeout_pct / 100;
					if (co.timeout < 0.001)
						co.timeout = 0.001;
				}
			}
			rc = mproc_imap_opts(pool, run_task, &in, r.chunksize,
			                     r.keep_order, &co, &its[b % 2]);
			if (rc == MPROC_EHALTED)
				break;
			if (rc < 0)
				die("cannot start: %s", mproc_strerror(rc));
		}
		if (b == 0)
			continue;
		struct mproc_iter *it = its[(b - 1) % 2];
		const struct feed *fd = &feeds[(b - 1) % 2];
		while ((rc = mproc_iter_next(it, -1, &res)) == 1) {
			/* Terminated (--halt now) before it ended: not recorded,
			 * so that --resume runs it. */
			if (res->status == MPROC_CANCELLED)
				continue;
			size_t i = r.todo[fd->base + res->index];
			record(&r, i + 1, res);
			r.unflushed += strlen(r.lines[i]) + 256;
			if (r.halt_now && !halted && res->status != MPROC_OK &&
			    ((r.halt_count && r.failed >= r.halt_count) ||
			     (r.halt_fraction && r.failed + r.ok >= 10 &&
			      r.failed >= r.halt_fraction * (double)(r.failed + r.ok)))) {
				halted = true;
				mproc_pool_terminate(pool);
			}
			if (++since >= 256 || r.unflushed > OUT_BUF / 4 ||
			    mono() - last_flush > 0.1) {
				flush_all(&r);
				since = 0;
				last_flush = mono();
			}
		}
		mproc_iter_free(it);
		its[(b - 1) % 2] = NULL;
	}
	for (int k = 0; k < 2; k++)
		mproc_iter_free(its[k]);
	flush_all(&r);
	int status = 0;
	if (rc < 0 && rc != MPROC_EHALTED && rc != MPROC_ECLOSED) {
		fprintf(stderr, "mproc-run: %s\n", mproc_strerror(rc));
		status = 255;
	}
	if (rc == MPROC_EHALTED || rc == MPROC_ECLOSED || halted)
		fprintf(stderr, "mproc-run: halted after %zu failures\n", r.failed);
	if (!halted)
		mproc_pool_close(pool);
	mproc_pool_join(pool);
	mproc_pool_free(pool);
	if (r.jl && fclose(r.jl) != 0)
		status = 255;
	if (r.res && fclose(r.res) != 0)
		status = 255;
	free(r.jlbuf);
	free(r.resbuf);
	for (size_t i = 0; i < r.n; i++)
		free(r.lines[i]);
	free(r.lines);
	free(r.todo);
	free(r.done);
	if (status)
		return status;
	return r.failed == 0 ? 0 : r.failed <= 100 ? (int)r.failed : 101;
}
