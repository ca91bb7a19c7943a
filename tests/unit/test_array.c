/*
 * test_array.c: task arrays (src/manager/array.c) through the public
 * API, with no workers: an array of a million is one record whose tasks
 * are made a window at a time, counts as a million outstanding, and
 * gives up the rest when its make function says ECANCELED.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "internal.h"
#include "xylem.h"

struct maker {
	uint64_t made, next_expected;
	int cancel, released, out_of_order;
};

static struct xy_task *make(void *arg, uint64_t index, char *err,
			    size_t errlen)
{
	struct maker *mk = arg;
	char tag[32];
	struct xy_task *t;

	(void)err;
	(void)errlen;
	if (mk->cancel) {
		errno = ECANCELED;
		return NULL;
	}
	if (index != mk->next_expected)
		mk->out_of_order = 1;
	mk->next_expected = index + 1;
	mk->made++;
	t = xy_task_create("true");
	snprintf(tag, sizeof tag, "a[%llu]", (unsigned long long)index);
	xy_task_set_tag(t, tag);
	return t;
}

static void release(void *arg)
{
	((struct maker *)arg)->released++;
}

static struct xy_manager *mk_manager(void)
{
	char err[256];
	struct xy_manager_options o = {.host = "127.0.0.1",
				       .secret = "s3cret",
				       .secret_len = 6};
	struct xy_manager *m = xy_manager_create(&o, err, sizeof err);

	XY_CHECK(m);
	return m;
}

static void t_array_is_made_a_window_at_a_time(void)
{
	struct xy_manager *m = mk_manager();
	struct maker mk = {0};
	struct xy_stats st;
	char err[256];
	struct xy_task *t;
	int64_t got = 0;

	XY_CHECK(xy_manager_submit_array(m, 1000000, make, &mk, release, err,
					 sizeof err) == 0);
	XY_CHECK_EQ(xy_manager_outstanding(m), 1000000);
	XY_CHECK(xy_manager_wait(m, 0.2) == NULL && errno == ETIMEDOUT);
	/* No worker: the window is the slack alone. */
	XY_CHECK_EQ((int64_t)mk.made, 64);
	XY_CHECK(!mk.out_of_order);
	xy_manager_stats(m, &st);
	XY_CHECK_EQ(st.tasks_ready, 64);
	XY_CHECK_EQ(xy_manager_outstanding(m), 1000000);
	/* Cancelling the made tasks makes room: the next are made, until
	 * make gives up, which drops the rest of the array. */
	for (uint64_t id = 1; id <= 10; id++)
		XY_CHECK(xy_manager_cancel(m, id) == 0);
	for (int i = 0; i < 10; i++) {
		t = xy_manager_wait(m, 1.0);
		XY_CHECK(t && xy_task_result(t) == XY_RESULT_CANCELLED);
		xy_task_delete(t);
	}
	XY_CHECK(xy_manager_wait(m, 0.2) == NULL && errno == ETIMEDOUT);
	XY_CHECK_EQ((int64_t)mk.made, 74);
	XY_CHECK_EQ(xy_manager_outstanding(m), 1000000 - 10);
	got = 10;
	mk.cancel = 1;
	for (uint64_t id = 11; id <= 74; id++)
		XY_CHECK(xy_manager_cancel(m, id) == 0);
	while ((t = xy_manager_wait(m, 1.0)) != NULL) {
		XY_CHECK(xy_task_result(t) == XY_RESULT_CANCELLED);
		XY_CHECK(strncmp(xy_task_tag(t), "a[", 2) == 0);
		xy_task_delete(t);
		got++;
	}
	XY_CHECK(errno == ENOENT);
	XY_CHECK_EQ(got, 74); /* the rest was never made */
	XY_CHECK_EQ(xy_manager_outstanding(m), 0);
	XY_CHECK_EQ(mk.released, 1);
	xy_manager_destroy(m);
}

static void t_array_checks_and_destroy(void)
{
	struct xy_manager *m = mk_manager();
	struct maker mk = {0};
	char err[256] = "";

	XY_CHECK(xy_manager_submit_array(m, 0, make, &mk, release, err,
					 sizeof err) < 0 && errno == EINVAL);
	XY_CHECK(err[0]);
	XY_CHECK(xy_manager_submit_array(m, 5, NULL, &mk, release, err,
					 sizeof err) < 0);
	XY_CHECK(xy_manager_submit_array(m, 500, make, &mk, release, err,
					 sizeof err) == 0);
	/* Destroyed before any index was made: the record is freed, and
	 * its argument released. */
	xy_manager_destroy(m);
	XY_CHECK_EQ(mk.released, 1);
	XY_CHECK_EQ((int64_t)mk.made, 0);
	XY_CHECK(xy__array_record_size() < 100);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_array_is_made_a_window_at_a_time),
		XY_TEST(t_array_checks_and_destroy),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
