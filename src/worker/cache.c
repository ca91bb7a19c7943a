/*
 * cache.c: the worker's content-addressed cache on local disk: a table of
 * objects by id, guarded by a mutex for the transfer server's threads, and
 * the directories that hold them; see cache.h. Pairs with object.h, whose
 * stat gives the kind and size of objects found in forever/ at open.
 */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "auth.h"
#include "guard.h"
#include "log.h"
#include "object.h"
#include "util.h"
#include "xylem.h"

#define HEX_LEN (2 * XY_ID_LEN)

struct entry {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint8_t level;
	uint8_t unlink_pending;
	uint32_t refs;
	uint32_t held; /* of refs: outputs the manager has not yet taken */
	uint64_t size;
	uint64_t last_use; /* c->clock at the last lookup, incref or insert */
	/* Fingerprints (guard.h) of the object and of its expansion, from
	 * the first loan on; the second leaves ctime out (xy_cache_reseal). */
	uint64_t print[2], print_noc[2];
	uint8_t printed[2];
	uint8_t checked[2]; /* found intact by xy_cache_guard at least once */
	struct entry *next; /* bucket chain */
};

struct xy_cache {
	char *root;
	char *objects;
	char *forever;
	char *tmp;
	char *sandbox;
	char *unpacked; /* expansions of archive objects, by the archive's id */
	int temporary; /* root made by mkdtemp: removed at close */
	int owned;     /* we hold the lock: cleaning up is ours to do */
	int lock_fd;
	pthread_mutex_t mu; /* guards the table below */
	struct entry **buckets;
	size_t mask; /* bucket count - 1, a power of two minus one */
	size_t count;
	uint64_t clock;  /* ticks at each use: orders entries for eviction */
	uint64_t total;  /* sum of the entries' sizes */
	uint64_t reserved; /* fetches on their way into tmp/ */
	uint64_t budget; /* bytes; 0: no limit */
	xy_cache_evict_fn on_evict;
	void *evict_arg;
	uv_loop_t *loop;     /* directories dropped are removed on its pool */
	uint64_t trash_seq;  /* names them in tmp/ meanwhile */
	uint64_t guard_key;  /* keys the fingerprints: random per cache */
};

/* ------------------------------------------------------------ the table */

/* Ids are SHA-256 digests, so any eight of their bytes hash uniformly. */
static size_t bucket_of(const struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	uint64_t h;

	memcpy(&h, id, sizeof h);
	return (size_t)h & c->mask;
}

static struct entry *find(const struct xy_cache *c,
			  const uint8_t id[XY_ID_LEN])
{
	struct entry *e = c->buckets[bucket_of(c, id)];

	while (e && memcmp(e->id, id, XY_ID_LEN) != 0)
		e = e->next;
	return e;
}

