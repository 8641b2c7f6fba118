/*
 * test_process.c - Process: what CPython's tests check for
 * multiprocessing.Process (start, join with and without timeout,
 * is_alive, pid, name, exitcode for a return, an exception, exit() and
 * signals, terminate, kill, close), ported to mproc, and what mproc adds:
 * the return value, the raised error and the crash report after join.
 * Every child is reaped before a test ends; nothing is asserted in one.
 * The suite runs under both start methods (MPROC_TEST_START=forkserver:
 * tests/meson.build); the fork server itself is the one child a test may
 * leave, as it lives as long as the program.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "mproc.h"
#include "testutil.h"

static int t_crash(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	volatile int *bad = (int *)(uintptr_t)16;
	*bad = 1;
	return 0;
}

static int t_exit3(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	_exit(3);
}

static int t_big(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	size_t n = 8u << 20;
	char *b = calloc(1, n);
	if (!b)
		return -ENOMEM;
	b[n - 1] = 'z';
	int rc = mproc_write_bytes(ret, b, n);
	free(b);
	return rc;
}

static int t_bad_return(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_list_begin(ret); /* never closed */
}

static int t_errno(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	return -ENOENT;
}

/* The start method the suite runs under. */
static enum mproc_start_method method(void)
{
	const char *m = getenv("MPROC_TEST_START");
	return m && strcmp(m, "forkserver") == 0 ? MPROC_START_FORKSERVER
	                                         : MPROC_START_FORK;
}

static struct mproc_process_opts opts(void)
{
	return (struct mproc_process_opts){.start_method = method()};
}

/* No child is left but the program's fork server (reaped if it ended:
 * one a Process started in its own child, orphaned to this subreaper). */
static bool only_server_left(void)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
	FILE *f = fopen(path, "r");
	if (!f)
		return no_children();
	int pid;
	bool ok = true;
	while (fscanf(f, "%d", &pid) == 1) {
		char comm[32] = {0}, state = '?';
		snprintf(path, sizeof path, "/proc/%d/stat", pid);
		FILE *g = fopen(path, "r");
		if (g && fscanf(g, "%*d (%31[^)]) %c", comm, &state) == 2 &&
		    strcmp(comm, "mproc-forksrv") == 0) {
			if (state == 'Z')
				waitpid(pid, NULL, 0);
		} else {
			ok = false;
		}
		if (g)
			fclose(g);
	}
	fclose(f);
	return ok;
}
#undef no_children
#define no_children only_server_left

/* Under the fork server: have it started, so that its socket is counted
 * among the descriptors a test begins with. */
static void server_up(void)
{
	struct mproc_process_opts o = opts();
	struct mproc_process *p;
	if (method() != MPROC_START_FORKSERVER)
		return;
	ck_assert_int_eq(mproc_process_start(&p, t_identity, NULL, 0, &o), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	mproc_process_free(p);
}

static struct mproc_process *start(mproc_task_fn fn, int64_t x)
{
	struct mproc_process *p = NULL;
	struct mproc_process_opts o = opts();
	size_t len;
	const void *arg = pickle_int(x, &len);
	ck_assert_int_eq(mproc_process_start(&p, fn, arg, len, &o), 0);
	ck_assert_ptr_nonnull(p);
	return p;
}

START_TEST(test_process_returns_its_value_after_join)
{
	server_up();
	int fds = count_fds();
	struct mproc_process *p = start(t_square, 12);
	ck_assert_int_gt(mproc_process_pid(p), 0);
	ck_assert_int_ne(mproc_process_pid(p), getpid());
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert(!mproc_process_is_alive(p));
	int code = -99;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, 0);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	ck_assert_int_eq(r->status, MPROC_OK);
	ck_assert_int_eq(int_of(r->value), 144);
	ck_assert_ptr_null(r->error);
	/* Joining again answers at once. */
	ck_assert_int_eq(mproc_process_join(p, 0), 0);
	ck_assert_int_eq(mproc_process_close(p), 0);
	ck_assert(no_children());
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_process_none_argument_and_none_result)
{
	struct mproc_process *p;
	struct mproc_process_opts o = opts();
	ck_assert_int_eq(mproc_process_start(&p, t_identity, NULL, 0, &o), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	ck_assert(mproc_value_is_none(r->value));
	mproc_process_free(p);
}
END_TEST

START_TEST(test_process_raise_gives_exitcode_1_and_the_error)
{
	struct mproc_process *p = start(t_fail_on_5, 5);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, 1);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ERAISED);
	ck_assert_int_eq(r->status, MPROC_RAISED);
	ck_assert_str_eq(r->error->type, "ValueError");
	ck_assert_str_eq(r->error->msg, "bad input 5");
	ck_assert_ptr_null(r->error->crash);
	mproc_process_free(p);

	p = start(t_errno, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ERAISED);
	ck_assert_str_eq(r->error->type, "OSError");
	mproc_process_free(p);

	p = start(t_bad_return, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ERAISED);
	ck_assert_str_eq(r->error->type, "ValueError");
	mproc_process_free(p);
}
END_TEST

