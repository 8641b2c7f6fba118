/*
 * repr.c - mproc_value_repr(): Python's repr() of a decoded value, so that
 * examples and tools print what Python prints.
 *
 * Output goes through a bounded writer that counts what it could not
 * store, as snprintf does. Recursion follows the tree, whose depth the
 * decoder bounded (mproc_limits.max_depth), with a limit of its own for
 * trees that were built some other way.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

#define REPR_MAX_DEPTH 10000

struct out {
	char *buf;
	size_t cap, len; /* len counts every byte, stored or not */
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Python's float repr: the shortest digits that read back the same,
 * positional from 1e-4 up to 1e16, scientific outside. */
static void repr_float(struct out *o, double x)
{
	if (isnan(x)) {
		puts_(o, "nan");
		return;
	}
	if (isinf(x)) {
		puts_(o, x < 0 ? "-inf" : "inf");
		return;
	}
	char e[40];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, x);
		if (strtod(e, NULL) == x)
			break;
	}
	/* e is [-]d[.ddd]e[+-]XX: take the digits and the exponent. */
	const char *p = e;
	bool neg = *p == '-';
	if (neg)
		p++;
	char digits[20];
	int nd = 0;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	int exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	char s[64];
	int k = 0;
	if (neg)
		s[k++] = '-';
	if (exp >= -5 + 1 && exp < 16) {
		if (exp < 0) {
			s[k++] = '0';
			s[k++] = '.';
			for (int i = 0; i < -exp - 1; i++)
				s[k++] = '0';
			for (int i = 0; i < nd; i++)
				s[k++] = digits[i];
		} else {
			for (int i = 0; i <= exp; i++)
				s[k++] = i < nd ? digits[i] : '0';
			s[k++] = '.';
			if (nd > exp + 1)
				for (int i = exp + 1; i < nd; i++)
					s[k++] = digits[i];
			else
				s[k++] = '0';
		}
		s[k] = '\0';
	} else {
		s[k++] = digits[0];
		if (nd > 1) {
			s[k++] = '.';
			for (int i = 1; i < nd; i++)
				s[k++] = digits[i];
		}
		snprintf(s + k, sizeof s - (size_t)k, "e%c%02d",
		         exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	}
	puts_(o, s);
}

/* A str or bytes literal with Python's choice of quote and escapes.
 * Text is UTF-8; non-ASCII characters are kept as they are, but for the
 * C1 controls (U+0080..U+009F), which Python escapes as \x80.. too. */
static void repr_text(struct out *o, const char *s, size_t n, bool bytes)
{
	bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
	char quote = sq && !dq ? '"' : '\'';
	if (bytes)
		put(o, "b", 1);
	put(o, &quote, 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c == '\\' || c == (unsigned char)quote) {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c == '\r') {
			put(o, "\\r", 2);
		} else if (c == '\t') {
			put(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
			snprintf(esc, sizeof esc, "\\x%02x", c);
			put(o, esc, 4);
		} else if (!bytes && c == 0xc2 && i + 1 < n &&
		           (unsigned char)s[i + 1] >= 0x80 &&
		           (unsigned char)s[i + 1] <= 0x9f) {
			snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[++i]);
			put(o, esc, 4);
		} else {
			put(o, (const char *)&s[i], 1);
		}
	}
	put(o, &quote, 1);
}

static int repr_value(struct out *o, const struct mproc_value *v,
                      unsigned depth)
{
	if (depth > REPR_MAX_DEPTH)
		return MPROC_EPICKLE_DEPTH;
	char num[32];
	bool b;
	int64_t i;
	double d;
	const char *s;
	const void *bp;
	size_t n;
	int rc = 0;
	enum mproc_type t = mproc_value_type(v);
	switch (t) {
	case MPROC_NONE:
		puts_(o, "None");
		return 0;
	case MPROC_BOOL:
		mproc_value_bool(v, &b);
		puts_(o, b ? "True" : "False");
		return 0;
	case MPROC_INT:
		mproc_value_int(v, &i);
		snprintf(num, sizeof num, "%lld", (long long)i);
		puts_(o, num);
		return 0;
	case MPROC_FLOAT:
		mproc_value_float(v, &d);
		repr_float(o, d);
		return 0;
	case MPROC_STR:
		mproc_value_str(v, &s, &n);
		repr_text(o, s, n, false);
		return 0;
	case MPROC_BYTES:
		mproc_value_bytes(v, &bp, &n);
		repr_text(o, bp, n, true);
		return 0;
	case MPROC_DICT:
		mproc_value_len(v, &n);
		put(o, "{", 1);
		for (size_t k = 0; k < n && rc == 0; k++) {
			const struct mproc_value *key, *val;
			mproc_value_dict_entry(v, k, &key, &val);
			if (k)
				put(o, ", ", 2);
			rc = repr_value(o, key, depth + 1);
			put(o, ": ", 2);
			if (rc == 0)
				rc = repr_value(o, val, depth + 1);
		}
		put(o, "}", 1);
		return rc;
	case MPROC_TUPLE:
	case MPROC_LIST:
	case MPROC_SET:
	case MPROC_FROZENSET:
		break;
	}
	mproc_value_len(v, &n);
	const char *open = "[", *close = "]";
	if (t == MPROC_TUPLE) {
		open = "(";
		close = n == 1 ? ",)" : ")";
	} else if (t == MPROC_SET) {
		open = n ? "{" : "set(";
		close = n ? "}" : ")";
	} else if (t == MPROC_FROZENSET) {
		open = n ? "frozenset({" : "frozenset(";
		close = n ? "})" : ")";
	}
	puts_(o, open);
	for (size_t k = 0; k < n && rc == 0; k++) {
		const struct mproc_value *item;
		mproc_value_item(v, k, &item);
		if (k)
			put(o, ", ", 2);
		rc = repr_value(o, item, depth + 1);
	}
	puts_(o, close);
	return rc;
}

int mproc_value_repr(const struct mproc_value *v, char *buf, size_t size,
                     size_t *len)
{
	if (!v || (!buf && size))
		return -EINVAL;
	struct out o = {.buf = buf, .cap = size ? size - 1 : 0};
	int rc = repr_value(&o, v, 0);
	if (size)
		buf[o.len < o.cap ? o.len : o.cap] = '\0';
	if (len)
		*len = o.len;
	if (rc < 0)
		return rc;
	return o.len > o.cap ? -ENOBUFS : 0;
}
