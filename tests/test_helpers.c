/*
 * test_helpers.c - the helpers a port would otherwise write by hand:
 * format strings (mproc_write_build, mproc_value_parse), a dict's entries,
 * a str copied to a C string, a decoded value as an input, a generator's
 * length, a call's results as one pickle, and the details behind errors.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "testutil.h"

/* ---- shared fixtures ------------------------------------------------- */

static struct mproc_writer *w, *ref;
static struct mproc_decoder *dec;

static void setup(void)
{
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc_writer_new(&ref, 5), 0);
	ck_assert_int_eq(mproc_decoder_new(&dec, NULL), 0);
}

static void teardown(void)
{
	mproc_writer_free(w);
	mproc_writer_free(ref);
	mproc_decoder_free(dec);
}

/* The pickle in w equals the one in ref, byte for byte. */
static void assert_same(void)
{
	const void *a, *b;
	size_t al, bl;
	ck_assert_int_eq(mproc_writer_finish(w, &a, &al), 0);
	ck_assert_int_eq(mproc_writer_finish(ref, &b, &bl), 0);
	ck_assert_uint_eq(al, bl);
	ck_assert_int_eq(memcmp(a, b, al), 0);
}

/* The value w holds, decoded (valid until the next decode). */
static const struct mproc_value *decoded(struct mproc_writer *from)
{
	const void *p;
	size_t len;
	const struct mproc_value *v = NULL;
	ck_assert_int_eq(mproc_writer_finish(from, &p, &len), 0);
	/* The decoder's tree points into the message: keep a copy. */
	static char *copy;
	free(copy);
	copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, p, len);
	ck_assert_int_eq(mproc_decode(dec, copy, len, &v), 0);
	return v;
}

static void assert_detail_has(const char *want)
{
	const char *d = mproc_error_detail();
	if (!strstr(d, want))
		ck_abort_msg("detail \"%s\" lacks \"%s\"", d, want);
}

/* ---- mproc_write_build ----------------------------------------------- */

START_TEST(test_build_int_letters_write_ints)
{
	ck_assert_int_eq(mproc_write_build(w, "[bhiBHIlkLKn]", (char)-1,
	                                   (short)-2, -3, (unsigned char)4,
	                                   (unsigned short)5, 6u, -7L, 8ul,
	                                   -9LL, 10ull, (ssize_t)-11), 0);
	static const int64_t want[] = {-1, -2, -3, 4, 5, 6, -7, 8, -9, 10, -11};
	mproc_write_list_begin(ref);
	for (size_t i = 0; i < 11; i++)
		mproc_write_int(ref, want[i]);
	mproc_write_list_end(ref);
	assert_same();
}
END_TEST

START_TEST(test_build_extreme_ints)
{
	ck_assert_int_eq(mproc_write_build(w, "(LK)", LLONG_MIN,
	                                   (unsigned long long)INT64_MAX), 0);
	mproc_write_tuple_begin(ref);
	mproc_write_int(ref, INT64_MIN);
	mproc_write_int(ref, INT64_MAX);
	mproc_write_tuple_end(ref);
	assert_same();
}
END_TEST

START_TEST(test_build_bool_float_none_str_bytes)
{
	ck_assert_int_eq(mproc_write_build(w, "(p p d f s z s# z# y y# s)", 1,
	                                   0, 2.5, 0.25f, "hé", (char *)NULL,
	                                   "a\0b", (size_t)3, "xyz", (size_t)1,
	                                   "by", "\0\1", (size_t)2,
	                                   (char *)NULL), 0);
	mproc_write_tuple_begin(ref);
	mproc_write_bool(ref, true);
	mproc_write_bool(ref, false);
	mproc_write_float(ref, 2.5);
	mproc_write_float(ref, 0.25);
	mproc_write_cstr(ref, "hé");
	mproc_write_none(ref);
	mproc_write_str(ref, "a\0b", 3);
	mproc_write_str(ref, "x", 1);
	mproc_write_bytes(ref, "by", 2);
	mproc_write_bytes(ref, "\0\1", 2);
	mproc_write_none(ref);
	mproc_write_tuple_end(ref);
	assert_same();
}
END_TEST

