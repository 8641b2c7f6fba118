/*
 * parse.c - reading decoded values into C variables: mproc_value_parse()
 * with a format string, as Python's PyArg_ParseTuple() reads arguments;
 * a dict's entries one by one; a NUL-terminated copy of a str.
 *
 * mproc_value_parse() walks the value twice: first to check every item
 * against the format (types, lengths, ranges), then to store. So on an
 * error nothing was stored, and the error names the item by its path
 * ("at [1][0]"), the type the format expected and the one found
 * (mproc_error_detail()).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "mproc.h"
#include "detail.h"

static const char parse_letters[] = "bhiBHIlkLKnpdfszyO";

static bool parse_skip_char(char c)
{
	return c == ' ' || c == '\t' || c == ',' || c == ':';
}

/* Check the format; count its top-level items and whether it has '|' at
 * the top. -EINVAL with a detail on a bad format. */
static int parse_check(const char *fmt, size_t *top, bool *top_bar)
{
	char stack[64];
	bool bar[65] = {false};
	size_t opened[64];
	unsigned depth = 0;
	*top = 0;
	for (size_t i = 0; fmt[i]; i++) {
		char c = fmt[i];
		if (parse_skip_char(c))
			continue;
		if (c == '{' || c == '}')
			return mproc__detail_text(-EINVAL,
			        "format \"%s\", position %zu: a parse format "
			        "has no dict: read one with 'O' and "
			        "mproc_value_dict_next()", fmt, i);
		if (c == '|') {
			if (bar[depth])
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: a second "
				        "'|' in one sequence", fmt, i);
			bar[depth] = true;
			continue;
		}
		if (c == '(' || c == '[') {
			if (depth == sizeof stack)
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: more than "
				        "64 nested sequences", fmt, i);
			if (!depth)
				(*top)++;
			opened[depth] = i;
			stack[depth++] = c == '(' ? ')' : ']';
			bar[depth] = false;
			continue;
		}
		if (c == ')' || c == ']') {
			if (!depth || stack[depth - 1] != c)
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: '%c' closes "
				        "nothing open", fmt, i, c);
			depth--;
			continue;
		}
		if (!strchr(parse_letters, c))
			return mproc__detail_text(-EINVAL,
			        "format \"%s\", position %zu: unknown format "
			        "letter '%c'", fmt, i, c);
		if (fmt[i + 1] == '#') {
			if (!strchr("szy", c))
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: '#' follows "
				        "only s, z or y", fmt, i + 1);
			i++;
		}
		if (!depth)
			(*top)++;
	}
	if (depth)
		return mproc__detail_text(-EINVAL,
		        "format \"%s\", position %zu: '%c' is never closed",
		        fmt, opened[depth - 1],
		        stack[depth - 1] == ')' ? '(' : '[');
	*top_bar = bar[0];
	return 0;
}

struct parse_st {
	const char *fmt;
	bool store;
	va_list ap;
	char path[160];
	size_t plen;
};

static const char *parse_where(const struct parse_st *st, char *buf,
                               size_t size)
{
	if (!st->plen)
		return "the value";
	snprintf(buf, size, "at %s", st->path);
	return buf;
}

static int parse_type_err(const struct parse_st *st, const char *expected,
                          const struct mproc_value *v)
{
	char w[176];
	return mproc__detail_text(MPROC_ETYPE,
	        "format \"%s\", %s: expected %s, got %s", st->fmt,
	        parse_where(st, w, sizeof w), expected,
	        v ? mproc_type_name(mproc_value_type(v)) : "no value");
}

static void *parse_ptr(struct parse_st *st, int *rc)
{
	void *p = va_arg(st->ap, void *);
	if (!p && *rc >= 0) {
		char w[176];
		*rc = mproc__detail_text(-EINVAL,
		        "format \"%s\", %s: a NULL pointer to store into",
		        st->fmt, parse_where(st, w, sizeof w));
	}
	return p;
}

/* An int (or bool, as Python's int accepts one) within lo..hi. */
static int parse_int(struct parse_st *st, const struct mproc_value *v,
                     int64_t lo, uint64_t hi, const char *ctype,
                     int64_t *si, uint64_t *ui)
{
	int64_t x;
	bool b;
	if (mproc_value_int(v, &x) < 0) {
		if (mproc_value_bool(v, &b) < 0)
			return parse_type_err(st, "int", v);
		x = b;
	}
	if (x < lo || (x >= 0 && (uint64_t)x > hi)) {
		char w[176];
		return mproc__detail_text(-ERANGE,
		        "format \"%s\", %s: %lld does not fit %s", st->fmt,
		        parse_where(st, w, sizeof w), (long long)x, ctype);
	}
	*si = x;
	*ui = (uint64_t)x;
	return 0;
}

static int parse_item(struct parse_st *st, const struct mproc_value *v,
                      size_t *pi);

/* Consume the arguments of the item at fmt[*pi] without reading a value
 * (an optional item the sequence does not have). */
