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
 *
 * Source cooldown: a worker that a receiver blames in CACHE_UPDATE (it
 * could not be reached, or its copy was missing, refused or corrupt, or
 * its stream broke) rests as a source for a while: for that object; or,
 * its host unreachable, for that receiver, and for everyone once a
 * second receiver cannot reach it either; the planner uses other sources
 * meanwhile, and a resting one only when no other copy exists. A
 * receiver that fails on its own side blames no source; if its disk was
 * full (NO_ROOM), objects as large go elsewhere for a while (wtable.c,
 * xy_wtable_mark_no_room).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"
#include "release.h"
#include "outsync.h"
#include "memo.h"
#include "mtls.h"
#include "log.h"
#include "util.h"

#define MANAGER_NAME "manager" /* the receiver name in retrieval tokens */
#define COOL_BASE_S 30.0 /* a blamed source's first rest */
#define COOL_CAP_S 300.0 /* the longest, after failures in a row */

/* A FETCH in flight: dest is getting obj from src (NULL: the manager),
 * then from the other sources in alt (alt_mgr: the manager last). */
struct fetch {
	struct xy_object *obj;
	struct xy_worker *dest;
	struct xy_worker *src;
	int src_gone; /* src went away; nothing to count against */
	struct xy_worker *alt[XY_MAX_SOURCES];
	int n_alt, alt_mgr;
	/* The sources in the FETCH's order, to read the blame in its
	 * CACHE_UPDATE by index: the manager at mgr_at (-1: not listed),
	 * NULL elsewhere for a worker gone since. */
	struct xy_worker *sent[XY_MAX_SOURCES];
	int n_sent, mgr_at;
	struct fetch *pred, *succ; /* neighbours in a chain */
	double started;
	struct fetch *prev, *next;   /* every fetch (x->fetches) */
	struct fetch *oprev, *onext; /* the object's (obj->fetching) */
};

/* A rest from serving: w is not asked for the object with this id, or
 * (PAIR) by this receiver for anything, or (ALL) for anything by anyone,
 * until `until`. span doubles when a source fails again soon after its
 * rest ended, up to the cap, and falls back to the base after a quiet
 * while. Kept on the worker (w->cooling) until it serves again or goes.
 * By id and by name, not by pointer: an object may be freed and made
 * again, and a receiver may leave and come back, while the rest lasts. */
enum rest_scope { REST_OBJECT, REST_PAIR, REST_ALL };

struct cooldown {
	enum rest_scope scope;
	uint8_t id[XY_ID_LEN];  /* REST_OBJECT */
	double until, span;
	struct cooldown *next;
	char receiver[];        /* REST_PAIR: its host (host_of); "" else */
};

/* Where w runs, as a receiver's rest names it: the address its
 * connection comes from (workers on one host share their path to a
 * source; a host name can be shared by hosts, as in network namespaces),
 * else its name. */
static const char *host_of(const struct xy_worker *w)
{
	return w->addr && *w->addr ? w->addr : w->name;
}

/* Does c keep its worker from serving o to dest (NULL: anyone)? */
static int covers(const struct cooldown *c, const struct xy_object *o,
		  const struct xy_worker *dest)
{
	switch (c->scope) {
	case REST_OBJECT:
		return o && !memcmp(c->id, o->id, XY_ID_LEN);
	case REST_PAIR:
		return dest && !strcmp(c->receiver, host_of(dest));
	default:
		return 1;
	}
}

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
	struct xy_worker *w; /* to release the output on; NULL once gone */
	struct retrieve_job *rprev, *rnext; /* x->retrieving */
	uint8_t token[XY_TOKEN_LEN];
	uint64_t bytes;
	double started;
	int status;
	int local; /* the failure was the manager's own (mkdir, writing,
		    * rename) */
	int sync;  /* --journal-sync: synced before and after its rename */
	char err[512];
};

struct xy_xplan {
	struct xy_manager *m;
	char *secret;
	size_t secret_len;
	struct fetch *fetches;
	int serving; /* fetches reading from the manager's transfer server */
	struct retrieve_job *retrieving; /* on the thread pool */
	int64_t active;
	int64_t bytes_received;
	int retrievals; /* jobs on the thread pool */
	uint64_t last_expiry; /* tokens get distinct expiries */
	double cool_base, cool_cap; /* seconds */
};

