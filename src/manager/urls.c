/*
 * urls.c: URL inputs, a sub-context of the manager. The manager never
 * fetches a URL itself. When a task first needs one, the catalogue hands
 * the file here; FETCH_URL goes to one worker (the ready worker with the
 * fewest URL fetches in flight, then the fewest peer fetches, then the
 * most free cores, and never more than XY_URL_FETCHES at once to one
 * worker: the rest wait here), which fetches it
 * from the origin, caches it and answers URL_DONE with its id, size and
 * chunk list. Until then every task that needs the URL waits (it is in
 * the file's waiters, as for a file being hashed), so the origin sees one
 * request; afterwards the URL is an object like any other, held by that
 * worker, and the transfer planner sends every other worker to a holder.
 * A worker whose disk fills during the download (NO_ROOM, with the bytes
 * that fitted) is marked (xy_wtable_mark_no_room) and the URL goes to
 * another, preferring workers with room; after XY_URL_NO_ROOM_TRIES such
 * failures the URL is missing. Pairs with catalog.c, which queues URL files, and src/worker/urlfetch.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "log.h"
#include "util.h"

#define WHO "manager"

/* Workers that may run out of disk fetching one URL before it is given
 * up as missing. */
#define XY_URL_NO_ROOM_TRIES 3

/* A FETCH_URL in flight. It holds the reference on its file that the
 * catalogue's hashing queue handed over, as the queue of URLs waiting
 * for a worker does; it is given back when the URL is had or failed. */
struct url_fetch {
	uint64_t req_id;
	struct xy_file *f;
	struct xy_worker *w;
	double started;
	struct url_fetch *next;
};

struct xy_urls {
	struct xy_manager *m;
	uint64_t next_req;
	struct url_fetch *fetches;
	struct xy_file **queued; /* waiting for a ready worker */
	uint32_t n_queued, cap_queued;
};

struct xy_urls *xy_urls_create(struct xy_manager *m)
{
	struct xy_urls *u = calloc(1, sizeof *u);
	if (u)
		u->m = m;
	return u;
}

void xy_urls_destroy(struct xy_urls *u)
{
	if (!u)
		return;
	for (struct url_fetch *f = u->fetches, *n; f; f = n) {
		n = f->next;
		free(f);
	}
	free(u->queued);
	free(u);
}

int xy_urls_busy(const struct xy_urls *u)
{
	return u->fetches != NULL;
}

/* Is a better place for a URL than b: fewer downloads, then fewer peer
 * fetches, then more free cores. */
static int better(const struct xy_worker *a, const struct xy_worker *b)
{
	if (a->url_fetches != b->url_fetches)
		return a->url_fetches < b->url_fetches;
	if (a->fetches != b->fetches)
		return a->fetches < b->fetches;
	return xy_wtable_free_cores(a) > xy_wtable_free_cores(b);
}

/* The worker to send a URL to, or NULL if none is ready or every ready
 * one has XY_URL_FETCHES downloads already. A download holds one of
 * the worker's thread pool threads while it lasts, and that pool also
 * collects outputs, expands archives and removes sandboxes: a worker
 * whose pool is all downloads stalls for as long as the slowest origin. */
static struct xy_worker *pick_worker(struct xy_urls *u)
{
	struct xy_worker *best = NULL;
	int best_room = 0;
	double now = xy_manager_now(u->m);
	for (struct xy_worker *w = xy_wtable_all(u->m->wtable); w;
	     w = w->next) {
		if (!w->ready || w->url_fetches >= XY_URL_FETCHES)
			continue;
		/* Not lately out of room: a URL's size is not known before
		 * it is fetched, so any mark counts. */
		int room = !xy_wtable_no_room_marked(w, now);
		if (!best || room > best_room ||
		    (room == best_room && better(w, best))) {
			best = w;
			best_room = room;
		}
	}
	return best;
}

/* Queues f until a worker can fetch it; if even that cannot be had, its
 * waiters fail (the manager's fault, not the URL's). */
