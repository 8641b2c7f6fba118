/*
 * test_journal.c - the pool's journal (pool option `journal`): every final
 * result of map and imap is stored; the same call made again runs only
 * what has no final result and hands out the stored results; a manager
 * SIGKILLed mid-map loses at most its open transaction; a torn write-ahead
 * log, a damaged or foreign file, another call's journal and a journal
 * held by another manager are refused with their codes.
 *
 * Each task appends its index to a log file (O_APPEND, inherited by the
 * workers), so that the test process counts which items ran. The test
 * forks a manager only where a manager must die; it reaps that child, and
 * asserts only in the test process.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mproc.h"
#include "testutil.h"

/* ---- tasks (run in workers) ------------------------------------------ */

static int logfd = -1;  /* set before the pool opens: inherited */
static int64_t add_to;  /* what t_logged adds, set before the pool opens */

static int t_logged(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x;
	if (mproc_value_int(arg, &x) < 0)
		return mproc_raise(ret, "TypeError", "not an int");
	char line[32];
	int n = snprintf(line, sizeof line, "%lld\n", (long long)x);
	if (write(logfd, line, (size_t)n) != n)
		return -EIO;
	if (x % 97 == 13)
		return mproc_raise(ret, "ValueError", "bad input %lld", (long long)x);
	return mproc_write_int(ret, x * x + add_to);
}

static int t_logged_slow(const struct mproc_value *arg, struct mproc_writer *ret)
{
	usleep(200);
	return t_logged(arg, ret);
}

static int t_other(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg;
	return mproc_write_none(ret);
}

static int t_crash_on_3(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t x = 0;
	(void)mproc_value_int(arg, &x);
	char line[32];
	int n = snprintf(line, sizeof line, "%lld\n", (long long)x);
	if (write(logfd, line, (size_t)n) != n)
		return -EIO;
	if (x == 3)
		raise(SIGSEGV);
	return mproc_write_int(ret, x);
}

/* ---- helpers (test process) ------------------------------------------ */

struct paths {
	char dir[64], db[96], wal[100], log[96];
};

static void paths_init(struct paths *p)
{
	snprintf(p->dir, sizeof p->dir, "/tmp/mproc-jtest-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(p->dir));
	snprintf(p->db, sizeof p->db, "%s/j.db", p->dir);
	snprintf(p->wal, sizeof p->wal, "%s/j.db-wal", p->dir);
	snprintf(p->log, sizeof p->log, "%s/run.log", p->dir);
}

static void paths_free(struct paths *p)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void log_open(const struct paths *p)
{
	if (logfd >= 0)
		close(logfd);
	logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
	             0600);
	ck_assert_int_ge(logfd, 0);
}

/* How many times each of n indices ran since the log was opened; lines
 * in total. */
static size_t log_counts(const struct paths *p, unsigned *count, size_t n)
{
	memset(count, 0, n * sizeof *count);
	FILE *f = fopen(p->log, "r");
	ck_assert_ptr_nonnull(f);
	long long x;
	size_t lines = 0;
	while (fscanf(f, "%lld", &x) == 1) {
		ck_assert(x >= 0 && (size_t)x < n);
		count[x]++;
		lines++;
	}
	fclose(f);
	return lines;
}

static size_t log_lines(const struct paths *p)
{
	FILE *f = fopen(p->log, "r");
	size_t lines = 0;
	int c;
	while (f && (c = getc(f)) != EOF)
		lines += c == '\n';
	if (f)
		fclose(f);
	return lines;
}

static struct mproc_pool *open_journaled(const char *db, unsigned n)
{
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = n;
	o.journal = db;
	return open_pool_opts(&o);
}

