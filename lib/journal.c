/*
 * journal.c - a pool's final results, kept in an SQLite database so that a
 * call killed with its manager can be run again and do only the rest.
 *
 * One connection per pool, in WAL mode and EXCLUSIVE locking mode: the
 * connection takes the database's write lock at open and holds it until
 * close, so a second manager (another process) is refused at once
 * (MPROC_EJOURNAL_LOCKED), and the lock goes with the process, however it
 * ends. Results are written in batched transactions (JOURNAL_BATCH results
 * or JOURNAL_BATCH_NS, whichever comes first, and always before a result
 * is handed out: mproc__journal_commit), or one transaction each with
 * MPROC_JOURNAL_SYNC (synchronous=FULL). The schema is docs/batch.md's.
 *
 * Invariant: a result row exists only for an item whose result was final
 * (never CANCELLED), and it holds the hash of the input it answers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "clock.h"
#include "journal.h"

#define JOURNAL_FORMAT "1"
#define JOURNAL_BATCH 1024
#define JOURNAL_ROWS 64
#define JOURNAL_BATCH_NS (200 * 1000000ull)

struct mproc__journal {
	sqlite3 *db;
	sqlite3_stmt *put, *get, *list, *call_get, *call_put;
	sqlite3_stmt *begin, *commit;
	unsigned flags;
	bool in_tx;
	size_t pending;       /* results put since the last commit */
	uint64_t tx_start;    /* when the open transaction began */
	unsigned next_call;   /* number of the next call to begin */
	struct mproc_decoder *dec; /* reads error tuples into columns */
	int err;              /* the first error of a write (sticky) */

	/* OK results wait here, JOURNAL_ROWS at a time, to go in with one
	 * statement: SQLite's cost is mostly per statement, not per row. */
	sqlite3_stmt *put_rows;
	size_t nrows;
	struct staged {
		int64_t call, idx, attempts, hash;
		size_t off, len;
	} rows[JOURNAL_ROWS];
	char *stage;
	size_t stage_len, stage_cap;
};

struct mproc__jcall {
	struct mproc__journal *j;
	int64_t call;
	size_t n, cur;        /* final results stored before this run */
	int64_t *idx;         /* their indices, ascending */
	uint64_t *hash;       /* and their inputs' hashes */
	void *buf;            /* the payload mproc__jcall_get handed out */
	size_t buflen;
	int err;
};

static const char schema[] =
	"CREATE TABLE mproc_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
	" WITHOUT ROWID;"
	"INSERT INTO mproc_meta VALUES('format', '" JOURNAL_FORMAT "'),"
	" ('writer', 'mproc');"
	"CREATE TABLE calls(call INTEGER PRIMARY KEY,"
	" fingerprint INTEGER NOT NULL, function TEXT NOT NULL,"
	" star INTEGER NOT NULL, length INTEGER, started REAL NOT NULL);"
	"CREATE TABLE results(call INTEGER NOT NULL, idx INTEGER NOT NULL,"
	" status TEXT NOT NULL, attempts INTEGER NOT NULL,"
	" input_hash INTEGER NOT NULL, value BLOB, error BLOB,"
	" error_type TEXT, error_msg TEXT, signal INTEGER,"
	" exit_status INTEGER, report TEXT, finished REAL NOT NULL,"
	" PRIMARY KEY(call, idx)) WITHOUT ROWID;";

