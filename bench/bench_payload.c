/*
 * bench_payload.c - what a big bytes argument costs a task, on mproc's
 * process and thread pools, beside the anchors it is measured against:
 * one memcpy of the payload, and a bare pipe round trip of it between two
 * processes (pipes of 1 MiB, F_SETPIPE_SZ).
 *
 *   build/bench/bench_payload [--contender LIST] [--task LIST] [--size LIST]
 *                             [--ref] [--target SECONDS] [--workers N]
 *
 * Contenders (default all): processes, threads (mproc pools of --workers,
 * default 2, imap at chunksize 1), memcpy, pipe. Tasks (default both):
 * echo, the task returns its argument (mproc_write_value(ret, arg)); len,
 * it returns the argument's length as an int. Sizes (default 1K, 64K, 1M,
 * 16M; a number of bytes with an optional K, M or G, powers of 1024).
 *
 * The pools' input writes the payload with mproc_write_bytes() (a copy
 * into the task's pickle, like Python's Pool pickling a bytes argument).
 * With --ref it writes it by reference with mproc_write_buffer(w, p, len,
 * 0), the way a C program hands over memory it keeps alive (as Python's
 * ThreadPool hands over a reference); the contenders are then named
 * processes-ref and threads-ref. --ref needs an mproc that has
 * mproc_write_buffer: its header defines MPROC_BUFFER_COPY, which this
 * file tests, so that it builds against an older mproc too.
 *
 * The anchors: memcpy copies the payload once between two buffers that are
 * already faulted in (the same for both tasks); pipe writes it to a child
 * that reads all of it and writes it back (echo) or writes back 8 bytes
 * (len), one round trip at a time.
 *
 * Each measurement opens its pool (or child) first, then runs untimed
 * batches of doubling size until one takes 50 ms (the warm-up, and an
 * estimate of a task's cost), then one timed run of as many tasks as fill
 * --target seconds (default 0.4), at least 8 (4 a worker), so that a
 * contender's measurement takes about 0.3-1 s whatever it costs a task.
 * Prints one line per measurement:
 *
 *   CONTENDER TASK SIZE US_PER_TASK us N
 *
 * (memcpy's task is "-"). bench/compare_payload.py runs this and
 * bench/bench_payload.py (Python's Pool and ThreadPool) one measurement at
 * a time, interleaved, round after round, and makes the table of
 * docs/payloads.md. Exit status 0, 1 when a measurement failed, 2 on a
 * usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#define MAX_SIZES 16
#define WARM_SECS 0.05

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum task { T_ECHO, T_LEN };
static const char *const task_name[] = {"echo", "len"};

static unsigned workers = 2;
static double target = 0.4;
static bool by_ref;

/* The payload of the current measurement, and its size. */
static unsigned char *payload;
static size_t payload_len;

/* ---- the mproc tasks ------------------------------------------------------ */

static int task_echo(const struct mproc_value *arg, struct mproc_writer *ret)
{
	return mproc_write_value(ret, arg);
}

static int task_len(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const void *p;
	size_t len;
	int rc = mproc_value_bytes(arg, &p, &len);
	if (rc < 0)
		return rc;
	return mproc_write_int(ret, (int64_t)len);
}

static int task_pid(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_int(ret, getpid());
}

static int gen_next(void *cookie, size_t index, struct mproc_writer *w)
{
	size_t n = *(const size_t *)cookie;
	if (index >= n)
		return 0;
#ifdef MPROC_BUFFER_COPY
	int rc = by_ref ? mproc_write_buffer(w, payload, payload_len, 0)
	                : mproc_write_bytes(w, payload, payload_len);
#else
	int rc = mproc_write_bytes(w, payload, payload_len);
#endif
	return rc < 0 ? rc : 1;
}

