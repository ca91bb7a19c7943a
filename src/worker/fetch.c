/*
 * fetch.c: FETCH requests on threads of their own, completed on the loop
 * through a uv_async; see fetch.h. The threads never touch the cache's
 * table or the loop's state: they receive into tmp/ (xy_xfer_fetch checks
 * the SHA-256 as the bytes arrive) and the loop adopts the result.
 */
#include "fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"
#include "xfer.h"

#define NBUCKETS 256
#define STOP_GRACE_S 1

enum { J_QUEUED, J_RUNNING, J_FAILED };

/* One object being fetched, or whose last fetch failed. Fields other than
 * the results are fixed while a thread holds the job. */
struct job {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint8_t level;
	uint8_t token[XY_TOKEN_LEN];
	uint64_t size;
	struct xy_chunks chunks;
	struct xy_source sources[XY_MAX_SOURCES];
	uint32_t n_sources;
	char *dest; /* in tmp/ */
	uint64_t reserved; /* bytes reserved in the cache for it */
	struct xy_xfer_partial *pub; /* served while it arrives, until adopted */
	int state;
	unsigned requests;
	uint64_t t0_us;
	/* results, written by the thread */
	int status;
	uint64_t bytes;
	char text[256];
	uint8_t blame[XY_MAX_SOURCES]; /* XY_BLAME_* per source */
	struct job *qnext; /* the thread queue, or the done list */
	struct job *hnext; /* the table */
};

struct xy_fetcher {
	uv_loop_t *loop;
	struct xy_cache *cache;
	struct xy_xfer_server *server;
	const char *name;
	void *secret;
	size_t secret_len;
	int tls;
	uv_async_t async;
	xy_fetch_done_cb cb;
	void *arg;
	struct job *table[NBUCKETS]; /* loop only */
	uint64_t seq;
	/* guarded by mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *qhead, *qtail;
	struct job *done;
	int stopping;
	int idle; /* threads waiting for a job */
	/* threads, started as jobs come (a worker that never fetches has
	 * none: fewer threads make each fork of a task cheaper) */
	pthread_t threads[XY_FETCH_THREADS];
	int nthreads, max_threads;
	int abandoned;
};

static size_t bucket(const uint8_t id[XY_ID_LEN])
{
	return id[0];
}

static struct job *lookup(struct xy_fetcher *f, const uint8_t id[XY_ID_LEN])
{
	struct job *j = f->table[bucket(id) % NBUCKETS];

	while (j && memcmp(j->id, id, XY_ID_LEN))
		j = j->hnext;
	return j;
}

static void unlink_job(struct xy_fetcher *f, struct job *j)
{
	struct job **pp = &f->table[bucket(j->id) % NBUCKETS];

	while (*pp != j)
		pp = &(*pp)->hnext;
	*pp = j->hnext;
}

/* Frees what a FETCH gave the job. */
static void clear_request(struct job *j)
{
	for (uint32_t i = 0; i < j->n_sources; i++)
		free(j->sources[i].host);
	j->n_sources = 0;
	free(j->chunks.hash);
	memset(&j->chunks, 0, sizeof j->chunks);
}

static void free_job(struct job *j)
{
	clear_request(j);
	xy_xfer_partial_end(j->pub, 0);
	free(j->dest);
	free(j);
}

/* ------------------------------------------------------------ threads */

/* An object of one chunk or less comes whole, from the first source
 * that has it. A failure that blames no source is this worker's own (its
 * disk is full): the next source would meet the same disk. */
static void run_whole(struct xy_fetcher *f, struct job *j)
{
	for (uint32_t i = 0; i < j->n_sources; i++) {
		j->status = xy_xfer_fetch_blame(
			j->sources[i].host, j->sources[i].port, f->secret,
			f->secret_len, f->tls, j->id, j->token, f->name, j->dest, 1,
			&j->bytes, &j->blame[i], j->text, sizeof j->text);
		if (j->status == XY_OBJ_OK || j->blame[i] == XY_BLAME_NONE)
			return;
	}
}

static void run_job(struct xy_fetcher *f, struct job *j)
{
	j->status = XY_OBJ_FAILED;
	if (j->chunks.n >= 2) {
		struct xy_xfer_spec sp = {
			.secret = f->secret, .secret_len = f->secret_len,
			.tls = f->tls, .id = j->id, .kind = j->kind, .size = j->size,
			.chunks = &j->chunks, .sources = j->sources,
			.n_sources = j->n_sources, .token = j->token,
			.name = f->name, .dest = j->dest, .readonly = 1,
			.server = f->server, .blame = j->blame};
		uint64_t verified;
		j->status = xy_xfer_fetch_chunks(&sp, &j->pub, &verified,
						 j->text, sizeof j->text);
		j->bytes = j->status == XY_OBJ_OK ? j->size : verified;
	} else {
		run_whole(f, j);
	}
	if (j->status != XY_OBJ_OK && !j->text[0])
		snprintf(j->text, sizeof j->text, "fetch failed");
}

