/*
 * result.h - where a call's results live, and how a stored result becomes
 * the struct mproc_result a caller reads (result.c). Part of the jobs
 * layer: it knows pickles and records, no worker and no pool.
 *
 * A map's results are one word each in a table (the value's address for an
 * OK first attempt, else a tagged record); result pickles, records and
 * errors live in blocks that never move, because decoded trees, the table
 * and results point into them.
 */
#ifndef MPROC_RESULT_H
#define MPROC_RESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "mproc.h"

/* The public handle's layout, private to the library. */
struct mproc_results {
	size_t count;
	size_t failed;
	const uintptr_t *slots; /* a word per item */
	void *owner;            /* what mproc_results_free() releases */
};

struct mproc__block;

/* A result's error, with room for its crash. */
struct mproc__error {
	struct mproc_error e;
	struct mproc_crash c;
};

/* A stored result body with out-of-band buffers (oob.h). */
struct mproc__held {
	const char *body;
	size_t len;
};

/* A call's stored results: what they point into. */
struct mproc__rstore {
	struct mproc__oob *oob;        /* the pool's buffers (a reference) */
	struct mproc__held *held;      /* bodies whose blocks it holds */
	size_t nheld, heldcap;
	struct mproc__block *blocks;   /* kept result pickles */
	struct mproc__block *recs;     /* records and errors (maps) */
	struct mproc_decoder *dec;     /* every decoded tree */
	struct mproc__error cur_err;   /* iterators: the error handed out */
	bool errors_in_recs;           /* a map keeps every error */
};

/* Where a decoder comes from: the pool's spare, or a new one with these
 * limits. The spare goes back at mproc__rstore_free (small calls only). */
struct mproc__oob;
struct mproc__decsrc {
	struct mproc_decoder *spare;
	struct mproc_limits limits;
	struct mproc__oob *oob;
};

void mproc__rstore_free(struct mproc__rstore *rs, struct mproc__decsrc *src,
                        bool small);

/* Use the pool's buffers (a reference to o, let go at rstore_free). */
void mproc__rstore_use_oob(struct mproc__rstore *rs, struct mproc__oob *o);

/*
 * A kept result body with a trailer: its blocks are held until
 * rstore_free. 0, or -ENOMEM (then they are let go at once, and its
 * value cannot be decoded).
 */
int mproc__rstore_hold(struct mproc__rstore *rs, char *body, size_t len);

/* A stable copy of a result pickle; NULL without memory. */
const char *mproc__rstore_keep(struct mproc__rstore *rs, const void *p,
                               size_t len);

/*
 * The result of task `index` from its stored pickle p[0..len) (the value
 * for OK; (type, message[, crash...]) otherwise) into *out; what it points
 * to lives in rs. 0, or -ENOMEM (then *out says what it could).
 */
int mproc__rstore_result(struct mproc__rstore *rs, struct mproc__decsrc *src,
                         enum mproc_status status, unsigned attempts,
                         size_t index, const void *p, size_t len,
                         struct mproc_result *out);

/* The iterator's next result: a fresh decode into the reused arena. */
void mproc__rstore_reset(struct mproc__rstore *rs);

/* A map's table of n words (made once, at its size), and its end. */
uintptr_t *mproc__table_alloc(size_t n);
void mproc__table_free(uintptr_t *t, size_t n);

/* Fill a map's table word with r: its value alone, or a record of the
 * whole (counting a value that cannot be tagged in *failed). */
void mproc__table_set(struct mproc__rstore *rs, uintptr_t *slot,
                      const struct mproc_result *r, size_t *failed);

/* A table word that is just an OK first attempt's value. */
static inline uintptr_t mproc__table_value(const struct mproc_value *v)
{
	return (uintptr_t)v;
}

/* The record of a result nobody will read (its caller let go). */
uintptr_t mproc__table_unread(void);

/* Errors made without memory to spare. */
extern const struct mproc_error mproc__err_nomem_keep;
extern const struct mproc_error mproc__err_nomem_decode;

#endif