/* Whether result r is what task t returns for the payload. */
static bool result_ok(const struct mproc_result *r, enum task t)
{
	if (r->status != MPROC_OK)
		return false;
	if (t == T_LEN) {
		int64_t v;
		return mproc_value_int(r->value, &v) == 0 &&
		       (size_t)v == payload_len;
	}
	const void *p;
	size_t len;
	if (mproc_value_bytes(r->value, &p, &len) < 0 || len != payload_len)
		return false;
	const unsigned char *b = p;
	return len == 0 || (b[0] == payload[0] && b[len - 1] == payload[len - 1]);
}

/* n tasks through imap at chunksize 1; 0 or a negative code. */
static int pool_run(struct mproc_pool *p, enum task t, size_t n)
{
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	size_t got = 0;
	mproc_input_fn_init(&in, gen_next, &n);
	mproc_input_set_len(&in, n);
	int rc = mproc_imap(p, t == T_ECHO ? task_echo : task_len, &in, 1, &it);
	if (rc < 0)
		return rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		if (!result_ok(r, t)) {
			if (r->status == MPROC_RAISED && r->error)
				fprintf(stderr, "bench_payload: task %zu: %s: %s\n",
				        r->index, r->error->type, r->error->msg);
			else if (r->status != MPROC_OK)
				fprintf(stderr, "bench_payload: task %zu: %s\n",
				        r->index, mproc_status_name(r->status));
			rc = r->status == MPROC_OK ? -EPROTO : MPROC_ERAISED;
			break;
		}
		got++;
	}
	mproc_iter_free(it);
	if (rc == 0 && got != n)
		rc = -EPROTO;
	return rc;
}

/* ---- the anchors ------------------------------------------------------------ */

static unsigned char *copy_dst;

static int memcpy_run(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		memcpy(copy_dst, payload, payload_len);
		/* The copy is used: the compiler keeps every one. */
		__asm__ volatile("" ::"r"(copy_dst) : "memory");
	}
	return 0;
}

