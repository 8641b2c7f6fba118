/*
 * test_payload.c - big payloads: bytes past the pool's threshold travel out
 * of band (pickle protocol 5), in shared memory between processes and by
 * pointer between threads; results keep their buffers until released, a
 * full space falls back to the pipe, and crashes, retries and terminate
 * lose nothing and leak no descriptor, child or mapping.
 *
 * Tasks run in workers; every assertion is made in the test process.
 * tests/meson.build runs the suite again with the fork server
 * (payload-forkserver) and on the threads backend (payload-threads).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mproc.h"
#include "testutil.h"

#define MiB ((size_t)1 << 20)

/* ---- helpers ------------------------------------------------------------- */

static unsigned char pattern(size_t index, size_t j)
{
	return (unsigned char)(index * 31 + j * 7 + (j >> 12));
}

struct gen {
	size_t n;        /* items */
	size_t size;     /* bytes each */
	const unsigned char *lend; /* by reference from here, or NULL */
};

/* Item i: `size` bytes of pattern(i, .), copied or lent. */
static int gen_bytes(void *cookie, size_t index, struct mproc_writer *w)
{
	const struct gen *g = cookie;
	if (index >= g->n)
		return 0;
	if (g->lend)
		return mproc_write_buffer(w, g->lend + index * g->size, g->size,
		                          0) < 0 ? -EIO : 1;
	unsigned char *p = malloc(g->size);
	if (!p)
		return -ENOMEM;
	for (size_t j = 0; j < g->size; j++)
		p[j] = pattern(index, j);
	int rc = mproc_write_bytes(w, p, g->size);
	free(p);
	return rc < 0 ? -EIO : 1;
}

static unsigned char *lent_array(size_t n, size_t size)
{
	unsigned char *a = malloc(n * size);
	ck_assert_ptr_nonnull(a);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < size; j++)
			a[i * size + j] = pattern(i, j);
	return a;
}

static bool bytes_ok(const struct mproc_value *v, size_t index, size_t size)
{
	const void *p;
	size_t len;
	if (mproc_value_bytes(v, &p, &len) < 0 || len != size)
		return false;
	const unsigned char *b = p;
	for (size_t j = 0; j < size; j += 4093)
		if (b[j] != pattern(index, j))
			return false;
	return b[size - 1] == pattern(index, size - 1);
}

static bool is_buffer(const struct mproc_value *v)
{
	size_t i;
	bool ro;
	return mproc_value_buffer(v, &i, &ro) == 0;
}

/* Mappings of the buffer arena in this process. */
static int arena_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, "mproc-buffers") != NULL;
	fclose(f);
	return n;
}

