/*
 * test_fault_stress.c - many tasks, many faults at once: 1% of the tasks
 * crash in a way taken from the fault table, 0.1% hang past the timeout,
 * a few wreck their worker's channel to the pool (close its descriptors,
 * dup2 /dev/null over them, write garbage or a forged RESULT header into
 * them), a thread kills random workers from outside every few
 * milliseconds and another stops one with SIGSTOP for 50 to 300 ms now and
 * then. Every index must end in exactly one final result with a status its
 * task explains, and nothing may be left behind: not in a run to the end,
 * and not when a map_async or an imap is terminated from another thread
 * half way through.
 *
 * Knobs, all optional:
 *   MPROC_STRESS_N        tasks (default 100000); CI runs them under
 *                         AddressSanitizer too, and 1000 under valgrind
 *   MPROC_STRESS_TIMEOUT  task timeout in seconds (default 0.05)
 *   MPROC_STRESS_KILL_MS  mean pause between kills from outside (10;
 *                         0 kills nobody)
 *   MPROC_STRESS_STOP_MS  mean pause between stops from outside, each of
 *                         50 to 300 ms (100; 0 stops nobody)
 *   MPROC_STRESS_WRECK    each way of wrecking the channel strikes 1 task
 *                         in this many (default 2000, or N / 2 when that is
 *                         less, so that a small run wrecks some; 0 none)
 *   MPROC_STRESS_TERM_AT  fraction of the tasks done when the terminate
 *                         comes (default 0.5)
 *   MPROC_STRESS_VERBOSE  1: print each result that a kill or a stop from
 *                         outside explains (those nothing explains always)
 * (CI stretches the timeout and the kill pause to valgrind's pace.)
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"


#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0"; /* tasks that exit() end with their status */
}
#endif

/* ---- the knobs ---------------------------------------------------------- */

static double env_num(const char *name, double dflt)
{
	const char *s = getenv(name);
	return s && *s ? strtod(s, NULL) : dflt;
}

static size_t stress_n(void)
{
	return (size_t)env_num("MPROC_STRESS_N", 100000);
}

/* ---- the tasks ---------------------------------------------------------- */

enum kind { K_OK, K_SEGV, K_ABORT, K_EXIT, K__EXIT, K_BUS_KILL, K_HANG,
            K_CLOSE_FDS, K_DEVNULL_FDS, K_GARBAGE, K_FORGED_HEADER };

static const char *const kind_name[] = {
	"ok", "segv", "abort", "exit", "_exit", "raise-kill", "hang",
	"close-fds", "devnull-fds", "garbage", "forged-header",
};

/* Set before a pool opens, so that its workers inherit them: 1 task in
 * wreck_every is struck by each way of wrecking the channel (0: none), and
 * the descriptors open before the pool, which belong to the test harness
 * (Check's, and whatever the caller left open, anywhere in the range) and
 * are shared with the workers: garbage written there would go to them. */
#define FD_MAX 1024
static uint64_t wreck_every;
static bool harness_fd[FD_MAX];

static void set_wreck_rate(size_t n)
{
	double dflt = n / 2 < 2000 ? (double)(n / 2 > 8 ? n / 2 : 8) : 2000;
	double e = env_num("MPROC_STRESS_WRECK", dflt);
	wreck_every = e > 0 ? (uint64_t)e : 0;
	if (wreck_every && wreck_every < 8)
		wreck_every = 8;
}

/* Called right before a pool opens, with no other thread of ours running. */
static void note_harness_fds(void)
{
	memset(harness_fd, 0, sizeof harness_fd);
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd >= 0 && fd < FD_MAX && fd != dirfd(d))
			harness_fd[fd] = true;
	}
	if (d)
		closedir(d);
}

/* A descriptor the pool may have made (or anything opened after it). */
static bool pool_fd(int fd)
{
	return fd >= 3 && fd < FD_MAX && !harness_fd[fd];
}