/* A query's one integer. */
static int64_t sql_int(const char *db, const char *sql)
{
	sqlite3 *h;
	ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* The results of t_logged over range(n), each checked. */
static void check_logged(const struct mproc_results *r, size_t n)
{
	ck_assert_uint_eq(mproc_results_count(r), n);
	for (size_t i = 0; i < n; i++) {
		struct mproc_result it = item(r, i);
		ck_assert_uint_eq(it.index, i);
		if (i % 97 == 13) {
			ck_assert_int_eq(it.status, MPROC_RAISED);
			ck_assert_str_eq(it.error->type, "ValueError");
		} else {
			ck_assert_int_eq(it.status, MPROC_OK);
			ck_assert_int_eq(int_of(it.value), (int64_t)(i * i) + add_to);
		}
		ck_assert_uint_eq(it.attempts, 1);
	}
}

/* ---- the tests -------------------------------------------------------- */

START_TEST(test_journal_map_stores_each_result_and_rerun_runs_none)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	enum { N = 1000 };
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, N, 1), 0);

	struct mproc_pool *p = open_journaled(ps.db, 2);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_logged, &in, 16, &r), MPROC_ERAISED);
	check_logged(r, N);
	mproc_results_free(r);
	finish_pool(p);
	static unsigned count[N];
	ck_assert_uint_eq(log_counts(&ps, count, N), N);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results"), N);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(DISTINCT idx) FROM results"), N);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results WHERE"
	                                " status = 'RAISED' AND error_type ="
	                                " 'ValueError' AND value IS NULL"),
	                 (N + 96 - 13) / 97);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM calls"), 1);

	/* Again: nothing runs, every result is the stored one. */
	log_open(&ps);
	p = open_journaled(ps.db, 2);
	ck_assert_int_eq(mproc_map(p, t_logged, &in, 16, &r), MPROC_ERAISED);
	check_logged(r, N);
	mproc_results_free(r);
	struct mproc_pool_stats st;
	ck_assert_int_eq(mproc_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.tasks_done, 0);
	finish_pool(p);
	ck_assert_uint_eq(log_lines(&ps), 0);
	paths_free(&ps);
}
END_TEST

/* The manager, in a child: a map of n slow tasks over the journal, to
 * be killed part way. It exits 0 if it ever finishes. */
static pid_t fork_manager(const char *db, size_t n)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
		o.processes = 2;
		o.journal = db;
		struct mproc_pool *p;
		if (open_with_start(&p, &o) < 0)
			_exit(3);
		struct mproc_input in;
		struct mproc_results *r;
		mproc_input_range(&in, 0, (int64_t)n, 1);
		int rc = mproc_map(p, t_logged_slow, &in, 8, &r);
		_exit(rc == MPROC_ERAISED ? 0 : 4);
	}
	return pid;
}

static void kill_when_logged(pid_t pid, const struct paths *ps, size_t lines)
{
	int status;
	while (log_lines(ps) < lines && waitpid(pid, &status, WNOHANG) == 0)
		sleep_ms(5);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* Its workers follow it (PR_SET_PDEATHSIG); wait until none writes. */
	size_t before;
	do {
		before = log_lines(ps);
		sleep_ms(50);
	} while (log_lines(ps) != before);
}

