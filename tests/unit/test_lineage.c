/*
 * test_lineage.c: temps and their lineage (src/manager/lineage.c) through
 * the public API, with a real manager and real workers on loopback. Each
 * worker is this program run again as `--as-worker` (xy_worker_main), so
 * a case can kill one with SIGKILL and start another. Cases: a chain
 * A -> temp -> B on one worker; the temp's only holder killed (its writer
 * runs again, transitively through a second temp); a rerun that fails
 * (the reader fails with INPUT_MISSING and says why); a temp no task
 * writes; fetching a temp back, before and after its loss; a second copy
 * that spares a rerun; a writer run in a software environment, remade in
 * it; temps released early: one read after its release by a reader
 * queued behind its writer, a chain remade through a released temp that
 * a live temp's recipe reads, with nothing left once both are done.
 * Submission checks without workers are in test_manager.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "realmgr.h"
#include "util.h"
#include "worker.h"
#include "xylem.h"

#define SECRET "lineage-secret"

static struct xy_manager *mk(void)
{
	return rm_manager(SECRET);
}

/* Starts a worker named name with one core; returns its pid. */
static pid_t start_worker(struct xy_manager *m, const char *name)
{
	return rm_start_worker(m, SECRET, name);
}

static void kill_worker(struct xy_manager *m, pid_t pid, int left)
{
	int status;
	kill(pid, SIGKILL);
	XY_CHECK(waitpid(pid, &status, 0) == pid);
	rm_await_workers(m, left);
}

/* Stops the workers that are left (the manager tells them to exit). */
static void finish(struct xy_manager *m, pid_t *pids, int n)
{
	xy_manager_shutdown_workers(m);
	xy_manager_destroy(m);
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	/* Recipes, remakes and fetches left nothing behind. */
	xy_test_check_no_leaks();
}

static struct xy_task *task(const char *cmd, struct xy_file *in,
			    struct xy_file *out)
{
	char err[256];
	struct xy_task *t = xy_task_create(cmd);
	XY_CHECK(t);
	if (in)
		XY_CHECK(xy_task_add_input(t, in, "in", err, sizeof err) == 0);
	if (out)
		XY_CHECK(xy_task_add_output(t, out, "out", err, sizeof err) ==
			 0);
	return t;
}

/* Submits t, waits for it, checks its result, deletes it. */
static void run(struct xy_manager *m, struct xy_task *t, xy_result want)
{
	char err[256];
	uint64_t id = xy_manager_submit(m, t, err, sizeof err);
	if (!id)
		fprintf(stderr, "submit: %s\n", err);
	XY_CHECK(id);
	struct xy_task *d = xy_manager_wait(m, 60);
	XY_CHECK(d == t);
	if (xy_task_result(d) != want)
		fprintf(stderr, "task %s: %s: %s\n", xy_task_command(d),
			xy_result_string(xy_task_result(d)), xy_task_error(d));
	XY_CHECK_EQ(xy_task_result(d), want);
	xy_task_delete(d);
}


