/*
 * test_wire.c - frames and records (lib/wire.h): the 64-bit frame length,
 * the record escape past 4 GiB - 2, and what forged lengths give: always
 * MPROC_EPROTO (or "more bytes needed"), never a read past the bytes
 * present nor an allocation of what a header claims. The slow suite
 * (test_big_slow.c) sends real values past 4 GiB.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "lib/buf.h"
#include "lib/job.h"
#include "lib/wire.h"

/* Bytes in a buffer of exactly their size, so that ASan sees any read
 * past them. */
static char *exact(const void *p, size_t n)
{
	char *b = malloc(n ? n : 1);
	memcpy(b, p, n);
	return b;
}

START_TEST(test_wire_frame_length_uses_the_high_word)
{
	struct mproc__frame f = {0};
	mproc__frame_set_len(&f, (UINT64_C(5) << 32) | 7);
	ck_assert_uint_eq(f.len_lo, 7);
	ck_assert_uint_eq(f.len_hi, 5);
	ck_assert_uint_eq(mproc__frame_len(&f), (UINT64_C(5) << 32) | 7);
	/* A 0.3 frame (high word 0) reads as it did. */
	f.len_hi = 0;
	ck_assert_uint_eq(mproc__frame_len(&f), 7);

	struct mproc__buf b = {0};
	size_t hdr;
	ck_assert_int_eq(mproc__wire_begin(&b, &hdr), 0);
	ck_assert_int_eq(mproc__buf_append(&b, "abc", 3), 0);
	mproc__wire_end(&b, hdr, MPROC__F_RESULT, 0, 1, 9, 0);
	memcpy(&f, b.data, sizeof f);
	ck_assert_uint_eq(f.len_lo, 3);
	ck_assert_uint_eq(f.len_hi, 0);
	size_t off = 0;
	const char *payload;
	ck_assert_int_eq(mproc__wire_next(&b, &off, &f, &payload, 3), 1);
	ck_assert_ptr_eq(payload, b.data + MPROC__FRAME_HDR);
	ck_assert_uint_eq(off, b.len);
	mproc__buf_free(&b);
}
END_TEST

/* A header past the channel's maximum is refused from the header alone,
 * whichever word makes it too long; one within it waits for its bytes
 * without growing the buffer to what it claims. */
START_TEST(test_wire_frame_past_the_maximum_is_refused_before_its_bytes)
{
	struct mproc__frame f = {.type = MPROC__F_TASK, .count = 1, .id = 1};
	struct mproc__buf b = {0};
	size_t off = 0;
	const char *payload;
	struct mproc__frame got;

	mproc__frame_set_len(&f, UINT64_C(1) << 32); /* high word only */
	ck_assert_int_eq(mproc__buf_append(&b, &f, sizeof f), 0);
	ck_assert_int_eq(mproc__wire_next(&b, &off, &got, &payload,
	                                  (size_t)UINT32_MAX), MPROC_EPROTO);
	ck_assert_uint_eq(off, 0);

	/* Within a raised maximum: more bytes needed, nothing allocated by
	 * the parse. */
	ck_assert_int_eq(mproc__wire_next(&b, &off, &got, &payload,
	                                  (size_t)8 << 30), 0);
	ck_assert_uint_eq(b.cap, 256);

	b.len = 0;
	mproc__frame_set_len(&f, UINT64_MAX);
	ck_assert_int_eq(mproc__buf_append(&b, &f, sizeof f), 0);
	ck_assert_int_eq(mproc__wire_next(&b, &off, &got, &payload, SIZE_MAX),
	                 0); /* no overflow: still "more bytes" */
	ck_assert_int_eq(mproc__wire_next(&b, &off, &got, &payload,
	                                  (size_t)8 << 30), MPROC_EPROTO);
	/* expect() leaves a frame past the maximum to wire_next. */
	ck_assert_int_eq(mproc__wire_expect(&b, 0, (size_t)8 << 30), 0);
	ck_assert_uint_eq(b.cap, 256);
	mproc__buf_free(&b);
}
END_TEST

