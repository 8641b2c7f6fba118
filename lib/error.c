/*
 * error.c - names and descriptions of every code mproc returns.
 *
 * mproc's own codes come from MPROC_ERRNO_MAP in mproc.h; everything else is
 * a negated errno value, described by the C library.
 */
#include <errno.h>
#include <string.h>

#include "mproc.h"

const char *mproc_strerror(int code)
{
	switch (code) {
#define MPROC__ERR_TEXT(name, value, text)                                     \
	case MPROC_##name:                                                     \
		return text;
		MPROC_ERRNO_MAP(MPROC__ERR_TEXT)
#undef MPROC__ERR_TEXT
	case 0:
		return "success";
	default:
		break;
	}
	/* A positive errno value, as errno itself holds it, is described
	 * as its negation is. */
	if (code > 0 && code < 4000)
		code = -code;
	if (code < 0 && code > -4000) {
		/* strerrordesc_np is static text and thread-safe (glibc 2.32). */
		const char *s = strerrordesc_np(-code);
		if (s)
			return s;
	}
	return "unknown error";
}

const char *mproc_err_name(int code)
{
	switch (code) {
#define MPROC__ERR_NAME(name, value, text)                                     \
	case MPROC_##name:                                                     \
		return "MPROC_" #name;
		MPROC_ERRNO_MAP(MPROC__ERR_NAME)
#undef MPROC__ERR_NAME
	case 0:
		return "OK";
	default:
		break;
	}
	if (code > 0 && code < 4000)
		code = -code;
	if (code < 0 && code > -4000) {
		const char *s = strerrorname_np(-code);
		if (s)
			return s;
	}
	return "UNKNOWN";
}

const char *mproc_status_name(enum mproc_status status)
{
	static const char *const names[] = {
		[MPROC_PENDING] = "PENDING",   [MPROC_OK] = "OK",
		[MPROC_RAISED] = "RAISED",     [MPROC_CRASHED] = "CRASHED",
		[MPROC_TIMEOUT] = "TIMEOUT",   [MPROC_MEMORY] = "MEMORY",
		[MPROC_CANCELLED] = "CANCELLED",
	};
	if ((unsigned)status < sizeof names / sizeof names[0] && names[status])
		return names[status];
	return "UNKNOWN";
}
