/*
 * test_sched.c: the scheduler's ready queue: priority order, FIFO within a
 * priority, across shapes too, removal from the middle, and levels and
 * shapes that come and go; which tasks fit a worker, its call window
 * included; and placement by rounds, on workers that are records with no
 * connection and operations that record what a round would send: a
 * shape that fits no free worker does not hold up the others, priorities
 * hold across shapes, the worker holding a task's inputs is chosen, and a
 * worker whose disk was full is passed over until its mark expires on the
 * manager's clock (a fake one: no test sleeps).
 */
#include <stdlib.h>
#include <string.h>

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

static void t_remove_from_the_middle(void)
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

/* Tasks of several shapes come out by priority, then in the order they
 * were queued, whatever their shapes. */
static void t_order_across_shapes(void)
{
	struct xy_sched *s = xy_sched_create(NULL);
	struct xy_task *t[6];
	int cores[] = {1, 2, 1, 4, 2, 1};
	double prio[] = {0, 0, 5, 0, 5, 0};
	for (int i = 0; i < 6; i++) {
		t[i] = mk(i + 1, prio[i]);
		xy_task_set_cores(t[i], cores[i]);
		XY_CHECK_EQ(xy_sched_push(s, t[i]), 0);
	}
	XY_CHECK_EQ(xy_sched_shapes(s), 3);
	int want[] = {2, 4, 0, 1, 3, 5};
	for (int i = 0; i < 6; i++)
		XY_CHECK(xy_sched_pop(s) == t[want[i]]);
	XY_CHECK_EQ(xy_sched_shapes(s), 0); /* each freed as it emptied */
	for (int i = 0; i < 6; i++)
		xy_task_delete(t[i]);
	xy_sched_destroy(s);
}

/* ------------------------------------------------------------ placement */

static double fake_now = 5000;

static double fake_clock(void)
{
	return fake_now;
}

struct place {
	struct xy_manager m;
	struct xy_task *placed[64];
	struct xy_worker *on[64];
	int n_placed, n_staged;
	struct xy_task *requeued[8];
	int n_requeued;
};

/* Staging as the planner would answer it: tasks tagged "later" cannot
 * be staged now, tasks tagged "nowhere" have an input with no source. */
static int fake_can_stage(void *arg, struct xy_task *t, struct xy_worker *w)
{
	struct place *p = arg;
	p->n_staged++;
	if (t->tag && !strcmp(t->tag, "later"))
		return 0;
	if (t->tag && !strcmp(t->tag, "nowhere"))
		return -1;
	return 1;
}

/* What the manager's dispatch does to the worker's record. */
static void fake_dispatch(void *arg, struct xy_task *t, struct xy_worker *w)
{
	struct place *p = arg;
	XY_CHECK(p->n_placed < 64);
	xy_wtable_commit(p->m.wtable, w, t);
	p->placed[p->n_placed] = t;
	p->on[p->n_placed++] = w;
}

static void fake_requeue(void *arg, struct xy_task *t)
{
	struct place *p = arg;
	XY_CHECK(p->n_requeued < 8);
	p->requeued[p->n_requeued++] = t;
}

static void place_setup(struct place *p)
{
	char err[256];
	memset(p, 0, sizeof *p);
	p->m.clock = fake_clock;
	p->m.catalog = xy_catalog_create(&p->m, err, sizeof err);
	p->m.wtable = xy_wtable_create(&p->m);
	p->m.sched = xy_sched_create(&p->m);
	XY_CHECK(p->m.catalog && p->m.wtable && p->m.sched);
	struct xy_sched_ops ops = {fake_can_stage, fake_dispatch, fake_requeue,
				   p};
	xy_sched_set_ops(p->m.sched, &ops);
}

static struct xy_worker *worker(struct place *p, const char *name, int cores,
				int gpus)
{
	struct xy_worker *w = xy_wtable_add(p->m.wtable, NULL);
	XY_CHECK(w);
	free(w->name);
	w->name = strdup(name);
	w->cores = cores;
	w->gpus = gpus;
	xy_wtable_ready(p->m.wtable, w);
	return w;
}

/* Every task placed goes back to being free, and is deleted. */
static void place_teardown(struct place *p)
{
	for (int i = 0; i < p->n_placed; i++) {
		xy_wtable_release(p->m.wtable, p->on[i], p->placed[i]);
		xy_task_delete(p->placed[i]);
	}
	struct xy_task *t;
	while ((t = xy_sched_pop(p->m.sched)))
		xy_task_delete(t);
	for (int i = 0; i < p->n_requeued; i++)
		xy_task_delete(p->requeued[i]);
	xy_sched_destroy(p->m.sched);
	xy_wtable_destroy(p->m.wtable);
	xy_catalog_destroy(p->m.catalog);
}

