/*
 * test_xplan.c: the transfer planner's choice of sources (xplan.c), with
 * a manager made of its catalogue alone and workers that are records
 * with no connection (a FETCH to them is planned, then dropped unsent),
 * so that each case reads the plan straight from the planner and plays
 * the receivers' CACHE_UPDATEs by hand. Cases: a source blamed for one
 * object rests for that object only, and chains and new fetches go
 * around it; a host that one receiver cannot reach rests for that
 * receiver alone, and for everyone once a second one cannot; a rest
 * ends, and
 * doubles when the source fails again soon after; the last copy is
 * still used while it rests; a source that delivers is trusted again; a
 * resting receiver takes no successor; a receiver that fails on its own
 * side rests no source, and if its disk was full (NO_ROOM) gets no input
 * as large for a while. When an allocation fails (the manager's
 * fail_alloc): a FETCH not planned leaves nothing behind, a task staged
 * in part keeps the fetches sent, a rest not recorded is not taken, and
 * a retrieval not started runs no callback.
 * The same behaviour with real workers across hosts is
 * tests/netns/test_dataplane.py (tests/system/test_full_disk.py for the
 * full disk).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "internal.h"
#include "util.h"

#define MIB (1u << 20)

struct env {
	struct xy_manager m;
	struct xy_worker w[6]; /* A..F */
};

/* The manager's clock in these tests: time passes when a test says so,
 * not by sleeping. */
static double fake_now = 1000;

static double fake_clock(void)
{
	return fake_now;
}

static struct xy_xplan *setup(struct env *e)
{
	char err[256];
	static const char *names[] = {"A", "B", "C", "D", "E", "F"};
	/* Each on a host of its own, as a receiver's rest tells them apart. */
	static const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3",
				      "10.0.0.4", "10.0.0.5", "10.0.0.6"};
	memset(e, 0, sizeof *e);
	e->m.clock = fake_clock;
	e->m.catalog = xy_catalog_create(&e->m, err, sizeof err);
	XY_CHECK(e->m.catalog);
	e->m.xplan = xy_xplan_create(&e->m, "s", 1);
	XY_CHECK(e->m.xplan);
	for (int i = 0; i < 6; i++) {
		e->w[i].name = (char *)names[i];
		e->w[i].addr = (char *)addrs[i];
		e->w[i].xfer_port = 9000 + i;
		e->w[i].greeted = e->w[i].ready = 1;
		e->w[i].manager = &e->m;
	}
	return e->m.xplan;
}

static void teardown(struct env *e)
{
	xy_xplan_destroy(e->m.xplan);
	for (int i = 0; i < 6; i++) {
		xy_xplan_worker_free(&e->w[i]);
		free(e->w[i].held);
	}
	xy_catalog_destroy(e->m.catalog);
	xy_test_check_no_leaks();
}

/* An object of size bytes with a chunk list (size > 1 MiB) or without,
 * held complete by the workers in `holders` ("AB": A and B). */
static struct xy_object *object(struct env *e, uint8_t tag, uint64_t size,
				const char *holders)
{
	uint8_t id[XY_ID_LEN] = {tag};
	struct xy_object *o = xy_catalog_object(e->m.catalog, id, 0, size);
	if (size > MIB) {
		o->chunks.chunk_size = MIB;
		o->chunks.n = (uint32_t)((size + MIB - 1) / MIB);
		o->chunks.hash = calloc(o->chunks.n, XY_ID_LEN);
		XY_CHECK(o->chunks.hash);
	}
	for (const char *h = holders; *h; h++)
		xy_catalog_replica_add(o, &e->w[*h - 'A'], 1);
	return o;
}

/* The sources planned for o to dest, as letters ("" none; "m" the
 * manager): sends the FETCH first. */
static const char *plan(struct env *e, struct xy_object *o, int dest)
{
	static char out[XY_MAX_SOURCES + 1];
	struct xy_worker *s[XY_MAX_SOURCES];
	xy_xplan_copy(e->m.xplan, o, XY_CACHE_WORKFLOW, &e->w[dest]);
	int n = xy_xplan_sources(e->m.xplan, o, &e->w[dest], s,
				 XY_MAX_SOURCES);
	XY_CHECK(n >= 0);
	for (int i = 0; i < n; i++)
		out[i] = s[i] ? (char)('A' + (s[i] - e->w)) : 'm';
	out[n] = 0;
	return out;
}

/* dest reports the end of its fetch of o, blaming its sources as given
 * (blame[i] for the FETCH's source i). */
