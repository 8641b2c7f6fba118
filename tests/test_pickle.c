/*
 * test_pickle.c - the value codec: writer output, decoding of what CPython
 * writes, and refusal of everything outside the safe subset (never a crash).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "lib/buf.h"
#include "lib/pickle.h"
#include "lib/input.h"
#include "lib/wire.h"
#include "lib/job.h"

/* Written by CPython 3.11 pickle.dumps(v, protocol) for
 * v = {'a': [1, -2, 3.5, None, True, False],
 *      'b': (b'xy', b'', {7, 8}, frozenset({(1, 2)}), 'h\u00e9\u20ac'),
 *      (1, 'k'): [shared, shared], 'big': 2**40, 'neg': -2**31 - 1}
 * with shared = [1, 2] (a memo reference). */
static const char sample_p2[] =
	"\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x5d\x71"
	"\x02\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00\x00\x00\x00"
	"\x00\x00\x4e\x88\x89\x65\x58\x01\x00\x00\x00\x62\x71\x03\x28\x63"
	"\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71"
	"\x04\x58\x02\x00\x00\x00\x78\x79\x71\x05\x58\x06\x00\x00\x00\x6c"
	"\x61\x74\x69\x6e\x31\x71\x06\x86\x71\x07\x52\x71\x08\x63\x5f\x5f"
	"\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x62\x79\x74\x65\x73\x0a"
	"\x71\x09\x29\x52\x71\x0a\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e"
	"\x5f\x5f\x0a\x73\x65\x74\x0a\x71\x0b\x5d\x71\x0c\x28\x4b\x08\x4b"
	"\x07\x65\x85\x71\x0d\x52\x71\x0e\x63\x5f\x5f\x62\x75\x69\x6c\x74"
	"\x69\x6e\x5f\x5f\x0a\x66\x72\x6f\x7a\x65\x6e\x73\x65\x74\x0a\x71"
	"\x0f\x5d\x71\x10\x4b\x01\x4b\x02\x86\x71\x11\x61\x85\x71\x12\x52"
	"\x71\x13\x58\x06\x00\x00\x00\x68\xc3\xa9\xe2\x82\xac\x71\x14\x74"
	"\x71\x15\x4b\x01\x58\x01\x00\x00\x00\x6b\x71\x16\x86\x71\x17\x5d"
	"\x71\x18\x28\x5d\x71\x19\x28\x4b\x01\x4b\x02\x65\x68\x19\x65\x58"
	"\x03\x00\x00\x00\x62\x69\x67\x71\x1a\x8a\x06\x00\x00\x00\x00\x00"
	"\x01\x58\x03\x00\x00\x00\x6e\x65\x67\x71\x1b\x8a\x05\xff\xff\xff"
	"\x7f\xff\x75\x2e";
static const char sample_p3[] =
	"\x80\x03\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x5d\x71"
	"\x02\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00\x00\x00\x00"
	"\x00\x00\x4e\x88\x89\x65\x58\x01\x00\x00\x00\x62\x71\x03\x28\x43"
	"\x02\x78\x79\x71\x04\x43\x00\x71\x05\x63\x62\x75\x69\x6c\x74\x69"
	"\x6e\x73\x0a\x73\x65\x74\x0a\x71\x06\x5d\x71\x07\x28\x4b\x08\x4b"
	"\x07\x65\x85\x71\x08\x52\x71\x09\x63\x62\x75\x69\x6c\x74\x69\x6e"
	"\x73\x0a\x66\x72\x6f\x7a\x65\x6e\x73\x65\x74\x0a\x71\x0a\x5d\x71"
	"\x0b\x4b\x01\x4b\x02\x86\x71\x0c\x61\x85\x71\x0d\x52\x71\x0e\x58"
	"\x06\x00\x00\x00\x68\xc3\xa9\xe2\x82\xac\x71\x0f\x74\x71\x10\x4b"
	"\x01\x58\x01\x00\x00\x00\x6b\x71\x11\x86\x71\x12\x5d\x71\x13\x28"
	"\x5d\x71\x14\x28\x4b\x01\x4b\x02\x65\x68\x14\x65\x58\x03\x00\x00"
	"\x00\x62\x69\x67\x71\x15\x8a\x06\x00\x00\x00\x00\x00\x01\x58\x03"
	"\x00\x00\x00\x6e\x65\x67\x71\x16\x8a\x05\xff\xff\xff\x7f\xff\x75"
	"\x2e";
static const char sample_p4[] =
	"\x80\x04\x95\x7a\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01"
	"\x61\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00"
	"\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x8c\x01\x62\x94\x28\x43\x02"
	"\x78\x79\x94\x43\x00\x94\x8f\x94\x28\x4b\x08\x4b\x07\x90\x28\x4b"
	"\x01\x4b\x02\x86\x94\x91\x94\x8c\x06\x68\xc3\xa9\xe2\x82\xac\x94"
	"\x74\x94\x4b\x01\x8c\x01\x6b\x94\x86\x94\x5d\x94\x28\x5d\x94\x28"
	"\x4b\x01\x4b\x02\x65\x68\x0e\x65\x8c\x03\x62\x69\x67\x94\x8a\x06"
	"\x00\x00\x00\x00\x00\x01\x8c\x03\x6e\x65\x67\x94\x8a\x05\xff\xff"
	"\xff\x7f\xff\x75\x2e";
static const char sample_p5[] =
	"\x80\x05\x95\x7a\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01"
	"\x61\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00"
	"\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x8c\x01\x62\x94\x28\x43\x02"
	"\x78\x79\x94\x43\x00\x94\x8f\x94\x28\x4b\x08\x4b\x07\x90\x28\x4b"
	"\x01\x4b\x02\x86\x94\x91\x94\x8c\x06\x68\xc3\xa9\xe2\x82\xac\x94"
	"\x74\x94\x4b\x01\x8c\x01\x6b\x94\x86\x94\x5d\x94\x28\x5d\x94\x28"
	"\x4b\x01\x4b\x02\x65\x68\x0e\x65\x8c\x03\x62\x69\x67\x94\x8a\x06"
	"\x00\x00\x00\x00\x00\x01\x8c\x03\x6e\x65\x67\x94\x8a\x05\xff\xff"
	"\xff\x7f\xff\x75\x2e";

#define S(lit) lit, sizeof(lit) - 1

static struct mproc_decoder *dec_new(size_t max_size, unsigned max_depth)
{
	struct mproc_limits lim = {.max_size = max_size, .max_depth = max_depth};
	struct mproc_decoder *d = NULL;
	ck_assert_int_eq(mproc_decoder_new(&d, &lim), 0);
	return d;
}

/* Decode `msg` and require error `code` whose text has `text` (if not
 * NULL) and whose offset is `off` (if not SIZE_MAX). */
static void expect_err(const char *msg, size_t len, int code,
                       const char *text, size_t off)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v = (void *)1;
	int rc = mproc_decode(d, msg, len, &v);
	ck_assert_msg(rc == code, "got %s (%s), want %s", mproc_err_name(rc),
	              mproc_decoder_error(d), mproc_err_name(code));
	ck_assert_ptr_null(v);
	if (text)
		ck_assert_msg(strstr(mproc_decoder_error(d), text),
		              "error text '%s' lacks '%s'",
		              mproc_decoder_error(d), text);
	if (off != SIZE_MAX)
		ck_assert_msg(mproc_decoder_error_offset(d) == off,
		              "offset %zu, want %zu (%s)",
		              mproc_decoder_error_offset(d), off,
		              mproc_decoder_error(d));
	mproc_decoder_free(d);
}

/* Write one value with `fn`, finish, and return a malloc'd copy. */
typedef void (*write_fn)(struct mproc_writer *w);

static char *written(write_fn fn, size_t *len)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 4), 0);
	fn(w);
	const void *data;
	ck_assert_int_eq(mproc_writer_finish(w, &data, len), 0);
	char *copy = malloc(*len);
	memcpy(copy, data, *len);
	mproc_writer_free(w);
	return copy;
}

/* ---- scalars ------------------------------------------------------------ */

static const int64_t int_edges[] = {
	0, 1, -1, 255, 256, 65535, 65536, -256, INT32_MAX, INT32_MIN,
	(int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1, INT64_C(1) << 40,
	-(INT64_C(1) << 40), (INT64_C(1) << 55) - 1, INT64_C(1) << 55,
	INT64_MAX - 1, INT64_MAX, INT64_MIN + 1, INT64_MIN,
};

/* ---- scalars written and read without the general paths ---------------- */

static const double float_edges[] = {0.0, -0.0, 1.5, -2.25, 1e300, -1e-300,
                                     INFINITY, -INFINITY, NAN};

/* What a protocol-5 writer makes for one int (kind 0) or float (kind 1). */
static size_t writer_scalar(int kind, int64_t i, double f, char *out,
                            size_t cap)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(kind ? mproc_write_float(w, f) : mproc_write_int(w, i), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_uint_le(len, cap);
	memcpy(out, data, len);
	mproc_writer_free(w);
	return len;
}

/* v written back by a writer must be `want`. */
static void writes_as(const struct mproc_value *v, const char *want,
                      size_t n)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(data, want, n);
	mproc_writer_free(w);
}

