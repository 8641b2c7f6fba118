/*
 * input.c - the input helpers: range(), C arrays and plain generators.
 *
 * An input is a generator called lazily, in index order, by the pool, or
 * one of the helpers here, whose whole state lies in the input's reserved
 * block: none of them allocates, and a copy of an input is the same input
 * (the library keeps its own copy while a call runs). Which helper made an
 * input is written in that block, never guessed from a function pointer.
 * Ranges and arrays of int64_t or double also travel packed, without a
 * pickle per item (mproc__input_pack).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "input.h"
#include "wire.h"
#include "detail.h"

enum input_kind {
	INPUT_FN = 0,   /* a generator (all zero: a struct filled by hand) */
	INPUT_RANGE,
	INPUT_INT64S,
	INPUT_DOUBLES,
	INPUT_ARRAY,    /* elements written by the caller's function */
	INPUT_VALUE,    /* the items (a dict's keys) of a decoded value */
};

/* The reserved block, as the helpers fill it. */
struct input_state {
	uint32_t kind;
	uint32_t unused;
	int64_t start, step;        /* ranges */
	const void *base;           /* arrays */
	size_t elsize;
	int (*write)(struct mproc_writer *w, const void *el);
};
static_assert(sizeof(struct input_state) <=
                      sizeof(((struct mproc_input *)0)->reserved_),
              "the helpers' state fits the reserved block");

static const struct input_state *state_of(const struct mproc_input *in)
{
	return (const struct input_state *)(const void *)in->reserved_;
}

static void input_init(struct mproc_input *in, const struct input_state *st,
                       size_t len)
{
	*in = (struct mproc_input){.has_len = true, .len = len};
	memcpy(in->reserved_, st, sizeof *st);
}

int mproc_input_range(struct mproc_input *in, int64_t start, int64_t stop,
                      int64_t step)
{
	if (!in || step == 0)
		return -EINVAL;
	uint64_t n = 0;
	if (step > 0 && start < stop)
		n = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
	else if (step < 0 && start > stop)
		n = ((uint64_t)start - (uint64_t)stop - 1) /
		        (uint64_t)(-(step + 1) + 1ull) + 1;
	struct input_state st = {.kind = INPUT_RANGE, .start = start,
	                         .step = step};
	input_init(in, &st, (size_t)n);
	return 0;
}

int mproc_input_array(struct mproc_input *in, const void *base, size_t n,
                      size_t size,
                      int (*write)(struct mproc_writer *w, const void *el))
{
	if (!in || !write || size == 0 || (n > 0 && !base))
		return -EINVAL;
	struct input_state st = {.kind = INPUT_ARRAY, .base = base,
	                         .elsize = size, .write = write};
	input_init(in, &st, n);
	return 0;
}

static int input_write_cstr(struct mproc_writer *w, const void *el)
{
	const char *s = *(const char *const *)el;
	return s ? mproc_write_cstr(w, s) : mproc_write_none(w);
}

int mproc_input_int64s(struct mproc_input *in, const int64_t *a, size_t n)
{
	if (!in || (n > 0 && !a))
		return -EINVAL;
	struct input_state st = {.kind = INPUT_INT64S, .base = a,
	                         .elsize = sizeof *a};
	input_init(in, &st, n);
	return 0;
}

int mproc_input_doubles(struct mproc_input *in, const double *a, size_t n)
{
	if (!in || (n > 0 && !a))
		return -EINVAL;
	struct input_state st = {.kind = INPUT_DOUBLES, .base = a,
	                         .elsize = sizeof *a};
	input_init(in, &st, n);
	return 0;
}

int mproc_input_cstrs(struct mproc_input *in, const char *const *a, size_t n)
{
	return mproc_input_array(in, a, n, sizeof *a, input_write_cstr);
}

/* The error of an input helper's item, named for mproc_error_detail(). */
static int input_item_fail(int rc, size_t index)
{
	return mproc__detail_text(rc, "input item %zu: %s", index,
	                          mproc_strerror(rc));
}

int mproc_input_value(struct mproc_input *in, const struct mproc_value *v)
{
	size_t n;
	if (!in || !v)
		return mproc__detail_text(-EINVAL, "%s is NULL",
		                          in ? "the value" : "the input");
	enum mproc_type t = mproc_value_type(v);
	if (t < MPROC_TUPLE || mproc_value_len(v, &n) < 0)
		return mproc__detail_type("tuple, list, dict, set or frozenset",
		                          v);
	struct input_state st = {.kind = INPUT_VALUE, .base = v};
	input_init(in, &st, n);
	return 0;
}

