/*
 * catalog.c: the file catalogue, a sub-context of the manager. It holds the
 * declared files (by path), the objects (by id) with the workers that hold
 * them, the hashing of manager-side files on libuv's thread pool, and the
 * table from which the manager's transfer server finds what to send, and
 * the lost temps whose readers wait for a copy still on its way. The
 * served table is the one thing here that other threads read, under its
 * mutex.
 *
 * When a file is freed: each file counts the program's handles and the
 * manager's own references (internal.h); when both are gone it joins the
 * dead list, and the phase (xy_catalog_phase, once a turn) frees it, so
 * that nothing is freed under a caller that still walks it. An object
 * keeps the list of its files; when the last goes, and no fetch or
 * retrieval holds it, it stops being served and, if workers hold copies,
 * waits among the idle objects (oldest out first, XY_IDLE_OBJECTS at
 * most) for a file with that content to be declared again; the oldest
 * is dropped, its task- and workflow-level copies deleted (UNLINK).
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "htab.h"
#include "internal.h"
#include "log.h"
#include "memo.h"
#include "object.h"
#include "util.h"


struct served {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	char *path;
	struct served *next;
};

struct xy_catalog {
	struct xy_manager *m;
	struct xy_htab files;   /* by path or URL, through next */
	struct xy_file *unnamed; /* buffers, expansions, temps (unext) */
	struct xy_htab objects; /* by id, through hnext */
	struct xy_file *dead;      /* no reference left, through dnext */
	struct xy_object *check;   /* to look at in the phase, through cnext */
	struct xy_object *idle_head, *idle_tail; /* through inext */
	int64_t n_files, n_idle;
	char staging[4096];
	int hashing; /* jobs on the thread pool */
	struct xy_file *to_hash;
	struct xy_file *awaiting; /* temps waiting for a copy, through anext */
	/* Files that failed, whose waiters are still to fail (through
	 * fail_next), and whether that is under way: a loop, not a
	 * recursion, however long the chain of dependent tasks. */
	struct xy_file *failing, *failing_tail;
	int failing_now;

	pthread_mutex_t lock; /* guards served */
	struct xy_htab served; /* by id, through next */
};

struct hash_job {
	uv_work_t req;
	struct xy_catalog *c;
	struct xy_file *f;
	char *path;
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	struct xy_chunks chunks;
	int rc;
	char err[512];
};

/* An id is a SHA-256: any four of its bytes are a good hash. */
static uint32_t id_hash(const uint8_t id[XY_ID_LEN])
{
	uint32_t b;
	memcpy(&b, id, sizeof b);
	return b;
}

static uint32_t file_hash(const void *node)
{
	const struct xy_file *f = node;
	return xy_str_hash(f->url ? f->url : f->path);
}

static uint32_t object_hash(const void *node)
{
	return id_hash(((const struct xy_object *)node)->id);
}

static uint32_t served_hash(const void *node)
{
	return id_hash(((const struct served *)node)->id);
}

int xy_catalog_check_level(xy_cache_level level, char *err, size_t errlen)
{
	if ((unsigned)level > XY_CACHE_FOREVER)
		return xy_fail(err, errlen, EINVAL, "bad cache level %d",
			       (int)level);
	return 0;
}

struct xy_catalog *xy_catalog_create(struct xy_manager *m, char *err,
				     size_t errlen)
{
	struct xy_catalog *c = calloc(1, sizeof *c);
	if (!c) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	c->m = m;
	pthread_mutex_init(&c->lock, NULL);
	if (xy_htab_init(&c->files, offsetof(struct xy_file, next),
			 file_hash) < 0 ||
	    xy_htab_init(&c->objects, offsetof(struct xy_object, hnext),
			 object_hash) < 0 ||
	    xy_htab_init(&c->served, offsetof(struct served, next),
			 served_hash) < 0) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		xy_catalog_destroy(c);
		return NULL;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(c->staging, sizeof c->staging, "%s/xylem-manager-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(c->staging)) {
		xy_fail(err, errlen, errno, "cannot make %s: %s", c->staging,
			strerror(errno));
		c->staging[0] = 0;
		xy_catalog_destroy(c);
		return NULL;
	}
	return c;
}

static void file_memory_free(struct xy_file *f)
{
	free(f->path);
	free(f->url);
	free(f->label);
	free(f->waiters);
	free(f->error);
	free(f);
}

static void object_memory_free(struct xy_object *o)
{
	free(o->replicas);
	free(o->chunks.hash);
	free(o->staged);
	free(o);
}