START_TEST(test_process_crash_gives_negative_signal_and_report)
{
	struct mproc_process *p = start(t_crash, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, -SIGSEGV);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ERAISED);
	ck_assert_int_eq(r->status, MPROC_CRASHED);
	ck_assert_str_eq(r->error->type, "ProcessCrashed");
	ck_assert_ptr_nonnull(strstr(r->error->msg, "SIGSEGV"));
	const struct mproc_crash *c = r->error->crash;
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->signal, SIGSEGV);
	ck_assert_int_eq(c->addr, 16);
	ck_assert_int_eq(c->exit_status, -1);
	ck_assert_ptr_nonnull(c->report);
	ck_assert_ptr_nonnull(strstr(c->report, "#0 "));
	mproc_process_free(p);
}
END_TEST

START_TEST(test_process_exit_status_is_the_exitcode)
{
	struct mproc_process *p = start(t_exit3, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, 3);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ERAISED);
	ck_assert_int_eq(r->status, MPROC_CRASHED);
	ck_assert_int_eq(r->error->crash->exit_status, 3);
	ck_assert_int_eq(r->error->crash->signal, 0);
	ck_assert_ptr_null(r->error->crash->report);
	mproc_process_free(p);
}
END_TEST

START_TEST(test_process_join_timeout_then_terminate)
{
	struct mproc_process *p = start(t_sleep, 60000);
	ck_assert(mproc_process_is_alive(p));
	ck_assert_int_eq(mproc_process_join(p, 0), -ETIMEDOUT);
	ck_assert_int_eq(mproc_process_join(p, 0.05), -ETIMEDOUT);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), MPROC_ENOTREADY);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ENOTREADY);
	ck_assert_int_eq(mproc_process_close(p), MPROC_ERUNNING);
	ck_assert_int_eq(mproc_process_terminate(p), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, -SIGTERM);
	/* Signalling an ended process does nothing. */
	ck_assert_int_eq(mproc_process_kill(p), 0);
	ck_assert_int_eq(mproc_process_close(p), 0);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_process_kill_gives_minus_9)
{
	struct mproc_process *p = start(t_sleep, 60000);
	ck_assert_int_eq(mproc_process_kill(p), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
	ck_assert_int_eq(code, -SIGKILL);
	mproc_process_free(p);
}
END_TEST

START_TEST(test_process_free_kills_and_reaps_a_running_child)
{
	server_up();
	int fds = count_fds();
	for (int i = 0; i < 5; i++)
		mproc_process_free(start(t_sleep, 60000));
	ck_assert(no_children());
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_process_large_result_does_not_block_join)
{
	struct mproc_process *p = start(t_big, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	const void *b;
	size_t n;
	ck_assert_int_eq(mproc_value_bytes(r->value, &b, &n), 0);
	ck_assert_int_eq(n, 8u << 20);
	ck_assert_int_eq(((const char *)b)[n - 1], 'z');
	mproc_process_free(p);
}
END_TEST

START_TEST(test_process_names_default_and_given)
{
	struct mproc_process *a = start(t_identity, 1);
	ck_assert_int_eq(strncmp(mproc_process_name(a), "Process-", 8), 0);
	struct mproc_process_opts o = {.name = "my-worker",
	                               .start_method = method()};
	struct mproc_process *b;
	size_t len;
	const void *arg = pickle_int(60000, &len);
	ck_assert_int_eq(mproc_process_start(&b, t_sleep, arg, len, &o), 0);
	ck_assert_str_eq(mproc_process_name(b), "my-worker");
	/* Its title: /proc/pid/comm holds the command name. */
	char path[64], comm[64] = {0};
	snprintf(path, sizeof path, "/proc/%d/comm", (int)mproc_process_pid(b));
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(fgets(comm, sizeof comm, f));
		fclose(f);
		if (strncmp(comm, "my-worker", 9) == 0)
			break;
		sleep_ms(5);
	}
	ck_assert_int_eq(strncmp(comm, "my-worker", 9), 0);
	ck_assert_int_eq(mproc_process_join(a, -1), 0);
	mproc_process_free(a);
	mproc_process_free(b);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_process_bad_arguments)
{
	struct mproc_process *p = (void *)1;
	ck_assert_int_eq(mproc_process_start(NULL, t_identity, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(mproc_process_start(&p, NULL, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(mproc_process_start(&p, t_identity, NULL, 4, NULL), -EINVAL);
	struct mproc_process_opts o = {.size = 4};
	ck_assert_int_eq(mproc_process_start(&p, t_identity, NULL, 0, &o), -EINVAL);
	ck_assert_ptr_null(p);
	o = (struct mproc_process_opts){.size = sizeof o + 8};
	ck_assert_int_eq(mproc_process_start(&p, t_identity, NULL, 0, &o), -E2BIG);
	o = (struct mproc_process_opts){.start_method = 7};
	ck_assert_int_eq(mproc_process_start(&p, t_identity, NULL, 0, &o), -EINVAL);
	ck_assert_int_eq(mproc_process_join(NULL, 0), -EINVAL);
	ck_assert(!mproc_process_is_alive(NULL));
	ck_assert_int_eq(mproc_process_pid(NULL), -1);
	int code;
	ck_assert_int_eq(mproc_process_exitcode(NULL, &code), -EINVAL);
	ck_assert_int_eq(mproc_process_terminate(NULL), -EINVAL);
	ck_assert_int_eq(mproc_process_close(NULL), -EINVAL);
	mproc_process_free(NULL);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_process_malformed_argument_raises_in_the_child)
{
	struct mproc_process *p;
	struct mproc_process_opts o = opts();
	ck_assert_int_eq(mproc_process_start(&p, t_identity, "junk", 4, &o), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), MPROC_ERAISED);
	ck_assert_str_eq(r->error->type, "UnpicklingError");
	mproc_process_free(p);
}
END_TEST

/* A daemon dies with the program that started it: a child starts a
 * daemon grandchild, returns its pid and exits; this test process, the
 * subreaper of its orphans, reaps the grandchild, killed by SIGKILL. */
static int t_sleep_forever(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (;;)
		pause();
	return 0;
}

static int t_start_daemon_forever(const struct mproc_value *arg,
                                  struct mproc_writer *ret)
{
	struct mproc_process_opts o = {.daemon = true,
	                               .start_method = method()};
	struct mproc_process *p = NULL;
	(void)arg;
	int rc = mproc_process_start(&p, t_sleep_forever, NULL, 0, &o);
	return rc < 0 ? rc : mproc_write_int(ret, mproc_process_pid(p));
}

START_TEST(test_process_daemon_dies_with_its_program)
{
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	struct mproc_process *p = start(t_start_daemon_forever, 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	pid_t pid = (pid_t)int_of(r->value);
	ck_assert_int_gt(pid, 0);
	int st;
	/* Under the fork server the daemon is the server's child: it is
	 * this subreaper's once that server has seen its program end and
	 * exited, a moment after the program. */
	pid_t got;
	for (int i = 0; (got = waitpid(pid, &st, 0)) < 0 && errno == ECHILD &&
	                i < 2000; i++)
		sleep_ms(5);
	ck_assert_int_eq(got, pid);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGKILL);
	mproc_process_free(p);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_process_many_in_parallel)
{
	enum { N = 16 };
	struct mproc_process *p[N];
	for (int i = 0; i < N; i++)
		p[i] = start(t_square, i);
	for (int i = N - 1; i >= 0; i--) {
		ck_assert_int_eq(mproc_process_join(p[i], -1), 0);
		const struct mproc_result *r;
		ck_assert_int_eq(mproc_process_result(p[i], &r), 0);
		ck_assert_int_eq(int_of(r->value), i * i);
		mproc_process_free(p[i]);
	}
	ck_assert(no_children());
}
END_TEST

/* Results on either side of what the shared record holds (about 4 KB),
 * and an argument too large for a message to the fork server (32 KiB). */
static int t_bytes_of_len(const struct mproc_value *arg,
                          struct mproc_writer *ret)
{
	int64_t n;
	if (mproc_value_int(arg, &n) < 0 || n < 0 || n > (1 << 20))
		return -EINVAL;
	char *b = malloc((size_t)n + 1);
	if (!b)
		return -ENOMEM;
	for (int64_t i = 0; i < n; i++)
		b[i] = (char)('a' + i % 26);
	int rc = mproc_write_bytes(ret, b, (size_t)n);
	free(b);
	return rc;
}

static int t_len_of_bytes(const struct mproc_value *arg,
                          struct mproc_writer *ret)
{
	const void *b;
	size_t n;
	if (mproc_value_bytes(arg, &b, &n) < 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (((const char *)b)[i] != (char)('a' + i % 26))
			return mproc_raise(ret, "ValueError", "byte %zu", i);
	return mproc_write_int(ret, (int64_t)n);
}

START_TEST(test_process_results_and_arguments_of_every_size)
{
	static const int64_t sizes[] = {0, 1, 3900, 3990, 4000, 4050, 4096,
	                                5000, 70000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct mproc_process *p = start(t_bytes_of_len, sizes[i]);
		ck_assert_int_eq(mproc_process_join(p, -1), 0);
		const struct mproc_result *r;
		ck_assert_int_eq(mproc_process_result(p, &r), 0);
		const void *b;
		size_t n;
		ck_assert_int_eq(mproc_value_bytes(r->value, &b, &n), 0);
		ck_assert_int_eq(n, (size_t)sizes[i]);
		for (size_t k = 0; k < n; k++)
			ck_assert_int_eq(((const char *)b)[k], 'a' + k % 26);
		mproc_process_free(p);
	}
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	static const size_t argsizes[] = {10, 32000, 40000, 300000};
	for (size_t i = 0; i < sizeof argsizes / sizeof argsizes[0]; i++) {
		char *b = malloc(argsizes[i]);
		ck_assert_ptr_nonnull(b);
		for (size_t k = 0; k < argsizes[i]; k++)
			b[k] = (char)('a' + k % 26);
		mproc_writer_reset(w);
		ck_assert_int_eq(mproc_write_bytes(w, b, argsizes[i]), 0);
		free(b);
		const void *pk;
		size_t len;
		ck_assert_int_eq(mproc_writer_finish(w, &pk, &len), 0);
		struct mproc_process_opts o = opts();
		struct mproc_process *p;
		ck_assert_int_eq(mproc_process_start(&p, t_len_of_bytes, pk, len, &o), 0);
		ck_assert_int_eq(mproc_process_join(p, -1), 0);
		const struct mproc_result *r;
		ck_assert_int_eq(mproc_process_result(p, &r), 0);
		ck_assert_int_eq(int_of(r->value), (int64_t)argsizes[i]);
		mproc_process_free(p);
	}
	mproc_writer_free(w);
	ck_assert(no_children());
}
END_TEST

/* The fork server is a copy of the program as it was when it started
 * (the first forkserver Process): what the program changed since, and
 * locks its threads took since, are not in the children it forks. */
static int later_value;
static pthread_mutex_t later_lock = PTHREAD_MUTEX_INITIALIZER;

static int t_later(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	int locked = pthread_mutex_trylock(&later_lock) == 0;
	return mproc_write_build(ret, "(ii)", later_value, locked);
}

static void *hold_later_lock(void *arg)
{
	int *stop = arg;
	pthread_mutex_lock(&later_lock);
	while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE))
		sleep_ms(5);
	pthread_mutex_unlock(&later_lock);
	return NULL;
}

START_TEST(test_process_forkserver_children_start_from_the_server_copy)
{
	struct mproc_process_opts fs = {.start_method = MPROC_START_FORKSERVER};
	struct mproc_process_opts fk = {.start_method = MPROC_START_FORK};
	struct mproc_process *p;
	/* The first forkserver Process starts the server. */
	ck_assert_int_eq(mproc_process_start(&p, t_later, NULL, 0, &fs), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	mproc_process_free(p);
	later_value = 7;
	int stop = 0;
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, hold_later_lock, &stop), 0);
	while (pthread_mutex_trylock(&later_lock) == 0) {
		pthread_mutex_unlock(&later_lock);
		sleep_ms(1);
	}
	long long v, locked;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_process_start(&p, t_later, NULL, 0, &fs), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	ck_assert_int_eq(mproc_value_parse(r->value, "(LL)", &v, &locked), 0);
	ck_assert_int_eq(v, 0);      /* the server's copy */
	ck_assert_int_eq(locked, 1); /* no thread held it there */
	mproc_process_free(p);
	ck_assert_int_eq(mproc_process_start(&p, t_later, NULL, 0, &fk), 0);
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	ck_assert_int_eq(mproc_process_result(p, &r), 0);
	ck_assert_int_eq(mproc_value_parse(r->value, "(LL)", &v, &locked), 0);
	ck_assert_int_eq(v, 7);      /* a fork of the program now */
	ck_assert_int_eq(locked, 0); /* held by the thread, in its copy */
	mproc_process_free(p);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	later_value = 0;
	ck_assert(no_children());
}
END_TEST

/* Processes started and joined from several threads at once: each
 * thread gets its own children's results (with the fork server, the
 * replies of one server socket never cross). */
static void *start_from_thread(void *arg)
{
	intptr_t base = (intptr_t)arg, bad = 0;
	struct mproc_process_opts o = opts();
	struct mproc_writer *w;
	if (mproc_writer_new(&w, 5) < 0)
		return (void *)(intptr_t)1;
	for (int i = 0; i < 15; i++) {
		const void *pk;
		size_t len;
		struct mproc_process *p;
		const struct mproc_result *r;
		int64_t x = base * 100 + i, y = -1;
		mproc_writer_reset(w);
		if (mproc_write_int(w, x) < 0 ||
		    mproc_writer_finish(w, &pk, &len) < 0 ||
		    mproc_process_start(&p, t_square, pk, len, &o) < 0) {
			bad++;
			continue;
		}
		if (mproc_process_join(p, -1) < 0 ||
		    mproc_process_result(p, &r) < 0 ||
		    mproc_value_int(r->value, &y) < 0 || y != x * x)
			bad++;
		mproc_process_free(p);
	}
	mproc_writer_free(w);
	return (void *)bad;
}

START_TEST(test_process_started_from_several_threads)
{
	enum { T = 4 };
	pthread_t th[T];
	for (intptr_t i = 0; i < T; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, start_from_thread,
		                                (void *)i), 0);
	for (int i = 0; i < T; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		ck_assert_int_eq((intptr_t)bad, 0);
	}
	ck_assert(no_children());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_process_returns_its_value_after_join);
	tcase_add_test(tc, test_process_none_argument_and_none_result);
	tcase_add_test(tc, test_process_raise_gives_exitcode_1_and_the_error);
	tcase_add_test(tc, test_process_crash_gives_negative_signal_and_report);
	tcase_add_test(tc, test_process_exit_status_is_the_exitcode);
	tcase_add_test(tc, test_process_join_timeout_then_terminate);
	tcase_add_test(tc, test_process_kill_gives_minus_9);
	tcase_add_test(tc, test_process_free_kills_and_reaps_a_running_child);
	tcase_add_test(tc, test_process_large_result_does_not_block_join);
	tcase_add_test(tc, test_process_names_default_and_given);
	tcase_add_test(tc, test_process_bad_arguments);
	tcase_add_test(tc, test_process_malformed_argument_raises_in_the_child);
	tcase_add_test(tc, test_process_daemon_dies_with_its_program);
	tcase_add_test(tc, test_process_many_in_parallel);
	tcase_add_test(tc, test_process_results_and_arguments_of_every_size);
	tcase_add_test(tc, test_process_forkserver_children_start_from_the_server_copy);
	tcase_add_test(tc, test_process_started_from_several_threads);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
