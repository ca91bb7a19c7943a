/*
 * resources.c: detection of the worker's cores, memory, disk and GPUs from
 * sysconf, /proc/meminfo, statvfs and /dev; see resources.h. Pairs with
 * worker.c, which applies the command line overrides.
 */
#include "resources.h"

#include <ctype.h>
#include <dirent.h>
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

int xy_resources_detect(struct xy_resources *r, const char *dir)
{
	r->cores = xy_resources_cores();
	if (!r->cores) {
		XY_LOGW("worker", "cannot count cores; assuming 1");
		r->cores = 1;
	}
	r->memory_mb = xy_resources_memory_mb();
	if (!r->memory_mb)
		XY_LOGW("worker", "cannot read MemTotal from /proc/meminfo");
	r->disk_mb = xy_resources_disk_mb(dir);
	if (!r->disk_mb)
		XY_LOGW("worker", "cannot measure free disk under %s",
			dir ? dir : "(none)");
	r->gpus = xy_resources_gpus();
	return 0;
}
