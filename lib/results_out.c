/*
 * results_out.c - a call's results written as one pickle that Python's
 * pickle.loads() reads: the last step of a Python-in, C-compute,
 * Python-out round trip.
 *
 * Only the public reading of struct mproc_results is used, so the results
 * of every call (map, a finished async result) are written the same way.
 */
#include <errno.h>

#include "mproc.h"
#include "detail.h"

static int write_error(struct mproc_writer *w, const struct mproc_result *r)
{
	const char *type = r->error && r->error->type ? r->error->type
	                                              : mproc_status_name(r->status);
	const char *msg = r->error && r->error->msg ? r->error->msg : "";
	mproc_write_tuple_begin(w);
	mproc_write_cstr(w, type);
	mproc_write_cstr(w, msg);
	return mproc_write_tuple_end(w);
}

int mproc_results_write(struct mproc_writer *w,
                        const struct mproc_results *res, unsigned flags)
{
	if (!w || !res)
		return mproc__detail_text(-EINVAL, "%s is NULL",
		                          w ? "the results" : "the writer");
	if (flags & ~(unsigned)(MPROC_RESULTS_NONE | MPROC_RESULTS_STATUS) ||
	    (flags & MPROC_RESULTS_NONE && flags & MPROC_RESULTS_STATUS))
		return mproc__detail_text(-EINVAL, "flags 0x%x: unknown, or "
		                          "NONE with STATUS", flags);
	size_t n = mproc_results_count(res);
	int rc = mproc_write_list_begin(w);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		struct mproc_result r;
		if ((rc = mproc_results_get(res, i, &r)) < 0)
			break;
		bool ok = r.status == MPROC_OK;
		if (flags & MPROC_RESULTS_STATUS) {
			mproc_write_tuple_begin(w);
			mproc_write_cstr(w, mproc_status_name(r.status));
		}
		if (ok)
			rc = r.value ? mproc_write_value(w, r.value)
			             : mproc_write_none(w);
		else if (flags & MPROC_RESULTS_NONE)
			rc = mproc_write_none(w);
		else
			rc = write_error(w, &r);
		if (flags & MPROC_RESULTS_STATUS)
			rc = mproc_write_tuple_end(w);
		if (rc < 0)
			rc = mproc__detail_text(rc, "result %zu: %s", i,
			                        mproc_strerror(rc));
	}
	if (rc >= 0)
		rc = mproc_write_list_end(w);
	return rc < 0 ? rc : 0;
}