/* Whether p lies in a mapping of the arena. */
static bool in_arena(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	bool in = false;
	while (!in && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (strstr(line, "mproc-buffers") &&
		    sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
	}
	fclose(f);
	return in;
}

/* ---- tasks (run in workers) ------------------------------------------------ */

static int t_echo(const struct mproc_value *arg, struct mproc_writer *ret)
{
	return mproc_write_value(ret, arg);
}

/* Return its argument's length, reading nothing else. */
static int t_len(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const void *p;
	size_t n;
	if (mproc_value_bytes(arg, &p, &n) < 0)
		return mproc_raise(ret, "TypeError", "expected bytes");
	return mproc_write_int(ret, (int64_t)n);
}

/* Argument i: a result of i MiB... made in place: (i % 4 + 1) * 256 KiB of
 * pattern(i, .), written into space reserved from the pool. */
static int t_reserve(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t i;
	if (mproc_value_int(arg, &i) < 0)
		return mproc_raise(ret, "TypeError", "expected int");
	size_t size = (size_t)(i % 4 + 1) * (256u << 10);
	void *p;
	int rc = mproc_write_reserve(ret, size, &p);
	if (rc < 0)
		return rc;
	unsigned char *b = p;
	for (size_t j = 0; j < size; j++)
		b[j] = pattern((size_t)i, j);
	return 0;
}

/* Like t_reserve, but every third task aborts half way through. */
static int t_reserve_crash(const struct mproc_value *arg,
                           struct mproc_writer *ret)
{
	int64_t i;
	if (mproc_value_int(arg, &i) < 0)
		return mproc_raise(ret, "TypeError", "expected int");
	void *p;
	int rc = mproc_write_reserve(ret, MiB, &p);
	if (rc < 0)
		return rc;
	memset(p, 0xab, MiB / 2);
	if (i % 3 == 2)
		abort();
	unsigned char *b = p;
	for (size_t j = 0; j < MiB; j++)
		b[j] = pattern((size_t)i, j);
	return 0;
}

/* Shared with the workers (made before the pool): which items already
 * crashed once. */
static _Atomic unsigned char *crashed_once;

/* Echo, but crash the first time each item runs. */
static int t_echo_crash_once(const struct mproc_value *arg,
                             struct mproc_writer *ret)
{
	const void *p;
	size_t n;
	if (mproc_value_bytes(arg, &p, &n) < 0 || n < 1)
		return mproc_raise(ret, "TypeError", "expected bytes");
	/* pattern(i, 0) == i * 31 mod 256 tells the item (fewer than 256). */
	unsigned idx = (unsigned)(*(const unsigned char *)p * 223u) & 0xff;
	if (!atomic_exchange(&crashed_once[idx], 1))
		raise(SIGKILL);
	return mproc_write_value(ret, arg);
}

/* Reserve 512 KiB, fill half, then hang: its timeout ends it. */
static int t_reserve_hang(const struct mproc_value *arg,
                          struct mproc_writer *ret)
{
	int64_t i;
	if (mproc_value_int(arg, &i) < 0)
		return mproc_raise(ret, "TypeError", "expected int");
	void *p;
	int rc = mproc_write_reserve(ret, 512u << 10, &p);
	if (rc < 0)
		return rc;
	memset(p, (int)i, 256u << 10);
	if (i % 5 == 4)
		for (;;)
			pause();
	unsigned char *b = p;
	for (size_t j = 0; j < (512u << 10); j++)
		b[j] = pattern((size_t)i, j);
	return 0;
}

/* Echo; 1 task in 50 dies by SIGKILL, 1 in 50 by SIGSEGV. */
static int t_echo_or_die(const struct mproc_value *arg,
                         struct mproc_writer *ret)
{
	const void *p;
	size_t n;
	if (mproc_value_bytes(arg, &p, &n) < 0 || n < 2)
		return mproc_raise(ret, "TypeError", "expected bytes");
	const unsigned char *b = p;
	unsigned k = (unsigned)(b[1] * 167u + b[0] * 7u) % 50;
	if (k == 0)
		raise(SIGKILL);
	if (k == 1)
		raise(SIGSEGV);
	return mproc_write_value(ret, arg);
}

/* Write into its argument, which the pool's memory holds: a worker only
 * reads it, so this crashes the task. */
static int t_scribble(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const void *p;
	size_t n;
	if (mproc_value_bytes(arg, &p, &n) < 0 || n < 1)
		return mproc_raise(ret, "TypeError", "expected bytes");
	*(volatile unsigned char *)(uintptr_t)p ^= 1;
	return mproc_write_int(ret, (int64_t)n);
}

/* ---- the tests ---------------------------------------------------------------- */

START_TEST(test_payload_big_bytes_round_trip_out_of_band)
{
	struct mproc_pool *p = open_pool(2);
	struct gen g = {.n = 24, .size = MiB};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap(p, t_echo, &in, 1, &it), 0);
	const struct mproc_result *r;
	size_t i = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		ck_assert_int_eq(r->status, MPROC_OK);
		ck_assert_uint_eq(r->index, i);
		ck_assert(bytes_ok(r->value, i, g.size));
		/* It came out of band: in the arena, or by pointer. */
		if (!test_mpi())
			ck_assert(is_buffer(r->value));
		if (!test_threads() && !test_mpi()) {
			const void *b;
			size_t n;
			mproc_value_bytes(r->value, &b, &n);
			ck_assert(in_arena(b));
		}
		i++;
	}
	ck_assert_uint_eq(i, g.n);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_small_bytes_stay_in_the_pickle)
{
	struct mproc_pool *p = open_pool(2);
	struct gen g = {.n = 50, .size = 1024};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_echo, &in, 4, &res), 0);
	for (size_t i = 0; i < g.n; i++) {
		ck_assert(bytes_ok(item(res, i).value, i, g.size));
		ck_assert(!is_buffer(item(res, i).value));
	}
	mproc_results_free(res);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_threshold_option_keeps_bytes_in_band)
{
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 2;
	o.buffer_threshold = SIZE_MAX;
	struct mproc_pool *p = open_pool_opts(&o);
	struct gen g = {.n = 4, .size = MiB};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_echo, &in, 1, &res), 0);
	for (size_t i = 0; i < g.n; i++) {
		ck_assert(bytes_ok(item(res, i).value, i, g.size));
		ck_assert(!is_buffer(item(res, i).value));
	}
	mproc_results_free(res);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_lent_input_is_not_copied_by_threads)
{
	/* Threads hand over references: the echo's bytes are the caller's.
	 * Processes copy it once, into the arena. */
	struct mproc_pool *p = open_pool(2);
	struct gen g = {.n = 16, .size = 4 * MiB};
	unsigned char *a = lent_array(g.n, g.size);
	g.lend = a;
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_echo, &in, 1, &res), 0);
	for (size_t i = 0; i < g.n; i++) {
		const void *b;
		size_t n;
		ck_assert_int_eq(mproc_value_bytes(item(res, i).value, &b, &n), 0);
		ck_assert(bytes_ok(item(res, i).value, i, g.size));
		if (test_threads())
			ck_assert_ptr_eq(b, a + i * g.size);
		else if (!test_mpi())
			ck_assert(in_arena(b));
	}
	mproc_results_free(res);
	finish_pool(p);
	free(a);
}
END_TEST

