/*
 * test_hold.c: unit tests for hold.h, what a worker keeps for a manager
 * that may come back: reports kept after sending stay bounded; once the
 * manager is lost they are held under fresh held ids, listed for HELLO,
 * and an ADOPT gives back the very report (outputs, output bytes) under
 * the new id, kept again as sent; CANCEL (drop) forgets one; an unknown
 * held id is neither adopted nor dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hold.h"

static struct xy_msg_task_done report(uint64_t id, struct xy_done_output *o)
{
	struct xy_msg_task_done d;
	memset(&d, 0, sizeof d);
	d.task_id = id;
	d.result = 0;
	d.exit_code = 3;
	d.output = "hello\0world";
	d.output_len = 11;
	d.message = "";
	d.n_outputs = 1;
	d.outputs = o;
	return d;
}

static void t_lost_then_adopted(void)
{
	struct xy_hold *h = xy_hold_create();
	struct xy_done_output o = {.name = "out", .id = {7}, .size = 12};
	uint8_t key[XY_ID_LEN] = {0xab};
	struct xy_msg_task_done d = report(41, &o);

	xy_hold_sent(h, &d, key);
	XY_CHECK_EQ(xy_hold_count(h), 0); /* sent, not held yet */
	xy_hold_lost(h);
	XY_CHECK_EQ(xy_hold_count(h), 1);

	struct xy_held_task *v = NULL;
	uint32_t n = 0;
	XY_CHECK_EQ(xy_hold_list(h, &v, &n), 0);
	XY_CHECK_EQ(n, 1);
	XY_CHECK(v[0].id & XY_HELD_BIT);
	XY_CHECK_EQ(v[0].finished, 1);
	XY_CHECK_EQ(v[0].key[0], 0xab);
	uint64_t held = v[0].id;
	free(v);

	union xy_msg m;
	XY_CHECK_EQ(xy_hold_adopt(h, held ^ 1, 99, &m), 0); /* unknown */
	XY_CHECK_EQ(xy_hold_adopt(h, held, 99, &m), 1);
	XY_CHECK_EQ(m.task_done.task_id, 99);
	XY_CHECK_EQ(m.task_done.exit_code, 3);
	XY_CHECK_EQ(m.task_done.output_len, 11);
	XY_CHECK(!memcmp(m.task_done.output, "hello\0world", 11));
	XY_CHECK_EQ(m.task_done.n_outputs, 1);
	XY_CHECK_EQ(m.task_done.outputs[0].id[0], 7);
	xy_msg_free(XY_MSG_TASK_DONE, &m);
	XY_CHECK_EQ(xy_hold_count(h), 0);

	/* Sent again under 99: lost again, it is held again. */
	xy_hold_lost(h);
	XY_CHECK_EQ(xy_hold_count(h), 1);
	xy_hold_destroy(h);
	xy_test_check_no_leaks();
}

static void t_kept_and_dropped(void)
{
	struct xy_hold *h = xy_hold_create();
	struct xy_done_output o = {.name = "out", .id = {1}, .size = 1};
	uint8_t key[XY_ID_LEN] = {1};
	uint64_t a = xy_hold_new_id(h), b = xy_hold_new_id(h);
	XY_CHECK(a != b && (a & XY_HELD_BIT) && (b & XY_HELD_BIT));
	struct xy_msg_task_done d = report(a, &o);
	XY_CHECK_EQ(xy_hold_keep(h, &d, key), 0);
	XY_CHECK_EQ(xy_hold_count(h), 1);
	XY_CHECK_EQ(xy_hold_drop(h, b), 0);
	XY_CHECK_EQ(xy_hold_drop(h, a), 1);
	XY_CHECK_EQ(xy_hold_count(h), 0);
	xy_hold_destroy(h);
	xy_test_check_no_leaks();
}

/* Reports kept after sending are bounded: the oldest go. */
static void t_sent_is_bounded(void)
{
	struct xy_hold *h = xy_hold_create();
	struct xy_done_output o = {.name = "out", .id = {1}, .size = 1};
	uint8_t key[XY_ID_LEN] = {1};
	for (uint64_t i = 1; i <= 5000; i++) {
		struct xy_msg_task_done d = report(i, &o);
		xy_hold_sent(h, &d, key);
	}
	xy_hold_lost(h);
	XY_CHECK_EQ(xy_hold_count(h), 4096);
	xy_hold_destroy(h);
	xy_test_check_no_leaks();
}

/* A new TASK of a key drops what was kept of that key (an earlier
 * attempt's report), sent or held, and nothing else. */
static void t_forget_key(void)
{
	struct xy_hold *h = xy_hold_create();
	struct xy_done_output o = {.name = "out", .id = {1}, .size = 1};
	uint8_t a[XY_ID_LEN] = {0xa}, b[XY_ID_LEN] = {0xb};
	for (uint64_t i = 1; i <= 3; i++) {
		struct xy_msg_task_done d = report(i, &o);
		xy_hold_sent(h, &d, a);
	}
	struct xy_msg_task_done d = report(4, &o);
	xy_hold_sent(h, &d, b);
	d = report(xy_hold_new_id(h), &o);
	XY_CHECK_EQ(xy_hold_keep(h, &d, a), 0);
	xy_hold_forget_key(h, a);
	XY_CHECK_EQ(xy_hold_count(h), 0);
	xy_hold_lost(h);
	struct xy_held_task *v = NULL;
	uint32_t n = 0;
	XY_CHECK_EQ(xy_hold_list(h, &v, &n), 0);
	XY_CHECK_EQ(n, 1);
	XY_CHECK_EQ(v[0].key[0], 0xb);
	free(v);
	xy_hold_destroy(h);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_lost_then_adopted),
		XY_TEST(t_kept_and_dropped),
		XY_TEST(t_sent_is_bounded),
		XY_TEST(t_forget_key),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
