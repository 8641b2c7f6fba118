/*
 * shared.c - Value and Array (multiprocessing.Value, Array): typed memory
 * shared by the processes forked after it was made, with Python's type
 * codes and an optional RLock of its own (get_lock()).
 *
 * The object is one shared mapping: a header (type, count, the lock) and
 * the elements, aligned for any of the types. The handle is its address.
 * Element reads and writes through the calls below hold the lock when
 * there is one, as Python's .value does; the raw pointer is the caller's
 * to guard.
 */
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "mproc.h"
#include "shm.h"
#include "sync.h"

struct mproc_shared {
	size_t maplen;
	size_t n, elsize;
	char typecode;
	bool has_lock;
	struct mproc_lock *lock; /* in this mapping, after the elements */
	alignas(16) unsigned char data[];
};

/* Bytes of one element of `typecode`, or 0 for a code Python's
 * sharedctypes does not know (or 'u', which mproc does not have). */
static size_t shared_elsize(char typecode)
{
	switch (typecode) {
	case 'c': case 'b': case 'B': return 1;
	case 'h': case 'H': return sizeof(short);
	case 'i': case 'I': return sizeof(int);
	case 'l': case 'L': return sizeof(long);
	case 'q': case 'Q': return sizeof(long long);
	case 'f': return sizeof(float);
	case 'd': return sizeof(double);
	default: return 0;
	}
}

static bool shared_is_float(char t)
{
	return t == 'f' || t == 'd';
}

int mproc_shared_array(struct mproc_shared **out, char typecode, size_t n,
                       bool lock)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	size_t el = shared_elsize(typecode);
	if (!el || n == 0 || n > ((size_t)1 << 40) / el)
		return -EINVAL;
	size_t data = (n * el + 63) & ~(size_t)63;
	size_t len = sizeof(struct mproc_shared) + data + 64;
	struct mproc_shared *s = mproc__shm_alloc(len);
	if (!s)
		return -ENOMEM;
	s->maplen = len;
	s->n = n;
	s->elsize = el;
	s->typecode = typecode;
	s->has_lock = lock;
	if (lock) {
		/* The lock lives in the same mapping, after the elements. */
		int rc;
		s->lock = (struct mproc_lock *)(void *)(s->data + data);
		if ((rc = mproc__shared_lock_init(s->lock)) < 0) {
			mproc__shm_free(s, len);
			return rc;
		}
	}
	*out = s;
	return 0;
}

int mproc_shared_value(struct mproc_shared **out, char typecode, bool lock)
{
	return mproc_shared_array(out, typecode, 1, lock);
}

struct mproc_lock *mproc_shared_get_lock(struct mproc_shared *s)
{
	return s && s->has_lock ? s->lock : NULL;
}

void *mproc_shared_ptr(struct mproc_shared *s)
{
	return s ? s->data : NULL;
}

size_t mproc_shared_len(const struct mproc_shared *s)
{
	return s ? s->n : 0;
}

char mproc_shared_typecode(const struct mproc_shared *s)
{
	return s ? s->typecode : '\0';
}

/* Check s and i; lock when there is a lock. 0, or a code. */
static int shared_enter(struct mproc_shared *s, size_t i)
{
	if (!s)
		return -EINVAL;
	if (i >= s->n)
		return MPROC_EINDEX;
	if (s->has_lock) {
		int rc = mproc_lock_acquire(s->lock, -1);
		/* A holder died: an element is written in one store, so
		 * what it guarded is whole; go on. */
		if (rc < 0 && rc != MPROC_EABANDONED)
			return rc;
	}
	return 0;
}

static void shared_leave(struct mproc_shared *s)
{
	if (s->has_lock)
		mproc_lock_release(s->lock);
}

/* Element i as a long double, which holds every int64 and uint64 and
 * every double exactly. */
