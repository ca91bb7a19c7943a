/*
 * tasks_lost.c: a worker's tasks when its manager is lost (tasks.h,
 * docs/durability.md, "Workers outlive their manager"): held under ids
 * of the worker's own, listed for HELLO, renamed by ADOPT. Split from
 * tasks.c, whose task table it works on (tasks_int.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"
#include "tasks_int.h"

int xy_tasks_rekey(struct xy_tasks *ts, uint64_t old, uint64_t new_id)
{
	struct task *t = *xy_tasks_slot(ts, old);
	if (!t) {
		errno = ENOENT;
		return -1;
	}
	if (*xy_tasks_slot(ts, new_id)) {
		errno = EEXIST;
		return -1;
	}
	xy_tasks_table_del(t);
	t->spec.task_id = new_id;
	xy_tasks_table_put(t);
	return 0;
}

size_t xy_tasks_hold_all(struct xy_tasks *ts, uint64_t (*next_id)(void *),
			 void *arg)
{
	struct task *t, *next, *all = NULL;
	size_t held = 0;

	/* The table is rebuilt: a task moves to its new id's bucket. */
	for (size_t i = 0; i < TBUCKETS; i++) {
		for (t = ts->table[i]; t; t = next) {
			next = t->hnext;
			t->hnext = all;
			all = t;
		}
		ts->table[i] = NULL;
	}
	for (t = all; t; t = next) {
		next = t->hnext;
		if (xy_key_set(t->spec.key) &&
		    !(t->spec.task_id & XY_HELD_BIT)) {
			t->spec.task_id = next_id(arg);
			held++;
		}
		xy_tasks_table_put(t);
	}
	/* Those without a key keep the lost manager's ids: cancelled (a
	 * cancel takes the task out of the table, so each bucket is walked
	 * again from its head), so that none meets an id of the next one. */
	for (size_t i = 0; i < TBUCKETS; i++) {
		int again = 1;
		while (again) {
			again = 0;
			for (t = ts->table[i]; t; t = t->hnext)
				if (!(t->spec.task_id & XY_HELD_BIT)) {
					xy_tasks_cancel(ts, t->spec.task_id);
					again = 1;
					break;
				}
		}
	}
	return held;
}

int64_t xy_tasks_held(struct xy_tasks *ts, struct xy_held_task **out)
{
	struct xy_held_task *v = NULL;
	size_t n = 0;
	struct task *t;

	*out = NULL;
	if (ts->count && !(v = calloc(ts->count, sizeof *v)))
		return -1;
	for (size_t i = 0; i < TBUCKETS; i++)
		for (t = ts->table[i]; t; t = t->hnext) {
			if (!(t->spec.task_id & XY_HELD_BIT))
				continue;
			struct xy_held_task *h = &v[n++];
			h->id = t->spec.task_id;
			memcpy(h->key, t->spec.key, XY_ID_LEN);
			h->cores = t->spec.cores;
			h->memory_mb = t->spec.memory_mb;
			h->disk_mb = t->spec.disk_mb;
			h->gpus = t->spec.gpus;
		}
	if (!n) {
		free(v);
		v = NULL;
	}
	*out = v;
	return (int64_t)n;
}

