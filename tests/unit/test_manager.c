/*
 * test_manager.c: the manager through the public API alone, with no
 * workers: creation, submission checks, dependencies, cancellation and
 * its cascade, a missing input found by the hashing thread, timeouts,
 * the checks of the declare calls (URL schemes, cache levels). One case
 * reaches inside (internal.h): a dispatch to a worker record with no
 * connection, whose allocations fail one by one (the manager's
 * fail_alloc).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "internal.h"
#include "util.h"
#include "xylem.h"

#define xy_now_for_tests xy_now

static struct xy_manager *mk(void)
{
	char err[256];
	struct xy_manager_options o = {.host = "127.0.0.1",
				       .secret = "s3cret",
				       .secret_len = 6};
	struct xy_manager *m = xy_manager_create(&o, err, sizeof err);
	if (!m)
		fprintf(stderr, "create: %s\n", err);
	XY_CHECK(m);
	return m;
}

static void t_create_needs_secret(void)
{
	char err[256] = "";
	struct xy_manager_options o = {0};
	XY_CHECK(xy_manager_create(&o, err, sizeof err) == NULL);
	XY_CHECK(errno == EINVAL);
	XY_CHECK(strstr(err, "secret"));
	struct xy_manager *m = mk();
	XY_CHECK(xy_manager_port(m) > 0);
	xy_manager_destroy(m);
	xy_manager_destroy(NULL);
}

static void t_wait_empty_and_timeout(void)
{
	struct xy_manager *m = mk();
	XY_CHECK(xy_manager_wait(m, 0.1) == NULL && errno == ENOENT);
	struct xy_task *t = xy_task_create("true");
	XY_CHECK(xy_manager_submit(m, t, NULL, 0) == 1);
	XY_CHECK_EQ(xy_manager_outstanding(m), 1);
	double t0 = xy_now_for_tests();
	XY_CHECK(xy_manager_wait(m, 0.3) == NULL && errno == ETIMEDOUT);
	double dt = xy_now_for_tests() - t0;
	XY_CHECK(dt >= 0.25 && dt < 2);
	struct xy_stats st;
	xy_manager_stats(m, &st);
	XY_CHECK_EQ(st.tasks_ready, 1);
	XY_CHECK_EQ(st.workers_connected, 0);
	xy_manager_destroy(m); /* frees the task it still owns */
}

static void t_hostile_names_refused(void)
{
	struct xy_manager *m = mk();
	struct xy_file *f = xy_manager_declare_file(m, "x", XY_CACHE_TASK,
						    NULL, 0);
	struct xy_task *t = xy_task_create("cat in");
	const char *bad[] = {"../etc/passwd", "/etc/passwd", "a/../../b", "",
			     "a//b", "."};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[512] = "";
		XY_CHECK(xy_task_add_input(t, f, bad[i], err, sizeof err) < 0);
		XY_CHECK(errno == EINVAL);
		XY_CHECK(*bad[i] == 0 || strstr(err, bad[i]));
	}
	XY_CHECK(xy_task_add_input(t, f, "in", NULL, 0) == 0);
	XY_CHECK(xy_task_add_input(t, f, "in", NULL, 0) < 0);
	xy_task_delete(t);
	xy_manager_destroy(m);
}

/* URLs a worker would fetch are accepted; any other scheme is refused
 * at declare, with the reason (file:// would read the worker's disk);
 * a bad cache level is refused by every declare call alike. */