START_TEST(test_build_containers_nest)
{
	ck_assert_int_eq(mproc_write_build(w, "{s:[i,i], s:(), s:{}, s:[]}",
	                                   "xs", 1, 2, "t", "d", "l"), 0);
	mproc_write_dict_begin(ref);
	mproc_write_cstr(ref, "xs");
	mproc_write_list_begin(ref);
	mproc_write_int(ref, 1);
	mproc_write_int(ref, 2);
	mproc_write_list_end(ref);
	mproc_write_cstr(ref, "t");
	mproc_write_tuple_begin(ref);
	mproc_write_tuple_end(ref);
	mproc_write_cstr(ref, "d");
	mproc_write_dict_begin(ref);
	mproc_write_dict_end(ref);
	mproc_write_cstr(ref, "l");
	mproc_write_list_begin(ref);
	mproc_write_list_end(ref);
	mproc_write_dict_end(ref);
	assert_same();
}
END_TEST

START_TEST(test_build_top_level_as_python)
{
	/* "" is None, one item is itself, several are a tuple. */
	ck_assert_int_eq(mproc_write_build(w, ""), 0);
	mproc_write_none(ref);
	assert_same();
	mproc_writer_reset(w);
	mproc_writer_reset(ref);
	ck_assert_int_eq(mproc_write_build(w, "i", 7), 0);
	mproc_write_int(ref, 7);
	assert_same();
	mproc_writer_reset(w);
	mproc_writer_reset(ref);
	ck_assert_int_eq(mproc_write_build(w, "si", "a", 7), 0);
	mproc_write_tuple_begin(ref);
	mproc_write_cstr(ref, "a");
	mproc_write_int(ref, 7);
	mproc_write_tuple_end(ref);
	assert_same();
}
END_TEST

START_TEST(test_build_O_writes_a_decoded_value)
{
	mproc_write_build(ref, "[i s]", 1, "two");
	const struct mproc_value *v = decoded(ref);
	mproc_writer_reset(ref);
	ck_assert_int_eq(mproc_write_build(w, "(O i)", v, 3), 0);
	mproc_write_build(ref, "([i s] i)", 1, "two", 3);
	assert_same();
}
END_TEST

START_TEST(test_build_bad_formats_leave_the_writer_alone)
{
	static const struct {
		const char *fmt, *detail;
	} bad[] = {
		{"(ix)", "position 2: unknown format letter 'x'"},
		{"(ii", "position 0: '(' is never closed"},
		{"ii)", "position 2: ')' closes nothing open"},
		{"(i]", "position 2: ']' closes nothing open"},
		{"{sis}", "position 0: a dict needs key and value pairs, not 3"},
		{"i#", "position 1: '#' follows only s, z or y"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(mproc_write_build(w, bad[i].fmt, 1, 2, 3),
		                 -EINVAL);
		assert_detail_has(bad[i].detail);
		/* Nothing was written. */
		const void *p;
		size_t len;
		ck_assert_int_eq(mproc_writer_finish(w, &p, &len),
		                 MPROC_EWRITER);
		mproc_writer_reset(w);
	}
	ck_assert_int_eq(mproc_write_build(NULL, "i", 1), -EINVAL);
	ck_assert_int_eq(mproc_write_build(w, NULL), -EINVAL);
}
END_TEST

START_TEST(test_build_bad_arguments_are_named)
{
	ck_assert_int_eq(mproc_write_build(w, "(iK)", 1, (unsigned long long)
	                                   INT64_MAX + 1), -ERANGE);
	assert_detail_has("position 2 ('K')");
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_build(w, "(k)", ULONG_MAX), -ERANGE);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_build(w, "[y]", (char *)NULL), -EINVAL);
	assert_detail_has("position 1 ('y'): a NULL pointer for bytes");
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_build(w, "[iO]", 1,
	                                   (struct mproc_value *)NULL),
	                 -EINVAL);
	assert_detail_has("position 2 ('O')");
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_build(w, "(is)", 1, "\xff"),
	                 MPROC_EPICKLE_UTF8);
	assert_detail_has("position 2 ('s')");
	mproc_writer_reset(w);
	/* A list cannot be a dict key in Python. */
	ck_assert_int_eq(mproc_write_build(w, "{[i]i}", 1, 2), MPROC_EWRITER);
	assert_detail_has("format \"{[i]i}\"");
}
END_TEST

