/*
 * parser.c - a shared object for mproc-run whose parser crashes on some
 * inputs, like the C libraries batch users run over a million files.
 *
 * parse("NAME,AGE") returns {'name': NAME, 'age': AGE}. An AGE that is not
 * a number raises ValueError. Its bug: a line without a comma makes it read
 * through a NULL pointer, and the worker dies of SIGSEGV; mproc-run reports
 * that input as crashed and goes on. parse_slow does the same after 1 ms;
 * parse_stuck too, but a NAME that begins with "stuck" hangs for a minute.
 *
 *   cc -shared -fPIC -o parser.so parser.c $(pkg-config --cflags mproc)
 *   printf 'ann,31\nbob\ncid,x\n' | mproc-run ./parser.so:parse
 *
 * docs/batch.md runs it, kills it and resumes it.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

int parse(const struct mproc_value *arg, struct mproc_writer *ret);
int parse_slow(const struct mproc_value *arg, struct mproc_writer *ret);
int parse_stuck(const struct mproc_value *arg, struct mproc_writer *ret);

int parse(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const char *s;
	size_t n;
	if (mproc_value_str(arg, &s, &n) < 0)
		return mproc_raise(ret, "TypeError", "expected a str");
	char line[256];
	if (n >= sizeof line)
		return mproc_raise(ret, "ValueError", "line too long");
	memcpy(line, s, n);
	line[n] = 0;
	/* The bug: no check that there is a comma. */
	volatile char *comma = strchr(line, ',');
	*comma = 0;
	char *end;
	long age = strtol((char *)comma + 1, &end, 10);
	if (end == comma + 1 || *end)
		return mproc_raise(ret, "ValueError", "age is not a number: %s",
		                   (char *)comma + 1);
	mproc_write_dict_begin(ret);
	mproc_write_cstr(ret, "name");
	mproc_write_cstr(ret, line);
	mproc_write_cstr(ret, "age");
	mproc_write_int(ret, age);
	return mproc_write_dict_end(ret);
}

int parse_slow(const struct mproc_value *arg, struct mproc_writer *ret)
{
	usleep(1000);
	return parse(arg, ret);
}

int parse_stuck(const struct mproc_value *arg, struct mproc_writer *ret)
{
	const char *s;
	size_t n;
	if (mproc_value_str(arg, &s, &n) == 0 && n >= 5 &&
	    memcmp(s, "stuck", 5) == 0)
		sleep(60);
	return parse_slow(arg, ret);
}
