/*
 * test_cache.c: unit tests of the worker's content-addressed cache
 * (cache.c): insert, lookup, reference counts, unlink, levels, the forever/
 * inventory across a reopen, the lock, directories dropped off the loop;
 * and of the sandbox code in exec.c
 * that links inputs and finds outputs, which must refuse hostile names.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "exec.h"
#include "guard.h"
#include "harness.h"
#include "object.h"
#include "util.h"
#include "xylem.h"

/* dir/name in one of a ring of buffers: valid for the next 63 calls,
 * which is longer than any test here needs. */
static char *path_in(const char *dir, const char *name)
{
	static char buf[64][PATH_MAX];
	static int k;
	char *p = buf[k++ % 64];
	size_t a = strlen(dir), b = strlen(name);

	XY_CHECK(a + b + 2 <= PATH_MAX);
	memmove(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	XY_CHECK(f);
	fputs(text, f);
	XY_CHECK(fclose(f) == 0);
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Writes text to a fresh file in the cache's tmp/ and adopts it. */
static void put_text(struct xy_cache *c, const char *text, uint8_t level,
		     uint8_t id[XY_ID_LEN])
{
	static int n;
	char src[PATH_MAX], err[256];
	uint8_t kind;
	uint64_t size;

	snprintf(src, sizeof src, "%s/in.%d", xy_cache_tmp(c), n++);
	write_file(src, text);
	XY_CHECK(xy_object_hash(src, id, &kind, &size, err, sizeof err) == 0);
	XY_CHECK_EQ(kind, XY_KIND_FILE);
	XY_CHECK(xy_object_make_readonly(src) == 0); /* as callers do */
	XY_CHECK(xy_cache_adopt(c, src, id, kind, level, size, err,
				sizeof err) == 0);
	XY_CHECK(!exists(src));
}

static struct xy_cache *open_in(const char *name)
{
	char err[256];
	struct xy_cache *c = xy_cache_open(path_in(xy_test_tmpdir(), name),
					   err, sizeof err);

	if (!c)
		fprintf(stderr, "open: %s\n", err);
	XY_CHECK(c);
	return c;
}

static void t_insert_lookup(void)
{
	struct xy_cache *c = open_in("c");
	struct xy_cache_info info;
	uint8_t id[XY_ID_LEN], id2[XY_ID_LEN], kind = 9;
	char path[PATH_MAX], want[PATH_MAX];
	size_t len;
	char *body;

	memset(id, 0, sizeof id);
	XY_CHECK(xy_cache_lookup(c, id, path, sizeof path, &kind) < 0);
	put_text(c, "hello", XY_CACHE_WORKER, id);
	XY_CHECK_EQ(xy_cache_count(c), 1);
	XY_CHECK(xy_cache_lookup(c, id, path, sizeof path, &kind) == 0);
	XY_CHECK_EQ(kind, XY_KIND_FILE);
	XY_CHECK(xy_cache_path(c, id, XY_CACHE_WORKER, want, sizeof want) ==
		 0);
	XY_CHECK(!strcmp(path, want));
	XY_CHECK(strstr(path, "/objects/"));
	body = xy_read_file(path, 100, &len);
	XY_CHECK(body && len == 5 && !memcmp(body, "hello", 5));
	free(body);
	XY_CHECK(access(path, W_OK) < 0 || geteuid() == 0);
	XY_CHECK(xy_cache_find(c, id, &info) == 0);
	XY_CHECK_EQ(info.size, 5);
	XY_CHECK_EQ(info.level, XY_CACHE_WORKER);
	XY_CHECK_EQ(info.refs, 0);

	/* The same content again: the new copy goes, the entry stays. */
	put_text(c, "hello", XY_CACHE_WORKER, id2);
	XY_CHECK(!memcmp(id, id2, XY_ID_LEN));
	XY_CHECK_EQ(xy_cache_count(c), 1);

	/* A path too small is refused, not truncated. */
	XY_CHECK(xy_cache_lookup(c, id, path, 10, &kind) < 0);
	xy_cache_close(c);
}

static void t_refcount_unlink(void)
{
	struct xy_cache *c = open_in("c");
	struct xy_cache_info info;
	uint8_t id[XY_ID_LEN], none[XY_ID_LEN];
	char path[PATH_MAX];

	memset(none, 7, sizeof none);
	put_text(c, "data", XY_CACHE_WORKFLOW, id);
	XY_CHECK(xy_cache_path(c, id, XY_CACHE_WORKFLOW, path, sizeof path) ==
		 0);
	XY_CHECK(xy_cache_incref(c, id) == 0);
	XY_CHECK(xy_cache_incref(c, id) == 0);
	XY_CHECK(xy_cache_incref(c, none) < 0 && errno == ENOENT);
	XY_CHECK(xy_cache_find(c, id, &info) == 0 && info.refs == 2);

	/* In use: the unlink waits for the last reference. */
	XY_CHECK_EQ(xy_cache_unlink(c, id), 1);
	XY_CHECK(exists(path));
	xy_cache_decref(c, id);
	XY_CHECK(xy_cache_find(c, id, NULL) == 0 && exists(path));
	xy_cache_decref(c, id);
	XY_CHECK(xy_cache_find(c, id, NULL) < 0);
	XY_CHECK(!exists(path));
	XY_CHECK_EQ(xy_cache_count(c), 0);

	/* Unused: gone at once; absent: ENOENT. */
	put_text(c, "more", XY_CACHE_WORKER, id);
	XY_CHECK_EQ(xy_cache_unlink(c, id), 0);
	XY_CHECK(xy_cache_find(c, id, NULL) < 0);
	XY_CHECK(xy_cache_unlink(c, id) < 0 && errno == ENOENT);
	xy_cache_decref(c, none); /* harmless */
	xy_cache_close(c);
}

static void t_task_level_waits_for_unlink(void)
{
	struct xy_cache *c = open_in("c");
	uint8_t t[XY_ID_LEN], w[XY_ID_LEN];

	put_text(c, "for one task", XY_CACHE_TASK, t);
	put_text(c, "for the worker", XY_CACHE_WORKER, w);
	XY_CHECK(xy_cache_incref(c, t) == 0);
	XY_CHECK(xy_cache_incref(c, w) == 0);
	/* The last user going is not enough: the manager decides. */
	xy_cache_decref(c, t);
	XY_CHECK(xy_cache_find(c, t, NULL) == 0);
	/* UNLINK while in use waits for the last user. */
	XY_CHECK(xy_cache_incref(c, t) == 0);
	XY_CHECK(xy_cache_unlink(c, t) == 1);
	XY_CHECK(xy_cache_find(c, t, NULL) == 0);
	xy_cache_decref(c, t);
	XY_CHECK(xy_cache_find(c, t, NULL) < 0);
	xy_cache_decref(c, w);
	XY_CHECK(xy_cache_find(c, w, NULL) == 0);
	xy_cache_close(c);
}

/* An UNLINK that waits for the object's last user is called off when
 * the object is wanted again meanwhile (a FETCH for it is answered from
 * the cache): the manager then counts on this copy, which must stay. */
static void t_insert_cancels_pending_unlink(void)
{
	struct xy_cache *c = open_in("c");
	uint8_t id[XY_ID_LEN];

	put_text(c, "released, then declared again", XY_CACHE_WORKFLOW, id);
	XY_CHECK(xy_cache_incref(c, id) == 0);
	XY_CHECK_EQ(xy_cache_unlink(c, id), 1);
	XY_CHECK(xy_cache_insert(c, id, XY_KIND_FILE, XY_CACHE_WORKFLOW,
				 30) == 0);
	xy_cache_decref(c, id);
	XY_CHECK(xy_cache_find(c, id, NULL) == 0);
	/* A later UNLINK with no user left still deletes it. */
	XY_CHECK_EQ(xy_cache_unlink(c, id), 0);
	XY_CHECK(xy_cache_find(c, id, NULL) < 0);
	xy_cache_close(c);
}

/* Makes a small tree in the cache's tmp/ and adopts it as a directory. */
static void put_dir(struct xy_cache *c, uint8_t level, uint8_t id[XY_ID_LEN],
		    uint64_t *size)
{
	char dir[PATH_MAX], err[256];
	uint8_t kind;

	snprintf(dir, sizeof dir, "%s/tree", xy_cache_tmp(c));
	XY_CHECK(mkdir(dir, 0755) == 0);
	XY_CHECK(mkdir(path_in(dir, "sub"), 0755) == 0);
	write_file(path_in(dir, "a"), "aaa");
	write_file(path_in(dir, "sub/b"), "bb");
	XY_CHECK(xy_object_hash(dir, id, &kind, size, err, sizeof err) == 0);
	XY_CHECK_EQ(kind, XY_KIND_DIR);
	XY_CHECK(xy_object_make_readonly(dir) == 0);
	XY_CHECK(xy_cache_adopt(c, dir, id, kind, level, *size, err,
				sizeof err) == 0);
}

static void t_forever_reopen(void)
{
	struct xy_cache *c = open_in("c");
	struct xy_inventory_item *items;
	uint8_t f[XY_ID_LEN], d[XY_ID_LEN], w[XY_ID_LEN], kind;
	char path[PATH_MAX], wpath[PATH_MAX], junk[PATH_MAX];
	uint64_t dsize;
	uint32_t n;

	put_text(c, "keep me", XY_CACHE_FOREVER, f);
	put_dir(c, XY_CACHE_FOREVER, d, &dsize);
	put_text(c, "lose me", XY_CACHE_WORKER, w);
	XY_CHECK(xy_cache_lookup(c, w, wpath, sizeof wpath, &kind) == 0);
	XY_CHECK(xy_cache_inventory(c, &items, &n) == 0);
	XY_CHECK_EQ(n, 2);
	free(items);
	snprintf(junk, sizeof junk, "%s/forever/partial.part",
		 xy_cache_root(c));
	write_file(junk, "x");
	xy_cache_close(c);
	XY_CHECK(!exists(wpath));

	c = open_in("c");
	XY_CHECK(!exists(junk));
	XY_CHECK_EQ(xy_cache_count(c), 2);
	XY_CHECK(xy_cache_find(c, w, NULL) < 0);
	XY_CHECK(xy_cache_lookup(c, f, path, sizeof path, &kind) == 0);
	XY_CHECK(strstr(path, "/forever/") && kind == XY_KIND_FILE);
	XY_CHECK(xy_cache_lookup(c, d, path, sizeof path, &kind) == 0);
	XY_CHECK(kind == XY_KIND_DIR && exists(path_in(path, "sub/b")));
	XY_CHECK(xy_cache_inventory(c, &items, &n) == 0);
	XY_CHECK_EQ(n, 2);
	for (uint32_t i = 0; i < n; i++) {
		int is_dir = !memcmp(items[i].id, d, XY_ID_LEN);

		XY_CHECK(is_dir || !memcmp(items[i].id, f, XY_ID_LEN));
		XY_CHECK_EQ(items[i].kind, is_dir ? XY_KIND_DIR : XY_KIND_FILE);
		XY_CHECK_EQ(items[i].size, is_dir ? dsize : 7);
		XY_CHECK_EQ(items[i].level, XY_CACHE_FOREVER);
	}
	free(items);
	xy_cache_close(c);
}

static void t_level_raised(void)
{
	struct xy_cache *c = open_in("c");
	struct xy_cache_info info;
	uint8_t id[XY_ID_LEN], d[XY_ID_LEN], kind;
	char before[PATH_MAX], after[PATH_MAX];
	uint64_t size;

	put_text(c, "promote", XY_CACHE_WORKER, id);
	XY_CHECK(xy_cache_lookup(c, id, before, sizeof before, &kind) == 0);
	XY_CHECK(xy_cache_insert(c, id, kind, XY_CACHE_FOREVER, 7) == 0);
	XY_CHECK(xy_cache_lookup(c, id, after, sizeof after, &kind) == 0);
	XY_CHECK(strstr(after, "/forever/") && exists(after));
	XY_CHECK(!exists(before));
	/* Never lowered. */
	XY_CHECK(xy_cache_insert(c, id, kind, XY_CACHE_TASK, 7) == 0);
	XY_CHECK(xy_cache_find(c, id, &info) == 0);
	XY_CHECK_EQ(info.level, XY_CACHE_FOREVER);
	/* A read-only directory moves too. */
	put_dir(c, XY_CACHE_WORKER, d, &size);
	XY_CHECK(xy_cache_insert(c, d, XY_KIND_DIR, XY_CACHE_FOREVER, size) ==
		 0);
	XY_CHECK(xy_cache_lookup(c, d, after, sizeof after, &kind) == 0);
	XY_CHECK(strstr(after, "/forever/") && exists(path_in(after, "a")));
	xy_cache_close(c);
}

static void t_temporary_root(void)
{
	char err[256], root[PATH_MAX];
	struct xy_cache *c;

	setenv("TMPDIR", xy_test_tmpdir(), 1);
	c = xy_cache_open(NULL, err, sizeof err);
	XY_CHECK(c);
	snprintf(root, sizeof root, "%s", xy_cache_root(c));
	XY_CHECK(!strncmp(root, xy_test_tmpdir(), strlen(xy_test_tmpdir())) ||
		 strstr(root, "xylem-worker-"));
	XY_CHECK(exists(path_in(root, "objects")));
	XY_CHECK(exists(path_in(root, "sandbox")));
	XY_CHECK(exists(path_in(root, "tmp")));
	xy_cache_close(c);
	XY_CHECK(!exists(root));
}

static void t_one_worker_per_dir(void)
{
	struct xy_cache *a = open_in("c"), *b;
	uint8_t id[XY_ID_LEN];
	char err[256];

	put_text(a, "mine", XY_CACHE_WORKER, id);
	b = xy_cache_open(path_in(xy_test_tmpdir(), "c"), err, sizeof err);
	XY_CHECK(!b);
	XY_CHECK(strstr(err, "in use"));
	/* The refused open left the holder's objects alone. */
	XY_CHECK(xy_cache_find(a, id, NULL) == 0);
	XY_CHECK(xy_cache_incref(a, id) == 0);
	xy_cache_close(a);
	b = open_in("c");
	xy_cache_close(b);
}

struct lookers {
	struct xy_cache *c;
	uint8_t id[XY_ID_LEN];
	int stop;
	long hits;
};

static void *look(void *arg)
{
	struct lookers *l = arg;
	char path[PATH_MAX];
	uint8_t kind;

	while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED))
		if (xy_cache_lookup(l->c, l->id, path, sizeof path, &kind) ==
		    0)
			__atomic_add_fetch(&l->hits, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* Lookups from other threads (the transfer server) while the loop
 * thread inserts and drops; meant for the sanitizers. */
static void t_lookup_from_threads(void)
{
	struct lookers l;
	pthread_t th[3];
	uint8_t id[XY_ID_LEN];
	char text[32];

	memset(&l, 0, sizeof l);
	l.c = open_in("c");
	put_text(l.c, "shared", XY_CACHE_WORKER, l.id);
	for (int i = 0; i < 3; i++)
		XY_CHECK(pthread_create(&th[i], NULL, look, &l) == 0);
	for (int i = 0; i < 300; i++) {
		snprintf(text, sizeof text, "object %d", i);
		put_text(l.c, text, XY_CACHE_WORKER, id);
		if (i % 2)
			XY_CHECK_EQ(xy_cache_unlink(l.c, id), 0);
	}
	/* On a loaded machine the lookers may not have run yet: they must
	 * have looked at least once before they stop (the alarm bounds
	 * this wait). */
	while (!__atomic_load_n(&l.hits, __ATOMIC_RELAXED))
		usleep(1000);
	__atomic_store_n(&l.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	XY_CHECK(l.hits > 0);
	XY_CHECK_EQ(xy_cache_count(l.c), 151);
	xy_cache_close(l.c);
}

/* ------------------------------------------------------------ sandboxes */

static void t_sandbox_link(void)
{
	const char *tmp = xy_test_tmpdir();
	char *sb = path_in(tmp, "sb"), *src = path_in(tmp, "src");
	char err[256];
	struct stat a, b;

	XY_CHECK(mkdir(sb, 0755) == 0);
	write_file(src, "input");
	XY_CHECK(xy_sandbox_link(sb, "a/b/c", src, XY_KIND_FILE, err,
				 sizeof err) == 0);
	XY_CHECK(stat(src, &a) == 0 && stat(path_in(sb, "a/b/c"), &b) == 0);
	XY_CHECK(a.st_ino == b.st_ino); /* a hard link */
	XY_CHECK(xy_sandbox_link(sb, "top", src, XY_KIND_FILE, err,
				 sizeof err) == 0);
	XY_CHECK(xy_sandbox_link(sb, "top", src, XY_KIND_FILE, err,
				 sizeof err) < 0);
	XY_CHECK(errno == EEXIST && strstr(err, "top"));
	/* A directory comes in as a symbolic link. */
	XY_CHECK(xy_sandbox_link(sb, "dir", tmp, XY_KIND_DIR, err,
				 sizeof err) == 0);
	XY_CHECK(lstat(path_in(sb, "dir"), &a) == 0 && S_ISLNK(a.st_mode));
	/* A name below a file is refused. */
	XY_CHECK(xy_sandbox_link(sb, "top/x", src, XY_KIND_FILE, err,
				 sizeof err) < 0);
	XY_CHECK(errno == ENOTDIR);
}

static void t_sandbox_hostile_names(void)
{
	static const char *bad[] = {
		"../escape", "/etc/passwd", "a/../../escape", "",   "a//b",
		".",         "..",          "a/./b",          "a/", "a/..",
	};
	const char *tmp = xy_test_tmpdir();
	char *sb = path_in(tmp, "sb"), *src = path_in(tmp, "src");
	char *outside = path_in(tmp, "outside");
	char err[256], path[PATH_MAX];

	XY_CHECK(mkdir(sb, 0755) == 0);
	XY_CHECK(mkdir(outside, 0755) == 0);
	write_file(src, "input");
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = '\0';
		XY_CHECK(xy_sandbox_link(sb, bad[i], src, XY_KIND_FILE, err,
					 sizeof err) < 0);
		XY_CHECK_EQ(errno, EINVAL);
		XY_CHECK(err[0]);
		XY_CHECK(xy_sandbox_output(sb, bad[i], path, sizeof path, err,
					   sizeof err) < 0);
		XY_CHECK_EQ(errno, EINVAL);
	}
	XY_CHECK(!exists(path_in(tmp, "escape")));

	/* An input directory is a symbolic link out of the sandbox: a later
	 * name must not reach through it. */
	XY_CHECK(xy_sandbox_link(sb, "d", outside, XY_KIND_DIR, err,
				 sizeof err) == 0);
	XY_CHECK(xy_sandbox_link(sb, "d/x", src, XY_KIND_FILE, err,
				 sizeof err) < 0);
	XY_CHECK_EQ(errno, ENOTDIR);
	XY_CHECK(xy_sandbox_link(sb, "d/deeper/x", src, XY_KIND_FILE, err,
				 sizeof err) < 0);
	XY_CHECK(!exists(path_in(outside, "x")));
	XY_CHECK(!exists(path_in(outside, "deeper")));

	/* Nor may an output be taken from through it. */
	write_file(path_in(outside, "y"), "not the task's");
	XY_CHECK(xy_sandbox_output(sb, "d/y", path, sizeof path, err,
				   sizeof err) < 0);
	XY_CHECK_EQ(errno, ELOOP);
	XY_CHECK(exists(path_in(outside, "y")));
}

static void t_sandbox_outputs(void)
{
	const char *tmp = xy_test_tmpdir();
	char *sb = path_in(tmp, "sb"), *far = path_in(tmp, "far");
	char err[256], path[PATH_MAX], *body;
	size_t len;

	XY_CHECK(mkdir(sb, 0755) == 0);
	write_file(far, "far away");
	write_file(path_in(sb, "real"), "here");
	XY_CHECK(xy_sandbox_output(sb, "real", path, sizeof path, err,
				   sizeof err) == 0);
	XY_CHECK(!strcmp(path, path_in(sb, "real")));
	XY_CHECK(xy_sandbox_output(sb, "missing", path, sizeof path, err,
				   sizeof err) < 0);
	XY_CHECK_EQ(errno, ENOENT);
	XY_CHECK(xy_sandbox_output(sb, "no/such", path, sizeof path, err,
				   sizeof err) < 0);
	XY_CHECK_EQ(errno, ENOENT);

	/* A link to a file inside: its target is taken. */
	XY_CHECK(symlink("real", path_in(sb, "alias")) == 0);
	XY_CHECK(xy_sandbox_output(sb, "alias", path, sizeof path, err,
				   sizeof err) == 0);
	XY_CHECK(!strcmp(path, path_in(sb, "real")));
	/* A link to a file outside: copied in, the original untouched. */
	XY_CHECK(symlink(far, path_in(sb, "farlink")) == 0);
	XY_CHECK(xy_sandbox_output(sb, "farlink", path, sizeof path, err,
				   sizeof err) == 0);
	XY_CHECK(!strncmp(path, sb, strlen(sb)) && path[strlen(sb)] == '/');
	body = xy_read_file(path, 100, &len);
	XY_CHECK(body && len == 8 && !memcmp(body, "far away", 8));
	free(body);
	XY_CHECK(exists(far));
	/* A link to a directory outside: refused. */
	XY_CHECK(symlink(tmp, path_in(sb, "up")) == 0);
	XY_CHECK(xy_sandbox_output(sb, "up", path, sizeof path, err,
				   sizeof err) < 0);
	XY_CHECK_EQ(errno, EISDIR);
	/* A dangling link is an output not made. */
	XY_CHECK(symlink("nowhere", path_in(sb, "dangling")) == 0);
	XY_CHECK(xy_sandbox_output(sb, "dangling", path, sizeof path, err,
				   sizeof err) < 0);
	XY_CHECK_EQ(errno, ENOENT);
}

/* ------------------------------------------------------------ eviction */

struct evictions {
	int n;
	uint8_t ids[8][XY_ID_LEN];
	uint64_t sizes[8];
};

static void note_eviction(void *arg, const uint8_t id[XY_ID_LEN],
			  uint8_t kind, uint64_t size)
{
	struct evictions *ev = arg;

	XY_CHECK_EQ(kind, XY_KIND_FILE);
	XY_CHECK(ev->n < 8);
	memcpy(ev->ids[ev->n], id, XY_ID_LEN);
	ev->sizes[ev->n++] = size;
}

/* Ten bytes of distinct content per n. */
static void put_ten(struct xy_cache *c, int n, uint8_t level,
		    uint8_t id[XY_ID_LEN])
{
	char text[16];

	snprintf(text, sizeof text, "obj-%05d\n", n);
	XY_CHECK_EQ(strlen(text), 10);
	put_text(c, text, level, id);
}

static int gone(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		uint8_t level)
{
	char path[PATH_MAX];

	XY_CHECK(xy_cache_path(c, id, level, path, sizeof path) == 0);
	return xy_cache_find(c, id, NULL) < 0 && !exists(path);
}

/* Work that holds a pool thread until released. */
static atomic_int holding, released;

static void hold_work(uv_work_t *req)
{
	atomic_fetch_add(&holding, 1);
	while (!atomic_load(&released))
		usleep(1000);
}

static void hold_done(uv_work_t *req, int status)
{
}

/* Dropping an archive with its expansion, or a directory object, frees
 * their places at once and leaves the files to the thread pool: with
 * every pool thread held, they are still in tmp/ after the unlink
 * returns, and gone once the pool is free and the loop has run dry. */
static void t_drop_dirs_off_the_loop(void)
{
	struct xy_cache *c = open_in("c");
	uint8_t arch[XY_ID_LEN], dir[XY_ID_LEN];
	char unpacked[PATH_MAX], obj[PATH_MAX], cmd[4 * PATH_MAX + 64];
	uv_work_t hold[4];
	uv_loop_t loop;
	uint64_t size;

	setenv("UV_THREADPOOL_SIZE", "4", 1);
	XY_CHECK(uv_loop_init(&loop) == 0);
	xy_cache_set_loop(c, &loop);
	put_text(c, "an archive", XY_CACHE_WORKER, arch);
	put_dir(c, XY_CACHE_WORKER, dir, &size);
	XY_CHECK(xy_cache_unpacked_path(c, arch, unpacked, sizeof unpacked) ==
		 0);
	/* An expansion, read-only as unpack.c leaves it. */
	snprintf(cmd, sizeof cmd, "mkdir -p %s/bin && touch %s/bin/python "
		 "%s/x && chmod -R a-w %s", unpacked, unpacked, unpacked,
		 unpacked);
	XY_CHECK(system(cmd) == 0);
	XY_CHECK(xy_cache_path(c, dir, XY_CACHE_WORKER, obj, sizeof obj) == 0);
	for (int i = 0; i < 4; i++)
		XY_CHECK(uv_queue_work(&loop, &hold[i], hold_work,
				       hold_done) == 0);
	while (atomic_load(&holding) < 4)
		usleep(1000);
	XY_CHECK_EQ(xy_cache_unlink(c, arch), 0);
	XY_CHECK_EQ(xy_cache_unlink(c, dir), 0);
	XY_CHECK(!exists(unpacked) && !exists(obj));
	XY_CHECK(exists(path_in(xy_cache_tmp(c), "gone-1/bin/python")));
	XY_CHECK(exists(path_in(xy_cache_tmp(c), "gone-2/sub/b")));
	atomic_store(&released, 1);
	XY_CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	XY_CHECK(!exists(path_in(xy_cache_tmp(c), "gone-1")));
	XY_CHECK(!exists(path_in(xy_cache_tmp(c), "gone-2")));
	XY_CHECK(uv_loop_close(&loop) == 0);
	xy_cache_close(c);
}

static void t_evict_lru(void)
{
	struct xy_cache *c = open_in("e");
	struct evictions ev;
	uint8_t a[XY_ID_LEN], b[XY_ID_LEN], d[XY_ID_LEN], e[XY_ID_LEN];
	char path[PATH_MAX];
	uint8_t kind;

	memset(&ev, 0, sizeof ev);
	xy_cache_set_budget(c, 25, note_eviction, &ev);
	put_ten(c, 1, XY_CACHE_WORKFLOW, a);
	put_ten(c, 2, XY_CACHE_FOREVER, b);
	XY_CHECK_EQ(xy_cache_bytes(c), 20);
	XY_CHECK_EQ(ev.n, 0);
	/* A lookup makes a the most recently used: b goes first, FOREVER
	 * or not. */
	XY_CHECK(xy_cache_lookup(c, a, path, sizeof path, &kind) == 0);
	put_ten(c, 3, XY_CACHE_WORKFLOW, d);
	XY_CHECK_EQ(ev.n, 1);
	XY_CHECK(!memcmp(ev.ids[0], b, XY_ID_LEN));
	XY_CHECK_EQ(ev.sizes[0], 10);
	XY_CHECK(gone(c, b, XY_CACHE_FOREVER));
	XY_CHECK(xy_cache_find(c, a, NULL) == 0);
	XY_CHECK_EQ(xy_cache_bytes(c), 20);
	/* Without a use since, a is now older than d. */
	put_ten(c, 4, XY_CACHE_TASK, e);
	XY_CHECK_EQ(ev.n, 2);
	XY_CHECK(!memcmp(ev.ids[1], a, XY_ID_LEN));
	XY_CHECK(gone(c, a, XY_CACHE_WORKFLOW));
	XY_CHECK(xy_cache_find(c, d, NULL) == 0);
	XY_CHECK(xy_cache_find(c, e, NULL) == 0);
	/* Inserting an object already cached is a use, not a growth. */
	XY_CHECK(xy_cache_insert(c, d, XY_KIND_FILE, XY_CACHE_WORKFLOW, 10) ==
		 0);
	XY_CHECK_EQ(ev.n, 2);
	put_ten(c, 5, XY_CACHE_WORKFLOW, a);
	XY_CHECK_EQ(ev.n, 3);
	XY_CHECK(!memcmp(ev.ids[2], e, XY_ID_LEN));
	XY_CHECK_EQ(xy_cache_count(c), 2);
	xy_cache_close(c);
}

/* An output the manager has not yet brought back is held: no insert
 * evicts it until RELEASE, and a RELEASE for nothing held changes
 * nothing (the refs of running tasks stay). */
static void t_outputs_held_until_released(void)
{
	struct xy_cache *c = open_in("e");
	struct evictions ev;
	uint8_t out[XY_ID_LEN], b[XY_ID_LEN], d[XY_ID_LEN];

	memset(&ev, 0, sizeof ev);
	xy_cache_set_budget(c, 15, note_eviction, &ev);
	put_ten(c, 1, XY_CACHE_WORKFLOW, out);
	XY_CHECK(xy_cache_hold_output(c, out) == 0);
	XY_CHECK(xy_cache_hold_output(c, out) == 0); /* two tasks made it */
	put_ten(c, 2, XY_CACHE_WORKFLOW, b);
	XY_CHECK_EQ(ev.n, 0);
	XY_CHECK(xy_cache_find(c, out, NULL) == 0);
	xy_cache_release_output(c, out);
	put_ten(c, 3, XY_CACHE_WORKFLOW, d);
	XY_CHECK(xy_cache_find(c, out, NULL) == 0); /* one hold is left */
	XY_CHECK_EQ(ev.n, 1);
	XY_CHECK(!memcmp(ev.ids[0], b, XY_ID_LEN));
	xy_cache_release_output(c, out);
	xy_cache_release_output(c, out); /* nothing held: ignored */
	XY_CHECK(xy_cache_incref(c, d) == 0);
	xy_cache_release_output(c, d); /* not an output: d stays pinned */
	put_ten(c, 4, XY_CACHE_WORKFLOW, b);
	XY_CHECK_EQ(ev.n, 2);
	XY_CHECK(!memcmp(ev.ids[1], out, XY_ID_LEN));
	XY_CHECK(xy_cache_find(c, d, NULL) == 0);
	xy_cache_decref(c, d);
	xy_cache_close(c);
}

/* A fetch reserves its size before it starts: the cache evicts for it
 * then, so that the fetch finds room on a disk the budget fills, and
 * the reservation counts until it is given back (the object adopted). */
static void t_reserve_makes_room(void)
{
	struct xy_cache *c = open_in("e");
	struct evictions ev;
	uint8_t a[XY_ID_LEN], b[XY_ID_LEN], d[XY_ID_LEN];

	memset(&ev, 0, sizeof ev);
	xy_cache_set_budget(c, 25, note_eviction, &ev);
	put_ten(c, 1, XY_CACHE_WORKFLOW, a);
	put_ten(c, 2, XY_CACHE_WORKFLOW, b);
	XY_CHECK(xy_cache_incref(c, b) == 0);
	XY_CHECK_EQ(xy_cache_reserve(c, 10), 10);
	XY_CHECK_EQ(ev.n, 1); /* a goes now; b is pinned */
	XY_CHECK(!memcmp(ev.ids[0], a, XY_ID_LEN));
	XY_CHECK_EQ(xy_cache_bytes(c), 10);
	/* While reserved, an insert leaves room for it. */
	xy_cache_decref(c, b);
	put_ten(c, 3, XY_CACHE_WORKFLOW, d);
	XY_CHECK_EQ(ev.n, 2);
	XY_CHECK(!memcmp(ev.ids[1], b, XY_ID_LEN));
	/* Given back: the fetch's object takes its place. */
	xy_cache_unreserve(c, 10);
	put_ten(c, 4, XY_CACHE_WORKFLOW, a);
	XY_CHECK_EQ(ev.n, 2);
	XY_CHECK_EQ(xy_cache_bytes(c), 20);
	xy_cache_unreserve(c, 5); /* more than reserved: down to none */
	XY_CHECK_EQ(xy_cache_reserve(c, 5), 5); /* 20 + 5 fits the 25 */
	XY_CHECK_EQ(ev.n, 2);
	xy_cache_unreserve(c, 5);
	/* Larger than the whole budget: emptying the cache would not make
	 * it fit, so nothing is reserved and nothing goes, now or at the
	 * next insert. */
	XY_CHECK_EQ(xy_cache_reserve(c, 30), 0);
	XY_CHECK_EQ(ev.n, 2);
	put_ten(c, 5, XY_CACHE_WORKFLOW, b); /* 30: over by one object */
	XY_CHECK_EQ(ev.n, 3);
	XY_CHECK_EQ(xy_cache_bytes(c), 20);
	xy_cache_close(c);
}

static void t_evict_spares_pinned(void)
{
	struct xy_cache *c = open_in("e");
	struct evictions ev;
	uint8_t a[XY_ID_LEN], b[XY_ID_LEN], d[XY_ID_LEN], e[XY_ID_LEN];
	uint8_t f[XY_ID_LEN];

	memset(&ev, 0, sizeof ev);
	put_ten(c, 1, XY_CACHE_WORKFLOW, a);
	put_ten(c, 2, XY_CACHE_WORKFLOW, b);
	XY_CHECK(xy_cache_incref(c, a) == 0);
	XY_CHECK(xy_cache_incref(c, b) == 0);
	/* No budget yet: nothing goes. */
	put_ten(c, 3, XY_CACHE_WORKFLOW, d);
	XY_CHECK_EQ(xy_cache_count(c), 3);
	/* Over budget with everything else pinned: the object just put is
	 * spared too, and the cache stays over. */
	xy_cache_set_budget(c, 5, note_eviction, &ev);
	XY_CHECK(xy_cache_incref(c, d) == 0);
	put_ten(c, 4, XY_CACHE_WORKFLOW, e);
	XY_CHECK_EQ(ev.n, 0);
	XY_CHECK_EQ(xy_cache_count(c), 4);
	XY_CHECK_EQ(xy_cache_bytes(c), 40);
	/* Let go of b and d: at the next insert they go, as does e, least
	 * recently used first (incref is a use), but a stays pinned. */
	xy_cache_decref(c, b);
	xy_cache_decref(c, d);
	XY_CHECK(xy_cache_find(c, b, NULL) == 0); /* no eviction at decref */
	put_ten(c, 5, XY_CACHE_WORKFLOW, f);
	XY_CHECK_EQ(ev.n, 3);
	XY_CHECK(!memcmp(ev.ids[0], b, XY_ID_LEN));
	XY_CHECK(!memcmp(ev.ids[1], d, XY_ID_LEN));
	XY_CHECK(!memcmp(ev.ids[2], e, XY_ID_LEN));
	XY_CHECK(gone(c, b, XY_CACHE_WORKFLOW));
	XY_CHECK(gone(c, e, XY_CACHE_WORKFLOW));
	XY_CHECK(xy_cache_find(c, a, NULL) == 0);
	XY_CHECK(xy_cache_find(c, f, NULL) == 0);
	XY_CHECK_EQ(xy_cache_bytes(c), 20);
	xy_cache_decref(c, a);
	xy_cache_close(c);
}

/* xy_cache_guard: an untouched object passes, a
 * rewrite of the same size with its mtime put back is caught (ctime), a
 * rename or chmod that leaves the bytes alone passes after a rehash (and
 * the mode is read-only again), a link by the worker is resealed, and an
 * altered object dropped is reported as an eviction. */
static void t_guard(void)
{
	struct xy_cache *c = open_in("g");
	struct evictions ev;
	uint8_t a[XY_ID_LEN];
	char path[PATH_MAX], other[PATH_MAX], how[256];
	struct stat st;
	struct timespec ts[2];
	FILE *f;

	memset(&ev, 0, sizeof ev);
	xy_cache_set_budget(c, 0, note_eviction, &ev);
	put_text(c, "0123456789", XY_CACHE_WORKFLOW, a);
	XY_CHECK(xy_cache_path(c, a, XY_CACHE_WORKFLOW, path, sizeof path) ==
		 0);
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 0);
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 0);
	/* The worker's own hard link moves ctime: resealed, still intact. */
	snprintf(other, sizeof other, "%s/lent", xy_cache_sandboxes(c));
	XY_CHECK(link(path, other) == 0);
	xy_cache_reseal(c, a);
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 0);
	/* A chmod alone: rehashed, intact, read-only again. */
	XY_CHECK(chmod(other, 0644) == 0);
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 0);
	XY_CHECK(stat(path, &st) == 0);
	XY_CHECK_EQ(st.st_mode & 0222, 0);
	/* Same size, mtime put back: ctime gives it away, the hash confirms. */
	XY_CHECK(stat(path, &st) == 0);
	XY_CHECK(chmod(other, 0644) == 0);
	XY_CHECK((f = fopen(other, "r+")));
	fputs("X", f);
	XY_CHECK(fclose(f) == 0);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	XY_CHECK(utimensat(AT_FDCWD, other, ts, 0) == 0);
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 1);
	XY_CHECK(strstr(how, "content changed"));
	xy_cache_drop_altered(c, a, how);
	XY_CHECK_EQ(ev.n, 1);
	XY_CHECK(!memcmp(ev.ids[0], a, XY_ID_LEN));
	XY_CHECK(xy_cache_find(c, a, NULL) < 0);
	XY_CHECK(!exists(path));
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) < 0);
	XY_CHECK_EQ(errno, ENOENT);
	/* Printed when inserted: a change in the cache directory before the
	 * first loan is caught at that loan. */
	put_text(c, "abcdefghij", XY_CACHE_WORKFLOW, a);
	XY_CHECK(xy_cache_path(c, a, XY_CACHE_WORKFLOW, path, sizeof path) ==
		 0);
	XY_CHECK(chmod(path, 0644) == 0);
	write_file(path, "ABCDEFGHIJ");
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 1);
	/* A rise to FOREVER moves it (a rename, which sets ctime): still
	 * intact, without a rehash. */
	put_text(c, "klmnopqrst", XY_CACHE_WORKFLOW, a);
	XY_CHECK(xy_cache_insert(c, a, XY_KIND_FILE, XY_CACHE_FOREVER, 10) ==
		 0);
	XY_CHECK(xy_cache_guard(c, a, XY_CACHE_OBJECT, how, sizeof how) == 0);
	xy_cache_close(c);
}

