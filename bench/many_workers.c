/*
 * many_workers.c: one manager with thousands of workers and a deep queue
 * (issue 11). The workers are simulated (sim.h): a few processes, each
 * holding many control connections, speaking the real protocol and
 * answering every TASK at once, so that what is measured is the manager. The manager runs in
 * this process, through the public C API, and the queue is kept at its
 * depth by submitting one `true` task per completion.
 *
 * For the baseline (10 workers, 1,000 queued), WORKERS with 1,000 queued,
 * 10 workers with TASKS queued and then both (WORKERS, TASKS), it prints:
 * the heap each connected worker costs, the heap each queued task costs,
 * the time one scheduling decision takes (choosing where), the time its
 * TASK message takes to build and send, and the dispatch rate; and each
 * case's ratios to the baseline.
 *
 *   bench_many_workers [WORKERS [TASKS [COMPLETIONS]]]
 *                          (10000, 1000000, 100000)
 *
 * Target (DESIGN.md): decision time and memory flat within 10%.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "log.h"
#include "sim.h"
#include "xylem.h"

#define SIMULATORS 4
#define CONNECTING_MAX 128 /* connections a simulator opens at once */

/* ------------------------------------------------------------ manager */

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void submit_noop(struct xy_manager *m)
{
	struct xy_task *t = xy_task_create("true");
	if (!t || !xy_manager_submit(m, t, NULL, 0)) {
		fprintf(stderr, "submit failed\n");
		exit(1);
	}
}

static struct xy_task *wait_one(struct xy_manager *m)
{
	struct xy_task *t = xy_manager_wait(m, 60);
	if (!t) {
		fprintf(stderr, "no task completed in 60 s\n");
		exit(1);
	}
	if (xy_task_result(t) != XY_RESULT_SUCCESS) {
		fprintf(stderr, "task failed: %s\n", xy_task_error(t));
		exit(1);
	}
	return t;
}

struct figures {
	double task_bytes, worker_bytes, decision_us, send_us, dispatch_rate;
};

/* Runs `completions` tasks with `workers` simulated workers, off a queue
 * kept at `depth`. */
static struct figures measure(int workers, long depth, long completions)
{
	struct xy_manager *m = bench_manager();
	struct xy_stats st = {0}, before, after;
	struct figures f;
	pid_t sims[SIMULATORS];
	int n_sims = workers < SIMULATORS ? 1 : SIMULATORS;

	size_t h0 = heap_bytes();
	for (long i = 0; i < depth; i++)
		submit_noop(m);
	size_t h1 = heap_bytes();
	f.task_bytes = (double)(h1 - h0) / (double)depth;
	for (int i = 0; i < n_sims; i++) {
		int share = workers / n_sims + (i < workers % n_sims);
		struct bench_sim_opts so = {
			.id = i, .host = "127.0.0.1",
			.port = xy_manager_port(m), .n = share,
			.connecting = CONNECTING_MAX, .secret = SECRET,
			.ca = xy_manager_tls_ca(m), .report_fd = -1};
		if ((sims[i] = fork()) == 0)
			bench_sim_run(&so);
	}
	/* The workers connect while the first tasks run; memory is read
	 * once all are in, with the queue refilled to its depth. */
	long done = 0;
	do {
		xy_task_delete(wait_one(m));
		submit_noop(m);
		++done;
		xy_manager_stats(m, &st);
	} while (st.workers_connected < workers);
	size_t h2 = heap_bytes();
	f.worker_bytes = (double)(h2 - h1) / workers;
	xy_manager_stats(m, &before);
	double t0 = now_s();
	for (long i = 0; i < completions; i++) {
		xy_task_delete(wait_one(m));
		submit_noop(m);
	}
	double t1 = now_s();
	xy_manager_stats(m, &after);
	long n = after.decisions - before.decisions;
	f.decision_us = n ? (after.decision_seconds -
			     before.decision_seconds) * 1e6 / n : 0;
	f.send_us = n ? (after.send_seconds - before.send_seconds) * 1e6 / n
		      : 0;
	f.dispatch_rate = completions / (t1 - t0);
	xy_manager_shutdown_workers(m);
	for (int i = 0; i < n_sims; i++) {
		int status;
		/* Running the manager lets the SHUTDOWNs out. */
		while (waitpid(sims[i], &status, WNOHANG) == 0)
			xy_manager_wait(m, 0.05);
	}
	xy_manager_destroy(m);
	printf("%6d workers, %8ld queued: %6.0f B a worker, %4.0f B a task,"
	       " %5.2f us a decision + %5.2f us its send, %7.0f tasks/s"
	       " dispatched (%ld done while they connected)\n", workers,
	       depth, f.worker_bytes, f.task_bytes, f.decision_us, f.send_us,
	       f.dispatch_rate, done);
	fflush(stdout);
	return f;
}

static void ratios(const char *what, const struct figures *f,
		   const struct figures *base)
{
	printf("ratios to the baseline, %-7s memory a worker %.2f, a task"
	       " %.2f; decision time %.2f; send time %.2f; dispatch rate"
	       " %.2f\n", what, f->worker_bytes / base->worker_bytes,
	       f->task_bytes / base->task_bytes,
	       f->decision_us / base->decision_us, f->send_us / base->send_us,
	       f->dispatch_rate / base->dispatch_rate);
}

int main(int argc, char **argv)
{
	int workers = argc > 1 ? atoi(argv[1]) : 10000;
	long tasks = argc > 2 ? atol(argv[2]) : 1000000;
	long completions = argc > 3 ? atol(argv[3]) : 100000;
	struct rlimit rl;

	if (workers < 10 || tasks < 1000 || completions < 1) {
		fprintf(stderr, "usage: %s [WORKERS (>= 10) [TASKS (>= 1000)"
			" [COMPLETIONS]]]\n", argv[0]);
		return 2;
	}
	/* A connection is a descriptor, on both sides. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)workers + 1024) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	xy_log_set_level(XY_LOG_ERROR);
	/* The corners: each dimension alone, then both. */
	struct figures base = measure(10, 1000, completions);
	struct figures wide = measure(workers, 1000, completions);
	struct figures deep = measure(10, tasks, completions);
	struct figures big = measure(workers, tasks, completions);
	ratios("workers", &wide, &base);
	ratios("queue", &deep, &base);
	ratios("both", &big, &base);
	return 0;
}