static long double shared_load(const struct mproc_shared *s, size_t i)
{
	const void *p = s->data + i * s->elsize;
	switch (s->typecode) {
	case 'c': case 'B': return *(const unsigned char *)p;
	case 'b': return *(const signed char *)p;
	case 'h': return *(const short *)p;
	case 'H': return *(const unsigned short *)p;
	case 'i': return *(const int *)p;
	case 'I': return *(const unsigned *)p;
	case 'l': return *(const long *)p;
	case 'L': return *(const unsigned long *)p;
	case 'q': return *(const long long *)p;
	case 'Q': return *(const unsigned long long *)p;
	case 'f': return *(const float *)p;
	default: return *(const double *)p;
	}
}

/* Whether x fits element type t (ints only). */
static bool shared_fits(char t, int64_t x)
{
	switch (t) {
	case 'c': case 'B': return x >= 0 && x <= UINT8_MAX;
	case 'b': return x >= INT8_MIN && x <= INT8_MAX;
	case 'h': return x >= SHRT_MIN && x <= SHRT_MAX;
	case 'H': return x >= 0 && x <= USHRT_MAX;
	case 'i': return x >= INT_MIN && x <= INT_MAX;
	case 'I': return x >= 0 && (uint64_t)x <= UINT_MAX;
	case 'l': return x >= LONG_MIN && x <= LONG_MAX;
	case 'L': return x >= 0;
	case 'q': return true;
	case 'Q': return x >= 0;
	default: return true;
	}
}

static void shared_store_int(struct mproc_shared *s, size_t i, int64_t x)
{
	void *p = s->data + i * s->elsize;
	switch (s->typecode) {
	case 'c': case 'B': *(unsigned char *)p = (unsigned char)x; break;
	case 'b': *(signed char *)p = (signed char)x; break;
	case 'h': *(short *)p = (short)x; break;
	case 'H': *(unsigned short *)p = (unsigned short)x; break;
	case 'i': *(int *)p = (int)x; break;
	case 'I': *(unsigned *)p = (unsigned)x; break;
	case 'l': *(long *)p = (long)x; break;
	case 'L': *(unsigned long *)p = (unsigned long)x; break;
	case 'q': *(long long *)p = x; break;
	case 'Q': *(unsigned long long *)p = (unsigned long long)x; break;
	case 'f': *(float *)p = (float)x; break;
	default: *(double *)p = (double)x; break;
	}
}

int mproc_shared_get_int(struct mproc_shared *s, size_t i, int64_t *out)
{
	if (!out)
		return -EINVAL;
	int rc = shared_enter(s, i);
	if (rc < 0)
		return rc;
	long double v = shared_load(s, i);
	shared_leave(s);
	if (shared_is_float(s->typecode))
		return MPROC_ETYPE;
	if (v > (long double)INT64_MAX)
		return -ERANGE;
	*out = (int64_t)v;
	return 0;
}

int mproc_shared_set_int(struct mproc_shared *s, size_t i, int64_t x)
{
	if (!s)
		return -EINVAL;
	if (!shared_fits(s->typecode, x))
		return i < s->n ? -ERANGE : MPROC_EINDEX;
	int rc = shared_enter(s, i);
	if (rc < 0)
		return rc;
	shared_store_int(s, i, x);
	shared_leave(s);
	return 0;
}

int mproc_shared_get_float(struct mproc_shared *s, size_t i, double *out)
{
	if (!out)
		return -EINVAL;
	int rc = shared_enter(s, i);
	if (rc < 0)
		return rc;
	*out = (double)shared_load(s, i);
	shared_leave(s);
	return 0;
}

int mproc_shared_set_float(struct mproc_shared *s, size_t i, double x)
{
	if (!s)
		return -EINVAL;
	if (!shared_is_float(s->typecode))
		return MPROC_ETYPE;
	int rc = shared_enter(s, i);
	if (rc < 0)
		return rc;
	void *p = s->data + i * s->elsize;
	if (s->typecode == 'f')
		*(float *)p = (float)x;
	else
		*(double *)p = x;
	shared_leave(s);
	return 0;
}

void mproc_shared_free(struct mproc_shared *s)
{
	if (s)
		mproc__shm_free(s, s->maplen);
}