START_TEST(test_payload_reserved_result_is_written_in_place)
{
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 40, 1), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_reserve, &in, 1, &res), 0);
	for (size_t i = 0; i < 40; i++) {
		ck_assert(bytes_ok(item(res, i).value, i, (i % 4 + 1) * (256u << 10)));
		ck_assert(is_buffer(item(res, i).value));
	}
	mproc_results_free(res);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_results_outlive_the_pool)
{
	int before = arena_maps();
	struct mproc_pool *p = open_pool(2);
	if (!test_threads() && !test_mpi())
		ck_assert_int_eq(arena_maps(), before + 1);
	struct gen g = {.n = 12, .size = 512u << 10};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_echo, &in, 2, &res), 0);
	finish_pool(p);
	/* The pool is gone; its results still read their buffers. */
	for (size_t i = 0; i < g.n; i++)
		ck_assert(bytes_ok(item(res, i).value, i, g.size));
	mproc_results_free(res);
	ck_assert_int_eq(arena_maps(), before);
}
END_TEST

START_TEST(test_payload_full_space_falls_back_to_the_pipe)
{
	/* 8 MiB in all: 2 MiB of arguments, 1.5 MiB per worker region. A map
	 * holds all 32 results of 1 MiB: most go inline, none is lost. */
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 2;
	o.buffer_memory = 8 * MiB;
	struct mproc_pool *p = open_pool_opts(&o);
	struct gen g = {.n = 32, .size = MiB};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_echo, &in, 1, &res), 0);
	for (size_t i = 0; i < g.n; i++)
		ck_assert(bytes_ok(item(res, i).value, i, g.size));
	mproc_results_free(res);
	/* And once they are released, the spaces take buffers again. */
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	ck_assert_int_eq(mproc_imap(p, t_len, &in, 1, &it), 0);
	const struct mproc_result *r;
	size_t n = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		ck_assert_int_eq(int_of(r->value), (int64_t)g.size);
		n++;
	}
	ck_assert_uint_eq(n, g.n);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_odd_buffer_memory_still_carries_buffers)
{
	/* Sizes that are no multiple of a page: the spaces start on pages, and
	 * every worker writes its whole region. */
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 2;
	o.buffer_memory = 10 * MiB + 12345;
	struct mproc_pool *p = open_pool_opts(&o);
	struct gen g = {.n = 24, .size = 256 * 1024 + 777};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap(p, t_echo, &in, 1, &it), 0);
	const struct mproc_result *r;
	size_t i = 0, bufs = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		ck_assert_int_eq(r->status, MPROC_OK);
		ck_assert(bytes_ok(r->value, i, g.size));
		/* One may go inline while both its worker's regions are
		 * held by results not yet handed out. */
		bufs += is_buffer(r->value);
		i++;
	}
	ck_assert_uint_eq(i, g.n);
	if (!test_mpi())
		ck_assert_uint_ge(bufs, g.n / 2);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_a_worker_cannot_write_its_argument)
{
	/* Threads get the caller's own bytes, and MPI sends them inline:
	 * neither maps an arena. */
	if (test_threads() || test_mpi())
		return;
	struct mproc_pool *p = open_pool(2);
	struct gen g = {.n = 4, .size = MiB};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_scribble, &in, 1, &res), MPROC_ERAISED);
	for (size_t i = 0; i < g.n; i++) {
		struct mproc_result r = item(res, i);
		ck_assert_int_eq(r.status, MPROC_CRASHED);
		ck_assert_int_eq(r.error->crash->signal, SIGSEGV);
		ck_assert_int_eq(r.error->crash->si_code, SEGV_ACCERR);
	}
	mproc_results_free(res);
	/* The pool goes on. */
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	ck_assert_int_eq(mproc_map(p, t_len, &in, 1, &res), 0);
	mproc_results_free(res);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_crash_mid_write_loses_nothing_and_leaks_nothing)
{
	if (test_threads())
		return; /* a crash takes a threads pool's process with it */
	int fds = count_fds(), maps = arena_maps();
	struct mproc_pool *p = open_pool(2);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 90, 1), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_reserve_crash, &in, 1, &res),
	                 MPROC_ERAISED);
	for (size_t i = 0; i < 90; i++) {
		struct mproc_result r = item(res, i);
		if (i % 3 == 2) {
			ck_assert_int_eq(r.status, MPROC_CRASHED);
			ck_assert_int_eq(r.error->crash->signal, SIGABRT);
		} else {
			ck_assert_int_eq(r.status, MPROC_OK);
			ck_assert(bytes_ok(r.value, i, MiB));
		}
	}
	mproc_results_free(res);
	finish_pool(p);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(arena_maps(), maps);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_payload_retry_runs_with_the_same_argument)
{
	if (test_threads() || test_mpi())
		return; /* threads cannot retry a crash; MPI: its own suite */
	crashed_once = mmap(NULL, 256, PROT_READ | PROT_WRITE,
	                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(crashed_once, MAP_FAILED);
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 2;
	o.retries = 1;
	struct mproc_pool *p = open_pool_opts(&o);
	struct gen g = {.n = 20, .size = MiB};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_echo_crash_once, &in, 1, &res), 0);
	for (size_t i = 0; i < g.n; i++) {
		ck_assert_int_eq(item(res, i).status, MPROC_OK);
		ck_assert_uint_eq(item(res, i).attempts, 2);
		ck_assert(bytes_ok(item(res, i).value, i, g.size));
	}
	mproc_results_free(res);
	finish_pool(p);
	munmap((void *)crashed_once, 256);
}
END_TEST