static struct xy_task *queued(struct place *p, uint64_t id, int cores,
			      int gpus, double prio)
{
	struct xy_task *t = mk(id, prio);
	xy_task_set_cores(t, cores);
	xy_task_set_gpus(t, gpus);
	XY_CHECK_EQ(xy_sched_push(p->m.sched, t), 0);
	return t;
}

/* The case, at a larger scale: 1,000 one-GPU tasks queued ahead
 * of 10 one-core tasks, on a worker with 2 cores and 1 GPU. The first
 * round places one GPU task and one core task, and looks at the GPU
 * shape once: not at each of its tasks. */
static void t_no_head_of_line_blocking(void)
{
	struct place p;
	place_setup(&p);
	worker(&p, "w", 2, 1);
	enum { GPU_TASKS = 1000 };
	for (int i = 0; i < GPU_TASKS; i++)
		queued(&p, i + 1, 1, 1, 0);
	struct xy_task *first_cpu = queued(&p, 5000, 1, 0, 0);
	for (int i = 1; i < 10; i++)
		queued(&p, 5000 + i, 1, 0, 0);
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 2);
	XY_CHECK_EQ(p.n_placed, 2);
	XY_CHECK_EQ(p.placed[0]->id, 1);
	XY_CHECK(p.placed[1] == first_cpu);
	XY_CHECK_EQ(p.n_staged, 2);
	/* The GPU tasks keep their order for the next round. */
	XY_CHECK_EQ(xy_sched_count(p.m.sched), GPU_TASKS - 1 + 9);
	struct xy_task *next = xy_sched_pop(p.m.sched);
	XY_CHECK_EQ(next->id, 2);
	xy_task_delete(next);
	place_teardown(&p);
}

/* Priority holds across shapes: with one free core, the two-core task of
 * priority 9 waits for a worker it fits and the one-core task of
 * priority 5 runs before the one-core task of priority 1. */
static void t_priorities_across_shapes(void)
{
	struct place p;
	place_setup(&p);
	struct xy_worker *small = worker(&p, "small", 1, 0);
	struct xy_task *low = queued(&p, 1, 1, 0, 1);
	struct xy_task *big = queued(&p, 2, 2, 0, 9);
	struct xy_task *mid = queued(&p, 3, 1, 0, 5);
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 1);
	XY_CHECK(p.placed[0] == mid && p.on[0] == small);
	struct xy_worker *large = worker(&p, "large", 4, 0);
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 2);
	XY_CHECK(p.placed[1] == big && p.on[1] == large);
	XY_CHECK(p.placed[2] == low && p.on[2] == large);
	place_teardown(&p);
}

/* A task goes to the worker that holds most of its input bytes; a worker
 * whose disk was lately full (NO_ROOM) gets no input as large until its
 * mark expires on the manager's clock. */
static void t_data_and_room(void)
{
	struct place p;
	place_setup(&p);
	struct xy_worker *a = worker(&p, "a", 2, 0);
	struct xy_worker *b = worker(&p, "b", 2, 0);
	uint8_t id1[XY_ID_LEN] = {7}, id2[XY_ID_LEN] = {8};
	struct xy_object *held = xy_catalog_object(p.m.catalog, id1, 0, 1000);
	struct xy_object *big = xy_catalog_object(p.m.catalog, id2, 0, 1 << 20);
	XY_CHECK(held && big);
	xy_catalog_replica_add(held, b, 1);
	struct xy_file f1 = {.state = FILE_READY, .obj = held};
	struct xy_file f2 = {.state = FILE_READY, .obj = big};
	struct task_file in1 = {.file = &f1, .as = "in"};
	struct task_file in2 = {.file = &f2, .as = "in"};
	struct xy_task *t = mk(1, 0);
	t->inputs = &in1;
	t->n_inputs = 1;
	XY_CHECK(xy_sched_choose(p.m.sched, t) == b);
	/* An input no worker holds, and a's disk lately full for it. */
	t->inputs = &in2;
	xy_wtable_mark_no_room(a, 1 << 20, fake_now);
	XY_CHECK(xy_sched_choose(p.m.sched, t) == b);
	/* Both full: no worker could give it room, so one is tried. */
	xy_wtable_mark_no_room(b, 1 << 20, fake_now);
	XY_CHECK(xy_sched_choose(p.m.sched, t) != NULL);
	/* Five minutes on, the marks have expired; b is marked again. */
	fake_now += 301;
	xy_wtable_mark_no_room(b, 1 << 20, fake_now);
	XY_CHECK(xy_sched_choose(p.m.sched, t) == a);
	t->inputs = NULL;
	t->n_inputs = 0;
	xy_task_delete(t);
	place_teardown(&p);
}

/* Tasks whose inputs cannot come now are set aside, at most ASIDE_MAX
 * (32) of a shape a round, and go back in their order; a task with an
 * input that has no source goes to the manager; another shape is placed
 * meanwhile. */
