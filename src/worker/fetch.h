/*
 * fetch.h: the worker's fetcher: FETCH requests run on a few threads of
 * their own (blocking transfer clients, xfer.h), each into tmp/ of the
 * cache, then adopted into the cache by the loop. Completions come back to
 * the loop through a uv_async. Requests for an object already on its way
 * join the fetch in flight. Pairs with worker.c, which turns completions
 * into CACHE_UPDATE, and tasks.c, which waits for inputs to arrive.
 */
#ifndef XY_FETCH_H
#define XY_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "proto.h"
#include "xfer.h"

#define XY_FETCH_THREADS 4

struct xy_fetcher;

struct xy_fetch_result {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint8_t level;
	int status;          /* XY_OBJ_* */
	uint64_t size;       /* stream size, when OK */
	uint64_t verified;   /* stream bytes verified (all of them when OK) */
	uint64_t elapsed_us; /* from the first request to the end */
	const char *text;    /* why not, when status != OK; else "" */
	unsigned requests;   /* FETCH messages this completion answers */
	/* XY_BLAME_* for each source of the FETCH that started the fetch */
	uint8_t blame[XY_MAX_SOURCES];
};

/* Runs on the loop once a fetch has ended and, if OK, the object is in the
 * cache. r is valid during the call only. */
typedef void (*xy_fetch_done_cb)(void *arg, const struct xy_fetch_result *r);

/* States an id can be in, for xy_fetcher_state. */
enum { XY_FETCH_NONE = 0, XY_FETCH_PENDING = 1, XY_FETCH_FAILED = 2 };

/* Starts nthreads fetch threads. The secret is copied. Returns NULL with a
 * reason in err. */
struct xy_fetcher *xy_fetcher_create(uv_loop_t *loop, struct xy_cache *cache,
				     const void *secret, size_t secret_len,
				     int nthreads, xy_fetch_done_cb cb,
				     void *arg, char *err, size_t errlen);

/* Names this worker in GETs (the name tokens are bound to) and sets the
 * transfer server that serves objects while they arrive. Both are kept
 * by reference and must outlive the fetcher's threads. */
void xy_fetcher_set_peer(struct xy_fetcher *f, struct xy_xfer_server *server,
			 const char *name);

/* Fetches over TLS keyed by the secret (xy_xfer_open), as the servers
 * of a manager with TLS serve. Before the first request. */
void xy_fetcher_set_tls(struct xy_fetcher *f, int on);

/* Stops the fetcher: fetches not started are dropped without a callback;
 * fetches in progress are given about a second to end, and are abandoned
 * (their threads left to finish alone, touching nothing of the loop or the
 * cache) after that. Closes the async handle; the fetcher is freed in its
 * close callback, so the loop must run afterwards. stop(NULL) does
 * nothing. */
void xy_fetcher_stop(struct xy_fetcher *f);

/* Queues a fetch of m's object, or joins the one in flight for the same
 * id; a FETCH for an id whose last fetch failed tries again. The caller has
 * checked that the object is not cached. Returns -1 on ENOMEM (no callback
 * then). */
int xy_fetcher_request(struct xy_fetcher *f, const struct xy_msg_fetch *m);

/* Where an id stands: PENDING (queued or in progress), FAILED (the last
 * fetch failed: *status and *text say how; text is valid until the next
 * request for the id), or NONE. */
int xy_fetcher_state(struct xy_fetcher *f, const uint8_t id[XY_ID_LEN],
		     int *status, const char **text);

#endif