static int journal_code(int src)
{
	switch (src & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return MPROC_EJOURNAL_LOCKED;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return MPROC_EJOURNAL;
	}
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t mproc__journal_hash(const void *p, size_t len)
{
	/* FNV-1a: the inputs are small, and this is no defence against a
	 * chosen collision, only against a different input by mistake. */
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

static int prep(struct mproc__journal *j, sqlite3_stmt **st, const char *sql)
{
	return journal_code(sqlite3_prepare_v3(j->db, sql, -1,
	                                       SQLITE_PREPARE_PERSISTENT, st,
	                                       NULL));
}

static int exec(struct mproc__journal *j, const char *sql)
{
	return journal_code(sqlite3_exec(j->db, sql, NULL, NULL, NULL));
}

/* The schema: made in an empty database, checked in ours, and anything
 * else refused. Runs inside the first transaction. */
static int journal_schema(struct mproc__journal *j)
{
	sqlite3_stmt *st = NULL;
	int rc = journal_code(sqlite3_prepare_v2(
	        j->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL));
	if (rc < 0)
		return rc;
	int src = sqlite3_step(st);
	int64_t n = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (src != SQLITE_ROW)
		return journal_code(src) ? journal_code(src) : MPROC_EJOURNAL;
	if (n == 0)
		return exec(j, schema);
	if (sqlite3_prepare_v2(j->db,
	                       "SELECT value FROM mproc_meta WHERE key='format'",
	                       -1, &st, NULL) != SQLITE_OK)
		return MPROC_EJOURNAL; /* a database, not a journal */
	src = sqlite3_step(st);
	const unsigned char *v = src == SQLITE_ROW ? sqlite3_column_text(st, 0)
	                                           : NULL;
	rc = v && strcmp((const char *)v, JOURNAL_FORMAT) == 0 ? 0
	                                                       : MPROC_EJOURNAL;
	sqlite3_finalize(st);
	if (rc == 0) {
		/* Both tables are there, and readable to their last page. */
		if (sqlite3_prepare_v2(j->db,
		                       "SELECT (SELECT count(*) FROM results) +"
		                       " (SELECT count(*) FROM calls)",
		                       -1, &st, NULL) != SQLITE_OK)
			return MPROC_EJOURNAL;
		src = sqlite3_step(st);
		sqlite3_finalize(st);
		if (src != SQLITE_ROW)
			return journal_code(src) ? journal_code(src) : MPROC_EJOURNAL;
	}
	return rc;
}

int mproc__journal_open(struct mproc__journal **out, const char *path,
                        unsigned flags)
{
	*out = NULL;
	struct mproc__journal *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	j->flags = flags;
	int rc = journal_code(sqlite3_open_v2(
	        path, &j->db,
	        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	        NULL));
	if (rc < 0 || !j->db)
		goto fail;
	sqlite3_extended_result_codes(j->db, 0);
	/* EXCLUSIVE before WAL: the WAL index lives in this process's memory
	 * (no -shm file), and the lock taken below is held to the end. */
	if ((rc = exec(j, "PRAGMA locking_mode=EXCLUSIVE")) < 0 ||
	    (rc = exec(j, "PRAGMA journal_mode=WAL")) < 0 ||
	    (rc = exec(j, flags & MPROC_JOURNAL_SYNC ? "PRAGMA synchronous=FULL"
	                                             : "PRAGMA synchronous=NORMAL")) < 0 ||
	    (rc = exec(j, "BEGIN EXCLUSIVE")) < 0)
		goto fail;
	rc = journal_schema(j);
	if (rc < 0) {
		(void)exec(j, "ROLLBACK");
		goto fail;
	}
	if ((rc = exec(j, "COMMIT")) < 0)
		goto fail;
	if ((rc = prep(j, &j->put,
	               "INSERT OR REPLACE INTO results VALUES"
	               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)")) < 0 ||
	    (rc = prep(j, &j->get,
	               "SELECT status, attempts, value, error FROM results"
	               " WHERE call = ?1 AND idx = ?2")) < 0 ||
	    (rc = prep(j, &j->list,
	               "SELECT idx, input_hash FROM results WHERE call = ?1"
	               " ORDER BY idx")) < 0 ||
	    (rc = prep(j, &j->call_get,
	               "SELECT fingerprint FROM calls WHERE call = ?1")) < 0 ||
	    (rc = prep(j, &j->call_put,
	               "INSERT INTO calls VALUES(?1, ?2, ?3, ?4, ?5, ?6)")) < 0 ||
	    (rc = prep(j, &j->begin, "BEGIN")) < 0 ||
	    (rc = prep(j, &j->commit, "COMMIT")) < 0)
		goto fail;
	if ((rc = mproc_decoder_new(&j->dec, NULL)) < 0)
		goto fail;
	char sql[JOURNAL_ROWS * 48 + 128];
	size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO results"
	                            " (call, idx, status, attempts, input_hash,"
	                            " value, finished) VALUES");
	for (int i = 0; i < JOURNAL_ROWS; i++)
		n += (size_t)snprintf(sql + n, sizeof sql - n,
		                      "%s(?%d, ?%d, 'OK', ?%d, ?%d, ?%d, ?%d)",
		                      i ? "," : "", 5 * i + 1, 5 * i + 2,
		                      5 * i + 3, 5 * i + 4, 5 * i + 5,
		                      JOURNAL_ROWS * 5 + 1);
	if ((rc = prep(j, &j->put_rows, sql)) < 0)
		goto fail;
	*out = j;
	return 0;
fail:
	if (rc == 0)
		rc = MPROC_EJOURNAL;
	mproc__journal_close(j);
	return rc;
}

static int step_reset(sqlite3_stmt *st)
{
	int src = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return journal_code(src);
}

/* The staged rows into the open transaction: one statement for a full
 * stage, the one-row statement for a part. */
static int journal_flush(struct mproc__journal *j)
{
	if (!j->nrows)
		return 0;
	int rc = 0;
	double fin = wall_now();
	if (j->nrows == JOURNAL_ROWS) {
		sqlite3_stmt *st = j->put_rows;
		for (size_t i = 0; i < JOURNAL_ROWS; i++) {
			const struct staged *r = &j->rows[i];
			int b = (int)i * 5;
			sqlite3_bind_int64(st, b + 1, r->call);
			sqlite3_bind_int64(st, b + 2, r->idx);
			sqlite3_bind_int64(st, b + 3, r->attempts);
			sqlite3_bind_int64(st, b + 4, r->hash);
			sqlite3_bind_blob(st, b + 5, j->stage + r->off, (int)r->len,
			                  SQLITE_STATIC);
		}
		sqlite3_bind_double(st, JOURNAL_ROWS * 5 + 1, fin);
		rc = step_reset(st);
	} else {
		sqlite3_stmt *st = j->put;
		for (size_t i = 0; i < j->nrows && rc == 0; i++) {
			const struct staged *r = &j->rows[i];
			sqlite3_bind_int64(st, 1, r->call);
			sqlite3_bind_int64(st, 2, r->idx);
			sqlite3_bind_text(st, 3, "OK", -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, r->attempts);
			sqlite3_bind_int64(st, 5, r->hash);
			sqlite3_bind_blob(st, 6, j->stage + r->off, (int)r->len,
			                  SQLITE_STATIC);
			sqlite3_bind_double(st, 13, fin);
			rc = step_reset(st);
		}
	}
	j->nrows = 0;
	j->stage_len = 0;
	return rc;
}

int mproc__journal_commit(struct mproc__journal *j)
{
	if (!j || !j->in_tx)
		return 0;
	int rc = journal_flush(j);
	if (rc < 0) {
		if (!j->err)
			j->err = rc;
		(void)exec(j, "ROLLBACK");
		j->in_tx = false;
		j->pending = 0;
		return rc;
	}
	rc = step_reset(j->commit);
	if (rc < 0) {
		/* A failed COMMIT may leave the transaction open: end it, so
		 * that the next result starts a fresh one. */
		if (!sqlite3_get_autocommit(j->db))
			(void)exec(j, "ROLLBACK");
		if (!j->err)
			j->err = rc;
	}
	j->in_tx = false;
	j->pending = 0;
	return rc;
}

size_t mproc__journal_pending(const struct mproc__journal *j)
{
	return j ? j->pending : 0;
}

int mproc__journal_close(struct mproc__journal *j)
{
	if (!j)
		return 0;
	int rc = mproc__journal_commit(j);
	sqlite3_stmt *sts[] = {j->put, j->get, j->list, j->call_get,
	                       j->call_put, j->begin, j->commit, j->put_rows};
	for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
		sqlite3_finalize(sts[i]);
	if (j->db && sqlite3_close(j->db) != SQLITE_OK && rc == 0)
		rc = MPROC_EJOURNAL;
	mproc_decoder_free(j->dec);
	free(j->stage);
	free(j);
	return rc;
}

/* How a function is known across runs: its symbol when the dynamic linker
 * knows one (an exported function), else its object and offset there. */
static void fn_name(const void *fn, char *out, size_t size)
{
	Dl_info info;
	if (dladdr(fn, &info) && info.dli_fname) {
		const char *base = strrchr(info.dli_fname, '/');
		base = base ? base + 1 : info.dli_fname;
		if (info.dli_sname && info.dli_saddr == fn)
			snprintf(out, size, "%s", info.dli_sname);
		else
			snprintf(out, size, "%s+0x%zx", base,
			         (size_t)((const char *)fn -
			                  (const char *)info.dli_fbase));
	} else {
		snprintf(out, size, "?");
	}
}

int mproc__jcall_open(struct mproc__journal *j, const void *fn, bool star,
                      size_t len, struct mproc__jcall **out)
{
	*out = NULL;
	struct mproc__jcall *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->j = j;
	c->call = j->next_call++;
	char name[512], fp[600];
	fn_name(fn, name, sizeof name);
	int n = snprintf(fp, sizeof fp, "%s|%d|%lld", name, star ? 1 : 0,
	                 len == SIZE_MAX ? -1ll : (long long)len);
	int64_t print = (int64_t)mproc__journal_hash(fp, (size_t)n);
	int rc = mproc__journal_commit(j);
	if (rc < 0)
		goto fail;
	sqlite3_bind_int64(j->call_get, 1, c->call);
	int src = sqlite3_step(j->call_get);
	int64_t stored = src == SQLITE_ROW ? sqlite3_column_int64(j->call_get, 0)
	                                   : 0;
	sqlite3_reset(j->call_get);
	if (src == SQLITE_ROW && stored != print) {
		rc = MPROC_EJOURNAL_MISMATCH;
		goto fail;
	}
	if (src != SQLITE_ROW) {
		if ((rc = journal_code(src)) < 0)
			goto fail;
		sqlite3_bind_int64(j->call_put, 1, c->call);
		sqlite3_bind_int64(j->call_put, 2, print);
		sqlite3_bind_text(j->call_put, 3, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(j->call_put, 4, star);
		if (len == SIZE_MAX)
			sqlite3_bind_null(j->call_put, 5);
		else
			sqlite3_bind_int64(j->call_put, 5, (int64_t)len);
		sqlite3_bind_double(j->call_put, 6, wall_now());
		if ((rc = step_reset(j->call_put)) < 0)
			goto fail;
		*out = c;
		return 0;
	}
	/* The final results of the runs before. */
	size_t cap = 0;
	sqlite3_bind_int64(j->list, 1, c->call);
	while ((src = sqlite3_step(j->list)) == SQLITE_ROW) {
		if (c->n == cap) {
			size_t ncap = cap ? 2 * cap : 1024;
			int64_t *a = realloc(c->idx, ncap * sizeof *a);
			if (a)
				c->idx = a;
			uint64_t *h = a ? realloc(c->hash, ncap * sizeof *h) : NULL;
			if (h)
				c->hash = h;
			if (!a || !h) {
				rc = -ENOMEM;
				break;
			}
			cap = ncap;
		}
		c->idx[c->n] = sqlite3_column_int64(j->list, 0);
		c->hash[c->n] = (uint64_t)sqlite3_column_int64(j->list, 1);
		c->n++;
	}
	if (rc == 0)
		rc = journal_code(src);
	sqlite3_reset(j->list);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	mproc__jcall_free(c);
	return rc;
}

void mproc__jcall_free(struct mproc__jcall *c)
{
	if (!c)
		return;
	free(c->idx);
	free(c->hash);
	free(c->buf);
	free(c);
}

struct mproc__journal *mproc__jcall_journal(struct mproc__jcall *c)
{
	return c->j;
}

int mproc__jcall_error(const struct mproc__jcall *c)
{
	return c->err ? c->err : c->j->err;
}

int mproc__jcall_done(struct mproc__jcall *c, size_t index, uint64_t ihash)
{
	while (c->cur < c->n && (uint64_t)c->idx[c->cur] < index)
		c->cur++;
	if (c->cur == c->n || (uint64_t)c->idx[c->cur] != index)
		return 0;
	return c->hash[c->cur] == ihash ? 1 : MPROC_EJOURNAL_MISMATCH;
}

static enum mproc_status status_parse(const unsigned char *s)
{
	for (int st = MPROC_OK; s && st <= MPROC_CANCELLED; st++)
		if (strcmp((const char *)s, mproc_status_name(st)) == 0)
			return st;
	return MPROC_PENDING;
}

int mproc__jcall_get(struct mproc__jcall *c, size_t index,
                     enum mproc_status *status, unsigned *attempts,
                     const void **p, size_t *len)
{
	sqlite3_stmt *st = c->j->get;
	sqlite3_bind_int64(st, 1, c->call);
	sqlite3_bind_int64(st, 2, (int64_t)index);
	int src = sqlite3_step(st);
	int rc = src == SQLITE_ROW ? 0
	         : journal_code(src) < 0 ? journal_code(src) : MPROC_EJOURNAL;
	if (rc == 0) {
		*status = status_parse(sqlite3_column_text(st, 0));
		int64_t a = sqlite3_column_int64(st, 1);
		int col = *status == MPROC_OK ? 2 : 3;
		const void *b = sqlite3_column_blob(st, col);
		size_t n = (size_t)sqlite3_column_bytes(st, col);
		if (*status == MPROC_PENDING || *status == MPROC_CANCELLED ||
		    a < 0 || a > 100000 || (*status == MPROC_OK && !n)) {
			rc = MPROC_EJOURNAL; /* not a row we wrote */
		} else if (n > c->buflen) {
			void *nb = realloc(c->buf, n);
			if (!nb)
				rc = -ENOMEM;
			else {
				c->buf = nb;
				c->buflen = n;
			}
		}
		if (rc == 0) {
			if (n)
				memcpy(c->buf, b, n);
			*attempts = (unsigned)a;
			*p = n ? c->buf : NULL;
			*len = n;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* The error tuple (type, message, signal, si_code, addr, core, exit
 * status, rss, report) into the columns that a query reads. */
static void put_error_columns(struct mproc__journal *j, sqlite3_stmt *st,
                              const void *p, size_t len)
{
	const struct mproc_value *v = NULL, *x;
	if (!len || mproc_decode(j->dec, p, len, &v) < 0)
		return;
	const char *s;
	size_t n;
	int64_t i;
	if (mproc_value_item(v, 0, &x) == 0 && mproc_value_str(x, &s, &n) == 0)
		sqlite3_bind_text(st, 8, s, (int)n, SQLITE_TRANSIENT);
	if (mproc_value_item(v, 1, &x) == 0 && mproc_value_str(x, &s, &n) == 0)
		sqlite3_bind_text(st, 9, s, (int)n, SQLITE_TRANSIENT);
	if (mproc_value_item(v, 2, &x) == 0 && mproc_value_int(x, &i) == 0)
		sqlite3_bind_int64(st, 10, i);
	if (mproc_value_item(v, 6, &x) == 0 && mproc_value_int(x, &i) == 0)
		sqlite3_bind_int64(st, 11, i);
	if (mproc_value_item(v, 8, &x) == 0 && mproc_value_str(x, &s, &n) == 0)
		sqlite3_bind_text(st, 12, s, (int)n, SQLITE_TRANSIENT);
}

void mproc__jcall_put(struct mproc__jcall *c, size_t index, uint64_t ihash,
                      enum mproc_status status, unsigned attempts,
                      const void *p, size_t len)
{
	struct mproc__journal *j = c->j;
	int rc = 0;
	if (!j->in_tx) {
		if ((rc = step_reset(j->begin)) < 0)
			goto out;
		j->in_tx = true;
		j->tx_start = mproc__coarse_ns();
	}
	if (len > INT32_MAX) {
		rc = -E2BIG;
		goto out;
	}
	if (status == MPROC_OK && !(j->flags & MPROC_JOURNAL_SYNC)) {
		if (j->stage_len + len > j->stage_cap) {
			size_t cap = j->stage_cap ? 2 * j->stage_cap : 4096;
			while (cap < j->stage_len + len)
				cap *= 2;
			char *nb = realloc(j->stage, cap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			j->stage = nb;
			j->stage_cap = cap;
		}
		memcpy(j->stage + j->stage_len, p, len);
		j->rows[j->nrows++] = (struct staged){
			.call = c->call, .idx = (int64_t)index,
			.attempts = attempts, .hash = (int64_t)ihash,
			.off = j->stage_len, .len = len};
		j->stage_len += len;
		if (j->nrows == JOURNAL_ROWS && (rc = journal_flush(j)) < 0)
			goto out;
		goto counted;
	}
	/* A failure (or every result, synced): its own statement, after
	 * the rows staged before it. */
	if ((rc = journal_flush(j)) < 0)
		goto out;
	sqlite3_stmt *st = j->put;
	sqlite3_bind_int64(st, 1, c->call);
	sqlite3_bind_int64(st, 2, (int64_t)index);
	sqlite3_bind_text(st, 3, mproc_status_name(status), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, attempts);
	sqlite3_bind_int64(st, 5, (int64_t)ihash);
	if (status == MPROC_OK) {
		sqlite3_bind_blob(st, 6, p, (int)len, SQLITE_STATIC);
	} else {
		if (len)
			sqlite3_bind_blob(st, 7, p, (int)len, SQLITE_STATIC);
		put_error_columns(j, st, p, len);
	}
	sqlite3_bind_double(st, 13, wall_now());
	if ((rc = step_reset(st)) < 0)
		goto out;
counted:
	j->pending++;
	if (j->flags & MPROC_JOURNAL_SYNC || j->pending >= JOURNAL_BATCH ||
	    mproc__coarse_ns() - j->tx_start >= JOURNAL_BATCH_NS)
		rc = mproc__journal_commit(j);
out:
	if (rc < 0 && !c->err)
		c->err = rc;
}
