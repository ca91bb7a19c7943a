/*
 * test_catalog.c: the file catalogue: one file per path, objects by id,
 * replicas, the served-object table the transfer server reads, and a
 * lost temp's wait for a copy in flight (with a manager and fake worker
 * records); and what is left when an allocation fails (the manager's
 * fail_alloc): an object or a replica not recorded, a buffer refused, a
 * hashed file's or a fetched URL's readers failed, a HELLO's inventory
 * recorded in part. And when a file is freed (its handles given back and
 * nothing of the manager's needing it): a double release; an input of a
 * queued task kept until the task is returned; a recipe's input kept
 * while its temp lives; an object kept while another file has it
 * (served from that file's path then) and freed with its last file; one
 * staged copy for equal buffers; idle objects (copies on workers) found
 * again by a file of the same content, the oldest dropped past
 * XY_IDLE_OBJECTS. With real workers: test_lineage.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "internal.h"
#include "util.h"

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
	xy_catalog_file_set_object(m->catalog, f, xy_catalog_object(
		m->catalog, id, XY_KIND_FILE, 2));
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

/* ---------------------------------------------------- when a file goes */

static int staged(struct xy_manager *m);

static int64_t n_files(struct xy_manager *m)
{
	struct xy_stats st;
	xy_manager_stats(m, &st);
	return st.files;
}

static int64_t n_objects(struct xy_manager *m)
{
	struct xy_stats st;
	xy_manager_stats(m, &st);
	return st.objects;
}

static const char *write_text(const char *name, const char *text)
{
	const char *path = xy_test_path(name);
	FILE *fp = fopen(path, "w");
	XY_CHECK(fp && fputs(text, fp) >= 0 && fclose(fp) == 0);
	return path;
}

/* Each declaration is a handle; the file goes at the phase after the
 * last is given back. One release too many is refused and harmless. */
static void t_release_handles(void)
{
	struct xy_manager *m = mk();
	char err[256];
	struct xy_file *a = xy_manager_declare_file(m, "/x/a", 1, err,
						    sizeof err);
	XY_CHECK(xy_manager_declare_file(m, "/x/a", 1, err, sizeof err) == a);
	struct xy_file *t = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_file *b = xy_manager_declare_buffer(m, "b", 1, 1, err,
						      sizeof err);
	XY_CHECK(a && t && b);
	XY_CHECK_EQ(n_files(m), 3);
	XY_CHECK_EQ(xy_file_release(a), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_files(m), 3); /* a has a handle left */
	XY_CHECK_EQ(xy_file_release(a), 0);
	XY_CHECK_EQ(xy_file_release(t), 0);
	XY_CHECK_EQ(xy_file_release(b), 0);
	/* Again, before the phase frees them: refused, nothing changes. */
	errno = 0;
	XY_CHECK(xy_file_release(a) < 0 && errno == EINVAL);
	XY_CHECK(xy_file_release(t) < 0 && errno == EINVAL);
	XY_CHECK(xy_file_release(NULL) < 0 && errno == EINVAL);
	XY_CHECK_EQ(n_files(m), 3);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_files(m), 0);
	XY_CHECK_EQ(n_objects(m), 0); /* the buffer's, with no copy left */
	XY_CHECK(xy_manager_declare_file(m, "/x/a", 1, err, sizeof err));
	XY_CHECK_EQ(n_files(m), 1);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* A released input of a queued task stays until the task is returned:
 * then the file goes, and its object with it (no worker holds it). A
 * file declared again before the phase is not freed. */