static void t_set_aside_and_requeued(void)
{
	struct place p;
	place_setup(&p);
	worker(&p, "w", 4, 0);
	struct xy_task *later[40];
	for (int i = 0; i < 40; i++) {
		later[i] = queued(&p, i + 1, 1, 0, 0);
		xy_task_set_tag(later[i], "later");
	}
	struct xy_task *nowhere = queued(&p, 50, 2, 0, 0);
	xy_task_set_tag(nowhere, "nowhere");
	struct xy_task *two = queued(&p, 51, 2, 0, 0);
	struct xy_task *one = queued(&p, 52, 1, 0, 0); /* behind the 40 */
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 1);
	XY_CHECK(p.placed[0] == two);
	XY_CHECK(p.n_requeued == 1 && p.requeued[0] == nowhere);
	/* The one-core shape was parked after 32 set aside: the 33rd and
	 * the task behind were not looked at this round. */
	XY_CHECK_EQ(p.n_staged, 32 + 2);
	XY_CHECK_EQ(xy_sched_count(p.m.sched), 41);
	for (int i = 0; i < 40; i++)
		XY_CHECK(xy_sched_pop(p.m.sched) == later[i]);
	XY_CHECK(xy_sched_pop(p.m.sched) == one);
	for (int i = 0; i < 40; i++)
		xy_task_delete(later[i]);
	xy_task_delete(one);
	place_teardown(&p);
}

/* Tasks that each ask for their own memory share a few shapes (classes
 * of powers of two), so queueing stays O(1) a task. */
static void t_memory_classes(void)
{
	struct xy_sched *s = xy_sched_create(NULL);
	enum { N = 20000 };
	static struct xy_task *t[N];
	for (int i = 0; i < N; i++) {
		t[i] = mk(i + 1, 0);
		xy_task_set_memory(t[i], 1000 + i);
		XY_CHECK_EQ(xy_sched_push(s, t[i]), 0);
	}
	/* 1000..20999 MB: the classes of 1024, 2048, ..., 32768. */
	XY_CHECK_EQ(xy_sched_shapes(s), 6);
	for (int i = 0; i < N; i++)
		XY_CHECK(xy_sched_pop(s) == t[i]); /* FIFO across them */
	for (int i = 0; i < N; i++)
		xy_task_delete(t[i]);
	xy_sched_destroy(s);
}

/* A worker is on the free list while a core is free, then on the window
 * list while calls may wait there, then on neither; and back. */
static void t_free_and_window_lists(void)
{
	struct place p;
	place_setup(&p);
	p.m.call_window = 2;
	struct xy_worker *w = worker(&p, "w", 1, 0);
	struct xy_wtable *wt = p.m.wtable;
	struct xy_task *cmd = mk(1, 0);
	struct xy_task *c1 = xy_task_create_call("lib", "x", 1);
	struct xy_task *c2 = xy_task_create_call("lib", "x", 1);
	XY_CHECK(c1 && c2);
	XY_CHECK(xy_wtable_free_list(wt) == w && !xy_wtable_window_list(wt));
	xy_wtable_commit(wt, w, cmd);
	XY_CHECK(!xy_wtable_free_list(wt) && xy_wtable_window_list(wt) == w);
	xy_wtable_commit(wt, w, c1);
	xy_wtable_commit(wt, w, c2);
	XY_CHECK(!xy_wtable_free_list(wt) && !xy_wtable_window_list(wt));
	xy_wtable_release(wt, w, c2);
	XY_CHECK(!xy_wtable_free_list(wt) && xy_wtable_window_list(wt) == w);
	xy_wtable_release(wt, w, c1);
	xy_wtable_release(wt, w, cmd);
	XY_CHECK(xy_wtable_free_list(wt) == w && !xy_wtable_window_list(wt));
	xy_task_delete(cmd);
	xy_task_delete(c1);
	xy_task_delete(c2);
	place_teardown(&p);
}

/* The queue by shape, for the scaler: counts, and the most memory any
 * task of a shape asked for (not its class's bound). */
