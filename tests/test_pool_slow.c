/*
 * test_pool_slow.c - bounded memory of imap over long and endless inputs.
 * Slow (tens of seconds), so it runs outside the default suite:
 *     meson configure build -Dslow_tests=true && meson test -C build --suite slow
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mproc.h"
#include "testutil.h"

/* Peak resident set of this process, in KiB (VmHWM). */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

START_TEST(test_pool_imap_hundred_million_inputs_stay_under_64_mib)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, 100000000, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap(p, t_identity, &in, 1000, &it), 0);
	int64_t expect = 0, v;
	while (mproc_iter_next(it, -1, &r) == 1) {
		if (expect % 1000003 == 0) {
			ck_assert_int_eq(mproc_value_int(r->value, &v), 0);
			ck_assert_int_eq(v, expect);
		}
		expect++;
	}
	ck_assert_int_eq(expect, 100000000);
	mproc_iter_free(it);
	finish_pool(p);
	long kib = peak_rss_kib();
	ck_assert_int_gt(kib, 0);
	ck_assert_int_lt(kib, 64 * 1024);
}
END_TEST

START_TEST(test_pool_imap_slow_consumer_stays_under_64_mib)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 0, INT64_MAX, 1);
	struct mproc_iter *it;
	const struct mproc_result *r;
	ck_assert_int_eq(mproc_imap_unordered(p, t_identity, &in, 1, &it), 0);
	struct timespec ms = {0, 1000000};
	for (int i = 0; i < 3000; i++) {
		ck_assert_int_eq(mproc_iter_next(it, -1, &r), 1);
		nanosleep(&ms, NULL);
	}
	mproc_iter_free(it);
	finish_pool(p);
	long kib = peak_rss_kib();
	ck_assert_int_gt(kib, 0);
	ck_assert_int_lt(kib, 64 * 1024);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool_slow");
	TCase *tc = tcase_create("memory");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_pool_imap_hundred_million_inputs_stay_under_64_mib);
	tcase_add_test(tc, test_pool_imap_slow_consumer_stays_under_64_mib);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