START_TEST(test_journal_map_killed_mid_run_resumes_each_index_once)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	enum { N = 20000 };
	pid_t pid = fork_manager(ps.db, N);
	ck_assert_int_gt(pid, 0);
	kill_when_logged(pid, &ps, 6000);
	static unsigned ran1[N], ran2[N];
	size_t lines1 = log_counts(&ps, ran1, N);
	ck_assert_uint_lt(lines1, N);

	/* What survived the kill: committed rows, each an item that ran. */
	int64_t kept = sql_int(ps.db, "SELECT count(*) FROM results");
	ck_assert_int_gt(kept, 0);
	ck_assert_int_le(kept, (int64_t)lines1);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results WHERE"
	                                " idx < 0 OR idx >= 20000"), 0);

	/* The rerun, here: it runs exactly the items without a row. */
	log_open(&ps);
	struct mproc_pool *p = open_journaled(ps.db, 2);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, N, 1), 0);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_logged_slow, &in, 8, &r), MPROC_ERAISED);
	check_logged(r, N);
	mproc_results_free(r);
	finish_pool(p);
	size_t lines2 = log_counts(&ps, ran2, N);
	ck_assert_uint_eq(lines2, (size_t)(N - kept));
	for (size_t i = 0; i < N; i++)
		ck_assert_uint_le(ran2[i], 1);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results"), N);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(DISTINCT idx) FROM results"), N);

	/* A third run runs nothing. */
	log_open(&ps);
	p = open_journaled(ps.db, 2);
	ck_assert_int_eq(mproc_map(p, t_logged_slow, &in, 8, &r), MPROC_ERAISED);
	check_logged(r, N);
	mproc_results_free(r);
	finish_pool(p);
	ck_assert_uint_eq(log_lines(&ps), 0);
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_torn_wal_tail_loses_only_the_torn_transaction)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	enum { N = 20000 };
	pid_t pid = fork_manager(ps.db, N);
	ck_assert_int_gt(pid, 0);
	kill_when_logged(pid, &ps, 6000);
	struct stat sb;
	ck_assert_int_eq(stat(ps.wal, &sb), 0);
	ck_assert_int_gt(sb.st_size, 10000);
	/* Tear the last frame of the write-ahead log, as a power cut in the
	 * middle of a write would. */
	ck_assert_int_eq(truncate(ps.wal, sb.st_size - 1000), 0);
	int64_t kept = sql_int(ps.db, "SELECT count(*) FROM results");

	log_open(&ps);
	struct mproc_pool *p = open_journaled(ps.db, 2);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, N, 1), 0);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_logged_slow, &in, 8, &r), MPROC_ERAISED);
	check_logged(r, N);
	mproc_results_free(r);
	finish_pool(p);
	ck_assert_uint_eq(log_lines(&ps), (size_t)(N - kept));
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results"), N);
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_imap_resumed_hands_out_each_index_once)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	enum { N = 3000 };
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, N, 1), 0);
	for (int ordered = 0; ordered < 2; ordered++) {
		char db[128];
		snprintf(db, sizeof db, "%s/imap%d.db", ps.dir, ordered);
		/* First run: read 1000 results, then the pool goes away. */
		struct mproc_pool *p = open_journaled(db, 2);
		struct mproc_iter *it;
		ck_assert_int_eq(mproc_imap_opts(p, t_logged, &in, 4, ordered,
		                                 NULL, &it), 0);
		const struct mproc_result *res;
		for (int i = 0; i < 1000; i++)
			ck_assert_int_eq(mproc_iter_next(it, -1, &res), 1);
		mproc_iter_free(it);
		ck_assert_int_eq(mproc_pool_terminate(p), 0);
		mproc_pool_free(p);
		int64_t kept = sql_int(db, "SELECT count(*) FROM results");
		ck_assert_int_ge(kept, 1000);

		log_open(&ps);
		p = open_journaled(db, 2);
		ck_assert_int_eq(mproc_imap_opts(p, t_logged, &in, 4, ordered,
		                                 NULL, &it), 0);
		static unsigned seen[N], ran[N];
		memset(seen, 0, sizeof seen);
		size_t got = 0;
		int rc;
		while ((rc = mproc_iter_next(it, -1, &res)) == 1) {
			ck_assert_uint_lt(res->index, N);
			seen[res->index]++;
			if (ordered)
				ck_assert_uint_eq(res->index, got);
			if (res->index % 97 == 13)
				ck_assert_int_eq(res->status, MPROC_RAISED);
			else
				ck_assert_int_eq(int_of(res->value),
				                 (int64_t)(res->index * res->index));
			got++;
		}
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(got, N);
		for (size_t i = 0; i < N; i++)
			ck_assert_uint_eq(seen[i], 1);
		mproc_iter_free(it);
		finish_pool(p);
		ck_assert_uint_eq(log_counts(&ps, ran, N), (size_t)(N - kept));
		ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM results"), N);
	}
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_crash_is_stored_and_not_run_again)
{
	if (test_threads())
		return;
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 8, 1), 0);
	for (int run = 0; run < 2; run++) {
		log_open(&ps);
		struct mproc_pool *p = open_journaled(ps.db, 2);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_map(p, t_crash_on_3, &in, 1, &r),
		                 MPROC_ERAISED);
		struct mproc_result it = item(r, 3);
		ck_assert_int_eq(it.status, MPROC_CRASHED);
		ck_assert_ptr_nonnull(it.error->crash);
		ck_assert_int_eq(it.error->crash->signal, SIGSEGV);
		ck_assert_int_eq(int_of(item(r, 7).value), 7);
		mproc_results_free(r);
		finish_pool(p);
		ck_assert_uint_eq(log_lines(&ps), run == 0 ? 8 : 0);
	}
	ck_assert_int_eq(sql_int(ps.db, "SELECT signal FROM results WHERE"
	                                " status = 'CRASHED' AND idx = 3"),
	                 SIGSEGV);
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_of_another_call_is_refused)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 50, 1), 0);
	struct mproc_pool *p = open_journaled(ps.db, 2);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_logged, &in, 4, &r), MPROC_ERAISED);
	mproc_results_free(r);
	finish_pool(p);

	/* Another function. */
	log_open(&ps);
	p = open_journaled(ps.db, 2);
	ck_assert_int_eq(mproc_map(p, t_other, &in, 4, &r),
	                 MPROC_EJOURNAL_MISMATCH);
	mproc_results_free(r);
	finish_pool(p);
	/* Another length. */
	struct mproc_input in2;
	ck_assert_int_eq(mproc_input_range(&in2, 0, 51, 1), 0);
	p = open_journaled(ps.db, 2);
	ck_assert_int_eq(mproc_map(p, t_logged, &in2, 4, &r),
	                 MPROC_EJOURNAL_MISMATCH);
	mproc_results_free(r);
	finish_pool(p);
	/* The same length, other items: refused at the first stored item. */
	ck_assert_int_eq(mproc_input_range(&in2, 1, 51, 1), 0);
	p = open_journaled(ps.db, 2);
	ck_assert_int_eq(mproc_map(p, t_logged, &in2, 4, &r),
	                 MPROC_EJOURNAL_MISMATCH);
	mproc_results_free(r);
	finish_pool(p);
	ck_assert_uint_eq(log_lines(&ps), 0);
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results"), 50);
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_damaged_or_foreign_file_is_refused)
{
	struct paths ps;
	paths_init(&ps);
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 1;
	o.journal = ps.db;
	struct mproc_pool *p = NULL;
	int fds = count_fds();

	/* Not a database. */
	FILE *f = fopen(ps.db, "w");
	for (int i = 0; i < 3000; i++)
		fputs("not a journal at all\n", f);
	fclose(f);
	ck_assert_int_eq(open_with_start(&p, &o), MPROC_EJOURNAL);
	ck_assert_ptr_null(p);

	/* A database, not ours. */
	unlink(ps.db);
	sqlite3 *h;
	ck_assert_int_eq(sqlite3_open(ps.db, &h), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(h, "CREATE TABLE t(x); INSERT INTO t"
	                                 " VALUES(1)", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(h);
	ck_assert_int_eq(open_with_start(&p, &o), MPROC_EJOURNAL);

	/* Ours, cut short. */
	unlink(ps.db);
	log_open(&ps);
	p = open_journaled(ps.db, 2);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 3000, 1), 0);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_logged, &in, 4, &r), MPROC_ERAISED);
	mproc_results_free(r);
	finish_pool(p);
	struct stat sb;
	ck_assert_int_eq(stat(ps.db, &sb), 0);
	ck_assert_int_eq(truncate(ps.db, sb.st_size / 2), 0);
	p = NULL;
	int rc = open_with_start(&p, &o);
	if (rc == 0) {
		/* The cut was past the pages the open reads: the call finds it. */
		rc = mproc_map(p, t_logged, &in, 4, &r);
		mproc_results_free(r);
		finish_pool(p);
	}
	ck_assert_int_eq(rc, MPROC_EJOURNAL);

	/* Bad options. */
	o.journal = "";
	ck_assert_int_eq(open_with_start(&p, &o), -EINVAL);
	o.journal = ps.db;
	o.journal_flags = 0x80;
	ck_assert_int_eq(open_with_start(&p, &o), -EINVAL);
	ck_assert_int_eq(count_fds(), fds + 1); /* + the log */
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_held_by_another_manager_is_refused)
{
	struct paths ps;
	paths_init(&ps);
	int up[2], down[2];
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
		o.processes = 1;
		o.journal = ps.db;
		struct mproc_pool *p;
		char c = open_with_start(&p, &o) == 0 ? 'y' : 'n';
		if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) < 0)
			_exit(2);
		mproc_pool_free(p);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	char c = 0;
	ck_assert_int_eq(read(up[0], &c, 1), 1);
	ck_assert_int_eq(c, 'y');
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 1;
	o.journal = ps.db;
	struct mproc_pool *p = NULL;
	ck_assert_int_eq(open_with_start(&p, &o), MPROC_EJOURNAL_LOCKED);
	ck_assert_ptr_null(p);
	close(down[1]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(up[0]);
	/* Its manager gone, the journal opens. */
	p = open_pool_opts(&o);
	finish_pool(p);
	ck_assert_str_eq(mproc_err_name(MPROC_EJOURNAL_LOCKED),
	                 "MPROC_EJOURNAL_LOCKED");
	paths_free(&ps);
}
END_TEST

