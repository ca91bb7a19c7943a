/*
 * urls.h: URL inputs (urls.c). A sub-context of the manager, with its own
 * create and destroy; only files under src/manager include it, through
 * internal.h, which gives the types it shares with the others.
 */
#ifndef XY_MANAGER_URLS_H
#define XY_MANAGER_URLS_H

/* URL inputs (urls.c): the manager never fetches one; it sends FETCH_URL
 * to one worker, which fetches from the origin, and learns the object's
 * id from URL_DONE; every other worker then gets it from a holder. */
struct xy_urls;
/* At most XY_URL_FETCHES (proto.h) FETCH_URLs are in flight to one
 * worker, which runs as many downloads at once; the others wait for
 * room. */
struct xy_urls *xy_urls_create(struct xy_manager *m);
void xy_urls_destroy(struct xy_urls *u);
/* f (a URL file, now FILE_QUEUED) is needed: sends FETCH_URL to a worker
 * at once, or at a later xy_urls_phase when none is ready. */
void xy_urls_start(struct xy_urls *u, struct xy_file *f);
/* Schedule phase: starts the fetches that waited for a worker. */
void xy_urls_phase(struct xy_urls *u);
void xy_urls_done(struct xy_urls *u, struct xy_worker *w,
		  struct xy_msg_url_done *d);
/* w is going: its fetches start again elsewhere. */
void xy_urls_worker_gone(struct xy_urls *u, struct xy_worker *w);
int xy_urls_busy(const struct xy_urls *u);

#endif
