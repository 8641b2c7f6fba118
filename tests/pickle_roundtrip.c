/*
 * pickle_roundtrip.c - the C half of tests/interop_pickle.py.
 *
 *   pickle_roundtrip          read frames from stdin, decode each pickle,
 *                             re-encode it with mproc_write_value() and
 *                             write the result back
 *   pickle_roundtrip --write  write a fixed set of values made with the
 *                             writer calls (the script knows what they are)
 *   pickle_roundtrip --buffers P
 *                             out-of-band buffers: each input frame is a
 *                             bundle (below); decode it with its buffers,
 *                             list the values that came from them, and
 *                             re-encode it with a protocol P writer
 *   pickle_roundtrip --write-buffers
 *                             write a fixed set of values with out-of-band
 *                             buffers (copies, references, reservations,
 *                             the threshold), as bundles
 *
 * Input frames: 4-byte little-endian length, then the pickle.
 * Output frames: 4-byte little-endian length of what follows, one status
 * byte ('P': a pickle follows; 'E': an error "MPROC_EPICKLE_X: text"
 * follows; 'B': a listing and a bundle follow), then the payload.
 * Re-encoding alternates protocols 5 and 4.
 *
 * A bundle is a pickle with its buffers: u32 count, then per buffer a
 * readonly byte (0/1), u32 length and the bytes, then the pickle to the
 * end. A listing is u32 count, then per value that came from a buffer (in
 * the order a depth-first walk of the tree meets them) u32 index and a
 * readonly byte.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static void put_frame(char status, const void *p, size_t n)
{
	unsigned char h[5];
	uint32_t len = (uint32_t)n + 1;
	for (int i = 0; i < 4; i++)
		h[i] = (unsigned char)(len >> (8 * i));
	h[4] = (unsigned char)status;
	if (fwrite(h, 1, 5, stdout) != 5 || (n && fwrite(p, 1, n, stdout) != n)) {
		perror("pickle_roundtrip: write");
		exit(2);
	}
}

static void put_error(int rc, const char *text)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "%s: %s", mproc_err_name(rc), text);
	put_frame('E', msg, n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n
	                                                       : sizeof msg - 1);
}

static int roundtrip(void)
{
	struct mproc_decoder *d;
	struct mproc_writer *w[2];
	if (mproc_decoder_new(&d, NULL) || mproc_writer_new(&w[0], 5) ||
	    mproc_writer_new(&w[1], 4))
		return 2;
	unsigned char h[4];
	size_t cap = 0;
	char *buf = NULL;
	for (unsigned long k = 0;; k++) {
		size_t got = fread(h, 1, 4, stdin);
		if (got == 0)
			break;
		if (got != 4) {
			fprintf(stderr, "pickle_roundtrip: short frame header\n");
			return 2;
		}
		size_t n = (size_t)h[0] | (size_t)h[1] << 8 |
		           (size_t)h[2] << 16 | (size_t)h[3] << 24;
		if (n > cap) {
			free(buf);
			cap = n;
			buf = malloc(cap);
			if (!buf)
				return 2;
		}
		if (fread(buf, 1, n, stdin) != n) {
			fprintf(stderr, "pickle_roundtrip: short frame\n");
			return 2;
		}
		const struct mproc_value *v;
		int rc = mproc_decode(d, buf, n, &v);
		if (rc) {
			put_error(rc, mproc_decoder_error(d));
			continue;
		}
		struct mproc_writer *wr = w[k & 1];
		mproc_writer_reset(wr);
		const void *out;
		size_t outlen;
		rc = mproc_write_value(wr, v);
		if (!rc)
			rc = mproc_writer_finish(wr, &out, &outlen);
		if (rc)
			put_error(rc, "re-encoding failed");
		else
			put_frame('P', out, outlen);
	}
	free(buf);
	mproc_writer_free(w[0]);
	mproc_writer_free(w[1]);
	mproc_decoder_free(d);
	return 0;
}

/* ---- out-of-band buffers ------------------------------------------------- */

struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			exit(2);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u32(struct bytes *b, size_t v)
{
	unsigned char h[4];
	for (int i = 0; i < 4; i++)
		h[i] = (unsigned char)(v >> (8 * i));
	put(b, h, 4);
}

static size_t get_u32(const unsigned char *p)
{
	return (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
	       (size_t)p[3] << 24;
}

/* The values of v's tree that came from a buffer, depth first. */
static void list_oob(struct bytes *out, size_t *count,
                     const struct mproc_value *v)
{
	size_t idx, n;
	bool ro;
	if (mproc_value_buffer(v, &idx, &ro) == 0) {
		put_u32(out, idx);
		put(out, &(unsigned char){ro}, 1);
		++*count;
		return;
	}
	if (mproc_value_len(v, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct mproc_value *k, *x;
		if (mproc_value_type(v) == MPROC_DICT) {
			mproc_value_dict_entry(v, i, &k, &x);
			list_oob(out, count, k);
			list_oob(out, count, x);
		} else {
			mproc_value_item(v, i, &x);
			list_oob(out, count, x);
		}
	}
}

/* A 'B' frame: the listing (if any) and the finished value of w with its
 * buffers. */
static void put_bundle(struct mproc_writer *w, const struct bytes *listing,
                       size_t nlisted)
{
	const void *data;
	size_t len, n;
	const struct mproc_buffer *bufs;
	int rc = mproc_writer_finish(w, &data, &len);
	if (!rc)
		rc = mproc_writer_buffers(w, &bufs, &n);
	if (rc) {
		put_error(rc, "writer");
		return;
	}
	struct bytes out = {0};
	put_u32(&out, nlisted);
	if (listing)
		put(&out, listing->p, listing->len);
	put_u32(&out, n);
	for (size_t i = 0; i < n; i++) {
		put(&out, &(unsigned char){bufs[i].readonly}, 1);
		put_u32(&out, bufs[i].len);
		put(&out, bufs[i].data, bufs[i].len);
	}
	put(&out, data, len);
	put_frame('B', out.p, out.len);
	free(out.p);
}

static int roundtrip_buffers(int protocol)
{
	struct mproc_decoder *d;
	struct mproc_writer *w;
	if (mproc_decoder_new(&d, NULL) || mproc_writer_new(&w, protocol))
		return 2;
	unsigned char h[4];
	for (;;) {
		size_t got = fread(h, 1, 4, stdin);
		if (got == 0)
			break;
		if (got != 4)
			return 2;
		size_t n = get_u32(h);
		/* exact size, so that ASan would see a read past the end */
		unsigned char *buf = malloc(n ? n : 1);
		if (!buf || fread(buf, 1, n, stdin) != n)
			return 2;
		/* parse the bundle: the buffers point into buf */
		size_t off = 4, nb = n >= 4 ? get_u32(buf) : 0;
		struct mproc_buffer *bufs = calloc(nb ? nb : 1, sizeof *bufs);
		if (!bufs || n < 4)
			return 2;
		for (size_t i = 0; i < nb; i++) {
			if (off + 5 > n)
				return 2;
			bufs[i].readonly = buf[off];
			bufs[i].len = get_u32(buf + off + 1);
			off += 5;
			if (bufs[i].len > n - off)
				return 2;
			bufs[i].data = buf + off;
			off += bufs[i].len;
		}
		const struct mproc_value *v;
		int rc = mproc_decode_buffers(d, buf + off, n - off, bufs, nb,
		                              &v);
		free(bufs); /* the tree points into buf, not into bufs */
		if (rc) {
			put_error(rc, mproc_decoder_error(d));
			free(buf);
			continue;
		}
		struct bytes listing = {0};
		size_t nlisted = 0;
		list_oob(&listing, &nlisted, v);
		mproc_writer_reset(w);
		rc = mproc_write_value(w, v);
		if (rc)
			put_error(rc, "re-encoding failed");
		else
			put_bundle(w, &listing, nlisted);
		free(listing.p);
		free(buf);
	}
	mproc_writer_free(w);
	mproc_decoder_free(d);
	return 0;
}

/* Each writes one value with buffers; interop_pickle.py knows them. */
static const char oob_ref[] = "a reference to the caller's bytes";

static void b_kinds(struct mproc_writer *w)
{
	char tmp[] = "copied, then overwritten";
	void *p;
	mproc_write_list_begin(w);
	mproc_write_buffer(w, tmp, sizeof tmp - 1, MPROC_BUFFER_COPY);
	mproc_write_buffer(w, tmp, sizeof tmp - 1,
	                   MPROC_BUFFER_COPY | MPROC_BUFFER_WRITABLE);
	memset(tmp, '#', sizeof tmp - 1);
	mproc_write_buffer(w, oob_ref, sizeof oob_ref - 1, 0);
	mproc_write_buffer(w, oob_ref, 5, MPROC_BUFFER_WRITABLE);
	if (mproc_write_reserve(w, 1000, &p) == 0)
		for (int i = 0; i < 1000; i++)
			((unsigned char *)p)[i] = (unsigned char)(i * 7);
	mproc_write_buffer(w, NULL, 0, 0);
	mproc_write_bytes(w, "in band", 7);
	mproc_write_list_end(w);
}

static void b_nested(struct mproc_writer *w)
{
	mproc_write_dict_begin(w);
	mproc_write_cstr(w, "t");
	mproc_write_tuple_begin(w);
	mproc_write_int(w, 1);
	mproc_write_buffer(w, "xyz", 3, MPROC_BUFFER_COPY);
	mproc_write_tuple_end(w);
	mproc_write_bytes(w, "key", 3);
	mproc_write_list_begin(w);
	mproc_write_buffer(w, "w", 1, MPROC_BUFFER_WRITABLE);
	mproc_write_list_end(w);
	mproc_write_dict_end(w);
}

static void b_threshold(struct mproc_writer *w)
{
	static char big[5000];
	memset(big, 'T', sizeof big);
	mproc_writer_set_oob_threshold(w, 1000);
	mproc_write_dict_begin(w);
	mproc_write_bytes(w, big, sizeof big); /* a key: in band */
	mproc_write_bytes(w, big, sizeof big); /* out */
	mproc_write_bytes(w, big, 999);        /* in */
	mproc_write_bytes(w, big, 1000);       /* out */
	mproc_write_dict_end(w);
}

static int write_buffers(void)
{
	static void (*const fns[])(struct mproc_writer *) = {
		b_kinds, b_nested, b_threshold,
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		struct mproc_writer *w;
		if (mproc_writer_new(&w, 5))
			return 2;
		fns[i](w);
		put_bundle(w, NULL, 0);
		mproc_writer_free(w);
	}
	return 0;
}

/* Each builds one value; interop_pickle.py lists the same values. */
static void v_scalars(struct mproc_writer *w)
{
	static const int64_t ints[] = {
		0, 1, -1, 255, 256, 65535, 65536, INT32_MAX, INT32_MIN,
		(int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1,
		INT64_C(1) << 40, INT64_MAX, INT64_MIN,
	};
	mproc_write_list_begin(w);
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		mproc_write_int(w, ints[i]);
	mproc_write_none(w);
	mproc_write_bool(w, true);
	mproc_write_bool(w, false);
	mproc_write_float(w, 1.5);
	mproc_write_float(w, -0.0);
	mproc_write_float(w, INFINITY);
	mproc_write_float(w, -INFINITY);
	mproc_write_float(w, NAN);
	mproc_write_list_end(w);
}

static void v_text(struct mproc_writer *w)
{
	static char big[70000];
	memset(big, 'q', sizeof big);
	mproc_write_tuple_begin(w);
	mproc_write_cstr(w, "");
	mproc_write_cstr(w, "h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	mproc_write_bytes(w, "", 0);
	mproc_write_bytes(w, "\x00\xff", 2);
	mproc_write_str(w, big, 300);
	mproc_write_bytes(w, big, sizeof big);
	mproc_write_tuple_end(w);
}

static void v_tuples(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	for (int n = 0; n <= 5; n++) {
		mproc_write_tuple_begin(w);
		for (int i = 0; i < n; i++)
			mproc_write_int(w, i);
		mproc_write_tuple_end(w);
	}
	/* a 1-tuple too big to lose its MARK */
	static char big[1000];
	memset(big, 'b', sizeof big);
	mproc_write_tuple_begin(w);
	mproc_write_bytes(w, big, sizeof big);
	mproc_write_tuple_end(w);
	mproc_write_list_end(w);
}

static void v_dicts(struct mproc_writer *w)
{
	mproc_write_dict_begin(w);
	mproc_write_cstr(w, "a");
	mproc_write_int(w, 1);
	mproc_write_int(w, 2);
	mproc_write_list_begin(w);
	mproc_write_list_end(w);
	mproc_write_tuple_begin(w);
	mproc_write_int(w, 3);
	mproc_write_cstr(w, "c");
	mproc_write_frozenset_begin(w);
	mproc_write_int(w, 4);
	mproc_write_frozenset_end(w);
	mproc_write_tuple_end(w);
	mproc_write_dict_begin(w);
	mproc_write_dict_end(w);
	mproc_write_none(w);
	mproc_write_set_begin(w);
	mproc_write_int(w, 5);
	mproc_write_cstr(w, "x");
	mproc_write_tuple_begin(w);
	mproc_write_int(w, 6);
	mproc_write_tuple_end(w);
	mproc_write_set_end(w);
	mproc_write_dict_end(w);
}

static void v_empties(struct mproc_writer *w)
{
	mproc_write_tuple_begin(w);
	mproc_write_list_begin(w);
	mproc_write_list_end(w);
	mproc_write_dict_begin(w);
	mproc_write_dict_end(w);
	mproc_write_set_begin(w);
	mproc_write_set_end(w);
	mproc_write_frozenset_begin(w);
	mproc_write_frozenset_end(w);
	mproc_write_tuple_begin(w);
	mproc_write_tuple_end(w);
	mproc_write_tuple_end(w);
}

static void v_deep(struct mproc_writer *w)
{
	for (int i = 0; i < 500; i++)
		mproc_write_list_begin(w);
	mproc_write_int(w, 7);
	for (int i = 0; i < 500; i++)
		mproc_write_list_end(w);
}

static void v_big_list(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	for (int i = 0; i < 100000; i++)
		mproc_write_int(w, i);
	mproc_write_list_end(w);
}

static void v_raise(struct mproc_writer *w)
{
	mproc_write_list_begin(w);
	mproc_write_int(w, 1);
	mproc_raise(w, "ValueError", "bad value %d: %s", 42, "\xff!");
}

static int write_fixed(void)
{
	static void (*const fns[])(struct mproc_writer *) = {
		v_scalars, v_text, v_tuples, v_dicts, v_empties, v_deep,
		v_big_list, v_raise,
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		struct mproc_writer *w;
		if (mproc_writer_new(&w, i & 1 ? 4 : 5))
			return 2;
		fns[i](w);
		const void *p;
		size_t n;
		int rc = mproc_writer_finish(w, &p, &n);
		if (rc)
			put_error(rc, "writer");
		else
			put_frame('P', p, n);
		mproc_writer_free(w);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc;
	if (argc > 1 && !strcmp(argv[1], "--write"))
		rc = write_fixed();
	else if (argc > 2 && !strcmp(argv[1], "--buffers"))
		rc = roundtrip_buffers(atoi(argv[2]));
	else if (argc > 1 && !strcmp(argv[1], "--write-buffers"))
		rc = write_buffers();
	else
		rc = roundtrip();
	if (fflush(stdout) != 0)
		return 2;
	return rc;
}
