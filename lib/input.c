/*
 * input.c - the input helpers: range(), C arrays and plain generators.
 *
 * An input is a generator called lazily, in index order, by the pool. These
 * helpers keep their state inside struct mproc_input itself, so none of
 * them allocates. Ranges and arrays of int64_t or double also travel
 * packed, without the generator and without a pickle per item
 * (mproc__input_pack).
 */
#include <errno.h>

#include "pool.h"

static int input_range_next(void *cookie, size_t index, struct mproc_writer *w)
{
	const struct mproc_input *in = cookie;
	if (index >= in->len)
		return 0;
	/* Wrapping unsigned arithmetic: the true value lies between start and
	 * stop, so the result is exact even when the span exceeds INT64_MAX. */
	int64_t v = (int64_t)((uint64_t)in->range_[0] +
	                      (uint64_t)index * (uint64_t)in->range_[2]);
	int rc = mproc_write_int(w, v);
	return rc < 0 ? rc : 1;
}

int mproc_input_range(struct mproc_input *in, int64_t start, int64_t stop,
                      int64_t step)
{
	if (!in || step == 0)
		return -EINVAL;
	*in = (struct mproc_input){0};
	uint64_t n = 0;
	if (step > 0 && start < stop)
		n = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
	else if (step < 0 && start > stop)
		n = ((uint64_t)start - (uint64_t)stop - 1) /
		        (uint64_t)(-(step + 1) + 1ull) + 1;
	in->fn = input_range_next;
	in->cookie = in;
	in->has_len = true;
	in->len = (size_t)n;
	in->range_[0] = start;
	in->range_[1] = stop;
	in->range_[2] = step;
	return 0;
}

static int input_array_next(void *cookie, size_t index, struct mproc_writer *w)
{
	const struct mproc_input *in = cookie;
	if (index >= in->len)
		return 0;
	const char *el = (const char *)in->array_ + index * in->elsize_;
	int rc = in->elwrite_(w, el);
	return rc < 0 ? rc : 1;
}

int mproc_input_array(struct mproc_input *in, const void *base, size_t n,
                      size_t size,
                      int (*write)(struct mproc_writer *w, const void *el))
{
	if (!in || !write || size == 0 || (n > 0 && !base))
		return -EINVAL;
	*in = (struct mproc_input){0};
	in->fn = input_array_next;
	in->cookie = in;
	in->has_len = true;
	in->len = n;
	in->array_ = base;
	in->elsize_ = size;
	in->elwrite_ = write;
	return 0;
}

static int input_write_int64(struct mproc_writer *w, const void *el)
{
	return mproc_write_int(w, *(const int64_t *)el);
}

static int input_write_double(struct mproc_writer *w, const void *el)
{
	return mproc_write_float(w, *(const double *)el);
}

static int input_write_cstr(struct mproc_writer *w, const void *el)
{
	const char *s = *(const char *const *)el;
	return s ? mproc_write_cstr(w, s) : mproc_write_none(w);
}

int mproc_input_int64s(struct mproc_input *in, const int64_t *a, size_t n)
{
	return mproc_input_array(in, a, n, sizeof *a, input_write_int64);
}

int mproc_input_doubles(struct mproc_input *in, const double *a, size_t n)
{
	return mproc_input_array(in, a, n, sizeof *a, input_write_double);
}

int mproc_input_cstrs(struct mproc_input *in, const char *const *a, size_t n)
{
	return mproc_input_array(in, a, n, sizeof *a, input_write_cstr);
}

int mproc_input_fn_init(struct mproc_input *in, mproc_input_fn fn,
                        void *cookie)
{
	if (!in || !fn)
		return -EINVAL;
	*in = (struct mproc_input){0};
	in->fn = fn;
	in->cookie = cookie;
	return 0;
}

/* Which of the helpers made `in`, as far as packing cares. */
enum input_kind { INPUT_OTHER, INPUT_RANGE, INPUT_INT64S, INPUT_DOUBLES };

static enum input_kind input_kind(const struct mproc_input *in)
{
	/* The state is where the generators read it: behind the cookie. */
	const struct mproc_input *st = in->cookie;
	return in->fn == input_range_next ? INPUT_RANGE
	       : in->fn != input_array_next ? INPUT_OTHER
	       : st->elwrite_ == input_write_int64 ? INPUT_INT64S
	       : st->elwrite_ == input_write_double ? INPUT_DOUBLES
	                                            : INPUT_OTHER;
}

uint8_t mproc__input_pack(const struct mproc_input *in)
{
	/* Packed items are counted by in->len, so it must be known and
	 * within what the helper holds: a helper's generator wrapped by
	 * mproc_input_fn_init knows no length, and a copy may claim more
	 * than its helper's state has (its generator would stop there). */
	enum input_kind kind = input_kind(in);
	const struct mproc_input *st = in->cookie;
	if (!in->has_len || kind == INPUT_OTHER || in->len > st->len)
		return 0;
	switch (kind) {
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
	const struct mproc_input *st = in->cookie;
	/* As input_range_next: wrapping arithmetic, exact in range. */
	rec[0] = (int64_t)((uint64_t)st->range_[0] +
	                   (uint64_t)index * (uint64_t)st->range_[2]);
	rec[1] = st->range_[2];
}

size_t mproc__input_numbers(const struct mproc_input *in, size_t index,
                            size_t n, struct mproc__buf *out)
{
	const struct mproc_input *st = in->cookie;
	if (index >= st->len)
		return 0;
	if (n > st->len - index)
		n = st->len - index;
	if (n > (SIZE_MAX - out->len) / MPROC__NUM_REC ||
	    mproc__buf_append(out, (const char *)st->array_ +
	                                   index * MPROC__NUM_REC,
	                      n * MPROC__NUM_REC) < 0)
		return 0;
	return n;
}