/* A packed argument's node (made without a pickle) is the decoder's. */
START_TEST(test_pickle_scalar_nodes_match_the_decoder)
{
	char want[32];
	struct mproc__scalar node;
	for (size_t k = 0; k < sizeof int_edges / sizeof int_edges[0]; k++) {
		for (int64_t d = -2; d <= 2; d++) {
			int64_t v = (int64_t)((uint64_t)int_edges[k] + (uint64_t)d);
			const struct mproc_value *x = mproc__scalar_int(&node, v);
			int64_t got;
			ck_assert_int_eq(mproc_value_type(x), MPROC_INT);
			ck_assert_int_eq(mproc_value_int(x, &got), 0);
			ck_assert_int_eq(got, v);
			writes_as(x, want, writer_scalar(0, v, 0, want, sizeof want));
		}
	}
	for (size_t k = 0; k < sizeof float_edges / sizeof float_edges[0]; k++) {
		const struct mproc_value *x = mproc__scalar_float(&node, float_edges[k]);
		ck_assert_int_eq(mproc_value_type(x), MPROC_FLOAT);
		writes_as(x, want,
		          writer_scalar(1, 0, float_edges[k], want, sizeof want));
	}
}
END_TEST

/* Decode msg; its value must re-encode to `again` (or to msg itself). */
static void decode_reencodes(struct mproc_decoder *d, const char *msg,
                             size_t len, const char *again, size_t alen)
{
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, msg, len, &v), 0);
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	const void *data;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &n), 0);
	ck_assert_uint_eq(n, again ? alen : len);
	ck_assert_mem_eq(data, again ? again : msg, n);
	mproc_writer_free(w);
}

START_TEST(test_pickle_scalar_messages_decode_as_the_unpickler_does)
{
	struct mproc_decoder *d;
	ck_assert_int_eq(mproc_decoder_new(&d, NULL), 0);
	char msg[32];
	for (size_t k = 0; k < sizeof int_edges / sizeof int_edges[0]; k++) {
		size_t n = writer_scalar(0, int_edges[k], 0, msg, sizeof msg);
		decode_reencodes(d, msg, n, NULL, 0);
		const struct mproc_value *v;
		int64_t i;
		ck_assert_int_eq(mproc_decode(d, msg, n, &v), 0);
		ck_assert_int_eq(mproc_value_int(v, &i), 0);
		ck_assert_int_eq(i, int_edges[k]);
	}
	for (size_t k = 0; k < sizeof float_edges / sizeof float_edges[0]; k++) {
		size_t n = writer_scalar(1, 0, float_edges[k], msg, sizeof msg);
		decode_reencodes(d, msg, n, NULL, 0);
	}
	decode_reencodes(d, "\x80\x05N.", 4, NULL, 0);
	decode_reencodes(d, "\x80\x05\x88.", 4, NULL, 0);
	decode_reencodes(d, "\x80\x05\x89.", 4, NULL, 0);
	/* Protocol 2 and longer forms than needed are read, and written back
	 * in the shortest. */
	decode_reencodes(d, "\x80\x02K\x07.", 5, "\x80\x05K\x07.", 5);
	decode_reencodes(d, "\x80\x05M\x07\x00.", 6, "\x80\x05K\x07.", 5);
	decode_reencodes(d, "\x80\x05J\x07\x00\x00\x00.", 8, "\x80\x05K\x07.", 5);
	/* What the short path does not take still fails as before. */
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, "\x80\x06N.", 4, &v), MPROC_EPICKLE_INVALID);
	ck_assert_int_lt(mproc_decode(d, "\x80\x05K.", 4, &v), 0);
	ck_assert_int_lt(mproc_decode(d, "\x80\x05N..", 5, &v), 0);
	ck_assert_int_lt(mproc_decode(d, "\x80\x05J\x07\x00\x00.", 7, &v), 0);
	struct mproc_limits lim = {.max_size = 4};
	struct mproc_decoder *small;
	ck_assert_int_eq(mproc_decoder_new(&small, &lim), 0);
	ck_assert_int_eq(mproc_decode(small, "\x80\x05K\x07.", 5, &v),
	                 MPROC_EPICKLE_TOOBIG);
	mproc_decoder_free(small);
	mproc_decoder_free(d);
}
END_TEST

/* The value the generator of `in` writes for item i, decoded by d. */
static const struct mproc_value *generated(struct mproc_input *in, size_t i,
                                           struct mproc_decoder *d)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc_input_write(in, i, w), 1);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc__decode_keep(d, data, len, &v), 0);
	mproc_writer_free(w);
	return v;
}

static int wrap_input(void *cookie, size_t index, struct mproc_writer *w)
{
	return mproc_input_write(cookie, index, w);
}

/* Packed, a range's item i is its record's first + i * step. */
static void range_packs(struct mproc_input *in)
{
	struct mproc_decoder *d;
	ck_assert_int_eq(mproc_decoder_new(&d, NULL), 0);
	ck_assert_int_eq(mproc__input_pack(in), MPROC__TF_RANGE);
	int64_t rec0[2];
	mproc__input_range_at(in, 0, rec0);
	for (size_t i = 0; i < in->len; i += 1 + in->len / 50) {
		int64_t rec[2], want;
		mproc__input_range_at(in, i, rec);
		ck_assert_int_eq(mproc_value_int(generated(in, i, d), &want), 0);
		ck_assert_int_eq(rec[0], want);
		ck_assert_int_eq(rec[1], rec0[1]);
		ck_assert_int_eq((int64_t)((uint64_t)rec0[0] +
		                           (uint64_t)i * (uint64_t)rec0[1]),
		                 want);
	}
	mproc_decoder_free(d);
}

START_TEST(test_input_packing_matches_the_generators)
{
	struct mproc_input in;
	mproc_input_range(&in, 0, 70000, 1);
	range_packs(&in);
	mproc_input_range(&in, -70000, 70000, 997);
	range_packs(&in);
	mproc_input_range(&in, INT64_MAX, INT64_MIN, -(INT64_C(1) << 58));
	range_packs(&in);
	mproc_input_range(&in, INT64_MIN, INT64_MAX, INT64_MAX);
	range_packs(&in);
	/* Arrays go as they lie in memory, from the item asked for on. */
	int64_t ints[sizeof int_edges / sizeof int_edges[0]];
	memcpy(ints, int_edges, sizeof ints);
	size_t n = sizeof ints / sizeof ints[0];
	mproc_input_int64s(&in, ints, n);
	ck_assert_int_eq(mproc__input_pack(&in), MPROC__TF_INTS);
	struct mproc__buf b = {0};
	ck_assert_int_eq(mproc__buf_append(&b, "hdr", 3), 0);
	ck_assert_uint_eq(mproc__input_numbers(&in, 2, SIZE_MAX, &b), n - 2);
	ck_assert_uint_eq(b.len, 3 + (n - 2) * 8);
	ck_assert_mem_eq(b.data, "hdr", 3);
	ck_assert_mem_eq(b.data + 3, ints + 2, (n - 2) * 8);
	b.len = 0;
	ck_assert_uint_eq(mproc__input_numbers(&in, 1, 2, &b), 2);
	ck_assert_uint_eq(mproc__input_numbers(&in, n, 2, &b), 0);
	ck_assert_uint_eq(b.len, 16);
	double fl[sizeof float_edges / sizeof float_edges[0]];
	memcpy(fl, float_edges, sizeof fl);
	mproc_input_doubles(&in, fl, sizeof fl / sizeof fl[0]);
	ck_assert_int_eq(mproc__input_pack(&in), MPROC__TF_FLOATS);
	/* Other inputs go through their generator. */
	const char *strs[] = {"a", NULL};
	mproc_input_cstrs(&in, strs, 2);
	ck_assert_int_eq(mproc__input_pack(&in), 0);
	mproc__buf_free(&b);
	/* So does a generator that wraps a helper (its length unknown, or
	 * claimed): only the helper's own input travels packed. */
	struct mproc_input r, wrapped;
	mproc_input_range(&r, 0, 10, 1);
	ck_assert_int_eq(mproc_input_fn_init(&wrapped, wrap_input, &r), 0);
	ck_assert_int_eq(mproc__input_pack(&wrapped), 0);
	wrapped.has_len = true;
	wrapped.len = 10;
	ck_assert_int_eq(mproc__input_pack(&wrapped), 0);
	/* A copy of a helper's input is the same input, packed the same. */
	struct mproc_input copy = r;
	memset(&r, 0xff, sizeof r);
	ck_assert_int_eq(mproc__input_pack(&copy), MPROC__TF_RANGE);
	range_packs(&copy);
}
END_TEST

/* A range's chunk stops near 1 M tasks however big its chunksize, as a
 * chunk of pickles did: a death leaves at most that many to requeue. */
START_TEST(test_input_range_chunks_are_bounded)
{
	struct mproc__job *job = mproc__job_new(NULL, MPROC__JOB_ORDERED, NULL,
	                                        SIZE_MAX, 0);
	ck_assert_ptr_nonnull(job);
	struct mproc_input in;
	mproc_input_range(&in, 0, INT64_MAX, 1);
	ck_assert_int_eq(mproc__job_set_input(job, &in), 0);
	ck_assert_int_eq(mproc__job_frame_flags(job), MPROC__TF_RANGE);
	struct mproc__buf out = {0};
	size_t got = mproc__job_pull(job, &out, SIZE_MAX, MPROC__FRAME_BUDGET);
	ck_assert_uint_eq(got, MPROC__RANGE_MAX_TASKS);
	ck_assert_uint_eq(out.len, 0); /* no bytes: the frame's record says it */
	ck_assert_uint_eq(mproc__job_pulled(job), got);
	mproc__job_free(job);
}
END_TEST

