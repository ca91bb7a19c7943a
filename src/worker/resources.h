/*
 * resources.h: what a worker offers: cores, memory, disk and GPUs, detected
 * from the machine and overridden by `xylem worker` flags. The worker sends
 * these in HELLO (worker.c); the manager schedules against them.
 */
#ifndef XY_RESOURCES_H
#define XY_RESOURCES_H

#include <stddef.h>
#include <stdint.h>

struct xy_resources {
	uint32_t cores;
	uint64_t memory_mb;
	uint64_t disk_mb;
	uint32_t gpus;
};

/* Fills r from the machine: online cores (sysconf), MemTotal of
 * /proc/meminfo, the space available to an unprivileged user on the file
 * system holding dir (statvfs), and the number of /dev/nvidia<N> devices.
 * A value that cannot be read is left 0 and logged, except cores, which is
 * at least 1. Returns 0. */
int xy_resources_detect(struct xy_resources *r, const char *dir);

/* The individual probes, for tests and for flags that override only some.
 * Each returns 0 when it cannot tell. */
uint32_t xy_resources_cores(void);
uint64_t xy_resources_memory_mb(void);
uint64_t xy_resources_disk_mb(const char *dir);
uint32_t xy_resources_gpus(void);

#endif
