/*
 * testutil.h - what the pool suites share: the start method they run under,
 * and the checks that nothing is left behind.
 */
#ifndef MPROC_TESTUTIL_H
#define MPROC_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "mproc.h"

/* The suites run once per start method: MPROC_TEST_START=forkserver picks
 * the fork server (see tests/meson.build). */
static inline int open_with_start(struct mproc_pool **p,
                                  struct mproc_pool_opts *o)
{
	const char *m = getenv("MPROC_TEST_START");
	o->start_method = m && strcmp(m, "forkserver") == 0
	                          ? MPROC_START_FORKSERVER
	                          : MPROC_START_FORK;
	if (m && strcmp(m, "threads") == 0)
		o->backend = MPROC_BACKEND_THREADS;
	return mproc_pool_open(p, o);
}

/* Item i of a call's results, by value; asserts that it is there (only in
 * the test process: every suite that uses it includes check.h first). */
#ifdef ck_assert_int_eq
static inline struct mproc_result item(const struct mproc_results *r, size_t i)
{
	struct mproc_result it = {0};
	ck_assert_int_eq(mproc_results_get(r, i, &it), 0);
	return it;
}
#endif

/* The suite runs against the threads backend (MPROC_TEST_START=threads). */
static inline bool test_threads(void)
{
	const char *m = getenv("MPROC_TEST_START");
	return m && strcmp(m, "threads") == 0;
}

/* Descriptors open in this process. */
static inline int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n - 1; /* the one opendir itself holds */
}

/* No child process is left, not even a zombie. */
static inline bool no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

#endif
