/*
 * sched_common.c - the work-conservation scenarios shared by bench_sched
 * and mproc-bench (see sched_common.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched_common.h"

int64_t sched_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the scenarios ------------------------------------------------------- */

const char *const sched_scenario_names[] = {"mixed", "slow-first", NULL};

int sched_scenario_make(struct sched_scenario *s, const char *name)
{
	bool mixed = strcmp(name, "mixed") == 0;
	if (!mixed && strcmp(name, "slow-first") != 0)
		return -EINVAL;
	s->name = mixed ? "mixed" : "slow-first";
	s->n = mixed ? 400 : 41;
	s->ms = calloc(s->n, sizeof *s->ms);
	s->quick = calloc(s->n, sizeof *s->quick);
	if (!s->ms || !s->quick) {
		sched_scenario_free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (mixed) {
			s->quick[i] = i % 50 != 0;
			s->ms[i] = s->quick[i] ? 2 : 200;
		} else {
			s->quick[i] = i != 0;
			s->ms[i] = s->quick[i] ? 10 : 1500;
		}
	}
	return 0;
}

void sched_scenario_free(struct sched_scenario *s)
{
	free(s->ms);
	free(s->quick);
	s->ms = NULL;
	s->quick = NULL;
	s->n = 0;
}

void sched_greedy(const struct sched_scenario *s, unsigned workers,
                  double *makespan, double *last_quick)
{
	int64_t free_at[256] = {0};
	int64_t span = 0, quick = 0;
	if (workers < 1)
		workers = 1;
	if (workers > sizeof free_at / sizeof *free_at)
		workers = sizeof free_at / sizeof *free_at;
	for (size_t i = 0; i < s->n; i++) {
		unsigned w = 0;
		for (unsigned k = 1; k < workers; k++)
			if (free_at[k] < free_at[w])
				w = k;
		free_at[w] += s->ms[i];
		if (free_at[w] > span)
			span = free_at[w];
		if (s->quick[i] && free_at[w] > quick)
			quick = free_at[w];
	}
	*makespan = (double)span / 1e3;
	*last_quick = (double)quick / 1e3;
}

/* ---- the task ------------------------------------------------------------- */

int sched_task_sleep(const struct mproc_value *arg, struct mproc_writer *ret)
{
	int64_t ms;
	int rc = mproc_value_int(arg, &ms);
	if (rc < 0)
		return rc;
	if (ms < 0 || ms > 60000)
		return mproc_raise(ret, "ValueError", "sleep of %lld ms",
		                   (long long)ms);
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000};
	int64_t start = sched_mono_ns();
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	int64_t end = sched_mono_ns();
	mproc_write_tuple_begin(ret);
	mproc_write_int(ret, getpid());
	mproc_write_int(ret, gettid());
	mproc_write_int(ret, start);
	mproc_write_int(ret, end);
	return mproc_write_tuple_end(ret);
}

/* ---- one run -------------------------------------------------------------- */

static void rec_value(struct sched_rec *r, const struct mproc_value *v)
{
	const struct mproc_value *it;
	int64_t *dst[4] = {&r->pid, &r->tid, &r->start, &r->end};
	size_t len = 0;
	if (mproc_value_len(v, &len) < 0 || len != 4) {
		r->bad = 1;
		return;
	}
	for (size_t k = 0; k < 4; k++)
		if (mproc_value_item(v, k, &it) < 0 ||
		    mproc_value_int(it, dst[k]) < 0)
			r->bad = 1;
}

static void on_done(void *cookie, const struct mproc_results *res)
{
	struct sched_rec *r = cookie;
	struct mproc_result one;
	r->arrival = sched_mono_ns();
	if (mproc_results_get(res, 0, &one) < 0) {
		r->bad = 1;
		return;
	}
	r->status = (int)one.status;
	if (one.status == MPROC_OK)
		rec_value(r, one.value);
}

int sched_run_imap_unordered(struct mproc_pool *p,
                             const struct sched_scenario *s,
                             struct sched_rec *rec, int64_t *t0,
                             const char **what)
{
	struct mproc_input in;
	struct mproc_iter *it;
	const struct mproc_result *r;
	*what = NULL;
	int rc = mproc_input_int64s(&in, s->ms, s->n);
	if (rc < 0) {
		*what = "input_int64s";
		return rc;
	}
	*t0 = sched_mono_ns();
	if ((rc = mproc_imap_unordered(p, sched_task_sleep, &in, 1, &it)) < 0) {
		*what = "imap_unordered";
		return rc;
	}
	for (size_t i = 0; i < s->n; i++)
		rec[i].submit = *t0;
	while ((rc = mproc_iter_next(it, -1, &r)) == 1) {
		int64_t t = sched_mono_ns();
		if (r->index >= s->n || rec[r->index].arrival) {
			*what = "a result with an unknown or repeated index";
			rc = MPROC_EPROTO;
			break;
		}
		rec[r->index].arrival = t;
		rec[r->index].status = (int)r->status;
		if (r->status == MPROC_OK)
			rec_value(&rec[r->index], r->value);
	}
	if (rc < 0 && !*what)
		*what = "iter_next";
	mproc_iter_free(it);
	return rc < 0 ? rc : 0;
}

int sched_run_apply_async(struct mproc_pool *p, const struct sched_scenario *s,
                          struct sched_rec *rec, int64_t *t0,
                          const char **what)
{
	struct mproc_writer *w = NULL;
	struct mproc_async **as = calloc(s->n, sizeof *as);
	void **arg = calloc(s->n, sizeof *arg);
	size_t *arglen = calloc(s->n, sizeof *arglen);
	size_t sent = 0;
	*what = NULL;
	int rc = mproc_writer_new(&w, 5);
	if (rc < 0) {
		*what = "writer_new";
		w = NULL;
		goto out;
	}
	if (!as || !arg || !arglen) {
		*what = "calloc";
		rc = -ENOMEM;
		goto out;
	}
	/* Every argument's pickle is made before t0. */
	for (size_t i = 0; i < s->n; i++) {
		const void *data;
		mproc_writer_reset(w);
		mproc_write_int(w, s->ms[i]);
		if ((rc = mproc_writer_finish(w, &data, &arglen[i])) < 0) {
			*what = "writer_finish";
			goto out;
		}
		if (!(arg[i] = malloc(arglen[i]))) {
			*what = "malloc";
			rc = -ENOMEM;
			goto out;
		}
		memcpy(arg[i], data, arglen[i]);
	}
	*t0 = sched_mono_ns();
	for (; sent < s->n; sent++) {
		struct mproc_callbacks cb = {.callback = on_done,
		                             .error_callback = on_done,
		                             .cookie = &rec[sent]};
		rec[sent].submit = sched_mono_ns();
		if ((rc = mproc_apply_async(p, sched_task_sleep, arg[sent],
		                            arglen[sent], &cb, &as[sent])) < 0) {
			*what = "apply_async";
			goto out;
		}
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct mproc_results *res;
		if ((rc = mproc_async_get(as[i], -1, &res)) < 0 &&
		    rc != MPROC_ERAISED) {
			*what = "async_get";
			goto out;
		}
	}
	rc = 0;
out:
	/* After an error a job may still run: its callback writes into rec,
	 * which the caller keeps until the pool is freed. */
	for (size_t i = 0; i < sent; i++)
		mproc_async_free(as[i]);
	for (size_t i = 0; arg && i < s->n; i++)
		free(arg[i]);
	free(as);
	free(arg);
	free(arglen);
	mproc_writer_free(w);
	return rc;
}
