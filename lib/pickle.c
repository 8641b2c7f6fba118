/*
 * pickle.c - the value codec: a streaming writer of pickle opcodes and a
 * decoder of a safe subset of Python's pickle into a read-only value tree.
 *
 * What it owns: struct mproc_writer, struct mproc_decoder, struct
 * mproc_value and its accessors, and mproc_raise() (which is a writer
 * operation). docs/pickle.md is the user's view of the subset.
 *
 * Invariants:
 * - The decoder never reads outside buf[0..len): every argument length is
 *   checked against the bytes left before anything is read.
 * - A tree lives in its decoder's arena (a chunked bump allocator); str and
 *   bytes values point into the caller's message, except bytes rebuilt from
 *   a protocol 2 `_codecs.encode(s, 'latin1')` call, which live in the
 *   arena, and bytes taken by NEXT_BUFFER, which point into the caller's
 *   out-of-band buffer. Nothing is malloc'd per value.
 * - Trees are acyclic DAGs: memo references may share a node, but a mutable
 *   container (list, dict, set) is frozen as soon as it is placed inside
 *   another container, and a frozen container takes no more items. So a
 *   container can only grow while nothing contains it, and no cycle forms.
 * - Each node knows its height (0 for scalars) and each container its
 *   "weight": the size it would take written out without memo sharing.
 *   Depth and weight are checked as the tree is built, so neither a deep
 *   message nor a memo expansion bomb gets past the decoder, and
 *   mproc_write_value() on a decoded tree is bounded in time and output.
 * - The writer emits PROTO first and STOP last, never a memo; it keeps a
 *   stack of open containers, refuses unhashable dict keys and set items
 *   (as Python would when loading), and remembers its first error.
 * - Out-of-band buffers (protocol 5): the writer's list holds exactly the
 *   buffers of the NEXT_BUFFER opcodes written since the value began, each
 *   a reference or a block the writer allocated (malloc, or the transport's
 *   ops); a restart drops the blocks nobody took. The list is empty on the
 *   hot path, where its cost is one test in a restart.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mproc.h"
#include "buf.h"
#include "pickle.h"
#include "detail.h"

/* ------------------------------------------------------------------------ */
/* Opcodes                                                                  */
/* ------------------------------------------------------------------------ */

enum {
	OP_MARK = 0x28,             /* ( */
	OP_STOP = MPROC__OP_STOP,   /* . */
	OP_POP = 0x30,              /* 0 */
	OP_POP_MARK = 0x31,         /* 1 */
	OP_DUP = 0x32,              /* 2 */
	OP_FLOAT = 0x46,            /* F */
	OP_INT = 0x49,              /* I */
	OP_BININT = 0x4a,           /* J */
	OP_BININT1 = 0x4b,          /* K */
	OP_LONG = 0x4c,             /* L */
	OP_BININT2 = 0x4d,          /* M */
	OP_NONE = MPROC__OP_NONE,   /* N */
	OP_PERSID = 0x50,           /* P */
	OP_BINPERSID = 0x51,        /* Q */
	OP_REDUCE = 0x52,           /* R */
	OP_STRING = 0x53,           /* S */
	OP_BINSTRING = 0x54,        /* T */
	OP_SHORT_BINSTRING = 0x55,  /* U */
	OP_UNICODE = 0x56,          /* V */
	OP_BINUNICODE = 0x58,       /* X */
	OP_APPEND = 0x61,           /* a */
	OP_BUILD = 0x62,            /* b */
	OP_GLOBAL = 0x63,           /* c */
	OP_DICT = 0x64,             /* d */
	OP_EMPTY_DICT = 0x7d,       /* } */
	OP_APPENDS = 0x65,          /* e */
	OP_GET = 0x67,              /* g */
	OP_BINGET = 0x68,           /* h */
	OP_INST = 0x69,             /* i */
	OP_LONG_BINGET = 0x6a,      /* j */
	OP_LIST = 0x6c,             /* l */
	OP_EMPTY_LIST = 0x5d,       /* ] */
	OP_OBJ = 0x6f,              /* o */
	OP_PUT = 0x70,              /* p */
	OP_BINPUT = 0x71,           /* q */
	OP_LONG_BINPUT = 0x72,      /* r */
	OP_SETITEM = 0x73,          /* s */
	OP_TUPLE = 0x74,            /* t */
	OP_EMPTY_TUPLE = 0x29,      /* ) */
	OP_SETITEMS = 0x75,         /* u */
	OP_BINFLOAT = 0x47,         /* G */
	OP_PROTO = MPROC__OP_PROTO,
	OP_NEWOBJ = 0x81,
	OP_EXT1 = 0x82,
	OP_EXT2 = 0x83,
	OP_EXT4 = 0x84,
	OP_TUPLE1 = 0x85,
	OP_TUPLE2 = 0x86,
	OP_TUPLE3 = 0x87,
	OP_NEWTRUE = 0x88,
	OP_NEWFALSE = 0x89,
	OP_LONG1 = 0x8a,
	OP_LONG4 = 0x8b,
	OP_BINBYTES = 0x42,         /* B */
	OP_SHORT_BINBYTES = 0x43,   /* C */
	OP_SHORT_BINUNICODE = 0x8c,
	OP_BINUNICODE8 = 0x8d,
	OP_BINBYTES8 = 0x8e,
	OP_EMPTY_SET = 0x8f,
	OP_ADDITEMS = 0x90,
	OP_FROZENSET = 0x91,
	OP_NEWOBJ_EX = 0x92,
	OP_STACK_GLOBAL = 0x93,
	OP_MEMOIZE = 0x94,
	OP_FRAME = 0x95,
	OP_BYTEARRAY8 = 0x96,
	OP_NEXT_BUFFER = 0x97,
	OP_READONLY_BUFFER = 0x98,
};

/* Every opcode pickle knows (pickletools' names), accepted or not, so that
 * a refusal can name what it refused. */
static const char *const pickle_opnames[256] = {
	[OP_MARK] = "MARK", [OP_STOP] = "STOP", [OP_POP] = "POP",
	[OP_POP_MARK] = "POP_MARK", [OP_DUP] = "DUP", [OP_FLOAT] = "FLOAT",
	[OP_INT] = "INT", [OP_BININT] = "BININT", [OP_BININT1] = "BININT1",
	[OP_LONG] = "LONG", [OP_BININT2] = "BININT2", [OP_NONE] = "NONE",
	[OP_PERSID] = "PERSID", [OP_BINPERSID] = "BINPERSID",
	[OP_REDUCE] = "REDUCE", [OP_STRING] = "STRING",
	[OP_BINSTRING] = "BINSTRING", [OP_SHORT_BINSTRING] = "SHORT_BINSTRING",
	[OP_UNICODE] = "UNICODE", [OP_BINUNICODE] = "BINUNICODE",
	[OP_APPEND] = "APPEND", [OP_BUILD] = "BUILD", [OP_GLOBAL] = "GLOBAL",
	[OP_DICT] = "DICT", [OP_EMPTY_DICT] = "EMPTY_DICT",
	[OP_APPENDS] = "APPENDS", [OP_GET] = "GET", [OP_BINGET] = "BINGET",
	[OP_INST] = "INST", [OP_LONG_BINGET] = "LONG_BINGET", [OP_LIST] = "LIST",
	[OP_EMPTY_LIST] = "EMPTY_LIST", [OP_OBJ] = "OBJ", [OP_PUT] = "PUT",
	[OP_BINPUT] = "BINPUT", [OP_LONG_BINPUT] = "LONG_BINPUT",
	[OP_SETITEM] = "SETITEM", [OP_TUPLE] = "TUPLE",
	[OP_EMPTY_TUPLE] = "EMPTY_TUPLE", [OP_SETITEMS] = "SETITEMS",
	[OP_BINFLOAT] = "BINFLOAT", [OP_PROTO] = "PROTO", [OP_NEWOBJ] = "NEWOBJ",
	[OP_EXT1] = "EXT1", [OP_EXT2] = "EXT2", [OP_EXT4] = "EXT4",
	[OP_TUPLE1] = "TUPLE1", [OP_TUPLE2] = "TUPLE2", [OP_TUPLE3] = "TUPLE3",
	[OP_NEWTRUE] = "NEWTRUE", [OP_NEWFALSE] = "NEWFALSE",
	[OP_LONG1] = "LONG1", [OP_LONG4] = "LONG4", [OP_BINBYTES] = "BINBYTES",
	[OP_SHORT_BINBYTES] = "SHORT_BINBYTES",
	[OP_SHORT_BINUNICODE] = "SHORT_BINUNICODE",
	[OP_BINUNICODE8] = "BINUNICODE8", [OP_BINBYTES8] = "BINBYTES8",
	[OP_EMPTY_SET] = "EMPTY_SET", [OP_ADDITEMS] = "ADDITEMS",
	[OP_FROZENSET] = "FROZENSET", [OP_NEWOBJ_EX] = "NEWOBJ_EX",
	[OP_STACK_GLOBAL] = "STACK_GLOBAL", [OP_MEMOIZE] = "MEMOIZE",
	[OP_FRAME] = "FRAME", [OP_BYTEARRAY8] = "BYTEARRAY8",
	[OP_NEXT_BUFFER] = "NEXT_BUFFER", [OP_READONLY_BUFFER] = "READONLY_BUFFER",
};

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

/* Node flags. */
enum {
	PICKLE_F_HASHABLE = 1, /* may be a dict key or a set item */
	PICKLE_F_FROZEN = 2,   /* a mutable container now inside another one */
	PICKLE_F_OOB = 4,      /* bytes from an out-of-band buffer (u.b) */
	PICKLE_F_READONLY = 8, /* ... marked read-only */
};

/*
 * Not a value: the result of an accepted GLOBAL (dec_global_kind; CPython
 * writes them at protocols 2 and 3), only usable as the callable of
 * REDUCE. Never reaches a finished tree.
 */
#define PICKLE_T_GLOBAL 0x7f

enum pickle_global {
	PICKLE_G_ENCODE = 1, /* _codecs.encode */
	PICKLE_G_BYTES,      /* builtins.bytes (__builtin__ below protocol 3) */
	PICKLE_G_SET,
	PICKLE_G_FROZENSET,
};

/*
 * A value node. Scalars are allocated only as large as their payload (the
 * header plus the union member they use), so nothing ever reads a node
 * through a member its type does not use.
 */
struct mproc_value {
	uint8_t type;     /* enum mproc_type, or PICKLE_T_GLOBAL */
	uint8_t flags;    /* PICKLE_F_* */
	uint8_t capl2;    /* mutable containers: log2 of slots allocated, 0: none */
	uint8_t aux;      /* None, bool, int, float: bytes the writer takes
	                   * for it; PICKLE_T_GLOBAL: enum pickle_global */
	uint32_t height;  /* 0 for scalars, 1 + tallest item for containers */
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			const char *p;
			size_t len;
		} s;
		/* bytes with PICKLE_F_OOB: u.s and its place in the buffers
		 * (a whole PICKLE_NODE_C node) */
		struct {
			const char *p;
			size_t len;
			size_t index;
		} ob;
		struct {
			/* dicts: key, value, key, value... (2 * n slots) */
			struct mproc_value **items;
			size_t n;
			/* bytes it takes written out without memo (saturating) */
			uint64_t weight;
		} c;
		size_t offset; /* PICKLE_T_GLOBAL: where its GLOBAL was */
	} u;
};

#define PICKLE_NODE_8 (offsetof(struct mproc_value, u) + 8)
#define PICKLE_NODE_16 (offsetof(struct mproc_value, u) + 16)
#define PICKLE_NODE_C (sizeof(struct mproc_value))

/* Shared, never-written nodes for the commonest scalars. */
static const struct mproc_value pickle_none = {.type = MPROC_NONE,
	.flags = PICKLE_F_HASHABLE, .aux = 1};
static const struct mproc_value pickle_true = {.type = MPROC_BOOL,
	.flags = PICKLE_F_HASHABLE, .aux = 1, .u.b = true};
