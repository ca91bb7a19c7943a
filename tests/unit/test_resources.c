/*
 * test_resources.c: unit tests for resources.h: what a worker offers,
 * from a Slurm job's variables (fed from a table, not the environment),
 * from the machine, and from flags, which win.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "resources.h"

/* The variables the function under test sees: NAME=VALUE strings. */
static const char *const *fake_env;

static char *fake_getenv(const char *name)
{
	size_t n = strlen(name);

	for (const char *const *e = fake_env; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return (char *)*e + n + 1;
	return NULL;
}

/* Finds r's resources other than those `given`, with env as the
 * environment; returns what xy_resources_find does. */
static int find(struct xy_resources *r, unsigned given,
		const char *const *env)
{
	fake_env = env;
	return xy_resources_find(r, given, xy_test_tmpdir(), fake_getenv);
}

static void check_ids(const struct xy_resources *r, const char *want)
{
	if (!want) {
		XY_CHECK(!r->gpu_ids);
		return;
	}
	XY_CHECK(r->gpu_ids);
	if (strcmp(r->gpu_ids, want)) {
		fprintf(stderr, "gpu ids '%s', not '%s'\n", r->gpu_ids, want);
		exit(1);
	}
}

static void t_outside_a_job(void)
{
	static const char *const env[] = {"SLURM_CPUS_ON_NODE=64", NULL};
	struct xy_resources r = {0};

	/* Slurm's variables without a job id are not a job's. */
	XY_CHECK_EQ(find(&r, 0, env), 0);
	XY_CHECK(r.cores >= 1);
	XY_CHECK_EQ(r.cores, xy_resources_cores());
	XY_CHECK_EQ(r.memory_mb, xy_resources_memory_mb());
	XY_CHECK(r.memory_mb > 0);
	XY_CHECK(r.disk_mb > 0);
	XY_CHECK_EQ(r.gpus, xy_resources_gpus());
	check_ids(&r, NULL);
	xy_resources_clear(&r);
}

/* Finds the resources env gives, with no flags, and checks them: cores,
 * memory, GPUs and the GPUs' ids (NULL: indices). */
static void check_found(const char *const *env, int in_job, uint32_t cores,
			uint64_t memory_mb, uint32_t gpus, const char *ids)
{
	struct xy_resources r = {0};

	XY_CHECK_EQ(find(&r, 0, env), in_job);
	XY_CHECK_EQ(r.cores, cores);
	XY_CHECK_EQ(r.memory_mb, memory_mb);
	XY_CHECK_EQ(r.gpus, gpus);
	check_ids(&r, ids);
	/* Disk is never the job's. */
	XY_CHECK_EQ(r.disk_mb, xy_resources_disk_mb(xy_test_tmpdir()));
	xy_resources_clear(&r);
}

static void t_job_allocation(void)
{
	static const char *const env[] = {
		"SLURM_JOB_ID=12", "SLURM_CPUS_ON_NODE=4",
		"SLURM_MEM_PER_NODE=2000", "SLURM_GPUS_ON_NODE=2", NULL};

	/* Slurm named no ids (gres without device files): indices. */
	check_found(env, 1, 4, 2000, 2, NULL);
}

static void t_job_memory_per_cpu_and_defaults(void)
{
	static const char *const per_cpu[] = {
		"SLURM_JOB_ID=3", "SLURM_CPUS_ON_NODE=3",
		"SLURM_MEM_PER_CPU=500", NULL};
	static const char *const bare[] = {"SLURM_JOB_ID=4", NULL};

	/* A job that asked for no GPUs offers none of the node's. */
	check_found(per_cpu, 1, 3, 1500, 0, NULL);
	/* A job that says nothing: the machine's cores and memory. */
	check_found(bare, 1, xy_resources_cores(), xy_resources_memory_mb(),
		    0, NULL);
}

static void t_job_bad_values(void)
{
	static const char *const env[] = {
		"SLURM_JOB_ID=5", "SLURM_CPUS_ON_NODE=4x",
		"SLURM_MEM_PER_NODE=-1", "SLURM_GPUS_ON_NODE=lots", NULL};

	check_found(env, 1, xy_resources_cores(), xy_resources_memory_mb(),
		    0, NULL);
}

/* check_found for the GPUs alone: cores and memory the machine's. */
static void check_gpus(const char *const *env, int in_job, uint32_t gpus,
		       const char *ids)
{
	check_found(env, in_job, xy_resources_cores(),
		    xy_resources_memory_mb(), gpus, ids);
}

static void t_job_gpu_ids(void)
{
	static const char *const job[] = {
		"SLURM_JOB_ID=6", "SLURM_GPUS_ON_NODE=2",
		"SLURM_JOB_GPUS=2,3", NULL};
	static const char *const step[] = {
		"SLURM_JOB_ID=6", "SLURM_GPUS_ON_NODE=2",
		"SLURM_JOB_GPUS=0,1,2,3", "SLURM_STEP_GPUS=3,1", NULL};
	static const char *const cvd[] = {
		"SLURM_JOB_ID=6", "SLURM_JOB_GPUS=2,3",
		"CUDA_VISIBLE_DEVICES=GPU-a1,GPU-b2", NULL};
	static const char *const short_list[] = {
		"SLURM_JOB_ID=6", "SLURM_GPUS_ON_NODE=2",
		"SLURM_JOB_GPUS=5", NULL};

	check_gpus(job, 1, 2, "2,3");
	/* The step's GPUs over the job's; as many as the job has here. */
	check_gpus(step, 1, 2, "3,1");
	/* CUDA_VISIBLE_DEVICES over both; without SLURM_GPUS_ON_NODE the
	 * count is that of the ids. */
	check_gpus(cvd, 1, 2, "GPU-a1,GPU-b2");
	/* Fewer ids than GPUs: indices, not half a list. */
	check_gpus(short_list, 1, 2, NULL);
}

static void t_visible_devices_outside_a_job(void)
{
	static const char *const cut[] = {"CUDA_VISIBLE_DEVICES=0,2,-1,3",
					  NULL};
	static const char *const trailing[] = {"CUDA_VISIBLE_DEVICES=4,", NULL};
	static const char *const none[] = {"CUDA_VISIBLE_DEVICES=", NULL};
	static const char *const nodev[] = {"CUDA_VISIBLE_DEVICES=NoDevFiles",
					    NULL};

	/* CUDA reads up to the first invalid entry. */
	check_gpus(cut, 0, 2, "0,2");
	check_gpus(trailing, 0, 1, "4");
	/* Set and empty: no GPU is visible, whatever /dev holds. */
	check_gpus(none, 0, 0, NULL);
	check_gpus(nodev, 0, 0, NULL);
}

static void t_flags_win(void)
{
	static const char *const env[] = {
		"SLURM_JOB_ID=7", "SLURM_CPUS_ON_NODE=8",
		"SLURM_MEM_PER_NODE=16000", "SLURM_GPUS_ON_NODE=2",
		"CUDA_VISIBLE_DEVICES=5,7", NULL};
	struct xy_resources r = {0};

	r.cores = 1;
	r.memory_mb = 100;
	r.disk_mb = 50;
	r.gpus = 1;
	XY_CHECK_EQ(find(&r, XY_RES_CORES | XY_RES_MEMORY | XY_RES_DISK |
				     XY_RES_GPUS,
			 env),
		    1);
	XY_CHECK_EQ(r.cores, 1);
	XY_CHECK_EQ(r.memory_mb, 100);
	XY_CHECK_EQ(r.disk_mb, 50);
	XY_CHECK_EQ(r.gpus, 1);
	/* The first of the ids the job names. */
	check_ids(&r, "5");
	xy_resources_clear(&r);
	/* Some flags: the rest from the job. */
	r.cores = 2;
	XY_CHECK_EQ(find(&r, XY_RES_CORES, env), 1);
	XY_CHECK_EQ(r.cores, 2);
	XY_CHECK_EQ(r.memory_mb, 16000);
	XY_CHECK_EQ(r.gpus, 2);
	check_ids(&r, "5,7");
	xy_resources_clear(&r);
	/* More GPUs by flag than the job names: indices. */
	r.gpus = 3;
	XY_CHECK_EQ(find(&r, XY_RES_GPUS, env), 1);
	XY_CHECK_EQ(r.gpus, 3);
	check_ids(&r, NULL);
	xy_resources_clear(&r);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_outside_a_job),
		XY_TEST(t_job_allocation),
		XY_TEST(t_job_memory_per_cpu_and_defaults),
		XY_TEST(t_job_bad_values),
		XY_TEST(t_job_gpu_ids),
		XY_TEST(t_visible_devices_outside_a_job),
		XY_TEST(t_flags_win),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