START_TEST(test_pickle_int_edges_round_trip)
{
	struct mproc_writer *w;
	struct mproc_decoder *d = dec_new(0, 0);
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	for (size_t i = 0; i < sizeof int_edges / sizeof int_edges[0]; i++) {
		mproc_writer_reset(w);
		ck_assert_int_eq(mproc_write_int(w, int_edges[i]), 0);
		const void *p;
		size_t n;
		ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
		const struct mproc_value *v;
		ck_assert_int_eq(mproc_decode(d, p, n, &v), 0);
		int64_t got = 0;
		ck_assert_int_eq(mproc_value_type(v), MPROC_INT);
		ck_assert_int_eq(mproc_value_int(v, &got), 0);
		ck_assert_int_eq(got, int_edges[i]);
	}
	mproc_writer_free(w);
	mproc_decoder_free(d);
}
END_TEST

static void w_ints(struct mproc_writer *w)
{
	mproc_write_tuple_begin(w);
	mproc_write_int(w, 0);
	mproc_write_int(w, 256);
	mproc_write_int(w, -1);
	mproc_write_int(w, INT64_C(1) << 31);
	mproc_write_tuple_end(w);
}

START_TEST(test_pickle_writer_uses_smallest_int_opcodes)
{
	size_t n;
	char *p = written(w_ints, &n);
	/* PROTO 4, BININT1 0, BININT2 256, BININT -1, LONG1 5 bytes 2^31,
	 * then TUPLE (four items) and STOP. */
	static const char want[] = "\x80\x04(K\x00M\x00\x01J\xff\xff\xff\xff"
	                           "\x8a\x05\x00\x00\x00\x80\x00t.";
	ck_assert_uint_eq(n, sizeof want - 1);
	ck_assert_mem_eq(p, want, n);
	free(p);
}
END_TEST

START_TEST(test_pickle_long1_accepts_sign_extension_refuses_65_bits)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	int64_t i;
	/* 0 bytes: zero. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x8a\x00."), &v), 0);
	ck_assert_int_eq(mproc_value_int(v, &i), 0);
	ck_assert_int_eq(i, 0);
	/* -1 in 10 bytes of 0xff. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x8a\x0a\xff\xff\xff\xff"
	                                   "\xff\xff\xff\xff\xff\xff."), &v), 0);
	ck_assert_int_eq(mproc_value_int(v, &i), 0);
	ck_assert_int_eq(i, -1);
	/* INT64_MIN in 9 bytes. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x8a\x09\x00\x00\x00\x00"
	                                   "\x00\x00\x00\x80\xff."), &v), 0);
	ck_assert_int_eq(mproc_value_int(v, &i), 0);
	ck_assert_int_eq(i, INT64_MIN);
	/* LONG4 with 2 bytes: 0x0102. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x8b\x02\x00\x00\x00\x02"
	                                   "\x01."), &v), 0);
	ck_assert_int_eq(mproc_value_int(v, &i), 0);
	ck_assert_int_eq(i, 0x102);
	mproc_decoder_free(d);
	/* 2^63 (9 bytes) and -2^63 - 1 do not fit, nor does 2^64. */
	expect_err(S("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00."),
	           MPROC_EPICKLE_INTRANGE, "64 bits", 2);
	expect_err(S("\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff."),
	           MPROC_EPICKLE_INTRANGE, NULL, 2);
	expect_err(S("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."),
	           MPROC_EPICKLE_INTRANGE, NULL, 2);
	expect_err(S("\x80\x02\x8b\xff\xff\xff\xff."), MPROC_EPICKLE_INVALID,
	           "negative length", 2);
}
END_TEST

static void w_floats(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	mproc_write_float(w, 0.0);
	mproc_write_float(w, -0.0);
	mproc_write_float(w, NAN);
	mproc_write_float(w, INFINITY);
	mproc_write_float(w, -INFINITY);
	mproc_write_float(w, 1.5);
	mproc_write_float(w, 5e-324);
	mproc_write_list_end(w);
}

START_TEST(test_pickle_float_edges_round_trip_with_sign)
{
	size_t n;
	char *p = written(w_floats, &n);
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v, *it;
	ck_assert_int_eq(mproc_decode(d, p, n, &v), 0);
	size_t len;
	ck_assert_int_eq(mproc_value_len(v, &len), 0);
	ck_assert_uint_eq(len, 7);
	double f[7];
	for (size_t i = 0; i < 7; i++) {
		ck_assert_int_eq(mproc_value_item(v, i, &it), 0);
		ck_assert_int_eq(mproc_value_type(it), MPROC_FLOAT);
		ck_assert_int_eq(mproc_value_float(it, &f[i]), 0);
	}
	ck_assert(f[0] == 0.0 && !signbit(f[0]));
	ck_assert(f[1] == 0.0 && signbit(f[1]));
	ck_assert(isnan(f[2]));
	ck_assert(isinf(f[3]) && f[3] > 0);
	ck_assert(isinf(f[4]) && f[4] < 0);
	ck_assert(f[5] == 1.5);
	ck_assert(f[6] == 5e-324);
	/* BINFLOAT is big-endian: 1.5 is 3f f8 00.. */
	ck_assert(memmem(p, n, "G\x3f\xf8\x00\x00\x00\x00\x00\x00", 9));
	mproc_decoder_free(d);
	free(p);
}
END_TEST

