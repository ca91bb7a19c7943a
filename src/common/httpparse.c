/*
 * httpparse.c: the dashboard's HTTP/1.1 request head parser
 * (httpparse.h). One pass over the lines of the head; each line is
 * checked as RFC 9112 says, strictly: a line ends with CRLF (a bare LF
 * is taken too), header names are tokens, values hold no control
 * characters, and a folded line or a transfer coding is refused.
 */
#include <string.h>

#include "httpparse.h"

static int is_tchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return 1;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int xy_http_eq(struct xy_http_str s, const char *lit)
{
	size_t n = strlen(lit);
	if (s.n != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s.p[i], b = (unsigned char)lit[i];
		if (a >= 'A' && a <= 'Z')
			a |= 0x20;
		if (b >= 'A' && b <= 'Z')
			b |= 0x20;
		if (a != b)
			return 0;
	}
	return 1;
}

static struct xy_http_str trim(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return (struct xy_http_str){p, n};
}

struct xy_http_str xy_http_param(struct xy_http_str s, char sep,
				 const char *name)
{
	size_t nl = strlen(name);
	if (!s.p) /* no such part: NULL + 0 is undefined, even for 0 */
		return (struct xy_http_str){NULL, 0};
	const char *p = s.p, *end = s.p + s.n;
	while (p < end) {
		const char *e = memchr(p, sep, (size_t)(end - p));
		if (!e)
			e = end;
		struct xy_http_str kv = trim(p, (size_t)(e - p));
		if (kv.n > nl && kv.p[nl] == '=' && !memcmp(kv.p, name, nl))
			return (struct xy_http_str){kv.p + nl + 1, kv.n - nl - 1};
		p = e + 1;
	}
	return (struct xy_http_str){NULL, 0};
}

/* Does the comma-separated list v hold the token tok? */
static int has_token(struct xy_http_str v, const char *tok)
{
	if (!v.p)
		return 0;
	const char *p = v.p, *end = v.p + v.n;
	while (p < end) {
		const char *e = memchr(p, ',', (size_t)(end - p));
		if (!e)
			e = end;
		if (xy_http_eq(trim(p, (size_t)(e - p)), tok))
			return 1;
		p = e + 1;
	}
	return 0;
}

static int request_line(const char *p, size_t n, struct xy_http_req *r,
			int *status)
{
	const char *end = p + n, *sp1, *sp2;
	*status = 400;
	if (!(sp1 = memchr(p, ' ', n)) || sp1 == p)
		return -1;
	for (const char *c = p; c < sp1; c++)
		if (!is_tchar((unsigned char)*c))
			return -1;
	if (!(sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))))
		return -1;
	r->method = (struct xy_http_str){p, (size_t)(sp1 - p)};
	r->target = (struct xy_http_str){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	if (!r->target.n || r->target.p[0] != '/')
		return -1;
	for (size_t i = 0; i < r->target.n; i++) {
		unsigned char c = (unsigned char)r->target.p[i];
		if (c <= 0x20 || c >= 0x7f)
			return -1;
	}
	const char *q = memchr(r->target.p, '?', r->target.n);
	size_t plen = q ? (size_t)(q - r->target.p) : r->target.n;
	r->path = (struct xy_http_str){r->target.p, plen};
	r->query = q ? (struct xy_http_str){q + 1, r->target.n - plen - 1}
		     : (struct xy_http_str){NULL, 0};
	const char *v = sp2 + 1;
	if (end - v != 8 || memcmp(v, "HTTP/", 5) || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return -1;
	if (v[5] != '1') {
		*status = 505;
		return -1;
	}
	r->minor = v[7] - '0';
	r->keep_alive = r->minor >= 1;
	return 0;
}

static int header_line(const char *p, size_t n, struct xy_http_req *r,
		       int *status, int *conn_seen)
{
	const char *colon = memchr(p, ':', n);
	*status = 400;
	if (!colon || colon == p)
		return -1; /* also a folded line, which starts with a space */
	for (const char *c = p; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return -1;
	struct xy_http_str name = {p, (size_t)(colon - p)};
	struct xy_http_str v = trim(colon + 1, (size_t)(p + n - colon - 1));
	for (size_t i = 0; i < v.n; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	if (++r->n_headers > XY_HTTP_MAX_HEADERS) {
		*status = 431;
		return -1;
	}
	if (xy_http_eq(name, "host")) {
		r->host = v;
	} else if (xy_http_eq(name, "cookie")) {
		r->cookie = v;
	} else if (xy_http_eq(name, "authorization")) {
		r->authorization = v;
	} else if (xy_http_eq(name, "last-event-id")) {
		r->last_event_id = v;
	} else if (xy_http_eq(name, "transfer-encoding")) {
		*status = 501;
		return -1;
	} else if (xy_http_eq(name, "connection")) {
		if (has_token(v, "close"))
			r->keep_alive = 0;
		else if (has_token(v, "keep-alive") && !*conn_seen)
			r->keep_alive = 1;
		*conn_seen |= has_token(v, "close");
	} else if (xy_http_eq(name, "content-length")) {
		size_t len = 0;
		if (!v.n)
			return -1;
		for (size_t i = 0; i < v.n; i++) {
			if (v.p[i] < '0' || v.p[i] > '9')
				return -1;
			len = len * 10 + (size_t)(v.p[i] - '0');
			if (len > XY_HTTP_MAX_BODY) {
				*status = 413;
				return -1;
			}
		}
		if (r->body != (size_t)-1 && r->body != len)
			return -1; /* two that differ */
		r->body = len;
	}
	return 0;
}

long xy_http_parse(const char *buf, size_t len, struct xy_http_req *req,
		   int *status)
{
	size_t lim = len < XY_HTTP_MAX_HEAD ? len : XY_HTTP_MAX_HEAD;
	size_t pos = 0;
	int line = 0, conn_seen = 0;
	memset(req, 0, sizeof *req);
	req->body = (size_t)-1;
	/* A few empty lines before a request are allowed (RFC 9112, 2.2). */
	while (pos < lim && (buf[pos] == '\r' || buf[pos] == '\n') &&
	       pos < 4)
		pos++;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', lim - pos);
		if (!nl) {
			if (len >= XY_HTTP_MAX_HEAD) {
				*status = 431;
				return -1;
			}
			return 0;
		}
		size_t n = (size_t)(nl - (buf + pos));
		if (n && buf[pos + n - 1] == '\r')
			n--;
		for (size_t i = 0; i < n; i++)
			if (buf[pos + i] == '\r' || buf[pos + i] == '\0') {
				*status = 400;
				return -1;
			}
		const char *p = buf + pos;
		pos = (size_t)(nl - buf) + 1;
		if (line == 0) {
			if (request_line(p, n, req, status) < 0)
				return -1;
		} else if (n == 0) {
			break;
		} else if (header_line(p, n, req, status, &conn_seen) < 0) {
			return -1;
		}
		line++;
	}
	if (req->body == (size_t)-1)
		req->body = 0;
	return (long)pos;
}
