/*
 * mproc.h - Python's multiprocessing.Pool for C programs.
 *
 * mproc runs C tasks in a pool of forked worker processes. Tasks and their
 * results travel over pipes as values in a safe subset of Python's pickle
 * format, so data written by Python's pickle can be read here and the other
 * way round.
 *
 * This header is the whole public API and its manual. Every call that can
 * fail returns 0 (or, for iterators, 1 for "an item" and 0 for "done") or a
 * negative code: a negated errno value (-EINVAL, -ENOMEM, -ETIMEDOUT, ...) or
 * one of the MPROC_E* codes below. mproc_strerror() names every code. The
 * library never prints, never calls exit() and installs no signal handler
 * in the program (workers install their own crash handlers).
 *
 * Lifecycle of a program that uses the process pool:
 *
 *  1. Optionally call mproc_init(argc, argv, envp) first thing in main(), so
 *     that workers can name themselves in ps(1) ("prog: mproc worker 3").
 *  2. Fill a struct mproc_pool_opts (all zero means Python's defaults) and
 *     call mproc_pool_open().
 *  3. Submit work: mproc_apply(), mproc_map(), mproc_imap() and friends.
 *     A task is a C function of type mproc_task_fn: it reads its argument as
 *     a decoded value and writes its return value with a writer.
 *  4. mproc_pool_close() then mproc_pool_join() to finish the work, or
 *     mproc_pool_terminate() to stop at once; mproc_pool_free() releases the
 *     pool (and terminates it first if it was not joined, like leaving a
 *     `with Pool() as p:` block).
 *
 * Only <stddef.h>, <stdint.h>, <stdbool.h> and <sys/types.h> are included.
 */
#ifndef MPROC_H
#define MPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MPROC_EXPORT __attribute__((visibility("default")))
#define MPROC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MPROC_EXPORT
#define MPROC_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * mproc's own error codes, below -4000 so that they never meet a negated
 * errno value. The X-macro generates the enum, mproc_strerror() and
 * mproc_err_name() from one table.
 */
#define MPROC_ERRNO_MAP(XX)                                                    \
	XX(EPICKLE_OPCODE, -4001, "pickle opcode refused (outside mproc's safe subset)") \
	XX(EPICKLE_TRUNCATED, -4002, "pickle data truncated")                    \
	XX(EPICKLE_INVALID, -4003, "pickle data malformed")                      \
	XX(EPICKLE_DEPTH, -4004, "pickle nesting deeper than the limit")         \
	XX(EPICKLE_TOOBIG, -4005, "pickle message larger than the limit")        \
	XX(EPICKLE_UTF8, -4006, "invalid UTF-8 in a str")                        \
	XX(EPICKLE_INTRANGE, -4007, "integer does not fit in 64 bits")           \
	XX(ETYPE, -4008, "value has another type than the one asked for")       \
	XX(EINDEX, -4009, "index out of range")                                  \
	XX(EWRITER, -4010, "writer misuse: unbalanced container or no value")    \
	XX(ERAISED, -4011, "a task raised an error")                             \
	XX(ECLOSED, -4012, "closed: a pool closed or terminated, a connection or queue closed") \
	XX(ERUNNING, -4013, "pool is still running (close or terminate it first)") \
	XX(ENOTREADY, -4014, "result is not ready")                              \
	XX(EPROTO, -4015, "broken channel between manager and worker")          \
	XX(EINPUT, -4017, "an input generator failed")                         \
	XX(EHALTED, -4018, "the pool halted: too many failures, or no worker can start") \
	/* Processes, connections, queues, locks (issue 13). */                 \
	XX(EEOF, -4019, "end of file: the other end closed the connection")     \
	XX(EPEER, -4020, "the other end of the connection is gone")             \
	XX(EFULL, -4021, "queue is full")                                        \
	XX(EEMPTY, -4022, "queue is empty")                                      \
	XX(EABANDONED, -4023, "the holder died: acquired, but what it guarded may be half-changed") \
	XX(ENOTHELD, -4024, "released more times than acquired, by a non-owner, or task_done() past the puts") \
	XX(EBROKEN, -4025, "barrier is broken")                                  \
	XX(EUNNAMED, -4026, "function has no name another process can find (MPI backend)") \
	XX(EJOURNAL, -4027, "journal unusable: not an mproc journal, damaged, or unwritable") \
	XX(EJOURNAL_LOCKED, -4028, "journal in use by another running manager") \
	XX(EJOURNAL_MISMATCH, -4029, "journal holds another call: different function or input") \
	/* Out-of-band buffers (pickle protocol 5). */                          \
	XX(EPICKLE_BUFFERS, -4030, "pickle refers to out-of-band buffers that were not given")

enum mproc_errno {
#define MPROC__ERR_ENUM(name, value, text) MPROC_##name = (value),
	MPROC_ERRNO_MAP(MPROC__ERR_ENUM)
#undef MPROC__ERR_ENUM
};

/*
 * A static English description of `code` (an MPROC_E* code or a negated
 * errno value; a positive errno value, as errno holds it, is described as
 * its negation). Never NULL; unknown codes get "unknown error". Thread-safe.
 */
MPROC_EXPORT const char *mproc_strerror(int code);

/*
 * The symbolic name of `code` ("MPROC_EPICKLE_OPCODE", "ETIMEDOUT", ...), or
 * "UNKNOWN". Never NULL. Thread-safe.
 */
MPROC_EXPORT const char *mproc_err_name(int code);

/* ------------------------------------------------------------------------ */
/* Values: the pickle codec                                                 */
/* ------------------------------------------------------------------------ */

/* The Python types a value can have. */
enum mproc_type {
	MPROC_NONE = 0,
	MPROC_BOOL,
	MPROC_INT,       /* int that fits in int64_t */
	MPROC_FLOAT,     /* double */
	MPROC_STR,       /* UTF-8 text */
	MPROC_BYTES,
	MPROC_TUPLE,
	MPROC_LIST,
	MPROC_DICT,
	MPROC_SET,
	MPROC_FROZENSET,
};

/* The Python name of a type ("int", "tuple", ...); never NULL. */
MPROC_EXPORT const char *mproc_type_name(enum mproc_type type);

/*
 * Limits the decoder enforces. All zero means the defaults:
 * max_size 1 GiB, max_depth 1000 (Python's own recursion limit).
 * max_size may be raised up to MPROC_LIMITS_MAX_SIZE (1 TiB; 2 GiB where
 * size_t has 32 bits): pools (every backend), Connections and Processes
 * then carry values past 4 GiB; a Queue's messages stay within its ring
 * (docs/faults.md, "Sizes").
 */
#if SIZE_MAX > 0xffffffffu
#define MPROC_LIMITS_MAX_SIZE ((size_t)1 << 40)
#else
#define MPROC_LIMITS_MAX_SIZE ((size_t)1 << 31)
#endif
struct mproc_limits {
	/** Largest message accepted, in bytes; larger gives MPROC_EPICKLE_TOOBIG. */
	size_t max_size;
	/** Deepest nesting of containers; deeper gives MPROC_EPICKLE_DEPTH. */
	unsigned max_depth;
};

/* A decoded value: read-only, owned by the decoder that made it. */
struct mproc_value;

/*
 * The decoder turns a pickle into a read-only tree of struct mproc_value.
 * One arena per decoder holds the tree and is reused by the next decode, so
 * nothing is allocated per scalar; str and bytes values point into the
 * caller's message, which must outlive the tree.
 * A decoder is not thread-safe; use one per thread.
 */
struct mproc_decoder;

/*
 * Create a decoder with `limits` (NULL: the defaults). Returns 0 and sets
 * *out, or -ENOMEM or -EINVAL. Free it with mproc_decoder_free().
 */
MPROC_EXPORT int mproc_decoder_new(struct mproc_decoder **out,
                                   const struct mproc_limits *limits);

/* Free a decoder and every tree it made. NULL is allowed. */
MPROC_EXPORT void mproc_decoder_free(struct mproc_decoder *d);

/*
 * Decode the pickle in buf[0..len) (protocols 2 to 5; the subset is in
 * docs/pickle.md) and set *out to its root value. The tree stays valid until
 * the next mproc_decode() on `d` or mproc_decoder_free(); `buf` must stay
 * valid and unchanged as long as the tree is used.
 * Returns 0, or MPROC_EPICKLE_* / -ENOMEM, with *out NULL; on error
 * mproc_decoder_error() says what and where. Bytes after STOP are refused:
 * a message is exactly one pickle. A pickle that refers to out-of-band
 * buffers (NEXT_BUFFER) answers MPROC_EPICKLE_BUFFERS, as Python's
 * pickle.loads() without `buffers` raises; mproc_decode_buffers() takes
 * them. Mirrors pickle.loads().
 */
MPROC_EXPORT int mproc_decode(struct mproc_decoder *d, const void *buf,
                              size_t len, const struct mproc_value **out);

/*
 * An out-of-band buffer (pickle protocol 5, PEP 574's PickleBuffer): what
 * mproc_writer_buffers() hands out, in the order of the pickle's NEXT_BUFFER
 * opcodes (what Python's buffer_callback receives), and what
 * mproc_decode_buffers() takes (Python's `buffers` argument of
 * pickle.loads()).
 */
struct mproc_buffer {
	/** The bytes; the owner is said where the buffer comes from. */
	const void *data;
	size_t len;
	/**
	 * Written: READONLY_BUFFER followed its NEXT_BUFFER, so Python loads
	 * a read-only view of it. Given to the decoder: the buffer is
	 * read-only in any case (as Python's memoryview of bytes is).
	 */
	bool readonly;
};

/*
 * pickle.loads(buf, buffers=bufs): decode like mproc_decode(), where each
 * NEXT_BUFFER opcode takes the next buffer of bufs[0..nbufs) as a value of
 * type MPROC_BYTES that points into it (no copy: bufs[i].data must stay
 * valid and unchanged as long as the tree is used; bufs itself need not).
 * A READONLY_BUFFER after it marks it read-only (mproc_value_buffer()). Too
 * few buffers: MPROC_EPICKLE_BUFFERS. Extra buffers are ignored, as in
 * Python. The limits apply to the pickle: max_size bounds buf's length and
 * the tree written out without memo sharing, in which an out-of-band value
 * counts as its two opcodes, never its bytes. -EINVAL when bufs is NULL
 * with nbufs > 0, or a buffer used has NULL data and a nonzero length.
 * Otherwise as mproc_decode().
 */
MPROC_EXPORT int mproc_decode_buffers(struct mproc_decoder *d,
                                      const void *buf, size_t len,
                                      const struct mproc_buffer *bufs,
                                      size_t nbufs,
                                      const struct mproc_value **out);

/*
 * The last error of `d` as one line of text, naming the opcode and byte
 * offset when there is one ("opcode GLOBAL (0x63) refused at offset 2").
 * An empty string when the last decode succeeded. Owned by `d`.
 */
MPROC_EXPORT const char *mproc_decoder_error(const struct mproc_decoder *d);

/* Byte offset of the last error of `d` (0 when there is none). */
MPROC_EXPORT size_t mproc_decoder_error_offset(const struct mproc_decoder *d);

/*
 * Accessors. Each checks the type and answers MPROC_ETYPE on a mismatch
 * (or MPROC_EINDEX past the end), leaving *out unchanged: never undefined
 * behaviour. A NULL value is treated as a mismatch, and
 * mproc_value_type(NULL) answers MPROC_NONE.
 */