static void w_strs(struct mproc_writer *w)
{
	static char big[70000];
	memset(big, 'x', sizeof big);
	mproc_write_tuple_begin(w);
	mproc_write_cstr(w, "");
	mproc_write_cstr(w, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
	mproc_write_bytes(w, "", 0);
	mproc_write_bytes(w, "a\0b", 3);
	mproc_write_str(w, big, sizeof big);
	mproc_write_none(w);
	mproc_write_bool(w, true);
	mproc_write_bool(w, false);
	mproc_write_tuple_end(w);
}

START_TEST(test_pickle_str_bytes_none_bool_round_trip)
{
	size_t n;
	char *p = written(w_strs, &n);
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v, *it;
	ck_assert_int_eq(mproc_decode(d, p, n, &v), 0);
	const char *s;
	const void *b;
	size_t len;
	bool t;
	ck_assert_int_eq(mproc_value_item(v, 0, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(mproc_value_item(v, 1, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &len), 0);
	ck_assert_uint_eq(len, strlen("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
	ck_assert_mem_eq(s, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", len);
	/* str and bytes point into the message. */
	ck_assert(s > p && s < p + n);
	ck_assert_int_eq(mproc_value_item(v, 2, &it), 0);
	ck_assert_int_eq(mproc_value_bytes(it, &b, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(mproc_value_item(v, 3, &it), 0);
	ck_assert_int_eq(mproc_value_bytes(it, &b, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(b, "a\0b", 3);
	ck_assert_int_eq(mproc_value_item(v, 4, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &len), 0);
	ck_assert_uint_eq(len, 70000);
	ck_assert_int_eq(mproc_value_item(v, 5, &it), 0);
	ck_assert(mproc_value_is_none(it));
	ck_assert_int_eq(mproc_value_item(v, 6, &it), 0);
	ck_assert_int_eq(mproc_value_bool(it, &t), 0);
	ck_assert(t);
	ck_assert_int_eq(mproc_value_item(v, 7, &it), 0);
	ck_assert_int_eq(mproc_value_bool(it, &t), 0);
	ck_assert(!t);
	ck_assert_int_eq(mproc_value_item(v, 8, &it), MPROC_EINDEX);
	mproc_decoder_free(d);
	free(p);
}
END_TEST

START_TEST(test_pickle_16mib_bytes_decode_points_into_message)
{
	size_t n = (size_t)16 << 20;
	char *msg = malloc(n + 16);
	memcpy(msg, "\x80\x05\x8e", 3);
	uint64_t le = n; /* little-endian machine assumed by the literal */
	for (int i = 0; i < 8; i++)
		msg[3 + i] = (char)(le >> (8 * i));
	memset(msg + 11, 'z', n);
	msg[11 + n] = '.';
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, msg, n + 12, &v), 0);
	const void *b;
	size_t len;
	ck_assert_int_eq(mproc_value_bytes(v, &b, &len), 0);
	ck_assert_ptr_eq(b, msg + 11);
	ck_assert_uint_eq(len, n);
	mproc_decoder_free(d);
	free(msg);
}
END_TEST

/* ---- Python's own pickles ----------------------------------------------- */

static void check_sample(const struct mproc_value *v, bool shared)
{
	const struct mproc_value *a, *b, *it, *k, *val, *x;
	size_t n;
	int64_t i;
	double f;
	const char *s;
	const void *p;
	ck_assert_int_eq(mproc_value_type(v), MPROC_DICT);
	ck_assert_int_eq(mproc_value_len(v, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(mproc_value_dict_get(v, "a", &a), 0);
	ck_assert_int_eq(mproc_value_type(a), MPROC_LIST);
	ck_assert_int_eq(mproc_value_len(a, &n), 0);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(mproc_value_item(a, 1, &it), 0);
	ck_assert_int_eq(mproc_value_int(it, &i), 0);
	ck_assert_int_eq(i, -2);
	ck_assert_int_eq(mproc_value_item(a, 2, &it), 0);
	ck_assert_int_eq(mproc_value_float(it, &f), 0);
	ck_assert(f == 3.5);
	ck_assert_int_eq(mproc_value_dict_get(v, "b", &b), 0);
	ck_assert_int_eq(mproc_value_type(b), MPROC_TUPLE);
	ck_assert_int_eq(mproc_value_item(b, 0, &it), 0);
	ck_assert_int_eq(mproc_value_bytes(it, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_mem_eq(p, "xy", 2);
	ck_assert_int_eq(mproc_value_item(b, 1, &it), 0);
	ck_assert_int_eq(mproc_value_bytes(it, &p, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mproc_value_item(b, 2, &it), 0);
	ck_assert_int_eq(mproc_value_type(it), MPROC_SET);
	ck_assert_int_eq(mproc_value_len(it, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(mproc_value_item(b, 3, &it), 0);
	ck_assert_int_eq(mproc_value_type(it), MPROC_FROZENSET);
	ck_assert_int_eq(mproc_value_item(it, 0, &x), 0);
	ck_assert_int_eq(mproc_value_type(x), MPROC_TUPLE);
	ck_assert_int_eq(mproc_value_item(b, 4, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &n), 0);
	ck_assert_uint_eq(n, 6);
	ck_assert_mem_eq(s, "h\xc3\xa9\xe2\x82\xac", 6);
	/* The tuple key (1, 'k') holds a list with the same list twice. */
	ck_assert_int_eq(mproc_value_dict_entry(v, 2, &k, &val), 0);
	ck_assert_int_eq(mproc_value_type(k), MPROC_TUPLE);
	ck_assert_int_eq(mproc_value_item(val, 0, &it), 0);
	ck_assert_int_eq(mproc_value_item(val, 1, &x), 0);
	/* Python's memo shares it; a re-encoding (no memo) copies it. */
	if (shared)
		ck_assert_ptr_eq(it, x);
	ck_assert_int_eq(mproc_value_type(x), MPROC_LIST);
	ck_assert_int_eq(mproc_value_dict_get(v, "big", &it), 0);
	ck_assert_int_eq(mproc_value_int(it, &i), 0);
	ck_assert_int_eq(i, INT64_C(1) << 40);
	ck_assert_int_eq(mproc_value_dict_get(v, "neg", &it), 0);
	ck_assert_int_eq(mproc_value_int(it, &i), 0);
	ck_assert_int_eq(i, -(INT64_C(1) << 31) - 1);
}

static const struct {
	const char *p;
	size_t n;
} samples[] = {
	{S(sample_p2)}, {S(sample_p3)}, {S(sample_p4)}, {S(sample_p5)},
};

START_TEST(test_pickle_decoder_reads_cpython_protocols_2_to_5)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	int rc = mproc_decode(d, samples[_i].p, samples[_i].n, &v);
	ck_assert_msg(rc == 0, "protocol %d: %s", _i + 2,
	              mproc_decoder_error(d));
	ck_assert_str_eq(mproc_decoder_error(d), "");
	check_sample(v, true);
	/* Re-encoding gives a pickle that decodes to the same thing. */
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 0), 0);
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	struct mproc_decoder *d2 = dec_new(0, 0);
	ck_assert_int_eq(mproc_decode(d2, p, n, &v), 0);
	check_sample(v, false);
	mproc_writer_free(w);
	mproc_decoder_free(d2);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_truncated_at_every_offset_is_an_error)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
		for (size_t cut = 0; cut < samples[s].n; cut++) {
			/* A copy of exactly `cut` bytes, so ASan sees any
			 * read past the end. */
			char *m = malloc(cut ? cut : 1);
			memcpy(m, samples[s].p, cut);
			int rc = mproc_decode(d, m, cut, &v);
			ck_assert_msg(rc == MPROC_EPICKLE_TRUNCATED ||
			              rc == MPROC_EPICKLE_INVALID,
			              "sample %zu cut at %zu: %s", s, cut,
			              mproc_err_name(rc));
			ck_assert_str_ne(mproc_decoder_error(d), "");
			free(m);
		}
	}
	/* Missing STOP is TRUNCATED, at the end of the data (protocol 2: no
	 * FRAME, which would be found too long first). */
	int rc = mproc_decode(d, samples[0].p, samples[0].n - 1, &v);
	ck_assert_int_eq(rc, MPROC_EPICKLE_TRUNCATED);
	ck_assert_uint_eq(mproc_decoder_error_offset(d), samples[0].n - 1);
	rc = mproc_decode(d, samples[3].p, samples[3].n - 1, &v);
	ck_assert_int_eq(rc, MPROC_EPICKLE_TRUNCATED);
	ck_assert_ptr_nonnull(strstr(mproc_decoder_error(d), "FRAME"));
	mproc_decoder_free(d);
}
END_TEST

/* ---- refused opcodes ---------------------------------------------------- */

static const struct {
	unsigned char op;
	const char *name;
} refused[] = {
	{0x63, "GLOBAL"}, {0x93, "STACK_GLOBAL"}, {0x52, "REDUCE"},
	{0x62, "BUILD"}, {0x69, "INST"}, {0x6f, "OBJ"}, {0x81, "NEWOBJ"},
	{0x92, "NEWOBJ_EX"}, {0x50, "PERSID"}, {0x51, "BINPERSID"},
	{0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x49, "INT"},
	{0x4c, "LONG"}, {0x46, "FLOAT"}, {0x53, "STRING"},
	{0x54, "BINSTRING"}, {0x55, "SHORT_BINSTRING"}, {0x56, "UNICODE"},
	{0x67, "GET"}, {0x70, "PUT"},
	/* BYTEARRAY8, NEXT_BUFFER and READONLY_BUFFER are read since
	 * out-of-band buffers came (test_pickle_oob.c). */
};

START_TEST(test_pickle_decoder_refuses_opcode_with_name_and_offset)
{
	/* Put a harmless prefix first so that the offset is not trivial. */
	char msg[32] = "\x80\x04N0N0";
	msg[6] = (char)refused[_i].op;
	/* GLOBAL needs a name to get to the refusal; others refuse first. */
	size_t n = 7;
	if (refused[_i].op == 0x63) {
		memcpy(msg + 7, "os\nsystem\n.", 11);
		n = 18;
	} else if (refused[_i].op == 0x52) {
		/* REDUCE on two plain values: not an accepted call. */
		memcpy(msg + 6, "N)R.", 4);
		n = 10;
	} else {
		msg[7] = '.';
		n = 8;
	}
	char want[96];
	size_t off = refused[_i].op == 0x52 ? 8 : 6;
	snprintf(want, sizeof want, "opcode %s (0x%02x) refused at offset %zu",
	         refused[_i].name, refused[_i].op, off);
	expect_err(msg, n, MPROC_EPICKLE_OPCODE, want, off);
}
END_TEST

START_TEST(test_pickle_decoder_refuses_unknown_opcode_with_offset)
{
	expect_err(S("\x80\x04N\xff."), MPROC_EPICKLE_OPCODE,
	           "unknown opcode 0xff at offset 3", 3);
	expect_err(S("\x80\x04\x99."), MPROC_EPICKLE_OPCODE,
	           "unknown opcode 0x99 at offset 2", 2);
}
END_TEST

START_TEST(test_pickle_decoder_refuses_global_with_offset_and_name)
{
	/* pickle.dumps of os.system at protocol 2 */
	expect_err(S("\x80\x02\x63os\nsystem\nq\x00."), MPROC_EPICKLE_OPCODE,
	           "opcode GLOBAL (0x63) refused at offset 2: os.system", 2);
	/* A class instance at protocol 2: copyreg._reconstructor. */
	expect_err(S("\x80\x02\x63\x63opyreg\n_reconstructor\nq\x00."),
	           MPROC_EPICKLE_OPCODE, "copyreg._reconstructor", 2);
	/* Similar-looking names are not the accepted ones. */
	expect_err(S("\x80\x02\x63\x62uiltins\neval\n."), MPROC_EPICKLE_OPCODE,
	           "builtins.eval", 2);
	expect_err(S("\x80\x02\x63_codecs\ndecode\n."), MPROC_EPICKLE_OPCODE,
	           "_codecs.decode", 2);
	expect_err(S("\x80\x02\x63\x62uiltins\nset \n."), MPROC_EPICKLE_OPCODE,
	           "GLOBAL", 2);
	/* Unterminated name: ran out of bytes. */
	expect_err(S("\x80\x02\x63os\nsys"), MPROC_EPICKLE_TRUNCATED, "GLOBAL",
	           2);
}
END_TEST

START_TEST(test_pickle_protocol2_reduce_builds_bytes_set_frozenset)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	const void *p;
	size_t n;
	/* pickle.dumps(b'\xff\x00A', 2) */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x63_codecs\nencode\nq\x00"
	                                   "X\x04\x00\x00\x00\xc3\xbf\x00"
	                                   "Aq\x01X\x06\x00\x00\x00latin1q"
	                                   "\x02\x86q\x03Rq\x04."), &v), 0);
	ck_assert_int_eq(mproc_value_bytes(v, &p, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(p, "\xff\x00" "A", 3);
	/* pickle.dumps(b'', 2) */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x63__builtin__\nbytes\n"
	                                   "q\x00)Rq\x01."), &v), 0);
	ck_assert_int_eq(mproc_value_bytes(v, &p, &n), 0);
	ck_assert_uint_eq(n, 0);
	/* set() and frozenset([1]) with the builtins spelling (protocol 3) */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x03\x63\x62uiltins\nset\n"
	                                   "q\x00]q\x01\x85q\x02Rq\x03."), &v), 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_SET);
	ck_assert_int_eq(mproc_value_len(v, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x03\x63\x62uiltins\nfrozenset"
	                                   "\nq\x00]q\x01K\x01\x61\x85q\x02R."),
	                              &v), 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_FROZENSET);
	ck_assert_int_eq(mproc_value_len(v, &n), 0);
	ck_assert_uint_eq(n, 1);
	/* set with no arguments at all */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x63__builtin__\nset\n)R."),
	                              &v), 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_SET);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_reduce_refuses_other_calls_of_accepted_globals)
{
	/* encode with another codec */
	expect_err(S("\x80\x02\x63_codecs\nencode\nX\x01\x00\x00\x00\x61"
	             "X\x05\x00\x00\x00utf-8\x86R."),
	           MPROC_EPICKLE_OPCODE, "REDUCE (0x52) refused at offset 35", 35);
	/* latin1 of a code point past U+00FF */
	expect_err(S("\x80\x02\x63_codecs\nencode\nX\x03\x00\x00\x00\xe2\x82"
	             "\xacX\x06\x00\x00\x00latin1\x86R."),
	           MPROC_EPICKLE_INVALID, "U+00FF", SIZE_MAX);
	/* bytes(5) */
	expect_err(S("\x80\x02\x63__builtin__\nbytes\nK\x05\x85R."),
	           MPROC_EPICKLE_OPCODE, "builtins.bytes", SIZE_MAX);
	/* set of a list of lists: unhashable items */
	expect_err(S("\x80\x02\x63__builtin__\nset\n](]e\x85R."),
	           MPROC_EPICKLE_INVALID, "unhashable", SIZE_MAX);
	/* set('ab'): a str argument */
	expect_err(S("\x80\x02\x63__builtin__\nset\nX\x02\x00\x00\x00\x61\x62"
	             "\x85R."), MPROC_EPICKLE_OPCODE, "REDUCE", SIZE_MAX);
	/* the global itself as a value, or as a container item */
	expect_err(S("\x80\x02\x63__builtin__\nset\n."), MPROC_EPICKLE_OPCODE,
	           "builtins.set", 2);
	expect_err(S("\x80\x02\x63__builtin__\nset\n\x85."), MPROC_EPICKLE_OPCODE,
	           "used as a value", 2);
	/* REDUCE of a global fetched back from the memo works, of a str not */
	expect_err(S("\x80\x02N)R."), MPROC_EPICKLE_OPCODE,
	           "opcode REDUCE (0x52) refused at offset 4", 4);
}
END_TEST

