/*
 * test_catalog.c: the file catalogue: one file per path, objects by id,
 * replicas, the served-object table the transfer server reads, and a
 * lost temp's wait for a copy in flight (with a manager and fake worker
 * records).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "internal.h"

static void t_file_once_per_path(void)
{
	struct xy_catalog *c = xy_catalog_create(NULL, NULL, 0);
	XY_CHECK(c);
	struct xy_file *a = xy_catalog_file(c, "data/a.txt", XY_CACHE_WORKFLOW);
	struct xy_file *b = xy_catalog_file(c, "data/b.txt", XY_CACHE_WORKFLOW);
	XY_CHECK(a && b && a != b);
	XY_CHECK(xy_catalog_file(c, "data/a.txt", XY_CACHE_TASK) == a);
	XY_CHECK(!strcmp(a->path, "data/a.txt"));
	xy_catalog_destroy(c);
}

static void t_objects_and_replicas(void)
{
	struct xy_catalog *c = xy_catalog_create(NULL, NULL, 0);
	uint8_t id[XY_ID_LEN] = {1, 2, 3};
	struct xy_object *o = xy_catalog_object(c, id, XY_KIND_FILE, 42);
	XY_CHECK(o->size == 42);
	XY_CHECK(xy_catalog_object(c, id, XY_KIND_FILE, 42) == o);
	struct xy_worker w1 = {0}, w2 = {0};
	xy_catalog_replica_add(o, &w1, 0);
	xy_catalog_replica_add(o, &w2, 1);
	xy_catalog_replica_add(o, &w1, 1);
	XY_CHECK_EQ(o->n_replicas, 2);
	XY_CHECK(xy_catalog_replica_find(o, &w1)->ready);
	xy_catalog_replica_drop(o, &w1);
	XY_CHECK(xy_catalog_replica_find(o, &w1) == NULL);
	XY_CHECK(xy_catalog_replica_find(o, &w2) != NULL);
	free(w1.held);
	free(w2.held);
	xy_catalog_destroy(c);
}

static void t_served_table(void)
{
	struct xy_catalog *c = xy_catalog_create(NULL, NULL, 0);
	uint8_t id[XY_ID_LEN] = {9}, other[XY_ID_LEN] = {8};
	struct xy_object *o = xy_catalog_object(c, id, XY_KIND_DIR, 1);
	char path[256];
	uint8_t kind = 0;
	XY_CHECK(xy_catalog_lookup(c, id, path, sizeof path, &kind) < 0);
	xy_catalog_serve(c, o, "/some/where");
	XY_CHECK(o->on_manager);
	XY_CHECK(xy_catalog_lookup(c, id, path, sizeof path, &kind) == 0);
	XY_CHECK(!strcmp(path, "/some/where") && kind == XY_KIND_DIR);
	XY_CHECK(xy_catalog_lookup(c, other, path, sizeof path, &kind) < 0);
	/* A buffer too small for the path is a miss, not an overflow. */
	XY_CHECK(xy_catalog_lookup(c, id, path, 4, &kind) < 0);
	xy_catalog_destroy(c);
}

static void t_buffer_is_ready(void)
{
	struct xy_catalog *c = xy_catalog_create(NULL, NULL, 0);
	char err[256];
	struct xy_file *f = xy_catalog_buffer(c, "hello\n", 6,
					      XY_CACHE_TASK, err, sizeof err);
	XY_CHECK(f);
	XY_CHECK(f->state == FILE_READY && f->obj && f->obj->on_manager);
	XY_CHECK(f->obj->size == 6);
	/* sha256("hello\n") */
	XY_CHECK(!strncmp(f->obj->hex, "5891b5b522d5df086d0ff0b110fbd9d2", 32));
	xy_catalog_destroy(c);
}

