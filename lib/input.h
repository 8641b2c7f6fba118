/*
 * input.h - what the library reads of an input beyond its public fields:
 * the helpers' state in the reserved block, and how their items travel
 * packed (ranges and number arrays, without a pickle per item).
 */
#ifndef MPROC_INPUT_H
#define MPROC_INPUT_H

#include <stdint.h>

#include "mproc.h"
#include "buf.h"

/*
 * The packing flag (MPROC__TF_RANGE, _INTS, _FLOATS of wire.h) in which
 * `in`'s items may travel, or 0 when they go as pickles.
 */
uint8_t mproc__input_pack(const struct mproc_input *in);

/* A range's frame record for its item `index`: (argument, step). */
void mproc__input_range_at(const struct mproc_input *in, size_t index,
                           int64_t rec[2]);

/*
 * An int64 or double array's n items from `index` on, appended to `out` as
 * they lie in memory: how many (fewer at the array's end; 0 when out cannot
 * grow).
 */
size_t mproc__input_numbers(const struct mproc_input *in, size_t index,
                            size_t n, struct mproc__buf *out);

/* The input is usable: a generator, or a helper's state. */
bool mproc__input_valid(const struct mproc_input *in);

#endif