static void report(struct env *e, struct xy_object *o, int dest, int status,
		   uint8_t b0, uint8_t b1)
{
	struct xy_msg_cache_update u;
	memset(&u, 0, sizeof u);
	memcpy(u.id, o->id, XY_ID_LEN);
	u.kind = o->kind;
	u.status = (uint8_t)status;
	u.size = status == XY_OBJ_OK ? o->size : 0;
	u.text = status == XY_OBJ_OK ? "" : "failed";
	u.blame[0] = b0;
	u.blame[1] = b1;
	xy_xplan_update(e->m.xplan, &e->w[dest], &u);
}

enum { A, B, C, D, E, F };

static void t_object_blame(void)
{
	struct env e;
	setup(&e);
	struct xy_object *o = object(&e, 1, 4 * MIB, "AB");
	struct xy_object *o2 = object(&e, 2, 4 * MIB, "A");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_CORRUPT, XY_BLAME_OBJECT, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 1);
	/* A rests for o: a new chain starts from B, and a receiver that
	 * joins it has B as its fallback, never A. */
	XY_CHECK(!strcmp(plan(&e, o, E), "B"));
	XY_CHECK(!strcmp(plan(&e, o, F), "EB"));
	/* Not for o2. */
	XY_CHECK(!strcmp(plan(&e, o2, C), "A"));
	teardown(&e);
}

static void t_host_blame(void)
{
	struct env e;
	setup(&e);
	struct xy_object *o = object(&e, 1, 4 * MIB, "AB");
	struct xy_object *o2 = object(&e, 2, 512 * 1024, "AB");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	/* A fetch that went on past A, and succeeded from B's copy: D could
	 * not reach A's host. That may be D's side or the path: A rests for
	 * D alone, for every object, and serves the others. */
	report(&e, o, D, XY_OBJ_OK, XY_BLAME_HOST, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 1);
	XY_CHECK(!strcmp(plan(&e, o2, D), "B"));
	XY_CHECK(!strcmp(plan(&e, o2, C), "A"));
	/* C cannot reach it either (and got o2 elsewhere): two receivers,
	 * one host at fault. A rests for everyone now; E is served by C,
	 * the least busy copy left. */
	report(&e, o2, C, XY_OBJ_OK, XY_BLAME_HOST, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 2);
	XY_CHECK(!strcmp(plan(&e, o2, E), "C"));
	teardown(&e);
}

static void t_pair_rest_ends_for_its_receiver(void)
{
	struct env e;
	struct xy_xplan *x = setup(&e);
	xy_xplan_set_cooldown(x, 0.3, 2.0);
	struct xy_object *o = object(&e, 1, 512 * 1024, "AB");
	struct xy_object *o2 = object(&e, 2, 512 * 1024, "A");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_FAILED, XY_BLAME_HOST, 0);
	/* For D, A is the last copy of o2: asked all the same. */
	XY_CHECK(!strcmp(plan(&e, o2, D), "A"));
	report(&e, o2, D, XY_OBJ_FAILED, XY_BLAME_HOST, 0);
	/* The same receiver again is no second witness: A still serves E. */
	XY_CHECK(!strcmp(plan(&e, o, E), "A"));
	report(&e, o, E, XY_OBJ_OK, XY_BLAME_NONE, 0);
	/* The rest for D ends. */
	fake_now += 0.4;
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	/* D gets it from A: trusted again by D. */
	report(&e, o, D, XY_OBJ_OK, XY_BLAME_NONE, 0);
	XY_CHECK(e.w[A].cooling == NULL);
	teardown(&e);
}

static void t_rest_ends_and_doubles(void)
{
	struct env e;
	struct xy_xplan *x = setup(&e);
	xy_xplan_set_cooldown(x, 0.3, 2.0);
	struct xy_object *o = object(&e, 1, 512 * 1024, "AB");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_FAILED, XY_BLAME_OBJECT, 0);
	/* A failure from a fetch planned before the rest began does not
	 * lengthen it. */
	XY_CHECK(!strcmp(plan(&e, o, E), "B"));
	report(&e, o, E, XY_OBJ_FAILED, XY_BLAME_NONE, 0);
	fake_now += 0.4;
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	XY_CHECK(!strcmp(plan(&e, o, E), "A")); /* tried again */
	report(&e, o, E, XY_OBJ_FAILED, XY_BLAME_OBJECT, 0);
	/* Failed again soon after: 0.6 s now. */
	fake_now += 0.4;
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 1);
	XY_CHECK(!strcmp(plan(&e, o, C), "B"));
	fake_now += 0.3;
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	teardown(&e);
}

static void t_last_copy_and_recovery(void)
{
	struct env e;
	setup(&e);
	struct xy_object *o = object(&e, 1, 512 * 1024, "A");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_FAILED, XY_BLAME_HOST, 0);
	/* A rests, but holds the only copy: asked all the same. */
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	/* It delivers: no longer resting, for anything. */
	report(&e, o, D, XY_OBJ_OK, XY_BLAME_NONE, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	teardown(&e);
}