static void parse_skip_item(struct parse_st *st, size_t *pi)
{
	const char *fmt = st->fmt;
	char c = fmt[*pi];
	if (c == '(' || c == '[') {
		unsigned depth = 1;
		while (depth) {
			c = fmt[++*pi];
			if (c == '(' || c == '[')
				depth++;
			else if (c == ')' || c == ']')
				depth--;
			else if (strchr(parse_letters, c)) {
				(void)va_arg(st->ap, void *);
				if (strchr("szy", c))
					(void)va_arg(st->ap, void *);
				if (fmt[*pi + 1] == '#')
					++*pi;
			}
		}
		return;
	}
	(void)va_arg(st->ap, void *);
	if (strchr("szy", c))
		(void)va_arg(st->ap, void *);
	if (fmt[*pi + 1] == '#')
		++*pi;
}

/* The items of a sequence, from fmt[*pi] (just after its opener) to the
 * closer `close` (or the end of the format for the implicit top-level
 * tuple); *pi is left on the closer. */
static int parse_seq(struct parse_st *st, const struct mproc_value *v,
                     size_t *pi, char close)
{
	const char *fmt = st->fmt;
	enum mproc_type t = mproc_value_type(v);
	if (!v || (t != MPROC_TUPLE && t != MPROC_LIST))
		return parse_type_err(st, "tuple or list", v);
	size_t n = 0;
	mproc_value_len(v, &n);

	/* Count the items this level wants: required (before '|') and all. */
	size_t req = 0, total = 0;
	bool optional = false;
	unsigned depth = 0;
	for (size_t j = *pi; fmt[j] && !(depth == 0 && fmt[j] == close); j++) {
		char c = fmt[j];
		if (c == '(' || c == '[') {
			if (depth++ == 0) {
				total++;
				req += !optional;
			}
		} else if (c == ')' || c == ']') {
			depth--;
		} else if (depth == 0 && c == '|') {
			optional = true;
		} else if (depth == 0 && strchr(parse_letters, c)) {
			total++;
			req += !optional;
		}
	}
	if (n < req || n > total) {
		char w[176];
		return mproc__detail_text(MPROC_EINDEX,
		        "format \"%s\", %s: expected a %s of %s%zu items, "
		        "got %zu", fmt, parse_where(st, w, sizeof w),
		        mproc_type_name(t),
		        req == total ? "" : n < req ? "at least " : "at most ",
		        n < req ? req : total, n);
	}

	size_t k = 0;
	int rc = 0;
	for (; fmt[*pi] && !(fmt[*pi] == close); ++*pi) {
		char c = fmt[*pi];
		if (parse_skip_char(c) || c == '|')
			continue;
		if (k >= n) {
			parse_skip_item(st, pi);
			k++;
			continue;
		}
		const struct mproc_value *item = NULL;
		mproc_value_item(v, k, &item);
		size_t plen = st->plen;
		int m = snprintf(st->path + plen, sizeof st->path - plen,
		                 "[%zu]", k);
		if (m > 0 && (size_t)m < sizeof st->path - plen)
			st->plen += (size_t)m;
		int r = parse_item(st, item, pi);
		st->plen = plen;
		st->path[plen] = '\0';
		if (r < 0 && rc >= 0)
			rc = r;
		if (rc < 0)
			return rc;
		k++;
	}
	return rc;
}

#define PARSE_STORE(type, val)                                                 \
	do {                                                                   \
		type *p_ = parse_ptr(st, &rc);                                 \
		if (rc >= 0 && st->store)                                      \
			*p_ = (type)(val);                                     \
	} while (0)

