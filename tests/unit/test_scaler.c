/*
 * test_scaler.c: unit tests for the scaler's plan (scaler.h): how many
 * workers each pool asks for, given its node, its counts and the queued
 * demand by shape.
 */
#include <string.h>

#include "harness.h"
#include "scaler.h"

static struct xy_pool pool(const char *name, int cores, int gpus,
			   int64_t memory, int backlog, int max)
{
	struct xy_pool p = {.node = {cores, gpus, memory, 0},
			    .backlog = backlog, .max_workers = max};
	snprintf(p.name, sizeof p.name, "%s", name);
	return p;
}

static struct xy_demand shape(int cores, int gpus, int64_t memory,
			      int64_t count)
{
	struct xy_demand d = {{cores, gpus, memory, 0, 0}, count, 0};
	return d;
}

static void plan(const struct xy_pool *pools, const struct xy_pool_count *c,
		 int n_pools, const struct xy_demand *d, size_t n,
		 struct xy_plan *out)
{
	XY_CHECK_EQ(xy_scaler_plan(pools, c, n_pools, d, n, out), 0);
}

/* A burst of one-core tasks on 8-core nodes: as many nodes as the tasks
 * fill, up to the backlog; the rest wait. */
static void t_burst(void)
{
	struct xy_pool p = pool("cpu", 8, 0, 16000, 100, 100);
	struct xy_pool_count c = {0, 0};
	struct xy_demand d = shape(1, 0, 0, 240);
	struct xy_plan out;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 30);
	XY_CHECK_EQ(out.placed[0], 240);
	XY_CHECK_EQ(out.waiting, 0);
	XY_CHECK(strstr(out.why[0], "asked for 30"));
	/* A backlog of 10: ten at a time. */
	p.backlog = 10;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 10);
	XY_CHECK_EQ(out.placed[0], 80);
	XY_CHECK_EQ(out.waiting, 160);
	/* Those ten pending: none more until they connect. */
	c.pending = 10;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 0);
	XY_CHECK_EQ(out.cancel[0], 0);
	XY_CHECK(strstr(out.why[0], "backlog"));
	/* Connected, they took their share; the rest asks for more. */
	c.connected = 10;
	c.pending = 0;
	d.count = 160;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 10);
	/* The maximum: 18 of 20 connected leaves two. */
	p.max_workers = 20;
	c.connected = 18;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 2);
	c.connected = 20;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 0);
	XY_CHECK_EQ(out.waiting, 160);
}

/* Pending workers are filled before new ones are asked for. */
static void t_pending_first(void)
{
	struct xy_pool p = pool("cpu", 8, 0, 0, 100, 0);
	struct xy_pool_count c = {0, 3};
	struct xy_demand d = shape(2, 0, 0, 20); /* 4 a node: 5 nodes */
	struct xy_plan out;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 2);
	XY_CHECK_EQ(out.cancel[0], 0);
	XY_CHECK_EQ(out.placed[0], 20);
}

/* GPU tasks go only to the GPU pool; CPU tasks go to it only when no
 * CPU pool fits them. */
static void t_gpu_pools(void)
{
	struct xy_pool pools[2] = {pool("cpu", 8, 0, 0, 10, 0),
				   pool("gpu", 8, 2, 0, 10, 0)};
	struct xy_pool_count c[2] = {{0, 0}, {0, 0}};
	struct xy_demand d[2] = {shape(1, 0, 0, 10), shape(1, 1, 0, 4)};
	struct xy_plan out;
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.submit[0], 2);
	XY_CHECK_EQ(out.submit[1], 2); /* two GPUs a node */
	XY_CHECK_EQ(out.placed[0], 10);
	XY_CHECK_EQ(out.placed[1], 4);
	/* A CPU task too big for the CPU pool's node, not for the GPU
	 * pool's: there. */
	pools[1].node.cores = 32;
	d[0] = shape(16, 0, 0, 2);
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.submit[0], 0);
	XY_CHECK_EQ(out.placed[1], 6);
	/* GPU tasks never start a CPU pool's job, even when the GPU pool
	 * is at its maximum. */
	pools[1].max_workers = 1;
	c[1].connected = 1;
	d[0] = shape(1, 0, 0, 0);
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.submit[0], 0);
	XY_CHECK_EQ(out.submit[1], 0);
	XY_CHECK_EQ(out.waiting, 4);
}

/* A shape no pool's node could ever run is reported, never asked for. */
static void t_unfit(void)
{
	struct xy_pool pools[2] = {pool("cpu", 8, 0, 16000, 10, 0),
				   pool("gpu", 8, 2, 32000, 10, 0)};
	struct xy_pool_count c[2] = {{0, 0}, {0, 0}};
	struct xy_demand d[4] = {shape(16, 0, 0, 3), shape(1, 4, 0, 2),
				 shape(1, 0, 64000, 1), shape(1, 0, 0, 1)};
	struct xy_plan out;
	plan(pools, c, 2, d, 4, &out);
	XY_CHECK_EQ(out.n_unfit, 3);
	XY_CHECK_EQ(out.unfit_tasks, 6);
	int seen[4] = {0};
	for (size_t i = 0; i < out.n_unfit; i++)
		seen[out.unfit[i]] = 1;
	XY_CHECK(seen[0] && seen[1] && seen[2] && !seen[3]);
	XY_CHECK_EQ(out.submit[0], 1);
	XY_CHECK_EQ(out.submit[1], 0);
}

