/*
 * bench_ports.c - Queue, Pipe, Lock and Process against their floors, in
 * one run: a bare pipe carrying the same pickles (4-byte length, then the
 * pickle, decoded on arrival), and a bare pipe round trip.
 *
 * Prints one line per measure: "name value unit". bench/compare_ports.py
 * runs this and bench/bench_ports.py (Python's multiprocessing on the same
 * work) alternately and makes the table in docs/benchmarks.md.
 *
 * Usage: bench_ports [--quick]
 */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_ports: %s: %s\n", what, mproc_strerror(rc));
	exit(1);
}

static size_t N_ITEMS = 200000, N_RTT = 20000, N_LOCK = 1000000,
              N_CONTEND = 200000, N_PROC = 300;

/* The small value every measure carries: the pickle of an int. */
static struct mproc_writer *W;
static const void *pickle_of(int64_t x, size_t *len)
{
	const void *p;
	mproc_writer_reset(W);
	mproc_write_int(W, x);
	if (mproc_writer_finish(W, &p, len) < 0)
		die("writer", MPROC_EWRITER);
	return p;
}

static int64_t int_of(const struct mproc_value *v)
{
	int64_t x = -1;
	mproc_value_int(v, &x);
	return x;
}

/* ---- Queue ------------------------------------------------------------- */

static struct mproc_queue *Q1, *Q2;

