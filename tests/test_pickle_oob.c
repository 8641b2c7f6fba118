/*
 * test_pickle_oob.c - out-of-band buffers of pickle protocol 5 (PEP 574):
 * what the writer emits and lists (copies, references, reservations, the
 * threshold, re-emission of decoded buffers), what the decoder takes
 * (mproc_decode_buffers, BYTEARRAY8, READONLY_BUFFER), what it refuses,
 * and the transport's hooks (allocation ops, take, drop on restart).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "lib/buf.h"
#include "lib/oob.h"
#include "lib/pickle.h"

#define S(lit) lit, sizeof(lit) - 1

static struct mproc_writer *writer(int protocol)
{
	struct mproc_writer *w = NULL;
	ck_assert_int_eq(mproc_writer_new(&w, protocol), 0);
	return w;
}

static struct mproc_decoder *decoder(size_t max_size)
{
	struct mproc_limits lim = {.max_size = max_size};
	struct mproc_decoder *d = NULL;
	ck_assert_int_eq(mproc_decoder_new(&d, &lim), 0);
	return d;
}

/* v is bytes from out-of-band buffer `index`, read-only or not, whose bytes
 * are exactly at `data` (no copy). */
static void expect_oob(const struct mproc_value *v, size_t index,
                       bool readonly, const void *data, size_t len)
{
	const void *p;
	size_t n, i = SIZE_MAX;
	bool ro = !readonly;
	ck_assert_int_eq(mproc_value_type(v), MPROC_BYTES);
	ck_assert_int_eq(mproc_value_bytes(v, &p, &n), 0);
	ck_assert_uint_eq(n, len);
	ck_assert_ptr_eq(p, data);
	ck_assert_int_eq(mproc_value_buffer(v, &i, &ro), 0);
	ck_assert_uint_eq(i, index);
	ck_assert_int_eq(ro, readonly);
}

/* v is in-band bytes equal to want[0..len). */
static void expect_inband(const struct mproc_value *v, const void *want,
                          size_t len)
{
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_value_bytes(v, &p, &n), 0);
	ck_assert_uint_eq(n, len);
	ck_assert_mem_eq(p, want, len);
	ck_assert_int_eq(mproc_value_buffer(v, NULL, NULL), MPROC_ETYPE);
}

static const struct mproc_value *item(const struct mproc_value *v, size_t i)
{
	const struct mproc_value *it = NULL;
	ck_assert_int_eq(mproc_value_item(v, i, &it), 0);
	return it;
}

/* ---- writing ------------------------------------------------------------ */