/* The fate of input i: fixed, so the test knows what to expect. */
static enum kind kind_of(uint64_t i)
{
	uint64_t h = i * 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	if (wreck_every) {
		/* splitmix64's finalizer: each way of wrecking as likely */
		uint64_t z = i + 0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		uint64_t w = (z ^ (z >> 31)) % wreck_every;
		if (w < 4)
			return (enum kind)(K_CLOSE_FDS + w);
	}
	unsigned r = (unsigned)(h % 1000);
	if (r < 10)
		return (enum kind)(K_SEGV + r % 5);
	if (r == 10)
		return K_HANG;
	return K_OK;
}

static bool wrecks(enum kind k)
{
	return k >= K_CLOSE_FDS;
}

/* One past the highest descriptor this process may have (under valgrind,
 * the limit it shows its client, so that its own are left alone). */
static int fd_end(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < FD_MAX)
		return (int)rl.rlim_cur;
	return FD_MAX;
}

static volatile uintptr_t bad = 0x8;

static int t_stress(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t i = 0;
	mproc_value_int(arg, &i);
	int end = fd_end();
	switch (kind_of((uint64_t)i)) {
	case K_SEGV:
		*(volatile int *)bad = 1;
		break;
	case K_ABORT:
		abort();
	case K_EXIT:
		exit(7);
	case K__EXIT:
		_exit(9);
	case K_BUS_KILL:
		raise(SIGKILL);
		break;
	case K_HANG:
		for (;;)
			pause();
	case K_CLOSE_FDS:
		for (int fd = 3; fd < end; fd++)
			close(fd);
		break;
	case K_DEVNULL_FDS: {
		int null = open("/dev/null", O_RDWR);
		for (int fd = 3; fd < end; fd++)
			if (pool_fd(fd) && fd != null && fcntl(fd, F_GETFD) >= 0)
				dup2(null, fd);
		close(null);
		break;
	}
	case K_GARBAGE: {
		static const char junk[64] = "garbage garbage garbage";
		for (int fd = 3; fd < end; fd++)
			if (pool_fd(fd) && write(fd, junk, sizeof junk) < 0)
				continue;
		break;
	}
	case K_FORGED_HEADER: {
		/* A well-formed RESULT header that claims 256 MiB, then nothing
		 * (the layout of lib/wire.h's struct mproc__frame). */
		unsigned char hdr[32] = {0};
		uint32_t len = 256u << 20, count = 1;
		memcpy(hdr, &len, 4);
		hdr[4] = 2; /* RESULT */
		memcpy(hdr + 8, &count, 4);
		for (int fd = 3; fd < end; fd++)
			if (pool_fd(fd) && write(fd, hdr, sizeof hdr) < 0)
				continue;
		break;
	}
	case K_OK:
		break;
	}
	return mproc_write_int(ret, i * 3);
}

/* ---- from outside: the killer and the stopper --------------------------- */

/* Children of the process whose task path is given; through the fork
 * server, whose children are the workers (it is never killed itself). */
static int list_workers(const char *path, pid_t *pids, int max)
{
	FILE *f = fopen(path, "re");
	int n = 0, pid;
	while (f && n < max && fscanf(f, "%d", &pid) == 1) {
		char comm[64], cpath[64];
		snprintf(comm, sizeof comm, "/proc/%d/comm", pid);
		FILE *c = fopen(comm, "re");
		bool server = false;
		if (c) {
			char name[32] = "";
			server = fgets(name, sizeof name, c) &&
			         strncmp(name, "mproc-forksrv", 13) == 0;
			fclose(c);
		}
		if (server) {
			snprintf(cpath, sizeof cpath, "/proc/%d/task/%d/children", pid,
			         pid);
			n += list_workers(cpath, pids + n, max - n);
		} else {
			pids[n++] = pid;
		}
	}
	if (f)
		fclose(f);
	return n;
}

struct outside {
	pthread_t killer, stopper;
	atomic_bool stop;
	char children[64]; /* /proc path of the test process's children */
	long kill_ns, stop_ns; /* mean pauses; stop_ns 0: no stopper */
	unsigned long kills, stops;
};

/* Sleeps ns nanoseconds, in steps, returning early once o->stop is set. */
static void outside_nap(struct outside *o, long ns)
{
	while (ns > 0 && !atomic_load(&o->stop)) {
		long step = ns < 20000000L ? ns : 20000000L;
		struct timespec ts = {0, step};
		nanosleep(&ts, NULL);
		ns -= step;
	}
}