static void t_released_input_waits_for_its_task(void)
{
	struct xy_manager *m = mk();
	char err[256];
	const char *path = write_text("in.txt", "input\n");
	struct xy_file *f = xy_manager_declare_file(m, path, 1, err,
						    sizeof err);
	struct xy_task *a = reader(m, f);
	XY_CHECK_EQ(xy_file_release(f), 0);
	for (int i = 0; i < 1000 && f->state != FILE_READY; i++)
		xy_manager_turn(m, xy_mono() + 0.01);
	XY_CHECK(f->state == FILE_READY && a->state == XY_TASK_READY);
	XY_CHECK_EQ(n_files(m), 1);
	XY_CHECK_EQ(n_objects(m), 1);
	char served[4200];
	uint8_t kind;
	uint8_t id[XY_ID_LEN];
	memcpy(id, f->obj->id, XY_ID_LEN);
	XY_CHECK(xy_catalog_lookup(m->catalog, id, served, sizeof served,
				   &kind) == 0);
	XY_CHECK_EQ(xy_manager_cancel(m, a->id), 0);
	XY_CHECK(xy_manager_wait(m, 1) == a);
	xy_task_delete(a);
	/* Released and unused, but declared again before the phase. */
	XY_CHECK(xy_manager_declare_file(m, path, 1, err, sizeof err) == f);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_files(m), 1);
	XY_CHECK(f->state == FILE_READY && f->obj);
	XY_CHECK_EQ(xy_file_release(f), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_files(m), 0);
	XY_CHECK_EQ(n_objects(m), 0);
	XY_CHECK(xy_catalog_lookup(m->catalog, id, served, sizeof served,
				   &kind) < 0);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* A temp's recipe reads x: x stays, released, while the temp lives (it
 * may have to be made again), and goes with it. */