START_TEST(test_oob_copies_round_trip_and_outlive_the_source)
{
	struct mproc_writer *w = writer(5);
	char src[] = "hello, buffers";
	char src2[300];
	memset(src2, 'z', sizeof src2);
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, src, sizeof src,
	                                    MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc_write_buffer(w, src2, sizeof src2,
	                                    MPROC_BUFFER_COPY |
	                                    MPROC_BUFFER_WRITABLE), 0);
	ck_assert_int_eq(mproc_write_list_end(w), 0);
	/* the copies are the writer's: the sources may change now */
	memset(src, '!', sizeof src - 1);
	memset(src2, '?', sizeof src2);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	/* PROTO 5, EMPTY_LIST MARK, NEXT_BUFFER READONLY_BUFFER,
	 * NEXT_BUFFER (writable), APPENDS, STOP */
	ck_assert_uint_eq(len, 9);
	ck_assert_mem_eq(data, "\x80\x05]\x28\x97\x98\x97\x65.", 9);

	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_ne(bufs[0].data, src);
	ck_assert_uint_eq(bufs[0].len, sizeof src);
	ck_assert_mem_eq(bufs[0].data, "hello, buffers", sizeof src);
	ck_assert(bufs[0].readonly);
	ck_assert_uint_eq(bufs[1].len, 300);
	ck_assert_int_eq(((const char *)bufs[1].data)[299], 'z');
	ck_assert(!bufs[1].readonly);

	/* pickle.loads(data, buffers=bufs) */
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode_buffers(d, data, len, bufs, n, &v), 0);
	size_t k;
	ck_assert_int_eq(mproc_value_len(v, &k), 0);
	ck_assert_uint_eq(k, 2);
	expect_oob(item(v, 0), 0, true, bufs[0].data, sizeof src);
	expect_oob(item(v, 1), 1, false, bufs[1].data, 300);
	mproc_decoder_free(d);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_references_point_at_the_callers_bytes)
{
	struct mproc_writer *w = writer(0); /* 0: protocol 5 */
	static const char big[] = "a reference, not a copy";
	ck_assert_int_eq(mproc_write_buffer(w, big, sizeof big - 1, 0), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(data, "\x80\x05\x97\x98.", 5);
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(bufs[0].data, big);
	ck_assert_uint_eq(bufs[0].len, sizeof big - 1);
	ck_assert(bufs[0].readonly);
	/* the internal list says it is neither malloc'd nor the ops' */
	ck_assert_uint_eq(mproc__writer_oob_count(w), 1);
	ck_assert_uint_eq(mproc__writer_oob(w)[0].flags, MPROC__OOB_READONLY);

	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode_buffers(d, data, len, bufs, n, &v), 0);
	expect_oob(v, 0, true, big, sizeof big - 1);
	/* the decoded tree points into the buffer: the writer's list array
	 * may go (bufs need not outlive the call), the bytes may not */
	mproc_writer_reset(w);
	expect_oob(v, 0, true, big, sizeof big - 1);
	mproc_decoder_free(d);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_reservation_is_filled_in_place)
{
	struct mproc_writer *w = writer(5);
	void *p = NULL;
	ck_assert_int_eq(mproc_write_tuple_begin(w), 0);
	ck_assert_int_eq(mproc_write_int(w, 7), 0);
	ck_assert_int_eq(mproc_write_reserve(w, 4096, &p), 0);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 4096; i++)
		((unsigned char *)p)[i] = (unsigned char)i;
	ck_assert_int_eq(mproc_write_tuple_end(w), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_mem_eq(data, "\x80\x05K\x07\x97\x98\x86.", len);
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(bufs[0].data, p);
	ck_assert(bufs[0].readonly);
	ck_assert_uint_eq(mproc__writer_oob(w)[0].flags,
	                  MPROC__OOB_READONLY | MPROC__OOB_MALLOC);

	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode_buffers(d, data, len, bufs, n, &v), 0);
	expect_oob(item(v, 1), 0, true, p, 4096);
	ck_assert_int_eq(((const unsigned char *)p)[300], 300 & 0xff);
	mproc_decoder_free(d);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_zero_length_buffers)
{
	struct mproc_writer *w = writer(5);
	void *p = NULL;
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, NULL, 0, 0), 0);
	ck_assert_int_eq(mproc_write_buffer(w, NULL, 0, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc_write_reserve(w, 0, &p), 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(mproc_write_list_end(w), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 3);
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode_buffers(d, data, len, bufs, n, &v), 0);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(bufs[i].len, 0);
		ck_assert_ptr_nonnull(bufs[i].data);
		expect_oob(item(v, i), i, true, bufs[i].data, 0);
	}
	/* a buffer given with NULL data and no bytes is fine too */
	struct mproc_buffer none = {NULL, 0, false};
	ck_assert_int_eq(mproc_decode_buffers(d, S("\x80\x05\x97."), &none, 1,
	                                      &v), 0);
	const void *q;
	size_t ql;
	ck_assert_int_eq(mproc_value_bytes(v, &q, &ql), 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_eq(ql, 0);
	mproc_decoder_free(d);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_threshold_sends_big_bytes_out_of_band_but_not_keys)
{
	struct mproc_writer *w = writer(5);
	char big[200], small[50];
	memset(big, 'B', sizeof big);
	memset(small, 's', sizeof small);
	ck_assert_int_eq(mproc_writer_set_oob_threshold(w, 100), 0);
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	/* a key stays in band (bytes are hashable, a buffer is not) */
	ck_assert_int_eq(mproc_write_bytes(w, big, sizeof big), 0);
	ck_assert_int_eq(mproc_write_bytes(w, big, 100), 0); /* at it: out */
	ck_assert_int_eq(mproc_write_bytes(w, small, sizeof small), 0);
	ck_assert_int_eq(mproc_write_bytes(w, big, 99), 0); /* below: in */
	ck_assert_int_eq(mproc_write_int(w, 1), 0);
	ck_assert_int_eq(mproc_write_frozenset_begin(w), 0);
	ck_assert_int_eq(mproc_write_bytes(w, big, sizeof big), 0); /* item */
	ck_assert_int_eq(mproc_write_frozenset_end(w), 0);
	ck_assert_int_eq(mproc_write_dict_end(w), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_ne(bufs[0].data, big); /* a copy */
	ck_assert(bufs[0].readonly);

	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v, *k, *x;
	/* without buffers Python's error, named */
	ck_assert_int_eq(mproc_decode(d, data, len, &v), MPROC_EPICKLE_BUFFERS);
	ck_assert_int_eq(mproc_decode_buffers(d, data, len, bufs, n, &v), 0);
	ck_assert_int_eq(mproc_value_dict_entry(v, 0, &k, &x), 0);
	expect_inband(k, big, sizeof big);
	expect_oob(x, 0, true, bufs[0].data, 100);
	ck_assert_int_eq(mproc_value_dict_entry(v, 1, &k, &x), 0);
	expect_inband(k, small, sizeof small);
	expect_inband(x, big, 99);
	ck_assert_int_eq(mproc_value_dict_entry(v, 2, &k, &x), 0);
	expect_inband(item(x, 0), big, sizeof big);

	/* kept across a reset; 0 turns it off */
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_bytes(w, big, sizeof big), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(mproc_writer_set_oob_threshold(w, 0), 0);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_bytes(w, big, sizeof big), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mproc_decode(d, data, len, &v), 0);
	expect_inband(v, big, sizeof big);
	mproc_decoder_free(d);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_protocol_4_writer_refuses_buffers)
{
	struct mproc_writer *w = writer(4);
	char b[8] = "12345678";
	void *p = (void *)1;
	/* Python: PicklingError, "PickleBuffer can only pickled with
	 * protocol >= 5" */
	ck_assert_int_eq(mproc_write_buffer(w, b, sizeof b, 0), MPROC_EWRITER);
	/* sticky, as every writer error */
	ck_assert_int_eq(mproc_write_none(w), MPROC_EWRITER);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_reserve(w, 8, &p), MPROC_EWRITER);
	ck_assert_ptr_null(p);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_writer_set_oob_threshold(w, 1), -EINVAL);
	ck_assert_int_eq(mproc_writer_set_oob_threshold(w, 0), 0);
	/* bytes stay bytes there */
	ck_assert_int_eq(mproc_write_bytes(w, b, sizeof b), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 0);
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_writer_misuse)
{
	struct mproc_writer *w = writer(5);
	char b[4] = "abcd";
	const struct mproc_buffer *bufs;
	size_t n;
	/* nothing finished yet */
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), MPROC_EWRITER);
	ck_assert_int_eq(mproc_write_buffer(w, b, 4, 4u), -EINVAL);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_buffer(w, NULL, 4, 0), -EINVAL);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), -EINVAL);
	mproc_writer_reset(w);
	/* a buffer as a dict key or set item: a PickleBuffer is unhashable */
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, b, 4, MPROC_BUFFER_COPY),
	                 MPROC_EWRITER);
	mproc_writer_reset(w);
	void *p = (void *)1;
	ck_assert_int_eq(mproc_write_set_begin(w), 0);
	ck_assert_int_eq(mproc_write_reserve(w, 4, &p), MPROC_EWRITER);
	ck_assert_ptr_null(p);
	mproc_writer_reset(w);
	/* a dict value is fine; a second top-level value is not */
	ck_assert_int_eq(mproc_write_dict_begin(w), 0);
	ck_assert_int_eq(mproc_write_int(w, 1), 0);
	ck_assert_int_eq(mproc_write_buffer(w, b, 4, 0), 0);
	ck_assert_int_eq(mproc_write_dict_end(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, b, 4, 0), MPROC_EWRITER);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), MPROC_EWRITER);
