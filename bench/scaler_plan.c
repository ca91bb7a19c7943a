/*
 * scaler_plan.c: the cost of one scaling decision (issue 12): a manager
 * with TASKS (1e6) queued tasks of SHAPES (50) shapes, and four pools
 * (two CPU node shapes, two GPU ones) that together have WORKERS (1e4)
 * connected and each a backlog of 250. A decision is what the manager
 * does after a scheduling round: the queue by shape (xy_sched_demand),
 * then the plan (xy_scaler_plan). Printed: its mean over REPEATS (100)
 * against the same with 1,000 tasks of the same shapes.
 *
 *   bench_scaler_plan [TASKS [SHAPES [WORKERS [REPEATS]]]]
 *
 * Target (issue 12): at most 10 ms with 1e6 tasks of 50 shapes and
 * 10,000 workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"
#include "xylem.h"

/* Shape i of n: 1 to 16 cores, a GPU for one in ten, memory in steps. */
static void shape_of(int i, struct xy_task *t)
{
	xy_task_set_cores(t, 1 + i % 16);
	xy_task_set_gpus(t, i % 10 == 9 ? 1 : 0);
	xy_task_set_memory(t, 500 * (1 + i / 16));
}

static double decision_ms(long tasks, int shapes, int workers, int repeats)
{
	char err[256];
	struct xy_manager *m = bench_manager();
	for (long i = 0; i < tasks; i++) {
		struct xy_task *t = xy_task_create("true");
		if (!t) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
		shape_of((int)(i % shapes), t);
		if (!xy_manager_submit(m, t, err, sizeof err)) {
			fprintf(stderr, "submit: %s\n", err);
			exit(1);
		}
	}
	struct xy_pool pools[4] = {
		{"cpu", {16, 0, 64000, 0, 0}, 0, 0, 250, 1},
		{"bigmem", {16, 0, 256000, 0, 0}, 0, 0, 250, 0},
		{"gpu", {16, 2, 64000, 0, 0}, 0, 0, 250, 0},
		{"gpu4", {32, 4, 128000, 0, 0}, 0, 0, 250, 0},
	};
	struct xy_pool_count counts[4];
	for (int i = 0; i < 4; i++)
		counts[i] = (struct xy_pool_count){workers / 4, 10};
	struct xy_demand *d = calloc((size_t)shapes + 1, sizeof *d);
	struct xy_plan plan;
	int64_t planned = 0;
	uint64_t t0 = xy_mono_us();
	for (int r = 0; r < repeats; r++) {
		size_t n = xy_sched_demand(m->sched, d, (size_t)shapes + 1);
		if (xy_scaler_plan(pools, counts, 4, d, n, &plan) < 0) {
			fprintf(stderr, "plan: out of memory\n");
			exit(1);
		}
		for (int i = 0; i < 4; i++)
			planned += plan.submit[i];
	}
	double ms = (double)(xy_mono_us() - t0) / 1e3 / repeats;
	printf("%8ld tasks, %d shapes, %d workers: %.3f ms a decision"
	       " (asks for %lld jobs, %lld tasks wait, %lld fit no pool)\n",
	       tasks, shapes, workers, ms, (long long)planned / repeats,
	       (long long)plan.waiting, (long long)plan.unfit_tasks);
	free(d);
	xy_manager_destroy(m);
	return ms;
}

int main(int argc, char **argv)
{
	long tasks = argc > 1 ? atol(argv[1]) : 1000000;
	int shapes = argc > 2 ? atoi(argv[2]) : 50;
	int workers = argc > 3 ? atoi(argv[3]) : 10000;
	int repeats = argc > 4 ? atoi(argv[4]) : 100;
	if (tasks < 1000 || shapes < 1 || workers < 0 || repeats < 1) {
		fprintf(stderr, "usage: %s [TASKS (>= 1000) [SHAPES [WORKERS"
			" [REPEATS]]]]\n", argv[0]);
		return 2;
	}
	xy_log_set_level(XY_LOG_ERROR);
	double base = decision_ms(1000, shapes, workers, repeats);
	double big = decision_ms(tasks, shapes, workers, repeats);
	printf("ratio to 1,000 tasks: %.2f; target: at most 10 ms (%s)\n",
	       big / base, big <= 10 ? "met" : "not met");
	return 0;
}