START_TEST(test_journal_sync_and_generator_input)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	static size_t limit = 200;
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_index_below, &limit), 0);
	for (int run = 0; run < 2; run++) {
		log_open(&ps);
		struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
		o.processes = 2;
		o.journal = ps.db;
		o.journal_flags = MPROC_JOURNAL_SYNC;
		struct mproc_pool *p = open_pool_opts(&o);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_map(p, t_logged, &in, 3, &r), MPROC_ERAISED);
		check_logged(r, 200);
		mproc_results_free(r);
		finish_pool(p);
		ck_assert_uint_eq(log_lines(&ps), run == 0 ? 200 : 0);
	}
	paths_free(&ps);
}
END_TEST

static int t_add_logged(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const struct mproc_value *a, *b;
	int64_t x, y;
	if (mproc_value_item(arg, 0, &a) < 0 || mproc_value_item(arg, 1, &b) < 0 ||
	    mproc_value_int(a, &x) < 0 || mproc_value_int(b, &y) < 0)
		return mproc_raise(ret, "TypeError", "expected (int, int)");
	if (write(logfd, "x\n", 2) != 2)
		return -EIO;
	return mproc_write_int(ret, x + y);
}

static int gen_pairs(void *cookie, size_t index, struct mproc_writer *w)
{
	(void)cookie;
	if (index >= 300)
		return 0;
	if (mproc_write_tuple_begin(w) < 0 || mproc_write_int(w, (int64_t)index) < 0 ||
	    mproc_write_int(w, 1000) < 0 || mproc_write_tuple_end(w) < 0)
		return -1;
	return 1;
}