/* ---- mproc_value_parse ----------------------------------------------- */

START_TEST(test_parse_every_int_letter)
{
	mproc_write_build(ref, "(iiiiiiiiiii)", 200, -300, -4, 250, 60000, 7,
	                  -8, 9, -10, 11, -12);
	const struct mproc_value *v = decoded(ref);
	unsigned char b, B;
	short h;
	unsigned short H;
	int i;
	unsigned int I;
	long l;
	unsigned long k;
	long long L;
	unsigned long long K;
	ssize_t n;
	ck_assert_int_eq(mproc_value_parse(v, "(bhiBHIlkLKn)", &b, &h, &i, &B,
	                                   &H, &I, &l, &k, &L, &K, &n), 0);
	/* Several top-level letters read a tuple, as PyArg_ParseTuple. */
	ck_assert_int_eq(mproc_value_parse(v, "bhiBHIlkLKn", &b, &h, &i, &B,
	                                   &H, &I, &l, &k, &L, &K, &n), 0);
	ck_assert_uint_eq(b, 200);
	ck_assert_int_eq(h, -300);
	ck_assert_int_eq(i, -4);
	ck_assert_uint_eq(B, 250);
	ck_assert_uint_eq(H, 60000);
	ck_assert_uint_eq(I, 7);
	ck_assert_int_eq(l, -8);
	ck_assert_uint_eq(k, 9);
	ck_assert_int_eq(L, -10);
	ck_assert_uint_eq(K, 11);
	ck_assert_int_eq(n, -12);
}
END_TEST

START_TEST(test_parse_ranges_are_checked)
{
	static const struct {
		const char *fmt;
		int64_t x;
	} bad[] = {
		{"b", 256}, {"b", -1}, {"B", 300}, {"h", 40000}, {"H", -1},
		{"i", (int64_t)INT_MAX + 1}, {"I", -1}, {"k", -1}, {"K", -5},
	};
	for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
		mproc_writer_reset(ref);
		mproc_write_int(ref, bad[j].x);
		const struct mproc_value *v = decoded(ref);
		uint64_t sink = 77;
		ck_assert_int_eq(mproc_value_parse(v, bad[j].fmt, &sink),
		                 -ERANGE);
		ck_assert_uint_eq(sink, 77);
		assert_detail_has("does not fit");
	}
}
END_TEST

START_TEST(test_parse_bool_float_str_bytes_value)
{
	mproc_write_build(ref, "(p i d i s z y [i] i)", 1, 3, 1.5, 2, "añ",
	                  (char *)NULL, "b", 9, 4);
	const struct mproc_value *v = decoded(ref);
	bool p1, p2;
	double d1, d2;
	float f;
	const char *s, *z = "x";
	size_t sl, zl = 9, yl;
	const void *y;
	const struct mproc_value *o;
	int last;
	ck_assert_int_eq(mproc_value_parse(v, "(ppdfszyOi)", &p1, &p2, &d1, &f,
	                                   &s, &sl, &z, &zl, &y, &yl, &o,
	                                   &last), 0);
	ck_assert(p1 && p2);
	ck_assert(d1 == 1.5);
	ck_assert(f == 2.0f);
	ck_assert_uint_eq(sl, 3);
	ck_assert_int_eq(memcmp(s, "añ", 3), 0);
	ck_assert_ptr_null(z);
	ck_assert_uint_eq(zl, 0);
	ck_assert_uint_eq(yl, 1);
	ck_assert_int_eq(mproc_value_type(o), MPROC_LIST);
	ck_assert_int_eq(last, 4);
	(void)d2;
}
END_TEST

START_TEST(test_parse_s_hash_and_z_with_a_str)
{
	mproc_write_build(ref, "(ss)", "ab", "cd");
	const struct mproc_value *v = decoded(ref);
	const char *a, *b;
	size_t al, bl;
	ck_assert_int_eq(mproc_value_parse(v, "(s#z#)", &a, &al, &b, &bl), 0);
	ck_assert_uint_eq(al, 2);
	ck_assert_int_eq(memcmp(b, "cd", 2), 0);
}
END_TEST

