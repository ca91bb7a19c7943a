/*
 * resources.c: the worker's cores, memory, disk and GPUs, from the Slurm
 * job it runs in (its variables) or from the machine (sysconf,
 * /proc/meminfo, statvfs, /dev); see resources.h. Pairs with worker.c,
 * which passes the command line's values in.
 */
#include "resources.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

uint32_t xy_resources_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (uint32_t)n : 0;
}

uint64_t xy_resources_memory_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
		kb = 0;
	}
	fclose(f);
	return kb / 1024;
}

uint64_t xy_resources_disk_mb(const char *dir)
{
	struct statvfs sv;

	if (!dir || statvfs(dir, &sv) < 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize / (1024 * 1024);
}

/* True for "nvidia" followed by digits only: nvidia0, nvidia12, but not
 * nvidiactl or nvidia-uvm. */
static int is_gpu_name(const char *name)
{
	const char *p;

	if (strncmp(name, "nvidia", 6) != 0 || !name[6])
		return 0;
	for (p = name + 6; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

uint32_t xy_resources_gpus(void)
{
	DIR *d = opendir("/dev");
	struct dirent *e;
	uint32_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (is_gpu_name(e->d_name))
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------ a Slurm job */

/* A variable holding a whole number up to max: its value, or 0 when it is
 * unset, empty or something else (logged). */
static uint64_t env_count(xy_resources_getenv_fn get, const char *name,
			  uint64_t max)
{
	const char *s = get(name);
	unsigned long long v;
	char *end;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)*s) || errno || *end || v > max) {
		XY_LOGW("worker", "ignoring %s=%s: not a whole number up to %"
			PRIu64, name, s, max);
		return 0;
	}
	return v;
}

/* The GPU ids a list names ("0,1", "GPU-8a3f...,GPU-77c1..."), up to the
 * first empty or negative entry, where CUDA stops reading, or Slurm's
 * NoDevFiles: a malloc'd copy of at most `most` of them, their count in
 * *n. NULL with *n 0 when there are none, or on ENOMEM (errno set). */
static char *id_list(const char *s, uint32_t most, uint32_t *n)
{
	size_t end = 0, len;
	char *out;

	*n = 0;
	errno = 0;
	while (s && *n < most) {
		len = strcspn(s + end, ",");
		if (!len || s[end] == '-' ||
		    (len == 10 && !strncmp(s + end, "NoDevFiles", 10)))
			break;
		(*n)++;
		end += len;
		if (s[end] != ',')
			break;
		end++;
	}
	if (!*n)
		return NULL;
	if (s[end - 1] == ',')
		end--;
	out = strndup(s, end);
	if (!out)
		*n = 0;
	return out;
}

/* The ids that CUDA in this process would use: CUDA_VISIBLE_DEVICES's,
 * else, in a job, the job step's or the job's. */
static const char *gpu_id_source(xy_resources_getenv_fn get, int in_job)
{
	static const char *const names[] = {
		"CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"};
	const char *s;

	for (size_t i = 0; i < (in_job ? 3 : 1); i++)
		if ((s = get(names[i])) && *s)
			return s;
	return NULL;
}

/* Memory in a job: per node, else per CPU times the job's CPUs here. */
static uint64_t job_memory_mb(xy_resources_getenv_fn get)
{
	uint64_t node = env_count(get, "SLURM_MEM_PER_NODE", UINT64_C(1) << 40);
	uint64_t cpu = env_count(get, "SLURM_MEM_PER_CPU", UINT64_C(1) << 40);

	if (node || !cpu)
		return node;
	return cpu * env_count(get, "SLURM_CPUS_ON_NODE", 1u << 20);
}

/* The GPU count when no flag gave it. */
static uint32_t find_gpus(xy_resources_getenv_fn get, int in_job)
{
	const char *cvd = get("CUDA_VISIBLE_DEVICES");
	uint32_t n = 0;
	char *ids;

	if (in_job && (n = (uint32_t)env_count(get, "SLURM_GPUS_ON_NODE",
					       4096)))
		return n;
	if (in_job || cvd) {
		/* Only the count is wanted here; ENOMEM reads as none. */
		ids = id_list(gpu_id_source(get, in_job), 4096, &n);
		free(ids);
		return n;
	}
	return xy_resources_gpus();
}

/* r->gpu_ids: the first r->gpus ids of the source, when it has that
 * many. */
static int find_gpu_ids(struct xy_resources *r, xy_resources_getenv_fn get,
			int in_job)
{
	const char *src = gpu_id_source(get, in_job);
	uint32_t n;

	free(r->gpu_ids);
	r->gpu_ids = NULL;
	if (!r->gpus || !src)
		return 0;
	r->gpu_ids = id_list(src, r->gpus, &n);
	if (!r->gpu_ids && errno == ENOMEM)
		return -1;
	if (n < r->gpus) {
		XY_LOGW("worker", "%" PRIu32 " GPUs offered but only %" PRIu32
			" named (%s); tasks get the indices 0 to %" PRIu32,
			r->gpus, n, src, r->gpus - 1);
		free(r->gpu_ids);
		r->gpu_ids = NULL;
	}
	return 0;
}

int xy_resources_find(struct xy_resources *r, unsigned given,
		      const char *dir, xy_resources_getenv_fn get)
{
	const char *job = get("SLURM_JOB_ID");
	int in_job = job && *job;
	uint64_t v;

	if (!(given & XY_RES_CORES)) {
		v = in_job ? env_count(get, "SLURM_CPUS_ON_NODE", 1u << 20) : 0;
		r->cores = v ? (uint32_t)v : xy_resources_cores();
		if (!r->cores) {
			XY_LOGW("worker", "cannot count cores; assuming 1");
			r->cores = 1;
		}
	}
	if (!(given & XY_RES_MEMORY)) {
		v = in_job ? job_memory_mb(get) : 0;
		r->memory_mb = v ? v : xy_resources_memory_mb();
		if (!r->memory_mb)
			XY_LOGW("worker", "cannot read MemTotal from "
				"/proc/meminfo");
	}
	if (!(given & XY_RES_DISK)) {
		r->disk_mb = xy_resources_disk_mb(dir);
		if (!r->disk_mb)
			XY_LOGW("worker", "cannot measure free disk under %s",
				dir ? dir : "(none)");
	}
	if (!(given & XY_RES_GPUS))
		r->gpus = find_gpus(get, in_job);
	if (find_gpu_ids(r, get, in_job) < 0)
		return -1;
	return in_job;
}

void xy_resources_clear(struct xy_resources *r)
{
	free(r->gpu_ids);
	memset(r, 0, sizeof *r);
}
