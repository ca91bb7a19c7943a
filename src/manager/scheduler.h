/*
 * scheduler.h: the scheduler, a sub-context of the manager (sched.c). It
 * holds the ready queue, grouped by resource shape, and places ready
 * tasks on free workers. Only files under src/manager include it.
 */
#ifndef XY_MANAGER_SCHEDULER_H
#define XY_MANAGER_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "scaler.h"

struct xy_manager;
struct xy_sched;
struct xy_task;
struct xy_worker;

/* What a round does with a task and the worker chosen for it. The
 * defaults are the transfer planner's and the manager's; a unit test sets
 * its own, so that a round runs without connections. */
struct xy_sched_ops {
	/* 1: every input t lacks on w can be fetched now; 0: not now (the
	 * planner's limits); -1: some input has no source at all. */
	int (*can_stage)(void *arg, struct xy_task *t, struct xy_worker *w);
	/* Sends t's fetches and t to w; t leaves the queue for good. */
	void (*dispatch)(void *arg, struct xy_task *t, struct xy_worker *w);
	/* t cannot be staged anywhere: the manager decides what is next. */
	void (*requeue)(void *arg, struct xy_task *t);
	void *arg;
};

/* A scheduler for m (NULL in tests of the queue alone), with the real
 * operations. NULL with errno set if memory is short. */
struct xy_sched *xy_sched_create(struct xy_manager *m);
void xy_sched_destroy(struct xy_sched *s);
void xy_sched_set_ops(struct xy_sched *s, const struct xy_sched_ops *ops);

/* Queues t at the back of its shape and priority; -1 (ENOMEM) if a new
 * shape or level could not be made, and t is not queued. */
int xy_sched_push(struct xy_sched *s, struct xy_task *t);
/* The task that runs first of all queued: highest priority, then first
 * queued, across every shape. NULL if none. */
struct xy_task *xy_sched_pop(struct xy_sched *s);
/* Takes t out of the queue, wherever it is; nothing if it is not in. */
void xy_sched_remove(struct xy_sched *s, struct xy_task *t);
int64_t xy_sched_count(const struct xy_sched *s);
/* The queue by shape, for the scaler: what each shape's tasks ask for
 * (the most of any, for memory and disk) and how many are queued (in
 * calls: a batch counts as the calls it carries, xy_task_set_calls), into
 * out[0..max). Returns the number of shapes, which may be more than max:
 * O(shapes + the table's buckets), whatever the number of tasks. */
size_t xy_sched_demand(const struct xy_sched *s, struct xy_demand *out,
		       size_t max);
/* The queued tasks of the shape whose id xy_sched_demand gave, into a
 * malloc'd *out; their number (0 if the shape has emptied, or memory is
 * short). O(shapes + its tasks). */
size_t xy_sched_shape_tasks(const struct xy_sched *s, uint64_t shape,
			    struct xy_task ***out);
/* The shape's memory, disk and time limit made again the most its tasks
 * ask for
 * (they only grow as tasks come): after some of them left. */
void xy_sched_shape_refit(struct xy_sched *s, uint64_t shape);
/* Distinct shapes with queued tasks (for tests and status). */
uint32_t xy_sched_shapes(const struct xy_sched *s);

/* One scheduling round: places ready tasks on free workers, in priority
 * order across shapes, passing over the shapes that no free worker fits.
 * Returns the number placed. */
int xy_sched_round(struct xy_sched *s);
/* Tasks placed so far, the seconds spent choosing where (rounds less
 * their sends) and the seconds spent sending them (ops.dispatch). */
void xy_sched_stats(const struct xy_sched *s, int64_t *decisions,
		    double *seconds, double *send_seconds);
/* The worker chosen for t, or NULL: among those that hold some of its
 * inputs, where it can start now, then the most input bytes, then the
 * most free cores; else the first free worker where it can start now;
 * for a call, else the first with room in its call window. */
struct xy_worker *xy_sched_choose(struct xy_sched *s, struct xy_task *t);

#endif
