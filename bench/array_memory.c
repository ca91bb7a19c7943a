/*
 * array_memory.c: the manager's memory per queued task of a task array
 * (docs/workflow.md, "Task arrays"), through the C API: the heap (glibc's
 * mallinfo2) of a manager holding one array of N (1,000,000) tasks, as
 * xy_manager_submit_array makes them with no worker to run them (the
 * window is made, the rest held as the record), against the same N
 * submitted one by one as tasks, in the same run. Target: < 100 B an
 * array task.
 *
 * usage: bench_array_memory [N]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static struct xy_task *make(void *arg, uint64_t index, char *err,
			    size_t errlen)
{
	char tag[32];
	struct xy_task *t = xy_task_create("true");

	(void)arg;
	(void)err;
	(void)errlen;
	snprintf(tag, sizeof tag, "a[%llu]", (unsigned long long)index);
	xy_task_set_tag(t, tag);
	return t;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	char err[256], tag[32];
	struct xy_manager *m;
	size_t h0, h1, h2;

	m = bench_manager();
	xy_manager_wait(m, 0.05); /* settle the loop's own allocations */
	h0 = heap_bytes();
	if (xy_manager_submit_array(m, (uint64_t)n, make, NULL, NULL, err,
				    sizeof err) < 0) {
		fprintf(stderr, "array: %s\n", err);
		return 1;
	}
	xy_manager_wait(m, 0.2); /* a few schedule phases: the window made */
	h1 = heap_bytes();
	xy_manager_destroy(m);

	m = bench_manager();
	xy_manager_wait(m, 0.05);
	h2 = heap_bytes();
	for (long i = 0; i < n; i++) {
		struct xy_task *t = xy_task_create("true");

		snprintf(tag, sizeof tag, "a[%ld]", i);
		xy_task_set_tag(t, tag);
		if (!xy_manager_submit(m, t, err, sizeof err)) {
			fprintf(stderr, "submit: %s\n", err);
			return 1;
		}
	}
	xy_manager_wait(m, 0.2);
	printf("%ld tasks queued, no worker: as an array %.2f B a task"
	       " (%zu B in all), as %ld tasks %.0f B a task; target < 100 B\n",
	       n, (double)(h1 - h0) / (double)n, h1 - h0, n,
	       (double)(heap_bytes() - h2) / (double)n);
	xy_manager_destroy(m);
	return 0;
}
