/*
 * test_manager.c: the manager through the public API alone, with no
 * workers: creation, submission checks, dependencies, cancellation and
 * its cascade, a missing input found by the hashing thread, timeouts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
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

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_create_needs_secret),
		XY_TEST(t_wait_empty_and_timeout),
		XY_TEST(t_hostile_names_refused),
		XY_TEST(t_missing_input),
		XY_TEST(t_cancel_cascades),
		XY_TEST(t_status_json),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
