/*
 * array.c: task arrays. An array stands for n tasks that differ by their
 * index; the manager holds it as one small record (struct xy_array) and
 * makes its tasks, through the caller's make function, only as the
 * scheduler has room for them: in each schedule phase, while fewer than
 * a window of tasks wait or are ready (twice the connected cores, plus
 * ARRAY_SLACK), the next indexes are made and submitted as any task. So
 * an array of a million tasks costs the manager the record and a window
 * of task objects, not a million (docs/workflow.md, "Task arrays").
 * Pairs with manager.c, whose schedule phase calls xy__array_phase.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

/* Tasks made ahead of the cores: enough that no worker waits for the
 * next index to be made. */
#define ARRAY_SLACK 64

struct xy_array {
	struct xy_array *next;
	uint64_t n, made;
	xy_array_make_fn make;
	void *arg;
	void (*release)(void *arg);
};

int xy_manager_submit_array(struct xy_manager *m, uint64_t n,
			    xy_array_make_fn make, void *arg,
			    void (*release)(void *arg), char *err,
			    size_t errlen)
{
	struct xy_array *a, **tail;

	if (!m || !make || n == 0) {
		snprintf(err, errlen, "an array needs a make function and"
			 " at least one task");
		errno = EINVAL;
		return -1;
	}
	a = calloc(1, sizeof *a);
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*a = (struct xy_array){NULL, n, 0, make, arg, release};
	for (tail = &m->arrays; *tail; tail = &(*tail)->next)
		;
	*tail = a;
	/* Outstanding from now: wait returns only once every index has
	 * been made and returned. Each index made is submitted as a task,
	 * which counts itself again. */
	m->n_tasks += (int64_t)n;
	m->sched_dirty = 1;
	return 0;
}

static void array_free(struct xy_array *a)
{
	if (a->release)
		a->release(a->arg);
	free(a);
}

/* Makes and submits array tasks while the window has room. An index whose
 * task cannot be made or submitted is skipped (the make function says
 * why to its caller); ECANCELED from it drops the rest of the array. */
void xy__array_phase(struct xy_manager *m)
{
	int64_t window, queued, cores = 0, room;
	int busy;
	char err[512];

	if (!m->arrays)
		return;
	xy_wtable_count(m->wtable, &busy, &cores, NULL);
	window = 2 * cores + ARRAY_SLACK;
	queued = m->n_waiting + xy_sched_count(m->sched);
	room = window - queued;
	while (room > 0 && m->arrays) {
		struct xy_array *a = m->arrays;
		struct xy_task *t;

		if (a->made == a->n) {
			m->arrays = a->next;
			array_free(a);
			continue;
		}
		err[0] = 0;
		m->n_tasks--; /* submit counts it again */
		t = a->make(a->arg, a->made++, err, sizeof err);
		if (!t && errno == ECANCELED) {
			m->n_tasks -= (int64_t)(a->n - a->made);
			a->made = a->n;
			continue;
		}
		if (t && !xy_manager_submit(m, t, err, sizeof err)) {
			XY_LOGW("manager", "array task %llu not submitted: %s",
			       (unsigned long long)(a->made - 1), err);
			xy_task_delete(t);
			continue;
		}
		if (t)
			room--;
	}
}

/* Indexes of every array not made yet: tasks that wait, counted
 * nowhere else (status, the dashboard and /metrics add them to the
 * waiting). O(arrays), which are few. */
int64_t xy__array_pending(const struct xy_manager *m)
{
	int64_t n = 0;

	for (const struct xy_array *a = m->arrays; a; a = a->next)
		n += (int64_t)(a->n - a->made);
	return n;
}

/* Frees the arrays' records at destroy. */
void xy__array_destroy(struct xy_manager *m)
{
	while (m->arrays) {
		struct xy_array *a = m->arrays;

		m->arrays = a->next;
		array_free(a);
	}
}

size_t xy__array_record_size(void)
{
	return sizeof(struct xy_array);
}