START_TEST(test_journal_starmap_resumes_and_apply_is_not_journaled)
{
	struct paths ps;
	paths_init(&ps);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_pairs, NULL), 0);
	for (int run = 0; run < 2; run++) {
		log_open(&ps);
		struct mproc_pool *p = open_journaled(ps.db, 2);
		struct mproc_results *r;
		ck_assert_int_eq(mproc_starmap(p, t_add_logged, &in, 7, &r), 0);
		ck_assert_uint_eq(mproc_results_count(r), 300);
		for (size_t i = 0; i < 300; i++)
			ck_assert_int_eq(int_of(mproc_results_value(r, i)),
			                 (int64_t)i + 1000);
		mproc_results_free(r);
		size_t n;
		const void *arg = pickle_int(5, &n);
		ck_assert_int_eq(mproc_apply(p, t_logged, arg, n, &r), 0);
		ck_assert_int_eq(int_of(mproc_results_value(r, 0)), 25);
		mproc_results_free(r);
		finish_pool(p);
		/* The apply runs each time; the starmap once. */
		ck_assert_uint_eq(log_lines(&ps), run == 0 ? 301 : 1);
	}
	ck_assert_int_eq(sql_int(ps.db, "SELECT count(*) FROM results"), 300);
	ck_assert_int_eq(sql_int(ps.db, "SELECT star FROM calls"), 1);
	/* The same pairs as a plain map: another call. */
	log_open(&ps);
	struct mproc_pool *p = open_journaled(ps.db, 2);
	struct mproc_results *r;
	ck_assert_int_eq(mproc_map(p, t_add_logged, &in, 7, &r),
	                 MPROC_EJOURNAL_MISMATCH);
	mproc_results_free(r);
	finish_pool(p);
	ck_assert_uint_eq(log_lines(&ps), 0);
	paths_free(&ps);
}
END_TEST

