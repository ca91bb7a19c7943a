/*
 * http.h: the HTTP/1.1 server of the manager's dashboard (http.c), on the
 * manager's own loop: no thread of its own. It accepts connections,
 * parses each request head (httpparse.h), and hands it to a handler, which
 * answers with xy_http_respond or turns the connection into a stream of
 * Server-Sent Events (xy_http_stream_start, xy_http_stream_send).
 * Connections are kept alive between requests. What the pages hold and
 * who may see them is dash.c's business.
 */
#ifndef XY_MANAGER_HTTP_H
#define XY_MANAGER_HTTP_H

#include <stddef.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "httpparse.h"

struct xy_http;
struct xy_http_conn;

/* Called once per request, on the loop. The connection stays valid until
 * the handler returns, or, for a stream, until closed() is called. */
typedef void (*xy_http_handler)(void *arg, struct xy_http_conn *c,
				const struct xy_http_req *req);
/* A stream's connection closed: c is gone after this returns. */
typedef void (*xy_http_closed)(void *arg, struct xy_http_conn *c);

/* Listens on host:port (port 0: any free one) on loop; with tls (not
 * NULL, kept by the caller while h lives), HTTPS only. NULL with a reason
 * in err. */
struct xy_http *xy_http_create(uv_loop_t *loop, const char *host, int port,
			       SSL_CTX *tls, xy_http_handler handler,
			       xy_http_closed closed, void *arg,
			       char *err, size_t errlen);
/* Closes the listener and every connection (closed() is not called).
 * The handles are freed by the loop's next turns. NULL: nothing. */
void xy_http_destroy(struct xy_http *h);
int xy_http_port(const struct xy_http *h);

/* Answers the request on c: status, content type, extra header lines
 * (each ending "\r\n"; NULL: none) and body (copied). A HEAD request
 * gets the head alone. */
void xy_http_respond(struct xy_http_conn *c, int status, const char *type,
		     const char *headers, const char *body, size_t len);
/* Answers with the head of an event stream; the connection then carries
 * only what xy_http_stream_send gives it, until it closes. */
void xy_http_stream_start(struct xy_http_conn *c);
/* Queues data on a stream (copied). A client that reads too slowly
 * (more than a few MiB queued) is closed. */
void xy_http_stream_send(struct xy_http_conn *c, const char *data,
			 size_t len);
/* The calling thread's CPU time, in seconds (CLOCK_THREAD_CPUTIME_ID):
 * what the dashboard's cost is measured with. */
double xy_http_cpu_now(void);
/* CPU seconds the server's callbacks have spent so far (accepting,
 * reading, parsing, the handler's answers, writes ended): part of the
 * dashboard's cost (xylem_dashboard_seconds_total). */
double xy_http_cpu_seconds(const struct xy_http *h);
/* The request line's method was HEAD. */
int xy_http_is_head(const struct xy_http_req *req);

#endif