static void t_declare_checks(void)
{
	struct xy_manager *m = mk();
	char err[256] = "";
	static const char *const good[] = {"http://h/a", "https://h/a",
					   "ftp://h/a", "FTPS://h/a"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		XY_CHECK(xy_manager_declare_url(m, good[i], 1, err, sizeof err));
	static const char *const bad[] = {"file:///etc/passwd", "gopher://h/",
					  "dict://h/x", "httpx://h/", "://h",
					  "http://", "no-scheme"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		XY_CHECK(!xy_manager_declare_url(m, bad[i], 1, err, sizeof err));
		XY_CHECK(errno == EINVAL && *err);
	}
	XY_CHECK(!xy_manager_declare_url(m, "file:///etc/passwd", 1, err,
					 sizeof err));
	XY_CHECK(strstr(err, "only http, https, ftp and ftps"));
	struct xy_file *f = xy_manager_declare_file(m, "/etc/hostname", 1,
						    err, sizeof err);
	XY_CHECK(f);
	XY_CHECK(!xy_manager_declare_file(m, "/x", 9, err, sizeof err));
	XY_CHECK(errno == EINVAL && strstr(err, "bad cache level 9"));
	XY_CHECK(!xy_manager_declare_url(m, "http://h/b", 9, err, sizeof err));
	XY_CHECK(errno == EINVAL && strstr(err, "bad cache level 9"));
	XY_CHECK(!xy_manager_declare_temp(m, 9, err, sizeof err));
	XY_CHECK(errno == EINVAL && strstr(err, "bad cache level 9"));
	XY_CHECK(!xy_manager_declare_unpack(m, f, 9, err, sizeof err));
	XY_CHECK(errno == EINVAL && strstr(err, "bad cache level 9"));
	XY_CHECK(!xy_manager_declare_buffer(m, "x", 1, 9, err, sizeof err));
	XY_CHECK(errno == EINVAL && strstr(err, "bad cache level 9"));
	xy_manager_destroy(m);
}

static void t_missing_input(void)
{
	struct xy_manager *m = mk();
	char path[4200];
	snprintf(path, sizeof path, "%s/nope.txt", xy_test_tmpdir());
	struct xy_file *f = xy_manager_declare_file(m, path, 1, NULL, 0);
	struct xy_task *t = xy_task_create("cat in");
	XY_CHECK(xy_task_add_input(t, f, "in", NULL, 0) == 0);
	XY_CHECK(xy_manager_submit(m, t, NULL, 0));
	struct xy_task *r = xy_manager_wait(m, 10);
	XY_CHECK(r == t);
	XY_CHECK_EQ(xy_task_result(r), XY_RESULT_INPUT_MISSING);
	XY_CHECK(strstr(xy_task_error(r), path));
	xy_task_delete(r);
	xy_manager_destroy(m);
}

/* Temps without workers: declared, accepted as outputs (buffers are
 * not), a reader of a temp nobody writes fails, and a reader of a temp
 * whose writer is cancelled fails naming the temp. Runs with workers are
 * in test_lineage.c. */
static void t_temps(void)
{
	struct xy_manager *m = mk();
	char err[512];
	struct xy_file *t1 = xy_manager_declare_temp(m, XY_CACHE_TASK, err,
						     sizeof err);
	struct xy_file *t2 = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_file *buf = xy_manager_declare_buffer(m, "x", 1, 1, NULL, 0);
	XY_CHECK(t1 && t2 && t1 != t2 && buf);
	XY_CHECK(!xy_file_path(t1) && xy_file_is_temp(t1));
	XY_CHECK(!xy_file_is_temp(buf));
	XY_CHECK(!xy_manager_declare_temp(m, 7, err, sizeof err) &&
		 errno == EINVAL);
	XY_CHECK(xy_file_set_replicas(t1, 3) == 0);
	XY_CHECK(xy_file_set_replicas(t1, 0) < 0 && errno == EINVAL);
	XY_CHECK(xy_file_set_replicas(buf, 2) < 0 && errno == EINVAL);

	struct xy_task *a = xy_task_create("echo hi > out");
	XY_CHECK(xy_task_add_output(a, buf, "out", err, sizeof err) < 0);
	XY_CHECK(xy_task_add_output(a, t1, "out", err, sizeof err) == 0);
	struct xy_task *b = xy_task_create("cat in");
	XY_CHECK(xy_task_add_input(b, t1, "in", NULL, 0) == 0);
	struct xy_task *c = xy_task_create("cat in");
	XY_CHECK(xy_task_add_input(c, t2, "in", NULL, 0) == 0);
	uint64_t ia = xy_manager_submit(m, a, err, sizeof err);
	XY_CHECK(ia && xy_manager_submit(m, b, err, sizeof err) &&
		 xy_manager_submit(m, c, err, sizeof err));
	/* The caller may free its writer: the manager kept a copy. */
	XY_CHECK(xy_manager_cancel(m, ia) == 0);
	int seen = 0;
	for (int i = 0; i < 3; i++) {
		struct xy_task *r = xy_manager_wait(m, 5);
		XY_CHECK(r);
		if (r == b) {
			XY_CHECK_EQ(xy_task_result(r), XY_RESULT_INPUT_MISSING);
			XY_CHECK(strstr(xy_task_error(r),
					"temp-1 was not made"));
		} else if (r == c) {
			XY_CHECK_EQ(xy_task_result(r), XY_RESULT_INPUT_MISSING);
			XY_CHECK(strstr(xy_task_error(r),
					"temp-2: no task writes it"));
		}
		seen |= r == a ? 1 : r == b ? 2 : 4;
		xy_task_delete(r);
	}
	XY_CHECK_EQ(seen, 7);
	XY_CHECK(xy_manager_fetch(m, t1, xy_test_path("x"), 1, err,
				  sizeof err) < 0 && errno == ENOENT);
	XY_CHECK(strstr(err, "temp-1"));
	XY_CHECK(xy_manager_fetch(m, t2, xy_test_path("x"), 1, err,
				  sizeof err) < 0 && errno == ENOENT);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

static void t_cancel_cascades(void)
{
	struct xy_manager *m = mk();
	char path[4200];
	snprintf(path, sizeof path, "%s/mid.txt", xy_test_tmpdir());
	struct xy_file *f = xy_manager_declare_file(m, path, 1, NULL, 0);
	struct xy_task *a = xy_task_create("echo hi > out");
	struct xy_task *b = xy_task_create("cat in");
	xy_task_set_tag(a, "producer");
	XY_CHECK(xy_task_add_output(a, f, "out", NULL, 0) == 0);
	XY_CHECK(xy_task_add_input(b, f, "in", NULL, 0) == 0);
	uint64_t ia = xy_manager_submit(m, a, NULL, 0);
	uint64_t ib = xy_manager_submit(m, b, NULL, 0);
	XY_CHECK(ia && ib);
	XY_CHECK_EQ(xy_task_get_state(b), XY_TASK_WAITING);
	XY_CHECK_EQ(xy_task_get_state(a), XY_TASK_READY);
	/* A second writer of the same path is refused. */
	struct xy_task *c = xy_task_create("true > out");
	char err[512];
	XY_CHECK(xy_task_add_output(c, f, "out", NULL, 0) == 0);
	XY_CHECK(xy_manager_submit(m, c, err, sizeof err) == 0);
	XY_CHECK(strstr(err, "already written"));
	xy_task_delete(c);

	XY_CHECK(xy_manager_cancel(m, ia) == 0);
	XY_CHECK(xy_manager_cancel(m, 9999) < 0 && errno == ENOENT);
	struct xy_task *r1 = xy_manager_wait(m, 5);
	struct xy_task *r2 = xy_manager_wait(m, 5);
	XY_CHECK(r1 && r2);
	struct xy_task *ra = r1 == a ? r1 : r2, *rb = r1 == a ? r2 : r1;
	XY_CHECK(ra == a && rb == b);
	XY_CHECK_EQ(xy_task_result(a), XY_RESULT_CANCELLED);
	XY_CHECK_EQ(xy_task_result(b), XY_RESULT_INPUT_MISSING);
	XY_CHECK(strstr(xy_task_error(b), "producer"));
	XY_CHECK(xy_manager_cancel(m, ia) < 0);
	XY_CHECK(xy_manager_wait(m, 0) == NULL && errno == ENOENT);
	xy_task_delete(a);
	xy_task_delete(b);
	xy_manager_destroy(m);
}

/* A failed head of a chain of 100,000 tasks fails every task of the
 * chain, in a loop: by recursion (a frame of more than 1 KiB per task)
 * it overflowed the stack of the process. */
static void t_long_chain_fails_without_recursion(void)
{
	enum { N = 100000 };
	struct xy_manager *m = mk();
	char path[4200];
	snprintf(path, sizeof path, "%s/missing", xy_test_tmpdir());
	struct xy_file *in = xy_manager_declare_file(m, path, 1, NULL, 0);
	XY_CHECK(in);
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof path, "%s/chain-%d", xy_test_tmpdir(), i);
		struct xy_file *out = xy_manager_declare_file(m, path, 1, NULL,
							      0);
		struct xy_task *t = xy_task_create("cat in > out");
		XY_CHECK(out && t);
		XY_CHECK(xy_task_add_input(t, in, "in", NULL, 0) == 0);
		XY_CHECK(xy_task_add_output(t, out, "out", NULL, 0) == 0);
		XY_CHECK(xy_manager_submit(m, t, NULL, 0));
		in = out;
	}
	int failed = 0;
	struct xy_task *r;
	while ((r = xy_manager_wait(m, 30))) {
		failed += xy_task_result(r) == XY_RESULT_INPUT_MISSING;
		xy_task_delete(r);
	}
	XY_CHECK_EQ(errno, ENOENT); /* none left, none timed out */
	XY_CHECK_EQ(failed, N);
	xy_manager_destroy(m);
}