#if !defined(__SANITIZE_ADDRESS__)
	/* an out-of-memory reservation is a sticky -ENOMEM, nothing listed
	 * (ASan aborts on such a malloc rather than answer NULL) */
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_reserve(w, SIZE_MAX - 16, &p), -ENOMEM);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 0);
#endif
	mproc_writer_free(w);
}
END_TEST

START_TEST(test_oob_write_value_reemits_by_reference)
{
	/* [buffer 0 read-only, b'inband', buffer 1 writable,
	 *  {buffer 2 as a key: 1}] as a crafted pickle */
	static const char msg[] =
		"\x80\x05]\x28\x97\x98\x43\x06inband\x97}\x97K\x01se.";
	static const char b0[] = "zero", b1[] = "one!", b2[] = "two";
	struct mproc_buffer given[3] = {
		{b0, 4, false}, {b1, 4, false}, {b2, 3, false},
	};
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), given, 3, &v), 0);
	expect_oob(item(v, 0), 0, true, b0, 4);
	expect_inband(item(v, 1), "inband", 6);
	expect_oob(item(v, 2), 1, false, b1, 4);
	const struct mproc_value *k, *x;
	ck_assert_int_eq(mproc_value_dict_entry(item(v, 3), 0, &k, &x), 0);
	expect_oob(k, 2, false, b2, 3);

	/* protocol 5: out of band again, by reference, readonly kept; the
	 * key goes in band */
	struct mproc_writer *w = writer(5);
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	static const char want[] =
		"\x80\x05](\x97\x98\x43\x06inband\x97}(\x43\x03twoK\x01ue.";
	ck_assert_uint_eq(len, sizeof want - 1);
	ck_assert_mem_eq(data, want, len);
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_eq(bufs[0].data, b0);
	ck_assert(bufs[0].readonly);
	ck_assert_ptr_eq(bufs[1].data, b1);
	ck_assert(!bufs[1].readonly);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(mproc__writer_oob(w)[i].flags &
		                  (MPROC__OOB_OPS | MPROC__OOB_MALLOC), 0);

	/* protocol 4: all in band, decodable without buffers */
	struct mproc_writer *w4 = writer(4);
	ck_assert_int_eq(mproc_write_value(w4, v), 0);
	ck_assert_int_eq(mproc_writer_finish(w4, &data, &len), 0);
	ck_assert_int_eq(mproc_writer_buffers(w4, &bufs, &n), 0);
	ck_assert_uint_eq(n, 0);
	struct mproc_decoder *d2 = decoder(0);
	const struct mproc_value *v2;
	ck_assert_int_eq(mproc_decode(d2, data, len, &v2), 0);
	expect_inband(item(v2, 0), "zero", 4);
	expect_inband(item(v2, 2), "one!", 4);

	/* a threshold turns in-band bytes of a decoded tree into copies,
	 * and leaves decoded buffers as references */
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_writer_set_oob_threshold(w, 6), 0);
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_eq(bufs[0].data, b0);
	ck_assert_mem_eq(bufs[1].data, "inband", 6);
	ck_assert_uint_eq(mproc__writer_oob(w)[1].flags,
	                  MPROC__OOB_READONLY | MPROC__OOB_MALLOC);
	ck_assert_ptr_eq(bufs[2].data, b1);
	mproc_decoder_free(d2);
	mproc_writer_free(w4);
	mproc_writer_free(w);
	mproc_decoder_free(d);
}
END_TEST

