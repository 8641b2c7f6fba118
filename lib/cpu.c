/*
 * cpu.c - how many CPUs there are, and how many this process may use.
 *
 * mproc_process_cpu_count() is os.process_cpu_count() plus what Python
 * leaves out: a cgroup v2 cpu.max quota (a container given "2 CPUs" on a
 * 64-core host should start 2 workers, not 64).
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

int mproc_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

static int cpu_affinity_count(void)
{
	/* The mask may be larger than a cpu_set_t on big machines: grow it. */
	for (size_t ncpus = 1024; ncpus <= 1u << 20; ncpus *= 2) {
		cpu_set_t *set = CPU_ALLOC(ncpus);
		if (!set)
			break;
		size_t size = CPU_ALLOC_SIZE(ncpus);
		if (sched_getaffinity(0, size, set) == 0) {
			int n = CPU_COUNT_S(size, set);
			CPU_FREE(set);
			return n > 0 ? n : 1;
		}
		CPU_FREE(set);
	}
	return mproc_cpu_count();
}

/* Quota of one cgroup directory's cpu.max, in CPUs rounded up; 0 = none. */
static int cpu_cgroup_quota(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char quota[32] = "";
	unsigned long long period = 0;
	int got = fscanf(f, "%31s %llu", quota, &period);
	fclose(f);
	if (got != 2 || strcmp(quota, "max") == 0 || period == 0)
		return 0;
	unsigned long long q = strtoull(quota, NULL, 10);
	if (q == 0)
		return 0;
	unsigned long long cpus = (q + period - 1) / period;
	return cpus > 1u << 20 ? 1 << 20 : (int)cpus;
}

/* The tightest cpu.max from this process's cgroup up to the root. */
static int cpu_cgroup_limit(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return 0;
	char line[4096], dir[4096] = "";
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) == 0) {
			snprintf(dir, sizeof dir, "%s", line + 3);
			dir[strcspn(dir, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
	if (dir[0] != '/')
		return 0;
	int best = 0;
	for (;;) {
		int q = cpu_cgroup_quota(strcmp(dir, "/") == 0 ? "" : dir);
		if (q > 0 && (best == 0 || q < best))
			best = q;
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = '\0';
	}
	if (strcmp(dir, "/") != 0) {
		int q = cpu_cgroup_quota("");
		if (q > 0 && (best == 0 || q < best))
			best = q;
	}
	return best;
}

int mproc_process_cpu_count(void)
{
	int n = cpu_affinity_count();
	int quota = cpu_cgroup_limit();
	if (quota > 0 && quota < n)
		n = quota;
	return n > 0 ? n : 1;
}
