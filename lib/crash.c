/*
 * crash.c - symbolizing the backtrace of a child's crash record, in the
 * parent: the child is a fork of it, so dladdr() here names the child's
 * addresses.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crash.h"

void mproc__crash_format(const struct mproc__status *st, char *buf,
                         size_t cap)
{
	size_t off = 0;
	uint32_t n = st->nframes > MPROC__MAX_FRAMES ? MPROC__MAX_FRAMES
	                                             : st->nframes;
	if (!cap)
		return;
	buf[0] = '\0';
	for (uint32_t i = 0; i < n && off < cap; i++) {
		void *addr = (void *)(uintptr_t)st->frames[i];
		Dl_info info;
		int len;
		if (dladdr(addr, &info) && info.dli_fname) {
			const char *obj = strrchr(info.dli_fname, '/');
			obj = obj ? obj + 1 : info.dli_fname;
			if (info.dli_sname)
				len = snprintf(buf + off, cap - off,
				               "#%u %p %s+0x%zx (%s)\n", i, addr,
				               info.dli_sname,
				               (size_t)((char *)addr - (char *)info.dli_saddr),
				               obj);
			else
				len = snprintf(buf + off, cap - off,
				               "#%u %p (%s+0x%zx)\n", i, addr, obj,
				               (size_t)((char *)addr - (char *)info.dli_fbase));
		} else {
			len = snprintf(buf + off, cap - off, "#%u %p\n", i, addr);
		}
		if (len < 0)
			break;
		off += (size_t)len;
	}
	if (off >= cap)
		buf[cap - 1] = '\0';
}
