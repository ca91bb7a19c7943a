/*
 * httpparse.h: a small HTTP/1.1 request parser for the manager's
 * dashboard (src/manager/http.c). It reads one request head (request
 * line and headers) from a buffer, without copying: every field points
 * into that buffer. Only what a dashboard needs is understood (GET and
 * HEAD, a few headers); every size is checked against a hard limit, and
 * anything else is refused with the status code to answer. Fuzzed by
 * tests/fuzz/fuzz_http.c.
 */
#ifndef XY_HTTPPARSE_H
#define XY_HTTPPARSE_H

#include <stddef.h>

#define XY_HTTP_MAX_HEAD 8192  /* request line and headers, bytes */
#define XY_HTTP_MAX_HEADERS 48
#define XY_HTTP_MAX_BODY 65536 /* a body is read and dropped */

/* A span of the buffer given to xy_http_parse; not NUL-terminated. */
struct xy_http_str {
	const char *p;
	size_t n;
};

struct xy_http_req {
	struct xy_http_str method, target, path, query;
	int minor;      /* HTTP/1.<minor> */
	int keep_alive; /* 1.1 unless "Connection: close"; 1.0 if asked */
	size_t body;    /* Content-Length: bytes after the head to skip */
	struct xy_http_str host, cookie, authorization, last_event_id;
	int n_headers;
};

/* Parses the request head at the start of buf[0..len). Returns the
 * head's length (the body, req->body bytes, follows it) with req filled;
 * 0 if more bytes are needed; or -1 with *status set to the code to
 * answer (400 malformed, 413 body too large, 431 head too large, 501
 * a transfer coding, 505 not HTTP/1.x). */
long xy_http_parse(const char *buf, size_t len, struct xy_http_req *req,
		   int *status);

/* True if s equals the NUL-terminated lit, ASCII case ignored. */
int xy_http_eq(struct xy_http_str s, const char *lit);

/* The value of name in a query string ("a=1&b=2") or a Cookie header
 * ("a=1; b=2", sep ';'), not decoded; {NULL, 0} if absent. */
struct xy_http_str xy_http_param(struct xy_http_str s, char sep,
				 const char *name);

#endif
