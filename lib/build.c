/*
 * build.c - mproc_write_build(): a value from a format string and C
 * arguments, as Python's Py_BuildValue() builds an object.
 *
 * The format is checked whole before anything is written, so a format
 * error leaves the writer as it was; only the writer's own errors (invalid
 * UTF-8, an unhashable dict key) and bad arguments (a NULL value for 'O',
 * an unsigned number past INT64_MAX) can stop the build half-way, and then
 * the writer holds an incomplete value (a task returns the code and the
 * pool raises; other callers reset the writer). Every error names where in
 * the format it happened (mproc_error_detail()).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>

#include "mproc.h"
#include "detail.h"

/* The letters that take arguments, and those of them that may carry '#'. */
static const char build_letters[] = "bhiBHIlkLKnpdfszyO";
static const char hash_letters[] = "szy";

static bool build_skip(char c)
{
	return c == ' ' || c == '\t' || c == ',' || c == ':';
}

static char closer_of(char c)
{
	return c == '(' ? ')' : c == '[' ? ']' : '}';
}

/*
 * Check the format and count its top-level items. Returns 0, or -EINVAL
 * with a detail naming the position.
 */
static int build_check(const char *fmt, size_t *top)
{
	char stack[64];
	size_t items[64];
	size_t opened[64];
	unsigned depth = 0;
	*top = 0;
	for (size_t i = 0; fmt[i]; i++) {
		char c = fmt[i];
		if (build_skip(c))
			continue;
		if (c == '(' || c == '[' || c == '{') {
			if (depth == sizeof stack)
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: more than "
				        "64 nested containers", fmt, i);
			if (depth)
				items[depth - 1]++;
			else
				(*top)++;
			opened[depth] = i;
			items[depth] = 0;
			stack[depth++] = closer_of(c);
			continue;
		}
		if (c == ')' || c == ']' || c == '}') {
			if (!depth || stack[depth - 1] != c)
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: '%c' closes "
				        "nothing open", fmt, i, c);
			depth--;
			if (c == '}' && items[depth] % 2)
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: a dict "
				        "needs key and value pairs, not %zu items",
				        fmt, opened[depth], items[depth]);
			continue;
		}
		if (!strchr(build_letters, c))
			return mproc__detail_text(-EINVAL,
			        "format \"%s\", position %zu: unknown format "
			        "letter '%c'", fmt, i, c);
		if (fmt[i + 1] == '#') {
			if (!strchr(hash_letters, c))
				return mproc__detail_text(-EINVAL,
				        "format \"%s\", position %zu: '#' follows "
				        "only s, z or y", fmt, i + 1);
			i++;
		}
		if (depth)
			items[depth - 1]++;
		else
			(*top)++;
	}
	if (depth)
		return mproc__detail_text(-EINVAL,
		        "format \"%s\", position %zu: '%c' is never closed",
		        fmt, opened[depth - 1],
		        stack[depth - 1] == ')' ? '(' :
		        stack[depth - 1] == ']' ? '[' : '{');
	return 0;
}

/* A writer's error at a letter of the format, named. */
static int build_fail(int rc, const char *fmt, size_t i, const char *why)
{
	return mproc__detail_text(rc, "format \"%s\", position %zu ('%c'): %s",
	                          fmt, i, fmt[i],
	                          why ? why : mproc_strerror(rc));
}

static int build_unsigned(struct mproc_writer *w, unsigned long long u,
                          const char *fmt, size_t i)
{
	if (u > INT64_MAX) {
		mproc_write_int(w, INT64_MAX); /* keeps the item count right */
		return build_fail(-ERANGE, fmt, i,
		                  "the number does not fit an int64_t");
	}
	return mproc_write_int(w, (int64_t)u);
}