static int pipe_to = -1, pipe_from = -1;
static pid_t pipe_child = -1;

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	while (len) {
		ssize_t k = write(fd, c, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		c += k;
		len -= (size_t)k;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t len)
{
	char *c = p;
	while (len) {
		ssize_t k = read(fd, c, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		c += k;
		len -= (size_t)k;
	}
	return 0;
}

/* The child reads the whole payload, then answers with it (echo) or with
 * its length (len); it ends at end of file. */
static void pipe_serve(int in, int out, enum task t)
{
	unsigned char *buf = malloc(payload_len);
	if (!buf)
		_exit(1);
	memset(buf, 0, payload_len);
	for (;;) {
		if (read_all(in, buf, payload_len) < 0)
			_exit(0);
		uint64_t len = payload_len;
		int rc = t == T_ECHO ? write_all(out, buf, payload_len)
		                     : write_all(out, &len, sizeof len);
		if (rc < 0)
			_exit(1);
	}
}

static int pipe_open(enum task t)
{
	int a[2], b[2];
	if (pipe2(a, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(b, O_CLOEXEC) < 0) {
		int e = -errno;
		close(a[0]), close(a[1]);
		return e;
	}
	for (int k = 0; k < 2; k++) {
		(void)fcntl(a[k], F_SETPIPE_SZ, 1 << 20);
		(void)fcntl(b[k], F_SETPIPE_SZ, 1 << 20);
	}
	pipe_child = fork();
	if (pipe_child < 0) {
		int e = -errno;
		close(a[0]), close(a[1]), close(b[0]), close(b[1]);
		return e;
	}
	if (pipe_child == 0) {
		close(a[1]);
		close(b[0]);
		pipe_serve(a[0], b[1], t);
	}
	close(a[0]);
	close(b[1]);
	pipe_to = a[1];
	pipe_from = b[0];
	return 0;
}

static void pipe_close(void)
{
	if (pipe_to >= 0)
		close(pipe_to);
	if (pipe_from >= 0)
		close(pipe_from);
	pipe_to = pipe_from = -1;
	if (pipe_child > 0)
		while (waitpid(pipe_child, NULL, 0) < 0 && errno == EINTR)
			;
	pipe_child = -1;
}

static int pipe_run(enum task t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t len;
		int rc = write_all(pipe_to, payload, payload_len);
		if (rc == 0)
			rc = t == T_ECHO ? read_all(pipe_from, copy_dst, payload_len)
			                 : read_all(pipe_from, &len, sizeof len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- one measurement -------------------------------------------------------- */

enum contender { C_PROCESSES, C_THREADS, C_MEMCPY, C_PIPE, C_COUNT };
static const char *const contender_name[C_COUNT] = {"processes", "threads",
                                                    "memcpy", "pipe"};

struct run {
	enum contender c;
	enum task t;
	struct mproc_pool *pool;
};

static int run_n(const struct run *r, size_t n)
{
	switch (r->c) {
	case C_MEMCPY:
		return memcpy_run(n);
	case C_PIPE:
		return pipe_run(r->t, n);
	default:
		return pool_run(r->pool, r->t, n);
	}
}

static int open_pool(struct mproc_pool **out, enum contender c)
{
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = workers;
	o.backend = c == C_THREADS ? MPROC_BACKEND_THREADS
	                           : MPROC_BACKEND_PROCESSES;
	int rc = mproc_pool_open(out, &o);
	if (rc < 0 || c != C_THREADS)
		return rc;
	/* An mproc without the threads backend forks: not threads. */
	struct mproc_results *res;
	int64_t pid = 0;
	rc = mproc_apply(*out, task_pid, NULL, 0, &res);
	if (rc == 0)
		rc = mproc_value_int(mproc_results_value(res, 0), &pid);
	mproc_results_free(res);
	if (rc == 0 && pid != getpid())
		rc = -ENOTSUP;
	if (rc < 0)
		mproc_pool_free(*out);
	return rc;
}

static int measure(enum contender c, enum task t, size_t size)
{
	struct run r = {.c = c, .t = t};
	int rc = 0;
	payload_len = size;
	payload = malloc(size ? size : 1);
	copy_dst = malloc(size ? size : 1);
	if (!payload || !copy_dst) {
		rc = -ENOMEM;
		goto out;
	}
	/* Both faulted in, and not all one byte value. */
	for (size_t i = 0; i < size; i++)
		payload[i] = (unsigned char)(i * 131u + 7u);
	memset(copy_dst, 0, size);
	if (c == C_PROCESSES || c == C_THREADS)
		rc = open_pool(&r.pool, c);
	else if (c == C_PIPE)
		rc = pipe_open(t);
	if (rc < 0) {
		r.pool = NULL;
		goto out;
	}
	/* Warm-up and estimate: batches of 1, 2, 4, ... (at least one task
	 * a worker) until one takes WARM_SECS. */
	size_t n = c == C_PROCESSES || c == C_THREADS ? workers : 1;
	double per = 0;
	for (;;) {
		double t0 = now();
		if ((rc = run_n(&r, n)) < 0)
			goto out;
		double dt = now() - t0;
		per = dt / (double)n;
		if (dt >= WARM_SECS || n >= ((size_t)1 << 30))
			break;
		n *= 2;
	}
	double want = per > 0 ? target / per : 1e9;
	size_t lo = 4 * (size_t)workers;
	n = want < (double)lo ? lo : want > 1e9 ? (size_t)1e9 : (size_t)want;
	double t0 = now();
	if ((rc = run_n(&r, n)) < 0)
		goto out;
	double dt = now() - t0;
	char name[32];
	snprintf(name, sizeof name, "%s%s", contender_name[c],
	         by_ref && (c == C_PROCESSES || c == C_THREADS) ? "-ref" : "");
	printf("%s %s %zu %.4f us %zu\n", name, c == C_MEMCPY ? "-" : task_name[t],
	       size, dt / (double)n * 1e6, n);
out:
	if (r.pool) {
		mproc_pool_close(r.pool);
		mproc_pool_join(r.pool);
		mproc_pool_free(r.pool);
	}
	if (c == C_PIPE)
		pipe_close();
	free(payload);
	free(copy_dst);
	payload = copy_dst = NULL;
	if (rc < 0)
		fprintf(stderr, "bench_payload: %s %s %zu: %s\n", contender_name[c],
		        task_name[t], size, mproc_strerror(rc));
	return rc;
}

/* ---- main ---------------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr,
	        "usage: bench_payload [--contender processes,threads,memcpy,pipe]\n"
	        "                     [--task echo,len] [--size 1K,64K,1M,16M]\n"
	        "                     [--ref] [--target SECONDS] [--workers N]\n");
	return 2;
}

/* "1K", "64K", "16M", "1G" or bytes; false when not a size. */
static bool parse_size(const char *s, size_t len, size_t *out)
{
	char buf[32], *end;
	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return false;
	int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' ? 20
	            : *end == 'G' ? 30 : 0;
	if (shift)
		end++;
	if (*end || v == 0 || v > (1ull << 40) >> shift)
		return false;
	*out = (size_t)(v << shift);
	return true;
}

/* Mark the names of a comma-separated list; false on an unknown one. */
static bool parse_names(const char *list, const char *const *names, int n,
                        bool *mark)
{
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		int k = 0;
		while (k < n && (strlen(names[k]) != len || strncmp(names[k], p, len)))
			k++;
		if (k == n)
			return false;
		mark[k] = true;
		p += len + (p[len] == ',');
	}
	return true;
}

int main(int argc, char *argv[], char *envp[])
{
	bool cs[C_COUNT] = {0}, ts[2] = {0}, any_c = false, any_t = false;
	size_t sizes[MAX_SIZES] = {1 << 10, 64 << 10, 1 << 20, 16 << 20};
	size_t nsizes = 4;

	mproc_init(argc, argv, envp);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--ref")) {
#ifdef MPROC_BUFFER_COPY
			by_ref = true;
			continue;
#else
			fprintf(stderr, "bench_payload: --ref: this mproc has no "
			                "mproc_write_buffer\n");
			return 2;
#endif
		}
		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--contender")) {
			if (!parse_names(v, contender_name, C_COUNT, cs))
				return usage();
			any_c = true;
		} else if (!strcmp(a, "--task")) {
			if (!parse_names(v, task_name, 2, ts))
				return usage();
			any_t = true;
		} else if (!strcmp(a, "--size")) {
			nsizes = 0;
			for (const char *p = v; *p;) {
				size_t len = strcspn(p, ",");
				if (nsizes == MAX_SIZES ||
				    !parse_size(p, len, &sizes[nsizes++]))
					return usage();
				p += len + (p[len] == ',');
			}
			if (!nsizes)
				return usage();
		} else if (!strcmp(a, "--target")) {
			char *end;
			target = strtod(v, &end);
			if (*end || !(target > 0 && target < 3600))
				return usage();
		} else if (!strcmp(a, "--workers")) {
			char *end;
			long w = strtol(v, &end, 10);
			if (*end || w < 1 || w > 256)
				return usage();
			workers = (unsigned)w;
		} else {
			return usage();
		}
	}
	for (int c = 0; c < C_COUNT; c++)
		cs[c] = !any_c || cs[c];
	for (int t = 0; t < 2; t++)
		ts[t] = !any_t || ts[t];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	int status = 0;
	for (size_t s = 0; s < nsizes; s++)
		for (int t = 0; t < 2; t++) {
			if (!ts[t])
				continue;
			for (int c = 0; c < C_COUNT; c++) {
				/* memcpy does the same for both tasks: once. */
				if (!cs[c] || (c == C_MEMCPY && t != 0 && ts[0]))
					continue;
				if (measure((enum contender)c, (enum task)t,
				            sizes[s]) < 0)
					status = 1;
			}
		}
	return status;
}