/* ---- progress ---------------------------------------------------------- */

struct seen_progress {
	int calls, finals;
	struct mproc_progress last;
	bool monotonic;
};

static void on_progress(void *cookie, const struct mproc_progress *p)
{
	struct seen_progress *s = cookie;
	if (s->calls && p->done < s->last.done)
		s->monotonic = false;
	s->calls++;
	s->finals += p->final;
	s->last = *p;
}

START_TEST(test_journal_progress_counts_done_failed_and_restored)
{
	struct paths ps;
	paths_init(&ps);
	log_open(&ps);
	enum { N = 2000 };
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, N, 1), 0);
	for (int run = 0; run < 2; run++) {
		struct mproc_pool *p = open_journaled(ps.db, 2);
		struct seen_progress seen = {.monotonic = true};
		struct mproc_call_opts co = {.progress = on_progress,
		                             .progress_cookie = &seen,
		                             .progress_interval = 1e-6};
		struct mproc_async *a;
		ck_assert_int_eq(mproc_map_async_opts(p, t_logged_slow, &in, 8,
		                                      NULL, &co, &a), 0);
		const struct mproc_results *r;
		ck_assert_int_eq(mproc_async_get(a, -1, &r), MPROC_ERAISED);
		check_logged(r, N);
		mproc_async_free(a);
		finish_pool(p);
		ck_assert_int_ge(seen.calls, run == 0 ? 2 : 1);
		ck_assert_int_eq(seen.finals, 1);
		ck_assert(seen.monotonic);
		ck_assert(seen.last.final);
		ck_assert_uint_eq(seen.last.done, N);
		ck_assert_uint_eq(seen.last.total, N);
		ck_assert_uint_eq(seen.last.failed, (N + 96 - 13) / 97);
		ck_assert_uint_eq(seen.last.restored, run == 0 ? 0 : N);
		ck_assert(seen.last.eta == 0);
		if (run == 0)
			ck_assert(seen.last.rate > 0);
	}
	/* A bad interval. */
	struct mproc_pool *p = open_pool(1);
	struct mproc_call_opts co = {.progress = on_progress,
	                             .progress_interval = -1};
	struct mproc_async *a = NULL;
	ck_assert_int_eq(mproc_map_async_opts(p, t_other, &in, 8, NULL, &co, &a),
	                 -EINVAL);
	ck_assert_ptr_null(a);
	finish_pool(p);
	paths_free(&ps);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_journal_map_stores_each_result_and_rerun_runs_none);
	tcase_add_test(tc, test_journal_map_killed_mid_run_resumes_each_index_once);
	tcase_add_test(tc, test_journal_torn_wal_tail_loses_only_the_torn_transaction);
	tcase_add_test(tc, test_journal_imap_resumed_hands_out_each_index_once);
	tcase_add_test(tc, test_journal_crash_is_stored_and_not_run_again);
	tcase_add_test(tc, test_journal_of_another_call_is_refused);
	tcase_add_test(tc, test_journal_damaged_or_foreign_file_is_refused);
	tcase_add_test(tc, test_journal_held_by_another_manager_is_refused);
	tcase_add_test(tc, test_journal_sync_and_generator_input);
	tcase_add_test(tc, test_journal_progress_counts_done_failed_and_restored);
	tcase_add_test(tc, test_journal_starmap_resumes_and_apply_is_not_journaled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(journal_suite());
}