static int grow(struct xy_cache *c)
{
	size_t n = (c->mask + 1) * 2, i;
	struct entry **b = calloc(n, sizeof *b);

	if (!b)
		return -1;
	for (i = 0; i <= c->mask; i++) {
		struct entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			uint64_t h;

			next = e->next;
			memcpy(&h, e->id, sizeof h);
			e->next = b[h & (n - 1)];
			b[h & (n - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->mask = n - 1;
	return 0;
}

/* Adds an entry; the caller holds the lock and has checked it is absent. */
static struct entry *add(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
			 uint8_t kind, uint8_t level, uint64_t size)
{
	struct entry *e;
	size_t b;

	if (c->count > c->mask && grow(c) < 0)
		return NULL;
	e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	memcpy(e->id, id, XY_ID_LEN);
	c->total += size;
	e->kind = kind;
	e->level = level;
	e->size = size;
	e->last_use = ++c->clock;
	b = bucket_of(c, id);
	e->next = c->buckets[b];
	c->buckets[b] = e;
	c->count++;
	return e;
}

/* Unlinks e from the table; the caller holds the lock and frees e. */
static void take(struct xy_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[bucket_of(c, e->id)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	c->count--;
	c->total -= e->size;
}

/* --------------------------------------------------------- paths on disk */

static char *join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s/%s", a, b) < 0)
		return NULL;
	return s;
}

int xy_cache_path(const struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		  uint8_t level, char *out, size_t len)
{
	char hex[HEX_LEN + 1];
	int n;

	xy_hex(id, XY_ID_LEN, hex);
	n = snprintf(out, len, "%s/%s",
		     level == XY_CACHE_FOREVER ? c->forever : c->objects, hex);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static void remove_path(const char *path);
static void discard(struct xy_cache *c, const char *path);

int xy_cache_unpacked_path(const struct xy_cache *c,
			   const uint8_t id[XY_ID_LEN], char *out, size_t len)
{
	char hex[HEX_LEN + 1];
	int n;

	xy_hex(id, XY_ID_LEN, hex);
	n = snprintf(out, len, "%s/%s", c->unpacked, hex);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* An archive's expansion goes with the archive. */
static void remove_unpacked(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	char path[PATH_MAX];

	if (xy_cache_unpacked_path(c, id, path, sizeof path) == 0)
		discard(c, path);
}

static void remove_path(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode) ? xy_rm_rf(path) : unlink(path))
		XY_LOGW("cache", "cannot remove %s: %s", path, strerror(errno));
}

/* Renames an object. A directory without write permission cannot move to
 * another parent (its ".." entry changes), so a read-only one is made
 * writable for the move and restored after. */
static int move_object(const char *src, const char *dst)
{
	struct stat st;
	int fixed = 0, r, e;

	if (lstat(src, &st) == 0 && S_ISDIR(st.st_mode) &&
	    !(st.st_mode & S_IWUSR) && chmod(src, st.st_mode | S_IWUSR) == 0)
		fixed = 1;
	r = rename(src, dst);
	e = errno;
	if (fixed)
		chmod(r == 0 ? dst : src, st.st_mode & 07777);
	errno = e;
	return r;
}

/* Removes what is at path. A directory (an expansion, a directory object)
 * may hold tens of thousands of files, a venv's for one, and removing
 * them on the loop would hold up keepalives for seconds (principle 1):
 * once the cache has a loop, it is renamed into tmp/ at once, so its
 * place is free, and removed on the thread pool as sandboxes are. */
static void discard(struct xy_cache *c, const char *path)
{
	char trash[PATH_MAX];
	struct stat st;
	char *p;

	if (lstat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode) || !c->loop) {
		remove_path(path);
		return;
	}
	if (snprintf(trash, sizeof trash, "%s/gone-%" PRIu64, c->tmp,
		     ++c->trash_seq) >= (int)sizeof trash ||
	    move_object(path, trash) < 0) {
		XY_LOGW("cache", "cannot move %s aside to remove it: %s", path,
			strerror(errno));
		remove_path(path);
		return;
	}
	if (!(p = strdup(trash))) {
		remove_path(trash);
		return;
	}
	xy_sandbox_remove_async(c->loop, p);
}

void xy_cache_set_loop(struct xy_cache *c, uv_loop_t *loop)
{
	c->loop = loop;
}

/* Raises an entry's level; a rise to FOREVER moves the object into
 * forever/. The caller holds the lock, so lookups never see the entry's
 * level and its place on disk disagree. */
static void raise_level(struct xy_cache *c, struct entry *e, uint8_t level)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (level <= e->level)
		return;
	if (level == XY_CACHE_FOREVER) {
		if (xy_cache_path(c, e->id, e->level, from, sizeof from) < 0 ||
		    xy_cache_path(c, e->id, level, to, sizeof to) < 0 ||
		    move_object(from, to) < 0) {
			XY_LOGW("cache", "cannot move %s into forever/: %s",
				from, strerror(errno));
			return;
		}
	}
	e->level = level;
}

/* Removes an entry and its object. The entry leaves the table under the
 * lock; the files go after, so a transfer thread is never blocked behind
 * a large removal. */
static void drop(struct xy_cache *c, struct entry *e)
{
	char path[PATH_MAX];
	int ok;

	pthread_mutex_lock(&c->mu);
	take(c, e);
	pthread_mutex_unlock(&c->mu);
	ok = xy_cache_path(c, e->id, e->level, path, sizeof path) == 0;
	remove_unpacked(c, e->id);
	free(e);
	if (ok)
		discard(c, path);
}

/* ------------------------------------------------------ open and close */

static int is_hex_id(const char *name)
{
	size_t i;

	for (i = 0; i < HEX_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return name[HEX_LEN] == '\0';
}

/* Records one entry of forever/; anything that is not an object (a
 * leftover of an interrupted write) is removed. */
static void scan_one(struct xy_cache *c, const char *name)
{
	char path[PATH_MAX], err[256];
	uint8_t id[XY_ID_LEN], kind;
	uint64_t size;

	if (snprintf(path, sizeof path, "%s/%s", c->forever, name) >=
	    (int)sizeof path)
		return;
	if (!is_hex_id(name) || xy_unhex(name, id, XY_ID_LEN) < 0) {
		XY_LOGI("cache", "removing stray %s", path);
		remove_path(path);
		return;
	}
	if (xy_object_stat(path, &kind, &size, err, sizeof err) < 0) {
		XY_LOGW("cache", "removing unreadable %s: %s", path, err);
		remove_path(path);
		return;
	}
	pthread_mutex_lock(&c->mu);
	if (!find(c, id) && !add(c, id, kind, XY_CACHE_FOREVER, size))
		XY_LOGW("cache", "out of memory listing %s", path);
	pthread_mutex_unlock(&c->mu);
}

static int scan_forever(struct xy_cache *c, char *err, size_t errlen)
{
	DIR *d = opendir(c->forever);
	struct dirent *de;

	if (!d)
		return xy_fail(err, errlen, errno, "cannot list %s: %s",
			       c->forever, strerror(errno));
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		scan_one(c, de->d_name);
	}
	closedir(d);
	return 0;
}

/* Empties a directory by removing and remaking it. */
static int renew_dir(const char *path, char *err, size_t errlen)
{
	if (xy_rm_rf(path) < 0 || mkdir(path, 0755) < 0)
		return xy_fail(err, errlen, errno, "cannot empty %s: %s", path,
			       strerror(errno));
	return 0;
}

static int make_root(struct xy_cache *c, const char *dir, char *err,
		     size_t errlen)
{
	char tmpl[PATH_MAX], real[PATH_MAX];
	const char *base = getenv("TMPDIR");

	if (!dir) {
		if (!base || !*base)
			base = "/tmp";
		if (snprintf(tmpl, sizeof tmpl, "%s/xylem-worker-XXXXXX",
			     base) >= (int)sizeof tmpl)
			return xy_fail(err, errlen, ENAMETOOLONG,
				       "TMPDIR is too long");
		if (!mkdtemp(tmpl))
			return xy_fail(err, errlen, errno,
				       "cannot make a directory under %s: %s",
				       base, strerror(errno));
		c->temporary = 1;
		c->owned = 1;
		dir = tmpl;
	} else if (xy_mkdir_p(dir) < 0) {
		return xy_fail(err, errlen, errno, "cannot create %s: %s", dir,
			       strerror(errno));
	}
	if (!realpath(dir, real))
		return xy_fail(err, errlen, errno, "cannot resolve %s: %s",
			       dir, strerror(errno));
	c->root = strdup(real);
	return c->root ? 0 : xy_fail(err, errlen, ENOMEM, "out of memory");
}

/* Two workers on one cache directory would empty each other's objects/. */
static int lock_root(struct xy_cache *c, char *err, size_t errlen)
{
	char *path = join(c->root, "lock");

	if (!path)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	free(path);
	if (c->lock_fd < 0)
		return xy_fail(err, errlen, errno, "cannot lock %s: %s",
			       c->root, strerror(errno));
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return xy_fail(err, errlen, errno,
			       "cache directory %s is in use by another worker",
			       c->root);
	c->owned = 1;
	return 0;
}

struct xy_cache *xy_cache_open(const char *dir, char *err, size_t errlen)
{
	struct xy_cache *c = calloc(1, sizeof *c);

	if (!c) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	c->lock_fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	if (xy_random(&c->guard_key, sizeof c->guard_key) < 0) {
		xy_fail(err, errlen, EIO, "no random bytes for the cache");
		pthread_mutex_destroy(&c->mu);
		free(c);
		return NULL;
	}
	c->mask = 255;
	c->buckets = calloc(c->mask + 1, sizeof *c->buckets);
	if (!c->buckets) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	if (make_root(c, dir, err, errlen) < 0)
		goto error;
	if (!c->temporary && lock_root(c, err, errlen) < 0)
		goto error;
	c->objects = join(c->root, "objects");
	c->forever = join(c->root, "forever");
	c->tmp = join(c->root, "tmp");
	c->sandbox = join(c->root, "sandbox");
	c->unpacked = join(c->root, "unpacked");
	if (!c->objects || !c->forever || !c->tmp || !c->sandbox ||
	    !c->unpacked) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	if (renew_dir(c->objects, err, errlen) < 0 ||
	    renew_dir(c->tmp, err, errlen) < 0 ||
	    renew_dir(c->sandbox, err, errlen) < 0 ||
	    renew_dir(c->unpacked, err, errlen) < 0)
		goto error;
	if (xy_mkdir_p(c->forever) < 0) {
		xy_fail(err, errlen, errno, "cannot create %s: %s", c->forever,
			strerror(errno));
		goto error;
	}
	if (scan_forever(c, err, errlen) < 0)
		goto error;
	return c;
error:
	xy_cache_close(c);
	return NULL;
}

static void free_table(struct xy_cache *c)
{
	size_t i;

	for (i = 0; c->buckets && i <= c->mask; i++) {
		struct entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(c->buckets);
}

void xy_cache_close(struct xy_cache *c)
{
	int e = errno;

	if (!c)
		return;
	if (c->owned) {
		if (c->temporary) {
			xy_rm_rf(c->root);
		} else {
			const char *dirs[] = {c->objects, c->tmp, c->sandbox,
					      c->unpacked};

			for (size_t i = 0; i < 4; i++)
				if (dirs[i] && (xy_rm_rf(dirs[i]) < 0 ||
						mkdir(dirs[i], 0755) < 0))
					XY_LOGW("cache", "cannot empty %s: %s",
						dirs[i], strerror(errno));
		}
	}
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free_table(c);
	pthread_mutex_destroy(&c->mu);
	free(c->unpacked);
	free(c->sandbox);
	free(c->tmp);
	free(c->forever);
	free(c->objects);
	free(c->root);
	free(c);
	errno = e;
}

const char *xy_cache_root(const struct xy_cache *c)
{
	return c->root;
}

const char *xy_cache_tmp(const struct xy_cache *c)
{
	return c->tmp;
}

const char *xy_cache_sandboxes(const struct xy_cache *c)
{
	return c->sandbox;
}

/* ------------------------------------------------------------ lookups */

int xy_cache_lookup(void *arg, const uint8_t id[XY_ID_LEN], char *path,
		    size_t pathlen, uint8_t *kind)
{
	struct xy_cache *c = arg;
	struct entry *e;
	int r = -1;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	if (e && xy_cache_path(c, id, e->level, path, pathlen) == 0) {
		e->last_use = ++c->clock;
		*kind = e->kind;
		r = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

int xy_cache_find(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		  struct xy_cache_info *info)
{
	struct entry *e;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	if (e && info) {
		info->kind = e->kind;
		info->level = e->level;
		info->size = e->size;
		info->refs = e->refs;
	}
	pthread_mutex_unlock(&c->mu);
	return e ? 0 : -1;
}

size_t xy_cache_count(struct xy_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->count;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* ----------------------------------------------------------- eviction */

void xy_cache_set_budget(struct xy_cache *c, uint64_t bytes,
			 xy_cache_evict_fn fn, void *arg)
{
	pthread_mutex_lock(&c->mu);
	c->budget = bytes;
	pthread_mutex_unlock(&c->mu);
	c->on_evict = fn;
	c->evict_arg = arg;
}

uint64_t xy_cache_bytes(struct xy_cache *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->mu);
	n = c->total;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* The least recently used entry no running task holds, other than keep
 * (may be NULL); the caller holds the lock. A scan of the whole table per
 * eviction: O(n), acceptable while caches hold thousands of objects, not
 * millions (an LRU list would make it O(1)). Objects of every level are
 * candidates, FOREVER ones included; fetches in progress are in tmp/, not
 * in the table. */
static struct entry *lru_victim(const struct xy_cache *c,
				const uint8_t keep[XY_ID_LEN])
{
	struct entry *best = NULL;

	for (size_t i = 0; i <= c->mask; i++)
		for (struct entry *e = c->buckets[i]; e; e = e->next)
			if (!e->refs &&
			    (!keep || memcmp(e->id, keep, XY_ID_LEN)) &&
			    (!best || e->last_use < best->last_use))
				best = e;
	return best;
}

/* While the cache's objects and the fetches reserved are over its
 * budget, drops the least recently used unreferenced object and reports
 * it. The object just inserted (keep; NULL: none) is spared even when it
 * alone is over the budget: its fetch or task wants it next. */
static void evict(struct xy_cache *c, const uint8_t keep[XY_ID_LEN])
{
	char path[PATH_MAX];

	for (;;) {
		struct entry *e = NULL;
		int ok;

		pthread_mutex_lock(&c->mu);
		if (c->budget && c->total + c->reserved > c->budget) {
			e = lru_victim(c, keep);
			if (e)
				take(c, e);
		}
		pthread_mutex_unlock(&c->mu);
		if (!e)
			return;
		ok = xy_cache_path(c, e->id, e->level, path, sizeof path) == 0;
		if (ok)
			discard(c, path);
		remove_unpacked(c, e->id);
		XY_LOGI("cache", "evicted %.12s... (%" PRIu64 " bytes, unused "
			"the longest)", ok ? strrchr(path, '/') + 1 : "?",
			e->size);
		if (c->on_evict)
			c->on_evict(c->evict_arg, e->id, e->kind, e->size);
		free(e);
	}
}

uint64_t xy_cache_reserve(struct xy_cache *c, uint64_t size)
{
	pthread_mutex_lock(&c->mu);
	int fits = !c->budget || size <= c->budget;
	if (fits)
		c->reserved += size;
	pthread_mutex_unlock(&c->mu);
	if (!fits)
		return 0;
	evict(c, NULL);
	return size;
}

void xy_cache_unreserve(struct xy_cache *c, uint64_t size)
{
	pthread_mutex_lock(&c->mu);
	c->reserved -= size < c->reserved ? size : c->reserved;
	pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------ changes */

static void seal_new(struct xy_cache *c, struct entry *e);

int xy_cache_insert(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		    uint8_t kind, uint8_t level, uint64_t size)
{
	struct entry *e;
	int r = 0, added = 0, moved = 0;

	if (level > XY_CACHE_FOREVER)
		level = XY_CACHE_FOREVER;
	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	if (e) {
		uint8_t was = e->level;

		raise_level(c, e, level);
		moved = was != XY_CACHE_FOREVER && e->level == XY_CACHE_FOREVER;
		e->last_use = ++c->clock;
		/* Wanted again (a FETCH, an output): an UNLINK still waiting
		 * for its last user no longer applies, or the manager would
		 * count on a copy that goes when that user ends. */
		e->unlink_pending = 0;
	} else if (!(e = add(c, id, kind, level, size))) {
		r = -1;
	} else {
		added = 1;
	}
	pthread_mutex_unlock(&c->mu);
	if (r < 0) {
		errno = ENOMEM;
		return r;
	}
	if (added)
		seal_new(c, e);
	else if (moved) /* the rename into forever/ set its ctime */
		xy_cache_reseal(c, id);
	evict(c, id);
	return 0;
}

int xy_cache_adopt(struct xy_cache *c, const char *src,
		   const uint8_t id[XY_ID_LEN], uint8_t kind, uint8_t level,
		   uint64_t size, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (level > XY_CACHE_FOREVER)
		level = XY_CACHE_FOREVER;
	if (xy_cache_find(c, id, NULL) == 0) {
		remove_path(src);
		return xy_cache_insert(c, id, kind, level, size);
	}
	if (xy_cache_path(c, id, level, path, sizeof path) < 0)
		return xy_fail(err, errlen, errno, "cache path too long");
	if (move_object(src, path) < 0) {
		/* A copy left at the path by an earlier run has the same
		 * content, since the name is the content's hash. */
		if (errno != EEXIST && errno != ENOTEMPTY)
			return xy_fail(err, errlen, errno,
				       "cannot move %s into the cache: %s", src,
				       strerror(errno));
		remove_path(src);
	}
	if (xy_cache_insert(c, id, kind, level, size) < 0)
		return xy_fail(err, errlen, errno, "out of memory");
	return 0;
}

/* A reference on id: a task's use (a use for the LRU too), or a hold of
 * an output until the manager's RELEASE. */
static int ref(struct xy_cache *c, const uint8_t id[XY_ID_LEN], int hold)
{
	struct entry *e;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	if (e) {
		e->refs++;
		if (hold)
			e->held++;
		else
			e->last_use = ++c->clock;
	}
	pthread_mutex_unlock(&c->mu);
	if (!e)
		errno = ENOENT;
	return e ? 0 : -1;
}

int xy_cache_incref(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	return ref(c, id, 0);
}

void xy_cache_decref(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	struct entry *e;
	int gone = 0;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	/* Task-level objects too wait for the manager's UNLINK: it alone
	 * knows whether another task bound for this worker needs one. */
	if (e && e->refs > 0 && --e->refs == 0)
		gone = e->unlink_pending;
	pthread_mutex_unlock(&c->mu);
	if (gone)
		drop(c, e);
}

int xy_cache_hold_output(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	return ref(c, id, 1);
}

void xy_cache_release_output(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	struct entry *e;
	int held;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	held = e && e->held > 0;
	if (held)
		e->held--;
	pthread_mutex_unlock(&c->mu);
	if (held) /* a RELEASE for nothing held is ignored */
		xy_cache_decref(c, id);
}

int xy_cache_unlink(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	struct entry *e;
	int busy = 0;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	if (e && e->refs > 0) {
		e->unlink_pending = 1;
		busy = 1;
	}
	pthread_mutex_unlock(&c->mu);
	if (!e) {
		errno = ENOENT;
		return -1;
	}
	if (busy)
		return 1;
	drop(c, e);
	return 0;
}

int xy_cache_inventory(struct xy_cache *c, struct xy_inventory_item **items,
		       uint32_t *n)
{
	return xy_cache_inventory_from(c, XY_CACHE_FOREVER, items, n);
}

int xy_cache_inventory_from(struct xy_cache *c, int level,
			    struct xy_inventory_item **items, uint32_t *n)
{
	struct xy_inventory_item *v = NULL;
	size_t i, k = 0;

	pthread_mutex_lock(&c->mu);
	if (c->count) {
		v = calloc(c->count, sizeof *v);
		if (!v) {
			pthread_mutex_unlock(&c->mu);
			errno = ENOMEM;
			return -1;
		}
	}
	for (i = 0; i <= c->mask; i++) {
		for (struct entry *e = c->buckets[i]; e; e = e->next) {
			if (e->level < level || k >= XY_MAX_INVENTORY)
				continue;
			memcpy(v[k].id, e->id, XY_ID_LEN);
			v[k].size = e->size;
			v[k].kind = e->kind;
			v[k].level = e->level;
			k++;
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (!k) {
		free(v);
		v = NULL;
	}
	*items = v;
	*n = (uint32_t)k;
	return 0;
}

/* ------------------------------------------------- objects lent to tasks */

/* The path of part (XY_GUARD_OBJECT or _EXPANSION) of e; the caller
 * holds no lock (entries change only on the loop thread). */
static int part_path(struct xy_cache *c, const struct entry *e, int part,
		     char *path, size_t len)
{
	if (part == XY_CACHE_EXPANSION)
		return xy_cache_unpacked_path(c, e->id, path, len);
	return xy_cache_path(c, e->id, e->level, path, len);
}

/* Both prints of what is at path now. */
static int prints(struct xy_cache *c, const char *path, uint64_t *full,
		  uint64_t *noc, char *err, size_t errlen)
{
	uint64_t p[2];

	if (xy_guard_print(path, c->guard_key, p, NULL, err, errlen) < 0)
		return -1;
	*full = p[0];
	*noc = p[1];
	return 0;
}

static struct entry *locked_find(struct xy_cache *c,
				 const uint8_t id[XY_ID_LEN])
{
	struct entry *e;

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	pthread_mutex_unlock(&c->mu);
	return e;
}

/* The prints differ: hashing the object again tells a change of its
 * content from one of its metadata alone (a task that renamed, linked or
 * chmodded its input, the worker's own hashing of an output that is the
 * same inode). Intact, it is made read-only again and printed anew. */
static int settle(struct xy_cache *c, struct entry *e, const char *path,
		  char *err, size_t errlen)
{
	uint8_t id[XY_ID_LEN], kind;
	uint64_t size;
	char why[256];

	if (xy_object_hash(path, id, &kind, &size, why, sizeof why) < 0) {
		snprintf(err, errlen, "cannot hash it again: %s", why);
		return 1;
	}
	if (memcmp(id, e->id, XY_ID_LEN) != 0) {
		snprintf(err, errlen, "its content changed");
		return 1;
	}
	if (xy_object_make_readonly(path) < 0 ||
	    prints(c, path, &e->print[0], &e->print_noc[0], why,
		   sizeof why) < 0) {
		snprintf(err, errlen, "cannot seal it again: %s", why);
		return 1;
	}
	XY_LOGI("cache", "%.12s... was touched but not changed (rehashed)",
		strrchr(path, '/') + 1);
	return 0;
}

/* An object just inserted (its hash checked as it arrived, or just
 * computed for an output) is printed at once, so that a change made in
 * the cache directory before its first loan is caught too. Objects found
 * in forever/ at start are printed at their first loan. */
static void seal_new(struct xy_cache *c, struct entry *e)
{
	char path[PATH_MAX], why[256];

	if (part_path(c, e, XY_CACHE_OBJECT, path, sizeof path) == 0 &&
	    prints(c, path, &e->print[0], &e->print_noc[0], why,
		   sizeof why) == 0)
		e->printed[0] = 1;
}

int xy_cache_guard(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		   int part, char *err, size_t errlen)
{
	struct entry *e = locked_find(c, id);
	char path[PATH_MAX], why[256];
	uint64_t full, noc;

	if (!e || part_path(c, e, part, path, sizeof path) < 0) {
		errno = ENOENT;
		return -1;
	}
	if (prints(c, path, &full, &noc, why, sizeof why) < 0) {
		if (errno == ENOENT && part == XY_CACHE_OBJECT) {
			snprintf(err, errlen, "it is gone (%s)", why);
			return 1;
		}
		if (part == XY_CACHE_EXPANSION) {
			snprintf(err, errlen, "%s", why);
			return 1;
		}
		return settle(c, e, path, err, errlen);
	}
	if (!e->printed[part]) {
		e->print[part] = full;
		e->print_noc[part] = noc;
		e->printed[part] = 1;
		e->checked[part] = 1;
		return 0;
	}
	if (full == e->print[part]) {
		e->checked[part] = 1;
		return 0;
	}
	if (part == XY_CACHE_EXPANSION) {
		/* No id to hash it against: the worker never touches what
		 * lies inside an expansion, so any change is a task's. */
		snprintf(err, errlen, "its expansion changed");
		return 1;
	}
	if (settle(c, e, path, err, errlen))
		return 1;
	e->checked[part] = 1;
	return 0;
}

int xy_cache_guarded(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		     int part)
{
	struct entry *e = locked_find(c, id);

	return e && e->checked[part];
}

void xy_cache_reseal(struct xy_cache *c, const uint8_t id[XY_ID_LEN])
{
	struct entry *e = locked_find(c, id);
	char path[PATH_MAX], why[256];
	uint64_t full, noc;

	if (!e || !e->printed[XY_CACHE_OBJECT] ||
	    part_path(c, e, XY_CACHE_OBJECT, path, sizeof path) < 0 ||
	    prints(c, path, &full, &noc, why, sizeof why) < 0)
		return;
	/* Only ctime may have moved (the link count did): anything else
	 * left for the next check to find. */
	if (noc == e->print_noc[XY_CACHE_OBJECT])
		e->print[XY_CACHE_OBJECT] = full;
}

void xy_cache_drop_altered(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
			   const char *why)
{
	struct entry *e;
	char hex[HEX_LEN + 1], path[PATH_MAX];

	pthread_mutex_lock(&c->mu);
	e = find(c, id);
	if (e)
		take(c, e);
	pthread_mutex_unlock(&c->mu);
	if (!e)
		return;
	xy_hex(id, XY_ID_LEN, hex);
	XY_LOGW("cache", "dropped %.12s...: a task altered it (%s)", hex, why);
	if (xy_cache_path(c, e->id, e->level, path, sizeof path) == 0)
		discard(c, path);
	remove_unpacked(c, e->id);
	if (c->on_evict)
		c->on_evict(c->evict_arg, id, e->kind, e->size);
	free(e);
}