static void t_resting_tail_skipped(void)
{
	struct env e;
	setup(&e);
	struct xy_object *o = object(&e, 1, 4 * MIB, "A");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	XY_CHECK(!strcmp(plan(&e, o, E), "DA"));
	/* E could not read D's stream, and then failed on its own side. */
	report(&e, o, E, XY_OBJ_FAILED, XY_BLAME_OBJECT, XY_BLAME_NONE);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[D]), 1);
	/* D is the chain's tail again, but rests: F reads from A. */
	XY_CHECK(!strcmp(plan(&e, o, F), "A"));
	/* D's own fetch ends; C joins the one tail left, F. */
	report(&e, o, D, XY_OBJ_OK, 0, 0);
	XY_CHECK(!strcmp(plan(&e, o, C), "FA"));
	XY_CHECK_EQ(xy_xplan_resting(&e.w[D]), 1);
	teardown(&e);
}

/* A receiver whose disk was full (NO_ROOM) blames no source, and for a
 * while gets no input as large; a smaller one lowers that mark, a larger
 * one leaves it. Its own failure of another kind (FAILED, no source
 * blamed) marks nothing; a source that cut it off rests. */
static void t_receiver_failure(void)
{
	struct env e;
	setup(&e);
	struct xy_object *o = object(&e, 1, 16 * MIB, "AB");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_NO_ROOM, XY_BLAME_NONE, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	XY_CHECK(!xy_catalog_replica_find(o, &e.w[D]));
	double now = xy_manager_now(&e.m);
	/* (A need counts each input as its size plus one.) */
	XY_CHECK(!xy_wtable_has_room(&e.w[D], 16 * MIB + 1, now));
	XY_CHECK(xy_wtable_has_room(&e.w[D], 16 * MIB, now));
	XY_CHECK(xy_wtable_has_room(&e.w[D], 16 * MIB + 1, now + 301));
	struct xy_object *o2 = object(&e, 2, 4 * MIB, "A");
	XY_CHECK(!strcmp(plan(&e, o2, D), "A"));
	report(&e, o2, D, XY_OBJ_NO_ROOM, XY_BLAME_NONE, 0);
	XY_CHECK(!xy_wtable_has_room(&e.w[D], 4 * MIB + 1, now));
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_NO_ROOM, XY_BLAME_NONE, 0);
	XY_CHECK(!xy_wtable_has_room(&e.w[D], 4 * MIB + 1, now));
	XY_CHECK(xy_wtable_has_room(&e.w[D], 4 * MIB, now));
	/* An empty object (a directory, with no inodes left) marks too. */
	struct xy_object *o3 = object(&e, 3, 0, "A");
	XY_CHECK(!strcmp(plan(&e, o3, D), "A"));
	report(&e, o3, D, XY_OBJ_NO_ROOM, XY_BLAME_NONE, 0);
	XY_CHECK(!xy_wtable_has_room(&e.w[D], 1, now));
	/* E fails on its own side otherwise: nobody rests, nothing marked. */
	XY_CHECK(!strcmp(plan(&e, o, E), "A"));
	report(&e, o, E, XY_OBJ_FAILED, XY_BLAME_NONE, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	XY_CHECK(xy_wtable_has_room(&e.w[E], 16 * MIB + 1, now));
	/* E is cut off by its source: the source's fault, not E's disk. */
	XY_CHECK(!strcmp(plan(&e, o, E), "A"));
	report(&e, o, E, XY_OBJ_FAILED, XY_BLAME_OBJECT, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 1);
	XY_CHECK(xy_wtable_has_room(&e.w[E], 16 * MIB + 1, now));
	teardown(&e);
}

/* ------------------------------------------------------- out of memory */

/* A FETCH that cannot be planned (its record, the replica on the
 * object, the receiver's list: each allocation in turn) is not sent, and
 * leaves nothing behind: no fetch, no replica, no count of fetches or of
 * transfers served. With memory, the same plan goes through. */
static void t_oom_fetch_not_planned(void)
{
	struct env e;
	struct xy_xplan *x = setup(&e);
	struct xy_object *o = object(&e, 1, 4 * MIB, "AB");
	struct xy_worker *s[XY_MAX_SOURCES];
	for (uint64_t n = 1; n <= 4; n++) { /* 3 allocations, then none */
		e.m.fail_alloc = n;
		int rc = xy_xplan_copy(x, o, XY_CACHE_WORKFLOW, &e.w[D]);
		if (n == 4) {
			XY_CHECK_EQ(rc, 0);
			break;
		}
		XY_CHECK_EQ(rc, -1);
		XY_CHECK_EQ(e.m.fail_alloc, 0);
		XY_CHECK_EQ(xy_xplan_sources(x, o, &e.w[D], s, 4), -1);
		XY_CHECK(!xy_catalog_replica_find(o, &e.w[D]));
		XY_CHECK_EQ(e.w[D].n_held, 0);
		XY_CHECK_EQ(e.w[D].fetches, 0);
		XY_CHECK(e.w[A].serving == 0 && e.w[B].serving == 0);
		XY_CHECK_EQ(xy_xplan_active(x), 0);
	}
	XY_CHECK(e.m.fail_alloc > 0); /* none failed */
	e.m.fail_alloc = 0;
	XY_CHECK_EQ(xy_xplan_sources(x, o, &e.w[D], s, 4), 1);
	XY_CHECK(xy_catalog_replica_find(o, &e.w[D]));
	XY_CHECK_EQ(xy_xplan_active(x), 1);
	report(&e, o, D, XY_OBJ_OK, 0, 0);
	XY_CHECK(xy_catalog_replica_find(o, &e.w[D])->ready);
	teardown(&e);
}