/* One item at fmt[*pi]; *pi is left on its last character. */
static int parse_item(struct parse_st *st, const struct mproc_value *v,
                      size_t *pi)
{
	const char *fmt = st->fmt;
	char c = fmt[*pi];
	int rc = 0;
	int64_t si = 0;
	uint64_t ui = 0;
	if (c == '(' || c == '[') {
		++*pi;
		return parse_seq(st, v, pi, c == '(' ? ')' : ']');
	}
	if (fmt[*pi + 1] == '#')
		++*pi;
	switch (c) {
	case 'b':
		rc = parse_int(st, v, 0, UCHAR_MAX, "an unsigned char", &si, &ui);
		PARSE_STORE(unsigned char, ui);
		break;
	case 'B':
		rc = parse_int(st, v, 0, UCHAR_MAX, "an unsigned char", &si, &ui);
		PARSE_STORE(unsigned char, ui);
		break;
	case 'h':
		rc = parse_int(st, v, SHRT_MIN, SHRT_MAX, "a short", &si, &ui);
		PARSE_STORE(short, si);
		break;
	case 'H':
		rc = parse_int(st, v, 0, USHRT_MAX, "an unsigned short", &si,
		               &ui);
		PARSE_STORE(unsigned short, ui);
		break;
	case 'i':
		rc = parse_int(st, v, INT_MIN, INT_MAX, "an int", &si, &ui);
		PARSE_STORE(int, si);
		break;
	case 'I':
		rc = parse_int(st, v, 0, UINT_MAX, "an unsigned int", &si, &ui);
		PARSE_STORE(unsigned int, ui);
		break;
	case 'l':
		rc = parse_int(st, v, LONG_MIN, LONG_MAX, "a long", &si, &ui);
		PARSE_STORE(long, si);
		break;
	case 'k':
		rc = parse_int(st, v, 0, ULONG_MAX, "an unsigned long", &si, &ui);
		PARSE_STORE(unsigned long, ui);
		break;
	case 'L':
		rc = parse_int(st, v, LLONG_MIN, LLONG_MAX, "a long long", &si,
		               &ui);
		PARSE_STORE(long long, si);
		break;
	case 'K':
		rc = parse_int(st, v, 0, ULLONG_MAX, "an unsigned long long",
		               &si, &ui);
		PARSE_STORE(unsigned long long, ui);
		break;
	case 'n':
		rc = parse_int(st, v, -SSIZE_MAX - 1, SSIZE_MAX, "a ssize_t", &si,
		               &ui);
		PARSE_STORE(ssize_t, si);
		break;
	case 'p': {
		bool b = false;
		if (mproc_value_bool(v, &b) < 0) {
			if (mproc_value_int(v, &si) < 0)
				rc = parse_type_err(st, "bool or int", v);
			b = si != 0;
		}
		PARSE_STORE(bool, b);
		break;
	}
	case 'd': case 'f': {
		double d = 0;
		if (mproc_value_float(v, &d) < 0)
			rc = parse_type_err(st, "float or int", v);
		if (c == 'd')
			PARSE_STORE(double, d);
		else
			PARSE_STORE(float, d);
		break;
	}
	case 's': case 'z': {
		const char *s = NULL;
		size_t len = 0;
		if (!(c == 'z' && mproc_value_is_none(v)) &&
		    mproc_value_str(v, &s, &len) < 0)
			rc = parse_type_err(st, c == 'z' ? "str or None" : "str",
			                    v);
		PARSE_STORE(const char *, s);
		PARSE_STORE(size_t, len);
		break;
	}
	case 'y': {
		const void *p = NULL;
		size_t len = 0;
		if (mproc_value_bytes(v, &p, &len) < 0)
			rc = parse_type_err(st, "bytes", v);
		PARSE_STORE(const void *, p);
		PARSE_STORE(size_t, len);
		break;
	}
	default: /* 'O' */
		if (!v)
			rc = parse_type_err(st, "a value", v);
		PARSE_STORE(const struct mproc_value *, v);
		break;
	}
	return rc;
}

static int parse_run(struct parse_st *st, const struct mproc_value *v,
                     size_t top, bool top_bar)
{
	size_t i = 0;
	if (top == 1 && !top_bar) {
		while (parse_skip_char(st->fmt[i]))
			i++;
		return parse_item(st, v, &i);
	}
	/* Several items, or none: the value is a sequence of them, as
	 * PyArg_ParseTuple reads its format as a tuple's contents. */
	return parse_seq(st, v, &i, '\0');
}

static int value_vparse(const struct mproc_value *v, const char *fmt,
                       va_list ap)
{
	if (!fmt)
		return mproc__detail_text(-EINVAL, "the format is NULL");
	size_t top = 0;
	bool top_bar = false;
	int rc = parse_check(fmt, &top, &top_bar);
	if (rc < 0)
		return rc;
	struct parse_st st = {.fmt = fmt};
	va_copy(st.ap, ap);
	rc = parse_run(&st, v, top, top_bar);
	va_end(st.ap);
	if (rc < 0)
		return rc;
	st = (struct parse_st){.fmt = fmt, .store = true};
	va_copy(st.ap, ap);
	rc = parse_run(&st, v, top, top_bar);
	va_end(st.ap);
	return rc;
}

int mproc_value_parse(const struct mproc_value *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = value_vparse(v, fmt, ap);
	va_end(ap);
	return rc;
}

int mproc_value_dict_next(const struct mproc_value *v, size_t *pos,
                          const struct mproc_value **key,
                          const struct mproc_value **val)
{
	if (!pos)
		return mproc__detail_text(-EINVAL, "pos is NULL");
	size_t n;
	if (mproc_value_type(v) != MPROC_DICT || mproc_value_len(v, &n) < 0)
		return mproc__detail_type("dict", v);
	if (*pos >= n)
		return 0;
	mproc_value_dict_entry(v, *pos, key, val);
	++*pos;
	return 1;
}

int mproc_value_strdup(const struct mproc_value *v, char **out)
{
	const char *s;
	size_t len;
	if (!out)
		return mproc__detail_text(-EINVAL, "out is NULL");
	int rc = mproc_value_str(v, &s, &len);
	if (rc < 0)
		return rc;
	const char *nul = memchr(s, '\0', len);
	if (nul)
		return mproc__detail_text(-EINVAL,
		        "the str has a NUL character at byte %zu",
		        (size_t)(nul - s));
	char *p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, s, len);
	p[len] = '\0';
	*out = p;
	return 0;
}
