/*
 * pools.h: pools, a sub-context of the manager (pools.c). A pool is a
 * batch-system target (a provider: "local", "slurm", "gridengine", or
 * "external": the application's, through hooks) whose jobs each
 * bring one worker shaped like the pool's node. After each scheduling
 * round the scaler's plan (scaler.h) says how many jobs each pool should
 * have; this module submits, watches, cancels and releases them
 * (docs/scaling.md). Only files under src/manager include it.
 */
#ifndef XY_MANAGER_POOLS_H
#define XY_MANAGER_POOLS_H

#include <jansson.h>
#include <stddef.h>

struct xy_manager;
struct xy_pool_options;
struct xy_pools;
struct xy_worker;

/* NULL with errno set if memory is short. */
struct xy_pools *xy_pools_create(struct xy_manager *m);
/* Cancels every job still pending or running (waiting for the batch
 * system's answer, at most a few seconds), then frees everything. */
void xy_pools_destroy(struct xy_pools *ps);

/* Adds a pool: 0, or -1 with the reason in err. */
int xy_pools_add(struct xy_pools *ps, const struct xy_pool_options *o,
		 char *err, size_t errlen);
int xy_pools_count(const struct xy_pools *ps);

/* After a scheduling round: plans, and submits or cancels jobs (at most
 * once every few milliseconds, whatever the number of rounds). */
void xy_pools_phase(struct xy_pools *ps);
/* w said HELLO: if a pool's job brought it, the job is now connected. */
void xy_pools_worker_ready(struct xy_pools *ps, struct xy_worker *w);
/* w is going: its job, if any, is over. */
void xy_pools_worker_gone(struct xy_pools *ps, struct xy_worker *w);

/* An external pool's answer for job (xy_manager_pool_job): 0, or -1 if
 * no external pool has it. */
int xy_pools_job_answer(struct xy_pools *ps, const char *job, const char *id,
			const char *why);

/* The pools for status: each with its jobs, counts and last reason. */
json_t *xy_pools_status(const struct xy_pools *ps);

#endif
