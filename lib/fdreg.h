/*
 * fdreg.h - the process-wide registry of every descriptor mproc makes.
 *
 * fork() does not honour O_CLOEXEC, and workers do not exec: a child that
 * kept a copy of another worker's task pipe would hide its end of file from
 * that worker. So every descriptor any pool makes is registered here (but
 * the buffer arena's memfd, oob.c: a child that keeps it keeps only what
 * the arena's mapping, which it inherits anyway, already holds), and
 * each new child closes all of them but its own. The registry stays locked
 * from a worker's pipes' creation to its fork (mproc__fdreg_lock), so that
 * no other pool forks in between a child that would not know to close them.
 */
#ifndef MPROC_FDREG_H
#define MPROC_FDREG_H

#include <stddef.h>

/* Register fd; 0 or -ENOMEM. Takes the lock. */
int mproc__fdreg_add(int fd);

/* Close a registered descriptor and set *fd to -1 (nothing when < 0). */
void mproc__fdreg_close(int *fd);

/* Hold the registry across pipe creation and fork. */
void mproc__fdreg_lock(void);
void mproc__fdreg_unlock(void);

/* Lock held: room for n more, so that n adds cannot fail (0, -ENOMEM). */
int mproc__fdreg_reserve_locked(size_t n);
/* Lock held: register fd (room reserved first, or -ENOMEM). */
int mproc__fdreg_add_locked(int fd);

/*
 * Lock held: a new array of every registered descriptor followed by the
 * nextra given, for a child to close (*n set); NULL without memory. The
 * caller frees it after the fork.
 */
int *mproc__fdreg_list_locked(const int *extra, size_t nextra, size_t *n);

/* In a new child: forget the parent's registry (its lock state too). */
void mproc__fdreg_child(void);

#endif