START_TEST(test_parse_type_errors_name_path_expected_actual)
{
	mproc_write_build(ref, "(s[is]d)", "a", 1, "x", 2.0);
	const struct mproc_value *v = decoded(ref);
	const char *s = "keep";
	size_t sl = 0;
	int i = -1, j = -1;
	double d = -1;
	ck_assert_int_eq(mproc_value_parse(v, "(s(ii)d)", &s, &sl, &i, &j, &d),
	                 MPROC_ETYPE);
	assert_detail_has("format \"(s(ii)d)\", at [1][1]: expected int, "
	                  "got str");
	/* Nothing stored, not even the items before the error. */
	ck_assert_str_eq(s, "keep");
	ck_assert_int_eq(i, -1);
	ck_assert(d == -1);

	static const struct {
		const char *fmt, *detail;
	} types[] = {
		{"(iO O)", "at [0]: expected int, got str"},
		{"(Op O)", "at [1]: expected bool or int, got list"},
		{"(OOy)", "at [2]: expected bytes, got float"},
		{"(zOO)", "ok"},
		{"(OOs)", "at [2]: expected str, got float"},
		{"(O(O)O)", "at [1]: expected a list of 1 items, got 2"},
		{"(OO)", "expected a tuple of 2 items, got 3"},
		{"i", "the value: expected int, got tuple"},
	};
	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		const void *p[8] = {0};
		size_t l[8];
		int rc = mproc_value_parse(v, types[k].fmt, &p[0], &l[0], &p[1],
		                           &l[1], &p[2], &l[2], &p[3], &l[3]);
		if (!strcmp(types[k].detail, "ok")) {
			ck_assert_int_eq(rc, 0);
			continue;
		}
		ck_assert_int_lt(rc, 0);
		assert_detail_has(types[k].detail);
	}
	mproc_writer_reset(ref);
	mproc_write_build(ref, "z", (char *)NULL);
	v = decoded(ref);
	ck_assert_int_eq(mproc_value_parse(v, "d", &d), MPROC_ETYPE);
	assert_detail_has("the value: expected float or int, got NoneType");
	ck_assert_int_eq(mproc_value_parse(NULL, "O", &v), MPROC_ETYPE);
	assert_detail_has("got no value");
}
END_TEST

START_TEST(test_parse_lengths_and_optional_items)
{
	mproc_write_build(ref, "[ii]", 1, 2);
	const struct mproc_value *v = decoded(ref);
	int a = 0, b = 0, c = 33;
	/* A list is read by '(' as a tuple is. */
	ck_assert_int_eq(mproc_value_parse(v, "(ii|i)", &a, &b, &c), 0);
	ck_assert_int_eq(a + b, 3);
	ck_assert_int_eq(c, 33);
	ck_assert_int_eq(mproc_value_parse(v, "(iii)", &a, &b, &c),
	                 MPROC_EINDEX);
	assert_detail_has("expected a list of 3 items, got 2");
	ck_assert_int_eq(mproc_value_parse(v, "(i)", &a), MPROC_EINDEX);
	assert_detail_has("expected a list of 1 items, got 2");
	ck_assert_int_eq(mproc_value_parse(v, "(|i)", &a), MPROC_EINDEX);
	assert_detail_has("at most 1 items");
	ck_assert_int_eq(mproc_value_parse(v, "(iii|i)", &a, &b, &c, &c),
	                 MPROC_EINDEX);
	assert_detail_has("at least 3 items");
	/* Optional items skipped in a nested sequence keep later items in
	 * step with their variables. */
	mproc_writer_reset(ref);
	mproc_write_build(ref, "([i]s)", 5, "z");
	v = decoded(ref);
	const char *s;
	size_t sl;
	int x = 0, y = 44;
	ck_assert_int_eq(mproc_value_parse(v, "([i|(ii)]s)", &x, &y, &y, &s,
	                                   &sl), 0);
	ck_assert_int_eq(x, 5);
	ck_assert_int_eq(y, 44);
	ck_assert_uint_eq(sl, 1);
	ck_assert_int_eq(s[0], 'z');
}
END_TEST