/* A pause of mean `mean` nanoseconds, from half of it to one and a half. */
static long pause_ns(long mean, unsigned *seed)
{
	return mean / 2 + (long)((double)mean * rand_r(seed) / RAND_MAX);
}

static void *killer(void *arg)
{
	struct outside *o = arg;
	unsigned seed = 12345;
	while (!atomic_load(&o->stop)) {
		outside_nap(o, pause_ns(o->kill_ns, &seed));
		if (atomic_load(&o->stop))
			break;
		pid_t pids[64];
		int n = list_workers(o->children, pids, 64);
		if (n && kill(pids[rand_r(&seed) % n], SIGKILL) == 0)
			o->kills++;
	}
	return NULL;
}

/* Stops a random worker for 50 to 300 ms, then lets it go on; it always
 * sends SIGCONT before it looks again, and before it returns. */
static void *stopper(void *arg)
{
	struct outside *o = arg;
	unsigned seed = 54321;
	while (!atomic_load(&o->stop)) {
		outside_nap(o, pause_ns(o->stop_ns, &seed));
		pid_t pids[64];
		int n = atomic_load(&o->stop) ? 0 : list_workers(o->children, pids, 64);
		if (!n)
			continue;
		pid_t pid = pids[rand_r(&seed) % n];
		if (kill(pid, SIGSTOP) < 0)
			continue;
		o->stops++;
		sleep_ms(50 + rand_r(&seed) % 251);
		kill(pid, SIGCONT);
	}
	return NULL;
}

static void outside_start(struct outside *o)
{
	memset(o, 0, sizeof *o);
	atomic_init(&o->stop, false);
	pid_t me = getpid();
	snprintf(o->children, sizeof o->children, "/proc/%d/task/%d/children",
	         (int)me, (int)me);
	/* MPROC_STRESS_KILL_MS: the mean pause between kills (default 10 ms;
	 * longer under valgrind, where a worker takes far longer to start). */
	o->kill_ns = (long)(env_num("MPROC_STRESS_KILL_MS", 10) * 1e6);
	o->stop_ns = (long)(env_num("MPROC_STRESS_STOP_MS", 100) * 1e6);
	if (o->kill_ns > 0)
		ck_assert_int_eq(pthread_create(&o->killer, NULL, killer, o), 0);
	if (o->stop_ns > 0)
		ck_assert_int_eq(pthread_create(&o->stopper, NULL, stopper, o), 0);
}

static void outside_end(struct outside *o)
{
	atomic_store(&o->stop, true);
	if (o->kill_ns > 0)
		pthread_join(o->killer, NULL);
	if (o->stop_ns > 0)
		pthread_join(o->stopper, NULL);
}

/* ---- judging a result --------------------------------------------------- */

enum verdict {
	V_UNEXPLAINED,
	V_OWN,       /* what the task itself does */
	V_DISTURBED, /* the killer's or the stopper's doing */
	V_CANCELLED, /* a terminate came first (allowed when asked) */
};

static bool says(const struct mproc_result *r, const char *what)
{
	return r->error && r->error->msg && strstr(r->error->msg, what);
}

/* The two messages a wrecked channel earns its task (lib/fault.c). */
static bool blamed_for_pipes(const struct mproc_result *r)
{
	return r->status == MPROC_CRASHED && says(r, "pipes to the pool");
}

static bool blamed_for_protocol(const struct mproc_result *r)
{
	return r->status == MPROC_CRASHED && says(r, "protocol error");
}

/* How result r of input i came to be; cancel_ok when a terminate may have
 * cancelled it. Only a task that wrecked the channel may be blamed for a
 * wrecked channel. */
