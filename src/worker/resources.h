/*
 * resources.h: what a worker offers: cores, memory, disk and GPUs, given by
 * `xylem worker` flags, else by the Slurm job the worker runs in, else
 * detected from the machine. The worker sends these in HELLO (worker.c);
 * the manager schedules against them, and tasks.c hands out the GPU ids.
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
	/* One id per GPU, comma-separated, as CUDA_VISIBLE_DEVICES takes
	 * them ("2,3", or UUIDs); malloc'd. NULL: the indices 0 to
	 * gpus - 1. */
	char *gpu_ids;
};

/* The resources a command line gave (bits of `given`). */
enum {
	XY_RES_CORES = 1 << 0,
	XY_RES_MEMORY = 1 << 1,
	XY_RES_DISK = 1 << 2,
	XY_RES_GPUS = 1 << 3,
};

/* Looks up an environment variable: getenv, or a test's own table. */
typedef char *(*xy_resources_getenv_fn)(const char *name);

/* Completes r: the resources named in `given` are kept as they are, the
 * others are found. Inside a Slurm job (SLURM_JOB_ID set) they come from
 * the job's allocation on this node: cores from SLURM_CPUS_ON_NODE;
 * memory from SLURM_MEM_PER_NODE (MB), else SLURM_MEM_PER_CPU times those
 * cores; GPUs from SLURM_GPUS_ON_NODE, else the count of the job's GPU
 * ids, else none (a job that asked for no GPUs offers none of the
 * node's). What the job does not say, and everything outside a job,
 * comes from the machine (the probes below; disk always does, under
 * dir). Outside a job, a set CUDA_VISIBLE_DEVICES gives the GPU count.
 *
 * The GPU ids are the entries of CUDA_VISIBLE_DEVICES, else, in a job,
 * of SLURM_STEP_GPUS, else of SLURM_JOB_GPUS, up to the first empty or
 * negative one (where CUDA stops reading); they are kept when they name
 * at least r->gpus GPUs (the first r->gpus of them), and dropped (ids 0
 * to gpus - 1) otherwise. get is getenv in the worker. Returns 1 if a
 * resource came from a Slurm job, 0 if none did, -1 on ENOMEM. Free
 * r->gpu_ids with xy_resources_clear. */
int xy_resources_find(struct xy_resources *r, unsigned given,
		      const char *dir, xy_resources_getenv_fn get);

/* Frees r->gpu_ids and zeroes r. */
void xy_resources_clear(struct xy_resources *r);

/* The machine's probes: online cores (sysconf), MemTotal of
 * /proc/meminfo, the space available to an unprivileged user on the file
 * system holding dir (statvfs), and the number of /dev/nvidia<N> devices.
 * Each returns 0 when it cannot tell. */
uint32_t xy_resources_cores(void);
uint64_t xy_resources_memory_mb(void);
uint64_t xy_resources_disk_mb(const char *dir);
uint32_t xy_resources_gpus(void);

#endif
