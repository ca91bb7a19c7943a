/*
 * xplan.c: the transfer planner, a sub-context of the manager. It decides
 * where each worker fetches a missing input from (the manager's transfer
 * server or a worker that holds the object), keeps the number of fetches
 * in flight under a limit per destination and per source, and brings task
 * outputs back to the manager's paths on libuv's thread pool, never on the
 * loop.
 *
 * Pipelined broadcast (docs/dataplane.md): an object with a chunk list
 * that several workers fetch at once goes down a chain. A new fetch
 * starts from an idle complete copy if there is one; else it joins the
 * chain at its tail, reading from the last receiver while that one still
 * receives, with the receivers before it and the manager as fallbacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"
#include "log.h"
#include "util.h"

#define TOKEN_TTL_US (3600ull * 1000000ull)
#define MANAGER_NAME "manager" /* the receiver name in retrieval tokens */

/* A FETCH in flight: dest is getting obj from src (NULL: the manager),
 * then from the other sources in alt (alt_mgr: the manager last). */
struct fetch {
	struct xy_object *obj;
	struct xy_worker *dest;
	struct xy_worker *src;
	int src_gone; /* src went away; nothing to count against */
	struct xy_worker *alt[XY_MAX_SOURCES];
	int n_alt, alt_mgr;
	struct fetch *pred, *succ; /* neighbours in a chain */
	double started;
	struct fetch *next;
};

struct retrieve_job {
	uv_work_t req;
	struct xy_xplan *x;
	struct xy_task *t; /* NULL: done(arg, ...) is told instead */
	void (*done)(void *arg, int ok, const char *why);
	void *arg;
	struct xy_object *obj;
	char *host;
	int port;
	char *path;
	char *worker;
	uint8_t token[XY_TOKEN_LEN];
	uint64_t bytes;
	double started;
	int status;
	int local; /* the failure was the manager's own (mkdir, rename) */
	char err[512];
};

struct xy_xplan {
	struct xy_manager *m;
	char *secret;
	size_t secret_len;
	struct fetch *fetches;
	int serving; /* fetches reading from the manager's transfer server */
	int64_t active;
	int64_t bytes_received;
	int retrievals; /* jobs on the thread pool */
	uint64_t last_expiry; /* tokens get distinct expiries */
};

/* A token for name to get id; expiries are distinct, so that a server
 * can count the uses of each token. */
static void make_token(struct xy_xplan *x, const uint8_t id[XY_ID_LEN],
		       const char *name, uint8_t out[XY_TOKEN_LEN])
{
	uint64_t e = (uint64_t)(xy_now() * 1e6) + TOKEN_TTL_US;
	if (e <= x->last_expiry)
		e = x->last_expiry + 1;
	x->last_expiry = e;
	xy_token_make(x->secret, x->secret_len, id, e, name, out);
}

struct xy_xplan *xy_xplan_create(struct xy_manager *m, const char *secret,
				 size_t secret_len)
{
	struct xy_xplan *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->m = m;
	x->secret = malloc(secret_len);
	if (!x->secret) {
		free(x);
		return NULL;
	}
	memcpy(x->secret, secret, secret_len);
	x->secret_len = secret_len;
	return x;
}

void xy_xplan_destroy(struct xy_xplan *x)
{
	if (!x)
		return;
	for (struct fetch *f = x->fetches, *n; f; f = n) {
		n = f->next;
		free(f);
	}
	free(x->secret);
	free(x);
}

int64_t xy_xplan_active(const struct xy_xplan *x)
{
	return x->active + x->retrievals;
}

int64_t xy_xplan_bytes_received(const struct xy_xplan *x)
{
	return x->bytes_received;
}

/* The least busy source of o other than dest under its limit; *none is
 * set if o has no source at all. NULL with *none == 0 means "not now".
 * *manager is set when the manager is the source. */
static struct xy_worker *pick_source(struct xy_xplan *x, struct xy_object *o,
				     struct xy_worker *dest, int *manager,
				     int *none)
{
	struct xy_worker *best = NULL;
	int have = o->on_manager;
	*manager = 0;
	for (uint32_t i = 0; i < o->n_replicas; i++) {
		struct replica *r = &o->replicas[i];
		if (!r->ready || r->worker == dest || !r->worker->ready)
			continue;
		have = 1;
		if (r->worker->serving >= XY_SERVE_PER_SOURCE)
			continue;
		if (!best || r->worker->serving < best->serving)
			best = r->worker;
	}
	*none = !have;
	if (o->on_manager && x->serving < XY_SERVE_PER_SOURCE &&
	    (!best || x->serving <= best->serving)) {
		*manager = 1;
		return NULL;
	}
	return best;
}