MPROC_EXPORT enum mproc_type mproc_value_type(const struct mproc_value *v);
MPROC_EXPORT bool mproc_value_is_none(const struct mproc_value *v);
MPROC_EXPORT int mproc_value_bool(const struct mproc_value *v, bool *out);
MPROC_EXPORT int mproc_value_int(const struct mproc_value *v, int64_t *out);
/* A float; an int is converted, like Python's float(x). */
MPROC_EXPORT int mproc_value_float(const struct mproc_value *v, double *out);
/* A str as UTF-8 bytes (not NUL-terminated) and their count. */
MPROC_EXPORT int mproc_value_str(const struct mproc_value *v, const char **s,
                                 size_t *len);
MPROC_EXPORT int mproc_value_bytes(const struct mproc_value *v,
                                   const void **p, size_t *len);
/* Item count of a tuple, list, dict, set or frozenset (len()). */
MPROC_EXPORT int mproc_value_len(const struct mproc_value *v, size_t *out);
/* Item i of a tuple, list, set or frozenset (sets in pickle order). */
MPROC_EXPORT int mproc_value_item(const struct mproc_value *v, size_t i,
                                  const struct mproc_value **out);
/* Entry i of a dict, in insertion order. */
MPROC_EXPORT int mproc_value_dict_entry(const struct mproc_value *v, size_t i,
                                        const struct mproc_value **key,
                                        const struct mproc_value **val);
/*
 * The value of the dict entry whose key is the str `key`: 0 and *out set,
 * -ENOENT when absent, MPROC_ETYPE when v is not a dict. With duplicate
 * keys (which CPython never writes) the last one wins, as in Python.
 */
MPROC_EXPORT int mproc_value_dict_get(const struct mproc_value *v,
                                      const char *key,
                                      const struct mproc_value **out);

/*
 * Whether v came from an out-of-band buffer (mproc_decode_buffers()'s
 * NEXT_BUFFER): 0, *index set to its place in the buffers given and
 * *readonly to whether it is read-only (READONLY_BUFFER followed it, or the
 * buffer was given read-only). MPROC_ETYPE otherwise: in-band bytes, other
 * types, NULL. Either output may be NULL. Python: isinstance(x, PickleBuffer)
 * or a buffer object of the `buffers` list, and memoryview(x).readonly.
 */
MPROC_EXPORT int mproc_value_buffer(const struct mproc_value *v,
                                    size_t *index, bool *readonly);

/*
 * The writer streams a value as pickle opcodes that CPython's
 * pickle.loads() reads (protocol 4 or 5, no memo). Scalars are written with
 * mproc_write_*(), containers between a _begin and its _end. A writer
 * remembers its first error, so a task may check only the last call.
 * Mirrors pickle.dumps(). Not thread-safe; use one per thread.
 */
struct mproc_writer;

/* Create a writer for `protocol` 4 or 5 (0 means 5). -EINVAL, -ENOMEM. */
MPROC_EXPORT int mproc_writer_new(struct mproc_writer **out, int protocol);
MPROC_EXPORT void mproc_writer_free(struct mproc_writer *w);
/* Forget what was written, keeping the buffer for reuse. */
MPROC_EXPORT void mproc_writer_reset(struct mproc_writer *w);
/*
 * Finish the value and set *data, *len to the complete pickle (owned by w,
 * valid until the next call on w). MPROC_EWRITER when no value, several
 * top-level values or an open container was written; the first error of an
 * earlier call otherwise.
 */
MPROC_EXPORT int mproc_writer_finish(struct mproc_writer *w,
                                     const void **data, size_t *len);

