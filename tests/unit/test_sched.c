/*
 * test_sched.c: the scheduler's ready queue: priority order, FIFO within a
 * priority, removal from the middle, and levels that come and go; and
 * which tasks fit a worker, its call window included.
 */
#include <stdlib.h>

#include "harness.h"
#include "internal.h"

static struct xy_task *mk(uint64_t id, double prio)
{
	struct xy_task *t = xy_task_create("true");
	XY_CHECK(t);
	t->id = id;
	xy_task_set_priority(t, prio);
	return t;
}

static void t_fifo_within_priority(void)
{
	struct xy_sched *s = xy_sched_create(NULL);
	struct xy_task *t[5];
	for (int i = 0; i < 5; i++) {
		t[i] = mk(i + 1, 0);
		xy_sched_push(s, t[i]);
	}
	XY_CHECK_EQ(xy_sched_count(s), 5);
	for (int i = 0; i < 5; i++)
		XY_CHECK(xy_sched_pop(s) == t[i]);
	XY_CHECK(xy_sched_pop(s) == NULL);
	XY_CHECK_EQ(xy_sched_count(s), 0);
	xy_sched_destroy(s);
}

static void t_priority_order(void)
{
	struct xy_sched *s = xy_sched_create(NULL);
	double prios[] = {1, 5, -2, 5, 3, 1, 10};
	struct xy_task *t[7];
	for (int i = 0; i < 7; i++) {
		t[i] = mk(i + 1, prios[i]);
		xy_sched_push(s, t[i]);
	}
	/* 10, 5 (first), 5 (second), 3, 1 (first), 1 (second), -2 */
	int want[] = {6, 1, 3, 4, 0, 5, 2};
	for (int i = 0; i < 7; i++)
		XY_CHECK(xy_sched_pop(s) == t[want[i]]);
	xy_sched_destroy(s);
}

static void t_remove_and_front(void)
{
	struct xy_sched *s = xy_sched_create(NULL);
	struct xy_task *a = mk(1, 0), *b = mk(2, 0), *c = mk(3, 0);
	struct xy_task *d = mk(4, 7);
	xy_sched_push(s, a);
	xy_sched_push(s, b);
	xy_sched_push(s, c);
	xy_sched_push(s, d);
	xy_sched_remove(s, b);
	xy_sched_remove(s, d); /* its level empties and goes away */
	XY_CHECK_EQ(xy_sched_count(s), 2);
	xy_sched_push_front(s, c == xy_sched_pop(s) ? c : a);
	XY_CHECK(xy_sched_pop(s) == a);
	xy_sched_push_front(s, a);
	XY_CHECK(xy_sched_pop(s) == a);
	XY_CHECK(xy_sched_pop(s) == c);
	XY_CHECK(xy_sched_pop(s) == NULL);
	xy_sched_destroy(s);
}

/* A one-core worker with a window of 2 takes a command only on a free
 * core, and up to 3 one-core calls without GPUs in all. */
static void t_call_window(void)
{
	struct xy_manager m = {.call_window = 2};
	struct xy_worker w = {.manager = &m, .ready = 1, .cores = 1};
	struct xy_task *cmd = xy_task_create("true");
	struct xy_task *call = xy_task_create_call("lib", "x", 1);
	struct xy_task *gpu = xy_task_create_call("lib", "x", 1);
	struct xy_task *big = xy_task_create_call("lib", "x", 1);
	XY_CHECK(cmd && call && gpu && big);
	xy_task_set_gpus(gpu, 1);
	w.gpus = 1;
	xy_task_set_cores(big, 2);
	XY_CHECK(xy_wtable_fits(&w, cmd) && xy_wtable_fits(&w, call));
	w.cores_used = 1;
	XY_CHECK(!xy_wtable_fits(&w, cmd));
	XY_CHECK(!xy_wtable_fits(&w, gpu));
	XY_CHECK(!xy_wtable_fits(&w, big)); /* more than the worker has */
	XY_CHECK(xy_wtable_fits(&w, call));
	XY_CHECK_EQ(xy_wtable_free_cores(&w), 0);
	w.cores_used = 2;
	XY_CHECK(xy_wtable_fits(&w, call));
	w.cores_used = 3;
	XY_CHECK(!xy_wtable_fits(&w, call));
	XY_CHECK_EQ(xy_wtable_free_cores(&w), -2);
	m.call_window = 0; /* none */
	w.cores_used = 1;
	XY_CHECK(!xy_wtable_fits(&w, call));
	xy_task_delete(cmd);
	xy_task_delete(call);
	xy_task_delete(gpu);
	xy_task_delete(big);
}

static void t_many_levels(void)
{
	struct xy_sched *s = xy_sched_create(NULL);
	enum { N = 2000 };
	static struct xy_task *t[N];
	for (int i = 0; i < N; i++) {
		t[i] = mk(i + 1, (i * 7919) % 101);
		xy_sched_push(s, t[i]);
	}
	double last = 1e9;
	for (int i = 0; i < N; i++) {
		struct xy_task *x = xy_sched_pop(s);
		XY_CHECK(x);
		XY_CHECK(x->priority <= last);
		last = x->priority;
	}
	XY_CHECK(xy_sched_pop(s) == NULL);
	xy_sched_destroy(s);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_fifo_within_priority),
		XY_TEST(t_priority_order),
		XY_TEST(t_remove_and_front),
		XY_TEST(t_many_levels),
		XY_TEST(t_call_window),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