static int t_produce(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (size_t i = 0; i < N_ITEMS; i++) {
		size_t len;
		const void *p = pickle_of((int64_t)i, &len);
		int rc = mproc_queue_put(Q1, p, len, true, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void bench_queue_throughput(void)
{
	struct mproc_process *p;
	int rc;
	if ((rc = mproc_queue_new(&Q1, 0)) < 0 ||
	    (rc = mproc_process_start(&p, t_produce, NULL, 0, NULL)) < 0)
		die("queue", rc);
	double t0 = now();
	for (size_t i = 0; i < N_ITEMS; i++) {
		const struct mproc_value *v;
		if ((rc = mproc_queue_get(Q1, true, -1, &v)) < 0 ||
		    int_of(v) != (int64_t)i)
			die("queue get", rc);
	}
	double dt = now() - t0;
	mproc_process_join(p, -1);
	mproc_process_free(p);
	mproc_queue_free(Q1);
	printf("queue_items_per_s %.0f items/s\n", (double)N_ITEMS / dt);
}

static int t_echo_queue(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (size_t i = 0; i < N_RTT; i++) {
		const void *b;
		size_t n;
		int rc = mproc_queue_get_bytes(Q1, true, -1, &b, &n);
		if (rc == 0)
			rc = mproc_queue_put(Q2, b, n, true, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void bench_queue_latency(void)
{
	struct mproc_process *p;
	int rc;
	if ((rc = mproc_queue_new(&Q1, 0)) < 0 ||
	    (rc = mproc_queue_new(&Q2, 0)) < 0 ||
	    (rc = mproc_process_start(&p, t_echo_queue, NULL, 0, NULL)) < 0)
		die("queue", rc);
	double t0 = now();
	for (size_t i = 0; i < N_RTT; i++) {
		size_t len;
		const void *b = pickle_of((int64_t)i, &len);
		const struct mproc_value *v;
		if ((rc = mproc_queue_put(Q1, b, len, true, -1)) < 0 ||
		    (rc = mproc_queue_get(Q2, true, -1, &v)) < 0)
			die("queue rtt", rc);
	}
	double dt = now() - t0;
	mproc_process_join(p, -1);
	mproc_process_free(p);
	mproc_queue_free(Q1);
	mproc_queue_free(Q2);
	printf("queue_latency_us %.2f us\n", dt / (double)N_RTT / 2 * 1e6);
}

/* ---- bare pipes: the floors ---------------------------------------------- */

static void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/* Read one framed message into buf (grown); its length. */
static size_t read_msg(int fd, char **buf, size_t *cap, char *in, size_t *have,
                       size_t *off)
{
	for (;;) {
		if (*have - *off >= 4) {
			uint32_t len;
			memcpy(&len, in + *off, 4);
			if (*have - *off >= 4 + (size_t)len) {
				if (len > *cap) {
					*buf = realloc(*buf, len);
					*cap = len;
				}
				memcpy(*buf, in + *off + 4, len);
				*off += 4 + len;
				return len;
			}
		}
		memmove(in, in + *off, *have - *off);
		*have -= *off;
		*off = 0;
		ssize_t n = read(fd, in + *have, 65536 - *have);
		if (n <= 0)
			die("pipe read", n < 0 ? -errno : MPROC_EEOF);
		*have += (size_t)n;
	}
}

/* The same pickles as the queue, over a bare pipe: a write per item, as
 * a put is one (`batched`: the writer gathers 64 KiB a write, which no
 * queue with a put per item can do), read in 64 KiB gulps and decoded one
 * by one. */
static void bench_pipe_throughput(bool batched)
{
	int fd[2];
	if (pipe(fd) < 0)
		die("pipe", -errno);
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		char out[65536];
		size_t used = 0;
		for (size_t i = 0; i < N_ITEMS; i++) {
			size_t len;
			const void *p = pickle_of((int64_t)i, &len);
			if (used + 4 + len > sizeof out) {
				write_all(fd[1], out, used);
				used = 0;
			}
			uint32_t l = (uint32_t)len;
			memcpy(out + used, &l, 4);
			memcpy(out + used + 4, p, len);
			used += 4 + len;
			if (!batched) {
				write_all(fd[1], out, used);
				used = 0;
			}
		}
		write_all(fd[1], out, used);
		_exit(0);
	}
	close(fd[1]);
	struct mproc_decoder *dec;
	mproc_decoder_new(&dec, NULL);
	char *in = malloc(65536), *buf = NULL;
	size_t have = 0, off = 0, cap = 0;
	double t0 = now();
	for (size_t i = 0; i < N_ITEMS; i++) {
		size_t n = read_msg(fd[0], &buf, &cap, in, &have, &off);
		const struct mproc_value *v;
		if (mproc_decode(dec, buf, n, &v) < 0 || int_of(v) != (int64_t)i)
			die("pipe decode", MPROC_EPICKLE_INVALID);
	}
	double dt = now() - t0;
	close(fd[0]);
	waitpid(pid, NULL, 0);
	free(in);
	free(buf);
	mproc_decoder_free(dec);
	printf("%s %.0f items/s\n",
	       batched ? "pipe_batched_items_per_s" : "pipe_items_per_s",
	       (double)N_ITEMS / dt);
}

/* A bare round trip: the same framed pickle there and back over two
 * pipes, decoded at the parent. */
static void bench_pipe_rtt(void)
{
	int a[2], b[2];
	if (pipe(a) < 0 || pipe(b) < 0)
		die("pipe", -errno);
	pid_t pid = fork();
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		char *in = malloc(65536), *buf = NULL;
		size_t have = 0, off = 0, cap = 0;
		for (size_t i = 0; i < N_RTT; i++) {
			size_t n = read_msg(a[0], &buf, &cap, in, &have, &off);
			uint32_t l = (uint32_t)n;
			char msg[64];
			memcpy(msg, &l, 4);
			memcpy(msg + 4, buf, n);
			write_all(b[1], msg, 4 + n);
		}
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	struct mproc_decoder *dec;
	mproc_decoder_new(&dec, NULL);
	char *in = malloc(65536), *buf = NULL;
	size_t have = 0, off = 0, cap = 0;
	double t0 = now();
	for (size_t i = 0; i < N_RTT; i++) {
		size_t len;
		const void *p = pickle_of((int64_t)i, &len);
		char msg[64];
		uint32_t l = (uint32_t)len;
		memcpy(msg, &l, 4);
		memcpy(msg + 4, p, len);
		write_all(a[1], msg, 4 + len);
		size_t n = read_msg(b[0], &buf, &cap, in, &have, &off);
		const struct mproc_value *v;
		if (mproc_decode(dec, buf, n, &v) < 0 || int_of(v) != (int64_t)i)
			die("rtt decode", MPROC_EPICKLE_INVALID);
	}
	double dt = now() - t0;
	close(a[1]);
	close(b[0]);
	waitpid(pid, NULL, 0);
	free(in);
	free(buf);
	mproc_decoder_free(dec);
	printf("barepipe_rtt_us %.2f us\n", dt / (double)N_RTT * 1e6);
}

/* ---- Pipe (Connection) --------------------------------------------------- */

static struct mproc_conn *CA, *CB;

static int t_echo_conn(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (size_t i = 0; i < N_RTT; i++) {
		const void *b;
		size_t n;
		int rc = mproc_conn_recv_bytes(CB, &b, &n);
		if (rc == 0)
			rc = mproc_conn_send_bytes(CB, b, n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void bench_conn_rtt(void)
{
	struct mproc_process *p;
	int rc;
	if ((rc = mproc_pipe(&CA, &CB, true)) < 0 ||
	    (rc = mproc_process_start(&p, t_echo_conn, NULL, 0, NULL)) < 0)
		die("pipe", rc);
	double t0 = now();
	for (size_t i = 0; i < N_RTT; i++) {
		size_t len;
		const void *b = pickle_of((int64_t)i, &len);
		const struct mproc_value *v;
		if ((rc = mproc_conn_send(CA, b, len)) < 0 ||
		    (rc = mproc_conn_recv(CA, &v)) < 0 || int_of(v) != (int64_t)i)
			die("conn rtt", rc);
	}
	double dt = now() - t0;
	mproc_process_join(p, -1);
	mproc_process_free(p);
	mproc_conn_free(CA);
	mproc_conn_free(CB);
	printf("conn_rtt_us %.2f us\n", dt / (double)N_RTT * 1e6);
}

/* ---- Lock ---------------------------------------------------------------- */

static struct mproc_lock *L;
static volatile int64_t *counter;

static void bench_lock_uncontended(void)
{
	int rc = mproc_lock_new(&L);
	if (rc < 0)
		die("lock", rc);
	double t0 = now();
	for (size_t i = 0; i < N_LOCK; i++) {
		mproc_lock_acquire(L, -1);
		mproc_lock_release(L);
	}
	double dt = now() - t0;
	mproc_lock_free(L);
	printf("lock_uncontended_ns %.1f ns\n", dt / (double)N_LOCK * 1e9);
}

static int t_contend(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (size_t i = 0; i < N_CONTEND; i++) {
		mproc_lock_acquire(L, -1);
		*counter += 1;
		mproc_lock_release(L);
	}
	return 0;
}

static void bench_lock_contended(void)
{
	counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct mproc_process *p[2];
	int rc = mproc_lock_new(&L);
	if (rc < 0)
		die("lock", rc);
	double t0 = now();
	for (int i = 0; i < 2; i++)
		if ((rc = mproc_process_start(&p[i], t_contend, NULL, 0, NULL)) < 0)
			die("process", rc);
	for (int i = 0; i < 2; i++) {
		mproc_process_join(p[i], -1);
		mproc_process_free(p[i]);
	}
	double dt = now() - t0;
	if (*counter != (int64_t)(2 * N_CONTEND))
		die("contended count", -EIO);
	mproc_lock_free(L);
	munmap((void *)counter, 4096);
	printf("lock_contended_ns %.1f ns\n", dt / (double)(2 * N_CONTEND) * 1e9);
}

/* ---- Process ------------------------------------------------------------- */

static int t_empty(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return 0;
}

/* Start and join N_PROC Processes by `method`; µs each. With the fork
 * server, the first start (which forks the server) is done before the
 * clock starts, as Python's forkserver runs one before it is timed. */
static double process_round(enum mproc_start_method method)
{
	struct mproc_process_opts o = {.start_method = method};
	struct mproc_process *p;
	int rc;
	if (method == MPROC_START_FORKSERVER) {
		if ((rc = mproc_process_start(&p, t_empty, NULL, 0, &o)) < 0)
			die("process", rc);
		mproc_process_join(p, -1);
		mproc_process_free(p);
	}
	double t0 = now();
	for (size_t i = 0; i < N_PROC; i++) {
		if ((rc = mproc_process_start(&p, t_empty, NULL, 0, &o)) < 0)
			die("process", rc);
		mproc_process_join(p, -1);
		mproc_process_free(p);
	}
	return (now() - t0) / (double)N_PROC * 1e6;
}

static void bench_process(void)
{
	printf("process_start_join_us %.1f us\n", process_round(MPROC_START_FORK));
	printf("process_forkserver_start_join_us %.1f us\n",
	       process_round(MPROC_START_FORKSERVER));
}

/* The floor of a Process: fork, _exit at once, waitpid. */
static void bench_fork(void)
{
	double t0 = now();
	for (size_t i = 0; i < N_PROC; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid < 0)
			die("fork", -errno);
		waitpid(pid, NULL, 0);
	}
	double dt = now() - t0;
	printf("fork_wait_us %.1f us\n", dt / (double)N_PROC * 1e6);
}

int main(int argc, char *argv[], char *envp[])
{
	mproc_init(argc, argv, envp);
	if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
		N_ITEMS = 20000;
		N_RTT = 2000;
		N_LOCK = 100000;
		N_CONTEND = 20000;
		N_PROC = 30;
	}
	if (mproc_writer_new(&W, 5) < 0)
		die("writer", -ENOMEM);
	bench_queue_throughput();
	bench_pipe_throughput(false);
	bench_pipe_throughput(true);
	bench_queue_latency();
	bench_conn_rtt();
	bench_pipe_rtt();
	bench_lock_uncontended();
	bench_lock_contended();
	bench_process();
	bench_fork();
	mproc_writer_free(W);
	return 0;
}