static void t_status_json(void)
{
	struct xy_manager *m = mk();
	for (int i = 0; i < 3; i++)
		XY_CHECK(xy_manager_submit(m, xy_task_create("true"), NULL, 0));
	char *s = xy_manager_status_json(m);
	XY_CHECK(s);
	XY_CHECK(strstr(s, "\"ready\":3"));
	XY_CHECK(strstr(s, "\"workers\":[]"));
	free(s);
	xy_manager_destroy(m);
}


static void count_post(struct xy_manager *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
}

struct poster {
	struct xy_manager *m;
	int count;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < 100; i++)
		XY_CHECK(xy_manager_post(p->m, count_post, &p->count) == 0);
	usleep(100000);
	xy_manager_interrupt(p->m);
	return NULL;
}

/* Another thread posts work and interrupts a run; the posts run on the
 * manager's thread, in order, and the run returns EINTR. */
static void t_post_and_interrupt(void)
{
	struct xy_manager *m = mk();
	struct poster p = {m, 0};
	pthread_t th;
	pthread_create(&th, NULL, poster_main, &p);
	double t0 = xy_now_for_tests();
	XY_CHECK_EQ(xy_manager_run(m, 10), -1);
	XY_CHECK(errno == EINTR);
	XY_CHECK(xy_now_for_tests() - t0 < 5);
	pthread_join(th, NULL);
	XY_CHECK_EQ(p.count, 100);
	/* Without tasks, run times out rather than returning at once. */
	t0 = xy_now_for_tests();
	XY_CHECK_EQ(xy_manager_run(m, 0.2), 0);
	XY_CHECK(xy_now_for_tests() - t0 >= 0.15);
	/* An interrupt before a wait is not lost. */
	xy_manager_interrupt(m);
	XY_CHECK(xy_manager_submit(m, xy_task_create("true"), NULL, 0));
	XY_CHECK(xy_manager_wait(m, 5) == NULL && errno == EINTR);
	xy_manager_destroy(m);
}