static enum verdict judge(const struct mproc_result *r, uint64_t i,
                          bool cancel_ok)
{
	const struct mproc_crash *c = r->error ? r->error->crash : NULL;
	bool blamed = blamed_for_pipes(r) || blamed_for_protocol(r);
	bool killed = r->status == MPROC_CRASHED && c && c->signal == SIGKILL &&
	              !blamed;
	/* Past its timeout, a task's worker is sent SIGTERM, then SIGKILL;
	 * what ended it is in the report (an exit of its own may come
	 * first, when a stop from outside held it past the timeout). */
	bool timed_out = r->status == MPROC_TIMEOUT && c;
	int64_t v;
	enum kind k = kind_of(i);
	bool own = false;
	switch (k) {
	case K_OK:
		own = r->status == MPROC_OK && mproc_value_int(r->value, &v) == 0 &&
		      v == (int64_t)i * 3;
		break;
	case K_SEGV:
		own = r->status == MPROC_CRASHED && c && c->signal == SIGSEGV;
		break;
	case K_ABORT:
		own = r->status == MPROC_CRASHED && c && c->signal == SIGABRT;
		break;
	case K_EXIT:
		own = r->status == MPROC_CRASHED && c && c->exit_status == 7;
		break;
	case K__EXIT:
		own = r->status == MPROC_CRASHED && c && c->exit_status == 9;
		break;
	case K_BUS_KILL:
		own = killed;
		break;
	case K_HANG:
		own = timed_out;
		break;
	case K_CLOSE_FDS:
	case K_DEVNULL_FDS:
		own = blamed_for_pipes(r);
		break;
	case K_GARBAGE:
	case K_FORGED_HEADER:
		own = blamed_for_protocol(r);
		break;
	}
	if (own)
		return V_OWN;
	if (cancel_ok && r->status == MPROC_CANCELLED)
		return V_CANCELLED;
	/* SIGKILL from outside, or a worker stopped past the timeout. */
	if (killed || timed_out)
		return V_DISTURBED;
	return V_UNEXPLAINED;
}

/* What the tally of one run holds. */
struct tally {
	struct timespec t0; /* when the run began */
	size_t got, dup, by_verdict[4], by_status[8];
	/* Tasks that wrecked the channel, those blamed for it, and those a
	 * kill or a stop from outside ended first. */
	size_t wreck_tasks, wrecks_named, wrecks_killed, wrecks_timed_out;
	int shown;
};

/* MPROC_STRESS_VERBOSE=1: print the results a kill or a stop from
 * outside explains too, not only those nothing explains. */
static bool verbose;

static void tally_add(struct tally *t, unsigned char *seen,
                      const struct mproc_result *r, bool cancel_ok)
{
	enum verdict v = judge(r, r->index, cancel_ok);
	enum kind k = kind_of(r->index);
	t->dup += seen[r->index]++ != 0;
	t->by_verdict[v]++;
	t->by_status[r->status & 7]++;
	t->got++;
	if (wrecks(k) && r->status != MPROC_CANCELLED) {
		t->wreck_tasks++;
		t->wrecks_named += v == V_OWN;
		t->wrecks_killed += v == V_DISTURBED && r->status == MPROC_CRASHED;
		t->wrecks_timed_out += v == V_DISTURBED && r->status == MPROC_TIMEOUT;
	}
	bool show = v == V_UNEXPLAINED || (v == V_DISTURBED && verbose);
	if (show && t->shown++ < 50) {
		const struct mproc_crash *c = r->error ? r->error->crash : NULL;
		fprintf(stderr,
		        "stress: %s: index %zu (%s) ended %s after %u "
		        "attempt(s): %s (signal %d, exit status %d)\n",
		        v == V_UNEXPLAINED ? "unexplained" : "disturbed",
		        r->index, kind_name[k], mproc_status_name(r->status),
		        r->attempts, r->error && r->error->msg ? r->error->msg : "",
		        c ? c->signal : -1, c ? c->exit_status : -1);
	}
}