START_TEST(test_payload_terminate_mid_imap_leaks_nothing)
{
	int fds = count_fds(), maps = arena_maps();
	struct mproc_pool *p = open_pool(2);
	struct gen g = {.n = 400, .size = 256u << 10};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap(p, t_echo, &in, 1, &it), 0);
	const struct mproc_result *r;
	for (size_t i = 0; i < 10; i++) {
		ck_assert_int_eq(mproc_iter_next(it, -1, &r), 1);
		ck_assert(bytes_ok(r->value, i, g.size));
	}
	ck_assert_int_eq(mproc_pool_terminate(p), 0);
	/* What was done is still handed out, the rest ends CANCELLED. */
	size_t n = 10;
	while (mproc_iter_next(it, -1, &r) == 1) {
		if (r->status == MPROC_OK)
			ck_assert(bytes_ok(r->value, r->index, g.size));
		n++;
	}
	ck_assert_uint_le(n, g.n);
	mproc_iter_free(it);
	finish_pool(p);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(arena_maps(), maps);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_payload_many_tasks_keep_the_spaces_turning)
{
	/* 2,000 results of 256 KiB through spaces of 16 MiB: only if results
	 * handed out are released does each stay out of band. */
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 2;
	o.buffer_memory = 64 * MiB;
	struct mproc_pool *p = open_pool_opts(&o);
	struct gen g = {.n = 2000, .size = 256u << 10};
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap_unordered(p, t_echo, &in, 1, &it), 0);
	const struct mproc_result *r;
	size_t n = 0, oob = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		ck_assert_int_eq(r->status, MPROC_OK);
		ck_assert(bytes_ok(r->value, r->index, g.size));
		oob += is_buffer(r->value);
		n++;
	}
	ck_assert_uint_eq(n, g.n);
	/* All of them out of band, but for a few that met a full space. */
	if (!test_mpi())
		ck_assert_uint_ge(oob, g.n * 9 / 10);
	mproc_iter_free(it);
	finish_pool(p);
}
END_TEST