/* Staging a task whose second input cannot be planned: -1, and the
 * first input's fetch stays in flight, recorded as any other. */
static void t_oom_stage(void)
{
	struct env e;
	struct xy_xplan *x = setup(&e);
	struct xy_object *o1 = object(&e, 1, 100, "A");
	struct xy_object *o2 = object(&e, 2, 100, "A");
	struct xy_file f1 = {.state = FILE_READY, .obj = o1};
	struct xy_file f2 = {.state = FILE_READY, .obj = o2};
	struct task_file in[2] = {{.file = &f1, .as = "a"},
				  {.file = &f2, .as = "b"}};
	struct xy_task t = {.inputs = in, .n_inputs = 2};
	struct xy_worker *s[XY_MAX_SOURCES];
	/* o1: the fetch, C's list (o1's array has room); o2: the fetch. */
	e.m.fail_alloc = 3;
	XY_CHECK_EQ(xy_xplan_stage(x, &t, &e.w[C]), -1);
	XY_CHECK_EQ(xy_xplan_sources(x, o1, &e.w[C], s, 4), 1);
	XY_CHECK_EQ(xy_xplan_sources(x, o2, &e.w[C], s, 4), -1);
	XY_CHECK(xy_catalog_replica_find(o1, &e.w[C]));
	XY_CHECK(!xy_catalog_replica_find(o2, &e.w[C]));
	XY_CHECK_EQ(e.w[C].fetches, 1);
	XY_CHECK_EQ(e.w[A].serving, 1);
	report(&e, o1, C, XY_OBJ_OK, 0, 0);
	XY_CHECK_EQ(xy_xplan_active(x), 0);
	teardown(&e);
}

/* A rest that cannot be recorded is not taken: the blamed source is
 * still planned first. */
static void t_oom_rest_not_recorded(void)
{
	struct env e;
	setup(&e);
	struct xy_object *o = object(&e, 1, 512 * 1024, "AB");
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	e.m.fail_alloc = 1;
	report(&e, o, D, XY_OBJ_CORRUPT, XY_BLAME_OBJECT, 0);
	XY_CHECK_EQ(e.m.fail_alloc, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 0);
	XY_CHECK(!strcmp(plan(&e, o, D), "A"));
	report(&e, o, D, XY_OBJ_CORRUPT, XY_BLAME_OBJECT, 0);
	XY_CHECK_EQ(xy_xplan_resting(&e.w[A]), 1);
	teardown(&e);
}

static void no_call(void *arg, int ok, const char *why)
{
	(void)arg, (void)ok, (void)why;
	XY_CHECK(!"called");
}

/* A retrieval that cannot start (its job, then each of its strings) is
 * -1, with nothing in flight and its callback never run. */
static void t_oom_retrieve_not_started(void)
{
	struct env e;
	struct xy_xplan *x = setup(&e);
	struct xy_object *o = object(&e, 1, 100, "A");
	for (uint64_t n = 1; n <= 4; n++) {
		e.m.fail_alloc = n;
		XY_CHECK_EQ(xy_xplan_retrieve_cb(x, &e.w[A], o, "/nowhere/x",
						 no_call, NULL), -1);
		XY_CHECK_EQ(e.m.fail_alloc, 0);
		XY_CHECK(!xy_xplan_busy(x));
		XY_CHECK_EQ(xy_xplan_active(x), 0);
	}
	teardown(&e);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_object_blame),
		XY_TEST(t_host_blame),
		XY_TEST(t_pair_rest_ends_for_its_receiver),
		XY_TEST(t_rest_ends_and_doubles),
		XY_TEST(t_last_copy_and_recovery),
		XY_TEST(t_resting_tail_skipped),
		XY_TEST(t_receiver_failure),
		XY_TEST(t_oom_fetch_not_planned),
		XY_TEST(t_oom_stage),
		XY_TEST(t_oom_rest_not_recorded),
		XY_TEST(t_oom_retrieve_not_started),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