static void t_demand(void)
{
	struct place p;
	place_setup(&p);
	struct xy_task *t[5];
	for (int i = 0; i < 5; i++) {
		t[i] = queued(&p, (uint64_t)i + 1, i < 3 ? 1 : 2, 0, 0);
		xy_sched_remove(p.m.sched, t[i]);
		xy_task_set_memory(t[i], i == 1 ? 3000 : 2500);
		XY_CHECK_EQ(xy_sched_push(p.m.sched, t[i]), 0);
	}
	struct xy_demand d[4];
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 2);
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 1), 2); /* more than max */
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 2);
	int one = d[0].need.cores == 1 ? 0 : 1;
	XY_CHECK_EQ(d[one].need.cores, 1);
	XY_CHECK_EQ(d[one].count, 3);
	XY_CHECK_EQ(d[one].need.memory, 3000);
	XY_CHECK_EQ(d[1 - one].need.cores, 2);
	XY_CHECK_EQ(d[1 - one].count, 2);
	XY_CHECK_EQ(d[1 - one].need.memory, 2500);
	/* A task that carries a batch of calls counts as its calls, as
	 * long as it is queued. */
	xy_sched_remove(p.m.sched, t[0]);
	xy_task_set_calls(t[0], 40);
	XY_CHECK_EQ(xy_sched_push(p.m.sched, t[0]), 0);
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 2);
	one = d[0].need.cores == 1 ? 0 : 1;
	XY_CHECK_EQ(d[one].count, 42);
	XY_CHECK_EQ(d[1 - one].count, 2);
	XY_CHECK_EQ(xy_sched_count(p.m.sched), 5); /* still five tasks */
	xy_sched_remove(p.m.sched, t[0]);
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 2);
	one = d[0].need.cores == 1 ? 0 : 1;
	XY_CHECK_EQ(d[one].count, 2);
	xy_sched_remove(p.m.sched, t[1]);
	xy_sched_remove(p.m.sched, t[2]);
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 1); /* shape dropped */
	XY_CHECK_EQ(xy_sched_push(p.m.sched, t[0]), 0);
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 2);
	one = d[0].need.cores == 1 ? 0 : 1;
	XY_CHECK_EQ(d[one].count, 40);
	place_teardown(&p);
}

/* A task with a time limit goes only to a worker with that limit and
 * XY_TIME_MARGIN_S left, on the manager's clock; tasks of a shorter
 * limit behind it (another shape) are not held up; the demand carries
 * the limit; once the clock passes, a worker's time runs out. */
static void t_time_left(void)
{
	struct place p;
	place_setup(&p);
	struct xy_worker *a = worker(&p, "a", 4, 0);
	a->ends_at = fake_now + 40;
	struct xy_task *day = queued(&p, 1, 1, 0, 9);
	xy_sched_remove(p.m.sched, day);
	xy_task_set_time_limit(day, 86400);
	XY_CHECK_EQ(xy_sched_push(p.m.sched, day), 0);
	struct xy_task *brief = mk(2, 0);
	xy_task_set_time_limit(brief, 35);
	XY_CHECK_EQ(xy_sched_push(p.m.sched, brief), 0);
	struct xy_task *over = mk(3, 0);
	xy_task_set_time_limit(over, 36); /* 36 + 5 > 40 */
	XY_CHECK_EQ(xy_sched_push(p.m.sched, over), 0);
	struct xy_task *open = queued(&p, 4, 1, 0, 0);
	XY_CHECK_EQ(xy_sched_shapes(p.m.sched), 3);
	struct xy_demand d[4];
	XY_CHECK_EQ(xy_sched_demand(p.m.sched, d, 4), 3);
	int seen_day = 0;
	for (int i = 0; i < 3; i++)
		seen_day |= d[i].need.time == 86400;
	XY_CHECK(seen_day);
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 2);
	XY_CHECK(p.placed[0] == brief && p.on[0] == a);
	XY_CHECK(p.placed[1] == open && p.on[1] == a);
	XY_CHECK_EQ(xy_sched_count(p.m.sched), 2);
	/* A worker without an end takes the day's task first. */
	struct xy_worker *b = worker(&p, "b", 1, 0);
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 1);
	XY_CHECK(p.placed[2] == day && p.on[2] == b);
	/* 36 s left on a: not enough for 36 s and the margin... */
	fake_now += 4;
	XY_CHECK_EQ(xy_wtable_time_left(a), 36);
	XY_CHECK_EQ(xy_sched_round(p.m.sched), 0);
	XY_CHECK_EQ(xy_wtable_time_left(b), -1);
	/* ...and none at all once its end has passed. */
	fake_now += 100;
	XY_CHECK_EQ(xy_wtable_time_left(a), 0);
	XY_CHECK(!xy_wtable_time_fits(a, over));
	place_teardown(&p);
	fake_now -= 104;
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_fifo_within_priority),
		XY_TEST(t_priority_order),
		XY_TEST(t_remove_from_the_middle),
		XY_TEST(t_many_levels),
		XY_TEST(t_call_window),
		XY_TEST(t_order_across_shapes),
		XY_TEST(t_no_head_of_line_blocking),
		XY_TEST(t_priorities_across_shapes),
		XY_TEST(t_data_and_room),
		XY_TEST(t_set_aside_and_requeued),
		XY_TEST(t_memory_classes),
		XY_TEST(t_free_and_window_lists),
		XY_TEST(t_demand),
		XY_TEST(t_time_left),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