static void *thread_main(void *arg)
{
	struct xy_fetcher *f = arg;
	struct job *j;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		f->idle++;
		while (!f->qhead && !f->stopping)
			pthread_cond_wait(&f->cv, &f->mu);
		f->idle--;
		if (f->stopping)
			break;
		j = f->qhead;
		f->qhead = j->qnext;
		if (!f->qhead)
			f->qtail = NULL;
		pthread_mutex_unlock(&f->mu);
		run_job(f, j);
		pthread_mutex_lock(&f->mu);
		/* Once stopping, the loop no longer listens: the job is
		 * dropped with the fetcher. */
		if (f->stopping)
			break;
		j->qnext = f->done;
		f->done = j;
		uv_async_send(&f->async);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* --------------------------------------------------------------- loop */

static void complete(struct xy_fetcher *f, struct job *j)
{
	struct xy_fetch_result r;
	char err[256];

	xy_cache_unreserve(f->cache, j->reserved);
	j->reserved = 0;
	if (j->status == XY_OBJ_OK &&
	    xy_cache_adopt(f->cache, j->dest, j->id, j->kind, j->level,
			   j->bytes, err, sizeof err) < 0) {
		j->status = XY_OBJ_FAILED;
		snprintf(j->text, sizeof j->text, "%s", err);
		xy_rm_rf(j->dest);
	}
	/* In the cache now (or failed): the server finds it there. */
	xy_xfer_partial_end(j->pub, j->status == XY_OBJ_OK);
	j->pub = NULL;
	memset(&r, 0, sizeof r);
	memcpy(r.id, j->id, XY_ID_LEN);
	r.kind = j->kind;
	r.level = j->level;
	r.status = j->status;
	r.size = j->status == XY_OBJ_OK ? j->bytes : 0;
	r.verified = j->bytes;
	r.elapsed_us = xy_mono_us() - j->t0_us;
	r.text = j->status == XY_OBJ_OK ? "" : j->text;
	r.requests = j->requests;
	memcpy(r.blame, j->blame, sizeof r.blame);
	if (j->status == XY_OBJ_OK) {
		unlink_job(f, j);
	} else {
		/* Kept so a TASK that needs it learns why it is missing. */
		j->state = J_FAILED;
		clear_request(j);
	}
	f->cb(f->arg, &r);
	if (j->status == XY_OBJ_OK)
		free_job(j);
}

static void on_async(uv_async_t *a)
{
	struct xy_fetcher *f = a->data;
	struct job *list, *next, *rev = NULL;

	pthread_mutex_lock(&f->mu);
	list = f->done;
	f->done = NULL;
	pthread_mutex_unlock(&f->mu);
	for (; list; list = next) { /* restore completion order */
		next = list->qnext;
		list->qnext = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		next = rev->qnext;
		complete(f, rev);
	}
}

struct xy_fetcher *xy_fetcher_create(uv_loop_t *loop, struct xy_cache *cache,
				     const void *secret, size_t secret_len,
				     int nthreads, xy_fetch_done_cb cb,
				     void *arg, char *err, size_t errlen)
{
	struct xy_fetcher *f = calloc(1, sizeof *f);

	if (!f || !(f->secret = malloc(secret_len ? secret_len : 1))) {
		free(f);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(f->secret, secret, secret_len);
	f->secret_len = secret_len;
	f->loop = loop;
	f->cache = cache;
	f->cb = cb;
	f->arg = arg;
	f->name = "";
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	uv_async_init(loop, &f->async, on_async);
	f->async.data = f;
	if (nthreads < 1 || nthreads > XY_FETCH_THREADS)
		nthreads = XY_FETCH_THREADS;
	f->max_threads = nthreads;
	return f;
}

static void free_table(struct xy_fetcher *f)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct job *j = f->table[i], *next;

		for (; j; j = next) {
			next = j->hnext;
			free_job(j);
		}
	}
}

static void on_async_closed(uv_handle_t *h)
{
	struct xy_fetcher *f = h->data;

	/* With a thread abandoned the fetcher must outlive it: leave it. */
	if (f->abandoned)
		return;
	free_table(f);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f->secret);
	free(f);
}

void xy_fetcher_set_peer(struct xy_fetcher *f, struct xy_xfer_server *server,
			 const char *name)
{
	f->server = server;
	f->name = name;
}

void xy_fetcher_set_tls(struct xy_fetcher *f, int on)
{
	f->tls = on;
}

