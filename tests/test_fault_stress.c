/*
 * test_fault_stress.c - many tasks, many faults at once: 1% of the tasks
 * crash in a way taken from the fault table, 0.1% hang past the timeout,
 * and a thread kills random workers from outside every few milliseconds.
 * Every index must end in exactly one final result with a status its task
 * explains, and nothing may be left behind.
 *
 * MPROC_STRESS_N sets the task count (default 100000); CI runs a smaller
 * count under AddressSanitizer and valgrind (with MPROC_STRESS_TIMEOUT and
 * MPROC_STRESS_KILL_MS stretched to valgrind's pace).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

enum kind { K_OK, K_SEGV, K_ABORT, K_EXIT, K__EXIT, K_BUS_KILL, K_HANG };

/* The fate of input i: fixed, so the test knows what to expect. */
static enum kind kind_of(uint64_t i)
{
	uint64_t h = i * 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	unsigned r = (unsigned)(h % 1000);
	if (r < 10)
		return (enum kind)(K_SEGV + r % 5);
	if (r == 10)
		return K_HANG;
	return K_OK;
}

static volatile uintptr_t bad = 0x8;

static int t_stress(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t i = 0;
	mproc_value_int(arg, &i);
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
	case K_OK:
		break;
	}
	return mproc_write_int(ret, i * 3);
}

/* ---- the killer --------------------------------------------------------- */

static volatile int killer_stop;
static unsigned long kills;

/* Children of the process whose task path is given; through the fork
 * server, whose children are the workers (it is never killed itself). */
static int list_workers(const char *path, pid_t *pids, int max)
{
	FILE *f = fopen(path, "r");
	int n = 0, pid;
	while (f && n < max && fscanf(f, "%d", &pid) == 1) {
		char comm[64], cpath[64];
		snprintf(comm, sizeof comm, "/proc/%d/comm", pid);
		FILE *c = fopen(comm, "r");
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

static void *killer(void *arg)
{
	pid_t me = *(pid_t *)arg;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)me, (int)me);
	unsigned seed = 12345;
	/* MPROC_STRESS_KILL_MS: the mean pause between kills (default 10 ms;
	 * longer under valgrind, where a worker takes far longer to start). */
	const char *env = getenv("MPROC_STRESS_KILL_MS");
	long mean_ns = (env ? strtol(env, NULL, 10) : 10) * 1000000L;
	if (mean_ns <= 0)
		mean_ns = 10000000L;
	while (!killer_stop) {
		long ns = mean_ns / 2 + (long)(rand_r(&seed) % (unsigned)mean_ns);
		struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
		nanosleep(&ts, NULL);
		pid_t pids[64];
		int n = list_workers(path, pids, 64);
		if (n && kill(pids[rand_r(&seed) % n], SIGKILL) == 0)
			kills++;
	}
	return NULL;
}

/* May result r be the final result of input i? */
static bool explained(const struct mproc_result *r, uint64_t i)
{
	const struct mproc_crash *c = r->error ? r->error->crash : NULL;
	bool killed = r->status == MPROC_CRASHED && c && c->signal == SIGKILL;
	int64_t v;
	switch (kind_of(i)) {
	case K_OK:
		return (r->status == MPROC_OK &&
		        mproc_value_int(r->value, &v) == 0 && v == (int64_t)i * 3) ||
		       killed;
	case K_SEGV:
		return (r->status == MPROC_CRASHED && c->signal == SIGSEGV) || killed;
	case K_ABORT:
		return (r->status == MPROC_CRASHED && c->signal == SIGABRT) || killed;
	case K_EXIT:
		return (r->status == MPROC_CRASHED && c->exit_status == 7) || killed;
	case K__EXIT:
		return (r->status == MPROC_CRASHED && c->exit_status == 9) || killed;
	case K_BUS_KILL:
		return killed;
	case K_HANG:
		return r->status == MPROC_TIMEOUT || killed;
	}
	return false;
}

START_TEST(test_fault_stress_every_index_gets_one_explained_result)
{
	const char *env = getenv("MPROC_STRESS_N");
	size_t n = env ? strtoul(env, NULL, 10) : 100000;
	int fds = count_fds();
	/* MPROC_STRESS_TIMEOUT: seconds (default 0.05; longer under valgrind,
	 * where even a crash takes that long). */
	const char *tenv = getenv("MPROC_STRESS_TIMEOUT");
	double timeout = tenv ? strtod(tenv, NULL) : 0.05;
	struct mproc_pool_opts o = {.processes = 2, .task_timeout = timeout,
	                            .kill_grace = 0.02, .retries = 1};
	struct mproc_pool *p = open_pool_opts(&o);

	pid_t me = getpid();
	pthread_t th;
	killer_stop = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, killer, &me), 0);

	struct mproc_input in;
	mproc_input_range(&in, 0, (int64_t)n, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap_unordered(p, t_stress, &in, 8, &it), 0);
	unsigned char *seen = calloc(n, 1);
	size_t got = 0, unexplained = 0, dup = 0, by_status[8] = {0};
	int rc;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		ck_assert_uint_lt(r->index, n);
		dup += seen[r->index]++ != 0;
		unexplained += !explained(r, r->index);
		by_status[r->status & 7]++;
		got++;
	}
	killer_stop = 1;
	pthread_join(th, NULL);
	ck_assert_int_eq(rc, 0);
	mproc_iter_free(it);

	struct mproc_pool_stats st;
	mproc_pool_stats(p, &st);
	finish_pool(p);

	fprintf(stderr,
	        "stress: %zu tasks, %lu kills from outside; ok %zu crashed %zu "
	        "timeout %zu; retried %llu, workers replaced %llu, "
	        "replacement %.2f ms mean, %.2f ms max\n",
	        n, kills, by_status[MPROC_OK], by_status[MPROC_CRASHED],
	        by_status[MPROC_TIMEOUT], (unsigned long long)st.retried,
	        (unsigned long long)st.workers_replaced, st.replace_mean * 1e3,
	        st.replace_max * 1e3);
	ck_assert_uint_eq(got, n);
	ck_assert_uint_eq(dup, 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(seen[i], 1);
	ck_assert_uint_eq(unexplained, 0);
	free(seen);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault_stress");
	TCase *tc = tcase_create("stress");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_fault_stress_every_index_gets_one_explained_result);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
