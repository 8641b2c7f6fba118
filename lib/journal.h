/*
 * journal.h - the durable record of a pool's final results (journal.c), in
 * an SQLite database: what lets a map or imap killed with its manager be
 * run again and do only what had no final result. Part of the jobs layer,
 * beside the job's files (job.c and its parts), below them: it knows
 * results as (index, status, attempts, pickle) and nothing of workers,
 * calls or the engine.
 *
 * A pool holds one journal (opened at mproc_pool_open, with its lock); each
 * journaled call of the pool, numbered in the order it starts, holds one
 * struct mproc__jcall. Everything here runs with the pool's lock held.
 * The schema and the durability rules are in docs/batch.md.
 */
#ifndef MPROC_JOURNAL_H
#define MPROC_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc.h"

struct mproc__journal;
struct mproc__jcall;

/* Open (or create) the journal at `path`, holding it against every other
 * process until mproc__journal_close. flags: MPROC_JOURNAL_*. 0, or
 * MPROC_EJOURNAL_LOCKED, MPROC_EJOURNAL (not a journal, corrupt, or the
 * file cannot be opened), -ENOMEM. */
int mproc__journal_open(struct mproc__journal **out, const char *path,
                        unsigned flags);
/* Commit what is pending and close. NULL allowed. 0 or MPROC_EJOURNAL. */
int mproc__journal_close(struct mproc__journal *j);
/* Commit the pending transaction now (results about to be handed out). */
int mproc__journal_commit(struct mproc__journal *j);
/* Results put since the last commit. */
size_t mproc__journal_pending(const struct mproc__journal *j);

/*
 * Begin the pool's next journaled call: function `fn` (identified across
 * runs by its symbol, or its object and offset), `star` for starmap,
 * `len` items (SIZE_MAX: not known). A call stored under the same number
 * with another fingerprint is MPROC_EJOURNAL_MISMATCH; its final results
 * are loaded for mproc__jcall_done. 0, MPROC_EJOURNAL, -ENOMEM.
 */
int mproc__jcall_open(struct mproc__journal *j, const void *fn, bool star,
                      size_t len, struct mproc__jcall **out);
void mproc__jcall_free(struct mproc__jcall *c);
/*
 * Item `index` (asked in increasing order) with input hash `ihash`: 1 when
 * it has a final result (read it with mproc__jcall_get), 0 when it must
 * run, MPROC_EJOURNAL_MISMATCH when the stored result answers another
 * input.
 */
int mproc__jcall_done(struct mproc__jcall *c, size_t index, uint64_t ihash);
/* The stored result of a done item; *p (owned by c, valid until the next
 * call on c) is its payload as mproc__job_store takes it. 0 or
 * MPROC_EJOURNAL. */
int mproc__jcall_get(struct mproc__jcall *c, size_t index,
                     enum mproc_status *status, unsigned *attempts,
                     const void **p, size_t *len);
/* Record one final result (the payload as mproc__job_store got it). An
 * error sticks: mproc__jcall_error answers it from then on. */
void mproc__jcall_put(struct mproc__jcall *c, size_t index, uint64_t ihash,
                      enum mproc_status status, unsigned attempts,
                      const void *p, size_t len);
/* The first error met writing this call's results (0 if none). */
int mproc__jcall_error(const struct mproc__jcall *c);
struct mproc__journal *mproc__jcall_journal(struct mproc__jcall *c);

/* An item's input hash (its pickle's bytes). */
uint64_t mproc__journal_hash(const void *p, size_t len);

#endif