static const struct mproc_value pickle_false = {.type = MPROC_BOOL,
	.flags = PICKLE_F_HASHABLE, .aux = 1, .u.b = false};

#define PICKLE_SI1(n) {.type = MPROC_INT, .flags = PICKLE_F_HASHABLE, \
	.aux = 2, .u.i = (n)}
#define PICKLE_SI4(n) PICKLE_SI1(n), PICKLE_SI1(n + 1), PICKLE_SI1(n + 2), \
	PICKLE_SI1(n + 3)
#define PICKLE_SI16(n) PICKLE_SI4(n), PICKLE_SI4(n + 4), PICKLE_SI4(n + 8), \
	PICKLE_SI4(n + 12)
#define PICKLE_SI64(n) PICKLE_SI16(n), PICKLE_SI16(n + 16), \
	PICKLE_SI16(n + 32), PICKLE_SI16(n + 48)
static const struct mproc_value pickle_small_ints[256] = {
	PICKLE_SI64(0), PICKLE_SI64(64), PICKLE_SI64(128), PICKLE_SI64(192),
};

const struct mproc_value *mproc__decode_tiny(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len < 4 || len > 5 || p[0] != 0x80 || (p[1] != 4 && p[1] != 5) ||
	    p[len - 1] != '.')
		return NULL;
	if (len == 4)
		return p[2] == 'N'    ? &pickle_none
		       : p[2] == 0x88 ? &pickle_true
		       : p[2] == 0x89 ? &pickle_false
		                      : NULL;
	return p[2] == 'K' ? &pickle_small_ints[p[3]] : NULL;
}

static inline bool pickle_is_container(const struct mproc_value *v)
{
	return v->type >= MPROC_TUPLE && v->type <= MPROC_FROZENSET;
}

static inline bool pickle_is_mutable(const struct mproc_value *v)
{
	return v->type == MPROC_LIST || v->type == MPROC_DICT ||
	       v->type == MPROC_SET;
}

static inline uint64_t pickle_sat_add(uint64_t a, uint64_t b)
{
	uint64_t r = a + b;
	return r < a ? UINT64_MAX : r;
}

/* Bytes the writer takes for the int i (see mproc_write_int). */
static inline unsigned pickle_int_size(int64_t i)
{
	if ((uint64_t)i < 256)
		return 2;
	if ((uint64_t)i < 65536)
		return 3;
	if (i >= INT32_MIN && i <= INT32_MAX)
		return 5;
	unsigned n = 5;
	while (n < 8 && (i < -(INT64_C(1) << (8 * n - 1)) ||
	                 i >= (INT64_C(1) << (8 * n - 1))))
		n++;
	return 2 + n;
}

/* Bytes the writer takes for a str or bytes of len bytes. */
static inline uint64_t pickle_blob_size(size_t len)
{
	return (uint64_t)len + (len < 256 ? 2 : len <= UINT32_MAX ? 5 : 9);
}

/*
 * Bytes the writer takes for v: exact for scalars, at most one byte over
 * per container. Lets the decoder bound what mproc_write_value() writes.
 * The fixed-size scalars carry theirs in aux, so that summing the items
 * of a big list costs one load each.
 */
static inline uint64_t pickle_weight(const struct mproc_value *v)
{
	if (v->type < MPROC_STR)
		return v->aux;
	if (v->type <= MPROC_BYTES)
		/* Out of band: NEXT_BUFFER READONLY_BUFFER, whatever its
		 * length (the buffers do not count against max_size). */
		return __builtin_expect(v->flags & PICKLE_F_OOB, 0)
		               ? 2 : pickle_blob_size(v->u.s.len);
	if (v->type == PICKLE_T_GLOBAL)
		return 0;
	return v->u.c.weight;
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Length of the strict UTF-8 sequence at s[0..n), or 0 if there is none:
 * no overlong forms, no surrogates (Python writes lone ones with
 * surrogatepass; they are not text), nothing past U+10FFFF.
 */
static size_t pickle_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	unsigned lo = 0x80, hi = 0xbf;
	size_t k;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t j = 2; j < k; j++)
		if ((s[j] & 0xc0) != 0x80)
			return 0;
	return k;
}

/* Is s[0..n) all ASCII? A few overlapping word loads, no byte loop. */
static inline bool pickle_ascii(const unsigned char *s, size_t n)
{
	uint64_t a, b;
	uint32_t c, e;
	if (n >= 8) {
		uint64_t acc = 0;
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			memcpy(&a, s + i, 8);
			acc |= a;
		}
		memcpy(&b, s + n - 8, 8); /* the tail, overlapping */
		return !((acc | b) & UINT64_C(0x8080808080808080));
	}
	if (n >= 4) {
		memcpy(&c, s, 4);
		memcpy(&e, s + n - 4, 4);
		return !((c | e) & 0x80808080u);
	}
	unsigned x = 0;
	for (size_t i = 0; i < n; i++)
		x |= s[i];
	return !(x & 0x80);
}