START_TEST(test_pickle_memoized_global_can_be_called_again)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02(\x63__builtin__\nset\nq"
	                                   "\x00)Rh\x00)Rt."), &v), 0);
	size_t n;
	ck_assert_int_eq(mproc_value_len(v, &n), 0);
	ck_assert_uint_eq(n, 2);
	mproc_decoder_free(d);
}
END_TEST

/*
 * CPython's Unpickler.find_class maps the Python 2 module __builtin__ to
 * builtins only below protocol 3 (fix_imports, pickle.loads's default);
 * from protocol 3 on it imports "__builtin__" as named and fails with
 * ModuleNotFoundError. The protocol is the last PROTO read, 0 without one.
 */
static const struct {
	const char *name; /* GLOBAL __builtin__ <name> */
	const char *args; /* then these opcodes, REDUCE, STOP */
	int type;
} builtin_calls[] = {
	{"set", "]K\x01\x61\x85", MPROC_SET},
	{"frozenset", "]K\x01\x61\x85", MPROC_FROZENSET},
	{"bytes", ")", MPROC_BYTES},
};

/* PROTO proto (none when proto < 0), GLOBAL mod name, args, REDUCE, STOP */
static size_t call_msg(char *buf, size_t cap, int proto, const char *mod,
                       const char *name, const char *args)
{
	int n = proto < 0 ? snprintf(buf, cap, "c%s\n%s\n%sR.", mod, name, args)
	                  : snprintf(buf, cap, "\x80%cc%s\n%s\n%sR.",
	                             proto, mod, name, args);
	ck_assert(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

START_TEST(test_pickle_builtin_names_refused_from_protocol_3)
{
	/* _i walks protocols 3-5 times the three names */
	int proto = 3 + _i / 3;
	char msg[64], want[64];
	size_t n = call_msg(msg, sizeof msg, proto, "__builtin__",
	                    builtin_calls[_i % 3].name,
	                    builtin_calls[_i % 3].args);
	snprintf(want, sizeof want, "refused at offset 2: __builtin__.%s",
	         builtin_calls[_i % 3].name);
	expect_err(msg, n, MPROC_EPICKLE_OPCODE, want, 2);
	expect_err(msg, n, MPROC_EPICKLE_OPCODE, "below protocol 3", 2);
}
END_TEST

START_TEST(test_pickle_builtin_names_read_below_protocol_3_and_without_proto)
{
	/* _i walks no PROTO, protocols 0-2, times the three names */
	int proto = _i / 3 - 1;
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	char msg[64];
	size_t n = call_msg(msg, sizeof msg, proto, "__builtin__",
	                    builtin_calls[_i % 3].name,
	                    builtin_calls[_i % 3].args);
	ck_assert_msg(mproc_decode(d, msg, n, &v) == 0, "protocol %d: %s",
	              proto, mproc_decoder_error(d));
	ck_assert_int_eq(mproc_value_type(v), builtin_calls[_i % 3].type);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_builtins_and_codecs_names_read_at_every_protocol)
{
	/* _i walks no PROTO and protocols 0-5 */
	int proto = _i - 1;
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	char msg[64];
	size_t n;
	for (size_t k = 0; k < 3; k++) {
		n = call_msg(msg, sizeof msg, proto, "builtins",
		             builtin_calls[k].name, builtin_calls[k].args);
		ck_assert_msg(mproc_decode(d, msg, n, &v) == 0,
		              "protocol %d: %s", proto, mproc_decoder_error(d));
		ck_assert_int_eq(mproc_value_type(v), builtin_calls[k].type);
	}
	/* _codecs.encode('\xff', 'latin1'), as protocol 2 writes b'\xff'
	 * (its length fields hold NUL bytes: not for call_msg) */
	static const char enc[] = "c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbf"
	                          "X\x06\x00\x00\x00latin1\x86R.";
	n = 0;
	if (proto >= 0) {
		msg[n++] = '\x80';
		msg[n++] = (char)proto;
	}
	memcpy(msg + n, enc, sizeof enc - 1);
	n += sizeof enc - 1;
	const void *p;
	size_t len;
	ck_assert_msg(mproc_decode(d, msg, n, &v) == 0, "protocol %d: %s",
	              proto, mproc_decoder_error(d));
	ck_assert_int_eq(mproc_value_bytes(v, &p, &len), 0);
	ck_assert_uint_eq(len, 1);
	ck_assert_mem_eq(p, "\xff", 1);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_builtin_name_follows_the_last_proto_opcode)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	/* The name is resolved at its GLOBAL: a later PROTO 3 changes
	 * nothing for it, even when it is fetched back from the memo. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x63__builtin__\nset\n"
	                                   "\x80\x03)R."), &v), 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_SET);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x02\x63__builtin__\nset\nq"
	                                   "\x00" "0\x80\x03h\x00)R."), &v), 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_SET);
	/* A PROTO 2 after a PROTO 3 is what counts. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x03\x80\x02\x63__builtin__\n"
	                                   "set\n)R."), &v), 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_SET);
	mproc_decoder_free(d);
	/* A second GLOBAL after PROTO 3 is refused, at its own offset. */
	expect_err(S("\x80\x02\x63__builtin__\nset\n)R\x80\x03\x63__builtin__"
	             "\nset\n)R\x86."),
	           MPROC_EPICKLE_OPCODE,
	           "opcode GLOBAL (0x63) refused at offset 23: __builtin__.set",
	           23);
	/* The protocol of one message does not carry over to the next. */
	d = dec_new(0, 0);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04N."), &v), 0);
	ck_assert_int_eq(mproc_decode(d, S("\x63__builtin__\nset\n)R."), &v),
	                 0);
	ck_assert_int_eq(mproc_value_type(v), MPROC_SET);
	mproc_decoder_free(d);
}
END_TEST

/* ---- malformed input ---------------------------------------------------- */

START_TEST(test_pickle_huge_length_fields_are_truncation_not_reads)
{
	expect_err(S("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f" "abc."),
	           MPROC_EPICKLE_TRUNCATED, "BINUNICODE8", 2);
	expect_err(S("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff" "abc."),
	           MPROC_EPICKLE_TRUNCATED, "BINBYTES8", 2);
	expect_err(S("\x80\x04\x42\xff\xff\xff\xff" "abc."),
	           MPROC_EPICKLE_TRUNCATED, "BINBYTES", 2);
	expect_err(S("\x80\x04X\x05\x00\x00\x00" "abc."),
	           MPROC_EPICKLE_TRUNCATED, "needs 5 bytes, 4 left", 2);
	expect_err(S("\x80\x04\x8c\x09" "abc."), MPROC_EPICKLE_TRUNCATED,
	           "SHORT_BINUNICODE", 2);
	expect_err(S("\x80\x04\x95\xff\xff\xff\xff\x00\x00\x00\x00N."),
	           MPROC_EPICKLE_TRUNCATED, "FRAME", 2);
	expect_err(S("\x80\x04\x8a\xff\x01."), MPROC_EPICKLE_TRUNCATED,
	           "LONG1", 2);
	expect_err(S("\x80\x04G\x00\x00."), MPROC_EPICKLE_TRUNCATED,
	           "BINFLOAT", 2);
}
END_TEST

START_TEST(test_pickle_stack_and_stop_errors)
{
	expect_err("", 0, MPROC_EPICKLE_TRUNCATED, "no STOP", 0);
	expect_err(S("."), MPROC_EPICKLE_INVALID, "STOP", 0);
	expect_err(S("\x80\x04NN."), MPROC_EPICKLE_INVALID, "2 values", 4);
	expect_err(S("\x80\x04(N."), MPROC_EPICKLE_INVALID, "MARK", 4);
	expect_err(S("\x80\x04N.N"), MPROC_EPICKLE_INVALID, "after STOP", 3);
	expect_err(S("\x80\x04\x85."), MPROC_EPICKLE_INVALID, "underflow", 2);
	expect_err(S("\x80\x04N(\x86."), MPROC_EPICKLE_INVALID, "underflow", 4);
	expect_err(S("\x80\x04Na."), MPROC_EPICKLE_INVALID, "underflow", 3);
	expect_err(S("\x80\x04NNa."), MPROC_EPICKLE_INVALID, "NoneType", 4);
	expect_err(S("\x80\x04t."), MPROC_EPICKLE_INVALID, "no MARK", 2);
	expect_err(S("\x80\x04" "e."), MPROC_EPICKLE_INVALID, "no MARK", 2);
	expect_err(S("\x80\x04(e."), MPROC_EPICKLE_INVALID, "underflow", 3);
	expect_err(S("\x80\x04\x31."), MPROC_EPICKLE_INVALID, "POP_MARK", 2);
	expect_err(S("\x80\x04\x30."), MPROC_EPICKLE_INVALID, "underflow", 2);
	expect_err(S("\x80\x04\x32."), MPROC_EPICKLE_INVALID, "underflow", 2);
	expect_err(S("\x80\x04\x94."), MPROC_EPICKLE_INVALID, "underflow", 2);
	expect_err(S("\x80\x06N."), MPROC_EPICKLE_INVALID, "protocol 6", 0);
	expect_err(S("\x80\x04}K\x01u."), MPROC_EPICKLE_INVALID, "MARK", 5);
	expect_err(S("\x80\x04}(K\x01u."), MPROC_EPICKLE_INVALID, "odd", 6);
	expect_err(S("\x80\x04](K\x01u."), MPROC_EPICKLE_INVALID, "list", 6);
	/* APPENDS, SETITEMS, ADDITEMS with no items (found by the fuzzer:
	 * arithmetic on the empty container's NULL item array). */
	struct mproc_decoder *d0 = dec_new(0, 0);
	const struct mproc_value *v0;
	ck_assert_int_eq(mproc_decode(d0, S("\x80\x04](e."), &v0), 0);
	ck_assert_int_eq(mproc_decode(d0, S("\x80\x04}(u."), &v0), 0);
	ck_assert_int_eq(mproc_decode(d0, S("\x80\x04\x8f(\x90."), &v0), 0);
	ck_assert_int_eq(mproc_decode(d0, S("\x80\x05\x95\x13\x00\x00\x00"
	                                    "\x00\x00\x00\x00]\x94(]\x94("
	                                    "eKh\x01h\x02\x01K\x01\x84\x94"
	                                    "e\xe5"), &v0),
	                 MPROC_EPICKLE_OPCODE); /* 0x01 at offset 20 */
	ck_assert_uint_eq(mproc_decoder_error_offset(d0), 20);
	mproc_decoder_free(d0);
	/* Container opcodes on a fresh decoder (no stack grown yet) and with
	 * a MARK on a full stack: the result still needs a free slot. */
	for (size_t fill = 0; fill < 1100; fill++) {
		char *m = malloc(fill + 8);
		size_t n = 0;
		m[n++] = '\x80';
		m[n++] = 4;
		m[n++] = '(';
		memset(m + n, 'N', fill);
		n += fill;
		m[n++] = '(';
		m[n++] = 't';
		m[n++] = 't';
		m[n++] = '.';
		struct mproc_decoder *df = dec_new(0, 0);
		ck_assert_int_eq(mproc_decode(df, m, n, &v0), 0);
		ck_assert_int_eq(mproc_value_len(v0, &n), 0);
		ck_assert_uint_eq(n, fill + 1);
		mproc_decoder_free(df);
		free(m);
	}
	/* POP right after MARK drops the MARK, as in CPython. */
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04N(0."), &v), 0);
	ck_assert(mproc_value_is_none(v));
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04N(NN1."), &v), 0);
	ck_assert_int_eq(mproc_decode(d, S("N."), &v), 0); /* no PROTO */
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_decoder_refuses_invalid_utf8)
{
	expect_err(S("\x80\x04\x8c\x02\xc3(."), MPROC_EPICKLE_UTF8, "UTF-8", 2);
	/* overlong '/' */
	expect_err(S("\x80\x04\x8c\x02\xc0\xaf."), MPROC_EPICKLE_UTF8, NULL, 2);
	/* lone surrogate U+D800 as Python's surrogatepass writes it */
	expect_err(S("\x80\x04N0\x8c\x03\xed\xa0\x80."), MPROC_EPICKLE_UTF8,
	           NULL, 4);
	/* past U+10FFFF */
	expect_err(S("\x80\x04\x8c\x04\xf4\x90\x80\x80."), MPROC_EPICKLE_UTF8,
	           NULL, 2);
	/* cut in the middle of a sequence */
	expect_err(S("\x80\x04\x8c\x02\xe2\x82."), MPROC_EPICKLE_UTF8, NULL, 2);
	/* bytes are not text: no check */
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04\x43\x02\xed\xa0."), &v), 0);
	mproc_decoder_free(d);
}
END_TEST

/* A message of `depth` nested lists, the innermost empty, as Python writes
 * with MARK/APPENDS; caller frees. */
static char *nested_lists(unsigned depth, size_t *len)
{
	char *m = malloc(4 + 3 * (size_t)depth);
	size_t n = 0;
	m[n++] = '\x80';
	m[n++] = 4;
	for (unsigned i = 0; i < depth; i++) {
		m[n++] = ']';
		if (i + 1 < depth)
			m[n++] = '(';
	}
	for (unsigned i = 0; i + 1 < depth; i++)
		m[n++] = 'e';
	m[n++] = '.';
	*len = n;
	return m;
}

START_TEST(test_pickle_depth_limit_default_and_custom)
{
	size_t n;
	const struct mproc_value *v;
	struct mproc_decoder *d = dec_new(0, 0);
	char *m = nested_lists(1000, &n);
	ck_assert_int_eq(mproc_decode(d, m, n, &v), 0);
	free(m);
	m = nested_lists(1001, &n);
	ck_assert_int_eq(mproc_decode(d, m, n, &v), MPROC_EPICKLE_DEPTH);
	ck_assert_ptr_nonnull(strstr(mproc_decoder_error(d), "deeper than 1000"));
	free(m);
	mproc_decoder_free(d);

	d = dec_new(0, 3);
	m = nested_lists(3, &n);
	ck_assert_int_eq(mproc_decode(d, m, n, &v), 0);
	free(m);
	m = nested_lists(4, &n);
	ck_assert_int_eq(mproc_decode(d, m, n, &v), MPROC_EPICKLE_DEPTH);
	free(m);
	/* Nested tuples built by TUPLE1 (no MARK) are limited too. */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04)\x85\x85\x85."), &v),
	                 MPROC_EPICKLE_DEPTH);
	/* and so are MARKs, even with nothing built yet */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04((((N."), &v),
	                 MPROC_EPICKLE_DEPTH);
	mproc_decoder_free(d);

	/* A million MARKs or TUPLE1s: an error, not a stack overflow. */
	size_t big = 1000000;
	m = malloc(big + 3);
	memcpy(m, "\x80\x04", 2);
	memset(m + 2, '(', big);
	m[big + 2] = '.';
	expect_err(m, big + 3, MPROC_EPICKLE_DEPTH, "MARK", 1002);
	m[2] = ')';
	memset(m + 3, '\x85', big - 1);
	expect_err(m, big + 3, MPROC_EPICKLE_DEPTH, NULL, 1002);
	free(m);
}
END_TEST

START_TEST(test_pickle_size_limit_refuses_before_reading)
{
	struct mproc_decoder *d = dec_new(8, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04K\x01."), &v), 0);
	/* 9 bytes of anything: never read. */
	ck_assert_int_eq(mproc_decode(d, S("\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
	                              &v), MPROC_EPICKLE_TOOBIG);
	ck_assert_ptr_nonnull(strstr(mproc_decoder_error(d), "limit of 8"));
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_memo_expansion_bomb_is_too_big)
{
	/* Each level is a list holding the previous level twice: 2^60
	 * leaves from 400 bytes. Written out without memo, that is far past
	 * any size limit, so the decoder refuses it. */
	char m[1024];
	size_t n = 0;
	m[n++] = '\x80';
	m[n++] = 4;
	m[n++] = 'N';
	for (int i = 0; i < 60; i++) {
		m[n++] = '\x94';        /* MEMOIZE the previous level as i */
		m[n++] = '0';           /* POP */
		m[n++] = ']';           /* new list */
		m[n++] = 'h';
		m[n++] = (char)i;       /* BINGET i */
		m[n++] = 'h';
		m[n++] = (char)i;       /* BINGET i */
		m[n++] = '\x86';        /* pair them */
		m[n++] = 'e' - 'e' + 'a'; /* APPEND the pair */
	}
	m[n++] = '.';
	expect_err(m, n, MPROC_EPICKLE_TOOBIG, "without memo", n - 1);
}
END_TEST

START_TEST(test_pickle_memo_index_bomb_is_refused_without_allocating)
{
	/* LONG_BINPUT 4e9 on a 10-byte message */
	expect_err(S("\x80\x04Nr\x00\x28\x6b\xeeN0."), MPROC_EPICKLE_INVALID,
	           "memo index", 3);
	expect_err(S("\x80\x04Nq\x09."), MPROC_EPICKLE_INVALID, "memo index", 3);
	expect_err(S("\x80\x04h\x00."), MPROC_EPICKLE_INVALID, "memo key 0", 2);
	expect_err(S("\x80\x04j\x00\x00\x00\x01."), MPROC_EPICKLE_INVALID,
	           "not found", 2);
	/* within the length it works, and BINGET finds it */
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04K\x07q\x06\x30h\x06."), &v),
	                 0);
	int64_t i;
	ck_assert_int_eq(mproc_value_int(v, &i), 0);
	ck_assert_int_eq(i, 7);
	/* the memo does not survive into the next message */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04h\x06."), &v),
	                 MPROC_EPICKLE_INVALID);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_recursive_structure_is_refused)
{
	/* l = []; l.append(l) */
	expect_err(S("\x80\x04]\x94h\x00\x61."), MPROC_EPICKLE_INVALID,
	           "recursive structure", 6);
	/* l = []; t = (l,); l.append(t): l is frozen once inside t */
	expect_err(S("\x80\x04]\x94h\x00\x85\x61."), MPROC_EPICKLE_INVALID,
	           "recursive structure", 7);
	/* d = {}; d['k'] = [d] */
	expect_err(S("\x80\x04}\x94\x8c\x01k]h\x00\x61s."),
	           MPROC_EPICKLE_INVALID, "recursive structure", 11);
	/* s = set(); ... ADDITEMS after s went into a tuple */
	expect_err(S("\x80\x04\x8f\x94\x85h\x00(K\x01\x90."),
	           MPROC_EPICKLE_INVALID, "recursive structure", 10);
	/* sharing without a cycle is fine */
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04]\x94h\x00\x86."), &v), 0);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_unhashable_keys_and_items_are_refused)
{
	expect_err(S("\x80\x04}]K\x01s."), MPROC_EPICKLE_INVALID,
	           "unhashable list used as a dict key", 6);
	expect_err(S("\x80\x04}(]\x85K\x01u."), MPROC_EPICKLE_INVALID,
	           "unhashable tuple", 8);
	expect_err(S("\x80\x04\x8f(}\x90."), MPROC_EPICKLE_INVALID,
	           "unhashable dict used as a set item", 5);
	expect_err(S("\x80\x04(\x8f\x91."), MPROC_EPICKLE_INVALID,
	           "unhashable set", 4);
	/* hashable values: tuple and frozenset of scalars as keys */
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04}(K\x01K\x02\x86K\x03(K\x04"
	                                   "\x91N\x88\x89u."), &v), 0);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_duplicate_dict_keys_kept_last_wins)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v, *x, *k;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04}(\x8c\x01kK\x01\x8c\x01"
	                                   "kK\x02K\x05K\x06u."), &v), 0);
	size_t n;
	int64_t i;
	ck_assert_int_eq(mproc_value_len(v, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(mproc_value_dict_get(v, "k", &x), 0);
	ck_assert_int_eq(mproc_value_int(x, &i), 0);
	ck_assert_int_eq(i, 2);
	ck_assert_int_eq(mproc_value_dict_get(v, "nope", &x), -ENOENT);
	ck_assert_int_eq(mproc_value_dict_entry(v, 2, &k, &x), 0);
	ck_assert_int_eq(mproc_value_int(k, &i), 0);
	ck_assert_int_eq(i, 5);
	ck_assert_int_eq(mproc_value_dict_entry(v, 3, &k, &x), MPROC_EINDEX);
	mproc_decoder_free(d);
}
END_TEST

/* ---- accessors ---------------------------------------------------------- */

START_TEST(test_pickle_accessors_check_type_and_index)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v, *it = (void *)1;
	ck_assert_int_eq(mproc_decode(d, S("\x80\x04(K\x05\x8c\x01sNt."), &v),
	                 0);
	int64_t i = 42;
	double f = 0;
	bool b = true;
	const char *s = NULL;
	const void *p = NULL;
	size_t n = 99;
	ck_assert_int_eq(mproc_value_int(v, &i), MPROC_ETYPE);
	ck_assert_int_eq(i, 42);
	ck_assert_int_eq(mproc_value_bool(v, &b), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_str(v, &s, &n), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_bytes(v, &p, &n), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_dict_get(v, "x", &it), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_dict_entry(v, 0, &it, &it), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_item(v, 3, &it), MPROC_EINDEX);
	ck_assert_int_eq(mproc_value_item(v, SIZE_MAX, &it), MPROC_EINDEX);
	ck_assert_ptr_eq(it, (void *)1);
	ck_assert_int_eq(mproc_value_item(v, 0, &it), 0);
	ck_assert_int_eq(mproc_value_len(it, &n), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_item(it, 0, &it), MPROC_ETYPE);
	/* float() of an int converts, like Python */
	ck_assert_int_eq(mproc_value_float(it, &f), 0);
	ck_assert(f == 5.0);
	ck_assert_int_eq(mproc_value_item(v, 1, &it), 0);
	ck_assert_int_eq(mproc_value_float(it, &f), MPROC_ETYPE);
	/* NULL is a mismatch everywhere; its type reads as None */
	ck_assert_int_eq(mproc_value_int(NULL, &i), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_len(NULL, &n), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_item(NULL, 0, &it), MPROC_ETYPE);
	ck_assert_int_eq(mproc_value_type(NULL), MPROC_NONE);
	ck_assert(!mproc_value_is_none(NULL));
	ck_assert_str_eq(mproc_type_name(MPROC_NONE), "NoneType");
	ck_assert_str_eq(mproc_type_name(MPROC_FROZENSET), "frozenset");
	ck_assert_str_eq(mproc_type_name((enum mproc_type)99), "unknown");
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_pickle_decode_keep_keeps_earlier_trees)
{
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v[200];
	char msgs[200][16];
	for (int k = 0; k < 200; k++) {
		/* (k * 1000, 'str') */
		int n = snprintf(msgs[k], sizeof msgs[k], "\x80\x04J%c%c%c%c"
		                 "\x8c\x01s\x86.", 0, 0, 0, 0);
		(void)n;
		int32_t x = k * 1000;
		memcpy(msgs[k] + 3, &x, 4);
		memcpy(msgs[k] + 7, "\x8c\x01s\x86.", 5);
		ck_assert_int_eq(mproc__decode_keep(d, msgs[k], 12, &v[k]), 0);
		const char *s = mproc__decoder_strdup(d, "kept", 4);
		ck_assert_str_eq(s, "kept");
	}
	for (int k = 0; k < 200; k++) {
		const struct mproc_value *it;
		int64_t i;
		ck_assert_int_eq(mproc_value_item(v[k], 0, &it), 0);
		ck_assert_int_eq(mproc_value_int(it, &i), 0);
		ck_assert_int_eq(i, k * 1000);
	}
	mproc__decoder_reset(d);
	ck_assert_int_eq(mproc__decode_keep(d, msgs[3], 12, &v[0]), 0);
	mproc_decoder_free(d);
}
END_TEST