/* Lines in a marks file: how many times a task ran. */
static int runs(const char *path)
{
	char *s = rm_slurp(path);
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* A writer that counts its runs in marks and writes text to out. */
static char *writer(const char *marks, const char *text)
{
	static char cmd[1024];
	snprintf(cmd, sizeof cmd, "echo x >> %s; echo %s > out", marks, text);
	return cmd;
}

static void t_chain_on_one_worker(void)
{
	struct xy_manager *m = mk();
	pid_t w[1] = {start_worker(m, "w1")};
	char err[256];
	struct xy_file *tmp = xy_manager_declare_temp(m, XY_CACHE_WORKFLOW,
						      err, sizeof err);
	XY_CHECK(tmp && xy_file_is_temp(tmp) && !xy_file_path(tmp));
	const char *res = xy_test_path("result");
	struct xy_file *out = xy_manager_declare_file(m, res, XY_CACHE_TASK,
						      err, sizeof err);
	/* The reader first: it waits for the writer submitted after it. */
	struct xy_task *b = task("tr a-z A-Z < in > out", tmp, out);
	struct xy_task *a = task("echo hello > out", NULL, tmp);
	XY_CHECK(xy_manager_submit(m, b, err, sizeof err));
	XY_CHECK(xy_manager_submit(m, a, err, sizeof err));
	for (int i = 0; i < 2; i++) {
		struct xy_task *d = xy_manager_wait(m, 60);
		XY_CHECK(d && xy_task_result(d) == XY_RESULT_SUCCESS);
		xy_task_delete(d);
	}
	XY_CHECK(!strcmp(rm_slurp(res), "HELLO\n"));
	struct xy_stats st;
	xy_manager_stats(m, &st);
	XY_CHECK_EQ(st.temps_remade, 0);
	/* The temp came back to the manager through nothing but the
	 * reader's output. */
	XY_CHECK_EQ(st.bytes_received, 6);
	finish(m, w, 1);
}

static int64_t files_held(struct xy_manager *m)
{
	struct xy_stats st;
	xy_manager_run(m, 0.05); /* a turn or more: its phase frees */
	xy_manager_stats(m, &st);
	return st.files;
}

/* A -> t1 -> C -> t2 on w1; w1 dies; B reads t2 on w2: C runs again, and
 * before it A, since t1 went with w1 too. With release, each temp (and
 * B's output) is given back as soon as its reader is submitted: t1, read
 * by t2's recipe, stays while t2 does, and nothing is left once B is
 * done. */
static void lost_chain(int release)
{
	struct xy_manager *m = mk();
	pid_t w[2] = {start_worker(m, "w1"), 0};
	rm_await_workers(m, 1);
	char err[256], cmd[1024];
	const char *ma = xy_test_path("marks-a"), *mc = xy_test_path("marks-c");
	struct xy_file *t1 = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_file *t2 = xy_manager_declare_temp(m, 1, err, sizeof err);
	snprintf(cmd, sizeof cmd, "echo x >> %s; (cat in; echo two) > out",
		 mc);
	XY_CHECK(xy_manager_submit(m, task(writer(ma, "one"), NULL, t1), err,
				   sizeof err));
	XY_CHECK(xy_manager_submit(m, task(cmd, t1, t2), err, sizeof err));
	if (release)
		XY_CHECK_EQ(xy_file_release(t1), 0);
	for (int i = 0; i < 2; i++) {
		struct xy_task *d = xy_manager_wait(m, 60);
		XY_CHECK(d && xy_task_result(d) == XY_RESULT_SUCCESS);
		xy_task_delete(d);
	}
	if (release) /* t1 for t2's recipe, and t2 */
		XY_CHECK_EQ(files_held(m), 2);
	kill_worker(m, w[0], 0);
	w[0] = 0;
	w[1] = start_worker(m, "w2");
	const char *res = xy_test_path("result");
	struct xy_file *out = xy_manager_declare_file(m, res, 0, err,
						      sizeof err);
	struct xy_task *b = task("cat in > out", t2, out);
	XY_CHECK(xy_manager_submit(m, b, err, sizeof err));
	if (release) {
		XY_CHECK_EQ(xy_file_release(t2), 0);
		XY_CHECK_EQ(xy_file_release(out), 0);
	}
	struct xy_task *d = xy_manager_wait(m, 60);
	XY_CHECK(d == b && xy_task_result(d) == XY_RESULT_SUCCESS);
	xy_task_delete(d);
	XY_CHECK(!strcmp(rm_slurp(res), "one\ntwo\n"));
	XY_CHECK_EQ(runs(ma), 2);
	XY_CHECK_EQ(runs(mc), 2);
	struct xy_stats st;
	xy_manager_stats(m, &st);
	XY_CHECK_EQ(st.temps_remade, 2);
	XY_CHECK_EQ(xy_manager_outstanding(m), 0);
	if (release)
		XY_CHECK_EQ(files_held(m), 0);
	finish(m, w, 2);
}

static void t_lost_holder_remade_transitively(void)
{
	lost_chain(0);
}

static void t_released_temps_remade(void)
{
	lost_chain(1);
}

/* The writer succeeds once, then fails: the reader that needed the
 * lost temp fails with INPUT_MISSING, naming it. */
static void t_rerun_fails(void)
{
	struct xy_manager *m = mk();
	pid_t w[2] = {start_worker(m, "w1"), 0};
	rm_await_workers(m, 1);
	char err[256], cmd[1024];
	const char *once = xy_test_path("once");
	struct xy_file *t1 = xy_manager_declare_temp(m, 1, err, sizeof err);
	snprintf(cmd, sizeof cmd, "test ! -e %s && touch %s && echo a > out",
		 once, once);
	run(m, task(cmd, NULL, t1), XY_RESULT_SUCCESS);
	kill_worker(m, w[0], 0);
	w[0] = 0;
	w[1] = start_worker(m, "w2");
	struct xy_task *b = task("cat in", t1, NULL);
	XY_CHECK(xy_manager_submit(m, b, err, sizeof err));
	struct xy_task *d = xy_manager_wait(m, 60);
	XY_CHECK(d == b);
	XY_CHECK_EQ(xy_task_result(d), XY_RESULT_INPUT_MISSING);
	XY_CHECK(strstr(xy_task_error(d), "temp-1 was lost and could not be "
					   "made again"));
	xy_task_delete(d);
	/* The rerun is internal: nothing else comes back. */
	XY_CHECK(!xy_manager_wait(m, 0.2) && errno == ENOENT);
	finish(m, w, 2);
}

static void t_fetch_back(void)
{
	struct xy_manager *m = mk();
	pid_t w[2] = {start_worker(m, "w1"), 0};
	rm_await_workers(m, 1);
	char err[256];
	const char *ma = xy_test_path("marks-a");
	const char *p1 = xy_test_path("back1"), *p2 = xy_test_path("d/back2");
	struct xy_file *t1 = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_file *f = xy_manager_declare_file(m, p1, 1, err, sizeof err);
	XY_CHECK(xy_manager_fetch(m, f, p1, 1, err, sizeof err) < 0 &&
		 errno == EINVAL);
	XY_CHECK(xy_manager_fetch(m, t1, p1, 1, err, sizeof err) < 0 &&
		 errno == ENOENT && strstr(err, "no task writes it"));
	run(m, task(writer(ma, "back"), NULL, t1), XY_RESULT_SUCCESS);
	XY_CHECK(access(p1, F_OK) < 0); /* not brought back unasked */
	XY_CHECK(xy_manager_fetch(m, t1, p1, 30, err, sizeof err) == 0);
	XY_CHECK(!strcmp(rm_slurp(p1), "back\n"));
	kill_worker(m, w[0], 0);
	w[0] = 0;
	w[1] = start_worker(m, "w2");
	/* Lost: made again for the fetch alone. */
	if (xy_manager_fetch(m, t1, p2, 30, err, sizeof err) < 0)
		fprintf(stderr, "fetch: %s\n", err);
	XY_CHECK(!strcmp(rm_slurp(p2), "back\n"));
	XY_CHECK_EQ(runs(ma), 2);
	finish(m, w, 2);
}

/* Many temps fetched at once (xy_manager_fetch_all): each to its path,
 * one of them lost and made again on the way; a file that is not a temp
 * is refused before anything starts. */
static void t_fetch_all(void)
{
	struct xy_manager *m = mk();
	pid_t w[2] = {start_worker(m, "w1"), 0};
	rm_await_workers(m, 1);
	char err[256], text[32], marks[16][1024], paths[16][1024];
	struct xy_file *temps[16];
	const char *dst[16];
	enum { N = 12 };

	for (int i = 0; i < N; i++) {
		snprintf(marks[i], sizeof marks[i], "%s", xy_test_path("m"));
		snprintf(marks[i] + strlen(marks[i]), 8, "%d", i);
		snprintf(paths[i], sizeof paths[i], "%s", xy_test_path("all"));
		snprintf(paths[i] + strlen(paths[i]), 16, "/b%d", i);
		dst[i] = paths[i];
		temps[i] = xy_manager_declare_temp(m, 1, err, sizeof err);
		snprintf(text, sizeof text, "t%d", i);
		run(m, task(writer(marks[i], text), NULL, temps[i]),
		    XY_RESULT_SUCCESS);
	}
	struct xy_file *f = xy_manager_declare_file(m, paths[0], 1, err,
						    sizeof err);
	struct xy_file *bad[2] = {temps[0], f};
	XY_CHECK(xy_manager_fetch_all(m, bad, dst, 2, 1, err, sizeof err) < 0 &&
		 errno == EINVAL);
	XY_CHECK(access(paths[0], F_OK) < 0);
	XY_CHECK(xy_manager_fetch_all(m, temps, dst, N, 30, err,
				      sizeof err) == 0);
	for (int i = 0; i < N; i++) {
		snprintf(text, sizeof text, "t%d\n", i);
		XY_CHECK(!strcmp(rm_slurp(paths[i]), text));
		XY_CHECK_EQ(runs(marks[i]), 1);
	}
	/* Every copy lost: each is made again, once, for the fetch. */
	kill_worker(m, w[0], 0);
	w[0] = 0;
	w[1] = start_worker(m, "w2");
	for (int i = 0; i < N; i++)
		snprintf(paths[i] + strlen(paths[i]), 8, ".2");
	if (xy_manager_fetch_all(m, temps, dst, N, 60, err, sizeof err) < 0)
		fprintf(stderr, "fetch_all: %s\n", err);
	for (int i = 0; i < N; i++) {
		snprintf(text, sizeof text, "t%d\n", i);
		XY_CHECK(!strcmp(rm_slurp(paths[i]), text));
		XY_CHECK_EQ(runs(marks[i]), 2);
	}
	finish(m, w, 2);
}

/* Two copies wanted: the writer's worker dies, the other copy serves,
 * nothing runs again. */
static void t_replica_spares_rerun(void)
{
	struct xy_manager *m = mk();
	pid_t w[2] = {start_worker(m, "w1"), start_worker(m, "w2")};
	rm_await_workers(m, 2);
	char err[256];
	const char *ma = xy_test_path("marks-a");
	struct xy_file *t1 = xy_manager_declare_temp(m, 1, err, sizeof err);
	XY_CHECK(xy_file_set_replicas(t1, 2) == 0);
	struct xy_task *a = task(writer(ma, "two"), NULL, t1);
	XY_CHECK(xy_manager_submit(m, a, err, sizeof err));
	struct xy_task *d = xy_manager_wait(m, 60);
	XY_CHECK(d == a && xy_task_result(d) == XY_RESULT_SUCCESS);
	int first = !strcmp(xy_task_worker(d), "w1") ? 0 : 1;
	xy_task_delete(d);
	struct xy_stats st;
	double end = xy_now() + 20;
	do {
		xy_manager_run(m, 0.05);
		xy_manager_stats(m, &st);
	} while (st.transfers_active && xy_now() < end);
	/* Let the copy's CACHE_UPDATE in. */
	xy_manager_run(m, 0.3);
	kill_worker(m, w[first], 1);
	w[first] = 0;
	const char *res = xy_test_path("result");
	struct xy_file *out = xy_manager_declare_file(m, res, 0, err,
						      sizeof err);
	run(m, task("cat in > out", t1, out), XY_RESULT_SUCCESS);
	XY_CHECK(!strcmp(rm_slurp(res), "two\n"));
	XY_CHECK_EQ(runs(ma), 1);
	xy_manager_stats(m, &st);
	XY_CHECK_EQ(st.temps_remade, 0);
	finish(m, w, 2);
}

/* A packed environment whose bin/ has `greet`, which prints its name;
 * returns the archive's path. */
static const char *make_env_archive(void)
{
	const char *dir = xy_test_path("env"), *tgz = xy_test_path("env.tgz");
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "mkdir -p %s/bin && printf '#!/bin/sh\\necho env-greets\\n' "
		 "> %s/bin/greet && chmod +x %s/bin/greet && "
		 "tar -czf %s -C %s .", dir, dir, dir, tgz, dir);
	XY_CHECK(system(cmd) == 0);
	return tgz;
}