/* ---- decoding ----------------------------------------------------------- */

START_TEST(test_oob_decodes_cpython_buffer_callback_output)
{
	/* pickle.dumps([PickleBuffer(b'xy'), {'k': PickleBuffer(bytearray(
	 * b'zzz'))}, (PickleBuffer(b''),)], protocol=5,
	 * buffer_callback=bufs.append) by CPython 3.11; bufs are
	 * b'xy' (readonly), bytearray(b'zzz'), b'' (readonly) */
	static const char msg[] =
		"\x80\x05\x95\x13\x00\x00\x00\x00\x00\x00\x00]\x94(\x97\x98}"
		"\x94\x8c\x01k\x94\x97s\x97\x98\x85\x94\x65.";
	struct mproc_buffer bufs[3] = {
		{"xy", 2, true}, {"zzz", 3, false}, {"", 0, true},
	};
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v, *x;
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), bufs, 3, &v), 0);
	expect_oob(item(v, 0), 0, true, bufs[0].data, 2);
	ck_assert_int_eq(mproc_value_dict_get(item(v, 1), "k", &x), 0);
	expect_oob(x, 1, false, bufs[1].data, 3);
	expect_oob(item(item(v, 2), 0), 2, true, bufs[2].data, 0);
	/* READONLY_BUFFER marks it read-only whatever was given */
	bufs[0].readonly = false;
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), bufs, 3, &v), 0);
	expect_oob(item(v, 0), 0, true, bufs[0].data, 2);
	/* extra buffers are ignored, as in Python */
	struct mproc_buffer more[5] = {bufs[0], bufs[1], bufs[2],
	                               {"x", 1, false}, {"y", 1, false}};
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), more, 5, &v), 0);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_oob_too_few_buffers_is_named)
{
	static const char msg[] = "\x80\x05\x97\x98\x97\x86.";
	struct mproc_buffer one = {"a", 1, true};
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v = (void *)1;
	/* pickle.loads without buffers */
	ck_assert_int_eq(mproc_decode(d, S(msg), &v), MPROC_EPICKLE_BUFFERS);
	ck_assert_ptr_null(v);
	ck_assert_str_eq(mproc_decoder_error(d),
	                 "NEXT_BUFFER (0x97) at offset 2: the pickle refers to "
	                 "out-of-band buffers but none were given");
	ck_assert_uint_eq(mproc_decoder_error_offset(d), 2);
	/* buffers=[b'a']: the second NEXT_BUFFER has none */
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), &one, 1, &v),
	                 MPROC_EPICKLE_BUFFERS);
	ck_assert_str_eq(mproc_decoder_error(d),
	                 "NEXT_BUFFER (0x97) at offset 4 asks for buffer 1; 1 "
	                 "given");
	ck_assert_uint_eq(mproc_decoder_error_offset(d), 4);
	/* buffers=[] */
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), NULL, 0, &v),
	                 MPROC_EPICKLE_BUFFERS);
	ck_assert_uint_eq(mproc_decoder_error_offset(d), 2);
	/* the internal keep variant says the same */
	ck_assert_int_eq(mproc__decode_keep_buffers(d, S(msg), &one, 1, &v),
	                 MPROC_EPICKLE_BUFFERS);
	/* NULL with a count, or a buffer with no data */
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), NULL, 2, &v), -EINVAL);
	struct mproc_buffer bad[2] = {{"a", 1, true}, {NULL, 5, true}};
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), bad, 2, &v), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mproc_decoder_error(d), "buffer 1"));
	/* and the decoder is fine afterwards */
	ck_assert_int_eq(mproc_decode_buffers(d, S(msg), bad, 1, &v),
	                 MPROC_EPICKLE_BUFFERS);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05K\x01."), &v), 0);
	ck_assert_str_eq(mproc_err_name(MPROC_EPICKLE_BUFFERS),
	                 "MPROC_EPICKLE_BUFFERS");
	ck_assert_int_eq(MPROC_EPICKLE_BUFFERS, -4030);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_oob_readonly_buffer_needs_a_buffer_on_the_stack)
{
	struct mproc_buffer one = {"a", 1, false};
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	/* nothing on the stack */
	ck_assert_int_eq(mproc_decode_buffers(d, S("\x80\x05\x98."), &one, 1,
	                                      &v), MPROC_EPICKLE_INVALID);
	ck_assert_str_eq(mproc_decoder_error(d),
	                 "READONLY_BUFFER (0x98) at offset 2: stack underflow");
	/* just after a MARK */
	ck_assert_int_eq(mproc_decode_buffers(d, S("\x80\x05\x97(\x98t."), &one,
	                                      1, &v), MPROC_EPICKLE_INVALID);
	ck_assert_uint_eq(mproc_decoder_error_offset(d), 4);
	/* on what is no buffer: Python's TypeError from memoryview() */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05K\x01\x98."), &v),
	                 MPROC_EPICKLE_INVALID);
	ck_assert_str_eq(mproc_decoder_error(d),
	                 "READONLY_BUFFER (0x98) at offset 4 on a int, not a "
	                 "buffer");
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05]\x98."), &v),
	                 MPROC_EPICKLE_INVALID);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05\x8c\x01s\x98."), &v),
	                 MPROC_EPICKLE_INVALID);
	/* on in-band bytes: a no-op, as in Python (bytes are read-only) */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05\x43\x02\x61\x62\x98."),
	                              &v), 0);
	expect_inband(v, "ab", 2);
	/* twice is once */
	ck_assert_int_eq(mproc_decode_buffers(d, S("\x80\x05\x97\x98\x98."),
	                                      &one, 1, &v), 0);
	expect_oob(v, 0, true, one.data, 1);
	/* the memo keeps the writable buffer; the stack gets the read-only
	 * view (CPython: memoryview(x).toreadonly()) */
	ck_assert_int_eq(mproc_decode_buffers(
	                         d, S("\x80\x05\x97\x94\x98h\x00\x86."), &one,
	                         1, &v), 0);
	expect_oob(item(v, 0), 0, true, one.data, 1);
	expect_oob(item(v, 1), 0, false, one.data, 1);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_oob_bytearray8_reads_as_bytes)
{
	/* pickle.dumps(PickleBuffer(bytearray(b'abc')), protocol=5), which is
	 * also pickle.dumps(bytearray(b'abc'), protocol=5) */
	static const char msg[] =
		"\x80\x05\x95\x0e\x00\x00\x00\x00\x00\x00\x00\x96\x03\x00\x00"
		"\x00\x00\x00\x00\x00\x61\x62\x63\x94.";
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	ck_assert_int_eq(mproc_decode(d, S(msg), &v), 0);
	expect_inband(v, "abc", 3);
	const void *p;
	size_t n;
	ck_assert_int_eq(mproc_value_bytes(v, &p, &n), 0);
	ck_assert_ptr_eq(p, msg + 20); /* into the message */
	/* re-encoded as bytes */
	struct mproc_writer *w = writer(5);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_mem_eq(data, "\x80\x05\x43\x03\x61\x62\x63.", len);
	/* its length is checked like BINBYTES8's */
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05\x96\x05\x00\x00\x00\x00"
	                                   "\x00\x00\x00\x61\x62\x63."), &v),
	                 MPROC_EPICKLE_TRUNCATED);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05\x96\xff\xff\xff\xff\xff"
	                                   "\xff\xff\xff."), &v),
	                 MPROC_EPICKLE_TRUNCATED);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05\x96\x03\x00."), &v),
	                 MPROC_EPICKLE_TRUNCATED);
	ck_assert_ptr_nonnull(strstr(mproc_decoder_error(d), "BYTEARRAY8"));
	mproc_writer_free(w);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_oob_buffers_do_not_count_against_max_size)
{
	size_t big = (size_t)1 << 20;
	char *mem = malloc(big);
	memset(mem, 7, big);
	struct mproc_buffer b = {mem, big, false};
	struct mproc_decoder *d = decoder(64);
	const struct mproc_value *v;
	/* the same buffer a hundred times, through the memo */
	char msg[64] = "\x80\x05]\x94(\x97\x94";
	size_t n = 7;
	for (int i = 0; i < 20; i++) {
		msg[n++] = 'h';
		msg[n++] = 1;
	}
	msg[n++] = 'e';
	msg[n++] = '.';
	ck_assert_int_eq(mproc_decode_buffers(d, msg, n, &b, 1, &v), 0);
	size_t k;
	ck_assert_int_eq(mproc_value_len(v, &k), 0);
	ck_assert_uint_eq(k, 21);
	expect_oob(item(v, 20), 0, false, mem, big);
	/* re-emitted by reference it stays small */
	struct mproc_writer *w = writer(5);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_write_value(w, v), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_uint_lt(len, 64);
	const struct mproc_buffer *bufs;
	size_t nb;
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &nb), 0);
	ck_assert_uint_eq(nb, 21);
	/* the pickle itself is still bounded */
	ck_assert_int_eq(mproc_decode_buffers(d, mem, 65, &b, 1, &v),
	                 MPROC_EPICKLE_TOOBIG);
	mproc_writer_free(w);
	mproc_decoder_free(d);
	free(mem);
}
END_TEST