void xy_catalog_destroy(struct xy_catalog *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->files.n_slots; i++)
		for (struct xy_file *f = xy_htab_slot(&c->files, i), *n; f;
		     f = n) {
			n = f->next;
			file_memory_free(f);
		}
	for (struct xy_file *f = c->unnamed, *n; f; f = n) {
		n = f->unext;
		file_memory_free(f);
	}
	for (size_t i = 0; i < c->objects.n_slots; i++)
		for (struct xy_object *o = xy_htab_slot(&c->objects, i), *n;
		     o; o = n) {
			n = o->hnext;
			object_memory_free(o);
		}
	for (size_t i = 0; i < c->served.n_slots; i++)
		for (struct served *s = xy_htab_slot(&c->served, i), *n; s;
		     s = n) {
			n = s->next;
			free(s->path);
			free(s);
		}
	xy_htab_free(&c->files);
	xy_htab_free(&c->objects);
	xy_htab_free(&c->served);
	if (c->staging[0])
		xy_rm_rf(c->staging);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *xy_catalog_staging(struct xy_catalog *c)
{
	return c->staging;
}

/* A new file of c with one handle, not yet in a table or list. */
static struct xy_file *file_new(struct xy_catalog *c, xy_cache_level level)
{
	struct xy_file *f = calloc(1, sizeof *f);
	if (!f) {
		errno = ENOMEM;
		return NULL;
	}
	f->catalog = c;
	f->handles = 1;
	f->level = level;
	c->n_files++;
	return f;
}

static void unnamed_add(struct xy_catalog *c, struct xy_file *f)
{
	f->uprev = NULL;
	f->unext = c->unnamed;
	if (f->unext)
		f->unext->uprev = f;
	c->unnamed = f;
}

struct xy_file *xy_catalog_unnamed(struct xy_catalog *c, xy_cache_level level)
{
	struct xy_file *f = file_new(c, level);
	if (f)
		unnamed_add(c, f);
	return f;
}

/* The file named key (a path, or with url set a URL), made if new; one
 * more handle on it if not. */
static struct xy_file *find_or_add(struct xy_catalog *c, const char *key,
				   int url, xy_cache_level level)
{
	uint32_t h = xy_str_hash(key);
	for (struct xy_file *f = xy_htab_first(&c->files, h); f; f = f->next) {
		const char *name = url ? f->url : f->path;
		if (name && !strcmp(name, key)) {
			f->handles++;
			return f;
		}
	}
	char *copy = strdup(key);
	struct xy_file *f = copy ? file_new(c, level) : NULL;
	if (!f) {
		free(copy);
		errno = ENOMEM;
		return NULL;
	}
	if (url)
		f->url = copy;
	else
		f->path = copy;
	xy_htab_insert(&c->files, f, h);
	return f;
}

struct xy_file *xy_catalog_file(struct xy_catalog *c, const char *path,
				xy_cache_level level)
{
	return find_or_add(c, path, 0, level);
}

struct xy_file *xy_catalog_url(struct xy_catalog *c, const char *url,
			       xy_cache_level level)
{
	return find_or_add(c, url, 1, level);
}

struct xy_file *xy_catalog_unpack(struct xy_catalog *c,
				  struct xy_file *archive,
				  xy_cache_level level)
{
	struct xy_file *f = archive->unpacked;
	if (f) {
		if (level > f->level)
			f->level = level;
		f->handles++;
		return f;
	}
	if (!(f = xy_catalog_unnamed(c, level)))
		return NULL;
	f->archive = archive;
	f->obj = archive->obj; /* a mirror: not among the object's files */
	f->state = archive->state == FILE_READY ? FILE_READY : FILE_NEW;
	archive->unpacked = f;
	xy_catalog_file_incref(archive); /* its expansion needs it */
	return f;
}

struct xy_object *xy_catalog_object(struct xy_catalog *c,
				    const uint8_t id[XY_ID_LEN], uint8_t kind,
				    uint64_t size)
{
	uint32_t h = id_hash(id);
	for (struct xy_object *o = xy_htab_first(&c->objects, h); o;
	     o = o->hnext)
		if (!memcmp(o->id, id, XY_ID_LEN))
			return o;
	struct xy_object *o = xy__calloc(c->m, 1, sizeof *o);
	if (!o)
		return NULL;
	memcpy(o->id, id, XY_ID_LEN);
	xy_hex(id, XY_ID_LEN, o->hex);
	o->kind = kind;
	o->size = size;
	xy_htab_insert(&c->objects, o, h);
	/* Known from a worker (an output, an inventory) with no file yet:
	 * the phase drops it if none takes it. */
	xy_catalog_consider(c, o);
	return o;
}

void xy_catalog_set_chunks(struct xy_object *o, struct xy_chunks *chunks)
{
	if (!o->chunks.n && chunks->n &&
	    xy_chunk_count(o->size, chunks->chunk_size) == chunks->n) {
		o->chunks = *chunks;
	} else {
		free(chunks->hash);
	}
	memset(chunks, 0, sizeof *chunks);
}