START_TEST(test_parse_bad_formats_and_pointers)
{
	mproc_write_build(ref, "(i)", 1);
	const struct mproc_value *v = decoded(ref);
	int a;
	ck_assert_int_eq(mproc_value_parse(v, NULL), -EINVAL);
	ck_assert_int_eq(mproc_value_parse(v, "(x)", &a), -EINVAL);
	assert_detail_has("unknown format letter 'x'");
	ck_assert_int_eq(mproc_value_parse(v, "{i}", &a), -EINVAL);
	assert_detail_has("mproc_value_dict_next");
	ck_assert_int_eq(mproc_value_parse(v, "(i", &a), -EINVAL);
	assert_detail_has("never closed");
	ck_assert_int_eq(mproc_value_parse(v, "i)", &a), -EINVAL);
	assert_detail_has("closes nothing");
	ck_assert_int_eq(mproc_value_parse(v, "(i||)", &a), -EINVAL);
	assert_detail_has("a second '|'");
	ck_assert_int_eq(mproc_value_parse(v, "(i#)", &a), -EINVAL);
	ck_assert_int_eq(mproc_value_parse(v, "(i)", (int *)NULL), -EINVAL);
	assert_detail_has("at [0]: a NULL pointer");
}
END_TEST

/* ---- dicts and strings ------------------------------------------------ */

START_TEST(test_dict_next_walks_entries_in_order)
{
	mproc_write_build(ref, "{s:i s:i s:i}", "a", 1, "b", 2, "c", 3);
	const struct mproc_value *d = decoded(ref), *k, *val;
	size_t pos = 0;
	int64_t sum = 0;
	char order[4] = {0};
	while (mproc_value_dict_next(d, &pos, &k, &val) > 0) {
		const char *s;
		size_t len;
		ck_assert_int_eq(mproc_value_str(k, &s, &len), 0);
		order[pos - 1] = s[0];
		sum += int_of(val);
	}
	ck_assert_str_eq(order, "abc");
	ck_assert_int_eq(sum, 6);
	ck_assert_int_eq(mproc_value_dict_next(d, &pos, NULL, NULL), 0);
	ck_assert_int_eq(mproc_value_dict_next(d, NULL, &k, &val), -EINVAL);
	pos = 0;
	ck_assert_int_eq(mproc_value_dict_next(k, &pos, &k, &val),
	                 MPROC_ETYPE);
	assert_detail_has("expected dict, got str");
}
END_TEST

START_TEST(test_strdup_copies_a_str)
{
	mproc_write_build(ref, "(s s# i)", "héllo", "a\0b", (size_t)3, 1);
	const struct mproc_value *v = decoded(ref), *it;
	char *s = NULL;
	ck_assert_int_eq(mproc_value_item(v, 0, &it), 0);
	ck_assert_int_eq(mproc_value_strdup(it, &s), 0);
	ck_assert_str_eq(s, "héllo");
	free(s);
	s = NULL;
	ck_assert_int_eq(mproc_value_item(v, 1, &it), 0);
	ck_assert_int_eq(mproc_value_strdup(it, &s), -EINVAL);
	assert_detail_has("NUL character at byte 1");
	ck_assert_ptr_null(s);
	ck_assert_int_eq(mproc_value_item(v, 2, &it), 0);
	ck_assert_int_eq(mproc_value_strdup(it, &s), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_strdup(it, NULL), -EINVAL);
}
END_TEST

/* ---- details behind errors -------------------------------------------- */

START_TEST(test_accessors_name_expected_and_actual)
{
	mproc_write_build(ref, "(s i)", "x", 1);
	const struct mproc_value *v = decoded(ref), *it;
	int64_t x;
	ck_assert_int_eq(mproc_value_int(v, &x), MPROC_ETYPE);
	ck_assert_str_eq(mproc_error_detail(), "expected int, got tuple");
	ck_assert_int_eq(mproc_value_item(v, 5, &it), MPROC_EINDEX);
	ck_assert_str_eq(mproc_error_detail(),
	                 "index 5 out of range (2 items)");
	double d;
	ck_assert_int_eq(mproc_value_float(v, &d), MPROC_ETYPE);
	ck_assert_str_eq(mproc_error_detail(), "expected float, got tuple");
	ck_assert_int_eq(mproc_value_item(v, 0, &it), 0);
	size_t n;
	ck_assert_int_eq(mproc_value_len(it, &n), MPROC_ETYPE);
	assert_detail_has("got str");
	ck_assert_int_eq(mproc_value_bool(NULL, NULL), MPROC_ETYPE);
	ck_assert_str_eq(mproc_error_detail(), "expected bool, got no value");
}
END_TEST