/* expect() makes room for the rest of a big frame once. */
START_TEST(test_wire_expect_reserves_the_frame_once)
{
	struct mproc__frame f = {.type = MPROC__F_RESULT, .count = 1, .id = 1};
	mproc__frame_set_len(&f, (size_t)100 << 20);
	struct mproc__buf b = {0};
	ck_assert_int_eq(mproc__buf_append(&b, &f, sizeof f), 0);
	ck_assert_int_eq(mproc__wire_expect(&b, 0, (size_t)1 << 30), 0);
	ck_assert_uint_ge(b.cap, MPROC__FRAME_HDR + ((size_t)100 << 20));
	ck_assert_uint_lt(b.cap, (size_t)102 << 20); /* not 128 MiB */
	mproc__buf_free(&b);
}
END_TEST

/* Below the escape, records are the 0.3 bytes exactly. */
START_TEST(test_wire_small_records_keep_their_layout)
{
	struct mproc__buf b = {0};
	ck_assert_int_eq(mproc__task_rec_append(&b, "\x80\x05N.", 4), 0);
	ck_assert_uint_eq(b.len, 8);
	uint32_t l;
	memcpy(&l, b.data, 4);
	ck_assert_uint_eq(l, 4);
	ck_assert_int_eq(memcmp(b.data + 4, "\x80\x05N.", 4), 0);
	ck_assert_uint_eq(mproc__task_rec_size(0, b.data), 8);

	/* A result record reserved, written and closed. */
	b.len = 0;
	b.len += MPROC__RESULT_REC;
	ck_assert_int_eq(mproc__buf_append(&b, "\x80\x05K\x07.", 5), 0);
	ck_assert_int_eq(mproc__result_rec_close(&b, 0, MPROC_RAISED), 0);
	uint32_t hdr[2];
	memcpy(hdr, b.data, 8);
	ck_assert_uint_eq(hdr[0], 5);
	ck_assert_uint_eq(hdr[1], MPROC_RAISED);
	char *e = exact(b.data, b.len);
	struct mproc__rec r = mproc__result_rec_read(e, e + b.len);
	ck_assert_ptr_eq(r.body, e + 8);
	ck_assert_uint_eq(mproc__result_rec_status(e), MPROC_RAISED);
	ck_assert_uint_eq(r.len, 5);
	free(e);
	mproc__buf_free(&b);
}
END_TEST

/* The escaped layout, made small by hand (a real one is 4 GiB): header
 * words, u64 length, pickle; the size walk reads it, and the checked
 * readers refuse it because its length is below the escape's. */
START_TEST(test_wire_escape_layout_and_canonical_length)
{
	struct mproc__buf b = {0};
	b.len = MPROC__RESULT_REC;
	ck_assert_int_eq(mproc__buf_append(&b, "0123456789", 10), 0);
	ck_assert_int_eq(mproc__rec_close_big(&b, 0, MPROC__RESULT_REC, 10,
	                                      MPROC_OK), 0);
	ck_assert_uint_eq(b.len, 16 + 10);
	uint32_t w[2];
	uint64_t n;
	memcpy(w, b.data, 8);
	memcpy(&n, b.data + 8, 8);
	ck_assert_uint_eq(w[0], MPROC__REC_ESC);
	ck_assert_uint_eq(w[1], MPROC_OK);
	ck_assert_uint_eq(n, 10);
	ck_assert_int_eq(memcmp(b.data + 16, "0123456789", 10), 0);
	ck_assert_ptr_null(mproc__result_rec_read(b.data, b.data + b.len).body);
	size_t len;

	b.len = MPROC__TASK_REC;
	ck_assert_int_eq(mproc__buf_append(&b, "abc", 3), 0);
	ck_assert_int_eq(mproc__rec_close_big(&b, 0, MPROC__TASK_REC, 3, 0), 0);
	ck_assert_uint_eq(b.len, 12 + 3);
	ck_assert_uint_eq(mproc__task_rec_size(0, b.data), 15);
	const char *p = b.data;
	ck_assert_int_eq(mproc__task_rec_next(&p, b.data + b.len, &len),
	                 MPROC_EPROTO);
	ck_assert_ptr_eq(p, b.data);
	mproc__buf_free(&b);
}
END_TEST

struct forged {
	const char *what;
	unsigned char bytes[24];
	size_t n;
};