START_TEST(test_oob_decode_keep_buffers_keeps_earlier_trees)
{
	struct mproc_buffer a = {"first", 5, true}, b = {"second", 6, true};
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v1, *v2;
	ck_assert_int_eq(mproc__decode_keep_buffers(d, S("\x80\x05\x97\x98."),
	                                            &a, 1, &v1), 0);
	ck_assert_int_eq(mproc__decode_keep_buffers(d, S("\x80\x05\x97\x85."),
	                                            &b, 1, &v2), 0);
	expect_oob(v1, 0, true, a.data, 5);
	expect_oob(item(v2, 0), 0, true, b.data, 6);
	mproc_decoder_free(d);
}
END_TEST

START_TEST(test_oob_value_buffer_is_etype_for_everything_else)
{
	struct mproc_decoder *d = decoder(0);
	const struct mproc_value *v;
	size_t i = 42;
	bool ro = true;
	ck_assert_int_eq(mproc_value_buffer(NULL, &i, &ro), MPROC_ETYPE);
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05\x43\x01x."), &v), 0);
	ck_assert_int_eq(mproc_value_buffer(v, &i, &ro), MPROC_ETYPE);
	ck_assert_ptr_nonnull(strstr(mproc_error_detail(), "in band"));
	ck_assert_int_eq(mproc_decode(d, S("\x80\x05K\x01."), &v), 0);
	ck_assert_int_eq(mproc_value_buffer(v, &i, &ro), MPROC_ETYPE);
	ck_assert_uint_eq(i, 42);
	ck_assert(ro);
	mproc_decoder_free(d);
}
END_TEST

