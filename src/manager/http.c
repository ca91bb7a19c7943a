/*
 * http.c: the dashboard's HTTP/1.1 server on the manager's loop
 * (http.h). Each connection reads into a buffer of its own, bounded by
 * the parser's limit on a request head; requests are answered in order,
 * and a connection stays open after one unless the client asked it not
 * to. A connection turned into an event stream only writes from then on.
 * Objects are freed in their close callbacks, never in a read callback.
 * With a TLS context, each connection runs TLS through a pair of memory
 * BIOs: what the socket gives goes into the session, what the session
 * writes goes to the socket, so that the loop never blocks on either.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define WHO "http"
#define MAX_CONNS 256
#define MAX_QUEUED (8u << 20) /* bytes a stream may fall behind */

struct xy_http_conn {
	uv_tcp_t tcp;
	struct xy_http *h;
	char *in;
	size_t in_len;
	size_t skip;     /* body bytes still to drop */
	size_t queued;   /* bytes in writes not yet done */
	int stream;      /* an event stream: no more requests */
	int close_after; /* close once what is queued is written */
	int closing;
	int head;        /* the request being answered is a HEAD */
	SSL *ssl;        /* with TLS: the session, between rbio and wbio */
	BIO *rbio, *wbio;
	char *raw;       /* with TLS: what the socket read, encrypted */
	struct xy_http_conn *prev, *next;
};

struct xy_http {
	uv_tcp_t listener;
	int port;
	xy_http_handler handler;
	xy_http_closed closed;
	void *arg;
	SSL_CTX *tls;
	struct xy_http_conn *conns;
	int n_conns;
	double cpu; /* seconds spent in its callbacks (xy_http_cpu_seconds) */
};

struct wreq {
	uv_write_t req;
	struct xy_http_conn *c;
	size_t len;
	char data[];
};

static void on_conn_closed(uv_handle_t *hd)
{
	struct xy_http_conn *c = hd->data;
	SSL_free(c->ssl); /* and its BIOs */
	free(c->raw);
	free(c->in);
	free(c);
}

static void conn_close(struct xy_http_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	struct xy_http *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->n_conns--;
	if (c->stream && h->closed)
		h->closed(h->arg, c);
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

double xy_http_cpu_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double xy_http_cpu_seconds(const struct xy_http *h)
{
	return h ? h->cpu : 0;
}

static void written(struct wreq *w, struct xy_http_conn *c, int status);

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct xy_http_conn *c = w->c;
	struct xy_http *h = c->h;
	double c0;

	/* A closing connection's writes end as the server may be freed
	 * (xy_http_destroy): not counted, h not touched. */
	if (c->closing) {
		written(w, c, status);
		return;
	}
	c0 = xy_http_cpu_now();
	written(w, c, status);
	h->cpu += xy_http_cpu_now() - c0;
}

static void written(struct wreq *w, struct xy_http_conn *c, int status)
{
	c->queued -= w->len;
	free(w);
	if (c->closing)
		return;
	if (status < 0 || (c->close_after && c->queued == 0))
		conn_close(c);
}

static void raw_write(struct xy_http_conn *c, const char *a, size_t na,
		      const char *b, size_t nb)
{
	if (c->closing)
		return;
	struct wreq *w = malloc(sizeof *w + na + nb);
	if (!w) {
		conn_close(c);
		return;
	}
	memcpy(w->data, a, na);
	if (nb)
		memcpy(w->data + na, b, nb);
	w->c = c;
	w->len = na + nb;
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
	c->queued += w->len;
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written)) {
		c->queued -= w->len;
		free(w);
		conn_close(c);
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* Sends what the TLS session has written to the socket. */
static void tls_flush(struct xy_http_conn *c)
{
	char buf[16384];
	int n;
	while (!c->closing && (n = BIO_read(c->wbio, buf, sizeof buf)) > 0)
		raw_write(c, buf, (size_t)n, NULL, 0);
}

static void conn_write(struct xy_http_conn *c, const char *a, size_t na,
		       const char *b, size_t nb)
{
	if (!c->ssl) {
		raw_write(c, a, na, b, nb);
		return;
	}
	if (c->closing)
		return;
	/* Memory BIOs take everything: SSL_write does not come back short. */
	if ((na && SSL_write(c->ssl, a, (int)na) <= 0) ||
	    (nb && SSL_write(c->ssl, b, (int)nb) <= 0)) {
		ERR_clear_error();
		conn_close(c);
		return;
	}
	tls_flush(c);
}

void xy_http_respond(struct xy_http_conn *c, int status, const char *type,
		     const char *headers, const char *body, size_t len)
{
	char head[1024];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
			 "X-Content-Type-Options: nosniff\r\n"
			 "Content-Security-Policy: default-src 'self'; "
			 "img-src 'self' data:\r\n%s%s\r\n",
			 status, reason(status), type, len,
			 headers ? headers : "",
			 c->close_after ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof head) {
		conn_close(c);
		return;
	}
	conn_write(c, head, (size_t)n, body, c->head ? 0 : len);
	if (c->close_after && c->queued == 0)
		conn_close(c);
}