/* Returns what mproc_value_int answers, unhandled. */
static int t_int_unchecked(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	int64_t x;
	int rc = mproc_value_int(arg, &x);
	return rc < 0 ? rc : mproc_write_int(ret, x);
}

START_TEST(test_task_type_error_names_expected_and_actual)
{
	struct mproc_pool *pool = open_pool(1);
	mproc_write_cstr(ref, "seven");
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(ref, &p, &len), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_apply(pool, t_int_unchecked, p, len, &res),
	                 MPROC_ERAISED);
	const char *msg = item(res, 0).error->msg;
	if (!strstr(msg, "expected int, got str"))
		ck_abort_msg("%s", msg);
	mproc_results_free(res);
	finish_pool(pool);
}
END_TEST

START_TEST(test_decoder_depth_error_names_the_limit)
{
	struct mproc_limits lim = {.max_depth = 3};
	struct mproc_decoder *d3;
	ck_assert_int_eq(mproc_decoder_new(&d3, &lim), 0);
	mproc_write_build(ref, "[[[[[i]]]]]", 1);
	const void *p;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(ref, &p, &len), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d3, p, len, &v), MPROC_EPICKLE_DEPTH);
	if (!strstr(mproc_decoder_error(d3), "(the limit max_depth)"))
		ck_abort_msg("%s", mproc_decoder_error(d3));
	mproc_decoder_free(d3);
}
END_TEST

START_TEST(test_strerror_of_a_positive_errno)
{
	ck_assert_str_eq(mproc_strerror(ENOENT), mproc_strerror(-ENOENT));
	ck_assert_str_eq(mproc_err_name(ENOENT), "ENOENT");
}
END_TEST

/* ---- inputs and results ------------------------------------------------ */

/* The sum of a starmap item's ints: a tuple or a list. */
static int t_sum(const struct mproc_value *arg, struct mproc_writer *ret)
{
	size_t n = 0;
	int64_t s = 0, x;
	const struct mproc_value *it;
	mproc_value_len(arg, &n);
	for (size_t i = 0; i < n; i++)
		if (mproc_value_item(arg, i, &it) == 0 &&
		    mproc_value_int(it, &x) == 0)
			s += x;
	return mproc_write_int(ret, s);
}

START_TEST(test_input_value_maps_a_decoded_list)
{
	mproc_write_build(ref, "[iiiiii]", 0, 1, 2, 3, 4, 5);
	const struct mproc_value *v = decoded(ref);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_value(&in, v), 0);
	ck_assert(in.has_len);
	ck_assert_uint_eq(in.len, 6);
	struct mproc_pool *pool = open_pool(2);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(pool, t_square, &in, 0, &res), 0);
	ck_assert_uint_eq(mproc_results_count(res), 6);
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(int_of(mproc_results_value(res, i)),
		                 (int64_t)(i * i));
	mproc_results_free(res);

	/* A dict's keys, as iterating it in Python gives. */
	mproc_writer_reset(ref);
	mproc_write_build(ref, "{i:s i:s}", 3, "a", 4, "b");
	v = decoded(ref);
	ck_assert_int_eq(mproc_input_value(&in, v), 0);
	ck_assert_int_eq(mproc_map(pool, t_square, &in, 1, &res), 0);
	ck_assert_int_eq(int_of(mproc_results_value(res, 1)), 16);
	mproc_results_free(res);
	finish_pool(pool);

	ck_assert_int_eq(mproc_input_value(&in, NULL), -EINVAL);
	ck_assert_int_eq(mproc_input_value(NULL, v), -EINVAL);
	const struct mproc_value *scalar;
	mproc_value_dict_entry(v, 0, &scalar, NULL);
	ck_assert_int_eq(mproc_input_value(&in, scalar), MPROC_ETYPE);
	assert_detail_has("got int");
}
END_TEST

START_TEST(test_starmap_takes_lists_and_tuples)
{
	mproc_write_build(ref, "[[ii] (iii) []]", 1, 2, 3, 4, 5);
	const struct mproc_value *v = decoded(ref);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_value(&in, v), 0);
	struct mproc_pool *pool = open_pool(2);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_starmap(pool, t_sum, &in, 1, &res), 0);
	ck_assert_int_eq(int_of(mproc_results_value(res, 0)), 3);
	ck_assert_int_eq(int_of(mproc_results_value(res, 1)), 12);
	ck_assert_int_eq(int_of(mproc_results_value(res, 2)), 0);
	mproc_results_free(res);
	finish_pool(pool);
}
END_TEST