/* ---- drops and the transport's hooks ------------------------------------ */

struct counts {
	int allocs, drops, fail;
	size_t live; /* bytes handed out and not given back */
	uint64_t next_tag;
};

static void *ops_alloc(void *ctx, size_t len, uint64_t *tag)
{
	struct counts *c = ctx;
	if (c->fail)
		return NULL;
	c->allocs++;
	c->live += len;
	*tag = ++c->next_tag;
	return malloc(len);
}

static void ops_drop(void *ctx, void *p, size_t len, uint64_t tag)
{
	struct counts *c = ctx;
	ck_assert_uint_ne(tag, 0);
	c->drops++;
	c->live -= len;
	free(p);
}

START_TEST(test_oob_raise_and_reset_drop_the_buffers)
{
	struct counts c = {0};
	struct mproc__oob_ops ops = {ops_alloc, ops_drop, &c};
	struct mproc_writer *w = writer(5);
	mproc__writer_set_oob(w, &ops);
	char b[100] = {0};
	void *p;
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, b, 10, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc_write_reserve(w, 20, &p), 0);
	ck_assert_int_eq(mproc_write_buffer(w, b, 30, 0), 0); /* reference */
	ck_assert_int_eq(c.allocs, 2);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 3);
	ck_assert_int_eq(mproc_raise(w, "ValueError", "no"), MPROC_ERAISED);
	ck_assert_int_eq(c.drops, 2);
	ck_assert_uint_eq(c.live, 0);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 0);
	const void *data;
	size_t len;
	const struct mproc_buffer *bufs;
	size_t n;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 0);

	/* reset after a finished value drops its buffers too */
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_buffer(w, b, 40, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_int_eq(mproc_writer_buffers(w, &bufs, &n), 0);
	ck_assert_uint_eq(n, 1);
	mproc_writer_reset(w);
	ck_assert_int_eq(c.drops, 3);
	ck_assert_uint_eq(c.live, 0);

	/* without ops, or when the ops have nothing: the writer's malloc,
	 * freed by the writer (ASan would see a leak) */
	c.fail = 1;
	ck_assert_int_eq(mproc_write_buffer(w, b, 50, MPROC_BUFFER_COPY), 0);
	ck_assert_uint_eq(mproc__writer_oob(w)[0].flags,
	                  MPROC__OOB_READONLY | MPROC__OOB_MALLOC);
	ck_assert_uint_eq(mproc__writer_oob(w)[0].tag, 0);
	mproc_writer_reset(w);
	mproc__writer_set_oob(w, NULL);
	ck_assert_int_eq(mproc_write_buffer(w, b, 50, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc_raise(w, NULL, "%s", "x"), MPROC_ERAISED);
	ck_assert_int_eq(mproc_write_buffer(w, b, 60, MPROC_BUFFER_COPY),
	                 MPROC_EWRITER); /* a second top-level value */
	ck_assert_int_eq(c.allocs, 3);
	ck_assert_int_eq(c.drops, 3);
	/* free drops what is left */
	c.fail = 0;
	mproc__writer_set_oob(w, &ops);
	mproc_writer_reset(w);
	ck_assert_int_eq(mproc_write_buffer(w, b, 70, MPROC_BUFFER_COPY), 0);
	mproc_writer_free(w);
	ck_assert_int_eq(c.allocs, 4);
	ck_assert_int_eq(c.drops, 4);
	ck_assert_uint_eq(c.live, 0);
}
END_TEST

START_TEST(test_oob_ops_hooks_attach_end_take_and_restart)
{
	struct counts c = {0};
	struct mproc__oob_ops ops = {ops_alloc, ops_drop, &c};
	struct mproc_writer *w = writer(5);
	struct mproc__buf frame = {0};
	static const char ref[] = "by reference";
	char src[64];
	memset(src, 'c', sizeof src);
	mproc__writer_set_oob(w, &ops);
	ck_assert_int_eq(mproc__buf_append(&frame, "HDR", 3), 0);

	/* a task's value: a copy, a reservation, a reference */
	mproc__writer_attach(w, &frame);
	void *p;
	ck_assert_int_eq(mproc_write_tuple_begin(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, src, sizeof src,
	                                    MPROC_BUFFER_COPY |
	                                    MPROC_BUFFER_WRITABLE), 0);
	ck_assert_int_eq(mproc_write_reserve(w, 16, &p), 0);
	memset(p, 'r', 16);
	ck_assert_int_eq(mproc_write_buffer(w, ref, sizeof ref - 1, 0), 0);
	ck_assert_int_eq(mproc_write_tuple_end(w), 0);
	ck_assert_int_eq(mproc__writer_end_result(w), 0);
	ck_assert_mem_eq(frame.data, "HDR\x80\x05\x97\x97\x98\x97\x98\x87.",
	                 frame.len);

	/* after the end the list still holds the value's buffers */
	ck_assert_uint_eq(mproc__writer_oob_count(w), 3);
	const struct mproc__oob_buf *o = mproc__writer_oob(w);
	ck_assert_uint_eq(o[0].flags, MPROC__OOB_OPS);
	ck_assert_uint_eq(o[0].tag, 1);
	ck_assert_uint_eq(o[0].len, sizeof src);
	ck_assert_mem_eq(o[0].data, src, sizeof src);
	ck_assert_uint_eq(o[1].flags, MPROC__OOB_OPS | MPROC__OOB_READONLY);
	ck_assert_uint_eq(o[1].tag, 2);
	ck_assert_ptr_eq(o[1].data, p);
	ck_assert_uint_eq(o[2].flags, MPROC__OOB_READONLY);
	ck_assert_ptr_eq(o[2].data, ref);
	ck_assert_int_eq(c.allocs, 2);
	ck_assert_int_eq(c.drops, 0);

	/* the transport takes them: a restart no longer drops them */
	struct mproc__oob_buf taken[3];
	memcpy(taken, o, sizeof taken);
	mproc__writer_oob_take(w);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 0);
	mproc__writer_attach(w, &frame);
	ck_assert_int_eq(c.drops, 0);
	/* ... and gives them back itself */
	for (int i = 0; i < 2; i++)
		ops_drop(&c, (void *)taken[i].data, taken[i].len, taken[i].tag);

	/* untaken buffers of a finished value: the next attach drops them */
	ck_assert_int_eq(mproc_write_buffer(w, src, 8, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc__writer_end(w), 0);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 1);
	mproc__writer_attach(w, &frame);
	ck_assert_int_eq(c.drops, 3);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 0);
	/* ... and detaching (attach NULL) does too */
	ck_assert_int_eq(mproc_write_buffer(w, src, 8, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc__writer_end(w), 0);
	mproc__writer_attach(w, NULL);
	ck_assert_int_eq(c.drops, 4);

	/* an end that fails takes the value's buffers with its bytes */
	size_t before = frame.len;
	mproc__writer_attach(w, &frame);
	ck_assert_int_eq(mproc_write_list_begin(w), 0);
	ck_assert_int_eq(mproc_write_buffer(w, src, 8, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc__writer_end_result(w), MPROC_EWRITER);
	ck_assert_uint_eq(frame.len, before);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 0);
	ck_assert_int_eq(c.drops, 5);

	/* a task that raised: mproc_raise drops, the raise is the result */
	mproc__writer_attach(w, &frame);
	ck_assert_int_eq(mproc_write_buffer(w, src, 8, MPROC_BUFFER_COPY), 0);
	ck_assert_int_eq(mproc_raise(w, "OSError", "x"), MPROC_ERAISED);
	ck_assert_int_eq(c.drops, 6);
	ck_assert_int_eq(mproc__writer_end_result(w), 0);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 0);

	/* changing the ops gives blocks back to the ops that made them */
	struct counts c2 = {0};
	struct mproc__oob_ops ops2 = {ops_alloc, ops_drop, &c2};
	mproc__writer_attach(w, &frame);
	ck_assert_int_eq(mproc_write_buffer(w, src, 8, MPROC_BUFFER_COPY), 0);
	mproc__writer_set_oob(w, &ops2);
	ck_assert_int_eq(c.drops, 7);
	ck_assert_int_eq(c.allocs, 7);
	ck_assert_uint_eq(c.live, 0);
	mproc__writer_attach(w, NULL);
	ck_assert_int_eq(mproc_write_reserve(w, 8, &p), 0);
	ck_assert_int_eq(c2.allocs, 1);
	mproc_writer_free(w);
	ck_assert_int_eq(c2.drops, 1);
	ck_assert_uint_eq(c2.live, 0);

	/* the hot path's None is untouched by all this */
	ck_assert_uint_eq(c.allocs, c.drops);
	mproc__buf_free(&frame);
}
END_TEST