static void enqueue(struct xy_urls *u, struct xy_file *f)
{
	if (u->n_queued == u->cap_queued) {
		uint32_t cap = u->cap_queued ? 2 * u->cap_queued : 8;
		struct xy_file **q = realloc(u->queued, cap * sizeof *q);
		if (!q) {
			f->state = FILE_MISSING;
			xy_catalog_file_failed(u->m->catalog, f, "the manager"
					       " is out of memory");
			xy_catalog_file_decref(f);
			return;
		}
		u->queued = q;
		u->cap_queued = cap;
	}
	u->queued[u->n_queued++] = f;
}

/* Sends FETCH_URL for f to a ready worker. Returns -1 if none can take
 * it now (or memory is short now: it is tried again later). */
static int send_fetch(struct xy_urls *u, struct xy_file *f)
{
	struct xy_worker *w = pick_worker(u);
	struct url_fetch *uf;
	union xy_msg msg = {0};
	if (!w)
		return -1;
	if (!(uf = calloc(1, sizeof *uf)))
		return -1;
	uf->req_id = ++u->next_req;
	uf->f = f;
	uf->w = w;
	uf->started = xy_manager_now(u->m);
	uf->next = u->fetches;
	u->fetches = uf;
	w->url_fetches++;
	f->state = FILE_HASHING; /* its id is being found out */
	msg.fetch_url.req_id = uf->req_id;
	msg.fetch_url.level = (uint8_t)f->level;
	msg.fetch_url.url = f->url;
	XY_LOGI(WHO, "%s fetches %s from its origin", w->name, f->url);
	xy_manager_send(u->m, w, XY_MSG_FETCH_URL, &msg);
	return 0;
}

void xy_urls_start(struct xy_urls *u, struct xy_file *f)
{
	if (send_fetch(u, f) < 0)
		enqueue(u, f);
}

void xy_urls_phase(struct xy_urls *u)
{
	while (u->n_queued) {
		struct xy_file *f = u->queued[u->n_queued - 1];
		if (f->state != FILE_QUEUED)
			xy_catalog_file_decref(f); /* nothing to fetch now */
		else if (send_fetch(u, f) < 0)
			return;
		u->n_queued--;
	}
}

static struct url_fetch *take(struct xy_urls *u, uint64_t req_id,
			      struct xy_worker *w)
{
	for (struct url_fetch **pp = &u->fetches; *pp; pp = &(*pp)->next) {
		struct url_fetch *f = *pp;
		if (f->req_id == req_id && f->w == w) {
			*pp = f->next;
			w->url_fetches--;
			return f;
		}
	}
	return NULL;
}

