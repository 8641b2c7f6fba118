/*
 * fuzz_pickle.c - libFuzzer target for the pickle decoder.
 *
 * Every input must decode or fail with a code, never crash, hang or read
 * out of bounds (ASan and UBSan are linked in), and give the same answer
 * from a fresh decoder as from one reused across inputs. A value that decodes is
 * walked through every accessor, re-encoded, and decoded again: the root
 * type must survive and a second re-encoding must give the same bytes.
 * Built by tests/meson.build with -Dfuzz and clang; run by tests/run-fuzz.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static struct mproc_decoder *fz_dec, *fz_dec2;
static struct mproc_writer *fz_w, *fz_w2;
/* Small limits keep every iteration fast. */
static const struct mproc_limits fz_lim = {.max_size = 1 << 20,
                                           .max_depth = 200};

__attribute__((noreturn)) static void fz_die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_pickle: %s: %s\n", what, mproc_err_name(rc));
	abort();
}

/* Touch every node, so that the sanitizers check each read. The decoder
 * bounds the memo-free size of a tree by max_size, so this terminates. */
static uint64_t fz_walk(const struct mproc_value *v)
{
	uint64_t h = (uint64_t)mproc_value_type(v);
	size_t n = 0;
	const char *s;
	const void *p;
	int64_t i;
	double f;
	bool b;
	if (mproc_value_int(v, &i) == 0)
		h += (uint64_t)i;
	if (mproc_value_float(v, &f) == 0)
		h += (uint64_t)(f == f);
	if (mproc_value_bool(v, &b) == 0)
		h += b;
	if (mproc_value_str(v, &s, &n) == 0 && n)
		h += (unsigned char)s[0] + (unsigned char)s[n - 1];
	if (mproc_value_bytes(v, &p, &n) == 0 && n)
		h += ((const unsigned char *)p)[n - 1];
	if (mproc_value_len(v, &n) == 0) {
		for (size_t k = 0; k < n; k++) {
			const struct mproc_value *a, *c;
			if (mproc_value_type(v) == MPROC_DICT) {
				if (mproc_value_dict_entry(v, k, &a, &c))
					abort();
				h += fz_walk(a) + fz_walk(c);
			} else {
				if (mproc_value_item(v, k, &a))
					abort();
				h += fz_walk(a);
			}
		}
		const struct mproc_value *x;
		if (mproc_value_type(v) == MPROC_DICT)
			(void)mproc_value_dict_get(v, "a", &x);
		else if (mproc_value_item(v, n, &x) != MPROC_EINDEX)
			abort();
	}
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_dec) {
		if (mproc_decoder_new(&fz_dec, &fz_lim) ||
		    mproc_decoder_new(&fz_dec2, &fz_lim) ||
		    mproc_writer_new(&fz_w, 5) || mproc_writer_new(&fz_w2, 4))
			abort();
	}
	/* An exact-size copy, so that ASan sees any read past the end. */
	uint8_t *msg = malloc(size ? size : 1);
	if (!msg)
		return 0;
	if (size)
		memcpy(msg, data, size);

	/* A fresh decoder (nothing grown yet) and a long-lived one (arena,
	 * stack and memo reused) must agree: decoding may not depend on
	 * what the decoder saw before. */
	struct mproc_decoder *fresh;
	if (mproc_decoder_new(&fresh, &fz_lim))
		abort();
	const struct mproc_value *v, *vl;
	int rc = mproc_decode(fresh, msg, size, &v);
	int rcl = mproc_decode(fz_dec, msg, size, &vl);
	if (rc != rcl || (rc == 0) != (v != NULL))
		fz_die("fresh and reused decoders disagree", rc);
	if (rc) {
		if (rc >= 0 || !mproc_decoder_error(fresh)[0] ||
		    strcmp(mproc_decoder_error(fresh),
		           mproc_decoder_error(fz_dec)))
			fz_die("error without text, or texts differ", rc);
		mproc_decoder_free(fresh);
		free(msg);
		return 0;
	}
	(void)fz_walk(vl);
	(void)fz_walk(v);

	mproc_writer_reset(fz_w);
	rc = mproc_write_value(fz_w, v);
	const void *out;
	size_t outlen;
	if (!rc)
		rc = mproc_writer_finish(fz_w, &out, &outlen);
	if (rc)
		fz_die("re-encoding a decoded value", rc);
	const struct mproc_value *v2;
	rc = mproc_decode(fz_dec2, out, outlen, &v2);
	if (rc) {
		fprintf(stderr, "%s\n", mproc_decoder_error(fz_dec2));
		fz_die("decoding the re-encoding", rc);
	}
	if (mproc_value_type(v) != mproc_value_type(v2))
		fz_die("root type changed", 0);
	/* Re-encoding is a fixed point after one round. */
	mproc_writer_reset(fz_w2);
	const void *out2;
	size_t outlen2;
	if (mproc_write_value(fz_w2, v2) ||
	    mproc_writer_finish(fz_w2, &out2, &outlen2))
		fz_die("second re-encoding", 0);
	/* Protocols differ (5 vs 4) only in the PROTO byte. */
	if (outlen2 != outlen || memcmp((const char *)out + 2,
	                                (const char *)out2 + 2, outlen - 2))
		fz_die("re-encoding is not stable", 0);
	mproc_decoder_free(fresh);
	free(msg);
	return 0;
}
