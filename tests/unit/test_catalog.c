/*
 * test_catalog.c: the file catalogue: one file per path, objects by id,
 * replicas, and the served-object table the transfer server reads.
 */
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

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_file_once_per_path),
		XY_TEST(t_objects_and_replicas),
		XY_TEST(t_served_table),
		XY_TEST(t_buffer_is_ready),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