void xy_http_stream_start(struct xy_http_conn *c)
{
	static const char head[] =
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		"Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n"
		"Connection: keep-alive\r\n\r\n";
	c->stream = 1;
	conn_write(c, head, sizeof head - 1, NULL, 0);
}

void xy_http_stream_send(struct xy_http_conn *c, const char *data,
			 size_t len)
{
	if (c->queued + len > MAX_QUEUED) {
		XY_LOGW(WHO, "an event stream's reader fell %zu bytes behind:"
			" closed", c->queued);
		conn_close(c);
		return;
	}
	conn_write(c, data, len, NULL, 0);
}

int xy_http_is_head(const struct xy_http_req *req)
{
	return req->method.n == 4 && !memcmp(req->method.p, "HEAD", 4);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
	struct xy_http_conn *c = hd->data;
	(void)hint;
	if (c->ssl) {
		if (!c->raw)
			c->raw = malloc(16384);
		*buf = c->raw ? uv_buf_init(c->raw, 16384) : uv_buf_init(NULL, 0);
		return;
	}
	if (!c->in)
		c->in = malloc(XY_HTTP_MAX_HEAD);
	*buf = c->in ? uv_buf_init(c->in + c->in_len,
				   (unsigned)(XY_HTTP_MAX_HEAD - c->in_len))
		     : uv_buf_init(NULL, 0);
}

/* Answers every complete request in c's buffer, in order. */
static void serve(struct xy_http_conn *c)
{
	while (!c->closing && !c->stream && !c->close_after) {
		if (c->skip) {
			size_t n = c->skip < c->in_len ? c->skip : c->in_len;
			memmove(c->in, c->in + n, c->in_len - n);
			c->in_len -= n;
			c->skip -= n;
			if (c->skip)
				return;
		}
		struct xy_http_req req;
		int status = 0;
		long n = xy_http_parse(c->in, c->in_len, &req, &status);
		if (n == 0)
			return;
		if (n < 0) {
			c->close_after = 1;
			c->head = 0;
			const char *r = reason(status);
			xy_http_respond(c, status, "text/plain", NULL, r,
					strlen(r));
			return;
		}
		c->close_after = !req.keep_alive;
		c->head = xy_http_is_head(&req);
		c->h->handler(c->h->arg, c, &req);
		if (c->closing)
			return;
		memmove(c->in, c->in + n, c->in_len - (size_t)n);
		c->in_len -= (size_t)n;
		c->skip = req.body;
	}
}

/* With TLS: feeds what came to the session, and takes out what it can
 * of the requests, as much as c's buffer has room for, serving them as
 * they come. */
static void tls_read(struct xy_http_conn *c, const char *data, size_t n)
{
	if (BIO_write(c->rbio, data, (int)n) != (int)n) {
		conn_close(c);
		return;
	}
	if (!c->in && !(c->in = malloc(XY_HTTP_MAX_HEAD))) {
		conn_close(c);
		return;
	}
	for (;;) {
		int got = 0;
		if (c->in_len < XY_HTTP_MAX_HEAD)
			got = SSL_read(c->ssl, c->in + c->in_len,
				       (int)(XY_HTTP_MAX_HEAD - c->in_len));
		if (got <= 0) {
			int e = got < 0 ? SSL_get_error(c->ssl, got)
					: c->in_len < XY_HTTP_MAX_HEAD
						  ? SSL_get_error(c->ssl, got)
						  : SSL_ERROR_WANT_READ;
			ERR_clear_error();
			tls_flush(c); /* the handshake's answers */
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				conn_close(c);
			return;
		}
		c->in_len += (size_t)got;
		size_t before = c->in_len;
		serve(c);
		if (c->closing || c->stream || c->close_after)
			return;
		if (c->in_len == XY_HTTP_MAX_HEAD && c->in_len == before &&
		    !c->skip) {
			conn_close(c);
			return;
		}
	}
}

