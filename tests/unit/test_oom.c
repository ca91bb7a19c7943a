/*
 * test_oom.c: a task's end when the manager is short of memory, with a
 * real manager and a real worker on loopback (this program run again as
 * `--as-worker`, as in test_lineage.c). While the task runs, the
 * manager's fail_alloc makes one allocation fail among those its
 * TASK_DONE makes: the output's object (the task fails with
 * MANAGER_FAILED, its output is not written), the record of the
 * worker's copy (knowledge only: the task succeeds), or the retrieval of
 * the output (MANAGER_FAILED). Each time the worker is free again, and
 * runs the next task. Failures met by dispatch, the catalogue and the
 * transfer planner are tested in test_manager.c, test_catalog.c and
 * test_xplan.c with worker records alone.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "realmgr.h"
#include "internal.h"
#include "util.h"
#include "worker.h"
#include "xylem.h"

#define SECRET "oom-secret"

/* Starts a worker with one core, and runs the manager until it is
 * connected; returns its pid. */
static pid_t start_worker(struct xy_manager *m)
{
	pid_t pid = rm_start_worker(m, SECRET, "w1");
	rm_await_workers(m, 1);
	return pid;
}


/* Runs a task writing "n" to out-n, with the nth allocation from the
 * moment it runs made to fail; returns its result, checked against
 * what is left at out-n. */
static xy_result run_failing(struct xy_manager *m, uint64_t n)
{
	char err[256], cmd[64], rel[32], want[32];
	snprintf(cmd, sizeof cmd, "sleep 0.2; echo %llu > out",
		 (unsigned long long)n);
	snprintf(rel, sizeof rel, "out-%llu", (unsigned long long)n);
	snprintf(want, sizeof want, "%llu\n", (unsigned long long)n);
	const char *path = xy_test_path(rel);
	struct xy_file *f = xy_manager_declare_file(m, path, XY_CACHE_TASK,
						    err, sizeof err);
	struct xy_task *t = xy_task_create(cmd);
	XY_CHECK(f && t);
	XY_CHECK(xy_task_add_output(t, f, "out", err, sizeof err) == 0);
	XY_CHECK(xy_manager_submit(m, t, err, sizeof err) > 0);
	double end = xy_mono() + 20;
	while (xy_task_get_state(t) != XY_TASK_RUNNING && xy_mono() < end)
		xy_manager_turn(m, xy_mono() + 0.01);
	XY_CHECK_EQ(xy_task_get_state(t), XY_TASK_RUNNING);
	m->fail_alloc = n;
	XY_CHECK(xy_manager_wait(m, 20) == t);
	xy_result r = xy_task_result(t);
	if (r == XY_RESULT_SUCCESS) {
		XY_CHECK(rm_slurp(path) && !strcmp(rm_slurp(path), want));
	} else {
		XY_CHECK_EQ(m->fail_alloc, 0);
		XY_CHECK(!strcmp(xy_task_error(t),
				 "the manager is out of memory"));
		XY_CHECK(access(path, F_OK) < 0);
	}
	xy_task_delete(t);
	m->fail_alloc = 0;
	return r;
}

/* The allocations of a TASK_DONE with one output, in order: its object;
 * the replica on the object, then in the worker's list (cap 0 until a
 * try gets that far, then room for 8); the retrieval's job and its
 * three strings (each failure of those is in test_xplan.c). */
static void t_task_done_short_of_memory(void)
{
	static const xy_result want[] = {
		XY_RESULT_MANAGER_FAILED, /* the object */
		XY_RESULT_SUCCESS,        /* the object's replicas */
		XY_RESULT_SUCCESS,        /* the worker's list */
		XY_RESULT_MANAGER_FAILED, /* the retrieval's job */
		XY_RESULT_MANAGER_FAILED, /* its path (the list has room) */
		XY_RESULT_MANAGER_FAILED, /* its worker's name */
		XY_RESULT_SUCCESS,        /* none fails */
	};
	struct xy_manager *m = rm_manager(SECRET);
	pid_t pid = start_worker(m);
	for (uint64_t n = 1; n <= sizeof want / sizeof *want; n++) {
		xy_result r = run_failing(m, n);
		if (r != want[n - 1])
			fprintf(stderr, "try %llu: %s\n", (unsigned long long)n,
				xy_result_string(r));
		XY_CHECK_EQ(r, want[n - 1]);
	}
	struct xy_stats st;
	xy_manager_stats(m, &st);
	XY_CHECK(st.cores_used == 0 && st.workers_connected == 1);
	xy_manager_shutdown_workers(m);
	xy_manager_destroy(m);
	waitpid(pid, NULL, 0);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--as-worker"))
		return xy_worker_main(argc - 2, argv + 2);
	static const struct xy_test tests[] = {
		XY_TEST_T(t_task_done_short_of_memory, 60),
		{0},
	};
	signal(SIGPIPE, SIG_IGN);
	return xy_test_main(argc, argv, tests);
}