static void t_libraries_and_calls(void)
{
	struct xy_manager *m = mk();
	char err[256] = "";
	XY_CHECK(xy_task_create_call("", "x", 1) == NULL);
	XY_CHECK(xy_task_create_call("lib", NULL, XY_PAYLOAD_MAX + 1) == NULL);
	struct xy_task *c = xy_task_create_call("pylib", "payload", 7);
	XY_CHECK(c);
	/* No such library yet. */
	XY_CHECK(xy_manager_submit(m, c, err, sizeof err) == 0);
	XY_CHECK(strstr(err, "pylib"));
	/* A template with outputs is refused; a plain one is taken. */
	struct xy_task *bad = xy_task_create("serve");
	struct xy_file *o = xy_manager_declare_file(m, "o", 1, NULL, 0);
	XY_CHECK(xy_task_add_output(bad, o, "o", NULL, 0) == 0);
	XY_CHECK(xy_manager_declare_library(m, "pylib", bad, err, sizeof err)
		 < 0);
	xy_task_delete(bad);
	struct xy_task *tmpl = xy_task_create("python3 -m xylem.library");
	struct xy_file *env = xy_manager_declare_buffer(m, "env", 3, 2, NULL, 0);
	XY_CHECK(xy_task_add_input(tmpl, env, "env.tar", NULL, 0) == 0);
	XY_CHECK(xy_manager_declare_library(m, "pylib", tmpl, err, sizeof err)
		 == 0);
	xy_task_set_user(c, 77);
	XY_CHECK(xy_manager_submit(m, c, err, sizeof err) > 0);
	/* The call carries the library's input, so it is staged with it. */
	XY_CHECK_EQ(xy_task_get_state(c), XY_TASK_READY);
	XY_CHECK(xy_manager_cancel(m, xy_task_id(c)) == 0);
	struct xy_task *r = xy_manager_wait(m, 5);
	XY_CHECK(r == c && xy_task_user(r) == 77);
	XY_CHECK_EQ(xy_task_result(r), XY_RESULT_CANCELLED);
	xy_task_delete(r);
	xy_manager_destroy(m); /* frees the template */
}