static void conn_read(struct xy_http_conn *c, ssize_t nread,
		      const uv_buf_t *buf)
{
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (c->closing)
		return;
	if (c->stream || c->close_after)
		return; /* nothing more is read from it */
	if (c->ssl) {
		tls_read(c, buf->base, (size_t)nread);
		return;
	}
	c->in_len += (size_t)nread;
	serve(c);
	if (!c->closing && !c->stream && c->in_len == XY_HTTP_MAX_HEAD &&
	    !c->skip) {
		/* Should not happen: the parser refuses a head this long. */
		conn_close(c);
	}
}

/* The callbacks below count their CPU time into h->cpu: what a reader
 * of the dashboard costs the manager's loop. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct xy_http_conn *c = s->data;
	struct xy_http *h = c->h;
	double c0 = xy_http_cpu_now();

	conn_read(c, nread, buf);
	h->cpu += xy_http_cpu_now() - c0;
}

static void accept_one(struct xy_http *h, uv_stream_t *server);

static void on_connection(uv_stream_t *server, int status)
{
	struct xy_http *h = server->data;
	double c0;

	if (status < 0)
		return;
	c0 = xy_http_cpu_now();
	accept_one(h, server);
	h->cpu += xy_http_cpu_now() - c0;
}

static void accept_one(struct xy_http *h, uv_stream_t *server)
{
	struct xy_http_conn *c = calloc(1, sizeof *c);
	if (!c || uv_tcp_init(server->loop, &c->tcp)) {
		free(c);
		return;
	}
	c->h = h;
	c->tcp.data = c;
	c->closing = 1; /* until it is on the list */
	if (uv_accept(server, (uv_stream_t *)&c->tcp) ||
	    h->n_conns >= MAX_CONNS) {
		uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
		return;
	}
	c->closing = 0;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->n_conns++;
	uv_tcp_nodelay(&c->tcp, 1);
	if (h->tls) {
		c->ssl = SSL_new(h->tls);
		c->rbio = BIO_new(BIO_s_mem());
		c->wbio = BIO_new(BIO_s_mem());
		if (!c->ssl || !c->rbio || !c->wbio) {
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			conn_close(c);
			return;
		}
		SSL_set_bio(c->ssl, c->rbio, c->wbio); /* ssl owns them now */
		SSL_set_accept_state(c->ssl);
	}
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
		conn_close(c);
}

/* A host name's first address, once, at start (not on the loop's path). */
static int resolve(const char *host, int port, struct sockaddr_storage *ss)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) || !res)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	freeaddrinfo(res);
	return 0;
}

struct xy_http *xy_http_create(uv_loop_t *loop, const char *host, int port,
			       SSL_CTX *tls, xy_http_handler handler,
			       xy_http_closed closed, void *arg,
			       char *err, size_t errlen)
{
	struct xy_http *h = calloc(1, sizeof *h);
	struct sockaddr_storage ss;
	int rc;
	if (!h) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	h->handler = handler;
	h->tls = tls;
	h->closed = closed;
	h->arg = arg;
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) &&
	    resolve(host, port, &ss) < 0) {
		xy_fail(err, errlen, EINVAL, "dashboard: cannot resolve \"%s\"",
			host);
		free(h);
		return NULL;
	}
	uv_tcp_init(loop, &h->listener);
	h->listener.data = h;
	if ((rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) ||
	    (rc = uv_listen((uv_stream_t *)&h->listener, 64,
			    on_connection))) {
		xy_fail(err, errlen, -rc, "dashboard: cannot listen on %s:%d:"
			" %s", host, port, uv_strerror(rc));
		xy_http_destroy(h);
		return NULL;
	}
	int len = sizeof ss;
	uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len);
	h->port = ntohs(ss.ss_family == AF_INET6
				? ((struct sockaddr_in6 *)&ss)->sin6_port
				: ((struct sockaddr_in *)&ss)->sin_port);
	return h;
}

static void on_listener_closed(uv_handle_t *hd)
{
	free(hd->data);
}

void xy_http_destroy(struct xy_http *h)
{
	if (!h)
		return;
	h->closed = NULL;
	while (h->conns)
		conn_close(h->conns);
	uv_close((uv_handle_t *)&h->listener, on_listener_closed);
}

int xy_http_port(const struct xy_http *h)
{
	return h->port;
}