START_TEST(test_payload_timeout_mid_write_loses_nothing)
{
	if (test_threads() || test_mpi())
		return; /* threads cannot be timed out; MPI: its own suite */
	int fds = count_fds(), maps = arena_maps();
	struct mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
	o.processes = 2;
	o.task_timeout = 0.3;
	struct mproc_pool *p = open_pool_opts(&o);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_range(&in, 0, 20, 1), 0);
	struct mproc_results *res;
	ck_assert_int_eq(mproc_map(p, t_reserve_hang, &in, 1, &res),
	                 MPROC_ERAISED);
	for (size_t i = 0; i < 20; i++) {
		struct mproc_result r = item(res, i);
		if (i % 5 == 4) {
			ck_assert_int_eq(r.status, MPROC_TIMEOUT);
		} else {
			ck_assert_int_eq(r.status, MPROC_OK);
			ck_assert(bytes_ok(r.value, i, 512u << 10));
		}
	}
	mproc_results_free(res);
	finish_pool(p);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(arena_maps(), maps);
	ck_assert(no_children());
}
END_TEST

START_TEST(test_payload_ten_thousand_with_deaths_leak_nothing)
{
	/* 10^4 tasks of 128 KiB, 4% of them killing their worker (SIGKILL
	 * or SIGSEGV): every other result is exact, and nothing stays behind:
	 * no descriptor, child or mapping. */
	if (test_threads() || test_mpi())
		return;
	int fds = count_fds(), maps = arena_maps();
	struct mproc_pool *p = open_pool(2);
	/* MPROC_PAYLOAD_N scales it (CI runs 500 under valgrind). */
	const char *env = getenv("MPROC_PAYLOAD_N");
	struct gen g = {.n = env ? strtoul(env, NULL, 10) : 10000,
	                .size = 128u << 10};
	ck_assert_uint_ge(g.n, 500);
	struct mproc_input in;
	ck_assert_int_eq(mproc_input_fn_init(&in, gen_bytes, &g), 0);
	in.has_len = true;
	in.len = g.n;
	struct mproc_iter *it;
	ck_assert_int_eq(mproc_imap_unordered(p, t_echo_or_die, &in, 1, &it), 0);
	const struct mproc_result *r;
	size_t n = 0, ok = 0, crashed = 0;
	while (mproc_iter_next(it, -1, &r) == 1) {
		n++;
		if (r->status == MPROC_OK) {
			ck_assert(bytes_ok(r->value, r->index, g.size));
			ok++;
		} else {
			ck_assert_int_eq(r->status, MPROC_CRASHED);
			crashed++;
		}
	}
	ck_assert_uint_eq(n, g.n);
	ck_assert_uint_gt(crashed, g.n / 50);
	ck_assert_uint_lt(crashed, g.n / 10);
	mproc_iter_free(it);
	finish_pool(p);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(arena_maps(), maps);
	ck_assert(no_children());
}
END_TEST

static Suite *payload_suite(void)
{
	Suite *s = suite_create("payload");
	TCase *tc = tcase_create("payload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_payload_big_bytes_round_trip_out_of_band);
	tcase_add_test(tc, test_payload_small_bytes_stay_in_the_pickle);
	tcase_add_test(tc, test_payload_threshold_option_keeps_bytes_in_band);
	tcase_add_test(tc, test_payload_lent_input_is_not_copied_by_threads);
	tcase_add_test(tc, test_payload_reserved_result_is_written_in_place);
	tcase_add_test(tc, test_payload_results_outlive_the_pool);
	tcase_add_test(tc, test_payload_full_space_falls_back_to_the_pipe);
	tcase_add_test(tc, test_payload_odd_buffer_memory_still_carries_buffers);
	tcase_add_test(tc, test_payload_a_worker_cannot_write_its_argument);
	tcase_add_test(tc, test_payload_crash_mid_write_loses_nothing_and_leaks_nothing);
	tcase_add_test(tc, test_payload_retry_runs_with_the_same_argument);
	tcase_add_test(tc, test_payload_terminate_mid_imap_leaks_nothing);
	tcase_add_test(tc, test_payload_many_tasks_keep_the_spaces_turning);
	tcase_add_test(tc, test_payload_timeout_mid_write_loses_nothing);
	tcase_add_test(tc, test_payload_ten_thousand_with_deaths_leak_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(payload_suite());
}