static void tally_print(const char *what, const struct tally *t,
                        const struct outside *o, struct mproc_pool_stats *st)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "stress %s: %.1f s\n", what,
	        (double)(t1.tv_sec - t->t0.tv_sec) +
	                (double)(t1.tv_nsec - t->t0.tv_nsec) / 1e9);
	fprintf(stderr,
	        "stress %s: %zu results; %lu kills, %lu stops from outside; ok "
	        "%zu crashed %zu timeout %zu cancelled %zu; %zu wreckers: %zu "
	        "named, %zu killed, %zu timed out; %zu disturbed, %zu "
	        "unexplained; retried %llu, workers replaced %llu, replacement "
	        "%.2f ms mean, %.2f ms max\n",
	        what, t->got, o->kills, o->stops, t->by_status[MPROC_OK],
	        t->by_status[MPROC_CRASHED], t->by_status[MPROC_TIMEOUT],
	        t->by_status[MPROC_CANCELLED], t->wreck_tasks, t->wrecks_named,
	        t->wrecks_killed, t->wrecks_timed_out,
	        t->by_verdict[V_DISTURBED], t->by_verdict[V_UNEXPLAINED],
	        (unsigned long long)st->retried,
	        (unsigned long long)st->workers_replaced, st->replace_mean * 1e3,
	        st->replace_max * 1e3);
}

/* Each kill or stop from outside can end at most one task's run, and a
 * task is run twice (retries = 1) before a failure is final. */
static void check_tally(const struct tally *t, const struct outside *o)
{
	ck_assert_uint_eq(t->dup, 0);
	ck_assert_uint_eq(t->by_verdict[V_UNEXPLAINED], 0);
	ck_assert_uint_le(t->by_verdict[V_DISTURBED], o->kills + o->stops);
	/* The wreckers did wreck: outside events cannot have hidden them all. */
	if (t->wreck_tasks >= 4)
		ck_assert_uint_gt(t->wrecks_named, 0);
}

static struct mproc_pool *open_stress_pool(size_t n)
{
	/* MPROC_STRESS_TIMEOUT: seconds (default 0.05; longer under valgrind,
	 * where even a crash takes that long). */
	struct mproc_pool_opts o = {.processes = 2,
	                            .task_timeout =
	                                    env_num("MPROC_STRESS_TIMEOUT", 0.05),
	                            .kill_grace = 0.02,
	                            .retries = 1};
	set_wreck_rate(n);
	verbose = env_num("MPROC_STRESS_VERBOSE", 0) != 0;
	note_harness_fds();
	return open_pool_opts(&o);
}

/* ---- a run to the end --------------------------------------------------- */

START_TEST(test_fault_stress_every_index_gets_one_explained_result)
{
	size_t n = stress_n();
	int fds = count_fds();
	struct tally t = {0};
	clock_gettime(CLOCK_MONOTONIC, &t.t0);
	struct mproc_pool *p = open_stress_pool(n);
	struct outside out;
	outside_start(&out);

	struct mproc_input in;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap_unordered(p, t_stress, &in, 8, &it), 0);
	unsigned char *seen = calloc(n, 1);
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		ck_assert_uint_lt(r->index, n);
		tally_add(&t, seen, r, false);
	}
	outside_end(&out);
	ck_assert_int_eq(rc, 0);
	mproc_iter_free(it);

	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	finish_pool(p);

	tally_print("run", &t, &out, &st);
	ck_assert_uint_eq(t.got, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(seen[i], 1);
	check_tally(&t, &out);
	free(seen);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert(no_children());
}
END_TEST

/* ---- a terminate half way through --------------------------------------- */

struct terminator {
	struct mproc_pool *pool;
	pthread_t th;
	uint64_t at; /* tasks done before it terminates */
	uint64_t done; /* tasks done when it did */
	int rc;
};

static void *terminate_later(void *arg)
{
	struct terminator *tm = arg;
	struct mproc_pool_stats st;
	for (;;) {
		if (mproc_pool_stats(tm->pool, &st) < 0 || st.tasks_done >= tm->at)
			break;
		sleep_ms(1);
	}
	tm->done = st.tasks_done;
	tm->rc = mproc_pool_terminate(tm->pool);
	return NULL;
}

static void terminator_start(struct terminator *tm, struct mproc_pool *p,
                             size_t n)
{
	double at = env_num("MPROC_STRESS_TERM_AT", 0.5);
	tm->pool = p;
	tm->at = (uint64_t)(at * (double)n);
	if (tm->at >= n)
		tm->at = n - 1;
	tm->rc = 1;
	ck_assert_int_eq(pthread_create(&tm->th, NULL, terminate_later, tm), 0);
}