MPROC_EXPORT int mproc_write_none(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_bool(struct mproc_writer *w, bool b);
MPROC_EXPORT int mproc_write_int(struct mproc_writer *w, int64_t i);
MPROC_EXPORT int mproc_write_float(struct mproc_writer *w, double f);
/* A str from UTF-8 text; invalid UTF-8 gives MPROC_EPICKLE_UTF8. */
MPROC_EXPORT int mproc_write_str(struct mproc_writer *w, const char *s,
                                 size_t len);
/* A str from a NUL-terminated UTF-8 string. */
MPROC_EXPORT int mproc_write_cstr(struct mproc_writer *w, const char *s);
MPROC_EXPORT int mproc_write_bytes(struct mproc_writer *w, const void *p,
                                   size_t len);
/*
 * Containers. A dict takes key, value, key, value...; dict keys and
 * set/frozenset items must be hashable in Python (no list, dict or set, even
 * inside a tuple): the writer refuses those with MPROC_EWRITER.
 */
MPROC_EXPORT int mproc_write_tuple_begin(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_tuple_end(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_list_begin(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_list_end(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_dict_begin(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_dict_end(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_set_begin(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_set_end(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_frozenset_begin(struct mproc_writer *w);
MPROC_EXPORT int mproc_write_frozenset_end(struct mproc_writer *w);
/*
 * Write a decoded value again (re-encoding, or passing an argument on).
 * A value that came from an out-of-band buffer is written out of band
 * again on a protocol 5 writer, by reference (no copy; it points into the
 * buffer the tree came from, so that buffer must outlive the writer's use
 * of the pickle), read-only as it was; on a protocol 4 writer, and where a
 * dict key or set item is written, it is written in band. Other bytes
 * follow the writer's out-of-band threshold.
 */
MPROC_EXPORT int mproc_write_value(struct mproc_writer *w,
                                   const struct mproc_value *v);

/*
 * Out-of-band buffers (pickle protocol 5, PEP 574). A protocol 5 writer
 * may send bytes beside the pickle instead of inside it: the pickle holds
 * a NEXT_BUFFER opcode (and READONLY_BUFFER for a read-only buffer), and
 * the bytes join the writer's list of buffers, which
 * mproc_writer_buffers() hands out after mproc_writer_finish(). Python's
 * side by side: pickle.dumps(PickleBuffer(x), protocol=5,
 * buffer_callback=bufs.append) and pickle.loads(data, buffers=bufs)
 * (mproc_decode_buffers() here). A buffer is never a dict key or set
 * item: there the writer answers MPROC_EWRITER (a PickleBuffer is not
 * hashable). mproc_writer_reset(), mproc_raise() and every new value drop
 * the buffers written so far, freeing the writer's copies.
 * In a pool (docs/payloads.md): an input's items and a task's return
 * value may hold buffers, and the pool's own writers put bytes of at least
 * `buffer_threshold` out of band by themselves. With processes they travel
 * in shared memory: an input's buffer is copied there when the item is
 * pulled (a lent one too), a task's are written there, and a task that
 * returns its argument (mproc_write_value) names the argument's buffer, no
 * copy. With threads they move by pointer: a buffer an input lends is the
 * task's argument itself, and a result that echoes it points to it, so
 * lent memory stays valid and unchanged until the results that echo it
 * are released. A result's buffers live until the result is released
 * (mproc_results_free(), or the next mproc_iter_next()).
 */

/* mproc_write_buffer() flags. */
/** Copy the bytes now: p need only be valid during the call. */
#define MPROC_BUFFER_COPY 1u
/**
 * No READONLY_BUFFER after NEXT_BUFFER: Python then loads the buffer object
 * as given, writable if it is (PickleBuffer(bytearray)).
 */
#define MPROC_BUFFER_WRITABLE 2u

/*
 * Write p[0..len) as one bytes value out of band: NEXT_BUFFER (and
 * READONLY_BUFFER unless MPROC_BUFFER_WRITABLE), and the buffer joins the
 * writer's list. Without MPROC_BUFFER_COPY the writer keeps a reference:
 * the caller keeps p alive and unchanged until it is done with the pickle
 * (as with buffer_callback); with it, the writer copies the bytes, and
 * owns the copy. Protocol 5 only: a protocol 4 writer answers
 * MPROC_EWRITER, as Python's pickler raises PicklingError ("PickleBuffer
 * can only pickled with protocol >= 5"). -EINVAL for unknown flags or
 * NULL p with len > 0. Mirrors pickling PickleBuffer(p) with a
 * buffer_callback that keeps the buffer out of band.
 */
MPROC_EXPORT int mproc_write_buffer(struct mproc_writer *w, const void *p,
                                    size_t len, unsigned flags);

/*
 * Write an out-of-band buffer of len bytes that the caller fills at *p
 * (*p is valid until the writer is reset, freed, or writes its next
 * value; NULL on error): a read-only buffer for the reader, owned by the
 * writer like a copy. Saves the copy of building the bytes elsewhere
 * first. Errors as mproc_write_buffer().
 */
MPROC_EXPORT int mproc_write_reserve(struct mproc_writer *w, size_t len,
                                     void **p);

/*
 * From now on mproc_write_bytes() (and mproc_write_value()'s in-band
 * bytes) of at least min_len bytes go out of band, as a read-only copy,
 * except as a dict key or set item. 0 (the default of a writer from
 * mproc_writer_new()) means never. Kept across resets. -EINVAL on a
 * protocol 4 writer with min_len > 0. Python has no such switch: its
 * pickler writes bytes in band; this is for C peers and PickleBuffer-aware
 * Python code that expects buffers.
 */
MPROC_EXPORT int mproc_writer_set_oob_threshold(struct mproc_writer *w,
                                                size_t min_len);

/*
 * The out-of-band buffers of the value finished by mproc_writer_finish(),
 * in NEXT_BUFFER order (what buffer_callback would have received), as
 * *bufs[0..*n) (*n may be 0). Each buffer's bytes are owned by w (copies,
 * reservations) or the caller (references); the array is valid until the
 * next call on w. MPROC_EWRITER when no value was finished since the last
 * reset; the writer's first error otherwise.
 */
MPROC_EXPORT int mproc_writer_buffers(const struct mproc_writer *w,
                                      const struct mproc_buffer **bufs,
                                      size_t *n);

/* ------------------------------------------------------------------------ */
/* CPUs                                                                     */
/* ------------------------------------------------------------------------ */

/* The CPUs of the machine (multiprocessing.cpu_count()); at least 1. */
MPROC_EXPORT int mproc_cpu_count(void);

/*
 * The CPUs this process may use (os.process_cpu_count()): its affinity
 * mask, further capped by a cgroup v2 cpu.max quota when one is set
 * (rounded up), which Python ignores. At least 1.
 */
MPROC_EXPORT int mproc_process_cpu_count(void);

/* ------------------------------------------------------------------------ */
/* The pool                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Threads: every pool call below may be made from several threads at once
 * on the same pool. There is no helper thread: results are collected, and
 * callbacks run, inside the calls that wait (get, wait, ready, next, map,
 * apply, join), by one of the waiting threads at a time. A callback must not
 * wait on its own pool: such a call answers -EDEADLK.
 *
 * Fork: with MPROC_START_FORK (the default) workers are forked from the
 * calling program, and a worker started to replace one that died or retired
 * is forked from the program as it is at that moment; with
 * MPROC_START_FORKSERVER every worker, replacements included, is forked by
 * a server process that is a copy of the program as it was at
 * mproc_pool_open(). Either way workers ignore SIGINT (Ctrl-C is the
 * program's to handle), die with the manager (PR_SET_PDEATHSIG when the
 * pool was opened from the main thread; otherwise they notice it at their
 * next read), and never return into the caller's code: they end with
 * _exit().
 */

/*
 * Name workers in ps(1) with libbsd's setproctitle(). Call it first thing in
 * main() with main's arguments (`envp` may be NULL: then `environ`, which
 * is the same block unless the program changed its environment before);
 * without it workers fall back to
 * prctl(PR_SET_NAME), which ps shows as the command name. Optional;
 * idempotent; not thread-safe (call it before starting threads).
 * With MPROC_BACKEND=mpi in the environment (and MPI in the build) it
 * also starts the MPI job (MPROC_BACKEND_MPI): on rank 0 it returns, and
 * registers with atexit() the end of the job (every node agent told to
 * end, MPI_Finalize); on every other rank it never returns: the rank
 * serves rank 0's pools as a node agent and ends with _exit(0) when rank 0
 * ends. If MPI cannot be used, it returns and MPI pools answer -ENOTSUP.
 */
MPROC_EXPORT void mproc_init(int argc, char *argv[], char *envp[]);

struct mproc_pool;

/*
 * A task: runs in a worker, reads `arg` (owned by the worker, valid during
 * the call) and writes its return value with `ret` (writing nothing returns
 * None). Returns 0, or the value of mproc_raise() to raise; any other
 * negative code is raised as OSError naming the code. A return value the
 * writer refused (an open container, invalid UTF-8, too deep) is raised as
 * ValueError.
 * The same function pointer is valid in the worker because workers are
 * forked from the program that submits the task.
 */
typedef int (*mproc_task_fn)(const struct mproc_value *arg,
                             struct mproc_writer *ret);

/*
 * Raise from a task: discard what was written to `ret`, record an exception
 * of Python type name `type` (e.g. "ValueError") with a printf-style
 * message, and return MPROC_ERAISED, which the task returns.
 */
MPROC_EXPORT int mproc_raise(struct mproc_writer *ret, const char *type,
                             const char *fmt, ...) MPROC_PRINTF(3, 4);

/* Run once in each worker before its first task (Pool's initializer). */
typedef void (*mproc_initializer_fn)(void *initarg);

/*
 * How workers are started (Python's start methods).
 * MPROC_START_FORK: each worker is forked from the program; a replacement
 *   is a copy of the program as it is when the old worker died.
 * MPROC_START_FORKSERVER: a small server process is forked when the pool
 *   opens and forks every worker, so every worker, replacements included,
 *   starts from the program's state at mproc_pool_open, with none of the
 *   threads the program started later (nor the locks they hold). Costs one
 *   more process and a message per worker start.
 */
enum mproc_start_method {
	MPROC_START_FORK = 0,
	MPROC_START_FORKSERVER,
};

/*
 * What runs the tasks (Python's Pool or multiprocessing.pool.ThreadPool).
 * MPROC_BACKEND_PROCESSES: forked worker processes, with fault isolation.
 * MPROC_BACKEND_THREADS: worker threads in this process, behind the same
 *   API, the same codec and the same framed pipes, so that the two differ
 *   only in what a process costs over a thread; big bytes (out-of-band
 *   buffers) move by pointer, as Python's ThreadPool hands over objects. Threads isolate nothing: a
 *   task that crashes takes the program with it, and a running task cannot
 *   be stopped. So mproc_pool_open() answers -ENOTSUP for the options that
 *   need a process (task_timeout, max_rss, max_vm, the fork server), and a
 *   call's own timeout gets -ENOTSUP too. maxtasksperchild works as in
 *   Python's ThreadPool: the thread ends and a new one takes its place.
 *   terminate cannot kill a running task: it cancels everything not yet
 *   started and waits for the tasks that run (docs/threads.md).
 * MPROC_BACKEND_MPI: forked worker processes on the other ranks of an MPI
 *   job (docs/mpi.md), with the same fault isolation; built when meson
 *   finds an MPI library. Every rank runs the same program, which calls
 *   mproc_init() with MPROC_BACKEND=mpi in its environment: rank 0 goes on
 *   and opens pools, every other rank becomes a node agent inside
 *   mproc_init(). The variable also makes MPROC_BACKEND_PROCESSES pools
 *   use MPI, so a program runs across ranks unchanged. `processes` counts
 *   workers across the job; 0 means the CPUs of every agent together. A
 *   task function (and the initializer, and initarg when not NULL) must
 *   lie in a loaded object, the program or a shared library: it crosses as
 *   its object's name and offset, and a call given one that does not
 *   answers MPROC_EUNNAMED (mproc_pool_open for the initializer). initarg
 *   then points to that object's data as loaded on each rank, not to what
 *   rank 0 wrote there. mproc_pool_open() answers -ENOTSUP when mproc_init
 *   did not start MPI or the build has none. In a job of one rank the
 *   workers are forked here, as with MPROC_BACKEND_PROCESSES.
 */
enum mproc_backend {
	MPROC_BACKEND_PROCESSES = 0,
	MPROC_BACKEND_THREADS,
	MPROC_BACKEND_MPI,
};

/*
 * Options of mproc_pool_open(). All zero means Python's defaults.
 * The struct may grow at its end in later versions without breaking
 * programs built against this one: `size` says how much of it the program
 * knows.
 */
struct mproc_pool_opts {
	/**
	 * sizeof(struct mproc_pool_opts) as the program was compiled, or 0,
	 * which means the layout of version 0.3 (this one). A program that
	 * sets options added after 0.3 sets it (MPROC_POOL_OPTS_INIT does);
	 * a larger size than the library knows is accepted when the bytes it
	 * does not know are zero, and -E2BIG otherwise.
	 */
	size_t size;
	/** Worker count; 0 means mproc_process_cpu_count(). */
	unsigned processes;
	/** Called with `initarg` in each worker before any task; may be NULL. */
	mproc_initializer_fn initializer;
	/** Passed to `initializer`; inherited by fork, never copied. */
	void *initarg;
	/**
	 * Replace a worker after this many tasks; 0 means never. As in Python,
	 * a chunk of map/imap counts as one task; one taken back from the
	 * worker before it began it does not count.
	 */
	unsigned maxtasksperchild;
	/**
	 * Most results an iterator keeps waiting for the consumer (its window of
	 * input pulled ahead). 0 means max(256, 8 * processes * chunksize),
	 * which may stretch to 16383 while what waits is under 8 MiB: so that
	 * imap's workers run on past a result that is slow to come (a worker
	 * descheduled, a long task), and imap_unordered's come in bigger
	 * batches. A value set here is kept exactly.
	 */
	size_t window;
	/** Decoder limits for arguments and results; zero means the defaults. */
	struct mproc_limits limits;
	/** How workers are started; zero is MPROC_START_FORK. */
	enum mproc_start_method start_method;

	/* Fault isolation (docs/faults.md). */

	/**
	 * Seconds a task may run; past it, the task ends TIMEOUT and its worker
	 * gets SIGTERM, then SIGKILL after `kill_grace`, and is replaced.
	 * 0 means no limit. Enforced while some thread waits on the pool.
	 */
	double task_timeout;
	/** Seconds between SIGTERM and SIGKILL; 0 means 1 second. */
	double kill_grace;
	/**
	 * A crashed, timed-out or out-of-memory task is run again, on another
	 * worker, up to this many times before its result is final; the result's
	 * `attempts` says how many runs it took. 0: never (the default).
	 */
	unsigned retries;
	/**
	 * Resident memory, in bytes, past which a worker is retired after the
	 * task that grew it (checked after each task); 0 means no limit.
	 */
	size_t max_rss;
	/**
	 * Hard address-space limit (RLIMIT_AS) of each worker, in bytes; an
	 * allocation past it fails inside the task. 0 means none.
	 */
	size_t max_vm;
	/**
	 * Halt (GNU parallel's --halt): after this many failed tasks (any
	 * status but OK and CANCELLED), stop pulling input; tasks already
	 * dispatched finish and are delivered, the calls end with
	 * MPROC_EHALTED. 0: never.
	 */
	unsigned halt_failures;
	/**
	 * Halt when this fraction (0 to 1) of finished tasks failed, once at
	 * least `halt_min_tasks` (0 means 10) have finished. 0: never.
	 */
	double halt_fraction;
	unsigned halt_min_tasks;
	/** Processes (the default) or threads (ThreadPool). */
	enum mproc_backend backend;

	/* Added in 0.4 (set `size`): batch runs (docs/batch.md). */

	/**
	 * Path of an SQLite journal (created if missing) that makes every final
	 * result of map, map_async, starmap, imap and imap_unordered durable,
	 * so that the same calls made again after the manager died run only
	 * the items without a final result and hand out the stored results for
	 * the rest (apply is not journaled). The pool's journaled calls are
	 * numbered in the order they start; each stores a fingerprint (the
	 * function's symbol, or its object and offset; starmap or not; the
	 * input's length when known) and each result the hash of its input,
	 * and a call made with another function or input answers
	 * MPROC_EJOURNAL_MISMATCH. mproc_pool_open() holds the journal until
	 * mproc_pool_free() and answers MPROC_EJOURNAL_LOCKED while another
	 * process holds it, MPROC_EJOURNAL for a file that is not an mproc
	 * journal or is damaged. Copied at open. NULL: no journal.
	 * Durability: a result is committed before it is handed out (imap) or
	 * before the call returns (map); in between results are written in
	 * transactions committed after 1024 results, or at the first result
	 * stored 0.2 s after the transaction began, and a SIGKILL of the
	 * manager loses at most the open one (those tasks run again). Against
	 * power loss see MPROC_JOURNAL_SYNC.
	 */
	const char *journal;
	/** MPROC_JOURNAL_* flags. */
	unsigned journal_flags;

	/* Added in 0.4 (set `size`): big payloads (docs/payloads.md). */

	/**
	 * Bytes from which a bytes value that the pool's writers write (an
	 * input's items, a task's return value) travels out of band (pickle
	 * protocol 5) instead of inside its pickle: in shared memory with
	 * processes, by pointer with threads. 0 means the default, 16 KiB
	 * (out of band pays from about 8 KiB, docs/payloads.md);
	 * SIZE_MAX never. mproc_write_buffer() and mproc_write_reserve() are
	 * out of band whatever this says.
	 */
	size_t buffer_threshold;
	/**
	 * Bytes of shared memory for out-of-band buffers in flight, with
	 * processes: a quarter for arguments, the rest for results, split
	 * among the workers (at least 1 MiB each). It is mapped when the pool
	 * opens and filled as buffers come; a buffer that finds no room
	 * travels in the pipe instead. 0 means 256 MiB plus 256 MiB per
	 * worker. Not counted in max_vm.
	 */
	size_t buffer_memory;
};

/* journal_flags: commit every result in its own transaction, with
 * synchronous=FULL (an fsync per result): a result is on disk before the
 * next one is stored. Without it a power loss may also lose the last
 * transactions committed (SQLite's WAL with synchronous=NORMAL). */
#define MPROC_JOURNAL_SYNC 1u

/* An initializer that sets `size`: struct mproc_pool_opts o =
 * MPROC_POOL_OPTS_INIT; then the fields wanted. */
#define MPROC_POOL_OPTS_INIT {.size = sizeof(struct mproc_pool_opts)}

/*
 * Open a pool and fork its workers (Pool(processes, initializer, initargs,
 * maxtasksperchild)). `opts` NULL means all defaults. Returns 0 and sets
 * *out; -EINVAL for bad options (more than 4096 processes, max_size above
 * MPROC_LIMITS_MAX_SIZE, a negative or huge task_timeout or kill_grace, halt_fraction
 * outside 0..1, more than 1000 retries, a `size` smaller than the first
 * field after it); -E2BIG for a `size` past what this library knows with
 * options set there; -ENOTSUP for options the threads backend cannot
 * honour; -ENOMEM, -EMFILE, -EAGAIN (fork)
 * and the like when resources run out, in which case nothing is left
 * behind. Thread-safe.
 */
MPROC_EXPORT int mproc_pool_open(struct mproc_pool **out,
                                 const struct mproc_pool_opts *opts);

/* Stop accepting new work (Pool.close()). Idempotent. Returns 0, or
 * -EINVAL for a NULL pool. */
MPROC_EXPORT int mproc_pool_close(struct mproc_pool *pool);

/*
 * Stop the workers at once (Pool.terminate()): running tasks are killed,
 * and every worker is reaped before it returns. Every item of every call
 * submitted still has exactly one result: what finished keeps its result,
 * and every other item, running, queued or never dispatched, ends
 * MPROC_CANCELLED (its attempts say whether it ran). So a map or apply
 * (blocking, or its async result) answers MPROC_ERAISED with all its
 * items, and error callbacks get them all; an iterator hands out the
 * results of the items it had pulled, then answers MPROC_ECLOSED. Threads cannot be killed: with the threads
 * backend each finishes the task it runs (its result is kept) first.
 * From a task of the pool's own threads: -EDEADLK (so for join). Idempotent. Returns 0, -EINVAL for a NULL pool,
 * -EDEADLK from a callback of this pool.
 */
MPROC_EXPORT int mproc_pool_terminate(struct mproc_pool *pool);

/*
 * Wait for every submitted task to finish and the workers to exit
 * (Pool.join()). MPROC_ERUNNING if the pool was neither closed nor
 * terminated; -EDEADLK from a callback of this pool; a negated errno if
 * waiting itself failed. Runs callbacks of async results as they complete.
 * An imap iterator whose consumer has not read far enough for more input
 * to be pulled is ended: its results so far are still delivered, then
 * mproc_iter_next() answers MPROC_ECLOSED.
 */
MPROC_EXPORT int mproc_pool_join(struct mproc_pool *pool);

/*
 * Release the pool. A pool that was not joined is terminated first, like
 * leaving `with Pool() as p:`. Results, async results and iterators the
 * caller still holds stay valid, like the list Pool.map returned: each is
 * finished (a result of a task that had not run is MPROC_CANCELLED),
 * mproc_async_get() answers at once, mproc_iter_next() answers
 * MPROC_ECLOSED, and each is still freed with its own free call. No call on
 * the pool or its handles may be in progress in another thread meanwhile.
 * NULL is allowed.
 */
MPROC_EXPORT void mproc_pool_free(struct mproc_pool *pool);

/* How a task ended. */
enum mproc_status {
	MPROC_PENDING = 0, /* not finished yet (never seen in a delivered result) */
	MPROC_OK,          /* returned a value */
	MPROC_RAISED,      /* raised: error->type and error->msg say what */
	MPROC_CRASHED,     /* its worker died */
	MPROC_TIMEOUT,     /* ran past its timeout */
	MPROC_MEMORY,      /* its worker passed its memory limit */
	MPROC_CANCELLED,   /* the pool was terminated before it ran */
};

/* "OK", "RAISED", ...; never NULL. */
MPROC_EXPORT const char *mproc_status_name(enum mproc_status status);

/*
 * Why a task did not return a value: Python's exception, as a type name and
 * a message, plus how its worker ended when it died.
 */
struct mproc_error {
	/** A Python-style exception type name: "ValueError" from the task;
	 *  "WorkerCrashed", "TimeoutError", "MemoryError", "Cancelled",
	 *  "UnpicklingError" from the pool. */
	const char *type;
	/** A one-line message (for a crash: the signal or exit status). */
	const char *msg;
	/** For CRASHED, TIMEOUT and MEMORY: how the worker ended. NULL for
	 *  the other statuses. */
	const struct mproc_crash *crash;
};

/*
 * One task's result. Owned by the object that handed it out, and so is
 * everything it points to; from mproc_results_get() the struct is the
 * caller's, and what it points to is the results'.
 */
struct mproc_result {
	/** Position of the task's input (0 for apply). */
	size_t index;
	/** How the task ended. */
	enum mproc_status status;
	/** Times the task was started (1 unless it was retried). */
	unsigned attempts;
	/** The returned value when status is MPROC_OK, NULL otherwise. */
	const struct mproc_value *value;
	/** Why it failed, for every status but OK; NULL when status is OK. */
	const struct mproc_error *error;
};

/* How a worker running a task ended. */
struct mproc_crash {
	/** The signal that ended the worker (SIGSEGV...), 0 when it exited. */
	int signal;
	/** si_code of that signal, from the worker's crash handler (SEGV_MAPERR,
	 *  BUS_ADRALN, FPE_INTDIV...); 0 when unknown. */
	int si_code;
	/** Faulting address of SIGSEGV, SIGBUS, SIGFPE or SIGILL; 0 if none. */
	uintptr_t addr;
	/** The kernel wrote a core dump. */
	bool core_dumped;
	/** The exit status when the worker exited (exit(), _exit()); -1 if
	 *  it was killed by a signal. */
	int exit_status;
	/** Resident memory of the worker when it died, in bytes; 0 unknown. */
	size_t rss;
	/**
	 * The backtrace taken in the worker's crash handler, one frame a line
	 * ("#0 0x... function+0x1f (object)"), symbolized where the binary
	 * allows; NULL when the worker had no chance to take one (SIGKILL,
	 * exit).
	 */
	const char *report;
};

/*
 * Every result of one call, in input order: an opaque handle, read with
 * the calls below. A map keeps one word per item, not a struct
 * mproc_result, so that 10^6 results take 8 MB, as Python's list does.
 */
struct mproc_results;

/* How many items res holds (len(results)); 0 for NULL. */
MPROC_EXPORT size_t mproc_results_count(const struct mproc_results *res);

/* How many items have a status other than MPROC_OK; 0 for NULL. */
MPROC_EXPORT size_t mproc_results_failed(const struct mproc_results *res);

/*
 * Item i of res into *out: its index, status, attempts, value and error,
 * which point into res and are valid until mproc_results_free(). Returns
 * 0, or -EINVAL when res or out is NULL or i >= res->count (*out is then
 * left alone).
 */
MPROC_EXPORT int mproc_results_get(const struct mproc_results *res, size_t i,
                                   struct mproc_result *out);

/* Item i's value when its status is MPROC_OK; NULL otherwise, and when res
 * is NULL or i >= res->count. Python's results[i]. */
MPROC_EXPORT const struct mproc_value *
mproc_results_value(const struct mproc_results *res, size_t i);

/* Free results from mproc_apply() or mproc_map(). NULL is allowed. */
MPROC_EXPORT void mproc_results_free(struct mproc_results *res);

/*
 * An input: a generator that writes item `index` with `w` and returns 1,
 * returns 0 when there are no more items, or a negative code to stop the
 * call with MPROC_EINPUT. It is pulled lazily, in order, by whichever thread
 * drives the pool, never by two threads at once; it must not call the pool.
 */
typedef int (*mproc_input_fn)(void *cookie, size_t index,
                              struct mproc_writer *w);

struct mproc_input {
	/** The generator; NULL in an input made by one of the helpers below
	 *  (read such an input with mproc_input_write()). */
	mproc_input_fn fn;
	void *cookie;
	/** True when `len` is the exact item count (needed by map's chunksize;
	 *  without it map() reads the whole input first, like Python). */
	bool has_len;
	size_t len;
	/** Reserved: the helpers below keep their state here, and only the
	 *  library reads it. Zero it when filling the struct by hand. A copy
	 *  of an input is the same input. */
	uint64_t reserved_[6];
};

/* Python's range(start, stop, step) as an input of ints; -EINVAL if step 0. */
MPROC_EXPORT int mproc_input_range(struct mproc_input *in, int64_t start,
                                   int64_t stop, int64_t step);
/*
 * A C array as an input: `n` elements of `size` bytes at `base`, each
 * written by `write`. The array must outlive the call that reads it.
 */
MPROC_EXPORT int mproc_input_array(struct mproc_input *in, const void *base,
                                   size_t n, size_t size,
                                   int (*write)(struct mproc_writer *w,
                                                const void *el));
/* Arrays of int64_t, double and NUL-terminated strings. */
MPROC_EXPORT int mproc_input_int64s(struct mproc_input *in,
                                    const int64_t *a, size_t n);
MPROC_EXPORT int mproc_input_doubles(struct mproc_input *in, const double *a,
                                     size_t n);
MPROC_EXPORT int mproc_input_cstrs(struct mproc_input *in,
                                   const char *const *a, size_t n);
/* A generator function with a cookie; length unknown. */
MPROC_EXPORT int mproc_input_fn_init(struct mproc_input *in, mproc_input_fn fn,
                                     void *cookie);
/*
 * Write item `index` of `in` with `w`, as the pool does when it pulls the
 * input: 1 when an item was written, 0 past the last item, a negative code
 * from the generator, or -EINVAL for a NULL or empty input. Reads the
 * helpers' inputs too, so that a generator may wrap one. Thread-safe for
 * the helpers' inputs; a generator's own rules apply to the others.
 */
MPROC_EXPORT int mproc_input_write(const struct mproc_input *in, size_t index,
                                   struct mproc_writer *w);

/*
 * Run fn on one argument and wait (Pool.apply(f, args)). `arg`/`arglen` is
 * a complete pickle (from mproc_writer_finish(), or Python's pickle.dumps),
 * copied before the call returns; NULL passes None. Returns 0 when the task
 * returned, MPROC_ERAISED when it did not (the result says how: raised,
 * crashed, cancelled), or another negative code with *out NULL: MPROC_ECLOSED
 * after close or terminate, MPROC_EHALTED after the pool halted (these two
 * are answered by every call that submits work).
 * The caller frees *out with mproc_results_free().
 */
MPROC_EXPORT int mproc_apply(struct mproc_pool *pool, mproc_task_fn fn,
                             const void *arg, size_t arglen,
                             struct mproc_results **out);

/*
 * fn over every input item, results in input order (Pool.map). chunksize 0
 * means Python's: ceil(n / (4 * processes)). Returns 0 when every task
 * returned, MPROC_ERAISED when some did not (every result is in *out
 * all the same), MPROC_EINPUT when the input generator failed (an input of
 * unknown length is read whole first, as Python does, so then nothing ran
 * and *out is NULL; with a known length *out holds the results of the items
 * read before the failure), MPROC_EHALTED when the pool halted (*out holds
 * the results of the items read before), or another code with *out NULL.
 */
MPROC_EXPORT int mproc_map(struct mproc_pool *pool, mproc_task_fn fn,
                           const struct mproc_input *in, size_t chunksize,
                           struct mproc_results **out);

/* Pool.starmap: like mproc_map, but every item must be a tuple or a list
 * (the task's arguments, as Python unpacks either); another item ends
 * RAISED with TypeError. */
MPROC_EXPORT int mproc_starmap(struct mproc_pool *pool, mproc_task_fn fn,
                               const struct mproc_input *in, size_t chunksize,
                               struct mproc_results **out);

/* What the pool has done so far. */
struct mproc_pool_stats {
	uint64_t tasks_done;       /* results made, every status */
	uint64_t ok, raised, crashed, timed_out, memory, cancelled;
	uint64_t retried;          /* runs started again after a failure */
	uint64_t workers_started;  /* every fork, the first ones included */
	uint64_t workers_replaced; /* after a death (not retirement) */
	uint64_t workers_retired;  /* maxtasksperchild or max_rss */
	/** Seconds from a worker's death being seen to its replacement being
	 *  ready (initializer done): the last, the mean and the largest. */
	double replace_last, replace_mean, replace_max;
	bool halted;
};

/* Copy the pool's statistics into *out. 0, or -EINVAL. Thread-safe. */
MPROC_EXPORT int mproc_pool_stats(struct mproc_pool *pool,
                                  struct mproc_pool_stats *out);

/* An async result (Pool's AsyncResult / MapResult). */
struct mproc_async;

/*
 * Called once when an async result completes, in the thread that drives
 * the pool, without the pool's lock: `callback` when every task returned,
 * `error_callback` otherwise. Either may be NULL. They may submit work.
 */
typedef void (*mproc_callback_fn)(void *cookie,
                                  const struct mproc_results *res);

struct mproc_callbacks {
	mproc_callback_fn callback;
	mproc_callback_fn error_callback;
	void *cookie;
};

/*
 * Where a call stands, for its progress callback (struct mproc_call_opts).
 */
struct mproc_progress {
	/** Items with a final result so far, those read from the journal
	 *  included. */
	size_t done;
	/** Of them, how many did not end OK. */
	size_t failed;
	/** Of them, how many were read from the pool's journal (not run). */
	size_t restored;
	/** The input's length; SIZE_MAX when it is not known (a generator). */
	size_t total;
	/** Seconds since the call was submitted. */
	double elapsed;
	/** Results per second made by tasks of this call (restored ones not
	 *  counted); 0 before the first. */
	double rate;
	/** Seconds left at that rate; negative when not known. */
	double eta;
	/** The last call: every item has its result. */
	bool final;
};

/*
 * A call's progress, made in the thread that drives the pool, at most once
 * per `progress_interval` and once more at the end (`final`). It runs with
 * the pool's lock held: it must not call the pool (or any handle of it),
 * and should return quickly (draw a bar, write a line). Added in 0.4.
 */
typedef void (*mproc_progress_fn)(void *cookie,
                                  const struct mproc_progress *p);

/*
 * Options of one call, for the _opts variants below. All zero means the
 * pool's settings.
 */
struct mproc_call_opts {
	/**
	 * Seconds each task of this call may run, instead of the pool's
	 * task_timeout; 0 means the pool's, a negative value no limit for this
	 * call. What happens past it is as for task_timeout (docs/faults.md).
	 */
	double timeout;
	/** Every item is a tuple (or list) of arguments, as for starmap. */
	bool star;

	/* Added in 0.4: progress (docs/batch.md). */

	/** Called as results come in (NULL: never), with `progress_cookie`. */
	mproc_progress_fn progress;
	void *progress_cookie;
	/** Least seconds between two calls of `progress`; 0 means 0.1.
	 *  -EINVAL when negative, NaN or 1e9 or more. */
	double progress_interval;
};

/* Pool.apply_async. `cb` may be NULL. Free *out with mproc_async_free(). */
MPROC_EXPORT int mproc_apply_async(struct mproc_pool *pool, mproc_task_fn fn,
                                   const void *arg, size_t arglen,
                                   const struct mproc_callbacks *cb,
                                   struct mproc_async **out);
/* Pool.map_async: input read lazily as tasks are dispatched. */
MPROC_EXPORT int mproc_map_async(struct mproc_pool *pool, mproc_task_fn fn,
                                 const struct mproc_input *in,
                                 size_t chunksize,
                                 const struct mproc_callbacks *cb,
                                 struct mproc_async **out);
MPROC_EXPORT int mproc_starmap_async(struct mproc_pool *pool, mproc_task_fn fn,
                                     const struct mproc_input *in,
                                     size_t chunksize,
                                     const struct mproc_callbacks *cb,
                                     struct mproc_async **out);

/*
 * apply_async and map_async with options of the call's own (`co` NULL:
 * the pool's): a per-call timeout, starmap. Returns as those do, and
 * -EINVAL for a timeout that is NaN or 1e9 seconds or more.
 */
MPROC_EXPORT int mproc_apply_async_opts(struct mproc_pool *pool,
                                        mproc_task_fn fn, const void *arg,
                                        size_t arglen,
                                        const struct mproc_callbacks *cb,
                                        const struct mproc_call_opts *co,
                                        struct mproc_async **out);
MPROC_EXPORT int mproc_map_async_opts(struct mproc_pool *pool,
                                      mproc_task_fn fn,
                                      const struct mproc_input *in,
                                      size_t chunksize,
                                      const struct mproc_callbacks *cb,
                                      const struct mproc_call_opts *co,
                                      struct mproc_async **out);

/*
 * Wait up to `timeout` seconds (negative: forever) and set *out to the
 * results, owned by `a` (AsyncResult.get). Returns 0 when every task
 * returned, MPROC_ERAISED when some did not, -ETIMEDOUT when not ready yet
 * (the results can still be fetched later), MPROC_EINPUT when the input
 * generator failed or MPROC_EHALTED when the pool halted (*out holds the
 * results of the items read before), -EDEADLK from a callback of the same
 * pool.
 */
MPROC_EXPORT int mproc_async_get(struct mproc_async *a, double timeout,
                                 const struct mproc_results **out);
/* AsyncResult.wait: 0 when ready, -ETIMEDOUT otherwise. */
MPROC_EXPORT int mproc_async_wait(struct mproc_async *a, double timeout);
/* AsyncResult.ready; makes progress without blocking. */
MPROC_EXPORT bool mproc_async_ready(struct mproc_async *a);
/* AsyncResult.successful: 1 or 0, MPROC_ENOTREADY when not ready. */
MPROC_EXPORT int mproc_async_successful(struct mproc_async *a);
/*
 * Release an async result. One still running is left to finish (its
 * callbacks still run) and released by the pool. NULL is allowed.
 */
MPROC_EXPORT void mproc_async_free(struct mproc_async *a);

/* An imap iterator. */
struct mproc_iter;

/*
 * Pool.imap: results in input order, each as soon as it and all before it
 * are ready. chunksize 0 means 1. The input is pulled lazily within the
 * pool's window, so an endless input runs in bounded memory.
 */
MPROC_EXPORT int mproc_imap(struct mproc_pool *pool, mproc_task_fn fn,
                            const struct mproc_input *in, size_t chunksize,
                            struct mproc_iter **out);
/* Pool.imap_unordered: results as soon as any is ready. */
MPROC_EXPORT int mproc_imap_unordered(struct mproc_pool *pool,
                                      mproc_task_fn fn,
                                      const struct mproc_input *in,
                                      size_t chunksize,
                                      struct mproc_iter **out);
/* imap (`ordered`) or imap_unordered with options of the call's own. */
MPROC_EXPORT int mproc_imap_opts(struct mproc_pool *pool, mproc_task_fn fn,
                                 const struct mproc_input *in,
                                 size_t chunksize, bool ordered,
                                 const struct mproc_call_opts *co,
                                 struct mproc_iter **out);
/*
 * next(it, timeout): wait up to `timeout` seconds (negative: forever) for
 * the next result. Returns 1 and sets *out (valid until the next call on
 * `it`), 0 when every result was handed out, -ETIMEDOUT, MPROC_EINPUT when
 * the input generator failed (results before it were delivered),
 * MPROC_ECLOSED when the pool was joined or terminated before the input was
 * read to its end, MPROC_EHALTED when the pool halted before then, -EDEADLK
 * from a callback of the same pool.
 */
MPROC_EXPORT int mproc_iter_next(struct mproc_iter *it, double timeout,
                                 const struct mproc_result **out);
/* Release an iterator; tasks still running are left to finish. NULL ok. */
MPROC_EXPORT void mproc_iter_free(struct mproc_iter *it);

/* ======================================================================== */
/* Beyond the pool: Pipe, Connection, Process (issue 13)                    */
/* ======================================================================== */

/*
 * What a port needs besides Pool, with Python's names: Pipe and
 * Connection, Process, Queue, the locks, Value and Array. They share the
 * pool's codec (values are pickles) and fault model (a process that dies
 * is a clear code for the others, never a hang). docs/porting.md shows
 * each beside its Python.
 *
 * Sharing between processes is by inheritance, as with Python's fork start
 * method: an object is made first, then the processes that use it are
 * forked (mproc_process_start(), a pool's workers), and each uses its
 * inherited copy of the handle. A pool's workers close every descriptor of
 * the pools, never a connection's, so that a task may use a connection or
 * queue it inherited.
 */

/* ------------------------------------------------------------------------ */
/* Pipe and Connection (multiprocessing.Pipe, connection.Connection)        */
/* ------------------------------------------------------------------------ */

/*
 * One end of a pipe. A message is a value (a pickle) or raw bytes; each
 * send is one message, received whole by one recv. Not thread-safe: one
 * thread at a time uses an end, as in Python; processes that inherited
 * the same end and send at once may interleave messages larger than
 * PIPE_BUF (4096 bytes), as in Python (a Queue does not). An end is one
 * or two pipes, close-on-exec. A send never raises SIGPIPE in the program.
 */
struct mproc_conn;

/*
 * Pipe(duplex): two connected ends. duplex true: both send and receive;
 * false: *a only receives and *b only sends (Python's order: r, w).
 * Returns 0, -EINVAL (NULL), -EMFILE/-ENFILE, -ENOMEM; on error both are
 * NULL and nothing is left open. Free each end with mproc_conn_free().
 * Messages may be up to 1 GiB (mproc_pipe_limits sets another limit, up
 * to MPROC_LIMITS_MAX_SIZE: past 4 GiB works).
 */
MPROC_EXPORT int mproc_pipe(struct mproc_conn **a, struct mproc_conn **b,
                            bool duplex);
/* mproc_pipe with decoder limits for both ends (NULL: the defaults):
 * max_size also bounds raw messages; above MPROC_LIMITS_MAX_SIZE is
 * -EINVAL. */
MPROC_EXPORT int mproc_pipe_limits(struct mproc_conn **a,
                                   struct mproc_conn **b, bool duplex,
                                   const struct mproc_limits *limits);

/*
 * Connection.send(obj): send one value, given as a complete pickle (from
 * mproc_writer_finish() or Python's pickle.dumps); NULL, 0 sends None. The
 * bytes are sent as they are: a receiver gets MPROC_EPICKLE_* from
 * mproc_conn_recv() for a malformed one. Blocks while the pipe is full.
 * Returns 0; MPROC_EPEER when the other end is closed or its process
 * died (Python's BrokenPipeError; never SIGPIPE); MPROC_ECLOSED after
 * mproc_conn_close(); -EBADF on a receive-only end; MPROC_EPICKLE_TOOBIG
 * past the limit; -EINVAL.
 */
MPROC_EXPORT int mproc_conn_send(struct mproc_conn *c, const void *pickle,
                                 size_t len);
/* send() of a decoded value (re-encoded at protocol 5). As above. */
MPROC_EXPORT int mproc_conn_send_value(struct mproc_conn *c,
                                       const struct mproc_value *v);
/* Connection.send_bytes(buf): one message of raw bytes. As above. */
MPROC_EXPORT int mproc_conn_send_bytes(struct mproc_conn *c, const void *buf,
                                       size_t len);

/*
 * Connection.recv(): wait for the next message and decode it. *out is
 * owned by c and valid until the next recv, recv_bytes, close or free on
 * c. Returns 0; MPROC_EEOF when the other end was closed, or its process
 * ended, and nothing is left to read (Python's EOFError; also in the
 * middle of a message); MPROC_EPICKLE_* when the message is not
 * a pickle mproc reads (the message is consumed: the next recv reads the
 * next one; mproc_conn_error() says why); MPROC_EPICKLE_TOOBIG when its
 * length is past the limit (the stream cannot be resynchronised: c is
 * closed); MPROC_ECLOSED; -EBADF on a send-only end; -ENOMEM; -EINVAL.
 */
MPROC_EXPORT int mproc_conn_recv(struct mproc_conn *c,
                                 const struct mproc_value **out);
/* Connection.recv_bytes(): the next message's bytes, owned by c as for
 * recv. Returns as recv does, without the decoding errors. */
MPROC_EXPORT int mproc_conn_recv_bytes(struct mproc_conn *c,
                                       const void **buf, size_t *len);
/* Why the last recv's decoding failed (the decoder's message), or "". */
MPROC_EXPORT const char *mproc_conn_error(const struct mproc_conn *c);

/*
 * Connection.poll(timeout): 1 when a recv would not block (a message, or
 * end of file, is there), 0 after `timeout` seconds (0: just look;
 * negative: wait forever), or MPROC_ECLOSED, -EBADF, -EINVAL.
 */
MPROC_EXPORT int mproc_conn_poll(struct mproc_conn *c, double timeout);

/*
 * multiprocessing.connection.wait(conns, timeout): wait up to `timeout`
 * seconds (negative: forever) until at least one of the n receiving
 * connections has a message or end of file. Sets ready[i] for each
 * connection that does and returns how many (0 on timeout), or -EINVAL
 * (NULL, n 0 or past 65536, NaN), -EBADF (a send-only end),
 * MPROC_ECLOSED (a closed one), -ENOMEM.
 */
MPROC_EXPORT int mproc_wait(struct mproc_conn *const *conns, size_t n,
                            double timeout, bool *ready);

/*
 * Connection.close(): close this process's end (the other end then gets
 * MPROC_EEOF once it has read what was sent). The handle stays valid and
 * answers MPROC_ECLOSED; free it with mproc_conn_free(). Idempotent; 0 or
 * -EINVAL. Connection.fileno() is mproc_conn_fileno(): the descriptor to
 * poll for reading (a send-only end's write end), MPROC_ECLOSED once
 * closed; closed, readable and writable are the properties.
 */
MPROC_EXPORT int mproc_conn_close(struct mproc_conn *c);
MPROC_EXPORT int mproc_conn_fileno(const struct mproc_conn *c);
MPROC_EXPORT bool mproc_conn_closed(const struct mproc_conn *c);
MPROC_EXPORT bool mproc_conn_readable(const struct mproc_conn *c);
MPROC_EXPORT bool mproc_conn_writable(const struct mproc_conn *c);
/* Close (if open) and free. NULL is allowed. */
MPROC_EXPORT void mproc_conn_free(struct mproc_conn *c);

/* ------------------------------------------------------------------------ */
/* Process (multiprocessing.Process)                                        */
/* ------------------------------------------------------------------------ */

/*
 * A child process running one task function. Lifecycle:
 *  1. mproc_process_start(&p, fn, arg, arglen, &opts): Process(target,
 *     args).start() in one call. The child is a fork of the program (or,
 *     with the fork server, of the program as it was when the server
 *     started): it inherits the connections, queues, locks and shared
 *     values made before, and closes the pools' descriptors. It runs fn(arg, ret) and
 *     ends with _exit(): exit status 0 when fn returned, 1 when it raised
 *     (Python's exitcode for an uncaught exception).
 *  2. mproc_process_join(p, timeout), mproc_process_is_alive(p),
 *     terminate, kill.
 *  3. After it ended: mproc_process_exitcode() and, better than Python,
 *     mproc_process_result(): the value fn returned, the error it raised,
 *     or, for a crash, the pool's crash report (signal, address,
 *     backtrace).
 *  4. mproc_process_close() (Python's close: refused while running) or
 *     mproc_process_free() (kills and reaps a child still running: the
 *     library never leaves a child behind).
 * A handle is used by one thread at a time.
 */
struct mproc_process;

/* Options of mproc_process_start(); all zero means Python's defaults. */
struct mproc_process_opts {
	/** sizeof(struct mproc_process_opts), or 0 for this layout; another
	 *  size is -EINVAL (smaller) or -E2BIG (larger). */
	size_t size;
	/** Process.name, shown in ps(1) (setproctitle after mproc_init(),
	 *  else the first 15 bytes as the command name); NULL means
	 *  "Process-N", N counting from 1 in this program. Copied. */
	const char *name;
	/**
	 * Process.daemon: the child is killed (SIGKILL) when the program
	 * that started it ends, however it ends (PR_SET_PDEATHSIG; Linux
	 * ties that signal to the thread that forked, so on some kernels a
	 * daemon started from another thread than the main one dies when
	 * that thread ends; with the fork server, the death signal is tied
	 * to the server, which ends a moment after the program). A child
	 * that is not a daemon outlives the program unless it is joined or
	 * freed.
	 */
	bool daemon;
	/**
	 * MPROC_START_FORK (the default): the child is a fork of the
	 * program as it is now. MPROC_START_FORKSERVER (Python's
	 * set_start_method('forkserver')): the child is forked by the
	 * program's Process server, which the first such start forks from
	 * the program as it is then, and which never starts a thread: the
	 * child inherits none of the threads, nor the locks they hold, that
	 * the program started since; nor anything else made since (make the
	 * queues, connections, locks and values it uses before that first
	 * start; `fn` must be code the program had then). The server reaps
	 * its children and passes on their status, result and crash report,
	 * so every call below works alike; it ends when the program ends
	 * (its socket closes: no atexit handler), its daemons with it, while
	 * other children go on. It is a child of the program ("mproc-forksrv"
	 * in ps), as Python's is: a program that waits for every child
	 * (waitpid(-1) until ECHILD) would wait for it too. A child of the
	 * program that starts forkserver Processes has its own server.
	 */
	enum mproc_start_method start_method;
	/** Decoder limits for the argument (in the child) and the result. */
	struct mproc_limits limits;
};

/*
 * Start a child running fn on `arg` (a complete pickle, or NULL for None;
 * the caller's, needed only during the call). `opts` NULL: defaults.
 * Returns 0 and *out; -EINVAL (NULL fn or out, bad options), -EAGAIN/
 * -ENOMEM (fork), -EMFILE, -EPIPE (the fork server died: the next
 * forkserver start forks a new one). Thread-safe.
 */
MPROC_EXPORT int mproc_process_start(struct mproc_process **out,
                                     mproc_task_fn fn, const void *arg,
                                     size_t arglen,
                                     const struct mproc_process_opts *opts);

/*
 * Process.join(timeout): wait up to `timeout` seconds (negative: forever)
 * for the child to end, reading its result meanwhile, and reap it.
 * 0 once it has ended (at once if it had), -ETIMEDOUT, -EINVAL.
 */
MPROC_EXPORT int mproc_process_join(struct mproc_process *p, double timeout);

/* Process.is_alive(): started and not ended (an ended child is reaped). */
MPROC_EXPORT bool mproc_process_is_alive(struct mproc_process *p);

/* Process.pid; -1 for NULL. Process.name; "" for NULL. */
MPROC_EXPORT pid_t mproc_process_pid(const struct mproc_process *p);
MPROC_EXPORT const char *mproc_process_name(const struct mproc_process *p);

/*
 * Process.sentinel: a descriptor that becomes readable when the child
 * ends (its pidfd, owned by p), for poll() beside mproc_conn_fileno() to
 * wait for a message or a child's end at once (Python's wait([conn,
 * p.sentinel])): call mproc_conn_poll(c, 0) first, since a connection may
 * hold messages it read ahead. MPROC_ECLOSED once reaped, -ENOTSUP where
 * the kernel has no pidfd.
 */
MPROC_EXPORT int mproc_process_sentinel(const struct mproc_process *p);

/*
 * Process.exitcode: 0 and *code once the child has ended: its exit status,
 * or minus the signal that killed it (-9 for SIGKILL), as in Python; 255
 * when the status is lost: the program itself reaped the child
 * (waitpid(-1)), or the fork server died before it could say.
 * MPROC_ENOTREADY while it runs; -EINVAL.
 */
MPROC_EXPORT int mproc_process_exitcode(struct mproc_process *p, int *code);

/* Process.terminate() (SIGTERM) and kill() (SIGKILL). Nothing happens to a
 * child that has ended, as in Python. 0, or -EINVAL. */
MPROC_EXPORT int mproc_process_terminate(struct mproc_process *p);
MPROC_EXPORT int mproc_process_kill(struct mproc_process *p);

/*
 * How the task ended, once the child has: *out points into p (valid until
 * close or free) with status MPROC_OK and the value fn returned (0), or
 * MPROC_RAISED (the type and message fn raised) or MPROC_CRASHED (the child
 * died or exited without returning: error->type "ProcessCrashed",
 * error->crash with the signal, si_code, address and backtrace as for a
 * pool's task) and the call answers MPROC_ERAISED. MPROC_ENOTREADY while
 * it runs (join first); -EINVAL.
 */
MPROC_EXPORT int mproc_process_result(struct mproc_process *p,
                                      const struct mproc_result **out);

/*
 * Process.close(): release p once the child has ended (and been reaped).
 * MPROC_ERUNNING while it runs (p stays valid), -EINVAL, or 0 (p is gone).
 */
MPROC_EXPORT int mproc_process_close(struct mproc_process *p);
/* Release p; a child still running is killed (SIGKILL) and reaped first.
 * NULL is allowed. */
MPROC_EXPORT void mproc_process_free(struct mproc_process *p);

/* ------------------------------------------------------------------------ */
/* Queue, SimpleQueue, JoinableQueue (multiprocessing.Queue and friends)    */
/* ------------------------------------------------------------------------ */

/*
 * A FIFO of values (pickles) shared by the processes forked after it was
 * made, and by their threads: a ring of bytes in shared memory behind a
 * robust lock, with no helper thread. A process that dies while it holds
 * the queue's lock (in the middle of a put or get) does not wedge it: the
 * next caller repairs the lock, and the message being moved is either
 * whole in the queue or not in it. Every call is thread-safe.
 *
 * Differences from Python, all documented below: a put waits while the
 * ring has no room for the message, as for maxsize (Python's feeder
 * thread buffers without bound), and a value larger than the ring is
 * -EMSGSIZE; a get hands out a value owned by the calling thread.
 */
struct mproc_queue;

enum mproc_queue_kind {
	MPROC_QUEUE = 0,      /* multiprocessing.Queue(maxsize) */
	MPROC_QUEUE_SIMPLE,   /* SimpleQueue: no maxsize */
	MPROC_QUEUE_JOINABLE, /* JoinableQueue(maxsize): task_done and join */
};

/* Options of mproc_queue_new_opts(); all zero means Queue(). */
struct mproc_queue_opts {
	/** sizeof(struct mproc_queue_opts), or 0 for this layout; another
	 *  size is -EINVAL (smaller) or -E2BIG (larger). */
	size_t size;
	/** Most items queued at once; 0: no limit (Python's maxsize <= 0). */
	size_t maxsize;
	/** Bytes of the shared ring: messages and 4 bytes each. 0 means
	 *  4 MiB; 64 bytes to 1 GiB. Memory is touched as it is used. */
	size_t capacity;
	enum mproc_queue_kind kind;
	/** Decoder limits for mproc_queue_get(); zero means the defaults.
	 *  max_size may be up to MPROC_LIMITS_MAX_SIZE, but a message never
	 *  exceeds the ring (capacity, at most 1 GiB). */
	struct mproc_limits limits;
};

/*
 * Make a queue: 0 and *out, -EINVAL (bad options), -ENOMEM. Free it with
 * mproc_queue_free() in every process that holds it (each frees its own
 * mapping; the memory goes when the last one does).
 */
MPROC_EXPORT int mproc_queue_new_opts(struct mproc_queue **out,
                                      const struct mproc_queue_opts *opts);
/* Queue(maxsize), SimpleQueue(), JoinableQueue(maxsize). */
MPROC_EXPORT int mproc_queue_new(struct mproc_queue **out, size_t maxsize);
MPROC_EXPORT int mproc_simple_queue_new(struct mproc_queue **out);
MPROC_EXPORT int mproc_joinable_queue_new(struct mproc_queue **out,
                                          size_t maxsize);

/*
 * Queue.put(obj, block, timeout): append one value given as a complete
 * pickle (NULL, 0: None), copied. With block false, or once `timeout`
 * seconds passed (negative: wait forever), a full queue answers
 * MPROC_EFULL (Python's queue.Full): maxsize items are queued, or the ring
 * has no room for this message yet. Returns 0; -EMSGSIZE for a message
 * larger than the ring can ever hold (capacity - 4 bytes); MPROC_ECLOSED
 * after mproc_queue_close() in this process; -EINVAL. The bytes are not
 * checked: a get answers MPROC_EPICKLE_* for a malformed one.
 */
MPROC_EXPORT int mproc_queue_put(struct mproc_queue *q, const void *pickle,
                                 size_t len, bool block, double timeout);
/* Queue.put_nowait(obj): put with block false. */
MPROC_EXPORT int mproc_queue_put_nowait(struct mproc_queue *q,
                                        const void *pickle, size_t len);

/*
 * Queue.get(block, timeout): remove the oldest value and decode it. *out
 * is owned by the calling thread and valid until its next get on any
 * queue (or its end). With block false, or after `timeout` seconds
 * (negative: forever), an empty queue answers MPROC_EEMPTY (Python's
 * queue.Empty). Returns 0; MPROC_EPICKLE_* when the message is not a
 * pickle mproc reads (it is removed all the same; mproc_queue_error()
 * says why); MPROC_ECLOSED; -ENOMEM (the message stays queued); -EINVAL.
 */
MPROC_EXPORT int mproc_queue_get(struct mproc_queue *q, bool block,
                                 double timeout,
                                 const struct mproc_value **out);
/* Queue.get_nowait(). */
MPROC_EXPORT int mproc_queue_get_nowait(struct mproc_queue *q,
                                        const struct mproc_value **out);
/* get without decoding: the message's bytes, owned by the calling thread
 * as for get. */
MPROC_EXPORT int mproc_queue_get_bytes(struct mproc_queue *q, bool block,
                                       double timeout, const void **buf,
                                       size_t *len);
/* Why this thread's last get failed to decode, or "". */
MPROC_EXPORT const char *mproc_queue_error(void);

/*
 * Queue.qsize(): items queued, into *out. Approximate, as in Python: other
 * processes change it meanwhile, and a process killed in the middle of a
 * put or get can leave it off by one. 0 or -EINVAL.
 */
MPROC_EXPORT int mproc_queue_qsize(const struct mproc_queue *q, size_t *out);
/* Queue.empty() and full() (as approximate as qsize); maxsize (0: none). */
MPROC_EXPORT bool mproc_queue_empty(const struct mproc_queue *q);
MPROC_EXPORT bool mproc_queue_full(const struct mproc_queue *q);
MPROC_EXPORT size_t mproc_queue_maxsize(const struct mproc_queue *q);

/*
 * JoinableQueue.task_done(): one item taken with get is processed.
 * MPROC_ENOTHELD when called more times than items were put (Python's
 * ValueError), -ENOTSUP on a queue that is not joinable, -EINVAL.
 */
MPROC_EXPORT int mproc_queue_task_done(struct mproc_queue *q);
/* JoinableQueue.join(): wait until every item put was task_done; up to
 * `timeout` seconds (negative: forever): 0, -ETIMEDOUT, -ENOTSUP, -EINVAL. */
MPROC_EXPORT int mproc_queue_join(struct mproc_queue *q, double timeout);

/*
 * Queue.close(): this process will neither put nor get any more; its
 * later calls answer MPROC_ECLOSED. Other processes are not affected.
 * Idempotent; 0 or -EINVAL.
 */
MPROC_EXPORT int mproc_queue_close(struct mproc_queue *q);
/* Release this process's handle and mapping. NULL is allowed. */
MPROC_EXPORT void mproc_queue_free(struct mproc_queue *q);

/* ------------------------------------------------------------------------ */
/* Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier      */
/* ------------------------------------------------------------------------ */

/*
 * Synchronization shared by the processes forked after the object was made
 * and by their threads (multiprocessing's synchronize module). Each object
 * lives in shared memory; the handle is valid in every such process, and
 * each process frees its own (the memory goes with the last).
 *
 * Timeouts are in seconds: negative waits forever, 0 does not wait
 * (Python's block=False), NaN is -EINVAL. Not getting the object in time
 * is -ETIMEDOUT (Python's False). Every call is thread-safe.
 *
 * Robustness: Lock and RLock know their holder. When it dies holding one
 * (killed, crashed), the next acquire gets it with MPROC_EABANDONED: the
 * caller now holds the lock, and what it guarded may be half-changed.
 * Python deadlocks there. Semaphores have no holder: permits a dead
 * process took are lost, as in Python.
 */

/*
 * Lock and RLock. Unlike Python's multiprocessing.Lock, a Lock is released
 * by the thread that acquired it (Python lets any process release it);
 * acquiring a Lock the calling thread holds answers -EDEADLK instead of
 * hanging. An RLock is acquired again by its holder, and released as often.
 */
struct mproc_lock;

/* Lock() and RLock(): 0 and *out, -ENOMEM, -EINVAL. */
MPROC_EXPORT int mproc_lock_new(struct mproc_lock **out);
MPROC_EXPORT int mproc_rlock_new(struct mproc_lock **out);
/*
 * acquire(block, timeout): 0; MPROC_EABANDONED (acquired; its last holder
 * died holding it); -ETIMEDOUT; -EDEADLK (a Lock this thread holds, with a
 * timeout other than 0); -EINVAL.
 */
MPROC_EXPORT int mproc_lock_acquire(struct mproc_lock *l, double timeout);
/* release(): 0, or MPROC_ENOTHELD when the calling thread does not hold
 * it (a double release; Python's ValueError/RuntimeError); -EINVAL. */
MPROC_EXPORT int mproc_lock_release(struct mproc_lock *l);
/* The calling thread holds l (RLock._is_owned()). */
MPROC_EXPORT bool mproc_lock_held(const struct mproc_lock *l);
MPROC_EXPORT void mproc_lock_free(struct mproc_lock *l);

/* Semaphore(value) and BoundedSemaphore(value) (value up to 2^31 - 1). */
struct mproc_semaphore;
MPROC_EXPORT int mproc_semaphore_new(struct mproc_semaphore **out,
                                     unsigned value);
MPROC_EXPORT int mproc_bounded_semaphore_new(struct mproc_semaphore **out,
                                             unsigned value);
/* acquire(block, timeout): 0, -ETIMEDOUT, -EINVAL. */
MPROC_EXPORT int mproc_semaphore_acquire(struct mproc_semaphore *s,
                                         double timeout);
/* release(): 0; MPROC_ENOTHELD past the initial value of a bounded one
 * (Python's ValueError), or past 2^31 - 1; -EINVAL. */
MPROC_EXPORT int mproc_semaphore_release(struct mproc_semaphore *s);
/* get_value(). 0 or -EINVAL. */
MPROC_EXPORT int mproc_semaphore_get_value(const struct mproc_semaphore *s,
                                           unsigned *out);
MPROC_EXPORT void mproc_semaphore_free(struct mproc_semaphore *s);

/* Event(): a flag processes wait for. */
struct mproc_event;
MPROC_EXPORT int mproc_event_new(struct mproc_event **out);
/* set() wakes every waiter; clear(). 0 or -EINVAL. */
MPROC_EXPORT int mproc_event_set(struct mproc_event *e);
MPROC_EXPORT int mproc_event_clear(struct mproc_event *e);
MPROC_EXPORT bool mproc_event_is_set(const struct mproc_event *e);
/* wait(timeout): 0 once the flag is set (Python's True), -ETIMEDOUT
 * (False), -EINVAL. */
MPROC_EXPORT int mproc_event_wait(struct mproc_event *e, double timeout);
MPROC_EXPORT void mproc_event_free(struct mproc_event *e);

/*
 * Condition(lock): `lock` (a Lock or RLock, which must outlive the
 * condition) or, NULL, an RLock of its own (Python's default). wait() and
 * notify() need the lock held by the calling thread (MPROC_ENOTHELD
 * otherwise, Python's RuntimeError). wait() releases it however deep an
 * RLock is held, and takes it back as deep before returning, whatever it
 * returns.
 */
struct mproc_condition;
MPROC_EXPORT int mproc_condition_new(struct mproc_condition **out,
                                     struct mproc_lock *lock);
/* The lock it uses (its own when none was given). */
MPROC_EXPORT struct mproc_lock *
mproc_condition_lock(struct mproc_condition *c);
/* acquire and release of its lock, as mproc_lock_acquire/release. */
MPROC_EXPORT int mproc_condition_acquire(struct mproc_condition *c,
                                         double timeout);
MPROC_EXPORT int mproc_condition_release(struct mproc_condition *c);
/* wait(timeout): 0 when notified (or woken spuriously: check the
 * predicate, or use wait_for), -ETIMEDOUT, MPROC_ENOTHELD,
 * MPROC_EABANDONED (the lock's holder died while this one waited; held
 * again now), -EINVAL. */
MPROC_EXPORT int mproc_condition_wait(struct mproc_condition *c,
                                      double timeout);
/* wait_for(predicate, timeout): wait until predicate(cookie) is true,
 * checked with the lock held: 0, -ETIMEDOUT, or as wait. */
MPROC_EXPORT int mproc_condition_wait_for(struct mproc_condition *c,
                                          bool (*predicate)(void *cookie),
                                          void *cookie, double timeout);
/* notify(n): wake up to n waiters (a waiter about to sleep may wake too);
 * notify_all(). 0, MPROC_ENOTHELD, -EINVAL. */
MPROC_EXPORT int mproc_condition_notify(struct mproc_condition *c,
                                        unsigned n);
MPROC_EXPORT int mproc_condition_notify_all(struct mproc_condition *c);
MPROC_EXPORT void mproc_condition_free(struct mproc_condition *c);

/* Barrier(parties): parties 1 to 2^31 - 1. */
struct mproc_barrier;
MPROC_EXPORT int mproc_barrier_new(struct mproc_barrier **out,
                                   unsigned parties);
/*
 * wait(timeout): block until `parties` callers wait, then all go. Returns
 * the caller's arrival index, 0 to parties - 1 (Python's return value);
 * MPROC_EBROKEN when the barrier is broken or was reset or aborted while
 * waiting (BrokenBarrierError); -ETIMEDOUT when this caller's timeout
 * passed, which breaks the barrier for the others, as in Python; -EINVAL.
 * A process that dies while waiting still counts as waiting.
 */
MPROC_EXPORT int mproc_barrier_wait(struct mproc_barrier *b, double timeout);
/* reset(): back to empty; those waiting get MPROC_EBROKEN. abort(): broken
 * until reset. 0 or -EINVAL. */
MPROC_EXPORT int mproc_barrier_reset(struct mproc_barrier *b);
MPROC_EXPORT int mproc_barrier_abort(struct mproc_barrier *b);
MPROC_EXPORT unsigned mproc_barrier_parties(const struct mproc_barrier *b);
MPROC_EXPORT unsigned mproc_barrier_n_waiting(const struct mproc_barrier *b);
MPROC_EXPORT bool mproc_barrier_broken(const struct mproc_barrier *b);
MPROC_EXPORT void mproc_barrier_free(struct mproc_barrier *b);

/* ------------------------------------------------------------------------ */
/* Value and Array (multiprocessing.Value, multiprocessing.Array)           */
/* ------------------------------------------------------------------------ */

/*
 * Typed memory shared by the processes forked after it was made, with
 * Python's type codes: 'c' (char, a byte), 'b', 'B' (signed and unsigned
 * char), 'h', 'H' (short), 'i', 'I' (int), 'l', 'L' (long), 'q', 'Q' (long
 * long), 'f' (float), 'd' (double); 'u' (wchar) is not available. With a
 * lock (Python's default, lock=True) each element read and write below
 * holds it, an RLock that mproc_shared_get_lock() returns for guarding
 * several steps (`with v.get_lock(): v.value += 1`). Every process frees
 * its own handle. Calls are thread-safe; the raw pointer is the caller's
 * to guard.
 */
struct mproc_shared;

/*
 * Value(typecode, lock) is an Array of one: element 0. Array(typecode, n,
 * lock): n elements (1 to 2^40 bytes), zeroed. 0 and *out; -EINVAL (an
 * unknown type code, n 0 or too large, NULL out), -ENOMEM.
 */
MPROC_EXPORT int mproc_shared_value(struct mproc_shared **out, char typecode,
                                    bool lock);
MPROC_EXPORT int mproc_shared_array(struct mproc_shared **out, char typecode,
                                    size_t n, bool lock);

/* get_lock(): the RLock, owned by s; NULL when made without one (Python's
 * AttributeError) or for NULL. */
MPROC_EXPORT struct mproc_lock *mproc_shared_get_lock(struct mproc_shared *s);
/* get_obj(): the elements, as the C type of the type code; NULL for NULL. */
MPROC_EXPORT void *mproc_shared_ptr(struct mproc_shared *s);
/* len(); the type code. */
MPROC_EXPORT size_t mproc_shared_len(const struct mproc_shared *s);
MPROC_EXPORT char mproc_shared_typecode(const struct mproc_shared *s);

/*
 * Element i (v.value is element 0), under the lock when there is one.
 * get_int: an integer type code (MPROC_ETYPE for 'f', 'd'; -ERANGE for a
 * 'Q' past INT64_MAX). set_int: any code, a float one converting as
 * Python does; -ERANGE when x does not fit the type (ctypes would cut it
 * silently). get_float: any code, ints converted. set_float: 'f' or 'd'
 * (MPROC_ETYPE otherwise, as ctypes refuses a float for an int). Each
 * answers MPROC_EINDEX for i >= len, -EINVAL for NULL.
 */
MPROC_EXPORT int mproc_shared_get_int(struct mproc_shared *s, size_t i,
                                      int64_t *out);
MPROC_EXPORT int mproc_shared_set_int(struct mproc_shared *s, size_t i,
                                      int64_t x);
MPROC_EXPORT int mproc_shared_get_float(struct mproc_shared *s, size_t i,
                                        double *out);
MPROC_EXPORT int mproc_shared_set_float(struct mproc_shared *s, size_t i,
                                        double x);
/* Release this process's handle. NULL is allowed. */
MPROC_EXPORT void mproc_shared_free(struct mproc_shared *s);

/* ------------------------------------------------------------------------ */
/* Printing values (repr)                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Python's repr(v) into buf[0..size), NUL-terminated, as snprintf does:
 * *len (when not NULL) is set to the whole text's length without the NUL,
 * whether it fitted or not. `[42, None, 'hello']`, `(1,)`, `b'\x00'`,
 * `{'a': 1.5}`, `set()`, `frozenset({1})`, `1e+16`, `0.1`: what Python
 * prints, floats in their shortest round-trip form. Non-ASCII characters
 * of a str are written as they are, except the C1 controls (escaped as
 * \x80..\x9f as Python does); Python also escapes other characters it
 * deems unprintable (U+200B, ...), which mproc writes as they are.
 * Returns 0; -ENOBUFS when the text was cut (call again with *len + 1
 * bytes); -EINVAL for a NULL v, or NULL buf with size > 0 (NULL, 0 only
 * measures); MPROC_EPICKLE_DEPTH past 10000 levels. Thread-safe.
 */
MPROC_EXPORT int mproc_value_repr(const struct mproc_value *v, char *buf,
                                  size_t size, size_t *len);
/* ------------------------------------------------------------------------ */
/* Helpers: format strings, inputs from values, results out, details        */
/* ------------------------------------------------------------------------ */

/*
 * The words behind the last error code a value call of this thread
 * answered: which item, what was expected and what was found ("format
 * \"(sid)\", at [1]: expected int, got str"; "expected int, got str" from
 * an accessor; "input item 3: invalid UTF-8 in a str" from an input
 * helper). Set by the accessors (MPROC_ETYPE, MPROC_EINDEX), the helpers
 * below, and an input whose item cannot be written, with MPROC_EINPUT: a
 * helper's item says why, a generator's names the code it answered ("input
 * item 7: the generator answered EIO ..."), in the thread that pulled the
 * input (for mproc_map(), the caller; for imap, the thread that called
 * mproc_iter_next()). Meaningful
 * right after a call failed; "" when there was none. Owned by the thread,
 * valid until its next failing call. Thread-safe (one record per thread).
 */
MPROC_EXPORT const char *mproc_error_detail(void);

/*
 * Write one value described by a format string, from C arguments
 * (Py_BuildValue). Spaces, tabs, ',' and ':' are ignored; no item writes
 * None, one item writes that item, several write a tuple of them.
 *
 *   (...)  tuple     [...]  list     {...}  dict (key, value, key, value)
 *   b h i B H  int, from an int (char and short are promoted to int)
 *   I  int, from unsigned int      l  int, from long
 *   k  int, from unsigned long     L  int, from long long (int64_t)
 *   K  int, from unsigned long long (uint64_t)     n  int, from ssize_t
 *   p  bool, from an int (non-zero is True)
 *   d f  float, from a double (a float is promoted to double)
 *   s z  str, from a NUL-terminated UTF-8 const char * (NULL: None)
 *   s# z#  str, from const char * and a size_t length (NULL: None)
 *   y  bytes, from a NUL-terminated const char *
 *   y#  bytes, from const void * and a size_t length
 *   O  a decoded const struct mproc_value *, written again
 *
 * Returns 0; -EINVAL for a NULL writer or format, a bad format (unknown
 * letter, unbalanced brackets, a dict with an odd number of items: the
 * writer is then untouched) or a NULL pointer for y or O; -ERANGE for a k
 * or K past INT64_MAX; the writer's own errors (MPROC_EPICKLE_UTF8,
 * MPROC_EWRITER for an unhashable dict key, ...). After an error past the
 * format check the writer holds an incomplete value: a task returns the
 * code (the pool raises), other callers mproc_writer_reset() it.
 * mproc_error_detail() names the position in the format. E.g.
 *   mproc_write_build(w, "(sid)", "a", 1, 2.5)    ->  ('a', 1, 2.5)
 *   mproc_write_build(w, "{s:[ii]}", "xy", 1, 2)  ->  {'xy': [1, 2]}
 */
MPROC_EXPORT int mproc_write_build(struct mproc_writer *w, const char *fmt,
                                   ...);

/*
 * Read a decoded value into C variables as a format string says
 * (PyArg_ParseTuple). The format describes `v` itself ("i": v is an int;
 * "(sid)": v is a tuple or list of a str, an int and a float); several
 * top-level items describe a tuple or list of them, as PyArg_ParseTuple's
 * format does ("sid" is "(sid)"). Spaces, tabs, ',' and ':' are ignored.
 *
 *   (...) [...]  a tuple or a list (either, for both) of exactly these
 *        items; after '|' the items are optional (variables of absent
 *        items are left alone)
 *   b B  unsigned char *     h  short *     H  unsigned short *
 *   i  int *     I  unsigned int *     l  long *     k  unsigned long *
 *   L  long long *     K  unsigned long long *     n  ssize_t *
 *        all from an int (or a bool, which is an int in Python), checked
 *        against the C type's range
 *   p  bool *, from a bool or an int (non-zero is true)
 *   d  double *     f  float *, from a float or an int
 *   s  const char **, size_t *: a str's UTF-8 bytes (not NUL-terminated,
 *        pointing into the value) and their count ('s#' is the same)
 *   z  the same for a str or None (NULL and 0)
 *   y  const void **, size_t *: a bytes value ('y#' is the same)
 *   O  const struct mproc_value **: any value, as it is
 *
 * Everything is checked before anything is stored, so on an error no
 * variable changed. Returns 0; MPROC_ETYPE when an item has another type;
 * MPROC_EINDEX when a sequence has another length; -ERANGE when an int
 * does not fit its C type; -EINVAL for a NULL format or variable pointer,
 * or a bad format ('{' has no meaning here: read a dict with 'O' and
 * mproc_value_dict_next()). mproc_error_detail() names the item's path,
 * the type expected and the one found:
 *   format "(sid)", at [1]: expected int, got str
 * A task may raise with it:
 *   if (mproc_value_parse(arg, "(sid)", &s, &n, &i, &d) < 0)
 *           return mproc_raise(ret, "TypeError", "%s", mproc_error_detail());
 */
MPROC_EXPORT int mproc_value_parse(const struct mproc_value *v,
                                   const char *fmt, ...);

/*
 * A dict's entries in insertion order (PyDict_Next): start with *pos = 0;
 * returns 1 and sets *key and *val (either may be NULL) and advances *pos,
 * 0 after the last entry, MPROC_ETYPE when v is not a dict, -EINVAL for a
 * NULL pos.
 *   size_t pos = 0; const struct mproc_value *k, *val;
 *   while (mproc_value_dict_next(d, &pos, &k, &val) > 0) ...
 */
MPROC_EXPORT int mproc_value_dict_next(const struct mproc_value *v,
                                       size_t *pos,
                                       const struct mproc_value **key,
                                       const struct mproc_value **val);

/*
 * A NUL-terminated copy of a str value in *out, which the caller frees
 * with free(). Returns 0; MPROC_ETYPE when v is not a str; -EINVAL for a
 * NULL out or a str with a NUL character inside (a C string would end
 * there; the detail says where); -ENOMEM.
 */
MPROC_EXPORT int mproc_value_strdup(const struct mproc_value *v, char **out);

/*
 * A decoded tuple, list, set or frozenset as an input: its items, in
 * order, each written again as the task's argument (a dict gives its keys,
 * as iterating one does in Python). So a list that Python pickled is the
 * input of map, imap or starmap as it is. The value (and the decoder and
 * message it belongs to) must stay valid and unchanged until the call
 * that reads the input has read it all: for map, until it returns; for
 * imap, map_async and starmap_async, until the iterator or async result
 * is done. Returns 0; MPROC_ETYPE for a scalar; -EINVAL for NULL.
 */
MPROC_EXPORT int mproc_input_value(struct mproc_input *in,
                                   const struct mproc_value *v);

/*
 * Give a generator input (from mproc_input_fn_init, or filled by hand)
 * its exact item count: map then computes Python's chunksize without
 * reading the input first, and the generator is not asked past `len`
 * (Python's map with an input that has __len__). Returns 0, or -EINVAL for
 * NULL or an input made by the helpers, which know their own length.
 */
MPROC_EXPORT int mproc_input_set_len(struct mproc_input *in, size_t len);

/* Flags of mproc_results_write(). */
enum {
	/** A failed item is None instead of a (type, message) tuple. */
	MPROC_RESULTS_NONE = 1 << 0,
	/** Every item is a (status, value) tuple: ("OK", value), or the
	 *  status name ("RAISED", "CRASHED", ...) and (type, message). */
	MPROC_RESULTS_STATUS = 1 << 1,
};

/*
 * Write every result of a call as one list, in input order, that Python's
 * pickle.loads() reads: the value of each task that returned, and for each
 * that did not, by default a tuple (type, message) of its error
 * (("ValueError", "bad input"), ("WorkerCrashed", "SIGSEGV ..."),
 * ("Cancelled", ...)); `flags` choose another form (above). Finish the
 * writer with mproc_writer_finish() to get the pickle. Returns 0; -EINVAL
 * for NULL or unknown flags; the writer's errors.
 * Python side:  results = pickle.loads(data)
 */
MPROC_EXPORT int mproc_results_write(struct mproc_writer *w,
                                     const struct mproc_results *res,
                                     unsigned flags);

/*
 * Why the input of an imap iterator or an async map failed, once
 * mproc_iter_next() or mproc_async_get() answered MPROC_EINPUT: the item
 * and the reason ("input item 3: invalid UTF-8 in a str", "input item 7:
 * the generator answered EIO ..."), whichever thread pulled the input. ""
 * before a failure, and for NULL. Owned by the handle; valid until it is
 * freed.
 */
MPROC_EXPORT const char *mproc_iter_input_error(const struct mproc_iter *it);
MPROC_EXPORT const char *mproc_async_input_error(const struct mproc_async *a);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_H */