static struct xy_manager *mk(void)
{
	char err[256];
	struct xy_manager_options o = {.host = "127.0.0.1",
				       .secret = "s", .secret_len = 1};
	struct xy_manager *m = xy_manager_create(&o, err, sizeof err);
	if (!m)
		fprintf(stderr, "create: %s\n", err);
	XY_CHECK(m);
	return m;
}

/* A temp as its writer left it: recorded (it can be made again), ready,
 * its only ready copy on gone (a worker no longer ready), and a copy on
 * its way to to (a ready worker). */
static struct xy_file *stranded_temp(struct xy_manager *m, uint8_t tag,
				     struct xy_worker *gone,
				     struct xy_worker *to)
{
	char err[256];
	struct xy_file *f = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_task *w = xy_task_create("echo x > out");
	uint8_t id[XY_ID_LEN] = {tag};
	XY_CHECK(f && w);
	XY_CHECK(xy_task_add_output(w, f, "out", err, sizeof err) == 0);
	XY_CHECK(xy_lineage_record(m->lineage, w, err, sizeof err) == 0);
	xy_task_delete(w);
	f->obj = xy_catalog_object(m->catalog, id, XY_KIND_FILE, 2);
	f->state = FILE_READY;
	xy_catalog_replica_add(f->obj, gone, 1);
	xy_catalog_replica_add(f->obj, to, 0);
	return f;
}

static struct xy_task *reader(struct xy_manager *m, struct xy_file *f)
{
	char err[256];
	struct xy_task *t = xy_task_create("cat in");
	XY_CHECK(t && xy_task_add_input(t, f, "in", err, sizeof err) == 0);
	XY_CHECK(xy_manager_submit(m, t, err, sizeof err));
	return t;
}

/* A temp whose last ready copy went while another was on its way: its
 * reader waits for that copy rather than have the temp made again; the
 * copy lands and the reader is ready, with no remake. Had the copy
 * failed, the temp would have been made again then. */
static void t_temp_waits_for_copy_in_flight(void)
{
	struct xy_manager *m = mk();
	struct xy_worker gone = {.name = "gone"}, to = {.name = "to",
							.ready = 1};
	struct xy_file *f = stranded_temp(m, 1, &gone, &to);
	struct xy_task *b = reader(m, f);
	XY_CHECK_EQ(b->pending, 1);
	XY_CHECK(f->obj && f->state == FILE_READY && f->awaiting);
	XY_CHECK_EQ(xy_lineage_remakes(m->lineage), 0);
	xy_catalog_copies_changed(m->catalog); /* nothing yet */
	XY_CHECK_EQ(b->pending, 1);
	xy_catalog_replica_find(f->obj, &to)->ready = 1; /* CACHE_UPDATE */
	xy_catalog_copies_changed(m->catalog);
	XY_CHECK_EQ(b->pending, 0);
	XY_CHECK(b->state == XY_TASK_READY && !f->awaiting);
	XY_CHECK_EQ(xy_lineage_remakes(m->lineage), 0);

	/* The same, but the copy fails: made again, the reader waits on
	 * the remake. */
	struct xy_file *g = stranded_temp(m, 2, &gone, &to);
	struct xy_task *c = reader(m, g);
	XY_CHECK_EQ(c->pending, 1);
	XY_CHECK_EQ(xy_lineage_remakes(m->lineage), 0);
	xy_catalog_replica_drop(g->obj, &to); /* its FETCH failed */
	xy_catalog_copies_changed(m->catalog);
	XY_CHECK_EQ(xy_lineage_remakes(m->lineage), 1);
	XY_CHECK(g->state == FILE_PRODUCED && g->producer && !g->awaiting);
	XY_CHECK_EQ(c->pending, 1);
	xy_manager_destroy(m);
	free(gone.held);
	free(to.held);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_file_once_per_path),
		XY_TEST(t_objects_and_replicas),
		XY_TEST(t_served_table),
		XY_TEST(t_buffer_is_ready),
		XY_TEST(t_temp_waits_for_copy_in_flight),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