static int gen_counted(void *cookie, size_t index, struct mproc_writer *wr)
{
	size_t *calls = cookie;
	++*calls;
	return mproc_write_int(wr, (int64_t)index) < 0 ? -1 : 1;
}

START_TEST(test_set_len_bounds_an_endless_generator)
{
	struct mproc_input in;
	size_t calls = 0;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_counted, &calls), 0);
	ck_assert_int_eq(mproc_input_set_len(&in, 10), 0);
	struct mproc_pool *pool = open_pool(2);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(pool, t_identity, &in, 0, &res), 0);
	ck_assert_uint_eq(mproc_results_count(res), 10);
	ck_assert_uint_le(calls, 10);
	mproc_results_free(res);
	finish_pool(pool);
	struct mproc_input r;
	mproc_input_range(&r, 0, 3, 1);
	ck_assert_int_eq(mproc_input_set_len(&r, 2), -EINVAL);
	ck_assert_int_eq(mproc_input_set_len(NULL, 2), -EINVAL);
}
END_TEST

START_TEST(test_input_helper_failure_names_the_item)
{
	static const char *const names[] = {"ok.txt", "bad\xff.txt", "c"};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_cstrs(&in, names, 3), 0);
	struct mproc_pool *pool = open_pool(1);
	struct mproc_results *res = NULL;
	ck_assert_int_eq(mproc_map(pool, t_identity, &in, 1, &res),
	                 MPROC_EINPUT);
	assert_detail_has("input item 1: invalid UTF-8");
	mproc_results_free(res);
	finish_pool(pool);
}
END_TEST

START_TEST(test_generator_failure_names_the_item)
{
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_fail_at_7, NULL), 0);
	struct mproc_pool *pool = open_pool(1);
	struct mproc_results *res = NULL;
	ck_assert_int_eq(mproc_map(pool, t_identity, &in, 1, &res),
	                 MPROC_EINPUT);
	assert_detail_has("input item 7: the generator answered EIO");
	mproc_results_free(res);
	finish_pool(pool);
}
END_TEST

START_TEST(test_iter_and_async_name_their_input_failure)
{
	static const char *const names[] = {"a", "b", "c\xff", "d"};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_cstrs(&in, names, 4), 0);
	struct mproc_pool *pool = open_pool(2);
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap(pool, t_identity, &in, 1, &it), 0);
	const struct mproc_result *r;
	int rc, n = 0;
	while ((rc = mproc_iter_next(it, 10, &r)) == 1)
		n++;
	ck_assert_int_eq(rc, MPROC_EINPUT);
	ck_assert_int_eq(n, 2);
	if (!strstr(mproc_iter_input_error(it), "input item 2: invalid UTF-8"))
		ck_abort_msg("%s", mproc_iter_input_error(it));
	mproc_iter_free(it);

	struct mproc_input gen;
	ck_assert_int_eq(mproc_input_fn_init(&gen, gen_fail_at_7, NULL), 0);
	ck_assert_int_eq(mproc_input_set_len(&gen, 20), 0);
	struct mproc_async *a;
	ck_assert_int_eq(mproc_map_async(pool, t_identity, &gen, 1, NULL, &a),
	                 0);
	const struct mproc_results *res;
	ck_assert_int_eq(mproc_async_get(a, 10, &res), MPROC_EINPUT);
	if (!strstr(mproc_async_input_error(a), "input item 7: the generator "
	                                         "answered EIO"))
		ck_abort_msg("%s", mproc_async_input_error(a));
	mproc_async_free(a);
	ck_assert_str_eq(mproc_iter_input_error(NULL), "");
	ck_assert_str_eq(mproc_async_input_error(NULL), "");
	finish_pool(pool);
}
END_TEST