static bool pickle_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	if (pickle_ascii(s, n))
		return true;
	size_t i = 0;
	while (i < n) {
		/* Most text is ASCII: test eight bytes at a time. */
		if (n - i >= 8) {
			uint64_t x;
			memcpy(&x, s + i, 8);
			if (!(x & UINT64_C(0x8080808080808080))) {
				i += 8;
				continue;
			}
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = pickle_utf8_seq(s + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* ------------------------------------------------------------------------ */
/* The writer                                                               */
/* ------------------------------------------------------------------------ */

#define PICKLE_WRITER_MAX_DEPTH 1000
/* Tuples of 1-3 items whose items take at most this many bytes lose their
 * MARK for TUPLE1..3 (a memmove of that size is cheaper than the byte). */
#define PICKLE_TUPLE_SHIFT_MAX 256

struct pickle_frame {
	uint8_t kind;     /* MPROC_TUPLE ... MPROC_FROZENSET */
	bool hashonly;    /* every item must be hashable (inside a key) */
	size_t count;     /* items written (keys and values for a dict) */
	size_t mark;      /* offset of the frame's MARK byte */
};

static int wr_fail(struct mproc_writer *w, int code)
{
	if (!w->err)
		w->err = code;
	return w->err;
}

int mproc_writer_new(struct mproc_writer **out, int protocol)
{
	if (protocol == 0)
		protocol = 5;
	if (protocol != 4 && protocol != 5)
		return -EINVAL;
	struct mproc_writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->protocol = (uint8_t)protocol;
	w->b = &w->own;
	w->start = 0;
	w->oob_min = SIZE_MAX;
	mproc__writer_restart(w);
	if (w->err) {
		mproc_writer_free(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

void mproc_writer_free(struct mproc_writer *w)
{
	if (!w)
		return;
	mproc__writer_oob_drop(w);
	mproc__buf_free(&w->own);
	free(w->frames);
	free(w->oob);
	free(w->pub);
	free(w);
}

void mproc_writer_reset(struct mproc_writer *w)
{
	mproc__writer_restart(w);
}

int mproc__writer_top_type(const struct mproc_writer *w)
{
	return w->top_type;
}

/* Checks common to all writes: nothing wrong yet, room for a value here. */
static int wr_check_end(struct mproc_writer *w)
{
	if (w->err)
		return w->err;
	if (w->depth || w->top_type < 0)
		return wr_fail(w, MPROC_EWRITER);
	return 0;
}

int mproc_writer_finish(struct mproc_writer *w, const void **data,
                        size_t *len)
{
	if (!w->finished) {
		int rc = wr_check_end(w);
		if (rc)
			return rc;
		if (mproc__buf_append(w->b, (char[]){OP_STOP}, 1) < 0)
			return wr_fail(w, -ENOMEM);
		w->finished = true;
	}
	*data = w->b->data + w->start;
	*len = w->b->len - w->start;
	return 0;
}

int mproc__writer_end(struct mproc_writer *w)
{
	int rc = wr_check_end(w);
	if (!rc && mproc__buf_append(w->b, (char[]){OP_STOP}, 1) < 0)
		rc = wr_fail(w, -ENOMEM);
	if (rc) {
		/* The value is gone, and its buffers with it. */
		w->b->len = w->start;
		if (w->noob)
			mproc__writer_oob_drop(w);
		return rc;
	}
	w->finished = true;
	return 0;
}

/* Must the next item of the innermost open container be hashable? */
static inline bool wr_needs_hash(const struct pickle_frame *f)
{
	return f->hashonly || f->kind == MPROC_SET ||
	       f->kind == MPROC_FROZENSET ||
	       (f->kind == MPROC_DICT && !(f->count & 1));
}

/*
 * Account for one value of `type` about to be written and make room for
 * `need` bytes. Scalars are always hashable, so only the top level needs a
 * check; containers go through wr_begin().
 */
static inline int wr_item(struct mproc_writer *w, int type, size_t need)
{
	if (__builtin_expect(w->err != 0, 0))
		return w->err;
	if (w->depth) {
		w->frames[w->depth - 1].count++;
	} else {
		if (w->top_type >= 0)
			return wr_fail(w, MPROC_EWRITER);
		w->top_type = type;
	}
	if (__builtin_expect(w->b->cap - w->b->len < need, 0) &&
	    mproc__buf_reserve(w->b, need) < 0)
		return wr_fail(w, -ENOMEM);
	return 0;
}

static inline void wr_le(char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (char)(v >> (8 * i));
}

int mproc_write_none(struct mproc_writer *w)
{
	int rc = wr_item(w, MPROC_NONE, 1);
	if (rc)
		return rc;
	w->b->data[w->b->len++] = OP_NONE;
	return 0;
}

int mproc_write_bool(struct mproc_writer *w, bool v)
{
	int rc = wr_item(w, MPROC_BOOL, 1);
	if (rc)
		return rc;
	w->b->data[w->b->len++] = (char)(v ? OP_NEWTRUE : OP_NEWFALSE);
	return 0;
}

int mproc_write_int(struct mproc_writer *w, int64_t i)
{
	int rc = wr_item(w, MPROC_INT, 10);
	if (rc)
		return rc;
	char *p = w->b->data + w->b->len;
	if ((uint64_t)i < 256) {
		p[0] = OP_BININT1;
		p[1] = (char)i;
		w->b->len += 2;
	} else if ((uint64_t)i < 65536) {
		p[0] = OP_BININT2;
		wr_le(p + 1, (uint64_t)i, 2);
		w->b->len += 3;
	} else if (i >= INT32_MIN && i <= INT32_MAX) {
		p[0] = OP_BININT;
		wr_le(p + 1, (uint64_t)i, 4);
		w->b->len += 5;
	} else {
		/* LONG1 with the fewest two's complement bytes that hold i. */
		int n = (int)pickle_int_size(i) - 2;
		p[0] = (char)OP_LONG1;
		p[1] = (char)n;
		wr_le(p + 2, (uint64_t)i, n);
		w->b->len += 2 + (size_t)n;
	}
	return 0;
}

int mproc_write_float(struct mproc_writer *w, double f)
{
	int rc = wr_item(w, MPROC_FLOAT, 9);
	if (rc)
		return rc;
	uint64_t u;
	memcpy(&u, &f, 8);
	u = htobe64(u);
	char *p = w->b->data + w->b->len;
	p[0] = OP_BINFLOAT;
	memcpy(p + 1, &u, 8);
	w->b->len += 9;
	return 0;
}

/* str or bytes with the short/4-byte/8-byte length opcode that fits. */
static int wr_blob(struct mproc_writer *w, int type, const void *s, size_t len)
{
	if (len > SIZE_MAX - 9)
		return wr_fail(w, -ENOMEM);
	int rc = wr_item(w, type, len + 9);
	if (rc)
		return rc;
	char *p = w->b->data + w->b->len;
	size_t h;
	if (len < 256) {
		p[0] = (char)(type == MPROC_STR ? OP_SHORT_BINUNICODE
		                                : OP_SHORT_BINBYTES);
		p[1] = (char)len;
		h = 2;
	} else if (len <= UINT32_MAX) {
		p[0] = type == MPROC_STR ? OP_BINUNICODE : OP_BINBYTES;
		wr_le(p + 1, len, 4);
		h = 5;
	} else {
		p[0] = (char)(type == MPROC_STR ? OP_BINUNICODE8 : OP_BINBYTES8);
		wr_le(p + 1, len, 8);
		h = 9;
	}
	if (len)
		memcpy(p + h, s, len);
	w->b->len += h + len;
	return 0;
}

int mproc_write_str(struct mproc_writer *w, const char *s, size_t len)
{
	if (w->err)
		return w->err;
	if (len && !s)
		return wr_fail(w, -EINVAL);
	if (!pickle_utf8_valid(s, len))
		return wr_fail(w, MPROC_EPICKLE_UTF8);
	return wr_blob(w, MPROC_STR, s, len);
}

int mproc_write_cstr(struct mproc_writer *w, const char *s)
{
	if (!s)
		return wr_fail(w, -EINVAL);
	return mproc_write_str(w, s, strlen(s));
}

static int wr_bytes_oob(struct mproc_writer *w, const void *p, size_t len);

int mproc_write_bytes(struct mproc_writer *w, const void *p, size_t len)
{
	if (len && !p)
		return wr_fail(w, -EINVAL);
	/* oob_min is SIZE_MAX without a threshold: one compare. */
	if (__builtin_expect(len >= w->oob_min, 0))
		return wr_bytes_oob(w, p, len);
	return wr_blob(w, MPROC_BYTES, p, len);
}

static int wr_begin(struct mproc_writer *w, int kind)
{
	if (w->err)
		return w->err;
	bool hashonly = false;
	if (w->depth) {
		struct pickle_frame *f = &w->frames[w->depth - 1];
		if (wr_needs_hash(f)) {
			/* A list, dict or set is never hashable; a tuple or
			 * frozenset is when its items are, so they inherit. */
			if (kind != MPROC_TUPLE && kind != MPROC_FROZENSET)
				return wr_fail(w, MPROC_EWRITER);
			hashonly = true;
		}
	}
	if (w->depth >= PICKLE_WRITER_MAX_DEPTH)
		return wr_fail(w, MPROC_EPICKLE_DEPTH);
	if (w->depth == w->fcap) {
		unsigned ncap = w->fcap ? w->fcap * 2 : 16;
		struct pickle_frame *nf =
			reallocarray(w->frames, ncap, sizeof *nf);
		if (!nf)
			return wr_fail(w, -ENOMEM);
		w->frames = nf;
		w->fcap = ncap;
	}
	int rc = wr_item(w, kind, 2);
	if (rc)
		return rc;
	char *p = w->b->data + w->b->len;
	size_t n = 0;
	switch (kind) {
	case MPROC_LIST:
		p[n++] = OP_EMPTY_LIST;
		break;
	case MPROC_DICT:
		p[n++] = OP_EMPTY_DICT;
		break;
	case MPROC_SET:
		p[n++] = (char)OP_EMPTY_SET;
		break;
	default:
		break;
	}
	struct pickle_frame *f = &w->frames[w->depth++];
	f->kind = (uint8_t)kind;
	f->hashonly = hashonly;
	f->count = 0;
	f->mark = w->b->len + n;
	p[n++] = OP_MARK;
	w->b->len += n;
	return 0;
}

static int wr_end(struct mproc_writer *w, int kind)
{
	if (w->err)
		return w->err;
	if (!w->depth || w->frames[w->depth - 1].kind != kind)
		return wr_fail(w, MPROC_EWRITER);
	struct pickle_frame *f = &w->frames[w->depth - 1];
	if (kind == MPROC_DICT && (f->count & 1))
		return wr_fail(w, MPROC_EWRITER);
	if (mproc__buf_reserve(w->b, 1) < 0)
		return wr_fail(w, -ENOMEM);
	char *d = w->b->data;
	size_t after = w->b->len - f->mark - 1;
	switch (kind) {
	case MPROC_TUPLE:
		if (f->count <= 3 && after <= PICKLE_TUPLE_SHIFT_MAX) {
			static const unsigned char ops[4] = {
				OP_EMPTY_TUPLE, OP_TUPLE1, OP_TUPLE2, OP_TUPLE3};
			memmove(d + f->mark, d + f->mark + 1, after);
			d[f->mark + after] = (char)ops[f->count];
		} else {
			d[w->b->len++] = OP_TUPLE;
		}
		break;
	case MPROC_FROZENSET:
		d[w->b->len++] = (char)OP_FROZENSET;
		break;
	default:
		/* An empty list, dict or set needs no MARK and no APPENDS. */
		if (!f->count)
			w->b->len--;
		else
			d[w->b->len++] = (char)(kind == MPROC_LIST ? OP_APPENDS
			                        : kind == MPROC_DICT ? OP_SETITEMS
			                                             : OP_ADDITEMS);
		break;
	}
	w->depth--;
	return 0;
}

int mproc_write_tuple_begin(struct mproc_writer *w)
{
	return wr_begin(w, MPROC_TUPLE);
}

int mproc_write_tuple_end(struct mproc_writer *w)
{
	return wr_end(w, MPROC_TUPLE);
}

int mproc_write_list_begin(struct mproc_writer *w)
{
	return wr_begin(w, MPROC_LIST);
}

int mproc_write_list_end(struct mproc_writer *w)
{
	return wr_end(w, MPROC_LIST);
}

int mproc_write_dict_begin(struct mproc_writer *w)
{
	return wr_begin(w, MPROC_DICT);
}

int mproc_write_dict_end(struct mproc_writer *w)
{
	return wr_end(w, MPROC_DICT);
}

int mproc_write_set_begin(struct mproc_writer *w)
{
	return wr_begin(w, MPROC_SET);
}

int mproc_write_set_end(struct mproc_writer *w)
{
	return wr_end(w, MPROC_SET);
}

int mproc_write_frozenset_begin(struct mproc_writer *w)
{
	return wr_begin(w, MPROC_FROZENSET);
}

int mproc_write_frozenset_end(struct mproc_writer *w)
{
	return wr_end(w, MPROC_FROZENSET);
}

/* ---- out-of-band buffers (protocol 5) ----------------------------------- */

/* What a zero-length copy or reservation points to: nothing to allocate. */
static char wr_empty[1];

void mproc__writer_oob_drop(struct mproc_writer *w)
{
	for (size_t i = 0; i < w->noob; i++) {
		struct mproc__oob_buf *o = &w->oob[i];
		if (o->flags & MPROC__OOB_OPS) {
			if (w->ops.drop)
				w->ops.drop(w->ops.ctx, (void *)o->data, o->len,
				            o->tag);
		} else if (o->flags & MPROC__OOB_MALLOC) {
			free((void *)o->data);
		}
	}
	w->noob = 0;
}

void mproc__writer_set_oob(struct mproc_writer *w,
                           const struct mproc__oob_ops *ops)
{
	/* Blocks already in the list go back where they came from. */
	if (w->noob)
		mproc__writer_oob_drop(w);
	if (ops)
		w->ops = *ops;
	else
		w->ops = (struct mproc__oob_ops){0};
}

static int wr_oob_grow(struct mproc_writer *w)
{
	size_t ncap = w->oobcap ? w->oobcap * 2 : 8;
	struct mproc__oob_buf *no = reallocarray(w->oob, ncap, sizeof *no);
	if (!no)
		return -ENOMEM;
	w->oob = no;
	struct mproc_buffer *np = reallocarray(w->pub, ncap, sizeof *np);
	if (!np)
		return -ENOMEM; /* oob grew: harmless, oobcap stays */
	w->pub = np;
	w->oobcap = ncap;
	return 0;
}

/* Where the next value goes needs a hashable item (a dict key, a set or
 * frozenset item, anything inside a key)? */
static inline bool wr_at_key(const struct mproc_writer *w)
{
	return w->depth && wr_needs_hash(&w->frames[w->depth - 1]);
}

enum { WR_REF, WR_COPY, WR_RESERVE, WR_PRE };

/*
 * One bytes value out of band: NEXT_BUFFER (READONLY_BUFFER too when
 * `readonly`), and the buffer joins the list, as a reference to p[0..len)
 * (WR_REF) or a block of the writer's, filled from p (WR_COPY) or left to
 * the caller at *res (WR_RESERVE), or a block the caller took from the ops
 * and filled, *res, whose tag p points to (WR_PRE). The caller checked the
 * protocol and the place (not a key).
 */
static int wr_oob(struct mproc_writer *w, const void *p, size_t len,
                  bool readonly, int how, void **res)
{
	int rc = wr_item(w, MPROC_BYTES, 2);
	if (rc)
		return rc;
	if (w->noob == w->oobcap && wr_oob_grow(w) < 0)
		return wr_fail(w, -ENOMEM);
	unsigned flags = readonly ? MPROC__OOB_READONLY : 0;
	uint64_t tag = 0;
	const void *data = p;
	if (how != WR_REF) {
		void *q = wr_empty;
		if (len && how == WR_PRE) {
			/* Allocated by the caller from the ops: *res, its tag
			 * in *(uint64_t *)p. */
			q = *res;
			tag = *(const uint64_t *)p;
			flags |= MPROC__OOB_OPS;
		} else if (len) {
			q = w->ops.alloc ? w->ops.alloc(w->ops.ctx, len, &tag)
			                 : NULL;
			if (q) {
				flags |= MPROC__OOB_OPS;
			} else {
				tag = 0;
				q = malloc(len);
				if (!q)
					return wr_fail(w, -ENOMEM);
				flags |= MPROC__OOB_MALLOC;
			}
			if (how == WR_COPY)
				memcpy(q, p, len);
		}
		if (res)
			*res = q;
		data = q;
	} else if (!data) {
		data = wr_empty; /* len is 0 */
	}
	w->oob[w->noob] = (struct mproc__oob_buf){.data = data, .len = len,
	                                          .tag = tag, .flags = flags};
	w->pub[w->noob] = (struct mproc_buffer){.data = data, .len = len,
	                                        .readonly = readonly};
	w->noob++;
	char *d = w->b->data + w->b->len;
	d[0] = (char)OP_NEXT_BUFFER;
	if (readonly)
		d[1] = (char)OP_READONLY_BUFFER;
	w->b->len += readonly ? 2 : 1;
	return 0;
}

/* Checks of the explicit out-of-band writes. */
static int wr_oob_check(struct mproc_writer *w)
{
	if (w->err)
		return w->err;
	/* Python: "PickleBuffer can only pickled with protocol >= 5". */
	if (w->protocol < 5)
		return wr_fail(w, MPROC_EWRITER);
	/* A PickleBuffer is not hashable: Python could not have built it. */
	if (wr_at_key(w))
		return wr_fail(w, MPROC_EWRITER);
	return 0;
}

int mproc_write_buffer(struct mproc_writer *w, const void *p, size_t len,
                       unsigned flags)
{
	int rc = wr_oob_check(w);
	if (rc)
		return rc;
	if ((flags & ~(MPROC_BUFFER_COPY | MPROC_BUFFER_WRITABLE)) ||
	    (len && !p))
		return wr_fail(w, -EINVAL);
	return wr_oob(w, p, len, !(flags & MPROC_BUFFER_WRITABLE),
	              flags & MPROC_BUFFER_COPY ? WR_COPY : WR_REF, NULL);
}

int mproc_write_reserve(struct mproc_writer *w, size_t len, void **p)
{
	*p = NULL;
	int rc = wr_oob_check(w);
	if (rc)
		return rc;
	return wr_oob(w, NULL, len, true, WR_RESERVE, p);
}

int mproc_writer_set_oob_threshold(struct mproc_writer *w, size_t min_len)
{
	if (min_len && w->protocol < 5)
		return -EINVAL;
	w->oob_min = min_len ? min_len : SIZE_MAX;
	return 0;
}

int mproc_writer_buffers(const struct mproc_writer *w,
                         const struct mproc_buffer **bufs, size_t *n)
{
	static const struct mproc_buffer none[1];
	if (w->err)
		return w->err;
	if (!w->finished)
		return MPROC_EWRITER;
	*bufs = w->noob ? w->pub : none;
	*n = w->noob;
	return 0;
}

/* Bytes at or past the threshold: a read-only copy out of band, except
 * where a hashable item is needed (bytes are hashable, a buffer is not). */
static __attribute__((noinline)) int wr_bytes_oob(struct mproc_writer *w,
                                                  const void *p, size_t len)
{
	if (w->err)
		return w->err;
	if (wr_at_key(w))
		return wr_blob(w, MPROC_BYTES, p, len);
	if (w->ops.alloc && len) {
		/* A transport's writer: out of band where the transport has
		 * room, else in band (one copy, not a malloc and then another
		 * into the record). */
		uint64_t tag;
		void *q = w->ops.alloc(w->ops.ctx, len, &tag);
		if (!q)
			return wr_blob(w, MPROC_BYTES, p, len);
		memcpy(q, p, len);
		int rc = wr_oob(w, &tag, len, true, WR_PRE, &q);
		if (rc && w->ops.drop)
			w->ops.drop(w->ops.ctx, q, len, tag);
		return rc;
	}
	return wr_oob(w, p, len, true, WR_COPY, NULL);
}

/* mproc_write_value() of bytes that are not plain in-band bytes below the
 * threshold. A decoded out-of-band value: out of band again, by reference,
 * on a protocol 5 writer; in band on protocol 4 and where a key is written.
 * Other bytes: the threshold's copy. */
static __attribute__((noinline)) int
wr_value_bytes_slow(struct mproc_writer *w, const struct mproc_value *v)
{
	if (!(v->flags & PICKLE_F_OOB))
		return wr_bytes_oob(w, v->u.s.p, v->u.s.len);
	if (w->err)
		return w->err;
	if (w->protocol < 5 || wr_at_key(w))
		return wr_blob(w, MPROC_BYTES, v->u.ob.p, v->u.ob.len);
	return wr_oob(w, v->u.ob.p, v->u.ob.len,
	              (v->flags & PICKLE_F_READONLY) != 0, WR_REF, NULL);
}

int mproc_write_value(struct mproc_writer *w, const struct mproc_value *v)
{
	if (!v)
		return wr_fail(w, -EINVAL);
	int rc;
	switch (v->type) {
	case MPROC_NONE:
		return mproc_write_none(w);
	case MPROC_BOOL:
		return mproc_write_bool(w, v->u.b);
	case MPROC_INT:
		return mproc_write_int(w, v->u.i);
	case MPROC_FLOAT:
		return mproc_write_float(w, v->u.f);
	case MPROC_STR:
		/* A decoded str is valid UTF-8 already. */
		return wr_blob(w, MPROC_STR, v->u.s.p, v->u.s.len);
	case MPROC_BYTES:
		/* One test and a tail call out of line, so that this
		 * recursive function keeps its frame as small as it was. */
		if (__builtin_expect(v->flags & PICKLE_F_OOB, 0) ||
		    __builtin_expect(v->u.s.len >= w->oob_min, 0))
			return wr_value_bytes_slow(w, v);
		return wr_blob(w, MPROC_BYTES, v->u.s.p, v->u.s.len);
	case MPROC_TUPLE:
	case MPROC_LIST:
	case MPROC_DICT:
	case MPROC_SET:
	case MPROC_FROZENSET: {
		/* Recursion is bounded by the writer's depth limit. */
		rc = wr_begin(w, v->type);
		if (rc)
			return rc;
		size_t n = v->type == MPROC_DICT ? 2 * v->u.c.n : v->u.c.n;
		for (size_t i = 0; i < n; i++) {
			rc = mproc_write_value(w, v->u.c.items[i]);
			if (rc)
				return rc;
		}
		return wr_end(w, v->type);
	}
	default:
		return wr_fail(w, -EINVAL);
	}
}

/* Replace each byte of s[0..n) that is not part of valid UTF-8 by '?'. */
static void pickle_utf8_fix(char *s, size_t n)
{
	unsigned char *u = (unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t k = pickle_utf8_seq(u + i, n - i);
		if (!k) {
			u[i++] = '?';
			continue;
		}
		i += k;
	}
}

int mproc_raise(struct mproc_writer *w, const char *type, const char *fmt,
                ...)
{
	char small[512];
	char *msg = small;
	va_list ap;
	int n = 0;
	small[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		n = vsnprintf(small, sizeof small, fmt, ap);
		va_end(ap);
	}
	if (n < 0) {
		n = 0;
		small[0] = '\0';
	} else if ((size_t)n >= sizeof small) {
		msg = malloc((size_t)n + 1);
		if (msg) {
			va_start(ap, fmt);
			vsnprintf(msg, (size_t)n + 1, fmt, ap);
			va_end(ap);
		} else {
			/* Keep what fits rather than lose the error. */
			msg = small;
			n = (int)sizeof small - 1;
		}
	}
	if (!type || !*type)
		type = "Exception";
	size_t tlen = strlen(type);
	char tsmall[128];
	char *t = tlen < sizeof tsmall ? tsmall : malloc(tlen + 1);

	mproc__writer_restart(w);
	if (!t) {
		wr_fail(w, -ENOMEM);
	} else {
		memcpy(t, type, tlen);
		pickle_utf8_fix(t, tlen);
		pickle_utf8_fix(msg, (size_t)n);
		mproc_write_tuple_begin(w);
		wr_blob(w, MPROC_STR, t, tlen);
		wr_blob(w, MPROC_STR, msg, (size_t)n);
		mproc_write_tuple_end(w);
	}
	w->raised = true;
	if (t != tsmall)
		free(t);
	if (msg != small)
		free(msg);
	return MPROC_ERAISED;
}

/* ------------------------------------------------------------------------ */
/* The decoder's arena                                                      */
/* ------------------------------------------------------------------------ */

#define PICKLE_CHUNK_MIN ((size_t)16 << 10)
#define PICKLE_CHUNK_GROW_MAX ((size_t)256 << 20)
#define PICKLE_DEFAULT_MAX_SIZE ((size_t)1 << 30)
#define PICKLE_DEFAULT_MAX_DEPTH 1000

struct pickle_chunk {
	struct pickle_chunk *next;
	size_t size; /* bytes of data[] */
	alignas(16) unsigned char data[];
};

struct mproc_decoder {
	struct mproc_limits lim;

	/* arena: chunks newest first; bump..bump_end is free in the newest */
	struct pickle_chunk *chunks;
	unsigned char *bump;
	unsigned char *bump_end;

	/* unpickler stack and marks, reused across decodes */
	struct mproc_value **stack;
	size_t sp;
	size_t scap;
	size_t *marks;
	size_t nmarks;
	size_t mcap;

	/* memo: slots [0, memo_hi) may be set; memo_len counts the set ones */
	struct mproc_value **memo;
	size_t memo_cap;
	size_t memo_hi;
	size_t memo_len;

	/* out-of-band buffers of the message being decoded (have_bufs:
	 * some were given, maybe none); next_buf: NEXT_BUFFERs read */
	const struct mproc_buffer *bufs;
	size_t nbufs;
	size_t next_buf;
	bool have_bufs;

	size_t msg_len;
	size_t err_off;
	char err[200];
};

/*
 * Big chunks come straight from mmap, asking for transparent huge pages:
 * a tree of millions of nodes is walked once while it is built, and with
 * 4 KiB pages the TLB misses cost as much as the decoding. Small chunks
 * stay with malloc.
 */
#define PICKLE_CHUNK_MMAP ((size_t)2 << 20)

static struct pickle_chunk *chunk_new(size_t size)
{
	size_t bytes = sizeof(struct pickle_chunk) + size;
	struct pickle_chunk *c;
	if (bytes >= PICKLE_CHUNK_MMAP) {
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		/* Advice only: without THP the chunk works the same. */
		(void)madvise(p, bytes, MADV_HUGEPAGE);
		c = p;
	} else {
		c = malloc(bytes);
		if (!c)
			return NULL;
	}
	c->size = size;
	c->next = NULL;
	return c;
}

static void chunk_free(struct pickle_chunk *c)
{
	size_t bytes = sizeof(struct pickle_chunk) + c->size;
	if (bytes >= PICKLE_CHUNK_MMAP)
		munmap(c, bytes);
	else
		free(c);
}

static void *arena_slow(struct mproc_decoder *d, size_t n)
{
	size_t last = d->chunks ? d->chunks->size : 0;
	size_t size = last < PICKLE_CHUNK_MIN ? PICKLE_CHUNK_MIN
	              : last >= PICKLE_CHUNK_GROW_MAX ? last : last * 2;
	if (size < n)
		size = n;
	if (size > SIZE_MAX - sizeof(struct pickle_chunk))
		return NULL;
	struct pickle_chunk *c = chunk_new(size);
	if (!c)
		return NULL;
	c->next = d->chunks;
	d->chunks = c;
	d->bump = c->data + n;
	d->bump_end = c->data + size;
	return c->data;
}

/* n bytes, 8-aligned, valid until the arena is reset. NULL: no memory. */
static inline void *arena_alloc(struct mproc_decoder *d, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	if (__builtin_expect((size_t)(d->bump_end - d->bump) >= n, 1)) {
		void *p = d->bump;
		d->bump += n;
		return p;
	}
	return arena_slow(d, n);
}

/*
 * Forget every tree. One chunk is kept, as large as all of them were
 * together, so that a decoder that decodes messages of similar size
 * reaches a steady state with no allocation at all.
 */
static void arena_reset_many(struct mproc_decoder *d);

static inline void arena_reset(struct mproc_decoder *d)
{
	struct pickle_chunk *c = d->chunks;
	if (__builtin_expect(c && !c->next, 1)) {
		d->bump = c->data;
		d->bump_end = c->data + c->size;
	} else {
		arena_reset_many(d);
	}
}

static __attribute__((noinline)) void arena_reset_many(struct mproc_decoder *d)
{
	struct pickle_chunk *c = d->chunks;
	if (c && c->next) {
		size_t total = 0;
		while (c) {
			struct pickle_chunk *next = c->next;
			total += c->size;
			chunk_free(c);
			c = next;
		}
		c = chunk_new(total);
		d->chunks = c;
	}
	if (c) {
		d->bump = c->data;
		d->bump_end = c->data + c->size;
	} else {
		d->bump = d->bump_end = NULL;
	}
}

/* ------------------------------------------------------------------------ */
/* The decoder                                                              */
/* ------------------------------------------------------------------------ */

static int dec_grow_stack(struct mproc_decoder *d);

int mproc_decoder_new(struct mproc_decoder **out,
                      const struct mproc_limits *limits)
{
	struct mproc_decoder *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	if (limits)
		d->lim = *limits;
	if (!d->lim.max_size)
		d->lim.max_size = PICKLE_DEFAULT_MAX_SIZE;
	if (!d->lim.max_depth)
		d->lim.max_depth = PICKLE_DEFAULT_MAX_DEPTH;
	/* A stack from the start: container opcodes take their items as
	 * d->stack + mark, which must never be NULL + 0. */
	if (dec_grow_stack(d) < 0) {
		free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void mproc_decoder_free(struct mproc_decoder *d)
{
	if (!d)
		return;
	struct pickle_chunk *c = d->chunks;
	while (c) {
		struct pickle_chunk *next = c->next;
		chunk_free(c);
		c = next;
	}
	free(d->stack);
	free(d->marks);
	free(d->memo);
	free(d);
}

void mproc__decoder_reset(struct mproc_decoder *d)
{
	arena_reset(d);
}

const char *mproc_decoder_error(const struct mproc_decoder *d)
{
	return d->err;
}

size_t mproc_decoder_error_offset(const struct mproc_decoder *d)
{
	return d->err_off;
}

const char *mproc__decoder_strdup(struct mproc_decoder *d, const char *s,
                                  size_t n)
{
	if (n == SIZE_MAX)
		return NULL;
	char *p = arena_alloc(d, n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

MPROC_PRINTF(4, 5)
static int dec_fail(struct mproc_decoder *d, int code, size_t off,
                    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err, sizeof d->err, fmt, ap);
	va_end(ap);
	d->err_off = off;
	return code;
}

static int dec_nomem(struct mproc_decoder *d, size_t off)
{
	return dec_fail(d, -ENOMEM, off, "out of memory at offset %zu", off);
}

static const char *dec_opname(unsigned op)
{
	return pickle_opnames[op] ? pickle_opnames[op] : "?";
}

static int dec_refuse(struct mproc_decoder *d, unsigned op, size_t off)
{
	if (pickle_opnames[op])
		return dec_fail(d, MPROC_EPICKLE_OPCODE, off,
		                "opcode %s (0x%02x) refused at offset %zu",
		                pickle_opnames[op], op, off);
	return dec_fail(d, MPROC_EPICKLE_OPCODE, off,
	                "unknown opcode 0x%02x at offset %zu", op, off);
}

static int dec_trunc(struct mproc_decoder *d, unsigned op, size_t off,
                     uint64_t need, size_t left)
{
	return dec_fail(d, MPROC_EPICKLE_TRUNCATED, off,
	                "%s (0x%02x) at offset %zu needs %" PRIu64
	                " bytes, %zu left",
	                dec_opname(op), op, off, need, left);
}

static int dec_underflow(struct mproc_decoder *d, unsigned op, size_t off)
{
	return dec_fail(d, MPROC_EPICKLE_INVALID, off,
	                "%s (0x%02x) at offset %zu: stack underflow",
	                dec_opname(op), op, off);
}

static const char *dec_global_name(unsigned g)
{
	switch (g) {
	case PICKLE_G_ENCODE:
		return "_codecs.encode";
	case PICKLE_G_BYTES:
		return "builtins.bytes";
	case PICKLE_G_SET:
		return "builtins.set";
	default:
		return "builtins.frozenset";
	}
}

/* A GLOBAL marker where a value must be: it is a class or function. */
static int dec_not_value(struct mproc_decoder *d, const struct mproc_value *v,
                         size_t off)
{
	return dec_fail(d, MPROC_EPICKLE_OPCODE, v->u.offset,
	                "global %s (GLOBAL at offset %zu) used as a value at "
	                "offset %zu; only calls to it are accepted",
	                dec_global_name(v->aux), v->u.offset, off);
}

static int dec_grow_stack(struct mproc_decoder *d)
{
	size_t ncap = d->scap ? d->scap * 2 : 256;
	struct mproc_value **ns = reallocarray(d->stack, ncap, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	d->stack = ns;
	d->scap = ncap;
	return 0;
}

#define DEC_PUSH(v)                                                            \
	do {                                                                   \
		struct mproc_value *pv_ = (v);                                 \
		if (!pv_)                                                      \
			return dec_nomem(d, off);                              \
		if (__builtin_expect(d->sp == d->scap, 0) &&                   \
		    dec_grow_stack(d) < 0)                                     \
			return dec_nomem(d, off);                              \
		d->stack[d->sp++] = pv_;                                       \
	} while (0)

/* The lowest stack slot an opcode may pop: just above the top MARK. */
static inline size_t dec_fence(const struct mproc_decoder *d)
{
	return d->nmarks ? d->marks[d->nmarks - 1] : 0;
}

/* The header of a scalar node: hashable, no children. */
static inline void scalar_init(struct mproc_value *v, int type, unsigned aux)
{
	v->type = (uint8_t)type;
	v->flags = PICKLE_F_HASHABLE;
	v->capl2 = 0;
	v->aux = (uint8_t)aux;
	v->height = 0;
}

static inline struct mproc_value *dec_scalar(struct mproc_decoder *d,
                                             int type, size_t size,
                                             unsigned aux)
{
	struct mproc_value *v = arena_alloc(d, size);
	if (v)
		scalar_init(v, type, aux);
	return v;
}

static inline struct mproc_value *dec_int(struct mproc_decoder *d, int64_t i)
{
	if ((uint64_t)i < 256)
		return (struct mproc_value *)&pickle_small_ints[i];
	struct mproc_value *v = dec_scalar(d, MPROC_INT, PICKLE_NODE_8,
	                                   pickle_int_size(i));
	if (v)
		v->u.i = i;
	return v;
}

_Static_assert(sizeof(struct mproc__scalar) >= PICKLE_NODE_8 &&
               _Alignof(struct mproc__scalar) >= _Alignof(struct mproc_value),
               "a scalar node fits struct mproc__scalar");

const struct mproc_value *mproc__scalar_int(struct mproc__scalar *s, int64_t i)
{
	if ((uint64_t)i < 256)
		return &pickle_small_ints[i];
	struct mproc_value *v = (struct mproc_value *)(void *)s;
	scalar_init(v, MPROC_INT, pickle_int_size(i));
	v->u.i = i;
	return v;
}

const struct mproc_value *mproc__scalar_float(struct mproc__scalar *s, double f)
{
	struct mproc_value *v = (struct mproc_value *)(void *)s;
	scalar_init(v, MPROC_FLOAT, 9);
	v->u.f = f;
	return v;
}

static struct mproc_value *dec_container(struct mproc_decoder *d, int type)
{
	struct mproc_value *v = arena_alloc(d, PICKLE_NODE_C);
	if (v) {
		v->type = (uint8_t)type;
		v->flags = type == MPROC_TUPLE || type == MPROC_FROZENSET
		                   ? PICKLE_F_HASHABLE : 0;
		v->capl2 = 0;
		v->aux = 0;
		v->height = 1;
		v->u.c.items = NULL;
		v->u.c.n = 0;
		/* What the writer adds around the items: EMPTY_LIST MARK ...
		 * APPENDS, or MARK ... TUPLE. */
		v->u.c.weight = type == MPROC_TUPLE || type == MPROC_FROZENSET
		                        ? 2 : 3;
	}
	return v;
}

/*
 * Make room for `slots` item pointers in c. Mutable containers keep a
 * power-of-two capacity (capl2) so that appending in batches is amortised;
 * the old array stays in the arena, at most doubling the space used.
 */
static int dec_reserve(struct mproc_decoder *d, struct mproc_value *c,
                       size_t slots)
{
	size_t cap = c->capl2 ? (size_t)1 << c->capl2 : 0;
	if (slots <= cap)
		return 0;
	unsigned l2 = c->capl2 ? c->capl2 : 3;
	while (((size_t)1 << l2) < slots) {
		if (l2 >= 8 * sizeof(size_t) - 4)
			return -ENOMEM;
		l2++;
	}
	struct mproc_value **ni = arena_alloc(d, sizeof *ni << l2);
	if (!ni)
		return -ENOMEM;
	size_t used = c->type == MPROC_DICT ? 2 * c->u.c.n : c->u.c.n;
	if (used)
		memcpy(ni, c->u.c.items, used * sizeof *ni);
	c->u.c.items = ni;
	c->capl2 = (uint8_t)l2;
	return 0;
}

/*
 * Check that `item` may go into container c (of height/weight being
 * computed) and account for it: markers are not values, and `hash` items
 * (dict keys, set items) must be hashable. A mutable item is frozen here.
 */
static inline int dec_place(struct mproc_decoder *d, struct mproc_value *c,
                            struct mproc_value *item, bool hash, size_t off)
{
	if (__builtin_expect(item->type == PICKLE_T_GLOBAL, 0))
		return dec_not_value(d, item, off);
	if (item == c)
		return dec_fail(d, MPROC_EPICKLE_INVALID, off,
		                "recursive structure at offset %zu: a %s "
		                "inside itself",
		                off, mproc_type_name(c->type));
	if (hash && !(item->flags & PICKLE_F_HASHABLE))
		return dec_fail(d, MPROC_EPICKLE_INVALID, off,
		                "unhashable %s used as a %s at offset %zu",
		                mproc_type_name(item->type),
		                c->type == MPROC_DICT ? "dict key" : "set item",
		                off);
	if (pickle_is_container(item)) {
		if (pickle_is_mutable(item))
			item->flags |= PICKLE_F_FROZEN;
		if (item->height >= c->height) {
			if (item->height >= d->lim.max_depth)
				return dec_fail(d, MPROC_EPICKLE_DEPTH, off,
				                "nesting deeper than %u (the "
				                "limit max_depth) at offset %zu",
				                d->lim.max_depth, off);
			c->height = item->height + 1;
		}
	}
	if (!(item->flags & PICKLE_F_HASHABLE))
		c->flags &= (uint8_t)~PICKLE_F_HASHABLE;
	c->u.c.weight = pickle_sat_add(c->u.c.weight, pickle_weight(item));
	return 0;
}

/* Add items[0..k) to c (a dict takes them as key, value pairs). */
static int dec_add(struct mproc_decoder *d, struct mproc_value *c,
                   struct mproc_value **items, size_t k, unsigned op,
                   size_t off)
{
	if (c->flags & PICKLE_F_FROZEN)
		return dec_fail(d, MPROC_EPICKLE_INVALID, off,
		                "recursive structure: %s (0x%02x) at offset %zu "
		                "adds to a %s already inside another container",
		                dec_opname(op), op, off,
		                mproc_type_name(c->type));
	bool dict = c->type == MPROC_DICT;
	bool hash = c->type != MPROC_LIST;
	if (dict && (k & 1))
		return dec_fail(d, MPROC_EPICKLE_INVALID, off,
		                "%s (0x%02x) at offset %zu: odd number of items "
		                "for a dict", dec_opname(op), op, off);
	if (!k)
		return 0; /* and an empty container may have no array yet */
	size_t used = dict ? 2 * c->u.c.n : c->u.c.n;
	if (dec_reserve(d, c, used + k) < 0)
		return dec_nomem(d, off);
	struct mproc_value **dst = c->u.c.items + used;
	uint64_t weight = c->u.c.weight;
	for (size_t i = 0; i < k; i++) {
		struct mproc_value *it = items[i];
		/* Scalars (the common case) are hashable, have no height and
		 * cannot be frozen: only their weight counts. */
		if (__builtin_expect(it->type <= MPROC_BYTES, 1)) {
			weight = pickle_sat_add(weight, pickle_weight(it));
		} else {
			c->u.c.weight = weight;
			int rc = dec_place(d, c, it,
			                   hash && (!dict || !(i & 1)), off);
			if (rc)
				return rc;
			weight = c->u.c.weight;
		}
		dst[i] = it;
	}
	c->u.c.weight = weight;
	c->u.c.n += dict ? k / 2 : k;
	return 0;
}

/* A new container of `type` holding items[0..k) (exactly sized). */
static int dec_build(struct mproc_decoder *d, int type,
                     struct mproc_value **items, size_t k, unsigned op,
                     size_t off, struct mproc_value **out)
{
	if (!k || type == MPROC_LIST || type == MPROC_DICT ||
	    type == MPROC_SET) {
		struct mproc_value *c = dec_container(d, type);
		if (!c)
			return dec_nomem(d, off);
		/* Mutable ones may still grow: dec_add gives them a capl2
		 * capacity. */
		if (k) {
			int rc = dec_add(d, c, items, k, op, off);
			if (rc)
				return rc;
		}
		*out = c;
		return 0;
	}
	/* A tuple or frozenset never grows: its items follow the node in
	 * one allocation. */
	struct mproc_value *c = arena_alloc(d, PICKLE_NODE_C + k * sizeof *items);
	if (!c)
		return dec_nomem(d, off);
	c->type = (uint8_t)type;
	c->flags = PICKLE_F_HASHABLE;
	c->capl2 = 0;
	c->aux = 0;
	c->height = 1;
	c->u.c.items = (struct mproc_value **)(c + 1);
	c->u.c.n = k;
	uint64_t weight = 2;
	bool hash = type == MPROC_FROZENSET;
	for (size_t i = 0; i < k; i++) {
		struct mproc_value *it = items[i];
		if (__builtin_expect(it->type <= MPROC_BYTES, 1)) {
			weight = pickle_sat_add(weight, pickle_weight(it));
		} else {
			c->u.c.weight = weight;
			int rc = dec_place(d, c, it, hash, off);
			if (rc)
				return rc;
			weight = c->u.c.weight;
		}
		c->u.c.items[i] = it;
	}
	c->u.c.weight = weight;
	*out = c;
	return 0;
}

/* Read a little-endian unsigned integer of n bytes (one load for the
 * fixed sizes opcodes use). */
static inline uint64_t dec_le(const unsigned char *p, int n)
{
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	switch (n) {
	case 1:
		return p[0];
	case 2:
		memcpy(&u16, p, 2);
		return le16toh(u16);
	case 4:
		memcpy(&u32, p, 4);
		return le32toh(u32);
	case 8:
		memcpy(&u64, p, 8);
		return le64toh(u64);
	default: {
		uint64_t v = 0;
		for (int i = n - 1; i >= 0; i--)
			v = (v << 8) | p[i];
		return v;
	}
	}
}

/* LONG1/LONG4 payload: little-endian two's complement, any length. */
static int dec_long(struct mproc_decoder *d, const unsigned char *p,
                    size_t n, size_t off, int64_t *out)
{
	if (!n) {
		*out = 0;
		return 0;
	}
	bool neg = p[n - 1] & 0x80;
	unsigned char ext = neg ? 0xff : 0x00;
	/* Bytes past the eighth must only repeat the sign. */
	for (size_t i = 8; i < n; i++)
		if (p[i] != ext)
			goto range;
	if (n > 8 && ((p[7] & 0x80) != 0) != neg)
		goto range;
	int m = n < 8 ? (int)n : 8;
	uint64_t u = dec_le(p, m);
	if (neg && m < 8)
		u |= ~UINT64_C(0) << (8 * m);
	*out = (int64_t)u;
	return 0;
range:
	return dec_fail(d, MPROC_EPICKLE_INTRANGE, off,
	                "integer at offset %zu does not fit in 64 bits", off);
}

#define PICKLE_IS(s, l, lit) ((l) == sizeof(lit) - 1 && !memcmp(s, lit, l))

/*
 * Match a GLOBAL's module and name against the few accepted callables, as
 * CPython's Unpickler.find_class resolves them. `proto` is that of the
 * last PROTO opcode read (0 before any, as in CPython). Below protocol 3,
 * fix_imports (pickle.loads's default) reads the Python 2 module
 * __builtin__ as builtins; from protocol 3 on nothing is mapped, Python 3
 * has no module __builtin__, and pickle.loads raises ModuleNotFoundError.
 * _codecs and builtins are Python 3 names, read at every protocol.
 */
static int dec_global_kind(const char *mod, size_t ml, const char *name,
                           size_t nl, unsigned proto)
{
	if (PICKLE_IS(mod, ml, "_codecs"))
		return PICKLE_IS(name, nl, "encode") ? PICKLE_G_ENCODE : 0;
	if (!(proto < 3 && PICKLE_IS(mod, ml, "__builtin__")) &&
	    !PICKLE_IS(mod, ml, "builtins"))
		return 0;
	if (PICKLE_IS(name, nl, "bytes"))
		return PICKLE_G_BYTES;
	if (PICKLE_IS(name, nl, "set"))
		return PICKLE_G_SET;
	if (PICKLE_IS(name, nl, "frozenset"))
		return PICKLE_G_FROZENSET;
	return 0;
}

/* A copy of s with '?' for bytes outside printable ASCII (error texts). */
static void dec_printable(char *out, size_t outsz, const char *s, size_t n)
{
	size_t i = 0;
	for (; i < n && i + 1 < outsz; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
}

/* The one REDUCE accepted: a marker called with the arguments Python
 * writes for bytes, set and frozenset at protocols 2 and 3. */
static int dec_reduce(struct mproc_decoder *d, struct mproc_value *fn,
                      struct mproc_value *args, size_t off,
                      struct mproc_value **out)
{
	if (fn->type != PICKLE_T_GLOBAL || args->type != MPROC_TUPLE)
		return dec_refuse(d, OP_REDUCE, off);
	size_t n = args->u.c.n;
	struct mproc_value **a = args->u.c.items;
	switch (fn->aux) {
	case PICKLE_G_ENCODE: {
		if (n != 2 || a[0]->type != MPROC_STR ||
		    a[1]->type != MPROC_STR || a[1]->u.s.len != 6 ||
		    memcmp(a[1]->u.s.p, "latin1", 6))
			break;
		/* The str holds the bytes as code points below 256. */
		const unsigned char *s = (const unsigned char *)a[0]->u.s.p;
		size_t len = a[0]->u.s.len;
		unsigned char *dst = len ? arena_alloc(d, len) : NULL;
		if (len && !dst)
			return dec_nomem(d, off);
		size_t j = 0;
		for (size_t i = 0; i < len; i++) {
			if (s[i] < 0x80) {
				dst[j++] = s[i];
			} else if (s[i] == 0xc2 || s[i] == 0xc3) {
				/* Valid UTF-8 was checked: s[i+1] exists. */
				dst[j++] = (unsigned char)(((s[i] & 0x03) << 6) |
				                           (s[i + 1] & 0x3f));
				i++;
			} else {
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "REDUCE (0x52) at offset %zu: "
				                "_codecs.encode of a code point "
				                "past U+00FF as latin1", off);
			}
		}
		struct mproc_value *v = dec_scalar(d, MPROC_BYTES,
		                                   PICKLE_NODE_16, 0);
		if (!v)
			return dec_nomem(d, off);
		v->u.s.p = len ? (const char *)dst : "";
		v->u.s.len = j;
		*out = v;
		return 0;
	}
	case PICKLE_G_BYTES:
		if (n != 0)
			break;
		struct mproc_value *v = dec_scalar(d, MPROC_BYTES,
		                                   PICKLE_NODE_16, 0);
		if (!v)
			return dec_nomem(d, off);
		v->u.s.p = "";
		v->u.s.len = 0;
		*out = v;
		return 0;
	case PICKLE_G_SET:
	case PICKLE_G_FROZENSET: {
		int type = fn->aux == PICKLE_G_SET ? MPROC_SET
		                                      : MPROC_FROZENSET;
		if (n == 0)
			return dec_build(d, type, NULL, 0, OP_REDUCE, off, out);
		if (n != 1 || a[0]->type != MPROC_LIST)
			break;
		return dec_build(d, type, a[0]->u.c.items, a[0]->u.c.n,
		                 OP_REDUCE, off, out);
	}
	default:
		break;
	}
	return dec_fail(d, MPROC_EPICKLE_OPCODE, off,
	                "opcode REDUCE (0x52) refused at offset %zu: %s called "
	                "with other arguments than pickle writes",
	                off, dec_global_name(fn->aux));
}

static int dec_memo_put(struct mproc_decoder *d, uint64_t idx,
                        struct mproc_value *v, unsigned op, size_t off)
{
	/* Every memo entry costs at least one byte of message, so an index
	 * past the length is crafted: refuse it before allocating. */
	if (idx > d->msg_len)
		return dec_fail(d, MPROC_EPICKLE_INVALID, off,
		                "%s (0x%02x) at offset %zu: memo index %" PRIu64
		                " past the message length",
		                dec_opname(op), op, off, idx);
	if (idx >= d->memo_cap) {
		size_t ncap = d->memo_cap ? d->memo_cap * 2 : 64;
		if (ncap <= idx)
			ncap = (size_t)idx + 1;
		struct mproc_value **nm = reallocarray(d->memo, ncap,
		                                       sizeof *nm);
		if (!nm)
			return dec_nomem(d, off);
		memset(nm + d->memo_cap, 0,
		       (ncap - d->memo_cap) * sizeof *nm);
		d->memo = nm;
		d->memo_cap = ncap;
	}
	if (!d->memo[idx])
		d->memo_len++;
	d->memo[idx] = v;
	if (idx >= d->memo_hi)
		d->memo_hi = (size_t)idx + 1;
	return 0;
}

static int dec_memo_get(struct mproc_decoder *d, uint64_t idx, unsigned op,
                        size_t off, struct mproc_value **out)
{
	if (idx >= d->memo_hi || !d->memo[idx])
		return dec_fail(d, MPROC_EPICKLE_INVALID, off,
		                "%s (0x%02x) at offset %zu: memo key %" PRIu64
		                " not found",
		                dec_opname(op), op, off, idx);
	*out = d->memo[idx];
	return 0;
}

static int dec_run(struct mproc_decoder *d, const unsigned char *buf,
                   size_t len, const struct mproc_value **out)
{
	const unsigned char *p = buf;
	const unsigned char *end = buf + len;
	/* The last PROTO's version, 0 before any: it decides how GLOBAL
	 * names resolve (dec_global_kind). */
	unsigned proto = 0;
	int rc;

#define NEED(n)                                                                \
	do {                                                                   \
		if (__builtin_expect((uint64_t)(end - p) < (uint64_t)(n), 0)) \
			return dec_trunc(d, op, off, (uint64_t)(n),            \
			                 (size_t)(end - p));                   \
	} while (0)
#define POPN(n)                                                                \
	do {                                                                   \
		if (__builtin_expect(d->sp - dec_fence(d) < (size_t)(n), 0))  \
			return dec_underflow(d, op, off);                      \
	} while (0)

	for (;;) {
		size_t off = (size_t)(p - buf);
		if (__builtin_expect(p == end, 0))
			return dec_fail(d, MPROC_EPICKLE_TRUNCATED, off,
			                "no STOP opcode before the end of the "
			                "data at offset %zu", off);
		unsigned op = *p++;
		switch (op) {
		case OP_BININT1:
			NEED(1);
			DEC_PUSH((struct mproc_value *)&pickle_small_ints[*p]);
			p += 1;
			break;
		case OP_BININT2:
			NEED(2);
			DEC_PUSH(dec_int(d, (int64_t)dec_le(p, 2)));
			p += 2;
			break;
		case OP_BININT:
			NEED(4);
			DEC_PUSH(dec_int(d, (int32_t)(uint32_t)dec_le(p, 4)));
			p += 4;
			break;
		case OP_LONG1:
		case OP_LONG4: {
			int hl = op == OP_LONG1 ? 1 : 4;
			NEED(hl);
			uint64_t n = dec_le(p, hl);
			if (op == OP_LONG4 && (n & 0x80000000u))
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "LONG4 (0x8b) at offset %zu: "
				                "negative length", off);
			p += hl;
			NEED(n);
			int64_t i = 0;
			rc = dec_long(d, p, (size_t)n, off, &i);
			if (rc)
				return rc;
			DEC_PUSH(dec_int(d, i));
			p += n;
			break;
		}
		case OP_BINFLOAT: {
			NEED(8);
			uint64_t u;
			memcpy(&u, p, 8);
			u = be64toh(u);
			struct mproc_value *v = dec_scalar(d, MPROC_FLOAT,
			                                   PICKLE_NODE_8, 9);
			if (v)
				memcpy(&v->u.f, &u, 8);
			DEC_PUSH(v);
			p += 8;
			break;
		}
		case OP_NONE:
			DEC_PUSH((struct mproc_value *)&pickle_none);
			break;
		case OP_NEWTRUE:
			DEC_PUSH((struct mproc_value *)&pickle_true);
			break;
		case OP_NEWFALSE:
			DEC_PUSH((struct mproc_value *)&pickle_false);
			break;
		case OP_SHORT_BINUNICODE:
		case OP_BINUNICODE:
		case OP_BINUNICODE8:
		case OP_SHORT_BINBYTES:
		case OP_BINBYTES:
		case OP_BINBYTES8:
		/* A bytearray (PickleBuffer(bytearray) in band at protocol
		 * 5) is read as bytes: the tree is read-only anyway. */
		case OP_BYTEARRAY8: {
			int hl = op == OP_SHORT_BINUNICODE ||
			                 op == OP_SHORT_BINBYTES ? 1
			         : op == OP_BINUNICODE || op == OP_BINBYTES ? 4
			                                                    : 8;
			NEED(hl);
			uint64_t n = dec_le(p, hl);
			p += hl;
			NEED(n);
			bool str = op == OP_SHORT_BINUNICODE ||
			           op == OP_BINUNICODE || op == OP_BINUNICODE8;
			if (str && !pickle_utf8_valid((const char *)p, (size_t)n))
				return dec_fail(d, MPROC_EPICKLE_UTF8, off,
				                "%s (0x%02x) at offset %zu: "
				                "invalid UTF-8",
				                dec_opname(op), op, off);
			struct mproc_value *v = dec_scalar(
				d, str ? MPROC_STR : MPROC_BYTES, PICKLE_NODE_16, 0);
			if (v) {
				v->u.s.p = (const char *)p;
				v->u.s.len = (size_t)n;
			}
			DEC_PUSH(v);
			p += n;
			break;
		}
		case OP_NEXT_BUFFER: {
			/* pickle.loads: "pickle stream refers to out-of-band
			 * data but no *buffers* argument was given", then "not
			 * enough out-of-band buffers". */
			if (!d->have_bufs)
				return dec_fail(d, MPROC_EPICKLE_BUFFERS, off,
				                "NEXT_BUFFER (0x97) at offset %zu: "
				                "the pickle refers to out-of-band "
				                "buffers but none were given", off);
			if (d->next_buf >= d->nbufs)
				return dec_fail(d, MPROC_EPICKLE_BUFFERS, off,
				                "NEXT_BUFFER (0x97) at offset %zu "
				                "asks for buffer %zu; %zu given",
				                off, d->next_buf, d->nbufs);
			const struct mproc_buffer *gb = &d->bufs[d->next_buf];
			if (!gb->data && gb->len)
				return dec_fail(d, -EINVAL, off,
				                "NEXT_BUFFER (0x97) at offset %zu: "
				                "buffer %zu has no data and a "
				                "length of %zu", off, d->next_buf,
				                gb->len);
			struct mproc_value *v = dec_scalar(d, MPROC_BYTES,
			                                   PICKLE_NODE_C, 0);
			if (v) {
				v->flags |= PICKLE_F_OOB;
				if (gb->readonly)
					v->flags |= PICKLE_F_READONLY;
				v->u.ob.p = gb->data ? gb->data : "";
				v->u.ob.len = gb->len;
				v->u.ob.index = d->next_buf;
			}
			DEC_PUSH(v);
			d->next_buf++;
			break;
		}
		case OP_READONLY_BUFFER: {
			POPN(1);
			struct mproc_value *v = d->stack[d->sp - 1];
			/* CPython takes memoryview(top) and makes it read-only:
			 * a no-op on bytes, which are read-only already; an
			 * error on what is no buffer. */
			if (v->type != MPROC_BYTES)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "READONLY_BUFFER (0x98) at offset "
				                "%zu on a %s, not a buffer", off,
				                v->type == PICKLE_T_GLOBAL
				                        ? "global"
				                        : mproc_type_name(v->type));
			if ((v->flags & (PICKLE_F_OOB | PICKLE_F_READONLY)) ==
			    PICKLE_F_OOB) {
				/* A new node: the one the memo or a container
				 * may hold stays writable, as in CPython, where
				 * the stack gets a read-only view of it. */
				struct mproc_value *r = arena_alloc(d,
				                                    PICKLE_NODE_C);
				if (!r)
					return dec_nomem(d, off);
				memcpy(r, v, PICKLE_NODE_C);
				r->flags |= PICKLE_F_READONLY;
				d->stack[d->sp - 1] = r;
			}
			break;
		}
		case OP_EMPTY_TUPLE:
			DEC_PUSH(dec_container(d, MPROC_TUPLE));
			break;
		case OP_EMPTY_LIST:
			DEC_PUSH(dec_container(d, MPROC_LIST));
			break;
		case OP_EMPTY_DICT:
			DEC_PUSH(dec_container(d, MPROC_DICT));
			break;
		case OP_EMPTY_SET:
			DEC_PUSH(dec_container(d, MPROC_SET));
			break;
		case OP_TUPLE1:
		case OP_TUPLE2:
		case OP_TUPLE3: {
			size_t k = op - OP_TUPLE1 + 1;
			POPN(k);
			struct mproc_value *t;
			rc = dec_build(d, MPROC_TUPLE, d->stack + d->sp - k, k,
			               op, off, &t);
			if (rc)
				return rc;
			d->sp -= k;
			d->stack[d->sp++] = t;
			break;
		}
		case OP_MARK:
			if (d->nmarks >= d->lim.max_depth)
				return dec_fail(d, MPROC_EPICKLE_DEPTH, off,
				                "more than %u open MARKs (the "
				                "limit max_depth) at offset %zu",
				                d->lim.max_depth, off);
			if (d->nmarks == d->mcap) {
				size_t ncap = d->mcap ? d->mcap * 2 : 64;
				size_t *nm = reallocarray(d->marks, ncap,
				                          sizeof *nm);
				if (!nm)
					return dec_nomem(d, off);
				d->marks = nm;
				d->mcap = ncap;
			}
			d->marks[d->nmarks++] = d->sp;
			break;
		case OP_TUPLE:
		case OP_LIST:
		case OP_DICT:
		case OP_FROZENSET: {
			if (!d->nmarks)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "%s (0x%02x) at offset %zu: no "
				                "MARK", dec_opname(op), op, off);
			size_t m = d->marks[d->nmarks - 1];
			int type = op == OP_TUPLE ? MPROC_TUPLE
			           : op == OP_LIST ? MPROC_LIST
			           : op == OP_DICT ? MPROC_DICT
			                           : MPROC_FROZENSET;
			struct mproc_value *c;
			rc = dec_build(d, type, d->stack + m, d->sp - m, op,
			               off, &c);
			if (rc)
				return rc;
			d->nmarks--;
			d->sp = m;
			/* m may equal the capacity (a MARK on a full stack and
			 * no items): push with the growth check. */
			DEC_PUSH(c);
			break;
		}
		case OP_APPENDS:
		case OP_SETITEMS:
		case OP_ADDITEMS: {
			if (!d->nmarks)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "%s (0x%02x) at offset %zu: no "
				                "MARK", dec_opname(op), op, off);
			size_t m = d->marks[d->nmarks - 1];
			size_t below = d->nmarks > 1 ? d->marks[d->nmarks - 2]
			                             : 0;
			if (m <= below)
				return dec_underflow(d, op, off);
			struct mproc_value *c = d->stack[m - 1];
			int want = op == OP_APPENDS ? MPROC_LIST
			           : op == OP_SETITEMS ? MPROC_DICT
			                               : MPROC_SET;
			if (c->type != want)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "%s (0x%02x) at offset %zu on a "
				                "%s", dec_opname(op), op, off,
				                c->type == PICKLE_T_GLOBAL
				                        ? "global"
				                        : mproc_type_name(c->type));
			rc = dec_add(d, c, d->stack + m, d->sp - m, op, off);
			if (rc)
				return rc;
			d->sp = m;
			d->nmarks--;
			break;
		}
		case OP_APPEND:
		case OP_SETITEM: {
			size_t k = op == OP_APPEND ? 1 : 2;
			POPN(k + 1);
			struct mproc_value *c = d->stack[d->sp - k - 1];
			int want = op == OP_APPEND ? MPROC_LIST : MPROC_DICT;
			if (c->type != want)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "%s (0x%02x) at offset %zu on a "
				                "%s", dec_opname(op), op, off,
				                c->type == PICKLE_T_GLOBAL
				                        ? "global"
				                        : mproc_type_name(c->type));
			rc = dec_add(d, c, d->stack + d->sp - k, k, op, off);
			if (rc)
				return rc;
			d->sp -= k;
			break;
		}
		case OP_POP:
			/* Like CPython: POP right after a MARK drops the MARK. */
			if (d->nmarks && d->marks[d->nmarks - 1] == d->sp) {
				d->nmarks--;
				break;
			}
			POPN(1);
			d->sp--;
			break;
		case OP_POP_MARK:
			if (!d->nmarks)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "POP_MARK (0x31) at offset %zu: "
				                "no MARK", off);
			d->sp = d->marks[--d->nmarks];
			break;
		case OP_DUP:
			POPN(1);
			DEC_PUSH(d->stack[d->sp - 1]);
			break;
		case OP_MEMOIZE: {
			POPN(1);
			/* memo_len counts earlier memo opcodes, so it is below
			 * the message length; only growth needs the slow path. */
			size_t idx = d->memo_len;
			if (__builtin_expect(idx < d->memo_cap && !d->memo[idx],
			                     1)) {
				d->memo[idx] = d->stack[d->sp - 1];
				d->memo_len++;
				if (idx >= d->memo_hi)
					d->memo_hi = idx + 1;
				break;
			}
			rc = dec_memo_put(d, idx, d->stack[d->sp - 1], op, off);
			if (rc)
				return rc;
			break;
		}
		case OP_BINPUT:
		case OP_LONG_BINPUT: {
			int hl = op == OP_BINPUT ? 1 : 4;
			NEED(hl);
			POPN(1);
			rc = dec_memo_put(d, dec_le(p, hl), d->stack[d->sp - 1],
			                  op, off);
			if (rc)
				return rc;
			p += hl;
			break;
		}
		case OP_BINGET:
		case OP_LONG_BINGET: {
			int hl = op == OP_BINGET ? 1 : 4;
			NEED(hl);
			struct mproc_value *v = NULL;
			rc = dec_memo_get(d, dec_le(p, hl), op, off, &v);
			if (rc)
				return rc;
			DEC_PUSH(v);
			p += hl;
			break;
		}
		case OP_PROTO:
			NEED(1);
			if (*p > 5)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "unsupported pickle protocol %u at "
				                "offset %zu", *p, off);
			proto = *p;
			p += 1;
			break;
		case OP_FRAME: {
			NEED(8);
			uint64_t n = dec_le(p, 8);
			p += 8;
			/* Frames only help readers that stream; check and
			 * skip the length. */
			if (n > (uint64_t)(end - p))
				return dec_fail(d, MPROC_EPICKLE_TRUNCATED, off,
				                "FRAME (0x95) at offset %zu of "
				                "%" PRIu64 " bytes, %zu left",
				                off, n, (size_t)(end - p));
			break;
		}
		case OP_GLOBAL: {
			const unsigned char *nl1 = memchr(p, '\n',
			                                  (size_t)(end - p));
			const unsigned char *nl2 =
				nl1 ? memchr(nl1 + 1, '\n',
				             (size_t)(end - nl1 - 1))
				    : NULL;
			if (!nl2)
				return dec_fail(d, MPROC_EPICKLE_TRUNCATED, off,
				                "GLOBAL (0x63) at offset %zu: "
				                "name not terminated", off);
			const char *mod = (const char *)p;
			size_t ml = (size_t)(nl1 - p);
			const char *name = (const char *)nl1 + 1;
			size_t nl = (size_t)(nl2 - nl1 - 1);
			int kind = dec_global_kind(mod, ml, name, nl, proto);
			if (!kind) {
				char pm[64], pn[64];
				dec_printable(pm, sizeof pm, mod, ml);
				dec_printable(pn, sizeof pn, name, nl);
				/* Say why when only the protocol refuses it. */
				bool py2 = proto >= 3 &&
				           PICKLE_IS(mod, ml, "__builtin__") &&
				           dec_global_kind("builtins", 8, name,
				                           nl, proto);
				return dec_fail(d, MPROC_EPICKLE_OPCODE, off,
				                "opcode GLOBAL (0x63) refused at "
				                "offset %zu: %s.%s%s", off, pm, pn,
				                py2 ? " (a Python 2 name, read as "
				                      "builtins only below "
				                      "protocol 3)"
				                    : "");
			}
			struct mproc_value *v = arena_alloc(d, PICKLE_NODE_8);
			if (v) {
				v->type = PICKLE_T_GLOBAL;
				v->flags = 0;
				v->capl2 = 0;
				v->aux = (uint8_t)kind;
				v->height = 0;
				v->u.offset = off;
			}
			DEC_PUSH(v);
			p = nl2 + 1;
			break;
		}
		case OP_REDUCE: {
			POPN(2);
			struct mproc_value *v;
			rc = dec_reduce(d, d->stack[d->sp - 2],
			                d->stack[d->sp - 1], off, &v);
			if (rc)
				return rc;
			d->sp -= 2;
			d->stack[d->sp++] = v;
			break;
		}
		case OP_STOP: {
			if (d->nmarks || d->sp != 1)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "STOP (0x2e) at offset %zu with %zu "
				                "values and %zu MARKs on the stack",
				                off, d->sp, d->nmarks);
			struct mproc_value *root = d->stack[0];
			if (root->type == PICKLE_T_GLOBAL)
				return dec_not_value(d, root, off);
			if (p != end)
				return dec_fail(d, MPROC_EPICKLE_INVALID, off,
				                "%zu bytes after STOP at offset "
				                "%zu", (size_t)(end - p), off);
			/* PROTO and STOP around the value. */
			uint64_t wgt = pickle_sat_add(pickle_weight(root), 3);
			if (wgt > d->lim.max_size)
				return dec_fail(d, MPROC_EPICKLE_TOOBIG, off,
				                "value expands to %" PRIu64
				                " bytes without memo sharing, past "
				                "the limit of %zu",
				                wgt, d->lim.max_size);
			/* Freeze the root too: it is read-only from here. */
			if (pickle_is_mutable(root))
				root->flags |= PICKLE_F_FROZEN;
			*out = root;
			return 0;
		}
		default:
			return dec_refuse(d, op, off);
		}
	}
#undef NEED
#undef POPN
#undef PICKLE_IS
}

/* A scalar node from the arena's current chunk, or NULL when it has no
 * room (no allocation here: the unpickler then takes the message). */
static inline struct mproc_value *dec_scalar_quick(struct mproc_decoder *d,
                                                   int type, unsigned aux)
{
	if ((size_t)(d->bump_end - d->bump) < PICKLE_NODE_8)
		return NULL;
	struct mproc_value *v = (struct mproc_value *)(void *)d->bump;
	d->bump += PICKLE_NODE_8;
	scalar_init(v, type, aux);
	return v;
}

/*
 * A message that is one scalar alone (PROTO, None, a bool, BININT1/2/4 or
 * BINFLOAT, STOP): its node without the unpickler loop, or NULL for
 * anything else (and when the arena's chunk is full). The commonest task
 * arguments and results; the same node dec_run would make. No call in
 * here, so that this path costs no stack frame.
 */
static inline const struct mproc_value *dec_scalar_msg(struct mproc_decoder *d,
                                                       const unsigned char *p,
                                                       size_t len)
{
	/* 4 <= len <= 12 is the caller's check. */
	if (p[0] != OP_PROTO || p[1] > 5 || p[len - 1] != OP_STOP)
		return NULL;
	int64_t i;
	switch (p[2]) {
	case OP_NONE:
		return len == 4 ? &pickle_none : NULL;
	case OP_NEWTRUE:
		return len == 4 ? &pickle_true : NULL;
	case OP_NEWFALSE:
		return len == 4 ? &pickle_false : NULL;
	case OP_BININT1:
		return len == 5 ? &pickle_small_ints[p[3]] : NULL;
	case OP_BININT2:
		if (len != 6)
			return NULL;
		i = (int64_t)dec_le(p + 3, 2);
		break;
	case OP_BININT:
		if (len != 8)
			return NULL;
		i = (int32_t)(uint32_t)dec_le(p + 3, 4);
		break;
	case OP_BINFLOAT: {
		if (len != 12)
			return NULL;
		uint64_t u;
		memcpy(&u, p + 3, 8);
		u = be64toh(u);
		struct mproc_value *v = dec_scalar_quick(d, MPROC_FLOAT, 9);
		if (v)
			memcpy(&v->u.f, &u, 8);
		return v;
	}
	default:
		return NULL;
	}
	if ((uint64_t)i < 256)
		return &pickle_small_ints[i];
	struct mproc_value *v = dec_scalar_quick(d, MPROC_INT, pickle_int_size(i));
	if (v)
		v->u.i = i;
	return v;
}

/* The unpickler over a whole message; kept out of line so that the scalar
 * path below does not pay for its stack frame. */
static __attribute__((noinline)) int
dec_message(struct mproc_decoder *d, const void *buf, size_t len,
            bool have_bufs, const struct mproc_buffer *bufs, size_t nbufs,
            const struct mproc_value **out)
{
	*out = NULL;
	d->err[0] = '\0';
	d->err_off = 0;
	d->msg_len = len;
	if (len > d->lim.max_size)
		return dec_fail(d, MPROC_EPICKLE_TOOBIG, 0,
		                "message of %zu bytes past the limit of %zu",
		                len, d->lim.max_size);
	if (!buf && len)
		return dec_fail(d, -EINVAL, 0, "no message");
	if (!bufs && nbufs)
		return dec_fail(d, -EINVAL, 0, "no buffers, %zu announced",
		                nbufs);
	d->sp = 0;
	d->nmarks = 0;
	d->have_bufs = have_bufs;
	d->bufs = bufs;
	d->nbufs = nbufs;
	d->next_buf = 0;
	const struct mproc_value *root = NULL;
	int rc = dec_run(d, buf ? buf : "", len, &root);
	/* The caller's array need not outlive the call. */
	d->have_bufs = false;
	d->bufs = NULL;
	d->nbufs = 0;
	/* Forget the memo now, so that its slots never outlive the trees. */
	if (d->memo_hi)
		memset(d->memo, 0, d->memo_hi * sizeof *d->memo);
	d->memo_hi = 0;
	d->memo_len = 0;
	d->sp = 0;
	d->nmarks = 0;
	if (rc == 0)
		*out = root;
	return rc;
}

int mproc__decode_keep(struct mproc_decoder *d, const void *buf, size_t len,
                       const struct mproc_value **out)
{
	if (buf && len - 4 <= 8 && len <= d->lim.max_size) {
		const struct mproc_value *v = dec_scalar_msg(d, buf, len);
		if (v) {
			d->err[0] = '\0';
			d->err_off = 0;
			d->msg_len = len;
			*out = v;
			return 0;
		}
	}
	return dec_message(d, buf, len, false, NULL, 0, out);
}

int mproc_decode(struct mproc_decoder *d, const void *buf, size_t len,
                 const struct mproc_value **out)
{
	arena_reset(d);
	return mproc__decode_keep(d, buf, len, out);
}

int mproc__decode_keep_buffers(struct mproc_decoder *d, const void *buf,
                               size_t len, const struct mproc_buffer *bufs,
                               size_t nbufs, const struct mproc_value **out)
{
	/* No scalar shortcut: a message with buffers is seldom a scalar. */
	return dec_message(d, buf, len, true, bufs, nbufs, out);
}

int mproc_decode_buffers(struct mproc_decoder *d, const void *buf,
                         size_t len, const struct mproc_buffer *bufs,
                         size_t nbufs, const struct mproc_value **out)
{
	arena_reset(d);
	return mproc__decode_keep_buffers(d, buf, len, bufs, nbufs, out);
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */
/* ------------------------------------------------------------------------ */

const char *mproc_type_name(enum mproc_type type)
{
	static const char *const names[] = {
		[MPROC_NONE] = "NoneType", [MPROC_BOOL] = "bool",
		[MPROC_INT] = "int", [MPROC_FLOAT] = "float",
		[MPROC_STR] = "str", [MPROC_BYTES] = "bytes",
		[MPROC_TUPLE] = "tuple", [MPROC_LIST] = "list",
		[MPROC_DICT] = "dict", [MPROC_SET] = "set",
		[MPROC_FROZENSET] = "frozenset",
	};
	if ((unsigned)type < sizeof names / sizeof names[0])
		return names[type];
	return "unknown";
}

enum mproc_type mproc_value_type(const struct mproc_value *v)
{
	/* NULL reads as None: a missing value is Python's None. */
	return v ? (enum mproc_type)v->type : MPROC_NONE;
}

bool mproc_value_is_none(const struct mproc_value *v)
{
	return v && v->type == MPROC_NONE;
}

int mproc_value_bool(const struct mproc_value *v, bool *out)
{
	if (!v || v->type != MPROC_BOOL)
		return mproc__detail_type("bool", v);
	*out = v->u.b;
	return 0;
}

int mproc_value_int(const struct mproc_value *v, int64_t *out)
{
	if (!v || v->type != MPROC_INT)
		return mproc__detail_type("int", v);
	*out = v->u.i;
	return 0;
}

int mproc_value_float(const struct mproc_value *v, double *out)
{
	if (!v)
		return mproc__detail_type("float", v);
	if (v->type == MPROC_FLOAT)
		*out = v->u.f;
	else if (v->type == MPROC_INT)
		*out = (double)v->u.i;
	else
		return mproc__detail_type("float", v);
	return 0;
}

int mproc_value_str(const struct mproc_value *v, const char **s, size_t *len)
{
	if (!v || v->type != MPROC_STR)
		return mproc__detail_type("str", v);
	*s = v->u.s.p;
	*len = v->u.s.len;
	return 0;
}

int mproc_value_bytes(const struct mproc_value *v, const void **p,
                      size_t *len)
{
	if (!v || v->type != MPROC_BYTES)
		return mproc__detail_type("bytes", v);
	*p = v->u.s.p;
	*len = v->u.s.len;
	return 0;
}

int mproc_value_buffer(const struct mproc_value *v, size_t *index,
                       bool *readonly)
{
	if (!v || v->type != MPROC_BYTES || !(v->flags & PICKLE_F_OOB))
		return mproc__detail_type_name(
		        "bytes from an out-of-band buffer",
		        !v ? "no value"
		        : v->type == MPROC_BYTES ? "bytes in band"
		                                 : mproc_type_name(v->type));
	if (index)
		*index = v->u.ob.index;
	if (readonly)
		*readonly = (v->flags & PICKLE_F_READONLY) != 0;
	return 0;
}

int mproc_value_len(const struct mproc_value *v, size_t *out)
{
	if (!v || !pickle_is_container(v))
		return mproc__detail_type("tuple, list, dict, set or frozenset",
		                          v);
	*out = v->u.c.n;
	return 0;
}

int mproc_value_item(const struct mproc_value *v, size_t i,
                     const struct mproc_value **out)
{
	if (!v || !pickle_is_container(v) || v->type == MPROC_DICT)
		return mproc__detail_type("tuple, list, set or frozenset", v);
	if (i >= v->u.c.n)
		return mproc__detail_index(i, v->u.c.n);
	*out = v->u.c.items[i];
	return 0;
}

int mproc_value_dict_entry(const struct mproc_value *v, size_t i,
                           const struct mproc_value **key,
                           const struct mproc_value **val)
{
	if (!v || v->type != MPROC_DICT)
		return mproc__detail_type("dict", v);
	if (i >= v->u.c.n)
		return mproc__detail_index(i, v->u.c.n);
	if (key)
		*key = v->u.c.items[2 * i];
	if (val)
		*val = v->u.c.items[2 * i + 1];
	return 0;
}

int mproc_value_dict_get(const struct mproc_value *v, const char *key,
                         const struct mproc_value **out)
{
	if (!v || v->type != MPROC_DICT)
		return mproc__detail_type("dict", v);
	if (!key)
		return -EINVAL;
	size_t kl = strlen(key);
	/* From the end: with duplicate keys the last one wins. */
	for (size_t i = v->u.c.n; i-- > 0;) {
		const struct mproc_value *k = v->u.c.items[2 * i];
		if (k->type == MPROC_STR && k->u.s.len == kl &&
		    !memcmp(k->u.s.p, key, kl)) {
			*out = v->u.c.items[2 * i + 1];
			return 0;
		}
	}
	return -ENOENT;
}