START_TEST(test_oob_taken_malloc_buffers_are_the_callers)
{
	struct mproc_writer *w = writer(5);
	char src[32] = "owned by the caller once taken";
	ck_assert_int_eq(mproc_write_buffer(w, src, sizeof src,
	                                    MPROC_BUFFER_COPY), 0);
	const void *data;
	size_t len;
	ck_assert_int_eq(mproc_writer_finish(w, &data, &len), 0);
	ck_assert_uint_eq(mproc__writer_oob_count(w), 1);
	struct mproc__oob_buf o = mproc__writer_oob(w)[0];
	ck_assert_uint_eq(o.flags, MPROC__OOB_READONLY | MPROC__OOB_MALLOC);
	mproc__writer_oob_take(w);
	mproc_writer_free(w);
	/* still ours to read and free (ASan: no double free, no leak) */
	ck_assert_mem_eq(o.data, src, sizeof src);
	free((void *)o.data);
}
END_TEST

/* ---- the pool's transport (lib/oob.c) ------------------------------------ */

/* A result record as a worker writes it: the pickle None, padding, one
 * descriptor naming block `tag` as the record's own, the trailer's tail. */
static size_t own_block_record(char *body, uint64_t tag, uint64_t len)
{
	memset(body, 0, 8);
	memcpy(body, "N.", 2);
	struct mproc__oobdesc d = {.addr = tag + sizeof(struct mproc__oobhdr),
	                           .len = len, .tag = tag,
	                           .flags = MPROC__OD_ARENA};
	memcpy(body + 8, &d, sizeof d);
	uint32_t tail[2] = {1, MPROC__OOB_MAGIC};
	memcpy(body + 8 + sizeof d, tail, sizeof tail);
	return 8 + sizeof d + sizeof tail;
}