/* The writer runs in an environment; its worker dies; the remake must
 * run in that environment too (its bin/ on PATH), not with the archive
 * merely unpacked beside it. */
static void t_remake_keeps_environment(void)
{
	struct xy_manager *m = mk();
	pid_t w[2] = {start_worker(m, "w1"), 0};
	rm_await_workers(m, 1);
	char err[256], cmd[1024];
	const char *ma = xy_test_path("marks-a");
	struct xy_file *arch = xy_manager_declare_file(m, make_env_archive(),
						       1, err, sizeof err);
	struct xy_file *env = xy_manager_declare_unpack(m, arch, 1, err,
							sizeof err);
	struct xy_file *t1 = xy_manager_declare_temp(m, 1, err, sizeof err);
	XY_CHECK(arch && env && t1);
	snprintf(cmd, sizeof cmd, "echo x >> %s; greet > out", ma);
	struct xy_task *a = task(cmd, NULL, t1);
	XY_CHECK(xy_task_set_environment(a, env, err, sizeof err) == 0);
	run(m, a, XY_RESULT_SUCCESS);
	kill_worker(m, w[0], 0);
	w[0] = 0;
	w[1] = start_worker(m, "w2");
	const char *res = xy_test_path("result");
	struct xy_file *out = xy_manager_declare_file(m, res, 0, err,
						      sizeof err);
	run(m, task("cat in > out", t1, out), XY_RESULT_SUCCESS);
	XY_CHECK(!strcmp(rm_slurp(res), "env-greets\n"));
	XY_CHECK_EQ(runs(ma), 2);
	finish(m, w, 2);
}