START_TEST(test_results_write_loads_as_a_list)
{
	struct mproc_pool *pool = open_pool(2);
	struct mproc_input in;
	mproc_input_range(&in, 3, 7, 1);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(pool, t_fail_on_5, &in, 1, &res),
	                 MPROC_ERAISED);
	finish_pool(pool);

	ck_assert_int_eq(mproc_results_write(w, res, 0), 0);
	const struct mproc_value *v = decoded(w);
	int a, b, d;
	const char *type, *msg;
	size_t tl, ml;
	ck_assert_int_eq(mproc_value_parse(v, "[ii(ss)i]", &a, &b, &type, &tl,
	                                   &msg, &ml, &d), 0);
	ck_assert_int_eq(a, 3);
	ck_assert_int_eq(d, 6);
	ck_assert_int_eq(memcmp(type, "ValueError", tl), 0);
	ck_assert_int_eq(memcmp(msg, "bad input 5", ml), 0);

	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_results_write(w, res, MPROC_RESULTS_NONE), 0);
	v = decoded(w);
	const struct mproc_value *third;
	ck_assert_int_eq(mproc_value_parse(v, "[iiOi]", &a, &b, &third, &d), 0);
	ck_assert(mproc_value_is_none(third));

	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_results_write(w, res, MPROC_RESULTS_STATUS), 0);
	v = decoded(w);
	const char *s0, *s2;
	size_t l0, l2;
	ck_assert_int_eq(mproc_value_parse(v, "[(si)O(s(ss))O]", &s0, &l0, &a,
	                                   &third, &s2, &l2, &type, &tl, &msg,
	                                   &ml, &third), 0);
	ck_assert_int_eq(memcmp(s0, "OK", l0), 0);
	ck_assert_int_eq(memcmp(s2, "RAISED", l2), 0);

	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_results_write(w, res, 4), -EINVAL);
	ck_assert_int_eq(mproc_results_write(w, res, MPROC_RESULTS_NONE |
	                                     MPROC_RESULTS_STATUS), -EINVAL);
	ck_assert_int_eq(mproc_results_write(NULL, res, 0), -EINVAL);
	ck_assert_int_eq(mproc_results_write(w, NULL, 0), -EINVAL);
	mproc_results_free(res);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("helpers");
	TCase *tc = tcase_create("format");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_build_int_letters_write_ints);
	tcase_add_test(tc, test_build_extreme_ints);
	tcase_add_test(tc, test_build_bool_float_none_str_bytes);
	tcase_add_test(tc, test_build_containers_nest);
	tcase_add_test(tc, test_build_top_level_as_python);
	tcase_add_test(tc, test_build_O_writes_a_decoded_value);
	tcase_add_test(tc, test_build_bad_formats_leave_the_writer_alone);
	tcase_add_test(tc, test_build_bad_arguments_are_named);
	tcase_add_test(tc, test_parse_every_int_letter);
	tcase_add_test(tc, test_parse_ranges_are_checked);
	tcase_add_test(tc, test_parse_bool_float_str_bytes_value);
	tcase_add_test(tc, test_parse_s_hash_and_z_with_a_str);
	tcase_add_test(tc, test_parse_type_errors_name_path_expected_actual);
	tcase_add_test(tc, test_parse_lengths_and_optional_items);
	tcase_add_test(tc, test_parse_bad_formats_and_pointers);
	tcase_add_test(tc, test_dict_next_walks_entries_in_order);
	tcase_add_test(tc, test_strdup_copies_a_str);
	tcase_add_test(tc, test_accessors_name_expected_and_actual);
	tcase_add_test(tc, test_decoder_depth_error_names_the_limit);
	tcase_add_test(tc, test_strerror_of_a_positive_errno);
	suite_add_tcase(s, tc);
	TCase *tp = tcase_create("pool");
	tcase_add_checked_fixture(tp, setup, teardown);
	tcase_set_timeout(tp, 60);
	tcase_add_test(tp, test_input_value_maps_a_decoded_list);
	tcase_add_test(tp, test_task_type_error_names_expected_and_actual);
	tcase_add_test(tp, test_starmap_takes_lists_and_tuples);
	tcase_add_test(tp, test_set_len_bounds_an_endless_generator);
	tcase_add_test(tp, test_input_helper_failure_names_the_item);
	tcase_add_test(tp, test_generator_failure_names_the_item);
	tcase_add_test(tp, test_iter_and_async_name_their_input_failure);
	tcase_add_test(tp, test_results_write_loads_as_a_list);
	suite_add_tcase(s, tp);
	return run_suite(s);
}