START_TEST(test_fault_stress_terminate_mid_map_async_gives_every_index_one_result)
{
	size_t n = stress_n();
	int fds = count_fds();
	struct tally t = {0};
	clock_gettime(CLOCK_MONOTONIC, &t.t0);
	struct mproc_pool *p = open_stress_pool(n);
	struct outside out;
	outside_start(&out);

	struct mproc_input in;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_map_async(p, t_stress, &in, 8, NULL, &a), 0);
	struct terminator tm;
	terminator_start(&tm, p, n);
	const struct mproc_results *res;
	int rc = mproc_async_get(a, -1, &res);
	pthread_join(tm.th, NULL);
	outside_end(&out);
	ck_assert_int_eq(tm.rc, 0);
	ck_assert_int_eq(rc, MPROC_ERAISED);
	ck_assert_uint_eq(mproc_results_count(res), n);

	unsigned char *seen = calloc(n, 1);
	for (size_t i = 0; i < n; i++) {
		struct mproc_result r = item(res, i);
		ck_assert_uint_eq(r.index, i);
		tally_add(&t, seen, &r, true);
	}
	ck_assert_uint_eq(mproc_results_failed(res), n - t.by_status[MPROC_OK]);
	mproc_async_free(a);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);

	tally_print("map_async terminated", &t, &out, &st);
	fprintf(stderr, "stress map_async terminated: at %llu of %zu tasks done\n",
	        (unsigned long long)tm.done, n);
	check_tally(&t, &out);
	/* Terminated half way: some ran, the rest was cancelled. */
	ck_assert_uint_ge(t.got - t.by_status[MPROC_CANCELLED], tm.done);
	ck_assert_uint_gt(t.by_status[MPROC_CANCELLED], 0);
	free(seen);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_fault_stress_terminate_mid_imap_hands_out_each_pulled_index_once)
{
	size_t n = stress_n();
	int fds = count_fds();
	struct tally t = {0};
	clock_gettime(CLOCK_MONOTONIC, &t.t0);
	struct mproc_pool *p = open_stress_pool(n);
	struct outside out;
	outside_start(&out);

	struct mproc_input in;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap(p, t_stress, &in, 8, &it), 0);
	struct terminator tm;
	terminator_start(&tm, p, n);
	unsigned char *seen = calloc(n, 1);
	const struct mproc_result *r;
	size_t next = 0, out_of_order = 0;
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		ck_assert_uint_lt(r->index, n);
		out_of_order += r->index != next++;
		tally_add(&t, seen, r, true);
	}
	pthread_join(tm.th, NULL);
	outside_end(&out);
	ck_assert_int_eq(tm.rc, 0);
	mproc_iter_free(it);
	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	ck_assert_int_eq(mproc_pool_join(p), 0);
	mproc_pool_free(p);

	tally_print("imap terminated", &t, &out, &st);
	fprintf(stderr,
	        "stress imap terminated: at %llu of %zu tasks done, %zu handed "
	        "out, then %s\n",
	        (unsigned long long)tm.done, n, t.got, mproc_strerror(rc));
	/* The items pulled before the terminate, each once, in order; then
	 * the iterator says the pool was terminated. */
	ck_assert_int_eq(rc, MPROC_ECLOSED);
	ck_assert_uint_eq(out_of_order, 0);
	ck_assert_uint_ge(t.got, tm.done);
	ck_assert_uint_lt(t.got, n);
	check_tally(&t, &out);
	free(seen);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault_stress");
	TCase *tc = tcase_create("stress");
	/* Each test alone, so that a hang names its test: the three together
	 * stay inside meson's 900 s for the executable. */
	tcase_set_timeout(tc, 290);
	tcase_add_test(tc, test_fault_stress_every_index_gets_one_explained_result);
	tcase_add_test(tc,
	               test_fault_stress_terminate_mid_map_async_gives_every_index_one_result);
	tcase_add_test(tc,
	               test_fault_stress_terminate_mid_imap_hands_out_each_pulled_index_once);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