/* The temp is released as soon as its writer and its reader are
 * submitted: it lives until the reader, queued behind the writer, has
 * read it, then goes. */
static void t_released_temp_read_later(void)
{
	struct xy_manager *m = mk();
	pid_t w[1] = {start_worker(m, "w1")};
	rm_await_workers(m, 1);
	char err[256];
	const char *res = xy_test_path("result");
	struct xy_file *tmp = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_file *out = xy_manager_declare_file(m, res, 0, err,
						      sizeof err);
	struct xy_task *a = task("sleep 0.3; echo later > out", NULL, tmp);
	struct xy_task *b = task("cat in > out", tmp, out);
	XY_CHECK(xy_manager_submit(m, a, err, sizeof err));
	XY_CHECK(xy_manager_submit(m, b, err, sizeof err));
	XY_CHECK_EQ(xy_file_release(tmp), 0);
	XY_CHECK_EQ(xy_file_release(out), 0);
	XY_CHECK_EQ(files_held(m), 2);
	for (int i = 0; i < 2; i++) {
		struct xy_task *d = xy_manager_wait(m, 60);
		XY_CHECK(d && xy_task_result(d) == XY_RESULT_SUCCESS);
		if (d == a) /* its reader has yet to run */
			XY_CHECK_EQ(files_held(m), 2);
		xy_task_delete(d);
	}
	XY_CHECK(!strcmp(rm_slurp(res), "later\n"));
	XY_CHECK_EQ(files_held(m), 0);
	finish(m, w, 1);
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--as-worker"))
		return xy_worker_main(argc - 2, argv + 2);
	static const struct xy_test tests[] = {
		XY_TEST(t_chain_on_one_worker),
		XY_TEST_T(t_lost_holder_remade_transitively, 60),
		XY_TEST_T(t_rerun_fails, 60),
		XY_TEST_T(t_fetch_back, 60),
		XY_TEST_T(t_fetch_all, 120),
		XY_TEST_T(t_replica_spares_rerun, 60),
		XY_TEST_T(t_remake_keeps_environment, 60),
		XY_TEST_T(t_released_temp_read_later, 60),
		XY_TEST_T(t_released_temps_remade, 60),
		{0},
	};
	signal(SIGPIPE, SIG_IGN);
	return xy_test_main(argc, argv, tests);
}
