/*
 * urlfetch.c: URL fetches with libcurl on libuv's thread pool; see
 * urlfetch.h. The pool thread downloads into tmp/, checks the HTTP
 * status, hashes the file and makes it read-only; the loop adopts it into
 * the cache and reports. A fetch in progress holds a pool thread (libuv
 * has 4 by default) for as long as the download lasts, so at most
 * XY_URL_FETCHES run at once and the others wait in a queue here: the
 * pool also collects outputs, expands archives and removes sandboxes,
 * and must never be all downloads.
 */
#include "urlfetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "object.h"
#include "util.h"

#define CONNECT_TIMEOUT_S 30L
#define STALL_S 60L /* a transfer under 1 byte/s this long fails */

struct job {
	uv_work_t req;
	struct xy_urlfetch *u;
	uint64_t req_id;
	uint8_t level;
	char *url;
	char path[PATH_MAX];
	uint64_t t0_us;
	/* results, written by the pool thread */
	int fd;           /* the download, while it is written */
	int write_errno;  /* why writing it failed, if it did */
	uint64_t written; /* bytes written to it */
	int status;
	uint8_t id[XY_ID_LEN];
	uint64_t size;
	struct xy_chunks chunks;
	char text[512];
	struct job *next; /* waiting for a download slot */
};

struct xy_urlfetch {
	uv_loop_t *loop;
	struct xy_cache *cache;
	xy_url_done_fn cb;
	void *arg;
	uint64_t seq;
	atomic_int stopping;
	int running;             /* jobs on the thread pool */
	struct job *head, *tail; /* jobs waiting for one of them to end */
	/* The schemes fetched, and those redirects may lead to: the ones
	 * allowed that this libcurl supports (CURLOPT_PROTOCOLS_STR refuses
	 * a list that names one it lacks, and would leave all enabled). */
	char protocols[32], redirects[16];
};

/* Appends to list each of want (comma-separated) that libcurl supports. */
static void supported(const char *const *want, char *list, size_t len)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	list[0] = '\0';
	for (; *want; want++)
		for (const char *const *p = v->protocols; p && *p; p++)
			if (!strcmp(*p, *want)) {
				size_t n = strlen(list);

				snprintf(list + n, len - n, "%s%s",
					 n ? "," : "", *want);
				break;
			}
}

struct xy_urlfetch *xy_urlfetch_create(uv_loop_t *loop,
				       struct xy_cache *cache,
				       xy_url_done_fn cb, void *arg,
				       char *err, size_t errlen)
{
	struct xy_urlfetch *u;
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK) {
		xy_fail(err, errlen, EIO, "cannot start libcurl: %s",
			curl_easy_strerror(rc));
		return NULL;
	}
	u = calloc(1, sizeof *u);
	if (!u) {
		curl_global_cleanup();
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	u->loop = loop;
	u->cache = cache;
	u->cb = cb;
	u->arg = arg;
	atomic_init(&u->stopping, 0);
	static const char *const fetched[] = {"http", "https", "ftp", "ftps",
					      NULL};
	static const char *const redirected[] = {"http", "https", NULL};
	supported(fetched, u->protocols, sizeof u->protocols);
	supported(redirected, u->redirects, sizeof u->redirects);
	XY_LOGD("url", "libcurl fetches %s", u->protocols);
	return u;
}

void xy_urlfetch_stop(struct xy_urlfetch *u)
{
	if (u)
		atomic_store(&u->stopping, 1);
}

void xy_urlfetch_destroy(struct xy_urlfetch *u)
{
	if (!u)
		return;
	/* Jobs still queued never started: the worker stopped first. */
	for (struct job *j = u->head, *n; j; j = n) {
		n = j->next;
		free(j->url);
		free(j);
	}
	free(u);
	curl_global_cleanup();
}

/* ------------------------------------------------ on the thread pool */

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n, off = 0;

	while (off < len) {
		ssize_t w = write(j->fd, p + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			j->write_errno = w < 0 ? errno : ENOSPC;
			return 0; /* curl fails with CURLE_WRITE_ERROR */
		}
		off += (size_t)w;
		j->written += (uint64_t)w;
	}
	return len;
}

/* Aborts the transfer when the worker stops. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn,
		       curl_off_t ut, curl_off_t un)
{
	struct xy_urlfetch *u = arg;

	return atomic_load(&u->stopping) ? 1 : 0;
}

/* Allows only the schemes of u->protocols, and redirects to those of
 * u->redirects. Returns 0, or -1 with j->text set: a download that goes
 * ahead with libcurl's defaults could read file:// on this worker. */
static int restrict_protocols(CURL *h, struct job *j)
{
	CURLcode rc = CURLE_UNSUPPORTED_PROTOCOL;

	if (*j->u->protocols && *j->u->redirects &&
	    (rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR,
				   j->u->protocols)) == CURLE_OK &&
	    (rc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
				   j->u->redirects)) == CURLE_OK)
		return 0;
	snprintf(j->text, sizeof j->text, "cannot fetch %s: cannot restrict "
		 "libcurl to the protocols '%s' (redirects '%s'): %s", j->url,
		 j->u->protocols, j->u->redirects, curl_easy_strerror(rc));
	return -1;
}

static void set_options(CURL *h, struct job *j, char *errbuf)
{
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, STALL_S);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "xylem-worker");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, j->u);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
}