void xy_urls_done(struct xy_urls *u, struct xy_worker *w,
		  struct xy_msg_url_done *d)
{
	struct url_fetch *uf = take(u, d->req_id, w);
	struct xy_catalog *c = u->m->catalog;
	if (!uf) {
		XY_LOGD(WHO, "%s answered an unknown URL fetch", w->name);
		return;
	}
	struct xy_file *f = uf->f;
	double secs = xy_manager_now(u->m) - uf->started;
	free(uf);
	xy_manager_wake(u->m); /* a URL waiting for room may go to w now */
	if (d->status == XY_OBJ_NO_ROOM &&
	    ++f->url_no_room < XY_URL_NO_ROOM_TRIES) {
		XY_LOGW(WHO, "%s had no room for %s (%s): another worker will "
			"fetch it", w->name, f->url, d->text ? d->text : "");
		xy_history_transfer(u->m->history, xy_now(), "", f->url,
				    w->name, 0, secs, d->text, f->url);
		xy_wtable_mark_no_room(w, d->size, xy_manager_now(u->m));
		f->state = FILE_QUEUED;
		xy_urls_start(u, f); /* with the fetch's reference */
		return;
	}
	if (d->status != XY_OBJ_OK) {
		char why[700];
		char tail[64] = "";
		if (d->status == XY_OBJ_NO_ROOM)
			snprintf(tail, sizeof tail, " (no room, %d tries)",
				 f->url_no_room);
		snprintf(why, sizeof why, "input %.300s: %s%s", f->url,
			 d->text && *d->text ? d->text : "cannot be fetched",
			 tail);
		XY_LOGW(WHO, "%s", why);
		xy_history_transfer(u->m->history, xy_now(), "", f->url,
				    w->name, 0, secs, d->text, f->url);
		xy_dash_event(u->m->dash, &(struct xy_dash_ev){
			.kind = XY_DASH_TRANSFER, .src = f->url,
			.dest = w->name});
		f->state = FILE_MISSING;
		xy_catalog_file_failed(c, f, why);
		xy_catalog_file_decref(f);
		return;
	}
	struct xy_object *o = xy_catalog_object(c, d->id, XY_KIND_FILE,
						d->size);
	if (!o) {
		/* Fetched, but memory is short to record it: its waiters
		 * fail, as when it cannot be queued (enqueue). */
		f->state = FILE_MISSING;
		xy_catalog_file_failed(c, f, "the manager is out of memory");
		xy_catalog_file_decref(f);
		return;
	}
	xy_catalog_set_chunks(o, &d->chunks);
	/* Unrecorded, w's copy is not a source: the URL is then fetched
	 * again when a task needs it (xy_catalog_need). */
	xy_catalog_replica_add(o, w, 1);
	xy_history_transfer(u->m->history, xy_now(), o->hex, f->url, w->name,
			    d->size, secs, "ok", f->url);
	xy_dash_event(u->m->dash, &(struct xy_dash_ev){
		.kind = XY_DASH_TRANSFER, .src = f->url, .dest = w->name,
		.bytes = d->size, .ok = 1});
	xy_catalog_file_ready(c, f, o);
	xy_catalog_file_decref(f);
	xy_manager_wake(u->m);
}

void xy_urls_worker_gone(struct xy_urls *u, struct xy_worker *w)
{
	for (struct url_fetch **pp = &u->fetches; *pp;) {
		struct url_fetch *uf = *pp;
		if (uf->w != w) {
			pp = &uf->next;
			continue;
		}
		*pp = uf->next;
		w->url_fetches--;
		XY_LOGI(WHO, "%s left while fetching %s: another worker will",
			w->name, uf->f->url);
		uf->f->state = FILE_QUEUED;
		enqueue(u, uf->f);
		free(uf);
	}
}

/* 0 if url is one a worker will fetch: http, https, ftp or ftps (any
 * case), with a host part; -1 (EINVAL) with the reason otherwise. Any
 * other scheme (file:, for one) would read the worker's own files or
 * talk to services no task declared (principle 9). */
static int check_url(const char *url, char *err, size_t errlen)
{
	static const char *const schemes[] = {"http", "https", "ftp", "ftps"};
	const char *sep = url ? strstr(url, "://") : NULL;
	if (!sep || sep == url || !sep[3] || strlen(url) > XY_MAX_URL)
		return xy_fail(err, errlen, EINVAL, "'%.200s' is not a URL",
			       url ? url : "");
	size_t n = (size_t)(sep - url);
	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		if (strlen(schemes[i]) == n &&
		    !strncasecmp(url, schemes[i], n))
			return 0;
	return xy_fail(err, errlen, EINVAL, "'%.200s': only http, https, ftp "
		       "and ftps URLs can be inputs", url);
}

struct xy_file *xy_manager_declare_url(struct xy_manager *m, const char *url,
				       xy_cache_level level, char *err,
				       size_t errlen)
{
	if (check_url(url, err, errlen) < 0 ||
	    xy_catalog_check_level(level, err, errlen) < 0)
		return NULL;
	struct xy_file *f = xy_catalog_url(m->catalog, url, level);
	if (!f)
		xy_fail(err, errlen, ENOMEM, "out of memory");
	return f;
}