static void t_setters_guarded(void)
{
	struct xy_manager *m = mk();
	struct xy_task *t = xy_task_create("true");
	xy_task_set_priority(t, NAN);
	xy_task_set_time_limit(t, INFINITY);
	XY_CHECK(xy_manager_submit(m, t, NULL, 0));
	/* Frozen once submitted. */
	xy_task_set_cores(t, 64);
	XY_CHECK(xy_task_set_env(t, "A", "b") < 0);
	struct xy_task *u = xy_task_create("true");
	xy_task_set_priority(u, 1);
	XY_CHECK(xy_manager_submit(m, u, NULL, 0));
	char *s = xy_manager_status_json(m);
	XY_CHECK(strstr(s, "\"ready\":2"));
	free(s);
	/* A NaN priority became 0 and the queue still works. */
	XY_CHECK(xy_manager_cancel(m, xy_task_id(t)) == 0);
	XY_CHECK(xy_manager_cancel(m, xy_task_id(u)) == 0);
	for (int i = 0; i < 2; i++)
		xy_task_delete(xy_manager_wait(m, 5));
	xy_manager_destroy(m);
}

/* A writer returned and freed leaves no dangling producer: a second
 * writer of the same path is accepted. */
static void t_writer_freed(void)
{
	struct xy_manager *m = mk();
	struct xy_file *f = xy_manager_declare_file(m, "out.txt", 1, NULL, 0);
	for (int i = 0; i < 2; i++) {
		struct xy_task *t = xy_task_create("echo > o");
		XY_CHECK(xy_task_add_output(t, f, "o", NULL, 0) == 0);
		XY_CHECK(xy_manager_submit(m, t, NULL, 0));
		XY_CHECK(xy_manager_cancel(m, xy_task_id(t)) == 0);
		xy_task_delete(xy_manager_wait(m, 5));
	}
	/* Over the wire's limits: refused at submit, not lost later. */
	char *big = malloc((1 << 20) + 2);
	memset(big, 'x', (1 << 20) + 1);
	big[(1 << 20) + 1] = 0;
	struct xy_task *t = xy_task_create(big);
	char err[256];
	XY_CHECK(xy_manager_submit(m, t, err, sizeof err) == 0);
	XY_CHECK(strstr(err, "command over"));
	xy_task_delete(t);
	free(big);
	xy_manager_destroy(m);
}

