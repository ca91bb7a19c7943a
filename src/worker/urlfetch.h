/*
 * urlfetch.h: the worker's URL fetches. A FETCH_URL names a URL that no
 * worker holds yet; this worker fetches it from its origin with libcurl
 * on libuv's thread pool (never on the loop), hashes it there (its id and
 * chunk list, as for any object), and adopts it into the cache, from
 * where peers fetch it as any other object. The URL_DONE report tells the
 * manager what the URL turned out to be, or why it could not be had
 * (an HTTP status, a connection failure). Pairs with worker.c, which
 * feeds it FETCH_URL and sends the reports, and with cache.c.
 */
#ifndef XY_URLFETCH_H
#define XY_URLFETCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "proto.h"

struct xy_urlfetch;

/* A fetch ended; m is valid during the call only. Runs on the loop. */
typedef void (*xy_url_done_fn)(void *arg, const struct xy_msg_url_done *m);

/* Initialises libcurl (once per process; not thread-safe, so call it
 * before any other thread uses libcurl). Returns NULL with a reason in
 * err. loop and cache must outlive the result. */
struct xy_urlfetch *xy_urlfetch_create(uv_loop_t *loop,
				       struct xy_cache *cache,
				       xy_url_done_fn cb, void *arg,
				       char *err, size_t errlen);

/* Aborts the transfers in progress (they end within a second, without a
 * report) and stops reporting. stop(NULL) does nothing. */
void xy_urlfetch_stop(struct xy_urlfetch *u);

/* Frees it, once the loop has run dry (no fetch in flight).
 * destroy(NULL) does nothing. */
void xy_urlfetch_destroy(struct xy_urlfetch *u);

/* Starts fetching m->url (copied) into the cache at m->level. Returns -1
 * on ENOMEM (no report then). */
int xy_urlfetch_request(struct xy_urlfetch *u,
			const struct xy_msg_fetch_url *m);

#endif
