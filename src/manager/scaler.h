/*
 * scaler.h: the scaler's plan (scaler.c), a part of the manager that
 * decides how many workers each pool should ask its batch system for. It
 * is a pure function of the pools, the workers each pool has connected
 * and pending, and the queued demand grouped by shape; the manager feeds
 * it after each scheduling round, so that the demand is what no
 * connected worker could take now (docs/scaling.md, "The plan").
 */
#ifndef XY_MANAGER_SCALER_H
#define XY_MANAGER_SCALER_H

#include <stddef.h>
#include <stdint.h>

#define XY_POOLS_MAX 16

/* A pool's walltime must exceed a task's time limit by this many
 * seconds for its workers to take the task: a worker connects a few
 * seconds into its job, keeps the end of its walltime for handing back
 * what runs (its drain lead less its grace: 10 s in a slurm pool's
 * jobs), and the manager places a task only with XY_TIME_MARGIN_S to
 * spare (wtable.h). */
#define XY_WALLTIME_SLACK_S 30.0

/* What a task asks for, or what a node offers. Memory and disk in MB;
 * 0 memory or disk in a node: not limited. time: a task's time limit,
 * or a node's walltime, in seconds; 0: none. */
struct xy_res {
	int cores, gpus;
	int64_t memory, disk;
	double time;
};

/* A pool: a batch-system target whose jobs each bring one worker of
 * shape `node`. */
struct xy_pool {
	char name[64];
	struct xy_res node; /* node.time: the jobs' walltime */
	int min_workers, max_workers;
	int backlog; /* jobs that may be pending at once */
	int priority; /* higher first, when several pools fit a task */
};

/* A pool's workers now: connected (ready), and pending (submitted, not
 * yet connected). */
struct xy_pool_count {
	int connected, pending;
};

/* Queued tasks of one shape: what each asks for (the largest of the
 * shape, for memory, disk and time limit), and how many (a batch of calls
 * counts as its calls). */
struct xy_demand {
	struct xy_res need;
	int64_t count;
	uint64_t shape; /* the scheduler's id for it (xy_sched_shape_tasks) */
};

struct xy_plan {
	int submit[XY_POOLS_MAX]; /* jobs to submit */
	int cancel[XY_POOLS_MAX]; /* pending jobs no queued task needs */
	/* Tasks placed on each pool's pending and new workers. */
	int64_t placed[XY_POOLS_MAX];
	/* Shapes that fit no pool's node (indexes into the demand), and
	 * the tasks of those. */
	size_t unfit[XY_POOLS_MAX];
	size_t n_unfit;
	int64_t unfit_tasks;
	/* Tasks that fit some pool, left over because every pool that fits
	 * them is at its backlog or its maximum. */
	int64_t waiting;
	char why[XY_POOLS_MAX][160]; /* for status: why each pool's figure */
};

/* The plan for pools[0..n_pools) given counts[] and demand[0..n): jobs
 * to submit and pending jobs to cancel, per pool. A shape goes to the
 * pools whose node fits it, highest priority first; a shape without GPUs
 * goes to a pool with GPUs only if no pool without them fits it. Within
 * a pool, the shapes fill the pending workers first, then new ones (as
 * many as the backlog and the maximum allow), the largest shapes first.
 * A pool is brought up to min_workers whatever the demand. Cost: O(S log
 * S + S x P x B) for S shapes, P pools and B new or pending workers a
 * pool may have, whatever the number of tasks or connected workers.
 * 0, or -1 (ENOMEM) with *out empty: nothing to do this time. */
int xy_scaler_plan(const struct xy_pool *pools,
		   const struct xy_pool_count *counts, int n_pools,
		   const struct xy_demand *demand, size_t n, struct xy_plan *out);

/* 1 if a node of shape `node` could ever run a task that asks `need`:
 * its walltime, if it has one, longer than the task's time limit by
 * XY_WALLTIME_SLACK_S. */
int xy_res_fits(const struct xy_res *node, const struct xy_res *need);

#endif