static struct fetch *chain_tail(struct xy_xplan *x, struct xy_object *o,
				struct xy_worker *dest);

int xy_xplan_can_stage(struct xy_xplan *x, struct xy_task *t,
		       struct xy_worker *w)
{
	int needed = 0;
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_object *o = t->inputs[i].file->obj;
		if (!o)
			return -1;
		if (xy_catalog_replica_find(o, w))
			continue;
		int manager, none;
		struct xy_worker *src = pick_source(x, o, w, &manager, &none);
		if (none && !chain_tail(x, o, w))
			return -1;
		if (!src && !manager && !chain_tail(x, o, w))
			return 0;
		needed++;
	}
	if (needed && w->fetches > 0 &&
	    w->fetches + needed > XY_FETCH_PER_WORKER)
		return 0;
	return 1;
}

/* The last receiver of o in a chain, which may take a successor. */
static struct fetch *chain_tail(struct xy_xplan *x, struct xy_object *o,
				struct xy_worker *dest)
{
	if (o->chunks.n < 2)
		return NULL;
	for (struct fetch *f = x->fetches; f; f = f->next)
		if (f->obj == o && !f->succ && f->dest != dest &&
		    f->dest->ready)
			return f;
	return NULL;
}

/* An idle complete source of o, for the head of a new chain. */
static int idle_source(struct xy_xplan *x, struct xy_object *o,
		       struct xy_worker *dest, struct xy_worker **src)
{
	for (uint32_t i = 0; i < o->n_replicas; i++) {
		struct replica *r = &o->replicas[i];
		if (r->ready && r->worker != dest && r->worker->ready &&
		    r->worker->serving == 0) {
			*src = r->worker;
			return 1;
		}
	}
	*src = NULL;
	return o->on_manager && x->serving == 0;
}

/* Fills f's source list: after pred's receiver, pred's own sources. */
static void plan_sources(struct xy_xplan *x, struct fetch *f,
			 struct fetch *pred, int manager)
{
	struct xy_object *o = f->obj;
	if (pred) {
		f->alt[f->n_alt++] = pred->dest;
		for (int i = 0; i < pred->n_alt &&
				f->n_alt < XY_MAX_SOURCES - o->on_manager;
		     i++)
			if (pred->alt[i] != f->dest)
				f->alt[f->n_alt++] = pred->alt[i];
	} else if (!manager && f->src) {
		f->alt[f->n_alt++] = f->src;
	}
	f->alt_mgr = o->on_manager != 0;
	(void)x;
}

static void encode_source(struct xy_xplan *x, struct xy_object *o,
			  struct xy_worker *w, struct xy_source *s)
{
	if (!w) {
		s->host = ""; /* the worker uses the manager's address */
		s->port = (uint16_t)xy_xfer_server_port(x->m->xfer);
		s->partial = 0;
		return;
	}
	struct replica *r = xy_catalog_replica_find(o, w);
	s->host = w->xfer_host && *w->xfer_host ? w->xfer_host : w->addr;
	s->port = (uint16_t)w->xfer_port;
	s->partial = !r || !r->ready;
}

/* Chooses where dest gets o from: a new fetch record, linked in. */
static struct fetch *plan_fetch(struct xy_xplan *x, struct xy_object *o,
				struct xy_worker *w)
{
	struct fetch *f = calloc(1, sizeof *f), *pred = NULL;
	struct xy_worker *src;
	int manager = 0, none;
	if (!f)
		abort();
	f->obj = o;
	f->dest = w;
	if (o->chunks.n >= 2 && idle_source(x, o, w, &src))
		manager = !src;
	else if (!(pred = chain_tail(x, o, w)))
		src = pick_source(x, o, w, &manager, &none);
	else
		src = pred->dest;
	f->src = src;
	f->pred = pred;
	if (pred)
		pred->succ = f;
	plan_sources(x, f, pred, manager);
	if (src)
		src->serving++;
	else
		x->serving++;
	f->started = xy_now();
	f->next = x->fetches;
	x->fetches = f;
	return f;
}