/* ---- writer errors ------------------------------------------------------ */

START_TEST(test_pickle_writer_misuse_is_ewriter_and_sticky)
{
	struct mproc_writer *w;
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_writer_new(&w, 3), -EINVAL);
	ck_assert_int_eq(mproc_writer_new(&w, 4), 0);

	/* nothing written */
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* two top-level values; the first error stays */
	ck_assert_int_eq(mproc_write_none(w), 0);
	ck_assert_int_eq(mproc_write_none(w), MPROC_EWRITER);
	ck_assert_int_eq(mproc_write_int(w, 1), MPROC_EWRITER);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* open container at finish */
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* mismatched end */
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_tuple_end(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_dict_end(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* dict with a key and no value */
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	ck_assert_int_eq(mproc_write_int(w, 1), 0);
	ck_assert_int_eq(mproc_write_dict_end(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* unhashable dict key, even inside a tuple */
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	ck_assert_int_eq(mproc_write_list_begin(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	ck_assert_int_eq(mproc_write_tuple_begin(w), 0);
	ck_assert_int_eq(mproc_write_int(w, 1), 0);
	ck_assert_int_eq(mproc_write_frozenset_begin(w), 0);
	ck_assert_int_eq(mproc_write_tuple_begin(w), 0);
	ck_assert_int_eq(mproc_write_dict_begin(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* a value may be anything */
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	ck_assert_int_eq(mproc_write_int(w, 1), 0);
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_list_end(w), 0);
	ck_assert_int_eq(mproc_write_dict_end(w), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	mproc_writer_reset(w);
	/* set items */
	ck_assert_int_eq(mproc_write_set_begin(w), 0);
	ck_assert_int_eq(mproc_write_set_begin(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_frozenset_begin(w), 0);
	ck_assert_int_eq(mproc_write_dict_begin(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	/* invalid UTF-8 and surrogates */
	ck_assert_int_eq(mproc_write_str(w, "\xed\xa0\x80", 3),
	                 MPROC_EPICKLE_UTF8);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), MPROC_EPICKLE_UTF8);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_str(w, "ok\xff", 3), MPROC_EPICKLE_UTF8);
	mproc_writer_reset(w);
	/* after a reset all is well */
	ck_assert_int_eq(mproc_write_cstr(w, "fine"), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	ck_assert_int_eq(mproc_write_none(w), MPROC_EWRITER);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_pickle_writer_depth_limit_is_1000)
{
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_tuple_begin(w), MPROC_EPICKLE_DEPTH);
	mproc_writer_reset(w);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(mproc_write_list_begin(w), 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(mproc_write_list_end(w), 0);
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, p, n, &v), 0);
	mproc_decoder_free(d);
	mproc_writer_free(w);
}
END_TEST

static void w_containers(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	mproc_write_tuple_begin(w);
	mproc_write_tuple_end(w);
	mproc_write_tuple_begin(w);
	mproc_write_int(w, 1);
	mproc_write_tuple_end(w);
	mproc_write_tuple_begin(w);
	for (int i = 0; i < 5; i++)
		mproc_write_int(w, i);
	mproc_write_tuple_end(w);
	mproc_write_list_begin(w);
	mproc_write_list_end(w);
	mproc_write_dict_begin(w);
	mproc_write_dict_end(w);
	mproc_write_set_begin(w);
	mproc_write_set_end(w);
	mproc_write_frozenset_begin(w);
	mproc_write_frozenset_end(w);
	mproc_write_dict_begin(w);
	mproc_write_tuple_begin(w);
	mproc_write_int(w, 1);
	mproc_write_cstr(w, "k");
	mproc_write_tuple_end(w);
	mproc_write_set_begin(w);
	mproc_write_int(w, 3);
	mproc_write_set_end(w);
	mproc_write_dict_end(w);
	mproc_write_list_end(w);
}

START_TEST(test_pickle_writer_containers_reencode_identically)
{
	size_t n;
	char *p = written(w_containers, &n);
	/* small tuples use EMPTY_TUPLE/TUPLE1; empty containers no MARK */
	ck_assert(memmem(p, n, "])(K\x01\x85", 6) == NULL);
	ck_assert(memmem(p, n, "]()K\x01\x85(K\x00", 9) != NULL);
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v, *it;
	ck_assert_int_eq(mproc_decode(d, p, n, &v), 0);
	size_t len;
	ck_assert_int_eq(mproc_value_len(v, &len), 0);
	ck_assert_uint_eq(len, 8);
	static const enum mproc_type types[] = {
		MPROC_TUPLE, MPROC_TUPLE, MPROC_TUPLE, MPROC_LIST, MPROC_DICT,
		MPROC_SET, MPROC_FROZENSET, MPROC_DICT};
	for (size_t i = 0; i < 8; i++) {
		ck_assert_int_eq(mproc_value_item(v, i, &it), 0);
		ck_assert_int_eq(mproc_value_type(it), types[i]);
	}
	struct mproc_writer *w;
	ck_assert_int_eq(mproc_writer_new(&w, 4), 0);
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	const void *q;
	size_t qn;
	ck_assert_int_eq(mproc_writer_finish(w, &q, &qn), 0);
	ck_assert_uint_eq(qn, n);
	ck_assert_mem_eq(q, p, n);
	ck_assert_int_eq(mproc__writer_top_type(w), MPROC_LIST);
	mproc_writer_free(w);
	mproc_decoder_free(d);
	free(p);
}
END_TEST

START_TEST(test_pickle_writer_attach_appends_and_restores_on_error)
{
	struct mproc_writer *w;
	struct mproc__buf b = {0};
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc__buf_append(&b, "HDR", 3), 0);
	mproc__writer_attach(w, &b);
	ck_assert_int_eq(mproc__writer_top_type(w), -1);
	ck_assert_int_eq(mproc_write_tuple_begin(w), 0);
	ck_assert_int_eq(mproc_write_int(w, 7), 0);
	ck_assert_int_eq(mproc_write_tuple_end(w), 0);
	ck_assert_int_eq(mproc__writer_top_type(w), MPROC_TUPLE);
	ck_assert_int_eq(mproc__writer_end(w), 0);
	ck_assert_uint_eq(b.len, 3 + 6);
	ck_assert_mem_eq(b.data, "HDR\x80\x05K\x07\x85.", 9);

	/* a second value after the first; an error removes only it */
	mproc__writer_attach(w, &b);
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc__writer_end(w), MPROC_EWRITER);
	ck_assert_uint_eq(b.len, 9);
	mproc__writer_attach(w, &b);
	ck_assert_int_eq(mproc__writer_end(w), MPROC_EWRITER);
	ck_assert_uint_eq(b.len, 9);

	/* detached, the writer uses its own buffer again */
	mproc__writer_attach(w, NULL);
	ck_assert_int_eq(mproc_write_none(w), 0);
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(b.len, 9);
	mproc__buf_free(&b);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_pickle_raise_replaces_value_with_type_and_message)
{
	struct mproc_writer *w;
	struct mproc__buf b = {0};
	ck_assert_int_eq(mproc_writer_new(&w, 5), 0);
	ck_assert_int_eq(mproc__buf_append(&b, "XY", 2), 0);
	mproc__writer_attach(w, &b);
	ck_assert(!mproc__writer_raised(w));
	mproc_write_list_begin(w);
	mproc_write_int(w, 1);
	ck_assert_int_eq(mproc_raise(w, "ValueError", "bad %d: %s", 42,
	                             "x\xff\xc3y"),
	                 MPROC_ERAISED);
	ck_assert(mproc__writer_raised(w));
	ck_assert_int_eq(mproc__writer_end(w), 0);
	ck_assert_mem_eq(b.data, "XY", 2);
	struct mproc_decoder *d = dec_new(0, 0);
	const struct mproc_value *v, *it;
	ck_assert_int_eq(mproc_decode(d, b.data + 2, b.len - 2, &v), 0);
	const char *s;
	size_t n;
	ck_assert_int_eq(mproc_value_item(v, 0, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &n), 0);
	ck_assert_uint_eq(n, 10);
	ck_assert_mem_eq(s, "ValueError", 10);
	ck_assert_int_eq(mproc_value_item(v, 1, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &n), 0);
	ck_assert_uint_eq(n, strlen("bad 42: x??y"));
	ck_assert_mem_eq(s, "bad 42: x??y", n);
	/* a long message is kept whole */
	mproc__writer_attach(w, NULL);
	char big[3000];
	memset(big, 'm', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_int_eq(mproc_raise(w, "OSError", "%s", big), MPROC_ERAISED);
	const void *p;
	ck_assert_int_eq(mproc_writer_finish(w, &p, &n), 0);
	ck_assert_int_eq(mproc_decode(d, p, n, &v), 0);
	ck_assert_int_eq(mproc_value_item(v, 1, &it), 0);
	ck_assert_int_eq(mproc_value_str(it, &s, &n), 0);
	ck_assert_uint_eq(n, sizeof big - 1);
	mproc_writer_reset(w);
	ck_assert(!mproc__writer_raised(w));
	mproc_decoder_free(d);
	mproc__buf_free(&b);
	mproc_writer_free(w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pickle");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_pickle_int_edges_round_trip);
	tcase_add_test(tc, test_pickle_writer_uses_smallest_int_opcodes);
	tcase_add_test(tc, test_pickle_long1_accepts_sign_extension_refuses_65_bits);
	tcase_add_test(tc, test_pickle_float_edges_round_trip_with_sign);
	tcase_add_test(tc, test_pickle_str_bytes_none_bool_round_trip);
	tcase_add_test(tc, test_pickle_16mib_bytes_decode_points_into_message);
	tcase_add_loop_test(tc, test_pickle_decoder_reads_cpython_protocols_2_to_5,
	                    0, sizeof samples / sizeof samples[0]);
	tcase_add_test(tc, test_pickle_truncated_at_every_offset_is_an_error);
	tcase_add_loop_test(tc, test_pickle_decoder_refuses_opcode_with_name_and_offset,
	                    0, sizeof refused / sizeof refused[0]);
	tcase_add_test(tc, test_pickle_decoder_refuses_unknown_opcode_with_offset);
	tcase_add_test(tc, test_pickle_decoder_refuses_global_with_offset_and_name);
	tcase_add_test(tc, test_pickle_protocol2_reduce_builds_bytes_set_frozenset);
	tcase_add_test(tc, test_pickle_reduce_refuses_other_calls_of_accepted_globals);
	tcase_add_test(tc, test_pickle_memoized_global_can_be_called_again);
	tcase_add_loop_test(tc, test_pickle_builtin_names_refused_from_protocol_3,
	                    0, 9);
	tcase_add_loop_test(tc,
	                    test_pickle_builtin_names_read_below_protocol_3_and_without_proto,
	                    0, 12);
	tcase_add_loop_test(tc, test_pickle_builtins_and_codecs_names_read_at_every_protocol,
	                    0, 7);
	tcase_add_test(tc, test_pickle_builtin_name_follows_the_last_proto_opcode);
	tcase_add_test(tc, test_pickle_huge_length_fields_are_truncation_not_reads);
	tcase_add_test(tc, test_pickle_stack_and_stop_errors);
	tcase_add_test(tc, test_pickle_decoder_refuses_invalid_utf8);
	tcase_add_test(tc, test_pickle_depth_limit_default_and_custom);
	tcase_add_test(tc, test_pickle_size_limit_refuses_before_reading);
	tcase_add_test(tc, test_pickle_memo_expansion_bomb_is_too_big);
	tcase_add_test(tc, test_pickle_memo_index_bomb_is_refused_without_allocating);
	tcase_add_test(tc, test_pickle_recursive_structure_is_refused);
	tcase_add_test(tc, test_pickle_unhashable_keys_and_items_are_refused);
	tcase_add_test(tc, test_pickle_duplicate_dict_keys_kept_last_wins);
	tcase_add_test(tc, test_pickle_accessors_check_type_and_index);
	tcase_add_test(tc, test_pickle_decode_keep_keeps_earlier_trees);
	tcase_add_test(tc, test_pickle_writer_misuse_is_ewriter_and_sticky);
	tcase_add_test(tc, test_pickle_writer_depth_limit_is_1000);
	tcase_add_test(tc, test_pickle_writer_containers_reencode_identically);
	tcase_add_test(tc, test_pickle_writer_attach_appends_and_restores_on_error);
	tcase_add_test(tc, test_pickle_raise_replaces_value_with_type_and_message);
	tcase_add_test(tc, test_pickle_scalar_nodes_match_the_decoder);
	tcase_add_test(tc, test_pickle_scalar_messages_decode_as_the_unpickler_does);
	tcase_add_test(tc, test_input_packing_matches_the_generators);
	tcase_add_test(tc, test_input_range_chunks_are_bounded);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
