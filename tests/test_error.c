/*
 * test_error.c - the error table: every code has a name and a description.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "testutil.h"

START_TEST(test_error_every_own_code_has_name_and_text)
{
	static const int codes[] = {
#define XX(name, value, text) MPROC_##name,
		MPROC_ERRNO_MAP(XX)
#undef XX
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		ck_assert_int_lt(codes[i], -4000);
		ck_assert_str_ne(mproc_strerror(codes[i]), "unknown error");
		ck_assert_ptr_nonnull(strstr(mproc_err_name(codes[i]), "MPROC_E"));
	}
}
END_TEST

START_TEST(test_error_errno_codes_use_libc_text)
{
	ck_assert_str_eq(mproc_err_name(-ETIMEDOUT), "ETIMEDOUT");
	ck_assert_str_eq(mproc_strerror(-EINVAL), strerror(EINVAL));
	ck_assert_str_eq(mproc_strerror(0), "success");
}
END_TEST

START_TEST(test_error_unknown_code_is_named_unknown)
{
	ck_assert_str_eq(mproc_strerror(-99999), "unknown error");
	ck_assert_str_eq(mproc_err_name(-99999), "UNKNOWN");
	ck_assert_str_eq(mproc_err_name(12345), "UNKNOWN");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("error");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_error_every_own_code_has_name_and_text);
	tcase_add_test(tc, test_error_errno_codes_use_libc_text);
	tcase_add_test(tc, test_error_unknown_code_is_named_unknown);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