static void send_fetch(struct xy_xplan *x, struct xy_object *o,
		       xy_cache_level level, struct xy_worker *w)
{
	struct fetch *f = plan_fetch(x, o, w);
	union xy_msg msg = {0};
	struct xy_msg_fetch *m = &msg.fetch;
	memcpy(m->id, o->id, XY_ID_LEN);
	m->kind = o->kind;
	m->level = (uint8_t)level;
	m->size = o->size;
	m->chunks = o->chunks;
	for (int i = 0; i < f->n_alt; i++)
		encode_source(x, o, f->alt[i], &m->sources[m->n_sources++]);
	if (f->alt_mgr || !m->n_sources)
		encode_source(x, o, NULL, &m->sources[m->n_sources++]);
	make_token(x, o->id, w->name, m->token);
	w->fetches++;
	x->active++;
	xy_catalog_replica_add(o, w, 0);
	xy_manager_send(x->m, w, XY_MSG_FETCH, &msg);
}

void xy_xplan_stage(struct xy_xplan *x, struct xy_task *t,
		    struct xy_worker *w)
{
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_object *o = t->inputs[i].file->obj;
		if (!xy_catalog_replica_find(o, w))
			send_fetch(x, o, t->inputs[i].file->level, w);
	}
}

static void fetch_end(struct xy_xplan *x, struct fetch *f)
{
	if (f->pred)
		f->pred->succ = NULL;
	if (f->succ)
		f->succ->pred = NULL;
	if (f->src)
		f->src->serving--;
	else if (!f->src_gone)
		x->serving--;
	f->dest->fetches--;
	x->active--;
	xy_manager_wake(x->m);
}

void xy_xplan_update(struct xy_xplan *x, struct xy_worker *w,
		     struct xy_msg_cache_update *u)
{
	struct fetch **pp = &x->fetches, *f = NULL;
	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->dest == w && !memcmp((*pp)->obj->id, u->id,
						XY_ID_LEN)) {
			f = *pp;
			*pp = f->next;
			break;
		}
	}
	if (!f) {
		/* An object the worker made or found on its own. */
		struct xy_object *o = xy_catalog_object(x->m->catalog, u->id,
							u->kind, u->size);
		if (u->status == XY_OBJ_OK) {
			xy_catalog_replica_add(o, w, 1);
		} else if (xy_catalog_replica_find(o, w)) {
			/* It left the worker's cache (evicted): the
			 * reconciliation of the manager's view. */
			XY_LOGI("manager", "%s no longer has %.12s: %s",
				w->name, o->hex, u->text ? u->text : "");
			xy_catalog_replica_drop(o, w);
		}
		return;
	}
	const char *src = f->src ? f->src->name : "manager";
	if (u->status == XY_OBJ_OK) {
		struct replica *r = xy_catalog_replica_find(f->obj, w);
		if (r)
			r->ready = 1;
	} else {
		XY_LOGW("manager", "fetch of %.12s from %s to %s failed: %s",
			f->obj->hex, src, w->name, u->text ? u->text : "");
		xy_catalog_replica_drop(f->obj, w);
		/* A worker that no longer has it is no source for it. */
		struct replica *r = f->src ? xy_catalog_replica_find(f->obj,
								     f->src)
					   : NULL;
		if (u->status == XY_OBJ_NOT_FOUND && r && r->ready &&
		    f->n_alt + f->alt_mgr == 1)
			xy_catalog_replica_drop(f->obj, f->src);
	}
	xy_history_transfer(x->m->history, xy_now(), f->obj->hex, src,
			    w->name, u->size, u->elapsed_us / 1e6,
			    u->status == XY_OBJ_OK ? "ok" : u->text);
	fetch_end(x, f);
	free(f);
}

void xy_xplan_worker_gone(struct xy_xplan *x, struct xy_worker *w)
{
	for (struct fetch **pp = &x->fetches; *pp;) {
		struct fetch *f = *pp;
		if (f->dest == w) {
			*pp = f->next;
			fetch_end(x, f);
			free(f);
			continue;
		}
		if (f->src == w) {
			f->src = NULL;
			f->src_gone = 1;
		}
		for (int i = 0; i < f->n_alt; i++) {
			if (f->alt[i] != w)
				continue;
			memmove(&f->alt[i], &f->alt[i + 1],
				(size_t)(f->n_alt - i - 1) * sizeof f->alt[0]);
			f->n_alt--;
			i--;
		}
		pp = &f->next;
	}
}