/* A block that region r's worker made: held only when r's worker sent it.
 * A task that names another worker's block (forged bytes, or a copy of
 * another result's trailer) must not release it early. */
START_TEST(test_oob_result_naming_another_workers_block_is_not_taken)
{
	struct mproc__oob *o;
	ck_assert_int_eq(mproc__oob_new(&o, false, 2, 8u << 20, 16384), 0);
	ck_assert_uint_eq(o->nregions, 4);
	char *region1 = o->arena + o->arena_size - 3 * o->region_size;
	struct mproc__space sp = {.base = region1, .size = o->region_size};
	uint64_t tag;
	char *p = mproc__space_alloc(&sp, o->arena, 4096, &tag);
	ck_assert_ptr_nonnull(p);
	struct mproc__oobhdr *h = (void *)(o->arena + tag);
	ck_assert_uint_eq(atomic_load(&h->refs), 1);

	char body[64];
	size_t len = own_block_record(body, tag, 4096);
	/* Sent by region 0's worker (and by a worker with no region): not
	 * taken, and its count stays. */
	mproc__oob_sender(o, 0);
	ck_assert_uint_eq(mproc__oob_hold_body(o, body, len), 0);
	mproc__oob_discard(o, body, len);
	mproc__oob_sender(o, -1);
	ck_assert_uint_eq(mproc__oob_hold_body(o, body, len), 0);
	ck_assert_uint_eq(atomic_load(&h->refs), 1);
	/* Sent by its own worker: held, and released once. */
	len = own_block_record(body, tag, 4096);
	mproc__oob_sender(o, 1);
	ck_assert_uint_eq(mproc__oob_hold_body(o, body, len), 4096);
	mproc__oob_sender(o, MPROC__OOB_ANY);
	ck_assert_uint_eq(atomic_load(&h->refs), 1);
	mproc__oob_release_body(o, body, len);
	ck_assert_uint_eq(atomic_load(&h->refs), 0);
	free(sp.blk); /* the space's list, its writer's own */
	mproc__oob_put(o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pickle-oob");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_oob_copies_round_trip_and_outlive_the_source);
	tcase_add_test(tc, test_oob_references_point_at_the_callers_bytes);
	tcase_add_test(tc, test_oob_reservation_is_filled_in_place);
	tcase_add_test(tc, test_oob_zero_length_buffers);
	tcase_add_test(tc, test_oob_threshold_sends_big_bytes_out_of_band_but_not_keys);
	tcase_add_test(tc, test_oob_protocol_4_writer_refuses_buffers);
	tcase_add_test(tc, test_oob_writer_misuse);
	tcase_add_test(tc, test_oob_write_value_reemits_by_reference);
	tcase_add_test(tc, test_oob_decodes_cpython_buffer_callback_output);
	tcase_add_test(tc, test_oob_too_few_buffers_is_named);
	tcase_add_test(tc, test_oob_readonly_buffer_needs_a_buffer_on_the_stack);
	tcase_add_test(tc, test_oob_bytearray8_reads_as_bytes);
	tcase_add_test(tc, test_oob_buffers_do_not_count_against_max_size);
	tcase_add_test(tc, test_oob_decode_keep_buffers_keeps_earlier_trees);
	tcase_add_test(tc, test_oob_value_buffer_is_etype_for_everything_else);
	tcase_add_test(tc, test_oob_raise_and_reset_drop_the_buffers);
	tcase_add_test(tc, test_oob_result_naming_another_workers_block_is_not_taken);
	tcase_add_test(tc, test_oob_ops_hooks_attach_end_take_and_restart);
	tcase_add_test(tc, test_oob_taken_malloc_buffers_are_the_callers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