/* Shapes share nodes, largest first, every dimension counted. */
static void t_packing(void)
{
	struct xy_pool p = pool("cpu", 8, 0, 16000, 100, 0);
	struct xy_pool_count c = {0, 0};
	/* 3 x 4 cores: two nodes, the second half full; 5 x 1 core: four
	 * fill that half, one needs a third node. */
	struct xy_demand d[2] = {shape(1, 0, 0, 5), shape(4, 0, 0, 3)};
	struct xy_plan out;
	plan(&p, &c, 1, d, 2, &out);
	XY_CHECK_EQ(out.submit[0], 3);
	/* Memory: two 6,000 MB tasks a 16,000 MB node, cores to spare. */
	struct xy_demand m = shape(1, 0, 6000, 4);
	plan(&p, &c, 1, &m, 1, &out);
	XY_CHECK_EQ(out.submit[0], 2);
}

/* Pending workers no task needs are cancelled, down to the minimum;
 * a pool is brought up to its minimum with no demand. */
static void t_cancel_and_minimum(void)
{
	struct xy_pool p = pool("cpu", 8, 0, 0, 10, 0);
	struct xy_pool_count c = {0, 5};
	struct xy_demand d = shape(1, 0, 0, 8);
	struct xy_plan out;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.submit[0], 0);
	XY_CHECK_EQ(out.cancel[0], 4);
	p.min_workers = 3;
	plan(&p, &c, 1, &d, 1, &out);
	XY_CHECK_EQ(out.cancel[0], 2);
	c.pending = 0;
	plan(&p, &c, 1, NULL, 0, &out);
	XY_CHECK_EQ(out.submit[0], 3);
	XY_CHECK_EQ(out.cancel[0], 0);
	c.connected = 3;
	plan(&p, &c, 1, NULL, 0, &out);
	XY_CHECK_EQ(out.submit[0], 0);
	XY_CHECK(strstr(out.why[0], "no queued task"));
}

/* Of two pools that fit, the higher priority's first. */
static void t_priority(void)
{
	struct xy_pool pools[2] = {pool("low", 8, 0, 0, 1, 0),
				   pool("high", 8, 0, 0, 1, 0)};
	struct xy_pool_count c[2] = {{0, 0}, {0, 0}};
	struct xy_demand d = shape(1, 0, 0, 8);
	struct xy_plan out;
	pools[1].priority = 1;
	plan(pools, c, 2, &d, 1, &out);
	XY_CHECK_EQ(out.submit[1], 1);
	XY_CHECK_EQ(out.submit[0], 0);
	d.count = 9; /* one more: the other pool too */
	plan(pools, c, 2, &d, 1, &out);
	XY_CHECK_EQ(out.submit[1], 1);
	XY_CHECK_EQ(out.submit[0], 1);
}

/* A pool's walltime must exceed a task's time limit by the slack: a
 * shape limited to 600 s never goes to a pool of 300 s, and fits no pool
 * when that is the only one; without a limit, any pool's walltime will
 * do, and a pool without a walltime takes any limit. */
static void t_walltime(void)
{
	struct xy_pool pools[2] = {pool("short", 8, 0, 0, 10, 10),
				   pool("long", 8, 0, 0, 10, 10)};
	struct xy_pool_count c[2] = {{0, 0}, {0, 0}};
	struct xy_demand d[2] = {shape(1, 0, 0, 8), shape(1, 0, 0, 8)};
	struct xy_plan out;
	pools[0].node.time = 300;
	pools[0].priority = 1; /* preferred, where it fits */
	pools[1].node.time = 3600;
	d[0].need.time = 600;
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.submit[0], 1); /* the 8 without a limit */
	XY_CHECK_EQ(out.placed[0], 8);
	XY_CHECK_EQ(out.submit[1], 1); /* the 8 of 600 s */
	XY_CHECK_EQ(out.placed[1], 8);
	XY_CHECK_EQ(out.n_unfit, 0);
	/* Exactly the slack: fits; a second less: does not. */
	d[0].need.time = 300 - XY_WALLTIME_SLACK_S;
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.placed[0], 16);
	d[0].need.time = 301 - XY_WALLTIME_SLACK_S;
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.placed[0], 8);
	XY_CHECK_EQ(out.placed[1], 8);
	/* Past every walltime: unfit, named so that its tasks fail. */
	d[0].need.time = 4000;
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.n_unfit, 1);
	XY_CHECK_EQ(out.unfit[0], 0);
	XY_CHECK_EQ(out.unfit_tasks, 8);
	XY_CHECK_EQ(out.submit[1], 0);
	/* A pool without a walltime takes it. */
	pools[1].node.time = 0;
	plan(pools, c, 2, d, 2, &out);
	XY_CHECK_EQ(out.n_unfit, 0);
	XY_CHECK_EQ(out.placed[1], 8);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_burst),
		XY_TEST(t_pending_first),
		XY_TEST(t_gpu_pools),
		XY_TEST(t_unfit),
		XY_TEST(t_packing),
		XY_TEST(t_cancel_and_minimum),
		XY_TEST(t_priority),
		XY_TEST(t_walltime),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
