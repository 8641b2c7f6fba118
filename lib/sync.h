/*
 * sync.h - what other public modules need of the locks (sync.c): placing
 * an RLock inside a mapping of their own (shared.c's get_lock()).
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stddef.h>

#include "mproc.h"

/* Bytes of a struct mproc_lock (at most 64: shared.c leaves that room). */
size_t mproc__shared_lock_size(void);
/* Make an RLock at l, in shared memory the caller owns. 0 or -errno. */
int mproc__shared_lock_init(struct mproc_lock *l);

#endif