/* A call whose dispatch meets a failed allocation, at each one in turn
 * (its message's arrays, its input's FETCH, its library's LIBRARY), fails
 * with MANAGER_FAILED and commits nothing on its worker, a record with
 * no connection; once none fails, it is committed, and (unsent, with no
 * connection) lost and queued again, its worker free again. */
static void t_oom_dispatch(void)
{
	struct xy_manager *m = mk();
	char err[256];
	struct xy_worker *w = xy_wtable_add(m->wtable, NULL);
	XY_CHECK(w);
	w->cores = 4;
	xy_wtable_ready(m->wtable, w);
	struct xy_task *tmpl = xy_task_create("serve");
	struct xy_file *env = xy_manager_declare_buffer(m, "env", 3, 2, err,
							sizeof err);
	XY_CHECK(tmpl && env);
	XY_CHECK(xy_task_add_input(tmpl, env, "env.tar", err, sizeof err) == 0);
	XY_CHECK(xy_manager_declare_library(m, "lib", tmpl, err, sizeof err)
		 == 0);
	int failed = 0;
	for (uint64_t n = 1; n < 20; n++) {
		struct xy_task *t = xy_task_create_call("lib", "p", 1);
		XY_CHECK(xy_manager_submit(m, t, err, sizeof err) > 0);
		XY_CHECK_EQ(xy_task_get_state(t), XY_TASK_READY);
		/* As a round does: out of the queue, then dispatched. */
		xy_sched_remove(m->sched, t);
		m->fail_alloc = n;
		xy_manager_task_dispatch(m, t, w);
		XY_CHECK(w->cores_used == 0 && w->n_running == 0);
		XY_CHECK(!w->running);
		if (m->fail_alloc) { /* none failed */
			/* Sent to no connection: lost, and queued again,
			 * once. */
			XY_CHECK_EQ(xy_task_get_state(t), XY_TASK_READY);
			XY_CHECK_EQ(xy_sched_count(m->sched), 1);
			XY_CHECK_EQ(t->attempts, 1);
			XY_CHECK(w->n_libs == 1 && w->libs[0]->tmpl == tmpl);
			break;
		}
		failed++;
		XY_CHECK_EQ(xy_sched_count(m->sched), 0);
		XY_CHECK(xy_manager_wait(m, 0) == t);
		XY_CHECK_EQ(xy_task_result(t), XY_RESULT_MANAGER_FAILED);
		XY_CHECK(!strcmp(xy_task_error(t),
				 "the manager is out of memory"));
		XY_CHECK_EQ(t->attempts, 0);
		xy_task_delete(t);
	}
	/* in, out, the FETCH's record, its replica on the object and in
	 * w's list, the LIBRARY's place in w's list (what grew in a try
	 * that failed stays grown, so the counts shift): each failed once.
	 * The one FETCH recorded is in flight, not sent again. */
	XY_CHECK_EQ(failed, 6);
	XY_CHECK_EQ(w->fetches, 1);
	XY_CHECK(xy_catalog_replica_find(env->obj, w));
	/* The LIBRARY's inputs array, and its place, for another worker. */
	struct xy_worker *w2 = xy_wtable_add(m->wtable, NULL);
	XY_CHECK(w2);
	for (uint64_t n = 1; n <= 2; n++) {
		m->fail_alloc = n;
		XY_CHECK_EQ(xy_manager_send_library(m, w2, "lib"), -1);
		XY_CHECK(m->fail_alloc == 0 && w2->n_libs == 0);
	}
	XY_CHECK_EQ(xy_manager_send_library(m, w2, "lib"), 0);
	XY_CHECK_EQ(w2->n_libs, 1);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* The counts of connected workers that stats and status show are sums
 * kept as workers come, take and finish work, leave the schedule and
 * go, not walks over every worker; and a worker leaves the table's list
 * from anywhere in it. Both checked against a walk at each step. */
static void check_sums(struct xy_manager *m, int n_all)
{
	int n = 0, busy = 0, all = 0;
	int64_t cores = 0, used = 0, got_cores, got_used;
	for (struct xy_worker *w = xy_wtable_all(m->wtable); w; w = w->next) {
		XY_CHECK(!w->next || w->next->prev == w);
		all++;
		if (!w->ready)
			continue;
		n++;
		busy += w->n_running > 0;
		cores += w->cores;
		used += xy_wtable_cores_busy(w);
	}
	int got_busy;
	XY_CHECK_EQ(all, n_all);
	XY_CHECK_EQ(xy_wtable_count(m->wtable, &got_busy, &got_cores,
				    &got_used), n);
	XY_CHECK_EQ(got_busy, busy);
	XY_CHECK_EQ(got_cores, cores);
	XY_CHECK_EQ(got_used, used);
}

static void t_worker_sums(void)
{
	struct xy_manager *m = mk();
	char err[256];
	struct xy_worker *w[5];
	struct xy_task *t[5];
	for (int i = 0; i < 5; i++) {
		w[i] = xy_wtable_add(m->wtable, NULL);
		XY_CHECK(w[i]);
		w[i]->cores = i + 1;
		check_sums(m, i + 1);
		xy_wtable_ready(m->wtable, w[i]);
		check_sums(m, i + 1);
	}
	for (int i = 0; i < 5; i++) {
		t[i] = xy_task_create("true");
		xy_task_set_cores(t[i], i + 1);
		XY_CHECK(xy_manager_submit(m, t[i], err, sizeof err) > 0);
		xy_sched_remove(m->sched, t[i]);
		xy_wtable_commit(m->wtable, w[i], t[i]);
		check_sums(m, 5);
	}
	int busy;
	XY_CHECK_EQ(xy_wtable_count(m->wtable, &busy, NULL, NULL), 5);
	XY_CHECK_EQ(busy, 5);
	xy_wtable_release(m->wtable, w[0], t[0]);
	check_sums(m, 5);
	xy_wtable_disable(m->wtable, w[1]); /* busy, and leaving */
	check_sums(m, 5);
	/* The middle of the list, its head (the last added), its tail. */
	xy_wtable_remove(m->wtable, w[2], "test");
	check_sums(m, 4);
	xy_wtable_remove(m->wtable, w[4], "test");
	check_sums(m, 3);
	xy_wtable_remove(m->wtable, w[0], "test");
	check_sums(m, 2);
	/* Tasks lost with their worker are queued again. */
	XY_CHECK_EQ(xy_task_get_state(t[2]), XY_TASK_READY);
	XY_CHECK_EQ(xy_task_get_state(t[4]), XY_TASK_READY);
	xy_manager_destroy(m); /* deletes the tasks submitted to it */
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_create_needs_secret),
		XY_TEST(t_worker_sums),
		XY_TEST(t_wait_empty_and_timeout),
		XY_TEST(t_hostile_names_refused),
		XY_TEST(t_declare_checks),
		XY_TEST(t_missing_input),
		XY_TEST(t_cancel_cascades),
		XY_TEST(t_long_chain_fails_without_recursion),
		XY_TEST(t_temps),
		XY_TEST(t_status_json),
		XY_TEST(t_post_and_interrupt),
		XY_TEST(t_libraries_and_calls),
		XY_TEST(t_setters_guarded),
		XY_TEST(t_writer_freed),
		XY_TEST(t_oom_dispatch),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