/* Creates the directory that will hold path, if missing. */
static int make_parent(const char *path)
{
	char dir[4200];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	return xy_mkdir_p(dir);
}

static void retrieve_work(uv_work_t *req)
{
	struct retrieve_job *j = req->data;
	struct xy_xplan *x = j->x;
	char tmp[4200];
	if (make_parent(j->path) < 0) {
		snprintf(j->err, sizeof j->err, "cannot make the directory "
			 "of %s: %s", j->path, strerror(errno));
		j->status = XY_OBJ_FAILED;
		j->local = 1;
		return;
	}
	snprintf(tmp, sizeof tmp, "%s.xylem-%d-%p", j->path, (int)getpid(),
		 (void *)j);
	j->status = xy_xfer_fetch(j->host, j->port, x->secret, x->secret_len,
				  j->obj->id, j->token, MANAGER_NAME, tmp, 0,
				  &j->bytes, j->err, sizeof j->err);
	if (j->status != XY_OBJ_OK)
		return;
	struct stat st;
	if (j->obj->kind == XY_KIND_DIR && lstat(j->path, &st) == 0)
		xy_rm_rf(j->path);
	if (rename(tmp, j->path) < 0) {
		snprintf(j->err, sizeof j->err, "cannot rename to %s: %s",
			 j->path, strerror(errno));
		xy_rm_rf(tmp);
		j->status = XY_OBJ_FAILED;
		j->local = 1;
	}
}

static void retrieve_done(uv_work_t *req, int status)
{
	struct retrieve_job *j = req->data;
	struct xy_xplan *x = j->x;
	int ok = status == 0 && j->status == XY_OBJ_OK;
	x->retrievals--;
	if (ok) {
		x->bytes_received += (int64_t)j->bytes;
		/* A temp fetched back is the caller's copy, not a source;
		 * a client's output is served once it is in the store
		 * (client.c), never from its job's directory. */
		if (j->t && !j->t->job)
			xy_catalog_serve(x->m->catalog, j->obj, j->path);
	} else {
		XY_LOGW("manager", "cannot bring %s back from %s: %s", j->path,
			j->worker, status ? "cancelled" : j->err);
	}
	xy_history_transfer(x->m->history, xy_now(), j->obj->hex, j->worker,
			    "manager", j->bytes, xy_now() - j->started,
			    ok ? "ok" : j->err);
	char why[700];
	snprintf(why, sizeof why, "output %s could not be brought back: %s",
		 j->path, j->err);
	if (j->t)
		xy_manager_retrieved(x->m, j->t, ok, j->local,
				     ok ? NULL : why);
	else
		j->done(j->arg, ok, ok ? NULL : why);
	free(j->host);
	free(j->path);
	free(j->worker);
	free(j);
}

static void retrieve_start(struct xy_xplan *x, struct retrieve_job *j,
			   struct xy_worker *w, struct xy_object *obj,
			   const char *path)
{
	j->req.data = j;
	j->x = x;
	j->obj = obj;
	j->host = strdup(w->xfer_host && *w->xfer_host ? w->xfer_host
						       : w->addr);
	j->port = w->xfer_port;
	j->path = strdup(path);
	j->worker = strdup(w->name);
	j->started = xy_now();
	make_token(x, obj->id, MANAGER_NAME, j->token);
	if (!j->host || !j->path || !j->worker)
		abort();
	x->retrievals++;
	/* uv_queue_work fails only on bad arguments. */
	if (uv_queue_work(&x->m->loop, &j->req, retrieve_work,
			  retrieve_done) < 0)
		abort();
}

void xy_xplan_retrieve(struct xy_xplan *x, struct xy_task *t,
		       struct xy_worker *w, struct xy_object *obj,
		       const char *path)
{
	struct retrieve_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->t = t;
	t->retrievals++;
	retrieve_start(x, j, w, obj, path);
}

void xy_xplan_retrieve_cb(struct xy_xplan *x, struct xy_worker *w,
			  struct xy_object *obj, const char *path,
			  void (*done)(void *arg, int ok, const char *why),
			  void *arg)
{
	struct retrieve_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->done = done;
	j->arg = arg;
	retrieve_start(x, j, w, obj, path);
}

void xy_xplan_copy(struct xy_xplan *x, struct xy_object *obj,
		   xy_cache_level level, struct xy_worker *w)
{
	send_fetch(x, obj, level, w);
}

int xy_xplan_busy(const struct xy_xplan *x)
{
	return x->retrievals > 0;
}
