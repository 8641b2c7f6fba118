/*
 * fdreg.c - the descriptor registry (fdreg.h): a locked array, small and
 * rarely changed (a worker's start or end), never touched per task.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdreg.h"

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static int *reg_fds;
static size_t reg_len, reg_cap;

void mproc__fdreg_lock(void)
{
	pthread_mutex_lock(&reg_mu);
}

void mproc__fdreg_unlock(void)
{
	pthread_mutex_unlock(&reg_mu);
}

int mproc__fdreg_reserve_locked(size_t n)
{
	if (reg_cap - reg_len >= n)
		return 0;
	size_t cap = reg_cap ? reg_cap : 64;
	while (cap - reg_len < n)
		cap *= 2;
	int *p = reallocarray(reg_fds, cap, sizeof *p);
	if (!p)
		return -ENOMEM;
	reg_fds = p;
	reg_cap = cap;
	return 0;
}

int mproc__fdreg_add_locked(int fd)
{
	int rc = mproc__fdreg_reserve_locked(1);
	if (rc == 0)
		reg_fds[reg_len++] = fd;
	return rc;
}

int mproc__fdreg_add(int fd)
{
	mproc__fdreg_lock();
	int rc = mproc__fdreg_add_locked(fd);
	mproc__fdreg_unlock();
	return rc;
}

void mproc__fdreg_close(int *fd)
{
	if (*fd < 0)
		return;
	mproc__fdreg_lock();
	for (size_t i = 0; i < reg_len; i++) {
		if (reg_fds[i] == *fd) {
			reg_fds[i] = reg_fds[--reg_len];
			break;
		}
	}
	close(*fd);
	mproc__fdreg_unlock();
	*fd = -1;
}

int *mproc__fdreg_list_locked(const int *extra, size_t nextra, size_t *n)
{
	int *list = reallocarray(NULL, reg_len + nextra + 1, sizeof *list);
	if (!list)
		return NULL;
	if (reg_len)
		memcpy(list, reg_fds, reg_len * sizeof *list);
	if (nextra)
		memcpy(list + reg_len, extra, nextra * sizeof *list);
	*n = reg_len + nextra;
	return list;
}

void mproc__fdreg_child(void)
{
	/* The parent's lock state and list mean nothing here. */
	pthread_mutex_init(&reg_mu, NULL);
	reg_len = 0;
}