/* One item at fmt[*pi]; *pi is left on its last character. */
static int build_item(struct mproc_writer *w, const char *fmt, size_t *pi,
                      va_list *ap)
{
	size_t i = *pi;
	char c = fmt[i];
	bool hash = fmt[i + 1] == '#';
	int rc;
	if (hash)
		(*pi)++;
	switch (c) {
	case 'b': case 'h': case 'i': case 'B': case 'H':
		rc = mproc_write_int(w, va_arg(*ap, int));
		break;
	case 'I':
		rc = mproc_write_int(w, va_arg(*ap, unsigned int));
		break;
	case 'l':
		rc = mproc_write_int(w, va_arg(*ap, long));
		break;
	case 'k':
		return build_unsigned(w, va_arg(*ap, unsigned long), fmt, i);
	case 'L':
		rc = mproc_write_int(w, va_arg(*ap, long long));
		break;
	case 'K':
		return build_unsigned(w, va_arg(*ap, unsigned long long), fmt,
		                      i);
	case 'n':
		rc = mproc_write_int(w, va_arg(*ap, ssize_t));
		break;
	case 'p':
		rc = mproc_write_bool(w, va_arg(*ap, int) != 0);
		break;
	case 'd': case 'f':
		rc = mproc_write_float(w, va_arg(*ap, double));
		break;
	case 's': case 'z': {
		const char *s = va_arg(*ap, const char *);
		size_t len = hash ? va_arg(*ap, size_t) : 0;
		if (!s)
			rc = mproc_write_none(w);
		else
			rc = mproc_write_str(w, s, hash ? len : strlen(s));
		break;
	}
	case 'y': {
		const void *p = va_arg(*ap, const void *);
		size_t len = hash ? va_arg(*ap, size_t) : 0;
		if (!p) {
			mproc_write_none(w);
			return build_fail(-EINVAL, fmt, i,
			                  "a NULL pointer for bytes");
		}
		rc = mproc_write_bytes(w, p, hash ? len : strlen(p));
		break;
	}
	default: { /* 'O', the only letter left after build_check */
		const struct mproc_value *v =
		        va_arg(*ap, const struct mproc_value *);
		if (!v) {
			mproc_write_none(w);
			return build_fail(-EINVAL, fmt, i,
			                  "a NULL value for 'O'");
		}
		rc = mproc_write_value(w, v);
		break;
	}
	}
	return rc < 0 ? build_fail(rc, fmt, i, NULL) : 0;
}

static int build_begin(struct mproc_writer *w, char c)
{
	return c == '(' ? mproc_write_tuple_begin(w) :
	       c == '[' ? mproc_write_list_begin(w) :
	                  mproc_write_dict_begin(w);
}

static int build_end(struct mproc_writer *w, char c)
{
	return c == ')' ? mproc_write_tuple_end(w) :
	       c == ']' ? mproc_write_list_end(w) :
	                  mproc_write_dict_end(w);
}

static int write_vbuild(struct mproc_writer *w, const char *fmt, va_list ap)
{
	if (!w || !fmt)
		return mproc__detail_text(-EINVAL, "%s is NULL",
		                          w ? "the format" : "the writer");
	size_t top = 0;
	int rc = build_check(fmt, &top);
	if (rc < 0)
		return rc;
	va_list aq;
	va_copy(aq, ap);
	/* As Py_BuildValue: no item is None, several are a tuple. */
	if (top == 0)
		rc = mproc_write_none(w);
	else if (top > 1)
		rc = mproc_write_tuple_begin(w);
	for (size_t i = 0; rc >= 0 && fmt[i]; i++) {
		char c = fmt[i];
		if (build_skip(c))
			continue;
		if (c == '(' || c == '[' || c == '{')
			rc = build_begin(w, c);
		else if (c == ')' || c == ']' || c == '}')
			rc = build_end(w, c);
		else
			rc = build_item(w, fmt, &i, &aq);
		if (rc < 0 && !strchr(build_letters, c))
			rc = build_fail(rc, fmt, i, NULL);
	}
	if (rc >= 0 && top > 1)
		rc = mproc_write_tuple_end(w);
	va_end(aq);
	return rc < 0 ? rc : 0;
}

int mproc_write_build(struct mproc_writer *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = write_vbuild(w, fmt, ap);
	va_end(ap);
	return rc;
}
