/*
 * crash.h - a crash report from a status record (status.h): the
 * backtrace a crash handler took in a child, symbolized in the process
 * that forked it, where the same code is mapped at the same addresses.
 * Used for pool workers (fault.c) and Processes (process.c).
 */
#ifndef MPROC_CRASH_H
#define MPROC_CRASH_H

#include <stddef.h>

#include "status.h"

/* One line a frame ("#0 0x... function+0x1f (object)") into buf[0..cap),
 * NUL-terminated; an empty string when the record has no frames. */
void mproc__crash_format(const struct mproc__status *st, char *buf,
                         size_t cap);

#endif