/* Records whose lengths lie: each refused, none read past its bytes. */
START_TEST(test_wire_forged_record_lengths_are_eproto)
{
	static const struct forged task[] = {
		{"cut header", {4, 0}, 2},
		{"length past the bytes", {5, 0, 0, 0, 'a', 'b'}, 6},
		{"escape, no u64", {0xff, 0xff, 0xff, 0xff}, 4},
		{"escape, u64 cut short", {0xff, 0xff, 0xff, 0xff, 1, 0, 0}, 7},
		{"escape past the bytes",
		 {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 'x'}, 13},
		{"escape of 2^63",
		 {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x80, 'x'}, 13},
		{"escape of 2^64 - 1",
		 {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff}, 12},
		{"escape below 4 GiB - 1",
		 {0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 'x'}, 13},
	};
	for (size_t i = 0; i < sizeof task / sizeof task[0]; i++) {
		char *e = exact(task[i].bytes, task[i].n);
		const char *p = e;
		size_t len = 12345;
		ck_assert_msg(mproc__task_rec_next(&p, e + task[i].n, &len) ==
		                      MPROC_EPROTO, "task: %s", task[i].what);
		ck_assert_ptr_eq(p, e);
		ck_assert_uint_eq(len, 12345);
		free(e);
	}
	static const struct forged result[] = {
		{"cut header", {4, 0, 0, 0, 0, 0}, 6},
		{"length past the bytes", {5, 0, 0, 0, 0, 0, 0, 0, 'a'}, 9},
		{"escape, no u64", {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, 8},
		{"escape, u64 cut short",
		 {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 1}, 13},
		{"escape past the bytes",
		 {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
		  'x'}, 17},
		{"escape of 2^64 - 1",
		 {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff, 0xff, 0xff}, 16},
	};
	for (size_t i = 0; i < sizeof result / sizeof result[0]; i++) {
		char *e = exact(result[i].bytes, result[i].n);
		ck_assert_msg(!mproc__result_rec_read(e, e + result[i].n).body,
		              "result: %s", result[i].what);
		free(e);
	}
}
END_TEST

/* The manager's parser of result frames answers a forged escape with
 * MPROC_EPROTO and stores nothing. */
START_TEST(test_wire_job_store_run_refuses_forged_escape)
{
	static const unsigned char cut[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
	                                    1, 0, 0};
	static const unsigned char past[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
	                                     0, 0, 0, 0, 1, 0, 0, 0, 0x80, 5};
	const unsigned char *bufs[] = {cut, past};
	size_t lens[] = {sizeof cut, sizeof past};
	for (int i = 0; i < 2; i++) {
		struct mproc__job *job = mproc__job_new(NULL, MPROC__JOB_ORDERED,
		                                        NULL, 1, 0);
		ck_assert_ptr_nonnull(job);
		ck_assert_int_eq(mproc__job_set_window(job, 4, 4), 0);
		char *e = exact(bufs[i], lens[i]);
		size_t stored = 99;
		ck_assert_int_eq(mproc__job_store_run(job, 0, 1, e, e + lens[i], 1,
		                                      &stored), MPROC_EPROTO);
		ck_assert_uint_eq(stored, 0);
		free(e);
		mproc__job_free(job);
	}
}
END_TEST

START_TEST(test_wire_pool_limit_up_to_the_documented_maximum)
{
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	struct mproc_pool *pool = NULL;
	o.processes = 1;
	o.limits.max_size = MPROC_LIMITS_MAX_SIZE + 1;
	ck_assert_int_eq(mproc_pool_open(&pool, &o), -EINVAL);
	ck_assert_ptr_null(pool);
	o.limits.max_size = (size_t)8 << 30;
	ck_assert_int_eq(mproc_pool_open(&pool, &o), 0);
	ck_assert_int_eq(mproc_pool_close(pool), 0);
	ck_assert_int_eq(mproc_pool_join(pool), 0);
	mproc_pool_free(pool);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_wire_frame_length_uses_the_high_word);
	tcase_add_test(tc, test_wire_frame_past_the_maximum_is_refused_before_its_bytes);
	tcase_add_test(tc, test_wire_expect_reserves_the_frame_once);
	tcase_add_test(tc, test_wire_small_records_keep_their_layout);
	tcase_add_test(tc, test_wire_escape_layout_and_canonical_length);
	tcase_add_test(tc, test_wire_forged_record_lengths_are_eproto);
	tcase_add_test(tc, test_wire_job_store_run_refuses_forged_escape);
	tcase_add_test(tc, test_wire_pool_limit_up_to_the_documented_maximum);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
