/*
 * test_shared.c - Value and Array: what CPython's tests check for
 * multiprocessing.Value/Array (every type code, the value seen by other
 * processes, get_lock() guarding a read-modify-write, lock=False), ported
 * to mproc, and the errors ctypes leaves silent (out of range).
 */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "testutil.h"

static struct mproc_shared *V, *A;

static struct mproc_process *start(mproc_task_fn fn, int64_t x)
{
	struct mproc_process *p = NULL;
	size_t len;
	const void *arg = pickle_int(x, &len);
	ck_assert_int_eq(mproc_process_start(&p, fn, arg, len, NULL), 0);
	return p;
}

static void join_ok(struct mproc_process *p)
{
	ck_assert_int_eq(mproc_process_join(p, -1), 0);
	const struct mproc_result *r;
	if (mproc_process_result(p, &r) != 0)
		ck_abort_msg("child: %s: %s", r->error->type, r->error->msg);
	mproc_process_free(p);
}

START_TEST(test_shared_every_type_code_holds_its_values)
{
	static const char codes[] = "cbBhHiIlLqQfd";
	for (const char *c = codes; *c; c++) {
		struct mproc_shared *s;
		ck_assert_int_eq(mproc_shared_value(&s, *c, true), 0);
		ck_assert_int_eq(mproc_shared_typecode(s), *c);
		ck_assert_uint_eq(mproc_shared_len(s), 1);
		double d = -1;
		ck_assert_int_eq(mproc_shared_get_float(s, 0, &d), 0);
		ck_assert(d == 0); /* zeroed */
		ck_assert_int_eq(mproc_shared_set_int(s, 0, 100), 0);
		ck_assert_int_eq(mproc_shared_get_float(s, 0, &d), 0);
		ck_assert(d == 100);
		int64_t x = 0;
		if (*c == 'f' || *c == 'd') {
			ck_assert_int_eq(mproc_shared_get_int(s, 0, &x), MPROC_ETYPE);
			ck_assert_int_eq(mproc_shared_set_float(s, 0, 2.5), 0);
			ck_assert_int_eq(mproc_shared_get_float(s, 0, &d), 0);
			ck_assert(d == 2.5);
		} else {
			ck_assert_int_eq(mproc_shared_get_int(s, 0, &x), 0);
			ck_assert_int_eq(x, 100);
			ck_assert_int_eq(mproc_shared_set_float(s, 0, 2.5), MPROC_ETYPE);
		}
		mproc_shared_free(s);
	}
}
END_TEST

