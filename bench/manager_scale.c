/*
 * manager_scale.c: the manager with a million queued tasks, through the
 * public C API. Prints the memory a queued task costs, and the time one
 * scheduling decision takes with 1e3 and with 1e6 tasks queued, measured
 * while real workers (`xylem worker`, started here) run `true` tasks and
 * the queue is kept at its depth by submitting one task per completion.
 *
 *   bench_manager_scale XYLEM_BINARY [TASKS]
 *
 * Targets: under 1 KiB a task; decision time at 1e6 about that at 1e3.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "xylem.h"

static void submit_noop(struct xy_manager *m, long i)
{
	char cmd[64];
	snprintf(cmd, sizeof cmd, "true %ld", i);
	struct xy_task *t = xy_task_create(cmd);
	if (!t || !xy_manager_submit(m, t, NULL, 0)) {
		fprintf(stderr, "submit failed\n");
		exit(1);
	}
}

static pid_t start_worker(const char *xylem, int port, const char *secret)
{
	char addr[64], cores[16] = "4";
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("XYLEM_SECRET", secret, 1);
		execl(xylem, xylem, "worker", addr, "--cores", cores,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* Runs `completions` tasks off a queue kept at `depth`; returns the mean
 * time of one decision in microseconds. */
static double decision_time(const char *xylem, long depth, long completions)
{
	struct xy_manager *m = bench_manager();
	for (long i = 0; i < depth; i++)
		submit_noop(m, i);
	pid_t w[2];
	for (int i = 0; i < 2; i++)
		w[i] = start_worker(xylem, xy_manager_port(m), SECRET);
	struct xy_stats before, after;
	xy_manager_stats(m, &before);
	long done = 0;
	while (done < completions) {
		struct xy_task *t = xy_manager_wait(m, 30);
		if (!t) {
			fprintf(stderr, "no task completed in 30 s\n");
			exit(1);
		}
		if (xy_task_result(t) != XY_RESULT_SUCCESS) {
			fprintf(stderr, "task failed: %s\n", xy_task_error(t));
			exit(1);
		}
		xy_task_delete(t);
		submit_noop(m, depth + done);
		done++;
	}
	xy_manager_stats(m, &after);
	xy_manager_shutdown_workers(m);
	for (int i = 0; i < 2; i++) {
		kill(w[i], SIGTERM);
		waitpid(w[i], NULL, 0);
	}
	xy_manager_destroy(m);
	long n = after.decisions - before.decisions;
	return n ? (after.decision_seconds - before.decision_seconds) * 1e6 / n
		 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s XYLEM_BINARY [TASKS]\n", argv[0]);
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 1000000;

	struct xy_manager *m = bench_manager();
	size_t h0 = heap_bytes();
	for (long i = 0; i < n; i++)
		submit_noop(m, i);
	size_t h1 = heap_bytes();
	double per_task = (double)(h1 - h0) / n;
	xy_manager_destroy(m);
	printf("memory: %ld queued tasks take %.1f MiB of heap, %.0f bytes "
	       "a task (target < 1024): ratio %.2f of the target\n",
	       n, (h1 - h0) / 1048576.0, per_task, per_task / 1024);

	long completions = 5000;
	double small = decision_time(argv[1], 1000, completions);
	double large = decision_time(argv[1], n, completions);
	printf("decision: %.2f us with 1e3 queued, %.2f us with %ld queued: "
	       "ratio %.2f (target about 1)\n", small, large, n,
	       small > 0 ? large / small : 0);
	return 0;
}