/* Downloads into j->path. Returns 0, or -1 with j->text set. */
static int download(struct job *j)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode rc;
	CURL *h;

	j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (j->fd < 0) {
		j->status = xy_object_write_status(errno);
		snprintf(j->text, sizeof j->text, "cannot create %.300s: %s",
			 j->path, strerror(errno));
		return -1;
	}
	h = curl_easy_init();
	if (!h) {
		close(j->fd);
		snprintf(j->text, sizeof j->text, "cannot start libcurl");
		return -1;
	}
	if (restrict_protocols(h, j) < 0) {
		curl_easy_cleanup(h);
		close(j->fd);
		return -1;
	}
	set_options(h, j, errbuf);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	if (close(j->fd) < 0 && rc == CURLE_OK) {
		j->write_errno = errno;
		rc = CURLE_WRITE_ERROR;
	}
	if (rc == CURLE_OK && code >= 400) {
		snprintf(j->text, sizeof j->text, "HTTP %ld from %s", code,
			 j->url);
		return -1;
	}
	if (rc == CURLE_WRITE_ERROR && j->write_errno) {
		/* This worker's disk, not the origin: NO_ROOM lets the
		 * manager try another worker (urls.c). */
		j->status = xy_object_write_status(j->write_errno);
		snprintf(j->text, sizeof j->text, "cannot write %.300s: %s",
			 j->path, strerror(j->write_errno));
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(j->text, sizeof j->text, "cannot fetch %s: %s",
			 j->url, *errbuf ? errbuf : curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

static void url_work(uv_work_t *req)
{
	struct job *j = req->data;
	char err[256];
	uint8_t kind;

	j->status = XY_OBJ_FAILED;
	if (download(j) < 0) {
		unlink(j->path);
		return;
	}
	if (xy_object_hash_chunks(j->path, j->id, &kind, &j->size,
				  &j->chunks, err, sizeof err) < 0) {
		snprintf(j->text, sizeof j->text, "%s: %s", j->url, err);
		unlink(j->path);
		return;
	}
	chmod(j->path, 0555); /* as a received file object is */
	j->status = XY_OBJ_OK;
}

/* ------------------------------------------------------- on the loop */

/* Adopts j's download into the cache, reports it and frees j. */
static void finish(struct xy_urlfetch *u, struct job *j)
{
	struct xy_msg_url_done d;
	char err[256];

	if (j->status == XY_OBJ_OK &&
	    xy_cache_adopt(u->cache, j->path, j->id, XY_KIND_FILE, j->level,
			   j->size, err, sizeof err) < 0) {
		j->status = XY_OBJ_FAILED;
		snprintf(j->text, sizeof j->text, "%s", err);
		unlink(j->path);
	}
	memset(&d, 0, sizeof d);
	d.req_id = j->req_id;
	d.status = (uint8_t)j->status;
	if (j->status == XY_OBJ_OK) {
		memcpy(d.id, j->id, XY_ID_LEN);
		d.size = j->size;
		d.chunks = j->chunks;
		XY_LOGI("url", "fetched %s (%" PRIu64 " bytes)", j->url,
			j->size);
	} else {
		/* NO_ROOM: what did fit, the least the object can be. */
		if (j->status == XY_OBJ_NO_ROOM)
			d.size = j->written;
		XY_LOGW("url", "%s", j->text);
	}
	d.elapsed_us = xy_mono_us() - j->t0_us;
	d.text = j->status == XY_OBJ_OK ? "" : j->text;
	if (!atomic_load(&u->stopping))
		u->cb(u->arg, &d);
	free(j->chunks.hash);
	free(j->url);
	free(j);
}

static void url_done(uv_work_t *req, int status);

/* Puts j on the thread pool. Returns -1 if libuv refuses. */
static int start(struct xy_urlfetch *u, struct job *j)
{
	if (uv_queue_work(u->loop, &j->req, url_work, url_done) < 0)
		return -1;
	u->running++;
	return 0;
}

/* Starts the queued jobs there is room for, unless the worker stops. */
static void start_queued(struct xy_urlfetch *u)
{
	while (u->head && u->running < XY_URL_FETCHES &&
	       !atomic_load(&u->stopping)) {
		struct job *j = u->head;

		u->head = j->next;
		if (!u->head)
			u->tail = NULL;
		j->next = NULL;
		if (start(u, j) < 0) {
			j->status = XY_OBJ_FAILED;
			snprintf(j->text, sizeof j->text, "cannot fetch %s: "
				 "cannot queue the download", j->url);
			finish(u, j);
		}
	}
}

static void url_done(uv_work_t *req, int status)
{
	struct job *j = req->data;
	struct xy_urlfetch *u = j->u;

	u->running--;
	if (status < 0 && j->status == XY_OBJ_OK) {
		j->status = XY_OBJ_FAILED;
		snprintf(j->text, sizeof j->text, "cannot fetch %s: "
			 "cancelled", j->url);
	}
	finish(u, j);
	start_queued(u);
}

int xy_urlfetch_request(struct xy_urlfetch *u,
			const struct xy_msg_fetch_url *m)
{
	struct job *j = calloc(1, sizeof *j);

	if (!j || !(j->url = strdup(m->url))) {
		free(j);
		errno = ENOMEM;
		return -1;
	}
	j->u = u;
	j->req.data = j;
	j->req_id = m->req_id;
	j->level = m->level;
	j->t0_us = xy_mono_us();
	snprintf(j->path, sizeof j->path, "%s/url-%" PRIu64 "-%" PRIu64,
		 xy_cache_tmp(u->cache), m->req_id, ++u->seq);
	if (u->running < XY_URL_FETCHES) {
		if (start(u, j) < 0) {
			free(j->url);
			free(j);
			errno = ENOMEM;
			return -1;
		}
		return 0;
	}
	if (u->tail)
		u->tail->next = j;
	else
		u->head = j;
	u->tail = j;
	return 0;
}