START_TEST(test_shared_out_of_range_and_bad_arguments)
{
	struct mproc_shared *s = (void *)1;
	ck_assert_int_eq(mproc_shared_value(&s, 'u', true), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(mproc_shared_value(&s, 'x', true), -EINVAL);
	ck_assert_int_eq(mproc_shared_array(&s, 'i', 0, true), -EINVAL);
	ck_assert_int_eq(mproc_shared_value(NULL, 'i', true), -EINVAL);
	ck_assert_int_eq(mproc_shared_value(&s, 'b', false), 0);
	ck_assert_ptr_null(mproc_shared_get_lock(s));
	ck_assert_int_eq(mproc_shared_set_int(s, 0, 127), 0);
	ck_assert_int_eq(mproc_shared_set_int(s, 0, 128), -ERANGE);
	ck_assert_int_eq(mproc_shared_set_int(s, 0, -129), -ERANGE);
	int64_t x;
	ck_assert_int_eq(mproc_shared_get_int(s, 0, &x), 0);
	ck_assert_int_eq(x, 127);
	ck_assert_int_eq(mproc_shared_get_int(s, 1, &x), MPROC_EINDEX);
	ck_assert_int_eq(mproc_shared_set_int(s, 1, 0), MPROC_EINDEX);
	ck_assert_int_eq(mproc_shared_get_int(NULL, 0, &x), -EINVAL);
	ck_assert_int_eq(mproc_shared_get_int(s, 0, NULL), -EINVAL);
	mproc_shared_free(s);
	ck_assert_int_eq(mproc_shared_value(&s, 'Q', true), 0);
	((unsigned long long *)mproc_shared_ptr(s))[0] = ~0ull;
	ck_assert_int_eq(mproc_shared_get_int(s, 0, &x), -ERANGE);
	ck_assert_int_eq(mproc_shared_set_int(s, 0, -1), -ERANGE);
	mproc_shared_free(s);
	mproc_shared_free(NULL);
}
END_TEST

/* v.value += 1, 1000 times, each under get_lock(). */
static int t_add(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	struct mproc_lock *l = mproc_shared_get_lock(V);
	for (int i = 0; i < 1000; i++) {
		int64_t x;
		int rc = mproc_lock_acquire(l, -1);
		if (rc == 0)
			rc = mproc_shared_get_int(V, 0, &x); /* the RLock again */
		if (rc == 0)
			rc = mproc_shared_set_int(V, 0, x + 1);
		mproc_lock_release(l);
		if (rc < 0)
			return rc;
	}
	return 0;
}

START_TEST(test_shared_value_get_lock_guards_read_modify_write)
{
	ck_assert_int_eq(mproc_shared_value(&V, 'i', true), 0);
	ck_assert_ptr_nonnull(mproc_shared_get_lock(V));
	struct mproc_process *p[4];
	for (int i = 0; i < 4; i++)
		p[i] = start(t_add, 0);
	for (int i = 0; i < 4; i++)
		join_ok(p[i]);
	int64_t x;
	ck_assert_int_eq(mproc_shared_get_int(V, 0, &x), 0);
	ck_assert_int_eq(x, 4000);
	mproc_shared_free(V);
	ck_assert(no_children());
}
END_TEST

/* Squares every element of A in place (Python's docs example). */
static int t_square_all(const struct mproc_value *arg, struct mproc_writer *ret)
{
	(void)arg, (void)ret;
	for (size_t i = 0; i < mproc_shared_len(A); i++) {
		double d;
		int rc = mproc_shared_get_float(A, i, &d);
		if (rc == 0)
			rc = mproc_shared_set_float(A, i, d * d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

START_TEST(test_shared_array_changes_are_seen_by_the_parent)
{
	ck_assert_int_eq(mproc_shared_array(&A, 'd', 10, true), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(mproc_shared_set_float(A, (size_t)i, i * 0.5), 0);
	join_ok(start(t_square_all, 0));
	const double *d = mproc_shared_ptr(A);
	for (int i = 0; i < 10; i++)
		ck_assert(d[i] == (i * 0.5) * (i * 0.5));
	mproc_shared_free(A);
}
END_TEST

/* ---- repr --------------------------------------------------------------- */

static const char *repr_of(struct mproc_writer *w)
{
	static struct mproc_decoder *dec;
	static char buf[512];
	const void *p;
	size_t len;
	if (!dec)
		ck_assert_int_eq(mproc_decoder_new(&dec, NULL), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &len), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(dec, p, len, &v), 0);
	ck_assert_int_eq(mproc_value_repr(v, buf, sizeof buf, NULL), 0);
	mproc_writer_reset(w);
	return buf;
}

static const char *float_repr(struct mproc_writer *w, double d)
{
	mproc_write_float(w, d);
	return repr_of(w);
}

START_TEST(test_repr_matches_python)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	mproc_write_list_begin(w);
	mproc_write_int(w, 42);
	mproc_write_none(w);
	mproc_write_cstr(w, "hello");
	mproc_write_list_end(w);
	ck_assert_str_eq(repr_of(w), "[42, None, 'hello']");
	mproc_write_tuple_begin(w);
	mproc_write_bool(w, true);
	mproc_write_tuple_end(w);
	ck_assert_str_eq(repr_of(w), "(True,)");
	mproc_write_tuple_begin(w);
	mproc_write_tuple_end(w);
	ck_assert_str_eq(repr_of(w), "()");
	mproc_write_dict_begin(w);
	mproc_write_cstr(w, "a");
	mproc_write_float(w, 1.5);
	mproc_write_int(w, -3);
	mproc_write_list_begin(w);
	mproc_write_list_end(w);
	mproc_write_dict_end(w);
	ck_assert_str_eq(repr_of(w), "{'a': 1.5, -3: []}");
	mproc_write_set_begin(w);
	mproc_write_set_end(w);
	ck_assert_str_eq(repr_of(w), "set()");
	mproc_write_set_begin(w);
	mproc_write_int(w, 1);
	mproc_write_set_end(w);
	ck_assert_str_eq(repr_of(w), "{1}");
	mproc_write_frozenset_begin(w);
	mproc_write_frozenset_end(w);
	ck_assert_str_eq(repr_of(w), "frozenset()");
	mproc_write_frozenset_begin(w);
	mproc_write_int(w, 2);
	mproc_write_frozenset_end(w);
	ck_assert_str_eq(repr_of(w), "frozenset({2})");
	mproc_write_cstr(w, "it's");
	ck_assert_str_eq(repr_of(w), "\"it's\"");
	mproc_write_cstr(w, "'\"\\\n\t\r\x01\x7f");
	ck_assert_str_eq(repr_of(w), "'\\'\"\\\\\\n\\t\\r\\x01\\x7f'");
	mproc_write_cstr(w, "caf\xc3\xa9 \xc2\x85");
	ck_assert_str_eq(repr_of(w), "'caf\xc3\xa9 \\x85'");
	mproc_write_bytes(w, "a'\x00\xff", 4);
	ck_assert_str_eq(repr_of(w), "b\"a'\\x00\\xff\"");
	ck_assert_str_eq(float_repr(w, 0.1), "0.1");
	ck_assert_str_eq(float_repr(w, 1.0), "1.0");
	ck_assert_str_eq(float_repr(w, -0.0), "-0.0");
	ck_assert_str_eq(float_repr(w, 1e16), "1e+16");
	ck_assert_str_eq(float_repr(w, 1e15), "1000000000000000.0");
	ck_assert_str_eq(float_repr(w, 123456.789), "123456.789");
	ck_assert_str_eq(float_repr(w, 0.0001), "0.0001");
	ck_assert_str_eq(float_repr(w, 0.00001), "1e-05");
	ck_assert_str_eq(float_repr(w, 1.5e-300), "1.5e-300");
	ck_assert_str_eq(float_repr(w, 1.0 / 3), "0.3333333333333333");
	ck_assert_str_eq(float_repr(w, DBL_MAX), "1.7976931348623157e+308");
	ck_assert_str_eq(float_repr(w, 1.0 / 0.0), "inf");
	ck_assert_str_eq(float_repr(w, -1.0 / 0.0), "-inf");
	ck_assert_str_eq(float_repr(w, 0.0 / 0.0), "nan");
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_repr_cuts_like_snprintf)
{
	struct mproc_writer *w;
	struct mproc_decoder *dec;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc_decoder_new(&dec, NULL), 0);
	mproc_write_cstr(w, "hello");
	const void *p;
	size_t len, need = 0;
	ck_assert_int_eq(mproc_writer_finish(w, &p, &len), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(dec, p, len, &v), 0);
	char buf[4];
	ck_assert_int_eq(mproc_value_repr(v, buf, sizeof buf, &need), -ENOBUFS);
	ck_assert_str_eq(buf, "'he");
	ck_assert_uint_eq(need, 7);
	ck_assert_int_eq(mproc_value_repr(v, NULL, 0, &need), -ENOBUFS);
	ck_assert_uint_eq(need, 7);
	ck_assert_int_eq(mproc_value_repr(NULL, buf, sizeof buf, &need), -EINVAL);
	ck_assert_int_eq(mproc_value_repr(v, NULL, 4, &need), -EINVAL);
	mproc_decoder_free(dec);
	mproc_writer_free(w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shared");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_shared_every_type_code_holds_its_values);
	tcase_add_test(tc, test_shared_out_of_range_and_bad_arguments);
	tcase_add_test(tc, test_shared_value_get_lock_guards_read_modify_write);
	tcase_add_test(tc, test_shared_array_changes_are_seen_by_the_parent);
	tcase_add_test(tc, test_repr_matches_python);
	tcase_add_test(tc, test_repr_cuts_like_snprintf);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
