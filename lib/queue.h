/*
 * queue.h - the queue's private seam, for the tests: take the queue's
 * internal lock and keep it (a test's child then dies holding it).
 */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include "mproc.h"

/* Lock q's mutex and return (as mproc__shm_lock). */
int mproc__queue_hold(struct mproc_queue *q);

#endif
