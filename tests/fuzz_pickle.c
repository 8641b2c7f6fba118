/*
 * fuzz_pickle.c - libFuzzer target for the pickle decoder.
 *
 * Every input must decode or fail with a code, never crash, hang or read
 * out of bounds (ASan and UBSan are linked in), and give the same answer
 * from a fresh decoder as from one reused across inputs. A value that decodes is
 * walked through every accessor, re-encoded, and decoded again: the root
 * type must survive and a second re-encoding must give the same bytes.
 * Every input is decoded again with a few out-of-band buffers
 * (mproc_decode_buffers): what mproc_decode reads must read the same with
 * them, a value from a buffer must point into the buffer it names, and
 * the re-encoding at protocol 5 (buffers by reference) must decode with
 * the buffers the writer lists and re-encode to the same bytes and
 * buffers, at protocol 4 (in band) without any.
 * Built by tests/meson.build with -Dfuzz and clang; run by tests/run-fuzz.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static struct mproc_decoder *fz_dec, *fz_dec2;
static struct mproc_writer *fz_w, *fz_w2, *fz_w5, *fz_w5b;
/* The out-of-band buffers of the tree being walked (fz_walk checks that a
 * value from a buffer points into the one it names). */
#define FZ_NBUFS 4
static struct mproc_buffer fz_bufs[FZ_NBUFS];
static const struct mproc_buffer *fz_cur;
static size_t fz_ncur;
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
	size_t idx;
	if (mproc_value_buffer(v, &idx, &b) == 0) {
		if (idx >= fz_ncur || mproc_value_bytes(v, &p, &n) ||
		    n != fz_cur[idx].len ||
		    (n && p != fz_cur[idx].data) ||
		    (fz_cur[idx].readonly && !b))
			abort();
		h += idx;
	}
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

/* Buffers of 0, 5, 300 and 1 bytes, the first two read-only, each an
 * exact-size allocation (ASan sees a read past any of them). */
static void fz_make_buffers(void)
{
	static const size_t lens[FZ_NBUFS] = {0, 5, 300, 1};
	for (size_t i = 0; i < FZ_NBUFS; i++) {
		unsigned char *p = lens[i] ? malloc(lens[i]) : NULL;
		if (lens[i] && !p)
			abort();
		for (size_t k = 0; k < lens[i]; k++)
			p[k] = (unsigned char)(i * 31 + k);
		fz_bufs[i] = (struct mproc_buffer){p, lens[i], i < 2};
	}
}

/* v decoded from msg with fz_bufs[0..nbufs): re-encode it by reference
 * and in band, and check both decode again. */
static void fz_buffers_roundtrip(const struct mproc_value *v)
{
	const void *out, *out2;
	size_t outlen, outlen2, n, n2;
	const struct mproc_buffer *b, *b2;
	mproc_writer_reset(fz_w5);
	if (mproc_write_value(fz_w5, v) ||
	    mproc_writer_finish(fz_w5, &out, &outlen) ||
	    mproc_writer_buffers(fz_w5, &b, &n))
		fz_die("re-encoding with buffers", 0);
	const struct mproc_value *v2;
	int rc = mproc_decode_buffers(fz_dec2, out, outlen, b, n, &v2);
	/* A buffer written in band (as a dict key or set item, or at
	 * protocol 4) takes its bytes once per reference, which the limit
	 * on the tree's size did not count (docs/pickle.md): its
	 * re-encoding may pass max_size. Nothing else may. */
	if (rc == MPROC_EPICKLE_TOOBIG)
		return;
	if (rc) {
		fprintf(stderr, "%s\n", mproc_decoder_error(fz_dec2));
		fz_die("decoding the re-encoding with its buffers", rc);
	}
	if (mproc_value_type(v) != mproc_value_type(v2))
		fz_die("root type changed (buffers)", 0);
	fz_cur = b;
	fz_ncur = n;
	(void)fz_walk(v2);
	/* By reference, so a second round lists the same buffers. */
	mproc_writer_reset(fz_w5b);
	if (mproc_write_value(fz_w5b, v2) ||
	    mproc_writer_finish(fz_w5b, &out2, &outlen2) ||
	    mproc_writer_buffers(fz_w5b, &b2, &n2))
		fz_die("second re-encoding with buffers", 0);
	if (outlen2 != outlen || memcmp(out, out2, outlen) || n2 != n)
		fz_die("re-encoding with buffers is not stable", 0);
	for (size_t i = 0; i < n; i++)
		if (b2[i].data != b[i].data || b2[i].len != b[i].len ||
		    b2[i].readonly != b[i].readonly)
			fz_die("buffers not passed on by reference", 0);
	/* In band at protocol 4: no NEXT_BUFFER left. */
	mproc_writer_reset(fz_w2);
	if (mproc_write_value(fz_w2, v) ||
	    mproc_writer_finish(fz_w2, &out2, &outlen2) ||
	    mproc_writer_buffers(fz_w2, &b2, &n2) || n2)
		fz_die("re-encoding in band", 0);
	rc = mproc_decode(fz_dec2, out2, outlen2, &v2);
	if (rc == MPROC_EPICKLE_TOOBIG)
		return;
	if (rc) {
		fprintf(stderr, "%s\n", mproc_decoder_error(fz_dec2));
		fz_die("decoding the in-band re-encoding", rc);
	}
	if (mproc_value_type(v) != mproc_value_type(v2))
		fz_die("root type changed (in band)", 0);
}

/* The same input with buffers: every NEXT_BUFFER takes one. `plain` is
 * mproc_decode's answer. */
static void fz_with_buffers(const uint8_t *msg, size_t size, int plain,
                            const struct mproc_value *pv)
{
	const struct mproc_value *v;
	/* A few buffers, then all: too few must fail cleanly. */
	for (size_t nb = 1; nb <= FZ_NBUFS; nb += FZ_NBUFS - 1) {
		int rc = mproc_decode_buffers(fz_dec, msg, size, fz_bufs, nb,
		                              &v);
		if ((rc == 0) != (v != NULL) ||
		    (rc && (rc >= 0 || !mproc_decoder_error(fz_dec)[0])))
			fz_die("decoding with buffers: code and value disagree",
			       rc);
		/* Without NEXT_BUFFER the buffers change nothing. */
		if (plain != MPROC_EPICKLE_BUFFERS && rc != plain)
			fz_die("buffers changed a decode without NEXT_BUFFER",
			       rc);
		if (plain == 0 && mproc_value_type(v) != mproc_value_type(pv))
			fz_die("buffers changed the root type", 0);
		if (rc)
			continue;
		fz_cur = fz_bufs;
		fz_ncur = nb;
		(void)fz_walk(v);
		fz_buffers_roundtrip(v);
	}
	fz_cur = NULL;
	fz_ncur = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz_dec) {
		if (mproc_decoder_new(&fz_dec, &fz_lim) ||
		    mproc_decoder_new(&fz_dec2, &fz_lim) ||
		    mproc_writer_new(&fz_w, 5) || mproc_writer_new(&fz_w2, 4) ||
		    mproc_writer_new(&fz_w5, 5) || mproc_writer_new(&fz_w5b, 5))
			abort();
		fz_make_buffers();
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
		fz_with_buffers(msg, size, rc, NULL);
		mproc_decoder_free(fresh);
		free(msg);
		return 0;
	}
	(void)fz_walk(vl);
	(void)fz_walk(v);
	/* fz_dec's tree is not used below: the decoder may decode again. */
	fz_with_buffers(msg, size, 0, v);

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
