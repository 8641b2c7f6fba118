/*
 * detail.h - the words behind an error code: what the last failing value
 * call of this thread was given and what it expected, read back with
 * mproc_error_detail().
 *
 * Recording is cheap (a few stores, no formatting), so an accessor that a
 * program calls to probe a value's type costs no more when it fails; the
 * text is made only when mproc_error_detail() asks for it.
 */
#ifndef MPROC_DETAIL_H
#define MPROC_DETAIL_H

#include <stddef.h>

#include "mproc.h"

/* An accessor wanted `expected` (a Python type name, or a description such
 * as "tuple, list, dict, set or frozenset") and found the type named
 * `actual`. Both are static strings. Returns MPROC_ETYPE. */
int mproc__detail_type_name(const char *expected, const char *actual);

/* The same for the value v (NULL: "no value"). Inline, so that detail.c
 * calls nothing of the codec's, which calls it. */
static inline int mproc__detail_type(const char *expected,
                                     const struct mproc_value *v)
{
	return mproc__detail_type_name(expected,
	        v ? mproc_type_name(mproc_value_type(v)) : "no value");
}

/* Index i past a container of n items. Returns MPROC_EINDEX. */
int mproc__detail_index(size_t i, size_t n);

/* Free text (printf-style), for errors the two above do not describe.
 * Returns `code`. */
int mproc__detail_text(int code, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Forget the detail (a call that succeeded and wants no stale words). */
void mproc__detail_clear(void);

#endif