void xy_fetcher_stop(struct xy_fetcher *f)
{
	struct timespec until;
	int i;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stopping = 1;
	f->qhead = f->qtail = NULL;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STOP_GRACE_S;
	for (i = 0; i < f->nthreads; i++) {
		if (pthread_timedjoin_np(f->threads[i], NULL, &until) != 0) {
			pthread_detach(f->threads[i]);
			f->abandoned = 1;
		}
	}
	if (f->abandoned)
		XY_LOGW("fetch", "abandoning fetches still in progress");
	uv_close((uv_handle_t *)&f->async, on_async_closed);
}

/* No thread could be started to run the queue: fail what waits in it. */
static void fail_queue(struct xy_fetcher *f, int e)
{
	struct job *j;

	XY_LOGE("fetch", "cannot start a fetch thread: %s", strerror(e));
	pthread_mutex_lock(&f->mu);
	while ((j = f->qhead)) {
		f->qhead = j->qnext;
		j->status = XY_OBJ_FAILED;
		snprintf(j->text, sizeof j->text,
			 "cannot start a fetch thread: %s", strerror(e));
		j->qnext = f->done;
		f->done = j;
	}
	f->qtail = NULL;
	uv_async_send(&f->async);
	pthread_mutex_unlock(&f->mu);
}

static int queue_job(struct xy_fetcher *f, struct job *j,
		     const struct xy_msg_fetch *m)
{
	char hex[2 * XY_ID_LEN + 1];
	int spawn;

	xy_hex(m->id, XY_ID_LEN, hex);
	clear_request(j);
	free(j->dest);
	if (asprintf(&j->dest, "%s/%s.%" PRIu64, xy_cache_tmp(f->cache), hex,
		     ++f->seq) < 0)
		j->dest = NULL;
	if (!j->dest)
		return -1;
	for (uint32_t i = 0; i < m->n_sources; i++) {
		j->sources[i] = m->sources[i];
		j->sources[i].host = strdup(m->sources[i].host);
		j->n_sources = i + 1;
		if (!j->sources[i].host)
			return -1;
	}
	j->chunks = m->chunks;
	j->chunks.hash = NULL;
	if (m->chunks.n) {
		size_t n = (size_t)m->chunks.n * XY_ID_LEN;
		if (!(j->chunks.hash = malloc(n)))
			return -1;
		memcpy(j->chunks.hash, m->chunks.hash, n);
	}
	j->kind = m->kind;
	j->level = m->level;
	j->size = m->size;
	memcpy(j->token, m->token, XY_TOKEN_LEN);
	j->state = J_QUEUED;
	j->requests = 1;
	j->status = XY_OBJ_OK;
	j->bytes = 0;
	j->text[0] = '\0';
	memset(j->blame, 0, sizeof j->blame);
	j->t0_us = xy_mono_us();
	pthread_mutex_lock(&f->mu);
	j->qnext = NULL;
	if (f->qtail)
		f->qtail->qnext = j;
	else
		f->qhead = j;
	f->qtail = j;
	pthread_cond_signal(&f->cv);
	spawn = f->idle == 0 && f->nthreads < f->max_threads;
	pthread_mutex_unlock(&f->mu);
	if (spawn) {
		int r = pthread_create(&f->threads[f->nthreads], NULL,
				       thread_main, f);

		if (r == 0)
			f->nthreads++;
		else if (!f->nthreads)
			fail_queue(f, r);
	}
	return 0;
}

int xy_fetcher_request(struct xy_fetcher *f, const struct xy_msg_fetch *m)
{
	struct job *j = lookup(f, m->id);
	size_t b;

	if (j && j->state != J_FAILED) {
		j->requests++;
		if (m->level > j->level)
			j->level = m->level; /* read by the loop only */
		return 0;
	}
	if (!j) {
		j = calloc(1, sizeof *j);
		if (!j)
			return -1;
		memcpy(j->id, m->id, XY_ID_LEN);
		b = bucket(m->id) % NBUCKETS;
		j->hnext = f->table[b];
		f->table[b] = j;
	}
	/* Room first: the cache evicts for it before a byte arrives. */
	j->reserved = xy_cache_reserve(f->cache, m->size);
	if (queue_job(f, j, m) < 0) {
		xy_cache_unreserve(f->cache, j->reserved);
		unlink_job(f, j);
		free_job(j);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int xy_fetcher_state(struct xy_fetcher *f, const uint8_t id[XY_ID_LEN],
		     int *status, const char **text)
{
	struct job *j = lookup(f, id);

	if (!j)
		return XY_FETCH_NONE;
	if (j->state != J_FAILED)
		return XY_FETCH_PENDING;
	if (status)
		*status = j->status;
	if (text)
		*text = j->text;
	return XY_FETCH_FAILED;
}