/* A token for name to get id (auth.h, xy_token_issue). */
static void make_token(struct xy_xplan *x, const uint8_t id[XY_ID_LEN],
		       const char *name, uint8_t out[XY_TOKEN_LEN])
{
	xy_token_issue(x->secret, x->secret_len, &x->last_expiry, id, name,
		       out);
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
	x->cool_base = COOL_BASE_S;
	x->cool_cap = COOL_CAP_S;
	return x;
}

void xy_xplan_set_cooldown(struct xy_xplan *x, double base, double cap)
{
	x->cool_base = base;
	x->cool_cap = cap > base ? cap : base;
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

/* ------------------------------------------------------ source cooldown */

/* w's record of that scope (for o, or for dest), or NULL. */
static struct cooldown *cooldown_find(struct xy_worker *w,
				      enum rest_scope scope,
				      const struct xy_object *o,
				      const struct xy_worker *dest)
{
	for (struct cooldown *c = w->cooling; c; c = c->next)
		if (c->scope == scope && (scope == REST_ALL ||
					  covers(c, o, dest)))
			return c;
	return NULL;
}

/* Is w resting as a source of o for dest at time now? */
static int resting(const struct xy_worker *w, const struct xy_object *o,
		   const struct xy_worker *dest, double now)
{
	for (const struct cooldown *c = w->cooling; c; c = c->next)
		if (covers(c, o, dest) && now < c->until)
			return 1;
	return 0;
}

/* Drops w's records that ended over cool_cap ago: they would start
 * again from cool_base anyway, and resting() walks the list. */
static void prune(struct xy_xplan *x, struct xy_worker *w, double now)
{
	for (struct cooldown **pp = &w->cooling; *pp;) {
		struct cooldown *c = *pp;
		if (now - c->until < x->cool_cap) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		free(c);
	}
}

/* The scope of a rest for dest's blame of w: its copy of o (OBJECT); or,
 * its host unreachable, w for dest alone (PAIR), which says as much of
 * dest's side and of the path as of w; or, when another receiver could
 * not reach w either within cool_cap (its PAIR record is still kept),
 * w for everyone (ALL): two ends that fail at one host blame the host.
 * Receivers are told apart by host: workers on one host share a path. */
static enum rest_scope blame_scope(const struct xy_worker *w, uint8_t blame,
				   const struct xy_worker *dest)
{
	if (blame != XY_BLAME_HOST)
		return REST_OBJECT;
	for (const struct cooldown *c = w->cooling; c; c = c->next)
		if (c->scope == REST_PAIR && strcmp(c->receiver, host_of(dest)))
			return REST_ALL;
	return REST_PAIR;
}

static const char *const scope_words[] = {
	[REST_OBJECT] = "for this object",
	[REST_PAIR] = "for the receiver's host: it could not reach this one",
	[REST_ALL] = "for every object: receivers on two hosts could not "
		     "reach it",
};

/* dest blamed w for o: w rests, in the scope blame_scope() says. A
 * failure reported while w already rests came from a fetch planned
 * before its rest began, and does not lengthen it. */
static void cool(struct xy_xplan *x, struct xy_worker *w,
		 struct xy_object *o, uint8_t blame, struct xy_worker *dest)
{
	double now = xy_manager_now(x->m);
	prune(x, w, now);
	enum rest_scope scope = blame_scope(w, blame, dest);
	struct cooldown *c = cooldown_find(w, scope, o, dest);
	if (c && now < c->until)
		return;
	if (!c) {
		size_t name = scope == REST_PAIR ? strlen(host_of(dest)) : 0;
		/* A rest that cannot be recorded is not taken: the source
		 * stays in use, as before it was blamed. */
		if (!(c = xy__calloc(x->m, 1, sizeof *c + name + 1))) {
			XY_LOGW("manager", "source %s does not rest: the "
				"manager is out of memory", w->name);
			return;
		}
		c->scope = scope;
		memcpy(c->id, o->id, XY_ID_LEN);
		memcpy(c->receiver, host_of(dest), name);
		c->next = w->cooling;
		w->cooling = c;
		c->span = x->cool_base;
	} else {
		/* Failed again within cool_cap of its last rest (prune
		 * dropped older records): a longer rest. */
		c->span = 2 * c->span < x->cool_cap ? 2 * c->span : x->cool_cap;
	}
	c->until = now + c->span;
	XY_LOGW("manager", "source %s rests for %.3g s (%s): %s could not "
		"get %.12s from it", w->name, c->span, scope_words[scope],
		dest->name, o->hex);
}

/* w served o to dest to the end: whatever kept it from that is over. */
static void warm(struct xy_worker *w, const struct xy_object *o,
		 const struct xy_worker *dest)
{
	for (struct cooldown **pp = &w->cooling; *pp;) {
		struct cooldown *c = *pp;
		if (!covers(c, o, dest)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		free(c);
	}
}

void xy_xplan_worker_free(struct xy_worker *w)
{
	for (struct cooldown *c = w->cooling, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	w->cooling = NULL;
}

int xy_xplan_resting(const struct xy_worker *w)
{
	double now = xy_manager_now(w->manager);
	int n = 0;
	for (const struct cooldown *c = w->cooling; c; c = c->next)
		n += now < c->until;
	return n;
}

/* ------------------------------------------------------------- planning */

/* The least busy source of o other than dest under its limit; *none is
 * set if o has no source at all. NULL with *none == 0 means "not now".
 * *manager is set when the manager is the source. A resting source is
 * chosen only when no other copy exists: a retry then is better than no
 * way at all, and its fetch may still fall back to the manager. */
static struct xy_worker *pick_source(struct xy_xplan *x, struct xy_object *o,
				     struct xy_worker *dest, int *manager,
				     int *none)
{
	struct xy_worker *best = NULL, *rested = NULL;
	int have = o->on_manager;
	double now = xy_manager_now(x->m);
	*manager = 0;
	for (uint32_t i = 0; i < o->n_replicas; i++) {
		struct replica *r = &o->replicas[i];
		struct xy_worker *s = r->worker;
		if (!r->ready || s == dest || !s->ready)
			continue;
		if (resting(s, o, dest, now)) {
			if (!rested || s->serving < rested->serving)
				rested = s;
			continue;
		}
		have = 1;
		if (s->serving >= XY_SERVE_PER_SOURCE)
			continue;
		if (!best || s->serving < best->serving)
			best = s;
	}
	if (!have && rested) {
		have = 1;
		if (rested->serving < XY_SERVE_PER_SOURCE)
			best = rested;
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
		if (!src && !manager && !chain_tail(x, o, w))
			return none ? -1 : 0;
		needed++;
	}
	if (needed && w->fetches > 0 &&
	    w->fetches + needed > XY_FETCH_PER_WORKER)
		return 0;
	return 1;
}

/* The last receiver of o in a chain, which may take a successor: the
 * newest of o's own fetches with none (a walk over o's fetches only,
 * most often one step). */
static struct fetch *chain_tail(struct xy_xplan *x, struct xy_object *o,
				struct xy_worker *dest)
{
	(void)x;
	if (o->chunks.n < 2)
		return NULL;
	double now = o->fetching ? xy_manager_now(x->m) : 0;
	for (struct fetch *f = o->fetching; f; f = f->onext)
		if (!f->succ && f->dest != dest && f->dest->ready &&
		    !resting(f->dest, o, dest, now))
			return f;
	return NULL;
}

/* An idle complete source of o, for the head of a new chain. */
static int idle_source(struct xy_xplan *x, struct xy_object *o,
		       struct xy_worker *dest, struct xy_worker **src)
{
	double now = xy_manager_now(x->m);
	for (uint32_t i = 0; i < o->n_replicas; i++) {
		struct replica *r = &o->replicas[i];
		if (r->ready && r->worker != dest && r->worker->ready &&
		    r->worker->serving == 0 &&
		    !resting(r->worker, o, dest, now)) {
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
		double now = xy_manager_now(x->m);
		f->alt[f->n_alt++] = pred->dest;
		for (int i = 0; i < pred->n_alt &&
				f->n_alt < XY_MAX_SOURCES - o->on_manager;
		     i++)
			if (pred->alt[i] != f->dest &&
			    !resting(pred->alt[i], o, f->dest, now))
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

static void link_fetch(struct xy_xplan *x, struct fetch *f)
{
	f->prev = NULL;
	f->next = x->fetches;
	if (f->next)
		f->next->prev = f;
	x->fetches = f;
	f->oprev = NULL;
	f->onext = f->obj->fetching;
	if (f->onext)
		f->onext->oprev = f;
	f->obj->fetching = f;
}

static void unlink_fetch(struct xy_xplan *x, struct fetch *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		x->fetches = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (f->oprev)
		f->oprev->onext = f->onext;
	else
		f->obj->fetching = f->onext;
	if (f->onext)
		f->onext->oprev = f->oprev;
	/* Its last fetch held an object that no file may have now. */
	if (!f->obj->fetching && !f->obj->files)
		xy_catalog_consider(x->m->catalog, f->obj);
}

/* Chooses where dest gets o from (from, if given), in f (zeroed), and
 * links f in. */
static void plan_fetch(struct xy_xplan *x, struct fetch *f,
		       struct xy_object *o, struct xy_worker *w,
		       struct xy_worker *from)
{
	struct fetch *pred = NULL;
	struct xy_worker *src;
	int manager = 0, none;
	f->obj = o;
	f->dest = w;
	if (from)
		src = from;
	else if (o->chunks.n >= 2 && idle_source(x, o, w, &src))
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
	f->started = xy_manager_now(x->m);
	link_fetch(x, f);
}

/* Sends w a FETCH of o (from the worker from, if given; else from the
 * sources the plan picks): 0, or -1 (ENOMEM) with nothing planned, sent
 * or recorded. */
static int send_fetch_from(struct xy_xplan *x, struct xy_object *o,
			   xy_cache_level level, struct xy_worker *w,
			   struct xy_worker *from)
{
	struct fetch *f = xy__calloc(x->m, 1, sizeof *f);
	union xy_msg msg = {0};
	struct xy_msg_fetch *m = &msg.fetch;
	if (!f)
		return -1;
	/* The replica first, the one step that can fail; it is not ready,
	 * so no plan counts it as a source. */
	if (xy_catalog_replica_add(o, w, 0) < 0) {
		free(f);
		return -1;
	}
	plan_fetch(x, f, o, w, from);
	memcpy(m->id, o->id, XY_ID_LEN);
	m->kind = o->kind;
	m->level = (uint8_t)level;
	if (level > o->level)
		o->level = (uint8_t)level;
	m->size = o->size;
	m->chunks = o->chunks;
	f->mgr_at = -1;
	for (int i = 0; i < f->n_alt; i++) {
		f->sent[m->n_sources] = f->alt[i];
		encode_source(x, o, f->alt[i], &m->sources[m->n_sources++]);
	}
	if (f->alt_mgr || !m->n_sources) {
		f->mgr_at = (int)m->n_sources;
		encode_source(x, o, NULL, &m->sources[m->n_sources++]);
	}
	f->n_sent = (int)m->n_sources;
	make_token(x, o->id, w->name, m->token);
	w->fetches++;
	x->active++;
	xy_manager_send(x->m, w, XY_MSG_FETCH, &msg);
	return 0;
}

static int send_fetch(struct xy_xplan *x, struct xy_object *o,
		      xy_cache_level level, struct xy_worker *w)
{
	return send_fetch_from(x, o, level, w, NULL);
}

int xy_xplan_stage(struct xy_xplan *x, struct xy_task *t,
		   struct xy_worker *w)
{
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_object *o = t->inputs[i].file->obj;
		if (!xy_catalog_replica_find(o, w) &&
		    send_fetch(x, o, t->inputs[i].file->level, w) < 0)
			return -1;
	}
	return 0;
}

static void fetch_end(struct xy_xplan *x, struct fetch *f)
{
	if (f->pred)
		f->pred->succ = NULL;
	if (f->succ)
		f->succ->pred = NULL;
	if (f->src) {
		f->src->serving--;
		xy_wtable_drained(x->m->wtable, f->src);
	} else if (!f->src_gone) {
		x->serving--;
	}
	f->dest->fetches--;
	x->active--;
	xy_manager_wake(x->m);
}

/* Reads the receiver's blame: each worker source it blames rests; the
 * first one not blamed on success delivered the object (sources after
 * it were not tried) and is trusted again. Returns the name of the one
 * that delivered, or of the planned source on failure. */
static const char *judge_sources(struct xy_xplan *x, struct fetch *f,
				 const struct xy_msg_cache_update *u)
{
	const char *who = f->src ? f->src->name : "manager";
	for (int i = 0; i < f->n_sent; i++) {
		struct xy_worker *s = i == f->mgr_at ? NULL : f->sent[i];
		if (u->blame[i] != XY_BLAME_NONE) {
			if (s)
				cool(x, s, f->obj, u->blame[i], f->dest);
			continue;
		}
		if (u->status != XY_OBJ_OK)
			continue;
		if (i == f->mgr_at)
			return "manager";
		if (!s)
			return "(gone)";
		warm(s, f->obj, f->dest);
		return s->name;
	}
	return who;
}

/* The fetch's CACHE_UPDATE: the replica is made ready or dropped. */
static void fetch_reported(struct xy_xplan *x, struct xy_worker *w,
			   struct fetch *f,
			   const struct xy_msg_cache_update *u)
{
	const char *src = judge_sources(x, f, u);
	if (u->status == XY_OBJ_OK) {
		struct replica *r = xy_catalog_replica_find(f->obj, w);
		if (r)
			r->ready = 1;
	} else {
		XY_LOGW("manager", "fetch of %.12s from %s to %s failed: %s",
			f->obj->hex, src, w->name, u->text ? u->text : "");
		if (u->status == XY_OBJ_NO_ROOM)
			xy_wtable_mark_no_room(w, f->obj->size,
					       xy_manager_now(x->m));
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
			    u->status == XY_OBJ_OK ? "ok" : u->text,
			    xy_catalog_object_name(f->obj));
	xy_dash_event(x->m->dash, &(struct xy_dash_ev){
		.kind = XY_DASH_TRANSFER, .src = src, .dest = w->name,
		.bytes = u->size, .ok = u->status == XY_OBJ_OK});
}

void xy_xplan_update(struct xy_xplan *x, struct xy_worker *w,
		     struct xy_msg_cache_update *u)
{
	struct xy_object *o = xy_catalog_object(x->m->catalog, u->id, u->kind,
						u->size);
	/* A new object has no fetch in flight: one the worker made or
	 * found, that memory is short to record, is left unknown. */
	if (!o)
		return;
	struct fetch *f = o->fetching;
	while (f && f->dest != w)
		f = f->onext;
	if (!f) {
		/* An object the worker made or found on its own, at a
		 * level the manager does not know: never deleted there. */
		if (u->status == XY_OBJ_OK) {
			if (o->level < XY_CACHE_WORKER)
				o->level = XY_CACHE_WORKER;
			xy_catalog_replica_add(o, w, 1);
		} else if (xy_catalog_replica_find(o, w)) {
			/* It left the worker's cache (evicted): the
			 * reconciliation of the manager's view. */
			XY_LOGI("manager", "%s no longer has %.12s: %s",
				w->name, o->hex, u->text ? u->text : "");
			xy_catalog_replica_drop(o, w);
		}
		xy_catalog_copies_changed(x->m->catalog);
		return;
	}
	unlink_fetch(x, f);
	fetch_reported(x, w, f, u);
	fetch_end(x, f);
	free(f);
	xy_catalog_copies_changed(x->m->catalog);
}

void xy_xplan_worker_gone(struct xy_xplan *x, struct xy_worker *w)
{
	for (struct retrieve_job *j = x->retrieving; j; j = j->rnext)
		if (j->w == w) {
			j->w = NULL;
			w->retrieving--;
		}
	for (struct fetch *f = x->fetches, *n; f; f = n) {
		n = f->next;
		if (f->dest == w) {
			unlink_fetch(x, f);
			fetch_end(x, f);
			free(f);
			continue;
		}
		if (f->src == w) {
			f->src = NULL;
			f->src_gone = 1;
		}
		for (int i = 0; i < f->n_sent; i++)
			if (f->sent[i] == w)
				f->sent[i] = NULL;
		for (int i = 0; i < f->n_alt; i++) {
			if (f->alt[i] != w)
				continue;
			memmove(&f->alt[i], &f->alt[i + 1],
				(size_t)(f->n_alt - i - 1) * sizeof f->alt[0]);
			f->n_alt--;
			i--;
		}
	}
}

int xy_xplan_sources(struct xy_xplan *x, const struct xy_object *o,
		     const struct xy_worker *dest, struct xy_worker **out,
		     int max)
{
	(void)x;
	const struct fetch *f = o->fetching;
	while (f && f->dest != dest)
		f = f->onext;
	if (!f)
		return -1;
	int n = 0;
	for (int i = 0; i < f->n_sent && n < max; i++)
		out[n++] = i == f->mgr_at ? NULL : f->sent[i];
	return n;
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
	uint8_t blame;
	j->status = xy_xfer_fetch_blame(j->host, j->port, x->secret,
					x->secret_len,
					xy_mtls_ctx(x->m->mtls) != NULL,
					j->obj->id, j->token,
					MANAGER_NAME, tmp, 0, &j->bytes,
					&blame, j->err, sizeof j->err);
	if (j->status != XY_OBJ_OK) {
		/* Blaming nobody: the manager could not write it (its disk
		 * is full), which running the task again would not mend. */
		j->local = blame == XY_BLAME_NONE;
		return;
	}
	struct stat st;
	if (j->sync && xy_outsync_tree(tmp) < 0) {
		snprintf(j->err, sizeof j->err, "cannot sync %s: %s", j->path,
			 strerror(errno));
		xy_rm_rf(tmp);
		j->status = XY_OBJ_FAILED;
		j->local = 1;
		return;
	}
	if (j->obj->kind == XY_KIND_DIR && lstat(j->path, &st) == 0)
		xy_rm_rf(j->path);
	if (rename(tmp, j->path) < 0 ||
	    (j->sync && xy_outsync_parent(j->path) < 0)) {
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
			    "manager", j->bytes,
			    xy_manager_now(x->m) - j->started,
			    ok ? "ok" : j->err, j->path);
	xy_dash_event(x->m->dash, &(struct xy_dash_ev){
		.kind = XY_DASH_TRANSFER, .src = j->worker, .dest = "manager",
		.bytes = j->bytes, .ok = ok});
	char why[700];
	snprintf(why, sizeof why, "output %s could not be brought back: %s",
		 j->path, j->err);
	if (--j->obj->pins == 0 && !j->obj->files)
		xy_catalog_consider(x->m->catalog, j->obj);
	if (j->rprev)
		j->rprev->rnext = j->rnext;
	else
		x->retrieving = j->rnext;
	if (j->rnext)
		j->rnext->rprev = j->rprev;
	if (j->w)
		j->w->retrieving--;
	if (j->t) {
		/* The output is back, or given up: its worker (if still
		 * here) may evict it now. */
		if (j->w)
			xy_manager_release_after(x->m, j->t, j->w,
						 j->obj->id);
		xy_manager_retrieved(x->m, j->t, ok, j->local,
				     ok ? NULL : why);
	} else {
		j->done(j->arg, ok, ok ? NULL : why);
	}
	if (j->w)
		xy_wtable_drained(x->m->wtable, j->w);
	free(j->host);
	free(j->path);
	free(j->worker);
	free(j);
}

/* Fills j (zeroed but for its task or callback) and queues it: 0, or -1
 * (ENOMEM) with j freed and nothing started. */
static int retrieve_start(struct xy_xplan *x, struct retrieve_job *j,
			  struct xy_worker *w, struct xy_object *obj,
			  const char *path)
{
	j->req.data = j;
	j->x = x;
	j->obj = obj;
	j->host = xy__strdup(x->m, w->xfer_host && *w->xfer_host ? w->xfer_host
								 : w->addr);
	j->port = w->xfer_port;
	j->path = xy__strdup(x->m, path);
	j->worker = xy__strdup(x->m, w->name);
	j->w = w;
	j->started = xy_manager_now(x->m);
	j->sync = xy_memo_sync_mode(x->m->memo);
	make_token(x, obj->id, MANAGER_NAME, j->token);
	/* uv_queue_work fails only on bad arguments. */
	if (!j->host || !j->path || !j->worker ||
	    uv_queue_work(&x->m->loop, &j->req, retrieve_work,
			  retrieve_done) < 0) {
		free(j->host);
		free(j->path);
		free(j->worker);
		free(j);
		errno = ENOMEM;
		return -1;
	}
	j->rnext = x->retrieving;
	if (x->retrieving)
		x->retrieving->rprev = j;
	x->retrieving = j;
	x->retrievals++;
	w->retrieving++;
	obj->pins++; /* kept while it comes back, whoever lets go of it */
	return 0;
}

int xy_xplan_retrieve(struct xy_xplan *x, struct xy_task *t,
		      struct xy_worker *w, struct xy_object *obj,
		      const char *path)
{
	struct retrieve_job *j = xy__calloc(x->m, 1, sizeof *j);
	if (!j)
		return -1;
	j->t = t;
	if (retrieve_start(x, j, w, obj, path) < 0)
		return -1;
	t->retrievals++;
	return 0;
}

int xy_xplan_retrieve_cb(struct xy_xplan *x, struct xy_worker *w,
			 struct xy_object *obj, const char *path,
			 void (*done)(void *arg, int ok, const char *why),
			 void *arg)
{
	struct retrieve_job *j = xy__calloc(x->m, 1, sizeof *j);
	if (!j)
		return -1;
	j->done = done;
	j->arg = arg;
	return retrieve_start(x, j, w, obj, path);
}

int xy_xplan_copy(struct xy_xplan *x, struct xy_object *obj,
		  xy_cache_level level, struct xy_worker *w)
{
	return send_fetch(x, obj, level, w);
}

/* 1 if o has a copy, or one on its way, on a ready worker other than w. */
static int copied_elsewhere(struct xy_object *o, const struct xy_worker *w)
{
	for (uint32_t i = 0; i < o->n_replicas; i++)
		if (o->replicas[i].worker != w && o->replicas[i].worker->ready)
			return 1;
	return 0;
}

/* The ready worker, other than w, without o, with the fewest fetches in
 * flight, or NULL. */
static struct xy_worker *heir(struct xy_xplan *x, struct xy_object *o,
			      const struct xy_worker *w)
{
	struct xy_worker *best = NULL;
	for (struct xy_worker *v = xy_wtable_all(x->m->wtable); v;
	     v = v->next) {
		if (v == w || !v->ready || xy_catalog_replica_find(o, v))
			continue;
		if (!best || v->fetches < best->fetches)
			best = v;
	}
	return best;
}

int xy_xplan_hand_off(struct xy_xplan *x, struct xy_worker *w)
{
	/* At most as many at once as a source serves: w is the source of
	 * each (no one else has them), and each one's end calls
	 * xy_wtable_drained(w) for the next. */
	int room = XY_SERVE_PER_SOURCE - w->serving, n = 0;
	for (uint32_t i = 0; i < w->n_held && n < room; i++) {
		struct xy_object *o = w->held[i];
		struct replica *r = xy_catalog_replica_find(o, w);
		if (!o->files || o->on_manager || !r || !r->ready ||
		    copied_elsewhere(o, w))
			continue;
		struct xy_worker *to = heir(x, o, w);
		if (!to)
			break; /* no other worker */
		if (send_fetch_from(x, o, (xy_cache_level)o->level, to, w) < 0)
			break;
		n++;
	}
	return n;
}

int xy_xplan_busy(const struct xy_xplan *x)
{
	return x->retrievals > 0;
}

/* The broadcast chains in flight, for the dashboard (dash.c): each fetch
 * that heads a chain (no predecessor, a successor), with its length. */
int xy_xplan_chains(const struct xy_xplan *x, struct xy_xplan_chain *out,
		    int max)
{
	int n = 0;
	for (const struct fetch *f = x->fetches; f && n < max; f = f->next) {
		if (f->pred || !f->succ)
			continue;
		int len = 0;
		for (const struct fetch *g = f; g; g = g->succ)
			len++;
		out[n].hex = f->obj->hex;
		out[n].size = f->obj->size;
		out[n].length = len;
		n++;
	}
	return n;
}