int mproc_input_set_len(struct mproc_input *in, size_t len)
{
	if (!in || !in->fn)
		return mproc__detail_text(-EINVAL, "%s",
		        in ? "only a generator's length can be set (a "
		             "helper's input knows its own)"
		           : "the input is NULL");
	in->has_len = true;
	in->len = len;
	return 0;
}

int mproc_input_fn_init(struct mproc_input *in, mproc_input_fn fn,
                        void *cookie)
{
	if (!in || !fn)
		return -EINVAL;
	*in = (struct mproc_input){.fn = fn, .cookie = cookie};
	return 0;
}

/* Which kind of input `in` is: a generator whenever fn is set (the
 * reserved block is then never read), else the helper that filled it. */
static uint32_t input_kind(const struct mproc_input *in)
{
	return in->fn ? INPUT_FN : state_of(in)->kind;
}

bool mproc__input_valid(const struct mproc_input *in)
{
	if (!in)
		return false;
	const struct input_state *st = state_of(in);
	switch (input_kind(in)) {
	case INPUT_FN:
		return in->fn != NULL;
	case INPUT_RANGE:
		return in->has_len && st->step != 0;
	case INPUT_INT64S:
	case INPUT_DOUBLES:
		return in->has_len && st->elsize == 8 && (st->base || !in->len);
	case INPUT_ARRAY:
		return in->has_len && st->elsize && st->write &&
		       (st->base || !in->len);
	case INPUT_VALUE:
		return in->has_len && st->base;
	default:
		return false; /* a block no helper wrote */
	}
}

int mproc_input_write(const struct mproc_input *in, size_t index,
                      struct mproc_writer *w)
{
	if (!mproc__input_valid(in) || !w)
		return -EINVAL;
	const struct input_state *st = state_of(in);
	if (input_kind(in) == INPUT_FN)
		return in->fn(in->cookie, index, w);
	if (index >= in->len)
		return 0;
	int rc;
	const char *el = (const char *)st->base + index * st->elsize;
	switch (st->kind) {
	case INPUT_RANGE:
		/* Wrapping unsigned arithmetic: the true value lies between
		 * start and stop, so it is exact even when the span exceeds
		 * INT64_MAX. */
		rc = mproc_write_int(w, (int64_t)((uint64_t)st->start +
		                                  (uint64_t)index *
		                                          (uint64_t)st->step));
		break;
	case INPUT_INT64S: {
		int64_t v;
		memcpy(&v, el, sizeof v);
		rc = mproc_write_int(w, v);
		break;
	}
	case INPUT_DOUBLES: {
		double d;
		memcpy(&d, el, sizeof d);
		rc = mproc_write_float(w, d);
		break;
	}
	case INPUT_VALUE: {
		const struct mproc_value *v = st->base, *item = NULL;
		/* Iterating a dict yields its keys, as in Python. */
		rc = mproc_value_type(v) == MPROC_DICT
		             ? mproc_value_dict_entry(v, index, &item, NULL)
		             : mproc_value_item(v, index, &item);
		if (rc >= 0)
			rc = mproc_write_value(w, item);
		break;
	}
	default:
		rc = st->write(w, el);
		break;
	}
	return rc < 0 ? input_item_fail(rc, index) : 1;
}

uint8_t mproc__input_pack(const struct mproc_input *in)
{
	/* Packed items are counted by in->len, so it must be known. */
	if (!in->has_len)
		return 0;
	switch (input_kind(in)) {
	case INPUT_RANGE:
		return MPROC__TF_RANGE;
	case INPUT_INT64S:
		return MPROC__TF_INTS;
	case INPUT_DOUBLES:
		return MPROC__TF_FLOATS;
	default:
		return 0;
	}
}

void mproc__input_range_at(const struct mproc_input *in, size_t index,
                           int64_t rec[2])
{
	const struct input_state *st = state_of(in);
	/* As mproc_input_write: wrapping arithmetic, exact in range. */
	rec[0] = (int64_t)((uint64_t)st->start +
	                   (uint64_t)index * (uint64_t)st->step);
	rec[1] = st->step;
}

size_t mproc__input_numbers(const struct mproc_input *in, size_t index,
                            size_t n, struct mproc__buf *out)
{
	const struct input_state *st = state_of(in);
	if (index >= in->len)
		return 0;
	if (n > in->len - index)
		n = in->len - index;
	if (n > (SIZE_MAX - out->len) / MPROC__NUM_REC ||
	    mproc__buf_append(out, (const char *)st->base +
	                                   index * MPROC__NUM_REC,
	                      n * MPROC__NUM_REC) < 0)
		return 0;
	return n;
}
