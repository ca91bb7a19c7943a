/*
 * test_httpparse.c: unit tests for httpparse.h, the dashboard's request
 * parser: a full head with the headers it knows, a head that comes in
 * pieces, keep-alive rules for 1.0 and 1.1, pipelined requests, and the
 * refusals (malformed lines, folding, transfer codings, bodies and heads
 * over their limits, other versions), each with its status code.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "httpparse.h"

static long parse(const char *s, struct xy_http_req *r, int *status)
{
	*status = 0;
	return xy_http_parse(s, strlen(s), r, status);
}

static int is(struct xy_http_str s, const char *lit)
{
	return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

static void t_full_head(void)
{
	const char *s = "GET /events?token=abc&x=1 HTTP/1.1\r\n"
			"Host: 127.0.0.1:8080\r\n"
			"Cookie: a=1; xylem_token=0123\r\n"
			"Authorization: Bearer zz\r\n"
			"Last-Event-ID:  42 \r\n"
			"X-Other: whatever\r\n\r\nNEXT";
	struct xy_http_req r;
	int st;
	long n = parse(s, &r, &st);
	XY_CHECK_EQ(n, (long)(strstr(s, "NEXT") - s));
	XY_CHECK(is(r.method, "GET"));
	XY_CHECK(is(r.path, "/events"));
	XY_CHECK(is(r.query, "token=abc&x=1"));
	XY_CHECK(is(r.host, "127.0.0.1:8080"));
	XY_CHECK(is(r.last_event_id, "42"));
	XY_CHECK(is(r.authorization, "Bearer zz"));
	XY_CHECK(is(xy_http_param(r.query, '&', "token"), "abc"));
	XY_CHECK(is(xy_http_param(r.cookie, ';', "xylem_token"), "0123"));
	XY_CHECK(xy_http_param(r.cookie, ';', "xylem").p == NULL);
	XY_CHECK_EQ(r.keep_alive, 1);
	XY_CHECK_EQ(r.body, (size_t)0);
	XY_CHECK_EQ(r.n_headers, 5);
}

static void t_pieces_and_pipelining(void)
{
	const char *s = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
			"HEAD /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
	size_t len = strlen(s);
	struct xy_http_req r;
	int st;
	long first = xy_http_parse(s, len, &r, &st);
	XY_CHECK(first > 0);
	/* Every proper prefix of the first head asks for more. */
	for (long i = 0; i < first; i++)
		XY_CHECK_EQ(xy_http_parse(s, (size_t)i, &r, &st), 0);
	long second = xy_http_parse(s + first, len - (size_t)first, &r, &st);
	XY_CHECK(second > 0);
	XY_CHECK(is(r.method, "HEAD"));
	XY_CHECK_EQ(r.body, (size_t)3);
	XY_CHECK_EQ((size_t)(first + second) + r.body, len);
}

static void t_keep_alive(void)
{
	struct xy_http_req r;
	int st;
	XY_CHECK(parse("GET / HTTP/1.0\r\n\r\n", &r, &st) > 0);
	XY_CHECK_EQ(r.keep_alive, 0);
	XY_CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r,
		       &st) > 0);
	XY_CHECK_EQ(r.keep_alive, 1);
	XY_CHECK(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", &r,
		       &st) > 0);
	XY_CHECK_EQ(r.keep_alive, 0);
	XY_CHECK(parse("GET / HTTP/1.1\n\n", &r, &st) > 0); /* bare LF */
	XY_CHECK_EQ(r.keep_alive, 1);
}

static void refused(const char *s, int status)
{
	struct xy_http_req r;
	int st;
	long n = parse(s, &r, &st);
	if (n != -1 || st != status)
		fprintf(stderr, "%s -> %ld %d\n", s, n, st);
	XY_CHECK_EQ(n, -1);
	XY_CHECK_EQ(st, status);
}

static void t_refusals(void)
{
	refused("GET\r\n\r\n", 400);
	refused("GET  / HTTP/1.1\r\n\r\n", 400);
	refused("GET http://x/ HTTP/1.1\r\n\r\n", 400); /* origin-form only */
	refused("GET / HTTP/1.1 \r\n\r\n", 400);
	refused("GET /\x01 HTTP/1.1\r\n\r\n", 400);
	refused("G(T / HTTP/1.1\r\n\r\n", 400);
	refused("GET / HTTP/2.0\r\n\r\n", 505);
	refused("GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nBad Name: b\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	refused("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		413);
	refused("GET / HTTP/1.1\r\nContent-Length: 1\r\n"
		"Content-Length: 2\r\n\r\n", 400);
	char many[4096];
	int n = snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < XY_HTTP_MAX_HEADERS + 1; i++)
		n += snprintf(many + n, sizeof many - (size_t)n, "H%d: v\r\n", i);
	snprintf(many + n, sizeof many - (size_t)n, "\r\n");
	refused(many, 431);
	static char big[XY_HTTP_MAX_HEAD + 100];
	memset(big, 'a', sizeof big - 1);
	memcpy(big, "GET /", 5);
	refused(big, 431);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_full_head),
		XY_TEST(t_pieces_and_pipelining),
		XY_TEST(t_keep_alive),
		XY_TEST(t_refusals),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
