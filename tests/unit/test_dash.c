/*
 * test_dash.c: unit tests for the dashboard (dash.c, http.c) on a real
 * manager's loop, read through a real socket: the ring of recent events
 * (a reconnection resumes after its last id while the ring holds it, and
 * gets a snapshot once it has left), requests pipelined on one kept-alive
 * connection, and tasks counted by tag and state.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "util.h"
#include "xylem.h"

static struct xy_manager *mk(void)
{
	char err[256];
	struct xy_manager_options o = {.host = "127.0.0.1",
				       .secret = "s3cret",
				       .secret_len = 6,
				       .no_tls = 1,
				       .http = "127.0.0.1:0"};
	struct xy_manager *m = xy_manager_create(&o, err, sizeof err);
	if (!m)
		fprintf(stderr, "create: %s\n", err);
	XY_CHECK(m);
	XY_CHECK(xy_manager_http_port(m) > 0);
	return m;
}

static int dial(struct xy_manager *m, const char *request)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(xy_manager_http_port(m))};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	XY_CHECK(fd >= 0);
	XY_CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	XY_CHECK_EQ(write(fd, request, strlen(request)),
		    (ssize_t)strlen(request));
	return fd;
}

/* Turns m's loop and reads fd until what this call read holds `until`
 * (or 5 s pass); returns it, NUL-terminated, in buf. */
static char *read_until(struct xy_manager *m, int fd, char *buf, size_t cap,
			const char *until)
{
	size_t len = 0;
	double end = xy_mono() + 5;
	buf[0] = 0;
	while (!strstr(buf, until) && xy_mono() < end) {
		xy_manager_turn(m, xy_mono() + 0.02);
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n > 0) {
			len += (size_t)n;
			buf[len] = 0;
		}
	}
	return buf;
}

static char big[1 << 22];

static void t_ring_resume_and_snapshot(void)
{
	struct xy_manager *m = mk();
	for (int i = 0; i < 300; i++)
		xy__dash_push(m->dash);
	/* 250 is in the ring (the last 256): 251 to 300 follow, in order. */
	int fd = dial(m, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "Last-Event-ID: 250\r\n\r\n");
	read_until(m, fd, big, sizeof big, "id: 300\n");
	XY_CHECK(strstr(big, "text/event-stream"));
	XY_CHECK(!strstr(big, "event: snapshot"));
	const char *p = big;
	for (int id = 251; id <= 300; id++) {
		char want[32];
		snprintf(want, sizeof want, "id: %d\nevent: update\n", id);
		const char *q = strstr(p, want);
		XY_CHECK(q != NULL);
		p = q;
	}
	XY_CHECK(!strstr(big, "id: 250\n"));
	close(fd);
	/* 10 has left it: a snapshot, numbered as the latest, and nothing
	 * older. */
	fd = dial(m, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		     "Last-Event-ID: 10\r\n\r\n");
	read_until(m, fd, big, sizeof big, "\"running\":[");
	XY_CHECK(strstr(big, "id: 300\nevent: snapshot\n"));
	XY_CHECK(!strstr(big, "event: update"));
	/* New events reach the open stream. */
	xy__dash_push(m->dash);
	read_until(m, fd, big, sizeof big, "id: 301\nevent: update\n");
	XY_CHECK(strstr(big, "id: 301\nevent: update\n"));
	close(fd);
	xy_manager_destroy(m);
}

static void t_pipelined_keep_alive(void)
{
	struct xy_manager *m = mk();
	int fd = dial(m, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
			 "GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n"
			 "HEAD /app.js HTTP/1.1\r\nHost: localhost\r\n"
			 "Connection: close\r\n\r\n");
	read_until(m, fd, big, sizeof big, "Connection: close");
	const char *a = strstr(big, "HTTP/1.1 200 OK");
	const char *b = a ? strstr(a, "HTTP/1.1 404") : NULL;
	const char *c = b ? strstr(b, "HTTP/1.1 200 OK") : NULL;
	XY_CHECK(a && b && c);
	XY_CHECK(strstr(a, "xylem_queue_depth 0"));
	XY_CHECK(strstr(c, "text/javascript"));
	XY_CHECK(!strstr(c, "\"use strict\"")); /* HEAD: no body */
	close(fd);
	xy_manager_destroy(m);
}

static void t_tags_and_states(void)
{
	struct xy_manager *m = mk();
	const char *tags[] = {"align-3", "align-4", "x[2]", NULL, NULL};
	const char *cmds[] = {"true", "true", "true", " /usr/bin/env foo",
			      "sort -u"};
	char err[256];
	for (int i = 0; i < 5; i++) {
		struct xy_task *t = xy_task_create(cmds[i]);
		if (tags[i])
			XY_CHECK_EQ(xy_task_set_tag(t, tags[i]), 0);
		XY_CHECK(xy_manager_submit(m, t, err, sizeof err) > 0);
	}
	xy_manager_turn(m, xy_mono() + 0.05);
	int fd = dial(m, "GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	read_until(m, fd, big, sizeof big, "\"running\":[");
	/* No worker: every task is ready, under its tag. */
	XY_CHECK(strstr(big, "[\"align\",0,2,0,0,0]"));
	XY_CHECK(strstr(big, "[\"x\",0,1,0,0,0]"));
	XY_CHECK(strstr(big, "[\"env\",0,1,0,0,0]"));
	XY_CHECK(strstr(big, "[\"sort\",0,1,0,0,0]"));
	close(fd);
	/* Cancelled, they count as failed. */
	for (uint64_t id = 1; id <= 5; id++)
		xy_manager_cancel(m, id);
	struct xy_task *t;
	while ((t = xy_manager_wait(m, 0.5)))
		xy_task_delete(t);
	fd = dial(m, "GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	read_until(m, fd, big, sizeof big, "\"running\":[");
	XY_CHECK(strstr(big, "[\"align\",0,0,0,0,2]"));
	XY_CHECK(strstr(big, "\"nfails\":5"));
	close(fd);
	xy_manager_destroy(m);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_ring_resume_and_snapshot),
		XY_TEST(t_pipelined_keep_alive),
		XY_TEST(t_tags_and_states),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