static void t_recipe_keeps_its_inputs(void)
{
	struct xy_manager *m = mk();
	char err[256];
	struct xy_file *x = xy_manager_declare_file(m, "/x/in", 1, err,
						    sizeof err);
	struct xy_file *t = xy_manager_declare_temp(m, 1, err, sizeof err);
	struct xy_task *w = xy_task_create("cat in > out");
	XY_CHECK(xy_task_add_input(w, x, "in", err, sizeof err) == 0);
	XY_CHECK(xy_task_add_output(w, t, "out", err, sizeof err) == 0);
	XY_CHECK(xy_manager_submit(m, w, err, sizeof err));
	XY_CHECK_EQ(xy_file_release(x), 0);
	XY_CHECK_EQ(xy_manager_cancel(m, w->id), 0);
	XY_CHECK(xy_manager_wait(m, 1) == w);
	xy_task_delete(w);
	for (int i = 0; i < 20; i++)
		xy_manager_turn(m, xy_mono() + 0.01);
	XY_CHECK_EQ(n_files(m), 2);
	XY_CHECK_EQ(xy_file_release(t), 0);
	/* x was queued for hashing at submit, which holds it until its
	 * (failed: there is no such path) hashing ends. */
	for (int i = 0; i < 1000 && n_files(m); i++)
		xy_manager_turn(m, xy_mono() + 0.01);
	XY_CHECK_EQ(n_files(m), 0);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* Two paths with the same content share an object: the first released,
 * the object is served from the other path; the last released, the
 * object goes. Equal buffers keep one staged copy, removed with their
 * object. */
static void t_object_goes_with_its_last_file(void)
{
	struct xy_manager *m = mk();
	char err[256], served[4200];
	uint8_t kind, id[XY_ID_LEN] = {5};
	const char *pa = write_text("a", "same\n"), *pb = write_text("b",
								   "same\n");
	struct xy_file *a = xy_manager_declare_file(m, pa, 1, err, sizeof err);
	struct xy_file *b = xy_manager_declare_file(m, pb, 1, err, sizeof err);
	struct xy_object *o = xy_catalog_object(m->catalog, id, XY_KIND_FILE,
						5);
	xy_catalog_file_ready(m->catalog, b, o);
	xy_catalog_serve(m->catalog, o, pb);
	xy_catalog_file_ready(m->catalog, a, o);
	xy_catalog_serve(m->catalog, o, pa);
	XY_CHECK_EQ(xy_file_release(a), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_objects(m), 1);
	XY_CHECK(xy_catalog_lookup(m->catalog, id, served, sizeof served,
				   &kind) == 0 && !strcmp(served, pb));
	XY_CHECK_EQ(xy_file_release(b), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_objects(m), 0);
	XY_CHECK(xy_catalog_lookup(m->catalog, id, served, sizeof served,
				   &kind) < 0);

	struct xy_file *c = xy_manager_declare_buffer(m, "data", 4, 1, err,
						      sizeof err);
	struct xy_file *d = xy_manager_declare_buffer(m, "data", 4, 1, err,
						      sizeof err);
	XY_CHECK(c && d && c != d && c->obj == d->obj);
	XY_CHECK_EQ(staged(m), 1);
	XY_CHECK_EQ(xy_file_release(c), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(staged(m), 1);
	XY_CHECK(d->obj->on_manager);
	XY_CHECK_EQ(xy_file_release(d), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(staged(m), 0);
	XY_CHECK_EQ(n_objects(m), 0);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* An object no file has whose copies are on a worker stays known (idle):
 * a file of the same content declared later finds its copy. Past
 * XY_IDLE_OBJECTS idle ones, the oldest goes, and its worker's record
 * of it with it. */
static void t_idle_objects(void)
{
	struct xy_manager *m = mk();
	char err[256];
	struct xy_worker w = {.name = "w", .ready = 1, .manager = m};
	uint8_t id[XY_ID_LEN] = {7};
	struct xy_file *f = xy_manager_declare_file(m, "/x/f", 1, err,
						    sizeof err);
	struct xy_object *o = xy_catalog_object(m->catalog, id, XY_KIND_FILE,
						3);
	XY_CHECK(xy_catalog_replica_add(o, &w, 1) == 0);
	xy_catalog_file_ready(m->catalog, f, o);
	XY_CHECK_EQ(xy_file_release(f), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_files(m), 0);
	XY_CHECK_EQ(n_objects(m), 1);
	XY_CHECK(o->idle && !o->on_manager);
	struct xy_file *g = xy_manager_declare_file(m, "/x/g", 1, err,
						    sizeof err);
	XY_CHECK(xy_catalog_object(m->catalog, id, XY_KIND_FILE, 3) == o);
	xy_catalog_file_ready(m->catalog, g, o);
	XY_CHECK(!o->idle && xy_catalog_holder(o) == &w);
	XY_CHECK_EQ(xy_file_release(g), 0);
	xy_catalog_phase(m->catalog);
	XY_CHECK(o->idle);
	for (int i = 1; i <= XY_IDLE_OBJECTS; i++) {
		uint8_t other[XY_ID_LEN] = {8, (uint8_t)i, (uint8_t)(i >> 8)};
		struct xy_object *p = xy_catalog_object(m->catalog, other,
							XY_KIND_FILE, 3);
		XY_CHECK(xy_catalog_replica_add(p, &w, 1) == 0);
	}
	xy_catalog_phase(m->catalog);
	XY_CHECK_EQ(n_objects(m), XY_IDLE_OBJECTS);
	XY_CHECK_EQ(w.n_held, XY_IDLE_OBJECTS);
	for (uint32_t i = 0; i < w.n_held; i++)
		XY_CHECK(w.held[i]->id[0] == 8);
	xy_manager_destroy(m);
	free(w.held);
	xy_test_check_no_leaks();
}

/* ------------------------------------------------------- out of memory */

/* A new object memory is short for is NULL (ENOMEM), and nothing is
 * recorded; a replica is recorded on the object and in its worker's list
 * alike, or on neither, whichever of the two allocations fails. */
static void t_oom_object_and_replica(void)
{
	struct xy_manager *m = mk();
	uint8_t id[XY_ID_LEN] = {3};
	m->fail_alloc = 1;
	errno = 0;
	XY_CHECK(xy_catalog_object(m->catalog, id, XY_KIND_FILE, 5) == NULL);
	XY_CHECK(errno == ENOMEM && m->fail_alloc == 0);
	struct xy_object *o =
		xy_catalog_object(m->catalog, id, XY_KIND_FILE, 5);
	XY_CHECK(o && o->size == 5);
	struct xy_worker w = {.name = "w", .manager = m};
	for (uint64_t n = 1; n <= 2; n++) { /* o's array, then w's list */
		m->fail_alloc = n;
		XY_CHECK(xy_catalog_replica_add(o, &w, 1) < 0);
		XY_CHECK(errno == ENOMEM && m->fail_alloc == 0);
		XY_CHECK_EQ(o->n_replicas, 0);
		XY_CHECK_EQ(w.n_held, 0);
	}
	XY_CHECK_EQ(xy_catalog_replica_add(o, &w, 1), 0);
	XY_CHECK_EQ(o->n_replicas, 1);
	XY_CHECK(w.n_held == 1 && w.held[0] == o);
	/* Known already: no allocation, nothing to fail. */
	m->fail_alloc = 1;
	XY_CHECK_EQ(xy_catalog_replica_add(o, &w, 1), 0);
	XY_CHECK_EQ(m->fail_alloc, 1);
	m->fail_alloc = 0;
	xy_manager_destroy(m);
	free(w.held);
	xy_test_check_no_leaks();
}

/* The buffers staged in the manager's staging directory. */
static int staged(struct xy_manager *m)
{
	DIR *d = opendir(xy_catalog_staging(m->catalog));
	struct dirent *e;
	int n = 0;
	XY_CHECK(d);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, "buffer-", 7);
	closedir(d);
	return n;
}

/* A buffer whose object cannot be recorded is refused with ENOMEM and
 * leaves no staged copy behind. */
static void t_oom_buffer(void)
{
	struct xy_manager *m = mk();
	char err[256] = "";
	m->fail_alloc = 1;
	errno = 0;
	XY_CHECK(xy_manager_declare_buffer(m, "data", 4, XY_CACHE_TASK, err,
					   sizeof err) == NULL);
	XY_CHECK(errno == ENOMEM && strstr(err, "out of memory"));
	XY_CHECK_EQ(m->fail_alloc, 0);
	XY_CHECK_EQ(staged(m), 0);
	XY_CHECK(xy_manager_declare_buffer(m, "data", 4, XY_CACHE_TASK, err,
					   sizeof err) != NULL);
	XY_CHECK_EQ(staged(m), 1);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* A file hashed whose object cannot be recorded fails its reader (the
 * manager is out of memory); the file itself is not marked missing, and
 * a later reader has it hashed again. */
static void t_oom_hash_done(void)
{
	struct xy_manager *m = mk();
	char err[256];
	const char *path = xy_test_path("in.txt");
	FILE *fp = fopen(path, "w");
	XY_CHECK(fp && fputs("x\n", fp) >= 0 && fclose(fp) == 0);
	struct xy_file *f = xy_manager_declare_file(m, path, XY_CACHE_TASK,
						    err, sizeof err);
	XY_CHECK(f);
	struct xy_task *a = reader(m, f);
	m->fail_alloc = 1; /* the object, once hashed */
	XY_CHECK(xy_manager_wait(m, 10) == a);
	XY_CHECK_EQ(m->fail_alloc, 0);
	XY_CHECK_EQ(xy_task_result(a), XY_RESULT_INPUT_MISSING);
	XY_CHECK(strstr(xy_task_error(a), "out of memory"));
	XY_CHECK(f->state == FILE_NEW && !f->obj);
	struct xy_task *b = reader(m, f);
	for (int i = 0; i < 1000 && f->state != FILE_READY; i++)
		xy_manager_turn(m, xy_mono() + 0.01);
	XY_CHECK(f->state == FILE_READY && f->obj);
	XY_CHECK(b->state == XY_TASK_READY);
	xy_task_delete(a);
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

/* A worker's HELLO lists three cached objects; whichever allocation
 * fails, the worker is ready and each object is either recorded on both
 * sides (a replica of it, and in its list) or on neither. */
static void t_oom_hello_inventory(void)
{
	for (uint64_t n = 1; n <= 8; n++) { /* 7 allocations, then none */
		struct xy_manager *m = mk();
		struct xy_worker *w = xy_wtable_add(m->wtable, NULL);
		struct xy_inventory_item items[3] = {
			{.id = {1}, .size = 1}, {.id = {2}, .size = 2},
			{.id = {3}, .size = 3}};
		struct xy_msg_hello h = {.cores = 1, .n_items = 3,
					 .items = items};
		XY_CHECK(w);
		m->fail_alloc = n;
		xy_wtable_hello(m->wtable, w, &h);
		XY_CHECK(w->ready);
		m->fail_alloc = 0;
		int recorded = 0;
		for (int i = 0; i < 3; i++) {
			struct xy_object *o = xy_catalog_object(
				m->catalog, items[i].id, 0, items[i].size);
			int listed = 0;
			for (uint32_t k = 0; k < w->n_held; k++)
				listed += w->held[k] == o;
			XY_CHECK_EQ(listed, xy_catalog_replica_find(o, w) != 0);
			XY_CHECK(o->n_replicas <= 1);
			recorded += listed;
		}
		XY_CHECK_EQ((uint32_t)recorded, w->n_held);
		/* One allocation failed: one object is not recorded. */
		XY_CHECK_EQ(recorded, n <= 7 ? 2 : 3);
		xy_manager_destroy(m);
	}
	xy_test_check_no_leaks();
}

/* A worker fetched a URL whose object cannot be recorded: the URL's
 * reader fails, with the manager's shortage as the reason. */
static void t_oom_url_done(void)
{
	struct xy_manager *m = mk();
	char err[256];
	struct xy_worker *w = xy_wtable_add(m->wtable, NULL);
	XY_CHECK(w);
	w->cores = 1;
	xy_wtable_ready(m->wtable, w);
	struct xy_file *f = xy_manager_declare_url(m, "http://example.org/x",
						   XY_CACHE_TASK, err,
						   sizeof err);
	XY_CHECK(f);
	struct xy_task *t = reader(m, f);
	xy_catalog_start_hashing(m->catalog); /* FETCH_URL to w (unsent) */
	XY_CHECK_EQ(w->url_fetches, 1);
	struct xy_msg_url_done d = {.req_id = 1, .status = XY_OBJ_OK,
				    .id = {4}, .size = 1};
	m->fail_alloc = 1;
	xy_urls_done(m->urls, w, &d);
	XY_CHECK_EQ(m->fail_alloc, 0);
	XY_CHECK_EQ(w->url_fetches, 0);
	XY_CHECK(t->state == XY_TASK_DONE);
	XY_CHECK_EQ(t->result, XY_RESULT_INPUT_MISSING);
	XY_CHECK(strstr(t->error, "out of memory"));
	xy_manager_destroy(m);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_file_once_per_path),
		XY_TEST(t_objects_and_replicas),
		XY_TEST(t_served_table),
		XY_TEST(t_buffer_is_ready),
		XY_TEST(t_temp_waits_for_copy_in_flight),
		XY_TEST(t_release_handles),
		XY_TEST(t_released_input_waits_for_its_task),
		XY_TEST(t_recipe_keeps_its_inputs),
		XY_TEST(t_object_goes_with_its_last_file),
		XY_TEST(t_idle_objects),
		XY_TEST(t_oom_object_and_replica),
		XY_TEST(t_oom_buffer),
		XY_TEST(t_oom_hash_done),
		XY_TEST(t_oom_hello_inventory),
		XY_TEST(t_oom_url_done),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
