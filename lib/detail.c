/*
 * detail.c - the thread's last error detail (detail.h).
 *
 * One record per thread: a kind, the facts of the error, and text only for
 * the errors that are described as text when they happen. The record lives
 * in thread-local storage, so a worker thread's task and the manager never
 * see each other's details, and nothing is allocated.
 */
#include <stdarg.h>
#include <stdio.h>

#include "detail.h"

enum detail_kind { DETAIL_NONE = 0, DETAIL_TYPE, DETAIL_INDEX, DETAIL_TEXT };

static _Thread_local struct {
	enum detail_kind kind;
	const char *expected;
	const char *actual;
	size_t i, n;
	char text[320];
} detail;

int mproc__detail_type_name(const char *expected, const char *actual)
{
	detail.kind = DETAIL_TYPE;
	detail.expected = expected;
	detail.actual = actual;
	return MPROC_ETYPE;
}

int mproc__detail_index(size_t i, size_t n)
{
	detail.kind = DETAIL_INDEX;
	detail.i = i;
	detail.n = n;
	return MPROC_EINDEX;
}

int mproc__detail_text(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail.text, sizeof detail.text, fmt, ap);
	va_end(ap);
	detail.kind = DETAIL_TEXT;
	return code;
}

void mproc__detail_clear(void)
{
	detail.kind = DETAIL_NONE;
}

const char *mproc_error_detail(void)
{
	switch (detail.kind) {
	case DETAIL_TYPE:
		snprintf(detail.text, sizeof detail.text, "expected %s, got %s",
		         detail.expected, detail.actual);
		detail.kind = DETAIL_TEXT;
		break;
	case DETAIL_INDEX:
		snprintf(detail.text, sizeof detail.text,
		         "index %zu out of range (%zu items)", detail.i,
		         detail.n);
		detail.kind = DETAIL_TEXT;
		break;
	case DETAIL_TEXT:
		break;
	default:
		return "";
	}
	return detail.text;
}