/* xy_guard_unlink takes out a file input's name only while it is the
 * cached inode, and never through a parent the task made a symbolic link:
 * what it finds there instead is left alone. */
static void t_guard_unlink(void)
{
	const char *top = path_in(xy_test_tmpdir(), "gu");
	char sb[PATH_MAX / 2], outside[PATH_MAX / 2], obj[PATH_MAX / 2];
	char p[PATH_MAX];
	struct stat st;

	snprintf(sb, sizeof sb, "%s/sandbox", top);
	snprintf(outside, sizeof outside, "%s/outside", top);
	snprintf(obj, sizeof obj, "%s/object", top);
	XY_CHECK(xy_mkdir_p(sb) == 0 && xy_mkdir_p(outside) == 0);
	write_file(obj, "cached");
	XY_CHECK(stat(obj, &st) == 0);
	/* In place: removed. */
	snprintf(p, sizeof p, "%s/a", sb);
	XY_CHECK(mkdir(p, 0755) == 0);
	snprintf(p, sizeof p, "%s/a/in", sb);
	XY_CHECK(link(obj, p) == 0);
	XY_CHECK(xy_guard_unlink(sb, "a/in", &st) == 0);
	XY_CHECK(!exists(p));
	/* Replaced by another file: left. */
	write_file(p, "mine");
	XY_CHECK(xy_guard_unlink(sb, "a/in", &st) < 0);
	XY_CHECK(exists(p));
	/* Its parent made a symbolic link to a directory holding a link to
	 * the same inode: not followed, nothing removed there. */
	XY_CHECK(unlink(p) == 0);
	snprintf(p, sizeof p, "%s/a", sb);
	XY_CHECK(rmdir(p) == 0);
	XY_CHECK(symlink(outside, p) == 0);
	snprintf(p, sizeof p, "%s/in", outside);
	XY_CHECK(link(obj, p) == 0);
	XY_CHECK(xy_guard_unlink(sb, "a/in", &st) < 0);
	XY_CHECK(exists(p));
	xy_rm_rf(top);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_insert_lookup),
		XY_TEST(t_refcount_unlink),
		XY_TEST(t_task_level_waits_for_unlink),
		XY_TEST(t_insert_cancels_pending_unlink),
		XY_TEST(t_forever_reopen),
		XY_TEST(t_level_raised),
		XY_TEST(t_temporary_root),
		XY_TEST(t_one_worker_per_dir),
		XY_TEST(t_lookup_from_threads),
		XY_TEST(t_evict_lru),
		XY_TEST(t_evict_spares_pinned),
		XY_TEST(t_reserve_makes_room),
		XY_TEST(t_outputs_held_until_released),
		XY_TEST(t_drop_dirs_off_the_loop),
		XY_TEST(t_guard),
		XY_TEST(t_guard_unlink),
		XY_TEST(t_sandbox_link),
		XY_TEST(t_sandbox_hostile_names),
		XY_TEST(t_sandbox_outputs),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