void xy_catalog_serve(struct xy_catalog *c, struct xy_object *o,
		      const char *path)
{
	o->on_manager = 1;
	xy_catalog_serve_id(c, o->id, o->kind, path);
}

void xy_catalog_serve_id(struct xy_catalog *c, const uint8_t *id,
			 uint8_t kind, const char *path)
{
	uint32_t h = id_hash(id);
	pthread_mutex_lock(&c->lock);
	struct served *s;
	for (s = xy_htab_first(&c->served, h); s; s = s->next)
		if (!memcmp(s->id, id, XY_ID_LEN))
			break;
	if (!s && (s = calloc(1, sizeof *s))) {
		memcpy(s->id, id, XY_ID_LEN);
		xy_htab_insert(&c->served, s, h);
	}
	if (s) {
		char *p = strdup(path);
		if (p) {
			free(s->path);
			s->path = p;
		}
		s->kind = kind;
	}
	pthread_mutex_unlock(&c->lock);
}

int xy_catalog_lookup(void *catalog, const uint8_t id[XY_ID_LEN], char *path,
		      size_t pathlen, uint8_t *kind)
{
	struct xy_catalog *c = catalog;
	int rc = -1;
	pthread_mutex_lock(&c->lock);
	for (struct served *s = xy_htab_first(&c->served, id_hash(id)); s;
	     s = s->next) {
		if (!memcmp(s->id, id, XY_ID_LEN) && s->path &&
		    strlen(s->path) < pathlen) {
			strcpy(path, s->path);
			*kind = s->kind;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* The manager stops serving o: its served entry goes, and its staged
 * copy with it. A GET already reading it keeps its open file. */
static void unserve(struct xy_catalog *c, struct xy_object *o)
{
	struct served *s;
	uint32_t h = id_hash(o->id);
	pthread_mutex_lock(&c->lock);
	for (s = xy_htab_first(&c->served, h); s; s = s->next)
		if (!memcmp(s->id, o->id, XY_ID_LEN))
			break;
	if (s)
		xy_htab_remove(&c->served, s, h);
	pthread_mutex_unlock(&c->lock);
	if (s) {
		free(s->path);
		free(s);
	}
	if (o->staged) {
		unlink(o->staged);
		free(o->staged);
		o->staged = NULL;
	}
	o->on_manager = 0;
}

/* f, whose path may be where o is served from, no longer has o: o is
 * served from its staged copy or another of its files with a path, if
 * it has one (the program may remove or rewrite a path it released).
 * Else it stays as it is until o has no file and no fetch left (settle):
 * a fetch of it may be under way from that path. */
static void serve_elsewhere(struct xy_catalog *c, struct xy_object *o,
			    const struct xy_file *f)
{
	struct served *s;
	int was = 0;
	if (!o->on_manager || !f->path)
		return;
	pthread_mutex_lock(&c->lock);
	for (s = xy_htab_first(&c->served, id_hash(o->id)); s; s = s->next)
		if (!memcmp(s->id, o->id, XY_ID_LEN))
			was = s->path && !strcmp(s->path, f->path);
	pthread_mutex_unlock(&c->lock);
	if (!was)
		return;
	if (o->staged) {
		xy_catalog_serve(c, o, o->staged);
		return;
	}
	for (struct xy_file *g = o->files; g; g = g->onext) {
		if (g->path && g != f) {
			xy_catalog_serve(c, o, g->path);
			return;
		}
	}
}

struct xy_file *xy_catalog_buffer(struct xy_catalog *c, const void *data,
				  size_t len, xy_cache_level level, char *err,
				  size_t errlen)
{
	char path[4200];
	static const char tmpl[] = "%s/buffer-XXXXXX";
	snprintf(path, sizeof path, tmpl, c->staging);
	int fd = mkstemp(path);
	if (fd < 0) {
		xy_fail(err, errlen, errno, "cannot stage a buffer: %s",
			strerror(errno));
		return NULL;
	}
	int ok = len == 0 || write(fd, data, len) == (ssize_t)len;
	close(fd);
	uint8_t id[XY_ID_LEN], kind;
	uint64_t size;
	struct xy_chunks chunks;
	if (!ok || xy_object_hash_chunks(path, id, &kind, &size, &chunks, err,
					 errlen) < 0) {
		if (!ok)
			xy_fail(err, errlen, EIO, "cannot stage a buffer");
		unlink(path);
		return NULL;
	}
	struct xy_object *o = xy_catalog_object(c, id, kind, size);
	struct xy_file *f = o ? xy_catalog_unnamed(c, level) : NULL;
	if (!f) {
		free(chunks.hash);
		unlink(path);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	f->state = FILE_READY;
	xy_catalog_file_set_object(c, f, o);
	xy_catalog_set_chunks(o, &chunks);
	/* The object keeps one staged copy, whoever else has it, and
	 * removes it when it goes; the same bytes staged again are not
	 * kept twice. */
	if (o->staged) {
		unlink(path);
	} else {
		o->staged = strdup(path);
		xy_catalog_serve(c, o, path);
	}
	return f;
}

static int add_waiter(struct xy_file *f, struct xy_task *t)
{
	if (f->n_waiters == f->cap_waiters) {
		uint32_t cap = f->cap_waiters ? 2 * f->cap_waiters : 4;
		struct xy_task **nw = realloc(f->waiters, cap * sizeof *nw);
		if (!nw)
			return -1;
		f->waiters = nw;
		f->cap_waiters = cap;
	}
	f->waiters[f->n_waiters++] = t;
	t->pending++;
	return 0;
}

void xy_catalog_remove_waiter(struct xy_file *f, struct xy_task *t)
{
	if (f->archive) /* an expansion's waiters wait on its archive */
		f = f->archive;
	for (uint32_t i = 0; i < f->n_waiters; i++) {
		if (f->waiters[i] == t) {
			f->waiters[i] = f->waiters[--f->n_waiters];
			t->pending--;
			return;
		}
	}
}

static void hash_work(uv_work_t *req)
{
	struct hash_job *j = req->data;
	j->rc = xy_object_hash_chunks(j->path, j->id, &j->kind, &j->size,
				      &j->chunks, j->err, sizeof j->err);
}

static void hash_done(uv_work_t *req, int status)
{
	struct hash_job *j = req->data;
	struct xy_catalog *c = j->c;
	int hashed = j->rc == 0 && status == 0;
	struct xy_object *o =
		hashed ? xy_catalog_object(c, j->id, j->kind, j->size) : NULL;
	char why[700];
	c->hashing--;
	if (o) {
		xy_catalog_set_chunks(o, &j->chunks);
		xy_catalog_serve(c, o, j->path);
		xy_catalog_file_ready(c, j->f, o);
	} else if (hashed) {
		/* Hashed, but memory is short to record its object: its
		 * waiters fail. The file itself is fine, so a task that
		 * needs it later has it hashed again. */
		snprintf(why, sizeof why, "input %s: the manager is out of "
			 "memory", j->path);
		j->f->state = FILE_NEW;
		xy_catalog_file_failed(c, j->f, why);
	} else {
		snprintf(why, sizeof why, "input %s: %s", j->path,
			 status ? "cancelled" : j->err);
		j->f->state = FILE_MISSING;
		xy_catalog_file_failed(c, j->f, why);
	}
	xy_catalog_file_decref(j->f); /* the hashing's */
	free(j->chunks.hash);
	free(j->path);
	free(j);
}

static int start_hash(struct xy_catalog *c, struct xy_file *f)
{
	struct hash_job *j = calloc(1, sizeof *j);
	if (!j || !(j->path = strdup(f->path))) {
		free(j);
		return -1;
	}
	j->c = c;
	j->f = f;
	j->req.data = j;
	if (uv_queue_work(&c->m->loop, &j->req, hash_work, hash_done) < 0) {
		free(j->path);
		free(j);
		return -1;
	}
	c->hashing++;
	f->state = FILE_HASHING;
	return 0;
}

struct xy_worker *xy_catalog_holder(const struct xy_object *o)
{
	for (uint32_t i = 0; o && i < o->n_replicas; i++)
		if (o->replicas[i].ready && o->replicas[i].worker->ready)
			return o->replicas[i].worker;
	return NULL;
}

int xy_catalog_has_source(const struct xy_object *o)
{
	return o && (o->on_manager || xy_catalog_holder(o));
}

int xy_catalog_copy_in_flight(const struct xy_object *o)
{
	for (uint32_t i = 0; o && i < o->n_replicas; i++)
		if (!o->replicas[i].ready && o->replicas[i].worker->ready)
			return 1;
	return 0;
}

int xy_catalog_busy(const struct xy_catalog *c)
{
	return c->hashing > 0;
}

int xy_catalog_hash_wanted(const struct xy_catalog *c)
{
	return c->to_hash != NULL;
}

void xy_catalog_start_hashing(struct xy_catalog *c)
{
	/* The queue holds a reference on each file, which a hashing job or
	 * a URL fetch takes over. */
	while (c->to_hash) {
		struct xy_file *f = c->to_hash;
		c->to_hash = f->qnext;
		f->in_queue = 0;
		f->qnext = NULL;
		if (f->state != FILE_QUEUED) {
			xy_catalog_file_decref(f);
			continue;
		}
		if (f->temp) {
			/* Nothing to hash: a temp exists only once a
			 * task writes it, and none was submitted. */
			char why[128];
			snprintf(why, sizeof why, "input %s: no task writes it",
				 xy_file_label(f));
			f->state = FILE_MISSING;
			xy_catalog_file_failed(c, f, why);
			xy_catalog_file_decref(f);
			continue;
		}
		if (f->url) {
			xy_urls_start(c->m->urls, f);
			continue;
		}
		if (start_hash(c, f) < 0) {
			f->state = FILE_MISSING;
			xy_catalog_file_failed(c, f, "cannot start hashing");
			xy_catalog_file_decref(f);
		}
	}
}

/* t waits for f, a temp whose last ready copy is gone while another is
 * on its way to a worker (a second replica, or a reader's fetch): that
 * copy is waited for rather than the temp made again at once, which
 * would run its writer for nothing and, once the copy landed, leave it
 * on an object the temp no longer has. xy_catalog_copies_changed ends
 * the wait. */
static int await_copy(struct xy_catalog *c, struct xy_file *f,
		      struct xy_task *t)
{
	if (add_waiter(f, t) < 0)
		return -1;
	if (!f->awaiting) {
		XY_LOGI("manager", "%s: no copy is ready, one may come (on "
			"its way, or on a worker of the manager before): "
			"waiting for it", xy_file_label(f));
		f->awaiting = 1;
		f->anext = c->awaiting;
		c->awaiting = f;
		xy_catalog_file_incref(f); /* the wait's */
	}
	return 0;
}

/* How a temp's wait for a copy ends: 1 the copy landed, -1 none is left
 * on its way, 0 still waiting. A temp made or written again meanwhile
 * (no longer READY) has nothing to wait for: its waiters wait on that. */
static int copy_outcome(struct xy_catalog *c, const struct xy_file *f)
{
	if (f->state != FILE_READY || !f->obj)
		return 2;
	if (xy_catalog_has_source(f->obj))
		return 1;
	return xy_catalog_copy_in_flight(f->obj) ||
		       xy_memo_temp_awaited(c->m->memo, f) ? 0 : -1;
}

void xy_catalog_copies_changed(struct xy_catalog *c)
{
	struct xy_file **pp = &c->awaiting;
	while (*pp) {
		struct xy_file *f = *pp;
		int r = copy_outcome(c, f);
		if (r == 0) {
			pp = &f->anext;
			continue;
		}
		*pp = f->anext;
		f->anext = NULL;
		f->awaiting = 0;
		if (r == 1) {
			xy_catalog_file_ready(c, f, f->obj);
		} else if (r == -1) {
			char *why = NULL;
			if (xy_lineage_remake(c->m->lineage, f, &why) < 0)
				xy_catalog_file_failed(c, f, why ? why
								 : "lost");
			free(why);
		}
		xy_catalog_file_decref(f);
	}
}

/* An expansion is available when its archive is. */
static int need_unpacked(struct xy_catalog *c, struct xy_file *f,
			 struct xy_task *t)
{
	int r = xy_catalog_need(c, f->archive, t);
	if (r == 1) {
		f->obj = f->archive->obj;
		f->state = FILE_READY;
	}
	return r;
}

/* f is to be hashed: QUEUED, and on the queue once (a file queued, then
 * named as an output, then found done by the journal is queued again
 * while it is still there). The queue holds a reference. */
static void queue_hash(struct xy_catalog *c, struct xy_file *f)
{
	f->state = FILE_QUEUED;
	if (f->in_queue)
		return;
	f->in_queue = 1;
	f->qnext = c->to_hash;
	c->to_hash = f;
	xy_catalog_file_incref(f);
}

int xy_catalog_need(struct xy_catalog *c, struct xy_file *f,
		    struct xy_task *t)
{
	if (f->archive)
		return need_unpacked(c, f, t);
	/* A URL whose copies are all gone is fetched from its origin
	 * again. */
	if (f->url && f->state == FILE_READY && f->obj &&
	    !xy_catalog_has_source(f->obj))
		f->state = FILE_NEW;
	switch (f->state) {
	case FILE_NEW:
		queue_hash(c, f);
		return add_waiter(f, t) < 0 ? -1 : 0;
	case FILE_QUEUED:
	case FILE_HASHING:
	case FILE_PRODUCED:
		return add_waiter(f, t) < 0 ? -1 : 0;
	case FILE_READY:
		if (f->obj && xy_catalog_has_source(f->obj))
			return 1;
		/* Given by the journal, with no copy (yet): a reader not
		 * yet looked up in the journal may have finished before,
		 * and then needs no copy (memo.c finds it when it is ready;
		 * one that must run comes back here, its key set, from the
		 * scheduler, which finds no source). */
		if (f->temp && !t->key && !t->internal &&
		    xy_memo_temp_restored(c->m->memo, f))
			return 1;
		/* A copy on its way, or a worker of the manager before
		 * that may bring one back (memo.c): waited for. */
		if (f->temp && (xy_catalog_copy_in_flight(f->obj) ||
				xy_memo_temp_awaited(c->m->memo, f)))
			return await_copy(c, f, t);
		if (f->temp) {
			/* Its last copy is gone: made again by its
			 * producer, if that can be. */
			char *why = NULL;
			if (xy_lineage_remake(c->m->lineage, f, &why) == 0)
				return add_waiter(f, t) < 0 ? -1 : 0;
			free(t->error);
			t->error = why;
			return -1;
		}
		if (f->producer && f->producer->state == XY_TASK_RUNNING) {
			f->state = FILE_PRODUCED;
			return add_waiter(f, t) < 0 ? -1 : 0;
		}
		break;
	case FILE_MISSING:
		break;
	}
	free(t->error);
	if (f->error)
		t->error = strdup(f->error);
	else if (asprintf(&t->error, "input %s: no copy is left",
			  xy_file_label(f)) < 0)
		t->error = NULL;
	return -1;
}

/* Detaches f's waiters, so that what is done to each of them (which may
 * touch f) does not disturb the walk. The caller frees the array. */
static struct xy_task **take_waiters(struct xy_file *f, uint32_t *n)
{
	struct xy_task **w = f->waiters;
	*n = f->n_waiters;
	f->waiters = NULL;
	f->n_waiters = f->cap_waiters = 0;
	return w;
}

void xy_catalog_file_ready(struct xy_catalog *c, struct xy_file *f,
			   struct xy_object *o)
{
	xy_catalog_file_set_object(c, f, o);
	f->state = FILE_READY;
	free(f->error);
	f->error = NULL;
	if (f->unpacked)
		f->unpacked->state = FILE_READY;
	uint32_t n;
	struct xy_task **w = take_waiters(f, &n);
	for (uint32_t i = 0; i < n; i++) {
		w[i]->pending--;
		if (w[i]->pending == 0 && w[i]->state == XY_TASK_WAITING)
			xy_manager_task_ready(c->m, w[i]);
	}
	free(w);
}

/* Fails the waiters of every file in the failing list. A waiter's
 * failure fails its outputs (manager.c), which join the list here rather
 * than fail their own waiters from inside this call. */
static void fail_waiters(struct xy_catalog *c)
{
	struct xy_file *f;
	c->failing_now = 1;
	while ((f = c->failing)) {
		c->failing = f->fail_next;
		if (!c->failing)
			c->failing_tail = NULL;
		f->fail_next = NULL;
		f->fail_queued = 0;
		uint32_t n;
		struct xy_task **w = take_waiters(f, &n);
		for (uint32_t i = 0; i < n; i++) {
			w[i]->pending--;
			xy_manager_task_fail(c->m, w[i],
					     XY_RESULT_INPUT_MISSING, f->error);
		}
		free(w);
	}
	c->failing_now = 0;
}

void xy_catalog_file_failed(struct xy_catalog *c, struct xy_file *f,
			    const char *reason)
{
	char *e = strdup(reason);
	free(f->error);
	f->error = e;
	if (!f->fail_queued) {
		f->fail_queued = 1;
		if (c->failing_tail)
			c->failing_tail->fail_next = f;
		else
			c->failing = f;
		c->failing_tail = f;
	}
	if (!c->failing_now)
		fail_waiters(c);
}

void xy_catalog_file_reset(struct xy_catalog *c, struct xy_file *f)
{
	f->state = FILE_PRODUCED;
	xy_catalog_file_set_object(c, f, NULL);
	if (f->unpacked)
		f->unpacked->state = FILE_NEW;
}

void xy_catalog_file_rehash(struct xy_catalog *c, struct xy_file *f)
{
	xy_catalog_file_set_object(c, f, NULL);
	queue_hash(c, f);
	if (f->unpacked)
		f->unpacked->state = FILE_NEW;
}

struct replica *xy_catalog_replica_find(struct xy_object *o, struct xy_worker *w)
{
	for (uint32_t i = 0; i < o->n_replicas; i++)
		if (o->replicas[i].worker == w)
			return &o->replicas[i];
	return NULL;
}

int xy_catalog_replica_add(struct xy_object *o, struct xy_worker *w,
			   int ready)
{
	struct replica *r = xy_catalog_replica_find(o, w);
	if (r) {
		r->ready |= ready;
		return 0;
	}
	if (o->n_replicas == o->cap_replicas) {
		uint32_t cap = o->cap_replicas ? 2 * o->cap_replicas : 2;
		struct replica *nr = xy__realloc(w->manager, o->replicas,
						 cap * sizeof *nr);
		if (!nr)
			return -1;
		o->replicas = nr;
		o->cap_replicas = cap;
	}
	/* Recorded on both sides or on neither: a replica that w does not
	 * list would outlive w (xy_wtable_remove forgets only those). */
	if (xy_wtable_note_object(w, o) < 0)
		return -1;
	o->replicas[o->n_replicas].worker = w;
	o->replicas[o->n_replicas].ready = ready;
	o->n_replicas++;
	return 0;
}

void xy_catalog_replica_forget(struct xy_object *o, struct xy_worker *w)
{
	for (uint32_t i = 0; i < o->n_replicas; i++) {
		if (o->replicas[i].worker == w) {
			o->replicas[i] = o->replicas[--o->n_replicas];
			/* An idle object with no copy left goes. */
			if (!o->files && w->manager)
				xy_catalog_consider(w->manager->catalog, o);
			return;
		}
	}
}

void xy_catalog_replica_drop(struct xy_object *o, struct xy_worker *w)
{
	xy_catalog_replica_forget(o, w);
	for (uint32_t i = 0; i < w->n_held; i++) {
		if (w->held[i] == o) {
			w->held[i] = w->held[--w->n_held];
			return;
		}
	}
}

/* ---------------------------------------------------- when a file goes */

void xy_catalog_consider(struct xy_catalog *c, struct xy_object *o)
{
	if (!c || o->checking)
		return;
	o->checking = 1;
	o->cnext = c->check;
	c->check = o;
}

static void object_unlink_file(struct xy_object *o, struct xy_file *f)
{
	if (f->oprev)
		f->oprev->onext = f->onext;
	else if (o->files == f)
		o->files = f->onext;
	else
		return; /* not on its list */
	if (f->onext)
		f->onext->oprev = f->oprev;
	f->oprev = f->onext = NULL;
}

static void idle_remove(struct xy_catalog *c, struct xy_object *o)
{
	if (!o->idle)
		return;
	if (o->iprev)
		o->iprev->inext = o->inext;
	else
		c->idle_head = o->inext;
	if (o->inext)
		o->inext->iprev = o->iprev;
	else
		c->idle_tail = o->iprev;
	o->iprev = o->inext = NULL;
	o->idle = 0;
	c->n_idle--;
}

void xy_catalog_file_set_object(struct xy_catalog *c, struct xy_file *f,
				struct xy_object *o)
{
	struct xy_object *old = f->obj;
	if (f->unpacked)
		f->unpacked->obj = o;
	if (old == o)
		return;
	f->obj = o;
	if (old) {
		object_unlink_file(old, f);
		serve_elsewhere(c, old, f);
		if (!old->files)
			xy_catalog_consider(c, old);
	}
	if (!o)
		return;
	f->oprev = NULL;
	f->onext = o->files;
	if (o->files)
		o->files->oprev = f;
	o->files = f;
	if (f->level > o->level)
		o->level = (uint8_t)f->level;
	idle_remove(c, o);
}

/* Puts f on the dead list: the phase frees it unless it is declared or
 * used again meanwhile. */
static void bury(struct xy_file *f)
{
	struct xy_catalog *c = f->catalog;
	if (!c || f->dead)
		return;
	f->dead = 1;
	f->dnext = c->dead;
	c->dead = f;
}

void xy_catalog_file_incref(struct xy_file *f)
{
	f->refs++;
}

void xy_catalog_file_decref(struct xy_file *f)
{
	if (f->refs > 0 && --f->refs == 0 && f->handles == 0)
		bury(f);
}

int xy_file_release(struct xy_file *f)
{
	if (!f || f->handles == 0) {
		/* Released more often than declared: the caller's slip,
		 * which must not cost a reference someone else holds. */
		XY_LOGW("manager", "%s released more often than declared",
			f ? xy_file_label(f) : "(null file)");
		errno = EINVAL;
		return -1;
	}
	if (--f->handles == 0 && f->refs == 0)
		bury(f);
	return 0;
}

/* Takes f out of the catalogue and frees it; what it held goes with it:
 * its archive's reference, its recipe (a temp), its object's file. */
static void file_free(struct xy_catalog *c, struct xy_file *f)
{
	if (f->path || f->url) {
		xy_htab_remove(&c->files, f, file_hash(f));
	} else {
		if (f->uprev)
			f->uprev->unext = f->unext;
		else
			c->unnamed = f->unext;
		if (f->unext)
			f->unext->uprev = f->uprev;
	}
	if (f->archive) {
		f->archive->unpacked = NULL;
		xy_catalog_file_decref(f->archive);
		f->obj = NULL; /* its archive's, mirrored */
	}
	if (f->temp && c->m)
		xy_lineage_forget(c->m->lineage, f);
	xy_catalog_file_set_object(c, f, NULL);
	c->n_files--;
	file_memory_free(f);
}

/* Tells each worker that holds o below XY_CACHE_WORKER to delete its
 * copy, and forgets every copy: o is about to be freed. A copy at level
 * worker or forever stays in its worker's cache, as its level promised;
 * a later FETCH of it there is answered at once. */
static void drop_copies(struct xy_catalog *c, struct xy_object *o)
{
	while (o->n_replicas) {
		struct xy_worker *w = o->replicas[o->n_replicas - 1].worker;
		if (o->level < XY_CACHE_WORKER && c->m && w->conn) {
			union xy_msg msg;
			memcpy(msg.unlink.id, o->id, XY_ID_LEN);
			xy_manager_send(c->m, w, XY_MSG_UNLINK, &msg);
		}
		xy_catalog_replica_drop(o, w);
	}
}

static void object_free(struct xy_catalog *c, struct xy_object *o)
{
	idle_remove(c, o);
	if (o->on_manager || o->staged)
		unserve(c, o);
	xy_htab_remove(&c->objects, o, id_hash(o->id));
	object_memory_free(o);
}

/* o was considered: kept if a file has it, a fetch or a retrieval holds
 * it; else no longer served, and freed, or idle while workers hold
 * copies. */
static void settle(struct xy_catalog *c, struct xy_object *o)
{
	if (o->files || o->pins || o->fetching)
		return;
	if (o->on_manager || o->staged)
		unserve(c, o);
	if (!o->n_replicas) {
		object_free(c, o);
		return;
	}
	if (o->idle)
		return;
	o->idle = 1;
	o->inext = NULL;
	o->iprev = c->idle_tail;
	if (c->idle_tail)
		c->idle_tail->inext = o;
	else
		c->idle_head = o;
	c->idle_tail = o;
	c->n_idle++;
}

void xy_catalog_phase(struct xy_catalog *c)
{
	struct xy_file *f;
	struct xy_object *o;
	/* A file freed may give back others (an archive, a recipe's
	 * inputs): they join the list and go in this same loop. */
	while ((f = c->dead)) {
		c->dead = f->dnext;
		f->dnext = NULL;
		f->dead = 0;
		if (!f->handles && !f->refs)
			file_free(c, f);
	}
	while ((o = c->check)) {
		c->check = o->cnext;
		o->cnext = NULL;
		o->checking = 0;
		settle(c, o);
	}
	while (c->n_idle > XY_IDLE_OBJECTS) {
		o = c->idle_head;
		o->checking = 1; /* dropping its copies considers it */
		drop_copies(c, o);
		object_free(c, o);
	}
}

void xy_catalog_counts(const struct xy_catalog *c, int64_t *files,
		       int64_t *objects)
{
	*files = c->n_files;
	*objects = (int64_t)c->objects.count;
}

const char *xy_catalog_object_name(const struct xy_object *obj)
{
	for (const struct xy_file *f = obj ? obj->files : NULL; f;
	     f = f->onext) {
		if (f->path)
			return f->path;
		if (f->url)
			return f->url;
		if (f->label)
			return f->label;
	}
	return NULL;
}

/* ------------------------------------ the public API's files (xylem.h) */

struct xy_file *xy_manager_declare_file(struct xy_manager *m,
					const char *path,
					xy_cache_level level, char *err,
					size_t errlen)
{
	if (!path || !*path) {
		xy_fail(err, errlen, EINVAL, "a file needs a path");
		return NULL;
	}
	if (xy_catalog_check_level(level, err, errlen) < 0)
		return NULL;
	struct xy_file *f = xy_catalog_file(m->catalog, path, level);
	if (!f)
		xy_fail(err, errlen, ENOMEM, "out of memory");
	return f;
}

struct xy_file *xy_manager_declare_buffer(struct xy_manager *m,
					  const void *data, size_t len,
					  xy_cache_level level, char *err,
					  size_t errlen)
{
	if (!data && len) {
		xy_fail(err, errlen, EINVAL, "a buffer of %zu bytes needs "
			"data", len);
		return NULL;
	}
	if (xy_catalog_check_level(level, err, errlen) < 0)
		return NULL;
	return xy_catalog_buffer(m->catalog, data, len, level, err, errlen);
}

const char *xy_file_path(const struct xy_file *f)
{
	return f->path;
}
